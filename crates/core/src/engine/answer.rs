//! The failover function's answer (the Lambda's, `cloud-failover invoke`'s): what
//! [`crate::app::handler::handle`] returns, typed; its JSON has one top-level `status` that the
//! operators' SNS filter policy and callers key on.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::engine::failover::{RunOutcome, RunReport, SkipStatus, Skipped, ANSWER_VERSION};
use crate::engine::request::Mode;

/// The `status` of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// A run executed and every operation verified.
    Succeeded,
    /// A dry run planned.
    DryRun,
    /// Another run holds the cluster lock.
    InProgress,
    /// Flap damping skipped the failover.
    Cooldown,
    /// The event was not acted on.
    Ignored,
}

impl Status {
    /// The name, as in the JSON answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "SUCCEEDED",
            Status::DryRun => "DRY_RUN",
            Status::InProgress => "IN_PROGRESS",
            Status::Cooldown => "COOLDOWN",
            Status::Ignored => "IGNORED",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<SkipStatus> for Status {
    fn from(s: SkipStatus) -> Status {
        match s {
            SkipStatus::InProgress => Status::InProgress,
            SkipStatus::Cooldown => Status::Cooldown,
        }
    }
}

/// Why an event was not acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ignored {
    /// Why.
    pub reason: String,
    /// An event from outside this account and region, or an announcement from an unlisted
    /// source: flagged for the operators' notification filter.
    pub suspicious: bool,
}

/// What the failover function answers. Failures (a refusal, a FAILED run, a skip while the
/// followed member is unhealthy) are errors, not answers.
///
/// Serialized as the run report (`Succeeded`, `DryRun`: the report's keys, then `status`), the
/// skip (`InProgress`, `Cooldown`: `version`, `status`, `message`, `runId`) or
/// `{"version", "status": "IGNORED", "reason", "suspicious": true}` (`suspicious` only when
/// true): one top-level `status` each. A skip's variant is its `status` ([`From<RunOutcome>`]
/// builds it so).
#[derive(Clone, Debug)]
pub enum Answer {
    /// An executed run (`SUCCEEDED`).
    Succeeded(Box<RunReport>),
    /// A dry run (`DRY_RUN`).
    DryRun(Box<RunReport>),
    /// Another run holds the cluster lock (`IN_PROGRESS`).
    InProgress(Skipped),
    /// Flap damping (`COOLDOWN`).
    Cooldown(Skipped),
    /// Not acted on (`IGNORED`).
    Ignored(Ignored),
}

impl Answer {
    /// The answer's `status`.
    pub fn status(&self) -> Status {
        match self {
            Answer::Succeeded(_) => Status::Succeeded,
            Answer::DryRun(_) => Status::DryRun,
            Answer::InProgress(_) => Status::InProgress,
            Answer::Cooldown(_) => Status::Cooldown,
            Answer::Ignored(_) => Status::Ignored,
        }
    }

    /// The run report, when a run planned (`SUCCEEDED`, `DRY_RUN`).
    pub fn report(&self) -> Option<&RunReport> {
        match self {
            Answer::Succeeded(r) | Answer::DryRun(r) => Some(r),
            _ => None,
        }
    }

