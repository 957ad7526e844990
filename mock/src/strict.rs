//! The request checks of the real Chat Completions API that a lenient mock
//! would let through: reasoning models ([`is_reasoning_model`]) refuse
//! `max_tokens` and a `temperature` other than 1; every model refuses
//! `stream_options` without `stream: true` and output caps that are not
//! integers ≥ 1. [`check`] returns the first refusal with the real error
//! body.

use serde_json::{json, Value};

/// Whether `model` is one of OpenAI's reasoning models (`o1`, `o3`,
/// `o4-mini`, `o1-…`, `o3-…`, `o4-…`, `gpt-5…`), which reject some
/// sampling parameters.
pub fn is_reasoning_model(model: &str) -> bool {
    matches!(model, "o1" | "o3" | "o4-mini")
        || ["o1-", "o3-", "o4-", "gpt-5"]
            .iter()
            .any(|p| model.starts_with(p))
}

/// A 400 answer in OpenAI's `invalid_request_error` shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// `error.message`.
    pub message: String,
    /// `error.param`.
    pub param: &'static str,
    /// `error.code` (`null` when `None`).
    pub code: Option<&'static str>,
}

impl Refusal {
    /// The response body: `{"error": {message, type, param, code}}`.
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": "invalid_request_error",
                         "param": self.param, "code": self.code}})
    }
}

/// The first rule `request` (a parsed Chat Completions body) breaks, in
/// the order: `max_tokens` on a reasoning model, `temperature` ≠ 1 on a
/// reasoning model, an output cap that is not an integer ≥ 1,
/// `stream_options` without `stream: true`.
pub fn check(request: &Value) -> Option<Refusal> {
    let reasoning = request["model"].as_str().is_some_and(is_reasoning_model);
    let field = |name: &str| request.as_object().and_then(|o| o.get(name));
    if reasoning && field("max_tokens").is_some() {
        return Some(Refusal {
            message: "Unsupported parameter: 'max_tokens' is not supported with this model. \
                      Use 'max_completion_tokens' instead."
                .into(),
            param: "max_tokens",
            code: Some("unsupported_parameter"),
        });
    }
    if let (true, Some(t)) = (reasoning, field("temperature")) {
        if t.as_f64() != Some(1.0) {
            return Some(Refusal {
                message: format!(
                    "Unsupported value: 'temperature' does not support {t} with this model. \
                     Only the default (1) value is supported."
                ),
                param: "temperature",
                code: Some("unsupported_value"),
            });
        }
    }
    for param in ["max_tokens", "max_completion_tokens"] {
        if let Some(refusal) = field(param).and_then(|v| check_output_cap(param, v)) {
            return Some(refusal);
        }
    }
    if field("stream_options").is_some() && request["stream"].as_bool() != Some(true) {
        return Some(Refusal {
            message: "The 'stream_options' parameter is only allowed when 'stream' is enabled."
                .into(),
            param: "stream_options",
            code: None,
        });
    }
    None
}

/// `null` or an integer ≥ 1 passes; a smaller integer is
/// `integer_below_min_value`, anything else `invalid_type`.
fn check_output_cap(param: &'static str, value: &Value) -> Option<Refusal> {
    let got = match value {
        Value::Null => return None,
        Value::Number(n) if n.as_u64().is_some_and(|n| n >= 1) => return None,
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            return Some(Refusal {
                message: format!(
                    "Invalid '{param}': integer below minimum value. \
                     Expected a value >= 1, but got {n} instead."
                ),
                param,
                code: Some("integer_below_min_value"),
            });
        }
        Value::Number(_) => "a decimal number",
        Value::Bool(_) => "a boolean",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    Some(Refusal {
        message: format!("Invalid type for '{param}': expected an integer, but got {got} instead."),
        param,
        code: Some("invalid_type"),
    })
}

#[cfg(test)]
mod tests {
    use super::{check, is_reasoning_model};
    use serde_json::json;

    #[test]
    fn knows_the_reasoning_models() {
        for m in [
            "o1",
            "o3",
            "o4-mini",
            "o1-mini",
            "o3-mini",
            "o4-mini-high",
            "gpt-5",
        ] {
            assert!(is_reasoning_model(m), "{m}");
        }
        for m in ["gpt-5-mini", "gpt-5.1", "gpt-5-nano"] {
            assert!(is_reasoning_model(m), "{m}");
        }
        for m in ["gpt-4o-mini", "gpt-4.1-mini", "o1x", "o4", "gpt-4", "", "x"] {
            assert!(!is_reasoning_model(m), "{m}");
        }
    }

    #[test]
    fn refuses_in_order_and_lets_valid_requests_through() {
        let code = |v: serde_json::Value| check(&v).map(|r| (r.param, r.code));
        assert_eq!(
            code(json!({"model": "gpt-5", "max_completion_tokens": 5})),
            None
        );
        assert_eq!(code(json!({"model": "gpt-5", "temperature": 1})), None);
        assert_eq!(code(json!({"model": "gpt-5", "temperature": 1.0})), None);
        assert_eq!(
            code(json!({"model": "gpt-4o-mini", "max_tokens": 5, "temperature": 0.2})),
            None
        );
        assert_eq!(
            code(json!({"model": "gpt-5", "max_tokens": null})),
            Some(("max_tokens", Some("unsupported_parameter")))
        );
        assert_eq!(
            code(json!({"model": "o3-mini", "max_tokens": 0, "temperature": 0})),
            Some(("max_tokens", Some("unsupported_parameter")))
        );
        assert_eq!(
            code(json!({"model": "o3-mini", "temperature": 0, "max_completion_tokens": 0})),
            Some(("temperature", Some("unsupported_value")))
        );
        assert_eq!(
            code(json!({"model": "m", "max_completion_tokens": 0})),
            Some(("max_completion_tokens", Some("integer_below_min_value")))
        );
        assert_eq!(
            code(json!({"model": "m", "max_tokens": -3})),
            Some(("max_tokens", Some("integer_below_min_value")))
        );
        assert_eq!(
            code(json!({"model": "m", "max_tokens": "lots"})),
            Some(("max_tokens", Some("invalid_type")))
        );
        assert_eq!(
            code(json!({"model": "m", "max_tokens": 1.5})),
            Some(("max_tokens", Some("invalid_type")))
        );
        assert_eq!(code(json!({"model": "m", "max_tokens": null})), None);
        assert_eq!(
            code(json!({"model": "m", "stream": false, "stream_options": {}})),
            Some(("stream_options", None))
        );
        assert_eq!(
            code(json!({"model": "m", "stream": true, "stream_options": {}})),
            None
        );
        let r = check(&json!({"model": "m", "max_completion_tokens": 0})).unwrap();
        assert_eq!(
            r.message,
            "Invalid 'max_completion_tokens': integer below minimum value. \
             Expected a value >= 1, but got 0 instead."
        );
        let r = check(&json!({"model": "gpt-5", "temperature": 0.7})).unwrap();
        assert_eq!(
            r.message,
            "Unsupported value: 'temperature' does not support 0.7 with this model. \
             Only the default (1) value is supported."
        );
    }
}
