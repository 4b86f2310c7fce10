//! Identities: GetId (with persistent, implicit login linking), DescribeIdentity, ListIdentities,
//! UnlinkIdentity, DeleteIdentities.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::access;
use super::linking::{
    self, require_pool, usable_identity, Known, LOGINS_DONT_MATCH, UNAUTH_NOT_SUPPORTED,
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

/// GetId's input as most requests send it: the three members and nothing else, each plainly
/// within the service model's constraints (see [`plain_get_id`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainGetId {
    #[serde(rename = "IdentityPoolId")]
    pool_id: String,
    #[serde(rename = "AccountId", default)]
    account_id: Option<String>,
    #[serde(rename = "Logins", default)]
    logins: Option<BTreeMap<String, String>>,
}

/// The model's GetId constraints, checked here in bytes: a string within them in bytes is
/// within them in characters too. `tests::a_plain_getid_is_one_the_model_accepts` holds them
/// to the model.
const POOL_ID_MAX: usize = 55;
const ACCOUNT_ID_MAX: usize = 15;
const LOGINS_MAX: usize = 10;
const PROVIDER_NAME_MAX: usize = 128;
const PROVIDER_TOKEN_MAX: usize = 50_000;

/// GetId's input decoded straight from the body, when it is plainly valid: the service model
/// would accept it (pool id `[\w-]+:[0-9a-f-]+` in ASCII, account id all digits, at most ten
/// logins, every length within bounds, no NUL). `None` for anything else — invalid, unusual
/// (unknown or repeated members, nulls, non-ASCII ids), or malformed — which then takes the
/// general path: a JSON tree, the model's validation and its exact error. Most GetIds are
/// plain, and skip that tree: it cost a fifth of a cached GetId.
pub fn plain_get_id(body: &[u8]) -> Option<GetIdInput> {
    // A derived struct also takes a JSON array of its members in order: only an object is plain.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let p: PlainGetId = serde_json::from_slice(body).ok()?;
    let text = |s: &str, max: usize| !s.is_empty() && s.len() <= max && !s.contains('\0');
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-';
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b) || *b == b'-';
    let (region, uuid) = p.pool_id.split_once(':')?;
    let pool_ok = p.pool_id.len() <= POOL_ID_MAX
        && !region.is_empty()
        && region.as_bytes().iter().all(word)
        && !uuid.is_empty()
        && uuid.as_bytes().iter().all(hex);
    let account_ok = p
        .account_id
        .as_deref()
        .is_none_or(|a| text(a, ACCOUNT_ID_MAX) && a.bytes().all(|b| b.is_ascii_digit()));
    let logins_ok = p.logins.as_ref().is_none_or(|m| {
        m.len() <= LOGINS_MAX
            && m.iter()
                .all(|(k, v)| text(k, PROVIDER_NAME_MAX) && text(v, PROVIDER_TOKEN_MAX))
    });
    (pool_ok && account_ok && logins_ok).then_some(GetIdInput {
        pool_id: p.pool_id,
        account_id: p.account_id,
        logins: p.logins,
    })
}

/// GetId's response body.
pub fn id_body(id: &str) -> Result<Vec<u8>, ApiError> {
    #[derive(Serialize)]
    struct Body<'a> {
        #[serde(rename = "IdentityId")]
        id: &'a str,
    }
    serde_json::to_vec(&Body { id })
        .map_err(|e| ApiError::internal(format!("could not encode a response: {e}")))
}

