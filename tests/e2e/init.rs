//! `cloud-failover init` on moto through the CLI binary: the field report's pair with no
//! scoping tag on anything but the bucket, and source/destination check on. Given the two
//! instance ids, init writes a declaration, sets the tags, turns the check off and runs doctor
//! (no FAIL); a failover with that declaration then moves the route to B.

use failover_core::lab::{Topology, SEED_A, SEED_B, SEED_B_EXT, SEED_RTB, SEED_TAG};
use serde_json::Value;

use crate::moto::Moto;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn init_goes_from_two_instance_ids_to_a_passing_doctor_and_a_failover() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, _calls) = moto.cloud().await;
    let mut topo = Topology::seed();
    for e in &mut topo.elastic_ips {
        e.tags.remove(SEED_TAG.0);
    }
    for t in &mut topo.route_tables {
        t.tags.clear();
    }
    for n in topo.instances.iter_mut().flat_map(|i| &mut i.interfaces) {
        n.source_dest_check = true;
    }
    let (ids, _) = lab_with(&cloud, &topo, "{}").await;
    let dir = std::env::temp_dir().join(format!("cf-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("declaration.json");
    let run = |args: &[&str]| cli_on(&moto.endpoint, &[args, &["--output", "json"]].concat());
    let instances = format!("{},{}", ids.real(SEED_A), ids.real(SEED_B));
    let file_arg = file.to_string_lossy().to_string();
    let base = [
        "init",
        "--instances",
        &instances,
        "--label",
        SEED_TAG.1,
        "--out",
        &file_arg,
    ];

    // Without --apply: the changes are printed, nothing is changed.
    let out = run(&base);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let commands: Vec<&str> = v["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let rtb = ids.real(SEED_RTB);
    assert!(
        commands
            .iter()
            .any(|c| c.contains(&format!("create-tags --resources {rtb}"))),
        "{commands:#?}"
    );
    assert!(
        commands
            .iter()
            .any(|c| c.contains(ids.real(SEED_B_EXT)) && c.contains("--no-source-dest-check")),
        "{commands:#?}"
    );
    assert_eq!(v["applied"], false);
    assert!(v["doctor"].is_null());

    // With --apply: doctor passes on what it wrote.
    let mut apply = base.to_vec();
    apply.push("--apply");
    let out = run(&apply);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{v:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fails: Vec<&Value> = v["doctor"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "FAIL")
        .collect();
    assert!(fails.is_empty(), "{fails:#?}");
    let decl: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        decl["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"][0]["range"],
        "0.0.0.0/0"
    );

    // The declaration fails the pair over.
    let out = run(&[
        "execute",
        "--declaration",
        &file_arg,
        "--target",
        ids.real(SEED_B),
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ec2 = cloud.ec2.client();
    let tables = ec2
        .describe_route_tables()
        .route_table_ids(rtb)
        .send()
        .await
        .unwrap();
    let route = tables.route_tables()[0]
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .unwrap()
        .network_interface_id()
        .map(str::to_string);
    assert_eq!(route.as_deref(), Some(ids.real(SEED_B_EXT)));
    // moto reports an EIP's interface but not which of its addresses it maps to (it ignores
    // AssociateAddress's PrivateIpAddress): init says so and leaves it to the operator.
    assert!(
        v["proposal"]["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("did not say which of its addresses")),
        "{v:#}"
    );
}
