//! The declaration: F5 Cloud Failover Extension's JSON schema for `environment: "aws"`,
//! parsed strictly (every error names its JSON path), plus one optional extension block,
//! `serverless`, for what CFE lacks.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::net::{Cidr, CidrError};

/// Largest declaration accepted, in bytes (CFE declarations are a few KiB).
pub const MAX_DECLARATION_BYTES: usize = 1 << 20;
/// Default name of the state object, under the `f5cloudfailover/` prefix.
pub const DEFAULT_STATE_FILE: &str = "f5cloudfailoverstate.json";
/// Name of the extension block.
pub const EXTENSION_KEY: &str = "serverless";
/// Default number of mutations sent at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;
/// `serverless.clusterName` when none is declared: its state file is where CFE keeps it.
pub const DEFAULT_CLUSTER: &str = "default";
/// Cluster names that would put a named cluster's state file among the lock or history
/// objects (`f5cloudfailover/<clusterName>/<stateFileName>`), or outside the prefix.
pub const RESERVED_CLUSTER_NAMES: [&str; 4] = ["lock", "history", ".", ".."];
/// The longest cluster-lock lease a declaration may ask for (`serverless.lockLeaseSeconds`).
pub const MAX_LOCK_LEASE_SECONDS: u64 = 900;

/// A declaration that failed to parse or validate: the JSON path and what is wrong there.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DeclarationError {
    /// Dotted JSON path, e.g. `failoverRoutes.routeGroupDefinitions[0].scopingName`.
    pub path: String,
    /// What is wrong, naming the bad value.
    pub message: String,
}

/// Tags to match, key → value (all must match).
pub type Tags = BTreeMap<String, String>;

/// A validated declaration.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Declaration {
    /// `schemaVersion`, if given.
    pub schema_version: Option<String>,
    /// `controls.logLevel` (default `info`).
    pub log_level: String,
    /// Where the state file lives.
    pub external_storage: ExternalStorage,
    /// Elastic IPs and secondary IPs that follow the active unit.
    pub failover_addresses: Option<FailoverAddresses>,
    /// Routes whose next hop follows the active unit.
    pub failover_routes: Option<FailoverRoutes>,
    /// `retryFailover`, parsed and kept (periodic re-runs are the scheduler's job).
    pub retry_failover: Option<RetryFailover>,
    /// The `serverless` extension block, with defaults applied.
    pub extension: Extension,
}

/// How a resource is selected: by its id/name, or by tags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Scope {
    /// `scopingName`: a bucket name or route table id.
    Name(String),
    /// `scopingTags`: every tag must match.
    Tags(Tags),
}

/// `externalStorage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalStorage {
    /// The bucket, by name or tags.
    pub scope: Scope,
    /// The state object's name (default `f5cloudfailoverstate.json`).
    pub state_file_name: String,
    /// Server-side encryption for everything written.
    pub encryption: Encryption,
}

/// `externalStorage.encryption.serverSide`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Encryption {
    /// No SSE header sent (the bucket default applies).
    None,
    /// `AES256` (SSE-S3).
    Aes256,
    /// `aws:kms`, with an optional key id (else the AWS managed key).
    Kms {
        /// The KMS key id or ARN.
        key_id: Option<String>,
    },
}

/// `failoverAddresses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverAddresses {
    /// `enabled` (default true).
    pub enabled: bool,
    /// `scopingTags`: EIPs carrying them (and `f5_cloud_failover_vips`) and tagged ENIs.
    pub scoping_tags: Tags,
    /// `requireScopingTags`: explicit address groups must also carry the tags.
    pub require_scoping_tags: bool,
    /// `addressGroupDefinitions`.
    pub groups: Vec<AddressGroup>,
}

impl FailoverAddresses {
    /// The `elasticIpAddress` groups: each EIP with its VIPs.
    pub fn elastic_ip_groups(&self) -> impl Iterator<Item = (IpAddr, &[IpAddr])> {
        self.groups.iter().filter_map(|g| match g {
            AddressGroup::ElasticIpAddress {
                scoping_address,
                vip_addresses,
            } => Some((*scoping_address, vip_addresses.as_slice())),
            AddressGroup::NetworkInterfaceAddress { .. } => None,
        })
    }
}

/// One of `failoverAddresses.addressGroupDefinitions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
pub enum AddressGroup {
    /// `elasticIpAddress`: the EIP `scoping_address` goes to whichever VIP is on the active unit.
    ElasticIpAddress {
        /// The Elastic IP (public address).
        scoping_address: IpAddr,
        /// One private VIP per unit.
        vip_addresses: Vec<IpAddr>,
    },
    /// `networkInterfaceAddress`: a secondary private IP moved to the active unit (same subnet).
    NetworkInterfaceAddress {
        /// The secondary private IP.
        scoping_address: IpAddr,
    },
}

/// `failoverRoutes`, normalized into route groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRoutes {
    /// `enabled` (default true).
    pub enabled: bool,
    /// `routeGroupDefinitions`, or one group made of the top-level properties.
    pub groups: Vec<RouteGroup>,
}

/// One route group: the tables in scope and the ranges managed in them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteGroup {
    /// Route tables: by id (`scopingName`) or tags.
    pub scope: Scope,
    /// Destination ranges managed (exact CIDR match).
    pub ranges: Vec<AddressRange>,
    /// Next hops for ranges that give none.
    pub default_next_hops: NextHops,
}

/// `scopingAddressRanges[i]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressRange {
    /// The route destination.
    pub range: Cidr,
    /// Next hops for this range, overriding the group default.
    pub next_hops: Option<NextHops>,
}

