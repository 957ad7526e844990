//! The JSON path of a configuration parse error, found after the fact.
//!
//! When the configuration is not JSON, its parse as a value (the hand
//! reader's, with serde_json's errors and positions) stops at an error;
//! this module walks the document again, untyped, up to that position and
//! names the value there. The path is the one
//! `serde_path_to_error` used to report (same segments, same `?` for a key
//! that could not be read), without that crate's wrapper around every
//! deserializer and visitor, which cost 64 KB of the 788 KB wasm module.
//!
//! It serves the errors of a document that is not JSON
//! (`super::syntax_error`); the contract's refusals are located by
//! `super::read` as it reads. The walk follows serde_json's reading order,
//! and each kind of error is matched where serde_json can raise it:
//! - a syntax error is raised at the byte it blames (`column` points at it);
//! - an end-of-input error is raised in the state the walk reaches at the end.

use crate::json::read::Code;

/// Deepest nesting serde_json accepts (its recursion limit) plus margin.
const MAX_DEPTH: usize = 130;

/// What the error says, as far as locating it goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The input ended (`EOF while parsing ...`).
    Eof,
    /// A malformed number (`invalid number`, `number out of range`).
    Number,
    /// A misspelt `null`/`true`/`false` (`expected ident`).
    Ident,
    /// A malformed string (escapes, control characters, UTF-8).
    Str,
    /// `recursion limit exceeded`, blamed on an opening bracket.
    Recursion,
    /// Any other syntax error, at a byte the walk cannot accept either.
    Structural,
}

impl Want {
    /// `None` for an error that is not about the text (a type's refusal).
    fn of(code: Code) -> Option<Want> {
        Some(match code {
            Code::EofList | Code::EofObject | Code::EofString | Code::EofValue => Want::Eof,
            Code::Data => return None,
            Code::Number | Code::OutOfRange => Want::Number,
            Code::Ident => Want::Ident,
            Code::Escape | Code::CodePoint | Code::Control | Code::LoneSurrogate | Code::HexEnd => {
                Want::Str
            }
            Code::Recursion => Want::Recursion,
            _ => Want::Structural,
        })
    }
}

/// One step of a path.
#[derive(Clone, Copy)]
enum Seg {
    /// An object key: the byte range of its JSON string, quotes included.
    Key(usize, usize),
    /// An array index.
    Index(usize),
    /// A key that could not be read.
    Unknown,
}

/// The walk stopped: at the error (with its path), or lost.
enum Stop {
    Found(String),
    Lost,
}

type Step = Result<(), Stop>;

struct Walk<'a> {
    s: &'a [u8],
    pos: usize,
    /// serde_json's reported position as a byte offset.
    at: usize,
    want: Want,
    path: Vec<Seg>,
}

/// The path of the value the error `code` at `line` and `column` (of
/// reading `doc` as serde_json reads a `Value`) is about:
/// `experiments[0].variants[1].weight`, `pricing.m.x`, `?` for a key that
/// could not be read at the top level, and an empty string for the
/// document itself.
pub fn error_path(doc: &[u8], line: usize, column: usize, code: Code) -> String {
    let (Some(at), Some(want)) = (offset(doc, line, column), Want::of(code)) else {
        return String::new();
    };
    let mut w = Walk {
        s: doc,
        pos: 0,
        at,
        want,
        path: Vec::new(),
    };
    match w.value(0) {
        Err(Stop::Found(path)) => path,
        Ok(()) | Err(Stop::Lost) => String::new(),
    }
}

/// Byte offset of serde_json's `line`/`column` (1-based line, column = bytes
/// from the start of the line).
fn offset(doc: &[u8], line: usize, column: usize) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let mut start = 0;
    for _ in 1..line {
        start += memchr::memchr(b'\n', doc.get(start..)?)? + 1;
    }
    Some(start + column).filter(|&o| o <= doc.len())
}

