//! Doctor: checks a deployment against the pitfalls that cost the field report its time
//! (source/destination check on, VIPs as next hops, a route table without its scoping tag)
//! and the rest of what a failover needs, one line per check with the fix.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::Serialize;

use crate::app::inspect::picture;
use crate::engine::declaration::stack_tag_mismatches;
use crate::engine::declaration::{
    AddressGroup, Declaration, Encryption, Scope, MAX_LOCK_LEASE_SECONDS,
};
use crate::engine::discovery::{discover, next_hops_for, Snapshot, SELF_IPS_TAG};
use crate::engine::discovery::{unscoped_eip_words, unscoped_vip_eips};
use crate::engine::error::CloudError;
use crate::engine::keys::lock_key;
use crate::engine::keys::state_key;
use crate::engine::lock::{read_lock, LockObject};
use crate::engine::plan::plan;
use crate::engine::ports::{DryRun, Ec2, ObjectStore};
use crate::engine::state::{foreign_record, recall_detached_eips, StateLog};

/// A check's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Fine.
    Pass,
    /// Works, but worth fixing.
    Warn,
    /// A failover would not work (fully).
    Fail,
}

impl Verdict {
    /// The verdict's name as the doctor shows it, the same as its JSON: PASS, WARN or FAIL.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// Result.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// How to fix it (for WARN and FAIL).
    pub fix: Option<String>,
}

pub(crate) fn check(
    name: &'static str,
    problems: Vec<(Verdict, String, String)>,
    ok: String,
) -> Check {
    let worst = problems.iter().map(|p| p.0).max_by_key(|v| *v as u8);
    match worst {
        None => Check {
            name,
            verdict: Verdict::Pass,
            detail: ok,
            fix: None,
        },
        Some(verdict) => {
            let detail: Vec<&str> = problems.iter().map(|p| p.1.as_str()).collect();
            let fixes: BTreeSet<&str> = problems.iter().map(|p| p.2.as_str()).collect();
            Check {
                name,
                verdict,
                detail: detail.join("; "),
                fix: Some(fixes.into_iter().collect::<Vec<_>>().join("; ")),
            }
        }
    }
}

/// The fleet's own checks (its members discovered: `Fleet::discover_members`, whose
/// `failures` are passed): every declaration loads and keeps its own state file and lock,
/// and no instance is a member of two clusters (its events would go to neither).
pub fn fleet_checks(fleet: &crate::app::fleet::Fleet, failures: &[(String, String)]) -> Vec<Check> {
    let broken = fleet
        .broken
        .iter()
        .map(|(key, why)| {
            (
                Verdict::Fail,
                format!("{key}: {why}"),
                "fix the declaration (cloud-failover validate), or give each cluster its own serverless.clusterName".into(),
            )
        })
        .collect();
    let mut members: Vec<(Verdict, String, String)> = failures
        .iter()
        .map(|(key, e)| {
            (
                Verdict::Fail,
                format!("{key}: discovery failed: {e}"),
                "see the cluster's own checks".into(),
            )
        })
        .collect();
    members.extend(fleet.shared_members().into_iter().map(|(instance, keys)| {
        (
            Verdict::Fail,
            format!("{instance} is a member of {}", keys.join(" and ")),
            "give each pair its own addresses and route tables (one declaration per pair)".into(),
        )
    }));
    vec![
        check(
            "fleet-declarations",
            broken,
            format!(
                "{} declaration(s) load, each with its own state file and lock",
                fleet.clusters.len()
            ),
        ),
        check(
            "fleet-members",
            members,
            "every member belongs to one cluster".into(),
        ),
    ]
}

/// The value of the scoping tag `key` the declaration scopes by, if any.
pub fn label(decl: &Declaration, key: &str) -> Option<String> {
    let mut scopes: Vec<&crate::engine::declaration::Tags> = Vec::new();
    if let Some(a) = &decl.failover_addresses {
        scopes.push(&a.scoping_tags);
    }
    if let Scope::Tags(t) = &decl.external_storage.scope {
        scopes.push(t);
    }
    for g in decl.route_groups() {
        if let Scope::Tags(t) = &g.scope {
            scopes.push(t);
        }
    }
    scopes.iter().find_map(|t| t.get(key).cloned())
}

/// Runs every check.
/// `declared_at` is how the operator names the declaration (its URI or file): the fixes'
/// commands use it, so each is copy-paste (in a fleet, the pair's own declaration).
/// `probe_subnets`: the probe's subnets (the stack's `ProbeSubnetIds`), whose ways to the
/// APIs are checked with the units' own.
pub async fn doctor(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    stack_key: &str,
    declared_at: &str,
    probe_subnets: &[String],
) -> Result<Vec<Check>, CloudError> {
    let mut snap = discover(ec2, store, decl).await?;
    let state = match &snap.bucket {
        Some(bucket) => {
            StateLog {
                store,
                bucket: bucket.clone(),
                decl,
            }
            .read_state()
            .await?
        }
        None => None,
    };
    recall_detached_eips(ec2, decl, state.as_ref(), &mut snap).await?;
    let said = state
        .as_ref()
        .and_then(crate::engine::state::last_announcement);
    let announces = said.is_some();
    let mut checks = static_checks(decl, &snap, stack_key, said);
    if let Some(c) = state.as_ref().and_then(|s| cfe_check(s, &snap)) {
        checks.push(c);
    }
    checks.push(bucket_check(store, decl, &snap, state.as_ref()).await?);
    checks.push(permission_check(ec2, decl, &snap, stack_key).await?);
    checks.push(
        crate::ops::paths::api_paths_check(ec2, decl, &snap, probe_subnets, announces).await?,
    );
    if decl.addresses().is_some() {
        let problems = unscoped_vip_eips(ec2, decl, &snap)
            .await?
            .iter()
            .map(|(e, member)| {
                let (what, fix) = unscoped_eip_words(decl, e, member);
                (Verdict::Fail, what, fix)
            })
            .collect();
        checks.push(check(
            "unscoped-eips",
            problems,
            "no Elastic IP on a member's VIP is left out of the scope".into(),
        ));
    }
    if let Some(bucket) = &snap.bucket {
        let cluster = &decl.extension.cluster_name;
        let object = format!("s3://{bucket}/{}", lock_key(cluster));
        let held = match read_lock(store, bucket, cluster).await? {
            LockObject::NotALock => {
                checks.push(Check {
                    name: "cluster-lock",
                    verdict: Verdict::Warn,
                    detail: format!("{object} is not a lock object (unreadable body): the next run takes it over"),
                    fix: Some(format!("find who wrote it; to remove it: aws s3 rm {object}")),
                });
                return Ok(checks);
            }
            other => other.held(),
        };
        checks.push(match held {
            Some(l) if l.capped => Check {
                name: "cluster-lock",
                verdict: Verdict::Fail,
                detail: format!(
                    "held by run {} claiming a lease until {}, beyond the longest lease a holder may ask for ({MAX_LOCK_LEASE_SECONDS} s from its write): it is honoured only until {}",
                    l.body.owner, l.body.expires_at, l.held_until
                ),
                fix: Some(format!(
                    "a writer with a skewed clock, or a forged lock: find who wrote {object} and, if no failover is running, remove it: aws s3 rm {object}"
                )),
            },
            Some(l) => Check {
                name: "cluster-lock",
                verdict: Verdict::Warn,
                detail: format!("held by run {} until {}", l.body.owner, l.held_until),
                fix: Some(
                    "a failover is running; if its runner died, the lease expires by itself".into(),
                ),
            },
            None => Check {
                name: "cluster-lock",
                verdict: Verdict::Pass,
                detail: "free".into(),
                fix: None,
            },
        });
    }
    let named = shell_word(declared_at);
    for c in &mut checks {
        if let Some(fix) = &mut c.fix {
            *fix = fix.replace(DECLARATION_PLACEHOLDER, &named);
        }
    }
    Ok(checks)
}

/// CFE failing over now, by the state file (side by side during a migration): the stack's
/// automatic triggers are held back until it ends. Matched to no member, it fails: its record
/// may be this pair's under another name, and its last failover does not count for damping.
fn cfe_check(state: &serde_json::Value, snap: &Snapshot) -> Option<Check> {
    let (host, member, since) = crate::engine::state::cfe::in_progress(state, snap)?;
    let host = crate::engine::text::printable(&host);
    Some(match member {
        Some(m) => Check {
            name: "cfe-running",
            verdict: Verdict::Warn,
            detail: format!("CFE on {host} ({m}) has been failing over since {since}: no run of this stack starts meanwhile"),
            fix: Some("wait for CFE to finish (its record is disregarded after 300 s); once this stack is in charge, uninstall CFE (docs/migrating-from-cfe.md)".into()),
        },
        None => Check {
            name: "cfe-running",
            verdict: Verdict::Fail,
            detail: format!("CFE on {host} has been failing over since {since}, and neither its interfaces nor its host name match a member: automatic triggers are held back all the same"),
            fix: Some(format!("if {host} is one of this pair's units, set its Name tag to its host name (aws ec2 create-tags --resources <instance id> --tags Key=Name,Value={host}); if it is another pair's CFE, give this cluster its own state bucket or stateFileName")),
        },
    })
}

