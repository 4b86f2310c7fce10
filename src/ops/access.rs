//! Who may use an identity, and what presenting logins with an identity id does to it: the
//! procedure shared by GetOpenIdToken, GetCredentialsForIdentity, UnlinkIdentity and
//! GetOpenIdTokenForDeveloperIdentity (docs/behaviour.md §4.4, Decisions 2, 3 and 8).
//!
//! Presenting a login that no identity has links it to the identity; presenting a login that
//! another identity owns merges the two: the owner survives, takes the presented identity's
//! logins and developer user ids, and the presented identity is disabled.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::linking::{
    self, LOGINS_DONT_MATCH, LOGINS_ON_DIFFERENT_IDENTITIES, MAX_LOGINS_PER_IDENTITY,
    UNAUTH_NOT_SUPPORTED,
};
use super::logins::{self, Login, COGNITO_IDENTITY_PROVIDER};
use crate::model::{Identity, Pool};
use crate::protocol::ApiError;
use crate::store::Tx;
use crate::times;
use crate::App;

/// What a caller presented for an identity, checked: public-provider logins, and the claims of
/// a token of ours for this identity (the `cognito-identity.amazonaws.com` login) if one was
/// passed.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    pub logins: Vec<Login>,
    pub cognito: Option<Map<String, Value>>,
    /// A signed developer backend vouches for the caller (GetOpenIdTokenForDeveloperIdentity).
    pub vouched: bool,
}

impl Presented {
    /// Whether the caller presented a token of ours saying the identity was authenticated when
    /// it was issued. What the identity is *now* comes from its links, never from the token:
    /// this only decides whether the token may stand for an identity that is authenticated.
    pub fn cognito_authenticated(&self) -> bool {
        self.cognito
            .as_ref()
            .and_then(|c| c.get("amr"))
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            == Some("authenticated")
    }

    /// When a token of ours is the only proof presented (no public login besides), the time
    /// (epoch seconds) nothing got with it may outlive: its `exp`. A public login verified in
    /// the same call is fresh proof, so with one there is no such limit.
    pub fn not_after(&self) -> Option<i64> {
        if !self.logins.is_empty() {
            return None;
        }
        let exp = self.cognito.as_ref()?.get("exp")?.as_f64()?;
        // `verify` has refused tokens without a numeric `exp`; a fractional one rounds down.
        Some(exp.floor() as i64)
    }
}

/// An identity's links as they are now: what a token issued on the strength of a token of
/// ours says about it (`amr`), rather than what the presented token said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// (provider, subject), by provider.
    pub logins: Vec<(String, String)>,
    /// Developer user ids, sorted.
    pub developer_users: Vec<String>,
}

impl Links {
    pub fn read(tx: &dyn Tx, identity: &str) -> Result<Links, ApiError> {
        Ok(Links {
            logins: tx.logins_of(identity)?,
            developer_users: tx.developer_users_of(
                identity,
                "",
                MAX_LOGINS_PER_IDENTITY as usize,
            )?,
        })
    }

    /// Whether the identity is authenticated: it has at least one login or developer user.
    pub fn authenticated(&self) -> bool {
        !(self.logins.is_empty() && self.developer_users.is_empty())
    }
}

/// What settling a presentation ends on.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The identity the caller ends on (the surviving one after a merge).
    pub id: String,
    /// Its links, read in the same transaction, when a token of ours was presented.
    pub links: Option<Links>,
}

/// Loads an identity and its pool, and checks every login token presented for it.
pub async fn present(
    app: &App,
    identity_id: &str,
    logins_map: Option<BTreeMap<String, String>>,
) -> Result<(Pool, Identity, Presented), ApiError> {
    let id = identity_id.to_string();
    let (identity, pool) = app
        .store
        .read(move |tx| {
            let identity = tx
                .identity(&id)?
                .ok_or_else(|| ApiError::identity_not_found(&id))?;
            let pool = tx
                .pool(&identity.pool_id)?
                .ok_or_else(|| ApiError::identity_not_found(&id))?;
            Ok::<_, ApiError>((identity, pool))
        })
        .await?;
    let mut map = logins_map.unwrap_or_default();
    let cognito = match map.remove(COGNITO_IDENTITY_PROVIDER) {
        Some(token) => Some(own_token(app, &pool, identity_id, &token).await?),
        None => None,
    };
    let logins = logins::resolve(app, &pool, &map).await?;
    Ok((
        pool,
        identity,
        Presented {
            logins,
            cognito,
            vouched: false,
        },
    ))
}

