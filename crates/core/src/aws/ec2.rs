//! EC2 adapter over `aws-sdk-ec2`.

use std::net::IpAddr;

use async_trait::async_trait;
use aws_sdk_ec2::operation::associate_address::builders::AssociateAddressFluentBuilder;
use aws_sdk_ec2::operation::create_route::builders::CreateRouteFluentBuilder;
use aws_sdk_ec2::operation::replace_route::builders::ReplaceRouteFluentBuilder;
use aws_sdk_ec2::operation::replace_route_table_association::builders::ReplaceRouteTableAssociationFluentBuilder;
use aws_sdk_ec2::types;
use aws_sdk_ec2::Client;

use super::cloud_error;
use crate::engine::declaration::Tags;
use crate::engine::error::{CloudError, ErrorKind};
use crate::engine::model::{
    Association, ElasticIp, Filter, Instance, NetworkInterface, Route, RouteTable, VpcEndpoint,
    VpcSubnet,
};
use crate::engine::net::Cidr;
use crate::engine::ports::{DryRun, Ec2Describe, Ec2Mutate, Ec2Setup, Mutation};

/// The EC2 port over the AWS SDK.
#[derive(Clone, Debug)]
pub struct AwsEc2 {
    client: Client,
    emulator: Option<super::Emulator>,
}

impl AwsEc2 {
    /// Wraps a client. `emulator` turns on its compatibility shims (see the README).
    pub fn new(client: Client, emulator: Option<super::Emulator>) -> AwsEc2 {
        AwsEc2 { client, emulator }
    }

