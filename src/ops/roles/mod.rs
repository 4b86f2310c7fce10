//! Identity pool roles and role mappings (Set/GetIdentityPoolRoles) and principal tag attribute
//! maps (Set/GetPrincipalTagAttributeMap): the admin operations and the checks on what they
//! store (docs/behaviour.md §6.6–6.9). The two decisions GetCredentialsForIdentity takes from
//! them have rooms of their own:
//! - `choice`: which role an identity gets (docs/behaviour.md §5);
//! - `session_tags`: which session tags it carries (docs/behaviour.md §5.6).

mod choice;
mod session_tags;

pub use choice::{choose_role, invalid_configuration, load_roles, rule_matches};
pub use session_tags::{principal_tags, principal_tags_from};

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::logins::provider_configured;
use super::pools::{oidc_provider_host, owned_pool, owned_pool_in};
use super::{decode, Caller};
use crate::arn::Arn;
use crate::model::Pool;
use crate::protocol::ApiError;
use crate::times;
use crate::App;

pub use crate::model::{
    AmbiguousRoleResolution, MappingRule, MappingType, MatchType, PoolRoles, PrincipalTagMap,
    RoleMapping, RulesConfiguration,
};

/// Rules per role mapping, as the Developer Guide states (the model allows 400).
pub const MAX_RULES: usize = 25;

/// The text AWS sends when the role an identity needs is not configured.
pub const INVALID_CONFIGURATION: &str =
    "Invalid identity pool configuration. Check assigned IAM roles for this pool.";

#[derive(Deserialize)]
struct SetRolesInput {
    #[serde(rename = "IdentityPoolId")]
    id: String,
    #[serde(rename = "Roles")]
    roles: BTreeMap<String, String>,
    #[serde(rename = "RoleMappings")]
    role_mappings: Option<BTreeMap<String, RoleMapping>>,
}

#[derive(Deserialize)]
struct PoolIdInput {
    #[serde(rename = "IdentityPoolId")]
    id: String,
}

#[derive(Deserialize)]
struct SetTagMapInput {
    #[serde(rename = "IdentityPoolId")]
    id: String,
    #[serde(rename = "IdentityProviderName")]
    provider: String,
    #[serde(rename = "UseDefaults")]
    use_defaults: Option<bool>,
    #[serde(rename = "PrincipalTags")]
    principal_tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct GetTagMapInput {
    #[serde(rename = "IdentityPoolId")]
    id: String,
    #[serde(rename = "IdentityProviderName")]
    provider: String,
}

// ---------------------------------------------------------------------------------------------
// Checks the service model cannot express.

/// Whether `arn` looks like an IAM role ARN: `arn:<aws partition>:iam::<12 digits>:role/<path/name>`,
/// the path and name made of IAM's name characters (`[\w+=,.@-]`, name 1..64).
pub fn is_role_arn(arn: &str) -> bool {
    let Some(parsed) = Arn::parse(arn) else {
        return false;
    };
    let Some(path_and_name) = parsed.iam_resource("role/") else {
        return false;
    };
    let name_char = |c: char| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c);
    let name = path_and_name.rsplit('/').next().unwrap_or("");
    parsed.account_digits(12, 12)
        && !name.is_empty()
        && name.len() <= 64
        && path_and_name.split('/').all(|seg| !seg.is_empty())
        && path_and_name.chars().all(|c| c == '/' || name_char(c))
}

fn check_role_arn(arn: &str) -> Result<(), ApiError> {
    if is_role_arn(arn) {
        Ok(())
    } else {
        Err(ApiError::InvalidParameter(format!(
            "Invalid role ARN: '{arn}' is not an IAM role ARN (arn:aws:iam::<account id>:role/<name>)."
        )))
    }
}

/// Whether a RoleMappings key names a provider the pool configures: `<ProviderName>:<ClientId>`
/// of a CognitoIdentityProviders entry, a SupportedLoginProviders key, the host of an OpenID
/// Connect provider ARN, or a SAML provider ARN.
pub fn mapping_key_configured(pool: &Pool, key: &str) -> bool {
    let s = &pool.settings;
    s.cognito_identity_providers.iter().any(|p| {
        p.client_id
            .as_deref()
            .is_some_and(|client| key == format!("{}:{client}", p.provider_name))
    }) || s.supported_login_providers.contains_key(key)
        || s.openid_connect_provider_arns
            .iter()
            .any(|a| oidc_provider_host(a) == Some(key))
        || s.saml_provider_arns.iter().any(|a| a == key)
}

