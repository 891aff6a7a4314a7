//! Orchestration of one run: bucket → lock → snapshot → target → plan → (state RUNNING →
//! execute, fenced by the lock → verify → state SUCCEEDED/FAILED + history) → unlock.

use std::time::Instant;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

use crate::engine::declaration::DeclarationError;
use crate::engine::declaration::{Declaration, Scope};
use crate::engine::discovery::{discover, discover_cloud, resolve_bucket, Snapshot};
use crate::engine::error::CloudError;
use crate::engine::error::{EventError, LeaseError};
use crate::engine::execute::{execute, ExecOptions};
use crate::engine::execute::{Fence, FENCE_NEED};
use crate::engine::keys::state_key;
use crate::engine::lock::{acquire, effective_lease, Acquire, Lease};
use crate::engine::pace::{Hold, Pacing};
use crate::engine::plan::{plan, Plan};
use crate::engine::ports::{Ec2, ObjectStore};
use crate::engine::request::{new_run_id, Mode, RunRequest, TargetSpec};
use crate::engine::state::{
    cfe, foreign_record, recall_detached_eips, LastFailover, RunRecord, StateLog, TaskState,
    CLOCK_SKEW_SECONDS,
};

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
    #[error(transparent)]
    LockLost(LeaseError),
    /// A trigger named an instance that is not a member of this cluster (another pair's alarm
    /// or instance): nothing to do here.
    #[error("{0} is not a member of this cluster")]
    NotAMember(String),
    /// The fleet's declarations do not say which cluster an event is for (two claim it, or
    /// one that could does not load): an operator must fix them.
    #[error("fleet configuration: {0}")]
    Fleet(String),
    /// No cluster of the fleet owns the event as far as could be seen, but some cluster's
    /// members could not be discovered (retry).
    #[error("{0}")]
    Unroutable(String),
    /// The planner refused (nothing was changed).
    #[error("refused: {}", .0.join("; "))]
    Refused(Vec<String>),
    /// The event is older than the last decision carried out for the cluster (a retry, a
    /// redelivery, a replay): nothing was changed; the handler answers IGNORED.
    #[error("{0}")]
    Superseded(String),
    /// Mutations were sent but some failed or did not verify; the state log says which.
    #[error("failover FAILED: {0}")]
    Failed(String),
    /// Every planned operation verified, but items were left out (a deleted table or EIP, a
    /// route with no next hop on the target, …); the state log names each with its reason.
    #[error("failover PARTIAL: {0}")]
    Partial(String),
    /// The run stepped aside (`IN_PROGRESS`, `COOLDOWN`) while the member the cloud follows
    /// is unhealthy: an error on purpose, so that Lambda retries the event (and, once its
    /// retries are spent, files it in the failure queue) instead of dropping the failover.
    #[error("{status}, but {reason}: try again ({message})")]
    Deferred {
        /// Why the run stepped aside.
        status: SkipStatus,
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
            FailoverError::Fleet(_) => "FleetConfiguration",
            FailoverError::Unroutable(_) => "Unroutable",
            FailoverError::Refused(_) => "FailoverRefused",
            FailoverError::Superseded(_) => "Superseded",
            FailoverError::Failed(_) => "FailoverFailed",
            FailoverError::Partial(_) => "FailoverPartial",
            FailoverError::Deferred { .. } => "FailoverDeferred",
        }
    }
}

/// The version of the answer shape (`plan`, `execute`, `invoke` and the Lambdas answer alike):
/// 2 lists each operation once, in the record (`operations`, `inPlace`, `warnings`).
pub const ANSWER_VERSION: u32 = 2;

/// The result of a run that got as far as a plan.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    /// [`ANSWER_VERSION`].
    pub version: u32,
    /// The run record (also written to S3 when executing): target, operations, in place,
    /// warnings, outcomes.
    #[serde(flatten)]
    pub record: RunRecord,
    /// The plan (its contents are in the record; not repeated in the answer).
    #[serde(skip)]
    pub plan: Plan,
    /// State bucket (when found).
    pub bucket: Option<String>,
    /// State file key.
    pub state_key: String,
    /// History object key (when written).
    pub history_key: Option<String>,
}

/// The `status` of a run that stepped aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SkipStatus {
    /// Another run holds the cluster lock (or CFE is failing over).
    InProgress,
    /// Flap damping.
    Cooldown,
}

impl SkipStatus {
    /// The name, as in the JSON answer.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipStatus::InProgress => "IN_PROGRESS",
            SkipStatus::Cooldown => "COOLDOWN",
        }
    }
}

impl std::fmt::Display for SkipStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run stepped aside without planning or changing anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// [`ANSWER_VERSION`].
    pub version: u32,
    /// `IN_PROGRESS` (another run holds the lock) or `COOLDOWN` (flap damping).
    pub status: SkipStatus,
    /// Details.
    pub message: String,
    /// This run's id.
    pub run_id: String,
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum RunOutcome {
    /// It planned (and, when executing, ran the plan).
    Completed(Box<RunReport>),
    /// It stepped aside.
    Skipped(Skipped),
}

impl RunOutcome {
    /// `Err(Failed)` or `Err(Partial)` when the run executed and did not fully succeed (or,
    /// dry, would leave items out).
    pub fn into_result(self) -> Result<RunOutcome, FailoverError> {
        if let RunOutcome::Completed(r) = &self {
            match r.record.task_state {
                TaskState::Failed => return Err(FailoverError::Failed(r.record.message.clone())),
                TaskState::Partial => return Err(FailoverError::Partial(r.record.message.clone())),
                // A dry run says so too: a failover now would end PARTIAL.
                TaskState::DryRun if !r.record.skipped.is_empty() => {
                    return Err(FailoverError::Partial(r.record.message.clone()))
                }
                _ => {}
            }
        }
        Ok(self)
    }
}

/// Resolves the target instance id against the snapshot.
pub fn resolve_target(
    decl: &Declaration,
    snap: &Snapshot,
    spec: &TargetSpec,
) -> Result<String, FailoverError> {
    match spec {
        TargetSpec::Instance(id) => Ok(id.clone()),
        TargetSpec::Peer => {
            let pic = crate::engine::picture::picture(decl, snap, None);
            let active = pic.active.ok_or_else(|| {
                FailoverError::Refused(vec![
                    "the cloud follows no single member now (drift, or nothing managed): name the target (--target i-…)".into(),
                ])
            })?;
            resolve_target(decl, snap, &TargetSpec::PeerOf(active))
        }
        TargetSpec::PeerOf(failed) => {
            if snap.member(failed).is_none() {
                return Err(FailoverError::NotAMember(failed.clone()));
            }
            snap.members
                .iter()
                .find(|m| m.id != *failed && snap.healthy(m))
                .map(|m| m.id.clone())
                .ok_or_else(|| {
                    FailoverError::Refused(vec![format!(
                        "no running peer of {failed} that passes its status checks to fail over to"
                    )])
                })
        }
    }
}

/// The parts of the previous state file a run needs.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Previous {
    run_id: Option<String>,
    task_state: Option<TaskState>,
    last_failover: Option<LastFailover>,
    last_announcement: Option<LastFailover>,
    last_event_at: Option<chrono::DateTime<Utc>>,
    recovers: Option<String>,
    #[serde(default)]
    refusal: Vec<String>,
    finished_at: Option<chrono::DateTime<Utc>>,
    #[serde(default)]
    operations: Vec<crate::engine::plan::Operation>,
    #[serde(default)]
    outcomes: Vec<Verified>,
}

/// An outcome as the state file records it (only what the next run needs).
#[derive(Debug, Default, Deserialize)]
struct Verified {
    operation: String,
    verified: bool,
}

impl Previous {
    /// The operations the previous run saw done, when it finished less than `window` ago (a
    /// describe may not show them yet: EC2 is eventually consistent), and how much of the
    /// window is left.
    fn recently_verified(
        &self,
        window: std::time::Duration,
    ) -> (Vec<&crate::engine::plan::Operation>, std::time::Duration) {
        let age = self
            .finished_at
            .and_then(|at| (Utc::now() - at).to_std().ok());
        let Some(left) = age.and_then(|a| window.checked_sub(a)) else {
            return (Vec::new(), std::time::Duration::ZERO);
        };
        let done = self
            .operations
            .iter()
            .filter(|op| {
                self.outcomes
                    .iter()
                    .any(|o| o.operation == op.id && o.verified)
            })
            .collect();
        (done, left)
    }
}

fn previous(state: Option<&Value>) -> Previous {
    state
        .and_then(|s| s.get(crate::engine::declaration::EXTENSION_KEY))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Runs one failover (or dry run) end to end.
pub async fn run(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    req: RunRequest,
) -> Result<RunOutcome, FailoverError> {
    if decl.is_grouped() {
        // Each group has its own lock and state file: a run of the whole pair would hold
        // neither. The entry points serve a grouped declaration group by group.
        return Err(FailoverError::Refused(vec![format!(
            "the declaration names failover groups ({}): a run moves one group's items (Declaration::per_group)",
            decl.extension.groups.keys().cloned().collect::<Vec<_>>().join(", ")
        )]));
    }
    let record = RunRecord::new(new_run_id(), decl, &req);
    let span = tracing::info_span!(
        "run",
        run_id = %record.run_id,
        cluster = %record.cluster,
        trigger = %req.trigger,
        request_id = %req.request_id.as_deref().unwrap_or("-")
    );
    async move {
        match req.mode {
            Mode::DryRun => dry_run(ec2, store, decl, &req, record).await,
            Mode::Execute => execute_locked(ec2, store, decl, &req, record).await,
        }
    }
    .instrument(span)
    .await
}

async fn dry_run(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    req: &RunRequest,
    mut record: RunRecord,
) -> Result<RunOutcome, FailoverError> {
    let clock = Instant::now();
    let mut snap = discover(ec2, store, decl)
        .await
        .map_err(FailoverError::Discovery)?;
    let mut state = None;
    if let Some(bucket) = snap.bucket.clone() {
        let log = StateLog {
            store,
            bucket,
            decl,
        };
        state = log.read_state().await.map_err(FailoverError::State)?;
        recall_detached_eips(ec2, decl, state.as_ref(), &mut snap)
            .await
            .map_err(FailoverError::Discovery)?;
    }
    let target = resolve_target(decl, &snap, &req.target)?;
    let mut plan = plan(decl, &snap, &target).map_err(|r| FailoverError::Refused(r.reasons))?;
    plan.warnings
        .extend(against_the_box(state.as_ref(), &snap, req, &target));
    // An EIP the scope misses would stay behind: a dry run says so (a failover does not look).
    for (e, member) in crate::engine::discovery::unscoped_vip_eips(ec2, decl, &snap)
        .await
        .map_err(FailoverError::Discovery)?
    {
        let (what, fix) = crate::engine::discovery::unscoped_eip_words(decl, &e, &member);
        plan.warnings.push(format!("{what}; {fix}"));
    }
    record = record.with_plan(&plan);
    record.task_state = TaskState::DryRun;
    record.message = format!("dry run: {} operation(s) planned", plan.operations.len());
    if !plan.skipped.is_empty() {
        record.message += &format!(
            "; {} item(s) would be left out: {}",
            plan.skipped.len(),
            plan.skipped.join("; ")
        );
    }
    record.finish(clock);
    Ok(RunOutcome::Completed(Box::new(RunReport {
        version: ANSWER_VERSION,
        record,
        plan,
        bucket: snap.bucket,
        state_key: state_key(decl),
        history_key: None,
    })))
}

async fn execute_locked(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    req: &RunRequest,
    record: RunRecord,
) -> Result<RunOutcome, FailoverError> {
    // Sharing the account's budget, the other runs' bulk waits until this run has planned.
    let hold = req.budget.as_ref().map(|b| b.pacer.hold());
    let (bucket, _) = resolve_bucket(store, &decl.external_storage.scope)
        .await
        .map_err(FailoverError::Discovery)?;
    let bucket = bucket.ok_or_else(|| FailoverError::NoStateBucket(describe_scope(decl)))?;
    let lease = effective_lease(decl.extension.lock_lease_seconds);
    let lock = acquire(
        store,
        &bucket,
        &decl.extension.cluster_name,
        &record.run_id,
        req.request_id.as_deref(),
        lease,
        &decl.external_storage.encryption,
    )
    .await
    .map_err(FailoverError::Lock)?;
    let lease = match lock {
        Acquire::Held(lease) => lease,
        Acquire::Busy(holder) => {
            let message = format!(
                "another run ({}) holds the cluster lock until {}: it is handling the failover",
                holder.body.owner, holder.held_until
            );
            return Ok(RunOutcome::Skipped(in_progress(message, record.run_id)));
        }
    };
    let log = StateLog {
        store,
        bucket,
        decl,
    };
    let result = execute_held(ec2, decl, req, record, &log, &lease, hold).await;
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "could not release the cluster lock (its lease will expire)");
    }
    result
}

