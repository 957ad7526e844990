//! PII and secret redaction: detectors ([`detect`]), replacement, and the
//! JSON-aware walk that changes only string values.
//!
//! [`Redactor`] is compiled once from the configuration. [`Redactor::redact_text`]
//! redacts one string; [`Redactor::redact_json`] every string value of a JSON
//! document (keys and structure untouched, escapes handled, the rest of the
//! bytes as they were); [`stream::StreamRedactor`] text that arrives in pieces.

pub mod detect;
pub mod messages;
pub mod responses;
pub mod sse;
pub mod stream;

use detect::{scan, Kind};

/// How a found value is replaced.
#[derive(Debug, Clone)]
pub enum Replacement {
    /// A template where `{type}` becomes the detector name.
    Template(String),
    /// `[TYPE:hex]`: a keyed hash (HMAC-SHA256) of the value, stable for a
    /// key, so distinct values can be counted without being seen.
    Hash(Vec<u8>),
}

/// A compiled custom pattern.
#[derive(Debug)]
pub struct Custom {
    /// Name, used as the detector label.
    pub name: String,
    /// The pattern.
    pub regex: crate::regex::Regex,
    /// The literal every match starts with, and the pattern anchored at
    /// the start: matches are then only tried where the literal occurs,
    /// which is much faster than running the NFA over the whole text.
    prefilter: Option<(String, crate::regex::Regex)>,
}

impl Custom {
    /// Compiles a named pattern.
    pub fn new(name: &str, pattern: &str) -> Result<Custom, crate::regex::Error> {
        let regex = crate::regex::Regex::new(pattern)?;
        let prefix = crate::pattern::literal_prefix(pattern);
        let prefilter = if prefix.len() >= 2 {
            crate::regex::Regex::new(&format!("^(?:{pattern})"))
                .ok()
                .map(|anchored| (prefix, anchored))
        } else {
            None
        };
        Ok(Custom {
            name: name.to_string(),
            regex,
            prefilter,
        })
    }

    /// Every match, as byte ranges.
    pub fn matches(&self, text: &str) -> Vec<(usize, usize)> {
        match &self.prefilter {
            Some((prefix, anchored)) => {
                let mut out = Vec::new();
                let mut next_allowed = 0;
                for at in crate::pattern::find_iter(text.as_bytes(), prefix.as_bytes()) {
                    if at < next_allowed {
                        continue;
                    }
                    if let Some(m) = anchored.find(&text[at..]) {
                        if m.end() > 0 {
                            out.push((at, at + m.end()));
                            next_allowed = at + m.end();
                        }
                    }
                }
                out
            }
            None => self
                .regex
                .find_iter(text)
                .filter(|m| m.start() < m.end())
                .map(|m| (m.start(), m.end()))
                .collect(),
        }
    }
}

/// The compiled redaction settings.
#[derive(Debug)]
pub struct Redactor {
    /// Scan request bodies.
    pub request: bool,
    /// Scan response bodies.
    pub response: bool,
    /// Built-in detectors on.
    pub kinds: Vec<Kind>,
    /// Custom patterns.
    pub custom: Vec<Custom>,
    /// Replacement.
    pub replacement: Replacement,
    /// `true`: forward an unscannable body unredacted (counted); `false`: block it.
    pub pass_on_error: bool,
}

/// Matches found, per detector: indexes follow [`Redactor::detector_names`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub Vec<u64>);

impl Counts {
    /// Adds one match of detector `index`.
    pub fn add(&mut self, index: usize) {
        if self.0.len() <= index {
            self.0.resize(index + 1, 0);
        }
        self.0[index] += 1;
    }

    /// Total matches.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// A JSON body the redactor could not walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unscannable(pub &'static str);

/// A match with its detector index (built-ins first, then custom).
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    detector: usize,
}

impl Redactor {
    /// Detector names in counting order: built-ins, then custom patterns.
    pub fn detector_names(&self) -> Vec<&str> {
        self.kinds
            .iter()
            .map(|k| k.as_str())
            .chain(self.custom.iter().map(|c| c.name.as_str()))
            .collect()
    }