/// Everything SetIdentityPoolRoles checks beyond the model, in a fixed order: role ARNs, then
/// each mapping (sorted by key): its key, its AmbiguousRoleResolution, its rules.
fn check_roles(pool: &Pool, roles: &PoolRoles) -> Result<(), ApiError> {
    for arn in roles
        .authenticated
        .iter()
        .chain(roles.unauthenticated.iter())
    {
        check_role_arn(arn)?;
    }
    for (key, m) in &roles.role_mappings {
        if !mapping_key_configured(pool, key) {
            return Err(ApiError::InvalidParameter(format!(
                "{key} is not a valid RoleMapping ProviderName or is not a configured provider."
            )));
        }
        if m.ambiguous_role_resolution.is_none() {
            return Err(ApiError::InvalidParameter(format!(
                "AmbiguousRoleResolution must be specified for the RoleMapping of {key} (Type {}).",
                type_name(m.kind)
            )));
        }
        match (&m.rules_configuration, m.kind) {
            (None, MappingType::Rules) => {
                return Err(ApiError::InvalidParameter(format!(
                    "RulesConfiguration must be specified for the RoleMapping of {key} (Type Rules)."
                )));
            }
            (None, MappingType::Token) => {}
            (Some(rc), _) => {
                if rc.rules.len() > MAX_RULES {
                    return Err(ApiError::InvalidParameter(format!(
                        "The RoleMapping of {key} has {} rules; at most {MAX_RULES} are allowed.",
                        rc.rules.len()
                    )));
                }
                for rule in &rc.rules {
                    check_role_arn(&rule.role_arn)?;
                }
            }
        }
    }
    Ok(())
}

fn type_name(t: MappingType) -> &'static str {
    match t {
        MappingType::Token => "Token",
        MappingType::Rules => "Rules",
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| {
        tracing::error!(error = %e, "cannot encode a stored value");
        ApiError::InternalError
    })
}

// ---------------------------------------------------------------------------------------------
// The operations.

/// SetIdentityPoolRoles: replaces the pool's whole role configuration. An omitted
/// RoleMappings removes the mappings the pool had (a Set, docs/behaviour.md §6.6).
pub async fn set_identity_pool_roles(
    app: &App,
    caller: &Caller,
    input: Value,
) -> Result<Value, ApiError> {
    let input: SetRolesInput = decode(input)?;
    let roles = PoolRoles {
        authenticated: input.roles.get("authenticated").cloned(),
        unauthenticated: input.roles.get("unauthenticated").cloned(),
        role_mappings: input.role_mappings.unwrap_or_default(),
    };
    let id = input.id;
    let caller = caller.clone();
    app.store
        .write(move |tx| {
            let pool = owned_pool_in(tx, &id, &caller)?;
            check_roles(&pool, &roles)?;
            tx.set_roles(&id, &roles, times::now())?;
            Ok(json!({}))
        })
        .await
}

/// GetIdentityPoolRoles: `Roles` always (`{}` when none), `RoleMappings` only when the pool
/// has some — the shape the AWS CLI shows.
pub async fn get_identity_pool_roles(
    app: &App,
    caller: &Caller,
    input: Value,
) -> Result<Value, ApiError> {
    let input: PoolIdInput = decode(input)?;
    let pool = owned_pool(app, caller, &input.id).await?;
    let roles = load_roles(app, &pool.id).await?;
    let mut role_map = Map::new();
    if let Some(a) = &roles.authenticated {
        role_map.insert("authenticated".into(), json!(a));
    }
    if let Some(u) = &roles.unauthenticated {
        role_map.insert("unauthenticated".into(), json!(u));
    }
    let mut out = Map::new();
    out.insert("IdentityPoolId".into(), json!(pool.id));
    out.insert("Roles".into(), Value::Object(role_map));
    if !roles.role_mappings.is_empty() {
        out.insert("RoleMappings".into(), to_value(&roles.role_mappings)?);
    }
    Ok(Value::Object(out))
}

