//! AWS's validation messages: Coral's paths (`cognitoIdentityProviders.1.member.clientId`) and
//! the wire's (for type errors), values rendered in Java `toString` style with sensitive shapes
//! redacted and long values cut, and the constraint texts of a collection's elements.

use std::fmt::{self, Write as _};

use serde_json::Value;

use super::compile::{Kind, Member, Shape};
use super::Validator;
use crate::protocol::error::ApiError;

/// A rendered value longer than this many characters is cut, then followed by `...`.
const RENDER_LIMIT: usize = 1024;

/// What a value of a `sensitive` shape renders as.
const REDACTED: &str = "*** Sensitive Data Redacted ***";

/// The constraint text of a missing required member (or a null collection element).
const NOT_NULL: &str = "Member must not be null";

/// Where a value sits in the input: a linked list of stack frames, so walking allocates nothing.
pub(super) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
pub(super) enum Seg<'a> {
    Root,
    Member(&'a Member),
    Index(usize),
    Key(&'a str),
}

impl<'a> Path<'a> {
    /// The input itself.
    pub(super) fn root() -> Path<'static> {
        Path {
            parent: None,
            seg: Seg::Root,
        }
    }

    pub(super) fn child(&'a self, seg: Seg<'a>) -> Path<'a> {
        Path {
            parent: Some(self),
            seg,
        }
    }

    /// Coral's form: `cognitoIdentityProviders.1.member.clientId`.
    fn coral(&self) -> String {
        let mut out = String::new();
        self.write_coral(&mut out);
        out
    }

    fn write_coral(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.write_coral(out);
        }
        match self.seg {
            Seg::Root => {}
            Seg::Member(m) => {
                separate(out);
                out.push_str(&m.coral);
            }
            Seg::Index(i) => {
                separate(out);
                let _ = write!(out, "{}.member", i.saturating_add(1));
            }
            Seg::Key(k) => {
                separate(out);
                out.push_str(&capped(k));
                out.push_str(".member");
            }
        }
    }

    /// The wire's form: `CognitoIdentityProviders.0.ClientId`.
    fn wire(&self) -> String {
        let mut out = String::new();
        self.write_wire(&mut out);
        out
    }

    fn write_wire(&self, out: &mut String) {
        if let Some(parent) = self.parent {
            parent.write_wire(out);
        }
        match self.seg {
            Seg::Root => {}
            Seg::Member(m) => {
                separate(out);
                out.push_str(&m.name);
            }
            Seg::Index(i) => {
                separate(out);
                let _ = write!(out, "{i}");
            }
            Seg::Key(k) => {
                separate(out);
                out.push_str(&capped(k));
            }
        }
    }

    fn is_root(&self) -> bool {
        matches!(self.seg, Seg::Root)
    }
}

fn separate(out: &mut String) {
    if !out.is_empty() {
        out.push('.');
    }
}

/// A string writer that keeps the first [`RENDER_LIMIT`] characters and notes a cut.
struct Capped {
    buf: String,
    chars: usize,
    truncated: bool,
}

impl Capped {
    fn new() -> Capped {
        Capped {
            buf: String::new(),
            chars: 0,
            truncated: false,
        }
    }

    fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            if self.chars >= RENDER_LIMIT {
                self.truncated = true;
                return;
            }
            self.buf.push(c);
            self.chars += 1;
        }
    }

    fn finish(mut self) -> String {
        if self.truncated {
            self.buf.push_str("...");
        }
        self.buf
    }
}

impl fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

/// `s`, cut as a rendered value is.
fn capped(s: &str) -> String {
    let mut cap = Capped::new();
    cap.push_str(s);
    cap.finish()
}

/// One `ValidationException` message: the count of `items`, then every item.
pub(super) fn validation_error(items: &[String]) -> ApiError {
    let head = if items.len() == 1 {
        "1 validation error detected: ".to_owned()
    } else {
        format!("{} validation errors detected: ", items.len())
    };
    ApiError::Validation(head + &items.join("; "))
}

pub(super) fn type_error(path: &Path<'_>, kind: &str) -> ApiError {
    if path.is_root() {
        ApiError::Serialization(format!(
            "Unexpected JSON type for the request body: expected {kind}"
        ))
    } else {
        ApiError::Serialization(format!(
            "Unexpected JSON type at '{}': expected {kind}",
            path.wire()
        ))
    }
}

pub(super) fn null_item(path: &Path<'_>) -> String {
    format!(
        "Value null at '{}' failed to satisfy constraint: {NOT_NULL}",
        path.coral()
    )
}

