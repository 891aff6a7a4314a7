//! Failover groups (`serverless.groups`): one pair, several groups, each active on its own
//! unit (BIG-IP's traffic groups; CFE declined it, its issue #95). Each group names its
//! managed items; a failover moves one group's items under that group's own lock and state
//! file (cluster `<clusterName>.<group>`). A declaration without groups is one group, as ever.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

use crate::engine::net::Cidr;

use super::cursor::{show, show_str, Obj, Path};
use super::extension::{is_instance_id, parse_probe};
use super::{AddressGroup, Declaration, DeclarationError, ProbeConfig};

/// Most groups a declaration may name.
pub const MAX_GROUPS: usize = 16;

/// Whether `s` may name a failover group: 1-32 of `A-Z a-z 0-9 - _` (no `.`: a group's
/// cluster is `<clusterName>.<group>`; no `#`: the CLI names it `FILE#GROUP`).
pub fn is_group_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One failover group: the items it moves, and what of the pair's settings it has its own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverGroup {
    /// `addresses`: its Elastic IPs (public address) and secondary addresses (IPv4, IPv6).
    pub addresses: BTreeSet<IpAddr>,
    /// `addresses` written as a CIDR: its delegated prefixes.
    pub prefixes: BTreeSet<Cidr>,
    /// `routes`: the destinations of its routes (ranges of `failoverRoutes`), in every table
    /// in scope.
    pub routes: BTreeSet<Cidr>,
    /// `routeGroups`: whole route groups (indexes into `failoverRoutes`' groups): every range
    /// in their tables (the same range may then follow another group in other tables).
    pub route_groups: BTreeSet<usize>,
    /// `failbackTo`: the group's home unit (else the pair's `failbackTo`).
    pub failback_to: Option<String>,
    /// `probe`: how the probe tells whether the group is up on a unit (else the pair's).
    pub probe: Option<ProbeConfig>,
}

/// A managed item, as a group names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Managed {
    /// An Elastic IP (public) or a secondary address.
    Address(IpAddr),
    /// A delegated prefix.
    Prefix(Cidr),
    /// A route: its route group (index into `failoverRoutes`' groups) and destination.
    Route(usize, Cidr),
}

impl std::fmt::Display for Managed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Managed::Address(ip) => write!(f, "address {ip}"),
            Managed::Prefix(p) => write!(f, "prefix {p}"),
            Managed::Route(g, r) => write!(f, "route {r} of route group {g}"),
        }
    }
}

impl AddressGroup {
    /// The item a group names for this definition: its Elastic IP, address or prefix.
    pub fn item(&self) -> Managed {
        match self {
            AddressGroup::ElasticIpAddress {
                scoping_address, ..
            }
            | AddressGroup::NetworkInterfaceAddress { scoping_address } => {
                Managed::Address(*scoping_address)
            }
            AddressGroup::NetworkInterfacePrefix { prefix } => Managed::Prefix(*prefix),
        }
    }
}

impl FailoverGroup {
    /// Whether the group names `item`.
    pub fn holds(&self, item: Managed) -> bool {
        match item {
            Managed::Address(ip) => self.addresses.contains(&ip),
            Managed::Prefix(p) => self.prefixes.contains(&p),
            Managed::Route(g, r) => self.routes.contains(&r) || self.route_groups.contains(&g),
        }
    }
}

