//! The configuration contract read by hand, in serde's reading order and
//! with its messages.
//!
//! serde's derived deserializers for the contract (and the serde_json code
//! only they instantiate) were the largest single part of the `.wasm`.
//! This reader walks the document once, the way serde_json's deserializer
//! would walk it into those structs: same order, same refusals (unknown,
//! duplicate and missing fields, wrong types, integers out of range, a
//! struct written as an array with too many or too few elements), the same
//! message at the same line and column, and the same JSON path
//! `serde_path_to_error` gives. Strings and numbers are read by the hand
//! JSON reader (`crate::json::read`, held to serde_json's escapes, UTF-8
//! and number rules by its tests). When the text is not JSON, that
//! reader's parse of the document as a value names the error with
//! serde_json's message (see [`super::load`]); nothing before that point
//! can have been refused, because both read in the same order.
//!
//! The derived deserializers stay in the native test build, where
//! `contract_reads_as_serde_does` compares both on every broken variant of
//! the test configurations (locate.rs's corpus).

use super::contract::*;
use crate::json::{Map, Number, Value};

/// The bytes a JSON number starts with.
const NUMBER_STARTS: &[u8] = b"-0123456789";

/// serde_json's nesting limit: the 128th open bracket is refused.
const DEPTH_LIMIT: usize = 128;

/// Why reading stopped.
pub enum Fail {
    /// The text is not JSON here; serde_json's parse has the message.
    Syntax,
    /// The JSON does not fit the contract.
    Data(Box<Bad>),
    /// A key given twice: blamed on the struct, not under the key (as
    /// `serde_path_to_error` has it); becomes `Data` in [`Cursor::entries`].
    Duplicate(Box<Bad>),
}

/// A refusal of the contract, positioned as serde_json positions it.
pub struct Bad {
    /// Byte index serde_json's reader stood at (its `position_of_index`).
    index: usize,
    message: String,
    /// Innermost segment first.
    path: Vec<Seg>,
}

enum Seg {
    Key(String),
    Index(usize),
}

impl Bad {
    /// The path as `serde_path_to_error` prints it (`.` for the document).
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in self.path.iter().rev() {
            match seg {
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
            }
        }
        if out.is_empty() {
            out.push('.');
        }
        out
    }

    /// serde_json's message: the error, then `at line L column C` in `doc`.
    pub fn message(&self, doc: &[u8]) -> String {
        let (line, column) = crate::json::read::line_column(doc, self.index);
        format!("{} at line {line} column {column}", self.message)
    }
}

type R<T> = Result<T, Fail>;

/// Reads the whole contract from `doc` (text after the document is not
/// looked at, as before).
pub fn filter_config(doc: &[u8]) -> R<FilterConfig> {
    let mut c = Cursor {
        s: doc,
        at: 0,
        depth: 0,
    };
    FilterConfig::read(&mut c).map_err(|f| match f {
        Fail::Duplicate(bad) => Fail::Data(bad),
        f => f,
    })
}

/// A position in the document.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
    depth: usize,
}

/// How a struct was written: as an object, or (serde accepts it) as an
/// array of its fields in order; `end` is where a missing field is blamed.
struct Shape {
    name: &'static str,
    names: &'static [&'static str],
    seq: bool,
    end: usize,
}

impl Shape {
    /// `value`, or serde's refusal of a missing required field.
    fn need<T>(&self, value: Option<T>, field: &str, c: &Cursor) -> R<T> {
        match value {
            Some(v) => Ok(v),
            None if self.seq => {
                let i = self.names.iter().position(|n| *n == field).unwrap_or(0);
                Err(c.bad(
                    self.end,
                    format!(
                        "invalid length {i}, expected {} with {} elements",
                        self.name,
                        self.names.len()
                    ),
                ))
            }
            None => Err(c.bad(self.end, format!("missing field `{field}`"))),
        }
    }
}

/// A field reader: the key's name, the cursor at its value (`:` read).
type Field<'f> = dyn FnMut(&mut Cursor, &str) -> R<()> + 'f;

