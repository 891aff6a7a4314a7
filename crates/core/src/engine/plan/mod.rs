//! The planner: a pure function of (declaration, snapshot, target) to the operations that
//! make the cloud follow the target, or a refusal with reasons. No I/O.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::engine::declaration::Declaration;
use crate::engine::discovery::Snapshot;
use crate::engine::model::Instance;
use crate::engine::net::Cidr;

mod addresses;
mod elastic_ips;
mod limits;
mod prefixes;
mod routes;
mod swap;

pub use swap::{twin_problems, MEMBER_TAG};

/// What one operation changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
pub enum Action {
    /// ReplaceRoute: point `destination` in `route_table_id` at `network_interface_id`.
    ReplaceRoute {
        /// Route table.
        route_table_id: String,
        /// Route destination (exact match).
        destination: Cidr,
        /// New target ENI.
        network_interface_id: String,
        /// The next-hop address (the ENI's primary IP) that selected the ENI.
        next_hop_address: IpAddr,
        /// What the route pointed at before.
        current_target: String,
    },
    /// CreateRoute (`serverless.createMissingRoutes`): the declared range is absent from the
    /// table; it is created pointing at the target's ENI.
    CreateRoute {
        /// Route table.
        route_table_id: String,
        /// Route destination.
        destination: Cidr,
        /// Target ENI.
        network_interface_id: String,
        /// The next-hop address (the ENI's primary IP) that selected the ENI.
        next_hop_address: IpAddr,
    },
    /// AssociateAddress (AllowReassociation): move the EIP to `private_ip` on the ENI.
    AssociateAddress {
        /// EIP allocation.
        allocation_id: String,
        /// EIP public address.
        public_ip: IpAddr,
        /// Target ENI.
        network_interface_id: String,
        /// Target private IP (the VIP on the target unit).
        private_ip: IpAddr,
        /// Association replaced, if any.
        current_association_id: Option<String>,
        /// ENI it was on, if any.
        current_network_interface_id: Option<String>,
        /// Private IP it was on, if any.
        current_private_ip: Option<IpAddr>,
    },
    /// ReplaceRouteTableAssociation: the subnet moves to the target's twin route table
    /// (association-swap mode).
    SwapAssociation {
        /// The subnet.
        subnet_id: String,
        /// Its current association.
        association_id: String,
        /// The table it leaves.
        from_route_table_id: String,
        /// The target's twin table.
        route_table_id: String,
    },
    /// UnassignPrivateIpAddresses (`Ipv4Prefixes`): the first half of a prefix move, in wave 0
    /// (EC2 does not reassign delegated prefixes: the holder releases it first).
    ReleasePrefix {
        /// The ENI that holds it now.
        network_interface_id: String,
        /// The delegated prefix.
        prefix: Cidr,
        /// The target's ENI that takes it in wave 1.
        to_network_interface_id: String,
    },
    /// AssignPrivateIpAddresses (`Ipv4Prefixes`): the second half, in wave 1.
    AssignPrefix {
        /// Receiving ENI (target unit, same subnet).
        network_interface_id: String,
        /// The delegated prefix.
        prefix: Cidr,
        /// The ENI that released it.
        from_network_interface_id: String,
    },
    /// UnassignIpv6Addresses: the first half of an IPv6 move, in wave 0 (EC2 does not reassign
    /// IPv6 addresses: the holder releases them first).
    ReleaseIpv6 {
        /// The ENI that holds them now.
        network_interface_id: String,
        /// The addresses.
        ips: Vec<IpAddr>,
        /// The target's ENI that takes them in wave 1.
        to_network_interface_id: String,
    },
    /// AssignIpv6Addresses: the second half, in wave 1.
    AssignIpv6 {
        /// Receiving ENI (target unit, same subnet).
        network_interface_id: String,
        /// The addresses.
        ips: Vec<IpAddr>,
        /// The ENI that released them.
        from_network_interface_id: String,
    },
    /// AssignPrivateIpAddresses (AllowReassignment): move secondary IPv4 addresses between
    /// ENIs of one subnet.
    AssignPrivateIps {
        /// Receiving ENI (target unit).
        network_interface_id: String,
        /// ENI that holds them now.
        from_network_interface_id: String,
        /// The addresses.
        ips: Vec<IpAddr>,
        /// Elastic IPs associated with them now (private → public): CFE's `publicAddress`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        public_ips: BTreeMap<IpAddr, IpAddr>,
    },
}

