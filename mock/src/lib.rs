//! A mock OpenAI-compatible model backend for demos and tests.
//!
//! It serves `POST /v1/chat/completions` as JSON or as an SSE stream ending
//! with a `usage` chunk (and, non-streaming, the Responses, Messages and
//! Embeddings APIs: [`apis`]), names itself in the `x-mock-backend` response
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
//! | `x-mock-no-done: 1` | end a stream cleanly but without its `[DONE]` event |
//! | `x-mock-linger-ms: N` | wait N ms between a stream's `[DONE]` and the end of its body |
//! | `x-mock-reply: TEXT` | answer with TEXT as the assistant content |
//! | `x-mock-event-gap-ms: N` | wait N ms before each stream event after the first |
//! | `x-mock-chunk-chars: N` | stream the reply in pieces of N characters (not words) |
//! | `x-mock-raw: TEXT` | answer 200 with TEXT as an `application/json` body, as is |
//! | `x-mock-tool-call: NAME` | answer with a call of tool NAME (message or stream delta; on `/v1/messages` a `tool_use` block after the text, on `/v1/responses` a `function_call` item after the message) |
//! | `x-mock-cached-tokens: N` | report min(N, prompt tokens) as `cached_tokens` |
//! | `x-mock-cache-write-tokens: N` | on `/v1/messages`: report min(N, the prompt tokens not read from the cache) as `cache_creation_input_tokens` |
//! | `x-mock-identity: 1` | never compress, whatever `accept-encoding` says |
//! | `x-mock-encoding: gzip\|deflate` | always compress with that coding, whatever `accept-encoding` says (an upstream that ignores `identity`) |
//! | `x-mock-lenient: 1` | skip the refusals of the real API (below) |
//!
//! It is as strict as api.openai.com where clients notice:
//!
//! | behaviour | like the real API |
//! |---|---|
//! | compression | per `accept-encoding` (q-values, `*`): gzip, else deflate (zlib), else none; with `content-encoding` and `vary: accept-encoding`. JSON bodies, error bodies and `x-mock-raw` are compressed whole; a stream is one compressed stream with a sync flush after every event. `/healthz`, `/mock/requests`, `/review` and `/llm-ab/shadow` (the sinks) are never compressed ([`encoding`]) |
//! | usage details | `prompt_tokens_details {cached_tokens, audio_tokens}` and `completion_tokens_details {reasoning_tokens, audio_tokens, accepted_prediction_tokens, rejected_prediction_tokens}` in every usage object |
//! | prompt tokens | request body bytes / 4 (at least 1) |
//! | completion tokens | reply pieces (words or `x-mock-chunk-chars` pieces) plus reasoning tokens: 4 per piece for reasoning models (`o1`, `o3`, `o4-mini`, `o1-…`, `o3-…`, `o4-…`, `gpt-5…`), else 0 |
//! | cached tokens | `x-mock-cached-tokens`, else automatic: a prompt of ≥ 1024 tokens whose `messages` this backend already answered reports the largest multiple of 128 ≤ prompt tokens (the last 10 000 `messages` are remembered) |
//! | refusals (400, `invalid_request_error`) | reasoning models: `max_tokens` present (even `null`) → `unsupported_parameter`, `temperature` ≠ 1 → `unsupported_value`; every model: `max_tokens`/`max_completion_tokens` not `null` and not an integer ≥ 1 → `integer_below_min_value` (or `invalid_type` when not an integer), `stream_options` without `stream: true` → code `null` ([`strict`]) |
//! | metadata | `created` (Unix time), `service_tier: "default"`, `system_fingerprint` on the completion and on every chunk |
//!
//! Like OpenAI, a stream carries the final `usage` chunk only when the
//! request asks for it with `stream_options.include_usage`.
//!
//! Order of answers: `x-mock-delay-ms`, then `x-mock-status`/failure rate,
//! 404 for other paths, 400 for a non-JSON body, the refusals, `x-mock-raw`,
//! then the completion.

pub mod apis;
pub mod encoding;
pub mod http;
pub mod load;
pub mod strict;

