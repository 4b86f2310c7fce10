//! The pure parts of checking a provider JWT: splitting and decoding it, the algorithm policy,
//! and the claim rules with AWS's exact messages. The keys a signature is checked with are
//! [`super::keys`]'s.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::{Audiences, Refusal};

/// Clock-skew grace on `exp` and `nbf`, as AWS documents for OIDC providers (5 minutes).
pub const LEEWAY_SECS: i64 = 300;

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
pub struct Parsed<'t> {
    pub alg: Alg,
    pub kid: Option<String>,
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    pub signed: &'t [u8],
    pub signature: Vec<u8>,
    pub claims: Map<String, Value>,
}

/// Splits and decodes a compact JWS. Anything malformed, and any algorithm outside the policy,
/// is `None` ("Couldn't verify signed token.").
pub fn parse(token: &str) -> Option<Parsed<'_>> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || h.is_empty() || p.is_empty() || s.is_empty() {
        return None;
    }
    let header: Map<String, Value> = serde_json::from_slice(&b64(h)?).ok()?;
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
    let claims: Map<String, Value> = serde_json::from_slice(&b64(p)?).ok()?;
    let signature = b64(s)?;
    let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
    Some(Parsed {
        alg,
        kid,
        signed,
        signature,
        claims,
    })
}

/// base64url, with or without padding.
fn b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// The issuer rule: `iss` must be `https://<provider>`, or `http://<provider>` where the
/// provider allows plain http (its JWKS is configured as an http URL or a file — a test or
/// private issuer; a provider reached over https never accepts an http issuer).
pub fn check_issuer(
    claims: &Map<String, Value>,
    provider: &str,
    allow_http: bool,
) -> Result<(), Refusal> {
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let ok = iss.strip_prefix("https://") == Some(provider)
        || (allow_http && iss.strip_prefix("http://") == Some(provider));
    if ok {
        Ok(())
    } else {
        Err(Refusal::Issuer)
    }
}

/// A numeric date claim as whole seconds; present but not a number is malformed.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Refusal> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match (v.as_i64(), v.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.is_finite() => Ok(Some(f.floor() as i64)),
            _ => Err(Refusal::Unverifiable),
        },
    }
}

/// `exp` is required and, with the leeway, not past; `nbf`, if present, not ahead of `now` by
/// more than the leeway.
pub fn check_times(claims: &Map<String, Value>, now: i64) -> Result<(), Refusal> {
    let exp = numeric_date(claims, "exp")?.ok_or(Refusal::Missing("exp"))?;
    if exp.saturating_add(LEEWAY_SECS) < now {
        return Err(Refusal::Expired { now, exp });
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if nbf.saturating_sub(LEEWAY_SECS) > now {
            return Err(Refusal::NotYetValid);
        }
    }
    Ok(())
}

/// The audience rule (AWS's OIDC rule): `aud` is required; if `azp` is present it must be an
/// accepted client id, otherwise `aud` (a string, or any element of an array) must be.
pub fn check_audience(
    claims: &Map<String, Value>,
    accepted: &Audiences<'_>,
) -> Result<(), Refusal> {
    let aud = match claims.get("aud") {
        None | Some(Value::Null) => return Err(Refusal::Missing("aud")),
        Some(a) => a,
    };
    let ok = match claims.get("azp").and_then(Value::as_str) {
        Some(azp) => accepted.accepts(azp),
        None => match aud {
            Value::String(a) => accepted.accepts(a),
            Value::Array(items) => items
                .iter()
                .filter_map(Value::as_str)
                .any(|a| accepted.accepts(a)),
            _ => false,
        },
    };
    if ok {
        Ok(())
    } else {
        Err(Refusal::NotSupported)
    }
}

