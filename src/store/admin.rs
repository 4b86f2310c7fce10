//! SQL for a pool's roles and role mappings, its principal tag attribute maps and its tags
//! (TagResource/UntagResource). The types here are stored in the wire's own spelling, so what an
//! admin reads at a `sqlite3` prompt is what SetIdentityPoolRoles took.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::times::Millis;

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

fn to_json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A pool's roles and role mappings; `None` when the pool does not exist.
pub fn roles(c: &Connection, pool_id: &str) -> Result<Option<PoolRoles>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT authenticated_role, unauthenticated_role, role_mappings FROM pools \
             WHERE id = ?1",
        )?
        .query_row([pool_id], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .optional()?;
    let Some((authenticated, unauthenticated, mappings)) = row else {
        return Ok(None);
    };
    let role_mappings = match mappings {
        Some(text) => from_json("pools.role_mappings", &text)?,
        None => BTreeMap::new(),
    };
    Ok(Some(PoolRoles {
        authenticated,
        unauthenticated,
        role_mappings,
    }))
}

/// Replaces a pool's roles and role mappings; no mappings are stored as NULL.
pub fn set_roles(
    c: &Connection,
    pool_id: &str,
    roles: &PoolRoles,
    now: Millis,
) -> Result<(), StoreError> {
    let mappings = if roles.role_mappings.is_empty() {
        None
    } else {
        Some(to_json(&roles.role_mappings)?)
    };
    c.prepare_cached(
        "UPDATE pools SET authenticated_role = ?2, unauthenticated_role = ?3, \
         role_mappings = ?4, updated_at = ?5 WHERE id = ?1",
    )?
    .execute(params![
        pool_id,
        roles.authenticated,
        roles.unauthenticated,
        mappings,
        now.text(),
    ])?;
    Ok(())
}

/// The principal tag attribute map of one provider of a pool, if one was set.
pub fn principal_tag_map(
    c: &Connection,
    pool_id: &str,
    provider: &str,
) -> Result<Option<PrincipalTagMap>, StoreError> {
    let row = c
        .prepare_cached(
            "SELECT use_defaults, principal_tags FROM principal_tag_maps \
             WHERE pool_id = ?1 AND provider = ?2",
        )?
        .query_row([pool_id, provider], |r| {
            Ok((r.get::<_, bool>(0)?, r.get::<_, String>(1)?))
        })
        .optional()?;
    match row {
        Some((use_defaults, text)) => Ok(Some(PrincipalTagMap {
            use_defaults,
            principal_tags: from_json("principal_tag_maps.principal_tags", &text)?,
        })),
        None => Ok(None),
    }
}

/// Every principal tag attribute map of a pool, by provider name.
pub fn principal_tag_maps(
    c: &Connection,
    pool_id: &str,
) -> Result<BTreeMap<String, PrincipalTagMap>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT provider, use_defaults, principal_tags FROM principal_tag_maps \
         WHERE pool_id = ?1",
    )?;
    let rows = stmt.query_map([pool_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, bool>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (provider, use_defaults, text) = row?;
        out.insert(
            provider,
            PrincipalTagMap {
                use_defaults,
                principal_tags: from_json("principal_tag_maps.principal_tags", &text)?,
            },
        );
    }
    Ok(out)
}

/// Creates or replaces the principal tag attribute map of one provider of a pool.
pub fn set_principal_tag_map(
    c: &Connection,
    pool_id: &str,
    provider: &str,
    map: &PrincipalTagMap,
) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO principal_tag_maps (pool_id, provider, use_defaults, principal_tags) \
         VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (pool_id, provider) DO UPDATE SET \
         use_defaults = excluded.use_defaults, principal_tags = excluded.principal_tags",
    )?
    .execute(params![
        pool_id,
        provider,
        map.use_defaults,
        to_json(&map.principal_tags)?
    ])?;
    Ok(())
}

/// Adds tags to a pool, overwriting the values of keys it already has.
pub fn add_tags(
    c: &Connection,
    pool_id: &str,
    tags: &BTreeMap<String, String>,
) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO pool_tags (pool_id, key, value) VALUES (?1, ?2, ?3) \
         ON CONFLICT (pool_id, key) DO UPDATE SET value = excluded.value",
    )?;
    for (k, v) in tags {
        stmt.execute(params![pool_id, k, v])?;
    }
    Ok(())
}

/// Removes tags from a pool; keys it does not have are ignored.
pub fn remove_tags(c: &Connection, pool_id: &str, keys: &[String]) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached("DELETE FROM pool_tags WHERE pool_id = ?1 AND key = ?2")?;
    for k in keys {
        stmt.execute(params![pool_id, k])?;
    }
    Ok(())
}