/// `nextHopAddresses` / `defaultNextHopAddresses`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NextHops {
    /// `discoveryType: static`: the units' primary private IPs.
    Static(Vec<IpAddr>),
    /// `discoveryType: routeTag`: read from the route table's `f5_self_ips` tag.
    RouteTag,
}

/// `retryFailover`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryFailover {
    /// `enabled`.
    pub enabled: bool,
    /// `interval`, minutes.
    pub interval_minutes: u32,
}

/// The `serverless` extension block (all optional, defaults documented in the README).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    /// `clusterName`: names this pair in history keys, logs and metrics (default `default`).
    pub cluster_name: String,
    /// `alarmTargets`: alarm name → the member instance the alarm watches.
    pub alarm_targets: BTreeMap<String, String>,
    /// `maxConcurrency`: mutations sent at once (default 16, 1..=64).
    pub max_concurrency: usize,
    /// `lockLeaseSeconds`: how long the cluster lock lasts unless renewed (default
    /// [`DEFAULT_LOCK_LEASE_SECONDS`]).
    pub lock_lease_seconds: u64,
    /// `cooldownSeconds`: no second failover to another member within this time unless
    /// forced (default 60; 0 turns damping off).
    pub cooldown_seconds: u64,
    /// `failbackTo`: the preferred member; when its alarm returns to OK or it starts running,
    /// the cluster fails back to it. Absent (the default): no automatic failback.
    pub failback_to: Option<String>,
    /// `probe`: how the health probe checks the members (absent: no probing).
    pub probe: Option<ProbeConfig>,
    /// `mutationRate`: client-side pacing of mutating calls, per second (default 5, EC2's
    /// default refill for mutating actions).
    pub mutation_rate: u64,
    /// `mutationBurst`: calls sent at once before pacing starts (default 50, EC2's bucket).
    pub mutation_burst: u64,
    /// `associationSwap`: each subnet in scope has one route table per member (tagged
    /// `f5_cloud_failover_member=<instance id>`), identical but for next hops; failover moves
    /// the subnet's association to the target's table: one call per subnet, whatever the
    /// number of routes (default false).
    pub association_swap: bool,
    /// `vpcId`: the VPC the pair lives in. Absent: derived from the route tables in scope (and
    /// the interfaces the EIPs and next hops are on); a scope that spans VPCs is refused.
    pub vpc_id: Option<String>,
    /// `takeOverGatewayRoutes`: a declared route that points at a gateway (internet, NAT,
    /// transit, peering, …) instead of an appliance may be taken over (default false: refused).
    pub take_over_gateway_routes: bool,
    /// `applianceSources`: the EventBridge `source` values an "Appliance Active" event may
    /// carry (default [`DEFAULT_APPLIANCE_SOURCE`], the one docs/deploy.md tells appliances
    /// to send); an announcement from any other source is ignored.
    pub appliance_sources: Vec<String>,
}

/// The default cluster lock lease: the failover function's timeout (template.yaml, 60 s), so
/// a run that crashed holding the lock blocks the triggers after it for at most one timeout.
/// A live run never needs longer: it stops sending before its deadline and renews the lease
/// before each mutation round.
pub const DEFAULT_LOCK_LEASE_SECONDS: u64 = 60;

/// The `source` the docs tell appliances to put on their "Appliance Active" events.
pub const DEFAULT_APPLIANCE_SOURCE: &str = "bigip.failover";

/// How a member is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProbeKind {
    /// A TCP connect.
    Tcp,
    /// An HTTP GET.
    Http,
    /// An HTTPS GET (see `tls_verify`).
    Https,
}

/// `serverless.probe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeConfig {
    /// `kind`: `tcp` or `http` (default `http`).
    pub kind: ProbeKind,
    /// `port` for members without a `targets` entry (default 80).
    pub port: u16,
    /// `path` of the GET (default `/`).
    pub path: String,
    /// `expectStatus` (default 200).
    pub expect_status: u16,
    /// `expectBody`: a substring the body must contain (e.g. `ACTIVE`).
    pub expect_body: Option<String>,
    /// `intervalMs` between rounds (default 300).
    pub interval_ms: u64,
    /// `timeoutMs` per probe (default 1000).
    pub timeout_ms: u64,
    /// `failuresToDown`: k consecutive failures call a member down (default 3).
    pub failures_to_down: u32,
    /// `successesToUp`: m consecutive successes call it up again (default 2).
    pub successes_to_up: u32,
    /// `targets`: member → `ip:port` to probe (default: its first interface's primary IP).
    pub targets: BTreeMap<String, std::net::SocketAddr>,
    /// `tlsVerify`: check the HTTPS certificate against the system's roots (default true;
    /// false for self-signed management certificates — still encrypted).
    pub tls_verify: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            kind: ProbeKind::Http,
            port: 80,
            path: "/".into(),
            expect_status: 200,
            expect_body: None,
            interval_ms: 300,
            timeout_ms: 1000,
            failures_to_down: 3,
            successes_to_up: 2,
            targets: BTreeMap::new(),
            tls_verify: true,
        }
    }
}

impl Default for Extension {
    fn default() -> Self {
        Extension {
            cluster_name: DEFAULT_CLUSTER.into(),
            alarm_targets: BTreeMap::new(),
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            lock_lease_seconds: DEFAULT_LOCK_LEASE_SECONDS,
            cooldown_seconds: 60,
            failback_to: None,
            probe: None,
            mutation_rate: 5,
            mutation_burst: 50,
            association_swap: false,
            vpc_id: None,
            take_over_gateway_routes: false,
            appliance_sources: vec![DEFAULT_APPLIANCE_SOURCE.to_string()],
        }
    }
}

