//! GetId: sticky identities, implicit linking, conflicts, provider checks, guests, restarts.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_login_gets_the_same_identity_forever_even_across_restarts() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "sticky").await;
    let a = get_id(&c, &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    let again = get_id(&c, &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    assert_eq!(a, again);
    let bob = get_id(&c, &pool, &[("accounts.google.com", "bob")])
        .await
        .unwrap();
    assert_ne!(a, bob);
    let (region, uuid) = a.split_once(':').unwrap();
    assert_eq!(region, "us-east-1");
    // A UUIDv7: time-ordered (see docs/behaviour.md), the same text form as AWS's v4 ids.
    assert_eq!(uuid::Uuid::parse_str(uuid).unwrap().get_version_num(), 7);
    assert_eq!(uuid, uuid.to_lowercase());
    assert!(a < bob, "a later identity sorts after an earlier one");

    let ts = ts.restart().await;
    let c = ts.client();
    let after = get_id(&c, &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    assert_eq!(a, after);
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_get_a_new_identity_on_every_call_and_empty_logins_mean_guest() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "guests").await;
    let a = get_id(&c, &pool, &[]).await.unwrap();
    let b = get_id(&c, &pool, &[]).await.unwrap();
    assert_ne!(a, b);
    // Amplify sends an empty Logins map for guests.
    let r = ts
        .call(
            "GetId",
            &format!(r#"{{"IdentityPoolId":"{pool}","Logins":{{}}}}"#),
        )
        .await;
    assert_eq!(r.status, 200);
    let c3 = r.json()["IdentityId"].as_str().unwrap().to_string();
    assert!(c3 != a && c3 != b);
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 3);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_are_refused_when_the_pool_does_not_allow_them() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("noguests")
        .allow_unauthenticated_identities(false)
        .supported_login_providers("accounts.google.com", "g")
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    let err = get_id(&c, &pool, &[]).await.unwrap_err();
    assert_eq!(
        code(&err),
        (
            "NotAuthorizedException".into(),
            "Unauthenticated access is not supported for this identity pool.".into()
        )
    );
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
    // Logins still work.
    get_id(&c, &pool, &[("accounts.google.com", "u")])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_new_logins_make_one_identity_and_new_logins_link_to_the_owner() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "linking").await;
    let both = get_id(
        &c,
        &pool,
        &[("accounts.google.com", "g1"), ("graph.facebook.com", "f1")],
    )
    .await
    .unwrap();
    assert_eq!(
        get_id(&c, &pool, &[("accounts.google.com", "g1")])
            .await
            .unwrap(),
        both
    );
    assert_eq!(
        get_id(&c, &pool, &[("graph.facebook.com", "f1")])
            .await
            .unwrap(),
        both
    );

    // A known login plus a new one: the new one is linked to the known login's identity.
    let x = get_id(&c, &pool, &[("accounts.google.com", "g2")])
        .await
        .unwrap();
    let linked = get_id(
        &c,
        &pool,
        &[("accounts.google.com", "g2"), ("www.amazon.com", "a2")],
    )
    .await
    .unwrap();
    assert_eq!(linked, x);
    assert_eq!(
        get_id(&c, &pool, &[("www.amazon.com", "a2")])
            .await
            .unwrap(),
        x
    );

    let d = c.describe_identity().identity_id(&x).send().await.unwrap();
    assert_eq!(
        d.logins(),
        &[
            "accounts.google.com".to_string(),
            "www.amazon.com".to_string()
        ]
    );
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM logins WHERE identity_id = '{x}'"
        )),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_of_different_identities_conflict_and_change_nothing() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "conflict").await;
    let g = get_id(&c, &pool, &[("accounts.google.com", "g")])
        .await
        .unwrap();
    let f = get_id(&c, &pool, &[("graph.facebook.com", "f")])
        .await
        .unwrap();
    assert_ne!(g, f);
    let before_logins = ts.count("SELECT count(*) FROM logins");
    let before_ids = ts.count("SELECT count(*) FROM identities");
    let err = get_id(
        &c,
        &pool,
        &[
            ("accounts.google.com", "g"),
            ("graph.facebook.com", "f"),
            ("www.amazon.com", "new"),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(
        code(&err),
        (
            "ResourceConflictException".into(),
            "Logins are linked to different identities.".into()
        )
    );
    assert_eq!(ts.count("SELECT count(*) FROM logins"), before_logins);
    assert_eq!(ts.count("SELECT count(*) FROM identities"), before_ids);
    // The new login was not linked anywhere: it makes a fresh identity later.
    let n = get_id(&c, &pool, &[("www.amazon.com", "new")])
        .await
        .unwrap();
    assert!(n != g && n != f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_user_of_the_same_provider_cannot_join_an_identity() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "oneperprovider").await;
    let x = get_id(
        &c,
        &pool,
        &[("graph.facebook.com", "f1"), ("accounts.google.com", "g1")],
    )
    .await
    .unwrap();
    // Facebook user f1 is X's; Google user g2 is new, but X already has a Google user.
    let err = get_id(
        &c,
        &pool,
        &[("graph.facebook.com", "f1"), ("accounts.google.com", "g2")],
    )
    .await
    .unwrap_err();
    assert_eq!(
        code(&err),
        (
            "ResourceConflictException".into(),
            "Login is already linked to another account.".into()
        )
    );
    assert_eq!(
        ts.count("SELECT count(*) FROM logins WHERE subject = 'g2'"),
        0,
        "nothing was linked"
    );
    assert_eq!(
        get_id(&c, &pool, &[("graph.facebook.com", "f1")])
            .await
            .unwrap(),
        x
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_must_be_of_providers_the_pool_configures() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("providers")
        .allow_unauthenticated_identities(true)
        .supported_login_providers("accounts.google.com", "g")
        .developer_provider_name("login.mycompany")
        .cognito_identity_providers(
            aws_sdk_cognitoidentity::types::CognitoIdentityProvider::builder()
                .provider_name("cognito-idp.us-east-1.amazonaws.com/us-east-1_abc")
                .client_id("appclient")
                .build(),
        )
        .open_id_connect_provider_arns("arn:aws:iam::000000000000:oidc-provider/login.example.com")
        .saml_provider_arns("arn:aws:iam::000000000000:saml-provider/corp")
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    for key in [
        "accounts.google.com",
        "cognito-idp.us-east-1.amazonaws.com/us-east-1_abc",
        "login.example.com",
        "arn:aws:iam::000000000000:saml-provider/corp",
    ] {
        get_id(&c, &pool, &[(key, "someone")]).await.unwrap();
    }
    let before = ts.count("SELECT count(*) FROM identities");
    for key in [
        "graph.facebook.com",
        "login.mycompany",
        "cognito-identity.amazonaws.com",
    ] {
        let err = get_id(&c, &pool, &[(key, "x")]).await.unwrap_err();
        assert_eq!(
            code(&err),
            (
                "NotAuthorizedException".into(),
                "Token is not from a supported provider of this identity pool.".into()
            ),
            "{key}"
        );
    }
    // One bad login fails the whole call.
    let err = get_id(
        &c,
        &pool,
        &[("accounts.google.com", "new"), ("graph.facebook.com", "x")],
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err).0, "NotAuthorizedException");
    assert_eq!(ts.count("SELECT count(*) FROM identities"), before);

    // A pool without any provider says so.
    let bare = c
        .create_identity_pool()
        .identity_pool_name("bare")
        .allow_unauthenticated_identities(true)
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    let err = get_id(&c, &bare, &[("accounts.google.com", "x")])
        .await
        .unwrap_err();
    assert_eq!(
        code(&err),
        (
            "NotAuthorizedException".into(),
            format!("Identity pool - {bare} does not have identity providers configured.")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pools_and_foreign_account_ids_are_not_found() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "acct").await;
    let missing = "us-east-1:00000000-0000-4000-8000-000000000000";
    let err = get_id(&c, missing, &[]).await.unwrap_err();
    assert_eq!(
        code(&err),
        (
            "ResourceNotFoundException".into(),
            format!("IdentityPool '{missing}' not found.")
        )
    );
    let ok = c
        .get_id()
        .identity_pool_id(&pool)
        .account_id("000000000000")
        .send()
        .await;
    assert!(ok.is_ok());
    let err = c
        .get_id()
        .identity_pool_id(&pool)
        .account_id("123456789012")
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(
        code(&err),
        (
            "ResourceNotFoundException".into(),
            format!("IdentityPool '{pool}' not found.")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_holds_at_most_twenty_logins() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let mut create = c
        .create_identity_pool()
        .identity_pool_name("many")
        .allow_unauthenticated_identities(false);
    let mut arns = Vec::new();
    for i in 0..25 {
        arns.push(format!(
            "arn:aws:iam::000000000000:oidc-provider/idp{i}.example.com"
        ));
    }
    for a in &arns {
        create = create.open_id_connect_provider_arns(a);
    }
    let pool = create.send().await.unwrap().identity_pool_id;
    let first: Vec<(String, String)> = (0..10)
        .map(|i| (format!("idp{i}.example.com"), format!("u{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = first
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let x = get_id(&c, &pool, &refs).await.unwrap();
    // Ten more alongside a known one: 20 in all is fine.
    let mut more: Vec<(String, String)> = vec![("idp0.example.com".into(), "u0".into())];
    more.extend((10..19).map(|i| (format!("idp{i}.example.com"), format!("u{i}"))));
    let refs: Vec<(&str, &str)> = more.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    assert_eq!(get_id(&c, &pool, &refs).await.unwrap(), x);
    let twentieth = get_id(
        &c,
        &pool,
        &[("idp0.example.com", "u0"), ("idp19.example.com", "u19")],
    )
    .await
    .unwrap();
    assert_eq!(twentieth, x);
    let err = get_id(
        &c,
        &pool,
        &[("idp0.example.com", "u0"), ("idp20.example.com", "u20")],
    )
    .await
    .unwrap_err();
    assert_eq!(code(&err).0, "LimitExceededException");
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM logins WHERE identity_id = '{x}'"
        )),
        20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pool_removes_its_identities_and_logins() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "doomed").await;
    let keep = create_pool(&c, "kept").await;
    get_id(&c, &pool, &[("accounts.google.com", "a")])
        .await
        .unwrap();
    get_id(&c, &pool, &[]).await.unwrap();
    let kept_id = get_id(&c, &keep, &[("accounts.google.com", "a")])
        .await
        .unwrap();
    c.delete_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM identities WHERE pool_id = '{pool}'"
        )),
        0
    );
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM logins WHERE pool_id = '{pool}'"
        )),
        0
    );
    let err = get_id(&c, &pool, &[("accounts.google.com", "a")])
        .await
        .unwrap_err();
    assert_eq!(code(&err).0, "ResourceNotFoundException");
    assert_eq!(
        get_id(&c, &keep, &[("accounts.google.com", "a")])
            .await
            .unwrap(),
        kept_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_removed_from_the_pool_stops_working_at_once() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "shrinking").await;
    // Warm every cache on the way: the pool and the login's owner.
    let id = get_id(&c, &pool, &[("accounts.google.com", "zed")])
        .await
        .unwrap();
    assert_eq!(
        get_id(&c, &pool, &[("accounts.google.com", "zed")])
            .await
            .unwrap(),
        id
    );
    c.update_identity_pool()
        .identity_pool_id(&pool)
        .identity_pool_name("shrinking")
        .allow_unauthenticated_identities(false)
        .supported_login_providers("graph.facebook.com", "facebook-app")
        .send()
        .await
        .unwrap();
    let err = get_id(&c, &pool, &[("accounts.google.com", "zed")])
        .await
        .unwrap_err();
    assert_eq!(
        code(&err),
        (
            "NotAuthorizedException".into(),
            "Token is not from a supported provider of this identity pool.".into()
        )
    );
    assert_eq!(
        code(&get_id(&c, &pool, &[]).await.unwrap_err()).0,
        "NotAuthorizedException"
    );
}
