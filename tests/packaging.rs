//! The Istio manifests and the Grafana dashboard shipped in `envoy/` are
//! well-formed, use only fields of their CRDs, and agree with the filter.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(unused_imports)] // the harness is shared; this file needs only the module path
mod support;

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
        "llm_ab_tokens_in_cached",
        "llm_ab_tokens_in_cache_write",
        "llm_ab_tokens_out",
        "llm_ab_tokens_reasoning",
        "llm_ab_unreadable_responses",
        "llm_ab_cost_micro_usd",
        "llm_ab_paused",
        "llm_ab_circuit_open",
        "llm_ab_rejected",
        "llm_ab_redactions",
        "llm_ab_schema_checks",
        "llm_ab_vm_memory_bytes",
        "llm_ab_variant_weight_bp",
        "llm_ab_shadow_calls",
        "llm_ab_shadow_skipped",
        "llm_ab_shadow_pairs",
        "llm_ab_shadow_cost_micro_usd",
        "llm_ab_shadow_latency_ms_bucket",
        "llm_ab_shadow_similarity_bucket",
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
        "llm_ab_circuit_open",
        "llm_ab_outcomes",
        "llm_ab_tokens_in_cached",
        "llm_ab_tokens_in_cache_write",
        "llm_ab_tokens_reasoning",
        "llm_ab_unreadable_responses",
        "llm_ab_variant_weight_bp",
        "llm_ab_shadow_pairs",
        "llm_ab_shadow_similarity_bucket",
    ] {
        assert!(used.contains(needed), "dashboard lacks {needed}");
    }
}

// Envoy's gzip filters around llm-ab (see the comments in envoy/envoy.yaml).
const DECOMPRESS_REQUEST: &str = "llm-ab.decompress-request";
const COMPRESS_RESPONSE: &str = "llm-ab.compress-response";
const DECOMPRESSOR: &str =
    "type.googleapis.com/envoy.extensions.filters.http.decompressor.v3.Decompressor";
const COMPRESSOR: &str =
    "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor";

fn hcm(cfg: &Value) -> &Value {
    &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

/// Whether a direction config's runtime flag is on by default (an absent
/// flag is on).
fn on_by_default(direction: &Value) -> bool {
    direction["common_config"]["enabled"]["default_value"]
        .as_bool()
        .unwrap_or(true)
}

/// llm-ab (`wasm`) reads plaintext: the request decompressor and the
/// compressor come before it (encoder filters run in reverse order, so the
/// compressor compresses what llm-ab produced), the router last; each works
/// in one direction only and none adds gzip to the upstream's
/// Accept-Encoding. No decompressor runs on responses: it would end bodies
/// with trailers, which Envoy 1.40 never delivers to a filter holding the
/// body, so responses llm-ab holds would hang.
fn assert_compression_around(filters: &[Value], wasm: &str, what: &str) {
    let names: Vec<&str> = filters
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let at = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{what}: no {n} in {names:?}"))
    };
    assert!(
        at(DECOMPRESS_REQUEST) < at(wasm) && at(COMPRESS_RESPONSE) < at(wasm),
        "{what}: {names:?}"
    );
    let decompressors = filters
        .iter()
        .filter(|f| f["typed_config"]["@type"] == DECOMPRESSOR)
        .count();
    assert_eq!(decompressors, 1, "{what}: only the request decompressor");
    assert_eq!(names.last(), Some(&"envoy.filters.http.router"), "{what}");
    let config = |n: &str| &filters[at(n)]["typed_config"];

    let d = config(DECOMPRESS_REQUEST);
    assert_eq!(d["@type"], DECOMPRESSOR, "{what}");
    assert!(on_by_default(&d["request_direction_config"]), "{what}");
    assert!(!on_by_default(&d["response_direction_config"]), "{what}");
    assert_eq!(
        d["request_direction_config"]["advertise_accept_encoding"], false,
        "{what}"
    );

    let c = config(COMPRESS_RESPONSE);
    assert_eq!(c["@type"], COMPRESSOR, "{what}");
    assert_eq!(
        c["compressor_library"]["typed_config"]["@type"],
        "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip"
    );
    assert!(!on_by_default(&c["request_direction_config"]), "{what}");
    assert!(on_by_default(&c["response_direction_config"]), "{what}");
    let types: Vec<&str> = c["response_direction_config"]["common_config"]["content_type"]
        .as_array()
        .expect("an explicit content_type list")
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(types.contains(&"application/json"), "{what}: {types:?}");
    assert!(
        !types.iter().any(|t| t.starts_with("text/event-stream")),
        "{what}: streams must keep their time to first token"
    );
}

