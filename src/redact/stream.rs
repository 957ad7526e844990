//! Redaction of text that arrives in pieces (stream deltas).
//!
//! The redactor holds back a bounded tail that could still be the start of
//! something to redact, so a value split across pieces
//! (`"john.doe@exa"` + `"mple.com"`) is caught, and emits everything before
//! it, redacted. The tail never ends inside a word or inside a number
//! written with spaces, and keeps an unterminated private-key block whole.
//! Splitting a text into pieces in any way gives the same output as
//! redacting it whole, as long as no single value is longer than [`MAX_HOLD`].

use super::{Counts, Redactor};

/// Text kept after the emit point to catch values that span pieces
/// (longer than any phone, card, IBAN or e-mail in practice).
pub const HOLD: usize = 96;

/// Most text ever held back (a very long token or key block is emitted,
/// redacted as far as it can be, past this).
pub const MAX_HOLD: usize = 16 * 1024;

/// Per-stream state (one per choice of a completion stream).
#[derive(Debug, Default)]
pub struct StreamRedactor {
    pending: String,
}

/// Whether a cut between `a` and `b` could split a value.
fn joined(a: char, b: char) -> bool {
    let word = |c: char| !c.is_whitespace();
    (word(a) && word(b))
        // numbers written in groups: "4111 1111", "+1 415", "GB82 WEST"
        || (a.is_ascii_digit() || a.is_ascii_uppercase()) && b == ' '
        || a == ' ' && (b.is_ascii_digit() || b == '(')
}

impl StreamRedactor {
    /// A fresh stream.
    pub fn new() -> StreamRedactor {
        StreamRedactor::default()
    }

    /// Bytes held back.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Adds a piece; returns the redacted text that is safe to emit now.
    pub fn push(&mut self, r: &Redactor, piece: &str, counts: &mut Counts) -> String {
        self.pending.push_str(piece);
        let text = &self.pending;
        if text.len() <= HOLD {
            return String::new();
        }
        let mut cut = text.len() - HOLD;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        // Back up to a point that splits nothing.
        loop {
            let before = text[..cut].chars().next_back();
            let after = text[cut..].chars().next();
            match (before, after) {
                (Some(a), Some(b)) if joined(a, b) => cut -= a.len_utf8(),
                _ => break,
            }
        }
        // An unterminated private key block stays whole.
        if let Some(begin) = text.rfind("-----BEGIN ") {
            if text[begin..].contains("PRIVATE KEY") && !text[begin..].contains("-----END ") {
                cut = cut.min(begin);
            }
        }
        if cut == 0 {
            if text.len() <= MAX_HOLD {
                return String::new();
            }
            cut = text.len();
        }
        let (out, end) = r.redact_prefix(text, cut, counts);
        self.pending.drain(..end);
        out
    }

    /// Ends the stream: the rest, redacted.
    pub fn finish(&mut self, r: &Redactor, counts: &mut Counts) -> String {
        let text = std::mem::take(&mut self.pending);
        let (out, _) = r.redact_prefix(&text, text.len(), counts);
        out
    }
}

/// What one event of a Messages or Responses stream becomes: whole SSE
/// events (`event:` and `data:` lines, named by their `type` as both APIs
/// name them).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// Events to send before it.
    pub before: Vec<String>,
    /// The event itself rewritten, when it changed.
    pub event: Option<String>,
}

/// The SSE event `name` carrying `data`.
pub fn sse_event(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// Stream redactors by key (a content block, a text part), at most `max`.
#[derive(Debug)]
pub struct Keyed<K> {
    streams: Vec<(K, StreamRedactor)>,
    max: usize,
}

impl<K: PartialEq + Copy> Keyed<K> {
    /// None yet; at most `max` keys are tracked (text past them is left as
    /// the provider sent it, as a chat stream's choices past its limit).
    pub fn new(max: usize) -> Keyed<K> {
        Keyed {
            streams: Vec::new(),
            max,
        }
    }

    /// The redactor of `key`, made on first use.
    pub fn get(&mut self, key: K) -> Option<&mut StreamRedactor> {
        let at = match self.streams.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None if self.streams.len() < self.max => {
                self.streams.push((key, StreamRedactor::new()));
                self.streams.len() - 1
            }
            None => return None,
        };
        self.streams.get_mut(at).map(|(_, s)| s)
    }

    /// The rewrite of a delta event named `name` (`data`, whose text is
    /// `raw`) of stream `key`: the event again with its text replaced by
    /// what the key's redactor lets out, or nothing to change.
    pub fn rewrite_delta(
        &mut self,
        key: K,
        name: &str,
        r: &Redactor,
        data: &str,
        raw: crate::json::Raw<'_>,
        counts: &mut Counts,
    ) -> Rewrite {
        let event = self
            .get(key)
            .and_then(|stream| push_in_place(stream, r, data, raw, counts))
            .map(|data| sse_event(name, &data));
        Rewrite {
            before: Vec::new(),
            event,
        }
    }

    /// Ends the streams of `key` (every key when `None`): each key's text
    /// still held, redacted, when there is some.
    pub fn finish(
        &mut self,
        r: &Redactor,
        key: Option<K>,
        counts: &mut Counts,
    ) -> Vec<(K, String)> {
        let mut out = Vec::new();
        for (k, stream) in self.streams.iter_mut() {
            if key.is_none_or(|x| x == *k) {
                let rest = stream.finish(r, counts);
                if !rest.is_empty() {
                    out.push((*k, rest));
                }
            }
        }
        out
    }
}