impl Cursor<'_> {
    fn bad(&self, index: usize, message: String) -> Fail {
        Fail::Data(Box::new(Bad {
            index,
            message,
            path: Vec::new(),
        }))
    }

    /// Skips whitespace; the byte there.
    fn ws(&mut self) -> Option<u8> {
        crate::json::read::skip_ws(self.s, &mut self.at)
    }

    /// Opens a container (serde_json's recursion check).
    fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth >= DEPTH_LIMIT {
            return Err(Fail::Syntax);
        }
        self.at += 1;
        Ok(())
    }

    /// The scalar at the cursor (string, number, literal), read by
    /// serde_json; the cursor moves past it.
    fn scalar(&mut self) -> R<Value> {
        let start = self.at;
        let mut end = start + 1;
        match self.s.get(start) {
            Some(b'"') => loop {
                match self.s.get(end) {
                    None => return Err(Fail::Syntax),
                    Some(b'"') => {
                        end += 1;
                        break;
                    }
                    Some(b'\\') => end += 2,
                    Some(_) => end += 1,
                }
            },
            Some(b'-' | b'0'..=b'9') => end = number_end(self.s, start).ok_or(Fail::Syntax)?,
            // serde_json reads the literal and stops: `truex` is a `true`.
            Some(b't' | b'n') => end = start + 4,
            Some(b'f') => end = start + 5,
            _ => return Err(Fail::Syntax),
        }
        let token = self.s.get(start..end).ok_or(Fail::Syntax)?;
        let value = Value::from_slice(token).map_err(|_| Fail::Syntax)?;
        self.at = end;
        Ok(value)
    }

    /// serde_json's "invalid type" for the value at the cursor: a scalar
    /// is read first (and blamed after it), a container at its bracket.
    fn invalid(&mut self, expected: &str) -> Fail {
        let found = match self.s.get(self.at) {
            Some(b'[') => "sequence".to_string(),
            Some(b'{') => "map".to_string(),
            _ => match self.scalar() {
                Ok(v) => unexpected(&v),
                Err(f) => return f,
            },
        };
        self.bad(
            self.at,
            format!("invalid type: {found}, expected {expected}"),
        )
    }

    /// Where serde_json blames a key the struct refuses: its `end_map`
    /// still skips the whitespace after the key and eats a `}` there.
    fn after_refused_key(&mut self) -> usize {
        match self.ws() {
            Some(b'}') => self.at + 1,
            _ => self.at,
        }
    }

    /// The scalar at the cursor when its first byte is one of `starts`
    /// (the kind `expected` names), else serde's "invalid type".
    fn scalar_of(&mut self, starts: &[u8], expected: &str) -> R<Value> {
        match self.ws() {
            Some(b) if starts.contains(&b) => self.scalar(),
            _ => Err(self.invalid(expected)),
        }
    }

    /// Whether the value at the cursor is `null` (then read): once for
    /// every `Option`, not inlined into each.
    #[inline(never)]
    fn null(&mut self) -> R<bool> {
        if self.ws() != Some(b'n') {
            return Ok(false);
        }
        match self.scalar()? {
            Value::Null => Ok(true),
            _ => Err(Fail::Syntax),
        }
    }

    /// `:` after a key.
    fn colon(&mut self) -> R<()> {
        if self.ws() != Some(b':') {
            return Err(Fail::Syntax);
        }
        self.at += 1;
        Ok(())
    }

    /// The elements of the array at the cursor (`[` not yet read), each
    /// given to `f` with its index; `limit` stops before the rest of a
    /// struct written as an array.
    fn elements(&mut self, limit: usize, f: &mut dyn FnMut(&mut Cursor, usize) -> R<()>) -> R<()> {
        self.enter()?;
        let mut i = 0;
        loop {
            if i == limit && limit > 0 {
                // serde_json's `end_seq` after a struct's last field.
                match self.ws() {
                    Some(b']') => break,
                    None => return Err(Fail::Syntax),
                    Some(b',') => {
                        self.at += 1;
                        if self.ws() == Some(b']') {
                            return Err(Fail::Syntax);
                        }
                    }
                    Some(_) => {}
                }
                return Err(self.bad(self.at + 1, "trailing characters".into()));
            }
            match self.ws() {
                Some(b']') => break,
                Some(b',') if i > 0 => {
                    self.at += 1;
                    if matches!(self.ws(), Some(b']') | None) {
                        return Err(Fail::Syntax);
                    }
                }
                Some(_) if i == 0 => {}
                _ => return Err(Fail::Syntax),
            }
            f(self, i).map_err(|e| within(e, Seg::Index(i)))?;
            i += 1;
        }
        self.at += 1;
        self.depth -= 1;
        Ok(())
    }

    /// The entries of the object at the cursor (`{` not yet read): `f`
    /// gets each key with the cursor right after it.
    fn entries(&mut self, f: &mut Field) -> R<()> {
        self.enter()?;
        let mut first = true;
        loop {
            match self.ws() {
                Some(b'}') => break,
                Some(b',') if !first => {
                    self.at += 1;
                    if self.ws() != Some(b'"') {
                        return Err(Fail::Syntax);
                    }
                }
                Some(b'"') if first => {}
                _ => return Err(Fail::Syntax),
            }
            first = false;
            let Value::String(key) = self.scalar()? else {
                return Err(Fail::Syntax);
            };
            match f(self, &key) {
                Ok(()) => {}
                Err(Fail::Duplicate(bad)) => return Err(Fail::Data(bad)),
                Err(e) => return Err(within(e, Seg::Key(key))),
            }
        }
        self.at += 1;
        self.depth -= 1;
        Ok(())
    }

    /// A struct of the contract: its fields given to `read` by name, in the
    /// document's order, unknown and repeated ones refused after their key.
    fn object(
        &mut self,
        name: &'static str,
        names: &'static [&'static str],
        read: &mut Field,
    ) -> R<Shape> {
        let seq = match self.ws() {
            Some(b'{') => {
                let mut seen = 0u64;
                self.entries(&mut |c, key| {
                    let Some(i) = names.iter().position(|n| *n == key) else {
                        let at = c.after_refused_key();
                        return Err(c.bad(at, unknown_field(key, names)));
                    };
                    if seen & (1 << i) != 0 {
                        let at = c.after_refused_key();
                        return Err(Fail::Duplicate(Box::new(Bad {
                            index: at,
                            message: format!("duplicate field `{key}`"),
                            path: Vec::new(),
                        })));
                    }
                    seen |= 1 << i;
                    c.colon()?;
                    read(c, key)
                })?;
                false
            }
            Some(b'[') => {
                self.elements(names.len(), &mut |c, i| read(c, names[i]))?;
                true
            }
            _ => return Err(self.invalid(name)),
        };
        Ok(Shape {
            name,
            names,
            seq,
            end: self.at,
        })
    }

    /// An unsigned integer up to `max`, refused as serde refuses it.
    fn unsigned(&mut self, max: u64, expected: &str) -> R<u64> {
        let Value::Number(n) = self.scalar_of(NUMBER_STARTS, expected)? else {
            return Err(Fail::Syntax);
        };
        match n {
            Number::Pos(v) if v <= max => Ok(v),
            Number::Pos(_) | Number::Neg(_) => Err(self.bad(
                self.at,
                format!(
                    "invalid value: integer `{}`, expected {expected}",
                    number_text(n)
                ),
            )),
            Number::Float(_) => Err(self.bad(
                self.at,
                format!(
                    "invalid type: {}, expected {expected}",
                    unexpected(&Value::Number(n))
                ),
            )),
        }
    }
}