/// The run under the held lock, step by step from reading the state file to recording it.
async fn execute_held(
    ec2: &dyn Ec2,
    decl: &Declaration,
    req: &RunRequest,
    mut record: RunRecord,
    log: &StateLog<'_>,
    lease: &Lease<'_>,
    hold: Option<Hold<'_>>,
) -> Result<RunOutcome, FailoverError> {
    let clock = Instant::now();
    let (prev_state, snap) = read_state_and_discover(ec2, decl, log, req).await?;
    record.members = snap.members.iter().map(|m| m.id.clone()).collect();
    // The members' own lock, beside the cluster's: a clusterName edited while a run is in
    // flight names another cluster lock, never another pair, so two names never move one pair
    // at once.
    let members = if record.members.is_empty() {
        None
    } else {
        let name = crate::engine::lock::members_lock_name(
            &record.members,
            decl.extension.group.as_deref(),
        );
        match acquire(
            log.store,
            &log.bucket,
            &name,
            &record.run_id,
            req.request_id.as_deref(),
            lease.lease(),
            &decl.external_storage.encryption,
        )
        .await
        .map_err(FailoverError::Lock)?
        {
            Acquire::Held(l) => {
                if let Some(skip) = beside_another_run(decl, log, &record).await {
                    if let Err(e) = l.release().await {
                        tracing::warn!(error = %e, "could not release the members' lock (its lease will expire)");
                    }
                    return Ok(RunOutcome::Skipped(skip));
                }
                Some(l)
            }
            Acquire::Busy(holder) => {
                let message = format!(
                    "another run ({}) holds the lock of these members ({}) until {}: the pair is being failed over under another serverless.clusterName (was the declaration's clusterName changed during a run?)",
                    holder.body.owner,
                    record.members.join(", "),
                    holder.held_until
                );
                return Ok(RunOutcome::Skipped(in_progress(message, record.run_id)));
            }
        }
    };
    let leases = Leases {
        cluster: lease,
        members: members.as_ref(),
    };
    let result = execute_members_held(
        ec2, decl, req, record, log, &leases, hold, prev_state, snap, clock,
    )
    .await;
    if let Some(l) = members {
        if let Err(e) = l.release().await {
            tracing::warn!(error = %e, "could not release the members' lock (its lease will expire)");
        }
    }
    result
}

/// Whether another run moves the same pair under another name that may not run beside this
/// one (the whole pair beside a failover group, or a group this declaration does not name: the
/// declaration's groups were edited mid-run): then this run steps aside. A listing that fails
/// does not stop the run (the members' lock and the cluster lock still fence it).
async fn beside_another_run(
    decl: &Declaration,
    log: &StateLog<'_>,
    record: &RunRecord,
) -> Option<Skipped> {
    let groups: Vec<&str> = decl.extension.groups.keys().map(String::as_str).collect();
    let group = decl.extension.group.as_deref();
    let other = crate::engine::lock::other_run_on_pair(
        log.store,
        &log.bucket,
        &record.members,
        group,
        &groups,
    );
    match other.await {
        Ok(Some((name, holder))) => Some(in_progress(
            format!(
                "another run ({}) holds the lock {name} of these members ({}) until {}: the pair is being failed over under another name (were serverless.groups or clusterName changed during a run?)",
                holder.body.owner,
                record.members.join(", "),
                holder.held_until
            ),
            record.run_id.clone(),
        )),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the pair's other members' locks");
            None
        }
    }
}

/// A run that steps aside because another failover of the pair is under way.
fn in_progress(message: String, run_id: String) -> Skipped {
    tracing::info!(%message, "in progress elsewhere");
    Skipped {
        version: ANSWER_VERSION,
        status: SkipStatus::InProgress,
        message,
        run_id,
    }
}

/// The leases a run holds: its cluster's and, once discovered, its members'. Both must hold
/// before a mutation is sent.
struct Leases<'a, 'b> {
    cluster: &'a Lease<'b>,
    members: Option<&'a Lease<'b>>,
}

#[async_trait::async_trait]
impl Fence for Leases<'_, '_> {
    async fn hold_for(&self, need: std::time::Duration) -> Result<(), LeaseError> {
        self.cluster.hold_for(need).await?;
        match self.members {
            Some(m) => m.hold_for(need).await,
            None => Ok(()),
        }
    }
}

impl Leases<'_, '_> {
    /// Keeps both until their leases expire (a call may still land).
    fn keep_until_expiry(&self) {
        self.cluster.keep_until_expiry();
        if let Some(m) = self.members {
            m.keep_until_expiry();
        }
    }
}

/// The run under both locks, from the previous state file to the record.
#[allow(clippy::too_many_arguments)]
async fn execute_members_held(
    ec2: &dyn Ec2,
    decl: &Declaration,
    req: &RunRequest,
    mut record: RunRecord,
    log: &StateLog<'_>,
    leases: &Leases<'_, '_>,
    hold: Option<Hold<'_>>,
    prev_state: Option<Value>,
    mut snap: Snapshot,
    clock: Instant,
) -> Result<RunOutcome, FailoverError> {
    let lease = leases.cluster;
    let prev = previous_of_this_cluster(decl, prev_state.as_ref(), &mut record);
    record.last_failover = prev.last_failover.clone();
    record.last_announcement = prev.last_announcement.clone();
    record.last_event_at = prev.last_event_at;
    if let (Some(at), Some(last)) = (req.event_at, prev.last_event_at) {
        // Older news never overrides newer: a retried, redelivered or replayed event. By whole
        // seconds: EventBridge and CloudWatch date events to the second.
        if at.timestamp() < last.timestamp() {
            let why = format!(
                "the event is dated {at}, before the last decision carried out for this cluster (on an event dated {last}): older news, not acted on"
            );
            tracing::info!(%why, "superseded");
            return Err(FailoverError::Superseded(why));
        }
    }
    if let Some(wait) = announcement_wait(req, prev.last_announcement.as_ref())? {
        // Holding the lock, so that an announcement arriving meanwhile waits its turn after
        // this one (deferred, retried): the order of arrival stands.
        tracing::info!(
            wait_s = wait.as_secs(),
            "announcements alternate: this one waits its turn"
        );
        tokio::time::sleep(wait).await;
        snap = discover_cloud(ec2, decl, &log.bucket)
            .await
            .map_err(FailoverError::Discovery)?;
    }
    // An unfinished run's EIPs on prefix addresses, which the release left unassociated.
    recall_detached_eips(ec2, decl, prev_state.as_ref(), &mut snap)
        .await
        .map_err(FailoverError::Discovery)?;
    record.detached_eips = snap.detached_eips();
    record.detached_prefixes = snap.released_prefixes.clone();
    if let Some(skip) = heed_cfe(prev_state.as_ref(), &snap, req, &mut record) {
        return Ok(RunOutcome::Skipped(skip));
    }
    note_recovery(&prev, &mut record);
    let mut plan = plan_or_refuse(decl, req, &snap, &mut record, log, clock).await?;
    plan.warnings.extend(against_the_box(
        prev_state.as_ref(),
        &snap,
        req,
        &plan.target,
    ));
    drop(hold);
    record = record.with_plan(&plan);
    note_extended_lease(decl, lease, &mut record);
    tracing::info!(target = %plan.target, operations = plan.operations.len(), in_place = plan.in_place.len(), "planned");
    for w in &plan.warnings {
        tracing::warn!(warning = %w, "plan warning");
    }
    if let Some(skip) = cooldown(decl, req, &record, &plan) {
        return Ok(RunOutcome::Skipped(skip));
    }
    let mut report = RunReport {
        version: ANSWER_VERSION,
        record,
        plan,
        bucket: Some(log.bucket.clone()),
        state_key: state_key(decl),
        history_key: None,
    };
    if !report.plan.operations.is_empty() {
        execute_fenced(ec2, decl, req, log, leases, &mut report).await?;
    }
    record_outcome(req, log, report, clock).await
}

/// Reads the previous state file and discovers the cloud, at once (in turn with the other
/// runs of a shared budget). When the previous run of this cluster finished within
/// `serverless.verifySeconds` and the snapshot does not show what it verified, the snapshot is
/// stale (EC2 describes are eventually consistent, and two describes may disagree): discovery
/// is repeated with backoff until it does, or the window has passed.
async fn read_state_and_discover(
    ec2: &dyn Ec2,
    decl: &Declaration,
    log: &StateLog<'_>,
    req: &RunRequest,
) -> Result<(Option<Value>, Snapshot), FailoverError> {
    let _turn = match &req.budget {
        Some(b) => Some(b.discovery().await),
        None => None,
    };
    let (state, mut snap) = futures::try_join!(
        async { log.read_state().await.map_err(FailoverError::State) },
        async {
            discover_cloud(ec2, decl, &log.bucket)
                .await
                .map_err(FailoverError::Discovery)
        },
    )?;
    let window = std::time::Duration::from_secs(decl.extension.verify_seconds);
    let prev = previous(state.as_ref());
    let (done, left) = prev.recently_verified(window);
    let mut rereads = crate::engine::execute::Rereads::within(left);
    while !shows(&snap, &done) {
        let Some(wait) = rereads.next_wait() else {
            break;
        };
        tracing::info!(
            previous = prev.run_id.as_deref().unwrap_or("-"),
            wait_ms = wait.as_millis() as u64,
            "the cloud does not show the last run's verified changes yet (EC2 is eventually consistent): discovering again"
        );
        tokio::time::sleep(wait).await;
        snap = discover_cloud(ec2, decl, &log.bucket)
            .await
            .map_err(FailoverError::Discovery)?;
    }
    Ok((state, snap))
}

/// Whether `snap` shows each of `done` that it covers (what it does not cover, it cannot
/// contradict).
fn shows(snap: &Snapshot, done: &[&crate::engine::plan::Operation]) -> bool {
    if done.is_empty() {
        return true;
    }
    let tables: Vec<_> = snap.route_tables.iter().map(|t| t.table.clone()).collect();
    let eips: Vec<_> = snap
        .elastic_ips
        .iter()
        .map(|e| e.eip.clone())
        .chain(snap.prefix_eips.iter().map(|e| e.eip.clone()))
        .collect();
    let enis: Vec<_> = snap
        .members
        .iter()
        .flat_map(|m| m.network_interfaces.iter().cloned())
        .chain(snap.nic_map_interfaces.iter().cloned())
        .collect();
    done.iter()
        .all(|op| crate::engine::execute::holds(&op.action, &tables, &eips, &enis) != Some(false))
}