/// The cluster lives in one VPC; what the scope selects elsewhere.
fn vpc_check(snap: &Snapshot) -> Check {
    let mut problems: Vec<(Verdict, String, String)> = snap
        .vpc_conflicts
        .iter()
        .map(|c| {
            (
                Verdict::Fail,
                c.clone(),
                "declare serverless.vpcId, or scope the declaration to one VPC's resources".into(),
            )
        })
        .collect();
    problems.extend(snap.left_alone.iter().map(|w| {
        (
            Verdict::Warn,
            w.clone(),
            "give each cluster its own scoping tags (another VPC's resources carry these)".into(),
        )
    }));
    let ok = match &snap.vpc_id {
        Some(v) => format!("the cluster lives in {v}"),
        None => "no VPC resolved (nothing in scope was found)".into(),
    };
    check("vpc", problems, ok)
}

/// Where an EIP's VIPs are, judged per topology. A cross-AZ pair (one VIP per unit): each
/// member holds exactly one of them, and none holds another's. A same-AZ pair (one VIP that
/// moves as a secondary IP): exactly one member holds it, as AWS allows one holder (the moto
/// emulator copies the address instead of moving it, so both may show it there). A VIP is a
/// secondary IP, or, for an EIP the declaration lists, any address (the planner's rule).
fn vip_problems(
    e: &crate::engine::discovery::ScopedEip,
    snap: &Snapshot,
    listed: bool,
) -> Vec<(Verdict, String, String)> {
    let holds = |m: &crate::engine::model::Instance, vip: &std::net::IpAddr| {
        m.network_interfaces
            .iter()
            .any(|n| n.secondary_ips.contains(vip) || (listed && n.primary_ip == *vip))
    };
    let holders = |vip: &std::net::IpAddr| -> Vec<&str> {
        snap.members
            .iter()
            .filter(|m| holds(m, vip))
            .map(|m| m.id.as_str())
            .collect()
    };
    let mut out = Vec::new();
    if let [vip] = e.vips.as_slice() {
        let h = holders(vip);
        if h.len() != 1 {
            out.push((
                Verdict::Fail,
                format!(
                    "Elastic IP {}: its one VIP {vip} (same-AZ pair) is held by {} members ({})",
                    e.eip.public_ip,
                    h.len(),
                    h.join(", ")
                ),
                format!(
                    "exactly one unit holds {vip}: {} (moves it there)",
                    execute_command("<the unit BIG-IP says is active>")
                ),
            ));
        }
        return out;
    }
    let (what, fix) = if listed {
        (
            "",
            "each unit of a cross-AZ pair needs exactly one of the EIP's vipAddresses",
        )
    } else {
        (
            " as secondary IPs",
            "each unit of a cross-AZ pair needs exactly one of the EIP's VIPs as a secondary private IP (selected by tags, an EIP never moves onto a primary IP, as under CFE; list it in addressGroupDefinitions for that)",
        )
    };
    for m in &snap.members {
        let held: Vec<String> = e
            .vips
            .iter()
            .filter(|v| holds(m, v))
            .map(ToString::to_string)
            .collect();
        if held.len() != 1 {
            out.push((
                Verdict::Fail,
                format!(
                    "Elastic IP {}: member {} holds {} of its VIPs{what} ({})",
                    e.eip.public_ip,
                    m.id,
                    held.len(),
                    held.join(", ")
                ),
                fix.to_string(),
            ));
        }
    }
    out
}

/// What the cloud follows now, in the verdict inspect shows (the same words): a stopped or
/// impaired member, a split, the box contradicted; and an EIP associated nowhere, a managed
/// route on an interface of no member. Each fix names the unit to follow: the one the box
/// announced when it is healthy, else the healthy member most items already follow.
fn cloud_check(
    decl: &Declaration,
    snap: &Snapshot,
    said: Option<crate::engine::state::LastFailover>,
) -> Check {
    use crate::engine::picture::CloudVerdict;
    let pic = picture(decl, snap, None).with_box(said);
    let healthy = |id: &str| pic.members.iter().any(|m| m.id == id && m.healthy);
    let announced = pic
        .box_says
        .as_ref()
        .map(|b| b.target.clone())
        .filter(|t| healthy(t));
    let mut by_items: Vec<_> = pic.follows.iter().filter(|f| healthy(&f.member)).collect();
    by_items.sort_by_key(|f| std::cmp::Reverse(f.in_place));
    let best = announced.or_else(|| by_items.first().map(|f| f.member.clone()));
    let fix = |for_what: &str| match &best {
        Some(t) => execute_command(t),
        None => format!(
            "{} ({for_what})",
            bring_up(
                pic.members
                    .iter()
                    .map(|m| (m.id.as_str(), m.state.as_str()))
            )
        ),
    };
    let mut problems = Vec::new();
    match pic.verdict {
        CloudVerdict::FollowsDown => problems.push((
            Verdict::Fail,
            pic.verdict_detail.clone(),
            fix("no member is healthy: start one"),
        )),
        CloudVerdict::Split | CloudVerdict::DisagreesWithBox => problems.push((
            Verdict::Warn,
            pic.verdict_detail.clone(),
            fix("no member is healthy: start one"),
        )),
        CloudVerdict::Agrees | CloudVerdict::NothingManaged => {}
    }
    for e in snap.managed_eips(decl) {
        if e.eip.association_id.is_none() {
            problems.push((
                Verdict::Warn,
                format!(
                    "Elastic IP {} is associated with nothing: it answers no one (a failover associates it with its VIP)",
                    e.eip.public_ip
                ),
                fix("no member is healthy: start one"),
            ));
        }
    }
    for r in &pic.routes {
        if r.member.is_none() && r.target.starts_with("eni-") {
            problems.push((
                Verdict::Warn,
                format!(
                    "route {} in {} points at {}, an interface of no member",
                    r.destination, r.route_table_id, r.target
                ),
                fix("no member is healthy: start one"),
            ));
        }
    }
    check("cloud", problems, pic.verdict_detail.clone())
}

/// Starts the members that are not running (what a cluster with no healthy member needs).
/// The command for members that are down, as (id, state): start the stopped ones; when all run
/// (failing their status checks), show why.
fn bring_up<'a>(down: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let down: Vec<(&str, &str)> = down.into_iter().collect();
    let stopped: Vec<&str> = down
        .iter()
        .filter(|(_, state)| *state != "running")
        .map(|(id, _)| *id)
        .collect();
    if stopped.is_empty() {
        let all: Vec<&str> = down.iter().map(|(id, _)| *id).collect();
        format!(
            "aws ec2 describe-instance-status --instance-ids {}",
            all.join(" ")
        )
    } else {
        format!(
            "aws ec2 start-instances --instance-ids {}",
            stopped.join(" ")
        )
    }
}

/// Association-swap mode: the twins are in sync (the planner's rule), and every member has a
/// twin in every route group (or a failover to it would be refused).
fn twin_check(decl: &Declaration, snap: &Snapshot) -> Option<Check> {
    if !decl.extension.association_swap {
        return None;
    }
    let mut problems: Vec<(Verdict, String, String)> = crate::engine::plan::twin_problems(decl, snap)
        .into_iter()
        .map(|p| {
            (
                Verdict::Fail,
                p,
                "make the twins identical but for next hops, each tagged f5_cloud_failover_member=<its instance id>".to_string(),
            )
        })
        .collect();
    for (gi, _) in decl.route_groups().iter().enumerate() {
        for m in &snap.members {
            let has = snap.route_tables.iter().any(|st| {
                st.group == gi && st.table.tags.get(crate::engine::plan::MEMBER_TAG) == Some(&m.id)
            });
            if !has {
                problems.push((
                    Verdict::Fail,
                    format!("route group {gi} has no twin table for member {}", m.id),
                    format!(
                        "copy the other twin for {} with its next hops, tagged f5_cloud_failover_member={} and the scoping tags",
                        m.id, m.id
                    ),
                ));
            }
        }
    }
    Some(check(
        "twin-tables",
        problems,
        "each member has a twin table in every group, all in sync".into(),
    ))
}

/// Where a fix names the declaration; [`doctor`] puts the operator's own there.
const DECLARATION_PLACEHOLDER: &str = "\"$DECLARATION_URI\"";

/// The command that makes the cloud follow `target` (the operator's explicit execute).
fn execute_command(target: &str) -> String {
    format!("cloud-failover execute --declaration {DECLARATION_PLACEHOLDER} --target {target}")
}

