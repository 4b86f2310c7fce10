//! Identities: GetId (with persistent, implicit login linking), DescribeIdentity, ListIdentities.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::access;
use super::logins::{self, Login};
use super::pools::owned_pool;
use super::{decode_token, encode_token, new_id, Caller};
use crate::protocol::ApiError;
use crate::store::cache;
use crate::store::identities::{self as sql, Identity};
use crate::store::pools::{self, Pool};
use crate::times;
use crate::App;

/// Logins an identity may have at most (public provider users and developer user ids).
pub const MAX_LOGINS_PER_IDENTITY: i64 = 20;

pub const UNAUTH_NOT_SUPPORTED: &str =
    "Unauthenticated access is not supported for this identity pool.";
pub const LOGINS_ON_DIFFERENT_IDENTITIES: &str = "Logins are linked to different identities.";
pub const LOGIN_ALREADY_LINKED: &str = "Login is already linked to another account.";

#[derive(Deserialize)]
pub struct GetIdInput {
    #[serde(rename = "IdentityPoolId")]
    pool_id: String,
    #[serde(rename = "AccountId")]
    account_id: Option<String>,
    #[serde(rename = "Logins")]
    logins: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
pub struct IdentityIdInput {
    #[serde(rename = "IdentityId")]
    id: String,
}

#[derive(Deserialize)]
pub struct ListInput {
    #[serde(rename = "IdentityPoolId")]
    pool_id: String,
    #[serde(rename = "MaxResults")]
    max_results: i64,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
    #[serde(rename = "HideDisabled")]
    hide_disabled: Option<bool>,
}

/// GetId: a new guest identity, or the identity that owns these logins, linking the ones that
/// are new to it; logins of different identities are a conflict and change nothing.
pub async fn get_id(app: &App, input: GetIdInput) -> Result<Value, ApiError> {
    let pool = cached_pool(app, &input.pool_id)?;
    if let Some(account) = &input.account_id {
        if *account != pool.account_id {
            return Err(ApiError::pool_not_found(&input.pool_id));
        }
    }
    let logins = input.logins.unwrap_or_default();
    if logins.is_empty() {
        if !pool.settings.allow_unauthenticated {
            return Err(ApiError::NotAuthorized(UNAUTH_NOT_SUPPORTED.to_string()));
        }
        let id = new_id(pool.region());
        let pool_id = pool.id.clone();
        return app
            .store
            .write_additive(move |c| {
                require_pool(c, &pool_id)?;
                sql::insert(c, &id, &pool_id, times::now())?;
                Ok(json!({ "IdentityId": id }))
            })
            .await;
    }
    let logins = logins::resolve(app, &pool, &logins).await?;

    // Known logins, all on one identity: answered from the cache or a read, no write at all.
    if let Some(id) = known_owner(app, &pool.id, &logins)? {
        return Ok(json!({ "IdentityId": &*id }));
    }
    let pool_id = pool.id.clone();
    let region = pool.region().to_string();
    app.store
        .write_additive(move |c| {
            require_pool(c, &pool_id)?;
            let id = link_logins(c, &pool_id, &region, &logins)?;
            Ok(json!({ "IdentityId": id }))
        })
        .await
}

/// A pool by id, from the cache when it holds it.
pub fn cached_pool(app: &App, id: &str) -> Result<Arc<Pool>, ApiError> {
    let cache = &app.store.cache;
    if let Some(p) = cache.pool(id) {
        return Ok(p);
    }
    let generation = cache.generation();
    let pool = Arc::new(
        app.store
            .read(|c| pools::get(c, id))?
            .ok_or_else(|| ApiError::pool_not_found(id))?,
    );
    cache.put_pool(generation, pool.clone());
    Ok(pool)
}

/// Inside a write: the pool still exists (a DeleteIdentityPool may have committed since it was
/// read), or ResourceNotFoundException rather than a foreign-key failure.
pub fn require_pool(c: &Connection, pool_id: &str) -> Result<(), ApiError> {
    match pools::get(c, pool_id)? {
        Some(_) => Ok(()),
        None => Err(ApiError::pool_not_found(pool_id)),
    }
}

/// The enabled identity that owns every one of these logins, when one does.
fn known_owner(app: &App, pool: &str, logins: &[Login]) -> Result<Option<Arc<str>>, ApiError> {
    let cache = &app.store.cache;
    let mut owner: Option<Arc<str>> = None;
    let mut conn = None;
    for l in logins {
        let key = cache::login_key(pool, &l.provider, &l.subject);
        let cached = cache.login(&key);
        crate::metrics::cache(cached.is_some());
        let found = match cached {
            Some(id) => id,
            None => {
                let generation = cache.generation();
                let c = match &mut conn {
                    Some(c) => c,
                    None => conn.insert(app.store.reader()?),
                };
                match sql::owner_and_state(c, pool, &l.provider, &l.subject)? {
                    Some((id, false)) => {
                        let id: Arc<str> = Arc::from(id);
                        cache.put_login(generation, key, id.clone());
                        id
                    }
                    Some((_, true)) | None => return Ok(None),
                }
            }
        };
        match &owner {
            Some(prev) if *prev != found => return Ok(None),
            Some(_) => {}
            None => owner = Some(found),
        }
    }
    Ok(owner)
}

/// Inside a write: finds or creates the one identity these logins belong to and links the
/// ones that are new to it.
pub fn link_logins(
    c: &Connection,
    pool: &str,
    region: &str,
    logins: &[Login],
) -> Result<String, ApiError> {
    let now = times::now();
    let mut owner: Option<String> = None;
    let mut unlinked: Vec<&Login> = Vec::new();
    for l in logins {
        match sql::owner_of(c, pool, &l.provider, &l.subject)? {
            None => unlinked.push(l),
            Some(o) => match &owner {
                Some(prev) if *prev != o => {
                    return Err(ApiError::ResourceConflict(
                        LOGINS_ON_DIFFERENT_IDENTITIES.to_string(),
                    ))
                }
                Some(_) => {}
                None => owner = Some(o),
            },
        }
    }
    match owner {
        None => {
            // A fresh identity has no logins yet: nothing to conflict with, room for ten.
            let id = new_id(region);
            sql::insert(c, &id, pool, now)?;
            for l in unlinked {
                sql::link(c, pool, &l.provider, &l.subject, &id, now)?;
            }
            Ok(id)
        }
        Some(id) => {
            if sql::is_disabled(c, &id)? != Some(false) {
                return Err(ApiError::identity_forbidden(&id));
            }
            if !unlinked.is_empty() {
                access::link_into(c, pool, &id, &unlinked)?;
                sql::touch(c, &id, now)?;
            }
            Ok(id)
        }
    }
}

/// The wire's IdentityDescription.
fn description(
    c: &Connection,
    identity: &Identity,
    developer: Option<&str>,
) -> Result<Value, ApiError> {
    let mut m = Map::new();
    m.insert("IdentityId".into(), json!(identity.id));
    let providers = sql::providers(c, &identity.id, developer)?;
    if !providers.is_empty() {
        m.insert("Logins".into(), json!(providers));
    }
    m.insert("CreationDate".into(), identity.created_at.json());
    m.insert("LastModifiedDate".into(), identity.updated_at.json());
    Ok(Value::Object(m))
}

/// DescribeIdentity.
pub fn describe(app: &App, caller: &Caller, input: IdentityIdInput) -> Result<Value, ApiError> {
    app.store.read(|c| {
        let identity =
            sql::get(c, &input.id)?.ok_or_else(|| ApiError::identity_not_found(&input.id))?;
        let pool = pools::get(c, &identity.pool_id)?
            .filter(|p| caller.owns(p))
            .ok_or_else(|| ApiError::identity_not_found(&input.id))?;
        description(
            c,
            &identity,
            pool.settings.developer_provider_name.as_deref(),
        )
    })
}

/// ListIdentities: a pool's identities in creation order.
pub fn list(app: &App, caller: &Caller, input: ListInput) -> Result<Value, ApiError> {
    let pool = owned_pool(app, caller, &input.pool_id)?;
    let scope = format!("identities|{}", pool.id);
    let after = match &input.next_token {
        Some(t) => decode_token(&scope, t)?,
        None => 0,
    };
    let limit = input.max_results.clamp(1, 60) as usize;
    let hide = input.hide_disabled.unwrap_or(false);
    let developer = pool.settings.developer_provider_name.as_deref();
    app.store.read(|c| {
        let mut rows = sql::list(c, &pool.id, after, limit, hide)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let mut out = Map::new();
        out.insert("IdentityPoolId".into(), json!(pool.id));
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            items.push(description(c, r, developer)?);
        }
        out.insert("Identities".into(), Value::Array(items));
        if more {
            if let Some(last) = rows.last() {
                out.insert("NextToken".into(), json!(encode_token(&scope, last.seq)));
            }
        }
        Ok(Value::Object(out))
    })
}

#[derive(Deserialize)]
pub struct DeleteIdentitiesInput {
    #[serde(rename = "IdentityIdsToDelete")]
    ids: Vec<String>,
}

/// DeleteIdentities: each identity of the caller's account goes with its logins; ids that are
/// unknown, or of another account's pool, come back as unprocessed (`AccessDenied`).
pub async fn delete_identities(
    app: &App,
    caller: &Caller,
    input: DeleteIdentitiesInput,
) -> Result<Value, ApiError> {
    let owner = caller.clone();
    app.store
        .write(move |c| {
            let mut unprocessed = Vec::new();
            for id in &input.ids {
                let owned = match sql::get(c, id)? {
                    Some(identity) => {
                        pools::get(c, &identity.pool_id)?.is_some_and(|p| owner.owns(&p))
                    }
                    None => false,
                };
                if owned {
                    sql::delete(c, id)?;
                } else {
                    unprocessed.push(json!({"IdentityId": id, "ErrorCode": "AccessDenied"}));
                }
            }
            Ok(json!({ "UnprocessedIdentityIds": unprocessed }))
        })
        .await
}
