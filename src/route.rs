//! Per-request routing decision: which experiment matches, which variant is
//! served and why, and which cluster the request goes to.
//!
//! Pure: request headers come in through the [`RequestHeaders`] trait, so the
//! same code runs in the filter and in native tests.

use crate::assign;
use crate::config::{Experiment, Plan, Variant};
use crate::unit_id::UnitId;

/// Read access to the request headers (names are lowercase).
pub trait RequestHeaders {
    /// The value of header `name`, if present.
    fn header(&self, name: &str) -> Option<String>;
}

/// Why a request got its variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Hashed from the sticky key.
    Hashed,
    /// Forced by the token-guarded override header.
    Forced,
    /// No sticky key header present: control, counted as unassigned.
    NoKey,
    /// Experiment disabled (kill switch): control.
    Killed,
    /// Experiment paused by an SLO breach: control.
    Paused,
    /// The variant's circuit breaker is open: control.
    CircuitOpen,
}

impl Reason {
    /// Every reason, for pre-defining per-reason metrics.
    pub const ALL: [Reason; 6] = [
        Reason::Paused,
        Reason::CircuitOpen,
        Reason::Hashed,
        Reason::Forced,
        Reason::NoKey,
        Reason::Killed,
    ];

    /// Stable lowercase name used in stats and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Hashed => "hashed",
            Reason::Forced => "forced",
            Reason::NoKey => "no_key",
            Reason::Killed => "killed",
            Reason::Paused => "paused",
            Reason::CircuitOpen => "circuit_open",
        }
    }
}

/// The outcome of assignment for a request an experiment matched.
#[derive(Debug, Clone, Copy)]
pub struct Assignment<'p> {
    /// Index of the experiment in the plan.
    pub experiment_index: usize,
    /// The experiment.
    pub experiment: &'p Experiment,
    /// Index of the variant in the experiment.
    pub variant_index: usize,
    /// The served variant.
    pub variant: &'p Variant,
    /// Why this variant.
    pub reason: Reason,
    /// The user's bucket, when a sticky key was present.
    pub bucket: Option<u16>,
    /// The sticky key's pseudonymous id, when the experiment has a
    /// `unit_id_key` and a sticky key was present.
    pub unit_id: Option<UnitId>,
}

/// The routing decision for one request.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'p> {
    /// Cluster written into the route header.
    pub cluster: &'p str,
    /// Set when an experiment matched.
    pub assignment: Option<Assignment<'p>>,
}

/// Whether a `content-type` value is JSON (`application/json`, `*/*+json`).
pub fn is_json_content_type(value: &str) -> bool {
    let media = value.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
        || media
            .get(media.len().saturating_sub(5)..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case("+json"))
}

/// Methods whose requests carry a body an experiment reads.
fn takes_body(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

impl Plan {
    /// Decides the route of a request given its path and headers.
    ///
    /// Only requests with a body (`POST`, `PUT`, `PATCH`) can match an
    /// experiment: everything else goes to `default_cluster` untouched.
    pub fn decide(&self, path: &str, headers: &dyn RequestHeaders) -> Decision<'_> {
        self.decide_at(path, headers, 0)
    }

    /// [`Plan::decide`] at time `now_s` (Unix seconds), for canary schedules.
    pub fn decide_at(&self, path: &str, headers: &dyn RequestHeaders, now_s: u64) -> Decision<'_> {
        let default = Decision {
            cluster: &self.default_cluster,
            assignment: None,
        };
        if self.experiments.is_empty() {
            return default;
        }
        // Only requests with a body can match: `GET /v1/chat/completions`
        // (stored completions) and the like go on untouched. The
        // content-type is not consulted: a body at a matched path is read
        // as JSON whatever it is declared as, so that no label can carry a
        // request past the experiment, redaction and guardrails.
        if headers.header(":method").is_some_and(|m| !takes_body(&m)) {
            return default;
        }
        let path = path.split('?').next().unwrap_or(path);
        let Some((experiment_index, experiment)) = self
            .experiments
            .iter()
            .enumerate()
            .find(|(_, e)| matches(e, path, headers))
        else {
            return default;
        };
        let (variant_index, reason, bucket, unit_id) = self.assign(experiment, headers, now_s);
        let variant = &experiment.variants[variant_index];
        Decision {
            cluster: &variant.cluster,
            assignment: Some(Assignment {
                experiment_index,
                experiment,
                variant_index,
                variant,
                reason,
                bucket,
                unit_id,
            }),
        }
    }

    fn assign(
        &self,
        e: &Experiment,
        headers: &dyn RequestHeaders,
        now_s: u64,
    ) -> (usize, Reason, Option<u16>, Option<UnitId>) {
        let control = e.layout.control();
        if !e.enabled {
            return (control, Reason::Killed, None, None);
        }
        if let Some(forced) = self.forced_variant(e, headers) {
            return (forced, Reason::Forced, None, None);
        }
        let key = e
            .sticky_keys
            .iter()
            .filter_map(|name| headers.header(name))
            .find(|v| !v.trim().is_empty());
        match key {
            None => (control, Reason::NoKey, None, None),
            Some(key) => {
                let bucket = assign::bucket(&e.salt, &key);
                let variant = e.layout.variant_at(bucket, canary_step(e, now_s));
                let unit_id = e.unit_key.as_ref().map(|k| k.unit_id(&key));
                (variant, Reason::Hashed, Some(bucket), unit_id)
            }
        }
    }

    fn forced_variant(&self, e: &Experiment, headers: &dyn RequestHeaders) -> Option<usize> {
        let o = self.override_.as_ref()?;
        let wanted = headers.header(&o.variant_header)?;
        let token = headers.header(&o.token_header)?;
        if !constant_time_eq(token.as_bytes(), o.token.as_bytes()) {
            return None;
        }
        e.variants.iter().position(|v| v.name == wanted.trim())
    }
}