/// `serverless.groups`: group name → its items.
pub(super) fn parse_groups(
    v: &Value,
    p: Path,
) -> Result<BTreeMap<String, FailoverGroup>, DeclarationError> {
    let map = v.as_object().ok_or_else(|| {
        p.err(format!(
            "expected an object of group name to its items, got {}",
            show(v)
        ))
    })?;
    if map.is_empty() || map.len() > MAX_GROUPS {
        return Err(p.err(format!(
            "names {} groups: name 1 to {MAX_GROUPS} (or leave groups out: the pair is one group)",
            map.len()
        )));
    }
    let mut groups = BTreeMap::new();
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for (name, g) in map {
        let gp = p.key(name);
        if !is_group_name(name) {
            return Err(gp.err(format!(
                "{} is not a group name (1-32 of A-Z a-z 0-9 - _)",
                show_str(name)
            )));
        }
        let mut o = Obj::new(g, gp.clone())?;
        let mut group = FailoverGroup::default();
        let mut claim = |item: String, at: &Path| match owner.insert(item.clone(), name.clone()) {
            Some(other) if other != *name => Err(at.err(format!(
                "{item} is also in group {}: an item belongs to one group",
                show_str(&other)
            ))),
            Some(_) => Err(at.err(format!("{item} is listed twice"))),
            None => Ok(()),
        };
        if let Some((items, _)) = o.opt_array("addresses", 0, 1000)? {
            for (v, ip) in items {
                let s = v.as_str().ok_or_else(|| {
                    ip.err(format!("expected an address string, got {}", show(v)))
                })?;
                if let Ok(addr) = s.parse::<IpAddr>() {
                    claim(format!("address {addr}"), &ip)?;
                    group.addresses.insert(addr);
                } else {
                    let prefix: Cidr = s.parse().map_err(|e| match e {
                        crate::engine::net::CidrError::Syntax => ip.err(format!(
                            "{} is not an IP address or a delegated prefix",
                            show_str(s)
                        )),
                        host_bits => ip.err(format!("{} {host_bits}", show_str(s))),
                    })?;
                    claim(format!("prefix {prefix}"), &ip)?;
                    group.prefixes.insert(prefix);
                }
            }
        }
        if let Some((items, _)) = o.opt_array("routes", 0, 1000)? {
            for (v, rp) in items {
                let s = v
                    .as_str()
                    .ok_or_else(|| rp.err(format!("expected a CIDR string, got {}", show(v))))?;
                let range: Cidr = s
                    .parse()
                    .map_err(|e| rp.err(format!("{} {e}", show_str(s))))?;
                claim(format!("route {range}"), &rp)?;
                group.routes.insert(range);
            }
        }
        if let Some((items, _)) = o.opt_array("routeGroups", 0, 100)? {
            for (v, rp) in items {
                let i = v.as_u64().ok_or_else(|| {
                    rp.err(format!(
                        "expected the index of a route group of failoverRoutes, got {}",
                        show(v)
                    ))
                })?;
                claim(format!("route group {i}"), &rp)?;
                group.route_groups.insert(i as usize);
            }
        }
        if let Some((id, fp)) = o.opt_str("failbackTo")? {
            if !is_instance_id(id) {
                return Err(fp.err(format!("{} is not an instance id (i-…)", show_str(id))));
            }
            group.failback_to = Some(id.to_string());
        }
        if let Some((v, pp)) = o.opt("probe") {
            group.probe = Some(parse_probe(v, pp)?);
        }
        o.finish()?;
        if group.addresses.is_empty()
            && group.prefixes.is_empty()
            && group.routes.is_empty()
            && group.route_groups.is_empty()
        {
            return Err(gp.err("names no item: list its addresses (Elastic IPs, secondary addresses, prefixes), routes or routeGroups"));
        }
        groups.insert(name.clone(), group);
    }
    Ok(groups)
}

