//! Looking at the database behind the API, as an operator at a database prompt would: every
//! test that reads stored rows directly goes through here, so another storage engine changes
//! this file and nothing else. The SQL is plain enough for any engine.

use std::path::Path;

/// A read-only connection to a live database.
pub struct Reader(rusqlite::Connection);

impl Reader {
    pub fn open(path: &Path) -> Reader {
        Reader(
            rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap(),
        )
    }

    /// The single number a `SELECT count(*) …` returns.
    pub fn count(&self, sql: &str) -> i64 {
        self.value(sql, &[])
    }

    /// The one column of the one row `sql` returns (`?1`, `?2`… bound to `params`).
    pub fn value<T: Column>(&self, sql: &str, params: &[&str]) -> T {
        self.0
            .query_row(sql, rusqlite::params_from_iter(params), |r| {
                Ok(T::read(r, 0))
            })
            .unwrap()
    }

    /// The one row `sql` returns, as a tuple.
    pub fn row<R: Row>(&self, sql: &str, params: &[&str]) -> R {
        self.0
            .query_row(sql, rusqlite::params_from_iter(params), |r| Ok(R::read(r)))
            .unwrap()
    }

    /// Every row `sql` returns, as tuples.
    pub fn rows<R: Row>(&self, sql: &str, params: &[&str]) -> Vec<R> {
        let mut stmt = self.0.prepare(sql).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| Ok(R::read(r)))
            .unwrap();
        rows.map(|r| r.unwrap()).collect()
    }
}

/// A column value a test reads: text, integer, or nullable text.
pub trait Column: Sized {
    fn read(row: &rusqlite::Row<'_>, i: usize) -> Self;
}

impl Column for String {
    fn read(row: &rusqlite::Row<'_>, i: usize) -> Self {
        row.get(i).unwrap()
    }
}

impl Column for i64 {
    fn read(row: &rusqlite::Row<'_>, i: usize) -> Self {
        row.get(i).unwrap()
    }
}

impl Column for Option<String> {
    fn read(row: &rusqlite::Row<'_>, i: usize) -> Self {
        row.get(i).unwrap()
    }
}

/// A row a test reads, as a tuple of columns.
pub trait Row: Sized {
    fn read(row: &rusqlite::Row<'_>) -> Self;
}

impl<A: Column, B: Column> Row for (A, B) {
    fn read(row: &rusqlite::Row<'_>) -> Self {
        (A::read(row, 0), B::read(row, 1))
    }
}

impl<A: Column, B: Column, C: Column> Row for (A, B, C) {
    fn read(row: &rusqlite::Row<'_>) -> Self {
        (A::read(row, 0), B::read(row, 1), C::read(row, 2))
    }
}

/// The database's write lock held the way another process (an admin's sqlite3 session with
/// an open write transaction) would, until dropped.
pub struct WriteLock(#[allow(dead_code)] rusqlite::Connection);

pub fn hold_write_lock(path: &Path) -> WriteLock {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    WriteLock(c)
}

/// Whether `needle` appears anywhere in the stored bytes of the database at `path` (for
/// SQLite: the main file and its WAL).
pub fn stored_bytes_contain(path: &Path, needle: &str) -> bool {
    let wal = path.with_extension("db-wal");
    [path.to_path_buf(), wal].iter().any(|p| {
        std::fs::read(p)
            .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .unwrap_or(false)
    })
}