/// `[c1, c2]`: every constraint of an element shape, in check order, whichever failed. Coral
/// lists them all on the collection (AWS answers `Map value must satisfy constraint: [Member
/// must have length less than or equal to 50000, Member must have length greater than or equal
/// to 1]` for one empty login token). A null element adds `Member must not be null`.
pub(super) fn constraint_list(shape: &Shape, null: bool) -> String {
    let mut texts: Vec<&str> = Vec::with_capacity(5);
    if let Some(b) = &shape.max {
        texts.push(&b.text);
    }
    if let Some(b) = &shape.min {
        texts.push(&b.text);
    }
    if let Kind::String {
        pattern,
        enumeration,
    } = &shape.kind
    {
        if let Some(p) = pattern {
            texts.push(&p.text);
        }
        if let Some(e) = enumeration {
            texts.push(&e.text);
        }
    }
    if null {
        texts.push(NOT_NULL);
    }
    format!("[{}]", texts.join(", "))
}

impl Validator {
    /// `Value '<v>' at '<path>' failed to satisfy constraint: <c>`.
    pub(super) fn item(&self, idx: usize, v: &Value, path: &Path<'_>, constraint: &str) -> String {
        let mut cap = Capped::new();
        self.render(Some(idx), v, &mut cap);
        format!(
            "Value '{}' at '{}' failed to satisfy constraint: {constraint}",
            cap.finish(),
            path.coral()
        )
    }

