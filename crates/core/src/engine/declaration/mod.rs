//! The declaration: F5 Cloud Failover Extension's JSON schema for `environment: "aws"`,
//! parsed strictly (every error names its JSON path), plus one optional extension block,
//! `serverless`, for what CFE lacks.

mod addresses;
mod coerce;
mod cursor;
mod extension;
mod groups;
mod routes;
mod storage;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::Serialize;
use serde_json::Value;

use crate::engine::net::Cidr;

use addresses::parse_addresses;
use coerce::coerce_cfe_types;
use cursor::{err, show_str, Obj, Path};
use extension::parse_extension;
use routes::parse_routes;
use storage::parse_storage;

pub use extension::{is_instance_id, is_vpc_id};
pub use groups::{is_group_name, FailoverGroup, Managed, MAX_GROUPS};
pub use storage::split_bucket_name;

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
    /// `groups`: the pair's failover groups by name (active-active: each group active on its
    /// own unit), each with its items; empty (the default): the pair is one group.
    pub groups: BTreeMap<String, FailoverGroup>,
    /// The group this declaration is narrowed to ([`Declaration::per_group`]; never parsed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
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
            groups: BTreeMap::new(),
            group: None,
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
            crate::engine::json::parse(text).map_err(|e| err("declaration", e.to_string()))?;
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
        let declaration = Declaration {
            schema_version,
            log_level,
            external_storage,
            failover_addresses,
            failover_routes,
            retry_failover,
            extension,
            trusted_cert_bundle,
            warnings: root.warnings(),
        };
        groups::check_groups(&declaration)?;
        Ok(declaration)
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

// ---- properties more than one section reads ----

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

/// The scoping tag key of CFE deployments, and the default of the stack's `ScopingTagKey`
/// (the key its IAM conditions on; `SCOPING_TAG_KEY` in the functions and the CLI).
pub const LABEL_KEY: &str = "f5_cloud_failover_label";

/// Where the declaration scopes by tags without `stack_key`, the key the stack's IAM policy
/// conditions on (template.yaml's `ScopingTagKey`, the functions' `SCOPING_TAG_KEY`):
/// discovery would find those resources, but the function may not change them. One line per
/// scope, naming its JSON path.
pub fn stack_tag_mismatches(decl: &Declaration, stack_key: &str) -> Vec<String> {
    let mut scopes: Vec<(String, &Tags)> = Vec::new();
    if let Some(a) = &decl.failover_addresses {
        if !a.scoping_tags.is_empty() {
            scopes.push(("failoverAddresses.scopingTags".into(), &a.scoping_tags));
        }
    }
    for (i, g) in decl.route_groups().iter().enumerate() {
        if let Scope::Tags(t) = &g.scope {
            scopes.push((format!("failoverRoutes route group {i} scopingTags"), t));
        }
    }
    scopes
        .into_iter()
        .filter(|(_, t)| !t.contains_key(stack_key))
        .map(|(path, t)| {
            let keys: Vec<&str> = t.keys().map(String::as_str).collect();
            format!(
                "{path} scopes by {} but the stack's IAM policy allows changes only to resources tagged {stack_key} (ScopingTagKey): those changes would be denied",
                keys.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::declaration::{with, AFTER};

    const BEFORE: &str =
        include_str!("../../../../../examples/seed-article/declaration-before.json");
    const SNAT_NONE: &str = include_str!("../../../../../examples/seed-article/cfe-snat-none.json");

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

    /// Declarations CFE accepts that were once rejected here.
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