    /// Every match in `text`, built-in and custom, sorted, without overlaps
    /// (the earlier, then the longer, match wins).
    fn hits(&self, text: &str) -> Vec<Hit> {
        let mut hits: Vec<Hit> = scan(text, &self.kinds)
            .into_iter()
            .map(|f| Hit {
                start: f.start,
                end: f.end,
                detector: self.kind_index(f.kind),
            })
            .collect();
        if self.custom.is_empty() {
            return hits; // `scan` already resolved overlaps
        }
        for (ci, c) in self.custom.iter().enumerate() {
            hits.extend(c.matches(text).into_iter().map(|(start, end)| Hit {
                start,
                end,
                detector: self.kinds.len() + ci,
            }));
        }
        // By start, the longer first.
        crate::json::sort_spans(&mut hits, |h| (h.start, usize::MAX - h.end));
        let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
        for h in hits {
            if kept.last().is_none_or(|last| h.start >= last.end) {
                kept.push(h);
            }
        }
        kept
    }

    fn kind_index(&self, kind: Kind) -> usize {
        self.kinds.iter().position(|k| *k == kind).unwrap_or(0)
    }

    fn replacement_for(&self, detector: usize, value: &str) -> String {
        let name = self
            .detector_names()
            .get(detector)
            .copied()
            .unwrap_or("pii");
        match &self.replacement {
            Replacement::Template(t) => t.replace("{type}", name),
            Replacement::Hash(key) => {
                let mac = hmac_sha256(key, value.as_bytes());
                let hex: String = mac[..6].iter().map(|b| format!("{b:02x}")).collect();
                format!("[{}:{hex}]", name.to_ascii_uppercase())
            }
        }
    }

    /// Redacts matches in `text`, ending at most at `limit` (matches that
    /// start before `limit` are redacted whole). Returns the output for
    /// `text[..end]` and `end`, which is `limit` moved back to the start of
    /// a match that would straddle it.
    fn redact_prefix(&self, text: &str, limit: usize, counts: &mut Counts) -> (String, usize) {
        let hits = self.hits(text);
        self.apply(text, &hits, limit, counts)
    }

    /// Writes `text[..limit]` with `hits` replaced (see `redact_prefix`).
    fn apply(
        &self,
        text: &str,
        hits: &[Hit],
        limit: usize,
        counts: &mut Counts,
    ) -> (String, usize) {
        if hits.is_empty() {
            return (text[..limit].to_string(), limit);
        }
        let mut end = limit;
        for h in hits {
            if h.start < end && h.end > end {
                end = h.start;
            }
        }
        let mut out = String::with_capacity(end + 16);
        let mut at = 0;
        for h in hits.iter().filter(|h| h.end <= end) {
            out.push_str(&text[at..h.start]);
            out.push_str(&self.replacement_for(h.detector, &text[h.start..h.end]));
            counts.add(h.detector);
            at = h.end;
        }
        out.push_str(&text[at..end]);
        (out, end)
    }

    /// Redacts `text`; `None` when nothing was found.
    pub fn redact_text(&self, text: &str, counts: &mut Counts) -> Option<String> {
        let hits = self.hits(text);
        if hits.is_empty() {
            return None;
        }
        Some(self.apply(text, &hits, text.len(), counts).0)
    }

    /// Redacts every string value of a JSON document (not keys). Returns
    /// `Ok(None)` when nothing changed.
    pub fn redact_json(
        &self,
        body: &[u8],
        counts: &mut Counts,
    ) -> Result<Option<Vec<u8>>, Unscannable> {
        let text = crate::bytes::utf8(body).map_err(|_| Unscannable("body is not UTF-8"))?;
        if !crate::json::read::is_json(text) {
            return Err(Unscannable("body is not valid JSON"));
        }
        self.redact_valid_json(text, counts)
    }

    /// [`Redactor::redact_json`] for a document already known to be valid
    /// JSON (the request body, checked by [`crate::body::prepare`]).
    pub fn redact_valid_json(
        &self,
        text: &str,
        counts: &mut Counts,
    ) -> Result<Option<Vec<u8>>, Unscannable> {
        let values = crate::json::string_values(text).map_err(Unscannable)?;
        Ok(self.redact_values(text, &values, counts))
    }

