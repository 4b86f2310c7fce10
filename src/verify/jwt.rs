//! The one JWT verifier, shared by this server's own tokens ([`crate::tokens`]) and provider
//! tokens ([`super`]): taking a compact JWS apart, the algorithm policy, and the time rules
//! with the clock-skew leeway.
//!
//! It knows nothing of keys or issuers: a caller checks the signature over [`Jwt::signed`]
//! with its own key (its own RSA key, or a provider's JWKS, [`super::keys`]) and applies its
//! own issuer and audience rules, and turns a refusal into its own AWS message.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// Clock-skew grace on `exp` and `nbf`, as AWS documents for OIDC providers (5 minutes); the
/// same for our own tokens. The boundaries, in whole epoch seconds:
/// - expired when `now >= exp + LEEWAY_SECS`: `exp` is the time on or after which the token
///   must not be accepted (RFC 7519 §4.1.4), moved later by the leeway, so the last second a
///   token is accepted is `exp + LEEWAY_SECS - 1`;
/// - not yet valid when `now < nbf - LEEWAY_SECS`: `nbf` is the time before which it must not
///   be accepted (§4.1.5), moved earlier by the leeway, so the first second it is accepted is
///   `nbf - LEEWAY_SECS`.
pub const LEEWAY_SECS: i64 = 300;

/// AWS's text for a token that cannot be verified: malformed, an algorithm outside the
/// policy, no key for it, a bad signature, an `exp` or `nbf` that is not a number.
pub const MSG_COULD_NOT_VERIFY: &str = "Invalid login token. Couldn't verify signed token.";
/// AWS's text for a token of another issuer.
pub const MSG_WRONG_ISSUER: &str = "Invalid login token. Issuer doesn't match providerName";
/// AWS's text for a token whose `nbf` is ahead.
pub const MSG_NOT_YET_VALID: &str = "Invalid login token. Token is not yet valid.";

/// AWS's text for a token whose `exp` is past: the time now and the `exp` it carries.
pub fn expired_message(now_secs: i64, exp: impl fmt::Display) -> String {
    format!("Invalid login token. Token expired: {now_secs} >= {exp}")
}

/// The signature algorithms accepted. Everything else — `none`, the HMAC family (the public
/// key must never double as a shared secret), EdDSA, unknown names — is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
}

impl Alg {
    /// The accepted algorithm named by a JOSE header's `alg`, if it is one.
    pub fn parse(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
        }
    }
}

/// A JWT taken apart but not yet trusted.
#[derive(Debug)]
pub struct Jwt<'t> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    pub signed: &'t [u8],
    pub signature: Vec<u8>,
    pub claims: Map<String, Value>,
}

/// Splits and decodes a compact JWS: three base64url parts, a JSON object header with an
/// accepted `alg`, no `crit`, a string `kid` if any, a JSON object payload. Anything else is
/// `None`, which every caller answers with "Couldn't verify signed token.".
pub fn parse(token: &str) -> Option<Jwt<'_>> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || h.is_empty() || p.is_empty() || s.is_empty() {
        return None;
    }
    let header = json_object(h)?;
    let alg = Alg::parse(header.get("alg")?.as_str()?)?;
    // A header that asks for processing we do not do ("crit") cannot be honoured.
    if header.contains_key("crit") {
        return None;
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return None,
    };
    let claims = json_object(p)?;
    let signature = b64(s)?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    Some(Jwt {
        alg,
        kid,
        signed,
        signature,
        claims,
    })
}

/// A base64url part that decodes to a JSON object.
fn json_object(part: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&b64(part)?).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// base64url without padding, the only form a compact JWS has (RFC 7515 §2). Padding is
/// refused rather than stripped: otherwise one signature would have several spellings.
fn b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// Why a token's times refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRefusal {
    /// There is no `exp`.
    NoExpiry,
    /// `exp` or `nbf` is not a number.
    Malformed,
    /// `exp` plus the leeway is past.
    Expired { now: i64, exp: i64 },
    /// `nbf` minus the leeway is ahead.
    NotYetValid,
}

/// A numeric date claim as whole seconds (a fraction is dropped); present but not a number is
/// malformed.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, TimeRefusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match (v.as_i64(), v.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.is_finite() => Ok(Some(f.floor() as i64)),
            _ => Err(TimeRefusal::Malformed),
        },
    }
}