use encoding::{Coding, StreamEncoder};
use http::Request;
use serde_json::{json, Value};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::{self, BufReader};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    seen: Mutex<SeenMessages>,
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
            seen: Mutex::new(SeenMessages::default()),
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
    if req.method == "POST"
        && (req.path.starts_with("/review") || req.path.starts_with("/llm-ab/shadow"))
    {
        // Acting as a human-review or shadow-record sink.
        return http::write_response(
            w,
            200,
            &[("content-type", "application/json")],
            b"{\"ok\":true}",
        );
    }
    let n = s.served.fetch_add(1, Ordering::SeqCst);
    let behavior = lock(&s.behavior).clone();
    let flag = |h: &str| req.header(h) == Some("1");

    let delay = req
        .header("x-mock-delay-ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(behavior.delay_ms);
    if delay > 0 {
        thread::sleep(Duration::from_millis(delay));
    }
    let coding = match req.header("x-mock-encoding") {
        // An upstream that compresses whatever it was asked for.
        Some("gzip") => Coding::Gzip,
        Some("deflate") => Coding::Deflate,
        _ if flag("x-mock-identity") => Coding::Identity,
        _ => encoding::negotiate(req.header("accept-encoding")),
    };
    let json_headers = [
        ("x-mock-backend", name),
        ("content-type", "application/json"),
    ];
    let respond = |w: &mut TcpStream, status: u16, headers: &[(&str, &str)], body: &[u8]| {
        encoding::write_response(w, coding, status, headers, body)
    };
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
    let other_api = if req.method == "POST" {
        apis::Api::of_path(&req.path)
    } else {
        None
    };
    if let Some(status) = fail.filter(|s| *s >= 400) {
        let message = format!("mock {name} failure");
        let body = match other_api {
            Some(api) => api.error(status, &message, None, Some("mock_failure")),
            None => {
                json!({"error": {"message": message, "type": "server_error", "code": "mock_failure"}})
            }
        };
        return respond(w, status, &json_headers, body.to_string().as_bytes());
    }
    if let Some(api) = other_api {
        let parsed: Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => {
                let body = api.error(400, "mock: body is not JSON", None, Some("invalid_json"));
                return respond(w, 400, &json_headers, body.to_string().as_bytes());
            }
        };
        if !flag("x-mock-lenient") {
            if let Some((message, param, code)) = apis::check(api, req, &parsed) {
                let body = api.error(400, &message, param.as_deref(), code);
                return respond(w, 400, &json_headers, body.to_string().as_bytes());
            }
        }
        let model = parsed["model"].as_str().unwrap_or("unknown");
        let reply = req
            .header("x-mock-reply")
            .map(str::to_string)
            .unwrap_or_else(|| format!("Hello from {name} running {model}."));
        let prompt = (req.body.len() / 4).max(1) as u64;
        let cached = req
            .header("x-mock-cached-tokens")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            .min(prompt);
        let cache_write = match api {
            apis::Api::Messages => req
                .header("x-mock-cache-write-tokens")
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                .min(prompt - cached),
            _ => 0,
        };
        let p = apis::Prompt {
            tokens: prompt,
            cached,
            cache_write,
        };
        let tool = req.header("x-mock-tool-call");
        if parsed["stream"].as_bool() == Some(true) {
            let mut events = match api {
                apis::Api::Messages => apis::messages_events(&parsed, n, &reply, p),
                apis::Api::Responses => apis::responses_events(&parsed, n, &reply, p),
                apis::Api::Embeddings => Vec::new(),
            };
            if let Some(tool) = tool {
                apis::add_tool_call_events(api, &mut events, n, tool);
            }
            if !events.is_empty() {
                return write_events(w, coding, req, name, &events);
            }
        }
        let mut body = apis::answer(api, &parsed, n, &reply, p);
        if let Some(tool) = tool {
            apis::add_tool_call(api, &mut body, n, tool);
        }
        return respond(w, 200, &json_headers, body.to_string().as_bytes());
    }
    if req.method != "POST" || !req.path.starts_with("/v1/chat/completions") {
        return respond(w, 404, &base, b"not found");
    }
    let parsed: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            let body = json!({"error": {"message": "mock: body is not JSON", "type": "invalid_request_error", "code": "invalid_json"}});
            return respond(w, 400, &base, body.to_string().as_bytes());
        }
    };
    if !flag("x-mock-lenient") {
        if let Some(refusal) = strict::check(&parsed) {
            return respond(w, 400, &json_headers, refusal.body().to_string().as_bytes());
        }
    }
    if let Some(raw) = req.header("x-mock-raw") {
        return respond(w, 200, &json_headers, raw.as_bytes());
    }
    let answer = Answer::new(s, req, &parsed, n);
    if parsed["stream"].as_bool() == Some(true) {
        let wants_usage = parsed["stream_options"]["include_usage"].as_bool() == Some(true);
        return write_stream(w, coding, req, name, &answer, wants_usage);
    }
    respond(w, 200, &json_headers, answer.json().to_string().as_bytes())
}

