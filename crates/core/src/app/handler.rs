//! The failover function's logic, shared by the Lambda entry point and `cloud-failover invoke`:
//! event → intent → declaration → run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tracing::Instrument;

use crate::app::events::{self, Intent, Trust};
use crate::app::fleet::{left_out, ClusterResult, Fleet, FleetReport, Route, MEMBERS_MAX_AGE};
use crate::app::inspect::Inspection;
pub use crate::app::location::{load_declaration, Location};
use crate::app::probe::ProbeReport;
use crate::engine::answer::{Answer, Ignored};
use crate::engine::budget::Budget;
use crate::engine::declaration::Declaration;
use crate::engine::discovery::{discover, resolve_bucket};
use crate::engine::failover::FailoverError;
use crate::engine::failover::{run, RunOutcome};
use crate::engine::ports::{concat, total, Ec2, ObjectStore};
use crate::engine::ports::{DESCRIBE_OPERATIONS, MUTATING_OPERATIONS, STORE_READS};
use crate::engine::request::Mode;
use crate::engine::request::{RunRequest, TargetSpec};
use crate::engine::state::{LastFailover, StateLog};

/// What the failover function's role grants: every operation `handle` can send, from the
/// ports' lists (`tests/e2e/iam.rs` and `tests/iam/evaluate.py` check the template against it).
const FAILOVER_PARTS: &[&[&str]] = &[
    &DESCRIBE_OPERATIONS,
    &MUTATING_OPERATIONS,
    &STORE_READS,
    &["PutObject", "ChangeMessageVisibility"],
];

/// Every API operation `handle` can send (the failover function's IAM role grants exactly
/// these).
pub const OPERATIONS: &[&str] = &concat::<{ total(FAILOVER_PARTS) }>(FAILOVER_PARTS);

const INSPECT_PARTS: &[&[&str]] = &[&DESCRIBE_OPERATIONS, &STORE_READS];

/// Every API operation `handle_inspect` can send (the inspect function's role).
pub const INSPECT_OPERATIONS: &[&str] = &concat::<{ total(INSPECT_PARTS) }>(INSPECT_PARTS);

/// The probe function fails over in process: it needs what `handle` needs, and its role is
/// the failover function's policy (in fleet mode, that includes the queue's
/// `ChangeMessageVisibility`, which only the failover function sends).
pub const PROBE_OPERATIONS: &[&str] = OPERATIONS;

/// Who is calling and by when it must answer.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    /// Lambda request id.
    pub request_id: Option<String>,
    /// Lambda deadline.
    pub deadline: Option<Instant>,
    /// The function's own account and region, and the stack's alarm-name prefix.
    pub trust: Trust,
    /// The budget shared with the other runs of the same executor (the fleet).
    pub budget: Option<Arc<Budget>>,
}

/// Handles one event for one declaration without failover groups: returns the run report,
/// or why nothing was done (see [`handle_pair`]); a declaration with groups is an error here.
pub async fn handle(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    declaration: &Location,
    event: &Value,
    invocation: Invocation,
) -> Result<Answer, FailoverError> {
    match handle_pair(ec2, store, declaration, event, invocation).await? {
        Reply::One(answer) => Ok(answer),
        Reply::Fleet(_) => Err(FailoverError::Fleet(
            "the declaration names failover groups: its answers are each group's (handle_pair)"
                .into(),
        )),
    }
}

/// Handles one event for one declaration: the run report, or why nothing was done. The
/// event is validated, and its account and region checked, before anything is read from the
/// cloud; an ignored event (`IGNORED`, with the reason) makes no call but reading the
/// declaration. A declaration naming failover groups answers per group, the event routed
/// as a fleet's is ([`handle_fleet`]): an announcement to its group, an alarm to each.
pub async fn handle_pair(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    declaration: &Location,
    event: &Value,
    invocation: Invocation,
) -> Result<Reply<Answer>, FailoverError> {
    let mut answers = vec![Vec::new()];
    let Some((_, trigger)) =
        trusted_triggers(std::slice::from_ref(event), &invocation.trust, &mut answers).pop()
    else {
        // Malformed, or from another account or region: its answer is in `answers`.
        let refused = answers.pop().and_then(|mut a| a.pop()).expect("answered");
        return refused.result.map(Reply::One);
    };
    let decl = load_declaration(store, declaration).await?;
    if !decl.is_grouped() {
        return act(ec2, store, &decl, trigger, invocation)
            .await
            .map(Reply::One);
    }
    // Failover groups: each group is a cluster of its own, the event routed as a fleet's.
    let mut fleet = Fleet::of(declaration.clone(), decl);
    dispatch(
        ec2,
        store,
        &mut fleet,
        vec![(0, trigger)],
        &mut answers,
        invocation,
    )
    .await;
    let answers = answers.into_iter().flatten().collect();
    Ok(Reply::Fleet(FleetReport {
        clusters: answers,
        broken: fleet.broken.clone(),
    }))
}

/// What a trusted trigger asks of one cluster, done: a run, a reconcile, or why nothing.
pub async fn act(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    trigger: events::Trigger,
    invocation: Invocation,
) -> Result<Answer, FailoverError> {
    // An operator naming a failover group of a pair that has none means another pair, or
    // an old declaration: nothing is moved on a guess.
    if let (events::Trigger::Direct { group: Some(g), .. }, true) =
        (&trigger, decl.extension.groups.is_empty())
    {
        return Err(FailoverError::Refused(vec![format!(
            "the direct invoke names failover group {g:?}, and the declaration names none (serverless.groups): leave group out"
        )]));
    }
    // The appliance pair's own announcement: the box's view of who is active.
    let announcement = matches!(trigger, events::Trigger::ApplianceActive { .. });
    let event_at = trigger.at();
    match trigger.intent(&decl.extension, &invocation.trust) {
        // An announcement from a source the declaration does not list is suspicious.
        Intent::Ignore { reason } => Ok(ignored(reason, announcement)),
        Intent::Reconcile { trigger } => reconcile(ec2, store, decl, trigger, invocation).await,
        Intent::Run {
            target,
            mode,
            trigger,
            force,
        } => {
            let outcome = match run(
                ec2,
                store,
                decl,
                RunRequest {
                    target: target.clone(),
                    mode,
                    requested_by: force.then(|| match &invocation.request_id {
                        Some(id) => format!("{trigger}, Lambda request {id}"),
                        None => trigger.clone(),
                    }),
                    trigger,
                    request_id: invocation.request_id,
                    force,
                    announced: announcement,
                    deadline: invocation.deadline,
                    budget: invocation.budget,
                    event_at,
                },
            )
            .await
            {
                Err(FailoverError::Superseded(why)) => return Ok(ignored(why, false)),
                // Another pair's alarm or instance (e.g. two stacks with one alarm prefix).
                Err(FailoverError::NotAMember(id)) => {
                    return Ok(ignored(
                        format!(
                            "{id} is not a member of this cluster: the event is another pair's"
                        ),
                        false,
                    ))
                }
                other => other?.into_result()?,
            };
            if let RunOutcome::Skipped(skip) = &outcome {
                // The last announcement wins: one that meets another run is carried out after
                // it (Lambda retries it), never dropped.
                if announcement && skip.status == crate::engine::failover::SkipStatus::InProgress {
                    return Err(FailoverError::Deferred {
                        status: skip.status,
                        message: skip.message.clone(),
                        reason: "the appliance's announcement must be carried out after the run in progress".into(),
                    });
                }
                if let Some(reason) = followed_unhealthy(ec2, store, decl, &target, force).await? {
                    tracing::warn!(status = skip.status.as_str(), %reason, "skipped, but not done: retry");
                    return Err(FailoverError::Deferred {
                        status: skip.status,
                        message: skip.message.clone(),
                        reason,
                    });
                }
            }
            Ok(Answer::from(outcome))
        }
    }
}

