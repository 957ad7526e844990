//! The pseudonymous unit id of a sticky key: a keyed HMAC-SHA256 (RFC 2104)
//! of the key's value, truncated to 64 bits and written as 16 hex digits.
//!
//! With an experiment's `unit_id_key`, the record carries it beside the
//! bucket so that an analysis can count distinct users (sample-ratio checks
//! where every bucket has traffic) without ever seeing a raw user id: the
//! id cannot be reversed or recomputed without the key, and the key is
//! never logged.

use crate::sha256::{self, Sha256};

/// A unit id: the first 8 bytes of the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnitId(pub [u8; 8]);

impl UnitId {
    /// The 16 lowercase hex digits the record carries.
    pub fn hex(self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(16);
        for b in self.0 {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }
}

/// An HMAC-SHA256 key with its inner and outer pads already hashed: one
/// unit id costs two SHA-256 blocks.
#[derive(Clone)]
pub struct UnitKey {
    inner: Sha256,
    outer: Sha256,
}

impl std::fmt::Debug for UnitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key, not even in a debug dump of the plan.
        f.write_str("UnitKey(..)")
    }
}

impl UnitKey {
    /// The key (a key longer than SHA-256's 64-byte block is hashed first).
    pub fn new(key: &[u8]) -> UnitKey {
        let mut block = [0u8; 64];
        if key.len() > block.len() {
            block[..32].copy_from_slice(&sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let pad = |byte: u8| {
            let mut h = Sha256::default();
            h.update(&block.map(|b| b ^ byte));
            h
        };
        UnitKey {
            inner: pad(0x36),
            outer: pad(0x5c),
        }
    }

    /// HMAC-SHA256 of `message` under this key.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        inner.update(message);
        let mut outer = self.outer.clone();
        outer.update(&inner.finalize());
        outer.finalize()
    }

    /// The unit id of a sticky key's value.
    pub fn unit_id(&self, sticky_value: &str) -> UnitId {
        let mac = self.mac(sticky_value.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&mac[..8]);
        UnitId(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test cases 1, 2, 4 and 6 (a key longer than the block).
        let cases: [(Vec<u8>, &[u8], &str); 4] = [
            (
                vec![0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                (1u8..=25).collect(),
                &[0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, message, want) in cases {
            assert_eq!(hex(&UnitKey::new(&key).mac(message)), want);
        }
    }

    #[test]
    fn a_unit_id_is_the_hmac_truncated_to_16_hex_digits() {
        let key = UnitKey::new(b"Jefe");
        let id = key.unit_id("what do ya want for nothing?");
        assert_eq!(id.hex(), "5bdcc146bf60754e");
        assert_eq!(key.unit_id("what do ya want for nothing?"), id, "stable");
        assert_ne!(key.unit_id("another user"), id);
        assert_ne!(
            UnitKey::new(b"another key").unit_id("what do ya want for nothing?"),
            id
        );
        assert_eq!(format!("{key:?}"), "UnitKey(..)", "the key never shows");
    }
}