/// `s` as one shell word in a printed command (single quotes unless it is plainly safe): the
/// fixes' commands and `init`'s.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:@+=,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The EIPs and interfaces a failover to either member would change, each carrying the tag
/// the stack's IAM conditions `AssociateAddress` and `(Un)AssignPrivateIpAddresses` on (route
/// tables: `route-table-tag`). An EIP on a prefix address that lacks it is detached by the
/// release and never put back.
fn address_tag_check(decl: &Declaration, snap: &Snapshot, stack_key: &str) -> Check {
    use crate::engine::plan::{assess, Action};
    let Some(value) = label(decl, stack_key) else {
        return check(
            "address-tags",
            Vec::new(),
            format!("the declaration scopes nothing by {stack_key} (see scoping-tag-key)"),
        );
    };
    let eip_tags = |alloc: &str| {
        snap.elastic_ips
            .iter()
            .map(|e| &e.eip)
            .chain(snap.prefix_eips.iter().map(|p| &p.eip))
            .find(|e| e.allocation_id == alloc)
            .map(|e| (e.public_ip.to_string(), e.tags.clone()))
    };
    let eni_tags = |id: &str| {
        snap.members
            .iter()
            .flat_map(|m| &m.network_interfaces)
            .find(|n| n.id == id)
            .map(|n| (id.to_string(), n.tags.clone()))
    };
    let mut untagged = BTreeSet::new();
    for m in &snap.members {
        for op in assess(decl, snap, m).operations {
            let (what, found) = match &op.action {
                Action::AssociateAddress { allocation_id, .. } => (
                    "Elastic IP",
                    eip_tags(allocation_id).map(|(ip, t)| (allocation_id.clone(), ip, t)),
                ),
                Action::AssignPrivateIps {
                    network_interface_id,
                    ..
                }
                | Action::AssignPrefix {
                    network_interface_id,
                    ..
                }
                | Action::ReleasePrefix {
                    network_interface_id,
                    ..
                } => (
                    "interface",
                    eni_tags(network_interface_id).map(|(id, t)| (id.clone(), id, t)),
                ),
                _ => continue,
            };
            if let Some((id, shown, tags)) = found {
                if tags.get(stack_key) != Some(&value) {
                    untagged.insert((what, id, shown));
                }
            }
        }
    }
    let problems = untagged
        .into_iter()
        .map(|(what, id, shown)| {
            (
                Verdict::Fail,
                format!("{what} {shown} lacks the scoping tag {stack_key}={value}: the function's IAM role may not change it (an Elastic IP on a prefix address would stay detached once the prefix moves)"),
                format!("aws ec2 create-tags --resources {id} --tags Key={stack_key},Value={value}"),
            )
        })
        .collect();
    check(
        "address-tags",
        problems,
        "every Elastic IP and interface a failover changes carries the scoping tag".into(),
    )
}

/// A problem a check found: its verdict, what was found, and the fix.
type Problem = (Verdict, String, String);

/// The checks that need only the snapshot, in the order the doctor shows them.
pub fn static_checks(
    decl: &Declaration,
    snap: &Snapshot,
    stack_key: &str,
    said: Option<crate::engine::state::LastFailover>,
) -> Vec<Check> {
    let walk = RouteWalk::of(decl, snap);
    let mut out = vec![
        scoping_tag_key_check(decl, stack_key),
        vpc_check(snap),
        cloud_check(decl, snap, said),
    ];
    out.extend(twin_check(decl, snap));
    out.push(members_check(snap));
    out.push(next_hops_check(decl, walk.hop_problems, walk.hops_ok));
    out.push(check(
        "source-dest-check",
        walk.sdc_problems,
        "off on every next-hop interface".into(),
    ));
    out.push(route_tables_check(snap));
    out.push(route_table_tag_check(decl, snap, stack_key));
    out.push(address_tag_check(decl, snap, stack_key));
    out.push(check(
        "routes",
        walk.routes_missing,
        "every declared range is in every table in scope".into(),
    ));
    out.push(elastic_ips_check(decl, snap));
    out
}

/// The declaration scopes by the key the stack's IAM policy conditions on.
fn scoping_tag_key_check(decl: &Declaration, stack_key: &str) -> Check {
    check(
        "scoping-tag-key",
        stack_tag_mismatches(decl, stack_key)
            .into_iter()
            .map(|m| {
                (
                    Verdict::Fail,
                    m,
                    format!("deploy the stack with ScopingTagKey set to the declaration's key (sam deploy --parameter-overrides ScopingTagKey=…), or tag the resources with {stack_key} and scope by it"),
                )
            })
            .collect(),
        if label(decl, stack_key).is_some() {
            format!("the declaration scopes by {stack_key}, the key the stack's IAM policy conditions on")
        } else {
            format!("the declaration scopes by no tags (names and addresses only); the resources it changes still need {stack_key} for the stack's IAM policy (see route-table-tag, address-tags)")
        },
    )
}

/// Discovery found both units of the pair.
fn members_check(snap: &Snapshot) -> Check {
    let names: Vec<String> = snap
        .members
        .iter()
        .map(|m| {
            format!(
                "{} ({}, {}, {})",
                m.id,
                m.display_name(),
                m.availability_zone,
                m.state
            )
        })
        .collect();
    if snap.members.len() >= 2 {
        check(
            "members",
            vec![],
            format!("{} members: {}", names.len(), names.join(", ")),
        )
    } else {
        check(
            "members",
            vec![(
                Verdict::Fail,
                format!("{} member(s) found: {}", names.len(), names.join(", ")),
                "declare next hops / VIPs that are addresses of both units' interfaces, or (same-AZ pairs) tag both units' interfaces with the scoping tags and f5_cloud_failover_nic_map=<same value>".into(),
            )],
            String::new(),
        )
    }
}

/// What one walk over every declared range of every table in scope finds.
#[derive(Default)]
struct RouteWalk {
    /// Next hops that are no member's primary IP, or that no table tag names.
    hop_problems: Vec<Problem>,
    /// Next-hop interfaces with source/destination check on.
    sdc_problems: Vec<Problem>,
    /// The next hops found right, with their interface and member.
    hops_ok: BTreeSet<String>,
    /// Declared ranges a table lacks (and may not create).
    routes_missing: Vec<Problem>,
}

impl RouteWalk {
    /// Walks every declared range of every table in scope.
    fn of(decl: &Declaration, snap: &Snapshot) -> RouteWalk {
        let mut walk = RouteWalk::default();
        for (st, g, r) in snap.managed_routes(decl) {
            let absent = !st.table.routes.iter().any(|x| x.destination == r.range);
            if absent && !decl.extension.create_missing_routes.contains(&st.group) {
                walk.routes_missing.push((
                        Verdict::Warn,
                        format!("{} has no route {}", st.table.id, r.range),
                        format!("aws ec2 create-route --route-table-id {} --destination-cidr-block {} --network-interface-id <the active unit's next-hop ENI>, or opt route group {} in to serverless.createMissingRoutes", st.table.id, r.range, st.group),
                    ));
            }
            let items = match next_hops_for(g, r, &st.table) {
                Ok(items) => items,
                Err(why) => {
                    walk.hop_problems.push((
                            Verdict::Fail,
                            why,
                            format!("aws ec2 create-tags --resources {} --tags 'Key={SELF_IPS_TAG},Value=<unit A primary IP>,<unit B primary IP>'", st.table.id),
                        ));
                    continue;
                }
            };
            for ip in items {
                walk.judge_hop(snap, ip);
            }
        }
        walk
    }

    /// Judges one next hop: a member interface's primary IP, with src/dst check off.
    fn judge_hop(&mut self, snap: &Snapshot, ip: IpAddr) {
        match snap.holder_of(ip) {
            None => self.hop_problems.push((
                Verdict::Fail,
                format!("next hop {ip} is not an address of any member"),
                "list the units' primary private IPs as next hops".to_string(),
            )),
            Some((m, n)) if !n.is_next_hop(ip) => self.hop_problems.push((
                Verdict::Fail,
                format!("next hop {ip} is a secondary IP (a VIP) of {} on {}; routes need the interface's primary IP {}", n.id, m.id, n.primary_ip),
                format!("declare {} instead of {ip} (the field report's pitfall)", n.primary_ip),
            )),
            Some((m, n)) => {
                self.hops_ok.insert(format!("{ip} ({} on {})", n.id, m.id));
                if n.source_dest_check {
                    self.sdc_problems.push((
                        Verdict::Fail,
                        format!("source/destination check is on for {} ({ip}, {}): routed traffic to it is dropped (the report's 502s)", n.id, m.id),
                        format!("aws ec2 modify-network-interface-attribute --network-interface-id {} --no-source-dest-check", n.id),
                    ));
                }
            }
        }
    }
}

