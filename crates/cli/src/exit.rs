//! Exit codes, one per outcome an operator or a script must tell apart (README "Exit codes"),
//! and the error a command ends with: one line on stderr and its code.

use std::process::ExitCode;

use failover_core::engine::answer::{Ignored, Status};
use failover_core::engine::failover::{SkipStatus, Skipped};
use failover_core::FailoverError;

/// An error, a FAILED run, or a doctor FAIL.
pub const FAILED: u8 = 1;
/// A bad argument (clap's own code for its errors).
pub const USAGE: u8 = 2;
/// Another run holds the cluster lock (IN_PROGRESS).
pub const IN_PROGRESS: u8 = 3;
/// Flap damping skipped the failover (COOLDOWN).
pub const COOLDOWN: u8 = 4;
/// The event was not acted on (IGNORED).
pub const IGNORED: u8 = 5;
/// The planner refused (nothing changed).
pub const REFUSED: u8 = 6;
/// `inspect`: the cloud follows no single member, or the box announced the other unit.
pub const DRIFT: u8 = 7;
/// The state bucket was not found.
pub const NO_BUCKET: u8 = 8;
/// `unlock`/`reset`: a live run holds the lock (use --force).
pub const LOCK_HELD: u8 = 9;
/// A skip while the cloud follows an unhealthy member: to be retried (FailoverDeferred).
pub const DEFERRED: u8 = 10;
/// The run moved what it could and left items out, each named (PARTIAL).
pub const PARTIAL: u8 = 11;
/// `inspect`: the cloud follows a unit that is down (its traffic goes nowhere).
pub const FOLLOWS_DOWN: u8 = 12;

/// The code for a run that stepped aside.
pub fn of_skip(status: SkipStatus) -> u8 {
    match status {
        SkipStatus::InProgress => IN_PROGRESS,
        SkipStatus::Cooldown => COOLDOWN,
    }
}

/// A failure worth one line on stderr, with its exit code.
pub struct CliError {
    message: String,
    code: u8,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl CliError {
    /// An error (exit 1).
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: format!("error: {}", message.into()),
            code: FAILED,
        }
    }

    /// A bad argument (exit 2, as clap's own).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            message: format!("error: {}", message.into()),
            code: USAGE,
        }
    }

    /// An outcome that is not an error but must not read as success (its own exit code).
    pub fn status(code: u8, status: &str, message: &str) -> CliError {
        CliError {
            message: format!("{status}: {message}"),
            code,
        }
    }

    /// A run that stepped aside (IN_PROGRESS, COOLDOWN).
    pub fn skipped(skip: &Skipped) -> CliError {
        CliError::status(of_skip(skip.status), skip.status.as_str(), &skip.message)
    }

    /// An event that was not acted on (IGNORED).
    pub fn ignored(ignored: &Ignored) -> CliError {
        CliError::status(IGNORED, Status::Ignored.as_str(), &ignored.reason)
    }

    /// Says why on stderr; the process's exit code.
    pub fn exit(self) -> ExitCode {
        stderr!("{}", self.message);
        ExitCode::from(self.code)
    }
}

impl From<FailoverError> for CliError {
    fn from(e: FailoverError) -> Self {
        let code = match &e {
            FailoverError::Refused(_) => REFUSED,
            FailoverError::NoStateBucket(_) => NO_BUCKET,
            FailoverError::Deferred { .. } => DEFERRED,
            FailoverError::Partial(_) => PARTIAL,
            _ => FAILED,
        };
        CliError {
            message: format!("error: {e}"),
            code,
        }
    }
}

impl From<String> for CliError {
    fn from(e: String) -> Self {
        CliError::new(e)
    }
}
