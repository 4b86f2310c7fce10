//! Declared pools: a seed file applied at start-up creates pools with fixed ids, brings them
//! back to the declared state on every start, never touches their identities, and refuses —
//! naming the file and the pool — what the API would refuse or what another account owns.

use std::process::Command;

use crate::common::*;

const POOL: &str = "us-east-1:11111111-2222-4333-8444-555555555555";

fn seed_text(name: &str) -> String {
    format!(
        r#"
[[pool]]
id = "{POOL}"
name = "{name}"
allow_unauthenticated = true
supported_login_providers = {{ "accounts.google.com" = "my-google-client" }}
developer_provider_name = "login.example"
tags = {{ team = "identity" }}
roles = {{ authenticated = "arn:aws:iam::000000000000:role/auth", unauthenticated = "arn:aws:iam::000000000000:role/guest" }}

[pool.role_mappings."accounts.google.com"]
type = "Rules"
ambiguous_role_resolution = "AuthenticatedRole"
rules = [{{ claim = "hd", match_type = "Equals", value = "example.com", role_arn = "arn:aws:iam::000000000000:role/staff" }}]

[pool.principal_tags."accounts.google.com"]
tags = {{ department = "hd" }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_declares_pools_with_fixed_ids_and_reapplies_without_touching_identities() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.toml");
    std::fs::write(&seed, seed_text("mobile-app")).unwrap();
    let seed2 = seed.clone();
    let ts = TestServer::start_with(move |c| c.seed.file = Some(seed2)).await;
    let client = ts.client();

    let pool = client
        .describe_identity_pool()
        .identity_pool_id(POOL)
        .send()
        .await
        .unwrap();
    assert_eq!(pool.identity_pool_name, "mobile-app");
    assert!(pool.allow_unauthenticated_identities);
    assert_eq!(
        pool.developer_provider_name.as_deref(),
        Some("login.example")
    );
    assert_eq!(
        pool.supported_login_providers.unwrap()["accounts.google.com"],
        "my-google-client"
    );
    assert_eq!(pool.identity_pool_tags.unwrap()["team"], "identity");
    let roles = client
        .get_identity_pool_roles()
        .identity_pool_id(POOL)
        .send()
        .await
        .unwrap();
    assert_eq!(
        roles.roles.unwrap()["unauthenticated"],
        "arn:aws:iam::000000000000:role/guest"
    );
    let mapping = &roles.role_mappings.unwrap()["accounts.google.com"];
    assert_eq!(mapping.rules_configuration.as_ref().unwrap().rules.len(), 1);
    let tags = client
        .get_principal_tag_attribute_map()
        .identity_pool_id(POOL)
        .identity_provider_name("accounts.google.com")
        .send()
        .await
        .unwrap();
    assert_eq!(tags.principal_tags.unwrap()["department"], "hd");

    let alice = get_id(&client, POOL, &[("accounts.google.com", "alice")])
        .await
        .unwrap();

    // The same seed again: nothing changes, alice keeps her identity.
    let ts = ts.restart().await;
    let client = ts.client();
    assert_eq!(
        get_id(&client, POOL, &[("accounts.google.com", "alice")])
            .await
            .unwrap(),
        alice
    );
    assert_eq!(ts.count("SELECT count(*) FROM pools"), 1);

    // A changed seed brings the pool to the declared state; identities stay.
    std::fs::write(&seed, seed_text("mobile-app-2")).unwrap();
    let ts = ts.restart().await;
    let client = ts.client();
    let pool = client
        .describe_identity_pool()
        .identity_pool_id(POOL)
        .send()
        .await
        .unwrap();
    assert_eq!(pool.identity_pool_name, "mobile-app-2");
    assert_eq!(
        get_id(&client, POOL, &[("accounts.google.com", "alice")])
            .await
            .unwrap(),
        alice
    );
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_naming_another_accounts_pool_or_breaking_a_rule_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.toml");
    std::fs::write(&seed, seed_text("mobile-app")).unwrap();
    // Another account's seed declares the pool first…
    let ts = TestServer::start_with(|_| {}).await;
    let mut taken = seed_text("mobile-app");
    taken = taken.replacen("[[pool]]\n", "[[pool]]\naccount = \"222222222222\"\n", 1);
    let other = dir.path().join("other.toml");
    std::fs::write(&other, taken).unwrap();
    let db = ts.config.database.clone();
    let dir2 = ts.stop().await;
    let mut c = base_config(&dir2);
    c.database = db.clone();
    c.seed.file = Some(other.clone());
    start_ok(c).await;
    // …so ours, for the default account, must not take it over.
    let mut c = base_config(&dir2);
    c.database = db.clone();
    c.seed.file = Some(seed.clone());
    let err = start_err(c).await;
    assert!(err.contains("seed.toml") && err.contains(POOL), "{err}");
    assert!(err.contains("another account"), "{err}");

    // A value the service model refuses: the model's own message, with the file and pool.
    std::fs::write(&seed, seed_text("mobile app!")).unwrap();
    let mut c = base_config(&dir2);
    c.database.path = dir.path().join("fresh.db");
    c.seed.file = Some(seed.clone());
    let err = start_err(c).await;
    assert!(
        err.contains(POOL) && err.contains("ValidationException"),
        "{err}"
    );
    // An unknown key is refused, as in the configuration file.
    std::fs::write(
        &seed,
        "[[pool]]\nid = \"x\"\nname = \"n\"\ncolour = \"red\"\n",
    )
    .unwrap();
    let mut c = base_config(&dir2);
    c.database.path = dir.path().join("fresh2.db");
    c.seed.file = Some(seed.clone());
    let err = start_err(c).await;
    assert!(err.contains("colour"), "{err}");
}

async fn start_ok(c: idpool::Config) {
    let s = idpool::Server::start(c).await.unwrap();
    s.stop().await;
}

async fn start_err(c: idpool::Config) -> String {
    match idpool::Server::start(c).await {
        Ok(s) => {
            s.stop().await;
            panic!("the server started on a seed it should refuse");
        }
        Err(e) => e.to_string(),
    }
}

#[test]
fn idpool_seed_check_validates_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, seed_text("mobile-app")).unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, seed_text("mobile-app").replace("Rules", "Sometimes")).unwrap();
    let bin = env!("CARGO_BIN_EXE_idpool");
    let ok = Command::new(bin)
        .args(["seed", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("1 pools, all valid"));
    let no = Command::new(bin)
        .args(["seed", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(no.status.code(), Some(2), "{no:?}");
    let said = String::from_utf8_lossy(&no.stderr);
    assert!(said.contains("bad.toml") && said.contains(POOL), "{said}");
}

/// `idpool seed check` works on a scratch database, whatever database the command line names:
/// checking a seed never creates its pools where the server will run.
#[test]
fn idpool_seed_check_leaves_the_configured_database_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, seed_text("mobile-app")).unwrap();
    let config = base_config(&dir);
    let ok = Command::new(env!("CARGO_BIN_EXE_idpool"))
        .args(database_args(&config))
        .args(["seed", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(
        !db::exists(&config),
        "seed check opened the configured database"
    );
}
