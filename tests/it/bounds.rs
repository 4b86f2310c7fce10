//! Bounded work and what leaks: introspection floods and concurrency against a slow loopback
//! double, fixed ExternalServiceException messages for unreachable providers and STS, request
//! values escaped in the logs, and the optional per-client rate limit.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use idpool::config::{Config, CredentialsSource, ProviderConfig, VerifyMode};
use serde_json::json;

use crate::common::doubles::{dead_url, sts_answer, Double, Reply};
use crate::common::*;

const PROVIDER: &str = "opaque.example.test";
const DEAD: &str = "dead.example.test";

/// An introspection endpoint at `/introspect` that takes `delay` per call and finds every
/// token inactive.
async fn slow_introspection(delay: Duration) -> Double {
    Double::slow(delay, |_| Reply::json(200, r#"{"active":false}"#)).await
}

fn introspect(url: &str) -> ProviderConfig {
    ProviderConfig {
        verify: VerifyMode::Introspect,
        jwks: None,
        audiences: vec![],
        url: Some(url.to_string()),
    }
}

async fn opaque_server(url: String) -> (TestServer, String) {
    let dead = dead_url("/introspect");
    let ts = TestServer::start_with(move |c| {
        c.providers.named.insert(PROVIDER.into(), introspect(&url));
        c.providers.named.insert(DEAD.into(), introspect(&dead));
    })
    .await;
    let pool = ts
        .client()
        .create_identity_pool()
        .identity_pool_name("opaque")
        .allow_unauthenticated_identities(true)
        .supported_login_providers(PROVIDER, "app")
        .supported_login_providers(DEAD, "app")
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    (ts, pool)
}

async fn get_id_raw(ts: &TestServer, pool: &str, logins: serde_json::Value) -> RawResponse {
    let body = json!({"IdentityPoolId": pool, "Logins": logins}).to_string();
    ts.call("GetId", &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_one_bad_token_is_one_introspection_call() {
    let double = slow_introspection(Duration::from_millis(200)).await;
    let (ts, pool) = opaque_server(double.url("/introspect")).await;
    let ts = Arc::new(ts);
    let token = format!("random-{}", uuid::Uuid::new_v4());
    let calls = (0..50).map(|_| {
        let (ts, pool, token) = (ts.clone(), pool.clone(), token.clone());
        tokio::spawn(async move { get_id_raw(&ts, &pool, json!({PROVIDER: token})).await })
    });
    for call in calls.collect::<Vec<_>>() {
        let r = call.await.unwrap();
        r.assert_error(400, "NotAuthorizedException");
        assert_eq!(r.message(), "Invalid login token. Token is not active.");
    }
    // And again, one after another: answered from the short cache of refusals.
    for _ in 0..5 {
        get_id_raw(&ts, &pool, json!({PROVIDER: token}))
            .await
            .assert_error(400, "NotAuthorizedException");
    }
    assert_eq!(double.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_calls_to_one_provider_are_bounded_in_concurrency() {
    let double = slow_introspection(Duration::from_millis(150)).await;
    let (ts, pool) = opaque_server(double.url("/introspect")).await;
    let ts = Arc::new(ts);
    let calls = (0..40).map(|i| {
        let (ts, pool) = (ts.clone(), pool.clone());
        tokio::spawn(
            async move { get_id_raw(&ts, &pool, json!({PROVIDER: format!("t{i}")})).await },
        )
    });
    for call in calls.collect::<Vec<_>>() {
        call.await
            .unwrap()
            .assert_error(400, "NotAuthorizedException");
    }
    assert_eq!(double.hits(), 40);
    // The bound is 8 calls per provider at once (`introspect::MAX_IN_FLIGHT`).
    let max = double.max_in_flight();
    assert!((1..=8).contains(&max), "{max} calls at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_calls_are_bounded_in_concurrency() {
    let answer = sts_answer("ASIASTSDOUBLE0000001", "s", "t");
    let sts = Double::slow(Duration::from_millis(200), move |_| {
        Reply::json(200, answer.clone())
    })
    .await;
    let url = sts.url("/introspect");
    let ts = TestServer::start_with(move |c| {
        c.credentials.source = CredentialsSource::Sts;
        c.credentials.sts_endpoint = Some(url);
    })
    .await;
    let c = ts.client();
    let pool = create_pool(&c, "sts-slow").await;
    set_roles(&c, &pool).await;
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let ts = Arc::new(ts);
    let calls = (0..32).map(|_| {
        let (ts, body) = (ts.clone(), json!({"IdentityId": guest}).to_string());
        tokio::spawn(async move { ts.call("GetCredentialsForIdentity", &body).await })
    });
    for call in calls.collect::<Vec<_>>() {
        let r = call.await.unwrap();
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(sts.hits(), 32);
    // At most 16 calls to one host at once (`http_client::MAX_PER_HOST`).
    let max = sts.max_in_flight();
    assert!((1..=16).contains(&max), "{max} calls at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_providers_and_sts_get_a_fixed_message_without_detail() {
    let (ts, pool) = opaque_server(dead_url("/unused")).await;
    let r = get_id_raw(&ts, &pool, json!({DEAD: "some-token"})).await;
    r.assert_error(400, "ExternalServiceException");
    assert_eq!(
        r.message(),
        format!("{DEAD} is unavailable. Try again later.")
    );

    let sts = dead_url("/");
    let ts = TestServer::start_with(move |c| {
        c.credentials.source = CredentialsSource::Sts;
        c.credentials.sts_endpoint = Some(sts);
    })
    .await;
    let c = ts.client();
    let pool = create_pool(&c, "sts-down").await;
    set_roles(&c, &pool).await;
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let r = ts
        .call(
            "GetCredentialsForIdentity",
            &json!({"IdentityId": guest}).to_string(),
        )
        .await;
    r.assert_error(400, "ExternalServiceException");
    let msg = r.message();
    assert_eq!(msg, "STS is unavailable. Try again later.");
    for detail in ["refused", "127.0.0.1", "tcp", "os error"] {
        assert!(!msg.to_lowercase().contains(detail), "{msg}");
    }
}

/// Everything the server logs at info and above, from the first call on (one subscriber per
/// test process).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newline_in_a_request_cannot_forge_a_log_line() {
    let logs = captured_logs();
    let ts = TestServer::start().await;
    let marker = format!("FORGED-{}", uuid::Uuid::new_v4().simple());
    let forged = format!("us-east-1:00\n{marker} ERROR idpool: admin key accepted");
    for (op, body) in [
        ("GetId", json!({"IdentityPoolId": forged})),
        (
            "GetCredentialsForIdentity",
            json!({"IdentityId": format!("us-east-1:00\r\n{marker}")}),
        ),
    ] {
        let r = ts.call(op, &body.to_string()).await;
        assert_eq!(r.status, 400);
    }
    // The server logs before it answers; give the writer a moment all the same.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(text.contains(&marker), "the refusals were logged");
    for line in text.lines().filter(|l| l.contains(&marker)) {
        assert!(
            line.contains("request refused") && !line.trim_start().starts_with(&marker),
            "a forged line: {line:?}"
        );
    }
    assert!(!text.contains(&format!("\r\n{marker}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_rate_limit_answers_too_many_requests_after_the_burst() {
    let ts = TestServer::start_with(|c| {
        // Parsed from TOML, as an operator writes it.
        let mut parsed = Config::parse(
            "[rate_limit]\npublic_per_second = 0.001\npublic_burst = 3\n",
            "bounds.toml",
        )
        .unwrap();
        parsed.listen = c.listen;
        parsed.database = c.database.clone();
        parsed.admin = c.admin.clone();
        *c = parsed;
    })
    .await;
    let c = ts.client();
    let pool = create_pool(&c, "limited").await;
    let body = json!({"IdentityPoolId": pool}).to_string();
    for _ in 0..3 {
        let r = ts.call("GetId", &body).await;
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    }
    let r = ts.call("GetId", &body).await;
    r.assert_error(400, "TooManyRequestsException");
    assert_eq!(r.message(), "Rate exceeded");
    // The other public operations share the client's bucket; admin operations are not limited.
    ts.call(
        "GetOpenIdToken",
        &json!({"IdentityId": "us-east-1:00"}).to_string(),
    )
    .await
    .assert_error(400, "TooManyRequestsException");
    for i in 0..5 {
        create_pool(&c, &format!("admin{i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configuration_nothing_is_rate_limited() {
    let ts = TestServer::start().await;
    let pool = create_pool(&ts.client(), "unlimited").await;
    let body = json!({"IdentityPoolId": pool}).to_string();
    for _ in 0..30 {
        assert_eq!(ts.call("GetId", &body).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_to_remove_is_bounded_at_twenty() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "unlink").await;
    let id = get_id(&c, &pool, &[("accounts.google.com", "u1")])
        .await
        .unwrap();
    let call = |remove: Vec<String>| {
        let body = json!({"IdentityId": id, "Logins": {"accounts.google.com": "u1"},
                          "LoginsToRemove": remove})
        .to_string();
        let ts = &ts;
        async move { ts.call("UnlinkIdentity", &body).await }
    };
    let many: Vec<String> = (0..21).map(|i| format!("p{i}.example.com")).collect();
    let r = call(many).await;
    r.assert_error(400, "ValidationException");
    assert!(
        r.message()
            .ends_with("Member must have length less than or equal to 20"),
        "{}",
        r.message()
    );
    // Twenty times the same provider: removed once.
    let same = vec!["graph.facebook.com".to_string(); 20];
    assert_eq!(call(same).await.status, 200);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_large_pool_never_holds_the_writer_for_the_whole_pool() {
    let ts = TestServer::start().await;
    let pool = create_pool(&ts.client(), "large").await;
    let keep = create_pool(&ts.client(), "kept").await;
    let n = idpool::ops::pools::DELETE_CHUNK * 2 + 300;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (client, pool) = (ts.client(), pool.clone());
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(16) {
                get_id(&client, &pool, &[("accounts.google.com", &format!("u{i}"))])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let kept = get_id(&ts.client(), &keep, &[("accounts.google.com", "stays")])
        .await
        .unwrap();
    let commits = ts.app().store.commits();
    ts.client()
        .delete_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .unwrap();
    // The identities went in several transactions of at most DELETE_CHUNK, not in one.
    assert!(
        ts.app().store.commits() - commits >= 3,
        "{} transactions",
        ts.app().store.commits() - commits
    );
    assert_eq!(ts.count("SELECT count(*) FROM pools"), 1);
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 1);
    assert_eq!(
        get_id(&ts.client(), &keep, &[("accounts.google.com", "stays")])
            .await
            .unwrap(),
        kept
    );
    let gone = ts
        .client()
        .describe_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(code(&gone).0, "ResourceNotFoundException");
    ts.stop().await;
}
