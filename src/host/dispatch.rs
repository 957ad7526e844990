//! The ABI callbacks the filter implements, routed to its contexts: the
//! root contexts (one per plugin configuration in the VM: [`Root`]) and
//! one [`HttpFilter`] per HTTP stream. Envoy skips a callback the module
//! does not export, so only these are (`src/host/exports.json`):
//! `proxy_on_done` is not, so Envoy takes each context as done at once
//! (one VM entry per request fewer).
//!
//! A side call's answer goes to the context that sent it, made the
//! effective one first (the call's token is noted with the context that
//! was running when it was sent). A callback for a context the VM does
//! not know (a re-entrant call, an id already deleted) is ignored, never a
//! trap.

use super::abi;
use super::http::HttpFilter;
use super::root::Root;
use std::cell::{Cell, RefCell};

thread_local! {
    /// Root contexts by id.
    static ROOTS: RefCell<Vec<(u32, Root)>> = const { RefCell::new(Vec::new()) };
    /// HTTP streams by id, sorted by id (Envoy numbers contexts upward, so
    /// a new one goes at the end).
    static STREAMS: RefCell<Vec<(u32, Box<HttpFilter>)>> = const { RefCell::new(Vec::new()) };
    /// Side calls in flight: token and the context that sent it.
    static CALLS: RefCell<Vec<(u32, u32)>> = const { RefCell::new(Vec::new()) };
    /// The context whose callback is running.
    static ACTIVE: Cell<u32> = const { Cell::new(0) };
}

/// Sends a side call for the running context, its answer to come back to
/// it; the call's token (`None` when the host refused it).
pub fn http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u64,
) -> Option<u32> {
    let token = abi::http_call(cluster, headers, body, timeout_ms)?;
    let active = ACTIVE.with(Cell::get);
    CALLS.with(|c| {
        if let Ok(mut calls) = c.try_borrow_mut() {
            calls.push((token, active));
        }
    });
    Some(token)
}

/// Runs `f` on stream `id` (nothing when unknown or already borrowed).
fn stream<T>(id: u32, f: impl FnOnce(&mut HttpFilter) -> T) -> Option<T> {
    ACTIVE.with(|a| a.set(id));
    STREAMS.with(|s| {
        let mut streams = s.try_borrow_mut().ok()?;
        let i = streams.binary_search_by_key(&id, |(k, _)| *k).ok()?;
        let (_, filter) = streams.get_mut(i)?;
        Some(f(filter))
    })
}

/// Runs `f` on root context `id` (nothing when unknown or already borrowed).
fn root<T>(id: u32, f: impl FnOnce(&mut Root) -> T) -> Option<T> {
    ACTIVE.with(|a| a.set(id));
    ROOTS.with(|r| {
        let mut roots = r.try_borrow_mut().ok()?;
        let (_, root) = roots.iter_mut().find(|(k, _)| *k == id)?;
        Some(f(root))
    })
}

/// The module's start: the logger and the panic hook (a panic's message
/// goes to Envoy's log before the VM traps).
#[no_mangle]
pub extern "C" fn _initialize() {
    extern "C" {
        fn __wasm_call_ctors();
    }
    // SAFETY: the reactor's static constructors, run once, first.
    unsafe { __wasm_call_ctors() };
    super::logger::install();
}

/// The ABI version the module speaks.
#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory the host fills and hands back (see [`abi::allocate`]).
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    abi::allocate(size)
}

/// A new context: a root (`root_id` 0) or an HTTP stream of root `root_id`.
#[no_mangle]
pub extern "C" fn proxy_on_context_create(id: u32, root_id: u32) {
    if root_id == 0 {
        ROOTS.with(|r| {
            if let Ok(mut roots) = r.try_borrow_mut() {
                roots.retain(|(k, _)| *k != id);
                roots.push((id, Root::default()));
            }
        });
        return;
    }
    let Some(filter) = root(root_id, |r| r.new_stream()) else {
        return;
    };
    STREAMS.with(|s| {
        if let Ok(mut streams) = s.try_borrow_mut() {
            match streams.binary_search_by_key(&id, |(k, _)| *k) {
                Ok(i) => {
                    if let Some(slot) = streams.get_mut(i) {
                        *slot.1 = filter;
                    }
                }
                Err(i) => streams.insert(i, (id, Box::new(filter))),
            }
        }
    });
}

/// The VM started (nothing to do: each root reads its configuration).
#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_id: u32, _size: usize) -> bool {
    true
}

/// A root context's configuration: `false` refuses it.
#[no_mangle]
pub extern "C" fn proxy_on_configure(id: u32, size: usize) -> bool {
    root(id, |r| r.on_configure(size)).unwrap_or(false)
}

/// A root context's timer.
#[no_mangle]
pub extern "C" fn proxy_on_tick(id: u32) {
    root(id, Root::on_tick);
}

/// Request headers of stream `id`.
#[no_mangle]
pub extern "C" fn proxy_on_request_headers(id: u32, _headers: usize, end: bool) -> u32 {
    stream(id, |f| f.on_request_headers(end)).unwrap_or(0)
}

/// A request body chunk of stream `id`.
#[no_mangle]
pub extern "C" fn proxy_on_request_body(id: u32, size: usize, end: bool) -> u32 {
    stream(id, |f| f.on_request_body(size, end)).unwrap_or(0)
}

/// Request trailers of stream `id`.
#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(id: u32, _trailers: usize) -> u32 {
    stream(id, HttpFilter::on_request_trailers).unwrap_or(0)
}

/// Response headers of stream `id`.
#[no_mangle]
pub extern "C" fn proxy_on_response_headers(id: u32, _headers: usize, end: bool) -> u32 {
    stream(id, |f| f.on_response_headers(end)).unwrap_or(0)
}

/// A response body chunk of stream `id`.
#[no_mangle]
pub extern "C" fn proxy_on_response_body(id: u32, size: usize, end: bool) -> u32 {
    stream(id, |f| f.on_response_body(size, end)).unwrap_or(0)
}

/// Stream `id` is being logged (its record).
#[no_mangle]
pub extern "C" fn proxy_on_log(id: u32) {
    stream(id, HttpFilter::on_log);
}

/// Context `id` is gone; so are its side calls still out.
#[no_mangle]
pub extern "C" fn proxy_on_delete(id: u32) {
    let removed = STREAMS.with(|s| {
        let mut streams = s.try_borrow_mut().ok()?;
        let i = streams.binary_search_by_key(&id, |(k, _)| *k).ok()?;
        Some(streams.remove(i))
    });
    if removed.is_none() {
        ROOTS.with(|r| {
            if let Ok(mut roots) = r.try_borrow_mut() {
                roots.retain(|(k, _)| *k != id);
            }
        });
    }
    CALLS.with(|c| {
        if let Ok(mut calls) = c.try_borrow_mut() {
            calls.retain(|(_, owner)| *owner != id);
        }
    });
}

/// A side call answered: to the context that sent it.
#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    _root: u32,
    token: u32,
    _headers: usize,
    body: usize,
    _trailers: usize,
) {
    let owner = CALLS.with(|c| {
        let mut calls = c.try_borrow_mut().ok()?;
        let i = calls.iter().position(|(t, _)| *t == token)?;
        Some(calls.swap_remove(i).1)
    });
    let Some(owner) = owner else {
        return;
    };
    abi::set_effective_context(owner);
    if stream(owner, |f| f.on_call_response(body)).is_none() {
        root(owner, |r| r.on_http_call_response(token, body));
    }
}
