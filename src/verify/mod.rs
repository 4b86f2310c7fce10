//! STUB — provider login verification (oidc, introspect, trust). Being written.

use serde_json::{Map, Value};

use crate::config::{Config, DefaultVerify, VerifyMode};
use crate::protocol::ApiError;
use crate::store::pools::Pool;

/// A login whose token checked out: the provider's user id and the token's claims (for role
/// mapping rules and principal tags).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedLogin {
    pub subject: String,
    pub claims: Map<String, Value>,
}

/// Verifies provider tokens per the `[providers]` configuration.
pub struct Verifier {
    config: crate::config::ProvidersConfig,
}

const NOT_SUPPORTED: &str = "Token is not from a supported provider of this identity pool.";

impl Verifier {
    pub fn new(config: &Config) -> Result<Verifier, String> {
        Ok(Verifier {
            config: config.providers.clone(),
        })
    }

    /// Checks one login token of a provider the pool configures.
    pub async fn verify(
        &self,
        _pool: &Pool,
        provider: &str,
        token: &str,
    ) -> Result<VerifiedLogin, ApiError> {
        let mode = match self.config.named.get(provider) {
            Some(p) => p.verify,
            None => match self.config.default {
                DefaultVerify::Trust => VerifyMode::Trust,
                DefaultVerify::Reject => return Err(ApiError::NotAuthorized(NOT_SUPPORTED.into())),
            },
        };
        match mode {
            VerifyMode::Trust => {
                let mut claims = Map::new();
                claims.insert("sub".into(), Value::String(token.to_string()));
                Ok(VerifiedLogin {
                    subject: token.to_string(),
                    claims,
                })
            }
            VerifyMode::Oidc | VerifyMode::Introspect => Err(ApiError::ExternalService(format!(
                "Login verification for provider '{provider}' is not available yet."
            ))),
        }
    }
}
