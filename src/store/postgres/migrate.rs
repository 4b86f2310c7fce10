//! PostgreSQL schema migrations: the numbered files in `migrations/postgres/`, applied in order
//! in one transaction that first takes a transaction-scoped advisory lock, so replicas starting
//! at once apply each exactly once (the others wait, then find nothing left to do). Session-level
//! advisory locks are not used: PostgreSQL-wire engines such as CockroachDB lack them.

use postgres::Client;

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

fn failed(e: postgres::Error) -> StoreError {
    StoreError::Migration(super::tx::db_error(e).to_string())
}

/// Brings the database up to date; refuses one newer than this binary.
pub fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut t = client.transaction().map_err(failed)?;
    t.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .map_err(failed)?;
    t.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    bigint PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .map_err(failed)?;
    let current: i64 = t
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .map_err(failed)?
        .get(0);
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
        t.batch_execute(sql)
            .map_err(|e| StoreError::Migration(format!("{name}: {e}")))?;
        t.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .map_err(failed)?;
        tracing::info!(version, name, "applied migration");
    }
    t.commit().map_err(failed)
}
