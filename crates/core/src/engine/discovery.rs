//! Discovery: one snapshot of everything the planner needs, read with filtered describes
//! run in parallel (three rounds: scoped resources, interfaces by address, member instances).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;

use futures::future::{try_join, try_join3, try_join_all};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::engine::declaration::{
    AddressGroup, AddressRange, Declaration, FailoverAddresses, Managed, NextHops, RouteGroup,
    Scope, Tags,
};
use crate::engine::error::CloudError;
use crate::engine::model::{ElasticIp, Filter, Instance, NetworkInterface, RouteTable};
use crate::engine::net::Cidr;
use crate::engine::ports::{Ec2Describe, ObjectStore};

/// Route-table tag listing next hops for `discoveryType: routeTag`.
pub const SELF_IPS_TAG: &str = "f5_self_ips";
/// EIP tag listing one VIP per unit.
pub const VIPS_TAG: &str = "f5_cloud_failover_vips";
/// The same tag under its name in CFE's user guide up to v1.1, which CFE still reads
/// (constants.js `AWS_VIPS_TAGS`, "keep VIPS for backwards compatability").
pub const LEGACY_VIPS_TAG: &str = "VIPS";
/// ENI tag pairing interfaces across units for same-AZ secondary IP moves.
pub const NIC_MAP_TAG: &str = "f5_cloud_failover_nic_map";
/// EC2 accepts at most this many values in one filter.
const MAX_FILTER_VALUES: usize = 200;
/// GetBucketTagging calls in flight when finding the state bucket by tags.
const BUCKET_TAG_CONCURRENCY: usize = 16;

/// A route table in scope, with the index of the route group that selected it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopedTable {
    /// Index into `Declaration::route_groups()`.
    pub group: usize,
    /// The table.
    pub table: RouteTable,
}

/// An EIP in scope with the VIPs it may map to (one per unit).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopedEip {
    /// The EIP.
    pub eip: ElasticIp,
    /// Candidate private IPs, in declaration/tag order.
    pub vips: Vec<IpAddr>,
}

/// An Elastic IP on an address of a declared IPv4 prefix: it follows the prefix (CFE 2.2+).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixEip {
    /// The EIP.
    pub eip: ElasticIp,
    /// The prefix address it maps to: its private IP, or, when the release of the prefix left
    /// it unassociated, the address an unfinished run's state file names.
    pub address: IpAddr,
}

/// An Elastic IP the release of a prefix left unassociated, with the prefix address it
/// belongs on (from an unfinished run's state file: the cloud no longer says).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetachedEip {
    /// The EIP's allocation id.
    pub allocation_id: String,
    /// The prefix address it belongs on.
    pub address: IpAddr,
}

/// A delegated prefix a run released and did not assign again (it was stopped half way): the
/// interface that released it, whose subnet it belongs in (from the state file: the cloud no
/// longer says).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetachedPrefix {
    /// The prefix.
    pub prefix: Cidr,
    /// The interface that released it.
    pub network_interface_id: String,
}

/// What the cloud looked like when the run started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Cluster members (instances owning next hops, VIPs or tagged interfaces), by id.
    pub members: Vec<Instance>,
    /// Route tables in scope.
    pub route_tables: Vec<ScopedTable>,
    /// Route tables named by `scopingName` that do not exist.
    pub missing_route_tables: Vec<String>,
    /// Route groups selected by tags that matched no table.
    pub empty_tag_groups: Vec<usize>,
    /// Tables selected by two route groups (the planner refuses with these).
    pub tables_in_two_groups: Vec<String>,
    /// EIPs in scope.
    pub elastic_ips: Vec<ScopedEip>,
    /// EIPs on addresses of the declared IPv4 prefixes (any holder; the planner moves those
    /// on the interface holding the prefix).
    pub prefix_eips: Vec<PrefixEip>,
    /// Declared prefixes no member holds that a stopped run released (from the state file).
    pub released_prefixes: Vec<DetachedPrefix>,
    /// EIPs named by `addressGroupDefinitions` that do not exist.
    pub missing_elastic_ips: Vec<IpAddr>,
    /// EIPs carrying the scoping tags but no usable `f5_cloud_failover_vips` (or `VIPS`) tag.
    pub eips_without_vips: Vec<String>,
    /// Interfaces carrying the scoping tags and `f5_cloud_failover_nic_map`.
    pub nic_map_interfaces: Vec<NetworkInterface>,
    /// The state bucket, when found.
    pub bucket: Option<String>,
    /// Other buckets that also matched the storage scoping tags.
    pub extra_buckets: Vec<String>,
    /// Members failing their EC2 status checks.
    pub impaired: Vec<String>,
    /// The VPC the cluster lives in (declared, or the one its scope resolves to).
    pub vpc_id: Option<String>,
    /// Why the scope does not resolve to one VPC, or names a resource outside it: the
    /// planner refuses with these.
    pub vpc_conflicts: Vec<String>,
    /// Resources selected by tags but left alone, with the reason (warnings): in another
    /// VPC, or an EIP whose VIPs another EIP in scope already maps to.
    pub left_alone: Vec<String>,
}

impl Snapshot {
    /// The member with this id.
    pub fn member(&self, id: &str) -> Option<&Instance> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The member interface holding `ip`, with its instance.
    pub fn holder_of(&self, ip: IpAddr) -> Option<(&Instance, &NetworkInterface)> {
        self.members
            .iter()
            .find_map(|m| m.interface_with(ip).map(|n| (m, n)))
    }

    /// Whether `m` can carry traffic: running, and passing its EC2 status checks.
    pub fn healthy(&self, m: &Instance) -> bool {
        m.state == "running" && !self.impaired.contains(&m.id)
    }

    /// The member owning interface `eni_id`.
    pub fn owner_of_interface(&self, eni_id: &str) -> Option<&Instance> {
        self.members
            .iter()
            .find(|m| m.network_interfaces.iter().any(|n| n.id == eni_id))
    }

