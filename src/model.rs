//! The domain's own types: what the operations work with and what storage keeps. The store
//! turns its rows into these; the wire's spelling (serde names) is the one AWS uses, so the
//! values an admin reads at a SQL prompt are what the API took.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::times::Millis;

/// One `CognitoIdentityProviders` entry, stored as the wire spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CognitoProvider {
    #[serde(rename = "ProviderName")]
    pub provider_name: String,
    #[serde(rename = "ClientId", default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(rename = "ServerSideTokenCheck", default)]
    pub server_side_token_check: bool,
}

/// An identity pool's settings, as the pool operations read and write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    pub name: String,
    pub allow_unauthenticated: bool,
    pub allow_classic_flow: Option<bool>,
    pub developer_provider_name: Option<String>,
    pub supported_login_providers: BTreeMap<String, String>,
    pub openid_connect_provider_arns: Vec<String>,
    pub cognito_identity_providers: Vec<CognitoProvider>,
    pub saml_provider_arns: Vec<String>,
}

/// A stored identity pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub id: String,
    pub account_id: String,
    pub settings: PoolSettings,
    /// When it was created: its place in ListIdentityPools' order.
    pub created_at: Millis,
}

impl Pool {
    /// The region prefix of the pool id: new identities of the pool carry it.
    pub fn region(&self) -> &str {
        self.id.split_once(':').map(|(r, _)| r).unwrap_or("")
    }
}

/// The host an IAM OIDC provider ARN names: `arn:aws:iam::123:oidc-provider/<host>` → `<host>`.
pub fn oidc_provider_host(arn: &str) -> Option<&str> {
    crate::arn::Arn::parse(arn)?.iam_resource("oidc-provider/")
}

/// Whether a provider name is a Cognito user pool's (`cognito-idp.<region>.amazonaws.com/<id>`).
pub fn names_user_pool(provider: &str) -> bool {
    provider.starts_with("cognito-idp.")
}

/// What kind of provider a pool knows a login key as. The one place that tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind<'p> {
    /// A Cognito user pool: a CognitoIdentityProviders entry (or a `cognito-idp.` key).
    UserPool,
    /// An OpenID Connect provider, by the host of its IAM OIDC provider ARN.
    Oidc { arn: &'p str },
    /// A SAML provider, by its IAM SAML provider ARN.
    Saml,
    /// A SupportedLoginProviders key (Google, Facebook, Amazon, Apple, Twitter, Digits, …).
    Supported,
}

impl<'p> ProviderKind<'p> {
    /// How `pool` knows `provider`, or `None` when it does not accept it at all.
    pub fn of(pool: &'p Pool, provider: &str) -> Option<ProviderKind<'p>> {
        let s = &pool.settings;
        if s.cognito_identity_providers
            .iter()
            .any(|p| p.provider_name == provider)
        {
            return Some(ProviderKind::UserPool);
        }
        if let Some(arn) = s
            .openid_connect_provider_arns
            .iter()
            .find(|a| oidc_provider_host(a) == Some(provider))
        {
            return Some(ProviderKind::Oidc { arn });
        }
        if s.saml_provider_arns.iter().any(|a| a == provider) {
            return Some(ProviderKind::Saml);
        }
        if s.supported_login_providers.contains_key(provider) {
            return Some(if names_user_pool(provider) {
                ProviderKind::UserPool
            } else if provider.starts_with("arn:") {
                ProviderKind::Saml
            } else {
                ProviderKind::Supported
            });
        }
        None
    }
}

/// A pool in ListIdentityPools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSummary {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
}

/// An identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub pool_id: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub disabled: bool,
}

/// An identity with the provider names it is linked with, sorted (the developer provider
/// included when it has developer user ids): one row of DescribeIdentity and ListIdentities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedIdentity {
    pub identity: Identity,
    pub providers: Vec<String>,
}

impl DescribedIdentity {
    /// An identity with its logins' provider names (sorted here), and the pool's developer
    /// provider among them when the identity has developer user ids.
    pub fn new(
        identity: Identity,
        mut providers: Vec<String>,
        developer: Option<&str>,
        has_developer_users: bool,
    ) -> DescribedIdentity {
        if let Some(dev) = developer.filter(|_| has_developer_users) {
            if !providers.iter().any(|p| p == dev) {
                providers.push(dev.to_string());
            }
        }
        providers.sort();
        DescribedIdentity {
            identity,
            providers,
        }
    }
}

/// Where a page of a listing in creation order ends: the creation time and id of its last
/// item (ids break ties between items created in the same millisecond).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub created_at: Millis,
    pub id: String,
}

/// RoleMapping `Type`: where the role comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MappingType {
    /// From the token's `cognito:preferred_role` / `cognito:roles` claims.
    Token,
    /// From the first matching claim rule.
    Rules,
}

/// RoleMapping `AmbiguousRoleResolution`: what to do when the mapping decides nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AmbiguousRoleResolution {
    /// Fall back to the pool's authenticated role.
    AuthenticatedRole,
    /// Refuse the request.
    Deny,
}

/// MappingRule `MatchType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchType {
    Equals,
    Contains,
    StartsWith,
    NotEqual,
}

