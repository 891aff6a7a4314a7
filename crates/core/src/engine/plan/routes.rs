//! Routes: each declared range pointed at the target's next hop, or created when opted in.

use std::net::IpAddr;

use crate::engine::declaration::{AddressRange, RouteGroup};
use crate::engine::discovery::{next_hops_for, ScopedTable};
use crate::engine::model::{Instance, NetworkInterface, Route, RouteTable};
use crate::engine::net::Cidr;

use super::{Action, Operation, Planner};

impl Planner<'_> {
    /// Plans the routes for target `t` (or, in association-swap mode, the twins' associations).
    pub(super) fn routes(&mut self, t: &Instance) {
        if self.decl.extension.association_swap {
            return self.swap_associations(t);
        }
        self.route_scope_problems();
        let (snap, decl) = (self.snap, self.decl);
        for (st, g, r) in snap.managed_routes(decl) {
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
    // A range inside a reserved block; one holding it (0.0.0.0/0, 169.254.0.0/16) is fine.
    if let Some(r) = reserved
        .iter()
        .find(|r| r.contains(range.addr()) && range.prefix() >= r.prefix())
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

/// Picks the target's interface for a route from the next-hop items, or says why none fits.
pub(super) fn next_hop_on<'t>(
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
    use crate::engine::declaration::Declaration;
    use crate::engine::discovery::discover;
    use crate::engine::plan::plan;
    use crate::lab::{Topology, SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_RTB, SEED_TAG};
    use crate::memory::MemoryCloud;
    use crate::testing::plan::{cidr, decl, patched, plan_on, skipped, AFTER};
    use serde_json::{json, Value};

    const SNAT_NONE: &str = include_str!("../../../../../examples/seed-article/cfe-snat-none.json");

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

    /// What EC2 would refuse: a range inside a reserved block (a range holding one, as the
    /// default route does, is fine), and one more specific than the VPC's local route; the
    /// local route's own range is not "inside" it.
    #[test]
    fn unroutable_ranges_are_named() {
        let table = crate::engine::model::RouteTable {
            id: "rtb-1".into(),
            vpc_id: "vpc-1".into(),
            tags: Default::default(),
            routes: vec![crate::engine::model::Route {
                destination: "10.0.0.0/16".parse().unwrap(),
                network_interface_id: None,
                other_target: Some("local".into()),
                local: true,
            }],
            associations: Vec::new(),
        };
        let says = |r: &str| super::unroutable(&table, r.parse().unwrap());
        assert!(says("169.254.168.0/24")
            .unwrap()
            .contains("which AWS reserves"));
        assert!(says("169.254.170.0/23")
            .unwrap()
            .contains("overlaps 169.254.168.0/22"));
        assert!(says("fd00:ec2::23/128")
            .unwrap()
            .contains("overlaps fd00:ec2::/32"));
        assert_eq!(says("169.254.0.0/16"), None);
        assert_eq!(says("::/0"), None);
        assert!(says("10.0.3.0/24")
            .unwrap()
            .contains("lies inside the VPC's range 10.0.0.0/16"));
        assert_eq!(says("10.0.0.0/16"), None);
        assert_eq!(says("0.0.0.0/0"), None);
    }
}
