#!/usr/bin/env python3
"""`make bench`: CPU cost of the llm-ab filter inside Envoy.

In one run on this machine it starts
  - a fast upstream: Envoy answering every request with a direct_response,
  - bare Envoy: the shipped envoy/envoy.yaml minus the wasm filter,
  - Envoy + filter: the shipped envoy/envoy.yaml as is,
each proxy with one worker (--concurrency 1), and drives them alternately
(A B A B ...) with wrk: a ~2 KB chat request, a distinct x-user-id per
request. The headline figure is the proxy process's CPU time (user+sys from
/proc) per request served; requests/s and latency at saturation are printed
too. Latency proper is then measured at a fixed request rate with
llm-ab-load (open loop: from each request's due time), because a closed
loop at saturation reports queueing, i.e. throughput, not added latency.
Benchmarks are measured, never asserted: nothing here fails on a number.
"""

import argparse
import copy
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVOY = os.environ.get("ENVOY_BIN", os.path.join(ROOT, ".venv/bin/envoy-bin"))
WASM = os.environ.get("LLM_AB_WASM", os.path.join(ROOT, "target/wasm32-wasip1/release/llm_ab.wasm"))
MOCK = os.path.join(ROOT, "target/release/llm-ab-mock")
LOAD = os.path.join(ROOT, "target/release/llm-ab-load")
TICK = os.sysconf("SC_CLK_TCK")

UPSTREAM_BODY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 500, "completion_tokens": 1, "total_tokens": 501},
})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chat_body(size):
    """A chat request of exactly `size` bytes (for sizes above ~150)."""
    filler = "Summarise the quarterly report for the board, keep it short. " * (size // 60 + 1)
    body = {"model": "app-default", "temperature": 0.2, "messages": [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": ""}]}
    base = len(json.dumps(body))
    body["messages"][1]["content"] = filler[: max(0, size - base)]
    return json.dumps(body)


def answer_body(size):
    """A chat completion of about `size` bytes (a longer answer)."""
    text = "The quarterly numbers improved on every line; churn fell and exports doubled. " * (size // 80 + 1)
    body = json.loads(UPSTREAM_BODY)
    body["choices"][0]["message"]["content"] = text[: max(0, size - len(UPSTREAM_BODY))]
    return json.dumps(body)


def upstream_config(port, admin, body=UPSTREAM_BODY, bodies=None):
    """A fast upstream: `body` for every path, or `bodies` by path prefix."""
    routes = [{"match": {"prefix": prefix},
               "direct_response": {"status": 200, "body": {"inline_string": answer}},
               "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"}}]}
              for prefix, answer in (bodies or {"/": body}).items()]
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": [{
            "name": "upstream",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "upstream",
                    "route_config": {"virtual_hosts": [{"name": "up", "domains": ["*"], "routes": routes}]},
                    # Read the whole request before answering: a response sent
                    # before the request body ends makes the proxy close the
                    # upstream connection, and every request would pay a TCP connect.
                    "http_filters": [{"name": "envoy.filters.http.buffer", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer",
                        "max_request_bytes": 4194304}},
                                     {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                }}]}],
        }]},
    }


REDACTION = {"request": True, "response": True,
             "custom": [{"name": "employee_id", "pattern": "EMP-[0-9]{6}"}]}

# Every feature on: routing, telemetry, redaction, budgets (with a quota the
# load never reaches), guardrails (moderation, tools, output schema, review).
EVERYTHING = {
    "redaction": REDACTION,
    "budgets": {"max_input_tokens": 8000, "max_output_tokens": 1024, "timeout_ms": 30000,
                "quotas": [{"key": "x-org-id", "tokens_per_minute": 10 ** 12}]},
    "guardrails": {
        "moderation": {"request_patterns": ["(?i)how to make a bomb"],
                       "response_patterns": ["(?i)as an evil ai"]},
        "tools": {"allow": ["search_docs", "get_weather"], "on_violation": "block"},
        "response_schema": {"on_fail": "count"},
        "review": {"cluster": "model_a", "sample_rate": 0, "always": ["blocked"]},
    },
}


WASM_FILTER = "envoy.filters.http.wasm"  # llm-ab in envoy/envoy.yaml
ECDS_FILTER = "llm-ab"  # llm-ab in envoy/envoy-ecds.yaml
# Envoy's gzip filters around llm-ab in the shipped configurations.
COMPRESSION_FILTERS = ("envoy.extensions.filters.http.decompressor.v3.Decompressor",
                       "envoy.extensions.filters.http.compressor.v3.Compressor")


def http_filter(hcm, name):
    """The HTTP filter named `name` of the connection manager `hcm`."""
    for f in hcm["http_filters"]:
        if f["name"] == name:
            return f
    sys.exit(f"no HTTP filter named {name}")


def without_compression(hcm):
    """Drops the decompressors, the compressor and the routes'
    `accept-encoding: identity` from the connection manager `hcm`."""
    hcm["http_filters"] = [f for f in hcm["http_filters"]
                           if not f.get("typed_config", {}).get("@type", "").endswith(COMPRESSION_FILTERS)]
    for vh in hcm["route_config"]["virtual_hosts"]:
        for route in vh["routes"]:
            route["request_headers_to_add"] = [
                h for h in route.get("request_headers_to_add", [])
                if h["header"]["key"].lower() != "accept-encoding"]
            if not route["request_headers_to_add"]:
                del route["request_headers_to_add"]


TRACE_ID_FILTER = "llm-ab.trace-id"  # puts Envoy's trace id in a header for llm-ab


def without_tracing(cfg):
    """Drops OpenTelemetry tracing from a proxy config: the connection
    manager's `tracing`, the filter that hands llm-ab Envoy's trace id, and
    the filter's `"tracing": true` (no span attributes written)."""
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm.pop("tracing", None)
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != TRACE_ID_FILTER]
    for f in hcm["http_filters"]:
        if f["name"] == WASM_FILTER:
            config = f["typed_config"]["config"]
            filter_json = json.loads(config["configuration"]["value"])
            filter_json.pop("tracing", None)
            config["configuration"]["value"] = json.dumps(filter_json)


