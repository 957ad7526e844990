//! A JSON Schema subset for validating model output: `type`, `properties`,
//! `required`, `items`, `enum`, `const`, `additionalProperties`,
//! `minLength`/`maxLength`, `minimum`/`maximum`, `minItems`/`maxItems`.
//! Unknown keywords are ignored (they constrain nothing here).

use crate::json::Value;

/// Most nesting followed (deeper values pass).
const MAX_DEPTH: usize = 64;

/// Validates `value` against `schema`; `Err` names the first violation by
/// JSON path (never the value itself: model output may hold PII).
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "$", 0)
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => {
            v.as_i64().is_some()
                || v.as_u64().is_some()
                || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn check(schema: &Value, v: &Value, path: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let Some(s) = schema.as_object() else {
        return Ok(()); // `true` / `{}` accept anything; `false` is not supported
    };
    match s.get("type") {
        Some(Value::String(t)) if !type_ok(t, v) => return Err(format!("{path}: expected {t}")),
        Some(Value::Array(ts)) if !ts.iter().filter_map(Value::as_str).any(|t| type_ok(t, v)) => {
            return Err(format!("{path}: type not allowed"))
        }
        _ => {}
    }
    if let Some(options) = s.get("enum").and_then(Value::as_array) {
        if !options.contains(v) {
            return Err(format!("{path}: not one of the enum values"));
        }
    }
    if let Some(c) = s.get("const") {
        if c != v {
            return Err(format!("{path}: not the const value"));
        }
    }
    if let Some(text) = v.as_str() {
        let n = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            return Err(format!("{path}: shorter than minLength"));
        }
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            return Err(format!("{path}: longer than maxLength"));
        }
    }
    if let Some(x) = v.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| x < m)
        {
            return Err(format!("{path}: below minimum"));
        }
        if s.get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| x > m)
        {
            return Err(format!("{path}: above maximum"));
        }
    }
    if let Some(items) = v.as_array() {
        let n = items.len() as u64;
        if s.get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            return Err(format!("{path}: fewer than minItems"));
        }
        if s.get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            return Err(format!("{path}: more than maxItems"));
        }
        if let Some(item_schema) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                check(item_schema, item, &format!("{path}[{i}]"), depth + 1)?;
            }
        }
    }
    if let Some(obj) = v.as_object() {
        if let Some(required) = s.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(key) {
                    return Err(format!("{path}: missing required property {key:?}"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (key, value) in obj {
            match props.and_then(|p| p.get(key)) {
                Some(sub) => check(sub, value, &format!("{path}.{key}"), depth + 1)?,
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{path}: unexpected property {key:?}"))
                    }
                    Some(sub @ Value::Object(_)) => {
                        check(sub, value, &format!("{path}.{key}"), depth + 1)?
                    }
                    _ => {}
                },
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_value as json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 10},
                "age": {"type": "integer", "minimum": 0, "maximum": 150},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 2},
                "kind": {"const": "person"}
            },
            "required": ["name", "age"],
            "additionalProperties": false
        })
    }

    #[test]
    fn valid_documents_pass() {
        assert_eq!(
            validate(
                &schema(),
                &json!({"name": "Ann", "age": 30, "tags": ["a"], "kind": "person"})
            ),
            Ok(())
        );
        assert_eq!(validate(&json!({}), &json!([1, "x"])), Ok(()));
        assert_eq!(
            validate(&json!({"type": ["string", "null"]}), &Value::Null),
            Ok(())
        );
    }

    #[test]
    fn each_keyword_fails_with_its_path() {
        let cases = [
            (json!({"age": 3}), "$: missing required property \"name\""),
            (
                json!({"name": "", "age": 3}),
                "$.name: shorter than minLength",
            ),
            (
                json!({"name": "abcdefghijk", "age": 3}),
                "$.name: longer than maxLength",
            ),
            (json!({"name": "a", "age": -1}), "$.age: below minimum"),
            (json!({"name": "a", "age": 200}), "$.age: above maximum"),
            (json!({"name": "a", "age": 1.5}), "$.age: expected integer"),
            (
                json!({"name": "a", "age": 1, "tags": ["c"]}),
                "$.tags[0]: not one of the enum values",
            ),
            (
                json!({"name": "a", "age": 1, "tags": ["a", "b", "a"]}),
                "$.tags: more than maxItems",
            ),
            (
                json!({"name": "a", "age": 1, "x": 1}),
                "$: unexpected property \"x\"",
            ),
            (
                json!({"name": "a", "age": 1, "kind": "robot"}),
                "$.kind: not the const value",
            ),
            (json!("text"), "$: expected object"),
        ];
        for (doc, want) in cases {
            assert_eq!(validate(&schema(), &doc), Err(want.to_string()), "{doc}");
        }
    }

    #[test]
    fn deep_documents_do_not_overflow() {
        let mut doc = json!(1);
        let mut sch = json!({"type": "integer"});
        for _ in 0..200 {
            doc = Value::Array(vec![doc]);
            let mut array = json!({"type": "array"});
            if let Some(m) = array.as_object_mut() {
                m.insert("items".into(), sch);
            }
            sch = array;
        }
        assert_eq!(validate(&sch, &doc), Ok(()));
    }
}
