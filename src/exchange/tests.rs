//! Lifecycle tests over the fake host: what only the end-to-end suite
//! could check before, natively, plus the hostcall budget of a request.

use super::fake::{Call, FakeHost};
use super::{Exchange, Flow};
use crate::config::load;
use crate::metrics::Metrics;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::rc::Rc;

/// Request headers for the pure routing core.
struct Pairs<'a>(Vec<(&'a str, &'a str)>);

impl crate::route::RequestHeaders for Pairs<'_> {
    fn header(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

/// A plan, its metrics, and the metric ids by name.
struct Setup {
    loaded: super::Loaded,
    ids: HashMap<String, u32>,
    host: FakeHost,
}

fn setup(config: &Value) -> Setup {
    let plan = load(config.to_string().as_bytes()).unwrap_or_else(|e| panic!("config: {e}"));
    let mut ids = HashMap::new();
    let mut next = 0u32;
    let metrics = Metrics::define(&plan, &mut |_, name: &str| {
        next += 1;
        ids.insert(name.to_string(), next);
        Some(next)
    });
    Setup {
        loaded: Some((Rc::new(plan), Rc::new(metrics))),
        ids,
        host: FakeHost::at(1_767_225_600),
    }
}

impl Setup {
    fn counter(&self, name: &str) -> u64 {
        self.ids.get(name).map_or(0, |id| self.host.counter(*id))
    }

    /// The value gauge `name` was last set to.
    fn gauge(&self, name: &str) -> Option<u64> {
        let id = *self.ids.get(name)?;
        self.host.calls().iter().rev().find_map(|c| match c {
            Call::Record(i, v) if *i == id => Some(*v),
            _ => None,
        })
    }

    /// A user the plan assigns to `variant`.
    fn user_of(&self, variant: &str) -> String {
        let plan = &self.loaded.as_ref().unwrap().0;
        (0..1000)
            .map(|i| format!("user-{i}"))
            .find(|u| {
                let h = Pairs(vec![("x-user-id", u.as_str())]);
                plan.decide("/v1/chat/completions", &h)
                    .assignment
                    .is_some_and(|a| a.variant.name == variant)
            })
            .unwrap()
    }

    fn exchange(&self, user: &str, extra: &[(&str, &str)]) -> Exchange<FakeHost> {
        let host = self.host.clone();
        let mut headers = vec![
            (":method".to_string(), "POST".to_string()),
            (":path".to_string(), "/v1/chat/completions".to_string()),
            ("content-type".to_string(), "application/json".to_string()),
            ("x-user-id".to_string(), user.to_string()),
            (
                "x-request-id".to_string(),
                "5b1e2e07-6c1c-4a4e-9a1c-2c8b9f0d3e11".to_string(),
            ),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        host.wire.borrow_mut().request_headers = headers;
        Exchange::new(host, self.loaded.clone(), 1)
    }
}

const CHAT: &str = r#"{"model":"app","messages":[{"role":"user","content":"hello there"}]}"#;

fn answer(content: &str) -> String {
    json!({"id": "c1", "object": "chat.completion", "model": "m",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 12, "completion_tokens": 3}})
    .to_string()
}

/// Sends the request body and the upstream's answer through `ex`.
fn run(ex: &mut Exchange<FakeHost>, body: &str, status: u32, content_type: &str, response: &str) {
    assert_eq!(
        ex.on_request_headers(false),
        Flow::Pause,
        "a matched request is held"
    );
    ex.host().wire.borrow_mut().request_body = body.as_bytes().to_vec();
    if ex.on_request_body(body.len(), true) == Flow::Pause {
        return; // refused
    }
    respond(ex, status, content_type, response);
}

fn respond(ex: &mut Exchange<FakeHost>, status: u32, content_type: &str, response: &str) {
    {
        let mut wire = ex.host().wire.borrow_mut();
        wire.response_headers = vec![
            (":status".into(), status.to_string()),
            ("content-type".into(), content_type.into()),
        ];
        wire.response_body = response.as_bytes().to_vec();
    }
    if ex.on_response_headers(false) == Flow::Pause && ex.phase == super::Phase::Fallback {
        return;
    }
    ex.on_response_body(response.len(), true);
    ex.on_log();
}

fn base() -> Value {
    json!({
        "default_cluster": "a",
        "experiments": [{
            "id": "e", "sticky_keys": ["x-user-id"], "control": "control",
            "match": {"path_prefix": "/v1/chat/completions"},
            "variants": [
                {"name": "control", "weight": 50, "cluster": "a", "model": "m-a"},
                {"name": "cand", "weight": 50, "cluster": "b", "model": "m-b"}
            ]
        }]
    })
}

fn records(host: &FakeHost) -> Vec<Value> {
    host.calls()
        .iter()
        .filter_map(|c| match c {
            Call::SetFilterState(k, v) if k == super::RECORD_PROPERTY => {
                serde_json::from_slice(v).ok()
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_request_is_routed_rewritten_and_recorded() {
    let s = setup(&base());
    let user = s.user_of("cand");
    let mut ex = s.exchange(&user, &[("x-llm-cluster", "evil")]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    let wire = s.host.wire.borrow();
    let header = |n: &str| {
        wire.request_headers
            .iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        header("x-llm-cluster"),
        vec!["b"],
        "the client's cluster is overwritten"
    );
    assert_eq!(header("x-llm-variant"), vec!["cand"]);
    assert_eq!(header("x-user-id"), vec![user.as_str()]);
    let body: Value = serde_json::from_slice(&wire.request_body).unwrap();
    assert_eq!(body["model"], "m-b");
    let r = s.host.record().unwrap();
    assert_eq!(r["served_variant"], "cand");
    assert_eq!(r["outcome"], "success");
    assert_eq!(r["tokens_in"], 12);
    assert_eq!(r["trace_id"], "5b1e2e076c1c4a4e9a1c2c8b9f0d3e11");
    // Each changed header is written once, after the body was checked
    // (a refused request writes none).
    let calls = s.host.calls();
    let body_read = calls.iter().position(|c| *c == Call::RequestBody).unwrap();
    let writes: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, Call::SetRequestHeader(..)))
        .map(|(i, _)| i)
        .collect();
    assert!(writes.iter().all(|i| *i > body_read), "{calls:?}");
    let cluster_writes = calls
        .iter()
        .filter(|c| matches!(c, Call::SetRequestHeader(n, _) if n == "x-llm-cluster"))
        .count();
    assert_eq!(cluster_writes, 1);
}

#[test]
fn a_refused_request_writes_no_request_header() {
    let mut cfg = base();
    cfg["max_body_bytes"] = json!(16);
    let s = setup(&cfg);
    let mut ex = s.exchange(&s.user_of("control"), &[]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    assert_eq!(s.host.reply().map(|r| r.0), Some(413));
    assert!(!s
        .host
        .calls()
        .iter()
        .any(|c| matches!(c, Call::SetRequestHeader(..))));
}

#[test]
fn a_quota_refusal_releases_the_reservations_made_before_it() {
    let mut cfg = base();
    // The first quota holds one request's reservation (prompt + cap of 100)
    // and a half; the second refuses everyone who carries its header.
    cfg["budgets"] = json!({"max_output_tokens": 100, "quotas": [
        {"key": "x-org-id", "tokens_per_minute": 150},
        {"key": "x-tenant", "tokens_per_minute": 1}]});
    let s = setup(&cfg);
    let user = s.user_of("control");
    let mut ex = s.exchange(&user, &[("x-org-id", "acme"), ("x-tenant", "t")]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    let (status, headers, _) = s.host.reply().unwrap();
    assert_eq!(status, 429);
    assert!(headers.iter().any(|(k, _)| k == "retry-after"));
    // Had the org's reservation stayed, this one would not fit.
    let mut ex = s.exchange(&user, &[("x-org-id", "acme")]);
    s.host.clear_calls();
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    assert!(
        s.host.reply().is_none(),
        "granted: the refused request gave its tokens back"
    );
    assert_eq!(s.host.record().unwrap()["outcome"], "success");
}

fn breaker_config() -> Value {
    let mut cfg = base();
    cfg["experiments"][0]["circuit_breaker"] = json!({"consecutive_failures": 2,
        "failure_rate": 1.0, "window_s": 30, "min_requests": 100, "open_s": 30});
    cfg
}

#[test]
fn the_breaker_opens_sends_users_to_control_and_closes_after_three_good_probes() {
    let s = setup(&breaker_config());
    let user = s.user_of("cand");
    let fail = |s: &Setup| {
        let mut ex = s.exchange(&user, &[]);
        run(&mut ex, CHAT, 503, "application/json", r#"{"error":{}}"#);
    };
    fail(&s);
    fail(&s);
    let mut ex = s.exchange(&user, &[]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    let r = s.host.record().unwrap();
    assert_eq!(
        (r["served_variant"].as_str(), r["reason"].as_str()),
        (Some("control"), Some("circuit_open"))
    );

    s.host.advance_ms(31_000);
    for i in 0..3 {
        let mut ex = s.exchange(&user, &[]);
        run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
        let r = s.host.record().unwrap();
        assert_eq!(
            r["served_variant"], "cand",
            "probe {i} goes to the treatment"
        );
    }
    let key = crate::slo::breaker_key(s.loaded.as_ref().unwrap().0.config_hash, "e", "cand");
    assert_eq!(
        s.host.shared(&key).as_deref(),
        Some(&b"c:0"[..]),
        "closed again"
    );
}

#[test]
fn an_slo_breach_pauses_the_experiment() {
    let mut cfg = base();
    cfg["experiments"][0]["slo"] =
        json!({"window_s": 60, "min_requests": 3, "max_error_rate": 0.5});
    let s = setup(&cfg);
    let user = s.user_of("cand");
    for _ in 0..3 {
        let mut ex = s.exchange(&user, &[]);
        run(&mut ex, CHAT, 500, "application/json", r#"{"error":{}}"#);
    }
    let mut ex = s.exchange(&user, &[]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    let r = s.host.record().unwrap();
    assert_eq!(
        (r["served_variant"].as_str(), r["reason"].as_str()),
        (Some("control"), Some("paused"))
    );
    assert_eq!(
        s.counter("llm_ab.experiment.e.variant.control.reason.paused.requests"),
        1
    );
    // The weight gauges say so from the breach on.
    let weight = |v: &str, role: &str| {
        s.gauge(&format!(
            "llm_ab.experiment.e.variant.{v}.role.{role}.variant_weight_bp"
        ))
    };
    assert_eq!(
        (weight("control", "control"), weight("cand", "treatment")),
        (Some(10_000), Some(0))
    );
}

fn fallback_config() -> Value {
    let mut cfg = base();
    cfg["experiments"][0]["fallback"] = json!({"on": ["5xx", "schema_fail"], "max_attempts": 1});
    cfg
}

/// Control's fallback answer, a stream: checked and redacted as the
/// treatment's stream would have been, never sent as it came.
#[test]
fn a_streamed_fallback_answer_is_redacted_and_checked() {
    let mut cfg = fallback_config();
    cfg["experiments"][0]["match"] = json!({"path_prefix": "/v1/"});
    cfg["redaction"] = json!({"request": true, "response": true});
    cfg["guardrails"] = json!({"moderation": {"response_patterns": ["(?i)evil plan"]}});
    let answer_with = |s: &Setup, user: &str, path: &str, request: &str, stream: &str| {
        let mut ex = exchange_on(s, user, path);
        run(&mut ex, request, 503, "application/json", r#"{"error":{}}"#);
        {
            let mut wire = s.host.wire.borrow_mut();
            wire.call_headers = vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "text/event-stream".into()),
            ];
            wire.call_body = stream.as_bytes().to_vec();
        }
        ex.on_call_response(stream.len());
        ex.on_log();
        let (status, _, body) = s.host.reply().expect("control's answer");
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    };
    // Chat: the e-mail in control's chunks is redacted.
    let s = setup(&cfg);
    let user = s.user_of("cand");
    let chunk = |t: &str| {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {"content": t}}]})
        )
    };
    let chat = [
        chunk("write to jane.do"),
        chunk("e@example.com now"),
        "data: [DONE]\n\n".to_string(),
    ]
    .concat();
    let request = r#"{"model":"app","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let sent = answer_with(&s, &user, "/v1/chat/completions", request, &chat);
    assert!(
        !sent.contains("jane.do") && sent.contains("[REDACTED:email]"),
        "{sent}"
    );
    assert_eq!(records(&s.host)[0]["outcome"], "fallback");
    // Messages: control's blocked text ends as Anthropic's refusal.
    let s = setup(&cfg);
    let messages = [
        sse(
            "message_start",
            json!({"message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ),
        sse(
            "content_block_start",
            json!({"index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse(
            "content_block_delta",
            json!({"index": 0, "delta": {"type": "text_delta", "text": "an evil plan"}}),
        ),
        sse("content_block_stop", json!({"index": 0})),
        sse("message_stop", json!({})),
    ]
    .concat();
    let request = r#"{"model":"app","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let sent = answer_with(&s, &user, "/v1/messages", request, &messages);
    assert!(!sent.contains("evil"), "{sent}");
    assert!(sent.contains("\"stop_reason\":\"refusal\""), "{sent}");
    let r = &records(&s.host)[0];
    assert_eq!(
        (r["outcome"].as_str(), r["error_code"].as_str()),
        (Some("blocked"), Some("output_blocked")),
        "{r}"
    );
}

/// A stream whose last event the upstream left unterminated: that event is
/// redacted and checked like the others, never passed on as it came.
#[test]
fn an_unterminated_last_event_is_redacted_too() {
    let mut cfg = base();
    cfg["experiments"][0]["match"] = json!({"path_prefix": "/v1/"});
    cfg["redaction"] = json!({"request": true, "response": true});
    let s = setup(&cfg);
    let user = s.user_of("cand");
    let chat = format!(
        "data: {}\n\ndata: {}",
        json!({"choices": [{"index": 0, "delta": {"content": "hi "}}]}),
        json!({"choices": [{"index": 0, "delta": {"content": "mail jane.doe@example.com"}}]})
    );
    let request = r#"{"model":"app","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut ex = exchange_on(&s, &user, "/v1/chat/completions");
    run(&mut ex, request, 200, "text/event-stream", &chat);
    let sent = sent_body(&s.host);
    assert!(
        !sent.contains("jane.doe") && sent.contains("[REDACTED:email]"),
        "{sent}"
    );
    let s = setup(&cfg);
    let messages = format!(
        "{}event: content_block_delta\ndata: {}",
        sse(
            "content_block_start",
            json!({"index": 0, "content_block": {"type": "text", "text": ""}})
        ),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "mail jane.doe@example.com"}})
    );
    let request = r#"{"model":"app","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut ex = exchange_on(&s, &user, "/v1/messages");
    run(&mut ex, request, 200, "text/event-stream", &messages);
    let sent = sent_body(&s.host);
    assert!(
        !sent.contains("jane.doe") && sent.contains("[REDACTED:email]"),
        "{sent}"
    );
}

/// The forwarded request header `name`, after the exchange wrote its changes.
fn forwarded(ex: &Exchange<FakeHost>, name: &str) -> Option<String> {
    ex.host()
        .wire
        .borrow()
        .request_headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

#[test]
fn a_variant_whose_cluster_injects_credentials_never_gets_the_clients() {
    let mut cfg = fallback_config();
    cfg["experiments"][0]["variants"][0]["credentials"] = json!("injected");
    cfg["experiments"][0]["variants"][1]["credentials"] = json!("injected");
    let s = setup(&cfg);
    let client = [
        ("authorization", "Bearer sk-client"),
        ("x-api-key", "sk-ant-client"),
        ("api-key", "azure-client"),
        ("openai-organization", "org-client"),
        ("openai-project", "proj-client"),
        ("anthropic-version", "2023-06-01"),
    ];
    let credentials = [
        "authorization",
        "x-api-key",
        "api-key",
        "openai-organization",
        "openai-project",
    ];
    let mut ex = s.exchange(&s.user_of("cand"), &client);
    run(&mut ex, CHAT, 503, "application/json", r#"{"error":{}}"#);
    for name in credentials {
        assert_eq!(forwarded(&ex, name), None, "{name} forwarded");
    }
    assert_eq!(
        forwarded(&ex, "anthropic-version").as_deref(),
        Some("2023-06-01")
    );
    let headers = s
        .host
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::Dispatch(_, headers, _) => Some(headers),
            _ => None,
        })
        .expect("a call to control");
    assert!(
        !headers
            .iter()
            .any(|(k, _)| credentials.contains(&k.as_str())),
        "control's call carries a client key: {headers:?}"
    );
    assert!(headers.contains(&("anthropic-version".into(), "2023-06-01".into())));

    // Mixed: a treatment that injects, a control that takes the client's
    // key (a self-hosted model), and the reverse.
    let dispatched = |s: &Setup| {
        s.host
            .calls()
            .into_iter()
            .find_map(|c| match c {
                Call::Dispatch(_, headers, _) => Some(headers),
                _ => None,
            })
            .expect("a call to control")
    };
    for (control_injects, cand_injects) in [(false, true), (true, false)] {
        let mut cfg = fallback_config();
        cfg["experiments"][0]["variants"][0]["credentials"] = json!(if control_injects {
            "injected"
        } else {
            "client"
        });
        cfg["experiments"][0]["variants"][1]["credentials"] =
            json!(if cand_injects { "injected" } else { "client" });
        let s = setup(&cfg);
        let mut ex = s.exchange(&s.user_of("cand"), &client);
        run(&mut ex, CHAT, 503, "application/json", r#"{"error":{}}"#);
        assert_eq!(
            forwarded(&ex, "x-api-key").is_some(),
            !cand_injects,
            "treatment injects: {cand_injects}"
        );
        let sent = dispatched(&s);
        assert_eq!(
            sent.iter().any(|(k, _)| k == "x-api-key"),
            !control_injects,
            "control injects: {control_injects}: {sent:?}"
        );
    }

    // The default: the client's credentials pass.
    let s = setup(&fallback_config());
    let mut ex = s.exchange(&s.user_of("cand"), &client);
    run(&mut ex, CHAT, 200, "application/json", &answer("ok"));
    assert_eq!(
        forwarded(&ex, "x-api-key").as_deref(),
        Some("sk-ant-client")
    );
}

#[test]
fn a_failed_treatment_falls_back_to_control_with_controls_body_and_headers() {
    let s = setup(&fallback_config());
    let user = s.user_of("cand");
    let client = [
        ("authorization", "Bearer sk-client"),
        ("anthropic-version", "2023-06-01"),
        ("x-unrelated", "no"),
    ];
    let mut ex = s.exchange(&user, &client);
    run(&mut ex, CHAT, 503, "application/json", r#"{"error":{}}"#);
    let dispatched = s.host.calls().into_iter().find_map(|c| match c {
        Call::Dispatch(cluster, headers, body) => Some((cluster, headers, body)),
        _ => None,
    });
    let (cluster, headers, body) = dispatched.expect("a call to control");
    assert_eq!(cluster, "a");
    assert!(headers.contains(&("x-llm-variant".into(), "control".into())));
    assert!(headers.contains(&("accept-encoding".into(), "identity".into())));
    // Control is asked as the client asked: credentials and API version.
    assert!(headers.contains(&("authorization".into(), "Bearer sk-client".into())));
    assert!(headers.contains(&("anthropic-version".into(), "2023-06-01".into())));
    assert!(!headers.iter().any(|(k, _)| k == "x-unrelated"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["model"], "m-a", "control's model");

    let control = answer("from control");
    {
        let mut wire = s.host.wire.borrow_mut();
        wire.call_headers = vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "application/json".into()),
            ("x-backend".into(), "a".into()),
        ];
        wire.call_body = control.as_bytes().to_vec();
    }
    ex.on_call_response(control.len());
    let (status, headers, sent) = s.host.reply().unwrap();
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("x-backend".into(), "a".into())),
        "control's headers"
    );
    assert!(headers.contains(&("x-llm-variant".into(), "control".into())));
    assert_eq!(sent, control.as_bytes());
    ex.on_log();
    let all = records(&s.host);
    assert_eq!(all.len(), 1, "finalized once");
    assert_eq!(all[0]["outcome"], "fallback");
    assert_eq!(all[0]["assigned_variant"], "cand");
    assert_eq!(all[0]["served_variant"], "control");
}

#[test]
fn a_schema_failure_falls_back() {
    let mut cfg = fallback_config();
    cfg["guardrails"] = json!({"response_schema": {"on_fail": "fallback"}});
    let s = setup(&cfg);
    let user = s.user_of("cand");
    let request = json!({"model": "app", "messages": [], "response_format": {"type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "required": ["answer"]}}}})
    .to_string();
    let mut ex = s.exchange(&user, &[]);
    run(
        &mut ex,
        &request,
        200,
        "application/json",
        &answer("not json at all"),
    );
    assert!(
        s.host
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Dispatch(..))),
        "the treatment's bad output is replaced by control's"
    );
    assert!(
        s.host.reply().is_none(),
        "nothing answered yet: control is asked"
    );
}

/// A control user's streaming request whose answer's first chunk is
/// `chunk` (the stream goes on: no end of stream yet).
fn streaming(s: &Setup, chunk: &str) -> Exchange<FakeHost> {
    let mut ex = s.exchange(&s.user_of("control"), &[]);
    assert_eq!(ex.on_request_headers(false), Flow::Pause);
    let body = r#"{"model":"x","stream":true,"messages":[]}"#;
    s.host.wire.borrow_mut().request_body = body.as_bytes().to_vec();
    ex.on_request_body(body.len(), true);
    s.host.wire.borrow_mut().response_headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "text/event-stream".into()),
    ];
    ex.on_response_headers(false);
    s.host.wire.borrow_mut().response_body = chunk.as_bytes().to_vec();
    ex.on_response_body(chunk.len(), false);
    ex
}

#[test]
fn a_reset_after_the_response_headers_records_an_incomplete_stream_once() {
    let s = setup(&base());
    let mut ex = streaming(
        &s,
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
    );
    ex.on_log();
    ex.on_log();
    let all = records(&s.host);
    assert_eq!(all.len(), 1, "one record");
    assert_eq!(all[0]["outcome"], "error");
    assert_eq!(all[0]["tokens_source"], "estimated");
}

#[test]
fn a_stream_cut_by_a_guardrail_ends_with_done() {
    let mut cfg = base();
    cfg["guardrails"] = json!({"moderation": {"response_patterns": ["(?i)evil plan"]}});
    let s = setup(&cfg);
    let mut ex = streaming(
        &s,
        "data: {\"choices\":[{\"delta\":{\"content\":\"my evil plan is\"}}]}\n\n",
    );
    let sent = String::from_utf8(s.host.wire.borrow().response_body.clone()).unwrap();
    assert!(sent.ends_with("data: [DONE]\n\n"), "{sent}");
    assert!(!sent.contains("evil plan"), "{sent}");
    ex.on_log();
    let r = s.host.record().unwrap();
    assert_eq!(
        (r["outcome"].as_str(), r["error_code"].as_str()),
        (Some("blocked"), Some("output_blocked"))
    );
}

/// Hostcalls of one non-streaming request under `config` (request
/// headers, body, response headers, body, log), by kind.
fn hostcalls(config: &Value) -> (usize, Vec<Call>) {
    let s = setup(config);
    let user = s.user_of("cand");
    let mut ex = s.exchange(&user, &[("x-org-id", "acme")]);
    s.host.clear_calls();
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    (s.host.hostcalls(), s.host.calls())
}

fn everything() -> Value {
    let mut cfg = base();
    cfg["redaction"] = json!({"request": true, "response": true,
        "custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}]});
    cfg["budgets"] = json!({"max_input_tokens": 8000, "max_output_tokens": 1024, "timeout_ms": 30000,
        "quotas": [{"key": "x-org-id", "tokens_per_minute": 1_000_000_000u64}]});
    cfg["guardrails"] = json!({
        "moderation": {"request_patterns": ["(?i)how to make a bomb"], "response_patterns": ["(?i)as an evil ai"]},
        "tools": {"allow": ["search_docs"], "on_violation": "block"},
        "response_schema": {"on_fail": "count"},
        "review": {"cluster": "a", "sample_rate": 0, "always": ["blocked"]}});
    cfg
}

#[test]
fn review_copies_hold_the_request_as_forwarded_or_as_refused() {
    // Refused by moderation: the copy is the body that would have gone out.
    let s = setup(&everything());
    let user = s.user_of("cand");
    let mut ex = s.exchange(&user, &[("x-org-id", "o1")]);
    let bomb = r#"{"model":"app","messages":[{"role":"user","content":"how to make a bomb"}]}"#;
    run(&mut ex, bomb, 200, "application/json", &answer("hi"));
    ex.on_log();
    let reviews = s.host.review_bodies();
    assert_eq!(reviews.len(), 1, "a blocked request is reviewed");
    assert_eq!(reviews[0]["record"]["outcome"], "blocked");
    assert_eq!(
        Some(&reviews[0]["record"]),
        s.host.record().as_ref(),
        "the copy holds the whole record, as the access log has it"
    );
    assert_eq!(reviews[0].as_object().map(|o| o.len()), Some(3));
    assert_eq!(
        reviews[0]["request"]["messages"][0]["content"],
        "how to make a bomb"
    );
    assert_eq!(
        reviews[0]["request"]["model"], "m-b",
        "with the variant's model"
    );

    // Forwarded (every exchange sampled): the copy is the body as sent.
    let mut cfg = everything();
    cfg["guardrails"]["review"]["sample_rate"] = json!(1.0);
    let s = setup(&cfg);
    let user = s.user_of("cand");
    let mut ex = s.exchange(&user, &[("x-org-id", "o1")]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    let sent: Value = serde_json::from_slice(&s.host.wire.borrow().request_body).unwrap();
    let reviews = s.host.review_bodies();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0]["request"], sent, "what went upstream");
    assert_eq!(sent["model"], "m-b");
    assert_eq!(
        reviews[0]["response"]["choices"][0]["message"]["content"],
        "hi"
    );
}

/// Every response body the exchange wrote, in order, as text.
fn sent_body(host: &FakeHost) -> String {
    let bytes: Vec<u8> = host
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::SetResponseBody(b) => Some(b.clone()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .concat();
    String::from_utf8(bytes).unwrap()
}

/// An exchange of `s` for `user` on `path`.
fn exchange_on(s: &Setup, user: &str, path: &str) -> Exchange<FakeHost> {
    let ex = s.exchange(user, &[]);
    for (k, v) in ex.host().wire.borrow_mut().request_headers.iter_mut() {
        if k == ":path" {
            *v = path.to_string();
        }
    }
    ex
}

#[test]
fn dialect_streams_are_redacted_and_other_streams_refused_when_a_check_cannot_read_them() {
    let stream = r#"{"model":"app","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut cfg = base();
    cfg["experiments"][0]["match"] = json!({"path_prefix": "/v1/"});
    cfg["redaction"] = json!({"request": true, "response": true});

    // A Messages stream is redacted: a value split across text deltas
    // goes out replaced, the held tail in an event before the block stops.
    let s = setup(&cfg);
    let user = s.user_of("cand");
    let mut ex = exchange_on(&s, &user, "/v1/messages");
    let delta = |t: &str| {
        format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{t}\"}}}}\n\n")
    };
    let events = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n".to_string(),
        delta("write to jane.do"),
        delta("e@example.com now"),
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".to_string(),
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":6}}\n\n".to_string(),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_string(),
    ]
    .concat();
    run(&mut ex, stream, 200, "text/event-stream", &events);
    assert!(s.host.reply().is_none(), "forwarded");
    let sent = sent_body(&s.host);
    assert!(
        !sent.contains("jane.do") && sent.contains("[REDACTED:email]"),
        "{sent}"
    );
    assert_eq!(
        sent.matches("event: ").count(),
        sent.matches("data: ").count(),
        "{sent}"
    );
    let said: String = sent
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(said, "write to [REDACTED:email] now");
    let rec = &records(&s.host)[0];
    assert_eq!(
        (rec["outcome"].as_str(), rec["tokens_out"].as_u64()),
        (Some("success"), Some(6)),
        "{rec}"
    );

    // With redaction alone, a Responses stream is redacted: deltas, and the
    // events that repeat the whole text, agree.
    cfg.as_object_mut().unwrap().remove("guardrails");
    let s = setup(&cfg);
    let mut ex = exchange_on(&s, &user, "/v1/responses");
    let ev =
        |kind: &str, body: &str| format!("event: {kind}\ndata: {{\"type\":\"{kind}\",{body}}}\n\n");
    let events = [
        ev("response.output_text.delta", r#""output_index":0,"content_index":0,"delta":"mail jane.do""#),
        ev("response.output_text.delta", r#""output_index":0,"content_index":0,"delta":"e@example.com now""#),
        ev("response.output_text.done", r#""output_index":0,"content_index":0,"text":"mail jane.doe@example.com now""#),
        ev("response.completed", r#""response":{"output":[{"content":[{"type":"output_text","text":"mail jane.doe@example.com now"}]}],"usage":{"input_tokens":9,"output_tokens":4}}"#),
    ]
    .concat();
    run(&mut ex, stream, 200, "text/event-stream", &events);
    assert!(s.host.reply().is_none(), "forwarded");
    let sent = sent_body(&s.host);
    assert!(!sent.contains("jane.do"), "{sent}");
    let datas: Vec<Value> = sent
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .collect();
    let said: String = datas.iter().filter_map(|v| v["delta"].as_str()).collect();
    assert_eq!(said, "mail [REDACTED:email] now");
    assert_eq!(datas[datas.len() - 2]["text"], "mail [REDACTED:email] now");
    let rec = &records(&s.host)[0];
    assert_eq!(
        (rec["outcome"].as_str(), rec["tokens_in"].as_u64()),
        (Some("success"), Some(9)),
        "{rec}"
    );
    cfg["guardrails"] = json!({"moderation": {"response_patterns": ["(?i)evil"]}});
    let s = setup(&cfg);
    let mut ex = exchange_on(&s, &user, "/v1/chat/completions");
    run(
        &mut ex,
        stream,
        200,
        "text/event-stream",
        "data: [DONE]\n\n",
    );
    assert!(
        s.host.reply().is_none(),
        "chat streams are read and redacted"
    );

    // A stream of an API the filter does not read, while an output
    // guardrail must read it: refused when asked for, before anything goes
    // upstream; replaced when the model sends it unasked.
    cfg["guardrails"] = json!({"moderation": {"response_patterns": ["(?i)evil"]}});
    let s = setup(&cfg);
    let mut ex = exchange_on(&s, &user, "/v1/audio/speech");
    run(&mut ex, stream, 200, "text/event-stream", "");
    let (status, _, body) = s.host.reply().expect("refused");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("stream_not_checkable")),
        "{v}"
    );
    assert!(
        !s.host
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SetRequestHeader(..))),
        "nothing forwarded"
    );
    let s = setup(&cfg);
    let plain = r#"{"model":"app","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut ex = exchange_on(&s, &user, "/v1/audio/speech");
    run(
        &mut ex,
        plain,
        200,
        "text/event-stream",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    );
    let (status, _, body) = s.host.reply().expect("replaced");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (502, Some("stream_not_checkable")),
        "{v}"
    );
    assert_eq!(records(&s.host)[0]["error_code"], "stream_not_checkable");

    // on_error: pass and no output guardrail: forwarded, counted unscanned.
    cfg.as_object_mut().unwrap().remove("guardrails");
    cfg["redaction"]["on_error"] = json!("pass");
    let s = setup(&cfg);
    let mut ex = exchange_on(&s, &user, "/v1/messages");
    run(&mut ex, stream, 200, "text/event-stream", "");
    assert!(s.host.reply().is_none(), "forwarded");
    assert_eq!(records(&s.host)[0]["api"], "anthropic.messages");
    // Nothing to check (or a schema check that only counts): forwarded,
    // every byte as the upstream sent it (`event:` lines included), and
    // complete at the end of the body (these streams have no `[DONE]`).
    let mut cfg = base();
    cfg["experiments"][0]["match"] = json!({"path_prefix": "/v1/"});
    cfg["guardrails"] =
        json!({"response_schema": {"on_fail": "count", "schema": {"type": "object"}}});
    let s = setup(&cfg);
    let events = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5}}}\n\n\
                  event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n\
                  event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    let mut ex = exchange_on(&s, &user, "/v1/messages");
    run(&mut ex, stream, 200, "text/event-stream", events);
    assert!(s.host.reply().is_none());
    assert!(
        !s.host
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SetResponseBody(_))),
        "passed as it is"
    );
    assert_eq!(records(&s.host)[0]["outcome"], "success");
}

