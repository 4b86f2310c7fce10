//! An admin deleting a pool while public operations race on it: every answer is a success or
//! an AWS-shaped 4xx (the pool or identity is gone), never a 5xx, and nothing is left behind
//! in the deleted pool.

use std::sync::Arc;

use aws_sdk_cognitoidentity::Client;
use serde_json::json;

use crate::common::*;

const OURS: &str = "cognito-identity.amazonaws.com";

/// What one racing request got: its status and `__type`, for the failure message.
#[derive(Debug)]
struct Answer {
    what: String,
    status: u16,
    kind: String,
}

async fn raw(ts: &TestServer, what: String, op: &str, body: serde_json::Value) -> Answer {
    let r = ts.call(op, &body.to_string()).await;
    let kind = if r.status == 200 {
        String::new()
    } else {
        serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v["__type"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&r.body).to_string())
    };
    Answer {
        what,
        status: r.status,
        kind,
    }
}

async fn developer(c: &Client, what: String, pool: &str, identity: Option<&str>) -> Answer {
    let user = what.clone();
    let r = c
        .get_open_id_token_for_developer_identity()
        .identity_pool_id(pool)
        .set_identity_id(identity.map(str::to_string))
        .logins(DEV, user)
        .send()
        .await;
    match r {
        Ok(_) => Answer {
            what,
            status: 200,
            kind: String::new(),
        },
        Err(e) => {
            use aws_sdk_cognitoidentity::error::ProvideErrorMetadata;
            let status = e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
            let kind = e.code().unwrap_or("").to_string();
            Answer { what, status, kind }
        }
    }
}

