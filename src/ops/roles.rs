//! STUB — identity pool roles, role mappings, principal tag maps, and role selection.

use serde_json::Value;

use super::Caller;
use crate::protocol::ApiError;
use crate::App;

fn todo(op: &str) -> ApiError {
    ApiError::UnsupportedOperation(format!("{op} is not supported by this server yet."))
}

/// SetIdentityPoolRoles.
pub async fn set_identity_pool_roles(
    _app: &App,
    _caller: &Caller,
    _input: Value,
) -> Result<Value, ApiError> {
    Err(todo("SetIdentityPoolRoles"))
}
/// GetIdentityPoolRoles.
pub fn get_identity_pool_roles(
    _app: &App,
    _caller: &Caller,
    _input: Value,
) -> Result<Value, ApiError> {
    Err(todo("GetIdentityPoolRoles"))
}
/// SetPrincipalTagAttributeMap.
pub async fn set_principal_tag_attribute_map(
    _app: &App,
    _caller: &Caller,
    _input: Value,
) -> Result<Value, ApiError> {
    Err(todo("SetPrincipalTagAttributeMap"))
}
/// GetPrincipalTagAttributeMap.
pub fn get_principal_tag_attribute_map(
    _app: &App,
    _caller: &Caller,
    _input: Value,
) -> Result<Value, ApiError> {
    Err(todo("GetPrincipalTagAttributeMap"))
}
