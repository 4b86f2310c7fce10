//! Identity pool roles and role mappings (Set/GetIdentityPoolRoles), principal tag attribute
//! maps (Set/GetPrincipalTagAttributeMap), and the two pure decisions GetCredentialsForIdentity
//! takes from them: which role an identity gets (`choose_role`) and which session tags it
//! carries (`principal_tags`). docs/behaviour.md §5, §6.6–6.9.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::logins::{provider_configured, Login};
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

// ---------------------------------------------------------------------------------------------
// Role selection and session tags, for GetCredentialsForIdentity.

/// A pool's roles and role mappings, for `choose_role`.
pub async fn load_roles(app: &App, pool_id: &str) -> Result<PoolRoles, ApiError> {
    let id = pool_id.to_string();
    app.store
        .read(move |tx| tx.roles(&id))
        .await?
        .ok_or_else(|| ApiError::pool_not_found(pool_id))
}

/// InvalidIdentityPoolConfigurationException with AWS's text: the role an identity needs is
/// not configured, or STS refused it.
pub fn invalid_configuration() -> ApiError {
    ApiError::InvalidIdentityPoolConfiguration(INVALID_CONFIGURATION.to_string())
}

fn required(role: &Option<String>) -> Result<String, ApiError> {
    role.clone().ok_or_else(invalid_configuration)
}

fn custom_role_refused(arn: &str) -> ApiError {
    ApiError::NotAuthorized(format!(
        "CustomRoleArn '{arn}' is not a role this identity may assume."
    ))
}

/// What a role mapping decided.
enum Decision {
    /// The caller's CustomRoleArn, explicitly allowed by the mapping.
    Custom(String),
    /// A role the mapping chose.
    Role(String),
}

/// Picks the IAM role GetCredentialsForIdentity issues credentials for (docs/behaviour.md §5).
///
/// - `logins` empty and not `developer_or_cognito`: a guest → `Roles.unauthenticated`.
/// - `developer_or_cognito` (a developer-provider identity, or a
///   `cognito-identity.amazonaws.com` token): `Roles.authenticated`; `logins` are not consulted.
/// - Otherwise the logins in slice order; the first whose mapping key has a RoleMapping
///   decides. The mapping key is the provider name, or `<provider>:<aud>` for user pools
///   (providers starting `cognito-idp.` or listed in CognitoIdentityProviders).
///   - `Token`: with a CustomRoleArn, it must be in `cognito:roles` (JSON array or
///     comma-separated string), else NotAuthorizedException; without one,
///     `cognito:preferred_role`; else the mapping is ambiguous.
///   - `Rules`: first matching rule in order; with a CustomRoleArn, the first *matching* rule
///     whose RoleARN equals it wins instead. No match: ambiguous. See `rule_matches`.
///   - Ambiguous: `AuthenticatedRole` → `Roles.authenticated`; `Deny` →
///     NotAuthorizedException `The ambiguous role mapping rules for: <mapping key> denied this
///     request.`
/// - No login has a mapping → `Roles.authenticated`.
///
/// A role that is needed but not configured → InvalidIdentityPoolConfigurationException with
/// AWS's text. **CustomRoleArn (our decision, AWS documents no more):** it is honoured only when
/// a Token mapping's `cognito:roles` or a matching Rules rule allows it, or when it equals the
/// role chosen anyway; any other CustomRoleArn is refused with NotAuthorizedException
/// `CustomRoleArn '<arn>' is not a role this identity may assume.` rather than silently ignored,
/// so a client never gets credentials for a role it did not ask for.
pub fn choose_role(
    roles: &PoolRoles,
    pool: &Pool,
    logins: &[Login],
    developer_or_cognito: bool,
    custom_role_arn: Option<&str>,
) -> Result<String, ApiError> {
    let chosen = if developer_or_cognito {
        required(&roles.authenticated)?
    } else if logins.is_empty() {
        required(&roles.unauthenticated)?
    } else {
        match mapped_role(roles, pool, logins, custom_role_arn)? {
            Some(Decision::Custom(role)) => return Ok(role),
            Some(Decision::Role(role)) => role,
            None => required(&roles.authenticated)?,
        }
    };
    match custom_role_arn {
        Some(custom) if custom != chosen => Err(custom_role_refused(custom)),
        _ => Ok(chosen),
    }
}

