//! The real `idpool` binary: starts on `--listen 127.0.0.1:0`, says where, serves, stops
//! cleanly on SIGTERM; a broken config file is a one-line error and exit code 2.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

const BIN: &str = env!("CARGO_BIN_EXE_idpool");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_its_address_serves_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sub").join("bin.db");
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--database"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");
    assert!(db.exists(), "the database and its folder were created");

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

    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        None
    })
    .await
    .unwrap()
    .expect("idpool exits after SIGTERM");
    assert_eq!(exit.code(), Some(0));
    // A clean close leaves no write-ahead log behind.
    let wal = db.with_extension("db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
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