/// Checks the groups against what the declaration manages: a route of a group is a range of
/// `failoverRoutes`, and every range is in a group; with `addressGroupDefinitions`, every
/// address of a group is defined there and every definition is in a group (without them the
/// Elastic IPs are found by tag, and one in no group is left alone, with a warning). A pair
/// that swaps whole subnet associations cannot split its routes into groups.
pub(super) fn check_groups(d: &Declaration) -> Result<(), DeclarationError> {
    let groups = &d.extension.groups;
    if groups.is_empty() {
        return Ok(());
    }
    let all = || Path::root().key(super::EXTENSION_KEY).key("groups");
    let at = |name: &str, field: &str| all().key(name).key(field);
    if d.extension.association_swap {
        return Err(all().err("cannot be used with associationSwap: a subnet's association carries every route of its table, whatever the group"));
    }
    let route_groups = d.route_groups();
    for (name, g) in groups {
        if !g.route_groups.is_empty() && route_groups.is_empty() {
            return Err(at(name, "routeGroups").err(
                "failoverRoutes has no route groups (disabled or absent): a group moves only routes the declaration manages",
            ));
        }
        if (!g.addresses.is_empty() || !g.prefixes.is_empty()) && d.addresses().is_none() {
            return Err(at(name, "addresses").err(
                "failoverAddresses is disabled or absent: a group moves only addresses the declaration manages",
            ));
        }
        if let Some(r) = g.routes.iter().find(|r| {
            !route_groups
                .iter()
                .any(|rg| rg.ranges.iter().any(|x| x.range == **r))
        }) {
            return Err(at(name, "routes").err(format!(
                "{r} is not a range of failoverRoutes (scopingAddressRanges): a group moves only routes the declaration manages"
            )));
        }
        if let Some(i) = g.route_groups.iter().find(|i| **i >= route_groups.len()) {
            return Err(at(name, "routeGroups").err(format!(
                "{i} is not a route group of failoverRoutes (0 to {})",
                route_groups.len().saturating_sub(1)
            )));
        }
    }
    // Every route in exactly one group (a range named in one group and its route group in
    // another would be moved by both).
    for (i, rg) in route_groups.iter().enumerate() {
        for r in &rg.ranges {
            let item = Managed::Route(i, r.range);
            let holders: Vec<&String> = groups
                .iter()
                .filter(|(_, g)| g.holds(item))
                .map(|(n, _)| n)
                .collect();
            match holders.as_slice() {
                [_] => {}
                [] => {
                    return Err(all().err(format!(
                        "failoverRoutes range {} (route group {i}) is in no group: name it in the routes or routeGroups of the group it follows",
                        r.range
                    )))
                }
                [a, b, ..] => {
                    return Err(all().err(format!(
                        "failoverRoutes range {} (route group {i}) is in groups {} and {}: a route follows one group",
                        r.range,
                        show_str(a),
                        show_str(b)
                    )))
                }
            }
        }
    }
    let Some(defs) = d.addresses().map(|a| &a.groups).filter(|g| !g.is_empty()) else {
        // Found by tag: Elastic IPs and nic_map addresses; a prefix moves only as defined.
        if let Some((name, g)) = groups.iter().find(|(_, g)| !g.prefixes.is_empty()) {
            let p = g.prefixes.iter().next().expect("not empty");
            return Err(at(name, "addresses").err(format!(
                "prefix {p}: a delegated prefix moves only as a networkInterfaceAddress of failoverAddresses.addressGroupDefinitions"
            )));
        }
        return Ok(());
    };
    let defined = |item: Managed| defs.iter().any(|def| def.item() == item);
    for (name, g) in groups {
        let items = g
            .addresses
            .iter()
            .map(|ip| Managed::Address(*ip))
            .chain(g.prefixes.iter().map(|p| Managed::Prefix(*p)));
        for item in items {
            if !defined(item) {
                return Err(at(name, "addresses").err(format!(
                    "{item} is not a scopingAddress of failoverAddresses.addressGroupDefinitions: with definitions, a group names the defined addresses"
                )));
            }
        }
    }
    for def in defs {
        let item = def.item();
        if d.in_no_group(item) {
            return Err(all().err(format!(
                "{item} (failoverAddresses.addressGroupDefinitions) is in no group: name it in the addresses of the group it follows"
            )));
        }
    }
    disjoint_addresses(groups, defs).map_err(|(name, why)| at(&name, "addresses").err(why))
}

/// The private addresses a group's failover moves or maps: its secondary addresses, its
/// prefixes, and its Elastic IPs' VIPs (as defined).
struct Space {
    /// Secondary addresses and VIPs, each with what it is, for the message.
    ips: Vec<(IpAddr, String)>,
    prefixes: Vec<Cidr>,
}

fn space(g: &FailoverGroup, defs: &[AddressGroup]) -> Space {
    let mut out = Space {
        ips: Vec::new(),
        prefixes: g.prefixes.iter().copied().collect(),
    };
    for def in defs.iter().filter(|def| g.holds(def.item())) {
        match def {
            AddressGroup::ElasticIpAddress {
                scoping_address,
                vip_addresses,
            } => out.ips.extend(
                vip_addresses
                    .iter()
                    .map(|v| (*v, format!("VIP {v} of Elastic IP {scoping_address}"))),
            ),
            AddressGroup::NetworkInterfaceAddress { scoping_address } => out
                .ips
                .push((*scoping_address, format!("address {scoping_address}"))),
            AddressGroup::NetworkInterfacePrefix { .. } => {}
        }
    }
    out
}

