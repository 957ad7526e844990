//! Tests of the mock backend through its own client.

use crate::http::{send, Response};
use crate::{Behavior, MockBackend};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

fn chat(port: u16, body: &str, headers: &[(&str, &str)]) -> crate::http::Response {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    send(port, "POST", "/v1/chat/completions", &all, body.as_bytes()).unwrap()
}

/// `text` with every `"created":N` replaced by `"created":0` (it is the
/// time of the answer).
fn without_created(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("\"created\":") {
        let (head, tail) = rest.split_at(i + "\"created\":".len());
        out.push_str(head);
        out.push('0');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// The body of `r` decoded per its `content-encoding`.
fn decoded(r: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    match r.header("content-encoding") {
        None => out.extend_from_slice(&r.body),
        Some("gzip") => {
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("deflate") => {
            flate2::read::ZlibDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        Some(other) => panic!("unexpected content-encoding {other}"),
    }
    out
}

/// The decoded body of `r` as JSON, without the per-answer `id`/`created`.
fn decoded_json(r: &Response) -> Value {
    let mut v: Value = serde_json::from_slice(&decoded(r)).unwrap();
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
        o.remove("created");
    }
    v
}

fn decoded_text(r: &Response) -> String {
    String::from_utf8(decoded(r)).unwrap()
}

/// The `data:` payloads of an SSE body.
fn events(text: &str) -> Vec<&str> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect()
}

/// Sends a chat request and returns the response headers and its chunks
/// exactly as they arrived (the framing removed, nothing decoded).
fn raw_chunks(port: u16, body: &str, headers: &[(&str, &str)]) -> (Response, Vec<Vec<u8>>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         content-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut r = BufReader::new(stream);
    // A head with no framing: read_response leaves the chunks to us.
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let done = line == "\r\n";
        head.extend_from_slice(line.as_bytes());
        if done {
            break;
        }
    }
    let text = String::from_utf8(head).unwrap();
    let unframed = text.replace("transfer-encoding: chunked\r\n", "");
    let resp = crate::http::read_response(&mut BufReader::new(unframed.as_bytes()), false).unwrap();
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    let mut chunks = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        if size == 0 {
            return (resp, chunks);
        }
        let mut chunk = vec![0; size];
        r.read_exact(&mut chunk).unwrap();
        let mut crlf = [0; 2];
        r.read_exact(&mut crlf).unwrap();
        chunks.push(chunk);
    }
}

