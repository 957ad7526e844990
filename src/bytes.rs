//! Byte searches for the hot path. In the wasm VM they read eight bytes
//! at a time (SWAR): the module is built without SIMD, and `memchr`'s
//! portable fallback reads a `usize`, four bytes on wasm32. Natively they
//! are `memchr`'s (SIMD). Both are tested here, on every target.

/// 0x01 in every byte of a word.
pub(crate) const LO: u64 = 0x0101_0101_0101_0101;
/// 0x80 in every byte of a word.
pub(crate) const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each zero byte of `w`. Exact for the lowest zero byte
/// (a borrow only marks bytes above a true zero), which is all a forward
/// search needs; never misses a zero byte.
pub(crate) fn zero_bytes(w: u64) -> u64 {
    w.wrapping_sub(LO) & !w & HI
}

/// The first eight bytes of `chunk` as a little-endian word (0 when it
/// is shorter).
pub(crate) fn word(chunk: &[u8]) -> u64 {
    chunk
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// The first byte of `hay` that `is` accepts, eight bytes at a time:
/// `marks(w)` sets the high bit of (at least the lowest) such byte of the
/// word `w`.
fn swar_first(hay: &[u8], marks: impl Fn(u64) -> u64, is: impl Fn(u8) -> bool) -> Option<usize> {
    // Sixteen bytes per branch while they last (the lower word's marks
    // are exact; the upper's are looked at only when the lower has none).
    let mut pairs = hay.chunks_exact(16);
    let mut base = 0;
    for pair in pairs.by_ref() {
        let (lo, hi) = (marks(word(pair)), marks(word(&pair[8..])));
        if lo | hi != 0 {
            let at = if lo != 0 {
                lo.trailing_zeros() / 8
            } else {
                8 + hi.trailing_zeros() / 8
            };
            return Some(base + at as usize);
        }
        base += 16;
    }
    let mut chunks = pairs.remainder().chunks_exact(8);
    for chunk in chunks.by_ref() {
        let m = marks(word(chunk));
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&x| is(x))
        .map(|p| base + p)
}

/// The first `a` or `b` in `hay`, eight bytes at a time.
pub fn swar_find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let (va, vb) = (LO * u64::from(a), LO * u64::from(b));
    swar_first(
        hay,
        |w| zero_bytes(w ^ va) | zero_bytes(w ^ vb),
        |x| x == a || x == b,
    )
}

/// The first `letter` in `hay` in either case (`letter` an ASCII letter):
/// in the VM one comparison per word, the case bit set on both sides.
pub fn find_letter_ignore_case(hay: &[u8], letter: u8) -> Option<usize> {
    let (lo, up) = (letter.to_ascii_lowercase(), letter.to_ascii_uppercase());
    #[cfg(target_arch = "wasm32")]
    return swar_find_letter(hay, lo, up);
    #[cfg(not(target_arch = "wasm32"))]
    return memchr::memchr2(lo, up, hay);
}

/// [`find_letter_ignore_case`] eight bytes at a time: only the letter and
/// its other case are `lo` once bit 5 is set (ASCII letters differ from
/// their other case in that bit alone).
pub fn swar_find_letter(hay: &[u8], lo: u8, up: u8) -> Option<usize> {
    let v = LO * u64::from(lo);
    let case = LO * 0x20;
    swar_first(hay, |w| zero_bytes((w | case) ^ v), |x| x == lo || x == up)
}

/// The first `a` in `hay`.
pub fn find(hay: &[u8], a: u8) -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    return swar_find2(hay, a, a);
    #[cfg(not(target_arch = "wasm32"))]
    return memchr::memchr(a, hay);
}

/// The first `a` or `b` in `hay`.
pub fn find2(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    return swar_find2(hay, a, b);
    #[cfg(not(target_arch = "wasm32"))]
    return memchr::memchr2(a, b, hay);
}

