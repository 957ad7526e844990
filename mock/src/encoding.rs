//! Response compression as api.openai.com does it: the coding is chosen
//! from the request's `accept-encoding` ([`negotiate`]), gzip before
//! deflate (zlib format, which is what HTTP calls "deflate"), and an SSE
//! stream is one compressed stream across its chunks with a sync flush
//! after every event ([`StreamEncoder`]), so each event can be decoded as it
//! arrives.

use crate::http;
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;
use std::io::{self, Write};
use std::net::TcpStream;

/// A content coding the mock can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No compression.
    Identity,
    /// `content-encoding: gzip`.
    Gzip,
    /// `content-encoding: deflate` (zlib-wrapped DEFLATE).
    Deflate,
}

impl Coding {
    /// The `content-encoding` value, `None` for identity.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Coding::Identity => None,
            Coding::Gzip => Some("gzip"),
            Coding::Deflate => Some("deflate"),
        }
    }
}

/// Picks the coding for an `accept-encoding` value: gzip if acceptable,
/// else deflate, else identity. Entries are `coding[;q=V]`, `q=0` means
/// "not acceptable", `*` stands for every coding not named, an entry with
/// an unreadable `q` is ignored, and an explicit entry beats `*`.
pub fn negotiate(accept: Option<&str>) -> Coding {
    let Some(accept) = accept else {
        return Coding::Identity;
    };
    let mut entries: Vec<(String, f32)> = Vec::new();
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1.0f32);
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q));
                }
            }
        }
        if let Some(q) = q {
            entries.push((name, q));
        }
    }
    let quality = |coding: &str| {
        let named = entries.iter().find(|(n, _)| n == coding);
        named
            .or_else(|| entries.iter().find(|(n, _)| n == "*"))
            .map_or(0.0, |(_, q)| *q)
    };
    if quality("gzip") > 0.0 {
        Coding::Gzip
    } else if quality("deflate") > 0.0 {
        Coding::Deflate
    } else {
        Coding::Identity
    }
}

/// Compresses a whole body.
pub fn compress(coding: Coding, body: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = StreamEncoder::new(coding);
    let mut out = e.encode(body)?;
    out.extend(e.finish()?);
    Ok(out)
}

/// Writes a complete response, compressed with `coding`: adds
/// `content-encoding` and `vary: accept-encoding` when it compresses, and
/// the content-length is that of the bytes sent.
pub fn write_response(
    w: &mut TcpStream,
    coding: Coding,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let Some(name) = coding.header() else {
        return http::write_response(w, status, headers, body);
    };
    let body = compress(coding, body)?;
    let mut all = headers.to_vec();
    all.extend([("content-encoding", name), ("vary", "accept-encoding")]);
    http::write_response(w, status, &all, &body)
}

/// Starts a chunked response whose chunks will be compressed with
/// `coding` (see [`write_response`] for the added headers).
pub fn start_chunked(
    w: &mut TcpStream,
    coding: Coding,
    status: u16,
    headers: &[(&str, &str)],
) -> io::Result<()> {
    let mut all = headers.to_vec();
    if let Some(name) = coding.header() {
        all.extend([("content-encoding", name), ("vary", "accept-encoding")]);
    }
    http::start_chunked(w, status, &all)
}

/// One compressed stream fed piece by piece: every [`encode`] returns the
/// bytes that decode to exactly the pieces given so far (a sync flush),
/// [`finish`] the stream's end (gzip trailer, zlib checksum).
///
/// [`encode`]: StreamEncoder::encode
/// [`finish`]: StreamEncoder::finish
pub enum StreamEncoder {
    /// Passes bytes through.
    Identity,
    /// A gzip member.
    Gzip(GzEncoder<Vec<u8>>),
    /// A zlib stream.
    Deflate(ZlibEncoder<Vec<u8>>),
}

impl StreamEncoder {
    /// A new stream for `coding`.
    pub fn new(coding: Coding) -> StreamEncoder {
        match coding {
            Coding::Identity => StreamEncoder::Identity,
            Coding::Gzip => StreamEncoder::Gzip(GzEncoder::new(Vec::new(), Compression::default())),
            Coding::Deflate => {
                StreamEncoder::Deflate(ZlibEncoder::new(Vec::new(), Compression::default()))
            }
        }
    }

    /// Compresses `data` and sync-flushes; returns the bytes to send.
    pub fn encode(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            StreamEncoder::Identity => Ok(data.to_vec()),
            StreamEncoder::Gzip(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
            StreamEncoder::Deflate(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    /// Ends the stream; returns its last bytes (none for identity).
    pub fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            StreamEncoder::Identity => Ok(Vec::new()),
            StreamEncoder::Gzip(e) => e.finish(),
            StreamEncoder::Deflate(e) => e.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{negotiate, Coding};

    #[test]
    fn negotiates_like_a_server() {
        let cases = [
            (None, Coding::Identity),
            (Some(""), Coding::Identity),
            (Some("gzip, deflate"), Coding::Gzip),
            (Some("deflate, gzip"), Coding::Gzip),
            (Some("gzip;q=0, deflate"), Coding::Deflate),
            (Some("GZIP ; Q=0.5"), Coding::Gzip),
            (Some("deflate;q=0.1"), Coding::Deflate),
            (Some("br"), Coding::Identity),
            (Some("identity"), Coding::Identity),
            (Some("*"), Coding::Gzip),
            (Some("gzip;q=0, *"), Coding::Deflate),
            (Some("gzip;q=0, deflate;q=0, *"), Coding::Identity),
            (Some("*;q=0"), Coding::Identity),
            (Some("*;q=0, deflate"), Coding::Deflate),
            (Some("gzip;q=oops, deflate"), Coding::Deflate),
            (Some("gzip;q=2"), Coding::Identity),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
    }
}
