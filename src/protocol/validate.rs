//! TEMPORARY STUB (replaced by the model-driven validator).
use super::{ApiError, Operation};
pub struct Validator;
impl Validator {
    pub fn new() -> Result<Validator, String> {
        Ok(Validator)
    }
    pub fn validate(&self, _op: Operation, input: &serde_json::Value) -> Result<(), ApiError> {
        if input.is_object() {
            Ok(())
        } else {
            Err(ApiError::Serialization("not an object".into()))
        }
    }
}
