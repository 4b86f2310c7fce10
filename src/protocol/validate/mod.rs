//! Input validation driven by the embedded service model: JSON types first (a
//! `SerializationException`), then the model's constraints with AWS's exact Coral messages (one
//! `ValidationException` listing every violation).

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use regex::Regex;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::router::Operation;

/// The botocore service model, documentation stripped.
const MODEL: &str = include_str!("../cognito-identity-2014-06-30.model.json");

/// A rendered value longer than this many characters is cut, then followed by `...`.
const RENDER_LIMIT: usize = 1024;

/// What a value of a `sensitive` shape renders as.
const REDACTED: &str = "*** Sensitive Data Redacted ***";

/// The constraint text of a missing required member (or a null collection element).
const NOT_NULL: &str = "Member must not be null";

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

/// Every operation's input validator, compiled once at start-up from the embedded model.
#[derive(Debug)]
pub struct Validator {
    /// Every shape of the model; references between shapes are indices into this vector.
    shapes: Vec<Shape>,
    /// The input shape of each operation, indexed by `op as usize`.
    inputs: Vec<usize>,
}

#[derive(Debug)]
struct Shape {
    kind: Kind,
    sensitive: bool,
    /// `max`: a length bound for strings, lists and maps, a value bound for numbers.
    max: Option<Bound>,
    /// `min`: as `max`.
    min: Option<Bound>,
}

/// A `min` or `max` of a shape, with its constraint text precomputed.
#[derive(Debug)]
struct Bound {
    limit: i64,
    text: String,
}

#[derive(Debug)]
enum Kind {
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
struct Member {
    /// The model's (PascalCase) name, as sent on the wire.
    name: String,
    /// Coral's name in paths: the first character lower-cased.
    coral: String,
    shape: usize,
    required: bool,
}

#[derive(Debug)]
struct Pattern {
    /// Anchored, with Java's ASCII classes spelled out.
    regex: Regex,
    text: String,
}

#[derive(Debug)]
struct Enumeration {
    values: Vec<String>,
    text: String,
}

/// A type-checked scalar, as its constraints see it.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Str(&'a str),
    Int(i64),
    /// Booleans and timestamps: no constraints apply.
    Other,
}

/// Where a value sits in the input: a linked list of stack frames, so walking allocates nothing.
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Member(&'a Member),
    Index(usize),
    Key(&'a str),
}

impl<'a> Path<'a> {
    fn child(&'a self, seg: Seg<'a>) -> Path<'a> {
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

fn type_error(path: &Path<'_>, kind: &str) -> ApiError {
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

fn null_item(path: &Path<'_>) -> String {
    format!(
        "Value null at '{}' failed to satisfy constraint: {NOT_NULL}",
        path.coral()
    )
}

/// `[c1, c2]`: every constraint of an element shape, in check order, whichever failed. Coral
/// lists them all on the collection (AWS answers `Map value must satisfy constraint: [Member
/// must have length less than or equal to 50000, Member must have length greater than or equal
/// to 1]` for one empty login token). A null element adds `Member must not be null`.
fn constraint_list(shape: &Shape, null: bool) -> String {
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

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Validator {
    /// Compiles every shape and pattern of the embedded model. Fails only if the model is
    /// broken: unparsable, a dangling shape reference, an operation without an input structure,
    /// or a pattern that cannot be translated from Java's regex dialect.
    pub fn new() -> Result<Validator, String> {
        let model: Value =
            serde_json::from_str(MODEL).map_err(|e| format!("service model: {e}"))?;
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
        Ok(Validator {
            shapes: compiled,
            inputs,
        })
    }

    /// Validates the input of `op`: the first JSON type mismatch as a `Serialization` error,
    /// else every constraint violation in one `Validation` error, else `Ok`.
    pub fn validate(&self, op: Operation, input: &Value) -> Result<(), ApiError> {
        let Some(&root) = self.inputs.get(op as usize) else {
            return Err(ApiError::InternalError);
        };
        let path = Path {
            parent: None,
            seg: Seg::Root,
        };
        let mut items = Vec::new();
        self.walk(root, input, &path, &mut items)?;
        if items.is_empty() {
            return Ok(());
        }
        let head = if items.len() == 1 {
            "1 validation error detected: ".to_owned()
        } else {
            format!("{} validation errors detected: ", items.len())
        };
        Err(ApiError::Validation(head + &items.join("; ")))
    }

    fn shape(&self, idx: usize) -> Result<&Shape, ApiError> {
        self.shapes.get(idx).ok_or(ApiError::InternalError)
    }

    /// Type-checks `v` (never null) against shape `idx` and pushes its violations.
    fn walk(
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
                failed = failed || self.fails(shape, scalar);
            }
        }
        Ok((failed || null).then(|| constraint_list(shape, null)))
    }

    /// The constraint list to report when some map key fails its shape.
    fn key_failure(
        &self,
        key: usize,
        obj: &Map<String, Value>,
    ) -> Result<Option<String>, ApiError> {
        let shape = self.shape(key)?;
        let failed = obj.keys().any(|k| self.fails(shape, Scalar::Str(k)));
        Ok(failed.then(|| constraint_list(shape, false)))
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

    /// `Value '<v>' at '<path>' failed to satisfy constraint: <c>`.
    fn item(&self, idx: usize, v: &Value, path: &Path<'_>, constraint: &str) -> String {
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
    use serde_json::json;

    fn v() -> Validator {
        Validator::new().unwrap()
    }

    fn validation(op: Operation, input: Value) -> String {
        match v().validate(op, &input) {
            Err(ApiError::Validation(m)) => m,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn serialization(op: Operation, input: Value) -> String {
        match v().validate(op, &input) {
            Err(ApiError::Serialization(m)) => m,
            other => panic!("expected a serialization error, got {other:?}"),
        }
    }

    const POOL: &str = "us-east-1:6eaf0258-e8c5-467f-90de-6e212326e6d3";

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

    #[test]
    fn every_operation_resolves_and_never_panics() {
        let val = v();
        for op in Operation::ALL {
            for input in [json!({}), json!({"IdentityPoolId": POOL}), json!([])] {
                match val.validate(op, &input) {
                    Ok(()) | Err(ApiError::Validation(_)) | Err(ApiError::Serialization(_)) => {}
                    Err(other) => panic!("{op:?}: {other:?}"),
                }
            }
            assert!(matches!(
                val.validate(op, &json!({})),
                Ok(()) | Err(ApiError::Validation(_))
            ));
        }
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
