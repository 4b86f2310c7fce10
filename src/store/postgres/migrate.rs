//! PostgreSQL schema migrations: the numbered files in `migrations/postgres/`, applied in order
//! in one transaction that first takes a transaction-scoped advisory lock, so replicas starting
//! at once apply each exactly once (the others wait, then find nothing left to do). Session-level
//! advisory locks are not used: PostgreSQL-wire engines such as CockroachDB lack them.

use super::conn::PgConn;
use crate::store::StoreError;

/// Every migration this binary knows, in order. Append only.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "0001_init",
    include_str!("../../../migrations/postgres/0001_init.sql"),
)];

/// The advisory lock key migrations take ("idpool" in ASCII).
const LOCK_KEY: i64 = 0x6964_706f_6f6c;

/// The schema version this binary writes.
pub fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

fn failed(e: StoreError) -> StoreError {
    StoreError::Migration(e.to_string())
}

/// Brings the database up to date; refuses one newer than this binary.
pub fn migrate(conn: &PgConn) -> Result<(), StoreError> {
    conn.batch("BEGIN").map_err(failed)?;
    let out = apply(conn);
    let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.batch(end).map_err(failed);
    out.and(ended)
}

fn apply(conn: &PgConn) -> Result<(), StoreError> {
    conn.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .map_err(failed)?;
    conn.batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    bigint PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .map_err(failed)?;
    let current: i64 = conn
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .map_err(failed)?
        .try_get(0)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    if current > latest() {
        return Err(StoreError::TooNew {
            found: current,
            known: latest(),
        });
    }
    for (version, name, sql) in MIGRATIONS {
        if *version <= current {
            continue;
        }
        conn.batch(sql)
            .map_err(|e| StoreError::Migration(format!("{name}: {e}")))?;
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .map_err(failed)?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}