/// One claim rule of a `Rules` mapping, as the wire spells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingRule {
    #[serde(rename = "Claim")]
    pub claim: String,
    #[serde(rename = "MatchType")]
    pub match_type: MatchType,
    #[serde(rename = "Value")]
    pub value: String,
    #[serde(rename = "RoleARN")]
    pub role_arn: String,
}

/// RulesConfigurationType: the ordered rules of a mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesConfiguration {
    #[serde(rename = "Rules")]
    pub rules: Vec<MappingRule>,
}

/// One RoleMappings value, as the wire spells it (members that were not sent stay absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMapping {
    #[serde(rename = "Type")]
    pub kind: MappingType,
    #[serde(
        rename = "AmbiguousRoleResolution",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ambiguous_role_resolution: Option<AmbiguousRoleResolution>,
    #[serde(
        rename = "RulesConfiguration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub rules_configuration: Option<RulesConfiguration>,
}

/// A pool's role configuration as stored in its row: what SetIdentityPoolRoles set, and what
/// role selection for GetCredentialsForIdentity reads (`ops::roles::choose_role`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolRoles {
    /// `Roles.authenticated`: the default role of authenticated identities.
    pub authenticated: Option<String>,
    /// `Roles.unauthenticated`: the role of guests.
    pub unauthenticated: Option<String>,
    /// `RoleMappings`, by mapping key (provider, or `<user pool provider>:<client id>`).
    pub role_mappings: BTreeMap<String, RoleMapping>,
}

/// One principal tag attribute map: `UseDefaults` and tag key → claim name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrincipalTagMap {
    pub use_defaults: bool,
    pub principal_tags: BTreeMap<String, String>,
}

/// An identity with its pool and what of the pool's configuration an access check asked for:
/// what [`crate::store::Tx::identity_with_pool`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityWithPool {
    pub identity: Identity,
    /// `None` when the identity's pool is gone.
    pub pool: Option<Pool>,
    /// The pool's roles, when asked for and the pool exists.
    pub roles: Option<PoolRoles>,
    /// The pool's principal tag attribute maps by provider, when asked for; else empty.
    pub tag_maps: BTreeMap<String, PrincipalTagMap>,
    /// How many logins (provider users and developer user ids) the identity has.
    pub login_count: i64,
    /// The identity the login asked about is linked to in the pool, if any.
    pub login_owner: Option<String>,
}

/// A token signing key as stored: its public half, and when it stops being published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub seq: i64,
    /// The JWK exactly as published (JSON text).
    pub public_jwk: String,
    pub retire_after: Option<Millis>,
}

/// What tells whether the key table changed: compared, never interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeysVersion {
    pub count: i64,
    pub max_seq: i64,
    pub max_retire: Option<Millis>,
}

/// How times are written in an export: UTC text `YYYY-MM-DD HH:MM:SS.SSS`, as SQLite keeps
/// them.
mod export_time {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::times::Millis;

    pub fn serialize<S: Serializer>(t: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.text())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let text = String::deserialize(d)?;
        Millis::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("bad time {text:?}")))
    }

    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use crate::times::Millis;

        pub fn serialize<S: Serializer>(t: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&t.text()),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => Millis::parse(&text)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom(format!("bad time {text:?}"))),
            }
        }
    }
}

/// A pool in an export: its row, with its tags and principal tag maps. Field names are the
/// tables' column names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub allow_unauthenticated: bool,
    pub allow_classic_flow: Option<bool>,
    pub developer_provider_name: Option<String>,
    pub supported_login_providers: BTreeMap<String, String>,
    pub openid_connect_provider_arns: Vec<String>,
    pub cognito_identity_providers: Vec<CognitoProvider>,
    pub saml_provider_arns: Vec<String>,
    pub authenticated_role: Option<String>,
    pub unauthenticated_role: Option<String>,
    pub role_mappings: BTreeMap<String, RoleMapping>,
    #[serde(with = "export_time")]
    pub created_at: Millis,
    #[serde(with = "export_time")]
    pub updated_at: Millis,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Principal tag attribute maps, by provider: `use_defaults` and tag → claim.
    #[serde(default)]
    pub principal_tag_maps: BTreeMap<String, (bool, BTreeMap<String, String>)>,
}

/// An identity in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRecord {
    pub id: String,
    pub pool_id: String,
    #[serde(with = "export_time")]
    pub created_at: Millis,
    #[serde(with = "export_time")]
    pub updated_at: Millis,
    pub disabled: bool,
    pub merged_into: Option<String>,
}

/// A provider login in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRecord {
    pub pool_id: String,
    pub provider: String,
    pub subject: String,
    pub identity_id: String,
    #[serde(with = "export_time")]
    pub linked_at: Millis,
}

/// A developer user id in an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeveloperUserRecord {
    pub pool_id: String,
    pub developer_user_id: String,
    pub identity_id: String,
    #[serde(with = "export_time")]
    pub linked_at: Millis,
}

/// A token signing key in an export, private half included (base64): an export file is as
/// secret as the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub kid: String,
    pub seq: i64,
    pub private_key: String,
    pub public_jwk: String,
    #[serde(with = "export_time")]
    pub created_at: Millis,
    #[serde(with = "export_time::option")]
    pub retire_after: Option<Millis>,
}
