//! llm-ab: an Envoy proxy-wasm filter for safe A/B tests of LLM models and
//! prompts.
//!
//! The crate is a pure decision core plus a thin host layer:
//! - [`config`]: the JSON contract, validation, and the compiled plan;
//! - [`assign`]: sticky bucket hashing (murmur3) and the ramp-safe bucket layout;
//! - [`unit_id`], [`sha256`]: the pseudonymous unit id of a sticky key (keyed
//!   HMAC-SHA256) and the hash under it;
//! - [`route`]: which experiment and variant a request gets, and its cluster;
//! - [`rollout`], [`slo`], [`shared`]: canary ramps and pauses, the health
//!   window of a variant, and the shared-data store they live in;
//! - [`body`]: request JSON validation, `model` rewrite, usage request, prompt estimate;
//! - [`sse`], [`chunk`], [`response`], [`usage`], [`tokens`]: SSE framing, one
//!   parse per stream event, reading usage (cached and reasoning tokens
//!   included) and refusals from JSON and SSE responses;
//! - [`redact`], [`pattern`]: PII and secret redaction, streams included;
//! - [`regex`]: the regex engine of custom and moderation patterns
//!   (regex-lite's syntax and matches, a Pike VM, a fraction of its size);
//! - [`guard`], [`output`], [`budget`]: guardrails (moderation, tools, output
//!   schema, review), the checks of a model's output, token budgets and quotas;
//! - [`trace`], [`record`]: the trace id and the per-request access-log record;
//! - [`encoding`]: which `content-encoding` the filter cannot read;
//! - [`error`]: client errors in each API's own error shape;
//! - [`stats`], [`metrics`], [`vm_memory`]: names of the Envoy stats, the
//!   filter's metric ids and what each event adds to them, the VM memory gauge;
//! - [`json`]: the JSON reader (serde_json's rules and errors, written by
//!   hand; no serde_json in the module), values of no fixed shape, the
//!   writer, and JSON span helpers;
//! - [`bytes`], [`sort`]: byte searches and the module's one sort;
//! - [`exchange`]: the request lifecycle as a state machine over a `Host`
//!   trait (request checks, safety, fallback, response, stream, finish),
//!   with a recording fake host for native tests and benchmarks;
//! - [`shadow`]: shadow traffic (copies of control's requests to candidate
//!   variants, their answers read and scored against control's);
//! - [`pool_alloc`]: the `.wasm`'s allocator (size-class free lists);
//! - `testing` (tests only): the unit tests' shared pseudo-random generator;
//! - `host` (wasm32 only): the proxy-wasm adapter (one hostcall per `Host`
//!   method), the root context and its timers.

pub mod assign;
pub mod body;
pub mod budget;
pub mod bytes;
pub mod chunk;
pub mod config;
pub mod dialect;
pub mod encoding;
pub mod error;
pub mod exchange;
#[cfg(not(target_arch = "wasm32"))]
pub mod fuzzing;
pub mod guard;
pub mod json;
pub mod metrics;
pub mod output;
pub mod pattern;
pub mod pool_alloc;
pub mod record;
pub mod redact;
pub mod regex;
pub mod response;
pub mod rollout;
pub mod route;
pub mod sha256;
pub mod shadow;
pub mod shared;
pub mod slo;
pub mod sort;
pub mod sse;
pub mod stats;
#[cfg(test)]
mod testing;
pub mod tokens;
pub mod trace;
pub mod unit_id;
pub mod usage;
pub mod vm_memory;

#[cfg(target_arch = "wasm32")]
mod host;

/// Small blocks from size-class free lists (see [`pool_alloc`]).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: pool_alloc::Global = pool_alloc::Global::new();
