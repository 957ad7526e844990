//! The parsed tree into a Thompson NFA.
//!
//! The construction is the one regex-lite 0.1.9 makes, state for state, for
//! two reasons: thread priorities (hence leftmost-first spans) follow from
//! the order of split targets, and regex-lite refuses a pattern whose NFA
//! would exceed 10 MiB by its own accounting, which this compiler keeps
//! too (same states, same split targets, same class ranges, same capture
//! bookkeeping), so the same patterns are refused.

use super::parse::{Hir, Kind, Look, Node};
use super::Error;

/// One NFA state. Capture states are plain `Goto`s: only the overall span
/// is reported, and it is tracked by the VM.
pub(super) enum State {
    /// A scalar value, then the target.
    Char(u32, u32),
    /// Sorted ranges, then the target.
    Ranges(Box<[(u32, u32)]>, u32),
    /// Epsilon moves in priority order (reversed if the flag is set).
    Split(Vec<u32>, bool),
    /// An epsilon move, behind an assertion if any.
    Goto(u32, Option<Look>),
    Fail,
    Match,
}

/// A compiled pattern.
pub(super) struct Nfa {
    pub states: Vec<State>,
    pub start: u32,
    /// Whether every match starts at the text's start.
    pub anchored: bool,
}

/// The layout of regex-lite's state, for its size accounting only: the
/// same fields, so the same size on every target (32 bytes on x86_64, 20
/// on wasm32, where regex-lite's largest `a{N}` is 524 284, checked).
#[allow(dead_code)]
enum Shape {
    Char(u32, char),
    Ranges(u32, Vec<(char, char)>),
    Splits(Vec<u32>, bool),
    Goto(u32, Option<Look>),
    Capture(u32, u32),
    Fail,
    Match,
}

const STATE_SIZE: usize = core::mem::size_of::<Shape>();
const GROUP_SIZE: usize = core::mem::size_of::<Option<std::sync::Arc<str>>>();
const LIMIT: usize = 10 << 20;

/// Compiles a parsed pattern, or refuses it as too big.
pub(super) fn compile(hir: &Hir) -> Result<Nfa, Error> {
    let mut c = Compiler {
        nodes: &hir.nodes,
        states: Vec::new(),
        extra: 0,
        groups: 0,
    };
    let (start, end) = c.group(0, 0, hir.root)?;
    let m = c.add(State::Match)?;
    c.patch(end, m)?;
    let anchored = hir.nodes.get(hir.root as usize).is_some_and(|n| n.anchored);
    Ok(Nfa {
        states: c.states,
        start,
        anchored,
    })
}

struct Compiler<'h> {
    nodes: &'h [Node],
    states: Vec<State>,
    /// Bytes beyond the states themselves, as regex-lite counts them.
    extra: usize,
    /// Capture slots reserved (the highest index compiled, plus one).
    groups: usize,
}

/// A compiled fragment: its entry and its exit (to patch).
type Frag = (u32, u32);

