//! API keys: random, shown once, stored as SHA-256 hashes; only a short prefix is kept
//! in the clear so a person can tell keys apart.

use rand::Rng;
use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "br_";

/// A fresh key: `br_` and 32 random bytes in hex.
pub fn new_key() -> String {
    format!("{KEY_PREFIX}{}", random_token(32))
}

/// `bytes` random bytes as lowercase hex.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The public part of a key shown in listings: `br_1a2b3c4d`.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(KEY_PREFIX.len() + 8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashes_hide_them() {
        let (a, b) = (new_key(), new_key());
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert!(!hash_key(&a).contains(&a[3..]));
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_eq!(key_prefix(&a).len(), 11);
    }
}
