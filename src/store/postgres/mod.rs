//! The PostgreSQL engine, for several stateless replicas on one shared database.
//!
//! - Every request is one database transaction on a pooled connection, on one of tokio's
//!   blocking threads. Writes run SERIALIZABLE (those that only add rows their keys guard,
//!   READ COMMITTED: see `Store::write_inserts`); a serialization failure, a deadlock, or a
//!   unique or foreign-key violation of a racing insert (SQLSTATE 40001, 40P01, 23505, 23503)
//!   runs the request again from the start, a bounded number of times, so concurrent replicas
//!   agree as one SQLite writer would. A 200 is sent after COMMIT returned: as durable as the
//!   server's `synchronous_commit` makes it (on by default: flushed to its WAL).
//! - Caches: a transaction with a step that can change a mapping (see `Tx::changes_mappings`)
//!   also bumps `cache_generation`; this replica clears its caches at once, and every replica
//!   watches that row every [`WATCH_EVERY`] and clears its caches when it moved, so no replica
//!   answers from a mapping another one changed for longer than about that interval.
//! - Start-up retries a database that does not answer, with backoff, for
//!   `[database] start_timeout_secs`; migrations are applied by whichever replica gets the
//!   transaction-scoped advisory lock first, each exactly once.

mod conn;
pub mod migrate;
mod tx;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cache::Cache;
use super::{Fatal, Isolation, StoreError, Tx};
use conn::Manager;
use tx::PgTx;

/// How long a pooled connection may sit unused before it is checked on its next checkout.
const CHECK_IDLE_AFTER: Duration = Duration::from_millis(500);

/// How often each replica looks whether another one changed a cached mapping.
pub const WATCH_EVERY: Duration = Duration::from_millis(250);
/// How many times a request that lost a race runs at most before it fails. Many requests racing
/// for one thing (50 CreateIdentityPools of one account at once) need a few rounds each.
const MAX_ATTEMPTS: u32 = 32;

/// Connection settings.
#[derive(Clone)]
pub struct Settings {
    pub url: String,
    pub pool_size: u32,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
    pub start_timeout: Duration,
    /// How long every write may fail before `fatal` trips (the process exits for its
    /// supervisor to restart it), as on SQLite.
    pub give_up: Duration,
}

/// The PostgreSQL engine.
pub struct Postgres {
    /// Always `Some` until dropped: the pool is dropped on a thread of its own, since closing
    /// a connection blocks, which an async worker (where the last handle may go) must not.
    pool: Option<r2d2::Pool<Manager>>,
    cache: Arc<Cache>,
    location: String,
    commits: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    watcher: Mutex<Option<JoinHandle<()>>>,
    fatal: Arc<Fatal>,
    give_up: Duration,
    /// Since when every write has failed (for reasons of the database), and how many did.
    failing: Mutex<Option<(Instant, u64)>>,
    /// One per pooled connection: requests wait for one here, first come first served, before
    /// they take a blocking thread, rather than all piling onto the pool's lock, where a newcomer
    /// can overtake one that waited and some requests waited for seconds.
    slots: Arc<tokio::sync::Semaphore>,
    /// How long a request may wait for a slot (`connect_timeout_ms`, as for a connection).
    slot_wait: Duration,
}