/// The first byte of `hay` that ends a run of plain JSON string bytes:
/// `"`, `\\` or a control character (below 0x20), eight bytes at a time.
pub fn swar_string_stop(hay: &[u8]) -> Option<usize> {
    let (quote, backslash) = (LO * u64::from(b'"'), LO * u64::from(b'\\'));
    // Bytes below 0x20: `w - 0x20…` borrows out of them (exact for the
    // lowest, as for the zero bytes), bytes with the high bit excluded.
    swar_first(
        hay,
        |w| {
            zero_bytes(w ^ quote)
                | zero_bytes(w ^ backslash)
                | (w.wrapping_sub(LO * 0x20) & !w & HI)
        },
        is_string_stop,
    )
}

/// Whether every byte of `hay` is ASCII: eight bytes at a time in the VM
/// (core's check reads a `usize`, four bytes on wasm32).
pub fn is_ascii(hay: &[u8]) -> bool {
    #[cfg(target_arch = "wasm32")]
    return swar_is_ascii(hay);
    #[cfg(not(target_arch = "wasm32"))]
    return hay.is_ascii();
}

/// `hay` as text, or why it is not UTF-8: an ASCII `hay` (most bodies) is
/// told eight bytes at a time, before core's full check.
pub fn utf8(hay: &[u8]) -> Result<&str, std::str::Utf8Error> {
    utf8_ascii(hay).map(|(text, _)| text)
}

/// [`utf8`], and whether `hay` is all ASCII.
pub fn utf8_ascii(hay: &[u8]) -> Result<(&str, bool), std::str::Utf8Error> {
    if is_ascii(hay) {
        // SAFETY: ASCII bytes are UTF-8.
        return Ok((unsafe { std::str::from_utf8_unchecked(hay) }, true));
    }
    std::str::from_utf8(hay).map(|text| (text, false))
}

/// [`is_ascii`] eight bytes at a time, 32 per branch.
pub fn swar_is_ascii(hay: &[u8]) -> bool {
    let mut blocks = hay.chunks_exact(32);
    for b in blocks.by_ref() {
        if (word(b) | word(&b[8..]) | word(&b[16..]) | word(&b[24..])) & HI != 0 {
            return false;
        }
    }
    let mut chunks = blocks.remainder().chunks_exact(8);
    let mut high = 0;
    for chunk in chunks.by_ref() {
        high |= word(chunk);
    }
    high & HI == 0 && chunks.remainder().is_ascii()
}

