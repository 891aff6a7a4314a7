//! Faults real networks make, injected between the SDK and moto (`proxy::FaultProxy`): a
//! lost answer after S3 applied a lock write, a 503 on one, a hung EC2 mutation.

use failover_core::app::handler::handle;
use failover_core::aws::{self, AwsOptions};
use failover_core::engine::answer::Answer;
use failover_core::engine::failover::SkipStatus;
use failover_core::engine::ports::ObjectStore;
use failover_core::engine::state::TaskState;
use failover_core::lab::{SEED_B_EXT, SEED_RTB};
use serde_json::Value;

use crate::moto::Moto;
use crate::proxy::{Fault, FaultProxy, Seen};
use crate::support::*;

/// A write of the cluster's lock (not of its members' lock, `lock/members@…`).
fn lock_put(r: &Seen) -> bool {
    r.method == "PUT" && r.path.contains("/f5cloudfailover/lock/") && !r.path.contains("members")
}

async fn through(proxy: &FaultProxy) -> aws::AwsCloud {
    aws::connect(&AwsOptions {
        region: Some("us-east-1".into()),
        endpoint_url: Some(proxy.endpoint.clone()),
        emulator: Some(aws::Emulator::Moto),
    })
    .await
}

async fn alarm(
    cloud: &aws::AwsCloud,
    loc: &failover_core::app::handler::Location,
    ids: &failover_lab::builder::LabIds,
) -> Answer {
    handle(
        &cloud.ec2,
        &cloud.s3,
        loc,
        &event(ids, "alarm-eventbridge.json"),
        invocation(None),
    )
    .await
    .unwrap()
}

/// S3 applies the lock's create, the answer is lost. Before the fix the SDK sent it
/// again, the retry met its own write (412) and the run answered IN_PROGRESS, locked out of its
/// own failover by its own lock. Now the run reads the lock back, finds its write id, and goes
/// on; its release (answer lost too) is settled the same way, so the lock ends free.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_a_lock_write_does_not_lock_the_run_out() {
    let Some(moto) = Moto::start() else { return };
    let (direct, _) = moto.cloud().await;
    let (topo, ids, loc) = seed_lab(&direct).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.rule(
        |r| lock_put(r) && r.header("if-none-match") == Some("*"),
        Fault::LoseResponse,
        1,
    );
    proxy.rule(
        |r| lock_put(r) && r.header("if-match").is_some(),
        Fault::LoseResponse,
        1,
    );
    let cloud = through(&proxy).await;
    let out = alarm(&cloud, &loc, &ids).await;
    assert_eq!(record(&out).task_state, TaskState::Succeeded, "{out}");
    assert_eq!(proxy.armed(), 0, "both faults struck");
    assert_eq!(
        proxy
            .seen(|r| lock_put(r) && r.header("if-none-match").is_some())
            .len(),
        1,
        "the lost create was not sent again blindly"
    );
    assert_eq!(
        route_target(&direct, ids.real(SEED_RTB), "0.0.0.0/0")
            .await
            .as_deref(),
        Some(ids.real(SEED_B_EXT))
    );
    let lock: Value = serde_json::from_slice(
        &direct
            .s3
            .client()
            .get_object()
            .bucket(&topo.bucket.name)
            .key(failover_core::engine::keys::lock_key("default"))
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes(),
    )
    .unwrap();
    assert_eq!(lock["released"], true, "{lock:#}");
}

/// A 503 on the lock's create (nothing applied) is tried again by the lock itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_503_on_a_lock_write_is_tried_again() {
    let Some(moto) = Moto::start() else { return };
    let (direct, _) = moto.cloud().await;
    let (_topo, ids, loc) = seed_lab(&direct).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.rule(
        lock_put,
        Fault::Answer(
            503,
            "<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>",
        ),
        1,
    );
    let cloud = through(&proxy).await;
    let out = alarm(&cloud, &loc, &ids).await;
    assert_eq!(record(&out).task_state, TaskState::Succeeded, "{out}");
    assert_eq!(proxy.armed(), 0);
}

