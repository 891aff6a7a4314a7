//! Inspect: which member the cloud currently follows, per route and per Elastic IP, and the
//! last state the log recorded.

use serde::Serialize;
use serde_json::Value;

use crate::declaration::Declaration;
use crate::discovery::{discover, Snapshot};
use crate::error::CloudError;
use crate::lock::{current_holder, Holder};
use crate::ports::{Ec2Describe, ObjectStore};
pub use crate::state::RunSummary;
use crate::state::{read_history, recall_detached_eips, StateLog};

/// A member instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// Instance id.
    pub id: String,
    /// `Name` tag.
    pub name: String,
    /// EC2 state.
    pub state: String,
    /// Availability Zone.
    pub availability_zone: String,
}

/// A managed route and whom it follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteView {
    /// Route table.
    pub route_table_id: String,
    /// Destination.
    pub destination: String,
    /// Current target.
    pub target: String,
    /// Member owning the target ENI.
    pub member: Option<String>,
}

/// A managed Elastic IP and whom it follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EipView {
    /// Public address.
    pub public_ip: String,
    /// ENI it is on.
    pub network_interface_id: Option<String>,
    /// Private IP it maps to.
    pub private_ip: Option<String>,
    /// Member owning that ENI.
    pub member: Option<String>,
}

/// The whole picture.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// Cluster name.
    pub cluster: String,
    /// Members.
    pub members: Vec<MemberView>,
    /// Managed routes.
    pub routes: Vec<RouteView>,
    /// Managed Elastic IPs.
    pub elastic_ips: Vec<EipView>,
    /// Per member: how many managed items (EIPs, routes, secondary IPs, twin associations)
    /// follow it, and how many would have to change (`plan::assess`).
    pub follows: Vec<Follow>,
    /// The member every managed item follows, when there is one.
    pub active: Option<String>,
    /// True when managed items exist and no member has them all.
    pub drift: bool,
    /// The box's own view: the unit the appliance pair last announced active, and when.
    pub box_says: Option<crate::state::LastFailover>,
    /// Whether the cloud follows the unit the box last announced (when both are known).
    pub agrees_with_box: Option<bool>,
    /// Resources the scope selects but that are left alone, with the reason (another VPC's,
    /// an EIP whose VIPs no member holds, …): worth a look.
    pub left_alone: Vec<String>,
    /// State bucket.
    pub bucket: Option<String>,
    /// `taskState`, `timestamp`, `instance` and `message` of the state file.
    pub last_state: Option<Value>,
    /// The cluster lock, when held.
    pub lock: Option<Holder>,
    /// The most recent runs from the history, newest first.
    pub recent_runs: Vec<RunSummary>,
}

/// How far the cloud follows one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Follow {
    /// Instance id.
    pub member: String,
    /// Managed items already following it.
    pub in_place: usize,
    /// Operations a failover to it would make.
    pub to_change: usize,
    /// What would block a failover to it (its health aside).
    pub blocked: Vec<String>,
}

/// How many history objects `inspect` reads.
pub const RECENT_RUNS: usize = 5;

/// Builds the picture from one snapshot (plus the state file).
pub async fn inspect(
    ec2: &dyn Ec2Describe,
    store: &dyn ObjectStore,
    decl: &Declaration,
) -> Result<Inspection, CloudError> {
    let mut snap = discover(ec2, store, decl).await?;
    let Some(bucket) = snap.bucket.clone() else {
        return Ok(picture(decl, &snap, None));
    };
    let log = StateLog {
        store,
        bucket: bucket.clone(),
        decl,
    };
    let cluster = &decl.extension.cluster_name;
    let (state, lock, runs) = futures::try_join!(
        log.read_state(),
        current_holder(store, &bucket, cluster),
        read_history(store, &bucket, cluster, RECENT_RUNS, false),
    )?;
    recall_detached_eips(ec2, decl, state.as_ref(), &mut snap).await?;
    let box_says = state
        .as_ref()
        .and_then(|s| s.get(crate::declaration::EXTENSION_KEY))
        .and_then(|e| e.get("lastAnnouncement"))
        .and_then(|v| serde_json::from_value::<crate::state::LastFailover>(v.clone()).ok());
    let last_state = state.map(|s| {
        let mut v = serde_json::Map::new();
        for k in ["taskState", "timestamp", "instance", "message"] {
            v.insert(k.into(), s[k].clone());
        }
        Value::Object(v)
    });
    let mut view = picture(decl, &snap, last_state);
    view.agrees_with_box = box_says
        .as_ref()
        .map(|b| view.active.as_deref() == Some(b.target.as_str()));
    view.box_says = box_says;
    view.lock = lock;
    view.recent_runs = runs;
    Ok(view)
}

