//! Mutated inputs for every operation: whatever a client sends, the answer is a 200 or an
//! AWS-shaped 4xx — never a 5xx, never a dropped connection. Deterministic (seeded) so a
//! failure reproduces.

use serde_json::{json, Value};

use crate::common::*;

/// A small deterministic generator (64-bit LCG), so runs repeat exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(14) {
        0 => Value::Null,
        1 => json!(0),
        2 => json!(-1),
        3 => json!(1.5),
        4 => json!(true),
        5 => json!(""),
        6 => json!("x".repeat(70_000)),
        7 => json!("é\u{0}\"'\\<>%00{}"),
        8 => json!([]),
        9 => json!({}),
        10 => json!(["a", 1, null]),
        11 => json!({"k": {"nested": [1]}}),
        12 => json!(i64::MAX),
        _ => json!("us-east-1:ffffffff-ffff-4fff-8fff-ffffffffffff"),
    }
}

/// Changes one random place in `v`: a member removed, replaced or added, at any depth.
fn mutate(v: &mut Value, rng: &mut Rng) {
    match v {
        Value::Object(m) if !m.is_empty() && rng.below(4) != 0 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.below(keys.len())];
            match rng.below(3) {
                0 => {
                    m.remove(k);
                }
                1 => {
                    m.insert(k.clone(), odd_value(rng));
                }
                _ => {
                    if let Some(inner) = m.get_mut(k) {
                        mutate(inner, rng);
                    }
                }
            }
        }
        Value::Object(m) => {
            m.insert(format!("Unknown{}", rng.below(100)), odd_value(rng));
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.below(a.len());
            if rng.below(2) == 0 {
                mutate(&mut a[i], rng);
            } else {
                a[i] = odd_value(rng);
            }
        }
        other => *other = odd_value(rng),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_inputs_never_get_a_server_error() {
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;
    let c = ts.client();
    let pool = c
        .create_identity_pool()
        .identity_pool_name("fuzz")
        .allow_unauthenticated_identities(true)
        .supported_login_providers("accounts.google.com", "g")
        .developer_provider_name("login.dev")
        .send()
        .await
        .unwrap()
        .identity_pool_id;
    let user = get_id(&c, &pool, &[("accounts.google.com", "u")])
        .await
        .unwrap();
    let arn = format!("arn:aws:cognito-identity:us-east-1:000000000000:identitypool/{pool}");
    let role = "arn:aws:iam::000000000000:role/r";
    let inputs: Vec<(&str, Value)> = vec![
        (
            "CreateIdentityPool",
            json!({"IdentityPoolName": "p", "AllowUnauthenticatedIdentities": true,
            "SupportedLoginProviders": {"accounts.google.com": "g"}, "DeveloperProviderName": "d",
            "CognitoIdentityProviders": [{"ProviderName": "cognito-idp.us-east-1.amazonaws.com/us-east-1_a", "ClientId": "c"}],
            "OpenIdConnectProviderARNs": ["arn:aws:iam::000000000000:oidc-provider/x.example.com"],
            "IdentityPoolTags": {"k": "v"}}),
        ),
        (
            "DeleteIdentities",
            json!({"IdentityIdsToDelete": ["us-east-1:ffffffff-ffff-4fff-8fff-ffffffffffff"]}),
        ),
        ("DescribeIdentity", json!({"IdentityId": user})),
        ("DescribeIdentityPool", json!({"IdentityPoolId": pool})),
        (
            "GetCredentialsForIdentity",
            json!({"IdentityId": user, "Logins": {"accounts.google.com": "u"}, "CustomRoleArn": role}),
        ),
        (
            "GetId",
            json!({"IdentityPoolId": pool, "AccountId": "000000000000", "Logins": {"accounts.google.com": "u"}}),
        ),
        ("GetIdentityPoolRoles", json!({"IdentityPoolId": pool})),
        (
            "GetOpenIdToken",
            json!({"IdentityId": user, "Logins": {"accounts.google.com": "u"}}),
        ),
        (
            "GetOpenIdTokenForDeveloperIdentity",
            json!({"IdentityPoolId": pool, "Logins": {"login.dev": "d1"},
            "PrincipalTags": {"t": "v"}, "TokenDuration": 60}),
        ),
        (
            "GetPrincipalTagAttributeMap",
            json!({"IdentityPoolId": pool, "IdentityProviderName": "accounts.google.com"}),
        ),
        (
            "ListIdentities",
            json!({"IdentityPoolId": pool, "MaxResults": 5, "HideDisabled": true}),
        ),
        ("ListIdentityPools", json!({"MaxResults": 5})),
        ("ListTagsForResource", json!({"ResourceArn": arn})),
        (
            "LookupDeveloperIdentity",
            json!({"IdentityPoolId": pool, "DeveloperUserIdentifier": "d1", "MaxResults": 5}),
        ),
        (
            "MergeDeveloperIdentities",
            json!({"SourceUserIdentifier": "d2", "DestinationUserIdentifier": "d1",
            "DeveloperProviderName": "login.dev", "IdentityPoolId": pool}),
        ),
        (
            "SetIdentityPoolRoles",
            json!({"IdentityPoolId": pool, "Roles": {"authenticated": role},
            "RoleMappings": {"accounts.google.com": {"Type": "Rules", "AmbiguousRoleResolution": "Deny",
                "RulesConfiguration": {"Rules": [{"Claim": "sub", "MatchType": "Equals", "Value": "u", "RoleARN": role}]}}}}),
        ),
        (
            "SetPrincipalTagAttributeMap",
            json!({"IdentityPoolId": pool, "IdentityProviderName": "accounts.google.com",
            "UseDefaults": false, "PrincipalTags": {"t": "sub"}}),
        ),
        (
            "TagResource",
            json!({"ResourceArn": arn, "Tags": {"k": "v"}}),
        ),
        (
            "UnlinkDeveloperIdentity",
            json!({"IdentityId": user, "IdentityPoolId": pool,
            "DeveloperProviderName": "login.dev", "DeveloperUserIdentifier": "d1"}),
        ),
        (
            "UnlinkIdentity",
            json!({"IdentityId": user, "Logins": {"accounts.google.com": "u"}, "LoginsToRemove": ["graph.facebook.com"]}),
        ),
        (
            "UntagResource",
            json!({"ResourceArn": arn, "TagKeys": ["k"]}),
        ),
        (
            "UpdateIdentityPool",
            json!({"IdentityPoolId": pool, "IdentityPoolName": "fuzz",
            "AllowUnauthenticatedIdentities": true, "SupportedLoginProviders": {"accounts.google.com": "g"},
            "DeveloperProviderName": "login.dev"}),
        ),
        // Last: it may delete the pool the others use.
        ("DeleteIdentityPool", json!({ "IdentityPoolId": pool })),
    ];
    let mut sent = 0;
    for seed in [0x1d9001, 0x5eed, 0xc0ffee] {
        let mut rng = Rng(seed);
        for (op, input) in &inputs {
            for round in 0..30 {
                let mut v = input.clone();
                for _ in 0..=rng.below(3) {
                    mutate(&mut v, &mut rng);
                }
                let r = ts.call(op, &v.to_string()).await;
                sent += 1;
                assert!(
                    r.status < 500,
                    "{op} round {round}: {} {} for {}",
                    r.status,
                    String::from_utf8_lossy(&r.body),
                    v.to_string().chars().take(300).collect::<String>()
                );
                if r.status != 200 {
                    r.assert_some_error();
                } else {
                    assert!(r.json().is_object(), "{op}");
                }
            }
        }
    }
    assert_eq!(sent, inputs.len() * 30 * 3);
    // The server still answers normally afterwards.
    ts.client()
        .list_identity_pools()
        .max_results(60)
        .send()
        .await
        .unwrap();
}
