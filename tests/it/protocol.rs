//! The wire, with raw HTTP: the error shape, CORS, content types, garbage bodies, routing, every
//! operation name, body limits, keep-alive, and that no refused request changes the database.

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::common::raw::{self, target, JSON_TYPE};
use crate::common::*;

const MISSING_POOL: &str = "us-east-1:00000000-0000-4000-8000-000000000000";
const MISSING_IDENTITY: &str = "us-east-1:11111111-1111-4111-8111-111111111111";

/// The 23 operations of Amazon Cognito Identity 2014-06-30.
const OPERATIONS: [&str; 23] = [
    "CreateIdentityPool",
    "DeleteIdentities",
    "DeleteIdentityPool",
    "DescribeIdentity",
    "DescribeIdentityPool",
    "GetCredentialsForIdentity",
    "GetId",
    "GetIdentityPoolRoles",
    "GetOpenIdToken",
    "GetOpenIdTokenForDeveloperIdentity",
    "GetPrincipalTagAttributeMap",
    "ListIdentities",
    "ListIdentityPools",
    "ListTagsForResource",
    "LookupDeveloperIdentity",
    "MergeDeveloperIdentities",
    "SetIdentityPoolRoles",
    "SetPrincipalTagAttributeMap",
    "TagResource",
    "UnlinkDeveloperIdentity",
    "UnlinkIdentity",
    "UntagResource",
    "UpdateIdentityPool",
];

/// Every response on a kept-alive connection says how long it is.
fn framed(r: RawResponse) -> RawResponse {
    assert!(
        r.header("content-length").is_some(),
        "a response without Content-Length: {} {:?}",
        r.status,
        r.headers
    );
    r
}

/// Reads one response from a kept-alive connection.
async fn read_one(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> RawResponse {
    framed(raw::read_one(s, buf).await)
}

/// Writes `bytes` while reading whatever the server answers, tolerating the server closing the
/// connection before it has read everything (as it may after refusing an oversized body).
async fn send_tolerant(ts: &TestServer, bytes: Vec<u8>) -> RawResponse {
    framed(raw::send_tolerant(ts.host(), bytes).await)
}

/// A success body is compact JSON with its keys sorted at every level: exactly what a sorted,
/// compact encoder writes for the same value.
fn assert_sorted_compact(r: &RawResponse) {
    let v = r.json();
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        serde_json::to_string(&v).unwrap()
    );
}

fn counts(ts: &TestServer) -> [i64; 4] {
    [
        ts.count("SELECT count(*) FROM pools"),
        ts.count("SELECT count(*) FROM identities"),
        ts.count("SELECT count(*) FROM logins"),
        ts.count("SELECT count(*) FROM pool_tags"),
    ]
}

