//! Elastic IPs: each moved onto its VIP on the target.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::engine::declaration::Managed;
use crate::engine::discovery::{names_its_eips, ScopedEip};
use crate::engine::model::{ElasticIp, Instance};

use super::{list, Action, Operation, Planner};

impl Planner<'_> {
    pub(super) fn elastic_ips(&mut self, t: &Instance, moved: &BTreeMap<IpAddr, String>) {
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
            if !self.in_group(Managed::Address(se.eip.public_ip)) {
                continue;
            }
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

/// The operation that puts EIP `e` on `private_ip` of interface `eni` (AssociateAddress).
pub(super) fn associate(
    e: &ElasticIp,
    eni: &str,
    private_ip: IpAddr,
    wave: u8,
    why: String,
) -> Operation {
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

#[cfg(test)]
mod tests {
    use crate::lab::{Topology, SEED_B, SEED_B_EXT};
    use crate::memory::MemoryCloud;
    use crate::testing::plan::{decl, plan_on, skipped, AFTER};

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

    /// A listed Elastic IP on an address outside its vipAddresses is in use elsewhere: left
    /// alone, said (as CFE does); on one of them it moves. One selected by tags moves onto its
    /// VIP wherever it is now.
    #[tokio::test]
    async fn a_listed_eip_outside_its_vip_addresses_is_left_alone() {
        let listed = |vips: serde_json::Value| {
            crate::testing::plan::patched(|v| {
                v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!([
                    {"type": "elasticIpAddress", "scopingAddress": crate::lab::SEED_EIP, "vipAddresses": vips}
                ]);
            })
        };
        let eip_ops = |p: &super::super::Plan| {
            p.operations
                .iter()
                .filter(|o| o.id.starts_with("eip:"))
                .count()
        };
        let cloud = MemoryCloud::seed();
        let elsewhere = plan_on(
            &cloud,
            &listed(serde_json::json!(["10.0.0.99", "10.0.4.101"])),
            SEED_B,
        )
        .await
        .unwrap();
        assert_eq!(eip_ops(&elsewhere), 0, "{elsewhere:?}");
        assert!(
            elsewhere.warnings.iter().any(|w| w
                .contains("is on 10.0.0.101 (eni-0603a4992d0579540), none of its vipAddresses")),
            "{:?}",
            elsewhere.warnings
        );
        let ours = plan_on(
            &cloud,
            &listed(serde_json::json!(["10.0.0.101", "10.0.4.101"])),
            SEED_B,
        )
        .await
        .unwrap();
        assert_eq!(eip_ops(&ours), 1, "{ours:?}");
        assert!(!ours
            .warnings
            .iter()
            .any(|w| w.contains("none of its vipAddresses")));
        // By tags, on A's primary address (no VIP): it moves onto B's VIP all the same.
        let mut topo = Topology::seed();
        topo.elastic_ips[0].associated_with =
            Some((crate::lab::SEED_A_EXT.into(), "10.0.0.11".parse().unwrap()));
        let cloud = MemoryCloud::from_topology(&topo);
        let p = plan_on(&cloud, &decl(AFTER), SEED_B).await.unwrap();
        assert_eq!(eip_ops(&p), 1, "{p:?}");
    }
}
