//! The declaration: F5 Cloud Failover Extension's JSON schema for `environment: "aws"`,
//! parsed strictly (every error names its JSON path), plus one optional extension block,
//! `serverless`, for what CFE lacks.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;

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
/// The default of `serverless.verifySeconds`: a few seconds covers EC2's usual propagation
/// ("Eventual consistency in the Amazon EC2 API" advises backing off "starting with a couple
/// of seconds").
pub const DEFAULT_VERIFY_SECONDS: u64 = 10;

/// The longest cluster-lock lease a declaration may ask for (`serverless.lockLeaseSeconds`).
pub const MAX_LOCK_LEASE_SECONDS: u64 = 900;

/// CFE's schema versions, newest first: the union of its schema's `schemaVersion` enums from
/// v0.9.1 (which accepted only "0.9.0") to v2.5.0 (there was no 2.3.0).
pub const SCHEMA_VERSIONS: [&str; 30] = [
    "2.5.0", "2.4.0", "2.2.0", "2.1.3", "2.1.2", "2.1.1", "2.1.0", "2.0.2", "2.0.1", "2.0.0",
    "1.15.0", "1.14.0", "1.13.0", "1.12.0", "1.11.0", "1.10.0", "1.9.0", "1.8.0", "1.7.1", "1.7.0",
    "1.6.1", "1.6.0", "1.5.0", "1.4.0", "1.3.0", "1.2.0", "1.1.0", "1.0.0", "0.9.1", "0.9.0",
];

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
    /// `trustedCertBundle` (CFE 1.9+): a PEM file of CA certificates the SDK clients trust
    /// (private endpoints, TLS-inspecting proxies).
    pub trusted_cert_bundle: Option<String>,
    /// What loaded but deserves a look, each `path: message` (types coerced as CFE did,
    /// legacy bucket names, properties CFE ignores).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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
    /// The bucket's region, when `scopingName` was a virtual-host name
    /// (`bucket.s3.REGION.amazonaws.com`, split as CFE 2.1+ does).
    pub bucket_region: Option<String>,
    /// `endpointDnsName` (CFE 2.4): the S3 interface endpoint (AWS PrivateLink) to talk to.
    pub endpoint_dns_name: Option<String>,
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
    /// `endpointDnsName` (CFE 2.4): the EC2 interface endpoint (AWS PrivateLink) to talk to.
    pub endpoint_dns_name: Option<String>,
}

impl FailoverAddresses {
    /// The `elasticIpAddress` groups: each EIP with its VIPs.
    pub fn elastic_ip_groups(&self) -> impl Iterator<Item = (IpAddr, &[IpAddr])> {
        self.groups.iter().filter_map(|g| match g {
            AddressGroup::ElasticIpAddress {
                scoping_address,
                vip_addresses,
            } => Some((*scoping_address, vip_addresses.as_slice())),
            AddressGroup::NetworkInterfaceAddress { .. }
            | AddressGroup::NetworkInterfacePrefix { .. } => None,
        })
    }

    /// The delegated IPv4 prefixes (`networkInterfaceAddress` groups naming a prefix).
    pub fn prefixes(&self) -> impl Iterator<Item = Cidr> + '_ {
        self.groups.iter().filter_map(|g| match g {
            AddressGroup::NetworkInterfacePrefix { prefix } => Some(*prefix),
            _ => None,
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
    /// `networkInterfaceAddress` with an IPv4 prefix (CFE 2.2+): the ENI's delegated prefix
    /// moves to the active unit's interface in the same subnet.
    NetworkInterfacePrefix {
        /// The delegated prefix (/28).
        prefix: Cidr,
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
    /// `verifySeconds`: how long the verify round keeps re-reading an operation whose call
    /// succeeded before it calls it unverified, and how long after a run a later one waits for
    /// describes to show that run's changes (EC2's API is eventually consistent; default 10,
    /// 0..=60).
    pub verify_seconds: u64,
    /// `maxEventAgeSeconds`: an alarm, announcement or state change dated longer ago than this
    /// is not acted on (a late delivery, a retry, a redelivered message); 0 turns the bound
    /// off (default 900).
    pub max_event_age_seconds: u64,
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
    /// `createMissingRoutes`: the route groups (indexes into `failoverRoutes`' groups) whose
    /// declared ranges are created (CreateRoute) in scoped tables that lack them, pointing at
    /// the active unit; `true` in the declaration opts in every group (default: none).
    pub create_missing_routes: std::collections::BTreeSet<usize>,
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
    /// `expectBody`: the whole body (trimmed) a unit that is up serves (e.g. `ACTIVE`).
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
            verify_seconds: DEFAULT_VERIFY_SECONDS,
            max_event_age_seconds: 900,
            failback_to: None,
            probe: None,
            mutation_rate: 5,
            mutation_burst: 50,
            association_swap: false,
            create_missing_routes: std::collections::BTreeSet::new(),
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
        let root = Path::root();
        let mut coerced = value.clone();
        coerce_cfe_types(&mut coerced, &root);
        let value = &coerced;
        let mut top = Obj::new(value, root.clone())?;
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
                if !SCHEMA_VERSIONS.contains(&v) {
                    return Err(p.err(format!(
                        "{} is not a released CFE schema version ({} … {})",
                        show_str(v),
                        SCHEMA_VERSIONS[SCHEMA_VERSIONS.len() - 1],
                        SCHEMA_VERSIONS[0]
                    )));
                }
                Some(v.to_string())
            }
            None => None,
        };
        top.opt_str("$schema")?;
        let trusted_cert_bundle = match top.opt_str("trustedCertBundle")? {
            Some(("", _)) => None,
            Some((b, _)) => Some(b.to_string()),
            None => None,
        };
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
                // CFE's schema bounds neither end; an interval only matters when enabled, and
                // then it must be at least a minute (EventBridge's finest schedule).
                let min = u64::from(enabled);
                let interval = o.opt_int("interval", min, 525_600)?.unwrap_or(15) as u32;
                o.finish()?;
                Some(RetryFailover {
                    enabled,
                    interval_minutes: interval,
                })
            }
            None => None,
        };
        let route_groups = failover_routes.as_ref().map_or(0, |r| r.groups.len());
        let extension = match top.opt(EXTENSION_KEY) {
            Some((v, p)) => parse_extension(v, p, route_groups)?,
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
            trusted_cert_bundle,
            warnings: root.warnings(),
        })
    }

    /// What this declaration sets of the SDK clients' own settings (endpoints, the bucket's
    /// region, a CA bundle), by field name.
    pub fn own_endpoints(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self
            .failover_addresses
            .as_ref()
            .is_some_and(|a| a.endpoint_dns_name.is_some())
        {
            out.push("failoverAddresses.endpointDnsName");
        }
        if self.external_storage.endpoint_dns_name.is_some() {
            out.push("externalStorage.endpointDnsName");
        }
        if self.external_storage.bucket_region.is_some() {
            out.push("a region in externalStorage.scopingName");
        }
        if self.trusted_cert_bundle.is_some() {
            out.push("trustedCertBundle");
        }
        out
    }

    /// `controls.logLevel` as a `tracing` filter directive: CFE's levels (winston's, without
    /// `http`) onto tracing's; `verbose` has no level of its own and logs as `debug`.
    pub fn log_directive(&self) -> &'static str {
        match self.log_level.as_str() {
            "error" => "error",
            "warning" => "warn",
            "debug" | "verbose" => "debug",
            "silly" => "trace",
            _ => "info",
        }
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