/// Two groups never move or map the same private address: a secondary address carries its
/// Elastic IP when it moves (AssignPrivateIpAddresses), and releasing a prefix detaches the
/// Elastic IPs on its addresses, so one group's failover would take the other's traffic.
fn disjoint_addresses(
    groups: &BTreeMap<String, FailoverGroup>,
    defs: &[AddressGroup],
) -> Result<(), (String, String)> {
    let spaces: Vec<(&String, Space)> = groups.iter().map(|(n, g)| (n, space(g, defs))).collect();
    for (i, (name, mine)) in spaces.iter().enumerate() {
        for (other, theirs) in spaces.iter().skip(i + 1) {
            let clash = mine
                .ips
                .iter()
                .find_map(|(ip, what)| {
                    theirs
                        .ips
                        .iter()
                        .find(|(x, _)| x == ip)
                        .map(|(_, w)| format!("{what} is also {w} of group {}", show_str(other)))
                        .or_else(|| {
                            theirs.prefixes.iter().find(|p| p.contains(*ip)).map(|p| {
                                format!("{what} is inside prefix {p} of group {}", show_str(other))
                            })
                        })
                })
                .or_else(|| {
                    mine.prefixes.iter().find_map(|p| {
                        theirs
                            .ips
                            .iter()
                            .find(|(ip, _)| p.contains(*ip))
                            .map(|(_, w)| {
                                format!("prefix {p} holds {w} of group {}", show_str(other))
                            })
                            .or_else(|| {
                                theirs
                                    .prefixes
                                    .iter()
                                    .find(|q| p.contains(q.addr()) || q.contains(p.addr()))
                                    .map(|q| {
                                        format!(
                                            "prefix {p} overlaps prefix {q} of group {}",
                                            show_str(other)
                                        )
                                    })
                            })
                    })
                });
            if let Some(why) = clash {
                return Err((
                    (*name).clone(),
                    format!("{why}: one group's failover would move the other's traffic"),
                ));
            }
        }
    }
    Ok(())
}

impl Declaration {
    /// Whether the declaration names failover groups (`serverless.groups`) and is not
    /// narrowed to one of them: it is served group by group ([`Declaration::per_group`]).
    pub fn is_grouped(&self) -> bool {
        !self.extension.groups.is_empty() && self.extension.group.is_none()
    }

    /// The clusters this declaration is: itself when it names no groups; else one per group
    /// (by name), each narrowed to the group's items, its cluster named
    /// `<clusterName>.<group>` (its own lock, state file, history and cooldown), with the
    /// group's `failbackTo` and `probe` where it has its own.
    pub fn per_group(&self) -> Vec<(Option<String>, Declaration)> {
        if !self.is_grouped() {
            return vec![(self.extension.group.clone(), self.clone())];
        }
        self.extension
            .groups
            .keys()
            .filter_map(|name| Some((Some(name.clone()), self.group(name)?)))
            .collect()
    }

    /// This declaration (as read, not yet narrowed) narrowed to its group `name` (see
    /// [`Declaration::per_group`]), if it names that group.
    pub fn group(&self, name: &str) -> Option<Declaration> {
        let g = self.extension.groups.get(name)?;
        let mut d = self.clone();
        d.extension.cluster_name = self.group_cluster(name);
        d.extension.group = Some(name.to_string());
        if g.failback_to.is_some() {
            d.extension.failback_to = g.failback_to.clone();
        }
        if g.probe.is_some() {
            d.extension.probe = g.probe.clone();
        }
        Some(d)
    }

    /// The names of the clusters this declaration is: its `clusterName`, or one
    /// `<clusterName>.<group>` per group (see [`Declaration::per_group`]).
    pub fn cluster_names(&self) -> Vec<String> {
        if !self.is_grouped() {
            return vec![self.extension.cluster_name.clone()];
        }
        self.extension
            .groups
            .keys()
            .map(|g| self.group_cluster(g))
            .collect()
    }

