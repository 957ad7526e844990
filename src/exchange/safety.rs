//! Safety decisions of an experiment: a paused experiment or an open
//! breaker sends a treatment's users to control; every finished treatment
//! exchange feeds the health window, the breaker and the SLO check.

use super::{Exchange, Host, Matched};
use crate::config::Plan;
use crate::metrics::{MetricSink, Metrics};
use crate::record::Outcome;
use crate::route::{Assignment, Reason};
use crate::shared::SharedStore;
use crate::slo;

impl<H: Host> Exchange<H> {
    /// Applies the experiment's safety state to an assignment.
    /// Returns (served variant, reason, is a breaker probe).
    pub(super) fn safety(
        &self,
        plan: &Plan,
        metrics: &Metrics,
        a: Assignment<'_>,
        now_s: u64,
    ) -> (usize, Reason, bool) {
        let e = a.experiment;
        let control = e.layout.control();
        if a.variant_index == control {
            return (control, a.reason, false);
        }
        if slo::experiment_paused(&self.host, plan.config_hash, e) {
            metrics.set_paused(&self.host, a.experiment_index, true);
            return (control, Reason::Paused, false);
        }
        if let Some(b) = &e.breaker {
            let key = slo::breaker_key(plan.config_hash, &e.id, &a.variant.name);
            match b.admit(&self.host, &key, now_s) {
                slo::Admit::No => return (control, Reason::CircuitOpen, false),
                slo::Admit::Yes { probe } => return (a.variant_index, a.reason, probe),
            }
        }
        (a.variant_index, a.reason, false)
    }

    /// Feeds a finished exchange to the health window, the breaker and the
    /// SLO check of its experiment (`now_s`: the finish clock).
    pub(super) fn update_health(
        &self,
        plan: &Plan,
        metrics: &Metrics,
        m: Matched,
        outcome: Outcome,
        latency_ms: u64,
        now_s: u64,
    ) {
        let Some(e) = plan.experiments.get(m.experiment) else {
            return;
        };
        let window_s = e.window_s();
        if window_s == 0 || m.variant == e.layout.control() {
            return;
        }
        let Some(v) = e.variants.get(m.variant) else {
            return;
        };
        let host = &self.host;
        // A fallback means the treatment itself failed.
        let failed = outcome == Outcome::Error || self.fell_back;
        let wkey = slo::window_key(plan.config_hash, &e.id, &v.name);
        let sample = slo::Sample {
            error: failed,
            fallback: self.fell_back,
            schema: self.schema_pass,
            latency_ms,
        };
        // The window as written: the breaker and the SLO read it from here.
        let written = slo::record(host, &wkey, window_s, now_s, sample);
        if let Some(b) = &e.breaker {
            let window = written.summary(b.window_s, now_s);
            let key = slo::breaker_key(plan.config_hash, &e.id, &v.name);
            if b.report(host, &key, now_s, failed, m.probe, &window) {
                log::warn!(
                    "circuit breaker of {}/{} opened for {} s",
                    e.id,
                    v.name,
                    b.open_s
                );
            }
            metrics.set_circuit_open(
                host,
                m.experiment,
                m.variant,
                slo::is_open(host, &key, now_s),
            );
        }
        check_slo(host, plan, metrics, m.experiment, &v.name, &written, now_s);
    }
}

/// Checks experiment `experiment`'s SLO bounds on `written` (the health
/// window of its variant `variant` as just written) and pauses the
/// experiment on a breach.
pub(crate) fn check_slo<S: SharedStore + MetricSink>(
    host: &S,
    plan: &Plan,
    metrics: &Metrics,
    experiment: usize,
    variant: &str,
    written: &slo::Window,
    now_s: u64,
) {
    let Some(e) = plan.experiments.get(experiment) else {
        return;
    };
    let Some(s) = &e.slo else {
        return;
    };
    let window = written.summary(s.window_s, now_s);
    if let Some((bound, measured, limit)) = s.breach(&window) {
        if slo::pause(host, &slo::pause_key(plan.config_hash, &e.id)) {
            // Treatments serve nobody now (every VM's root context agrees
            // at its next tick).
            metrics.set_weights(
                host,
                experiment,
                &crate::route::served_shares(e, now_s, true),
            );
            log::warn!(
                "experiment {} paused: variant {variant} breached {bound} (measured {}, bound {}) over {} requests",
                e.id,
                thousandths(measured, false),
                thousandths(limit, true),
                window.requests
            );
        }
        metrics.set_paused(host, experiment, true);
    }
}

/// Feeds one shadow copy's answer to its variant's health window and the
/// SLO check while the rollout is in a shadow step: a breach pauses the
/// experiment, so the schedule's first exposed step exposes nobody.
pub(crate) fn shadow_health<S: SharedStore + MetricSink>(
    host: &S,
    plan: &Plan,
    metrics: &Metrics,
    experiment: usize,
    variant: usize,
    sample: slo::Sample,
    now_s: u64,
) {
    let Some(e) = plan.experiments.get(experiment) else {
        return;
    };
    let in_shadow_step = e
        .rollout
        .as_ref()
        .is_some_and(|r| r.shadow_ppm_at(now_s).is_some());
    let (Some(_), Some(v), true) = (&e.slo, e.variants.get(variant), in_shadow_step) else {
        return;
    };
    let wkey = slo::window_key(plan.config_hash, &e.id, &v.name);
    let written = slo::record(host, &wkey, e.window_s(), now_s, sample);
    check_slo(host, plan, metrics, experiment, &v.name, &written, now_s);
}

/// `x` to three decimals, as `{:.3}` writes a finite non-negative number
/// (`trim`: without trailing zeros), without `core::fmt`'s float
/// formatting: this log line was its only user in the module (~20 KB).
fn thousandths(x: f64, trim: bool) -> String {
    if !x.is_finite() || x < 0.0 {
        return String::from(if x.is_nan() {
            "NaN"
        } else if x < 0.0 {
            "negative"
        } else {
            "inf"
        });
    }
    let m = (x * 1000.0).round() as u64;
    let mut out = Vec::new();
    crate::json::push_decimal(&mut out, m / 1000);
    let frac = [
        b'0' + (m / 100 % 10) as u8,
        b'0' + (m / 10 % 10) as u8,
        b'0' + (m % 10) as u8,
    ];
    let mut len = frac.len();
    while trim && len > 0 && frac[len - 1] == b'0' {
        len -= 1;
    }
    if len > 0 {
        out.push(b'.');
        out.extend_from_slice(&frac[..len]);
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::thousandths;

    #[test]
    fn thousandths_writes_what_format_wrote() {
        for x in [
            0.0, 0.05, 0.1234, 0.9995, 1.0, 2.5, 150.0, 1234.5678, 0.0004, 0.0005,
        ] {
            assert_eq!(thousandths(x, false), format!("{x:.3}"), "{x}");
            let trimmed = format!("{x:.3}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string();
            assert_eq!(thousandths(x, true), trimmed, "{x}");
        }
    }
}