    /// Whether moto's shims apply.
    fn moto(&self) -> bool {
        self.emulator == Some(super::Emulator::Moto)
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn associate(
        &self,
        allocation_id: &str,
        eni: &str,
        ip: IpAddr,
    ) -> AssociateAddressFluentBuilder {
        self.client
            .associate_address()
            .allocation_id(allocation_id)
            .network_interface_id(eni)
            .private_ip_address(ip.to_string())
            .allow_reassociation(true)
    }

    fn replace(&self, table: &str, destination: Cidr, eni: &str) -> ReplaceRouteFluentBuilder {
        let req = self
            .client
            .replace_route()
            .route_table_id(table)
            .network_interface_id(eni);
        if destination.is_ipv6() {
            req.destination_ipv6_cidr_block(destination.to_string())
        } else {
            req.destination_cidr_block(destination.to_string())
        }
    }

    fn create(&self, table: &str, destination: Cidr, eni: &str) -> CreateRouteFluentBuilder {
        let req = self
            .client
            .create_route()
            .route_table_id(table)
            .network_interface_id(eni);
        if destination.is_ipv6() {
            req.destination_ipv6_cidr_block(destination.to_string())
        } else {
            req.destination_cidr_block(destination.to_string())
        }
    }

    fn swap(&self, association_id: &str, table: &str) -> ReplaceRouteTableAssociationFluentBuilder {
        self.client
            .replace_route_table_association()
            .association_id(association_id)
            .route_table_id(table)
    }
}

fn sdk_filters(filters: &[Filter]) -> Vec<types::Filter> {
    filters
        .iter()
        .map(|f| {
            types::Filter::builder()
                .name(&f.name)
                .set_values(Some(f.values.clone()))
                .build()
        })
        .collect()
}

fn tags(list: &[types::Tag]) -> Tags {
    list.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
        .collect()
}

fn ip(s: Option<&str>) -> Option<IpAddr> {
    s.and_then(|s| s.parse().ok())
}

fn require_filters(op: &'static str, filters: &[Filter]) -> Result<(), CloudError> {
    if filters.is_empty() {
        return Err(CloudError::new(
            op,
            ErrorKind::Rejected,
            "Unfiltered",
            "describe without filters",
        ));
    }
    Ok(())
}

/// Maps an SDK interface (`types::NetworkInterface` and `types::InstanceNetworkInterface`
/// have the same accessors) with the given instance id and tags.
macro_rules! interface_from {
    ($n:expr, $instance_id:expr, $tags:expr) => {{
        let n = $n;
        let primary = ip(n.private_ip_address())?;
        Some(NetworkInterface {
            id: n.network_interface_id()?.to_string(),
            instance_id: $instance_id,
            subnet_id: n.subnet_id().unwrap_or_default().to_string(),
            vpc_id: n.vpc_id().unwrap_or_default().to_string(),
            primary_ip: primary,
            secondary_ips: n
                .private_ip_addresses()
                .iter()
                .filter(|a| a.primary() != Some(true))
                .filter_map(|a| ip(a.private_ip_address()))
                .filter(|a| *a != primary)
                .collect(),
            ipv6_ips: n
                .ipv6_addresses()
                .iter()
                .filter_map(|a| ip(a.ipv6_address()))
                .collect(),
            ipv4_prefixes: n
                .ipv4_prefixes()
                .iter()
                .filter_map(|p| p.ipv4_prefix()?.parse().ok())
                .collect(),
            public_ips: n
                .private_ip_addresses()
                .iter()
                .filter_map(|a| {
                    let public = ip(a.association()?.public_ip())?;
                    Some((ip(a.private_ip_address())?, public))
                })
                .collect(),
            source_dest_check: n.source_dest_check().unwrap_or(true),
            tags: $tags,
            device_index: n
                .attachment()
                .and_then(|a| a.device_index())
                .and_then(|i| u32::try_from(i).ok()),
        })
    }};
}

fn interface(n: &types::NetworkInterface) -> Option<NetworkInterface> {
    let instance_id = n
        .attachment()
        .and_then(|a| a.instance_id())
        .map(str::to_string);
    interface_from!(n, instance_id, tags(n.tag_set()))
}

/// An interface as DescribeInstances reports it (without tags).
fn instance_interface(
    instance_id: &str,
    n: &types::InstanceNetworkInterface,
) -> Option<NetworkInterface> {
    interface_from!(n, Some(instance_id.to_string()), Tags::new())
}

fn route(r: &types::Route) -> Option<Route> {
    let dest = r
        .destination_cidr_block()
        .or(r.destination_ipv6_cidr_block())?;
    let destination = Cidr::parse_lenient(dest).ok()?;
    let other = r
        .gateway_id()
        .or(r.nat_gateway_id())
        .or(r.transit_gateway_id())
        .or(r.vpc_peering_connection_id())
        .or(r.egress_only_internet_gateway_id())
        .or(r.local_gateway_id())
        .or(r.carrier_gateway_id())
        .or(r.core_network_arn())
        .or(r.instance_id())
        .map(str::to_string);
    let local = r.gateway_id() == Some("local")
        || r.origin() == Some(&types::RouteOrigin::CreateRouteTable);
    Some(Route {
        destination,
        local,
        network_interface_id: r.network_interface_id().map(str::to_string),
        other_target: if r.network_interface_id().is_some() {
            None
        } else {
            other
        },
    })
}

/// A mutation's attempts are never abandoned while they may still land: its one attempt may
/// take the whole call time, so the SDK retries only attempts that were answered (an error
/// or a lost connection), never one still in flight. A call the executor gives up on is then
/// known to be possibly in flight, and the run keeps its lock until that call's worst case.
fn one_attempt_at_a_time() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default()
        .timeout_config(super::timeouts(crate::engine::ports::CALL_TIMEOUT))
}

/// Every item of the paginated describe `$call` with `$filters` (at least one: discovery never
/// asks for a whole region), an error named `$op`.
macro_rules! all_items {
    ($client:expr, $call:ident, $op:expr, $filters:expr) => {{
        require_filters($op, $filters)?;
        $client
            .$call()
            .set_filters(Some(sdk_filters($filters)))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(|e| cloud_error($op, e))?
    }};
}

#[async_trait]
impl Ec2Describe for AwsEc2 {
    async fn describe_instances(&self, filters: &[Filter]) -> Result<Vec<Instance>, CloudError> {
        let reservations: Vec<types::Reservation> = all_items!(
            self.client,
            describe_instances,
            "DescribeInstances",
            filters
        );
        let mut out = Vec::new();
        for i in reservations.iter().flat_map(|r| r.instances()) {
            let Some(id) = i.instance_id() else { continue };
            let mut enis: Vec<&types::InstanceNetworkInterface> =
                i.network_interfaces().iter().collect();
            enis.sort_by_key(|n| n.attachment().and_then(|a| a.device_index()).unwrap_or(0));
            out.push(Instance {
                id: id.to_string(),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                availability_zone: i
                    .placement()
                    .and_then(|p| p.availability_zone())
                    .unwrap_or_default()
                    .to_string(),
                instance_type: i
                    .instance_type()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_default(),
                tags: tags(i.tags()),
                network_interfaces: enis
                    .iter()
                    .filter_map(|n| instance_interface(id, n))
                    .collect(),
            });
        }
        Ok(out)
    }

