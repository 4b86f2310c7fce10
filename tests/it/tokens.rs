//! This server's OpenID tokens seen from outside: the discovery and JWKS documents over HTTP,
//! tokens checked by independent verifiers against the served JWKS, and key rotation with the
//! real binary (server stopped, and server running).

use std::time::{Duration, Instant};

use crate::common::*;
use aws_lc_rs::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA512};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Map, Value};

const BIN: &str = env!("CARGO_BIN_EXE_idpool");
const ISS: &str = "https://idp.example.test";
const POOL: &str = "us-east-1:11111111-2222-3333-4444-555555555555";

async fn served_jwks(addr: &str) -> Value {
    let r = raw::fetch(addr, "GET", "/.well-known/jwks_uri").await;
    assert_eq!(r.status, 200);
    r.json()
}

fn claims() -> Map<String, Value> {
    let Value::Object(m) = json!({
        "sub": "us-east-1:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "aud": POOL,
        "amr": ["unauthenticated"],
    }) else {
        unreachable!()
    };
    m
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Checks `token` against `jwks` twice, with nothing of idpool's code: the `jsonwebtoken`
/// crate (JWK → key, RS512, iss, aud, exp), and aws-lc-rs's raw RSASSA-PKCS1-v1_5/SHA-512
/// check with the modulus and exponent taken from the JWK. Returns the claims.
fn verify_independently(token: &str, jwks: &Value, iss: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    if header.alg != Algorithm::RS512 {
        return Err(format!("alg {:?}", header.alg));
    }
    let kid = header.kid.ok_or("no kid")?;

    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
    let jwk = set.find(&kid).ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::RS512);
    validation.set_issuer(&[iss]);
    validation.set_audience(&[POOL]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data =
        jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| e.to_string())?;

    let raw = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap();
    let n = URL_SAFE_NO_PAD.decode(raw["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(raw["e"].as_str().unwrap()).unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|e| e.to_string())?;
    RsaPublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    }
    .verify(&RSA_PKCS1_2048_8192_SHA512, signed.as_bytes(), &signature)
    .map_err(|_| "aws-lc-rs: bad signature".to_string())?;
    Ok(data.claims)
}

/// Runs `idpool keys rotate <args>` and returns the kid named on its one line of output.
async fn rotate_with_binary(args: Vec<std::ffi::OsString>) -> String {
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(["keys", "rotate"])
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    stdout
        .split_whitespace()
        .find(|w| w.starts_with("idpool-"))
        .unwrap_or_else(|| panic!("no kid in {stdout:?}"))
        .trim_end_matches([',', ';'])
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_jwks_are_served_and_point_at_each_other() {
    let ts = TestServer::start_with(|c| c.tokens.issuer = Some(ISS.into())).await;
    let addr = ts.host();

    let d = raw::fetch(addr, "GET", "/.well-known/openid-configuration").await;
    assert_eq!(d.status, 200);
    assert_eq!(d.header("content-type"), Some("application/json"));
    assert_eq!(d.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(d.header("access-control-allow-origin"), Some("*"));
    assert!(d.header("x-amzn-requestid").is_some());
    let doc = d.json();
    assert_eq!(doc["issuer"], ISS);
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS512"])
    );
    assert_eq!(doc["response_types_supported"], json!(["id_token"]));
    assert_eq!(doc["subject_types_supported"], json!(["public"]));
    assert!(doc["authorization_endpoint"]
        .as_str()
        .unwrap()
        .starts_with(ISS));

    // jwks_uri is <issuer>/.well-known/jwks_uri, and that path is what we serve.
    let jwks_uri = doc["jwks_uri"].as_str().unwrap();
    let path = jwks_uri.strip_prefix(ISS).unwrap();
    assert_eq!(path, "/.well-known/jwks_uri");
    let j = raw::fetch(addr, "GET", path).await;
    assert_eq!(j.status, 200);
    assert_eq!(j.header("content-type"), Some("application/json"));
    assert_eq!(j.header("cache-control"), Some("public, max-age=300"));
    let jwks = j.json();
    assert_eq!(jwks, ts.app().tokens.jwks());
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], ts.app().tokens.current_kid().as_str());
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS512");
    assert_eq!(keys[0]["use"], "sig");
    assert_eq!(keys[0]["e"], "AQAB");

    // HEAD: the same headers, no body.
    let h = raw::fetch(addr, "HEAD", path).await;
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("content-type"), Some("application/json"));
    assert_eq!(
        h.header("content-length"),
        Some(j.body.len().to_string().as_str())
    );

    // Everything else keeps its awsJson behaviour.
    for (method, path) in [
        ("GET", "/.well-known/other"),
        ("POST", "/.well-known/jwks_uri"),
        ("GET", "/"),
        ("GET", "/authorize"),
    ] {
        let r = raw::fetch(addr, method, path).await;
        assert_eq!(r.status, 400, "{method} {path}");
        assert_eq!(
            r.header("x-amzn-errortype"),
            Some("UnknownOperationException:")
        );
    }
    let r = ts.raw("GET", &[], b"").await;
    r.assert_error(400, "UnknownOperationException");
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_token_verifies_with_independent_code_against_the_served_jwks() {
    let ts = TestServer::start_with(|c| c.tokens.issuer = Some(ISS.into())).await;
    let addr = ts.host();
    let token = ts.app().tokens.issue(claims(), 600).unwrap();
    let jwks = served_jwks(addr).await;

    let c = verify_independently(&token, &jwks, ISS).unwrap();
    assert_eq!(c["iss"], ISS);
    assert_eq!(c["aud"], POOL);
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    assert_eq!(
        Value::Object(ts.app().tokens.verify(&token).await.unwrap()),
        c
    );

    // The independent verifiers do refuse what they should: a changed payload, another issuer.
    let p: Vec<&str> = token.split('.').collect();
    let mut forged = c.clone();
    forged["sub"] = json!("us-east-1:00000000-0000-0000-0000-000000000000");
    let forged = format!(
        "{}.{}.{}",
        p[0],
        URL_SAFE_NO_PAD.encode(forged.to_string()),
        p[2]
    );
    assert!(verify_independently(&forged, &jwks, ISS).is_err());
    assert!(verify_independently(&token, &jwks, "https://other.example.test").is_err());
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_on_a_stopped_server_keeps_old_tokens_valid() {
    let ts = TestServer::start_with(|c| c.tokens.issuer = Some(ISS.into())).await;
    let config = ts.config.clone();
    let old_kid = ts.app().tokens.current_kid();
    let old_token = ts.app().tokens.issue(claims(), 86_400).unwrap();
    let _dir = ts.stop().await;

    let new_kid = rotate_with_binary(database_args(&config)).await;
    assert_ne!(new_kid, old_kid);
    assert!(new_kid.starts_with("idpool-2-"), "{new_kid}");

    // The same database, a new server.
    let server = idpool::Server::start(config).await.unwrap();
    let addr = server.local_addr().to_string();
    let tokens = &server.app().tokens;
    assert_eq!(tokens.current_kid(), new_kid);
    let jwks = served_jwks(&addr).await;
    assert_eq!(kids(&jwks), vec![new_kid.clone(), old_kid.clone()]);

    // A token signed before the rotation still verifies, ours and independently.
    tokens.verify(&old_token).await.unwrap();
    verify_independently(&old_token, &jwks, ISS).unwrap();
    // New tokens use the new key.
    let new_token = tokens.issue(claims(), 600).unwrap();
    assert_eq!(kid_of(&new_token), new_kid);
    verify_independently(&new_token, &jwks, ISS).unwrap();

    // The old key is scheduled for retirement 24 h 5 min out; the new one is not.
    let (retire, created): (String, String) = db::Reader::open(&server.app().config).row(
        "SELECT old.retire_after, new.created_at FROM signing_keys old, signing_keys new
             WHERE old.kid = ?1 AND new.kid = ?2 AND new.retire_after IS NULL",
        &[&old_kid, &new_kid],
    );
    let gap = idpool::times::Millis::parse(&retire).unwrap().0
        - idpool::times::Millis::parse(&created).unwrap().0;
    assert!((gap - 86_700_000).abs() < 5_000, "{retire} vs {created}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_server_picks_up_a_rotation_without_restart() {
    let ts = TestServer::start_with(|c| c.tokens.issuer = Some(ISS.into())).await;
    let addr = ts.host().to_string();
    let old_kid = ts.app().tokens.current_kid();
    let old_token = ts.app().tokens.issue(claims(), 600).unwrap();

    // Through --config this time, as an operator would run it next to the server.
    let config_file = ts.dir.path().join("rotate.toml");
    std::fs::write(&config_file, database_toml(&ts.config)).unwrap();
    let started = Instant::now();
    let new_kid = rotate_with_binary(vec!["--config".into(), config_file.into()]).await;
    assert_ne!(new_kid, old_kid);

    let deadline = Instant::now() + idpool::tokens::RELOAD_INTERVAL + Duration::from_secs(5);
    let token = loop {
        let t = ts.app().tokens.issue(claims(), 600).unwrap();
        if kid_of(&t) == new_kid {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "still signing with {old_kid} {:?} after the rotation",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let jwks = served_jwks(&addr).await;
    assert_eq!(kids(&jwks), vec![new_kid, old_kid]);
    verify_independently(&token, &jwks, ISS).unwrap();
    verify_independently(&old_token, &jwks, ISS).unwrap();
    ts.app().tokens.verify(&old_token).await.unwrap();
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_refuses_a_missing_database_instead_of_creating_one() {
    if !sqlite_only("a missing SQLite file is refused, not created") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo").join("idpool.db");
    let arg = missing.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(["keys", "rotate", "--database"])
            .arg(arg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no database at"), "{err}");
    assert!(!missing.exists() && !missing.parent().unwrap().exists());
}
