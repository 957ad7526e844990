//! End-to-end: sticky assignment and model routing through a real Envoy
//! with two mock model backends.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use llm_ab::config::load;
use serde_json::Value;
use std::collections::HashMap;
use support::{send, validate, Envoy, MockBackend, Response};

/// The configuration of the issue, verbatim in its routing parts.
const CONFIG: &str = r#"{
  "route_header": "x-llm-cluster",
  "default_cluster": "model_a",
  "expose_headers": true,
  "max_body_bytes": 65536,
  "override": {"variant_header": "x-llm-variant-override", "token_header": "x-llm-override-token", "token": "change-me"},
  "experiments": [{
    "id": "chat-q4", "enabled": true, "salt": "chat-q4",
    "match": {"path_prefix": "/v1/chat/completions", "headers": {"x-tenant": "acme"}},
    "sticky_keys": ["x-user-id", "x-org-id", "x-session-id"],
    "control": "control",
    "variants": [
      {"name": "control",   "weight": 90, "cluster": "model_a", "model": "gpt-4o-mini",  "prompt_version": "p12", "rag_index_version": "r7"},
      {"name": "candidate", "weight": 10, "cluster": "model_b", "model": "gpt-4.1-mini", "prompt_version": "p13"}
    ]
  }]
}"#;

const BODY: &str = "{\"model\": \"whatever-the-app-sent\",\n \"messages\": [{\"role\": \"user\", \"content\": \"caf\\u00e9 \\\"hi\\\" \u{1F600}\"}],\n \"temperature\": 0.70}";

struct Rig {
    a: MockBackend,
    b: MockBackend,
    envoy: Envoy,
}

fn rig(config: &str) -> Rig {
    let a = MockBackend::start("model_a", 0).expect("mock a");
    let b = MockBackend::start("model_b", 0).expect("mock b");
    let envoy = Envoy::start(config, &[("model_a", a.port()), ("model_b", b.port())]);
    Rig { a, b, envoy }
}

/// The variant the pure core assigns to `user` under `config`.
fn expected_variant(config: &str, user: &str) -> String {
    support::expected_variant(config, &[("x-tenant", "acme"), ("x-user-id", user)])
}

fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

#[test]
fn users_are_routed_stickily_to_their_variant_backend_with_the_model_rewritten() {
    let rig = rig(CONFIG);
    let users = 300;
    let mut served: HashMap<String, usize> = HashMap::new();
    for i in 0..users {
        let user = format!("user-{i}@example.com");
        let r = rig
            .envoy
            .chat(&[("x-tenant", "acme"), ("x-user-id", &user)], BODY);
        assert_eq!(r.status, 200, "{}", r.text());
        let variant = r
            .header("x-llm-variant")
            .expect("x-llm-variant")
            .to_string();
        assert_eq!(r.header("x-llm-experiment"), Some("chat-q4"));
        assert_eq!(variant, expected_variant(CONFIG, &user), "user {user}");
        let backend = r.header("x-mock-backend").expect("backend header");
        let want_backend = if variant == "control" {
            "model_a"
        } else {
            "model_b"
        };
        assert_eq!(backend, want_backend);
        let model = json(&r)["model"].as_str().unwrap_or("").to_string();
        let want_model = if variant == "control" {
            "gpt-4o-mini"
        } else {
            "gpt-4.1-mini"
        };
        assert_eq!(model, want_model, "the backend saw the rewritten model");
        *served.entry(variant).or_default() += 1;
    }
    let candidate = served.get("candidate").copied().unwrap_or(0);
    assert!(
        (15..=50).contains(&candidate),
        "10 % of {users} users expected on the candidate, got {candidate}"
    );
    assert_eq!(rig.a.request_count() + rig.b.request_count(), users);

    // Sticky: the same users get the same variant again.
    for i in 0..20 {
        let user = format!("user-{i}@example.com");
        let r = rig
            .envoy
            .chat(&[("x-tenant", "acme"), ("x-user-id", &user)], BODY);
        assert_eq!(
            r.header("x-llm-variant").map(str::to_string),
            Some(expected_variant(CONFIG, &user))
        );
    }

    // What the backends saw: the body byte-for-byte except `model`, a correct
    // content-length, and the experiment headers of the variant.
    for (backend, model, prompt, rag) in [
        (&rig.a, "gpt-4o-mini", "p12", Some("r7")),
        (&rig.b, "gpt-4.1-mini", "p13", None),
    ] {
        let seen = backend.requests();
        assert!(!seen.is_empty());
        for req in seen {
            let want = BODY.replace("whatever-the-app-sent", model);
            assert_eq!(String::from_utf8_lossy(&req.body), want);
            assert_eq!(
                req.header("content-length"),
                Some(want.len().to_string().as_str())
            );
            assert_eq!(req.header("x-llm-experiment"), Some("chat-q4"));
            assert_eq!(req.header("x-llm-prompt-version"), Some(prompt));
            assert_eq!(req.header("x-llm-rag-index-version"), rag);
        }
    }

    let prom = rig.envoy.prometheus();
    let hashed = |v: &str| {
        rig.envoy.metric(&format!(
            "llm_ab_requests{{experiment=\"chat-q4\",variant=\"{v}\",reason=\"hashed\"}}"
        ))
    };
    assert_eq!(
        hashed("control") + hashed("candidate"),
        users as u64 + 20,
        "{prom}"
    );
    let repeated_candidates = (0..20)
        .filter(|i| expected_variant(CONFIG, &format!("user-{i}@example.com")) == "candidate")
        .count();
    assert_eq!(
        hashed("candidate"),
        (candidate + repeated_candidates) as u64
    );
}

