//! The test harness: a real idpool server in-process on 127.0.0.1:0 with a temporary SQLite
//! file, the official AWS SDK for Rust pointed at it, and a raw HTTP client for protocol cases.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_cognitoidentity::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cognitoidentity::Client;
use idpool::config::{AdminKey, Config, DefaultVerify, Secret};
use idpool::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const AKID: &str = "AKIDTESTADMIN";
pub const SECRET: &str = "test-admin-secret-key";
pub const OTHER_AKID: &str = "AKIDOTHERACCOUNT";
pub const OTHER_SECRET: &str = "other-account-secret";
pub const OTHER_ACCOUNT: &str = "222222222222";

/// A running server and the temporary folder holding its database.
pub struct TestServer {
    server: Option<Server>,
    pub dir: Arc<tempfile::TempDir>,
    pub config: Config,
    pub url: String,
}

/// The configuration tests start from: two admin keys of different accounts, and — set here,
/// not inherited from the built-in `reject` — `trust` for providers without a table of their
/// own, so tests can sign in with any user id.
pub fn base_config(dir: &tempfile::TempDir) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    c.providers.default = DefaultVerify::Trust;
    c.database.path = dir.path().join("idpool.db");
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

    /// A read-only connection to the live database, as an admin at a sqlite3 prompt would have.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.db_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The SDK signing with the default account's admin key.
    pub fn client(&self) -> Client {
        self.client_with(AKID, SECRET)
    }

    /// The SDK signing with the given key.
    pub fn client_with(&self, akid: &str, secret: &str) -> Client {
        sdk_client(&self.url, akid, secret)
    }

    /// A raw HTTP request; the connection is closed after the response.
    pub async fn raw(&self, method: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        let mut req = format!(
            "{method} / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.url.trim_start_matches("http://"),
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.raw_bytes(&bytes).await
    }

    /// A GET of `path`; the connection is closed after the response.
    pub async fn raw_get(&self, path: &str) -> RawResponse {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.url.trim_start_matches("http://")
        );
        self.raw_bytes(req.as_bytes()).await
    }

    /// A JSON call of `op` the way the SDKs send it, unsigned.
    pub async fn call(&self, op: &str, body: &str) -> RawResponse {
        let target = format!("AWSCognitoIdentityService.{op}");
        self.raw(
            "POST",
            &[
                ("X-Amz-Target", target.as_str()),
                ("Content-Type", "application/x-amz-json-1.1"),
            ],
            body.as_bytes(),
        )
        .await
    }

    /// Sends exactly these bytes and reads the response until the server closes.
    pub async fn raw_bytes(&self, bytes: &[u8]) -> RawResponse {
        let addr = self.url.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        RawResponse::parse(&out)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A server not stopped by the test is dropped with the runtime; nothing to do.
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

/// A parsed HTTP response.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn parse(raw: &[u8]) -> RawResponse {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        if chunked {
            body = dechunk(&body);
        }
        RawResponse {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `__type` of an error response.
    pub fn error_type(&self) -> String {
        self.json()["__type"].as_str().unwrap_or("").to_string()
    }

    pub fn message(&self) -> String {
        self.json()["message"].as_str().unwrap_or("").to_string()
    }

    /// Asserts an AWS-shaped error: status, `__type`, headers matching the body.
    pub fn assert_error(&self, status: u16, type_name: &str) {
        assert_eq!(
            self.status,
            status,
            "status of {:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.error_type(), type_name, "{:?}", self.json());
        let expected_header = format!("{type_name}:");
        assert_eq!(
            self.header("x-amzn-errortype"),
            Some(expected_header.as_str())
        );
        assert!(self.header("x-amzn-requestid").is_some());
        assert_eq!(
            self.header("content-type"),
            Some("application/x-amz-json-1.1")
        );
        let keys: Vec<String> = self.json().as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec!["__type".to_string(), "message".to_string()]);
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
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

/// The error code and message of an SDK error.
pub fn code(e: &aws_sdk_cognitoidentity::Error) -> (String, String) {
    use aws_sdk_cognitoidentity::error::ProvideErrorMetadata;
    (
        e.code().unwrap_or("").to_string(),
        e.message().unwrap_or("").to_string(),
    )
}

/// The real `idpool` binary, started with a config file, its log read as it comes (so a full
/// pipe never blocks it).
pub struct Spawned {
    pub child: std::process::Child,
    pub url: String,
    log: Option<std::thread::JoinHandle<String>>,
}

impl Spawned {
    /// Starts `idpool --config <config> --listen 127.0.0.1:0` and waits for its address.
    pub async fn start(config: &std::path::Path) -> Spawned {
        use std::io::{BufRead, Read};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_idpool"))
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap();
            line
        })
        .await
        .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Spawned {
            child,
            url,
            log: Some(log),
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }

    /// Everything it logged, once it has exited.
    pub fn log(&mut self) -> String {
        self.log
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }
}
