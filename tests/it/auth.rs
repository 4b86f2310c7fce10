//! Admin operations answer only callers that sign (SigV4) with a configured key; public
//! operations answer anyone, signed or not. A refused request leaves no trace.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, Uri};
use idpool::auth::sigv4::{sign, SigningKey};

use crate::common::*;

const CREATE: &str = r#"{"IdentityPoolName":"signed","AllowUnauthenticatedIdentities":true}"#;

fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let dt = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// A signed request, as parts the tests can tamper with before sending.
struct Signed {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The Host to send, when not the server's address.
    host: Option<String>,
}

#[derive(Clone)]
struct Spec<'a> {
    akid: &'a str,
    secret: &'a str,
    region: &'a str,
    service: &'a str,
    when: SystemTime,
    target: &'a str,
    body: &'a str,
    security_token: Option<&'a str>,
    /// A signed `x-amz-content-sha256` header.
    content_sha256: Option<&'a str>,
    /// The Host to sign and send, instead of the server's address.
    host: Option<&'a str>,
}

impl<'a> Spec<'a> {
    fn new() -> Spec<'a> {
        Spec {
            akid: AKID,
            secret: SECRET,
            region: "us-east-1",
            service: "cognito-identity",
            when: SystemTime::now(),
            target: "AWSCognitoIdentityService.CreateIdentityPool",
            body: CREATE,
            security_token: None,
            content_sha256: None,
            host: None,
        }
    }
}

