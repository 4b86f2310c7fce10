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
use crate::model::{Identity, Pool, PoolRoles, PrincipalTagMap};
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

/// What of the pool's configuration an access check reads with the identity and its pool, in
/// the same step: on PostgreSQL every read is round trips of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    /// The pool's roles and role mappings (GetCredentialsForIdentity).
    pub roles: bool,
    /// The pool's principal tag attribute maps, read only when public logins are presented
    /// (only they carry principal tags).
    pub tag_maps: bool,
}

/// What settling a presentation ends on.
#[derive(Debug, Clone)]
pub struct Settled {
    /// The identity the caller ends on (the surviving one after a merge).
    pub id: String,
    /// Its links, read in the same transaction, when a token of ours was presented.
    pub links: Option<Links>,
}

/// What the access check of GetOpenIdToken and GetCredentialsForIdentity ends on.
#[derive(Debug, Clone)]
pub struct Access {
    pub pool: Pool,
    pub presented: Presented,
    pub settled: Settled,
    /// The pool's roles, when `Needs::roles` asked for them (else none).
    pub roles: PoolRoles,
    /// The pool's principal tag attribute maps by provider, when `Needs::tag_maps` asked for
    /// them and public logins were presented (else none).
    pub tag_maps: BTreeMap<String, PrincipalTagMap>,
}

/// An identity with its pool, and what `needs` names, from one step: an identity whose pool is
/// gone is not found.
fn first_look(
    tx: &dyn Tx,
    id: &str,
    roles: bool,
    tag_maps: bool,
) -> Result<(Identity, Pool, PoolRoles, BTreeMap<String, PrincipalTagMap>), ApiError> {
    let found = tx
        .identity_with_pool(id, roles, tag_maps)?
        .ok_or_else(|| ApiError::identity_not_found(id))?;
    let pool = found.pool.ok_or_else(|| ApiError::identity_not_found(id))?;
    Ok((
        found.identity,
        pool,
        found.roles.unwrap_or_default(),
        found.tag_maps,
    ))
}

/// Loads an identity and its pool, and checks every login token presented for it.
pub async fn present(
    app: &App,
    identity_id: &str,
    logins_map: Option<BTreeMap<String, String>>,
) -> Result<(Pool, Identity, Presented), ApiError> {
    let id = identity_id.to_string();
    let (identity, pool, _, _) = app
        .store
        .read(move |tx| first_look(tx, &id, false, false))
        .await?;
    let presented = check_presented(app, &pool, identity_id, logins_map).await?;
    Ok((pool, identity, presented))
}

async fn check_presented(
    app: &App,
    pool: &Pool,
    identity_id: &str,
    logins_map: Option<BTreeMap<String, String>>,
) -> Result<Presented, ApiError> {
    let mut map = logins_map.unwrap_or_default();
    let cognito = match map.remove(COGNITO_IDENTITY_PROVIDER) {
        Some(token) => Some(own_token(app, pool, identity_id, &token).await?),
        None => None,
    };
    let logins = logins::resolve(app, pool, &map).await?;
    Ok(Presented {
        logins,
        cognito,
        vouched: false,
    })
}

/// The whole access check of GetOpenIdToken and GetCredentialsForIdentity: the identity, its
/// pool and what `needs` names; the presented tokens; `check` (the operation's own refusals,
/// in the order AWS gives them: after the tokens, before any link); then the settling.
///
/// With no logins presented there is nothing to verify, so all of it is one read; with logins,
/// one read before their tokens are verified (they are checked against the pool) and one
/// after, or a write when a link or merge is due.
pub async fn access<C>(
    app: &App,
    identity_id: &str,
    logins_map: Option<BTreeMap<String, String>>,
    needs: Needs,
    check: C,
) -> Result<Access, ApiError>
where
    C: FnOnce(&Pool, &Presented) -> Result<(), ApiError> + Send + 'static,
{
    let id = identity_id.to_string();
    if logins_map.as_ref().is_none_or(BTreeMap::is_empty) {
        let (pool, roles, settled) = app
            .store
            .read(move |tx| {
                let (_, pool, roles, _) = first_look(tx, &id, needs.roles, false)?;
                let p = Presented::default();
                check(&pool, &p)?;
                let settled = match settle(tx, &pool, &id, &p, true)? {
                    Some(to) => Some(settled(tx, to, &p)?),
                    None => None,
                };
                Ok::<_, ApiError>((pool, roles, settled))
            })
            .await?;
        let presented = Presented::default();
        let settled = match settled {
            Some(s) => s,
            None => settle_in_write(app, &pool, identity_id, &presented).await?,
        };
        return Ok(Access {
            pool,
            presented,
            settled,
            roles,
            tag_maps: BTreeMap::new(),
        });
    }
    let public = logins_map
        .as_ref()
        .is_some_and(|m| m.keys().any(|k| k != COGNITO_IDENTITY_PROVIDER));
    let tag_maps = needs.tag_maps && public;
    let (identity, pool, roles, tag_maps) = app
        .store
        .read(move |tx| first_look(tx, &id, needs.roles, tag_maps))
        .await?;
    let presented = check_presented(app, &pool, identity_id, logins_map).await?;
    check(&pool, &presented)?;
    let settled = settle_identity(app, &pool, &identity.id, &presented).await?;
    Ok(Access {
        pool,
        presented,
        settled,
        roles,
        tag_maps,
    })
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
    let first = p
        .logins
        .first()
        .map(|l| (l.provider.as_str(), l.subject.as_str()));
    let (identity, count, first_owner) = tx
        .identity_with_logins(identity_id, &pool.id, first)?
        .ok_or_else(|| ApiError::identity_not_found(identity_id))?;
    if identity.disabled {
        return Err(ApiError::identity_forbidden(identity_id));
    }
    let authenticated = count > 0;
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
    for (i, l) in p.logins.iter().enumerate() {
        let owner = match i {
            0 => first_owner.clone(),
            _ => tx.login_owner(&pool.id, &l.provider, &l.subject)?,
        };
        match owner {
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
    match read {
        Some(s) => Ok(s),
        None => settle_in_write(app, pool, identity_id, p).await,
    }
}

async fn settle_in_write(
    app: &App,
    pool: &Pool,
    identity_id: &str,
    p: &Presented,
) -> Result<Settled, ApiError> {
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
