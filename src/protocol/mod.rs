//! The awsJson 1.1 wire protocol: operation routing, the error type, and input validation
//! driven by the service model.

pub mod error;
pub mod router;
pub mod validate;

pub use error::ApiError;
pub use router::Operation;
