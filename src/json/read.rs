//! A JSON reader for the hot path's typed reads: what the filter reads of
//! every request body, answer and stream event, read by hand into the same
//! structs serde's derive would fill, instead of serde's derived
//! deserializers (and the serde_json code only they instantiate), which
//! were the largest part of the `.wasm` after the configuration's.
//!
//! It accepts exactly what `serde_json::from_str`/`from_slice` into those
//! structs accepts, with the same values: strict JSON (serde_json's
//! escapes, surrogate pairs, number grammar, no trailing commas, nothing
//! but whitespace after the document); a struct as an object whose unknown
//! keys are skipped and whose repeated known key refuses the document, or
//! as an array of its fields in order (serde accepts it); `null` for an
//! `Option`; integers without fraction, exponent or sign, in range; UTF-8
//! checked where serde_json checks it on bytes (decoded strings, keys, raw
//! values, not skipped strings); serde_json's depth limit of 128 on typed
//! containers (skipped values have none). Refusals carry no message: the
//! callers only ask whether the document reads. The derives stay in the
//! native test build, where `reads_as_serde_does` compares both on every
//! broken variant of the events and answers providers send.

use super::value::{Map, Number, Value};
use std::borrow::Cow;

/// The document does not read as the type asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bad;

/// A read's result.
pub type R<T> = Result<T, Bad>;

/// A JSON value as it is in the document (serde_json's `RawValue`): no
/// whitespace around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// Wraps a value's text (it must be one JSON value, as serde_json's
    /// `RawValue` gives it).
    pub fn new(json: &'a str) -> Self {
        Raw(json)
    }

    /// The value's text.
    pub fn get(&self) -> &'a str {
        self.0
    }
}

#[cfg(test)]
impl<'de: 'a, 'a> serde::Deserialize<'de> for Raw<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a serde_json::value::RawValue>::deserialize(d).map(|r| Raw(r.get()))
    }
}

/// A type read from JSON as serde's derive reads it through serde_json.
pub trait FromJson<'a>: Sized {
    /// Reads one value at the cursor (whitespace before it allowed).
    fn read(r: &mut Reader<'a>) -> R<Self>;
}

/// Reads `T` from the whole of `text`, as `serde_json::from_str` would.
pub fn from_str<'a, T: FromJson<'a>>(text: &'a str) -> R<T> {
    Reader::new(text.as_bytes(), Some(text)).read_document()
}

/// Reads `T` from the whole of `bytes`, as `serde_json::from_slice` would.
pub fn from_slice<'a, T: FromJson<'a>>(bytes: &'a [u8]) -> R<T> {
    Reader::new(bytes, None).read_document()
}

/// Whether `text` is one JSON value (serde_json's `IgnoredAny`).
pub fn is_json(text: &str) -> bool {
    from_str::<Skip>(text).is_ok()
}

/// A value read and thrown away (serde's `IgnoredAny`).
pub struct Skip;

impl<'a> FromJson<'a> for Skip {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        r.skip().map(|_| Skip)
    }
}

/// serde_json's nesting limit for typed containers.
const DEPTH: u8 = 128;

/// Moves `at` past JSON whitespace in `s`; the byte there.
pub fn skip_ws(s: &[u8], at: &mut usize) -> Option<u8> {
    while let Some(&b) = s.get(*at) {
        if !matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
            return Some(b);
        }
        *at += 1;
    }
    None
}

/// What kind of refusal serde_json would have made (its error category).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Not JSON.
    Syntax,
    /// JSON cut short.
    Eof,
    /// JSON that does not fit the type (a repeated field, a wrong type).
    Data,
}

/// Which of serde_json's errors a refusal is (its `ErrorCode`, for the
/// errors of reading JSON; [`Code::Data`] for a type's refusal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    EofList,
    EofObject,
    EofString,
    EofValue,
    Colon,
    ListCommaOrEnd,
    ObjectCommaOrEnd,
    Ident,
    Value,
    Escape,
    Number,
    OutOfRange,
    CodePoint,
    Control,
    KeyString,
    LoneSurrogate,
    TrailingComma,
    Trailing,
    HexEnd,
    Recursion,
    /// The JSON does not fit the type.
    Data,
}

impl Code {
    /// serde_json's message for it.
    pub fn message(self) -> &'static str {
        match self {
            Code::EofList => "EOF while parsing a list",
            Code::EofObject => "EOF while parsing an object",
            Code::EofString => "EOF while parsing a string",
            Code::EofValue => "EOF while parsing a value",
            Code::Colon => "expected `:`",
            Code::ListCommaOrEnd => "expected `,` or `]`",
            Code::ObjectCommaOrEnd => "expected `,` or `}`",
            Code::Ident => "expected ident",
            Code::Value => "expected value",
            Code::Escape => "invalid escape",
            Code::Number => "invalid number",
            Code::OutOfRange => "number out of range",
            Code::CodePoint => "invalid unicode code point",
            Code::Control => "control character (\\u0000-\\u001F) found while parsing a string",
            Code::KeyString => "key must be a string",
            Code::LoneSurrogate => "lone leading surrogate in hex escape",
            Code::TrailingComma => "trailing comma",
            Code::Trailing => "trailing characters",
            Code::HexEnd => "unexpected end of hex escape",
            Code::Recursion => "recursion limit exceeded",
            Code::Data => "invalid data",
        }
    }

    /// Its category.
    pub fn kind(self) -> Kind {
        match self {
            Code::EofList | Code::EofObject | Code::EofString | Code::EofValue => Kind::Eof,
            Code::Data => Kind::Data,
            _ => Kind::Syntax,
        }
    }
}

/// Where and why serde_json would have refused a document: its reader's
/// index at the error, and the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// serde_json's reader index (what its `position_of_index` reads).
    pub index: usize,
    /// The error.
    pub code: Code,
}

impl Failure {
    /// The error's category.
    pub fn kind(&self) -> Kind {
        self.code.kind()
    }

