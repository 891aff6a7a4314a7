//! F5's Cloud Failover Extension's own AWS tests, translated onto the in-memory cloud.
//!
//! Source: F5Networks/f5-cloud-failover-extension at tag v2.4.0, commit
//! 21356468b65c961bbf62a1c7579de0b8aaf62a69 (its last release with source):
//! `test/unit/providers/awsProviderTests.js` (P), `test/unit/failoverTests.js` (F) and
//! `test/functional/tests/providers/aws/tests.js` (FT). Each case names the `it(...)` it
//! follows (file:line and title) and asserts what that test expects, in our terms: CFE's
//! mocked addresses become the seed topology's (`lab::Topology::seed`, `testing::same_az`),
//! its provider calls our planned operations and the cloud after executing them.
//!
//! A case whose name ends in `_differs` asserts our behaviour where it departs from CFE's on
//! purpose; its comment says why, and docs/migrating-from-cfe.md lists each difference. The
//! few cases no CFE test covers cite the CFE source or document they follow.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::engine::declaration::{Declaration, NextHops, Scope};
use crate::engine::discovery::{discover, Snapshot};
use crate::engine::error::CloudError;
use crate::engine::failover::{run, RunOutcome, RunReport};
use crate::engine::model::{ElasticIp, Filter, Instance, NetworkInterface, RouteTable};
use crate::engine::net::Cidr;
use crate::engine::plan::{plan, Action, Plan, Refusal};
use crate::engine::ports::{Ec2Describe, Mutation};
use crate::engine::request::{Mode, RunRequest, TargetSpec};
use crate::engine::state::TaskState;
use crate::lab::{tags, InstanceSpec, Topology, SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_EIP};
use crate::lab::{SEED_RTB, SEED_TAG};
use crate::memory::MemoryCloud;
use crate::testing::same_az;

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

/// P:685 'should return unchanged when PrivateIpAddress not in provided vipAddresses'
/// (cloud.js:624-626): an EIP listed in addressGroupDefinitions that is on an address outside
/// its vipAddresses (here a third instance's) is left alone, with a warning; the rest moves.
#[tokio::test]
async fn p0685_a_listed_eip_on_an_address_outside_its_vips_is_left_alone() {
    // GIVEN the seed EIP associated with 10.0.0.99 of a third, non-member instance
    let mut topo = Topology::seed();
    topo.instances.push(third_instance("10.0.0.99"));
    topo.elastic_ips[0].associated_with = Some(("eni-0c0c0c0c0c0c0c0c2".into(), ip("10.0.0.99")));
    let cloud = MemoryCloud::from_topology(&topo);
    let d = listed_eip(["10.0.0.101", "10.0.4.101"]);
    // WHEN planning the failover to B
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    // THEN the EIP is not taken from it, a warning says why, and the route still moves
    assert!(eip_moves(&p).is_empty(), "{:?}", p.operations);
    assert!(
        p.warnings.iter().any(|w| w.contains("10.0.0.99")
            && w.contains("none of its vipAddresses")
            && w.contains("left alone")),
        "{:?}",
        p.warnings
    );
    assert_eq!(route_moves(&p).len(), 1);
    assert!(p.skipped.is_empty(), "{:?}", p.skipped);
    // AND executed, the third instance keeps it
    fail_over(&cloud, &d, SEED_B).await;
    assert_eq!(
        seed_eip(&cloud),
        (Some("eni-0c0c0c0c0c0c0c0c2".into()), Some(ip("10.0.0.99")))
    );
}

/// P:760 'should get Private Secondary IPs from AWS' (`_getPrivateSecondaryIPs`, cloud.js:1871:
/// only `Primary: false` addresses) with docs/userguide/aws.rst:72 ("EIPs associated with the
/// Primary IPs are not remapped during failover"): on the tag path an EIP's tag naming the
/// target's primary IP does not move it there; the item is left out with the reason.
#[tokio::test]
async fn p0760_on_the_tag_path_a_primary_ip_is_no_vip() {
    // GIVEN the seed EIP tagged with A's VIP and B's primary IP
    let cloud = MemoryCloud::seed();
    cloud.tag_eip(SEED_ALLOC, "f5_cloud_failover_vips", "10.0.0.101,10.0.4.11");
    // WHEN planning the failover to B
    let p = plan_to(&cloud, &declaration(|_| {}), SEED_B).await.unwrap();
    // THEN the EIP does not move onto B's primary IP, and the reason names it
    assert!(eip_moves(&p).is_empty(), "{:?}", p.operations);
    assert!(
        p.skipped
            .iter()
            .any(|s| s.contains("10.0.4.11") && s.contains("primary IP")),
        "{:?}",
        p.skipped
    );
}

/// Differs, on purpose. No CFE test covers an `elasticIpAddress` group whose vipAddresses are
/// primary IPs; CFE's code moves it there (cloud.js:628-655 has no primary check, unlike its
/// tag path). Kept, as the way to declare pairs whose units have no secondary IP (FortiGate
/// FGCP puts the cluster EIP on port1's primary IP; NAT instances answer on theirs): the EIP
/// moves onto the target's primary IP, and doctor accepts it.
#[tokio::test]
async fn listed_vip_addresses_may_be_primary_ips() {
    // GIVEN the seed EIP on A's primary IP, listed with both units' primary IPs
    let mut topo = Topology::seed();
    topo.elastic_ips[0].associated_with = Some((SEED_A_EXT.into(), ip("10.0.0.11")));
    let cloud = MemoryCloud::from_topology(&topo);
    let d = listed_eip(["10.0.0.11", "10.0.4.11"]);
    // WHEN planning the failover to B
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    // THEN it goes to B's primary IP
    assert_eq!(
        eip_moves(&p),
        vec![(ip(SEED_EIP), SEED_B_EXT.into(), ip("10.0.4.11"))]
    );
    // AND doctor's Elastic IP check passes
    let checks =
        crate::ops::doctor::static_checks(&d, &snapshot(&cloud, &d).await, SEED_TAG.0, None);
    let eips = checks.iter().find(|c| c.name == "elastic-ips").unwrap();
    assert_eq!(eips.verdict, crate::ops::doctor::Verdict::Pass, "{eips:?}");
}

/// P:1478 'across-net publicIp has not private address association' (cloud.js:619-621):
/// CFE's definitions path leaves an unassociated listed EIP alone. Differs, on purpose: a
/// listed EIP is the pair's by definition and unassociated means nobody answers on it, so it
/// is associated with the target's VIP. CFE itself leaves one so (it disassociates before it
/// associates, cloud.js:1210-1251, and a run stopped in between stays so), as does a unit
/// terminated with its interface; CFE's tag path associates it too (cloud.js:1607).
#[tokio::test]
async fn p1478_an_unassociated_listed_eip_is_associated_differs() {
    // GIVEN the seed EIP listed in addressGroupDefinitions and associated with nothing
    let cloud = MemoryCloud::seed();
    cloud.disassociate(SEED_ALLOC);
    let d = listed_eip(["10.0.0.101", "10.0.4.101"]);
    // WHEN failing over to B
    fail_over(&cloud, &d, SEED_B).await;
    // THEN it is on B's VIP
    assert_eq!(
        seed_eip(&cloud),
        (Some(SEED_B_EXT.into()), Some(ip("10.0.4.101")))
    );
}

// ---------------------------------------------------------------------------------------
// failoverTests.js and the README: route declarations
// ---------------------------------------------------------------------------------------

