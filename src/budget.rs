//! Token and time budgets, and token quotas shared by every worker thread.
//!
//! Quotas count tokens per key (a header value such as the org id) in
//! one-minute windows. A request reserves its estimate (prompt estimate +
//! output cap) before it is forwarded and settles with the real usage when
//! it ends. The counts live in a [`SharedStore`] — Envoy's shared data, one
//! map for all worker VMs of a proxy — updated with compare-and-swap, so
//! two workers never lose each other's updates.

use crate::shared::update;
pub use crate::shared::{SharedStore, StoreError};

/// Compiled budgets.
#[derive(Debug, Clone, Default)]
pub struct Budgets {
    /// Largest estimated prompt.
    pub max_input_tokens: Option<u64>,
    /// Cap on completion tokens.
    pub max_output_tokens: Option<u64>,
    /// Token quotas.
    pub quotas: Vec<Quota>,
    /// Upstream timeout.
    pub timeout_ms: Option<u64>,
}

/// A token quota.
#[derive(Debug, Clone)]
pub struct Quota {
    /// Lowercase header carrying the key.
    pub key_header: String,
    /// Tokens per one-minute window.
    pub tokens_per_minute: u64,
}

/// Tokens held by one request in one quota window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    key: String,
    minute: u64,
    tokens: u64,
}

/// The answer to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Tokens reserved; settle them when the request ends.
    Granted(Reservation),
    /// Over quota: retry after this many seconds.
    Exceeded {
        /// Seconds until the window resets.
        retry_after_s: u64,
    },
    /// The store kept changing under us: let the request through, uncounted.
    Contended,
}

/// The store key of a quota and key value: never the raw value (it may be
/// an e-mail), only a 64-bit hash of it.
pub fn store_key(quota_index: usize, key_value: &str) -> String {
    // Written by hand: `format!` takes `core::fmt`'s long way.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(b"llm_ab.quota.");
    crate::json::push_decimal(&mut key, quota_index as u64);
    key.push(b'.');
    for seed in [17, 71] {
        let h = crate::assign::murmur3_32(key_value.as_bytes(), seed);
        for shift in (0..8).rev() {
            key.push(HEX[((h >> (shift * 4)) & 15) as usize]);
        }
    }
    // ASCII only: the conversion cannot fail.
    String::from_utf8(key).unwrap_or_default()
}

/// A quota window as stored: `minute:used`.
fn window_value(minute: u64, used: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    crate::json::push_decimal(&mut v, minute);
    v.push(b':');
    crate::json::push_decimal(&mut v, used);
    v
}

fn parse(value: Option<&[u8]>) -> (u64, u64) {
    let text = value
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("");
    let mut parts = text.split(':');
    let minute = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let used = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (minute, used)
}

/// Reserves `tokens` for `key` at time `now_s` (Unix seconds).
pub fn reserve(
    store: &dyn SharedStore,
    key: &str,
    limit: u64,
    tokens: u64,
    now_s: u64,
) -> Decision {
    let minute = now_s / 60;
    let mut exceeded = false;
    let granted = update(store, key, |value| {
        let (window, used) = parse(value);
        let used = if window == minute { used } else { 0 };
        exceeded = used.saturating_add(tokens) > limit;
        (!exceeded).then(|| (window_value(minute, used + tokens), ()))
    });
    match granted {
        Some(()) => Decision::Granted(Reservation {
            key: key.to_string(),
            minute,
            tokens,
        }),
        None if exceeded => Decision::Exceeded {
            retry_after_s: 60 - now_s % 60,
        },
        None => Decision::Contended,
    }
}

