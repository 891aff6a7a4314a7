//! The per-interface IPv4 limit of the target's instance type.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::engine::model::Instance;
use crate::engine::net::Cidr;

use super::addresses::IpMoves;
use super::{Action, Planner};

impl Planner<'_> {
    /// Refuses moves beyond the receiving interfaces' IPv4 limits (per instance type), where
    /// each delegated prefix counts as one address ("Each prefix that you assign to a network
    /// interface counts as one IP address": Amazon EC2 User Guide, "Assign prefixes to Amazon
    /// EC2 network interfaces").
    pub(super) fn address_limits(&mut self, t: &Instance, moves: &IpMoves) -> BTreeSet<String> {
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
}

#[cfg(test)]
mod tests {
    use crate::lab::{SEED_B, SEED_B_EXT};
    use crate::memory::MemoryCloud;
    use crate::testing::plan::{patched, plan_on, skipped};
    use crate::testing::same_az;
    use serde_json::json;

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

    /// The count: the primary, what the interface holds already (secondary addresses, and a
    /// delegated prefix as one), and what moves in; as many as the type allows is fine.
    #[tokio::test]
    async fn the_count_includes_what_the_target_holds_and_the_limit_itself_is_allowed() {
        let d = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
        });
        // t3.micro: 2 per interface; the primary and the one VIP moving in.
        let mut topo = same_az();
        topo.instances[1].instance_type = "t3.micro".into();
        let cloud = MemoryCloud::from_topology(&topo);
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        // t3.small: 4; B's interface holds two addresses and a prefix already: 1 + 2 + 1 + 1.
        let mut topo = same_az();
        topo.instances[1].instance_type = "t3.small".into();
        let b = &mut topo.instances[1].interfaces[1];
        b.secondary = vec!["10.0.0.201".parse().unwrap(), "10.0.0.202".parse().unwrap()];
        b.prefixes = vec!["10.0.0.64/28".parse().unwrap()];
        let cloud = MemoryCloud::from_topology(&topo);
        let p = plan_on(&cloud, &d, SEED_B).await.unwrap();
        // Nothing moves onto the full interface: neither the address nor the EIP on it; the
        // route still moves.
        let onto_b: Vec<&str> = p
            .operations
            .iter()
            .filter(|o| {
                format!("{:?}", o.action).contains(SEED_B_EXT) && !o.id.starts_with("route:")
            })
            .map(|o| o.id.as_str())
            .collect();
        assert!(onto_b.is_empty(), "{onto_b:?}");
        assert!(
            p.operations.iter().any(|o| o.id.starts_with("route:")),
            "{p:?}"
        );
        let r = skipped(p);
        assert!(
            r.reasons.iter().any(|x| x.starts_with(SEED_B_EXT)
                && x.contains("would hold 5 IPv4 addresses")
                && x.contains("(4)")),
            "{r}"
        );
    }
}
