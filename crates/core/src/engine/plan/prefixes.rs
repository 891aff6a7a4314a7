//! Delegated IPv4 prefixes (release, then assign) and the Elastic IPs on their addresses.

use crate::engine::discovery::matches;
use crate::engine::model::Instance;
use crate::engine::net::Cidr;

use super::elastic_ips::associate;
use super::{Action, Operation, Planner};

impl Planner<'_> {
    /// Plans the move of a delegated IPv4 prefix to the target's interface in the same subnet:
    /// release (wave 0), then assign (wave 1), as CFE 2.2+ does.
    pub(super) fn prefix(&mut self, t: &Instance, prefix: Cidr) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::discovery::discover;
    use crate::engine::plan::plan;
    use crate::lab::{tags, SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_TAG};
    use crate::memory::MemoryCloud;
    use crate::testing::plan::{cidr, patched, plan_on, prefix_declaration};
    use crate::testing::same_az_with_prefix;
    use serde_json::json;
    use std::net::IpAddr;

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

    /// With the prefix and its Elastic IP already on the target, the EIP is in place (said),
    /// nothing moves; one the scope selects by tags is planned as such, not as the prefix's.
    #[tokio::test]
    async fn an_eip_already_on_the_targets_prefix_is_in_place() {
        use crate::lab::EipSpec;
        let mut topo = same_az_with_prefix();
        let prefix = topo.instances[0].interfaces[1].prefixes.clone();
        topo.instances[0].interfaces[1].prefixes.clear();
        topo.instances[1].interfaces[1].prefixes = prefix;
        topo.elastic_ips.push(EipSpec {
            allocation_id: "eipalloc-0prefix".into(),
            public_ip: "203.0.113.50".parse().unwrap(),
            tags: tags([SEED_TAG]),
            associated_with: Some((SEED_B_EXT.into(), "10.0.0.50".parse().unwrap())),
        });
        let cloud = MemoryCloud::from_topology(&topo);
        let p = plan_on(&cloud, &prefix_declaration(|_| ()), SEED_B)
            .await
            .unwrap();
        assert!(
            p.operations
                .iter()
                .all(|o| !o.id.starts_with("eip:203.0.113.50")),
            "{p:?}"
        );
        assert!(
            p.in_place.iter().any(|w| w.contains("Elastic IP 203.0.113.50 → 10.0.0.50 on eni-04bec0335a47b26c3")),
            "{:?}",
            p.in_place
        );
    }
}
