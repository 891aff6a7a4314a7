//! The picture: which member the cloud follows, per route and per Elastic IP, from one
//! snapshot and the last state (pure; `app::inspect` reads them).

use serde::Serialize;
use serde_json::Value;

use crate::engine::declaration::Declaration;
use crate::engine::discovery::Snapshot;
use crate::engine::lock::Holder;
pub use crate::engine::state::RunSummary;

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
    /// Running, and passing its EC2 status checks.
    pub healthy: bool,
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
    /// The one verdict on the cluster (inspect's header, footer and exit code; doctor's
    /// `cloud` check; the probe's view of the followed unit).
    pub verdict: CloudVerdict,
    /// The verdict in words, naming the units.
    pub verdict_detail: String,
    /// The box's own view: the unit the appliance pair last announced active, and when.
    pub box_says: Option<crate::engine::state::LastFailover>,
    /// Whether the cloud follows the unit the box last announced (when both are known and
    /// the announced unit is healthy: an announcement from a unit now down does not count).
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

/// The one verdict on a cluster, from its picture and its members' health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CloudVerdict {
    /// Every managed item follows one healthy unit (and the box, when its announcement counts,
    /// says the same).
    Agrees,
    /// Nothing in scope is managed.
    NothingManaged,
    /// The managed items do not all follow one member.
    Split,
    /// The cloud follows a unit that is not running or fails its status checks: its traffic
    /// goes nowhere.
    FollowsDown,
    /// The cloud follows one healthy unit; the box last announced the other, healthy one.
    DisagreesWithBox,
}

impl CloudVerdict {
    /// Its name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudVerdict::Agrees => "AGREES",
            CloudVerdict::NothingManaged => "NOTHING_MANAGED",
            CloudVerdict::Split => "SPLIT",
            CloudVerdict::FollowsDown => "FOLLOWS_DOWN",
            CloudVerdict::DisagreesWithBox => "DISAGREES_WITH_BOX",
        }
    }

    /// Whether the cloud is right: it follows a healthy unit the box does not contradict (or
    /// manages nothing).
    pub fn is_right(self) -> bool {
        matches!(self, CloudVerdict::Agrees | CloudVerdict::NothingManaged)
    }
}

impl Inspection {
    /// Counts the box's last announcement (the appliance pair's own view) when the unit it
    /// names is healthy, then judges again.
    pub fn with_box(mut self, said: Option<crate::engine::state::LastFailover>) -> Inspection {
        let counts = |b: &crate::engine::state::LastFailover| {
            self.members.iter().any(|m| m.id == b.target && m.healthy)
        };
        self.agrees_with_box = said
            .as_ref()
            .filter(|b| counts(b))
            .map(|b| self.active.as_deref() == Some(b.target.as_str()));
        self.box_says = said;
        self.judge();
        self
    }

