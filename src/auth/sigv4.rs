//! AWS Signature Version 4 (header form, `AWS4-HMAC-SHA256`) verification of signed awsJson
//! requests, computed exactly as AWS computes it so that the AWS SDKs, CLI, boto3 and Terraform
//! are accepted unchanged.
//!
//! The pure core (canonical request → string to sign → signature) is independent of the service
//! name so it can be checked against AWS's published test-suite vectors, whose data is in
//! `tests/fixtures/sigv4/`; [`verify`] wraps it with the parsing of the `Authorization` header
//! and the policy of this server (its one service `cognito-identity`, its one region, optionally
//! its one public host name, a 15-minute clock skew, no temporary credentials, and a signed
//! body: no `UNSIGNED-PAYLOAD`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::protocol::ApiError;

type HmacSha256 = Hmac<Sha256>;

/// The only algorithm accepted in the `Authorization` header.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service every credential scope must name.
const SERVICE: &str = "cognito-identity";
/// The fixed last component of every credential scope.
const TERMINATOR: &str = "aws4_request";
/// How far the request time may be from the server's clock, either way.
const MAX_SKEW_SECS: i64 = 15 * 60;
/// The `x-amz-content-sha256` value by which a client opts out of signing the body. Only S3
/// accepts it on AWS; here, as on every other AWS service, it is refused.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_TARGET: &str = "x-amz-target";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";

/// The same names parsed once: a `&str` name is parsed (checked, lower-cased) and hashed
/// again at every lookup, and a signed call looks up a dozen.
mod name {
    use http::HeaderName;
    pub const X_AMZ_DATE: HeaderName = HeaderName::from_static(super::X_AMZ_DATE);
    pub const X_AMZ_TARGET: HeaderName = HeaderName::from_static(super::X_AMZ_TARGET);
    pub const X_AMZ_CONTENT_SHA256: HeaderName =
        HeaderName::from_static(super::X_AMZ_CONTENT_SHA256);
    pub const X_AMZ_SECURITY_TOKEN: HeaderName =
        HeaderName::from_static(super::X_AMZ_SECURITY_TOKEN);
    pub const X_AMZ_USER_AGENT: HeaderName = HeaderName::from_static("x-amz-user-agent");
    pub const AMZ_SDK_INVOCATION_ID: HeaderName = HeaderName::from_static("amz-sdk-invocation-id");
    pub const AMZ_SDK_REQUEST: HeaderName = HeaderName::from_static("amz-sdk-request");
}

/// The values of a header named in `SignedHeaders`: the names the AWS SDKs sign are found by
/// their parsed form, any other by its text.
fn signed_values<'h>(
    headers: &'h HeaderMap,
    signed: &str,
) -> http::header::GetAll<'h, http::HeaderValue> {
    use http::header;
    match signed {
        "host" => headers.get_all(header::HOST),
        "content-type" => headers.get_all(header::CONTENT_TYPE),
        "content-length" => headers.get_all(header::CONTENT_LENGTH),
        "user-agent" => headers.get_all(header::USER_AGENT),
        X_AMZ_DATE => headers.get_all(name::X_AMZ_DATE),
        X_AMZ_TARGET => headers.get_all(name::X_AMZ_TARGET),
        X_AMZ_CONTENT_SHA256 => headers.get_all(name::X_AMZ_CONTENT_SHA256),
        X_AMZ_SECURITY_TOKEN => headers.get_all(name::X_AMZ_SECURITY_TOKEN),
        "x-amz-user-agent" => headers.get_all(name::X_AMZ_USER_AGENT),
        "amz-sdk-invocation-id" => headers.get_all(name::AMZ_SDK_INVOCATION_ID),
        "amz-sdk-request" => headers.get_all(name::AMZ_SDK_REQUEST),
        other => headers.get_all(other),
    }
}

const UNKNOWN_KEY: &str = "The security token included in the request is invalid.";
const TEMPORARY_CREDENTIALS: &str = "The security token included in the request is invalid. \
     Temporary credentials (X-Amz-Security-Token) are not accepted: sign with an admin key \
     configured on this server.";
const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
     signature you provided. Check your AWS Secret Access Key and signing method. Consult the \
     service documentation for details.";
const WRONG_SERVICE: &str = "Credential should be scoped to correct service: 'cognito-identity'.";
pub(crate) const WRONG_REGION: &str = "Credential should be scoped to a valid region.";
const CONTENT_SHA256_MISMATCH: &str =
    "The provided 'x-amz-content-sha256' header does not match what was computed.";
const UNSIGNED_PAYLOAD_REFUSED: &str = "The 'x-amz-content-sha256' header is 'UNSIGNED-PAYLOAD', \
     which this service does not accept: sign the SHA-256 of the request body.";

/// What a verified request proved: which access key signed it. Callers authorise on this and
/// nothing else from the `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id named in the credential scope, whose secret produced the signature.
    pub access_key_id: String,
    /// The region of the credential scope: the region the admin call is for.
    pub region: String,
}

/// A key pair to sign with in [`sign`]. Its `Debug` output never shows the secret, so it can sit
/// in structures that get logged.
#[derive(Clone, Copy)]
pub struct SigningKey<'a> {
    /// The public half, sent in the credential scope.
    pub access_key_id: &'a str,
    /// The secret half, used only to derive the signing key.
    pub secret_access_key: &'a str,
}

impl fmt::Debug for SigningKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Verifies a request's SigV4 signature, so the caller knows which configured access key sent
/// it. `uri` is the path and query as received, `region` the region this server serves (the
/// credential scope must name it), `host` the public host name requests must be signed for
/// (`None`: any), `now` the server's clock and `lookup` maps an access key id to its secret
/// access key (`None` for an unknown key).
///
/// Checks run in this order, so a client always gets the error for its first problem: missing
/// `Authorization` → its syntax and signed-header list → the host → temporary credentials →
/// unknown key →
/// scope service and region → request date → scope date → clock skew → body hash and signature.
/// Error messages never contain the signature, the secret or anything derived from it.
/// `derived` keeps the signing keys derived so far (see [`DerivedKeys`]).
#[allow(clippy::too_many_arguments)]
pub fn verify<'k>(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    served: impl Fn(&str) -> bool,
    host: Option<&str>,
    now: SystemTime,
    lookup: impl Fn(&str) -> Option<&'k str>,
    derived: &DerivedKeys,
) -> Result<Verified, ApiError> {
    let auth = parse_authorization(authorization_header(headers)?)?;
    check_signed_headers(&auth.signed_headers, headers)?;
    if let Some(host) = host {
        check_host(headers, host)?;
    }
    if headers.contains_key(name::X_AMZ_SECURITY_TOKEN) {
        return Err(ApiError::UnrecognizedClient(
            TEMPORARY_CREDENTIALS.to_owned(),
        ));
    }
    let secret = lookup(auth.access_key_id)
        .ok_or_else(|| ApiError::UnrecognizedClient(UNKNOWN_KEY.to_owned()))?;
    if auth.scope.service != SERVICE {
        return Err(ApiError::InvalidSignature(WRONG_SERVICE.to_owned()));
    }
    if !served(auth.scope.region) {
        return Err(ApiError::InvalidSignature(WRONG_REGION.to_owned()));
    }
    let when = request_time(headers)?;
    if auth.scope.date != when.ymd() {
        return Err(ApiError::InvalidSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
             HTTP: '{}' != '{}', from '{}'.",
            auth.scope.date,
            when.ymd(),
            when.amz_date
        )));
    }
    check_skew(when.unix, now)?;
    let payload_hash = verified_payload_hash(headers, body)?;
    let creq = canonical_request(
        method.as_str(),
        uri.path(),
        uri.query().unwrap_or(""),
        headers,
        &auth.signed_headers,
        &payload_hash,
    );
    let key = derived.key(auth.access_key_id, secret, &auth.scope)?;
    hmac(
        &key,
        string_to_sign(&auth.scope, &when.amz_date, &creq).as_bytes(),
    )?
    .verify_slice(&auth.signature)
    .map_err(|_| ApiError::InvalidSignature(SIGNATURE_MISMATCH.to_owned()))?;
    Ok(Verified {
        access_key_id: auth.access_key_id.to_owned(),
        region: auth.scope.region.to_owned(),
    })
}