#[test]
fn answers_json_with_usage_and_names_itself() {
    let m = MockBackend::start("alpha", 0).unwrap();
    let r = chat(m.port(), r#"{"model":"m1","messages":[]}"#, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-mock-backend"), Some("alpha"));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["model"], "m1");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(m.request_count(), 1);
    assert_eq!(m.requests()[0].body, br#"{"model":"m1","messages":[]}"#);
}

#[test]
fn streams_sse_ending_with_a_usage_chunk_and_done() {
    let m = MockBackend::start("beta", 0).unwrap();
    let without = chat(m.port(), r#"{"model":"m2","stream":true}"#, &[]);
    assert!(
        !without.text().contains("\"usage\""),
        "usage only on request"
    );
    let r = chat(
        m.port(),
        r#"{"model":"m2","stream":true,"stream_options":{"include_usage":true}}"#,
        &[],
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = r.text();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let usage: Value = serde_json::from_str(events[events.len() - 2]).unwrap();
    let content: String = events[..events.len() - 2]
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "Hello from beta running m2.");
    assert_eq!(usage["usage"]["completion_tokens"], 5);
}

#[test]
fn reads_chunked_request_bodies() {
    let m = MockBackend::start("gamma", 0).unwrap();
    let body = b"5\r\n{\"mod\r\nf\r\nel\":\"m3\",\"x\":1}\r\n0\r\n\r\n";
    let r = send(
        m.port(),
        "POST",
        "/v1/chat/completions",
        &[("transfer-encoding", "chunked")],
        body,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(m.requests()[0].body, br#"{"model":"m3","x":1}"#);
}

#[test]
fn fails_and_delays_on_demand() {
    let m = MockBackend::start("delta", 0).unwrap();
    let r = chat(m.port(), "{}", &[("x-mock-status", "503")]);
    assert_eq!(r.status, 503);
    m.set_behavior(Behavior {
        fail_rate: 1.0,
        fail_status: 502,
        ..Behavior::default()
    });
    assert_eq!(chat(m.port(), "{}", &[]).status, 502);
    m.set_behavior(Behavior {
        fail_rate: 0.3,
        ..Behavior::default()
    });
    let failed = (0..200)
        .filter(|_| chat(m.port(), "{}", &[]).status == 500)
        .count();
    assert!(
        (30..=90).contains(&failed),
        "{failed} of 200 failed at 30 %"
    );
    let start = std::time::Instant::now();
    chat(m.port(), "{}", &[("x-mock-delay-ms", "150")]);
    assert!(start.elapsed().as_millis() >= 150);
}

#[test]
fn bad_json_gets_a_400() {
    let m = MockBackend::start("eps", 0).unwrap();
    assert_eq!(chat(m.port(), "{nope", &[]).status, 400);
}

#[test]
fn per_request_modes() {
    let m = MockBackend::start("zeta", 0).unwrap();
    let body = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
    let split = chat(m.port(), body, &[("x-mock-split", "1")]);
    let whole = chat(m.port(), body, &[]);
    assert_eq!(
        without_created(&split.text().replace("zeta-0", "zeta-1")),
        without_created(&whole.text()),
        "splitting changes only the TCP writes"
    );
    let no_usage = chat(m.port(), body, &[("x-mock-no-usage", "1")]);
    assert!(!no_usage.text().contains("usage"));
    let refused = chat(m.port(), r#"{"model":"m"}"#, &[("x-mock-refuse", "1")]);
    assert!(refused.text().contains("content_filter"));
    let reply = chat(
        m.port(),
        r#"{"model":"m"}"#,
        &[("x-mock-reply", "custom words")],
    );
    assert!(reply.text().contains("\"custom words\""));
    assert!(send(
        m.port(),
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json"), ("x-mock-abort", "1")],
        body.as_bytes()
    )
    .is_err());
}

#[test]
fn load_sends_its_schedule_with_distinct_users() {
    let m = MockBackend::start("load", 0).unwrap();
    let plan = crate::load::Plan {
        port: m.port(),
        rate: 200,
        duration: std::time::Duration::from_millis(500),
        connections: 4,
        path: "/v1/chat/completions".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"model":"m","messages":[]}"#.to_vec(),
    };
    let report = crate::load::run(&plan);
    assert_eq!((report.sent, report.ok, report.errors), (100, 100, 0));
    assert_eq!(m.request_count(), 100);
    let mut users: Vec<String> = m
        .requests()
        .iter()
        .map(|r| r.header("x-user-id").unwrap().to_string())
        .collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 100);
    assert!(report.p50_us <= report.p99_us && report.p99_us <= report.max_us);
}

#[test]
fn load_latency_counts_the_queue_behind_a_slow_answer() {
    // One connection, a request due every 10 ms, each answered in 50 ms: a
    // closed loop would report ~50 ms; measured from the due time the
    // backlog shows.
    let m = MockBackend::start("slow", 0).unwrap();
    m.set_behavior(Behavior {
        delay_ms: 50,
        ..Behavior::default()
    });
    let plan = crate::load::Plan {
        port: m.port(),
        rate: 100,
        duration: std::time::Duration::from_millis(200),
        connections: 1,
        path: "/v1/chat/completions".into(),
        headers: vec![],
        body: br#"{"model":"m","messages":[]}"#.to_vec(),
    };
    let report = crate::load::run(&plan);
    assert_eq!(report.ok, 20);
    // The last request is due at 190 ms and answered at about 20 × 50 ms.
    assert!(report.max_us >= 700_000, "{report:?}");
}

const SIMPLE: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn gzip_and_deflate_json_decode_to_the_identity_body() {
    let m = MockBackend::start("enc", 0).unwrap();
    let plain = chat(m.port(), SIMPLE, &[]);
    assert_eq!(plain.header("content-encoding"), None);
    for (accept, coding) in [("gzip, deflate", "gzip"), ("deflate", "deflate")] {
        let r = chat(m.port(), SIMPLE, &[("accept-encoding", accept)]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), Some(coding), "{accept}");
        assert_eq!(r.header("vary"), Some("accept-encoding"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-mock-backend"), Some("enc"));
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        assert_ne!(r.body, decoded(&r), "the bytes on the wire are compressed");
        assert_eq!(decoded_json(&r), decoded_json(&plain), "{accept}");
    }
}

#[test]
fn accept_encoding_quality_values_pick_the_coding() {
    let m = MockBackend::start("q", 0).unwrap();
    let coding = |headers: &[(&str, &str)]| {
        let r = chat(m.port(), SIMPLE, headers);
        assert_eq!(r.status, 200, "{headers:?}");
        let v: Value = serde_json::from_slice(&decoded(&r)).unwrap();
        assert_eq!(v["object"], "chat.completion");
        (
            r.header("content-encoding").map(str::to_string),
            r.header("vary").map(str::to_string),
        )
    };
    let deflate = (
        Some("deflate".to_string()),
        Some("accept-encoding".to_string()),
    );
    let none = (None, None);
    assert_eq!(coding(&[("accept-encoding", "gzip;q=0, deflate")]), deflate);
    assert_eq!(
        coding(&[("accept-encoding", "br;q=1, *;q=0.5")])
            .0
            .as_deref(),
        Some("gzip")
    );
    assert_eq!(coding(&[("accept-encoding", "identity")]), none);
    assert_eq!(
        coding(&[("accept-encoding", "gzip;q=0, deflate;q=0")]),
        none
    );
    assert_eq!(coding(&[]), none);
    assert_eq!(
        coding(&[
            ("accept-encoding", "gzip, deflate"),
            ("x-mock-identity", "1")
        ]),
        none
    );
    // An upstream that compresses whatever it was asked for.
    assert_eq!(
        coding(&[("accept-encoding", "identity"), ("x-mock-encoding", "gzip")])
            .0
            .as_deref(),
        Some("gzip")
    );
    assert_eq!(
        coding(&[("x-mock-encoding", "deflate")]).0.as_deref(),
        Some("deflate")
    );
}

#[test]
fn errors_and_raw_bodies_are_compressed_but_not_the_service_endpoints() {
    let m = MockBackend::start("errs", 0).unwrap();
    let gz = ("accept-encoding", "gzip");
    let failed = chat(m.port(), SIMPLE, &[gz, ("x-mock-status", "503")]);
    assert_eq!(failed.status, 503);
    assert_eq!(failed.header("content-encoding"), Some("gzip"));
    assert_eq!(decoded_json(&failed)["error"]["code"], "mock_failure");
    let bad = chat(m.port(), "{nope", &[gz]);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.header("content-encoding"), Some("gzip"));
    assert_eq!(decoded_json(&bad)["error"]["code"], "invalid_json");
    let raw = chat(m.port(), SIMPLE, &[gz, ("x-mock-raw", "{not json")]);
    assert_eq!(raw.header("content-encoding"), Some("gzip"));
    assert_eq!(decoded_text(&raw), "{not json");
    let refused = chat(
        m.port(),
        r#"{"model":"gpt-5","max_tokens":5}"#,
        &[("accept-encoding", "deflate")],
    );
    assert_eq!(refused.status, 400);
    assert_eq!(refused.header("content-encoding"), Some("deflate"));
    assert_eq!(decoded_json(&refused)["error"]["param"], "max_tokens");
    for (method, path) in [
        ("GET", "/healthz"),
        ("GET", "/mock/requests"),
        ("POST", "/review"),
    ] {
        let r = send(m.port(), method, path, &[gz], b"").unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-encoding"), None, "{path}");
    }
}

#[test]
fn a_gzip_stream_decodes_event_by_event() {
    let m = MockBackend::start("gzs", 0).unwrap();
    let body = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true}}"#;
    let sdk = [
        ("content-type", "application/json"),
        ("accept-encoding", "gzip, deflate"),
    ];
    let (head, chunks) = raw_chunks(m.port(), body, &sdk);
    assert_eq!(head.header("content-encoding"), Some("gzip"));
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.header("vary"), Some("accept-encoding"));
    // Each chunk, fed to a decoder after the ones before it, yields exactly
    // one more whole event; the last chunk only ends the gzip member.
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut seen: Vec<String> = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        decoder.write_all(chunk).unwrap();
        decoder.flush().unwrap();
        let out = String::from_utf8(std::mem::take(decoder.get_mut())).unwrap();
        if i + 1 == chunks.len() {
            assert_eq!(out, "", "the trailer chunk carries no data");
        } else {
            assert!(
                out.starts_with("data: ") && out.ends_with("\n\n"),
                "chunk {i}: {out:?}"
            );
            assert_eq!(events(&out).len(), 1, "chunk {i}: {out:?}");
            seen.push(out);
        }
    }
    decoder
        .try_finish()
        .expect("a complete gzip member (crc checked)");
    let first: Value = serde_json::from_str(events(&seen[0])[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["content"], "Hello");
    assert_eq!(seen.last().map(String::as_str), Some("data: [DONE]\n\n"));

    // The whole body, read by the test client, decodes to the same events
    // the identity stream carries.
    let identity = chat(m.port(), body, &[]);
    let whole = chat(m.port(), body, &sdk[1..]);
    let split = chat(m.port(), body, &[sdk[1], ("x-mock-split", "1")]);
    let deflate = chat(m.port(), body, &[("accept-encoding", "deflate")]);
    let normal = |r: &Response| {
        let text = without_created(&decoded_text(r));
        let id = text
            .split("\"id\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        text.replace(&id, "ID")
    };
    let want = normal(&identity);
    assert_eq!(events(&want).len(), 8, "{want}");
    assert_eq!(events(&want).last(), Some(&"[DONE]"));
    assert!(want.contains("\"usage\""));
    for r in [&whole, &split, &deflate] {
        assert!(r.header("content-encoding").is_some());
        assert_eq!(normal(r), want);
    }
}

#[test]
fn usage_carries_the_detail_fields_of_the_real_api() {
    let m = MockBackend::start("use", 0).unwrap();
    let details = json!({
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}});
    let r = chat(m.port(), SIMPLE, &[]);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let usage = &v["usage"];
    assert_eq!(usage["completion_tokens"], 5);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["prompt_tokens"].as_u64().unwrap() + 5)
    );
    for key in ["prompt_tokens_details", "completion_tokens_details"] {
        assert_eq!(usage[key], details[key], "{key}");
    }
    assert_eq!(v["service_tier"], "default");
    assert!(v["system_fingerprint"].as_str().unwrap().starts_with("fp_"));
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);

    let stream = r#"{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}"#;
    let text = chat(m.port(), stream, &[]).text();
    let all = events(&text);
    let chunk: Value = serde_json::from_str(all[all.len() - 2]).unwrap();
    assert_eq!(chunk["usage"]["completion_tokens"], 5);
    for key in ["prompt_tokens_details", "completion_tokens_details"] {
        assert_eq!(chunk["usage"][key], details[key], "{key}");
    }
    let first: Value = serde_json::from_str(all[0]).unwrap();
    assert_eq!(first["service_tier"], "default");
    assert!(first["created"].as_u64().unwrap() > 1_700_000_000);
}

