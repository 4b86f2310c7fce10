//! Walking an input value against the compiled shapes: the first JSON type mismatch stops the
//! walk; every constraint violation is collected, in model order, as a message item.

use serde_json::{Map, Value};

use super::compile::{Kind, Shape};
use super::messages::{constraint_list, null_item, type_error, Path, Seg};
use super::Validator;
use crate::protocol::error::ApiError;

/// A type-checked scalar, as its constraints see it.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Str(&'a str),
    Int(i64),
    /// Booleans and timestamps: no constraints apply.
    Other,
}

/// The constraint a string with U+0000 in it fails.
pub(super) const NO_NUL: &str = "Member must not contain the NUL character (U+0000)";

fn has_nul(s: Scalar<'_>) -> bool {
    matches!(s, Scalar::Str(t) if t.contains('\0'))
}

/// A constraint list with [`NO_NUL`] added when an element failed it.
fn with_nul(list: String, nul: bool) -> String {
    match list.strip_suffix(']') {
        Some(head) if nul && head.len() > 1 => format!("{head}, {NO_NUL}]"),
        Some(_) if nul => format!("[{NO_NUL}]"),
        _ => list,
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Validator {
    fn shape(&self, idx: usize) -> Result<&Shape, ApiError> {
        self.shapes
            .get(idx)
            .ok_or_else(|| ApiError::internal(format!("no shape {idx} in the compiled model")))
    }

    /// Type-checks `v` (never null) against shape `idx` and pushes its violations.
    pub(super) fn walk(
        &self,
        idx: usize,
        v: &Value,
        path: &Path<'_>,
        items: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let shape = self.shape(idx)?;
        match &shape.kind {
            Kind::Structure(members) => {
                let obj = v.as_object().ok_or_else(|| type_error(path, "structure"))?;
                for m in members {
                    let child = path.child(Seg::Member(m));
                    match obj.get(&m.name) {
                        None | Some(Value::Null) => {
                            if m.required {
                                items.push(null_item(&child));
                            }
                        }
                        Some(value) => self.walk(m.shape, value, &child, items)?,
                    }
                }
            }
            Kind::List(member) => {
                let arr = v.as_array().ok_or_else(|| type_error(path, "list"))?;
                self.length_failures(shape, arr.len(), &mut |c| {
                    items.push(self.item(idx, v, path, c));
                });
                let elems = arr.iter().enumerate().map(|(i, e)| (Seg::Index(i), e));
                if let Some(list) = self.elements(*member, elems, path, items)? {
                    let c = format!("Member must satisfy constraint: {list}");
                    items.push(self.item(idx, v, path, &c));
                }
            }
            Kind::Map { key, value } => {
                let obj = v.as_object().ok_or_else(|| type_error(path, "map"))?;
                self.length_failures(shape, obj.len(), &mut |c| {
                    items.push(self.item(idx, v, path, c));
                });
                if let Some(list) = self.key_failure(*key, obj)? {
                    let c = format!("Map keys must satisfy constraint: {list}");
                    items.push(self.item(idx, v, path, &c));
                }
                let entries = obj.iter().map(|(k, e)| (Seg::Key(k), e));
                if let Some(list) = self.elements(*value, entries, path, items)? {
                    let c = format!("Map value must satisfy constraint: {list}");
                    items.push(self.item(idx, v, path, &c));
                }
            }
            Kind::String { .. } | Kind::Integer | Kind::Long | Kind::Boolean | Kind::Timestamp => {
                let scalar =
                    scalar_of(shape, v).ok_or_else(|| type_error(path, kind_name(shape)))?;
                self.scalar_failures(shape, scalar, &mut |c| {
                    items.push(self.item(idx, v, path, c));
                });
            }
        }
        Ok(())
    }

    /// Walks the elements of a list or the values of a map. Scalars are type-checked; if any
    /// fails a constraint (or is null), the constraint list to report on the collection as a
    /// whole is returned, for that is how Coral reports them. Anything else recurses with its
    /// own path.
    fn elements<'v>(
        &self,
        elem: usize,
        entries: impl Iterator<Item = (Seg<'v>, &'v Value)>,
        path: &Path<'_>,
        items: &mut Vec<String>,
    ) -> Result<Option<String>, ApiError> {
        let shape = self.shape(elem)?;
        let scalar_elements = is_scalar(shape);
        let mut failed = false;
        let mut null = false;
        let mut nul = false;
        for (seg, e) in entries {
            let child = path.child(seg);
            if !scalar_elements {
                if e.is_null() {
                    items.push(null_item(&child));
                } else {
                    self.walk(elem, e, &child, items)?;
                }
            } else if e.is_null() {
                null = true;
            } else {
                let scalar =
                    scalar_of(shape, e).ok_or_else(|| type_error(&child, kind_name(shape)))?;
                nul = nul || has_nul(scalar);
                failed = failed || self.fails(shape, scalar);
            }
        }
        Ok((failed || null).then(|| with_nul(constraint_list(shape, null), nul)))
    }

    /// The constraint list to report when some map key fails its shape.
    fn key_failure(
        &self,
        key: usize,
        obj: &Map<String, Value>,
    ) -> Result<Option<String>, ApiError> {
        let shape = self.shape(key)?;
        let failed = obj.keys().any(|k| self.fails(shape, Scalar::Str(k)));
        let nul = obj.keys().any(|k| k.contains('\0'));
        Ok(failed.then(|| with_nul(constraint_list(shape, false), nul)))
    }

    /// Whether `s` fails any constraint of `shape`.
    fn fails(&self, shape: &Shape, s: Scalar<'_>) -> bool {
        let mut failed = false;
        self.scalar_failures(shape, s, &mut |_| failed = true);
        failed
    }

    /// Calls `fail` with the text of every constraint `s` fails, in Coral's order: max length,
    /// min length, pattern, enum; for numbers max value, min value.
    fn scalar_failures(&self, shape: &Shape, s: Scalar<'_>, fail: &mut dyn FnMut(&str)) {
        match s {
            Scalar::Str(text) => {
                // No engine stores U+0000 in text (PostgreSQL refuses it), so no input may hold
                // one: the same answer whichever database is underneath.
                if text.contains('\0') {
                    fail(NO_NUL);
                }
                if shape.max.is_some() || shape.min.is_some() {
                    // UTF-16 units lie between a third of the UTF-8 bytes and all of them;
                    // count them only when that range straddles a bound.
                    let bytes = to_i64(text.len());
                    let may_exceed = shape.max.as_ref().is_some_and(|b| bytes > b.limit);
                    let may_fall_short = shape
                        .min
                        .as_ref()
                        .is_some_and(|b| bytes < b.limit.saturating_mul(3));
                    if may_exceed || may_fall_short {
                        let units = to_i64(text.encode_utf16().count());
                        self.length_bounds(shape, units, fail);
                    }
                }
                if let Kind::String {
                    pattern,
                    enumeration,
                } = &shape.kind
                {
                    if let Some(p) = pattern {
                        if !p.regex.is_match(text) {
                            fail(&p.text);
                        }
                    }
                    if let Some(e) = enumeration {
                        if !e.values.iter().any(|v| v == text) {
                            fail(&e.text);
                        }
                    }
                }
            }
            Scalar::Int(n) => self.length_bounds(shape, n, fail),
            Scalar::Other => {}
        }
    }

    fn length_failures(&self, shape: &Shape, len: usize, fail: &mut dyn FnMut(&str)) {
        self.length_bounds(shape, to_i64(len), fail);
    }

    /// Max then min; the texts say "length" or "value" as the shape's kind does.
    fn length_bounds(&self, shape: &Shape, n: i64, fail: &mut dyn FnMut(&str)) {
        if let Some(b) = &shape.max {
            if n > b.limit {
                fail(&b.text);
            }
        }
        if let Some(b) = &shape.min {
            if n < b.limit {
                fail(&b.text);
            }
        }
    }
}

fn is_scalar(shape: &Shape) -> bool {
    matches!(
        shape.kind,
        Kind::String { .. } | Kind::Integer | Kind::Long | Kind::Boolean | Kind::Timestamp
    )
}

/// `v` as a scalar of `shape`, or `None` on a type mismatch.
fn scalar_of<'a>(shape: &Shape, v: &'a Value) -> Option<Scalar<'a>> {
    match shape.kind {
        Kind::String { .. } => v.as_str().map(Scalar::Str),
        Kind::Integer => v
            .as_i64()
            .filter(|n| i32::try_from(*n).is_ok())
            .map(Scalar::Int),
        Kind::Long => v.as_i64().map(Scalar::Int),
        Kind::Boolean => v.as_bool().map(|_| Scalar::Other),
        Kind::Timestamp => v.is_number().then_some(Scalar::Other),
        Kind::Structure(_) | Kind::List(_) | Kind::Map { .. } => None,
    }
}

