//! A different provider per variant, for real: the shipped
//! `envoy/envoy-providers.yaml` (ports, CA and secret file paths replaced)
//! in front of local TLS providers that behave like api.openai.com and
//! api.anthropic.com where it matters here.
//!
//! The test makes a CA and one server certificate per provider host with
//! the `openssl` CLI, and writes each provider's key into an SDS file the
//! gateway's cluster reads. The providers are a second Envoy terminating
//! TLS (one filter chain per SNI name, each with its host's certificate)
//! that answers a wrong Host with 421 and a request without that provider's
//! key with 401 in the provider's error shape, and otherwise forwards to a
//! mock backend, adding the SNI it saw; the mocks record exactly which
//! headers arrived. Clients are the official `openai` and `anthropic` SDKs
//! (`tests/sdk/providers.py`) with the apps' own keys.

// Test code: failing loudly on a broken harness is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Envoy, MockBackend};

const OPENAI_HOST: &str = "api.openai.test";
const ANTHROPIC_HOST: &str = "api.anthropic.test";
/// The keys the gateway's clusters inject, from the SDS files written here.
const OPENAI_KEY: &str = "sk-injected-openai-7f3a";
const ANTHROPIC_KEY: &str = "sk-ant-injected-anthropic-9c1e";
/// The apps' own keys (`tests/sdk/providers.py`).
const CLIENT_OPENAI_KEY: &str = "sk-client-openai-app-0001";
const CLIENT_ANTHROPIC_KEY: &str = "sk-ant-client-app-0002";
/// The Azure-style key header a client may send as well.
const CLIENT_AZURE_KEY: &str = "client-azure-key-0003";
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-api-key", "api-key"];
/// The upstream filter of each example cluster that drops client credentials.
const DROP_FILTER: &str = "llm-ab.drop-client-credentials";

/// Runs `openssl` in `dir`; fails the test when it is missing or fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (make test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA, a certificate per provider host, and the SDS secret files.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = support::scratch_dir();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let mut ca = vec!["req", "-x509", "-nodes", "-days", "2"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=llm-ab test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&dir, &ca);
        for host in [OPENAI_HOST, ANTHROPIC_HOST] {
            let (key, csr, pem, ext) = (
                format!("{host}.key"),
                format!("{host}.csr"),
                format!("{host}.pem"),
                format!("{host}.ext"),
            );
            let subject = format!("/CN={host}");
            let mut req = vec!["req", "-nodes"];
            req.extend(ec);
            req.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
            openssl(&dir, &req);
            fs::write(
                dir.join(&ext),
                format!(
                    "subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\n\
                     keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                ),
            )
            .unwrap();
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                    "-out",
                    &pem,
                ],
            );
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    fn ca(&self) -> String {
        self.path("ca.pem")
    }

    /// (certificate chain, private key) of `host`.
    fn cert(&self, host: &str) -> (String, String) {
        (
            self.path(&format!("{host}.pem")),
            self.path(&format!("{host}.key")),
        )
    }

    /// Writes the SDS file of generic secret `name` holding `key`, as the
    /// example's comments say, and returns its path.
    fn secret(&self, name: &str, key: &str) -> String {
        let file = json!({"resources": [{
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
            "name": name,
            "generic_secret": {"secret": {"inline_string": key}}
        }]});
        let path = self.path(&format!("{name}.yaml"));
        fs::write(&path, serde_yaml::to_string(&file).unwrap()).unwrap();
        path
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A filter chain of the provider Envoy: TLS for `host` (with `cert`), the
/// Host checked (421), the key checked (401 with `error_body`), then the
/// request forwarded to `mock` with the SNI and protocol it came with.
fn provider_chain(host: &str, cert: (String, String), key: (&str, String), mock: &str) -> Value {
    let (header, value) = key;
    let error_body = if host == OPENAI_HOST {
        json!({"error": {
            "message": "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
    } else {
        json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}})
    };
    let set = |k: &str, v: &str| json!({"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"});
    json!({
        "filter_chain_match": {"server_names": [host]},
        "transport_socket": {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "common_tls_context": {
                    "alpn_protocols": ["h2", "http/1.1"],
                    "tls_certificates": [{
                        "certificate_chain": {"filename": cert.0},
                        "private_key": {"filename": cert.1}
                    }]
                }
            }
        },
        "filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": host,
                "codec_type": "AUTO",
                "route_config": {"virtual_hosts": [
                    {"name": host, "domains": [host], "routes": [
                        {"match": {"prefix": "/", "headers": [
                            {"name": header, "string_match": {"exact": value}}]},
                         "route": {"cluster": mock, "timeout": "30s"},
                         "request_headers_to_add": [
                            set("x-provider-sni", "%REQUESTED_SERVER_NAME%"),
                            set("x-provider-protocol", "%PROTOCOL%")]},
                        {"match": {"prefix": "/"},
                         "direct_response": {"status": 401, "body": {"inline_string": error_body.to_string()}},
                         "response_headers_to_add": [set("content-type", "application/json")]}
                    ]},
                    {"name": "misdirected", "domains": ["*"], "routes": [
                        {"match": {"prefix": "/"},
                         "direct_response": {"status": 421, "body": {"inline_string": "misdirected request"}}}
                    ]}
                ]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]
    })
}