#[test]
fn shipped_envoy_configs_keep_bodies_plaintext_for_the_filter() {
    for (path, wasm) in [
        ("envoy/envoy.yaml", "envoy.filters.http.wasm"),
        ("envoy/envoy-ecds.yaml", "llm-ab"),
        ("envoy/envoy-providers.yaml", "envoy.filters.http.wasm"),
    ] {
        let cfg = &documents(path)[0];
        let hcm = hcm(cfg);
        assert_compression_around(hcm["http_filters"].as_array().unwrap(), wasm, path);
        // The upstream is asked for identity; the compressor has read the
        // client's own Accept-Encoding before the router sets this.
        for vh in hcm["route_config"]["virtual_hosts"].as_array().unwrap() {
            for route in vh["routes"].as_array().unwrap() {
                let added = route["request_headers_to_add"].as_array();
                assert!(
                    added
                        .into_iter()
                        .flatten()
                        .any(|h| h["header"]["key"] == "accept-encoding"
                            && h["header"]["value"] == "identity"
                            && h["append_action"] == "OVERWRITE_IF_EXISTS_OR_ADD"),
                    "{path}: a route without accept-encoding: identity"
                );
            }
        }
    }
}

#[test]
fn istio_patches_put_the_same_compression_filters_around_the_wasm_plugin() {
    let docs = documents("envoy/istio/wasm-plugin.yaml");
    let wasm = docs
        .iter()
        .find(|d| {
            d["kind"] == "EnvoyFilter"
                && d["spec"]["configPatches"][0]["applyTo"] == "EXTENSION_CONFIG"
        })
        .expect("the stop-iteration patch")["spec"]["configPatches"][0]["patch"]["value"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let patch = docs
        .iter()
        .find(|d| d["kind"] == "EnvoyFilter" && d["metadata"]["name"] == "llm-ab-compression")
        .expect("the compression EnvoyFilter");
    assert_eq!(patch["apiVersion"], "networking.istio.io/v1alpha3");
    assert_eq!(
        patch["spec"]["workloadSelector"]["labels"]["app"],
        "llm-gateway"
    );
    let shipped = documents("envoy/envoy.yaml");
    let shipped_filters = hcm(&shipped[0])["http_filters"].as_array().unwrap();
    for context in ["SIDECAR_OUTBOUND", "GATEWAY"] {
        // The chain Istio generates around a STATS-phase WasmPlugin, patched.
        let mut chain = vec![
            serde_json::json!({"name": wasm}),
            serde_json::json!({"name": "istio.stats"}),
            serde_json::json!({"name": "envoy.filters.http.router"}),
        ];
        for p in patch["spec"]["configPatches"].as_array().unwrap() {
            only(p, &["applyTo", "match", "patch"], "configPatch");
            assert_eq!(p["applyTo"], "HTTP_FILTER");
            let m = &p["match"];
            assert!(["SIDECAR_OUTBOUND", "GATEWAY"].contains(&m["context"].as_str().unwrap()));
            if m["context"] != context {
                continue;
            }
            let f = &m["listener"]["filterChain"]["filter"];
            assert_eq!(f["name"], "envoy.filters.network.http_connection_manager");
            let i = chain
                .iter()
                .position(|c| c["name"] == f["subFilter"]["name"])
                .expect("patches are placed next to the WasmPlugin's filter");
            let value = p["patch"]["value"].clone();
            // The same filter as in envoy/envoy.yaml.
            assert!(
                shipped_filters.contains(&value),
                "{context}: {} differs from envoy/envoy.yaml",
                value["name"]
            );
            match p["patch"]["operation"].as_str().unwrap() {
                "INSERT_BEFORE" => chain.insert(i, value),
                "INSERT_AFTER" => chain.insert(i + 1, value),
                other => panic!("unexpected operation {other}"),
            }
        }
        assert_compression_around(&chain, &wasm, context);
    }

    // The VirtualService asks every provider for identity.
    for d in documents("envoy/istio/routing.yaml") {
        if d["kind"] != "VirtualService" {
            continue;
        }
        for route in d["spec"]["http"].as_array().unwrap() {
            assert_eq!(
                route["headers"]["request"]["set"]["accept-encoding"], "identity",
                "every route sets accept-encoding: identity"
            );
        }
    }
}

#[test]
fn istio_bootstrap_override_carries_the_shipped_stats_tags() {
    let docs = documents("envoy/istio/stats.yaml");
    assert_eq!(docs.len(), 1);
    let cm = &docs[0];
    assert_eq!(
        (&cm["apiVersion"], &cm["kind"]),
        (&"v1".into(), &"ConfigMap".into())
    );
    assert_eq!(cm["metadata"]["name"], "llm-ab-stats");
    only(&cm["data"], &["custom_bootstrap.json"], "ConfigMap data");
    let bootstrap: Value =
        serde_json::from_str(cm["data"]["custom_bootstrap.json"].as_str().unwrap()).unwrap();
    only(&bootstrap, &["stats_config"], "custom_bootstrap.json");
    only(
        &bootstrap["stats_config"],
        &["stats_tags"],
        "its stats_config",
    );
    let shipped = &documents("envoy/envoy.yaml")[0]["stats_config"]["stats_tags"];
    assert_eq!(&bootstrap["stats_config"]["stats_tags"], shipped);
    let text = std::fs::read_to_string(repo("envoy/istio/stats.yaml")).unwrap();
    assert!(text.contains("sidecar.istio.io/bootstrapOverride: llm-ab-stats"));
}

/// The names a wasm module exports (its export section, id 7).
fn wasm_exports(module: &[u8]) -> Vec<String> {
    fn leb(b: &[u8], at: &mut usize) -> usize {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let byte = b[*at];
            *at += 1;
            n |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return n;
            }
            shift += 7;
        }
    }
    assert_eq!(&module[..4], b"\0asm", "a wasm module");
    let mut at = 8;
    while at < module.len() {
        let id = module[at];
        at += 1;
        let size = leb(module, &mut at);
        let end = at + size;
        if id == 7 {
            let count = leb(module, &mut at);
            let mut names = Vec::new();
            for _ in 0..count {
                let len = leb(module, &mut at);
                names.push(String::from_utf8_lossy(&module[at..at + len]).into_owned());
                at += len;
                at += 1; // kind
                leb(module, &mut at); // index
            }
            return names;
        }
        at = end;
    }
    Vec::new()
}