/// An SSE event named `kind` whose data is `{"type": kind, …body}`.
fn sse(kind: &str, body: Value) -> String {
    let mut data = json!({ "type": kind });
    if let (Some(d), Some(b)) = (data.as_object_mut(), body.as_object()) {
        d.extend(b.clone());
    }
    format!("event: {kind}\ndata: {data}\n\n")
}

/// The `data` of every event sent to the client, parsed.
fn sent_events(host: &FakeHost) -> Vec<Value> {
    sent_body(host)
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn dialect_streams_get_the_output_guardrails_in_their_own_shapes() {
    let stream = r#"{"model":"app","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let mut cfg = base();
    cfg["experiments"][0]["match"] = json!({"path_prefix": "/v1/"});
    cfg["redaction"] = json!({"request": true, "response": true});
    cfg["guardrails"] = json!({"moderation": {"response_patterns": ["(?i)evil"]},
                               "tools": {"allow": ["search_docs"]}});
    let text_delta = |t: &str| {
        sse(
            "content_block_delta",
            json!({"index": 0, "delta": {"type": "text_delta", "text": t}}),
        )
    };
    let start = sse(
        "message_start",
        json!({"message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
    );
    let end = [
        sse("content_block_stop", json!({"index": 0})),
        sse(
            "message_delta",
            json!({"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}),
        ),
        sse("message_stop", json!({})),
    ]
    .concat();

    // Messages, blocked text: ended as Anthropic ends what its own safety
    // checks stop, a refusal; the blocked delta and the rest never go out.
    let s = setup(&cfg);
    let user = s.user_of("cand");
    let events = [
        start.clone(),
        sse(
            "content_block_start",
            json!({"index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        text_delta("mail jane.doe@example.com "),
        sse(
            "message_delta",
            json!({"delta": {"stop_reason": null}, "usage": {"output_tokens": 4}}),
        ),
        text_delta("and an evil plan"),
        text_delta(" more"),
        end.clone(),
    ]
    .concat();
    let mut ex = exchange_on(&s, &user, "/v1/messages");
    run(&mut ex, stream, 200, "text/event-stream", &events);
    assert!(s.host.reply().is_none(), "the stream went on");
    let sent = sent_body(&s.host);
    assert!(
        !sent.contains("evil") && !sent.contains("jane") && !sent.contains("more"),
        "{sent}"
    );
    assert_eq!(
        sent.matches("event: ").count(),
        sent.matches("data: ").count()
    );
    let datas = sent_events(&s.host);
    let kinds: Vec<&str> = datas.iter().filter_map(|v| v["type"].as_str()).collect();
    assert_eq!(
        kinds[kinds.len() - 4..],
        [
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{sent}"
    );
    let n = datas.len();
    assert_eq!(datas[n - 4]["delta"]["text"], crate::guard::REFUSAL_MESSAGE);
    assert_eq!(datas[n - 2]["delta"]["stop_reason"], "refusal");
    assert_eq!(
        datas[n - 2]["usage"]["output_tokens"],
        4,
        "the count so far"
    );
    let r = &records(&s.host)[0];
    assert_eq!(
        (r["outcome"].as_str(), r["error_code"].as_str()),
        (Some("blocked"), Some("output_blocked")),
        "{r}"
    );

    // Messages, a tool outside the allowlist: Anthropic's `error` event,
    // before the call's block goes out; an allowed one passes.
    let tool = |name: &str| {
        [
            start.clone(),
            sse(
                "content_block_start",
                json!({"index": 0, "content_block": {"type": "tool_use", "id": "t1", "name": name, "input": {}}}),
            ),
            sse(
                "content_block_delta",
                json!({"index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            ),
            end.clone(),
        ]
        .concat()
    };
    let s = setup(&cfg);
    let mut ex = exchange_on(&s, &user, "/v1/messages");
    run(&mut ex, stream, 200, "text/event-stream", &tool("rm_rf"));
    let sent = sent_body(&s.host);
    assert!(!sent.contains("rm_rf"), "{sent}");
    assert!(
        sent.ends_with("\n\n") && sent.contains("event: error\n"),
        "{sent}"
    );
    let last = sent_events(&s.host).pop().unwrap();
    assert_eq!(
        (last["type"].as_str(), last["error"]["type"].as_str()),
        (Some("error"), Some("api_error")),
        "{last}"
    );
    assert!(last["error"]["message"].as_str().unwrap().contains("tool"));
    assert_eq!(records(&s.host)[0]["error_code"], "tool_not_allowed");
    let s = setup(&cfg);
    let mut ex = exchange_on(&s, &user, "/v1/messages");
    let allowed = tool("search_docs");
    run(&mut ex, stream, 200, "text/event-stream", &allowed);
    assert!(
        !s.host
            .calls()
            .iter()
            .any(|c| matches!(c, Call::SetResponseBody(_))),
        "passed byte for byte"
    );
    assert_eq!(records(&s.host)[0]["outcome"], "success");

    // Responses: the `error` event, numbered as the event it replaces, for a
    // blocked text and for a function call outside the allowlist.
    let numbered = |events: Vec<(&str, Value)>| {
        events
            .into_iter()
            .enumerate()
            .map(|(i, (kind, mut body))| {
                body["sequence_number"] = json!(i);
                sse(kind, body)
            })
            .collect::<String>()
    };
    let text = numbered(vec![
        ("response.created", json!({"response": {"id": "r"}})),
        (
            "response.output_text.delta",
            json!({"output_index": 0, "content_index": 0, "delta": "an ev"}),
        ),
        (
            "response.output_text.delta",
            json!({"output_index": 0, "content_index": 0, "delta": "il plan"}),
        ),
        (
            "response.completed",
            json!({"response": {"usage": {"input_tokens": 3, "output_tokens": 2}}}),
        ),
    ]);
    let s = setup(&cfg);
    let mut ex = exchange_on(&s, &user, "/v1/responses");
    run(&mut ex, stream, 200, "text/event-stream", &text);
    let datas = sent_events(&s.host);
    let last = datas.last().unwrap();
    assert_eq!(
        (
            last["type"].as_str(),
            last["code"].as_str(),
            last["sequence_number"].as_u64()
        ),
        (Some("error"), Some("output_blocked"), Some(2)),
        "{datas:?}"
    );
    assert!(!datas.iter().any(|d| d["type"] == "response.completed"));
    assert_eq!(records(&s.host)[0]["outcome"], "blocked");
    let call = numbered(vec![
        ("response.created", json!({"response": {"id": "r"}})),
        (
            "response.output_item.added",
            json!({"output_index": 0, "item": {"type": "function_call", "name": "rm_rf", "arguments": ""}}),
        ),
        (
            "response.completed",
            json!({"response": {"usage": {"input_tokens": 3, "output_tokens": 2}}}),
        ),
    ]);
    let s = setup(&cfg);
    let mut ex = exchange_on(&s, &user, "/v1/responses");
    run(&mut ex, stream, 200, "text/event-stream", &call);
    let datas = sent_events(&s.host);
    assert_eq!(datas.len(), 2, "{datas:?}");
    assert_eq!(
        (
            datas[1]["code"].as_str(),
            datas[1]["sequence_number"].as_u64()
        ),
        (Some("tool_not_allowed"), Some(1))
    );
    assert_eq!(records(&s.host)[0]["error_code"], "tool_not_allowed");

    // Responses `text.format`: the streamed text checked against the schema.
    let mut cfg = base();
    cfg["experiments"][0]["match"] = json!({"path_prefix": "/v1/"});
    cfg["guardrails"] = json!({"response_schema": {"on_fail": "count"}});
    let asked = r#"{"model":"app","input":"hi","stream":true,"text":{"format":{"type":"json_schema","name":"x","schema":{"type":"object","required":["a"]}}}}"#;
    for (pieces, pass) in [(["{\"a\":", "1}"], true), (["{\"b\":", "1}"], false)] {
        let s = setup(&cfg);
        let mut ex = exchange_on(&s, &user, "/v1/responses");
        let events = numbered(vec![
            (
                "response.output_text.delta",
                json!({"output_index": 0, "content_index": 0, "delta": pieces[0]}),
            ),
            (
                "response.output_text.delta",
                json!({"output_index": 0, "content_index": 0, "delta": pieces[1]}),
            ),
            (
                "response.completed",
                json!({"response": {"usage": {"input_tokens": 3, "output_tokens": 2}}}),
            ),
        ]);
        run(&mut ex, asked, 200, "text/event-stream", &events);
        let r = &records(&s.host)[0];
        assert_eq!(
            (r["schema_pass"].as_bool(), r["outcome"].as_str()),
            (Some(pass), Some("success")),
            "{r}"
        );
    }
}

/// The hostcall budget of the hot path: a change that adds a call to a
/// request fails here (raise the budget only with a reason and a bench).
#[test]
fn hostcall_budget_per_configuration() {
    let mut routing = base();
    routing["telemetry"] = json!(false);
    let cases = [
        ("routing only", routing, 11),
        ("default", base(), 21),
        ("everything on", everything(), 26),
    ];
    let mut report = Vec::new();
    for (name, cfg, budget) in cases {
        let (n, calls) = hostcalls(&cfg);
        report.push(format!("{name}: {n}"));
        assert!(
            n <= budget,
            "{name}: {n} hostcalls > budget {budget}:\n{calls:#?}"
        );
    }
    // Tracing as shipped (Envoy's trace id in a request header): the 16
    // span attributes (14 here: no prompt or RAG-index version) and no
    // traceparent of the filter's own.
    let mut tracing = base();
    tracing["tracing"] = json!(true);
    let s = setup(&tracing);
    let mut ex = s.exchange(
        &s.user_of("cand"),
        &[("x-org-id", "acme"), ("x-llm-trace-id", ENVOY_TRACE)],
    );
    s.host.clear_calls();
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    let n = s.host.hostcalls();
    report.push(format!("default + tracing: {n}"));
    assert!(
        n <= 21 + 14,
        "tracing: {n} hostcalls:\n{:#?}",
        s.host.calls()
    );
    assert_eq!(s.host.span_attributes().len(), 14);
    println!("hostcalls per request: {}", report.join(", "));
}

/// A trace id as Envoy's header_mutation filter writes it (`%TRACE_ID%`).
const ENVOY_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// Each API's request and answer, non-streaming (the dialect budget).
const DIALECTS: [(&str, &str, &str); 3] = [
    (
        "/v1/responses",
        r#"{"model":"app","input":"hello there","max_output_tokens":5000}"#,
        r#"{"id":"resp_1","object":"response","status":"completed","model":"m","output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"hi","annotations":[]}]}],"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":0},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15}}"#,
    ),
    (
        "/v1/messages",
        r#"{"model":"app","max_tokens":4096,"messages":[{"role":"user","content":"hello there"}]}"#,
        r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}"#,
    ),
    (
        "/v1/embeddings",
        r#"{"model":"app","input":["hello there"]}"#,
        r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2]}],"model":"m","usage":{"prompt_tokens":12,"total_tokens":12}}"#,
    ),
];

/// Every API costs a request the hostcalls of chat: a dialect adds none.
#[test]
fn hostcall_budget_per_api() {
    let mut cfg = everything();
    cfg["experiments"][0]["match"] = json!({"path_prefix": "/v1/"});
    let (chat, _) = hostcalls(&cfg);
    for (path, request, response) in DIALECTS {
        let s = setup(&cfg);
        let user = s.user_of("cand");
        let mut ex = exchange_on(&s, &user, path);
        ex.host()
            .wire
            .borrow_mut()
            .request_headers
            .push(("x-org-id".into(), "acme".into()));
        s.host.clear_calls();
        run(&mut ex, request, 200, "application/json", response);
        let record = records(&s.host).pop().expect("a record");
        assert_eq!(
            (record["outcome"].as_str(), record["tokens_source"].as_str()),
            (Some("success"), Some("usage")),
            "{path}: {record}"
        );
        assert_eq!(record["tokens_in"], 12, "{path}");
        let n = s.host.hostcalls();
        assert!(
            n <= chat,
            "{path}: {n} hostcalls > chat's {chat}:\n{:#?}",
            s.host.calls()
        );
    }
}

#[test]
fn the_health_window_is_read_once_per_finished_exchange() {
    let mut cfg = breaker_config();
    cfg["experiments"][0]["slo"] =
        json!({"window_s": 30, "min_requests": 50, "max_error_rate": 0.5});
    let s = setup(&cfg);
    let user = s.user_of("cand");
    let mut ex = s.exchange(&user, &[]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    let hash = s.loaded.as_ref().unwrap().0.config_hash;
    let window = crate::slo::window_key(hash, "e", "cand");
    let reads = s
        .host
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::SharedGet(k) if *k == window))
        .count();
    assert_eq!(
        reads, 1,
        "recorded once; the breaker and the SLO use what was written"
    );
    assert_eq!(s.host.record().unwrap()["outcome"], "success");
}

fn tracing_config() -> Value {
    let mut cfg = base();
    cfg["tracing"] = json!(true);
    cfg["experiments"][0]["variants"][1]["prompt_version"] = json!("p13");
    cfg["pricing"] = json!({"m-b": {"input_per_mtok": 0.4, "output_per_mtok": 1.6}});
    cfg
}

#[test]
fn tracing_writes_the_span_attributes_of_the_record() {
    let s = setup(&tracing_config());
    let user = s.user_of("cand");
    let mut ex = s.exchange(&user, &[]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    let record = s.host.record().expect("a record");
    let attrs: HashMap<String, String> = s.host.span_attributes().into_iter().collect();
    let expected = [
        ("gen_ai.operation.name", "chat".to_string()),
        ("gen_ai.provider.name", "openai".to_string()),
        ("gen_ai.request.model", "m-b".to_string()),
        ("gen_ai.response.model", "m".to_string()),
        ("gen_ai.usage.input_tokens", "12".to_string()),
        ("gen_ai.usage.output_tokens", "3".to_string()),
        ("llm_ab.experiment", "e".to_string()),
        ("llm_ab.variant.assigned", "cand".to_string()),
        ("llm_ab.variant.served", "cand".to_string()),
        ("llm_ab.prompt_version", "p13".to_string()),
        ("llm_ab.usage.cached_input_tokens", "0".to_string()),
        ("llm_ab.usage.cache_write_input_tokens", "0".to_string()),
        ("llm_ab.usage.reasoning_tokens", "0".to_string()),
        ("llm_ab.outcome", "success".to_string()),
    ];
    assert_eq!(attrs.len(), expected.len() + 1, "{attrs:#?}");
    // The record's float text (serde_json reads it back only to the nearest
    // few ulps without its float_roundtrip feature).
    let cost: f64 = attrs["llm_ab.cost_usd"].parse().unwrap();
    assert!((cost - record["cost_usd_est"].as_f64().unwrap()).abs() < 1e-18);
    let raw = s
        .host
        .calls()
        .iter()
        .find_map(|c| match c {
            Call::SetFilterState(k, v) if k == super::RECORD_PROPERTY => {
                Some(String::from_utf8_lossy(v).into_owned())
            }
            _ => None,
        })
        .unwrap();
    assert!(
        raw.contains(&format!("\"cost_usd_est\":{},", attrs["llm_ab.cost_usd"])),
        "{raw}"
    );
    for (name, value) in expected {
        assert_eq!(attrs.get(name), Some(&value), "{name}: {attrs:#?}");
    }
    assert_eq!(record["response_model"], "m");
    assert!(
        (record["cost_usd_est"].as_f64().unwrap() - (12.0 * 0.4 + 3.0 * 1.6) / 1e6).abs() < 1e-15
    );
    // Every key is a declared property, under the prefix.
    for (name, _) in s.host.span_attributes() {
        let key = format!("{}{name}", super::SPAN_PROPERTY_PREFIX);
        assert!(super::SPAN_PROPERTIES.contains(&key.as_str()), "{key}");
    }
}

#[test]
fn without_tracing_no_span_attribute_is_written_nor_a_client_trace_id_taken() {
    let mut cfg = tracing_config();
    cfg["tracing"] = json!(false);
    let s = setup(&cfg);
    let mut ex = s.exchange(&s.user_of("cand"), &[("x-llm-trace-id", ENVOY_TRACE)]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    assert!(s.host.span_attributes().is_empty());
    let record = s.host.record().unwrap();
    assert_eq!(record["response_model"], "m");
    assert_eq!(record["trace_id"], "5b1e2e076c1c4a4e9a1c2c8b9f0d3e11");
}

#[test]
fn unmatched_requests_get_no_span_attributes() {
    let s = setup(&tracing_config());
    let mut ex = s.exchange("u", &[("x-llm-trace-id", ENVOY_TRACE)]);
    ex.host().wire.borrow_mut().request_headers[1].1 = "/v1/models".into();
    ex.on_request_headers(true);
    ex.on_log();
    assert_eq!(s.host.record().unwrap()["trace_id"], ENVOY_TRACE);
    assert!(s.host.span_attributes().is_empty());
}

fn traceparent_set(host: &FakeHost) -> bool {
    host.calls()
        .iter()
        .any(|c| matches!(c, Call::SetRequestHeader(k, _) if k == "traceparent"))
}

#[test]
fn with_tracing_the_record_takes_the_trace_id_of_envoys_span() {
    let s = setup(&tracing_config());
    let mut ex = s.exchange(&s.user_of("cand"), &[("x-llm-trace-id", ENVOY_TRACE)]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    assert_eq!(s.host.record().unwrap()["trace_id"], ENVOY_TRACE);
    assert!(!traceparent_set(&s.host), "the router sends Envoy's own");

    // A request the filter refuses itself carries it too.
    let s = setup(&tracing_config());
    let mut ex = s.exchange(&s.user_of("cand"), &[("x-llm-trace-id", ENVOY_TRACE)]);
    run(&mut ex, "{broken", 200, "application/json", "");
    let record = s.host.record().unwrap();
    assert_eq!(record["outcome"], "invalid");
    assert_eq!(record["trace_id"], ENVOY_TRACE);
    assert_eq!(s.host.span_attributes().len(), 14);

    // Without the header (Envoy not tracing, or no header_mutation ahead of
    // the filter): the filter's own id and traceparent, as without tracing;
    // a header that is not a trace id counts as none.
    for extra in [vec![], vec![("x-llm-trace-id", "not-a-trace-id")]] {
        let s = setup(&tracing_config());
        let mut ex = s.exchange(&s.user_of("cand"), &extra);
        run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
        assert_eq!(
            s.host.record().unwrap()["trace_id"],
            "5b1e2e076c1c4a4e9a1c2c8b9f0d3e11"
        );
        assert!(traceparent_set(&s.host));
    }
}

#[test]
fn messages_spans_name_anthropic_and_the_model_of_message_start() {
    let mut cfg = tracing_config();
    cfg["experiments"][0]["match"] = json!({"path_prefix": "/v1/"});
    let s = setup(&cfg);
    let mut ex = exchange_on(&s, &s.user_of("cand"), "/v1/messages");
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x-1\",\"content\":[],\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":4,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    run(
        &mut ex,
        r#"{"model":"app","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hello"}]}"#,
        200,
        "text/event-stream",
        stream,
    );
    let record = s.host.record().unwrap();
    let attrs: HashMap<String, String> = s.host.span_attributes().into_iter().collect();
    assert_eq!(record["outcome"], "success", "{record}");
    assert_eq!(attrs["gen_ai.operation.name"], "chat");
    assert_eq!(attrs["gen_ai.provider.name"], "anthropic");
    assert_eq!(attrs["gen_ai.response.model"], "claude-x-1");
    assert_eq!(record["response_model"], "claude-x-1");
    assert_eq!(attrs["gen_ai.usage.input_tokens"], "16");
    assert_eq!(attrs["gen_ai.usage.output_tokens"], "7");
    assert_eq!(attrs["llm_ab.usage.cached_input_tokens"], "4");
    assert_eq!(attrs["llm_ab.usage.cache_write_input_tokens"], "2");
}

#[test]
fn the_request_time_span_attributes_are_written_when_the_request_goes_upstream() {
    // Envoy ends a reset stream's span before `on_log`, the filter's last
    // callback: what is known at request time is written before.
    let s = setup(&tracing_config());
    let mut ex = s.exchange(&s.user_of("cand"), &[("x-llm-trace-id", ENVOY_TRACE)]);
    assert_eq!(ex.on_request_headers(false), Flow::Pause);
    ex.host().wire.borrow_mut().request_body = CHAT.as_bytes().to_vec();
    assert_eq!(ex.on_request_body(CHAT.len(), true), Flow::Continue);
    let early: Vec<String> = s
        .host
        .span_attributes()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        early,
        [
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "llm_ab.experiment",
            "llm_ab.variant.assigned",
            "llm_ab.variant.served",
            "llm_ab.prompt_version",
        ]
    );
    // The stream is reset: the end-time ones come with the record, once each.
    ex.on_log();
    let all = s.host.span_attributes();
    assert_eq!(all.len(), 7 + 7, "no response model: {all:#?}");
    let mut names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "each written once");
}

#[test]
fn after_a_fallback_the_span_names_control_as_served() {
    let mut cfg = fallback_config();
    cfg["tracing"] = json!(true);
    let s = setup(&cfg);
    let mut ex = s.exchange(&s.user_of("cand"), &[("x-llm-trace-id", ENVOY_TRACE)]);
    run(&mut ex, CHAT, 503, "application/json", r#"{"error":{}}"#);
    let control = answer("from control");
    {
        let mut wire = s.host.wire.borrow_mut();
        wire.call_headers = vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "application/json".into()),
        ];
        wire.call_body = control.as_bytes().to_vec();
    }
    ex.on_call_response(control.len());
    ex.on_log();
    let record = s.host.record().unwrap();
    assert_eq!(record["served_variant"], "control", "{record}");
    // The last value written for each attribute is what the span gets.
    let last: HashMap<String, String> = s.host.span_attributes().into_iter().collect();
    assert_eq!(last["llm_ab.variant.assigned"], "cand");
    assert_eq!(last["llm_ab.variant.served"], "control");
    assert_eq!(last["llm_ab.outcome"], record["outcome"].as_str().unwrap());
    assert_eq!(record["outcome"], "fallback");
}

/// An experiment whose control is copied to `cand` (weight 0).
fn shadowed(shadow: Value) -> Value {
    json!({
        "default_cluster": "model_a",
        "pricing": {"cand-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        "experiments": [{"id": "s", "sticky_keys": ["x-user-id"],
          "variants": [{"name": "control", "weight": 100, "cluster": "model_a"},
                       {"name": "cand", "weight": 0, "cluster": "model_b", "model": "cand-model", "prompt_version": "p2"}],
          "shadow": shadow}]
    })
}

/// Sends what the station queued, answers each copy with `answer`, and
/// scores the pairs: the root context's part, over the same fake host.
fn root_runs(s: &Setup, answer: &str, status: u32) {
    use crate::shadow::run;
    let (plan, metrics) = s.loaded.as_ref().unwrap();
    let before = s.host.dispatched().len();
    let copies = std::mem::take(&mut s.host.shadow.borrow_mut().queue);
    let mut calls = run::Calls::default();
    {
        let mut station = s.host.shadow.borrow_mut();
        run::send_queued(
            &s.host,
            plan,
            metrics,
            copies,
            &mut station,
            &mut calls,
            1_767_225_600_000,
        );
    }
    let sent = s.host.dispatched().len() - before;
    for token in 0..u32::MAX {
        if calls.is_empty() || token > 10_000 {
            break;
        }
        if let run::Answered::Copy(flight) = calls.take(token) {
            let a = crate::shadow::Answer {
                status,
                content_encoding: None,
                body: answer.as_bytes(),
                latency_ms: 42,
            };
            let mut station = s.host.shadow.borrow_mut();
            run::copy_answered(
                &s.host,
                plan,
                metrics,
                &mut station,
                &mut calls,
                flight,
                &a,
                1_767_225_600_042,
            );
        }
    }
    let mut station = s.host.shadow.borrow_mut();
    run::finish_ready(
        &s.host,
        plan,
        metrics,
        &mut station,
        &mut calls,
        1_767_225_600_050,
    );
    assert!(sent <= s.host.dispatched().len());
}

#[test]
fn a_sampled_request_is_copied_off_the_client_path_and_scored_against_its_answer() {
    let s = setup(&shadowed(
        json!({"variants": ["cand"], "sink_cluster": "sink"}),
    ));
    let user = s.user_of("control");
    let mut ex = s.exchange(&user, &[("authorization", "Bearer sk-client")]);
    s.host.clear_calls();
    let body =
        r#"{"model":"app","stream":false,"messages":[{"role":"user","content":"hello there"}]}"#;
    run(
        &mut ex,
        body,
        200,
        "application/json",
        &answer("the cat sat on the mat"),
    );
    // The client's exchange dispatched nothing: the copy waits in the VM.
    assert!(s.host.dispatched().is_empty());
    assert_eq!(s.host.shadow.borrow().queue.len(), 1);
    let record = s.host.record().unwrap();
    assert_eq!(record["served_variant"], "control");

    root_runs(&s, &answer("the cat is on the mat"), 200);
    let sent = s.host.dispatched();
    assert_eq!(sent.len(), 2, "the copy, then its record to the sink");
    let (cluster, headers, copy) = &sent[0];
    assert_eq!(cluster, "model_b");
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("authorization"), Some("Bearer sk-client"));
    assert_eq!(header("x-llm-shadow"), Some("1"));
    assert_eq!(header("x-llm-variant"), Some("cand"));
    assert_eq!(header("x-llm-prompt-version"), Some("p2"));
    let copy: Value = serde_json::from_slice(copy).unwrap();
    assert_eq!(copy["model"], "cand-model");

    let (sink, _, rec) = &sent[1];
    assert_eq!(sink, "sink");
    let rec: Value = serde_json::from_slice(rec).unwrap();
    for field in crate::shadow::record::FIELDS {
        assert!(rec.get(field).is_some(), "{field} missing: {rec}");
    }
    assert_eq!(rec["paired_trace_id"], record["trace_id"]);
    assert_eq!(rec["variant"], "cand");
    assert_eq!(rec["model"], "cand-model");
    assert_eq!(rec["outcome"], "success");
    assert_eq!(rec["control_outcome"], "success");
    // 5 of 6 words in common, in order: ROUGE-L F1 = 5/6.
    assert_eq!(rec["similarity"], 0.8333);
    assert_eq!(rec["exact_match"], false);
    assert_eq!(rec["json_equal"], Value::Null);
    assert_eq!(rec["latency_ms"], 42);
    assert_eq!(rec["tokens_in"], 12);
    assert_eq!(rec["tokens_out"], 3);
    // 12 × $1/M + 3 × $2/M.
    assert_eq!(rec["cost_usd_est"], 1.8e-5);
    let text = rec.to_string();
    assert!(
        !text.contains("cat") && !text.contains("hello"),
        "no text: {text}"
    );

    let m = |name: &str| s.counter(&format!("llm_ab.experiment.s.variant.cand.{name}"));
    assert_eq!(m("outcome.success.shadow_calls"), 1);
    assert_eq!(m("pair.success_success.shadow_pairs"), 1);
    assert_eq!(m("shadow_tokens_in"), 12);
    assert_eq!(m("shadow_cost_micro_usd"), 18);
    let sim = s.ids["llm_ab.experiment.s.variant.cand.shadow_similarity"];
    assert_eq!(s.host.recorded(sim), vec![83]);
    assert!(s.host.shadow.borrow().pairs.is_empty());
}

#[test]
fn a_streamed_answer_is_copied_as_one_json_call_and_its_text_compared() {
    let s = setup(&shadowed(
        json!({"variants": ["cand"], "sink_cluster": "sink"}),
    ));
    let mut ex = s.exchange(&s.user_of("control"), &[]);
    let body = r#"{"model":"app","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"{\\\"a\\\": 1}\"}}]}\n\n\
        data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
    run(&mut ex, body, 200, "text/event-stream", stream);
    assert_eq!(s.host.record().unwrap()["outcome"], "success");
    root_runs(&s, &answer(r#"{"a":1}"#), 200);
    let sent = s.host.dispatched();
    let copy: Value = serde_json::from_slice(&sent[0].2).unwrap();
    assert_eq!(copy["stream"], false);
    assert!(copy.get("stream_options").is_none(), "{copy}");
    let rec: Value = serde_json::from_slice(&sent[1].2).unwrap();
    assert_eq!(rec["json_equal"], true);
    assert_eq!(rec["exact_match"], false, "spacing differs inside the JSON");
    assert_eq!(rec["similarity"], 1.0);
}

#[test]
fn copies_follow_sampling_budget_and_failure() {
    // Sampling by trace id: at 0 nothing is copied, and it is counted.
    let s = setup(&shadowed(json!({"variants": ["cand"], "sample_rate": 0})));
    let mut ex = s.exchange(&s.user_of("control"), &[]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    assert!(s.host.shadow.borrow().queue.is_empty());
    assert_eq!(
        s.counter("llm_ab.experiment.s.variant.cand.reason.not_sampled.shadow_skipped"),
        1
    );

    // A treatment's own request is never copied.
    let s = setup(&json!({
        "default_cluster": "model_a",
        "experiments": [{"id": "s", "sticky_keys": ["x-user-id"],
          "variants": [{"name": "control", "weight": 50, "cluster": "model_a"},
                       {"name": "cand", "weight": 50, "cluster": "model_b"}],
          "shadow": {"variants": ["cand"]}}]
    }));
    let mut ex = s.exchange(&s.user_of("cand"), &[]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    assert!(s.host.shadow.borrow().queue.is_empty());

    // The budget: a copy that would pass max_tokens_per_minute is skipped.
    let s = setup(&shadowed(
        json!({"variants": ["cand"], "max_tokens_per_minute": 40}),
    ));
    let user = s.user_of("control");
    let capped = r#"{"model":"app","max_completion_tokens":30,"messages":[{"role":"user","content":"hello there"}]}"#;
    for _ in 0..2 {
        let mut ex = s.exchange(&user, &[]);
        run(&mut ex, capped, 200, "application/json", &answer("hi"));
    }
    assert_eq!(s.host.shadow.borrow().queue.len(), 2);
    root_runs(&s, &answer("hi"), 200);
    assert_eq!(
        s.counter("llm_ab.experiment.s.variant.cand.reason.budget.shadow_skipped"),
        1
    );
    assert_eq!(
        s.counter("llm_ab.experiment.s.variant.cand.outcome.success.shadow_calls"),
        1
    );
    assert!(
        s.host.shadow.borrow().pairs.is_empty(),
        "the skipped pair is dropped"
    );

    // A copy that fails (no answer within its timeout) is an outcome, and
    // the client's answer was never at stake.
    let s = setup(&shadowed(json!({"variants": ["cand"], "timeout_ms": 40})));
    let mut ex = s.exchange(&s.user_of("control"), &[]);
    run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
    root_runs(&s, "", 0);
    assert_eq!(
        s.counter("llm_ab.experiment.s.variant.cand.outcome.timeout.shadow_calls"),
        1
    );
    assert_eq!(
        s.counter("llm_ab.experiment.s.variant.cand.reason.timeout.shadow_skipped"),
        1
    );
    assert_eq!(
        s.counter("llm_ab.experiment.s.variant.cand.pair.success_failure.shadow_pairs"),
        1
    );
}

#[test]
fn a_shadow_step_exposes_nobody_and_its_slo_breach_pauses_the_experiment() {
    let cfg = json!({
        "default_cluster": "model_a",
        "experiments": [{"id": "s", "sticky_keys": ["x-user-id"],
          "variants": [{"name": "control", "weight": 90, "cluster": "model_a"},
                       {"name": "cand", "weight": 10, "cluster": "model_b"}],
          "rollout": {"start_unix_s": 1_767_225_000u64, "steps": [
              {"shadow_rate": 1.0, "hold_s": 3600}, {"weight": 10, "hold_s": 0}]},
          "slo": {"window_s": 60, "min_requests": 2, "max_error_rate": 0.5},
          "shadow": {"variants": ["cand"]}}]
    });
    let s = setup(&cfg);
    // During the shadow step every user is control's, and copied.
    for i in 0..3 {
        let mut ex = s.exchange(&format!("u{i}"), &[]);
        run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
        assert_eq!(s.host.record().unwrap()["served_variant"], "control");
    }
    assert_eq!(s.host.shadow.borrow().queue.len(), 3);
    // Every copy fails: the SLO, fed by the copies, pauses the experiment.
    root_runs(&s, r#"{"error":{"message":"boom"}}"#, 500);
    let (plan, _) = s.loaded.as_ref().unwrap();
    let key = crate::slo::pause_key(plan.config_hash, "s");
    assert!(
        crate::slo::is_paused(&s.host, &key),
        "paused before anyone was exposed"
    );
    assert_eq!(
        s.counter("llm_ab.experiment.s.variant.cand.outcome.error.shadow_calls"),
        3
    );
}

#[test]
fn shadowing_adds_no_hostcall_to_a_sampled_request() {
    let plain = setup(&shadowed(json!({"variants": ["cand"]})).tap(|v| {
        v["experiments"][0]
            .as_object_mut()
            .unwrap()
            .remove("shadow");
    }));
    let shadow = setup(&shadowed(json!({"variants": ["cand"]})));
    let count = |s: &Setup| {
        let mut ex = s.exchange(&s.user_of("control"), &[]);
        s.host.clear_calls();
        run(&mut ex, CHAT, 200, "application/json", &answer("hi"));
        s.host.hostcalls()
    };
    assert_eq!(count(&shadow), count(&plain));
    // Not sampled: one counter more.
    let off = setup(&shadowed(json!({"variants": ["cand"], "sample_rate": 0})));
    assert_eq!(count(&off), count(&plain) + 1);
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}

impl Tap for Value {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
