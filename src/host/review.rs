//! Copies of high-risk exchanges sent to a review endpoint, off the
//! client's path: exchanges queue their copy; the root context of the same
//! VM sends the queue on its tick with `dispatch_http_call`, so a slow or
//! down review sink never delays or fails a client's response.

use std::cell::RefCell;
use std::collections::VecDeque;

/// Most copies waiting per VM; more are dropped (and counted).
pub const MAX_QUEUED: usize = 1000;

/// One copy for review.
pub use crate::exchange::ReviewItem as Item;

thread_local! {
    /// This VM's queue (one VM per worker thread).
    static QUEUE: RefCell<VecDeque<Item>> = const { RefCell::new(VecDeque::new()) };
}

/// Queues a copy; `false` when the queue is full.
pub fn push(item: Item) -> bool {
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        if q.len() >= MAX_QUEUED {
            return false;
        }
        q.push_back(item);
        true
    })
}

/// Takes every queued copy.
pub fn drain() -> Vec<Item> {
    QUEUE.with(|q| q.borrow_mut().drain(..).collect())
}