impl Action {
    /// Whether this operation is on the data path a failover restores first: every address
    /// move (EIP, secondary IP, prefix), every subnet swap, and the default routes
    /// (`0.0.0.0/0`, `::/0`); other routes follow.
    pub fn restores_traffic(&self) -> bool {
        match self {
            Action::ReplaceRoute { destination, .. } | Action::CreateRoute { destination, .. } => {
                destination.prefix() == 0
            }
            _ => true,
        }
    }

    /// The call this action makes.
    pub fn mutation(&self) -> crate::engine::ports::Mutation {
        use crate::engine::ports::Mutation;
        match self {
            Action::ReplaceRoute {
                route_table_id,
                destination,
                network_interface_id,
                ..
            } => Mutation::ReplaceRoute {
                route_table_id: route_table_id.clone(),
                destination: *destination,
                network_interface_id: network_interface_id.clone(),
            },
            Action::CreateRoute {
                route_table_id,
                destination,
                network_interface_id,
                ..
            } => Mutation::CreateRoute {
                route_table_id: route_table_id.clone(),
                destination: *destination,
                network_interface_id: network_interface_id.clone(),
            },
            Action::AssociateAddress {
                allocation_id,
                network_interface_id,
                private_ip,
                ..
            } => Mutation::AssociateAddress {
                allocation_id: allocation_id.clone(),
                network_interface_id: network_interface_id.clone(),
                private_ip: *private_ip,
            },
            Action::SwapAssociation {
                association_id,
                route_table_id,
                ..
            } => Mutation::ReplaceRouteTableAssociation {
                association_id: association_id.clone(),
                route_table_id: route_table_id.clone(),
            },
            Action::ReleasePrefix {
                network_interface_id,
                prefix,
                ..
            } => Mutation::UnassignIpv4Prefixes {
                network_interface_id: network_interface_id.clone(),
                prefixes: vec![*prefix],
            },
            Action::AssignPrefix {
                network_interface_id,
                prefix,
                ..
            } => Mutation::AssignIpv4Prefixes {
                network_interface_id: network_interface_id.clone(),
                prefixes: vec![*prefix],
            },
            Action::AssignPrivateIps {
                network_interface_id,
                ips,
                ..
            } => Mutation::AssignPrivateIps {
                network_interface_id: network_interface_id.clone(),
                ips: ips.clone(),
            },
            Action::ReleaseIpv6 {
                network_interface_id,
                ips,
                ..
            } => Mutation::UnassignIpv6 {
                network_interface_id: network_interface_id.clone(),
                ips: ips.clone(),
            },
            Action::AssignIpv6 {
                network_interface_id,
                ips,
                ..
            } => Mutation::AssignIpv6 {
                network_interface_id: network_interface_id.clone(),
                ips: ips.clone(),
            },
        }
    }
}

/// One planned operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Stable id, e.g. `route:rtb-…:0.0.0.0/0`.
    pub id: String,
    /// 0 = first round; 1 = after the moves of round 0 (EIPs on moved secondary IPs, the
    /// assign half of a prefix move); 2 = EIPs on the addresses of a prefix assigned in 1.
    pub wave: u8,
    /// What to do.
    pub action: Action,
    /// Why, in words.
    pub why: String,
}

