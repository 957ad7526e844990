//! The proxy-wasm glue: the only code that calls the host.
//!
//! [`abi`] wraps each ABI call the filter makes, [`dispatch`] exports the
//! callbacks and routes them to the contexts; [`wasm_host`] performs each
//! `Host` method of [`crate::exchange`] as one hostcall and [`http`]
//! forwards a stream's callbacks to the exchange; [`root`] loads the
//! configuration, defines the metrics and runs the timers (review copies,
//! shadow copies, the VM memory gauge); [`shadow`] holds the VM's shadow
//! pairs and sends the copies; [`logger`] sends `log` records and panics
//! to Envoy's log. Compiled for `wasm32` only; everything it calls is
//! tested natively.

mod abi;
mod dispatch;
mod http;
mod logger;
mod memory;
mod review;
mod root;
mod shadow;
mod store;
mod wasm_host;