    /// The cluster name of group `g`: `<clusterName>.<group>`.
    fn group_cluster(&self, g: &str) -> String {
        format!("{}.{g}", self.extension.cluster_name)
    }

    /// Whether this declaration's failover moves `item`: always without groups; narrowed to
    /// a group, when the group names it; grouped but not narrowed, when some group does (an
    /// item in no group is never moved).
    pub fn manages(&self, item: Managed) -> bool {
        let groups = &self.extension.groups;
        if groups.is_empty() {
            return true;
        }
        match &self.extension.group {
            Some(name) => groups.get(name).is_some_and(|g| g.holds(item)),
            None => !self.in_no_group(item),
        }
    }

    /// Whether the declaration names failover groups and none names `item`: no failover
    /// moves it.
    pub fn in_no_group(&self, item: Managed) -> bool {
        let groups = &self.extension.groups;
        !groups.is_empty() && !groups.values().any(|g| g.holds(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::declaration::with;
    use serde_json::json;

    fn two_groups(v: &mut Value) {
        v["failoverAddresses"]["addressGroupDefinitions"] = json!([
            {"type": "elasticIpAddress", "scopingAddress": "98.80.114.203", "vipAddresses": ["10.0.0.101", "10.0.4.101"]},
            {"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.50"},
            {"type": "networkInterfaceAddress", "scopingAddress": "10.0.9.0/28"}
        ]);
        v["serverless"] = json!({
            "clusterName": "web",
            "groups": {
                "tg1": {"addresses": ["98.80.114.203"], "routes": ["0.0.0.0/0"]},
                "tg2": {"addresses": ["10.0.0.50", "10.0.9.0/28"], "failbackTo": "i-0b0b0b0b0b0b0b0b0"}
            }
        });
    }

    #[test]
    fn groups_split_a_declaration_into_clusters_of_their_own() {
        let d = with(two_groups).unwrap();
        assert!(d.is_grouped());
        let parts = d.per_group();
        let names: Vec<(&str, &str)> = parts
            .iter()
            .map(|(g, d)| (g.as_deref().unwrap(), d.extension.cluster_name.as_str()))
            .collect();
        assert_eq!(names, [("tg1", "web.tg1"), ("tg2", "web.tg2")]);
        let (tg1, tg2) = (&parts[0].1, &parts[1].1);
        let eip = Managed::Address("98.80.114.203".parse().unwrap());
        let route = Managed::Route(0, "0.0.0.0/0".parse().unwrap());
        let vip = Managed::Address("10.0.0.50".parse().unwrap());
        let prefix = Managed::Prefix("10.0.9.0/28".parse().unwrap());
        assert!(tg1.manages(eip) && tg1.manages(route) && !tg1.manages(vip));
        assert!(!tg2.manages(eip) && !tg2.manages(route) && tg2.manages(vip));
        assert!(tg2.manages(prefix) && !tg1.manages(prefix));
        assert!(!d.manages(Managed::Address("10.0.0.51".parse().unwrap())));
        assert_eq!(
            tg2.extension.failback_to.as_deref(),
            Some("i-0b0b0b0b0b0b0b0b0")
        );
        assert_eq!(tg1.extension.failback_to, None);
        assert!(!tg1.is_grouped(), "a group's declaration is one cluster");
        assert_eq!(tg1.per_group().len(), 1);
        // Without groups: one cluster, as ever, managing everything.
        let plain = with(|_| {}).unwrap();
        assert_eq!(plain.per_group().len(), 1);
        assert!(plain.manages(vip));
    }

    #[test]
    fn bad_groups_name_the_field() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "serverless.groups: expected an object of group name to its items, got an array ([])"),
            (json!({}), "serverless.groups: names 0 groups: name 1 to 16 (or leave groups out: the pair is one group)"),
            (json!({"a.b": {"routes": ["0.0.0.0/0"]}}), "serverless.groups.a.b: \"a.b\" is not a group name (1-32 of A-Z a-z 0-9 - _)"),
            (json!({"tg1": {}}), "serverless.groups.tg1: names no item: list its addresses (Elastic IPs, secondary addresses, prefixes), routes or routeGroups"),
            (json!({"tg1": {"routes": ["0.0.0.0/0"]}, "tg2": {"routes": ["0.0.0.0/0"]}}), "serverless.groups.tg2.routes[0]: route 0.0.0.0/0 is also in group \"tg1\": an item belongs to one group"),
            (json!({"tg1": {"routes": ["10.1.0.0/16"]}}), "serverless.groups.tg1.routes: 10.1.0.0/16 is not a range of failoverRoutes (scopingAddressRanges): a group moves only routes the declaration manages"),
            (json!({"tg1": {"addresses": ["98.80.114.203"]}}), "serverless.groups: failoverRoutes range 0.0.0.0/0 (route group 0) is in no group: name it in the routes or routeGroups of the group it follows"),
            (json!({"tg1": {"routes": ["0.0.0.0/0"]}, "tg2": {"routeGroups": [0]}}), "serverless.groups: failoverRoutes range 0.0.0.0/0 (route group 0) is in groups \"tg1\" and \"tg2\": a route follows one group"),
            (json!({"tg1": {"routeGroups": [1]}}), "serverless.groups.tg1.routeGroups: 1 is not a route group of failoverRoutes (0 to 0)"),
            (json!({"tg1": {"addresses": ["nope"]}}), "serverless.groups.tg1.addresses[0]: \"nope\" is not an IP address or a delegated prefix"),
            (json!({"tg1": {"routes": ["0.0.0.0/0"], "failbackTo": "B"}}), "serverless.groups.tg1.failbackTo: \"B\" is not an instance id (i-…)"),
            (json!({"tg1": {"routes": ["0.0.0.0/0"], "weight": 1}}), "serverless.groups.tg1.weight: unknown property (allowed here: addresses, failbackTo, probe, routeGroups, routes)"),
        ];
        for (groups, want) in cases {
            let e = with(|v| v["serverless"] = json!({"groups": groups})).unwrap_err();
            assert_eq!(e.to_string(), want);
        }
        let e = with(|v| {
            v["serverless"] =
                json!({"associationSwap": true, "groups": {"tg1": {"routes": ["0.0.0.0/0"]}}})
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("serverless.groups: cannot be used with associationSwap"),
            "{e}"
        );
    }

    #[test]
    fn with_address_definitions_each_is_in_exactly_one_group() {
        let defs = |v: &mut Value, groups: Value| {
            v["failoverAddresses"]["addressGroupDefinitions"] = json!([
                {"type": "elasticIpAddress", "scopingAddress": "98.80.114.203", "vipAddresses": ["10.0.0.101", "10.0.4.101"]},
                {"type": "elasticIpAddress", "scopingAddress": "3.3.3.3", "vipAddresses": ["10.0.0.102", "10.0.4.102"]}
            ]);
            v["serverless"] = json!({"groups": groups});
        };
        let ok = with(|v| {
            defs(
                v,
                json!({"tg1": {"addresses": ["98.80.114.203"], "routes": ["0.0.0.0/0"]}, "tg2": {"addresses": ["3.3.3.3"]}}),
            )
        });
        assert!(ok.is_ok(), "{ok:?}");
        let e = with(|v| {
            defs(
                v,
                json!({"tg1": {"addresses": ["98.80.114.203"], "routes": ["0.0.0.0/0"]}}),
            )
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "serverless.groups: address 3.3.3.3 (failoverAddresses.addressGroupDefinitions) is in no group: name it in the addresses of the group it follows");
        let e = with(|v| {
            defs(v, json!({"tg1": {"addresses": ["98.80.114.203", "3.3.3.3", "4.4.4.4"], "routes": ["0.0.0.0/0"]}}))
        })
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "serverless.groups.tg1.addresses: address 4.4.4.4 is not a scopingAddress"
            ),
            "{e}"
        );
    }

