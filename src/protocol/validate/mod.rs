//! Input validation driven by the embedded service model: JSON types first (a
//! `SerializationException`), then the model's constraints with AWS's exact Coral messages (one
//! `ValidationException` listing every violation).
//!
//! - `compile`: the service model compiled into shapes, once at start-up.
//! - `walk`: an input value checked against those shapes, collecting every violation.
//! - `messages`: how AWS words and renders what the walk finds.

mod compile;
mod messages;
mod walk;

use serde_json::Value;

use super::error::ApiError;
use super::router::Operation;
use compile::Shape;
use messages::Path;

pub use compile::EXTRA_MAX;

/// Every operation's input validator, compiled once at start-up from the embedded model.
#[derive(Debug)]
pub struct Validator {
    /// Every shape of the model; references between shapes are indices into this vector.
    shapes: Vec<Shape>,
    /// The input shape of each operation, indexed by `op as usize`.
    inputs: Vec<usize>,
}

impl Validator {
    /// Compiles every shape and pattern of the embedded model. Fails only if the model is
    /// broken: unparsable, a dangling shape reference, an operation without an input structure,
    /// or a pattern that cannot be translated from Java's regex dialect.
    pub fn new() -> Result<Validator, String> {
        let (shapes, inputs) = compile::compile_model()?;
        Ok(Validator { shapes, inputs })
    }

    /// Validates the input of `op`: the first JSON type mismatch as a `Serialization` error,
    /// else every constraint violation in one `Validation` error, else `Ok`.
    pub fn validate(&self, op: Operation, input: &Value) -> Result<(), ApiError> {
        let Some(&root) = self.inputs.get(op as usize) else {
            return Err(ApiError::internal(format!(
                "no input shape for {}",
                op.name()
            )));
        };
        let mut items = Vec::new();
        self.walk(root, input, &Path::root(), &mut items)?;
        if items.is_empty() {
            return Ok(());
        }
        Err(messages::validation_error(&items))
    }
}

/// What the tests of every part share: a validator and the error texts it answers with.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod testing {
    use super::*;

    pub(super) fn v() -> Validator {
        Validator::new().unwrap()
    }

    pub(super) fn validation(op: Operation, input: Value) -> String {
        match v().validate(op, &input) {
            Err(ApiError::Validation(m)) => m,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    pub(super) fn serialization(op: Operation, input: Value) -> String {
        match v().validate(op, &input) {
            Err(ApiError::Serialization(m)) => m,
            other => panic!("expected a serialization error, got {other:?}"),
        }
    }

    pub(super) const POOL: &str = "us-east-1:6eaf0258-e8c5-467f-90de-6e212326e6d3";
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::protocol::validate::testing::{v, POOL};
    use serde_json::json;

    #[test]
    fn every_operation_resolves_and_never_panics() {
        let val = v();
        for op in Operation::ALL {
            for input in [json!({}), json!({"IdentityPoolId": POOL}), json!([])] {
                match val.validate(op, &input) {
                    Ok(()) | Err(ApiError::Validation(_)) | Err(ApiError::Serialization(_)) => {}
                    Err(other) => panic!("{op:?}: {other:?}"),
                }
            }
            assert!(matches!(
                val.validate(op, &json!({})),
                Ok(()) | Err(ApiError::Validation(_))
            ));
        }
    }
}