/// `retryFailover`, as under CFE: every `interval` minutes, run the failover to the member
/// the last failover made active (the pair's own announcement, an alarm's or an operator's
/// decision, as recorded in the state file), which converges whatever drifted since; no
/// probe needed. Nothing to do when `retryFailover` is not enabled or no failover is recorded.
async fn reconcile(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    trigger: String,
    invocation: Invocation,
) -> Result<Answer, FailoverError> {
    let Some(retry) = decl.retry_failover.as_ref().filter(|r| r.enabled) else {
        return Ok(ignored(
            "retryFailover is not enabled in the declaration: no scheduled reconcile".into(),
            false,
        ));
    };
    let (bucket, _) = resolve_bucket(store, &decl.external_storage.scope)
        .await
        .map_err(FailoverError::Discovery)?;
    let Some(bucket) = bucket else {
        return Ok(ignored(
            "no state bucket: no failover recorded to reconcile to".into(),
            false,
        ));
    };
    let state = StateLog {
        store,
        bucket,
        decl,
    }
    .read_state()
    .await
    .map_err(FailoverError::State)?;
    let last: Option<LastFailover> = state
        .as_ref()
        .and_then(|s| s.get(crate::engine::declaration::EXTENSION_KEY))
        .and_then(|s| s.get("lastFailover"))
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let Some(last) = last else {
        return Ok(ignored(
            "no failover recorded yet: nothing to reconcile to".into(),
            false,
        ));
    };
    let outcome = run(
        ec2,
        store,
        decl,
        RunRequest {
            target: TargetSpec::Instance(last.target),
            mode: Mode::Execute,
            trigger: format!("{trigger}, every {} min", retry.interval_minutes),
            request_id: invocation.request_id,
            force: false,
            requested_by: None,
            announced: false,
            deadline: invocation.deadline,
            budget: invocation.budget,
            event_at: None,
        },
    )
    .await?
    .into_result()?;
    Ok(Answer::from(outcome))
}

/// Why a run that stepped aside (`IN_PROGRESS`, `COOLDOWN`) is not the end, if it is not:
/// the routes and Elastic IPs do not all follow one member, or the member they follow is not
/// running, fails its EC2 status checks, or is the one this trigger reports failed (an
/// alarm in ALARM, an instance stopping), or is not the one an authoritative request named
/// (the appliance's own announcement, a forced direct invoke). One fresh snapshot decides.
async fn followed_unhealthy(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    target: &TargetSpec,
    authoritative: bool,
) -> Result<Option<String>, FailoverError> {
    let snap = discover(ec2, store, decl)
        .await
        .map_err(FailoverError::Discovery)?;
    let view = crate::app::inspect::picture(decl, &snap, None);
    let Some(active) = view.active else {
        return Ok(view
            .drift
            .then(|| "the routes and Elastic IPs do not all follow one member".to_string()));
    };
    let reason = match snap.member(&active) {
        Some(m) if m.state != "running" => {
            Some(format!("the cloud follows {active}, which is {}", m.state))
        }
        _ if snap.impaired.contains(&active) => Some(format!(
            "the cloud follows {active}, which fails its EC2 status checks"
        )),
        _ if matches!(target, TargetSpec::PeerOf(failed) if *failed == active) => Some(format!(
            "the cloud follows {active}, which this trigger reports failed"
        )),
        _ if authoritative && matches!(target, TargetSpec::Instance(t) if *t != active) => Some(
            format!("the cloud follows {active}, not the member this request names as active"),
        ),
        _ => None,
    };
    Ok(reason)
}

/// An IGNORED answer; a `suspicious` one (an event from outside this account and region, an
/// announcement from an unlisted source) is logged as a warning and flagged for the
/// operators' notification filter.
fn ignored(reason: String, suspicious: bool) -> Answer {
    if suspicious {
        tracing::warn!(%reason, "ignored a suspicious event");
    } else {
        tracing::info!(%reason, "ignored");
    }
    Answer::Ignored(Ignored { reason, suspicious })
}

/// Handles a batch of events for a fleet (the executor for the account): each trusted event
/// goes to the cluster that owns its instance or alarm (see `fleet`), the clusters run at
/// once, each cluster's events in turn, and all runs share one [`Budget`]: discoveries a few
/// at a time, one pacer for the account's mutations, data path first across the fleet.
/// Returns each event's answers, in order.
pub async fn handle_fleet(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    fleet: &mut Fleet,
    events: &[Value],
    invocation: Invocation,
) -> Vec<Vec<ClusterResult<Answer>>> {
    let mut answers: Vec<Vec<ClusterResult<Answer>>> = events.iter().map(|_| Vec::new()).collect();
    let trusted = trusted_triggers(events, &invocation.trust, &mut answers);
    if trusted.is_empty() {
        return answers;
    }
    if let Err(e) = fleet.refresh(store).await {
        for (i, _) in trusted {
            answers[i].push(nowhere(Err(again(&e))));
        }
        return answers;
    }
    dispatch(ec2, store, fleet, trusted, &mut answers, invocation).await;
    answers
}

/// An answer for no cluster.
fn nowhere(result: Result<Answer, FailoverError>) -> ClusterResult<Answer> {
    ClusterResult {
        cluster: None,
        message_id: None,
        result,
    }
}

/// The trusted triggers (by event index) routed over the fleet as read, and each cluster's
/// run; each answer joins its event's in `answers`.
async fn dispatch(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    fleet: &mut Fleet,
    trusted: Vec<(usize, events::Trigger)>,
    answers: &mut [Vec<ClusterResult<Answer>>],
    invocation: Invocation,
) {
    let budget = fleet.budget();
    let ec2 = &budget.ec2(ec2);
    let routes = route_all(ec2, fleet, &trusted, &invocation.trust).await;
    let mut work: BTreeMap<String, Vec<(usize, events::Trigger)>> = BTreeMap::new();
    for ((i, trigger), route) in trusted.into_iter().zip(routes) {
        match route {
            Ok(Route::To(keys)) if keys.is_empty() => {
                answers[i].push(nowhere(Err(FailoverError::Fleet(format!(
                    "no declaration of the fleet loads: {}",
                    left_out(fleet.broken.iter())
                )))))
            }
            Ok(Route::To(keys)) => {
                for key in keys {
                    work.entry(key).or_default().push((i, trigger.clone()));
                }
            }
            Ok(Route::Nowhere(reason)) => answers[i].push(nowhere(Ok(ignored(reason, false)))),
            Err(e) => answers[i].push(nowhere(Err(e))),
        }
    }
    let shared = Invocation {
        budget: Some(budget.clone()),
        ..invocation
    };
    for (i, key, result) in run_clusters(ec2, store, fleet, work, shared).await {
        answers[i].push(ClusterResult {
            cluster: Some(key),
            message_id: None,
            result,
        });
    }
}

