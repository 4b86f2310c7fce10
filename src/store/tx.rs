//! The one interface between the operations and storage: the steps a request takes inside one
//! transaction. The business rules (linking, merging, conflicts, the 20-login room) live above
//! it, in `ops`, and never know which engine runs underneath.
//!
//! Every method is one storage step with no policy in it. A write request gets a `Tx` inside a
//! write transaction; a read request gets one on a read-only snapshot, where the write steps
//! fail. The engine notes which steps can make a cached mapping wrong (see
//! [`Tx::changes_mappings`]) and clears the caches at the commit that makes them so.

use std::collections::BTreeMap;

use super::StoreError;
use crate::model::{
    DescribedIdentity, DeveloperUserRecord, Identity, IdentityRecord, IdentityWithPool, KeyRecord,
    KeysVersion, LoginRecord, Pool, PoolRecord, PoolRoles, PoolSettings, PoolSummary, Position,
    PrincipalTagMap, SigningKey,
};
use crate::times::Millis;

pub type R<T> = Result<T, StoreError>;

/// One transaction's storage steps.
pub trait Tx {
    // --- identity pools -----------------------------------------------------------------

    /// A pool by id.
    fn pool(&self, id: &str) -> R<Option<Pool>>;
    /// A pool with its tags: DescribeIdentityPool's one look, one step where an engine can
    /// make it so.
    fn pool_with_tags(&self, id: &str) -> R<Option<(Pool, BTreeMap<String, String>)>> {
        match self.pool(id)? {
            Some(pool) => {
                let tags = self.tags(id)?;
                Ok(Some((pool, tags)))
            }
            None => Ok(None),
        }
    }
    /// Whether a pool exists: the check of a write that already read the pool's settings.
    fn pool_exists(&self, id: &str) -> R<bool>;
    /// How many pools an account owns.
    fn count_pools(&self, account: &str) -> R<i64>;
    /// Creates a pool.
    fn insert_pool(&self, id: &str, account: &str, s: &PoolSettings, now: Millis) -> R<()>;
    /// Replaces a pool's settings.
    fn update_pool(&self, id: &str, s: &PoolSettings, now: Millis) -> R<()>;
    /// Deletes up to `limit` of a pool's identities, oldest first, with their logins and
    /// developer user ids; returns how many went.
    fn delete_pool_identities(&self, pool: &str, limit: usize) -> R<usize>;
    /// Deletes a pool and everything that is its (identities, logins, tags, maps).
    fn delete_pool(&self, id: &str) -> R<bool>;
    /// Up to `limit + 1` of an account's pools in one region, in creation order, after `after`.
    fn list_pools(
        &self,
        account: &str,
        region: &str,
        after: Option<&Position>,
        limit: usize,
    ) -> R<Vec<PoolSummary>>;

    // --- tags, roles and principal tag maps --------------------------------------------------

    /// A pool's tags.
    fn tags(&self, pool: &str) -> R<BTreeMap<String, String>>;
    /// Replaces a pool's tags.
    fn set_tags(&self, pool: &str, tags: &BTreeMap<String, String>) -> R<()>;
    /// Adds tags, overwriting the values of keys the pool has.
    fn add_tags(&self, pool: &str, tags: &BTreeMap<String, String>) -> R<()>;
    /// Removes tags; keys the pool does not have are ignored.
    fn remove_tags(&self, pool: &str, keys: &[String]) -> R<()>;
    /// A pool's roles and role mappings; `None` when the pool does not exist.
    fn roles(&self, pool: &str) -> R<Option<PoolRoles>>;
    /// Replaces a pool's roles and role mappings.
    fn set_roles(&self, pool: &str, roles: &PoolRoles, now: Millis) -> R<()>;
    /// The principal tag attribute map of one provider of a pool.
    fn principal_tag_map(&self, pool: &str, provider: &str) -> R<Option<PrincipalTagMap>>;
    /// Every principal tag attribute map of a pool, by provider.
    fn principal_tag_maps(&self, pool: &str) -> R<BTreeMap<String, PrincipalTagMap>>;
    /// Creates or replaces one provider's principal tag attribute map.
    fn set_principal_tag_map(&self, pool: &str, provider: &str, map: &PrincipalTagMap) -> R<()>;