/// Signing keys derived from secret keys — four HMACs each — kept per access key, date and
/// region, as AWS's SDKs keep them on the signing side: a signed request then costs the two
/// hashes and the one HMAC that depend on it. Keys are secrets: never logged, never shown
/// (no `Debug`). Bounded: past [`DerivedKeys::CAPACITY`] entries (a day has one per key and
/// region) the map starts over.
#[derive(Default)]
pub struct DerivedKeys {
    keys: Mutex<Derived>,
}

/// (access key id, date, region) → signing key.
type DerivedKey = ((String, String, String), [u8; 32]);

#[derive(Default)]
struct Derived {
    /// The key used last: almost every request is signed with it, and it is found without
    /// building a lookup key or hashing one.
    last: Option<DerivedKey>,
    all: HashMap<(String, String, String), [u8; 32]>,
}

impl DerivedKeys {
    /// Entries kept at most.
    pub const CAPACITY: usize = 4096;

    /// The signing key of `secret` for this scope's date and region (the service is always
    /// this server's: checked before). `access_key_id` names the secret: one id, one secret.
    fn key(
        &self,
        access_key_id: &str,
        secret: &str,
        scope: &Scope<'_>,
    ) -> Result<[u8; 32], ApiError> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(((a, d, r), k)) = &keys.last {
            if a == access_key_id && d == scope.date && r == scope.region {
                return Ok(*k);
            }
        }
        let id = (
            access_key_id.to_owned(),
            scope.date.to_owned(),
            scope.region.to_owned(),
        );
        let key = match keys.all.get(&id) {
            Some(k) => *k,
            None => {
                let key = derive_key(secret, scope)?;
                if keys.all.len() >= Self::CAPACITY {
                    keys.all.clear();
                }
                keys.all.insert(id.clone(), key);
                key
            }
        };
        keys.last = Some((id, key));
        Ok(key)
    }
}

/// The region a request's `Authorization` header is scoped to, read without checking the
/// signature: what an unsigned-admin test environment uses to tell regions apart.
pub fn claimed_region(headers: &HeaderMap) -> Option<String> {
    let value = authorization_header(headers).ok()?;
    Some(parse_authorization(value).ok()?.scope.region.to_owned())
}

/// Produces the `Authorization` header value for a request, the way the AWS SDKs do, so tests
/// can build requests that [`verify`] must accept. Every header in `headers` (except
/// `authorization`) is signed, so set `host`, `x-amz-date` (or `date`), `x-amz-target` and the
/// rest first. The body hash is the `x-amz-content-sha256` header when present.
pub fn sign(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    key: &SigningKey<'_>,
    region: &str,
    service: &str,
) -> Result<String, ApiError> {
    let when = request_time(headers)?;
    let mut names: Vec<&str> = headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| *name != "authorization")
        .collect();
    names.sort_unstable();
    let payload_hash = match headers.get(name::X_AMZ_CONTENT_SHA256) {
        Some(value) => value
            .to_str()
            .map_err(|_| {
                ApiError::IncompleteSignature(
                    "The 'x-amz-content-sha256' header must be ASCII.".to_owned(),
                )
            })?
            .to_owned(),
        None => sha256_hex(body),
    };
    let creq = canonical_request(
        method.as_str(),
        uri.path(),
        uri.query().unwrap_or(""),
        headers,
        &names,
        &payload_hash,
    );
    let scope = Scope {
        date: when.ymd(),
        region,
        service,
    };
    let signature = hex(
        &scoped_mac(key.secret_access_key, &scope, &when.amz_date, &creq)?
            .finalize()
            .into_bytes(),
    );
    Ok(format!(
        "{ALGORITHM} Credential={}/{}/{region}/{service}/{TERMINATOR}, SignedHeaders={}, \
         Signature={signature}",
        key.access_key_id,
        scope.date,
        names.join(";")
    ))
}

// ---------------------------------------------------------------------------------------------
// The Authorization header.
// ---------------------------------------------------------------------------------------------

/// The credential scope: `<date>/<region>/<service>/aws4_request`.
struct Scope<'a> {
    date: &'a str,
    region: &'a str,
    service: &'a str,
}

/// A syntactically valid `Authorization` header. Deliberately without `Debug`: it holds the
/// signature.
struct Authorization<'a> {
    access_key_id: &'a str,
    scope: Scope<'a>,
    signed_headers: Vec<&'a str>,
    signature: [u8; 32],
}

fn incomplete(message: impl Into<String>) -> ApiError {
    ApiError::IncompleteSignature(message.into())
}

