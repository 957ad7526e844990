//! The request side: assignment and routing headers when the headers
//! arrive, then the checks of the complete body of a matched request
//! (edits, redaction, budgets, guardrails, quotas), or a refusal. Nothing
//! refused here reaches the upstream.

use super::{Exchange, Flow, Host, Matched, Phase, MAX_REVIEW_COPY};
use crate::body::{self, Edits};
use crate::budget::{self, Decision};
use crate::error::ApiError;
use crate::response::ResponseObserver;
use crate::trace;

/// Upstream request headers the filter owns: client values are dropped.
const OWNED_REQUEST_HEADERS: [&str; 4] = [
    "x-llm-experiment",
    "x-llm-variant",
    "x-llm-prompt-version",
    "x-llm-rag-index-version",
];

/// Header changes, written when the request (or response) goes on, and
/// not at all when the filter answers itself.
#[derive(Default)]
pub(super) struct HeaderEdits(Vec<(String, Option<String>)>);

impl HeaderEdits {
    pub(super) fn set(&mut self, name: &str, value: &str) {
        self.0.push((name.to_string(), Some(value.to_string())));
    }

    pub(super) fn remove(&mut self, name: &str) {
        self.0.push((name.to_string(), None));
    }

    /// Removes each of `names` the request carries (one change per header
    /// present, none for those absent).
    pub(super) fn remove_present<'n>(
        &mut self,
        headers: &super::headers::HeaderMap,
        names: impl IntoIterator<Item = &'n str>,
    ) {
        for name in names {
            if headers.has(name) {
                self.remove(name);
            }
        }
    }

    /// Each header changed, once (the last change of a header wins).
    pub(super) fn changes(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.0.iter().enumerate().filter_map(|(i, (name, value))| {
            let later = self.0[i + 1..].iter().any(|(n, _)| n == name);
            (!later).then_some((name.as_str(), value.as_deref()))
        })
    }
}

/// The client's credentials (OpenAI, Anthropic, Azure) and the OpenAI
/// account they name (a provider refuses an organization or project that
/// is not its key's), removed for a variant whose cluster injects its own
/// key.
const CLIENT_CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "api-key",
    "openai-organization",
    "openai-project",
];

/// Whether `name` is one of the client's credential headers (removed for
/// a variant whose cluster injects its own key).
pub fn is_client_credential(name: &str) -> bool {
    CLIENT_CREDENTIAL_HEADERS.contains(&name)
}

/// The request headers a fallback call to control repeats: credentials
/// and the API's version and options (OpenAI, Azure, Anthropic).
pub(super) const FALLBACK_PASSED_HEADERS: [&str; 7] = [
    "authorization",
    "x-api-key",
    "api-key",
    "anthropic-version",
    "anthropic-beta",
    "openai-organization",
    "openai-project",
];

