//! Inspect: which member the cloud currently follows, per route and per Elastic IP, and the
//! last state the log recorded.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::declaration::Declaration;
use crate::discovery::{discover, Snapshot};
use crate::error::CloudError;
use crate::lock::{current_holder, Holder};
use crate::ports::{Ec2Describe, ObjectStore};
use crate::state::{StateLog, PREFIX};

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
    /// The member every route and EIP follows, when they agree.
    pub active: Option<String>,
    /// True when routes/EIPs point at different members or at none.
    pub drift: bool,
    /// State bucket.
    pub bucket: Option<String>,
    /// `taskState`, `timestamp`, `instance` and `message` of the state file.
    pub last_state: Option<Value>,
    /// The cluster lock, when held.
    pub lock: Option<Holder>,
    /// The most recent runs from the history, newest first.
    pub recent_runs: Vec<RunSummary>,
}

/// One run from the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Trigger.
    pub trigger: String,
    /// Target.
    pub target: String,
    /// Result.
    pub task_state: String,
    /// Summary.
    pub message: String,
    /// Start.
    pub started_at: String,
    /// Wall time.
    pub duration_ms: Option<u64>,
}

/// How many history objects `inspect` reads.
pub const RECENT_RUNS: usize = 5;

/// Builds the picture from one snapshot (plus the state file).
pub async fn inspect(
    ec2: &dyn Ec2Describe,
    store: &dyn ObjectStore,
    decl: &Declaration,
) -> Result<Inspection, CloudError> {
    let snap = discover(ec2, store, decl).await?;
    let Some(bucket) = snap.bucket.clone() else {
        return Ok(picture(decl, &snap, None));
    };
    let log = StateLog {
        store,
        bucket: bucket.clone(),
        decl,
    };
    let history_prefix = format!("{PREFIX}/history/{}/", decl.extension.cluster_name);
    let (state, lock, mut keys) = futures::try_join!(
        log.read_state(),
        current_holder(store, &bucket, &decl.extension.cluster_name),
        store.list_keys(&bucket, &history_prefix),
    )?;
    let last_state = state.map(|s| {
        let mut v = serde_json::Map::new();
        for k in ["taskState", "timestamp", "instance", "message"] {
            v.insert(k.into(), s[k].clone());
        }
        Value::Object(v)
    });
    keys.sort();
    keys.reverse();
    keys.truncate(RECENT_RUNS);
    let runs =
        futures::future::try_join_all(keys.iter().map(|k| store.get_object(&bucket, k))).await?;
    let mut view = picture(decl, &snap, last_state);
    view.lock = lock;
    view.recent_runs = runs
        .into_iter()
        .flatten()
        .filter_map(|o| serde_json::from_slice(&o.body).ok())
        .collect();
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
    let followed: Vec<Option<&String>> = routes
        .iter()
        .map(|r| r.member.as_ref())
        .chain(elastic_ips.iter().map(|e| e.member.as_ref()))
        .collect();
    let active = match followed.first() {
        Some(Some(first)) if followed.iter().all(|m| *m == Some(*first)) => Some((*first).clone()),
        _ => None,
    };
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
        drift: active.is_none() && !followed.is_empty(),
        active,
        routes,
        elastic_ips,
        bucket: snap.bucket.clone(),
        last_state,
        lock: None,
        recent_runs: Vec::new(),
    }
}