/// The two providers on one TLS port (the SNI picks the chain), each in
/// front of its mock. With `swap_certs`, each name serves the other's
/// certificate.
fn start_providers(pki: &Pki, swap_certs: bool) -> (Envoy, MockBackend, MockBackend) {
    let openai = MockBackend::start("openai-provider", 0).expect("mock");
    let anthropic = MockBackend::start("anthropic-provider", 0).expect("mock");
    let (mut openai_cert, mut anthropic_cert) = (pki.cert(OPENAI_HOST), pki.cert(ANTHROPIC_HOST));
    if swap_certs {
        std::mem::swap(&mut openai_cert, &mut anthropic_cert);
    }
    let cfg = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "providers",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "listener_filters": [{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}],
                "filter_chains": [
                    provider_chain(OPENAI_HOST, openai_cert,
                        ("authorization", format!("Bearer {OPENAI_KEY}")), "openai_mock"),
                    provider_chain(ANTHROPIC_HOST, anthropic_cert,
                        ("x-api-key", ANTHROPIC_KEY.to_string()), "anthropic_mock")
                ]
            }],
            "clusters": [
                support::cluster("openai_mock", openai.port()),
                support::cluster("anthropic_mock", anthropic.port())
            ]
        }
    });
    let envoy = Envoy::start_raw(cfg, support::scratch_dir());
    (envoy, openai, anthropic)
}

/// The shipped example as JSON.
fn example() -> Value {
    let text = fs::read_to_string(support::repo().join("envoy/envoy-providers.yaml"))
        .expect("envoy/envoy-providers.yaml");
    serde_yaml::from_str(&text).expect("envoy-providers.yaml parses")
}

fn hcm(cfg: &mut Value) -> &mut Value {
    &mut cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
}

fn named<'a>(list: &'a mut Value, name: &str) -> &'a mut Value {
    list.as_array_mut()
        .and_then(|l| l.iter_mut().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("nothing named {name}"))
}

/// The wasm filter's `PluginConfig`.
fn plugin(cfg: &mut Value) -> &mut Value {
    &mut named(&mut hcm(cfg)["http_filters"], support::WASM_FILTER)["typed_config"]["config"]
}

/// The example's filter configuration.
fn filter_config(cfg: &mut Value) -> Value {
    serde_json::from_str(plugin(cfg)["configuration"]["value"].as_str().unwrap()).unwrap()
}

fn upstream_filters(cluster: &mut Value) -> &mut Value {
    &mut cluster["typed_extension_protocol_options"]
        ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["http_filters"]
}

