//! F5's Cloud Failover Extension's own AWS tests, translated onto the in-memory cloud.
//!
//! Source: F5Networks/f5-cloud-failover-extension at tag v2.4.0, commit
//! 21356468b65c961bbf62a1c7579de0b8aaf62a69 (its last release with source):
//! `test/unit/providers/awsProviderTests.js` (P), `test/unit/failoverTests.js` (F) and
//! `test/functional/tests/providers/aws/tests.js` (FT). Each case names the `it(...)` it
//! follows (file:line and title) and asserts what that test expects, in our terms: CFE's
//! mocked addresses become the seed topology's (`lab::Topology::seed`, `plan::tests::same_az`),
//! its provider calls our planned operations and the cloud after executing them.
//!
//! A case whose name ends in `_differs` asserts our behaviour where it departs from CFE's on
//! purpose; its comment says why, and docs/migrating-from-cfe.md lists each difference.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::declaration::Declaration;
use crate::discovery::{discover, Snapshot};
use crate::failover::{run, RunOutcome, RunReport};
use crate::lab::{tags, InstanceSpec, Topology, SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_EIP};
use crate::lab::{SEED_RTB, SEED_TAG};
use crate::memory::MemoryCloud;
use crate::plan::{plan, Action, Plan, Refusal};
use crate::request::{Mode, RunRequest, TargetSpec};

const AFTER: &str = include_str!("../../../examples/seed-article/declaration-after.json");
const BUCKET: &str = "cfe-state-bigip-ha";
/// The seed EIP's allocation id.
const SEED_ALLOC: &str = "eipalloc-0814e2bbaf002a2bc";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The seed declaration (EIPs by tags, the web route table by id, static next hops), changed.
fn declaration(patch: impl FnOnce(&mut Value)) -> Declaration {
    let mut v: Value = serde_json::from_str(AFTER).unwrap();
    patch(&mut v);
    Declaration::from_value(&v).unwrap()
}

/// The seed's one Elastic IP listed in `addressGroupDefinitions` with these VIPs.
fn listed_eip(vips: [&str; 2]) -> Declaration {
    declaration(|v| {
        v["failoverAddresses"]["addressGroupDefinitions"] = json!([{
            "type": "elasticIpAddress", "scopingAddress": SEED_EIP, "vipAddresses": vips
        }]);
    })
}

async fn snapshot(cloud: &MemoryCloud, d: &Declaration) -> Snapshot {
    discover(cloud, cloud, d).await.unwrap()
}

async fn plan_to(cloud: &MemoryCloud, d: &Declaration, target: &str) -> Result<Plan, Refusal> {
    plan(d, &snapshot(cloud, d).await, target)
}

/// A forced failover to `target`, executed.
async fn fail_over(cloud: &MemoryCloud, d: &Declaration, target: &str) -> RunReport {
    let mut req = RunRequest::new(TargetSpec::Instance(target.into()), Mode::Execute, "test");
    req.force = true;
    match run(cloud, cloud, d, req).await.unwrap() {
        RunOutcome::Completed(r) => *r,
        RunOutcome::Skipped(s) => panic!("skipped: {s:?}"),
    }
}

/// The EIP-moving operations of a plan: (public IP, ENI, private IP).
fn eip_moves(p: &Plan) -> Vec<(IpAddr, String, IpAddr)> {
    p.operations
        .iter()
        .filter_map(|o| match &o.action {
            Action::AssociateAddress {
                public_ip,
                network_interface_id,
                private_ip,
                ..
            } => Some((*public_ip, network_interface_id.clone(), *private_ip)),
            _ => None,
        })
        .collect()
}

/// The route-changing operations of a plan: (table, destination, ENI).
fn route_moves(p: &Plan) -> Vec<(String, String, String)> {
    p.operations
        .iter()
        .filter_map(|o| match &o.action {
            Action::ReplaceRoute {
                route_table_id,
                destination,
                network_interface_id,
                ..
            } => Some((
                route_table_id.clone(),
                destination.to_string(),
                network_interface_id.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// Where the seed EIP is now: (ENI, private IP).
fn seed_eip(cloud: &MemoryCloud) -> (Option<String>, Option<IpAddr>) {
    let e = cloud.elastic_ip(ip(SEED_EIP)).unwrap();
    (e.network_interface_id, e.private_ip)
}

/// A third instance in A's subnet that is no member of the pair (no next hop, no VIP).
fn third_instance(secondary: &str) -> InstanceSpec {
    let mut c = Topology::seed().instances[0].clone();
    c.id = "i-0c0c0c0c0c0c0c0c0".into();
    c.name = "another-appliance".into();
    c.interfaces.truncate(2);
    c.interfaces[0].id = "eni-0c0c0c0c0c0c0c0c1".into();
    c.interfaces[0].primary = ip("10.0.1.21");
    c.interfaces[1].id = "eni-0c0c0c0c0c0c0c0c2".into();
    c.interfaces[1].primary = ip("10.0.0.21");
    c.interfaces[1].secondary = vec![ip(secondary)];
    c
}

// ---------------------------------------------------------------------------------------
// awsProviderTests.js: Elastic IPs
// ---------------------------------------------------------------------------------------

/// P:1144 'should validate public address gets reassociated (using f5_cloud_failover_vips
/// tag)' and '… (using VIPS tag)' (one `it` per key of CFE's `AWS_VIPS_TAGS`, constants.js:174):
/// on the tag path, an EIP moves to the VIP its tag names on the new active unit, whichever
/// of the two keys carries the list; no interface moves.
#[tokio::test]
async fn p1144_an_eip_follows_its_vips_tag_under_either_key() {
    for key in ["f5_cloud_failover_vips", "VIPS"] {
        // GIVEN the seed's EIP tagged with `key` only, and a declaration of addresses only
        let mut topo = Topology::seed();
        let t = &mut topo.elastic_ips[0].tags;
        let vips = t.remove("f5_cloud_failover_vips").unwrap();
        t.insert(key.into(), vips);
        let cloud = MemoryCloud::from_topology(&topo);
        let eips_only = declaration(|v| {
            v.as_object_mut().unwrap().remove("failoverRoutes");
        });
        // WHEN planning the failover to B
        let p = plan_to(&cloud, &eips_only, SEED_B)
            .await
            .unwrap_or_else(|r| panic!("{key}: {r}"));
        // THEN the EIP goes to B's VIP, and nothing else moves
        assert_eq!(
            eip_moves(&p),
            vec![(ip(SEED_EIP), SEED_B_EXT.into(), ip("10.0.4.101"))],
            "{key}"
        );
        assert_eq!(p.operations.len(), 1, "{key}: {:?}", p.operations);
        // AND with routes declared too, the EIP moves with the route
        let p = plan_to(&cloud, &declaration(|_| {}), SEED_B).await.unwrap();
        assert_eq!(eip_moves(&p).len(), 1, "{key}: {:?}", p.operations);
        assert_eq!(route_moves(&p).len(), 1, "{key}: {:?}", p.operations);
    }
}

// ---------------------------------------------------------------------------------------
// failoverTests.js and the README: route declarations
// ---------------------------------------------------------------------------------------
