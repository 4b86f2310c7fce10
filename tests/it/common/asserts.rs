//! What an error must look like: on the wire (a raw response) and as the SDK reports it.

use super::raw::{RawResponse, JSON_TYPE};

impl RawResponse {
    /// Asserts an AWS-shaped error: status, `__type`, headers matching the body.
    pub fn assert_error(&self, status: u16, type_name: &str) {
        assert_eq!(
            self.status,
            status,
            "status of {:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.error_type(), type_name, "{:?}", self.json());
        let expected_header = format!("{type_name}:");
        assert_eq!(
            self.header("x-amzn-errortype"),
            Some(expected_header.as_str())
        );
        assert!(self.header("x-amzn-requestid").is_some());
        assert_eq!(self.header("content-type"), Some(JSON_TYPE));
        let keys: Vec<String> = self.json().as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec!["__type".to_string(), "message".to_string()]);
    }

    /// Asserts an AWS-shaped error of whatever status and type it has.
    pub fn assert_some_error(&self) {
        self.assert_error(self.status, &self.error_type());
    }

    /// Asserts an AWS-shaped error of any type, strictly: 4xx, `{"__type","message"}` compact,
    /// the headers matching the body. Returns the type.
    pub fn assert_client_error(&self) -> String {
        assert!(
            (400..500).contains(&self.status),
            "status {} for {:?}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        let t = self.error_type();
        assert!(!t.is_empty(), "{:?}", String::from_utf8_lossy(&self.body));
        self.assert_error(self.status, &t);
        assert_eq!(
            self.header("x-amzn-errormessage"),
            Some(self.message().as_str())
        );
        let compact = format!(
            "{{\"__type\":{},\"message\":{}}}",
            serde_json::to_string(&t).unwrap(),
            serde_json::to_string(&self.message()).unwrap()
        );
        assert_eq!(String::from_utf8_lossy(&self.body), compact);
        t
    }
}

/// The error code and message of an SDK error.
pub fn code(e: &aws_sdk_cognitoidentity::Error) -> (String, String) {
    use aws_sdk_cognitoidentity::error::ProvideErrorMetadata;
    (
        e.code().unwrap_or("").to_string(),
        e.message().unwrap_or("").to_string(),
    )
}

/// The error code and message of an SDK call that must fail.
pub fn fail<T: std::fmt::Debug, E>(r: Result<T, E>) -> (String, String)
where
    aws_sdk_cognitoidentity::Error: From<E>,
{
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => code(&aws_sdk_cognitoidentity::Error::from(e)),
    }
}

/// The code and message of a missing pool.
pub fn pool_not_found(id: &str) -> (String, String) {
    (
        "ResourceNotFoundException".into(),
        format!("IdentityPool '{id}' not found."),
    )
}

/// The code and message of a missing identity.
pub fn identity_not_found(id: &str) -> (String, String) {
    (
        "ResourceNotFoundException".into(),
        format!("Identity '{id}' not found."),
    )
}

/// The code and message of an InvalidParameterException.
pub fn invalid(message: &str) -> (String, String) {
    ("InvalidParameterException".into(), message.into())
}