/// `data` with the JSON string `raw` (a slice of it) replaced by what
/// `stream` says is safe to emit of its text; `None` when that is the text
/// itself (or `raw` is not a string).
fn push_in_place(
    stream: &mut StreamRedactor,
    r: &Redactor,
    data: &str,
    raw: crate::json::Raw<'_>,
    counts: &mut Counts,
) -> Option<String> {
    let text = crate::json::read::from_str::<std::borrow::Cow<'_, str>>(raw.get()).ok()?;
    let out = stream.push(r, &text, counts);
    if out == text {
        return None;
    }
    let start = crate::json::offset_in(data.as_bytes(), raw.get().as_bytes());
    let mut new = String::with_capacity(data.len());
    new.push_str(data.get(..start)?);
    new.push_str(&crate::json::json_string(&out));
    new.push_str(data.get(start + raw.get().len()..)?);
    Some(new)
}

#[cfg(test)]
mod tests {
    use super::super::tests::redactor;
    use super::super::{Counts, Replacement};
    use super::*;

    const TEXT: &str =
        "Hi! Reach john.doe@example.com or +1 415 555 0100, card 4111 1111 1111 1111, \
        iban GB82 WEST 1234 5698 7654 32, key sk-proj-abcdefghijklmnopqrstuvwxyz0123 and \
        -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n\
        then EMP-123456, ip 10.0.0.1 and 2001:db8::1. Thanks, 你好 — bye.";

    fn whole() -> (String, Counts) {
        let r = redactor(Replacement::Template("[R:{type}]".into()));
        let mut c = Counts::default();
        let out = r
            .redact_text(TEXT, &mut c)
            .unwrap_or_else(|| TEXT.to_string());
        (out, c)
    }

    fn streamed(sizes: impl Fn(usize) -> usize) -> (String, Counts) {
        let r = redactor(Replacement::Template("[R:{type}]".into()));
        let mut c = Counts::default();
        let mut s = StreamRedactor::new();
        let mut out = String::new();
        let mut rest = TEXT;
        let mut n = 0;
        while !rest.is_empty() {
            let mut k = sizes(n).clamp(1, rest.len());
            while !rest.is_char_boundary(k) {
                k += 1;
            }
            out.push_str(&s.push(&r, &rest[..k], &mut c));
            assert!(s.held() <= MAX_HOLD);
            rest = &rest[k..];
            n += 1;
        }
        out.push_str(&s.finish(&r, &mut c));
        (out, c)
    }

    #[test]
    fn any_split_gives_the_whole_text_result() {
        let (want, want_counts) = whole();
        assert!(!want.contains("john.doe") && !want.contains("MIIE") && !want.contains("4111"));
        for size in 1..=TEXT.len() {
            let (got, counts) = streamed(|_| size);
            assert_eq!(got, want, "pieces of {size} bytes");
            assert_eq!(counts, want_counts, "pieces of {size} bytes");
        }
        // Irregular splits.
        let mut seed = 7u64;
        for _ in 0..200 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let s = seed;
            let (got, _) = streamed(move |n| ((s >> (n % 48)) % 23 + 1) as usize);
            assert_eq!(got, want);
        }
    }

    #[test]
    fn split_email_is_caught() {
        let r = redactor(Replacement::Template("[R:{type}]".into()));
        let mut c = Counts::default();
        let mut s = StreamRedactor::new();
        let mut out = s.push(&r, "write to john.doe@exa", &mut c);
        out += &s.push(&r, "mple.com please", &mut c);
        out += &s.finish(&r, &mut c);
        assert_eq!(out, "write to [R:email] please");
    }
}