/// What one chat completion answers, shared by the JSON and the stream form.
struct Answer {
    id: String,
    model: String,
    created: u64,
    fingerprint: String,
    reply: String,
    /// The reply cut into stream pieces (words, or N characters).
    pieces: Vec<String>,
    /// Pieces are N characters (joined with ""), not words (joined with " ").
    by_chars: bool,
    usage: Option<Value>,
    tool_call: Option<Value>,
    finish: &'static str,
}

impl Answer {
    fn new(s: &Shared, req: &Request, parsed: &Value, n: u64) -> Answer {
        let name = s.name.as_str();
        let model = parsed["model"].as_str().unwrap_or("unknown").to_string();
        let flag = |h: &str| req.header(h) == Some("1");
        let reply = req
            .header("x-mock-reply")
            .map(str::to_string)
            .unwrap_or_else(|| format!("Hello from {name} running {model}."));
        let chunk_chars: Option<usize> = req
            .header("x-mock-chunk-chars")
            .and_then(|v| v.parse().ok());
        let pieces: Vec<String> = match chunk_chars.filter(|n| *n > 0) {
            // Pieces of N characters, spaces included (joined back with "").
            Some(n) => reply
                .chars()
                .collect::<Vec<_>>()
                .chunks(n)
                .map(|c| c.iter().collect())
                .collect(),
            None => reply.split(' ').map(str::to_string).collect(),
        };
        let prompt = (req.body.len() / 4).max(1) as u64;
        let cached = cached_tokens(s, req, parsed, prompt);
        let visible = pieces.len() as u64;
        let reasoning = if strict::is_reasoning_model(&model) {
            4 * visible
        } else {
            0
        };
        let usage =
            (!flag("x-mock-no-usage")).then(|| usage_json(prompt, cached, visible, reasoning));
        let tool_call = req.header("x-mock-tool-call").map(|name| {
            json!([{"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": name, "arguments": "{}"}}])
        });
        let finish = if flag("x-mock-refuse") {
            "content_filter"
        } else {
            "stop"
        };
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Answer {
            id: format!("chatcmpl-{name}-{n}"),
            model,
            created,
            fingerprint: fingerprint(name),
            reply,
            pieces,
            by_chars: chunk_chars.is_some(),
            usage,
            tool_call,
            finish,
        }
    }

    /// The non-streaming `chat.completion` body.
    fn json(&self) -> Value {
        let mut body = json!({
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.reply},
                         "finish_reason": self.finish}],
            "service_tier": "default", "system_fingerprint": self.fingerprint,
        });
        if let Some(usage) = &self.usage {
            body["usage"] = usage.clone();
        }
        if let Some(calls) = &self.tool_call {
            body["choices"][0]["message"]["tool_calls"] = calls.clone();
            body["choices"][0]["finish_reason"] = json!("tool_calls");
        }
        body
    }

    /// A `chat.completion.chunk` with these `choices`.
    fn chunk(&self, choices: Value) -> Value {
        json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
               "model": self.model, "service_tier": "default",
               "system_fingerprint": self.fingerprint, "choices": choices})
    }
}

/// Streams `a` as SSE events, compressed with `coding` as one stream with
/// a sync flush after every event (or after each half, with `x-mock-split`).
/// Starts a 200 event stream from backend `name`, chunked (and compressed
/// with `coding`).
fn start_sse(w: &mut TcpStream, coding: Coding, name: &str) -> io::Result<()> {
    encoding::start_chunked(
        w,
        coding,
        200,
        &[
            ("x-mock-backend", name),
            ("content-type", "text/event-stream"),
        ],
    )
}

