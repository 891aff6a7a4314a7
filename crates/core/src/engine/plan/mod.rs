//! The planner: a pure function of (declaration, snapshot, target) to the operations that
//! make the cloud follow the target, or a refusal with reasons. No I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::engine::declaration::{AddressGroup, AddressRange, Declaration, RouteGroup};
use crate::engine::discovery::{
    matches, names_its_eips, next_hops_for, ScopedEip, ScopedTable, Snapshot, NIC_MAP_TAG,
};
use crate::engine::model::{ElasticIp, Instance, NetworkInterface, Route, RouteTable};
use crate::engine::net::Cidr;

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

/// Secondary IP moves being planned: (to ENI, from ENI) → the addresses.
type IpMoves = BTreeMap<(String, String), Vec<IpAddr>>;

struct Planner<'a> {
    decl: &'a Declaration,
    snap: &'a Snapshot,
    reasons: Vec<String>,
    skipped: Vec<String>,
    ops: Vec<Operation>,
    in_place: Vec<String>,
    warnings: Vec<String>,
}

/// Route-table tag naming the member a twin table routes to (association-swap mode).
pub const MEMBER_TAG: &str = "f5_cloud_failover_member";

/// Association-swap mode: what keeps the twin tables from being swapped safely (each twin
/// tagged with its member, every twin of a group with the same destinations, each declared
/// range pointing at its own member's next hop).
pub fn twin_problems(decl: &Declaration, snap: &Snapshot) -> Vec<String> {
    let mut problems = Vec::new();
    for (gi, g) in decl.route_groups().iter().enumerate() {
        let twins: Vec<&RouteTable> = snap
            .route_tables
            .iter()
            .filter(|st| st.group == gi)
            .map(|st| &st.table)
            .collect();
        let Some(first) = twins.first() else { continue };
        let dests = |t: &RouteTable| -> BTreeSet<Cidr> {
            t.routes
                .iter()
                .filter(|r| r.other_target.as_deref() != Some("local"))
                .map(|r| r.destination)
                .collect()
        };
        for table in &twins {
            if table.associations.iter().any(|a| a.main) {
                problems.push(format!(
                    "twin route table {} is the VPC's main route table: subnets that use it implicitly cannot be moved to another twin; associate them explicitly (aws ec2 associate-route-table --route-table-id {} --subnet-id <subnet>) and make another table main",
                    table.id, table.id
                ));
            }
            let Some(member) = table.tags.get(MEMBER_TAG) else {
                problems.push(format!(
                    "route table {} has no {MEMBER_TAG} tag (associationSwap needs one table per member, tagged with its instance id)",
                    table.id
                ));
                continue;
            };
            let (a, b) = (dests(first), dests(table));
            if a != b {
                let diff: Vec<String> = a
                    .symmetric_difference(&b)
                    .map(ToString::to_string)
                    .collect();
                problems.push(format!(
                    "twin route tables {} and {} are out of sync: {} in one only",
                    first.id,
                    table.id,
                    diff.join(", ")
                ));
            }
            let Some(m) = snap.member(member) else {
                problems.push(format!(
                    "route table {} is tagged for {member}, which is not a member",
                    table.id
                ));
                continue;
            };
            for r in &g.ranges {
                let Ok(items) = next_hops_for(g, r, table) else {
                    continue;
                };
                let want = next_hop_on(m, &items, r.range)
                    .ok()
                    .map(|(n, _)| n.id.clone());
                let have = table.routes.iter().find(|x| x.destination == r.range);
                if have.and_then(|x| x.network_interface_id.clone()) != want {
                    problems.push(format!(
                        "twin route table {} (of {member}): route {} points at {}, not at {}'s next hop {}",
                        table.id,
                        r.range,
                        have.map_or("nothing", |x| x.target()),
                        member,
                        want.as_deref().unwrap_or("(none)")
                    ));
                }
            }
        }
    }
    problems
}

