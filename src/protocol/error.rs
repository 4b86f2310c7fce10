//! The one error type of the wire: every failure a client can see, with its `__type` name, its
//! HTTP status and its message. `service.rs` is the only place that turns it into a response.

use std::fmt;

/// Every error a client can receive. `type_name` and `status` are exhaustive matches, so a new
/// variant must say how it looks on the wire before the code compiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    // Modelled exceptions of the service.
    InvalidParameter(String),
    ResourceNotFound(String),
    NotAuthorized(String),
    ResourceConflict(String),
    TooManyRequests(String),
    LimitExceeded(String),
    ExternalService(String),
    ConcurrentModification(String),
    DeveloperUserAlreadyRegistered(String),
    InvalidIdentityPoolConfiguration(String),
    /// A server fault. The message sent is fixed; the cause is logged where it happened.
    InternalError,
    // Protocol-level errors every awsJson service has.
    Validation(String),
    Serialization(String),
    UnknownOperation(String),
    RequestEntityTooLarge(String),
    // Authentication failures of signed operations.
    MissingAuthenticationToken(String),
    UnrecognizedClient(String),
    InvalidSignature(String),
    IncompleteSignature(String),
}

impl ApiError {
    /// The bare shape name sent as `__type` and in `x-amzn-ErrorType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ApiError::InvalidParameter(_) => "InvalidParameterException",
            ApiError::ResourceNotFound(_) => "ResourceNotFoundException",
            ApiError::NotAuthorized(_) => "NotAuthorizedException",
            ApiError::ResourceConflict(_) => "ResourceConflictException",
            ApiError::TooManyRequests(_) => "TooManyRequestsException",
            ApiError::LimitExceeded(_) => "LimitExceededException",
            ApiError::ExternalService(_) => "ExternalServiceException",
            ApiError::ConcurrentModification(_) => "ConcurrentModificationException",
            ApiError::DeveloperUserAlreadyRegistered(_) => {
                "DeveloperUserAlreadyRegisteredException"
            }
            ApiError::InvalidIdentityPoolConfiguration(_) => {
                "InvalidIdentityPoolConfigurationException"
            }
            ApiError::InternalError => "InternalErrorException",
            ApiError::Validation(_) => "ValidationException",
            ApiError::Serialization(_) => "SerializationException",
            ApiError::UnknownOperation(_) => "UnknownOperationException",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLargeException",
            ApiError::MissingAuthenticationToken(_) => "MissingAuthenticationTokenException",
            ApiError::UnrecognizedClient(_) => "UnrecognizedClientException",
            ApiError::InvalidSignature(_) => "InvalidSignatureException",
            ApiError::IncompleteSignature(_) => "IncompleteSignatureException",
        }
    }

    /// HTTP status on the wire: AWS answers 400 for every client error in a request it read,
    /// 413 for a body too large and 408 for one that arrived too slowly (docs/behaviour.md
    /// Decision 4).
    pub fn status(&self) -> u16 {
        match self {
            ApiError::InternalError => 500,
            ApiError::RequestEntityTooLarge(_) => 413,
            ApiError::InvalidParameter(_)
            | ApiError::ResourceNotFound(_)
            | ApiError::NotAuthorized(_)
            | ApiError::ResourceConflict(_)
            | ApiError::TooManyRequests(_)
            | ApiError::LimitExceeded(_)
            | ApiError::ExternalService(_)
            | ApiError::ConcurrentModification(_)
            | ApiError::DeveloperUserAlreadyRegistered(_)
            | ApiError::InvalidIdentityPoolConfiguration(_)
            | ApiError::Validation(_)
            | ApiError::Serialization(_)
            | ApiError::UnknownOperation(_)
            | ApiError::MissingAuthenticationToken(_)
            | ApiError::UnrecognizedClient(_)
            | ApiError::InvalidSignature(_)
            | ApiError::IncompleteSignature(_) => 400,
        }
    }

    /// The message sent as `message` and in `x-amzn-ErrorMessage`.
    pub fn message(&self) -> &str {
        match self {
            ApiError::InternalError => "An internal error occurred. The request was not completed.",
            ApiError::InvalidParameter(m)
            | ApiError::ResourceNotFound(m)
            | ApiError::NotAuthorized(m)
            | ApiError::ResourceConflict(m)
            | ApiError::TooManyRequests(m)
            | ApiError::LimitExceeded(m)
            | ApiError::ExternalService(m)
            | ApiError::ConcurrentModification(m)
            | ApiError::DeveloperUserAlreadyRegistered(m)
            | ApiError::InvalidIdentityPoolConfiguration(m)
            | ApiError::Validation(m)
            | ApiError::Serialization(m)
            | ApiError::UnknownOperation(m)
            | ApiError::RequestEntityTooLarge(m)
            | ApiError::MissingAuthenticationToken(m)
            | ApiError::UnrecognizedClient(m)
            | ApiError::InvalidSignature(m)
            | ApiError::IncompleteSignature(m) => m,
        }
    }

    /// The exact body AWS sends: compact, `__type` first, then `message`.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.message().len());
        out.extend_from_slice(b"{\"__type\":");
        // Serialising a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, self.type_name());
        out.extend_from_slice(b",\"message\":");
        let _ = serde_json::to_writer(&mut out, self.message());
        out.push(b'}');
        out
    }

    /// InternalErrorException, its cause logged once, here, in the request's span (which
    /// carries the request id); the client gets the fixed message and none of the cause.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        ApiError::InternalError
    }

    /// `IdentityPool '<id>' not found.`
    pub fn pool_not_found(id: &str) -> Self {
        ApiError::ResourceNotFound(format!("IdentityPool '{id}' not found."))
    }

    /// `Identity '<id>' not found.`
    pub fn identity_not_found(id: &str) -> Self {
        ApiError::ResourceNotFound(format!("Identity '{id}' not found."))
    }

    /// `Token is not from a supported provider of this identity pool.`
    pub fn unsupported_provider() -> Self {
        ApiError::NotAuthorized(
            "Token is not from a supported provider of this identity pool.".to_string(),
        )
    }

    /// `Access to Identity '<id>' is forbidden.`
    pub fn identity_forbidden(id: &str) -> Self {
        ApiError::NotAuthorized(format!("Access to Identity '{id}' is forbidden."))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.type_name(), self.message())
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_compact_with_type_first() {
        let e = ApiError::NotAuthorized(
            "Logins don't match. Please include at least one valid login for this identity or identity pool.".into(),
        );
        let body = e.body();
        // The same 143 bytes AWS sends for this error (docs/behaviour.md §1.6).
        assert_eq!(body.len(), 143);
        assert!(body.starts_with(b"{\"__type\":\"NotAuthorizedException\",\"message\":\"Logins"));
    }

    #[test]
    fn internal_errors_are_500_and_opaque() {
        assert_eq!(ApiError::InternalError.status(), 500);
        assert!(!ApiError::InternalError
            .message()
            .to_lowercase()
            .contains("sql"));
        assert_eq!(ApiError::pool_not_found("x").status(), 400);
    }

    #[test]
    fn messages_are_json_escaped() {
        let e = ApiError::Validation("Value 'a\"b' at 'x'".into());
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["message"], "Value 'a\"b' at 'x'");
    }
}
