//! SetIdentityPoolRoles / GetIdentityPoolRoles and the principal tag attribute maps, driven the
//! way Terraform drives them: set, read back, replace, "delete"; refused inputs change nothing;
//! other accounts see nothing; everything survives a restart.

use std::collections::HashMap;

use aws_sdk_cognitoidentity::types::{
    AmbiguousRoleResolutionType, CognitoIdentityProvider, MappingRule, MappingRuleMatchType,
    RoleMapping, RoleMappingType, RulesConfigurationType,
};
use aws_sdk_cognitoidentity::Client;
use serde_json::json;

use crate::common::*;

const GOOGLE: &str = "accounts.google.com";
const FACEBOOK: &str = "graph.facebook.com";
const USER_POOL: &str = "cognito-idp.us-east-1.amazonaws.com/us-east-1_abc";
const CLIENT: &str = "appclient";
const OIDC_ARN: &str = "arn:aws:iam::000000000000:oidc-provider/login.example.com";
const OIDC_HOST: &str = "login.example.com";
const SAML_ARN: &str = "arn:aws:iam::000000000000:saml-provider/corp";
const AUTH: &str = "arn:aws:iam::123456789012:role/Cognito_Auth";
const UNAUTH: &str = "arn:aws:iam::123456789012:role/Cognito_Unauth";
const ADMIN: &str = "arn:aws:iam::123456789012:role/path/admin";
const READER: &str = "arn:aws:iam::123456789012:role/reader";
const MISSING_POOL: &str = "us-east-1:00000000-0000-4000-8000-000000000000";

fn up_key() -> String {
    format!("{USER_POOL}:{CLIENT}")
}

/// A pool with every kind of provider: Google and Facebook, a user pool client, OIDC and SAML.
async fn provider_pool(c: &Client) -> String {
    c.create_identity_pool()
        .identity_pool_name("roles")
        .allow_unauthenticated_identities(true)
        .supported_login_providers(GOOGLE, "google-client")
        .supported_login_providers(FACEBOOK, "fb-app")
        .cognito_identity_providers(
            CognitoIdentityProvider::builder()
                .provider_name(USER_POOL)
                .client_id(CLIENT)
                .build(),
        )
        .open_id_connect_provider_arns(OIDC_ARN)
        .saml_provider_arns(SAML_ARN)
        .send()
        .await
        .unwrap()
        .identity_pool_id
}

fn token_mapping(resolution: AmbiguousRoleResolutionType) -> RoleMapping {
    RoleMapping::builder()
        .r#type(RoleMappingType::Token)
        .ambiguous_role_resolution(resolution)
        .build()
        .unwrap()
}

fn rule(claim: &str, mt: MappingRuleMatchType, value: &str, role: &str) -> MappingRule {
    MappingRule::builder()
        .claim(claim)
        .match_type(mt)
        .value(value)
        .role_arn(role)
        .build()
        .unwrap()
}

fn rules_mapping(n: usize) -> RoleMapping {
    let mut rc = RulesConfigurationType::builder();
    for i in 0..n {
        rc = rc.rules(rule(
            "custom:dept",
            MappingRuleMatchType::Equals,
            &format!("dept{i}"),
            if i % 2 == 0 { ADMIN } else { READER },
        ));
    }
    RoleMapping::builder()
        .r#type(RoleMappingType::Rules)
        .ambiguous_role_resolution(AmbiguousRoleResolutionType::Deny)
        .rules_configuration(rc.build().unwrap())
        .build()
        .unwrap()
}

