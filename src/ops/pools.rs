//! Identity pool administration: create, describe, update, delete, list.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::cursor::position_payload;
use super::{new_pool_id, Caller};
use crate::arn::Arn;
use crate::model::{CognitoProvider, Pool, PoolSettings};
use crate::protocol::ApiError;
use crate::store::Tx;
use crate::times;
use crate::App;

/// Identity pools per account, as on AWS.
pub const MAX_POOLS_PER_ACCOUNT: i64 = 1000;
/// Tags per pool, as on AWS.
pub const MAX_TAGS: usize = 50;

#[derive(Deserialize)]
pub struct CognitoProviderInput {
    #[serde(rename = "ProviderName")]
    provider_name: Option<String>,
    #[serde(rename = "ClientId")]
    client_id: Option<String>,
    #[serde(rename = "ServerSideTokenCheck")]
    server_side_token_check: Option<bool>,
}

/// CreateIdentityPool's and UpdateIdentityPool's input (Update adds the id).
#[derive(Deserialize)]
pub struct PoolInput {
    #[serde(rename = "IdentityPoolId")]
    id: Option<String>,
    #[serde(rename = "IdentityPoolName")]
    name: String,
    #[serde(rename = "AllowUnauthenticatedIdentities")]
    allow_unauthenticated: bool,
    #[serde(rename = "AllowClassicFlow")]
    allow_classic_flow: Option<bool>,
    #[serde(rename = "SupportedLoginProviders")]
    supported_login_providers: Option<BTreeMap<String, String>>,
    #[serde(rename = "DeveloperProviderName")]
    developer_provider_name: Option<String>,
    #[serde(rename = "OpenIdConnectProviderARNs")]
    openid_connect_provider_arns: Option<Vec<String>>,
    #[serde(rename = "CognitoIdentityProviders")]
    cognito_identity_providers: Option<Vec<CognitoProviderInput>>,
    #[serde(rename = "SamlProviderARNs")]
    saml_provider_arns: Option<Vec<String>>,
    #[serde(rename = "IdentityPoolTags")]
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
pub struct PoolIdInput {
    #[serde(rename = "IdentityPoolId")]
    id: String,
}

#[derive(Deserialize)]
pub struct ListInput {
    #[serde(rename = "MaxResults")]
    max_results: i64,
    #[serde(rename = "NextToken")]
    next_token: Option<String>,
}

pub use crate::model::oidc_provider_host;

fn iam_resource<'a>(arn: &'a str, kind: &str) -> Option<&'a str> {
    Arn::parse(arn)?.iam_resource(kind)
}

/// Checks what the service model cannot, and builds the settings to store.
fn settings_from(
    input: PoolInput,
) -> Result<(PoolSettings, Option<BTreeMap<String, String>>), ApiError> {
    let mut cognito = Vec::new();
    for p in input.cognito_identity_providers.unwrap_or_default() {
        let Some(provider_name) = p.provider_name else {
            return Err(ApiError::InvalidParameter(
                "Invalid Cognito Identity Provider".to_string(),
            ));
        };
        cognito.push(CognitoProvider {
            provider_name,
            client_id: p.client_id,
            server_side_token_check: p.server_side_token_check.unwrap_or(false),
        });
    }
    let oidc = input.openid_connect_provider_arns.unwrap_or_default();
    for arn in &oidc {
        if oidc_provider_host(arn).is_none() {
            return Err(ApiError::InvalidParameter(format!(
                "Invalid OpenIdConnectProviderARN: {arn} is not an IAM OIDC provider ARN."
            )));
        }
    }
    let saml = input.saml_provider_arns.unwrap_or_default();
    for arn in &saml {
        if iam_resource(arn, "saml-provider/").is_none() {
            return Err(ApiError::InvalidParameter(format!(
                "Invalid SamlProviderARN: {arn} is not an IAM SAML provider ARN."
            )));
        }
    }
    if let Some(tags) = &input.tags {
        check_tag_count(tags.len())?;
    }
    Ok((
        PoolSettings {
            name: input.name,
            allow_unauthenticated: input.allow_unauthenticated,
            allow_classic_flow: input.allow_classic_flow,
            developer_provider_name: input.developer_provider_name,
            supported_login_providers: input.supported_login_providers.unwrap_or_default(),
            openid_connect_provider_arns: oidc,
            cognito_identity_providers: cognito,
            saml_provider_arns: saml,
        },
        input.tags,
    ))
}

