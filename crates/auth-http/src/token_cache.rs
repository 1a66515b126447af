//! Bearer tokens that already passed full verification, remembered so that
//! the next request with the same token costs a SHA-256 and a map lookup
//! instead of a signature check (Ed25519 verification is ≈ 45 µs, several
//! times the cost of the rest of a `/me` request).
//!
//! - Keyed by SHA-256 of the exact token string. A hit needs the same bytes
//!   as a token that was verified; another string with the same digest can't
//!   be found (second-preimage resistance), so a hit proves what the
//!   signature check proved. The digest is compared in constant time after
//!   the map lookup; the map itself only ever sees digests, never tokens.
//! - An entry ends with its token: it is used only while
//!   `now < exp + leeway`, the same bound verification applies.
//! - An entry holds only for the key set it was verified with (the
//!   verifier's key generation): once keys are replaced (rotated, or one
//!   revoked) every token is verified again, so a revoked key's tokens are
//!   refused from the reload on, cached or not.
//! - Bounded: at most `capacity` entries, in 16 shards; a full shard drops
//!   its oldest entry (first in, first out), so a flood of new tokens costs
//!   one eviction per insert and never more memory.
//! - Revocation is NOT cached: callers check the revocation set on every
//!   request, hit or miss, so a logout takes effect at once.
//!
//! `capacity = 0` turns the cache off (every request verifies).

use std::collections::{HashMap, VecDeque};
use std::sync::RwLock;

use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;

const SHARDS: usize = 16;

type Digest = [u8; 32];

pub struct TokenCache<V> {
    shards: Box<[RwLock<Shard<V>>]>,
    per_shard: usize,
}

struct Shard<V> {
    map: HashMap<u128, Entry<V>>,
    /// Insertion order, oldest first: what to evict when full. Holds exactly
    /// the keys of `map`.
    order: VecDeque<u128>,
}

struct Entry<V> {
    digest: Digest,
    valid_until: i64,
    /// The key generation the token was verified with.
    keys: u64,
    value: V,
}

impl<V: Clone> TokenCache<V> {
    /// A cache of at most `capacity` tokens (rounded up to a multiple of 16);
    /// 0 disables it.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        let shards = (0..SHARDS)
            .map(|_| {
                RwLock::new(Shard {
                    map: HashMap::new(),
                    order: VecDeque::new(),
                })
            })
            .collect();
        Self { shards, per_shard }
    }

    pub fn enabled(&self) -> bool {
        self.per_shard > 0
    }

    /// The value stored for this exact token, if it is still within its
    /// lifetime and was verified with the key generation `keys`.
    pub fn get(&self, token: &str, now: i64, keys: u64) -> Option<V> {
        if !self.enabled() {
            return None;
        }
        let digest = sha256(token);
        let (shard, key) = self.locate(&digest);
        let shard = shard.read().unwrap_or_else(|e| e.into_inner());
        let entry = shard.map.get(&key)?;
        let same: bool = entry.digest.ct_eq(&digest).into();
        (same && now < entry.valid_until && entry.keys == keys).then(|| entry.value.clone())
    }

    /// Remembers a token verified with key generation `keys` until
    /// `valid_until` (unix seconds, exclusive).
    pub fn insert(&self, token: &str, value: V, valid_until: i64, keys: u64) {
        if !self.enabled() {
            return;
        }
        let digest = sha256(token);
        let (shard, key) = self.locate(&digest);
        let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
        let entry = Entry {
            digest,
            valid_until,
            keys,
            value,
        };
        if shard.map.insert(key, entry).is_some() {
            return; // two requests raced on the same new token: already counted
        }
        shard.order.push_back(key);
        while shard.order.len() > self.per_shard {
            if let Some(oldest) = shard.order.pop_front() {
                shard.map.remove(&oldest);
            }
        }
    }

    /// Entries held now (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn locate(&self, digest: &Digest) -> (&RwLock<Shard<V>>, u128) {
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        let shard = &self.shards[usize::from(digest[16]) % SHARDS];
        (shard, u128::from_le_bytes(key))
    }
}

fn sha256(token: &str) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_only_for_the_same_token_and_before_expiry() {
        let cache = TokenCache::new(100);
        cache.insert("token-a", 1, 1_000, 0);
        assert_eq!(cache.get("token-a", 999, 0), Some(1));
        assert_eq!(cache.get("token-a", 1_000, 0), None, "expired");
        assert_eq!(cache.get("token-a", 999, 1), None, "keys replaced since");
        assert_eq!(cache.get("token-b", 10, 0), None);
        assert_eq!(cache.get("token-a ", 10, 0), None);
    }

    #[test]
    fn bounded_oldest_first() {
        let cache = TokenCache::new(SHARDS); // one entry per shard
        for i in 0..1_000 {
            cache.insert(&format!("token-{i}"), i, i64::MAX, 0);
        }
        assert!(cache.len() <= SHARDS, "{}", cache.len());
        assert_eq!(cache.get("token-999", 0, 0), Some(999), "newest kept");
        assert_eq!(cache.get("token-0", 0, 0), None, "oldest evicted");
    }

    #[test]
    fn reinserting_does_not_grow_the_queue() {
        let cache = TokenCache::new(SHARDS * 2);
        for _ in 0..10 {
            cache.insert("same", 7, i64::MAX, 0);
        }
        assert_eq!(cache.len(), 1);
        let queued: usize = cache
            .shards
            .iter()
            .map(|s| s.read().unwrap().order.len())
            .sum();
        assert_eq!(queued, 1);
    }

    #[test]
    fn zero_capacity_disables() {
        let cache = TokenCache::new(0);
        cache.insert("t", 1, i64::MAX, 0);
        assert_eq!(cache.get("t", 0, 0), None);
        assert!(cache.is_empty());
    }
}
