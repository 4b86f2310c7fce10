//! Identities: GetId (with persistent, implicit login linking), DescribeIdentity, ListIdentities,
//! UnlinkIdentity, DeleteIdentities.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::access;
use super::linking::{
    self, require_pool, usable_identity, LOGINS_DONT_MATCH, UNAUTH_NOT_SUPPORTED,
};
use super::logins::{self, Login};
use super::pools::owned_pool_in;
use super::{new_identity_id, Caller};
use crate::model::{DescribedIdentity, Pool};
use crate::protocol::ApiError;
use crate::store::cache;
use crate::times;
use crate::App;

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
    let pool = cached_pool(app, &input.pool_id).await?;
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
        let id = new_identity_id(pool.region());
        let pool_id = pool.id.clone();
        return app
            .store
            .write(move |tx| {
                require_pool(tx, &pool_id)?;
                tx.insert_identity(&id, &pool_id, times::now())?;
                Ok(json!({ "IdentityId": id }))
            })
            .await;
    }
    let logins = logins::resolve(app, &pool, &logins).await?;

    // Known logins, all on one identity: answered from the cache, no database at all.
    if let Some(id) = cached_owner(app, &pool.id, &logins) {
        return Ok(json!({ "IdentityId": id }));
    }
    // Otherwise a read finds a known owner (on SQLite, on this thread: no queue behind the
    // writer for a user who only comes back), and only what is left — a new login, a link,
    // a conflict — takes a write transaction. What it ends on is cached, unless a change came
    // in meanwhile.
    let generation = app.store.cache().generation();
    let keys: Vec<cache::LoginKey> = logins
        .iter()
        .map(|l| cache::login_key(&pool.id, &l.provider, &l.subject))
        .collect();
    let (pool_id, logins) = (pool.id.clone(), Arc::new(logins));
    let known = {
        let (pool_id, logins) = (pool_id.clone(), logins.clone());
        app.store
            .read(move |tx| linking::known_owner(tx, &pool_id, &logins))
            .await?
    };
    let id = match known {
        Some(id) => id,
        None => {
            let region = pool.region().to_string();
            app.store
                .write(move |tx| {
                    require_pool(tx, &pool_id)?;
                    linking::find_or_create(tx, &pool_id, &region, &logins)
                })
                .await?
        }
    };
    for key in keys {
        app.store.cache().put_login(generation, key, &id);
    }
    Ok(json!({ "IdentityId": id }))
}

/// A pool by id, from the cache when it holds it.
pub async fn cached_pool(app: &App, id: &str) -> Result<Arc<Pool>, ApiError> {
    let cache = app.store.cache();
    if let Some(p) = cache.pool(id) {
        return Ok(p);
    }
    let generation = cache.generation();
    let key = id.to_string();
    let pool = Arc::new(
        app.store
            .read(move |tx| tx.pool(&key))
            .await?
            .ok_or_else(|| ApiError::pool_not_found(id))?,
    );
    cache.put_pool(generation, pool.clone());
    Ok(pool)
}

/// The enabled identity that owns every one of these logins, when the cache says so.
fn cached_owner(app: &App, pool: &str, logins: &[Login]) -> Option<String> {
    let cache = app.store.cache();
    let mut owner: Option<String> = None;
    for l in logins {
        let found = cache.login(&cache::login_key(pool, &l.provider, &l.subject));
        crate::metrics::cache(found.is_some());
        let found = found?;
        match &owner {
            Some(prev) if *prev != found => return None,
            Some(_) => {}
            None => owner = Some(found),
        }
    }
    owner
}

/// The wire's IdentityDescription.
fn description(d: &DescribedIdentity) -> Value {
    let mut m = Map::new();
    m.insert("IdentityId".into(), json!(d.identity.id));
    if !d.providers.is_empty() {
        m.insert("Logins".into(), json!(d.providers));
    }
    m.insert("CreationDate".into(), d.identity.created_at.json());
    m.insert("LastModifiedDate".into(), d.identity.updated_at.json());
    Value::Object(m)
}

