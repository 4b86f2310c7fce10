//! Safe by default: an unlisted login provider is refused unless the configuration says
//! otherwise, and settings that are safe on loopback only (the published development key,
//! `trust`, `allow_unsigned`) stop the server from starting on any other address unless
//! `[security] allow_insecure_public` acknowledges them. The refusal is one line naming the keys.

use std::process::{Command, Stdio};
use std::time::Duration;

use idpool::config::{ProviderConfig, ProvidersConfig, VerifyMode};
use idpool::{Config, Server};

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_idpool");
const EXAMPLE: &str = include_str!("../../config.example.toml");
const DEV_AKID: &str = "AKIDIDPOOLLOCALDEV";
const DEV_SECRET: &str = "idpool-local-development-secret-do-not-use-in-production";

/// `config.example.toml` with `listen` and the database replaced by the test's own.
fn example(listen: &str, db: &Config) -> String {
    let text = EXAMPLE
        .replace(
            "listen = \"127.0.0.1:4666\"",
            &format!("listen = \"{listen}\""),
        )
        .replace("path = \"data/idpool.db\"", &database_key(db));
    assert!(text.contains(&format!("listen = \"{listen}\"")));
    assert!(!text.contains("path = \"data/idpool.db\""));
    text
}

/// Why a server on this configuration does not start.
async fn start_error(text: &str) -> String {
    let config = Config::parse(text, "test.toml").unwrap();
    match Server::start(config).await {
        Ok(s) => {
            let addr = s.local_addr();
            s.stop().await;
            panic!("the server started on {addr}");
        }
        Err(e) => e.to_string(),
    }
}

/// A child process killed when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_without_its_own_table_is_refused_by_the_built_in_default() {
    assert_eq!(
        Config::parse("", "empty.toml").unwrap().providers.default,
        ProvidersConfig::default().default
    );
    let ts = TestServer::start_with(|c| {
        c.providers = ProvidersConfig::default();
        c.providers.named.insert(
            "accounts.google.com".into(),
            ProviderConfig {
                verify: VerifyMode::Trust,
                jwks: None,
                audiences: vec![],
                url: None,
            },
        );
    })
    .await;
    let c = ts.client();
    let pool = create_pool(&c, "defaults").await;

    // Facebook is configured on the pool but has no table of its own: refused, nothing created.
    let err = get_id(&c, &pool, &[("graph.facebook.com", "mallory")])
        .await
        .unwrap_err();
    assert_eq!(
        code(&err),
        (
            "NotAuthorizedException".to_string(),
            "Token is not from a supported provider of this identity pool.".to_string()
        )
    );
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 0);

    // A provider the configuration names is used as configured.
    get_id(&c, &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_config_on_a_public_address_is_refused_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let db = base_config(&dir);
    let text = example("0.0.0.0:0", &db);
    let err = start_error(&text).await;
    assert!(!err.contains('\n'), "{err}");
    assert!(err.contains("listen = \"0.0.0.0:0\""), "{err}");
    assert!(
        err.contains(&format!("[[admin.keys]] access_key_id = \"{DEV_AKID}\"")),
        "{err}"
    );
    assert!(err.contains("[providers] default = \"trust\""), "{err}");
    assert!(
        err.contains("[security] allow_insecure_public = true"),
        "{err}"
    );
    assert!(
        !err.contains(DEV_SECRET),
        "the secret is never printed: {err}"
    );
    assert!(!db::exists(&db), "nothing was opened");

    // The acknowledgement starts it anyway.
    let acknowledged = text.replace(
        "allow_insecure_public = false",
        "allow_insecure_public = true",
    );
    assert_ne!(acknowledged, text);
    let server = Server::start(Config::parse(&acknowledged, "test.toml").unwrap())
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", server.local_addr().port());
    let c = sdk_client(&url, DEV_AKID, DEV_SECRET);
    let pool = create_pool(&c, "acknowledged").await;
    get_id(&c, &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    server.stop().await;

    // So does fixing what the refusal named: a key of one's own, and `reject`.
    let fixed = text
        .replace(DEV_AKID, "AKIDPRODUCTION")
        .replace(DEV_SECRET, "a-secret-nobody-else-knows")
        .replace("default = \"trust\"", "default = \"reject\"");
    let server = Server::start(Config::parse(&fixed, "test.toml").unwrap())
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_loopback_only_setting_is_named_when_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = database_toml(&base_config(&dir));
    let public = |extra: &str| format!("listen = \"[::]:0\"\n{extra}\n{db}");

    let err = start_error(&public("[admin]\nallow_unsigned = true")).await;
    assert!(err.contains("[admin] allow_unsigned = true"), "{err}");
    assert!(err.contains("allow_insecure_public"), "{err}");

    let err = start_error(&public(
        "[providers.\"login.example.com\"]\nverify = \"trust\"",
    ))
    .await;
    assert!(
        err.contains("[providers.\"login.example.com\"] verify = \"trust\""),
        "{err}"
    );

    // The published secret under another id is still the published key.
    let err = start_error(&public(&format!(
        "[[admin.keys]]\naccess_key_id = \"AKIDMINE\"\nsecret_access_key = \"{DEV_SECRET}\""
    )))
    .await;
    assert!(err.contains("access_key_id = \"AKIDMINE\""), "{err}");
    assert!(!err.contains(DEV_SECRET), "{err}");
}

/// Runs the binary until it exits (at most 20 s: a server that starts is killed and reported).
fn run_to_exit(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = Running(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    for _ in 0..200 {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("idpool started instead of refusing");
}

#[test]
fn the_binary_refuses_a_public_listen_with_the_example_config_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = base_config(&dir);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, example("127.0.0.1:0", &db)).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&config)
        .args(["--listen", "0.0.0.0:0"])
        .env("RUST_LOG", "info");
    let (code, err) = run_to_exit(cmd);
    assert_eq!(code, Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("idpool: config error: "), "{err}");
    assert!(lines[0].contains("listen = \"0.0.0.0:0\""), "{err}");
    assert!(lines[0].contains(DEV_AKID), "{err}");
    assert!(
        lines[0].contains("[providers] default = \"trust\""),
        "{err}"
    );
    assert!(
        lines[0].contains("[security] allow_insecure_public = true"),
        "{err}"
    );
    assert!(!db::exists(&db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_config_still_runs_the_quick_start_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let db = base_config(&dir);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, example("127.0.0.1:0", &db)).unwrap();
    // The example's own `listen`, not one given on the command line.
    let child = Spawned::with_args(["--config".as_ref(), config.as_os_str()]).await;
    let url = child.url.as_str();
    // The README's flow: the development key creates a pool, any user id signs in (trust).
    let c = sdk_client(url, DEV_AKID, DEV_SECRET);
    let pool = create_pool(&c, "quick-start").await;
    get_id(&c, &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    drop(child);
}
