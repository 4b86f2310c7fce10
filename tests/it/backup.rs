//! `idpool backup` on a live, busy server, and restore by starting on the copy: every GetId
//! answered before the backup began is answered the same by a server started on the backup.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_write_load_restores_every_acknowledged_identity() {
    if !sqlite_only("idpool backup copies a SQLite file") {
        return;
    }
    let ts = TestServer::start().await;
    let pool = create_pool(&ts.client(), "backup").await;
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let client = ts.client();
        let (pool, acked, stop) = (pool.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let user = format!("user-{w}-{i}");
                let id = get_id(&client, &pool, &[("accounts.google.com", &user)])
                    .await
                    .unwrap();
                acked.lock().unwrap().push((user, id));
                i += 1;
            }
        }));
    }
    // Let the load build up, then note what was acknowledged before the backup begins.
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before: Vec<(String, String)> = acked.lock().unwrap().clone();
    let to = ts.dir.path().join("copy.db");
    let (db, to2) = (ts.db_path(), to.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_idpool"))
            .arg("backup")
            .arg("--database")
            .arg(&db)
            .arg("--to")
            .arg(&to2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("identities"), "{said}");
    let total = acked.lock().unwrap().len();
    assert!(total > before.len(), "the server kept answering writes");

    // A second backup to the same name is refused, leaving the first intact.
    let (db, to2) = (ts.db_path(), to.clone());
    let again = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_idpool"))
            .arg("backup")
            .arg("--database")
            .arg(&db)
            .arg("--to")
            .arg(&to2)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let _live = ts.stop().await;

    // Restore: start on the copy.
    let restored = TestServer::start_with(|c| c.database.path = to.clone()).await;
    let client = restored.client();
    for (user, id) in &before {
        let got = get_id(&client, &pool, &[("accounts.google.com", user)])
            .await
            .unwrap();
        assert_eq!(&got, id, "{user} keeps their identity after a restore");
    }
    restored.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_keep_the_newest_few_and_each_is_a_whole_database() {
    if !sqlite_only("scheduled backups copy the SQLite file") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let b2 = backups.clone();
    let ts = TestServer::start_with(move |c| {
        c.backup.every = Some(std::time::Duration::from_secs(1));
        c.backup.keep = 2;
        c.backup.dir = Some(b2);
    })
    .await;
    let pool = create_pool(&ts.client(), "scheduled").await;
    let alice = get_id(&ts.client(), &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    // Wait (bounded) until the first backup seen has been pruned by later ones.
    let mut first = None;
    let mut pruned = false;
    for _ in 0..200 {
        let files = idpool::store::backup::scheduled_files(&backups);
        assert!(files.len() <= 3, "old backups are removed: {files:?}");
        match &first {
            None => first = files.first().cloned(),
            Some(f) if files.len() == 2 && !files.contains(f) => {
                pruned = true;
                break;
            }
            Some(_) => {}
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(pruned, "a third backup replaced the first");
    ts.stop().await;
    let newest = idpool::store::backup::scheduled_files(&backups)
        .pop()
        .unwrap();
    let restored = TestServer::start_with(|c| c.database.path = newest).await;
    assert_eq!(
        get_id(
            &restored.client(),
            &pool,
            &[("accounts.google.com", "alice")]
        )
        .await
        .unwrap(),
        alice
    );
    restored.stop().await;
}
