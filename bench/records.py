#!/usr/bin/env python3
"""`make bench` (issue 16's goals): the unit-level report's time and memory.

1. `llm-ab report --records` over a generated access log of 10 million
   records (about 4 GB, the filter's own record shape: every field, heavy-
   tailed users, three variants, seven days, unit ids), with its maximum
   resident set size from /usr/bin/time -v. Goal: under 60 s, under 500 MB.
2. `llm-ab report --aggregates` over analysis/aggregate.sql's result for
   10,000 buckets x 3 variants (one day; CSV). Goal: under 1 s.

The files go to a temporary directory and are deleted afterwards (--keep
keeps them). Measured, never asserted: nothing here fails on a number.
"""

import argparse
import bisect
import itertools
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.path.join(ROOT, "target/release/llm-ab")

CONFIG = {
    "default_cluster": "model_a",
    "experiments": [{
        "id": "chat-q4", "sticky_keys": ["x-user-id"], "unit_id_key": "bench-unit-id-key-0123",
        "variants": [
            {"name": "control", "weight": 50, "cluster": "model_a", "model": "gpt-4o-mini"},
            {"name": "candidate", "weight": 25, "cluster": "model_b", "model": "gpt-4.1-mini"},
            {"name": "candidate2", "weight": 25, "cluster": "model_b", "model": "gpt-4.1"},
        ],
    }],
}
DAY_MS = 86_400_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def variant_of(bucket):
    """The lane layout of CONFIG: two treatments, lanes of 5000 buckets."""
    lane, offset = divmod(bucket, 5000)
    if offset < 2500:
        return ("candidate", "candidate2")[lane]
    return "control"


def generate(path, n, users, seed=16):
    """Writes `n` records of `users` users with Pareto(1.2) activity."""
    rng = random.Random(seed)
    population = []
    for u in range(users):
        bucket = rng.randrange(10_000)
        population.append((
            bucket, variant_of(bucket), "%016x" % rng.getrandbits(64),
            rng.uniform(0.85, 0.995),          # the user's success rate
            rng.lognormvariate(6.0, 0.6),      # the user's typical latency (ms)
            rng.lognormvariate(5.5, 1.0),      # prompt size (tokens)
        ))
    weights = [rng.paretovariate(1.2) for _ in range(users)]
    cum = list(itertools.accumulate(weights))
    models = {"control": "gpt-4o-mini", "candidate": "gpt-4.1-mini", "candidate2": "gpt-4.1"}
    batch = 100_000
    written = 0
    with open(path, "w", buffering=1 << 22) as out:
        while written < n:
            k = min(batch, n - written)
            picks = rng.choices(population, cum_weights=cum, k=k)
            lines = []
            for i, (bucket, variant, unit, success, lat, tin) in enumerate(picks):
                seq = written + i
                r = rng.random()
                outcome = "success" if r < success else ("error" if r < success + (1 - success) * 0.8 else "refusal")
                latency = int(lat * (0.3 + 1.4 * rng.random()))
                tokens_in = int(tin * (0.5 + rng.random()))
                tokens_out = 20 + (seq * 7919) % 400
                cost = (tokens_in * 0.15 + tokens_out * 0.6) / 1e6
                model = models[variant]
                trace = "%032x" % ((seq * 0x9E3779B97F4A7C15B97F4A7C15) & ((1 << 128) - 1))
                lines.append(
                    f'{{"trace_id":"{trace}","request_id":"{trace[:8]}-{trace[8:12]}-{trace[12:16]}-{trace[16:20]}-{trace[20:]}",'
                    f'"start_unix_ms":{START_MS + seq * 7 * DAY_MS // n},"experiment_id":"chat-q4",'
                    f'"assigned_variant":"{variant}","served_variant":"{variant}","reason":"hashed","bucket":{bucket},'
                    f'"unit_id":"{unit}","model":"{model}","response_model":"{model}-2024-07-18","prompt_version":"p12",'
                    f'"rag_index_version":"r7","stream":true,"api":"openai.chat","tokens_in":{tokens_in},'
                    f'"tokens_in_cached":0,"tokens_in_cache_write":0,"tokens_out":{tokens_out},"tokens_reasoning":0,'
                    f'"tokens_source":"usage","cost_usd_est":{cost!r},"latency_ms":{latency},"ttft_ms":{latency // 3},'
                    f'"status":200,"outcome":"{outcome}","error_code":null,"schema_pass":null}}\n')
            out.write("".join(lines))
            written += k