/// The plan for one failover.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Target instance id.
    pub target: String,
    /// Target `Name` tag (or id).
    pub target_name: String,
    /// Operations to run, in a stable order.
    pub operations: Vec<Operation>,
    /// Items already in the desired state (left out of `operations`).
    pub in_place: Vec<String>,
    /// Things worth knowing that do not block the failover.
    pub warnings: Vec<String>,
    /// Items left out, each with the reason: the run moves the rest and ends PARTIAL.
    pub skipped: Vec<String>,
}

/// The planner's refusal: every reason found, nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", .reasons.join("; "))]
pub struct Refusal {
    /// Each reason, naming the resource and the fix.
    pub reasons: Vec<String>,
}

/// Plans the failover to `target`.
pub fn plan(decl: &Declaration, snap: &Snapshot, target: &str) -> Result<Plan, Refusal> {
    if decl.addresses().is_none() && decl.route_groups().is_empty() {
        // Both disabled (how CFE's failover is paused): nothing to do, not a refusal.
        return Ok(Plan {
            target: target.to_string(),
            target_name: target.to_string(),
            operations: Vec::new(),
            in_place: Vec::new(),
            warnings: vec![
                "failoverAddresses and failoverRoutes are disabled (or absent): nothing is failed over, as under CFE".into(),
            ],
            skipped: Vec::new(),
        });
    }
    if !snap.vpc_conflicts.is_empty() {
        return Err(Refusal {
            reasons: snap.vpc_conflicts.clone(),
        });
    }
    let Some(t) = snap.member(target) else {
        let members: Vec<&str> = snap.members.iter().map(|m| m.id.as_str()).collect();
        let place = snap
            .vpc_id
            .as_ref()
            .map(|v| format!(" in {v}"))
            .unwrap_or_default();
        return Err(Refusal {
            reasons: vec![format!(
                "target {target} is not a member of the cluster (members{place}: {})",
                if members.is_empty() {
                    "none found".to_string()
                } else {
                    members.join(", ")
                }
            )],
        });
    };
    if t.state != "running" {
        return Err(Refusal {
            reasons: vec![format!(
                "target {} ({}) is {}, not running",
                t.id,
                t.display_name(),
                t.state
            )],
        });
    }
    if snap.impaired.contains(&t.id) {
        return Err(Refusal {
            reasons: vec![format!(
                "target {} ({}) fails its EC2 status checks",
                t.id,
                t.display_name()
            )],
        });
    }
    let a = assess(decl, snap, t);
    // Refusals about the target refuse everything; one about an item skips it, unless no item
    // is left to follow the target at all.
    let nothing_left = a.operations.is_empty() && a.in_place.is_empty();
    if !a.reasons.is_empty() || (nothing_left && !a.skipped.is_empty()) {
        return Err(Refusal {
            reasons: a.obstacles(),
        });
    }
    Ok(Plan {
        target: t.id.clone(),
        target_name: t.display_name().to_string(),
        operations: a.operations,
        in_place: a.in_place,
        warnings: a.warnings,
        skipped: a.skipped,
    })
}

/// What it takes for the cloud to follow `member`, whatever the member's health: the
/// operations, the managed items already in place for it, and what stands in the way. The
/// one rule for "whom does the cloud follow": `plan` builds on it, and `inspect` (and so the
/// probe) asks it of every member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// Operations, in a stable order (wave, then id).
    pub operations: Vec<Operation>,
    /// Managed items already following the member.
    pub in_place: Vec<String>,
    /// Things worth knowing that do not block.
    pub warnings: Vec<String>,
    /// What blocks following the member at all (the target itself, or association-swap mode's
    /// twin tables).
    pub reasons: Vec<String>,
    /// Items that cannot follow the member, each with the reason (a deleted table or EIP, a
    /// route with no next hop on it, …): the rest still can.
    pub skipped: Vec<String>,
}

impl Assessment {
    /// Whether the cloud follows the member in everything managed (and something is).
    pub fn followed(&self) -> bool {
        self.operations.is_empty()
            && self.reasons.is_empty()
            && self.skipped.is_empty()
            && !self.in_place.is_empty()
    }

