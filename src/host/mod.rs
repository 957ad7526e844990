//! The proxy-wasm glue: the only code that calls the host.
//!
//! [`wasm_host`] performs each `Host` method of [`crate::exchange`] as one
//! hostcall and [`http`] forwards the SDK's callbacks to the exchange;
//! [`root`] loads the configuration, defines the metrics and runs
//! the timers (review copies, shadow copies, the VM memory gauge);
//! [`shadow`] holds the VM's shadow pairs and sends the copies. Compiled for `wasm32`
//! only; everything it calls is tested natively.

mod http;
mod memory;
mod review;
mod root;
mod shadow;
mod store;
mod wasm_host;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::Root::default()));
}}
