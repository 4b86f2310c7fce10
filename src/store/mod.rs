//! The only place SQL runs. One SQLite file in WAL mode: reads use a pool of read-only
//! connections; every write goes through one writer thread that commits whatever requests are
//! queued in one transaction (group commit), each request in its own savepoint, and answers each
//! request only after that commit is on disk. WAL checkpoints run on their own thread.

pub mod admin;
pub mod backup;
pub mod cache;
pub mod identities;
pub mod migrate;
pub mod pools;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::config::Synchronous;

/// A storage failure. It knows SQLite and the pool, nothing of HTTP.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("database {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("migration {0}")]
    Migration(String),
    #[error("the database has schema version {found}, newer than this idpool knows ({known}); use a newer idpool or another database file")]
    TooNew { found: i64, known: i64 },
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("the write transaction failed: {0}")]
    WriteFailed(Arc<StoreError>),
}

/// How many queued requests one transaction takes at most.
const MAX_BATCH: usize = 512;
/// How many requests may wait for the writer before senders wait.
const QUEUE: usize = 8192;
/// Read connections. Reads run inline on the async workers, so a few suffice.
const READERS: u32 = 16;

type Deliver = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;
/// A queued write. The writer runs it on its connection, or — when no transaction could be
/// begun — fails it with the cause, so its caller is answered at once and not left waiting.
type Job = Box<dyn FnOnce(Run<'_>) -> Option<(bool, Deliver)> + Send>;

/// What the writer does with a job.
enum Run<'a> {
    On(&'a Connection),
    Fail(Arc<StoreError>),
}

/// How long the writer may fail every transaction, with no success in between, before the
/// server gives up and exits (non-zero) so a supervisor restarts it, instead of answering
/// InternalErrorException forever while it looks alive.
pub const DEFAULT_EXIT_AFTER_FAILING: Duration = Duration::from_secs(60);

/// Trips once when the writer cannot go on; `Server` waits on it and stops the process.
#[derive(Default)]
pub struct Fatal {
    tripped: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Fatal {
    fn trip(&self, why: &str) {
        if !self.tripped.swap(true, Ordering::SeqCst) {
            tracing::error!(
                cause = why,
                "the database writer cannot go on; stopping idpool so it can be restarted"
            );
            self.notify.notify_waiters();
        }
    }

    /// Whether the writer has given up.
    pub fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    /// Resolves once the writer has given up.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_tripped() {
                return;
            }
            notified.await;
        }
    }
}

/// Handle to the database.
pub struct Store {
    path: PathBuf,
    readers: r2d2::Pool<SqliteConnectionManager>,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    commits: Arc<AtomicU64>,
    stop_checkpointer: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    fatal: Arc<Fatal>,
    /// Read-through caches for GetId's hot path; see `cache.rs` for the rules.
    pub cache: cache::Cache,
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
    c.set_prepared_statement_cache_capacity(64);
    Ok(())
}