    /// Java `toString` style, redacting sensitive shapes and stopping at the cap.
    fn render(&self, idx: Option<usize>, v: &Value, cap: &mut Capped) {
        if cap.truncated {
            return;
        }
        let shape = idx.and_then(|i| self.shapes.get(i));
        if shape.is_some_and(|s| s.sensitive) && !v.is_null() {
            cap.push_str(REDACTED);
            return;
        }
        let kind = shape.map(|s| &s.kind);
        match v {
            Value::Null => cap.push_str("null"),
            Value::Bool(b) => cap.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                let _ = write!(cap, "{n}");
            }
            Value::String(s) => cap.push_str(s),
            Value::Array(arr) => {
                let member = match kind {
                    Some(Kind::List(m)) => Some(*m),
                    _ => None,
                };
                cap.push_str("[");
                for (i, e) in arr.iter().enumerate() {
                    if cap.truncated {
                        return;
                    }
                    if i > 0 {
                        cap.push_str(", ");
                    }
                    self.render(member, e, cap);
                }
                cap.push_str("]");
            }
            Value::Object(obj) => {
                cap.push_str("{");
                if let Some(Kind::Structure(members)) = kind {
                    let present = members
                        .iter()
                        .filter_map(|m| obj.get(&m.name).filter(|e| !e.is_null()).map(|e| (m, e)));
                    for (i, (m, e)) in present.enumerate() {
                        if cap.truncated {
                            return;
                        }
                        if i > 0 {
                            cap.push_str(", ");
                        }
                        cap.push_str(&m.name);
                        cap.push_str("=");
                        self.render(Some(m.shape), e, cap);
                    }
                } else {
                    let (key, value) = match kind {
                        Some(Kind::Map { key, value }) => (Some(*key), Some(*value)),
                        _ => (None, None),
                    };
                    let key_sensitive = key
                        .and_then(|k| self.shapes.get(k))
                        .is_some_and(|s| s.sensitive);
                    for (i, (k, e)) in obj.iter().enumerate() {
                        if cap.truncated {
                            return;
                        }
                        if i > 0 {
                            cap.push_str(", ");
                        }
                        cap.push_str(if key_sensitive { REDACTED } else { k });
                        cap.push_str("=");
                        self.render(value, e, cap);
                    }
                }
                cap.push_str("}");
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use crate::protocol::validate::testing::{validation, POOL};
    use crate::protocol::Operation;
    use serde_json::{json, Map, Value};

    #[test]
    fn too_many_logins() {
        let logins: Map<String, Value> = (0..11)
            .map(|i| (format!("provider{i:02}"), json!("t")))
            .collect();
        let msg = validation(
            Operation::GetId,
            json!({"IdentityPoolId": POOL, "Logins": logins}),
        );
        assert!(msg.starts_with(
            "1 validation error detected: Value '{provider00=*** Sensitive Data Redacted ***, \
             provider01=*** Sensitive Data Redacted ***,"
        ));
        assert!(msg.ends_with(
            "provider10=*** Sensitive Data Redacted ***}' at 'logins' failed to satisfy \
             constraint: Member must have length less than or equal to 10"
        ));
    }

    #[test]
    fn empty_login_key_is_reported_on_the_map_redacted() {
        assert_eq!(
            validation(
                Operation::GetId,
                json!({"IdentityPoolId": POOL, "Logins": {"": "secret-token"}})
            ),
            "1 validation error detected: Value '{=*** Sensitive Data Redacted ***}' at \
             'logins' failed to satisfy constraint: Map keys must satisfy constraint: \
             [Member must have length less than or equal to 128, Member must have length \
             greater than or equal to 1]"
        );
    }

    #[test]
    fn huge_token_gives_a_bounded_message() {
        let token = "x".repeat(60_000);
        let msg = validation(
            Operation::GetId,
            json!({"IdentityPoolId": POOL, "Logins": {"accounts.google.com": token}}),
        );
        assert_eq!(
            msg,
            "1 validation error detected: Value '{accounts.google.com=*** Sensitive Data \
             Redacted ***}' at 'logins' failed to satisfy constraint: Map value must satisfy \
             constraint: [Member must have length less than or equal to 50000, Member must \
             have length greater than or equal to 1]"
        );
    }

    #[test]
    fn long_values_are_cut_at_1024_characters() {
        let token = "é".repeat(70_000);
        let msg = validation(
            Operation::ListIdentityPools,
            json!({"MaxResults": 1, "NextToken": token}),
        );
        let expected_value = format!("{}...", "é".repeat(1024));
        assert_eq!(
            msg,
            format!(
                "1 validation error detected: Value '{expected_value}' at 'nextToken' failed to \
                 satisfy constraint: Member must have length less than or equal to 65535"
            )
        );
        assert!(msg.len() < 2400);
        // Exactly 1024 characters is not cut.
        let name = "a".repeat(1024);
        let msg = validation(
            Operation::CreateIdentityPool,
            json!({"IdentityPoolName": name, "AllowUnauthenticatedIdentities": true}),
        );
        assert!(msg.contains(&format!("Value '{name}' at")));
    }

    #[test]
    fn scalar_collections_list_every_element_constraint() {
        let msg = validation(
            Operation::DeleteIdentities,
            json!({"IdentityIdsToDelete": ["", format!("us-east-1:{}", "a".repeat(60))]}),
        );
        assert_eq!(
            msg,
            format!(
                "1 validation error detected: Value '[, us-east-1:{}]' at 'identityIdsToDelete' \
                 failed to satisfy constraint: Member must satisfy constraint: [Member must have \
                 length less than or equal to 55, Member must have length greater than or equal \
                 to 1, Member must satisfy regular expression pattern: [\\w-]+:[0-9a-f-]+]",
                "a".repeat(60)
            )
        );
        let msg = validation(
            Operation::DeleteIdentities,
            json!({"IdentityIdsToDelete": []}),
        );
        assert_eq!(
            msg,
            "1 validation error detected: Value '[]' at 'identityIdsToDelete' failed to satisfy \
             constraint: Member must have length greater than or equal to 1"
        );
        let msg = validation(
            Operation::DeleteIdentities,
            json!({"IdentityIdsToDelete": [null]}),
        );
        assert_eq!(
            msg,
            "1 validation error detected: Value '[null]' at 'identityIdsToDelete' failed to \
             satisfy constraint: Member must satisfy constraint: [Member must have length less \
             than or equal to 55, Member must have length greater than or equal to 1, Member \
             must satisfy regular expression pattern: [\\w-]+:[0-9a-f-]+, Member must not be \
             null]"
        );
    }

    #[test]
    fn nested_structures_have_coral_paths() {
        let input = json!({
            "IdentityPoolId": POOL,
            "IdentityPoolName": "pool",
            "AllowUnauthenticatedIdentities": true,
            "CognitoIdentityProviders": [{"ClientId": "bad client"}]
        });
        assert_eq!(
            validation(Operation::UpdateIdentityPool, input),
            "1 validation error detected: Value 'bad client' at \
             'cognitoIdentityProviders.1.member.clientId' failed to satisfy constraint: Member \
             must satisfy regular expression pattern: [\\w_]+"
        );
        let input = json!({
            "IdentityPoolName": "pool",
            "AllowUnauthenticatedIdentities": true,
            "CognitoIdentityProviders": [{"ClientId": "good"}, null, {"ClientId": "bad client"}]
        });
        assert_eq!(
            validation(Operation::CreateIdentityPool, input),
            "2 validation errors detected: Value null at 'cognitoIdentityProviders.2.member' \
             failed to satisfy constraint: Member must not be null; Value 'bad client' at \
             'cognitoIdentityProviders.3.member.clientId' failed to satisfy constraint: Member \
             must satisfy regular expression pattern: [\\w_]+"
        );
    }

    #[test]
    fn structures_render_their_present_members() {
        let input = json!({
            "IdentityPoolId": POOL,
            "Roles": {},
            "RoleMappings": {"": {"Type": "Token", "AmbiguousRoleResolution": null}}
        });
        assert_eq!(
            validation(Operation::SetIdentityPoolRoles, input),
            "1 validation error detected: Value '{={Type=Token}}' at 'roleMappings' failed to \
             satisfy constraint: Map keys must satisfy constraint: [Member must have length \
             less than or equal to 128, Member must have length greater than or equal to 1]"
        );
    }
}