    /// Redacts the string values `values` of the JSON document `text`
    /// (from [`crate::json::string_values`]); `None` when nothing changed.
    pub fn redact_values(
        &self,
        text: &str,
        values: &[crate::json::StringValue<'_>],
        counts: &mut Counts,
    ) -> Option<Vec<u8>> {
        let s = text.as_bytes();
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        for value in values {
            if let Some(redacted) = self.redact_text(&value.text, counts) {
                let buf = out.get_or_insert_with(|| Vec::with_capacity(s.len() + 64));
                buf.extend_from_slice(&s[copied..value.start]);
                buf.extend_from_slice(crate::json::json_string(&redacted).as_bytes());
                copied = value.end;
            }
        }
        out.map(|mut buf| {
            buf.extend_from_slice(&s[copied..]);
            buf
        })
    }
}

/// HMAC-SHA256 (RFC 2104): the unit id's keyed hash, one implementation.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    crate::unit_id::UnitKey::new(key).mac(message)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn redactor(replacement: Replacement) -> Redactor {
        Redactor {
            request: true,
            response: true,
            kinds: Kind::ALL.to_vec(),
            custom: vec![Custom::new("employee_id", "EMP-[0-9]{6}").unwrap()],
            replacement,
            pass_on_error: false,
        }
    }

    fn template() -> Redactor {
        redactor(Replacement::Template("[REDACTED:{type}]".into()))
    }

    #[test]
    fn text_is_redacted_and_counted() {
        let r = template();
        let mut c = Counts::default();
        let out = r.redact_text(
            "mail a.b@example.com, card 4111 1111 1111 1111, EMP-123456",
            &mut c,
        );
        assert_eq!(
            out.as_deref(),
            Some("mail [REDACTED:email], card [REDACTED:credit_card], [REDACTED:employee_id]")
        );
        let names = r.detector_names();
        let count = |n: &str| {
            c.0.get(names.iter().position(|x| *x == n).unwrap())
                .copied()
                .unwrap_or(0)
        };
        assert_eq!(
            (count("email"), count("credit_card"), count("employee_id")),
            (1, 1, 1)
        );
        assert_eq!(r.redact_text("nothing here", &mut c), None);
    }

    #[test]
    fn hash_replacement_is_stable_and_keyed() {
        let a = redactor(Replacement::Hash(b"k1".to_vec()));
        let b = redactor(Replacement::Hash(b"k2".to_vec()));
        let mut c = Counts::default();
        let x1 = a.redact_text("x@example.com", &mut c).unwrap();
        let x2 = a.redact_text("x@example.com", &mut c).unwrap();
        let y = a.redact_text("y@example.com", &mut c).unwrap();
        let other_key = b.redact_text("x@example.com", &mut c).unwrap();
        assert_eq!(x1, x2);
        assert_ne!(x1, y);
        assert_ne!(x1, other_key);
        assert!(
            x1.starts_with("[EMAIL:") && x1.len() == "[EMAIL:]".len() + 12,
            "{x1}"
        );
    }

    #[test]
    fn prefiltered_custom_patterns_find_what_the_regex_finds() {
        for pattern in ["EMP-[0-9]{6}", "ID\\.[0-9]+", "[A-Z]{3}-[0-9]{2}", "ab?c+"] {
            let c = Custom::new("x", pattern).unwrap();
            let prefiltered = pattern.starts_with("EMP") || pattern.starts_with("ID");
            assert_eq!(c.prefilter.is_some(), prefiltered, "{pattern}");
            for text in [
                "EMP-123456 EMP-12 ID.42 abc ac abbc XYZ-12 EMP-654321EMP-111111",
                "EMP-EMP-123456 IDID.7 ID.ID.8 EMP-1234567 xEMP-000000",
                "",
                "EMP",
            ] {
                let plain: Vec<(usize, usize)> = c
                    .regex
                    .find_iter(text)
                    .map(|m| (m.start(), m.end()))
                    .collect();
                assert_eq!(c.matches(text), plain, "{pattern} in {text}");
            }
        }
    }

    #[test]
    fn hmac_matches_rfc4231() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn json_only_string_values_change() {
        let r = template();
        let body = r#"{"model":"m","user":"bob@example.com","messages":[{"role":"user","content":"my mail is bob\u0040example.com and SSN 123-45-6789"}],"n":1.50,"bob@example.com":true}"#;
        let mut c = Counts::default();
        let out =
            String::from_utf8(r.redact_json(body.as_bytes(), &mut c).unwrap().unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"model":"m","user":"[REDACTED:email]","messages":[{"role":"user","content":"my mail is [REDACTED:email] and SSN [REDACTED:us_ssn]"}],"n":1.50,"bob@example.com":true}"#
        );
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
        assert_eq!(c.total(), 3);
        assert_eq!(r.redact_json(br#"{"a":"clean"}"#, &mut c), Ok(None));
        assert!(r.redact_json(b"{\"a\":", &mut c).is_err());
        assert!(r.redact_json(b"{\"a\":\"\xff\"}", &mut c).is_err());
    }
}