impl<H: Host> Exchange<H> {
    /// Assigns the request, writes the routing headers, and holds a matched
    /// request until its body is complete.
    pub(super) fn request_headers(&mut self, end_of_stream: bool) -> Flow {
        let Some((plan, metrics)) = self.loaded.clone() else {
            return Flow::Continue;
        };
        let start_nanos = self.host.now_nanos();
        self.start_ms = start_nanos / 1_000_000;
        // Read from the host in one call: a handful of lookups per request
        // is cheaper locally than one hostcall each.
        let headers = self.host.request_headers();
        #[cfg(feature = "crash-hook")]
        if headers.has("x-llm-ab-test-crash") {
            std::process::abort();
        }
        let path = headers.get(":path").unwrap_or_default();
        self.api = crate::dialect::Api::of_path(path);
        let now_s = start_nanos / 1_000_000_000;
        let decision = plan.decide_at(path, &headers, now_s);
        let served = decision
            .assignment
            .map(|a| self.safety(&plan, &metrics, a, now_s));
        let cluster = match (decision.assignment, served) {
            (Some(a), Some((v, _, _))) => a
                .experiment
                .variants
                .get(v)
                .map_or(decision.cluster, |v| v.cluster.as_str()),
            _ => decision.cluster,
        };

        // Always overwrite the routing header: a client never picks a cluster.
        let mut edits = HeaderEdits::default();
        edits.set(&plan.route_header, cluster);
        if let Some(o) = &plan.override_ {
            edits.remove_present(&headers, [o.variant_header.as_str(), &o.token_header]);
        }
        edits.remove_present(&headers, OWNED_REQUEST_HEADERS);

        // One trace id from the client through the upstream to the record.
        if plan.telemetry {
            self.request_id = headers.get("x-request-id").map(str::to_string);
            // With Envoy tracing, its span (started before any filter, with
            // the client's trace or one of its own) names the trace: the
            // router sends it upstream in a traceparent of its own.
            let envoy = plan
                .tracing
                .then(|| headers.get(trace::ENVOY_TRACE_ID_HEADER))
                .flatten()
                .and_then(trace::envoy_trace_id);
            if let Some(id) = envoy {
                self.trace_id = id.to_string();
            } else {
                let t = trace::trace_for(
                    headers.get("traceparent"),
                    self.request_id.as_deref(),
                    start_nanos ^ self.sequence.rotate_left(32),
                );
                if let Some(tp) = &t.new_traceparent {
                    edits.set("traceparent", tp);
                }
                self.trace_id = t.trace_id;
            }
        }

        let (Some(a), Some((served, reason, probe))) = (decision.assignment, served) else {
            self.apply_request_edits(&edits);
            metrics.count_default_route(&self.host);
            self.phase = Phase::Upstream;
            return Flow::Continue;
        };
        let Some(variant) = a.experiment.variants.get(served) else {
            self.apply_request_edits(&edits);
            self.phase = Phase::Upstream;
            return Flow::Continue;
        };
        let path = path.to_string();
        let matched = Matched {
            experiment: a.experiment_index,
            assigned: a.variant_index,
            variant: served,
            probe,
            reason,
            bucket: a.bucket,
            unit_id: a.unit_id,
        };
        self.matched = Some(matched);
        self.observer = Some(ResponseObserver::new());
        if Self::shadows(&plan, matched) {
            // Kept for the copies: each shadow variant is asked as the
            // client asked (credentials filtered per variant when sent).
            self.path.clone_from(&path);
            self.shadow_headers = FALLBACK_PASSED_HEADERS
                .iter()
                .filter_map(|name| Some((name.to_string(), headers.get(name)?.to_string())))
                .collect();
        }
        if a.experiment.fallback.is_some() {
            // Kept for a fallback call only: control must be asked as the
            // client asked (its credentials and API version included).
            self.path = path;
            // Control's cluster that injects its own key never gets the client's.
            let injects = a.experiment.control().injects_credentials;
            self.passed_headers = FALLBACK_PASSED_HEADERS
                .iter()
                .filter(|name| !(injects && CLIENT_CREDENTIAL_HEADERS.contains(name)))
                .filter_map(|name| Some((name.to_string(), headers.get(name)?.to_string())))
                .collect();
        }
        if variant.injects_credentials {
            // The cluster adds this provider's key: the client's key (maybe
            // another provider's) never leaves the proxy.
            edits.remove_present(&headers, CLIENT_CREDENTIAL_HEADERS);
        }
        metrics.count_request(&self.host, a.experiment_index, served, reason);
        edits.set("x-llm-experiment", &a.experiment.id);
        edits.set("x-llm-variant", &variant.name);
        if let Some(v) = &variant.prompt_version {
            edits.set("x-llm-prompt-version", v);
        }
        if let Some(v) = &variant.rag_index_version {
            edits.set("x-llm-rag-index-version", v);
        }
        let budgets = plan.budgets_for(a.experiment_index);
        if let Some(ms) = variant.timeout_ms.or(budgets.timeout_ms) {
            // The router takes the timeout budget from this header.
            edits.set("x-envoy-upstream-rq-timeout-ms", &ms.to_string());
        }
        self.quota_keys = budgets
            .quotas
            .iter()
            .map(|q| headers.get(&q.key_header).map(str::to_string))
            .collect();

        if end_of_stream {
            return self.reject(&ApiError::invalid_json("request body is empty"));
        }
        // A compressed body is never parsed as text (the shipped envoy.yaml
        // decompresses it before the filter).
        if let Some(encoding) = crate::encoding::unreadable(headers.get("content-encoding")) {
            return self.reject(&ApiError::request_encoded(encoding));
        }
        let declared = headers
            .get("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > plan.max_body_bytes as u64) {
            return self.reject(&ApiError::too_large(plan.max_body_bytes));
        }
        // Hold the headers until the whole body is validated: nothing is
        // forwarded for a request that will be refused. The header changes
        // go out with the body's (one call), or never for a refusal.
        self.pending_headers = Some(edits);
        self.phase = Phase::RequestBody;
        Flow::Pause
    }

