//! [`Tx`] on a SQLite connection: each step is one of the statements in the files beside this.

use std::cell::Cell;
use std::collections::BTreeMap;

use rusqlite::Connection;

use super::{identities, keys, pools, settings, transfer};
use crate::model::{
    DescribedIdentity, DeveloperUserRecord, Identity, IdentityRecord, KeyRecord, KeysVersion,
    LoginRecord, Pool, PoolRecord, PoolRoles, PoolSettings, PoolSummary, Position, PrincipalTagMap,
    SigningKey,
};
use crate::store::tx::{Tx, R};
use crate::times::Millis;

/// One request's steps on the writer's transaction, or on a read-only connection.
pub struct SqliteTx<'c> {
    c: &'c Connection,
    changes_mappings: Cell<bool>,
}

impl<'c> SqliteTx<'c> {
    pub fn new(c: &'c Connection) -> SqliteTx<'c> {
        SqliteTx {
            c,
            changes_mappings: Cell::new(false),
        }
    }

    /// Notes a step that can make a cached mapping wrong.
    fn stale<T>(&self, r: R<T>) -> R<T> {
        self.changes_mappings.set(true);
        r
    }
}

impl Tx for SqliteTx<'_> {
    fn pool(&self, id: &str) -> R<Option<Pool>> {
        pools::get(self.c, id)
    }
    fn pool_exists(&self, id: &str) -> R<bool> {
        pools::exists(self.c, id)
    }
    fn count_pools(&self, account: &str) -> R<i64> {
        pools::count_for_account(self.c, account)
    }
    fn insert_pool(&self, id: &str, account: &str, s: &PoolSettings, now: Millis) -> R<()> {
        pools::insert(self.c, id, account, s, now)
    }
    fn update_pool(&self, id: &str, s: &PoolSettings, now: Millis) -> R<()> {
        self.stale(pools::update(self.c, id, s, now))
    }
    fn delete_pool_identities(&self, pool: &str, limit: usize) -> R<usize> {
        self.stale(pools::delete_identities_chunk(self.c, pool, limit))
    }
    fn delete_pool(&self, id: &str) -> R<bool> {
        self.stale(pools::delete(self.c, id))
    }
    fn list_pools(
        &self,
        account: &str,
        region: &str,
        after: Option<&Position>,
        limit: usize,
    ) -> R<Vec<PoolSummary>> {
        pools::list(self.c, account, region, after, limit)
    }

    fn tags(&self, pool: &str) -> R<BTreeMap<String, String>> {
        pools::tags(self.c, pool)
    }
    // Tags are cached here (the cache is exact on SQLite: see `Store::cache_is_exact`), so a
    // change to them clears the caches like any other changed mapping.
    fn set_tags(&self, pool: &str, tags: &BTreeMap<String, String>) -> R<()> {
        self.stale(pools::set_tags(self.c, pool, tags))
    }
    fn add_tags(&self, pool: &str, tags: &BTreeMap<String, String>) -> R<()> {
        self.stale(settings::add_tags(self.c, pool, tags))
    }
    fn remove_tags(&self, pool: &str, keys: &[String]) -> R<()> {
        self.stale(settings::remove_tags(self.c, pool, keys))
    }
    fn roles(&self, pool: &str) -> R<Option<PoolRoles>> {
        settings::roles(self.c, pool)
    }
    fn set_roles(&self, pool: &str, roles: &PoolRoles, now: Millis) -> R<()> {
        settings::set_roles(self.c, pool, roles, now)
    }
    fn principal_tag_map(&self, pool: &str, provider: &str) -> R<Option<PrincipalTagMap>> {
        settings::principal_tag_map(self.c, pool, provider)
    }
    fn principal_tag_maps(&self, pool: &str) -> R<BTreeMap<String, PrincipalTagMap>> {
        settings::principal_tag_maps(self.c, pool)
    }
    fn set_principal_tag_map(&self, pool: &str, provider: &str, map: &PrincipalTagMap) -> R<()> {
        settings::set_principal_tag_map(self.c, pool, provider, map)
    }