fn write_stream(
    w: &mut TcpStream,
    coding: Coding,
    req: &Request,
    name: &str,
    a: &Answer,
    wants_usage: bool,
) -> io::Result<()> {
    let flag = |h: &str| req.header(h) == Some("1");
    start_sse(w, coding, name)?;
    let split = flag("x-mock-split");
    let gap = req
        .header("x-mock-event-gap-ms")
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let mut encoder = StreamEncoder::new(coding);
    let mut send_event = |w: &mut TcpStream, data: String| -> io::Result<()> {
        send_sse(w, &mut encoder, &format!("data: {data}\n\n"), split)
    };
    for (i, piece) in a.pieces.iter().enumerate() {
        if flag("x-mock-abort") && i == 2 {
            // Drop the connection mid-stream: no terminating chunk.
            return Err(io::Error::other("mock abort"));
        }
        if let (Some(gap), true) = (gap, i > 0) {
            thread::sleep(gap);
        }
        let text = if i == 0 || a.by_chars {
            piece.clone()
        } else {
            format!(" {piece}")
        };
        let choices = json!([{"index": 0, "delta": {"content": text}, "finish_reason": null}]);
        send_event(w, a.chunk(choices).to_string())?;
    }
    if let Some(calls) = &a.tool_call {
        let choices = json!([{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": null}]);
        send_event(w, a.chunk(choices).to_string())?;
    }
    let choices = json!([{"index": 0, "delta": {}, "finish_reason": a.finish}]);
    send_event(w, a.chunk(choices).to_string())?;
    if let (true, Some(usage)) = (wants_usage, &a.usage) {
        let mut chunk = a.chunk(json!([]));
        chunk["usage"] = usage.clone();
        send_event(w, chunk.to_string())?;
    }
    if !flag("x-mock-no-done") {
        send_event(w, "[DONE]".to_string())?;
    }
    if let Some(ms) = req.header("x-mock-linger-ms").and_then(|v| v.parse().ok()) {
        // The end of the body arrives well after `[DONE]`: a client that
        // closes at `[DONE]` (the SDKs do) closes before it.
        thread::sleep(Duration::from_millis(ms));
    }
    http::write_chunk(w, &encoder.finish()?)?;
    http::end_chunks(w)
}

/// Streams named SSE events (`event:` and `data:` lines), compressed with
/// `coding` as one stream with a sync flush after every event (split in two
/// writes mid-event with `x-mock-split`).
fn write_events(
    w: &mut TcpStream,
    coding: Coding,
    req: &Request,
    name: &str,
    events: &[(String, Value)],
) -> io::Result<()> {
    start_sse(w, coding, name)?;
    let split = req.header("x-mock-split") == Some("1");
    let mut encoder = StreamEncoder::new(coding);
    for (event, data) in events {
        send_sse(
            w,
            &mut encoder,
            &format!("event: {event}\ndata: {data}\n\n"),
            split,
        )?;
    }
    http::write_chunk(w, &encoder.finish()?)?;
    http::end_chunks(w)
}

/// Writes one SSE event through `encoder` (a sync flush after it), in two
/// writes split mid-event when `split`.
fn send_sse(
    w: &mut TcpStream,
    encoder: &mut StreamEncoder,
    event: &str,
    split: bool,
) -> io::Result<()> {
    if split {
        let (first, second) = event.as_bytes().split_at(event.len() / 2);
        http::write_chunk(w, &encoder.encode(first)?)?;
        thread::sleep(Duration::from_millis(2));
        http::write_chunk(w, &encoder.encode(second)?)
    } else {
        http::write_chunk(w, &encoder.encode(event.as_bytes())?)
    }
}

/// A usage object as OpenAI reports it: `completion_tokens` counts the
/// `reasoning` tokens too, and `cached` is part of `prompt`.
fn usage_json(prompt: u64, cached: u64, visible: u64, reasoning: u64) -> Value {
    let completion = visible + reasoning;
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
           "total_tokens": prompt + completion,
           "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
           "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0,
               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
}

/// The cached part of the prompt: `x-mock-cached-tokens: N` (at most the
/// prompt), else OpenAI's automatic caching: a prompt of ≥ 1024 tokens whose
/// `messages` were already answered is cached in steps of 128 tokens.
fn cached_tokens(s: &Shared, req: &Request, parsed: &Value, prompt: u64) -> u64 {
    let mut h = DefaultHasher::new();
    parsed["messages"].to_string().hash(&mut h);
    let seen = !lock(&s.seen).insert(h.finish());
    if let Some(n) = req
        .header("x-mock-cached-tokens")
        .and_then(|v| v.parse::<u64>().ok())
    {
        return n.min(prompt);
    }
    if prompt >= 1024 && seen {
        prompt / 128 * 128
    } else {
        0
    }
}

/// A `system_fingerprint` that stays the same for a backend name.
fn fingerprint(name: &str) -> String {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    format!("fp_{:010x}", h.finish() & 0xff_ffff_ffff)
}

/// Hashes of the `messages` already answered (for automatic prompt
/// caching), the oldest forgotten beyond [`SeenMessages::MAX`].
#[derive(Default)]
struct SeenMessages {
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl SeenMessages {
    const MAX: usize = 10_000;

    /// Records `hash`; `false` when it was already there.
    fn insert(&mut self, hash: u64) -> bool {
        if !self.set.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        if self.order.len() > Self::MAX {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
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
