//! Which IAM role GetCredentialsForIdentity issues credentials for: the pool's roles, its role
//! mappings (token or rules), ambiguous-role resolution and a requested custom role
//! (docs/behaviour.md §5).

use serde_json::{Map, Value};

use super::{
    AmbiguousRoleResolution, MappingRule, MappingType, MatchType, PoolRoles, RoleMapping,
    INVALID_CONFIGURATION,
};
use crate::model::Pool;
use crate::ops::logins::Login;
use crate::protocol::ApiError;
use crate::App;

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
pub(super) fn is_user_pool(pool: &Pool, provider: &str) -> bool {
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
pub(super) fn scalar_text(v: &Value) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::roles::fixtures::*;
    use serde_json::json;

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
}