impl Store {
    /// Opens with the default lock wait and failure bound; see `open_with`.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Store, StoreError> {
        Store::open_with(
            path,
            sync,
            Duration::from_secs(5),
            DEFAULT_EXIT_AFTER_FAILING,
        )
    }

    /// Opens (creating the file and its folder when missing), migrates, and starts the writer
    /// and checkpoint threads. `busy` is how long a statement waits for a lock another process
    /// holds; `give_up` how long the writer may fail every transaction before `fatal()` trips.
    pub fn open_with(
        path: &Path,
        sync: Synchronous,
        busy: Duration,
        give_up: Duration,
    ) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
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
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let writer_commits = commits.clone();
        let fatal = Arc::new(Fatal::default());
        let writer_fatal = fatal.clone();
        let writer_thread = std::thread::Builder::new()
            .name("idpool-writer".into())
            .spawn(move || {
                let f = writer_fatal.clone();
                let run = std::panic::catch_unwind(AssertUnwindSafe(move || {
                    writer_loop(writer, rx, writer_commits, &f, give_up)
                }));
                if run.is_err() {
                    writer_fatal.trip("the writer thread panicked");
                }
            })
            .map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let ck_commits = commits.clone();
        let ck_thread = std::thread::Builder::new()
            .name("idpool-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpoint_conn, stop_rx, ck_commits))
            .map_err(|source| StoreError::Io {
                path: path.display().to_string(),
                source,
            })?;

        Ok(Store {
            path: path.to_path_buf(),
            readers,
            writer: Mutex::new(Some(tx)),
            threads: Mutex::new(vec![writer_thread, ck_thread]),
            commits,
            stop_checkpointer: Mutex::new(Some(stop_tx)),
            fatal,
            cache: cache::Cache::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a read on a read-only connection, on the calling thread. Reads are point lookups
    /// of a few microseconds, cheaper inline than handed to another thread.
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let conn = self.readers.get().map_err(StoreError::from)?;
        f(&conn)
    }

    /// A read-only connection for several reads in a row.
    pub fn reader(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, StoreError> {
        Ok(self.readers.get()?)
    }

    /// Runs `f` inside the writer's next transaction, in a savepoint of its own, and returns
    /// its result once the transaction is durably committed. An `Err` from `f` rolls back its
    /// savepoint only: what `f` changed is undone, other requests in the batch are not touched.
    /// A successful write clears the read caches, since it may have changed what they hold.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let out = self.submit(f).await;
        if out.is_ok() {
            self.cache.invalidate();
        }
        out
    }

    /// `write` for changes that only add rows (a new identity, a new link, a new pool): they
    /// cannot make a cached mapping wrong, so the caches stay.
    pub async fn write_additive<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        self.submit(f).await
    }

    async fn submit<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
    {
        let sender = self
            .writer
            .lock()
            .ok()
            .and_then(|g| g.as_ref().cloned())
            .ok_or(StoreError::WriterGone)?;
        let (tx, rx) = oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |run| {
            let conn = match run {
                Run::On(conn) => conn,
                Run::Fail(cause) => {
                    let _ = tx.send(Err(E::from(StoreError::WriteFailed(cause))));
                    return None;
                }
            };
            let result = f(conn);
            let keep = result.is_ok();
            let deliver: Deliver = Box::new(move |commit| {
                let out = match (result, commit) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Ok(_), Err(e)) => Err(E::from(StoreError::WriteFailed(e))),
                    (Err(e), _) => Err(e),
                };
                let _ = tx.send(out);
            });
            Some((keep, deliver))
        });
        if sender.send(job).await.is_err() {
            return Err(StoreError::WriterGone.into());
        }
        match rx.await {
            Ok(r) => r,
            Err(_) => Err(StoreError::WriterGone.into()),
        }
    }

    /// A read on a pooled connection: does the database answer?
    pub fn ping_read(&self) -> Result<(), StoreError> {
        self.read(|c| {
            c.query_row("SELECT count(*) FROM schema_migrations", [], |_| Ok(()))
                .map_err(StoreError::from)
        })
    }

    /// An empty transaction through the writer: does a write commit now?
    pub async fn ping_write(&self) -> Result<(), StoreError> {
        self.submit(|_| Ok::<(), StoreError>(())).await
    }

    /// Trips when the writer can no longer commit (it stopped, or failed every transaction
    /// for longer than the configured bound): the server should then exit non-zero.
    pub fn fatal(&self) -> &Arc<Fatal> {
        &self.fatal
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

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
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
    fatal: &Fatal,
    give_up: Duration,
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
        let outcome = run_batch(&conn, batch);
        crate::metrics::commit(size, started.elapsed().as_secs_f64());
        match outcome {
            Ok(()) => {
                commits.fetch_add(1, Ordering::Relaxed);
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

/// Runs one batch in one transaction; every job's caller is answered, whatever happens.
fn run_batch(conn: &Connection, batch: Vec<Job>) -> Result<(), Arc<StoreError>> {
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        let cause = Arc::new(StoreError::from(e));
        for job in batch {
            job(Run::Fail(cause.clone()));
        }
        return Err(cause);
    }
    let mut delivers: Vec<Deliver> = Vec::with_capacity(batch.len());
    let mut broken: Option<Arc<StoreError>> = None;
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
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(Run::On(conn)))) {
            Ok(Some((keep, deliver))) => {
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
            Ok(()) => Ok(()),
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

fn checkpoint_loop(conn: Connection, stop: std::sync::mpsc::Receiver<()>, commits: Arc<AtomicU64>) {
    let mut seen = 0u64;
    loop {
        let stopping = matches!(
            stop.recv_timeout(Duration::from_millis(500)),
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
        let now = commits.load(Ordering::Relaxed);
        if stopping {
            // close() stops the writer before this, so a TRUNCATE leaves a clean file.
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            break;
        }
        if now != seen {
            seen = now;
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    }
}
