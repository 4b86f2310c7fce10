//! End-to-end flows with the AWS SDK for Rust: guest → signed-in upgrade, merges, developer
//! identities, credentials (local and through an STS double), UnlinkIdentity, DeleteIdentities.

use aws_sdk_cognitoidentity::types::{AmbiguousRoleResolutionType, RoleMapping, RoleMappingType};
use aws_sdk_cognitoidentity::Client;

use crate::common::doubles::{dead_url, sts_answer, Double, Reply, Req, STS_ACCESS_DENIED};
use crate::common::*;

async fn open_id_token(
    c: &Client,
    id: &str,
    logins: &[(&str, &str)],
) -> Result<(String, String), aws_sdk_cognitoidentity::Error> {
    let mut req = c.get_open_id_token().identity_id(id);
    for (k, v) in logins {
        req = req.logins(*k, *v);
    }
    let out = req
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)?;
    Ok((
        out.identity_id.unwrap_or_default(),
        out.token.unwrap_or_default(),
    ))
}

async fn credentials(
    c: &Client,
    id: &str,
    logins: &[(&str, &str)],
) -> Result<(String, aws_sdk_cognitoidentity::types::Credentials), aws_sdk_cognitoidentity::Error> {
    let mut req = c.get_credentials_for_identity().identity_id(id);
    for (k, v) in logins {
        req = req.logins(*k, *v);
    }
    let out = req
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)?;
    Ok((
        out.identity_id.unwrap_or_default(),
        out.credentials.unwrap(),
    ))
}

