//! Provider login verification: turning one `Logins` token into the provider's user id and the
//! token's claims, per the `[providers]` configuration.
//!
//! - `oidc`: the token is a JWT, checked against the provider's JWKS.
//! - `introspect`: the token is opaque and an RFC 7662 endpoint says whether it is active.
//! - `trust`: the token is the user id (test environments).
//!
//! Providers without a table follow `[providers] default` (`trust` or `reject`).
//!
//! Decisions:
//! - Issuer: `iss` must be `https://<provider>`. `http://<provider>` is accepted only when the
//!   provider's `jwks` is configured as an `http://` URL or a file — a local or test issuer;
//!   keys fetched over https or by discovery never accept an http issuer.
//! - A `jwks` file that does not exist is a start-up error (a configuration mistake), as is a
//!   `jwks` or introspection `url` that is not an absolute http(s) URL. Nothing is read or
//!   fetched at start-up otherwise: keys load with the first token.
//! - Accepted client ids for a pool and provider: the pool's SupportedLoginProviders value
//!   for the provider (comma-separated lists allowed), the ClientId of every
//!   CognitoIdentityProviders entry of that name, and the provider's configured `audiences`.
//!   An oidc provider with none of these accepts no token (fail closed).
//! - Introspection answers are audience-checked only when they carry `client_id` or `aud` and
//!   the accepted list is not empty. Active answers are cached up to 60 s (never past their
//!   `exp`), keyed by the token's SHA-256.
//! - Tokens are never stored, logged, or put in a message: errors name the provider and what
//!   failed.

//!
//! The files, each depending only on those listed before it:
//! - [`jwt`]: the one JWT verifier (parsing, algorithm policy, `exp`/`nbf` with the leeway),
//!   shared with this server's own tokens ([`crate::tokens`]).
//! - [`keys`]: a JWKS document's usable keys, which fit a token, the signature check.
//! - [`key_cache`]: where a provider's keys come from (file, URL, discovery) and how they are
//!   cached and refreshed.
//! - [`claims`]: AWS's rules for a provider token's issuer, audience and subject, and
//!   [`Refusal`] with AWS's messages.
//! - [`introspect`]: the RFC 7662 endpoint client and its answer cache.
//! - this file: [`Verifier`], which picks the check per provider and runs it.

pub mod claims;
pub mod introspect;
pub mod jwt;
pub mod key_cache;
pub mod keys;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use crate::config::{Config, DefaultVerify, ProviderConfig, VerifyMode};
use crate::http_client::{is_valid_url, HttpClient};
use crate::model::Pool;
use crate::protocol::ApiError;

pub use claims::{Audiences, Refusal};
use introspect::Introspector;
use key_cache::{JwksCache, KeyError, Source};

/// A login whose token checked out: the provider's user id and the token's claims (for role
/// mapping rules and principal tags).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedLogin {
    pub subject: String,
    pub claims: Map<String, Value>,
}

/// How one configured provider is checked.
enum Check {
    Trust,
    Oidc {
        keys: JwksCache,
        allow_http_issuer: bool,
        audiences: Vec<String>,
    },
    Introspect {
        endpoint: Introspector,
        audiences: Vec<String>,
    },
}

/// Verifies provider tokens per the `[providers]` configuration. Built once at start-up
/// without any I/O beyond checking that configured JWKS files exist.
pub struct Verifier {
    default: DefaultVerify,
    providers: BTreeMap<String, Arc<Check>>,
    /// Present when some provider fetches over HTTP.
    http: Option<HttpClient>,
}

impl Verifier {
    /// Prepares every provider of the configuration. A configuration mistake (a JWKS file
    /// that does not exist, a URL that is not http(s)) is an error here rather than at the
    /// first login.
    pub fn new(config: &Config) -> Result<Verifier, String> {
        let mut providers = BTreeMap::new();
        let mut needs_http = false;
        for (name, p) in &config.providers.named {
            let check = Self::check_for(name, p)?;
            needs_http |= match &check {
                Check::Trust => false,
                Check::Oidc { keys, .. } => keys.source().needs_http(),
                Check::Introspect { .. } => true,
            };
            providers.insert(name.clone(), Arc::new(check));
        }
        let http = if needs_http {
            Some(HttpClient::new().map_err(|e| format!("outbound HTTP client: {e}"))?)
        } else {
            None
        };
        Ok(Verifier {
            default: config.providers.default,
            providers,
            http,
        })
    }

