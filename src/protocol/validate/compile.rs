//! The service model compiled into shapes: every shape of the embedded botocore model, its
//! bounds, patterns (translated from Java's regex dialect) and enums, with their constraint texts
//! precomputed, and each operation's input shape.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

use crate::protocol::router::Operation;

/// The botocore service model, documentation stripped.
const MODEL: &str = include_str!("../cognito-identity-2014-06-30.model.json");

/// Java's `\w`, `\d` and `\s` (ASCII semantics), as the items of a character class.
const WORD_ITEMS: &str = "0-9A-Za-z_";
const DIGIT_ITEMS: &str = "0-9";
const SPACE_ITEMS: &str = r"\t\n\x0B\x0C\r\x20";

/// Bounds the model leaves out: every list and map of an input has a maximum length, so no
/// request carries (or makes the writer loop over) an unbounded collection. They are checked
/// and reported exactly as the model's own bounds are.
/// - `LoginsList` (`LoginsToRemove`): the 20 logins an identity can hold.
/// - `IdentityPoolTagsType` (`IdentityPoolTags`, `Tags`) and `IdentityPoolTagsListType`
///   (`TagKeys`): 200, well past the 50 tags a pool can carry, so that more than 50 keeps its
///   own answer (`InvalidParameterException`, from the operation).
/// - `CognitoIdentityProviderList`, `OIDCProviderList`, `SAMLProviderList`: 50 providers of a
///   kind per pool.
pub const EXTRA_MAX: &[(&str, i64)] = &[
    ("LoginsList", 20),
    ("IdentityPoolTagsType", 200),
    ("IdentityPoolTagsListType", 200),
    ("CognitoIdentityProviderList", 50),
    ("OIDCProviderList", 50),
    ("SAMLProviderList", 50),
];

#[derive(Debug)]
pub(super) struct Shape {
    pub(super) kind: Kind,
    pub(super) sensitive: bool,
    /// `max`: a length bound for strings, lists and maps, a value bound for numbers.
    pub(super) max: Option<Bound>,
    /// `min`: as `max`.
    pub(super) min: Option<Bound>,
}

/// A `min` or `max` of a shape, with its constraint text precomputed.
#[derive(Debug)]
pub(super) struct Bound {
    pub(super) limit: i64,
    pub(super) text: String,
}

#[derive(Debug)]
pub(super) enum Kind {
    Structure(Vec<Member>),
    List(usize),
    Map {
        key: usize,
        value: usize,
    },
    String {
        pattern: Option<Pattern>,
        enumeration: Option<Enumeration>,
    },
    Integer,
    Long,
    Boolean,
    Timestamp,
}

#[derive(Debug)]
pub(super) struct Member {
    /// The model's (PascalCase) name, as sent on the wire.
    pub(super) name: String,
    /// Coral's name in paths: the first character lower-cased.
    pub(super) coral: String,
    pub(super) shape: usize,
    pub(super) required: bool,
}

#[derive(Debug)]
pub(super) struct Pattern {
    /// Anchored, with Java's ASCII classes spelled out.
    pub(super) regex: Regex,
    pub(super) text: String,
}

#[derive(Debug)]
pub(super) struct Enumeration {
    pub(super) values: Vec<String>,
    pub(super) text: String,
}