/// The events' triggers that may be acted on, by index; each of the others (malformed, from
/// outside this account and region) gets its answer in `answers`.
fn trusted_triggers(
    events: &[Value],
    trust: &Trust,
    answers: &mut [Vec<ClusterResult<Answer>>],
) -> Vec<(usize, events::Trigger)> {
    let mut trusted = Vec::new();
    for (i, event) in events.iter().enumerate() {
        let answer = match events::parse(event) {
            Err(e) => Err(FailoverError::Event(e)),
            Ok(trigger) => {
                let shown = serde_json::to_string(&trigger).unwrap_or_default();
                tracing::info!(trigger = %shown, "event received");
                match trigger.untrusted(trust) {
                    Some(reason) => Ok(ignored(reason, true)),
                    None => {
                        trusted.push((i, trigger));
                        continue;
                    }
                }
            }
        };
        answers[i].push(ClusterResult {
            cluster: None,
            message_id: None,
            result: answer,
        });
    }
    trusted
}

/// Each cluster's triggers, in turn, every cluster at once: (event index, cluster, result).
async fn run_clusters(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    fleet: &Fleet,
    work: BTreeMap<String, Vec<(usize, events::Trigger)>>,
    invocation: Invocation,
) -> Vec<(usize, String, Result<Answer, FailoverError>)> {
    let runs = work.into_iter().filter_map(|(key, items)| {
        let decl = fleet.clusters.get(&key)?.declaration.clone();
        let inv = invocation.clone();
        Some(async move {
            let mut done = Vec::new();
            for (i, trigger) in items {
                let span = tracing::info_span!("cluster", cluster = %key);
                let result = act(ec2, store, &decl, trigger, inv.clone())
                    .instrument(span)
                    .await;
                done.push((i, key.clone(), result));
            }
            done
        })
    });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The same failure again, for another event (a `FailoverError` is not `Clone`).
fn again(e: &FailoverError) -> FailoverError {
    match e {
        FailoverError::DeclarationUnavailable { location, reason } => {
            FailoverError::DeclarationUnavailable {
                location: location.clone(),
                reason: reason.clone(),
            }
        }
        other => FailoverError::Fleet(other.to_string()),
    }
}

/// Routes each trigger (the fleet's declarations just read again where their ETag changed):
/// the members of new clusters discovered, and, when an instance is owned by no cluster, the
/// members older than [`MEMBERS_MAX_AGE`] looked up again (an appliance may be replaced).
/// At a cold start (many clusters not discovered yet), the clusters the events' instances may
/// belong to, discovered first: one DescribeInstances for the instances the events name, then
/// only the clusters whose scoping tags their interfaces carry. Returns the discovery failures.
async fn route_cold(
    ec2: &dyn Ec2,
    fleet: &mut Fleet,
    trusted: &[(usize, events::Trigger)],
) -> Vec<(String, String)> {
    /// Below this many undiscovered clusters, discovering them all costs little.
    const COLD: usize = 8;
    if fleet.undiscovered() < COLD {
        return fleet.discover_members(ec2, std::time::Duration::MAX).await;
    }
    let ids: std::collections::BTreeSet<String> =
        trusted.iter().flat_map(|(_, t)| t.instance_ids()).collect();
    if ids.is_empty() {
        return fleet.discover_members(ec2, std::time::Duration::MAX).await;
    }
    let filter = crate::engine::model::Filter::new("instance-id", &ids);
    match ec2.describe_instances(&[filter]).await {
        Ok(found) => fleet.discover_candidates(ec2, &found).await,
        Err(e) => vec![("(the events' instances)".into(), e.to_string())],
    }
}

async fn route_all(
    ec2: &dyn Ec2,
    fleet: &mut Fleet,
    trusted: &[(usize, events::Trigger)],
    trust: &Trust,
) -> Vec<Result<Route, FailoverError>> {
    let mut failures = route_cold(ec2, fleet, trusted).await;
    if !failures.is_empty() || trusted.iter().any(|(_, t)| fleet.owners(t).is_empty()) {
        failures = fleet.discover_members(ec2, std::time::Duration::MAX).await;
    }
    // Only an event some cluster would act on, were it its own, is worth looking for (a
    // fleet's EC2 rule passes every instance's state change in the region).
    let lost = |f: &Fleet, t: &events::Trigger| {
        !matches!(t, events::Trigger::Schedule { .. })
            && f.owners(t).is_empty()
            && f.would_act(t, trust)
    };
    if trusted.iter().any(|(_, t)| lost(fleet, t)) {
        failures = fleet.discover_members(ec2, MEMBERS_MAX_AGE).await;
    }
    trusted
        .iter()
        .map(|(_, t)| match fleet.route(t) {
            Ok(Route::Nowhere(reason)) if fleet.unread().next().is_some() && lost(fleet, t) => {
                Err(FailoverError::Fleet(format!(
                    "{reason}, and declarations that cannot be read may: {}",
                    left_out(fleet.unread())
                )))
            }
            Ok(Route::Nowhere(reason)) if !failures.is_empty() && lost(fleet, t) => {
                Err(FailoverError::Unroutable(format!(
                    "{reason}, but the members of {} could not be discovered: try again",
                    left_out(failures.iter().map(|(k, e)| (k, e)))
                )))
            }
            other => other,
        })
        .collect()
}

/// A single pair's answer, or a fleet's report: what the functions and the CLI reply.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Reply<T> {
    /// One pair's.
    One(T),
    /// Each cluster's, with the declarations left out.
    Fleet(FleetReport<T>),
}

/// What a function serves: one pair's declaration, or a fleet's (its index kept between
/// invocations). Each answer is one cluster's path; over a fleet, that path mapped over its
/// clusters ([`Fleet::map`]).
#[derive(Debug)]
pub struct Scope {
    location: Location,
    fleet: tokio::sync::Mutex<Fleet>,
}

impl Scope {
    /// The scope of `location` (a fleet when it is a prefix or directory).
    pub fn new(location: Location) -> Scope {
        Scope {
            fleet: tokio::sync::Mutex::new(Fleet::new(location.clone())),
            location,
        }
    }

    /// Where its declarations are.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Whether this is a fleet.
    pub fn is_fleet(&self) -> bool {
        self.location.is_fleet()
    }

    /// The fleet's index (one batch at a time: the fleet's function runs with a concurrency
    /// of 1).
    pub async fn fleet(&self) -> tokio::sync::MutexGuard<'_, Fleet> {
        self.fleet.lock().await
    }

    /// `run` on the pair's declaration, or on each cluster of the fleet that `selects`
    /// keeps, `in_flight` at a time, their EC2 calls sharing one [`Budget`].
    async fn map<T, F, Fut>(
        &self,
        store: &dyn ObjectStore,
        selects: impl Fn(&Declaration) -> bool,
        in_flight: usize,
        run: F,
    ) -> Result<Reply<T>, FailoverError>
    where
        F: Fn(Arc<Declaration>, Option<Arc<Budget>>) -> Fut,
        Fut: std::future::Future<Output = Result<T, FailoverError>>,
    {
        let (mut guard, groups);
        let fleet: &Fleet = if self.is_fleet() {
            guard = self.fleet().await;
            guard.refresh(store).await?;
            &guard
        } else {
            let decl = load_declaration(store, &self.location).await?;
            if !decl.is_grouped() {
                return run(Arc::new(decl), None).await.map(Reply::One);
            }
            // Failover groups: each group is a cluster of its own, served as a fleet's are.
            groups = Fleet::of(self.location.clone(), decl);
            &groups
        };
        let keys: Vec<String> = fleet
            .clusters
            .values()
            .filter(|c| selects(&c.declaration))
            .map(|c| c.key.clone())
            .collect();
        let budget = Arc::new(Budget::new(fleet.pacing(&keys)));
        let run = &run;
        fleet
            .map(selects, in_flight, |decl| run(decl, Some(budget.clone())))
            .await
            .map(Reply::Fleet)
    }
}

