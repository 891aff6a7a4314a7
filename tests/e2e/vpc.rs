//! On moto: two copies of one template (same addressing plan, same tags)
//! in one account, their state buckets found by the same tags.

use failover_core::app::handler::load_declaration;
use failover_core::engine::declaration::Declaration;
use failover_core::engine::failover::run;
use failover_core::engine::request::Mode;
use failover_core::engine::request::{RunRequest, TargetSpec};
use failover_core::engine::state::TaskState;
use failover_core::lab::{Topology, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_RTB};
use failover_core::FailoverError;
use failover_lab::builder as lab;

use crate::moto::Moto;
use crate::support::*;

const EIP_ALLOC: &str = "eipalloc-0814e2bbaf002a2bc";

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_stays_in_its_vpc_when_another_vpc_has_the_same_plan() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, _) = moto.cloud().await;
    let (_topo, ids, loc) = seed_lab(&cloud).await;
    let mut other = Topology::seed();
    other.bucket.name = "cfe-state-bigip-ha-2".into();
    let other_ids = lab::create(&cloud, &other).await.unwrap();

    // Copy 1's A stops: the route and the EIP follow copy 1's B, nothing of copy 2 moves.
    let out = on(&cloud, &loc, &ids, "ec2-state-change.json")
        .await
        .unwrap();
    assert_eq!(record(&out).task_state, TaskState::Succeeded, "{out}");
    assert_eq!(record(&out).target, ids.real(SEED_B), "{out}");
    assert_eq!(
        route_target(&cloud, ids.real(SEED_RTB), "0.0.0.0/0")
            .await
            .as_deref(),
        Some(ids.real(SEED_B_EXT))
    );
    assert_eq!(
        eip_eni(&cloud, ids.real(EIP_ALLOC)).await.as_deref(),
        Some(ids.real(SEED_B_EXT))
    );
    assert_eq!(
        route_target(&cloud, other_ids.real(SEED_RTB), "0.0.0.0/0")
            .await
            .as_deref(),
        Some(other_ids.real(SEED_A_EXT))
    );
    assert_eq!(
        eip_eni(&cloud, other_ids.real(EIP_ALLOC)).await.as_deref(),
        Some(other_ids.real(SEED_A_EXT)),
        "the other VPC's EIP (same tags, same VIPs) was left alone"
    );

    // The other VPC's B is no target for this cluster.
    let decl: Declaration = load_declaration(&cloud.s3, &loc).await.unwrap();
    let mut req = RunRequest::new(
        TargetSpec::Instance(other_ids.real(SEED_B).into()),
        Mode::Execute,
        "test",
    );
    req.force = true;
    let err = run(&cloud.ec2, &cloud.s3, &decl, req).await.unwrap_err();
    let FailoverError::Refused(reasons) = err else {
        panic!("{err:?}")
    };
    assert!(reasons[0].contains("not a member"), "{reasons:?}");
}