    /// Everything that stands in the way of following the member, whole or in part.
    pub fn obstacles(&self) -> Vec<String> {
        self.reasons.iter().chain(&self.skipped).cloned().collect()
    }
}

/// Assesses `member` (see [`Assessment`]).
pub fn assess(decl: &Declaration, snap: &Snapshot, member: &Instance) -> Assessment {
    let mut p = Planner {
        decl,
        snap,
        reasons: Vec::new(),
        skipped: Vec::new(),
        ops: Vec::new(),
        in_place: Vec::new(),
        warnings: snap.left_alone.clone(),
    };
    let moved = p.secondary_ips(member);
    p.routes(member);
    p.elastic_ips(member, &moved);
    // Data path first: within a wave, what restores traffic (EIPs, addresses, default routes,
    // subnet swaps) is sent before the other routes, so paced waits fall on the rest.
    p.ops
        .sort_by_cached_key(|o| (o.wave, !o.action.restores_traffic(), o.id.clone()));
    Assessment {
        operations: p.ops,
        in_place: p.in_place,
        warnings: p.warnings,
        reasons: p.reasons,
        skipped: p.skipped,
    }
}

struct Planner<'a> {
    decl: &'a Declaration,
    snap: &'a Snapshot,
    reasons: Vec<String>,
    skipped: Vec<String>,
    ops: Vec<Operation>,
    in_place: Vec<String>,
    warnings: Vec<String>,
}

impl Planner<'_> {
    /// Whether `item` is this run's to move (see [`Declaration::manages`]); an item the
    /// declaration's groups leave out (found by tag, in no group) is warned of, never moved.
    fn in_group(&mut self, item: crate::engine::declaration::Managed) -> bool {
        if self.decl.manages(item) {
            return true;
        }
        if self.decl.in_no_group(item) {
            self.warnings.push(format!(
                "{item} is in no failover group (serverless.groups): left alone; name it in the group it follows"
            ));
        }
        false
    }
}

