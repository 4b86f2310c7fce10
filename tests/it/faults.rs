//! Faults of the database under a running server: another process holding the write lock
//! past the busy timeout (PostgreSQL: the statement timeout) makes the writes of that moment fail fast and AWS-shaped, the server
//! recovers by itself once the lock is released, and a writer that can never commit makes the
//! binary exit non-zero (so a supervisor restarts it) instead of answering 500s forever.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;

fn guest_get_id(pool: &str) -> String {
    format!(r#"{{"IdentityPoolId":"{pool}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_fails_writes_fast_and_the_server_recovers_when_it_is_released() {
    let ts = TestServer::start_with(|c| {
        c.database.busy_timeout_ms = 100;
        c.database.statement_timeout_ms = 500;
    })
    .await;
    let pool = create_pool(&ts.client(), "faults").await;
    let body = guest_get_id(&pool);
    assert_eq!(ts.call("GetId", &body).await.status, 200);

    let lock = db::hold_write_lock(&ts.config);
    for _ in 0..3 {
        let r = ts.call("GetId", &body).await;
        r.assert_error(500, "InternalErrorException");
        assert!(
            !r.message().to_lowercase().contains("sqlite")
                && !r.message().to_lowercase().contains("lock"),
            "no database detail reaches the client: {}",
            r.message()
        );
    }
    let before = ts.count("SELECT count(*) FROM identities");
    drop(lock);

    let r = ts.call("GetId", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        ts.count("SELECT count(*) FROM identities"),
        before + 1,
        "writes work again once the lock is gone"
    );
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_can_never_commit_makes_the_binary_exit_non_zero_and_say_why_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = base_config(&dir);
    let config = dir.path().join("idpool.toml");
    std::fs::write(
        &config,
        format!(
            "{}busy_timeout_ms = 50\nstatement_timeout_ms = 200\ngive_up_after_secs = 1\n\
             [admin]\nallow_unsigned = true\n",
            database_toml(&db)
        ),
    )
    .unwrap();
    let mut server = Spawned::start(&config).await;
    let r = server
        .call(
            "CreateIdentityPool",
            r#"{"IdentityPoolName":"f","AllowUnauthenticatedIdentities":true}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let pool = r.json()["IdentityPoolId"].as_str().unwrap().to_string();

    let _lock = db::hold_write_lock(&db);
    let mut exit = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Some(s) = server.child.try_wait().unwrap() {
            exit = Some(s);
            break;
        }
        // While it still answers, every answer is an AWS-shaped 500, never a hang.
        if let Some(r) = server.try_call("GetId", &guest_get_id(&pool)).await {
            r.assert_error(500, "InternalErrorException");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exit = match exit {
        Some(e) => e,
        None => {
            let _ = server.child.kill();
            panic!("idpool kept serving with a writer that cannot commit");
        }
    };
    assert_eq!(exit.code(), Some(1));
    let log = server.log();
    assert_eq!(
        log.matches("database writes are failing").count(),
        1,
        "the cause is logged once for the whole run of failures:\n{log}"
    );
    assert!(log.contains("cannot go on"), "{log}");
}

/// PostgreSQL: a request waits for a free connection in turn, but no longer than
/// `connect_timeout_ms`: with the only connection held by a write stuck on a lock, the next
/// request gets InternalErrorException instead of waiting without bound, and both the stuck
/// write and later requests succeed once the lock is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_a_database_connection_no_longer_than_the_connect_timeout() {
    if test_database_url().is_none() {
        eprintln!("skipped on SQLite: a PostgreSQL replica's connection pool");
        return;
    }
    let ts = Arc::new(
        TestServer::start_with(|c| {
            c.database.pool_size = 1;
            c.database.connect_timeout_ms = 300;
            c.database.statement_timeout_ms = 20_000;
        })
        .await,
    );
    let pool = create_pool(&ts.client(), "slots").await;
    let body = guest_get_id(&pool);
    assert_eq!(ts.call("GetId", &body).await.status, 200);
    let before = ts.count("SELECT count(*) FROM identities");

    let lock = db::hold_write_lock(&ts.config);
    let stuck = {
        let (ts, body) = (ts.clone(), body.clone());
        tokio::spawn(async move { ts.call("GetId", &body).await })
    };
    // The stuck write holds the one connection until the lock goes; wait until it is waiting.
    while ts.count(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'identities'::regclass",
    ) == 0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = ts.call("GetId", &body).await;
    r.assert_error(500, "InternalErrorException");
    assert!(
        !r.message().to_lowercase().contains("connection"),
        "no database detail reaches the client: {}",
        r.message()
    );
    drop(lock);

    let r = stuck.await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ts.call("GetId", &body).await.status, 200);
    assert_eq!(ts.count("SELECT count(*) FROM identities"), before + 2);
}

/// PostgreSQL: a failed step aborts the whole transaction there, and COMMIT would then roll it
/// back without an error. A write whose steps went on past a failure (here, one that ignores
/// it) must not be reported as committed: the store answers an error, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_went_on_past_a_failed_step_is_not_reported_committed() {
    if test_database_url().is_none() {
        eprintln!("skipped on SQLite: a failed statement there undoes only itself");
        return;
    }
    let ts = TestServer::start().await;
    let pool = create_pool(&ts.client(), "aborted").await;
    let r = ts.call("GetId", &guest_get_id(&pool)).await;
    assert_eq!(r.status, 200);
    let taken = r.json()["IdentityId"].as_str().unwrap().to_string();
    let before = ts.count("SELECT count(*) FROM identities");

    let fresh = format!("{}:0190a000-0000-7000-8000-000000000001", "us-east-1");
    let out = {
        let (pool, taken, fresh) = (pool.clone(), taken.clone(), fresh.clone());
        ts.app()
            .store
            .write(move |tx| {
                let now = idpool::times::now();
                tx.insert_identity(&fresh, &pool, now)?;
                // Its id is taken: this insert fails (where it is sent, with the next step).
                tx.insert_identity(&taken, &pool, now)?;
                let _ignored = tx.pool_exists(&pool);
                Ok::<_, idpool::store::StoreError>(())
            })
            .await
    };
    assert!(out.is_err(), "reported committed: {out:?}");
    assert_eq!(ts.count("SELECT count(*) FROM identities"), before);
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM identities WHERE id = '{fresh}'"
        )),
        0
    );
}