    fn check_for(name: &str, p: &ProviderConfig) -> Result<Check, String> {
        Ok(match p.verify {
            VerifyMode::Trust => Check::Trust,
            VerifyMode::Oidc => {
                let source = Source::for_provider(name, p.jwks.as_deref());
                match &source {
                    Source::File(path) if !path.is_file() => {
                        return Err(format!(
                            "provider \"{name}\": jwks file {} does not exist",
                            path.display()
                        ))
                    }
                    Source::Url(u) | Source::Discovery(u) if !is_valid_url(u) => {
                        return Err(format!(
                            "provider \"{name}\": jwks \"{u}\" is not an absolute http(s) URL"
                        ))
                    }
                    _ => {}
                }
                Check::Oidc {
                    allow_http_issuer: source.allows_http_issuer(),
                    keys: JwksCache::new(name, source),
                    audiences: p.audiences.clone(),
                }
            }
            VerifyMode::Introspect => {
                let url = p.url.clone().unwrap_or_default();
                if !is_valid_url(&url) {
                    return Err(format!(
                        "provider \"{name}\": url \"{url}\" is not an absolute http(s) URL"
                    ));
                }
                Check::Introspect {
                    endpoint: Introspector::new(url).for_provider(name),
                    audiences: p.audiences.clone(),
                }
            }
        })
    }

    /// The user a login token says it stands for, read without checking it: what `verify`
    /// would give as the subject if the token is good, so storage can be asked about that user
    /// before the check. `None` where only the check can tell (introspection). Nothing is
    /// decided on it: a caller compares it with what `verify` gave.
    pub fn claimed_subject(&self, provider: &str, token: &str) -> Option<String> {
        let check = match self.providers.get(provider) {
            Some(c) => c,
            None => {
                return match self.default {
                    DefaultVerify::Trust => Some(token.to_string()),
                    DefaultVerify::Reject => None,
                }
            }
        };
        match &**check {
            Check::Trust => Some(token.to_string()),
            Check::Oidc { .. } => claims::subject(&jwt::parse(token)?.claims).ok(),
            Check::Introspect { .. } => None,
        }
    }

    /// Checks one login token of a provider the pool configures.
    pub async fn verify(
        &self,
        pool: &Pool,
        provider: &str,
        token: &str,
    ) -> Result<VerifiedLogin, ApiError> {
        let check = match self.providers.get(provider) {
            Some(c) => c,
            None => {
                return match self.default {
                    DefaultVerify::Trust => Ok(trusted(token)),
                    DefaultVerify::Reject => Err(ApiError::unsupported_provider()),
                }
            }
        };
        match &**check {
            Check::Trust => Ok(trusted(token)),
            Check::Oidc {
                keys,
                allow_http_issuer,
                audiences,
            } => {
                let accepted = Audiences::of(pool, provider, audiences);
                self.verify_jwt(provider, token, keys, *allow_http_issuer, &accepted)
                    .await
            }
            Check::Introspect {
                endpoint,
                audiences,
            } => {
                let http = self
                    .http
                    .as_ref()
                    .ok_or_else(|| ApiError::internal("introspection without an HTTP client"))?;
                let claims = endpoint
                    .introspect(http, token)
                    .await
                    .map_err(|e| provider_unreachable_error(provider, &e.0))??;
                introspect::check_audience(&claims, &Audiences::of(pool, provider, audiences))?;
                let subject = claims::subject(&claims)?;
                Ok(VerifiedLogin {
                    subject,
                    claims: Arc::unwrap_or_clone(claims),
                })
            }
        }
    }

    async fn verify_jwt(
        &self,
        provider: &str,
        token: &str,
        keys: &JwksCache,
        allow_http_issuer: bool,
        accepted: &Audiences<'_>,
    ) -> Result<VerifiedLogin, ApiError> {
        let parsed = jwt::parse(token).ok_or(Refusal::Unverifiable)?;
        // The issuer first: a token of another issuer never causes a JWKS fetch.
        claims::check_issuer(&parsed.claims, provider, allow_http_issuer)?;
        let alg = parsed.alg;
        let (signed, sig) = (parsed.signed, parsed.signature.as_slice());
        keys.verify_with(self.http.as_ref(), parsed.kid.as_deref(), alg, |k| {
            k.verifies(alg, signed, sig)
        })
        .await
        .map_err(|e| match e {
            KeyError::Unverifiable => Refusal::Unverifiable.into(),
            KeyError::Unavailable(why) => provider_unreachable_error(provider, &why),
        })?;
        jwt::check_times(&parsed.claims, now_secs()).map_err(Refusal::from)?;
        claims::check_audience(&parsed.claims, accepted)?;
        let subject = claims::subject(&parsed.claims)?;
        Ok(VerifiedLogin {
            subject,
            claims: parsed.claims,
        })
    }
}

fn trusted(token: &str) -> VerifiedLogin {
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(token.to_string()));
    VerifiedLogin {
        subject: token.to_string(),
        claims,
    }
}

