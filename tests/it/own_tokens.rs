//! Our own OpenID tokens presented back under `cognito-identity.amazonaws.com`: they carry no
//! more than they were given. What they yield never outlives them, reflects the identity as it
//! is now (its links, the pool's guest setting, whether it is disabled), not as the token says.

use aws_sdk_cognitoidentity::Client;
use serde_json::{json, Value};

use crate::common::*;

const OURS: &str = "cognito-identity.amazonaws.com";

async fn token(
    c: &Client,
    id: &str,
    logins: &[(&str, &str)],
) -> Result<String, aws_sdk_cognitoidentity::Error> {
    let mut req = c.get_open_id_token().identity_id(id);
    for (k, v) in logins {
        req = req.logins(*k, *v);
    }
    let out = req
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)?;
    assert_eq!(out.identity_id(), Some(id));
    Ok(out.token.unwrap())
}

/// GetCredentialsForIdentity: the expiration in epoch seconds.
async fn credentials(
    c: &Client,
    id: &str,
    logins: &[(&str, &str)],
) -> Result<i64, aws_sdk_cognitoidentity::Error> {
    let mut req = c.get_credentials_for_identity().identity_id(id);
    for (k, v) in logins {
        req = req.logins(*k, *v);
    }
    let out = req
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)?;
    Ok(out.credentials.unwrap().expiration.unwrap().secs())
}

async fn developer_token(c: &Client, pool: &str, user: &str, duration: Option<i64>) -> String {
    c.get_open_id_token_for_developer_identity()
        .identity_pool_id(pool)
        .logins(DEV, user)
        .set_token_duration(duration)
        .send()
        .await
        .unwrap()
        .token
        .unwrap()
}