/// Every next hop is the primary IP of a member interface.
fn next_hops_check(
    decl: &Declaration,
    hop_problems: Vec<Problem>,
    hops_ok: BTreeSet<String>,
) -> Check {
    let hops: Vec<String> = hops_ok.into_iter().collect();
    check(
        "next-hops-primary",
        hop_problems,
        if hops.is_empty() && decl.route_groups().is_empty() {
            "no routes declared".into()
        } else if hops.is_empty() {
            // Not a pass by absence: with no table in scope nothing could be checked.
            "no next hop checked: no route table in scope (see route-tables)".into()
        } else {
            format!("primary IPs: {}", hops.join(", "))
        },
    )
}

/// The route tables the declaration names exist, and its tag groups select some.
fn route_tables_check(snap: &Snapshot) -> Check {
    let mut table_problems = Vec::new();
    for id in &snap.missing_route_tables {
        table_problems.push((
            Verdict::Fail,
            format!("route table {id} does not exist"),
            "fix scopingName".to_string(),
        ));
    }
    for &i in &snap.empty_tag_groups {
        table_problems.push((
            Verdict::Fail,
            format!("no route table carries the tags of route group {i}"),
            "tag the route table(s) with the group's scopingTags".to_string(),
        ));
    }
    let tables: Vec<&str> = snap
        .route_tables
        .iter()
        .map(|t| t.table.id.as_str())
        .collect();
    check(
        "route-tables",
        table_problems,
        format!(
            "in scope: {}",
            if tables.is_empty() {
                "none".to_string()
            } else {
                tables.join(", ")
            }
        ),
    )
}

/// Every route table in scope carries the scoping tag (the IAM role and CFE both need it).
fn route_table_tag_check(decl: &Declaration, snap: &Snapshot, stack_key: &str) -> Check {
    let mut tag_problems = Vec::new();
    if let Some(value) = label(decl, stack_key) {
        for st in &snap.route_tables {
            if st.table.tags.get(stack_key) != Some(&value) {
                tag_problems.push((
                    Verdict::Fail,
                    format!("route table {} lacks the scoping tag {stack_key}={value}: route failover did nothing in the field report until it had it, and the function's IAM role may not change it", st.table.id),
                    format!("aws ec2 create-tags --resources {} --tags Key={stack_key},Value={value}", st.table.id),
                ));
            }
        }
    }
    check(
        "route-table-tag",
        tag_problems,
        "every route table in scope carries the scoping tag".into(),
    )
}

/// Every Elastic IP exists and resolves its VIPs; every declared address is on a member.
fn elastic_ips_check(decl: &Declaration, snap: &Snapshot) -> Check {
    let mut eip_problems = Vec::new();
    // A group's address that is no Elastic IP in scope and no member's address (found by
    // tag: defined ones are checked below): nothing moves for it.
    let own = decl
        .extension
        .group
        .as_ref()
        .and_then(|g| decl.extension.groups.get(g));
    let defined = decl.addresses().is_some_and(|a| !a.groups.is_empty());
    for ip in own.iter().filter(|_| !defined).flat_map(|g| &g.addresses) {
        let eip = snap.elastic_ips.iter().any(|e| e.eip.public_ip == *ip);
        if !eip && snap.holder_of(*ip).is_none() {
            eip_problems.push((
                Verdict::Warn,
                format!(
                    "address {ip} of group {} is no Elastic IP in scope and no member's address: nothing moves for it",
                    decl.extension.group.as_deref().unwrap_or_default()
                ),
                "fix the group's addresses (a typo?), or tag the Elastic IP with the scoping tags and f5_cloud_failover_vips".to_string(),
            ));
        }
    }
    // Found by tag, named by no failover group: no group's failover moves it.
    for e in &snap.elastic_ips {
        let item = crate::engine::declaration::Managed::Address(e.eip.public_ip);
        if decl.in_no_group(item) {
            eip_problems.push((
                Verdict::Warn,
                format!(
                    "Elastic IP {} is in no failover group (serverless.groups): no failover moves it",
                    e.eip.public_ip
                ),
                "name it in the addresses of the group it follows".to_string(),
            ));
        }
    }
    for ip in &snap.missing_elastic_ips {
        eip_problems.push((
            Verdict::Fail,
            format!("Elastic IP {ip} does not exist"),
            "fix addressGroupDefinitions".to_string(),
        ));
    }
    for ip in &snap.eips_without_vips {
        eip_problems.push((
            Verdict::Fail,
            format!("Elastic IP {ip} has the scoping tags but no f5_cloud_failover_vips (or legacy VIPS) tag"),
            "tag it f5_cloud_failover_vips=<VIP on unit A>,<VIP on unit B>".to_string(),
        ));
    }
    let listed = crate::engine::discovery::names_its_eips(decl);
    for e in snap.managed_eips(decl) {
        eip_problems.extend(vip_problems(e, snap, listed));
    }
    if let Some(a) = decl.addresses() {
        for g in &a.groups {
            if let AddressGroup::NetworkInterfaceAddress { scoping_address } = g {
                if snap.holder_of(*scoping_address).is_none() {
                    eip_problems.push((
                        Verdict::Fail,
                        format!("address {scoping_address} is on no member"),
                        "assign it to the active unit's interface".to_string(),
                    ));
                }
            }
        }
    }
    let eips: Vec<String> = snap
        .managed_eips(decl)
        .map(|e| format!("{} ({} VIPs)", e.eip.public_ip, e.vips.len()))
        .collect();
    check(
        "elastic-ips",
        eip_problems,
        if eips.is_empty() {
            "no Elastic IPs in scope".into()
        } else {
            format!("VIP pairs resolve on both members: {}", eips.join(", "))
        },
    )
}

async fn bucket_check(
    store: &dyn ObjectStore,
    decl: &Declaration,
    snap: &Snapshot,
    state: Option<&serde_json::Value>,
) -> Result<Check, CloudError> {
    let Some(bucket) = &snap.bucket else {
        return Ok(check(
            "state-bucket",
            vec![(
                Verdict::Fail,
                "no state bucket found".into(),
                "create it, or fix externalStorage (name or tags)".into(),
            )],
            String::new(),
        ));
    };
    let declared = match &decl.external_storage.encryption {
        Encryption::None => None,
        Encryption::Aes256 => Some("AES256"),
        Encryption::Kms { .. } => Some("aws:kms"),
    };
    let key = state_key(decl);
    let actual = store.bucket_encryption(bucket).await?;
    let mut problems = Vec::new();
    let members: Vec<String> = snap.members.iter().map(|m| m.id.clone()).collect();
    let foreign = state.and_then(|v| foreign_record(v, &decl.extension.cluster_name, &members));
    if let Some(why) = foreign {
        problems.push((
            Verdict::Warn,
            format!("the state file {key} is written by another cluster too ({why})"),
            "give each cluster its own serverless.clusterName (its state file and lock follow it)"
                .to_string(),
        ));
    }
    if !snap.extra_buckets.is_empty() {
        problems.push((
            Verdict::Warn,
            format!(
                "other buckets carry the same tags ({}); {bucket} is used",
                snap.extra_buckets.join(", ")
            ),
            "give each cluster its own bucket or use scopingName (CFE #147)".to_string(),
        ));
    }
    if let Some(want) = declared {
        if actual.as_deref() != Some(want) {
            problems.push((
                Verdict::Warn,
                format!(
                    "{bucket}'s default encryption is {} but the declaration writes with {want}",
                    actual.as_deref().unwrap_or("none")
                ),
                format!("aws s3api put-bucket-encryption --bucket {bucket} --server-side-encryption-configuration '{{\"Rules\":[{{\"ApplyServerSideEncryptionByDefault\":{{\"SSEAlgorithm\":\"{want}\"}}}}]}}'"),
            ));
        }
    }
    problems.extend(protection_problems(store, bucket).await);
    Ok(check(
        "state-bucket",
        problems,
        format!(
            "{bucket}, default encryption {}, versioned, public access blocked, TLS only",
            actual.as_deref().unwrap_or("none")
        ),
    ))
}

