//! Provider token verification end to end: OIDC JWTs checked against a JWKS served from a file
//! or a loopback HTTP server (keys generated here), and opaque tokens checked at a loopback
//! introspection double — all through GetId as the SDK sends it.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::doubles::{closed_port, Double, Req};
use crate::common::*;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use aws_sdk_cognitoidentity::types::CognitoIdentityProvider;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use idpool::config::{ProviderConfig, VerifyMode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const COULDNT: &str = "Invalid login token. Couldn't verify signed token.";
const ISSUER: &str = "Invalid login token. Issuer doesn't match providerName";
const NOT_SUPPORTED: &str = "Token is not from a supported provider of this identity pool.";
const CLIENT: &str = "web-client";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signing keys made for one test, and their public JWKs.
struct Keys {
    rsa: EncodingKey,
    rsa_jwk: Value,
    ec: EncodingKey,
    ec_jwk: Value,
}

impl Keys {
    fn generate(rsa_kid: &str, ec_kid: &str) -> Keys {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = pair.as_der().unwrap();
        let pem_body = STANDARD.encode(pkcs8.as_ref());
        let lines: Vec<&str> = pem_body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let parts = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let rsa_jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": rsa_kid,
            "n": URL_SAFE_NO_PAD.encode(&parts.n), "e": URL_SAFE_NO_PAD.encode(&parts.e),
        });

        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec_pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
        let point = ec_pair.public_key().as_ref();
        assert_eq!((point.len(), point[0]), (65, 4));
        let ec_jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": ec_kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        });
        Keys {
            rsa: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            rsa_jwk,
            ec: EncodingKey::from_ec_der(doc.as_ref()),
            ec_jwk,
        }
    }

    fn jwks(&self) -> String {
        json!({"keys": [self.rsa_jwk, self.ec_jwk]}).to_string()
    }

    fn rs256(&self, kid: &str, claims: &Value) -> String {
        sign(Algorithm::RS256, kid, &self.rsa, claims)
    }

    fn es256(&self, kid: &str, claims: &Value) -> String {
        sign(Algorithm::ES256, kid, &self.ec, claims)
    }
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.to_string());
    jsonwebtoken::encode(&h, claims, key).unwrap()
}

/// Claims of a valid token of `iss` for `sub`.
fn claims(iss: &str, sub: &str) -> Value {
    let t = now();
    json!({"iss": iss, "sub": sub, "aud": CLIENT, "iat": t, "exp": t + 3600,
           "jti": uuid::Uuid::new_v4().to_string()})
}

