//! Doctor's `api-paths` check: the failover path must not run through what it repairs. The
//! probe (in the VPC) calls EC2 and S3, and an announcing unit calls EventBridge, the way any
//! host in their subnets reaches AWS: a VPC endpoint, else the subnet's route table (its own,
//! else its VPC's main one). If the routes toward the public APIs are ones the declaration
//! swaps to the active unit, or point at a member, the call leaves through the appliance that
//! just died.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::declaration::Declaration;
use crate::engine::discovery::Snapshot;
use crate::engine::error::CloudError;
use crate::engine::model::{Filter, Route, RouteTable, VpcEndpoint};
use crate::engine::ports::Ec2Describe;

use super::doctor::{check, Check, Verdict};

/// The widest routes that count as routes toward the public APIs besides `0.0.0.0/0` (a
/// `0.0.0.0/1` + `128.0.0.0/1` pair covers them all; AWS's ranges are spread over the space).
const PUBLIC_SPACE_PREFIX: u8 = 8;

/// How a subnet reaches one AWS API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Way {
    /// A VPC endpoint serves it (interface with private DNS, or gateway in the subnet's table).
    Endpoint(String),
    /// The default route of `table`, to `target`, no appliance on the way.
    Out { table: String, target: String },
    /// A route toward the public APIs in `table` runs through the appliance: `why` says how.
    Through { table: String, why: String },
    /// `table` has no route toward the public APIs (`None`: EC2 knows no such subnet).
    Nowhere { table: Option<String> },
}

/// The table `subnet` (of `vpc`) uses: the one associated with it, else its VPC's main table.
pub fn table_of<'a>(subnet: &str, vpc: &str, tables: &'a [RouteTable]) -> Option<&'a RouteTable> {
    let own = tables.iter().find(|t| {
        t.associations
            .iter()
            .any(|a| a.subnet_id.as_deref() == Some(subnet))
    });
    own.or_else(|| {
        tables
            .iter()
            .find(|t| t.vpc_id == vpc && t.associations.iter().any(|a| a.main))
    })
}

/// How `subnet` of `vpc` reaches `service` (`ec2`, `s3`, `events`).
pub fn way(
    service: &str,
    (subnet, vpc): (&str, &str),
    tables: &[RouteTable],
    endpoints: &[VpcEndpoint],
    decl: &Declaration,
    snap: &Snapshot,
) -> Way {
    let Some(table) = table_of(subnet, vpc, tables) else {
        return Way::Nowhere { table: None };
    };
    let in_vpc = |e: &&VpcEndpoint| e.vpc_id == vpc || e.vpc_id.is_empty();
    if let Some(e) = endpoints
        .iter()
        .filter(in_vpc)
        .find(|e| e.serves(service, &table.id))
    {
        return Way::Endpoint(e.id.clone());
    }
    let public = table.routes.iter().filter(|r| {
        !r.local && !r.destination.is_ipv6() && r.destination.prefix() <= PUBLIC_SPACE_PREFIX
    });
    if let Some(why) = public
        .clone()
        .find_map(|r| through(r, &table.id, decl, snap))
    {
        return Way::Through {
            table: table.id.clone(),
            why,
        };
    }
    match public.min_by_key(|r| r.destination.prefix()) {
        Some(r) if r.destination.prefix() == 0 => Way::Out {
            table: table.id.clone(),
            target: r.target().to_string(),
        },
        _ => Way::Nowhere {
            table: Some(table.id.clone()),
        },
    }
}

/// Why `route` of `table` runs through the appliance, if it does.
fn through(route: &Route, table: &str, decl: &Declaration, snap: &Snapshot) -> Option<String> {
    let managed = snap
        .declared_routes(decl)
        .any(|(st, _, r)| st.table.id == table && r.range == route.destination);
    if managed {
        return Some(format!(
            "{} in {table} is a route this declaration points at the active unit (now {})",
            route.destination,
            route.target()
        ));
    }
    let eni = route.network_interface_id.as_deref()?;
    let member = snap.owner_of_interface(eni)?;
    Some(format!(
        "{} in {table} points at {eni}, an interface of member {} ({})",
        route.destination,
        member.id,
        member.display_name()
    ))
}

