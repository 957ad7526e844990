//! A small regex engine with regex-lite 0.1.9's syntax and semantics, to
//! keep regex-lite (~35 KB of the module) out of the `.wasm`.
//!
//! The same patterns are accepted (its nesting and size limits included),
//! refused with the same messages, and match the same spans: leftmost-first,
//! on whole scalar values, `find_iter` stepping over an empty match that
//! touches the previous one as regex-lite does. Classes and `\b` are ASCII
//! (`\w` is `[0-9A-Za-z_]`) and `(?i)` folds ASCII letters only, as there.
//! Matching is a Pike VM: linear in the text for any pattern.
//!
//! - [`parse`]: the syntax, into a flat tree;
//! - [`compile`]: the tree into a Thompson NFA, with regex-lite's size limit;
//! - [`vm`]: the search.

mod compile;
mod parse;
mod vm;

#[cfg(test)]
mod tests;

/// Why a pattern was refused; displays as regex-lite's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error(&'static str);

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

/// A compiled pattern.
pub struct Regex {
    nfa: compile::Nfa,
    pattern: Box<str>,
}

impl core::fmt::Debug for Regex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Regex").field(&&*self.pattern).finish()
    }
}

/// Where a match is, in bytes of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    start: usize,
    end: usize,
}

impl Match {
    /// The first byte of the match.
    pub fn start(&self) -> usize {
        self.start
    }

    /// The byte after the match.
    pub fn end(&self) -> usize {
        self.end
    }
}

impl Regex {
    /// Compiles `pattern` (regex-lite syntax).
    pub fn new(pattern: &str) -> Result<Regex, Error> {
        let hir = parse::parse(pattern)?;
        let nfa = compile::compile(&hir)?;
        Ok(Regex {
            nfa,
            pattern: pattern.into(),
        })
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        let mut cache = vm::Cache::new(&self.nfa);
        vm::search(&self.nfa, &mut cache, text, 0, true).is_some()
    }

    /// The leftmost-first match in `text`.
    pub fn find(&self, text: &str) -> Option<Match> {
        let mut cache = vm::Cache::new(&self.nfa);
        let (start, end) = vm::search(&self.nfa, &mut cache, text, 0, false)?;
        Some(Match { start, end })
    }

    /// Every successive non-overlapping match in `text`.
    pub fn find_iter<'r, 't>(&'r self, text: &'t str) -> Matches<'r, 't> {
        Matches {
            re: self,
            text,
            at: 0,
            last_end: None,
            cache: vm::Cache::new(&self.nfa),
        }
    }
}

/// The iterator of [`Regex::find_iter`].
pub struct Matches<'r, 't> {
    re: &'r Regex,
    text: &'t str,
    at: usize,
    last_end: Option<usize>,
    cache: vm::Cache,
}

impl Matches<'_, '_> {
    fn search(&mut self) -> Option<(usize, usize)> {
        vm::search(&self.re.nfa, &mut self.cache, self.text, self.at, false)
    }
}

impl Iterator for Matches<'_, '_> {
    type Item = Match;

    fn next(&mut self) -> Option<Match> {
        let mut m = self.search()?;
        // An empty match where the last match ended is skipped: search
        // again one character on.
        if m.0 >= m.1 && Some(m.1) == self.last_end {
            let step = self
                .text
                .get(self.at..)
                .and_then(|t| t.chars().next())
                .map_or(1, char::len_utf8);
            self.at += step;
            m = self.search()?;
        }
        self.at = m.1;
        self.last_end = Some(m.1);
        Some(Match {
            start: m.0,
            end: m.1,
        })
    }
}