#[test]
fn clients_cannot_pick_the_cluster_or_the_variant() {
    let rig = rig(CONFIG);
    // Find a control user.
    let user = (0..)
        .map(|i| format!("u{i}"))
        .find(|u| expected_variant(CONFIG, u) == "control")
        .expect("a control user");
    let r = rig.envoy.chat(
        &[
            ("x-tenant", "acme"),
            ("x-user-id", &user),
            ("x-llm-cluster", "model_b"),
            ("x-llm-variant", "candidate"),
            ("x-llm-experiment", "other"),
            ("x-llm-prompt-version", "p99"),
        ],
        BODY,
    );
    assert_eq!(r.header("x-mock-backend"), Some("model_a"));
    assert_eq!(r.header("x-llm-variant"), Some("control"));
    let seen = rig.a.requests();
    let req = seen.last().expect("request reached model_a");
    let all = |name: &str| {
        req.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(all("x-llm-variant"), vec!["control"]);
    assert_eq!(all("x-llm-experiment"), vec!["chat-q4"]);
    assert_eq!(all("x-llm-prompt-version"), vec!["p12"]);
    assert!(rig.b.requests().is_empty(), "model_b was never reached");

    // Unmatched requests go to the default cluster whatever the client says.
    let r = send(
        rig.envoy.port,
        "POST",
        "/v1/embeddings",
        &[
            ("content-type", "application/json"),
            ("x-llm-cluster", "model_b"),
        ],
        b"{\"input\":\"x\"}",
    )
    .expect("request");
    assert_eq!(r.header("x-mock-backend"), Some("model_a"));
    assert_eq!(r.header("x-llm-variant"), None);
    assert!(rig.b.requests().is_empty());
    assert_eq!(rig.envoy.metric("llm_ab_default_route_requests{}"), 1);
}

#[test]
fn override_is_honored_only_with_the_token_and_never_forwarded() {
    let rig = rig(CONFIG);
    let user = (0..)
        .map(|i| format!("u{i}"))
        .find(|u| expected_variant(CONFIG, u) == "control")
        .expect("a control user");
    let forced = rig.envoy.chat(
        &[
            ("x-tenant", "acme"),
            ("x-user-id", &user),
            ("x-llm-variant-override", "candidate"),
            ("x-llm-override-token", "change-me"),
        ],
        BODY,
    );
    assert_eq!(forced.header("x-llm-variant"), Some("candidate"));
    assert_eq!(forced.header("x-mock-backend"), Some("model_b"));

    let wrong = rig.envoy.chat(
        &[
            ("x-tenant", "acme"),
            ("x-user-id", &user),
            ("x-llm-variant-override", "candidate"),
            ("x-llm-override-token", "change-mf"),
        ],
        BODY,
    );
    assert_eq!(wrong.header("x-llm-variant"), Some("control"));
    assert_eq!(wrong.header("x-mock-backend"), Some("model_a"));

    for req in rig.a.requests().iter().chain(rig.b.requests().iter()) {
        assert_eq!(req.header("x-llm-variant-override"), None);
        assert_eq!(req.header("x-llm-override-token"), None);
    }
    assert_eq!(
        rig.envoy.metric(
            "llm_ab_requests{experiment=\"chat-q4\",variant=\"candidate\",reason=\"forced\"}"
        ),
        1
    );
}

#[test]
fn kill_switch_and_missing_key_send_everyone_to_control() {
    let killed = CONFIG.replace("\"enabled\": true", "\"enabled\": false");
    let rig = rig(&killed);
    for i in 0..40 {
        let user = format!("user-{i}");
        let r = rig
            .envoy
            .chat(&[("x-tenant", "acme"), ("x-user-id", &user)], BODY);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-llm-variant"), Some("control"));
        assert_eq!(r.header("x-mock-backend"), Some("model_a"));
    }
    assert!(rig.b.requests().is_empty());
    assert_eq!(
        rig.envoy.metric(
            "llm_ab_requests{experiment=\"chat-q4\",variant=\"control\",reason=\"killed\"}"
        ),
        40
    );

    let rig = self::rig(CONFIG);
    let r = rig.envoy.chat(&[("x-tenant", "acme")], BODY);
    assert_eq!(r.header("x-llm-variant"), Some("control"));
    assert_eq!(r.header("x-mock-backend"), Some("model_a"));
    // The org id is used when the user id is absent.
    let r = rig
        .envoy
        .chat(&[("x-tenant", "acme"), ("x-org-id", "org-1")], BODY);
    assert!(r.header("x-llm-variant").is_some());
    assert_eq!(
        rig.envoy.metric(
            "llm_ab_requests{experiment=\"chat-q4\",variant=\"control\",reason=\"no_key\"}"
        ),
        1
    );
}

fn assert_openai_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = json(r);
    assert_eq!(v["error"]["code"], code, "{}", r.text());
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[test]
fn bad_bodies_get_openai_errors_and_are_never_forwarded() {
    let rig = rig(CONFIG);
    let h = [("x-tenant", "acme"), ("x-user-id", "u1")];
    for body in [
        "{\"model\": \"m\", \"messages\": [secret prompt text",
        "not json at all",
        "[1, 2, 3]",
        "{\"model\": \"a\", \"model\": \"b\"}",
    ] {
        let r = rig.envoy.chat(&h, body);
        assert_openai_error(&r, 400, "invalid_json");
        assert!(!r.text().contains("secret"), "error echoes no content");
        assert_eq!(r.header("x-llm-experiment"), Some("chat-q4"));
    }
    let r = rig.envoy.chat(&h, "");
    assert_openai_error(&r, 400, "invalid_json");

    // Over max_body_bytes (64 KiB here), declared with content-length ...
    let big = format!("{{\"model\":\"m\",\"pad\":\"{}\"}}", "x".repeat(70_000));
    let r = rig.envoy.chat(&h, &big);
    assert_openai_error(&r, 413, "request_too_large");
    // ... and streamed in chunks with no content-length.
    let mut chunked = Vec::new();
    for piece in big.as_bytes().chunks(8192) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = send(
        rig.envoy.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/json"),
            ("transfer-encoding", "chunked"),
            ("x-tenant", "acme"),
            ("x-user-id", "u1"),
        ],
        &chunked,
    )
    .expect("chunked request");
    assert_openai_error(&r, 413, "request_too_large");

    assert_eq!(
        rig.a.request_count() + rig.b.request_count(),
        0,
        "nothing forwarded"
    );

    // Just under the limit, in many chunks: rewritten and forwarded whole.
    let fits = format!("{{\"model\":\"m\",\"pad\":\"{}\"}}", "y".repeat(60_000));
    let r = rig.envoy.chat(&h, &fits);
    assert_eq!(r.status, 200);
    let seen = rig
        .a
        .requests()
        .into_iter()
        .chain(rig.b.requests())
        .next()
        .expect("forwarded");
    let v: Value = serde_json::from_slice(&seen.body).expect("forwarded JSON");
    assert_eq!(v["pad"].as_str().map(str::len), Some(60_000));
    assert_eq!(
        seen.body.len(),
        fits.len() - 1 + v["model"].as_str().map_or(0, str::len)
    );
    assert!(
        rig.envoy.metric(
            "llm_ab_rejected{experiment=\"chat-q4\",variant=\"control\",code=\"invalid_json\"}"
        ) + rig.envoy.metric(
            "llm_ab_rejected{experiment=\"chat-q4\",variant=\"candidate\",code=\"invalid_json\"}"
        ) == 5
    );
}