impl Planner<'_> {
    /// Association-swap mode: move each subnet to the target's twin table.
    fn swap_associations(&mut self, t: &Instance) {
        self.reasons
            .extend(self.snap.tables_in_two_groups.iter().cloned());
        let problems = twin_problems(self.decl, self.snap);
        if !problems.is_empty() {
            self.reasons.extend(problems);
            return;
        }
        for gi in 0..self.decl.route_groups().len() {
            let twins: Vec<&RouteTable> = self
                .snap
                .route_tables
                .iter()
                .filter(|st| st.group == gi)
                .map(|st| &st.table)
                .collect();
            if twins.is_empty() {
                continue;
            }
            let Some(to) = twins.iter().find(|x| x.tags.get(MEMBER_TAG) == Some(&t.id)) else {
                self.reasons.push(format!(
                    "route group {gi}: no twin route table tagged {MEMBER_TAG}={} for the target",
                    t.id
                ));
                continue;
            };
            for from in twins.iter().filter(|x| x.id != to.id) {
                for a in from.associations.iter().filter(|a| !a.main) {
                    let Some(subnet) = &a.subnet_id else { continue };
                    self.ops.push(Operation {
                        id: format!("assoc:{subnet}"),
                        wave: 0,
                        why: format!(
                            "subnet {subnet} uses {} (routes via {}); the active unit {} ({}) has twin table {}",
                            from.id,
                            from.tags.get(MEMBER_TAG).map_or("?", String::as_str),
                            t.id,
                            t.display_name(),
                            to.id
                        ),
                        action: Action::SwapAssociation {
                            subnet_id: subnet.clone(),
                            association_id: a.id.clone(),
                            from_route_table_id: from.id.clone(),
                            route_table_id: to.id.clone(),
                        },
                    });
                }
            }
            for a in to.associations.iter().filter_map(|a| a.subnet_id.as_ref()) {
                self.in_place.push(format!("subnet {a} on {}", to.id));
            }
        }
    }

    /// Plans the routes for target `t` (or, in association-swap mode, the twins' associations).
    fn routes(&mut self, t: &Instance) {
        if self.decl.extension.association_swap {
            return self.swap_associations(t);
        }
        self.route_scope_problems();
        let (snap, decl) = (self.snap, self.decl);
        for (st, g, r) in snap.declared_routes(decl) {
            self.route(t, st, g, r);
        }
    }

    /// Refuses or warns of the route tables discovery could not scope.
    fn route_scope_problems(&mut self) {
        self.skipped
            .extend(self.snap.tables_in_two_groups.iter().cloned());
        for id in &self.snap.missing_route_tables {
            self.skipped.push(format!(
                "route table {id} (scopingName in failoverRoutes) does not exist or is not visible"
            ));
        }
        for &g in &self.snap.empty_tag_groups {
            self.warnings.push(format!(
                "no route table carries the scoping tags of route group {g}: routes are not failed over (tag the table)"
            ));
        }
    }

    /// Plans range `r` of group `g` in table `st` for target `t`.
    fn route(&mut self, t: &Instance, st: &ScopedTable, g: &RouteGroup, r: &AddressRange) {
        let table = &st.table;
        let items = match next_hops_for(g, r, table) {
            Ok(items) => items,
            Err(why) => {
                self.skipped.push(why);
                return;
            }
        };
        let Some(route) = table.routes.iter().find(|x| x.destination == r.range) else {
            return self.missing_route(t, st, r, &items);
        };
        if !self.may_take_over(route, r, table) {
            return;
        }
        let (eni, hop) = match next_hop_on(t, &items, r.range) {
            Ok(x) => x,
            Err(reason) => {
                self.skipped
                    .push(format!("route {} in {}: {reason}", r.range, table.id));
                return;
            }
        };
        if eni.source_dest_check {
            self.warnings.push(format!(
                "source/destination check is on for {} ({}): traffic routed to it will be dropped; turn it off",
                eni.id, hop
            ));
        }
        let what = format!("route {} in {} → {} ({hop})", r.range, table.id, eni.id);
        if route.network_interface_id.as_deref() == Some(eni.id.as_str()) {
            self.in_place.push(what);
            return;
        }
        self.replace_route(t, table, r, route, eni, hop);
    }

    /// A range missing from a table: created if its group opts in, else a warning.
    fn missing_route(
        &mut self,
        t: &Instance,
        st: &ScopedTable,
        r: &AddressRange,
        items: &[IpAddr],
    ) {
        let table = &st.table;
        if !self
            .decl
            .extension
            .create_missing_routes
            .contains(&st.group)
        {
            self.warnings.push(format!(
                "route {} is not in route table {} (not created; add it, or opt in with serverless.createMissingRoutes)",
                r.range, table.id
            ));
            return;
        }
        if let Some(why) = unroutable(table, r.range) {
            self.skipped
                .push(format!("route {} in {}: {why}", r.range, table.id));
            return;
        }
        match next_hop_on(t, items, r.range) {
            Ok((eni, hop)) => self.ops.push(Operation {
                id: format!("route:{}:{}", table.id, r.range),
                wave: 0,
                why: format!(
                    "route {} is not in {} (route group {} opts in to createMissingRoutes); the active unit {} ({}) has next hop {hop} on {}",
                    r.range,
                    table.id,
                    st.group,
                    t.id,
                    t.display_name(),
                    eni.id
                ),
                action: Action::CreateRoute {
                    route_table_id: table.id.clone(),
                    destination: r.range,
                    network_interface_id: eni.id.clone(),
                    next_hop_address: hop,
                },
            }),
            Err(reason) => self
                .skipped
                .push(format!("route {} in {}: {reason}", r.range, table.id)),
        }
    }

    /// Whether `route` may be pointed at an appliance (not local; a gateway's only if allowed).
    fn may_take_over(&mut self, route: &Route, r: &AddressRange, table: &RouteTable) -> bool {
        if route.local {
            self.skipped.push(format!(
                "range {} is the VPC's local route in {}: pointing it at an appliance would send all traffic within the VPC through it; remove the range from the declaration",
                r.range, table.id
            ));
            return false;
        }
        if let (None, Some(gw)) = (&route.network_interface_id, &route.other_target) {
            let what = format!(
                "route {} in {} points at {gw}, not at an appliance",
                r.range, table.id
            );
            if self.decl.extension.take_over_gateway_routes {
                self.warnings.push(format!(
                    "{what}: taken over (serverless.takeOverGatewayRoutes)"
                ));
            } else {
                self.skipped.push(format!(
                    "{what}: taking it over changes that path for every subnet using the table; set serverless.takeOverGatewayRoutes: true if that is meant, or remove the range"
                ));
                return false;
            }
        }
        true
    }

    /// Points `route` (range `r` in `table`) at `t`'s next hop `hop` on `eni`.
    fn replace_route(
        &mut self,
        t: &Instance,
        table: &RouteTable,
        r: &AddressRange,
        route: &Route,
        eni: &NetworkInterface,
        hop: IpAddr,
    ) {
        let from = match route
            .network_interface_id
            .as_deref()
            .and_then(|e| self.snap.owner_of_interface(e))
        {
            Some(owner) => format!(
                "{} of {} ({})",
                route.target(),
                owner.id,
                owner.display_name()
            ),
            None => route.target().to_string(),
        };
        self.ops.push(Operation {
            id: format!("route:{}:{}", table.id, r.range),
            wave: 0,
            why: format!(
                "route {} in {} points at {from}; the active unit {} ({}) has next hop {hop} on {}",
                r.range,
                table.id,
                t.id,
                t.display_name(),
                eni.id
            ),
            action: Action::ReplaceRoute {
                route_table_id: table.id.clone(),
                destination: r.range,
                network_interface_id: eni.id.clone(),
                next_hop_address: hop,
                current_target: route.target().to_string(),
            },
        });
    }

    /// Plans same-subnet secondary IP moves; returns where moved IPs will be (ip → ENI).
    fn secondary_ips(&mut self, t: &Instance) -> BTreeMap<IpAddr, String> {
        let mut moves = IpMoves::new();
        let Some(a) = self.decl.addresses() else {
            return BTreeMap::new();
        };
        for g in &a.groups {
            self.address_group(t, g, &mut moves);
        }
        // CFE pairs interfaces by f5_cloud_failover_nic_map only without addressGroupDefinitions:
        // with them, only the listed addresses move (CFE v2.4.0 awsProviderTests.js, "should
        // validate same-net case": an unlisted address stays).
        if a.groups.is_empty() {
            self.nic_map_moves(t, &mut moves);
        }
        let full = self.address_limits(t, &moves);
        if !full.is_empty() {
            // Nothing moves onto an interface that cannot take it all; the rest goes on.
            moves.retain(|(to, _), _| !full.contains(to));
            self.ops.retain(|o| match &o.action {
                Action::ReleasePrefix {
                    to_network_interface_id: n,
                    ..
                }
                | Action::AssignPrefix {
                    network_interface_id: n,
                    ..
                }
                | Action::AssociateAddress {
                    network_interface_id: n,
                    ..
                } => !full.contains(n),
                _ => true,
            });
        }
        self.ip_move_operations(t, moves)
    }

    /// Plans one address group: a prefix, or an address joining `moves`.
    fn address_group(&mut self, t: &Instance, g: &AddressGroup, moves: &mut IpMoves) {
        if let AddressGroup::NetworkInterfacePrefix { prefix } = g {
            self.prefix(t, *prefix);
            return;
        }
        let AddressGroup::NetworkInterfaceAddress {
            scoping_address: ip,
        } = g
        else {
            return;
        };
        let Some((holder, from)) = self.snap.holder_of(*ip) else {
            self.skipped.push(format!(
                "address {ip} (networkInterfaceAddress) is not on any member's interface"
            ));
            return;
        };
        if holder.id == t.id {
            self.in_place.push(format!("address {ip} on {}", from.id));
            return;
        }
        if from.primary_ip == *ip {
            self.skipped.push(format!(
                "address {ip} is the primary IP of {} and cannot move; use a secondary IP",
                from.id
            ));
            return;
        }
        // CFE pairs by subnet; where the target has several interfaces there, the one with the
        // holder's f5_cloud_failover_nic_map value.
        let in_subnet = || {
            t.network_interfaces
                .iter()
                .filter(|n| n.subnet_id == from.subnet_id)
        };
        let paired = in_subnet().find(|n| {
            from.tags.contains_key(NIC_MAP_TAG)
                && n.tags.get(NIC_MAP_TAG) == from.tags.get(NIC_MAP_TAG)
        });
        match paired.or_else(|| in_subnet().next()) {
            Some(to) => moves.entry((to.id.clone(), from.id.clone())).or_default().push(*ip),
            None => self.skipped.push(format!(
                "address {ip} is in subnet {} but target {} has no interface there (secondary IPs move only within a subnet)",
                from.subnet_id, t.id
            )),
        }
    }

    /// Adds to `moves` the secondary IPs of tagged interface pairs (f5_cloud_failover_nic_map).
    fn nic_map_moves(&mut self, t: &Instance, moves: &mut IpMoves) {
        for peer_nic in &self.snap.nic_map_interfaces {
            let Some(owner) = peer_nic.instance_id.as_deref() else {
                continue;
            };
            if owner == t.id {
                continue;
            }
            let Some(map) = peer_nic.tags.get(NIC_MAP_TAG) else {
                continue;
            };
            let Some(to) = t
                .network_interfaces
                .iter()
                .find(|n| n.tags.get(NIC_MAP_TAG) == Some(map))
            else {
                self.warnings.push(format!(
                    "{} has {NIC_MAP_TAG}={map} but target {} has no interface with that tag",
                    peer_nic.id, t.id
                ));
                continue;
            };
            if to.subnet_id != peer_nic.subnet_id {
                continue; // across AZs, Elastic IPs move instead
            }
            for ip in peer_nic.secondary_ips.iter().chain(&peer_nic.ipv6_ips) {
                let ips = moves
                    .entry((to.id.clone(), peer_nic.id.clone()))
                    .or_default();
                if !ips.contains(ip) {
                    ips.push(*ip);
                }
            }
        }
    }

    /// Refuses moves beyond the receiving interfaces' IPv4 limits (per instance type), where
    /// each delegated prefix counts as one address ("Each prefix that you assign to a network
    /// interface counts as one IP address": Amazon EC2 User Guide, "Assign prefixes to Amazon
    /// EC2 network interfaces").
    fn address_limits(&mut self, t: &Instance, moves: &IpMoves) -> BTreeSet<String> {
        let mut incoming: BTreeMap<&str, (BTreeSet<IpAddr>, BTreeSet<Cidr>)> = BTreeMap::new();
        for ((to, _), ips) in moves {
            incoming
                .entry(to.as_str())
                .or_default()
                .0
                .extend(ips.iter().filter(|i| i.is_ipv4()));
        }
        for op in &self.ops {
            if let Action::AssignPrefix {
                network_interface_id,
                prefix,
                ..
            } = &op.action
            {
                incoming
                    .entry(network_interface_id.as_str())
                    .or_default()
                    .1
                    .insert(*prefix);
            }
        }
        let Some(limit) = crate::engine::model::ipv4_per_interface(&t.instance_type) else {
            return BTreeSet::new();
        };
        let mut full = BTreeSet::new();
        for (to, (ips, prefixes)) in &incoming {
            let Some(n) = t.network_interfaces.iter().find(|n| n.id == *to) else {
                continue;
            };
            let after = 1
                + n.secondary_ips.len()
                + n.ipv4_prefixes.len()
                + ips.iter().filter(|i| !n.secondary_ips.contains(i)).count()
                + prefixes
                    .iter()
                    .filter(|p| !n.ipv4_prefixes.contains(p))
                    .count();
            if after > limit {
                self.skipped.push(format!(
                    "{to} of {} ({}) would hold {after} IPv4 addresses (each delegated prefix counts as one), more than its type allows per interface ({limit}): its addresses do not move; use a larger type or fewer addresses",
                    t.id, t.instance_type
                ));
                full.insert(to.to_string());
            }
        }
        full
    }

    /// The operations for each (to, from) pair of `moves`: one AssignPrivateIpAddresses for
    /// the IPv4 addresses (wave 0), and for IPv6 ones an UnassignIpv6Addresses (wave 0) then
    /// an AssignIpv6Addresses (wave 1). Returns where moved IPv4 addresses will be.
    fn ip_move_operations(&mut self, t: &Instance, moves: IpMoves) -> BTreeMap<IpAddr, String> {
        let mut moved = BTreeMap::new();
        for ((to, from), mut ips) in moves {
            ips.sort();
            let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = ips.into_iter().partition(IpAddr::is_ipv4);
            if !v6.is_empty() {
                let why = format!(
                    "IPv6 addresses {} are on {from}; the active unit {} ({}) takes them on {to} (same subnet; EC2 moves an IPv6 address by unassign, then assign)",
                    list(&v6),
                    t.id,
                    t.display_name()
                );
                self.ops.push(Operation {
                    id: format!("ipv6-release:{from}->{to}"),
                    wave: 0,
                    why: why.clone(),
                    action: Action::ReleaseIpv6 {
                        network_interface_id: from.clone(),
                        ips: v6.clone(),
                        to_network_interface_id: to.clone(),
                    },
                });
                self.ops.push(Operation {
                    id: format!("ipv6:{from}->{to}"),
                    wave: 1,
                    why,
                    action: Action::AssignIpv6 {
                        network_interface_id: to.clone(),
                        ips: v6,
                        from_network_interface_id: from.clone(),
                    },
                });
            }
            if v4.is_empty() {
                continue;
            }
            for ip in &v4 {
                moved.insert(*ip, to.clone());
            }
            let public_ips = self
                .snap
                .members
                .iter()
                .flat_map(|m| &m.network_interfaces)
                .chain(&self.snap.nic_map_interfaces)
                .find(|n| n.id == from)
                .map(|n| {
                    n.public_ips
                        .iter()
                        .filter(|(private, _)| v4.contains(private))
                        .map(|(k, v)| (*k, *v))
                        .collect()
                })
                .unwrap_or_default();
            self.ops.push(Operation {
                id: format!("ips:{from}->{to}"),
                wave: 0,
                why: format!(
                    "secondary IPs {} are on {from}; the active unit {} ({}) takes them on {to} (same subnet)",
                    list(&v4),
                    t.id,
                    t.display_name()
                ),
                action: Action::AssignPrivateIps {
                    network_interface_id: to,
                    from_network_interface_id: from,
                    ips: v4,
                    public_ips,
                },
            });
        }
        moved
    }

    /// Plans the move of a delegated IPv4 prefix to the target's interface in the same subnet:
    /// release (wave 0), then assign (wave 1), as CFE 2.2+ does.
    fn prefix(&mut self, t: &Instance, prefix: Cidr) {
        let holder = self.snap.members.iter().find_map(|m| {
            m.network_interfaces
                .iter()
                .find(|n| n.ipv4_prefixes.contains(&prefix))
                .map(|n| (m, n))
        });
        let Some((owner, from)) = holder else {
            return self.released_prefix(t, prefix);
        };
        if owner.id == t.id {
            self.in_place
                .push(format!("prefix {prefix} on {}", from.id));
            self.prefix_eips(t, prefix, &from.id, &from.id, 0);
            return;
        }
        let Some(to) = t
            .network_interfaces
            .iter()
            .find(|n| n.subnet_id == from.subnet_id)
        else {
            self.skipped.push(format!(
                "prefix {prefix} is in subnet {} but target {} has no interface there (prefixes move only within a subnet)",
                from.subnet_id, t.id
            ));
            return;
        };
        let why = format!(
            "prefix {prefix} is delegated to {} of {} ({}); the active unit {} ({}) takes it on {} (same subnet; EC2 moves a prefix by release, then assign)",
            from.id,
            owner.id,
            owner.display_name(),
            t.id,
            t.display_name(),
            to.id
        );
        self.ops.push(Operation {
            id: format!("prefix-release:{prefix}"),
            wave: 0,
            why: why.clone(),
            action: Action::ReleasePrefix {
                network_interface_id: from.id.clone(),
                prefix,
                to_network_interface_id: to.id.clone(),
            },
        });
        self.ops.push(Operation {
            id: format!("prefix:{prefix}"),
            wave: 1,
            why,
            action: Action::AssignPrefix {
                network_interface_id: to.id.clone(),
                prefix,
                from_network_interface_id: from.id.clone(),
            },
        });
        self.prefix_eips(t, prefix, &from.id, &to.id, 2);
    }

    /// A prefix no member holds: a run stopped between its release and its assign. The state
    /// file names the interface that released it; the target's interface in that subnet takes
    /// it, and its EIPs follow. Without that record, the item is skipped with the fix.
    fn released_prefix(&mut self, t: &Instance, prefix: Cidr) {
        let released = self
            .snap
            .released_prefixes
            .iter()
            .find(|d| d.prefix == prefix)
            .and_then(|d| {
                self.snap
                    .members
                    .iter()
                    .flat_map(|m| &m.network_interfaces)
                    .find(|n| n.id == d.network_interface_id)
            });
        let to = released.and_then(|from| {
            t.network_interfaces
                .iter()
                .find(|n| n.subnet_id == from.subnet_id)
                .map(|to| (from, to))
        });
        let Some((from, to)) = to else {
            let detached: Vec<String> = self
                .snap
                .prefix_eips
                .iter()
                .filter(|p| prefix.contains(p.address) && p.eip.network_interface_id.is_none())
                .map(|p| format!("{} (→ {})", p.eip.public_ip, p.address))
                .collect();
            let waiting = if detached.is_empty() {
                String::new()
            } else {
                format!(
                    "; Elastic IPs {} were detached when it was released: the next run puts them back once it is assigned",
                    detached.join(", ")
                )
            };
            self.skipped.push(format!(
                "prefix {prefix} (networkInterfaceAddress) is not delegated to any member's interface, and no record says which subnet it was released from (assign it to the active unit's interface in its subnet: aws ec2 assign-private-ip-addresses --ipv4-prefixes {prefix} …){waiting}"
            ));
            return;
        };
        self.ops.push(Operation {
            id: format!("prefix:{prefix}"),
            wave: 0,
            why: format!(
                "prefix {prefix} is delegated to no interface: a stopped run released it from {} (state file); the active unit {} ({}) takes it on {} (same subnet)",
                from.id,
                t.id,
                t.display_name(),
                to.id
            ),
            action: Action::AssignPrefix {
                network_interface_id: to.id.clone(),
                prefix,
                from_network_interface_id: from.id.clone(),
            },
        });
        self.prefix_eips(t, prefix, &from.id, &to.id, 1);
    }

    /// The EIPs on addresses of `prefix` follow it to the same address on `to` (CFE 2.2+), in
    /// `wave` (2: after the assign of wave 1; the release disassociates them). Those on the
    /// interface holding the prefix, or left unassociated by an unfinished run, move; an EIP on
    /// the same address of any other interface (another VPC's plan) is not this prefix's.
    fn prefix_eips(&mut self, t: &Instance, prefix: Cidr, from: &str, to: &str, wave: u8) {
        for pe in &self.snap.prefix_eips {
            let e = &pe.eip;
            if !prefix.contains(pe.address)
                || self
                    .snap
                    .elastic_ips
                    .iter()
                    .any(|se| se.eip.allocation_id == e.allocation_id)
            {
                continue;
            }
            let on = e.network_interface_id.as_deref();
            let what = format!("Elastic IP {} → {} on {to}", e.public_ip, pe.address);
            if on == Some(to) && e.private_ip == Some(pe.address) {
                self.in_place.push(what);
                continue;
            }
            if !(on.is_none() || on == Some(from)) {
                continue;
            }
            let scoping = self.decl.addresses().map(|a| &a.scoping_tags);
            if let Some(tags) = scoping.filter(|t| !matches(&e.tags, t)) {
                let wanted: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.warnings.push(format!(
                    "Elastic IP {} on {} (prefix {prefix}) lacks the scoping tags ({}): the stack's IAM policy lets the function move only tagged EIPs, and releasing the prefix detaches it; tag it: aws ec2 create-tags --resources {} --tags {}",
                    e.public_ip,
                    pe.address,
                    wanted.join(", "),
                    e.allocation_id,
                    tags.iter().map(|(k, v)| format!("Key={k},Value={v}")).collect::<Vec<_>>().join(" ")
                ));
            }
            let was = match on {
                Some(n) => format!("{} on {n}", pe.address),
                None => format!(
                    "nothing (unassociated; an unfinished run put it on {})",
                    pe.address
                ),
            };
            let why = format!(
                "Elastic IP {} maps to {was}, an address of prefix {prefix}; the active unit {} ({}) holds the prefix on {to}",
                e.public_ip,
                t.id,
                t.display_name()
            );
            self.ops.push(associate(e, to, pe.address, wave, why));
        }
    }

    fn elastic_ips(&mut self, t: &Instance, moved: &BTreeMap<IpAddr, String>) {
        for ip in &self.snap.missing_elastic_ips {
            self.skipped.push(format!(
                "Elastic IP {ip} (addressGroupDefinitions) does not exist or is not visible"
            ));
        }
        for ip in &self.snap.eips_without_vips {
            self.warnings.push(format!(
                "Elastic IP {ip} carries the scoping tags but no f5_cloud_failover_vips (or legacy VIPS) tag: left alone"
            ));
        }
        let listed = names_its_eips(self.decl);
        for se in &self.snap.elastic_ips {
            if listed && self.in_use_elsewhere(se) {
                continue;
            }
            if let Some((eni, vip, wave)) = self.vip_on_target(t, se, moved, listed) {
                self.elastic_ip(t, &se.eip, &eni, vip, wave);
            }
        }
    }

    /// A listed EIP on an address outside its vipAddresses is in use elsewhere: left alone
    /// with a warning, as CFE does (cloud.js:624-626).
    fn in_use_elsewhere(&mut self, se: &ScopedEip) -> bool {
        let e = &se.eip;
        let on = match (e.private_ip, e.network_interface_id.as_deref()) {
            (Some(ip), eni) if !se.vips.contains(&ip) => {
                eni.map_or(ip.to_string(), |n| format!("{ip} ({n})"))
            }
            // An adapter that cannot tell the private IP: an interface of no member.
            (None, Some(n)) if self.snap.owner_of_interface(n).is_none() => n.to_string(),
            _ => return false,
        };
        self.warnings.push(format!(
            "Elastic IP {} is on {on}, none of its vipAddresses ({}): left alone, as CFE does (it is in use elsewhere); if it belongs to this pair, add that address to vipAddresses or move the Elastic IP by hand",
            e.public_ip,
            list(&se.vips)
        ));
        true
    }

    /// Where `se`'s VIP will be on the target (ENI, VIP, wave): now, or after a wave-0 move;
    /// else the item is skipped with the reason. Selected by tags, a VIP is a secondary IP, as
    /// CFE reads the tag (its user guide: EIPs on primary IPs are the units' own and are not
    /// remapped); listed, any address of the target.
    fn vip_on_target(
        &mut self,
        t: &Instance,
        se: &ScopedEip,
        moved: &BTreeMap<IpAddr, String>,
        listed: bool,
    ) -> Option<(String, IpAddr, u8)> {
        let e = &se.eip;
        let found = se.vips.iter().find_map(|vip| {
            t.interface_with(*vip)
                .filter(|n| listed || n.secondary_ips.contains(vip))
                .map(|n| (n.id.clone(), *vip, 0u8))
                .or_else(|| moved.get(vip).map(|eni| (eni.clone(), *vip, 1u8)))
        });
        if found.is_some() {
            return found;
        }
        let primary = se
            .vips
            .iter()
            .find_map(|v| t.interface_with(*v).map(|n| (n, v)));
        self.skipped.push(match primary {
            Some((n, vip)) => format!(
                "Elastic IP {}: its tag names {vip}, the primary IP of {} on target {} ({}); selected by tags, an Elastic IP moves to secondary IPs only, as under CFE (a primary IP is the unit's own); to move it onto primary IPs, list it in addressGroupDefinitions ({{\"type\": \"elasticIpAddress\", \"scopingAddress\": \"{}\", \"vipAddresses\": [\"{}\"]}})",
                e.public_ip,
                n.id,
                t.id,
                t.display_name(),
                e.public_ip,
                se.vips
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\", \"")
            ),
            None => format!(
                "Elastic IP {}: none of its VIPs ({}) is on target {} ({}); refusing to move it to a unit that cannot answer (CFE #118)",
                e.public_ip,
                list(&se.vips),
                t.id,
                t.display_name()
            ),
        });
        None
    }

    /// Plans EIP `e` onto `vip` of `eni` on target `t` (in place when it is there already).
    fn elastic_ip(&mut self, t: &Instance, e: &ElasticIp, eni: &str, vip: IpAddr, wave: u8) {
        // EC2's AssociateAddress (AllowReassociation) detaches an Elastic IP already on that
        // private IP: never one this declaration does not manage, silently.
        let knocked = self
            .snap
            .holder_of(vip)
            .and_then(|(_, n)| n.public_ips.get(&vip))
            .filter(|p| **p != e.public_ip)
            .filter(|p| !self.snap.elastic_ips.iter().any(|x| x.eip.public_ip == **p));
        if let Some(other) = knocked {
            self.skipped.push(format!(
                "Elastic IP {}: VIP {vip} already holds Elastic IP {other}, which this declaration does not manage; associating {} there would detach {other} (EC2 disassociates the address already on a private IP): move or release {other} first, or add it to the declaration",
                e.public_ip, e.public_ip
            ));
            return;
        }
        let on_eni = e.network_interface_id.as_deref() == Some(eni);
        // An adapter that cannot tell the private IP says so (None): judged by interface.
        let same_ip = e.private_ip.is_none_or(|ip| ip == vip);
        let what = format!("Elastic IP {} → {vip} on {eni}", e.public_ip);
        if on_eni && same_ip {
            self.in_place.push(what);
            return;
        }
        let from = match (&e.private_ip, &e.network_interface_id) {
            (Some(ip), Some(n)) => format!("{ip} on {n}"),
            (None, Some(n)) => format!("{n} (its private IP not reported)"),
            _ => "nothing (unassociated)".to_string(),
        };
        let why = format!(
            "Elastic IP {} maps to {from}; the active unit {} ({}) holds VIP {vip} on {eni}",
            e.public_ip,
            t.id,
            t.display_name()
        );
        self.ops.push(associate(e, eni, vip, wave, why));
    }
}