/// The check: each of `probe_subnets` reaches EC2 and S3, and each member's primary subnet
/// reaches EventBridge, without the appliance. A probe that cannot is a FAIL (an internet
/// gateway is no way out for it: a Lambda function's interfaces have no public address); a
/// unit that cannot is a FAIL when it has announced (`announces`), else a WARN (it needs the
/// way only if it runs `announce-active.sh`).
pub async fn api_paths_check(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
    snap: &Snapshot,
    probe_subnets: &[String],
    announces: bool,
) -> Result<Check, CloudError> {
    let mut vpcs: BTreeSet<String> = snap
        .members
        .iter()
        .flat_map(|m| m.network_interfaces.iter().map(|n| n.vpc_id.clone()))
        .collect();
    if vpcs.is_empty() {
        return Ok(check("api-paths", Vec::new(), "no member found".into()));
    }
    let subnet_vpc: BTreeMap<String, String> = if probe_subnets.is_empty() {
        BTreeMap::new()
    } else {
        ec2.describe_subnets(&[Filter::new("subnet-id", probe_subnets)])
            .await?
            .into_iter()
            .map(|s| (s.id, s.vpc_id))
            .collect()
    };
    vpcs.extend(subnet_vpc.values().cloned());
    let by_vpc = [Filter::new("vpc-id", vpcs.iter())];
    let (tables, endpoints) = futures::try_join!(
        ec2.describe_route_tables(&by_vpc),
        ec2.describe_vpc_endpoints(&by_vpc)
    )?;
    let mut problems = Vec::new();
    let mut probe_problems: Vec<(String, &str)> = Vec::new();
    let mut seen = Vec::new();
    // service → (VPC, failing probe subnets, their tables), for one fix per service.
    let mut failing: BTreeMap<&str, (String, Vec<String>, BTreeSet<String>)> = BTreeMap::new();
    for subnet in probe_subnets {
        let who = format!("probe subnet {subnet}");
        let Some(vpc) = subnet_vpc.get(subnet) else {
            problems.push((
                Verdict::Fail,
                format!("{who}: EC2 knows no such subnet in this region"),
                "give the probe's subnets as the stack's ProbeSubnetIds names them".into(),
            ));
            continue;
        };
        for service in ["ec2", "s3"] {
            let way = way(service, (subnet, vpc), &tables, &endpoints, decl, snap);
            // Why not, and the table the way was judged on (for the fix).
            let (why, table) = match way {
                Way::Endpoint(e) => {
                    seen.push(format!("{subnet} → {service}: {e}"));
                    continue;
                }
                Way::Out { target, table } if target.starts_with("igw-") => (format!(
                    "{who} reaches {service} only through {target}, an internet gateway: a Lambda function's interfaces have no public address, so the probe has no way out there"
                ), Some(table)),
                Way::Out { target, .. } => {
                    let nat = if target.starts_with("nat-") {
                        " (the NAT gateway's own way out is not checked)"
                    } else {
                        ""
                    };
                    seen.push(format!("{subnet} → {service}: {target}{nat}"));
                    continue;
                }
                Way::Through { why, table } => (format!(
                    "{who} reaches {service} only through the appliance: {why}; when the unit dies the probe cannot fail over"
                ), Some(table)),
                Way::Nowhere { table } => (format!(
                    "{who} has no way to {service}: {} has no route toward the public APIs and no {service} endpoint serves it",
                    table.as_deref().unwrap_or("no route table")
                ), table),
            };
            let table = table.unwrap_or_default();
            let entry = failing
                .entry(service)
                .or_insert_with(|| (vpc.clone(), Vec::new(), BTreeSet::new()));
            entry.1.push(subnet.clone());
            entry.2.insert(table);
            probe_problems.push((why, service));
        }
    }
    // Each service's one fix, for every failing subnet at once (one EC2 interface endpoint
    // with private DNS per VPC).
    let fixes: BTreeMap<&str, String> = failing
        .iter()
        .map(|(service, (vpc, subnets, tables))| {
            let tables: Vec<String> = tables.iter().cloned().collect();
            (*service, endpoint_fix(service, vpc, subnets, &tables))
        })
        .collect();
    for (why, service) in probe_problems {
        problems.push((Verdict::Fail, why, fixes[service].clone()));
    }
    let level = if announces {
        Verdict::Fail
    } else {
        Verdict::Warn
    };
    let unless = if announces {
        ""
    } else {
        " (it matters if the unit announces: none is on record)"
    };
    for m in &snap.members {
        let Some(first) = m.network_interfaces.first() else {
            continue;
        };
        let subnet = &first.subnet_id;
        let who = format!("member {} ({})", m.id, m.display_name());
        let found = way(
            "events",
            (subnet, &first.vpc_id),
            &tables,
            &endpoints,
            decl,
            snap,
        );
        let (why, table) = match found {
            Way::Through { why, table } => (format!(
                "{who} reaches EventBridge from {subnet} only through the appliance: {why}; its announcement cannot leave when its peer dies{unless}"
            ), table),
            // EC2 gives every VPC a main table: none known is a model without one, not judged.
            Way::Nowhere { table: None } => continue,
            Way::Nowhere { table: Some(table) } => (format!(
                "{who} has no way to EventBridge from {subnet}: {table} has no route toward the public APIs and no events endpoint serves it{unless}"
            ), table),
            Way::Endpoint(e) => {
                seen.push(format!("{} → events: {e}", m.id));
                continue;
            }
            Way::Out { target, .. } => {
                seen.push(format!("{} → events: {target}", m.id));
                continue;
            }
        };
        problems.push((
            level,
            why,
            endpoint_fix(
                "events",
                &first.vpc_id,
                std::slice::from_ref(subnet),
                &[table],
            ),
        ));
    }
    Ok(check(
        "api-paths",
        problems,
        format!(
            "no way to the APIs runs through the appliance: {}{}",
            seen.join("; "),
            if probe_subnets.is_empty() {
                " (no probe subnet given: --probe-subnets)"
            } else {
                ""
            }
        ),
    ))
}