#[test]
fn matched_bodies_are_read_as_json_whatever_their_content_type() {
    let rig = rig(CONFIG);
    // A form body at a matched path: refused, never forwarded (it used to
    // slip past the experiment, redaction and guardrails by its label).
    let body = b"model=gpt&text=not-json";
    let r = send(
        rig.envoy.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-tenant", "acme"),
            ("x-user-id", "u1"),
        ],
        body,
    )
    .expect("request");
    assert_eq!(r.status, 400);
    assert_eq!(json(&r)["error"]["code"], "invalid_json");
    assert_eq!(rig.a.request_count() + rig.b.request_count(), 0);

    // JSON labelled text/plain, or not labelled at all: the experiment applies.
    let user = (0..500)
        .map(|i| format!("label-user-{i}"))
        .find(|u| expected_variant(CONFIG, u) == "candidate")
        .expect("a candidate user");
    for ct in [Some("text/plain"), None] {
        let mut headers = vec![("x-tenant", "acme"), ("x-user-id", user.as_str())];
        if let Some(ct) = ct {
            headers.push(("content-type", ct));
        }
        let r = send(
            rig.envoy.port,
            "POST",
            "/v1/chat/completions",
            &headers,
            br#"{"model":"client-model","messages":[]}"#,
        )
        .expect("request");
        assert_eq!(r.status, 200, "{ct:?}");
        assert_eq!(r.header("x-mock-backend"), Some("model_b"), "{ct:?}");
        assert_eq!(json(&r)["model"], "gpt-4.1-mini", "{ct:?}: model rewritten");
    }

    // A GET at the matched path carries no body: it goes on untouched.
    let r = send(
        rig.envoy.port,
        "GET",
        "/v1/chat/completions?limit=1",
        &[("x-tenant", "acme"), ("x-user-id", "u1")],
        b"",
    )
    .expect("request");
    assert_eq!(r.header("x-llm-variant"), None);
    assert_eq!(r.header("x-mock-backend"), Some("model_a"));

    // Another tenant: not matched, so invalid JSON is not the filter's business.
    let r = rig.envoy.chat(
        &[("x-tenant", "other"), ("x-user-id", "u1")],
        "{\"model\":\"keep\"}",
    );
    assert_eq!(r.header("x-llm-variant"), None);
    assert_eq!(json(&r)["model"], "keep");
}

