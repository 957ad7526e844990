//! Benchmark only: times [`llm_ab::exchange::workload`] per configuration
//! and prints one line each, `name<TAB>ns per exchange<TAB>hostcalls`.
//! Built natively and for wasm32-wasip1 (run by `bench/inwasm.js` in
//! node's V8, the engine Envoy embeds), it shows what running as wasm
//! costs the filter's own code, apart from Envoy and the hostcalls.
//!
//! With a third argument `KIB` (e.g. 4096), each exchange also runs *cold*:
//! a buffer of that many KiB is written, one byte per cache line, before
//! every exchange, as Envoy's own work between two callbacks evicts the
//! VM's code and data; the line gets a fourth column, the cold ns per
//! exchange (the median over nine rounds of thrash + exchange minus
//! thrash alone).

use llm_ab::exchange::workload::{Workload, CONFIGURATIONS};
use std::time::Instant;

/// Writes one byte of every 64-byte line of `buf`; returns a value that
/// depends on all of them, so the writes are not optimized away.
fn thrash(buf: &mut [u8]) -> u64 {
    let mut sum = 0u64;
    for line in buf.chunks_mut(64) {
        line[0] = line[0].wrapping_add(1);
        sum = sum.wrapping_add(u64::from(line[0]));
    }
    sum
}

/// Nanoseconds per iteration of `f`, over `iterations`.
fn per_iteration(iterations: u32, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn main() {
    let arg = |i: usize| std::env::args().nth(i);
    let iterations: u32 = arg(1).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    // An optional second argument picks one configuration (for profiling;
    // `all` for every one).
    let only = arg(2).filter(|o| o != "all");
    let cold_kib: usize = arg(3).and_then(|n| n.parse().ok()).unwrap_or(0);
    for (name, config) in CONFIGURATIONS {
        if only.as_deref().is_some_and(|o| !name.starts_with(o)) {
            continue;
        }
        let Ok(mut w) = Workload::new(config) else {
            eprintln!("{name}: the configuration does not load");
            std::process::exit(1);
        };
        // Warm up (V8 compiles with TurboFan up front; caches, allocator).
        let mut calls = 0;
        for _ in 0..iterations / 4 {
            calls = w.run();
        }
        let ns = per_iteration(iterations, || calls = w.run());
        if cold_kib == 0 {
            println!("{name}\t{ns:.0}\t{calls}");
            continue;
        }
        let mut buf = vec![0u8; cold_kib * 1024];
        let mut sink = 0u64;
        let rounds = iterations / 20 + 1;
        let mut cold: Vec<f64> = (0..9)
            .map(|_| {
                let alone = per_iteration(rounds, || sink = sink.wrapping_add(thrash(&mut buf)));
                let both = per_iteration(rounds, || {
                    sink = sink.wrapping_add(thrash(&mut buf));
                    calls = w.run();
                });
                both - alone
            })
            .collect();
        cold.sort_by(f64::total_cmp);
        // `sink` is printed so the thrash cannot be optimized away.
        println!(
            "{name}\t{ns:.0}\t{calls}\t{:.0}\t(thrash sum {sink})",
            cold[4]
        );
    }
}