/// EC2 applies ReplaceRoute and the answer is lost: the SDK retries (the call is idempotent),
/// the verify round sees the route on B, and the run succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_answer_to_a_route_change_still_verifies() {
    let Some(moto) = Moto::start() else { return };
    let (direct, _) = moto.cloud().await;
    let (_topo, ids, loc) = seed_lab(&direct).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.rule(
        |r| String::from_utf8_lossy(&r.body).contains("Action=ReplaceRoute"),
        Fault::LoseResponse,
        1,
    );
    let cloud = through(&proxy).await;
    let out = alarm(&cloud, &loc, &ids).await;
    assert_eq!(record(&out).task_state, TaskState::Succeeded, "{out}");
    assert_eq!(proxy.armed(), 0);
    assert_eq!(
        route_target(&direct, ids.real(SEED_RTB), "0.0.0.0/0")
            .await
            .as_deref(),
        Some(ids.real(SEED_B_EXT))
    );
}

/// Found by an adversarial review: a ReplaceRoute held past the SDK's 30 s operation timeout
/// still lands. The run must keep the lock (not release it), so no second run fails over in
/// between and is undone by the late call.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_timed_out_keeps_the_lock() {
    let Some(moto) = Moto::start() else { return };
    let (direct, _) = moto.cloud().await;
    // No verify window: the held call lands 3 s after its timeout, inside the default
    // window, and a verified late call rightly ends the run SUCCEEDED; this is the run that
    // stops waiting before it lands.
    let mut decl: Value =
        serde_json::from_str(&repo_file("examples/seed-article/declaration-after.json")).unwrap();
    decl["serverless"] = serde_json::json!({"verifySeconds": 0});
    let topo = failover_core::lab::Topology::seed();
    let (ids, loc) = lab_with(&direct, &topo, &decl.to_string()).await;
    let proxy = FaultProxy::start(&moto.endpoint).await;
    proxy.rule(
        |r| String::from_utf8_lossy(&r.body).contains("Action=ReplaceRoute"),
        Fault::Hold(std::time::Duration::from_secs(33)),
        1,
    );
    let cloud = through(&proxy).await;
    let out = handle(
        &cloud.ec2,
        &cloud.s3,
        &loc,
        &event(&ids, "alarm-eventbridge.json"),
        invocation(None),
    )
    .await;
    // The run stopped waiting at the call timeout; the call landed 3 s later, within the
    // verify round's re-reads (EC2 is eventually consistent): verified, or FAILED when the
    // re-reads ran out first. Either way the call was in flight when the run let go of it.
    match &out {
        Ok(Answer::Succeeded(r)) => {
            let route = r
                .record
                .outcomes
                .iter()
                .find(|o| o.operation.starts_with("route:"))
                .unwrap();
            assert!(route.in_flight && route.verified, "{route:?}");
        }
        Err(e) => assert_eq!(e.error_type(), "FailoverFailed", "{e}"),
        other => panic!("{other:?}"),
    }
    let lock = direct
        .s3
        .get_object(
            &topo.bucket.name,
            &failover_core::engine::keys::lock_key("default"),
        )
        .await
        .unwrap()
        .unwrap();
    let lock: Value = serde_json::from_slice(&lock.body).unwrap();
    assert_eq!(
        lock["released"], false,
        "the lock was released while the call could land"
    );
    // A second run meanwhile is held back.
    let again = handle(
        &direct.ec2,
        &direct.s3,
        &loc,
        &serde_json::json!({"action": "execute", "target": ids.real(failover_core::lab::SEED_A)}),
        invocation(None),
    )
    .await;
    assert!(
        matches!(
            &again,
            Ok(Answer::InProgress(_))
                | Err(failover_core::FailoverError::Deferred {
                    status: SkipStatus::InProgress,
                    ..
                })
        ),
        "{again:?}"
    );
}