/// Refuses more tags than a pool may have.
pub fn check_tag_count(n: usize) -> Result<(), ApiError> {
    if n > MAX_TAGS {
        return Err(ApiError::InvalidParameter(format!(
            "An identity pool can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(())
}

/// The wire's IdentityPool: only members that are set, plus IdentityPoolTags always; members
/// in name order, as a JSON object of them would be.
#[derive(Serialize)]
struct PoolView<'a> {
    #[serde(rename = "AllowClassicFlow", skip_serializing_if = "Option::is_none")]
    allow_classic_flow: Option<bool>,
    #[serde(rename = "AllowUnauthenticatedIdentities")]
    allow_unauthenticated: bool,
    #[serde(
        rename = "CognitoIdentityProviders",
        skip_serializing_if = "CognitoProviders::is_empty"
    )]
    cognito_identity_providers: CognitoProviders<'a>,
    #[serde(
        rename = "DeveloperProviderName",
        skip_serializing_if = "Option::is_none"
    )]
    developer_provider_name: Option<&'a str>,
    #[serde(rename = "IdentityPoolId")]
    id: &'a str,
    #[serde(rename = "IdentityPoolName")]
    name: &'a str,
    #[serde(rename = "IdentityPoolTags")]
    tags: &'a BTreeMap<String, String>,
    #[serde(
        rename = "OpenIdConnectProviderARNs",
        skip_serializing_if = "<[_]>::is_empty"
    )]
    openid_connect_provider_arns: &'a [String],
    #[serde(rename = "SamlProviderARNs", skip_serializing_if = "<[_]>::is_empty")]
    saml_provider_arns: &'a [String],
    #[serde(
        rename = "SupportedLoginProviders",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    supported_login_providers: &'a BTreeMap<String, String>,
}

/// `CognitoIdentityProviders` with each entry's members in name order too.
struct CognitoProviders<'a>(&'a [CognitoProvider]);

impl CognitoProviders<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for CognitoProviders<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Entry<'a> {
            #[serde(rename = "ClientId", skip_serializing_if = "Option::is_none")]
            client_id: Option<&'a str>,
            #[serde(rename = "ProviderName")]
            provider_name: &'a str,
            #[serde(rename = "ServerSideTokenCheck")]
            server_side_token_check: bool,
        }
        s.collect_seq(self.0.iter().map(|p| Entry {
            client_id: p.client_id.as_deref(),
            provider_name: &p.provider_name,
            server_side_token_check: p.server_side_token_check,
        }))
    }
}

/// The response body of CreateIdentityPool, DescribeIdentityPool and UpdateIdentityPool:
/// encoded from the pool itself, not through a JSON tree.
pub fn pool_body(pool: &Pool, tags: &BTreeMap<String, String>) -> Result<Vec<u8>, ApiError> {
    let s = &pool.settings;
    serde_json::to_vec(&PoolView {
        allow_classic_flow: s.allow_classic_flow,
        allow_unauthenticated: s.allow_unauthenticated,
        cognito_identity_providers: CognitoProviders(&s.cognito_identity_providers),
        developer_provider_name: s.developer_provider_name.as_deref(),
        id: &pool.id,
        name: &s.name,
        tags,
        openid_connect_provider_arns: &s.openid_connect_provider_arns,
        saml_provider_arns: &s.saml_provider_arns,
        supported_login_providers: &s.supported_login_providers,
    })
    .map_err(|e| ApiError::internal(format!("could not encode a pool: {e}")))
}

/// Reads a pool the caller's account owns; any other is "not found".
pub async fn owned_pool(app: &App, caller: &Caller, id: &str) -> Result<Pool, ApiError> {
    let (id, caller) = (id.to_string(), caller.clone());
    app.store
        .read(move |tx| owned_pool_in(tx, &id, &caller))
        .await
}

/// Inside a transaction (a write, say): the pool `caller` owns — its account's, in its
/// region; any other is "not found".
pub fn owned_pool_in(tx: &dyn Tx, id: &str, caller: &Caller) -> Result<Pool, ApiError> {
    tx.pool(id)?
        .filter(|p| caller.owns(p))
        .ok_or_else(|| ApiError::pool_not_found(id))
}

/// Refuses a new pool past the account's limit.
fn check_pool_count(tx: &dyn Tx, account: &str) -> Result<(), ApiError> {
    if tx.count_pools(account)? >= MAX_POOLS_PER_ACCOUNT {
        return Err(ApiError::LimitExceeded(format!(
            "Identity pool limit exceeded: an account can have at most {MAX_POOLS_PER_ACCOUNT} identity pools."
        )));
    }
    Ok(())
}

