//! Looking at the database behind the API, as an operator at a database prompt would: every
//! test that reads stored rows directly goes through here, so another storage engine changes
//! this file and nothing else. The SQL is plain enough for any engine: flags are tested as
//! `WHERE disabled` (SQLite's 0/1 and PostgreSQL's boolean alike), and every value is read the
//! way a prompt prints it, as text (`t`/`f` read as 1/0, times as `YYYY-MM-DD HH:MM:SS.mmm`
//! in UTC).

use std::path::Path;

use idpool::config::Config;

/// A read-only connection to a live database.
pub enum Reader {
    Sqlite(rusqlite::Connection),
    /// The URL: each query connects anew, on a thread of its own (see [`off_runtime`]).
    Postgres(String),
}

/// One value as a prompt prints it: `None` for NULL.
type Text = Option<String>;

impl Reader {
    /// The database of `config`: its PostgreSQL URL when it has one, else its SQLite file.
    pub fn open(config: &Config) -> Reader {
        match &config.database.url {
            Some(url) => Reader::Postgres(url.expose().to_string()),
            None => Reader::open_file(&config.database.path),
        }
    }

    /// The SQLite file at `path`.
    pub fn open_file(path: &Path) -> Reader {
        Reader::Sqlite(
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
        T::from_text(self.one(sql, params).swap_remove(0))
    }

    /// The one row `sql` returns, as a tuple.
    pub fn row<R: Row>(&self, sql: &str, params: &[&str]) -> R {
        R::from_texts(self.one(sql, params))
    }

    /// Every row `sql` returns, as tuples.
    pub fn rows<R: Row>(&self, sql: &str, params: &[&str]) -> Vec<R> {
        self.texts(sql, params)
            .into_iter()
            .map(R::from_texts)
            .collect()
    }

    fn one(&self, sql: &str, params: &[&str]) -> Vec<Text> {
        let mut rows = self.texts(sql, params);
        assert_eq!(rows.len(), 1, "{sql}: one row expected");
        rows.swap_remove(0)
    }

    /// Every row, each value as text.
    fn texts(&self, sql: &str, params: &[&str]) -> Vec<Vec<Text>> {
        match self {
            Reader::Sqlite(c) => {
                let mut stmt = c.prepare(sql).unwrap();
                let n = stmt.column_count();
                let rows = stmt
                    .query_map(rusqlite::params_from_iter(params), |r| {
                        (0..n).map(|i| sqlite_text(r, i)).collect()
                    })
                    .unwrap();
                rows.map(|r| r.unwrap()).collect()
            }
            Reader::Postgres(url) => {
                let sql = bind_literals(sql, params);
                let url = url.clone();
                off_runtime(move || {
                    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                    c.batch_execute("SET TimeZone = 'UTC'; SET default_transaction_read_only = on")
                        .unwrap();
                    let mut out = Vec::new();
                    for m in c
                        .simple_query(&sql)
                        .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    {
                        if let postgres::SimpleQueryMessage::Row(r) = m {
                            out.push((0..r.len()).map(|i| r.get(i).map(pg_text)).collect());
                        }
                    }
                    out
                })
            }
        }
    }
}

/// Runs `f` on a thread of its own and returns what it returns: the `postgres` client blocks
/// on a runtime of its own, which cannot start on a thread already driving the test's.
pub fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn sqlite_text(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Text> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Null => None,
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(x) => Some(x.to_string()),
        ValueRef::Text(t) => Some(String::from_utf8(t.to_vec()).unwrap()),
        ValueRef::Blob(_) => panic!("column {i}: a blob is not read as text"),
    })
}

/// `?1`, `?2`… replaced by the params as quoted literals (test-only: the params are the
/// test's own values).
fn bind_literals(sql: &str, params: &[&str]) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '?' {
            out.push(ch);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        let n: usize = digits.parse().expect("placeholders are numbered: ?1, ?2…");
        out.push('\'');
        out.push_str(&params[n - 1].replace('\'', "''"));
        out.push('\'');
    }
    out
}

/// PostgreSQL's text of a value, in the form SQLite stores: a `timestamptz` printed in UTC
/// (`2026-12-02 17:40:41.18+00`) becomes `2026-12-02 17:40:41.180`.
fn pg_text(s: &str) -> String {
    let b = s.as_bytes();
    let is_time = s.ends_with("+00")
        && b.len() >= 22
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    if !is_time {
        return s.to_string();
    }
    let t = &s[..s.len() - 3];
    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
    let mut ms: String = frac.chars().take(3).collect();
    while ms.len() < 3 {
        ms.push('0');
    }
    format!("{secs}.{ms}")
}