impl Declaration {
    /// Parses and validates declaration text.
    pub fn parse(text: &str) -> Result<Declaration, DeclarationError> {
        if text.len() > MAX_DECLARATION_BYTES {
            return Err(err(
                "declaration",
                format!(
                    "is {} bytes, more than the {} allowed",
                    text.len(),
                    MAX_DECLARATION_BYTES
                ),
            ));
        }
        let value: Value =
            crate::json::parse(text).map_err(|e| err("declaration", e.to_string()))?;
        Declaration::from_value(&value)
    }

    /// Validates an already-parsed JSON value.
    pub fn from_value(value: &Value) -> Result<Declaration, DeclarationError> {
        let mut top = Obj::new(value, Path::root())?;
        let (class, p) = top.req_str("class")?;
        if class != "Cloud_Failover" {
            return Err(p.err(format!("{} is not \"Cloud_Failover\"", show_str(class))));
        }
        let (env, p) = top.req_str("environment")?;
        if env != "aws" {
            return Err(p.err(format!("{} is not supported (only \"aws\")", show_str(env))));
        }
        let schema_version = match top.opt_str("schemaVersion")? {
            Some((v, p)) => {
                let ok = v.split('.').count() == 3
                    && v.split('.')
                        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    return Err(p.err(format!("{} is not a version like \"1.0.0\"", show_str(v))));
                }
                Some(v.to_string())
            }
            None => None,
        };
        top.opt_str("$schema")?;
        let log_level = match top.opt("controls") {
            Some((v, p)) => parse_controls(v, p)?,
            None => "info".to_string(),
        };
        let external_storage = match top.opt("externalStorage") {
            Some((v, p)) => parse_storage(v, p)?,
            None => return Err(top.path.key("externalStorage").err("is required")),
        };
        let failover_addresses = match top.opt("failoverAddresses") {
            Some((v, p)) => Some(parse_addresses(v, p)?),
            None => None,
        };
        let failover_routes = match top.opt("failoverRoutes") {
            Some((v, p)) => Some(parse_routes(v, p)?),
            None => None,
        };
        let retry_failover = match top.opt("retryFailover") {
            Some((v, p)) => {
                let mut o = Obj::new(v, p)?;
                let enabled = o.opt_bool("enabled")?.unwrap_or(false);
                let interval = o.opt_int("interval", 1, 1440)?.unwrap_or(15) as u32;
                o.finish()?;
                Some(RetryFailover {
                    enabled,
                    interval_minutes: interval,
                })
            }
            None => None,
        };
        let extension = match top.opt(EXTENSION_KEY) {
            Some((v, p)) => parse_extension(v, p)?,
            None => Extension::default(),
        };
        top.finish()?;
        Ok(Declaration {
            schema_version,
            log_level,
            external_storage,
            failover_addresses,
            failover_routes,
            retry_failover,
            extension,
        })
    }

    /// Address failover settings when present and enabled.
    pub fn addresses(&self) -> Option<&FailoverAddresses> {
        self.failover_addresses.as_ref().filter(|a| a.enabled)
    }

    /// Route groups when route failover is present and enabled.
    pub fn route_groups(&self) -> &[RouteGroup] {
        match &self.failover_routes {
            Some(r) if r.enabled => &r.groups,
            _ => &[],
        }
    }
}

fn parse_controls(v: &Value, p: Path) -> Result<String, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    o.opt_str("class")?;
    let level = match o.opt_str("logLevel")? {
        Some((l, p)) => {
            const LEVELS: [&str; 6] = ["error", "warning", "info", "debug", "verbose", "silly"];
            if !LEVELS.contains(&l) {
                return Err(p.err(format!(
                    "{} is not one of {}",
                    show_str(l),
                    LEVELS.join(", ")
                )));
            }
            l.to_string()
        }
        None => "info".to_string(),
    };
    o.finish()?;
    Ok(level)
}

fn parse_storage(v: &Value, p: Path) -> Result<ExternalStorage, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let scope = parse_scope(&mut o, "a bucket name", |name| {
        let ok = (3..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        ok.then_some(()).ok_or("is not an S3 bucket name")
    })?;
    let state_file_name = match o.opt_str("stateFileName")? {
        Some((n, p)) => {
            // "." and ".." would make `f5cloudfailover/..`: a path that HTTP clients and S3
            // consoles resolve out of the prefix.
            if n.is_empty()
                || n.len() > 200
                || n.contains('/')
                || n == "."
                || n == ".."
                || n.chars().any(char::is_control)
            {
                return Err(p.err(format!(
                    "{} is not a file name (1-200 characters, no '/', not \".\" or \"..\")",
                    show_str(n)
                )));
            }
            n.to_string()
        }
        None => DEFAULT_STATE_FILE.to_string(),
    };
    let encryption = match o.opt("encryption") {
        Some((v, p)) => {
            let mut e = Obj::new(v, p)?;
            let enc = match e.opt("serverSide") {
                Some((v, p)) => {
                    let mut s = Obj::new(v, p)?;
                    let enabled = s.opt_bool("enabled")?.unwrap_or(true);
                    let algorithm = s.opt_str("algorithm")?;
                    let key_id = s.opt_str("keyId")?;
                    s.finish()?;
                    match (enabled, algorithm, key_id) {
                        (false, _, _) => Encryption::None,
                        (true, None, None) | (true, Some(("AES256", _)), None) => {
                            Encryption::Aes256
                        }
                        (true, Some(("AES256", _)), Some((_, kp))) => {
                            return Err(kp.err("is only valid with algorithm \"aws:kms\""))
                        }
                        (true, Some(("aws:kms", _)), key) | (true, None, key @ Some(_)) => {
                            if let Some((k, kp)) = &key {
                                if k.is_empty() {
                                    return Err(kp.err("must not be empty"));
                                }
                            }
                            Encryption::Kms {
                                key_id: key.map(|(k, _)| k.to_string()),
                            }
                        }
                        (true, Some((other, ap)), _) => {
                            return Err(ap.err(format!(
                                "{} is not \"AES256\" or \"aws:kms\"",
                                show_str(other)
                            )))
                        }
                    }
                }
                None => Encryption::None,
            };
            e.finish()?;
            enc
        }
        None => Encryption::None,
    };
    o.finish()?;
    Ok(ExternalStorage {
        scope,
        state_file_name,
        encryption,
    })
}