/// What keeps the state and the declaration safe besides encryption, as the stack's own
/// bucket has it (an ExistingStateBucket may not): versioning (an overwritten state file or
/// declaration can be had back), the public access block, and a policy refusing requests
/// without TLS. A setting doctor may not read is named as such, not taken as missing.
async fn protection_problems(
    store: &dyn ObjectStore,
    bucket: &str,
) -> Vec<(Verdict, String, String)> {
    let unreadable = |what: &str, e: CloudError| {
        (
            Verdict::Warn,
            format!("{bucket}'s {what} could not be read ({e})"),
            format!("run doctor with rights to read {bucket}'s {what}"),
        )
    };
    let mut problems = Vec::new();
    match store.bucket_versioning(bucket).await {
        Ok(Some(status)) if status == "Enabled" => {}
        Ok(status) => problems.push((
            Verdict::Warn,
            format!(
                "{bucket}'s versioning is {}: an overwritten state file or declaration cannot be had back",
                status.as_deref().unwrap_or("off")
            ),
            format!("aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled"),
        )),
        Err(e) => problems.push(unreadable("versioning", e)),
    }
    match store.public_access_blocked(bucket).await {
        Ok(true) => {}
        Ok(false) => problems.push((
            Verdict::Warn,
            format!("{bucket} does not block public access (all four settings)"),
            format!("aws s3api put-public-access-block --bucket {bucket} --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true"),
        )),
        Err(e) => problems.push(unreadable("public access block", e)),
    }
    match store.bucket_policy(bucket).await {
        Ok(Some(policy)) if denies_plain_http(&policy) => {}
        Ok(_) => problems.push((
            Verdict::Warn,
            format!("{bucket}'s policy does not refuse requests without TLS"),
            format!("add to {bucket}'s policy (aws s3api put-bucket-policy): {{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"s3:*\",\"Resource\":[\"arn:aws:s3:::{bucket}\",\"arn:aws:s3:::{bucket}/*\"],\"Condition\":{{\"Bool\":{{\"aws:SecureTransport\":\"false\"}}}}}}"),
        )),
        Err(e) => problems.push(unreadable("policy", e)),
    }
    problems
}

/// Whether a bucket policy denies every principal every S3 action when the request does not
/// use TLS (`aws:SecureTransport` false), as the stack's StateBucketPolicy does.
fn denies_plain_http(policy: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return false;
    };
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    let listed = |v: &serde_json::Value, want: &[&str]| match v {
        serde_json::Value::String(s) => want.contains(&s.as_str()),
        serde_json::Value::Array(list) => list
            .iter()
            .any(|s| s.as_str().is_some_and(|s| want.contains(&s))),
        _ => false,
    };
    statements.iter().any(|s| {
        let everyone = s["Principal"] == "*" || s["Principal"]["AWS"] == "*";
        let insecure = ["Bool", "BoolIfExists"].iter().any(|op| {
            let v = &s["Condition"][*op]["aws:SecureTransport"];
            v == "false" || v == false
        });
        s["Effect"] == "Deny" && everyone && listed(&s["Action"], &["s3:*", "*"]) && insecure
    })
}

