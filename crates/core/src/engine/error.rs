//! The leaf error of every cloud call (EC2, S3, or the in-memory cloud). The errors of a run
//! are `failover::FailoverError`.

use std::fmt;

/// What kind of failure a cloud call met, independent of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorKind {
    /// Throttled (`RequestLimitExceeded`, `SlowDown`, 429/503): retry later.
    Throttled,
    /// The resource does not exist.
    NotFound,
    /// A conditional write failed (HTTP 412).
    PreconditionFailed,
    /// A conditional write met a conflicting write or delete (S3's 409
    /// `ConditionalRequestConflict`): it did not take effect; retry it.
    Conflict,
    /// The request was refused as invalid or unauthorized.
    Rejected,
    /// A network failure, timeout or 5xx.
    Transient,
}

/// A failed call to EC2 or S3 (or the in-memory cloud), with its operation and error code.
#[derive(Debug, thiserror::Error)]
pub struct CloudError {
    /// API operation, e.g. `ReplaceRoute`.
    pub operation: &'static str,
    /// Classification.
    pub kind: ErrorKind,
    /// Service error code, e.g. `InvalidRoute.NotFound`.
    pub code: Option<String>,
    /// Service message.
    pub message: String,
    /// The underlying SDK error, when there is one.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl CloudError {
    /// A new error without an underlying source.
    pub fn new(
        operation: &'static str,
        kind: ErrorKind,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        CloudError {
            operation,
            kind,
            code: Some(code.to_string()),
            message: message.into(),
            source: None,
        }
    }
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.operation)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// An event that is not one the function accepts, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    /// The field (JSON path) at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}
