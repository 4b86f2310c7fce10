//! The test harness: a real idpool server in-process on 127.0.0.1:0 with a temporary
//! database, the official AWS SDK for Rust pointed at it, and the helpers every module shares:
//!
//! - [`raw`]: raw HTTP requests and responses, for what an SDK never sends;
//! - [`doubles`]: loopback JWKS, introspection and STS stand-ins;
//! - [`asserts`]: what an error must look like, on the wire and through the SDK;
//! - [`db`]: the stored rows, read directly (the one place that knows the storage engine);
//! - [`spawned`]: the real binary as a child process.
//!
//! Tests go through the public interface (the API, the SDK, `common::db`), never through a
//! storage engine of their own.

#![allow(dead_code)]

pub mod asserts;
pub mod db;
pub mod doubles;
pub mod raw;
pub mod spawned;

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_cognitoidentity::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cognitoidentity::Client;
use idpool::config::{AdminKey, Config, DefaultVerify, Secret};
use idpool::Server;

pub use asserts::*;
pub use raw::RawResponse;
pub use spawned::Spawned;

pub const AKID: &str = "AKIDTESTADMIN";
pub const SECRET: &str = "test-admin-secret-key";
pub const OTHER_AKID: &str = "AKIDOTHERACCOUNT";
pub const OTHER_SECRET: &str = "other-account-secret";
pub const OTHER_ACCOUNT: &str = "222222222222";
/// The roles [`set_roles`] gives a pool.
pub const AUTH_ROLE: &str = "arn:aws:iam::000000000000:role/authenticated";
pub const UNAUTH_ROLE: &str = "arn:aws:iam::000000000000:role/guest";
/// The developer provider of [`pool_with_roles`].
pub const DEV: &str = "login.mycompany";

/// A running server and the temporary folder holding its database. Dropping it stops the
/// server (a test that wants to wait for that calls [`TestServer::stop`]).
pub struct TestServer {
    server: Option<Server>,
    pub dir: Arc<tempfile::TempDir>,
    pub config: Config,
    pub url: String,
}

/// The configuration tests start from: two admin keys of different accounts, and — set here,
/// not inherited from the built-in `reject` — `trust` for providers without a table of their
/// own, so tests can sign in with any user id.
///
/// With [`test_database_url`] set, the database is a fresh PostgreSQL schema of its own
/// (the server migrates it); `path` stays set but is ignored.
pub fn base_config(dir: &tempfile::TempDir) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    c.providers.default = DefaultVerify::Trust;
    c.database.path = dir.path().join("idpool.db");
    c.database.url = test_database_url().map(|url| Secret::new(fresh_schema_url(&url)));
    c.admin.keys = vec![
        AdminKey {
            access_key_id: AKID.into(),
            secret_access_key: Secret::new(SECRET),
            account_id: None,
        },
        AdminKey {
            access_key_id: OTHER_AKID.into(),
            secret_access_key: Secret::new(OTHER_SECRET),
            account_id: Some(OTHER_ACCOUNT.into()),
        },
    ];
    c
}

