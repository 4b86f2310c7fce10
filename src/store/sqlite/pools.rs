//! SQL for identity pools and their tags.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Deserialize;

use super::{position_args, time_col};
use crate::model::{Pool, PoolSettings, PoolSummary, Position};
use crate::store::StoreError;
use crate::times::Millis;

const COLUMNS: &str =
    "created_at, id, account_id, name, allow_unauthenticated, allow_classic_flow, \
     developer_provider_name, supported_login_providers, openid_connect_provider_arns, \
     cognito_identity_providers, saml_provider_arns";

fn json_col<T: for<'de> Deserialize<'de>>(row: &Row, i: usize) -> rusqlite::Result<T> {
    let text: String = row.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn from_row(row: &Row) -> rusqlite::Result<Pool> {
    Ok(Pool {
        created_at: time_col(row, 0)?,
        id: row.get(1)?,
        account_id: row.get(2)?,
        settings: PoolSettings {
            name: row.get(3)?,
            allow_unauthenticated: row.get(4)?,
            allow_classic_flow: row.get(5)?,
            developer_provider_name: row.get(6)?,
            supported_login_providers: json_col(row, 7)?,
            openid_connect_provider_arns: json_col(row, 8)?,
            cognito_identity_providers: json_col(row, 9)?,
            saml_provider_arns: json_col(row, 10)?,
        },
    })
}

use super::to_json;

/// Reads a pool by id.
pub fn get(c: &Connection, id: &str) -> Result<Option<Pool>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM pools WHERE id = ?1");
    Ok(c.prepare_cached(&sql)?
        .query_row([id], from_row)
        .optional()?)
}

/// Whether a pool exists.
pub fn exists(c: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(c.prepare_cached("SELECT 1 FROM pools WHERE id = ?1")?
        .exists([id])?)
}

/// How many pools an account owns.
pub fn count_for_account(c: &Connection, account: &str) -> Result<i64, StoreError> {
    Ok(
        c.prepare_cached("SELECT count(*) FROM pools WHERE account_id = ?1")?
            .query_row([account], |r| r.get(0))?,
    )
}

/// Inserts a new pool.
pub fn insert(
    c: &Connection,
    id: &str,
    account: &str,
    s: &PoolSettings,
    now: Millis,
) -> Result<(), StoreError> {
    let t = now.text();
    c.prepare_cached(
        "INSERT INTO pools (id, account_id, name, allow_unauthenticated, allow_classic_flow, \
         developer_provider_name, supported_login_providers, openid_connect_provider_arns, \
         cognito_identity_providers, saml_provider_arns, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
    )?
    .execute(params![
        id,
        account,
        s.name,
        s.allow_unauthenticated,
        s.allow_classic_flow,
        s.developer_provider_name,
        to_json(&s.supported_login_providers)?,
        to_json(&s.openid_connect_provider_arns)?,
        to_json(&s.cognito_identity_providers)?,
        to_json(&s.saml_provider_arns)?,
        t,
    ])?;
    Ok(())
}

/// Replaces a pool's settings.
pub fn update(c: &Connection, id: &str, s: &PoolSettings, now: Millis) -> Result<(), StoreError> {
    c.prepare_cached(
        "UPDATE pools SET name = ?2, allow_unauthenticated = ?3, allow_classic_flow = ?4, \
         developer_provider_name = ?5, supported_login_providers = ?6, \
         openid_connect_provider_arns = ?7, cognito_identity_providers = ?8, \
         saml_provider_arns = ?9, updated_at = ?10 WHERE id = ?1",
    )?
    .execute(params![
        id,
        s.name,
        s.allow_unauthenticated,
        s.allow_classic_flow,
        s.developer_provider_name,
        to_json(&s.supported_login_providers)?,
        to_json(&s.openid_connect_provider_arns)?,
        to_json(&s.cognito_identity_providers)?,
        to_json(&s.saml_provider_arns)?,
        now.text(),
    ])?;
    Ok(())
}

/// Deletes up to `limit` of a pool's identities (oldest first), their logins and developer
/// user ids with them; returns how many went.
pub fn delete_identities_chunk(
    c: &Connection,
    pool: &str,
    limit: usize,
) -> Result<usize, StoreError> {
    Ok(c.prepare_cached(
        "DELETE FROM identities WHERE id IN \
         (SELECT id FROM identities WHERE pool_id = ?1 ORDER BY created_at, id LIMIT ?2)",
    )?
    .execute(params![pool, limit as i64])?)
}

/// Deletes a pool; its identities, logins and tags go with it (ON DELETE CASCADE).
pub fn delete(c: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(c.prepare_cached("DELETE FROM pools WHERE id = ?1")?
        .execute([id])?
        > 0)
}

/// Up to `limit + 1` of an account's pools in one region after `after`, in creation order.
pub fn list(
    c: &Connection,
    account: &str,
    region: &str,
    after: Option<&Position>,
    limit: usize,
) -> Result<Vec<PoolSummary>, StoreError> {
    // A pool's region is its id's prefix: `id >= 'r:' AND id < 'r;'` is exactly "starts with
    // r:" (';' follows ':'), and keeps LIKE's wildcards out of it.
    let mut stmt = c.prepare_cached(
        "SELECT created_at, id, name FROM pools WHERE account_id = ?1 \
         AND (created_at, id) > (?2, ?3) \
         AND id >= ?5 || ':' AND id < ?5 || ';' ORDER BY created_at, id LIMIT ?4",
    )?;
    let (t, i) = position_args(after);
    let rows = stmt.query_map(params![account, t, i, limit as i64 + 1, region], |r| {
        Ok(PoolSummary {
            created_at: time_col(r, 0)?,
            id: r.get(1)?,
            name: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A pool's tags.
pub fn tags(c: &Connection, id: &str) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt = c.prepare_cached("SELECT key, value FROM pool_tags WHERE pool_id = ?1")?;
    let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces a pool's tags.
pub fn set_tags(
    c: &Connection,
    id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    c.prepare_cached("DELETE FROM pool_tags WHERE pool_id = ?1")?
        .execute([id])?;
    let mut ins =
        c.prepare_cached("INSERT INTO pool_tags (pool_id, key, value) VALUES (?1, ?2, ?3)")?;
    for (k, v) in tags {
        ins.execute(params![id, k, v])?;
    }
    Ok(())
}