#[test]
fn cached_tokens_come_from_the_header_or_a_repeated_long_prompt() {
    let m = MockBackend::start("cache", 0).unwrap();
    let usage = |body: &str, headers: &[(&str, &str)]| {
        let r = chat(m.port(), body, headers);
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice::<Value>(&r.body).unwrap()["usage"].clone()
    };
    let cached = |u: &Value| {
        u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
    };
    let short = usage(SIMPLE, &[("x-mock-cached-tokens", "7")]);
    assert_eq!(cached(&short), 7);
    let capped = usage(SIMPLE, &[("x-mock-cached-tokens", "100000")]);
    assert_eq!(cached(&capped), capped["prompt_tokens"].as_u64().unwrap());
    assert_eq!(
        cached(&usage(SIMPLE, &[])),
        0,
        "short prompts are never cached"
    );

    let long = |word: &str| {
        json!({"model": "gpt-4o-mini",
               "messages": [{"role": "user", "content": word.repeat(1200)}]})
        .to_string()
    };
    let first = usage(&long("abcd "), &[]);
    let prompt = first["prompt_tokens"].as_u64().unwrap();
    assert!(prompt >= 1024, "{prompt}");
    assert_eq!(cached(&first), 0, "first sight");
    let again = usage(&long("abcd "), &[]);
    assert_eq!(again["prompt_tokens"].as_u64(), Some(prompt));
    assert_eq!(cached(&again), prompt / 128 * 128);
    assert!(cached(&again) > 0 && cached(&again) % 128 == 0);
    // Other parameters do not matter, other messages do.
    let hotter = json!({"model": "gpt-4o-mini", "temperature": 0.3,
        "messages": [{"role": "user", "content": "abcd ".repeat(1200)}]})
    .to_string();
    let p = usage(&hotter, &[]);
    assert_eq!(cached(&p), p["prompt_tokens"].as_u64().unwrap() / 128 * 128);
    assert_eq!(cached(&usage(&long("wxyz "), &[])), 0);
    assert_eq!(
        cached(&usage(&long("abcd "), &[("x-mock-cached-tokens", "3")])),
        3
    );
}