/// The example, re-pointed: the providers' TLS port, the test CA, the SDS
/// files holding the injected keys, the access log in `dir`, the built
/// `.wasm`.
fn gateway_config(pki: &Pki, provider_port: u16, dir: &Path) -> Value {
    let mut cfg = example();
    hcm(&mut cfg)["access_log"][0]["typed_config"]["path"] =
        json!(dir.join("access.log").to_string_lossy());
    plugin(&mut cfg)["vm_config"]["code"]["local"]["filename"] =
        json!(support::wasm_path().to_string_lossy());
    for cluster in cfg["static_resources"]["clusters"].as_array_mut().unwrap() {
        cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"]["port_value"] = json!(provider_port);
        cluster["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]
            ["trusted_ca"]["filename"] = json!(pki.ca());
        let injector = named(
            upstream_filters(cluster),
            "envoy.filters.http.credential_injector",
        );
        let secret = &mut injector["typed_config"]["credential"]["typed_config"]["credential"];
        let key = match secret["name"].as_str().unwrap() {
            "openai-key" => OPENAI_KEY,
            "anthropic-key" => ANTHROPIC_KEY,
            other => panic!("unexpected secret {other}"),
        };
        secret["sds_config"]["path_config_source"]["path"] =
            json!(pki.secret(secret["name"].as_str().unwrap(), key));
    }
    cfg
}

/// The gateway, the providers behind it, and what each provider received.
struct Rig {
    gateway: Envoy,
    _providers: Envoy,
    openai: MockBackend,
    anthropic: MockBackend,
    config: String,
    _pki: Pki,
}

/// Starts the providers and the gateway from the example, with `adjust`
/// applied to the gateway's bootstrap.
fn rig_with(swap_certs: bool, adjust: impl FnOnce(&mut Value)) -> Rig {
    let pki = Pki::new();
    let (providers, openai, anthropic) = start_providers(&pki, swap_certs);
    let dir = support::scratch_dir();
    let mut cfg = gateway_config(&pki, providers.port, &dir);
    adjust(&mut cfg);
    let config = plugin(&mut cfg)["configuration"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let gateway = Envoy::start_raw(cfg, dir);
    Rig {
        gateway,
        _providers: providers,
        openai,
        anthropic,
        config,
        _pki: pki,
    }
}

fn rig(adjust: impl FnOnce(&mut Value)) -> Rig {
    rig_with(false, adjust)
}

/// Without the clusters' own credential scrub: only the filter removes the
/// client's keys.
fn without_drop_filters(cfg: &mut Value) {
    for cluster in cfg["static_resources"]["clusters"].as_array_mut().unwrap() {
        let filters = upstream_filters(cluster).as_array_mut().unwrap();
        let before = filters.len();
        filters.retain(|f| f["name"] != DROP_FILTER);
        assert_eq!(filters.len(), before - 1, "{DROP_FILTER} in each cluster");
    }
}

impl Rig {
    /// A user the filter assigns to `variant` of the chat experiment.
    fn user_for(&self, variant: &str) -> String {
        (0..10_000)
            .map(|i| format!("user-{i}"))
            .find(|u| support::expected_variant(&self.config, &[("x-user-id", u)]) == variant)
            .unwrap_or_else(|| panic!("no user lands in {variant}"))
    }

    fn run(&self, other: Option<&str>, scenarios: &[&str]) -> HashMap<String, Value> {
        let port = self.gateway.port.to_string();
        let (gpt, claude) = (self.user_for("gpt"), self.user_for("claude"));
        let mut args = vec![
            "--port",
            &port,
            "--user-gpt",
            &gpt,
            "--user-claude",
            &claude,
        ];
        if let Some(u) = other {
            args.extend(["--user-other", u]);
        }
        support::run_driver("providers.py", &args, scenarios)
    }

    /// A chat request with all three client credential headers, as `user`.
    fn raw_chat(&self, user: &str) -> support::Response {
        self.gateway.chat(
            &[
                ("x-user-id", user),
                ("authorization", &format!("Bearer {CLIENT_OPENAI_KEY}")),
                ("x-api-key", CLIENT_ANTHROPIC_KEY),
                ("api-key", CLIENT_AZURE_KEY),
            ],
            r#"{"model":"app","messages":[{"role":"user","content":"hi"}]}"#,
        )
    }

    /// A Messages request with all three client credential headers.
    fn raw_messages(&self) -> support::Response {
        support::send(
            self.gateway.port,
            "POST",
            "/v1/messages",
            &[
                ("content-type", "application/json"),
                ("anthropic-version", "2023-06-01"),
                ("x-user-id", "raw-user"),
                ("authorization", &format!("Bearer {CLIENT_OPENAI_KEY}")),
                ("x-api-key", CLIENT_ANTHROPIC_KEY),
                ("api-key", CLIENT_AZURE_KEY),
            ],
            br#"{"model":"app","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .expect("request through the gateway")
    }
}

/// Every request `mock` received came over TLS with `host` as SNI and Host,
/// and carried `header: value` once and no other credential header; no
/// header holds a client's key or the other provider's. Returns how many.
fn assert_only_injected(mock: &MockBackend, host: &str, header: &str, value: &str) -> usize {
    let foreign = [
        CLIENT_OPENAI_KEY,
        CLIENT_ANTHROPIC_KEY,
        CLIENT_AZURE_KEY,
        if host == OPENAI_HOST {
            ANTHROPIC_KEY
        } else {
            OPENAI_KEY
        },
    ];
    let requests = mock.requests();
    for r in &requests {
        let what = format!("{host} {} {:?}", r.path, r.headers);
        assert_eq!(r.header("host"), Some(host), "Host: {what}");
        assert_eq!(r.header("x-provider-sni"), Some(host), "SNI: {what}");
        let own: Vec<_> = r.headers.iter().filter(|(k, _)| k == header).collect();
        assert_eq!(own.len(), 1, "one {header}: {what}");
        assert_eq!(own[0].1, value, "{what}");
        for other in CREDENTIAL_HEADERS.iter().filter(|h| **h != header) {
            assert!(r.header(other).is_none(), "{other} reached {what}");
        }
        for (k, v) in &r.headers {
            for f in foreign {
                assert!(!v.contains(f), "{k} carries a foreign key: {what}");
            }
        }
    }
    requests.len()
}

/// No request `mock` saw carries the gateway's own `x-llm-*` headers.
fn assert_no_gateway_headers(mock: &MockBackend) {
    for r in mock.requests() {
        let ours: Vec<_> = r
            .headers
            .iter()
            .filter(|(k, _)| k.starts_with("x-llm-"))
            .collect();
        assert!(ours.is_empty(), "{} got {ours:?}", r.path);
    }
}

fn assert_openai_only(rig: &Rig) -> usize {
    assert_only_injected(
        &rig.openai,
        OPENAI_HOST,
        "authorization",
        &format!("Bearer {OPENAI_KEY}"),
    )
}

fn assert_anthropic_only(rig: &Rig) -> usize {
    assert_only_injected(&rig.anthropic, ANTHROPIC_HOST, "x-api-key", ANTHROPIC_KEY)
}

/// The one record of the requests of scenario `seen`.
fn record(envoy: &Envoy, seen: &Value) -> Value {
    let found = support::records_of_trace(envoy, seen["trace_id"].as_str().expect("trace id"));
    assert_eq!(found.len(), 1, "one record for {seen}: {found:?}");
    found[0].clone()
}

#[test]
fn each_sdk_reaches_each_provider_with_that_providers_injected_key_only() {
    let rig = rig(|_| {});
    let seen = rig.run(
        None,
        &["chat_gpt", "chat_claude", "chat_claude_stream", "messages"],
    );

    let g = &seen["chat_gpt"];
    assert_eq!(
        (g["text"].as_str(), g["variant"].as_str()),
        (
            Some("Hello from openai-provider running gpt-4.1-mini."),
            Some("gpt")
        ),
        "{g}"
    );
    let c = &seen["chat_claude"];
    assert_eq!(
        (c["text"].as_str(), c["variant"].as_str()),
        (
            Some("Hello from anthropic-provider running claude-sonnet-4-5."),
            Some("claude")
        ),
        "{c}"
    );
    let s = &seen["chat_claude_stream"];
    assert_eq!(
        s["text"], "Hello from anthropic-provider running claude-sonnet-4-5.",
        "{s}"
    );
    let m = &seen["messages"];
    assert!(
        m["text"]
            .as_str()
            .unwrap()
            .starts_with("Hello from anthropic-provider running claude-"),
        "{m}"
    );
    assert!(
        ["sonnet", "haiku"].contains(&m["variant"].as_str().unwrap()),
        "{m}"
    );
    assert_eq!(record(&rig.gateway, g)["served_variant"], "gpt");
    assert_eq!(record(&rig.gateway, c)["served_variant"], "claude");

    // Raw requests carrying every credential header a client may send.
    let gpt = rig.user_for("gpt");
    let claude = rig.user_for("claude");
    assert_eq!(rig.raw_chat(&gpt).status, 200);
    assert_eq!(rig.raw_chat(&claude).status, 200);
    let r = rig.raw_messages();
    assert_eq!(r.status, 200, "{}", r.text());

    assert_eq!(assert_openai_only(&rig), 2, "chat_gpt and the raw one");
    assert_eq!(
        assert_anthropic_only(&rig),
        5,
        "two chats, a stream, two Messages calls"
    );
    assert_no_gateway_headers(&rig.openai);
    assert_no_gateway_headers(&rig.anthropic);
    // HTTP/2 by ALPN to the providers (auto_config).
    for r in rig
        .openai
        .requests()
        .iter()
        .chain(&rig.anthropic.requests())
    {
        assert_eq!(r.header("x-provider-protocol"), Some("HTTP/2"), "{r:?}");
    }
    // The Messages calls kept their API version header.
    for r in rig.anthropic.requests() {
        if r.path == "/v1/messages" {
            assert!(r.header("anthropic-version").is_some(), "{r:?}");
        }
    }
}

/// The example's clusters drop client credentials themselves; without
/// that, the filter alone keeps them from injected variants (routed and
/// fallback calls).
#[test]
fn the_filter_itself_strips_client_keys_for_injected_variants() {
    let rig = rig(without_drop_filters);
    let seen = rig.run(None, &["chat_gpt", "chat_claude", "messages"]);
    assert_eq!(seen["chat_gpt"]["variant"], "gpt");
    assert_eq!(seen["chat_claude"]["variant"], "claude");
    let gpt = rig.user_for("gpt");
    let claude = rig.user_for("claude");
    assert_eq!(rig.raw_chat(&gpt).status, 200);
    assert_eq!(rig.raw_chat(&claude).status, 200);
    assert_eq!(rig.raw_messages().status, 200);
    // A fallback call to control must not repeat them either.
    rig.anthropic.set_behavior(failing());
    let r = rig.raw_chat(&claude);
    assert_eq!(
        (r.status, r.header("x-llm-variant")),
        (200, Some("gpt")),
        "{}",
        r.text()
    );
    assert_eq!(assert_openai_only(&rig), 3);
    assert_eq!(assert_anthropic_only(&rig), 5);
}

fn failing() -> llm_ab_mock::Behavior {
    llm_ab_mock::Behavior {
        fail_rate: 1.0,
        fail_status: 500,
        ..Default::default()
    }
}

/// A variant without `credentials: injected` (a self-hosted model behind
/// a plain cluster) gets the client's own key, as before.
#[test]
fn a_variant_with_client_credentials_gets_the_clients_key() {
    let local = MockBackend::start("self-hosted", 0).expect("mock");
    let port = local.port();
    let rig = rig(|cfg| {
        let mut fc = filter_config(cfg);
        let variants = fc["experiments"][0]["variants"].as_array_mut().unwrap();
        variants[0]["weight"] = json!(40);
        variants[1]["weight"] = json!(30);
        variants.push(json!({"name": "local", "weight": 30, "cluster": "self_hosted", "model": "llama-3.3-70b"}));
        plugin(cfg)["configuration"]["value"] = json!(fc.to_string());
        cfg["static_resources"]["clusters"]
            .as_array_mut()
            .unwrap()
            .push(support::cluster("self_hosted", port));
    });
    let user = rig.user_for("local");
    let seen = rig.run(Some(&user), &["chat_other", "chat_gpt"]);
    let o = &seen["chat_other"];
    assert_eq!(
        (o["text"].as_str(), o["variant"].as_str()),
        (
            Some("Hello from self-hosted running llama-3.3-70b."),
            Some("local")
        ),
        "{o}"
    );
    let r = rig.raw_chat(&user);
    assert_eq!(r.status, 200);
    let got = local.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].header("authorization"),
        Some(format!("Bearer {CLIENT_OPENAI_KEY}").as_str()),
        "the SDK's key: {:?}",
        got[0].headers
    );
    assert_eq!(
        (got[1].header("x-api-key"), got[1].header("api-key")),
        (Some(CLIENT_ANTHROPIC_KEY), Some(CLIENT_AZURE_KEY)),
        "{:?}",
        got[1].headers
    );
    // The injected variant beside it still gets only its own key.
    assert_eq!(seen["chat_gpt"]["variant"], "gpt");
    assert_eq!(assert_openai_only(&rig), 1);
}

/// Claude's provider fails with a 5xx: the filter's fallback call (a
/// `dispatch_http_call` to control's cluster, not a routed request) reaches
/// OpenAI with OpenAI's Host, SNI and injected key: the cluster's upstream
/// filters run for it too.
#[test]
fn a_fallback_reaches_controls_provider_with_controls_injected_key() {
    let rig = rig(|_| {});
    rig.anthropic.set_behavior(failing());
    let seen = rig.run(None, &["chat_claude"]);
    let c = &seen["chat_claude"];
    assert_eq!(
        (c["text"].as_str(), c["variant"].as_str()),
        (
            Some("Hello from openai-provider running gpt-4.1-mini."),
            Some("gpt")
        ),
        "{c}"
    );
    let r = record(&rig.gateway, c);
    assert_eq!(
        (
            r["assigned_variant"].as_str(),
            r["served_variant"].as_str(),
            r["outcome"].as_str()
        ),
        (Some("claude"), Some("gpt"), Some("fallback")),
        "{r}"
    );
    assert_eq!(assert_anthropic_only(&rig), 1, "the failed call");
    assert_eq!(assert_openai_only(&rig), 1, "the fallback call");
    let sent = &rig.openai.requests()[0];
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["model"], "gpt-4.1-mini");
}

