//! Secondary IPv4 and IPv6 addresses moved within a subnet, listed or paired by nic_map tag.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::engine::declaration::{AddressGroup, Managed};
use crate::engine::discovery::NIC_MAP_TAG;
use crate::engine::model::Instance;

use super::{list, Action, Operation, Planner};

/// Secondary IP moves being planned: (to ENI, from ENI) → the addresses.
pub(super) type IpMoves = BTreeMap<(String, String), Vec<IpAddr>>;

impl Planner<'_> {
    /// Plans same-subnet secondary IP moves; returns where moved IPs will be (ip → ENI).
    pub(super) fn secondary_ips(&mut self, t: &Instance) -> BTreeMap<IpAddr, String> {
        let mut moves = IpMoves::new();
        let Some(a) = self.decl.addresses() else {
            return BTreeMap::new();
        };
        for g in a.groups.iter().filter(|g| self.decl.manages(g.item())) {
            self.address_group(t, g, &mut moves);
        }
        // CFE pairs interfaces by f5_cloud_failover_nic_map only without addressGroupDefinitions:
        // with them, only the listed addresses move (CFE v2.4.0 awsProviderTests.js, "should
        // validate same-net case": an unlisted address stays).
        if a.groups.is_empty() {
            self.nic_map_moves(t, &mut moves);
        }
        self.keep_other_groups_vips(&mut moves);
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

    /// Takes out of `moves` every address that is the VIP of an Elastic IP this run does not
    /// move (another failover group's, or none's): a secondary address carries its Elastic IP
    /// along when it moves (EC2's AssignPrivateIpAddresses), so moving it would move the
    /// Elastic IP too. Without failover groups every Elastic IP in scope is the run's.
    fn keep_other_groups_vips(&mut self, moves: &mut IpMoves) {
        let foreign: BTreeMap<IpAddr, IpAddr> = self
            .snap
            .elastic_ips
            .iter()
            .filter(|e| !self.decl.manages(Managed::Address(e.eip.public_ip)))
            .flat_map(|e| e.vips.iter().map(|v| (*v, e.eip.public_ip)))
            .collect();
        if foreign.is_empty() {
            return;
        }
        for ips in moves.values_mut() {
            ips.retain(|ip| match foreign.get(ip) {
                Some(eip) => {
                    self.skipped.push(format!(
                        "address {ip} is the VIP of Elastic IP {eip}, which this failover group does not move (moving the address would carry the Elastic IP along): name both in one group"
                    ));
                    false
                }
                None => true,
            });
        }
        moves.retain(|_, ips| !ips.is_empty());
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
                if !self.in_group(Managed::Address(*ip)) {
                    continue;
                }
                let ips = moves
                    .entry((to.id.clone(), peer_nic.id.clone()))
                    .or_default();
                if !ips.contains(ip) {
                    ips.push(*ip);
                }
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{tags, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_TAG};
    use crate::memory::MemoryCloud;
    use crate::testing::plan::{patched, plan_on};
    use crate::testing::same_az;
    use serde_json::json;

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

    /// With failover groups, a secondary address that is the VIP of another group's Elastic IP
    /// never moves with this group (EC2's AssignPrivateIpAddresses carries the address's
    /// Elastic IP along): the item is skipped with the reason, and the plan refused when
    /// nothing else is left.
    #[tokio::test]
    async fn a_group_never_moves_the_vip_of_another_groups_elastic_ip() {
        let cloud = MemoryCloud::from_topology(&same_az());
        let d = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
            v["serverless"] = json!({"groups": {
                "tg1": {"addresses": ["98.80.114.203"], "routes": ["0.0.0.0/0"]},
                "tg2": {"addresses": ["10.0.0.101"]}
            }});
        });
        let tg2 = &d.per_group()[1].1;
        let r = plan_on(&cloud, tg2, SEED_B).await.unwrap_err();
        assert_eq!(
            r.reasons,
            ["address 10.0.0.101 is the VIP of Elastic IP 98.80.114.203, which this failover group does not move (moving the address would carry the Elastic IP along): name both in one group"]
        );
        // Both in one group: the address moves, then the Elastic IP, as without groups.
        let d = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
            v["serverless"] = json!({"groups": {
                "tg1": {"addresses": ["98.80.114.203", "10.0.0.101"], "routes": ["0.0.0.0/0"]}
            }});
        });
        let p = plan_on(&cloud, &d.per_group()[0].1, SEED_B).await.unwrap();
        assert_eq!(p.operations.len(), 3, "{:?}", p.operations);
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