    // --- identities and their logins --------------------------------------------------------

    /// An identity by id.
    fn identity(&self, id: &str) -> R<Option<Identity>>;
    /// An identity with its pool; the pool's roles and principal tag attribute maps when
    /// asked for; how many logins the identity has; and the identity one login of the pool is
    /// linked to: the first look of the access check and of settling, one step where an
    /// engine can make it so.
    fn identity_with_pool(
        &self,
        id: &str,
        roles: bool,
        tag_maps: bool,
        login: Option<(&str, &str)>,
    ) -> R<Option<IdentityWithPool>> {
        let Some(identity) = self.identity(id)? else {
            return Ok(None);
        };
        let pool = self.pool(&identity.pool_id)?;
        let there = pool.is_some();
        let roles = match roles && there {
            true => self.roles(&identity.pool_id)?,
            false => None,
        };
        let tag_maps = match tag_maps && there {
            true => self.principal_tag_maps(&identity.pool_id)?,
            false => BTreeMap::new(),
        };
        let login_owner = match login {
            Some((provider, subject)) => self.login_owner(&identity.pool_id, provider, subject)?,
            None => None,
        };
        Ok(Some(IdentityWithPool {
            login_count: self.login_count(id)?,
            identity,
            pool,
            roles,
            tag_maps,
            login_owner,
        }))
    }
    /// An identity with its provider names; `developer` is the pool's developer provider name,
    /// listed when the identity has developer user ids.
    fn describe_identity(&self, id: &str, developer: Option<&str>) -> R<Option<DescribedIdentity>>;
    /// Up to `limit + 1` of a pool's identities in creation order after `after`, each with its
    /// provider names (as `describe_identity`).
    fn list_identities(
        &self,
        pool: &str,
        after: Option<&Position>,
        limit: usize,
        hide_disabled: bool,
        developer: Option<&str>,
    ) -> R<Vec<DescribedIdentity>>;
    /// Creates an identity with no logins.
    fn insert_identity(&self, id: &str, pool: &str, now: Millis) -> R<()>;
    /// Marks an identity as changed now.
    fn touch(&self, id: &str, now: Millis) -> R<()>;
    /// Disables an identity; `merged_into` names the identity that took over its logins.
    fn disable(&self, id: &str, merged_into: Option<&str>, now: Millis) -> R<()>;
    /// Deletes an identity with its logins and developer user ids.
    fn delete_identity(&self, id: &str) -> R<bool>;
    /// The identity a provider's user is linked to in a pool.
    fn login_owner(&self, pool: &str, provider: &str, subject: &str) -> R<Option<String>>;
    /// Whether a pool exists, and the identity a provider's user is linked to in it: GetId's
    /// first look, one step (one round trip) where an engine can make it so.
    fn pool_and_login_owner(
        &self,
        pool: &str,
        provider: &str,
        subject: &str,
    ) -> R<(bool, Option<String>)> {
        Ok((
            self.pool_exists(pool)?,
            self.login_owner(pool, provider, subject)?,
        ))
    }
    /// The identity a provider's user is linked to, with whether it is disabled.
    fn login_owner_state(
        &self,
        pool: &str,
        provider: &str,
        subject: &str,
    ) -> R<Option<(String, bool)>>;
    /// The user an identity has for a provider.
    fn subject_for(&self, identity: &str, provider: &str) -> R<Option<String>>;
    /// Every (provider, subject) of an identity, by provider.
    fn logins_of(&self, identity: &str) -> R<Vec<(String, String)>>;
    /// How many logins (provider users and developer user ids) an identity has.
    fn login_count(&self, identity: &str) -> R<i64>;
    /// Links a provider's user to an identity.
    fn link(&self, pool: &str, provider: &str, subject: &str, identity: &str, now: Millis)
        -> R<()>;
    /// Removes an identity's login of a provider; true if there was one.
    fn unlink(&self, identity: &str, provider: &str) -> R<bool>;
    /// Moves every login and developer user id of `from` to `to`.
    fn move_links(&self, from: &str, to: &str) -> R<()>;

    // --- developer users --------------------------------------------------------------------

