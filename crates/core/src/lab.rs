//! Lab topologies: a plain description of a VPC with an appliance pair, from which the
//! in-memory cloud is built and the emulator is populated (`failover_lab::builder`, through
//! the SDK). `Topology::seed()` is the field report's network
//! (`examples/seed-article/topology.json`).

use std::net::IpAddr;

use serde_json::json;

use crate::engine::declaration::{Declaration, Tags};
use crate::engine::net::Cidr;

/// The field report's scoping tag.
pub const SEED_TAG: (&str, &str) = (
    "f5_cloud_failover_label",
    "bigip_high_availability_solution",
);
/// Unit A (active before failover).
pub const SEED_A: &str = "i-055fd78af29715fbf";
/// Unit B (standby before failover).
pub const SEED_B: &str = "i-061cbb31a5158ad30";
/// The web subnet's route table.
pub const SEED_RTB: &str = "rtb-060adeaa8fe5b2bbb";
/// A's external interface.
pub const SEED_A_EXT: &str = "eni-0603a4992d0579540";
/// B's external interface.
pub const SEED_B_EXT: &str = "eni-04bec0335a47b26c3";
/// The Elastic IP of the virtual server.
pub const SEED_EIP: &str = "98.80.114.203";

/// A whole lab network.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Topology {
    /// Region.
    pub region: String,
    /// VPC id (logical).
    pub vpc_id: String,
    /// VPC IPv4 block.
    pub vpc_cidr: Cidr,
    /// Subnets.
    pub subnets: Vec<SubnetSpec>,
    /// Appliance instances.
    pub instances: Vec<InstanceSpec>,
    /// Elastic IPs.
    pub elastic_ips: Vec<EipSpec>,
    /// Route tables.
    pub route_tables: Vec<TableSpec>,
    /// State bucket.
    pub bucket: BucketSpec,
}

/// A subnet.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubnetSpec {
    /// Logical id.
    pub id: String,
    /// IPv4 block.
    pub cidr: Cidr,
    /// Availability Zone.
    pub az: String,
}

/// An instance and its interfaces (the first is device 0).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstanceSpec {
    /// Logical id.
    pub id: String,
    /// `Name` tag.
    pub name: String,
    /// Availability Zone.
    pub az: String,
    /// Instance type (sets the per-interface address limit the in-memory cloud enforces).
    pub instance_type: String,
    /// Interfaces.
    pub interfaces: Vec<InterfaceSpec>,
}

/// An ENI.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InterfaceSpec {
    /// Logical id.
    pub id: String,
    /// Subnet (logical id).
    pub subnet: String,
    /// Primary private IP.
    pub primary: IpAddr,
    /// Secondary private IPs.
    #[serde(default)]
    pub secondary: Vec<IpAddr>,
    /// Delegated IPv4 prefixes.
    #[serde(default)]
    pub prefixes: Vec<Cidr>,
    /// Source/destination check (on unless said: EC2's default).
    #[serde(default = "on")]
    pub source_dest_check: bool,
    /// Tags.
    #[serde(default)]
    pub tags: Tags,
}

/// An Elastic IP and where it starts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EipSpec {
    /// Logical allocation id.
    pub allocation_id: String,
    /// Public address (the emulator picks its own).
    pub public_ip: IpAddr,
    /// Tags.
    pub tags: Tags,
    /// Initial association: (ENI, private IP).
    pub associated_with: Option<(String, IpAddr)>,
}

/// A route table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TableSpec {
    /// Logical id.
    pub id: String,
    /// Tags.
    pub tags: Tags,
    /// Routes: destination → ENI (logical id).
    pub routes: Vec<(Cidr, String)>,
    /// Subnets associated with it.
    #[serde(default)]
    pub subnets: Vec<String>,
}

/// The state bucket.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSpec {
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: Tags,
}

fn on() -> bool {
    true
}

/// Tags from pairs.
pub fn tags<const N: usize>(pairs: [(&str, &str); N]) -> Tags {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("lab address")
}

fn cidr(s: &str) -> Cidr {
    s.parse().expect("lab cidr")
}

fn iface(id: &str, subnet: &str, primary: &str, secondary: &[&str], sdc: bool) -> InterfaceSpec {
    InterfaceSpec {
        id: id.into(),
        subnet: subnet.into(),
        primary: ip(primary),
        secondary: secondary.iter().map(|s| ip(s)).collect(),
        prefixes: Vec::new(),
        source_dest_check: sdc,
        tags: Tags::new(),
    }
}