/// The JSON type CFE's schema gives a scalar property.
#[derive(Clone, Copy)]
enum Want {
    Bool,
    Int,
    Str,
}

/// Where CFE's schema (v1.0–v2.5) types a scalar: `*` is any array item. The `serverless`
/// block is ours and is not coerced.
const CFE_SCALARS: &[(&str, Want)] = &[
    ("class", Want::Str),
    ("schemaVersion", Want::Str),
    ("$schema", Want::Str),
    ("environment", Want::Str),
    ("trustedCertBundle", Want::Str),
    ("controls.class", Want::Str),
    ("controls.logLevel", Want::Str),
    ("externalStorage.scopingName", Want::Str),
    ("externalStorage.stateFileName", Want::Str),
    ("externalStorage.endpointDnsName", Want::Str),
    ("externalStorage.encryption.serverSide.enabled", Want::Bool),
    ("externalStorage.encryption.serverSide.algorithm", Want::Str),
    ("externalStorage.encryption.serverSide.keyId", Want::Str),
    ("failoverAddresses.enabled", Want::Bool),
    ("failoverAddresses.requireScopingTags", Want::Bool),
    ("failoverAddresses.endpointDnsName", Want::Str),
    ("failoverRoutes.enabled", Want::Bool),
    ("failoverRoutes.scopingAddressRanges.*.range", Want::Str),
    (
        "failoverRoutes.scopingAddressRanges.*.nextHopAddresses.discoveryType",
        Want::Str,
    ),
    (
        "failoverRoutes.defaultNextHopAddresses.discoveryType",
        Want::Str,
    ),
    ("failoverRoutes.routeGroupDefinitions.*.scopingName", Want::Str),
    (
        "failoverRoutes.routeGroupDefinitions.*.scopingAddressRanges.*.range",
        Want::Str,
    ),
    (
        "failoverRoutes.routeGroupDefinitions.*.scopingAddressRanges.*.nextHopAddresses.discoveryType",
        Want::Str,
    ),
    (
        "failoverRoutes.routeGroupDefinitions.*.defaultNextHopAddresses.discoveryType",
        Want::Str,
    ),
    ("retryFailover.enabled", Want::Bool),
    ("retryFailover.interval", Want::Int),
];

/// Converts scalars of the wrong JSON type as CFE's validator did (Ajv 6 with
/// `coerceTypes: true`), with one warning per converted field: to a boolean from "true" /
/// "false", 1 / 0 and null; to an integer from a numeric string, a boolean and null; to a
/// string from a number, a boolean and null. Anything else is left for the parser to reject.
fn coerce_cfe_types(value: &mut Value, root: &Path) {
    for (pattern, want) in CFE_SCALARS {
        let parts: Vec<&str> = pattern.split('.').collect();
        coerce_at(value, &parts, root.clone(), *want);
    }
}