/// The subject: `sub` as a non-empty string.
pub fn subject(claims: &Map<String, Value>) -> Result<String, Refusal> {
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(Refusal::Missing("sub")),
    }
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
    fn the_issuer_must_be_https_plus_the_provider_name() {
        let c = obj(json!({"iss": "https://login.example.com"}));
        assert!(check_issuer(&c, "login.example.com", false).is_ok());
        assert!(check_issuer(&c, "login.example.com", true).is_ok());
        assert_eq!(
            check_issuer(&c, "other.example.com", false),
            Err(Refusal::Issuer)
        );
        let plain = obj(json!({"iss": "http://127.0.0.1:9000"}));
        assert_eq!(
            check_issuer(&plain, "127.0.0.1:9000", false),
            Err(Refusal::Issuer)
        );
        assert!(check_issuer(&plain, "127.0.0.1:9000", true).is_ok());
        for bad in [
            json!({}),
            json!({"iss": 5}),
            json!({"iss": "login.example.com"}),
            json!({"iss": "https://login.example.com/"}),
        ] {
            assert_eq!(
                check_issuer(&obj(bad), "login.example.com", true),
                Err(Refusal::Issuer)
            );
        }
    }

    #[test]
    fn times_allow_five_minutes_of_skew() {
        let now = 1_700_000_000;
        assert!(check_times(&obj(json!({"exp": now - 300})), now).is_ok());
        assert_eq!(
            check_times(&obj(json!({"exp": now - 301})), now),
            Err(Refusal::Expired {
                now,
                exp: now - 301
            })
        );
        assert_eq!(
            Refusal::Expired { now, exp: 5 }.message(),
            format!("Invalid login token. Token expired: {now} >= 5")
        );
        assert_eq!(
            check_times(&obj(json!({})), now),
            Err(Refusal::Missing("exp"))
        );
        assert_eq!(
            check_times(&obj(json!({"exp": "soon"})), now),
            Err(Refusal::Unverifiable)
        );
        assert!(check_times(&obj(json!({"exp": (now + 10) as f64 + 0.5})), now).is_ok());
        assert!(check_times(&obj(json!({"exp": now + 60, "nbf": now + 300})), now).is_ok());
        assert_eq!(
            check_times(&obj(json!({"exp": now + 900, "nbf": now + 301})), now),
            Err(Refusal::NotYetValid)
        );
    }

    #[test]
    fn audience_rules_follow_azp_then_aud() {
        let pool_ids = ["web", "ios"];
        let acc = Audiences::from_list(&pool_ids);
        assert!(check_audience(&obj(json!({"aud": "web"})), &acc).is_ok());
        assert!(check_audience(&obj(json!({"aud": ["x", "ios"]})), &acc).is_ok());
        assert_eq!(
            check_audience(&obj(json!({"aud": ["x", "y"]})), &acc),
            Err(Refusal::NotSupported)
        );
        assert_eq!(
            check_audience(&obj(json!({"aud": "x"})), &acc),
            Err(Refusal::NotSupported)
        );
        assert_eq!(
            check_audience(&obj(json!({"client_id": "web"})), &acc),
            Err(Refusal::Missing("aud"))
        );
        // azp decides when present, whatever aud says.
        assert!(check_audience(&obj(json!({"aud": "x", "azp": "ios"})), &acc).is_ok());
        assert_eq!(
            check_audience(&obj(json!({"aud": "web", "azp": "x"})), &acc),
            Err(Refusal::NotSupported)
        );
        let none = Audiences::from_list(&[]);
        assert_eq!(
            check_audience(&obj(json!({"aud": "web"})), &none),
            Err(Refusal::NotSupported)
        );
    }

    #[test]
    fn the_subject_is_a_non_empty_sub() {
        assert_eq!(subject(&obj(json!({"sub": "u1"}))).unwrap(), "u1");
        for bad in [json!({}), json!({"sub": ""}), json!({"sub": 12})] {
            assert_eq!(subject(&obj(bad)), Err(Refusal::Missing("sub")));
        }
    }
}
