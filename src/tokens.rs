//! Token estimation when a provider reports no `usage`.
//!
//! A Unicode-aware rule of thumb, close to BPE tokenizers on real text:
//! ASCII text costs one token per 4 characters, CJK ideographs, kana and
//! hangul one token each, other non-ASCII characters one token per 2.
//! Counts accumulate over pieces (stream deltas) and are rounded once.

/// Character counts of the text seen so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TokenCounter {
    ascii: u64,
    cjk: u64,
    other: u64,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF      // Hangul Jamo
        | 0x2E80..=0x2FDF    // CJK radicals
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3100..=0x31BF    // Bopomofo
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF00..=0xFFEF    // half/full-width forms
        | 0x20000..=0x3FFFF) // CJK Extensions B+
}

impl TokenCounter {
    /// Adds a piece of text.
    pub fn add(&mut self, text: &str) {
        if crate::bytes::is_ascii(text.as_bytes()) {
            self.ascii += text.len() as u64;
            return;
        }
        for c in text.chars() {
            if c.is_ascii() {
                self.ascii += 1;
            } else if is_cjk(c) {
                self.cjk += 1;
            } else {
                self.other += 1;
            }
        }
    }

    /// Adds `n` characters of text known to be ASCII.
    pub fn add_ascii(&mut self, n: usize) {
        self.ascii += n as u64;
    }

    /// The estimated number of tokens.
    pub fn tokens(&self) -> u64 {
        self.ascii.div_ceil(4) + self.cjk + self.other.div_ceil(2)
    }
}

/// Estimates the tokens of one text.
pub fn estimate(text: &str) -> u64 {
    let mut c = TokenCounter::default();
    c.add(text);
    c.tokens()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_about_four_characters_per_token() {
        assert_eq!(estimate(""), 0);
        assert_eq!(estimate("abcd"), 1);
        assert_eq!(estimate("abcde"), 2);
        assert_eq!(estimate(&"hello world ".repeat(100)), 300);
    }

    #[test]
    fn cjk_is_not_counted_as_characters_over_four() {
        // 12 ideographs: a chars/4 rule would say 3; tokenizers say ~12.
        assert_eq!(estimate("我们今天讨论的是模型实验"), 12);
        assert_eq!(estimate("こんにちは"), 5);
        assert_eq!(estimate("안녕하세요"), 5);
        assert_eq!(estimate("Привет мир"), 6); // 9 Cyrillic / 2, 1 space / 4, rounded up
    }

    #[test]
    fn pieces_add_up_like_the_whole() {
        let mut c = TokenCounter::default();
        for piece in ["Hel", "lo, ", "wor", "ld! 你好"] {
            c.add(piece);
        }
        assert_eq!(c.tokens(), estimate("Hello, world! 你好"));
    }
}