/// Reads exactly one of `scopingName` / `scopingTags` from `o`.
fn parse_scope(
    o: &mut Obj<'_>,
    what: &str,
    check_name: impl Fn(&str) -> Result<(), &'static str>,
) -> Result<Scope, DeclarationError> {
    let name = o.opt_str("scopingName")?;
    let tags = o.opt_tags("scopingTags")?;
    match (name, tags) {
        (Some((n, p)), None) => {
            check_name(n).map_err(|m| p.err(format!("{} {m}", show_str(n))))?;
            Ok(Scope::Name(n.to_string()))
        }
        (None, Some(t)) => Ok(Scope::Tags(t)),
        (Some(_), Some(_)) => Err(o.path.err("give scopingName or scopingTags, not both")),
        (None, None) => Err(o
            .path
            .err(format!("needs scopingName ({what}) or scopingTags"))),
    }
}

fn parse_addresses(v: &Value, p: Path) -> Result<FailoverAddresses, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let enabled = o.opt_bool("enabled")?.unwrap_or(true);
    let scoping_tags = o.opt_tags("scopingTags")?;
    let require_scoping_tags = o.opt_bool("requireScopingTags")?.unwrap_or(false);
    let mut groups = Vec::new();
    if let Some((items, _)) = o.opt_array("addressGroupDefinitions", 1, 500)? {
        for (v, p) in items {
            let mut g = Obj::new(v, p)?;
            let (kind, kp) = g.req_str("type")?;
            let (addr, ap) = g.req_ip("scopingAddress")?;
            let group = match kind {
                "elasticIpAddress" => {
                    if !addr.is_ipv4() {
                        return Err(ap.err(format!("\"{addr}\" is not an IPv4 Elastic IP")));
                    }
                    let (vips, vp) = g.req_array("vipAddresses", 1, 10)?;
                    let mut vip_addresses = Vec::new();
                    for (v, p) in vips {
                        let ip = ip_value(v, &p)?;
                        if !ip.is_ipv4() {
                            return Err(p.err(format!("\"{ip}\" is not an IPv4 address")));
                        }
                        if vip_addresses.contains(&ip) {
                            return Err(p.err(format!("\"{ip}\" is listed twice")));
                        }
                        vip_addresses.push(ip);
                    }
                    if vip_addresses.len() < 2 {
                        return Err(vp.err("needs one VIP per unit (at least 2)"));
                    }
                    AddressGroup::ElasticIpAddress {
                        scoping_address: addr,
                        vip_addresses,
                    }
                }
                "networkInterfaceAddress" => AddressGroup::NetworkInterfaceAddress {
                    scoping_address: addr,
                },
                other => {
                    return Err(kp.err(format!(
                        "{} is not \"elasticIpAddress\" or \"networkInterfaceAddress\"",
                        show_str(other)
                    )))
                }
            };
            g.finish()?;
            let dup = groups.iter().any(|x: &AddressGroup| match (x, &group) {
                (
                    AddressGroup::ElasticIpAddress {
                        scoping_address: a, ..
                    },
                    AddressGroup::ElasticIpAddress {
                        scoping_address: b, ..
                    },
                )
                | (
                    AddressGroup::NetworkInterfaceAddress { scoping_address: a },
                    AddressGroup::NetworkInterfaceAddress { scoping_address: b },
                ) => a == b,
                _ => false,
            });
            if dup {
                return Err(ap.err(format!("\"{addr}\" is defined twice")));
            }
            groups.push(group);
        }
    }
    if scoping_tags.is_none() && groups.is_empty() {
        return Err(o.path.err("needs scopingTags or addressGroupDefinitions"));
    }
    if require_scoping_tags && scoping_tags.is_none() {
        return Err(o
            .path
            .key("requireScopingTags")
            .err("is true but no scopingTags are given"));
    }
    o.finish()?;
    Ok(FailoverAddresses {
        enabled,
        scoping_tags: scoping_tags.unwrap_or_default(),
        require_scoping_tags,
        groups,
    })
}

