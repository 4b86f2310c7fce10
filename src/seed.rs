//! Declared pools: a TOML seed file names identity pools with fixed ids, their settings, roles,
//! role mappings, principal tag maps and tags, and the account that owns them — so an app's
//! configuration or a test fixture can name `us-east-1:…` once and forever. Applied at
//! start-up, idempotently: a missing pool is created, a different one is brought to the
//! declared state, an equal one is left alone, and identities are never touched. Every value
//! passes the same checks as the API: the service model's constraints first, then the
//! operations' own rules, because applying a seed *is* calling the operations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::ops::pools::Declared;
use crate::ops::Caller;
use crate::protocol::{ApiError, Operation};
use crate::App;

/// A seed file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// The declared pools, `[[pool]]` tables.
    #[serde(default)]
    pub pool: Vec<DeclaredPool>,
}

/// One `[[pool]]`: the wire's members in TOML's snake case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredPool {
    /// The fixed `<region>:<uuid>` id.
    pub id: String,
    /// The owning account (12 digits); default: the server's `account_id`.
    pub account: Option<String>,
    pub name: String,
    #[serde(default)]
    pub allow_unauthenticated: bool,
    pub allow_classic_flow: Option<bool>,
    pub developer_provider_name: Option<String>,
    #[serde(default)]
    pub supported_login_providers: BTreeMap<String, String>,
    #[serde(default)]
    pub openid_connect_provider_arns: Vec<String>,
    #[serde(default)]
    pub saml_provider_arns: Vec<String>,
    #[serde(default)]
    pub cognito_identity_providers: Vec<DeclaredCognitoProvider>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `authenticated` and `unauthenticated` role ARNs.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// Role mappings by provider (or `<user pool provider>:<client id>`).
    #[serde(default)]
    pub role_mappings: BTreeMap<String, DeclaredMapping>,
    /// Principal tag attribute maps by provider.
    #[serde(default)]
    pub principal_tags: BTreeMap<String, DeclaredTagMap>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredCognitoProvider {
    pub provider_name: String,
    pub client_id: Option<String>,
    #[serde(default)]
    pub server_side_token_check: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredMapping {
    /// `Token` or `Rules`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `AuthenticatedRole` or `Deny`.
    pub ambiguous_role_resolution: Option<String>,
    #[serde(default)]
    pub rules: Vec<DeclaredRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredRule {
    pub claim: String,
    /// `Equals`, `Contains`, `StartsWith` or `NotEqual`.
    pub match_type: String,
    pub value: String,
    pub role_arn: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredTagMap {
    #[serde(default)]
    pub use_defaults: bool,
    /// Tag key → claim name.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Why a seed file could not be applied: it names the file, and the pool when one is at fault.
#[derive(Debug, thiserror::Error)]
#[error("seed file {}: {what}", file.display())]
pub struct SeedError {
    pub file: PathBuf,
    pub what: String,
}

/// What applying a seed did, pool by pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub pools: Vec<(String, Declared)>,
}

/// Reads and parses a seed file.
pub fn load(path: &Path) -> Result<SeedFile, SeedError> {
    let err = |what: String| SeedError {
        file: path.to_path_buf(),
        what,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    toml::from_str(&text).map_err(|e| err(e.to_string().replace('\n', " ")))
}

impl DeclaredPool {
    /// UpdateIdentityPool's input: the pool with its id, as the wire spells it.
    fn pool_input(&self) -> Value {
        let mut m = Map::new();
        m.insert("IdentityPoolId".into(), json!(self.id));
        m.insert("IdentityPoolName".into(), json!(self.name));
        m.insert(
            "AllowUnauthenticatedIdentities".into(),
            json!(self.allow_unauthenticated),
        );
        if let Some(c) = self.allow_classic_flow {
            m.insert("AllowClassicFlow".into(), json!(c));
        }
        if let Some(d) = &self.developer_provider_name {
            m.insert("DeveloperProviderName".into(), json!(d));
        }
        if !self.supported_login_providers.is_empty() {
            m.insert(
                "SupportedLoginProviders".into(),
                json!(self.supported_login_providers),
            );
        }
        if !self.openid_connect_provider_arns.is_empty() {
            m.insert(
                "OpenIdConnectProviderARNs".into(),
                json!(self.openid_connect_provider_arns),
            );
        }
        if !self.saml_provider_arns.is_empty() {
            m.insert("SamlProviderARNs".into(), json!(self.saml_provider_arns));
        }
        if !self.cognito_identity_providers.is_empty() {
            let list: Vec<Value> = self
                .cognito_identity_providers
                .iter()
                .map(|p| {
                    let mut o = Map::new();
                    o.insert("ProviderName".into(), json!(p.provider_name));
                    if let Some(c) = &p.client_id {
                        o.insert("ClientId".into(), json!(c));
                    }
                    o.insert(
                        "ServerSideTokenCheck".into(),
                        json!(p.server_side_token_check),
                    );
                    Value::Object(o)
                })
                .collect();
            m.insert("CognitoIdentityProviders".into(), Value::Array(list));
        }
        m.insert("IdentityPoolTags".into(), json!(self.tags));
        Value::Object(m)
    }

    /// SetIdentityPoolRoles' input.
    fn roles_input(&self) -> Value {
        let mut m = Map::new();
        m.insert("IdentityPoolId".into(), json!(self.id));
        m.insert("Roles".into(), json!(self.roles));
        if !self.role_mappings.is_empty() {
            let mut mappings = Map::new();
            for (key, rm) in &self.role_mappings {
                let mut o = Map::new();
                o.insert("Type".into(), json!(rm.kind));
                if let Some(a) = &rm.ambiguous_role_resolution {
                    o.insert("AmbiguousRoleResolution".into(), json!(a));
                }
                if !rm.rules.is_empty() {
                    let rules: Vec<Value> = rm
                        .rules
                        .iter()
                        .map(|r| {
                            json!({"Claim": r.claim, "MatchType": r.match_type,
                                   "Value": r.value, "RoleARN": r.role_arn})
                        })
                        .collect();
                    o.insert("RulesConfiguration".into(), json!({ "Rules": rules }));
                }
                mappings.insert(key.clone(), Value::Object(o));
            }
            m.insert("RoleMappings".into(), Value::Object(mappings));
        }
        Value::Object(m)
    }

    /// SetPrincipalTagAttributeMap's inputs, one per provider.
    fn tag_map_inputs(&self) -> Vec<Value> {
        self.principal_tags
            .iter()
            .map(|(provider, t)| {
                json!({"IdentityPoolId": self.id, "IdentityProviderName": provider,
                       "UseDefaults": t.use_defaults, "PrincipalTags": t.tags})
            })
            .collect()
    }
}

/// Applies a seed file to the server's database: pool by pool, each through the operations.
pub async fn apply(app: &App, path: &Path) -> Result<Applied, SeedError> {
    let seed = load(path)?;
    let file = path.to_path_buf();
    let mut seen = std::collections::BTreeSet::new();
    for p in &seed.pool {
        if !seen.insert(p.id.as_str()) {
            return Err(SeedError {
                file,
                what: format!("pool {}: declared twice", p.id),
            });
        }
    }
    let mut applied = Vec::new();
    for p in &seed.pool {
        let at = |e: ApiError| SeedError {
            file: file.clone(),
            what: format!("pool {}: {}: {}", p.id, e.type_name(), e.message()),
        };
        let done = apply_pool(app, p).await.map_err(at)?;
        applied.push((p.id.clone(), done));
    }
    Ok(Applied { pools: applied })
}

async fn apply_pool(app: &App, p: &DeclaredPool) -> Result<Declared, ApiError> {
    let region = match p.id.split_once(':') {
        Some((r, _)) if app.config.serves(r) => r.to_string(),
        _ => {
            return Err(ApiError::InvalidParameter(format!(
                "the pool id must be '<region>:<uuid>' with a region this server serves ({})",
                app.config.served_regions().join(", ")
            )))
        }
    };
    let account = p
        .account
        .clone()
        .unwrap_or_else(|| app.config.account_id.clone());
    if account.is_empty() || account.len() > 15 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::InvalidParameter(format!(
            "account '{account}' is not an account id (1 to 15 digits)"
        )));
    }
    let caller = Caller {
        account_id: account,
        region,
    };
    let pool = p.pool_input();
    app.validator
        .validate(Operation::UpdateIdentityPool, &pool)?;
    let roles = p.roles_input();
    app.validator
        .validate(Operation::SetIdentityPoolRoles, &roles)?;
    let maps = p.tag_map_inputs();
    for m in &maps {
        app.validator
            .validate(Operation::SetPrincipalTagAttributeMap, m)?;
    }
    let done = crate::ops::pools::declare(app, &caller, &p.id, crate::ops::decode(pool)?).await?;
    crate::ops::roles::set_identity_pool_roles(app, &caller, roles).await?;
    for m in maps {
        crate::ops::roles::set_principal_tag_attribute_map(app, &caller, m).await?;
    }
    Ok(done)
}