/// failover.js:688-696 and 973-985 (`failoverAddresses` is optional: address discovery is
/// skipped) with the README's promise that a route table missing its scoping tag is a
/// warning: a routes-only declaration whose table lacks the tag still finds the pair by its
/// declared next hops, warns, and the run goes on.
#[tokio::test]
async fn routes_only_with_an_untagged_table_warns_and_runs() {
    // GIVEN routes only, by tags, and the seed table without its scoping tag
    let cloud = MemoryCloud::seed();
    cloud.untag_route_table(SEED_RTB, SEED_TAG.0);
    let d = declaration(|v| {
        v.as_object_mut().unwrap().remove("failoverAddresses");
        v["failoverRoutes"] = json!({
            "scopingTags": {SEED_TAG.0: SEED_TAG.1},
            "scopingAddressRanges": [{"range": "0.0.0.0/0"}],
            "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
        });
    });
    // WHEN planning the failover to B
    let p = plan_to(&cloud, &d, SEED_B)
        .await
        .unwrap_or_else(|r| panic!("refused: {r}"));
    // THEN both units are members, the plan warns of the table, and nothing is refused
    let snap = snapshot(&cloud, &d).await;
    let members: Vec<&str> = snap.members.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(members, [SEED_A, SEED_B]);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("no route table carries the scoping tags")),
        "{:?}",
        p.warnings
    );
    assert!(p.operations.is_empty());
    // AND the run completes
    let r = fail_over(&cloud, &d, SEED_B).await;
    assert_eq!(
        r.record.task_state,
        crate::engine::state::TaskState::Succeeded
    );
    assert!(
        r.record
            .message
            .starts_with("nothing to change: no managed item found (no route table carries"),
        "{}",
        r.record.message
    );
}

/// F:1106 'should parse config for route group definitions without scoping address ranges'
/// (failover.js:323: the range defaults to 'all'). CFE's schema allows a route group without
/// `scopingAddressRanges`; on AWS, v2.4.0 then updates no route (cloud.js:1086 looks each
/// route's CIDR up in the string 'all'). It loads here with a warning saying so, and the
/// group manages no route.
#[tokio::test]
async fn f1106_a_route_group_without_ranges_loads_and_manages_no_route() {
    // GIVEN the seed route group without scopingAddressRanges
    let mut v: Value = serde_json::from_str(AFTER).unwrap();
    v["failoverRoutes"]["routeGroupDefinitions"][0]
        .as_object_mut()
        .unwrap()
        .remove("scopingAddressRanges");
    // WHEN it is read
    let d = Declaration::from_value(&v).unwrap_or_else(|e| panic!("{e}"));
    // THEN a warning names the field and what it does
    assert!(
        d.warnings.iter().any(|w| w
            .starts_with("failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges:")
            && w.contains("no route")),
        "{:?}",
        d.warnings
    );
    // AND a failover moves the EIP but no route
    let cloud = MemoryCloud::seed();
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert!(route_moves(&p).is_empty(), "{:?}", p.operations);
    assert_eq!(eip_moves(&p).len(), 1);
    // AND the top-level form still needs its ranges, as CFE's schema says (base_schema.json:
    // `required: ["scopingTags", "scopingAddressRanges"]` without routeGroupDefinitions)
    v["failoverRoutes"] = json!({"scopingTags": {SEED_TAG.0: SEED_TAG.1}});
    let e = Declaration::from_value(&v).unwrap_err();
    assert_eq!(
        e.to_string(),
        "failoverRoutes.scopingAddressRanges: is required"
    );
}

/// P:1884 'update routes using route name': a route group's `scopingName` selects the table
/// whose RouteTableId it is (abstract/cloud.js:225-244 compares it with each table's id, AWS
/// tables having no name). A name that is no table id (CFE's own example
/// ipv6RouteFailover.json has `myroutetable-1`) matched nothing under CFE, so every failover
/// left the routes alone: refused here when the declaration is read (validate, declare,
/// doctor and a run all read it so), naming the fix.
#[tokio::test]
async fn p1884_a_route_group_names_its_table_by_id_and_a_name_is_refused() {
    // GIVEN the seed's route group by table id, WHEN failing over to B, THEN its route moves
    let cloud = MemoryCloud::seed();
    let p = plan_to(&cloud, &declaration(|_| {}), SEED_B).await.unwrap();
    assert_eq!(
        route_moves(&p),
        vec![(SEED_RTB.into(), "0.0.0.0/0".into(), SEED_B_EXT.into())]
    );
    // GIVEN a scopingName that is no route table id
    for name in ["myroutetable-1", "12345", "rtb-5EDCF493cee9e7480"] {
        let mut v: Value = serde_json::from_str(AFTER).unwrap();
        v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingName"] = name.into();
        // WHEN it is read, THEN it is refused with the path and the fix
        let e = Declaration::from_value(&v).unwrap_err();
        assert_eq!(
            e.path, "failoverRoutes.routeGroupDefinitions[0].scopingName",
            "{e}"
        );
        assert!(
            e.message
                .starts_with(&format!("\"{name}\" is not a route table id (rtb-…)"))
                && e.message.contains("aws ec2 describe-route-tables")
                && e.message.contains("scopingTags"),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// awsProviderTests.js: more Elastic IP cases
// ---------------------------------------------------------------------------------------

/// Records the filters of every describe (CFE's tests assert the Query parameters it sends).
struct Recording<'a> {
    cloud: &'a MemoryCloud,
    calls: std::sync::Mutex<Vec<(&'static str, Vec<Filter>)>>,
}

impl<'a> Recording<'a> {
    fn new(cloud: &'a MemoryCloud) -> Self {
        Recording {
            cloud,
            calls: Default::default(),
        }
    }

    fn note(&self, call: &'static str, filters: &[Filter]) {
        self.calls.lock().unwrap().push((call, filters.to_vec()));
    }

    fn filters_of(&self, call: &str) -> Vec<Vec<Filter>> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(c, _)| *c == call)
            .map(|(_, f)| f.clone())
            .collect()
    }
}

#[async_trait::async_trait]
impl Ec2Describe for Recording<'_> {
    async fn describe_instances(&self, f: &[Filter]) -> Result<Vec<Instance>, CloudError> {
        self.note("DescribeInstances", f);
        self.cloud.describe_instances(f).await
    }
    async fn describe_network_interfaces(
        &self,
        f: &[Filter],
    ) -> Result<Vec<NetworkInterface>, CloudError> {
        self.note("DescribeNetworkInterfaces", f);
        self.cloud.describe_network_interfaces(f).await
    }
    async fn describe_route_tables(&self, f: &[Filter]) -> Result<Vec<RouteTable>, CloudError> {
        self.note("DescribeRouteTables", f);
        self.cloud.describe_route_tables(f).await
    }
    async fn describe_addresses(&self, f: &[Filter]) -> Result<Vec<ElasticIp>, CloudError> {
        self.note("DescribeAddresses", f);
        self.cloud.describe_addresses(f).await
    }
    async fn impaired_instances(&self, ids: &[String]) -> Result<Vec<String>, CloudError> {
        self.cloud.impaired_instances(ids).await
    }
    async fn describe_vpc_endpoints(
        &self,
        f: &[Filter],
    ) -> Result<Vec<crate::engine::model::VpcEndpoint>, CloudError> {
        self.note("DescribeVpcEndpoints", f);
        self.cloud.describe_vpc_endpoints(f).await
    }
    async fn describe_subnets(
        &self,
        f: &[Filter],
    ) -> Result<Vec<crate::engine::model::VpcSubnet>, CloudError> {
        self.note("DescribeSubnets", f);
        self.cloud.describe_subnets(f).await
    }
}