/// A column value a test reads: text, integer, or nullable text.
pub trait Column: Sized {
    fn from_text(v: Text) -> Self;
}

impl Column for String {
    fn from_text(v: Text) -> Self {
        v.expect("a value, not NULL")
    }
}

impl Column for i64 {
    fn from_text(v: Text) -> Self {
        match v.as_deref() {
            Some("t") => 1,
            Some("f") => 0,
            Some(n) => n
                .parse()
                .unwrap_or_else(|_| panic!("not an integer: {n:?}")),
            None => panic!("an integer, not NULL"),
        }
    }
}

impl Column for Option<String> {
    fn from_text(v: Text) -> Self {
        v
    }
}

/// A row a test reads, as a tuple of columns.
pub trait Row: Sized {
    fn from_texts(row: Vec<Text>) -> Self;
}

impl<A: Column, B: Column> Row for (A, B) {
    fn from_texts(row: Vec<Text>) -> Self {
        let mut it = row.into_iter();
        (
            A::from_text(it.next().unwrap()),
            B::from_text(it.next().unwrap()),
        )
    }
}

impl<A: Column, B: Column, C: Column> Row for (A, B, C) {
    fn from_texts(row: Vec<Text>) -> Self {
        let mut it = row.into_iter();
        (
            A::from_text(it.next().unwrap()),
            B::from_text(it.next().unwrap()),
            C::from_text(it.next().unwrap()),
        )
    }
}

/// The database's writes blocked the way another process would block them, until dropped:
/// on SQLite an admin's sqlite3 session with an open write transaction; on PostgreSQL a
/// session holding `LOCK TABLE … IN EXCLUSIVE MODE` on the tables every write touches (reads
/// go on).
pub enum WriteLock {
    Sqlite(#[allow(dead_code)] rusqlite::Connection),
    /// The thread holding the session; it ends the session when the sender is dropped.
    Postgres(
        Option<std::sync::mpsc::Sender<()>>,
        Option<std::thread::JoinHandle<()>>,
    ),
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        if let WriteLock::Postgres(release, thread) = self {
            drop(release.take());
            // Released once this returns: the session is closed.
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

pub fn hold_write_lock(config: &Config) -> WriteLock {
    match &config.database.url {
        Some(url) => {
            let url = url.expose().to_string();
            let (locked_tx, locked_rx) = std::sync::mpsc::channel();
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let thread = std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                c.batch_execute("BEGIN; LOCK TABLE identities, logins, pools IN EXCLUSIVE MODE")
                    .unwrap();
                locked_tx.send(()).unwrap();
                let _ = release_rx.recv();
                drop(c);
            });
            locked_rx.recv().expect("the lock is taken");
            WriteLock::Postgres(Some(release_tx), Some(thread))
        }
        None => {
            let c = rusqlite::Connection::open(&config.database.path).unwrap();
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
            WriteLock::Sqlite(c)
        }
    }
}

/// Whether the database of `config` was ever opened: on SQLite whether its file exists, on
/// PostgreSQL whether its schema has any table.
pub fn exists(config: &Config) -> bool {
    match &config.database.url {
        Some(_) => {
            Reader::open(config).count(
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema()",
            ) > 0
        }
        None => config.database.path.exists(),
    }
}

/// Whether `needle` appears anywhere in what the database of `config` stores: on SQLite in
/// the bytes of the file and its WAL (freed pages included); on PostgreSQL in the text of any
/// row of any table of its schema.
pub fn stored_contains(config: &Config, needle: &str) -> bool {
    match &config.database.url {
        Some(_) => {
            let r = Reader::open(config);
            let tables: Vec<(String, String)> = r.rows(
                "SELECT table_name, table_type FROM information_schema.tables \
                 WHERE table_schema = current_schema()",
                &[],
            );
            assert!(!tables.is_empty(), "the schema has tables");
            tables.iter().any(|(t, _)| {
                r.value::<i64>(
                    &format!(
                        "SELECT count(*) FROM \"{t}\" x \
                         WHERE position(?1 in row_to_json(x)::text) > 0"
                    ),
                    &[needle],
                ) > 0
            })
        }
        None => {
            let path = &config.database.path;
            let wal = path.with_extension("db-wal");
            [path.to_path_buf(), wal].iter().any(|p| {
                std::fs::read(p)
                    .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                    .unwrap_or(false)
            })
        }
    }
}
