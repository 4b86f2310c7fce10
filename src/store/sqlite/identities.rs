//! SQL for identities, their provider logins and developer user ids.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{position_args, time_col};
use crate::model::{DescribedIdentity, Identity, Position};
use crate::store::StoreError;
use crate::times::Millis;

fn from_row(row: &Row) -> rusqlite::Result<Identity> {
    Ok(Identity {
        id: row.get(0)?,
        pool_id: row.get(1)?,
        created_at: time_col(row, 2)?,
        updated_at: time_col(row, 3)?,
        disabled: row.get(4)?,
    })
}

/// Reads an identity by id.
pub fn get(c: &Connection, id: &str) -> Result<Option<Identity>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT id, pool_id, created_at, updated_at, disabled FROM identities WHERE id = ?1",
    )?
    .query_row([id], from_row)
    .optional()?)
}

/// The identity a provider's user is linked to in a pool, if any.
pub fn owner_of(
    c: &Connection,
    pool: &str,
    provider: &str,
    subject: &str,
) -> Result<Option<String>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT identity_id FROM logins WHERE pool_id = ?1 AND provider = ?2 AND subject = ?3",
    )?
    .query_row([pool, provider, subject], |r| r.get(0))
    .optional()?)
}

/// Creates an identity.
pub fn insert(c: &Connection, id: &str, pool: &str, now: Millis) -> Result<(), StoreError> {
    let t = now.text();
    c.prepare_cached(
        "INSERT INTO identities (id, pool_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)",
    )?
    .execute(params![id, pool, t])?;
    Ok(())
}

/// Links a provider's user to an identity.
pub fn link(
    c: &Connection,
    pool: &str,
    provider: &str,
    subject: &str,
    identity: &str,
    now: Millis,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO logins (pool_id, provider, subject, identity_id, linked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![pool, provider, subject, identity, now.text()])?;
    Ok(())
}

/// The subject an identity has for a provider, if it has one.
pub fn subject_for(
    c: &Connection,
    identity: &str,
    provider: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        c.prepare_cached("SELECT subject FROM logins WHERE identity_id = ?1 AND provider = ?2")?
            .query_row([identity, provider], |r| r.get(0))
            .optional()?,
    )
}

/// How many logins (provider users and developer user ids) an identity has.
pub fn login_count(c: &Connection, identity: &str) -> Result<i64, StoreError> {
    Ok(c.prepare_cached(
        "SELECT (SELECT count(*) FROM logins WHERE identity_id = ?1) \
              + (SELECT count(*) FROM developer_users WHERE identity_id = ?1)",
    )?
    .query_row([identity], |r| r.get(0))?)
}

/// Marks an identity as changed now.
pub fn touch(c: &Connection, identity: &str, now: Millis) -> Result<(), StoreError> {
    c.prepare_cached("UPDATE identities SET updated_at = ?2 WHERE id = ?1")?
        .execute(params![identity, now.text()])?;
    Ok(())
}

/// The provider names of an identity, one text joined by U+001F, and whether it has developer
/// user ids: the two columns `described` turns into a provider list. A pool without a developer
/// provider has no developer user ids to look for: its variant skips that lookup per row.
fn provider_columns(developer: Option<&str>) -> String {
    let developer_users = match developer {
        Some(_) => "EXISTS (SELECT 1 FROM developer_users WHERE identity_id = i.id)",
        None => "0",
    };
    format!(
        "(SELECT group_concat(provider, char(31)) FROM \
         (SELECT provider FROM logins WHERE identity_id = i.id ORDER BY provider)), \
         {developer_users}"
    )
}

fn described(row: &Row, developer: Option<&str>) -> rusqlite::Result<DescribedIdentity> {
    let identity = from_row(row)?;
    let joined: Option<String> = row.get(5)?;
    let providers: Vec<String> = match joined {
        Some(j) => j.split('\u{1f}').map(str::to_string).collect(),
        None => Vec::new(),
    };
    Ok(DescribedIdentity::new(
        identity,
        providers,
        developer,
        row.get(6)?,
    ))
}

/// An identity with its provider names, in one statement.
pub fn describe(
    c: &Connection,
    id: &str,
    developer: Option<&str>,
) -> Result<Option<DescribedIdentity>, StoreError> {
    let sql = format!(
        "SELECT i.id, i.pool_id, i.created_at, i.updated_at, i.disabled, {} \
         FROM identities i WHERE i.id = ?1",
        provider_columns(developer)
    );
    Ok(c.prepare_cached(&sql)?
        .query_row([id], |r| described(r, developer))
        .optional()?)
}

