//! The field report's failover and failback through the Lambda handler, scope rules and
//! dry runs, all through the real SDK against moto.

use failover_core::app::handler::handle;
use failover_core::engine::answer::Status;
use failover_core::engine::ports::ObjectStore;
use failover_core::engine::request::Mode;
use failover_core::engine::state::TaskState;
use failover_core::lab::{tags, Topology, SEED_A, SEED_A_EXT, SEED_B_EXT, SEED_RTB, SEED_TAG};
use serde_json::json;

use crate::moto::Moto;
use crate::support::*;

const EIP_ALLOC: &str = "eipalloc-0814e2bbaf002a2bc";

#[tokio::test(flavor = "multi_thread")]
async fn seed_failover_and_failback_through_the_handler() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, calls) = moto.cloud().await;
    let (topo, ids, loc) = seed_lab(&cloud).await;
    let (rtb, a_ext, b_ext) = (
        ids.real(SEED_RTB),
        ids.real(SEED_A_EXT),
        ids.real(SEED_B_EXT),
    );
    assert_eq!(
        route_target(&cloud, rtb, "0.0.0.0/0").await.as_deref(),
        Some(a_ext)
    );
    assert_eq!(
        eip_eni(&cloud, ids.real(EIP_ALLOC)).await.as_deref(),
        Some(a_ext)
    );

    // A's status-check alarm fires: the route and the EIP follow B.
    calls.clear();
    let out = handle(
        &cloud.ec2,
        &cloud.s3,
        &loc,
        &event(&ids, "alarm-eventbridge.json"),
        invocation(Some("req-1")),
    )
    .await
    .unwrap();
    assert_eq!(record(&out).task_state, TaskState::Succeeded, "{out}");
    assert_eq!(record(&out).request_id.as_deref(), Some("req-1"));
    assert_eq!(calls.mutation_count(), 2);
    assert_eq!(
        route_target(&cloud, rtb, "0.0.0.0/0").await.as_deref(),
        Some(b_ext)
    );
    assert_eq!(
        eip_eni(&cloud, ids.real(EIP_ALLOC)).await.as_deref(),
        Some(b_ext)
    );
    let state = state_file(&cloud, &topo.bucket.name).await.unwrap();
    assert_eq!(state["taskState"], "SUCCEEDED");
    assert_eq!(state["instance"], "failover02.www.non-97.net");
    let op = &state["failoverOperations"]["routes"]["operations"][0];
    assert_eq!(op["routeTableId"], rtb);
    assert_eq!(op["networkInterfaceId"], b_ext);
    assert_eq!(op["nextHopAddress"], "10.0.4.11");
    let eip = ids.real("98.80.114.203");
    assert_eq!(
        state["failoverOperations"]["addresses"]["publicAddresses"][eip]["target"]
            ["PrivateIpAddress"],
        "10.0.4.101"
    );
    let head = cloud
        .s3
        .client()
        .head_object()
        .bucket(&topo.bucket.name)
        .key(failover_core::engine::keys::state_object(
            "default",
            failover_core::engine::declaration::DEFAULT_STATE_FILE,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );

    // Converged: the same alarm again makes no mutating call.
    calls.clear();
    let out = on(&cloud, &loc, &ids, "alarm-eventbridge.json")
        .await
        .unwrap();
    assert_eq!(record(&out).message, "already converged: nothing to change");
    assert_eq!(calls.mutation_count(), 0);

    // Failback by direct invoke.
    let out = on(&cloud, &loc, &ids, "direct-failback.json")
        .await
        .unwrap();
    assert_eq!(record(&out).task_state, TaskState::Succeeded, "{out}");
    assert_eq!(
        route_target(&cloud, rtb, "0.0.0.0/0").await.as_deref(),
        Some(a_ext)
    );
    assert_eq!(
        eip_eni(&cloud, ids.real(EIP_ALLOC)).await.as_deref(),
        Some(a_ext)
    );
    let state = state_file(&cloud, &topo.bucket.name).await.unwrap();
    assert_eq!(state["instance"], "failover01.www.non-97.net");
    let history = cloud
        .s3
        .list_keys(
            &topo.bucket.name,
            &failover_core::engine::keys::history_prefix("default"),
        )
        .await
        .unwrap();
    assert_eq!(history.len(), 3, "one history object per run: {history:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_and_ignored_events_mutate_nothing() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, calls) = moto.cloud().await;
    let (_, ids, loc) = seed_lab(&cloud).await;
    calls.clear();
    let out = on(&cloud, &loc, &ids, "direct-dry-run.json").await.unwrap();
    assert_eq!(out.status(), Status::DryRun, "{out}");
    assert_eq!(record(&out).mode, Mode::DryRun);
    assert_eq!(record(&out).operations.len(), 2, "{out}");
    let out = on(&cloud, &loc, &ids, "alarm-ok-eventbridge.json")
        .await
        .unwrap();
    assert_eq!(out.status(), Status::Ignored, "{out}");
    assert_eq!(calls.mutation_count(), 0, "{:?}", calls.calls());
    assert!(
        !calls.calls().iter().any(|c| c == "PutObject"),
        "{:?}",
        calls.calls()
    );
    assert_eq!(
        route_target(&cloud, ids.real(SEED_RTB), "0.0.0.0/0")
            .await
            .as_deref(),
        Some(ids.real(SEED_A_EXT))
    );
    // Discovery is filtered: it never lists a region's route tables.
    assert!(
        calls
            .calls()
            .iter()
            .filter(|c| *c == "DescribeRouteTables")
            .count()
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn several_tables_ipv4_and_ipv6_only_in_scope_routes_move() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, _) = moto.cloud().await;
    let mut topo = Topology::seed();
    let cidr = |s: &str| s.parse().unwrap();
    // A second tagged table (web subnet B) with IPv4 and IPv6 defaults and a range outside
    // scopingAddressRanges, and an untagged table with the same default route.
    let mut second = topo.route_tables[0].clone();
    second.id = "rtb-0bbbbbbbbbbbbbbbb".into();
    second.subnets = vec![];
    second.routes = vec![
        (cidr("0.0.0.0/0"), SEED_A_EXT.into()),
        (cidr("::/0"), SEED_A_EXT.into()),
        (cidr("192.168.0.0/16"), SEED_A_EXT.into()),
    ];
    let mut untagged = second.clone();
    untagged.id = "rtb-0cccccccccccccccc".into();
    untagged.tags = tags([("team", "other")]);
    topo.route_tables[0]
        .routes
        .push((cidr("::/0"), SEED_A_EXT.into()));
    topo.route_tables.push(second);
    topo.route_tables.push(untagged);
    let decl = json!({
        "class": "Cloud_Failover",
        "environment": "aws",
        "externalStorage": {"scopingTags": {SEED_TAG.0: SEED_TAG.1}},
        "failoverAddresses": {"enabled": true, "scopingTags": {SEED_TAG.0: SEED_TAG.1}},
        "failoverRoutes": {
            "enabled": true,
            "scopingTags": {SEED_TAG.0: SEED_TAG.1},
            "scopingAddressRanges": [{"range": "0.0.0.0/0"}, {"range": "::/0"}],
            "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
        }
    });
    let (ids, loc) = lab_with(&cloud, &topo, &decl.to_string()).await;
    let out = on(&cloud, &loc, &ids, "ec2-state-change.json")
        .await
        .unwrap();
    assert_eq!(record(&out).task_state, TaskState::Succeeded, "{out}");
    assert_eq!(record(&out).operations.len(), 5, "{out}");
    let (a, b) = (ids.real(SEED_A_EXT), ids.real(SEED_B_EXT));
    for t in [SEED_RTB, "rtb-0bbbbbbbbbbbbbbbb"] {
        assert_eq!(
            route_target(&cloud, ids.real(t), "0.0.0.0/0")
                .await
                .as_deref(),
            Some(b),
            "{t}"
        );
        assert_eq!(
            route_target(&cloud, ids.real(t), "::/0").await.as_deref(),
            Some(b),
            "{t}"
        );
    }
    assert_eq!(
        route_target(&cloud, ids.real("rtb-0bbbbbbbbbbbbbbbb"), "192.168.0.0/16")
            .await
            .as_deref(),
        Some(a)
    );
    let untagged = ids.real("rtb-0cccccccccccccccc");
    assert_eq!(
        route_target(&cloud, untagged, "0.0.0.0/0").await.as_deref(),
        Some(a)
    );
    assert_eq!(
        route_target(&cloud, untagged, "::/0").await.as_deref(),
        Some(a)
    );
    let state = state_file(&cloud, &topo.bucket.name).await.unwrap();
    let v6 = state["failoverOperations"]["routes"]["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["ipVersion"] == "6")
        .count();
    assert_eq!(v6, 2);
    let _ = SEED_A;
}

#[tokio::test(flavor = "multi_thread")]
async fn association_swap_moves_subnets_to_the_targets_twin_table() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, calls) = moto.cloud().await;
    let member = failover_core::engine::plan::MEMBER_TAG;
    let mut topo = Topology::seed();
    topo.route_tables[0]
        .tags
        .insert(member.into(), SEED_A.into());
    let mut twin = topo.route_tables[0].clone();
    twin.id = "rtb-0bbbbbbbbbbbbbbbb".into();
    twin.tags = tags([SEED_TAG, (member, failover_core::lab::SEED_B)]);
    twin.routes = vec![("0.0.0.0/0".parse().unwrap(), SEED_B_EXT.into())];
    twin.subnets = vec![];
    topo.route_tables.push(twin);
    let decl = json!({
        "class": "Cloud_Failover",
        "environment": "aws",
        "externalStorage": {"scopingTags": {SEED_TAG.0: SEED_TAG.1}},
        "failoverAddresses": {"enabled": true, "scopingTags": {SEED_TAG.0: SEED_TAG.1}},
        "failoverRoutes": {
            "scopingTags": {SEED_TAG.0: SEED_TAG.1},
            "scopingAddressRanges": [{"range": "0.0.0.0/0"}],
            "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
        },
        "serverless": {"associationSwap": true}
    });
    let (ids, loc) = lab_with(&cloud, &topo, &decl.to_string()).await;
    calls.clear();
    let out = on(&cloud, &loc, &ids, "ec2-state-change.json")
        .await
        .unwrap();
    assert_eq!(out.status(), Status::Succeeded, "{out}");
    let swapped: Vec<&str> = record(&out)
        .operations
        .iter()
        .map(|o| o.id.as_str())
        .filter(|id| id.starts_with("assoc:"))
        .collect();
    assert_eq!(swapped.len(), 2, "both web subnets: {swapped:?}");
    assert!(calls
        .calls()
        .iter()
        .any(|c| c == "ReplaceRouteTableAssociation"));
    assert!(
        calls.calls().iter().all(|c| c != "ReplaceRoute"),
        "no route is rewritten"
    );
    let twin = cloud
        .ec2
        .client()
        .describe_route_tables()
        .route_table_ids(ids.real("rtb-0bbbbbbbbbbbbbbbb"))
        .send()
        .await
        .unwrap();
    let subnets: Vec<&str> = twin.route_tables()[0]
        .associations()
        .iter()
        .filter_map(|a| a.subnet_id())
        .collect();
    assert_eq!(subnets.len(), 2, "{subnets:?}");
    // Converged: a second run changes nothing.
    calls.clear();
    let again = on(&cloud, &loc, &ids, "ec2-state-change.json")
        .await
        .unwrap();
    assert_eq!(
        record(&again).message,
        "already converged: nothing to change"
    );
    assert_eq!(calls.mutation_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opted_in_missing_route_is_created_through_the_sdk() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, calls) = moto.cloud().await;
    let topo = Topology::seed();
    // The working declaration plus a range the web table lacks, its group opted in.
    let mut decl: serde_json::Value =
        serde_json::from_str(&repo_file("examples/seed-article/declaration-after.json")).unwrap();
    decl["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"] =
        json!([{"range": "0.0.0.0/0"}, {"range": "172.16.9.0/24"}]);
    decl["serverless"] = json!({"createMissingRoutes": true});
    let (ids, loc) = lab_with(&cloud, &topo, &decl.to_string()).await;
    let (rtb, b_ext) = (ids.real(SEED_RTB), ids.real(SEED_B_EXT));
    assert_eq!(route_target(&cloud, rtb, "172.16.9.0/24").await, None);

    calls.clear();
    let out = handle(
        &cloud.ec2,
        &cloud.s3,
        &loc,
        &event(&ids, "alarm-eventbridge.json"),
        invocation(None),
    )
    .await
    .unwrap();
    assert_eq!(record(&out).task_state, TaskState::Succeeded, "{out}");
    assert!(calls.calls().iter().any(|c| c == "CreateRoute"));
    assert_eq!(
        route_target(&cloud, rtb, "172.16.9.0/24").await.as_deref(),
        Some(b_ext)
    );
    let state = state_file(&cloud, &topo.bucket.name).await.unwrap();
    let routes = state["failoverOperations"]["routes"]["operations"]
        .as_array()
        .unwrap();
    assert!(routes.iter().any(|r| r["routeAddress"] == "172.16.9.0/24"));
}
