//! Read-through caches in front of the database for GetId's hot path: identity pools by id, and which
//! identity owns a (pool, provider, user) login; and pools' tags, for DescribeIdentityPool where
//! the cache is exact (one process owns the database: `Store::cache_is_exact`).
//!
//! Correctness rests on two rules. (1) Only writes that add rows may leave the cache alone: a
//! new identity or a new link never changes an existing mapping. Every transaction with a step
//! that can — merges, unlinks, disabling, deletions, pool updates, and on SQLite tag changes (see
//! `Tx::changes_mappings`) —
//! has the engine clear the cache right after its commit, before any caller is answered and
//! whether or not the caller still waits. (2) A reader stores what it read only if no clear happened since it
//! began (a generation number), so a value read before a commit can never outlive the clear
//! that follows it.
//!
//! Memory is bounded and allocation-free per entry: a login is kept as 16 bytes of the
//! SHA-256 of its (pool, provider, subject) and its identity as a region number and the 16
//! bytes of its UUID — 33 bytes in all, no heap allocation of its own — in two generations of
//! [`GENERATION`] entries each, the older emptied whole (and its table reused) when the newer
//! fills, so a million different users cost the same memory as a quarter million and
//! forgetting them costs no frees. (Two logins with the same 128-bit digest would need about
//! 2^64 tries to find even for someone choosing both; finding one that matches another
//! user's login, 2^128.) Ids not in the `<region>:<lower-case uuid>` form this server makes are
//! simply not cached.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::model::Pool;

/// Login → identity entries per generation: 7/8 of a 2^18-bucket table, so a generation's
/// table never grows (and is never reallocated) once made. Two generations: ~18 MB at most.
pub const GENERATION: usize = (1 << 18) / 8 * 7;
/// Pools kept at most (an account has at most 1,000).
pub const POOL_CAPACITY: usize = 10_000;
/// Regions an identity id may name and still be cached.
const MAX_REGIONS: usize = 64;

/// A login as the cache keys it: see [`login_key`].
pub type LoginKey = [u8; 16];

/// The key of a login: the first 16 bytes of SHA-256 over pool, provider and subject,
/// separated by a byte none of them holds.
pub fn login_key(pool: &str, provider: &str, subject: &str) -> LoginKey {
    let mut h = Sha256::new();
    h.update(pool.as_bytes());
    h.update([0u8]);
    h.update(provider.as_bytes());
    h.update([0u8]);
    h.update(subject.as_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Keys are already uniform digests: their first 8 bytes are the hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(b);
        }
    }
    fn write_usize(&mut self, _: usize) {
        // The length prefix of a fixed-size key says nothing.
    }
}

/// An identity id in 17 bytes: its region's number in [`Inner::regions`] and its UUID.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Packed {
    region: u8,
    uuid: [u8; 16],
}

type Logins = HashMap<LoginKey, Packed, BuildHasherDefault<DigestHasher>>;

fn new_logins() -> Logins {
    HashMap::with_capacity_and_hasher(GENERATION, BuildHasherDefault::default())
}

struct Inner {
    generation: u64,
    pools: HashMap<String, Arc<Pool>>,
    /// Pools' tags, for DescribeIdentityPool on an engine whose cache is exact.
    tags: HashMap<String, Arc<BTreeMap<String, String>>>,
    logins: Logins,
    older_logins: Logins,
    regions: Vec<Box<str>>,
}

impl Inner {
    fn pack(&mut self, id: &str) -> Option<Packed> {
        let (region, text) = id.split_once(':')?;
        let uuid = uuid::Uuid::try_parse(text).ok()?;
        // Only the canonical text round-trips exactly.
        if uuid
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            != text
        {
            return None;
        }
        let index = match self.regions.iter().position(|r| &**r == region) {
            Some(i) => i,
            None if self.regions.len() < MAX_REGIONS => {
                self.regions.push(region.into());
                self.regions.len() - 1
            }
            None => return None,
        };
        Some(Packed {
            region: u8::try_from(index).ok()?,
            uuid: *uuid.as_bytes(),
        })
    }

    fn unpack(&self, p: Packed) -> Option<String> {
        let region = self.regions.get(usize::from(p.region))?;
        let mut id = String::with_capacity(region.len() + 37);
        id.push_str(region);
        id.push(':');
        id.push_str(
            uuid::Uuid::from_bytes(p.uuid)
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        );
        Some(id)
    }

    fn insert_login(&mut self, key: LoginKey, p: Packed) {
        if self.logins.len() >= GENERATION && !self.logins.contains_key(&key) {
            // The older generation goes; its table, emptied, becomes the newer one.
            let mut table = std::mem::take(&mut self.older_logins);
            table.clear();
            self.older_logins = std::mem::replace(&mut self.logins, table);
        }
        self.logins.insert(key, p);
    }
}

