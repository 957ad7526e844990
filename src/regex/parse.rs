//! The pattern parser: regex-lite 0.1.9's syntax, its errors and its limits,
//! into an arena of nodes (a flat `Vec`, so no deep drop or recursion on a
//! pattern like `a******…`).
//!
//! Acceptance must equal regex-lite's exactly, so the cursor moves as
//! regex-lite's does (where whitespace is skipped under `(?x)`, where it is
//! skipped always, what peeks past comments), and the tree is simplified
//! the same way (`x{1}` is `x`, `x{0}` is empty, one-element sequences
//! vanish) because the nesting limit is checked on the simplified tree.

use super::Error;

/// How deep groups (and repetitions, on the simplified tree) may nest.
const NEST_LIMIT: u32 = 50;

/// A zero-width assertion. The discriminants are regex-lite's: the size of
/// a state that holds an `Option<Look>` enters its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Look {
    Start = 1 << 0,
    End = 1 << 1,
    StartLf = 1 << 2,
    EndLf = 1 << 3,
    StartCrlf = 1 << 4,
    EndCrlf = 1 << 5,
    Word = 1 << 6,
    NotWord = 1 << 7,
    WordStart = 1 << 8,
    WordEnd = 1 << 9,
    WordStartHalf = 1 << 10,
    WordEndHalf = 1 << 11,
}

/// What a node is. Classes are sorted ranges of scalar values.
pub(super) enum Kind {
    Empty,
    Char(u32),
    Class(Vec<(u32, u32)>),
    Look(Look),
    Repeat {
        min: u32,
        max: Option<u32>,
        greedy: bool,
        sub: u32,
    },
    /// A capture group: its index and its name's length (0: unnamed).
    Group {
        index: u32,
        name_len: usize,
        sub: u32,
    },
    Concat(Vec<u32>),
    Alt(Vec<u32>),
}

/// A node and what the compiler needs to know about it.
pub(super) struct Node {
    pub kind: Kind,
    /// Whether it can match the empty string.
    pub empty: bool,
    /// Whether every match starts at the text's start (`\A`).
    pub anchored: bool,
}

/// A parsed pattern: the arena and its root.
pub(super) struct Hir {
    pub nodes: Vec<Node>,
    pub root: u32,
}

// Flags, as bits.
const CASE: u8 = 1;
const MULTI: u8 = 2;
const DOT_NL: u8 = 4;
const SWAP: u8 = 8;
const CRLF: u8 = 16;
const SPACE: u8 = 32;

/// Parses `pattern`, or says why regex-lite would refuse it.
pub(super) fn parse(pattern: &str) -> Result<Hir, Error> {
    let mut p = Parser {
        pat: pattern,
        pos: 0,
        flags: 0,
        depth: 0,
        captures: 0,
        names: Vec::new(),
        nodes: Vec::new(),
    };
    let root = p.alternation()?;
    check_nesting(&p.nodes, root, 0)?;
    Ok(Hir {
        nodes: p.nodes,
        root,
    })
}

/// Refuses a tree deeper than the nest limit (bounded recursion: it stops
/// at the limit).
fn check_nesting(nodes: &[Node], id: u32, depth: u32) -> Result<(), Error> {
    if depth > NEST_LIMIT {
        return Err(Error(ERR_NESTING));
    }
    let Some(node) = nodes.get(id as usize) else {
        return Ok(());
    };
    match &node.kind {
        Kind::Repeat { sub, .. } | Kind::Group { sub, .. } => check_nesting(nodes, *sub, depth + 1),
        Kind::Concat(subs) | Kind::Alt(subs) => subs
            .iter()
            .try_for_each(|&s| check_nesting(nodes, s, depth + 1)),
        _ => Ok(()),
    }
}

const ERR_NESTING: &str = "pattern has too much nesting";

