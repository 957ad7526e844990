//! Fallback to control: the request as control would get it is kept when
//! a treatment may fall back; a failed treatment's answer is held while the
//! request is re-issued to control's cluster, whose answer (checked and
//! redacted like any other) replaces it.

use super::{Exchange, Host, Matched, Phase};
use crate::body::{self, Edits};
use crate::config::Plan;

/// A side call's body, redacted (`Err`: as prepared, redaction could not
/// scan it).
pub(crate) type Redacted = Result<Vec<u8>, Vec<u8>>;

/// The body of a side call of the request to variant `v` of experiment
/// `experiment` (a fallback to control, a shadow copy): `bytes` as the
/// client sent them with the variant's model and output cap (and, with
/// `no_stream`, not streaming), redacted when request redaction is on
/// (`Err`: the prepared body, which redaction could not scan); `None` when
/// the body cannot be prepared.
pub(crate) fn side_call_body(
    plan: &Plan,
    experiment: usize,
    v: &crate::config::Variant,
    api: crate::dialect::Api,
    bytes: &[u8],
    no_stream: bool,
) -> Option<(Redacted, body::RequestInfo)> {
    let edits = Edits {
        model: v.model.as_deref(),
        ensure_stream_usage: false,
        no_stream,
        max_output_tokens: plan.budgets_for(experiment).max_output_tokens,
        cap_param: v.cap_param,
        api,
        allowed_tools: plan.guardrails.allowed_tools.as_deref(),
        strip_tools: plan.guardrails.strip_tools,
    };
    let prepared = body::prepare(bytes, edits).ok()?;
    let out = prepared.body.unwrap_or_else(|| bytes.to_vec());
    let Some(r) = plan.redaction.as_ref().filter(|r| r.request) else {
        return Some((Ok(out), prepared.info));
    };
    let mut scratch = crate::redact::Counts::default();
    let redacted = std::str::from_utf8(&out)
        .map_err(|_| crate::redact::Unscannable("utf-8"))
        .and_then(|t| r.redact_valid_json(t, &mut scratch));
    let out = match redacted {
        Ok(Some(redacted)) => Ok(redacted),
        Ok(None) => Ok(out),
        Err(_) => Err(out),
    };
    Some((out, prepared.info))
}

/// The headers of a side call of the request to variant `v` (a fallback
/// to control, a shadow copy): the request's path, JSON, plaintext (the
/// answer is read before anyone gets it), the experiment's and variant's
/// own headers, and the client's `passed` ones (its credentials left out
/// for a variant whose cluster injects its own key).
pub(crate) fn side_call_headers<'a>(
    path: &'a str,
    authority: &'static str,
    experiment: &'a str,
    v: &'a crate::config::Variant,
    passed: &'a [(String, String)],
) -> Vec<(&'a str, &'a str)> {
    let mut headers: Vec<(&str, &str)> = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/json"),
        ("accept-encoding", "identity"),
        ("x-llm-experiment", experiment),
        ("x-llm-variant", &v.name),
    ];
    if let Some(p) = &v.prompt_version {
        headers.push(("x-llm-prompt-version", p));
    }
    if let Some(r) = &v.rag_index_version {
        headers.push(("x-llm-rag-index-version", r));
    }
    for (name, value) in passed {
        if v.injects_credentials && super::is_client_credential(name) {
            continue;
        }
        headers.push((name, value));
    }
    headers
}

impl<H: Host> Exchange<H> {
    /// Keeps the request as control would get it, when a treatment request
    /// may fall back.
    pub(super) fn prepare_fallback(&mut self, plan: &Plan, m: Matched, bytes: &[u8]) {
        let Some(e) = plan.experiments.get(m.experiment) else {
            return;
        };
        if e.fallback.is_none() || m.variant == e.layout.control() {
            return;
        }
        // A fallback answer is sent whole: no usage chunk to strip. A body
        // redaction cannot scan went upstream as it was (`on_error: pass`).
        let Some((Ok(out) | Err(out), _)) =
            side_call_body(plan, m.experiment, e.control(), self.api, bytes, false)
        else {
            return;
        };
        self.fallback_body = Some(out);
    }

