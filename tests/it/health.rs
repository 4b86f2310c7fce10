//! `GET /health` and `GET /ready` on the real server, and `idpool health` against it: ready
//! only while the database reads and commits; never confused with the AWS API (`POST /`).

use std::process::Command;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_ready_answer_json_and_ready_follows_the_database() {
    let ts = TestServer::start_with(|c| {
        c.database.busy_timeout_ms = 100;
        c.database.statement_timeout_ms = 500;
    })
    .await;
    let h = ts.raw_get("/health").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-type"), Some("application/json"));
    assert_eq!(h.json()["status"], "ok");

    let r = ts.raw_get("/ready").await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["status"], "ready");
    for check in ["database_read", "database_write", "signing_keys"] {
        assert_eq!(r.json()["checks"][check], "ok", "{check}");
    }

    // Another process holds the write lock: reads still work, writes do not, so not ready.
    let lock = db::hold_write_lock(&ts.config);
    let r = ts.raw_get("/ready").await;
    assert_eq!(r.status, 503, "{:?}", r.json());
    assert_eq!(r.json()["status"], "not ready");
    assert_eq!(r.json()["checks"]["database_write"], "failing");
    assert_eq!(r.json()["checks"]["database_read"], "ok");
    let text = String::from_utf8_lossy(&r.body).to_lowercase();
    assert!(!text.contains("sqlite") && !text.contains("lock"), "{text}");
    // Liveness is not readiness: the process still answers.
    assert_eq!(ts.raw_get("/health").await.status, 200);
    drop(lock);
    assert_eq!(ts.raw_get("/ready").await.status, 200);
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_paths_are_not_part_of_the_aws_api() {
    let ts = TestServer::start().await;
    // POST to them is the API's business: an AWS-shaped refusal, not a health answer.
    let r = ts.raw("POST", &[], b"{}").await;
    r.assert_error(400, "UnknownOperationException");
    let r = ts
        .raw_bytes(
            b"POST /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
              X-Amz-Target: AWSCognitoIdentityService.ListIdentityPools\r\n\
              Content-Length: 2\r\n\r\n{}",
        )
        .await;
    r.assert_error(400, "UnknownOperationException");
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idpool_health_exits_0_when_ready_and_1_when_nothing_answers() {
    let ts = TestServer::start().await;
    let bin = env!("CARGO_BIN_EXE_idpool");
    let url = format!("{}/ready", ts.url);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin).args(["health", "--url", &url]).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"ready\""));

    let gone = format!("{}/ready", ts.url);
    ts.stop().await;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin).args(["health", "--url", &gone]).output()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