    /// serde_json's line and column of the failure in `doc`.
    pub fn line_column(&self, doc: &[u8]) -> (usize, usize) {
        line_column(doc, self.index)
    }
}

/// The line and column serde_json reports for its reader at `index` of
/// `doc` (its `position_of_index`).
pub fn line_column(doc: &[u8], index: usize) -> (usize, usize) {
    let i = index.min(doc.len());
    let start_of_line = doc[..i]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line = 1 + doc[..start_of_line].iter().filter(|&&b| b == b'\n').count();
    (line, i - start_of_line)
}

/// Reads `T` from the whole of `text`; on a refusal, where and why
/// serde_json would have refused it.
pub fn from_str_or_failure<'a, T: FromJson<'a>>(text: &'a str) -> Result<T, Failure> {
    from_text_or_failure(text, false)
}

/// [`from_str_or_failure`], told whether `text` is all ASCII (as its
/// caller found when checking its UTF-8): then [`Reader::strings`] says
/// which strings are ASCII without looking at them again.
pub fn from_text_or_failure<'a, T: FromJson<'a>>(text: &'a str, ascii: bool) -> Result<T, Failure> {
    let mut r = Reader::new(text.as_bytes(), Some(text));
    r.ascii = ascii;
    r.read_document().map_err(|_| r.failure)
}

/// Reads `T` from the whole of `bytes`, or where and why serde_json would
/// have refused them.
pub fn from_slice_or_failure<'a, T: FromJson<'a>>(bytes: &'a [u8]) -> Result<T, Failure> {
    let mut r = Reader::new(bytes, None);
    r.read_document().map_err(|_| r.failure)
}

/// Reads the `T` at the start of `bytes` (what follows it is not looked
/// at, as serde_json's `Deserializer` leaves it unless `end` is called),
/// or where and why serde_json would have refused it.
pub fn prefix_or_failure<'a, T: FromJson<'a>>(bytes: &'a [u8]) -> Result<T, Failure> {
    let mut r = Reader::new(bytes, None);
    T::read(&mut r).map_err(|_| r.failure)
}

/// `n * 10 + digit`, or `None` past `u64`: compared, not multiplied with
/// overflow checks (`checked_mul` is a 128-bit multiply call on wasm32).
fn decimal_step(n: u64, digit: u8) -> Option<u64> {
    const MAX: u64 = u64::MAX / 10;
    if n > MAX || (n == MAX && u64::from(digit) > u64::MAX % 10) {
        return None;
    }
    Some(n * 10 + u64::from(digit))
}

/// A position in a document.
pub struct Reader<'a> {
    s: &'a [u8],
    /// The same bytes as text, when they came as text (no UTF-8 to check).
    text: Option<&'a str>,
    /// Every byte is ASCII (known to the caller): a string read without
    /// escapes is ASCII text.
    ascii: bool,
    at: usize,
    /// Typed containers that may still open (serde_json's `remaining_depth`).
    depth: u8,
    /// The brackets a skipped value has open.
    open: Vec<u8>,
    /// The last refusal.
    failure: Failure,
}

impl<'a> Reader<'a> {
    fn new(s: &'a [u8], text: Option<&'a str>) -> Self {
        Reader {
            s,
            text,
            ascii: false,
            at: 0,
            depth: DEPTH,
            open: Vec::new(),
            failure: Failure {
                index: 0,
                code: Code::Value,
            },
        }
    }