/// The buckets every treatment of `e` owns at `now_s` under its `rollout`
/// (`None`: no schedule, the configured weights).
fn canary_step(e: &Experiment, now_s: u64) -> Option<u32> {
    e.rollout.as_ref().map(|r| r.buckets_at(now_s))
}

/// The buckets (of [`assign::BUCKETS`]) whose users each variant of `e`
/// serves at `now_s`, by variant index: the split the hash makes (through
/// [`assign::Layout::variant_at`], as assignment does), following the
/// `rollout`; every bucket is control's while the experiment is killed
/// (`enabled: false`) or `paused` by its SLO, since assignment then sends
/// every user to control. The circuit breaker is not part of it: it sends
/// one treatment's users to control for `open_s` at a time, and has its
/// own gauge.
pub fn served_shares(e: &Experiment, now_s: u64, paused: bool) -> Vec<u32> {
    let step = if !e.enabled || paused {
        Some(0)
    } else {
        canary_step(e, now_s)
    };
    e.layout.shares(e.variants.len(), step)
}

fn matches(e: &Experiment, path: &str, headers: &dyn RequestHeaders) -> bool {
    if let Some(prefix) = &e.path_prefix {
        if !path.starts_with(prefix.as_str()) {
            return false;
        }
    }
    e.match_headers
        .iter()
        .all(|(name, want)| headers.header(name).is_some_and(|v| &v == want))
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, &'static str>);

    impl RequestHeaders for Map {
        fn header(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| v.to_string())
        }
    }

    fn h(pairs: &[(&'static str, &'static str)]) -> Map {
        let mut m: HashMap<_, _> = pairs.iter().copied().collect();
        m.entry("content-type").or_insert("application/json");
        m.entry(":method").or_insert("POST");
        Map(m)
    }

    /// A `POST` from one user (`x-user-id`).
    struct User(String);

    impl RequestHeaders for User {
        fn header(&self, name: &str) -> Option<String> {
            match name {
                ":method" => Some("POST".to_string()),
                "x-user-id" => Some(self.0.clone()),
                _ => None,
            }
        }
    }

    fn plan(extra: &str) -> Plan {
        let json = format!(
            r#"{{"default_cluster": "default", {extra}
            "override": {{"variant_header": "x-force", "token_header": "x-token", "token": "s3cret-token"}},
            "experiments": [{{"id": "exp", "match": {{"path_prefix": "/v1/chat", "headers": {{"x-tenant": "acme"}}}},
              "sticky_keys": ["x-user-id", "x-org-id"],
              "variants": [{{"name": "control", "weight": 50, "cluster": "a"}},
                           {{"name": "treat", "weight": 50, "cluster": "b"}}]}}]}}"#
        );
        match load(json.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn unmatched_requests_go_to_the_default_cluster() {
        let p = plan("");
        let d = p.decide("/v1/embeddings", &h(&[("x-tenant", "acme")]));
        assert_eq!(d.cluster, "default");
        assert!(d.assignment.is_none());
        let d = p.decide("/v1/chat/completions", &h(&[("x-tenant", "other")]));
        assert!(d.assignment.is_none());
        let d = p.decide(
            "/v1/chat/completions",
            &Map([("x-tenant", "acme"), (":method", "GET")].into()),
        );
        assert!(d.assignment.is_none(), "a GET carries no body to read");
        for ct in ["text/plain", ""] {
            let d = p.decide(
                "/v1/chat/completions",
                &Map([
                    ("x-tenant", "acme"),
                    (":method", "POST"),
                    ("content-type", ct),
                ]
                .into()),
            );
            assert!(d.assignment.is_some(), "{ct:?}: no content-type bypass");
        }
    }

    #[test]
    fn sticky_key_hashes_deterministically() {
        let p = plan("");
        let headers = h(&[("x-tenant", "acme"), ("x-user-id", "user-42")]);
        let d = p.decide("/v1/chat/completions?x=1", &headers);
        let a = d
            .assignment
            .map(|a| (a.variant.name.clone(), a.reason, a.bucket));
        let expected_bucket = assign::bucket("exp", "user-42");
        let expected = if expected_bucket < 5000 {
            "treat"
        } else {
            "control"
        };
        assert_eq!(
            a,
            Some((expected.to_string(), Reason::Hashed, Some(expected_bucket)))
        );
    }

    #[test]
    fn later_sticky_keys_are_used_when_earlier_are_missing() {
        let p = plan("");
        let by_org = p.decide(
            "/v1/chat",
            &h(&[("x-tenant", "acme"), ("x-org-id", "o1"), ("x-user-id", " ")]),
        );
        assert_eq!(
            by_org.assignment.and_then(|a| a.bucket),
            Some(assign::bucket("exp", "o1"))
        );
    }

    #[test]
    fn a_unit_id_key_gives_the_sticky_key_a_pseudonymous_id() {
        let json = |key: &str| {
            format!(
                r#"{{"default_cluster": "a",
                "override": {{"variant_header": "x-force", "token_header": "x-token", "token": "s3cret-token"}},
                "experiments": [{{"id": "exp", "sticky_keys": ["x-user-id"], {key}
                  "variants": [{{"name": "control", "weight": 50, "cluster": "a"}},
                               {{"name": "treat", "weight": 50, "cluster": "b"}}]}}]}}"#
            )
        };
        let Ok(p) = load(json(r#""unit_id_key": "0123456789abcdef","#).as_bytes()) else {
            panic!("a 16-character key is valid");
        };
        let unit = |headers: &[(&'static str, &'static str)]| {
            p.decide("/v1/chat", &h(headers))
                .assignment
                .and_then(|a| a.unit_id)
        };
        // Python: hmac.new(b"0123456789abcdef", b"user-42", "sha256").hexdigest()[:16]
        assert_eq!(
            unit(&[("x-user-id", "user-42")])
                .map(UnitId::hex)
                .as_deref(),
            Some("101b5ab6a741733c")
        );
        assert_eq!(unit(&[]), None, "no sticky key, no unit");
        let forced = [
            ("x-user-id", "user-42"),
            ("x-force", "treat"),
            ("x-token", "s3cret-token"),
        ];
        assert_eq!(unit(&forced), None, "a forced request has no unit either");
        let Ok(without) = load(json("").as_bytes()) else {
            panic!("valid without a key");
        };
        let d = without.decide("/v1/chat", &h(&[("x-user-id", "user-42")]));
        assert_eq!(d.assignment.and_then(|a| a.unit_id), None);
        match load(json(r#""unit_id_key": "short-key","#).as_bytes()) {
            Ok(_) => panic!("a short key is refused"),
            Err(e) => {
                let text = e.to_string();
                assert!(
                    text.contains("experiments[0].unit_id_key: must be at least 16"),
                    "{text}"
                );
                assert!(
                    !text.contains("short-key"),
                    "the key is never shown: {text}"
                );
            }
        }
    }

    #[test]
    fn no_key_gets_control() {
        let p = plan("");
        let d = p.decide("/v1/chat", &h(&[("x-tenant", "acme")]));
        let a = d.assignment.map(|a| (a.variant.name.as_str(), a.reason));
        assert_eq!(a, Some(("control", Reason::NoKey)));
        assert_eq!(d.cluster, "a");
    }

    #[test]
    fn override_needs_the_right_token() {
        let p = plan("");
        let good = h(&[
            ("x-tenant", "acme"),
            ("x-user-id", "u"),
            ("x-force", "treat"),
            ("x-token", "s3cret-token"),
        ]);
        let d = p.decide("/v1/chat", &good);
        assert_eq!(d.assignment.map(|a| a.reason), Some(Reason::Forced));
        assert_eq!(d.cluster, "b");
        let bad = h(&[
            ("x-tenant", "acme"),
            ("x-user-id", "u"),
            ("x-force", "treat"),
            ("x-token", "s3cret-tokem"),
        ]);
        assert_eq!(
            p.decide("/v1/chat", &bad).assignment.map(|a| a.reason),
            Some(Reason::Hashed)
        );
        let unknown = h(&[
            ("x-tenant", "acme"),
            ("x-force", "nope"),
            ("x-token", "s3cret-token"),
        ]);
        assert_eq!(
            p.decide("/v1/chat", &unknown).assignment.map(|a| a.reason),
            Some(Reason::NoKey)
        );
    }

    #[test]
    fn kill_switch_sends_everyone_to_control() {
        let json = r#"{"default_cluster": "default", "experiments": [{"id": "exp", "enabled": false,
            "sticky_keys": ["x-user-id"], "variants": [{"name": "control", "weight": 0, "cluster": "a"},
            {"name": "treat", "weight": 100, "cluster": "b"}]}]}"#;
        let p = match load(json.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let d = p.decide("/", &h(&[("x-user-id", "u")]));
        assert_eq!(
            d.assignment.map(|a| (a.variant.name.as_str(), a.reason)),
            Some(("control", Reason::Killed))
        );
    }

    #[test]
    fn served_shares_are_the_split_assignment_makes() {
        // 10 % from 1000 s to 1060 s, then 40 %; three variants, control last.
        let json = r#"{"default_cluster": "default", "experiments": [{"id": "exp",
            "sticky_keys": ["x-user-id"], "control": "base",
            "rollout": {"start_unix_s": 1000, "steps": [{"weight": 10, "hold_s": 60}, {"weight": 40, "hold_s": 0}]},
            "variants": [{"name": "one", "weight": 25, "cluster": "b"},
            {"name": "two", "weight": 25, "cluster": "c"}, {"name": "base", "weight": 50, "cluster": "a"}]}]}"#;
        let p = match load(json.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let e = &p.experiments[0];
        assert_eq!(served_shares(e, 999, false), vec![0, 0, 10_000]);
        assert_eq!(served_shares(e, 1000, false), vec![1000, 1000, 8000]);
        assert_eq!(served_shares(e, 1060, false), vec![4000, 4000, 2000]);
        assert_eq!(served_shares(e, 1060, true), vec![0, 0, 10_000]);
        // User by user, the hash serves each variant its share of buckets.
        for now_s in [999, 1000, 1059, 1060, 5000] {
            let shares = served_shares(e, now_s, false);
            let mut by_bucket = [0u32; 3];
            for b in 0..10_000u16 {
                by_bucket[e.layout.variant_at(b, canary_step(e, now_s))] += 1;
            }
            assert_eq!(shares, by_bucket, "at {now_s}");
            for i in 0..300 {
                let user = User(format!("user-{i}"));
                let a = p
                    .decide_at("/", &user, now_s)
                    .assignment
                    .map(|a| (a.variant_index, a.bucket));
                let Some((v, Some(bucket))) = a else {
                    panic!("{} not hashed", user.0)
                };
                assert_eq!(e.layout.variant_at(bucket, canary_step(e, now_s)), v);
            }
        }
        // Without a schedule, the configured weights; killed, all control.
        let p = plan("");
        assert_eq!(served_shares(&p.experiments[0], 0, false), vec![5000, 5000]);
        let json = json.replace(r#""id": "exp","#, r#""id": "exp", "enabled": false,"#);
        let p = match load(json.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            served_shares(&p.experiments[0], 1060, false),
            vec![0, 0, 10_000]
        );
    }

    #[test]
    fn first_matching_experiment_wins() {
        let json = r#"{"default_cluster": "default", "experiments": [
            {"id": "one", "match": {"path_prefix": "/v1"}, "sticky_keys": ["x-user-id"], "variants": [{"name": "c", "weight": 100, "cluster": "a"}]},
            {"id": "two", "sticky_keys": ["x-user-id"], "variants": [{"name": "c", "weight": 100, "cluster": "b"}]}]}"#;
        let p = match load(json.as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            p.decide("/v1/x", &h(&[]))
                .assignment
                .map(|a| a.experiment.id.as_str()),
            Some("one")
        );
        assert_eq!(
            p.decide("/v2/x", &h(&[]))
                .assignment
                .map(|a| a.experiment.id.as_str()),
            Some("two")
        );
    }

    #[test]
    fn json_content_types() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(is_json_content_type("application/vnd.api+json"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("multipart/form-data; boundary=x"));
        assert!(!is_json_content_type(""));
        assert!(!is_json_content_type("é+json".get(..1).unwrap_or("")));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
        // Lengths that differ by a multiple of 256 are still unequal.
        assert!(!constant_time_eq(&[0u8; 256], b""));
    }
}