    /// Writes the request header changes, one call per header changed (a
    /// call per header moves less than replacing the whole map: measured).
    fn apply_request_edits(&self, edits: &HeaderEdits) {
        for (name, value) in edits.changes() {
            self.host.set_request_header(name, value);
        }
    }

    /// Answers the client with `err` and stops the request here.
    pub(super) fn reject(&mut self, err: &ApiError) -> Flow {
        let Some((plan, metrics)) = self.loaded.clone() else {
            return Flow::Pause;
        };
        let body = self.api.error_body(err);
        let retry_after = self.retry_after.map(|s| s.to_string());
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        if let Some(r) = &retry_after {
            headers.push(("retry-after", r));
        }
        if let Some(m) = self.matched {
            metrics.count_rejected(&self.host, m.experiment, m.variant, err.code);
            if plan.expose_headers {
                if let Some((id, v)) = Self::variant(&plan, m) {
                    headers.push(("x-llm-experiment", id));
                    headers.push(("x-llm-variant", &v.name));
                }
            }
        }
        self.status = err.status;
        self.error_code = Some(err.code);
        self.keep_response_copy(&body);
        self.finalize(true);
        self.host.send_reply(err.status, &headers, &body);
        Flow::Pause
    }

    /// Checks the complete body; when the request goes on, writes its
    /// header changes (with the new `content-length`) in one call.
    pub(super) fn finish_request_body(&mut self) -> Flow {
        self.phase = Phase::Upstream;
        let mut length = None;
        let flow = self.check_request_body(&mut length);
        if let (Flow::Continue, Some(mut edits)) = (flow, self.pending_headers.take()) {
            if let Some(n) = length {
                edits.set("content-length", &n.to_string());
            }
            self.apply_request_edits(&edits);
        }
        flow
    }