/// One round: a pool with guests, signed-in users and developer users (some with tokens of
/// ours), a burst of public operations on it, and DeleteIdentityPool in the middle of them.
async fn round(ts: &Arc<TestServer>, n: usize) -> Vec<Answer> {
    let c = ts.client();
    let pool = pool_with_roles(&c, &format!("race{n}")).await;
    // Each request that changes a guest has a guest of its own, so the only refusals left are
    // the pool or the identity being gone.
    let mut guests = Vec::new();
    for _ in 0..18 {
        guests.push(get_id(&c, &pool, &[]).await.unwrap());
    }
    let mut users = Vec::new();
    for k in 0..4 {
        let login = format!("known-{k}");
        let id = get_id(&c, &pool, &[("accounts.google.com", &login)])
            .await
            .unwrap();
        let token = c
            .get_open_id_token()
            .identity_id(&id)
            .logins("accounts.google.com", &login)
            .send()
            .await
            .unwrap()
            .token
            .unwrap();
        users.push((id, login, token));
    }
    let mut tasks = Vec::new();
    for i in 0..48usize {
        if i == 20 {
            let c = c.clone();
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let r = c
                    .delete_identity_pool()
                    .identity_pool_id(&pool)
                    .send()
                    .await;
                Answer {
                    what: "DeleteIdentityPool".into(),
                    status: if r.is_ok() { 200 } else { 0 },
                    kind: r.err().map(|e| format!("{e:?}")).unwrap_or_default(),
                }
            }));
        }
        let ts = ts.clone();
        let c = c.clone();
        let pool = pool.clone();
        let slot = match i % 8 {
            3 => 0,
            7 => 2,
            _ => 1,
        };
        let guest = guests[3 * (i / 8) + slot].clone();
        let (user, login, token) = users[i % users.len()].clone();
        tasks.push(tokio::spawn(async move {
            match i % 8 {
                0 => raw(&ts, format!("guest GetId {i}"), "GetId", json!({ "IdentityPoolId": pool })).await,
                1 => {
                    raw(
                        &ts,
                        format!("GetId new login {i}"),
                        "GetId",
                        json!({ "IdentityPoolId": pool, "Logins": { "accounts.google.com": format!("new-{i}") } }),
                    )
                    .await
                }
                2 => developer(&c, format!("dev-new-{i}"), &pool, None).await,
                3 => developer(&c, format!("dev-onto-guest-{i}"), &pool, Some(&guest)).await,
                4 => {
                    raw(
                        &ts,
                        format!("guest GetCredentialsForIdentity {i}"),
                        "GetCredentialsForIdentity",
                        json!({ "IdentityId": guest }),
                    )
                    .await
                }
                5 => {
                    raw(
                        &ts,
                        format!("GetCredentialsForIdentity with login {i}"),
                        "GetCredentialsForIdentity",
                        json!({ "IdentityId": user, "Logins": { "accounts.google.com": login } }),
                    )
                    .await
                }
                6 => {
                    raw(
                        &ts,
                        format!("GetOpenIdToken with our token {i}"),
                        "GetOpenIdToken",
                        json!({ "IdentityId": user, "Logins": { OURS: token } }),
                    )
                    .await
                }
                _ => {
                    raw(
                        &ts,
                        format!("GetOpenIdToken signing a guest in {i}"),
                        "GetOpenIdToken",
                        json!({ "IdentityId": guest, "Logins": { "graph.facebook.com": format!("fb-{i}") } }),
                    )
                    .await
                }
            }
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    let left = ts.count(&format!(
        "SELECT (SELECT count(*) FROM identities WHERE pool_id = '{pool}') \
              + (SELECT count(*) FROM logins WHERE pool_id = '{pool}') \
              + (SELECT count(*) FROM developer_users WHERE pool_id = '{pool}') \
              + (SELECT count(*) FROM pools WHERE id = '{pool}')"
    ));
    assert_eq!(left, 0, "rows of the deleted pool {pool} remain");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_operations_racing_delete_identity_pool_never_get_a_5xx() {
    let ts = Arc::new(TestServer::start().await);
    let mut answers = Vec::new();
    for n in 0..8 {
        answers.extend(round(&ts, n).await);
    }
    let bad: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status != 200 && !(400..500).contains(&a.status))
        .collect();
    assert!(bad.is_empty(), "answers that are not 200 or 4xx: {bad:#?}");
    let deletes = answers
        .iter()
        .filter(|a| a.what == "DeleteIdentityPool" && a.status == 200)
        .count();
    assert_eq!(deletes, 8);
    // The delete landed in the middle of the bursts: some requests before it, some after.
    let refused = answers.iter().filter(|a| a.status != 200).count();
    assert!(
        refused > 0 && refused < answers.len() - 8,
        "{refused} of {} refused",
        answers.len()
    );
    // The 4xx answers are the pool or the identity being gone, nothing else.
    for a in answers.iter().filter(|a| a.status != 200) {
        assert!(
            a.kind == "ResourceNotFoundException",
            "unexpected refusal: {a:?}"
        );
    }
}

/// Deletes a pool (and, by its foreign keys, everything of it) straight in the database,
/// behind the server's back: its caches still hold the pool.
fn delete_pool_in_the_database(ts: &TestServer, pool: &str) {
    let pool = pool.to_string();
    match &ts.config.database.url {
        Some(url) => {
            let url = url.expose().to_string();
            crate::common::db::off_runtime(move || {
                let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                let n = c
                    .execute("DELETE FROM pools WHERE id = $1", &[&pool])
                    .unwrap();
                assert_eq!(n, 1);
            })
        }
        None => {
            let c = rusqlite::Connection::open(&ts.config.database.path).unwrap();
            c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            c.pragma_update(None, "foreign_keys", "ON").unwrap();
            let n = c
                .execute("DELETE FROM pools WHERE id = ?1", [&pool])
                .unwrap();
            assert_eq!(n, 1);
        }
    }
}

/// A guest GetId whose pool was read from the cache but is gone from the database by the time
/// the identity is written (on PostgreSQL the first try leaves that check to the identity's
/// foreign key): ResourceNotFound, as for any missing pool, and no identity is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_of_a_pool_gone_from_the_database_is_not_found_and_leaves_nothing() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "gone-behind").await;
    // The pool is cached now.
    get_id(&c, &pool, &[]).await.unwrap();
    delete_pool_in_the_database(&ts, &pool);
    for _ in 0..3 {
        assert_eq!(fail(get_id(&c, &pool, &[]).await), pool_not_found(&pool));
    }
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM identities WHERE pool_id = '{pool}'"
        )),
        0
    );
}
