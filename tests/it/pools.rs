//! Pool administration through the SDK: create, describe, update, delete, list; accounts;
//! DescribeIdentity and ListIdentities; persistence across restarts. Raw calls only where the
//! SDK cannot send the input or the exact bytes of the answer matter.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cognitoidentity::primitives::DateTime;
use aws_sdk_cognitoidentity::types::CognitoIdentityProvider;
use aws_sdk_cognitoidentity::Client;
use serde_json::json;

use crate::common::*;

const MISSING_POOL: &str = "us-east-1:00000000-0000-4000-8000-000000000000";
const MISSING_IDENTITY: &str = "us-east-1:11111111-1111-4111-8111-111111111111";
const GOOGLE: &str = "accounts.google.com";
const FACEBOOK: &str = "graph.facebook.com";
const AMAZON: &str = "www.amazon.com";
const OIDC_ARN: &str = "arn:aws:iam::000000000000:oidc-provider/login.example.com";
const SAML_ARN: &str = "arn:aws:iam::000000000000:saml-provider/corp";
const USER_POOL: &str = "cognito-idp.us-east-1.amazonaws.com/us-east-1_abc";

/// Everything an IdentityPool answer says, in one comparable value. Create, Describe and
/// Update answer different SDK types with the same fields; `view!` reads any of them.
#[derive(Debug, Clone, PartialEq)]
struct PoolView {
    id: String,
    name: String,
    allow_unauthenticated: bool,
    allow_classic_flow: Option<bool>,
    supported_login_providers: Option<BTreeMap<String, String>>,
    developer_provider_name: Option<String>,
    openid_connect_provider_arns: Option<Vec<String>>,
    cognito_identity_providers: Option<Vec<CognitoIdentityProvider>>,
    saml_provider_arns: Option<Vec<String>>,
    tags: Option<BTreeMap<String, String>>,
}

fn sorted(m: &Option<HashMap<String, String>>) -> Option<BTreeMap<String, String>> {
    m.as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

macro_rules! view {
    ($out:expr) => {{
        let o = $out;
        PoolView {
            id: o.identity_pool_id.clone(),
            name: o.identity_pool_name.clone(),
            allow_unauthenticated: o.allow_unauthenticated_identities,
            allow_classic_flow: o.allow_classic_flow,
            supported_login_providers: sorted(&o.supported_login_providers),
            developer_provider_name: o.developer_provider_name.clone(),
            openid_connect_provider_arns: o.open_id_connect_provider_arns.clone(),
            cognito_identity_providers: o.cognito_identity_providers.clone(),
            saml_provider_arns: o.saml_provider_arns.clone(),
            tags: sorted(&o.identity_pool_tags),
        }
    }};
}

fn tags(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn cognito_provider(name: &str, client: &str, check: Option<bool>) -> CognitoIdentityProvider {
    CognitoIdentityProvider::builder()
        .provider_name(name)
        .client_id(client)
        .set_server_side_token_check(check)
        .build()
}

async fn describe(c: &Client, pool: &str) -> PoolView {
    view!(c
        .describe_identity_pool()
        .identity_pool_id(pool)
        .send()
        .await
        .unwrap())
}

/// A pool with every member set, through the SDK.
async fn create_full_pool(c: &Client, name: &str) -> PoolView {
    view!(c
        .create_identity_pool()
        .identity_pool_name(name)
        .allow_unauthenticated_identities(true)
        .allow_classic_flow(true)
        .supported_login_providers(GOOGLE, "google-client")
        .supported_login_providers(FACEBOOK, "facebook-app")
        .developer_provider_name("login.mycompany")
        .open_id_connect_provider_arns(OIDC_ARN)
        .cognito_identity_providers(cognito_provider(USER_POOL, "appclient", Some(true)))
        .saml_provider_arns(SAML_ARN)
        .identity_pool_tags("team", "identity")
        .identity_pool_tags("env", "test")
        .send()
        .await
        .unwrap())
}

fn assert_id_format(id: &str) {
    let (region, uuid) = id.split_once(':').unwrap();
    assert_eq!(region, "us-east-1", "{id}");
    assert_eq!(uuid, uuid.to_lowercase(), "{id}");
    assert_eq!(uuid.len(), 36, "{id}");
    assert_eq!(
        uuid::Uuid::parse_str(uuid).unwrap().get_version_num(),
        4,
        "{id}"
    );
}

/// All of a pool's identity ids through ListIdentities, page by page, with the page sizes.
async fn list_all_identities(c: &Client, pool: &str, page: i32) -> (Vec<String>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let out = c
            .list_identities()
            .identity_pool_id(pool)
            .max_results(page)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(out.identity_pool_id(), Some(pool));
        sizes.push(out.identities().len());
        ids.extend(
            out.identities()
                .iter()
                .map(|i| i.identity_id().unwrap().to_string()),
        );
        match out.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => return (ids, sizes),
        }
    }
    panic!("ListIdentities never ended");
}

