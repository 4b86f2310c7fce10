//! Several idpool replicas on one PostgreSQL database, as behind a load balancer: they agree
//! as one server would. Skipped (and said so) when `IDPOOL_TEST_DATABASE_URL` is not set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, get_id, TestServer};

/// The shared database of a test's replicas: its own schema, or `None` (skip) without PostgreSQL.
fn shared_database() -> Option<String> {
    let url = common::test_database_url();
    if url.is_none() {
        eprintln!("skipped: no PostgreSQL (set IDPOOL_TEST_DATABASE_URL to run the replica tests)");
    }
    url.map(|u| common::fresh_schema_url(&u))
}

async fn replica(url: &str) -> TestServer {
    let url = url.to_string();
    TestServer::start_with(move |c| {
        c.admin.allow_unsigned = true;
        c.database.url = Some(idpool::config::Secret::new(url));
        // Replicas share one issuer: the address clients reach them by.
        c.tokens.issuer = Some("https://ids.example.test".into());
    })
    .await
}

async fn replicas(url: &str, n: usize) -> Vec<TestServer> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(replica(url).await);
    }
    out
}

async fn create_pool(ts: &TestServer) -> String {
    let r = ts
        .call(
            "CreateIdentityPool",
            &json!({"IdentityPoolName": "replicas", "AllowUnauthenticatedIdentities": true,
                    "SupportedLoginProviders": {"accounts.google.com": "g",
                                                "graph.facebook.com": "f",
                                                "www.amazon.com": "a"}})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()["IdentityPoolId"].as_str().unwrap().to_string()
}

async fn identities(ts: &TestServer, pool: &str) -> Vec<String> {
    let r = ts
        .call(
            "ListIdentities",
            &json!({"IdentityPoolId": pool, "MaxResults": 60, "HideDisabled": true}).to_string(),
        )
        .await;
    r.json()["Identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["IdentityId"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn sixty_four_getids_for_one_new_login_across_three_replicas_make_one_identity() {
    let Some(url) = shared_database() else { return };
    let rs = Arc::new(replicas(&url, 3).await);
    let pool = create_pool(&rs[0]).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (rs, pool) = (rs.clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            let client = rs[i % 3].client();
            get_id(&client, &pool, &[("accounts.google.com", "everyone")]).await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap().expect("every GetId succeeds"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(identities(&rs[1], &pool).await, ids);
}

#[tokio::test]
async fn many_new_logins_and_guests_at_once_across_two_replicas_each_get_one_identity() {
    // New identities only add rows: many at once, on one index page, must neither fail each
    // other nor share an identity.
    let Some(url) = shared_database() else { return };
    let rs = Arc::new(replicas(&url, 2).await);
    let pool = create_pool(&rs[0]).await;
    let mut tasks = Vec::new();
    for i in 0..192 {
        let (rs, pool) = (rs.clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            let client = rs[i % 2].client();
            if i % 4 == 3 {
                (None, get_id(&client, &pool, &[]).await)
            } else {
                let user = format!("user-{i:04}");
                let id = get_id(&client, &pool, &[("accounts.google.com", &user)]).await;
                (Some(user), id)
            }
        }));
    }
    let mut by_user = BTreeMap::new();
    let mut all = std::collections::BTreeSet::new();
    for t in tasks {
        let (user, id) = t.await.unwrap();
        let id = id.expect("every GetId succeeds");
        assert!(all.insert(id.clone()), "{id} answered twice");
        if let Some(user) = user {
            by_user.insert(user, id);
        }
    }
    assert_eq!(all.len(), 192);
    // Each login stays with the identity it got, on the other replica too.
    for (i, (user, id)) in by_user.iter().enumerate() {
        let other = rs[(i + 1) % 2].client();
        let again = get_id(&other, &pool, &[("accounts.google.com", user)]).await;
        assert_eq!(&again.expect("GetId again succeeds"), id, "{user}");
    }
}

#[tokio::test]
async fn racing_getids_over_overlapping_logins_agree_with_the_final_state() {
    let Some(url) = shared_database() else { return };
    let rs = Arc::new(replicas(&url, 3).await);
    let pool = create_pool(&rs[0]).await;
    let providers = [
        "accounts.google.com",
        "graph.facebook.com",
        "www.amazon.com",
    ];
    // Users 0..8 of each provider; each request presents two or three of them, overlapping.
    let mut tasks = Vec::new();
    for i in 0..96usize {
        let (rs, pool) = (rs.clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            let mut logins: Vec<(&str, String)> = vec![
                (providers[i % 3], format!("u{}", i % 8)),
                (providers[(i + 1) % 3], format!("u{}", (i / 3) % 8)),
            ];
            if i % 4 == 0 {
                logins.push((providers[(i + 2) % 3], format!("u{}", (i / 5) % 8)));
            }
            let pairs: Vec<(&str, &str)> = logins.iter().map(|(p, s)| (*p, s.as_str())).collect();
            let out = get_id(&rs[i % 3].client(), &pool, &pairs).await;
            (logins, out)
        }));
    }
    let mut answered: Vec<(Vec<(&str, String)>, String)> = Vec::new();
    for t in tasks {
        let (logins, out) = t.await.unwrap();
        match out {
            Ok(id) => answered.push((logins, id)),
            Err(e) => {
                let (code, _) = common::code(&e);
                assert_eq!(code, "ResourceConflictException", "{e:?}");
            }
        }
    }
    assert!(!answered.is_empty());
    // The final owner of every login, asked of one replica.
    let mut owner: HashMap<(String, String), String> = HashMap::new();
    for (logins, _) in &answered {
        for (p, s) in logins {
            let key = (p.to_string(), s.clone());
            if let std::collections::hash_map::Entry::Vacant(e) = owner.entry(key) {
                let id = get_id(&rs[2].client(), &pool, &[(p, s.as_str())])
                    .await
                    .unwrap();
                e.insert(id);
            }
        }
    }
    for (logins, id) in &answered {
        for (p, s) in logins {
            assert_eq!(&owner[&(p.to_string(), s.clone())], id, "{logins:?}");
        }
    }
}