/// GetId: a new guest identity, or the identity that owns these logins, linking the ones that
/// are new to it; logins of different identities are a conflict and change nothing. Answers
/// the identity's id.
pub async fn get_id(app: &App, input: GetIdInput) -> Result<String, ApiError> {
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
        // The pool must still be there. On PostgreSQL, where a look is a round trip of its
        // own, the first try leaves that to the identity's foreign key, and the insert goes
        // with the COMMIT: one round trip. A pool deleted meanwhile fails that commit as a
        // lost race, and the next try (run by the engine) looks and answers not found.
        let looks_first = app.store.reads_are_local();
        let tried = AtomicBool::new(false);
        return app
            .store
            .write_inserts(move |tx| {
                if looks_first || tried.swap(true, Ordering::Relaxed) {
                    require_pool(tx, &pool_id)?;
                }
                tx.insert_identity(&id, &pool_id, times::now())?;
                Ok(id.clone())
            })
            .await;
    }
    let logins = logins::resolve(app, &pool, &logins).await?;

    // Known logins, all on one identity: answered from the cache, no database at all.
    if let Some(id) = cached_owner(app, &pool.id, &logins) {
        return Ok(id);
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
    if !app.store.reads_are_local() {
        // Every step a round trip (PostgreSQL): the read and the write of new logins are one
        // transaction, not two.
        let created = {
            let (pool_id, logins) = (pool_id.clone(), logins.clone());
            let region = pool.region().to_string();
            app.store
                .write_inserts(move |tx| linking::known_or_created(tx, &pool_id, &region, &logins))
                .await?
        };
        return settle(app, pool, pool_id, logins, created, generation, keys).await;
    }
    let known = {
        let (pool_id, logins) = (pool_id.clone(), logins.clone());
        app.store
            .read(move |tx| linking::known_owner(tx, &pool_id, &logins))
            .await?
    };
    let created = match known {
        Known::Owner(id) => Some(id),
        Known::Unlinked => {
            let (pool_id, logins) = (pool_id.clone(), logins.clone());
            let region = pool.region().to_string();
            app.store
                .write_inserts(move |tx| {
                    require_pool(tx, &pool_id)?;
                    linking::create_if_unlinked(tx, &pool_id, &region, &logins)
                })
                .await?
        }
        Known::Other => None,
    };
    settle(app, pool, pool_id, logins, created, generation, keys).await
}

/// The end of GetId past the cache: the identity found or created so far, else the write
/// that decides (links a new login to its owner, or refuses a conflict); what it ends on is
/// cached, unless a change came in since `generation`.
async fn settle(
    app: &App,
    pool: Arc<Pool>,
    pool_id: String,
    logins: Arc<Vec<Login>>,
    found: Option<String>,
    generation: u64,
    keys: Vec<cache::LoginKey>,
) -> Result<String, ApiError> {
    let id = match found {
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
    Ok(id)
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

/// The wire's IdentityDescription, borrowed from a described identity and encoded without an
/// intermediate JSON tree (a page of a listing holds 60 of them). Keys in the order the
/// responses have always had them (sorted).
#[derive(Serialize)]
struct Description<'a> {
    #[serde(rename = "CreationDate")]
    created: times::Epoch,
    #[serde(rename = "IdentityId")]
    id: &'a str,
    #[serde(rename = "LastModifiedDate")]
    modified: times::Epoch,
    #[serde(rename = "Logins", skip_serializing_if = "<[String]>::is_empty")]
    logins: &'a [String],
}

impl<'a> Description<'a> {
    fn of(d: &'a DescribedIdentity) -> Self {
        Description {
            created: times::Epoch(d.identity.created_at),
            id: &d.identity.id,
            modified: times::Epoch(d.identity.updated_at),
            logins: &d.providers,
        }
    }
}

/// A page of ListIdentities, as it is sent.
#[derive(Serialize)]
struct IdentitiesPage<'a> {
    #[serde(rename = "Identities")]
    identities: Vec<Description<'a>>,
    #[serde(rename = "IdentityPoolId")]
    pool_id: &'a str,
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
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
            serde_json::to_value(Description::of(&described))
                .map_err(|e| ApiError::internal(format!("could not encode an identity: {e}")))
        })
        .await
}