    /// Sets [`Inspection::verdict`] and its words from the rest of the picture.
    fn judge(&mut self) {
        let member = |id: &str| self.members.iter().find(|m| m.id == id);
        let (verdict, detail) = match &self.active {
            Some(a) => match member(a) {
                Some(m) if !m.healthy => {
                    let how = why_down(&m.state);
                    let peer = self
                        .members
                        .iter()
                        .find(|p| p.id != *a && p.healthy)
                        .map_or(String::new(), |p| format!("; {} is healthy", p.id));
                    (
                        CloudVerdict::FollowsDown,
                        format!("the cloud follows {a}, which is {how}: its traffic goes nowhere{peer}"),
                    )
                }
                _ => match (&self.box_says, self.agrees_with_box) {
                    (Some(b), Some(false)) => (
                        CloudVerdict::DisagreesWithBox,
                        format!(
                            "the cloud follows {a}, but the appliance pair last announced {} active ({})",
                            b.target,
                            crate::engine::state::timestamp(b.at)
                        ),
                    ),
                    (Some(b), None) if member(&b.target).is_none() => (
                        CloudVerdict::Agrees,
                        format!(
                            "every managed item follows {a}, which is healthy (the box's last announcement, {} at {}, names no member of this cluster: not counted)",
                            b.target,
                            crate::engine::state::timestamp(b.at)
                        ),
                    ),
                    (Some(b), None) => (
                        CloudVerdict::Agrees,
                        format!(
                            "every managed item follows {a}, which is healthy (the box's last announcement, {} at {}, is from a unit now down: not counted)",
                            b.target,
                            crate::engine::state::timestamp(b.at)
                        ),
                    ),
                    (Some(_), Some(true)) => (
                        CloudVerdict::Agrees,
                        format!("every managed item follows {a}, which is healthy; the box agrees"),
                    ),
                    (None, _) => (
                        CloudVerdict::Agrees,
                        format!("every managed item follows {a}, which is healthy"),
                    ),
                },
            },
            None if self.drift => {
                let split: Vec<String> = self
                    .follows
                    .iter()
                    .map(|f| format!("{} has {}", f.member, f.in_place))
                    .collect();
                // Part of the cloud on a dead unit: that part's traffic goes nowhere.
                let dead: Vec<String> = self
                    .follows
                    .iter()
                    .filter(|f| f.in_place > 0)
                    .filter_map(|f| {
                        let m = member(&f.member).filter(|m| !m.healthy)?;
                        let how = why_down(&m.state);
                        Some(format!("{} item(s) follow {}, which is {how}", f.in_place, m.id))
                    })
                    .collect();
                if dead.is_empty() {
                    (
                        CloudVerdict::Split,
                        format!(
                            "the managed items do not all follow one member ({})",
                            split.join(", ")
                        ),
                    )
                } else {
                    (
                        CloudVerdict::FollowsDown,
                        format!(
                            "the cloud is split and {}: their traffic goes nowhere ({})",
                            dead.join("; "),
                            split.join(", ")
                        ),
                    )
                }
            }
            None => (
                CloudVerdict::NothingManaged,
                "nothing in scope is managed (no Elastic IP or route found)".to_string(),
            ),
        };
        self.verdict = verdict;
        self.verdict_detail = detail;
    }
}

/// Why a member that is not healthy is down, in words: its EC2 state, or, running, its
/// failed status checks.
pub fn why_down(state: &str) -> &str {
    if state == "running" {
        "failing its EC2 status checks"
    } else {
        state
    }
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

/// The pure part of `inspect`.
pub fn picture(decl: &Declaration, snap: &Snapshot, last_state: Option<Value>) -> Inspection {
    let owner = |eni: Option<&str>| {
        eni.and_then(|e| snap.owner_of_interface(e))
            .map(|m| m.id.clone())
    };
    let mut routes = Vec::new();
    for (st, _, r) in snap.managed_routes(decl) {
        if let Some(route) = st.table.routes.iter().find(|x| x.destination == r.range) {
            routes.push(RouteView {
                route_table_id: st.table.id.clone(),
                destination: r.range.to_string(),
                target: route.target().to_string(),
                member: owner(route.network_interface_id.as_deref()),
            });
        }
    }
    let elastic_ips: Vec<EipView> = snap
        .managed_eips(decl)
        .map(|e| EipView {
            public_ip: e.eip.public_ip.to_string(),
            network_interface_id: e.eip.network_interface_id.clone(),
            private_ip: e.eip.private_ip.map(|i| i.to_string()),
            member: owner(e.eip.network_interface_id.as_deref()),
        })
        .collect();
    let assessed: Vec<(String, crate::engine::plan::Assessment)> = snap
        .members
        .iter()
        .map(|m| (m.id.clone(), crate::engine::plan::assess(decl, snap, m)))
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
    let mut view = Inspection {
        cluster: decl.extension.cluster_name.clone(),
        members: snap
            .members
            .iter()
            .map(|m| MemberView {
                id: m.id.clone(),
                name: m.display_name().to_string(),
                state: m.state.clone(),
                availability_zone: m.availability_zone.clone(),
                healthy: snap.healthy(m),
            })
            .collect(),
        drift: active.is_none() && managed,
        verdict: CloudVerdict::NothingManaged,
        verdict_detail: String::new(),
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
    };
    view.judge();
    view
}