    fn read_document<T: FromJson<'a>>(&mut self) -> R<T> {
        let value = T::read(self)?;
        match self.peek() {
            None => Ok(value),
            Some(_) => Err(self.stop(self.at, Code::Trailing)),
        }
    }

    /// A refusal blamed on the byte at `j` (serde_json's index is past it).
    fn stop(&mut self, j: usize, code: Code) -> Bad {
        self.failure = Failure {
            index: (j + 1).min(self.s.len()),
            code,
        };
        Bad
    }

    /// A refusal of the byte at the cursor (`code`), or of the end of the
    /// document (`eof`).
    fn refuse(&mut self, eof: Code, code: Code) -> Bad {
        let code = if self.at >= self.s.len() { eof } else { code };
        self.stop(self.at, code)
    }

    /// A refusal of a value that cannot start here (serde_json's
    /// `expected value`).
    fn unexpected(&mut self) -> Bad {
        self.refuse(Code::EofValue, Code::Value)
    }

    fn fail(&mut self, failure: Failure) -> Bad {
        self.failure = failure;
        Bad
    }

    /// Skips whitespace; the byte there.
    fn peek(&mut self) -> Option<u8> {
        skip_ws(self.s, &mut self.at)
    }

    fn byte(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    /// `s[start..end]` as text: checked UTF-8 when the document is bytes
    /// (serde_json blames bad UTF-8 on the byte before `end`).
    fn text(&mut self, start: usize, end: usize) -> R<&'a str> {
        let text = match self.text {
            Some(t) => t.get(start..end).ok_or(0),
            None => {
                let bytes = self.s.get(start..end).unwrap_or_default();
                crate::bytes::utf8(bytes).map_err(|e| e.valid_up_to())
            }
        };
        // serde_json blames the first byte that is not UTF-8.
        text.map_err(|valid| self.stop(start + valid, Code::CodePoint))
    }

    /// `lit` at the cursor (its first byte already seen).
    fn literal(&mut self, lit: &[u8]) -> R<()> {
        for (k, &want) in lit.iter().enumerate() {
            match self.s.get(self.at + k) {
                Some(&b) if b == want => {}
                Some(_) => return Err(self.stop(self.at + k, Code::Ident)),
                None => return Err(self.stop(self.s.len(), Code::EofValue)),
            }
        }
        self.at += lit.len();
        Ok(())
    }

    /// Whether the value at the cursor is `null` (then read); serde_json's
    /// `deserialize_option`.
    pub fn null(&mut self) -> R<bool> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null").map(|_| true)
    }

    /// Opens a typed container at the cursor.
    fn enter(&mut self) -> R<()> {
        self.depth -= 1;
        if self.depth == 0 {
            return Err(self.stop(self.at, Code::Recursion));
        }
        self.at += 1;
        Ok(())
    }

    /// Closes it (the cursor at its closing bracket).
    fn leave(&mut self) {
        self.depth += 1;
        self.at += 1;
    }

    /// Whether another element follows in an array (serde_json's
    /// `has_next_element`).
    fn next_element(&mut self, first: bool) -> R<bool> {
        match self.peek() {
            Some(b']') => Ok(false),
            Some(b',') if !first => {
                self.at += 1;
                match self.peek() {
                    Some(b']') => Err(self.stop(self.at, Code::TrailingComma)),
                    _ => Ok(true),
                }
            }
            Some(_) if first => Ok(true),
            _ => Err(self.refuse(Code::EofList, Code::ListCommaOrEnd)),
        }
    }

    /// The next key of an object (serde_json's `has_next_key`, then the
    /// key); `None` at the `}`.
    fn next_key(&mut self, first: bool) -> R<Option<Cow<'a, str>>> {
        match self.peek() {
            Some(b'}') => return Ok(None),
            Some(b'"') if first => {}
            Some(b',') if !first => {
                self.at += 1;
                match self.peek() {
                    Some(b'"') => {}
                    Some(b'}') => return Err(self.stop(self.at, Code::TrailingComma)),
                    _ => return Err(self.refuse(Code::EofValue, Code::KeyString)),
                }
            }
            Some(_) if first => return Err(self.stop(self.at, Code::KeyString)),
            _ => return Err(self.refuse(Code::EofObject, Code::ObjectCommaOrEnd)),
        }
        self.string_here().map(Some)
    }

    /// The `:` after a key.
    fn colon(&mut self) -> R<()> {
        if self.peek() != Some(b':') {
            return Err(self.refuse(Code::EofObject, Code::Colon));
        }
        self.at += 1;
        Ok(())
    }

    /// A struct with the fields `names`, as serde's derive reads one: an
    /// object (unknown keys skipped, a known key given twice refuses the
    /// document) or an array of the fields in order, no longer than they
    /// are. `field(r, i)` reads the value of field `i`.
    pub fn fields(
        &mut self,
        names: &[&str],
        field: &mut dyn FnMut(&mut Self, usize) -> R<()>,
    ) -> R<()> {
        match self.peek() {
            Some(b'{') => {
                self.enter()?;
                let mut seen = 0u64;
                let mut first = true;
                while let Some(key) = self.next_key(first)? {
                    first = false;
                    match names.iter().position(|n| *n == key) {
                        Some(i) => {
                            let bit = 1u64 << (i % 64);
                            if seen & bit != 0 {
                                // serde's `end_map` still runs: it skips
                                // the whitespace after the key, and a `}`.
                                let at = match self.peek() {
                                    Some(b'}') => self.at + 1,
                                    _ => self.at,
                                };
                                return Err(self.fail(Failure {
                                    index: at,
                                    code: Code::Data,
                                }));
                            }
                            seen |= bit;
                            self.colon()?;
                            field(self, i)?;
                        }
                        None => {
                            self.colon()?;
                            self.skip()?;
                        }
                    }
                }
            }
            Some(b'[') => {
                self.enter()?;
                let mut i = 0;
                while self.next_element(i == 0)? {
                    if i == names.len() {
                        return Err(self.unexpected());
                    }
                    field(self, i)?;
                    i += 1;
                }
            }
            _ => return Err(self.unexpected()),
        }
        self.leave();
        Ok(())
    }

    /// The elements of an array, each read by `element` (serde's `Vec`).
    pub fn elements(&mut self, element: &mut dyn FnMut(&mut Self) -> R<()>) -> R<()> {
        if self.peek() != Some(b'[') {
            return Err(self.unexpected());
        }
        self.enter()?;
        let mut first = true;
        while self.next_element(first)? {
            first = false;
            element(self)?;
        }
        self.leave();
        Ok(())
    }

    /// A string, decoded.
    pub fn string(&mut self) -> R<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected());
        }
        self.string_here()
    }

    /// The first byte at or after `from` that ends plain string text.
    fn string_stop(&mut self, from: usize) -> R<usize> {
        match self.s.get(from..).and_then(crate::bytes::string_stop) {
            Some(k) => Ok(from + k),
            None => Err(self.stop(self.s.len(), Code::EofString)),
        }
    }

    /// The string whose opening quote is at the cursor, decoded as
    /// serde_json decodes one into a `str` (surrogates must pair).
    fn string_here(&mut self) -> R<Cow<'a, str>> {
        let start = self.at + 1;
        let mut plain = start;
        let mut owned: Option<Vec<u8>> = None;
        loop {
            let stop = self.string_stop(plain)?;
            match self.s.get(stop) {
                Some(b'"') => {
                    self.at = stop + 1;
                    return match owned {
                        None => self.text(start, stop).map(Cow::Borrowed),
                        Some(mut buf) => {
                            buf.extend_from_slice(self.s.get(plain..stop).unwrap_or_default());
                            String::from_utf8(buf).map(Cow::Owned).map_err(|e| {
                                // serde_json counts back from the closing
                                // quote by the decoded bytes after the
                                // first that is not UTF-8.
                                let after = e.as_bytes().len() - e.utf8_error().valid_up_to();
                                self.fail(Failure {
                                    index: (stop + 1).saturating_sub(after),
                                    code: Code::CodePoint,
                                })
                            })
                        }
                    };
                }
                Some(b'\\') => {
                    let buf = owned.get_or_insert_with(Vec::new);
                    buf.extend_from_slice(self.s.get(plain..stop).unwrap_or_default());
                    plain = unescape(self.s, stop + 1, buf).map_err(|f| self.fail(f))?;
                }
                _ => return Err(self.stop(stop, Code::Control)),
            }
        }
    }

    /// Skips the string whose opening quote is at the cursor (serde_json's
    /// `ignore_str`: escapes checked, surrogates and UTF-8 not).
    fn skip_string(&mut self) -> R<()> {
        let mut at = self.at + 1;
        loop {
            at = self.string_stop(at)?;
            match self.s.get(at) {
                Some(b'"') => {
                    self.at = at + 1;
                    return Ok(());
                }
                Some(b'\\') => match self.s.get(at + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at += 2,
                    Some(b'u') => {
                        hex4(self.s, at + 2).map_err(|f| self.fail(f))?;
                        at += 6;
                    }
                    Some(_) => return Err(self.stop(at + 1, Code::Escape)),
                    None => return Err(self.stop(self.s.len(), Code::EofString)),
                },
                // serde_json's `ignore_str` blames a control character
                // without stepping past it.
                _ => {
                    return Err(self.fail(Failure {
                        index: at,
                        code: Code::Control,
                    }))
                }
            }
        }
    }

    /// Skips the number at the cursor (serde_json's `ignore_integer`,
    /// `ignore_decimal`, `ignore_exponent`: its grammar, not its range;
    /// every refusal there is a syntax error, even at the end).
    fn skip_number(&mut self) -> R<()> {
        self.integer_part(Code::Number)?;
        if self.byte() == Some(b'.') {
            self.at += 1;
            self.some_digits()?;
        }
        if matches!(self.byte(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.byte(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    /// An optional `-` and an integer part by JSON's grammar (one `0`, or
    /// digits not starting with one); the end of the text refused as `eof`.
    fn integer_part(&mut self, eof: Code) -> R<()> {
        if self.byte() == Some(b'-') {
            self.at += 1;
        }
        match self.byte() {
            Some(b'0') => {
                self.at += 1;
                if self.byte().is_some_and(|b| b.is_ascii_digit()) {
                    return Err(self.stop(self.at, Code::Number));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            Some(_) => return Err(self.stop(self.at, Code::Number)),
            None => return Err(self.stop(self.at, eof)),
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.byte().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    /// At least one digit.
    fn some_digits(&mut self) -> R<()> {
        if !self.byte().is_some_and(|b| b.is_ascii_digit()) {
            return Err(self.stop(self.at, Code::Number));
        }
        self.digits();
        Ok(())
    }

    /// An object's key and `:` in a skipped value.
    fn skip_key(&mut self) -> R<()> {
        if self.peek() != Some(b'"') {
            return Err(self.unexpected());
        }
        self.skip_string()?;
        self.colon()
    }

    /// Skips one value, checked as serde_json's `ignore_value` checks it
    /// (without recursion and without a depth limit, as it).
    pub fn skip(&mut self) -> R<()> {
        self.open.clear();
        loop {
            match self.peek() {
                Some(b'n') => self.literal(b"null")?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'-' | b'0'..=b'9') => self.skip_number()?,
                Some(b'"') => self.skip_string()?,
                Some(open @ (b'[' | b'{')) => {
                    self.at += 1;
                    let close = open + 2;
                    if self.peek() == Some(close) {
                        self.at += 1;
                    } else {
                        self.open.push(open);
                        if open == b'{' {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                _ => return Err(self.unexpected()),
            }
            // A value ended: close what it ends, or go on to the next one.
            loop {
                let Some(&open) = self.open.last() else {
                    return Ok(());
                };
                match self.peek() {
                    Some(b',') => {
                        self.at += 1;
                        if open == b'{' {
                            self.skip_key()?;
                        }
                        break;
                    }
                    Some(b) if b == open + 2 => {
                        self.at += 1;
                        self.open.pop();
                    }
                    _ => return Err(self.unexpected()),
                }
            }
        }
    }

    /// The value at the cursor as it is in the document.
    pub fn raw(&mut self) -> R<Raw<'a>> {
        self.peek();
        let start = self.at;
        self.skip()?;
        self.text(start, self.at).map(Raw)
    }

    /// An unsigned integer (serde_json's `deserialize_u64`: a number with
    /// a sign, a fraction or an exponent, or past `u64::MAX`, is refused).
    pub fn u64(&mut self) -> R<u64> {
        let n: u64 = match self.peek() {
            Some(b'0') => {
                self.at += 1;
                0
            }
            Some(b @ b'1'..=b'9') => {
                self.at += 1;
                let mut n = u64::from(b - b'0');
                while let Some(b @ b'0'..=b'9') = self.byte() {
                    match decimal_step(n, b - b'0') {
                        Some(m) => n = m,
                        None => return Err(self.unexpected()),
                    }
                    self.at += 1;
                }
                n
            }
            _ => return Err(self.unexpected()),
        };
        match self.byte() {
            Some(b'0'..=b'9' | b'.' | b'e' | b'E') => Err(self.unexpected()),
            _ => Ok(n),
        }
    }

    /// Every string value (not key) of the value at the cursor, given to
    /// `each` decoded (and whether it is known to be ASCII), the value
    /// checked as serde_json's `deserialize_any` checks it (numbers in
    /// range, strings and keys as `str`, the depth limit).
    pub fn strings(&mut self, each: &mut dyn FnMut(&str, bool)) -> R<()> {
        match self.peek() {
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| ()),
            Some(b'"') => {
                let s = self.string_here()?;
                // Unescaped text of an ASCII document is ASCII.
                let ascii = self.ascii && matches!(s, Cow::Borrowed(_));
                each(&s, ascii);
                Ok(())
            }
            Some(b'[') => {
                self.enter()?;
                let mut first = true;
                while self.next_element(first)? {
                    first = false;
                    self.strings(each)?;
                }
                self.leave();
                Ok(())
            }
            Some(b'{') => {
                self.enter()?;
                let mut first = true;
                while self.next_key(first)?.is_some() {
                    first = false;
                    self.colon()?;
                    self.strings(each)?;
                }
                self.leave();
                Ok(())
            }
            _ => Err(self.unexpected()),
        }
    }

    /// A number read as serde_json's `deserialize_any` reads one: its
    /// grammar, its refusals at its positions, `-0` and integers past
    /// `i64`/`u64` as floats, a float past `f64`'s range refused. Floats
    /// are correctly rounded ([`super::float`], as core's parser and
    /// serde_json's `float_roundtrip`).
    pub fn number(&mut self) -> R<Number> {
        let start = self.at;
        let neg = self.byte() == Some(b'-');
        self.integer_part(Code::EofValue)?;
        let int_end = self.at;
        let mut float = false;
        if self.byte() == Some(b'.') {
            self.at += 1;
            float = true;
            if !self.byte().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.refuse(Code::EofValue, Code::Number));
            }
            self.digits();
        }
        // serde_json refuses an exponent past `i32` right after the digit
        // that overflows it (unless it is negative).
        let mut overflow = None;
        if matches!(self.byte(), Some(b'e' | b'E')) {
            self.at += 1;
            float = true;
            let positive = self.byte() != Some(b'-');
            if matches!(self.byte(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            match self.byte() {
                Some(b'0'..=b'9') => {}
                Some(_) => return Err(self.stop(self.at, Code::Number)),
                None => return Err(self.stop(self.at, Code::EofValue)),
            }
            let mut e = 0u64;
            while let Some(b @ b'0'..=b'9') = self.byte() {
                self.at += 1;
                e = (e * 10 + u64::from(b - b'0')).min(1 << 40);
                if positive && e > i32::MAX as u64 && overflow.is_none() {
                    overflow = Some(self.at);
                }
            }
        }
        let digits = self
            .s
            .get(start + usize::from(neg)..int_end)
            .unwrap_or_default();
        if !float {
            let mut n = 0u64;
            let fits = digits.iter().all(|&d| match decimal_step(n, d - b'0') {
                Some(m) => {
                    n = m;
                    true
                }
                None => false,
            });
            if fits {
                return Ok(match (neg, (n as i64).wrapping_neg()) {
                    (false, _) => Number::Pos(n),
                    (true, v) if v < 0 => Number::Neg(v),
                    // `-0` and below `i64::MIN`.
                    (true, _) => Number::Float(-(n as f64)),
                });
            }
        }
        let f = self
            .s
            .get(start..self.at)
            .and_then(super::float::parse)
            .unwrap_or(f64::INFINITY);
        if f.is_infinite() {
            let index = overflow.unwrap_or(self.at);
            return Err(self.fail(Failure {
                index,
                code: Code::OutOfRange,
            }));
        }
        Ok(Number::Float(f))
    }

    /// Any JSON value, read as serde_json reads a `Value`: an object's
    /// keys sorted, a repeated key's last value kept, the depth limit.
    pub fn value(&mut self) -> R<Value> {
        Ok(match self.peek() {
            Some(b'n') => {
                self.literal(b"null")?;
                Value::Null
            }
            Some(b't') => {
                self.literal(b"true")?;
                Value::Bool(true)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                Value::Bool(false)
            }
            Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
            Some(b'"') => Value::String(self.string_here()?.into_owned()),
            Some(b'[') => {
                self.enter()?;
                let mut items = Vec::new();
                while self.next_element(items.is_empty())? {
                    items.push(self.value()?);
                }
                self.leave();
                Value::Array(items)
            }
            Some(b'{') => {
                self.enter()?;
                let mut map = Map::new();
                let mut first = true;
                while let Some(key) = self.next_key(first)? {
                    first = false;
                    self.colon()?;
                    let v = self.value()?;
                    map.insert(key.into_owned(), v);
                }
                self.leave();
                Value::Object(map)
            }
            _ => return Err(self.unexpected()),
        })
    }
}

/// The four hex digits at `at` (serde_json reads all four, then blames
/// the last).
fn hex4(s: &[u8], at: usize) -> Result<u16, Failure> {
    let Some(digits) = s.get(at..at + 4) else {
        return Err(Failure {
            index: s.len(),
            code: Code::EofString,
        });
    };
    let mut n = 0u16;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => {
                return Err(Failure {
                    index: at + 4,
                    code: Code::Escape,
                })
            }
        };
        n = n << 4 | u16::from(v);
    }
    Ok(n)
}

/// Decodes the escape whose letter is at `at` into `out`; where the plain
/// text resumes. A `\u` escape must be a scalar value or a surrogate pair
/// (serde_json's `parse_escape` for a `str`, with its error positions).
fn unescape(s: &[u8], at: usize, out: &mut Vec<u8>) -> Result<usize, Failure> {
    let syntax = |index, code| Failure { index, code };
    let eof = Failure {
        index: s.len(),
        code: Code::EofString,
    };
    let plain = match *s.get(at).ok_or(eof)? {
        b'"' => b'"',
        b'\\' => b'\\',
        b'/' => b'/',
        b'b' => 0x08,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'u' => {
            let h = at + 1;
            let n = hex4(s, h)?;
            let (c, next) = match n {
                0xDC00..=0xDFFF => return Err(syntax(h + 4, Code::LoneSurrogate)),
                0xD800..=0xDBFF => {
                    match s.get(h + 4) {
                        Some(b'\\') => {}
                        Some(_) => return Err(syntax(h + 5, Code::HexEnd)),
                        None => return Err(eof),
                    }
                    match s.get(h + 5) {
                        Some(b'u') => {}
                        Some(_) => return Err(syntax(h + 6, Code::HexEnd)),
                        None => return Err(eof),
                    }
                    let n2 = hex4(s, h + 6)?;
                    if !(0xDC00..=0xDFFF).contains(&n2) {
                        return Err(syntax(h + 10, Code::LoneSurrogate));
                    }
                    let c = ((u32::from(n) - 0xD800) << 10 | (u32::from(n2) - 0xDC00)) + 0x1_0000;
                    (c, h + 10)
                }
                _ => (u32::from(n), h + 4),
            };
            let c = char::from_u32(c).ok_or(syntax(next, Code::CodePoint))?;
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            return Ok(next);
        }
        _ => return Err(syntax(at + 1, Code::Escape)),
    };
    out.push(plain);
    Ok(at + 1)
}

impl<'a> FromJson<'a> for Value {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        r.value()
    }
}

impl<'a> FromJson<'a> for Cow<'a, str> {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        r.string()
    }
}

impl<'a> FromJson<'a> for String {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        r.string().map(Cow::into_owned)
    }
}

impl<'a> FromJson<'a> for u64 {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        r.u64()
    }
}

