//! `GET /metrics` moves as requests are answered, and the log has one access line per request,
//! every line of a request carrying its id, admin lines the caller's account, never a token.

use crate::common::*;

/// The value of one series in a Prometheus text page (0 when absent).
fn series(page: &str, name_and_labels: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_outcomes_commits_and_cache_hits() {
    let ts = TestServer::start().await;
    let pool = create_pool(&ts.client(), "metrics").await;
    let before = ts.raw_get("/metrics").await;
    assert_eq!(before.status, 200);
    assert!(before
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let before = String::from_utf8(before.body).unwrap();

    let client = ts.client();
    get_id(&client, &pool, &[("accounts.google.com", "mia")])
        .await
        .unwrap();
    for _ in 0..3 {
        get_id(&client, &pool, &[("accounts.google.com", "mia")])
            .await
            .unwrap();
    }
    let refused = client
        .describe_identity_pool()
        .identity_pool_id("us-east-1:00000000-0000-4000-8000-000000000000")
        .send()
        .await;
    assert!(refused.is_err());

    let after = String::from_utf8(ts.raw_get("/metrics").await.body).unwrap();
    let moved = |s: &str| series(&after, s) - series(&before, s);
    // Other tests share the process's metrics, so each moved by at least what this one did.
    assert!(moved(r#"idpool_requests_total{operation="GetId",outcome="ok"}"#) >= 4.0);
    assert!(
        moved(
            r#"idpool_requests_total{operation="DescribeIdentityPool",outcome="ResourceNotFoundException"}"#
        ) >= 1.0
    );
    assert!(moved(r#"idpool_request_duration_seconds_count{operation="GetId"}"#) >= 4.0);
    assert!(moved("idpool_commit_batch_requests_count") >= 1.0);
    assert!(moved("idpool_commit_duration_seconds_count") >= 1.0);
    assert!(moved(r#"idpool_getid_cache_total{result="hit"}"#) >= 2.0);
    assert!(after.contains("idpool_connections_open"));
    assert!(!after.contains("mia"), "no user data in metrics");
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_access_line_per_request_with_its_id_and_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("idpool.toml");
    std::fs::write(
        &config,
        format!(
            "{}[admin]\nallow_unsigned = true\n[providers]\ndefault = \"trust\"\n[log]\nformat = \"json\"\n",
            database_toml(&base_config(&dir))
        ),
    )
    .unwrap();
    let mut server = Spawned::start(&config).await;
    let url = server.url.clone();
    let client = sdk_client(&url, "ANY", "any");
    let pool = client
        .create_identity_pool()
        .identity_pool_name("logs")
        .allow_unauthenticated_identities(true)
        .supported_login_providers("accounts.google.com", "x")
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    get_id(
        &client,
        &pool,
        &[("accounts.google.com", "secret-login-token-xyz")],
    )
    .await
    .unwrap();
    server.terminate();
    let log = server.log();

    assert!(
        !log.contains("secret-login-token-xyz"),
        "no token is logged"
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "idpool::access")
        .collect();
    assert_eq!(access.len(), 2, "one access line per request: {access:?}");
    // Both calls succeeded and wrote: nothing is logged as a warning or an error (a success
    // once logged a "storage failure" it never had).
    let alarms: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["level"] == "ERROR" || (l["level"] == "WARN" && l.get("span").is_some()))
        .collect();
    assert!(
        alarms.is_empty(),
        "successful requests log no alarm: {alarms:?}"
    );
    let create = access
        .iter()
        .find(|l| l["fields"]["op"] == "CreateIdentityPool")
        .unwrap();
    assert_eq!(create["fields"]["outcome"], "ok");
    assert_eq!(create["fields"]["status"], 200);
    assert_eq!(create["span"]["account"], "000000000000");
    let get = access
        .iter()
        .find(|l| l["fields"]["op"] == "GetId")
        .unwrap();
    assert!(
        get["span"]["account"].is_null(),
        "public calls have no account"
    );
    // Every line logged inside a request carries its request id.
    for l in &lines {
        if l.get("span").is_some() {
            assert!(
                l["span"]["request_id"]
                    .as_str()
                    .is_some_and(|s| s.len() == 36),
                "{l}"
            );
        }
    }
    assert!(access
        .iter()
        .all(|l| l["span"]["request_id"].as_str().is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_outbound_calls_by_provider_and_outcome() {
    let dead = doubles::dead_url("/introspect");
    let ts = TestServer::start_with(move |c| {
        c.providers.named.insert(
            "metrics.example.com".into(),
            idpool::config::ProviderConfig {
                verify: idpool::config::VerifyMode::Introspect,
                jwks: None,
                audiences: vec![],
                url: Some(dead),
            },
        );
    })
    .await;
    let pool = ts
        .client()
        .create_identity_pool()
        .identity_pool_name("outbound")
        .allow_unauthenticated_identities(true)
        .supported_login_providers("metrics.example.com", "app")
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    let series_name = r#"idpool_outbound_requests_total{kind="introspection",outcome="unreachable",provider="metrics.example.com"}"#;
    let before = series(
        &String::from_utf8(ts.raw_get("/metrics").await.body).unwrap(),
        series_name,
    );
    let r = ts
        .call(
            "GetId",
            &serde_json::json!({"IdentityPoolId": pool, "Logins": {"metrics.example.com": "opaque-token"}})
                .to_string(),
        )
        .await;
    r.assert_error(400, "ExternalServiceException");
    let page = String::from_utf8(ts.raw_get("/metrics").await.body).unwrap();
    assert_eq!(series(&page, series_name), before + 1.0, "{page}");
    assert!(!page.contains("opaque-token"));
    ts.stop().await;
}