fn two_rules() -> RoleMapping {
    RoleMapping::builder()
        .r#type(RoleMappingType::Rules)
        .ambiguous_role_resolution(AmbiguousRoleResolutionType::AuthenticatedRole)
        .rules_configuration(
            RulesConfigurationType::builder()
                .rules(rule(
                    "cognito:groups",
                    MappingRuleMatchType::Contains,
                    "admins",
                    ADMIN,
                ))
                .rules(rule(
                    "email",
                    MappingRuleMatchType::NotEqual,
                    "x@y.z",
                    READER,
                ))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// What GetIdentityPoolRoles says: the id, Roles, and RoleMappings.
type RolesView = (
    Option<String>,
    Option<HashMap<String, String>>,
    Option<HashMap<String, RoleMapping>>,
);

async fn get_roles(c: &Client, pool: &str) -> RolesView {
    let o = c
        .get_identity_pool_roles()
        .identity_pool_id(pool)
        .send()
        .await
        .unwrap();
    (
        o.identity_pool_id().map(str::to_string),
        o.roles().cloned(),
        o.role_mappings().cloned(),
    )
}

fn both_roles() -> HashMap<String, String> {
    HashMap::from([
        ("authenticated".to_string(), AUTH.to_string()),
        ("unauthenticated".to_string(), UNAUTH.to_string()),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_mappings_read_back_identical_are_replaced_whole_and_survive_restarts() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = provider_pool(&c).await;

    // Token on the user pool client, Rules on Google, Token on OIDC and SAML.
    let mappings = HashMap::from([
        (
            up_key(),
            token_mapping(AmbiguousRoleResolutionType::AuthenticatedRole),
        ),
        (GOOGLE.to_string(), two_rules()),
        (
            OIDC_HOST.to_string(),
            token_mapping(AmbiguousRoleResolutionType::Deny),
        ),
        (
            SAML_ARN.to_string(),
            token_mapping(AmbiguousRoleResolutionType::Deny),
        ),
    ]);
    c.set_identity_pool_roles()
        .identity_pool_id(&pool)
        .roles("authenticated", AUTH)
        .roles("unauthenticated", UNAUTH)
        .set_role_mappings(Some(mappings.clone()))
        .send()
        .await
        .unwrap();
    let expected = (
        Some(pool.clone()),
        Some(both_roles()),
        Some(mappings.clone()),
    );
    assert_eq!(get_roles(&c, &pool).await, expected);

    // Stored in the pool row, the mappings as readable JSON in the wire's spelling.
    let (auth, unauth, text): (String, String, String) = ts.db().row(
        "SELECT authenticated_role, unauthenticated_role, role_mappings FROM pools \
         WHERE id = ?1",
        &[&pool],
    );
    assert_eq!((auth.as_str(), unauth.as_str()), (AUTH, UNAUTH));
    let stored: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        stored[GOOGLE],
        json!({"Type": "Rules", "AmbiguousRoleResolution": "AuthenticatedRole",
               "RulesConfiguration": {"Rules": [
                   {"Claim": "cognito:groups", "MatchType": "Contains", "Value": "admins", "RoleARN": ADMIN},
                   {"Claim": "email", "MatchType": "NotEqual", "Value": "x@y.z", "RoleARN": READER}]}})
    );
    assert_eq!(
        stored[up_key()],
        json!({"Type": "Token", "AmbiguousRoleResolution": "AuthenticatedRole"})
    );

    let ts = ts.restart().await;
    let c = ts.client();
    assert_eq!(get_roles(&c, &pool).await, expected);

    // A Set without RoleMappings removes them; the roles are replaced, not merged.
    c.set_identity_pool_roles()
        .identity_pool_id(&pool)
        .roles("authenticated", READER)
        .send()
        .await
        .unwrap();
    let only_auth = HashMap::from([("authenticated".to_string(), READER.to_string())]);
    assert_eq!(
        get_roles(&c, &pool).await,
        (Some(pool.clone()), Some(only_auth.clone()), None)
    );
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM pools WHERE id = '{pool}' AND role_mappings IS NULL \
             AND unauthenticated_role IS NULL"
        )),
        1
    );

    // Mappings can come back with a different shape.
    let again = HashMap::from([(FACEBOOK.to_string(), rules_mapping(25))]);
    c.set_identity_pool_roles()
        .identity_pool_id(&pool)
        .roles("authenticated", READER)
        .set_role_mappings(Some(again.clone()))
        .send()
        .await
        .unwrap();
    let ts = ts.restart().await;
    let c = ts.client();
    assert_eq!(
        get_roles(&c, &pool).await,
        (Some(pool.clone()), Some(only_auth), Some(again))
    );

    // UpdateIdentityPool leaves roles alone.
    let d = c
        .describe_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .unwrap();
    c.update_identity_pool()
        .identity_pool_id(&pool)
        .identity_pool_name("renamed")
        .allow_unauthenticated_identities(true)
        .set_supported_login_providers(d.supported_login_providers().cloned())
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_roles(&c, &pool).await.1.unwrap()["authenticated"],
        READER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_roles_answers_the_aws_shape_on_the_wire() {
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;
    let pool = provider_pool(&ts.client()).await;
    let body = json!({"IdentityPoolId": pool}).to_string();

    // Nothing set: Roles is {} and RoleMappings is absent.
    let r = ts.call("GetIdentityPoolRoles", &body).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"IdentityPoolId": pool, "Roles": {}}));

    let set = json!({
        "IdentityPoolId": pool,
        "Roles": {"unauthenticated": UNAUTH},
        "RoleMappings": {
            GOOGLE: {"Type": "Rules", "AmbiguousRoleResolution": "Deny",
                     "RulesConfiguration": {"Rules": [
                         {"Claim": "sub", "MatchType": "StartsWith", "Value": "a", "RoleARN": ADMIN}]}}
        }
    });
    let r = ts.call("SetIdentityPoolRoles", &set.to_string()).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({}));
    let r = ts.call("GetIdentityPoolRoles", &body).await;
    assert_eq!(r.json(), set);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_role_configurations_are_refused_and_change_nothing() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = provider_pool(&c).await;
    let good = HashMap::from([(up_key(), token_mapping(AmbiguousRoleResolutionType::Deny))]);
    c.set_identity_pool_roles()
        .identity_pool_id(&pool)
        .roles("authenticated", AUTH)
        .roles("unauthenticated", UNAUTH)
        .set_role_mappings(Some(good.clone()))
        .send()
        .await
        .unwrap();
    let before = get_roles(&c, &pool).await;

    let set = |mappings: Vec<(&str, RoleMapping)>, auth: &str| {
        c.set_identity_pool_roles()
            .identity_pool_id(&pool)
            .roles("authenticated", auth)
            .set_role_mappings(Some(
                mappings
                    .into_iter()
                    .map(|(k, m)| (k.to_string(), m))
                    .collect(),
            ))
            .send()
    };

    // Not an IAM role ARN (the model only checks its length).
    for bad in [
        "arn:aws:iam::123456789012:user/someone",
        "arn:aws:iam::123:role/short-account",
        "this is not an arn at all",
    ] {
        let (code, message) = fail(set(vec![], bad).await);
        assert_eq!(code, "InvalidParameterException", "{bad}");
        assert!(message.contains(bad), "{message}");
    }

    // Keys that are not configured providers, with AWS's exact text.
    for key in [
        "www.amazon.com",
        USER_POOL,
        "cognito-idp.us-east-1.amazonaws.com/us-east-1_abc:otherclient",
        OIDC_ARN,
        "login.mycompany",
    ] {
        assert_eq!(
            fail(
                set(
                    vec![(key, token_mapping(AmbiguousRoleResolutionType::Deny))],
                    AUTH
                )
                .await
            ),
            invalid(&format!(
                "{key} is not a valid RoleMapping ProviderName or is not a configured provider."
            ))
        );
    }

    // Token or Rules without AmbiguousRoleResolution.
    for t in [RoleMappingType::Token, RoleMappingType::Rules] {
        let m = RoleMapping::builder()
            .r#type(t)
            .rules_configuration(
                RulesConfigurationType::builder()
                    .rules(rule("sub", MappingRuleMatchType::Equals, "x", ADMIN))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let (code, message) = fail(set(vec![(GOOGLE, m)], AUTH).await);
        assert_eq!(code, "InvalidParameterException");
        assert!(message.contains("AmbiguousRoleResolution"), "{message}");
    }

    // Rules without RulesConfiguration.
    let m = RoleMapping::builder()
        .r#type(RoleMappingType::Rules)
        .ambiguous_role_resolution(AmbiguousRoleResolutionType::Deny)
        .build()
        .unwrap();
    let (code, message) = fail(set(vec![(GOOGLE, m)], AUTH).await);
    assert_eq!(code, "InvalidParameterException");
    assert!(message.contains("RulesConfiguration"), "{message}");

    // 26 rules (the model allows 400, AWS 25).
    let (code, message) = fail(set(vec![(GOOGLE, rules_mapping(26))], AUTH).await);
    assert_eq!(code, "InvalidParameterException");
    assert!(message.contains("at most 25"), "{message}");

    // A rule's RoleARN is checked like a role.
    let bad_rule = RoleMapping::builder()
        .r#type(RoleMappingType::Rules)
        .ambiguous_role_resolution(AmbiguousRoleResolutionType::Deny)
        .rules_configuration(
            RulesConfigurationType::builder()
                .rules(rule(
                    "sub",
                    MappingRuleMatchType::Equals,
                    "x",
                    "arn:aws:s3:::not-a-role-bucket",
                ))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let (code, _) = fail(set(vec![(GOOGLE, bad_rule)], AUTH).await);
    assert_eq!(code, "InvalidParameterException");

    // One bad mapping among good ones refuses the whole Set.
    assert_eq!(
        fail(
            set(
                vec![
                    (GOOGLE, two_rules()),
                    ("www.amazon.com", token_mapping(AmbiguousRoleResolutionType::Deny)),
                ],
                READER
            )
            .await
        ),
        invalid(
            "www.amazon.com is not a valid RoleMapping ProviderName or is not a configured provider."
        )
    );

    // Unknown Roles keys and enum values are the model's: ValidationException.
    let ts = ts.restart().await;
    let c = ts.client();
    assert_eq!(get_roles(&c, &pool).await, before);
    let r = c
        .set_identity_pool_roles()
        .identity_pool_id(&pool)
        .roles("admin", AUTH)
        .send()
        .await;
    assert_eq!(fail(r).0, "ValidationException");

    assert_eq!(get_roles(&c, &pool).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_accounts_and_unknown_pools_are_not_found() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let other = ts.client_with(OTHER_AKID, OTHER_SECRET);
    let pool = provider_pool(&c).await;
    c.set_identity_pool_roles()
        .identity_pool_id(&pool)
        .roles("authenticated", AUTH)
        .send()
        .await
        .unwrap();
    c.set_principal_tag_attribute_map()
        .identity_pool_id(&pool)
        .identity_provider_name(GOOGLE)
        .principal_tags("who", "sub")
        .send()
        .await
        .unwrap();
    let before = get_roles(&c, &pool).await;

    for (client, id) in [(&other, pool.as_str()), (&c, MISSING_POOL)] {
        assert_eq!(
            fail(
                client
                    .set_identity_pool_roles()
                    .identity_pool_id(id)
                    .roles("authenticated", READER)
                    .send()
                    .await
            ),
            pool_not_found(id)
        );
        assert_eq!(
            fail(
                client
                    .get_identity_pool_roles()
                    .identity_pool_id(id)
                    .send()
                    .await
            ),
            pool_not_found(id)
        );
        assert_eq!(
            fail(
                client
                    .set_principal_tag_attribute_map()
                    .identity_pool_id(id)
                    .identity_provider_name(GOOGLE)
                    .use_defaults(true)
                    .send()
                    .await
            ),
            pool_not_found(id)
        );
        assert_eq!(
            fail(
                client
                    .get_principal_tag_attribute_map()
                    .identity_pool_id(id)
                    .identity_provider_name(GOOGLE)
                    .send()
                    .await
            ),
            pool_not_found(id)
        );
    }
    assert_eq!(get_roles(&c, &pool).await, before);
    let m = c
        .get_principal_tag_attribute_map()
        .identity_pool_id(&pool)
        .identity_provider_name(GOOGLE)
        .send()
        .await
        .unwrap();
    assert_eq!(m.use_defaults(), Some(false));
    assert_eq!(
        m.principal_tags().cloned(),
        Some(HashMap::from([("who".to_string(), "sub".to_string())]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principal_tag_maps_are_set_read_deleted_the_terraform_way_and_survive_restarts() {
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;
    let c = ts.client();
    let pool = provider_pool(&c).await;

    // Never set: not found, naming the provider.
    let (code, message) = fail(
        c.get_principal_tag_attribute_map()
            .identity_pool_id(&pool)
            .identity_provider_name(USER_POOL)
            .send()
            .await,
    );
    assert_eq!(code, "ResourceNotFoundException");
    assert!(message.contains(USER_POOL), "{message}");

    // Set echoes all four members; UseDefaults defaults to false on the wire.
    let r = ts
        .call(
            "SetPrincipalTagAttributeMap",
            &json!({"IdentityPoolId": pool, "IdentityProviderName": USER_POOL,
                    "PrincipalTags": {"dept": "custom:dept", "client": "aud"}})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let echoed = json!({"IdentityPoolId": pool, "IdentityProviderName": USER_POOL,
                        "UseDefaults": false,
                        "PrincipalTags": {"client": "aud", "dept": "custom:dept"}});
    assert_eq!(r.json(), echoed);
    let r = ts
        .call(
            "GetPrincipalTagAttributeMap",
            &json!({"IdentityPoolId": pool, "IdentityProviderName": USER_POOL}).to_string(),
        )
        .await;
    assert_eq!(r.json(), echoed);

    // Each kind of configured provider can have a map; the SDK sees what was set.
    for provider in [GOOGLE, OIDC_HOST, SAML_ARN] {
        let o = c
            .set_principal_tag_attribute_map()
            .identity_pool_id(&pool)
            .identity_provider_name(provider)
            .use_defaults(true)
            .send()
            .await
            .unwrap();
        assert_eq!(o.identity_pool_id(), Some(pool.as_str()));
        assert_eq!(o.identity_provider_name(), Some(provider));
        assert_eq!(o.use_defaults(), Some(true));
        assert_eq!(o.principal_tags().cloned(), Some(HashMap::new()));
    }

    // Providers the pool does not configure are refused, and nothing is stored.
    for provider in [
        "www.amazon.com",
        "login.mycompany",
        OIDC_ARN,
        "cognito-identity.amazonaws.com",
    ] {
        let (code, message) = fail(
            c.set_principal_tag_attribute_map()
                .identity_pool_id(&pool)
                .identity_provider_name(provider)
                .use_defaults(true)
                .send()
                .await,
        );
        assert_eq!(code, "InvalidParameterException", "{provider}");
        assert!(message.contains(provider), "{message}");
    }
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM principal_tag_maps WHERE pool_id = '{pool}'"
        )),
        4
    );

    let ts = ts.restart().await;
    let c = ts.client();
    let got = c
        .get_principal_tag_attribute_map()
        .identity_pool_id(&pool)
        .identity_provider_name(USER_POOL)
        .send()
        .await
        .unwrap();
    assert_eq!(got.use_defaults(), Some(false));
    assert_eq!(
        got.principal_tags().cloned(),
        Some(HashMap::from([
            ("dept".to_string(), "custom:dept".to_string()),
            ("client".to_string(), "aud".to_string())
        ]))
    );

    // Terraform's delete: UseDefaults=true and an empty PrincipalTags — a plain Set.
    let o = c
        .set_principal_tag_attribute_map()
        .identity_pool_id(&pool)
        .identity_provider_name(USER_POOL)
        .use_defaults(true)
        .set_principal_tags(Some(HashMap::new()))
        .send()
        .await
        .unwrap();
    assert_eq!(o.use_defaults(), Some(true));
    let ts = ts.restart().await;
    let got = ts
        .client()
        .get_principal_tag_attribute_map()
        .identity_pool_id(&pool)
        .identity_provider_name(USER_POOL)
        .send()
        .await
        .unwrap();
    assert_eq!(got.use_defaults(), Some(true));
    assert_eq!(got.principal_tags().cloned(), Some(HashMap::new()));

    // Deleting the pool takes its maps along.
    ts.client()
        .delete_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(ts.count("SELECT count(*) FROM principal_tag_maps"), 0);
}
