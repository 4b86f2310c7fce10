//! The real `idpool` binary: starts on `--listen 127.0.0.1:0`, says where, serves, stops
//! cleanly on SIGTERM; a broken config file is a one-line error and exit code 2.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_idpool");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_its_address_serves_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(&dir);
    let db = dir.path().join("sub").join("bin.db");
    config.database.path = db.clone();
    let on_sqlite = config.database.url.is_none();
    let mut args: Vec<std::ffi::OsString> = vec!["--listen".into(), "127.0.0.1:0".into()];
    args.extend(database_args(&config));
    let mut server = Spawned::with_args(args).await;
    assert!(
        server.url.starts_with("http://"),
        "unexpected first line: listening on {}",
        server.url
    );
    let addr = server.host().to_string();
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");
    if on_sqlite {
        assert!(db.exists(), "the database and its folder were created");
    }

    // It answers: an unsigned admin call is refused (no keys configured), AWS-shaped.
    let ts_like = sdk_client(&format!("http://{addr}"), "AKIDNOPE", "nope");
    let err = ts_like
        .list_identity_pools()
        .max_results(5)
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(code(&err).0, "UnrecognizedClientException");

    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            if let Some(s) = server.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        server.kill();
        None
    })
    .await
    .unwrap()
    .expect("idpool exits after SIGTERM");
    assert_eq!(exit.code(), Some(0));
    if on_sqlite {
        // A clean close leaves no write-ahead log behind.
        let wal = db.with_extension("db-wal");
        assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    }
}

#[test]
fn a_broken_config_file_is_a_one_line_error_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "region = \"us-east-1\"\n[database]\nsynchronus = \"full\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("broken.toml"), "{err}");
    assert!(lines[0].contains("line 3"), "{err}");
    assert!(lines[0].contains("database.synchronus"), "{err}");
}

#[test]
fn the_example_config_starts_as_documented() {
    let text = include_str!("../../config.example.toml");
    let c = idpool::Config::parse(text, "config.example.toml").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:4666");
    assert_eq!(c.admin.keys.len(), 1);
}

/// Starts the binary on `config` alone (its own `listen`).
async fn spawn(config: &std::path::Path) -> Spawned {
    Spawned::with_args(["--config".as_ref(), config.as_os_str()]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_identity_survives_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = base_config(&dir);
    let config = dir.path().join("crash.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n{}[admin]\nallow_unsigned = true\n[providers]\ndefault = \"trust\"\n",
            database_toml(&db)
        ),
    )
    .unwrap();
    let mut server = spawn(&config).await;
    let c = sdk_client(&server.url, "any", "any");
    let pool = create_pool(&c, "crash").await;
    // Eight clients create identities as fast as they can; the process is killed under them
    // once a hundred have been answered.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let c = c.clone();
        let pool = pool.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for i in 0..10_000 {
                let user = format!("user{t}-{i}");
                match get_id(&c, &pool, &[("accounts.google.com", user.as_str())]).await {
                    Ok(id) => {
                        answered.push((user, id));
                        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(_) => break,
                }
            }
            answered
        }));
    }
    for _ in 0..30_000 {
        if done.load(std::sync::atomic::Ordering::SeqCst) >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        done.load(std::sync::atomic::Ordering::SeqCst) >= 100,
        "the server never answered"
    );
    server.child.kill().unwrap();
    let mut answered = Vec::new();
    for t in tasks {
        answered.extend(t.await.unwrap());
    }
    let _ = server.child.wait();
    assert!(!answered.is_empty());

    // Every identity a client was given is there after the restart, with its login.
    let mut server = spawn(&config).await;
    let c = sdk_client(&server.url, "any", "any");
    for (user, id) in &answered {
        let again = get_id(&c, &pool, &[("accounts.google.com", user.as_str())])
            .await
            .unwrap();
        assert_eq!(&again, id, "{user} lost its identity in the crash");
    }
    server.kill();
}