/// The end of the number at `start`, read by JSON's grammar as serde_json
/// reads it (it stops where the grammar does); `None` where serde_json
/// refuses the number itself.
fn number_end(s: &[u8], start: usize) -> Option<usize> {
    let digit = |i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    let digits = |mut i: usize| {
        while digit(i) {
            i += 1;
        }
        i
    };
    let mut i = start + usize::from(s.get(start) == Some(&b'-'));
    match s.get(i) {
        // One leading zero only.
        Some(b'0') if digit(i + 1) => return None,
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i),
        _ => return None,
    }
    if s.get(i) == Some(&b'.') {
        if !digit(i + 1) {
            return None;
        }
        i = digits(i + 1);
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digit(i) {
            return None;
        }
        i = digits(i);
    }
    Some(i)
}

/// Adds the segment a failure was found under.
fn within(fail: Fail, seg: Seg) -> Fail {
    match fail {
        Fail::Data(mut bad) => {
            bad.path.push(seg);
            Fail::Data(bad)
        }
        f => f,
    }
}

/// serde's `Unexpected` for a scalar.
fn unexpected(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean `{b}`"),
        // serde_json prints integers with itoa and floats with zmij, as
        // `Number`'s Display does.
        Value::Number(n @ Number::Float(_)) => format!("floating point `{}`", number_text(*n)),
        Value::Number(n) => format!("integer `{}`", number_text(*n)),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "sequence".into(),
        Value::Object(_) => "map".into(),
    }
}

