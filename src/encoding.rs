//! `content-encoding` of the bodies the filter reads.
//!
//! The filter reads request and response bodies as plaintext JSON or SSE.
//! The shipped `envoy.yaml` puts Envoy's decompressor filters around it, so
//! it sees plaintext whatever the client and the upstream sent; deployed
//! without them, a compressed body is never parsed as if it were text: a
//! request is refused (415) and a response is handled as unreadable.

/// The encoding of a body whose `content-encoding` header is `value`, when
/// it is not plaintext. The name is safe to put in a message: a known
/// coding's name, or `"unknown"` (a header value is never echoed as is).
pub fn unreadable(value: Option<&str>) -> Option<&'static str> {
    let value = value?.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("identity") {
        return None;
    }
    // `gzip, br` lists codings in the order they were applied: the last
    // one is the outermost and the one that makes the body unreadable.
    let outer = value.rsplit(',').next().unwrap_or(value).trim();
    const KNOWN: [&str; 6] = ["gzip", "x-gzip", "deflate", "br", "zstd", "compress"];
    Some(
        KNOWN
            .iter()
            .find(|k| outer.eq_ignore_ascii_case(k))
            .copied()
            .unwrap_or("unknown"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_readable() {
        assert_eq!(unreadable(None), None);
        assert_eq!(unreadable(Some("")), None);
        assert_eq!(unreadable(Some(" Identity ")), None);
    }

    #[test]
    fn codings_are_named_never_echoed() {
        assert_eq!(unreadable(Some("gzip")), Some("gzip"));
        assert_eq!(unreadable(Some("GZIP")), Some("gzip"));
        assert_eq!(unreadable(Some("deflate")), Some("deflate"));
        assert_eq!(unreadable(Some("gzip, br")), Some("br"));
        assert_eq!(unreadable(Some("zstd")), Some("zstd"));
        assert_eq!(unreadable(Some("john@example.com")), Some("unknown"));
    }
}
