//! Turning a `Logins` map into (provider, subject) pairs: is the provider configured on the
//! pool, and which user does its token stand for.

use std::collections::BTreeMap;

use super::pools::oidc_provider_host;
use crate::config::{DefaultVerify, VerifyMode};
use crate::protocol::ApiError;
use crate::store::pools::Pool;
use crate::App;

/// A login whose token was checked: the provider name and the provider's user id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub provider: String,
    pub subject: String,
}

const NOT_SUPPORTED: &str = "Token is not from a supported provider of this identity pool.";

/// Whether a pool accepts logins of this provider: a SupportedLoginProviders key, a
/// CognitoIdentityProviders name, an OpenID Connect provider ARN's host or a SAML provider ARN.
pub fn provider_configured(pool: &Pool, key: &str) -> bool {
    let s = &pool.settings;
    s.supported_login_providers.contains_key(key)
        || s.cognito_identity_providers
            .iter()
            .any(|p| p.provider_name == key)
        || s.openid_connect_provider_arns
            .iter()
            .any(|a| oidc_provider_host(a) == Some(key))
        || s.saml_provider_arns.iter().any(|a| a == key)
}

fn has_public_providers(pool: &Pool) -> bool {
    let s = &pool.settings;
    !(s.supported_login_providers.is_empty()
        && s.cognito_identity_providers.is_empty()
        && s.openid_connect_provider_arns.is_empty()
        && s.saml_provider_arns.is_empty())
}

/// Checks every login of a call; one bad login fails the whole call.
pub fn resolve(
    app: &App,
    pool: &Pool,
    logins: &BTreeMap<String, String>,
) -> Result<Vec<Login>, ApiError> {
    if !logins.is_empty() && !has_public_providers(pool) {
        return Err(ApiError::NotAuthorized(format!(
            "Identity pool - {} does not have identity providers configured.",
            pool.id
        )));
    }
    let mut out = Vec::with_capacity(logins.len());
    for (provider, token) in logins {
        if !provider_configured(pool, provider) {
            return Err(ApiError::NotAuthorized(NOT_SUPPORTED.to_string()));
        }
        let subject = verify(app, provider, token)?;
        out.push(Login {
            provider: provider.clone(),
            subject,
        });
    }
    Ok(out)
}

/// The user id a provider's token stands for, per the provider's `verify` mode.
fn verify(app: &App, provider: &str, token: &str) -> Result<String, ApiError> {
    let mode = match app.config.providers.named.get(provider) {
        Some(p) => p.verify,
        None => match app.config.providers.default {
            DefaultVerify::Trust => VerifyMode::Trust,
            DefaultVerify::Reject => {
                return Err(ApiError::NotAuthorized(NOT_SUPPORTED.to_string()))
            }
        },
    };
    match mode {
        VerifyMode::Trust => Ok(token.to_string()),
        VerifyMode::Oidc | VerifyMode::Introspect => Err(ApiError::ExternalService(format!(
            "Login verification for provider '{provider}' is not available in this version of idpool."
        ))),
    }
}