/// Whether a provider is a Cognito user pool, whose mapping key carries the token's `aud`.
fn is_user_pool(pool: &Pool, provider: &str) -> bool {
    provider.starts_with("cognito-idp.")
        || pool
            .settings
            .cognito_identity_providers
            .iter()
            .any(|p| p.provider_name == provider)
}

/// The RoleMapping that applies to a login, and its mapping key.
fn mapping_for<'a>(
    roles: &'a PoolRoles,
    pool: &Pool,
    login: &Login,
) -> Option<(String, &'a RoleMapping)> {
    if is_user_pool(pool, &login.provider) {
        let auds = login.claims.get("aud").map(claim_list).unwrap_or_default();
        auds.into_iter().find_map(|aud| {
            let key = format!("{}:{aud}", login.provider);
            roles.role_mappings.get(&key).map(|m| (key, m))
        })
    } else {
        roles
            .role_mappings
            .get(&login.provider)
            .map(|m| (login.provider.clone(), m))
    }
}

fn mapped_role(
    roles: &PoolRoles,
    pool: &Pool,
    logins: &[Login],
    custom: Option<&str>,
) -> Result<Option<Decision>, ApiError> {
    let Some((key, login, mapping)) = logins
        .iter()
        .find_map(|l| mapping_for(roles, pool, l).map(|(k, m)| (k, l, m)))
    else {
        return Ok(None);
    };
    let decided = match mapping.kind {
        MappingType::Token => {
            if let Some(custom) = custom {
                let allowed = login
                    .claims
                    .get("cognito:roles")
                    .map(claim_list)
                    .unwrap_or_default();
                if allowed.iter().any(|r| r == custom) {
                    return Ok(Some(Decision::Custom(custom.to_string())));
                }
                return Err(custom_role_refused(custom));
            }
            login
                .claims
                .get("cognito:preferred_role")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
        }
        MappingType::Rules => {
            let rules = mapping
                .rules_configuration
                .as_ref()
                .map(|rc| rc.rules.as_slice())
                .unwrap_or_default();
            let mut matching = rules.iter().filter(|r| rule_matches(r, &login.claims));
            if let Some(custom) = custom {
                if let Some(rule) = matching.clone().find(|r| r.role_arn == custom) {
                    return Ok(Some(Decision::Custom(rule.role_arn.clone())));
                }
            }
            matching.next().map(|r| r.role_arn.clone())
        }
    };
    match decided {
        Some(role) => Ok(Some(Decision::Role(role))),
        None => match mapping.ambiguous_role_resolution {
            Some(AmbiguousRoleResolution::AuthenticatedRole) => {
                Ok(Some(Decision::Role(required(&roles.authenticated)?)))
            }
            // Set refuses a mapping without a resolution; a stored one without is denied.
            Some(AmbiguousRoleResolution::Deny) | None => Err(ApiError::NotAuthorized(format!(
                "The ambiguous role mapping rules for: {key} denied this request."
            ))),
        },
    }
}

/// A scalar claim as text: strings as they are, numbers and booleans as their JSON text.
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A claim as a list of strings: a JSON array's scalar elements, or a string split at commas
/// (how the docs describe `cognito:roles`), or a single scalar.
fn claim_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        other => scalar_text(other).into_iter().collect(),
    }
}