#[test]
fn reasoning_models_include_reasoning_tokens_in_completion_tokens() {
    let m = MockBackend::start("think", 0).unwrap();
    for model in ["o3-mini", "gpt-5-mini"] {
        let body = json!({"model": model, "messages": []}).to_string();
        let v: Value = serde_json::from_slice(&chat(m.port(), &body, &[]).body).unwrap();
        let u = &v["usage"];
        // "Hello from think running MODEL." is 5 visible pieces.
        assert_eq!(
            u["completion_tokens_details"]["reasoning_tokens"], 20,
            "{model}"
        );
        assert_eq!(u["completion_tokens"], 25, "{model}");
        assert_eq!(
            u["total_tokens"].as_u64(),
            Some(u["prompt_tokens"].as_u64().unwrap() + 25)
        );
        let stream = json!({"model": model, "messages": [], "stream": true,
                            "stream_options": {"include_usage": true}})
        .to_string();
        let text = chat(m.port(), &stream, &[]).text();
        let all = events(&text);
        let chunk: Value = serde_json::from_str(all[all.len() - 2]).unwrap();
        assert_eq!(chunk["usage"]["completion_tokens"], 25, "{model}");
        assert_eq!(
            chunk["usage"]["completion_tokens_details"]["reasoning_tokens"],
            20
        );
    }
}