    /// The identity a developer user id is linked to in a pool.
    fn developer_owner(&self, pool: &str, user: &str) -> R<Option<String>>;
    /// Links a developer user id to an identity.
    fn link_developer(&self, pool: &str, user: &str, identity: &str, now: Millis) -> R<()>;
    /// Removes a developer user id from an identity; true if it was linked to it.
    fn unlink_developer(&self, pool: &str, user: &str, identity: &str) -> R<bool>;
    /// Up to `limit + 1` of an identity's developer user ids after `after`, sorted.
    fn developer_users_of(&self, identity: &str, after: &str, limit: usize) -> R<Vec<String>>;

    // --- token signing keys and server secrets ---------------------------------------------

    /// What changes whenever a key is added, retired or deleted.
    fn keys_version(&self) -> R<KeysVersion>;
    /// Every key, newest first.
    fn signing_keys(&self) -> R<Vec<SigningKey>>;
    /// A key's private half (PKCS#8 DER).
    fn private_key(&self, kid: &str) -> R<Option<Vec<u8>>>;
    /// The `seq` the next key gets.
    fn next_key_seq(&self) -> R<i64>;
    /// Stores a new key (it becomes current: the highest `seq`).
    fn insert_signing_key(&self, key: &SigningKey, private_key: &[u8], now: Millis) -> R<()>;
    /// Sets `retire_after` on every key still in use; returns their kids.
    fn retire_signing_keys(&self, retire_after: Millis) -> R<Vec<String>>;
    /// Deletes keys whose retirement has passed; returns how many.
    fn delete_retired_keys(&self, now: Millis) -> R<usize>;
    /// A named server secret (e.g. the key that signs pagination cursors), made at migration.
    fn secret(&self, name: &str) -> R<Option<Vec<u8>>>;

    // --- moving between engines (export and import) ---------------------------------------
    // Pages are in key order, after the given key ("" or empty strings: from the start).

    /// Up to `limit` pools after id `after`, as rows (without tags and principal tag maps).
    fn export_pools(&self, after: &str, limit: usize) -> R<Vec<PoolRecord>>;
    /// Up to `limit` identities after id `after`.
    fn export_identities(&self, after: &str, limit: usize) -> R<Vec<IdentityRecord>>;
    /// Up to `limit` logins after (pool, provider, subject) `after`.
    fn export_logins(&self, after: &(String, String, String), limit: usize) -> R<Vec<LoginRecord>>;
    /// Up to `limit` developer users after (pool, developer user id) `after`.
    fn export_developer_users(
        &self,
        after: &(String, String),
        limit: usize,
    ) -> R<Vec<DeveloperUserRecord>>;
    /// Every signing key, private halves included.
    fn export_signing_keys(&self) -> R<Vec<KeyRecord>>;
    /// How many pools and identities the database holds.
    fn count_all(&self) -> R<(i64, i64)>;
    /// Stores a pool row as exported (ids and times kept); one whose key exists already is left
    /// as it is. Returns whether it was stored. (Whether clashes are allowed at all is the
    /// importer's question, asked before it begins.)
    fn import_pool(&self, p: &PoolRecord) -> R<bool>;
    /// Stores an identity as exported, as `import_pool`.
    fn import_identity(&self, i: &IdentityRecord) -> R<bool>;
    /// Stores a login as exported, as `import_pool`.
    fn import_login(&self, l: &LoginRecord) -> R<bool>;
    /// Stores a developer user as exported, as `import_pool`.
    fn import_developer_user(&self, d: &DeveloperUserRecord) -> R<bool>;
    /// Stores a signing key unless its kid exists; `seq` as given.
    fn import_signing_key(&self, k: &KeyRecord, private_key: &[u8], seq: i64) -> R<bool>;
    /// Replaces a named server secret.
    fn set_secret(&self, name: &str, value: &[u8]) -> R<()>;

    // --- bookkeeping ---------------------------------------------------------------------------

    /// Takes the locks a write takes, changing nothing: for the readiness probe, which must
    /// fail when writes would (a lock held elsewhere, a read-only database).
    fn probe_writes(&self) -> R<()>;

    /// Whether a step of this transaction may have changed a mapping a cache holds (a pool's
    /// settings, which identity owns a login, whether it is enabled; on SQLite, whose cache
    /// also holds pools' tags, their tags). Set by the engine, read by it at commit.
    fn changes_mappings(&self) -> bool;
}