impl Walk<'_> {
    /// The byte an error at `at` blames.
    fn blamed(&self) -> usize {
        self.at.wrapping_sub(1)
    }

    fn found(&self, last: Option<Seg>) -> Stop {
        let mut out = String::new();
        for (n, seg) in self.path.iter().chain(last.as_ref()).enumerate() {
            match *seg {
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                    continue;
                }
                _ if n > 0 => out.push('.'),
                _ => {}
            }
            match *seg {
                Seg::Key(a, b) => {
                    let raw = &self.s[a..b];
                    match crate::json::read::from_slice::<String>(raw) {
                        Ok(key) => out.push_str(&key),
                        Err(_) => out.push_str(&String::from_utf8_lossy(raw)),
                    }
                }
                Seg::Unknown => out.push('?'),
                Seg::Index(_) => {}
            }
        }
        Stop::Found(out)
    }

    /// Stops with the current path (plus `last`) when `hit`, else lost.
    fn stop_if(&self, hit: bool, last: Option<Seg>) -> Stop {
        if hit {
            self.found(last)
        } else {
            Stop::Lost
        }
    }

    fn eof(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    /// A value at the current path.
    fn value(&mut self, depth: usize) -> Step {
        self.ws();
        let Some(&c) = self.s.get(self.pos) else {
            return Err(self.stop_if(self.want == Want::Eof, None));
        };
        let start = self.pos;
        match c {
            b'{' | b'[' => {
                if self.want == Want::Recursion && self.blamed() == start {
                    return Err(self.found(None));
                }
                if depth > MAX_DEPTH {
                    return Err(Stop::Lost);
                }
                if c == b'{' {
                    self.object(depth)?;
                } else {
                    self.array(depth)?;
                }
            }
            b'"' => self.string(None)?,
            b'-' | b'0'..=b'9' => self.number()?,
            b'n' | b't' | b'f' => self.ident()?,
            _ => {
                return Err(self.stop_if(
                    self.want == Want::Structural && self.blamed() == start,
                    None,
                ))
            }
        }
        Ok(())
    }

    /// A string token; `last` is the segment to blame when it is a key.
    fn string(&mut self, last: Option<Seg>) -> Step {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.s.get(self.pos) {
                None => {
                    let hit = self.want == Want::Eof
                        || (self.want == Want::Str && self.blamed() >= start);
                    return Err(self.stop_if(hit, last));
                }
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                // serde_json reads the four bytes of a `\u` escape blindly.
                Some(b'\\') if self.s.get(self.pos + 1) == Some(&b'u') => self.pos += 6,
                Some(b'\\') => self.pos += 2,
                Some(_) => self.pos += 1,
            }
        }
        if self.want == Want::Str && (start..self.pos).contains(&self.blamed()) {
            return Err(self.found(last));
        }
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let from = self.pos;
        while let Some(b'0'..=b'9') = self.s.get(self.pos) {
            self.pos += 1;
        }
        self.pos - from
    }

    /// A number, by JSON's grammar; serde_json blames a malformed one on a
    /// byte inside it or on the byte right after it.
    fn number(&mut self) -> Step {
        let start = self.pos;
        let mut complete = true;
        if self.s.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.s.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => complete = false,
        }
        if complete && self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            complete = self.digits() > 0;
        }
        if complete && matches!(self.s.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.s.get(self.pos) {
                self.pos += 1;
            }
            complete = self.digits() > 0;
        }
        if self.want == Want::Number && (start..=self.pos).contains(&self.blamed()) {
            return Err(self.found(None));
        }
        if complete {
            Ok(())
        } else {
            Err(self.stop_if(self.want == Want::Eof && self.eof(), None))
        }
    }

    /// `null`, `true` or `false`.
    fn ident(&mut self) -> Step {
        let word: &[u8] = match self.s[self.pos] {
            b'n' => b"null",
            b't' => b"true",
            _ => b"false",
        };
        for &expected in word {
            match self.s.get(self.pos) {
                None => return Err(self.stop_if(self.want == Want::Eof, None)),
                Some(&c) if c != expected => {
                    let hit = self.want == Want::Ident && self.blamed() == self.pos;
                    return Err(self.stop_if(hit, None));
                }
                Some(_) => self.pos += 1,
            }
        }
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Step {
        self.pos += 1;
        let mut first = true;
        loop {
            self.ws();
            let Some(&c) = self.s.get(self.pos) else {
                return Err(self.stop_if(self.want == Want::Eof, Some(Seg::Unknown)));
            };
            if c == b'}' {
                self.pos += 1;
                return Ok(());
            }
            if !first {
                if c != b',' {
                    let hit = self.want == Want::Structural && self.blamed() == self.pos;
                    return Err(self.stop_if(hit, Some(Seg::Unknown)));
                }
                self.pos += 1;
                self.ws();
                if self.eof() {
                    return Err(self.stop_if(self.want == Want::Eof, Some(Seg::Unknown)));
                }
            }
            first = false;
            if self.s[self.pos] != b'"' {
                // `key must be a string`, or `trailing comma` before `}`.
                let hit = self.want == Want::Structural && self.blamed() == self.pos;
                return Err(self.stop_if(hit, Some(Seg::Unknown)));
            }
            let key_start = self.pos;
            self.string(Some(Seg::Unknown))?;
            let key = Seg::Key(key_start, self.pos);
            self.ws();
            match self.s.get(self.pos) {
                None => return Err(self.stop_if(self.want == Want::Eof, None)),
                Some(b':') => self.pos += 1,
                Some(_) => {
                    let hit = self.want == Want::Structural && self.blamed() == self.pos;
                    return Err(self.stop_if(hit, None));
                }
            }
            self.path.push(key);
            self.value(depth + 1)?;
            self.path.pop();
        }
    }

    fn array(&mut self, depth: usize) -> Step {
        self.pos += 1;
        let mut index = 0;
        loop {
            self.ws();
            let Some(&c) = self.s.get(self.pos) else {
                return Err(self.stop_if(self.want == Want::Eof, None));
            };
            if c == b']' {
                self.pos += 1;
                return Ok(());
            }
            if index > 0 {
                if c != b',' {
                    // `expected `,` or `]``.
                    let hit = self.want == Want::Structural && self.blamed() == self.pos;
                    return Err(self.stop_if(hit, None));
                }
                self.pos += 1;
                self.ws();
                let Some(&c) = self.s.get(self.pos) else {
                    return Err(self.stop_if(self.want == Want::Eof, None));
                };
                if c == b']' {
                    // `trailing comma`.
                    let hit = self.want == Want::Structural && self.blamed() == self.pos;
                    return Err(self.stop_if(hit, None));
                }
            }
            self.path.push(Seg::Index(index));
            self.value(depth + 1)?;
            self.path.pop();
            index += 1;
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    //! Differential tests: on every broken variant of a few configurations,
    //! serde_json's parse of the document fails where `serde_path_to_error`
    //! says, and the walk finds that path. (The contract's own refusals are
    //! compared with serde's by `super::super::read`'s tests, on this corpus.)

    use serde_json::Value;

    /// Every struct of the contract, maps, a free-form schema, and a key
    /// with escapes.
    pub(in crate::config) const FULL: &str = r#"{
  "route_header": "x-llm-cluster", "default_cluster": "model_a", "expose_headers": true,
  "override": {"variant_header": "x-v", "token_header": "x-t", "token": "change-me"},
  "max_body_bytes": 1048576,
  "experiments": [{
    "id": "chat", "enabled": true, "salt": "s",
    "match": {"path_prefix": "/v1/chat", "headers": {"x-tenant": "acme", "x-\u0041\n": "b"}},
    "sticky_keys": ["x-user-id", "x-org-id"], "control": "control",
    "budgets": {"max_input_tokens": 100, "max_output_tokens": 50, "quotas": [{"key": "x-org-id", "tokens_per_minute": 1000}], "timeout_ms": 3000},
    "rollout": {"start_unix_s": 1700000000, "steps": [{"weight": 1.5, "hold_s": 60}, {"weight": 50, "hold_s": 0}]},
    "circuit_breaker": {"consecutive_failures": 5, "failure_rate": 0.5, "window_s": 60, "min_requests": 10, "open_s": 30},
    "slo": {"window_s": 60, "min_requests": 10, "max_error_rate": 0.1, "max_p95_latency_ms": 2000, "max_fallback_rate": null, "min_schema_pass_rate": 0.9},
    "fallback": {"on": ["5xx", "timeout"], "max_attempts": 1},
    "variants": [
      {"name": "control", "weight": 90, "cluster": "model_a", "model": "gpt-4o-mini", "prompt_version": "p12", "rag_index_version": "r7", "timeout_ms": 100, "output_cap_param": "max_tokens"},
      {"name": "candidate", "weight": 10, "cluster": "model_b"}
    ]
  }],
  "pricing": {"gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "cached_input_per_mtok": 0.075}, "m\"q": {"input_per_mtok": 1, "output_per_mtok": 2}},
  "refusal_phrases": ["i can't", "i cannot"],
  "redaction": {"request": true, "response": false, "detectors": ["email", "iban"], "custom": [{"name": "ticket", "pattern": "T-[0-9]+"}], "replacement": "hash", "hash_key": "0123456789abcdef", "on_error": "pass"},
  "telemetry": true,
  "budgets": {"max_input_tokens": 1000, "quotas": []},
  "guardrails": {
    "moderation": {"request_patterns": ["(?i)bomb"], "response_patterns": []},
    "tools": {"allow": ["get_weather"], "on_violation": "strip"},
    "response_schema": {"on_fail": "block", "schema": {"type": "object", "required": ["a"], "properties": {"a": {"type": ["string", null, 1.5e3, true, false, -0, {}, []]}}}},
    "review": {"cluster": "review", "sample_rate": 0.01, "always": ["refusal"], "timeout_ms": 2000}
  }
}"#;

    pub(in crate::config) const SMALL: &str = r#"{"default_cluster":"a","experiments":[{"id":"e","sticky_keys":["x"],"variants":[{"name":"c","weight":100,"cluster":"a"}]}],"pricing":{"m":{"input_per_mtok":1,"output_per_mtok":2}}}"#;

    /// The path as `load` reports it: the document itself and an unreadable
    /// top-level key are both `.`.
    fn shown(path: String) -> String {
        if path.is_empty() || path == "?" || path == "." {
            ".".to_string()
        } else {
            path
        }
    }

    fn reference(doc: &[u8]) -> Option<(String, String)> {
        let de = &mut serde_json::Deserializer::from_slice(doc);
        match serde_path_to_error::deserialize::<_, Value>(de) {
            Ok(_) => None,
            Err(e) => Some((shown(e.path().to_string()), e.into_inner().to_string())),
        }
    }

    /// The hand reader's refusal and the walk's path, as `load` reports
    /// a document that is not JSON.
    fn ours(doc: &[u8]) -> Option<(String, String)> {
        match crate::json::read::prefix_or_failure::<crate::json::Value>(doc) {
            Ok(_) => None,
            Err(f) => {
                let e = crate::config::syntax_error_of(doc, f);
                Some((shown(e.path), e.message))
            }
        }
    }

    /// Compares on `doc`; returns whether it failed to parse.
    fn check(doc: &[u8], failures: &mut Vec<String>) -> bool {
        let want = reference(doc);
        let got = ours(doc);
        if want != got && failures.len() < 20 {
            failures.push(format!(
                "{:?}\n  want {want:?}\n  got  {got:?}",
                String::from_utf8_lossy(doc)
            ));
        }
        want.is_some()
    }

    /// Byte ranges of every value in `doc` (by serde_json, on the valid base).
    fn values(doc: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for start in 0..doc.len() {
            if !matches!(
                doc[start],
                b'"' | b'{' | b'[' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
            ) {
                continue;
            }
            let before = doc[..start].iter().rev().find(|b| !b" \n\t\r".contains(b));
            if !matches!(before, None | Some(b':' | b'[' | b',')) {
                continue;
            }
            let mut it = serde_json::Deserializer::from_slice(&doc[start..])
                .into_iter::<serde::de::IgnoredAny>();
            if let Some(Ok(_)) = it.next() {
                out.push((start, start + it.byte_offset()));
            }
        }
        out
    }

    const BYTES: &[u8] = b"\",:{}[]x1-.\\ n\x01\x000eE+t\xff";

    const VALUES: &[&str] = &[
        "\"s\"",
        "\"\"",
        "1",
        "0",
        "1.5",
        "-1",
        "1e400",
        "99999999999999999999",
        "4294967296",
        "true",
        "null",
        "{}",
        "[]",
        "[1]",
        "[\"a\"]",
        "{\"z\":1}",
        "{\"name\":\"n\"}",
        "[\"a\",\"b\",\"c\"]",
        "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\"]",
        "[1,2]",
        "[\"x\",1,\"y\"]",
        "\"\\uD800\"",
        "\"\\u12\"",
        "\"\\q\"",
        "\"\u{1}\"",
        "01",
        "1.",
        "-",
        "nul",
        "tru ",
    ];

    fn run(base: &str) -> (usize, Vec<String>) {
        assert!(
            reference(base.as_bytes()).is_none(),
            "{:?}",
            reference(base.as_bytes())
        );
        let mut failures = Vec::new();
        let mut failing = 0;
        corpus(base, &mut |doc| {
            if check(doc, &mut failures) {
                failing += 1;
            }
        });
        (failing, failures)
    }

    /// Every broken variant of `base` the tests try, given to `visit`:
    /// cuts, byte edits, values replaced and repeated, keys renamed,
    /// repeated and removed, random double edits, deep nesting.
    pub(in crate::config) fn corpus(base: &str, visit: &mut dyn FnMut(&[u8])) {
        let base = base.as_bytes();
        let mut failures = ();
        let mut try_doc = |doc: Vec<u8>, _: &mut ()| visit(&doc);
        for cut in 0..base.len() {
            try_doc(base[..cut].to_vec(), &mut failures);
            let mut d = base.to_vec();
            d.remove(cut);
            try_doc(d, &mut failures);
            for &b in BYTES {
                let mut d = base.to_vec();
                d.insert(cut, b);
                try_doc(d, &mut failures);
                let mut d = base.to_vec();
                d[cut] = b;
                try_doc(d, &mut failures);
            }
        }
        let spans = values(base);
        for &(a, b) in &spans {
            for v in VALUES {
                let mut d = base[..a].to_vec();
                d.extend_from_slice(v.as_bytes());
                d.extend_from_slice(&base[b..]);
                try_doc(d, &mut failures);
            }
            // The value again after itself, in a list or an object.
            let mut d = base[..b].to_vec();
            d.extend_from_slice(b", ");
            d.extend_from_slice(&base[a..]);
            try_doc(d, &mut failures);
        }
        // Keys: renamed, duplicated, removed.
        for &(a, b) in &spans {
            if base[a] != b'"' {
                continue;
            }
            let after = base[b..].iter().find(|c| !b" \n\t\r".contains(c));
            if after != Some(&b':') {
                continue;
            }
            let Some(&(_, vend)) = spans.iter().find(|s| s.0 > b) else {
                continue;
            };
            let mut d = base[..b - 1].to_vec();
            d.extend_from_slice(b"x");
            d.extend_from_slice(&base[b - 1..]);
            try_doc(d, &mut failures);
            let mut d = base[..vend].to_vec();
            d.extend_from_slice(b", ");
            d.extend_from_slice(&base[a..]);
            try_doc(d, &mut failures);
            let mut d = base[..a].to_vec();
            d.extend_from_slice(&base[vend..]);
            try_doc(d, &mut failures);
        }
        // Two edits at once, drawn by a fixed xorshift.
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = |n: usize| {
            crate::testing::xorshift(&mut seed);
            (seed % n as u64) as usize
        };
        for _ in 0..4000 {
            let mut d = base.to_vec();
            for _ in 0..2 {
                let (a, b) = spans[next(spans.len())];
                if b > d.len() {
                    continue;
                }
                match next(4) {
                    0 => {
                        let v = VALUES[next(VALUES.len())];
                        d.splice(a..b, v.bytes());
                    }
                    1 => {
                        let at = next(d.len());
                        d.insert(at, BYTES[next(BYTES.len())]);
                    }
                    2 => {
                        let at = next(d.len());
                        d.remove(at);
                    }
                    _ => d.truncate(b),
                }
            }
            try_doc(d, &mut failures);
        }
        // Deep nesting, inside the free-form schema and outside it.
        for depth in [120, 126, 127, 128, 129, 200] {
            let deep = "[".repeat(depth) + &"]".repeat(depth);
            try_doc(
                String::from_utf8_lossy(base)
                    .replacen(
                        "{\"type\": \"object\"",
                        &format!("{{\"d\": {deep}, \"type\": \"object\""),
                        1,
                    )
                    .into_bytes(),
                &mut failures,
            );
            try_doc(
                String::from_utf8_lossy(base)
                    .replacen("\"telemetry\": true", &format!("\"telemetry\": {deep}"), 1)
                    .into_bytes(),
                &mut failures,
            );
        }
    }

    #[test]
    fn paths_match_serde_path_to_error_on_broken_configs() {
        for base in [FULL, SMALL] {
            let (failing, failures) = run(base);
            assert!(failures.is_empty(), "{}", failures.join("\n"));
            assert!(failing > 5_000, "{failing}");
        }
    }

    #[test]
    fn pretty_and_compact_layouts_locate_the_same() {
        let compact: serde_json::Value = serde_json::from_str(FULL).unwrap_or_default();
        let compact = compact.to_string();
        let (_, failures) = run(&compact);
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
