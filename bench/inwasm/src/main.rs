//! Benchmark only: times [`llm_ab::exchange::workload`] per configuration
//! and prints one line each, `name<TAB>ns per exchange<TAB>hostcalls`.
//! Built natively and for wasm32-wasip1 (run by `bench/inwasm.js` in
//! node's V8, the engine Envoy embeds), it shows what running as wasm
//! costs the filter's own code, apart from Envoy and the hostcalls.

use llm_ab::exchange::workload::{Workload, CONFIGURATIONS};
use std::time::Instant;

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    // An optional second argument picks one configuration (for profiling).
    let only = std::env::args().nth(2);
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
        let start = Instant::now();
        for _ in 0..iterations {
            calls = w.run();
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(iterations);
        println!("{name}\t{ns:.0}\t{calls}");
    }
}
