//! Storage: the one place that knows databases. The operations see only [`Store`] and the
//! [`Tx`] steps it runs their closures with; rows come back as the domain's types
//! (`crate::model`). SQL, connections and engines stay behind this module.
//!
//! - `tx`: the [`Tx`] trait, every storage step a request can take.
//! - `cache`: read-through caches for GetId's hot path, cleared by the engine at commit.
//! - `sqlite`: the embedded engine (group commit, migrations, backups).
//! - `postgres`: the engine for several replicas on one shared database.

pub mod cache;
pub mod postgres;
pub mod sqlite;
pub mod tx;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use sqlite::backup;
pub use tx::Tx;

/// How a write transaction is isolated from concurrent ones on PostgreSQL (see
/// [`Store::write_inserts`]); SQLite's one writer commits them one after another either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// SERIALIZABLE: as if every write ran alone.
    Serial,
    /// READ COMMITTED, for a write that only adds rows its keys guard.
    Inserts,
}

use crate::config::Synchronous;

/// A storage failure. It names what went wrong in storage terms, nothing of HTTP; its text
/// (which may hold SQL detail) is for logs, never for clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A statement failed.
    #[error("database: {0}")]
    Database(String),
    /// The transaction lost a race with a concurrent one (serialization failure, deadlock,
    /// a racing insert); running it again resolves it.
    #[error("concurrent change: {0}")]
    Conflict(String),
    /// No connection could be had in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("migration {0}")]
    Migration(String),
    #[error("the database has schema version {found}, newer than this idpool knows ({known}); use a newer idpool or another database file")]
    TooNew { found: i64, known: i64 },
    /// Stored data that cannot be what this program wrote.
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    /// Token signing key generation failed.
    #[error("token signing key: {0}")]
    KeyGeneration(String),
    #[error("the database writer has stopped")]
    WriterGone,
    /// A request's blocking thread ended without an answer (it panicked).
    #[error("a database request did not finish")]
    ReadAborted,
    /// The transaction this write was part of did not commit.
    #[error("the write transaction failed: {0}")]
    WriteFailed(Arc<StoreError>),
}

impl From<r2d2::Error> for StoreError {
    /// No pooled connection in time: the engines' pools are both r2d2's.
    fn from(e: r2d2::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
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

/// Which database a [`Store`] runs on.
enum Engine {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

struct Inner {
    engine: Engine,
    cache: Arc<cache::Cache>,
    fatal: Arc<Fatal>,
}

/// Handle to the database; cheap to clone (every clone is the same store).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens the SQLite file with the default lock wait and failure bound; see `open_sqlite`.
    pub fn open(path: &Path, sync: Synchronous) -> Result<Store, StoreError> {
        Store::open_sqlite(
            path,
            sync,
            Duration::from_secs(5),
            DEFAULT_EXIT_AFTER_FAILING,
        )
    }

    /// Opens (creating when missing) and migrates a SQLite database file. Blocking: from async
    /// code, call it through `spawn_blocking`.
    pub fn open_sqlite(
        path: &Path,
        sync: Synchronous,
        busy: Duration,
        give_up: Duration,
    ) -> Result<Store, StoreError> {
        let cache = Arc::new(cache::Cache::default());
        let fatal = Arc::new(Fatal::default());
        let engine = sqlite::Sqlite::open(path, sync, busy, give_up, cache.clone(), fatal.clone())?;
        Ok(Store {
            inner: Arc::new(Inner {
                engine: Engine::Sqlite(engine),
                cache,
                fatal,
            }),
        })
    }

    /// Connects to PostgreSQL (retrying while it does not answer) and migrates it. Blocking.
    pub fn open_postgres(settings: &postgres::Settings) -> Result<Store, StoreError> {
        let cache = Arc::new(cache::Cache::default());
        let fatal = Arc::new(Fatal::default());
        let engine = postgres::Postgres::open(settings, cache.clone(), fatal.clone())?;
        Ok(Store {
            inner: Arc::new(Inner {
                engine: Engine::Postgres(engine),
                cache,
                fatal,
            }),
        })
    }

    /// Opens the engine the configuration names: PostgreSQL with `url`, else the SQLite file.
    /// Blocking.
    pub fn open_configured(db: &crate::config::DatabaseConfig) -> Result<Store, StoreError> {
        match &db.url {
            Some(url) => Store::open_postgres(&postgres::Settings {
                url: url.expose().to_string(),
                pool_size: db.pool_size,
                statement_timeout: Duration::from_millis(db.statement_timeout_ms),
                connect_timeout: Duration::from_millis(db.connect_timeout_ms),
                start_timeout: Duration::from_secs(db.start_timeout_secs),
                give_up: Duration::from_secs(db.give_up_after_secs),
            }),
            None => Store::open_sqlite(
                &db.path,
                db.synchronous,
                Duration::from_millis(db.busy_timeout_ms),
                Duration::from_secs(db.give_up_after_secs),
            ),
        }
    }

    /// Where the data is, for logs: the database file, or the PostgreSQL host and database
    /// (never its credentials).
    pub fn location(&self) -> String {
        match &self.inner.engine {
            Engine::Sqlite(s) => s.path().display().to_string(),
            Engine::Postgres(p) => p.location().to_string(),
        }
    }

    /// The engine's name: `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match &self.inner.engine {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(_) => "postgres",
        }
    }