/// The previous run the state file records, unless it is another cluster's (then a warning).
fn previous_of_this_cluster(
    decl: &Declaration,
    prev_state: Option<&Value>,
    record: &mut RunRecord,
) -> Previous {
    let foreign = prev_state.and_then(|s| foreign_record(s, &record.cluster, &record.members));
    if let Some(why) = &foreign {
        let warning = format!(
            "the state file {} belongs to another cluster ({why}): nothing is read from it; give each cluster its own serverless.clusterName",
            state_key(decl)
        );
        tracing::warn!(%warning, "shared state file");
        record.warnings.push(warning);
    }
    if foreign.is_some() {
        Previous::default()
    } else {
        previous(prev_state)
    }
}

/// A state file CFE wrote: a skip while CFE fails over, else its last failover for the cooldown.
fn heed_cfe(
    prev_state: Option<&Value>,
    snap: &Snapshot,
    req: &RunRequest,
    record: &mut RunRecord,
) -> Option<Skipped> {
    // Side by side during a migration: while CFE runs a failover, no second one starts.
    let cfe = prev_state.and_then(|s| cfe::record(s, snap))?;
    if let Some(since) = cfe.running_since {
        let who = match &cfe.member {
            Some(m) => format!("CFE on {} ({m})", cfe.instance),
            // An operator's command (an announcement is forced too, but it is the same BIG-IP
            // failover CFE is carrying out).
            None if req.force && !req.announced => {
                // An operator's explicit command goes on; the record says what it met.
                record.warnings.push(format!(
                    "CFE on {} (no member of this cluster by its interfaces or Name tag) has been failing over since {since}: carried out as an explicit command",
                    cfe.instance
                ));
                return None;
            }
            None => format!(
                "CFE on {} (matched to no member by its interfaces or Name tag, so possibly this pair's under another name; an operator's cloud-failover execute is carried out)",
                cfe.instance
            ),
        };
        let message = format!(
            "{who} has been failing over since {since} (its state file says RUNNING): not starting a second failover",
        );
        return Some(in_progress(message, record.run_id.clone()));
    }
    record.last_failover = record.last_failover.take().or(cfe.last);
    None
}

/// Notes in `record` the unfinished run it recovers from, if any.
fn note_recovery(prev: &Previous, record: &mut RunRecord) {
    if matches!(
        prev.task_state,
        Some(TaskState::Running | TaskState::Failed | TaskState::Partial)
    ) && prev.refusal.is_empty()
    {
        record.recovers = prev.run_id.clone();
        tracing::warn!(
            previous = prev.run_id.as_deref().unwrap_or("-"),
            state = prev.task_state.map_or("-", TaskState::as_str),
            "the previous run did not finish cleanly: re-planning from the current cloud"
        );
    } else if !prev.refusal.is_empty() {
        // A refusal in between does not hide an unfinished run before it.
        record.recovers = prev.recovers.clone();
    }
}

/// Resolves the target and plans for it; a refusal is recorded before it is returned.
async fn plan_or_refuse(
    decl: &Declaration,
    req: &RunRequest,
    snap: &Snapshot,
    record: &mut RunRecord,
    log: &StateLog<'_>,
    clock: Instant,
) -> Result<Plan, FailoverError> {
    let planned = resolve_target(decl, snap, &req.target).and_then(|target| {
        if req.announced {
            // Another pair's announcement is not ours to follow, nor to record.
            if snap.member(&target).is_none() {
                return Err(FailoverError::NotAMember(target));
            }
            record.last_announcement = Some(LastFailover {
                target: target.clone(),
                at: Utc::now(),
            });
        }
        record.target = target.clone();
        plan(decl, snap, &target).map_err(|r| FailoverError::Refused(r.reasons))
    });
    match planned {
        Ok(p) => Ok(p),
        Err(e) => {
            if let FailoverError::Refused(reasons) = &e {
                record_refusal(log, record, clock, reasons).await;
            }
            tracing::info!(error = %e, "no failover");
            Err(e)
        }
    }
}

/// A run that moves the cloud away from the unit the appliance pair last announced active (an
/// operator's execute, an alarm), while that unit is healthy: said before (the dry run) and in
/// the answer, and kept in the record, since the cloud will then disagree with the box.
fn against_the_box(
    state: Option<&Value>,
    snap: &Snapshot,
    req: &RunRequest,
    target: &str,
) -> Option<String> {
    let said = crate::engine::state::last_announcement(state?)?;
    let healthy = snap.member(&said.target).is_some_and(|m| snap.healthy(m));
    (!req.announced && said.target != target && healthy).then(|| {
        format!(
            "the appliance pair announced {} active at {}; after this run the cloud will disagree with the box (inspect exits 7) until the box announces {target}",
            said.target,
            crate::engine::state::timestamp(said.at)
        )
    })
}

/// How soon after one announcement of the pair another naming the other unit is carried out:
/// announcements are rate-limited per pair, so a split brain (or a unit announcing the other's
/// instance) moves the cloud at most once in this time; a deferred one is retried.
pub const ANNOUNCE_MIN_INTERVAL_SECONDS: i64 = 10;

/// How long an announcement must wait for the pair's rate limit (see
/// [`announcement_too_soon`]); deferred (retried) when the Lambda deadline leaves no time for
/// the wait and the run.
fn announcement_wait(
    req: &RunRequest,
    last: Option<&LastFailover>,
) -> Result<Option<std::time::Duration>, FailoverError> {
    let (true, TargetSpec::Instance(target)) = (req.announced, &req.target) else {
        return Ok(None);
    };
    let Some(wait) = announcement_too_soon(last, target) else {
        return Ok(None);
    };
    let wait = std::time::Duration::from_secs(wait as u64);
    let room = req.deadline.is_none_or(|d| {
        d.saturating_duration_since(Instant::now())
            > wait + FENCE_NEED + crate::engine::execute::DEADLINE_RESERVE
    });
    if room {
        return Ok(Some(wait));
    }
    Err(FailoverError::Deferred {
        status: SkipStatus::Cooldown,
        message: format!(
            "the pair announced {} active less than {ANNOUNCE_MIN_INTERVAL_SECONDS} s ago and now {target}: announcements of this pair alternate faster than one per {ANNOUNCE_MIN_INTERVAL_SECONDS} s (split brain, or a unit announcing another's instance)",
            last.map_or("", |l| l.target.as_str()),
        ),
        reason: "no time is left in this invocation to wait its turn".into(),
    })
}

/// How many seconds are left before an announcement of `target` may follow `last`, when some
/// are.
fn announcement_too_soon(last: Option<&LastFailover>, target: &str) -> Option<i64> {
    let last = last.filter(|l| l.target != target)?;
    let age = (Utc::now() - last.at).num_seconds();
    (0..ANNOUNCE_MIN_INTERVAL_SECONDS)
        .contains(&age)
        .then(|| ANNOUNCE_MIN_INTERVAL_SECONDS - age)
}

/// Records a refusal in the state file and history (the last failover kept for the cooldown).
async fn record_refusal(
    log: &StateLog<'_>,
    record: &mut RunRecord,
    clock: Instant,
    reasons: &[String],
) {
    // The state file tells the truth too: the last task was refused.
    record.refusal = reasons.to_vec();
    record.task_state = TaskState::Failed;
    record.message = format!("refused: {}", reasons.join("; "));
    record.finish(clock);
    if let Err(w) = log.write_state(record).await {
        tracing::error!(error = %w, "could not record the refusal in the state file");
    }
    if let Err(w) = log.write_history(record).await {
        tracing::error!(error = %w, "could not record the refusal in history");
    }
}

/// Warns in `record` when the lease was extended beyond the declared `lockLeaseSeconds`.
fn note_extended_lease(decl: &Declaration, lease: &Lease<'_>, record: &mut RunRecord) {
    if lease.lease().as_secs() > decl.extension.lock_lease_seconds {
        record.warnings.push(format!(
            "serverless.lockLeaseSeconds {} is shorter than a call's worst case and the margin to renew ({} s): the lease was extended to {} s",
            decl.extension.lock_lease_seconds,
            FENCE_NEED.as_secs(),
            lease.lease().as_secs()
        ));
    }
}

/// Writes RUNNING and executes the plan, both under the lock's fence.
async fn execute_fenced(
    ec2: &dyn Ec2,
    decl: &Declaration,
    req: &RunRequest,
    log: &StateLog<'_>,
    lease: &Leases<'_, '_>,
    report: &mut RunReport,
) -> Result<(), FailoverError> {
    // Nothing is mutated unless the lock is still ours and the log first says what is about
    // to be done.
    lease
        .hold_for(FENCE_NEED)
        .await
        .map_err(FailoverError::LockLost)?;
    log.write_state(&report.record)
        .await
        .map_err(FailoverError::State)?;
    let opts = ExecOptions {
        max_concurrency: decl.extension.max_concurrency,
        pacing: Pacing {
            rate: decl.extension.mutation_rate as f64,
            burst: decl.extension.mutation_burst as f64,
        },
        deadline: req.deadline,
        budget: req.budget.clone(),
        verify_window: std::time::Duration::from_secs(decl.extension.verify_seconds),
    };
    report.record.outcomes = execute(ec2, &report.plan, &opts, lease as &dyn Fence).await;
    if report.record.outcomes.iter().any(|o| o.in_flight) {
        // Released now, the lock could pass to another run while our call still lands.
        lease.keep_until_expiry();
    }
    Ok(())
}

/// Concludes the run and records it in the state file and history.
async fn record_outcome(
    req: &RunRequest,
    log: &StateLog<'_>,
    mut report: RunReport,
    clock: Instant,
) -> Result<RunOutcome, FailoverError> {
    report.record.conclude();
    // The decision's time: its event's, or now for a command (an operator's, the probe's):
    // an event dated before it, delivered late or again, is older news and does not undo it.
    // Never later than now: an event dated ahead (within the clock skew allowed) must not
    // make the next real alarm look older.
    let now = crate::engine::clock::now();
    let decided = req.event_at.map_or(now, |at| at.min(now));
    report.record.last_event_at = report.record.last_event_at.max(Some(decided));
    if req.force && report.plan.operations.is_empty() {
        // An explicit decision (an operator's, the pair's announcement) the cloud already
        // follows is still the decision of record: reconcile and damping go by it.
        report.record.last_failover = Some(LastFailover {
            target: report.plan.target.clone(),
            at: Utc::now(),
        });
    }
    report.record.finish(clock);
    log.write_state(&report.record)
        .await
        .map_err(FailoverError::State)?;
    report.history_key = Some(
        log.write_history(&report.record)
            .await
            .map_err(FailoverError::State)?,
    );
    tracing::info!(
        task_state = report.record.task_state.as_str(),
        duration_ms = report.record.duration_ms,
        summary = %report.record.message,
        "run finished"
    );
    Ok(RunOutcome::Completed(Box::new(report)))
}

/// Flap damping: a failover to another member than the last one, within the cooldown.
fn cooldown(
    decl: &Declaration,
    req: &RunRequest,
    record: &RunRecord,
    plan: &Plan,
) -> Option<Skipped> {
    let window = decl.extension.cooldown_seconds;
    let last = record.last_failover.as_ref()?;
    if req.force || window == 0 || plan.operations.is_empty() || last.target == plan.target {
        return None;
    }
    let now = Utc::now();
    if last.at > now + chrono::Duration::seconds(CLOCK_SKEW_SECONDS) {
        tracing::warn!(at = %last.at, "the state file's last failover is in the future (a skewed clock or an edited file): no damping");
        return None;
    }
    let age = (now - last.at).num_seconds().max(0) as u64;
    if age >= window {
        return None;
    }
    let message = format!(
        "cooldown: the cluster failed over to {} {age} s ago; no failover to {} for another {} s (an operator's cloud-failover execute or direct invoke is carried out)",
        last.target,
        plan.target,
        window - age
    );
    tracing::warn!(%message, "flap damping");
    Some(Skipped {
        version: ANSWER_VERSION,
        status: SkipStatus::Cooldown,
        message,
        run_id: record.run_id.clone(),
    })
}