impl Topology {
    /// The topology of an appliance profile (`examples/profiles/*/profile.json`: its
    /// `topology`).
    pub fn from_profile(text: &str) -> Result<Topology, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let t = v
            .get("topology")
            .cloned()
            .ok_or("no \"topology\" in the profile")?;
        serde_json::from_value(t).map_err(|e| format!("topology: {e}"))
    }

    /// The pair as it stands before any setup: no scoping or failover tag on its Elastic IPs,
    /// route tables and interfaces (the state bucket, the stack's, keeps its own), and
    /// source/destination check on everywhere (EC2's default).
    pub fn bare(mut self) -> Topology {
        for e in &mut self.elastic_ips {
            e.tags.clear();
        }
        for t in &mut self.route_tables {
            t.tags.clear();
        }
        for n in self.instances.iter_mut().flat_map(|i| &mut i.interfaces) {
            n.tags.clear();
            n.source_dest_check = true;
        }
        self
    }

    /// This topology again as another copy of the same template: the same addressing plan,
    /// tags and bucket, in another VPC with other resource ids (copy `n`, 1-15) and another
    /// public IP per EIP. Two copies in one account are the "repeated template" case.
    pub fn copy(&self, n: u8) -> Topology {
        assert!((1..16).contains(&n), "copy 1-15");
        let id = |s: &str| -> String {
            match s.split_once('-') {
                Some((prefix, hex)) if hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    format!("{prefix}-{n:x}{}", &hex[1..])
                }
                _ => format!("{s}-{n}"),
            }
        };
        let mut t = self.clone();
        t.vpc_id = id(&t.vpc_id);
        for s in &mut t.subnets {
            s.id = id(&s.id);
        }
        for i in &mut t.instances {
            i.id = id(&i.id);
            for n in &mut i.interfaces {
                n.id = id(&n.id);
                n.subnet = id(&n.subnet);
            }
        }
        for e in &mut t.elastic_ips {
            e.allocation_id = id(&e.allocation_id);
            if let IpAddr::V4(v4) = e.public_ip {
                e.public_ip = IpAddr::V4((u32::from(v4) + u32::from(n)).into());
            }
            if let Some((eni, _)) = &mut e.associated_with {
                *eni = id(eni);
            }
        }
        for r in &mut t.route_tables {
            r.id = id(&r.id);
            for (_, eni) in &mut r.routes {
                *eni = id(eni);
            }
            for s in &mut r.subnets {
                *s = id(s);
            }
        }
        t
    }

    /// The field report's topology: BIG-IP A in us-east-1a, B in us-east-1b, the VIP's EIP on
    /// A's external secondary IP, the web subnet's default route through A's external ENI.
    pub fn seed() -> Topology {
        let label = tags([SEED_TAG]);
        let subnet = |id: &str, c: &str, az: &str| SubnetSpec {
            id: id.into(),
            cidr: cidr(c),
            az: az.into(),
        };
        Topology {
            region: "us-east-1".into(),
            vpc_id: "vpc-0287f01407d1276f0".into(),
            vpc_cidr: cidr("10.0.0.0/16"),
            subnets: vec![
                subnet("subnet-a-external", "10.0.0.0/24", "us-east-1a"),
                subnet("subnet-a-mgmt", "10.0.1.0/24", "us-east-1a"),
                subnet("subnet-a-internal", "10.0.2.0/24", "us-east-1a"),
                subnet("subnet-web-a", "10.0.3.0/24", "us-east-1a"),
                subnet("subnet-b-external", "10.0.4.0/24", "us-east-1b"),
                subnet("subnet-b-mgmt", "10.0.5.0/24", "us-east-1b"),
                subnet("subnet-b-internal", "10.0.6.0/24", "us-east-1b"),
                subnet("subnet-web-b", "10.0.7.0/24", "us-east-1b"),
            ],
            instances: vec![
                InstanceSpec {
                    id: SEED_A.into(),
                    name: "failover01.www.non-97.net".into(),
                    az: "us-east-1a".into(),
                    instance_type: "m5.xlarge".into(),
                    interfaces: vec![
                        iface(
                            "eni-026bb5fe081900500",
                            "subnet-a-mgmt",
                            "10.0.1.11",
                            &[],
                            true,
                        ),
                        iface(
                            SEED_A_EXT,
                            "subnet-a-external",
                            "10.0.0.11",
                            &["10.0.0.101"],
                            false,
                        ),
                        iface(
                            "eni-0812e390d83655675",
                            "subnet-a-internal",
                            "10.0.2.11",
                            &[],
                            true,
                        ),
                    ],
                },
                InstanceSpec {
                    id: SEED_B.into(),
                    name: "failover02.www.non-97.net".into(),
                    az: "us-east-1b".into(),
                    instance_type: "m5.xlarge".into(),
                    interfaces: vec![
                        iface(
                            "eni-01d04904d876f5924",
                            "subnet-b-mgmt",
                            "10.0.5.11",
                            &[],
                            true,
                        ),
                        iface(
                            SEED_B_EXT,
                            "subnet-b-external",
                            "10.0.4.11",
                            &["10.0.4.101"],
                            false,
                        ),
                        iface(
                            "eni-097a6bb7971ecceb4",
                            "subnet-b-internal",
                            "10.0.6.11",
                            &[],
                            true,
                        ),
                    ],
                },
            ],
            elastic_ips: vec![EipSpec {
                allocation_id: "eipalloc-0814e2bbaf002a2bc".into(),
                public_ip: ip(SEED_EIP),
                tags: {
                    let mut t = label.clone();
                    t.insert(
                        "f5_cloud_failover_vips".into(),
                        "10.0.0.101,10.0.4.101".into(),
                    );
                    t
                },
                associated_with: Some((SEED_A_EXT.into(), ip("10.0.0.101"))),
            }],
            route_tables: vec![TableSpec {
                id: SEED_RTB.into(),
                tags: label.clone(),
                routes: vec![(cidr("0.0.0.0/0"), SEED_A_EXT.into())],
                subnets: vec!["subnet-web-a".into(), "subnet-web-b".into()],
            }],
            bucket: BucketSpec {
                name: "cfe-state-bigip-ha".into(),
                tags: label,
            },
        }
    }
}

