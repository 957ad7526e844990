"""The command line the SDK drivers share: run the scenarios named on the
command line, each with its own trace id, and print what each saw as one
JSON object per line (an exception is reported, never hidden: the Rust test
fails on it)."""

import argparse
import hashlib
import json


def drive(add_arguments, scenarios, trace):
    """`add_arguments(parser)` adds the driver's options; `scenarios(args)`
    returns `{name: callable}`; `trace["id"]` is set per scenario (the
    driver's requests carry it in `traceparent`)."""
    p = argparse.ArgumentParser()
    add_arguments(p)
    p.add_argument("scenario", nargs="+")
    args = p.parse_args()
    table = scenarios(args)
    for name in args.scenario:
        trace["id"] = hashlib.sha256(name.encode()).hexdigest()[:32]
        try:
            out = table[name]()
        except Exception as e:  # reported, never hidden: the test fails on it
            out = {"unexpected": f"{type(e).__name__}: {e}"}
        print(json.dumps({"scenario": name, "trace_id": trace["id"], **out}), flush=True)
