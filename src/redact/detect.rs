//! Hand-written scanners for PII and secrets.
//!
//! Each detector finds candidates from a cheap trigger (`@`, a digit, a
//! known prefix), grows them over the characters the format allows, and
//! validates them (Luhn, mod-97, SSN ranges, address parsing) before they
//! count. Matches never start or end inside a word or a longer number, so
//! order numbers, UUIDs, timestamps, prices and version strings survive.

/// The built-in detector types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `name@example.com`.
    Email,
    /// E.164 (`+44 20 7946 0958`) and NANP (`(415) 555-0100`) numbers.
    Phone,
    /// Payment card numbers that pass Luhn.
    CreditCard,
    /// US social security numbers in `123-45-6789` form, valid ranges only.
    UsSsn,
    /// Dotted-quad IPv4 addresses.
    Ipv4,
    /// IPv6 addresses.
    Ipv6,
    /// IBANs that pass mod-97.
    Iban,
    /// API keys, tokens and private keys.
    Secret,
}

impl Kind {
    /// Every built-in kind.
    pub const ALL: [Kind; 8] = [
        Kind::Email,
        Kind::Phone,
        Kind::CreditCard,
        Kind::UsSsn,
        Kind::Ipv4,
        Kind::Ipv6,
        Kind::Iban,
        Kind::Secret,
    ];

    /// Configuration name (`credit_card` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::CreditCard => "credit_card",
            Kind::UsSsn => "us_ssn",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Iban => "iban",
            Kind::Secret => "secret",
        }
    }

    /// Parses a configuration name.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A match: byte range in the scanned text and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
    /// What was found.
    pub kind: Kind,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Byte before `i`, if any.
fn before(s: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).and_then(|j| s.get(j).copied())
}

/// Trigger classes of a byte: a digit, `@`, `:`, or an anchor of a
/// secret (see [`secret_candidates`]).
const DIGIT: u8 = 1;
const AT: u8 = 2;
const COLON: u8 = 4;
const ANCHOR: u8 = 8;

/// The trigger class of every byte (0 for most of prose).
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = b'0';
    while b <= b'9' {
        t[b as usize] = DIGIT;
        b += 1;
    }
    t[b'@' as usize] = AT;
    t[b':' as usize] = COLON;
    let anchors = b"-_JAbBkK";
    let mut i = 0;
    while i < anchors.len() {
        t[anchors[i] as usize] = ANCHOR;
        i += 1;
    }
    t
};

/// Where the detectors look, from one pass over the text: every format
/// starts at a trigger found here, so each detector visits its few
/// candidates instead of every byte.
struct Triggers {
    /// Digits not preceded by a digit (numbers, phones, IBAN check digits).
    digit_runs: Vec<usize>,
    /// Bytes a secret's candidates are found from.
    anchors: Vec<usize>,
    /// Union of the classes seen.
    seen: u8,
}

impl Triggers {
    // Not inlined: inside `scan`, the loop's state went to the stack.
    #[inline(never)]
    fn of(s: &[u8]) -> Triggers {
        let mut digit_runs = Vec::new();
        let mut anchors = Vec::new();
        let mut seen = 0;
        // Eight bytes at a time, one branch each: most words of prose
        // have no trigger (a branch per byte was half of redaction's time
        // in V8, which has no SIMD here).
        let mut chunks = s.chunks_exact(8);
        let mut base = 0;
        for chunk in chunks.by_ref() {
            if !may_trigger(chunk) {
                base += 8;
                continue;
            }
            let any = chunk.iter().fold(0, |m, &b| m | CLASS[b as usize]);
            if any != 0 {
                seen |= any;
                triggers_in(s, base, chunk, &mut digit_runs, &mut anchors);
            }
            base += 8;
        }
        let tail = chunks.remainder();
        seen |= tail.iter().fold(0, |m, &b| m | CLASS[b as usize]);
        triggers_in(s, base, tail, &mut digit_runs, &mut anchors);
        Triggers {
            digit_runs,
            anchors,
            seen,
        }
    }
}

/// Whether the eight bytes of `chunk` may hold a trigger, told by word
/// arithmetic before the table is read: a byte from `-` to `K` (which
/// takes in the digits, `:`, `@`, `A`, `B`, `J` and `K`), a `_`, a `b`
/// or `B` followed by `e` or `E`, or a `k` or `K` after an `s` or `S` (the
/// only `b` and `k` that [`anchor_may_start`] keeps; a `b` in the last
/// byte, or a `k` in the first, is kept too: its neighbour is in the next
/// or the previous word). Never false for a chunk whose table pass finds
/// something; sometimes true for one that finds nothing (`.`, `=`,
/// `C`..`I`, bytes above 0x7f), which the table then tells apart.
fn may_trigger(chunk: &[u8]) -> bool {
    use crate::bytes::{word, zero_bytes, HI, LO};
    let w = word(chunk);
    // The high bit of each byte equal to `b` (and sometimes of one above
    // it: never a byte missed).
    let eq = |b: u8| zero_bytes(w ^ (LO * u64::from(b)));
    // Each byte's low seven bits plus a constant cannot carry into the
    // next byte: its high bit says whether the byte reached the bound.
    let t = w & !HI;
    let from_dash = t + LO * (0x80 - u64::from(b'-'));
    let past_k = t + LO * (0x80 - u64::from(b'K') - 1);
    let in_range = from_dash & !past_k & HI;
    let e_next = ((eq(b'e') | eq(b'E')) >> 8) | (0x80 << 56);
    let s_before = ((eq(b's') | eq(b'S')) << 8) | 0x80;
    in_range | eq(b'_') | (eq(b'b') & e_next) | (eq(b'k') & s_before) != 0
}

/// Pushes the digit runs and anchors of `chunk`, which starts at `base`
/// in `s`.
fn triggers_in(
    s: &[u8],
    base: usize,
    chunk: &[u8],
    digits: &mut Vec<usize>,
    anchors: &mut Vec<usize>,
) {
    for (k, &b) in chunk.iter().enumerate() {
        let i = base + k;
        match CLASS[b as usize] {
            DIGIT if !before(s, i).is_some_and(|p| p.is_ascii_digit()) => digits.push(i),
            ANCHOR if anchor_may_start(s, i, b) => anchors.push(i),
            _ => {}
        }
    }
}