#[tokio::test]
async fn a_merge_through_one_replica_is_seen_by_getid_on_another_within_a_second() {
    let Some(url) = shared_database() else { return };
    let rs = replicas(&url, 2).await;
    let pool = create_pool(&rs[0]).await;
    let (a, b) = (&rs[0], &rs[1]);
    let bob = [("graph.facebook.com", "bob")];
    let y = get_id(&b.client(), &pool, &bob).await.unwrap();
    // Asked again on B: B now holds bob → Y in its cache.
    assert_eq!(get_id(&b.client(), &pool, &bob).await.unwrap(), y);
    let x = get_id(&a.client(), &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    // Through A: presenting bob's and alice's logins for Y merges Y into X.
    let r = a
        .call(
            "GetOpenIdToken",
            &json!({"IdentityId": y,
                    "Logins": {"graph.facebook.com": "bob", "accounts.google.com": "alice"}})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["IdentityId"], json!(x));
    // The documented bound: after one second, no replica answers from the old mapping.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(get_id(&b.client(), &pool, &bob).await.unwrap(), x);
}

#[tokio::test]
async fn a_key_rotation_on_one_replica_is_seen_by_all() {
    let Some(url) = shared_database() else { return };
    let rs = replicas(&url, 2).await;
    let pool = create_pool(&rs[0]).await;
    let (a, b) = (&rs[0], &rs[1]);
    let old = b.app().tokens.current_kid();
    assert_eq!(a.app().tokens.current_kid(), old, "one key for both");
    let store = a.app().store.clone();
    let rotation = tokio::task::spawn_blocking(move || idpool::tokens::Tokens::rotate(&store))
        .await
        .unwrap()
        .unwrap();
    assert!(a.app().tokens.refresh().await.unwrap());
    // A token A signs with the new key verifies on B, which has not loaded it yet.
    let id = get_id(&a.client(), &pool, &[]).await.unwrap();
    let r = a
        .call("GetOpenIdToken", &json!({ "IdentityId": id }).to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let token = r.json()["Token"].as_str().unwrap().to_string();
    let claims = b.app().tokens.verify(&token).await.unwrap();
    assert_eq!(claims["sub"], json!(id));
    assert_eq!(b.app().tokens.current_kid(), rotation.kid);
    // And B, renewing that token, signs with the new key too.
    let r = b
        .call(
            "GetOpenIdToken",
            &json!({"IdentityId": id, "Logins": {"cognito-identity.amazonaws.com": token}})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let renewed = r.json()["Token"].as_str().unwrap().to_string();
    assert_eq!(kid_of(&renewed), rotation.kid);
    assert_ne!(old, rotation.kid);
}

/// The `kid` in a token's header.
fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_string()
}

/// A config file for a spawned replica on `url`.
fn replica_config(dir: &tempfile::TempDir, url: &str) -> std::path::PathBuf {
    let path = dir.path().join("replica.toml");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = {url:?}\n[tokens]\nissuer = \"https://ids.example.test\"\n[admin]\nallow_unsigned = true\n[providers]\ndefault = \"trust\"\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn a_replica_killed_under_write_load_loses_no_acknowledged_write() {
    let Some(url) = shared_database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let survivor = replica(&url).await;
    let pool = create_pool(&survivor).await;
    let mut doomed = common::Spawned::start(&replica_config(&dir, &url)).await;
    let doomed_url = doomed.url.clone();

    // Writers on the doomed replica: new logins, each acknowledged id remembered.
    let acked: Arc<std::sync::Mutex<BTreeMap<String, String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..8 {
        let (acked, pool, url) = (acked.clone(), pool.clone(), doomed_url.clone());
        writers.push(tokio::spawn(async move {
            let client = common::sdk_client(&url, common::AKID, common::SECRET);
            for n in 0.. {
                let user = format!("w{w}-{n}");
                match get_id(&client, &pool, &[("accounts.google.com", &user)]).await {
                    Ok(id) => {
                        acked.lock().unwrap().insert(user, id);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Let writes flow, then SIGKILL the replica in the middle of them.
    while acked.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 200);
    // The survivor kept answering, and knows every acknowledged identity.
    let client = survivor.client();
    for (user, id) in &acked {
        let again = get_id(&client, &pool, &[("accounts.google.com", user)])
            .await
            .unwrap();
        assert_eq!(&again, id, "{user}");
    }
    let r = survivor
        .call(
            "DescribeIdentityPool",
            &json!({ "IdentityPoolId": pool }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    let _: Value = r.json();
}

/// A PostgreSQL given for the suite must answer (a wrong URL fails here, plainly); without one,
/// `cargo test`'s own output says that the PostgreSQL half was skipped and how to run it.
#[test]
fn a_given_postgresql_answers_and_a_missing_one_is_announced() {
    match common::test_database_url() {
        Some(url) => {
            let answer = std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls)
                    .unwrap_or_else(|e| panic!("IDPOOL_TEST_DATABASE_URL does not connect: {e}"));
                c.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0)
            })
            .join()
            .unwrap();
            assert_eq!(answer, 1);
        }
        None => {
            use std::io::Write;
            // Written past the test harness's capture, so it shows without --nocapture.
            let _ = writeln!(
                std::io::stderr(),
                "\nNOTE: the PostgreSQL half of the suite was skipped. To run it, point it at a \
                 PostgreSQL server: IDPOOL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/idpool_test cargo test\n"
            );
        }
    }
}

/// Runs one statement on the test's schema (through `url`), off the async thread.
fn sql(url: &str, statement: &str) -> i64 {
    let (url, statement) = (url.to_string(), statement.to_string());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query_opt(&statement, &[])
            .unwrap()
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0)
    })
    .join()
    .unwrap()
}

#[tokio::test]
async fn replicas_starting_at_once_apply_each_migration_once_and_a_newer_database_is_refused() {
    let Some(url) = shared_database() else { return };
    let (a, b, c) = tokio::join!(replica(&url), replica(&url), replica(&url));
    assert_eq!(sql(&url, "SELECT count(*) FROM schema_migrations"), 1);
    assert_eq!(
        sql(&url, "SELECT count(*) FROM signing_keys"),
        1,
        "one first key"
    );
    for r in [a, b, c] {
        r.stop().await;
    }
    sql(
        &url,
        "INSERT INTO schema_migrations (version, name) VALUES (99, 'from a newer idpool')",
    );
    let mut config = common::base_config(&tempfile::tempdir().unwrap());
    config.database.url = Some(idpool::config::Secret::new(url));
    config.database.start_timeout_secs = 1;
    let err = idpool::Server::start(config).await.err().expect("refused");
    assert!(err.to_string().contains("newer than this idpool"), "{err}");
}

/// The database server drops every connection of a replica (a restart, a failover, a proxy's
/// idle timeout): the requests after it still succeed, because a connection that sat unused
/// is checked before a request gets it, and a closed one is replaced.
#[tokio::test]
async fn connections_the_database_dropped_cost_no_request_an_error() {
    let Some(url) = shared_database() else { return };
    let app = format!("idpool-{}", uuid::Uuid::new_v4().simple());
    let ts = Arc::new(replica(&format!("{url}&application_name={app}")).await);
    let pool = create_pool(&ts).await;
    // Many requests at once, so the replica holds many connections.
    let burst = |tag: &'static str| {
        let (ts, pool) = (ts.clone(), pool.clone());
        async move {
            let tasks: Vec<_> = (0..16)
                .map(|i| {
                    let (ts, pool) = (ts.clone(), pool.clone());
                    tokio::spawn(async move {
                        let user = format!("{tag}-{i}");
                        get_id(&ts.client(), &pool, &[("accounts.google.com", &user)]).await
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().expect("every GetId succeeds");
            }
        }
    };
    burst("before").await;
    let admin = common::test_database_url().unwrap();
    let dropped: i64 = common::db::off_runtime(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .get(0)
    });
    assert!(
        dropped > 1,
        "the replica's connections were found and dropped"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    burst("after").await;
    assert_eq!(identities(&ts, &pool).await.len(), 32);
}
