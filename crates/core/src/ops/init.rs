//! `cloud-failover init`: from two instance ids to a declaration. Reads the pair as EC2 sees it
//! (interfaces by device index, the Elastic IPs on them, the routes of the pair's VPC that
//! point at either unit), pairs each interface of A with B's of the same device index, and
//! proposes a declaration in CFE's schema with the tags and source/destination-check changes
//! it needs. [`apply`] makes those changes (the operator's, never a function's).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::Serialize;
use serde_json::{json, Value};

use crate::engine::declaration::Tags;
use crate::engine::discovery::{NIC_MAP_TAG, VIPS_TAG};
use crate::engine::error::CloudError;
use crate::engine::model::{ElasticIp, Filter, Instance, NetworkInterface};
use crate::engine::net::Cidr;
use crate::engine::ports::{Ec2Describe, Ec2Setup};

use super::doctor::shell_word;

/// What `init` is asked.
#[derive(Clone, Debug)]
pub struct InitRequest {
    /// Unit A (active now) and unit B.
    pub units: [String; 2],
    /// The scoping tag (the stack's ScopingTagKey and ScopingTagValue).
    pub tag: (String, String),
    /// Only these route tables (empty: every table of the VPC with a route at a unit).
    pub route_tables: Vec<String>,
    /// Only these Elastic IPs, by allocation id or public address (empty: every one on a unit).
    pub eips: Vec<String>,
}

/// Why `init` cannot propose anything.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The request itself (the field named).
    #[error("{0}")]
    Request(String),
    /// EC2 refused or failed a read.
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

/// Tags to set on resources.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagChange {
    /// The resources (ids).
    pub resources: Vec<String>,
    /// The tags.
    pub tags: Tags,
}

/// What `init` proposes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    /// The declaration (CFE's schema).
    pub declaration: Value,
    /// The tags it needs.
    pub tags: Vec<TagChange>,
    /// Interfaces a route points at whose source/destination check is on.
    pub source_dest_check_off: Vec<String>,
    /// What was found, and what was left out and why.
    pub notes: Vec<String>,
}

impl Proposal {
    /// The AWS CLI commands that make the changes (what `--apply` does), each safe to paste
    /// into a shell.
    pub fn commands(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tags
            .iter()
            .map(|t| {
                let resources: Vec<String> = t.resources.iter().map(|r| shell_word(r)).collect();
                format!(
                    "aws ec2 create-tags --resources {} --tags {}",
                    resources.join(" "),
                    tags_argument(&t.tags)
                )
            })
            .collect();
        out.extend(self.source_dest_check_off.iter().map(|eni| {
            format!(
                "aws ec2 modify-network-interface-attribute --network-interface-id {} --no-source-dest-check",
                shell_word(eni)
            )
        }));
        out
    }
}

/// `--tags` for the AWS CLI: its shorthand (`Key=k,Value=v`, a value with commas in double
/// quotes) when every key and value is plain, else its JSON form; one shell word.
fn tags_argument(tags: &Tags) -> String {
    let plain = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@+".contains(c))
    };
    let shorthand = tags
        .iter()
        .all(|(k, v)| plain(k) && v.split(',').all(plain));
    if shorthand {
        let items: Vec<String> = tags
            .iter()
            .map(|(k, v)| {
                if v.contains(',') {
                    format!("'Key={k},Value=\"{v}\"'")
                } else {
                    format!("Key={k},Value={v}")
                }
            })
            .collect();
        return items.join(" ");
    }
    let json: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    shell_word(&Value::Array(json).to_string())
}

/// A tag value as AWS takes it: up to 256 characters, letters, digits, spaces and
/// `+ - = . _ : / @` (EC2 User Guide, "Tag restrictions").
fn valid_tag_value(v: &str) -> bool {
    v.chars().count() <= 256
        && v.chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c))
}

/// A unit's interface `n` and its counterpart on the other unit (same device index).
struct Pair<'a> {
    a: &'a Instance,
    b: &'a Instance,
}

/// An interface's device index (EC2's, else its place in the instance's list).
fn device(m: &Instance, n: &NetworkInterface) -> usize {
    n.device_index.map(|i| i as usize).unwrap_or_else(|| {
        m.network_interfaces
            .iter()
            .position(|x| x.id == n.id)
            .unwrap_or_default()
    })
}