/// A pool that lets guests in and knows Google, Facebook and Amazon.
async fn guest_pool(ts: &TestServer) -> String {
    create_pool(&ts.client(), "wire").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_exactly_the_aws_shape() {
    let ts = TestServer::start().await;
    let r = ts
        .call(
            "GetId",
            &format!(r#"{{"IdentityPoolId":"{MISSING_POOL}"}}"#),
        )
        .await;
    r.assert_error(400, "ResourceNotFoundException");
    let message = format!("IdentityPool '{MISSING_POOL}' not found.");
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        format!(r#"{{"__type":"ResourceNotFoundException","message":"{message}"}}"#)
    );
    assert_eq!(
        r.header("x-amzn-errortype"),
        Some("ResourceNotFoundException:")
    );
    assert_eq!(r.header("x-amzn-errormessage"), Some(message.as_str()));
    assert_eq!(r.header("content-type"), Some(JSON_TYPE));
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let expose = r
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "x-amzn-requestid",
        "x-amzn-errortype",
        "x-amzn-errormessage",
    ] {
        assert!(expose.contains(h), "{expose}");
    }
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );

    // A message with a backslash and quotes: JSON-escaped in the body, verbatim in the header.
    let malformed = "6eaf0258-e8c5-467f-90de-6e212326e6d3";
    let r = ts
        .call("GetId", &format!(r#"{{"IdentityPoolId":"{malformed}"}}"#))
        .await;
    r.assert_error(400, "ValidationException");
    let message = format!(
        "1 validation error detected: Value '{malformed}' at 'identityPoolId' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: [\\w-]+:[0-9a-f-]+"
    );
    assert_eq!(r.message(), message);
    assert_eq!(r.header("x-amzn-errormessage"), Some(message.as_str()));
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        format!(
            r#"{{"__type":"ValidationException","message":{}}}"#,
            serde_json::to_string(&message).unwrap()
        )
    );

    // A message with non-ASCII text: the header carries it too.
    let r = ts
        .call("GetId", "{\"IdentityPoolId\":\"us-east-1:\u{e9}\"}")
        .await;
    r.assert_error(400, "ValidationException");
    assert!(r
        .message()
        .contains("Value 'us-east-1:\u{e9}' at 'identityPoolId'"));
    r.assert_client_error();

    // Request ids: on every response, success or error, and never the same twice.
    let pool = guest_pool(&ts).await;
    let mut ids = Vec::new();
    for body in [
        format!(r#"{{"IdentityPoolId":"{pool}"}}"#),
        format!(r#"{{"IdentityPoolId":"{MISSING_POOL}"}}"#),
        format!(r#"{{"IdentityPoolId":"{pool}"}}"#),
        "{".to_string(),
    ] {
        let r = ts.call("GetId", &body).await;
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert!(r.header("access-control-expose-headers").is_some());
        let id = r.header("x-amzn-requestid").unwrap().to_string();
        assert!(!id.is_empty());
        ids.push(id);
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_responses_carry_json_type_request_id_and_cors_headers() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;
    let r = ts
        .call("GetId", &format!(r#"{{"IdentityPoolId":"{pool}"}}"#))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(JSON_TYPE));
    assert!(r.header("x-amzn-requestid").is_some());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.header("access-control-expose-headers").is_some());
    assert_eq!(r.header("x-amzn-errortype"), None);
    assert!(r.header("date").is_some());
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let id = r.json()["IdentityId"].as_str().unwrap().to_string();
    assert_eq!(
        String::from_utf8(r.body.clone()).unwrap(),
        format!(r#"{{"IdentityId":"{id}"}}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_allows_what_browsers_ask_for() {
    let ts = TestServer::start().await;
    let r = ts
        .raw(
            "OPTIONS",
            &[
                ("Origin", "https://app.example.com"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "content-type,x-amz-target,x-amz-user-agent",
                ),
            ],
            b"",
        )
        .await;
    assert!((200..300).contains(&r.status), "{}", r.status);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let methods = r
        .header("access-control-allow-methods")
        .unwrap()
        .to_ascii_uppercase();
    assert!(methods.split(',').any(|m| m.trim() == "POST"), "{methods}");
    let allowed: Vec<String> = r
        .header("access-control-allow-headers")
        .unwrap()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for h in ["content-type", "x-amz-target", "x-amz-user-agent"] {
        assert!(allowed.iter().any(|a| a == h), "{h} not in {allowed:?}");
    }
    assert!(r.header("x-amzn-requestid").is_some());
    assert!(r.header("access-control-expose-headers").is_some());

    // Without a header list, the headers SDKs send are allowed anyway.
    let r = ts
        .raw("OPTIONS", &[("Access-Control-Request-Method", "POST")], b"")
        .await;
    assert!((200..300).contains(&r.status), "{}", r.status);
    let allowed = r
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "content-type",
        "x-amz-target",
        "x-amz-user-agent",
        "authorization",
        "x-amz-date",
    ] {
        assert!(allowed.contains(h), "{h} not in {allowed}");
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_content_types_or_none_are_accepted_and_others_refused() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;
    let body = format!(r#"{{"IdentityPoolId":"{pool}"}}"#);
    let t = target("GetId");
    for ct in [
        Some("application/x-amz-json-1.1"),
        Some("application/json"),
        Some("application/x-amz-json-1.1; charset=utf-8"),
        None,
    ] {
        let mut headers = vec![("X-Amz-Target", t.as_str())];
        if let Some(ct) = ct {
            headers.push(("Content-Type", ct));
        }
        let r = ts.raw("POST", &headers, body.as_bytes()).await;
        assert_eq!(
            r.status,
            200,
            "{ct:?}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["IdentityId"].is_string());
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 4);

    // botocore's spacing, and a pretty-printed body, parse the same.
    for body in [
        format!(r#"{{"IdentityPoolId": "{pool}"}}"#),
        format!("{{\n  \"IdentityPoolId\" : \"{pool}\"\r\n}}\n"),
    ] {
        let r = ts.call("GetId", &body).await;
        assert_eq!(
            r.status,
            200,
            "{body:?}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 6);

    for ct in [
        "text/html",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        let r = ts
            .raw(
                "POST",
                &[("X-Amz-Target", &t), ("Content-Type", ct)],
                body.as_bytes(),
            )
            .await;
        r.assert_client_error();
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_whitespace_bodies_are_an_empty_input() {
    let ts = TestServer::start().await;
    let expected = "1 validation error detected: Value null at 'identityPoolId' failed to \
                    satisfy constraint: Member must not be null";
    for body in ["", " ", " \r\n\t ", "{}"] {
        let r = ts.call("GetId", body).await;
        r.assert_error(400, "ValidationException");
        assert_eq!(r.message(), expected, "{body:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_wrong_member_types_are_serialization_errors() {
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;
    let pool = guest_pool(&ts).await;
    let cases: Vec<(&str, String)> = vec![
        ("GetId", "{".into()),
        ("GetId", "{\"IdentityPoolId\":".into()),
        ("GetId", "not json".into()),
        ("GetId", format!(r#"{{"IdentityPoolId":"{pool}"}} trailing"#)),
        ("GetId", "[]".into()),
        ("GetId", format!(r#"["{pool}"]"#)),
        ("GetId", r#""a string""#.into()),
        ("GetId", "42".into()),
        ("GetId", "true".into()),
        ("GetId", "null".into()),
        ("GetId", r#"{"IdentityPoolId": 5}"#.into()),
        ("GetId", r#"{"IdentityPoolId": ["x"]}"#.into()),
        ("GetId", format!(r#"{{"IdentityPoolId":"{pool}","Logins":"x"}}"#)),
        ("GetId", format!(r#"{{"IdentityPoolId":"{pool}","Logins":[]}}"#)),
        (
            "GetId",
            format!(r#"{{"IdentityPoolId":"{pool}","Logins":{{"accounts.google.com":7}}}}"#),
        ),
        ("ListIdentityPools", r#"{"MaxResults":"5"}"#.into()),
        ("ListIdentityPools", r#"{"MaxResults":1.5}"#.into()),
        ("ListIdentityPools", r#"{"MaxResults":1e400}"#.into()),
        ("ListIdentityPools", r#"{"MaxResults":2147483648}"#.into()),
        ("GetId", "[".repeat(100_000)),
        (
            "GetId",
            format!(
                r#"{{"IdentityPoolId":"{pool}","Deep":{}{}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            ),
        ),
        ("GetId", r#"{"IdentityPoolId":"\ud800"}"#.into()),
        (
            "ListIdentities",
            format!(r#"{{"IdentityPoolId":"{pool}","MaxResults":5,"HideDisabled":"true"}}"#),
        ),
        (
            "CreateIdentityPool",
            r#"{"IdentityPoolName":"n","AllowUnauthenticatedIdentities":"yes"}"#.into(),
        ),
        (
            "CreateIdentityPool",
            r#"{"IdentityPoolName":"n","AllowUnauthenticatedIdentities":true,"CognitoIdentityProviders":{"ProviderName":"x"}}"#
                .into(),
        ),
    ];
    let before = counts(&ts);
    for (op, body) in &cases {
        let r = ts.call(op, body).await;
        assert_eq!(
            r.assert_client_error(),
            "SerializationException",
            "{op} {body}: {:?}",
            r.json()
        );
        assert_eq!(r.status, 400);
    }
    assert_eq!(counts(&ts), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_members_are_absent_and_unknown_members_are_ignored() {
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;
    let pool = guest_pool(&ts).await;

    let r = ts.call("GetId", r#"{"IdentityPoolId":null}"#).await;
    r.assert_error(400, "ValidationException");
    assert_eq!(
        r.message(),
        "1 validation error detected: Value null at 'identityPoolId' failed to satisfy \
         constraint: Member must not be null"
    );

    // Null Logins and AccountId: a guest.
    let r = ts
        .call(
            "GetId",
            &format!(r#"{{"IdentityPoolId":"{pool}","Logins":null,"AccountId":null}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 0);

    // Unknown members, whatever their type, and a differently-cased known name.
    let r = ts
        .call(
            "GetId",
            &format!(
                r#"{{"IdentityPoolId":"{pool}","Bogus":{{"x":[1,2,null]}},"identityPoolId":"nope","Extra":null}}"#
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 2);

    // Null optional members of a pool are not set, so not echoed.
    let r = ts
        .call(
            "CreateIdentityPool",
            r#"{"IdentityPoolName":"nulls","AllowUnauthenticatedIdentities":true,"AllowClassicFlow":null,"SupportedLoginProviders":null,"DeveloperProviderName":null,"OpenIdConnectProviderARNs":null,"CognitoIdentityProviders":null,"SamlProviderARNs":null,"IdentityPoolTags":null,"Unknown":"x"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let id = r.json()["IdentityPoolId"].as_str().unwrap().to_string();
    assert_eq!(
        r.json(),
        json!({
            "AllowUnauthenticatedIdentities": true,
            "IdentityPoolId": id,
            "IdentityPoolName": "nulls",
            "IdentityPoolTags": {}
        })
    );

    // ListIdentityPools with a null NextToken: the first page.
    let r = ts
        .call("ListIdentityPools", r#"{"MaxResults":60,"NextToken":null}"#)
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["IdentityPools"].as_array().unwrap().len(), 2);
    assert_sorted_compact(&r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_utf8_are_refused() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;
    let t = target("GetId");
    let mut in_string =
        format!(r#"{{"IdentityPoolId":"{pool}","Logins":{{"accounts.google.com":""#).into_bytes();
    in_string.extend_from_slice(b"\xff\xfe\x80");
    in_string.extend_from_slice(b"\"}}");
    let mut in_key = format!(r#"{{"IdentityPoolId":"{pool}","Logins":{{""#).into_bytes();
    in_key.extend_from_slice(b"\xc3\x28");
    in_key.extend_from_slice(b"\":\"x\"}}");
    let bodies: Vec<Vec<u8>> = vec![in_string, in_key, b"\xff\xfe\xfd\xfc".to_vec()];
    for body in bodies {
        let r = ts
            .raw(
                "POST",
                &[("X-Amz-Target", &t), ("Content-Type", JSON_TYPE)],
                &body,
            )
            .await;
        r.assert_client_error();
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_constraints_are_validated_and_never_echo_a_token() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;
    let redacted = "*** Sensitive Data Redacted ***";

    // Eleven logins.
    let mut logins = serde_json::Map::new();
    for i in 0..11 {
        logins.insert(
            format!("p{i:02}.example.com"),
            Value::String(format!("SECRET-TOKEN-{i}")),
        );
    }
    let rendered: Vec<String> = logins.keys().map(|k| format!("{k}={redacted}")).collect();
    let body = json!({"IdentityPoolId": pool, "Logins": logins}).to_string();
    let r = ts.call("GetId", &body).await;
    r.assert_error(400, "ValidationException");
    assert_eq!(
        r.message(),
        format!(
            "1 validation error detected: Value '{{{}}}' at 'logins' failed to satisfy \
             constraint: Member must have length less than or equal to 10",
            rendered.join(", ")
        )
    );
    assert!(!r.message().contains("SECRET"));

    // An empty provider name.
    let body = json!({"IdentityPoolId": pool, "Logins": {"": "SECRET-TOKEN"}}).to_string();
    let r = ts.call("GetId", &body).await;
    r.assert_error(400, "ValidationException");
    assert_eq!(
        r.message(),
        format!(
            "1 validation error detected: Value '{{={redacted}}}' at 'logins' failed to satisfy \
             constraint: Map keys must satisfy constraint: [Member must have length less than \
             or equal to 128, Member must have length greater than or equal to 1]"
        )
    );

    // A token one character too long, and an empty one.
    let token_constraint = "Map value must satisfy constraint: [Member must have length less \
                            than or equal to 50000, Member must have length greater than or \
                            equal to 1]";
    for token in ["S".repeat(50_001), String::new()] {
        let body =
            json!({"IdentityPoolId": pool, "Logins": {"accounts.google.com": token}}).to_string();
        let r = ts.call("GetId", &body).await;
        r.assert_error(400, "ValidationException");
        let m = r.message();
        assert_eq!(
            m,
            format!(
                "1 validation error detected: Value '{{accounts.google.com={redacted}}}' at \
                 'logins' failed to satisfy constraint: {token_constraint}"
            )
        );
        assert!(!m.contains("SSSS"));
        assert!(r.body.len() < 400, "{} bytes", r.body.len());
        assert_eq!(r.header("x-amzn-errormessage"), Some(m.as_str()));
    }

    // A token of exactly 50,000 characters passes validation. This provider is trusted, so
    // the token is the user id, and a user id is held to 2048 bytes: refused as that, not as
    // a malformed request, and nothing is stored. A 2048-byte one is a user.
    let body =
        json!({"IdentityPoolId": pool, "Logins": {"accounts.google.com": "T".repeat(50_000)}})
            .to_string();
    let r = ts.call("GetId", &body).await;
    r.assert_error(400, "NotAuthorizedException");
    assert_eq!(
        r.message(),
        "Invalid login token. The user id it stands for is longer than 2048 bytes."
    );
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
    let body = json!({"IdentityPoolId": pool, "Logins": {"accounts.google.com": "T".repeat(2048)}})
        .to_string();
    let r = ts.call("GetId", &body).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_known_target_are_unknown_operations() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;
    let body = format!(r#"{{"IdentityPoolId":"{pool}"}}"#);

    let r = ts
        .raw("POST", &[("Content-Type", JSON_TYPE)], body.as_bytes())
        .await;
    r.assert_error(400, "UnknownOperationException");
    r.assert_client_error();

    for t in [
        "AWSCognitoIdentityService.Nope",
        "DynamoDB_20120810.GetItem",
        "DynamoDB_20120810.GetId",
        "AWSCognitoIdentityService.getid",
        "AWSCognitoIdentityService.",
        "AWSCognitoIdentityService",
        "GetId",
        "",
    ] {
        let r = ts
            .raw(
                "POST",
                &[("X-Amz-Target", t), ("Content-Type", JSON_TYPE)],
                body.as_bytes(),
            )
            .await;
        r.assert_error(400, "UnknownOperationException");
        r.assert_client_error();
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);

    // The namespaced prefix of the old documentation names the same operation.
    let r = ts
        .raw(
            "POST",
            &[
                (
                    "X-Amz-Target",
                    "com.amazonaws.cognito.identity.model.AWSCognitoIdentityService.GetId",
                ),
                ("Content-Type", JSON_TYPE),
            ],
            body.as_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["IdentityId"].is_string());
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_and_paths_get_aws_shaped_json_errors() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;
    let body = format!(r#"{{"IdentityPoolId":"{pool}"}}"#);
    let t = target("GetId");
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/favicon.ico"),
        ("POST", "/other"),
        ("PUT", "/"),
        ("DELETE", "/"),
    ] {
        let bytes = raw::framed(
            ts.host(),
            method,
            path,
            &[
                ("X-Amz-Target", &t),
                ("Content-Type", JSON_TYPE),
                ("Connection", "close"),
            ],
            if method == "GET" {
                b""
            } else {
                body.as_bytes()
            },
        );
        let r = send_tolerant(&ts, bytes).await;
        assert!(
            (400..500).contains(&r.status),
            "{method} {path}: {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        r.assert_client_error();
    }
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_name_is_recognised() {
    // With authentication on: `{}` reaches each operation's authentication or validation.
    let ts = TestServer::start().await;
    for op in OPERATIONS {
        let r = ts.call(op, "{}").await;
        let t = r.assert_client_error();
        assert_eq!(r.status, 400, "{op}");
        assert_ne!(t, "UnknownOperationException", "{op}");
    }
    assert_eq!(counts(&ts), [0, 0, 0, 0]);

    // Without it, a valid input reaches each operation, which answers it: all 23 are built.
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;
    let pool = guest_pool(&ts).await;
    let arn = format!("arn:aws:cognito-identity:us-east-1:000000000000:identitypool/{pool}");
    let inputs: Vec<(&str, Value)> = vec![
        (
            "CreateIdentityPool",
            json!({"IdentityPoolName": "p", "AllowUnauthenticatedIdentities": true}),
        ),
        (
            "DeleteIdentities",
            json!({"IdentityIdsToDelete": [MISSING_IDENTITY]}),
        ),
        (
            "DeleteIdentityPool",
            json!({"IdentityPoolId": MISSING_POOL}),
        ),
        ("DescribeIdentity", json!({"IdentityId": MISSING_IDENTITY})),
        ("DescribeIdentityPool", json!({"IdentityPoolId": pool})),
        (
            "GetCredentialsForIdentity",
            json!({"IdentityId": MISSING_IDENTITY}),
        ),
        ("GetId", json!({"IdentityPoolId": pool})),
        ("GetIdentityPoolRoles", json!({"IdentityPoolId": pool})),
        ("GetOpenIdToken", json!({"IdentityId": MISSING_IDENTITY})),
        (
            "GetOpenIdTokenForDeveloperIdentity",
            json!({"IdentityPoolId": pool, "Logins": {"login.dev": "user1"}}),
        ),
        (
            "GetPrincipalTagAttributeMap",
            json!({"IdentityPoolId": pool, "IdentityProviderName": "accounts.google.com"}),
        ),
        (
            "ListIdentities",
            json!({"IdentityPoolId": pool, "MaxResults": 10}),
        ),
        ("ListIdentityPools", json!({"MaxResults": 10})),
        ("ListTagsForResource", json!({"ResourceArn": arn})),
        (
            "LookupDeveloperIdentity",
            json!({"IdentityPoolId": pool, "DeveloperUserIdentifier": "user1"}),
        ),
        (
            "MergeDeveloperIdentities",
            json!({"SourceUserIdentifier": "a", "DestinationUserIdentifier": "b",
                   "DeveloperProviderName": "login.dev", "IdentityPoolId": pool}),
        ),
        (
            "SetIdentityPoolRoles",
            json!({"IdentityPoolId": pool, "Roles": {}}),
        ),
        (
            "SetPrincipalTagAttributeMap",
            json!({"IdentityPoolId": pool, "IdentityProviderName": "accounts.google.com",
                   "UseDefaults": true}),
        ),
        (
            "TagResource",
            json!({"ResourceArn": arn, "Tags": {"k": "v"}}),
        ),
        (
            "UnlinkDeveloperIdentity",
            json!({"IdentityId": MISSING_IDENTITY, "IdentityPoolId": pool,
                   "DeveloperProviderName": "login.dev", "DeveloperUserIdentifier": "user1"}),
        ),
        (
            "UnlinkIdentity",
            json!({"IdentityId": MISSING_IDENTITY, "Logins": {"accounts.google.com": "x"},
                   "LoginsToRemove": ["accounts.google.com"]}),
        ),
        (
            "UntagResource",
            json!({"ResourceArn": arn, "TagKeys": ["k"]}),
        ),
        (
            "UpdateIdentityPool",
            json!({"IdentityPoolId": pool, "IdentityPoolName": "renamed",
                   "AllowUnauthenticatedIdentities": true}),
        ),
    ];
    assert_eq!(
        inputs.iter().map(|(op, _)| *op).collect::<Vec<_>>(),
        OPERATIONS.to_vec()
    );
    for (op, input) in inputs {
        let r = ts.call(op, &input.to_string()).await;
        assert!(
            r.status < 500,
            "{op}: {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("content-type"), Some(JSON_TYPE), "{op}");
        if r.status == 200 {
            assert!(r.json().is_object(), "{op}");
            continue;
        }
        let t = r.assert_client_error();
        for not in [
            "UnknownOperationException",
            "UnsupportedOperationException",
            "ValidationException",
            "SerializationException",
            "MissingAuthenticationTokenException",
        ] {
            assert_ne!(t, not, "{op}: {}", r.message());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_with_413_and_stores_nothing() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;

    // A valid GetId padded with an unknown member: it would make a guest if it were read.
    let padded = |total: usize| {
        let head = format!(r#"{{"IdentityPoolId":"{pool}","Pad":""#);
        let pad = total - head.len() - 2;
        format!("{head}{}\"}}", "x".repeat(pad))
    };
    let big = padded(2 << 20);
    assert_eq!(big.len(), 2 << 20);
    let r = ts.call("GetId", &big).await;
    r.assert_error(413, "RequestEntityTooLargeException");
    r.assert_client_error();
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 0);

    // Exactly 1 MiB is still read.
    let limit = padded(1 << 20);
    let r = ts.call("GetId", &limit).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);
}

fn chunked_request(ts: &TestServer, body: &[u8], chunk: usize) -> Vec<u8> {
    raw::request(
        ts.host(),
        "POST",
        "/",
        &[
            ("X-Amz-Target", &target("GetId")),
            ("Content-Type", JSON_TYPE),
            ("Transfer-Encoding", "chunked"),
        ],
        &raw::chunked(body, chunk),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_beyond_the_limit_is_refused_and_stores_nothing() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;

    // Chunked bodies work at all.
    let small = format!(r#"{{"IdentityPoolId":"{pool}"}}"#);
    let r = send_tolerant(&ts, chunked_request(&ts, small.as_bytes(), 7)).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);

    // No length declared, small chunks, 1.25 MiB in all.
    let head = format!(r#"{{"IdentityPoolId":"{pool}","Pad":""#);
    let big = format!("{head}{}\"}}", "x".repeat((5 << 18) - head.len() - 2));
    let r = send_tolerant(&ts, chunked_request(&ts, big.as_bytes(), 16 << 10)).await;
    r.assert_client_error();
    assert_eq!(r.status, 413, "{:?}", r.json());
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);

    // A small Content-Length alongside the chunked encoding: the chunks are what counts.
    let mut lying = chunked_request(&ts, big.as_bytes(), 16 << 10);
    let at = lying
        .windows(18)
        .position(|w| w == b"Transfer-Encoding:")
        .unwrap();
    lying.splice(at..at, b"Content-Length: 10\r\n".iter().copied());
    let r = send_tolerant(&ts, lying).await;
    r.assert_client_error();
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);

    // The server is still serving.
    let r = ts.call("GetId", &small).await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_serves_requests_in_a_row() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;
    let mut s = raw::connect(ts.host()).await;
    let mut buf = Vec::new();
    let ok = format!(r#"{{"IdentityPoolId":"{pool}"}}"#);
    let missing = format!(r#"{{"IdentityPoolId":"{MISSING_POOL}"}}"#);

    s.write_all(&raw::op_request(ts.host(), "GetId", &ok))
        .await
        .unwrap();
    let first = read_one(&mut s, &mut buf).await;
    assert_eq!(first.status, 200);
    assert_ne!(first.header("connection"), Some("close"));

    // An error does not end the connection either.
    s.write_all(&raw::op_request(ts.host(), "GetId", &missing))
        .await
        .unwrap();
    let second = read_one(&mut s, &mut buf).await;
    second.assert_error(400, "ResourceNotFoundException");
    assert_ne!(second.header("connection"), Some("close"));

    // Two requests written at once are answered in order.
    let mut both = raw::op_request(ts.host(), "GetId", &ok);
    both.extend_from_slice(&raw::op_request(ts.host(), "GetId", "{"));
    s.write_all(&both).await.unwrap();
    let third = read_one(&mut s, &mut buf).await;
    let fourth = read_one(&mut s, &mut buf).await;
    assert_eq!(third.status, 200);
    fourth.assert_error(400, "SerializationException");

    let ids = [&first, &second, &third, &fourth]
        .map(|r| r.header("x-amzn-requestid").unwrap().to_string());
    let mut unique = ids.to_vec();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "{ids:?}");
    assert_ne!(first.json()["IdentityId"], third.json()["IdentityId"]);
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_before_its_body_is_read_does_not_break_the_connection() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;
    let ok = format!(r#"{{"IdentityPoolId":"{pool}"}}"#);
    let t = target("GetId");
    // Each is refused before the body matters; the body is there all the same, and the next
    // request on the connection must still be read from the right place.
    let refused = [
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[("Content-Type", JSON_TYPE)],
            ok.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[
                ("X-Amz-Target", "AWSCognitoIdentityService.Nope"),
                ("Content-Type", JSON_TYPE),
            ],
            ok.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "POST",
            "/other",
            &[("X-Amz-Target", &t), ("Content-Type", JSON_TYPE)],
            ok.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[("X-Amz-Target", &t), ("Content-Type", "text/html")],
            ok.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[
                ("X-Amz-Target", &target("ListIdentityPools")),
                ("Content-Type", JSON_TYPE),
            ],
            br#"{"MaxResults":5}"#,
        ),
        raw::framed(
            ts.host(),
            "OPTIONS",
            "/",
            &[("Access-Control-Request-Method", "POST")],
            ok.as_bytes(),
        ),
    ];
    let mut s = raw::connect(ts.host()).await;
    let mut buf = Vec::new();
    for (i, bytes) in refused.iter().enumerate() {
        s.write_all(bytes).await.unwrap();
        let r = read_one(&mut s, &mut buf).await;
        if i + 1 < refused.len() {
            r.assert_client_error();
        } else {
            assert!((200..300).contains(&r.status), "{}", r.status);
        }
        s.write_all(&raw::op_request(ts.host(), "GetId", &ok))
            .await
            .unwrap();
        let next = read_one(&mut s, &mut buf).await;
        assert_eq!(
            next.status,
            200,
            "after request {i}: {:?}",
            String::from_utf8_lossy(&next.body)
        );
    }
    assert_eq!(
        ts.count("SELECT count(*) FROM identities"),
        refused.len() as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_refused_request_changes_the_database() {
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("kept")
        .allow_unauthenticated_identities(true)
        .supported_login_providers("accounts.google.com", "g")
        .identity_pool_tags("k", "v")
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    get_id(&c, &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    get_id(&c, &pool, &[]).await.unwrap();
    let described = ts
        .call(
            "DescribeIdentityPool",
            &json!({"IdentityPoolId": pool}).to_string(),
        )
        .await
        .body;
    let before = counts(&ts);
    assert_eq!(before, [1, 2, 1, 1]);

    let create = r#"{"IdentityPoolName":"new","AllowUnauthenticatedIdentities":true}"#;
    let guest = format!(r#"{{"IdentityPoolId":"{pool}"}}"#);
    let mut many_tags = serde_json::Map::new();
    for i in 0..51 {
        many_tags.insert(format!("t{i}"), json!("v"));
    }
    let garbage: Vec<(&str, String)> = vec![
        ("CreateIdentityPool", r#"{"IdentityPoolName":"bad/name","AllowUnauthenticatedIdentities":true}"#.into()),
        ("CreateIdentityPool", r#"{"IdentityPoolName":"n"}"#.into()),
        ("CreateIdentityPool", r#"{"IdentityPoolName":"n","AllowUnauthenticatedIdentities":1}"#.into()),
        (
            "CreateIdentityPool",
            json!({"IdentityPoolName": "n", "AllowUnauthenticatedIdentities": true,
                   "IdentityPoolTags": many_tags})
            .to_string(),
        ),
        (
            "CreateIdentityPool",
            r#"{"IdentityPoolName":"n","AllowUnauthenticatedIdentities":true,"CognitoIdentityProviders":[{"ClientId":"x"}]}"#.into(),
        ),
        (
            "UpdateIdentityPool",
            json!({"IdentityPoolId": pool, "IdentityPoolName": "bad/name",
                   "AllowUnauthenticatedIdentities": false}).to_string(),
        ),
        (
            "UpdateIdentityPool",
            json!({"IdentityPoolId": pool, "IdentityPoolName": "x",
                   "AllowUnauthenticatedIdentities": false,
                   "OpenIdConnectProviderARNs": ["arn:aws:iam::000000000000:role/nope"]}).to_string(),
        ),
        ("DeleteIdentityPool", r#"{"IdentityPoolId":"6eaf0258-e8c5-467f-90de-6e212326e6d3"}"#.into()),
        ("DeleteIdentityPool", json!({"IdentityPoolId": MISSING_POOL}).to_string()),
        ("DeleteIdentityPool", json!({"IdentityPoolId": [pool]}).to_string()),
        ("GetId", json!({"IdentityPoolId": pool, "Logins": {"": "x"}}).to_string()),
        ("GetId", json!({"IdentityPoolId": pool, "Logins": {"graph.facebook.com": "x"}}).to_string()),
        ("GetId", json!({"IdentityPoolId": pool, "Logins": {"accounts.google.com": ""}}).to_string()),
        ("GetId", json!({"IdentityPoolId": pool, "AccountId": "123456789012"}).to_string()),
        ("GetId", format!("{guest}garbage")),
        ("ListIdentityPools", r#"{"MaxResults":0}"#.into()),
        ("ListIdentities", json!({"IdentityPoolId": pool, "MaxResults": 5, "NextToken": "bad"}).to_string()),
    ];
    for (op, body) in &garbage {
        let r = ts.call(op, body).await;
        r.assert_client_error();
    }
    // Valid bodies sent the wrong way.
    let refused: Vec<Vec<u8>> = vec![
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[
                ("X-Amz-Target", "DynamoDB_20120810.CreateIdentityPool"),
                ("Content-Type", JSON_TYPE),
                ("Connection", "close"),
            ],
            create.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[
                (
                    "X-Amz-Target",
                    "AWSCognitoIdentityService.createIdentityPool",
                ),
                ("Content-Type", JSON_TYPE),
                ("Connection", "close"),
            ],
            create.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[("Content-Type", JSON_TYPE), ("Connection", "close")],
            create.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[
                ("X-Amz-Target", &target("CreateIdentityPool")),
                ("Content-Type", "text/html"),
                ("Connection", "close"),
            ],
            create.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "POST",
            "/other",
            &[
                ("X-Amz-Target", &target("CreateIdentityPool")),
                ("Content-Type", JSON_TYPE),
                ("Connection", "close"),
            ],
            create.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "PUT",
            "/",
            &[
                ("X-Amz-Target", &target("GetId")),
                ("Content-Type", JSON_TYPE),
                ("Connection", "close"),
            ],
            guest.as_bytes(),
        ),
    ];
    for bytes in refused {
        let r = send_tolerant(&ts, bytes).await;
        r.assert_client_error();
    }
    assert_eq!(counts(&ts), before);
    let after = ts
        .call(
            "DescribeIdentityPool",
            &json!({"IdentityPoolId": pool}).to_string(),
        )
        .await
        .body;
    assert_eq!(after, described);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_timestamps_are_epoch_seconds_as_json_numbers() {
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;
    let c = ts.client();
    let pool = guest_pool(&ts).await;
    let alice = get_id(&c, &pool, &[("accounts.google.com", "alice")])
        .await
        .unwrap();
    let guest = get_id(&c, &pool, &[]).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let check = |d: &Value| {
        for k in ["CreationDate", "LastModifiedDate"] {
            let v = &d[k];
            assert!(v.is_number(), "{k} is {v}");
            let secs = v.as_f64().unwrap();
            assert!((now - 3600.0..now + 3600.0).contains(&secs), "{k} = {secs}");
        }
    };

    let r = ts
        .call(
            "DescribeIdentity",
            &json!({"IdentityId": alice}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let d = r.json();
    check(&d);
    assert_eq!(d["IdentityId"], json!(alice));
    assert_eq!(d["Logins"], json!(["accounts.google.com"]));
    assert_sorted_compact(&r);

    let r = ts
        .call(
            "DescribeIdentity",
            &json!({"IdentityId": guest}).to_string(),
        )
        .await;
    let d = r.json();
    check(&d);
    assert!(d.get("Logins").is_none(), "{d}");

    let r = ts
        .call(
            "ListIdentities",
            &json!({"IdentityPoolId": pool, "MaxResults": 10}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_sorted_compact(&r);
    let l = r.json();
    assert_eq!(l["IdentityPoolId"], json!(pool));
    assert!(l.get("NextToken").is_none(), "{l}");
    let items = l["Identities"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        check(item);
    }
    assert_eq!(items[0]["IdentityId"], json!(alice));
    assert_eq!(items[1]["IdentityId"], json!(guest));
}