/// A number as serde_json's `Number` displays it.
fn number_text(n: Number) -> String {
    let mut out = Vec::new();
    crate::json::push_number(&mut out, n);
    String::from_utf8_lossy(&out).into_owned()
}

/// serde's message for a key no field has.
fn unknown_field(key: &str, names: &[&str]) -> String {
    let mut out = format!("unknown field `{key}`, ");
    match names {
        [] => out.push_str("there are no fields"),
        [a] => out.push_str(&format!("expected `{a}`")),
        [a, b] => out.push_str(&format!("expected `{a}` or `{b}`")),
        _ => {
            out.push_str("expected one of ");
            for (i, n) in names.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push('`');
                out.push_str(n);
                out.push('`');
            }
        }
    }
    out
}

/// A value of the contract.
trait Read: Sized {
    fn read(c: &mut Cursor) -> R<Self>;
}

impl Read for String {
    fn read(c: &mut Cursor) -> R<Self> {
        match c.scalar_of(b"\"", "a string")? {
            Value::String(s) => Ok(s),
            _ => Err(Fail::Syntax),
        }
    }
}

impl Read for bool {
    fn read(c: &mut Cursor) -> R<Self> {
        match c.scalar_of(b"tf", "a boolean")? {
            Value::Bool(b) => Ok(b),
            _ => Err(Fail::Syntax),
        }
    }
}

impl Read for u64 {
    fn read(c: &mut Cursor) -> R<Self> {
        c.unsigned(u64::MAX, "u64")
    }
}

impl Read for u32 {
    fn read(c: &mut Cursor) -> R<Self> {
        c.unsigned(u32::MAX.into(), "u32").map(|v| v as u32)
    }
}

impl Read for f64 {
    fn read(c: &mut Cursor) -> R<Self> {
        match c.scalar_of(NUMBER_STARTS, "f64")? {
            n @ Value::Number(_) => Ok(n.as_f64().unwrap_or_default()),
            _ => Err(Fail::Syntax),
        }
    }
}

impl<T: Read> Read for Option<T> {
    fn read(c: &mut Cursor) -> R<Self> {
        if c.null()? {
            return Ok(None);
        }
        T::read(c).map(Some)
    }
}

impl<T: Read> Read for Vec<T> {
    fn read(c: &mut Cursor) -> R<Self> {
        if c.ws() != Some(b'[') {
            return Err(c.invalid("a sequence"));
        }
        let mut out = Vec::new();
        c.elements(usize::MAX, &mut |c, _| {
            out.push(T::read(c)?);
            Ok(())
        })?;
        Ok(out)
    }
}

impl<T: Read> Read for Map<T> {
    fn read(c: &mut Cursor) -> R<Self> {
        if c.ws() != Some(b'{') {
            return Err(c.invalid("a map"));
        }
        let mut out = Map::new();
        c.entries(&mut |c, key| {
            c.colon()?;
            out.insert(key.to_string(), T::read(c)?);
            Ok(())
        })?;
        Ok(out)
    }
}