impl<'a> FromJson<'a> for usize {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        usize::try_from(r.u64()?).map_err(|_| Bad)
    }
}

impl<'a> FromJson<'a> for Raw<'a> {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        r.raw()
    }
}

impl<'a, T: FromJson<'a>> FromJson<'a> for Option<T> {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        if r.null()? {
            Ok(None)
        } else {
            T::read(r).map(Some)
        }
    }
}

impl<'a, T: FromJson<'a>> FromJson<'a> for Box<T> {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        T::read(r).map(Box::new)
    }
}

impl<'a, T: FromJson<'a>> FromJson<'a> for Vec<T> {
    fn read(r: &mut Reader<'a>) -> R<Self> {
        let mut out = Vec::new();
        r.elements(&mut |r| {
            out.push(T::read(r)?);
            Ok(())
        })?;
        Ok(out)
    }
}

/// Implements [`FromJson`] for a struct whose every field has a default
/// (serde's `#[serde(default)]` on each), read by the field's own type;
/// `field as "name"` for a field serde renames.
#[macro_export]
macro_rules! from_json {
    ($ty:ty { $($field:ident $(as $name:literal)?),* $(,)? }) => {
        impl<'a> $crate::json::read::FromJson<'a> for $ty {
            fn read(r: &mut $crate::json::read::Reader<'a>) -> $crate::json::read::R<Self> {
                let mut out = <$ty>::default();
                r.fields(&[$($crate::from_json!(@name $field $($name)?)),*], &mut |r, i| {
                    let mut k = 0usize;
                    $(
                        if i == k {
                            out.$field = $crate::json::read::FromJson::read(r)?;
                            return Ok(());
                        }
                        k += 1;
                    )*
                    let _ = k;
                    Ok(())
                })?;
                Ok(out)
            }
        }
    };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $name:literal) => { $name };
}