/// The payload of a JWT, unverified (the tokens tests verify signatures).
fn payload(token: &str) -> serde_json::Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_gets_credentials_for_the_guest_role_and_a_signed_in_user_for_the_authenticated_role(
) {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "creds").await;
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let (id, creds) = credentials(&c, &guest, &[]).await.unwrap();
    assert_eq!(id, guest);
    assert!(creds.access_key_id().unwrap().starts_with("ASIA"));
    assert!(creds.secret_key().is_some() && creds.session_token().is_some());
    let exp = creds.expiration().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (exp - now - 3600).abs() < 60,
        "valid one hour: {exp} vs {now}"
    );

    let user = get_id(&c, &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    let (id, _) = credentials(&c, &user, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    assert_eq!(id, user);
    // A signed-in identity without its logins is forbidden; with someone else's: logins don't match.
    assert_eq!(
        fail(
            c.get_credentials_for_identity()
                .identity_id(&user)
                .send()
                .await
        ),
        (
            "NotAuthorizedException".into(),
            format!("Access to Identity '{user}' is forbidden.")
        )
    );
    get_id(&c, &pool, &[("graph.facebook.com", "bob")])
        .await
        .unwrap();
    let e = credentials(&c, &user, &[("graph.facebook.com", "bob")]).await;
    // Bob's login belongs to another identity and alice's identity is authenticated without
    // presenting its own login: refused, nothing merged.
    assert_eq!(
        code(&e.unwrap_err()),
        (
            "NotAuthorizedException".into(),
            "Logins don't match. Please include at least one valid login for this identity or identity pool.".into()
        )
    );
    assert_eq!(
        ts.count("SELECT count(*) FROM identities WHERE disabled"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_without_the_needed_role_or_guest_access_refuse_credentials() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "noroles").await;
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    assert_eq!(
        fail(
            c.get_credentials_for_identity()
                .identity_id(&guest)
                .send()
                .await
        ),
        (
            "InvalidIdentityPoolConfigurationException".into(),
            "Invalid identity pool configuration. Check assigned IAM roles for this pool.".into()
        )
    );
    // Turning guests off afterwards locks existing guests out.
    c.update_identity_pool()
        .identity_pool_id(&pool)
        .identity_pool_name("noroles")
        .allow_unauthenticated_identities(false)
        .supported_login_providers("accounts.google.com", "google-client")
        .send()
        .await
        .unwrap();
    assert_eq!(
        fail(c.get_open_id_token().identity_id(&guest).send().await),
        (
            "NotAuthorizedException".into(),
            "Unauthenticated access is not supported for this identity pool.".into()
        )
    );
    let missing = "us-east-1:00000000-0000-4000-8000-000000000000";
    assert_eq!(
        fail(
            c.get_credentials_for_identity()
                .identity_id(missing)
                .send()
                .await
        ),
        (
            "ResourceNotFoundException".into(),
            format!("Identity '{missing}' not found.")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_signing_in_with_a_new_login_keeps_its_identity() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "upgrade").await;
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let (id, token) = open_id_token(&c, &guest, &[("accounts.google.com", "carol")])
        .await
        .unwrap();
    assert_eq!(id, guest, "linked in place");
    let claims = payload(&token);
    assert_eq!(claims["sub"], guest.as_str());
    assert_eq!(claims["aud"], pool.as_str());
    assert_eq!(claims["amr"][0], "authenticated");
    assert_eq!(claims["amr"][1], "accounts.google.com");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    assert_eq!(
        claims["https://cognito-identity.amazonaws.com/identity-pool-arn"],
        format!("arn:aws:cognito-identity:us-east-1:000000000000:identitypool/{pool}").as_str()
    );
    // From now on GetId finds it, and it is no longer usable as a guest.
    assert_eq!(
        get_id(&c, &pool, &[("accounts.google.com", "carol")])
            .await
            .unwrap(),
        guest
    );
    assert_eq!(
        fail(c.get_open_id_token().identity_id(&guest).send().await).0,
        "NotAuthorizedException"
    );
    // A guest token says so.
    let other_guest = get_id(&c, &pool, &[]).await.unwrap();
    let (_, t) = open_id_token(&c, &other_guest, &[]).await.unwrap();
    assert_eq!(payload(&t)["amr"], serde_json::json!(["unauthenticated"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_signing_in_as_a_known_user_is_merged_into_that_users_identity() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "merge").await;
    let known = get_id(&c, &pool, &[("accounts.google.com", "dave")])
        .await
        .unwrap();
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let (id, _) = credentials(
        &c,
        &guest,
        &[
            ("accounts.google.com", "dave"),
            ("graph.facebook.com", "dave-fb"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(id, known, "the owner survives and its id is returned");
    // The guest identity is disabled, visible to admins without logins.
    let d = c
        .describe_identity()
        .identity_id(&guest)
        .send()
        .await
        .unwrap();
    assert!(d.logins().is_empty());
    let merged: (i64, Option<String>) = ts.db().row(
        "SELECT disabled, merged_into FROM identities WHERE id = ?1",
        &[&guest],
    );
    assert_eq!(merged, (1, Some(known.clone())));
    assert_eq!(
        fail(
            c.get_credentials_for_identity()
                .identity_id(&guest)
                .send()
                .await
        ),
        (
            "NotAuthorizedException".into(),
            format!("Access to Identity '{guest}' is forbidden.")
        )
    );
    // The new Facebook login went to the survivor.
    assert_eq!(
        get_id(&c, &pool, &[("graph.facebook.com", "dave-fb")])
            .await
            .unwrap(),
        known
    );
    // HideDisabled hides it.
    let listed = c
        .list_identities()
        .identity_pool_id(&pool)
        .max_results(60)
        .hide_disabled(true)
        .send()
        .await
        .unwrap();
    assert!(listed
        .identities()
        .iter()
        .all(|i| i.identity_id() != Some(guest.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_signed_in_identities_merge_when_one_presents_the_others_login() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "merge2").await;
    let g = get_id(&c, &pool, &[("accounts.google.com", "erin")])
        .await
        .unwrap();
    let f = get_id(&c, &pool, &[("graph.facebook.com", "erin-fb")])
        .await
        .unwrap();
    let (id, _) = open_id_token(
        &c,
        &g,
        &[
            ("accounts.google.com", "erin"),
            ("graph.facebook.com", "erin-fb"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(id, f, "the owner of the other login survives");
    let d = c.describe_identity().identity_id(&f).send().await.unwrap();
    assert_eq!(
        d.logins(),
        &[
            "accounts.google.com".to_string(),
            "graph.facebook.com".to_string()
        ]
    );
    assert_eq!(
        get_id(&c, &pool, &[("accounts.google.com", "erin")])
            .await
            .unwrap(),
        f
    );
    // Two users of one provider cannot end up on one identity: refused, nothing changes.
    let x = get_id(&c, &pool, &[("accounts.google.com", "frank")])
        .await
        .unwrap();
    let y = get_id(&c, &pool, &[("accounts.google.com", "gina")])
        .await
        .unwrap();
    let e = open_id_token(
        &c,
        &x,
        &[
            ("accounts.google.com", "frank"),
            ("graph.facebook.com", "erin-fb"),
        ],
    )
    .await;
    assert_eq!(code(&e.unwrap_err()).0, "ResourceConflictException");
    assert_eq!(
        get_id(&c, &pool, &[("accounts.google.com", "frank")])
            .await
            .unwrap(),
        x
    );
    assert_ne!(x, y);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_token_is_accepted_back_as_a_login() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "own").await;
    let user = get_id(&c, &pool, &[("accounts.google.com", "hank")])
        .await
        .unwrap();
    let (_, token) = open_id_token(&c, &user, &[("accounts.google.com", "hank")])
        .await
        .unwrap();
    let (id, _) = credentials(&c, &user, &[("cognito-identity.amazonaws.com", &token)])
        .await
        .unwrap();
    assert_eq!(id, user);
    // Someone else's token of ours does not open this identity.
    let other = get_id(&c, &pool, &[("accounts.google.com", "ida")])
        .await
        .unwrap();
    let e = credentials(&c, &other, &[("cognito-identity.amazonaws.com", &token)]).await;
    assert_eq!(code(&e.unwrap_err()).0, "NotAuthorizedException");
    // A forged token is refused.
    let e = credentials(
        &c,
        &user,
        &[("cognito-identity.amazonaws.com", "eyJhbGciOiJub25lIn0.e30.")],
    )
    .await;
    assert_eq!(code(&e.unwrap_err()).0, "NotAuthorizedException");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_flow_explicitly_disabled_refuses_get_open_id_token() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("noclassic")
        .allow_unauthenticated_identities(true)
        .allow_classic_flow(false)
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    assert_eq!(
        fail(c.get_open_id_token().identity_id(&guest).send().await),
        (
            "InvalidParameterException".into(),
            "Basic (classic) flow is not enabled, please use enhanced flow.".into()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_identities_end_to_end() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "dev").await;
    let dev = |user: &'static str| {
        let c = c.clone();
        let pool = pool.clone();
        async move {
            c.get_open_id_token_for_developer_identity()
                .identity_pool_id(&pool)
                .logins("login.mycompany", user)
                .send()
                .await
                .map_err(aws_sdk_cognitoidentity::Error::from)
        }
    };
    let a = dev("user-a").await.unwrap();
    let a_id = a.identity_id().unwrap().to_string();
    let claims = payload(a.token().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert_eq!(
        claims["amr"],
        serde_json::json!([
            "authenticated",
            "login.mycompany",
            format!("login.mycompany:{pool}:user-a")
        ])
    );
    // Sticky.
    assert_eq!(dev("user-a").await.unwrap().identity_id().unwrap(), a_id);
    // Its token gets credentials for the authenticated role.
    let (id, _) = credentials(
        &c,
        &a_id,
        &[("cognito-identity.amazonaws.com", a.token().unwrap())],
    )
    .await
    .unwrap();
    assert_eq!(id, a_id);
    // TokenDuration.
    let long = c
        .get_open_id_token_for_developer_identity()
        .identity_pool_id(&pool)
        .logins("login.mycompany", "user-a")
        .token_duration(3600)
        .send()
        .await
        .unwrap();
    let cl = payload(long.token().unwrap());
    assert_eq!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(),
        3600
    );
    // A wrong developer provider.
    assert_eq!(
        fail(
            c.get_open_id_token_for_developer_identity()
                .identity_pool_id(&pool)
                .logins("login.other", "x")
                .send()
                .await
        )
        .0,
        "NotAuthorizedException"
    );
    // Lookup both ways.
    let l = c
        .lookup_developer_identity()
        .identity_pool_id(&pool)
        .developer_user_identifier("user-a")
        .send()
        .await
        .unwrap();
    assert_eq!(l.identity_id(), Some(a_id.as_str()));
    assert_eq!(l.developer_user_identifier_list(), &["user-a".to_string()]);
    // Merge b into a.
    let b = dev("user-b").await.unwrap();
    let b_id = b.identity_id().unwrap().to_string();
    assert_ne!(a_id, b_id);
    let m = c
        .merge_developer_identities()
        .identity_pool_id(&pool)
        .developer_provider_name("login.mycompany")
        .source_user_identifier("user-b")
        .destination_user_identifier("user-a")
        .send()
        .await
        .unwrap();
    assert_eq!(m.identity_id(), Some(a_id.as_str()));
    assert_eq!(dev("user-b").await.unwrap().identity_id().unwrap(), a_id);
    let l = c
        .lookup_developer_identity()
        .identity_pool_id(&pool)
        .identity_id(&a_id)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(l.developer_user_identifier_list(), &["user-a".to_string()]);
    let next = l.next_token().unwrap().to_string();
    let l2 = c
        .lookup_developer_identity()
        .identity_pool_id(&pool)
        .identity_id(&a_id)
        .max_results(1)
        .next_token(next)
        .send()
        .await
        .unwrap();
    assert_eq!(l2.developer_user_identifier_list(), &["user-b".to_string()]);
    assert!(l2.next_token().is_none());
    // The developer user cannot be registered to another identity.
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    assert_eq!(
        fail(
            c.get_open_id_token_for_developer_identity()
                .identity_pool_id(&pool)
                .identity_id(&guest)
                .logins("login.mycompany", "user-a")
                .send()
                .await
        )
        .0,
        "DeveloperUserAlreadyRegisteredException"
    );
    // But a guest can be upgraded with a new developer user.
    let up = c
        .get_open_id_token_for_developer_identity()
        .identity_pool_id(&pool)
        .identity_id(&guest)
        .logins("login.mycompany", "user-c")
        .send()
        .await
        .unwrap();
    assert_eq!(up.identity_id(), Some(guest.as_str()));
    // Unlink user-b from a; then user-b is new again.
    c.unlink_developer_identity()
        .identity_pool_id(&pool)
        .identity_id(&a_id)
        .developer_provider_name("login.mycompany")
        .developer_user_identifier("user-b")
        .send()
        .await
        .unwrap();
    assert_ne!(dev("user-b").await.unwrap().identity_id().unwrap(), a_id);
    assert_eq!(
        fail(
            c.unlink_developer_identity()
                .identity_pool_id(&pool)
                .identity_id(&a_id)
                .developer_provider_name("login.mycompany")
                .developer_user_identifier("user-b")
                .send()
                .await
        )
        .0,
        "ResourceConflictException"
    );
    let d = c
        .describe_identity()
        .identity_id(&a_id)
        .send()
        .await
        .unwrap();
    assert_eq!(d.logins(), &["login.mycompany".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlink_identity_needs_proof_and_removing_the_last_login_locks_the_identity() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "unlink").await;
    let x = get_id(
        &c,
        &pool,
        &[
            ("accounts.google.com", "jo"),
            ("graph.facebook.com", "jo-fb"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        fail(
            c.unlink_identity()
                .identity_id(&x)
                .logins("accounts.google.com", "not-jo")
                .logins_to_remove("graph.facebook.com")
                .send()
                .await
        )
        .0,
        "NotAuthorizedException"
    );
    c.unlink_identity()
        .identity_id(&x)
        .logins("accounts.google.com", "jo")
        .logins_to_remove("graph.facebook.com")
        .send()
        .await
        .unwrap();
    // The unlinked login is new next time it is seen.
    assert_ne!(
        get_id(&c, &pool, &[("graph.facebook.com", "jo-fb")])
            .await
            .unwrap(),
        x
    );
    assert_eq!(
        get_id(&c, &pool, &[("accounts.google.com", "jo")])
            .await
            .unwrap(),
        x
    );
    c.unlink_identity()
        .identity_id(&x)
        .logins("accounts.google.com", "jo")
        .logins_to_remove("accounts.google.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        fail(
            c.get_credentials_for_identity()
                .identity_id(&x)
                .send()
                .await
        ),
        (
            "NotAuthorizedException".into(),
            format!("Access to Identity '{x}' is forbidden.")
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_identities_reports_what_it_could_not_delete() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "del").await;
    let a = get_id(&c, &pool, &[("accounts.google.com", "a")])
        .await
        .unwrap();
    let b = get_id(&c, &pool, &[]).await.unwrap();
    let theirs = ts.client_with(OTHER_AKID, OTHER_SECRET);
    let their_pool = create_pool(&theirs, "theirs").await;
    let t = get_id(&theirs, &their_pool, &[]).await.unwrap();
    let missing = "us-east-1:00000000-0000-4000-8000-000000000000";
    let out = c
        .delete_identities()
        .identity_ids_to_delete(&a)
        .identity_ids_to_delete(&b)
        .identity_ids_to_delete(&t)
        .identity_ids_to_delete(missing)
        .send()
        .await
        .unwrap();
    let mut unprocessed: Vec<String> = out
        .unprocessed_identity_ids()
        .iter()
        .map(|u| u.identity_id().unwrap().to_string())
        .collect();
    unprocessed.sort();
    let mut expected = vec![t.clone(), missing.to_string()];
    expected.sort();
    assert_eq!(unprocessed, expected);
    assert!(out
        .unprocessed_identity_ids()
        .iter()
        .all(|u| u.error_code().map(|e| e.as_str()) == Some("AccessDenied")));
    assert_eq!(
        fail(c.describe_identity().identity_id(&a).send().await),
        (
            "ResourceNotFoundException".into(),
            format!("Identity '{a}' not found.")
        )
    );
    assert_eq!(
        ts.count(&format!("SELECT count(*) FROM identities WHERE id = '{t}'")),
        1
    );
    // The deleted login is new next time.
    assert_ne!(
        get_id(&c, &pool, &[("accounts.google.com", "a")])
            .await
            .unwrap(),
        a
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_mappings_choose_the_role_from_the_token_claims() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "mapped").await;
    c.set_identity_pool_roles()
        .identity_pool_id(&pool)
        .roles("authenticated", AUTH_ROLE)
        .roles("unauthenticated", UNAUTH_ROLE)
        .role_mappings(
            "accounts.google.com",
            RoleMapping::builder()
                .r#type(RoleMappingType::Token)
                .ambiguous_role_resolution(AmbiguousRoleResolutionType::Deny)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let user = get_id(&c, &pool, &[("accounts.google.com", "kim")])
        .await
        .unwrap();
    // Trust-mode tokens carry no role claims: the mapping is ambiguous and denies.
    let e = credentials(&c, &user, &[("accounts.google.com", "kim")]).await;
    assert_eq!(
        code(&e.unwrap_err()),
        (
            "NotAuthorizedException".into(),
            "The ambiguous role mapping rules for: accounts.google.com denied this request.".into()
        )
    );
    // Facebook has no mapping: the authenticated role.
    let fb = get_id(&c, &pool, &[("graph.facebook.com", "kim-fb")])
        .await
        .unwrap();
    credentials(&c, &fb, &[("graph.facebook.com", "kim-fb")])
        .await
        .unwrap();
}

/// An STS double on loopback: records the AssumeRoleWithWebIdentity requests and answers like
/// STS (or refuses like it).
async fn sts_double(refuse: bool) -> Double {
    Double::start(move |_| {
        if refuse {
            Reply::xml(403, STS_ACCESS_DENIED)
        } else {
            Reply::xml(
                200,
                sts_answer(
                    "ASIASTSDOUBLE0000001",
                    "sts-double-secret",
                    "sts-double-session",
                ),
            )
        }
    })
    .await
}

/// Verifies one of our tokens against the JWKS the server serves, with jsonwebtoken.
async fn verify_against_served_jwks(ts: &TestServer, token: &str) -> serde_json::Value {
    let jwks = ts.raw_get("/.well-known/jwks_uri").await.json();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap()
            .clone(),
    )
    .unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS512);
    v.set_audience(&[payload(token)["aud"].as_str().unwrap()]);
    v.set_issuer(&[ts.app().config.issuer()]);
    assert!(!ts.app().config.issuer().ends_with(":0"));
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
        .unwrap()
        .claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sts_source_assumes_the_chosen_role_with_a_verifiable_token_of_ours() {
    let sts = sts_double(false).await;
    let sts_url = sts.url("/");
    let ts = TestServer::start_with(move |c| {
        c.credentials.source = idpool::config::CredentialsSource::Sts;
        c.credentials.sts_endpoint = Some(sts_url);
    })
    .await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "sts").await;
    let user = get_id(&c, &pool, &[("accounts.google.com", "lee")])
        .await
        .unwrap();
    let (id, creds) = credentials(&c, &user, &[("accounts.google.com", "lee")])
        .await
        .unwrap();
    assert_eq!(id, user);
    assert_eq!(creds.access_key_id(), Some("ASIASTSDOUBLE0000001"));
    assert_eq!(creds.secret_key(), Some("sts-double-secret"));
    assert_eq!(creds.session_token(), Some("sts-double-session"));
    let form = sts.requests()[0].form();
    assert_eq!(form["Action"], "AssumeRoleWithWebIdentity");
    assert_eq!(form["RoleArn"], AUTH_ROLE);
    assert_eq!(form["RoleSessionName"], "CognitoIdentityCredentials");
    let claims = verify_against_served_jwks(&ts, &form["WebIdentityToken"]).await;
    assert_eq!(claims["sub"], user.as_str());
    assert!(
        claims.get("https://aws.amazon.com/tags").is_none(),
        "no tag map yet"
    );
    // A guest assumes the guest role.
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    credentials(&c, &guest, &[]).await.unwrap();
    assert_eq!(sts.requests()[1].form()["RoleArn"], UNAUTH_ROLE);
    // With a principal tag map, the token STS receives carries the session tags.
    c.set_principal_tag_attribute_map()
        .identity_pool_id(&pool)
        .identity_provider_name("accounts.google.com")
        .use_defaults(true)
        .send()
        .await
        .unwrap();
    credentials(&c, &user, &[("accounts.google.com", "lee")])
        .await
        .unwrap();
    let form = sts.requests()[2].form();
    let claims = verify_against_served_jwks(&ts, &form["WebIdentityToken"]).await;
    assert_eq!(
        claims["https://aws.amazon.com/tags"],
        serde_json::json!({"principal_tags": {"aud": ["google-client"], "sub": ["lee"]}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_refusals_and_outages_are_aws_shaped() {
    let sts = sts_double(true).await;
    let sts_url = sts.url("/");
    let ts = TestServer::start_with(move |c| {
        c.credentials.source = idpool::config::CredentialsSource::Sts;
        c.credentials.sts_endpoint = Some(sts_url);
    })
    .await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "sts-refuses").await;
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    assert_eq!(
        fail(
            c.get_credentials_for_identity()
                .identity_id(&guest)
                .send()
                .await
        ),
        (
            "InvalidIdentityPoolConfigurationException".into(),
            "Invalid identity pool configuration. Check assigned IAM roles for this pool.".into()
        )
    );
    // Nothing listens here.
    let dead_url = dead_url("/");
    let ts2 = TestServer::start_with(move |c| {
        c.credentials.source = idpool::config::CredentialsSource::Sts;
        c.credentials.sts_endpoint = Some(dead_url);
    })
    .await;
    let c2 = ts2.client();
    let pool2 = pool_with_roles(&c2, "sts-down").await;
    let guest2 = get_id(&c2, &pool2, &[]).await.unwrap();
    assert_eq!(
        fail(
            c2.get_credentials_for_identity()
                .identity_id(&guest2)
                .send()
                .await
        )
        .0,
        "ExternalServiceException"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_mappings_pick_the_role_sts_is_asked_for() {
    use aws_sdk_cognitoidentity::types::{
        MappingRule, MappingRuleMatchType, RulesConfigurationType,
    };
    let sts = sts_double(false).await;
    let sts_url = sts.url("/");
    let ts = TestServer::start_with(move |c| {
        c.credentials.source = idpool::config::CredentialsSource::Sts;
        c.credentials.sts_endpoint = Some(sts_url);
    })
    .await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "rules").await;
    let admin_role = "arn:aws:iam::000000000000:role/admins";
    c.set_identity_pool_roles()
        .identity_pool_id(&pool)
        .roles("authenticated", AUTH_ROLE)
        .roles("unauthenticated", UNAUTH_ROLE)
        .role_mappings(
            "accounts.google.com",
            RoleMapping::builder()
                .r#type(RoleMappingType::Rules)
                .ambiguous_role_resolution(AmbiguousRoleResolutionType::AuthenticatedRole)
                .rules_configuration(
                    RulesConfigurationType::builder()
                        .rules(
                            MappingRule::builder()
                                .claim("sub")
                                .match_type(MappingRuleMatchType::StartsWith)
                                .value("admin-")
                                .role_arn(admin_role)
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // In trust mode a login's only claim is sub, the token itself.
    let admin = get_id(&c, &pool, &[("accounts.google.com", "admin-ann")])
        .await
        .unwrap();
    credentials(&c, &admin, &[("accounts.google.com", "admin-ann")])
        .await
        .unwrap();
    let plain = get_id(&c, &pool, &[("accounts.google.com", "bo")])
        .await
        .unwrap();
    credentials(&c, &plain, &[("accounts.google.com", "bo")])
        .await
        .unwrap();
    let seen: Vec<_> = sts.requests().iter().map(Req::form).collect();
    assert_eq!(seen[0]["RoleArn"], admin_role, "the matching rule's role");
    assert_eq!(
        seen[1]["RoleArn"], AUTH_ROLE,
        "no rule matched: AuthenticatedRole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_operations_refuse_what_they_must_and_change_nothing() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "dev-errors").await;
    let other_pool = pool_with_roles(&c, "dev-other").await;
    let dev = |pool: &str, user: &str, id: Option<&str>| {
        let mut req = c
            .get_open_id_token_for_developer_identity()
            .identity_pool_id(pool)
            .logins("login.mycompany", user);
        if let Some(id) = id {
            req = req.identity_id(id);
        }
        req.send()
    };
    let a = dev(&pool, "a", None).await.unwrap().identity_id.unwrap();
    let b = dev(&pool, "b", None).await.unwrap().identity_id.unwrap();
    let before = ts.count("SELECT count(*) FROM developer_users");

    // An identity of another pool is not found here.
    let elsewhere = get_id(&c, &other_pool, &[]).await.unwrap();
    assert_eq!(
        fail(dev(&pool, "new", Some(&elsewhere)).await),
        (
            "ResourceNotFoundException".into(),
            format!("Identity '{elsewhere}' not found.")
        )
    );
    // A signed-in identity needs one of its own logins alongside.
    let google = get_id(&c, &pool, &[("accounts.google.com", "gg")])
        .await
        .unwrap();
    assert_eq!(
        fail(dev(&pool, "new", Some(&google)).await),
        (
            "NotAuthorizedException".into(),
            "Logins don't match. Please include at least one valid login for this identity or identity pool.".into()
        )
    );
    // With it, the developer user joins that identity.
    let joined = c
        .get_open_id_token_for_developer_identity()
        .identity_pool_id(&pool)
        .identity_id(&google)
        .logins("login.mycompany", "g-dev")
        .logins("accounts.google.com", "gg")
        .send()
        .await
        .unwrap();
    assert_eq!(joined.identity_id(), Some(google.as_str()));

    // Merge: unknown users, a foreign provider name.
    let merge = |src: &str, dst: &str, provider: &str| {
        c.merge_developer_identities()
            .identity_pool_id(&pool)
            .developer_provider_name(provider)
            .source_user_identifier(src)
            .destination_user_identifier(dst)
            .send()
    };
    assert_eq!(
        fail(merge("nobody", "a", "login.mycompany").await),
        (
            "ResourceNotFoundException".into(),
            "Developer user identifier 'nobody' not found.".into()
        )
    );
    assert_eq!(
        fail(merge("b", "a", "login.other").await),
        (
            "NotAuthorizedException".into(),
            "This identity pool does not support the specified developer provider".into()
        )
    );
    // Two Google users cannot end on one identity: the merge is refused whole.
    let g2 = c
        .get_open_id_token_for_developer_identity()
        .identity_pool_id(&pool)
        .identity_id(&b)
        .logins("login.mycompany", "b")
        .logins("accounts.google.com", "other-google")
        .send()
        .await
        .unwrap();
    assert_eq!(g2.identity_id(), Some(b.as_str()));
    assert_eq!(
        fail(merge("b", "g-dev", "login.mycompany").await).0,
        "ResourceConflictException"
    );
    assert_eq!(
        ts.count("SELECT count(*) FROM identities WHERE disabled"),
        0
    );

    // Lookup: neither key, keys that disagree, a garbage page token.
    assert_eq!(
        fail(
            c.lookup_developer_identity()
                .identity_pool_id(&pool)
                .send()
                .await
        )
        .0,
        "InvalidParameterException"
    );
    assert_eq!(
        fail(
            c.lookup_developer_identity()
                .identity_pool_id(&pool)
                .identity_id(&a)
                .developer_user_identifier("b")
                .send()
                .await
        )
        .0,
        "ResourceConflictException"
    );
    assert_eq!(
        fail(
            c.lookup_developer_identity()
                .identity_pool_id(&pool)
                .identity_id(&a)
                .next_token("bm9wZQ")
                .send()
                .await
        )
        .0,
        "InvalidParameterException"
    );
    // UnlinkIdentity does not remove developer users.
    assert_eq!(
        fail(
            c.unlink_identity()
                .identity_id(&google)
                .logins("accounts.google.com", "gg")
                .logins_to_remove("login.mycompany")
                .send()
                .await
        )
        .0,
        "InvalidParameterException"
    );
    assert_eq!(
        ts.count("SELECT count(*) FROM developer_users"),
        before + 1,
        "only g-dev was added"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_id_tokens_carry_the_principal_tags_of_every_stored_map_as_they_are_now() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "tagged-tokens").await;
    let both = [
        ("accounts.google.com", "lee"),
        ("graph.facebook.com", "fb-lee"),
    ];
    let user = get_id(&c, &pool, &both).await.unwrap();
    let tags = |token: &str| payload(token).get("https://aws.amazon.com/tags").cloned();
    let (_, token) = open_id_token(&c, &user, &both).await.unwrap();
    assert_eq!(tags(&token), None, "no tag map yet");

    c.set_principal_tag_attribute_map()
        .identity_pool_id(&pool)
        .identity_provider_name("accounts.google.com")
        .use_defaults(true)
        .send()
        .await
        .unwrap();
    c.set_principal_tag_attribute_map()
        .identity_pool_id(&pool)
        .identity_provider_name("graph.facebook.com")
        .use_defaults(false)
        .principal_tags("who", "sub")
        .send()
        .await
        .unwrap();
    let (id, token) = open_id_token(&c, &user, &both).await.unwrap();
    assert_eq!(id, user);
    assert_eq!(
        tags(&token),
        Some(serde_json::json!({"principal_tags": {
            "aud": ["google-client"], "sub": ["lee"], "who": ["fb-lee"]
        }}))
    );
    // One login alone carries only its own provider's tags.
    let (_, token) = open_id_token(&c, &user, &both[1..]).await.unwrap();
    assert_eq!(
        tags(&token),
        Some(serde_json::json!({"principal_tags": {"who": ["fb-lee"]}}))
    );
    // A changed map is what the next token carries.
    c.set_principal_tag_attribute_map()
        .identity_pool_id(&pool)
        .identity_provider_name("graph.facebook.com")
        .use_defaults(false)
        .principal_tags("person", "sub")
        .send()
        .await
        .unwrap();
    let (_, token) = open_id_token(&c, &user, &both[1..]).await.unwrap();
    assert_eq!(
        tags(&token),
        Some(serde_json::json!({"principal_tags": {"person": ["fb-lee"]}}))
    );
    // A guest presents no login, so its token carries no tags.
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let (_, token) = open_id_token(&c, &guest, &[]).await.unwrap();
    assert_eq!(tags(&token), None);
}

/// Developer user ids the model allows (1,024 characters) but no engine's index keeps when
/// their characters take several bytes: past 2048 bytes they are refused, with nothing
/// stored; up to it they are users like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_user_ids_past_2048_bytes_are_refused_and_up_to_it_kept() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "long-developer-ids").await;
    // Varied three-byte characters, so no engine can shrink them.
    let text = |n: u32| -> String {
        (0..n)
            .map(|i| char::from_u32(0x4e00 + (i * 7919) % 0x5000).unwrap())
            .collect()
    };
    let token = |user: String| {
        c.get_open_id_token_for_developer_identity()
            .identity_pool_id(&pool)
            .logins(DEV, user)
            .send()
    };
    assert_eq!(
        fail(token(text(1000)).await),
        (
            "InvalidParameterException".to_string(),
            "Developer user identifier is longer than 2048 bytes.".to_string()
        )
    );
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
    let longest = text(682); // 2046 bytes
    let first = token(longest.clone()).await.unwrap();
    let again = token(longest).await.unwrap();
    assert_eq!(first.identity_id(), again.identity_id());
    assert_eq!(ts.count("SELECT count(*) FROM developer_users"), 1);
}