/// The provider's keys or endpoint cannot be used: a fixed message to the client, the detail
/// in the log.
fn provider_unreachable_error(provider: &str, why: &str) -> ApiError {
    crate::http_client::external_service_error(provider, &why)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProvidersConfig;
    use crate::model::{CognitoProvider, PoolSettings};

    fn pool() -> Pool {
        let mut slp = BTreeMap::new();
        slp.insert("accounts.google.com".to_string(), "web, ios".to_string());
        Pool {
            created_at: crate::times::Millis(0),
            id: "us-east-1:00000000-0000-4000-8000-000000000000".into(),
            account_id: "000000000000".into(),
            settings: PoolSettings {
                name: "p".into(),
                allow_unauthenticated: false,
                allow_classic_flow: None,
                developer_provider_name: None,
                supported_login_providers: slp,
                openid_connect_provider_arns: vec![],
                cognito_identity_providers: vec![
                    CognitoProvider {
                        provider_name: "cognito-idp.us-east-1.amazonaws.com/us-east-1_a".into(),
                        client_id: Some("c1".into()),
                        server_side_token_check: false,
                    },
                    CognitoProvider {
                        provider_name: "cognito-idp.us-east-1.amazonaws.com/us-east-1_a".into(),
                        client_id: Some("c2".into()),
                        server_side_token_check: false,
                    },
                    CognitoProvider {
                        provider_name: "cognito-idp.us-east-1.amazonaws.com/us-east-1_b".into(),
                        client_id: Some("other".into()),
                        server_side_token_check: false,
                    },
                ],
                saml_provider_arns: vec![],
            },
        }
    }

    #[test]
    fn accepted_client_ids_come_from_the_pool_and_the_configuration() {
        let p = pool();
        let extra = vec!["cli".to_string()];
        let g = Audiences::of(&p, "accounts.google.com", &extra);
        for id in ["web", "ios", "cli"] {
            assert!(g.accepts(id), "{id}");
        }
        assert!(!g.accepts("c1") && !g.accepts("") && !g.accepts(" ios"));
        let c = Audiences::of(&p, "cognito-idp.us-east-1.amazonaws.com/us-east-1_a", &[]);
        assert!(c.accepts("c1") && c.accepts("c2") && !c.accepts("other"));
        let none = Audiences::of(&p, "login.example.com", &[]);
        assert!(none.is_empty() && !none.accepts("web"));
    }

    fn config(named: &[(&str, ProviderConfig)], default: DefaultVerify) -> Config {
        Config {
            providers: ProvidersConfig {
                default,
                named: named
                    .iter()
                    .map(|(n, p)| (n.to_string(), p.clone()))
                    .collect(),
            },
            ..Config::default()
        }
    }

    fn provider(verify: VerifyMode, jwks: Option<&str>, url: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            verify,
            jwks: jwks.map(str::to_string),
            audiences: vec![],
            url: url.map(str::to_string),
        }
    }

    #[test]
    fn configuration_mistakes_fail_at_start_up() {
        let missing = provider(
            VerifyMode::Oidc,
            Some("/nonexistent/idpool/jwks.json"),
            None,
        );
        let err = Verifier::new(&config(&[("x.example", missing)], DefaultVerify::Reject))
            .err()
            .unwrap();
        assert!(
            err.contains("x.example") && err.contains("does not exist"),
            "{err}"
        );
        let bad_url = provider(VerifyMode::Introspect, None, Some("not a url"));
        assert!(Verifier::new(&config(&[("y", bad_url)], DefaultVerify::Reject)).is_err());
        // Fetching providers are fine without any I/O.
        let fine = provider(VerifyMode::Oidc, None, None);
        assert!(Verifier::new(&config(
            &[("accounts.google.com", fine)],
            DefaultVerify::Reject
        ))
        .is_ok());
    }

    #[tokio::test]
    async fn trust_and_default_modes() {
        let trust = provider(VerifyMode::Trust, None, None);
        let v = Verifier::new(&config(
            &[("accounts.google.com", trust)],
            DefaultVerify::Reject,
        ))
        .unwrap();
        let p = pool();
        let ok = v.verify(&p, "accounts.google.com", "alice").await.unwrap();
        assert_eq!(ok.subject, "alice");
        assert_eq!(ok.claims.get("sub"), Some(&Value::String("alice".into())));
        assert_eq!(
            v.verify(&p, "graph.facebook.com", "bob").await,
            Err(ApiError::unsupported_provider())
        );
        let open = Verifier::new(&config(&[], DefaultVerify::Trust)).unwrap();
        assert_eq!(
            open.verify(&p, "graph.facebook.com", "bob")
                .await
                .unwrap()
                .subject,
            "bob"
        );
    }

    #[tokio::test]
    async fn oidc_refusals_never_echo_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, r#"{"keys":[]}"#).unwrap();
        let oidc = provider(VerifyMode::Oidc, path.to_str(), None);
        let v = Verifier::new(&config(
            &[("accounts.google.com", oidc)],
            DefaultVerify::Reject,
        ))
        .unwrap();
        let p = pool();
        for token in ["garbage-token-value", "a.b.c", ""] {
            let err = v
                .verify(&p, "accounts.google.com", token)
                .await
                .unwrap_err();
            assert_eq!(err, Refusal::Unverifiable.into());
        }
    }
}