/// One cluster of the fleet: its topology, declaration and what to watch.
pub struct FleetMember {
    /// Its cloud resources.
    pub topology: Topology,
    /// Its declaration (`serverless.clusterName` `fleet-N`).
    pub declaration: Declaration,
    /// The same, as JSON (to upload).
    pub declaration_json: serde_json::Value,
    /// The standby unit (the target of the failover).
    pub standby: String,
    /// The standby's external interface (where the EIP and the routes go).
    pub standby_eni: String,
    /// Its route tables.
    pub tables: Vec<String>,
    /// Its EIP.
    pub eip: IpAddr,
}

/// An id of cluster `n`: the seed's id with its first four hex digits replaced by `n`.
fn id_of(n: usize, seed: &str) -> String {
    match seed.split_once('-') {
        Some((prefix, hex)) if hex.len() > 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("{prefix}-{n:04x}{}", &hex[4..])
        }
        _ => format!("{seed}-{n}"),
    }
}

/// The destinations of each table: `0.0.0.0/0`, then /24s.
fn destinations(routes_per_table: usize) -> Vec<Cidr> {
    (0..routes_per_table)
        .map(|i| {
            if i == 0 {
                "0.0.0.0/0".to_string()
            } else {
                format!("172.{}.{}.0/24", 16 + (i - 1) / 250, (i - 1) % 250)
            }
        })
        .map(|s| s.parse().expect("a CIDR"))
        .collect()
}

/// Cluster `n` (0-based) of a fleet in one account (the AZ-outage benchmark's, the fleet
/// tests'): the field report's pair in a VPC of its own with the same addressing plan, one
/// EIP and `tables` route tables of `routes_per_table` routes (the first `0.0.0.0/0`), its
/// own scoping tag value and state bucket (`fleet-N`, `fleet-state-N`).
pub fn fleet_member(n: usize, tables: usize, routes_per_table: usize) -> FleetMember {
    let label = format!("fleet-{n}");
    let scoped = |t: &Tags| {
        let mut t = t.clone();
        t.insert(SEED_TAG.0.to_string(), label.clone());
        t
    };
    let seed = Topology::seed();
    let mut t = seed.clone();
    t.vpc_id = id_of(n, &t.vpc_id);
    for s in &mut t.subnets {
        s.id = id_of(n, &s.id);
    }
    for i in &mut t.instances {
        i.id = id_of(n, &i.id);
        for nic in &mut i.interfaces {
            nic.id = id_of(n, &nic.id);
            nic.subnet = id_of(n, &nic.subnet);
            // Every interface carries the pair's label, as CFE's deployment guides tag them.
            nic.tags = scoped(&nic.tags);
        }
    }
    for e in &mut t.elastic_ips {
        e.allocation_id = id_of(n, &e.allocation_id);
        e.public_ip = format!("100.64.{}.{}", n / 250, n % 250 + 1)
            .parse()
            .expect("an IP");
        e.tags = scoped(&e.tags);
        if let Some((eni, _)) = &mut e.associated_with {
            *eni = id_of(n, eni);
        }
    }
    let (a_eni, b_eni) = (id_of(n, SEED_A_EXT), id_of(n, SEED_B_EXT));
    t.route_tables = (1..=tables)
        .map(|k| TableSpec {
            id: format!("rtb-{n:04x}{k:013x}"),
            tags: tags([(SEED_TAG.0, &label)]),
            routes: destinations(routes_per_table)
                .into_iter()
                .map(|d| (d, a_eni.clone()))
                .collect(),
            subnets: Vec::new(),
        })
        .collect();
    t.bucket = BucketSpec {
        name: format!("fleet-state-{n}"),
        ..t.bucket.clone()
    };
    let ranges: Vec<_> = destinations(routes_per_table)
        .iter()
        .map(|d| json!({"range": d.to_string()}))
        .collect();
    let declaration_json = json!({
        "class": "Cloud_Failover",
        "environment": "aws",
        "externalStorage": {"scopingName": t.bucket.name},
        "failoverAddresses": {"enabled": true, "scopingTags": {SEED_TAG.0: label}},
        "failoverRoutes": {
            "enabled": true,
            "scopingTags": {SEED_TAG.0: label},
            "scopingAddressRanges": ranges,
            "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
        },
        "serverless": {"clusterName": label}
    });
    FleetMember {
        declaration: Declaration::from_value(&declaration_json).expect("a fleet declaration"),
        declaration_json,
        standby: t.instances[1].id.clone(),
        standby_eni: b_eni,
        tables: t.route_tables.iter().map(|r| r.id.clone()).collect(),
        eip: t.elastic_ips[0].public_ip,
        topology: t,
    }
}