/// The reference the hand reader is held to: serde's derive through
/// serde_json, on every broken variant of documents providers send.
#[cfg(test)]
mod decimal_steps {
    #[test]
    fn a_step_overflows_where_checked_arithmetic_does() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let edges = [
            0,
            1,
            9,
            u64::MAX / 10 - 1,
            u64::MAX / 10,
            u64::MAX / 10 + 1,
            u64::MAX,
        ];
        for i in 0..20_000 {
            let n = match edges.get(i) {
                Some(&e) => e,
                None => crate::testing::xorshift(&mut seed) >> (seed % 64),
            };
            for d in 0..=9u8 {
                let checked = n.checked_mul(10).and_then(|m| m.checked_add(u64::from(d)));
                assert_eq!(super::decimal_step(n, d), checked, "{n} {d}");
            }
        }
    }
}

#[cfg(test)]
pub mod differential {
    use super::*;
    use serde::Deserialize;
    use std::fmt::Debug;

    /// Values put in place of each value of a document: every JSON type,
    /// the numbers and strings the two readers could disagree on, and
    /// broken ones.
    const VALUES: &[&str] = &[
        "null",
        "true",
        "false",
        "0",
        "-0",
        "7",
        "-7",
        "1.5",
        "1e2",
        "1E+2",
        "0.0",
        "-1.0e-3",
        "18446744073709551615",
        "18446744073709551616",
        "4294967295",
        "4294967296",
        "01",
        "1.",
        "1e",
        "-",
        ".5",
        "\"s\"",
        "\"\"",
        "\"caf\\u00e9\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "\"\\udc00\"",
        "\"\\ud83dx\"",
        "\"\\ud83d\\u0041\"",
        "\"\\ud83d\\n\"",
        "\"a\\nb\\/\\t\"",
        "\"\\x\"",
        "\"\\u12g4\"",
        "\"tab\tin\"",
        "\"\\u0000\"",
        "\"é\"",
        "[]",
        "{}",
        "[1]",
        "[null]",
        "[\"s\"]",
        "[{}]",
        "[[]]",
        "{\"a\":1}",
        "{\"type\":\"text\"}",
        "{\"text\":\"t\",\"type\":\"text\"}",
        "[\"text\",\"t\"]",
        "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\"]",
        "nul",
        "tru",
        "fals",
        "nulll",
        "\"open",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\"}",
        "{,}",
        "[,]",
        "{\"a\" 1}",
        "[1 2]",
        "{1:2}",
        "\"\\u00",
        "[1,[2,{\"a\":[]}]]",
        "1e400",
        "-1e400",
        "2.5e-400",
        "1.7976931348623157e308",
        "1.8e308",
        "123456789012345678901234567890",
        "-9223372036854775808",
        "-9223372036854775809",
        "0e",
        "1e+",
        "-01",
        "[1e400]",
        "{\"k\":1e999}",
        "\"a\\\"b\"",
        "[\n1,\n2\n]",
        "1x",
        "[1:2]",
    ];