    /// The SQLite file, when the engine is SQLite.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.inner.engine {
            Engine::Sqlite(s) => Some(s.path()),
            Engine::Postgres(_) => None,
        }
    }

    /// Whether the caches are exact: every change to what they hold is made by this process,
    /// which clears them before answering it (SQLite: one server owns the file). Then an admin
    /// read may answer from them too. On PostgreSQL other replicas change the database, and
    /// their changes reach this replica's caches only within about a second, which GetId
    /// accepts and an admin reading back its own change must not see.
    pub fn cache_is_exact(&self) -> bool {
        matches!(self.inner.engine, Engine::Sqlite(_))
    }

    /// Whether a read is local and cheap beside a write: on SQLite a read runs on the calling
    /// thread in microseconds, while a write waits its turn at the one writer, so a request
    /// reads first and writes only what is left. On PostgreSQL every step is a round trip
    /// either way, so a request that may write does its reads in its write transaction.
    pub fn reads_are_local(&self) -> bool {
        matches!(self.inner.engine, Engine::Sqlite(_))
    }

    /// The read-through caches (see `cache.rs`).
    pub fn cache(&self) -> &cache::Cache {
        &self.inner.cache
    }

    /// Runs `f` on a read-only snapshot. Reads are a request's few point lookups or one page
    /// of a listing: on SQLite they run on the calling worker with a connection of its own (a
    /// local file read takes microseconds, less than a hop to another thread); on PostgreSQL,
    /// a network round trip, on one of tokio's blocking threads, never on an async worker.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&dyn Tx) -> Result<T, E> + Send + 'static,
    {
        let slot = match &self.inner.engine {
            Engine::Sqlite(s) => return s.read_here(f),
            Engine::Postgres(p) => p.slot().await?,
        };
        let inner = self.inner.clone();
        // The request's span (its request id) goes along, so what `f` logs is the request's.
        let span = tracing::Span::current();
        match tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let _in = span.enter();
            match &inner.engine {
                Engine::Sqlite(s) => s.read(f),
                Engine::Postgres(p) => p.read(f),
            }
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(StoreError::ReadAborted.into()),
        }
    }

    /// `read` on the calling thread, for command-line tools and start-up: it blocks.
    pub fn read_blocking<T, E>(&self, f: impl FnOnce(&dyn Tx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match &self.inner.engine {
            Engine::Sqlite(s) => s.read(f),
            Engine::Postgres(p) => p.read(f),
        }
    }

    /// Runs `f` in a write transaction and returns its result once that transaction is durably
    /// committed. An `Err` from `f` undoes what `f` changed and nothing else. A commit that
    /// changed a mapping the caches hold clears them before anyone is answered, whether or not
    /// this caller is still waiting. `f` may run more than once (PostgreSQL runs a request
    /// that lost a race with another again), so it must not have effects outside `tx`.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: Fn(&dyn Tx) -> Result<T, E> + Send + 'static,
    {
        self.write_as(Isolation::Serial, f).await
    }

    /// `write` for a transaction that only adds rows, each of which the schema's unique and
    /// foreign keys guard: a new identity and its logins, a guest. What it read may be stale by
    /// its commit, but only in ways a key catches — a login another request linked meanwhile
    /// (unique), a pool deleted meanwhile (foreign) — and the request then runs again and
    /// sees the change. On PostgreSQL it runs READ COMMITTED: SERIALIZABLE's predicate locks
    /// made concurrent new logins, whose keys land on one index page, fail each other's
    /// transactions and retry by the dozen. SQLite's one writer is serial either way.
    pub async fn write_inserts<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: Fn(&dyn Tx) -> Result<T, E> + Send + 'static,
    {
        self.write_as(Isolation::Inserts, f).await
    }

    async fn write_as<T, E, F>(&self, isolation: Isolation, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: Fn(&dyn Tx) -> Result<T, E> + Send + 'static,
    {
        match &self.inner.engine {
            Engine::Sqlite(s) => s.write(f).await,
            Engine::Postgres(p) => {
                let slot = p.slot().await?;
                let inner = self.inner.clone();
                let span = tracing::Span::current();
                match tokio::task::spawn_blocking(move || {
                    let _slot = slot;
                    let _in = span.enter();
                    match &inner.engine {
                        Engine::Postgres(p) => p.write(isolation, &f),
                        Engine::Sqlite(s) => s.write_blocking(f),
                    }
                })
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(StoreError::ReadAborted.into()),
                }
            }
        }
    }

    /// `write` on the calling thread, for command-line tools and start-up: it blocks.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: Fn(&dyn Tx) -> Result<T, E> + Send + 'static,
    {
        match &self.inner.engine {
            Engine::Sqlite(s) => s.write_blocking(f),
            Engine::Postgres(p) => p.write(Isolation::Serial, &f),
        }
    }

    /// A read: does the database answer?
    pub async fn ping_read(&self) -> Result<(), StoreError> {
        self.read(|tx| tx.keys_version().map(|_| ())).await
    }

    /// An empty write transaction: does a write commit now?
    pub async fn ping_write(&self) -> Result<(), StoreError> {
        self.write(|tx| tx.probe_writes()).await
    }

    /// Trips when writes can no longer commit (the writer stopped, or failed every transaction
    /// for longer than the configured bound): the server should then exit non-zero.
    pub fn fatal(&self) -> &Arc<Fatal> {
        &self.inner.fatal
    }

    /// Number of write transactions committed since start (for measurements).
    pub fn commits(&self) -> u64 {
        match &self.inner.engine {
            Engine::Sqlite(s) => s.commits(),
            Engine::Postgres(p) => p.commits(),
        }
    }

    /// Finishes queued writes and closes the database.
    pub fn close(&self) {
        match &self.inner.engine {
            Engine::Sqlite(s) => s.close(),
            Engine::Postgres(p) => p.close(),
        }
    }
}