/// `text` (a sample event) with every timestamp in it (`2026-11-29T07:00:00Z`,
/// `…00.123Z`, CloudWatch's `…00.000+0000`) moved by one offset, so that the newest is now and
/// their order and spacing are kept: sample events are dated, and an event older than
/// `serverless.maxEventAgeSeconds` is not acted on. Now is the engine's clock
/// ([`crate::engine::clock::now`]), which a simulation on tokio's paused clock moves too.
pub fn fresh(text: &str) -> String {
    fresh_at(text, crate::engine::clock::now())
}

/// [`fresh`], with the newest timestamp at `now`.
pub fn fresh_at(text: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::{DateTime, NaiveDateTime, Utc};
    // (start, end, time, fraction digits, CloudWatch's +0000 form)
    let mut found: Vec<(usize, usize, DateTime<Utc>, usize, bool)> = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i + 19 <= b.len() {
        // ASCII bytes only: a slice over them is on character boundaries.
        let shape = b[i..i + 19].iter().enumerate().all(|(k, c)| match k {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
        let Some(t) = shape
            .then(|| NaiveDateTime::parse_from_str(&text[i..i + 19], "%Y-%m-%dT%H:%M:%S").ok())
            .flatten()
        else {
            i += 1;
            continue;
        };
        let mut end = i + 19;
        let mut frac = 0;
        if b.get(end) == Some(&b'.') {
            frac = b[end + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            end += 1 + frac;
        }
        let rest = &b[end..];
        let (plus, len) = if rest.starts_with(b"Z") {
            (false, 1)
        } else if rest.starts_with(b"+0000") {
            (true, 5)
        } else {
            i += 1;
            continue;
        };
        found.push((i, end + len, t.and_utc(), frac, plus));
        i = end + len;
    }
    let Some(newest) = found.iter().map(|f| f.2).max() else {
        return text.to_string();
    };
    let shift = now - newest;
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, t, frac, plus) in found {
        out.push_str(&text[at..start]);
        let t = t + shift;
        out.push_str(&t.format("%Y-%m-%dT%H:%M:%S").to_string());
        if frac > 0 {
            let nanos = format!("{:09}", t.timestamp_subsec_nanos());
            out.push('.');
            out.push_str(&nanos[..frac.min(9)]);
        }
        out.push_str(if plus { "+0000" } else { "Z" });
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod fresh_tests {
    #[test]
    fn text_around_a_time_may_be_any_unicode() {
        let text = "… 2026-11-29T07:00:00Z …é";
        let now = "2030-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(super::fresh_at(text, now), "… 2030-01-01T00:00:00Z …é");
        assert_eq!(super::fresh_at("…é…", now), "…é…");
    }

    #[test]
    fn sample_times_move_together_to_now() {
        let now = "2030-01-01T00:10:00Z".parse().unwrap();
        let text = r#"{"time": "2026-11-29T07:00:00Z", "a": "2026-11-29T07:05:00.123Z", "b": "2026-11-29T07:00:00.000+0000", "id": "i-0123"}"#;
        assert_eq!(
            super::fresh_at(text, now),
            r#"{"time": "2030-01-01T00:05:00Z", "a": "2030-01-01T00:10:00.000Z", "b": "2030-01-01T00:05:00.000+0000", "id": "i-0123"}"#
        );
    }
}