/// The shipped module exports exactly the callbacks `src/host/exports.json`
/// keeps (the Makefile's wasm-metadce keeps nothing else), and each
/// callback the filter's ABI layer defines (`src/host/dispatch.rs`) is
/// among them: one it defines but does not export would silently never
/// run.
#[test]
fn the_module_exports_the_callbacks_the_filter_implements() {
    let module = std::fs::read(support::wasm_path()).expect("the built .wasm");
    let mut exported = wasm_exports(&module);
    exported.sort();
    let roots: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(repo("src/host/exports.json")).unwrap())
            .unwrap();
    let mut kept: Vec<String> = roots
        .iter()
        .map(|r| r["export"].as_str().unwrap().to_string())
        .collect();
    kept.sort();
    assert_eq!(exported, kept);
    let source = std::fs::read_to_string(repo("src/host/dispatch.rs")).unwrap();
    let defined = regex_lite::Regex::new(r#"pub extern "C" fn ([a-z_0-9]+)\("#).unwrap();
    let mut callbacks = 0;
    for m in defined.captures_iter(&source) {
        assert!(
            kept.iter().any(|k| k == &m[1]),
            "{} is defined but not exported",
            &m[1]
        );
        callbacks += 1;
    }
    assert_eq!(
        callbacks,
        kept.len() - 1,
        "every export but the memory is a callback"
    );
    for dropped in [
        "proxy_on_grpc_receive",
        "proxy_on_queue_ready",
        "proxy_on_downstream_data",
        // Nothing to do when a context is done: without the export,
        // Envoy takes it as done at once, one VM entry per request fewer.
        "proxy_on_done",
    ] {
        assert!(!exported.iter().any(|e| e == dropped), "{dropped} exported");
    }
}
