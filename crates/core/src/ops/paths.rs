//! Doctor's `api-paths` check: the failover path must not run through what it repairs. The
//! probe (in the VPC) calls EC2 and S3, and an announcing unit calls EventBridge, the way any
//! host in their subnets reaches AWS: a VPC endpoint, else the subnet's route table (its own,
//! else the VPC's main one). If that is a route the declaration swaps to the active unit, or
//! points at a member, the call leaves through the appliance that just died.

use std::collections::BTreeSet;

use crate::engine::declaration::Declaration;
use crate::engine::discovery::Snapshot;
use crate::engine::error::CloudError;
use crate::engine::model::{Filter, Route, RouteTable, VpcEndpoint};
use crate::engine::ports::Ec2Describe;

use super::doctor::{check, Check, Verdict};

/// How a subnet reaches one AWS API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Way {
    /// A VPC endpoint serves it (interface with private DNS, or gateway in the subnet's table).
    Endpoint(String),
    /// The default route of `table`, to `target`, no appliance on the way.
    Out { table: String, target: String },
    /// The default route of `table` runs through the appliance: `why` says how.
    Through { table: String, why: String },
    /// `table` has no default route (`None`: no table of the pair's VPCs covers the subnet).
    Nowhere { table: Option<String> },
}

/// The table `subnet` uses: the one associated with it, else its VPC's main table.
pub fn table_of<'a>(subnet: &str, tables: &'a [RouteTable]) -> Option<&'a RouteTable> {
    let own = tables.iter().find(|t| {
        t.associations
            .iter()
            .any(|a| a.subnet_id.as_deref() == Some(subnet))
    });
    own.or_else(|| {
        tables
            .iter()
            .find(|t| t.associations.iter().any(|a| a.main))
    })
}

/// How `subnet` reaches `service` (`ec2`, `s3`, `events`).
pub fn way(
    service: &str,
    subnet: &str,
    tables: &[RouteTable],
    endpoints: &[VpcEndpoint],
    decl: &Declaration,
    snap: &Snapshot,
) -> Way {
    let Some(table) = table_of(subnet, tables) else {
        return Way::Nowhere { table: None };
    };
    if let Some(e) = endpoints.iter().find(|e| e.serves(service, &table.id)) {
        return Way::Endpoint(e.id.clone());
    }
    let default = table
        .routes
        .iter()
        .find(|r| !r.destination.is_ipv6() && r.destination.prefix() == 0);
    let Some(route) = default else {
        return Way::Nowhere {
            table: Some(table.id.clone()),
        };
    };
    match through(route, &table.id, decl, snap) {
        Some(why) => Way::Through {
            table: table.id.clone(),
            why,
        },
        None => Way::Out {
            table: table.id.clone(),
            target: route.target().to_string(),
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
/// reaches EventBridge, without the appliance. A probe that cannot is a FAIL; a unit that
/// cannot is a FAIL when it has announced (`announces`), else a WARN (it needs the way only if
/// it runs `announce-active.sh`).
pub async fn api_paths_check(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
    snap: &Snapshot,
    probe_subnets: &[String],
    announces: bool,
) -> Result<Check, CloudError> {
    let vpcs: BTreeSet<String> = snap
        .members
        .iter()
        .flat_map(|m| m.network_interfaces.iter().map(|n| n.vpc_id.clone()))
        .collect();
    if vpcs.is_empty() {
        return Ok(check("api-paths", Vec::new(), "no member found".into()));
    }
    let by_vpc = [Filter::new("vpc-id", vpcs.iter())];
    let (tables, endpoints) = futures::try_join!(
        ec2.describe_route_tables(&by_vpc),
        ec2.describe_vpc_endpoints(&by_vpc)
    )?;
    let vpc = vpcs.iter().next().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for subnet in probe_subnets {
        for service in ["ec2", "s3"] {
            let who = format!("probe subnet {subnet}");
            match way(service, subnet, &tables, &endpoints, decl, snap) {
                Way::Through { table, why } => problems.push((
                    Verdict::Fail,
                    format!("{who} reaches {service} only through the appliance: {why}; when the unit dies the probe cannot fail over"),
                    endpoint_fix(service, &vpc, subnet, &table),
                )),
                Way::Nowhere { table: Some(table) } => problems.push((
                    Verdict::Fail,
                    format!("{who} has no route to {service} ({table} has no default route and no {service} endpoint serves it)"),
                    endpoint_fix(service, &vpc, subnet, &table),
                )),
                Way::Nowhere { table: None } => problems.push((
                    Verdict::Warn,
                    format!("{who}: no route table of the pair's VPC ({}) covers it, so its way to {service} is not known", vpcs.iter().cloned().collect::<Vec<_>>().join(", ")),
                    "give probe subnets of the pair's VPC (the template's ProbeSubnetIds)".into(),
                )),
                Way::Endpoint(e) => seen.push(format!("{subnet} → {service}: {e}")),
                Way::Out { target, .. } => seen.push(format!("{subnet} → {service}: {target}")),
            }
        }
    }
    for m in &snap.members {
        let Some(first) = m.network_interfaces.first() else {
            continue;
        };
        let subnet = &first.subnet_id;
        if let Way::Through { table, why } = way("events", subnet, &tables, &endpoints, decl, snap)
        {
            let verdict = if announces {
                Verdict::Fail
            } else {
                Verdict::Warn
            };
            problems.push((
                verdict,
                format!(
                    "member {} ({}) reaches EventBridge from {subnet} only through the appliance: {why}; its announcement cannot leave when its peer dies{}",
                    m.id,
                    m.display_name(),
                    if announces { "" } else { " (it matters if the unit announces: none is on record)" }
                ),
                endpoint_fix("events", &first.vpc_id, subnet, &table),
            ));
        }
    }
    Ok(check(
        "api-paths",
        problems,
        if seen.is_empty() {
            "the units reach EventBridge without the appliance (no probe subnet given: --probe-subnets)".into()
        } else {
            format!(
                "the probe reaches EC2 and S3, the units EventBridge, without the appliance ({})",
                seen.join("; ")
            )
        },
    ))
}

/// The command that gives `subnet` (using `table`) its own way to `service`.
fn endpoint_fix(service: &str, vpc: &str, subnet: &str, table: &str) -> String {
    let name = format!("com.amazonaws.${{AWS_REGION}}.{service}");
    match service {
        "s3" => format!(
            "route S3 to a gateway endpoint (free; the template's ProbeS3EndpointRouteTableIds={table}): aws ec2 create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type Gateway --service-name \"{name}\" --route-table-ids {table}"
        ),
        "ec2" => format!(
            "an EC2 interface endpoint in the probe subnets (the template's ProbeEc2Endpoint=true; about $7.30 a month per subnet), or probe subnets whose default route is a NAT or internet gateway: aws ec2 create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type Interface --service-name \"{name}\" --subnet-ids {subnet} --security-group-ids <a group admitting HTTPS from the probe> --private-dns-enabled"
        ),
        _ => format!(
            "route the unit's management subnet {subnet} to a NAT or internet gateway, or add an interface endpoint (about $7.30 a month per subnet): aws ec2 create-vpc-endpoint --vpc-id {vpc} --vpc-endpoint-type Interface --service-name \"{name}\" --subnet-ids {subnet} --security-group-ids <a group admitting HTTPS from the unit> --private-dns-enabled"
        ),
    }
}