    /// Every declared range of every table in scope, with the table's route group: what the
    /// planner, the picture, doctor and discovery walk.
    pub fn declared_routes<'a>(
        &'a self,
        decl: &'a Declaration,
    ) -> impl Iterator<Item = (&'a ScopedTable, &'a RouteGroup, &'a AddressRange)> + 'a {
        let groups = decl.route_groups();
        self.route_tables.iter().flat_map(move |st| {
            let g = &groups[st.group];
            g.ranges.iter().map(move |r| (st, g, r))
        })
    }

    /// The declared routes `decl` moves: all of them, or a failover group's own
    /// ([`Declaration::manages`]).
    pub fn managed_routes<'a>(
        &'a self,
        decl: &'a Declaration,
    ) -> impl Iterator<Item = (&'a ScopedTable, &'a RouteGroup, &'a AddressRange)> + 'a {
        self.declared_routes(decl)
            .filter(move |(st, _, r)| decl.manages(Managed::Route(st.group, r.range)))
    }

    /// The Elastic IPs in scope that `decl` moves (a failover group's own).
    pub fn managed_eips<'a>(
        &'a self,
        decl: &'a Declaration,
    ) -> impl Iterator<Item = &'a ScopedEip> + 'a {
        self.elastic_ips
            .iter()
            .filter(move |e| decl.manages(Managed::Address(e.eip.public_ip)))
    }
}

/// Finds again the EIPs an unfinished run was moving onto addresses of the declared prefixes
/// (`detached`, from its state file): the release of a prefix disassociates the EIPs on its
/// addresses, so only the log still knows where they belong. Those still unassociated join
/// `snap.prefix_eips` with the logged address.
pub async fn recover_prefix_eips(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
    detached: &[DetachedEip],
    snap: &mut Snapshot,
) -> Result<(), CloudError> {
    let Some(a) = decl.addresses() else {
        return Ok(());
    };
    let lost: BTreeMap<&str, IpAddr> = detached
        .iter()
        .filter(|d| {
            a.prefixes().any(|p| p.contains(d.address))
                && !snap
                    .prefix_eips
                    .iter()
                    .any(|e| e.eip.allocation_id == d.allocation_id)
        })
        .map(|d| (d.allocation_id.as_str(), d.address))
        .collect();
    if lost.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = lost.keys().copied().collect();
    for eip in ec2
        .describe_addresses(&[Filter::new("allocation-id", &ids)])
        .await?
    {
        if eip.network_interface_id.is_none() {
            if let Some(&address) = lost.get(eip.allocation_id.as_str()) {
                snap.prefix_eips.push(PrefixEip { eip, address });
            }
        }
    }
    Ok(())
}

impl Snapshot {
    /// The prefix EIPs found only through the state file (unassociated).
    pub fn detached_eips(&self) -> Vec<DetachedEip> {
        self.prefix_eips
            .iter()
            .filter(|p| p.eip.network_interface_id.is_none())
            .map(|p| DetachedEip {
                allocation_id: p.eip.allocation_id.clone(),
                address: p.address,
            })
            .collect()
    }
}

/// The next-hop addresses that apply to `range` of `group` in `table` (the one rule for plan,
/// doctor and discovery): the range's own list, else the group's; with `discoveryType:
/// routeTag`, the table's `f5_self_ips` tag. `Err` says why none apply.
pub fn next_hops_for(
    group: &RouteGroup,
    range: &AddressRange,
    table: &RouteTable,
) -> Result<Vec<IpAddr>, String> {
    match range.next_hops.as_ref().unwrap_or(&group.default_next_hops) {
        NextHops::Static(items) => Ok(items.clone()),
        NextHops::RouteTag => match table.tags.get(SELF_IPS_TAG).map(|v| ips_from_tag(v)) {
            Some(items) if !items.is_empty() => Ok(items),
            _ => Err(format!(
                "route table {} has no usable {SELF_IPS_TAG} tag, which discoveryType \"routeTag\" needs (e.g. \"10.0.0.11,10.0.4.11\")",
                table.id
            )),
        },
    }
}

/// An EIP's list of VIPs: its `f5_cloud_failover_vips` tag, else its legacy `VIPS` tag. (CFE
/// took whichever of the two EC2 listed first; tag order is not kept here, so the current
/// name wins.)
pub fn vips_tag(tags: &Tags) -> Option<&str> {
    tags.get(VIPS_TAG)
        .or_else(|| tags.get(LEGACY_VIPS_TAG))
        .map(String::as_str)
}

