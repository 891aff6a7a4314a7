//! Appliance profiles (`examples/profiles/*/`), end to end on the in-memory cloud: each
//! profile's topology (as its vendor documents it), its declaration (CFE's schema), and what
//! the cloud looks like with each unit active. The pair fails over to B and back to A; each
//! time every route, Elastic IP and moved address is where the profile says, doctor finds no
//! FAIL, and a second run has nothing left to do.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::declaration::{Declaration, LABEL_KEY};
use crate::engine::failover::run;
use crate::engine::model::Filter;
use crate::engine::net::Cidr;
use crate::engine::ports::Ec2Describe;
use crate::engine::request::{Mode, RunRequest, TargetSpec};
use crate::engine::state::TaskState;
use crate::lab::Topology;
use crate::memory::MemoryCloud;
use crate::ops::doctor::{doctor, Verdict};

/// `examples/profiles/NAME/profile.json`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    /// What the pair is, and the vendor documents its layout follows.
    #[allow(dead_code)]
    about: Vec<String>,
    topology: Topology,
    /// The two units, A (active at the start) then B.
    units: [String; 2],
    /// What the cloud looks like with each unit active.
    active: BTreeMap<String, Expected>,
}

/// The managed items while one unit is active.
#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Expected {
    /// (route table, destination, interface).
    #[serde(default)]
    pub(crate) routes: Vec<(String, Cidr, String)>,
    /// (allocation id, interface, private IP).
    #[serde(default)]
    pub(crate) eips: Vec<(String, String, IpAddr)>,
    /// (interface, secondary IP it holds).
    #[serde(default)]
    pub(crate) addresses: Vec<(String, IpAddr)>,
}

fn profiles() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/profiles");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("profile.json").exists())
        .collect();
    dirs.sort();
    dirs
}

/// Where the cloud differs from `want`, in words (empty: it agrees).
pub(crate) async fn differences(cloud: &MemoryCloud, want: &Expected) -> Vec<String> {
    let mut out = Vec::new();
    for (table, dest, eni) in &want.routes {
        let got = cloud.route_target(table, *dest);
        if got.as_deref() != Some(eni.as_str()) {
            out.push(format!("route {table} {dest}: {got:?}, not {eni}"));
        }
    }
    let by_id = [Filter::new("allocation-id", want.eips.iter().map(|e| &e.0))];
    let eips = if want.eips.is_empty() {
        Vec::new()
    } else {
        cloud.describe_addresses(&by_id).await.unwrap()
    };
    for e in eips {
        let (_, eni, ip) = want.eips.iter().find(|w| w.0 == e.allocation_id).unwrap();
        if e.network_interface_id.as_deref() != Some(eni.as_str()) || e.private_ip != Some(*ip) {
            out.push(format!(
                "EIP {}: on {:?} {:?}, not {eni} {ip}",
                e.allocation_id, e.network_interface_id, e.private_ip
            ));
        }
    }
    for (eni, ip) in &want.addresses {
        let n = cloud
            .describe_network_interfaces(&[Filter::new("network-interface-id", [eni])])
            .await
            .unwrap();
        if !n.iter().any(|n| n.secondary_ips.contains(ip)) {
            out.push(format!("{eni} does not hold {ip}"));
        }
    }
    out
}

async fn fail_over(cloud: &MemoryCloud, d: &Declaration, to: &str) -> TaskState {
    let mut r = RunRequest::new(TargetSpec::Instance(to.into()), Mode::Execute, "test");
    r.force = true;
    let out = run(cloud, cloud, d, r).await.unwrap();
    cloud.settle();
    match out {
        crate::engine::failover::RunOutcome::Completed(r) => r.record.task_state,
        other => panic!("{other:?}"),
    }
}

/// Every profile: its directory's name, the profile, and its declaration.
fn each_profile() -> Vec<(String, Profile, String)> {
    let all = profiles();
    assert!(all.len() >= 7, "{all:?}");
    all.into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(dir.join("profile.json")).unwrap();
            let p: Profile = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let decl = std::fs::read_to_string(dir.join("declaration.json")).unwrap();
            (name, p, decl)
        })
        .collect()
}

/// Doctor without FAIL on A-active `cloud`, then over to B and back to A: each time every
/// item where `p` says, and a second run changes nothing.
async fn over_and_back(name: &str, p: &Profile, cloud: &MemoryCloud, d: &Declaration) {
    let [a, b] = &p.units;
    let expected = |unit: &str| {
        p.active
            .get(unit)
            .unwrap_or_else(|| panic!("{name}: no `active` entry for {unit}"))
    };
    let start = differences(cloud, expected(a)).await;
    assert!(
        start.is_empty(),
        "{name}: the topology is not A-active: {start:?}"
    );
    let checks = doctor(cloud, cloud, d, LABEL_KEY, "declaration.json", &[])
        .await
        .unwrap();
    let fails: Vec<_> = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .collect();
    assert!(fails.is_empty(), "{name}: doctor fails {fails:#?}");
    for unit in [b, a] {
        assert_eq!(
            fail_over(cloud, d, unit).await,
            TaskState::Succeeded,
            "{name}: to {unit}"
        );
        let off = differences(cloud, expected(unit)).await;
        assert!(off.is_empty(), "{name}: {unit} active: {off:?}");
        cloud.reset_calls();
        assert_eq!(fail_over(cloud, d, unit).await, TaskState::Succeeded);
        assert_eq!(
            cloud.mutation_count(),
            0,
            "{name}: a second run to {unit} changed something"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn every_profile_fails_over_and_back() {
    for (name, p, text) in each_profile() {
        let d = Declaration::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let cloud = MemoryCloud::from_topology(&p.topology);
        over_and_back(&name, &p, &cloud, &d).await;
    }
}

/// `cloud-failover init` on each profile's pair as it stands before any setup (no scoping
/// tag anywhere but the stack's bucket, source/destination check on): the declaration it
/// proposes, once its changes are applied, fails the pair over and back exactly as the
/// profile's own. Given only the two instance ids.
#[tokio::test(start_paused = true)]
async fn init_reproduces_every_profile_from_two_instance_ids() {
    use crate::ops::init::{apply, propose, InitRequest};
    for (name, mut p, text) in each_profile() {
        let label = match Declaration::parse(&text).unwrap().external_storage.scope {
            crate::engine::declaration::Scope::Tags(t) => t[LABEL_KEY].clone(),
            other => panic!("{name}: {other:?}"),
        };
        p.topology = p.topology.bare();
        let cloud = MemoryCloud::from_topology(&p.topology);
        let req = InitRequest {
            units: p.units.clone(),
            tag: (LABEL_KEY.into(), label),
            route_tables: Vec::new(),
            eips: Vec::new(),
        };
        let proposal = propose(&cloud, &req)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !proposal.notes.iter().any(|n| n.starts_with("left out")),
            "{name}: {:#?}",
            proposal.notes
        );
        apply(&cloud, &proposal).await.unwrap();
        cloud.settle();
        let d = Declaration::from_value(&proposal.declaration)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{:#}", proposal.declaration));
        over_and_back(&name, &p, &cloud, &d).await;
    }
}