/// Whether anchor `b` at `i` may belong to a secret, by its neighbour: the
/// common letters among the anchors are kept only where their secret has
/// them (`Bearer` continues with `e`, `secretaccessKey` has an `s` before
/// the `k`, the AWS and Google key prefixes continue with one of
/// `KSGIRNI`). [`secret_candidates`] checks the rest.
fn anchor_may_start(s: &[u8], i: usize, b: u8) -> bool {
    let next = s.get(i + 1).copied().unwrap_or(0);
    match b {
        b'b' | b'B' => next.eq_ignore_ascii_case(&b'e'),
        b'k' | b'K' => before(s, i).is_some_and(|p| p.eq_ignore_ascii_case(&b's')),
        b'A' => b"KSGIRN".contains(&next),
        _ => true,
    }
}

/// Runs `kinds` over `text`; matches are sorted and never overlap (the
/// earlier, then longer, match wins).
pub fn scan(text: &str, kinds: &[Kind]) -> Vec<Found> {
    let s = text.as_bytes();
    let mut out = Vec::new();
    let t = Triggers::of(s);
    // Every format starts at a trigger: text with none has nothing to find
    // (most string values of a request or an answer).
    if t.digit_runs.is_empty() && t.anchors.is_empty() && t.seen & (AT | COLON) == 0 {
        return out;
    }
    let numeric = kinds
        .iter()
        .any(|k| matches!(k, Kind::CreditCard | Kind::UsSsn | Kind::Ipv4));
    let starts: Vec<usize> = if numeric {
        number_starts(s, &t.digit_runs).collect()
    } else {
        Vec::new()
    };
    for kind in kinds {
        match kind {
            Kind::Email if t.seen & AT != 0 => emails(s, &mut out),
            Kind::Phone => phones(s, &t.digit_runs, &mut out),
            Kind::CreditCard => cards(s, &starts, &mut out),
            Kind::UsSsn => ssns(s, &starts, &mut out),
            Kind::Ipv4 => ipv4s(s, &starts, &mut out),
            // An IPv6 address has at least two colons.
            Kind::Ipv6 if t.seen & COLON != 0 => ipv6s(text, &mut out),
            Kind::Iban => ibans(s, &t.digit_runs, &mut out),
            Kind::Secret => secrets(s, &secret_candidates(s, &t.anchors), &mut out),
            _ => {}
        }
    }
    resolve_overlaps(out)
}

/// Sorts matches and drops those overlapping an earlier or longer one.
pub fn resolve_overlaps(mut found: Vec<Found>) -> Vec<Found> {
    // By start, the longer first.
    crate::json::sort_spans(&mut found, |f| (f.start, usize::MAX - f.end));
    let mut kept: Vec<Found> = Vec::with_capacity(found.len());
    for f in found {
        match kept.last() {
            Some(last) if f.start < last.end => {}
            _ => kept.push(f),
        }
    }
    kept
}

// ---------------------------------------------------------------- email

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"._%+-".contains(&b)
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

fn emails(s: &[u8], out: &mut Vec<Found>) {
    let mut from = 0;
    while let Some(at) = crate::bytes::find(&s[from..], b'@').map(|p| p + from) {
        from = at + 1;
        let mut start = at;
        while start > 0 && is_local(s[start - 1]) && at - start < 64 {
            start -= 1;
        }
        while start < at && !s[start].is_ascii_alphanumeric() {
            start += 1; // a local part starts with a letter or digit
        }
        let mut end = at + 1;
        while end < s.len() && is_domain(s[end]) && end - at < 255 {
            end += 1;
        }
        while end > at + 1 && matches!(s[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if start == at || end <= at + 1 {
            continue;
        }
        let domain = &s[at + 1..end];
        let Some(dot) = domain.iter().rposition(|b| *b == b'.') else {
            continue;
        };
        let tld = &domain[dot + 1..];
        let labels_ok = domain
            .split(|b| *b == b'.')
            .all(|l| !l.is_empty() && l[0] != b'-' && l[l.len() - 1] != b'-');
        // `git@github.com:org/repo.git` is an scp-style remote, not a mailbox.
        let scp_remote =
            s.get(end) == Some(&b':') && s.get(end + 1).is_some_and(|b| !b.is_ascii_whitespace());
        if tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic) && labels_ok && !scp_remote {
            out.push(Found {
                start,
                end,
                kind: Kind::Email,
            });
            from = end;
        }
    }
}

// ------------------------------------------------------- digit grouping

/// Lengths of the digit groups of a run (at most 8 groups).
#[derive(Debug, Clone, Copy)]
struct Groups {
    len: usize,
    g: [usize; 8],
    /// Byte offset just past each group.
    ends: [usize; 8],
}

impl Groups {
    /// The first `k` groups, as (end offset, group lengths), when the run
    /// may be cut there: only at a space, so a following number written
    /// apart ("… 6789 10 days") does not hide the value before it.
    fn prefix(&self, s: &[u8], k: usize) -> Option<(usize, &[usize])> {
        let end = *self.ends.get(k.checked_sub(1)?)?;
        let cut_ok = k == self.len || s.get(end) == Some(&b' ');
        cut_ok.then(|| (end, &self.g[..k]))
    }
}

/// A run of digits separated by single characters from `seps`, starting
/// at `i`: returns (end, digit count, group lengths).
fn digit_run(s: &[u8], i: usize, seps: &[u8]) -> (usize, usize, Groups) {
    let mut end = i;
    let mut digits = 0;
    let mut groups = Groups {
        len: 1,
        g: [0; 8],
        ends: [0; 8],
    };
    while end < s.len() {
        let b = s[end];
        if b.is_ascii_digit() {
            digits += 1;
            groups.g[groups.len - 1] += 1;
            end += 1;
            groups.ends[groups.len - 1] = end;
        } else if seps.contains(&b)
            && groups.len < 8
            && s.get(end + 1).is_some_and(u8::is_ascii_digit)
            && groups.g[groups.len - 1] > 0
        {
            groups.len += 1;
            end += 1;
        } else {
            break;
        }
    }
    (end, digits, groups)
}

/// Positions where a number may start: a digit not preceded by a word
/// character, a digit, or a `.`/`,` glued to a digit (decimals, prices).
/// Each is the first digit of a run (`digit_runs`).
fn number_starts<'a>(s: &'a [u8], digit_runs: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    digit_runs.iter().copied().filter(move |&i| {
        s[i].is_ascii_digit()
            && match before(s, i) {
                None => true,
                Some(b) if is_word(b) => false,
                Some(b'.' | b',' | b'-' | b'/' | b':') => {
                    !before(s, i - 1).is_some_and(|p| p.is_ascii_digit())
                }
                Some(_) => true,
            }
    })
}