/// The free-form value (an output schema), nested as deep as serde_json
/// allows (the limit counts from the document's top).
impl Read for Value {
    fn read(c: &mut Cursor) -> R<Self> {
        match c.ws() {
            Some(b'[') => {
                let mut out = Vec::new();
                c.elements(usize::MAX, &mut |c, _| {
                    out.push(Value::read(c)?);
                    Ok(())
                })?;
                Ok(Value::Array(out))
            }
            Some(b'{') => {
                let mut out = Map::new();
                c.entries(&mut |c, key| {
                    c.colon()?;
                    out.insert(key.to_string(), Value::read(c)?);
                    Ok(())
                })?;
                Ok(Value::Object(out))
            }
            _ => c.scalar(),
        }
    }
}

/// `impl Read` for a struct of the contract: each field, with `as "json"`
/// where its JSON name is not the field's, and its default unless it is
/// required.
macro_rules! contract {
    ($ty:ident { $($field:ident $(as $json:literal)? $(= $default:expr)?),* $(,)? }) => {
        impl Read for $ty {
            #[allow(unused_variables)]
            fn read(c: &mut Cursor) -> R<Self> {
                const NAMES: &[&str] = &[$(contract!(@name $field $($json)?)),*];
                $(let mut $field = None;)*
                let shape = c.object(
                    concat!("struct ", stringify!($ty)),
                    NAMES,
                    &mut |c: &mut Cursor, name: &str| {
                        match name {
                            $(contract!(@name $field $($json)?) => $field = Some(Read::read(c)?),)*
                            _ => {}
                        }
                        Ok(())
                    },
                )?;
                Ok($ty {
                    $($field: contract!(@take shape c $field (contract!(@name $field $($json)?)) $(= $default)?),)*
                })
            }
        }
    };
    (@name $field:ident) => {
        stringify!($field)
    };
    (@name $field:ident $json:literal) => {
        $json
    };
    (@take $shape:ident $c:ident $field:ident $json:tt) => {
        $shape.need($field, $json, $c)?
    };
    (@take $shape:ident $c:ident $field:ident $json:tt = $default:expr) => {
        $field.unwrap_or_else(|| $default)
    };
}

contract!(FilterConfig {
    route_header = default_route_header(),
    default_cluster,
    expose_headers = default_true(),
    override_ as "override" = None,
    max_body_bytes = default_max_body_bytes(),
    experiments = Vec::new(),
    pricing = Map::new(),
    refusal_phrases = Vec::new(),
    redaction = None,
    telemetry = default_true(),
    tracing = false,
    budgets = None,
    guardrails = None,
});

contract!(BudgetsConfig {
    max_input_tokens = None,
    max_output_tokens = None,
    quotas = Vec::new(),
    timeout_ms = None,
});

contract!(QuotaConfig {
    key,
    tokens_per_minute,
});

contract!(GuardrailsConfig {
    moderation = None,
    tools = None,
    response_schema = None,
    review = None,
});

contract!(ModerationConfig {
    request_patterns = Vec::new(),
    response_patterns = Vec::new(),
});

contract!(ToolsConfig {
    allow,
    on_violation = default_block(),
});

contract!(ResponseSchemaConfig {
    on_fail = default_count(),
    schema = None,
});

contract!(ReviewConfig {
    cluster,
    sample_rate = 0.0,
    always = Vec::new(),
    timeout_ms = default_review_timeout(),
});

contract!(RedactionConfig {
    request = default_true(),
    response = default_true(),
    detectors = None,
    custom = Vec::new(),
    replacement = default_replacement(),
    hash_key = None,
    on_error = default_on_error(),
});

contract!(CustomPatternConfig { name, pattern });

contract!(PriceConfig {
    input_per_mtok,
    output_per_mtok,
    cached_input_per_mtok = None,
    cache_write_per_mtok = None,
});

contract!(OverrideConfig {
    variant_header,
    token_header,
    token,
});

contract!(ExperimentConfig {
    id,
    enabled = default_true(),
    salt = None,
    match_ as "match" = MatchConfig::default(),
    sticky_keys,
    control = None,
    budgets = None,
    rollout = None,
    circuit_breaker = None,
    slo = None,
    fallback = None,
    unit_id_key = None,
    shadow = None,
    variants,
});

contract!(ShadowConfig {
    variants,
    sample_rate = None,
    sink_cluster = None,
    max_tokens_per_minute = None,
    timeout_ms = None,
});

contract!(FallbackConfig {
    on,
    max_attempts = default_attempts(),
});

