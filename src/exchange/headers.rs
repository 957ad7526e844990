//! Header maps as the host hands them over: one buffer holding every name
//! and value, and where each sits in it. Reading a request's headers makes
//! one allocation (and one copy) instead of two per header, and bytes that
//! are not UTF-8 (HTTP allows them in values) are read lossily instead of
//! failing: the proxy-wasm SDK's own `get_map` panics on them.

/// Header pairs, in the order the host gave them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderMap {
    text: String,
    /// (name start, name end, value start, value end) in `text`.
    spans: Vec<[u32; 4]>,
}

impl HeaderMap {
    /// A map of `pairs`.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> HeaderMap {
        let mut map = HeaderMap::default();
        for (k, v) in pairs {
            map.push(k.as_ref(), v.as_ref());
        }
        map
    }

    fn push(&mut self, name: &str, value: &str) {
        let at = |text: &String| u32::try_from(text.len()).unwrap_or(u32::MAX);
        let name_start = at(&self.text);
        self.text.push_str(name);
        let name_end = at(&self.text);
        self.text.push_str(value);
        self.spans
            .push([name_start, name_end, name_end, at(&self.text)]);
    }

    /// A map from proxy-wasm's serialization: the pair count (u32 LE), a
    /// (name length, value length) pair of u32 LE per header, then each
    /// name and value followed by a NUL. A malformed buffer yields the
    /// headers read before the fault, never a panic.
    pub fn from_serialized(bytes: &[u8]) -> HeaderMap {
        let word = |at: usize| {
            bytes
                .get(at..at + 4)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map_or(0, |b| u32::from_le_bytes(b) as usize)
        };
        let count = word(0);
        let Some(mut p) = count.checked_mul(8).and_then(|n| n.checked_add(4)) else {
            return HeaderMap::default();
        };
        let data = bytes.get(p..).unwrap_or_default();
        let mut map = HeaderMap {
            text: String::with_capacity(data.len()),
            spans: Vec::with_capacity(count.min(256)),
        };
        for n in 0..count {
            let (name_len, value_len) = (word(4 + n * 8), word(8 + n * 8));
            let Some(name) = bytes.get(p..p.saturating_add(name_len)) else {
                break;
            };
            p = p.saturating_add(name_len).saturating_add(1);
            let Some(value) = bytes.get(p..p.saturating_add(value_len)) else {
                break;
            };
            p = p.saturating_add(value_len).saturating_add(1);
            map.push(
                &String::from_utf8_lossy(name),
                &String::from_utf8_lossy(value),
            );
        }
        map
    }

    fn part(&self, from: u32, to: u32) -> &str {
        self.text
            .get(from as usize..to as usize)
            .unwrap_or_default()
    }

    /// Every (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.spans
            .iter()
            .map(|s| (self.part(s[0], s[1]), self.part(s[2], s[3])))
    }

    /// The first value of header `name` (names as the host gives them:
    /// lowercase in Envoy). Names are compared by length first, and only
    /// the value found is sliced (a lookup runs a dozen times a request).
    pub fn get(&self, name: &str) -> Option<&str> {
        let text = self.text.as_bytes();
        let s = self.spans.iter().find(|s| {
            s[1].wrapping_sub(s[0]) as usize == name.len()
                && text.get(s[0] as usize..s[1] as usize) == Some(name.as_bytes())
        })?;
        Some(self.part(s[2], s[3]))
    }

    /// Whether header `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is no header.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

impl crate::route::RequestHeaders for HeaderMap {
    fn header(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// proxy-wasm's serialization of `pairs` (as Envoy writes it).
    fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn serialized_maps_are_read_in_order_and_non_utf8_values_lossily() {
        let bytes = serialize(&[
            (b":path", b"/v1/chat/completions"),
            (b"x-user-id", b"caf\xc3\xa9"),
            (b"x-bad", b"\xff\xfeid"),
            (b"empty", b""),
            (b"x-user-id", b"second"),
        ]);
        let m = HeaderMap::from_serialized(&bytes);
        assert_eq!(m.len(), 5);
        assert_eq!(m.get(":path"), Some("/v1/chat/completions"));
        assert_eq!(m.get("x-user-id"), Some("café"), "the first value");
        assert_eq!(m.get("x-bad"), Some("\u{fffd}\u{fffd}id"));
        assert_eq!(m.get("empty"), Some(""));
        assert!(m.has("empty") && !m.has("missing"));
        let names: Vec<_> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(names, [":path", "x-user-id", "x-bad", "empty", "x-user-id"]);
        assert_eq!(
            m,
            HeaderMap::from_pairs(&[
                (":path", "/v1/chat/completions"),
                ("x-user-id", "café"),
                ("x-bad", "\u{fffd}\u{fffd}id"),
                ("empty", ""),
                ("x-user-id", "second"),
            ])
        );
    }

    #[test]
    fn malformed_buffers_never_panic() {
        let good = serialize(&[(b"a", b"1"), (b"bb", b"22")]);
        for cut in 0..good.len() {
            let m = HeaderMap::from_serialized(&good[..cut]);
            assert!(m.len() <= 2);
        }
        assert!(HeaderMap::from_serialized(&[]).is_empty());
        // A count far beyond the buffer, lengths beyond it.
        assert!(HeaderMap::from_serialized(&u32::MAX.to_le_bytes()).is_empty());
        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(HeaderMap::from_serialized(&bad).is_empty());
        let mut seed = 7u64;
        for _ in 0..10_000 {
            let mut b = good.clone();
            crate::testing::xorshift(&mut seed);
            let i = seed as usize % b.len();
            b[i] = (seed >> 32) as u8;
            let _ = HeaderMap::from_serialized(&b);
        }
    }
}