impl Pair<'_> {
    /// Which unit and device index hold `eni`.
    fn slot(&self, eni: &str) -> Option<(usize, usize)> {
        [self.a, self.b].iter().enumerate().find_map(|(u, m)| {
            let n = m.network_interfaces.iter().find(|n| n.id == eni)?;
            Some((u, device(m, n)))
        })
    }

    /// The interface of `unit` (0: A, 1: B) at device `index`.
    fn iface(&self, unit: usize, index: usize) -> Option<&NetworkInterface> {
        let m = [self.a, self.b][unit];
        m.network_interfaces.iter().find(|n| device(m, n) == index)
    }
}

/// Reads the pair and proposes its declaration.
pub async fn propose(ec2: &dyn Ec2Describe, req: &InitRequest) -> Result<Proposal, InitError> {
    let [a_id, b_id] = &req.units;
    let (key, value) = &req.tag;
    if value.is_empty() || !valid_tag_value(value) {
        return Err(InitError::Request(format!(
            "--label: {} is not a tag value AWS takes (1 to 256 letters, digits, spaces and + - = . _ : / @)",
            shell_word(value).escape_debug()
        )));
    }
    if a_id == b_id {
        return Err(InitError::Request(format!(
            "--instances: {a_id} twice; name the two units of the pair"
        )));
    }
    let found = ec2
        .describe_instances(&[Filter::new("instance-id", [a_id, b_id])])
        .await?;
    let get = |id: &str| {
        found.iter().find(|i| i.id == id).ok_or_else(|| {
            InitError::Request(format!(
                "--instances: EC2 knows no instance {id} in this region"
            ))
        })
    };
    let pair = Pair {
        a: get(a_id)?,
        b: get(b_id)?,
    };
    let vpc = |m: &Instance| {
        m.network_interfaces
            .first()
            .map(|n| n.vpc_id.clone())
            .unwrap_or_default()
    };
    if vpc(pair.a) != vpc(pair.b) {
        return Err(InitError::Request(format!(
            "--instances: {a_id} is in {} and {b_id} in {}: a pair lives in one VPC",
            vpc(pair.a),
            vpc(pair.b)
        )));
    }
    let vpc_id = vpc(pair.a);
    let same_az = pair.a.availability_zone == pair.b.availability_zone;
    let label: Tags = [(key.clone(), value.clone())].into();
    let mut notes = vec![format!(
        "{a_id} ({}) is A, {b_id} ({}) is B; {} Availability Zone{}; interfaces paired by device index",
        pair.a.availability_zone,
        pair.b.availability_zone,
        if same_az { "one" } else { "two" },
        if same_az { "" } else { "s" }
    )];
    let mut tags: Vec<TagChange> = Vec::new();
    let mut sdc_off = BTreeSet::new();

    // Routes of the VPC that point at either unit.
    let tables = ec2
        .describe_route_tables(&[Filter::new("vpc-id", [&vpc_id])])
        .await?;
    for t in &req.route_tables {
        if !tables.iter().any(|x| &x.id == t) {
            return Err(InitError::Request(format!(
                "--route-tables: {t} is not a route table of {vpc_id}"
            )));
        }
    }
    // destination → (device index, tables)
    let mut routes: BTreeMap<Cidr, (usize, BTreeSet<String>)> = BTreeMap::new();
    let mut managed_tables = BTreeSet::new();
    for t in &tables {
        if !req.route_tables.is_empty() && !req.route_tables.contains(&t.id) {
            continue;
        }
        for r in t.routes.iter().filter(|r| !r.local) {
            let Some((_, index)) = r.network_interface_id.as_deref().and_then(|e| pair.slot(e))
            else {
                continue;
            };
            let (Some(na), Some(nb)) = (pair.iface(0, index), pair.iface(1, index)) else {
                notes.push(format!(
                    "left out: {} in {} points at device {index}, which one unit lacks",
                    r.destination, t.id
                ));
                continue;
            };
            match routes.get_mut(&r.destination) {
                Some((i, ts)) if *i == index => {
                    ts.insert(t.id.clone());
                }
                Some((i, _)) => {
                    notes.push(format!(
                        "left out: {} in {} points at device {index}, elsewhere at device {i}: one range, one next hop per unit",
                        r.destination, t.id
                    ));
                    continue;
                }
                None => {
                    routes.insert(r.destination, (index, [t.id.clone()].into()));
                }
            }
            managed_tables.insert(t.id.clone());
            for n in [na, nb] {
                if n.source_dest_check {
                    sdc_off.insert(n.id.clone());
                }
            }
        }
    }
    if !managed_tables.is_empty() {
        tags.push(TagChange {
            resources: managed_tables.iter().cloned().collect(),
            tags: label.clone(),
        });
    }

    // Elastic IPs on either unit.
    let enis: Vec<&str> = [pair.a, pair.b]
        .iter()
        .flat_map(|m| m.network_interfaces.iter().map(|n| n.id.as_str()))
        .collect();
    let eips: Vec<ElasticIp> = ec2
        .describe_addresses(&[Filter::new("network-interface-id", &enis)])
        .await?
        .into_iter()
        .filter(|e| {
            req.eips.is_empty()
                || req
                    .eips
                    .iter()
                    .any(|w| *w == e.allocation_id || *w == e.public_ip.to_string())
        })
        .collect();
    for w in &req.eips {
        if !eips
            .iter()
            .any(|e| *w == e.allocation_id || *w == e.public_ip.to_string())
        {
            return Err(InitError::Request(format!(
                "--eips: {w} is not an Elastic IP on an interface of {a_id} or {b_id}"
            )));
        }
    }
    let mut listed = Vec::new();
    let mut by_tags = 0;
    let mut paired_interfaces: BTreeSet<usize> = BTreeSet::new();
    // The address an EIP maps to: what EC2 says, else (an emulator that does not say) the
    // primary address of an interface that has no other.
    let mapped = |e: &ElasticIp, n: &NetworkInterface| {
        let only_primary = n.secondary_ips.is_empty() && n.ipv4_prefixes.is_empty();
        e.private_ip.or(only_primary.then_some(n.primary_ip))
    };
    // B's Elastic IPs (device, address when known): each unit's own where A's counterpart is.
    let b_held: BTreeSet<(usize, Option<IpAddr>)> = eips
        .iter()
        .filter_map(|e| {
            let (unit, index) = pair.slot(e.network_interface_id.as_deref()?)?;
            let n = pair.iface(unit, index)?;
            (unit == 1).then(|| (index, mapped(e, n)))
        })
        .collect();
    for e in &eips {
        let Some(eni) = e.network_interface_id.as_deref() else {
            continue;
        };
        let Some((unit, index)) = pair.slot(eni) else {
            continue;
        };
        if unit == 1 {
            notes.push(format!(
                "left out: Elastic IP {} is on {b_id}'s device {index}: B's own address while A is active (a failover moves what is on A)",
                e.public_ip
            ));
            continue;
        }
        let (Some(mine), Some(other)) = (pair.iface(0, index), pair.iface(1, index)) else {
            notes.push(format!(
                "left out: Elastic IP {} is on device {index}, which {b_id} lacks",
                e.public_ip
            ));
            continue;
        };
        let Some(ip) = mapped(e, mine) else {
            notes.push(format!(
                "left out: Elastic IP {} is on {eni}, but EC2 did not say which of its addresses (an emulator's answer): declare it by hand",
                e.public_ip
            ));
            continue;
        };
        let k = mine.secondary_ips.iter().position(|s| *s == ip);
        // B's address that would take it: its primary, or its secondary of the same rank.
        let counterpart = if ip == mine.primary_ip {
            Some(other.primary_ip)
        } else {
            k.and_then(|k| other.secondary_ips.get(k).copied())
        };
        if b_held.contains(&(index, None))
            || counterpart.is_some_and(|c| b_held.contains(&(index, Some(c))))
        {
            notes.push(format!(
                "left out: Elastic IP {} on {a_id}'s device {index}: {b_id} has one of its own on the same address there, so each unit keeps its own",
                e.public_ip
            ));
            continue;
        }
        if ip == mine.primary_ip {
            // On a primary address: only a listed EIP moves there (as under CFE).
            let vb = other.primary_ip;
            listed.push(json!({
                "type": "elasticIpAddress",
                "scopingAddress": e.public_ip.to_string(),
                "vipAddresses": [ip.to_string(), vb.to_string()],
            }));
            tags.push(TagChange {
                resources: vec![e.allocation_id.clone()],
                tags: label.clone(),
            });
            notes.push(format!(
                "Elastic IP {} on the primary address of device {index}: listed (addressGroupDefinitions), to {ip} on A and {vb} on B",
                e.public_ip
            ));
            continue;
        }
        let Some(k) = k else {
            notes.push(format!(
                "left out: Elastic IP {} is on {ip}, a prefix address (declare the prefix in addressGroupDefinitions)",
                e.public_ip
            ));
            continue;
        };
        let vips = if same_az {
            if mine.subnet_id != other.subnet_id {
                notes.push(format!(
                    "left out: Elastic IP {} is on {ip} of device {index}, whose interfaces are in different subnets ({} on A, {} on B): an address moves only within its subnet",
                    e.public_ip, mine.subnet_id, other.subnet_id
                ));
                continue;
            }
            // The secondary address itself moves to B's interface of the same device index.
            paired_interfaces.insert(index);
            ip.to_string()
        } else {
            let Some(theirs) = counterpart else {
                notes.push(format!(
                    "left out: Elastic IP {} is on {ip}, secondary address {} of device {index}, but {b_id} has no secondary address {} on its device {index} for it: add one there, then run init again",
                    e.public_ip,
                    k + 1,
                    k + 1
                ));
                continue;
            };
            format!("{ip},{theirs}")
        };
        by_tags += 1;
        let mut t = label.clone();
        t.insert(VIPS_TAG.into(), vips.clone());
        tags.push(TagChange {
            resources: vec![e.allocation_id.clone()],
            tags: t,
        });
        notes.push(format!(
            "Elastic IP {} on a secondary address: tagged {VIPS_TAG}={vips}",
            e.public_ip
        ));
    }
    // Same AZ: every secondary address of A's interfaces moves to B's of the same index, in
    // the same subnet.
    if same_az {
        for n in &pair.a.network_interfaces {
            let index = device(pair.a, n);
            if n.secondary_ips.is_empty() {
                continue;
            }
            match pair.iface(1, index) {
                Some(other) if other.subnet_id == n.subnet_id => {
                    paired_interfaces.insert(index);
                }
                _ => notes.push(format!(
                    "left out: {}'s secondary addresses on device {index}: {b_id} has no interface in {} at that device",
                    a_id, n.subnet_id
                )),
            }
        }
    }
    for index in &paired_interfaces {
        let (Some(na), Some(nb)) = (pair.iface(0, *index), pair.iface(1, *index)) else {
            continue;
        };
        let mut t = label.clone();
        t.insert(NIC_MAP_TAG.into(), format!("device-{index}"));
        tags.push(TagChange {
            resources: vec![na.id.clone(), nb.id.clone()],
            tags: t,
        });
        notes.push(format!(
            "device {index}: its secondary addresses ({}) move between {} and {}",
            na.secondary_ips
                .iter()
                .chain(&nb.secondary_ips)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            na.id,
            nb.id
        ));
    }

    let mut declaration = json!({
        "schemaVersion": "1.0.0",
        "class": "Cloud_Failover",
        "environment": "aws",
        "controls": {"class": "Controls", "logLevel": "info"},
        "externalStorage": {
            "encryption": {"serverSide": {"enabled": true, "algorithm": "AES256"}},
            "scopingTags": label,
        },
    });
    let has_addresses = !listed.is_empty() || by_tags > 0 || !paired_interfaces.is_empty();
    if has_addresses {
        let mut fa = json!({"enabled": true, "scopingTags": label, "requireScopingTags": false});
        if !listed.is_empty() {
            fa["addressGroupDefinitions"] = Value::Array(listed);
        }
        declaration["failoverAddresses"] = fa;
    }
    if !routes.is_empty() {
        // One group scoped by the tag; each range with its own next hops where they differ
        // from the most common pair.
        let hops = |index: usize| -> Vec<String> {
            [0, 1]
                .iter()
                .filter_map(|u| pair.iface(*u, index))
                .map(|n| n.primary_ip.to_string())
                .collect()
        };
        let mut count: BTreeMap<usize, usize> = BTreeMap::new();
        for (i, _) in routes.values() {
            *count.entry(*i).or_default() += 1;
        }
        let common = count
            .iter()
            .max_by_key(|(i, n)| (**n, std::cmp::Reverse(**i)))
            .map(|(i, _)| *i)
            .unwrap_or_default();
        let range = |dest: &Cidr, i: usize| {
            if i == common {
                json!({"range": dest.to_string()})
            } else {
                json!({"range": dest.to_string(),
                       "nextHopAddresses": {"discoveryType": "static", "items": hops(i)}})
            }
        };
        // The ranges each table holds: when every table holds the same, one group scoped by
        // the tag; else one group per table, by its id (a range a table lacks would make
        // every run PARTIAL).
        let mut per_table: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
        for (dest, (i, ts)) in &routes {
            for t in ts {
                per_table.entry(t).or_default().push(range(dest, *i));
            }
        }
        let group = |scope: Value, ranges: Vec<Value>| {
            let mut g = json!({
                "scopingAddressRanges": ranges,
                "defaultNextHopAddresses": {"discoveryType": "static", "items": hops(common)},
            });
            for (k, v) in scope.as_object().into_iter().flatten() {
                g[k] = v.clone();
            }
            g
        };
        let mut sets = per_table.values();
        let first = sets.next().cloned().unwrap_or_default();
        let groups: Vec<Value> = if sets.all(|s| *s == first) {
            vec![group(json!({"scopingTags": label}), first)]
        } else {
            per_table
                .iter()
                .map(|(t, ranges)| group(json!({"scopingName": t}), ranges.clone()))
                .collect()
        };
        declaration["failoverRoutes"] = json!({
            "enabled": true,
            "routeGroupDefinitions": groups,
        });
        for (dest, (i, ts)) in &routes {
            notes.push(format!(
                "route {dest} in {}: to device {i} of the active unit",
                ts.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if !has_addresses && routes.is_empty() {
        return Err(InitError::Request(format!(
            "nothing to fail over: no Elastic IP is on {a_id} or {b_id}{}, and no route of {vpc_id}{} points at either",
            if req.eips.is_empty() { "" } else { " among --eips" },
            if req.route_tables.is_empty() { "" } else { " in --route-tables" },
        )));
    }
    label_is_free(ec2, &label, &tags, &tables, &eips).await?;
    notes.push(format!(
        "the state bucket: the stack's carries the tag; an existing one needs {key}={value} too"
    ));
    Ok(Proposal {
        declaration,
        tags,
        source_dest_check_off: sdc_off.into_iter().collect(),
        notes,
    })
}

/// The scoping tag is the pair's alone: none of the resources to tag carries it with another
/// value (another pair's, which would lose it), and nothing outside the proposal carries it
/// already (a scope by it would take that in). Else an error naming `--label`.
async fn label_is_free(
    ec2: &dyn Ec2Describe,
    label: &Tags,
    tags: &[TagChange],
    tables: &[crate::engine::model::RouteTable],
    eips: &[ElasticIp],
) -> Result<(), InitError> {
    let proposed: BTreeSet<&str> = tags
        .iter()
        .flat_map(|t| t.resources.iter().map(String::as_str))
        .collect();
    let mut now: BTreeMap<String, Tags> = tables
        .iter()
        .map(|t| (t.id.clone(), t.tags.clone()))
        .chain(
            eips.iter()
                .map(|e| (e.allocation_id.clone(), e.tags.clone())),
        )
        .collect();
    let enis: Vec<&str> = proposed
        .iter()
        .copied()
        .filter(|r| r.starts_with("eni-"))
        .collect();
    if !enis.is_empty() {
        let found = ec2
            .describe_network_interfaces(&[Filter::new("network-interface-id", &enis)])
            .await?;
        now.extend(found.into_iter().map(|n| (n.id, n.tags)));
    }
    for (key, value) in label {
        for r in &proposed {
            if let Some(theirs) = now.get(*r).and_then(|t| t.get(key)) {
                if theirs != value {
                    return Err(InitError::Request(format!(
                        "--label: {r} carries {key}={theirs} (another pair's?); nothing was changed: give that label, or take the tag off {r} first"
                    )));
                }
            }
        }
    }
    let by_label = Filter::tags(label);
    let (t, e, n) = futures::try_join!(
        ec2.describe_route_tables(&by_label),
        ec2.describe_addresses(&by_label),
        ec2.describe_network_interfaces(&by_label)
    )?;
    let already = t
        .into_iter()
        .map(|t| t.id)
        .chain(e.into_iter().map(|e| e.allocation_id))
        .chain(n.into_iter().map(|n| n.id))
        .find(|id| !proposed.contains(id.as_str()));
    if let Some(id) = already {
        let (k, v) = label.iter().next().expect("one tag");
        return Err(InitError::Request(format!(
            "--label: {k}={v} is already on {id}, which is not this pair's (a scope by it would take that in); nothing was changed: choose another label"
        )));
    }
    Ok(())
}

/// Makes the proposal's changes: the tags, then source/destination check off.
pub async fn apply(ec2: &dyn Ec2Setup, p: &Proposal) -> Result<(), CloudError> {
    for t in &p.tags {
        ec2.create_tags(&t.resources, &t.tags).await?;
    }
    for eni in &p.source_dest_check_off {
        ec2.disable_source_dest_check(eni).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{Topology, SEED_A, SEED_B, SEED_TAG};
    use crate::memory::MemoryCloud;

    fn req(a: &str, b: &str) -> InitRequest {
        InitRequest {
            units: [a.into(), b.into()],
            tag: (SEED_TAG.0.into(), SEED_TAG.1.into()),
            route_tables: Vec::new(),
            eips: Vec::new(),
        }
    }

    /// Bad input is an error naming the flag, and nothing is changed.
    #[tokio::test]
    async fn bad_input_names_the_flag_and_changes_nothing() {
        let cloud = MemoryCloud::seed();
        cloud.add_topology(&Topology::seed().copy(1));
        let other = Topology::seed().copy(1).instances[0].id.clone();
        let cases: Vec<(InitRequest, &str)> = vec![
            (
                req(SEED_A, SEED_A),
                "--instances: i-055fd78af29715fbf twice",
            ),
            (
                req(SEED_A, "i-0000000000000dead"),
                "--instances: EC2 knows no instance i-0000000000000dead",
            ),
            (req(SEED_A, &other), "a pair lives in one VPC"),
            (
                InitRequest {
                    route_tables: vec!["rtb-0nowhere".into()],
                    ..req(SEED_A, SEED_B)
                },
                "--route-tables: rtb-0nowhere is not a route table of vpc-0287f01407d1276f0",
            ),
            (
                InitRequest {
                    eips: vec!["203.0.113.9".into()],
                    ..req(SEED_A, SEED_B)
                },
                "--eips: 203.0.113.9 is not an Elastic IP on an interface",
            ),
        ];
        for (r, words) in cases {
            let e = propose(&cloud, &r).await.unwrap_err();
            assert!(
                matches!(e, InitError::Request(_)) && e.to_string().contains(words),
                "{e}"
            );
        }
        assert_eq!(cloud.mutation_count(), 0);
        // A pair with nothing on it.
        let mut bare = Topology::seed();
        bare.elastic_ips.clear();
        bare.route_tables.clear();
        let cloud = MemoryCloud::from_topology(&bare);
        let e = propose(&cloud, &req(SEED_A, SEED_B)).await.unwrap_err();
        assert!(e.to_string().contains("nothing to fail over"), "{e}");
    }

    /// Across AZs an EIP on A's secondary address needs a secondary address on B's interface
    /// of the same device index: without one it is left out, saying what to add; the route
    /// is still proposed, with its next hops the two units' primary addresses.
    #[tokio::test]
    async fn an_eip_without_a_counterpart_address_is_left_out_with_what_to_add() {
        let mut t = Topology::seed().bare();
        t.instances[1].interfaces[1].secondary.clear();
        let cloud = MemoryCloud::from_topology(&t);
        let p = propose(&cloud, &req(SEED_A, SEED_B)).await.unwrap();
        assert!(
            p.notes.iter().any(|n| n
                .contains("left out: Elastic IP 98.80.114.203 is on 10.0.0.101")
                && n.contains("i-061cbb31a5158ad30 has no secondary address 1 on its device 1")),
            "{:#?}",
            p.notes
        );
        let g = &p.declaration["failoverRoutes"]["routeGroupDefinitions"][0];
        assert_eq!(
            g["defaultNextHopAddresses"]["items"],
            json!(["10.0.0.11", "10.0.4.11"])
        );
        assert!(
            p.declaration.get("failoverAddresses").is_none(),
            "{:#}",
            p.declaration
        );
        // The seed as it is: the EIP's VIPs are A's and B's secondary addresses.
        let cloud = MemoryCloud::seed();
        let p = propose(&cloud, &req(SEED_A, SEED_B)).await.unwrap();
        let tagged = p
            .tags
            .iter()
            .find(|t| t.resources == ["eipalloc-0814e2bbaf002a2bc"])
            .unwrap();
        assert_eq!(tagged.tags[VIPS_TAG], "10.0.0.101,10.0.4.101");
        assert!(p
            .commands()
            .iter()
            .any(|c| c.contains("'Key=f5_cloud_failover_vips,Value=\"10.0.0.101,10.0.4.101\"'")));
    }

    /// The label is the pair's alone: a resource to tag that carries it with another value
    /// is another pair's, and one outside the pair that carries it would join the scope;
    /// either is refused, naming --label and the resource, before anything changes.
    #[tokio::test]
    async fn a_label_in_use_elsewhere_is_refused_before_anything_changes() {
        let cloud = MemoryCloud::from_topology(&Topology::seed().bare());
        cloud.tag_eip("eipalloc-0814e2bbaf002a2bc", SEED_TAG.0, "other-pair");
        let e = propose(&cloud, &req(SEED_A, SEED_B)).await.unwrap_err();
        assert!(
            e.to_string().contains(
                "--label: eipalloc-0814e2bbaf002a2bc carries f5_cloud_failover_label=other-pair"
            ),
            "{e}"
        );
        let mut t = Topology::seed().copy(1);
        t.route_tables[0].tags = [(SEED_TAG.0.to_string(), SEED_TAG.1.to_string())].into();
        let cloud = MemoryCloud::from_topology(&Topology::seed().bare());
        cloud.add_topology(&t);
        let e = propose(&cloud, &req(SEED_A, SEED_B)).await.unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "is already on {}, which is not this pair's",
                t.route_tables[0].id
            )),
            "{e}"
        );
        assert_eq!(cloud.mutation_count(), 0);
    }

    /// Only what is on A follows the active unit: an Elastic IP on B is B's own, and where
    /// each unit has one on the same address (management, NAT instances) each keeps its own.
    #[tokio::test]
    async fn each_units_own_elastic_ip_stays_with_it() {
        let mut t = Topology::seed().bare();
        t.elastic_ips.push(crate::lab::EipSpec {
            allocation_id: "eipalloc-0mgmta".into(),
            public_ip: "3.3.3.1".parse().unwrap(),
            tags: Default::default(),
            associated_with: Some(("eni-026bb5fe081900500".into(), "10.0.1.11".parse().unwrap())),
        });
        t.elastic_ips.push(crate::lab::EipSpec {
            allocation_id: "eipalloc-0mgmtb".into(),
            public_ip: "3.3.3.2".parse().unwrap(),
            tags: Default::default(),
            associated_with: Some(("eni-01d04904d876f5924".into(), "10.0.5.11".parse().unwrap())),
        });
        let cloud = MemoryCloud::from_topology(&t);
        let p = propose(&cloud, &req(SEED_A, SEED_B)).await.unwrap();
        let tagged: Vec<&str> = p
            .tags
            .iter()
            .flat_map(|t| t.resources.iter().map(String::as_str))
            .collect();
        assert!(
            !tagged.contains(&"eipalloc-0mgmta") && !tagged.contains(&"eipalloc-0mgmtb"),
            "{tagged:?}"
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("3.3.3.2 is on i-061cbb31a5158ad30's device 0: B's own")),
            "{:#?}",
            p.notes
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("3.3.3.1 on i-055fd78af29715fbf's device 0")
                    && n.contains("each unit keeps its own")),
            "{:#?}",
            p.notes
        );
        assert!(
            p.declaration["failoverAddresses"]
                .get("addressGroupDefinitions")
                .is_none(),
            "{:#}",
            p.declaration
        );
        assert!(tagged.contains(&"eipalloc-0814e2bbaf002a2bc"));
    }

    /// A label AWS would refuse is an error naming --label; the printed commands are one
    /// shell word per argument, whatever the label (spaces: the CLI's JSON form, quoted).
    #[tokio::test]
    async fn labels_are_checked_and_commands_quoted() {
        let cloud = MemoryCloud::from_topology(&Topology::seed().bare());
        for bad in [
            "$(touch /tmp/x)",
            "semi;colon",
            "line\nbreak",
            "",
            &"x".repeat(257),
        ] {
            let mut r = req(SEED_A, SEED_B);
            r.tag.1 = bad.to_string();
            let e = propose(&cloud, &r).await.unwrap_err();
            assert!(e.to_string().starts_with("--label: "), "{e}");
        }
        let mut r = req(SEED_A, SEED_B);
        r.tag.1 = "web pair".into();
        let p = propose(&cloud, &r).await.unwrap();
        let c = p.commands();
        assert!(
            c.iter().any(|c| c
                .ends_with(r#"--tags '[{"Key":"f5_cloud_failover_label","Value":"web pair"}]'"#)),
            "{c:#?}"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word("eni-0a1"), "eni-0a1");
    }
}