/// `IDPOOL_TEST_DATABASE_URL`: when set (`postgres://…`), every test server runs on
/// PostgreSQL, each test in a schema of its own; unset, on a SQLite file in a temporary folder.
pub fn test_database_url() -> Option<String> {
    std::env::var("IDPOOL_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether this run is on SQLite; otherwise says on stderr why the calling test is skipped.
/// For tests about the SQLite file itself (its bytes, its locks, `idpool backup`), never for
/// behaviour through the API.
pub fn sqlite_only(why: &str) -> bool {
    if test_database_url().is_some() {
        eprintln!("skipped on PostgreSQL: {why}");
        return false;
    }
    true
}

/// Creates an empty schema `t_<uuid>` in the database at `url` and returns the URL whose
/// connections use it (`options=-c search_path=…`).
pub fn fresh_schema_url(url: &str) -> String {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let (u, create) = (url.to_string(), format!("CREATE SCHEMA {schema}"));
    db::off_runtime(move || {
        let mut client = postgres::Client::connect(&u, postgres::NoTls)
            .unwrap_or_else(|e| panic!("IDPOOL_TEST_DATABASE_URL: cannot connect: {e}"));
        client.batch_execute(&create).unwrap();
    });
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// The command-line arguments that point the binary at the database of `config`:
/// `--database-url` on PostgreSQL, `--database` on SQLite (never both).
pub fn database_args(config: &Config) -> Vec<std::ffi::OsString> {
    match &config.database.url {
        Some(url) => vec!["--database-url".into(), url.expose().into()],
        None => vec!["--database".into(), config.database.path.clone().into()],
    }
}

/// The `[database]` table of a config file for the database of `config`: `url` on
/// PostgreSQL, `path` on SQLite.
pub fn database_toml(config: &Config) -> String {
    format!("[database]\n{}\n", database_key(config))
}

/// The one `[database]` key naming the database of `config`: `url = "…"` on PostgreSQL,
/// `path = "…"` on SQLite.
pub fn database_key(config: &Config) -> String {
    match &config.database.url {
        Some(url) => format!("url = {}", toml_string(url.expose())),
        None => format!(
            "path = {}",
            toml_string(&config.database.path.display().to_string())
        ),
    }
}

/// A TOML basic string.
pub fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(f: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut config = base_config(&dir);
        f(&mut config);
        Self::start_in(dir, config).await
    }

    async fn start_in(dir: Arc<tempfile::TempDir>, config: Config) -> TestServer {
        let server = Server::start(config.clone()).await.unwrap();
        let url = format!("http://{}", server.local_addr());
        TestServer {
            server: Some(server),
            dir,
            config,
            url,
        }
    }

    /// Stops the server (graceful) and starts a new one on the same database file.
    pub async fn restart(mut self) -> TestServer {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        Self::start_in(self.dir.clone(), self.config.clone()).await
    }

    /// Stops the server; the database folder lives as long as the returned handle.
    pub async fn stop(mut self) -> Arc<tempfile::TempDir> {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
        self.dir.clone()
    }

    /// The running server's application state (its `tokens`, `store`, …).
    pub fn app(&self) -> &Arc<idpool::App> {
        self.server.as_ref().expect("the server is running").app()
    }

    pub fn db_path(&self) -> PathBuf {
        self.config.database.path.clone()
    }

    /// A read-only connection to the live database, as an admin at a database prompt would have.
    pub fn db(&self) -> db::Reader {
        db::Reader::open(&self.config)
    }

    /// The number a `SELECT count(*) …` of the live database returns.
    pub fn count(&self, sql: &str) -> i64 {
        self.db().count(sql)
    }

    /// `host:port` it listens on.
    pub fn host(&self) -> &str {
        raw::host_of(&self.url)
    }

    /// The SDK signing with the default account's admin key.
    pub fn client(&self) -> Client {
        self.client_with(AKID, SECRET)
    }

    /// The SDK signing with the given key.
    pub fn client_with(&self, akid: &str, secret: &str) -> Client {
        sdk_client(&self.url, akid, secret)
    }

    /// A raw HTTP request to `/`; the connection is closed after the response.
    pub async fn raw(&self, method: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        self.raw_bytes(&raw::closing(self.host(), method, "/", headers, body))
            .await
    }

    /// A GET of `path`; the connection is closed after the response.
    pub async fn raw_get(&self, path: &str) -> RawResponse {
        raw::fetch(self.host(), "GET", path).await
    }

    /// A JSON call of `op` the way the SDKs send it, unsigned.
    pub async fn call(&self, op: &str, body: &str) -> RawResponse {
        self.raw_bytes(&raw::call_bytes(self.host(), op, body))
            .await
    }

    /// Sends exactly these bytes and reads the response until the server closes.
    pub async fn raw_bytes(&self, bytes: &[u8]) -> RawResponse {
        raw::exchange(self.host(), bytes).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Not stopped by the test: stop it now, in the background when a runtime is there to
        // run it (the runtime ending cuts it short, which closes the listener all the same).
        if let Some(s) = self.server.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(s.stop());
                }
                Err(_) => drop(s),
            }
        }
    }
}

pub fn sdk_client(url: &str, akid: &str, secret: &str) -> Client {
    sdk_client_in(url, akid, secret, "us-east-1")
}

/// The SDK signing for another region.
pub fn sdk_client_in(url: &str, akid: &str, secret: &str, region: &str) -> Client {
    let conf = aws_sdk_cognitoidentity::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(akid, secret, None, None, "idpool-tests"))
        .retry_config(aws_sdk_cognitoidentity::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

/// Creates a pool through the SDK: guests allowed, Google and Facebook configured.
pub async fn create_pool(client: &Client, name: &str) -> String {
    client
        .create_identity_pool()
        .identity_pool_name(name)
        .allow_unauthenticated_identities(true)
        .supported_login_providers("accounts.google.com", "google-client")
        .supported_login_providers("graph.facebook.com", "facebook-app")
        .supported_login_providers("www.amazon.com", "amazon-app")
        .send()
        .await
        .unwrap()
        .identity_pool_id
}

/// GetId with the given logins through the SDK (unsigned, as SDKs send it).
pub async fn get_id(
    client: &Client,
    pool: &str,
    logins: &[(&str, &str)],
) -> Result<String, aws_sdk_cognitoidentity::Error> {
    let mut req = client.get_id().identity_pool_id(pool);
    for (k, v) in logins {
        req = req.logins(*k, *v);
    }
    req.send()
        .await
        .map(|o| o.identity_id.unwrap_or_default())
        .map_err(aws_sdk_cognitoidentity::Error::from)
}

/// Gives a pool the authenticated role [`AUTH_ROLE`] and the guest role [`UNAUTH_ROLE`].
pub async fn set_roles(client: &Client, pool: &str) {
    client
        .set_identity_pool_roles()
        .identity_pool_id(pool)
        .roles("authenticated", AUTH_ROLE)
        .roles("unauthenticated", UNAUTH_ROLE)
        .send()
        .await
        .unwrap();
}

/// Creates a pool through the SDK with both roles: guests allowed, Google, Facebook and the
/// developer provider [`DEV`].
pub async fn pool_with_roles(client: &Client, name: &str) -> String {
    let pool = client
        .create_identity_pool()
        .identity_pool_name(name)
        .allow_unauthenticated_identities(true)
        .supported_login_providers("accounts.google.com", "google-client")
        .supported_login_providers("graph.facebook.com", "facebook-app")
        .developer_provider_name(DEV)
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    set_roles(client, &pool).await;
    pool
}
