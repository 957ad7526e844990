//! Per-request HTTP context: applies the routing decision to headers and
//! the body.

use super::metrics::Metrics;
use crate::body;
use crate::config::{Plan, Variant};
use crate::error::ApiError;
use crate::route::RequestHeaders;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};
use std::rc::Rc;

/// Upstream request headers the filter owns: client values are dropped.
const OWNED_REQUEST_HEADERS: [&str; 4] = [
    "x-llm-experiment",
    "x-llm-variant",
    "x-llm-prompt-version",
    "x-llm-rag-index-version",
];

/// The request headers, fetched from the host in one call: a handful of
/// lookups per request is cheaper locally than one hostcall each.
struct HeaderSnapshot(Vec<(String, String)>);

impl HeaderSnapshot {
    fn fetch() -> HeaderSnapshot {
        HeaderSnapshot(hostcalls::get_map(MapType::HttpRequestHeaders).unwrap_or_default())
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

impl RequestHeaders for HeaderSnapshot {
    fn header(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn set_request_header(name: &str, value: Option<&str>) {
    let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value);
}

/// Where the request stands once an experiment matched it.
#[derive(Clone, Copy)]
struct Matched {
    experiment: usize,
    variant: usize,
}

/// One HTTP exchange through the filter.
pub struct Exchange {
    loaded: Option<(Rc<Plan>, Rc<Metrics>)>,
    matched: Option<Matched>,
    /// The request body still has to be validated / rewritten.
    body_pending: bool,
    /// Buffered request body size last reported by the host.
    body_size: usize,
}

impl Exchange {
    /// A context for one stream; `loaded` is `None` only if no configuration loaded.
    pub fn new(loaded: Option<(Rc<Plan>, Rc<Metrics>)>) -> Exchange {
        Exchange {
            loaded,
            matched: None,
            body_pending: false,
            body_size: 0,
        }
    }

    fn variant(plan: &Plan, m: Matched) -> Option<(&str, &Variant)> {
        let e = plan.experiments.get(m.experiment)?;
        Some((e.id.as_str(), e.variants.get(m.variant)?))
    }

    /// Answers the client with `err` and stops the request here.
    fn reject(&mut self, err: &ApiError) -> Action {
        self.body_pending = false;
        let Some((plan, metrics)) = self.loaded.as_ref() else {
            return Action::Pause;
        };
        let body = err.body();
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        if let Some(m) = self.matched {
            metrics.count_rejected(m.experiment, m.variant, err.code);
            if plan.expose_headers {
                if let Some((id, v)) = Self::variant(plan, m) {
                    headers.push(("x-llm-experiment", id));
                    headers.push(("x-llm-variant", &v.name));
                }
            }
        }
        let _ = hostcalls::send_http_response(err.status, headers, Some(&body));
        Action::Pause
    }

    /// Validates and rewrites the complete buffered request body.
    fn finish_request_body(&mut self) -> Action {
        self.body_pending = false;
        let (Some((plan, _)), Some(m)) = (self.loaded.clone(), self.matched) else {
            return Action::Continue;
        };
        let Some((_, variant)) = Self::variant(&plan, m) else {
            return Action::Continue;
        };
        let bytes = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, self.body_size) {
            Ok(Some(b)) => b,
            _ => Vec::new(),
        };
        match body::rewrite_model(&bytes, variant.model.as_deref()) {
            Ok(None) => Action::Continue,
            Ok(Some(new)) => {
                let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, self.body_size, &new);
                set_request_header("content-length", Some(&new.len().to_string()));
                Action::Continue
            }
            Err(err) => self.reject(&err),
        }
    }
}

impl Context for Exchange {}

impl HttpContext for Exchange {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some((plan, metrics)) = self.loaded.clone() else {
            return Action::Continue;
        };
        let headers = HeaderSnapshot::fetch();
        let path = headers.header(":path").unwrap_or_default();
        let decision = plan.decide(&path, &headers);

        // Always overwrite the routing header: a client never picks a cluster.
        set_request_header(&plan.route_header, Some(decision.cluster));
        if let Some(o) = &plan.override_ {
            for name in [&o.variant_header, &o.token_header] {
                if headers.has(name) {
                    set_request_header(name, None);
                }
            }
        }
        for name in OWNED_REQUEST_HEADERS {
            if headers.has(name) {
                set_request_header(name, None);
            }
        }

        let Some(a) = decision.assignment else {
            metrics.count_default_route();
            return Action::Continue;
        };
        self.matched = Some(Matched {
            experiment: a.experiment_index,
            variant: a.variant_index,
        });
        metrics.count_request(a.experiment_index, a.variant_index, a.reason);
        set_request_header("x-llm-experiment", Some(&a.experiment.id));
        set_request_header("x-llm-variant", Some(&a.variant.name));
        if let Some(v) = &a.variant.prompt_version {
            set_request_header("x-llm-prompt-version", Some(v));
        }
        if let Some(v) = &a.variant.rag_index_version {
            set_request_header("x-llm-rag-index-version", Some(v));
        }

        if end_of_stream {
            return self.reject(&ApiError::invalid_json("request body is empty"));
        }
        let declared = headers
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > plan.max_body_bytes as u64) {
            return self.reject(&ApiError::too_large(plan.max_body_bytes));
        }
        // Hold the headers until the whole body is validated: nothing is
        // forwarded for a request that will be refused.
        self.body_pending = true;
        Action::Pause
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.body_pending {
            return Action::Continue;
        }
        self.body_size = body_size;
        let limit = self
            .loaded
            .as_ref()
            .map_or(usize::MAX, |(p, _)| p.max_body_bytes);
        if body_size > limit {
            return self.reject(&ApiError::too_large(limit));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.finish_request_body()
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.body_pending {
            return self.finish_request_body();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some((plan, _)), Some(m)) = (self.loaded.as_ref(), self.matched) else {
            return Action::Continue;
        };
        if plan.expose_headers {
            if let Some((id, v)) = Self::variant(plan, m) {
                let _ = hostcalls::set_map_value(
                    MapType::HttpResponseHeaders,
                    "x-llm-experiment",
                    Some(id),
                );
                let _ = hostcalls::set_map_value(
                    MapType::HttpResponseHeaders,
                    "x-llm-variant",
                    Some(&v.name),
                );
            }
        }
        Action::Continue
    }
}
