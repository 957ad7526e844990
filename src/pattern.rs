//! regex-lite patterns (run by [`crate::regex`]) with a literal prefilter.
//!
//! The engine has no literal optimisations: it runs its NFA over every
//! character, as regex-lite did (about 60 MB/s here). Most operator patterns start with a literal
//! (`EMP-[0-9]{6}`, `(?i)how to make a bomb`); a match can only exist where
//! that literal occurs, which a plain substring search finds at memory speed.

/// The literal text every match of `pattern` must start with (possibly
/// empty): plain characters up to the first regex syntax, minus a last
/// character that a quantifier makes optional. Patterns with alternation
/// or flags have none.
pub fn literal_prefix(pattern: &str) -> String {
    if pattern.contains('|') || pattern.starts_with("(?") {
        return String::new();
    }
    let mut prefix = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let literal = match c {
            '\\' => match chars.peek() {
                Some(&n) if "\\.-+*?()[]{}^$|/#&~ ".contains(n) => {
                    chars.next();
                    n
                }
                _ => break,
            },
            c if c.is_alphanumeric() || "-_:@#/=,;\"' <>!%&~`".contains(c) => c,
            _ => break,
        };
        if matches!(chars.peek(), Some('?' | '*' | '{')) {
            break;
        }
        prefix.push(literal);
    }
    prefix
}

/// How rare byte `b` is in prose (higher is rarer): English letter
/// frequency order, space the most common, anything else rare.
fn rarity(b: u8) -> usize {
    usize::from(RARITY[usize::from(b)])
}

/// [`rarity`] of every byte, as a table (searches pick their needle's
/// rarest byte on every call).
const RARITY: [u8; 256] = {
    const BY_FREQUENCY: &[u8] = b"etaoinshrdlcumwfgypbvkjxqz";
    let mut t = [BY_FREQUENCY.len() as u8 + 1; 256];
    t[b' ' as usize] = 0;
    let mut i = 0;
    while i < BY_FREQUENCY.len() {
        t[BY_FREQUENCY[i] as usize] = i as u8 + 1;
        t[BY_FREQUENCY[i].to_ascii_uppercase() as usize] = i as u8 + 1;
        i += 1;
    }
    t
};

/// Whether `needle` occurs in `hay`, ignoring ASCII case. Candidates come
/// from a fast search for the needle's rarest byte (`k` in "how to make
/// a bomb"), so common letters do not stop the search at every word.
pub fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || n.len() > h.len() {
        return false;
    }
    let rare = (0..n.len())
        .rev()
        .max_by_key(|&i| rarity(n[i]))
        .unwrap_or(0);
    let byte = n[rare];
    // The rare byte sits at `rare` within a match: search where it can.
    let mut from = rare;
    let last = h.len() - n.len() + rare;
    while from <= last {
        let hay = &h[from..=last];
        let found = if byte.is_ascii_alphabetic() {
            crate::bytes::find_letter_ignore_case(hay, byte)
        } else {
            crate::bytes::find(hay, byte)
        };
        let Some(p) = found else {
            return false;
        };
        let start = from + p - rare;
        if h[start..start + n.len()].eq_ignore_ascii_case(n) {
            return true;
        }
        from += p + 1;
    }
    false
}

/// Every start of `needle` in `hay`, overlapping ones included, in order.
/// Candidates come from a search for the needle's rarest byte (the `-` of
/// `EMP-`), like [`contains_ignore_ascii_case`]; `str::match_indices` ran
/// a two-way search that cost a custom pattern as much as every built-in
/// detector together in the VM.
pub fn find_iter<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let rare = (0..needle.len())
        .rev()
        .max_by_key(|&i| rarity(needle[i]))
        .unwrap_or(0);
    let byte = needle.get(rare).copied().unwrap_or(0);
    let ok = !needle.is_empty() && needle.len() <= hay.len();
    // The rare byte sits at `rare` within a match: search where it can.
    let last = if ok {
        hay.len() - needle.len() + rare
    } else {
        0
    };
    let mut from = rare;
    std::iter::from_fn(move || {
        while ok && from <= last {
            let p = from + crate::bytes::find(&hay[from..=last], byte)?;
            from = p + 1;
            let start = p - rare;
            if &hay[start..start + needle.len()] == needle {
                return Some(start);
            }
        }
        None
    })
}

/// A compiled pattern.
#[derive(Debug)]
pub struct Pattern {
    /// The full pattern.
    pub regex: crate::regex::Regex,
    /// `(literal, ignore ASCII case)` every match starts with.
    prefilter: Option<(String, bool)>,
}