    /// Re-issues the request to control; `true` when the call is under way.
    pub(super) fn start_fallback(&mut self, plan: &Plan, m: Matched) -> bool {
        let Some(e) = plan.experiments.get(m.experiment) else {
            return false;
        };
        let (Some(fb), Some(body)) = (e.fallback, self.fallback_body.as_ref()) else {
            return false;
        };
        if self.fallback_attempts >= fb.max_attempts {
            return false;
        }
        let control = e.control();
        let budget_ms = control
            .timeout_ms
            .or(plan.budgets_for(m.experiment).timeout_ms)
            .unwrap_or(60_000);
        let left = budget_ms.saturating_sub(self.now_ms().saturating_sub(self.start_ms));
        if left == 0 {
            return false;
        }
        let headers = side_call_headers(
            &self.path,
            "llm-ab-fallback",
            &e.id,
            control,
            &self.passed_headers,
        );
        let started = self
            .host
            .dispatch(&control.cluster, &headers, body, left)
            .is_some();
        self.fallback_attempts += 1;
        if started {
            self.phase = Phase::Fallback;
        }
        started
    }

    /// Control answered the fallback call: its answer replaces the held one.
    pub(super) fn fallback_answered(&mut self, body_size: usize) {
        if self.phase != Phase::Fallback {
            return;
        }
        self.phase = Phase::Upstream;
        let headers = self.host.call_response_headers();
        let header = |name: &str| headers.get(name);
        let status = header(":status")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        let encoded = crate::encoding::unreadable(header("content-encoding"));
        if status == 0 || encoded.is_some() {
            // Control could not be reached either (or answered in a coding
            // the filter cannot check): let the treatment's failure go on
            // as it was.
            self.apply_response_edits();
            self.host.resume_response();
            return;
        }
        let body = self.host.call_response_body(body_size);
        let (Some((plan, _)), Some(m)) = (self.loaded.clone(), self.matched) else {
            return;
        };
        let content_type = header("content-type")
            .unwrap_or("application/json")
            .to_string();
        let stream = content_type.starts_with("text/event-stream");
        let policy = Self::policy(&plan, None);
        if stream && !self.api.stream_passes(&policy) {
            // A stream of an API the filter cannot read while a check must:
            // never sent unchecked; the treatment's failure goes on.
            self.apply_response_edits();
            self.host.resume_response();
            return;
        }
        let mut out_body = body;
        let verdict = if stream {
            // Control's stream is checked, redacted and observed as the
            // treatment's would have been, whole (it arrived whole).
            let (mode, _) = self.stream_mode(&policy);
            self.mode = mode;
            if let Some(new) = self.rewrite_sse(policy, &out_body, true) {
                out_body = new;
            }
            None
        } else {
            crate::output::read_answer(
                self.observer.as_mut(),
                &plan.refusal_phrases,
                &out_body,
                content_type.contains("json").then_some(policy),
                &mut self.redactions,
            )
        };
        if let Some(verdict) = verdict {
            let blocks = plan
                .redaction
                .as_ref()
                .is_some_and(|r| r.response && !r.pass_on_error);
            if verdict.unscannable.is_some() && blocks {
                // Control's answer cannot be redacted: never sent unscanned.
                self.apply_response_edits();
                self.host.resume_response();
                return;
            }
            if let Some(new) = verdict.body {
                out_body = new;
            }
        }
        let control = plan
            .experiments
            .get(m.experiment)
            .map(|e| (e.id.clone(), e.control().name.clone()));
        // Control's response headers, minus framing (the body is sent whole).
        let mut reply: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(k, _)| {
                !k.starts_with(':')
                    && !matches!(
                        *k,
                        "content-length"
                            | "transfer-encoding"
                            | "connection"
                            | "keep-alive"
                            | "x-llm-experiment"
                            | "x-llm-variant"
                    )
            })
            .collect();
        if !reply.iter().any(|(k, _)| *k == "content-type") {
            reply.push(("content-type", &content_type));
        }
        if let (true, Some((id, name))) = (plan.expose_headers, &control) {
            reply.push(("x-llm-experiment", id));
            reply.push(("x-llm-variant", name));
        }
        self.fell_back = true;
        self.status = status;
        self.keep_response_copy(&out_body);
        self.finalize(true);
        self.host.send_reply(status, &reply, &out_body);
    }
}
