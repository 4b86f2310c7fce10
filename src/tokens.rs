//! STUB — OpenID token issuance (signing keys, JWKS, discovery). Being written.

use serde_json::{Map, Value};

use crate::protocol::ApiError;
use crate::store::StoreError;

/// Issues and checks this server's own OpenID tokens.
pub struct Tokens {
    issuer: String,
}

impl Tokens {
    /// Loads the signing keys from the database file, generating the first one when there is none.
    pub fn open(_db: &std::path::Path, issuer: String) -> Result<Tokens, StoreError> {
        Ok(Tokens { issuer })
    }

    /// The `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs `claims` (RS512, current key) after adding `iss`, `iat` and `exp = iat + ttl_secs`.
    pub fn issue(&self, _claims: Map<String, Value>, _ttl_secs: u64) -> Result<String, ApiError> {
        Err(ApiError::InternalError)
    }

    /// Checks a token this server issued (signature by a published key, `iss`, `exp`) and
    /// returns its claims; failures are NotAuthorizedException with AWS's messages.
    pub fn verify(&self, _token: &str) -> Result<Map<String, Value>, ApiError> {
        Err(ApiError::NotAuthorized(
            "Invalid login token. Couldn't verify signed token.".into(),
        ))
    }

    /// The JWKS document served at `/.well-known/jwks_uri`.
    pub fn jwks(&self) -> Value {
        serde_json::json!({"keys": []})
    }

    /// The discovery document served at `/.well-known/openid-configuration`.
    pub fn discovery(&self) -> Value {
        serde_json::json!({"issuer": self.issuer})
    }
}