/// The command that gives `subnets` (using `tables`) their own way to `service`.
fn endpoint_fix(service: &str, vpc: &str, subnets: &[String], tables: &[String]) -> String {
    let name = format!("com.amazonaws.${{AWS_REGION}}.{service}");
    let (subnets, tables) = (subnets.join(" "), tables.join(" "));
    match service {
        "s3" => format!(
            "route S3 to a gateway endpoint (free; the template's ProbeS3EndpointRouteTableIds={}): aws ec2 create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type Gateway --service-name \"{name}\" --route-table-ids {tables}",
            tables.replace(' ', ",")
        ),
        "ec2" => format!(
            "one EC2 interface endpoint for the probe subnets (the template's ProbeEc2Endpoint=true; about $7.30 a month per subnet, one subnet per AZ), or probe subnets whose default route is a NAT gateway: aws ec2 create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type Interface --service-name \"{name}\" --subnet-ids {subnets} --security-group-ids <a group admitting HTTPS from the probe> --private-dns-enabled"
        ),
        _ => format!(
            "route the unit's subnet {subnets} to a NAT or internet gateway, or add an interface endpoint (about $7.30 a month per subnet): aws ec2 create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type Interface --service-name \"{name}\" --subnet-ids {subnets} --security-group-ids <a group admitting HTTPS from the unit> --private-dns-enabled"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::Association;
    use crate::lab::{SEED_A_EXT, SEED_RTB};
    use crate::memory::MemoryCloud;

    fn route(dest: &str, eni: Option<&str>, other: Option<&str>) -> Route {
        Route {
            destination: dest.parse().unwrap(),
            network_interface_id: eni.map(str::to_string),
            other_target: other.map(str::to_string),
            local: false,
        }
    }

    fn table(
        id: &str,
        vpc: &str,
        routes: Vec<Route>,
        subnet: Option<&str>,
        main: bool,
    ) -> RouteTable {
        RouteTable {
            id: id.into(),
            vpc_id: vpc.into(),
            tags: Default::default(),
            routes,
            associations: vec![Association {
                id: format!("rtbassoc-{id}"),
                subnet_id: subnet.map(str::to_string),
                main,
            }],
        }
    }

    /// Routes toward the public APIs: the default route, and any wide one (`/1` … `/8`): a
    /// pair of `/1` routes at a member is through the appliance whatever `0.0.0.0/0` says; a
    /// subnet without a table of its own takes its own VPC's main table, not another's; only
    /// a local route is no way out.
    #[tokio::test]
    async fn the_way_out_is_judged_on_every_wide_route_of_the_subnets_own_table() {
        let cloud = MemoryCloud::seed();
        let d = crate::testing::plan::decl(crate::testing::plan::AFTER);
        let snap = crate::engine::discovery::discover(&cloud, &cloud, &d)
            .await
            .unwrap();
        let vpc = "vpc-0287f01407d1276f0";
        let split = table(
            "rtb-split",
            vpc,
            vec![
                route("0.0.0.0/1", Some(SEED_A_EXT), None),
                route("128.0.0.0/1", Some(SEED_A_EXT), None),
                route("0.0.0.0/0", None, Some("igw-1")),
            ],
            Some("subnet-p"),
            false,
        );
        let mains = [
            table(
                "rtb-main-other",
                "vpc-other",
                vec![route("0.0.0.0/0", None, Some("nat-9"))],
                None,
                true,
            ),
            table("rtb-main", vpc, vec![], None, true),
        ];
        let all: Vec<RouteTable> = std::iter::once(split).chain(mains).collect();
        match way("ec2", ("subnet-p", vpc), &all, &[], &d, &snap) {
            Way::Through { table, why } => {
                assert_eq!(table, "rtb-split");
                assert!(why.contains("0.0.0.0/1 in rtb-split points at eni-0603a4992d0579540, an interface of member"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            way("ec2", ("subnet-q", vpc), &all, &[], &d, &snap),
            Way::Nowhere {
                table: Some("rtb-main".into())
            }
        );
        assert_eq!(
            way("ec2", ("subnet-q", "vpc-other"), &all, &[], &d, &snap),
            Way::Out {
                table: "rtb-main-other".into(),
                target: "nat-9".into()
            }
        );
        // The managed route of the seed's table.
        let seed = cloud
            .describe_route_tables(&[Filter::new("route-table-id", [SEED_RTB])])
            .await
            .unwrap();
        assert!(matches!(
            way("s3", ("subnet-web-a", vpc), &seed, &[], &d, &snap),
            Way::Through { .. }
        ));
    }
}