async fn permission_check(
    ec2: &dyn Ec2,
    decl: &Declaration,
    snap: &Snapshot,
    stack_key: &str,
) -> Result<Check, CloudError> {
    let active = picture(decl, snap, None).active;
    let healthy = |m: &&&crate::engine::model::Instance| snap.healthy(m);
    let others: Vec<&crate::engine::model::Instance> = snap
        .members
        .iter()
        .filter(|m| Some(&m.id) != active.as_ref())
        .collect();
    if others.is_empty() {
        return Ok(check(
            "permissions",
            vec![(
                Verdict::Warn,
                "no standby member to plan a failover to".into(),
                "see members".into(),
            )],
            String::new(),
        ));
    }
    // A failover is checked in a direction that can be planned: to a healthy member.
    let Some(standby) = others.iter().find(healthy) else {
        let down: Vec<String> = others
            .iter()
            .map(|m| format!("{} is {}", m.id, crate::engine::picture::why_down(&m.state)))
            .collect();
        let fix = bring_up(others.iter().map(|m| (m.id.as_str(), m.state.as_str())));
        return Ok(check(
            "permissions",
            vec![(
                Verdict::Warn,
                format!(
                    "the peer {}: no failover to it can be planned, so its calls cannot be checked now (the cloud follows {}; it cannot fail over until a peer is healthy again; then run doctor again)",
                    down.join(", "),
                    active.as_deref().unwrap_or("no single member")
                ),
                fix,
            )],
            String::new(),
        ));
    };
    let p = match plan(decl, snap, &standby.id) {
        Ok(p) => p,
        Err(r) => {
            return Ok(check(
                "permissions",
                vec![(
                    Verdict::Fail,
                    format!(
                        "a failover to {} is refused, so no call could be checked: {r}",
                        standby.id
                    ),
                    format!(
                        "fix what each reason names (the first: {}), then run doctor again",
                        r.reasons.first().map_or("see above", String::as_str)
                    ),
                )],
                String::new(),
            ))
        }
    };
    let mut problems = Vec::new();
    let mut allowed = Vec::new();
    // Calls EC2 gives no DryRun, and calls this endpoint performs despite DryRun.
    let mut no_dry_run = BTreeSet::new();
    let mut unchecked = BTreeSet::new();
    for op in &p.operations {
        let m = op.action.mutation();
        match ec2.dry_run(&m).await? {
            DryRun::Allowed => allowed.push(m.operation()),
            DryRun::Unchecked if !m.has_dry_run() => {
                no_dry_run.insert(m.operation());
            }
            DryRun::Unchecked => {
                unchecked.insert(m.operation());
            }
            DryRun::Denied => problems.push((
                Verdict::Fail,
                format!("{} is denied ({})", m.operation(), op.id),
                format!(
                    "grant ec2:{} (see template.yaml; resources need the {stack_key} tag)",
                    m.operation()
                ),
            )),
        }
    }
    let mut ok = format!(
        "DryRun allowed {} call(s) of a failover to {}",
        allowed.len(),
        standby.id
    );
    let list = |ops: BTreeSet<&str>| ops.into_iter().collect::<Vec<_>>().join(", ");
    if !no_dry_run.is_empty() {
        ok.push_str(&format!(
            "; not checked: {} (EC2 gives them no DryRun parameter: the IAM policy simulator \
             or the template's policy is their check)",
            list(no_dry_run)
        ));
    }
    if !unchecked.is_empty() {
        ok.push_str(&format!(
            "; not checked: {} (this endpoint performs them despite DryRun)",
            list(unchecked)
        ));
    }
    if p.operations.is_empty() {
        ok = format!("a failover to {} needs no call", standby.id);
    }
    Ok(check("permissions", problems, ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::declaration::LABEL_KEY;
    use crate::lab::{SEED_B_EXT, SEED_RTB};
    use crate::memory::MemoryCloud;

    const AFTER: &str = include_str!("../../../../examples/seed-article/declaration-after.json");
    /// Where the tests' declaration is said to be (the fixes' commands name it).
    const DECL: &str = "s3://cfe-state-bigip-ha/declarations/cluster.json";
    const SNAT_NONE: &str = include_str!("../../../../examples/seed-article/cfe-snat-none.json");

    async fn run(cloud: &MemoryCloud, text: &str) -> Vec<Check> {
        doctor(
            cloud,
            cloud,
            &Declaration::parse(text).unwrap(),
            LABEL_KEY,
            DECL,
            &[],
        )
        .await
        .unwrap()
    }

    fn verdict(checks: &[Check], name: &str) -> Check {
        checks.iter().find(|c| c.name == name).unwrap().clone()
    }

    /// The failover path never runs through what it repairs. A probe in the web subnets, whose
    /// 0.0.0.0/0 is the route the declaration points at the active unit, reaches EC2 and S3
    /// only through the appliance: FAIL, with the template's endpoint parameters and the
    /// `create-vpc-endpoint` commands. With an S3 gateway endpoint in that table and an EC2
    /// interface endpoint (private DNS), PASS. A subnet outside the pair's VPC cannot be
    /// judged (WARN). A unit whose management subnet takes the same route (its VPC's main
    /// table) WARNs, and FAILs once it has announced; an EventBridge endpoint clears it.
    #[tokio::test]
    async fn a_probe_or_unit_reaching_the_apis_through_the_appliance_is_a_fail_with_the_fix() {
        use crate::engine::request::{Mode, RunRequest, TargetSpec};
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(SNAT_NONE).unwrap();
        let vpc = "vpc-0287f01407d1276f0";
        let doc = |probe: &'static [&'static str]| {
            let (cloud, d) = (&cloud, &d);
            async move {
                let subnets: Vec<String> = probe.iter().map(|s| s.to_string()).collect();
                let checks = doctor(cloud, cloud, d, LABEL_KEY, DECL, &subnets)
                    .await
                    .unwrap();
                verdict(&checks, "api-paths")
            }
        };
        // Nothing routes the units' management subnets (no main table): nothing to say.
        assert_eq!(doc(&[]).await.verdict, Verdict::Pass);
        let c = doc(&["subnet-web-a"]).await;
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        for words in [
            "probe subnet subnet-web-a reaches ec2 only through the appliance",
            "probe subnet subnet-web-a reaches s3 only through the appliance",
            "0.0.0.0/0 in rtb-060adeaa8fe5b2bbb is a route this declaration points at the active unit",
        ] {
            assert!(c.detail.contains(words), "{words}: {}", c.detail);
        }
        let fix = c.fix.unwrap();
        for words in [
            "ProbeEc2Endpoint=true",
            "--vpc-endpoint-type Interface --service-name \"com.amazonaws.${AWS_REGION}.ec2\" --subnet-ids subnet-web-a",
            "ProbeS3EndpointRouteTableIds=rtb-060adeaa8fe5b2bbb",
            "--vpc-endpoint-type Gateway --service-name \"com.amazonaws.${AWS_REGION}.s3\" --route-table-ids rtb-060adeaa8fe5b2bbb",
        ] {
            assert!(fix.contains(words), "{words}: {fix}");
        }
        // The S3 gateway endpoint alone leaves EC2 behind the appliance.
        cloud.add_vpc_endpoint(vpc, "s3", &[SEED_RTB]);
        let c = doc(&["subnet-web-a"]).await;
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(!c.detail.contains("reaches s3"), "{}", c.detail);
        let ec2 = cloud.add_vpc_endpoint(vpc, "ec2", &[]);
        let c = doc(&["subnet-web-a", "subnet-elsewhere"]).await;
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(
            c.detail
                .contains("probe subnet subnet-elsewhere: EC2 knows no such subnet"),
            "{}",
            c.detail
        );
        // A subnet whose way out is an internet gateway: no way for a Lambda function (its
        // interfaces have no public address); EC2 has its endpoint (private DNS: every subnet).
        let mut t = crate::lab::Topology::seed();
        t.route_tables = vec![crate::lab::TableSpec {
            id: "rtb-0internal".into(),
            tags: Default::default(),
            routes: Vec::new(),
            subnets: vec!["subnet-a-internal".into()],
        }];
        cloud.add_topology(&t);
        cloud.add_gateway_route("rtb-0internal", "0.0.0.0/0".parse().unwrap(), "igw-0public");
        cloud.settle();
        let c = doc(&["subnet-a-internal"]).await;
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(
            c.detail.contains("probe subnet subnet-a-internal reaches s3 only through igw-0public, an internet gateway")
                && !c.detail.contains("reaches ec2"),
            "{}",
            c.detail
        );
        assert!(c.fix.unwrap().contains("--route-table-ids rtb-0internal"));
        let c = doc(&["subnet-web-a"]).await;
        assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
        assert!(
            c.detail.contains(&format!("subnet-web-a → ec2: {ec2}")),
            "{}",
            c.detail
        );
        // The units' management subnets fall to the main table: the managed one.
        cloud.make_main(SEED_RTB);
        let c = doc(&["subnet-web-a"]).await;
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        assert!(
            c.detail
                .contains("from subnet-a-mgmt only through the appliance")
                && c.detail.contains("none is on record"),
            "{}",
            c.detail
        );
        assert!(c
            .fix
            .unwrap()
            .contains("com.amazonaws.${AWS_REGION}.events"));
        // Once a unit has announced, it is a failure.
        let mut b = RunRequest::new(
            TargetSpec::Instance(crate::lab::SEED_B.into()),
            Mode::Execute,
            "appliance",
        );
        b.announced = true;
        b.event_at = Some(chrono::Utc::now());
        crate::engine::failover::run(&cloud, &cloud, &d, b)
            .await
            .unwrap();
        let c = doc(&["subnet-web-a"]).await;
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        cloud.add_vpc_endpoint(vpc, "events", &[]);
        assert_eq!(doc(&["subnet-web-a"]).await.verdict, Verdict::Pass);
    }

    /// Cut-over beside a running CFE: its fresh RUNNING record is reported, matched to B by
    /// the interfaces it moved things to although its host name is not B's Name tag (WARN),
    /// and matched to no member at all (FAIL, with the fix); no record, no check.
    #[tokio::test]
    async fn a_cfe_failover_in_progress_is_reported() {
        use crate::engine::ports::ObjectStore;
        let cloud = MemoryCloud::seed();
        assert!(!run(&cloud, AFTER)
            .await
            .iter()
            .any(|c| c.name == "cfe-running"));
        let cloud = &cloud;
        let put = |host: &str, ops: bool| {
            let mut v: serde_json::Value = serde_json::from_str(include_str!(
                "../../../../examples/seed-article/state-after-failover-to-b.json"
            ))
            .unwrap();
            v["taskState"] = "RUNNING".into();
            v["instance"] = host.into();
            v["timestamp"] = crate::engine::state::timestamp(chrono::Utc::now()).into();
            if !ops {
                v["failoverOperations"] = serde_json::json!({});
            }
            let key = crate::engine::keys::state_object(
                crate::engine::declaration::DEFAULT_CLUSTER,
                crate::engine::declaration::DEFAULT_STATE_FILE,
            );
            let body = serde_json::to_vec(&v).unwrap();
            async move {
                cloud
                    .put_object("cfe-state-bigip-ha", &key, body, &Encryption::None, None)
                    .await
                    .unwrap();
            }
        };
        put("bigip-b.corp.example.com", true).await;
        let c = verdict(&run(cloud, AFTER).await, "cfe-running");
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        assert!(c.detail.contains(crate::lab::SEED_B), "{c:?}");
        put("otherpair-bigip.example.net", false).await;
        let c = verdict(&run(cloud, AFTER).await, "cfe-running");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(c
            .fix
            .unwrap()
            .contains("Key=Name,Value=otherpair-bigip.example.net"));
    }

    #[test]
    fn a_verdicts_name_is_its_json() {
        for v in [Verdict::Pass, Verdict::Warn, Verdict::Fail] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
            assert_eq!(format!("{v:<6}|"), format!("{:<6}|", v.as_str()));
        }
    }

    #[tokio::test]
    async fn healthy_seed_passes_everything() {
        let checks = run(&MemoryCloud::seed(), AFTER).await;
        for c in &checks {
            assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
        }
        assert!(verdict(&checks, "permissions")
            .detail
            .contains("DryRun allowed 2 call(s)"));
    }

    /// An existing bucket without the stack bucket's protections: each is named with its
    /// fix; with them (the seed's bucket is made as the stack makes it) the check passes.
    #[tokio::test]
    async fn an_unprotected_state_bucket_warns() {
        use crate::memory::BucketProtection;
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(AFTER).unwrap();
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        let bucket = snap.bucket.clone().unwrap();
        let c = verdict(&run(&cloud, AFTER).await, "state-bucket");
        assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
        assert!(
            c.detail
                .ends_with("versioned, public access blocked, TLS only"),
            "{c:?}"
        );

        // GIVEN a bucket with none of them (an ExistingStateBucket as CreateBucket leaves it)
        cloud.set_bucket_protection(&bucket, BucketProtection::default());
        let c = verdict(&run(&cloud, AFTER).await, "state-bucket");
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        for said in [
            "versioning is off",
            "does not block public access",
            "does not refuse requests without TLS",
        ] {
            assert!(c.detail.contains(said), "{said}: {c:?}");
        }
        let fix = c.fix.unwrap();
        assert!(fix.contains("put-bucket-versioning"), "{fix}");
        assert!(fix.contains("put-public-access-block"), "{fix}");
        assert!(fix.contains("aws:SecureTransport"), "{fix}");

        // A suspended versioning, and a policy that only allows, are not enough either.
        let mut p = BucketProtection::of_the_stack(&bucket);
        p.versioning = Some("Suspended".into());
        p.policy = Some(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"*"}]}"#.into());
        cloud.set_bucket_protection(&bucket, p);
        let c = verdict(&run(&cloud, AFTER).await, "state-bucket");
        assert!(c.detail.contains("versioning is Suspended"), "{c:?}");
        assert!(c.detail.contains("without TLS"), "{c:?}");
        assert!(!c.detail.contains("public access"), "{c:?}");
        // The calls are the ports' (ports::PERMISSIONS lists them and their IAM actions).
        for op in [
            "GetBucketVersioning",
            "GetPublicAccessBlock",
            "GetBucketPolicy",
        ] {
            assert!(cloud.calls().iter().any(|c| c == op), "{op}");
            assert!(crate::engine::ports::PERMISSIONS
                .iter()
                .any(|(o, _)| *o == op));
        }
    }

    #[test]
    fn a_tls_only_policy_is_a_deny_of_everything_without_secure_transport() {
        let stack = crate::memory::BucketProtection::of_the_stack("b")
            .policy
            .unwrap();
        assert!(denies_plain_http(&stack));
        let if_exists = stack.replace("\"Bool\"", "\"BoolIfExists\"");
        assert!(denies_plain_http(&if_exists));
        assert!(!denies_plain_http(&stack.replace("Deny", "Allow")));
        assert!(!denies_plain_http(
            &stack.replace("\"s3:*\"", "\"s3:GetObject\"")
        ));
        assert!(!denies_plain_http("not json"));
    }

    #[tokio::test]
    async fn a_missing_route_warns_unless_its_group_opts_in_and_the_create_is_dry_run() {
        let with_range = |opt_in: bool| {
            let mut v: serde_json::Value = serde_json::from_str(AFTER).unwrap();
            v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"] =
                serde_json::json!([{"range": "0.0.0.0/0"}, {"range": "172.16.9.0/24"}]);
            v["serverless"] = serde_json::json!({"createMissingRoutes": opt_in});
            v.to_string()
        };
        let c = verdict(
            &run(&MemoryCloud::seed(), &with_range(false)).await,
            "routes",
        );
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        assert!(c.fix.unwrap().contains("serverless.createMissingRoutes"));
        let cloud = MemoryCloud::seed();
        let checks = run(&cloud, &with_range(true)).await;
        assert_eq!(verdict(&checks, "routes").verdict, Verdict::Pass);
        assert!(cloud.calls().iter().any(|c| c == "CreateRoute(DryRun)"));
        cloud.deny("CreateRoute");
        let c = verdict(&run(&cloud, &with_range(true)).await, "permissions");
        assert!(c.detail.contains("CreateRoute is denied"), "{c:?}");
    }

    #[tokio::test]
    async fn a_scoping_key_the_stack_does_not_allow_fails() {
        let mut v: serde_json::Value = serde_json::from_str(AFTER).unwrap();
        v["failoverAddresses"]["scopingTags"] = serde_json::json!({"team_ha": "web"});
        let checks = run(&MemoryCloud::seed(), &v.to_string()).await;
        let c = verdict(&checks, "scoping-tag-key");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(
            c.detail.starts_with("failoverAddresses.scopingTags scopes by team_ha but the stack's IAM policy allows changes only to resources tagged f5_cloud_failover_label"),
            "{c:?}"
        );
        assert_eq!(
            verdict(&run(&MemoryCloud::seed(), AFTER).await, "scoping-tag-key").verdict,
            Verdict::Pass
        );
        // A stack deployed with ScopingTagKey=team_ha agrees with that declaration, and
        // disagrees with one scoping by the default key.
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(&v.to_string()).unwrap();
        let team = doctor(&cloud, &cloud, &d, "team_ha", DECL, &[])
            .await
            .unwrap();
        assert_eq!(verdict(&team, "scoping-tag-key").verdict, Verdict::Pass);
        let d = Declaration::parse(AFTER).unwrap();
        let c = verdict(
            &doctor(&cloud, &cloud, &d, "team_ha", DECL, &[])
                .await
                .unwrap(),
            "scoping-tag-key",
        );
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(
            c.detail
                .contains("allows changes only to resources tagged team_ha"),
            "{c:?}"
        );
        assert!(c.fix.unwrap().contains("ScopingTagKey"));
    }

    #[tokio::test]
    async fn an_untagged_eip_on_a_prefix_address_fails_address_tags() {
        use crate::lab::{tags, EipSpec, SEED_A_EXT, SEED_TAG};
        // GIVEN the prefix on A, a tagged EIP on 10.0.0.50 and an untagged one on 10.0.0.51
        let mut topo = crate::testing::same_az_with_prefix();
        for (alloc, public, t, addr) in [
            (
                "eipalloc-0tagged",
                "203.0.113.50",
                tags([SEED_TAG]),
                "10.0.0.50",
            ),
            (
                "eipalloc-0untagged",
                "203.0.113.51",
                Default::default(),
                "10.0.0.51",
            ),
        ] {
            topo.elastic_ips.push(EipSpec {
                allocation_id: alloc.into(),
                public_ip: public.parse().unwrap(),
                tags: t,
                associated_with: Some((SEED_A_EXT.into(), addr.parse().unwrap())),
            });
        }
        let mut v: serde_json::Value = serde_json::from_str(AFTER).unwrap();
        v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
            serde_json::json!(["10.0.0.11", "10.0.0.12"]);
        v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!(
            [{"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.48/28"}]
        );
        let checks = run(&MemoryCloud::from_topology(&topo), &v.to_string()).await;
        // THEN doctor names the untagged one with the command that tags it, and only it
        let c = verdict(&checks, "address-tags");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(
            c.detail
                .contains("Elastic IP 203.0.113.51 lacks the scoping tag"),
            "{c:?}"
        );
        assert!(!c.detail.contains("203.0.113.50"), "{c:?}");
        assert!(c
            .fix
            .unwrap()
            .contains("aws ec2 create-tags --resources eipalloc-0untagged"));
    }

    #[tokio::test]
    async fn a_route_tag_group_without_the_tag_fails_as_the_plan_refuses() {
        // GIVEN discoveryType routeTag and a table without f5_self_ips
        let mut v: serde_json::Value = serde_json::from_str(AFTER).unwrap();
        v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"] =
            serde_json::json!({"discoveryType": "routeTag"});
        let cloud = MemoryCloud::seed();
        let checks = run(&cloud, &v.to_string()).await;
        // THEN doctor fails the next hops with the reason the planner refuses with (one rule)
        let c = verdict(&checks, "next-hops-primary");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        let d = Declaration::from_value(&v).unwrap();
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        // (the route is skipped, the EIP still moves: a run would end PARTIAL)
        let skipped = plan(&d, &snap, crate::lab::SEED_B).unwrap().skipped;
        assert!(
            skipped.iter().any(|r| c.detail.contains(r.as_str())),
            "{c:?} vs {skipped:?}"
        );
        assert!(c.detail.contains("has no usable f5_self_ips tag"), "{c:?}");
    }

    #[tokio::test]
    async fn names_the_three_pitfalls_of_the_field_report() {
        let c = verdict(
            &run(&MemoryCloud::seed(), SNAT_NONE).await,
            "next-hops-primary",
        );
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.detail
                .contains("next hop 10.0.4.101 is a secondary IP (a VIP)"),
            "{c:?}"
        );
        assert!(c
            .fix
            .unwrap()
            .contains("declare 10.0.4.11 instead of 10.0.4.101"));

        let cloud = MemoryCloud::seed();
        cloud.set_source_dest_check(SEED_B_EXT, true);
        let c = verdict(&run(&cloud, AFTER).await, "source-dest-check");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c
            .fix
            .unwrap()
            .contains("--network-interface-id eni-04bec0335a47b26c3 --no-source-dest-check"));

        let cloud = MemoryCloud::seed();
        cloud.untag_route_table(SEED_RTB, LABEL_KEY);
        let c = verdict(&run(&cloud, AFTER).await, "route-table-tag");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.detail.contains("lacks the scoping tag"), "{c:?}");
    }

    /// EC2 API Reference, "AssignPrivateIpAddresses" and "UnassignPrivateIpAddresses"
    /// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AssignPrivateIpAddresses.html,
    /// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_UnassignPrivateIpAddresses.html):
    /// their request parameters have no `DryRun`, so no answer can say they are allowed.
    #[tokio::test]
    async fn calls_without_dry_run_are_named_unchecked_not_allowed() {
        // GIVEN a failover that moves a delegated prefix (Unassign, then Assign) and a route
        let cloud = MemoryCloud::from_topology(&crate::testing::same_az_with_prefix());
        let mut v: serde_json::Value = serde_json::from_str(AFTER).unwrap();
        v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
            serde_json::json!(["10.0.0.11", "10.0.0.12"]);
        v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!(
            [{"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.48/28"}]
        );
        // WHEN doctor checks the permissions
        let c = verdict(&run(&cloud, &v.to_string()).await, "permissions");
        // THEN only the calls with a DryRun count as allowed; the others are named, with why
        // and what checks them instead
        assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
        assert!(c.detail.starts_with("DryRun allowed 1 call(s)"), "{c:?}");
        assert!(
            c.detail.contains(
                "not checked: AssignPrivateIpAddresses, UnassignPrivateIpAddresses \
                 (EC2 gives them no DryRun parameter"
            ),
            "{c:?}"
        );
        assert!(c.detail.contains("IAM policy simulator"), "{c:?}");
        assert!(!cloud
            .calls()
            .iter()
            .any(|c| c.starts_with("AssignPrivateIpAddresses(")
                || c.starts_with("UnassignPrivateIpAddresses(")));
    }

    #[tokio::test]
    async fn denied_permission_fails() {
        let cloud = MemoryCloud::seed();
        cloud.deny("ReplaceRoute");
        let c = verdict(&run(&cloud, AFTER).await, "permissions");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.detail.contains("ReplaceRoute is denied"));
        assert_eq!(cloud.mutation_count(), 0, "DryRun only");
    }

    /// A peer failing its status checks is not a permissions failure: doctor says the peer is
    /// down (WARN) with the command that shows why, and plans no failover to it.
    #[tokio::test]
    async fn an_impaired_peer_is_said_not_failed_as_permissions() {
        let cloud = MemoryCloud::seed();
        cloud.set_impaired(crate::lab::SEED_B, true);
        let c = verdict(&run(&cloud, AFTER).await, "permissions");
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        assert!(c.detail.contains("failing its EC2 status checks"), "{c:?}");
        assert_eq!(
            c.fix.as_deref(),
            Some(format!(
                "aws ec2 describe-instance-status --instance-ids {}",
                crate::lab::SEED_B
            ))
            .as_deref()
        );
    }

    /// An Elastic IP on a member's VIP that the scoping tags do not select would never fail
    /// over: doctor FAILs, naming it and the tag command, and a dry run warns; once tagged,
    /// it passes.
    #[tokio::test]
    async fn an_untagged_eip_on_a_vip_is_a_fail_with_the_tag_command() {
        let cloud = MemoryCloud::seed();
        let eip = "eipalloc-0814e2bbaf002a2bc";
        cloud.tag_eip(eip, LABEL_KEY, "someone-else");
        let checks = run(&cloud, AFTER).await;
        let c = verdict(&checks, "unscoped-eips");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(
            c.detail.contains(eip) && c.detail.contains("10.0.0.101"),
            "{c:?}"
        );
        let fix = c.fix.as_deref().unwrap();
        assert!(
            fix.contains(&format!(
                "create-tags --resources {eip} --tags 'Key={LABEL_KEY},Value=bigip_high_availability_solution'"
            )),
            "{fix}"
        );
        let d = Declaration::parse(AFTER).unwrap();
        let req = crate::engine::request::RunRequest::new(
            crate::engine::request::TargetSpec::Instance(crate::lab::SEED_A.into()),
            crate::engine::request::Mode::DryRun,
            "cli",
        );
        let r = crate::engine::failover::run(&cloud, &cloud, &d, req)
            .await
            .unwrap();
        let crate::engine::failover::RunOutcome::Completed(report) = r else {
            panic!("a dry run completes")
        };
        assert!(
            report.plan.warnings.iter().any(|w| w.contains(eip)),
            "{:?}",
            report.plan.warnings
        );
        cloud.tag_eip(eip, LABEL_KEY, "bigip_high_availability_solution");
        let c = verdict(&run(&cloud, AFTER).await, "unscoped-eips").clone();
        assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
    }

    /// A lock claiming a lease until 2099 fails the lock check, naming the cap.
    #[tokio::test]
    async fn a_lock_beyond_any_lease_fails() {
        let cloud = MemoryCloud::seed();
        let body = serde_json::json!({
            "owner": "skewed", "acquiredAt": "2026-01-01T00:00:00Z",
            "expiresAt": "2099-01-01T00:00:00Z", "released": false
        });
        cloud
            .put_object(
                "cfe-state-bigip-ha",
                &lock_key("default"),
                serde_json::to_vec(&body).unwrap(),
                &Encryption::None,
                None,
            )
            .await
            .unwrap();
        let c = verdict(&run(&cloud, AFTER).await, "cluster-lock");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(c.detail.contains("beyond the longest lease"), "{c:?}");
        // A body that is no lock at all is named too (it used to pass as "free").
        cloud
            .put_object(
                "cfe-state-bigip-ha",
                &lock_key("default"),
                b"{\"released\": \"no\"}".to_vec(),
                &Encryption::None,
                None,
            )
            .await
            .unwrap();
        let c = verdict(&run(&cloud, AFTER).await, "cluster-lock");
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        assert!(c.detail.contains("is not a lock object"), "{c:?}");
        assert!(c
            .fix
            .unwrap()
            .contains("aws s3 rm s3://cfe-state-bigip-ha/f5cloudfailover/lock/default.json"));
    }

    /// Doctor says where the cluster lives, fails a scope spanning two
    /// VPCs, and warns when the state file is another cluster's.
    #[tokio::test]
    async fn vpc_scope_and_shared_state_file() {
        let cloud = MemoryCloud::seed();
        let c = verdict(&run(&cloud, AFTER).await, "vpc");
        assert_eq!(c.verdict, Verdict::Pass);
        assert_eq!(c.detail, "the cluster lives in vpc-0287f01407d1276f0");

        let copy = crate::lab::Topology::seed().copy(1);
        cloud.add_topology(&copy);
        let mut v: serde_json::Value = serde_json::from_str(AFTER).unwrap();
        let group = &mut v["failoverRoutes"]["routeGroupDefinitions"][0];
        group.as_object_mut().unwrap().remove("scopingName");
        group["scopingTags"] = serde_json::json!({LABEL_KEY: "bigip_high_availability_solution"});
        let checks = run(&cloud, &v.to_string()).await;
        let c = verdict(&checks, "vpc");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.detail.contains("spans 2 VPCs"), "{c:?}");

        // The copy's cluster (same default name, same bucket) finds the seed cluster's record.
        let seed = Declaration::parse(AFTER).unwrap();
        let mut r = crate::engine::request::RunRequest::new(
            crate::engine::request::TargetSpec::Instance(crate::lab::SEED_B.into()),
            crate::engine::request::Mode::Execute,
            "test",
        );
        r.force = true;
        crate::engine::failover::run(&cloud, &cloud, &seed, r)
            .await
            .unwrap();
        let other = AFTER.replace(SEED_RTB, &copy.route_tables[0].id);
        let c = verdict(&run(&cloud, &other).await, "state-bucket");
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        assert!(c.detail.contains("written by another cluster"), "{c:?}");
    }

    /// A correct same-AZ pair (one VIP, on one unit) passes; the state moto makes
    /// (the VIP on both units) fails.
    #[tokio::test]
    async fn same_az_vip_rule() {
        let topo = crate::testing::same_az();
        let mut v: serde_json::Value = serde_json::from_str(AFTER).unwrap();
        v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
            serde_json::json!(["10.0.0.11", "10.0.0.12"]);
        let text = v.to_string();
        let c = verdict(
            &run(&MemoryCloud::from_topology(&topo), &text).await,
            "elastic-ips",
        );
        assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
        let mut both = topo.clone();
        both.instances[1].interfaces[1].secondary = vec!["10.0.0.101".parse().unwrap()];
        let c = verdict(
            &run(&MemoryCloud::from_topology(&both), &text).await,
            "elastic-ips",
        );
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(c.detail.contains("held by 2 members"), "{c:?}");
    }

    /// Findings for the cloud following a stopped member and for a split cloud.
    #[tokio::test]
    async fn the_cloud_following_a_stopped_member_or_split() {
        let cloud = MemoryCloud::seed();
        let c = verdict(&run(&cloud, AFTER).await, "cloud");
        assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
        assert!(c
            .detail
            .contains("every managed item follows i-055fd78af29715fbf"));
        cloud.set_instance_state(crate::lab::SEED_A, "stopped");
        let c = verdict(&run(&cloud, AFTER).await, "cloud");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(c.detail.contains("which is stopped"), "{c:?}");
        assert_eq!(
            c.fix.as_deref(),
            Some(
                format!("cloud-failover execute --declaration {DECL} --target i-061cbb31a5158ad30")
                    .as_str()
            )
        );
        let cloud = MemoryCloud::seed();
        cloud
            .replace_route(SEED_RTB, "0.0.0.0/0".parse().unwrap(), SEED_B_EXT)
            .await
            .unwrap();
        cloud.settle();
        let c = verdict(&run(&cloud, AFTER).await, "cloud");
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        assert!(c.detail.contains("do not all follow one member"), "{c:?}");
    }

    /// Association-swap checks of doctor's own.
    #[tokio::test]
    async fn twin_tables_are_checked() {
        let mut topo = crate::testing::swap::twins();
        let d = crate::testing::swap::decl();
        let cloud = MemoryCloud::from_topology(&topo);
        let checks = doctor(&cloud, &cloud, &d, LABEL_KEY, DECL, &[])
            .await
            .unwrap();
        assert_eq!(verdict(&checks, "twin-tables").verdict, Verdict::Pass);
        topo.route_tables.pop();
        let cloud = MemoryCloud::from_topology(&topo);
        let c = verdict(
            &doctor(&cloud, &cloud, &d, LABEL_KEY, DECL, &[])
                .await
                .unwrap(),
            "twin-tables",
        );
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(
            c.detail
                .contains("no twin table for member i-061cbb31a5158ad30"),
            "{c:?}"
        );
        let cloud = MemoryCloud::from_topology(&crate::testing::swap::twins());
        cloud.make_main(SEED_RTB);
        let c = verdict(
            &doctor(&cloud, &cloud, &d, LABEL_KEY, DECL, &[])
                .await
                .unwrap(),
            "twin-tables",
        );
        assert!(c.detail.contains("main route table"), "{c:?}");
    }
}