/// ListIdentities: a pool's identities in creation order, one read per page; the response
/// encoded straight from the rows.
pub async fn list(app: &App, caller: &Caller, input: ListInput) -> Result<Vec<u8>, ApiError> {
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
    let (rows, next_token) = app.cursors.page_token(&scope, rows, limit, |r| {
        super::cursor::position_payload(r.identity.created_at, &r.identity.id)
    });
    let page = IdentitiesPage {
        identities: rows.iter().map(Description::of).collect(),
        pool_id: &pool_id,
        next_token,
    };
    serde_json::to_vec(&page)
        .map_err(|e| ApiError::internal(format!("could not encode a response: {e}")))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::protocol::validate::Validator;
    use crate::protocol::Operation;

    const POOL: &str = "us-east-1:6eaf0258-e8c5-467f-90de-6e212326e6d3";

    /// Bodies around every constraint of GetId's input, and unusual shapes.
    fn bodies() -> Vec<String> {
        let logins = |n: usize| {
            let m: BTreeMap<String, String> =
                (0..n).map(|i| (format!("p{i}"), format!("u{i}"))).collect();
            json!({ "IdentityPoolId": POOL, "Logins": m }).to_string()
        };
        let pool = |id: &str| json!({ "IdentityPoolId": id }).to_string();
        let login = |k: &str, v: &str| json!({ "IdentityPoolId": POOL, "Logins": { k: v } });
        let account = |a: &str| json!({ "IdentityPoolId": POOL, "AccountId": a }).to_string();
        let mut out = vec![
            pool(POOL),
            pool(&format!("{}:{}", "r".repeat(26), "a".repeat(28))),
            pool(&format!("{}:{}", "r".repeat(26), "a".repeat(29))),
            pool("us_east-1:abc-"),
            pool("us-east-1:ABC"),
            pool("us-east-1:"),
            pool(":abc"),
            pool("us:east:abc"),
            pool("é-1:abc"),
            pool(""),
            account("123456789012"),
            account(&"1".repeat(15)),
            account(&"1".repeat(16)),
            account("12a"),
            account(""),
            logins(0),
            logins(1),
            logins(10),
            logins(11),
            login(&"k".repeat(128), "u").to_string(),
            login(&"k".repeat(129), "u").to_string(),
            login("k", &"u".repeat(50_000)).to_string(),
            login("k", &"u".repeat(50_001)).to_string(),
            login("k", "").to_string(),
            login("", "u").to_string(),
            login("k", "a\u{0}b").to_string(),
            login("k", &"é".repeat(30_000)).to_string(),
            format!(r#"{{"IdentityPoolId":"{POOL}","Logins":{{"k":null}}}}"#),
            format!(r#"{{"IdentityPoolId":"{POOL}","AccountId":null,"Logins":null}}"#),
            format!(r#"{{"IdentityPoolId":"{POOL}","IdentityPoolId":"{POOL}"}}"#),
            format!(r#"{{"IdentityPoolId":"{POOL}","Extra":1}}"#),
            format!(r#"{{"IdentityPoolId":"{POOL}","Logins":{{"k":"a","k":"b"}}}}"#),
            r#"{"IdentityPoolId":null}"#.to_string(),
            r#"{"IdentityPoolId":7}"#.to_string(),
            "{}".to_string(),
            "[]".to_string(),
            format!(r#"["{POOL}"]"#),
            format!(r#"["{POOL}", null, {{"k": "u"}}]"#),
            "{".to_string(),
        ];
        out.push(format!(r#"  {{"IdentityPoolId":"{POOL}"}}  "#));
        out
    }

    #[test]
    fn a_plain_getid_is_one_the_model_accepts() {
        let v = Validator::new().unwrap();
        let mut plain = 0;
        for body in bodies() {
            if plain_get_id(body.as_bytes()).is_some() {
                plain += 1;
                let tree: Value = serde_json::from_str(&body).unwrap();
                assert!(
                    v.validate(Operation::GetId, &tree).is_ok(),
                    "taken as plain but the model refuses it: {}",
                    &body[..body.len().min(120)]
                );
            }
        }
        // The common requests do take the plain path.
        assert_eq!(plain, 13, "plain bodies");
    }

    #[test]
    fn a_plain_getid_decodes_as_the_general_path_does() {
        let body = format!(
            r#"{{"IdentityPoolId":"{POOL}","AccountId":"123","Logins":{{"b":"2","a":"1"}}}}"#
        );
        let plain = plain_get_id(body.as_bytes()).unwrap();
        let general: GetIdInput = serde_json::from_str(&body).unwrap();
        assert_eq!(plain.pool_id, general.pool_id);
        assert_eq!(plain.account_id, general.account_id);
        assert_eq!(plain.logins, general.logins);
    }

    #[test]
    fn the_response_is_the_wire_shape() {
        let body = id_body("us-east-1:0190f1a2-0000-7000-8000-000000000000").unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"IdentityId":"us-east-1:0190f1a2-0000-7000-8000-000000000000"}"#
        );
    }
}
