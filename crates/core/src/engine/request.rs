//! What a run is asked to do: its target, its mode and its inputs besides the declaration
//! (built by the handler from an event, by the CLI from its arguments, by the probe).

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use crate::engine::budget::Budget;

/// Whether a run changes the cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Plan and execute.
    Execute,
    /// Plan only: no mutating call and no write.
    DryRun,
}

impl Mode {
    /// The name, as in the JSON answer (`execute`, `dry-run`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Execute => "execute",
            Mode::DryRun => "dry-run",
        }
    }
}

/// Whom to fail over to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetSpec {
    /// This instance becomes active.
    Instance(String),
    /// A healthy running member other than this one becomes active (this one failed).
    PeerOf(String),
    /// The peer of the member the cloud follows now (an operator's "fail over", no id needed).
    Peer,
}

impl TargetSpec {
    /// What was asked, in words (a run's target until it is resolved to an instance, kept
    /// when it cannot be: a refusal still says whom it was for).
    pub fn asked(&self) -> String {
        match self {
            TargetSpec::Instance(id) => id.clone(),
            TargetSpec::PeerOf(id) => format!("the peer of {id}"),
            TargetSpec::Peer => "the peer of the active unit".into(),
        }
    }
}

/// One run's inputs besides the declaration.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// Target.
    pub target: TargetSpec,
    /// Execute or dry run.
    pub mode: Mode,
    /// What triggered it (recorded).
    pub trigger: String,
    /// Lambda request id, if any.
    pub request_id: Option<String>,
    /// Skip the cooldown.
    pub force: bool,
    /// Who asked, when a person or an appliance did (recorded with a forced run).
    pub requested_by: Option<String>,
    /// The appliance pair itself announced its target active (its own view of the box).
    pub announced: bool,
    /// When the caller must have returned (the Lambda deadline): the run stops sending
    /// mutations early enough to record its outcome before then.
    pub deadline: Option<Instant>,
    /// The budget this run shares with the executor's other runs (the fleet), if any.
    pub budget: Option<Arc<Budget>>,
    /// When the triggering event says it happened (alarms, announcements, state changes):
    /// a run older than the last decision carried out for the cluster is not carried out.
    pub event_at: Option<chrono::DateTime<Utc>>,
}

impl RunRequest {
    /// A request with no deadline and no force.
    pub fn new(target: TargetSpec, mode: Mode, trigger: impl Into<String>) -> RunRequest {
        RunRequest {
            target,
            mode,
            trigger: trigger.into(),
            request_id: None,
            force: false,
            requested_by: None,
            announced: false,
            deadline: None,
            budget: None,
            event_at: None,
        }
    }
}

/// A fresh run id (random, 16 hex digits).
pub fn new_run_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128);
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_modes_name_is_its_json() {
        for mode in [Mode::Execute, Mode::DryRun] {
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.as_str());
        }
    }
}
