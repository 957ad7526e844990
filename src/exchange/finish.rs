//! The end of an exchange, once: the outcome, tokens and cost, the record in
//! filter state, the metrics, quota settlement, the health window, and a
//! review copy when one is due.

use super::{
    Exchange, Host, Phase, ResponseMode, MAX_REVIEW_COPY, RECORD_PROPERTY, SPAN_PROPERTIES,
};
use crate::budget;
use crate::config::Plan;
use crate::metrics::{Finished, Metrics};
use crate::record::{outcome_for_code, outcome_of, status_class, Outcome, Record};

impl<H: Host> Exchange<H> {
    /// Adds what the client got to the review copy, up to its cap.
    pub(super) fn keep_response_copy(&mut self, bytes: &[u8]) {
        if let Some((_, response)) = self.review_copy.as_mut() {
            let room = MAX_REVIEW_COPY.saturating_sub(response.len());
            response.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    /// Queues a copy of this exchange for human review when it qualifies.
    pub(super) fn queue_review(&mut self, plan: &Plan, metrics: &Metrics, record: &Record) {
        let (Some(review), Some((request, response))) =
            (plan.guardrails.review.as_ref(), self.review_copy.take())
        else {
            return;
        };
        let mut outcomes = Vec::new();
        if let Some(o) = record.outcome {
            outcomes.push(o.as_str());
        }
        if record.schema_pass == Some(false) {
            outcomes.push("schema_fail");
        }
        if !review.wants(&record.trace_id, &outcomes) {
            return;
        }
        let as_json = |bytes: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
            })
        };
        let body = serde_json::json!({
            "record": record,
            "request": as_json(&request),
            "response": as_json(&response),
        });
        let queued = self.host.queue_review(super::ReviewItem {
            cluster: review.cluster.clone(),
            timeout_ms: review.timeout_ms,
            body: serde_json::to_vec(&body).unwrap_or_default(),
        });
        if !queued {
            metrics.count_review(&self.host, 2);
        }
    }

    /// Writes the record and the metrics of the finished exchange, once.
    pub(super) fn finalize(&mut self, complete: bool) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        let Some((plan, metrics)) = self.loaded.clone() else {
            return;
        };
        if !plan.telemetry {
            return;
        }
        let now_ms = self.now_ms();
        let latency_ms = now_ms.saturating_sub(self.start_ms);
        let mut record = Record {
            trace_id: std::mem::take(&mut self.trace_id),
            request_id: self.request_id.take(),
            reason: "default",
            tokens_source: "estimated",
            latency_ms,
            ttft_ms: self.ttft_ms,
            status: self.status,
            stream: self.info.stream,
            api: self.api.as_str(),
            error_code: self.error_code,
            ..Record::default()
        };
        if let Some((m, (id, v))) = self
            .matched
            .and_then(|m| Some((m, Self::variant(&plan, m)?)))
        {
            let observer = self.observer.take().unwrap_or_default();
            let code = self.error_code.or(self.output_block);
            // A stream is complete once `[DONE]` went through, whatever the
            // client does with the connection afterwards; before it, it is
            // cut (by the upstream or the client) however it ended.
            // (A Messages stream ends with `message_stop`; a Responses
            // stream, not read yet, at the end of its body.)
            let complete = match self.mode {
                ResponseMode::Sse { .. } if self.api.stream_end_is_seen() => observer.saw_done(),
                _ => complete,
            };
            let outcome = match code {
                Some(code) => outcome_for_code(code, self.status),
                None if self.fell_back && (200..300).contains(&self.status) => Outcome::Fallback,
                None => outcome_of(self.status, observer.refused(), complete),
            };
            let tokens = if self.forwarded {
                observer.tokens(self.info.prompt_tokens_est)
            } else {
                // Refused before it reached the model: nothing was spent.
                crate::usage::Tokens::NONE
            };
            for r in self.reservations.drain(..) {
                budget::settle(&self.host, &r, tokens.input + tokens.output);
            }
            if let Some(code) = self.output_block {
                metrics.count_rejected(&self.host, m.experiment, m.variant, code);
            }
            if let Some(pass) = self.schema_pass {
                metrics.count_schema(&self.host, m.experiment, m.variant, pass);
            }
            record.error_code = code;
            record.schema_pass = self.schema_pass;
            let model = v.model.clone().or_else(|| self.info.client_model.take());
            let cost = plan.cost_usd(model.as_deref(), &tokens);
            metrics.record_finished(
                &self.host,
                m.experiment,
                m.variant,
                &Finished {
                    status_class: status_class(self.status),
                    outcome,
                    tokens,
                    cost_micro_usd: (cost * 1_000_000.0).round() as u64,
                    latency_ms,
                    ttft_ms: self.ttft_ms,
                },
            );
            metrics.count_redactions(&self.host, m.experiment, m.variant, &self.redactions.0);
            self.update_health(&plan, &metrics, m, outcome, latency_ms, now_ms / 1000);
            record.experiment_id = Some(id.to_string());
            record.assigned_variant = plan
                .experiments
                .get(m.experiment)
                .and_then(|e| e.variants.get(m.assigned))
                .map(|a| a.name.clone());
            record.served_variant = Some(v.name.clone());
            record.reason = m.reason.as_str();
            if self.fell_back {
                record.served_variant = plan
                    .experiments
                    .get(m.experiment)
                    .map(|e| e.control().name.clone());
                record.reason = "fallback";
            }
            record.bucket = m.bucket;
            record.model = model;
            record.response_model = observer.response_model().map(str::to_string);
            record.prompt_version = v.prompt_version.clone();
            record.rag_index_version = v.rag_index_version.clone();
            record.tokens_in = tokens.input;
            record.tokens_in_cached = tokens.cached;
            record.tokens_in_cache_write = tokens.cache_write;
            record.tokens_out = tokens.output;
            record.tokens_reasoning = tokens.reasoning;
            record.tokens_source = tokens.source.as_str();
            record.cost_usd_est = cost;
            record.outcome = Some(outcome);
        }
        self.host
            .set_filter_state(RECORD_PROPERTY, &record.to_json());
        if plan.tracing && record.experiment_id.is_some() {
            self.write_span_attributes(&record);
        }
        self.queue_review(&plan, &metrics, &record);
    }

    /// Writes the span attributes of a matched request, one filter state
    /// each ([`SPAN_PROPERTIES`], in order), values as in the record;
    /// absent values are not written (the custom tag is then left out).
    fn write_span_attributes(&self, record: &Record) {
        let mut number = Vec::with_capacity(24);
        let mut put_number = |key: &str, n: u64| {
            number.clear();
            crate::json::push_decimal(&mut number, n);
            self.host.set_filter_state(key, &number);
        };
        let strings = [
            self.api.genai_operation(),
            self.api.genai_provider(),
            record.model.as_deref(),
            record.response_model.as_deref(),
        ];
        for (key, value) in SPAN_PROPERTIES[..4].iter().zip(strings) {
            if let Some(v) = value {
                self.host.set_filter_state(key, v.as_bytes());
            }
        }
        put_number(SPAN_PROPERTIES[4], record.tokens_in);
        put_number(SPAN_PROPERTIES[5], record.tokens_out);
        let strings = [
            record.experiment_id.as_deref(),
            record.assigned_variant.as_deref(),
            record.served_variant.as_deref(),
            record.prompt_version.as_deref(),
            record.rag_index_version.as_deref(),
        ];
        for (key, value) in SPAN_PROPERTIES[6..11].iter().zip(strings) {
            if let Some(v) = value {
                self.host.set_filter_state(key, v.as_bytes());
            }
        }
        put_number(SPAN_PROPERTIES[11], record.tokens_in_cached);
        put_number(SPAN_PROPERTIES[12], record.tokens_in_cache_write);
        put_number(SPAN_PROPERTIES[13], record.tokens_reasoning);
        // The record's own float format (shortest round trip).
        if let Ok(cost) = serde_json::to_vec(&record.cost_usd_est) {
            self.host.set_filter_state(SPAN_PROPERTIES[14], &cost);
        }
        if let Some(o) = record.outcome {
            self.host
                .set_filter_state(SPAN_PROPERTIES[15], o.as_str().as_bytes());
        }
    }
}
