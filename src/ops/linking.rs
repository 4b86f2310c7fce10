//! The linking rules, written once for every operation and every engine: which identity a set
//! of logins belongs to, linking new logins, merging two identities, the 20-login room, and the
//! checks that come back in every operation ("is this identity usable", "is it in this pool",
//! "disable it when nothing can reach it any more"). Everything here runs inside one
//! transaction, on the storage steps of [`Tx`].

use crate::model::Identity;
use crate::ops::logins::Login;
use crate::ops::new_identity_id;
use crate::protocol::ApiError;
use crate::store::Tx;
use crate::times::{self, Millis};

/// Logins an identity may have at most (public provider users and developer user ids).
pub const MAX_LOGINS_PER_IDENTITY: i64 = 20;

pub const UNAUTH_NOT_SUPPORTED: &str =
    "Unauthenticated access is not supported for this identity pool.";
pub const LOGINS_ON_DIFFERENT_IDENTITIES: &str = "Logins are linked to different identities.";
pub const LOGIN_ALREADY_LINKED: &str = "Login is already linked to another account.";
pub const LOGINS_DONT_MATCH: &str =
    "Logins don't match. Please include at least one valid login for this identity or identity pool.";

/// The pool still exists (a DeleteIdentityPool may have committed since it was read), or
/// ResourceNotFoundException rather than a foreign-key failure.
pub fn require_pool(tx: &dyn Tx, pool_id: &str) -> Result<(), ApiError> {
    match tx.pool_exists(pool_id)? {
        true => Ok(()),
        false => Err(ApiError::pool_not_found(pool_id)),
    }
}

/// An identity that may be used: an unknown one is "not found", a disabled one (merged away,
/// or left with no logins) is "forbidden".
pub fn usable_identity(tx: &dyn Tx, id: &str) -> Result<Identity, ApiError> {
    match tx.identity(id)? {
        None => Err(ApiError::identity_not_found(id)),
        Some(i) if i.disabled => Err(ApiError::identity_forbidden(id)),
        Some(i) => Ok(i),
    }
}

/// An identity of this pool; one of another pool, or none, is "not found".
pub fn identity_in_pool(tx: &dyn Tx, id: &str, pool_id: &str) -> Result<Identity, ApiError> {
    tx.identity(id)?
        .filter(|i| i.pool_id == pool_id)
        .ok_or_else(|| ApiError::identity_not_found(id))
}

/// After logins were removed: an identity left with none cannot be reached again and is
/// disabled, as on AWS; one that has some is marked as changed.
pub fn disable_if_unreachable(tx: &dyn Tx, id: &str, now: Millis) -> Result<(), ApiError> {
    if tx.login_count(id)? == 0 {
        tx.disable(id, None, now)?;
    } else {
        tx.touch(id, now)?;
    }
    Ok(())
}

/// Refuses to grow an identity past 20 logins (public users and developer user ids).
pub fn check_room(tx: &dyn Tx, identity: &str, adding: usize) -> Result<(), ApiError> {
    if tx.login_count(identity)? + adding as i64 > MAX_LOGINS_PER_IDENTITY {
        return Err(ApiError::LimitExceeded(format!(
            "An identity can have at most {MAX_LOGINS_PER_IDENTITY} linked logins."
        )));
    }
    Ok(())
}