impl Postgres {
    /// Connects (retrying with backoff while the database does not answer), migrates, and
    /// starts watching for other replicas' changes. Blocking.
    pub fn open(
        settings: &Settings,
        cache: Arc<Cache>,
        fatal: Arc<Fatal>,
    ) -> Result<Postgres, StoreError> {
        let manager = Manager::new(settings)?;
        let location = manager.location();
        let started = Instant::now();
        let mut wait = Duration::from_millis(250);
        let mut first = manager.connect_now();
        loop {
            match first {
                Ok(c) => {
                    migrate::migrate(&c)?;
                    break;
                }
                Err(e) if started.elapsed() < settings.start_timeout => {
                    tracing::warn!(database = %location, error = %e, retry_in_ms = wait.as_millis() as u64,
                        "the database does not answer yet; retrying");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                    first = manager.connect_now();
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "{location} did not answer within {} s: {e}",
                        settings.start_timeout.as_secs()
                    )))
                }
            }
        }
        let pool = r2d2::Pool::builder()
            .max_size(settings.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(settings.connect_timeout.max(Duration::from_millis(100)))
            // No empty query before every checkout (one round trip of every read's four):
            // `conn` asks only connections idle for a while, as connection pools commonly do.
            .test_on_check_out(false)
            .build_unchecked(manager);
        let stop = Arc::new(AtomicBool::new(false));
        let generation = current_generation(&pool).unwrap_or(0);
        let watcher = {
            let (pool, cache, stop) = (pool.clone(), cache.clone(), stop.clone());
            std::thread::Builder::new()
                .name("idpool-pg-watch".into())
                .spawn(move || watch(pool, cache, stop, generation))
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
        };
        Ok(Postgres {
            pool: Some(pool),
            cache,
            location,
            commits: Arc::new(AtomicU64::new(0)),
            stop,
            watcher: Mutex::new(Some(watcher)),
            fatal,
            give_up: settings.give_up,
            failing: Mutex::new(None),
            slots: Arc::new(tokio::sync::Semaphore::new(
                settings.pool_size.max(1) as usize
            )),
            slot_wait: settings.connect_timeout.max(Duration::from_millis(100)),
        })
    }

    /// Waits, in turn, for a pooled connection to be free for one request (see `slots`).
    /// Past `connect_timeout_ms` the request fails (InternalErrorException) instead of
    /// queueing without bound.
    pub async fn slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, StoreError> {
        match tokio::time::timeout(self.slot_wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(StoreError::WriterGone),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no database connection was free within {} ms",
                self.slot_wait.as_millis()
            ))),
        }
    }

    /// Where the data is, without credentials: `postgres://host:port/db`.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        let pool = self.pool.as_ref().ok_or(StoreError::WriterGone)?;
        // A connection used within the last half second is handed out as it is; an older one
        // answers an empty query first, and one that does not (the server restarted, a
        // failover) goes back to the pool as broken and is replaced.
        for _ in 0..=pool.max_size() {
            let mut conn = pool.get().map_err(StoreError::from)?;
            if conn.is_closed() {
                continue;
            }
            if conn.last_used.elapsed() >= CHECK_IDLE_AFTER && conn.ping().is_err() {
                continue;
            }
            conn.last_used = Instant::now();
            return Ok(conn);
        }
        Err(StoreError::Unavailable(
            "no working database connection".into(),
        ))
    }

    /// Runs `f` on a read-only snapshot (REPEATABLE READ), on the calling thread (blocking).
    pub fn read<T, E>(&self, f: impl FnOnce(&dyn Tx) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let conn = self.conn()?;
        let tx = PgTx::new(&conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
        let out = f(&tx)?;
        tx.end_read()?;
        Ok(out)
    }

    /// Runs `f` in a transaction of this isolation (SERIALIZABLE, or READ COMMITTED for a write
    /// that only adds rows its keys guard), again from the start when it lost a race with
    /// another request (on this replica or another), and returns its result once committed.
    /// Blocking.
    pub fn write<T, E, F>(&self, isolation: Isolation, f: &F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: Fn(&dyn Tx) -> Result<T, E>,
    {
        let started = Instant::now();
        let (out, database_failed) = self.attempts(isolation, f);
        match (&out, database_failed) {
            (Ok(_), _) => {
                crate::metrics::commit(1, started.elapsed().as_secs_f64());
                self.succeeded();
            }
            (Err(_), true) => self.failed(),
            (Err(_), false) => {}
        }
        out
    }

    /// Notes a committed write: a run of failures, if any, is over.
    fn succeeded(&self) {
        let ended = self.failing.lock().ok().and_then(|mut g| g.take());
        if let Some((_, count)) = ended {
            tracing::info!(failed_writes = count, "database writes succeed again");
        }
    }

    /// Notes a write the database failed; past `give_up` of nothing but failures, trips
    /// `fatal` so the process exits and its supervisor restarts it.
    fn failed(&self) {
        let Ok(mut g) = self.failing.lock() else {
            return;
        };
        match &mut *g {
            None => {
                tracing::error!("database writes are failing; the requests of this moment get InternalErrorException, and the next write tries again");
                *g = Some((Instant::now(), 1));
            }
            Some((since, count)) => {
                *count += 1;
                if since.elapsed() >= self.give_up {
                    self.fatal.trip(&format!(
                        "every write failed for {} s ({count} writes)",
                        since.elapsed().as_secs()
                    ));
                }
            }
        }
    }

    /// The attempts of one write, and whether its failure (if it failed) was the database's.
    fn attempts<T, E, F>(&self, isolation: Isolation, f: &F) -> (Result<T, E>, bool)
    where
        E: From<StoreError>,
        F: Fn(&dyn Tx) -> Result<T, E>,
    {
        let begin = match isolation {
            Isolation::Serial => "BEGIN ISOLATION LEVEL SERIALIZABLE",
            Isolation::Inserts => "BEGIN ISOLATION LEVEL READ COMMITTED",
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= MAX_ATTEMPTS;
            let conn = match self.conn() {
                Ok(c) => c,
                Err(e) => return (Err(e.into()), true),
            };
            {
                let tx = PgTx::new(&conn, begin);
                let out = f(&tx);
                let lost_race = tx.lost_race();
                let failed = tx.failed();
                let changes = tx.changes_mappings();
                match out {
                    Ok(v) => {
                        let committed = if changes {
                            tx.bump_generation().and_then(|()| tx.commit())
                        } else {
                            tx.commit()
                        };
                        match committed {
                            Ok(()) => {
                                if changes {
                                    self.cache.invalidate();
                                }
                                self.commits.fetch_add(1, Ordering::Relaxed);
                                return (Ok(v), false);
                            }
                            Err(StoreError::Conflict(_)) if !last => {}
                            Err(e) => {
                                return (Err(StoreError::WriteFailed(Arc::new(e)).into()), true)
                            }
                        }
                    }
                    // Dropping the transaction rolls it back.
                    Err(_) if lost_race && !last => {}
                    Err(e) => {
                        if lost_race {
                            tracing::warn!(
                            attempts = attempt,
                            "a write lost every race with concurrent writes; answered InternalErrorException"
                        );
                        }
                        return (Err(e), failed);
                    }
                }
            }
            drop(conn);
            // A short random pause, its range growing to 64 ms, so racing requests spread out
            // instead of colliding again.
            let range = 1u64 << attempt.min(6);
            let r = u64::from(u16::from_le_bytes([
                uuid::Uuid::new_v4().as_bytes()[0],
                uuid::Uuid::new_v4().as_bytes()[1],
            ]));
            std::thread::sleep(Duration::from_micros(500 + r % (range * 1000)));
        }
    }

    /// Number of write transactions committed since start (for measurements).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stops watching; connections close as the pool goes.
    pub fn close(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.watcher.lock().ok().and_then(|mut w| w.take()) {
            let _ = w.join();
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.close();
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::Builder::new()
                .name("idpool-pg-close".into())
                .spawn(move || drop(pool))
                .map(|t| t.join());
        }
    }
}

fn current_generation(pool: &r2d2::Pool<Manager>) -> Result<i64, StoreError> {
    let conn = pool.get()?;
    let row = conn.query_one("SELECT generation FROM cache_generation", &[])?;
    row.try_get(0)
        .map_err(|e| StoreError::Corrupt(format!("cache_generation: {e}")))
}

/// Clears the caches whenever another replica's transaction bumped the generation — and when
/// the database cannot be asked, since nothing then says the caches are still right.
fn watch(pool: r2d2::Pool<Manager>, cache: Arc<Cache>, stop: Arc<AtomicBool>, mut seen: i64) {
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(WATCH_EVERY);
        match current_generation(&pool) {
            Ok(g) => {
                if g != seen {
                    seen = g;
                    cache.invalidate();
                }
                if failing {
                    tracing::info!("the database answers again");
                    failing = false;
                }
            }
            Err(e) => {
                cache.invalidate();
                if !failing {
                    tracing::error!(error = %e, "cannot reach the database; requests get InternalErrorException until it answers");
                    failing = true;
                }
            }
        }
    }
}
