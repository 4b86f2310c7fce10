//! Developer-authenticated identities: GetOpenIdTokenForDeveloperIdentity, LookupDeveloperIdentity,
//! MergeDeveloperIdentities, UnlinkDeveloperIdentity (docs/behaviour.md §6.18–6.21). A
//! developer backend, signing with an admin key, vouches for its own user ids.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::access::{self, Presented};
use super::linking::{self, identity_in_pool, require_pool, usable_identity, LOGINS_DONT_MATCH};
use super::logins;
use super::openid::{amr, claims};
use super::pools::owned_pool;
use super::{new_identity_id, roles, Caller};
use crate::model::Pool;
use crate::protocol::ApiError;
use crate::store::Tx;
use crate::times;
use crate::App;

/// GetOpenIdTokenForDeveloperIdentity's default lifetime.
pub const DEVELOPER_TOKEN_TTL: u64 = 900;

const UNSUPPORTED_DEVELOPER: &str =
    "This identity pool does not support the specified developer provider";

#[derive(Deserialize)]
pub struct DeveloperTokenInput {
    #[serde(rename = "IdentityPoolId")]
    pool_id: String,
    #[serde(rename = "IdentityId")]
    identity_id: Option<String>,
    #[serde(rename = "Logins")]
    logins: BTreeMap<String, String>,
    #[serde(rename = "PrincipalTags")]
    principal_tags: Option<BTreeMap<String, String>>,
    #[serde(rename = "TokenDuration")]
    token_duration: Option<u64>,
}

fn developer_name<'p>(pool: &'p Pool, given: Option<&str>) -> Result<&'p str, ApiError> {
    match (&pool.settings.developer_provider_name, given) {
        (Some(name), None) => Ok(name),
        (Some(name), Some(g)) if g == name => Ok(name),
        _ => Err(ApiError::NotAuthorized(UNSUPPORTED_DEVELOPER.to_string())),
    }
}

/// GetOpenIdTokenForDeveloperIdentity: finds or creates the identity of a developer user (or
/// links the developer user to the given identity), links or merges any public logins passed
/// with it, and issues a token for it.
pub async fn get_open_id_token_for_developer_identity(
    app: &App,
    caller: &Caller,
    input: DeveloperTokenInput,
) -> Result<Value, ApiError> {
    let pool = owned_pool(app, caller, &input.pool_id).await?;
    let name = developer_name(&pool, None)?.to_string();
    let mut map = input.logins;
    let Some(user) = map.remove(&name) else {
        return Err(ApiError::NotAuthorized(UNSUPPORTED_DEVELOPER.to_string()));
    };
    if user.len() > logins::MAX_SUBJECT_BYTES {
        // The model bounds it at 1,024 characters; of several bytes each, that is more than
        // the developer users' index keeps on every engine.
        return Err(ApiError::InvalidParameter(
            "Developer user identifier is longer than 2048 bytes.".to_string(),
        ));
    }
    let public = logins::resolve(app, &pool, &map).await?;
    if let Some(id) = &input.identity_id {
        let (id, pool_id) = (id.clone(), pool.id.clone());
        app.store
            .read(move |tx| identity_in_pool(tx, &id, &pool_id))
            .await?;
    }
    let presented = Presented {
        logins: public,
        cognito: None,
        vouched: true,
    };
    let id = {
        let pool = pool.clone();
        let user = user.clone();
        let wanted = input.identity_id.clone();
        let presented = presented.clone();
        app.store
            .write(move |tx| {
                // The pool may have been deleted since it was read: a new identity or link
                // in it would break its foreign key. Checked here, inside the writer.
                require_pool(tx, &pool.id)?;
                let owner = tx.developer_owner(&pool.id, &user)?;
                let target = match (wanted.clone(), owner) {
                    (Some(i), Some(o)) if i != o => {
                        return Err(ApiError::DeveloperUserAlreadyRegistered(
                            "The provided developer user identifier is already registered with Cognito under a different identity ID.".to_string(),
                        ))
                    }
                    (Some(i), Some(_)) => i,
                    (Some(i), None) => {
                        usable_identity(tx, &i)?;
                        if tx.login_count(&i)? > 0
                            && !linking::owns_any(tx, &pool.id, &i, &presented.logins)?
                        {
                            return Err(ApiError::NotAuthorized(LOGINS_DONT_MATCH.to_string()));
                        }
                        link_developer(tx, &pool.id, &user, &i)?;
                        i
                    }
                    (None, Some(o)) => o,
                    (None, None) => {
                        let i = new_identity_id(pool.region());
                        tx.insert_identity(&i, &pool.id, times::now())?;
                        link_developer(tx, &pool.id, &user, &i)?;
                        i
                    }
                };
                access::settle(tx, &pool, &target, &presented, false)?
                    .ok_or_else(|| ApiError::internal("settling a vouched identity needed a second write"))
            })
            .await?
    };
    let mut tags = roles::principal_tags(app, &pool, &presented.logins).await?;
    if let Some(given) = input.principal_tags {
        tags.extend(given);
    }
    let ttl = input.token_duration.unwrap_or(DEVELOPER_TOKEN_TTL);
    let token = app.tokens.issue(
        claims(
            &pool,
            &id,
            amr(&pool, &presented, Some((&name, &user)), None),
            &tags,
        ),
        ttl,
    )?;
    Ok(json!({ "IdentityId": id, "Token": token }))
}