fn payload(token: &str) -> Value {
    use base64::Engine;
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn exp(token: &str) -> i64 {
    payload(token)["exp"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_token_stops_working_once_the_pool_stops_allowing_guests() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "guests").await;
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let t = token(&c, &guest, &[]).await.unwrap();
    // While guests are allowed, the guest's token works.
    token(&c, &guest, &[(OURS, &t)]).await.unwrap();
    credentials(&c, &guest, &[(OURS, &t)]).await.unwrap();

    c.update_identity_pool()
        .identity_pool_id(&pool)
        .identity_pool_name("guests")
        .allow_unauthenticated_identities(false)
        .supported_login_providers("accounts.google.com", "google-client")
        .supported_login_providers("graph.facebook.com", "facebook-app")
        .developer_provider_name(DEV)
        .send()
        .await
        .unwrap();
    let refused = (
        "NotAuthorizedException".to_string(),
        "Unauthenticated access is not supported for this identity pool.".to_string(),
    );
    assert_eq!(fail(token(&c, &guest, &[(OURS, &t)]).await), refused);
    assert_eq!(fail(credentials(&c, &guest, &[(OURS, &t)]).await), refused);
    assert_eq!(fail(token(&c, &guest, &[]).await), refused);

    // Signing in still works: a real login is more than guest access.
    let t2 = token(&c, &guest, &[(OURS, &t), ("accounts.google.com", "gus")])
        .await
        .unwrap();
    assert_eq!(payload(&t2)["amr"][0], "authenticated");
    // And the guest token does not open the identity now that it is signed in.
    assert_eq!(
        fail(credentials(&c, &guest, &[(OURS, &t)]).await).0,
        "NotAuthorizedException"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewing_a_developer_token_cannot_stretch_its_token_duration() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "duration").await;
    let short = developer_token(&c, &pool, "dana", Some(120)).await;
    let id = payload(&short)["sub"].as_str().unwrap().to_string();
    let limit = exp(&short);

    let renewed = token(&c, &id, &[(OURS, &short)]).await.unwrap();
    assert!(
        exp(&renewed) <= limit,
        "renewed until {} past the presented token's {limit}",
        exp(&renewed)
    );
    assert_eq!(payload(&renewed)["amr"][0], "authenticated");
    // Renewing the renewed token does not stretch it either.
    let again = token(&c, &id, &[(OURS, &renewed)]).await.unwrap();
    assert!(exp(&again) <= limit);
    // Credentials got with the token alone expire with it.
    let until = credentials(&c, &id, &[(OURS, &short)]).await.unwrap();
    assert!(
        until <= limit,
        "credentials until {until}, token until {limit}"
    );

    // A guest's token renewed gets no longer life either.
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let g = token(&c, &guest, &[]).await.unwrap();
    let g2 = token(&c, &guest, &[(OURS, &g)]).await.unwrap();
    assert!(exp(&g2) <= exp(&g));

    // A fresh developer token, asked for by the backend, is the way to a longer life.
    let long = developer_token(&c, &pool, "dana", Some(3600)).await;
    let p = payload(&long);
    assert_eq!(
        p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap(),
        3600
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amr_is_rebuilt_from_the_identitys_current_links() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "amr").await;
    let both = [
        ("accounts.google.com", "gail"),
        ("graph.facebook.com", "gail-fb"),
    ];
    let id = get_id(&c, &pool, &both).await.unwrap();
    let t = token(&c, &id, &both).await.unwrap();
    assert_eq!(
        payload(&t)["amr"],
        json!([
            "authenticated",
            "accounts.google.com",
            "accounts.google.com:gail",
            "graph.facebook.com",
            "graph.facebook.com:gail-fb"
        ])
    );
    c.unlink_identity()
        .identity_id(&id)
        .logins("accounts.google.com", "gail")
        .logins_to_remove("graph.facebook.com")
        .send()
        .await
        .unwrap();
    // The old token still proves the identity, but its Facebook entry is not carried over.
    let renewed = token(&c, &id, &[(OURS, &t)]).await.unwrap();
    assert_eq!(
        payload(&renewed)["amr"],
        json!([
            "authenticated",
            "accounts.google.com",
            "accounts.google.com:gail"
        ])
    );

    // A developer token whose developer user was since unlinked carries the links left.
    let d = c
        .get_open_id_token_for_developer_identity()
        .identity_pool_id(&pool)
        .logins(DEV, "devi")
        .logins("accounts.google.com", "devi-g")
        .send()
        .await
        .unwrap();
    let dev_id = d.identity_id().unwrap().to_string();
    let dt = d.token().unwrap().to_string();
    assert_eq!(
        payload(&dt)["amr"],
        json!([
            "authenticated",
            DEV,
            format!("{DEV}:{pool}:devi"),
            "accounts.google.com",
            "accounts.google.com:devi-g"
        ])
    );
    c.unlink_developer_identity()
        .identity_id(&dev_id)
        .identity_pool_id(&pool)
        .developer_provider_name(DEV)
        .developer_user_identifier("devi")
        .send()
        .await
        .unwrap();
    let renewed = token(&c, &dev_id, &[(OURS, &dt)]).await.unwrap();
    assert_eq!(
        payload(&renewed)["amr"],
        json!([
            "authenticated",
            "accounts.google.com",
            "accounts.google.com:devi-g"
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_identitys_tokens_are_refused() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "disabled").await;
    // A guest merged into a signed-in user's identity is disabled.
    let owner = get_id(&c, &pool, &[("accounts.google.com", "olga")])
        .await
        .unwrap();
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let gt = token(&c, &guest, &[]).await.unwrap();
    let mut req = c.get_open_id_token().identity_id(&guest);
    req = req.logins("accounts.google.com", "olga");
    assert_eq!(
        req.send().await.unwrap().identity_id(),
        Some(owner.as_str())
    );
    let forbidden = (
        "NotAuthorizedException".to_string(),
        format!("Access to Identity '{guest}' is forbidden."),
    );
    assert_eq!(fail(token(&c, &guest, &[(OURS, &gt)]).await), forbidden);
    assert_eq!(
        fail(credentials(&c, &guest, &[(OURS, &gt)]).await),
        forbidden
    );

    // A signed-in identity whose last login is unlinked is disabled, and so is its token.
    let x = get_id(&c, &pool, &[("graph.facebook.com", "xan")])
        .await
        .unwrap();
    let xt = token(&c, &x, &[("graph.facebook.com", "xan")])
        .await
        .unwrap();
    c.unlink_identity()
        .identity_id(&x)
        .logins(OURS, &xt)
        .logins_to_remove("graph.facebook.com")
        .send()
        .await
        .unwrap();
    let forbidden = (
        "NotAuthorizedException".to_string(),
        format!("Access to Identity '{x}' is forbidden."),
    );
    assert_eq!(fail(token(&c, &x, &[(OURS, &xt)]).await), forbidden);
    assert_eq!(fail(credentials(&c, &x, &[(OURS, &xt)]).await), forbidden);
    let r = c
        .unlink_identity()
        .identity_id(&x)
        .logins(OURS, &xt)
        .logins_to_remove("graph.facebook.com")
        .send()
        .await;
    assert_eq!(fail(r), forbidden);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_got_with_our_token_alone_expire_with_it() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "expiry").await;
    let u = get_id(&c, &pool, &[("accounts.google.com", "uma")])
        .await
        .unwrap();
    let ut = token(&c, &u, &[("accounts.google.com", "uma")])
        .await
        .unwrap();
    assert!(credentials(&c, &u, &[(OURS, &ut)]).await.unwrap() <= exp(&ut));
    // With a real login besides, the login is fresh proof: the usual hour.
    let with_login = credentials(&c, &u, &[(OURS, &ut), ("accounts.google.com", "uma")])
        .await
        .unwrap();
    assert!(with_login > exp(&ut));
}