/// Up to `limit + 1` of a pool's identities after `after`, in creation order, each with its
/// provider names: one statement for the page.
pub fn list(
    c: &Connection,
    pool: &str,
    after: Option<&Position>,
    limit: usize,
    hide_disabled: bool,
    developer: Option<&str>,
) -> Result<Vec<DescribedIdentity>, StoreError> {
    let mut stmt = c.prepare_cached(&list_sql(developer))?;
    let (t, i) = position_args(after);
    let rows = stmt.query_map(params![pool, t, i, hide_disabled, limit as i64 + 1], |r| {
        described(r, developer)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn list_sql(developer: Option<&str>) -> String {
    format!(
        "SELECT i.id, i.pool_id, i.created_at, i.updated_at, i.disabled, {} \
         FROM identities i WHERE i.pool_id = ?1 AND (i.created_at, i.id) > (?2, ?3) \
         AND (?4 = 0 OR i.disabled = 0) ORDER BY i.created_at, i.id LIMIT ?5",
        provider_columns(developer)
    )
}

/// Every (provider, subject) an identity is linked with.
pub fn logins_of(c: &Connection, identity: &str) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT provider, subject FROM logins WHERE identity_id = ?1 ORDER BY provider",
    )?;
    let rows = stmt.query_map([identity], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Removes an identity's login of a provider; true if there was one.
pub fn unlink(c: &Connection, identity: &str, provider: &str) -> Result<bool, StoreError> {
    Ok(
        c.prepare_cached("DELETE FROM logins WHERE identity_id = ?1 AND provider = ?2")?
            .execute([identity, provider])?
            > 0,
    )
}

/// Disables an identity; `merged_into` names the identity that took over its logins.
pub fn disable(
    c: &Connection,
    identity: &str,
    merged_into: Option<&str>,
    now: Millis,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE identities SET disabled = 1, merged_into = ?2, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![identity, merged_into, now.text()])?;
    Ok(())
}

/// Moves every login and developer user id of `from` to `to` (the merge of two identities).
pub fn move_links(c: &Connection, from: &str, to: &str) -> Result<(), StoreError> {
    c.prepare_cached("UPDATE logins SET identity_id = ?2 WHERE identity_id = ?1")?
        .execute([from, to])?;
    c.prepare_cached("UPDATE developer_users SET identity_id = ?2 WHERE identity_id = ?1")?
        .execute([from, to])?;
    Ok(())
}

/// Deletes an identity; its logins and developer user ids go with it.
pub fn delete(c: &Connection, identity: &str) -> Result<bool, StoreError> {
    Ok(c.prepare_cached("DELETE FROM identities WHERE id = ?1")?
        .execute([identity])?
        > 0)
}

/// The identity a developer user id is linked to in a pool, if any.
pub fn developer_owner(
    c: &Connection,
    pool: &str,
    developer_user: &str,
) -> Result<Option<String>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT identity_id FROM developer_users WHERE pool_id = ?1 AND developer_user_id = ?2",
    )?
    .query_row([pool, developer_user], |r| r.get(0))
    .optional()?)
}

/// Links a developer user id to an identity.
pub fn link_developer(
    c: &Connection,
    pool: &str,
    developer_user: &str,
    identity: &str,
    now: Millis,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO developer_users (pool_id, developer_user_id, identity_id, linked_at) \
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![pool, developer_user, identity, now.text()])?;
    Ok(())
}

/// Removes a developer user id from an identity; true if it was linked to it.
pub fn unlink_developer(
    c: &Connection,
    pool: &str,
    developer_user: &str,
    identity: &str,
) -> Result<bool, StoreError> {
    Ok(c.prepare_cached(
        "DELETE FROM developer_users \
         WHERE pool_id = ?1 AND developer_user_id = ?2 AND identity_id = ?3",
    )?
    .execute([pool, developer_user, identity])?
        > 0)
}

/// An identity's developer user ids after `after` (exclusive), sorted, `limit + 1` of them.
pub fn developer_users_of(
    c: &Connection,
    identity: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT developer_user_id FROM developer_users \
         WHERE identity_id = ?1 AND developer_user_id > ?2 ORDER BY developer_user_id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![identity, after, limit as i64 + 1], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The identity a provider's user is linked to, with whether it is disabled, in one lookup.
pub fn owner_and_state(
    c: &Connection,
    pool: &str,
    provider: &str,
    subject: &str,
) -> Result<Option<(String, bool)>, StoreError> {
    Ok(c.prepare_cached(
        "SELECT l.identity_id, i.disabled FROM logins l JOIN identities i ON i.id = l.identity_id \
         WHERE l.pool_id = ?1 AND l.provider = ?2 AND l.subject = ?3",
    )?
    .query_row([pool, provider, subject], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use rusqlite::StatementStatus;
    use std::time::Duration;

    /// A page's statement is prepared once and reused as it is: its plan does not depend on
    /// the bound page size, so SQLite has no reason to parse it again at each call.
    #[test]
    fn a_page_statement_is_not_prepared_again_from_one_call_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Connection::open(dir.path().join("l.db")).unwrap();
        super::super::configure(&c, Synchronous::Full, Duration::from_secs(1)).unwrap();
        super::super::migrate::migrate(&mut c).unwrap();
        for developer in [None, Some("login.example")] {
            for limit in [1, 60, 7] {
                list(&c, "us-east-1:none", None, limit, false, developer).unwrap();
            }
            let stmt = c.prepare_cached(&list_sql(developer)).unwrap();
            assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
        }
    }
}