/// The caches. Cheap to consult: one uncontended mutex and a hash lookup.
pub struct Cache {
    inner: Mutex<Inner>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            inner: Mutex::new(Inner {
                generation: 0,
                pools: HashMap::new(),
                tags: HashMap::new(),
                logins: new_logins(),
                older_logins: new_logins(),
                regions: Vec::new(),
            }),
        }
    }
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the maps are still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation a reader notes before it reads the database.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// A cached pool.
    pub fn pool(&self, id: &str) -> Option<Arc<Pool>> {
        self.lock().pools.get(id).cloned()
    }

    /// Caches a pool read at `generation`.
    pub fn put_pool(&self, generation: u64, pool: Arc<Pool>) {
        let mut g = self.lock();
        if g.generation != generation {
            return;
        }
        if g.pools.len() >= POOL_CAPACITY {
            g.pools.clear();
        }
        g.pools.insert(pool.id.clone(), pool);
    }

    /// A pool's cached tags.
    pub fn tags(&self, pool: &str) -> Option<Arc<BTreeMap<String, String>>> {
        self.lock().tags.get(pool).cloned()
    }

    /// Caches a pool's tags read at `generation`.
    pub fn put_tags(&self, generation: u64, pool: &str, tags: Arc<BTreeMap<String, String>>) {
        let mut g = self.lock();
        if g.generation != generation {
            return;
        }
        if g.tags.len() >= POOL_CAPACITY {
            g.tags.clear();
        }
        g.tags.insert(pool.to_owned(), tags);
    }

    /// The enabled identity that owns a login, if cached.
    pub fn login(&self, key: &LoginKey) -> Option<String> {
        let mut g = self.lock();
        if let Some(p) = g.logins.get(key).copied() {
            return g.unpack(p);
        }
        let p = g.older_logins.remove(key)?;
        g.insert_login(*key, p);
        g.unpack(p)
    }

    /// Caches a login's enabled owner read at `generation`.
    pub fn put_login(&self, generation: u64, key: LoginKey, identity: &str) {
        let mut g = self.lock();
        if g.generation != generation {
            return;
        }
        if let Some(p) = g.pack(identity) {
            g.insert_login(key, p);
        }
    }

    /// Forgets everything; called after every commit that may change an existing mapping.
    pub fn invalidate(&self) {
        let mut g = self.lock();
        g.generation += 1;
        g.pools.clear();
        g.tags.clear();
        g.logins.clear();
        g.older_logins.clear();
    }

    /// Number of cached logins (for tests and measurements).
    pub fn logins_len(&self) -> usize {
        let g = self.lock();
        g.logins.len() + g.older_logins.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "us-east-1:0193c5a2-7b3e-7c41-9d2a-5f0e8b1c2d3e";

    #[test]
    fn a_read_from_before_a_clear_is_not_kept() {
        let c = Cache::default();
        let g = c.generation();
        c.invalidate();
        c.put_login(g, login_key("p", "x", "u"), ID);
        assert!(c.login(&login_key("p", "x", "u")).is_none());
        let g = c.generation();
        c.put_login(g, login_key("p", "x", "u"), ID);
        assert_eq!(c.login(&login_key("p", "x", "u")).as_deref(), Some(ID));
    }

    #[test]
    fn logins_stay_bounded_and_recent_ones_survive() {
        let c = Cache::default();
        let g = c.generation();
        for i in 0..(GENERATION * 3) {
            c.put_login(g, login_key("p", "x", &i.to_string()), ID);
        }
        assert!(c.logins_len() <= 2 * GENERATION);
        let last = login_key("p", "x", &(GENERATION * 3 - 1).to_string());
        assert_eq!(c.login(&last).as_deref(), Some(ID));
        assert!(
            c.login(&login_key("p", "x", "0")).is_none(),
            "the oldest are gone"
        );
    }

    #[test]
    fn a_login_used_again_survives_its_generation() {
        let c = Cache::default();
        let g = c.generation();
        let kept = login_key("p", "x", "kept");
        c.put_login(g, kept, ID);
        for i in 0..(GENERATION * 3) {
            c.put_login(g, login_key("p", "x", &i.to_string()), ID);
            if i % (GENERATION / 2) == 0 {
                assert!(c.login(&kept).is_some(), "used at {i}");
            }
        }
        assert!(c.login(&kept).is_some());
    }

    #[test]
    fn ids_come_back_exactly_and_odd_ones_are_not_cached() {
        let c = Cache::default();
        let g = c.generation();
        for (n, id) in [
            "eu-west-1:88b5cc2c-c8c4-4932-a4e5-fc8512345678",
            "ap-southeast-2:0193c5a2-7b3e-7c41-9d2a-5f0e8b1c2d3e",
        ]
        .iter()
        .enumerate()
        {
            let k = login_key("p", "x", &n.to_string());
            c.put_login(g, k, id);
            assert_eq!(c.login(&k).as_deref(), Some(*id));
        }
        for odd in [
            "us-east-1:88B5CC2C-C8C4-4932-A4E5-FC8512345678",
            "us-east-1:88b5cc2cc8c44932a4e5fc8512345678",
            "us-east-1:abc",
            "no-colon",
        ] {
            let k = login_key("p", "odd", odd);
            c.put_login(g, k, odd);
            assert!(c.login(&k).is_none(), "{odd}");
        }
    }

    #[test]
    fn keys_do_not_collide_across_fields() {
        assert_ne!(login_key("a", "bc", "d"), login_key("a", "b", "cd"));
    }
}