/// P:568 'should get Elastic IPs from AWS': `failoverAddresses.scopingTags` become one
/// `tag:KEY` filter each on DescribeAddresses (`Filter.1.Name=tag:key1`, `Filter.1.Value=value1`,
/// `Filter.2.Name=tag:key2`, …).
#[tokio::test]
async fn p0568_scoping_tags_filter_the_elastic_ips() {
    // GIVEN two address scoping tags on the seed's EIP
    let cloud = MemoryCloud::seed();
    cloud.tag_eip(SEED_ALLOC, "key2", "value2");
    let d = declaration(|v| {
        v["failoverAddresses"]["scopingTags"] = json!({SEED_TAG.0: SEED_TAG.1, "key2": "value2"});
    });
    // WHEN discovering
    let rec = Recording::new(&cloud);
    let snap = discover(&rec, &cloud, &d).await.unwrap();
    // THEN DescribeAddresses carried one tag filter per scoping tag, and found the EIP
    let want = vec![
        Filter::new(format!("tag:{}", SEED_TAG.0), [SEED_TAG.1]),
        Filter::new("tag:key2", ["value2"]),
    ];
    assert!(rec.filters_of("DescribeAddresses").contains(&want));
    assert_eq!(snap.elastic_ips.len(), 1);
}

/// P:661 'should return unchanged when EIP not found' (cloud.js:604-606): a listed EIP that
/// does not exist changes nothing; the rest of the failover goes on. (Here the item is named
/// in the run's `skipped`, so the run ends PARTIAL rather than silently successful.)
#[tokio::test]
async fn p0661_a_listed_eip_that_does_not_exist_changes_nothing() {
    let cloud = MemoryCloud::seed();
    let d = declaration(|v| {
        v["failoverAddresses"]["addressGroupDefinitions"] = json!([{
            "type": "elasticIpAddress", "scopingAddress": "203.0.113.9",
            "vipAddresses": ["10.0.0.101", "10.0.4.101"]
        }]);
    });
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert!(eip_moves(&p).is_empty());
    assert_eq!(route_moves(&p).len(), 1);
    assert!(p.skipped[0].contains("203.0.113.9"), "{:?}", p.skipped);
}

/// Two EIPs tagged with three VIPs each, one of each on the target (P:835's fixture).
fn two_tagged_eips() -> Topology {
    let mut topo = Topology::seed();
    topo.instances[0].interfaces[2].secondary = vec![ip("10.0.2.101")];
    topo.instances[1].interfaces[2].secondary = vec![ip("10.0.6.101"), ip("10.0.6.102")];
    let mut second = topo.elastic_ips[0].clone();
    second.allocation_id = "eipalloc-0000000000000a654".into();
    second.public_ip = ip("98.80.114.204");
    second.tags.insert(
        "f5_cloud_failover_vips".into(),
        "10.0.6.101,10.0.2.101,10.0.2.102".into(),
    );
    second.associated_with = Some(("eni-0812e390d83655675".into(), ip("10.0.2.101")));
    topo.elastic_ips[0].tags.insert(
        "f5_cloud_failover_vips".into(),
        "10.0.4.101,10.0.0.101,10.0.0.102".into(),
    );
    topo.elastic_ips.push(second);
    topo
}

/// P:835 '_generatePublicAddressOperations: should return correct Elastic IP configuration':
/// each tagged EIP goes to the one address of its list that is a secondary IP of the new
/// active unit (on whichever of its interfaces); the other listed addresses are ignored.
#[tokio::test]
async fn p0835_each_eip_goes_to_its_vip_on_the_target() {
    let cloud = MemoryCloud::from_topology(&two_tagged_eips());
    let p = plan_to(&cloud, &declaration(|_| {}), SEED_B).await.unwrap();
    let mut moves = eip_moves(&p);
    moves.sort();
    assert_eq!(
        moves,
        vec![
            (ip(SEED_EIP), SEED_B_EXT.into(), ip("10.0.4.101")),
            (
                ip("98.80.114.204"),
                "eni-097a6bb7971ecceb4".into(),
                ip("10.0.6.101")
            ),
        ]
    );
}

/// P:851 '_associatePublicAddress: should pass correct parameters to AWS call' and P:930
/// '_reassociatePublicAddresses: should call _associatePublicAddress with correct params':
/// AssociateAddress names the allocation, the target interface and the private IP.
#[tokio::test]
async fn p0851_p0930_associate_address_names_allocation_interface_and_private_ip() {
    let cloud = MemoryCloud::from_topology(&two_tagged_eips());
    let p = plan_to(&cloud, &declaration(|_| {}), SEED_B).await.unwrap();
    let calls: Vec<Mutation> = p
        .operations
        .iter()
        .map(|o| o.action.mutation())
        .filter(|m| m.operation() == "AssociateAddress")
        .collect();
    assert!(calls.contains(&Mutation::AssociateAddress {
        allocation_id: SEED_ALLOC.into(),
        network_interface_id: SEED_B_EXT.into(),
        private_ip: ip("10.0.4.101"),
    }));
    assert!(calls.contains(&Mutation::AssociateAddress {
        allocation_id: "eipalloc-0000000000000a654".into(),
        network_interface_id: "eni-097a6bb7971ecceb4".into(),
        private_ip: ip("10.0.6.101"),
    }));
}

/// P:912 '_reassociatePublicAddresses: should call _disassociatePublicAddress with correct
/// params': CFE disassociates every EIP before associating it again. Differs, on purpose:
/// AssociateAddress with AllowReassociation moves it in one call, so there is no moment in
/// which the address answers nowhere, and no run stopped in between leaves it so.
#[tokio::test]
async fn p0912_no_disassociate_before_associate_differs() {
    let cloud = MemoryCloud::from_topology(&two_tagged_eips());
    fail_over(&cloud, &declaration(|_| {}), SEED_B).await;
    let calls = cloud.calls();
    assert_eq!(
        calls.iter().filter(|c| *c == "AssociateAddress").count(),
        2,
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c == "DisassociateAddress"),
        "{calls:?}"
    );
}

/// P:997 'updateAddress: should not throw error if update operations is empty' (and P:965
/// '… should not reject if there is no work to do'): a failover with nothing to change
/// succeeds and makes no mutating call.
#[tokio::test]
async fn p0997_nothing_to_change_is_a_success_without_calls() {
    let cloud = MemoryCloud::seed();
    let r = fail_over(&cloud, &declaration(|_| {}), SEED_A).await;
    assert_eq!(r.record.task_state, TaskState::Succeeded);
    assert_eq!(cloud.mutation_count(), 0);
}

/// P:1389 'should validate across-net case' (cloud.js:628-655): an `elasticIpAddress` group
/// moves its EIP from the VIP that holds it to the other one, on the interface holding that
/// address.
#[tokio::test]
async fn p1389_a_listed_eip_moves_to_the_other_vip() {
    let cloud = MemoryCloud::seed();
    let d = listed_eip(["10.0.0.101", "10.0.4.101"]);
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert_eq!(
        eip_moves(&p),
        vec![(ip(SEED_EIP), SEED_B_EXT.into(), ip("10.0.4.101"))]
    );
    let Action::AssociateAddress {
        allocation_id,
        current_private_ip,
        ..
    } = &p
        .operations
        .iter()
        .find(|o| o.id.starts_with("eip:"))
        .unwrap()
        .action
    else {
        unreachable!()
    };
    assert_eq!(allocation_id, SEED_ALLOC);
    assert_eq!(*current_private_ip, Some(ip("10.0.0.101")));
}

