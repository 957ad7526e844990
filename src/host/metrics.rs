//! Envoy custom metrics of the routing layer, defined once per VM.
//!
//! Names carry their labels as segments (`experiment.<id>.variant.<name>…`);
//! the shipped `envoy.yaml` lifts them out as Prometheus labels with
//! `stats_tags`.

use crate::config::Plan;
use crate::route::Reason;
use crate::stats as names;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// Metric ids for one VM; `None` where the host refused a definition.
pub struct Metrics {
    /// `[experiment][variant][reason]` request counters.
    requests: Vec<Vec<Vec<Option<u32>>>>,
    /// `[experiment][variant][code]` local-reply counters.
    rejected: Vec<Vec<Vec<Option<u32>>>>,
    /// Requests no experiment matched.
    default_route: Option<u32>,
}

fn counter(name: &str) -> Option<u32> {
    match hostcalls::define_metric(MetricType::Counter, name) {
        Ok(id) => Some(id),
        Err(status) => {
            log::warn!("could not define metric {name}: {status:?}");
            None
        }
    }
}

impl Metrics {
    /// Defines every metric the plan can emit.
    pub fn define(plan: &Plan) -> Metrics {
        let per_variant = |f: &dyn Fn(&str, &str) -> Vec<Option<u32>>| {
            plan.experiments
                .iter()
                .map(|e| e.variants.iter().map(|v| f(&e.id, &v.name)).collect())
                .collect()
        };
        Metrics {
            requests: per_variant(&|e, v| {
                Reason::ALL
                    .iter()
                    .map(|r| counter(&names::requests(e, v, r.as_str())))
                    .collect()
            }),
            rejected: per_variant(&|e, v| {
                names::REJECT_CODES
                    .iter()
                    .map(|c| counter(&names::rejected(e, v, c)))
                    .collect()
            }),
            default_route: counter(names::DEFAULT_ROUTE_REQUESTS),
        }
    }

    /// Counts a request assigned to `variant` of `experiment` for `reason`.
    pub fn count_request(&self, experiment: usize, variant: usize, reason: Reason) {
        let r = Reason::ALL.iter().position(|x| *x == reason);
        let id = r.and_then(|r| {
            self.requests
                .get(experiment)?
                .get(variant)?
                .get(r)
                .copied()?
        });
        bump(id);
    }

    /// Counts a request the filter answered itself with `code`.
    pub fn count_rejected(&self, experiment: usize, variant: usize, code: &str) {
        let c = names::REJECT_CODES.iter().position(|x| *x == code);
        let id = c.and_then(|c| {
            self.rejected
                .get(experiment)?
                .get(variant)?
                .get(c)
                .copied()?
        });
        bump(id);
    }

    /// Counts a request that matched no experiment.
    pub fn count_default_route(&self) {
        bump(self.default_route);
    }
}

fn bump(id: Option<u32>) {
    if let Some(id) = id {
        let _ = hostcalls::increment_metric(id, 1);
    }
}
