//! Connections: the URL (with TLS settings), and the r2d2 manager whose connections keep their
//! prepared statements. Each connection is tokio-postgres's client driven by a runtime of its
//! own on the (blocking) thread that uses it, so a transaction's steps can be pipelined: sent
//! together, one round trip for several (see `tx::PgTx`).

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::Settings;
use crate::store::StoreError;

/// How long dropping a connection waits for its goodbye to the server to be written.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

/// A connection and the statements prepared on it.
pub struct PgConn {
    /// Runs the connection's I/O whenever this thread waits on it; nothing runs between calls.
    rt: tokio::runtime::Runtime,
    /// `None` only while the connection closes (see `Drop`).
    client: Option<Client>,
    /// The task that reads and writes the socket.
    io: tokio::task::JoinHandle<()>,
    pub statements: std::cell::RefCell<HashMap<&'static str, Statement>>,
    /// When it was last handed out: one used moments ago is not asked whether it still works.
    pub last_used: Instant,
}

impl PgConn {
    /// The client; an error once the connection is closing.
    pub fn client(&self) -> Result<&Client, StoreError> {
        self.client
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable("the database connection is closed".into()))
    }

    /// Runs `f` to its end on this thread, driving the connection meanwhile.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Whether the connection is gone (the server closed it, or it broke).
    pub fn is_closed(&self) -> bool {
        self.client.as_ref().is_none_or(Client::is_closed)
    }

    /// An empty query: does the server still answer?
    pub fn ping(&self) -> Result<(), StoreError> {
        let client = self.client()?;
        self.block_on(client.simple_query(""))
            .map(|_| ())
            .map_err(super::tx::db_error)
    }

    /// Statements without parameters, in the simple protocol.
    pub fn batch(&self, sql: &str) -> Result<(), StoreError> {
        let client = self.client()?;
        self.block_on(client.batch_execute(sql))
            .map_err(super::tx::db_error)
    }

    /// A statement expected to return exactly one row.
    pub fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, StoreError> {
        let client = self.client()?;
        self.block_on(client.query_one(sql, params))
            .map_err(super::tx::db_error)
    }

    /// A statement's count of affected rows.
    pub fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client()?;
        self.block_on(client.execute(sql, params))
            .map_err(super::tx::db_error)
    }
}

impl Drop for PgConn {
    /// Says goodbye to the server (dropping the client has the I/O task send Terminate), so it
    /// logs no broken connection; waits briefly, never long.
    fn drop(&mut self) {
        drop(self.client.take());
        let io = &mut self.io;
        let _ = self
            .rt
            .block_on(async { tokio::time::timeout(CLOSE_WAIT, io).await });
    }
}

/// Opens connections for the pool.
pub struct Manager {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
}

/// Splits `sslmode` and `sslrootcert` off a URL's query: the driver knows only
/// disable/prefer/require, and nothing of a CA file.
fn split_tls(url: &str) -> (String, Option<String>, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None, None);
    };
    let (mut mode, mut root) = (None, None);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.split_once('=') {
            Some(("sslmode", v)) => {
                mode = Some(v.to_string());
                false
            }
            Some(("sslrootcert", v)) => {
                root = Some(v.to_string());
                false
            }
            _ => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, mode, root)
}

fn bad_url(why: impl std::fmt::Display) -> StoreError {
    // Never the URL itself: it may hold a password.
    StoreError::Unavailable(format!("database url: {why}"))
}

fn tls_config(root: Option<&str>) -> Result<rustls::ClientConfig, StoreError> {
    use hyper_rustls::ConfigBuilderExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad_url(format!("TLS: {e}")))?;
    Ok(match root {
        Some(path) => {
            use rustls_pki_types::pem::PemObject;
            let mut roots = rustls::RootCertStore::empty();
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| bad_url(format!("sslrootcert {path}: {e}")))?;
            for cert in certs {
                let cert = cert.map_err(|e| bad_url(format!("sslrootcert {path}: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| bad_url(format!("sslrootcert {path}: {e}")))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder.with_webpki_roots().with_no_client_auth(),
    })
}

impl Manager {
    pub fn new(s: &Settings) -> Result<Manager, StoreError> {
        let (url, mode, root) = split_tls(&s.url);
        let mut config = tokio_postgres::Config::from_str(&url).map_err(bad_url)?;
        // TLS, when asked for, always checks the server's certificate (against `sslrootcert`,
        // or the public web roots): `require`, `verify-ca` and `verify-full` all do, stricter
        // than libpq's `require`. `prefer` uses TLS when the server offers it.
        let mode = match mode.as_deref() {
            None | Some("disable") => SslMode::Disable,
            Some("allow") | Some("prefer") => SslMode::Prefer,
            Some("require") | Some("verify-ca") | Some("verify-full") => SslMode::Require,
            Some(other) => return Err(bad_url(format!("unknown sslmode {other:?}"))),
        };
        config.ssl_mode(mode);
        config.connect_timeout(s.connect_timeout);
        let timeout = format!(
            "-c statement_timeout={} -c client_min_messages=warning",
            s.statement_timeout.as_millis()
        );
        let options = match config.get_options() {
            Some(o) if !o.is_empty() => format!("{o} {timeout}"),
            _ => timeout,
        };
        config.options(&options);
        if config.get_application_name().is_none() {
            config.application_name("idpool");
        }
        let tls = MakeRustlsConnect::new(tls_config(root.as_deref())?);
        Ok(Manager { config, tls })
    }

    /// `postgres://host:port/db`, for logs: no user, no password.
    pub fn location(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().unwrap_or("");
        format!("postgres://{host}:{port}/{db}")
    }

    pub fn connect_now(&self) -> Result<PgConn, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("a runtime for the connection: {e}")))?;
        let (client, connection) = rt
            .block_on(self.config.connect(self.tls.clone()))
            .map_err(super::tx::db_error)?;
        let io = rt.spawn(async move {
            // Its error (the server went away) shows on the client's next request.
            let _ = connection.await;
        });
        Ok(PgConn {
            rt,
            client: Some(client),
            io,
            statements: Default::default(),
            last_used: Instant::now(),
        })
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = StoreError;

    fn connect(&self) -> Result<PgConn, StoreError> {
        self.connect_now()
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), StoreError> {
        conn.ping()
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_come_off_the_url() {
        assert_eq!(
            split_tls(
                "postgres://u@h:5432/db?sslmode=verify-full&sslrootcert=/ca.pem&options=-c%20x"
            ),
            (
                "postgres://u@h:5432/db?options=-c%20x".to_string(),
                Some("verify-full".to_string()),
                Some("/ca.pem".to_string())
            )
        );
        assert_eq!(
            split_tls("postgres://h/db"),
            ("postgres://h/db".to_string(), None, None)
        );
        assert_eq!(
            split_tls("postgres://h/db?sslmode=disable"),
            (
                "postgres://h/db".to_string(),
                Some("disable".to_string()),
                None
            )
        );
    }

    #[test]
    fn the_location_names_no_credentials() {
        let m = Manager::new(&Settings {
            url: "postgres://alice:s3cret@db.example:6543/ids".into(),
            pool_size: 1,
            statement_timeout: std::time::Duration::from_secs(1),
            connect_timeout: std::time::Duration::from_secs(1),
            start_timeout: std::time::Duration::from_secs(1),
            give_up: std::time::Duration::from_secs(60),
        })
        .unwrap();
        assert_eq!(m.location(), "postgres://db.example:6543/ids");
    }
}