fn coerce_at(v: &mut Value, parts: &[&str], path: Path, want: Want) {
    let Some((first, rest)) = parts.split_first() else {
        if let Some(new) = coerced(v, want) {
            path.warn(format!(
                "{} read as {new} (CFE converts types; write it as {new})",
                show(v)
            ));
            *v = new;
        }
        return;
    };
    if *first == "*" {
        if let Value::Array(items) = v {
            for (i, item) in items.iter_mut().enumerate() {
                coerce_at(item, rest, path.idx(i), want);
            }
        }
    } else if let Some(child) = v.as_object_mut().and_then(|m| m.get_mut(*first)) {
        coerce_at(child, rest, path.key(first), want);
    }
}

fn coerced(v: &Value, want: Want) -> Option<Value> {
    match (want, v) {
        (Want::Bool, Value::String(s)) if s == "true" => Some(Value::Bool(true)),
        (Want::Bool, Value::String(s)) if s == "false" => Some(Value::Bool(false)),
        (Want::Bool, Value::Number(n)) if n.as_f64() == Some(1.0) => Some(Value::Bool(true)),
        (Want::Bool, Value::Number(n)) if n.as_f64() == Some(0.0) => Some(Value::Bool(false)),
        (Want::Bool, Value::Null) => Some(Value::Bool(false)),
        (Want::Int, Value::String(s)) => {
            let n: f64 = s.trim().parse().ok()?;
            (!s.trim().is_empty() && n.is_finite() && n.fract() == 0.0 && n.abs() < 9.0e15)
                .then(|| Value::from(n as i64))
        }
        (Want::Int, Value::Bool(b)) => Some(Value::from(u8::from(*b))),
        (Want::Int, Value::Null) => Some(Value::from(0)),
        (Want::Str, Value::Number(n)) => {
            Some(Value::String(match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.to_string(),
                (_, Some(u), _) => u.to_string(),
                (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => (f as i64).to_string(),
                _ => n.to_string(),
            }))
        }
        (Want::Str, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (Want::Str, Value::Null) => Some(Value::String(String::new())),
        _ => None,
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
    let endpoint_dns_name = parse_endpoint(&mut o, "s3")?;
    let scope = parse_scope(&mut o, "a bucket name", |_| Ok::<(), &str>(()))?;
    let (scope, bucket_region) = match scope {
        Scope::Name(name) => {
            let np = o.path.key("scopingName");
            let (bucket, region) = split_bucket_name(&name, endpoint_dns_name.is_some());
            check_bucket_name(bucket, &np, &name)?;
            if let Some(r) = region {
                np.warn(format!(
                    "virtual-host name read as bucket \"{bucket}\" in region \"{r}\" (as CFE 2.1+ does)"
                ));
            }
            (Scope::Name(bucket.to_string()), region.map(str::to_string))
        }
        tags => (tags, None),
    };
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
                Some((v, p)) => parse_server_side(v, p)?,
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
        bucket_region,
        endpoint_dns_name,
    })
}

/// `encryption.serverSide` with CFE's schema defaults (`enabled: false`, `algorithm:
/// "aws:kms"`) and CFE's use of them: nothing is sent unless `enabled` is true; then the
/// algorithm, and the key id when one is given.
fn parse_server_side(v: &Value, p: Path) -> Result<Encryption, DeclarationError> {
    let mut s = Obj::new(v, p)?;
    let enabled = s.opt_bool("enabled")?.unwrap_or(false);
    let algorithm = s.opt_str("algorithm")?;
    let key_id = s.opt_str("keyId")?;
    let sp = s.path.clone();
    s.finish()?;
    let kms = match algorithm {
        None | Some(("aws:kms", _)) => true,
        Some(("AES256", _)) => false,
        Some((other, ap)) => {
            return Err(ap.err(format!(
                "{} is not \"AES256\" or \"aws:kms\"",
                show_str(other)
            )))
        }
    };
    if !enabled {
        if algorithm.is_some() || key_id.is_some() {
            sp.key("enabled").warn(
                "is not true, so nothing is encrypted by request (CFE's default is enabled: false; \
                 the bucket's default encryption applies)",
            );
        }
        return Ok(Encryption::None);
    }
    let key_id = match key_id {
        Some(("", kp)) => {
            kp.warn("is empty: the AWS managed key is used (as CFE did)");
            None
        }
        Some((k, kp)) if !kms => {
            kp.warn(format!(
                "{} is ignored with algorithm \"AES256\" (S3 would refuse a KMS key with SSE-S3)",
                show_str(k)
            ));
            None
        }
        Some((k, _)) => Some(k.to_string()),
        None => None,
    };
    if algorithm.is_none() {
        sp.key("algorithm")
            .warn("not given: \"aws:kms\" (CFE's default) is used");
    }
    Ok(if kms {
        Encryption::Kms { key_id }
    } else {
        Encryption::Aes256
    })
}