/// DescribeIdentity.
pub async fn describe(
    app: &App,
    caller: &Caller,
    input: IdentityIdInput,
) -> Result<Value, ApiError> {
    let caller = caller.clone();
    app.store
        .read(move |tx| {
            let id = &input.id;
            let identity = tx
                .identity(id)?
                .ok_or_else(|| ApiError::identity_not_found(id))?;
            let pool = tx
                .pool(&identity.pool_id)?
                .filter(|p| caller.owns(p))
                .ok_or_else(|| ApiError::identity_not_found(id))?;
            let developer = pool.settings.developer_provider_name.as_deref();
            let described = tx
                .describe_identity(id, developer)?
                .ok_or_else(|| ApiError::identity_not_found(id))?;
            Ok(description(&described))
        })
        .await
}

/// ListIdentities: a pool's identities in creation order, one read per page.
pub async fn list(app: &App, caller: &Caller, input: ListInput) -> Result<Value, ApiError> {
    let scope = format!("identities|{}", input.pool_id);
    // A bad token is reported only for a pool the caller can see.
    let after = input
        .next_token
        .as_ref()
        .map(|t| app.cursors.open_position(&scope, t));
    let limit = input.max_results.clamp(1, 60) as usize;
    let hide = input.hide_disabled.unwrap_or(false);
    let caller = caller.clone();
    // The pool and its page in one snapshot.
    let (pool_id, rows) = app
        .store
        .read(move |tx| {
            let pool = owned_pool_in(tx, &input.pool_id, &caller)?;
            let after = after.transpose()?;
            let developer = pool.settings.developer_provider_name.as_deref();
            let rows = tx.list_identities(&pool.id, after.as_ref(), limit, hide, developer)?;
            Ok::<_, ApiError>((pool.id, rows))
        })
        .await?;
    let mut out = Map::new();
    out.insert("IdentityPoolId".into(), json!(pool_id));
    let rows = app.cursors.page(&scope, rows, limit, &mut out, |r| {
        super::cursor::position_payload(r.identity.created_at, &r.identity.id)
    });
    out.insert(
        "Identities".into(),
        Value::Array(rows.iter().map(description).collect()),
    );
    Ok(Value::Object(out))
}

#[derive(Deserialize)]
pub struct UnlinkInput {
    #[serde(rename = "IdentityId")]
    identity_id: String,
    #[serde(rename = "Logins")]
    logins: BTreeMap<String, String>,
    #[serde(rename = "LoginsToRemove")]
    remove: Vec<String>,
}

/// UnlinkIdentity: the caller proves ownership with a login of the identity, then the named
/// providers' logins are removed. Removing the last login leaves an identity no one can reach,
/// as on AWS: it is disabled.
pub async fn unlink_identity(app: &App, input: UnlinkInput) -> Result<Value, ApiError> {
    let (pool, identity, presented) =
        access::present(app, &input.identity_id, Some(input.logins)).await?;
    if let Some(dev) = &pool.settings.developer_provider_name {
        if input.remove.iter().any(|p| p == dev) {
            return Err(ApiError::InvalidParameter(
                "Developer user identifiers are removed with UnlinkDeveloperIdentity.".to_string(),
            ));
        }
    }
    let id = identity.id;
    app.store
        .write(move |tx| {
            usable_identity(tx, &id)?;
            if !presented.cognito_authenticated()
                && !linking::owns_any(tx, &pool.id, &id, &presented.logins)?
            {
                return Err(ApiError::NotAuthorized(LOGINS_DONT_MATCH.to_string()));
            }
            // Each provider once, however often it is named (at most 20: the validator).
            for provider in input.remove.iter().collect::<BTreeSet<_>>() {
                tx.unlink(&id, provider)?;
            }
            linking::disable_if_unreachable(tx, &id, times::now())?;
            Ok(json!({}))
        })
        .await
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
        .write(move |tx| {
            let mut unprocessed = Vec::new();
            for id in &input.ids {
                let owned = match tx.identity(id)? {
                    Some(identity) => tx.pool(&identity.pool_id)?.is_some_and(|p| owner.owns(&p)),
                    None => false,
                };
                if owned {
                    tx.delete_identity(id)?;
                } else {
                    unprocessed.push(json!({"IdentityId": id, "ErrorCode": "AccessDenied"}));
                }
            }
            Ok(json!({ "UnprocessedIdentityIds": unprocessed }))
        })
        .await
}
