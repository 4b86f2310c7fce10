//! The GetId cache never outlives a change it depends on — even when the client that asked for
//! the change hangs up before the answer: the store clears the cache at the commit itself.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::common::{get_id, TestServer};

/// Sends a whole request for `op`; the caller hangs up by dropping the stream, without ever
/// reading the answer.
async fn send(ts: &TestServer, op: &str, body: &Value) -> tokio::net::TcpStream {
    let body = body.to_string();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nX-Amz-Target: AWSCognitoIdentityService.{op}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\r\n{body}",
        ts.url.trim_start_matches("http://"),
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(ts.url.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

/// Sends a whole request for `op` and hangs up at once.
async fn call_and_hang_up(ts: &TestServer, op: &str, body: &Value) {
    let mut s = send(ts, op, body).await;
    s.shutdown().await.unwrap();
}

/// Waits (10 s at most) until `done` says the change was committed.
async fn until<F, Fut>(mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the change was never committed");
}

async fn unsigned_server() -> TestServer {
    TestServer::start_with(|c| c.admin.allow_unsigned = true).await
}

async fn create_pool(ts: &TestServer) -> String {
    let r = ts
        .call(
            "CreateIdentityPool",
            &json!({"IdentityPoolName": "coherence", "AllowUnauthenticatedIdentities": true,
                    "SupportedLoginProviders": {"accounts.google.com": "google-client",
                                                "graph.facebook.com": "facebook-app"}})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json());
    r.json()["IdentityPoolId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_merge_whose_client_hung_up_leaves_no_stale_getid_answer() {
    let ts = unsigned_server().await;
    let pool = create_pool(&ts).await;
    let client = ts.client();
    let bob = [("graph.facebook.com", "bob")];
    let alice = [("accounts.google.com", "alice")];
    let y = get_id(&client, &pool, &bob).await.unwrap();
    // Asked again: now answered from the cache.
    assert_eq!(get_id(&client, &pool, &bob).await.unwrap(), y);
    let x = get_id(&client, &pool, &alice).await.unwrap();
    assert_ne!(x, y);

    // Presenting bob's and alice's logins for bob's identity merges it into alice's: X
    // survives, takes bob's login, and Y is disabled. Another process holds the database's write lock, so the
    // merge waits in the writer; meanwhile its client hangs up, and only then does it commit.
    let lock = crate::common::db::hold_write_lock(&ts.config);
    let s = send(
        &ts,
        "GetOpenIdToken",
        &json!({"IdentityId": y,
                "Logins": {"graph.facebook.com": "bob", "accounts.google.com": "alice"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(lock);
    until(|| async {
        let r = ts
            .call(
                "ListIdentities",
                &json!({"IdentityPoolId": pool, "MaxResults": 60, "HideDisabled": true})
                    .to_string(),
            )
            .await;
        let ids: Vec<String> = r.json()["Identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["IdentityId"].as_str().unwrap().to_string())
            .collect();
        !ids.contains(&y)
    })
    .await;
    assert_eq!(get_id(&client, &pool, &bob).await.unwrap(), x);
    ts.stop().await;
}

#[tokio::test]
async fn a_pool_update_whose_client_hung_up_leaves_no_stale_pool_in_the_cache() {
    let ts = unsigned_server().await;
    let pool = create_pool(&ts).await;
    let client = ts.client();
    // Guests are allowed, and the pool is now cached.
    get_id(&client, &pool, &[]).await.unwrap();
    get_id(&client, &pool, &[]).await.unwrap();

    call_and_hang_up(
        &ts,
        "UpdateIdentityPool",
        &json!({"IdentityPoolId": pool, "IdentityPoolName": "coherence",
                "AllowUnauthenticatedIdentities": false}),
    )
    .await;
    until(|| async {
        let r = ts
            .call(
                "DescribeIdentityPool",
                &json!({ "IdentityPoolId": pool }).to_string(),
            )
            .await;
        r.json()["AllowUnauthenticatedIdentities"] == json!(false)
    })
    .await;
    let e = get_id(&client, &pool, &[]).await.unwrap_err();
    assert_eq!(crate::common::code(&e).0, "NotAuthorizedException");
    ts.stop().await;
}