    /// Where each value and each key of the valid JSON `doc` is:
    /// `(start, end, is_key)`.
    fn spans(doc: &[u8]) -> Vec<(usize, usize, bool)> {
        fn value(d: &[u8], i: &mut usize, out: &mut Vec<(usize, usize, bool)>) {
            ws(d, i);
            let start = *i;
            match d[*i] {
                b'{' | b'[' => {
                    let close = d[*i] + 2;
                    *i += 1;
                    loop {
                        ws(d, i);
                        match d[*i] {
                            b',' => *i += 1,
                            c if c == close => {
                                *i += 1;
                                break;
                            }
                            _ => {}
                        }
                        ws(d, i);
                        if d[*i] == close {
                            continue;
                        }
                        if close == b'}' {
                            let k = *i;
                            string(d, i);
                            out.push((k, *i, true));
                            ws(d, i);
                            *i += 1; // ':'
                        }
                        value(d, i, out);
                    }
                }
                b'"' => string(d, i),
                _ => {
                    while *i < d.len() && !b",]} \n".contains(&d[*i]) {
                        *i += 1;
                    }
                }
            }
            out.push((start, *i, false));
        }
        fn string(d: &[u8], i: &mut usize) {
            *i += 1;
            while d[*i] != b'"' {
                *i += if d[*i] == b'\\' { 2 } else { 1 };
            }
            *i += 1;
        }
        fn ws(d: &[u8], i: &mut usize) {
            while d.get(*i).is_some_and(|b| b.is_ascii_whitespace()) {
                *i += 1;
            }
        }
        let mut out = Vec::new();
        value(doc, &mut 0, &mut out);
        out
    }

