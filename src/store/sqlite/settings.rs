//! SQL for a pool's roles and role mappings, its principal tag attribute maps and its tags.
//! JSON columns hold the wire's own spelling, so what an admin reads at a `sqlite3` prompt is
//! what SetIdentityPoolRoles took.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};

use crate::model::{PoolRoles, PrincipalTagMap};
use crate::store::StoreError;
use crate::times::Millis;

use super::{from_json, to_json};

/// A pool's roles and role mappings; `None` when the pool does not exist.
pub fn roles(c: &Connection, pool_id: &str) -> Result<Option<PoolRoles>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT authenticated_role, unauthenticated_role, role_mappings FROM pools \
             WHERE id = ?1",
        )?
        .query_row([pool_id], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .optional()?;
    let Some((authenticated, unauthenticated, mappings)) = row else {
        return Ok(None);
    };
    let role_mappings = match mappings {
        Some(text) => from_json("pools.role_mappings", &text)?,
        None => BTreeMap::new(),
    };
    Ok(Some(PoolRoles {
        authenticated,
        unauthenticated,
        role_mappings,
    }))
}

/// Replaces a pool's roles and role mappings; no mappings are stored as NULL.
pub fn set_roles(
    c: &Connection,
    pool_id: &str,
    roles: &PoolRoles,
    now: Millis,
) -> Result<(), StoreError> {
    let mappings = if roles.role_mappings.is_empty() {
        None
    } else {
        Some(to_json(&roles.role_mappings)?)
    };
    c.prepare_cached(
        "UPDATE pools SET authenticated_role = ?2, unauthenticated_role = ?3, \
         role_mappings = ?4, updated_at = ?5 WHERE id = ?1",
    )?
    .execute(params![
        pool_id,
        roles.authenticated,
        roles.unauthenticated,
        mappings,
        now.text(),
    ])?;
    Ok(())
}

/// The principal tag attribute map of one provider of a pool, if one was set.
pub fn principal_tag_map(
    c: &Connection,
    pool_id: &str,
    provider: &str,
) -> Result<Option<PrincipalTagMap>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT use_defaults, principal_tags FROM principal_tag_maps \
             WHERE pool_id = ?1 AND provider = ?2",
        )?
        .query_row([pool_id, provider], |r| {
            Ok((r.get::<_, bool>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    match row {
        Some((use_defaults, text)) => Ok(Some(PrincipalTagMap {
            use_defaults,
            principal_tags: from_json("principal_tag_maps.principal_tags", &text)?,
        })),
        None => Ok(None),
    }
}

/// Every principal tag attribute map of a pool, by provider name.
pub fn principal_tag_maps(
    c: &Connection,
    pool_id: &str,
) -> Result<BTreeMap<String, PrincipalTagMap>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT provider, use_defaults, principal_tags FROM principal_tag_maps \
         WHERE pool_id = ?1",
    )?;
    let rows = stmt.query_map([pool_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, bool>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (provider, use_defaults, text) = row?;
        out.insert(
            provider,
            PrincipalTagMap {
                use_defaults,
                principal_tags: from_json("principal_tag_maps.principal_tags", &text)?,
            },
        );
    }
    Ok(out)
}

/// Creates or replaces the principal tag attribute map of one provider of a pool.
pub fn set_principal_tag_map(
    c: &Connection,
    pool_id: &str,
    provider: &str,
    map: &PrincipalTagMap,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO principal_tag_maps (pool_id, provider, use_defaults, principal_tags) \
         VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (pool_id, provider) DO UPDATE SET \
         use_defaults = excluded.use_defaults, principal_tags = excluded.principal_tags",
    )?
    .execute(params![
        pool_id,
        provider,
        map.use_defaults,
        to_json(&map.principal_tags)?
    ])?;
    Ok(())
}

/// Adds tags to a pool, overwriting the values of keys it already has.
pub fn add_tags(
    c: &Connection,
    pool_id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO pool_tags (pool_id, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (pool_id, key) DO UPDATE SET value = excluded.value",
    )?;
    for (k, v) in tags {
        stmt.execute(params![pool_id, k, v])?;
    }
    Ok(())
}

/// Removes tags from a pool; keys it does not have are ignored.
pub fn remove_tags(c: &Connection, pool_id: &str, keys: &[String]) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached("DELETE FROM pool_tags WHERE pool_id = ?1 AND key = ?2")?;
    for k in keys {
        stmt.execute(params![pool_id, k])?;
    }
    Ok(())
}
