//! SQL for identity pools and their tags.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::times::Millis;

/// One `CognitoIdentityProviders` entry, stored as the wire spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CognitoProvider {
    #[serde(rename = "ProviderName")]
    pub provider_name: String,
    #[serde(rename = "ClientId", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(rename = "ServerSideTokenCheck", default)]
    pub server_side_token_check: bool,
}

/// An identity pool's settings, as the pool operations read and write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    pub name: String,
    pub allow_unauthenticated: bool,
    pub allow_classic_flow: Option<bool>,
    pub developer_provider_name: Option<String>,
    pub supported_login_providers: BTreeMap<String, String>,
    pub openid_connect_provider_arns: Vec<String>,
    pub cognito_identity_providers: Vec<CognitoProvider>,
    pub saml_provider_arns: Vec<String>,
}

/// A stored identity pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub seq: i64,
    pub id: String,
    pub account_id: String,
    pub settings: PoolSettings,
}

impl Pool {
    /// The region prefix of the pool id: new identities of the pool carry it.
    pub fn region(&self) -> &str {
        self.id.split_once(':').map(|(r, _)| r).unwrap_or("")
    }
}

const COLUMNS: &str = "seq, id, account_id, name, allow_unauthenticated, allow_classic_flow, \
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
        seq: row.get(0)?,
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

fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Reads a pool by id.
pub fn get(c: &Connection, id: &str) -> Result<Option<Pool>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM pools WHERE id = ?1");
    Ok(c.prepare_cached(&sql)?
        .query_row([id], from_row)
        .optional()?)
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
         (SELECT id FROM identities WHERE pool_id = ?1 ORDER BY seq LIMIT ?2)",
    )?
    .execute(params![pool, limit as i64])?)
}

/// Deletes a pool; its identities, logins and tags go with it (ON DELETE CASCADE).
pub fn delete(c: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(c.prepare_cached("DELETE FROM pools WHERE id = ?1")?
        .execute([id])?
        > 0)
}

/// One page of an account's pools in one region after `after_seq`, in creation order;
/// `limit + 1` rows are read so the caller knows whether another page exists.
pub fn list(
    c: &Connection,
    account: &str,
    region: &str,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<(i64, String, String)>, StoreError> {
    // A pool's region is its id's prefix: `id >= 'r:' AND id < 'r;'` is exactly "starts with
    // r:" (';' follows ':'), and keeps LIKE's wildcards out of it.
    let mut stmt = c.prepare_cached(
        "SELECT seq, id, name FROM pools WHERE account_id = ?1 AND seq > ?2 \
         AND id >= ?4 || ':' AND id < ?4 || ';' ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![account, after_seq, limit as i64 + 1, region], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
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
