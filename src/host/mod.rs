//! The proxy-wasm glue: the only code that calls the host.
//!
//! It reads headers and bodies, hands them to the pure core
//! ([`crate::route`], [`crate::body`]) and applies the decisions. Compiled
//! for `wasm32` only; everything it calls is tested natively.

mod http;
mod memory;
mod metrics;
mod review;
mod root;
mod store;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::Root::default()));
}}