    fn identity(&self, id: &str) -> R<Option<Identity>> {
        identities::get(self.c, id)
    }
    fn describe_identity(&self, id: &str, developer: Option<&str>) -> R<Option<DescribedIdentity>> {
        identities::describe(self.c, id, developer)
    }
    fn list_identities(
        &self,
        pool: &str,
        after: Option<&Position>,
        limit: usize,
        hide_disabled: bool,
        developer: Option<&str>,
    ) -> R<Vec<DescribedIdentity>> {
        identities::list(self.c, pool, after, limit, hide_disabled, developer)
    }
    fn insert_identity(&self, id: &str, pool: &str, now: Millis) -> R<()> {
        identities::insert(self.c, id, pool, now)
    }
    fn touch(&self, id: &str, now: Millis) -> R<()> {
        identities::touch(self.c, id, now)
    }
    fn disable(&self, id: &str, merged_into: Option<&str>, now: Millis) -> R<()> {
        self.stale(identities::disable(self.c, id, merged_into, now))
    }
    fn delete_identity(&self, id: &str) -> R<bool> {
        self.stale(identities::delete(self.c, id))
    }
    fn login_owner(&self, pool: &str, provider: &str, subject: &str) -> R<Option<String>> {
        identities::owner_of(self.c, pool, provider, subject)
    }
    fn login_owner_state(
        &self,
        pool: &str,
        provider: &str,
        subject: &str,
    ) -> R<Option<(String, bool)>> {
        identities::owner_and_state(self.c, pool, provider, subject)
    }
    fn subject_for(&self, identity: &str, provider: &str) -> R<Option<String>> {
        identities::subject_for(self.c, identity, provider)
    }
    fn logins_of(&self, identity: &str) -> R<Vec<(String, String)>> {
        identities::logins_of(self.c, identity)
    }
    fn login_count(&self, identity: &str) -> R<i64> {
        identities::login_count(self.c, identity)
    }
    fn link(
        &self,
        pool: &str,
        provider: &str,
        subject: &str,
        identity: &str,
        now: Millis,
    ) -> R<()> {
        identities::link(self.c, pool, provider, subject, identity, now)
    }
    fn unlink(&self, identity: &str, provider: &str) -> R<bool> {
        self.stale(identities::unlink(self.c, identity, provider))
    }
    fn move_links(&self, from: &str, to: &str) -> R<()> {
        self.stale(identities::move_links(self.c, from, to))
    }

    fn developer_owner(&self, pool: &str, user: &str) -> R<Option<String>> {
        identities::developer_owner(self.c, pool, user)
    }
    fn link_developer(&self, pool: &str, user: &str, identity: &str, now: Millis) -> R<()> {
        identities::link_developer(self.c, pool, user, identity, now)
    }
    fn unlink_developer(&self, pool: &str, user: &str, identity: &str) -> R<bool> {
        identities::unlink_developer(self.c, pool, user, identity)
    }
    fn developer_users_of(&self, identity: &str, after: &str, limit: usize) -> R<Vec<String>> {
        identities::developer_users_of(self.c, identity, after, limit)
    }

    fn keys_version(&self) -> R<KeysVersion> {
        keys::version(self.c)
    }
    fn signing_keys(&self) -> R<Vec<SigningKey>> {
        keys::all(self.c)
    }
    fn private_key(&self, kid: &str) -> R<Option<Vec<u8>>> {
        keys::private_key(self.c, kid)
    }
    fn next_key_seq(&self) -> R<i64> {
        keys::next_seq(self.c)
    }
    fn insert_signing_key(&self, key: &SigningKey, private_key: &[u8], now: Millis) -> R<()> {
        keys::insert(self.c, key, private_key, now)
    }
    fn retire_signing_keys(&self, retire_after: Millis) -> R<Vec<String>> {
        keys::retire(self.c, retire_after)
    }
    fn delete_retired_keys(&self, now: Millis) -> R<usize> {
        keys::delete_retired(self.c, now)
    }
    fn secret(&self, name: &str) -> R<Option<Vec<u8>>> {
        keys::secret(self.c, name)
    }

    fn export_pools(&self, after: &str, limit: usize) -> R<Vec<PoolRecord>> {
        transfer::pools(self.c, after, limit)
    }
    fn export_identities(&self, after: &str, limit: usize) -> R<Vec<IdentityRecord>> {
        transfer::identities(self.c, after, limit)
    }
    fn export_logins(&self, after: &(String, String, String), limit: usize) -> R<Vec<LoginRecord>> {
        transfer::logins(self.c, after, limit)
    }
    fn export_developer_users(
        &self,
        after: &(String, String),
        limit: usize,
    ) -> R<Vec<DeveloperUserRecord>> {
        transfer::developer_users(self.c, after, limit)
    }
    fn export_signing_keys(&self) -> R<Vec<KeyRecord>> {
        transfer::signing_keys(self.c)
    }
    fn count_all(&self) -> R<(i64, i64)> {
        transfer::count_all(self.c)
    }
    fn import_pool(&self, p: &PoolRecord) -> R<bool> {
        self.stale(transfer::import_pool(self.c, p))
    }
    fn import_identity(&self, i: &IdentityRecord) -> R<bool> {
        self.stale(transfer::import_identity(self.c, i))
    }
    fn import_login(&self, l: &LoginRecord) -> R<bool> {
        self.stale(transfer::import_login(self.c, l))
    }
    fn import_developer_user(&self, d: &DeveloperUserRecord) -> R<bool> {
        transfer::import_developer_user(self.c, d)
    }
    fn import_signing_key(&self, k: &KeyRecord, private_key: &[u8], seq: i64) -> R<bool> {
        transfer::import_signing_key(self.c, k, private_key, seq)
    }
    fn set_secret(&self, name: &str, value: &[u8]) -> R<()> {
        transfer::set_secret(self.c, name, value)
    }

    fn probe_writes(&self) -> R<()> {
        // The writer's transaction began IMMEDIATE: it holds the write lock already.
        Ok(())
    }

    fn changes_mappings(&self) -> bool {
        self.changes_mappings.get()
    }
}