impl Pattern {
    /// Compiles `pattern` (regex-lite syntax).
    pub fn new(pattern: &str) -> Result<Pattern, crate::regex::Error> {
        let regex = crate::regex::Regex::new(pattern)?;
        let (ignore_case, rest) = match pattern.strip_prefix("(?i)") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let literal = literal_prefix(rest);
        let usable = literal.len() >= 3 && (!ignore_case || literal.is_ascii());
        Ok(Pattern {
            regex,
            prefilter: usable.then_some((literal, ignore_case)),
        })
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        match &self.prefilter {
            Some((literal, true)) if !contains_ignore_ascii_case(text, literal) => false,
            Some((literal, false)) if !text.contains(literal.as_str()) => false,
            _ => self.regex.is_match(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes() {
        assert_eq!(literal_prefix("EMP-[0-9]{6}"), "EMP-");
        assert_eq!(literal_prefix("ab?c"), "a");
        assert_eq!(literal_prefix(r"ID\.[0-9]+"), "ID.");
        assert_eq!(literal_prefix("(?i)emp"), "");
        assert_eq!(literal_prefix("a|b"), "");
        assert_eq!(literal_prefix("[A-Z]{3}"), "");
        assert_eq!(literal_prefix("how to make a bomb"), "how to make a bomb");
    }

    #[test]
    fn the_rarity_table_orders_bytes_as_letter_frequency() {
        const BY_FREQUENCY: &[u8] = b"etaoinshrdlcumwfgypbvkjxqz";
        for b in 0..=255u8 {
            let expected = match b.to_ascii_lowercase() {
                b' ' => 0,
                l => BY_FREQUENCY
                    .iter()
                    .position(|&c| c == l)
                    .map_or(27, |p| p + 1),
            };
            assert_eq!(rarity(b), expected, "{b:#x}");
        }
    }

    #[test]
    fn find_iter_finds_every_occurrence() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || crate::testing::xorshift(&mut seed);
        let mut found = 0;
        for _ in 0..20_000 {
            let hay: Vec<u8> = (0..next() % 40)
                .map(|_| b"ab-E"[(next() % 4) as usize])
                .collect();
            let needle: Vec<u8> = (0..next() % 5)
                .map(|_| b"ab-E"[(next() % 4) as usize])
                .collect();
            let naive: Vec<usize> = if needle.is_empty() {
                Vec::new()
            } else {
                hay.windows(needle.len())
                    .enumerate()
                    .filter(|(_, w)| *w == needle.as_slice())
                    .map(|(i, _)| i)
                    .collect()
            };
            found += naive.len();
            let fast: Vec<usize> = find_iter(&hay, &needle).collect();
            assert_eq!(fast, naive, "{needle:?} in {hay:?}");
        }
        assert!(found > 10_000, "the texts have matches ({found})");
    }

    #[test]
    fn case_insensitive_contains() {
        assert!(contains_ignore_ascii_case("So, HOW to Make", "how to make"));
        assert!(!contains_ignore_ascii_case("how to mak", "how to make"));
        assert!(contains_ignore_ascii_case("xxab", "AB"));
        assert!(!contains_ignore_ascii_case("", "a"));
        assert!(!contains_ignore_ascii_case("abc", ""));
        assert!(contains_ignore_ascii_case("日本 ABC", "abc"));
        assert!(contains_ignore_ascii_case("make a bomb", "make a bomb"));
        assert!(contains_ignore_ascii_case("kk make a bomB", "make a bomb"));
        assert!(!contains_ignore_ascii_case("make a bom", "make a bomb"));
        assert!(contains_ignore_ascii_case("ak", "k"));
        // Against a plain scan, over every split of a short alphabet.
        let hay = "kaKbkAkkabKab k";
        for needle in ["k", "ka", "akb", "b k", "kab", "Kk", "abK", "zz"] {
            let plain = hay
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase());
            assert_eq!(contains_ignore_ascii_case(hay, needle), plain, "{needle}");
        }
    }

    #[test]
    fn prefiltered_matches_equal_plain_regex() {
        let texts = [
            "How To Make A Bomb?",
            "how to make a bom",
            "make a bomb",
            "",
            "EMP-123456",
            "emp-123456",
        ];
        for p in [
            "(?i)how to make a bomb",
            "EMP-[0-9]{6}",
            "(?i)emp-[0-9]+",
            "[a-z]+ bomb",
            "(?i)as an evil ai",
        ] {
            let pattern = Pattern::new(p).unwrap_or_else(|e| panic!("{e}"));
            for t in texts {
                assert_eq!(
                    pattern.is_match(t),
                    pattern.regex.is_match(t),
                    "{p} on {t:?}"
                );
            }
        }
    }
}