/// `exp` is required and `nbf` optional; `now` (epoch seconds) must lie within them, each
/// widened by [`LEEWAY_SECS`] (see there for the exact boundaries).
pub fn check_times(claims: &Map<String, Value>, now: i64) -> Result<(), TimeRefusal> {
    let exp = numeric_date(claims, "exp")?.ok_or(TimeRefusal::NoExpiry)?;
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(TimeRefusal::Expired { now, exp });
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if now < nbf.saturating_sub(LEEWAY_SECS) {
            return Err(TimeRefusal::NotYetValid);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn enc(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn the_algorithm_policy_refuses_none_hmac_and_unknown_names() {
        for ok in [
            "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
        ] {
            assert_eq!(Alg::parse(ok).unwrap().name(), ok);
        }
        for bad in [
            "none", "None", "HS256", "HS384", "HS512", "EdDSA", "ES512", "rs256", "",
        ] {
            assert!(Alg::parse(bad).is_none(), "{bad} accepted");
        }
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        let h = enc(&json!({"alg": "RS256", "kid": "k"}));
        let p = enc(&json!({"sub": "u"}));
        assert!(parse(&format!("{h}.{p}.c2ln")).is_some());
        for bad in [
            String::new(),
            "abc".to_string(),
            format!("{h}.{p}"),
            format!("{h}.{p}."),
            format!("{h}.{p}.c2ln.extra"),
            format!("{h}.!!!.c2ln"),
            format!("{h}=.{p}.c2ln"),
            format!("{h}.{p}.c2ln="),
            format!("{h}.{p}.c2ln+/"),
            format!("{}.{p}.c2ln", enc(&json!({"alg": "none"}))),
            format!("{}.{p}.c2ln", enc(&json!({"alg": "HS256"}))),
            format!("{}.{p}.c2ln", enc(&json!({"typ": "JWT"}))),
            format!("{}.{p}.c2ln", enc(&json!({"alg": "RS256", "kid": 7}))),
            format!("{}.{p}.c2ln", enc(&json!({"alg": "RS256", "crit": ["x"]}))),
            format!("{h}.{}.c2ln", enc(&json!(["not", "an", "object"]))),
            format!("{h}.{}.c2ln", URL_SAFE_NO_PAD.encode(b"not json")),
        ] {
            assert!(parse(&bad).is_none(), "{bad} parsed");
        }
    }

    #[test]
    fn the_signed_part_is_header_dot_payload() {
        let h = enc(&json!({"alg": "ES256"}));
        let p = enc(&json!({"sub": "u"}));
        let token = format!("{h}.{p}.c2ln");
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.signed, format!("{h}.{p}").as_bytes());
        assert_eq!(parsed.signature, b"sig");
        assert_eq!(parsed.kid, None);
        assert_eq!(parsed.alg, Alg::ES256);
    }

    #[test]
    fn expiry_refuses_from_exp_plus_the_leeway_on() {
        let exp = 1_700_000_000;
        let at = |now: i64| check_times(&obj(json!({"exp": exp})), now);
        assert_eq!(at(exp + LEEWAY_SECS - 1), Ok(()));
        assert_eq!(
            at(exp + LEEWAY_SECS),
            Err(TimeRefusal::Expired {
                now: exp + LEEWAY_SECS,
                exp
            })
        );
        assert_eq!(at(exp - 1_000), Ok(()));
        // A fraction of a second is dropped: the token counts as expiring at the whole second.
        let fraction = obj(json!({"exp": exp as f64 + 0.5}));
        assert_eq!(check_times(&fraction, exp + LEEWAY_SECS - 1), Ok(()));
        assert!(check_times(&fraction, exp + LEEWAY_SECS).is_err());
        // Far-off dates do not overflow.
        assert_eq!(check_times(&obj(json!({"exp": i64::MAX})), exp), Ok(()));
    }

    #[test]
    fn not_before_accepts_from_nbf_minus_the_leeway_on() {
        let nbf = 1_700_000_000;
        let at = |now: i64| check_times(&obj(json!({"exp": nbf + 3_600, "nbf": nbf})), now);
        assert_eq!(at(nbf - LEEWAY_SECS - 1), Err(TimeRefusal::NotYetValid));
        assert_eq!(at(nbf - LEEWAY_SECS), Ok(()));
        assert_eq!(at(nbf), Ok(()));
        assert_eq!(
            check_times(&obj(json!({"exp": nbf + 3_600, "nbf": i64::MIN})), nbf),
            Ok(())
        );
    }

    #[test]
    fn times_must_be_numbers_and_exp_is_required() {
        let now = 1_700_000_000;
        assert_eq!(
            check_times(&obj(json!({})), now),
            Err(TimeRefusal::NoExpiry)
        );
        assert_eq!(
            check_times(&obj(json!({"exp": null})), now),
            Err(TimeRefusal::NoExpiry)
        );
        for bad in [json!({"exp": "soon"}), json!({"exp": now + 60, "nbf": [1]})] {
            assert_eq!(check_times(&obj(bad), now), Err(TimeRefusal::Malformed));
        }
    }
}