/// Replaces a reservation by the tokens really used (the window it was
/// made in only; once that window has passed there is nothing to fix).
pub fn settle(store: &dyn SharedStore, r: &Reservation, actual_tokens: u64) {
    if actual_tokens == r.tokens {
        return;
    }
    update(store, &r.key, |value| {
        let (window, used) = parse(value);
        let used = (used + actual_tokens).saturating_sub(r.tokens);
        (window == r.minute).then(|| (window_value(window, used), ()))
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::shared::tests::MemStore;
    use std::cell::RefCell;

    fn used(store: &MemStore, key: &str) -> u64 {
        parse(store.get(key).0.as_deref()).1
    }

    #[test]
    fn reserves_until_the_limit_then_refuses_with_retry_after() {
        let s = MemStore::default();
        let t = 600; // minute 10, second 0
        assert!(matches!(reserve(&s, "k", 100, 60, t), Decision::Granted(_)));
        assert!(matches!(
            reserve(&s, "k", 100, 40, t + 10),
            Decision::Granted(_)
        ));
        assert_eq!(
            reserve(&s, "k", 100, 1, t + 15),
            Decision::Exceeded { retry_after_s: 45 }
        );
        // The next minute starts from zero.
        assert!(matches!(
            reserve(&s, "k", 100, 100, t + 60),
            Decision::Granted(_)
        ));
        assert_eq!(
            reserve(&s, "k", 100, 101, t + 120),
            Decision::Exceeded { retry_after_s: 60 }
        );
    }

    #[test]
    fn settlement_replaces_the_estimate_with_usage() {
        let s = MemStore::default();
        let Decision::Granted(r) = reserve(&s, "k", 1000, 300, 60) else {
            panic!("not granted")
        };
        settle(&s, &r, 120);
        assert_eq!(used(&s, "k"), 120);
        settle(
            &s,
            &Reservation {
                tokens: 120,
                ..r.clone()
            },
            500,
        );
        assert_eq!(used(&s, "k"), 500);
        // A settlement after the window passed changes nothing.
        reserve(&s, "k", 1000, 10, 200);
        settle(&s, &r, 0);
        assert_eq!(used(&s, "k"), 10);
    }

    /// A store whose first `n` writes fail with a CAS mismatch after
    /// another worker's write, as interleaved workers would see.
    struct Racing {
        inner: MemStore,
        interleave: RefCell<u32>,
    }

    impl SharedStore for Racing {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            let mut n = self.interleave.borrow_mut();
            if *n > 0 {
                *n -= 1;
                // Another worker reserves 7 tokens between our read and write.
                let (v, c) = self.inner.get(key);
                let (m, u) = parse(v.as_deref());
                self.inner
                    .set(key, format!("{m}:{}", u + 7).as_bytes(), c)?;
            }
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn concurrent_updates_are_never_lost() {
        let s = Racing {
            inner: MemStore::default(),
            interleave: RefCell::new(3),
        };
        s.inner.set("k", b"1:0", None).unwrap_or(());
        assert!(matches!(
            reserve(&s, "k", 1000, 10, 60),
            Decision::Granted(_)
        ));
        // Three foreign reservations of 7 plus ours.
        assert_eq!(parse(s.get("k").0.as_deref()).1, 3 * 7 + 10);
    }

    #[test]
    fn keys_and_windows_are_written_as_format_wrote_them() {
        for (i, key) in [(0, "org-1"), (3, "alice@example.com"), (12, "")] {
            let hash = |seed| crate::assign::murmur3_32(key.as_bytes(), seed);
            assert_eq!(
                store_key(i, key),
                format!("llm_ab.quota.{i}.{:08x}{:08x}", hash(17), hash(71))
            );
        }
        for (m, u) in [
            (0, 0),
            (29_000_000, 1),
            (u64::MAX, 10_000_000_000),
            (7, u64::MAX),
        ] {
            assert_eq!(window_value(m, u), format!("{m}:{u}").into_bytes());
        }
    }

    #[test]
    fn store_keys_hide_the_key_value() {
        let k = store_key(0, "alice@example.com");
        assert!(k.starts_with("llm_ab.quota.0.") && !k.contains("alice"));
        assert_ne!(k, store_key(1, "alice@example.com"));
        assert_ne!(k, store_key(0, "bob@example.com"));
    }
}
