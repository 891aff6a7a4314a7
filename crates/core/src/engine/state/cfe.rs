//! CFE's state file, both ways: the one a run writes in CFE's shape ([`state_file`]), and
//! what one CFE itself wrote says ([`read`], [`in_progress`]), so a pair migrating from CFE
//! is not failed over under a CFE that is still running.

use chrono::Utc;
use serde_json::{json, Map, Value};

use super::{timestamp, LastFailover, RunRecord, TaskState, CLOCK_SKEW_SECONDS};
use crate::engine::declaration::EXTENSION_KEY;
use crate::engine::discovery::Snapshot;
use crate::engine::plan::Action;

/// The state file a run writes, in CFE's shape (CFE reads it as its own; the `serverless`
/// block carries what CFE does not know).
pub fn state_file(record: &RunRecord) -> Value {
    let mut public = Map::new();
    let mut disassociate = Vec::new();
    let mut associate = Vec::new();
    let mut routes = Vec::new();
    for op in &record.operations {
        match &op.action {
            Action::AssociateAddress {
                allocation_id,
                public_ip,
                network_interface_id,
                private_ip,
                current_association_id,
                current_private_ip,
                ..
            } => {
                public.insert(
                    public_ip.to_string(),
                    json!({
                        "current": {
                            "PrivateIpAddress": current_private_ip.map(|i| i.to_string()),
                            "AssociationId": current_association_id,
                        },
                        "target": {
                            "PrivateIpAddress": private_ip.to_string(),
                            "NetworkInterfaceId": network_interface_id,
                        },
                        "AllocationId": allocation_id,
                    }),
                );
            }
            // No CFE field for it: recorded in the serverless block only.
            Action::SwapAssociation { .. } => {}
            Action::AssignPrivateIps {
                network_interface_id,
                from_network_interface_id,
                ips,
                public_ips,
            } => {
                let addrs: Vec<Value> = ips
                    .iter()
                    .map(|ip| interface_address(*ip, public_ips.get(ip)))
                    .collect();
                disassociate.push(
                    json!({"networkInterfaceId": from_network_interface_id, "addresses": addrs}),
                );
                associate
                    .push(json!({"networkInterfaceId": network_interface_id, "addresses": addrs}));
            }
            // CFE writes IPv6 moves in the same lists, with `ipVersion: 6`.
            Action::ReleaseIpv6 {
                network_interface_id,
                ips,
                ..
            } => disassociate.push(json!({
                "networkInterfaceId": network_interface_id,
                "addresses": ips.iter().map(|ip| interface_address(*ip, None)).collect::<Vec<_>>(),
            })),
            Action::AssignIpv6 {
                network_interface_id,
                ips,
                ..
            } => associate.push(json!({
                "networkInterfaceId": network_interface_id,
                "addresses": ips.iter().map(|ip| interface_address(*ip, None)).collect::<Vec<_>>(),
            })),
            // CFE 2.2+: `{address: <prefix>, ipVersion: 4, prefix: true}`.
            Action::ReleasePrefix {
                network_interface_id,
                prefix,
                ..
            } => disassociate.push(json!({
                "networkInterfaceId": network_interface_id,
                "addresses": [{"address": prefix.to_string(), "ipVersion": 4, "prefix": true}],
            })),
            Action::AssignPrefix {
                network_interface_id,
                prefix,
                ..
            } => associate.push(json!({
                "networkInterfaceId": network_interface_id,
                "addresses": [{"address": prefix.to_string(), "ipVersion": 4, "prefix": true}],
            })),
            Action::ReplaceRoute {
                route_table_id,
                destination,
                network_interface_id,
                next_hop_address,
                ..
            }
            | Action::CreateRoute {
                route_table_id,
                destination,
                network_interface_id,
                next_hop_address,
            } => routes.push(json!({
                "routeTableId": route_table_id,
                "networkInterfaceId": network_interface_id,
                "routeAddress": destination.to_string(),
                "nextHopAddress": next_hop_address.to_string(),
                "ipVersion": if destination.is_ipv6() { "6" } else { "4" },
            })),
        }
    }
    let message = match record.task_state {
        TaskState::Running => "Failover running".to_string(),
        TaskState::Succeeded => "Failover Complete".to_string(),
        TaskState::Failed => format!("Failover failed: {}", record.message),
        TaskState::Partial => format!("Failover partial: {}", record.message),
        TaskState::DryRun => format!("Dry run: {}", record.message),
    };
    // CFE knows RUNNING, SUCCEEDED and FAILED, and waits while any other state stands (its
    // failover.js _checkTaskState): a PARTIAL run, whose every planned operation completed,
    // is SUCCEEDED to CFE (the serverless block says PARTIAL, with the items left out).
    let cfe_task = match record.task_state {
        TaskState::Partial => TaskState::Succeeded,
        other => other,
    };
    let mut v = json!({
        "taskState": cfe_task,
        "message": message,
        "timestamp": timestamp(record.finished_at.unwrap_or(record.started_at)),
        "instance": record.target_name,
        "failoverOperations": {
            "addresses": {
                "publicAddresses": public,
                "interfaces": {"disassociate": disassociate, "associate": associate},
                "loadBalancerAddresses": {},
            },
            "routes": {"operations": routes},
        },
    });
    v[EXTENSION_KEY] = serde_json::to_value(record).expect("record serializes");
    v
}

