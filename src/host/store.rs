//! Envoy shared data as the core's [`SharedStore`].

use super::abi;
use crate::shared::{SharedStore, StoreError};

/// Envoy shared data: one map for every VM of the proxy.
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        abi::shared_data(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        match abi::set_shared_data(key, value, cas) {
            abi::OK => Ok(()),
            abi::CAS_MISMATCH => Err(StoreError::CasMismatch),
            _ => Err(StoreError::Failed),
        }
    }
}
