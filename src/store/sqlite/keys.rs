//! SQL for the token signing keys (table `signing_keys`) and server secrets (table `secrets`).

use rusqlite::{params, Connection, OptionalExtension};

use super::time_col;
use crate::model::{KeysVersion, SigningKey};
use crate::store::StoreError;
use crate::times::Millis;

pub fn version(c: &Connection) -> Result<KeysVersion, StoreError> {
    Ok(c.prepare_cached(
        "SELECT count(*), coalesce(max(seq), 0), max(retire_after) FROM signing_keys",
    )?
    .query_row([], |r| {
        let retire: Option<String> = r.get(2)?;
        Ok(KeysVersion {
            count: r.get(0)?,
            max_seq: r.get(1)?,
            max_retire: match retire {
                Some(_) => Some(time_col(r, 2)?),
                None => None,
            },
        })
    })?)
}

pub fn all(c: &Connection) -> Result<Vec<SigningKey>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT kid, seq, public_jwk, retire_after FROM signing_keys ORDER BY seq DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        let retire: Option<String> = r.get(3)?;
        Ok(SigningKey {
            kid: r.get(0)?,
            seq: r.get(1)?,
            public_jwk: r.get(2)?,
            retire_after: match retire {
                Some(_) => Some(time_col(r, 3)?),
                None => None,
            },
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn private_key(c: &Connection, kid: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        c.prepare_cached("SELECT private_key FROM signing_keys WHERE kid = ?1")?
            .query_row([kid], |r| r.get(0))
            .optional()?,
    )
}

pub fn next_seq(c: &Connection) -> Result<i64, StoreError> {
    Ok(
        c.prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM signing_keys")?
            .query_row([], |r| r.get(0))?,
    )
}

pub fn insert(
    c: &Connection,
    key: &SigningKey,
    private_key: &[u8],
    now: Millis,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO signing_keys (kid, seq, private_key, public_jwk, created_at, retire_after) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        key.kid,
        key.seq,
        private_key,
        key.public_jwk,
        now.text(),
        key.retire_after.map(|t| t.text()),
    ])?;
    Ok(())
}

pub fn retire(c: &Connection, retire_after: Millis) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare_cached(
        "UPDATE signing_keys SET retire_after = ?1 WHERE retire_after IS NULL RETURNING kid",
    )?;
    let rows = stmt.query_map([retire_after.text()], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn delete_retired(c: &Connection, now: Millis) -> Result<usize, StoreError> {
    Ok(c.prepare_cached(
        "DELETE FROM signing_keys WHERE retire_after IS NOT NULL AND retire_after <= ?1",
    )?
    .execute([now.text()])?)
}

pub fn secret(c: &Connection, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(
        c.prepare_cached("SELECT value FROM secrets WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?,
    )
}