fn parse_routes(v: &Value, p: Path) -> Result<FailoverRoutes, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let enabled = o.opt_bool("enabled")?.unwrap_or(true);
    let mut groups = Vec::new();
    if let Some((items, _)) = o.opt_array("routeGroupDefinitions", 1, 100)? {
        for (v, p) in items {
            let mut g = Obj::new(v, p)?;
            let scope = parse_scope(&mut g, "a route table id", check_rtb)?;
            let ranges = parse_ranges(&mut g)?;
            let default_next_hops = parse_default_hops(&mut g)?;
            let gp = g.path.clone();
            g.finish()?;
            if groups.iter().any(|x: &RouteGroup| x.scope == scope) {
                return Err(gp.err("selects the same route tables as an earlier group"));
            }
            groups.push(RouteGroup {
                scope,
                ranges,
                default_next_hops,
            });
        }
        for key in [
            "scopingTags",
            "scopingAddressRanges",
            "defaultNextHopAddresses",
        ] {
            if o.map.contains_key(key) {
                return Err(o
                    .path
                    .key(key)
                    .err("cannot be combined with routeGroupDefinitions (move it into a group)"));
            }
        }
    } else {
        let tags = o
            .opt_tags("scopingTags")?
            .ok_or_else(|| o.path.err("needs routeGroupDefinitions or scopingTags"))?;
        let ranges = parse_ranges(&mut o)?;
        let default_next_hops = parse_default_hops(&mut o)?;
        groups.push(RouteGroup {
            scope: Scope::Tags(tags),
            ranges,
            default_next_hops,
        });
    }
    o.finish()?;
    Ok(FailoverRoutes { enabled, groups })
}

fn check_rtb(name: &str) -> Result<(), &'static str> {
    let hex = name.strip_prefix("rtb-").unwrap_or("");
    let ok = (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(()).ok_or("is not a route table id (rtb-…)")
}

fn parse_ranges(o: &mut Obj<'_>) -> Result<Vec<AddressRange>, DeclarationError> {
    let (items, _) = o.req_array("scopingAddressRanges", 1, 200)?;
    let mut ranges: Vec<AddressRange> = Vec::new();
    for (v, p) in items {
        let mut r = Obj::new(v, p)?;
        let (text, rp) = r.req_str("range")?;
        let range: Cidr = text
            .parse()
            .map_err(|e: CidrError| rp.err(format!("{} {e}", show_str(text))))?;
        if ranges.iter().any(|x| x.range == range) {
            return Err(rp.err(format!("{} is listed twice", show_str(text))));
        }
        let next_hops = match r.opt("nextHopAddresses") {
            Some((v, p)) => Some(parse_next_hops(v, p)?),
            None => None,
        };
        r.finish()?;
        ranges.push(AddressRange { range, next_hops });
    }
    Ok(ranges)
}

fn parse_default_hops(o: &mut Obj<'_>) -> Result<NextHops, DeclarationError> {
    match o.opt("defaultNextHopAddresses") {
        Some((v, p)) => parse_next_hops(v, p),
        None => Ok(NextHops::RouteTag),
    }
}

fn parse_next_hops(v: &Value, p: Path) -> Result<NextHops, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let (kind, kp) = match o.opt_str("discoveryType")? {
        Some(k) => k,
        None => ("routeTag", o.path.key("discoveryType")),
    };
    let hops = match kind {
        "static" => {
            let (items, _) = o.req_array("items", 1, 10)?;
            let mut ips = Vec::new();
            for (v, p) in items {
                let ip = ip_value(v, &p)?;
                if ips.contains(&ip) {
                    return Err(p.err(format!("\"{ip}\" is listed twice")));
                }
                ips.push(ip);
            }
            NextHops::Static(ips)
        }
        "routeTag" => {
            if o.map.contains_key("items") {
                return Err(o
                    .path
                    .key("items")
                    .err("is only valid with discoveryType \"static\" (routeTag reads the route table's f5_self_ips tag)"));
            }
            NextHops::RouteTag
        }
        other => {
            return Err(kp.err(format!(
                "{} is not \"static\" or \"routeTag\"",
                show_str(other)
            )))
        }
    };
    o.opt_array("items", 0, 10)?;
    o.finish()?;
    Ok(hops)
}