/// Whether a rule matches the login's claims. A claim that is absent, null or an object never
/// matches (so a `NotEqual` rule is not evaluated without its claim, as AWS documents). Scalars
/// compare as text (numbers and booleans by their JSON text). Arrays (e.g. `cognito:groups`)
/// compare element-wise: `Equals`, `Contains` and `StartsWith` match when some element does;
/// `NotEqual` matches when no element equals the value (an empty array is like an absent claim).
pub fn rule_matches(rule: &MappingRule, claims: &Map<String, Value>) -> bool {
    let values: Vec<String> = match claims.get(&rule.claim) {
        Some(Value::Array(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(v) => scalar_text(v).into_iter().collect(),
        None => Vec::new(),
    };
    if values.is_empty() {
        return false;
    }
    let want = rule.value.as_str();
    match rule.match_type {
        MatchType::Equals => values.iter().any(|v| v == want),
        MatchType::Contains => values.iter().any(|v| v.contains(want)),
        MatchType::StartsWith => values.iter().any(|v| v.starts_with(want)),
        MatchType::NotEqual => values.iter().all(|v| v != want),
    }
}

/// A claim's value as a session tag value: scalars as `scalar_text`, arrays as their scalar
/// elements joined with `,`; objects, null, empty arrays and absent claims give no tag.
fn tag_value(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(scalar_text).collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        other => scalar_text(other),
    }
}

/// The session tags of an identity authenticated with `logins` (docs/behaviour.md §5.6), from the
/// pool's principal tag attribute maps. Only logins whose provider has a map contribute.
///
/// - `UseDefaults`: user pools give `{"client": <aud>, "username": <sub>}`; other providers
///   `{"aud": <aud claim, else the SupportedLoginProviders app id>, "sub": <subject>}`
///   (AWS documents the user-pool names; the others follow DG/provider-mappings).
/// - `PrincipalTags` (tag key → claim name) add the named claims, overriding a default of the
///   same key. Claims become text as `tag_value` says; a claim the token lacks gives no tag.
/// - With several logins, the first login in slice order that yields a tag key keeps it.
///
/// Values are passed as they are; STS limits (50 tags, 256-character values) are the
/// credential issuer's to enforce.
pub async fn principal_tags(
    app: &App,
    pool: &Pool,
    logins: &[Login],
) -> Result<BTreeMap<String, String>, ApiError> {
    if logins.is_empty() {
        return Ok(BTreeMap::new());
    }
    let id = pool.id.clone();
    let maps = app.store.read(move |tx| tx.principal_tag_maps(&id)).await?;
    Ok(principal_tags_from(&maps, pool, logins))
}

/// `principal_tags` on maps already read: the pure part, by provider name.
pub fn principal_tags_from(
    maps: &BTreeMap<String, PrincipalTagMap>,
    pool: &Pool,
    logins: &[Login],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for login in logins {
        let Some(map) = maps.get(&login.provider) else {
            continue;
        };
        let mut tags = BTreeMap::new();
        if map.use_defaults {
            let aud = tag_value(login.claims.get("aud"));
            if is_user_pool(pool, &login.provider) {
                if let Some(aud) = aud {
                    tags.insert("client".to_string(), aud);
                }
                tags.insert("username".to_string(), login.subject.clone());
            } else {
                let aud = aud.or_else(|| {
                    pool.settings
                        .supported_login_providers
                        .get(&login.provider)
                        .cloned()
                });
                if let Some(aud) = aud {
                    tags.insert("aud".to_string(), aud);
                }
                tags.insert("sub".to_string(), login.subject.clone());
            }
        }
        for (tag, claim) in &map.principal_tags {
            if let Some(v) = tag_value(login.claims.get(claim)) {
                tags.insert(tag.clone(), v);
            }
        }
        for (k, v) in tags {
            out.entry(k).or_insert(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CognitoProvider, PoolSettings};

    const USER_POOL: &str = "cognito-idp.us-east-1.amazonaws.com/us-east-1_abc";
    const CLIENT: &str = "client1";
    const GOOGLE: &str = "accounts.google.com";
    const FACEBOOK: &str = "graph.facebook.com";
    const OIDC_HOST: &str = "login.example.com";
    const SAML: &str = "arn:aws:iam::123456789012:saml-provider/corp";
    const AUTH: &str = "arn:aws:iam::123456789012:role/auth";
    const UNAUTH: &str = "arn:aws:iam::123456789012:role/unauth";
    const ADMIN: &str = "arn:aws:iam::123456789012:role/admin";
    const READER: &str = "arn:aws:iam::123456789012:role/reader";
    const OTHER: &str = "arn:aws:iam::123456789012:role/other";

    fn pool() -> Pool {
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

    fn login(provider: &str, claims: Value) -> Login {
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

    fn roles(mappings: Vec<(&str, RoleMapping)>) -> PoolRoles {
        PoolRoles {
            authenticated: Some(AUTH.into()),
            unauthenticated: Some(UNAUTH.into()),
            role_mappings: mappings
                .into_iter()
                .map(|(k, m)| (k.to_string(), m))
                .collect(),
        }
    }

    fn token(amb: AmbiguousRoleResolution) -> RoleMapping {
        RoleMapping {
            kind: MappingType::Token,
            ambiguous_role_resolution: Some(amb),
            rules_configuration: None,
        }
    }

    fn rule(claim: &str, match_type: MatchType, value: &str, role: &str) -> MappingRule {
        MappingRule {
            claim: claim.into(),
            match_type,
            value: value.into(),
            role_arn: role.into(),
        }
    }

    fn rules(amb: AmbiguousRoleResolution, rules: Vec<MappingRule>) -> RoleMapping {
        RoleMapping {
            kind: MappingType::Rules,
            ambiguous_role_resolution: Some(amb),
            rules_configuration: Some(RulesConfiguration { rules }),
        }
    }

    fn up_key() -> String {
        format!("{USER_POOL}:{CLIENT}")
    }

    fn denied(key: &str) -> ApiError {
        ApiError::NotAuthorized(format!(
            "The ambiguous role mapping rules for: {key} denied this request."
        ))
    }

    fn refused(arn: &str) -> ApiError {
        ApiError::NotAuthorized(format!(
            "CustomRoleArn '{arn}' is not a role this identity may assume."
        ))
    }

    // --- role ARNs and mapping keys ---

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

    #[test]
    fn guests_get_the_unauthenticated_role_or_the_configuration_error() {
        let p = pool();
        let r = roles(vec![]);
        assert_eq!(choose_role(&r, &p, &[], false, None), Ok(UNAUTH.into()));
        assert_eq!(
            choose_role(&r, &p, &[], false, Some(UNAUTH)),
            Ok(UNAUTH.into())
        );
        assert_eq!(
            choose_role(&r, &p, &[], false, Some(AUTH)),
            Err(refused(AUTH))
        );
        let mut none = r.clone();
        none.unauthenticated = None;
        assert_eq!(
            choose_role(&none, &p, &[], false, None),
            Err(ApiError::InvalidIdentityPoolConfiguration(
                INVALID_CONFIGURATION.into()
            ))
        );
    }

    #[test]
    fn developer_and_cognito_identities_get_the_authenticated_role() {
        let p = pool();
        // Mappings for the logins are not consulted.
        let r = roles(vec![(GOOGLE, token(AmbiguousRoleResolution::Deny))]);
        assert_eq!(choose_role(&r, &p, &[], true, None), Ok(AUTH.into()));
        let g = login(GOOGLE, json!({}));
        assert_eq!(
            choose_role(&r, &p, std::slice::from_ref(&g), true, None),
            Ok(AUTH.into())
        );
        assert_eq!(
            choose_role(&r, &p, &[], true, Some(ADMIN)),
            Err(refused(ADMIN))
        );
        let mut none = r.clone();
        none.authenticated = None;
        assert_eq!(
            choose_role(&none, &p, &[], true, None),
            Err(ApiError::InvalidIdentityPoolConfiguration(
                INVALID_CONFIGURATION.into()
            ))
        );
    }

    #[test]
    fn logins_without_a_mapping_get_the_authenticated_role() {
        let p = pool();
        let r = roles(vec![(FACEBOOK, token(AmbiguousRoleResolution::Deny))]);
        let g = [login(GOOGLE, json!({"cognito:preferred_role": ADMIN}))];
        assert_eq!(choose_role(&r, &p, &g, false, None), Ok(AUTH.into()));
        assert_eq!(choose_role(&r, &p, &g, false, Some(AUTH)), Ok(AUTH.into()));
        assert_eq!(
            choose_role(&r, &p, &g, false, Some(ADMIN)),
            Err(refused(ADMIN))
        );
        let mut none = r.clone();
        none.authenticated = None;
        assert_eq!(
            choose_role(&none, &p, &g, false, None),
            Err(ApiError::InvalidIdentityPoolConfiguration(
                INVALID_CONFIGURATION.into()
            ))
        );
        // A user-pool mapping of another client does not apply.
        let other = roles(vec![(
            &format!("{USER_POOL}:other") as &str,
            token(AmbiguousRoleResolution::Deny),
        )]);
        let u = [login(USER_POOL, json!({"aud": CLIENT}))];
        assert_eq!(choose_role(&other, &p, &u, false, None), Ok(AUTH.into()));
    }

    // --- Token mappings ---

    #[test]
    fn token_mappings_use_the_preferred_role() {
        let p = pool();
        let r = roles(vec![(
            &up_key() as &str,
            token(AmbiguousRoleResolution::Deny),
        )]);
        let u = [login(
            USER_POOL,
            json!({"aud": CLIENT, "cognito:preferred_role": ADMIN, "cognito:roles": [ADMIN, READER]}),
        )];
        assert_eq!(choose_role(&r, &p, &u, false, None), Ok(ADMIN.into()));
    }

    #[test]
    fn token_mappings_take_a_custom_role_only_from_cognito_roles() {
        let p = pool();
        let r = roles(vec![(
            &up_key() as &str,
            token(AmbiguousRoleResolution::Deny),
        )]);
        let arr = [login(
            USER_POOL,
            json!({"aud": CLIENT, "cognito:preferred_role": ADMIN, "cognito:roles": [ADMIN, READER]}),
        )];
        assert_eq!(
            choose_role(&r, &p, &arr, false, Some(READER)),
            Ok(READER.into())
        );
        assert_eq!(
            choose_role(&r, &p, &arr, false, Some(OTHER)),
            Err(refused(OTHER))
        );
        // The documented comma-separated form.
        let csv = [login(
            USER_POOL,
            json!({"aud": CLIENT, "cognito:roles": format!("{ADMIN}, {READER}")}),
        )];
        assert_eq!(
            choose_role(&r, &p, &csv, false, Some(READER)),
            Ok(READER.into())
        );
        // No roles claim at all: a custom role is refused even under AuthenticatedRole.
        let bare = [login(USER_POOL, json!({"aud": CLIENT}))];
        let lenient = roles(vec![(
            &up_key() as &str,
            token(AmbiguousRoleResolution::AuthenticatedRole),
        )]);
        assert_eq!(
            choose_role(&lenient, &p, &bare, false, Some(AUTH)),
            Err(refused(AUTH))
        );
    }

    #[test]
    fn token_mappings_without_a_preferred_role_are_ambiguous() {
        let p = pool();
        let key = up_key();
        let several = [login(
            USER_POOL,
            json!({"aud": CLIENT, "cognito:roles": [ADMIN, READER]}),
        )];
        let none = [login(USER_POOL, json!({"aud": CLIENT}))];
        let deny = roles(vec![(&key as &str, token(AmbiguousRoleResolution::Deny))]);
        let auth = roles(vec![(
            &key as &str,
            token(AmbiguousRoleResolution::AuthenticatedRole),
        )]);
        for l in [&several, &none] {
            assert_eq!(choose_role(&deny, &p, l, false, None), Err(denied(&key)));
            assert_eq!(choose_role(&auth, &p, l, false, None), Ok(AUTH.into()));
        }
        let mut no_auth = auth.clone();
        no_auth.authenticated = None;
        assert_eq!(
            choose_role(&no_auth, &p, &none, false, None),
            Err(ApiError::InvalidIdentityPoolConfiguration(
                INVALID_CONFIGURATION.into()
            ))
        );
    }

    #[test]
    fn non_user_pool_mapping_keys_are_the_provider_name() {
        let p = pool();
        let r = roles(vec![
            (GOOGLE, token(AmbiguousRoleResolution::Deny)),
            (OIDC_HOST, token(AmbiguousRoleResolution::Deny)),
        ]);
        let g = [login(GOOGLE, json!({"aud": "google-client"}))];
        assert_eq!(choose_role(&r, &p, &g, false, None), Err(denied(GOOGLE)));
        let o = [login(OIDC_HOST, json!({"cognito:preferred_role": READER}))];
        assert_eq!(choose_role(&r, &p, &o, false, None), Ok(READER.into()));
    }

    #[test]
    fn user_pool_mapping_keys_take_an_aud_from_an_array_too() {
        let p = pool();
        let r = roles(vec![(
            &up_key() as &str,
            token(AmbiguousRoleResolution::Deny),
        )]);
        let u = [login(
            USER_POOL,
            json!({"aud": ["x", CLIENT], "cognito:preferred_role": ADMIN}),
        )];
        assert_eq!(choose_role(&r, &p, &u, false, None), Ok(ADMIN.into()));
        // A user pool login without aud has no mapping key: the authenticated role.
        let no_aud = [login(USER_POOL, json!({"cognito:preferred_role": ADMIN}))];
        assert_eq!(choose_role(&r, &p, &no_aud, false, None), Ok(AUTH.into()));
    }

    #[test]
    fn the_first_login_with_a_mapping_decides_in_slice_order() {
        let p = pool();
        let r = roles(vec![
            (GOOGLE, token(AmbiguousRoleResolution::Deny)),
            (
                FACEBOOK,
                rules(
                    AmbiguousRoleResolution::Deny,
                    vec![rule("sub", MatchType::Equals, "f", READER)],
                ),
            ),
        ]);
        let unmapped = login(OIDC_HOST, json!({"sub": "o"}));
        let g = login(GOOGLE, json!({"cognito:preferred_role": ADMIN}));
        let f = login(FACEBOOK, json!({"sub": "f"}));
        assert_eq!(
            choose_role(
                &r,
                &p,
                &[unmapped.clone(), g.clone(), f.clone()],
                false,
                None
            ),
            Ok(ADMIN.into())
        );
        assert_eq!(
            choose_role(&r, &p, &[unmapped, f.clone(), g.clone()], false, None),
            Ok(READER.into())
        );
        // The deciding mapping's denial is final: later logins are not tried.
        let g_bare = login(GOOGLE, json!({}));
        assert_eq!(
            choose_role(&r, &p, &[g_bare, f], false, None),
            Err(denied(GOOGLE))
        );
    }

    // --- Rules mappings ---

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn each_match_type_compares_string_claims() {
        let c = claims(json!({"dept": "engineering", "level": 3, "admin": true}));
        let t = |claim: &str, mt: MatchType, v: &str| rule_matches(&rule(claim, mt, v, ADMIN), &c);
        assert!(t("dept", MatchType::Equals, "engineering"));
        assert!(!t("dept", MatchType::Equals, "eng"));
        assert!(t("dept", MatchType::Contains, "gineer"));
        assert!(!t("dept", MatchType::Contains, "sales"));
        assert!(t("dept", MatchType::StartsWith, "eng"));
        assert!(!t("dept", MatchType::StartsWith, "ring"));
        assert!(t("dept", MatchType::NotEqual, "sales"));
        assert!(!t("dept", MatchType::NotEqual, "engineering"));
        // Numbers and booleans compare by their JSON text.
        assert!(t("level", MatchType::Equals, "3"));
        assert!(t("admin", MatchType::Equals, "true"));
    }

    #[test]
    fn absent_claims_match_no_rule_not_even_not_equal() {
        let c = claims(json!({"obj": {"a": 1}, "nil": null, "empty": []}));
        for claim in ["missing", "obj", "nil", "empty"] {
            for mt in [
                MatchType::Equals,
                MatchType::Contains,
                MatchType::StartsWith,
                MatchType::NotEqual,
            ] {
                assert!(
                    !rule_matches(&rule(claim, mt, "x", ADMIN), &c),
                    "{claim} {mt:?}"
                );
            }
        }
    }

    #[test]
    fn array_claims_compare_element_wise() {
        let c = claims(json!({"cognito:groups": ["admins", "readers"]}));
        let t = |mt: MatchType, v: &str| rule_matches(&rule("cognito:groups", mt, v, ADMIN), &c);
        assert!(t(MatchType::Contains, "admins"));
        assert!(t(MatchType::Contains, "read"));
        assert!(!t(MatchType::Contains, "writers"));
        assert!(t(MatchType::Equals, "readers"));
        assert!(!t(MatchType::Equals, "admins,readers"));
        assert!(t(MatchType::StartsWith, "adm"));
        assert!(t(MatchType::NotEqual, "writers"));
        assert!(!t(MatchType::NotEqual, "admins"));
    }

    #[test]
    fn rules_pick_the_first_matching_rule() {
        let p = pool();
        let m = rules(
            AmbiguousRoleResolution::Deny,
            vec![
                rule("cognito:groups", MatchType::Contains, "admins", ADMIN),
                rule("custom:dept", MatchType::StartsWith, "eng", READER),
                rule("email", MatchType::NotEqual, "x@example.com", OTHER),
            ],
        );
        let key = up_key();
        let r = roles(vec![(&key as &str, m)]);
        let both = [login(
            USER_POOL,
            json!({"aud": CLIENT, "cognito:groups": ["admins"], "custom:dept": "engineering"}),
        )];
        assert_eq!(choose_role(&r, &p, &both, false, None), Ok(ADMIN.into()));
        let eng = [login(
            USER_POOL,
            json!({"aud": CLIENT, "cognito:groups": ["users"], "custom:dept": "engineering"}),
        )];
        assert_eq!(choose_role(&r, &p, &eng, false, None), Ok(READER.into()));
        let email = [login(
            USER_POOL,
            json!({"aud": CLIENT, "email": "y@example.com"}),
        )];
        assert_eq!(choose_role(&r, &p, &email, false, None), Ok(OTHER.into()));
        // NotEqual is not evaluated without its claim: nothing matches → Deny.
        let nothing = [login(USER_POOL, json!({"aud": CLIENT}))];
        assert_eq!(
            choose_role(&r, &p, &nothing, false, None),
            Err(denied(&key))
        );
    }

    #[test]
    fn rules_without_a_match_follow_ambiguous_role_resolution() {
        let p = pool();
        let m = rules(
            AmbiguousRoleResolution::AuthenticatedRole,
            vec![rule("sub", MatchType::Equals, "someone-else", ADMIN)],
        );
        let r = roles(vec![(GOOGLE, m)]);
        let g = [login(GOOGLE, json!({"sub": "me"}))];
        assert_eq!(choose_role(&r, &p, &g, false, None), Ok(AUTH.into()));
        assert_eq!(choose_role(&r, &p, &g, false, Some(AUTH)), Ok(AUTH.into()));
        assert_eq!(
            choose_role(&r, &p, &g, false, Some(ADMIN)),
            Err(refused(ADMIN))
        );
    }

    #[test]
    fn a_custom_role_arn_picks_a_matching_rule_out_of_order() {
        let p = pool();
        let m = rules(
            AmbiguousRoleResolution::Deny,
            vec![
                rule("cognito:groups", MatchType::Contains, "admins", ADMIN),
                rule("cognito:groups", MatchType::Contains, "readers", READER),
                rule("cognito:groups", MatchType::Contains, "others", OTHER),
            ],
        );
        let r = roles(vec![(&up_key() as &str, m)]);
        let u = [login(
            USER_POOL,
            json!({"aud": CLIENT, "cognito:groups": ["admins", "readers"]}),
        )];
        assert_eq!(choose_role(&r, &p, &u, false, None), Ok(ADMIN.into()));
        assert_eq!(
            choose_role(&r, &p, &u, false, Some(READER)),
            Ok(READER.into())
        );
        assert_eq!(
            choose_role(&r, &p, &u, false, Some(ADMIN)),
            Ok(ADMIN.into())
        );
        // A rule with that role exists but does not match: refused.
        assert_eq!(
            choose_role(&r, &p, &u, false, Some(OTHER)),
            Err(refused(OTHER))
        );
        assert_eq!(
            choose_role(&r, &p, &u, false, Some(AUTH)),
            Err(refused(AUTH))
        );
    }

    // --- principal tags ---

    fn tag_map(use_defaults: bool, tags: &[(&str, &str)]) -> PrincipalTagMap {
        PrincipalTagMap {
            use_defaults,
            principal_tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn maps(entries: Vec<(&str, PrincipalTagMap)>) -> BTreeMap<String, PrincipalTagMap> {
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn user_pool_defaults_are_client_and_username() {
        let p = pool();
        let m = maps(vec![(USER_POOL, tag_map(true, &[]))]);
        let u = [login(USER_POOL, json!({"aud": CLIENT, "sub": "abc-123"}))];
        assert_eq!(
            principal_tags_from(&m, &p, &u),
            tags(&[("client", CLIENT), ("username", "abc-123")])
        );
    }

    #[test]
    fn other_provider_defaults_are_aud_and_sub_with_the_app_id_as_fallback() {
        let p = pool();
        let m = maps(vec![
            (GOOGLE, tag_map(true, &[])),
            (FACEBOOK, tag_map(true, &[])),
        ]);
        let g = [login(GOOGLE, json!({"aud": "google-client", "sub": "g1"}))];
        assert_eq!(
            principal_tags_from(&m, &p, &g),
            tags(&[("aud", "google-client"), ("sub", "g1")])
        );
        // Facebook tokens are opaque: no aud claim, the configured app id stands in.
        let f = [login(FACEBOOK, json!({"sub": "f1"}))];
        assert_eq!(
            principal_tags_from(&m, &p, &f),
            tags(&[("aud", "fb-app"), ("sub", "f1")])
        );
        // OIDC without aud and without an app id: only sub.
        let m = maps(vec![(OIDC_HOST, tag_map(true, &[]))]);
        let o = [login(OIDC_HOST, json!({"sub": "o1"}))];
        assert_eq!(principal_tags_from(&m, &p, &o), tags(&[("sub", "o1")]));
    }

    #[test]
    fn custom_principal_tags_map_claims_and_override_defaults() {
        let p = pool();
        let m = maps(vec![(
            USER_POOL,
            tag_map(
                true,
                &[
                    ("dept", "custom:dept"),
                    ("groups", "cognito:groups"),
                    ("level", "custom:level"),
                    ("username", "email"),
                    ("missing", "custom:nope"),
                    ("object", "address"),
                ],
            ),
        )]);
        let u = [login(
            USER_POOL,
            json!({"aud": CLIENT, "sub": "s", "custom:dept": "eng", "cognito:groups": ["a", "b"],
                   "custom:level": 7, "email": "u@example.com", "address": {"x": 1}}),
        )];
        assert_eq!(
            principal_tags_from(&m, &p, &u),
            tags(&[
                ("client", CLIENT),
                ("dept", "eng"),
                ("groups", "a,b"),
                ("level", "7"),
                ("username", "u@example.com"),
            ])
        );
        // Without defaults only the mapped claims.
        let m = maps(vec![(
            USER_POOL,
            tag_map(false, &[("dept", "custom:dept")]),
        )]);
        assert_eq!(principal_tags_from(&m, &p, &u), tags(&[("dept", "eng")]));
        // A map with neither defaults nor tags gives nothing.
        let m = maps(vec![(USER_POOL, tag_map(false, &[]))]);
        assert_eq!(principal_tags_from(&m, &p, &u), BTreeMap::new());
    }

    #[test]
    fn providers_without_a_map_add_nothing_and_the_first_login_keeps_a_key() {
        let p = pool();
        let m = maps(vec![
            (GOOGLE, tag_map(false, &[("who", "sub"), ("g", "email")])),
            (FACEBOOK, tag_map(false, &[("who", "sub"), ("f", "sub")])),
        ]);
        let g = login(GOOGLE, json!({"sub": "g1", "email": "g@example.com"}));
        let f = login(FACEBOOK, json!({"sub": "f1"}));
        let o = login(OIDC_HOST, json!({"sub": "o1"}));
        assert_eq!(
            principal_tags_from(&m, &p, &[o.clone(), g.clone(), f.clone()]),
            tags(&[("who", "g1"), ("g", "g@example.com"), ("f", "f1")])
        );
        assert_eq!(
            principal_tags_from(&m, &p, &[f, g]),
            tags(&[("who", "f1"), ("g", "g@example.com"), ("f", "f1")])
        );
        assert_eq!(principal_tags_from(&m, &p, &[o]), BTreeMap::new());
        assert_eq!(principal_tags_from(&m, &p, &[]), BTreeMap::new());
    }

    #[test]
    fn principal_tags_reads_the_stored_maps() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::Config::default();
        config.database.path = dir.path().join("t.db");
        rt.block_on(async {
            let app = App::open(config).await.unwrap();
            let p = pool();
            let settings = p.settings.clone();
            let id = p.id.clone();
            let account = p.account_id.clone();
            app.store
                .write(move |tx| {
                    tx.insert_pool(&id, &account, &settings, times::now())?;
                    tx.set_principal_tag_map(&id, GOOGLE, &tag_map(false, &[("e", "email")]))
                })
                .await
                .unwrap();
            let g = [login(GOOGLE, json!({"sub": "g", "email": "g@example.com"}))];
            assert_eq!(
                principal_tags(&app, &p, &g).await.unwrap(),
                tags(&[("e", "g@example.com")])
            );
            assert_eq!(
                principal_tags(&app, &p, &[]).await.unwrap(),
                BTreeMap::new()
            );
            let loaded = load_roles(&app, &p.id).await.unwrap();
            assert_eq!(loaded, PoolRoles::default());
            assert_eq!(
                load_roles(&app, "us-east-1:00000000-0000-4000-8000-000000000000").await,
                Err(ApiError::pool_not_found(
                    "us-east-1:00000000-0000-4000-8000-000000000000"
                ))
            );
            app.store.close();
        });
    }
}