/// The probe function: probes the members until shortly before the next scheduled run (or the
/// Lambda deadline), failing over in process when the followed member goes down; over a
/// fleet, every cluster that declares a probe, at once, their failovers sharing one budget.
pub async fn handle_probe(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    scope: &Scope,
    invocation: Invocation,
) -> Result<Reply<ProbeReport>, FailoverError> {
    let until = probe_window(invocation.deadline);
    let deadline = invocation.deadline;
    let probed = |d: &Declaration| d.extension.probe.is_some();
    scope
        .map(store, probed, usize::MAX, |decl, budget| async move {
            let paced = budget.as_ref().map(|b| b.ec2(ec2));
            let ec2: &dyn Ec2 = match &paced {
                Some(p) => p,
                None => ec2,
            };
            crate::app::probe::watch(ec2, store, &decl, until, deadline, budget.clone()).await
        })
        .await
}

/// When a probe's window ends: shortly before the next scheduled run, or the deadline.
fn probe_window(deadline: Option<Instant>) -> Instant {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(55);
    const RESERVE: std::time::Duration = std::time::Duration::from_secs(5);
    match deadline {
        Some(d) => (Instant::now() + WINDOW).min(d.checked_sub(RESERVE).unwrap_or(d)),
        None => Instant::now() + WINDOW,
    }
}

