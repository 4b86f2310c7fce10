//! The SQLite engine, the embedded default: one database file in WAL mode. Reads use a pool
//! of read-only connections; every write goes through one writer thread that commits whatever
//! requests are queued in one transaction (group commit), each request in its own savepoint,
//! and answers each request only after that commit is on disk. WAL checkpoints run on their
//! own thread, never inside a request's commit.

pub mod backup;
mod identities;
mod keys;
pub mod migrate;
mod pools;
mod settings;
mod transfer;
mod tx;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Row};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::cache::Cache;
use super::{Fatal, StoreError, Tx};
use crate::config::Synchronous;
use crate::model::Position;
use crate::times::Millis;
use tx::SqliteTx;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

/// A time column: UTC text `YYYY-MM-DD HH:MM:SS.SSS`.
fn time_col(row: &Row, i: usize) -> rusqlite::Result<Millis> {
    let s = row.get_ref(i)?.as_str()?;
    Millis::parse(s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("bad time {s:?}").into(),
        )
    })
}

/// The bind values of a listing position: before every row when there is none.
fn position_args(after: Option<&Position>) -> (String, String) {
    match after {
        Some(p) => (p.created_at.text(), p.id.clone()),
        None => (String::new(), String::new()),
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// How many queued requests one transaction takes at most.
const MAX_BATCH: usize = 512;
/// How many requests may wait for the writer before senders wait.
const QUEUE: usize = 8192;
/// Read connections; reads run on tokio's blocking threads, at most this many at once.
const READERS: u32 = 16;
/// WAL frames (4 KiB pages) past which the log is started over from its beginning (~16 MiB).
/// Under a steady stream of writes a checkpoint that runs beside the writer never catches the
/// last frame, and SQLite only reuses the log once every frame is in the database: without this
/// the WAL grows for as long as the writes go on (hundreds of MB in minutes).
#[cfg(not(test))]
const WAL_RESTART_FRAMES: i64 = 4096;
/// Frames the checkpoint thread leaves for the writer to copy itself: what it has to do
/// between two batches to finish a cycle, a few pages and one fsync of the database file.
#[cfg(not(test))]
const WAL_TAIL_FRAMES: i64 = 256;
/// The WAL file is cut back to this size when the log starts over.
#[cfg(not(test))]
const WAL_SIZE_LIMIT: i64 = 64 << 20;
/// How often the checkpoint thread looks at the log.
#[cfg(not(test))]
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
// The same cycle on a small scale, so a unit test sees it turn many times.
#[cfg(test)]
const WAL_RESTART_FRAMES: i64 = 64;
#[cfg(test)]
const WAL_TAIL_FRAMES: i64 = 16;
#[cfg(test)]
const WAL_SIZE_LIMIT: i64 = 1 << 20;
#[cfg(test)]
const CHECKPOINT_EVERY: Duration = Duration::from_millis(20);

type Deliver = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;
/// A queued write. The writer runs it on its transaction, or — when no transaction could be
/// begun — fails it with the cause, so its caller is answered at once and not left waiting.
/// It returns whether its savepoint is kept, and how to answer its caller after the commit.
type Job = Box<dyn FnOnce(Run<'_, '_>) -> Option<(bool, Deliver)> + Send>;

/// What the writer does with a job.
enum Run<'t, 'c> {
    On(&'t SqliteTx<'c>),
    Fail(Arc<StoreError>),
}

/// Numbers the engines opened in this process, for [`INLINE`].
static OPENED: AtomicU64 = AtomicU64::new(0);
/// Inline read connections one thread keeps at most (one per engine it served).
const INLINE_PER_THREAD: usize = 4;
/// How long an inline read waits for a lock at most.
const INLINE_BUSY: Duration = Duration::from_millis(100);

thread_local! {
    /// The read connections of this (async worker) thread, by engine number: a request's
    /// short read runs right here, without a hop to another thread and back, which on a small
    /// machine costs more than the read itself.
    static INLINE: std::cell::RefCell<Vec<(u64, Connection)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The SQLite engine.
pub struct Sqlite {
    /// This engine's number in the process, keying the inline read connections.
    id: u64,
    sync: Synchronous,
    busy: Duration,
    path: PathBuf,
    readers: r2d2::Pool<SqliteConnectionManager>,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    commits: Arc<AtomicU64>,
    stop_checkpointer: Mutex<Option<std::sync::mpsc::Sender<()>>>,
}

fn open_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI
}

fn configure(c: &Connection, sync: Synchronous, busy: Duration) -> rusqlite::Result<()> {
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(
        None,
        "synchronous",
        match sync {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    c.busy_timeout(busy)?;
    // A statement's plan must not depend on the values bound to it: without this, SQLite marks
    // a statement whose plan read a bound value (`LIMIT ?`, for one) expired at every bind, and
    // re-parses it on every execution — a fifth of a ListIdentities page's CPU. Plans are chosen
    // from the schema alone, and stay the same from one call to the next.
    c.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Sqlite {
    /// Opens (creating the file and its folder when missing), migrates, and starts the writer
    /// and checkpoint threads. Blocking: call it off the async workers. `busy` is how long a
    /// statement waits for a lock another process holds; `give_up` how long the writer may
    /// fail every transaction before `fatal` trips. `cache` is cleared by the writer after
    /// every commit that changed a mapping it may hold.
    pub fn open(
        path: &Path,
        sync: Synchronous,
        busy: Duration,
        give_up: Duration,
        cache: Arc<Cache>,
        fatal: Arc<Fatal>,
    ) -> Result<Sqlite, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(path, e))?;
        }
        let mut writer = Connection::open_with_flags(path, open_flags())?;
        let mode: String = writer.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!(
                "could not switch to WAL mode (got {mode})"
            )));
        }
        configure(&writer, sync, busy)?;
        // Checkpoints run on their own thread, never in a request's commit.
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        migrate::migrate(&mut writer)?;

        let manager = SqliteConnectionManager::file(path)
            .with_flags(open_flags())
            .with_init(move |c| {
                configure(c, sync, busy)?;
                c.pragma_update(None, "query_only", "ON")
            });
        let readers = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(2))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;

        let checkpoint_conn = Connection::open_with_flags(path, open_flags())?;
        configure(&checkpoint_conn, sync, busy)?;

        let commits = Arc::new(AtomicU64::new(0));
        let restart = Arc::new(AtomicBool::new(false));
        let writer_restart = restart.clone();
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let writer_commits = commits.clone();
        let writer_thread = std::thread::Builder::new()
            .name("idpool-writer".into())
            .spawn(move || {
                let f = fatal.clone();
                let run = std::panic::catch_unwind(AssertUnwindSafe(move || {
                    writer_loop(
                        writer,
                        rx,
                        writer_commits,
                        &writer_restart,
                        &f,
                        give_up,
                        &cache,
                    )
                }));
                if run.is_err() {
                    fatal.trip("the writer thread panicked");
                }
            })
            .map_err(|e| io_error(path, e))?;
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let ck_commits = commits.clone();
        let ck_thread = std::thread::Builder::new()
            .name("idpool-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, stop_rx, ck_commits, restart))
            .map_err(|e| io_error(path, e))?;

        Ok(Sqlite {
            id: OPENED.fetch_add(1, Ordering::Relaxed),
            sync,
            busy,
            path: path.to_path_buf(),
            readers,
            writer: Mutex::new(Some(tx)),
            threads: Mutex::new(vec![writer_thread, ck_thread]),
            commits,
            stop_checkpointer: Mutex::new(Some(stop_tx)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on a read-only connection, in one read transaction (a snapshot), on the calling
    /// thread (blocking).
    pub fn read<T, E>(&self, f: impl FnOnce(&dyn Tx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let conn = self.readers.get().map_err(StoreError::from)?;
        snapshot(&conn, f)
    }

    /// [`Sqlite::read`] on this thread's own read connection, opened on first use: for the
    /// short, bounded reads of a request (a few point lookups, one page of a listing), run on
    /// the async worker itself. Falls back to the pool when no connection can be had here.
    pub fn read_here<T, E>(&self, f: impl FnOnce(&dyn Tx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut f = Some(f);
        let done = INLINE.with(|cell| {
            let mut conns = cell.try_borrow_mut().ok()?;
            let at = match conns.iter().position(|(id, _)| *id == self.id) {
                Some(i) => i,
                None => {
                    let conn = self.open_reader().ok()?;
                    if conns.len() >= INLINE_PER_THREAD {
                        conns.remove(0);
                    }
                    conns.push((self.id, conn));
                    conns.len() - 1
                }
            };
            let conn = &conns[at].1;
            let f = f.take()?;
            Some(snapshot(conn, f))
        });
        match (done, f) {
            (Some(out), _) => out,
            (None, Some(f)) => self.read(f),
            (None, None) => Err(StoreError::ReadAborted.into()),
        }
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let c = Connection::open_with_flags(&self.path, open_flags())?;
        // A WAL reader waits for no writer; it can meet a lock only in rare moments (another
        // process recovering the WAL, say), and then it must not hold an async worker for
        // the whole busy timeout.
        configure(&c, self.sync, self.busy.min(INLINE_BUSY))?;
        c.pragma_update(None, "query_only", "ON")?;
        Ok(c)
    }

    /// Runs `f` inside the writer's next transaction, in a savepoint of its own, and returns
    /// its result once the transaction is durably committed. An `Err` from `f` rolls back its
    /// savepoint only: what `f` changed is undone, other requests in the batch are not touched.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&dyn Tx) -> Result<T, E> + Send + 'static,
    {
        let sender = self.sender().ok_or(StoreError::WriterGone)?;
        let (done, answer) = oneshot::channel();
        if sender.send(job(f, done)).await.is_err() {
            return Err(StoreError::WriterGone.into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::WriterGone.into()))
    }

    /// `write` from a thread that may block (command-line tools, start-up); never from an
    /// async worker.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&dyn Tx) -> Result<T, E> + Send + 'static,
    {
        let sender = self.sender().ok_or(StoreError::WriterGone)?;
        let (done, answer) = oneshot::channel();
        if sender.blocking_send(job(f, done)).is_err() {
            return Err(StoreError::WriterGone.into());
        }
        answer
            .blocking_recv()
            .unwrap_or_else(|_| Err(StoreError::WriterGone.into()))
    }

    fn sender(&self) -> Option<mpsc::Sender<Job>> {
        self.writer.lock().ok().and_then(|g| g.as_ref().cloned())
    }

    /// Number of write transactions committed since start (for measurements).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Finishes queued writes, stops the writer, then checkpoints and truncates the WAL.
    pub fn close(&self) {
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        let mut threads = threads.into_iter();
        // The writer first: it drains the queue and exits once no sender is left.
        if let Some(writer) = threads.next() {
            let _ = writer.join();
        }
        if let Ok(mut s) = self.stop_checkpointer.lock() {
            s.take();
        }
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        self.close();
    }
}

/// Runs `f` in one read transaction: one snapshot for all of its statements.
fn snapshot<T, E>(conn: &Connection, f: impl FnOnce(&dyn Tx) -> Result<T, E>) -> Result<T, E>
where
    E: From<StoreError>,
{
    exec(conn, "BEGIN").map_err(StoreError::from)?;
    let out = f(&SqliteTx::new(conn));
    if exec(conn, "COMMIT").is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    out
}

/// Wraps a request's write for the writer: `done` gets its result after the commit.
fn job<T, E, F>(f: F, done: oneshot::Sender<Result<T, E>>) -> Job
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&dyn Tx) -> Result<T, E> + Send + 'static,
{
    // The request's span goes along to the writer thread: what `f` logs is the request's.
    let span = tracing::Span::current();
    Box::new(move |run| {
        let _in = span.enter();
        let tx = match run {
            Run::On(tx) => tx,
            Run::Fail(cause) => {
                let _ = done.send(Err(E::from(StoreError::WriteFailed(cause))));
                return None;
            }
        };
        let result = f(tx);
        let keep = result.is_ok();
        let deliver: Deliver = Box::new(move |commit| {
            let out = match (result, commit) {
                (Ok(v), Ok(())) => Ok(v),
                (Ok(_), Err(e)) => Err(E::from(StoreError::WriteFailed(e))),
                (Err(e), _) => Err(e),
            };
            let _ = done.send(out);
        });
        Some((keep, deliver))
    })
}

/// The writer's memory of failures: the first of a run is logged with its cause, the rest
/// are counted, and the recovery is logged with the count; a run longer than `give_up` trips
/// `fatal`.
struct Failing {
    since: Option<std::time::Instant>,
    count: u64,
}

fn writer_loop(
    conn: Connection,
    mut rx: mpsc::Receiver<Job>,
    commits: Arc<AtomicU64>,
    restart: &AtomicBool,
    fatal: &Fatal,
    give_up: Duration,
    cache: &Cache,
) {
    let mut failing = Failing {
        since: None,
        count: 0,
    };
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let size = batch.len();
        let started = std::time::Instant::now();
        let outcome = run_batch(&conn, batch, cache);
        crate::metrics::commit(size, started.elapsed().as_secs_f64());
        match outcome {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
                // Between two batches nothing else appends to the log, so this checkpoint copies
                // the last frames and the next transaction starts the log over (see
                // WAL_RESTART_FRAMES). Its callers were answered already.
                if restart.load(Ordering::Relaxed) {
                    match checkpoint(&conn) {
                        Ok((log, done)) if done >= log => restart.store(false, Ordering::Relaxed),
                        Ok(_) => {} // a reader still needs older frames: next batch
                        Err(e) => {
                            // The checkpoint thread asks again on its next look, if need be:
                            // at most one warning per look, not one per batch.
                            restart.store(false, Ordering::Relaxed);
                            tracing::warn!(error = %e, "WAL checkpoint failed");
                        }
                    }
                }
                if failing.since.take().is_some() {
                    tracing::info!(
                        failed_batches = failing.count,
                        "database writes succeed again"
                    );
                    failing.count = 0;
                }
            }
            Err(e) => {
                failing.count += 1;
                match failing.since {
                    None => {
                        tracing::error!(error = %e, "database writes are failing; the requests of this moment get InternalErrorException, and the next write tries again");
                        failing.since = Some(std::time::Instant::now());
                    }
                    Some(t) if t.elapsed() >= give_up => {
                        fatal.trip(&format!(
                            "every write failed for {} s ({} batches), last: {e}",
                            t.elapsed().as_secs(),
                            failing.count
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs one batch in one transaction; every job's caller is answered, whatever happens. When a
/// kept request changed a mapping the caches may hold, they are cleared after the commit and
/// before anyone is answered — whether or not the request's caller still waits.
fn run_batch(conn: &Connection, batch: Vec<Job>, cache: &Cache) -> Result<(), Arc<StoreError>> {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        let cause = Arc::new(StoreError::from(e));
        for job in batch {
            job(Run::Fail(cause.clone()));
        }
        return Err(cause);
    }
    let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
    let mut broken: Option<Arc<StoreError>> = None;
    let mut stale = false;
    for job in batch {
        if let Some(cause) = &broken {
            job(Run::Fail(cause.clone()));
            continue;
        }
        if let Err(e) = exec(conn, "SAVEPOINT request") {
            let cause = Arc::new(StoreError::from(e));
            job(Run::Fail(cause.clone()));
            broken = Some(cause);
            continue;
        }
        let tx = SqliteTx::new(conn);
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(Run::On(&tx)))) {
            Ok(Some((keep, deliver))) => {
                stale |= keep && tx.changes_mappings();
                let end = if keep {
                    exec(conn, "RELEASE request")
                } else {
                    exec(conn, "ROLLBACK TO request").and_then(|_| exec(conn, "RELEASE request"))
                };
                if let Err(e) = end {
                    broken = Some(Arc::new(e.into()));
                }
                delivers.push(deliver);
            }
            Ok(None) => {}
            Err(_) => {
                tracing::error!("a write request panicked; its changes were rolled back");
                let _ =
                    exec(conn, "ROLLBACK TO request").and_then(|_| exec(conn, "RELEASE request"));
            }
        }
        if conn.is_autocommit() && broken.is_none() {
            broken = Some(Arc::new(StoreError::Corrupt(
                "the write transaction was aborted".into(),
            )));
        }
    }
    let outcome: Result<(), Arc<StoreError>> = match broken {
        Some(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
        None => match exec(conn, "COMMIT") {
            Ok(()) => {
                if stale {
                    cache.invalidate();
                }
                Ok(())
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(Arc::new(e.into()))
            }
        },
    };
    for d in delivers {
        d(outcome.clone());
    }
    outcome
}

/// A passive checkpoint: frames in the log, and how many of them are in the database now
/// (none counted when another connection was checkpointing at the same moment).
fn checkpoint(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        let busy: i64 = r.get(0)?;
        let (log, done): (i64, i64) = (r.get(1)?, r.get(2)?);
        Ok(if busy != 0 {
            (log.max(1), 0)
        } else {
            (log, done)
        })
    })
}

fn checkpoint_loop(
    conn: Connection,
    stop: std::sync::mpsc::Receiver<()>,
    commits: Arc<AtomicU64>,
    restart: Arc<AtomicBool>,
) {
    let mut seen = 0u64;
    loop {
        let stopping = matches!(
            stop.recv_timeout(CHECKPOINT_EVERY),
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
        let now = commits.load(Ordering::Relaxed);
        if stopping {
            // close() stops the writer before this, so a TRUNCATE leaves a clean file.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            break;
        }
        if now == seen {
            continue;
        }
        seen = now;
        // Copy what the writer appended; once the log is long, keep copying until only a short
        // tail is left, then have the writer finish it between two batches.
        for _ in 0..64 {
            match checkpoint(&conn) {
                Ok((log, done)) if log >= WAL_RESTART_FRAMES => {
                    if log - done <= WAL_TAIL_FRAMES {
                        restart.store(true, Ordering::Relaxed);
                        break;
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under writes that never pause, the log still starts over: the `-wal` file stays a small
    /// fraction of what was written through it (a few MB here; over a quarter of it when only
    /// the checkpoint thread runs, which catches the last frame only by luck).
    #[test]
    fn the_wal_starts_over_under_a_steady_stream_of_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let db = Arc::new(
            Sqlite::open(
                &path,
                Synchronous::Normal,
                Duration::from_secs(5),
                Duration::from_secs(60),
                Arc::new(Cache::default()),
                Arc::new(Fatal::default()),
            )
            .unwrap(),
        );
        let wal = dir.path().join("w.db-wal");
        let written = 96 << 20;
        let value = vec![7u8; 16 << 10];
        let writers: Vec<_> = (0..16)
            .map(|t| {
                let (db, value) = (db.clone(), value.clone());
                std::thread::spawn(move || {
                    for i in 0..written / value.len() / 16 {
                        let (name, value) = (format!("t{t}-{}", i % 64), value.clone());
                        db.write_blocking(move |tx| tx.set_secret(&name, &value))
                            .unwrap();
                    }
                })
            })
            .collect();
        let mut largest = 0;
        while writers.iter().any(|w| !w.is_finished()) {
            largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
            std::thread::sleep(Duration::from_millis(5));
        }
        for w in writers {
            w.join().unwrap();
        }
        assert!(
            largest < written as u64 / 6,
            "the WAL grew to {largest} bytes of the {written} written"
        );
        db.close();
    }
}