fn tag_map_json(pool_id: &str, provider: &str, map: &PrincipalTagMap) -> Value {
    json!({
        "IdentityPoolId": pool_id,
        "IdentityProviderName": provider,
        "UseDefaults": map.use_defaults,
        "PrincipalTags": map.principal_tags,
    })
}

/// SetPrincipalTagAttributeMap: creates or replaces the provider's map. `UseDefaults` defaults
/// to false and `PrincipalTags` to `{}`. Terraform's "delete" (`UseDefaults=true`,
/// `PrincipalTags={}`) is an ordinary Set.
pub async fn set_principal_tag_attribute_map(
    app: &App,
    caller: &Caller,
    input: Value,
) -> Result<Value, ApiError> {
    let input: SetTagMapInput = decode(input)?;
    let map = PrincipalTagMap {
        use_defaults: input.use_defaults.unwrap_or(false),
        principal_tags: input.principal_tags.unwrap_or_default(),
    };
    let (id, provider) = (input.id, input.provider);
    let caller = caller.clone();
    app.store
        .write(move |tx| {
            let pool = owned_pool_in(tx, &id, &caller)?;
            if !provider_configured(&pool, &provider) {
                return Err(ApiError::InvalidParameter(format!(
                    "{provider} is not a configured identity provider of identity pool '{id}'."
                )));
            }
            tx.set_principal_tag_map(&id, &provider, &map)?;
            Ok(tag_map_json(&id, &provider, &map))
        })
        .await
}

/// GetPrincipalTagAttributeMap: the provider's map, or ResourceNotFoundException when none was
/// ever set (Terraform reads that as "gone").
pub async fn get_principal_tag_attribute_map(
    app: &App,
    caller: &Caller,
    input: Value,
) -> Result<Value, ApiError> {
    let input: GetTagMapInput = decode(input)?;
    let pool = owned_pool(app, caller, &input.id).await?;
    let (pool_id, provider) = (pool.id.clone(), input.provider.clone());
    let map = app
        .store
        .read(move |tx| tx.principal_tag_map(&pool_id, &provider))
        .await?
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!(
                "No principal tag attribute map for identity provider '{}' in identity pool '{}'.",
                input.provider, pool.id
            ))
        })?;
    Ok(tag_map_json(&pool.id, &input.provider, &map))
}