/// Addresses as a comma-separated list.
fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Topology, SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT};
    use crate::memory::MemoryCloud;
    use crate::testing::plan::{cidr, decl, patched, plan_on, AFTER};
    use serde_json::json;

    /// Whom the cloud follows: the member every managed item already points at, and only
    /// it; a member with items still to move, or nothing managed at all, is not followed.
    #[tokio::test]
    async fn the_followed_member_is_the_one_a_failover_would_not_change() {
        let cloud = MemoryCloud::seed();
        let d = decl(AFTER);
        let snap = crate::engine::discovery::discover(&cloud, &cloud, &d)
            .await
            .unwrap();
        let a = assess(&d, &snap, snap.member(SEED_A).unwrap());
        let b = assess(&d, &snap, snap.member(SEED_B).unwrap());
        assert!(a.followed(), "{a:?}");
        assert!(!b.followed(), "{b:?}");
        assert_eq!((a.in_place.len(), b.operations.len()), (2, 2));
        let nothing = Assessment {
            operations: Vec::new(),
            in_place: Vec::new(),
            warnings: Vec::new(),
            reasons: Vec::new(),
            skipped: Vec::new(),
        };
        assert!(!nothing.followed(), "nothing managed: no one is followed");
    }

    /// Routes disabled but addresses enabled (CFE's `failoverRoutes.enabled: false`): the
    /// Elastic IP still moves; only both disabled is the paused failover that plans nothing.
    #[tokio::test]
    async fn addresses_alone_still_fail_over() {
        let cloud = MemoryCloud::seed();
        let d = patched(|v| v["failoverRoutes"]["enabled"] = false.into());
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        let ids: Vec<&str> = p.operations.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["eip:98.80.114.203"]);
        let d = patched(|v| {
            v["failoverRoutes"]["enabled"] = false.into();
            v["failoverAddresses"]["enabled"] = false.into();
        });
        assert!(plan_on(&cloud, &d, SEED_B)
            .await
            .unwrap()
            .operations
            .is_empty());
    }

    #[tokio::test]
    async fn seed_failover_to_b_moves_route_and_eip() {
        // GIVEN the field report's cloud with A active, WHEN planning for B
        let cloud = MemoryCloud::seed();
        let p = plan_on(&cloud, &decl(AFTER), SEED_B).await.unwrap();
        // THEN the default route and the EIP move to B's external ENI, nothing else
        assert_eq!(p.target_name, "failover02.www.non-97.net");
        let ids: Vec<&str> = p.operations.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(
            ids,
            vec!["eip:98.80.114.203", "route:rtb-060adeaa8fe5b2bbb:0.0.0.0/0"]
        );
        match &p.operations[1].action {
            Action::ReplaceRoute {
                network_interface_id,
                next_hop_address,
                current_target,
                ..
            } => {
                assert_eq!(network_interface_id, SEED_B_EXT);
                assert_eq!(next_hop_address.to_string(), "10.0.4.11");
                assert_eq!(current_target, SEED_A_EXT);
            }
            other => panic!("{other:?}"),
        }
        match &p.operations[0].action {
            Action::AssociateAddress {
                network_interface_id,
                private_ip,
                current_private_ip,
                ..
            } => {
                assert_eq!(network_interface_id, SEED_B_EXT);
                assert_eq!(private_ip.to_string(), "10.0.4.101");
                assert_eq!(current_private_ip.unwrap().to_string(), "10.0.0.101");
            }
            other => panic!("{other:?}"),
        }
        assert!(p.operations[1]
            .why
            .contains("points at eni-0603a4992d0579540 of i-055fd78af29715fbf"));
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[tokio::test]
    async fn active_target_needs_nothing() {
        let cloud = MemoryCloud::seed();
        let p = plan_on(&cloud, &decl(AFTER), SEED_A).await.unwrap();
        assert!(p.operations.is_empty());
        assert_eq!(p.in_place.len(), 2);
    }

    #[tokio::test]
    async fn refuses_non_members_and_stopped_targets() {
        let cloud = MemoryCloud::seed();
        let r = plan_on(&cloud, &decl(AFTER), "i-0123456789abcdef0")
            .await
            .unwrap_err();
        assert!(r.reasons[0].contains("is not a member"), "{r}");
        cloud.set_instance_state(SEED_B, "stopped");
        let r = plan_on(&cloud, &decl(AFTER), SEED_B).await.unwrap_err();
        assert!(r.reasons[0].contains("is stopped, not running"), "{r}");
    }

    /// Data path first. Operations were sorted by id, so a default route waited
    /// behind the other routes of its wave; now EIPs and default routes lead.
    #[tokio::test]
    async fn the_data_path_goes_first() {
        // A second table whose id sorts before the seed's, with 20 non-default routes.
        let mut topo = Topology::seed();
        let extra: Vec<Cidr> = (0..20)
            .map(|i| cidr(&format!("10.{}.0.0/16", 100 + i)))
            .collect();
        let mut other = topo.route_tables[0].clone();
        other.id = "rtb-000000000000000aa".into();
        other.subnets.clear();
        other.routes = extra.iter().map(|c| (*c, SEED_A_EXT.to_string())).collect();
        topo.route_tables.push(other);
        let cloud = MemoryCloud::from_topology(&topo);
        let d = patched(|v| {
            let groups = &mut v["failoverRoutes"]["routeGroupDefinitions"];
            let mut g = groups[0].clone();
            g["scopingName"] = "rtb-000000000000000aa".into();
            g["scopingAddressRanges"] = extra
                .iter()
                .map(|c| json!({"range": c.to_string()}))
                .collect();
            groups.as_array_mut().unwrap().push(g);
        });
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        let ids: Vec<&str> = p.operations.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids.len(), 22);
        assert_eq!(
            &ids[..2],
            &["eip:98.80.114.203", "route:rtb-060adeaa8fe5b2bbb:0.0.0.0/0"],
            "{ids:?}"
        );
    }
}