    /// Validates and rewrites the complete buffered request body; `length`
    /// gets the new body's size when it changed.
    fn check_request_body(&mut self, length: &mut Option<usize>) -> Flow {
        let (Some((plan, metrics)), Some(m)) = (self.loaded.clone(), self.matched) else {
            return Flow::Continue;
        };
        let Some((_, variant)) = Self::variant(&plan, m) else {
            return Flow::Continue;
        };
        let budgets = plan.budgets_for(m.experiment);
        let bytes = self.host.request_body(self.body_size);
        let edits = Edits {
            model: variant.model.as_deref(),
            ensure_stream_usage: true,
            no_stream: false,
            max_output_tokens: budgets.max_output_tokens,
            cap_param: variant.cap_param,
            api: self.api,
            allowed_tools: plan.guardrails.allowed_tools.as_deref(),
            strip_tools: plan.guardrails.strip_tools,
        };
        let prepared = match body::prepare(&bytes, edits) {
            Ok(p) => p,
            Err(err) => return self.reject(&err),
        };
        self.info = prepared.info;
        let mut new_body = prepared.body;

        // Redaction and request moderation share one walk over the string
        // values of the body as it will be forwarded (moderation sees them
        // before redaction).
        let redactor = plan.redaction.as_ref().filter(|r| r.request);
        let moderate = !plan.guardrails.request_patterns.is_empty();
        let (scanned, blocked) = if redactor.is_some() || moderate {
            // `prepare` validated the body, and its edits keep it valid.
            let current = new_body.as_deref().unwrap_or(&bytes);
            let values = crate::bytes::utf8(current)
                .map_err(|_| "body is not UTF-8")
                .and_then(|text| Ok((text, crate::json::string_values(text)?)));
            match values {
                Ok((text, values)) => (
                    Ok(redactor.and_then(|r| r.redact_values(text, &values, &mut self.redactions))),
                    moderate
                        && plan
                            .guardrails
                            .blocked_request(values.iter().map(|v| v.text.as_ref()))
                            .is_some(),
                ),
                Err(why) => (Err(crate::redact::Unscannable(why)), false),
            }
        } else {
            (Ok(None), false)
        };
        if let Some(r) = redactor {
            match scanned {
                Ok(Some(redacted)) => new_body = Some(redacted),
                Ok(None) => {}
                Err(why) if r.pass_on_error => {
                    log::debug!("request body forwarded unscanned: {}", why.0);
                    metrics.count_redaction_skipped(&self.host, m.experiment, m.variant);
                }
                Err(why) => return self.reject(&ApiError::request_unscannable(why.0)),
            }
        }

        // From here on, the review copy is what is (or would have been)
        // forwarded: a refusal copies it, a forwarded body is moved into it.
        let review = plan.guardrails.review.is_some();
        let refuse = |this: &mut Self, sent: &[u8], err: &ApiError| {
            if review {
                this.review_copy =
                    Some((sent[..sent.len().min(MAX_REVIEW_COPY)].to_vec(), Vec::new()));
            }
            this.reject(err)
        };
        let sent = new_body.as_deref().unwrap_or(&bytes);
        // Budgets and guardrails, cheapest first; nothing refused here is forwarded.
        if let Some(limit) = budgets.max_input_tokens {
            if self.info.prompt_tokens_est > limit {
                let err = ApiError::context_budget_exceeded(self.info.prompt_tokens_est, limit);
                return refuse(self, sent, &err);
            }
        }
        if !self.info.disallowed_tools.is_empty() {
            let err = ApiError::tool_not_allowed(&self.info.disallowed_tools);
            return refuse(self, sent, &err);
        }
        if blocked {
            return refuse(self, sent, &ApiError::content_blocked());
        }
        self.schema = plan.guardrails.schema_for(self.info.response_schema.take());
        // A stream the filter does not read (`other` APIs) is like a
        // response it cannot decode: it goes out only when nothing must
        // read it.
        if self.info.stream
            && !self
                .api
                .stream_passes(&Self::policy(&plan, self.schema.as_ref()))
        {
            return refuse(self, sent, &ApiError::stream_unreadable(self.api.as_str()));
        }

        // Quotas last: a request refused above holds no tokens. The clock
        // of the request headers is the window's (no second read).
        let tokens = self.info.prompt_tokens_est + self.info.output_cap.unwrap_or(0);
        let now_s = self.start_ms / 1000;
        for (i, q) in budgets.quotas.iter().enumerate() {
            let Some(key) = self.quota_keys.get(i).cloned().flatten() else {
                continue;
            };
            let store_key = budget::store_key(i, &key);
            match budget::reserve(&self.host, &store_key, q.tokens_per_minute, tokens, now_s) {
                Decision::Granted(r) => self.reservations.push(r),
                Decision::Contended => log::warn!("quota store contended; request let through"),
                Decision::Exceeded { retry_after_s } => {
                    self.release_reservations();
                    self.retry_after = Some(retry_after_s);
                    return refuse(self, sent, &ApiError::token_quota_exceeded(retry_after_s));
                }
            }
        }

        self.prepare_fallback(&plan, m, &bytes);
        self.queue_shadow_copies(&plan, &metrics, m, &bytes);
        if let Some(new) = &new_body {
            self.host.set_request_body(self.body_size, new);
            *length = Some(new.len());
        }
        if review {
            let mut sent = new_body.unwrap_or(bytes);
            sent.truncate(MAX_REVIEW_COPY);
            self.review_copy = Some((sent, Vec::new()));
        }
        if plan.tracing {
            self.write_request_span_attributes(&plan, m);
        }
        self.forwarded = true;
        Flow::Continue
    }

    /// Gives back every token reserved by this request.
    pub(super) fn release_reservations(&mut self) {
        for r in self.reservations.drain(..) {
            budget::settle(&self.host, &r, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_header_is_written_once_with_its_last_change() {
        let mut e = HeaderEdits::default();
        e.set("x-llm-cluster", "model_b");
        e.remove("x-llm-variant");
        e.set("traceparent", "00-abc-def-01");
        e.set("x-llm-cluster", "model_a");
        let changes: Vec<_> = e.changes().collect();
        assert_eq!(
            changes,
            vec![
                ("x-llm-variant", None),
                ("traceparent", Some("00-abc-def-01")),
                ("x-llm-cluster", Some("model_a")),
            ]
        );
    }
}
