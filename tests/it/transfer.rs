//! `idpool export` and `idpool import`: moving between engines keeps every identity. SQLite to
//! SQLite always runs; SQLite to PostgreSQL and back when `IDPOOL_TEST_DATABASE_URL` is set.

use std::ffi::OsString;
use std::path::Path;

use serde_json::{json, Value};

use crate::common::{self, get_id, TestServer};

/// Runs the binary with `args`; returns (success, stdout, stderr).
fn run(args: &[OsString]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_idpool"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--database PATH` or `--database-url URL`.
fn engine_args(db: &Engine) -> Vec<OsString> {
    match db {
        Engine::Sqlite(p) => vec!["--database".into(), p.into()],
        Engine::Postgres(u) => vec!["--database-url".into(), u.into()],
    }
}

#[derive(Clone, Debug)]
enum Engine {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

async fn server_on(dir: &tempfile::TempDir, db: &Engine) -> TestServer {
    let db = db.clone();
    let path = dir.path().join("unused.db");
    TestServer::start_with(move |c| {
        c.admin.allow_unsigned = true;
        c.tokens.issuer = Some("https://ids.example.test".into());
        match db {
            Engine::Sqlite(p) => {
                c.database.path = p;
                c.database.url = None;
            }
            Engine::Postgres(u) => {
                c.database.path = path;
                c.database.url = Some(idpool::config::Secret::new(u));
            }
        }
    })
    .await
}

/// What a population answers: each login's identity, a developer user's, the pool's
/// settings and tags, and its identities in order.
#[derive(Debug, PartialEq)]
struct Answers {
    ids: Vec<String>,
    developer: String,
    pool: Value,
    listed: Value,
}

async fn answers(ts: &TestServer, pool: &str) -> Answers {
    let client = ts.client();
    let mut ids = Vec::new();
    for u in 0..30 {
        ids.push(
            get_id(&client, pool, &[("accounts.google.com", &format!("u{u}"))])
                .await
                .unwrap(),
        );
    }
    ids.push(
        get_id(
            &client,
            pool,
            &[("accounts.google.com", "u0"), ("graph.facebook.com", "f0")],
        )
        .await
        .unwrap(),
    );
    let r = ts
        .call(
            "LookupDeveloperIdentity",
            &json!({"IdentityPoolId": pool, "DeveloperUserIdentifier": "dev-1"}).to_string(),
        )
        .await;
    let developer = r.json()["IdentityId"].as_str().unwrap().to_string();
    let pool_json = ts
        .call(
            "DescribeIdentityPool",
            &json!({ "IdentityPoolId": pool }).to_string(),
        )
        .await
        .json();
    let listed = ts
        .call(
            "ListIdentities",
            &json!({"IdentityPoolId": pool, "MaxResults": 60}).to_string(),
        )
        .await
        .json();
    Answers {
        ids,
        developer,
        pool: pool_json,
        listed,
    }
}

/// A pool with 30 users, one of them with two logins, a developer user, tags, roles.
async fn populate(ts: &TestServer) -> String {
    let r = ts
        .call(
            "CreateIdentityPool",
            &json!({"IdentityPoolName": "moving", "AllowUnauthenticatedIdentities": true,
                    "DeveloperProviderName": "login.moving",
                    "SupportedLoginProviders": {"accounts.google.com": "g",
                                                "graph.facebook.com": "f"},
                    "IdentityPoolTags": {"team": "identity"}})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let pool = r.json()["IdentityPoolId"].as_str().unwrap().to_string();
    let r = ts
        .call(
            "GetOpenIdTokenForDeveloperIdentity",
            &json!({"IdentityPoolId": pool, "Logins": {"login.moving": "dev-1"}}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    let r = ts
        .call(
            "SetIdentityPoolRoles",
            &json!({"IdentityPoolId": pool,
                    "Roles": {"authenticated": "arn:aws:iam::123456789012:role/auth"}})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    answers(ts, &pool).await;
    pool
}

/// Exports `from` to a file, imports it into `to`, and checks both answer alike.
async fn moves(dir: &tempfile::TempDir, from: Engine, to: Engine, name: &str) {
    let source = server_on(dir, &from).await;
    let pool = populate(&source).await;
    let before = answers(&source, &pool).await;
    let token = source
        .call(
            "GetOpenIdToken",
            &json!({ "IdentityId": before.ids[0],
                     "Logins": {"accounts.google.com": "u0"} })
            .to_string(),
        )
        .await
        .json()["Token"]
        .as_str()
        .unwrap()
        .to_string();
    source.stop().await;

    let file = dir.path().join(format!("{name}.jsonl"));
    let mut args = engine_args(&from);
    args.extend(["export".into(), "--to".into(), file.clone().into()]);
    let (ok, out, err) = run(&args);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 pools, 31 identities, 31 logins, 1 developer users"),
        "{out}"
    );

    let mut args = engine_args(&to);
    args.extend(["import".into(), "--from".into(), file.clone().into()]);
    let (ok, out, err) = run(&args);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 pools, 31 identities, 31 logins, 1 developer users"),
        "{out}"
    );
    // Again into what is no longer empty: refused, nothing changes.
    let (ok, _, err) = run(&args);
    assert!(!ok && err.contains("--on-clash skip"), "{err}");
    // Told to skip what it has: it keeps every row as it is, and answers as before.
    args.extend(["--on-clash".into(), "skip".into()]);
    let (ok, _, err) = run(&args);
    assert!(ok, "{err}");

    let target = server_on(dir, &to).await;
    assert_eq!(answers(&target, &pool).await, before);
    // A token the source signed still verifies: its keys came along.
    let r = target
        .call(
            "GetOpenIdToken",
            &json!({ "IdentityId": before.ids[0],
                     "Logins": {"cognito-identity.amazonaws.com": token} })
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    target.stop().await;
}

#[tokio::test]
async fn export_and_import_keep_every_identity_sqlite_to_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    moves(
        &dir,
        Engine::Sqlite(dir.path().join("a.db")),
        Engine::Sqlite(dir.path().join("b.db")),
        "lite",
    )
    .await;
}

#[tokio::test]
async fn export_and_import_keep_every_identity_sqlite_to_postgres_and_back() {
    let Some(url) = common::test_database_url() else {
        eprintln!("skipped: no PostgreSQL (set IDPOOL_TEST_DATABASE_URL)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    moves(
        &dir,
        Engine::Sqlite(dir.path().join("a.db")),
        Engine::Postgres(common::fresh_schema_url(&url)),
        "to-pg",
    )
    .await;
    moves(
        &dir,
        Engine::Postgres(common::fresh_schema_url(&url)),
        Engine::Sqlite(dir.path().join("c.db")),
        "from-pg",
    )
    .await;
}

#[test]
fn a_cut_short_export_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cut.jsonl");
    std::fs::write(
        &file,
        "{\"idpool_export\":1,\"engine\":\"sqlite\",\"exported_at\":\"2026-01-01 00:00:00.000\"}\n\
         {\"identity\":{\"id\":\"us-east-1:x\",\"pool_id\":\"us-east-1:p\",\"created_at\":\"2026-01-01 00:00:00.000\",\"updated_at\":\"2026-01-01 00:00:00.000\",\"disabled\":false,\"merged_into\":null}}\n",
    )
    .unwrap();
    let db = dir.path().join("target.db");
    let (ok, _, err) = run(&[
        "--database".into(),
        db.clone().into(),
        "import".into(),
        "--from".into(),
        file.into(),
    ]);
    assert!(!ok && err.contains("cut short"), "{err}");
    if Path::new(&db).exists() {
        let store = idpool::store::Store::open(&db, idpool::config::Synchronous::Full).unwrap();
        assert_eq!(store.read_blocking(|tx| tx.count_all()).unwrap(), (0, 0));
        store.close();
    }
}

#[test]
fn an_unknown_clash_rule_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_idpool"))
        .args(["--database".as_ref(), dir.path().join("t.db").as_os_str()])
        .args(["import", "--from", "x.jsonl", "--on-clash", "overwrite"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use refuse or skip"));
}
