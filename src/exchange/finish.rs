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

/// Which span attributes to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanPart {
    /// Those known when the request goes upstream.
    Request,
    /// Those known at the end (and the served variant after a fallback).
    End,
    /// Both (a request that never went upstream).
    All,
}

impl<H: Host> Exchange<H> {
    /// Adds what the client got to the review copy, up to its cap.
    pub(super) fn keep_response_copy(&mut self, bytes: &[u8]) {
        self.keep_shadow_answer(bytes);
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
            crate::json::Value::from_slice(bytes).unwrap_or_else(|_| {
                crate::json::Value::String(String::from_utf8_lossy(bytes).into_owned())
            })
        };
        // `{"record":…,"request":…,"response":…}`, the record by its own
        // writer (the keys in the order a JSON object of serde_json sorts them).
        let mut body = b"{\"record\":".to_vec();
        body.extend_from_slice(&record.to_json());
        for (key, part) in [
            (&b",\"request\":"[..], &request),
            (b",\"response\":", &response),
        ] {
            body.extend_from_slice(key);
            crate::json::push_value(&mut body, &as_json(part));
        }
        body.push(b'}');
        let queued = self.host.queue_review(super::ReviewItem {
            cluster: review.cluster.clone(),
            timeout_ms: review.timeout_ms,
            body,
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
            start_unix_ms: self.start_ms,
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
            // (A Messages stream ends with `message_stop`, a Responses
            // stream with `response.completed` or `response.incomplete`.)
            let complete = match self.mode {
                ResponseMode::Sse { .. } if self.api.streams_are_read() => observer.saw_done(),
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
            record.unit_id = m.unit_id.map(crate::unit_id::UnitId::hex);
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
            self.hand_over_shadow(&record.trace_id, outcome);
        }
        self.host
            .set_filter_state(RECORD_PROPERTY, &record.to_json());
        if plan.tracing && record.experiment_id.is_some() {
            // A forwarded request's request-time attributes are written.
            let part = if self.forwarded {
                SpanPart::End
            } else {
                SpanPart::All
            };
            self.write_span_attributes(&record, part);
        }
        self.queue_review(&plan, &metrics, &record);
    }

    /// Writes the span attributes known when a matched request goes
    /// upstream (API, model, experiment, variants, versions): a span whose
    /// stream is reset has them too, since Envoy ends the span before the
    /// filter's last callback (`on_log`).
    pub(super) fn write_request_span_attributes(
        &self,
        plan: &crate::config::Plan,
        m: super::Matched,
    ) {
        let Some((id, v)) = Self::variant(plan, m) else {
            return;
        };
        let record = Record {
            model: v.model.clone().or_else(|| self.info.client_model.clone()),
            experiment_id: Some(id.to_string()),
            assigned_variant: plan
                .experiments
                .get(m.experiment)
                .and_then(|e| e.variants.get(m.assigned))
                .map(|a| a.name.clone()),
            served_variant: Some(v.name.clone()),
            prompt_version: v.prompt_version.clone(),
            rag_index_version: v.rag_index_version.clone(),
            ..Record::default()
        };
        self.write_span_attributes(&record, SpanPart::Request);
    }

    /// Writes span attributes of a matched request's `record`, one filter
    /// state each ([`SPAN_PROPERTIES`]), values as in the record; absent
    /// values are not written (the custom tag is then left out).
    fn write_span_attributes(&self, record: &Record, part: SpanPart) {
        let request = part != SpanPart::End;
        let end = part != SpanPart::Request;
        let put = |key: &str, value: Option<&str>| {
            if let Some(v) = value {
                self.host.set_filter_state(key, v.as_bytes());
            }
        };
        let mut number = Vec::with_capacity(24);
        let mut put_number = |key: &str, n: u64| {
            number.clear();
            crate::json::push_decimal(&mut number, n);
            self.host.set_filter_state(key, &number);
        };
        if request {
            put(SPAN_PROPERTIES[0], self.api.genai_operation());
            put(SPAN_PROPERTIES[1], self.api.genai_provider());
            put(SPAN_PROPERTIES[2], record.model.as_deref());
            put(SPAN_PROPERTIES[6], record.experiment_id.as_deref());
            put(SPAN_PROPERTIES[7], record.assigned_variant.as_deref());
        }
        // A fallback changes the served variant after the request went.
        if request || (self.fell_back && end) {
            put(SPAN_PROPERTIES[8], record.served_variant.as_deref());
        }
        if request {
            put(SPAN_PROPERTIES[9], record.prompt_version.as_deref());
            put(SPAN_PROPERTIES[10], record.rag_index_version.as_deref());
        }
        if !end {
            return;
        }
        put(SPAN_PROPERTIES[3], record.response_model.as_deref());
        put_number(SPAN_PROPERTIES[4], record.tokens_in);
        put_number(SPAN_PROPERTIES[5], record.tokens_out);
        put_number(SPAN_PROPERTIES[11], record.tokens_in_cached);
        put_number(SPAN_PROPERTIES[12], record.tokens_in_cache_write);
        put_number(SPAN_PROPERTIES[13], record.tokens_reasoning);
        // The record's own float format (shortest round trip).
        let mut cost = Vec::new();
        crate::json::push_float(&mut cost, record.cost_usd_est);
        self.host.set_filter_state(SPAN_PROPERTIES[14], &cost);
        put(SPAN_PROPERTIES[15], record.outcome.map(Outcome::as_str));
    }
}