/// The inspect function: the picture `cloud-failover inspect` shows (the Lambda answers it as
/// the same JSON); over a fleet, every cluster's (a few at a time), and the declarations
/// that do not load, with why.
pub async fn handle_inspect(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    scope: &Scope,
) -> Result<Reply<Inspection>, FailoverError> {
    let every = |_: &Declaration| true;
    scope
        .map(
            store,
            every,
            crate::engine::budget::DISCOVERIES_IN_FLIGHT,
            |decl, _| async move {
                crate::app::inspect::inspect(ec2, store, &decl)
                    .await
                    .map_err(FailoverError::Discovery)
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::events::{Home, Trust};
    use crate::engine::answer::Status;
    use crate::engine::failover::RunReport;
    use crate::engine::picture::CloudVerdict;
    use crate::lab::{SEED_A, SEED_B, SEED_B_EXT, SEED_RTB};
    use crate::memory::MemoryCloud;
    use serde_json::json;

    const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

    fn decl() -> Location {
        Location::File(format!("{ROOT}/examples/seed-article/declaration-after.json").into())
    }

    /// The working declaration with `serverless.cooldownSeconds: 1`, as a file.
    fn short_cooldown() -> Location {
        let mut v = crate::engine::json::parse(
            &std::fs::read_to_string(format!(
                "{ROOT}/examples/seed-article/declaration-after.json"
            ))
            .unwrap(),
        )
        .unwrap();
        v["serverless"] = json!({"cooldownSeconds": 1});
        let path = std::env::temp_dir().join(format!("cf-cooldown-{}.json", std::process::id()));
        std::fs::write(&path, v.to_string()).unwrap();
        Location::File(path)
    }

    fn invocation() -> Invocation {
        Invocation {
            trust: Trust::at(Home {
                account: "123456789012".into(),
                region: "us-east-1".into(),
            }),
            ..Invocation::default()
        }
    }

    fn event(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{ROOT}/events/{name}")).unwrap();
        crate::engine::json::parse(&crate::lab::fresh(&text)).unwrap()
    }

    fn direct(target: &str, force: bool) -> Value {
        json!({"action": "execute", "target": target, "force": force})
    }

    async fn on(cloud: &MemoryCloud, e: &Value) -> Result<Answer, FailoverError> {
        handle(cloud, cloud, &decl(), e, invocation()).await
    }

    async fn on_short(cloud: &MemoryCloud, e: &Value) -> Result<Answer, FailoverError> {
        handle(cloud, cloud, &short_cooldown(), e, invocation()).await
    }

    /// The run report of a SUCCEEDED or DRY_RUN answer.
    fn report(a: &Answer) -> &RunReport {
        a.report().unwrap_or_else(|| panic!("no run report: {a}"))
    }

    /// An IGNORED answer's reason.
    fn ignored(a: &Answer) -> &Ignored {
        match a {
            Answer::Ignored(i) => i,
            _ => panic!("not IGNORED: {a}"),
        }
    }

    /// The field's case: a manual failback to A, then A really fails 30 s later. Its alarm
    /// meets the cooldown; that skip must not be the end while the cloud follows the failed
    /// unit: the answer is a (retryable) error.
    #[tokio::test(start_paused = true)]
    async fn a_skip_while_the_followed_member_is_unhealthy_is_retried() {
        let cloud = MemoryCloud::seed();
        on(&cloud, &direct(SEED_B, true)).await.unwrap();
        let back = on(&cloud, &direct(SEED_A, true)).await.unwrap();
        assert_eq!(back.status(), Status::Succeeded, "{back}");

        // A fails its status checks; its alarm fires within the cooldown.
        cloud.set_impaired(SEED_A, true);
        let e = on(&cloud, &event("alarm-eventbridge.json"))
            .await
            .expect_err("a COOLDOWN answer would drop the failover");
        assert_eq!(e.error_type(), "FailoverDeferred", "{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "COOLDOWN, but the cloud follows {SEED_A}, which fails its EC2 status checks"
            )),
            "{e}"
        );
        // A stopped unit, likewise.
        cloud.set_impaired(SEED_A, false);
        cloud.set_instance_state(SEED_A, "stopped");
        let e = on(&cloud, &event("ec2-state-change.json"))
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), "FailoverDeferred", "{e}");
    }

    /// Lambda's retry, once the cooldown has passed, does the failover the skip deferred.
    #[tokio::test]
    async fn the_retry_after_the_cooldown_fails_over() {
        let cloud = MemoryCloud::seed();
        on_short(&cloud, &direct(SEED_B, true)).await.unwrap();
        on_short(&cloud, &direct(SEED_A, true)).await.unwrap();
        cloud.set_impaired(SEED_A, true);
        let alarm = event("alarm-eventbridge.json");
        let e = on_short(&cloud, &alarm).await.unwrap_err();
        assert_eq!(e.error_type(), "FailoverDeferred", "{e}");
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let out = on_short(&cloud, &alarm).await.unwrap();
        assert_eq!(out.status(), Status::Succeeded, "{out}");
        assert_eq!(report(&out).record.target, SEED_B, "{out}");
    }

    /// The alarm itself is the health signal: a health-check alarm on a unit that still runs
    /// and passes its status checks is retried too while the cloud follows that unit.
    #[tokio::test(start_paused = true)]
    async fn the_alarm_reporting_the_followed_member_counts_as_unhealthy() {
        let cloud = MemoryCloud::seed();
        on(&cloud, &direct(SEED_B, true)).await.unwrap();
        on(&cloud, &direct(SEED_A, true)).await.unwrap();
        let e = on(&cloud, &event("alarm-sns.json")).await.unwrap_err();
        assert!(
            e.to_string().contains("which this trigger reports failed"),
            "{e}"
        );
    }

    /// The working declaration with `retryFailover` enabled, as a file.
    fn with_retry() -> Location {
        let mut v = crate::engine::json::parse(
            &std::fs::read_to_string(format!(
                "{ROOT}/examples/seed-article/declaration-after.json"
            ))
            .unwrap(),
        )
        .unwrap();
        v["retryFailover"] = json!({"enabled": true, "interval": 5});
        let path = std::env::temp_dir().join(format!("cf-retry-{}.json", std::process::id()));
        std::fs::write(&path, v.to_string()).unwrap();
        Location::File(path)
    }

    /// `retryFailover`: the schedule converges drift on the member the last failover made
    /// active (here B), whoever moved the route back to A.
    #[tokio::test(start_paused = true)]
    async fn the_scheduled_reconcile_converges_drift_on_the_last_target() {
        use crate::lab::{SEED_A_EXT, SEED_B_EXT, SEED_RTB};
        let cloud = MemoryCloud::seed();
        let loc = with_retry();
        let schedule = event("schedule-reconcile.json");
        let out = handle(&cloud, &cloud, &loc, &schedule, invocation())
            .await
            .unwrap();
        assert_eq!(out.status(), Status::Ignored, "{out}");
        assert_eq!(
            ignored(&out).reason,
            "no failover recorded yet: nothing to reconcile to"
        );

        handle(&cloud, &cloud, &loc, &direct(SEED_B, true), invocation())
            .await
            .unwrap();
        let default_route = "0.0.0.0/0".parse().unwrap();
        cloud
            .replace_route(SEED_RTB, default_route, SEED_A_EXT)
            .await
            .unwrap();
        cloud.settle();
        let out = handle(&cloud, &cloud, &loc, &schedule, invocation())
            .await
            .unwrap();
        assert_eq!(out.status(), Status::Succeeded, "{out}");
        assert_eq!(report(&out).record.target, SEED_B, "{out}");
        assert_eq!(
            cloud.route_target(SEED_RTB, default_route).as_deref(),
            Some(SEED_B_EXT)
        );
        // Nothing drifted: nothing to change.
        cloud.reset_calls();
        let out = handle(&cloud, &cloud, &loc, &schedule, invocation())
            .await
            .unwrap();
        assert!(report(&out).record.operations.is_empty(), "{out}");
        assert_eq!(cloud.mutation_count(), 0);
    }

    /// Without `retryFailover.enabled` (or from another account) the schedule does nothing.
    #[tokio::test(start_paused = true)]
    async fn the_schedule_does_nothing_unless_retry_failover_is_enabled() {
        let cloud = MemoryCloud::seed();
        let out = on(&cloud, &event("schedule-reconcile.json")).await.unwrap();
        assert_eq!(out.status(), Status::Ignored, "{out}");
        assert!(cloud.calls().is_empty(), "{:?}", cloud.calls());
        let foreign = crate::engine::json::parse(
            &crate::lab::fresh(
                &std::fs::read_to_string(format!("{ROOT}/events/schedule-reconcile.json")).unwrap(),
            )
            .replace("123456789012", "999999999999"),
        )
        .unwrap();
        let out = handle(&cloud, &cloud, &with_retry(), &foreign, invocation())
            .await
            .unwrap();
        assert_eq!(out.status(), Status::Ignored, "{out}");
    }

    /// Answers every HTTP GET with 200 and `body`, on a loopback port.
    async fn page(body: &'static str) -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        addr
    }

    /// The probe's alternative to the appliance's announcement: each unit serves a page that
    /// says ACTIVE only on the active unit; the probe (no AWS call from the box) makes the cloud
    /// follow the unit that says so.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_probe_follows_the_unit_whose_page_says_active() {
        use crate::lab::{SEED_B_EXT, SEED_RTB};
        let (a, b) = (page("STANDBY").await, page("ACTIVE").await);
        let mut v = crate::engine::json::parse(
            &std::fs::read_to_string(format!(
                "{ROOT}/examples/seed-article/declaration-after.json"
            ))
            .unwrap(),
        )
        .unwrap();
        v["serverless"] = json!({"probe": {
            "kind": "http", "path": "/active", "expectBody": "ACTIVE",
            "intervalMs": 100, "timeoutMs": 500, "failuresToDown": 2, "successesToUp": 1,
            "targets": {SEED_A: a.to_string(), SEED_B: b.to_string()}
        }});
        let path = std::env::temp_dir().join(format!("cf-probe-{}.json", std::process::id()));
        std::fs::write(&path, v.to_string()).unwrap();
        let cloud = MemoryCloud::seed();
        let inv = Invocation {
            deadline: Some(std::time::Instant::now() + std::time::Duration::from_millis(6500)),
            ..invocation()
        };
        let report = handle_probe(&cloud, &cloud, &Scope::new(Location::File(path)), inv)
            .await
            .unwrap();
        assert!(matches!(report, Reply::One(_)), "{report:?}");
        let default_route = "0.0.0.0/0".parse().unwrap();
        assert_eq!(
            cloud.route_target(SEED_RTB, default_route).as_deref(),
            Some(SEED_B_EXT),
            "{report:?}"
        );
    }

    /// The last announcement wins: the appliance's announcement that meets a run in progress
    /// (the lock held) is retried, never dropped, even when the cloud follows the announced
    /// unit now (the run in progress may be moving it away).
    #[tokio::test(start_paused = true)]
    async fn an_announcement_that_meets_a_held_lock_is_retried() {
        let cloud = MemoryCloud::seed();
        let _held = crate::engine::lock::held_by(
            &cloud,
            "someone-else",
            std::time::Duration::from_secs(60),
        )
        .await;
        let e = on(&cloud, &event("appliance-active.json"))
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), "FailoverDeferred", "{e}");
        assert!(
            e.to_string().starts_with(
                "IN_PROGRESS, but the appliance's announcement must be carried out after the run in progress"
            ),
            "{e}"
        );
        let cloud = MemoryCloud::seed();
        on(&cloud, &direct(SEED_B, true)).await.unwrap();
        let _held = crate::engine::lock::held_by(
            &cloud,
            "someone-else",
            std::time::Duration::from_secs(60),
        )
        .await;
        let e = on(&cloud, &event("appliance-active.json"))
            .await
            .unwrap_err();
        assert_eq!(e.error_type(), "FailoverDeferred", "{e}");
    }

    /// An operator's command is a decision in time too: the alarm that moved the cloud to B,
    /// delivered again after the operator failed back to A, is older news (it used to move
    /// the cloud back to B once the cooldown had passed).
    #[tokio::test(start_paused = true)]
    async fn an_event_older_than_an_operators_command_does_not_undo_it() {
        use crate::lab::{SEED_A_EXT, SEED_RTB};
        let cloud = MemoryCloud::seed();
        let text =
            std::fs::read_to_string(format!("{ROOT}/events/alarm-eventbridge.json")).unwrap();
        let alarm = crate::engine::json::parse(&crate::lab::fresh_at(
            &text,
            crate::engine::clock::now() - chrono::Duration::seconds(5),
        ))
        .unwrap();
        let out = on(&cloud, &alarm).await.unwrap();
        assert_eq!(out.status(), Status::Succeeded, "{out}");
        on(&cloud, &direct(SEED_A, true)).await.unwrap();
        let out = on(&cloud, &alarm).await.unwrap();
        assert_eq!(out.status(), Status::Ignored, "{out}");
        assert!(out.to_string().contains("older news"), "{out}");
        assert_eq!(
            cloud.route_target(SEED_RTB, "0.0.0.0/0".parse().unwrap()),
            Some(SEED_A_EXT.into())
        );
    }

    /// An event dated ahead (within the 60 s of clock skew allowed) is carried out, but the
    /// decision of record is never later than the function's clock: the next real alarm is
    /// not older news (it was IGNORED, and the cloud stayed on the failed unit).
    #[tokio::test(start_paused = true)]
    async fn an_event_dated_ahead_does_not_silence_the_next_one() {
        let cloud = MemoryCloud::seed();
        let text = std::fs::read_to_string(format!("{ROOT}/events/appliance-active.json")).unwrap();
        let ahead = crate::engine::json::parse(&crate::lab::fresh_at(
            &text,
            crate::engine::clock::now() + chrono::Duration::seconds(55),
        ))
        .unwrap();
        let out = on(&cloud, &ahead).await.unwrap();
        assert_eq!(out.status(), Status::Succeeded, "{out}");
        // B (now followed) fails its status check: the alarm, dated now.
        let text =
            std::fs::read_to_string(format!("{ROOT}/events/alarm-eventbridge.json")).unwrap();
        let alarm =
            crate::engine::json::parse(&crate::lab::fresh(&text).replace(SEED_A, SEED_B)).unwrap();
        match on(&cloud, &alarm).await {
            Ok(a) => assert_ne!(a.status(), Status::Ignored, "{a}"),
            Err(e) => assert_eq!(e.error_type(), "FailoverDeferred", "{e}"),
        }
    }

    /// Older never overrides newer, and stale or replayed events are not acted on: B's
    /// announcement dated 07:00:30 is carried out; A's dated 07:00:00, delivered again after
    /// it (a Lambda retry, an SQS redelivery), is IGNORED; an alarm dated 2020 or 2099, and
    /// an event EventBridge replays from an archive (`replay-name`), are IGNORED with the
    /// reason; an operator's direct invoke has no such bound.
    #[tokio::test]
    async fn events_are_ordered_by_their_own_time_and_must_be_fresh() {
        use crate::lab::{SEED_B_EXT, SEED_RTB};
        let cloud = MemoryCloud::seed();
        let now = crate::engine::clock::now();
        let dated = |name: &str, at: chrono::DateTime<chrono::Utc>, instance: &str| {
            let text = std::fs::read_to_string(format!("{ROOT}/events/{name}")).unwrap();
            crate::engine::json::parse(&crate::lab::fresh_at(&text, at).replace(SEED_B, instance))
                .unwrap()
        };
        // appliance-active.json announces B
        let b_at = now - chrono::Duration::seconds(30);
        let a_at = now - chrono::Duration::seconds(60);
        let out = on(&cloud, &dated("appliance-active.json", b_at, SEED_B))
            .await
            .unwrap();
        assert_eq!(out.status(), Status::Succeeded, "{out}");
        let out = on(&cloud, &dated("appliance-active.json", a_at, SEED_A))
            .await
            .unwrap();
        assert_eq!(out.status(), Status::Ignored, "{out}");
        assert!(out.to_string().contains("older news"), "{out}");
        assert_eq!(
            cloud.route_target(SEED_RTB, "0.0.0.0/0".parse().unwrap()),
            Some(SEED_B_EXT.into())
        );
        // A newer announcement of A, right after B's was carried out: rate-limited per pair, it
        // waits its turn (holding the lock), then is carried out.
        let started = std::time::Instant::now();
        let out = on(&cloud, &dated("appliance-active.json", now, SEED_A))
            .await
            .unwrap();
        assert_eq!(out.status(), Status::Succeeded, "{out}");
        assert!(started.elapsed() >= std::time::Duration::from_secs(8));
        assert_eq!(
            cloud.route_target(SEED_RTB, "0.0.0.0/0".parse().unwrap()),
            Some(crate::lab::SEED_A_EXT.into())
        );
        // Too old, too far ahead, replayed: IGNORED, nothing called but the declaration read.
        for (at, why) in [
            (
                "2020-01-01T00:00:00Z".parse().unwrap(),
                "older than serverless.maxEventAgeSeconds",
            ),
            (
                "2099-01-01T00:00:00Z".parse().unwrap(),
                "ahead of this function's clock",
            ),
        ] {
            let out = on(&cloud, &dated("alarm-eventbridge.json", at, SEED_B))
                .await
                .unwrap();
            assert_eq!(out.status(), Status::Ignored, "{out}");
            assert!(out.to_string().contains(why), "{out}");
        }
        let mut replayed = dated("alarm-eventbridge.json", now, SEED_B);
        replayed["replay-name"] = json!("replay-after-outage");
        let out = on(&cloud, &replayed).await.unwrap();
        assert_eq!(out.status(), Status::Ignored, "{out}");
        assert!(out.to_string().contains("replayed by EventBridge"), "{out}");
        let out = on(&cloud, &direct(SEED_B, true)).await.unwrap();
        assert_eq!(out.status(), Status::Succeeded, "{out}");
    }

    /// A skip while the cloud follows a healthy member stays a successful COOLDOWN answer:
    /// A is running again and preferred (failbackTo), but the cluster just failed over to B.
    #[tokio::test(start_paused = true)]
    async fn a_skip_while_the_followed_member_is_healthy_stays_a_skip() {
        let cloud = MemoryCloud::seed();
        let mut v = crate::engine::json::parse(
            &std::fs::read_to_string(format!(
                "{ROOT}/examples/seed-article/declaration-after.json"
            ))
            .unwrap(),
        )
        .unwrap();
        v["serverless"] = json!({"failbackTo": SEED_A});
        let path = std::env::temp_dir().join(format!("cf-failback-{}.json", std::process::id()));
        std::fs::write(&path, v.to_string()).unwrap();
        let loc = Location::File(path);
        handle(&cloud, &cloud, &loc, &direct(SEED_B, false), invocation())
            .await
            .unwrap();
        let mut running = event("ec2-state-change.json");
        running["detail"]["state"] = "running".into();
        let out = handle(&cloud, &cloud, &loc, &running, invocation())
            .await
            .unwrap();
        assert_eq!(out.status(), Status::Cooldown, "{out}");
    }

    /// An operator's direct execute is carried out within the cooldown (damping is
    /// for automatic triggers), and the record says it was forced and by whom.
    #[tokio::test(start_paused = true)]
    async fn an_operators_direct_execute_is_obeyed() {
        let cloud = MemoryCloud::seed();
        on(&cloud, &event("alarm-eventbridge.json")).await.unwrap();
        let inv = Invocation {
            request_id: Some("req-42".into()),
            ..invocation()
        };
        let out = handle(&cloud, &cloud, &decl(), &direct(SEED_A, false), inv)
            .await
            .unwrap();
        assert_eq!(out.status(), Status::Succeeded, "{out}");
        let record = &report(&out).record;
        assert!(record.forced, "{out}");
        assert_eq!(
            record.requested_by.as_deref(),
            Some("direct, Lambda request req-42")
        );
    }

    /// Suspicious ignored events are flagged for the operators' notifications;
    /// ordinary ones (an alarm back to OK) are not.
    #[tokio::test(start_paused = true)]
    async fn suspicious_ignored_events_are_flagged() {
        let cloud = MemoryCloud::seed();
        let mut foreign = event("alarm-eventbridge.json");
        foreign["account"] = "999999999999".into();
        let out = on(&cloud, &foreign).await.unwrap();
        assert_eq!(out.status(), Status::Ignored, "{out}");
        assert!(ignored(&out).suspicious, "{out}");
        let mut evil = event("appliance-active.json");
        evil["source"] = "evil.attacker".into();
        let out = on(&cloud, &evil).await.unwrap();
        assert!(ignored(&out).suspicious, "{out}");
        let out = on(&cloud, &event("alarm-ok-eventbridge.json"))
            .await
            .unwrap();
        assert_eq!(out.status(), Status::Ignored, "{out}");
        assert!(!ignored(&out).suspicious, "{out}");
        assert_eq!(cloud.mutation_count(), 0);
    }

    /// Found by an adversarial review: an alarm naming an instance of another pair was refused
    /// as an error (retries, failure queue, a refusal mail); it is IGNORED with the reason.
    #[tokio::test(start_paused = true)]
    async fn an_alarm_for_another_pairs_instance_is_ignored() {
        let cloud = MemoryCloud::seed();
        let text = crate::lab::fresh(
            &std::fs::read_to_string(format!("{ROOT}/events/alarm-eventbridge.json")).unwrap(),
        )
        .replace("i-055fd78af29715fbf", "i-0123456789abcdef0");
        let out = on(&cloud, &crate::engine::json::parse(&text).unwrap())
            .await
            .unwrap();
        assert_eq!(out.status(), Status::Ignored, "{out}");
        assert!(ignored(&out).reason.contains("not a member"), "{out}");
        assert_eq!(cloud.mutation_count(), 0);
    }

    /// Inspect answers "does the cloud agree with the box?" from the appliance's
    /// last announcement, kept in the state file across runs.
    #[tokio::test(start_paused = true)]
    async fn inspect_compares_the_cloud_with_the_boxs_last_announcement() {
        let cloud = MemoryCloud::seed();
        let d = crate::testing::plan::decl(crate::testing::plan::AFTER);
        on(&cloud, &event("appliance-active.json")).await.unwrap();
        let v = crate::app::inspect::inspect(&cloud, &cloud, &d)
            .await
            .unwrap();
        assert_eq!(v.box_says.as_ref().unwrap().target, SEED_B);
        assert_eq!(v.agrees_with_box, Some(true));
        // An operator moves the cloud back to A: it no longer agrees with the box (B), and the
        // answer (and its record) says so.
        let answer = on(&cloud, &direct(SEED_A, false)).await.unwrap();
        let said = serde_json::to_string(&answer).unwrap();
        assert!(said.contains("will disagree with the box"), "{said}");
        assert!(
            crate::engine::json::parse(&said).unwrap()["warnings"]
                .to_string()
                .contains(SEED_B),
            "{said}"
        );
        let v = crate::app::inspect::inspect(&cloud, &cloud, &d)
            .await
            .unwrap();
        assert_eq!(
            v.box_says.as_ref().unwrap().target,
            SEED_B,
            "kept across runs"
        );
        assert_eq!(v.agrees_with_box, Some(false));
        assert_eq!(
            v.verdict,
            CloudVerdict::DisagreesWithBox,
            "{}",
            v.verdict_detail
        );
        // Doctor says the same, in the same words, with the command (naming this
        // declaration) that makes the cloud follow the unit the box announced.
        let at = "s3://cfe-state-bigip-ha/pairs/web 1.json";
        let checks = crate::ops::doctor::doctor(
            &cloud,
            &cloud,
            &d,
            crate::engine::declaration::LABEL_KEY,
            at,
            &[],
        )
        .await
        .unwrap();
        let c = checks.iter().find(|c| c.name == "cloud").unwrap();
        assert_eq!(c.verdict, crate::ops::doctor::Verdict::Warn, "{c:?}");
        assert_eq!(c.detail, v.verdict_detail);
        assert_eq!(
            c.fix.as_deref().unwrap(),
            format!("cloud-failover execute --declaration '{at}' --target {SEED_B}")
        );
        // The split: part of the cloud on a unit that then stops is FOLLOWS_DOWN, not SPLIT.
        cloud
            .replace_route(SEED_RTB, "0.0.0.0/0".parse().unwrap(), SEED_B_EXT)
            .await
            .unwrap();
        cloud.settle();
        let view = || crate::app::inspect::inspect(&cloud, &cloud, &d);
        assert_eq!(view().await.unwrap().verdict, CloudVerdict::Split);
        cloud.set_instance_state(SEED_B, "stopped");
        let v = view().await.unwrap();
        assert_eq!(v.verdict, CloudVerdict::FollowsDown, "{}", v.verdict_detail);
        assert!(v.verdict_detail.contains("split"), "{}", v.verdict_detail);
        assert!(v.verdict_detail.contains(SEED_B), "{}", v.verdict_detail);
    }

    /// An announcement naming no member of the cluster is not counted, and is said to name
    /// no member (not to come from a unit that is down).
    #[tokio::test(start_paused = true)]
    async fn an_announcement_of_no_member_is_not_counted_and_said_so() {
        let cloud = MemoryCloud::seed();
        let d = crate::testing::plan::decl(crate::testing::plan::AFTER);
        let snap = crate::engine::discovery::discover(&cloud, &cloud, &d)
            .await
            .unwrap();
        let view = crate::engine::picture::picture(&d, &snap, None).with_box(Some(
            crate::engine::state::LastFailover {
                target: "i-0fffffffffffffff0".into(),
                at: chrono::Utc::now(),
            },
        ));
        assert_eq!(view.agrees_with_box, None);
        assert_eq!(view.verdict, CloudVerdict::Agrees);
        assert!(
            view.verdict_detail.contains("names no member"),
            "{}",
            view.verdict_detail
        );
    }

    /// One verdict for inspect, doctor and the probe: the cloud following a stopped unit is
    /// never "agrees" (no trigger delivered yet), and an announcement from a unit now down
    /// does not outvote a cloud that follows the healthy one.
    #[tokio::test(start_paused = true)]
    async fn the_verdict_never_agrees_with_a_dead_unit_nor_counts_a_dead_units_word() {
        let cloud = MemoryCloud::seed();
        let d = crate::testing::plan::decl(crate::testing::plan::AFTER);
        let view = || crate::app::inspect::inspect(&cloud, &cloud, &d);
        // GIVEN the box announced B and the cloud follows B
        on(&cloud, &event("appliance-active.json")).await.unwrap();
        let v = view().await.unwrap();
        assert_eq!(v.verdict, CloudVerdict::Agrees, "{}", v.verdict_detail);
        assert!(v.verdict.is_right());
        // WHEN B stops and nothing has been delivered yet
        cloud.set_instance_state(SEED_B, "stopped");
        let v = view().await.unwrap();
        // THEN the verdict says the cloud follows a dead unit, naming it and the healthy peer
        assert_eq!(v.verdict, CloudVerdict::FollowsDown);
        assert!(v.verdict_detail.contains(SEED_B), "{}", v.verdict_detail);
        assert!(v.verdict_detail.contains("stopped"), "{}", v.verdict_detail);
        assert!(v.verdict_detail.contains(SEED_A), "{}", v.verdict_detail);
        assert!(!v.verdict.is_right());
        // AND doctor says the same words
        let checks = crate::ops::doctor::doctor(
            &cloud,
            &cloud,
            &d,
            crate::engine::declaration::LABEL_KEY,
            "s3://cfe-state-bigip-ha/declarations/cluster.json",
            &[],
        )
        .await
        .unwrap();
        let cloud_check = checks.iter().find(|c| c.name == "cloud").unwrap();
        assert_eq!(cloud_check.detail, v.verdict_detail);
        // WHEN the failover to A runs (B's old announcement stays in the state file)
        on(&cloud, &direct(SEED_A, false)).await.unwrap();
        let v = view().await.unwrap();
        // THEN the stale word of a stopped B does not outvote the cloud: one answer, agrees
        assert_eq!(v.box_says.as_ref().unwrap().target, SEED_B);
        assert_eq!(v.agrees_with_box, None);
        assert_eq!(v.verdict, CloudVerdict::Agrees, "{}", v.verdict_detail);
        assert!(
            v.verdict_detail.contains("not counted"),
            "{}",
            v.verdict_detail
        );
        // AND doctor's permission check says the peer is down, with the command that fixes it
        let checks = crate::ops::doctor::doctor(
            &cloud,
            &cloud,
            &d,
            crate::engine::declaration::LABEL_KEY,
            "s3://cfe-state-bigip-ha/declarations/cluster.json",
            &[],
        )
        .await
        .unwrap();
        let p = checks.iter().find(|c| c.name == "permissions").unwrap();
        assert_eq!(p.verdict, crate::ops::doctor::Verdict::Warn, "{p:?}");
        assert!(p.detail.contains("is stopped"), "{p:?}");
        assert!(
            p.fix.as_deref().unwrap().contains("start-instances"),
            "{p:?}"
        );
    }

    /// Adversarial review: an announcement naming an instance of no member is IGNORED and
    /// writes nothing (it used to refuse, write FAILED and become the box's view).
    #[tokio::test(start_paused = true)]
    async fn an_announcement_of_another_pairs_unit_is_ignored() {
        let cloud = MemoryCloud::seed();
        let mut e = event("appliance-active.json");
        e["detail"]["instanceId"] = "i-0fffffffffffffff0".into();
        let out = on(&cloud, &e).await.unwrap();
        assert_eq!(out.status(), Status::Ignored, "{out}");
        assert!(cloud
            .object(
                "cfe-state-bigip-ha",
                &crate::engine::keys::state_object(
                    "default",
                    crate::engine::declaration::DEFAULT_STATE_FILE
                )
            )
            .is_none());
        assert_eq!(cloud.mutation_count(), 0);
    }

    /// Two pairs of a fleet (one VPC each, one addressing plan) and a declaration that does
    /// not load, under `fleet/` in the first pair's state bucket; pair 0 probes its units.
    async fn probed_fleet(
        a: std::net::SocketAddr,
        b: std::net::SocketAddr,
    ) -> (MemoryCloud, Vec<crate::lab::FleetMember>) {
        use crate::engine::declaration::Encryption;
        use crate::engine::ports::ObjectStore;
        let cloud = MemoryCloud::new();
        let mut members: Vec<_> = (0..2).map(|n| crate::lab::fleet_member(n, 1, 2)).collect();
        let (ia, ib) = (
            members[0].topology.instances[0].id.clone(),
            members[0].topology.instances[1].id.clone(),
        );
        members[0].declaration_json["serverless"]["probe"] = json!({
            "kind": "http", "path": "/active", "expectBody": "ACTIVE",
            "intervalMs": 100, "timeoutMs": 500, "failuresToDown": 2, "successesToUp": 1,
            "targets": {ia: a.to_string(), ib: b.to_string()}
        });
        for (n, m) in members.iter().enumerate() {
            cloud.add_topology(&m.topology);
            let body = m.declaration_json.to_string().into_bytes();
            cloud
                .put_object(
                    "fleet-state-0",
                    &format!("fleet/pair-{n}.json"),
                    body,
                    &Encryption::None,
                    None,
                )
                .await
                .unwrap();
        }
        cloud
            .put_object(
                "fleet-state-0",
                "fleet/broken.json",
                b"{".to_vec(),
                &Encryption::None,
                None,
            )
            .await
            .unwrap();
        (cloud, members)
    }

    /// The inspect function over a fleet: every cluster's picture, and the declaration that
    /// does not load, named.
    #[tokio::test(start_paused = true)]
    async fn inspect_covers_every_cluster_of_a_fleet() {
        let (a, b) = (page("STANDBY").await, page("ACTIVE").await);
        let (cloud, members) = probed_fleet(a, b).await;
        let scope = Scope::new("s3://fleet-state-0/fleet/".parse().unwrap());
        let Reply::Fleet(view) = handle_inspect(&cloud, &cloud, &scope).await.unwrap() else {
            panic!("a fleet's answer")
        };
        let names: Vec<&str> = view
            .clusters
            .iter()
            .filter_map(|c| c.cluster.as_deref())
            .collect();
        assert_eq!(names, ["fleet/pair-0.json", "fleet/pair-1.json"]);
        let pair1 = view.clusters[1].result.as_ref().unwrap();
        assert_eq!(pair1.cluster, "fleet-1");
        assert_eq!(
            pair1.active.as_deref(),
            Some(members[1].topology.instances[0].id.as_str())
        );
        assert!(
            view.broken["fleet/broken.json"].contains("invalid declaration"),
            "{view:?}"
        );
        assert_eq!(cloud.mutation_count(), 0);
    }

    /// The probe function over a fleet probes the cluster that declares a probe and fails it
    /// over (its page says B is active); the other cluster is left alone.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_probe_covers_every_cluster_that_declares_one() {
        let (a, b) = (page("STANDBY").await, page("ACTIVE").await);
        let (cloud, members) = probed_fleet(a, b).await;
        let scope = Scope::new("s3://fleet-state-0/fleet/".parse().unwrap());
        let inv = Invocation {
            deadline: Some(std::time::Instant::now() + std::time::Duration::from_millis(6500)),
            ..invocation()
        };
        let Reply::Fleet(reports) = handle_probe(&cloud, &cloud, &scope, inv).await.unwrap() else {
            panic!("a fleet's answer")
        };
        let probed: Vec<_> = reports
            .clusters
            .iter()
            .map(|c| c.cluster.as_deref())
            .collect();
        assert_eq!(probed, [Some("fleet/pair-0.json")], "{reports:?}");
        assert!(reports.clusters[0].result.is_ok(), "{reports:?}");
        // As JSON: the report's own fields, its declaration named, and who is left out.
        let json = serde_json::to_value(&reports).unwrap();
        assert_eq!(
            json["clusters"][0]["declaration"], "fleet/pair-0.json",
            "{json}"
        );
        assert!(json["broken"]["fleet/broken.json"].is_string(), "{json}");
        let default_route = "0.0.0.0/0".parse().unwrap();
        let target = |m: &crate::lab::FleetMember| cloud.route_target(&m.tables[0], default_route);
        assert_eq!(
            target(&members[0]).as_deref(),
            Some(members[0].standby_eni.as_str()),
            "{reports:?}"
        );
        assert_ne!(
            target(&members[1]).as_deref(),
            Some(members[1].standby_eni.as_str())
        );
    }
}
