//! Read-through caches in front of the database for GetId's hot path: identity pools by id, and which
//! identity owns a (pool, provider, user) login.
//!
//! Correctness rests on two rules. (1) Only writes that add rows may leave the cache alone: a
//! new identity or a new link never changes an existing mapping. Every transaction with a step
//! that can — merges, unlinks, disabling, deletions, pool updates (see `Tx::changes_mappings`) —
//! has the engine clear the cache right after its commit, before any caller is answered and
//! whether or not the caller still waits. (2) A reader stores what it read only if no clear happened since it
//! began (a generation number), so a value read before a commit can never outlive the clear
//! that follows it. Memory is bounded: logins live in two generations of at most
//! `LOGIN_CAPACITY / 2` entries each, the older dropped whole when the newer fills.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::model::Pool;

/// Login → identity entries kept at most.
pub const LOGIN_CAPACITY: usize = 200_000;
/// Pools kept at most (an account has at most 1,000).
pub const POOL_CAPACITY: usize = 10_000;

#[derive(Default)]
struct Inner {
    generation: u64,
    pools: HashMap<String, Arc<Pool>>,
    logins: HashMap<String, Arc<str>>,
    older_logins: HashMap<String, Arc<str>>,
}

/// The caches. Cheap to consult: one uncontended mutex and a hash lookup.
#[derive(Default)]
pub struct Cache {
    inner: Mutex<Inner>,
}

/// The key of a login: pool, provider and subject, separated by a byte none of them holds.
pub fn login_key(pool: &str, provider: &str, subject: &str) -> String {
    let mut k = String::with_capacity(pool.len() + provider.len() + subject.len() + 2);
    k.push_str(pool);
    k.push('\u{0}');
    k.push_str(provider);
    k.push('\u{0}');
    k.push_str(subject);
    k
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

    /// The enabled identity that owns a login, if cached.
    pub fn login(&self, key: &str) -> Option<Arc<str>> {
        let mut g = self.lock();
        if let Some(v) = g.logins.get(key) {
            return Some(v.clone());
        }
        let v = g.older_logins.remove(key)?;
        Self::insert_login(&mut g, key.to_string(), v.clone());
        Some(v)
    }

    /// Caches a login's enabled owner read at `generation`.
    pub fn put_login(&self, generation: u64, key: String, identity: Arc<str>) {
        let mut g = self.lock();
        if g.generation == generation {
            Self::insert_login(&mut g, key, identity);
        }
    }

    fn insert_login(g: &mut Inner, key: String, identity: Arc<str>) {
        if g.logins.len() >= LOGIN_CAPACITY / 2 {
            g.older_logins = std::mem::take(&mut g.logins);
        }
        g.logins.insert(key, identity);
    }

    /// Forgets everything; called after every commit that may change an existing mapping.
    pub fn invalidate(&self) {
        let mut g = self.lock();
        g.generation += 1;
        g.pools.clear();
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

    #[test]
    fn a_read_from_before_a_clear_is_not_kept() {
        let c = Cache::default();
        let g = c.generation();
        c.invalidate();
        c.put_login(g, login_key("p", "x", "u"), Arc::from("id-1"));
        assert!(c.login(&login_key("p", "x", "u")).is_none());
        let g = c.generation();
        c.put_login(g, login_key("p", "x", "u"), Arc::from("id-1"));
        assert_eq!(c.login(&login_key("p", "x", "u")).as_deref(), Some("id-1"));
    }

    #[test]
    fn logins_stay_bounded_and_recent_ones_survive() {
        let c = Cache::default();
        let g = c.generation();
        for i in 0..(LOGIN_CAPACITY * 2) {
            c.put_login(g, format!("k{i}"), Arc::from("id"));
        }
        assert!(c.logins_len() <= LOGIN_CAPACITY);
        let last = format!("k{}", LOGIN_CAPACITY * 2 - 1);
        assert!(c.login(&last).is_some());
    }

    #[test]
    fn keys_do_not_collide_across_fields() {
        assert_ne!(login_key("a", "bc", "d"), login_key("a", "b", "cd"));
    }
}