/// What the unit tests of the three rooms share: a pool with every kind of provider, logins,
/// mappings and rules.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::model::{CognitoProvider, PoolSettings};
    use crate::ops::logins::Login;

    pub const USER_POOL: &str = "cognito-idp.us-east-1.amazonaws.com/us-east-1_abc";
    pub const CLIENT: &str = "client1";
    pub const GOOGLE: &str = "accounts.google.com";
    pub const FACEBOOK: &str = "graph.facebook.com";
    pub const OIDC_HOST: &str = "login.example.com";
    pub const SAML: &str = "arn:aws:iam::123456789012:saml-provider/corp";
    pub const AUTH: &str = "arn:aws:iam::123456789012:role/auth";
    pub const UNAUTH: &str = "arn:aws:iam::123456789012:role/unauth";
    pub const ADMIN: &str = "arn:aws:iam::123456789012:role/admin";
    pub const READER: &str = "arn:aws:iam::123456789012:role/reader";
    pub const OTHER: &str = "arn:aws:iam::123456789012:role/other";

    pub fn pool() -> Pool {
        Pool {
            created_at: times::Millis(0),
            id: "us-east-1:0def4f54-71bd-42f5-b8d9-7e8811807670".into(),
            account_id: "123456789012".into(),
            settings: PoolSettings {
                name: "p".into(),
                allow_unauthenticated: true,
                allow_classic_flow: None,
                developer_provider_name: Some("dev".into()),
                supported_login_providers: [
                    (GOOGLE.to_string(), "google-client".to_string()),
                    (FACEBOOK.to_string(), "fb-app".to_string()),
                ]
                .into_iter()
                .collect(),
                openid_connect_provider_arns: vec![format!(
                    "arn:aws:iam::123456789012:oidc-provider/{OIDC_HOST}"
                )],
                cognito_identity_providers: vec![
                    CognitoProvider {
                        provider_name: USER_POOL.into(),
                        client_id: Some(CLIENT.into()),
                        server_side_token_check: false,
                    },
                    CognitoProvider {
                        provider_name: "cognito-idp.us-east-1.amazonaws.com/us-east-1_noclient"
                            .into(),
                        client_id: None,
                        server_side_token_check: false,
                    },
                ],
                saml_provider_arns: vec![SAML.into()],
            },
        }
    }

    pub fn login(provider: &str, claims: Value) -> Login {
        let claims = match claims {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or("user-sub")
            .to_string();
        Login {
            provider: provider.into(),
            subject,
            claims,
        }
    }

    pub fn roles(mappings: Vec<(&str, RoleMapping)>) -> PoolRoles {
        PoolRoles {
            authenticated: Some(AUTH.into()),
            unauthenticated: Some(UNAUTH.into()),
            role_mappings: mappings
                .into_iter()
                .map(|(k, m)| (k.to_string(), m))
                .collect(),
        }
    }

    pub fn token(amb: AmbiguousRoleResolution) -> RoleMapping {
        RoleMapping {
            kind: MappingType::Token,
            ambiguous_role_resolution: Some(amb),
            rules_configuration: None,
        }
    }

    pub fn rule(claim: &str, match_type: MatchType, value: &str, role: &str) -> MappingRule {
        MappingRule {
            claim: claim.into(),
            match_type,
            value: value.into(),
            role_arn: role.into(),
        }
    }

    pub fn rules(amb: AmbiguousRoleResolution, rules: Vec<MappingRule>) -> RoleMapping {
        RoleMapping {
            kind: MappingType::Rules,
            ambiguous_role_resolution: Some(amb),
            rules_configuration: Some(RulesConfiguration { rules }),
        }
    }

    pub fn up_key() -> String {
        format!("{USER_POOL}:{CLIENT}")
    }

    pub fn denied(key: &str) -> ApiError {
        ApiError::NotAuthorized(format!(
            "The ambiguous role mapping rules for: {key} denied this request."
        ))
    }

    pub fn refused(arn: &str) -> ApiError {
        ApiError::NotAuthorized(format!(
            "CustomRoleArn '{arn}' is not a role this identity may assume."
        ))
    }

    // --- role ARNs and mapping keys ---
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn role_arns_must_look_like_iam_roles() {
        for good in [
            AUTH,
            "arn:aws:iam::123456789012:role/service-role/my.role+x=y,z@w_1-2",
            "arn:aws-cn:iam::123456789012:role/a",
            "arn:aws-us-gov:iam::123456789012:role/path/to/name",
        ] {
            assert!(is_role_arn(good), "{good}");
        }
        for bad in [
            "arn:aws:iam::12345678901:role/short-account",
            "arn:aws:iam::1234567890123:role/long-account",
            "arn:aws:iam::12345678901a:role/x",
            "arn:aws:iam:us-east-1:123456789012:role/regional",
            "arn:aws:iam::123456789012:user/notarole",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/path//name",
            "arn:aws:iam::123456789012:role/trailing/",
            "arn:aws:iam::123456789012:role/bad name",
            "arn:aws:iam::123456789012:role/bad:colon",
            "arn:aws:s3:::bucket/role/x",
            "arn:other:iam::123456789012:role/x",
            "not an arn at all, really",
        ] {
            assert!(!is_role_arn(bad), "{bad}");
        }
        let long = format!("arn:aws:iam::123456789012:role/{}", "n".repeat(65));
        assert!(!is_role_arn(&long));
        let max = format!("arn:aws:iam::123456789012:role/{}", "n".repeat(64));
        assert!(is_role_arn(&max));
    }

    #[test]
    fn mapping_keys_are_configured_providers() {
        let p = pool();
        assert!(mapping_key_configured(&p, &up_key()));
        assert!(mapping_key_configured(&p, GOOGLE));
        assert!(mapping_key_configured(&p, OIDC_HOST));
        assert!(mapping_key_configured(&p, SAML));
        // A user pool without its client id, with another client, or with none configured.
        assert!(!mapping_key_configured(&p, USER_POOL));
        assert!(!mapping_key_configured(&p, &format!("{USER_POOL}:other")));
        assert!(!mapping_key_configured(
            &p,
            "cognito-idp.us-east-1.amazonaws.com/us-east-1_noclient:x"
        ));
        assert!(!mapping_key_configured(&p, "dev"));
        assert!(!mapping_key_configured(&p, "www.amazon.com"));
        assert!(!mapping_key_configured(
            &p,
            "arn:aws:iam::123456789012:oidc-provider/login.example.com"
        ));
    }

    #[test]
    fn check_roles_refuses_what_the_model_cannot() {
        let p = pool();
        let ok = roles(vec![
            (GOOGLE, token(AmbiguousRoleResolution::Deny)),
            (
                &up_key(),
                rules(
                    AmbiguousRoleResolution::AuthenticatedRole,
                    vec![rule("g", MatchType::Equals, "x", ADMIN)],
                ),
            ),
        ]);
        assert_eq!(check_roles(&p, &ok), Ok(()));
        assert_eq!(check_roles(&p, &PoolRoles::default()), Ok(()));

        let mut bad = ok.clone();
        bad.authenticated = Some("arn:aws:iam::123456789012:user/u".into());
        assert!(
            matches!(check_roles(&p, &bad), Err(ApiError::InvalidParameter(m)) if m.contains("not an IAM role ARN"))
        );

        let bad = roles(vec![(
            "www.amazon.com",
            token(AmbiguousRoleResolution::Deny),
        )]);
        assert_eq!(
            check_roles(&p, &bad),
            Err(ApiError::InvalidParameter(
                "www.amazon.com is not a valid RoleMapping ProviderName or is not a configured provider."
                    .into()
            ))
        );

        let mut m = token(AmbiguousRoleResolution::Deny);
        m.ambiguous_role_resolution = None;
        let bad = roles(vec![(GOOGLE, m)]);
        assert!(
            matches!(check_roles(&p, &bad), Err(ApiError::InvalidParameter(m)) if m.contains("AmbiguousRoleResolution"))
        );

        let mut m = rules(AmbiguousRoleResolution::Deny, vec![]);
        m.rules_configuration = None;
        let bad = roles(vec![(GOOGLE, m)]);
        assert!(
            matches!(check_roles(&p, &bad), Err(ApiError::InvalidParameter(m)) if m.contains("RulesConfiguration"))
        );

        let many = (0..26)
            .map(|i| rule("c", MatchType::Equals, &i.to_string(), ADMIN))
            .collect::<Vec<_>>();
        let bad = roles(vec![(GOOGLE, rules(AmbiguousRoleResolution::Deny, many))]);
        assert!(
            matches!(check_roles(&p, &bad), Err(ApiError::InvalidParameter(m)) if m.contains("26 rules"))
        );
        let max = (0..25)
            .map(|i| rule("c", MatchType::Equals, &i.to_string(), ADMIN))
            .collect::<Vec<_>>();
        let fine = roles(vec![(GOOGLE, rules(AmbiguousRoleResolution::Deny, max))]);
        assert_eq!(check_roles(&p, &fine), Ok(()));

        let bad = roles(vec![(
            GOOGLE,
            rules(
                AmbiguousRoleResolution::Deny,
                vec![rule("c", MatchType::Equals, "v", "arn:aws:iam::1:role/x")],
            ),
        )]);
        assert!(
            matches!(check_roles(&p, &bad), Err(ApiError::InvalidParameter(m)) if m.contains("arn:aws:iam::1:role/x"))
        );
    }

    #[test]
    fn role_mappings_are_stored_in_the_wire_spelling() {
        let m = rules(
            AmbiguousRoleResolution::Deny,
            vec![rule("custom:dept", MatchType::StartsWith, "eng", ADMIN)],
        );
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            json!({"Type": "Rules", "AmbiguousRoleResolution": "Deny", "RulesConfiguration":
                {"Rules": [{"Claim": "custom:dept", "MatchType": "StartsWith", "Value": "eng",
                            "RoleARN": ADMIN}]}})
        );
        let back: RoleMapping = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
        let t = serde_json::to_value(token(AmbiguousRoleResolution::AuthenticatedRole)).unwrap();
        assert_eq!(
            t,
            json!({"Type": "Token", "AmbiguousRoleResolution": "AuthenticatedRole"})
        );
    }

    // --- choose_role: unauthenticated, developer, no mapping ---
}
