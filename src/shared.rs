//! State shared by every worker VM of one Envoy: the key-value store with
//! compare-and-swap that quotas, circuit breakers and SLO windows live in
//! (Envoy's shared data in the filter, an in-memory map in tests).

/// Why a store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The value changed since it was read.
    CasMismatch,
    /// Anything else the host reported.
    Failed,
}

/// Key-value storage with compare-and-swap (Envoy shared data in the filter).
pub trait SharedStore {
    /// The value and its version.
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes `value` if the version is still `cas` (any version when `None`).
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// Updates `key` with `f` under compare-and-swap, retrying on conflicts;
/// `f` gets the current value and returns the new one (or `None` to leave
/// it). Returns what `f` returned last, or `None` when it gave up.
pub fn update<T>(
    store: &dyn SharedStore,
    key: &str,
    mut f: impl FnMut(Option<&[u8]>) -> Option<(Vec<u8>, T)>,
) -> Option<T> {
    let mut out = None;
    let written = update_bytes(store, key, &mut |value| {
        let (next, o) = f(value)?;
        out = Some(o);
        Some(next)
    });
    if written {
        out
    } else {
        None
    }
}

/// The next value of a key from its current one (`None`: give up).
type Next<'f> = dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>> + 'f;

/// [`update`]'s loop, once for every caller's type: whether a value `f`
/// gave was written.
fn update_bytes(store: &dyn SharedStore, key: &str, f: &mut Next) -> bool {
    for _ in 0..32 {
        let (value, cas) = store.get(key);
        let Some(next) = f(value.as_deref()) else {
            return false;
        };
        match store.set(key, &next, cas) {
            Ok(()) => return true,
            Err(StoreError::CasMismatch) => continue,
            Err(StoreError::Failed) => return false,
        }
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// An in-memory store with Envoy's CAS semantics.
    #[derive(Default)]
    pub(crate) struct MemStore {
        map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next: RefCell<u32>,
    }

    impl SharedStore for MemStore {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            match self.map.borrow().get(key) {
                Some((v, cas)) => (Some(v.clone()), Some(*cas)),
                None => (None, None),
            }
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            let mut map = self.map.borrow_mut();
            if let (Some((_, current)), Some(cas)) = (map.get(key), cas) {
                if *current != cas {
                    return Err(StoreError::CasMismatch);
                }
            }
            let mut next = self.next.borrow_mut();
            *next += 1;
            map.insert(key.to_string(), (value.to_vec(), *next));
            Ok(())
        }
    }

    #[test]
    fn update_applies_the_function() {
        let s = MemStore::default();
        let r = update(&s, "k", |v| {
            let n = v.map_or(0, |b| b.len());
            Some((vec![1; n + 1], n))
        });
        assert_eq!(r, Some(0));
        assert_eq!(s.get("k").0, Some(vec![1]));
        assert_eq!(update(&s, "k", |_| None::<(Vec<u8>, ())>), None);
    }
}