def edges():
    out = []
    for k in range(121):
        e = math.floor(2 ** (k / 6) + 0.5)
        if e not in out:
            out.append(e)
    return out


def write_aggregates(path, buckets=10_000, variants=("control", "candidate", "candidate2"), seed=16):
    """analysis/aggregate.sql's result for `buckets` x `variants` (one day)."""
    rng = random.Random(seed)
    bounds = edges()
    columns = ["experiment_id", "variant", "bucket", "utc_day", "outcome_metric", "requests", "successes",
               "errors", "refusals", "blocked", "invalid", "fallbacks", "schema_checked", "schema_passed",
               "cost_nano_usd", "tokens_in", "tokens_out", "latency_ms", "new_units", "outcome_micro"]
    columns += [f"latency_lt_{e}" for e in bounds]
    with open(path, "w") as out:
        out.write(",".join(columns) + "\n")
        for v in variants:
            for b in range(buckets):
                n = 1 + int(rng.paretovariate(1.2))
                ok = sum(rng.random() < 0.95 for _ in range(min(n, 50))) * n // min(n, 50)
                lat = sorted(int(rng.lognormvariate(6.0, 0.6)) for _ in range(min(n, 50)))
                cum = [n * bisect.bisect_left(lat, e) // len(lat) for e in bounds]
                row = ["chat-q4", v, b, 20454, "", n, ok, n - ok, 0, 0, 0, 0, 0, 0, n * 150_000, n * 300,
                       n * 80, sum(lat) * n // len(lat), 1, 0] + cum
                out.write(",".join(map(str, row)) + "\n")


def timed(cmd):
    """Runs `cmd` under /usr/bin/time -v: (wall s, max RSS MB, stderr)."""
    proc = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, check=True)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", proc.stderr)
    h, m, s = wall.groups()
    seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return seconds, rss_kb / 1024, proc.stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="llm-ab-bench-records-")
    try:
        config = os.path.join(tmp, "filter.json")
        with open(config, "w") as f:
            json.dump(CONFIG, f)
        records = os.path.join(tmp, "records.jsonl")
        t = time.time()
        generate(records, args.records, args.users)
        size = os.path.getsize(records)
        print(f"generated {args.records:,} records, {size / 1e9:.2f} GB, in {time.time() - t:.0f} s")
        wall, rss, err = timed([CLI, "report", "--records", records, "--config", config, "--format", "json"])
        summary = next((l for l in err.splitlines() if l.startswith("llm-ab:")), "")
        print(f"--records: {wall:.1f} s wall, {size / 1e6 / wall:.0f} MB/s, max RSS {rss:.0f} MB "
              f"(goals: < 60 s, < 500 MB)\n  {summary}")
        aggregates = os.path.join(tmp, "aggregates.csv")
        write_aggregates(aggregates)
        runs = [timed([CLI, "report", "--aggregates", aggregates, "--config", config, "--format", "json"])
                for _ in range(3)]
        walls = sorted(r[0] for r in runs)
        print(f"--aggregates (10,000 buckets x 3 variants, {os.path.getsize(aggregates) / 1e6:.1f} MB CSV): "
              f"median {statistics.median(walls):.2f} s of {', '.join(f'{w:.2f}' for w in walls)}, "
              f"max RSS {max(r[1] for r in runs):.0f} MB (goal: < 1 s)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