/// Addresses as a comma-separated list.
fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why EC2 would refuse to create a route to `range` in `table`, if it would (Amazon VPC User
/// Guide, "Configure route tables": a route more specific than the VPC's local route must match
/// "the entire IPv4 or IPv6 CIDR block of a subnet", and 169.254.168.0/22 and fd00:ec2::/32
/// cannot be routed). The planner does not know subnets' blocks, so a range inside the VPC is
/// left to the operator.
fn unroutable(table: &RouteTable, range: Cidr) -> Option<String> {
    let reserved: [Cidr; 2] = [
        "169.254.168.0/22".parse().expect("cidr"),
        "fd00:ec2::/32".parse().expect("cidr"),
    ];
    if let Some(r) = reserved
        .iter()
        .find(|r| r.contains(range.addr()) || range.contains(r.addr()))
    {
        return Some(format!(
            "{range} overlaps {r}, which AWS reserves: EC2 refuses a route to it"
        ));
    }
    let local = table.routes.iter().find(|x| {
        x.local
            && x.destination.is_ipv6() == range.is_ipv6()
            && x.destination.contains(range.addr())
            && range.prefix() > x.destination.prefix()
    })?;
    Some(format!(
        "{range} lies inside the VPC's range {} : EC2 creates such a route only for the whole CIDR of one of its subnets, which is not created automatically; if it is a subnet's block, create it once by hand (aws ec2 create-route --route-table-id {} --destination-cidr-block {range} --network-interface-id <the active unit's ENI>)",
        local.destination, table.id
    ))
}

/// The operation that puts EIP `e` on `private_ip` of interface `eni` (AssociateAddress).
fn associate(e: &ElasticIp, eni: &str, private_ip: IpAddr, wave: u8, why: String) -> Operation {
    Operation {
        id: format!("eip:{}", e.public_ip),
        wave,
        why,
        action: Action::AssociateAddress {
            allocation_id: e.allocation_id.clone(),
            public_ip: e.public_ip,
            network_interface_id: eni.to_string(),
            private_ip,
            current_association_id: e.association_id.clone(),
            current_network_interface_id: e.network_interface_id.clone(),
            current_private_ip: e.private_ip,
        },
    }
}

/// Picks the target's interface for a route from the next-hop items, or says why none fits.
fn next_hop_on<'t>(
    t: &'t Instance,
    items: &[IpAddr],
    range: Cidr,
) -> Result<(&'t NetworkInterface, IpAddr), String> {
    let mut secondary = None;
    for &item in items {
        let Some(n) = t.interface_with(item) else {
            continue;
        };
        // An IPv6 item names the interface for IPv6 ranges only.
        if n.is_next_hop(item) && (item.is_ipv4() || range.is_ipv6()) {
            return Ok((n, item));
        }
        if !n.is_next_hop(item) {
            secondary.get_or_insert((n, item));
        }
    }
    let list: Vec<String> = items.iter().map(ToString::to_string).collect();
    Err(match secondary {
        Some((n, item)) => format!(
            "next hop {item} is a secondary IP of {} on {} ({}); a route's next hop must be the interface's primary private IP ({}). Declare {} instead",
            n.id,
            t.id,
            t.display_name(),
            n.primary_ip,
            n.primary_ip
        ),
        None => format!(
            "none of the next hops ({}) is an address of target {} ({})",
            list.join(", "),
            t.id,
            t.display_name()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::discovery::discover;
    use crate::lab::{tags, Topology, SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_RTB, SEED_TAG};
    use crate::memory::MemoryCloud;
    use crate::testing::plan::{cidr, decl, patched, plan_on, skipped, AFTER};
    use crate::testing::{same_az, same_az_with_prefix};
    use serde_json::{json, Value};

    const SNAT_NONE: &str = include_str!("../../../../../examples/seed-article/cfe-snat-none.json");

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
    async fn vip_as_next_hop_is_refused_with_the_primary_ip() {
        let cloud = MemoryCloud::seed();
        let r = skipped(plan_on(&cloud, &decl(SNAT_NONE), SEED_B).await.unwrap());
        assert_eq!(r.reasons.len(), 1, "{r}");
        assert!(
            r.reasons[0].contains("next hop 10.0.4.101 is a secondary IP of eni-04bec0335a47b26c3"),
            "{r}"
        );
        assert!(
            r.reasons[0].contains("must be the interface's primary private IP (10.0.4.11)"),
            "{r}"
        );
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

    #[tokio::test]
    async fn eip_whose_vip_is_not_on_the_target_is_refused() {
        // CFE #118: an EIP must never go to a unit that does not hold one of its VIPs.
        let mut topo = Topology::seed();
        topo.elastic_ips[0].tags.insert(
            "f5_cloud_failover_vips".into(),
            "10.0.0.101,10.0.4.102".into(),
        );
        let cloud = MemoryCloud::from_topology(&topo);
        let r = skipped(plan_on(&cloud, &decl(AFTER), SEED_B).await.unwrap());
        assert!(
            r.reasons[0].contains("none of its VIPs (10.0.0.101, 10.0.4.102) is on target"),
            "{r}"
        );
    }

    #[tokio::test]
    async fn routes_match_by_exact_cidr_and_untagged_tables_are_untouched() {
        let mut topo = Topology::seed();
        // A second route in the seed table that merely starts like the managed one, and a
        // second, untagged table with the same default route.
        topo.route_tables[0]
            .routes
            .push((cidr("0.0.0.0/1"), SEED_A_EXT.into()));
        let mut other = topo.route_tables[0].clone();
        other.id = "rtb-0aaaaaaaaaaaaaaaa".into();
        other.tags.clear();
        topo.route_tables.push(other);
        let cloud = MemoryCloud::from_topology(&topo);
        let d = patched(|v| {
            v["failoverRoutes"] = json!({
                "enabled": true,
                "scopingTags": {SEED_TAG.0: SEED_TAG.1},
                "scopingAddressRanges": [{"range": "0.0.0.0/0"}],
                "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
            })
        });
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        let routes: Vec<&str> = p
            .operations
            .iter()
            .filter(|o| o.id.starts_with("route:"))
            .map(|o| o.id.as_str())
            .collect();
        assert_eq!(routes, vec!["route:rtb-060adeaa8fe5b2bbb:0.0.0.0/0"]);
    }

    #[tokio::test]
    async fn route_tag_discovery_and_ipv6_routes() {
        let mut topo = Topology::seed();
        topo.route_tables[0]
            .tags
            .insert("f5_self_ips".into(), "10.0.0.11,10.0.4.11".into());
        topo.route_tables[0]
            .routes
            .push((cidr("::/0"), SEED_A_EXT.into()));
        let cloud = MemoryCloud::from_topology(&topo);
        let d = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"] =
                json!([{"range": "0.0.0.0/0"}, {"range": "::/0"}]);
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"] =
                json!({"discoveryType": "routeTag"});
        });
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        let routes: Vec<&str> = p
            .operations
            .iter()
            .filter(|o| o.id.starts_with("route:"))
            .map(|o| o.id.as_str())
            .collect();
        assert_eq!(
            routes,
            vec![
                "route:rtb-060adeaa8fe5b2bbb:0.0.0.0/0",
                "route:rtb-060adeaa8fe5b2bbb:::/0"
            ]
        );
        // Without the tag, routeTag discovery refuses.
        cloud.untag_route_table(SEED_RTB, "f5_self_ips");
        let r = skipped(plan_on(&cloud, &d, SEED_B).await.unwrap());
        assert!(r.reasons[0].contains("no usable f5_self_ips tag"), "{r}");
    }

    #[tokio::test]
    async fn missing_scoping_tag_on_the_table_is_a_warning_not_silence() {
        let cloud = MemoryCloud::seed();
        cloud.untag_route_table(SEED_RTB, SEED_TAG.0);
        let d = patched(|v| {
            v["failoverRoutes"] = json!({
                "scopingTags": {SEED_TAG.0: SEED_TAG.1},
                "scopingAddressRanges": [{"range": "0.0.0.0/0"}],
                "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
            })
        });
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("no route table carries the scoping tags")),
            "{:?}",
            p.warnings
        );
        assert!(p.operations.iter().all(|o| !o.id.starts_with("route:")));
    }

    #[tokio::test]
    async fn source_dest_check_on_is_warned() {
        let cloud = MemoryCloud::seed();
        cloud.set_source_dest_check(SEED_B_EXT, true);
        let p = plan_on(&cloud, &decl(AFTER), SEED_B).await.unwrap();
        assert!(p
            .warnings
            .iter()
            .any(|w| w.contains("source/destination check is on for eni-04bec0335a47b26c3")));
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

    /// A range equal to the VPC CIDR is the local route. AWS lets its target be
    /// replaced (so does the in-memory cloud now); the planner refuses it.
    #[tokio::test]
    async fn the_local_route_is_never_taken_over() {
        let cloud = MemoryCloud::seed();
        let d = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"] =
                json!([{"range": "0.0.0.0/0"}, {"range": "10.0.0.0/16"}]);
        });
        let r = skipped(plan_on(&cloud, &d, SEED_B).await.unwrap());
        assert!(
            r.reasons
                .iter()
                .any(|x| x.contains("range 10.0.0.0/16 is the VPC's local route")),
            "{r}"
        );
        // The cloud itself allows it, as AWS does.
        cloud
            .replace_route(SEED_RTB, cidr("10.0.0.0/16"), SEED_B_EXT)
            .await
            .unwrap();
        cloud.settle();
        let r = skipped(plan_on(&cloud, &d, SEED_A).await.unwrap());
        assert!(r.reasons.iter().any(|x| x.contains("local route")), "{r}");
    }

    /// A table selected by two route groups was managed by the first only.
    #[tokio::test]
    async fn a_table_in_two_route_groups_is_refused() {
        let cloud = MemoryCloud::seed();
        let d = patched(|v| {
            let g0 = v["failoverRoutes"]["routeGroupDefinitions"][0].clone();
            let mut g1 = g0.clone();
            g1.as_object_mut().unwrap().remove("scopingName");
            g1["scopingTags"] = json!({SEED_TAG.0: SEED_TAG.1});
            g1["scopingAddressRanges"] = json!([{"range": "192.168.0.0/16"}]);
            v["failoverRoutes"]["routeGroupDefinitions"] = json!([g0, g1]);
        });
        let r = skipped(plan_on(&cloud, &d, SEED_B).await.unwrap());
        assert!(
            r.reasons.iter().any(|x| x.contains(&format!(
                "route table {SEED_RTB} is selected by route groups 0 and 1"
            ))),
            "{r}"
        );
    }

    /// A declared route that points at a gateway is not taken over silently.
    #[tokio::test]
    async fn a_route_to_a_gateway_is_refused_unless_opted_in() {
        let cloud = MemoryCloud::seed();
        cloud.add_gateway_route(SEED_RTB, cidr("0.0.0.0/0"), "igw-0123456789abcdef0");
        let r = skipped(plan_on(&cloud, &decl(AFTER), SEED_B).await.unwrap());
        assert!(
            r.reasons
                .iter()
                .any(|x| x.contains("points at igw-0123456789abcdef0, not at an appliance")),
            "{r}"
        );
        let d = patched(|v| v["serverless"] = json!({"takeOverGatewayRoutes": true}));
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        assert!(p.operations.iter().any(|o| o.id.starts_with("route:")));
        assert!(
            p.warnings.iter().any(|w| w.contains("taken over")),
            "{:?}",
            p.warnings
        );
    }

    /// CFE v2.4.0 (awsProviderTests.js, "should validate same-net case", commit 21356468):
    /// with addressGroupDefinitions only the listed addresses move, paired by subnet; an
    /// unlisted secondary of the same interface stays. Where the target has two interfaces in
    /// that subnet, the one with the holder's nic_map value takes it (there used to be two
    /// conflicting moves in one plan).
    #[tokio::test]
    async fn with_address_definitions_only_the_listed_addresses_move() {
        let mut topo = same_az();
        let mut extra = topo.instances[1].interfaces[1].clone();
        extra.id = "eni-0eeeeeeeeeeeeeeee".into();
        extra.primary = "10.0.0.13".parse().unwrap();
        extra.tags = tags([SEED_TAG]);
        topo.instances[1].interfaces.insert(1, extra);
        topo.instances[0].interfaces[1]
            .secondary
            .push("10.0.0.102".parse().unwrap());
        let cloud = MemoryCloud::from_topology(&topo);
        let d = patched(|v| {
            v["failoverAddresses"]["addressGroupDefinitions"] =
                json!([{"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.101"}]);
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
        });
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        let moves: Vec<&Action> = p
            .operations
            .iter()
            .map(|o| &o.action)
            .filter(|a| matches!(a, Action::AssignPrivateIps { .. }))
            .collect();
        assert_eq!(moves.len(), 1, "{moves:?}");
        let Action::AssignPrivateIps {
            network_interface_id,
            ips,
            ..
        } = moves[0]
        else {
            unreachable!()
        };
        assert_eq!(network_interface_id, SEED_B_EXT);
        assert_eq!(ips, &["10.0.0.101".parse::<IpAddr>().unwrap()]);
    }

    /// The per-interface IPv4 limit of the target's type, in the planner and in the
    /// in-memory cloud (AWS: PrivateIpAddressLimitExceeded).
    #[tokio::test]
    async fn the_targets_address_limit_is_checked() {
        let mut topo = same_az();
        topo.instances[0].interfaces[1]
            .secondary
            .push("10.0.0.102".parse().unwrap());
        topo.instances[1].instance_type = "t3.micro".into();
        let cloud = MemoryCloud::from_topology(&topo);
        let d = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
        });
        let r = skipped(plan_on(&cloud, &d, SEED_B).await.unwrap());
        assert!(
            r.reasons
                .iter()
                .any(|x| x.contains("would hold 3 IPv4 addresses") && x.contains("(2)")),
            "{r}"
        );
        let e = cloud
            .assign_private_ips(
                SEED_B_EXT,
                &["10.0.0.101".parse().unwrap(), "10.0.0.102".parse().unwrap()],
                true,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code.as_deref(), Some("PrivateIpAddressLimitExceeded"));
    }

    #[tokio::test]
    async fn same_az_moves_secondary_ips_then_the_eip() {
        let cloud = MemoryCloud::from_topology(&same_az());
        let d = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
        });
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        let ids: Vec<(u8, &str)> = p
            .operations
            .iter()
            .map(|o| (o.wave, o.id.as_str()))
            .collect();
        assert_eq!(
            ids,
            vec![
                (0, "ips:eni-0603a4992d0579540->eni-04bec0335a47b26c3"),
                (0, "route:rtb-060adeaa8fe5b2bbb:0.0.0.0/0"),
                (1, "eip:98.80.114.203"),
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_route_is_created_only_when_its_group_opts_in() {
        use crate::engine::execute::NoFence;
        use crate::engine::execute::{execute, ExecOptions};
        // GIVEN the seed table without 172.16.9.0/24, declared in route group 0
        let cloud = MemoryCloud::seed();
        let declared = |opt_in: Value| {
            patched(|v| {
                v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"] =
                    json!([{"range": "0.0.0.0/0"}, {"range": "172.16.9.0/24"}]);
                v["serverless"] = json!({"createMissingRoutes": opt_in});
            })
        };
        // WHEN the group does not opt in, THEN the plan only warns (CFE's behaviour)
        let p = plan_on(&cloud, &declared(json!(false)), SEED_B)
            .await
            .unwrap();
        assert!(!p
            .operations
            .iter()
            .any(|o| matches!(o.action, Action::CreateRoute { .. })));
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("route 172.16.9.0/24 is not in route table")),
            "{:?}",
            p.warnings
        );
        // WHEN it opts in, THEN the route is planned, created to the active unit's ENI, verified
        let d = declared(json!([0]));
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        let create = p
            .operations
            .iter()
            .find(|o| o.id == format!("route:{SEED_RTB}:172.16.9.0/24"))
            .expect("planned");
        assert_eq!(
            create.action,
            Action::CreateRoute {
                route_table_id: SEED_RTB.into(),
                destination: cidr("172.16.9.0/24"),
                network_interface_id: SEED_B_EXT.into(),
                next_hop_address: "10.0.4.11".parse().unwrap(),
            }
        );
        let opts = ExecOptions {
            max_concurrency: 4,
            pacing: Default::default(),
            deadline: None,
            budget: None,
            verify_window: std::time::Duration::from_secs(
                crate::engine::declaration::DEFAULT_VERIFY_SECONDS,
            ),
        };
        let out = execute(&cloud, &p, &opts, &NoFence).await;
        assert!(out.iter().all(|o| o.verified), "{out:?}");
        assert!(cloud.calls().iter().any(|c| c == "CreateRoute"));
        // and a second run finds it in place (replaced, never created twice)
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        assert!(plan(&d, &snap, SEED_B).unwrap().operations.is_empty());
        // The state file records it with the routes, in CFE's shape.
        let req = crate::engine::request::RunRequest::new(
            crate::engine::request::TargetSpec::Instance(SEED_B.into()),
            crate::engine::request::Mode::Execute,
            "test",
        );
        let state = crate::engine::state::cfe::state_file(
            &crate::engine::state::RunRecord::new("r1".into(), &d, &req).with_plan(&p),
        );
        let routes = state["failoverOperations"]["routes"]["operations"]
            .as_array()
            .unwrap();
        assert!(
            routes
                .iter()
                .any(|r| r["routeAddress"] == "172.16.9.0/24"
                    && r["networkInterfaceId"] == SEED_B_EXT)
        );
    }

    #[test]
    fn create_missing_routes_names_route_groups() {
        let e = Declaration::from_value(&{
            let mut v: Value = serde_json::from_str(AFTER).unwrap();
            v["serverless"] = json!({"createMissingRoutes": [1]});
            v
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "serverless.createMissingRoutes[0]: expected the index of a route group (0 to 0), got a number (1)"
        );
    }

    /// IPv6 secondary addresses move with AssignIpv6Addresses after the holder's
    /// UnassignIpv6Addresses (EC2 API Reference; AssignPrivateIpAddresses takes IPv4 only, and
    /// an IPv6 address in it would fail the call and the IPv4 VIPs with it), explicitly listed
    /// or on nic_map-paired interfaces (CFE's functional test moves a secondary IPv6 address).
    #[tokio::test]
    async fn ipv6_secondaries_move_with_their_own_calls() {
        use crate::engine::failover::{run, RunOutcome};
        use crate::engine::ports::Ec2Describe;
        use crate::engine::request::{Mode, RunRequest, TargetSpec};
        let v6: IpAddr = "2600:1f18:1:1::101".parse().unwrap();
        let listed = patched(|v| {
            v["failoverAddresses"]["addressGroupDefinitions"] = json!([
                {"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.101"},
                {"type": "networkInterfaceAddress", "scopingAddress": v6.to_string()}
            ]);
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
        });
        let nic_map = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
        });
        for d in [listed, nic_map] {
            let cloud = MemoryCloud::from_topology(&same_az());
            cloud.add_ipv6(SEED_A_EXT, &[v6]);
            let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
            let ids: Vec<(u8, &str, &str)> = p
                .operations
                .iter()
                .map(|o| (o.wave, o.id.as_str(), o.action.mutation().operation()))
                .collect();
            assert!(
                ids.contains(&(
                    0,
                    "ipv6-release:eni-0603a4992d0579540->eni-04bec0335a47b26c3",
                    "UnassignIpv6Addresses"
                )),
                "{ids:?}"
            );
            assert!(
                ids.contains(&(
                    1,
                    "ipv6:eni-0603a4992d0579540->eni-04bec0335a47b26c3",
                    "AssignIpv6Addresses"
                )),
                "{ids:?}"
            );
            let Some(Action::AssignPrivateIps { ips, .. }) = p
                .operations
                .iter()
                .map(|o| &o.action)
                .find(|a| matches!(a, Action::AssignPrivateIps { .. }))
            else {
                panic!("{ids:?}")
            };
            assert!(ips.iter().all(IpAddr::is_ipv4), "{ips:?}");
            let mut r = RunRequest::new(TargetSpec::Instance(SEED_B.into()), Mode::Execute, "t");
            r.force = true;
            let Ok(RunOutcome::Completed(done)) = run(&cloud, &cloud, &d, r).await else {
                panic!("run failed")
            };
            assert_eq!(
                done.record.task_state,
                crate::engine::state::TaskState::Succeeded,
                "{}",
                done.record.message
            );
            cloud.settle();
            let b = cloud
                .describe_network_interfaces(&[crate::engine::model::Filter::new(
                    "network-interface-id",
                    [SEED_B_EXT],
                )])
                .await
                .unwrap();
            assert_eq!(b[0].ipv6_ips, vec![v6]);
            assert!(b[0].secondary_ips.contains(&"10.0.0.101".parse().unwrap()));
        }
    }

    /// AssociateAddress onto a private IP that holds another Elastic IP detaches
    /// that one on AWS (EC2 API Reference, AssociateAddress): one the declaration does not
    /// manage is never knocked off silently; the EIP is left out with the reason.
    #[tokio::test]
    async fn an_unmanaged_eip_on_the_vip_is_never_knocked_off() {
        let mut topo = Topology::seed();
        topo.elastic_ips.push(crate::lab::EipSpec {
            allocation_id: "eipalloc-0other".into(),
            public_ip: "203.0.113.9".parse().unwrap(),
            tags: crate::engine::declaration::Tags::new(),
            associated_with: Some((SEED_B_EXT.into(), "10.0.4.101".parse().unwrap())),
        });
        let cloud = MemoryCloud::from_topology(&topo);
        let r = skipped(plan_on(&cloud, &decl(AFTER), SEED_B).await.unwrap());
        assert!(
            r.reasons[0].contains("VIP 10.0.4.101 already holds Elastic IP 203.0.113.9"),
            "{r}"
        );
    }

    /// createMissingRoutes never plans a route EC2 refuses: one inside the VPC's
    /// range that the planner cannot show to be a whole subnet's block, or a reserved range
    /// (Amazon VPC User Guide, "Configure route tables").
    #[tokio::test]
    async fn create_missing_routes_skips_what_ec2_refuses() {
        let cloud = MemoryCloud::seed();
        let d = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"] = json!([
                {"range": "0.0.0.0/0"}, {"range": "10.0.3.0/25"}, {"range": "169.254.168.0/22"}
            ]);
            v["serverless"] = json!({"createMissingRoutes": true});
        });
        let r = skipped(plan_on(&cloud, &d, SEED_B).await.unwrap());
        assert_eq!(r.reasons.len(), 2, "{r}");
        assert!(
            r.reasons[0].contains("inside the VPC's range 10.0.0.0/16"),
            "{r}"
        );
        assert!(r.reasons[1].contains("which AWS reserves"), "{r}");
    }

    /// CFE 2.2+'s form for the same-AZ pair: the prefix 10.0.0.48/28 as a
    /// `networkInterfaceAddress`, next hops the units' primary IPs; then `more`.
    fn prefix_declaration(more: impl FnOnce(&mut Value)) -> Declaration {
        patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
            v["failoverAddresses"]["addressGroupDefinitions"] =
                json!([{"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.48/28"}]);
            more(v);
        })
    }

    #[tokio::test]
    async fn an_ipv4_prefix_moves_by_release_then_assign_and_is_logged_as_cfe_does() {
        use crate::engine::execute::NoFence;
        use crate::engine::execute::{execute, ExecOptions};
        use crate::engine::request::Mode;
        use crate::engine::state::{cfe::state_file as cfe_state, RunRecord};
        // GIVEN CFE 2.2+'s declaration form: a prefix as networkInterfaceAddress.scopingAddress
        let cloud = MemoryCloud::from_topology(&same_az_with_prefix());
        let d = prefix_declaration(|_| ());
        // WHEN B becomes active
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        let ids: Vec<(u8, &str)> = p
            .operations
            .iter()
            .map(|o| (o.wave, o.id.as_str()))
            .filter(|(_, id)| id.starts_with("prefix"))
            .collect();
        // THEN A releases it first, B takes it in the next round
        assert_eq!(
            ids,
            [
                (0, "prefix-release:10.0.0.48/28"),
                (1, "prefix:10.0.0.48/28")
            ]
        );
        let opts = ExecOptions {
            max_concurrency: 4,
            pacing: Default::default(),
            deadline: None,
            budget: None,
            verify_window: std::time::Duration::from_secs(
                crate::engine::declaration::DEFAULT_VERIFY_SECONDS,
            ),
        };
        let out = execute(&cloud, &p, &opts, &NoFence).await;
        assert!(out.iter().all(|o| o.verified), "{out:?}");
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        let b = snap.member(SEED_B).unwrap();
        assert!(b
            .network_interfaces
            .iter()
            .any(|n| n.id == SEED_B_EXT && n.ipv4_prefixes == [cidr("10.0.0.48/28")]));
        assert!(plan(&d, &snap, SEED_B).unwrap().operations.is_empty());
        // and the state file has CFE 2.2+'s prefix entries
        let req = crate::engine::request::RunRequest::new(
            crate::engine::request::TargetSpec::Instance(SEED_B.into()),
            Mode::Execute,
            "test",
        );
        let state = cfe_state(&RunRecord::new("r1".into(), &d, &req).with_plan(&p));
        let entry = json!([{"address": "10.0.0.48/28", "ipVersion": 4, "prefix": true}]);
        let ifs = &state["failoverOperations"]["addresses"]["interfaces"];
        assert!(ifs["disassociate"]
            .as_array()
            .unwrap()
            .contains(&json!({"networkInterfaceId": SEED_A_EXT, "addresses": entry})));
        assert!(ifs["associate"]
            .as_array()
            .unwrap()
            .contains(&json!({"networkInterfaceId": SEED_B_EXT, "addresses": entry})));
        // Failing back moves it again; a prefix on no member is refused with the fix.
        assert_eq!(
            plan(&d, &snap, SEED_A)
                .unwrap()
                .operations
                .iter()
                .filter(|o| o.id.starts_with("prefix"))
                .count(),
            2
        );
        let d2 = patched(|v| {
            v["failoverAddresses"]["addressGroupDefinitions"] =
                json!([{"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.64/28"}]);
        });
        let r = plan_on(&cloud, &d2, SEED_B).await.unwrap_err();
        assert!(
            r.reasons[0]
                .starts_with("prefix 10.0.0.64/28 (networkInterfaceAddress) is not delegated"),
            "{r}"
        );
    }

    #[tokio::test]
    async fn an_eip_on_a_prefix_address_follows_the_prefix_and_an_interrupted_move_is_finished() {
        use crate::engine::error::ErrorKind;
        use crate::engine::failover::{run, RunOutcome};
        use crate::engine::request::Mode;
        use crate::engine::request::{RunRequest, TargetSpec};
        use crate::engine::state::TaskState;
        use crate::lab::EipSpec;
        use crate::memory::FaultTiming;
        // GIVEN the prefix on A, and an EIP on its address 10.0.0.50 (no VIP tags: CFE 2.2+
        // finds it by its private address)
        let mut topo = same_az_with_prefix();
        let eip: IpAddr = "203.0.113.50".parse().unwrap();
        let address: IpAddr = "10.0.0.50".parse().unwrap();
        topo.elastic_ips.push(EipSpec {
            allocation_id: "eipalloc-0prefix".into(),
            public_ip: eip,
            tags: tags([SEED_TAG]),
            associated_with: Some((SEED_A_EXT.into(), address)),
        });
        let cloud = MemoryCloud::from_topology(&topo);
        let d = prefix_declaration(|_| ());
        // WHEN B becomes active
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        // THEN the EIP goes to the same address on B, in the round after B holds the prefix
        let op = p
            .operations
            .iter()
            .find(|o| o.id == format!("eip:{eip}"))
            .expect("the EIP follows the prefix");
        assert_eq!(op.wave, 2);
        match &op.action {
            Action::AssociateAddress {
                network_interface_id,
                private_ip,
                ..
            } => assert_eq!(
                (network_interface_id.as_str(), *private_ip),
                (SEED_B_EXT, address)
            ),
            other => panic!("{other:?}"),
        }
        // AND an EIP on the same address of an interface that does not hold the prefix (another
        // VPC with the same addressing plan) is not this prefix's
        let mut snap = discover(&cloud, &cloud, &d).await.unwrap();
        snap.prefix_eips[0].eip.network_interface_id = Some("eni-0othervpc".into());
        let other = plan(&d, &snap, SEED_B).unwrap();
        assert!(other.operations.iter().all(|o| !o.id.starts_with("eip:")));

        // WHEN a run is interrupted after the release (the re-association is refused once)
        let req = || {
            let mut r = RunRequest::new(TargetSpec::Instance(SEED_B.into()), Mode::Execute, "test");
            r.force = true;
            r
        };
        cloud.inject(
            "AssociateAddress",
            ErrorKind::Rejected,
            FaultTiming::BeforeEffect,
            1,
        );
        let first = match run(&cloud, &cloud, &d, req()).await.unwrap() {
            RunOutcome::Completed(r) => r,
            RunOutcome::Skipped(s) => panic!("{s:?}"),
        };
        assert_eq!(first.record.task_state, TaskState::Failed);
        // THEN the EIP is unassociated (EC2 disassociates it with the prefix) and nothing in
        // the cloud says where it belongs
        assert_eq!(cloud.elastic_ip(eip).unwrap().network_interface_id, None);
        assert!(plan_on(&cloud, &d, SEED_B)
            .await
            .unwrap()
            .operations
            .is_empty());
        // AND the next run finishes the job from the state file's record of the move
        let second = match run(&cloud, &cloud, &d, req()).await.unwrap() {
            RunOutcome::Completed(r) => r,
            RunOutcome::Skipped(s) => panic!("{s:?}"),
        };
        assert_eq!(
            second.record.task_state,
            TaskState::Succeeded,
            "{:?}",
            second.record
        );
        assert_eq!(
            second
                .plan
                .operations
                .iter()
                .map(|o| o.id.as_str())
                .collect::<Vec<_>>(),
            [format!("eip:{eip}")]
        );
        let now = cloud.elastic_ip(eip).unwrap();
        assert_eq!(
            (now.network_interface_id.as_deref(), now.private_ip),
            (Some(SEED_B_EXT), Some(address))
        );
        // AND failing back takes prefix and EIP back to A
        let back = plan_on(&cloud, &d, SEED_A).await.unwrap();
        let ids: Vec<(u8, &str)> = back
            .operations
            .iter()
            .map(|o| (o.wave, o.id.as_str()))
            .collect();
        assert!(ids.contains(&(2, &*format!("eip:{eip}"))), "{ids:?}");
    }

    #[tokio::test]
    /// A prefix move stopped half way (released, the assign failed) is finished by
    /// the next run, from the state file; a `reset` in between keeps what restoring needs, and
    /// a detached EIP the declaration manages is drift.
    async fn a_prefix_move_stopped_half_way_is_finished_by_the_next_run() {
        use crate::app::inspect::inspect;
        use crate::engine::error::ErrorKind;
        use crate::engine::failover::{run, RunOutcome};
        use crate::engine::ports::Ec2Describe;
        use crate::engine::request::Mode;
        use crate::engine::request::{RunRequest, TargetSpec};
        use crate::engine::state::TaskState;
        use crate::lab::EipSpec;
        use crate::memory::FaultTiming;
        // GIVEN the prefix on A with an EIP on 10.0.0.50, and one untagged on 10.0.0.51 while
        // the declaration requires scoping tags
        let mut topo = same_az_with_prefix();
        let eip: IpAddr = "203.0.113.50".parse().unwrap();
        let untagged: IpAddr = "203.0.113.51".parse().unwrap();
        for (alloc, public, tags_, addr) in [
            ("eipalloc-0prefix", eip, tags([SEED_TAG]), "10.0.0.50"),
            (
                "eipalloc-0untagged",
                untagged,
                crate::engine::declaration::Tags::new(),
                "10.0.0.51",
            ),
        ] {
            topo.elastic_ips.push(EipSpec {
                allocation_id: alloc.into(),
                public_ip: public,
                tags: tags_,
                associated_with: Some((SEED_A_EXT.into(), addr.parse().unwrap())),
            });
        }
        let cloud = MemoryCloud::from_topology(&topo);
        let d = prefix_declaration(|v| v["failoverAddresses"]["requireScopingTags"] = json!(true));
        // THEN the untagged EIP is planned too (the release detaches it), with a warning
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        assert!(p
            .operations
            .iter()
            .any(|o| o.id == format!("eip:{untagged}")));
        assert!(
            p.warnings.iter().any(|w| w.starts_with(&format!(
                "Elastic IP {untagged} on 10.0.0.51 (prefix 10.0.0.48/28) lacks the scoping tags"
            ))),
            "{:?}",
            p.warnings
        );
        let req = |mode| {
            let mut r = RunRequest::new(TargetSpec::Instance(SEED_B.into()), mode, "test");
            r.force = true;
            r
        };
        let go = |mode| {
            let (cloud, d) = (&cloud, &d);
            async move {
                match run(cloud, cloud, d, req(mode)).await {
                    Ok(RunOutcome::Completed(r)) => Ok(r),
                    Ok(RunOutcome::Skipped(s)) => panic!("{s:?}"),
                    Err(e) => Err(e),
                }
            }
        };
        // WHEN the release lands and the assign fails
        let assigns = p
            .operations
            .iter()
            .filter(|o| o.action.mutation().operation() == "AssignPrivateIpAddresses")
            .count() as u32;
        cloud.inject(
            "AssignPrivateIpAddresses",
            ErrorKind::Rejected,
            FaultTiming::BeforeEffect,
            assigns,
        );
        let first = go(Mode::Execute).await.unwrap();
        assert_eq!(first.record.task_state, TaskState::Failed);
        assert_eq!(cloud.elastic_ip(eip).unwrap().network_interface_id, None);
        // THEN a dry run plans the assign to B's interface in the prefix's subnet and the EIPs
        // back (the state file names the interface that released it), and inspect sees drift
        let dry = go(Mode::DryRun).await.unwrap();
        let planned: Vec<&str> = dry.plan.operations.iter().map(|o| o.id.as_str()).collect();
        assert!(planned.contains(&"prefix:10.0.0.48/28"), "{planned:?}");
        assert!(planned.contains(&&*format!("eip:{eip}")), "{planned:?}");
        let view = inspect(&cloud, &cloud, &d).await.unwrap();
        assert!(view.drift, "{view:?}");
        // AND a reset keeps that record: after it, the next run still finishes the move
        let log = crate::engine::state::StateLog {
            store: &cloud,
            bucket: "cfe-state-bigip-ha".into(),
            decl: &d,
        };
        let before = log.read_state().await.unwrap();
        log.reset_state("test", before.as_ref()).await.unwrap();
        let dry = go(Mode::DryRun).await.unwrap();
        let planned: Vec<&str> = dry.plan.operations.iter().map(|o| o.id.as_str()).collect();
        assert!(planned.contains(&"prefix:10.0.0.48/28"), "{planned:?}");
        let fixed = go(Mode::Execute).await.unwrap();
        assert_eq!(
            fixed.record.task_state,
            TaskState::Succeeded,
            "{:?}",
            fixed.record
        );
        let b = cloud
            .describe_network_interfaces(&[crate::engine::model::Filter::new(
                "network-interface-id",
                [SEED_B_EXT],
            )])
            .await
            .unwrap();
        assert!(b[0].ipv4_prefixes.contains(&cidr("10.0.0.48/28")));
        for (public, address) in [(eip, "10.0.0.50"), (untagged, "10.0.0.51")] {
            let now = cloud.elastic_ip(public).unwrap();
            assert_eq!(
                (now.network_interface_id.as_deref(), now.private_ip),
                (Some(SEED_B_EXT), Some(address.parse().unwrap()))
            );
        }
    }

    #[tokio::test]
    async fn the_in_memory_cloud_enforces_ec2s_prefix_rules() {
        let cloud = MemoryCloud::from_topology(&same_az_with_prefix());
        let p = cidr("10.0.0.48/28");
        // held by A: B cannot take it (no reassignment of prefixes)
        let e = cloud
            .assign_ipv4_prefixes(SEED_B_EXT, &[p])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("already assigned"), "{e}");
        // only /28, only inside the interface's subnet, only free addresses
        let e = cloud
            .assign_ipv4_prefixes(SEED_B_EXT, &[cidr("10.0.0.64/27")])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/28"), "{e}");
        let e = cloud
            .assign_ipv4_prefixes(SEED_B_EXT, &[cidr("10.0.9.0/28")])
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("does not fall within the subnet"),
            "{e}"
        );
        let e = cloud
            .assign_ipv4_prefixes(SEED_B_EXT, &[cidr("10.0.0.96/28")])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("overlaps an address in use"), "{e}");
        // unassign only what the interface holds
        assert!(cloud
            .unassign_ipv4_prefixes(SEED_B_EXT, &[p])
            .await
            .is_err());
        cloud
            .unassign_ipv4_prefixes(SEED_A_EXT, &[p])
            .await
            .unwrap();
        cloud.assign_ipv4_prefixes(SEED_B_EXT, &[p]).await.unwrap();
    }

    #[tokio::test]
    async fn same_az_state_entries_are_written_as_cfe_writes_them() {
        use crate::engine::request::Mode;
        use crate::engine::request::{RunRequest, TargetSpec};
        use crate::engine::state::{cfe::state_file as cfe_state, RunRecord};
        // GIVEN the same-AZ pair, the VIP 10.0.0.101 with its EIP on A
        let cloud = MemoryCloud::from_topology(&same_az());
        let d = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
        });
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        // WHEN the run's state file is written
        let req = RunRequest::new(TargetSpec::Instance(SEED_B.into()), Mode::Execute, "test");
        let state = cfe_state(&RunRecord::new("r1".into(), &d, &req).with_plan(&p));
        // THEN each moved address carries publicAddress and a numeric ipVersion, as CFE 2.2+
        // writes (and needs, to replay a FAILED file)
        let addresses =
            json!([{"address": "10.0.0.101", "publicAddress": "98.80.114.203", "ipVersion": 4}]);
        assert_eq!(
            state["failoverOperations"]["addresses"]["interfaces"],
            json!({
                "disassociate": [{"networkInterfaceId": SEED_A_EXT, "addresses": addresses}],
                "associate": [{"networkInterfaceId": SEED_B_EXT, "addresses": addresses}],
            })
        );
    }
}