/// The pure part of `inspect`.
pub fn picture(decl: &Declaration, snap: &Snapshot, last_state: Option<Value>) -> Inspection {
    let owner = |eni: Option<&str>| {
        eni.and_then(|e| snap.owner_of_interface(e))
            .map(|m| m.id.clone())
    };
    let groups = decl.route_groups();
    let mut routes = Vec::new();
    for st in &snap.route_tables {
        for r in &groups[st.group].ranges {
            if let Some(route) = st.table.routes.iter().find(|x| x.destination == r.range) {
                routes.push(RouteView {
                    route_table_id: st.table.id.clone(),
                    destination: r.range.to_string(),
                    target: route.target().to_string(),
                    member: owner(route.network_interface_id.as_deref()),
                });
            }
        }
    }
    let elastic_ips: Vec<EipView> = snap
        .elastic_ips
        .iter()
        .map(|e| EipView {
            public_ip: e.eip.public_ip.to_string(),
            network_interface_id: e.eip.network_interface_id.clone(),
            private_ip: e.eip.private_ip.map(|i| i.to_string()),
            member: owner(e.eip.network_interface_id.as_deref()),
        })
        .collect();
    let assessed: Vec<(String, crate::plan::Assessment)> = snap
        .members
        .iter()
        .map(|m| (m.id.clone(), crate::plan::assess(decl, snap, m)))
        .collect();
    // Something is managed when any member has items in place, to change, or blocked (an EIP
    // whose VIP no member holds is managed and followed by none).
    let managed = assessed.iter().any(|(_, a)| {
        !a.in_place.is_empty() || !a.operations.is_empty() || !a.obstacles().is_empty()
    });
    let mut followed = assessed.iter().filter(|(_, a)| a.followed());
    let active = match (followed.next(), followed.next()) {
        (Some((id, _)), None) => Some(id.clone()),
        _ => None,
    };
    let follows = assessed
        .into_iter()
        .map(|(member, a)| Follow {
            member,
            in_place: a.in_place.len(),
            to_change: a.operations.len(),
            blocked: a.obstacles(),
        })
        .collect();
    Inspection {
        cluster: decl.extension.cluster_name.clone(),
        members: snap
            .members
            .iter()
            .map(|m| MemberView {
                id: m.id.clone(),
                name: m.display_name().to_string(),
                state: m.state.clone(),
                availability_zone: m.availability_zone.clone(),
            })
            .collect(),
        drift: active.is_none() && managed,
        box_says: None,
        agrees_with_box: None,
        left_alone: snap.left_alone.clone(),
        follows,
        active,
        routes,
        elastic_ips,
        bucket: snap.bucket.clone(),
        last_state,
        lock: None,
        recent_runs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT};
    use crate::memory::MemoryCloud;
    use crate::probe::{decide, Health};
    use std::collections::BTreeMap;

    async fn view(cloud: &MemoryCloud, d: &Declaration) -> Inspection {
        inspect(cloud, cloud, d).await.unwrap()
    }

    fn healthy(ids: &[&str]) -> BTreeMap<String, Health> {
        ids.iter()
            .map(|id| {
                let mut h = Health::new();
                h.up = true;
                h.successes = 1;
                (id.to_string(), h)
            })
            .collect()
    }

    /// Issue 11.1: in association-swap mode the twins' routes point at both members by design.
    /// Before the fix inspect always saw drift (active none) and the probe "repaired" a healthy
    /// cluster; routes only, the tie went to the larger instance id (B).
    #[tokio::test]
    async fn swap_mode_follows_the_twin_the_subnets_use() {
        let mut topo = crate::testing::swap::twins();
        topo.elastic_ips.clear();
        let cloud = MemoryCloud::from_topology(&topo);
        let d = crate::testing::swap::decl();
        let v = view(&cloud, &d).await;
        assert_eq!(v.active.as_deref(), Some(SEED_A), "{:?}", v.follows);
        assert!(!v.drift);
        assert_eq!(decide(&v, &healthy(&[SEED_A, SEED_B])), None);
    }

    /// Issue 11.2: a same-AZ pair whose failover objects are a VIP (secondary IP) and a route:
    /// a VIP left on the other unit is drift; the VIP alone decides who is followed.
    #[tokio::test]
    async fn secondary_ips_count_in_who_is_followed() {
        let cloud = MemoryCloud::from_topology(&crate::testing::same_az());
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        v["failoverAddresses"] = serde_json::json!({
            "enabled": true,
            "addressGroupDefinitions": [{"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.101"}]
        });
        v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
            serde_json::json!(["10.0.0.11", "10.0.0.12"]);
        let d = Declaration::from_value(&v).unwrap();
        let pic = view(&cloud, &d).await;
        assert_eq!(pic.active.as_deref(), Some(SEED_A));
        // The VIP moves to B behind the cluster's back: the route still follows A.
        cloud
            .assign_private_ips(SEED_B_EXT, &["10.0.0.101".parse().unwrap()], true)
            .await
            .unwrap();
        cloud.settle();
        let pic = view(&cloud, &d).await;
        assert!(pic.drift, "{:?}", pic.follows);
        assert_eq!(pic.active, None);
        // Each member has one item: a tie, so the probe does not pick by id.
        assert_eq!(decide(&pic, &healthy(&[SEED_A, SEED_B])), None);
        // With the route moved as well, B is followed; A down means nothing to do.
        cloud
            .replace_route(
                "rtb-060adeaa8fe5b2bbb",
                "0.0.0.0/0".parse().unwrap(),
                SEED_B_EXT,
            )
            .await
            .unwrap();
        cloud.settle();
        let pic = view(&cloud, &d).await;
        assert_eq!(pic.active.as_deref(), Some(SEED_B));
        let _ = SEED_A_EXT;
    }

    /// Adversarial review of issue 11.2: an EIP whose one VIP no member holds answers no one;
    /// inspect says so (left alone: its VIPs are on no member) rather than "all is well".
    #[tokio::test]
    async fn an_eip_no_member_can_take_is_shown() {
        let mut topo = crate::testing::same_az();
        topo.instances[0].interfaces[1].secondary.clear();
        topo.elastic_ips[0].associated_with = None;
        let cloud = MemoryCloud::from_topology(&topo);
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        v.as_object_mut().unwrap().remove("failoverRoutes");
        let d = Declaration::from_value(&v).unwrap();
        let pic = view(&cloud, &d).await;
        assert_eq!(pic.active, None);
        assert!(
            pic.left_alone
                .iter()
                .any(|w| w.contains("98.80.114.203") && w.contains("none of its VIPs")),
            "{:?}",
            pic.left_alone
        );
    }
}