/// The number ends cleanly: not followed by a word character or by a
/// separator that continues the number.
fn clean_end(s: &[u8], end: usize) -> bool {
    match s.get(end) {
        None => true,
        Some(b) if is_word(*b) => false,
        Some(b'.' | b',' | b'-' | b'/' | b':') => !s.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

// ----------------------------------------------------------- credit card

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

fn card_prefix_ok(d: &[u8]) -> bool {
    let n = |k: usize| -> u32 {
        d.iter()
            .take(k)
            .fold(0, |a, b| a * 10 + u32::from(b - b'0'))
    };
    let len = d.len();
    match d.first() {
        Some(b'4') => matches!(len, 13 | 16 | 19),
        Some(b'5') => (51..=55).contains(&n(2)) && len == 16,
        Some(b'2') => (2221..=2720).contains(&n(4)) && len == 16,
        Some(b'3') => {
            (matches!(n(2), 34 | 37) && len == 15)
                || ((3528..=3589).contains(&n(4)) && (16..=19).contains(&len))
                || (matches!(n(2), 36 | 38 | 39) || (300..=305).contains(&n(3)))
                    && (14..=19).contains(&len)
        }
        Some(b'6') => {
            (n(4) == 6011 || n(2) == 65 || (644..=649).contains(&n(3)) || n(2) == 62)
                && (16..=19).contains(&len)
        }
        _ => false,
    }
}

fn cards(s: &[u8], starts: &[usize], out: &mut Vec<Found>) {
    for &i in starts {
        let (_, _, groups) = digit_run(s, i, b" -");
        // The longest prefix of the run's groups that is a card.
        for k in (1..=groups.len).rev() {
            let Some((end, g)) = groups.prefix(s, k) else {
                continue;
            };
            let count: usize = g.iter().sum();
            if !(13..=19).contains(&count) || !(k < groups.len || clean_end(s, end)) {
                continue;
            }
            // Either one block or groups of 4 (Amex 4-6-5, some 4-4-4-4-3).
            let grouped_ok = g.len() == 1
                || g.iter()
                    .all(|n| (4..=6).contains(n) || *n == 3 && g.len() == 5);
            let mut buf = [0u8; 19];
            let mut n = 0;
            for &b in s[i..end].iter().filter(|b| b.is_ascii_digit()) {
                buf[n] = b;
                n += 1;
            }
            let digits = &buf[..n];
            if grouped_ok && card_prefix_ok(digits) && luhn(digits) {
                out.push(Found {
                    start: i,
                    end,
                    kind: Kind::CreditCard,
                });
                break;
            }
        }
    }
}

// ------------------------------------------------------------------ SSN

fn ssns(s: &[u8], starts: &[usize], out: &mut Vec<Found>) {
    for &i in starts {
        let (_, _, groups) = digit_run(s, i, b"- ");
        let Some((end, g)) = groups.prefix(s, 3) else {
            continue;
        };
        if g != [3, 2, 4] || !(groups.len > 3 || clean_end(s, end)) {
            continue;
        }
        let sep1 = s[i + 3];
        let sep2 = s[i + 6];
        if sep1 != sep2 {
            continue;
        }
        let num = |a: usize, b: usize| {
            s[a..b]
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let (area, group, serial) = (num(i, i + 3), num(i + 4, i + 6), num(i + 7, i + 11));
        if area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 {
            out.push(Found {
                start: i,
                end,
                kind: Kind::UsSsn,
            });
        }
    }
}

// ---------------------------------------------------------------- phone

/// A phone number may start at `i`: a digit, or `+`/`(` before a digit,
/// not glued to a word, a `+` or a `.`.
fn phone_start(s: &[u8], i: usize) -> bool {
    let b = s[i];
    let starts = ((b == b'+' || b == b'(') && s.get(i + 1).is_some_and(u8::is_ascii_digit))
        || b.is_ascii_digit();
    starts && !before(s, i).is_some_and(|p| is_word(p) || p == b'+' || p == b'.')
}

/// Phones start at the first digit of a run or at the `+`/`(` just before it.
fn phones(s: &[u8], digit_runs: &[usize], out: &mut Vec<Found>) {
    let mut next = 0;
    for &d in digit_runs {
        for i in [d.checked_sub(1), Some(d)].into_iter().flatten() {
            if i < next || !phone_start(s, i) {
                continue;
            }
            if let Some(end) = phone_at(s, i) {
                out.push(Found {
                    start: i,
                    end,
                    kind: Kind::Phone,
                });
                next = end;
            }
        }
    }
}

/// A phone number starting at `i`, returning its end.
fn phone_at(s: &[u8], i: usize) -> Option<usize> {
    let plus = s[i] == b'+';
    let mut j = if plus { i + 1 } else { i };
    let mut digits = 0;
    // Digit groups: at most 16 digits, so at most 17 groups.
    let mut groups = [0usize; 18];
    let mut n = 1;
    let mut seps = 0;
    let mut parens = false;
    let mut last_sep: Option<u8> = None;
    while j < s.len() {
        let b = s[j];
        let last = groups[n - 1];
        if b.is_ascii_digit() {
            digits += 1;
            groups[n - 1] += 1;
        } else if b == b'(' && !parens && last == 0 {
            parens = true;
        } else if b == b')' && parens && last > 0 && n < groups.len() {
            n += 1;
            seps += 1;
            if s.get(j + 1) == Some(&b' ') {
                j += 1;
            }
        } else if matches!(b, b' ' | b'-' | b'.')
            && last > 0
            && n < groups.len()
            && s.get(j + 1)
                .is_some_and(|n| n.is_ascii_digit() || *n == b'(')
        {
            // One separator style per number (a space may follow a country code).
            if last_sep.is_some_and(|l| l != b && !(plus && n <= 2)) {
                break;
            }
            last_sep = Some(b);
            n += 1;
            seps += 1;
        } else {
            break;
        }
        j += 1;
        if digits > 15 {
            return None;
        }
    }
    while n > 1 && groups[n - 1] == 0 {
        n -= 1;
    }
    let g = &groups[..n];
    if g == [0] || !clean_end(s, j) {
        return None;
    }
    let ok = if plus {
        (8..=15).contains(&digits) && g.iter().all(|x| *x <= 8 || n == 1)
    } else {
        // NANP: (415) 555-0100, 415-555-0100, 415.555.0100, 1-415-555-0100.
        seps >= 2 && (g == [3, 3, 4] || g == [1, 3, 3, 4]) && (n == 3 || s[i] == b'1')
    };
    // Timestamps and dates never have 3-3-4 groups.
    ok.then_some(j)
}

// ----------------------------------------------------------------- IPv4

fn ipv4s(s: &[u8], starts: &[usize], out: &mut Vec<Found>) {
    for &i in starts {
        if before(s, i) == Some(b'.') || before(s, i).is_some_and(|b| b == b'v' || b == b'V') {
            continue;
        }
        let (end, _count, groups) = digit_run(s, i, b".");
        // A port (`:8080`) may follow an address.
        let port = s.get(end) == Some(&b':') && s.get(end + 1).is_some_and(u8::is_ascii_digit);
        if groups.len != 4 || !(port || clean_end(s, end)) {
            continue;
        }
        let ok = s[i..end].split(|b| *b == b'.').all(|part| {
            part.len() <= 3
                && (part.len() == 1 || part[0] != b'0')
                && part.iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0')) <= 255
        });
        if ok {
            out.push(Found {
                start: i,
                end,
                kind: Kind::Ipv4,
            });
        }
    }
}

// ----------------------------------------------------------------- IPv6

/// Whether `s` is an IPv6 address as `core::net::Ipv6Addr` parses one
/// (eight groups of one to four hex digits, or fewer around one `::`
/// standing for at least one group, the last two groups possibly written
/// as an IPv4 address), without core's parser (~3 KB of wasm).
fn is_ipv6(s: &[u8]) -> bool {
    let mut at = 0;
    let (head, head_v4) = v6_groups(s, &mut at, 8);
    if head == 8 {
        return at == s.len();
    }
    if head_v4 || s.get(at..at + 2) != Some(b"::") {
        return false;
    }
    at += 2;
    v6_groups(s, &mut at, 7 - head);
    at == s.len()
}

/// Reads up to `limit` groups at `at` (each after a `:` but the first),
/// as core's `read_groups`: an IPv4 address is tried first while two
/// groups are left, and ends the groups. How many groups, and whether the
/// last were an IPv4 address.
fn v6_groups(s: &[u8], at: &mut usize, limit: usize) -> (usize, bool) {
    for i in 0..limit {
        let sep = usize::from(i > 0);
        if i > 0 && s.get(*at) != Some(&b':') {
            return (i, false);
        }
        if i + 1 < limit {
            if let Some(end) = ipv4_at(s, *at + sep) {
                *at = end;
                return (i + 2, true);
            }
        }
        let start = *at + sep;
        let digits = s
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take(4)
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if digits == 0 {
            return (i, false);
        }
        *at = start + digits;
    }
    (limit, false)
}

/// The end of the IPv4 address at `at` (four decimal octets to 255, no
/// leading zero), as core's `read_ipv4_addr` reads one.
fn ipv4_at(s: &[u8], mut at: usize) -> Option<usize> {
    for octet in 0..4 {
        if octet > 0 {
            if s.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let digits = s
            .get(at..)
            .unwrap_or_default()
            .iter()
            .take(3)
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = s.get(at..at + digits)?;
        let value = text.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        if digits == 0 || value > 255 || (digits > 1 && text[0] == b'0') {
            return None;
        }
        at += digits;
    }
    Some(at)
}

fn ipv6s(text: &str, out: &mut Vec<Found>) {
    let s = text.as_bytes();
    let is_v6 = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
    let mut i = 0;
    while i < s.len() {
        if !(s[i].is_ascii_hexdigit() || s[i] == b':')
            || before(s, i).is_some_and(|b| is_word(b) || b == b':')
        {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < s.len() && is_v6(s[end]) {
            end += 1;
        }
        // Trailing dots or a lone trailing colon are punctuation.
        while end > i
            && (s[end - 1] == b'.' || (s[end - 1] == b':' && before(s, end - 1) != Some(b':')))
        {
            end -= 1;
        }
        let candidate = &text[i..end];
        let colons = candidate.bytes().filter(|b| *b == b':').count();
        let hex = candidate.bytes().filter(u8::is_ascii_hexdigit).count();
        let boundary = !s.get(end).is_some_and(|b| is_word(*b));
        if colons >= 2 && hex >= 3 && boundary && is_ipv6(candidate.as_bytes()) {
            out.push(Found {
                start: i,
                end,
                kind: Kind::Ipv6,
            });
            i = end;
        } else {
            i = end.max(i + 1);
        }
    }
}

// ----------------------------------------------------------------- IBAN

/// IBAN lengths by country (the SWIFT registry's most common entries).
fn iban_length(country: &[u8]) -> Option<usize> {
    Some(match country {
        b"AD" => 24,
        b"AE" => 23,
        b"AT" => 20,
        b"BE" => 16,
        b"BG" => 22,
        b"BH" => 22,
        b"BR" => 29,
        b"CH" => 21,
        b"CY" => 28,
        b"CZ" => 24,
        b"DE" => 22,
        b"DK" => 18,
        b"EE" => 20,
        b"ES" => 24,
        b"FI" => 18,
        b"FO" => 18,
        b"FR" => 27,
        b"GB" => 22,
        b"GI" => 23,
        b"GL" => 18,
        b"GR" => 27,
        b"HR" => 21,
        b"HU" => 28,
        b"IE" => 22,
        b"IL" => 23,
        b"IS" => 26,
        b"IT" => 27,
        b"KW" => 30,
        b"KZ" => 20,
        b"LB" => 28,
        b"LI" => 21,
        b"LT" => 20,
        b"LU" => 20,
        b"LV" => 21,
        b"MC" => 27,
        b"MT" => 31,
        b"NL" => 18,
        b"NO" => 15,
        b"PK" => 24,
        b"PL" => 28,
        b"PT" => 25,
        b"QA" => 29,
        b"RO" => 24,
        b"SA" => 24,
        b"SE" => 24,
        b"SI" => 19,
        b"SK" => 24,
        b"SM" => 27,
        b"TN" => 24,
        b"TR" => 26,
        b"UA" => 29,
        _ => return None,
    })
}

fn mod97(chars: &[u8]) -> u32 {
    // Rearranged: first four characters moved to the end.
    let rotated = chars[4..].iter().chain(chars[..4].iter());
    let mut r = 0u32;
    for c in rotated {
        if c.is_ascii_digit() {
            r = (r * 10 + u32::from(c - b'0')) % 97;
        } else {
            let v = u32::from(c.to_ascii_uppercase() - b'A') + 10;
            r = (r * 100 + v) % 97;
        }
    }
    r
}

/// An IBAN starts two letters before its check digits, the first digits
/// of a run.
fn ibans(s: &[u8], digit_runs: &[usize], out: &mut Vec<Found>) {
    let mut next = 0;
    for i in digit_runs.iter().filter_map(|d| d.checked_sub(2)) {
        if i < next || i + 4 > s.len() {
            continue;
        }
        let starts = s[i].is_ascii_uppercase()
            && s[i + 1].is_ascii_uppercase()
            && s[i + 2].is_ascii_digit()
            && s[i + 3].is_ascii_digit()
            && !before(s, i).is_some_and(is_word);
        let Some(len) = starts.then(|| iban_length(&s[i..i + 2])).flatten() else {
            continue;
        };
        // Collect alphanumerics, allowing single spaces between groups of 4.
        let mut chars = Vec::with_capacity(34);
        let mut j = i;
        while j < s.len() && chars.len() < len {
            let b = s[j];
            if b.is_ascii_uppercase() || b.is_ascii_digit() {
                chars.push(b);
                j += 1;
            } else if b == b' '
                && chars.len() % 4 == 0
                && s.get(j + 1).is_some_and(u8::is_ascii_alphanumeric)
            {
                j += 1;
            } else {
                break;
            }
        }
        if chars.len() == len && !s.get(j).is_some_and(|b| is_word(*b)) && mod97(&chars) == 1 {
            out.push(Found {
                start: i,
                end: j,
                kind: Kind::Iban,
            });
            next = j;
        }
    }
}

// --------------------------------------------------------------- secrets

fn run_len(s: &[u8], from: usize, ok: impl Fn(u8) -> bool) -> usize {
    s[from.min(s.len())..]
        .iter()
        .take_while(|b| ok(**b))
        .count()
}

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn starts_with_at(s: &[u8], i: usize, prefix: &[u8]) -> bool {
    s.get(i..i + prefix.len()) == Some(prefix)
}

/// Where a secret may start, found from its anchor, a byte rare in prose
/// ([`Triggers`]): prefixed tokens from their `-` (`sk-`, `xox?-`), `_`
/// (`gh?_`, `github_`), `J` (`eyJ`), first `A` (AWS and Google keys) or
/// `b`/`B` (`Bearer `); PEM blocks at `-----BEGIN `; keyed AWS secrets at
/// the start of their keyword (anywhere: it may follow `MY_`), from its
/// `_` (`aws_secret…`, `secret_access_key`) or `k` (`secretaccesskey`).
/// In order, without repeats; [`secrets`] checks each as it would any
/// position.
fn secret_candidates(s: &[u8], anchors: &[usize]) -> Vec<usize> {
    let mut out = Vec::new();
    let back = |p: usize, n: usize, lit: &[u8], ci: bool| {
        p.checked_sub(n).filter(|&i| {
            s.get(i..i + lit.len()).is_some_and(|w| {
                if ci {
                    w.eq_ignore_ascii_case(lit)
                } else {
                    w == lit
                }
            })
        })
    };
    for &p in anchors {
        let hits = match s[p] {
            b'-' => [
                back(p, 2, b"sk", false),
                back(p, 4, b"xox", false),
                starts_with_at(s, p, b"-----BEGIN ").then_some(p),
            ],
            b'_' => [
                back(p, 3, b"gh", false).or(back(p, 3, b"aws", true)),
                back(p, 6, b"github", false).or(back(p, 6, b"secret", true)),
                None,
            ],
            b'J' => [back(p, 2, b"ey", false), None, None],
            b'k' | b'K' => [back(p, 12, b"secretaccess", true), None, None],
            b'A' => [Some(p), None, None],
            _ => [
                s.get(p..p + 7)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer "))
                    .then_some(p),
                None,
                None,
            ],
        };
        out.extend(hits.into_iter().flatten());
    }
    crate::sort::sort(&mut out);
    out.dedup();
    out
}

fn secrets(s: &[u8], candidates: &[usize], out: &mut Vec<Found>) {
    let word_start = |i: usize| !before(s, i).is_some_and(|b| is_word(b) || b == b'-');
    let mut next = 0;
    for &i in candidates {
        if i < next {
            continue;
        }
        if let Some((start, end)) = secret_at(s, i, word_start(i)) {
            out.push(Found {
                start,
                end,
                kind: Kind::Secret,
            });
            next = end.max(i + 1);
        }
    }
}

/// A secret starting at (or, for keyed values, announced at) `i`.
fn secret_at(s: &[u8], i: usize, word_start: bool) -> Option<(usize, usize)> {
    prefixed_secret(s, i, word_start).or_else(|| {
        matches!(s[i].to_ascii_lowercase(), b'a' | b's')
            .then(|| aws_secret_in_context(s, i))
            .flatten()
    })
}

/// A token recognised by its prefix, starting at `i`.
fn prefixed_secret(s: &[u8], i: usize, word_start: bool) -> Option<(usize, usize)> {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    match s[i] {
        // OpenAI-style keys: sk-..., sk-proj-...
        b's' if word_start && starts_with_at(s, i, b"sk-") => {
            let n = run_len(s, i + 3, b64url);
            (n >= 20).then_some((i, i + 3 + n))
        }
        // AWS access key ids.
        b'A' if word_start
            && [
                &b"AKIA"[..],
                b"ASIA",
                b"AGPA",
                b"AIDA",
                b"AROA",
                b"ANPA",
                b"ANVA",
                b"AIPA",
            ]
            .iter()
            .any(|p| starts_with_at(s, i, p)) =>
        {
            let n = run_len(s, i + 4, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
            (n == 16).then_some((i, i + 20))
        }
        // Google API keys.
        b'A' if word_start && starts_with_at(s, i, b"AIza") => {
            let n = run_len(s, i + 4, b64url);
            (n == 35).then_some((i, i + 39))
        }
        // GitHub tokens.
        b'g' if word_start && starts_with_at(s, i, b"github_pat_") => {
            let n = run_len(s, i + 11, |b| alnum(b) || b == b'_');
            (n >= 22).then_some((i, i + 11 + n))
        }
        b'g' if word_start
            && s.get(i + 1) == Some(&b'h')
            && s.get(i + 2).is_some_and(|b| b"opusr".contains(b))
            && s.get(i + 3) == Some(&b'_') =>
        {
            let n = run_len(s, i + 4, alnum);
            (n >= 36).then_some((i, i + 4 + n))
        }
        // Slack tokens.
        b'x' if word_start
            && starts_with_at(s, i, b"xox")
            && s.get(i + 3).is_some_and(|b| b"abprse".contains(b))
            && s.get(i + 4) == Some(&b'-') =>
        {
            let n = run_len(s, i + 5, |b| alnum(b) || b == b'-');
            (n >= 10).then_some((i, i + 5 + n))
        }
        // JWTs: base64url JSON header and payload, then a signature.
        b'e' if word_start && starts_with_at(s, i, b"eyJ") => {
            let h = run_len(s, i, b64url);
            if h < 10 || s.get(i + h) != Some(&b'.') || !starts_with_at(s, i + h + 1, b"eyJ") {
                return None;
            }
            let p = run_len(s, i + h + 1, b64url);
            if s.get(i + h + 1 + p) != Some(&b'.') {
                return None;
            }
            let sig = run_len(s, i + h + 2 + p, b64url);
            (sig >= 16).then_some((i, i + h + 2 + p + sig))
        }
        // PEM private keys: the whole block (to the end if it is cut).
        b'-' if starts_with_at(s, i, b"-----BEGIN ") => {
            let line_end = s[i..]
                .iter()
                .take(80)
                .position(|b| *b == b'\n')
                .map_or((i + 80).min(s.len()), |p| i + p);
            if !s[i..line_end].windows(16).any(|w| w == b"PRIVATE KEY-----") {
                return None;
            }
            let end = s[i..]
                .windows(9)
                .position(|w| w == b"-----END ")
                .map(|e| {
                    let e = i + e + 9;
                    s[e..]
                        .windows(5)
                        .position(|w| w == b"-----")
                        .map_or(s.len(), |p| e + p + 5)
                })
                .unwrap_or(s.len());
            Some((i, end))
        }
        // Bearer tokens inside text.
        b'B' | b'b'
            if word_start
                && s.get(i..i + 7)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer ")) =>
        {
            let n = run_len(s, i + 7, |b| alnum(b) || b"-._~+/=".contains(&b));
            (n >= 16).then_some((i + 7, i + 7 + n))
        }
        _ => None,
    }
}

/// `aws_secret_access_key = <40 chars>` and its spellings: the value only.
fn aws_secret_in_context(s: &[u8], i: usize) -> Option<(usize, usize)> {
    let keywords: [&[u8]; 4] = [
        b"aws_secret_access_key",
        b"secret_access_key",
        b"aws_secret",
        b"secretaccesskey",
    ];
    let head = s.get(i..i + 3)?;
    if !(head.eq_ignore_ascii_case(b"aws") || head.eq_ignore_ascii_case(b"sec")) {
        return None;
    }
    let kw = keywords.iter().find(|k| {
        s.get(i..i + k.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(k))
    })?;
    let mut j = i + kw.len();
    let limit = (j + 8).min(s.len());
    while j < limit && matches!(s[j], b' ' | b'"' | b'\'' | b'=' | b':' | b'\t') {
        j += 1;
    }
    let n = run_len(s, j, |b| {
        b.is_ascii_alphanumeric() || b == b'/' || b == b'+' || b == b'='
    });
    (n == 40).then_some((j, j + 40))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `is_ipv6` accepts exactly what core's `Ipv6Addr` parser accepts.
    #[test]
    fn ipv6_is_read_as_core_reads_it() {
        let cases = [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1::8",
            "fe80::1",
            "2001:db8::ff00:42:8329",
            "::ffff:192.0.2.1",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:1.2.3.4",
            "1.2.3.4",
            "::1.2.3.4",
            "::1.2.3.04",
            "::256.1.1.1",
            "::1.2.3",
            "1:2:3:4:5:6:7:1.2.3.4",
            "12345::",
            ":1::",
            "1:::2",
            "1::2::3",
            "::ffff:1.2.3.4:5",
            "a:b:c:d:e:f:0:1",
            "ABCD:EF01:2345:6789:ABCD:EF01:2345:6789",
            ":",
            "",
            "1:2",
            "0000:0000::",
            "::0.0.0.0",
            "::00.0.0.0",
            "1::1.2.3.4.5",
        ];
        for c in cases {
            assert_eq!(
                is_ipv6(c.as_bytes()),
                c.parse::<std::net::Ipv6Addr>().is_ok(),
                "{c}"
            );
        }
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF:.::1.0";
        let mut seed = 0x0bad_5eed_1234_5678u64;
        let mut accepted = 0;
        for _ in 0..300_000 {
            crate::testing::xorshift(&mut seed);
            let len = (seed % 24) as usize;
            let text: Vec<u8> = (0..len)
                .map(|k| ALPHABET[((seed >> (k % 16 * 4)) as usize + k * 5) % ALPHABET.len()])
                .collect();
            let text = String::from_utf8(text).unwrap();
            let want = text.parse::<std::net::Ipv6Addr>().is_ok();
            assert_eq!(is_ipv6(text.as_bytes()), want, "{text}");
            accepted += usize::from(want);
        }
        assert!(accepted > 100, "{accepted}");
    }

    /// The detectors tried at every byte (no trigger pass): what the
    /// trigger-driven [`scan`] must equal.
    fn scan_every_byte(text: &str, kinds: &[Kind]) -> Vec<Found> {
        let s = text.as_bytes();
        let every: Vec<usize> = (0..s.len()).collect();
        let starts: Vec<usize> = number_starts(s, &every).collect();
        let mut out = Vec::new();
        for kind in kinds {
            match kind {
                Kind::Email => super::emails(s, &mut out),
                Kind::Phone => super::phones(s, &every, &mut out),
                Kind::CreditCard => cards(s, &starts, &mut out),
                Kind::UsSsn => ssns(s, &starts, &mut out),
                Kind::Ipv4 => ipv4s(s, &starts, &mut out),
                Kind::Ipv6 => ipv6s(text, &mut out),
                Kind::Iban => ibans(s, &every, &mut out),
                Kind::Secret => super::secrets(s, &every, &mut out),
            }
        }
        resolve_overlaps(out)
    }

    /// Text made of the pieces the detectors trigger on, shuffled.
    fn trigger_soup(seed: &mut u64, len: usize) -> String {
        const PIECES: [&str; 60] = [
            "0",
            "1",
            "4",
            "5",
            "9",
            "12",
            "415",
            "555",
            "0100",
            "4111",
            " ",
            " ",
            "-",
            ".",
            ",",
            "(",
            ")",
            "+",
            ":",
            "::",
            "@",
            "_",
            "a",
            "s",
            "S",
            "x",
            "e",
            "A",
            "B",
            "DE",
            "GB",
            "sk-",
            "AKIA",
            "ghp_",
            "xoxb-",
            "eyJ",
            "Bearer ",
            "secret_access_key=",
            "aws_",
            "-----BEGIN ",
            "github_pat_",
            "AIza",
            "gho_",
            "xoxp-",
            "bearer ",
            "eyJhbGciOi.",
            "J",
            "aws_secret=",
            "SecretAccessKey: ",
            "AWS_SECRET ",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "ANPA",
            "ANVA",
            "IOSFODNN7EXAMPLE",
            "BEARER ",
            "bEaReR ",
            "SECRETACCESSKEY=",
            "dead:beef::cafe",
            "fe::ab",
            "k",
        ];
        let mut out = String::new();
        while out.len() < len {
            crate::testing::xorshift(seed);
            let piece = PIECES[(*seed % PIECES.len() as u64) as usize];
            out.push_str(piece);
            if *seed % 7 == 0 {
                // Long runs, so that tokens and numbers reach their lengths.
                out.push_str(&"7Ab".repeat((*seed % 13) as usize));
            }
        }
        out
    }

    #[test]
    fn the_word_test_skips_only_words_the_table_finds_nothing_in() {
        // The triggers of a text as the table pass finds them in every
        // word, with no word skipped.
        fn unfiltered(s: &[u8]) -> (Vec<usize>, Vec<usize>, u8) {
            let (mut digits, mut anchors) = (Vec::new(), Vec::new());
            let mut seen = 0;
            for (n, chunk) in s.chunks(8).enumerate() {
                seen |= chunk.iter().fold(0, |m, &b| m | CLASS[b as usize]);
                triggers_in(s, n * 8, chunk, &mut digits, &mut anchors);
            }
            (digits, anchors, seen & (DIGIT | AT | COLON))
        }
        let check = |s: &[u8]| {
            let t = Triggers::of(s);
            assert_eq!(
                (t.digit_runs, t.anchors, t.seen & (DIGIT | AT | COLON)),
                unfiltered(s),
                "{:?}",
                String::from_utf8_lossy(s)
            );
        };
        // Every byte value at every place of a word, over backgrounds of
        // prose, of bytes just outside the range and of non-ASCII, beside
        // each neighbour a `b` or `k` anchor depends on.
        for fill in [b'e', b's', b' ', b',', b'L', b'a', 0x7f, 0x80, 0xff] {
            for at in 0..16 {
                for b in 0..=255u8 {
                    for next in [fill, b'e', b'E', b's', b'S', b'b', b'k'] {
                        let mut text = [fill; 24];
                        text[at] = b;
                        text[at + 1] = next;
                        check(&text);
                    }
                }
            }
        }
        // And random texts over the bytes that matter.
        const ALPHABET: &[u8] = b"bBkKsSeEaA_-J9:@. x\xc3\xa9";
        let mut seed = 0x0bad_5eed_1234_5678u64;
        for _ in 0..20_000 {
            let len = (crate::testing::xorshift(&mut seed) % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    ALPHABET[(crate::testing::xorshift(&mut seed) % ALPHABET.len() as u64) as usize]
                })
                .collect();
            check(&text);
        }
        // Prose without triggers passes as such, `b` and `k` included.
        assert!(!may_trigger(b"the cat "));
        assert!(!may_trigger(b" by work"));
    }

    #[test]
    fn triggers_find_what_every_byte_finds() {
        let mut texts: Vec<String> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for n in 0..4000 {
            texts.push(trigger_soup(&mut seed, 8 + n % 160));
        }
        let root = env!("CARGO_MANIFEST_DIR");
        for file in ["redaction_positives.jsonl", "redaction_negatives.jsonl"] {
            let corpus = std::fs::read_to_string(format!("{root}/tests/corpus/{file}")).unwrap();
            texts.extend(corpus.lines().map(str::to_string));
        }
        let fuzz = std::path::Path::new(root).join("fuzz/corpus/redaction");
        for entry in std::fs::read_dir(fuzz).unwrap().take(3000) {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            texts.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        let mut found = 0;
        for text in &texts {
            for kinds in Kind::ALL
                .iter()
                .map(|k| vec![*k])
                .chain([Kind::ALL.to_vec()])
            {
                let fast = scan(text, &kinds);
                assert_eq!(fast, scan_every_byte(text, &kinds), "{kinds:?} in {text:?}");
                found += fast.len();
            }
        }
        assert!(
            found > 1000,
            "the texts exercise the detectors ({found} matches)"
        );
    }

    #[test]
    fn keyed_aws_secrets_in_any_case() {
        let value = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for key in [
            "aws_secret_access_key",
            "AWS_SECRET_ACCESS_KEY",
            "Aws_Secret",
            "MY_SECRET_ACCESS_KEY",
        ] {
            let text = format!("{key}={value}");
            assert_eq!(found(&text, Kind::Secret), vec![value], "{key}");
        }
    }

    fn found(text: &str, kind: Kind) -> Vec<&str> {
        scan(text, &[kind])
            .iter()
            .map(|f| &text[f.start..f.end])
            .collect()
    }

    #[test]
    fn emails() {
        assert_eq!(
            found(
                "mail john.doe+x@mail.example.co.uk, or b@c.io.",
                Kind::Email
            ),
            vec!["john.doe+x@mail.example.co.uk", "b@c.io"]
        );
        assert!(found("@home, user@localhost, a@b.c, x@-bad.com", Kind::Email).is_empty());
        assert!(found("git@github.com:org/repo.git", Kind::Email).is_empty());
    }

    #[test]
    fn cards_need_luhn_and_a_real_prefix() {
        assert_eq!(
            found("card 4111 1111 1111 1111 exp", Kind::CreditCard),
            vec!["4111 1111 1111 1111"]
        );
        assert_eq!(found("5555-5555-5555-4444", Kind::CreditCard).len(), 1);
        assert_eq!(found("378282246310005", Kind::CreditCard).len(), 1);
        assert!(found("4111 1111 1111 1112", Kind::CreditCard).is_empty());
        assert!(found("order 1234567890123456", Kind::CreditCard).is_empty());
        assert!(found("id 41111111111111110", Kind::CreditCard).is_empty());
    }

    #[test]
    fn a_number_written_after_does_not_hide_a_value() {
        assert_eq!(
            found("SSN 123-45-6789 10 days ago", Kind::UsSsn),
            vec!["123-45-6789"]
        );
        assert_eq!(
            found("4111 1111 1111 1111 2 items", Kind::CreditCard),
            vec!["4111 1111 1111 1111"]
        );
        assert!(
            found("123-45-6789-10", Kind::UsSsn).is_empty(),
            "a longer dashed number is not an SSN"
        );
    }

    #[test]
    fn ssns_need_valid_ranges() {
        assert_eq!(found("ssn 123-45-6789.", Kind::UsSsn), vec!["123-45-6789"]);
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123-45 6789",
            "1123-45-6789",
        ] {
            assert!(found(bad, Kind::UsSsn).is_empty(), "{bad}");
        }
    }

    #[test]
    fn phones() {
        for ok in [
            "(415) 555-0100",
            "415-555-0100",
            "415.555.0100",
            "+1 415 555 0100",
            "+44 20 7946 0958",
            "+4915123456789",
            "1-800-555-0199",
            "+49 30 571508",
        ] {
            assert_eq!(
                found(&format!("call {ok} now"), Kind::Phone),
                vec![ok],
                "{ok}"
            );
        }
        for bad in [
            "2024-01-15 10:30:00",
            "version 1.2.3",
            "$1,234.56",
            "4155550100",
            "12:30",
            "order 123-456-7890-1",
            "v415.555.0100",
        ] {
            assert!(found(bad, Kind::Phone).is_empty(), "{bad}");
        }
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(
            found("from 192.168.1.20:8080.", Kind::Ipv4),
            vec!["192.168.1.20"]
        );
        for bad in ["256.1.1.1", "1.2.3", "v1.2.3.4", "1.2.3.4.5", "01.2.3.4"] {
            assert!(found(bad, Kind::Ipv4).is_empty(), "{bad}");
        }
        assert_eq!(
            found("hosts 2001:db8::8a2e:370:7334 and fe80::1.", Kind::Ipv6),
            vec!["2001:db8::8a2e:370:7334", "fe80::1"]
        );
        for bad in ["10:30:00", "00:1A:2B:3C:4D:5E", "a::b", "std::vec::Vec"] {
            assert!(found(bad, Kind::Ipv6).is_empty(), "{bad}");
        }
    }

    #[test]
    fn ibans_need_mod97() {
        assert_eq!(
            found("pay GB82 WEST 1234 5698 7654 32 today", Kind::Iban),
            vec!["GB82 WEST 1234 5698 7654 32"]
        );
        assert_eq!(found("DE89370400440532013000", Kind::Iban).len(), 1);
        assert!(found("GB82WEST12345698765433", Kind::Iban).is_empty());
    }

    #[test]
    fn secrets() {
        let cases = [
            "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "xoxb-123456789012-abcdefghijkl",
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ];
        for c in cases {
            assert_eq!(found(&format!("key: {c} ok"), Kind::Secret), vec![c], "{c}");
        }
        let aws = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            found(aws, Kind::Secret),
            vec!["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]
        );
        let pem = "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----\ny";
        assert_eq!(found(pem, Kind::Secret), vec![&pem[2..pem.len() - 2]]);
        assert_eq!(
            found("Authorization: Bearer abcdef0123456789abcdef", Kind::Secret),
            vec!["abcdef0123456789abcdef"]
        );
        for bad in [
            "task-1234",
            "sk-short",
            "AKIA1234",
            "eyJ.eyJ.x",
            "-----BEGIN PUBLIC KEY-----",
        ] {
            assert!(found(bad, Kind::Secret).is_empty(), "{bad}");
        }
    }

    #[test]
    fn overlaps_keep_the_earlier_longer_match() {
        let text = "a@b.io 4111111111111111";
        let all = scan(text, &Kind::ALL);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].kind, Kind::Email);
        assert_eq!(all[1].kind, Kind::CreditCard);
    }

    #[test]
    fn look_alikes_survive() {
        let text = "Order #123456789, uuid 550e8400-e29b-41d4-a716-446655440000, at 2024-01-15T10:30:00Z, \
                    price $1,299.99, version 2.14.3, build 10.0.19041.1, std::vec::Vec, ratio 3:2";
        assert_eq!(scan(text, &Kind::ALL), vec![]);
    }
}
