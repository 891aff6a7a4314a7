//! Cloud resources as the ports report them: the subset of EC2's model that failover needs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::engine::declaration::Tags;
use crate::engine::net::Cidr;

/// An EC2 instance with its network interfaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// `i-…`
    pub id: String,
    /// `running`, `stopped`, …
    pub state: String,
    /// Availability Zone.
    pub availability_zone: String,
    /// Instance type, e.g. `m5.xlarge` (empty when unknown).
    pub instance_type: String,
    /// Tags (the `Name` tag names the unit in reports).
    pub tags: Tags,
    /// Attached network interfaces, by device index (the first is the primary interface).
    pub network_interfaces: Vec<NetworkInterface>,
}

impl Instance {
    /// The `Name` tag (control characters escaped: it reaches logs, tables and reasons),
    /// else the id.
    pub fn display_name(&self) -> std::borrow::Cow<'_, str> {
        crate::engine::text::printable(
            self.tags
                .get("Name")
                .map(String::as_str)
                .unwrap_or(&self.id),
        )
    }

    /// The interface holding `ip` (primary, secondary or IPv6), if any.
    pub fn interface_with(&self, ip: IpAddr) -> Option<&NetworkInterface> {
        self.network_interfaces.iter().find(|n| n.has_ip(ip))
    }
}

/// How many IPv4 addresses (primary included) one interface of this instance type may hold,
/// for the types appliance pairs commonly run on (AWS's published per-type limits); `None`
/// for a type not listed here, which is then not checked.
pub fn ipv4_per_interface(instance_type: &str) -> Option<usize> {
    let size = instance_type.split_once('.')?.1;
    let family = instance_type.split_once('.')?.0;
    match family {
        "t3" | "t3a" => match size {
            "nano" | "micro" => Some(2),
            "small" => Some(4),
            "medium" => Some(6),
            "large" => Some(12),
            "xlarge" | "2xlarge" => Some(15),
            _ => None,
        },
        "m5" | "m5n" | "m6i" | "c5" | "c5n" | "c6i" | "r5" | "r6i" => match size {
            "large" => Some(10),
            "xlarge" | "2xlarge" => Some(15),
            "4xlarge" | "8xlarge" | "9xlarge" | "12xlarge" => Some(30),
            _ => None,
        },
        _ => None,
    }
}

/// An elastic network interface (ENI).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// `eni-…`
    pub id: String,
    /// The instance it is attached to.
    pub instance_id: Option<String>,
    /// Subnet.
    pub subnet_id: String,
    /// VPC.
    pub vpc_id: String,
    /// Primary private IPv4 address.
    pub primary_ip: IpAddr,
    /// Secondary private IPv4 addresses.
    pub secondary_ips: Vec<IpAddr>,
    /// IPv6 addresses.
    pub ipv6_ips: Vec<IpAddr>,
    /// Delegated IPv4 prefixes (`Ipv4Prefixes`, /28 each).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ipv4_prefixes: Vec<Cidr>,
    /// Elastic IPs associated with its private IPs (private → public), whatever their tags:
    /// CFE records them as `publicAddress` of a moved secondary IP.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub public_ips: BTreeMap<IpAddr, IpAddr>,
    /// Source/destination check (must be off on a routing next hop).
    pub source_dest_check: bool,
    /// Tags (`f5_cloud_failover_nic_map` pairs interfaces across units).
    pub tags: Tags,
    /// Its device index on the instance (`init` pairs the units' interfaces by it).
    #[serde(skip)]
    pub device_index: Option<u32>,
}

/// A subnet: its VPC (doctor's ways to the APIs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VpcSubnet {
    /// `subnet-…`
    pub id: String,
    /// Its VPC.
    pub vpc_id: String,
}

impl NetworkInterface {
    /// Whether `item` may name this interface as a route's next hop: its primary IPv4 address
    /// (a secondary IP, a VIP, is the field report's pitfall: EC2 routes to the interface, and
    /// the units answer on their primary IPs), or one of its IPv6 addresses.
    pub fn is_next_hop(&self, item: IpAddr) -> bool {
        item.is_ipv6() || item == self.primary_ip
    }

    /// Whether the interface holds `ip` in any role.
    pub fn has_ip(&self, ip: IpAddr) -> bool {
        self.primary_ip == ip || self.secondary_ips.contains(&ip) || self.ipv6_ips.contains(&ip)
    }
}

