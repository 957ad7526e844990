//! A mock OpenAI-compatible model backend for demos and tests.
//!
//! It serves `POST /v1/chat/completions` as JSON or as an SSE stream ending
//! with a `usage` chunk, names itself in the `x-mock-backend` response
//! header, records every request it receives, and can be made slow or
//! failing, for all requests ([`Behavior`]) or per request with headers:
//!
//! | request header | effect |
//! |---|---|
//! | `x-mock-delay-ms: N` | wait N ms before answering |
//! | `x-mock-status: S` | answer with status S and an OpenAI error body |
//! | `x-mock-split: 1` | stream each SSE event in two TCP writes, split mid-JSON |
//! | `x-mock-no-usage: 1` | never report `usage` (JSON or stream) |
//! | `x-mock-refuse: 1` | answer with `finish_reason: content_filter` |
//! | `x-mock-abort: 1` | stop a stream after two events, without `[DONE]` |
//! | `x-mock-reply: TEXT` | answer with TEXT as the assistant content |
//! | `x-mock-event-gap-ms: N` | wait N ms before each stream event after the first |
//! | `x-mock-chunk-chars: N` | stream the reply in pieces of N characters (not words) |
//! | `x-mock-raw: TEXT` | answer 200 with TEXT as an `application/json` body, as is |
//! | `x-mock-tool-call: NAME` | answer with a call of tool NAME (message or stream delta) |
//!
//! Like OpenAI, a stream carries the final `usage` chunk only when the
//! request asks for it with `stream_options.include_usage`.

pub mod http;
pub mod load;

use http::Request;
use serde_json::{json, Value};
use std::io::{self, BufReader};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// How the backend misbehaves.
#[derive(Debug, Clone, Default)]
pub struct Behavior {
    /// Delay before answering, in milliseconds.
    pub delay_ms: u64,
    /// Share of requests (0..=1) answered with `fail_status`.
    pub fail_rate: f64,
    /// Status used for failures (default 500).
    pub fail_status: u16,
}

struct Shared {
    name: String,
    behavior: Mutex<Behavior>,
    requests: Mutex<Vec<Request>>,
    served: AtomicU64,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running mock backend; stops when dropped.
pub struct MockBackend {
    shared: Arc<Shared>,
    port: u16,
}

impl MockBackend {
    /// Starts a backend named `name` on `127.0.0.1:port` (0 = any free port).
    pub fn start(name: &str, port: u16) -> io::Result<MockBackend> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            name: name.to_string(),
            behavior: Mutex::new(Behavior::default()),
            requests: Mutex::new(Vec::new()),
            served: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let s = s.clone();
                    thread::spawn(move || {
                        let _ = serve_connection(&s, conn);
                    });
                }
            }
        });
        Ok(MockBackend { shared, port })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Replaces the behaviour for subsequent requests.
    pub fn set_behavior(&self, b: Behavior) {
        *lock(&self.shared.behavior) = b;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Forgets the recorded requests.
    pub fn clear(&self) {
        lock(&self.shared.requests).clear();
    }
}

impl Drop for MockBackend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_connection(s: &Shared, conn: TcpStream) -> io::Result<()> {
    // Stream events go out as written, as a real model server's do.
    conn.set_nodelay(true)?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    while let Some(req) = http::read_request(&mut reader)? {
        if s.stop.load(Ordering::SeqCst) {
            break;
        }
        handle(s, &req, &mut writer)?;
    }
    Ok(())
}