/// P:1430 'across-net addressGroupDefinitions vipAddress are empty' (cloud.js:597: anything
/// but two VIPs is skipped in silence; the schema's bound on vipAddresses is not applied, its
/// `$ref` being misspelt `#ref`). Differs, on purpose: refused when the declaration is read,
/// with the path, as an EIP that never moves is found out on paper.
#[test]
fn p1430_an_eip_group_without_vips_is_refused_differs() {
    let mut v: Value = serde_json::from_str(AFTER).unwrap();
    v["failoverAddresses"]["addressGroupDefinitions"] = json!([{
        "type": "elasticIpAddress", "scopingAddress": SEED_EIP, "vipAddresses": []
    }]);
    let e = Declaration::from_value(&v).unwrap_err();
    assert_eq!(
        e.path,
        "failoverAddresses.addressGroupDefinitions[0].vipAddresses"
    );
}

/// P:1495 'across-net publicIp includes private address which is not under vipAddresses':
/// as P:685, an EIP on an address none of its vipAddresses names is not moved.
#[tokio::test]
async fn p1495_an_eip_on_an_unlisted_address_of_a_member_is_left_alone() {
    // GIVEN the seed EIP on another secondary IP of A, outside its vipAddresses
    let mut topo = Topology::seed();
    topo.instances[0].interfaces[1]
        .secondary
        .push(ip("10.0.0.102"));
    topo.elastic_ips[0].associated_with = Some((SEED_A_EXT.into(), ip("10.0.0.102")));
    let cloud = MemoryCloud::from_topology(&topo);
    let p = plan_to(&cloud, &listed_eip(["10.0.0.101", "10.0.4.101"]), SEED_B)
        .await
        .unwrap();
    assert!(eip_moves(&p).is_empty(), "{:?}", p.operations);
    assert!(p.warnings.iter().any(|w| w.contains("10.0.0.102")));
}

// ---------------------------------------------------------------------------------------
// awsProviderTests.js: same-network (same-AZ) address moves
// ---------------------------------------------------------------------------------------

/// The same-AZ pair (`testing::same_az`): A and B's external interfaces in one subnet,
/// both tagged with the scoping tag and `f5_cloud_failover_nic_map=external`; A holds the
/// VIP 10.0.0.101 with the EIP, and here also 10.0.0.102 (no EIP).
fn same_az_two_vips() -> Topology {
    let mut topo = same_az();
    topo.instances[0].interfaces[1]
        .secondary
        .push(ip("10.0.0.102"));
    topo
}

/// Same-AZ next hops: both units' primary IPs in the external subnet.
fn same_az_declaration(patch: impl FnOnce(&mut Value)) -> Declaration {
    declaration(|v| {
        v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
            json!(["10.0.0.11", "10.0.0.12"]);
        patch(v);
    })
}

/// The secondary IPv4 moves of a plan: (to, from, addresses).
fn ip_moves(p: &Plan) -> Vec<(String, String, Vec<IpAddr>)> {
    p.operations
        .iter()
        .filter_map(|o| match &o.action {
            Action::AssignPrivateIps {
                network_interface_id,
                from_network_interface_id,
                ips,
                ..
            } => Some((
                network_interface_id.clone(),
                from_network_interface_id.clone(),
                ips.clone(),
            )),
            _ => None,
        })
        .collect()
}

/// P:1002 'should validate private+public address gets reassociated' (tag path, interfaces
/// paired by `f5_cloud_failover_nic_map`): the peer's secondary IPs move to the new active
/// unit's interface in one AssignPrivateIpAddresses, and the EIP on one of them follows it
/// to the same private IP.
#[tokio::test]
async fn p1002_tag_path_secondaries_move_and_their_eip_follows() {
    let cloud = MemoryCloud::from_topology(&same_az_two_vips());
    let d = same_az_declaration(|_| {});
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert_eq!(
        ip_moves(&p),
        vec![(
            SEED_B_EXT.into(),
            SEED_A_EXT.into(),
            vec![ip("10.0.0.101"), ip("10.0.0.102")]
        )]
    );
    fail_over(&cloud, &d, SEED_B).await;
    assert_eq!(
        seed_eip(&cloud),
        (Some(SEED_B_EXT.into()), Some(ip("10.0.0.101")))
    );
}

/// P:1208 'should validate same-net case' (addressGroupDefinitions, `networkInterfaceAddress`):
/// only the listed addresses move, IPv4 and IPv6 alike, each from the peer's interface to the
/// new active unit's interface in the same subnet (paired by subnet: no nic_map tag needed);
/// an unlisted IPv6 address stays; the EIP on a moved address follows it.
#[tokio::test]
async fn p1208_listed_addresses_move_by_subnet_and_an_unlisted_one_stays() {
    // GIVEN no nic_map tags, and IPv6 addresses on A's external interface
    let mut topo = same_az_two_vips();
    for i in 0..2 {
        topo.instances[i].interfaces[1].tags = tags([SEED_TAG]);
    }
    let cloud = MemoryCloud::from_topology(&topo);
    let v6 = ["2600:1f13:5f9:5703::32a2", "2600:1f13:5f9:5703::33a2"];
    let unlisted = ip("2600:1f13:5f9:5703::c576");
    cloud.add_ipv6(SEED_A_EXT, &[ip(v6[0]), ip(v6[1]), unlisted]);
    let d = same_az_declaration(|v| {
        v["failoverAddresses"]["addressGroupDefinitions"] = json!([
            {"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.101"},
            {"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.102"},
            {"type": "networkInterfaceAddress", "scopingAddress": v6[0]},
            {"type": "networkInterfaceAddress", "scopingAddress": v6[1]},
        ]);
    });
    // WHEN B becomes active
    fail_over(&cloud, &d, SEED_B).await;
    // THEN the listed addresses are on B's interface, the unlisted one on A's, the EIP followed
    let snap = snapshot(&cloud, &d).await;
    let b = snap
        .member(SEED_B)
        .unwrap()
        .interface_with(ip(v6[0]))
        .unwrap();
    assert_eq!(b.id, SEED_B_EXT);
    assert!(b.has_ip(ip(v6[1])) && b.has_ip(ip("10.0.0.101")) && b.has_ip(ip("10.0.0.102")));
    let a = snap
        .member(SEED_A)
        .unwrap()
        .interface_with(unlisted)
        .unwrap();
    assert_eq!(a.id, SEED_A_EXT);
    assert_eq!(
        seed_eip(&cloud),
        (Some(SEED_B_EXT.into()), Some(ip("10.0.0.101")))
    );
}

/// P:2074 'IPv6 testing: should ignore additional failoverAddress': with addressGroupDefinitions
/// nothing but the listed addresses moves, however many others the peer's interface holds.
#[tokio::test]
async fn p2074_addresses_not_listed_are_ignored() {
    let cloud = MemoryCloud::from_topology(&same_az_two_vips());
    cloud.add_ipv6(SEED_A_EXT, &[ip("2600:1f13:5f9:5703::32b2")]);
    let d = same_az_declaration(|v| {
        v["failoverAddresses"]["addressGroupDefinitions"] =
            json!([{"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.101"}]);
    });
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert_eq!(
        ip_moves(&p),
        vec![(SEED_B_EXT.into(), SEED_A_EXT.into(), vec![ip("10.0.0.101")])]
    );
    assert!(!p
        .operations
        .iter()
        .any(|o| matches!(o.action, Action::ReleaseIpv6 { .. })));
}

