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
            tracing::info!(error = %e, "no failover");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declaration::Encryption;
    use crate::error::ErrorKind;
    use crate::lab::{SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_EIP, SEED_RTB};
    use crate::memory::{FaultTiming, MemoryCloud};
    use proptest::prelude::*;
    use serde_json::Value;

    const AFTER: &str = include_str!("../../../examples/seed-article/declaration-after.json");
    const BUCKET: &str = "cfe-state-bigip-ha";
    const STATE: &str = "f5cloudfailover/f5cloudfailoverstate.json";

    fn req(target: &str, mode: Mode) -> RunRequest {
        RunRequest {
            target: TargetSpec::Instance(target.into()),
            mode,
            trigger: "test".into(),
            request_id: None,
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
    }

    fn state(cloud: &MemoryCloud) -> Value {
        serde_json::from_slice(&cloud.object(BUCKET, STATE).expect("state file")).unwrap()
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

    #[tokio::test]
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
            cloud.object_encryption(BUCKET, STATE),
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

    #[tokio::test]
    async fn dry_run_and_converged_runs_mutate_nothing() {
        let cloud = MemoryCloud::seed();
        let r = go(&cloud, SEED_B, Mode::DryRun).await.unwrap();
        assert_eq!(r.plan.operations.len(), 2);
        assert_eq!(cloud.mutation_count(), 0);
        assert!(
            cloud.object(BUCKET, STATE).is_none(),
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

    #[tokio::test]
    async fn refusal_mutates_nothing_and_is_recorded_in_history() {
        let cloud = MemoryCloud::seed();
        let snat_none = include_str!("../../../examples/seed-article/cfe-snat-none.json");
        let e = run(
            &cloud,
            &cloud,
            &Declaration::parse(snat_none).unwrap(),
            req(SEED_B, Mode::Execute),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, FailoverError::Refused(_)));
        assert_eq!(cloud.mutation_count(), 0);
        assert!(cloud.object(BUCKET, STATE).is_none());
        let history = cloud.calls().iter().filter(|c| *c == "PutObject").count();
        assert_eq!(history, 1);
    }

    #[tokio::test]
    async fn half_done_run_is_logged_and_the_next_run_finishes_it() {
        let cloud = MemoryCloud::seed();
        cloud.inject(
            "ReplaceRoute",
            ErrorKind::Throttled,
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
            .contains("RequestLimitExceeded"));
        assert!(r.into_result().is_err());

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

    #[tokio::test]
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

    #[tokio::test]
    async fn peer_of_a_failed_member_is_the_target() {
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        let mut rq = req(SEED_A, Mode::Execute);
        rq.target = TargetSpec::PeerOf(SEED_A.into());
        let r = run(&cloud, &cloud, &d, rq.clone()).await.unwrap();
        assert_eq!(r.record.target, SEED_B);
        cloud.set_instance_state(SEED_B, "stopped");
        let e = run(&cloud, &cloud, &d, rq).await.unwrap_err();
        assert!(e.to_string().contains("no running peer"), "{e}");
    }

    #[tokio::test]
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

    fn op_name() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("AssociateAddress"),
            Just("ReplaceRoute"),
            Just("DescribeRouteTables"),
            Just("DescribeAddresses"),
        ]
    }

    fn fault() -> impl Strategy<Value = (&'static str, ErrorKind, FaultTiming, u32)> {
        (
            op_name(),
            prop_oneof![Just(ErrorKind::Throttled), Just(ErrorKind::Transient)],
            prop_oneof![
                Just(FaultTiming::BeforeEffect),
                Just(FaultTiming::AfterEffect)
            ],
            1u32..3,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever fails during a run, the log says what happened, and one more run
        /// (without faults) converges the cluster to the target with no stale replay.
        #[test]
        fn faults_then_one_run_converges(
            start_b in any::<bool>(),
            faults in proptest::collection::vec(fault(), 0..4),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            rt.block_on(async {
                let cloud = MemoryCloud::seed();
                if start_b {
                    go(&cloud, SEED_B, Mode::Execute).await.unwrap();
                }
                for (op, kind, timing, n) in &faults {
                    cloud.inject(op, *kind, *timing, *n);
                }
                let target = if start_b { SEED_A } else { SEED_B };
                let want = if start_b { SEED_A_EXT } else { SEED_B_EXT };
                let first = go(&cloud, target, Mode::Execute).await;
                if let Ok(r) = &first {
                    let s = state(&cloud);
                    prop_assert_eq!(&s["taskState"], &serde_json::to_value(r.record.task_state).unwrap());
                    if r.record.task_state == TaskState::Succeeded {
                        prop_assert_eq!(route(&cloud), want);
                        prop_assert_eq!(eip_eni(&cloud), want);
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
