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

/// How a run lost its lock.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Lost {
    /// Another run took it over after the lease ran out (`by`: " by run X", or empty).
    #[error("{key} was taken over{by} after its lease ran out")]
    TakenOver {
        /// The lock's key.
        key: String,
        /// Who took it, when the lock object says.
        by: String,
    },
    /// The lock object was deleted while the run held it.
    #[error("{key} was deleted while this run held it")]
    Deleted {
        /// The lock's key.
        key: String,
    },
}

/// Why a run may not send another call under its lock (`execute::Fence`).
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lock is no longer the run's: nothing more is sent.
    #[error("lost the cluster lock ({0})")]
    Lost(Lost),
    /// The renewal was not written (it may be tried again).
    #[error("could not renew the cluster lock: {0}")]
    Unwritten(#[source] CloudError),
    /// The lease is shorter than a call's worst case.
    #[error(
        "the cluster lock's lease ({lease_s} s) cannot cover a call's worst case ({need_s} s)"
    )]
    TooShort {
        /// The lease, in seconds.
        lease_s: u64,
        /// What a call needs, in seconds.
        need_s: u64,
    },
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
