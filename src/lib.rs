//! idpool: a self-hosted, persistent, wire-compatible Amazon Cognito Identity server.
//!
//! # Layout
//! - `config`: the TOML configuration, its defaults and its errors.
//! - `health`: `GET /health` (alive) and `GET /ready` (the database reads and writes, keys loaded).
//! - `seed`: declared pools with fixed ids, applied at start-up.
//! - `server`: the accept loop (hyper HTTP/1.1, connection limit, graceful drain).
//! - `connection`: one connection's phases and limits (slow and idle clients), shared with `service`.
//! - `service`: one request end to end, and the one place errors become wire responses.
//! - `protocol`: awsJson 1.1 — operation routing, the error type, model-driven validation.
//! - `arn`: parsing Amazon Resource Names.
//! - `auth`: SigV4 verification of the 19 admin operations and the caller's account.
//! - `ops`: the operations themselves, and the linking rules they share.
//! - `model`: the domain's types (pools, identities, role mappings, keys) as storage keeps them.
//! - `store`: storage behind one interface (`Tx`): the SQLite and PostgreSQL engines, their
//!   migrations, the GetId caches.
//! - `transfer`: `idpool export` / `idpool import`, from either engine to either engine.
//! - `times`: time as stored (readable text) and as sent (epoch seconds).
//! - `tokens`: this server's OpenID tokens: signing keys, JWKS, discovery.
//! - `verify`: checking provider login tokens (oidc, introspect, trust).
//! - `access_log`: the one access line per API request, written straight into the log sink.
//! - `logsink`: log lines to stderr in batches; warnings and errors at once.
//! - `metrics`: the Prometheus metrics served at `GET /metrics`.
//! - `http_client`: the bounded outbound HTTP(S) client (JWKS, introspection, STS).
//! - `rate_limit`: optional per-client limits on the public operations.

// Unit tests may unwrap and panic; the library itself may not (see [lints] in Cargo.toml,
// checked on the non-test build by `cargo clippy --all-targets`).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod access_log;
pub mod arn;
pub mod auth;
pub mod config;
pub mod connection;
pub mod health;
pub mod http_client;
pub mod logsink;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod protocol;
pub mod rate_limit;
pub mod seed;
pub mod server;
pub mod service;
pub mod store;
pub mod times;
pub mod tokens;
pub mod transfer;
pub mod verify;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::Config;