/// The kind named in a type error.
fn kind_name(shape: &Shape) -> &'static str {
    match shape.kind {
        Kind::Structure(_) => "structure",
        Kind::List(_) => "list",
        Kind::Map { .. } => "map",
        Kind::String { .. } => "string",
        Kind::Integer | Kind::Long => "integer",
        Kind::Boolean => "boolean",
        Kind::Timestamp => "timestamp",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use crate::protocol::validate::testing::{serialization, v, validation, POOL};
    use crate::protocol::Operation;
    use serde_json::json;

    #[test]
    fn valid_get_id_passes() {
        let input = json!({
            "IdentityPoolId": POOL,
            "AccountId": "123456789012",
            "Logins": {"accounts.google.com": "eyJhbGciOi.x.y"},
            "Unknown": {"anything": [1, 2]}
        });
        assert_eq!(v().validate(Operation::GetId, &input), Ok(()));
    }

    #[test]
    fn valid_rich_inputs_pass() {
        let val = v();
        let arn = "arn:aws:iam::123456789012:role/Cognito_Auth";
        let cases = [
            (
                Operation::CreateIdentityPool,
                json!({
                    "IdentityPoolName": "My pool_1+=,.@-",
                    "AllowUnauthenticatedIdentities": true,
                    "AllowClassicFlow": false,
                    "CognitoIdentityProviders": [{
                        "ProviderName": "cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC",
                        "ClientId": "7lhlkkfbfb4q5kpp90urffao",
                        "ServerSideTokenCheck": true
                    }],
                    "DeveloperProviderName": "login.example.com",
                    "IdentityPoolTags": {"team": "", "env": "prod"},
                    "OpenIdConnectProviderARNs": ["arn:aws:iam::123456789012:oidc-provider/x"],
                    "SamlProviderARNs": [],
                    "SupportedLoginProviders": {"graph.facebook.com": "7346241598935552"}
                }),
            ),
            (
                Operation::SetIdentityPoolRoles,
                json!({
                    "IdentityPoolId": POOL,
                    "Roles": {"authenticated": arn, "unauthenticated": arn},
                    "RoleMappings": {"graph.facebook.com": {
                        "Type": "Rules",
                        "AmbiguousRoleResolution": "AuthenticatedRole",
                        "RulesConfiguration": {"Rules": [{
                            "Claim": "isAdmin", "MatchType": "Equals", "Value": "yes", "RoleARN": arn
                        }]}
                    }}
                }),
            ),
            (
                Operation::GetOpenIdTokenForDeveloperIdentity,
                json!({"IdentityPoolId": POOL, "Logins": {"login.example.com": "user"},
                       "TokenDuration": 86400, "PrincipalTags": {"k": "v"}}),
            ),
            (
                Operation::UntagResource,
                json!({"ResourceArn": format!("arn:aws:cognito-identity:us-east-1:1:identitypool/{POOL}"),
                       "TagKeys": ["team"]}),
            ),
            (
                Operation::ListIdentities,
                json!({"IdentityPoolId": POOL, "MaxResults": 60, "HideDisabled": true,
                       "NextToken": "abc=="}),
            ),
        ];
        for (op, input) in cases {
            assert_eq!(val.validate(op, &input), Ok(()), "{op:?}");
        }
    }

    #[test]
    fn missing_required_member() {
        assert_eq!(
            validation(Operation::GetId, json!({})),
            "1 validation error detected: Value null at 'identityPoolId' failed to satisfy \
             constraint: Member must not be null"
        );
    }

    #[test]
    fn null_member_counts_as_absent() {
        assert_eq!(
            validation(Operation::GetId, json!({"IdentityPoolId": null})),
            "1 validation error detected: Value null at 'identityPoolId' failed to satisfy \
             constraint: Member must not be null"
        );
        assert_eq!(
            v().validate(
                Operation::GetId,
                &json!({"IdentityPoolId": POOL, "Logins": null, "AccountId": null})
            ),
            Ok(())
        );
    }

    #[test]
    fn pool_id_without_region_fails_the_pattern() {
        assert_eq!(
            validation(
                Operation::GetId,
                json!({"IdentityPoolId": "6eaf0258-e8c5-467f-90de-6e212326e6d3"})
            ),
            "1 validation error detected: Value '6eaf0258-e8c5-467f-90de-6e212326e6d3' at \
             'identityPoolId' failed to satisfy constraint: Member must satisfy regular \
             expression pattern: [\\w-]+:[0-9a-f-]+"
        );
    }

    #[test]
    fn a_nul_character_is_refused_in_any_string_and_map_key() {
        let m = validation(
            Operation::TagResource,
            json!({"ResourceArn": "arn:aws:cognito-identity:us-east-1:123456789012:identitypool/us-east-1:1",
                   "Tags": {"k": "a\u{0}b"}}),
        );
        assert!(m.contains(super::NO_NUL), "{m}");
        let m = validation(
            Operation::TagResource,
            json!({"ResourceArn": "arn:aws:cognito-identity:us-east-1:123456789012:identitypool/us-east-1:1",
                   "Tags": {"k\u{0}": "v"}}),
        );
        assert!(m.contains(super::NO_NUL), "{m}");
    }

    #[test]
    fn pool_name_pattern_and_empty_name() {
        let input =
            json!({"IdentityPoolName": "bad/name", "AllowUnauthenticatedIdentities": false});
        assert_eq!(
            validation(Operation::CreateIdentityPool, input),
            "1 validation error detected: Value 'bad/name' at 'identityPoolName' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: \
             [\\w\\s+=,.@-]+"
        );
        let input = json!({"IdentityPoolName": "", "AllowUnauthenticatedIdentities": false});
        assert_eq!(
            validation(Operation::CreateIdentityPool, input),
            "2 validation errors detected: Value '' at 'identityPoolName' failed to satisfy \
             constraint: Member must have length greater than or equal to 1; Value '' at \
             'identityPoolName' failed to satisfy constraint: Member must satisfy regular \
             expression pattern: [\\w\\s+=,.@-]+"
        );
    }

    #[test]
    fn missing_members_are_reported_in_model_order() {
        assert_eq!(
            validation(Operation::CreateIdentityPool, json!({})),
            "2 validation errors detected: Value null at 'allowUnauthenticatedIdentities' \
             failed to satisfy constraint: Member must not be null; Value null at \
             'identityPoolName' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn max_results_bounds() {
        assert_eq!(
            validation(Operation::ListIdentityPools, json!({"MaxResults": 0})),
            "1 validation error detected: Value '0' at 'maxResults' failed to satisfy \
             constraint: Member must have value greater than or equal to 1"
        );
        assert_eq!(
            validation(Operation::ListIdentityPools, json!({"MaxResults": 61})),
            "1 validation error detected: Value '61' at 'maxResults' failed to satisfy \
             constraint: Member must have value less than or equal to 60"
        );
        assert_eq!(
            v().validate(Operation::ListIdentityPools, &json!({"MaxResults": 60})),
            Ok(())
        );
    }

    #[test]
    fn keys_are_reported_before_values() {
        let msg = validation(
            Operation::GetId,
            json!({"IdentityPoolId": POOL, "Logins": {"": "", "a": "x"}}),
        );
        assert_eq!(
            msg,
            "2 validation errors detected: Value '{=*** Sensitive Data Redacted ***, \
             a=*** Sensitive Data Redacted ***}' at 'logins' failed to satisfy constraint: \
             Map keys must satisfy constraint: [Member must have length less than or equal to \
             128, Member must have length greater than or equal to 1]; Value '{=*** Sensitive \
             Data Redacted ***, a=*** Sensitive Data Redacted ***}' at 'logins' failed to \
             satisfy constraint: Map value must satisfy constraint: [Member must have length \
             less than or equal to 50000, Member must have length greater than or equal to 1]"
        );
    }

    #[test]
    fn lengths_count_utf16_units() {
        // 64 astral characters are 128 UTF-16 units, within PrincipalTagValue's 256; 65 are
        // 130 units, beyond PrincipalTagID's 128.
        let tag = "😀".repeat(64);
        let ok = json!({"IdentityPoolId": POOL, "IdentityProviderName": "p", "PrincipalTags": {"k": tag}});
        assert_eq!(
            v().validate(Operation::SetPrincipalTagAttributeMap, &ok),
            Ok(())
        );
        let key = "😀".repeat(65);
        let bad = json!({"IdentityPoolId": POOL, "IdentityProviderName": "p", "PrincipalTags": {key: "v"}});
        let msg = validation(Operation::SetPrincipalTagAttributeMap, bad);
        assert!(msg.ends_with(
            "Map keys must satisfy constraint: [Member must have length less than or equal to \
             128, Member must have length greater than or equal to 1]"
        ));
        // Multi-byte strings short in units but long in bytes pass the min/max checks.
        let name = "é".repeat(100);
        let msg = validation(
            Operation::CreateIdentityPool,
            json!({"IdentityPoolName": name, "AllowUnauthenticatedIdentities": true}),
        );
        assert!(!msg.contains("length"), "{msg}");
    }

    #[test]
    fn type_errors_are_serialization_errors() {
        let cases = [
            (
                Operation::GetId,
                json!({"IdentityPoolId": 5}),
                "IdentityPoolId",
                "string",
            ),
            (
                Operation::ListIdentityPools,
                json!({"MaxResults": "5"}),
                "MaxResults",
                "integer",
            ),
            (
                Operation::ListIdentityPools,
                json!({"MaxResults": 1.5}),
                "MaxResults",
                "integer",
            ),
            (
                Operation::ListIdentityPools,
                json!({"MaxResults": 1e3}),
                "MaxResults",
                "integer",
            ),
            (
                Operation::ListIdentityPools,
                json!({"MaxResults": 2_147_483_648_i64}),
                "MaxResults",
                "integer",
            ),
            (
                Operation::GetOpenIdTokenForDeveloperIdentity,
                json!({"IdentityPoolId": POOL, "Logins": {}, "TokenDuration": 1.0}),
                "TokenDuration",
                "integer",
            ),
            (
                Operation::GetOpenIdTokenForDeveloperIdentity,
                json!({"IdentityPoolId": POOL, "Logins": {}, "TokenDuration": u64::MAX}),
                "TokenDuration",
                "integer",
            ),
            (
                Operation::ListIdentities,
                json!({"IdentityPoolId": POOL, "MaxResults": 1, "HideDisabled": "true"}),
                "HideDisabled",
                "boolean",
            ),
            (
                Operation::DeleteIdentities,
                json!({"IdentityIdsToDelete": "x"}),
                "IdentityIdsToDelete",
                "list",
            ),
            (
                Operation::GetId,
                json!({"IdentityPoolId": POOL, "Logins": []}),
                "Logins",
                "map",
            ),
            (
                Operation::GetId,
                json!({"IdentityPoolId": POOL, "Logins": {"accounts.google.com": 7}}),
                "Logins.accounts.google.com",
                "string",
            ),
            (
                Operation::CreateIdentityPool,
                json!({"IdentityPoolName": "n", "AllowUnauthenticatedIdentities": true,
                       "CognitoIdentityProviders": [{"ClientId": "ok"}, "x"]}),
                "CognitoIdentityProviders.1",
                "structure",
            ),
            (
                Operation::CreateIdentityPool,
                json!({"IdentityPoolName": "n", "AllowUnauthenticatedIdentities": true,
                       "CognitoIdentityProviders": [{"ClientId": false}]}),
                "CognitoIdentityProviders.0.ClientId",
                "string",
            ),
            (
                Operation::DeleteIdentities,
                json!({"IdentityIdsToDelete": [POOL, 3]}),
                "IdentityIdsToDelete.1",
                "string",
            ),
        ];
        for (op, input, path, kind) in cases {
            assert_eq!(
                serialization(op, input),
                format!("Unexpected JSON type at '{path}': expected {kind}")
            );
        }
    }

    #[test]
    fn type_errors_win_over_constraint_violations() {
        // `AccountId` fails its pattern first in model order, but the type error wins.
        let msg = serialization(
            Operation::GetId,
            json!({"AccountId": "abc", "Logins": {"a": 1}}),
        );
        assert_eq!(msg, "Unexpected JSON type at 'Logins.a': expected string");
    }

    #[test]
    fn non_object_input_is_a_serialization_error() {
        for input in [json!([]), json!("x"), json!(1), json!(null), json!(true)] {
            assert_eq!(
                serialization(Operation::GetId, input),
                "Unexpected JSON type for the request body: expected structure"
            );
        }
    }

    #[test]
    fn role_mapping_enum_and_nested_rules() {
        let input = json!({
            "IdentityPoolId": POOL,
            "Roles": {"authenticated": "arn:aws:iam::123456789012:role/auth"},
            "RoleMappings": {"graph.facebook.com": {"Type": "Bogus"}}
        });
        assert_eq!(
            validation(Operation::SetIdentityPoolRoles, input),
            "1 validation error detected: Value 'Bogus' at \
             'roleMappings.graph.facebook.com.member.type' failed to satisfy constraint: Member \
             must satisfy enum value set: [Token, Rules]"
        );
        let input = json!({
            "IdentityPoolId": POOL,
            "Roles": {"admin": "arn:aws:iam::123456789012:role/auth"},
            "RoleMappings": {"p": {"Type": "Rules", "AmbiguousRoleResolution": "Deny",
                "RulesConfiguration": {"Rules": [{"Claim": "a b", "MatchType": "Equals",
                    "Value": "v", "RoleARN": "short"}]}}}
        });
        assert_eq!(
            validation(Operation::SetIdentityPoolRoles, input),
            "3 validation errors detected: Value 'a b' at \
             'roleMappings.p.member.rulesConfiguration.rules.1.member.claim' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: \
             [\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+; Value 'short' at \
             'roleMappings.p.member.rulesConfiguration.rules.1.member.roleARN' failed to \
             satisfy constraint: Member must have length greater than or equal to 20; Value \
             '{admin=arn:aws:iam::123456789012:role/auth}' at 'roles' failed to satisfy \
             constraint: Map keys must satisfy constraint: [Member must have length less than \
             or equal to 128, Member must have length greater than or equal to 1, Member must \
             satisfy regular expression pattern: (un)?authenticated]"
        );
    }

    #[test]
    fn missing_nested_required_members() {
        let input = json!({
            "IdentityPoolId": POOL,
            "Roles": {},
            "RoleMappings": {"p": {"RulesConfiguration": {}}}
        });
        assert_eq!(
            validation(Operation::SetIdentityPoolRoles, input),
            "2 validation errors detected: Value null at \
             'roleMappings.p.member.rulesConfiguration.rules' failed to satisfy constraint: \
             Member must not be null; Value null at 'roleMappings.p.member.type' failed to \
             satisfy constraint: Member must not be null"
        );
    }
}