/// Whether `b` ends a run of plain JSON string bytes.
pub fn is_string_stop(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// The first `"`, `\\` or control character in `hay`.
pub fn string_stop(hay: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    return swar_string_stop(hay);
    #[cfg(not(target_arch = "wasm32"))]
    return hay.iter().position(|&x| is_string_stop(x));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 50 000 hays of 1 to 40 pseudo-random bytes, each with its seed.
    fn random_hays(mut seed: u64) -> impl Iterator<Item = (u64, Vec<u8>)> {
        (0..50_000).map(move |_| {
            crate::testing::xorshift(&mut seed);
            let hay =
                seed.to_le_bytes().repeat(1 + (seed % 5) as usize)[(seed % 7) as usize..].to_vec();
            (seed, hay)
        })
    }

    fn naive(hay: &[u8], a: u8, b: u8) -> Option<usize> {
        hay.iter().position(|&x| x == a || x == b)
    }

    #[test]
    fn ascii_is_told_at_every_place() {
        for len in 0..40 {
            for at in 0..len {
                for high in [0x80u8, 0xc3, 0xff] {
                    let mut hay = vec![b'a'; len];
                    assert!(swar_is_ascii(&hay) && is_ascii(&hay));
                    hay[at] = high;
                    assert!(!swar_is_ascii(&hay) && !is_ascii(&hay), "{hay:?}");
                }
            }
        }
        for (seed, hay) in random_hays(0x9e37_79b9_7f4a_7c15) {
            assert_eq!(swar_is_ascii(&hay), hay.is_ascii(), "seed {seed}");
            assert_eq!(utf8(&hay), std::str::from_utf8(&hay), "seed {seed}");
        }
        for text in ["", "plain", "café", "日本語", "a\u{10348}b"] {
            assert_eq!(utf8(text.as_bytes()), Ok(text));
        }
    }

    #[test]
    fn finds_a_letter_in_either_case_at_every_place() {
        // Each letter among every byte value as background (the other
        // case, the bytes one bit away, non-ASCII), at every place of
        // hays to 24 bytes, and in random hays.
        for letter in (b'a'..=b'z').chain(b'A'..=b'Z') {
            let (lo, up) = (letter.to_ascii_lowercase(), letter.to_ascii_uppercase());
            for fill in 0..=255u8 {
                for len in 0..24 {
                    for at in 0..len {
                        for put in [lo, up] {
                            let mut hay = vec![fill; len];
                            hay[at] = put;
                            assert_eq!(
                                swar_find_letter(&hay, lo, up),
                                naive(&hay, lo, up),
                                "{letter:#x} in {hay:?}"
                            );
                        }
                    }
                }
            }
            assert_eq!(
                find_letter_ignore_case(b"xxKx", letter),
                naive(b"xxKx", lo, up)
            );
        }
        for (seed, hay) in random_hays(0x1234_5678_9abc_def1) {
            let letter = b'a' + (seed % 26) as u8;
            let (lo, up) = (letter, letter.to_ascii_uppercase());
            assert_eq!(
                swar_find_letter(&hay, lo, up),
                naive(&hay, lo, up),
                "{hay:?}"
            );
        }
    }

    #[test]
    fn finds_the_first_of_two_bytes_at_every_place() {
        // Every needle pair among the bytes that break naive SWAR (0, 1,
        // 0x7f, 0x80, 0xff) and ordinary ones, at every offset of hays of
        // every length to 40, over backgrounds of each of those bytes.
        let special = [0u8, 1, b'"', b'\\', 0x7f, 0x80, 0xfe, 0xff];
        for &fill in &special {
            for len in 0..40 {
                for at in 0..len {
                    for &a in &special {
                        for &b in &[a, b'"', 0x80] {
                            let mut hay = vec![fill; len];
                            hay[at] = a;
                            assert_eq!(
                                swar_find2(&hay, a, b),
                                naive(&hay, a, b),
                                "{a:#x}/{b:#x} in {hay:?}"
                            );
                            assert_eq!(find2(&hay, a, b), naive(&hay, a, b));
                            assert_eq!(find(&hay, a), naive(&hay, a, a));
                        }
                    }
                }
            }
        }
        for (seed, hay) in random_hays(0x2545_f491_4f6c_dd1d) {
            let (a, b) = ((seed >> 8) as u8, (seed >> 40) as u8);
            assert_eq!(
                swar_find2(&hay, a, b),
                naive(&hay, a, b),
                "{a:#x}/{b:#x} in {hay:?}"
            );
        }
    }

    #[test]
    fn finds_the_first_string_stop_at_every_place() {
        let special = [
            0u8, 1, 0x1f, 0x20, 0x21, b'"', b'\\', 0x7f, 0x80, 0x9f, 0xa0, 0xff,
        ];
        for &fill in &special {
            for len in 0..40 {
                for at in 0..len {
                    for &a in &special {
                        let mut hay = vec![fill; len];
                        hay[at] = a;
                        let want = hay.iter().position(|&x| is_string_stop(x));
                        assert_eq!(swar_string_stop(&hay), want, "{hay:?}");
                        assert_eq!(string_stop(&hay), want);
                    }
                }
            }
        }
        for (_, hay) in random_hays(0x9e37_79b9_7f4a_7c15) {
            let want = hay.iter().position(|&x| is_string_stop(x));
            assert_eq!(swar_string_stop(&hay), want, "{hay:?}");
        }
    }
}