/// P:881 'should build AssignIpv6Addresses request' and P:889 'should build
/// UnassignIpv6Addresses request': an IPv6 address moves by UnassignIpv6Addresses on the
/// holder, then AssignIpv6Addresses on the new active unit's interface.
#[tokio::test]
async fn p0881_p0889_ipv6_moves_by_unassign_then_assign() {
    let cloud = MemoryCloud::from_topology(&same_az());
    cloud.add_ipv6(SEED_A_EXT, &[ip("2001:db8::1")]);
    let d = same_az_declaration(|v| {
        v["failoverAddresses"]["addressGroupDefinitions"] =
            json!([{"type": "networkInterfaceAddress", "scopingAddress": "2001:db8::1"}]);
    });
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    let calls: Vec<(u8, Mutation)> = p
        .operations
        .iter()
        .map(|o| (o.wave, o.action.mutation()))
        .filter(|(_, m)| m.operation().contains("Ipv6"))
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                0,
                Mutation::UnassignIpv6 {
                    network_interface_id: SEED_A_EXT.into(),
                    ips: vec![ip("2001:db8::1")]
                }
            ),
            (
                1,
                Mutation::AssignIpv6 {
                    network_interface_id: SEED_B_EXT.into(),
                    ips: vec![ip("2001:db8::1")]
                }
            ),
        ]
    );
}

/// P:2202 '_createActionForElasticPrefixIpAddress: should resolve with correct resultAction for
/// valid prefix address', P:2220 '… should assign target NetworkInterfaceId based on matching
/// subnet & prefix', P:2271 '_unassignPrivateIp4Addresses: should resolve when unassigning
/// valid IPv4 addresses' and P:2295 '… should include Ipv4Prefix.* params when prefixes
/// supplied': a delegated prefix is released by its holder (UnassignPrivateIpAddresses with
/// Ipv4Prefix) and assigned to the new active unit's interface in the same subnet; an EIP on
/// one of its addresses follows it to the same private IP there.
#[tokio::test]
async fn p2202_a_prefix_moves_by_subnet_and_its_eips_follow() {
    // GIVEN A's external interface holding 10.0.0.48/28 and the seed EIP on 10.0.0.50
    let mut topo = crate::testing::same_az_with_prefix();
    topo.elastic_ips[0].associated_with = Some((SEED_A_EXT.into(), ip("10.0.0.50")));
    let cloud = MemoryCloud::from_topology(&topo);
    let d = same_az_declaration(|v| {
        v["failoverAddresses"]["addressGroupDefinitions"] =
            json!([{"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.48/28"}]);
    });
    let prefix: Cidr = "10.0.0.48/28".parse().unwrap();
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    let calls: Vec<Mutation> = p.operations.iter().map(|o| o.action.mutation()).collect();
    assert!(calls.contains(&Mutation::UnassignIpv4Prefixes {
        network_interface_id: SEED_A_EXT.into(),
        prefixes: vec![prefix],
    }));
    assert!(calls.contains(&Mutation::AssignIpv4Prefixes {
        network_interface_id: SEED_B_EXT.into(),
        prefixes: vec![prefix],
    }));
    assert!(calls.contains(&Mutation::AssociateAddress {
        allocation_id: SEED_ALLOC.into(),
        network_interface_id: SEED_B_EXT.into(),
        private_ip: ip("10.0.0.50"),
    }));
}

// ---------------------------------------------------------------------------------------
// awsProviderTests.js: routes (the fixture of P:1638: the table tagged with its next hops)
// ---------------------------------------------------------------------------------------

/// The seed with P:1638's extra routes: a range with host bits, `::/0`, and the VPC's local
/// route (always there); the table's `f5_self_ips` tag lists both units' next hops with a
/// space, as CFE's fixture does ('10.0.1.211, 10.0.11.52').
fn route_fixture() -> MemoryCloud {
    let mut topo = Topology::seed();
    let rt = &mut topo.route_tables[0];
    rt.tags
        .insert("f5_self_ips".into(), "10.0.0.11, 10.0.4.11".into());
    rt.routes
        .push(("192.0.2.0/24".parse().unwrap(), SEED_A_EXT.into()));
    rt.routes.push(("::/0".parse().unwrap(), SEED_A_EXT.into()));
    let cloud = MemoryCloud::from_topology(&topo);
    cloud.add_ipv6(SEED_A_EXT, &[ip("2600:1f18:4a3:6901::11")]);
    cloud.add_ipv6(SEED_B_EXT, &[ip("2600:1f18:4a3:6902::11")]);
    cloud
}

/// The seed's route group with these ranges (`[{range, nextHopAddresses?}]`) and default hops.
fn routes(ranges: Value, default_hops: Value) -> Declaration {
    declaration(|v| {
        let g = &mut v["failoverRoutes"]["routeGroupDefinitions"][0];
        g["scopingAddressRanges"] = ranges;
        g["defaultNextHopAddresses"] = default_hops;
    })
}

/// P:1727 'update routes using next hop discovery method: routeTag': the next hop comes from
/// the table's tag (trimmed); only the declared range is replaced, pointing at the new active
/// unit's interface; other routes and the local route stay.
#[tokio::test]
async fn p1727_route_tag_next_hops() {
    let cloud = route_fixture();
    let d = routes(
        json!([{"range": "192.0.2.0/24"}]),
        json!({"discoveryType": "routeTag"}),
    );
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert_eq!(
        route_moves(&p),
        vec![(SEED_RTB.into(), "192.0.2.0/24".into(), SEED_B_EXT.into())]
    );
}

/// P:1742 'not update routes if matching route is not found': a declared range the table
/// lacks changes nothing (here with a warning naming it).
#[tokio::test]
async fn p1742_a_range_the_table_lacks_changes_nothing() {
    let cloud = route_fixture();
    let d = routes(
        json!([{"range": "192.0.100.0/24"}]),
        json!({"discoveryType": "routeTag"}),
    );
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert!(route_moves(&p).is_empty());
    assert!(p.warnings.iter().any(|w| w.contains("192.0.100.0/24")));
}