/// How long a RUNNING state file written by CFE holds our runs back: CFE's own failover
/// gives up within this (its retries), so an older RUNNING is a CFE that died mid-way.
const CFE_RUNNING_WINDOW_SECONDS: i64 = 300;

/// What a state file CFE wrote (no `serverless` block) says.
pub(crate) struct CfeRecord {
    /// The hostname of the unit that ran it (`instance`).
    pub instance: String,
    /// The member it names, if one can be told (see [`member`]).
    pub member: Option<String>,
    /// Set while CFE is failing over (RUNNING, recent).
    pub running_since: Option<chrono::DateTime<Utc>>,
    /// Its last finished failover, when its unit is a member.
    pub last: Option<LastFailover>,
}

/// What `state` says when CFE wrote it; `None` when a run of ours did (or it says nothing).
pub(crate) fn record(state: &Value, snap: &Snapshot) -> Option<CfeRecord> {
    let (instance, task, at) = read(state)?;
    let member = member(state, &instance, snap);
    let running_since = running_now(task, at).then_some(at);
    let last = member
        .clone()
        .filter(|_| task != TaskState::Running)
        .map(|target| LastFailover { target, at });
    Some(CfeRecord {
        instance,
        member,
        running_since,
        last,
    })
}

/// The member a CFE state file is about: the owner of the interfaces its operations moved
/// things to (CFE fails over *to* the unit it runs on; interface ids identify an instance),
/// else the member whose `Name` tag is its host name, or the host name's first label (BIG-IP
/// host names are FQDNs, Name tags often not), compared as DNS names, case-insensitively.
fn member(state: &Value, host: &str, snap: &Snapshot) -> Option<String> {
    let ops = state.get("failoverOperations");
    let enis = ops
        .and_then(|o| o.pointer("/routes/operations"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("networkInterfaceId"))
        .chain(
            ops.and_then(|o| o.pointer("/addresses/publicAddresses"))
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(|m| m.values())
                .filter_map(|p| p.pointer("/target/NetworkInterfaceId")),
        )
        .chain(
            ops.and_then(|o| o.pointer("/addresses/interfaces/associate"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| a.get("networkInterfaceId")),
        )
        .filter_map(Value::as_str);
    let by_interface = enis
        .filter_map(|e| snap.owner_of_interface(e))
        .map(|m| m.id.clone())
        .next();
    let label = |s: &str| s.split('.').next().unwrap_or(s).to_ascii_lowercase();
    by_interface.or_else(|| {
        let named = |m: &&crate::engine::model::Instance| {
            let name = m.display_name();
            name.eq_ignore_ascii_case(host) || label(&name) == label(host)
        };
        snap.members.iter().find(named).map(|m| m.id.clone())
    })
}

/// A CFE failover in progress by this state file (RUNNING, recent): CFE's host, the member it
/// is matched to (by its interfaces or Name tag; `None` when none), and since when.
pub fn in_progress(
    state: &Value,
    snap: &Snapshot,
) -> Option<(String, Option<String>, chrono::DateTime<Utc>)> {
    let r = record(state, snap)?;
    Some((r.instance, r.member, r.running_since?))
}

/// A state file CFE itself wrote (no `serverless` block): its host, task state and time.
pub fn read(state: &Value) -> Option<(String, TaskState, chrono::DateTime<Utc>)> {
    if state
        .get(crate::engine::declaration::EXTENSION_KEY)
        .is_some()
    {
        return None;
    }
    let at: chrono::DateTime<Utc> = state.get("timestamp")?.as_str()?.parse().ok()?;
    let instance = state.get("instance")?.as_str()?.to_string();
    let task: TaskState = serde_json::from_value(state.get("taskState")?.clone()).ok()?;
    Some((instance, task, at))
}

/// Whether CFE is failing over now by its state file (RUNNING within the window): its host.
pub fn running(state: &Value) -> Option<String> {
    let (instance, task, at) = read(state)?;
    running_now(task, at).then_some(instance)
}

/// CFE's RUNNING written at `at` still stands: within the window (after which CFE has given
/// up), and not from the future beyond clock skew (which would hold runs back for as long).
fn running_now(task: TaskState, at: chrono::DateTime<Utc>) -> bool {
    let age = (Utc::now() - at).num_seconds();
    task == TaskState::Running && (-CLOCK_SKEW_SECONDS..CFE_RUNNING_WINDOW_SECONDS).contains(&age)
}

/// One `interfaces.{disassociate,associate}[].addresses` entry exactly as CFE 2.2+ writes it
/// (`_checkForNicOperations`): `address`, `publicAddress` only when an Elastic IP is associated,
/// and `ipVersion` as a number (CFE ≥ 2.2 drops entries without it when it replays the file).
fn interface_address(ip: std::net::IpAddr, public: Option<&std::net::IpAddr>) -> Value {
    let mut entry = json!({"address": ip.to_string()});
    if let Some(p) = public {
        entry["publicAddress"] = p.to_string().into();
    }
    entry["ipVersion"] = if ip.is_ipv6() { 6 } else { 4 }.into();
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::declaration::Declaration;
    use crate::engine::discovery::discover;
    use crate::memory::MemoryCloud;

    /// CFE 2.2+'s interface entry: `publicAddress` only with an Elastic IP, `ipVersion` a number.
    #[test]
    fn interface_entries_are_written_as_cfe_writes_them() {
        assert_eq!(
            interface_address(
                "10.0.0.101".parse().unwrap(),
                Some(&"3.3.3.3".parse().unwrap())
            ),
            json!({"address": "10.0.0.101", "publicAddress": "3.3.3.3", "ipVersion": 4})
        );
        assert_eq!(
            interface_address("2600:1f18::5".parse().unwrap(), None),
            json!({"address": "2600:1f18::5", "ipVersion": 6})
        );
    }

    fn cfe_state(task: &str, age_s: i64, host: &str) -> Value {
        let at = Utc::now() - chrono::Duration::seconds(age_s);
        json!({"taskState": task, "instance": host, "message": "",
               "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
               "failoverOperations": {}})
    }

    /// CFE is failing over while its own state file says RUNNING, recently; not once it
    /// finished, nor after its window, nor when the file is ours.
    #[tokio::test]
    async fn a_recent_running_cfe_state_is_a_failover_in_progress_matched_to_a_member() {
        let cloud = MemoryCloud::seed();
        let d = Declaration::parse(crate::testing::plan::AFTER).unwrap();
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        // BIG-IP's host name is an FQDN; the Name tag may be its first label only, any case.
        let host = "FAILOVER02";
        let now = cfe_state("RUNNING", 5, host);
        assert_eq!(running(&now).as_deref(), Some(host));
        let (h, member, _) = in_progress(&now, &snap).unwrap();
        assert_eq!(
            (h.as_str(), member.as_deref()),
            (host, Some(crate::lab::SEED_B))
        );
        for not_now in [
            cfe_state("SUCCEEDED", 5, host),
            cfe_state("RUNNING", CFE_RUNNING_WINDOW_SECONDS + 5, host),
        ] {
            assert!(running(&not_now).is_none(), "{not_now}");
            assert!(in_progress(&not_now, &snap).is_none(), "{not_now}");
        }
        let mut ours = now.clone();
        ours[crate::engine::declaration::EXTENSION_KEY] = json!({});
        assert!(running(&ours).is_none() && read(&ours).is_none());
        let stranger = cfe_state("RUNNING", 5, "bigip-elsewhere.example.net");
        let (_, member, _) = in_progress(&stranger, &snap).unwrap();
        assert_eq!(member, None);
    }
}