    async fn describe_network_interfaces(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<NetworkInterface>, CloudError> {
        const OP: &str = "DescribeNetworkInterfaces";
        require_filters(OP, filters)?;
        // moto matches `addresses.private-ip-address` against primary IPs only; AWS matches
        // secondary IPs too. Against the emulator that filter is applied here instead.
        let (sent, by_ip): (Vec<Filter>, Vec<Filter>) = filters
            .iter()
            .cloned()
            .partition(|f| !(self.moto() && f.name == "addresses.private-ip-address"));
        let list: Vec<types::NetworkInterface> = self
            .client
            .describe_network_interfaces()
            .set_filters((!sent.is_empty()).then(|| sdk_filters(&sent)))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .map_err(|e| cloud_error(OP, e))?;
        Ok(list
            .iter()
            .filter_map(interface)
            .filter(|n| {
                by_ip.iter().all(|f| {
                    f.values
                        .iter()
                        .filter_map(|v| v.parse().ok())
                        .any(|a| n.primary_ip == a || n.secondary_ips.contains(&a))
                })
            })
            .collect())
    }

    async fn describe_route_tables(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<RouteTable>, CloudError> {
        let list: Vec<types::RouteTable> = all_items!(
            self.client,
            describe_route_tables,
            "DescribeRouteTables",
            filters
        );
        Ok(list
            .iter()
            .filter_map(|t| {
                Some(RouteTable {
                    id: t.route_table_id()?.to_string(),
                    vpc_id: t.vpc_id().unwrap_or_default().to_string(),
                    tags: tags(t.tags()),
                    routes: t.routes().iter().filter_map(route).collect(),
                    associations: t
                        .associations()
                        .iter()
                        .filter_map(|a| {
                            Some(Association {
                                id: a.route_table_association_id()?.to_string(),
                                subnet_id: a.subnet_id().map(str::to_string),
                                main: a.main().unwrap_or(false),
                            })
                        })
                        .collect(),
                })
            })
            .collect())
    }

    async fn describe_addresses(&self, filters: &[Filter]) -> Result<Vec<ElasticIp>, CloudError> {
        const OP: &str = "DescribeAddresses";
        require_filters(OP, filters)?;
        let out = self
            .client
            .describe_addresses()
            .set_filters(Some(sdk_filters(filters)))
            .send()
            .await
            .map_err(|e| cloud_error(OP, e))?;
        Ok(out
            .addresses()
            .iter()
            .filter_map(|a| {
                Some(ElasticIp {
                    allocation_id: a.allocation_id()?.to_string(),
                    public_ip: ip(a.public_ip())?,
                    // An unassociated address has no ids (moto answers empty strings).
                    association_id: a
                        .association_id()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                    network_interface_id: a
                        .network_interface_id()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                    // moto reports the interface's primary IP, not the one the EIP maps
                    // to: unknown, and the engine judges such an EIP by its interface.
                    private_ip: if self.moto() {
                        None
                    } else {
                        ip(a.private_ip_address())
                    },
                    tags: tags(a.tags()),
                })
            })
            .collect())
    }

    async fn impaired_instances(&self, instance_ids: &[String]) -> Result<Vec<String>, CloudError> {
        const OP: &str = "DescribeInstanceStatus";
        let mut out = Vec::new();
        for chunk in instance_ids.chunks(100) {
            let resp = self
                .client
                .describe_instance_status()
                .set_instance_ids(Some(chunk.to_vec()))
                .include_all_instances(true)
                .send()
                .await
                .map_err(|e| cloud_error(OP, e))?;
            for s in resp.instance_statuses() {
                let bad = |x: Option<&types::InstanceStatusSummary>| {
                    x.and_then(|x| x.status()) == Some(&types::SummaryStatus::Impaired)
                };
                if bad(s.instance_status()) || bad(s.system_status()) {
                    out.extend(s.instance_id().map(str::to_string));
                }
            }
        }
        Ok(out)
    }

    async fn describe_subnets(&self, filters: &[Filter]) -> Result<Vec<VpcSubnet>, CloudError> {
        let list: Vec<types::Subnet> =
            all_items!(self.client, describe_subnets, "DescribeSubnets", filters);
        Ok(list
            .iter()
            .filter_map(|s| {
                Some(VpcSubnet {
                    id: s.subnet_id()?.to_string(),
                    vpc_id: s.vpc_id()?.to_string(),
                })
            })
            .collect())
    }

    async fn describe_vpc_endpoints(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<VpcEndpoint>, CloudError> {
        let list: Vec<types::VpcEndpoint> = all_items!(
            self.client,
            describe_vpc_endpoints,
            "DescribeVpcEndpoints",
            filters
        );
        Ok(list
            .iter()
            .filter_map(|e| {
                Some(VpcEndpoint {
                    id: e.vpc_endpoint_id()?.to_string(),
                    vpc_id: e.vpc_id().unwrap_or_default().to_string(),
                    service_name: e.service_name().unwrap_or_default().to_string(),
                    kind: e
                        .vpc_endpoint_type()
                        .map(|k| k.as_str().to_string())
                        .unwrap_or_default(),
                    // EC2 answers `available` (its model spells the value `Available`).
                    state: e
                        .state()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    private_dns: e.private_dns_enabled().unwrap_or(false),
                    route_table_ids: e.route_table_ids().to_vec(),
                })
            })
            .collect())
    }
}

#[async_trait]
impl Ec2Setup for AwsEc2 {
    async fn create_tags(&self, resources: &[String], tags: &Tags) -> Result<(), CloudError> {
        let tags = tags
            .iter()
            .map(|(k, v)| types::Tag::builder().key(k).value(v).build())
            .collect();
        self.client
            .create_tags()
            .set_resources(Some(resources.to_vec()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| cloud_error("CreateTags", e))?;
        Ok(())
    }

    async fn disable_source_dest_check(&self, eni: &str) -> Result<(), CloudError> {
        self.client
            .modify_network_interface_attribute()
            .network_interface_id(eni)
            .source_dest_check(types::AttributeBooleanValue::builder().value(false).build())
            .send()
            .await
            .map_err(|e| cloud_error("ModifyNetworkInterfaceAttribute", e))?;
        Ok(())
    }
}

#[async_trait]
impl Ec2Mutate for AwsEc2 {
    async fn dry_run(&self, m: &Mutation) -> Result<DryRun, CloudError> {
        let op = m.operation();
        if !m.has_dry_run() {
            return Ok(DryRun::Unchecked);
        }
        let sent = match m {
            Mutation::AssociateAddress {
                allocation_id,
                network_interface_id,
                private_ip,
            } => self
                .associate(allocation_id, network_interface_id, *private_ip)
                .dry_run(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| cloud_error(op, e)),
            Mutation::ReplaceRouteTableAssociation { .. } if self.moto() => {
                return Ok(DryRun::Unchecked)
            }
            Mutation::ReplaceRouteTableAssociation {
                association_id,
                route_table_id,
            } => self
                .swap(association_id, route_table_id)
                .dry_run(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| cloud_error(op, e)),
            // moto performs these two even with DryRun set: never send them to the emulator.
            _ if self.moto() => return Ok(DryRun::Unchecked),
            Mutation::ReplaceRoute {
                route_table_id,
                destination,
                network_interface_id,
            } => self
                .replace(route_table_id, *destination, network_interface_id)
                .dry_run(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| cloud_error(op, e)),
            Mutation::CreateRoute {
                route_table_id,
                destination,
                network_interface_id,
            } => self
                .create(route_table_id, *destination, network_interface_id)
                .dry_run(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| cloud_error(op, e)),
            // No DryRun parameter: answered above.
            Mutation::AssignPrivateIps { .. }
            | Mutation::AssignIpv4Prefixes { .. }
            | Mutation::UnassignIpv4Prefixes { .. }
            | Mutation::AssignIpv6 { .. }
            | Mutation::UnassignIpv6 { .. } => return Ok(DryRun::Unchecked),
        };
        match sent {
            Err(e) if e.code.as_deref() == Some("DryRunOperation") => Ok(DryRun::Allowed),
            Err(e) if e.code.as_deref() == Some("UnauthorizedOperation") => Ok(DryRun::Denied),
            Err(e) => Err(e),
            Ok(()) => Err(CloudError::new(
                op,
                ErrorKind::Rejected,
                "DryRunIgnored",
                "the endpoint performed the call despite DryRun",
            )),
        }
    }

    async fn mutate(&self, m: &Mutation) -> Result<Option<String>, CloudError> {
        let op = m.operation();
        Ok(match m {
            Mutation::AssociateAddress {
                allocation_id,
                network_interface_id,
                private_ip,
            } => {
                let out = self
                    .associate(allocation_id, network_interface_id, *private_ip)
                    .customize()
                    .config_override(one_attempt_at_a_time())
                    .send()
                    .await
                    .map_err(|e| cloud_error(op, e))?;
                Some(out.association_id().unwrap_or_default().to_string())
            }
            Mutation::ReplaceRoute {
                route_table_id,
                destination,
                network_interface_id,
            } => {
                self.replace(route_table_id, *destination, network_interface_id)
                    .customize()
                    .config_override(one_attempt_at_a_time())
                    .send()
                    .await
                    .map_err(|e| cloud_error(op, e))?;
                None
            }
            Mutation::CreateRoute {
                route_table_id,
                destination,
                network_interface_id,
            } => {
                self.create(route_table_id, *destination, network_interface_id)
                    .customize()
                    .config_override(one_attempt_at_a_time())
                    .send()
                    .await
                    .map_err(|e| cloud_error(op, e))?;
                None
            }
            Mutation::ReplaceRouteTableAssociation {
                association_id,
                route_table_id,
            } => {
                let out = self
                    .swap(association_id, route_table_id)
                    .customize()
                    .config_override(one_attempt_at_a_time())
                    .send()
                    .await
                    .map_err(|e| cloud_error(op, e))?;
                Some(out.new_association_id().unwrap_or_default().to_string())
            }
            Mutation::AssignIpv4Prefixes {
                network_interface_id,
                prefixes,
            } => {
                self.client
                    .assign_private_ip_addresses()
                    .network_interface_id(network_interface_id)
                    .set_ipv4_prefixes(Some(texts(prefixes)))
                    .customize()
                    .config_override(one_attempt_at_a_time())
                    .send()
                    .await
                    .map_err(|e| cloud_error(op, e))?;
                None
            }
            Mutation::UnassignIpv4Prefixes {
                network_interface_id,
                prefixes,
            } => {
                self.client
                    .unassign_private_ip_addresses()
                    .network_interface_id(network_interface_id)
                    .set_ipv4_prefixes(Some(texts(prefixes)))
                    .customize()
                    .config_override(one_attempt_at_a_time())
                    .send()
                    .await
                    .map_err(|e| cloud_error(op, e))?;
                None
            }
            Mutation::AssignPrivateIps {
                network_interface_id,
                ips,
            } => {
                self.client
                    .assign_private_ip_addresses()
                    .network_interface_id(network_interface_id)
                    .set_private_ip_addresses(Some(texts(ips)))
                    .allow_reassignment(true)
                    .customize()
                    .config_override(one_attempt_at_a_time())
                    .send()
                    .await
                    .map_err(|e| cloud_error(op, e))?;
                None
            }
            Mutation::AssignIpv6 {
                network_interface_id,
                ips,
            } => {
                self.client
                    .assign_ipv6_addresses()
                    .network_interface_id(network_interface_id)
                    .set_ipv6_addresses(Some(texts(ips)))
                    .customize()
                    .config_override(one_attempt_at_a_time())
                    .send()
                    .await
                    .map_err(|e| cloud_error(op, e))?;
                None
            }
            Mutation::UnassignIpv6 {
                network_interface_id,
                ips,
            } => {
                self.client
                    .unassign_ipv6_addresses()
                    .network_interface_id(network_interface_id)
                    .set_ipv6_addresses(Some(texts(ips)))
                    .customize()
                    .config_override(one_attempt_at_a_time())
                    .send()
                    .await
                    .map_err(|e| cloud_error(op, e))?;
                None
            }
        })
    }
}

/// Each item as EC2's request lists take it (text).
fn texts<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}
