//! AWS's rules for a provider token's claims — the issuer, the accepted client ids, the
//! subject — and [`Refusal`], why a provider token was refused, with AWS's exact messages.

use serde_json::{Map, Value};

use super::jwt::{
    expired_message, TimeRefusal, MSG_COULD_NOT_VERIFY, MSG_NOT_YET_VALID, MSG_WRONG_ISSUER,
};
use crate::model::{CognitoProvider, Pool};
use crate::protocol::ApiError;

/// Why a token was refused; each is a NotAuthorizedException with AWS's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, unsupported algorithm, bad signature, no key for it.
    Unverifiable,
    /// `iss` is not the provider.
    Issuer,
    /// `exp` (plus leeway) is past.
    Expired { now: i64, exp: i64 },
    /// `nbf` (minus leeway) is ahead.
    NotYetValid,
    /// A required claim is absent.
    Missing(&'static str),
    /// The token's client is not one the pool accepts.
    NotSupported,
    /// The introspection endpoint says the token is not active.
    NotActive,
}

impl Refusal {
    /// The exact message (docs/behaviour.md §7).
    pub fn message(&self) -> String {
        match self {
            Refusal::Unverifiable => MSG_COULD_NOT_VERIFY.into(),
            Refusal::Issuer => MSG_WRONG_ISSUER.into(),
            Refusal::Expired { now, exp } => expired_message(*now, exp),
            Refusal::NotYetValid => MSG_NOT_YET_VALID.into(),
            Refusal::Missing(claim) => {
                format!("Invalid login token. Missing a required claim: {claim}")
            }
            Refusal::NotSupported => ApiError::unsupported_provider().message().into(),
            Refusal::NotActive => "Invalid login token. Token is not active.".into(),
        }
    }
}

impl From<TimeRefusal> for Refusal {
    fn from(t: TimeRefusal) -> Refusal {
        match t {
            TimeRefusal::NoExpiry => Refusal::Missing("exp"),
            TimeRefusal::Malformed => Refusal::Unverifiable,
            TimeRefusal::Expired { now, exp } => Refusal::Expired { now, exp },
            TimeRefusal::NotYetValid => Refusal::NotYetValid,
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        ApiError::NotAuthorized(r.message())
    }
}

/// The client ids a pool accepts for one provider, looked up in place (no copies).
#[derive(Debug, Clone, Copy)]
pub struct Audiences<'a> {
    provider: &'a str,
    supported: Option<&'a str>,
    cognito: &'a [CognitoProvider],
    configured: &'a [String],
    listed: &'a [&'a str],
}

impl<'a> Audiences<'a> {
    /// The accepted client ids of `pool` for `provider`, plus the provider's `audiences`.
    pub fn of(pool: &'a Pool, provider: &'a str, configured: &'a [String]) -> Audiences<'a> {
        Audiences {
            provider,
            supported: pool
                .settings
                .supported_login_providers
                .get(provider)
                .map(String::as_str),
            cognito: &pool.settings.cognito_identity_providers,
            configured,
            listed: &[],
        }
    }

    /// Exactly these ids (tests and tools).
    pub fn from_list(ids: &'a [&'a str]) -> Audiences<'a> {
        Audiences {
            provider: "",
            supported: None,
            cognito: &[],
            configured: &[],
            listed: ids,
        }
    }

    fn all(&self) -> impl Iterator<Item = &'a str> + '_ {
        let supported = self.supported.into_iter().flat_map(|s| s.split(','));
        let cognito = self
            .cognito
            .iter()
            .filter(|c| c.provider_name == self.provider)
            .filter_map(|c| c.client_id.as_deref())
            .flat_map(|s| s.split(','));
        supported
            .chain(cognito)
            .chain(self.configured.iter().map(String::as_str))
            .chain(self.listed.iter().copied())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// Whether `client_id` is accepted.
    pub fn accepts(&self, client_id: &str) -> bool {
        self.all().any(|a| a == client_id)
    }

    /// Whether no client id is accepted at all.
    pub fn is_empty(&self) -> bool {
        self.all().next().is_none()
    }
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

/// The subject: `sub` as a non-empty string without a NUL character. A `sub` with one is
/// no user id every engine can keep (PostgreSQL's text holds no NUL) and is refused as if
/// absent, before any storage sees it.
pub fn subject(claims: &Map<String, Value>) -> Result<String, Refusal> {
    match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && !s.contains('\0') => Ok(s.clone()),
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

    #[test]
    fn messages_are_aws_texts() {
        assert_eq!(
            ApiError::from(Refusal::Issuer),
            ApiError::NotAuthorized(
                "Invalid login token. Issuer doesn't match providerName".into()
            )
        );
        assert_eq!(
            Refusal::Missing("aud").message(),
            "Invalid login token. Missing a required claim: aud"
        );
        assert_eq!(
            Refusal::Expired { now: 7, exp: 5 }.message(),
            "Invalid login token. Token expired: 7 >= 5"
        );
        assert_eq!(
            Refusal::from(TimeRefusal::NoExpiry),
            Refusal::Missing("exp")
        );
        assert_eq!(
            Refusal::NotSupported.message(),
            ApiError::unsupported_provider().message()
        );
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