fn handle(s: &Shared, req: &Request, w: &mut TcpStream) -> io::Result<()> {
    let name = s.name.as_str();
    let base = [("x-mock-backend", name)];
    if req.method == "GET" && req.path.starts_with("/healthz") {
        return http::write_response(w, 200, &base, b"ok");
    }
    if req.method == "GET" && req.path.starts_with("/mock/requests") {
        let list: Vec<Value> = lock(&s.requests).iter().map(request_json).collect();
        let body = serde_json::to_vec(&list).unwrap_or_default();
        return http::write_response(w, 200, &[("content-type", "application/json")], &body);
    }
    lock(&s.requests).push(req.clone());
    if req.method == "POST" && req.path.starts_with("/review") {
        // Acting as a human-review sink.
        return http::write_response(
            w,
            200,
            &[("content-type", "application/json")],
            b"{\"ok\":true}",
        );
    }
    let n = s.served.fetch_add(1, Ordering::SeqCst);
    let behavior = lock(&s.behavior).clone();

    let delay = req
        .header("x-mock-delay-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(behavior.delay_ms);
    if delay > 0 {
        thread::sleep(Duration::from_millis(delay));
    }
    let forced_status = req
        .header("x-mock-status")
        .and_then(|v| v.parse::<u16>().ok());
    let fail = forced_status.or_else(|| {
        (behavior.fail_rate > 0.0 && unit(n) < behavior.fail_rate).then_some(
            if behavior.fail_status == 0 {
                500
            } else {
                behavior.fail_status
            },
        )
    });
    if let Some(status) = fail.filter(|s| *s >= 400) {
        let body = json!({"error": {"message": format!("mock {name} failure"), "type": "server_error", "code": "mock_failure"}});
        return http::write_response(
            w,
            status,
            &[
                ("x-mock-backend", name),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        );
    }
    if req.method != "POST" || !req.path.starts_with("/v1/chat/completions") {
        return http::write_response(w, 404, &base, b"not found");
    }
    let parsed: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            let body = json!({"error": {"message": "mock: body is not JSON", "type": "invalid_request_error", "code": "invalid_json"}});
            return http::write_response(w, 400, &base, body.to_string().as_bytes());
        }
    };
    let model = parsed["model"].as_str().unwrap_or("unknown").to_string();
    let flag = |h: &str| req.header(h) == Some("1");
    let prompt_tokens = (req.body.len() / 4).max(1) as u64;
    let reply = req
        .header("x-mock-reply")
        .map(str::to_string)
        .unwrap_or_else(|| format!("Hello from {name} running {model}."));
    if let Some(raw) = req.header("x-mock-raw") {
        return http::write_response(
            w,
            200,
            &[
                ("x-mock-backend", name),
                ("content-type", "application/json"),
            ],
            raw.as_bytes(),
        );
    }
    let chunk_chars: Option<usize> = req
        .header("x-mock-chunk-chars")
        .and_then(|v| v.parse().ok());
    let words: Vec<String> = match chunk_chars.filter(|n| *n > 0) {
        // Pieces of N characters, spaces included (joined back with "").
        Some(n) => reply
            .chars()
            .collect::<Vec<_>>()
            .chunks(n)
            .map(|c| c.iter().collect())
            .collect(),
        None => reply.split(' ').map(str::to_string).collect(),
    };
    let completion_tokens = words.len() as u64;
    let usage = (!flag("x-mock-no-usage")).then(|| {
        json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
               "total_tokens": prompt_tokens + completion_tokens})
    });
    let tool_call = req.header("x-mock-tool-call").map(|name| {
        json!([{"index": 0, "id": "call_1", "type": "function",
                "function": {"name": name, "arguments": "{}"}}])
    });
    let finish = if flag("x-mock-refuse") {
        "content_filter"
    } else {
        "stop"
    };
    let id = format!("chatcmpl-{name}-{n}");
    if parsed["stream"].as_bool() == Some(true) {
        http::start_chunked(
            w,
            200,
            &[
                ("x-mock-backend", name),
                ("content-type", "text/event-stream"),
            ],
        )?;
        let split = flag("x-mock-split");
        let gap = req
            .header("x-mock-event-gap-ms")
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        let send_event = |w: &mut TcpStream, data: String| -> io::Result<()> {
            let event = format!("data: {data}\n\n");
            if split {
                let (a, b) = event.split_at(event.len() / 2);
                http::write_chunk(w, a.as_bytes())?;
                thread::sleep(Duration::from_millis(2));
                http::write_chunk(w, b.as_bytes())
            } else {
                http::write_chunk(w, event.as_bytes())
            }
        };
        for (i, word) in words.iter().enumerate() {
            if flag("x-mock-abort") && i == 2 {
                // Drop the connection mid-stream: no terminating chunk.
                return Err(io::Error::other("mock abort"));
            }
            if let (Some(gap), true) = (gap, i > 0) {
                thread::sleep(gap);
            }
            let text = if i == 0 || chunk_chars.is_some() {
                word.clone()
            } else {
                format!(" {word}")
            };
            let chunk = json!({"id": id, "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
            send_event(w, chunk.to_string())?;
        }
        if let Some(calls) = &tool_call {
            let chunk = json!({"id": id, "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": null}]});
            send_event(w, chunk.to_string())?;
        }
        let last = json!({"id": id, "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]});
        send_event(w, last.to_string())?;
        let wants_usage = parsed["stream_options"]["include_usage"].as_bool() == Some(true);
        if let (true, Some(usage)) = (wants_usage, &usage) {
            let usage_chunk = json!({"id": id, "object": "chat.completion.chunk", "model": model,
                "choices": [], "usage": usage});
            send_event(w, usage_chunk.to_string())?;
        }
        send_event(w, "[DONE]".to_string())?;
        return http::end_chunks(w);
    }
    let mut body = json!({
        "id": id, "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                     "finish_reason": finish}],
    });
    if let Some(usage) = usage {
        body["usage"] = usage;
    }
    if let Some(calls) = tool_call {
        body["choices"][0]["message"]["tool_calls"] = calls;
        body["choices"][0]["finish_reason"] = json!("tool_calls");
    }
    http::write_response(
        w,
        200,
        &[
            ("x-mock-backend", name),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    )
}

/// Deterministic pseudo-random number in [0, 1) for request `n`.
fn unit(n: u64) -> f64 {
    let mut x = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn request_json(r: &Request) -> Value {
    json!({
        "method": r.method,
        "path": r.path,
        "headers": r.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(&r.body),
    })
}

#[cfg(test)]
mod tests;