    /// Why the run stepped aside (`IN_PROGRESS`, `COOLDOWN`).
    pub fn skipped(&self) -> Option<&Skipped> {
        match self {
            Answer::InProgress(s) | Answer::Cooldown(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Answer {
    /// The status and what it is about: the run's summary, the skip's message, the reason
    /// for ignoring.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Answer::Succeeded(r) | Answer::DryRun(r) => &r.record.message,
            Answer::InProgress(s) | Answer::Cooldown(s) => &s.message,
            Answer::Ignored(i) => &i.reason,
        };
        write!(f, "{}: {what}", self.status())
    }
}

impl From<RunOutcome> for Answer {
    /// A run's outcome as the answer (a FAILED run is an error before it gets here: see
    /// [`RunOutcome::into_result`]).
    fn from(outcome: RunOutcome) -> Answer {
        match outcome {
            RunOutcome::Completed(r) => match r.record.mode {
                Mode::DryRun => Answer::DryRun(r),
                Mode::Execute => Answer::Succeeded(r),
            },
            RunOutcome::Skipped(s) => match s.status {
                SkipStatus::InProgress => Answer::InProgress(s),
                SkipStatus::Cooldown => Answer::Cooldown(s),
            },
        }
    }
}

impl Serialize for Answer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The report's keys, then `status` (the report itself has none).
        #[derive(Serialize)]
        struct Ran<'a> {
            #[serde(flatten)]
            report: &'a RunReport,
            status: Status,
        }
        #[derive(Serialize)]
        struct NotActedOn<'a> {
            version: u32,
            status: Status,
            reason: &'a str,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            suspicious: bool,
        }
        match self {
            Answer::Succeeded(report) | Answer::DryRun(report) => Ran {
                report,
                status: self.status(),
            }
            .serialize(serializer),
            // The skip carries its own `status`.
            Answer::InProgress(skip) | Answer::Cooldown(skip) => skip.serialize(serializer),
            Answer::Ignored(i) => NotActedOn {
                version: ANSWER_VERSION,
                status: Status::Ignored,
                reason: &i.reason,
                suspicious: i.suspicious,
            }
            .serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::declaration::Declaration;
    use crate::engine::failover::run;
    use crate::engine::request::{RunRequest, TargetSpec};
    use crate::lab::SEED_B;
    use crate::memory::MemoryCloud;

    const AFTER: &str = include_str!("../../../../examples/seed-article/declaration-after.json");

    async fn ran(mode: Mode) -> Answer {
        let cloud = MemoryCloud::seed();
        let mut req = RunRequest::new(TargetSpec::Instance(SEED_B.into()), mode, "test");
        req.force = true;
        let outcome = run(&cloud, &cloud, &Declaration::parse(AFTER).unwrap(), req)
            .await
            .unwrap();
        Answer::from(outcome)
    }

    fn skip(status: SkipStatus) -> Answer {
        Answer::from(RunOutcome::Skipped(Skipped {
            version: ANSWER_VERSION,
            status,
            message: "why".into(),
            run_id: "0123456789abcdef".into(),
        }))
    }

    /// Each variant's JSON has exactly one top-level `status` (a repeated key would fail the
    /// strict reader), with the variant's name, and the keys callers read.
    #[tokio::test]
    async fn each_answer_has_one_status() {
        let ignored = |suspicious| {
            Answer::Ignored(Ignored {
                reason: "not ours".into(),
                suspicious,
            })
        };
        let answers = [
            (ran(Mode::Execute).await, "SUCCEEDED"),
            (ran(Mode::DryRun).await, "DRY_RUN"),
            (skip(SkipStatus::InProgress), "IN_PROGRESS"),
            (skip(SkipStatus::Cooldown), "COOLDOWN"),
            (ignored(false), "IGNORED"),
            (ignored(true), "IGNORED"),
        ];
        for (answer, status) in answers {
            let text = serde_json::to_string(&answer).unwrap();
            let v = crate::engine::json::parse(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys.iter().filter(|k| **k == "status").count(), 1, "{text}");
            assert_eq!(v["status"], status, "{text}");
            assert_eq!(answer.status().as_str(), status);
            assert_eq!(answer.status().to_string(), status);
            assert_eq!(serde_json::to_value(answer.status()).unwrap(), status);
            assert_eq!(v["version"], ANSWER_VERSION, "{text}");
            match &answer {
                Answer::Succeeded(r) | Answer::DryRun(r) => {
                    assert_eq!(keys.first(), Some(&"version"), "{text}");
                    assert_eq!(keys.last(), Some(&"status"), "after the report: {text}");
                    assert_eq!(v["runId"], r.record.run_id.as_str());
                    assert!(v.get("plan").is_none(), "the plan is in the record: {text}");
                }
                Answer::InProgress(_) | Answer::Cooldown(_) => {
                    assert_eq!(keys, ["version", "status", "message", "runId"], "{text}");
                }
                Answer::Ignored(i) if i.suspicious => {
                    assert_eq!(keys, ["version", "status", "reason", "suspicious"]);
                    assert_eq!(v["suspicious"], true);
                }
                Answer::Ignored(_) => assert_eq!(keys, ["version", "status", "reason"]),
            }
        }
    }

    #[test]
    fn a_skip_becomes_the_answer_of_its_status() {
        assert!(matches!(
            skip(SkipStatus::InProgress),
            Answer::InProgress(_)
        ));
        assert!(matches!(skip(SkipStatus::Cooldown), Answer::Cooldown(_)));
        assert_eq!(skip(SkipStatus::Cooldown).to_string(), "COOLDOWN: why");
    }
}