/// CreateIdentityPool.
pub async fn create(app: &App, caller: &Caller, input: PoolInput) -> Result<Vec<u8>, ApiError> {
    let (settings, tags) = settings_from(input)?;
    let tags = tags.unwrap_or_default();
    let id = new_pool_id(&caller.region);
    let account = caller.account_id.clone();
    app.store
        .write(move |tx| {
            check_pool_count(tx, &account)?;
            tx.insert_pool(&id, &account, &settings, times::now())?;
            tx.set_tags(&id, &tags)?;
            let pool = tx
                .pool(&id)?
                .ok_or_else(|| ApiError::internal("a pool just written is not there"))?;
            pool_body(&pool, &tags)
        })
        .await
}

/// A developer provider name, once set, stays: a different one is refused, an omitted one
/// keeps the pool's (UpdateIdentityPool's rule, and a seed's).
fn keep_developer_provider(old: &PoolSettings, new: &mut PoolSettings) -> Result<(), ApiError> {
    match (&old.developer_provider_name, &new.developer_provider_name) {
        (Some(o), Some(n)) if o != n => Err(ApiError::InvalidParameter(format!(
            "DeveloperProviderName cannot be changed once set: the pool's is '{o}'."
        ))),
        (Some(o), None) => {
            new.developer_provider_name = Some(o.clone());
            Ok(())
        }
        _ => Ok(()),
    }
}

/// What declaring a pool (a seed file) did to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    Created,
    Updated,
    Unchanged,
}

/// Brings the pool with this fixed `id` to the declared settings and tags — creating it when
/// missing, changing it only when it differs — under the same rules as CreateIdentityPool and
/// UpdateIdentityPool. Its identities are never touched. A pool of another account with this
/// id is a conflict, not something to take over.
pub async fn declare(
    app: &App,
    caller: &Caller,
    id: &str,
    input: PoolInput,
) -> Result<Declared, ApiError> {
    let (mut settings, tags) = settings_from(input)?;
    let tags = tags.unwrap_or_default();
    let account = caller.account_id.clone();
    let owner = caller.clone();
    let id = id.to_string();
    let existing = {
        let id = id.clone();
        app.store
            .read(move |tx| {
                let pool = tx.pool(&id)?;
                let tags = match &pool {
                    Some(_) => tx.tags(&id)?,
                    None => BTreeMap::new(),
                };
                Ok::<_, ApiError>(pool.map(|p| (p, tags)))
            })
            .await?
    };
    match existing {
        Some((pool, _)) if pool.account_id != account => Err(ApiError::ResourceConflict(format!(
            "Identity pool {id} exists already and belongs to another account."
        ))),
        Some((pool, old_tags)) => {
            keep_developer_provider(&pool.settings, &mut settings)?;
            if pool.settings == settings && old_tags == tags {
                return Ok(Declared::Unchanged);
            }
            app.store
                .write(move |tx| {
                    owned_pool_in(tx, &id, &owner)?;
                    tx.update_pool(&id, &settings, times::now())?;
                    tx.set_tags(&id, &tags)?;
                    Ok(Declared::Updated)
                })
                .await
        }
        None => {
            app.store
                .write(move |tx| {
                    if tx.pool(&id)?.is_some() {
                        return Err(ApiError::ResourceConflict(format!(
                            "Identity pool {id} was created while it was being declared."
                        )));
                    }
                    check_pool_count(tx, &account)?;
                    tx.insert_pool(&id, &account, &settings, times::now())?;
                    tx.set_tags(&id, &tags)?;
                    Ok(Declared::Created)
                })
                .await
        }
    }
}

/// DescribeIdentityPool.
pub async fn describe(app: &App, caller: &Caller, input: PoolIdInput) -> Result<Vec<u8>, ApiError> {
    if app.store.cache_is_exact() {
        if let Some(answer) = describe_cached(app, caller, &input.id).await? {
            return Ok(answer);
        }
    }
    let caller = caller.clone();
    app.store
        .read(move |tx| match tx.pool_with_tags(&input.id)? {
            Some((pool, tags)) if caller.owns(&pool) => pool_body(&pool, &tags),
            _ => Err(ApiError::pool_not_found(&input.id)),
        })
        .await
}