/// A VPC endpoint: how a subnet reaches an AWS API without a route to the internet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VpcEndpoint {
    /// `vpce-…`
    pub id: String,
    /// Its VPC.
    pub vpc_id: String,
    /// `com.amazonaws.<region>.<service>`.
    pub service_name: String,
    /// `Interface`, `Gateway`, `GatewayLoadBalancer`, …
    pub kind: String,
    /// `available`, `pending`, …
    pub state: String,
    /// An interface endpoint's private DNS (the service's own host name resolves to it).
    pub private_dns: bool,
    /// A gateway endpoint's route tables.
    pub route_table_ids: Vec<String>,
}

impl VpcEndpoint {
    /// Whether it serves `service` (`ec2`, `s3`, `events`) to a subnet using `table`: an
    /// available interface endpoint with private DNS (the SDK's default host name resolves
    /// to it, in every subnet of the VPC), or an available gateway endpoint routed in `table`.
    pub fn serves(&self, service: &str, table: &str) -> bool {
        self.state.eq_ignore_ascii_case("available")
            && self.service_name.ends_with(&format!(".{service}"))
            && match self.kind.as_str() {
                "Interface" => self.private_dns,
                "Gateway" => self.route_table_ids.iter().any(|t| t == table),
                _ => false,
            }
    }
}

/// A route table and its routes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    /// `rtb-…`
    pub id: String,
    /// VPC.
    pub vpc_id: String,
    /// Tags (`f5_self_ips` lists next hops for `routeTag` discovery).
    pub tags: Tags,
    /// Routes.
    pub routes: Vec<Route>,
    /// Subnet associations (and the main-table association).
    pub associations: Vec<Association>,
}

/// A route table's association with a subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Association {
    /// `rtbassoc-…`
    pub id: String,
    /// The subnet, for subnet associations.
    pub subnet_id: Option<String>,
    /// True for the VPC's main-table association.
    pub main: bool,
}

/// One route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Destination block (IPv4 or IPv6).
    pub destination: Cidr,
    /// The ENI the route points at, when it points at one.
    pub network_interface_id: Option<String>,
    /// Any other target (gateway, NAT gateway, `local`, instance id), for reports.
    pub other_target: Option<String>,
    /// The VPC's local route (a VPC CIDR), whatever it points at now: AWS lets its target be
    /// replaced by an interface, which would send all traffic within the VPC through it.
    pub local: bool,
}

impl Route {
    /// The route's target as text.
    pub fn target(&self) -> &str {
        self.network_interface_id
            .as_deref()
            .or(self.other_target.as_deref())
            .unwrap_or("none")
    }
}

/// An Elastic IP allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ElasticIp {
    /// `eipalloc-…`
    pub allocation_id: String,
    /// The public address.
    pub public_ip: IpAddr,
    /// `eipassoc-…` when associated.
    pub association_id: Option<String>,
    /// The ENI it is associated with.
    pub network_interface_id: Option<String>,
    /// The private IP it maps to.
    pub private_ip: Option<IpAddr>,
    /// Tags (`f5_cloud_failover_vips` lists one VIP per unit).
    pub tags: Tags,
}

/// An EC2 describe filter (`Name` + `Values`), passed through to EC2 unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// Filter name, e.g. `tag:f5_cloud_failover_label` or `route-table-id`.
    pub name: String,
    /// Accepted values.
    pub values: Vec<String>,
}

impl Filter {
    /// A filter with the given name and values.
    pub fn new<I, S>(name: impl Into<String>, values: I) -> Filter
    where
        I: IntoIterator<Item = S>,
        S: ToString,
    {
        Filter {
            name: name.into(),
            values: values.into_iter().map(|v| v.to_string()).collect(),
        }
    }

    /// One `tag:KEY = VALUE` filter per tag.
    pub fn tags(tags: &Tags) -> Vec<Filter> {
        tags.iter()
            .map(|(k, v)| Filter::new(format!("tag:{k}"), [v]))
            .collect()
    }
}

/// An account and region: the function's own (events are trusted from there), or the
/// caller's (the CLI).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Home {
    /// Account id.
    pub account: String,
    /// Region.
    pub region: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Name` tag reaches refusal reasons, doctor lines, inspect tables and the state file:
    /// its control characters arrive escaped.
    #[test]
    fn name_tags_are_shown_escaped() {
        let unit = |name: &str| Instance {
            id: "i-055fd78af29715fbf".into(),
            state: "running".into(),
            availability_zone: "us-east-1a".into(),
            instance_type: String::new(),
            tags: [("Name".to_string(), name.to_string())].into(),
            network_interfaces: Vec::new(),
        };
        assert_eq!(
            unit("bigip-a\r\n\u{1b}[31mFAILED").display_name(),
            "bigip-a\\r\\n\\u{1b}[31mFAILED"
        );
        assert_eq!(unit("failover01").display_name(), "failover01");
    }
}