impl Compiler<'_> {
    fn check(&self) -> Result<(), Error> {
        let used = self.states.len() * STATE_SIZE + self.groups * GROUP_SIZE + self.extra;
        if used > LIMIT {
            return Err(Error("compiled regex exceeded size limit"));
        }
        Ok(())
    }

    fn add(&mut self, state: State) -> Result<u32, Error> {
        if let State::Ranges(r, _) = &state {
            self.extra += r.len() * 8;
        }
        self.states.push(state);
        self.check()?;
        Ok((self.states.len() - 1) as u32)
    }

    fn add_empty(&mut self) -> Result<u32, Error> {
        self.add(State::Goto(0, None))
    }

    fn leaf(&mut self, state: State) -> Result<Frag, Error> {
        let id = self.add(state)?;
        Ok((id, id))
    }

    /// Points `from`'s exit at `to` (a split gains a target).
    fn patch(&mut self, from: u32, to: u32) -> Result<(), Error> {
        match self.states.get_mut(from as usize) {
            Some(State::Char(_, t) | State::Ranges(_, t) | State::Goto(t, _)) => *t = to,
            Some(State::Split(targets, _)) => {
                targets.push(to);
                self.extra += 4;
                return self.check();
            }
            _ => {}
        }
        Ok(())
    }

    fn split(&mut self, greedy: bool) -> Result<u32, Error> {
        self.add(State::Split(Vec::new(), !greedy))
    }

    fn node(&mut self, id: u32) -> Result<Frag, Error> {
        let nodes = self.nodes;
        let Some(node) = nodes.get(id as usize) else {
            return self.leaf(State::Fail);
        };
        match &node.kind {
            Kind::Empty => self.leaf(State::Goto(0, None)),
            Kind::Char(c) => self.leaf(State::Char(*c, 0)),
            Kind::Class(r) if r.is_empty() => self.leaf(State::Fail),
            Kind::Class(r) => self.leaf(State::Ranges(r.as_slice().into(), 0)),
            Kind::Look(l) => self.leaf(State::Goto(0, Some(*l))),
            &Kind::Repeat {
                min,
                max,
                greedy,
                sub,
            } => match max {
                Some(1) if min == 0 => self.optional(sub, greedy),
                None => self.at_least(sub, greedy, min),
                Some(max) if min == max => self.exactly(sub, min),
                Some(max) => self.bounded(sub, greedy, min, max),
            },
            &Kind::Group {
                index,
                name_len,
                sub,
            } => self.group(index, name_len, sub),
            Kind::Concat(subs) => {
                let mut frag: Option<Frag> = None;
                for &s in subs {
                    let f = self.node(s)?;
                    frag = Some(self.join(frag, f)?);
                }
                self.or_empty(frag)
            }
            Kind::Alt(subs) => {
                let split = self.add(State::Split(Vec::new(), false))?;
                let end = self.add_empty()?;
                for &s in subs {
                    let (a, b) = self.node(s)?;
                    self.patch(split, a)?;
                    self.patch(b, end)?;
                }
                Ok((split, end))
            }
        }
    }

    /// `frag` followed by `next`.
    fn join(&mut self, frag: Option<Frag>, next: Frag) -> Result<Frag, Error> {
        Ok(match frag {
            None => next,
            Some((start, end)) => {
                self.patch(end, next.0)?;
                (start, next.1)
            }
        })
    }

    fn or_empty(&mut self, frag: Option<Frag>) -> Result<Frag, Error> {
        match frag {
            Some(f) => Ok(f),
            None => self.leaf(State::Goto(0, None)),
        }
    }

    fn exactly(&mut self, sub: u32, n: u32) -> Result<Frag, Error> {
        let mut frag = None;
        for _ in 0..n {
            let f = self.node(sub)?;
            frag = Some(self.join(frag, f)?);
        }
        self.or_empty(frag)
    }

    fn optional(&mut self, sub: u32, greedy: bool) -> Result<Frag, Error> {
        let split = self.split(greedy)?;
        let (a, b) = self.node(sub)?;
        let end = self.add_empty()?;
        self.patch(split, a)?;
        self.patch(split, end)?;
        self.patch(b, end)?;
        Ok((split, end))
    }

    fn bounded(&mut self, sub: u32, greedy: bool, min: u32, max: u32) -> Result<Frag, Error> {
        let (start, mut end) = self.exactly(sub, min)?;
        let empty = self.add_empty()?;
        for _ in min..max {
            let split = self.split(greedy)?;
            let (a, b) = self.node(sub)?;
            self.patch(end, split)?;
            self.patch(split, a)?;
            self.patch(split, empty)?;
            end = b;
        }
        self.patch(end, empty)?;
        Ok((start, empty))
    }

    fn at_least(&mut self, sub: u32, greedy: bool, n: u32) -> Result<Frag, Error> {
        let sub_empty = self.nodes.get(sub as usize).is_some_and(|s| s.empty);
        if n == 0 && !sub_empty {
            let split = self.split(greedy)?;
            let (a, b) = self.node(sub)?;
            self.patch(split, a)?;
            self.patch(b, split)?;
            return Ok((split, split));
        }
        if n == 0 {
            let (a, b) = self.node(sub)?;
            let plus = self.split(greedy)?;
            self.patch(b, plus)?;
            self.patch(plus, a)?;
            let question = self.split(greedy)?;
            let empty = self.add_empty()?;
            self.patch(question, a)?;
            self.patch(question, empty)?;
            self.patch(plus, empty)?;
            return Ok((question, empty));
        }
        let prefix = if n > 1 {
            Some(self.exactly(sub, n - 1)?)
        } else {
            None
        };
        let (a, b) = self.node(sub)?;
        let split = self.split(greedy)?;
        let start = match prefix {
            Some((start, end)) => {
                self.patch(end, a)?;
                start
            }
            None => a,
        };
        self.patch(b, split)?;
        self.patch(split, a)?;
        Ok((start, split))
    }

    /// A capture group: two epsilon states around its body. A name costs
    /// its length plus four bytes, once, as in regex-lite.
    fn group(&mut self, index: u32, name_len: usize, sub: u32) -> Result<Frag, Error> {
        let index = index as usize;
        if index >= self.groups {
            self.groups = index + 1;
            if name_len > 0 {
                self.extra += name_len + 4;
            }
        }
        let start = self.add_empty()?;
        let (a, b) = self.node(sub)?;
        let end = self.add_empty()?;
        self.patch(start, a)?;
        self.patch(b, end)?;
        Ok((start, end))
    }
}