/// Whether any of these logins is already linked to `identity`: the proof of ownership an
/// authenticated identity needs.
pub fn owns_any(
    tx: &dyn Tx,
    pool: &str,
    identity: &str,
    logins: &[Login],
) -> Result<bool, ApiError> {
    for l in logins {
        if tx.login_owner(pool, &l.provider, &l.subject)?.as_deref() == Some(identity) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Links new logins to an identity: one user per provider, at most 20 logins.
pub fn link_into(
    tx: &dyn Tx,
    pool: &str,
    identity: &str,
    logins: &[&Login],
) -> Result<(), ApiError> {
    if logins.is_empty() {
        return Ok(());
    }
    for l in logins {
        if tx.subject_for(identity, &l.provider)?.is_some() {
            return Err(ApiError::ResourceConflict(LOGIN_ALREADY_LINKED.to_string()));
        }
    }
    check_room(tx, identity, logins.len())?;
    let now = times::now();
    for l in logins {
        tx.link(pool, &l.provider, &l.subject, identity, now)?;
    }
    Ok(())
}

/// Merges identity `from` into `into`: `into` takes every login and developer user id of
/// `from`, and `from` is disabled. Two users of one provider cannot end on one identity.
pub fn merge(tx: &dyn Tx, from: &str, into: &str) -> Result<(), ApiError> {
    usable_identity(tx, into)?;
    for (provider, subject) in tx.logins_of(from)? {
        if let Some(s) = tx.subject_for(into, &provider)? {
            if s != subject {
                return Err(ApiError::ResourceConflict(LOGIN_ALREADY_LINKED.to_string()));
            }
        }
    }
    if tx.login_count(into)? + tx.login_count(from)? > MAX_LOGINS_PER_IDENTITY {
        return Err(ApiError::ResourceConflict(format!(
            "The merged identity would have more than {MAX_LOGINS_PER_IDENTITY} linked logins."
        )));
    }
    let now = times::now();
    tx.move_links(from, into)?;
    tx.disable(from, Some(into), now)?;
    tx.touch(into, now)?;
    Ok(())
}

/// What GetId's read before its write found.
#[derive(Debug, PartialEq, Eq)]
pub enum Known {
    /// The usable identity that owns every one of the logins: nothing to write.
    Owner(String),
    /// None of the logins is linked: a new identity, which only adds rows.
    Unlinked,
    /// Anything else to do or to refuse (a login not linked yet beside linked ones, logins of
    /// different identities, a disabled identity): the write decides.
    Other,
}

/// GetId's read before its write: see [`Known`].
pub fn known_owner(tx: &dyn Tx, pool: &str, logins: &[Login]) -> Result<Known, ApiError> {
    let mut owner: Option<String> = None;
    let mut unlinked = 0usize;
    for l in logins {
        match tx.login_owner(pool, &l.provider, &l.subject)? {
            None => unlinked += 1,
            Some(o) => match &owner {
                Some(prev) if *prev != o => return Ok(Known::Other),
                Some(_) => {}
                None => owner = Some(o),
            },
        }
    }
    Ok(match owner {
        None => Known::Unlinked,
        Some(_) if unlinked > 0 => Known::Other,
        Some(id) => match usable_owner(tx, &id)? {
            Some(id) => Known::Owner(id),
            None => Known::Other,
        },
    })
}

/// The owner of logins, when it is enabled (GetId answers with it and writes nothing).
fn usable_owner(tx: &dyn Tx, id: &str) -> Result<Option<String>, ApiError> {
    Ok(tx.identity(id)?.filter(|i| !i.disabled).map(|i| i.id))
}

/// GetId's write for logins none of which is linked: a new identity that owns them all.
/// `None`, changing nothing, when one of them is linked by now (another request was first):
/// [`find_or_create`] then decides. Only adds rows, each guarded by a key (see
/// `Store::write_inserts`).
pub fn create_if_unlinked(
    tx: &dyn Tx,
    pool: &str,
    region: &str,
    logins: &[Login],
) -> Result<Option<String>, ApiError> {
    for l in logins {
        if tx.login_owner(pool, &l.provider, &l.subject)?.is_some() {
            return Ok(None);
        }
    }
    Ok(Some(create_owner(tx, pool, region, logins)?))
}

/// GetId's read and its write for new logins in one transaction, for an engine where every
/// step is a round trip to the database (see `Store::reads_are_local`): the owner the read
/// would have found, else a new identity for logins none of which is linked, else `None` for
/// [`find_or_create`] to decide. Only adds rows, each guarded by a key, as
/// [`create_if_unlinked`].
pub fn known_or_created(
    tx: &dyn Tx,
    pool: &str,
    region: &str,
    logins: &[Login],
) -> Result<Option<String>, ApiError> {
    if let [l] = logins {
        // One login, as most GetIds: the pool and the owner in one step.
        let (pool_exists, owner) = tx.pool_and_login_owner(pool, &l.provider, &l.subject)?;
        return match owner {
            Some(id) => Ok(usable_owner(tx, &id)?),
            None if pool_exists => Ok(Some(create_owner(tx, pool, region, logins)?)),
            None => Err(ApiError::pool_not_found(pool)),
        };
    }
    match known_owner(tx, pool, logins)? {
        Known::Owner(id) => Ok(Some(id)),
        Known::Other => Ok(None),
        Known::Unlinked => {
            require_pool(tx, pool)?;
            Ok(Some(create_owner(tx, pool, region, logins)?))
        }
    }
}

/// A new identity that owns these logins, none of which is linked.
fn create_owner(
    tx: &dyn Tx,
    pool: &str,
    region: &str,
    logins: &[Login],
) -> Result<String, ApiError> {
    let now = times::now();
    let id = new_identity_id(region);
    tx.insert_identity(&id, pool, now)?;
    for l in logins {
        tx.link(pool, &l.provider, &l.subject, &id, now)?;
    }
    Ok(id)
}

/// GetId's write: finds or creates the one identity these logins belong to and links the ones
/// that are new to it; logins of different identities are a conflict.
pub fn find_or_create(
    tx: &dyn Tx,
    pool: &str,
    region: &str,
    logins: &[Login],
) -> Result<String, ApiError> {
    let now = times::now();
    let mut owner: Option<String> = None;
    let mut unlinked: Vec<&Login> = Vec::new();
    for l in logins {
        match tx.login_owner(pool, &l.provider, &l.subject)? {
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
            let id = new_identity_id(region);
            tx.insert_identity(&id, pool, now)?;
            for l in unlinked {
                tx.link(pool, &l.provider, &l.subject, &id, now)?;
            }
            Ok(id)
        }
        Some(id) => {
            usable_identity(tx, &id)?;
            if !unlinked.is_empty() {
                link_into(tx, pool, &id, &unlinked)?;
                tx.touch(&id, now)?;
            }
            Ok(id)
        }
    }
}
