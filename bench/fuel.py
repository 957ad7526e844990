"""Wasm instructions per exchange: bench/inwasm's workload (a whole 2 KB
chat exchange over the fake host, per configuration) run by wasmtime with
fuel metering, which charges one unit per wasm instruction executed. Unlike
any timing on a shared machine it is deterministic, so a change to the hot
path shows as a number that does not move with the noise.

Usage: .venv/bin/python bench/fuel.py path/to/llm-ab-inwasm.wasm [configuration ...]
(the wasm32-wasip1 build of bench/inwasm; configurations by name prefix:
routing, default, everything).

The count includes the fake host's own work (recording every call, copying
header pairs), about the same in every build; compare builds, not the
figure with Envoy's CPU.
"""
import sys

import wasmtime

FUEL = 10**15


def instructions(path, iterations, only):
    """Fuel spent by one run of the workload: `iterations` / 4 warm-up
    exchanges, then `iterations`."""
    config = wasmtime.Config()
    config.consume_fuel = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module.from_file(engine, path)
    store = wasmtime.Store(engine)
    store.set_fuel(FUEL)
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["llm-ab-inwasm", str(iterations), only]
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    # The library's proxy-wasm imports are linked but never called here.
    for imp in module.imports:
        if imp.module == "env":
            returns = len(list(imp.type.results))
            linker.define_func("env", imp.name, imp.type,
                               lambda *_, r=returns: 0 if r == 1 else None)
    instance = linker.instantiate(store, module)
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        if e.code != 0:
            sys.exit(f"{only}: the workload exited with {e.code}")
    return FUEL - store.get_fuel()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    for only in sys.argv[2:] or ["routing", "default", "everything"]:
        # Two runs differing by 500 exchanges (400 + 100 warm-up against
        # 800 + 200): start-up and configuration loading cancel out.
        per = (instructions(path, 800, only) - instructions(path, 400, only)) / 500
        print(f"{only}\t{per:.0f} wasm instructions per exchange")


if __name__ == "__main__":
    main()