#[test]
fn invalid_configuration_is_refused_at_load_with_one_line_naming_the_field() {
    let cases = [
        (
            CONFIG.replace("\"weight\": 10,", "\"weight\": 5,"),
            "experiments[0].variants: weights sum to 95",
        ),
        (
            CONFIG.replace("\"control\": \"control\"", "\"control\": \"ctl\""),
            "experiments[0].control: \"ctl\" is not the name of a variant",
        ),
        (
            CONFIG.replace("\"cluster\": \"model_b\"", "\"cluster\": \"\""),
            "experiments[0].variants[1].cluster: must not be empty",
        ),
        (
            CONFIG.replace("\"salt\"", "\"sallt\""),
            "experiments[0].sallt: unknown field",
        ),
        (
            CONFIG.replace("\"weight\": 90", "\"weight\": \"90\""),
            "experiments[0].variants[0].weight: invalid type",
        ),
    ];
    for (config, expected) in cases {
        let refused = match Envoy::try_start(&config, &[("model_a", 1), ("model_b", 1)]) {
            Ok(_) => panic!("Envoy started with a bad configuration ({expected})"),
            Err(r) => r,
        };
        assert_ne!(refused.code, Some(0));
        let lines: Vec<&str> = refused
            .log
            .lines()
            .filter(|l| l.contains("configuration rejected"))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "one log line per rejection:\n{}",
            refused.log
        );
        assert!(lines[0].contains(expected), "{} lacks {expected}", lines[0]);
    }
}

