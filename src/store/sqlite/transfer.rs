//! SQL for `idpool export` and `idpool import`: whole rows in key order, and inserts that keep
//! every id and time.

use rusqlite::{params, Connection, Row};

use super::{from_json, time_col, to_json};
use crate::model::{DeveloperUserRecord, IdentityRecord, KeyRecord, LoginRecord, PoolRecord};
use crate::store::StoreError;
use crate::times::Millis;

type R<T> = Result<T, StoreError>;

fn n(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn json<T: for<'de> serde::Deserialize<'de>>(row: &Row, i: usize, what: &str) -> R<T> {
    let text: String = row.get(i)?;
    from_json(what, &text)
}

pub fn pools(c: &Connection, after: &str, limit: usize) -> R<Vec<PoolRecord>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, account_id, name, allow_unauthenticated, allow_classic_flow, \
         developer_provider_name, supported_login_providers, openid_connect_provider_arns, \
         cognito_identity_providers, saml_provider_arns, authenticated_role, \
         unauthenticated_role, role_mappings, created_at, updated_at \
         FROM pools WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after, n(limit)])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mappings: Option<String> = r.get(12)?;
        out.push(PoolRecord {
            id: r.get(0)?,
            account_id: r.get(1)?,
            name: r.get(2)?,
            allow_unauthenticated: r.get(3)?,
            allow_classic_flow: r.get(4)?,
            developer_provider_name: r.get(5)?,
            supported_login_providers: json(r, 6, "pools.supported_login_providers")?,
            openid_connect_provider_arns: json(r, 7, "pools.openid_connect_provider_arns")?,
            cognito_identity_providers: json(r, 8, "pools.cognito_identity_providers")?,
            saml_provider_arns: json(r, 9, "pools.saml_provider_arns")?,
            authenticated_role: r.get(10)?,
            unauthenticated_role: r.get(11)?,
            role_mappings: match mappings {
                Some(t) => from_json("pools.role_mappings", &t)?,
                None => Default::default(),
            },
            created_at: time_col(r, 13)?,
            updated_at: time_col(r, 14)?,
            tags: Default::default(),
            principal_tag_maps: Default::default(),
        });
    }
    Ok(out)
}

