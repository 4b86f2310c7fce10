//! TEMPORARY STUB (replaced by the real SigV4 verifier).
use crate::protocol::ApiError;
pub struct Verified {
    pub access_key_id: String,
}
pub fn verify<'k>(
    _method: &http::Method,
    _uri: &http::Uri,
    _headers: &http::HeaderMap,
    _body: &[u8],
    _region: &str,
    _now: std::time::SystemTime,
    _lookup: impl Fn(&str) -> Option<&'k str>,
) -> Result<Verified, ApiError> {
    Err(ApiError::MissingAuthenticationToken(
        "Missing Authentication Token".into(),
    ))
}