#[test]
fn shipped_envoy_yaml_validates_and_carries_a_valid_filter_config() {
    let (ok, out) = validate(&support::repo().join("envoy/envoy.yaml"));
    assert!(ok, "{out}");
    let shipped = support::shipped_filter_config();
    assert!(
        load(shipped.as_bytes()).is_ok(),
        "shipped filter config loads"
    );
}

#[test]
fn streaming_responses_pass_through_with_the_variant_headers() {
    let rig = rig(CONFIG);
    let r = rig.envoy.chat(
        &[("x-tenant", "acme"), ("x-user-id", "streamer")],
        r#"{"model":"x","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let variant = expected_variant(CONFIG, "streamer");
    assert_eq!(r.header("x-llm-variant"), Some(variant.as_str()));
    let text = r.text();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let model = if variant == "control" {
        "gpt-4o-mini"
    } else {
        "gpt-4.1-mini"
    };
    assert!(
        text.contains(&format!("\"content\":\" {model}.\"")),
        "{text}"
    );
}

#[test]
fn routing_only_mode_routes_without_telemetry() {
    let config = CONFIG.replacen('{', r#"{"telemetry": false,"#, 1);
    let rig = rig(&config);
    let user = (0..)
        .map(|i| format!("u{i}"))
        .find(|u| expected_variant(CONFIG, u) == "candidate")
        .unwrap();
    let r = rig
        .envoy
        .chat(&[("x-tenant", "acme"), ("x-user-id", &user)], BODY);
    assert_eq!(r.header("x-mock-backend"), Some("model_b"));
    assert_eq!(r.header("x-llm-variant"), Some("candidate"));
    let seen = rig.b.requests();
    // The filter adds no trace header: what the upstream gets is Envoy's
    // tracer's (the shipped envoy.yaml traces), not one from the request id.
    if let Some(tp) = seen[0].header("traceparent") {
        let rid = seen[0].header("x-request-id").unwrap().replace('-', "");
        assert_ne!(tp.split('-').nth(1), Some(rid.as_str()), "{tp}");
    }
    assert_eq!(seen[0].header("x-llm-trace-id"), None);
    let v: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(v["model"], "gpt-4.1-mini");
    let log = rig.envoy.access_log_lines(1);
    assert_eq!(log, vec!["-"], "no record");
    assert_eq!(
        rig.envoy.metric(
            "llm_ab_requests{experiment=\"chat-q4\",variant=\"candidate\",reason=\"hashed\"}"
        ),
        1
    );
}

/// A header value that is not UTF-8 (HTTP allows such bytes) is read
/// lossily: the request is routed by that key, and the filter's VM lives
/// on (the SDK's own header reading would have panicked it).
#[test]
fn a_header_value_that_is_not_utf8_is_routed_and_the_vm_lives_on() {
    use std::io::{Read, Write};
    let r = rig(CONFIG);
    let body = BODY.as_bytes();
    let mut request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n\
         x-tenant: acme\r\ncontent-length: {}\r\nconnection: close\r\nx-user-id: caf",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(b"\xff\xfe\r\n\r\n");
    request.extend_from_slice(body);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", r.envoy.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(&request).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let head = String::from_utf8_lossy(&answer).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let variant = expected_variant(CONFIG, "caf\u{fffd}\u{fffd}");
    assert!(
        head.contains(&format!("x-llm-variant: {variant}\r\n")),
        "routed by the key read lossily ({variant}): {head}"
    );
    // The VM still routes the next request.
    let next = r
        .envoy
        .chat(&[("x-tenant", "acme"), ("x-user-id", "u-1")], BODY);
    assert_eq!(next.status, 200);
    assert_eq!(
        next.header("x-llm-variant"),
        Some(expected_variant(CONFIG, "u-1").as_str())
    );
    assert!(!r.envoy.log().contains("panicked"), "{}", r.envoy.log());
}