fn parse_extension(v: &Value, p: Path) -> Result<Extension, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let mut ext = Extension::default();
    if let Some((name, p)) = o.opt_str("clusterName")? {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if RESERVED_CLUSTER_NAMES.contains(&name) {
            return Err(p.err(format!(
                "{} is reserved: the lock and history objects live under f5cloudfailover/{name}/ (a cluster of that name would write its state file there)",
                show_str(name)
            )));
        }
        if !ok {
            return Err(p.err(format!(
                "{} is not a cluster name (1-64 of A-Z a-z 0-9 - _ .)",
                show_str(name)
            )));
        }
        ext.cluster_name = name.to_string();
    }
    if let Some((v, p)) = o.opt("alarmTargets") {
        let map = v
            .as_object()
            .ok_or_else(|| p.err(format!("expected an object, got {}", show(v))))?;
        for (alarm, target) in map {
            let tp = p.key(alarm);
            let id = target.as_str().ok_or_else(|| {
                tp.err(format!(
                    "expected an instance id string, got {}",
                    show(target)
                ))
            })?;
            if !is_instance_id(id) {
                return Err(tp.err(format!("{} is not an instance id (i-…)", show_str(id))));
            }
            ext.alarm_targets.insert(alarm.clone(), id.to_string());
        }
    }
    if let Some(n) = o.opt_int("maxConcurrency", 1, 64)? {
        ext.max_concurrency = n as usize;
    }
    if let Some(n) = o.opt_int("lockLeaseSeconds", 10, MAX_LOCK_LEASE_SECONDS)? {
        ext.lock_lease_seconds = n;
    }
    if let Some(n) = o.opt_int("cooldownSeconds", 0, 86_400)? {
        ext.cooldown_seconds = n;
    }
    if let Some((id, p)) = o.opt_str("failbackTo")? {
        if !is_instance_id(id) {
            return Err(p.err(format!("{} is not an instance id (i-…)", show_str(id))));
        }
        ext.failback_to = Some(id.to_string());
    }
    if let Some(n) = o.opt_int("mutationRate", 1, 1000)? {
        ext.mutation_rate = n;
    }
    if let Some(n) = o.opt_int("mutationBurst", 1, 1000)? {
        ext.mutation_burst = n;
    }
    if let Some(v) = o.opt_bool("associationSwap")? {
        ext.association_swap = v;
    }
    if let Some(v) = o.opt_bool("takeOverGatewayRoutes")? {
        ext.take_over_gateway_routes = v;
    }
    if let Some((id, p)) = o.opt_str("vpcId")? {
        if !is_vpc_id(id) {
            return Err(p.err(format!("{} is not a VPC id (vpc-…)", show_str(id))));
        }
        ext.vpc_id = Some(id.to_string());
    }
    if let Some((items, _)) = o.opt_array("applianceSources", 1, 10)? {
        ext.appliance_sources.clear();
        for (v, p) in items {
            let source = v
                .as_str()
                .ok_or_else(|| p.err(format!("expected a string, got {}", show(v))))?;
            // EventBridge reserves `aws.*` for AWS services; PutEvents cannot send it.
            let ok = (1..=256).contains(&source.len())
                && !source.starts_with("aws.")
                && source.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(p.err(format!(
                    "{} is not an event source (1-256 printable characters, not aws.*)",
                    show_str(source)
                )));
            }
            if ext.appliance_sources.iter().any(|s| s == source) {
                return Err(p.err(format!("{} is listed twice", show_str(source))));
            }
            ext.appliance_sources.push(source.to_string());
        }
    }
    if let Some((v, p)) = o.opt("probe") {
        ext.probe = Some(parse_probe(v, p)?);
    }
    o.finish()?;
    Ok(ext)
}

fn parse_probe(v: &Value, p: Path) -> Result<ProbeConfig, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let mut cfg = ProbeConfig::default();
    if let Some((kind, kp)) = o.opt_str("kind")? {
        cfg.kind = match kind {
            "tcp" => ProbeKind::Tcp,
            "http" => ProbeKind::Http,
            "https" => ProbeKind::Https,
            other => {
                return Err(kp.err(format!(
                    "{} is not \"tcp\", \"http\" or \"https\"",
                    show_str(other)
                )))
            }
        };
    }
    if cfg.kind == ProbeKind::Https {
        cfg.port = 443;
    }
    if let Some(n) = o.opt_int("port", 1, 65535)? {
        cfg.port = n as u16;
    }
    if let Some(v) = o.opt_bool("tlsVerify")? {
        cfg.tls_verify = v;
    }
    if let Some((path, pp)) = o.opt_str("path")? {
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(pp.err(format!("{} is not a path starting with /", show_str(path))));
        }
        cfg.path = path.to_string();
    }
    if let Some(n) = o.opt_int("expectStatus", 100, 599)? {
        cfg.expect_status = n as u16;
    }
    if let Some((body, _)) = o.opt_str("expectBody")? {
        cfg.expect_body = Some(body.to_string());
    }
    if let Some(n) = o.opt_int("intervalMs", 100, 60_000)? {
        cfg.interval_ms = n;
    }
    if let Some(n) = o.opt_int("timeoutMs", 50, 30_000)? {
        cfg.timeout_ms = n;
    }
    if let Some(n) = o.opt_int("failuresToDown", 1, 100)? {
        cfg.failures_to_down = n as u32;
    }
    if let Some(n) = o.opt_int("successesToUp", 1, 100)? {
        cfg.successes_to_up = n as u32;
    }
    if let Some((v, tp)) = o.opt("targets") {
        let map = v.as_object().ok_or_else(|| {
            tp.err(format!(
                "expected an object of instance id to ip:port, got {}",
                show(v)
            ))
        })?;
        for (id, addr) in map {
            let ap = tp.key(id);
            if !is_instance_id(id) {
                return Err(ap.err("the key is not an instance id (i-…)"));
            }
            let text = addr.as_str().ok_or_else(|| {
                ap.err(format!(
                    "expected \"ip:port\" or \"ip\", got {}",
                    show(addr)
                ))
            })?;
            let sock = text
                .parse::<std::net::SocketAddr>()
                .or_else(|_| {
                    text.parse::<IpAddr>()
                        .map(|ip| std::net::SocketAddr::new(ip, cfg.port))
                })
                .map_err(|_| ap.err(format!("{} is not \"ip:port\" or \"ip\"", show_str(text))))?;
            cfg.targets.insert(id.clone(), sock);
        }
    }
    o.finish()?;
    Ok(cfg)
}