    fn splice(doc: &[u8], a: usize, b: usize, with: &[u8]) -> Vec<u8> {
        [&doc[..a], with, &doc[b..]].concat()
    }

    /// Every broken variant of the valid documents `bases`: each cut, each
    /// value replaced by each of [`VALUES`], each object turned into the
    /// array of its values (and one too many), each key repeated, renamed,
    /// escaped or made invalid UTF-8, nesting to either side of the depth
    /// limit, invalid UTF-8 in each string, and random edits.
    pub fn corpus(bases: &[&str]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut seed = 0x5eed_1234_abcd_ef01u64;
        let mut next = move || crate::testing::xorshift(&mut seed);
        for base in bases {
            let d = base.as_bytes();
            out.push(d.to_vec());
            for ws in [" ", "\n\t\r ", " x", ",", " {}", "\u{a0}"] {
                out.push([ws.as_bytes(), d].concat());
                out.push([d, ws.as_bytes()].concat());
            }
            for cut in 0..d.len() {
                out.push(d[..cut].to_vec());
            }
            let spans = spans(d);
            for &(a, b, key) in &spans {
                if key {
                    let member_end = spans.iter().find(|s| !s.2 && s.0 > b).map_or(b, |s| s.1);
                    let member = &d[a..member_end];
                    out.push(splice(d, member_end, member_end, &[b",", member].concat()));
                    // The key again, then the end of its object.
                    let key = &d[a..b];
                    out.push([&d[..member_end], b",", key, b" }"].concat());
                    out.push([&d[..member_end], b",", key, b"\n}"].concat());
                    out.push([&d[..member_end], b",", key, b" ,"].concat());
                    out.push(splice(d, a, b, b"\"zz\""));
                    out.push(splice(
                        d,
                        a,
                        a + 2,
                        format!("\"\\u{:04x}", d[a + 1]).as_bytes(),
                    ));
                    out.push(splice(d, a + 1, a + 1, b"\xff"));
                    out.push(splice(d, a, b, b"\"\\ud800\""));
                    continue;
                }
                for v in VALUES {
                    out.push(splice(d, a, b, v.as_bytes()));
                }
                match d[a] {
                    b'{' => {
                        // The object as the array of its members' values.
                        let inner: Vec<&[u8]> = spans
                            .iter()
                            .filter(|s| s.0 > a && s.1 < b && !s.2)
                            .filter(|s| {
                                !spans.iter().any(|o| {
                                    !o.2 && o.0 > a
                                        && o.1 < b
                                        && o.0 <= s.0
                                        && o.1 >= s.1
                                        && (o.0, o.1) != (s.0, s.1)
                                })
                            })
                            .map(|s| &d[s.0..s.1])
                            .collect();
                        let array = format!(
                            "[{}]",
                            inner
                                .iter()
                                .map(|v| String::from_utf8_lossy(v))
                                .collect::<Vec<_>>()
                                .join(",")
                        );
                        out.push(splice(d, a, b, array.as_bytes()));
                        out.push(splice(
                            d,
                            a,
                            b,
                            format!(
                                "[{}null]",
                                &array[1..array.len() - 1].to_string().replace(']', "],")
                            )
                            .as_bytes(),
                        ));
                        let more = format!("{},null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null]", &array[..array.len() - 1]);
                        out.push(splice(d, a, b, more.as_bytes()));
                    }
                    b'"' => {
                        out.push(splice(d, a + 1, a + 1, b"\xff"));
                        out.push(splice(d, a + 1, a + 1, "é".as_bytes()));
                        out.push(splice(d, a + 1, a + 1, b"\xc3"));
                    }
                    _ => {}
                }
                for depth in [126, 127, 128, 200] {
                    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                    out.push(splice(d, a, b, nested.as_bytes()));
                    let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
                    out.push(splice(d, a, b, objects.as_bytes()));
                }
            }
            const EDITS: &[u8] = b"\",:[]{}\\n0-.e ";
            for _ in 0..1_000 {
                let mut doc = d.to_vec();
                for _ in 0..1 + next() % 2 {
                    let r = next();
                    let at = (r % (doc.len() as u64 + 1)) as usize;
                    let c = EDITS[(r >> 32) as usize % EDITS.len()];
                    match (r >> 48) % 3 {
                        0 => doc.insert(at, c),
                        1 if at < doc.len() => {
                            doc.remove(at);
                        }
                        _ if at < doc.len() => doc[at] = c,
                        _ => {}
                    }
                }
                out.push(doc);
            }
        }
        out
    }

