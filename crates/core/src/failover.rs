//! Orchestration of one run: snapshot → target → plan → (state RUNNING → execute → verify →
//! state SUCCEEDED/FAILED + history).

use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;
use tracing::Instrument;

use crate::declaration::Declaration;
use crate::discovery::{discover, Snapshot};
use crate::error::FailoverError;
use crate::execute::execute;
use crate::plan::{plan, Plan};
use crate::ports::{Ec2, ObjectStore};
use crate::state::{state_key, Mode, RunRecord, StateLog, TaskState};

/// Whom to fail over to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetSpec {
    /// This instance becomes active.
    Instance(String),
    /// A running member other than this one becomes active (this one failed).
    PeerOf(String),
}

/// One run's inputs besides the declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRequest {
    /// Target.
    pub target: TargetSpec,
    /// Execute or dry run.
    pub mode: Mode,
    /// What triggered it (recorded).
    pub trigger: String,
    /// Lambda request id, if any.
    pub request_id: Option<String>,
}

/// The result of a run that got as far as a plan.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// The run record (also written to S3 when executing).
    #[serde(flatten)]
    pub record: RunRecord,
    /// The plan.
    pub plan: Plan,
    /// State bucket (when found).
    pub bucket: Option<String>,
    /// State file key.
    pub state_key: String,
    /// History object key (when written).
    pub history_key: Option<String>,
}

impl RunReport {
    /// `Err(Failed)` when the run executed and did not fully succeed.
    pub fn into_result(self) -> Result<RunReport, FailoverError> {
        if self.record.task_state == TaskState::Failed {
            return Err(FailoverError::Failed(self.record.message.clone()));
        }
        Ok(self)
    }
}

/// A fresh run id (random, 16 hex digits).
pub fn new_run_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128);
    format!("{:016x}", h.finish())
}

/// Resolves the target instance id against the snapshot.
pub fn resolve_target(snap: &Snapshot, spec: &TargetSpec) -> Result<String, FailoverError> {
    match spec {
        TargetSpec::Instance(id) => Ok(id.clone()),
        TargetSpec::PeerOf(failed) => {
            if snap.member(failed).is_none() {
                return Err(FailoverError::Refused(vec![format!(
                    "{failed} is not a member of the cluster, so it has no peer to fail over to"
                )]));
            }
            snap.members
                .iter()
                .find(|m| m.id != *failed && m.state == "running")
                .map(|m| m.id.clone())
                .ok_or_else(|| {
                    FailoverError::Refused(vec![format!(
                        "no running peer of {failed} to fail over to"
                    )])
                })
        }
    }
}

/// Runs one failover (or dry run) end to end.
pub async fn run(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    req: RunRequest,
) -> Result<RunReport, FailoverError> {
    let clock = Instant::now();
    let record = RunRecord {
        run_id: new_run_id(),
        cluster: decl.extension.cluster_name.clone(),
        trigger: req.trigger.clone(),
        request_id: req.request_id.clone(),
        mode: req.mode,
        target: String::new(),
        target_name: String::new(),
        task_state: TaskState::Running,
        message: String::new(),
        started_at: Utc::now(),
        finished_at: None,
        duration_ms: None,
        operations: Vec::new(),
        outcomes: Vec::new(),
        in_place: Vec::new(),
        warnings: Vec::new(),
        refusal: Vec::new(),
    };
    let span = tracing::info_span!("run", run_id = %record.run_id, cluster = %record.cluster, trigger = %req.trigger);
    run_recorded(ec2, store, decl, req, record, clock)
        .instrument(span)
        .await
}

async fn run_recorded(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    req: RunRequest,
    mut record: RunRecord,
    clock: Instant,
) -> Result<RunReport, FailoverError> {
    let snap = discover(ec2, store, decl)
        .await
        .map_err(FailoverError::Discovery)?;
    let log = snap.bucket.clone().map(|bucket| StateLog {
        store,
        bucket,
        decl,
    });
    let planned = resolve_target(&snap, &req.target).and_then(|target| {
        record.target = target.clone();
        plan(decl, &snap, &target).map_err(|r| FailoverError::Refused(r.reasons))
    });
    let plan = match planned {
        Ok(p) => p,
        Err(e) => {
            if let (FailoverError::Refused(reasons), Mode::Execute, Some(log)) =
                (&e, req.mode, &log)
            {
                record.refusal = reasons.clone();
                record.task_state = TaskState::Failed;
                record.message = format!("refused: {}", reasons.join("; "));
                finish(&mut record, clock);
                if let Err(w) = log.write_history(&record).await {
                    tracing::error!(error = %w, "could not record the refusal in history");
                }
            }
            tracing::warn!(error = %e, "no failover");
            return Err(e);
        }
    };
    record = record.with_plan(&plan);
    tracing::info!(target = %plan.target, operations = plan.operations.len(), in_place = plan.in_place.len(), "planned");
    for w in &plan.warnings {
        tracing::warn!(warning = %w, "plan warning");
    }
    let mut report = RunReport {
        record,
        plan,
        bucket: snap.bucket.clone(),
        state_key: state_key(decl),
        history_key: None,
    };
    if req.mode == Mode::DryRun {
        report.record.task_state = TaskState::Succeeded;
        report.record.message = format!(
            "dry run: {} operation(s) planned",
            report.plan.operations.len()
        );
        finish(&mut report.record, clock);
        return Ok(report);
    }
    let Some(log) = log else {
        return Err(FailoverError::NoStateBucket(describe_scope(decl)));
    };
    if !report.plan.operations.is_empty() {
        // Nothing is mutated unless the log says first what is about to be done.
        log.write_state(&report.record)
            .await
            .map_err(FailoverError::State)?;
        report.record.outcomes = execute(ec2, &report.plan, decl.extension.max_concurrency).await;
    }
    let failed: Vec<&str> = report
        .record
        .outcomes
        .iter()
        .filter(|o| !o.verified)
        .map(|o| o.operation.as_str())
        .collect();
    if failed.is_empty() {
        report.record.task_state = TaskState::Succeeded;
        report.record.message = if report.plan.operations.is_empty() {
            "already converged: nothing to change".into()
        } else {
            format!(
                "{} operation(s) done and verified",
                report.plan.operations.len()
            )
        };
    } else {
        report.record.task_state = TaskState::Failed;
        report.record.message = format!(
            "{} of {} operation(s) not verified ({}); the next run converges",
            failed.len(),
            report.plan.operations.len(),
            failed.join(", ")
        );
    }
    finish(&mut report.record, clock);
    log.write_state(&report.record)
        .await
        .map_err(FailoverError::State)?;
    report.history_key = Some(
        log.write_history(&report.record)
            .await
            .map_err(FailoverError::State)?,
    );
    tracing::info!(
        task_state = ?report.record.task_state,
        duration_ms = report.record.duration_ms,
        message = %report.record.message,
        "run finished"
    );
    Ok(report)
}

fn finish(record: &mut RunRecord, clock: Instant) {
    record.finished_at = Some(Utc::now());
    record.duration_ms = Some(clock.elapsed().as_millis() as u64);
}

fn describe_scope(decl: &Declaration) -> String {
    match &decl.external_storage.scope {
        crate::declaration::Scope::Name(n) => format!("no bucket named {n}"),
        crate::declaration::Scope::Tags(t) => {
            let tags: Vec<String> = t.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("no bucket tagged {}", tags.join(", "))
        }
    }
}