/// P:1751 'update routes using next hop discovery method: static': the first static item on
/// the new active unit names its interface.
#[tokio::test]
async fn p1751_static_next_hops() {
    let cloud = route_fixture();
    let d = routes(
        json!([{"range": "192.0.2.0/24"}]),
        json!({"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}),
    );
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert_eq!(
        route_moves(&p),
        vec![(SEED_RTB.into(), "192.0.2.0/24".into(), SEED_B_EXT.into())]
    );
}

/// P:1772 'update routes using multiple next hop discovery method: static' and P:1827 '…
/// static using IPv6 next hop IP addresses': IPv4 and IPv6 ranges, each with its own static
/// items, are each replaced (DestinationCidrBlock / DestinationIpv6CidrBlock).
#[tokio::test]
async fn p1772_p1827_ipv4_and_ipv6_ranges_with_their_own_next_hops() {
    let cloud = route_fixture();
    let d = routes(
        json!([
            {"range": "192.0.2.0/24"},
            {"range": "::/0", "nextHopAddresses": {"discoveryType": "static",
                "items": ["2600:1f18:4a3:6901::11", "2600:1f18:4a3:6902::11"]}}
        ]),
        json!({"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}),
    );
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    let mut moves = route_moves(&p);
    moves.sort();
    assert_eq!(
        moves,
        vec![
            (SEED_RTB.into(), "192.0.2.0/24".into(), SEED_B_EXT.into()),
            (SEED_RTB.into(), "::/0".into(), SEED_B_EXT.into()),
        ]
    );
}

/// P:1848 'update routes using next hop discovery method: static (with retries)': a throttled
/// ReplaceRoute is sent again and the route is replaced.
#[tokio::test(start_paused = true)]
async fn p1848_a_throttled_replace_route_is_retried() {
    let cloud = MemoryCloud::seed();
    cloud.inject(
        "ReplaceRoute",
        crate::engine::error::ErrorKind::Throttled,
        crate::memory::FaultTiming::BeforeEffect,
        1,
    );
    let r = fail_over(&cloud, &declaration(|_| {}), SEED_B).await;
    assert_eq!(
        r.record.task_state,
        TaskState::Succeeded,
        "{}",
        r.record.message
    );
    let calls = cloud.calls();
    assert_eq!(calls.iter().filter(|c| *c == "ReplaceRoute").count(), 2);
    assert_eq!(
        cloud.route_target(SEED_RTB, "0.0.0.0/0".parse().unwrap()),
        Some(SEED_B_EXT.into())
    );
}

/// P:1912 'not update routes when matching next hop address is not found': no next hop on the
/// new active unit, no ReplaceRoute (here the route is named in the run's `skipped`).
#[tokio::test]
async fn p1912_no_next_hop_on_the_target_no_replace_route() {
    let cloud = route_fixture();
    let d = routes(
        json!([{"range": "::/0", "nextHopAddresses": {"discoveryType": "static", "items": ["2600:1f18:4a3:6901::11"]}}]),
        json!({"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}),
    );
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert!(route_moves(&p).is_empty());
    assert!(
        p.skipped.iter().any(|s| s.contains("::/0")),
        "{:?}",
        p.skipped
    );
}

/// P:1927 'throw an error on an unknown next hop discovery method': an unknown discoveryType
/// is an error (here when the declaration is read).
#[test]
fn p1927_an_unknown_discovery_type_is_an_error() {
    let mut v: Value = serde_json::from_str(AFTER).unwrap();
    v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["discoveryType"] =
        "foo".into();
    let e = Declaration::from_value(&v).unwrap_err();
    assert!(
        e.path.ends_with("defaultNextHopAddresses.discoveryType"),
        "{e}"
    );
}

/// P:1940 'return addresses and routes for active device' and P:2046 'return addresses and not
/// routes for standby device' (inspect): the managed routes and EIPs follow the active unit,
/// none the standby.
#[tokio::test]
async fn p1940_p2046_inspect_shows_what_follows_the_active_unit() {
    let cloud = MemoryCloud::seed();
    let d = declaration(|_| {});
    let pic = crate::app::inspect::picture(&d, &snapshot(&cloud, &d).await, None);
    assert_eq!(pic.active.as_deref(), Some(SEED_A));
    assert!(pic
        .routes
        .iter()
        .all(|r| r.member.as_deref() == Some(SEED_A)));
    assert!(!pic.routes.is_empty());
    assert!(pic
        .elastic_ips
        .iter()
        .all(|e| e.member.as_deref() == Some(SEED_A)));
}

// ---------------------------------------------------------------------------------------
// failoverTests.js: the failover as a whole, and how the declaration is read
// ---------------------------------------------------------------------------------------

fn state_file(cloud: &MemoryCloud, name: &str) -> Value {
    let key = crate::engine::keys::state_object(crate::engine::declaration::DEFAULT_CLUSTER, name);
    serde_json::from_slice(&cloud.object(BUCKET, &key).expect("state file")).unwrap()
}

/// Writes the default state file, as another writer (CFE) would.
async fn put_state(cloud: &MemoryCloud, v: Value) {
    use crate::engine::ports::ObjectStore;
    let key = crate::engine::keys::state_object(
        crate::engine::declaration::DEFAULT_CLUSTER,
        crate::engine::declaration::DEFAULT_STATE_FILE,
    );
    let body = v.to_string().into_bytes();
    let none = crate::engine::declaration::Encryption::None;
    cloud
        .put_object(BUCKET, &key, body, &none, None)
        .await
        .unwrap();
}

/// F:215 'should execute failover': addresses and routes are discovered and updated, and the
/// state file ends SUCCEEDED (CFE's PASS) with the operations.
#[tokio::test]
async fn f0215_a_failover_updates_addresses_and_routes_and_records_success() {
    let cloud = MemoryCloud::seed();
    let r = fail_over(&cloud, &declaration(|_| {}), SEED_B).await;
    assert_eq!(r.record.task_state, TaskState::Succeeded);
    assert_eq!(seed_eip(&cloud).0.as_deref(), Some(SEED_B_EXT));
    assert_eq!(
        cloud.route_target(SEED_RTB, "0.0.0.0/0".parse().unwrap()),
        Some(SEED_B_EXT.into())
    );
    let st = state_file(&cloud, crate::engine::declaration::DEFAULT_STATE_FILE);
    assert_eq!(st["taskState"], "SUCCEEDED");
    assert_eq!(st["message"], "Failover Complete");
}

/// F:224 'should execute failover with only ip address enabled': `failoverRoutes.enabled:
/// false` changes no route.
#[tokio::test]
async fn f0224_routes_disabled_no_route_changes() {
    let cloud = MemoryCloud::seed();
    let d = declaration(|v| v["failoverRoutes"]["enabled"] = false.into());
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert!(route_moves(&p).is_empty());
    assert_eq!(eip_moves(&p).len(), 1);
}

/// F:239 'should execute failover with only route enabled': `failoverAddresses.enabled: false`
/// moves no address.
#[tokio::test]
async fn f0239_addresses_disabled_no_address_changes() {
    let cloud = MemoryCloud::seed();
    let d = declaration(|v| v["failoverAddresses"]["enabled"] = false.into());
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert!(eip_moves(&p).is_empty());
    assert_eq!(route_moves(&p).len(), 1);
}

/// F:255 'should not update ip addresses and routes when disabled' (failover.js:126-129):
/// with both disabled a failover returns at once and changes nothing.
#[tokio::test]
async fn f0255_both_disabled_nothing_changes() {
    let cloud = MemoryCloud::seed();
    let d = declaration(|v| {
        v["failoverRoutes"]["enabled"] = false.into();
        v["failoverAddresses"]["enabled"] = false.into();
    });
    let mut req = RunRequest::new(TargetSpec::Instance(SEED_B.into()), Mode::Execute, "test");
    req.force = true;
    let r = match run(&cloud, &cloud, &d, req).await {
        Ok(RunOutcome::Completed(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.record.task_state, TaskState::Succeeded);
    assert!(
        r.record.message.contains("disabled"),
        "{}",
        r.record.message
    );
    assert_eq!(cloud.mutation_count(), 0);
}

/// F:272 'should execute failover with retry': CFE finds its state file RUNNING, polls it
/// until PASS (up to 400 × 3 s), then fails over in the same call. Differs: a run that finds
/// CFE RUNNING (within 300 s) steps aside at once (IN_PROGRESS: no mutating call; Lambda
/// retries the event), and the next run after CFE finished fails over.
#[tokio::test]
async fn f0272_cfe_running_holds_the_run_back_then_it_proceeds_differs() {
    let cloud = MemoryCloud::seed();
    let d = declaration(|_| {});
    let cfe = |task: &str| {
        json!({"taskState": task, "message": "", "instance": "failover01.www.non-97.net",
               "timestamp": crate::engine::state::timestamp(chrono::Utc::now()), "failoverOperations": {}})
    };
    put_state(&cloud, cfe("RUNNING")).await;
    let mut req = RunRequest::new(TargetSpec::Instance(SEED_B.into()), Mode::Execute, "test");
    req.force = true;
    let out = run(&cloud, &cloud, &d, req.clone()).await;
    assert!(
        matches!(&out, Ok(RunOutcome::Skipped(s)) if s.status == crate::engine::failover::SkipStatus::InProgress),
        "{out:?}"
    );
    assert_eq!(cloud.mutation_count(), 0);
    put_state(&cloud, cfe("SUCCEEDED")).await;
    let r = fail_over(&cloud, &d, SEED_B).await;
    assert_eq!(r.record.task_state, TaskState::Succeeded);
}

/// F:333 'should execute get failover discovery for dry run': a dry run lists what a failover
/// would change and changes nothing.
#[tokio::test]
async fn f0333_a_dry_run_lists_operations_and_changes_nothing() {
    let cloud = MemoryCloud::seed();
    let mut req = RunRequest::new(TargetSpec::Instance(SEED_B.into()), Mode::DryRun, "test");
    req.force = true;
    let RunOutcome::Completed(r) = run(&cloud, &cloud, &declaration(|_| {}), req)
        .await
        .unwrap()
    else {
        panic!("skipped")
    };
    assert_eq!(r.plan.operations.len(), 2);
    assert_eq!(cloud.mutation_count(), 0);
}

/// F:783 'should recover from a previous failover failure': CFE replays the operations its
/// FAILED state file recorded, without discovery. Differs, on purpose: the recorded operations
/// may be stale (the cloud moved since); the next run discovers again and converges, and names
/// the run it finished (`serverless.recovers`).
#[tokio::test]
async fn f0783_after_a_failed_run_the_next_one_rediscovers_differs() {
    let cloud = MemoryCloud::seed();
    let d = declaration(|_| {});
    cloud.inject(
        "ReplaceRoute",
        crate::engine::error::ErrorKind::Rejected,
        crate::memory::FaultTiming::BeforeEffect,
        1,
    );
    let first = fail_over(&cloud, &d, SEED_B).await;
    assert_eq!(first.record.task_state, TaskState::Failed);
    cloud.reset_calls();
    let second = fail_over(&cloud, &d, SEED_B).await;
    assert_eq!(second.record.task_state, TaskState::Succeeded);
    // only the route is left to change: the EIP moved in the failed run
    assert_eq!(
        second.plan.operations.len(),
        1,
        "{:?}",
        second.plan.operations
    );
    assert_eq!(
        second.record.recovers.as_deref(),
        Some(first.record.run_id.as_str())
    );
}

/// F:866 'should reset state file when reset state file function is called after config
/// declaration has occurred': the reset state file says SUCCEEDED (CFE's PASS) with no
/// operations to replay.
#[tokio::test]
async fn f0866_reset_writes_a_clean_state_file() {
    let cloud = MemoryCloud::seed();
    let d = declaration(|_| {});
    fail_over(&cloud, &d, SEED_B).await;
    let log = crate::engine::state::StateLog {
        store: &cloud,
        bucket: BUCKET.into(),
        decl: &d,
    };
    log.reset_state("test", None).await.unwrap();
    let st = state_file(&cloud, crate::engine::declaration::DEFAULT_STATE_FILE);
    assert_eq!(st["taskState"], "SUCCEEDED");
    assert_eq!(st["failoverOperations"], json!({}));
}

/// F:957 'should parse config for default next hop addresses': a range without its own
/// nextHopAddresses takes the group's default; one with its own keeps them.
#[test]
fn f0957_ranges_take_the_default_next_hops_unless_they_have_their_own() {
    let d = routes(
        json!([
            {"range": "192.0.2.0/24"},
            {"range": "192.0.3.0/24", "nextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.12"]}}
        ]),
        json!({"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}),
    );
    let g = &d.route_groups()[0];
    assert_eq!(g.ranges[0].next_hops, None);
    assert_eq!(
        g.default_next_hops,
        NextHops::Static(vec![ip("10.0.0.11"), ip("10.0.4.11")])
    );
    assert_eq!(
        g.ranges[1].next_hops,
        Some(NextHops::Static(vec![ip("10.0.0.12")]))
    );
}

/// F:1009 'should parse global route config into a single route group definition': top-level
/// `scopingTags` / `scopingAddressRanges` / `defaultNextHopAddresses` make one route group by
/// tags.
#[test]
fn f1009_the_global_form_is_one_route_group() {
    let d = declaration(|v| {
        v["failoverRoutes"] = json!({
            "scopingTags": {SEED_TAG.0: SEED_TAG.1},
            "scopingAddressRanges": [{"range": "192.168.1.0/24"}],
            "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
        });
    });
    let groups = d.route_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].scope, Scope::Tags(tags([SEED_TAG])));
    assert_eq!(groups[0].ranges[0].range.to_string(), "192.168.1.0/24");
}

/// F:1064 'should parse config for specific route group definitions': a group's scopingName
/// names its table.
#[test]
fn f1064_a_route_group_by_scoping_name() {
    let d = declaration(|_| {});
    assert_eq!(d.route_groups()[0].scope, Scope::Name(SEED_RTB.into()));
}

/// F:1216 'should throw error when state file name is empty string', F:1288 'should accept
/// state file name with extension', F:1294 '… without extension' and F:1300 'should use
/// custom state file name in failover execution': an empty state file name is refused; a
/// custom one, with or without an extension, is where the state is written
/// (`f5cloudfailover/<name>`).
#[tokio::test]
async fn f1216_f1300_state_file_names() {
    let mut v: Value = serde_json::from_str(AFTER).unwrap();
    v["externalStorage"]["stateFileName"] = "".into();
    assert!(Declaration::from_value(&v).is_err());
    for name in ["custom-state.json", "custom-state"] {
        let cloud = MemoryCloud::seed();
        let d = declaration(|v| v["externalStorage"]["stateFileName"] = name.into());
        fail_over(&cloud, &d, SEED_B).await;
        assert_eq!(state_file(&cloud, name)["taskState"], "SUCCEEDED", "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// test/functional/tests/providers/aws/tests.js: two units failing over and back
// ---------------------------------------------------------------------------------------

/// Whom the seed's EIP and default route follow now (by interface).
fn follows(cloud: &MemoryCloud) -> (Option<String>, Option<String>) {
    (
        seed_eip(cloud).0,
        cloud.route_target(SEED_RTB, "0.0.0.0/0".parse().unwrap()),
    )
}

/// FT:414 / 431 'should check that Elastic IP is mapped to primary (tag discovery)' / '… route
/// table routes for next hop matches primary', FT:456 / 474 (after forcing the primary to
/// standby: mapped to the secondary), FT:496 / 503 (after failing back: the primary again):
/// EIPs by their `f5_cloud_failover_vips` tag, routes by the table's `f5_self_ips` tag
/// (exampleDeclarationTags.stache).
#[tokio::test]
async fn ft0414_to_0503_tag_discovery_fails_over_and_back() {
    let mut topo = Topology::seed();
    topo.route_tables[0]
        .tags
        .insert("f5_self_ips".into(), "10.0.0.11,10.0.4.11".into());
    let cloud = MemoryCloud::from_topology(&topo);
    let d = declaration(|v| {
        v["failoverRoutes"] = json!({
            "scopingTags": {SEED_TAG.0: SEED_TAG.1},
            "scopingAddressRanges": [{"range": "0.0.0.0/0"}],
            "defaultNextHopAddresses": {"discoveryType": "routeTag"}
        });
    });
    let a = (Some(SEED_A_EXT.to_string()), Some(SEED_A_EXT.to_string()));
    let b = (Some(SEED_B_EXT.to_string()), Some(SEED_B_EXT.to_string()));
    assert_eq!(follows(&cloud), a);
    fail_over(&cloud, &d, SEED_B).await;
    assert_eq!(follows(&cloud), b);
    fail_over(&cloud, &d, SEED_A).await;
    assert_eq!(follows(&cloud), a);
}

/// FT:421 / 465 'should check that secondary IPv6 address is mapped to primary / secondary
/// (tag discovery)' (sameNetwork): the IPv6 VIP on the nic_map-paired interface moves with the
/// failover.
#[tokio::test]
async fn ft0421_ft0465_same_network_ipv6_follows_on_the_tag_path() {
    let cloud = MemoryCloud::from_topology(&same_az());
    let v6 = ip("2600:1f13:5f9:5703::32a2");
    cloud.add_ipv6(SEED_A_EXT, &[v6]);
    let d = same_az_declaration(|_| {});
    fail_over(&cloud, &d, SEED_B).await;
    let snap = snapshot(&cloud, &d).await;
    let holder = snap
        .holder_of(v6)
        .map(|(m, n)| (m.id.clone(), n.id.clone()));
    assert_eq!(holder, Some((SEED_B.into(), SEED_B_EXT.into())));
}

/// FT:510 'Should retrieve addresses and routes for primary (tag discovery)' and FT:553 '…
/// not routes for secondary' (inspect): the routes in scope go through the active unit only.
#[tokio::test]
async fn ft0510_ft0553_inspect_routes_by_unit() {
    let cloud = MemoryCloud::seed();
    let d = declaration(|_| {});
    let pic = crate::app::inspect::picture(&d, &snapshot(&cloud, &d).await, None);
    let via = |m: &str| {
        pic.routes
            .iter()
            .filter(|r| r.member.as_deref() == Some(m))
            .count()
    };
    assert_eq!((via(SEED_A), via(SEED_B)), (1, 0));
}

/// FT:592 'Dry run: should retrieve failover objects that will change when standby BIG-IP
/// (secondary) becomes active (tag discovery)' (and FT:881, static definitions): the dry run
/// on the standby names the EIP and the first route through the active unit.
#[tokio::test]
async fn ft0592_ft0881_the_dry_run_names_the_eip_and_the_route() {
    let cloud = MemoryCloud::seed();
    for d in [
        declaration(|_| {}),
        listed_eip(["10.0.0.101", "10.0.4.101"]),
    ] {
        let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
        assert_eq!(eip_moves(&p)[0].0, ip(SEED_EIP));
        assert_eq!(route_moves(&p)[0].0, SEED_RTB);
    }
}

/// FT:651 / 669 / 694 / 713 / 737 / 744 (static definitions, across-net): the listed EIP
/// flips to the other vipAddress and the route follows the static next hop, to the secondary
/// and back (exampleDeclarationAwsStatic.stache).
#[tokio::test]
async fn ft0651_to_0744_static_definitions_fail_over_and_back() {
    let cloud = MemoryCloud::seed();
    let d = listed_eip(["10.0.0.101", "10.0.4.101"]);
    let a = (Some(SEED_A_EXT.to_string()), Some(SEED_A_EXT.to_string()));
    let b = (Some(SEED_B_EXT.to_string()), Some(SEED_B_EXT.to_string()));
    assert_eq!(follows(&cloud), a);
    fail_over(&cloud, &d, SEED_B).await;
    assert_eq!(follows(&cloud), b);
    assert_eq!(seed_eip(&cloud).1, Some(ip("10.0.4.101")));
    fail_over(&cloud, &d, SEED_A).await;
    assert_eq!(follows(&cloud), a);
}

/// FT:659 / 703 'should check that secondary IPv6 address is mapped to primary / secondary
/// (static definitions)' (sameNetwork, exampleDeclarationAwsSameAzStatic.stache): the listed
/// IPv4 and IPv6 VIPs move, and the EIP with its address.
#[tokio::test]
async fn ft0659_ft0703_same_network_static_definitions() {
    let cloud = MemoryCloud::from_topology(&same_az());
    let v6 = ip("2600:1f13:5f9:5703::32a2");
    cloud.add_ipv6(SEED_A_EXT, &[v6]);
    let d = same_az_declaration(|v| {
        v["failoverAddresses"]["addressGroupDefinitions"] = json!([
            {"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.101"},
            {"type": "networkInterfaceAddress", "scopingAddress": v6.to_string()},
        ]);
    });
    fail_over(&cloud, &d, SEED_B).await;
    let snap = snapshot(&cloud, &d).await;
    for a in [ip("10.0.0.101"), v6] {
        assert_eq!(snap.holder_of(a).unwrap().1.id, SEED_B_EXT, "{a}");
    }
    assert_eq!(seed_eip(&cloud).0.as_deref(), Some(SEED_B_EXT));
}

/// FT:752-792 'Flapping scenario': the primary forced to standby, then at once the secondary:
/// the EIP and the routes end on the primary. (Forced runs, as an appliance's own
/// announcement is: flap damping is for automatic triggers.)
#[tokio::test]
async fn ft0752_to_0792_flapping_ends_on_the_last_active_unit() {
    let cloud = MemoryCloud::seed();
    let d = listed_eip(["10.0.0.101", "10.0.4.101"]);
    fail_over(&cloud, &d, SEED_B).await;
    fail_over(&cloud, &d, SEED_A).await;
    assert_eq!(
        follows(&cloud),
        (Some(SEED_A_EXT.to_string()), Some(SEED_A_EXT.to_string()))
    );
}

/// FT:907 'AWS provider config reset: should post declaration (legacy)': the legacy functional
/// declaration (failoverAddresses and externalStorage by tags, one route group by tags with
/// ranges and static next hops) is accepted.
#[test]
fn ft0907_the_legacy_declaration_is_accepted() {
    let legacy = json!({
        "class": "Cloud_Failover", "environment": "aws",
        "externalStorage": {"scopingTags": {SEED_TAG.0: SEED_TAG.1}},
        "failoverAddresses": {"scopingTags": {SEED_TAG.0: SEED_TAG.1}},
        "failoverRoutes": {"routeGroupDefinitions": [{
            "scopingTags": {SEED_TAG.0: SEED_TAG.1},
            "scopingAddressRanges": [{"range": "192.0.2.0/24"}, {"range": "2001:db8:2:2::/64"}],
            "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
        }]}
    });
    let d = Declaration::from_value(&legacy).unwrap();
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

/// FT:1053 'should verify IPv4 prefixes on active BIG-IP external ENI', FT:1066 'dry run should
/// list operations referencing prefix CIDR before standby becomes active' and FT:1078 'should
/// failover and list operations referencing prefix CIDR on newly active peer' (same AZ
/// prefix): the dry run releases the prefix from the active unit's interface and assigns it to
/// the peer's; after the failover the peer's interface holds it.
#[tokio::test]
async fn ft1053_to_1078_a_prefix_fails_over() {
    let cloud = MemoryCloud::from_topology(&crate::testing::same_az_with_prefix());
    let d = same_az_declaration(|v| {
        v["failoverAddresses"]["addressGroupDefinitions"] =
            json!([{"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.48/28"}]);
    });
    let prefix: Cidr = "10.0.0.48/28".parse().unwrap();
    let holder = |snap: &Snapshot| {
        snap.members
            .iter()
            .flat_map(|m| &m.network_interfaces)
            .find(|n| n.ipv4_prefixes.contains(&prefix))
            .map(|n| n.id.clone())
    };
    assert_eq!(
        holder(&snapshot(&cloud, &d).await).as_deref(),
        Some(SEED_A_EXT)
    );
    let p = plan_to(&cloud, &d, SEED_B).await.unwrap();
    assert!(p.operations.iter().any(|o| matches!(&o.action,
        Action::ReleasePrefix { network_interface_id, .. } if network_interface_id == SEED_A_EXT)));
    fail_over(&cloud, &d, SEED_B).await;
    assert_eq!(
        holder(&snapshot(&cloud, &d).await).as_deref(),
        Some(SEED_B_EXT)
    );
}