/// Parses a comma/space separated list of IPs from a tag value (bad items are skipped).
pub fn ips_from_tag(value: &str) -> Vec<IpAddr> {
    value
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Reads the snapshot for `decl`, finding the state bucket in the same round.
pub async fn discover(
    ec2: &dyn Ec2Describe,
    store: &dyn ObjectStore,
    decl: &Declaration,
) -> Result<Snapshot, CloudError> {
    snapshot(
        ec2,
        decl,
        resolve_bucket(store, &decl.external_storage.scope),
    )
    .await
}

/// The ids of `decl`'s members, as a snapshot finds them (the owners of the interfaces it
/// selects), without the snapshot's last round (the members' details and status checks) or
/// the state bucket: the fleet's index.
pub async fn member_ids(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
) -> Result<Vec<String>, CloudError> {
    let (snap, enis) = selected_interfaces(ec2, decl, async { Ok((None, Vec::new())) }).await?;
    // A scope that spans VPCs names no pair: its "members" would be other pairs' instances.
    if let Some(conflict) = snap.vpc_conflicts.first() {
        return Err(CloudError::new(
            "DescribeNetworkInterfaces",
            crate::engine::error::ErrorKind::Rejected,
            "ScopeSpansVpcs",
            conflict.clone(),
        ));
    }
    Ok(owners(&enis, &snap))
}

/// Reads the snapshot for `decl` when the state bucket is already known.
pub async fn discover_cloud(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
    bucket: &str,
) -> Result<Snapshot, CloudError> {
    snapshot(ec2, decl, async {
        Ok((Some(bucket.to_string()), Vec::new()))
    })
    .await
}

type BucketLookup = (Option<String>, Vec<String>);

/// Reads the snapshot for `decl` in three rounds of describes (`bucket` runs in the first).
async fn snapshot(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
    bucket: impl Future<Output = Result<BucketLookup, CloudError>>,
) -> Result<Snapshot, CloudError> {
    let (mut snap, enis) = selected_interfaces(ec2, decl, bucket).await?;
    add_members(ec2, &mut snap, &enis).await?;
    leave_foreign_eips(&mut snap, decl);
    Ok(snap)
}

/// Rounds 1 and 2 of a snapshot: what `decl` selects, and the interfaces holding its
/// addresses (within its VPC).
async fn selected_interfaces(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
    bucket: impl Future<Output = Result<BucketLookup, CloudError>>,
) -> Result<(Snapshot, Vec<NetworkInterface>), CloudError> {
    let mut snap = scoped_resources(ec2, decl, bucket).await?;
    settle_vpc_from_scope(&mut snap, decl.extension.vpc_id.as_deref());
    let (enis, eip_enis) = interfaces_by_address(ec2, decl, &snap).await?;
    let enis = keep_to_vpc(&mut snap, decl, enis, &eip_enis);
    one_eip_per_vip(&mut snap, decl);
    Ok((snap, enis))
}

/// The members: the instances the selected interfaces (and the NIC-map ones) are attached to.
fn owners(enis: &[NetworkInterface], snap: &Snapshot) -> Vec<String> {
    let ids: BTreeSet<String> = enis
        .iter()
        .chain(&snap.nic_map_interfaces)
        .filter_map(|n| n.instance_id.clone())
        .collect();
    ids.into_iter().collect()
}

/// `filters`, within the declared VPC when there is one.
fn in_vpc(declared_vpc: Option<&str>, mut filters: Vec<Filter>) -> Vec<Filter> {
    filters.extend(declared_vpc.map(|v| Filter::new("vpc-id", [v])));
    filters
}

/// Round 1: everything selected by id or tag, and the state bucket, in parallel.
async fn scoped_resources(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
    bucket: impl Future<Output = Result<BucketLookup, CloudError>>,
) -> Result<Snapshot, CloudError> {
    let addresses = decl.addresses();
    let declared_vpc = decl.extension.vpc_id.as_deref();
    // Tag selections only within the declared VPC; a table named by id is checked against it
    // afterwards, to say so.
    let ((tables, eips, nic_map), (prefix_eips, (bucket, extra_buckets))) = try_join(
        try_join3(
            describe_scoped_tables(ec2, decl, declared_vpc),
            describe_scoped_eips(ec2, addresses),
            describe_nic_map_interfaces(ec2, addresses, declared_vpc),
        ),
        try_join(describe_prefix_eips(ec2, addresses), bucket),
    )
    .await?;
    let mut snap = Snapshot {
        bucket,
        extra_buckets,
        nic_map_interfaces: nic_map,
        prefix_eips,
        ..Snapshot::default()
    };
    scope_tables(&mut snap, decl.route_groups(), tables);
    scope_eips(&mut snap, decl, eips);
    Ok(snap)
}

/// The route tables each route group selects (by id, or by tags within the declared VPC).
async fn describe_scoped_tables(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
    declared_vpc: Option<&str>,
) -> Result<Vec<(usize, Vec<RouteTable>)>, CloudError> {
    try_join_all(
        decl.route_groups()
            .iter()
            .enumerate()
            .map(|(i, g)| async move {
                let filters = match &g.scope {
                    Scope::Name(id) => vec![Filter::new("route-table-id", [id])],
                    Scope::Tags(tags) => in_vpc(declared_vpc, Filter::tags(tags)),
                };
                ec2.describe_route_tables(&filters).await.map(|t| (i, t))
            }),
    )
    .await
}

/// The EIPs the declaration names, or, without any address groups, those its tags select.
async fn describe_scoped_eips(
    ec2: &dyn Ec2Describe,
    addresses: Option<&FailoverAddresses>,
) -> Result<Vec<ElasticIp>, CloudError> {
    let Some(a) = addresses else {
        return Ok(Vec::new());
    };
    let explicit: Vec<IpAddr> = a.elastic_ip_groups().map(|(ip, _)| ip).collect();
    let mut filters = Vec::new();
    if !explicit.is_empty() {
        filters.push(Filter::new("public-ip", &explicit));
        if a.require_scoping_tags {
            filters.extend(Filter::tags(&a.scoping_tags));
        }
    } else if a.groups.is_empty() && !a.scoping_tags.is_empty() {
        filters = Filter::tags(&a.scoping_tags);
    } else {
        return Ok(Vec::new());
    }
    ec2.describe_addresses(&filters).await
}

/// EIPs on the prefixes' addresses (CFE 2.2+ finds them by private address, as here).
async fn describe_prefix_eips(
    ec2: &dyn Ec2Describe,
    addresses: Option<&FailoverAddresses>,
) -> Result<Vec<PrefixEip>, CloudError> {
    let Some(a) = addresses else {
        return Ok(Vec::new());
    };
    let all: Vec<IpAddr> = a.prefixes().flat_map(|p| p.ipv4_addresses()).collect();
    // By address only, whatever `requireScopingTags` says (as CFE): the release detaches
    // them all, so an EIP left out would stay detached (the planner warns of untagged ones).
    let found = try_join_all(all.chunks(MAX_FILTER_VALUES).map(|c| async move {
        ec2.describe_addresses(&[Filter::new("private-ip-address", c)])
            .await
    }))
    .await?;
    Ok(found
        .into_iter()
        .flatten()
        .filter_map(|eip| eip.private_ip.map(|address| PrefixEip { eip, address }))
        .collect())
}

/// The interfaces with the address scoping tags and `f5_cloud_failover_nic_map`.
async fn describe_nic_map_interfaces(
    ec2: &dyn Ec2Describe,
    addresses: Option<&FailoverAddresses>,
    declared_vpc: Option<&str>,
) -> Result<Vec<NetworkInterface>, CloudError> {
    let address_tags = addresses
        .map(|a| a.scoping_tags.clone())
        .filter(|t| !t.is_empty());
    match &address_tags {
        Some(tags) => {
            let mut filters = Filter::tags(tags);
            filters.push(Filter::new("tag-key", [NIC_MAP_TAG]));
            ec2.describe_network_interfaces(&in_vpc(declared_vpc, filters))
                .await
        }
        None => Ok(Vec::new()),
    }
}

/// Puts round 1's tables into `snap`, each once, noting what no table or two groups matched.
fn scope_tables(snap: &mut Snapshot, groups: &[RouteGroup], tables: Vec<(usize, Vec<RouteTable>)>) {
    let mut seen_tables: BTreeMap<String, usize> = BTreeMap::new();
    for (i, found) in tables {
        if found.is_empty() {
            match &groups[i].scope {
                Scope::Name(id) => snap.missing_route_tables.push(id.clone()),
                Scope::Tags(_) => snap.empty_tag_groups.push(i),
            }
        }
        for table in found {
            match seen_tables.get(&table.id) {
                None => {
                    seen_tables.insert(table.id.clone(), i);
                    snap.route_tables.push(ScopedTable { group: i, table });
                }
                Some(&first) => snap.tables_in_two_groups.push(format!(
                    "route table {} is selected by route groups {first} and {i}: one group would silently win; merge their ranges into one group, or scope them to different tables",
                    table.id
                )),
            }
        }
    }
}

/// Settles the VPC after round 1: the declared one, else the one the scoped resources are in.
fn settle_vpc_from_scope(snap: &mut Snapshot, declared_vpc: Option<&str>) {
    snap.vpc_id = declared_vpc.map(str::to_string);
    match declared_vpc {
        Some(vpc) => {
            for st in &snap.route_tables {
                if st.table.vpc_id != vpc {
                    snap.vpc_conflicts.push(format!(
                        "route table {} is in {}, outside the cluster's VPC {vpc} (serverless.vpcId)",
                        st.table.id, st.table.vpc_id
                    ));
                }
            }
        }
        None => {
            let mut evidence = VpcEvidence::default();
            for st in &snap.route_tables {
                evidence.add(&st.table.vpc_id, &st.table.id);
            }
            for n in &snap.nic_map_interfaces {
                evidence.add(&n.vpc_id, &n.id);
            }
            evidence.settle(snap);
        }
    }
}

/// Elastic IPs on a member's VIP (a secondary private IP, or an address of a delegated
/// prefix) that the scope does not select: with addresses enabled they would never follow a
/// failover. One DescribeAddresses by the members' interfaces (made by dry runs and doctor,
/// never on a failover's path); none when addresses are disabled. Each with its member.
pub async fn unscoped_vip_eips(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
    snap: &Snapshot,
) -> Result<Vec<(ElasticIp, String)>, CloudError> {
    let enis: BTreeSet<String> = snap
        .members
        .iter()
        .flat_map(|m| m.network_interfaces.iter().map(|n| n.id.clone()))
        .collect();
    if decl.addresses().is_none() || enis.is_empty() {
        return Ok(Vec::new());
    }
    let scoped: BTreeSet<&str> = snap
        .elastic_ips
        .iter()
        .map(|e| e.eip.allocation_id.as_str())
        .collect();
    let found = ec2
        .describe_addresses(&[Filter::new("network-interface-id", &enis)])
        .await?;
    let wanted = decl
        .addresses()
        .map(|a| a.scoping_tags.clone())
        .unwrap_or_default();
    // Tagged as the scope asks but left out for another reason (its VIPs tag, another VPC):
    // the elastic-ips check and `leftAlone` say why; here only the untagged.
    let tagged = |e: &ElasticIp| wanted.iter().all(|(k, v)| e.tags.get(k) == Some(v));
    Ok(found
        .into_iter()
        .filter(|e| !scoped.contains(e.allocation_id.as_str()) && !tagged(e))
        .filter_map(|e| {
            let (eni, ip) = (e.network_interface_id.as_deref()?, e.private_ip?);
            let m = snap.owner_of_interface(eni)?;
            let n = m.network_interfaces.iter().find(|n| n.id == eni)?;
            let vip =
                n.secondary_ips.contains(&ip) || n.ipv4_prefixes.iter().any(|p| p.contains(ip));
            vip.then(|| (e, m.id.clone()))
        })
        .collect())
}

/// What to say of an Elastic IP [`unscoped_vip_eips`] found: why it would stay behind, and the
/// command that brings it in scope.
pub fn unscoped_eip_words(decl: &Declaration, e: &ElasticIp, member: &str) -> (String, String) {
    let tags = decl
        .addresses()
        .map(|a| a.scoping_tags.clone())
        .unwrap_or_default();
    let shown: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let args: Vec<String> = tags
        .iter()
        .map(|(k, v)| format!("'Key={k},Value={v}'"))
        .collect();
    (
        format!(
            "Elastic IP {} ({}) is on {member}'s VIP {} but failoverAddresses.scopingTags ({}) do not select it: it would not follow a failover",
            e.public_ip,
            e.allocation_id,
            e.private_ip.map(|i| i.to_string()).unwrap_or_default(),
            shown.join(", ")
        ),
        format!(
            "aws ec2 create-tags --resources {} --tags {}",
            e.allocation_id,
            args.join(" ")
        ),
    )
}

/// Every address the plan refers to: next hops, VIPs and declared interface addresses. The
/// declared (static) next hops count whether or not a table is in scope: a table missing its
/// scoping tag is a warning, and the pair is still found by them.
fn wanted_addresses(snap: &Snapshot, decl: &Declaration) -> BTreeSet<IpAddr> {
    let groups = decl.route_groups();
    let mut wanted: BTreeSet<IpAddr> = BTreeSet::new();
    for g in groups {
        for r in &g.ranges {
            if let NextHops::Static(items) = r.next_hops.as_ref().unwrap_or(&g.default_next_hops) {
                wanted.extend(items);
            }
        }
    }
    for (st, g, r) in snap.declared_routes(decl) {
        wanted.extend(next_hops_for(g, r, &st.table).unwrap_or_default());
    }
    for e in &snap.elastic_ips {
        wanted.extend(&e.vips);
    }
    if let Some(a) = decl.addresses() {
        for g in &a.groups {
            if let AddressGroup::NetworkInterfaceAddress { scoping_address } = g {
                wanted.insert(*scoping_address);
            }
        }
    }
    wanted
}

/// The filters finding the interfaces that hold `wanted` (within `vpc` when it is known).
fn holder_filters(wanted: &BTreeSet<IpAddr>, vpc: Option<&str>) -> Vec<Vec<Filter>> {
    let v4: Vec<IpAddr> = wanted.iter().copied().filter(IpAddr::is_ipv4).collect();
    let v6: Vec<IpAddr> = wanted.iter().copied().filter(IpAddr::is_ipv6).collect();
    let vpc_filter: Vec<Filter> = vpc.iter().map(|v| Filter::new("vpc-id", [v])).collect();
    let mut calls = Vec::new();
    for chunk in v4.chunks(MAX_FILTER_VALUES) {
        let mut f = vec![Filter::new("addresses.private-ip-address", chunk)];
        f.extend(vpc_filter.iter().cloned());
        calls.push(f);
    }
    for chunk in v6.chunks(MAX_FILTER_VALUES) {
        let mut f = vec![Filter::new("ipv6-addresses.ipv6-address", chunk)];
        f.extend(vpc_filter.iter().cloned());
        calls.push(f);
    }
    calls
}

/// Round 2: the interfaces holding the wanted addresses, and the VPCs of the EIPs' interfaces.
async fn interfaces_by_address(
    ec2: &dyn Ec2Describe,
    decl: &Declaration,
    snap: &Snapshot,
) -> Result<(Vec<NetworkInterface>, BTreeMap<String, String>), CloudError> {
    let calls = holder_filters(&wanted_addresses(snap, decl), snap.vpc_id.as_deref());
    let eip_enis: Vec<String> = snap
        .elastic_ips
        .iter()
        .filter_map(|e| e.eip.network_interface_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (enis, eip_enis) = try_join(
        try_join_all(calls.iter().map(|f| ec2.describe_network_interfaces(f))),
        try_join_all(eip_enis.chunks(MAX_FILTER_VALUES).map(|c| async move {
            ec2.describe_network_interfaces(&[Filter::new("network-interface-id", c)])
                .await
        })),
    )
    .await?;
    let enis: Vec<NetworkInterface> = enis.into_iter().flatten().collect();
    let eip_enis: BTreeMap<String, String> = eip_enis
        .into_iter()
        .flatten()
        .map(|n| (n.id, n.vpc_id))
        .collect();
    Ok((enis, eip_enis))
}

/// Settles the VPC from round 2 if still open, then keeps interfaces and EIPs to it.
fn keep_to_vpc(
    snap: &mut Snapshot,
    decl: &Declaration,
    mut enis: Vec<NetworkInterface>,
    eip_enis: &BTreeMap<String, String>,
) -> Vec<NetworkInterface> {
    if snap.vpc_id.is_none() && snap.vpc_conflicts.is_empty() {
        // Nothing in round 1 said where the cluster is: the interfaces holding its own EIPs
        // say it; only without any, the interfaces holding its addresses (which two VPCs with
        // one addressing plan both hold).
        let mut evidence = VpcEvidence::default();
        for (eni, vpc) in eip_enis {
            evidence.add(vpc, eni);
        }
        if evidence.0.is_empty() {
            for n in &enis {
                evidence.add(&n.vpc_id, &n.id);
            }
        }
        evidence.settle(snap);
    }
    if let Some(vpc) = snap.vpc_id.clone() {
        enis.retain(|n| n.vpc_id == vpc);
        snap.nic_map_interfaces.retain(|n| n.vpc_id == vpc);
        keep_eips_in(snap, decl, &vpc, eip_enis);
    }
    enis
}

/// Round 3: the member instances with all their interfaces (tags included), and the impaired.
async fn add_members(
    ec2: &dyn Ec2Describe,
    snap: &mut Snapshot,
    enis: &[NetworkInterface],
) -> Result<(), CloudError> {
    // The interfaces again, by instance: DescribeInstances does not return interface tags,
    // which `f5_cloud_failover_nic_map` needs.
    let ids = owners(enis, snap);
    let chunks: Vec<&[String]> = ids.chunks(MAX_FILTER_VALUES).collect();
    let (members, interfaces, impaired) = try_join3(
        try_join_all(chunks.iter().map(|c| async move {
            ec2.describe_instances(&[Filter::new("instance-id", *c)])
                .await
        })),
        try_join_all(chunks.iter().map(|c| async move {
            ec2.describe_network_interfaces(&[Filter::new("attachment.instance-id", *c)])
                .await
        })),
        async {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            ec2.impaired_instances(&ids).await
        },
    )
    .await?;
    snap.impaired = impaired;
    let interfaces: BTreeMap<String, NetworkInterface> = interfaces
        .into_iter()
        .flatten()
        .map(|n| (n.id.clone(), n))
        .collect();
    snap.members = members.into_iter().flatten().collect();
    for m in &mut snap.members {
        for n in &mut m.network_interfaces {
            if let Some(full) = interfaces.get(&n.id) {
                *n = full.clone();
            }
        }
    }
    snap.members.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(())
}

/// Whether the declaration lists its EIPs (`addressGroupDefinitions`) rather than selecting
/// them by tags: listed ones are the cluster's by definition, never left alone.
pub fn names_its_eips(decl: &Declaration) -> bool {
    decl.addresses()
        .is_some_and(|a| a.elastic_ip_groups().next().is_some())
}

/// A tag-selected EIP none of whose VIPs is on any member is another pair's (identical tags,
/// other addresses): left alone with a warning, not a refusal of every failover.
fn leave_foreign_eips(snap: &mut Snapshot, decl: &Declaration) {
    let explicit = names_its_eips(decl);
    if explicit || snap.members.is_empty() {
        return;
    }
    let (ours, foreign): (Vec<ScopedEip>, Vec<ScopedEip>) = std::mem::take(&mut snap.elastic_ips)
        .into_iter()
        .partition(|e| e.vips.iter().any(|v| snap.holder_of(*v).is_some()));
    snap.elastic_ips = ours;
    for e in foreign {
        let vips: Vec<String> = e.vips.iter().map(ToString::to_string).collect();
        snap.left_alone.push(format!(
            "Elastic IP {} carries the scoping tags but none of its VIPs ({}) is on a member of this cluster: left alone (another pair's?)",
            e.eip.public_ip,
            vips.join(", ")
        ));
    }
}

/// Which VPCs the resources in scope are in, and which resources say so.
#[derive(Default)]
struct VpcEvidence(BTreeMap<String, Vec<String>>);

impl VpcEvidence {
    fn add(&mut self, vpc: &str, resource: &str) {
        if !vpc.is_empty() {
            let ids = self.0.entry(vpc.to_string()).or_default();
            if !ids.iter().any(|r| r == resource) {
                ids.push(resource.to_string());
            }
        }
    }

    /// One VPC: the cluster's. Several: a conflict the planner refuses with.
    fn settle(self, snap: &mut Snapshot) {
        match self.0.len() {
            0 => {}
            1 => snap.vpc_id = self.0.into_keys().next(),
            _ => {
                let list: Vec<String> = self
                    .0
                    .iter()
                    .map(|(vpc, ids)| format!("{vpc} ({})", ids.join(", ")))
                    .collect();
                snap.vpc_conflicts.push(format!(
                    "the declaration's scope spans {} VPCs: {}; a cluster lives in one VPC: declare serverless.vpcId, or give each cluster its own scoping tags",
                    list.len(),
                    list.join("; ")
                ));
            }
        }
    }
}

/// Keeps the EIPs that are free or on an interface in `vpc`: one named in the declaration
/// but on another VPC's interface is a conflict; one selected by tags is left alone.
fn keep_eips_in(
    snap: &mut Snapshot,
    decl: &Declaration,
    vpc: &str,
    eni_vpcs: &BTreeMap<String, String>,
) {
    let explicit = names_its_eips(decl);
    let mut kept = Vec::new();
    for e in std::mem::take(&mut snap.elastic_ips) {
        let Some(elsewhere) = e
            .eip
            .network_interface_id
            .as_ref()
            .and_then(|n| eni_vpcs.get(n).map(|v| (n, v)))
            .filter(|(_, v)| v.as_str() != vpc)
        else {
            kept.push(e);
            continue;
        };
        let what = format!(
            "Elastic IP {} is on {} in {}, outside the cluster's VPC {vpc}",
            e.eip.public_ip, elsewhere.0, elsewhere.1
        );
        if explicit {
            snap.vpc_conflicts.push(what);
        } else {
            snap.left_alone.push(format!("{what}: left alone"));
        }
    }
    snap.elastic_ips = kept;
}

/// A private IP holds one EIP. A tag-selected EIP associated with nothing whose VIPs another
/// EIP in scope also claims (identical tags in several VPCs: another cluster's EIP, free for
/// a moment) is left alone: taking it would steal another cluster's address.
fn one_eip_per_vip(snap: &mut Snapshot, decl: &Declaration) {
    let explicit = names_its_eips(decl);
    if explicit {
        return;
    }
    let all = snap.elastic_ips.clone();
    snap.elastic_ips.retain(|e| {
        if e.eip.association_id.is_some() {
            return true;
        }
        let rival = all
            .iter()
            .find(|o| o.eip.public_ip != e.eip.public_ip && o.vips.iter().any(|v| e.vips.contains(v)));
        match rival {
            None => true,
            Some(o) => {
                snap.left_alone.push(format!(
                    "Elastic IP {} is associated with nothing and claims VIPs that Elastic IP {} claims too: left alone (a private IP holds one EIP; with identical tags in several VPCs, list each cluster's EIPs in addressGroupDefinitions)",
                    e.eip.public_ip, o.eip.public_ip
                ));
                false
            }
        }
    });
}

fn scope_eips(snap: &mut Snapshot, decl: &Declaration, found: Vec<ElasticIp>) {
    let Some(a) = decl.addresses() else { return };
    let by_ip: BTreeMap<IpAddr, &ElasticIp> = found.iter().map(|e| (e.public_ip, e)).collect();
    let explicit: Vec<(IpAddr, &[IpAddr])> = a.elastic_ip_groups().collect();
    if explicit.is_empty() {
        for e in &found {
            let vips = vips_tag(&e.tags).map(ips_from_tag).unwrap_or_default();
            if vips.is_empty() {
                snap.eips_without_vips.push(e.public_ip.to_string());
            } else {
                snap.elastic_ips.push(ScopedEip {
                    eip: e.clone(),
                    vips,
                });
            }
        }
    } else {
        for (ip, vips) in explicit {
            match by_ip.get(&ip) {
                Some(e) => snap.elastic_ips.push(ScopedEip {
                    eip: (*e).clone(),
                    vips: vips.to_vec(),
                }),
                None => snap.missing_elastic_ips.push(ip),
            }
        }
    }
}

/// Finds the state bucket: by name (HeadBucket) or by tags (ListBuckets + GetBucketTagging).
/// Returns the bucket (first by name when several match) and the other matches.
pub async fn resolve_bucket(
    store: &dyn ObjectStore,
    scope: &Scope,
) -> Result<BucketLookup, CloudError> {
    match scope {
        Scope::Name(name) => Ok((
            store.bucket_exists(name).await?.then(|| name.clone()),
            vec![],
        )),
        Scope::Tags(want) => {
            let names = store.list_buckets().await?;
            let tagged: Vec<Option<String>> = stream::iter(&names)
                .map(|b| async move {
                    let tags = store.bucket_tags(b).await?;
                    Ok::<_, CloudError>(matches(&tags, want).then(|| b.clone()))
                })
                .buffer_unordered(BUCKET_TAG_CONCURRENCY)
                .try_collect()
                .await?;
            let mut hits: Vec<String> = tagged.into_iter().flatten().collect();
            hits.sort();
            let first = (!hits.is_empty()).then(|| hits.remove(0));
            Ok((first, hits))
        }
    }
}

/// Whether `have` carries every tag of `want`.
pub fn matches(have: &Tags, want: &Tags) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{tags, EipSpec, Topology, SEED_A, SEED_A_EXT, SEED_B, SEED_TAG};
    use crate::memory::MemoryCloud;
    use crate::testing::plan::{decl, patched, prefix_declaration, AFTER};
    use crate::testing::same_az_with_prefix;

    fn eip(id: &str, public: &str, on: Option<&str>) -> EipSpec {
        EipSpec {
            allocation_id: id.into(),
            public_ip: public.parse().unwrap(),
            tags: tags([SEED_TAG]),
            associated_with: on.map(|ip| (SEED_A_EXT.into(), ip.parse().unwrap())),
        }
    }

    /// The release of a prefix disassociates the EIPs on its addresses, so only an unfinished
    /// run's log still knows where they belong: those it names on a declared prefix that are
    /// still unassociated join the snapshot (once, however often recalled) with the logged
    /// address; one logged outside the prefixes, or associated meanwhile, does not.
    #[tokio::test]
    async fn eips_a_prefix_release_detached_are_found_again_from_the_log() {
        let mut topo = same_az_with_prefix();
        topo.elastic_ips.extend([
            eip("eipalloc-0detached", "3.3.3.3", Some("10.0.0.50")),
            eip("eipalloc-0onprefix", "3.3.3.4", Some("10.0.0.52")),
            eip("eipalloc-0loose", "3.3.3.5", None),
        ]);
        let cloud = MemoryCloud::from_topology(&topo);
        cloud.disassociate("eipalloc-0detached");
        cloud.settle();
        let d = prefix_declaration(|_| ());
        let mut snap = discover(&cloud, &cloud, &d).await.unwrap();
        let on_prefix = |s: &Snapshot| -> Vec<String> {
            s.prefix_eips
                .iter()
                .map(|p| p.eip.allocation_id.clone())
                .collect()
        };
        assert_eq!(
            on_prefix(&snap),
            ["eipalloc-0onprefix"],
            "the cloud no longer says"
        );
        assert!(snap.detached_eips().is_empty());
        let logged = |id: &str, ip: &str| DetachedEip {
            allocation_id: id.into(),
            address: ip.parse().unwrap(),
        };
        let log = [
            logged("eipalloc-0detached", "10.0.0.50"),
            logged("eipalloc-0onprefix", "10.0.0.53"),
            logged("eipalloc-0loose", "10.9.9.9"),
        ];
        for _ in 0..2 {
            recover_prefix_eips(&cloud, &d, &log, &mut snap)
                .await
                .unwrap();
            assert_eq!(
                snap.detached_eips(),
                [logged("eipalloc-0detached", "10.0.0.50")]
            );
            assert_eq!(
                on_prefix(&snap),
                ["eipalloc-0onprefix", "eipalloc-0detached"]
            );
        }
        // Associated meanwhile (by another hand): the cloud says where it is.
        let mut snap = discover(&cloud, &cloud, &d).await.unwrap();
        cloud.tag_eip("eipalloc-0detached", "moved", "yes");
        let mut moved = snap.clone();
        recover_prefix_eips(&cloud, &decl(AFTER), &log, &mut moved)
            .await
            .unwrap();
        assert_eq!(moved, snap, "no address group declares the prefix");
        let mut t = same_az_with_prefix();
        t.elastic_ips = vec![eip("eipalloc-0detached", "3.3.3.3", Some("10.0.0.50"))];
        cloud.add_topology(&t);
        cloud.settle();
        recover_prefix_eips(&cloud, &d, &log, &mut snap)
            .await
            .unwrap();
        assert!(snap.detached_eips().is_empty(), "{:?}", snap.prefix_eips);
    }

    /// `routeTag` next hops: the table's `f5_self_ips` tag; a tag with no address in it is
    /// no next hop (said, naming the table), nor is a missing one.
    #[test]
    fn route_tag_next_hops_need_an_address_in_the_tag() {
        let d = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"] =
                serde_json::json!({"discoveryType": "routeTag"});
        });
        let g = &d.route_groups()[0];
        let r = &g.ranges[0];
        let table = |tag: Option<&str>| RouteTable {
            id: "rtb-1".into(),
            vpc_id: "vpc-1".into(),
            tags: tag.map(|v| tags([(SELF_IPS_TAG, v)])).unwrap_or_default(),
            routes: Vec::new(),
            associations: Vec::new(),
        };
        assert_eq!(
            next_hops_for(g, r, &table(Some("10.0.0.11, 10.0.4.11"))).unwrap(),
            [
                "10.0.0.11".parse::<IpAddr>().unwrap(),
                "10.0.4.11".parse().unwrap()
            ]
        );
        for bad in [Some("none"), Some(""), None] {
            let e = next_hops_for(g, r, &table(bad)).unwrap_err();
            assert!(
                e.contains("route table rtb-1 has no usable f5_self_ips tag"),
                "{e}"
            );
        }
    }

    /// The fleet's index: the owners of the selected interfaces, each once; none for a scope
    /// spanning VPCs (its "members" would be other pairs' instances).
    #[tokio::test]
    async fn member_ids_are_the_owners_of_the_selected_interfaces() {
        let cloud = MemoryCloud::seed();
        let d = decl(AFTER);
        assert_eq!(member_ids(&cloud, &d).await.unwrap(), [SEED_A, SEED_B]);
        // A copy of the pair in another VPC, its tables tagged alike: tags select both.
        cloud.add_topology(&Topology::seed().copy(1));
        let tagged = patched(|v| {
            let g = &mut v["failoverRoutes"]["routeGroupDefinitions"][0];
            g.as_object_mut().unwrap().remove("scopingName");
            g["scopingTags"] = serde_json::json!({SEED_TAG.0: SEED_TAG.1});
        });
        let e = member_ids(&cloud, &tagged).await.unwrap_err();
        assert!(e.to_string().contains("ScopeSpansVpcs"), "{e}");
    }

    /// Buckets found by `scopingTags` beyond the first are kept for doctor to name.
    #[tokio::test]
    async fn a_second_tagged_bucket_is_kept_as_extra() {
        let cloud = MemoryCloud::seed();
        let mut t = Topology::seed();
        t.bucket.name = "cfe-state-second".into();
        cloud.add_topology(&t);
        let snap = discover(&cloud, &cloud, &decl(AFTER)).await.unwrap();
        let mut all: Vec<String> = snap.extra_buckets.clone();
        all.extend(snap.bucket.clone());
        all.sort();
        assert_eq!(all, ["cfe-state-bigip-ha", "cfe-state-second"]);
        assert_eq!(snap.extra_buckets.len(), 1);
    }

    /// Only untagged EIPs on a member's VIP are "unscoped": one tagged as the scope asks but
    /// left out for another reason (no VIPs tag) is the elastic-ips check's, and with
    /// addresses disabled nothing is asked of EC2 at all.
    #[tokio::test]
    async fn unscoped_vip_eips_are_the_untagged_ones_on_vips() {
        let cloud = MemoryCloud::seed();
        let d = decl(AFTER);
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        // The seed's EIP, in scope: nothing to say.
        assert!(unscoped_vip_eips(&cloud, &d, &snap)
            .await
            .unwrap()
            .is_empty());
        // Its VIPs tag gone: out of scope, but tagged as the scope asks.
        let mut t = Topology::seed();
        t.elastic_ips[0].tags.remove("f5_cloud_failover_vips");
        let cloud = MemoryCloud::from_topology(&t);
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        assert!(snap.elastic_ips.is_empty());
        assert!(unscoped_vip_eips(&cloud, &d, &snap)
            .await
            .unwrap()
            .is_empty());
        // Untagged: named, with its member.
        let mut t = Topology::seed();
        t.elastic_ips[0].tags.clear();
        let cloud = MemoryCloud::from_topology(&t);
        let snap = discover(&cloud, &cloud, &d).await.unwrap();
        let found = unscoped_vip_eips(&cloud, &d, &snap).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, SEED_A);
        // Addresses disabled: no DescribeAddresses.
        let off = patched(|v| v["failoverAddresses"]["enabled"] = false.into());
        cloud.reset_calls();
        assert!(unscoped_vip_eips(&cloud, &off, &snap)
            .await
            .unwrap()
            .is_empty());
        assert!(
            !cloud.calls().iter().any(|c| c == "DescribeAddresses"),
            "{:?}",
            cloud.calls()
        );
    }

    /// A tag-selected EIP none of whose VIPs is on a member is another pair's: left alone,
    /// said. One the declaration lists (addressGroupDefinitions) is the cluster's whatever
    /// its VIPs: kept.
    #[tokio::test]
    async fn a_foreign_tagged_eip_is_left_alone_but_a_listed_one_is_kept() {
        let mut t = Topology::seed();
        t.elastic_ips[0]
            .tags
            .insert("f5_cloud_failover_vips".into(), "10.9.9.1,10.9.9.2".into());
        let cloud = MemoryCloud::from_topology(&t);
        let tagged = decl(AFTER);
        assert!(!names_its_eips(&tagged));
        let snap = discover(&cloud, &cloud, &tagged).await.unwrap();
        assert!(snap.elastic_ips.is_empty());
        assert!(
            snap.left_alone[0].contains("none of its VIPs (10.9.9.1, 10.9.9.2) is on a member"),
            "{:?}",
            snap.left_alone
        );
        let listed = patched(|v| {
            v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!([
                {"type": "elasticIpAddress", "scopingAddress": crate::lab::SEED_EIP,
                 "vipAddresses": ["10.9.9.1", "10.9.9.2"]}
            ]);
        });
        assert!(names_its_eips(&listed));
        let snap = discover(&cloud, &cloud, &listed).await.unwrap();
        assert_eq!(snap.elastic_ips.len(), 1, "{:?}", snap.left_alone);
        assert!(snap.left_alone.is_empty(), "{:?}", snap.left_alone);
    }

    /// The VPC evidence: a resource of no known VPC says nothing, a resource named twice is
    /// listed once, two VPCs are a conflict naming each with its resources.
    #[test]
    fn vpc_evidence_settles_on_one_vpc_or_names_the_conflict() {
        let mut one = VpcEvidence::default();
        one.add("", "eipalloc-free");
        one.add("vpc-1", "rtb-1");
        let mut snap = Snapshot::default();
        one.settle(&mut snap);
        assert_eq!(snap.vpc_id.as_deref(), Some("vpc-1"));
        assert!(snap.vpc_conflicts.is_empty());
        let mut two = VpcEvidence::default();
        for (vpc, r) in [
            ("vpc-1", "rtb-1"),
            ("vpc-2", "rtb-2"),
            ("vpc-2", "rtb-2"),
            ("vpc-2", "eni-2"),
        ] {
            two.add(vpc, r);
        }
        let mut snap = Snapshot::default();
        two.settle(&mut snap);
        assert_eq!(snap.vpc_id, None);
        assert!(
            snap.vpc_conflicts[0].contains("spans 2 VPCs: vpc-1 (rtb-1); vpc-2 (rtb-2, eni-2)"),
            "{:?}",
            snap.vpc_conflicts
        );
    }
}
