//! Typed errors of the library.

use std::fmt;

use crate::declaration::DeclarationError;
use crate::events::EventError;

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

/// Why a failover run could not be done (each variant maps to a Lambda error type).
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    /// The declaration is invalid.
    #[error("invalid declaration: {0}")]
    Declaration(#[from] DeclarationError),
    /// The triggering event is invalid or unknown.
    #[error("invalid event: {0}")]
    Event(#[from] EventError),
    /// The declaration could not be read.
    #[error("cannot read the declaration from {location}: {reason}")]
    DeclarationUnavailable {
        /// Where it was looked for.
        location: String,
        /// Why it could not be read.
        reason: String,
    },
    /// A describe call failed, so no plan could be made.
    #[error("discovery failed: {0}")]
    Discovery(#[source] CloudError),
    /// The state bucket was not found.
    #[error("state bucket not found: {0}")]
    NoStateBucket(String),
    /// Reading or writing the state log failed.
    #[error("state log: {0}")]
    State(#[source] CloudError),
    /// The cluster lock could not be taken or settled (nothing was changed; retry).
    #[error("cluster lock: {0}")]
    Lock(#[source] CloudError),
    /// The cluster lock was taken over before a mutation round (nothing more was sent).
    #[error("{0}")]
    LockLost(String),
    /// A trigger named an instance that is not a member of this cluster (another pair's alarm
    /// or instance): nothing to do here.
    #[error("{0} is not a member of this cluster")]
    NotAMember(String),
    /// The planner refused (nothing was changed).
    #[error("refused: {}", .0.join("; "))]
    Refused(Vec<String>),
    /// Mutations were sent but some failed or did not verify; the state log says which.
    #[error("failover FAILED: {0}")]
    Failed(String),
    /// The run stepped aside (`IN_PROGRESS`, `COOLDOWN`) while the member the cloud follows
    /// is unhealthy: an error on purpose, so that Lambda retries the event (and, once its
    /// retries are spent, files it in the failure queue) instead of dropping the failover.
    #[error("{status}, but {reason}: try again ({message})")]
    Deferred {
        /// `IN_PROGRESS` or `COOLDOWN`.
        status: &'static str,
        /// Why the run stepped aside.
        message: String,
        /// Why that is not the end.
        reason: String,
    },
}

impl FailoverError {
    /// A short type name for Lambda's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            FailoverError::Declaration(_) => "InvalidDeclaration",
            FailoverError::Event(_) => "InvalidEvent",
            FailoverError::DeclarationUnavailable { .. } => "DeclarationUnavailable",
            FailoverError::Discovery(_) => "DiscoveryFailed",
            FailoverError::NoStateBucket(_) => "NoStateBucket",
            FailoverError::State(_) => "StateLogFailed",
            FailoverError::Lock(_) => "LockUnavailable",
            FailoverError::LockLost(_) => "LockLost",
            FailoverError::NotAMember(_) => "NotAMember",
            FailoverError::Refused(_) => "FailoverRefused",
            FailoverError::Failed(_) => "FailoverFailed",
            FailoverError::Deferred { .. } => "FailoverDeferred",
        }
    }
}