#[cfg(test)]
mod swap_tests {
    use super::*;
    use crate::engine::discovery::discover;
    use crate::engine::execute::NoFence;
    use crate::engine::execute::{execute, ExecOptions};
    use crate::lab::{SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT};
    use crate::memory::MemoryCloud;
    use crate::testing::swap::{decl, twins};

    #[tokio::test]
    async fn failover_swaps_each_subnet_to_the_targets_twin() {
        let cloud = MemoryCloud::from_topology(&twins());
        let d = decl();
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        let p = plan(&d, &snap, SEED_B).unwrap();
        let ids: Vec<&str> = p.operations.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "assoc:subnet-web-a",
                "assoc:subnet-web-b",
                "eip:98.80.114.203"
            ]
        );
        let opts = ExecOptions {
            max_concurrency: 16,
            pacing: Default::default(),
            deadline: None,
            budget: None,
            verify_window: std::time::Duration::from_secs(
                crate::engine::declaration::DEFAULT_VERIFY_SECONDS,
            ),
        };
        let out = execute(&cloud, &p, &opts, &NoFence).await;
        assert!(out.iter().all(|o| o.verified), "{out:?}");
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        assert!(
            plan(&d, &snap, SEED_B).unwrap().operations.is_empty(),
            "converged"
        );
        let back = plan(&d, &snap, SEED_A).unwrap();
        assert_eq!(back.operations.len(), 3);
        let _ = SEED_A_EXT;
    }

    /// With the main table as A's twin, subnets using it implicitly stayed on A
    /// while the run reported SUCCEEDED.
    #[tokio::test]
    async fn a_main_table_twin_is_refused() {
        let cloud = MemoryCloud::from_topology(&twins());
        cloud.make_main(&twins().route_tables[0].id);
        let d = decl();
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        let r = plan(&d, &snap, SEED_B).unwrap_err();
        assert!(
            r.reasons
                .iter()
                .any(|x| x.contains("is the VPC's main route table")),
            "{r}"
        );
    }

    #[tokio::test]
    async fn out_of_sync_twins_are_refused() {
        let mut topo = twins();
        topo.route_tables[1]
            .routes
            .push(("192.168.0.0/16".parse().unwrap(), SEED_B_EXT.into()));
        let cloud = MemoryCloud::from_topology(&topo);
        let d = decl();
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        let r = plan(&d, &snap, SEED_B).unwrap_err();
        assert!(
            r.reasons
                .iter()
                .any(|x| x.contains("out of sync: 192.168.0.0/16")),
            "{r}"
        );
    }
}