/// Compiles every shape and pattern of the embedded model into the shapes (references between
/// shapes are indices into that vector) and the input shape of each operation, indexed by
/// `op as usize`. Fails only if the model is broken: unparsable, a dangling shape reference, an
/// operation without an input structure, or a pattern that cannot be translated from Java's
/// regex dialect.
pub(super) fn compile_model() -> Result<(Vec<Shape>, Vec<usize>), String> {
    let model: Value = serde_json::from_str(MODEL).map_err(|e| format!("service model: {e}"))?;
    let shapes = model
        .get("shapes")
        .and_then(Value::as_object)
        .ok_or("service model: no shapes")?;
    let index: HashMap<&str, usize> = shapes
        .keys()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    let mut compiled = shapes
        .iter()
        .map(|(name, def)| {
            compile_shape(def, &index).map_err(|e| format!("service model: shape {name}: {e}"))
        })
        .collect::<Result<Vec<Shape>, String>>()?;
    for (name, limit) in EXTRA_MAX {
        let shape = resolve(&index, name)
            .ok()
            .and_then(|i| compiled.get_mut(i))
            .filter(|s| matches!(s.kind, Kind::List(_) | Kind::Map { .. }))
            .ok_or_else(|| format!("service model: no list or map shape {name}"))?;
        if shape.max.is_none() {
            shape.max = Some(Bound {
                limit: *limit,
                text: format!("Member must have length less than or equal to {limit}"),
            });
        }
    }

    let mut inputs = vec![usize::MAX; Operation::ALL.len()];
    for op in Operation::ALL {
        let name = op.name();
        let input = model
            .get("operations")
            .and_then(|ops| ops.get(name))
            .and_then(|o| o.get("input"))
            .and_then(|i| i.get("shape"))
            .and_then(Value::as_str)
            .ok_or_else(|| format!("service model: operation {name} has no input shape"))?;
        let idx = resolve(&index, input)?;
        if !matches!(compiled.get(idx).map(|s| &s.kind), Some(Kind::Structure(_))) {
            return Err(format!("service model: input of {name} is not a structure"));
        }
        match inputs.get_mut(op as usize) {
            Some(slot) => *slot = idx,
            None => return Err(format!("operation {name} is out of range")),
        }
    }
    // Map keys arrive as JSON object keys, so every key shape must be a string.
    for shape in &compiled {
        if let Kind::Map { key, .. } = shape.kind {
            if !matches!(
                compiled.get(key).map(|s| &s.kind),
                Some(Kind::String { .. })
            ) {
                return Err("service model: a map key shape is not a string".to_owned());
            }
        }
    }
    Ok((compiled, inputs))
}

fn resolve(index: &HashMap<&str, usize>, name: &str) -> Result<usize, String> {
    index
        .get(name)
        .copied()
        .ok_or_else(|| format!("unknown shape {name}"))
}

/// The shape a `{"shape": ...}` reference under `field` names.
fn target(def: &Value, field: &str, index: &HashMap<&str, usize>) -> Result<usize, String> {
    let name = def
        .get(field)
        .and_then(|r| r.get("shape"))
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no {field} shape"))?;
    resolve(index, name)
}