/// Checks a token this server issued, presented for `identity_id` of `pool`.
async fn own_token(
    app: &App,
    pool: &Pool,
    identity_id: &str,
    token: &str,
) -> Result<Map<String, Value>, ApiError> {
    let claims = app.tokens.verify(token).await?;
    if claims.get("aud").and_then(Value::as_str) != Some(pool.id.as_str()) {
        return Err(ApiError::unsupported_provider());
    }
    if claims.get("sub").and_then(Value::as_str) != Some(identity_id) {
        return Err(ApiError::NotAuthorized(LOGINS_DONT_MATCH.to_string()));
    }
    Ok(claims)
}

/// Settles what a presentation means for the identity, returning the identity the caller ends
/// on. With `dry`, nothing is written: `Ok(None)` means a write is needed (a link or a merge),
/// so the caller runs it again inside a write.
pub fn settle(
    tx: &dyn Tx,
    pool: &Pool,
    identity_id: &str,
    p: &Presented,
    dry: bool,
) -> Result<Option<String>, ApiError> {
    linking::usable_identity(tx, identity_id)?;
    let authenticated = tx.login_count(identity_id)? > 0;
    if p.logins.is_empty() {
        if authenticated {
            // Only a developer backend, or a token of ours issued to the identity as
            // authenticated, stands for an authenticated identity without a login; a guest
            // token from before the identity signed in does not.
            if p.vouched || p.cognito_authenticated() {
                return Ok(Some(identity_id.to_string()));
            }
            return Err(ApiError::identity_forbidden(identity_id));
        }
        if p.vouched {
            return Ok(Some(identity_id.to_string()));
        }
        // A guest, with or without a token of ours (whatever that token says): guest access,
        // which the pool may have stopped allowing since the token was issued.
        if !pool.settings.allow_unauthenticated {
            return Err(ApiError::NotAuthorized(UNAUTH_NOT_SUPPORTED.to_string()));
        }
        return Ok(Some(identity_id.to_string()));
    }
    let mut unlinked: Vec<&Login> = Vec::new();
    let mut proves = p.vouched || p.cognito_authenticated();
    let mut other: Option<String> = None;
    for l in &p.logins {
        match tx.login_owner(&pool.id, &l.provider, &l.subject)? {
            None => unlinked.push(l),
            Some(o) if o == identity_id => proves = true,
            Some(o) => match &other {
                Some(prev) if *prev != o => {
                    return Err(ApiError::ResourceConflict(
                        LOGINS_ON_DIFFERENT_IDENTITIES.to_string(),
                    ))
                }
                _ => other = Some(o),
            },
        }
    }
    if authenticated && !proves {
        return Err(ApiError::NotAuthorized(LOGINS_DONT_MATCH.to_string()));
    }
    if other.is_none() && unlinked.is_empty() {
        return Ok(Some(identity_id.to_string()));
    }
    if dry {
        return Ok(None);
    }
    let now = times::now();
    let target = match other {
        None => identity_id.to_string(),
        Some(owner) => {
            linking::merge(tx, identity_id, &owner)?;
            owner
        }
    };
    linking::link_into(tx, &pool.id, &target, &unlinked)?;
    tx.touch(&target, now)?;
    Ok(Some(target))
}

/// Settles a presentation: first from a read (the common case: nothing to change), then, if a
/// link or merge is needed, inside a write.
pub async fn settle_identity(
    app: &App,
    pool: &Pool,
    identity_id: &str,
    p: &Presented,
) -> Result<Settled, ApiError> {
    let read = {
        let (pool, identity_id, p) = (pool.clone(), identity_id.to_string(), p.clone());
        app.store
            .read(move |tx| match settle(tx, &pool, &identity_id, &p, true)? {
                Some(id) => settled(tx, id, &p).map(Some),
                None => Ok(None),
            })
            .await?
    };
    if let Some(s) = read {
        return Ok(s);
    }
    let pool = pool.clone();
    let identity_id = identity_id.to_string();
    let p = p.clone();
    app.store
        .write(move |tx| {
            let id = settle(tx, &pool, &identity_id, &p, false)?
                .ok_or_else(|| ApiError::internal("a settling write asked for another write"))?;
            settled(tx, id, &p)
        })
        .await
}

fn settled(tx: &dyn Tx, id: String, p: &Presented) -> Result<Settled, ApiError> {
    let links = match p.cognito {
        Some(_) => Some(Links::read(tx, &id)?),
        None => None,
    };
    Ok(Settled { id, links })
}
