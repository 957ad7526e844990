#!/usr/bin/env python3
"""`make run`: the llm-ab demo.

Starts two mock model backends and Envoy with envoy/envoy.yaml (the filter
loaded from target/), sends demo requests from distinct users, prints the
per-variant split it observed and where to look, then keeps everything
running until Ctrl-C and stops it cleanly. `--once` stops after the demo.
"""

import argparse
import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENVOY = os.environ.get("ENVOY_BIN", os.path.join(ROOT, ".venv/bin/envoy-bin"))
MOCK = os.path.join(ROOT, "target/release/llm-ab-mock")
CLI = os.path.join(ROOT, "target/release/llm-ab")
LISTENER, ADMIN = 10000, 9901
BACKENDS = {"model_a": 18001, "model_b": 18002}
RUN_DIR = os.path.join(ROOT, ".run")


def port_busy(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_ready(url, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with code {proc.returncode}; see {RUN_DIR}/")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.1)
    sys.exit(f"{what} not ready after {timeout}s; see {RUN_DIR}/")


def chat(user_headers, i):
    body = json.dumps({
        "model": "app-default",
        "messages": [{"role": "user", "content": f"demo question {i}"}],
    }).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{LISTENER}/v1/chat/completions", data=body, method="POST",
        headers={"content-type": "application/json", **user_headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            payload = json.loads(r.read())
            return (r.status, r.headers.get("x-llm-variant"), r.headers.get("x-mock-backend"),
                    payload.get("model"))
    except urllib.error.HTTPError as e:
        return (e.code, e.headers.get("x-llm-variant"), e.headers.get("x-mock-backend"), None)


def demo(users):
    jobs = [({"x-user-id": f"user-{i}@example.com"}, i) for i in range(users)]
    jobs += [({"x-session-id": f"session-{i}"}, i) for i in range(20)]
    jobs += [({}, i) for i in range(10)]  # no sticky key: control, counted as unassigned
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda j: chat(*j), jobs))
    split = {}
    for status, variant, backend, model in results:
        row = split.setdefault((variant, backend, model), [0, 0])
        row[0 if status == 200 else 1] += 1
    total = len(results)
    print(f"\nSent {total} chat requests ({users} distinct users, 20 sessions, 10 without a key):\n")
    print(f"  {'variant':<10} {'backend':<9} {'model seen upstream':<20} {'ok':>5} {'errors':>6} {'share':>7}")
    for (variant, backend, model), (ok, err) in sorted(split.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {str(variant):<10} {str(backend):<9} {str(model):<20} {ok:>5} {err:>6} {100.0 * (ok + err) / total:>6.1f}%")
    # Stickiness: the same users again must get the same variants.
    again = [chat(h, i) for h, i in jobs[:50]]
    sticky = sum(1 for a, b in zip(again, results[:50]) if a[1] == b[1])
    print(f"\n  stickiness: {sticky}/50 repeat requests got the same variant")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--once", action="store_true", help="stop after the demo traffic")
    ap.add_argument("--users", type=int, default=300)
    args = ap.parse_args()

    for name, path in (("Envoy", ENVOY), ("mock backend", MOCK)):
        if not os.path.exists(path):
            sys.exit(f"{name} not found at {path}: run `make run` (it installs and builds)")
    for port in [LISTENER, ADMIN, *BACKENDS.values()]:
        if port_busy(port):
            sys.exit(f"port {port} is in use: stop whatever listens there (an earlier `make run`?)")

    os.makedirs(RUN_DIR, exist_ok=True)
    procs = []

    def stop(*_):
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        print("stopped Envoy and the mock backends")
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for name, port in BACKENDS.items():
            log = open(os.path.join(RUN_DIR, f"{name}.log"), "w")
            p = subprocess.Popen([MOCK, "--name", name, "--port", str(port)], stdout=log, stderr=log)
            procs.append(p)
            wait_ready(f"http://127.0.0.1:{port}/healthz", p, f"mock {name}")
        envoy_log = os.path.join(RUN_DIR, "envoy.log")
        # The shipped access log goes to stdout: one JSON record per request.
        access_log = open(os.path.join(RUN_DIR, "access.log"), "w")
        p = subprocess.Popen(
            [ENVOY, "-c", "envoy/envoy.yaml", "--concurrency", "2", "--disable-hot-restart",
             "-l", "warn", "--log-path", envoy_log],
            cwd=ROOT, stdout=access_log, stderr=subprocess.DEVNULL)
        procs.append(p)
        wait_ready(f"http://127.0.0.1:{ADMIN}/ready", p, "Envoy")
        print(f"Envoy 1.40 with llm-ab on http://127.0.0.1:{LISTENER} "
              f"(backends model_a :{BACKENDS['model_a']}, model_b :{BACKENDS['model_b']})")
        demo(args.users)
        print(f"""
Where to look:
  stats      curl -s http://127.0.0.1:{ADMIN}/stats/prometheus | grep llm_ab
  admin      http://127.0.0.1:{ADMIN}/
  records    {RUN_DIR}/access.log  (one JSON line per request: variant, tokens, cost, latency, outcome)
  logs       {RUN_DIR}/envoy.log
  try it     curl -si http://127.0.0.1:{LISTENER}/v1/chat/completions -H 'content-type: application/json' \\
               -H 'x-user-id: alice' -d '{{"model":"x","messages":[{{"role":"user","content":"hi"}}]}}'
""")
        # The report of this demo's own traffic (histograms appear at Envoy's
        # 5 s stats flush).
        deadline = time.time() + 8
        while time.time() < deadline:
            stats = urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/stats/prometheus", timeout=5).read().decode()
            if any(l.startswith("llm_ab_latency_ms_count{") and not l.endswith(" 0") for l in stats.splitlines()):
                break
            time.sleep(0.5)
        print(f"$ llm-ab report --admin http://127.0.0.1:{ADMIN}\n", flush=True)
        subprocess.run([CLI, "report", "--admin", f"http://127.0.0.1:{ADMIN}"], check=False)
        if args.once:
            stop()
        print("\nRunning. Press Ctrl-C to stop.")
        while True:
            time.sleep(1)
            for p in procs:
                if p.poll() is not None:
                    print(f"a process exited ({p.args[0]}); stopping")
                    stop()
    except SystemExit:
        raise
    except BaseException:
        stop()


if __name__ == "__main__":
    main()