fn compile_shape(def: &Value, index: &HashMap<&str, usize>) -> Result<Shape, String> {
    let ty = def.get("type").and_then(Value::as_str).ok_or("no type")?;
    let kind = match ty {
        "structure" => {
            let required: Vec<&str> = match def.get("required") {
                None => Vec::new(),
                Some(r) => r
                    .as_array()
                    .ok_or("required is not a list")?
                    .iter()
                    .map(|n| n.as_str().ok_or("required names a non-string"))
                    .collect::<Result<_, _>>()?,
            };
            let members = match def.get("members") {
                None => Vec::new(),
                Some(m) => m
                    .as_object()
                    .ok_or("members is not an object")?
                    .iter()
                    .map(|(name, r)| {
                        let shape = r
                            .get("shape")
                            .and_then(Value::as_str)
                            .ok_or_else(|| format!("member {name} names no shape"))?;
                        Ok(Member {
                            name: name.clone(),
                            coral: lower_first(name),
                            shape: resolve(index, shape)?,
                            required: required.contains(&name.as_str()),
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?,
            };
            if let Some(missing) = required
                .iter()
                .find(|r| !members.iter().any(|m| m.name == **r))
            {
                return Err(format!("required member {missing} is not a member"));
            }
            Kind::Structure(members)
        }
        "list" => Kind::List(target(def, "member", index)?),
        "map" => {
            let key = target(def, "key", index)?;
            Kind::Map {
                key,
                value: target(def, "value", index)?,
            }
        }
        "string" => Kind::String {
            pattern: match def.get("pattern") {
                None => None,
                Some(p) => {
                    let source = p.as_str().ok_or("pattern is not a string")?;
                    let translated = translate_pattern(source)?;
                    let regex =
                        Regex::new(&translated).map_err(|e| format!("pattern {source}: {e}"))?;
                    Some(Pattern {
                        regex,
                        text: format!("Member must satisfy regular expression pattern: {source}"),
                    })
                }
            },
            enumeration: match def.get("enum") {
                None => None,
                Some(e) => {
                    let values = e
                        .as_array()
                        .ok_or("enum is not a list")?
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_owned)
                                .ok_or("enum value is not a string")
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let text = format!(
                        "Member must satisfy enum value set: [{}]",
                        values.join(", ")
                    );
                    Some(Enumeration { values, text })
                }
            },
        },
        "integer" => Kind::Integer,
        "long" => Kind::Long,
        "boolean" => Kind::Boolean,
        "timestamp" => Kind::Timestamp,
        other => return Err(format!("unsupported type {other}")),
    };
    let measure = match kind {
        Kind::Integer | Kind::Long => "value",
        _ => "length",
    };
    let bound = |field: &str, relation: &str| -> Result<Option<Bound>, String> {
        match def.get(field) {
            None => Ok(None),
            Some(n) => {
                let limit = n
                    .as_i64()
                    .ok_or_else(|| format!("{field} is not an integer"))?;
                Ok(Some(Bound {
                    limit,
                    text: format!("Member must have {measure} {relation} {limit}"),
                }))
            }
        }
    };
    let (max, min) = match kind {
        Kind::String { .. } | Kind::List(_) | Kind::Map { .. } | Kind::Integer | Kind::Long => (
            bound("max", "less than or equal to")?,
            bound("min", "greater than or equal to")?,
        ),
        Kind::Structure(_) | Kind::Boolean | Kind::Timestamp => (None, None),
    };
    let sensitive = def
        .get("sensitive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Shape {
        kind,
        sensitive,
        max,
        min,
    })
}

/// Coral's member name in paths: `IdentityPoolId` → `identityPoolId`, `RoleARN` → `roleARN`.
fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Translates a Java regex into an anchored one for the `regex` crate, with Java's ASCII
/// meaning of `\w`, `\d`, `\s` and their negations, inside and outside character classes.
/// Constructs whose meaning differs between the dialects (possessive quantifiers, lookaround,
/// back-references, Java-only escapes) are refused rather than guessed.
fn translate_pattern(java: &str) -> Result<String, String> {
    let refuse = |what: &str| Err(format!("pattern {java}: unsupported {what}"));
    let mut out = String::from("^(?:");
    let mut chars = java.chars().peekable();
    // Nesting depth of character classes; 0 outside any.
    let mut depth = 0usize;
    // Inside a class, whether the last item was a shorthand class (so a `-` after it is literal).
    let mut after_shorthand = false;
    while let Some(c) = chars.next() {
        let was_shorthand = std::mem::replace(&mut after_shorthand, false);
        match c {
            '\\' => {
                let Some(e) = chars.next() else {
                    return refuse("trailing backslash");
                };
                let (items, negated) = match e {
                    'w' => (Some(WORD_ITEMS), false),
                    'd' => (Some(DIGIT_ITEMS), false),
                    's' => (Some(SPACE_ITEMS), false),
                    'W' => (Some(WORD_ITEMS), true),
                    'D' => (Some(DIGIT_ITEMS), true),
                    'S' => (Some(SPACE_ITEMS), true),
                    _ => (None, false),
                };
                if let Some(items) = items {
                    match (depth > 0, negated) {
                        (true, false) => out.push_str(items),
                        _ => {
                            out.push_str(if negated { "[^" } else { "[" });
                            out.push_str(items);
                            out.push(']');
                        }
                    }
                    after_shorthand = depth > 0;
                    continue;
                }
                match e {
                    'p' | 'P' => {
                        out.push('\\');
                        out.push(e);
                        match chars.next() {
                            Some('{') => {
                                out.push('{');
                                loop {
                                    match chars.next() {
                                        Some('}') => break,
                                        Some(n) if n.is_ascii_alphanumeric() || n == '_' => {
                                            out.push(n)
                                        }
                                        _ => return refuse("property class"),
                                    }
                                }
                                out.push('}');
                            }
                            Some(n) if n.is_ascii_alphabetic() => out.push(n),
                            _ => return refuse("property class"),
                        }
                    }
                    't' | 'n' | 'r' | 'f' => {
                        out.push('\\');
                        out.push(e);
                    }
                    e if e.is_ascii_punctuation() => {
                        out.push('\\');
                        out.push(e);
                    }
                    _ => return refuse(&format!("escape \\{e}")),
                }
            }
            '[' => {
                depth += 1;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(']');
            }
            '-' if depth > 0 && was_shorthand => out.push_str(r"\-"),
            '&' if depth > 0 && chars.peek() == Some(&'&') => return refuse("class intersection"),
            '(' if depth == 0 => {
                out.push('(');
                if chars.peek() == Some(&'?') {
                    chars.next();
                    if chars.next() != Some(':') {
                        return refuse("group construct");
                    }
                    out.push_str("?:");
                }
            }
            '*' | '+' | '?' | '}' if depth == 0 => {
                out.push(c);
                if chars.peek() == Some(&'+') {
                    return refuse("possessive quantifier");
                }
            }
            // Java's `.` stops at every line terminator, not only `\n`.
            '.' if depth == 0 => out.push_str("[^\\n\\r\\x{85}\\x{2028}\\x{2029}]"),
            _ => out.push(c),
        }
    }
    if depth > 0 {
        return refuse("unclosed character class");
    }
    out.push_str(")$");
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::protocol::validate::testing::{v, validation, POOL};
    use serde_json::{json, Map};

    #[test]
    fn the_model_compiles() {
        let val = v();
        assert_eq!(val.inputs.len(), 23);
        assert!(val.inputs.iter().all(|i| *i < val.shapes.len()));
    }

    /// Every list and map reachable from an operation's input has a maximum length.
    #[test]
    fn every_input_collection_is_bounded() {
        let val = v();
        let mut seen = vec![false; val.shapes.len()];
        let mut todo: Vec<usize> = val.inputs.clone();
        while let Some(i) = todo.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let shape = &val.shapes[i];
            match &shape.kind {
                Kind::Structure(members) => todo.extend(members.iter().map(|m| m.shape)),
                Kind::List(m) => {
                    assert!(shape.max.is_some(), "a list without a maximum");
                    todo.push(*m);
                }
                Kind::Map { key, value } => {
                    assert!(shape.max.is_some(), "a map without a maximum");
                    todo.extend([*key, *value]);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn logins_to_remove_and_tag_lists_have_bounds_the_model_lacks() {
        let id = "us-east-1:6eaf0258-e8c5-467f-90de-6e212326e6d3";
        let twenty: Vec<String> = (0..20).map(|i| format!("p{i}.example.com")).collect();
        let ok = json!({"IdentityId": id, "Logins": {"a": "t"}, "LoginsToRemove": twenty});
        assert_eq!(v().validate(Operation::UnlinkIdentity, &ok), Ok(()));
        let many = vec!["accounts.google.com"; 21];
        let input = json!({"IdentityId": id, "Logins": {"a": "t"}, "LoginsToRemove": many});
        let m = validation(Operation::UnlinkIdentity, input);
        assert!(
            m.starts_with("1 validation error detected: Value '[accounts.google.com, ")
                && m.ends_with(
                    "' at 'loginsToRemove' failed to satisfy constraint: Member must have \
                     length less than or equal to 20"
                ),
            "{m}"
        );
        let arn = format!("arn:aws:cognito-identity:us-east-1:1:identitypool/{POOL}");
        let keys: Vec<String> = (0..201).map(|i| format!("k{i}")).collect();
        let m = validation(
            Operation::UntagResource,
            json!({"ResourceArn": arn, "TagKeys": keys}),
        );
        assert!(m.ends_with("less than or equal to 200"), "{m}");
        let tags: Map<String, Value> = (0..201).map(|i| (format!("k{i}"), json!("v"))).collect();
        let m = validation(
            Operation::TagResource,
            json!({"ResourceArn": arn, "Tags": tags}),
        );
        assert!(m.ends_with("less than or equal to 200"), "{m}");
        // 51 tags pass here: the operation refuses them as AWS does.
        let tags: Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
        let ok = json!({"ResourceArn": arn, "Tags": tags});
        assert_eq!(v().validate(Operation::TagResource, &ok), Ok(()));
    }

    #[test]
    fn java_ascii_classes() {
        let re = |p: &str| Regex::new(&translate_pattern(p).unwrap()).unwrap();
        assert!(!re(r"[\w-]+").is_match("é"));
        assert!(re(r"[\w-]+").is_match("a-b_9"));
        assert!(re(r"[\p{L}\p{M}\p{S}\p{N}\p{P}]+").is_match("é"));
        assert!(!re(r"[\S]+").is_match("a b"));
        assert!(re(r"[\S]+").is_match("é/+="));
        assert!(!re(r"[\S]+").is_match("a\u{0B}b"));
        assert!(!re(r"\d+").is_match("٣"));
        assert!(re(r"\d+").is_match("0123"));
        assert!(!re(r"\d+").is_match("12a"));
        assert!(re(r"[\w\s+=,.@-]+").is_match("my pool+=,.@-_\t"));
        assert!(!re(r"[\w\s+=,.@-]+").is_match("a\u{A0}b"));
        assert!(re("(un)?authenticated").is_match("unauthenticated"));
        assert!(!re("(un)?authenticated").is_match("xauthenticated"));
        assert!(!re("(un)?authenticated").is_match("authenticatedx"));
        assert!(re(r"[\w.;_/-]+").is_match("a.b;c/d-e"));
        assert!(re(r"[\w._:/-]+").is_match("cognito-idp.us-east-1.amazonaws.com/us-east-1_A"));
        assert!(re(r"[\w_]+").is_match("abc_1"));
        assert!(re(r"[\w-]+:[0-9a-f-]+").is_match(POOL));
        // A `-` after a shorthand inside a class stays literal.
        assert!(re(r"[\w-z]+").is_match("-"));
        assert!(!re(r"[\w-z]+").is_match("é"));
        assert!(re(r"[\W]").is_match("é"));
        assert!(re(r"[a\S]").is_match("b"));
        assert!(!re(r"[a\S]").is_match(" "));
        assert!(re(r"\S\s\w\W\d\D").is_match("x 1.2a"));
        assert!(!re("a.b").is_match("a\rb"));
    }

    #[test]
    fn untranslatable_patterns_are_refused() {
        for p in [
            r"a++", r"(?=a)", r"\bword", r"(a)\1", r"[a&&b]", r"[abc", r"\Qx\E", "a\\",
        ] {
            assert!(translate_pattern(p).is_err(), "{p}");
        }
    }

    #[test]
    fn coral_names_lower_only_the_first_character() {
        assert_eq!(lower_first("IdentityPoolId"), "identityPoolId");
        assert_eq!(
            lower_first("OpenIdConnectProviderARNs"),
            "openIdConnectProviderARNs"
        );
        assert_eq!(lower_first("RoleARN"), "roleARN");
    }
}
