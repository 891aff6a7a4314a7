//! Association-swap mode: subnets move to the target's twin route table.

use std::collections::BTreeSet;

use crate::engine::declaration::Declaration;
use crate::engine::discovery::{next_hops_for, Snapshot};
use crate::engine::model::{Instance, RouteTable};
use crate::engine::net::Cidr;

use super::routes::next_hop_on;
use super::{Action, Operation, Planner};

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
    pub(super) fn swap_associations(&mut self, t: &Instance) {
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
}

#[cfg(test)]
mod tests {
    use crate::engine::discovery::discover;
    use crate::engine::execute::NoFence;
    use crate::engine::execute::{execute, ExecOptions};
    use crate::engine::plan::plan;
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
