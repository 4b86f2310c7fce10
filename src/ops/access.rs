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
use crate::model::{Identity, IdentityWithPool, Pool, PoolRoles, PrincipalTagMap};
use crate::protocol::ApiError;
use crate::store::{StoreError, Tx};
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

/// The access check's first look: an identity whose pool is gone is not found.
fn first_look(
    tx: &dyn Tx,
    id: &str,
    roles: bool,
    tag_maps: bool,
    login: Option<(&str, &str)>,
) -> Result<(IdentityWithPool, Pool), ApiError> {
    let mut found = tx
        .identity_with_pool(id, roles, tag_maps, login)?
        .ok_or_else(|| ApiError::identity_not_found(id))?;
    let pool = found
        .pool
        .take()
        .ok_or_else(|| ApiError::identity_not_found(id))?;
    Ok((found, pool))
}

/// Loads an identity and its pool, and checks every login token presented for it.
pub async fn present(
    app: &App,
    identity_id: &str,
    logins_map: Option<BTreeMap<String, String>>,
) -> Result<(Pool, Identity, Presented), ApiError> {
    let id = identity_id.to_string();
    let (look, pool) = app
        .store
        .read(move |tx| first_look(tx, &id, false, false, None))
        .await?;
    let presented = check_presented(app, &pool, identity_id, logins_map).await?;
    Ok((pool, look.identity, presented))
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

/// Settling after the first look, for a presentation of no login or of one whose user the
/// first look already asked about: no storage step is left to take, so none may be asked for.
fn nothing_more(_: &Login) -> Result<Option<String>, StoreError> {
    Err(StoreError::Database(
        "settling asked for a login the first look did not read".to_string(),
    ))
}

/// The whole access check of GetOpenIdToken and GetCredentialsForIdentity: the identity, its
/// pool and what `needs` names; the presented tokens; `check` (the operation's own refusals,
/// in the order AWS gives them: after the tokens, before any link); then the settling.
///
/// All of it is one read when no login is presented, and when one public login is: its user,
/// as the token claims it, is looked up with the identity before the token is checked, and
/// that lookup stands only if the check gives the same user. Otherwise a second read follows
/// the check. A link or merge that is due is a write of its own, which reads afresh.
pub async fn access<C>(
    app: &App,
    identity_id: &str,
    logins_map: Option<BTreeMap<String, String>>,
    needs: Needs,
    check: C,
) -> Result<Access, ApiError>
where
    C: FnOnce(&Pool, &Presented) -> Result<(), ApiError>,
{
    let map = logins_map.unwrap_or_default();
    let claimed = match map.iter().next() {
        Some((provider, token)) if map.len() == 1 && provider != COGNITO_IDENTITY_PROVIDER => app
            .verifier
            .claimed_subject(provider, token)
            .map(|subject| (provider.clone(), subject)),
        _ => None,
    };
    let tag_maps = needs.tag_maps && map.keys().any(|k| k != COGNITO_IDENTITY_PROVIDER);
    let (id, asked) = (identity_id.to_string(), claimed.clone());
    let (look, pool) = app
        .store
        .read(move |tx| {
            let login = asked.as_ref().map(|(p, s)| (p.as_str(), s.as_str()));
            first_look(tx, &id, needs.roles, tag_maps, login)
        })
        .await?;
    let presented = check_presented(app, &pool, identity_id, Some(map)).await?;
    check(&pool, &presented)?;
    // The first look settles it when it asked about every login presented (none, or the one
    // whose user the check confirmed) and no token of ours needs the links read.
    let looked_up = match (&claimed, presented.logins.as_slice()) {
        (_, []) => true,
        (Some((provider, subject)), [l]) => *provider == l.provider && *subject == l.subject,
        _ => false,
    };
    let settled = if looked_up && presented.cognito.is_none() {
        let decided = decide(
            &pool,
            &look.identity,
            look.login_count,
            look.login_owner.clone(),
            &presented,
            &nothing_more,
        )?;
        match decided {
            Decided::Stays => Settled {
                id: look.identity.id.clone(),
                links: None,
            },
            Decided::Changes { .. } => settle_in_write(app, &pool, identity_id, &presented).await?,
        }
    } else {
        settle_identity(app, &pool, identity_id, &presented).await?
    };
    Ok(Access {
        pool,
        presented,
        settled,
        roles: look.roles.unwrap_or_default(),
        tag_maps: look.tag_maps,
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

/// What a presentation asks of an identity.
enum Decided<'p> {
    /// Nothing to change: the caller stays on the identity.
    Stays,
    /// Logins no identity has, to link; another identity that owns a presented login, to
    /// merge with.
    Changes {
        unlinked: Vec<&'p Login>,
        other: Option<String>,
    },
}

/// Decides what a presentation asks of `identity` (which has `count` logins), from the owner
/// of its first login (`first_owner`) and `owner_of` for any further one.
fn decide<'p>(
    pool: &Pool,
    identity: &Identity,
    count: i64,
    first_owner: Option<String>,
    p: &'p Presented,
    owner_of: &dyn Fn(&Login) -> Result<Option<String>, StoreError>,
) -> Result<Decided<'p>, ApiError> {
    let identity_id = identity.id.as_str();
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
                return Ok(Decided::Stays);
            }
            return Err(ApiError::identity_forbidden(identity_id));
        }
        // A guest, with or without a token of ours (whatever that token says): guest access,
        // which the pool may have stopped allowing since the token was issued.
        if !p.vouched && !pool.settings.allow_unauthenticated {
            return Err(ApiError::NotAuthorized(UNAUTH_NOT_SUPPORTED.to_string()));
        }
        return Ok(Decided::Stays);
    }
    let mut unlinked: Vec<&Login> = Vec::new();
    let mut proves = p.vouched || p.cognito_authenticated();
    let mut other: Option<String> = None;
    for (i, l) in p.logins.iter().enumerate() {
        let owner = match i {
            0 => first_owner.clone(),
            _ => owner_of(l)?,
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
        return Ok(Decided::Stays);
    }
    Ok(Decided::Changes { unlinked, other })
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
    let look = tx
        .identity_with_pool(identity_id, false, false, first)?
        .ok_or_else(|| ApiError::identity_not_found(identity_id))?;
    let owner_of = |l: &Login| tx.login_owner(&pool.id, &l.provider, &l.subject);
    let decided = decide(
        pool,
        &look.identity,
        look.login_count,
        look.login_owner,
        p,
        &owner_of,
    )?;
    let Decided::Changes { unlinked, other } = decided else {
        return Ok(Some(identity_id.to_string()));
    };
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