fn with(mut base: Value, key: &str, v: Value) -> Value {
    if v.is_null() {
        base.as_object_mut().unwrap().remove(key);
    } else {
        base[key] = v;
    }
    base
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn oidc(jwks: &str, audiences: &[&str]) -> ProviderConfig {
    ProviderConfig {
        verify: VerifyMode::Oidc,
        jwks: Some(jwks.to_string()),
        audiences: audiences.iter().map(|s| s.to_string()).collect(),
        url: None,
    }
}

/// Whether `needle` appears anywhere in what the database stores.
fn db_contains(ts: &TestServer, needle: &str) -> bool {
    db::stored_contains(&ts.config, needle)
}

async fn refused(
    c: &aws_sdk_cognitoidentity::Client,
    pool: &str,
    logins: &[(&str, &str)],
) -> (String, String) {
    code(&get_id(c, pool, logins).await.unwrap_err())
}

// ---------------------------------------------------------------------------------------------

const FILE_PROVIDER: &str = "login.example.test";

/// A server whose `login.example.test` keys are in a JWKS file (in the returned folder), and
/// a pool accepting `web-client` of that provider (SupportedLoginProviders) and trusting Google.
async fn file_setup(
    keys: &Keys,
) -> (
    TestServer,
    aws_sdk_cognitoidentity::Client,
    String,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, keys.jwks()).unwrap();
    let ts = TestServer::start_with(|c| {
        c.providers
            .named
            .insert(FILE_PROVIDER.into(), oidc(path.to_str().unwrap(), &[]));
    })
    .await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("oidc")
        .allow_unauthenticated_identities(false)
        .supported_login_providers(FILE_PROVIDER, CLIENT)
        .supported_login_providers("accounts.google.com", "g")
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    (ts, c, pool, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_are_accepted_and_one_user_is_one_identity() {
    let keys = Keys::generate("rsa-1", "ec-1");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, keys.jwks()).unwrap();
    let ts = TestServer::start_with(|c| {
        c.providers
            .named
            .insert(FILE_PROVIDER.into(), oidc(path.to_str().unwrap(), &[]));
    })
    .await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("oidc")
        .allow_unauthenticated_identities(false)
        .supported_login_providers(FILE_PROVIDER, CLIENT)
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    let iss = format!("https://{FILE_PROVIDER}");

    let first = keys.rs256("rsa-1", &claims(&iss, "user-1"));
    let second = keys.rs256("rsa-1", &claims(&iss, "user-1"));
    assert_ne!(first, second);
    let a = get_id(&c, &pool, &[(FILE_PROVIDER, &first)]).await.unwrap();
    let b = get_id(&c, &pool, &[(FILE_PROVIDER, &second)])
        .await
        .unwrap();
    assert_eq!(a, b, "two tokens of one user are one identity");
    let es = keys.es256("ec-1", &claims(&iss, "user-1"));
    assert_eq!(get_id(&c, &pool, &[(FILE_PROVIDER, &es)]).await.unwrap(), a);

    let other = keys.es256("ec-1", &claims(&iss, "user-2"));
    let o = get_id(&c, &pool, &[(FILE_PROVIDER, &other)]).await.unwrap();
    assert_ne!(o, a);

    // azp decides the audience when present; aud may be an array.
    let azp = with(claims(&iss, "user-1"), "aud", json!(["x", "y"]));
    let azp = with(azp, "azp", json!(CLIENT));
    assert_eq!(
        get_id(&c, &pool, &[(FILE_PROVIDER, &keys.rs256("rsa-1", &azp))])
            .await
            .unwrap(),
        a
    );
    let arr = with(claims(&iss, "user-1"), "aud", json!(["x", CLIENT]));
    assert_eq!(
        get_id(&c, &pool, &[(FILE_PROVIDER, &keys.es256("ec-1", &arr))])
            .await
            .unwrap(),
        a
    );
    // A file-backed provider also accepts a plain-http issuer (a local test issuer).
    let http_iss = claims(&format!("http://{FILE_PROVIDER}"), "user-1");
    assert_eq!(
        get_id(
            &c,
            &pool,
            &[(FILE_PROVIDER, &keys.rs256("rsa-1", &http_iss))]
        )
        .await
        .unwrap(),
        a
    );

    assert_eq!(ts.count("SELECT count(*) FROM identities"), 2);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 2);
    assert_eq!(
        ts.count("SELECT count(*) FROM logins WHERE subject = 'user-1'"),
        1
    );
    for t in [&first, &second, &es] {
        assert_eq!(
            ts.count(&format!(
                "SELECT count(*) FROM logins WHERE subject = '{t}'"
            )),
            0
        );
        assert!(!db_contains(&ts, t), "a raw token reached the database");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_with_aws_messages_and_link_nothing() {
    let keys = Keys::generate("rsa-1", "ec-1");
    let (ts, c, pool, _jwks_dir) = file_setup(&keys).await;
    let iss = format!("https://{FILE_PROVIDER}");
    let t = now();
    let good = claims(&iss, "user-1");

    let expired_exp = t - 301 - 60;
    let expired = keys.rs256("rsa-1", &with(good.clone(), "exp", json!(expired_exp)));
    let (ty, msg) = refused(&c, &pool, &[(FILE_PROVIDER, &expired)]).await;
    assert_eq!(ty, "NotAuthorizedException");
    let prefix = "Invalid login token. Token expired: ";
    let rest = msg.strip_prefix(prefix).unwrap_or_else(|| panic!("{msg}"));
    let (n, e) = rest.split_once(" >= ").unwrap();
    assert_eq!(e, expired_exp.to_string());
    assert!((n.parse::<i64>().unwrap() - t).abs() < 60, "{msg}");
    // Within the five-minute grace the token still counts.
    let grace = keys.rs256("rsa-1", &with(good.clone(), "exp", json!(t - 100)));
    assert!(get_id(&c, &pool, &[(FILE_PROVIDER, &grace)]).await.is_ok());
    let base_ids = ts.count("SELECT count(*) FROM identities");
    let base_logins = ts.count("SELECT count(*) FROM logins");
    assert_eq!((base_ids, base_logins), (1, 1));

    let tamper = |token: &str, sub: &str| {
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = b64json(&claims(&iss, sub));
        parts.join(".")
    };
    let good_rs = keys.rs256("rsa-1", &good);
    let hs_key = EncodingKey::from_secret(keys.rsa_jwk["n"].as_str().unwrap().as_bytes());
    let none = format!(
        "{}.{}.",
        b64json(&json!({"alg": "none", "kid": "rsa-1"})),
        b64json(&good)
    );
    let none_sig = format!(
        "{}.{}.c2ln",
        b64json(&json!({"alg": "none", "kid": "rsa-1"})),
        b64json(&good)
    );
    let cases: Vec<(&str, String, String)> = vec![
        (
            "not yet valid",
            keys.rs256("rsa-1", &with(good.clone(), "nbf", json!(t + 900))),
            "Invalid login token. Token is not yet valid.".into(),
        ),
        (
            "wrong issuer",
            keys.rs256(
                "rsa-1",
                &with(good.clone(), "iss", json!("https://evil.example")),
            ),
            ISSUER.into(),
        ),
        (
            "issuer without scheme",
            keys.rs256("rsa-1", &with(good.clone(), "iss", json!(FILE_PROVIDER))),
            ISSUER.into(),
        ),
        (
            "wrong audience",
            keys.rs256("rsa-1", &with(good.clone(), "aud", json!("other-client"))),
            NOT_SUPPORTED.into(),
        ),
        (
            "azp not accepted",
            keys.rs256("rsa-1", &with(good.clone(), "azp", json!("other-client"))),
            NOT_SUPPORTED.into(),
        ),
        (
            "no aud",
            keys.es256("ec-1", &with(good.clone(), "aud", Value::Null)),
            "Invalid login token. Missing a required claim: aud".into(),
        ),
        (
            "no exp",
            keys.es256("ec-1", &with(good.clone(), "exp", Value::Null)),
            "Invalid login token. Missing a required claim: exp".into(),
        ),
        (
            "no sub",
            keys.es256("ec-1", &with(good.clone(), "sub", Value::Null)),
            "Invalid login token. Missing a required claim: sub".into(),
        ),
        ("bad signature", tamper(&good_rs, "user-9"), COULDNT.into()),
        (
            "signature of another key",
            sign(
                Algorithm::RS256,
                "rsa-1",
                &Keys::generate("x", "y").rsa,
                &good,
            ),
            COULDNT.into(),
        ),
        ("alg none", none, COULDNT.into()),
        ("alg none with a signature", none_sig, COULDNT.into()),
        (
            "HS256 keyed with the public key",
            sign(Algorithm::HS256, "rsa-1", &hs_key, &good),
            COULDNT.into(),
        ),
        (
            "ES256 header on an RSA key",
            {
                let t = keys.es256("ec-1", &good);
                let mut p: Vec<&str> = t.split('.').collect();
                let h = b64json(&json!({"alg": "ES256", "kid": "rsa-1"}));
                p[0] = &h;
                p.join(".")
            },
            COULDNT.into(),
        ),
        (
            "RS384 on a key pinned to RS256",
            sign(Algorithm::RS384, "rsa-1", &keys.rsa, &good),
            COULDNT.into(),
        ),
        ("malformed", "not-a-jwt".into(), COULDNT.into()),
        ("two parts", "a.b".into(), COULDNT.into()),
    ];
    for (what, token, message) in &cases {
        let got = refused(&c, &pool, &[(FILE_PROVIDER, token)]).await;
        assert_eq!(
            got,
            ("NotAuthorizedException".to_string(), message.clone()),
            "{what}"
        );
        assert!(!got.1.contains(token.as_str()) || token.is_empty());
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), base_ids);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), base_logins);
    assert_eq!(
        ts.count("SELECT count(*) FROM logins WHERE subject = 'user-9'"),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_login_among_two_fails_the_call_and_links_nothing() {
    let keys = Keys::generate("rsa-1", "ec-1");
    let (ts, c, pool, _jwks_dir) = file_setup(&keys).await;
    let iss = format!("https://{FILE_PROVIDER}");
    let bad = keys.rs256("rsa-1", &with(claims(&iss, "u"), "aud", json!("nope")));
    let err = refused(
        &c,
        &pool,
        &[("accounts.google.com", "g-user"), (FILE_PROVIDER, &bad)],
    )
    .await;
    assert_eq!(err.1, NOT_SUPPORTED);
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 0);

    // Both good: one identity with both logins.
    let good = keys.rs256("rsa-1", &claims(&iss, "u"));
    let id = get_id(
        &c,
        &pool,
        &[("accounts.google.com", "g-user"), (FILE_PROVIDER, &good)],
    )
    .await
    .unwrap();
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM logins WHERE identity_id = '{id}'"
        )),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cognito_user_pool_id_tokens_are_accepted_and_access_tokens_are_not() {
    let keys = Keys::generate("up-rsa", "up-ec");
    let provider = "cognito-idp.us-east-1.amazonaws.com/us-east-1_Test";
    let path = Arc::new(tempfile::tempdir().unwrap());
    let file = path.path().join("jwks.json");
    std::fs::write(&file, keys.jwks()).unwrap();
    let ts = TestServer::start_with(|c| {
        c.providers
            .named
            .insert(provider.into(), oidc(file.to_str().unwrap(), &[]));
    })
    .await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("userpool")
        .allow_unauthenticated_identities(false)
        .cognito_identity_providers(
            CognitoIdentityProvider::builder()
                .provider_name(provider)
                .client_id("appclient")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    let iss = format!("https://{provider}");
    let t = now();
    let id_token = json!({"iss": iss, "sub": "u-sub", "aud": "appclient", "token_use": "id",
                          "cognito:username": "alice", "iat": t, "exp": t + 3600});
    let id = get_id(&c, &pool, &[(provider, &keys.rs256("up-rsa", &id_token))])
        .await
        .unwrap();
    assert!(id.starts_with("us-east-1:"));
    let access = json!({"iss": iss, "sub": "u-sub", "client_id": "appclient",
                        "token_use": "access", "iat": t, "exp": t + 3600});
    assert_eq!(
        refused(&c, &pool, &[(provider, &keys.rs256("up-rsa", &access))]).await,
        (
            "NotAuthorizedException".into(),
            "Invalid login token. Missing a required claim: aud".into()
        )
    );
    let other_client = with(id_token.clone(), "aud", json!("another-app"));
    assert_eq!(
        refused(
            &c,
            &pool,
            &[(provider, &keys.rs256("up-rsa", &other_client))]
        )
        .await
        .1,
        NOT_SUPPORTED
    );
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_jwks_on_loopback_with_an_oidc_arn_and_configured_audiences() {
    let keys = Keys::generate("k1", "e1");
    let (jwks, _doc) = Double::jwks(keys.jwks()).await;
    let host = jwks.host();
    let url = jwks.url("/jwks");
    let h = host.clone();
    let ts = TestServer::start_with(move |c| {
        c.providers
            .named
            .insert(h.clone(), oidc(&url, &["cli-app", CLIENT]));
    })
    .await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("oidcarn")
        .allow_unauthenticated_identities(false)
        .open_id_connect_provider_arns(format!("arn:aws:iam::000000000000:oidc-provider/{host}"))
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    assert_eq!(jwks.hits(), 0, "nothing is fetched before the first token");
    let iss = format!("http://{host}");
    let a = get_id(
        &c,
        &pool,
        &[(&host, &keys.rs256("k1", &claims(&iss, "s1")))],
    )
    .await
    .unwrap();
    let b = get_id(
        &c,
        &pool,
        &[(
            &host,
            &keys.es256("e1", &with(claims(&iss, "s1"), "aud", json!("cli-app"))),
        )],
    )
    .await
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(jwks.hits(), 1, "the JWKS is cached");
    let r = &jwks.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/jwks"));
    // The https issuer is accepted too; another host is not.
    get_id(
        &c,
        &pool,
        &[(
            &host,
            &keys.rs256("k1", &claims(&format!("https://{host}"), "s1")),
        )],
    )
    .await
    .unwrap();
    assert_eq!(
        refused(
            &c,
            &pool,
            &[(
                &host,
                &keys.rs256("k1", &claims("http://127.0.0.1:1", "s1"))
            )]
        )
        .await
        .1,
        ISSUER
    );
    jwks.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_refreshes_the_jwks_at_most_once_per_interval() {
    let keys = Keys::generate("k1", "e1");
    let (jwks, doc) = Double::jwks(keys.jwks()).await;
    let host = jwks.host();
    let url = jwks.url("/jwks");
    let h = host.clone();
    let ts = TestServer::start_with(move |c| {
        c.providers.named.insert(h.clone(), oidc(&url, &[]));
    })
    .await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("rotate")
        .allow_unauthenticated_identities(false)
        .supported_login_providers(host.as_str(), CLIENT)
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    let iss = format!("http://{host}");
    get_id(
        &c,
        &pool,
        &[(&host, &keys.rs256("k1", &claims(&iss, "s1")))],
    )
    .await
    .unwrap();
    assert_eq!(jwks.hits(), 1);

    // The provider rotates in a new key: a token naming it causes one refresh and passes.
    let newer = Keys::generate("k2", "e2");
    *doc.lock().unwrap() = json!({"keys": [keys.rsa_jwk, keys.ec_jwk, newer.rsa_jwk]}).to_string();
    get_id(
        &c,
        &pool,
        &[(&host, &newer.rs256("k2", &claims(&iss, "s1")))],
    )
    .await
    .unwrap();
    assert_eq!(jwks.hits(), 2);

    // Unknown kids within the interval: refused without fetching again.
    for kid in ["k3", "k4", "k5"] {
        assert_eq!(
            refused(&c, &pool, &[(&host, &keys.rs256(kid, &claims(&iss, "s1")))]).await,
            ("NotAuthorizedException".into(), COULDNT.into())
        );
    }
    assert_eq!(jwks.hits(), 2, "refreshes are rate-bounded");
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 1);
    jwks.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_is_refused_after_one_refresh() {
    let keys = Keys::generate("k1", "e1");
    let (jwks, _doc) = Double::jwks(keys.jwks()).await;
    let host = jwks.host();
    let url = jwks.url("/jwks");
    let h = host.clone();
    let ts = TestServer::start_with(move |c| {
        c.providers.named.insert(h.clone(), oidc(&url, &[CLIENT]));
    })
    .await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("unknownkid")
        .allow_unauthenticated_identities(false)
        .open_id_connect_provider_arns(format!("arn:aws:iam::000000000000:oidc-provider/{host}"))
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    let iss = format!("http://{host}");
    let forged = Keys::generate("nope", "nope-ec");
    // First token: the initial load finds no such kid.
    assert_eq!(
        refused(
            &c,
            &pool,
            &[(&host, &forged.rs256("nope", &claims(&iss, "s")))]
        )
        .await
        .1,
        COULDNT
    );
    assert_eq!(jwks.hits(), 1);
    // Next: one refresh, still unknown.
    assert_eq!(
        refused(
            &c,
            &pool,
            &[(&host, &forged.es256("nope-ec", &claims(&iss, "s")))]
        )
        .await
        .1,
        COULDNT
    );
    assert_eq!(jwks.hits(), 2);
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
    jwks.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_broken_jwks_is_an_external_service_error() {
    let keys = Keys::generate("k1", "e1");
    let down = format!("127.0.0.1:{}", closed_port());
    let broken = Double::start(|r: &Req| match r.path.as_str() {
        "/garbage" => (200, "<html>not json</html>".to_string()),
        _ => (500, "{}".to_string()),
    })
    .await;
    let garbage = "garbage.example.test";
    let failing = "failing.example.test";
    let (d, g, gu, f, fu) = (
        down.clone(),
        garbage,
        broken.url("/garbage"),
        failing,
        broken.url("/fail"),
    );
    let ts = TestServer::start_with(move |c| {
        c.providers
            .named
            .insert(d.clone(), oidc(&format!("http://{d}/jwks"), &[CLIENT]));
        c.providers.named.insert(g.into(), oidc(&gu, &[CLIENT]));
        c.providers.named.insert(f.into(), oidc(&fu, &[CLIENT]));
    })
    .await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("down")
        .allow_unauthenticated_identities(false)
        .supported_login_providers(down.as_str(), CLIENT)
        .supported_login_providers(garbage, CLIENT)
        .supported_login_providers(failing, CLIENT)
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    for provider in [down.as_str(), garbage, failing] {
        let token = keys.rs256("k1", &claims(&format!("http://{provider}"), "s"));
        for _ in 0..2 {
            let (ty, msg) = refused(&c, &pool, &[(provider, &token)]).await;
            assert_eq!(ty, "ExternalServiceException", "{provider}: {msg}");
            assert_eq!(msg, format!("{provider} is unavailable. Try again later."));
            assert!(!msg.contains(&token));
        }
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
    broken.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_jwks_file_stops_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(&dir);
    config.providers.named.insert(
        "x.example".into(),
        oidc(dir.path().join("absent.json").to_str().unwrap(), &[]),
    );
    let err = idpool::Server::start(config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("x.example") && err.contains("does not exist"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_decides_for_opaque_tokens() {
    let double = Double::start(|r: &Req| {
        let token = r
            .body
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .unwrap_or("");
        match token {
            "active-1" | "active-1b" => (
                200,
                json!({"active": true, "sub": "user-1", "client_id": "app", "scope": "openid"})
                    .to_string(),
            ),
            "inactive" => (200, json!({"active": false}).to_string()),
            "no-sub" => (200, json!({"active": true}).to_string()),
            "other-client" => (
                200,
                json!({"active": true, "sub": "u", "client_id": "evil"}).to_string(),
            ),
            "a%2Bb%3D%26" => (200, json!({"active": true, "sub": "odd"}).to_string()),
            "html" => (200, "<html>".to_string()),
            _ => (503, "{}".to_string()),
        }
    })
    .await;
    let provider = "opaque.example.test";
    let dead = "dead.example.test";
    let url = double.url("/introspect");
    let dead_url = format!("http://127.0.0.1:{}/introspect", closed_port());
    let ts = TestServer::start_with(move |c| {
        for (name, u) in [(provider, url), (dead, dead_url)] {
            c.providers.named.insert(
                name.into(),
                ProviderConfig {
                    verify: VerifyMode::Introspect,
                    jwks: None,
                    audiences: vec![],
                    url: Some(u),
                },
            );
        }
    })
    .await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("opaque")
        .allow_unauthenticated_identities(false)
        .supported_login_providers(provider, "app")
        .supported_login_providers(dead, "app")
        .send()
        .await
        .unwrap()
        .identity_pool_id;

    let a = get_id(&c, &pool, &[(provider, "active-1")]).await.unwrap();
    let seen = double.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/introspect");
    assert_eq!(seen[0].body, "token=active-1");
    assert!(seen[0]
        .headers
        .iter()
        .any(|(k, v)| k == "content-type" && v == "application/x-www-form-urlencoded"));
    // Another token of the same user: the same identity.
    assert_eq!(
        get_id(&c, &pool, &[(provider, "active-1b")]).await.unwrap(),
        a
    );
    // A repeated token is answered from the short cache.
    assert_eq!(
        get_id(&c, &pool, &[(provider, "active-1")]).await.unwrap(),
        a
    );
    assert_eq!(double.hits(), 2);
    // Form encoding of awkward bytes.
    get_id(&c, &pool, &[(provider, "a+b=&")]).await.unwrap();
    assert_eq!(double.requests()[2].body, "token=a%2Bb%3D%26");

    let na = |m: &str| ("NotAuthorizedException".to_string(), m.to_string());
    assert_eq!(
        refused(&c, &pool, &[(provider, "inactive")]).await,
        na("Invalid login token. Token is not active.")
    );
    assert_eq!(
        refused(&c, &pool, &[(provider, "no-sub")]).await,
        na("Invalid login token. Missing a required claim: sub")
    );
    assert_eq!(
        refused(&c, &pool, &[(provider, "other-client")]).await,
        na(NOT_SUPPORTED)
    );
    for (p, token) in [
        (provider, "server-error"),
        (provider, "html"),
        (dead, "active-1"),
    ] {
        let (ty, msg) = refused(&c, &pool, &[(p, token)]).await;
        assert_eq!(ty, "ExternalServiceException", "{p} {token}: {msg}");
        assert_eq!(msg, format!("{p} is unavailable. Try again later."));
        assert!(!msg.contains(token));
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 2);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 2);
    assert_eq!(
        ts.count("SELECT count(*) FROM logins WHERE subject = 'active-1'"),
        0
    );
    assert!(!db_contains(&ts, "active-1b"));
    double.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_credentials_go_only_to_the_identity_of_the_user_a_token_proves() {
    let keys = Keys::generate("rsa-1", "ec-1");
    let (ts, c, pool, _jwks_dir) = file_setup(&keys).await;
    set_roles(&c, &pool).await;
    let iss = format!("https://{FILE_PROVIDER}");
    let token = |sub: &str| keys.rs256("rsa-1", &claims(&iss, sub));
    let a = get_id(&c, &pool, &[(FILE_PROVIDER, &token("user-1"))])
        .await
        .unwrap();
    let b = get_id(&c, &pool, &[(FILE_PROVIDER, &token("user-2"))])
        .await
        .unwrap();
    let openid = |id: &str, login: String| {
        c.get_open_id_token()
            .identity_id(id)
            .logins(FILE_PROVIDER, login)
            .send()
    };
    let creds = |id: &str, login: String| {
        c.get_credentials_for_identity()
            .identity_id(id)
            .logins(FILE_PROVIDER, login)
            .send()
    };
    // Each user's own fresh token serves its own identity.
    let out = openid(&a, token("user-1")).await.unwrap();
    assert_eq!(out.identity_id(), Some(a.as_str()));
    let out = creds(&b, token("user-2")).await.unwrap();
    assert_eq!(out.identity_id(), Some(b.as_str()));

    // A token of user-2 whose payload was changed to claim user-1 proves no one, whichever
    // identity it is presented for.
    let forged = {
        let mut parts: Vec<String> = token("user-2").split('.').map(str::to_string).collect();
        parts[1] = b64json(&claims(&iss, "user-1"));
        parts.join(".")
    };
    let couldnt = ("NotAuthorizedException".to_string(), COULDNT.to_string());
    for id in [&a, &b] {
        assert_eq!(fail(openid(id, forged.clone()).await), couldnt);
        assert_eq!(fail(creds(id, forged.clone()).await), couldnt);
    }
    // A real token of user-1 does not reach user-2's identity, nor the other way round.
    let dont_match = (
        "NotAuthorizedException".to_string(),
        "Logins don't match. Please include at least one valid login for this identity or identity pool.".to_string(),
    );
    assert_eq!(fail(openid(&b, token("user-1")).await), dont_match);
    assert_eq!(fail(creds(&a, token("user-2")).await), dont_match);

    // None of it changed anything.
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 2);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 2);
    for (user, id) in [("user-1", &a), ("user-2", &b)] {
        let got = get_id(&c, &pool, &[(FILE_PROVIDER, &token(user))]).await;
        assert_eq!(&got.unwrap(), id);
        assert_eq!(
            openid(id, token(user)).await.unwrap().identity_id(),
            Some(id.as_str())
        );
    }
}

/// A `sub` with a NUL character cannot be a user id on every engine (PostgreSQL's text holds
/// none): such a token is refused as a client's mistake, signed or not, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_with_a_nul_character_is_refused_signed_or_not() {
    let keys = Keys::generate("rsa-1", "ec-1");
    let (ts, c, pool, _jwks_dir) = file_setup(&keys).await;
    let iss = format!("https://{FILE_PROVIDER}");
    let a = get_id(
        &c,
        &pool,
        &[(FILE_PROVIDER, &keys.rs256("rsa-1", &claims(&iss, "user-1")))],
    )
    .await
    .unwrap();
    let signed = keys.rs256("rsa-1", &claims(&iss, "user\u{0}1"));
    let forged = {
        let mut parts: Vec<String> = signed.split('.').map(str::to_string).collect();
        parts[2] = URL_SAFE_NO_PAD.encode(b"not the signature");
        parts.join(".")
    };
    let unusable = (
        "NotAuthorizedException".to_string(),
        "Invalid login token. Missing a required claim: sub".to_string(),
    );
    assert_eq!(
        fail(get_id(&c, &pool, &[(FILE_PROVIDER, &signed)]).await),
        unusable
    );
    let couldnt = ("NotAuthorizedException".to_string(), COULDNT.to_string());
    for token in [&signed, &forged] {
        let want = if token == &signed {
            &unusable
        } else {
            &couldnt
        };
        let r = c
            .get_open_id_token()
            .identity_id(&a)
            .logins(FILE_PROVIDER, token.as_str())
            .send()
            .await;
        assert_eq!(&fail(r), want);
        let r = c
            .get_credentials_for_identity()
            .identity_id(&a)
            .logins(FILE_PROVIDER, token.as_str())
            .send()
            .await;
        assert_eq!(&fail(r), want);
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 1);
}

/// A user id longer than any engine's login index keeps (a trusted token is its own user id)
/// is refused as a client's mistake, with nothing stored; one at the limit is a user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_id_past_2048_bytes_is_refused_and_one_at_the_limit_is_kept() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_with_roles(&c, "long-ids").await;
    let too_long = "é".repeat(1025);
    assert_eq!(
        fail(get_id(&c, &pool, &[("accounts.google.com", &too_long)]).await),
        (
            "NotAuthorizedException".to_string(),
            "Invalid login token. The user id it stands for is longer than 2048 bytes.".to_string()
        )
    );
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
    let longest = "é".repeat(1024);
    let id = get_id(&c, &pool, &[("accounts.google.com", &longest)])
        .await
        .unwrap();
    let again = get_id(&c, &pool, &[("accounts.google.com", &longest)])
        .await
        .unwrap();
    assert_eq!(id, again);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 1);
}