contract!(BreakerConfig {
    consecutive_failures,
    failure_rate,
    window_s,
    min_requests,
    open_s,
});

contract!(SloConfig {
    window_s,
    min_requests,
    max_error_rate = None,
    max_p95_latency_ms = None,
    max_fallback_rate = None,
    min_schema_pass_rate = None,
});

contract!(RolloutConfig {
    start_unix_s,
    steps,
});

contract!(RolloutStepConfig {
    weight = None,
    shadow_rate = None,
    hold_s,
});

contract!(MatchConfig {
    path_prefix = None,
    headers = Map::new(),
});

contract!(VariantConfig {
    name,
    weight,
    cluster,
    model = None,
    prompt_version = None,
    rag_index_version = None,
    timeout_ms = None,
    output_cap_param = None,
    credentials = None,
});

#[cfg(test)]
mod tests {
    use super::super::locate::tests::{corpus, FULL, SMALL};
    use super::*;

    /// serde's derived reading, as the filter did it before this reader.
    fn reference(doc: &[u8]) -> Result<String, (String, String)> {
        let de = &mut serde_json::Deserializer::from_slice(doc);
        match serde_path_to_error::deserialize::<_, FilterConfig>(de) {
            Ok(c) => Ok(format!("{c:?}")),
            Err(e) => {
                let path = e.path().to_string();
                let path = if path.is_empty() || path == "?" {
                    ".".to_string()
                } else {
                    path
                };
                Err((path, e.into_inner().to_string()))
            }
        }
    }

    /// This reader, with `load`'s fallback to serde_json for syntax.
    fn ours(doc: &[u8]) -> Result<String, (String, String)> {
        match filter_config(doc) {
            Ok(c) => Ok(format!("{c:?}")),
            Err(Fail::Data(bad) | Fail::Duplicate(bad)) => Err((bad.path(), bad.message(doc))),
            Err(Fail::Syntax) => {
                let e = super::super::syntax_error(doc);
                Err((e.path, e.message))
            }
        }
    }

    #[test]
    fn contract_reads_as_serde_does() {
        let compact = serde_json::from_str::<serde_json::Value>(FULL)
            .unwrap_or_default()
            .to_string();
        for base in [FULL, SMALL, compact.as_str()] {
            let mut failures = Vec::new();
            let (mut refused, mut read) = (0, 0);
            corpus(base, &mut |doc| {
                let want = reference(doc);
                let got = ours(doc);
                match &want {
                    Ok(_) => read += 1,
                    Err(_) => refused += 1,
                }
                if want != got && failures.len() < 20 {
                    failures.push(format!("want {want:?}\n  got  {got:?}"));
                }
            });
            assert!(failures.is_empty(), "{}", failures.join("\n"));
            // The corpus reaches both sides: documents read and refused.
            assert!(refused > 5_000 && read > 500, "{refused} {read}");
        }
    }

    /// The refusal of `doc`: its path and message (empty when read).
    fn refusal(doc: &[u8]) -> (String, String) {
        match filter_config(doc) {
            Err(Fail::Data(bad) | Fail::Duplicate(bad)) => (bad.path(), bad.message(doc)),
            _ => (String::new(), String::new()),
        }
    }

    #[test]
    fn messages_and_positions_are_serdes() {
        let doc = b"{\"default_cluster\": \"a\",\n \"max_body_bytes\": -1}";
        assert_eq!(
            refusal(doc),
            (
                "max_body_bytes".to_string(),
                "invalid value: integer `-1`, expected u64 at line 2 column 21".to_string()
            )
        );
        let doc =
            br#"{"experiments": [{"id": "e", "sticky_keys": [], "variants": [], "sallt": 1}]}"#;
        let (path, message) = refusal(doc);
        assert_eq!(path, "experiments[0].sallt");
        assert!(
            message.starts_with("unknown field `sallt`, expected one of `id`, `enabled`"),
            "{message}"
        );
        assert_eq!(
            refusal(br#"{"experiments": []}"#),
            (
                ".".to_string(),
                "missing field `default_cluster` at line 1 column 19".to_string()
            )
        );
    }
}
