//! Schema migrations: the numbered files in `migrations/`, applied in order, each in one
//! transaction, recorded in `schema_migrations` and `PRAGMA user_version`.

use rusqlite::Connection;

use crate::store::StoreError;

/// Every migration this binary knows, in order. Append only.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../migrations/0001_init.sql"),
    ),
    (
        2,
        "0002_signing_keys",
        include_str!("../../../migrations/0002_signing_keys.sql"),
    ),
    (
        3,
        "0003_listing_order",
        include_str!("../../../migrations/0003_listing_order.sql"),
    ),
];

/// The schema version this binary writes.
pub fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

/// Brings the database up to date; refuses one newer than this binary.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
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
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have applied it while this one waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now >= *version {
            continue;
        }
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT NOT NULL,
                 applied_at TEXT NOT NULL
             )",
        )?;
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Migration(format!("{name}: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![version, name, crate::times::now().text()],
        )?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> Connection {
        let c = Connection::open(path).unwrap();
        c.pragma_update(None, "foreign_keys", "ON").unwrap();
        c
    }

    #[test]
    fn migrating_twice_is_a_no_op_and_the_schema_is_sound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut c = open(&path);
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, latest());
        let n: i64 = c
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let fk: Option<String> = c
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .ok();
        assert_eq!(fk, None);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut c = open(&path);
        c.pragma_update(None, "user_version", latest() + 1).unwrap();
        let err = migrate(&mut c).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("newer"), "{err}");
    }

    #[test]
    fn a_database_from_before_signing_keys_is_brought_up_to_date() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("v1.db");
        let conn = Connection::open(&old).unwrap();
        conn.execute_batch(MIGRATIONS[0].2).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        drop(conn);
        let store = crate::store::Store::open(&old, crate::config::Synchronous::Full).unwrap();
        let r = crate::tokens::Tokens::rotate(&store).unwrap();
        assert!(
            r.kid.starts_with("idpool-1-") && r.retiring.is_empty(),
            "{r:?}"
        );
        let t = crate::tokens::Tokens::open(&store, "https://id.example.test".into()).unwrap();
        assert_eq!(t.current_kid(), r.kid);
        assert!(store
            .read_blocking(|tx| tx.secret("cursor"))
            .unwrap()
            .is_some());
        store.close();
        let version: i64 = Connection::open(&old)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, latest());
    }
}
