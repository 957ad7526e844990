//! Incremental Server-Sent Events parsing.
//!
//! Bytes arrive in arbitrary chunks; [`SseParser::feed`] returns every event
//! completed by a chunk, with its byte span in the stream so that a caller
//! can pass events on, drop one, or hold back an incomplete tail. Only the
//! `data` field matters for LLM streams; other fields and comments are kept
//! in the raw span but not interpreted.

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `data` lines joined with `\n` (empty for comment-only events).
    pub data: String,
    /// The raw bytes of the event, terminator included.
    pub raw: Vec<u8>,
}

/// Largest incomplete event held while waiting for its end (1 MiB); a
/// longer one is dropped from parsing: a stream that is only read passes
/// its bytes on, one that is rewritten (re-emitted event by event) drops it.
pub const MAX_PENDING: usize = 1024 * 1024;

/// Incremental SSE parser.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated event.
    pending: Vec<u8>,
    /// Set when an oversized event is being skipped.
    skipping: bool,
}

impl SseParser {
    /// Creates an empty parser.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Bytes held for an event that has not ended yet.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Takes the bytes of an unterminated event (at end of stream).
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Feeds a chunk; returns the events it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            // Search for the end of the event across the held bytes + chunk,
            // looking back at most 3 bytes into what was held.
            let look_back = self.pending.len().min(3);
            let held = self.pending.len();
            self.pending.extend_from_slice(rest);
            let search_from = held - look_back;
            match find_terminator(&self.pending[search_from..]) {
                Some((at, term_len)) => {
                    let end = search_from + at + term_len;
                    let consumed_from_chunk = end - held;
                    if !self.skipping {
                        events.push(parse_event(&self.pending[..end]));
                    } else {
                        self.skipping = false;
                    }
                    self.pending.clear();
                    rest = &rest[consumed_from_chunk..];
                }
                None => {
                    if self.pending.len() > MAX_PENDING {
                        // Keep only the last bytes needed to find a terminator.
                        let keep = self.pending.len() - 3;
                        self.pending.drain(..keep);
                        self.skipping = true;
                    }
                    rest = &[];
                }
            }
        }
        events
    }
}

/// Finds the first blank line (`\n\n`, `\r\n\r\n`, `\r\r`) in `buf`:
/// returns its offset and length.
fn find_terminator(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        match buf[i] {
            b'\n' if buf.get(i + 1) == Some(&b'\n') => return Some((i, 2)),
            b'\r'
                if buf.get(i + 1) == Some(&b'\n')
                    && buf.get(i + 2) == Some(&b'\r')
                    && buf.get(i + 3) == Some(&b'\n') =>
            {
                return Some((i, 4))
            }
            b'\r' if buf.get(i + 1) == Some(&b'\r') => return Some((i, 2)),
            b'\n' if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') => {
                return Some((i, 3))
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_event(raw: &[u8]) -> Event {
    let text = String::from_utf8_lossy(raw);
    let mut data = String::new();
    let mut first = true;
    for line in text.split(['\n', '\r']) {
        let Some(value) = line.strip_prefix("data") else {
            continue;
        };
        let value = match value.strip_prefix(':') {
            Some(v) => v.strip_prefix(' ').unwrap_or(v),
            None if value.is_empty() => "",
            None => continue, // a field named e.g. "database"
        };
        if !first {
            data.push('\n');
        }
        data.push_str(value);
        first = false;
    }
    Event {
        data,
        raw: raw.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "data: {\"a\":1}\n\n: keep-alive\n\ndata: line1\ndata: line2\n\nevent: x\r\ndata:{\"b\":2}\r\n\r\ndata: [DONE]\n\n";

    fn datas(events: &[Event]) -> Vec<String> {
        events.iter().map(|e| e.data.clone()).collect()
    }

    #[test]
    fn parses_whole_stream() {
        let mut p = SseParser::new();
        let events = p.feed(STREAM.as_bytes());
        assert_eq!(
            datas(&events),
            vec!["{\"a\":1}", "", "line1\nline2", "{\"b\":2}", "[DONE]"]
        );
        let raw: Vec<u8> = events.iter().flat_map(|e| e.raw.clone()).collect();
        assert_eq!(raw, STREAM.as_bytes());
        assert_eq!(p.pending_len(), 0);
    }

    #[test]
    fn same_events_however_the_stream_is_split() {
        let whole = SseParser::new().feed(STREAM.as_bytes());
        let bytes = STREAM.as_bytes();
        for size in 1..=bytes.len() {
            let mut p = SseParser::new();
            let mut events = Vec::new();
            for chunk in bytes.chunks(size) {
                events.extend(p.feed(chunk));
            }
            assert_eq!(events, whole, "chunk size {size}");
        }
        // Uneven splits around every position.
        for cut in 0..bytes.len() {
            let mut p = SseParser::new();
            let mut events = p.feed(&bytes[..cut]);
            events.extend(p.feed(&bytes[cut..]));
            assert_eq!(events, whole, "cut at {cut}");
        }
    }

    #[test]
    fn incomplete_tail_is_held() {
        let mut p = SseParser::new();
        assert!(p.feed(b"data: {\"par").is_empty());
        assert_eq!(p.pending_len(), 11);
        let events = p.feed(b"tial\":true}\n\ndata: x");
        assert_eq!(datas(&events), vec!["{\"partial\":true}"]);
        assert_eq!(p.pending_len(), 7);
    }

    #[test]
    fn oversized_event_is_skipped_without_unbounded_memory() {
        let mut p = SseParser::new();
        let big = vec![b'x'; MAX_PENDING + 10];
        assert!(p.feed(b"data: ").is_empty());
        assert!(p.feed(&big).is_empty());
        assert!(p.pending_len() <= MAX_PENDING);
        let events = p.feed(b"\n\ndata: next\n\n");
        assert_eq!(datas(&events), vec!["next"]);
    }

    #[test]
    fn data_field_name_must_be_exact() {
        let events = SseParser::new().feed(b"database: no\ndata\ndata: yes\n\n");
        assert_eq!(datas(&events), vec!["\nyes"]);
    }
}