/// Everything a request needs: configuration, storage, the validator and the admin keys.
pub struct App {
    pub config: Config,
    pub store: store::Store,
    pub validator: protocol::validate::Validator,
    pub keys: auth::Keys,
    pub tokens: tokens::Tokens,
    pub verifier: verify::Verifier,
    /// Outbound HTTP(S) for STS.
    pub http: http_client::HttpClient,
    /// `[rate_limit]` on the public operations.
    pub rate_limit: rate_limit::RateLimiter,
    /// Seals and opens pagination cursors.
    pub cursors: ops::cursor::Cursors,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("service model: {0}")]
    Model(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Seed(#[from] seed::SeedError),
    /// Loopback-only settings on an address others can reach (see [`Config::check_exposure`]);
    /// the command exits 2 on it, like on any other configuration error.
    #[error("config error: {0}")]
    Exposed(String),
}

impl App {
    /// Opens the database (migrating it) and prepares everything requests need. The blocking
    /// parts (opening and migrating the database, generating the first signing key) run on a
    /// blocking thread.
    pub async fn open(config: Config) -> Result<App, StartError> {
        let validator = protocol::validate::Validator::new().map_err(StartError::Model)?;
        let db = config.database.clone();
        let issuer = config.issuer();
        let (store, tokens, cursors) = tokio::task::spawn_blocking(move || {
            let store = store::Store::open_configured(&db)?;
            let tokens = tokens::Tokens::open(&store, issuer)?;
            let secret = store
                .read_blocking(|tx| tx.secret("cursor"))?
                .ok_or_else(|| store::StoreError::Corrupt("no cursor secret".into()))?;
            Ok::<_, StartError>((store, tokens, ops::cursor::Cursors::new(secret)))
        })
        .await
        .map_err(|e| StartError::Config(format!("start-up was interrupted: {e}")))??;
        let keys = auth::Keys::from_config(&config);
        let verifier = verify::Verifier::new(&config).map_err(StartError::Config)?;
        let http = http_client::HttpClient::new().map_err(|e| StartError::Config(e.to_string()))?;
        let rate_limit = rate_limit::RateLimiter::new(&config.rate_limit);
        Ok(App {
            rate_limit,
            config,
            store,
            validator,
            keys,
            tokens,
            verifier,
            http,
            cursors,
        })
    }

    fn announce(&self) {
        let c = &self.config;
        tracing::info!(database = %self.store.location(), region = %c.region, "database open");
        if c.database.url.is_some() && c.tokens.issuer.is_none() {
            tracing::warn!(
                issuer = %c.issuer(),
                "[tokens] issuer is not set: on a shared database every replica must name the same issuer (the address clients use), or tokens one replica signs are refused by the others"
            );
        }
        if c.admin.allow_unsigned {
            tracing::warn!(
                "admin.allow_unsigned = true: admin operations are accepted with any or no signature. Use this only for throwaway test environments."
            );
        } else if self.keys.is_empty() {
            tracing::warn!(
                "no admin keys configured: the 19 admin operations (CreateIdentityPool, ...) are refused until a key is added under [[admin.keys]] in the config file (see config.example.toml)"
            );
        }
        let trusted: Vec<&str> = c
            .providers
            .named
            .iter()
            .filter(|(_, p)| p.verify == config::VerifyMode::Trust)
            .map(|(n, _)| n.as_str())
            .collect();
        if !trusted.is_empty() {
            tracing::warn!(providers = ?trusted, "providers in trust mode: their login tokens are taken as user ids unchecked");
        }
        if c.providers.default == config::DefaultVerify::Trust {
            tracing::warn!("[providers] default = \"trust\": logins of providers without their own table are taken as user ids unchecked");
        }
        let risks = c.exposure_risks();
        if !risks.is_empty() {
            tracing::warn!(
                listen = %c.listen,
                "[security] allow_insecure_public = true: serving a non-loopback address with settings that are safe on loopback only: {}",
                risks.join("; ")
            );
        }
        if let Some(host) = &c.admin.host {
            tracing::info!(%host, "signed admin requests must be signed for this host ([admin] host)");
        }
    }
}

/// Takes a backup every `s.every`, off the async workers; a failed one is logged and the
/// schedule goes on.
async fn scheduled_backups(db: std::path::PathBuf, s: store::sqlite::backup::Schedule) {
    let mut tick = tokio::time::interval(s.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let (db, sch) = (db.clone(), s.clone());
        match tokio::task::spawn_blocking(move || store::sqlite::backup::scheduled(&db, &sch)).await
        {
            Ok(Ok(b)) => {
                tracing::info!(file = %b.path.display(), bytes = b.bytes, identities = b.identities, "scheduled backup written")
            }
            Ok(Err(e)) => tracing::error!(error = %e, "scheduled backup failed"),
            Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
        }
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    backups: Option<JoinHandle<()>>,
}

impl Server {
    /// Opens the database, binds `config.listen` and starts serving.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let mut config = config;
        // Before binding: a refused configuration never accepts a connection.
        config.check_exposure().map_err(StartError::Exposed)?;
        let listen = config.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
        // The default issuer names the address actually bound (port 0 picks one).
        config.listen = addr;
        let app = Arc::new(App::open(config).await?);
        app.announce();
        if let Some(file) = app.config.seed.file.clone() {
            let applied = seed::apply(&app, &file).await?;
            for (pool, done) in &applied.pools {
                tracing::info!(pool = %pool, outcome = ?done, file = %file.display(), "declared pool");
            }
        }
        let backups = app.config.backup.every.map(|every| {
            let db = app.config.database.path.clone();
            let schedule = store::sqlite::backup::Schedule {
                dir: app.config.backup.dir.clone().unwrap_or_else(|| {
                    db.parent()
                        .map(|p| p.join("backups"))
                        .unwrap_or_else(|| "backups".into())
                }),
                every,
                keep: app.config.backup.keep,
            };
            tokio::spawn(scheduled_backups(db, schedule))
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, app.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(Server {
            addr,
            app,
            stop: Some(stop),
            task: Some(task),
            backups,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The application state, for tests and tools.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Resolves when the server can no longer serve (its database writer gave up): the
    /// caller should stop it and exit non-zero.
    pub async fn failed(&self) {
        self.app.store.fatal().wait().await
    }

    /// Stops accepting, finishes in-flight requests, then closes the database cleanly.
    pub async fn stop(mut self) {
        if let Some(b) = self.backups.take() {
            b.abort();
        }
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let app = self.app.clone();
        let _ = tokio::task::spawn_blocking(move || app.store.close()).await;
    }
}