fn signed(ts: &TestServer, s: &Spec) -> Signed {
    let host = s.host.unwrap_or_else(|| ts.host()).to_string();
    let mut pairs = vec![
        ("host".to_string(), host),
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("x-amz-date".to_string(), amz_date(s.when)),
        ("x-amz-target".to_string(), s.target.to_string()),
    ];
    if let Some(t) = s.security_token {
        pairs.push(("x-amz-security-token".to_string(), t.to_string()));
    }
    if let Some(h) = s.content_sha256 {
        pairs.push(("x-amz-content-sha256".to_string(), h.to_string()));
    }
    let mut map = HeaderMap::new();
    for (k, v) in &pairs {
        map.insert(
            http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let auth = sign(
        &Method::POST,
        &Uri::from_static("/"),
        &map,
        s.body.as_bytes(),
        &SigningKey {
            access_key_id: s.akid,
            secret_access_key: s.secret,
        },
        s.region,
        s.service,
    )
    .unwrap();
    // The raw client sends Host itself.
    let mut headers: Vec<(String, String)> =
        pairs.into_iter().filter(|(k, _)| k != "host").collect();
    headers.push(("authorization".to_string(), auth));
    Signed {
        headers,
        body: s.body.as_bytes().to_vec(),
        host: s.host.map(str::to_string),
    }
}

async fn send(ts: &TestServer, s: &Signed) -> RawResponse {
    let headers: Vec<(&str, &str)> = s
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if let Some(host) = &s.host {
        return ts
            .raw_bytes(&raw::closing(host, "POST", "/", &headers, &s.body))
            .await;
    }
    ts.raw("POST", &headers, &s.body).await
}

fn pools(ts: &TestServer) -> i64 {
    ts.count("SELECT count(*) FROM pools")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correctly_signed_request_is_accepted() {
    let ts = TestServer::start().await;
    let r = send(&ts, &signed(&ts, &Spec::new())).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(pools(&ts), 1);
    let owner: String = ts.db().value("SELECT account_id FROM pools", &[]);
    assert_eq!(owner, "000000000000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_signature_is_refused_and_leaves_no_trace() {
    let ts = TestServer::start().await;

    // Unsigned.
    let r = ts.call("CreateIdentityPool", CREATE).await;
    r.assert_error(400, "MissingAuthenticationTokenException");
    assert_eq!(r.message(), "Missing Authentication Token");

    // Unknown key.
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                akid: "AKIDUNKNOWN",
                ..Spec::new()
            },
        ),
    )
    .await;
    r.assert_error(400, "UnrecognizedClientException");
    assert_eq!(
        r.message(),
        "The security token included in the request is invalid."
    );

    // Wrong secret.
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                secret: "wrong",
                ..Spec::new()
            },
        ),
    )
    .await;
    r.assert_error(400, "InvalidSignatureException");
    assert!(r
        .message()
        .starts_with("The request signature we calculated does not match"));

    // Tampered body.
    let mut s = signed(&ts, &Spec::new());
    s.body = br#"{"IdentityPoolName":"evil","AllowUnauthenticatedIdentities":true}"#.to_vec();
    send(&ts, &s)
        .await
        .assert_error(400, "InvalidSignatureException");

    // A changed signed header: the target.
    let mut s = signed(&ts, &Spec::new());
    for (k, v) in s.headers.iter_mut() {
        if k == "x-amz-target" {
            *v = "AWSCognitoIdentityService.ListIdentityPools".into();
        }
    }
    send(&ts, &s)
        .await
        .assert_error(400, "InvalidSignatureException");

    // Wrong service and wrong region in the scope.
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                service: "s3",
                ..Spec::new()
            },
        ),
    )
    .await;
    r.assert_error(400, "InvalidSignatureException");
    assert_eq!(
        r.message(),
        "Credential should be scoped to correct service: 'cognito-identity'."
    );
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                region: "eu-west-1",
                ..Spec::new()
            },
        ),
    )
    .await;
    r.assert_error(400, "InvalidSignatureException");
    assert_eq!(
        r.message(),
        "Credential should be scoped to a valid region."
    );

    // Sixteen minutes old, and sixteen minutes ahead.
    let old = SystemTime::now() - Duration::from_secs(16 * 60);
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                when: old,
                ..Spec::new()
            },
        ),
    )
    .await;
    r.assert_error(400, "InvalidSignatureException");
    assert!(
        r.message().starts_with("Signature expired: "),
        "{}",
        r.message()
    );
    let ahead = SystemTime::now() + Duration::from_secs(16 * 60);
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                when: ahead,
                ..Spec::new()
            },
        ),
    )
    .await;
    r.assert_error(400, "InvalidSignatureException");

    // Temporary credentials are not admin keys.
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                security_token: Some("FwoGZXIvYXdzE"),
                ..Spec::new()
            },
        ),
    )
    .await;
    r.assert_error(400, "UnrecognizedClientException");
    assert!(
        r.message().contains("X-Amz-Security-Token"),
        "{}",
        r.message()
    );

    // Malformed Authorization header.
    let r = ts
        .raw(
            "POST",
            &[
                (
                    "X-Amz-Target",
                    "AWSCognitoIdentityService.CreateIdentityPool",
                ),
                ("Authorization", "AWS4-HMAC-SHA256 Credential=garbage"),
                ("X-Amz-Date", &amz_date(SystemTime::now())),
            ],
            CREATE.as_bytes(),
        )
        .await;
    r.assert_error(400, "IncompleteSignatureException");

    assert_eq!(pools(&ts), 0, "no refused request created anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourteen_minutes_of_clock_skew_is_tolerated() {
    let ts = TestServer::start().await;
    let when = SystemTime::now() - Duration::from_secs(14 * 60);
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                when,
                ..Spec::new()
            },
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_signs_every_admin_call_and_a_wrong_secret_is_refused_by_it_too() {
    let ts = TestServer::start().await;
    let good = ts.client();
    let pool = create_pool(&good, "sdk").await;
    good.describe_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let bad = ts.client_with(AKID, "not-the-secret");
    let err = bad
        .describe_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(code(&err).0, "InvalidSignatureException");
    let err = bad
        .delete_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(code(&err).0, "InvalidSignatureException");
    assert_eq!(pools(&ts), 1, "the refused delete changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_operations_work_unsigned_and_with_a_foreign_signature() {
    let ts = TestServer::start().await;
    let pool = create_pool(&ts.client(), "public").await;
    // Unsigned.
    let body = format!(r#"{{"IdentityPoolId":"{pool}","Logins":{{"accounts.google.com":"u1"}}}}"#);
    let r = ts.call("GetId", &body).await;
    assert_eq!(r.status, 200);
    let id = r.json()["IdentityId"].as_str().unwrap().to_string();
    // Signed by a key this server does not know, for another region even.
    let s = signed(
        &ts,
        &Spec {
            akid: "AKIDSOMEONEELSE",
            secret: "whatever",
            region: "eu-central-1",
            target: "AWSCognitoIdentityService.GetId",
            body: &body,
            ..Spec::new()
        },
    );
    let r = send(&ts, &s).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(r.json()["IdentityId"], id.as_str());
    // The SDK with a foreign key: GetId is sent unsigned by the SDK anyway.
    let foreign = ts.client_with("AKIDSOMEONEELSE", "whatever");
    assert_eq!(
        get_id(&foreign, &pool, &[("accounts.google.com", "u1")])
            .await
            .unwrap(),
        id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_two_accounts_cannot_see_each_others_pools() {
    let ts = TestServer::start().await;
    let mine = ts.client();
    let theirs = ts.client_with(OTHER_AKID, OTHER_SECRET);
    let my_pool = create_pool(&mine, "mine").await;
    let their_pool = create_pool(&theirs, "theirs").await;
    let listed: Vec<String> = theirs
        .list_identity_pools()
        .max_results(60)
        .send()
        .await
        .unwrap()
        .identity_pools()
        .iter()
        .filter_map(|p| p.identity_pool_id().map(str::to_string))
        .collect();
    assert_eq!(listed, vec![their_pool.clone()]);
    let err = theirs
        .describe_identity_pool()
        .identity_pool_id(&my_pool)
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(
        code(&err),
        (
            "ResourceNotFoundException".into(),
            format!("IdentityPool '{my_pool}' not found.")
        )
    );
    let owner: String = ts
        .db()
        .value("SELECT account_id FROM pools WHERE id = ?1", &[&their_pool]);
    assert_eq!(owner, OTHER_ACCOUNT);
    // GetId names the owner's account or none.
    let err = theirs
        .get_id()
        .identity_pool_id(&their_pool)
        .account_id("000000000000")
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(code(&err).0, "ResourceNotFoundException");
    theirs
        .get_id()
        .identity_pool_id(&their_pool)
        .account_id(OTHER_ACCOUNT)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_unsigned_accepts_admin_calls_in_the_default_account() {
    let ts = TestServer::start_with(|c| {
        c.admin.keys.clear();
        c.admin.allow_unsigned = true;
    })
    .await;
    let r = ts.call("CreateIdentityPool", CREATE).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    // Any signature at all is fine too.
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                akid: "ANY",
                secret: "x",
                ..Spec::new()
            },
        ),
    )
    .await;
    assert_eq!(r.status, 200);
    let owners: i64 = ts.count("SELECT count(*) FROM pools WHERE account_id = '000000000000'");
    assert_eq!(owners, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_keys_admin_calls_are_refused_by_default() {
    let ts = TestServer::start_with(|c| c.admin.keys.clear()).await;
    ts.call("CreateIdentityPool", CREATE)
        .await
        .assert_error(400, "MissingAuthenticationTokenException");
    send(&ts, &signed(&ts, &Spec::new()))
        .await
        .assert_error(400, "UnrecognizedClientException");
    assert_eq!(pools(&ts), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_payload_is_refused_so_every_signed_body_is_bound_to_its_signature() {
    let ts = TestServer::start().await;
    let unsigned = Spec {
        content_sha256: Some("UNSIGNED-PAYLOAD"),
        ..Spec::new()
    };
    let r = send(&ts, &signed(&ts, &unsigned)).await;
    r.assert_error(400, "InvalidSignatureException");
    assert!(
        r.message().contains("'UNSIGNED-PAYLOAD'"),
        "{}",
        r.message()
    );
    assert!(
        r.message().contains("SHA-256 of the request body"),
        "{}",
        r.message()
    );

    // Such a signature would otherwise cover any body at all: this one too is refused.
    let mut s = signed(&ts, &unsigned);
    s.body = br#"{"IdentityPoolName":"evil","AllowUnauthenticatedIdentities":true}"#.to_vec();
    send(&ts, &s)
        .await
        .assert_error(400, "InvalidSignatureException");
    assert_eq!(pools(&ts), 0, "nothing was created");

    // The body's real hash, signed, is accepted.
    let hash = hex_sha256(CREATE.as_bytes());
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                content_sha256: Some(&hash),
                ..Spec::new()
            },
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(pools(&ts), 1);
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_admin_host_set_only_requests_signed_for_that_host_are_accepted() {
    const PUBLIC: &str = "identity.example.test";
    let ts = TestServer::start_with(|c| c.admin.host = Some(PUBLIC.into())).await;

    // Signed for the address it was reached at (another deployment's name, to the server):
    // refused, saying which host it wants. The SDK gets the same answer.
    let r = send(&ts, &signed(&ts, &Spec::new())).await;
    r.assert_error(400, "InvalidSignatureException");
    let here = ts.host();
    assert!(
        r.message().contains(&format!("'{here}'")),
        "{}",
        r.message()
    );
    assert!(
        r.message().contains(&format!("'{PUBLIC}'")),
        "{}",
        r.message()
    );
    let err = ts
        .client()
        .list_identity_pools()
        .max_results(5)
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    let (code, message) = code(&err);
    assert_eq!(code, "InvalidSignatureException");
    assert!(message.contains(PUBLIC), "{message}");

    // Signed for another host but sent with the public one: the signature breaks.
    let mut s = signed(&ts, &Spec::new());
    s.host = Some(PUBLIC.into());
    send(&ts, &s)
        .await
        .assert_error(400, "InvalidSignatureException");
    assert_eq!(pools(&ts), 0, "nothing was created");

    // Signed for the public host: accepted. Public operations need no host at all.
    let r = send(
        &ts,
        &signed(
            &ts,
            &Spec {
                host: Some(PUBLIC),
                ..Spec::new()
            },
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(pools(&ts), 1);
    let pool: String = ts.db().value("SELECT id FROM pools", &[]);
    let r = ts
        .call("GetId", &format!(r#"{{"IdentityPoolId":"{pool}"}}"#))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    ts.stop().await;

    // The SDK pointed at the configured host is accepted.
    // A port nothing listens on now, so the test can name its server's address before it starts.
    let port = doubles::closed_port();
    let public = format!("127.0.0.1:{port}");
    let ts = TestServer::start_with(|c| {
        c.listen = public.parse().unwrap();
        c.admin.host = Some(public.clone());
    })
    .await;
    let pool = create_pool(&ts.client(), "hosted").await;
    ts.client()
        .describe_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .unwrap();
    ts.stop().await;
}
