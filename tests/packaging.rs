//! The Istio manifests and the Grafana dashboard shipped in `envoy/` are
//! well-formed, use only fields of their CRDs, and agree with the filter.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde::Deserialize;
use serde_json::Value;
use std::collections::HashSet;

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let v = serde_yaml::Value::deserialize(doc).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .collect()
}

fn keys(v: &Value) -> HashSet<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn only(v: &Value, allowed: &[&str], what: &str) {
    for k in keys(v) {
        assert!(allowed.contains(&k), "{what}: unknown field {k:?}");
    }
}

#[test]
fn wasm_plugin_matches_its_crd_and_carries_a_valid_filter_config() {
    let docs = documents("envoy/istio/wasm-plugin.yaml");
    let plugin = docs
        .iter()
        .find(|d| d["kind"] == "WasmPlugin")
        .expect("a WasmPlugin");
    assert_eq!(plugin["apiVersion"], "extensions.istio.io/v1alpha1");
    let spec = &plugin["spec"];
    only(
        spec,
        &[
            "selector",
            "targetRef",
            "targetRefs",
            "url",
            "sha256",
            "imagePullPolicy",
            "imagePullSecret",
            "pluginConfig",
            "pluginName",
            "phase",
            "priority",
            "failStrategy",
            "vmConfig",
            "match",
            "type",
        ],
        "WasmPlugin.spec",
    );
    let url = spec["url"].as_str().unwrap();
    assert!(["oci://", "https://", "http://", "file://"]
        .iter()
        .any(|p| url.starts_with(p)));
    assert!(
        ["AUTHN", "AUTHZ", "STATS", "UNSPECIFIED_PHASE"].contains(&spec["phase"].as_str().unwrap())
    );
    assert!(["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"]
        .contains(&spec["failStrategy"].as_str().unwrap()));
    assert!(["IfNotPresent", "Always", "UNSPECIFIED_POLICY"]
        .contains(&spec["imagePullPolicy"].as_str().unwrap()));
    // The pluginConfig is the filter configuration: the filter must accept it.
    let config = serde_json::to_vec(&spec["pluginConfig"]).unwrap();
    if let Err(e) = llm_ab::config::load(&config) {
        panic!("pluginConfig refused by the filter: {e}");
    }
    let patch = docs
        .iter()
        .find(|d| d["kind"] == "EnvoyFilter")
        .expect("the stop-iteration patch");
    assert_eq!(patch["apiVersion"], "networking.istio.io/v1alpha3");
    let p = &patch["spec"]["configPatches"][0];
    assert_eq!(p["applyTo"], "EXTENSION_CONFIG");
    assert_eq!(
        p["patch"]["value"]["typed_config"]["config"]["allow_on_headers_stop_iteration"],
        true
    );
}

#[test]
fn routing_manifests_match_their_crds_and_the_filter_clusters() {
    let docs = documents("envoy/istio/routing.yaml");
    let plugin = &documents("envoy/istio/wasm-plugin.yaml")[0];
    let clusters: HashSet<String> = plugin["spec"]["pluginConfig"]["experiments"][0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["cluster"].as_str().unwrap().to_string())
        .collect();
    let mut hosts = HashSet::new();
    for d in &docs {
        assert_eq!(d["apiVersion"], "networking.istio.io/v1beta1");
        match d["kind"].as_str().unwrap() {
            "ServiceEntry" => {
                only(
                    &d["spec"],
                    &[
                        "hosts",
                        "addresses",
                        "ports",
                        "location",
                        "resolution",
                        "endpoints",
                        "exportTo",
                        "subjectAltNames",
                        "workloadSelector",
                    ],
                    "ServiceEntry.spec",
                );
                assert!(["MESH_EXTERNAL", "MESH_INTERNAL"]
                    .contains(&d["spec"]["location"].as_str().unwrap()));
                assert!(["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"]
                    .contains(&d["spec"]["resolution"].as_str().unwrap()));
                for h in d["spec"]["hosts"].as_array().unwrap() {
                    hosts.insert(h.as_str().unwrap().to_string());
                }
            }
            "VirtualService" => {
                only(
                    &d["spec"],
                    &["hosts", "gateways", "http", "tls", "tcp", "exportTo"],
                    "VirtualService.spec",
                );
                for route in d["spec"]["http"].as_array().unwrap() {
                    only(
                        route,
                        &[
                            "name",
                            "match",
                            "route",
                            "redirect",
                            "rewrite",
                            "timeout",
                            "retries",
                            "fault",
                            "mirror",
                            "headers",
                            "corsPolicy",
                        ],
                        "HTTPRoute",
                    );
                    for m in route["match"].as_array().into_iter().flatten() {
                        for (header, _) in m["headers"].as_object().into_iter().flatten() {
                            assert_eq!(
                                header, "x-llm-cluster",
                                "routes follow the filter's header"
                            );
                        }
                        let wanted = &m["headers"]["x-llm-cluster"]["exact"];
                        assert!(
                            clusters.contains(wanted.as_str().unwrap()),
                            "{wanted} is a variant cluster"
                        );
                    }
                }
            }
            other => panic!("unexpected kind {other}"),
        }
    }
    for c in clusters {
        let host = c.rsplit("||").next().unwrap();
        assert!(hosts.contains(host), "no ServiceEntry for {host}");
    }
}

#[test]
fn grafana_dashboard_queries_metrics_the_filter_exports() {
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("envoy/grafana/llm-ab-dashboard.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dash["uid"], "llm-ab");
    let exported = [
        "llm_ab_requests",
        "llm_ab_outcomes",
        "llm_ab_latency_ms_bucket",
        "llm_ab_ttft_ms_bucket",
        "llm_ab_tokens_in",
        "llm_ab_tokens_out",
        "llm_ab_cost_micro_usd",
        "llm_ab_paused",
        "llm_ab_circuit_open",
        "llm_ab_rejected",
        "llm_ab_redactions",
        "llm_ab_schema_checks",
        "llm_ab_vm_memory_bytes",
    ];
    let metric = regex_lite::Regex::new(r"llm_ab_[a-z_]+").unwrap();
    let mut used = HashSet::new();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            for m in metric.find_iter(t["expr"].as_str().unwrap()) {
                assert!(
                    exported.contains(&m.as_str()),
                    "{} queries unknown metric {}",
                    p["title"],
                    m.as_str()
                );
                used.insert(m.as_str().to_string());
            }
        }
    }
    for needed in [
        "llm_ab_latency_ms_bucket",
        "llm_ab_cost_micro_usd",
        "llm_ab_paused",
        "llm_ab_outcomes",
    ] {
        assert!(used.contains(needed), "dashboard lacks {needed}");
    }
}
