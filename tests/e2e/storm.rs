//! An alarm storm against moto: many concurrent invocations for one cluster, exactly one
//! set of mutations (the S3 lock is real: moto enforces If-None-Match / If-Match).

use failover_core::app::handler::handle;
use failover_core::engine::answer::{Answer, Status};
use failover_core::engine::failover::SkipStatus;
use failover_core::lab::{SEED_B_EXT, SEED_RTB};

use crate::moto::Moto;
use crate::support::*;

const STORM: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alarm_storm_yields_exactly_one_set_of_mutations() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, calls) = moto.cloud().await;
    let (_, ids, loc) = seed_lab(&cloud).await;
    let event = event(&ids, "alarm-eventbridge.json");
    calls.clear();
    let runs = (0..STORM).map(|i| {
        let (cloud, loc, event) = (&cloud, &loc, &event);
        async move {
            let id = format!("storm-{i}");
            handle(&cloud.ec2, &cloud.s3, loc, event, invocation(Some(&id))).await
        }
    });
    let results = futures::future::join_all(runs).await;
    let mut changed = 0;
    let mut in_progress = 0;
    let mut converged = 0;
    let mut deferred = 0;
    for r in &results {
        // A run that found the lock held while the cloud still followed the failed unit
        // answers a retryable error (Lambda retries it; by then it converges).
        let out = match r {
            Err(failover_core::FailoverError::Deferred { status, .. }) => {
                assert_eq!(*status, SkipStatus::InProgress);
                deferred += 1;
                continue;
            }
            other => other.as_ref().unwrap_or_else(|e| panic!("{e}")),
        };
        match out {
            Answer::InProgress(_) => in_progress += 1,
            _ => {
                assert_eq!(out.status(), Status::Succeeded, "{out}");
                if record(out).operations.is_empty() {
                    converged += 1;
                } else {
                    changed += 1;
                }
            }
        }
    }
    assert_eq!(changed, 1, "exactly one run changed the cloud");
    assert_eq!(changed + in_progress + deferred + converged, STORM);
    assert_eq!(
        calls.mutation_count(),
        2,
        "one ReplaceRoute and one AssociateAddress: {:?}",
        calls.calls()
    );
    assert_eq!(
        route_target(&cloud, ids.real(SEED_RTB), "0.0.0.0/0")
            .await
            .as_deref(),
        Some(ids.real(SEED_B_EXT))
    );
    eprintln!("storm of {STORM}: {changed} changed, {in_progress} in progress, {deferred} deferred, {converged} converged; {} mutating calls", calls.mutation_count());
}