fn link_developer(tx: &dyn Tx, pool: &str, user: &str, identity: &str) -> Result<(), ApiError> {
    linking::check_room(tx, identity, 1)?;
    let now = times::now();
    tx.link_developer(pool, user, identity, now)?;
    tx.touch(identity, now)?;
    Ok(())
}

fn developer_not_found(user: &str) -> ApiError {
    ApiError::ResourceNotFound(format!("Developer user identifier '{user}' not found."))
}

#[derive(Deserialize)]
pub struct LookupInput {
    #[serde(rename = "IdentityPoolId")]
    pool_id: String,
    #[serde(rename = "IdentityId")]
    identity_id: Option<String>,
    #[serde(rename = "DeveloperUserIdentifier")]
    developer_user: Option<String>,
    #[serde(rename = "MaxResults")]
    max_results: Option<i64>,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
}

/// LookupDeveloperIdentity: an identity's developer user ids, found by either.
pub async fn lookup_developer_identity(
    app: &App,
    caller: &Caller,
    input: LookupInput,
) -> Result<Value, ApiError> {
    let pool = owned_pool(app, caller, &input.pool_id).await?;
    if input.identity_id.is_none() && input.developer_user.is_none() {
        return Err(ApiError::InvalidParameter(
            "Either IdentityId or DeveloperUserIdentifier must not be null.".to_string(),
        ));
    }
    let limit = input.max_results.unwrap_or(60).clamp(1, 60) as usize;
    let cursors = app.cursors.clone();
    app.store
        .read(move |tx| {
            let by_user = match &input.developer_user {
                Some(u) => Some(
                    tx.developer_owner(&pool.id, u)?
                        .ok_or_else(|| developer_not_found(u))?,
                ),
                None => None,
            };
            let id = match (&input.identity_id, by_user) {
                (Some(i), Some(u)) if *i != u => {
                    return Err(ApiError::ResourceConflict(
                        "The developer user identifier is not linked to the given identity."
                            .to_string(),
                    ))
                }
                (Some(i), _) => identity_in_pool(tx, i, &pool.id)?.id,
                (None, Some(u)) => u,
                (None, None) => {
                    return Err(ApiError::internal(
                        "a lookup with neither identity nor developer user",
                    ))
                }
            };
            let scope = format!("developer|{id}");
            let after = match &input.next_token {
                Some(t) => cursors.open(&scope, t)?,
                None => String::new(),
            };
            let users = tx.developer_users_of(&id, &after, limit)?;
            let mut out = Map::new();
            out.insert("IdentityId".into(), json!(id));
            let users = cursors.page(&scope, users, limit, &mut out, String::clone);
            out.insert("DeveloperUserIdentifierList".into(), json!(users));
            Ok(Value::Object(out))
        })
        .await
}

#[derive(Deserialize)]
pub struct MergeInput {
    #[serde(rename = "SourceUserIdentifier")]
    source: String,
    #[serde(rename = "DestinationUserIdentifier")]
    destination: String,
    #[serde(rename = "DeveloperProviderName")]
    provider: String,
    #[serde(rename = "IdentityPoolId")]
    pool_id: String,
}

/// MergeDeveloperIdentities: the source user's identity is merged into the destination user's.
pub async fn merge_developer_identities(
    app: &App,
    caller: &Caller,
    input: MergeInput,
) -> Result<Value, ApiError> {
    let pool = owned_pool(app, caller, &input.pool_id).await?;
    developer_name(&pool, Some(&input.provider))?;
    app.store
        .write(move |tx| {
            let into = tx
                .developer_owner(&pool.id, &input.destination)?
                .ok_or_else(|| developer_not_found(&input.destination))?;
            let from = tx
                .developer_owner(&pool.id, &input.source)?
                .ok_or_else(|| developer_not_found(&input.source))?;
            if from != into {
                linking::merge(tx, &from, &into)?;
            }
            Ok(json!({ "IdentityId": into }))
        })
        .await
}

#[derive(Deserialize)]
pub struct UnlinkDeveloperInput {
    #[serde(rename = "IdentityId")]
    identity_id: String,
    #[serde(rename = "IdentityPoolId")]
    pool_id: String,
    #[serde(rename = "DeveloperProviderName")]
    provider: String,
    #[serde(rename = "DeveloperUserIdentifier")]
    user: String,
}

/// UnlinkDeveloperIdentity: removes a developer user id from an identity; an identity left
/// with no logins at all cannot be reached again and is disabled.
pub async fn unlink_developer_identity(
    app: &App,
    caller: &Caller,
    input: UnlinkDeveloperInput,
) -> Result<Value, ApiError> {
    let pool = owned_pool(app, caller, &input.pool_id).await?;
    developer_name(&pool, Some(&input.provider))?;
    app.store
        .write(move |tx| {
            identity_in_pool(tx, &input.identity_id, &pool.id)?;
            if !tx.unlink_developer(&pool.id, &input.user, &input.identity_id)? {
                return Err(ApiError::ResourceConflict(
                    "The developer user identifier is not linked to this identity.".to_string(),
                ));
            }
            linking::disable_if_unreachable(tx, &input.identity_id, times::now())?;
            Ok(json!({}))
        })
        .await
}