/// The clusters check the provider's certificate names the provider: a
/// certificate the same CA signed for the other host is refused, and
/// nothing reaches either provider.
#[test]
fn a_provider_certificate_for_another_name_is_refused() {
    let rig = rig_with(true, |_| {});
    let gpt = rig.user_for("gpt");
    let r = rig.raw_chat(&gpt);
    assert_eq!(r.status, 503, "{}", r.text());
    let stats = support::send(
        rig.gateway.admin,
        "GET",
        "/stats?filter=ssl.fail_verify_san",
        &[],
        b"",
    )
    .expect("admin")
    .text();
    assert!(
        stats.contains("cluster.openai.ssl.fail_verify_san: 1"),
        "{stats}"
    );
    assert_eq!(
        rig.openai.request_count() + rig.anthropic.request_count(),
        0
    );
}

/// The example validates (with its file paths pointed at real files), its
/// filter configuration loads with every variant's credentials injected,
/// and its listener is envoy/envoy.yaml's but for the filter configuration
/// and the route's host handling.
#[test]
fn the_shipped_example_validates_and_keeps_envoy_yamls_listener() {
    let pki = Pki::new();
    let dir = support::scratch_dir();
    let mut cfg = gateway_config(&pki, 8443, &dir);
    let file = dir.join("envoy-providers.json");
    fs::write(&file, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let (ok, out) = support::validate(&file);
    assert!(ok, "{out}");
    let _ = fs::remove_dir_all(&dir);

    let fc = filter_config(&mut cfg);
    let text = fc.to_string();
    assert!(
        llm_ab::config::load(text.as_bytes()).is_ok(),
        "the example's filter config loads"
    );
    let mut variants = 0;
    for e in fc["experiments"].as_array().unwrap() {
        for v in e["variants"].as_array().unwrap() {
            assert_eq!(v["credentials"], "injected", "{v}");
            variants += 1;
        }
    }
    assert_eq!(variants, 4);

    let shipped = support::shipped_config();
    let mut example = example();
    let ours = hcm(&mut example);
    let theirs = &shipped["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    // envoy.yaml's tracing (its trace id filter) is not part of the example.
    let their_filters: Vec<Value> = theirs["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"] != "llm-ab.trace-id")
        .cloned()
        .collect();
    for (ours, theirs) in ours["http_filters"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(&their_filters)
    {
        if ours["name"] == support::WASM_FILTER {
            ours["typed_config"]["config"]["configuration"]["value"] =
                theirs["typed_config"]["config"]["configuration"]["value"].clone();
        }
        assert_eq!(ours, theirs);
    }
    assert_eq!(
        ours["http_filters"].as_array().unwrap().len(),
        their_filters.len()
    );
    assert_eq!(ours["access_log"], theirs["access_log"]);
    let route = &ours["route_config"]["virtual_hosts"][0]["routes"][0];
    assert_eq!(route["route"]["cluster_header"], "x-llm-cluster");
    assert_eq!(
        route["request_headers_to_add"],
        theirs["route_config"]["virtual_hosts"][0]["routes"][0]["request_headers_to_add"]
    );
}