/// DescribeIdentityPool from the caches, filling them from the database: `None` when a change
/// cleared them meanwhile (the pool and its tags might then be of different moments), and the
/// one-snapshot read answers instead.
async fn describe_cached(
    app: &App,
    caller: &Caller,
    id: &str,
) -> Result<Option<Vec<u8>>, ApiError> {
    let cache = app.store.cache();
    let generation = cache.generation();
    let pool = crate::ops::identities::cached_pool(app, id).await?;
    if !caller.owns(&pool) {
        return Err(ApiError::pool_not_found(id));
    }
    let tags = match cache.tags(&pool.id) {
        Some(t) => t,
        None => {
            let key = pool.id.clone();
            let tags = Arc::new(app.store.read(move |tx| tx.tags(&key)).await?);
            cache.put_tags(generation, &pool.id, tags.clone());
            tags
        }
    };
    if cache.generation() != generation {
        return Ok(None);
    }
    pool_body(&pool, &tags).map(Some)
}

/// UpdateIdentityPool: a full replace, except that an omitted DeveloperProviderName or
/// IdentityPoolTags keeps what the pool has (docs/behaviour.md §6.3).
pub async fn update(app: &App, caller: &Caller, input: PoolInput) -> Result<Vec<u8>, ApiError> {
    let id = input.id.clone().unwrap_or_default();
    let (settings, tags) = settings_from(input)?;
    let caller = caller.clone();
    app.store
        .write(move |tx| {
            let pool = owned_pool_in(tx, &id, &caller)?;
            let mut settings = settings.clone();
            keep_developer_provider(&pool.settings, &mut settings)?;
            tx.update_pool(&id, &settings, times::now())?;
            let tags = match tags.clone() {
                Some(t) => {
                    tx.set_tags(&id, &t)?;
                    t
                }
                None => tx.tags(&id)?,
            };
            let pool = tx
                .pool(&id)?
                .ok_or_else(|| ApiError::internal("a pool just written is not there"))?;
            pool_body(&pool, &tags)
        })
        .await
}

/// Identities (with their logins) one write transaction of DeleteIdentityPool removes at most:
/// a pool of millions goes in many short transactions, so the single writer never stalls every
/// other request behind one huge delete.
pub const DELETE_CHUNK: usize = 2_000;

/// DeleteIdentityPool: the pool, its identities, logins and tags. The identities go first, a
/// chunk per transaction; the pool row (and whatever was added meanwhile) goes last, at once.
pub async fn delete(app: &App, caller: &Caller, input: PoolIdInput) -> Result<Value, ApiError> {
    let id = input.id;
    owned_pool(app, caller, &id).await?;
    loop {
        let (id, caller) = (id.clone(), caller.clone());
        let removed = app
            .store
            .write(move |tx| {
                owned_pool_in(tx, &id, &caller)?;
                Ok::<_, ApiError>(tx.delete_pool_identities(&id, DELETE_CHUNK)?)
            })
            .await?;
        if removed < DELETE_CHUNK {
            break;
        }
    }
    let caller = caller.clone();
    app.store
        .write(move |tx| {
            owned_pool_in(tx, &id, &caller)?;
            tx.delete_pool(&id)?;
            Ok(json!({}))
        })
        .await
}

/// ListIdentityPools: the caller's account's pools in creation order.
pub async fn list(app: &App, caller: &Caller, input: ListInput) -> Result<Value, ApiError> {
    let scope = format!("pools|{}|{}", caller.account_id, caller.region);
    let after = match &input.next_token {
        Some(t) => Some(app.cursors.open_position(&scope, t)?),
        None => None,
    };
    let limit = input.max_results.clamp(1, 60) as usize;
    let caller = caller.clone();
    let rows = app
        .store
        .read(move |tx| tx.list_pools(&caller.account_id, &caller.region, after.as_ref(), limit))
        .await?;
    let mut out = Map::new();
    let rows = app.cursors.page(&scope, rows, limit, &mut out, |r| {
        position_payload(r.created_at, &r.id)
    });
    let pools: Vec<Value> = rows
        .into_iter()
        .map(|r| json!({"IdentityPoolId": r.id, "IdentityPoolName": r.name}))
        .collect();
    out.insert("IdentityPools".into(), Value::Array(pools));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oidc_arns_name_their_host() {
        assert_eq!(
            oidc_provider_host("arn:aws:iam::123456789012:oidc-provider/login.example.com"),
            Some("login.example.com")
        );
        assert_eq!(
            oidc_provider_host("arn:aws:iam::123456789012:oidc-provider/example.com/path"),
            Some("example.com/path")
        );
        assert_eq!(oidc_provider_host("arn:aws:iam::123456789012:role/x"), None);
        assert_eq!(oidc_provider_host("arn:aws:s3:::oidc-provider/x"), None);
        assert_eq!(oidc_provider_host("nonsense"), None);
    }
}
