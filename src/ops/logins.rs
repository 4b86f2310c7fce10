//! Turning a `Logins` map into checked logins: is the provider configured on the pool, and
//! which user does its token stand for.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::{Pool, ProviderKind};
use crate::protocol::ApiError;
use crate::App;

/// The Logins key under which clients pass back a token this server issued.
pub const COGNITO_IDENTITY_PROVIDER: &str = "cognito-identity.amazonaws.com";

/// The longest user id a login may stand for, in bytes of UTF-8: what every engine's login
/// index holds with the longest pool id and provider name (PostgreSQL's B-tree keeps entries
/// up to ~2.7 kB). Provider user ids are far shorter; a longer one (a token taken as the user
/// id, or a `sub` no provider issues) is refused as a client's mistake. Developer user ids
/// are held to it too.
pub const MAX_SUBJECT_BYTES: usize = 2048;

const SUBJECT_TOO_LONG: &str =
    "Invalid login token. The user id it stands for is longer than 2048 bytes.";

/// A login whose token was checked: the provider name, the provider's user id, and the
/// token's claims (for role mapping and principal tags).
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub provider: String,
    pub subject: String,
    pub claims: Map<String, Value>,
}

/// Whether a pool accepts logins of this provider: a SupportedLoginProviders key, a
/// CognitoIdentityProviders name, an OpenID Connect provider ARN's host or a SAML provider ARN.
pub fn provider_configured(pool: &Pool, key: &str) -> bool {
    ProviderKind::of(pool, key).is_some()
}

fn has_public_providers(pool: &Pool) -> bool {
    let s = &pool.settings;
    !(s.supported_login_providers.is_empty()
        && s.cognito_identity_providers.is_empty()
        && s.openid_connect_provider_arns.is_empty()
        && s.saml_provider_arns.is_empty())
}

/// Checks every public-provider login of a call; one bad login fails the whole call.
/// `cognito-identity.amazonaws.com` is not a provider here: callers that accept this server's
/// own tokens take that key out first.
pub async fn resolve(
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
    for provider in logins.keys() {
        if !provider_configured(pool, provider) {
            return Err(ApiError::unsupported_provider());
        }
    }
    let mut out = Vec::with_capacity(logins.len());
    for (provider, token) in logins {
        let v = app.verifier.verify(pool, provider, token).await?;
        if v.subject.len() > MAX_SUBJECT_BYTES {
            return Err(ApiError::NotAuthorized(SUBJECT_TOO_LONG.to_string()));
        }
        out.push(Login {
            provider: provider.clone(),
            subject: v.subject,
            claims: v.claims,
        });
    }
    Ok(out)
}