struct Parser<'a> {
    pat: &'a str,
    /// Byte offset of the current character.
    pos: usize,
    flags: u8,
    /// How many `alternation` calls are open.
    depth: u32,
    /// The last capture index handed out.
    captures: u32,
    /// Capture names seen, sorted.
    names: Vec<&'a str>,
    nodes: Vec<Node>,
}

/// The cursor.
impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.pat.get(self.pos..).unwrap_or("")
    }

    fn cur(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn is(&self, c: char) -> bool {
        self.cur() == Some(c)
    }

    fn done(&self) -> bool {
        self.pos >= self.pat.len()
    }

    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Moves past the current character; whether one is left.
    fn bump(&mut self) -> bool {
        match self.cur() {
            Some(c) => {
                self.pos += c.len_utf8();
                !self.done()
            }
            None => false,
        }
    }

    fn bump_if(&mut self, prefix: &str) -> bool {
        let yes = self.rest().starts_with(prefix);
        if yes {
            self.pos += prefix.len();
        }
        yes
    }

    /// [`Self::bump`], then skips whitespace and comments under `(?x)`.
    fn bump_space_after(&mut self) -> bool {
        if !self.bump() {
            return false;
        }
        self.skip_space();
        !self.done()
    }

    /// Skips whitespace and `#` comments, under `(?x)` only.
    fn skip_space(&mut self) {
        if !self.has(SPACE) {
            return;
        }
        while let Some(c) = self.cur() {
            if c.is_whitespace() {
                self.bump();
            } else if c == '#' {
                self.bump();
                while let Some(c) = self.cur() {
                    self.bump();
                    if c == '\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    /// The character after the current one.
    fn peek(&self) -> Option<char> {
        let mut it = self.rest().chars();
        it.next()?;
        it.next()
    }

    /// The character after the current one, past whitespace and one `#`
    /// under `(?x)` (regex-lite's rule exactly: a comment's text is not
    /// skipped, and if nothing follows but whitespace, the next character
    /// is returned as is).
    fn peek_space(&self) -> Option<char> {
        if !self.has(SPACE) {
            return self.peek();
        }
        let mut it = self.rest().chars();
        it.next()?;
        let after = it.as_str();
        let mut hash = false;
        for c in after.chars() {
            if c.is_whitespace() {
                continue;
            }
            if !hash && c == '#' {
                hash = true;
                continue;
            }
            return Some(c);
        }
        after.chars().next()
    }
}

/// Node constructors, simplifying as regex-lite does.
impl Parser<'_> {
    fn push(&mut self, kind: Kind, empty: bool, anchored: bool) -> u32 {
        self.nodes.push(Node {
            kind,
            empty,
            anchored,
        });
        (self.nodes.len() - 1) as u32
    }

    fn node(&self, id: u32) -> (bool, bool) {
        self.nodes
            .get(id as usize)
            .map_or((false, false), |n| (n.empty, n.anchored))
    }

    fn empty(&mut self) -> u32 {
        self.push(Kind::Empty, true, false)
    }

    fn look(&mut self, look: Look) -> u32 {
        self.push(Kind::Look(look), true, look == Look::Start)
    }

    fn class(&mut self, ranges: Vec<(u32, u32)>) -> u32 {
        self.push(Kind::Class(ranges), false, false)
    }

    /// A literal, both ASCII cases of it under `(?i)`.
    fn char(&mut self, c: char) -> u32 {
        let c = c as u32;
        if self.has(CASE) {
            if let Some(f) = fold((c, c)) {
                let mut ranges = vec![(c, c), f];
                canonicalize(&mut ranges);
                return self.class(ranges);
            }
        }
        self.push(Kind::Char(c), false, false)
    }

    fn repeat(&mut self, min: u32, max: Option<u32>, greedy: bool, sub: u32) -> u32 {
        if min == 0 && max == Some(0) {
            return self.empty();
        }
        if min == 1 && max == Some(1) {
            return sub;
        }
        let (empty, anchored) = self.node(sub);
        let kind = Kind::Repeat {
            min,
            max,
            greedy,
            sub,
        };
        self.push(kind, min == 0 || empty, min > 0 && anchored)
    }

    fn group(&mut self, index: u32, name_len: usize, sub: u32) -> u32 {
        let (empty, anchored) = self.node(sub);
        let kind = Kind::Group {
            index,
            name_len,
            sub,
        };
        self.push(kind, empty, anchored)
    }

    fn concat(&mut self, mut subs: Vec<u32>) -> u32 {
        match subs.len() {
            0 => return self.empty(),
            1 => return subs.pop().unwrap_or(0),
            _ => {}
        }
        let anchored = self.node(subs[0]).1;
        let empty = subs.iter().all(|&s| self.node(s).0);
        self.push(Kind::Concat(subs), empty, anchored)
    }

    fn alt(&mut self, mut subs: Vec<u32>) -> u32 {
        if subs.len() == 1 {
            return subs.pop().unwrap_or(0);
        }
        let empty = subs.iter().any(|&s| self.node(s).0);
        let anchored = subs.iter().all(|&s| self.node(s).1);
        self.push(Kind::Alt(subs), empty, anchored)
    }
}

/// The grammar.
impl<'a> Parser<'a> {
    /// A sequence of alternatives, up to a `)` or the end.
    fn alternation(&mut self) -> Result<u32, Error> {
        let depth = self.depth;
        if depth > NEST_LIMIT {
            return Err(Error(ERR_NESTING));
        }
        self.depth += 1;
        let mut alts = Vec::new();
        let mut seq = Vec::new();
        loop {
            self.skip_space();
            let Some(c) = self.cur() else { break };
            match c {
                '(' => {
                    let old = self.flags;
                    if let Some(sub) = self.group_or_flags()? {
                        seq.push(sub);
                        self.flags = old;
                    }
                    if !self.is(')') {
                        return Err(Error("found open group without closing ')'"));
                    }
                    self.bump();
                }
                ')' => {
                    if depth == 0 {
                        return Err(Error("found closing ')' without matching '('"));
                    }
                    break;
                }
                '|' => {
                    let s = self.concat(core::mem::take(&mut seq));
                    alts.push(s);
                    self.bump();
                }
                '[' => {
                    let class = self.bracket()?;
                    seq.push(class);
                }
                '?' | '*' | '+' => self.uncounted(&mut seq, c)?,
                '{' => self.counted(&mut seq)?,
                _ => {
                    let p = self.primitive(c)?;
                    seq.push(p);
                }
            }
        }
        self.depth -= 1;
        let s = self.concat(seq);
        alts.push(s);
        Ok(self.alt(alts))
    }

    fn primitive(&mut self, c: char) -> Result<u32, Error> {
        self.bump();
        Ok(match c {
            '\\' => return self.escape(),
            '.' => {
                let ranges = if self.has(DOT_NL) {
                    vec![(0, 0x10FFFF)]
                } else if self.has(CRLF) {
                    vec![(0, 9), (11, 12), (14, 0x10FFFF)]
                } else {
                    vec![(0, 9), (11, 0x10FFFF)]
                };
                self.class(ranges)
            }
            '^' => self.look(match (self.has(MULTI), self.has(CRLF)) {
                (false, _) => Look::Start,
                (true, false) => Look::StartLf,
                (true, true) => Look::StartCrlf,
            }),
            '$' => self.look(match (self.has(MULTI), self.has(CRLF)) {
                (false, _) => Look::End,
                (true, false) => Look::EndLf,
                (true, true) => Look::EndCrlf,
            }),
            c => self.char(c),
        })
    }

    /// After a `\`.
    fn escape(&mut self) -> Result<u32, Error> {
        let Some(c) = self.cur() else {
            return Err(Error(
                "saw start of escape sequence, but saw end of pattern before it finished",
            ));
        };
        match c {
            '0'..='9' => return Err(Error("backreferences are not supported")),
            'p' | 'P' => return Err(Error("Unicode character classes are not supported")),
            'x' | 'u' | 'U' => return self.hex(c),
            'd' | 's' | 'w' | 'D' | 'S' | 'W' => {
                self.bump();
                let mut ranges = posix(match c.to_ascii_lowercase() {
                    'd' => "digit",
                    's' => "space",
                    _ => "word",
                })
                .unwrap_or_default();
                if c.is_ascii_uppercase() {
                    negate(&mut ranges);
                }
                return Ok(self.class(ranges));
            }
            _ => {}
        }
        self.bump();
        if is_meta(c) || (c.is_ascii() && !c.is_ascii_alphanumeric() && c != '<' && c != '>') {
            return Ok(self.char(c));
        }
        let special = match c {
            'a' => '\x07',
            'f' => '\x0C',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'v' => '\x0B',
            _ => {
                let look = match c {
                    'A' => Look::Start,
                    'z' => Look::End,
                    'b' => {
                        if self.is('{') {
                            if let Some(look) = self.special_word_boundary()? {
                                return Ok(self.look(look));
                            }
                        }
                        Look::Word
                    }
                    'B' => Look::NotWord,
                    '<' => Look::WordStart,
                    '>' => Look::WordEnd,
                    _ => return Err(Error("unrecognized escape sequence")),
                };
                return Ok(self.look(look));
            }
        };
        Ok(self.char(special))
    }

    /// `\b{start}` and friends; `None` (cursor back on `{`) when what
    /// follows the brace is no name (then it is a repetition).
    fn special_word_boundary(&mut self) -> Result<Option<Look>, Error> {
        let start = self.pos;
        if !self.bump_space_after() {
            return Err(Error(
                "found start of special word boundary or repetition without an end",
            ));
        }
        let valid = |c: Option<char>| matches!(c, Some('A'..='Z' | 'a'..='z' | '-'));
        if !valid(self.cur()) {
            self.pos = start;
            return Ok(None);
        }
        // The name, whitespace skipped under `(?x)`; only short names exist.
        let mut name = [0u8; 11];
        let mut len = 0;
        while let Some(c) = self.cur().filter(|&c| valid(Some(c))) {
            if let Some(b) = name.get_mut(len) {
                *b = c as u8;
            }
            len += 1;
            self.bump_space_after();
        }
        if !self.is('}') {
            return Err(Error(
                "special word boundary assertion is unclosed or has an invalid character",
            ));
        }
        self.bump();
        Ok(Some(match name.get(..len).unwrap_or(b"") {
            b"start" => Look::WordStart,
            b"end" => Look::WordEnd,
            b"start-half" => Look::WordStartHalf,
            b"end-half" => Look::WordEndHalf,
            _ => return Err(Error("special word boundary assertion is unrecognized")),
        }))
    }

    /// `\x..`, `\u....`, `\U........` or any of them with `{…}`; the cursor
    /// is on the letter.
    fn hex(&mut self, letter: char) -> Result<u32, Error> {
        let digits = match letter {
            'x' => 2,
            'u' => 4,
            _ => 8,
        };
        if !self.bump_space_after() {
            return Err(Error(
                "expected hexadecimal number, but saw end of pattern first",
            ));
        }
        let mut value = Some(0u32);
        let mut add = |c: char| {
            let d = c.to_digit(16).unwrap_or(0);
            value = value.and_then(|v| v.checked_mul(16)?.checked_add(d));
        };
        let braced = self.is('{');
        if braced {
            let mut any = false;
            while self.bump_space_after() && !self.is('}') {
                match self.cur() {
                    Some(c) if c.is_ascii_hexdigit() => add(c),
                    _ => {
                        return Err(Error(
                            "expected hexadecimal number in braces, but got non-hex digit",
                        ))
                    }
                }
                any = true;
            }
            if self.done() {
                return Err(Error(
                    "expected hexadecimal number, but saw end of pattern before closing brace",
                ));
            }
            self.bump_space_after();
            if !any {
                return Err(Error(
                    "expected hexadecimal number in braces, but got no digits",
                ));
            }
        } else {
            for i in 0..digits {
                if i > 0 && !self.bump_space_after() {
                    return Err(Error(
                        "expected fixed length hexadecimal number, but saw end of pattern first",
                    ));
                }
                match self.cur() {
                    Some(c) if c.is_ascii_hexdigit() => add(c),
                    _ => {
                        return Err(Error(
                            "expected fixed length hexadecimal number, but got non-hex digit",
                        ))
                    }
                }
            }
            self.bump_space_after();
        }
        match value.and_then(char::from_u32) {
            Some(c) => Ok(self.char(c)),
            None if braced => Err(Error("got invalid hexadecimal number in braces")),
            None => Err(Error("got invalid fixed length hexadecimal number")),
        }
    }

    /// A decimal in a counted repetition, whitespace around it allowed
    /// (always, as in regex-lite).
    fn decimal(&mut self) -> Result<u32, Error> {
        while self.cur().is_some_and(char::is_whitespace) {
            self.bump();
        }
        let mut value = Some(0u32);
        let mut any = false;
        while let Some(d) = self.cur().and_then(|c| c.to_digit(10)) {
            value = value.and_then(|v| v.checked_mul(10)?.checked_add(d));
            any = true;
            self.bump_space_after();
        }
        while self.cur().is_some_and(char::is_whitespace) {
            self.bump_space_after();
        }
        if !any {
            return Err(Error("expected decimal number, but found no digits"));
        }
        value.ok_or(Error("got invalid decimal number"))
    }

    /// Whether a repetition is greedy, given whether it was marked lazy.
    fn greedy(&self, lazy: bool) -> bool {
        lazy == self.has(SWAP)
    }

    /// `?`, `*` or `+` (the cursor is on it) applied to the last item.
    fn uncounted(&mut self, seq: &mut Vec<u32>, op: char) -> Result<(), Error> {
        let Some(sub) = seq.pop() else {
            return Err(Error(
                "uncounted repetition operator must be applied to a sub-expression",
            ));
        };
        let (min, max) = match op {
            '?' => (0, Some(1)),
            '*' => (0, None),
            _ => (1, None),
        };
        let lazy = self.bump() && self.is('?');
        if lazy {
            self.bump();
        }
        let greedy = self.greedy(lazy);
        let r = self.repeat(min, max, greedy, sub);
        seq.push(r);
        Ok(())
    }

    /// `{n}`, `{n,}` or `{n,m}` (the cursor is on the brace) applied to the
    /// last item.
    fn counted(&mut self, seq: &mut Vec<u32>) -> Result<(), Error> {
        let Some(sub) = seq.pop() else {
            return Err(Error(
                "counted repetition operator must be applied to a sub-expression",
            ));
        };
        if !self.bump_space_after() {
            return Err(Error("found unclosed counted repetition operator"));
        }
        let min = self.decimal()?;
        let mut max = Some(min);
        if self.done() {
            return Err(Error(
                "found incomplete and unclosed counted repetition operator",
            ));
        }
        if self.is(',') {
            if !self.bump_space_after() {
                return Err(Error(
                    "found counted repetition operator with a comma that is unclosed",
                ));
            }
            max = if self.is('}') {
                None
            } else {
                Some(self.decimal()?)
            };
            if self.done() {
                return Err(Error(
                    "found counted repetition with min and max that is unclosed",
                ));
            }
        }
        if !self.is('}') {
            return Err(Error(
                "expected closing brace for counted repetition, but got something else",
            ));
        }
        let lazy = self.bump_space_after() && self.is('?');
        if lazy {
            self.bump();
        }
        let greedy = self.greedy(lazy);
        if max.is_some_and(|max| min > max) {
            return Err(Error(
                "found counted repetition with a min bigger than its max",
            ));
        }
        let r = self.repeat(min, max, greedy, sub);
        seq.push(r);
        Ok(())
    }

    /// After a `(`: a group, or `None` for a flag directive like `(?i)`
    /// (whose flags then stay set). The cursor ends on the `)`.
    fn group_or_flags(&mut self) -> Result<Option<u32>, Error> {
        self.bump_space_after();
        if ["?=", "?!", "?<=", "?<!"].iter().any(|p| self.bump_if(p)) {
            return Err(Error("look-around is not supported"));
        }
        if self.bump_if("?P<") || self.bump_if("?<") {
            let index = self.next_capture()?;
            let name_len = self.capture_name()?;
            let sub = self.alternation()?;
            return Ok(Some(self.group(index, name_len, sub)));
        }
        if self.bump_if("?") {
            if self.done() {
                return Err(Error("expected closing ')', but got end of pattern"));
            }
            let start = self.pos;
            self.flags = self.parse_flags()?;
            if self.is(')') {
                if self.pos == start {
                    return Err(Error("empty flag directive '(?)' is not allowed"));
                }
                return Ok(None);
            }
            self.bump();
            return self.alternation().map(Some);
        }
        let index = self.next_capture()?;
        let sub = self.alternation()?;
        Ok(Some(self.group(index, 0, sub)))
    }

    fn next_capture(&mut self) -> Result<u32, Error> {
        self.captures = self
            .captures
            .checked_add(1)
            .ok_or(Error("too many capture groups"))?;
        Ok(self.captures)
    }

    /// A capture name and its `>`; its length.
    fn capture_name(&mut self) -> Result<usize, Error> {
        if self.done() {
            return Err(Error("expected capture group name, but got end of pattern"));
        }
        let start = self.pos;
        while let Some(c) = self.cur() {
            if c == '>' {
                break;
            }
            let ok = c == '_'
                || if self.pos == start {
                    c.is_alphabetic()
                } else {
                    c == '.' || c == '[' || c == ']' || c.is_alphanumeric()
                };
            if !ok {
                return Err(Error("invalid group name"));
            }
            if !self.bump() {
                break;
            }
        }
        let end = self.pos;
        if self.done() {
            return Err(Error(
                "expected end of capture group name, but got end of pattern",
            ));
        }
        self.bump();
        let name = self.pat.get(start..end).unwrap_or("");
        if name.is_empty() {
            return Err(Error("empty capture group names are not allowed"));
        }
        match self.names.binary_search(&name) {
            Ok(_) => Err(Error("duplicate capture group name")),
            Err(i) => {
                self.names.insert(i, name);
                Ok(name.len())
            }
        }
    }

    /// The flags of `(?flags)` or `(?flags:`, up to the `:` or `)`.
    fn parse_flags(&mut self) -> Result<u8, Error> {
        let mut flags = self.flags;
        let mut negate = false;
        let mut dangling = false;
        let mut seen = 0u8;
        loop {
            let c = match self.cur() {
                Some(':' | ')') | None => break,
                Some(c) => c,
            };
            if c == '-' {
                dangling = true;
                if negate {
                    return Err(Error("inline flag negation cannot be repeated"));
                }
                negate = true;
            } else {
                dangling = false;
                let bit = match c {
                    'i' => CASE,
                    'm' => MULTI,
                    's' => DOT_NL,
                    'U' => SWAP,
                    'R' => CRLF,
                    'x' => SPACE,
                    'u' => 64,
                    _ => return Err(Error("unrecognized inline flag")),
                };
                if negate {
                    flags &= !bit;
                } else {
                    flags |= bit;
                }
                if seen & bit != 0 {
                    return Err(Error("duplicate inline flag is not allowed"));
                }
                seen |= bit;
            }
            if !self.bump() {
                return Err(Error(
                    "expected ':' or ')' to end inline flags, but got end of pattern",
                ));
            }
        }
        if dangling {
            return Err(Error("inline flags cannot end with negation directive"));
        }
        Ok(flags & !64)
    }

    /// A bracketed class; the cursor is on the `[`.
    fn bracket(&mut self) -> Result<u32, Error> {
        const UNCLOSED: &str = "found unclosed character class";
        const AFTER_DASH: &str = "non-empty character class has no closing bracket after dash";
        let mut union = Vec::new();
        if !self.bump_space_after() {
            return Err(Error(UNCLOSED));
        }
        let negated = self.is('^');
        if negated && !self.bump_space_after() {
            return Err(Error("negated character class has no closing bracket"));
        }
        while self.is('-') {
            union.push((b'-' as u32, b'-' as u32));
            if !self.bump_space_after() {
                return Err(Error(AFTER_DASH));
            }
        }
        if union.is_empty() && self.is(']') {
            union.push((b']' as u32, b']' as u32));
            if !self.bump_space_after() {
                return Err(Error(
                    "character class begins with literal ']' but has no closing bracket",
                ));
            }
        }
        loop {
            self.skip_space();
            let Some(c) = self.cur() else {
                return Err(Error(UNCLOSED));
            };
            let next = self.peek();
            match c {
                '[' => match self.posix_class() {
                    Some(ranges) => union.extend_from_slice(&ranges),
                    None => return Err(Error("nested character classes are not supported")),
                },
                ']' => {
                    self.bump();
                    canonicalize(&mut union);
                    if self.has(CASE) {
                        for i in 0..union.len() {
                            if let Some(f) = fold(union[i]) {
                                union.push(f);
                            }
                        }
                        canonicalize(&mut union);
                    }
                    if negated {
                        negate(&mut union);
                    }
                    return Ok(self.class(union));
                }
                '&' if next == Some('&') => {
                    return Err(Error("character class intersection is not supported"))
                }
                '-' if next == Some('-') => {
                    return Err(Error("character class difference is not supported"))
                }
                '~' if next == Some('~') => {
                    return Err(Error(
                        "character class symmetric difference is not supported",
                    ))
                }
                _ => {
                    let first = self.class_item()?;
                    self.skip_space();
                    if self.done() {
                        return Err(Error("non-empty character class has no closing bracket"));
                    }
                    if !self.is('-') || matches!(self.peek_space(), Some(']' | '-')) {
                        union.extend_from_slice(&self.item_ranges(first)?);
                        continue;
                    }
                    if !self.bump_space_after() {
                        return Err(Error(AFTER_DASH));
                    }
                    let last = self.class_item()?;
                    let (lo, hi) = (self.item_char(first)?, self.item_char(last)?);
                    if lo > hi {
                        return Err(Error("invalid range in character class"));
                    }
                    union.push((lo, hi));
                }
            }
        }
    }

    /// One item of a bracketed class: a character or an escape (then any
    /// node an escape makes, refused later if it is no char or class).
    fn class_item(&mut self) -> Result<u32, Error> {
        let c = self.cur().unwrap_or('\0');
        self.bump();
        if c == '\\' {
            self.escape()
        } else {
            Ok(self.push(Kind::Char(c as u32), false, false))
        }
    }

    fn item_ranges(&self, id: u32) -> Result<Vec<(u32, u32)>, Error> {
        match self.nodes.get(id as usize).map(|n| &n.kind) {
            Some(Kind::Char(c)) => Ok(vec![(*c, *c)]),
            Some(Kind::Class(r)) => Ok(r.clone()),
            _ => Err(Error("invalid escape sequence in character class")),
        }
    }

    fn item_char(&self, id: u32) -> Result<u32, Error> {
        match self.nodes.get(id as usize).map(|n| &n.kind) {
            Some(Kind::Char(c)) => Ok(*c),
            _ => Err(Error(
                "character class ranges must start and end with a single character",
            )),
        }
    }

    /// `[:name:]` or `[:^name:]` with a known name; otherwise `None` with
    /// the cursor back on the `[`.
    fn posix_class(&mut self) -> Option<Vec<(u32, u32)>> {
        let start = self.pos;
        let found = self.posix_class_at();
        if found.is_none() {
            self.pos = start;
        }
        found
    }

    fn posix_class_at(&mut self) -> Option<Vec<(u32, u32)>> {
        if !self.bump() || !self.is(':') || !self.bump() {
            return None;
        }
        let negated = self.is('^');
        if negated && !self.bump() {
            return None;
        }
        let name_start = self.pos;
        while !self.is(':') && self.bump() {}
        if self.done() {
            return None;
        }
        let name = self.pat.get(name_start..self.pos)?;
        if !self.bump_if(":]") {
            return None;
        }
        let mut ranges = posix(name)?;
        if negated {
            negate(&mut ranges);
        }
        Some(ranges)
    }
}

/// Characters that `\` makes literal, beside other ASCII punctuation.
fn is_meta(c: char) -> bool {
    "\\.+*?()|[]{}^$#&-~".contains(c)
}

/// An ASCII class by name, canonical.
fn posix(name: &str) -> Option<Vec<(u32, u32)>> {
    let ranges: &[u8] = match name {
        "alnum" => b"09AZaz",
        "alpha" => b"AZaz",
        "ascii" => b"\x00\x7F",
        "blank" => b"\t\t  ",
        "cntrl" => b"\x00\x1F\x7F\x7F",
        "digit" => b"09",
        "graph" => b"!~",
        "lower" => b"az",
        "print" => b" ~",
        "punct" => b"!/:@[`{~",
        "space" => b"\t\r  ",
        "upper" => b"AZ",
        "word" => b"09AZ__az",
        "xdigit" => b"09AFaf",
        _ => return None,
    };
    Some(
        ranges
            .chunks(2)
            .map(|p| (u32::from(p[0]), u32::from(p[p.len() - 1])))
            .collect(),
    )
}

/// Sorts ranges and merges the overlapping or adjacent ones.
fn canonicalize(ranges: &mut Vec<(u32, u32)>) {
    crate::sort::sort(ranges);
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for &(s, e) in ranges.iter() {
        match out.last_mut() {
            Some(last) if s.max(last.0) <= e.min(last.1).saturating_add(1) => {
                *last = (last.0.min(s), last.1.max(e));
            }
            _ => out.push((s, e)),
        }
    }
    *ranges = out;
}

/// The other ASCII case of the letters in a range: the lower-case part's
/// upper case if it has one, else the upper-case part's lower case.
fn fold((s, e): (u32, u32)) -> Option<(u32, u32)> {
    for (lo, hi, up) in [(b'a', b'z', false), (b'A', b'Z', true)] {
        let (lo, hi) = (u32::from(lo), u32::from(hi));
        let (a, b) = (s.max(lo), e.min(hi));
        if a <= b {
            return Some(if up {
                (a + 32, b + 32)
            } else {
                (a - 32, b - 32)
            });
        }
    }
    None
}

/// The complement of canonical ranges among scalar values, the surrogate
/// gap skipped as regex-lite skips it (between two ranges that only the
/// gap separates, it leaves an inverted range that matches nothing).
fn negate(ranges: &mut Vec<(u32, u32)>) {
    let next = |c: u32| {
        if c == 0xD7FF {
            0xE000
        } else {
            c.saturating_add(1)
        }
    };
    let prev = |c: u32| {
        if c == 0xE000 {
            0xD7FF
        } else {
            c.saturating_sub(1)
        }
    };
    let mut out = Vec::with_capacity(ranges.len() + 1);
    match ranges.first() {
        None => out.push((0, 0x10FFFF)),
        Some(&(s, _)) if s > 0 => out.push((0, prev(s))),
        Some(_) => {}
    }
    for w in ranges.windows(2) {
        out.push((next(w[0].1), prev(w[1].0)));
    }
    if let Some(&(_, e)) = ranges.last() {
        if e < 0x10FFFF {
            out.push((next(e), 0x10FFFF));
        }
    }
    *ranges = out;
}