/// All of the caller's pool ids through ListIdentityPools, page by page, with the page sizes.
async fn list_all_pools(c: &Client, page: i32) -> (Vec<String>, Vec<usize>) {
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let out = c
            .list_identity_pools()
            .max_results(page)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        sizes.push(out.identity_pools().len());
        ids.extend(
            out.identity_pools()
                .iter()
                .map(|p| p.identity_pool_id().unwrap().to_string()),
        );
        match out.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => return (ids, sizes),
        }
    }
    panic!("ListIdentityPools never ended");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Timestamps have millisecond resolution. Before a write whose timestamp must be later than
/// `t`, wait (at most a couple of milliseconds, spinning on the clock) until the clock has
/// left `t`'s millisecond, so "moves forward" is decidable rather than a race.
async fn clock_past(t: &DateTime) {
    let ms = t.to_millis().unwrap() + 1;
    while now_ms() <= ms {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_echoes_only_what_was_set_plus_tags_in_sorted_compact_json() {
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;

    // Minimal: exactly these bytes, keys in alphabetical order, IdentityPoolTags always there.
    let r = ts
        .call(
            "CreateIdentityPool",
            r#"{"IdentityPoolName":"minimal","AllowUnauthenticatedIdentities":false}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
    let id = r.json()["IdentityPoolId"].as_str().unwrap().to_string();
    assert_id_format(&id);
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        format!(
            r#"{{"AllowUnauthenticatedIdentities":false,"IdentityPoolId":"{id}","IdentityPoolName":"minimal","IdentityPoolTags":{{}}}}"#
        )
    );

    // Everything set; ServerSideTokenCheck omitted is echoed as false; AllowClassicFlow false
    // is echoed because it was sent.
    let r = ts
        .call(
            "CreateIdentityPool",
            &json!({
                "IdentityPoolName": "full pool",
                "AllowUnauthenticatedIdentities": true,
                "AllowClassicFlow": false,
                "SupportedLoginProviders": {FACEBOOK: "fb-app", GOOGLE: "g-client"},
                "DeveloperProviderName": "login.mycompany",
                "OpenIdConnectProviderARNs": [OIDC_ARN],
                "CognitoIdentityProviders": [{"ProviderName": USER_POOL, "ClientId": "appclient"}],
                "SamlProviderARNs": [SAML_ARN],
                "IdentityPoolTags": {"team": "identity", "env": "test"}
            })
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    let id = body["IdentityPoolId"].as_str().unwrap().to_string();
    assert_id_format(&id);
    assert_eq!(
        body,
        json!({
            "AllowClassicFlow": false,
            "AllowUnauthenticatedIdentities": true,
            "CognitoIdentityProviders": [
                {"ClientId": "appclient", "ProviderName": USER_POOL, "ServerSideTokenCheck": false}
            ],
            "DeveloperProviderName": "login.mycompany",
            "IdentityPoolId": id,
            "IdentityPoolName": "full pool",
            "IdentityPoolTags": {"env": "test", "team": "identity"},
            "OpenIdConnectProviderARNs": [OIDC_ARN],
            "SamlProviderARNs": [SAML_ARN],
            "SupportedLoginProviders": {FACEBOOK: "fb-app", GOOGLE: "g-client"}
        })
    );
    // Compact, keys sorted at every level: the bytes are what a sorted compact encoder writes.
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        serde_json::to_string(&body).unwrap()
    );

    // Describe answers the same bytes as Create did.
    let d = ts
        .call(
            "DescribeIdentityPool",
            &json!({"IdentityPoolId": id}).to_string(),
        )
        .await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body, r.body);

    // AllowClassicFlow true is echoed too; absent, it is absent.
    let r = ts
        .call(
            "CreateIdentityPool",
            r#"{"IdentityPoolName":"classic","AllowUnauthenticatedIdentities":true,"AllowClassicFlow":true}"#,
        )
        .await;
    assert_eq!(r.json()["AllowClassicFlow"], json!(true));
    assert_eq!(ts.count("SELECT count(*) FROM pools"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_returns_what_create_returned() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let created = create_full_pool(&c, "full").await;
    assert_id_format(&created.id);
    assert_eq!(created.allow_classic_flow, Some(true));
    assert_eq!(
        created.cognito_identity_providers,
        Some(vec![cognito_provider(USER_POOL, "appclient", Some(true))])
    );
    assert_eq!(created.tags, tags(&[("env", "test"), ("team", "identity")]));
    assert_eq!(describe(&c, &created.id).await, created);

    let minimal = view!(c
        .create_identity_pool()
        .identity_pool_name("minimal")
        .allow_unauthenticated_identities(false)
        .send()
        .await
        .unwrap());
    assert_eq!(
        minimal,
        PoolView {
            id: minimal.id.clone(),
            name: "minimal".into(),
            allow_unauthenticated: false,
            allow_classic_flow: None,
            supported_login_providers: None,
            developer_provider_name: None,
            openid_connect_provider_arns: None,
            cognito_identity_providers: None,
            saml_provider_arns: None,
            tags: tags(&[]),
        }
    );
    assert_eq!(describe(&c, &minimal.id).await, minimal);
    assert_ne!(minimal.id, created.id);

    // ServerSideTokenCheck omitted comes back false.
    let p = view!(c
        .create_identity_pool()
        .identity_pool_name("sstc")
        .allow_unauthenticated_identities(true)
        .cognito_identity_providers(cognito_provider(USER_POOL, "appclient", None))
        .send()
        .await
        .unwrap());
    assert_eq!(
        p.cognito_identity_providers,
        Some(vec![cognito_provider(USER_POOL, "appclient", Some(false))])
    );
    assert_eq!(describe(&c, &p.id).await, p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_of_an_unknown_or_malformed_pool_id_is_refused() {
    let ts = TestServer::start().await;
    let c = ts.client();
    create_pool(&c, "exists").await;
    let r = c
        .describe_identity_pool()
        .identity_pool_id(MISSING_POOL)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(MISSING_POOL));

    let malformed = "6eaf0258-e8c5-467f-90de-6e212326e6d3";
    let r = c
        .describe_identity_pool()
        .identity_pool_id(malformed)
        .send()
        .await;
    assert_eq!(
        fail(r),
        (
            "ValidationException".into(),
            format!(
                "1 validation error detected: Value '{malformed}' at 'identityPoolId' failed to \
                 satisfy constraint: Member must satisfy regular expression pattern: \
                 [\\w-]+:[0-9a-f-]+"
            )
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_names_must_match_the_pattern_and_need_not_be_unique() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let r = c
        .create_identity_pool()
        .identity_pool_name("bad/name")
        .allow_unauthenticated_identities(true)
        .send()
        .await;
    assert_eq!(
        fail(r),
        (
            "ValidationException".into(),
            "1 validation error detected: Value 'bad/name' at 'identityPoolName' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: \
             [\\w\\s+=,.@-]+"
                .into()
        )
    );
    assert_eq!(ts.count("SELECT count(*) FROM pools"), 0);

    // Every character the pattern allows, and the same name twice.
    let name = "My pool_1+=,.@-";
    let a = create_pool(&c, name).await;
    let b = create_pool(&c, name).await;
    assert_ne!(a, b);
    assert_eq!(describe(&c, &a).await.name, name);
    assert_eq!(describe(&c, &b).await.name, name);
    assert_eq!(ts.count("SELECT count(*) FROM pools"), 2);

    // The same check on update, which changes nothing.
    let r = c
        .update_identity_pool()
        .identity_pool_id(&a)
        .identity_pool_name("bad/name")
        .allow_unauthenticated_identities(true)
        .send()
        .await;
    assert_eq!(fail(r).0, "ValidationException");
    assert_eq!(describe(&c, &a).await.name, name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_provider_configurations_and_too_many_tags_are_refused_and_store_nothing() {
    let ts = TestServer::start().await;
    let c = ts.client();

    let no_name = CognitoIdentityProvider::builder()
        .client_id("appclient")
        .build();
    let r = c
        .create_identity_pool()
        .identity_pool_name("nocognitoname")
        .allow_unauthenticated_identities(true)
        .cognito_identity_providers(no_name)
        .send()
        .await;
    assert_eq!(
        fail(r),
        (
            "InvalidParameterException".into(),
            "Invalid Cognito Identity Provider".into()
        )
    );

    let r = c
        .create_identity_pool()
        .identity_pool_name("notoidc")
        .allow_unauthenticated_identities(true)
        .open_id_connect_provider_arns("arn:aws:iam::000000000000:role/NotAnOidcProvider")
        .send()
        .await;
    assert_eq!(fail(r).0, "InvalidParameterException");

    let mut create = c
        .create_identity_pool()
        .identity_pool_name("toomanytags")
        .allow_unauthenticated_identities(true);
    for i in 0..51 {
        create = create.identity_pool_tags(format!("k{i}"), "v");
    }
    assert_eq!(fail(create.send().await).0, "InvalidParameterException");

    assert_eq!(ts.count("SELECT count(*) FROM pools"), 0);
    assert_eq!(ts.count("SELECT count(*) FROM pool_tags"), 0);

    // Fifty tags are fine.
    let mut create = c
        .create_identity_pool()
        .identity_pool_name("fiftytags")
        .allow_unauthenticated_identities(true);
    for i in 0..50 {
        create = create.identity_pool_tags(format!("k{i}"), "v");
    }
    let p = view!(create.send().await.unwrap());
    assert_eq!(p.tags.as_ref().map(|t| t.len()), Some(50));
    assert_eq!(ts.count("SELECT count(*) FROM pool_tags"), 50);

    // The same refusals on update leave the pool as it was.
    let before = describe(&c, &p.id).await;
    let r = c
        .update_identity_pool()
        .identity_pool_id(&p.id)
        .identity_pool_name("renamed")
        .allow_unauthenticated_identities(false)
        .cognito_identity_providers(
            CognitoIdentityProvider::builder()
                .client_id("appclient")
                .build(),
        )
        .send()
        .await;
    assert_eq!(
        fail(r),
        (
            "InvalidParameterException".into(),
            "Invalid Cognito Identity Provider".into()
        )
    );
    let r = c
        .update_identity_pool()
        .identity_pool_id(&p.id)
        .identity_pool_name("renamed")
        .allow_unauthenticated_identities(false)
        .open_id_connect_provider_arns("arn:aws:iam::000000000000:saml-provider/notoidc")
        .send()
        .await;
    assert_eq!(fail(r).0, "InvalidParameterException");
    let mut update = c
        .update_identity_pool()
        .identity_pool_id(&p.id)
        .identity_pool_name("renamed")
        .allow_unauthenticated_identities(false);
    for i in 0..51 {
        update = update.identity_pool_tags(format!("n{i}"), "v");
    }
    assert_eq!(fail(update.send().await).0, "InvalidParameterException");
    assert_eq!(describe(&c, &p.id).await, before);
    assert_eq!(ts.count("SELECT count(*) FROM pool_tags"), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_replaces_everything_but_the_developer_provider_name_and_omitted_tags() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let full = create_full_pool(&c, "full").await;

    // Rename only: every optional member omitted is cleared, except DeveloperProviderName
    // (kept) and IdentityPoolTags (kept when omitted).
    let updated = view!(c
        .update_identity_pool()
        .identity_pool_id(&full.id)
        .identity_pool_name("renamed")
        .allow_unauthenticated_identities(false)
        .send()
        .await
        .unwrap());
    let expected = PoolView {
        id: full.id.clone(),
        name: "renamed".into(),
        allow_unauthenticated: false,
        allow_classic_flow: None,
        supported_login_providers: None,
        developer_provider_name: Some("login.mycompany".into()),
        openid_connect_provider_arns: None,
        cognito_identity_providers: None,
        saml_provider_arns: None,
        tags: full.tags.clone(),
    };
    assert_eq!(updated, expected);
    assert_eq!(describe(&c, &full.id).await, expected);

    // Setting members again, and tags given replace the old ones.
    let updated = view!(c
        .update_identity_pool()
        .identity_pool_id(&full.id)
        .identity_pool_name("again")
        .allow_unauthenticated_identities(true)
        .allow_classic_flow(false)
        .supported_login_providers(AMAZON, "amazon-app")
        .saml_provider_arns(SAML_ARN)
        .identity_pool_tags("only", "this")
        .send()
        .await
        .unwrap());
    let expected = PoolView {
        id: full.id.clone(),
        name: "again".into(),
        allow_unauthenticated: true,
        allow_classic_flow: Some(false),
        supported_login_providers: tags(&[(AMAZON, "amazon-app")]),
        developer_provider_name: Some("login.mycompany".into()),
        openid_connect_provider_arns: None,
        cognito_identity_providers: None,
        saml_provider_arns: Some(vec![SAML_ARN.into()]),
        tags: tags(&[("only", "this")]),
    };
    assert_eq!(updated, expected);
    assert_eq!(describe(&c, &full.id).await, expected);
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM pool_tags WHERE pool_id = '{}'",
            full.id
        )),
        1
    );

    // Providers removed by an update no longer authenticate; the ones set do.
    let err = get_id(&c, &full.id, &[(GOOGLE, "g")]).await.unwrap_err();
    assert_eq!(code(&err).0, "NotAuthorizedException");
    get_id(&c, &full.id, &[(AMAZON, "a")]).await.unwrap();

    // An empty tag map given clears the tags (and the omitted providers are cleared again).
    let updated = view!(c
        .update_identity_pool()
        .identity_pool_id(&full.id)
        .identity_pool_name("again")
        .allow_unauthenticated_identities(true)
        .set_identity_pool_tags(Some(HashMap::new()))
        .send()
        .await
        .unwrap());
    assert_eq!(updated.tags, tags(&[]));
    assert_eq!(describe(&c, &full.id).await.tags, tags(&[]));
    assert_eq!(ts.count("SELECT count(*) FROM pool_tags"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_provider_name_can_be_set_once_and_never_changed() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "dev").await;
    assert_eq!(describe(&c, &pool).await.developer_provider_name, None);

    // Unset → set is allowed.
    let p = view!(c
        .update_identity_pool()
        .identity_pool_id(&pool)
        .identity_pool_name("dev")
        .allow_unauthenticated_identities(true)
        .developer_provider_name("login.first")
        .send()
        .await
        .unwrap());
    assert_eq!(p.developer_provider_name.as_deref(), Some("login.first"));
    let before = describe(&c, &pool).await;
    assert_eq!(before, p);

    // Changing it is refused, and nothing else of the update is applied.
    let r = c
        .update_identity_pool()
        .identity_pool_id(&pool)
        .identity_pool_name("changed")
        .allow_unauthenticated_identities(false)
        .developer_provider_name("login.second")
        .identity_pool_tags("new", "tag")
        .send()
        .await;
    assert_eq!(fail(r).0, "InvalidParameterException");
    assert_eq!(describe(&c, &pool).await, before);
    assert_eq!(ts.count("SELECT count(*) FROM pool_tags"), 0);

    // Sending the same name again is no change, so it is fine.
    let p = view!(c
        .update_identity_pool()
        .identity_pool_id(&pool)
        .identity_pool_name("same")
        .allow_unauthenticated_identities(true)
        .developer_provider_name("login.first")
        .send()
        .await
        .unwrap());
    assert_eq!(p.developer_provider_name.as_deref(), Some("login.first"));
    assert_eq!(p.name, "same");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_of_an_unknown_pool_is_not_found_and_creates_nothing() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let r = c
        .update_identity_pool()
        .identity_pool_id(MISSING_POOL)
        .identity_pool_name("ghost")
        .allow_unauthenticated_identities(true)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(MISSING_POOL));
    assert_eq!(ts.count("SELECT count(*) FROM pools"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pool_is_gone_and_deleting_it_again_is_not_found() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_full_pool(&c, "doomed").await.id;
    let kept = create_pool(&c, "kept").await;
    c.delete_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let r = c
        .describe_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(&pool));
    let r = c
        .delete_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(&pool));
    let r = c
        .delete_identity_pool()
        .identity_pool_id(MISSING_POOL)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(MISSING_POOL));
    let (ids, _) = list_all_pools(&c, 60).await;
    assert_eq!(ids, vec![kept.clone()]);
    assert_eq!(ts.count("SELECT count(*) FROM pools"), 1);
    assert_eq!(ts.count("SELECT count(*) FROM pool_tags"), 0);
    describe(&c, &kept).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_identity_pools_takes_max_results_from_1_to_60() {
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;
    let c = ts.client();
    create_pool(&c, "one").await;
    for (n, bound) in [
        (0, "greater than or equal to 1"),
        (61, "less than or equal to 60"),
    ] {
        let r = ts
            .call("ListIdentityPools", &format!(r#"{{"MaxResults":{n}}}"#))
            .await;
        r.assert_error(400, "ValidationException");
        assert_eq!(
            r.message(),
            format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy \
                 constraint: Member must have value {bound}"
            )
        );
    }
    let r = ts.call("ListIdentityPools", "{}").await;
    r.assert_error(400, "ValidationException");
    assert_eq!(
        r.message(),
        "1 validation error detected: Value null at 'maxResults' failed to satisfy constraint: \
         Member must not be null"
    );
    for n in [1, 60] {
        let out = c.list_identity_pools().max_results(n).send().await.unwrap();
        assert_eq!(out.identity_pools().len(), 1);
        assert_eq!(out.next_token(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_identity_pools_pages_through_every_pool_once_in_creation_order() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(create_pool(&c, &format!("pool{i}")).await);
    }
    let (ids, sizes) = list_all_pools(&c, 2).await;
    assert_eq!(ids, created);
    assert_eq!(sizes, vec![2, 2, 1]);

    // Names come with ids.
    let out = c
        .list_identity_pools()
        .max_results(60)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = out
        .identity_pools()
        .iter()
        .map(|p| p.identity_pool_name().unwrap())
        .collect();
    assert_eq!(names, vec!["pool0", "pool1", "pool2", "pool3", "pool4"]);
    assert_eq!(out.next_token(), None);

    // An exact fit: no NextToken on the page that holds the last pool.
    let (ids, sizes) = list_all_pools(&c, 5).await;
    assert_eq!(ids, created);
    assert_eq!(sizes, vec![5]);

    // A deleted pool drops out of a listing already under way.
    let first = c.list_identity_pools().max_results(2).send().await.unwrap();
    let token = first.next_token().unwrap().to_string();
    c.delete_identity_pool()
        .identity_pool_id(&created[2])
        .send()
        .await
        .unwrap();
    let rest = c
        .list_identity_pools()
        .max_results(60)
        .next_token(token)
        .send()
        .await
        .unwrap();
    let rest: Vec<&str> = rest
        .identity_pools()
        .iter()
        .map(|p| p.identity_pool_id().unwrap())
        .collect();
    assert_eq!(rest, vec![created[3].as_str(), created[4].as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_identity_pools_refuses_garbage_and_other_accounts_tokens() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let other = ts.client_with(OTHER_AKID, OTHER_SECRET);
    for i in 0..3 {
        create_pool(&c, &format!("mine{i}")).await;
        create_pool(&other, &format!("theirs{i}")).await;
    }
    let r = c
        .list_identity_pools()
        .max_results(2)
        .next_token("garbage")
        .send()
        .await;
    assert_eq!(fail(r).0, "InvalidParameterException");

    let mine = c.list_identity_pools().max_results(1).send().await.unwrap();
    let token = mine.next_token().unwrap().to_string();
    let r = other
        .list_identity_pools()
        .max_results(2)
        .next_token(&token)
        .send()
        .await;
    assert_eq!(fail(r).0, "InvalidParameterException");
    // The token still works for its own account.
    let next = c
        .list_identity_pools()
        .max_results(1)
        .next_token(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(next.identity_pools()[0].identity_pool_name(), Some("mine1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_key_sees_none_of_this_accounts_pools_or_identities() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let other = ts.client_with(OTHER_AKID, OTHER_SECRET);
    let pool = create_full_pool(&c, "mine").await;
    let identity = get_id(&c, &pool.id, &[(GOOGLE, "alice")]).await.unwrap();
    let theirs = create_pool(&other, "theirs").await;

    let r = other
        .describe_identity_pool()
        .identity_pool_id(&pool.id)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(&pool.id));
    let r = other
        .update_identity_pool()
        .identity_pool_id(&pool.id)
        .identity_pool_name("hijacked")
        .allow_unauthenticated_identities(false)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(&pool.id));
    let r = other
        .delete_identity_pool()
        .identity_pool_id(&pool.id)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(&pool.id));
    let r = other
        .list_identities()
        .identity_pool_id(&pool.id)
        .max_results(10)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(&pool.id));
    let r = other
        .describe_identity()
        .identity_id(&identity)
        .send()
        .await;
    assert_eq!(fail(r), identity_not_found(&identity));

    let (ids, _) = list_all_pools(&other, 60).await;
    assert_eq!(ids, vec![theirs.clone()]);
    let (ids, _) = list_all_pools(&c, 60).await;
    assert_eq!(ids, vec![pool.id.clone()]);

    // The other way round too.
    let r = c
        .describe_identity_pool()
        .identity_pool_id(&theirs)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(&theirs));

    // Nothing the other key tried changed anything.
    assert_eq!(describe(&c, &pool.id).await, pool);
    let d = c
        .describe_identity()
        .identity_id(&identity)
        .send()
        .await
        .unwrap();
    assert_eq!(d.logins(), &[GOOGLE.to_string()]);
    assert_eq!(ts.count("SELECT count(*) FROM pools"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_identity_lists_sorted_provider_names_and_dates() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "describe").await;
    let start = now_ms() / 1000 - 1;
    let id = get_id(
        &c,
        &pool,
        &[(AMAZON, "a1"), (GOOGLE, "g1"), (FACEBOOK, "f1")],
    )
    .await
    .unwrap();
    let d = c.describe_identity().identity_id(&id).send().await.unwrap();
    assert_eq!(d.identity_id(), Some(id.as_str()));
    assert_eq!(
        d.logins(),
        &[GOOGLE.to_string(), FACEBOOK.to_string(), AMAZON.to_string()]
    );
    let created = d.creation_date().unwrap();
    let modified = d.last_modified_date().unwrap();
    assert!(created <= modified);
    let end = now_ms() / 1000 + 1;
    assert!(
        created.secs() >= start && created.secs() <= end,
        "{created:?}"
    );

    // A guest has no Logins at all.
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let d = c
        .describe_identity()
        .identity_id(&guest)
        .send()
        .await
        .unwrap();
    assert_eq!(d.identity_id(), Some(guest.as_str()));
    assert!(d.logins.is_none(), "{:?}", d.logins);
    assert!(d.creation_date().is_some());
    assert!(d.last_modified_date().is_some());

    let r = c
        .describe_identity()
        .identity_id(MISSING_IDENTITY)
        .send()
        .await;
    assert_eq!(fail(r), identity_not_found(MISSING_IDENTITY));
    // A pool id is not an identity id.
    let r = c.describe_identity().identity_id(&pool).send().await;
    assert_eq!(fail(r), identity_not_found(&pool));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_a_login_moves_last_modified_date_forward() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "modified").await;
    let id = get_id(&c, &pool, &[(GOOGLE, "g1")]).await.unwrap();
    let before = c.describe_identity().identity_id(&id).send().await.unwrap();
    let created = *before.creation_date().unwrap();
    let modified = *before.last_modified_date().unwrap();
    assert_eq!(created, modified);

    // A call that only reads known logins changes nothing.
    clock_past(&modified).await;
    assert_eq!(get_id(&c, &pool, &[(GOOGLE, "g1")]).await.unwrap(), id);
    let same = c.describe_identity().identity_id(&id).send().await.unwrap();
    assert_eq!(same.last_modified_date(), Some(&modified));

    clock_past(&modified).await;
    let linked = get_id(&c, &pool, &[(GOOGLE, "g1"), (FACEBOOK, "f1")])
        .await
        .unwrap();
    assert_eq!(linked, id);
    let after = c.describe_identity().identity_id(&id).send().await.unwrap();
    assert_eq!(after.creation_date(), Some(&created));
    let moved = *after.last_modified_date().unwrap();
    assert!(moved > modified, "{moved:?} is not after {modified:?}");
    assert_eq!(after.logins(), &[GOOGLE.to_string(), FACEBOOK.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_identities_pages_through_every_identity_once_in_creation_order() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "many").await;
    let other_pool = create_pool(&c, "other").await;
    let mut created = Vec::new();
    for i in 0..5 {
        let id = if i % 2 == 0 {
            get_id(&c, &pool, &[(GOOGLE, &format!("user{i}"))])
                .await
                .unwrap()
        } else {
            get_id(&c, &pool, &[]).await.unwrap()
        };
        created.push(id);
        get_id(&c, &other_pool, &[]).await.unwrap();
    }
    let (ids, sizes) = list_all_identities(&c, &pool, 2).await;
    assert_eq!(ids, created);
    assert_eq!(sizes, vec![2, 2, 1]);
    let (ids, sizes) = list_all_identities(&c, &pool, 5).await;
    assert_eq!(ids, created);
    assert_eq!(sizes, vec![5]);

    // Each entry is a full IdentityDescription.
    let out = c
        .list_identities()
        .identity_pool_id(&pool)
        .max_results(60)
        .send()
        .await
        .unwrap();
    let first = &out.identities()[0];
    assert_eq!(first.logins(), &[GOOGLE.to_string()]);
    assert!(first.creation_date().is_some() && first.last_modified_date().is_some());
    assert!(out.identities()[1].logins.is_none());

    // An empty pool lists nothing, with no token.
    let empty = create_pool(&c, "empty").await;
    let out = c
        .list_identities()
        .identity_pool_id(&empty)
        .max_results(10)
        .send()
        .await
        .unwrap();
    assert!(out.identities().is_empty());
    assert_eq!(out.next_token(), None);

    let r = c
        .list_identities()
        .identity_pool_id(MISSING_POOL)
        .max_results(10)
        .send()
        .await;
    assert_eq!(fail(r), pool_not_found(MISSING_POOL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_identities_refuses_a_token_of_another_pool_or_garbage() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let a = create_pool(&c, "a").await;
    let b = create_pool(&c, "b").await;
    for _ in 0..3 {
        get_id(&c, &a, &[]).await.unwrap();
        get_id(&c, &b, &[]).await.unwrap();
    }
    let page = c
        .list_identities()
        .identity_pool_id(&a)
        .max_results(1)
        .send()
        .await
        .unwrap();
    let token = page.next_token().unwrap().to_string();
    let r = c
        .list_identities()
        .identity_pool_id(&b)
        .max_results(1)
        .next_token(&token)
        .send()
        .await;
    assert_eq!(fail(r).0, "InvalidParameterException");
    let r = c
        .list_identities()
        .identity_pool_id(&a)
        .max_results(1)
        .next_token("garbage")
        .send()
        .await;
    assert_eq!(fail(r).0, "InvalidParameterException");
    // A pool listing token is not an identity listing token.
    let pools_token = c
        .list_identity_pools()
        .max_results(1)
        .send()
        .await
        .unwrap()
        .next_token()
        .unwrap()
        .to_string();
    let r = c
        .list_identities()
        .identity_pool_id(&a)
        .max_results(1)
        .next_token(&pools_token)
        .send()
        .await;
    assert_eq!(fail(r).0, "InvalidParameterException");
    // The token still works on its own pool.
    c.list_identities()
        .identity_pool_id(&a)
        .max_results(1)
        .next_token(&token)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_identities_accepts_hide_disabled() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "hide").await;
    let mut created = Vec::new();
    for i in 0..3 {
        created.push(
            get_id(&c, &pool, &[(GOOGLE, &format!("u{i}"))])
                .await
                .unwrap(),
        );
    }
    for hide in [true, false] {
        let out = c
            .list_identities()
            .identity_pool_id(&pool)
            .max_results(60)
            .hide_disabled(hide)
            .send()
            .await
            .unwrap();
        let ids: Vec<&str> = out
            .identities()
            .iter()
            .map(|i| i.identity_id().unwrap())
            .collect();
        assert_eq!(ids, created.iter().map(String::as_str).collect::<Vec<_>>());
    }
    // Paging with HideDisabled works the same way.
    let page = c
        .list_identities()
        .identity_pool_id(&pool)
        .max_results(2)
        .hide_disabled(true)
        .send()
        .await
        .unwrap();
    assert_eq!(page.identities().len(), 2);
    let rest = c
        .list_identities()
        .identity_pool_id(&pool)
        .max_results(2)
        .hide_disabled(true)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.identities().len(), 1);
    assert_eq!(
        rest.identities()[0].identity_id(),
        Some(created[2].as_str())
    );
    assert_eq!(rest.next_token(), None);
}

#[derive(Debug, PartialEq)]
struct IdentityView {
    id: String,
    logins: Option<Vec<String>>,
    created: Option<DateTime>,
    modified: Option<DateTime>,
}

async fn snapshot(
    c: &Client,
    pools: &[String],
) -> (
    Vec<String>,
    Vec<PoolView>,
    Vec<Vec<IdentityView>>,
    Vec<IdentityView>,
) {
    let (listed, _) = list_all_pools(c, 2).await;
    let mut views = Vec::new();
    let mut listings = Vec::new();
    let mut described = Vec::new();
    for p in pools {
        views.push(describe(c, p).await);
        let out = c
            .list_identities()
            .identity_pool_id(p)
            .max_results(60)
            .send()
            .await
            .unwrap();
        let mut listing = Vec::new();
        for i in out.identities() {
            let id = i.identity_id().unwrap().to_string();
            listing.push(IdentityView {
                id: id.clone(),
                logins: i.logins.clone(),
                created: i.creation_date,
                modified: i.last_modified_date,
            });
            let d = c.describe_identity().identity_id(&id).send().await.unwrap();
            described.push(IdentityView {
                id,
                logins: d.logins.clone(),
                created: d.creation_date,
                modified: d.last_modified_date,
            });
        }
        listings.push(listing);
    }
    (listed, views, listings, described)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_and_identities_survive_a_restart_unchanged() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let full = create_full_pool(&c, "full").await.id;
    let plain = create_pool(&c, "plain").await;
    let other = ts.client_with(OTHER_AKID, OTHER_SECRET);
    let theirs = create_pool(&other, "theirs").await;
    let alice = get_id(&c, &full, &[(GOOGLE, "alice"), (FACEBOOK, "alice-fb")])
        .await
        .unwrap();
    get_id(&c, &full, &[]).await.unwrap();
    get_id(&c, &plain, &[(AMAZON, "bob")]).await.unwrap();
    get_id(&c, &theirs, &[]).await.unwrap();
    // AllowClassicFlow false (not unset) and ServerSideTokenCheck false must survive as such.
    let tri = view!(c
        .create_identity_pool()
        .identity_pool_name("tristate")
        .allow_unauthenticated_identities(false)
        .allow_classic_flow(false)
        .cognito_identity_providers(cognito_provider(USER_POOL, "appclient", None))
        .send()
        .await
        .unwrap());
    let pools = vec![full.clone(), plain.clone(), tri.id.clone()];
    let before = snapshot(&c, &pools).await;
    assert_eq!(before.0, pools);
    assert_eq!(before.1[2], tri);
    assert_eq!(before.2[0].len(), 2);
    assert_eq!(before.2[1].len(), 1);
    assert_eq!(before.2[2].len(), 0);

    let token = c
        .list_identity_pools()
        .max_results(1)
        .send()
        .await
        .unwrap()
        .next_token()
        .unwrap()
        .to_string();

    let ts = ts.restart().await;
    let c = ts.client();
    let after = snapshot(&c, &pools).await;
    assert_eq!(after, before);
    // A listing under way before the restart goes on where it was.
    let rest = c
        .list_identity_pools()
        .max_results(60)
        .next_token(token)
        .send()
        .await
        .unwrap();
    let rest: Vec<String> = rest
        .identity_pools()
        .iter()
        .map(|p| p.identity_pool_id().unwrap().to_string())
        .collect();
    assert_eq!(rest, pools[1..].to_vec());
    let other = ts.client_with(OTHER_AKID, OTHER_SECRET);
    let (ids, _) = list_all_pools(&other, 60).await;
    assert_eq!(ids, vec![theirs]);
    // Logins are still linked: the same user gets the same identity.
    assert_eq!(
        get_id(&c, &full, &[(FACEBOOK, "alice-fb")]).await.unwrap(),
        alice
    );
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holds_at_most_a_thousand_pools() {
    let ts = TestServer::start().await;
    let c = ts.client();
    for batch in 0..20 {
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                c.create_identity_pool()
                    .identity_pool_name("many")
                    .allow_unauthenticated_identities(true)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(aws_sdk_cognitoidentity::Error::from)
            }));
        }
        for t in tasks {
            t.await
                .unwrap()
                .unwrap_or_else(|e| panic!("batch {batch}: {e:?}"));
        }
    }
    let e = c
        .create_identity_pool()
        .identity_pool_name("one-too-many")
        .allow_unauthenticated_identities(true)
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(code(&e).0, "LimitExceededException");
    assert_eq!(ts.count("SELECT count(*) FROM pools"), 1000);
    // Another account still has room.
    ts.client_with(OTHER_AKID, OTHER_SECRET)
        .create_identity_pool()
        .identity_pool_name("theirs")
        .allow_unauthenticated_identities(true)
        .send()
        .await
        .unwrap();
}
