//! STUB — TagResource, UntagResource, ListTagsForResource on identity pool ARNs.

use serde_json::Value;

use super::Caller;
use crate::protocol::ApiError;
use crate::App;

fn todo(op: &str) -> ApiError {
    ApiError::UnsupportedOperation(format!("{op} is not supported by this server yet."))
}

/// TagResource.
pub async fn tag_resource(_app: &App, _caller: &Caller, _input: Value) -> Result<Value, ApiError> {
    Err(todo("TagResource"))
}
/// UntagResource.
pub async fn untag_resource(
    _app: &App,
    _caller: &Caller,
    _input: Value,
) -> Result<Value, ApiError> {
    Err(todo("UntagResource"))
}
/// ListTagsForResource.
pub fn list_tags_for_resource(
    _app: &App,
    _caller: &Caller,
    _input: Value,
) -> Result<Value, ApiError> {
    Err(todo("ListTagsForResource"))
}