    /// Two groups never move or map the same private address (AWS's AssignPrivateIpAddresses
    /// carries an address's Elastic IP along; releasing a prefix detaches the Elastic IPs on
    /// its addresses): one group's failover would take the other's traffic.
    #[test]
    fn groups_move_disjoint_addresses() {
        let defs = json!([
            {"type": "elasticIpAddress", "scopingAddress": "3.3.3.1", "vipAddresses": ["10.0.0.101", "10.0.4.101"]},
            {"type": "elasticIpAddress", "scopingAddress": "3.3.3.2", "vipAddresses": ["10.0.0.102", "10.0.4.102"]},
            {"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.50"},
            {"type": "networkInterfaceAddress", "scopingAddress": "10.0.12.48/28"},
            {"type": "networkInterfaceAddress", "scopingAddress": "10.0.12.32/27"}
        ]);
        let with_defs = |defs: &Value, tg1: Value, tg2: Value| {
            with(|v| {
                v["failoverAddresses"]["addressGroupDefinitions"] = defs.clone();
                v["serverless"] = json!({"groups": {"tg1": tg1, "tg2": tg2}});
            })
        };
        let tg1 = json!({"addresses": ["3.3.3.1", "10.0.0.50"], "routes": ["0.0.0.0/0"]});
        let ok = with_defs(
            &json!([defs[0], defs[1], defs[2], defs[3]]),
            tg1.clone(),
            json!({"addresses": ["3.3.3.2", "10.0.12.48/28"]}),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let refused = |defs: Value, tg1: Value, tg2: Value| {
            with_defs(&defs, tg1, tg2).unwrap_err().to_string()
        };
        // An Elastic IP's VIP that is the other group's secondary address.
        let mut shared = defs.clone();
        shared[1]["vipAddresses"][0] = "10.0.0.50".into();
        let e = refused(
            json!([shared[0], shared[1], shared[2]]),
            tg1.clone(),
            json!({"addresses": ["3.3.3.2"]}),
        );
        assert_eq!(e, "serverless.groups.tg1.addresses: address 10.0.0.50 is also VIP 10.0.0.50 of Elastic IP 3.3.3.2 of group \"tg2\": one group's failover would move the other's traffic");
        // Two groups' Elastic IPs on one VIP.
        shared[1]["vipAddresses"][0] = "10.0.0.101".into();
        let e = refused(
            json!([shared[0], shared[1]]),
            json!({"addresses": ["3.3.3.1"], "routes": ["0.0.0.0/0"]}),
            json!({"addresses": ["3.3.3.2"]}),
        );
        assert!(
            e.contains(
                "VIP 10.0.0.101 of Elastic IP 3.3.3.1 is also VIP 10.0.0.101 of Elastic IP 3.3.3.2"
            ),
            "{e}"
        );
        // A secondary address inside the other group's prefix; overlapping prefixes.
        let mut inside = defs.clone();
        inside[2]["scopingAddress"] = "10.0.12.50".into();
        let e = refused(
            json!([inside[2], inside[3]]),
            json!({"addresses": ["10.0.12.50"], "routes": ["0.0.0.0/0"]}),
            json!({"addresses": ["10.0.12.48/28"]}),
        );
        assert!(
            e.contains("address 10.0.12.50 is inside prefix 10.0.12.48/28 of group \"tg2\""),
            "{e}"
        );
        let e = refused(
            json!([defs[3], defs[4]]),
            json!({"addresses": ["10.0.12.48/28"], "routes": ["0.0.0.0/0"]}),
            json!({"addresses": ["10.0.12.32/27"]}),
        );
        assert!(
            e.contains("prefix 10.0.12.48/28 overlaps prefix 10.0.12.32/27"),
            "{e}"
        );
        // What the declaration does not manage is no group's.
        let e = with(|v| {
            v["serverless"] = json!({"groups": {"tg1": {"addresses": ["10.0.12.48/28"], "routes": ["0.0.0.0/0"]}}})
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("a delegated prefix moves only as a networkInterfaceAddress"),
            "{e}"
        );
        let e = with(|v| {
            v["failoverAddresses"]["enabled"] = false.into();
            v["serverless"] =
                json!({"groups": {"tg1": {"addresses": ["3.3.3.1"], "routes": ["0.0.0.0/0"]}}})
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("serverless.groups.tg1.addresses: failoverAddresses is disabled"),
            "{e}"
        );
        let e = with(|v| {
            v["failoverRoutes"]["enabled"] = false.into();
            v["serverless"] = json!({"groups": {"tg1": {"routeGroups": [0]}}})
        })
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "serverless.groups.tg1.routeGroups: failoverRoutes has no route groups"
            ),
            "{e}"
        );
    }
}