/// True for strings shaped like an EC2 instance id.
pub fn is_instance_id(s: &str) -> bool {
    let hex = s.strip_prefix("i-").unwrap_or("");
    (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` looks like a VPC id (`vpc-` and 8 or 17 hex digits).
pub fn is_vpc_id(s: &str) -> bool {
    let hex = s.strip_prefix("vpc-").unwrap_or("");
    (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

// ---- a small cursor over JSON objects that tracks the path and unknown keys ----

/// A JSON path under construction.
#[derive(Clone, Debug)]
struct Path(String);

impl Path {
    fn root() -> Path {
        Path(String::new())
    }
    fn key(&self, k: &str) -> Path {
        if self.0.is_empty() {
            Path(k.to_string())
        } else {
            Path(format!("{}.{k}", self.0))
        }
    }
    fn idx(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }
    fn err(&self, message: impl Into<String>) -> DeclarationError {
        err(&self.to_string(), message.into())
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("declaration")
        } else {
            f.write_str(&self.0)
        }
    }
}

fn err(path: &str, message: String) -> DeclarationError {
    DeclarationError {
        path: path.to_string(),
        message,
    }
}

/// A JSON value shown briefly in an error message.
fn show(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    let mut text = v.to_string();
    if text.len() > 60 {
        let cut = (0..=57)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    format!("{kind} ({text})")
}

fn show_str(s: &str) -> String {
    show(&Value::String(s.to_string()))
        .trim_start_matches("a string (")
        .trim_end_matches(')')
        .to_string()
}

fn ip_value(v: &Value, p: &Path) -> Result<IpAddr, DeclarationError> {
    let s = v
        .as_str()
        .ok_or_else(|| p.err(format!("expected an IP address string, got {}", show(v))))?;
    s.parse()
        .map_err(|_| p.err(format!("{} is not an IP address", show_str(s))))
}

struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: Path,
    seen: Vec<&'static str>,
}

type Items<'a> = Vec<(&'a Value, Path)>;

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: Path) -> Result<Obj<'a>, DeclarationError> {
        let map = v
            .as_object()
            .ok_or_else(|| path.err(format!("expected an object, got {}", show(v))))?;
        Ok(Obj {
            map,
            path,
            seen: Vec::new(),
        })
    }

    fn opt(&mut self, k: &'static str) -> Option<(&'a Value, Path)> {
        self.seen.push(k);
        self.map.get(k).map(|v| (v, self.path.key(k)))
    }

    fn opt_str(&mut self, k: &'static str) -> Result<Option<(&'a str, Path)>, DeclarationError> {
        match self.opt(k) {
            Some((Value::String(s), p)) => Ok(Some((s.as_str(), p))),
            Some((v, p)) => Err(p.err(format!("expected a string, got {}", show(v)))),
            None => Ok(None),
        }
    }

    fn req_str(&mut self, k: &'static str) -> Result<(&'a str, Path), DeclarationError> {
        self.opt_str(k)?
            .ok_or_else(|| self.path.key(k).err("is required"))
    }

    fn req_ip(&mut self, k: &'static str) -> Result<(IpAddr, Path), DeclarationError> {
        match self.opt(k) {
            Some((v, p)) => Ok((ip_value(v, &p)?, p)),
            None => Err(self.path.key(k).err("is required")),
        }
    }

    fn opt_bool(&mut self, k: &'static str) -> Result<Option<bool>, DeclarationError> {
        match self.opt(k) {
            Some((Value::Bool(b), _)) => Ok(Some(*b)),
            Some((v, p)) => Err(p.err(format!("expected true or false, got {}", show(v)))),
            None => Ok(None),
        }
    }

    fn opt_int(
        &mut self,
        k: &'static str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, DeclarationError> {
        match self.opt(k) {
            Some((v, p)) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(p.err(format!(
                    "expected a whole number from {min} to {max}, got {}",
                    show(v)
                ))),
            },
            None => Ok(None),
        }
    }

    fn opt_array(
        &mut self,
        k: &'static str,
        min: usize,
        max: usize,
    ) -> Result<Option<(Items<'a>, Path)>, DeclarationError> {
        match self.opt(k) {
            Some((Value::Array(a), p)) => {
                if a.len() < min {
                    return Err(p.err(if min == 1 {
                        "must not be empty".to_string()
                    } else {
                        format!("needs at least {min} items")
                    }));
                }
                if a.len() > max {
                    return Err(p.err(format!(
                        "has {} items, more than the {max} allowed",
                        a.len()
                    )));
                }
                let items = a.iter().enumerate().map(|(i, v)| (v, p.idx(i))).collect();
                Ok(Some((items, p)))
            }
            Some((v, p)) => Err(p.err(format!("expected an array, got {}", show(v)))),
            None => Ok(None),
        }
    }

    fn req_array(
        &mut self,
        k: &'static str,
        min: usize,
        max: usize,
    ) -> Result<(Items<'a>, Path), DeclarationError> {
        self.opt_array(k, min, max)?
            .ok_or_else(|| self.path.key(k).err("is required"))
    }

    fn opt_tags(&mut self, k: &'static str) -> Result<Option<Tags>, DeclarationError> {
        let Some((v, p)) = self.opt(k) else {
            return Ok(None);
        };
        let map = v.as_object().ok_or_else(|| {
            p.err(format!(
                "expected an object of tag names to values, got {}",
                show(v)
            ))
        })?;
        if map.is_empty() {
            return Err(p.err("must name at least one tag (an empty set would match everything)"));
        }
        let mut tags = Tags::new();
        for (key, value) in map {
            let s = value.as_str().ok_or_else(|| {
                p.key(key)
                    .err(format!("expected a tag value string, got {}", show(value)))
            })?;
            if key.is_empty() || key.len() > 128 || s.len() > 256 {
                return Err(p
                    .key(key)
                    .err("is not a valid EC2 tag (key 1-128, value 0-256 characters)"));
            }
            tags.insert(key.clone(), s.to_string());
        }
        Ok(Some(tags))
    }

    fn finish(self) -> Result<(), DeclarationError> {
        for key in self.map.keys() {
            if !self.seen.contains(&key.as_str()) {
                let mut allowed = self.seen.clone();
                allowed.sort_unstable();
                allowed.dedup();
                return Err(self.path.key(key).err(format!(
                    "unknown property (allowed here: {})",
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: &str = include_str!("../../../examples/seed-article/declaration-after.json");
    const BEFORE: &str = include_str!("../../../examples/seed-article/declaration-before.json");
    const SNAT_NONE: &str = include_str!("../../../examples/seed-article/cfe-snat-none.json");

    fn tag(k: &str, v: &str) -> Tags {
        [(k.to_string(), v.to_string())].into_iter().collect()
    }

    #[test]
    fn seed_declarations_parse() {
        let d = Declaration::parse(AFTER).unwrap();
        assert_eq!(d.log_level, "silly");
        assert_eq!(d.external_storage.encryption, Encryption::Aes256);
        assert_eq!(
            d.external_storage.scope,
            Scope::Tags(tag(
                "f5_cloud_failover_label",
                "bigip_high_availability_solution"
            ))
        );
        assert_eq!(d.external_storage.state_file_name, DEFAULT_STATE_FILE);
        let groups = d.route_groups();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].scope, Scope::Name("rtb-060adeaa8fe5b2bbb".into()));
        assert_eq!(groups[0].ranges[0].range.to_string(), "0.0.0.0/0");
        assert_eq!(
            groups[0].default_next_hops,
            NextHops::Static(vec![
                "10.0.0.11".parse().unwrap(),
                "10.0.4.11".parse().unwrap()
            ])
        );
        assert!(Declaration::parse(BEFORE)
            .unwrap()
            .route_groups()
            .is_empty());
        assert!(Declaration::parse(SNAT_NONE).is_ok());
    }

    /// A declaration saved with a byte order mark reads as without one; a repeated key is an
    /// error naming it; stateFileName ".." is refused.
    #[test]
    fn bom_duplicate_keys_and_dot_dot() {
        let plain = Declaration::parse(AFTER).unwrap();
        assert_eq!(
            Declaration::parse(&format!("\u{feff}{AFTER}")).unwrap(),
            plain
        );
        let twice = AFTER.replacen("\"class\"", "\"class\": \"Cloud_Failover\", \"class\"", 1);
        let e = Declaration::parse(&twice).unwrap_err().to_string();
        assert!(
            e.starts_with("declaration: has the key \"class\" twice in one object (line "),
            "{e}"
        );
        for name in ["..", "."] {
            let e = with(|v| v["externalStorage"]["stateFileName"] = name.into())
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("externalStorage.stateFileName: "), "{e}");
        }
        assert!(with(|v| v["externalStorage"]["stateFileName"] = "..state.json".into()).is_ok());
    }

    fn with(patch: impl FnOnce(&mut Value)) -> Result<Declaration, DeclarationError> {
        let mut v: Value = serde_json::from_str(AFTER).unwrap();
        patch(&mut v);
        Declaration::from_value(&v)
    }

    #[test]
    fn bad_cidr_names_path_and_value() {
        let e = with(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"range": "10.0.0.0/33"}))
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges[1].range: \"10.0.0.0/33\" is not a CIDR"
        );
    }

    #[test]
    fn unknown_property_is_named() {
        let e = with(|v| v["failoverAddresses"]["scopingTag"] = Value::Bool(true)).unwrap_err();
        assert_eq!(e.path, "failoverAddresses.scopingTag");
        assert!(e.message.starts_with("unknown property"), "{e}");
    }

    #[test]
    fn wrong_types_and_empty_lists() {
        let e = with(|v| v["failoverAddresses"]["enabled"] = "yes".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failoverAddresses.enabled: expected true or false, got a string (\"yes\")"
        );
        let e = with(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                serde_json::json!([])
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items: must not be empty"
        );
        let e = with(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"][1] =
                "10.0.4.300".into()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items[1]: \"10.0.4.300\" is not an IP address"
        );
    }

    #[test]
    fn extension_defaults_and_overrides() {
        let d = Declaration::parse(AFTER).unwrap();
        assert_eq!(d.extension, Extension::default());
        let d = with(|v| {
            v["serverless"] = serde_json::json!({
                "clusterName": "web-pair",
                "alarmTargets": {"bigip-a-status": "i-055fd78af29715fbf"},
                "maxConcurrency": 4
            })
        })
        .unwrap();
        assert_eq!(d.extension.cluster_name, "web-pair");
        assert_eq!(d.extension.max_concurrency, 4);
        let e = with(|v| v["serverless"] = serde_json::json!({"alarmTargets": {"x": "eni-1"}}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "serverless.alarmTargets.x: \"eni-1\" is not an instance id (i-…)"
        );
    }

    #[test]
    fn storage_scope_and_encryption_rules() {
        let e = with(|v| v["externalStorage"]["scopingName"] = "my-bucket".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "externalStorage: give scopingName or scopingTags, not both"
        );
        let d = with(|v| {
            v["externalStorage"] = serde_json::json!({
                "scopingName": "state-bucket",
                "encryption": {"serverSide": {"enabled": true, "algorithm": "aws:kms", "keyId": "alias/cfe"}}
            })
        })
        .unwrap();
        assert_eq!(
            d.external_storage.encryption,
            Encryption::Kms {
                key_id: Some("alias/cfe".into())
            }
        );
        let e = with(|v| v["environment"] = "azure".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment: \"azure\" is not supported (only \"aws\")"
        );
    }
}