#[test]
fn gpt5_refuses_max_tokens_with_the_real_error() {
    let m = MockBackend::start("g5", 0).unwrap();
    let want = json!({"error": {
        "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}});
    for body in [
        r#"{"model":"gpt-5","messages":[],"max_tokens":64}"#,
        r#"{"model":"gpt-5","messages":[],"max_tokens":null}"#,
    ] {
        let r = chat(m.port(), body, &[]);
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap(), want);
    }
    let ok = chat(
        m.port(),
        r#"{"model":"gpt-5","messages":[],"max_completion_tokens":64}"#,
        &[],
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    let old = chat(
        m.port(),
        r#"{"model":"gpt-4o-mini","messages":[],"max_tokens":64}"#,
        &[],
    );
    assert_eq!(old.status, 200, "non-reasoning models keep max_tokens");
}

#[test]
fn reasoning_models_refuse_a_temperature_other_than_one() {
    let m = MockBackend::start("temp", 0).unwrap();
    let r = chat(
        m.port(),
        r#"{"model":"o3-mini","messages":[],"temperature":0.70}"#,
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        json!({"error": {
            "message": "Unsupported value: 'temperature' does not support 0.7 with this model. Only the default (1) value is supported.",
            "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}})
    );
    let one = chat(
        m.port(),
        r#"{"model":"o3-mini","messages":[],"temperature":1}"#,
        &[],
    );
    assert_eq!(one.status, 200);
    let other = chat(
        m.port(),
        r#"{"model":"gpt-4.1-mini","messages":[],"temperature":0.7}"#,
        &[],
    );
    assert_eq!(other.status, 200);
}

#[test]
fn stream_options_without_stream_is_refused_for_every_model() {
    let m = MockBackend::start("so", 0).unwrap();
    let want = json!({"error": {
        "message": "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "type": "invalid_request_error", "param": "stream_options", "code": null}});
    for body in [
        r#"{"model":"gpt-4o-mini","messages":[],"stream_options":{"include_usage":true}}"#,
        r#"{"model":"gpt-4o-mini","messages":[],"stream":false,"stream_options":{"include_usage":true}}"#,
    ] {
        let r = chat(m.port(), body, &[]);
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(serde_json::from_slice::<Value>(&r.body).unwrap(), want);
    }
}

#[test]
fn output_caps_below_one_are_refused_for_every_model() {
    let m = MockBackend::start("cap", 0).unwrap();
    let r = chat(
        m.port(),
        r#"{"model":"gpt-5","messages":[],"max_completion_tokens":0}"#,
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        json!({"error": {
            "message": "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead.",
            "type": "invalid_request_error", "param": "max_completion_tokens",
            "code": "integer_below_min_value"}})
    );
    let r = chat(m.port(), r#"{"model":"gpt-4o-mini","max_tokens":-1}"#, &[]);
    assert_eq!(r.status, 400);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["error"]["param"], "max_tokens");
    assert_eq!(v["error"]["code"], "integer_below_min_value");
}

#[test]
fn the_lenient_switch_skips_every_refusal() {
    let m = MockBackend::start("lax", 0).unwrap();
    let lenient = [("x-mock-lenient", "1")];
    for body in [
        r#"{"model":"gpt-5","messages":[],"max_tokens":64,"temperature":0.2}"#,
        r#"{"model":"o1","messages":[],"stream_options":{"include_usage":true}}"#,
        r#"{"model":"gpt-4o-mini","messages":[],"max_tokens":0}"#,
    ] {
        assert_eq!(chat(m.port(), body, &[]).status, 400, "{body}");
        let r = chat(m.port(), body, &lenient);
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["object"], "chat.completion");
    }
}

fn post(port: u16, path: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let r = send(port, "POST", path, &all, body.to_string().as_bytes()).unwrap();
    (
        r.status,
        serde_json::from_slice(&decoded(&r)).unwrap_or(Value::Null),
    )
}

#[test]
fn responses_messages_and_embeddings_answer_and_refuse_like_the_real_apis() {
    let m = MockBackend::start("m", 0).unwrap();
    let p = m.port();
    // Responses: its own usage names; unknown parameters refused.
    let (s, v) = post(
        p,
        "/v1/responses",
        json!({"model": "gpt-4.1", "input": "hi", "max_output_tokens": 100}),
        &[],
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["object"], "response");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let (s, v) = post(
        p,
        "/v1/responses",
        json!({"model": "m", "input": "hi", "max_tokens": 100}),
        &[],
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("unknown_parameter")),
        "{v}"
    );
    assert_eq!(v["error"]["param"], "max_tokens");
    let (s, v) = post(
        p,
        "/v1/responses",
        json!({"model": "m", "input": "hi", "stream": true, "stream_options": {"include_usage": true}}),
        &[],
    );
    assert_eq!(
        (s, v["error"]["param"].as_str()),
        (400, Some("stream_options.include_usage")),
        "{v}"
    );
    let (s, v) = post(
        p,
        "/v1/responses",
        json!({"model": "m", "input": "hi", "max_output_tokens": 8}),
        &[],
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("integer_below_min_value")),
        "{v}"
    );

    // Messages: the version header, required fields, no extra fields.
    let ok = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]});
    let v1 = [("anthropic-version", "2023-06-01")];
    let (s, v) = post(p, "/v1/messages", ok.clone(), &v1);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["type"].as_str(), v["stop_reason"].as_str()),
        (Some("message"), Some("end_turn"))
    );
    let (s, v) = post(
        p,
        "/v1/messages",
        ok.clone(),
        &[
            ("anthropic-version", "2023-06-01"),
            ("x-mock-cached-tokens", "4"),
            ("x-mock-cache-write-tokens", "6"),
        ],
    );
    assert_eq!(s, 200);
    let u = &v["usage"];
    assert_eq!(
        (
            u["cache_read_input_tokens"].as_u64(),
            u["cache_creation_input_tokens"].as_u64()
        ),
        (Some(4), Some(6)),
        "{v}"
    );
    // input_tokens leaves out both (the prompt is body bytes / 4).
    let prompt = (ok.to_string().len() / 4) as u64;
    assert_eq!(u["input_tokens"].as_u64(), Some(prompt - 10), "{v}");
    let (s, v) = post(p, "/v1/messages", ok.clone(), &[]);
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (400, Some("invalid_request_error")),
        "{v}"
    );
    let mut extra = ok.clone();
    extra["stream_options"] = json!({"include_usage": true});
    let (s, v) = post(p, "/v1/messages", extra, &v1);
    assert_eq!(s, 400);
    assert_eq!(
        v["error"]["message"],
        "stream_options: Extra inputs are not permitted"
    );
    let (s, v) = post(
        p,
        "/v1/messages",
        json!({"model": "c", "messages": []}),
        &v1,
    );
    assert_eq!(
        (s, v["error"]["message"].as_str()),
        (400, Some("max_tokens: Field required"))
    );
    let (s, v) = post(
        p,
        "/v1/messages",
        ok,
        &[
            ("anthropic-version", "2023-06-01"),
            ("x-mock-status", "529"),
        ],
    );
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (529, Some("overloaded_error")),
        "{v}"
    );

    // A Messages stream: Anthropic's named events, gzipped when asked.
    let body = json!({"model": "c", "max_tokens": 10, "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]});
    let r = send(
        p,
        "POST",
        "/v1/messages",
        &[
            ("content-type", "application/json"),
            ("anthropic-version", "2023-06-01"),
            ("accept-encoding", "gzip"),
            ("x-mock-reply", "one two three"),
        ],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(
        (r.status, r.header("content-encoding")),
        (200, Some("gzip"))
    );
    let text = String::from_utf8(decoded(&r)).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let datas: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let said: String = datas
        .iter()
        .filter_map(|d| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(said, "one two three");
    assert_eq!(datas[7]["usage"]["output_tokens"], 3);

    // Embeddings: floats or base64 of f32; no output cap accepted.
    let (s, v) = post(
        p,
        "/v1/embeddings",
        json!({"model": "e", "input": ["a", "b"]}),
        &[],
    );
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["data"][1]["embedding"][0], 0.8f32 as f64);
    let (_, v) = post(
        p,
        "/v1/embeddings",
        json!({"model": "e", "input": "a", "encoding_format": "base64"}),
        &[],
    );
    assert_eq!(
        v["data"][0]["embedding"].as_str().map(str::len),
        Some(44),
        "8 f32 in base64"
    );
    let (s, v) = post(
        p,
        "/v1/embeddings",
        json!({"model": "e", "input": "a", "max_tokens": 5}),
        &[],
    );
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("max_tokens")));
}