fn describe_scope(decl: &Declaration) -> String {
    match &decl.external_storage.scope {
        Scope::Name(n) => format!("no bucket named {n}"),
        Scope::Tags(t) => {
            let tags: Vec<String> = t.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("no bucket tagged {}", tags.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::declaration::Encryption;
    use crate::engine::error::ErrorKind;
    use crate::engine::net::Cidr;
    use crate::engine::ports::ObjectStore;
    use crate::lab::{SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_EIP, SEED_RTB};
    use crate::memory::{FaultTiming, MemoryCloud};
    use proptest::prelude::*;
    use serde_json::Value;

    const AFTER: &str = include_str!("../../../../examples/seed-article/declaration-after.json");
    const BUCKET: &str = "cfe-state-bigip-ha";

    fn state_key_default() -> String {
        crate::engine::keys::state_object(
            crate::engine::declaration::DEFAULT_CLUSTER,
            crate::engine::declaration::DEFAULT_STATE_FILE,
        )
    }

    /// A forced request (the cooldown has its own tests).
    fn req(target: &str, mode: Mode) -> RunRequest {
        let mut r = RunRequest::new(TargetSpec::Instance(target.into()), mode, "test");
        r.force = true;
        r
    }

    fn completed(o: RunOutcome) -> RunReport {
        match o {
            RunOutcome::Completed(r) => *r,
            RunOutcome::Skipped(s) => panic!("skipped: {s:?}"),
        }
    }

    async fn go(cloud: &MemoryCloud, target: &str, mode: Mode) -> Result<RunReport, FailoverError> {
        run(
            cloud,
            cloud,
            &Declaration::parse(AFTER).unwrap(),
            req(target, mode),
        )
        .await
        .map(completed)
    }

    fn state(cloud: &MemoryCloud) -> Value {
        serde_json::from_slice(
            &cloud
                .object(BUCKET, &state_key_default())
                .expect("state file"),
        )
        .unwrap()
    }

    fn route(cloud: &MemoryCloud) -> String {
        cloud
            .route_target(SEED_RTB, "0.0.0.0/0".parse().unwrap())
            .unwrap()
    }

    fn eip_eni(cloud: &MemoryCloud) -> String {
        cloud
            .elastic_ip(SEED_EIP.parse().unwrap())
            .unwrap()
            .network_interface_id
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn seed_failover_and_failback_write_cfe_state() {
        let cloud = MemoryCloud::seed();
        let r = go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert_eq!(r.record.task_state, TaskState::Succeeded);
        assert_eq!(route(&cloud), SEED_B_EXT);
        assert_eq!(eip_eni(&cloud), SEED_B_EXT);
        let s = state(&cloud);
        assert_eq!(s["taskState"], "SUCCEEDED");
        assert_eq!(s["message"], "Failover Complete");
        assert_eq!(s["instance"], "failover02.www.non-97.net");
        let op = &s["failoverOperations"]["routes"]["operations"][0];
        assert_eq!(op["routeTableId"], SEED_RTB);
        assert_eq!(op["networkInterfaceId"], SEED_B_EXT);
        assert_eq!(op["nextHopAddress"], "10.0.4.11");
        assert_eq!(op["ipVersion"], "4");
        let eip = &s["failoverOperations"]["addresses"]["publicAddresses"][SEED_EIP];
        assert_eq!(eip["current"]["PrivateIpAddress"], "10.0.0.101");
        assert_eq!(eip["target"]["PrivateIpAddress"], "10.0.4.101");
        assert_eq!(eip["AllocationId"], "eipalloc-0814e2bbaf002a2bc");
        assert_eq!(
            cloud.object_encryption(BUCKET, &state_key_default()),
            Some(Encryption::Aes256)
        );
        assert!(cloud
            .object(BUCKET, r.history_key.as_deref().unwrap())
            .is_some());

        let back = go(&cloud, SEED_A, Mode::Execute).await.unwrap();
        assert_eq!(back.record.task_state, TaskState::Succeeded);
        assert_eq!(route(&cloud), SEED_A_EXT);
        assert_eq!(eip_eni(&cloud), SEED_A_EXT);
        assert_eq!(state(&cloud)["instance"], "failover01.www.non-97.net");
    }

    #[tokio::test(start_paused = true)]
    async fn dry_run_and_converged_runs_mutate_nothing() {
        let cloud = MemoryCloud::seed();
        let r = go(&cloud, SEED_B, Mode::DryRun).await.unwrap();
        assert_eq!(r.plan.operations.len(), 2);
        // A dry run does not say SUCCEEDED.
        assert_eq!(r.record.task_state, TaskState::DryRun);
        assert_eq!(cloud.mutation_count(), 0);
        assert!(
            cloud.object(BUCKET, &state_key_default()).is_none(),
            "a dry run writes nothing"
        );
        go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert_eq!(cloud.mutation_count(), 2);
        cloud.reset_calls();
        let again = go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert!(again.plan.operations.is_empty());
        assert_eq!(cloud.mutation_count(), 0);
        assert_eq!(again.record.message, "already converged: nothing to change");
    }

    #[tokio::test(start_paused = true)]
    async fn refusal_mutates_nothing_and_is_recorded_in_history() {
        let cloud = MemoryCloud::seed();
        cloud.set_instance_state(SEED_B, "stopped");
        let e = run(
            &cloud,
            &cloud,
            &Declaration::parse(AFTER).unwrap(),
            req(SEED_B, Mode::Execute),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, FailoverError::Refused(_)));
        assert_eq!(cloud.mutation_count(), 0);
        // The state file says what happened (it used to keep "Failover Complete").
        let st = state(&cloud);
        assert_eq!(st["taskState"], "FAILED");
        assert!(
            st["message"]
                .as_str()
                .unwrap()
                .starts_with("Failover failed: refused: "),
            "{st:#}"
        );
        let history = cloud
            .list_keys(BUCKET, &crate::engine::keys::history_prefix("default"))
            .await
            .unwrap();
        assert_eq!(history.len(), 1);
    }

    /// One item the target cannot take (here the route, whose declared next hop is
    /// a VIP, not a primary IP) no longer stops the rest during an outage: the EIP moves, the
    /// route is left out with its reason in the answer, the state file and the history, and
    /// the run ends PARTIAL (an error: non-zero exit, Lambda's Errors metric).
    #[tokio::test(start_paused = true)]
    async fn one_stale_item_is_skipped_and_the_rest_moves() {
        let cloud = MemoryCloud::seed();
        let snat_none = include_str!("../../../../examples/seed-article/cfe-snat-none.json");
        let d = Declaration::parse(snat_none).unwrap();
        let out = run(&cloud, &cloud, &d, req(SEED_B, Mode::Execute))
            .await
            .unwrap();
        let RunOutcome::Completed(r) = &out else {
            panic!("{out:?}")
        };
        assert_eq!(r.record.task_state, TaskState::Partial, "{:?}", r.record);
        assert_eq!(r.record.skipped.len(), 1, "{:?}", r.record.skipped);
        assert!(r.record.skipped[0].contains("next hop 10.0.4.101 is a secondary IP"));
        assert_eq!(cloud.mutation_count(), 1, "the EIP only");
        assert_eq!(eip_eni(&cloud), SEED_B_EXT);
        assert_eq!(route(&cloud), SEED_A_EXT, "the skipped route stays");
        let e = out.into_result().unwrap_err();
        assert_eq!(e.error_type(), "FailoverPartial", "{e}");
        let st = state(&cloud);
        // CFE reads the top level (SUCCEEDED: every planned operation completed; it would wait
        // for up to 20 minutes on a state it does not know); the serverless block says PARTIAL.
        assert_eq!(st["taskState"], "SUCCEEDED");
        assert_eq!(st["serverless"]["taskState"], "PARTIAL");
        assert!(st["serverless"]["skipped"][0]
            .as_str()
            .unwrap()
            .contains("10.0.4.101"));
        let history = cloud
            .list_keys(BUCKET, &crate::engine::keys::history_prefix("default"))
            .await
            .unwrap();
        let h: Value = serde_json::from_slice(&cloud.object(BUCKET, &history[0]).unwrap()).unwrap();
        assert_eq!(h["taskState"], "PARTIAL");
        assert_eq!(h["skipped"], st["serverless"]["skipped"]);
    }

    /// "Eventual consistency in the Amazon EC2 API" (Amazon EC2 Developer Guide,
    /// https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html): every call
    /// is answered OK but shows in describes 2 s later. The verify round reads again with
    /// backoff instead of calling the run FAILED (with `verifySeconds: 0` it still does).
    #[tokio::test(start_paused = true)]
    async fn calls_that_show_in_describes_two_seconds_later_are_verified() {
        for (window, want) in [(10, TaskState::Succeeded), (0, TaskState::Failed)] {
            let cloud = MemoryCloud::seed();
            cloud.set_visibility(crate::memory::Visibility::Fixed(
                std::time::Duration::from_secs(2),
            ));
            let mut v: Value = serde_json::from_str(AFTER).unwrap();
            v["serverless"] = serde_json::json!({"verifySeconds": window});
            let d = Declaration::from_value(&v).unwrap();
            let r = completed(
                run(&cloud, &cloud, &d, req(SEED_B, Mode::Execute))
                    .await
                    .unwrap(),
            );
            assert_eq!(r.record.task_state, want, "{:?}", r.record.message);
            assert_eq!(cloud.mutation_count(), 2, "each call sent once");
        }
    }

    /// A run right after a SUCCEEDED one does not plan from a stale read. Describes
    /// lag 3 s behind the first run's changes: the failback must not find "A already active"
    /// and change nothing; it waits for describes to show the first run's verified changes.
    #[tokio::test(start_paused = true)]
    async fn a_run_right_after_a_succeeded_one_does_not_plan_from_a_stale_read() {
        let cloud = MemoryCloud::seed();
        cloud.set_visibility(crate::memory::Visibility::Immediate);
        let first = go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert_eq!(first.record.task_state, TaskState::Succeeded);
        cloud.set_visibility(crate::memory::Visibility::Fixed(
            std::time::Duration::from_secs(3),
        ));
        let back = go(&cloud, SEED_A, Mode::Execute).await.unwrap();
        assert_eq!(back.record.task_state, TaskState::Succeeded);
        assert_eq!(back.plan.operations.len(), 2, "{:?}", back.plan);
        assert_eq!(route(&cloud), SEED_A_EXT);
        assert_eq!(eip_eni(&cloud), SEED_A_EXT);
    }

    #[tokio::test(start_paused = true)]
    async fn half_done_run_is_logged_and_the_next_run_finishes_it() {
        let cloud = MemoryCloud::seed();
        cloud.inject(
            "ReplaceRoute",
            ErrorKind::Transient,
            FaultTiming::BeforeEffect,
            1,
        );
        let r = go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert_eq!(r.record.task_state, TaskState::Failed);
        assert_eq!(eip_eni(&cloud), SEED_B_EXT, "the EIP moved");
        assert_eq!(route(&cloud), SEED_A_EXT, "the route did not");
        let s = state(&cloud);
        assert_eq!(s["taskState"], "FAILED");
        let outcomes = s["serverless"]["outcomes"].as_array().unwrap();
        let by_id = |id: &str| {
            outcomes
                .iter()
                .find(|o| o["operation"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(by_id("eip:98.80.114.203")["verified"], true);
        assert_eq!(
            by_id("route:rtb-060adeaa8fe5b2bbb:0.0.0.0/0")["status"],
            "FAILED"
        );
        assert!(by_id("route:rtb-060adeaa8fe5b2bbb:0.0.0.0/0")["error"]
            .as_str()
            .unwrap()
            .contains("InternalError"));
        assert!(RunOutcome::Completed(Box::new(r)).into_result().is_err());

        cloud.reset_calls();
        let next = go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert_eq!(next.record.task_state, TaskState::Succeeded);
        let ids: Vec<&str> = next.plan.operations.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(
            ids,
            vec!["route:rtb-060adeaa8fe5b2bbb:0.0.0.0/0"],
            "no stale replay"
        );
        assert_eq!(cloud.mutation_count(), 1);
        assert_eq!(route(&cloud), SEED_B_EXT);
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_calls_are_paced_and_retried() {
        let cloud = MemoryCloud::seed();
        cloud.inject(
            "ReplaceRoute",
            ErrorKind::Throttled,
            FaultTiming::BeforeEffect,
            2,
        );
        let r = go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert_eq!(r.record.task_state, TaskState::Succeeded);
        let o = r
            .record
            .outcomes
            .iter()
            .find(|o| o.operation.starts_with("route:"))
            .unwrap();
        assert_eq!(o.attempts, 3);
        assert!(o.error.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn lost_response_still_verifies() {
        let cloud = MemoryCloud::seed();
        cloud.inject(
            "AssociateAddress",
            ErrorKind::Transient,
            FaultTiming::AfterEffect,
            1,
        );
        let r = go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert_eq!(r.record.task_state, TaskState::Succeeded);
        let o = r
            .record
            .outcomes
            .iter()
            .find(|o| o.operation.starts_with("eip:"))
            .unwrap();
        assert!(o.error.is_some() && o.verified);
    }

    #[tokio::test(start_paused = true)]
    async fn peer_of_a_failed_member_is_the_target() {
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        let mut rq = req(SEED_A, Mode::Execute);
        rq.target = TargetSpec::PeerOf(SEED_A.into());
        let r = completed(run(&cloud, &cloud, &d, rq.clone()).await.unwrap());
        assert_eq!(r.record.target, SEED_B);
        cloud.set_instance_state(SEED_B, "stopped");
        let e = run(&cloud, &cloud, &d, rq).await.unwrap_err();
        assert!(e.to_string().contains("no running peer"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn missing_state_bucket_stops_before_any_mutation() {
        let cloud = MemoryCloud::seed();
        let mut v: Value = serde_json::from_str(AFTER).unwrap();
        v["externalStorage"] = serde_json::json!({"scopingName": "no-such-bucket"});
        let d = Declaration::from_value(&v).unwrap();
        let e = run(&cloud, &cloud, &d, req(SEED_B, Mode::Execute))
            .await
            .unwrap_err();
        assert!(matches!(e, FailoverError::NoStateBucket(_)), "{e}");
        assert_eq!(cloud.mutation_count(), 0);
    }

    fn unforced(target: &str) -> RunRequest {
        RunRequest::new(TargetSpec::PeerOf(target.into()), Mode::Execute, "alarm")
    }

    #[tokio::test(start_paused = true)]
    async fn cooldown_damps_flapping_unless_forced() {
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        // An alarm on A: failover to B.
        completed(run(&cloud, &cloud, &d, unforced(SEED_A)).await.unwrap());
        assert_eq!(route(&cloud), SEED_B_EXT);
        // Seconds later an alarm on B: within the cooldown, no failback.
        cloud.reset_calls();
        match run(&cloud, &cloud, &d, unforced(SEED_B)).await.unwrap() {
            RunOutcome::Skipped(s) => {
                assert_eq!(s.status, SkipStatus::Cooldown);
                assert!(
                    s.message.contains("failed over to i-061cbb31a5158ad30"),
                    "{}",
                    s.message
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(cloud.mutation_count(), 0);
        assert_eq!(route(&cloud), SEED_B_EXT);
        // Forced: it goes.
        go(&cloud, SEED_A, Mode::Execute).await.unwrap();
        assert_eq!(route(&cloud), SEED_A_EXT);
        // With cooldownSeconds 0 there is no damping.
        let mut v: Value = serde_json::from_str(AFTER).unwrap();
        v["serverless"] = serde_json::json!({"cooldownSeconds": 0});
        let d0 = Declaration::from_value(&v).unwrap();
        completed(run(&cloud, &cloud, &d0, unforced(SEED_A)).await.unwrap());
        assert_eq!(route(&cloud), SEED_B_EXT);
    }

    /// A paced wave longer than the lease. Lease 10 s, 31 routes and the EIP at one
    /// mutation a second, a second run to the other member 14 s in. Before the fix the second
    /// run took the expired lock and both sent: routes split between A and B.
    #[tokio::test(start_paused = true)]
    async fn the_lease_outlives_a_paced_wave() {
        let mut topo = crate::lab::Topology::seed();
        let extra: Vec<Cidr> = (0..30)
            .map(|i| format!("172.16.{i}.0/24").parse().unwrap())
            .collect();
        topo.route_tables[0]
            .routes
            .extend(extra.iter().map(|c| (*c, SEED_A_EXT.to_string())));
        let cloud = MemoryCloud::from_topology(&topo);
        let mut v: Value = serde_json::from_str(AFTER).unwrap();
        let ranges = &mut v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"];
        for c in &extra {
            ranges
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({ "range": c.to_string() }));
        }
        v["serverless"] = serde_json::json!({
            "lockLeaseSeconds": 10, "mutationRate": 1, "mutationBurst": 1, "cooldownSeconds": 0
        });
        let d = Declaration::from_value(&v).unwrap();
        let (first, second) =
            tokio::join!(run(&cloud, &cloud, &d, req(SEED_B, Mode::Execute)), async {
                tokio::time::sleep(std::time::Duration::from_secs(14)).await;
                run(&cloud, &cloud, &d, req(SEED_A, Mode::Execute)).await
            });
        let first = completed(first.unwrap());
        assert_eq!(first.record.task_state, TaskState::Succeeded);
        assert!(
            first
                .record
                .warnings
                .iter()
                .any(|w| w.contains("lease was extended")),
            "{:?}",
            first.record.warnings
        );
        match second.unwrap() {
            RunOutcome::Skipped(s) => assert_eq!(s.status, SkipStatus::InProgress),
            RunOutcome::Completed(r) => panic!(
                "a second run ran inside the first's wave: {:?}",
                r.record.message
            ),
        }
        for c in std::iter::once("0.0.0.0/0".parse().unwrap()).chain(extra) {
            assert_eq!(cloud.route_target(SEED_RTB, c).unwrap(), SEED_B_EXT, "{c}");
        }
        assert_eq!(eip_eni(&cloud), SEED_B_EXT);
        assert_eq!(state(&cloud)["instance"], "failover02.www.non-97.net");
    }

    /// Two copies of one template (same addressing plan and tags) in one account; the
    /// cluster under test is copy 1, whose ids sort after copy 0's.
    fn two_vpcs() -> (MemoryCloud, crate::lab::Topology) {
        let seed = crate::lab::Topology::seed();
        let copy = seed.copy(1);
        let cloud = MemoryCloud::from_topology(&seed);
        cloud.add_topology(&copy);
        (cloud, copy)
    }

    fn decl_for(copy: &crate::lab::Topology, serverless: Value) -> Declaration {
        let mut v: Value =
            serde_json::from_str(&AFTER.replace(SEED_RTB, &copy.route_tables[0].id)).unwrap();
        v["serverless"] = serverless;
        Declaration::from_value(&v).unwrap()
    }

    /// Before the fix the peer of copy 1's A was copy 0's A (the first running
    /// member by id), so the cluster failed over into the other VPC.
    #[tokio::test(start_paused = true)]
    async fn a_cluster_never_fails_over_into_another_vpc() {
        let (cloud, copy) = two_vpcs();
        let d = decl_for(&copy, serde_json::json!({}));
        let (a, b) = (&copy.instances[0], &copy.instances[1]);
        let mut r = RunRequest::new(TargetSpec::PeerOf(a.id.clone()), Mode::Execute, "ec2");
        r.force = true;
        let out = completed(run(&cloud, &cloud, &d, r).await.unwrap());
        assert_eq!(out.plan.target, b.id, "{:?}", out.plan);
        let rtb = &copy.route_tables[0].id;
        let b_ext = &b.interfaces[1].id;
        assert_eq!(
            cloud
                .route_target(rtb, "0.0.0.0/0".parse().unwrap())
                .as_ref(),
            Some(b_ext)
        );
        let eip = cloud.elastic_ip(copy.elastic_ips[0].public_ip).unwrap();
        assert_eq!(eip.network_interface_id.as_ref(), Some(b_ext));
        // Copy 0 is untouched: its EIP (same tags, same VIPs) was out of scope.
        assert_eq!(route(&cloud), SEED_A_EXT);
        assert_eq!(eip_eni(&cloud), SEED_A_EXT);
        assert!(
            out.plan
                .warnings
                .iter()
                .any(|w| w.contains(SEED_EIP) && w.contains("left alone")),
            "{:?}",
            out.plan.warnings
        );
        // A target in the other VPC is not a member.
        let err = run(&cloud, &cloud, &d, req(SEED_B, Mode::Execute))
            .await
            .unwrap_err();
        let FailoverError::Refused(reasons) = err else {
            panic!("{err:?}")
        };
        assert!(
            reasons[0].contains("not a member") && reasons[0].contains(&copy.vpc_id),
            "{reasons:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_scope_spanning_vpcs_or_outside_the_declared_one_is_refused() {
        let (cloud, copy) = two_vpcs();
        // Tags alone select both copies' tables: refused, naming both VPCs.
        let mut v: Value = serde_json::from_str(AFTER).unwrap();
        let group = &mut v["failoverRoutes"]["routeGroupDefinitions"][0];
        group.as_object_mut().unwrap().remove("scopingName");
        group["scopingTags"] =
            serde_json::json!({"f5_cloud_failover_label": "bigip_high_availability_solution"});
        let tagged = Declaration::from_value(&v).unwrap();
        let err = run(&cloud, &cloud, &tagged, req(SEED_B, Mode::DryRun))
            .await
            .unwrap_err();
        let FailoverError::Refused(reasons) = err else {
            panic!("{err:?}")
        };
        assert!(reasons[0].contains("spans 2 VPCs"), "{reasons:?}");
        assert!(
            reasons[0].contains("vpc-0287f01407d1276f0") && reasons[0].contains(&copy.vpc_id),
            "{reasons:?}"
        );
        // Declaring the VPC settles it.
        v["serverless"] = serde_json::json!({"vpcId": "vpc-0287f01407d1276f0"});
        let scoped = Declaration::from_value(&v).unwrap();
        let out = completed(
            run(&cloud, &cloud, &scoped, req(SEED_B, Mode::Execute))
                .await
                .unwrap(),
        );
        assert_eq!(out.record.task_state, TaskState::Succeeded);
        assert_eq!(route(&cloud), SEED_B_EXT);
        let other = &copy.route_tables[0].id;
        assert_eq!(
            cloud
                .route_target(other, "0.0.0.0/0".parse().unwrap())
                .as_ref(),
            Some(&copy.instances[0].interfaces[1].id)
        );
        // A table named by id in another VPC than the declared one is refused.
        let d = decl_for(&copy, serde_json::json!({"vpcId": "vpc-0287f01407d1276f0"}));
        let err = run(&cloud, &cloud, &d, req(SEED_A, Mode::DryRun))
            .await
            .unwrap_err();
        let FailoverError::Refused(reasons) = err else {
            panic!("{err:?}")
        };
        assert!(
            reasons[0].contains(other) && reasons[0].contains("outside the cluster's VPC"),
            "{reasons:?}"
        );
    }

    /// Found by an adversarial review: the other VPC's EIP (same tags, same VIPs) is free for
    /// a moment; before the fix this cluster took it, stealing the other cluster's address.
    #[tokio::test(start_paused = true)]
    async fn a_free_eip_of_another_vpc_is_not_taken() {
        let (cloud, copy) = two_vpcs();
        let other_eip = copy.elastic_ips[0].allocation_id.clone();
        {
            // Disassociate the copy's EIP (its appliances being rebuilt).
            cloud.disassociate(&other_eip);
        }
        let d = Declaration::parse(AFTER).unwrap();
        let out = completed(
            run(&cloud, &cloud, &d, req(SEED_B, Mode::Execute))
                .await
                .unwrap(),
        );
        assert_eq!(out.record.task_state, TaskState::Succeeded);
        let theirs = cloud.elastic_ip(copy.elastic_ips[0].public_ip).unwrap();
        assert_eq!(
            theirs.association_id, None,
            "the other cluster's EIP was taken"
        );
        assert!(
            out.plan.warnings.iter().any(|w| w.contains("left alone")),
            "{:?}",
            out.plan.warnings
        );
        assert_eq!(eip_eni(&cloud), SEED_B_EXT);
    }

    /// Found by an adversarial review: another pair's free EIP with the same tags but other
    /// VIPs refused every failover (CFE #118's rule); it is left alone with a warning.
    #[tokio::test(start_paused = true)]
    async fn an_eip_whose_vips_are_on_no_member_is_left_alone() {
        let (cloud, copy) = two_vpcs();
        let theirs = copy.elastic_ips[0].allocation_id.clone();
        cloud.disassociate(&theirs);
        cloud.tag_eip(&theirs, "f5_cloud_failover_vips", "10.5.0.101,10.5.4.101");
        let d = Declaration::parse(AFTER).unwrap();
        let out = completed(
            run(&cloud, &cloud, &d, req(SEED_B, Mode::Execute))
                .await
                .unwrap(),
        );
        assert_eq!(out.record.task_state, TaskState::Succeeded);
        assert!(
            out.plan
                .warnings
                .iter()
                .any(|w| w.contains("none of its VIPs (10.5.0.101, 10.5.4.101)")),
            "{:?}",
            out.plan.warnings
        );
        assert_eq!(eip_eni(&cloud), SEED_B_EXT);
    }

    /// Two clusters in one bucket, both unnamed, so one state key. Before the fix
    /// the second read the first's record and skipped its own alarm-driven failover as
    /// COOLDOWN. A named cluster keeps its own state file.
    #[tokio::test(start_paused = true)]
    async fn a_cluster_reads_nothing_from_another_clusters_record() {
        let (cloud, copy) = two_vpcs();
        let seed = Declaration::parse(AFTER).unwrap();
        let other = decl_for(&copy, serde_json::json!({}));
        let alarm =
            |id: &str| RunRequest::new(TargetSpec::PeerOf(id.into()), Mode::Execute, "alarm");
        completed(run(&cloud, &cloud, &seed, alarm(SEED_A)).await.unwrap());
        assert_eq!(route(&cloud), SEED_B_EXT);
        let out = completed(
            run(&cloud, &cloud, &other, alarm(&copy.instances[0].id))
                .await
                .unwrap(),
        );
        assert_eq!(out.record.task_state, TaskState::Succeeded);
        assert_eq!(out.plan.target, copy.instances[1].id);
        assert!(
            out.record
                .warnings
                .iter()
                .any(|w| w.contains("belongs to another cluster")),
            "{:?}",
            out.record.warnings
        );
        // Named: its own key.
        let named = decl_for(&copy, serde_json::json!({"clusterName": "pair-2"}));
        assert_eq!(
            state_key(&named),
            crate::engine::keys::state_object(
                "pair-2",
                crate::engine::declaration::DEFAULT_STATE_FILE
            )
        );
        assert_eq!(state_key(&seed), state_key_default());
        let r = completed(
            run(
                &cloud,
                &cloud,
                &named,
                req(&copy.instances[0].id, Mode::Execute),
            )
            .await
            .unwrap(),
        );
        assert_eq!(r.record.task_state, TaskState::Succeeded);
        assert!(cloud.object(BUCKET, &state_key(&named)).is_some());
        assert!(crate::engine::state::shared_keys(&seed, &other).len() == 2);
        assert!(crate::engine::state::shared_keys(&seed, &named).is_empty());
    }

    /// A rename never splits the cloud: while a run under the old clusterName is in flight
    /// (holding its cluster's and its members' locks), an operator's execute under the new
    /// name takes the new name's lock but not the members': IN_PROGRESS, nothing sent. Once the
    /// old run ends, the new name runs.
    #[tokio::test(start_paused = true)]
    async fn a_renamed_cluster_waits_for_a_run_under_its_old_name() {
        use crate::engine::lock::{acquire, Acquire};
        let cloud = MemoryCloud::seed();
        let lease = std::time::Duration::from_secs(60);
        let take = |name: String| {
            let cloud = &cloud;
            async move {
                match acquire(
                    cloud,
                    BUCKET,
                    &name,
                    "old-run",
                    None,
                    lease,
                    &Encryption::Aes256,
                )
                .await
                .unwrap()
                {
                    Acquire::Held(l) => l,
                    Acquire::Busy(h) => panic!("{h:?}"),
                }
            }
        };
        let old = take("default".into()).await;
        let members = take(crate::engine::lock::members_lock_name(
            &[SEED_B.into(), SEED_A.into()],
            None,
        ))
        .await;
        let mut v: Value = serde_json::from_str(AFTER).unwrap();
        v["serverless"] = serde_json::json!({"clusterName": "web-renamed"});
        let renamed = Declaration::from_value(&v).unwrap();
        match run(&cloud, &cloud, &renamed, req(SEED_B, Mode::Execute))
            .await
            .unwrap()
        {
            RunOutcome::Skipped(s) => {
                assert_eq!(s.status, SkipStatus::InProgress);
                assert!(
                    s.message.contains("another serverless.clusterName"),
                    "{}",
                    s.message
                );
            }
            RunOutcome::Completed(r) => panic!("split: {:?}", r.record.message),
        }
        assert_eq!(cloud.mutation_count(), 0);
        old.release().await.unwrap();
        members.release().await.unwrap();
        let r = completed(
            run(&cloud, &cloud, &renamed, req(SEED_B, Mode::Execute))
                .await
                .unwrap(),
        );
        assert_eq!(r.record.task_state, TaskState::Succeeded);
    }

    /// `--target peer` fails over to the other member without its id.
    #[tokio::test(start_paused = true)]
    async fn peer_is_the_other_member_of_the_one_followed() {
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        let mut r = RunRequest::new(TargetSpec::Peer, Mode::Execute, "cli");
        r.force = true;
        let out = completed(run(&cloud, &cloud, &d, r.clone()).await.unwrap());
        assert_eq!(out.plan.target, SEED_B);
        let back = completed(run(&cloud, &cloud, &d, r).await.unwrap());
        assert_eq!(back.plan.target, SEED_A);
        assert_eq!(route(&cloud), SEED_A_EXT);
    }

    /// Side by side with CFE during a migration. A RUNNING file CFE wrote holds
    /// our runs back (no double failover); CFE's last failover counts for the cooldown.
    #[tokio::test(start_paused = true)]
    async fn a_state_file_cfe_wrote_is_taken_into_account() {
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        let cfe = |task: &str| {
            let mut v: Value = serde_json::from_str(include_str!(
                "../../../../examples/seed-article/state-after-failover-to-b.json"
            ))
            .unwrap();
            v["taskState"] = task.into();
            v["timestamp"] = crate::engine::state::timestamp(Utc::now()).into();
            serde_json::to_vec(&v).unwrap()
        };
        let key = state_key_default();
        let put = |body: Vec<u8>| cloud.put_object(BUCKET, &key, body, &Encryption::None, None);
        // The cloud follows B, as CFE left it.
        go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        cloud.reset_calls();
        put(cfe("RUNNING")).await.unwrap();
        match run(&cloud, &cloud, &d, unforced(SEED_A)).await.unwrap() {
            RunOutcome::Skipped(s) => {
                assert_eq!(s.status, SkipStatus::InProgress);
                assert!(
                    s.message.contains("CFE on failover02.www.non-97.net"),
                    "{}",
                    s.message
                );
            }
            RunOutcome::Completed(r) => panic!("ran while CFE runs: {:?}", r.record.message),
        }
        assert_eq!(cloud.mutation_count(), 0);
        // Adversarial review: a RUNNING from the future (a skewed clock), or from a host that
        // is none of our members (another pair's CFE), holds nothing back.
        let mut future: Value = serde_json::from_slice(&cfe("RUNNING")).unwrap();
        future["timestamp"] =
            crate::engine::state::timestamp(Utc::now() + chrono::Duration::hours(1)).into();
        put(serde_json::to_vec(&future).unwrap()).await.unwrap();
        let dry = |t: &str| {
            let mut r = RunRequest::new(TargetSpec::Instance(t.into()), Mode::Execute, "test");
            r.force = true;
            r
        };
        assert!(matches!(
            run(&cloud, &cloud, &d, dry(SEED_B)).await.unwrap(),
            RunOutcome::Completed(_)
        ));
        // A RUNNING record whose host name is no member's Name tag, and whose interfaces are
        // none of ours (another pair's CFE, or ours under another name): an automatic trigger
        // is held back all the same, with the reason; an operator's command goes on.
        let mut other: Value = serde_json::from_slice(&cfe("RUNNING")).unwrap();
        other["instance"] = "otherpair-bigip.example.net".into();
        other["failoverOperations"] = serde_json::json!({});
        put(serde_json::to_vec(&other).unwrap()).await.unwrap();
        match run(&cloud, &cloud, &d, unforced(SEED_A)).await.unwrap() {
            RunOutcome::Skipped(s) => {
                assert!(s.message.contains("matched to no member"), "{}", s.message)
            }
            RunOutcome::Completed(r) => panic!("ran while CFE runs: {:?}", r.record.message),
        }
        // The pair's announcement is forced too, but it is the BIG-IP failover CFE is carrying
        // out: held back like an alarm.
        let mut announced = dry(SEED_A);
        announced.announced = true;
        assert!(matches!(
            run(&cloud, &cloud, &d, announced).await.unwrap(),
            RunOutcome::Skipped(_)
        ));
        let RunOutcome::Completed(r) = run(&cloud, &cloud, &d, dry(SEED_B)).await.unwrap() else {
            panic!("an operator's command is held back")
        };
        assert!(
            r.record
                .warnings
                .iter()
                .any(|w| w.contains("otherpair-bigip")),
            "{:?}",
            r.record.warnings
        );
        // CFE's host name is an FQDN, the Name tag is not: its record is still this pair's,
        // by the interfaces it moved things to.
        let mut fqdn: Value = serde_json::from_slice(&cfe("RUNNING")).unwrap();
        fqdn["instance"] = "bigip-b.corp.example.com".into();
        put(serde_json::to_vec(&fqdn).unwrap()).await.unwrap();
        match run(&cloud, &cloud, &d, dry(SEED_A)).await.unwrap() {
            RunOutcome::Skipped(s) => assert!(s.message.contains(SEED_B), "{}", s.message),
            RunOutcome::Completed(r) => panic!("ran while CFE runs: {:?}", r.record.message),
        }
        // CFE failed over to B a moment ago: an automatic failover back to A is damped (its
        // host name matched whatever its case).
        let mut upper: Value = serde_json::from_slice(&cfe("SUCCEEDED")).unwrap();
        upper["instance"] = "FAILOVER02.WWW.NON-97.NET".into();
        put(serde_json::to_vec(&upper).unwrap()).await.unwrap();
        match run(&cloud, &cloud, &d, unforced(SEED_B)).await.unwrap() {
            RunOutcome::Skipped(s) => assert_eq!(s.status, SkipStatus::Cooldown, "{}", s.message),
            RunOutcome::Completed(r) => panic!("not damped: {:?}", r.record.message),
        }
    }

    /// Adversarial review: an explicit decision the cloud already follows is the decision of
    /// record (the scheduled reconcile and damping go by it).
    #[tokio::test(start_paused = true)]
    async fn a_converged_explicit_decision_is_recorded() {
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        completed(
            run(&cloud, &cloud, &d, req(SEED_A, Mode::Execute))
                .await
                .unwrap(),
        );
        assert_eq!(
            state(&cloud)["serverless"]["lastFailover"]["target"],
            SEED_A
        );
        // Someone moves the cloud to B by hand, then the operator says B: nothing to change.
        cloud
            .replace_route(SEED_RTB, "0.0.0.0/0".parse().unwrap(), SEED_B_EXT)
            .await
            .unwrap();
        cloud
            .associate_address(
                "eipalloc-0814e2bbaf002a2bc",
                SEED_B_EXT,
                "10.0.4.101".parse().unwrap(),
            )
            .await
            .unwrap();
        cloud.settle();
        let r = completed(
            run(&cloud, &cloud, &d, req(SEED_B, Mode::Execute))
                .await
                .unwrap(),
        );
        assert!(r.plan.operations.is_empty());
        assert_eq!(
            state(&cloud)["serverless"]["lastFailover"]["target"],
            SEED_B
        );
    }

    /// Adversarial review: a refusal between a half-done run and the next does not hide the
    /// unfinished run (`recovers` still names it).
    #[tokio::test(start_paused = true)]
    async fn a_refusal_in_between_keeps_the_recovery_link() {
        let cloud = MemoryCloud::seed();
        cloud.inject(
            "ReplaceRoute",
            ErrorKind::Rejected,
            FaultTiming::BeforeEffect,
            1,
        );
        let half = go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert_eq!(half.record.task_state, TaskState::Failed);
        let first = half.record.run_id.clone();
        let e = run(
            &cloud,
            &cloud,
            &Declaration::parse(AFTER).unwrap(),
            req("i-0123456789abcdef0", Mode::Execute),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, FailoverError::Refused(_)), "{e:?}");
        let last = go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert_eq!(last.record.recovers.as_deref(), Some(first.as_str()));
    }

    #[tokio::test(start_paused = true)]
    async fn held_lock_means_in_progress_and_no_mutation() {
        let cloud = MemoryCloud::seed();
        let _lease =
            crate::engine::lock::held_by(&cloud, "other-run", std::time::Duration::from_secs(60))
                .await;
        cloud.reset_calls();
        let d = Declaration::parse(AFTER).unwrap();
        match run(&cloud, &cloud, &d, req(SEED_B, Mode::Execute))
            .await
            .unwrap()
        {
            RunOutcome::Skipped(s) => {
                assert_eq!(s.status, SkipStatus::InProgress);
                assert!(s.message.contains("other-run"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(cloud.mutation_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn crashed_run_left_running_is_recovered_not_replayed() {
        // A run crashed after its RUNNING write and one mutation: its lease has run out.
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        let _dead =
            crate::engine::lock::held_by(&cloud, "dead-run", std::time::Duration::ZERO).await;
        let dry = go(&cloud, SEED_B, Mode::DryRun).await.unwrap();
        let mut stale = dry.record.clone();
        stale.run_id = "dead-run".into();
        stale.mode = Mode::Execute;
        stale.task_state = TaskState::Running;
        let log = StateLog {
            store: &cloud,
            bucket: BUCKET.into(),
            decl: &d,
        };
        log.write_state(&stale).await.unwrap();
        cloud
            .replace_route(SEED_RTB, "0.0.0.0/0".parse().unwrap(), SEED_B_EXT)
            .await
            .unwrap();
        cloud.settle();
        cloud.reset_calls();
        let r = go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        assert_eq!(r.record.recovers.as_deref(), Some("dead-run"));
        let ids: Vec<&str> = r.plan.operations.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, vec!["eip:98.80.114.203"], "only what is still missing");
        assert_eq!(cloud.mutation_count(), 1);
        assert_eq!(state(&cloud)["serverless"]["recovers"], "dead-run");
    }

    #[tokio::test]
    async fn the_run_records_failed_before_the_deadline() {
        let cloud = MemoryCloud::seed();
        cloud.delay("ReplaceRoute", std::time::Duration::from_secs(30));
        let mut rq = req(SEED_B, Mode::Execute);
        let start = std::time::Instant::now();
        rq.deadline = Some(
            start
                + crate::engine::execute::DEADLINE_RESERVE
                + std::time::Duration::from_millis(500),
        );
        let d = Declaration::parse(AFTER).unwrap();
        let r = completed(run(&cloud, &cloud, &d, rq.clone()).await.unwrap());
        assert!(
            start.elapsed() < rq.deadline.unwrap() - start,
            "returned before the deadline"
        );
        assert_eq!(r.record.task_state, TaskState::Failed);
        let o = r
            .record
            .outcomes
            .iter()
            .find(|o| o.operation.starts_with("route:"))
            .unwrap();
        assert!(o.error.as_deref().unwrap().contains("deadline"), "{o:?}");
        assert!(o.in_flight, "{o:?}");
        assert_eq!(state(&cloud)["taskState"], "FAILED");
        // The route change may still land: the lock is kept until its lease ends, so no other
        // run can fail over meanwhile and be undone by it (found by an adversarial review).
        let lock: Value = serde_json::from_slice(
            &cloud
                .object(BUCKET, &crate::engine::keys::lock_key("default"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(lock["released"], false, "{lock:#}");
        match run(&cloud, &cloud, &d, req(SEED_A, Mode::Execute))
            .await
            .unwrap()
        {
            RunOutcome::Skipped(s) => assert_eq!(s.status, SkipStatus::InProgress),
            RunOutcome::Completed(r) => panic!("ran while a call may land: {:?}", r.record),
        }
    }

    /// A last failover recorded in the future (a skewed writer, an edited file) damps nothing.
    #[tokio::test(start_paused = true)]
    async fn a_last_failover_in_the_future_does_not_damp_forever() {
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        completed(run(&cloud, &cloud, &d, unforced(SEED_A)).await.unwrap());
        let mut st = state(&cloud);
        st["serverless"]["lastFailover"]["at"] = "2099-01-01T00:00:00Z".into();
        cloud
            .put_object(
                BUCKET,
                &state_key_default(),
                serde_json::to_vec(&st).unwrap(),
                &Encryption::None,
                None,
            )
            .await
            .unwrap();
        let out = completed(run(&cloud, &cloud, &d, unforced(SEED_B)).await.unwrap());
        assert_eq!(out.record.task_state, TaskState::Succeeded);
        assert_eq!(route(&cloud), SEED_A_EXT);
    }

    #[tokio::test(start_paused = true)]
    async fn never_fails_over_to_a_unit_failing_its_status_checks() {
        let cloud = MemoryCloud::seed();
        cloud.set_impaired(SEED_B, true);
        let e = go(&cloud, SEED_B, Mode::Execute).await.unwrap_err();
        assert!(e.to_string().contains("fails its EC2 status checks"), "{e}");
        let d = Declaration::parse(AFTER).unwrap();
        let e = run(&cloud, &cloud, &d, unforced(SEED_A)).await.unwrap_err();
        assert!(e.to_string().contains("no running peer"), "{e}");
        assert_eq!(cloud.mutation_count(), 0);
    }

    /// What a run just finished saw done: its verified operations, while the window after
    /// its end lasts (a describe may not show them yet); nothing once the window is spent.
    #[tokio::test]
    async fn the_last_runs_verified_operations_count_only_within_the_window() {
        let cloud = MemoryCloud::seed();
        let p = crate::testing::plan::plan_on(&cloud, &Declaration::parse(AFTER).unwrap(), SEED_B)
            .await
            .unwrap();
        assert_eq!(p.operations.len(), 2);
        let state = |ago_s: i64| {
            serde_json::json!({"serverless": {
                "finishedAt": (Utc::now() - chrono::Duration::seconds(ago_s)).to_rfc3339(),
                "operations": p.operations,
                "outcomes": [
                    {"operation": p.operations[0].id, "verified": true},
                    {"operation": p.operations[1].id, "verified": false},
                ],
            }})
        };
        let window = std::time::Duration::from_secs(10);
        let recent = previous(Some(&state(2)));
        let (done, left) = recent.recently_verified(window);
        let ids: Vec<&str> = done.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, [p.operations[0].id.as_str()]);
        assert!(
            left <= std::time::Duration::from_secs(8) && left > std::time::Duration::from_secs(7),
            "{left:?}"
        );
        let old = previous(Some(&state(30)));
        assert_eq!(
            old.recently_verified(window),
            (Vec::new(), std::time::Duration::ZERO)
        );
        let never = previous(None);
        assert!(never.recently_verified(window).0.is_empty());
    }

    /// A step aside is named as in the JSON answer; a dry run that would leave items out is
    /// an error (PARTIAL) as the run would be, one that would not is fine.
    #[tokio::test]
    async fn skip_names_and_a_partial_dry_run() {
        for s in [SkipStatus::InProgress, SkipStatus::Cooldown] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(SkipStatus::Cooldown.as_str(), "COOLDOWN");
        let cloud = MemoryCloud::seed();
        let dry = go(&cloud, SEED_B, Mode::DryRun).await.unwrap();
        assert!(RunOutcome::Completed(Box::new(dry.clone()))
            .into_result()
            .is_ok());
        let mut partial = dry;
        partial.record.skipped = vec!["an item left out".into()];
        assert!(matches!(
            RunOutcome::Completed(Box::new(partial)).into_result(),
            Err(FailoverError::Partial(_))
        ));
    }

    /// A run after one that verified its changes does not plan from a describe that does not
    /// show them (EC2 is eventually consistent): it discovers again, within the verify window;
    /// a describe that shows them is read once.
    #[tokio::test(start_paused = true)]
    async fn a_describe_that_does_not_show_the_last_runs_verified_changes_is_read_again() {
        use crate::engine::ports::{Ec2Mutate, Mutation};
        let reads = |c: &MemoryCloud| {
            c.calls()
                .iter()
                .filter(|c| *c == "DescribeRouteTables")
                .count()
        };
        let shows = MemoryCloud::seed();
        go(&shows, SEED_B, Mode::Execute).await.unwrap();
        shows.reset_calls();
        go(&shows, SEED_A, Mode::Execute).await.unwrap();
        let shown = reads(&shows);
        let cloud = MemoryCloud::seed();
        go(&cloud, SEED_B, Mode::Execute).await.unwrap();
        // Undone by hand: the cloud no longer shows what the record says was verified.
        cloud
            .replace_route(SEED_RTB, "0.0.0.0/0".parse().unwrap(), SEED_A_EXT)
            .await
            .unwrap();
        cloud
            .mutate(&Mutation::AssociateAddress {
                allocation_id: "eipalloc-0814e2bbaf002a2bc".into(),
                network_interface_id: SEED_A_EXT.into(),
                private_ip: "10.0.0.101".parse().unwrap(),
            })
            .await
            .unwrap();
        cloud.settle();
        cloud.reset_calls();
        let again = go(&cloud, SEED_A, Mode::Execute).await.unwrap();
        assert!(again.plan.operations.is_empty(), "{:?}", again.plan);
        assert!(
            reads(&cloud) > shown + 2,
            "{} reads, {shown} when shown",
            reads(&cloud)
        );
    }

    /// Moving the cloud away from the unit the box last announced (healthy) is said, in the
    /// plan's warnings and the record; not when the run is the box's own announcement, nor
    /// toward the announced unit, nor when that unit is down.
    #[tokio::test(start_paused = true)]
    async fn a_run_against_the_boxs_word_is_said() {
        let cloud = MemoryCloud::seed();
        let mut said = req(SEED_B, Mode::Execute);
        said.announced = true;
        said.event_at = Some(Utc::now());
        run(&cloud, &cloud, &Declaration::parse(AFTER).unwrap(), said)
            .await
            .unwrap();
        let words = |r: &RunReport| {
            r.record
                .warnings
                .iter()
                .any(|w| w.contains("the appliance pair announced i-061cbb31a5158ad30 active"))
        };
        assert!(words(&go(&cloud, SEED_A, Mode::DryRun).await.unwrap()));
        assert!(!words(&go(&cloud, SEED_B, Mode::DryRun).await.unwrap()));
        let mut announced = req(SEED_A, Mode::DryRun);
        announced.announced = true;
        let own = completed(
            run(
                &cloud,
                &cloud,
                &Declaration::parse(AFTER).unwrap(),
                announced,
            )
            .await
            .unwrap(),
        );
        assert!(!words(&own));
        cloud.set_instance_state(SEED_B, "stopped");
        assert!(!words(&go(&cloud, SEED_A, Mode::DryRun).await.unwrap()));
    }

    /// Events are ordered by their own time, to the second: one dated a second before the
    /// last decision carried out is older news (superseded); one of the same second is not.
    #[tokio::test(start_paused = true)]
    async fn an_event_older_than_the_last_decision_is_superseded_to_the_second() {
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        let at = Utc::now();
        let dated = |target: &str, at| {
            let mut r = req(target, Mode::Execute);
            r.event_at = Some(at);
            r
        };
        run(&cloud, &cloud, &d, dated(SEED_B, at)).await.unwrap();
        run(&cloud, &cloud, &d, dated(SEED_A, at)).await.unwrap();
        let e = run(
            &cloud,
            &cloud,
            &d,
            dated(SEED_B, at - chrono::Duration::seconds(1)),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, FailoverError::Superseded(_)), "{e}");
    }

    /// A dry run that would leave items out says which in its message.
    #[tokio::test(start_paused = true)]
    async fn a_dry_run_names_what_it_would_leave_out() {
        let cloud = MemoryCloud::seed();
        let snat_none = include_str!("../../../../examples/seed-article/cfe-snat-none.json");
        let d = Declaration::parse(snat_none).unwrap();
        let r = completed(
            run(&cloud, &cloud, &d, req(SEED_B, Mode::DryRun))
                .await
                .unwrap(),
        );
        assert!(
            r.record.message.contains("1 item(s) would be left out"),
            "{}",
            r.record.message
        );
        let clean = go(&cloud, SEED_B, Mode::DryRun).await.unwrap();
        assert!(
            !clean.record.message.contains("left out"),
            "{}",
            clean.record.message
        );
    }

    /// Announcements of a pair alternate at most once per ANNOUNCE_MIN_INTERVAL_SECONDS: one
    /// naming the other unit too soon waits its turn when the invocation has room for the
    /// wait, the fence and the reserve, else it is deferred; the same unit, an old
    /// announcement, or a run that is no announcement does not wait.
    #[test]
    fn an_announcement_too_soon_waits_its_turn_or_is_deferred() {
        let last = LastFailover {
            target: SEED_A.into(),
            at: Utc::now() - chrono::Duration::seconds(2),
        };
        let ask = |target: &str, announced: bool, deadline: Option<Instant>| {
            let mut r = req(target, Mode::Execute);
            r.announced = announced;
            r.deadline = deadline;
            r
        };
        let wait = announcement_wait(&ask(SEED_B, true, None), Some(&last))
            .unwrap()
            .unwrap();
        assert!((7..=8).contains(&wait.as_secs()), "{wait:?}");
        let need = wait + FENCE_NEED + crate::engine::execute::DEADLINE_RESERVE;
        let roomy = Some(Instant::now() + need + std::time::Duration::from_secs(5));
        assert!(announcement_wait(&ask(SEED_B, true, roomy), Some(&last))
            .unwrap()
            .is_some());
        let tight = Some(Instant::now() + need - std::time::Duration::from_secs(2));
        assert!(matches!(
            announcement_wait(&ask(SEED_B, true, tight), Some(&last)),
            Err(FailoverError::Deferred { .. })
        ));
        assert_eq!(
            announcement_wait(&ask(SEED_A, true, None), Some(&last)).unwrap(),
            None
        );
        assert_eq!(
            announcement_wait(&ask(SEED_B, false, None), Some(&last)).unwrap(),
            None
        );
        let old = LastFailover {
            at: Utc::now() - chrono::Duration::seconds(30),
            ..last
        };
        assert_eq!(
            announcement_wait(&ask(SEED_B, true, None), Some(&old)).unwrap(),
            None
        );
    }

    /// Damping applies only to flapping: not with a cooldown of 0, and not to a run toward
    /// the unit the last failover chose (a repair); a missing state bucket is named by its scope.
    #[tokio::test(start_paused = true)]
    async fn cooldown_spares_repairs_and_a_zero_window() {
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        completed(run(&cloud, &cloud, &d, unforced(SEED_A)).await.unwrap());
        assert_eq!(route(&cloud), SEED_B_EXT);
        // Undone by hand: the run toward B again is a repair, not a flap.
        cloud
            .replace_route(SEED_RTB, "0.0.0.0/0".parse().unwrap(), SEED_A_EXT)
            .await
            .unwrap();
        cloud.settle();
        let again = run(
            &cloud,
            &cloud,
            &d,
            RunRequest::new(TargetSpec::Instance(SEED_B.into()), Mode::Execute, "alarm"),
        )
        .await
        .unwrap();
        assert!(matches!(again, RunOutcome::Completed(_)), "{again:?}");
        assert_eq!(route(&cloud), SEED_B_EXT);
        // With no window, the way back is not damped either.
        let no_window = crate::testing::plan::patched(|v| {
            v["serverless"] = serde_json::json!({"cooldownSeconds": 0})
        });
        let back = run(&cloud, &cloud, &no_window, unforced(SEED_B))
            .await
            .unwrap();
        assert!(matches!(back, RunOutcome::Completed(_)), "{back:?}");
        assert_eq!(route(&cloud), SEED_A_EXT);
        // The state bucket, named by its scope when missing.
        for (storage, words) in [
            (
                serde_json::json!({"scopingName": "cfe-gone"}),
                "no bucket named cfe-gone",
            ),
            (
                serde_json::json!({"scopingTags": {"team": "nobody"}}),
                "no bucket tagged team=nobody",
            ),
        ] {
            let d = crate::testing::plan::patched(|v| v["externalStorage"] = storage.clone());
            let e = run(&cloud, &cloud, &d, req(SEED_B, Mode::Execute))
                .await
                .unwrap_err();
            assert!(e.to_string().contains(words), "{e}");
        }
    }

    fn op_name() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("AssociateAddress"),
            Just("ReplaceRoute"),
            Just("DescribeRouteTables"),
            Just("DescribeAddresses"),
            Just("DescribeInstances"),
            Just("DescribeNetworkInterfaces"),
            Just("DescribeInstanceStatus"),
            Just("GetObject"),
            Just("ListBuckets"),
        ]
    }

    fn fault() -> impl Strategy<Value = (&'static str, ErrorKind, FaultTiming, u32)> {
        (
            op_name(),
            prop_oneof![
                Just(ErrorKind::Throttled),
                Just(ErrorKind::Transient),
                Just(ErrorKind::Rejected)
            ],
            prop_oneof![
                Just(FaultTiming::BeforeEffect),
                Just(FaultTiming::AfterEffect)
            ],
            1u32..3,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Whatever fails during a run, the log says what happened, and one more run
        /// (without faults) converges the cluster to the target with no stale replay.
        #[test]
        fn faults_then_one_run_converges(
            start_b in any::<bool>(),
            faults in proptest::collection::vec(fault(), 0..5),
            delays in proptest::collection::vec((op_name(), 0u64..3), 0..3),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                let cloud = MemoryCloud::seed();
                let previous_run = if start_b {
                    Some(go(&cloud, SEED_B, Mode::Execute).await.unwrap().record.run_id)
                } else {
                    None
                };
                cloud.reset_calls();
                for (op, kind, timing, n) in &faults {
                    cloud.inject(op, *kind, *timing, *n);
                }
                for (op, ms) in &delays {
                    cloud.delay(op, std::time::Duration::from_millis(*ms));
                }
                let target = if start_b { SEED_A } else { SEED_B };
                let want = if start_b { SEED_A_EXT } else { SEED_B_EXT };
                let first = go(&cloud, target, Mode::Execute).await;
                if let Ok(r) = &first {
                    // The state log says exactly what happened: its task state is the run's,
                    // and every operation it calls verified is true of the cloud.
                    let s = state(&cloud);
                    prop_assert_eq!(&s["taskState"], &serde_json::to_value(r.record.task_state).unwrap());
                    for o in s["serverless"]["outcomes"].as_array().unwrap() {
                        if o["verified"] == true {
                            let id = o["operation"].as_str().unwrap();
                            let got = if id.starts_with("route:") { route(&cloud) } else { eip_eni(&cloud) };
                            prop_assert_eq!(got, want, "{} verified but not true", id);
                        }
                    }
                    if r.record.task_state == TaskState::Succeeded {
                        prop_assert_eq!(route(&cloud), want);
                        prop_assert_eq!(eip_eni(&cloud), want);
                    }
                } else {
                    // It stopped before mutating, or could not record its end: the state file
                    // is the previous run's (or none) and nothing was mutated, or it is this
                    // run's RUNNING record, naming the target.
                    let file = cloud.object(BUCKET, &state_key_default()).map(|_| state(&cloud));
                    let ours = file.filter(|s| {
                        s["serverless"]["runId"].as_str() != previous_run.as_deref()
                    });
                    match ours {
                        None => prop_assert_eq!(cloud.mutation_count(), 0, "mutated, and the log does not say so"),
                        Some(s) => {
                            prop_assert_eq!(&s["taskState"], "RUNNING");
                            prop_assert_eq!(&s["serverless"]["target"], target);
                        }
                    }
                }
                cloud.clear_faults();
                let second = go(&cloud, target, Mode::Execute).await.unwrap();
                prop_assert_eq!(second.record.task_state, TaskState::Succeeded);
                prop_assert_eq!(route(&cloud), want);
                prop_assert_eq!(eip_eni(&cloud), want);
                cloud.reset_calls();
                let third = go(&cloud, target, Mode::Execute).await.unwrap();
                prop_assert!(third.plan.operations.is_empty());
                prop_assert_eq!(cloud.mutation_count(), 0);
                Ok(())
            })?;
        }
    }
}