def proxy_config(port, admin, upstream, with_filter, redaction=None, extra=None, routing_only=False,
                 compression=False, tracing=False, collector=None):
    """The shipped envoy.yaml re-pointed at `upstream`; without the filter
    it is bare Envoy (no access log, and no compression filters unless
    `compression`). Tracing (on in envoy.yaml) is dropped unless `tracing`,
    so every other figure stays comparable with those measured before it
    was shipped; `collector` is the OTLP receiver's port (else the shipped
    127.0.0.1:4317, where nothing listens here)."""
    with open(os.path.join(ROOT, "envoy/envoy.yaml")) as f:
        cfg = yaml.safe_load(f)
    cfg = copy.deepcopy(cfg)
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = cfg["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    if not tracing:
        without_tracing(cfg)
    filters = hcm["http_filters"]
    if with_filter:
        config = http_filter(hcm, WASM_FILTER)["typed_config"]["config"]
        config["vm_config"]["code"]["local"]["filename"] = WASM
        if routing_only:
            hcm.pop("access_log", None)
            filter_json = json.loads(config["configuration"]["value"])
            filter_json.pop("pricing", None)
            filter_json.pop("refusal_phrases", None)
            filter_json["telemetry"] = False
            config["configuration"]["value"] = json.dumps(filter_json)
        if redaction is not None or extra is not None:
            filter_json = json.loads(config["configuration"]["value"])
            if redaction is not None:
                filter_json["redaction"] = redaction
            filter_json.update(extra or {})
            config["configuration"]["value"] = json.dumps(filter_json)
        # Keep the filter's access log (it is part of the telemetry cost),
        # written to /dev/null.
        if "access_log" in hcm:
            hcm["access_log"][0]["typed_config"]["path"] = "/dev/null"
    else:
        # Bare Envoy: no llm-ab, no access log, no compression filters.
        hcm["http_filters"] = [f for f in filters if f["name"] != WASM_FILTER]
        if not compression:
            without_compression(hcm)
        hcm.pop("access_log", None)
    for cluster in cfg["static_resources"]["clusters"]:
        ep = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        if cluster["name"] == "otel_collector":
            if collector:
                ep["address"]["socket_address"]["port_value"] = collector
            continue
        ep["address"]["socket_address"]["port_value"] = upstream
    return cfg


class Envoy:
    def __init__(self, name, cfg, tmp, cpu, concurrency=1):
        self.name = name
        self.admin = cfg["admin"]["address"]["socket_address"]["port_value"]
        path = os.path.join(tmp, f"{name}.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.log = os.path.join(tmp, f"{name}.log")
        self.proc = subprocess.Popen(
            [*pin(cpu), ENVOY, "-c", path, "--concurrency", str(concurrency), "--disable-hot-restart",
             "-l", "warn", "--log-path", self.log],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{name} Envoy exited; log: {open(self.log).read()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        sys.exit(f"{name} Envoy not ready")

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_proxies(configs, tmp, procs):
    """Starts one proxy per `{name: config}` on core 0 (each appended to
    `procs` for the caller to stop); returns `{name: (Envoy, port)}`."""
    proxies = {}
    for name, cfg in configs.items():
        envoy = Envoy(re.sub(r"[^A-Za-z0-9_-]", "_", name), cfg, tmp, cpu=0)
        procs.append(envoy)
        proxies[name] = (envoy, cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"])
    return proxies


def pin(cpu):
    """taskset prefix: proxies on one core, load generator and upstream on
    the other, so the proxy under test is not time-sliced with them."""
    ncpu = os.cpu_count() or 1
    return ["taskset", "-c", str(cpu % ncpu)] if ncpu > 1 else []


def wrk_script(tmp, body, headers=None, path="/v1/chat/completions"):
    """A wrk script POSTing `body` to `path` with a distinct x-user-id per
    request, plus `headers` (e.g. an SDK's Accept-Encoding)."""
    extra = "".join(f"    [{json.dumps(k)}] = {json.dumps(v)},\n" for k, v in (headers or {}).items())
    url = path
    path = os.path.join(tmp, f"chat-{len(body)}-{len(headers or {})}-{url.strip('/').replace('/', '_')}.lua")
    with open(path, "w") as f:
        f.write(f"""
local counter = 0
local body = {json.dumps(body)}
request = function()
  counter = counter + 1
  return wrk.format("POST", "{url}", {{
    ["content-type"] = "application/json",
    ["x-user-id"] = "user-" .. counter,
    ["x-llm-cluster"] = "model_a",
    ["x-org-id"] = "org-" .. (counter % 50),
{extra}  }}, body)
end
""")
    return path


def parse_duration_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    v = float(m.group(1))
    return v * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def run_wrk(port, script, seconds, connections):
    out = subprocess.run(
        [*pin(1), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script,
         f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_us": parse_duration_us(lat.get("50", "")),
        "p99_us": parse_duration_us(lat.get("99", "")),
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, errors.groups())) if errors else 0),
    }


def measure(envoy, port, script, seconds, connections):
    before = envoy.cpu_seconds()
    r = run_wrk(port, script, seconds, connections)
    after = envoy.cpu_seconds()
    r["cpu_us_per_req"] = (after - before) * 1e6 / max(1, r["requests"])
    return r


def alternate(proxies, script, args, warmup_s, label=None):
    """Warms every proxy up, then measures them in turn for `args.rounds`
    rounds; returns `{name: [result, ...]}` (printing each round when
    `label` is given)."""
    for _, port in proxies.values():
        run_wrk(port, script, warmup_s, args.connections)
    runs = {name: [] for name in proxies}
    for i in range(args.rounds):
        for name, (envoy, port) in proxies.items():
            r = measure(envoy, port, script, args.seconds, args.connections)
            runs[name].append(r)
            if label:
                print(f"{label} round {i + 1} {name:<12} {r['cpu_us_per_req']:7.1f} µs CPU/req  "
                      f"errors {r['errors']}", flush=True)
    return runs


def fixed_rate(port, body_path, rate, seconds):
    """Latency at a fixed request rate (open loop, measured from each
    request's due time): the latency a request sees when the proxy is not
    saturated."""
    out = subprocess.run(
        [*pin(1), LOAD, "--port", str(port), "--rate", str(rate), "--seconds", str(seconds),
         "--connections", "4", "--body", body_path, "--header", "x-llm-cluster: model_a"],
        capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def pii_prompt(size):
    """A chat request of about `size` bytes of prose with PII sprinkled in."""
    prose = ("The quarterly review covered revenue, churn and the roadmap for the next two releases. "
             "Customers asked for faster exports, better audit logs and single sign-on. "
             "Version 2.14.3 ships on 2024-06-01, priced at $1,299.99 per seat, order #88231904. ")
    text, i = "", 0
    while len(text) < size:
        text += prose
        if i % 8 == 3:
            text += "Contact jane.doe@example.com or (415) 555-0100. "
        i += 1
    return chat_body(0).replace('"content": ""', json.dumps({"content": text[:size]})[1:-1], 1)


def redaction_bench(tmp, upstream, seconds, connections):
    """CPU per request and p50 with and without redaction, alternating."""
    plain_port, red_port = free_port(), free_port()
    procs = [Envoy("filter-plain", proxy_config(plain_port, free_port(), upstream, True), tmp, cpu=0),
             Envoy("filter-redact", proxy_config(red_port, free_port(), upstream, True, REDACTION), tmp, cpu=0)]
    rows = []
    try:
        for kib in (1, 16, 64):
            body = pii_prompt(kib * 1024)
            script = wrk_script(tmp, body)
            run_wrk(plain_port, script, 2, connections)
            run_wrk(red_port, script, 2, connections)
            runs = {"plain": [], "redact": []}
            for _ in range(3):
                runs["plain"].append(measure(procs[0], plain_port, script, seconds, connections))
                runs["redact"].append(measure(procs[1], red_port, script, seconds, connections))
            med = {k: {m: statistics.median(r[m] for r in v) for m in ("cpu_us_per_req", "p50_us")}
                   for k, v in runs.items()}
            errors = sum(r["errors"] for v in runs.values() for r in v)
            added_cpu = med["redact"]["cpu_us_per_req"] - med["plain"]["cpu_us_per_req"]
            rows.append((kib, len(body), med, added_cpu, errors))
    finally:
        for p in procs:
            p.stop()
    return rows


def ecds_configs(tmp, port, admin, upstream, filter_json):
    """envoy-ecds.yaml re-pointed at `tmp`, and a writer of its ECDS file."""
    with open(os.path.join(ROOT, "envoy/envoy-ecds.yaml")) as f:
        cfg = yaml.safe_load(f)
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = cfg["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = port
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["access_log"][0]["typed_config"]["path"] = "/dev/null"
    source = http_filter(hcm, ECDS_FILTER)["config_discovery"]["config_source"]["path_config_source"]
    ecds_path = os.path.join(tmp, "llm-ab-filter.json")
    source["path"] = ecds_path
    source["watched_directory"]["path"] = tmp
    for cluster in cfg["static_resources"]["clusters"]:
        ep = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        ep["address"]["socket_address"]["port_value"] = upstream
    with open(os.path.join(ROOT, "envoy/llm-ab-filter.yaml")) as f:
        resource = yaml.safe_load(f)

    def write(config_value):
        r = copy.deepcopy(resource)
        c = r["resources"][0]["typed_config"]["config"]
        c["vm_config"]["code"]["local"]["filename"] = WASM
        c["configuration"]["value"] = config_value
        tmp_path = ecds_path + ".tmp"
        with open(tmp_path, "w") as f:
            json.dump(r, f)
        os.replace(tmp_path, ecds_path)

    write(filter_json)
    return cfg, write


def vm_memory_mib(admin):
    """The filter's `llm_ab.vm_memory_bytes` gauge (all its VMs), MiB."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=vm_memory_bytes", timeout=5) as r:
        for line in r.read().decode().splitlines():
            name, _, value = line.partition(": ")
            if name.endswith("llm_ab.vm_memory_bytes"):
                return int(value) / 1048576
    return 0.0


def memory_bench(tmp, upstream, requests, reloads, connections):
    """RSS of an Envoy + filter (ECDS) before and after `requests` requests
    and `reloads` configuration reloads."""
    port, admin = free_port(), free_port()
    with open(os.path.join(ROOT, "envoy/envoy.yaml")) as f:
        shipped = yaml.safe_load(f)
    hcm = shipped["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    value = http_filter(hcm, WASM_FILTER)["typed_config"]["config"]["configuration"]["value"]
    cfg, write = ecds_configs(tmp, port, admin, upstream, value)
    envoy = Envoy("memory", cfg, tmp, cpu=0)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        script = wrk_script(tmp, chat_body(2048))
        run_wrk(port, script, 3, connections)  # warm-up
        time.sleep(6)  # the VMs refresh the memory gauge every 5 s
        before = envoy.rss_mib()
        vm_before = vm_memory_mib(admin)
        served = 0
        while served < requests:
            served += run_wrk(port, script, 4, connections)["requests"]
        for i in range(reloads):
            # Alternate two valid configurations: each replace is a reload.
            write(value if i % 2 else value.replace('"enabled": true', '"enabled": false'))
            time.sleep(0.05)
        time.sleep(1)
        run_wrk(port, script, 2, connections)
        time.sleep(6)
        after = envoy.rss_mib()
        vm_after = vm_memory_mib(admin)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=extension_config", timeout=5) as r:
            stats = r.read().decode()
        updates = sum(int(l.rsplit(" ", 1)[1]) for l in stats.splitlines() if "config_reload:" in l)
        return {"requests": served, "reloads": reloads, "reloads_applied": updates,
                "rss_before_mib": before, "rss_after_mib": after,
                "vm_before_mib": vm_before, "vm_after_mib": vm_after,
                "growth_pct": (after - before) * 100.0 / before if before else 0.0}
    finally:
        envoy.stop()


def ttft_once(port, headers):
    """Seconds from sending a streaming request to the first SSE byte, and
    the whole response's duration."""
    body = json.dumps({"model": "app", "stream": True,
                       "messages": [{"role": "user", "content": "stream please"}]})
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    req = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
           f"connection: close\r\ncontent-length: {len(body)}\r\n{head}\r\n{body}").encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        start = time.perf_counter()
        s.sendall(req)
        buf, first = b"", None
        while True:
            data = s.recv(65536)
            if not data:
                break
            buf += data
            if first is None and b"data:" in buf:
                first = time.perf_counter() - start
        total = time.perf_counter() - start
    ok = buf.startswith(b"HTTP/1.1 200") and b"[DONE]" in buf
    return first, total, ok


def ttft_bench(tmp, requests):
    mock_port = free_port()
    mock = subprocess.Popen([*pin(1), MOCK, "--name", "stream", "--port", str(mock_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs = []
    try:
        bare_port, filt_port = free_port(), free_port()
        procs.append(Envoy("ttft-bare", proxy_config(bare_port, free_port(), mock_port, False), tmp, cpu=0))
        procs.append(Envoy("ttft-filter", proxy_config(filt_port, free_port(), mock_port, True), tmp, cpu=0))
        gap = {"x-mock-event-gap-ms": "5"}
        results = {"bare": [], "filter": []}
        errors = {"bare": 0, "filter": 0}
        for i in range(requests):
            for name, port in (("bare", bare_port), ("filter", filt_port)):
                first, _total, ok = ttft_once(port, {**gap, "x-user-id": f"ttft-{i}", "x-llm-cluster": "model_a"})
                if ok and first is not None:
                    results[name].append(first * 1e3)
                else:
                    errors[name] += 1
        def pct(xs, q):
            xs = sorted(xs)
            return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")
        return {name: {"p50_ms": pct(xs, 0.5), "p90_ms": pct(xs, 0.9), "errors": errors[name]}
                for name, xs in results.items()}
    finally:
        for p in procs:
            p.stop()
        mock.terminate()
        mock.wait(timeout=5)


def latency_phase(args, proxies, configs, tmp, body):
    """p50/p99 at a fixed rate, each proxy in turn, medians of the rounds."""
    body_path = os.path.join(tmp, "body.json")
    with open(body_path, "w") as f:
        f.write(body)
    seconds = max(2, args.seconds // 2)
    runs = {name: [] for name in proxies}
    for i in range(args.latency_rounds):
        for name, (_, port) in proxies.items():
            r = fixed_rate(port, body_path, args.latency_rate, seconds)
            runs[name].append(r)
            print(f"{len(body)} B at {args.latency_rate}/s round {i + 1} {name:<10} p50 {r['p50_us']:6d} µs  "
                  f"p99 {r['p99_us']:6d} µs  p99.9 {r['p999_us']:6d} µs  errors {r['errors']}", flush=True)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in ("p50_us", "p99_us", "p999_us")}
           for name, rs in runs.items()}
    bare = med["bare"]
    print(f"""
Latency at a fixed {args.latency_rate} requests/s (open loop, from each request's due time), body {len(body)} bytes,
{args.latency_rounds} alternating rounds of {seconds} s, medians; "added" is against bare Envoy:

| | p50 µs | p50 added | p99 µs | p99 added | p99.9 µs | errors |
|---|---|---|---|---|---|---|""")
    for name, (label, _) in configs.items():
        m = med[name]
        cells = ("", "") if name == "bare" else (f"{m['p50_us'] - bare['p50_us']:+.0f}",
                                                 f"**{m['p99_us'] - bare['p99_us']:+.0f}**")
        errors = sum(r["errors"] for r in runs[name])
        print(f"| {label} | {m['p50_us']:.0f} | {cells[0]} | {m['p99_us']:.0f} | {cells[1]} | "
              f"{m['p999_us']:.0f} | {errors} |")
    print()
    return {"runs": runs, "median": med}


SDK_HEADERS = {"accept-encoding": "gzip, deflate"}


def gzip_phase(args, tmp):
    """CPU per request for a client that accepts gzip, as the official SDKs
    do, against an upstream answering with a 2 KB chat completion (over the
    compressor's 1 KiB minimum), so the shipped compressor gzips every
    answer; bare Envoy ignores the header."""
    up = free_port()
    procs = [Envoy("upstream-2k", upstream_config(up, free_port(), answer_body(2048)), tmp, cpu=1)]
    configs = {
        "bare": ("bare Envoy", proxy_config(free_port(), free_port(), up, False)),
        "compression": ("bare Envoy + the shipped compression filters (no llm-ab)",
                        proxy_config(free_port(), free_port(), up, False, compression=True)),
        "everything": ("llm-ab: everything on, with the shipped compression filters",
                       proxy_config(free_port(), free_port(), up, True, extra=EVERYTHING)),
    }
    try:
        proxies = start_proxies({name: cfg for name, (_, cfg) in configs.items()}, tmp, procs)
        body = chat_body(args.body_bytes)
        script = wrk_script(tmp, body, SDK_HEADERS)
        runs = alternate(proxies, script, args, 3, label=f"{len(body)} B gzip client")
    finally:
        for p in reversed(procs):
            p.stop()
    med = {name: statistics.median(r["cpu_us_per_req"] for r in rs) for name, rs in runs.items()}
    print(f"""
Client sending `Accept-Encoding: gzip, deflate` (the official SDKs), request {len(body)} bytes, answer
{len(answer_body(2048))} bytes, {args.rounds} alternating rounds of {args.seconds} s, medians; the shipped compressor
gzips the answer, bare Envoy sends it as it is:

| | CPU µs/request | added | errors |
|---|---|---|---|""")
    for name, (label, _) in configs.items():
        errors = sum(r["errors"] for r in runs[name])
        added = "" if name == "bare" else f"**{med[name] - med['bare']:+.1f}**"
        print(f"| {label} | {med[name]:.1f} | {added} | {errors} |")
    print()
    return {"runs": runs, "median": med}


def without(part):
    """EVERYTHING minus one part (`budgets.quotas`, `guardrails.review`, ...)."""
    cfg = copy.deepcopy(EVERYTHING)
    section, _, key = part.partition(".")
    if key:
        cfg[section].pop(key, None)
    else:
        cfg.pop(section, None)
    return cfg


PARTS = ["redaction", "budgets.quotas", "guardrails.moderation", "guardrails.tools",
         "guardrails.review", "guardrails.response_schema"]


def parts_bench(args):
    """Where the everything-on CPU goes: everything on minus one part at a
    time, alternating with bare Envoy and everything on."""
    tmp = tempfile.mkdtemp(prefix="llm-ab-parts-")
    up = free_port()
    procs = [Envoy("upstream", upstream_config(up, free_port()), tmp, cpu=1)]
    try:
        configs = {"bare": proxy_config(free_port(), free_port(), up, False),
                   "everything": proxy_config(free_port(), free_port(), up, True, extra=EVERYTHING)}
        for part in PARTS:
            configs[f"- {part}"] = proxy_config(free_port(), free_port(), up, True, extra=without(part))
        proxies = start_proxies(configs, tmp, procs)
        script = wrk_script(tmp, chat_body(args.body_bytes))
        runs = alternate(proxies, script, args, 3)
        med = {name: statistics.median(r["cpu_us_per_req"] for r in rs) for name, rs in runs.items()}
        print(f"""Everything on minus one part, {args.body_bytes} B request, {args.rounds} alternating rounds of {args.seconds} s, medians:

| | CPU µs/request | added vs bare | the part costs |
|---|---|---|---|""")
        for name, cpu in med.items():
            part = "" if name in ("bare", "everything") else f"{med['everything'] - cpu:+.1f}"
            added = "" if name == "bare" else f"{cpu - med['bare']:+.1f}"
            print(f"| {name} | {cpu:.1f} | {added} | {part} |")
    finally:
        for p in reversed(procs):
            p.stop()


def baseline_bench(args):
    """This build against an earlier one (`--baseline WASM`, e.g. built from
    an older commit) in the same run: routing only, routing + telemetry and
    everything on, both without the compression filters (which builds
    before #12 did not ship), and this build's everything on with them;
    alternating rounds, medians."""
    global WASM
    tmp = tempfile.mkdtemp(prefix="llm-ab-baseline-")
    up = free_port()
    procs = [Envoy("upstream", upstream_config(up, free_port()), tmp, cpu=1)]
    current = WASM

    def filtered(wasm, compression, **kw):
        global WASM
        WASM = wasm
        cfg = proxy_config(free_port(), free_port(), up, True, **kw)
        WASM = current
        if not compression:
            without_compression(cfg["static_resources"]["listeners"][0]["filter_chains"][0]
                                ["filters"][0]["typed_config"])
        return cfg

    configs = {"bare": proxy_config(free_port(), free_port(), up, False)}
    for name, kw in (("routing", {"routing_only": True}), ("telemetry", {}),
                     ("everything", {"extra": EVERYTHING})):
        configs[f"baseline {name}"] = filtered(args.baseline, False, **kw)
        configs[f"this build {name}"] = filtered(current, False, **kw)
    configs["this build everything, with compression filters"] = filtered(current, True, extra=EVERYTHING)
    try:
        proxies = start_proxies(configs, tmp, procs)
        script = wrk_script(tmp, chat_body(args.body_bytes))
        runs = alternate(proxies, script, args, 4)
        med = {name: statistics.median(r["cpu_us_per_req"] for r in rs) for name, rs in runs.items()}
        print(f"""This build against {args.baseline}, {args.body_bytes} B request, {args.rounds} alternating rounds of {args.seconds} s, medians:

| | CPU µs/request | added vs bare | rounds | errors |
|---|---|---|---|---|""")
        for name, rs in runs.items():
            added = "" if name == "bare" else f"{med[name] - med['bare']:+.1f}"
            each = " ".join(f"{r['cpu_us_per_req']:.1f}" for r in rs)
            print(f"| {name} | {med[name]:.1f} | {added} | {each} | {sum(r['errors'] for r in rs)} |")
    finally:
        for p in reversed(procs):
            p.stop()


FLOOR = os.environ.get("LLM_AB_FLOOR_WASM",
                       os.path.join(ROOT, "target/wasm32-wasip1/release/llm_ab_floor.wasm"))


# Each API's 2 KB request and a small answer of its own shape (#14).
RESPONSES_ANSWER = json.dumps({
    "id": "resp_bench", "object": "response", "status": "completed", "model": "gpt-4o-mini",
    "output": [{"type": "message", "id": "msg_bench", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "ok", "annotations": []}]}],
    "usage": {"input_tokens": 500, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 1,
              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 501}})
MESSAGES_ANSWER = json.dumps({
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 500, "output_tokens": 1, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0}})


def api_bodies(size):
    """Chat, Responses and Messages requests of about `size` bytes, the same prose."""
    chat = json.loads(chat_body(size))
    system, user = (m["content"] for m in chat["messages"])
    return {
        "openai.chat": ("/v1/chat/completions", chat_body(size), {}),
        "openai.responses": ("/v1/responses", json.dumps(
            {"model": "app-default", "temperature": 0.2, "instructions": system, "input": user}), {}),
        "anthropic.messages": ("/v1/messages", json.dumps(
            {"model": "app-default", "temperature": 0.2, "max_tokens": 4096, "system": system,
             "messages": [{"role": "user", "content": user}]}), {"anthropic-version": "2023-06-01"}),
    }


def apis_bench(args):
    """Everything on for each API: what the filter adds to a 2 KB Chat,
    Responses and Messages request (each against bare Envoy on the same
    request), alternating, medians."""
    tmp = tempfile.mkdtemp(prefix="llm-ab-apis-")
    up = free_port()
    bodies = {"/v1/responses": RESPONSES_ANSWER, "/v1/messages": MESSAGES_ANSWER, "/": UPSTREAM_BODY}
    procs = [Envoy("upstream", upstream_config(up, free_port(), bodies=bodies), tmp, cpu=1)]
    everything = proxy_config(free_port(), free_port(), up, True, extra=EVERYTHING)
    hcm = everything["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    without_compression(hcm)
    config = http_filter(hcm, WASM_FILTER)["typed_config"]["config"]
    filter_json = json.loads(config["configuration"]["value"])
    for e in filter_json["experiments"]:
        e["match"] = {"path_prefix": "/v1/"}
    config["configuration"]["value"] = json.dumps(filter_json)
    configs = {"bare": proxy_config(free_port(), free_port(), up, False), "everything": everything}
    try:
        proxies = start_proxies(configs, tmp, procs)
        added = {}
        for api, (path, body, headers) in api_bodies(args.body_bytes).items():
            script = wrk_script(tmp, body, headers, path=path)
            runs = alternate(proxies, script, args, 4, label=api)
            med = {name: statistics.median(r["cpu_us_per_req"] for r in rs) for name, rs in runs.items()}
            errors = sum(r["errors"] for rs in runs.values() for r in rs)
            added[api] = (med["bare"], med["everything"], len(body), errors)
        chat = added["openai.chat"][1] - added["openai.chat"][0]
        print(f"""Everything on per API, about {args.body_bytes} B requests, {args.rounds} alternating rounds of {args.seconds} s, medians (no compression filters):

| API | request bytes | bare Envoy µs | everything on µs | added | vs chat's | errors |
|---|---|---|---|---|---|---|""")
        for api, (bare, full, size, errors) in added.items():
            print(f"| {api} | {size} | {bare:.1f} | {full:.1f} | **{full - bare:+.1f}** | "
                  f"{(full - bare) / chat * 100 - 100:+.0f} % | {errors} |")
    finally:
        for p in reversed(procs):
            p.stop()


def with_experiment(cfg, edit):
    """`cfg` (a proxy_config) with `edit` applied to its filter's experiment."""
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    config = http_filter(hcm, WASM_FILTER)["typed_config"]["config"]
    filter_json = json.loads(config["configuration"]["value"])
    edit(filter_json["experiments"][0])
    config["configuration"]["value"] = json.dumps(filter_json)
    return cfg


def shadow_bench(args):
    """Shadowing at `--shadow-rate` (default 1.0) against the same configuration without
    it (the shipped one, every request served by control): Envoy CPU per
    request, the copy's own upstream call included; the same with copies
    that cannot start (an unknown cluster: the filter's part without the
    copy's call and its answer); and the client's latency at a fixed rate."""
    tmp = tempfile.mkdtemp(prefix="llm-ab-shadow-")
    up = free_port()
    procs = [Envoy("upstream", upstream_config(up, free_port()), tmp, cpu=1)]

    def control_only(e):
        e["variants"][0]["weight"] = 100
        e["variants"][1]["weight"] = 0

    def shadowed(cluster):
        def edit(e):
            control_only(e)
            e["variants"][1]["cluster"] = cluster
            e["shadow"] = {"variants": ["candidate"], "sample_rate": args.shadow_rate}
        return edit

    configs = {
        "bare": ("bare Envoy", proxy_config(free_port(), free_port(), up, False)),
        "off": ("llm-ab, shipped configuration, no shadow",
                with_experiment(proxy_config(free_port(), free_port(), up, True), control_only)),
        "shadow": (f"llm-ab, shadow at sample_rate {args.shadow_rate} (copy answered)",
                   with_experiment(proxy_config(free_port(), free_port(), up, True), shadowed("model_b"))),
        "unsent": (f"llm-ab, shadow at {args.shadow_rate}, copies that cannot start",
                   with_experiment(proxy_config(free_port(), free_port(), up, True), shadowed("no_such_cluster"))),
        # The floor of a copy's cost: bench/floor making everything's
        # hostcalls, without and with one side call per request.
        "floor": ("floor: everything's hostcalls", floor_config(proxy_config(free_port(), free_port(), up, True), "everything")),
        "floor_call": ("floor: the same and one side call per request, answer read",
                       floor_config(proxy_config(free_port(), free_port(), up, True), "shadow")),
    }
    try:
        proxies = start_proxies({name: cfg for name, (_, cfg) in configs.items()}, tmp, procs)
        body = chat_body(args.body_bytes)
        script = wrk_script(tmp, body)
        runs = alternate(proxies, script, args, 4, label="shadow")
        med = {name: statistics.median(r["cpu_us_per_req"] for r in rs) for name, rs in runs.items()}
        errors = {name: sum(r["errors"] for r in rs) for name, rs in runs.items()}
        print(f"""
Shadow traffic, {len(body)} B chat requests, {args.rounds} alternating rounds of {args.seconds} s, one worker, medians:

| | CPU µs/request | vs no shadow | errors |
|---|---|---|---|""")
        for name, (label, _) in configs.items():
            vs = "" if name in ("bare", "off", "floor", "floor_call") else f"**{med[name] - med['off']:+.1f}**"
            print(f"| {label} | {med[name]:.1f} | {vs} | {errors[name]} |")
        print(f"| (the copy's upstream call and its answer: shadow − unsent) | | {med['shadow'] - med['unsent']:+.1f} | |")
        print(f"| (a side call's floor: floor with a call − floor) | | {med['floor_call'] - med['floor']:+.1f} | |")
        if args.latency_rate:
            names = ("bare", "off", "shadow", "floor", "floor_call")
            latency_phase(args, {k: proxies[k] for k in names}, {k: configs[k] for k in names}, tmp, body)
    finally:
        for p in reversed(procs):
            p.stop()


def floor_config(cfg, level):
    """`cfg` with bench/floor at `level` in the filter's place."""
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    config = http_filter(hcm, WASM_FILTER)["typed_config"]["config"]
    config["vm_config"]["code"]["local"]["filename"] = FLOOR
    config["configuration"]["value"] = level
    return cfg


def floor_bench(args):
    """The floor of the in-Envoy cost: `bench/floor` makes, per
    configuration, the hostcalls llm-ab makes for this request and decides
    nothing; each floor runs beside the filter in the same configuration
    (neither with the compression filters), alternating, medians."""
    tmp = tempfile.mkdtemp(prefix="llm-ab-floor-")
    up = free_port()
    procs = [Envoy("upstream", upstream_config(up, free_port()), tmp, cpu=1)]

    def filtered(level=None, **kw):
        cfg = proxy_config(free_port(), free_port(), up, True, **kw)
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        without_compression(hcm)
        if level:
            config = http_filter(hcm, WASM_FILTER)["typed_config"]["config"]
            config["vm_config"]["code"]["local"]["filename"] = FLOOR
            config["configuration"]["value"] = level
        return cfg

    configs = {"bare": proxy_config(free_port(), free_port(), up, False),
               "floor: empty filter": filtered("empty", routing_only=True)}
    for name, kw in (("routing", {"routing_only": True}), ("telemetry", {}),
                     ("everything", {"extra": EVERYTHING})):
        configs[f"floor: {name} hostcalls"] = filtered(name, **kw)
        configs[f"llm-ab: {name}"] = filtered(**kw)
    try:
        proxies = start_proxies(configs, tmp, procs)
        script = wrk_script(tmp, chat_body(args.body_bytes))
        runs = alternate(proxies, script, args, 4, label="floor")
        med = {name: statistics.median(r["cpu_us_per_req"] for r in rs) for name, rs in runs.items()}
        print(f"""The floor: the same hostcalls without the decisions, {args.body_bytes} B request, {args.rounds} alternating rounds of {args.seconds} s, medians:

| | CPU µs/request | added vs bare | above its floor | rounds | errors |
|---|---|---|---|---|---|""")
        for name, rs in runs.items():
            added = "" if name == "bare" else f"{med[name] - med['bare']:+.1f}"
            above = ""
            if name.startswith("llm-ab: "):
                above = f"{med[name] - med['floor: ' + name[8:] + ' hostcalls']:+.1f}"
            each = " ".join(f"{r['cpu_us_per_req']:.1f}" for r in rs)
            print(f"| {name} | {med[name]:.1f} | {added} | {above} | {each} | {sum(r['errors'] for r in rs)} |")
    finally:
        for p in reversed(procs):
            p.stop()


def latency_aa_bench(args):
    """How far this machine can judge a p99: two identical bare Envoys
    (an A/A pair) beside the filter with everything on, at the fixed rate
    of the latency phase, alternating; each round's p99 of each, and the
    A/A pair's difference per round, which no filter caused."""
    tmp = tempfile.mkdtemp(prefix="llm-ab-aa-")
    up = free_port()
    procs = [Envoy("upstream", upstream_config(up, free_port()), tmp, cpu=1)]
    configs = {
        "bare": ("bare Envoy", proxy_config(free_port(), free_port(), up, False)),
        "bare again": ("bare Envoy again (same configuration, its own process)",
                       proxy_config(free_port(), free_port(), up, False)),
        "everything": ("llm-ab: everything on",
                       proxy_config(free_port(), free_port(), up, True, extra=EVERYTHING)),
    }
    try:
        proxies = start_proxies({name: cfg for name, (_, cfg) in configs.items()}, tmp, procs)
        body = chat_body(args.body_bytes)
        script = wrk_script(tmp, body)
        for _, port in proxies.values():
            run_wrk(port, script, 4, args.connections)
        lat = latency_phase(args, proxies, configs, tmp, body)
        runs = lat["runs"]
        aa = [a["p99_us"] - b["p99_us"] for a, b in zip(runs["bare again"], runs["bare"])]
        ab = [a["p99_us"] - b["p99_us"] for a, b in zip(runs["everything"], runs["bare"])]
        print(f"""p99 per round, µs (A/A: the two bare Envoys; A/B: everything on against the first):

| round | bare | bare again | everything on | A/A difference | A/B difference |
|---|---|---|---|---|---|""")
        for i, (b, b2, e) in enumerate(zip(runs["bare"], runs["bare again"], runs["everything"])):
            print(f"| {i + 1} | {b['p99_us']} | {b2['p99_us']} | {e['p99_us']} | {aa[i]:+d} | {ab[i]:+d} |")
        print(f"\nA/A p99 difference: median {statistics.median(aa):+.0f} µs, "
              f"from {min(aa):+d} to {max(aa):+d}; A/B: median {statistics.median(ab):+.0f}, "
              f"from {min(ab):+d} to {max(ab):+d}")
    finally:
        for p in reversed(procs):
            p.stop()


class OtlpReceiver:
    """tests/otlp/receiver.py on the load generator's core, counting the
    spans it receives (it prints one line per span)."""

    def __init__(self, tmp):
        self.out = open(os.path.join(tmp, "spans.jsonl"), "w+")
        py = os.path.join(ROOT, ".venv/bin/python")
        self.proc = subprocess.Popen([*pin(1), py, os.path.join(ROOT, "tests/otlp/receiver.py"), "0"],
                                     stdin=subprocess.PIPE, stdout=self.out, stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while time.time() < deadline:
            self.out.seek(0)
            first = self.out.readline()
            if first.endswith("\n"):
                self.port = json.loads(first)["port"]
                return
            time.sleep(0.1)
        sys.exit("the OTLP receiver did not start (is requirements.txt installed in .venv?)")

    def spans(self):
        self.out.flush()
        with open(self.out.name) as f:
            return sum(1 for _ in f) - 1

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=5)


def tracing_bench(args):
    """Tracing on against tracing off (#15): the filter's default
    configuration with and without the shipped OpenTelemetry tracing, its
    span attributes and a real OTLP/gRPC receiver; alternating, medians.
    Also: tracing on with nothing listening, Envoy's tracing alone (no
    custom tags, no trace id filter, the filter's `tracing` off), and the
    filter writing its attributes that no custom tag reads. With
    `--baseline WASM` (an earlier build), that build traced too, every
    custom tag from its filter state property (as this build's are)."""
    tmp = tempfile.mkdtemp(prefix="llm-ab-tracing-")
    up = free_port()
    procs = [Envoy("upstream", upstream_config(up, free_port()), tmp, cpu=1)]
    receiver = OtlpReceiver(tmp)
    try:
        envoy_only = proxy_config(free_port(), free_port(), up, True, tracing=True, collector=receiver.port)
        without_tracing_attributes(envoy_only)
        no_tags = proxy_config(free_port(), free_port(), up, True, tracing=True, collector=receiver.port)
        no_tags["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
            "tracing"].pop("custom_tags", None)
        no_tags_no_id = copy.deepcopy(no_tags)
        no_tags_no_id["admin"]["address"]["socket_address"]["port_value"] = free_port()
        listener = no_tags_no_id["static_resources"]["listeners"][0]
        listener["address"]["socket_address"]["port_value"] = free_port()
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != TRACE_ID_FILTER]
        configs = {
            "bare": proxy_config(free_port(), free_port(), up, False),
            "tracing off": proxy_config(free_port(), free_port(), up, True),
            "tracing on": proxy_config(free_port(), free_port(), up, True, tracing=True,
                                       collector=receiver.port),
            "tracing on, no collector": proxy_config(free_port(), free_port(), up, True, tracing=True,
                                                     collector=free_port()),
            "Envoy's tracing only": envoy_only,
            "tracing on, attributes written but no custom tags": no_tags,
            "the same without the trace id filter": no_tags_no_id,
        }
        if args.baseline:
            configs["tracing on, baseline build (every tag from filter state)"] = \
                baseline_traced(args.baseline, up, receiver.port)
        proxies = start_proxies(configs, tmp, procs)
        script = wrk_script(tmp, chat_body(args.body_bytes))
        before = receiver.spans()
        runs = alternate(proxies, script, args, 4, label="tracing")
        time.sleep(6)  # the last spans (flushed every 5 s)
        med = {name: statistics.median(r["cpu_us_per_req"] for r in rs) for name, rs in runs.items()}
        print(f"""Tracing on vs off, {args.body_bytes} B chat request, {args.rounds} alternating rounds of {args.seconds} s,
one Envoy worker each, medians; spans received by the OTLP receiver: {receiver.spans() - before}

| | CPU µs/request | added vs bare | vs tracing off | rounds | errors |
|---|---|---|---|---|---|""")
        for name, rs in runs.items():
            added = "" if name == "bare" else f"{med[name] - med['bare']:+.1f}"
            vs_off = f"**{med[name] - med['tracing off']:+.1f}**" if name.startswith(("tracing on", "Envoy")) else ""
            each = " ".join(f"{r['cpu_us_per_req']:.1f}" for r in rs)
            print(f"| {name} | {med[name]:.1f} | {added} | {vs_off} | {each} | {sum(r['errors'] for r in rs)} |")
    finally:
        receiver.stop()
        for p in reversed(procs):
            p.stop()


def baseline_traced(wasm, up, collector):
    """The shipped tracing for an earlier build: each custom tag from its
    `wasm.llm_ab.span.<tag>` property (whatever this build's envoy.yaml
    reads them from)."""
    cfg = proxy_config(free_port(), free_port(), up, True, tracing=True, collector=collector)
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["tracing"]["custom_tags"] = [
        {"tag": t["tag"], "value": f"%FILTER_STATE(wasm.llm_ab.span.{t['tag']}:PLAIN)%"}
        for t in hcm["tracing"]["custom_tags"]]
    http_filter(hcm, WASM_FILTER)["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = wasm
    return cfg


def without_tracing_attributes(cfg):
    """Envoy's tracing without llm-ab's part: no custom tags, no trace id
    header, the filter's `tracing` off."""
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["tracing"].pop("custom_tags", None)
    hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] != TRACE_ID_FILTER]
    config = http_filter(hcm, WASM_FILTER)["typed_config"]["config"]
    filter_json = json.loads(config["configuration"]["value"])
    filter_json.pop("tracing", None)
    config["configuration"]["value"] = json.dumps(filter_json)


def main():
    ap = argparse.ArgumentParser(description="bare Envoy vs Envoy + llm-ab, CPU per request")
    ap.add_argument("--seconds", type=int, default=8, help="load per round and proxy")
    ap.add_argument("--rounds", type=int, default=3, help="A B rounds")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--body-bytes", type=int, default=2048)
    ap.add_argument("--ttft-requests", type=int, default=200, help="streaming requests per proxy")
    ap.add_argument("--latency-rate", type=int, default=2000,
                    help="requests/s of the fixed-rate latency phase (0 skips it)")
    ap.add_argument("--latency-rounds", type=int, default=5, help="rounds of the fixed-rate phase")
    ap.add_argument("--cpu-only", action="store_true", help="skip the redaction, TTFT and memory phases")
    ap.add_argument("--memory-requests", type=int, default=200_000)
    ap.add_argument("--memory-reloads", type=int, default=200)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--parts", action="store_true",
                    help="only measure what each part of the everything-on configuration costs")
    ap.add_argument("--baseline", metavar="WASM",
                    help="only compare this build with an earlier .wasm in the same run")
    ap.add_argument("--apis", action="store_true",
                    help="only measure everything on for a Chat, a Responses and a Messages request")
    ap.add_argument("--tracing", action="store_true",
                    help="only measure OpenTelemetry tracing on against off (with a real OTLP receiver)")
    ap.add_argument("--shadow", action="store_true",
                    help="only measure shadow traffic at sample_rate 1.0 against the same configuration without it")
    ap.add_argument("--shadow-rate", type=float, default=1.0,
                    help="with --shadow: the shadow block's sample_rate")
    ap.add_argument("--latency-aa", action="store_true",
                    help="only measure the fixed-rate latency of two identical bare Envoys (A/A) beside "
                         "everything on: how large a p99 difference this machine can judge")
    ap.add_argument("--floor", action="store_true",
                    help="only measure the filter beside bench/floor, which makes the same hostcalls and decides nothing")
    args = ap.parse_args()
    for tool, path in (("Envoy", ENVOY), ("filter", WASM), ("mock backend", MOCK), ("load generator", LOAD)):
        if not os.path.exists(path):
            sys.exit(f"{tool} not found at {path}: run `make bench` (it installs and builds)")

    if args.tracing:
        tracing_bench(args)
        return
    if args.shadow:
        shadow_bench(args)
        return
    if args.floor:
        floor_bench(args)
        return
    if args.latency_aa:
        latency_aa_bench(args)
        return
    if args.apis:
        apis_bench(args)
        return
    if args.parts:
        parts_bench(args)
        return
    if args.baseline:
        baseline_bench(args)
        return
    tmp = tempfile.mkdtemp(prefix="llm-ab-bench-")
    up_port = free_port()
    procs = []
    try:
        procs.append(Envoy("upstream", upstream_config(up_port, free_port()), tmp, cpu=1))
        # The proxies measured side by side, each on the same core in turn.
        configs = {
            "bare": ("bare Envoy", proxy_config(free_port(), free_port(), up_port, False)),
            "compression": ("bare Envoy + the shipped compression filters (no llm-ab)",
                            proxy_config(free_port(), free_port(), up_port, False, compression=True)),
            "routing": ("llm-ab: routing + model rewrite (telemetry off)",
                        proxy_config(free_port(), free_port(), up_port, True, routing_only=True)),
            "filter": ("llm-ab: routing + telemetry (JSON access log, pricing)",
                       proxy_config(free_port(), free_port(), up_port, True)),
            "everything": ("llm-ab: everything on (+ redaction, budgets, quota, guardrails)",
                           proxy_config(free_port(), free_port(), up_port, True, extra=EVERYTHING)),
        }
        proxies = start_proxies({name: cfg for name, (_, cfg) in configs.items()}, tmp, procs)
        filt, filt_port = proxies["filter"]
        rss_before = filt.rss_mib()
        all_runs, summaries, latencies = {}, {}, {}
        for size in (args.body_bytes, 16384):
            body = chat_body(size)
            script = wrk_script(tmp, body)
            # Warm up (connection pools; V8 compiles hot wasm functions with
            # its optimizing tier after a while).
            for envoy, port in proxies.values():
                run_wrk(port, script, 5 if size == args.body_bytes else 2, args.connections)
            runs = {name: [] for name in proxies}
            for i in range(args.rounds):
                for name, (envoy, port) in proxies.items():
                    r = measure(envoy, port, script, args.seconds, args.connections)
                    runs[name].append(r)
                    print(f"{len(body)} B round {i + 1} {name:<10} {r['cpu_us_per_req']:7.1f} µs CPU/req  "
                          f"{r['rps']:8.0f} req/s  p50 {r['p50_us']:7.0f} µs  p99 {r['p99_us']:7.0f} µs  "
                          f"errors {r['errors']}", flush=True)
            summary = {name: {k: statistics.median(r[k] for r in rs) for k in ("cpu_us_per_req", "rps", "p50_us", "p99_us")}
                       for name, rs in runs.items()}
            for name in runs:
                summary[name]["errors"] = sum(r["errors"] for r in runs[name])
            bare = summary["bare"]
            print(f"""
Body {len(body)} bytes, {args.rounds} alternating rounds of {args.seconds} s, {args.connections} connections,
one Envoy worker each, medians; "added" is against bare Envoy in the same run:

| | CPU µs/request | added | requests/s (saturated) | p50 µs saturated | p99 µs saturated | errors |
|---|---|---|---|---|---|---|""")
            for name, (label, _) in configs.items():
                m = summary[name]
                added_cpu = m["cpu_us_per_req"] - bare["cpu_us_per_req"]
                cpu_cell = "" if name == "bare" else f"**{added_cpu:+.1f}**"
                print(f"| {label} | {m['cpu_us_per_req']:.1f} | {cpu_cell} | {m['rps']:.0f} | "
                      f"{m['p50_us']:.0f} | {m['p99_us']:.0f} | {m['errors']} |")
            print()
            all_runs[len(body)] = runs
            summaries[len(body)] = summary
            if args.latency_rate:
                latencies[len(body)] = latency_phase(args, proxies, configs, tmp, body)
        gzip = gzip_phase(args, tmp)
        runs, summary = all_runs, summaries
        added = summaries[len(chat_body(args.body_bytes))]["filter"]["cpu_us_per_req"] - summaries[len(chat_body(args.body_bytes))]["bare"]["cpu_us_per_req"]
        added_full = summaries[len(chat_body(args.body_bytes))]["everything"]["cpu_us_per_req"] - summaries[len(chat_body(args.body_bytes))]["bare"]["cpu_us_per_req"]
        wasm_size = os.path.getsize(WASM)
        print(f"wasm size: {wasm_size} bytes; filter Envoy RSS {rss_before:.0f} MiB -> {filt.rss_mib():.0f} MiB over the runs\n")
        if args.cpu_only:
            return
        red_rows = redaction_bench(tmp, up_port, args.seconds // 2 or 1, 4)
        print("""Redaction inside Envoy (all 8 detectors + 1 custom pattern, request and response), 4 connections,
filter with vs without redaction, alternating, medians of 3 rounds:

| prompt | CPU µs/request without | with | added | MB/s inside the wasm VM | p50 added µs | errors |
|---|---|---|---|---|---|---|""")
        for kib, size, med, added_cpu, errors in red_rows:
            mbps = size / added_cpu if added_cpu > 0 else float("inf")
            print(f"| {kib} KiB | {med['plain']['cpu_us_per_req']:.1f} | {med['redact']['cpu_us_per_req']:.1f} | "
                  f"{added_cpu:+.1f} | {mbps:.0f} | {med['redact']['p50_us'] - med['plain']['p50_us']:+.0f} | {errors} |")
        print()
        mem = memory_bench(tmp, up_port, args.memory_requests, args.memory_reloads, args.connections)
        print(f"""Memory of Envoy + llm-ab (1 worker, ECDS) over {mem['requests']} requests and {mem['reloads']} configuration
reloads ({mem['reloads_applied']} applied): RSS {mem['rss_before_mib']:.1f} MiB -> {mem['rss_after_mib']:.1f} MiB, growth {mem['growth_pct']:+.1f} %;
the filter's wasm VMs (llm_ab_vm_memory_bytes): {mem['vm_before_mib']:.2f} MiB -> {mem['vm_after_mib']:.2f} MiB
""")
        for p in reversed(procs):
            p.stop()
        procs.clear()
        ttft = ttft_bench(tmp, args.ttft_requests)
        print(f"""Streaming time to first token through the proxy ({args.ttft_requests} streams each, alternating,
mock model backend; the filter parses every SSE event and strips the usage chunk it asked for):

| | TTFT p50 ms | TTFT p90 ms | errors |
|---|---|---|---|
| bare Envoy | {ttft['bare']['p50_ms']:.2f} | {ttft['bare']['p90_ms']:.2f} | {ttft['bare']['errors']} |
| Envoy + llm-ab | {ttft['filter']['p50_ms']:.2f} | {ttft['filter']['p90_ms']:.2f} | {ttft['filter']['errors']} |
| added by the filter | **{ttft['filter']['p50_ms'] - ttft['bare']['p50_ms']:+.2f}** | {ttft['filter']['p90_ms'] - ttft['bare']['p90_ms']:+.2f} | |
""")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"memory": mem, "gzip_client": gzip, "runs": runs, "summary": summary, "latency": latencies, "added_cpu_us": added, "added_cpu_us_everything": added_full, "ttft": ttft,
                           "redaction": [{"kib": k, "bytes": b, "median": m, "added_cpu_us": a, "errors": e}
                                         for k, b, m, a, e in red_rows],
                           "wasm_bytes": wasm_size, "body_bytes": len(body)}, f, indent=2)
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    main()
