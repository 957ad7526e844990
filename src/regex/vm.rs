//! The Pike VM: every NFA state is live at most once per text position, so
//! a search costs O(states × text) whatever the pattern. Threads keep
//! their priority order (leftmost-first, as regex-lite and Perl), and each
//! carries only where its match started.

use super::compile::{Nfa, State};
use super::parse::Look;

/// The live threads at one position: a sparse set of states in priority
/// order, and where each state's thread started.
struct Threads {
    dense: Vec<u32>,
    sparse: Vec<u32>,
    starts: Vec<usize>,
    len: usize,
}

impl Threads {
    fn new(n: usize) -> Threads {
        Threads {
            dense: vec![0; n],
            sparse: vec![0; n],
            starts: vec![0; n],
            len: 0,
        }
    }

    /// Adds `id`; false if it was already there.
    fn insert(&mut self, id: u32) -> bool {
        let i = self.sparse[id as usize] as usize;
        if i < self.len && self.dense[i] == id {
            return false;
        }
        self.dense[self.len] = id;
        self.sparse[id as usize] = self.len as u32;
        self.len += 1;
        true
    }
}

/// Scratch space for searches with one NFA.
pub(super) struct Cache {
    curr: Threads,
    next: Threads,
    stack: Vec<u32>,
}

impl Cache {
    pub(super) fn new(nfa: &Nfa) -> Cache {
        let n = nfa.states.len();
        Cache {
            curr: Threads::new(n),
            next: Threads::new(n),
            stack: Vec::new(),
        }
    }
}

/// The leftmost-first match starting at or after `start` (the text before
/// it still counts for assertions); with `earliest`, any match, found as
/// soon as possible.
pub(super) fn search(
    nfa: &Nfa,
    cache: &mut Cache,
    text: &str,
    start: usize,
    earliest: bool,
) -> Option<(usize, usize)> {
    if start > text.len() {
        return None;
    }
    let bytes = text.as_bytes();
    let Cache { curr, next, stack } = cache;
    curr.len = 0;
    next.len = 0;
    let mut found = None;
    let mut at = start;
    loop {
        if curr.len == 0 && (found.is_some() || (nfa.anchored && at > start)) {
            break;
        }
        if found.is_none() {
            closure(&nfa.states, stack, curr, bytes, at, nfa.start, at);
        }
        let (c, len) = match text.get(at..).and_then(|t| t.chars().next()) {
            Some(c) => (c as u32, c.len_utf8()),
            None => (0, 0),
        };
        for i in 0..curr.len {
            let sid = curr.dense[i] as usize;
            let target = match &nfa.states[sid] {
                State::Char(ch, t) if *ch == c => *t,
                State::Ranges(r, t) if contains(r, c) => *t,
                State::Match => {
                    found = Some((curr.starts[sid], at));
                    break;
                }
                _ => continue,
            };
            if len > 0 {
                let from = curr.starts[sid];
                closure(&nfa.states, stack, next, bytes, at + len, target, from);
            }
        }
        if (earliest && found.is_some()) || len == 0 {
            break;
        }
        core::mem::swap(curr, next);
        next.len = 0;
        at += len;
    }
    found
}

fn contains(ranges: &[(u32, u32)], c: u32) -> bool {
    for &(lo, hi) in ranges {
        if lo > c {
            break;
        }
        if c <= hi {
            return true;
        }
    }
    false
}

/// Adds the states reachable from `sid` by epsilon moves at `at`, in
/// priority order, to `set`; the consuming ones remember `from`.
fn closure(
    states: &[State],
    stack: &mut Vec<u32>,
    set: &mut Threads,
    bytes: &[u8],
    at: usize,
    sid: u32,
    from: usize,
) {
    stack.push(sid);
    while let Some(mut sid) = stack.pop() {
        while set.insert(sid) {
            match &states[sid as usize] {
                State::Goto(t, look) => {
                    if look.is_some_and(|l| !look_at(l, bytes, at)) {
                        break;
                    }
                    sid = *t;
                }
                State::Split(targets, reverse) => {
                    let (first, rest) = match (reverse, targets.split_first()) {
                        (_, None) => break,
                        (false, Some((&first, rest))) => (first, rest),
                        (true, _) => match targets.split_last() {
                            Some((&last, rest)) => (last, rest),
                            None => break,
                        },
                    };
                    if *reverse {
                        stack.extend_from_slice(rest);
                    } else {
                        stack.extend(rest.iter().rev());
                    }
                    sid = first;
                }
                _ => {
                    set.starts[sid as usize] = from;
                    break;
                }
            }
        }
    }
}

fn is_word(b: Option<&u8>) -> bool {
    b.is_some_and(|&b| b == b'_' || b.is_ascii_alphanumeric())
}

/// Whether `look` holds at byte `at` of the text.
fn look_at(look: Look, bytes: &[u8], at: usize) -> bool {
    let before = at.checked_sub(1).and_then(|i| bytes.get(i));
    let after = bytes.get(at);
    let (wb, wa) = (is_word(before), is_word(after));
    match look {
        Look::Start => before.is_none(),
        Look::End => after.is_none(),
        Look::StartLf => matches!(before, None | Some(b'\n')),
        Look::EndLf => matches!(after, None | Some(b'\n')),
        Look::StartCrlf => match before {
            None | Some(b'\n') => true,
            Some(b'\r') => after != Some(&b'\n'),
            _ => false,
        },
        Look::EndCrlf => match after {
            None | Some(b'\r') => true,
            Some(b'\n') => before != Some(&b'\r'),
            _ => false,
        },
        Look::Word => wb != wa,
        Look::NotWord => wb == wa,
        Look::WordStart => !wb && wa,
        Look::WordEnd => wb && !wa,
        Look::WordStartHalf => !wb,
        Look::WordEndHalf => !wa,
    }
}