/// The one `Authorization` header, as text.
fn authorization_header(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or_else(|| {
        ApiError::MissingAuthenticationToken("Missing Authentication Token".to_owned())
    })?;
    if values.next().is_some() {
        return Err(incomplete(
            "The request must carry exactly one Authorization header.",
        ));
    }
    value
        .to_str()
        .map_err(|_| incomplete("The Authorization header must be ASCII."))
}

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` (components in any
/// order, separated by commas with optional spaces). Never echoes the header: it may carry a
/// signature, or a bearer secret of some other scheme.
fn parse_authorization(value: &str) -> Result<Authorization<'_>, ApiError> {
    let params = value
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or_else(|| {
            incomplete(format!(
                "Unsupported Authorization header: only '{ALGORITHM}' signatures in the form \
                 '{ALGORITHM} Credential=..., SignedHeaders=..., Signature=...' are accepted."
            ))
        })?;

    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for component in params.split(',') {
        let component = component.trim_matches(' ');
        let (name, value) = component.split_once('=').ok_or_else(|| {
            incomplete(
                "Authorization header components must have the form 'Name=value', separated \
                 by commas.",
            )
        })?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => {
                return Err(incomplete(
                    "Authorization header has an unrecognised component: only 'Credential', \
                     'SignedHeaders' and 'Signature' are allowed.",
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(incomplete(format!(
                "Authorization header has more than one '{name}' parameter."
            )));
        }
    }

    let mut missing = String::new();
    for (name, present) in [
        ("Credential", credential.is_some()),
        ("Signature", signature.is_some()),
        ("SignedHeaders", signed_headers.is_some()),
    ] {
        if !present {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(incomplete(missing.trim_end()));
    };

    let (access_key_id, scope) = parse_credential(credential)?;
    Ok(Authorization {
        access_key_id,
        scope,
        signed_headers: parse_signed_headers(signed_headers)?,
        signature: decode_signature(signature).ok_or_else(|| {
            incomplete("Authorization header's 'Signature' must be 64 hexadecimal characters.")
        })?,
    })
}

/// `AKID/YYYYMMDD/region/service/aws4_request`.
fn parse_credential(credential: &str) -> Result<(&str, Scope<'_>), ApiError> {
    let shape = || {
        incomplete(format!(
            "Authorization header's 'Credential' must have the form \
             '<AccessKeyId>/<YYYYMMDD>/<region>/<service>/{TERMINATOR}'."
        ))
    };
    let mut parts = credential.split('/');
    let (Some(akid), Some(date), Some(region), Some(service), Some(terminator), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(shape());
    };
    if [akid, date, region, service].iter().any(|p| p.is_empty()) {
        return Err(shape());
    }
    if terminator != TERMINATOR {
        return Err(incomplete(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}'."
        )));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(incomplete(
            "The date in the Credential scope must be 8 digits (YYYYMMDD).",
        ));
    }
    Ok((
        akid,
        Scope {
            date,
            region,
            service,
        },
    ))
}

/// `a;b;c`: lowercase header names, none repeated. (A set, not `Vec::contains`, so a header
/// listing many thousands of names costs linear time.)
fn parse_signed_headers(list: &str) -> Result<Vec<&str>, ApiError> {
    /// Up to this many names, a repeat is found by looking back: cheaper than hashing.
    const SHORT: usize = 16;
    let mut names: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for name in list.split(';') {
        if name.is_empty() || !name.bytes().all(is_lowercase_token_byte) {
            return Err(incomplete(
                "Authorization header's 'SignedHeaders' must be a ';'-separated list of \
                 lowercase header names.",
            ));
        }
        let repeated = if names.len() < SHORT {
            names.contains(&name)
        } else {
            if seen.is_empty() {
                seen.extend(names.iter().copied());
            }
            !seen.insert(name)
        };
        if repeated {
            return Err(incomplete(format!(
                "Authorization header's 'SignedHeaders' names '{name}' more than once."
            )));
        }
        names.push(name);
    }
    Ok(names)
}

/// The RFC 9110 token characters, without uppercase letters.
fn is_lowercase_token_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `host` and (when sent) `x-amz-target` must be signed, and every signed header sent: otherwise
/// the request could be redirected to another operation or host without breaking the signature.
fn check_signed_headers(signed: &[&str], headers: &HeaderMap) -> Result<(), ApiError> {
    let mut required = vec!["host"];
    if headers.contains_key(name::X_AMZ_TARGET) {
        required.push(X_AMZ_TARGET);
    }
    for name in required {
        if !signed.contains(&name) {
            return Err(incomplete(format!(
                "Authorization header's 'SignedHeaders' must include '{name}'."
            )));
        }
    }
    match signed
        .iter()
        .find(|name| signed_values(headers, name).iter().next().is_none())
    {
        Some(name) => Err(incomplete(format!(
            "Header '{name}' is listed in the Authorization header's 'SignedHeaders' but is not \
             present in the request."
        ))),
        None => Ok(()),
    }
}

/// The signed `Host` (signed: [`check_signed_headers`] ran first) must be the configured public
/// host, so a request signed for another deployment that shares the key cannot be replayed here.
fn check_host(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let mut values = headers.get_all(http::header::HOST).iter();
    let sent = match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok(),
        _ => None,
    };
    match sent {
        Some(sent) if sent.trim().eq_ignore_ascii_case(expected) => Ok(()),
        Some(sent) => Err(ApiError::InvalidSignature(format!(
            "The request is signed for host '{}', but this server accepts signed requests only \
             for host '{expected}': point the client's endpoint URL at that host.",
            sent.trim()
        ))),
        None => Err(ApiError::InvalidSignature(format!(
            "The request must carry one 'host' header, signed, naming '{expected}'."
        ))),
    }
}

fn decode_signature(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let (hi, lo) = (hex_value(*pair.first()?)?, hex_value(*pair.get(1)?)?);
        *byte = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Request time and clock skew.
// ---------------------------------------------------------------------------------------------

/// When the client says it signed the request.
struct RequestTime {
    /// Seconds since the Unix epoch.
    unix: i64,
    /// `YYYYMMDDTHHMMSSZ`, as it appears in the string to sign.
    amz_date: String,
}

impl RequestTime {
    fn ymd(&self) -> &str {
        self.amz_date.get(..8).unwrap_or("")
    }
}

type DateParser = fn(&[u8]) -> Option<PrimitiveDateTime>;

/// From `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`), else from `Date` (IMF-fixdate).
fn request_time(headers: &HeaderMap) -> Result<RequestTime, ApiError> {
    let amz = headers.get_all(name::X_AMZ_DATE);
    let (name, parse, values): (&str, DateParser, _) = if amz.iter().next().is_some() {
        (X_AMZ_DATE, parse_amz_date, amz)
    } else if headers.contains_key(http::header::DATE) {
        (
            "date",
            parse_imf_fixdate,
            headers.get_all(http::header::DATE),
        )
    } else {
        return Err(incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' \
                 header.",
        ));
    };
    let mut values = values.iter();
    let (parsed, sent) = match (values.next(), values.next()) {
        (Some(value), None) => (parse(value.as_bytes()), value.to_str().ok()),
        _ => (None, None),
    };
    let Some(parsed) = parsed else {
        return Err(incomplete(if name == X_AMZ_DATE {
            "The X-Amz-Date header must be one date in ISO-8601 basic format, \
             YYYYMMDD'T'HHMMSS'Z'."
        } else {
            "The Date header must be one date in IMF-fixdate format, e.g. \
             'Sun, 06 Nov 1994 08:49:37 GMT'."
        }));
    };
    let utc = parsed.assume_utc();
    // A parsed X-Amz-Date is already `YYYYMMDDTHHMMSSZ`, digit for digit.
    let amz_date = match sent {
        Some(text) if name == X_AMZ_DATE => text.to_owned(),
        _ => compact(utc),
    };
    Ok(RequestTime {
        unix: utc.unix_timestamp(),
        amz_date,
    })
}

/// Decimal digits only, as a number.
fn digits(bytes: Option<&[u8]>) -> Option<u32> {
    let bytes = bytes?;
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes.iter().try_fold(0u32, |n, b| {
        n.checked_mul(10)?.checked_add(u32::from(b - b'0'))
    })
}

fn date_time(year: u32, month: u32, day: u32, hms: [u32; 3]) -> Option<PrimitiveDateTime> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let [h, m, s] = hms.map(|n| u8::try_from(n).unwrap_or(u8::MAX));
    Some(PrimitiveDateTime::new(date, Time::from_hms(h, m, s).ok()?))
}

/// `20150830T123600Z`.
fn parse_amz_date(b: &[u8]) -> Option<PrimitiveDateTime> {
    if b.len() != 16 || b.get(8) != Some(&b'T') || b.get(15) != Some(&b'Z') {
        return None;
    }
    date_time(
        digits(b.get(0..4))?,
        digits(b.get(4..6))?,
        digits(b.get(6..8))?,
        [
            digits(b.get(9..11))?,
            digits(b.get(11..13))?,
            digits(b.get(13..15))?,
        ],
    )
}

/// `Sun, 30 Aug 2015 12:36:00 GMT` (RFC 9110 IMF-fixdate, the RFC 1123 form HTTP sends).
fn parse_imf_fixdate(b: &[u8]) -> Option<PrimitiveDateTime> {
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    if b.len() != 29
        || !DAYS.contains(&b.get(0..3)?)
        || b.get(3..5)? != b", "
        || b.get(7) != Some(&b' ')
        || b.get(11) != Some(&b' ')
        || b.get(16) != Some(&b' ')
        || b.get(19) != Some(&b':')
        || b.get(22) != Some(&b':')
        || b.get(25..29)? != b" GMT"
    {
        return None;
    }
    let month = MONTHS.iter().position(|m| Some(*m) == b.get(8..11))?;
    date_time(
        digits(b.get(12..16))?,
        u32::try_from(month + 1).ok()?,
        digits(b.get(5..7))?,
        [
            digits(b.get(17..19))?,
            digits(b.get(20..22))?,
            digits(b.get(23..25))?,
        ],
    )
}

/// `YYYYMMDDTHHMMSSZ`.
fn compact(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the epoch, or the bare number when out of range.
fn compact_unix(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs).map_or_else(|_| secs.to_string(), compact)
}

/// Whole seconds since the epoch (floored), saturating instead of overflowing.
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            let floor = if before.subsec_nanos() > 0 { 1 } else { 0 };
            0i64.saturating_sub(whole).saturating_sub(floor)
        }
    }
}

/// Refuses a request signed more than 15 minutes before or after `now`, limiting replays.
fn check_skew(request: i64, now: SystemTime) -> Result<(), ApiError> {
    let now = unix_seconds(now);
    let (min, max) = (
        now.saturating_sub(MAX_SKEW_SECS),
        now.saturating_add(MAX_SKEW_SECS),
    );
    if request < min {
        return Err(ApiError::InvalidSignature(format!(
            "Signature expired: {} is now earlier than {} ({} - 15 min.)",
            compact_unix(request),
            compact_unix(min),
            compact_unix(now)
        )));
    }
    if request > max {
        return Err(ApiError::InvalidSignature(format!(
            "Signature not yet current: {} is still later than {} ({} + 15 min.)",
            compact_unix(request),
            compact_unix(max),
            compact_unix(now)
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The core: canonical request → string to sign → signature.
// ---------------------------------------------------------------------------------------------

/// The payload hash to sign: the `x-amz-content-sha256` header when sent (it must be the real
/// hash of `body`; `UNSIGNED-PAYLOAD` is refused), else the hex SHA-256 of `body`.
fn verified_payload_hash(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let computed = sha256_hex(body);
    let mut values = headers.get_all(name::X_AMZ_CONTENT_SHA256).iter();
    let (value, extra) = (values.next(), values.next());
    let Some(value) = value else {
        return Ok(computed);
    };
    let mismatch = || ApiError::InvalidSignature(CONTENT_SHA256_MISMATCH.to_owned());
    let value = value.to_str().map_err(|_| mismatch())?;
    if extra.is_none() && value == UNSIGNED_PAYLOAD {
        return Err(ApiError::InvalidSignature(
            UNSIGNED_PAYLOAD_REFUSED.to_owned(),
        ));
    }
    if extra.is_some() || !value.eq_ignore_ascii_case(&computed) {
        return Err(mismatch());
    }
    Ok(value.to_owned())
}

/// The SigV4 canonical request. Bytes, not text: header values may carry obs-text.
fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    signed_headers: &[&str],
    payload_hash: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + path.len() + query.len());
    out.extend_from_slice(method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(query).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        for (i, value) in signed_values(headers, name).iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_trimmed(&mut out, value.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

/// A header value with surrounding whitespace removed and runs of spaces collapsed to one.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let mut after_space = false;
    for &b in value.trim_ascii() {
        if b != b' ' || !after_space {
            out.push(b);
        }
        after_space = b == b' ';
    }
}

/// The path with empty and `.`/`..` segments resolved, each segment then URI-encoded. The path
/// as received is already encoded, so this is the second encoding AWS specifies for every
/// service but S3 (`%` becomes `%25`).
fn canonical_uri(path: &str) -> String {
    if path == "/" {
        return path.to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/') {
        trailing_slash = true;
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &segments {
        out.push('/');
        push_encoded(&mut out, segment.as_bytes());
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    out
}

/// The query's parameters decoded (`+` is a space, as in forms and AWS's own signers),
/// re-encoded, sorted by name then value, joined with `&`.
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut encoded = (String::new(), String::new());
            push_encoded(&mut encoded.0, &form_decode(name));
            push_encoded(&mut encoded.1, &form_decode(value));
            encoded
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() * 2);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Percent-decoding with `+` as space; a `%` not followed by two hex digits stays literal.
fn form_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match (b, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) => hex_value(hi).zip(hex_value(lo)),
            _ => None,
        };
        match (b, escaped) {
            (_, Some((hi, lo))) => {
                out.push((hi << 4) | lo);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, all else `%XX` (uppercase).
fn push_encoded(out: &mut String, bytes: &[u8]) {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(UPPER[usize::from(b >> 4)]));
            out.push(char::from(UPPER[usize::from(b & 0x0f)]));
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(LOWER[usize::from(b >> 4)]));
        out.push(char::from(LOWER[usize::from(b & 0x0f)]));
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> Result<HmacSha256, ApiError> {
    // HMAC accepts keys of any length; the error arm is unreachable but must not panic.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key)
        .map_err(|e| ApiError::internal(format!("HMAC key: {e}")))?;
    mac.update(data);
    Ok(mac)
}

/// An HMAC keyed with the derived signing key (`AWS4`+secret → date → region → service →
/// `aws4_request`), fed the string to sign; finalise it for the signature, or compare it to one
/// in constant time with `verify_slice`.
fn scoped_mac(
    secret: &str,
    scope: &Scope<'_>,
    amz_date: &str,
    canonical_request: &[u8],
) -> Result<HmacSha256, ApiError> {
    hmac(
        &derive_key(secret, scope)?,
        string_to_sign(scope, amz_date, canonical_request).as_bytes(),
    )
}

/// The signing key: `AWS4`+secret → date → region → service → `aws4_request`.
fn derive_key(secret: &str, scope: &Scope<'_>) -> Result<[u8; 32], ApiError> {
    let k_secret = format!("AWS4{secret}");
    let mut key = hmac(k_secret.as_bytes(), scope.date.as_bytes())?
        .finalize()
        .into_bytes();
    for part in [scope.region, scope.service, TERMINATOR] {
        key = hmac(&key, part.as_bytes())?.finalize().into_bytes();
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&key);
    Ok(out)
}

/// The string to sign: the algorithm, the request time, the credential scope and the hex
/// SHA-256 of the canonical request, one per line.
fn string_to_sign(scope: &Scope<'_>, amz_date: &str, canonical_request: &[u8]) -> String {
    let mut out = String::with_capacity(160);
    for part in [
        ALGORITHM,
        "\n",
        amz_date,
        "\n",
        scope.date,
        "/",
        scope.region,
        "/",
        scope.service,
        "/",
        TERMINATOR,
        "\n",
    ] {
        out.push_str(part);
    }
    out.push_str(&sha256_hex(canonical_request));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use http::{HeaderName, HeaderValue};
    use std::time::Duration;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const REGION: &str = "us-east-1";
    const AMZ_DATE: &str = "20150830T123600Z";
    const TARGET: &str = "AWSCognitoIdentityService.ListIdentityPools";
    const BODY: &[u8] = br#"{"MaxResults":10}"#;

    // ----- AWS SigV4 test-suite vectors ------------------------------------------------------

    /// AWS's SigV4 test suite, as `tests/fixtures/sigv4/aws-signing-test-suite.json` holds it;
    /// the README beside it says where the data comes from.
    #[derive(serde::Deserialize)]
    struct Suite {
        context: Context,
        vectors: Vec<Vector>,
        double_encoded_paths: Vec<EncodedPath>,
    }

    /// What every vector is signed with.
    #[derive(serde::Deserialize)]
    struct Context {
        access_key_id: String,
        secret_access_key: String,
        region: String,
        service: String,
        amz_date: String,
    }

    /// One request of the suite and what signing it must produce.
    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        method: String,
        /// The path as the suite gives it (raw, unencoded in `get-utf8` and `get-space-*`).
        path: String,
        query: String,
        /// In request order, repeats kept.
        headers: Vec<(String, String)>,
        body: String,
        canonical_request: String,
        /// Only where the suite's string to sign is checked too.
        string_to_sign: Option<String>,
        signature: String,
    }

    /// A wire path, already encoded once, and its canonical (encoded again) form.
    #[derive(serde::Deserialize)]
    struct EncodedPath {
        name: String,
        path: String,
        canonical_uri: String,
    }

    /// How many requests the suite's fixture holds; fewer means some went missing.
    const SUITE_VECTORS: usize = 24;

    fn suite() -> Suite {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sigv4/aws-signing-test-suite.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn vector_headers(v: &Vector) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in &v.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    /// The credential scope every vector is signed for.
    fn suite_scope(context: &Context) -> Scope<'_> {
        Scope {
            date: context.amz_date.get(..8).unwrap(),
            region: &context.region,
            service: &context.service,
        }
    }

    #[test]
    fn test_suite_vectors() {
        let suite = suite();
        assert_eq!(suite.vectors.len(), SUITE_VECTORS);
        let ctx = &suite.context;
        let scope = suite_scope(ctx);
        for v in &suite.vectors {
            let headers = vector_headers(v);
            let mut signed: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
            signed.sort_unstable();
            let payload_hash = verified_payload_hash(&headers, v.body.as_bytes()).unwrap();
            let creq = canonical_request(
                &v.method,
                &v.path,
                &v.query,
                &headers,
                &signed,
                &payload_hash,
            );
            assert_eq!(
                String::from_utf8(creq.clone()).unwrap(),
                v.canonical_request,
                "{}",
                v.name
            );
            let mac = scoped_mac(&ctx.secret_access_key, &scope, &ctx.amz_date, &creq).unwrap();
            assert_eq!(hex(&mac.finalize().into_bytes()), v.signature, "{}", v.name);

            // `sign` must agree wherever the suite's path is a valid wire path.
            let target = if v.query.is_empty() {
                v.path.clone()
            } else {
                format!("{}?{}", v.path, v.query)
            };
            if let Ok(uri) = target.parse::<Uri>() {
                let method = Method::from_bytes(v.method.as_bytes()).unwrap();
                let key = SigningKey {
                    access_key_id: &ctx.access_key_id,
                    secret_access_key: &ctx.secret_access_key,
                };
                let auth = sign(
                    &method,
                    &uri,
                    &headers,
                    v.body.as_bytes(),
                    &key,
                    &ctx.region,
                    &ctx.service,
                )
                .unwrap();
                assert_eq!(
                    auth,
                    format!(
                        "AWS4-HMAC-SHA256 Credential={}/{}/{}/{}/aws4_request, \
                         SignedHeaders={}, Signature={}",
                        ctx.access_key_id,
                        scope.date,
                        ctx.region,
                        ctx.service,
                        signed.join(";"),
                        v.signature
                    ),
                    "{}",
                    v.name
                );
            }
        }
    }

    #[test]
    fn test_suite_string_to_sign() {
        let suite = suite();
        let ctx = &suite.context;
        let checked: Vec<&Vector> = suite
            .vectors
            .iter()
            .filter(|v| v.string_to_sign.is_some())
            .collect();
        assert!(checked.iter().any(|v| v.name == "post-vanilla"));
        for v in checked {
            let expected = v.string_to_sign.as_deref().unwrap();
            // header-string-to-sign.txt ends with the hash of the canonical request.
            assert_eq!(
                expected.lines().last(),
                Some(sha256_hex(v.canonical_request.as_bytes()).as_str()),
                "{}",
                v.name
            );
            assert_eq!(
                string_to_sign(
                    &suite_scope(ctx),
                    &ctx.amz_date,
                    v.canonical_request.as_bytes()
                ),
                expected,
                "{}",
                v.name
            );
        }
    }

    #[test]
    fn paths_are_encoded_twice_like_aws_does_for_non_s3_services() {
        // double-url-encode and double-encode-path of the same suite: the wire path is already
        // encoded, so its `%` is encoded again.
        let suite = suite();
        assert_eq!(suite.double_encoded_paths.len(), 2);
        for p in &suite.double_encoded_paths {
            assert_eq!(canonical_uri(&p.path), p.canonical_uri, "{}", p.name);
        }
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a/b/."), "/a/b/");
        assert_eq!(canonical_uri("/a/b/.."), "/a/");
        assert_eq!(canonical_uri("/../../a"), "/a");
        assert_eq!(canonical_uri("/%2F/x"), "/%252F/x");
    }

    #[test]
    fn query_canonicalisation() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(canonical_query("flag&x="), "flag=&x=");
        assert_eq!(canonical_query("a=b+c%2b%7e%zz"), "a=b%20c%2B~%25zz");
        assert_eq!(canonical_query("&&a=1&"), "a=1");
    }

    #[test]
    fn header_values_are_trimmed_and_spaces_collapsed() {
        let mut out = Vec::new();
        push_trimmed(&mut out, b" \t a  b \t  c \t ");
        assert_eq!(out, b"a b \t c");
    }

    // ----- verify() --------------------------------------------------------------------------

    fn at(compact: &str) -> SystemTime {
        let secs = parse_amz_date(compact.as_bytes())
            .unwrap()
            .assume_utc()
            .unix_timestamp();
        UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap())
    }

    fn lookup(akid: &str) -> Option<&'static str> {
        (akid == AKID).then_some(SECRET)
    }

    struct Request {
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    impl Request {
        /// An unsigned ListIdentityPools call.
        fn new() -> Self {
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_static("localhost:8080"));
            headers.insert(
                "content-type",
                HeaderValue::from_static("application/x-amz-json-1.1"),
            );
            headers.insert(X_AMZ_TARGET, HeaderValue::from_static(TARGET));
            headers.insert(X_AMZ_DATE, HeaderValue::from_static(AMZ_DATE));
            Request {
                method: Method::POST,
                uri: Uri::from_static("/"),
                headers,
                body: BODY.to_vec(),
            }
        }

        fn signed_as(mut self, akid: &str, secret: &str, region: &str, service: &str) -> Self {
            let key = SigningKey {
                access_key_id: akid,
                secret_access_key: secret,
            };
            let auth = sign(
                &self.method,
                &self.uri,
                &self.headers,
                &self.body,
                &key,
                region,
                service,
            )
            .unwrap();
            self.set_auth(&auth);
            self
        }

        fn signed(self) -> Self {
            self.signed_as(AKID, SECRET, REGION, SERVICE)
        }

        fn set(&mut self, name: &'static str, value: &str) {
            self.headers
                .insert(name, HeaderValue::from_str(value).unwrap());
        }

        fn set_auth(&mut self, value: &str) {
            self.set("authorization", value);
        }

        fn auth(&self) -> String {
            self.headers["authorization"].to_str().unwrap().to_owned()
        }

        fn verify_at(&self, now: SystemTime) -> Result<Verified, ApiError> {
            self.verify_full(None, now)
        }

        fn verify_full(&self, host: Option<&str>, now: SystemTime) -> Result<Verified, ApiError> {
            self.verify_with(host, now, &DerivedKeys::default())
        }

        fn verify_with(
            &self,
            host: Option<&str>,
            now: SystemTime,
            derived: &DerivedKeys,
        ) -> Result<Verified, ApiError> {
            verify(
                &self.method,
                &self.uri,
                &self.headers,
                &self.body,
                |r| r == REGION,
                host,
                now,
                lookup,
                derived,
            )
        }

        fn verify_for_host(&self, host: &str) -> Result<Verified, ApiError> {
            self.verify_full(Some(host), at(AMZ_DATE))
        }

        fn verify(&self) -> Result<Verified, ApiError> {
            self.verify_at(at(AMZ_DATE))
        }
    }

    fn ok() -> Result<Verified, ApiError> {
        Ok(Verified {
            access_key_id: AKID.to_owned(),
            region: REGION.to_owned(),
        })
    }

    fn mismatch() -> Result<Verified, ApiError> {
        Err(ApiError::InvalidSignature(SIGNATURE_MISMATCH.to_owned()))
    }

    fn incomplete_mentioning(result: Result<Verified, ApiError>, needle: &str) {
        match result {
            Err(ApiError::IncompleteSignature(m)) => assert!(m.contains(needle), "{m}"),
            other => panic!("expected IncompleteSignature mentioning {needle:?}, got {other:?}"),
        }
    }

    #[test]
    fn signed_request_verifies() {
        assert_eq!(Request::new().signed().verify(), ok());
    }

    #[test]
    fn component_order_and_spacing_may_vary() {
        let mut req = Request::new().signed();
        let auth = req.auth();
        let params = auth.strip_prefix("AWS4-HMAC-SHA256 ").unwrap();
        let parts: Vec<&str> = params.split(", ").collect();
        for order in [[2, 1, 0], [1, 0, 2], [0, 2, 1]] {
            let reordered: Vec<&str> = order.iter().map(|&i| parts[i]).collect();
            req.set_auth(&format!("AWS4-HMAC-SHA256 {}", reordered.join(",")));
            assert_eq!(req.verify(), ok());
            req.set_auth(&format!("AWS4-HMAC-SHA256   {}", reordered.join(" ,  ")));
            assert_eq!(req.verify(), ok());
        }
    }

    #[test]
    fn unknown_key_is_unrecognized() {
        let req = Request::new().signed_as("AKIDOTHER", SECRET, REGION, SERVICE);
        assert_eq!(
            req.verify(),
            Err(ApiError::UnrecognizedClient(UNKNOWN_KEY.to_owned()))
        );
    }

    #[test]
    fn a_kept_signing_key_verifies_only_what_the_secret_signed() {
        let derived = DerivedKeys::default();
        let now = at(AMZ_DATE);
        let good = Request::new().signed();
        assert_eq!(good.verify_with(None, now, &derived), ok());
        assert_eq!(
            good.verify_with(None, now, &derived),
            ok(),
            "from the kept key"
        );
        let forged = Request::new().signed_as(AKID, "not-the-secret", REGION, SERVICE);
        assert_eq!(forged.verify_with(None, now, &derived), mismatch());
        let mut tampered = Request::new().signed();
        tampered.body = b"{\"IdentityPoolId\":\"other\"}".to_vec();
        assert_ne!(tampered.verify_with(None, now, &derived), ok());
    }

    #[test]
    fn wrong_secret_is_a_mismatch() {
        let req = Request::new().signed_as(AKID, "not-the-secret", REGION, SERVICE);
        assert_eq!(req.verify(), mismatch());
    }

    #[test]
    fn tampered_body_is_a_mismatch() {
        let mut req = Request::new().signed();
        req.body = br#"{"MaxResults":60}"#.to_vec();
        assert_eq!(req.verify(), mismatch());
    }

    #[test]
    fn changed_target_is_a_mismatch() {
        let mut req = Request::new().signed();
        req.set(X_AMZ_TARGET, "AWSCognitoIdentityService.DeleteIdentityPool");
        assert_eq!(req.verify(), mismatch());
    }

    #[test]
    fn changed_path_or_query_is_a_mismatch() {
        let mut req = Request::new().signed();
        req.uri = Uri::from_static("/other");
        assert_eq!(req.verify(), mismatch());
        req.uri = Uri::from_static("/?a=b");
        assert_eq!(req.verify(), mismatch());
        req.uri = Uri::from_static("/./");
        assert_eq!(req.verify(), ok());
    }

    #[test]
    fn unsigned_target_is_refused() {
        let mut req = Request::new();
        req.headers.remove(X_AMZ_TARGET);
        let mut req = req.signed();
        req.set(X_AMZ_TARGET, TARGET);
        incomplete_mentioning(req.verify(), "'x-amz-target'");
    }

    #[test]
    fn unsigned_host_is_refused() {
        let mut req = Request::new();
        req.headers.remove("host");
        let mut req = req.signed();
        req.set("host", "localhost:8080");
        incomplete_mentioning(req.verify(), "'host'");
    }

    /// Every header the SDKs sign that [`signed_values`] finds by its parsed name is signed
    /// with its own value: the request verifies, and another value of it does not.
    #[test]
    fn each_header_found_by_its_parsed_name_is_signed_with_its_own_value() {
        for name in [
            "content-length",
            "user-agent",
            "x-amz-user-agent",
            "amz-sdk-invocation-id",
            "amz-sdk-request",
            "x-custom",
        ] {
            let mut req = Request::new();
            req.set(name, "one");
            let mut req = req.signed();
            assert!(req.auth().contains(name), "{name} is signed");
            assert_eq!(req.verify(), ok(), "{name}");
            req.set(name, "two");
            assert_eq!(req.verify(), mismatch(), "{name} changed");
        }
        let mut req = Request::new();
        req.set(X_AMZ_CONTENT_SHA256, &sha256_hex(BODY));
        let mut req = req.signed();
        assert_eq!(req.verify(), ok(), "x-amz-content-sha256");
        req.set(X_AMZ_TARGET, "AWSCognitoIdentityService.DeleteIdentityPool");
        assert_eq!(req.verify(), mismatch(), "x-amz-target changed");
    }

    #[test]
    fn signed_header_missing_from_request_is_refused() {
        let mut req = Request::new();
        req.set("x-custom", "1");
        let mut req = req.signed();
        req.headers.remove("x-custom");
        incomplete_mentioning(req.verify(), "'x-custom'");
    }

    #[test]
    fn wrong_service_is_refused() {
        let req = Request::new().signed_as(AKID, SECRET, REGION, "sts");
        assert_eq!(
            req.verify(),
            Err(ApiError::InvalidSignature(
                "Credential should be scoped to correct service: 'cognito-identity'.".to_owned()
            ))
        );
    }

    #[test]
    fn wrong_region_is_refused() {
        let req = Request::new().signed_as(AKID, SECRET, "eu-west-1", SERVICE);
        assert_eq!(
            req.verify(),
            Err(ApiError::InvalidSignature(
                "Credential should be scoped to a valid region.".to_owned()
            ))
        );
    }

    #[test]
    fn scope_date_must_match_request_date() {
        let mut req = Request::new().signed();
        let auth = req.auth().replace("/20150830/", "/20150831/");
        req.set_auth(&auth);
        assert_eq!(
            req.verify(),
            Err(ApiError::InvalidSignature(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
                 from HTTP: '20150831' != '20150830', from '20150830T123600Z'."
                    .to_owned()
            ))
        );
    }

    #[test]
    fn clock_skew_is_limited_to_15_minutes() {
        let req = Request::new().signed();
        let signed_at = at(AMZ_DATE);
        let minutes = |m: u64| Duration::from_secs(60 * m);
        assert_eq!(
            req.verify_at(signed_at + minutes(16)),
            Err(ApiError::InvalidSignature(
                "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z \
                 (20150830T125200Z - 15 min.)"
                    .to_owned()
            ))
        );
        assert_eq!(
            req.verify_at(signed_at - minutes(16)),
            Err(ApiError::InvalidSignature(
                "Signature not yet current: 20150830T123600Z is still later than \
                 20150830T123500Z (20150830T122000Z + 15 min.)"
                    .to_owned()
            ))
        );
        for now in [
            signed_at + minutes(14),
            signed_at - minutes(14),
            signed_at + minutes(15),
            signed_at - minutes(15),
            signed_at + minutes(15) + Duration::from_millis(999),
        ] {
            assert_eq!(req.verify_at(now), ok());
        }
        assert!(req
            .verify_at(signed_at + minutes(15) + Duration::from_secs(1))
            .is_err());
    }

    #[test]
    fn extreme_clocks_do_not_panic() {
        let req = Request::new().signed();
        let far = Duration::from_secs(1 << 40);
        for now in [
            UNIX_EPOCH,
            UNIX_EPOCH - Duration::from_nanos(1),
            UNIX_EPOCH.checked_sub(far).unwrap(),
            UNIX_EPOCH.checked_add(far).unwrap(),
        ] {
            assert!(matches!(
                req.verify_at(now),
                Err(ApiError::InvalidSignature(_))
            ));
        }
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_millis(1)), -1);
        assert_eq!(compact_unix(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn temporary_credentials_are_refused() {
        let mut req = Request::new();
        req.set("x-amz-security-token", "FwoGZXIvYXdzE...");
        let req = req.signed();
        assert_eq!(
            req.verify(),
            Err(ApiError::UnrecognizedClient(
                TEMPORARY_CREDENTIALS.to_owned()
            ))
        );
    }

    #[test]
    fn missing_authorization_is_missing_token() {
        assert_eq!(
            Request::new().verify(),
            Err(ApiError::MissingAuthenticationToken(
                "Missing Authentication Token".to_owned()
            ))
        );
    }

    #[test]
    fn content_sha256_must_match_the_body() {
        let mut req = Request::new();
        req.set(X_AMZ_CONTENT_SHA256, &sha256_hex(b"something else"));
        let req = req.signed();
        assert_eq!(
            req.verify(),
            Err(ApiError::InvalidSignature(
                CONTENT_SHA256_MISMATCH.to_owned()
            ))
        );

        let mut req = Request::new();
        req.set(X_AMZ_CONTENT_SHA256, &sha256_hex(BODY));
        assert_eq!(req.signed().verify(), ok());
    }

    #[test]
    fn unsigned_payload_is_refused_so_the_body_is_always_signed() {
        let refused = || {
            Err(ApiError::InvalidSignature(
                UNSIGNED_PAYLOAD_REFUSED.to_owned(),
            ))
        };
        let mut req = Request::new();
        req.set(X_AMZ_CONTENT_SHA256, UNSIGNED_PAYLOAD);
        let mut req = req.signed();
        assert_eq!(req.verify(), refused());
        req.body = b"anything".to_vec();
        assert_eq!(req.verify(), refused());
        // Not a loophole either: other spellings are just a wrong hash.
        for other in ["unsigned-payload", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"] {
            let mut req = Request::new();
            req.set(X_AMZ_CONTENT_SHA256, other);
            assert_eq!(
                req.signed().verify(),
                Err(ApiError::InvalidSignature(
                    CONTENT_SHA256_MISMATCH.to_owned()
                ))
            );
        }
    }

    #[test]
    fn a_configured_host_must_be_the_signed_host() {
        let req = Request::new().signed();
        assert_eq!(req.verify_for_host("localhost:8080"), ok());
        assert_eq!(req.verify_for_host("LocalHost:8080"), ok());
        match req.verify_for_host("identity.example.com") {
            Err(ApiError::InvalidSignature(m)) => {
                assert!(m.contains("'localhost:8080'"), "{m}");
                assert!(m.contains("'identity.example.com'"), "{m}");
            }
            other => panic!("expected InvalidSignature, got {other:?}"),
        }
        // The port is part of the host: another deployment on the same name is another host.
        assert!(matches!(
            req.verify_for_host("localhost"),
            Err(ApiError::InvalidSignature(_))
        ));
        // Re-signing for the configured host is the only way in.
        let mut req = Request::new();
        req.set("host", "identity.example.com");
        assert_eq!(req.signed().verify_for_host("identity.example.com"), ok());
        // An unsigned host is refused before the host is even compared.
        let mut req = Request::new();
        req.headers.remove("host");
        let mut req = req.signed();
        req.set("host", "identity.example.com");
        incomplete_mentioning(req.verify_for_host("identity.example.com"), "'host'");
        // Two Host headers are never one signed host.
        let mut req = Request::new().signed();
        req.headers
            .append("host", HeaderValue::from_static("localhost:8080"));
        assert!(req.verify_for_host("localhost:8080").is_err());
    }

    #[test]
    fn date_header_works_instead_of_x_amz_date() {
        let mut req = Request::new();
        req.headers.remove(X_AMZ_DATE);
        req.set("date", "Sun, 30 Aug 2015 12:36:00 GMT");
        let mut req = req.signed();
        assert!(req
            .auth()
            .contains("SignedHeaders=content-type;date;host;x-amz-target,"));
        assert_eq!(req.verify(), ok());
        req.set("date", "Sun, 30 Aug 2015 12:36:01 GMT");
        assert_eq!(req.verify(), mismatch());
    }

    #[test]
    fn date_parsing() {
        let fixdate = parse_imf_fixdate(b"Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(compact(fixdate.assume_utc()), "19941106T084937Z");
        for bad in [
            &b"Sun, 06 Nov 1994 08:49:37 UTC"[..],
            b"Sun, 6 Nov 1994 08:49:37 GMT",
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
            b"Xyz, 06 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nox 1994 08:49:37 GMT",
            b"Sun, 31 Nov 1994 08:49:37 GMT",
            b"Sun, 06 Nov 1994 24:49:37 GMT",
            b"Sun, 06 Nov 1994 08:49:37 GMT ",
            b"Sun, \xff\xfe Nov 1994 08:49:37 GMT",
            b"",
        ] {
            assert!(parse_imf_fixdate(bad).is_none(), "{bad:?}");
        }
        for bad in [
            &b"20150830T123600"[..],
            b"20150830T123600z",
            b"2015-08-30T12:36:00Z",
            b"20150230T123600Z",
            b"20150830T126000Z",
            b"2015083aT123600Z",
            b"+0150830T123600Z",
            b"20150830 123600Z",
            b"",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn bad_dates_are_incomplete() {
        let mut req = Request::new().signed();
        req.set(X_AMZ_DATE, "2015-08-30T12:36:00Z");
        incomplete_mentioning(req.verify(), "X-Amz-Date");

        // Neither date header (and x-amz-date not signed, so that is not what fails).
        let unsigned_date = req.auth().replace(";x-amz-date;", ";");
        req.set_auth(&unsigned_date);
        req.headers.remove(X_AMZ_DATE);
        incomplete_mentioning(req.verify(), "'X-Amz-Date' or a 'Date'");

        req.set("date", "yesterday");
        incomplete_mentioning(req.verify(), "Date header");

        let mut req = Request::new().signed();
        req.headers
            .append(X_AMZ_DATE, HeaderValue::from_static(AMZ_DATE));
        incomplete_mentioning(req.verify(), "X-Amz-Date");
    }

    #[test]
    fn malformed_authorization_headers_are_incomplete() {
        let good = Request::new().signed().auth();
        let signature = good.rsplit("Signature=").next().unwrap().to_owned();
        let credential = format!("Credential={AKID}/20150830/{REGION}/{SERVICE}/aws4_request");
        let signed_headers = "SignedHeaders=content-type;host;x-amz-date;x-amz-target";
        let sig = format!("Signature={signature}");
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "AWS4-HMAC-SHA256"),
            ("AWS4-HMAC-SHA256".into(), "AWS4-HMAC-SHA256"),
            (
                format!("AWS4-HMAC-SHA1 {credential}, {signed_headers}, {sig}"),
                "AWS4-HMAC-SHA256",
            ),
            (
                format!("AWS4-HMAC-SHA256{credential}, {signed_headers}, {sig}"),
                "AWS4-HMAC-SHA256",
            ),
            (format!("Bearer {signature}"), "AWS4-HMAC-SHA256"),
            (
                format!("AWS4-HMAC-SHA256 {signed_headers}, {sig}"),
                "requires 'Credential'",
            ),
            (
                format!("AWS4-HMAC-SHA256 {credential}, {sig}"),
                "requires 'SignedHeaders'",
            ),
            (
                format!("AWS4-HMAC-SHA256 {credential}, {signed_headers}"),
                "requires 'Signature'",
            ),
            (
                format!("AWS4-HMAC-SHA256 {credential}, {signed_headers}, {sig},"),
                "'Name=value'",
            ),
            (
                format!("AWS4-HMAC-SHA256 {credential}, {signed_headers}, {sig}, Extra=1"),
                "unrecognised",
            ),
            (
                format!("AWS4-HMAC-SHA256 {credential}, {credential}, {signed_headers}, {sig}"),
                "more than one 'Credential'",
            ),
            (
                format!("AWS4-HMAC-SHA256 credential=x, {signed_headers}, {sig}"),
                "unrecognised",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential={AKID}/20150830/{REGION}/{SERVICE}, \
                     {signed_headers}, {sig}"
                ),
                "'Credential' must have the form",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential={AKID}/20150830/{REGION}/{SERVICE}/aws4_request/x, \
                     {signed_headers}, {sig}"
                ),
                "'Credential' must have the form",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential=/20150830/{REGION}/{SERVICE}/aws4_request, \
                     {signed_headers}, {sig}"
                ),
                "'Credential' must have the form",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential={AKID}/20150830/{REGION}/{SERVICE}/aws5_request, \
                     {signed_headers}, {sig}"
                ),
                "terminator",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 Credential={AKID}/2015-08-30/{REGION}/{SERVICE}/aws4_request, \
                     {signed_headers}, {sig}"
                ),
                "8 digits",
            ),
            (
                format!("AWS4-HMAC-SHA256 {credential}, SignedHeaders=, {sig}"),
                "lowercase header names",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 {credential}, SignedHeaders=Host;x-amz-date;x-amz-target, \
                     {sig}"
                ),
                "lowercase header names",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 {credential}, SignedHeaders=host;;x-amz-target, {sig}"
                ),
                "lowercase header names",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 {credential}, SignedHeaders=host;host;x-amz-target, {sig}"
                ),
                "more than once",
            ),
            (
                format!("AWS4-HMAC-SHA256 {credential}, {signed_headers}, Signature=abc"),
                "64 hexadecimal",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 {credential}, {signed_headers}, Signature={}",
                    "g".repeat(64)
                ),
                "64 hexadecimal",
            ),
            (
                format!(
                    "AWS4-HMAC-SHA256 {credential}, {signed_headers}, Signature={}é",
                    &signature[..62]
                ),
                "ASCII",
            ),
        ];
        let mut req = Request::new();
        for (auth, needle) in cases {
            match HeaderValue::from_str(&auth) {
                Ok(value) => {
                    req.headers.insert("authorization", value);
                }
                Err(_) => {
                    req.headers.insert(
                        "authorization",
                        HeaderValue::from_bytes(auth.as_bytes()).unwrap(),
                    );
                }
            }
            let result = req.verify();
            if let Err(e) = &result {
                assert!(!e.message().contains(&signature), "{auth}: {e}");
                assert!(!e.message().contains(SECRET), "{auth}: {e}");
            }
            incomplete_mentioning(result, needle);
        }
    }

    #[test]
    fn non_ascii_and_repeated_authorization_headers_are_incomplete() {
        let mut req = Request::new().signed();
        let good = req.auth();
        req.headers.insert(
            "authorization",
            HeaderValue::from_bytes(b"AWS4-HMAC-SHA256 \xff\xfe").unwrap(),
        );
        incomplete_mentioning(req.verify(), "ASCII");
        req.set_auth(&good);
        req.headers
            .append("authorization", HeaderValue::from_str(&good).unwrap());
        incomplete_mentioning(req.verify(), "exactly one");
    }

    #[test]
    fn obs_text_header_values_are_signed_as_bytes() {
        let mut req = Request::new();
        req.headers.insert(
            "x-custom",
            HeaderValue::from_bytes(b"caf\xe9  \xff").unwrap(),
        );
        let mut req = req.signed();
        assert_eq!(req.verify(), ok());
        req.headers.insert(
            "x-custom",
            HeaderValue::from_bytes(b"caf\xe9 \xfe").unwrap(),
        );
        assert_eq!(req.verify(), mismatch());
    }

    #[test]
    fn mutated_authorization_never_panics_and_never_verifies() {
        let good = Request::new().signed().auth();
        let mut req = Request::new();
        let bytes = good.as_bytes();
        let replacements = [b' ', b',', b'=', b'/', b';', b'0', b'A', b'\t', 0x80, 0xff];
        for i in 0..=bytes.len() {
            // Truncated.
            if let Ok(v) = HeaderValue::from_bytes(&bytes[..i]) {
                req.headers.insert("authorization", v);
                if i < bytes.len() {
                    assert!(req.verify().is_err());
                }
            }
            // One byte replaced.
            for r in replacements {
                if i < bytes.len() && bytes[i] != r {
                    let mut mutated = bytes.to_vec();
                    mutated[i] = r;
                    if let Ok(v) = HeaderValue::from_bytes(&mutated) {
                        req.headers.insert("authorization", v);
                        let _ = req.verify();
                    }
                }
            }
        }
        // Huge header.
        let huge = format!("{good}{}", ",".repeat(1 << 20));
        req.set_auth(&huge);
        assert!(req.verify().is_err());
    }

    #[test]
    fn long_signed_header_lists_are_cheap() {
        let mut req = Request::new().signed();
        let names: Vec<String> = (0..60_000).map(|i| format!("x{i}")).collect();
        let auth = req.auth().replace(
            "SignedHeaders=",
            &format!("SignedHeaders={};", names.join(";")),
        );
        req.set_auth(&auth);
        let started = std::time::Instant::now();
        incomplete_mentioning(req.verify(), "'x0'");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let key = SigningKey {
            access_key_id: AKID,
            secret_access_key: SECRET,
        };
        let debug = format!("{key:?}");
        assert!(debug.contains(AKID) && !debug.contains(SECRET), "{debug}");
    }

    // ----- Cross-check with AWS's own signer -------------------------------------------------

    /// The request as the AWS SDK for Rust signed it, captured just before it would be sent.
    #[derive(Debug)]
    struct Sent {
        method: String,
        uri: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    #[derive(Debug, Default)]
    struct Captured {
        request: std::sync::Mutex<Option<Sent>>,
    }

    #[derive(Debug)]
    struct Capture(std::sync::Arc<Captured>);

    impl aws_sdk_cognitoidentity::config::Intercept for Capture {
        fn name(&self) -> &'static str {
            "Capture"
        }

        fn read_before_transmit(
            &self,
            context: &aws_sdk_cognitoidentity::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
            _: &aws_sdk_cognitoidentity::config::RuntimeComponents,
            _: &mut aws_sdk_cognitoidentity::config::ConfigBag,
        ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let request = context.request();
            let headers = request
                .headers()
                .iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect();
            let body = request.body().bytes().unwrap_or_default().to_vec();
            *self.0.request.lock().unwrap() = Some(Sent {
                method: request.method().to_owned(),
                uri: request.uri().to_owned(),
                headers,
                body,
            });
            // Stop here: nothing is sent.
            Err("captured".into())
        }
    }

    #[test]
    fn requests_signed_by_the_aws_sdk_verify() {
        use aws_sdk_cognitoidentity::config::{BehaviorVersion, Credentials, Region};

        let captured = std::sync::Arc::new(Captured::default());
        let config = aws_sdk_cognitoidentity::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(AKID, SECRET, None, None, "test"))
            .endpoint_url("http://localhost:9")
            .interceptor(Capture(captured.clone()))
            .build();
        let client = aws_sdk_cognitoidentity::Client::from_conf(config);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(client.list_identity_pools().max_results(10).send());
        assert!(result.is_err(), "the interceptor stops the request");

        let sent = captured.request.lock().unwrap().take().unwrap();
        let uri: Uri = sent.uri.parse().unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in &sent.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        // The HTTP client adds Host when it sends; the signer signed it from the endpoint.
        if !headers.contains_key("host") {
            let authority = uri.authority().unwrap().as_str();
            headers.insert("host", HeaderValue::from_str(authority).unwrap());
        }
        assert_eq!(headers[X_AMZ_TARGET], TARGET);
        let path: Uri = uri.path_and_query().unwrap().as_str().parse().unwrap();
        let method = Method::from_bytes(sent.method.as_bytes()).unwrap();
        let check = |headers: &HeaderMap, body: &[u8]| {
            verify(
                &method,
                &path,
                headers,
                body,
                |r| r == REGION,
                None,
                SystemTime::now(),
                lookup,
                &DerivedKeys::default(),
            )
        };
        assert_eq!(check(&headers, &sent.body), ok(), "{sent:?}");
        assert_eq!(check(&headers, b"{}"), mismatch());
    }
}