pub fn identities(c: &Connection, after: &str, limit: usize) -> R<Vec<IdentityRecord>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, pool_id, created_at, updated_at, disabled, merged_into FROM identities \
         WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, n(limit)], |r| {
        Ok(IdentityRecord {
            id: r.get(0)?,
            pool_id: r.get(1)?,
            created_at: time_col(r, 2)?,
            updated_at: time_col(r, 3)?,
            disabled: r.get(4)?,
            merged_into: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn logins(
    c: &Connection,
    after: &(String, String, String),
    limit: usize,
) -> R<Vec<LoginRecord>> {
    let mut stmt = c.prepare_cached(
        "SELECT pool_id, provider, subject, identity_id, linked_at FROM logins \
         WHERE (pool_id, provider, subject) > (?1, ?2, ?3) \
         ORDER BY pool_id, provider, subject LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![after.0, after.1, after.2, n(limit)], |r| {
        Ok(LoginRecord {
            pool_id: r.get(0)?,
            provider: r.get(1)?,
            subject: r.get(2)?,
            identity_id: r.get(3)?,
            linked_at: time_col(r, 4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn developer_users(
    c: &Connection,
    after: &(String, String),
    limit: usize,
) -> R<Vec<DeveloperUserRecord>> {
    let mut stmt = c.prepare_cached(
        "SELECT pool_id, developer_user_id, identity_id, linked_at FROM developer_users \
         WHERE (pool_id, developer_user_id) > (?1, ?2) \
         ORDER BY pool_id, developer_user_id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after.0, after.1, n(limit)], |r| {
        Ok(DeveloperUserRecord {
            pool_id: r.get(0)?,
            developer_user_id: r.get(1)?,
            identity_id: r.get(2)?,
            linked_at: time_col(r, 3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn signing_keys(c: &Connection) -> R<Vec<KeyRecord>> {
    use base64::Engine;
    let mut stmt = c.prepare_cached(
        "SELECT kid, seq, private_key, public_jwk, created_at, retire_after FROM signing_keys \
         ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        let der: Vec<u8> = r.get(2)?;
        let retire: Option<String> = r.get(5)?;
        Ok(KeyRecord {
            kid: r.get(0)?,
            seq: r.get(1)?,
            private_key: base64::engine::general_purpose::STANDARD.encode(der),
            public_jwk: r.get(3)?,
            created_at: time_col(r, 4)?,
            retire_after: match retire {
                Some(_) => Some(time_col(r, 5)?),
                None => None,
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn count_all(c: &Connection) -> R<(i64, i64)> {
    Ok(
        c.prepare_cached("SELECT (SELECT count(*) FROM pools), (SELECT count(*) FROM identities)")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?,
    )
}

pub fn import_pool(c: &Connection, p: &PoolRecord) -> R<bool> {
    let sql = "INSERT INTO pools (id, account_id, name, allow_unauthenticated, allow_classic_flow, \
         developer_provider_name, supported_login_providers, openid_connect_provider_arns, \
         cognito_identity_providers, saml_provider_arns, authenticated_role, \
         unauthenticated_role, role_mappings, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) ON CONFLICT DO NOTHING";
    let mappings = if p.role_mappings.is_empty() {
        None
    } else {
        Some(to_json(&p.role_mappings)?)
    };
    Ok(c.prepare_cached(sql)?.execute(params![
        p.id,
        p.account_id,
        p.name,
        p.allow_unauthenticated,
        p.allow_classic_flow,
        p.developer_provider_name,
        to_json(&p.supported_login_providers)?,
        to_json(&p.openid_connect_provider_arns)?,
        to_json(&p.cognito_identity_providers)?,
        to_json(&p.saml_provider_arns)?,
        p.authenticated_role,
        p.unauthenticated_role,
        mappings,
        p.created_at.text(),
        p.updated_at.text(),
    ])? > 0)
}

pub fn import_identity(c: &Connection, i: &IdentityRecord) -> R<bool> {
    let sql =
        "INSERT INTO identities (id, pool_id, created_at, updated_at, disabled, merged_into) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING";
    Ok(c.prepare_cached(sql)?.execute(params![
        i.id,
        i.pool_id,
        i.created_at.text(),
        i.updated_at.text(),
        i.disabled,
        i.merged_into,
    ])? > 0)
}

pub fn import_login(c: &Connection, l: &LoginRecord) -> R<bool> {
    let sql = "INSERT INTO logins (pool_id, provider, subject, identity_id, linked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING";
    Ok(c.prepare_cached(sql)?.execute(params![
        l.pool_id,
        l.provider,
        l.subject,
        l.identity_id,
        l.linked_at.text(),
    ])? > 0)
}

pub fn import_developer_user(c: &Connection, d: &DeveloperUserRecord) -> R<bool> {
    let sql = "INSERT INTO developer_users (pool_id, developer_user_id, identity_id, linked_at) \
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING";
    Ok(c.prepare_cached(sql)?.execute(params![
        d.pool_id,
        d.developer_user_id,
        d.identity_id,
        d.linked_at.text(),
    ])? > 0)
}

pub fn import_signing_key(c: &Connection, k: &KeyRecord, der: &[u8], seq: i64) -> R<bool> {
    Ok(c.prepare_cached(
        "INSERT INTO signing_keys (kid, seq, private_key, public_jwk, created_at, retire_after) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (kid) DO NOTHING",
    )?
    .execute(params![
        k.kid,
        seq,
        der,
        k.public_jwk,
        k.created_at.text(),
        k.retire_after.map(Millis::text),
    ])? > 0)
}

pub fn set_secret(c: &Connection, name: &str, value: &[u8]) -> R<()> {
    c.prepare_cached(
        "INSERT INTO secrets (name, value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![name, value])?;
    Ok(())
}