    /// `T` read by serde (the reference) and by the hand reader, from text
    /// and from bytes, agree on every document of `docs`: both refuse it,
    /// or both read the same value. How many were read.
    pub fn agree<'a, T>(docs: &'a [Vec<u8>]) -> usize
    where
        T: FromJson<'a> + Deserialize<'a> + Debug,
    {
        let mut read = 0;
        for doc in docs {
            let want = serde_json::from_slice::<T>(doc).map(|v| format!("{v:?}"));
            let got = from_slice::<T>(doc).map(|v| format!("{v:?}"));
            let show = String::from_utf8_lossy(doc);
            assert_eq!(
                got.as_ref().ok(),
                want.as_ref().ok(),
                "bytes {show} ({want:?})"
            );
            if let Ok(text) = std::str::from_utf8(doc) {
                let want = serde_json::from_str::<T>(text).map(|v| format!("{v:?}"));
                let got = from_str::<T>(text).map(|v| format!("{v:?}"));
                assert_eq!(
                    got.as_ref().ok(),
                    want.as_ref().ok(),
                    "text {text} ({want:?})"
                );
            }
            read += usize::from(want.is_ok());
        }
        read
    }

    impl<'de> Deserialize<'de> for Skip {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            serde::de::IgnoredAny::deserialize(d).map(|_| Skip)
        }
    }

    impl Debug for Skip {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Skip")
        }
    }

    /// Documents of every family the filter reads.
    pub const EVENTS: &[&str] = &[
        r#"{"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi \"there\"","refusal":null,"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"search","arguments":"{}"}}]},"finish_reason":null}],"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":1},"completion_tokens_details":{"reasoning_tokens":2}}}"#,
        r#"{"choices":[{"index":1,"message":{"role":"assistant","content":"ok","refusal":"sorry"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens_details":null}}"#,
        r#"{"id":"msg","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Hello"},{"type":"tool_use","id":"tu","name":"get","input":{"a":[1,2]}}],"stop_reason":"end_turn","usage":{"input_tokens":5,"output_tokens":6,"cache_read_input_tokens":7,"cache_creation_input_tokens":8}}"#,
        r#"{"id":"resp","object":"response","model":"gpt-5","output":[{"type":"reasoning","summary":[]},{"type":"message","content":[{"type":"output_text","text":"Yes","annotations":[]},{"type":"refusal","refusal":"no"}]},{"type":"function_call","name":"f","arguments":"{}"}],"usage":{"input_tokens":9,"output_tokens":10,"input_tokens_details":{"cached_tokens":0},"output_tokens_details":{"reasoning_tokens":null}}}"#,
        r#"{"type":"message_start","message":{"id":"m","model":"claude","usage":{"input_tokens":3,"output_tokens":1}}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel\u006co"}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":12}}"#,
        r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":1,"delta":"Hi"}"#,
        r#"{"type":"response.completed","response":{"id":"r","model":"gpt-5","usage":{"input_tokens":1,"output_tokens":2}}}"#,
        r#"{"delta":{"content":"x"},"text":"t","content":"c","name":"n","function":{"name":"f"},"refusal":"r","stop_reason":"s","index":3}"#,
        r#""a string \u00e9 \ud83d\ude00""#,
        "12",
    ];

    /// Values (what the configuration's syntax errors, output schemas and
    /// odd answers are read as) agree with serde_json's `Value` on every
    /// document: the same value, or the same error message at the same
    /// line and column, from bytes and from text; with numbers at every
    /// edge of their ranges.
    #[test]
    fn values_read_as_serde_does() {
        let mut docs = corpus(EVENTS);
        for n in [
            "0",
            "-0",
            "-0.0",
            "1",
            "-1",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678901234567890",
            "1e308",
            "1.7976931348623157e308",
            "1.7976931348623159e308",
            "1e309",
            "-1e400",
            "1e-400",
            "4.9e-324",
            "2.4703282292062328e-324",
            "2.4703282292062327e-324",
            "0.1",
            "0.30000000000000004",
            "9007199254740993",
            "1e2147483647",
            "1e2147483648",
            "0e99999999999",
            "1e99999999999",
            "1e-99999999999",
            "1.0e+5",
            "1E5",
            "1e",
            "1e+",
            "1.",
            "-",
            "01",
            "-01",
            "1.e5",
            ".5",
            "+1",
            "1ee5",
            "1e5.0",
            "0.000000000000000000000000000001e30",
        ] {
            docs.push(n.as_bytes().to_vec());
            docs.push(format!("[{n}]").into_bytes());
            docs.push(format!("{{\"a\": {n} }}").into_bytes());
        }
        let mut refused = 0;
        let show = |r: Result<Value, Failure>, doc: &[u8]| match r {
            Ok(v) => Ok(v),
            Err(f) => {
                let (line, column) = f.line_column(doc);
                Err(format!(
                    "{} at line {line} column {column}",
                    f.code.message()
                ))
            }
        };
        for doc in &docs {
            let want = serde_json::from_slice::<serde_json::Value>(doc)
                .map(|v| Value::from_serde(&v))
                .map_err(|e| e.to_string());
            let got = show(from_slice_or_failure::<Value>(doc), doc);
            assert_eq!(got, want, "bytes {}", String::from_utf8_lossy(doc));
            if let Ok(text) = std::str::from_utf8(doc) {
                let want = serde_json::from_str::<serde_json::Value>(text)
                    .map(|v| Value::from_serde(&v))
                    .map_err(|e| e.to_string());
                let got = show(from_str_or_failure::<Value>(text), doc);
                assert_eq!(got, want, "text {text}");
            }
            refused += usize::from(want.is_err());
        }
        assert!(
            refused > 10_000 && docs.len() - refused > 5_000,
            "{refused} of {}",
            docs.len()
        );
    }

    #[test]
    fn scalars_and_skips_read_as_serde_does() {
        let docs = corpus(EVENTS);
        assert!(docs.len() > 25_000, "{}", docs.len());
        assert!(agree::<Skip>(&docs) > 5_000);
        assert!(agree::<Cow<'_, str>>(&docs) > 10);
        assert!(agree::<String>(&docs) > 10);
        assert!(agree::<u64>(&docs) > 10);
        assert!(agree::<usize>(&docs) > 10);
        assert!(agree::<Option<u64>>(&docs) > 10);
        assert!(agree::<Raw<'_>>(&docs) > 5_000);
        assert!(agree::<crate::json::Present<'_>>(&docs) > 5_000);
        assert!(agree::<Vec<Option<Raw<'_>>>>(&docs) > 100);
    }
}
