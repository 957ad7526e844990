//! Trace context: one W3C trace id per request, shared with the upstream.
//!
//! An incoming valid `traceparent` is kept as is. Otherwise the trace id is
//! taken from Envoy's `x-request-id` when it is a UUID (so the two ids
//! join), else derived from the caller's entropy, and a new `traceparent`
//! goes upstream.

use crate::assign::murmur3_32;

/// The trace of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The `traceparent` to send upstream when the client sent none.
    pub new_traceparent: Option<String>,
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The trace id of a valid W3C `traceparent`, if it is one.
pub fn parse_traceparent(value: &str) -> Option<&str> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let valid = is_hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && is_hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && is_hex(parent, 16)
        && parent.bytes().any(|b| b != b'0')
        && is_hex(flags, 2);
    valid.then_some(trace)
}

fn hash64(bytes: &[u8], seed: u32) -> u64 {
    let lo = murmur3_32(bytes, seed);
    let hi = murmur3_32(bytes, seed ^ 0x9e37_79b9);
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Appends `n` as 16 lowercase hex digits.
fn push_hex16(out: &mut String, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(HEX[((n >> (shift * 4)) & 15) as usize]));
    }
}

/// A request id as a trace id: its hex digits lowercased, dashes dropped,
/// when that makes 32 digits that are not all zero.
fn trace_id_of_request_id(request_id: &str) -> Option<String> {
    let mut id = String::with_capacity(32);
    for b in request_id.bytes().filter(|b| *b != b'-') {
        let b = b.to_ascii_lowercase();
        if id.len() == 32 || !(b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        id.push(char::from(b));
    }
    (id.len() == 32 && id.bytes().any(|b| b != b'0')).then_some(id)
}

/// Request header in which Envoy's `header_mutation` filter puts the trace
/// id of its span (`%TRACE_ID%`), ahead of llm-ab, when Envoy traces.
pub const ENVOY_TRACE_ID_HEADER: &str = "x-llm-trace-id";

/// A trace id as Envoy's `%TRACE_ID%` writes it for OpenTelemetry (32
/// lowercase hex digits, not all zero), if `value` is one.
pub fn envoy_trace_id(value: &str) -> Option<&str> {
    (is_hex(value, 32) && value.bytes().any(|b| b != b'0')).then_some(value)
}

/// Builds the trace of a request from its headers; `entropy` must differ
/// per request (time and a counter) and is used only when no id is given.
pub fn trace_for(traceparent: Option<&str>, request_id: Option<&str>, entropy: u64) -> Trace {
    if let Some(id) = traceparent.and_then(parse_traceparent) {
        return Trace {
            trace_id: id.to_string(),
            new_traceparent: None,
        };
    }
    let seed_bytes = [
        entropy.to_le_bytes().as_slice(),
        request_id.unwrap_or("").as_bytes(),
    ]
    .concat();
    let trace_id = request_id
        .and_then(trace_id_of_request_id)
        .unwrap_or_else(|| {
            let mut id = String::with_capacity(32);
            push_hex16(&mut id, hash64(&seed_bytes, 1));
            push_hex16(&mut id, hash64(&seed_bytes, 2) | 1);
            id
        });
    let span = hash64(&seed_bytes, 3) | 1;
    let mut traceparent = String::with_capacity(55);
    traceparent.push_str("00-");
    traceparent.push_str(&trace_id);
    traceparent.push('-');
    push_hex16(&mut traceparent, span);
    traceparent.push_str("-01");
    Trace {
        new_traceparent: Some(traceparent),
        trace_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn envoy_trace_ids_are_32_lowercase_hex_digits() {
        assert_eq!(
            envoy_trace_id("0af7651916cd43dd8448eb211c80319c"),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        for bad in [
            "",
            "0af7651916cd43dd8448eb211c80319",
            "0AF7651916CD43DD8448EB211C80319C",
            "00000000000000000000000000000000",
            "0af7651916cd43dd8448eb211c80319c0",
            "0af7651916cd43dd-8448eb211c80319",
        ] {
            assert_eq!(envoy_trace_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn incoming_traceparent_is_kept() {
        let t = trace_for(Some(TP), Some("x"), 1);
        assert_eq!(t.trace_id, "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(t.new_traceparent, None);
    }

    #[test]
    fn invalid_traceparents_are_replaced() {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        ] {
            let t = trace_for(Some(bad), None, 42);
            assert_ne!(t.trace_id, "0af7651916cd43dd8448eb211c80319c", "{bad}");
            assert!(t.new_traceparent.is_some());
        }
        // Future versions may carry more fields.
        assert!(
            parse_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra")
                .is_some()
        );
    }

    #[test]
    fn request_id_uuid_becomes_the_trace_id() {
        let t = trace_for(None, Some("6B29FC40-CA47-1067-B31D-00DD010662DA"), 7);
        assert_eq!(t.trace_id, "6b29fc40ca471067b31d00dd010662da");
        let tp = t.new_traceparent.unwrap_or_default();
        assert!(tp.starts_with("00-6b29fc40ca471067b31d00dd010662da-"));
        assert_eq!(parse_traceparent(&tp), Some(t.trace_id.as_str()));
    }

    /// The trace as first written (`format!`, `replace`, lowercase): the
    /// ids a release once generated stay the ones it generates.
    fn reference(request_id: Option<&str>, entropy: u64) -> Trace {
        let from_request_id = request_id
            .map(|r| r.replace('-', "").to_ascii_lowercase())
            .filter(|r| is_hex(r, 32) && r.bytes().any(|b| b != b'0'));
        let seed = [
            entropy.to_le_bytes().as_slice(),
            request_id.unwrap_or("").as_bytes(),
        ]
        .concat();
        let trace_id = from_request_id
            .unwrap_or_else(|| format!("{:016x}{:016x}", hash64(&seed, 1), hash64(&seed, 2) | 1));
        let span = hash64(&seed, 3) | 1;
        Trace {
            new_traceparent: Some(format!("00-{trace_id}-{span:016x}-01")),
            trace_id,
        }
    }

    #[test]
    fn traces_are_the_ones_first_written() {
        let ids = [
            None,
            Some(""),
            Some("6B29FC40-CA47-1067-B31D-00DD010662DA"),
            Some("6b29fc40ca471067b31d00dd010662da"),
            Some("00000000-0000-0000-0000-000000000000"),
            Some("6b29fc40-ca47-1067-b31d-00dd010662d"),
            Some("6b29fc40-ca47-1067-b31d-00dd010662dab"),
            Some("6b29fc40-ca47-1067-b31d-00dd010662dg"),
            Some("--6b29fc40ca471067b31d00dd010662da--"),
            Some("req-42"),
            Some("é6b29fc40ca471067b31d00dd010662d"),
        ];
        for id in ids {
            for entropy in [0, 1, 42, u64::MAX, 0x5b1e_2e07_6c1c_4a4e] {
                assert_eq!(
                    trace_for(None, id, entropy),
                    reference(id, entropy),
                    "{id:?}"
                );
            }
        }
    }

    #[test]
    fn generated_ids_are_valid_and_differ() {
        let a = trace_for(None, None, 1);
        let b = trace_for(None, None, 2);
        assert_ne!(a.trace_id, b.trace_id);
        for t in [a, b] {
            let tp = t.new_traceparent.unwrap_or_default();
            assert_eq!(parse_traceparent(&tp), Some(t.trace_id.as_str()));
        }
    }
}