/// `endpointDnsName`: the DNS name of an interface VPC endpoint for `service` (`s3`, `ec2`).
/// CFE uses it only when it names a `vpce-` endpoint, dropping a leading `*.`; so do we, and
/// we warn when it would be ignored.
fn parse_endpoint(o: &mut Obj<'_>, service: &str) -> Result<Option<String>, DeclarationError> {
    let Some((name, p)) = o.opt_str("endpointDnsName")? else {
        return Ok(None);
    };
    if name.is_empty() {
        return Ok(None);
    }
    if !name.contains("vpce-") {
        p.warn(format!(
            "{} is not an interface endpoint name (vpce-…): ignored, as CFE does; {service} is reached at its regional endpoint",
            show_str(name)
        ));
        return Ok(None);
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    let ok = host.len() <= 253
        && host.split('.').all(|l| {
            (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(p.err(format!("{} is not a DNS name", show_str(name))));
    }
    Ok(Some(host.to_string()))
}

/// Splits a virtual-host bucket name as CFE 2.1+ does: `bucket.s3.REGION.amazonaws.com`
/// gives the bucket and its region; with a PrivateLink endpoint
/// (`NAME.bucket.vpce-….s3.REGION.vpce.amazonaws.com`) the region is the fifth label.
/// Any other name is returned unchanged.
pub fn split_bucket_name(name: &str, private_link: bool) -> (&str, Option<&str>) {
    if !name.contains(".s3.") {
        return (name, None);
    }
    let labels: Vec<&str> = name.split('.').collect();
    let region = labels
        .get(if private_link { 4 } else { 2 })
        .copied()
        .filter(|r| !r.is_empty());
    (labels[0], region)
}

/// S3 bucket naming: 3-63 of a-z 0-9 . -; legacy us-east-1 names (made before March 2018)
/// may also hold capitals and underscores and be up to 255 long: those load with a warning.
fn check_bucket_name(bucket: &str, p: &Path, given: &str) -> Result<(), DeclarationError> {
    let modern = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if modern {
        return Ok(());
    }
    let legacy = (3..=255).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if legacy {
        p.warn(format!(
            "\"{bucket}\" is a legacy bucket name (capitals, underscores or over 63 characters: only us-east-1 buckets made before March 2018 have one)"
        ));
        return Ok(());
    }
    Err(p.err(format!("{} is not an S3 bucket name", show_str(given))))
}

/// Reads exactly one of `scopingName` / `scopingTags` from `o`.
fn parse_scope<M: fmt::Display>(
    o: &mut Obj<'_>,
    what: &str,
    check_name: impl Fn(&str) -> Result<(), M>,
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
    let endpoint_dns_name = parse_endpoint(&mut o, "ec2")?;
    let scoping_tags = o.opt_tags("scopingTags")?;
    let require_scoping_tags = o.opt_bool("requireScopingTags")?.unwrap_or(false);
    let mut groups = Vec::new();
    if let Some((items, _)) = o.opt_array("addressGroupDefinitions", 1, 500)? {
        for (v, p) in items {
            let mut g = Obj::new(v, p)?;
            let (kind, kp) = g.req_str("type")?;
            if kind == "networkInterfaceAddress" {
                if let Some((Value::String(text), ap)) = g.opt("scopingAddress") {
                    if text.contains('/') {
                        let prefix: Cidr = text
                            .parse()
                            .map_err(|e: CidrError| ap.err(format!("{} {e}", show_str(text))))?;
                        if prefix.is_ipv6() {
                            return Err(ap.err(format!(
                                "{} is not an IPv4 prefix (only IPv4 prefixes move between interfaces)",
                                show_str(text)
                            )));
                        }
                        if prefix.prefix() != 28 {
                            ap.warn(format!(
                                "{} is not a /28: EC2 delegates IPv4 prefixes as /28 only, so no interface holds it",
                                show_str(text)
                            ));
                        }
                        if let Some((_, vp)) = g.opt("vipAddresses") {
                            vp.warn("is ignored for networkInterfaceAddress (as CFE does): the scopingAddress itself moves");
                        }
                        g.finish()?;
                        let group = AddressGroup::NetworkInterfacePrefix { prefix };
                        if groups.contains(&group) {
                            return Err(ap.err(format!("{} is defined twice", show_str(text))));
                        }
                        groups.push(group);
                        continue;
                    }
                }
            }
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
                "networkInterfaceAddress" => {
                    // CFE's schema allows vipAddresses here and its own tests send them; its
                    // same-AZ move uses only scopingAddress.
                    if let Some((_, vp)) = g.opt("vipAddresses") {
                        vp.warn("is ignored for networkInterfaceAddress (as CFE does): the scopingAddress itself moves");
                    }
                    AddressGroup::NetworkInterfaceAddress {
                        scoping_address: addr,
                    }
                }
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
        endpoint_dns_name,
    })
}

fn parse_routes(v: &Value, p: Path) -> Result<FailoverRoutes, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let enabled = o.opt_bool("enabled")?.unwrap_or(true);
    let mut groups = Vec::new();
    if let Some((items, _)) = o.opt_array("routeGroupDefinitions", 1, 100)? {
        for (v, p) in items {
            let mut g = Obj::new(v, p)?;
            // CFE accepted any string and compared it with route table ids: a table's name
            // matched nothing, so every failover left its routes alone. Refused on paper.
            let scope = parse_scope(&mut g, "a route table id", check_rtb)?;
            let ranges = if g.map.contains_key("scopingAddressRanges") {
                parse_ranges(&mut g)?
            } else {
                // CFE's schema allows it, and CFE defaults the range to "all"; on AWS, v2.4.0
                // then looked each route's CIDR up in the string "all" (cloud.js:1086) and
                // updated none. Nothing is managed here either, rather than every route.
                g.path.key("scopingAddressRanges").warn(
                    "not given: this route group manages no route (CFE's default range \"all\" updated no route on AWS); list the destinations to fail over, e.g. [{\"range\": \"0.0.0.0/0\"}]",
                );
                Vec::new()
            };
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
    } else if !enabled
        && ![
            "scopingTags",
            "scopingAddressRanges",
            "defaultNextHopAddresses",
        ]
        .iter()
        .any(|k| o.map.contains_key(*k))
    {
        // `{"enabled": false}` alone: valid under CFE's schema, nothing to fail over.
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

fn check_rtb(name: &str) -> Result<(), String> {
    let hex = name.strip_prefix("rtb-").unwrap_or("");
    // EC2's ids are lower-case hex: a capital never matches a table.
    if (8..=17).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(());
    }
    Err(format!(
        "is not a route table id (rtb-…): CFE compared scopingName with route table ids, so it matched no table and no route failed over; give the table's id (aws ec2 describe-route-tables --filters Name=tag:Name,Values={} --query 'RouteTables[].RouteTableId'), or select the table with scopingTags",
        shell_word(name)
    ))
}

/// `s` as one shell word in a suggested command.
fn shell_word(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn parse_ranges(o: &mut Obj<'_>) -> Result<Vec<AddressRange>, DeclarationError> {
    let (items, _) = o.req_array("scopingAddressRanges", 1, 200)?;
    let mut ranges: Vec<AddressRange> = Vec::new();
    for (v, p) in items {
        // CFE 0.9.1 took plain strings here; later schemas an object with `range`.
        let (text, rp, mut r) = match v {
            Value::String(text) => {
                p.warn("a plain string is CFE 0.9's form: read as {\"range\": …}");
                (text.as_str(), p, None)
            }
            _ => {
                let mut r = Obj::new(v, p)?;
                let (text, rp) = r.req_str("range")?;
                (text, rp, Some(r))
            }
        };
        let range: Cidr = match text.parse() {
            Ok(c) => c,
            Err(CidrError::HostBits(net)) => {
                // CFE accepts it and compares it with the routes' CIDRs as text: no EC2 route
                // has host bits, so it matched nothing. It still matches nothing here.
                rp.warn(format!(
                    "{} has host bits set, so no route matches it (as under CFE); did you mean {net}?",
                    show_str(text)
                ));
                if let Some(r) = r.as_mut() {
                    r.opt("nextHopAddresses");
                }
                if let Some(r) = r {
                    r.finish()?;
                }
                continue;
            }
            Err(e) => return Err(rp.err(format!("{} {e}", show_str(text)))),
        };
        if ranges.iter().any(|x| x.range == range) {
            return Err(rp.err(format!("{} is listed twice", show_str(text))));
        }
        let next_hops = match r.as_mut().and_then(|r| r.opt("nextHopAddresses")) {
            Some((v, p)) => Some(parse_next_hops(v, p)?),
            None => None,
        };
        if let Some(r) = r {
            r.finish()?;
        }
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

fn parse_extension(v: &Value, p: Path, route_groups: usize) -> Result<Extension, DeclarationError> {
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
    if let Some(n) = o.opt_int("verifySeconds", 0, 60)? {
        ext.verify_seconds = n;
    }
    if let Some(n) = o.opt_int("maxEventAgeSeconds", 0, 86_400)? {
        ext.max_event_age_seconds = n;
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
    if let Some((v, cp)) = o.opt("createMissingRoutes") {
        ext.create_missing_routes = match v {
            Value::Bool(true) => (0..route_groups).collect(),
            Value::Bool(false) => Default::default(),
            Value::Array(items) => {
                let mut set = std::collections::BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    let ip = cp.idx(i);
                    match item.as_u64() {
                        Some(n) if (n as usize) < route_groups => {
                            set.insert(n as usize);
                        }
                        _ => {
                            return Err(ip.err(format!(
                                "expected the index of a route group (0 to {}), got {}",
                                route_groups.saturating_sub(1),
                                show(item)
                            )))
                        }
                    }
                }
                set
            }
            other => {
                return Err(cp.err(format!(
                    "expected true, false or a list of route group indexes, got {}",
                    show(other)
                )))
            }
        };
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
    if let Some((body, bp)) = o.opt_str("expectBody")? {
        if body.trim().is_empty() {
            return Err(bp.err("is empty: name the whole text the page serves when the unit is active (e.g. ACTIVE)"));
        }
        // The probe compares the whole trimmed body; say so where a substring would mislead.
        let word = body.trim().to_ascii_uppercase();
        if let Some(neg) = ["IN", "NOT ", "UN", "NON"]
            .iter()
            .map(|p| format!("{p}{word}"))
            .find(|n| {
                [
                    "INACTIVE",
                    "NOT ACTIVE",
                    "UNHEALTHY",
                    "NOT UP",
                    "NOT READY",
                    "UNAVAILABLE",
                    "NONACTIVE",
                ]
                .contains(&n.as_str())
            })
        {
            bp.warn(format!(
                "{} is part of {neg:?}: the probe counts a unit up only when the whole page (trimmed) is {}, so serve exactly that when active and anything else (e.g. {neg}) otherwise",
                show_str(body),
                show_str(body)
            ));
        }
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

/// A JSON path under construction, sharing one warnings list with every path derived from
/// the same root (so the parse functions need no extra argument to report a warning).
#[derive(Clone, Debug)]
struct Path(String, Rc<RefCell<Vec<String>>>);

impl Path {
    fn root() -> Path {
        Path(String::new(), Rc::default())
    }
    fn key(&self, k: &str) -> Path {
        if self.0.is_empty() {
            Path(k.to_string(), self.1.clone())
        } else {
            Path(format!("{}.{k}", self.0), self.1.clone())
        }
    }
    fn idx(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0), self.1.clone())
    }
    fn err(&self, message: impl Into<String>) -> DeclarationError {
        err(&self.to_string(), message.into())
    }
    /// Records a warning about this path (the declaration still loads).
    fn warn(&self, message: impl fmt::Display) {
        self.1.borrow_mut().push(format!("{self}: {message}"));
    }
    /// The warnings recorded under this root so far.
    fn warnings(&self) -> Vec<String> {
        self.1.borrow().clone()
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
            // CFE's schema leaves tag values untyped: a number matches the tag of its text.
            let number = value.as_number().map(ToString::to_string);
            if let Some(n) = &number {
                p.key(key)
                    .warn(format!("the number {n} is read as the tag value \"{n}\""));
            }
            let s = number.as_deref().or(value.as_str()).ok_or_else(|| {
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

    const AFTER: &str = include_str!("../../../../examples/seed-article/declaration-after.json");
    const BEFORE: &str = include_str!("../../../../examples/seed-article/declaration-before.json");
    const SNAT_NONE: &str = include_str!("../../../../examples/seed-article/cfe-snat-none.json");

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

    // ---- CFE compatibility (issue 13) ----

    #[test]
    fn cfe_type_coercion_converts_strings_and_warns_per_field() {
        // GIVEN F5's OpenAPI example form: booleans and integers written as strings
        let d = with(|v| {
            v["failoverAddresses"]["enabled"] = "true".into();
            v["failoverRoutes"]["enabled"] = "false".into();
            v["retryFailover"] = serde_json::json!({"enabled": "true", "interval": "5"});
        })
        .unwrap();
        // THEN they mean what they meant under CFE, with a warning naming each field
        assert!(d.failover_addresses.as_ref().unwrap().enabled);
        assert!(!d.failover_routes.as_ref().unwrap().enabled);
        let retry = d.retry_failover.as_ref().unwrap();
        assert!(retry.enabled);
        assert_eq!(retry.interval_minutes, 5);
        let fields: Vec<&str> = d
            .warnings
            .iter()
            .map(|w| w.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "failoverAddresses.enabled",
                "failoverRoutes.enabled",
                "retryFailover.enabled",
                "retryFailover.interval"
            ]
        );
        assert_eq!(
            d.warnings[3],
            "retryFailover.interval: a string (\"5\") read as 5 (CFE converts types; write it as 5)"
        );
        // Ajv's other conversions: 1/0 and null to booleans, numbers to strings.
        let d = with(|v| {
            v["failoverAddresses"]["requireScopingTags"] = 0.into();
            v["failoverRoutes"]["enabled"] = Value::Null;
        })
        .unwrap();
        assert!(!d.addresses().unwrap().require_scoping_tags);
        assert!(d.route_groups().is_empty());
        // What Ajv would not convert stays an error naming the path.
        let e = with(|v| v["failoverAddresses"]["enabled"] = "yes".into()).unwrap_err();
        assert_eq!(e.path, "failoverAddresses.enabled");
        let e = with(|v| v["retryFailover"] = serde_json::json!({"interval": "5.5"})).unwrap_err();
        assert_eq!(e.path, "retryFailover.interval");
        // The serverless block is ours: no conversion there.
        let e = with(|v| v["serverless"] = serde_json::json!({"maxConcurrency": "4"})).unwrap_err();
        assert_eq!(e.path, "serverless.maxConcurrency");
    }

    fn sse(server_side: Value) -> Result<Declaration, DeclarationError> {
        with(|v| {
            v["externalStorage"]["encryption"] = serde_json::json!({"serverSide": server_side})
        })
    }

    #[test]
    fn encryption_defaults_are_cfes() {
        // CFE's schema: enabled defaults to false, algorithm to "aws:kms".
        let enc = |s: Value| sse(s).unwrap().external_storage.encryption;
        assert_eq!(
            enc(serde_json::json!({"enabled": true})),
            Encryption::Kms { key_id: None }
        );
        assert_eq!(
            enc(serde_json::json!({"algorithm": "AES256"})),
            Encryption::None
        );
        assert_eq!(
            enc(serde_json::json!({"algorithm": "aws:kms", "keyId": "alias/x"})),
            Encryption::None
        );
        assert_eq!(enc(serde_json::json!({})), Encryption::None);
        assert_eq!(
            enc(serde_json::json!({"enabled": true, "algorithm": "AES256"})),
            Encryption::Aes256
        );
        assert_eq!(
            enc(serde_json::json!({"enabled": true, "keyId": "alias/cfe"})),
            Encryption::Kms {
                key_id: Some("alias/cfe".into())
            }
        );
        // CFE sent no key header for an empty key id, and S3 refuses a KMS key with SSE-S3.
        assert_eq!(
            enc(serde_json::json!({"enabled": true, "algorithm": "aws:kms", "keyId": ""})),
            Encryption::Kms { key_id: None }
        );
        let d =
            sse(serde_json::json!({"enabled": true, "algorithm": "AES256", "keyId": "k"})).unwrap();
        assert_eq!(d.external_storage.encryption, Encryption::Aes256);
        assert!(
            d.warnings[0].starts_with("externalStorage.encryption.serverSide.keyId:"),
            "{:?}",
            d.warnings
        );
        let d = sse(serde_json::json!({"algorithm": "AES256"})).unwrap();
        assert!(
            d.warnings[0].starts_with("externalStorage.encryption.serverSide.enabled: is not true"),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn legacy_bucket_names_load_with_a_warning() {
        let named = |n: &str| {
            with(|v| {
                v["externalStorage"] = serde_json::json!({"scopingName": n});
            })
        };
        let d = named("myCloudFailoverBucket").unwrap();
        assert_eq!(
            d.external_storage.scope,
            Scope::Name("myCloudFailoverBucket".into())
        );
        assert_eq!(d.warnings.len(), 1);
        assert!(
            d.warnings[0].starts_with(
                "externalStorage.scopingName: \"myCloudFailoverBucket\" is a legacy bucket name"
            ),
            "{:?}",
            d.warnings
        );
        assert!(named("cfe_state_2017").is_ok());
        assert!(named("cfe-state").unwrap().warnings.is_empty());
        let e = named("my bucket!").unwrap_err();
        assert_eq!(e.path, "externalStorage.scopingName");
        assert!(named("ab").is_err());
    }

    #[test]
    fn schema_version_must_be_a_released_one() {
        for v in ["0.9.1", "1.0.0", "1.13.0", "2.1.3", "2.4.0", "2.5.0"] {
            let d = with(|d| d["schemaVersion"] = v.into()).unwrap();
            assert_eq!(d.schema_version.as_deref(), Some(v));
        }
        for v in ["9.9.9", "2.3.0", "1.0", "2.5.1"] {
            let e = with(|d| d["schemaVersion"] = v.into()).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "schemaVersion: \"{v}\" is not a released CFE schema version (0.9.0 … 2.5.0)"
                )
            );
        }
    }

    #[test]
    fn vip_addresses_on_a_network_interface_group_are_accepted_and_ignored() {
        // CFE's own functional tests send them (exampleDeclarationAwsPrivateLink.stache).
        let d = with(|v| {
            v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!([{
                "type": "networkInterfaceAddress",
                "scopingAddress": "10.0.0.101",
                "vipAddresses": ["10.0.0.101", "10.0.4.101"]
            }])
        })
        .unwrap();
        assert_eq!(
            d.addresses().unwrap().groups,
            vec![AddressGroup::NetworkInterfaceAddress {
                scoping_address: "10.0.0.101".parse().unwrap()
            }]
        );
        assert!(
            d.warnings[0].starts_with(
                "failoverAddresses.addressGroupDefinitions[0].vipAddresses: is ignored"
            ),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn virtual_host_bucket_names_are_split_as_cfe_does() {
        let named = |n: &str, endpoint: Option<&str>| {
            with(|v| {
                v["externalStorage"] = serde_json::json!({"scopingName": n});
                if let Some(e) = endpoint {
                    v["externalStorage"]["endpointDnsName"] = e.into();
                }
            })
            .unwrap()
            .external_storage
        };
        let s = named("cfe-state.s3.us-gov-west-1.amazonaws.com", None);
        assert_eq!(s.scope, Scope::Name("cfe-state".into()));
        assert_eq!(s.bucket_region.as_deref(), Some("us-gov-west-1"));
        let s = named(
            "cfe-state.bucket.vpce-0a1b2c3d-4e5f6a7b.s3.us-east-2.vpce.amazonaws.com",
            Some("vpce-0a1b2c3d-4e5f6a7b.s3.us-east-2.vpce.amazonaws.com"),
        );
        assert_eq!(s.scope, Scope::Name("cfe-state".into()));
        assert_eq!(s.bucket_region.as_deref(), Some("us-east-2"));
        let s = named("cfe-state", None);
        assert_eq!(s.bucket_region, None);
        // A dotted name without ".s3." is an ordinary bucket name.
        let s = named("state.example.com", None);
        assert_eq!(s.scope, Scope::Name("state.example.com".into()));
    }

    #[test]
    fn endpoint_dns_names_and_trusted_cert_bundle_are_kept() {
        let d = with(|v| {
            v["externalStorage"]["endpointDnsName"] =
                "*.vpce-0c1d2e3f-abcd1234.s3.us-east-1.vpce.amazonaws.com".into();
            v["failoverAddresses"]["endpointDnsName"] =
                "vpce-0d2e3f4a-bcde2345.ec2.us-east-1.vpce.amazonaws.com".into();
            v["trustedCertBundle"] = "/config/ssl/ssl.crt/ca-bundle.crt".into();
        })
        .unwrap();
        assert_eq!(
            d.external_storage.endpoint_dns_name.as_deref(),
            Some("vpce-0c1d2e3f-abcd1234.s3.us-east-1.vpce.amazonaws.com")
        );
        assert_eq!(
            d.addresses().unwrap().endpoint_dns_name.as_deref(),
            Some("vpce-0d2e3f4a-bcde2345.ec2.us-east-1.vpce.amazonaws.com")
        );
        assert_eq!(
            d.trusted_cert_bundle.as_deref(),
            Some("/config/ssl/ssl.crt/ca-bundle.crt")
        );
        // CFE ignores a name that is not an interface endpoint's; so do we, saying so.
        let d = with(|v| {
            v["failoverAddresses"]["endpointDnsName"] = "ec2.us-east-1.amazonaws.com".into()
        })
        .unwrap();
        assert_eq!(d.addresses().unwrap().endpoint_dns_name, None);
        assert!(d.warnings[0].starts_with("failoverAddresses.endpointDnsName:"));
        let e =
            with(|v| v["externalStorage"]["endpointDnsName"] = "vpce-bad name".into()).unwrap_err();
        assert_eq!(e.path, "externalStorage.endpointDnsName");
    }

    #[test]
    fn disabled_routes_need_nothing_else_as_under_cfe() {
        let d = with(|v| v["failoverRoutes"] = serde_json::json!({"enabled": false})).unwrap();
        assert!(d.route_groups().is_empty());
        // Enabled, or with route settings, the group still has to be complete.
        let e = with(|v| v["failoverRoutes"] = serde_json::json!({"enabled": true})).unwrap_err();
        assert!(
            e.to_string()
                .contains("needs routeGroupDefinitions or scopingTags"),
            "{e}"
        );
        assert!(with(|v| {
            v["failoverRoutes"] =
                serde_json::json!({"enabled": false, "scopingAddressRanges": [{"range": "0.0.0.0/0"}]})
        })
        .is_err());
    }

    #[test]
    fn an_ipv4_prefix_is_a_network_interface_address() {
        let group = |addr: &str| {
            with(|v| {
                v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!([
                    {"type": "networkInterfaceAddress", "scopingAddress": addr}
                ])
            })
        };
        let d = group("10.0.12.48/28").unwrap();
        assert_eq!(
            d.addresses().unwrap().groups,
            vec![AddressGroup::NetworkInterfacePrefix {
                prefix: "10.0.12.48/28".parse().unwrap()
            }]
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        let d = group("10.0.12.32/27").unwrap();
        assert!(d.warnings[0].contains("is not a /28"), "{:?}", d.warnings);
        let e = group("10.0.12.49/28").unwrap_err();
        assert_eq!(
            e.to_string(),
            "failoverAddresses.addressGroupDefinitions[0].scopingAddress: \"10.0.12.49/28\" has host bits set (did you mean 10.0.12.48/28?)"
        );
        let e = group("2001:db8::/64").unwrap_err();
        assert!(e.message.contains("is not an IPv4 prefix"), "{e}");
        // An elastic IP is still an address, never a prefix.
        let e = with(|v| {
            v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!([
                {"type": "elasticIpAddress", "scopingAddress": "10.0.12.48/28", "vipAddresses": ["10.0.0.101", "10.0.4.101"]}
            ])
        })
        .unwrap_err();
        assert!(e.message.contains("is not an IP address"), "{e}");
    }

    #[test]
    fn log_level_maps_onto_tracing_levels() {
        let level = |l: &str| {
            with(|v| v["controls"]["logLevel"] = l.into())
                .unwrap()
                .log_directive()
        };
        assert_eq!(level("error"), "error");
        assert_eq!(level("warning"), "warn");
        assert_eq!(level("info"), "info");
        assert_eq!(level("verbose"), "debug");
        assert_eq!(level("debug"), "debug");
        assert_eq!(level("silly"), "trace");
    }

    #[test]
    fn cfe_0_9_string_ranges_and_host_bit_ranges_load() {
        let d = with(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"] =
                serde_json::json!(["0.0.0.0/0", {"range": "192.168.1.1/24"}])
        })
        .unwrap();
        let ranges: Vec<String> = d.route_groups()[0]
            .ranges
            .iter()
            .map(|r| r.range.to_string())
            .collect();
        // The host-bit range matched no route under CFE (text comparison); it is left out.
        assert_eq!(ranges, ["0.0.0.0/0"]);
        assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
        assert!(d.warnings[1].contains("did you mean 192.168.1.0/24?"));
    }

    /// Adversarial review of issue 13: declarations CFE accepts that were rejected here.
    #[test]
    fn retry_intervals_and_numeric_tag_values_as_cfe_reads_them() {
        let base: Value = serde_json::from_str(AFTER).unwrap();
        let load = |patch: &dyn Fn(&mut Value)| {
            let mut v = base.clone();
            patch(&mut v);
            Declaration::from_value(&v)
        };
        load(&|v| v["retryFailover"] = serde_json::json!({"enabled": false, "interval": 0}))
            .unwrap();
        load(&|v| v["retryFailover"] = serde_json::json!({"enabled": true, "interval": 2000}))
            .unwrap();
        let e = load(&|v| v["retryFailover"] = serde_json::json!({"enabled": true, "interval": 0}))
            .unwrap_err();
        assert!(e.to_string().starts_with("retryFailover.interval:"), "{e}");
        let d = load(&|v| {
            v["externalStorage"]["scopingTags"] =
                serde_json::json!({"f5_cloud_failover_label": 123})
        })
        .unwrap();
        assert!(
            d.warnings
                .iter()
                .any(|w| w.contains("the number 123 is read as the tag value \"123\"")),
            "{:?}",
            d.warnings
        );
    }
}