#[test]
fn tool_calls_come_in_each_apis_own_shape() {
    let m = MockBackend::start("m", 0).unwrap();
    let p = m.port();
    let tool = [
        ("anthropic-version", "2023-06-01"),
        ("x-mock-tool-call", "search_docs"),
    ];
    let messages =
        json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let (_, v) = post(p, "/v1/messages", messages.clone(), &tool);
    assert_eq!(
        (
            v["content"][1]["type"].as_str(),
            v["content"][1]["name"].as_str(),
            v["stop_reason"].as_str()
        ),
        (Some("tool_use"), Some("search_docs"), Some("tool_use")),
        "{v}"
    );
    let (_, v) = post(
        p,
        "/v1/responses",
        json!({"model": "g", "input": "hi"}),
        &tool,
    );
    assert_eq!(
        (
            v["output"][1]["type"].as_str(),
            v["output"][1]["name"].as_str()
        ),
        (Some("function_call"), Some("search_docs")),
        "{v}"
    );
    let stream = |path: &str, body: Value| {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(&tool);
        let r = send(p, "POST", path, &all, body.to_string().as_bytes()).unwrap();
        let text = String::from_utf8(decoded(&r)).unwrap();
        let datas: Vec<Value> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        datas
    };
    let mut streamed = messages;
    streamed["stream"] = json!(true);
    let datas = stream("/v1/messages", streamed);
    let kinds: Vec<&str> = datas.iter().filter_map(|d| d["type"].as_str()).collect();
    let at = kinds
        .iter()
        .position(|k| *k == "content_block_stop")
        .unwrap();
    assert_eq!(
        kinds[at + 1..],
        [
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(datas[at + 1]["content_block"]["name"], "search_docs");
    assert_eq!(datas[at + 4]["delta"]["stop_reason"], "tool_use");
    let datas = stream(
        "/v1/responses",
        json!({"model": "g", "input": "hi", "stream": true}),
    );
    let kinds: Vec<&str> = datas.iter().filter_map(|d| d["type"].as_str()).collect();
    let n = kinds.len();
    assert_eq!(
        kinds[n - 5..],
        [
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    assert_eq!(datas[n - 5]["item"]["name"], "search_docs");
    assert_eq!(
        datas[n - 1]["response"]["output"][1]["type"],
        "function_call"
    );
    let numbers: Vec<u64> = datas
        .iter()
        .filter_map(|d| d["sequence_number"].as_u64())
        .collect();
    assert_eq!(numbers, (0..n as u64).collect::<Vec<_>>());
}
