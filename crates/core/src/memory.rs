//! The in-memory cloud: both ports (EC2 and S3) over one mutable world, enforcing the AWS
//! rules the moto emulator does not (EIPs only to addresses the ENI holds, secondary IPs
//! only within the subnet and only moved with AllowReassignment, EIPs follow moved IPs).
//! It logs every call and injects faults, for unit, property and fault-injection tests.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::engine::declaration::{Encryption, Tags};
use crate::engine::error::{CloudError, ErrorKind};
use crate::engine::model::{
    Association, ElasticIp, Filter, Instance, NetworkInterface, Route, RouteTable, VpcEndpoint,
    VpcSubnet,
};
use crate::engine::net::Cidr;
use crate::engine::ports::{
    DryRun, Ec2Describe, Ec2Mutate, Ec2Setup, Listed, Mutation, ObjectStore, StoredObject,
    WriteCondition, MUTATING_OPERATIONS,
};
use crate::lab::Topology;

/// When an injected fault strikes relative to the call's effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultTiming {
    /// The call fails and changes nothing.
    BeforeEffect,
    /// The call takes effect, then reports failure (a lost response).
    AfterEffect,
}

#[derive(Clone, Debug)]
struct Fault {
    operation: String,
    kind: ErrorKind,
    timing: FaultTiming,
    remaining: u32,
}

#[derive(Clone, Debug)]
struct Subnet {
    cidr: Cidr,
    vpc_id: String,
}

#[derive(Clone, Debug)]
struct InstanceRec {
    state: String,
    impaired: bool,
    az: String,
    instance_type: String,
    tags: Tags,
    interfaces: Vec<String>,
}

#[derive(Clone, Debug, Default)]
struct Bucket {
    tags: Tags,
    encryption: Option<String>,
    protection: BucketProtection,
    objects: BTreeMap<String, StoredRec>,
}

/// What a bucket's versioning, public access block and policy say (GetBucketVersioning,
/// GetPublicAccessBlock, GetBucketPolicy); see [`MemoryCloud::set_bucket_protection`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketProtection {
    /// `Enabled` or `Suspended`; `None`: never enabled.
    pub versioning: Option<String>,
    /// All four public-access-block settings on.
    pub public_access_blocked: bool,
    /// The bucket policy's JSON text.
    pub policy: Option<String>,
}

impl BucketProtection {
    /// What the stack's StateBucket gets (template.yaml): versioning, the public access
    /// block, and a policy denying every request without TLS.
    pub fn of_the_stack(bucket: &str) -> BucketProtection {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}}
            }]
        });
        BucketProtection {
            versioning: Some("Enabled".into()),
            public_access_blocked: true,
            policy: Some(policy.to_string()),
        }
    }
}

#[derive(Clone, Debug)]
struct StoredRec {
    body: Vec<u8>,
    etag: String,
    encryption: Encryption,
    last_modified: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Debug, Default)]
struct World {
    subnets: BTreeMap<String, Subnet>,
    instances: BTreeMap<String, InstanceRec>,
    interfaces: BTreeMap<String, NetworkInterface>,
    tables: BTreeMap<String, RouteTable>,
    eips: BTreeMap<String, ElasticIp>,
    buckets: BTreeMap<String, Bucket>,
    endpoints: BTreeMap<String, VpcEndpoint>,
    counter: u64,
}

/// How stale an EC2 describe may be. AWS documents the EC2 API as eventually consistent:
/// "the result of an API command you run that affects your Amazon EC2 resources might not be
/// immediately visible to all subsequent commands you run" (Amazon EC2 Developer Guide,
/// "Eventual consistency in the Amazon EC2 API",
/// <https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html>). Mutations are
/// validated against the current state at once; only describes lag, each on its own (two
/// describes in a row may disagree, as two requests to EC2 may).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Describes show every mutation at once.
    Immediate,
    /// Every describe shows the state as it was this long ago.
    Fixed(Duration),
    /// Each describe shows the state as it was a random time ago, up to this bound.
    UpTo(Duration),
}

impl Default for Visibility {
    /// The core's own unit, property and fault tests run with describes up to 200 ms stale;
    /// elsewhere (the lab, benchmarks) they are fresh unless set.
    fn default() -> Self {
        if cfg!(test) {
            Visibility::UpTo(Duration::from_millis(200))
        } else {
            Visibility::Immediate
        }
    }
}

/// What describes may show while mutations are recent: the state before the oldest recent
/// one, and the state after each recent mutation with the time it was made.
#[derive(Debug)]
struct Lag {
    visibility: Visibility,
    base: Option<World>,
    recent: std::collections::VecDeque<(tokio::time::Instant, World)>,
    seed: u64,
}

impl Default for Lag {
    fn default() -> Self {
        Lag {
            visibility: Visibility::default(),
            base: None,
            recent: Default::default(),
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

impl Lag {
    /// The longest a describe may lag.
    fn bound(&self) -> Duration {
        match self.visibility {
            Visibility::Immediate => Duration::ZERO,
            Visibility::Fixed(d) | Visibility::UpTo(d) => d,
        }
    }

    /// How stale the next describe is.
    fn staleness(&mut self) -> Duration {
        match self.visibility {
            Visibility::Immediate => Duration::ZERO,
            Visibility::Fixed(d) => d,
            Visibility::UpTo(max) => {
                // xorshift: reproducible, no dependency.
                self.seed ^= self.seed << 13;
                self.seed ^= self.seed >> 7;
                self.seed ^= self.seed << 17;
                max.mul_f64((self.seed % 1001) as f64 / 1000.0)
            }
        }
    }

    /// The world the next describe shows: the state after the newest mutation made at least
    /// its staleness ago, else the state before the recent ones.
    fn visible<'a>(&'a mut self, truth: &'a World) -> &'a World {
        let now = tokio::time::Instant::now();
        let bound = self.bound();
        // Mutations older than the bound are visible to every describe.
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| *at + bound <= now)
        {
            self.base = self.recent.pop_front().map(|(_, w)| w);
        }
        if self.recent.is_empty() {
            self.base = None;
            return truth;
        }
        let cutoff = now.checked_sub(self.staleness()).unwrap_or(now);
        match self.recent.iter().rposition(|(at, _)| *at <= cutoff) {
            Some(i) => &self.recent[i].1,
            None => self.base.as_ref().unwrap_or(truth),
        }
    }
}

/// An in-memory AWS account for one region.
#[derive(Debug, Default)]
pub struct MemoryCloud {
    world: Mutex<World>,
    lag: Mutex<Lag>,
    faults: Mutex<Vec<Fault>>,
    delays: Mutex<BTreeMap<String, Duration>>,
    denied: Mutex<Vec<String>>,
    calls: Mutex<Vec<String>>,
}

fn err(op: &'static str, kind: ErrorKind, code: &str, msg: impl Into<String>) -> CloudError {
    CloudError::new(op, kind, code, msg)
}

/// S3's 404 for a bucket that does not exist (named, as the adapter names it).
fn no_such_bucket(op: &'static str, bucket: &str) -> CloudError {
    err(
        op,
        ErrorKind::NotFound,
        "NoSuchBucket",
        format!("bucket {bucket} does not exist"),
    )
}

impl MemoryCloud {
    /// An empty account.
    pub fn new() -> MemoryCloud {
        MemoryCloud::default()
    }

    /// An account holding `topo` with its logical ids as real ids.
    pub fn from_topology(topo: &Topology) -> MemoryCloud {
        let cloud = MemoryCloud::new();
        cloud.add_topology(topo);
        cloud
    }

    /// Adds `topo` to this account (its bucket is shared if it exists already).
    pub fn add_topology(&self, topo: &Topology) {
        {
            let mut w = self.world.lock().unwrap();
            for s in &topo.subnets {
                w.subnets.insert(
                    s.id.clone(),
                    Subnet {
                        cidr: s.cidr,
                        vpc_id: topo.vpc_id.clone(),
                    },
                );
            }
            for i in &topo.instances {
                let mut t = Tags::new();
                t.insert("Name".into(), i.name.clone());
                w.instances.insert(
                    i.id.clone(),
                    InstanceRec {
                        state: "running".into(),
                        impaired: false,
                        az: i.az.clone(),
                        instance_type: i.instance_type.clone(),
                        tags: t,
                        interfaces: i.interfaces.iter().map(|n| n.id.clone()).collect(),
                    },
                );
                for (index, n) in i.interfaces.iter().enumerate() {
                    w.interfaces.insert(
                        n.id.clone(),
                        NetworkInterface {
                            id: n.id.clone(),
                            instance_id: Some(i.id.clone()),
                            subnet_id: n.subnet.clone(),
                            vpc_id: topo.vpc_id.clone(),
                            primary_ip: n.primary,
                            secondary_ips: n.secondary.clone(),
                            ipv6_ips: Vec::new(),
                            ipv4_prefixes: n.prefixes.clone(),
                            public_ips: BTreeMap::new(),
                            source_dest_check: n.source_dest_check,
                            tags: n.tags.clone(),
                            device_index: u32::try_from(index).ok(),
                        },
                    );
                }
            }
            for e in &topo.elastic_ips {
                let assoc = e.associated_with.clone();
                let id = assoc
                    .as_ref()
                    .map(|_| format!("eipassoc-{:017x}", w.next()));
                w.eips.insert(
                    e.allocation_id.clone(),
                    ElasticIp {
                        allocation_id: e.allocation_id.clone(),
                        public_ip: e.public_ip,
                        association_id: id,
                        network_interface_id: assoc.as_ref().map(|a| a.0.clone()),
                        private_ip: assoc.map(|a| a.1),
                        tags: e.tags.clone(),
                    },
                );
            }
            for t in &topo.route_tables {
                let mut routes = vec![Route {
                    destination: topo.vpc_cidr,
                    network_interface_id: None,
                    other_target: Some("local".into()),
                    local: true,
                }];
                routes.extend(t.routes.iter().map(|(d, eni)| Route {
                    destination: *d,
                    network_interface_id: Some(eni.clone()),
                    other_target: None,
                    local: false,
                }));
                let associations = t
                    .subnets
                    .iter()
                    .map(|s| Association {
                        id: format!("rtbassoc-{:017x}", w.next()),
                        subnet_id: Some(s.clone()),
                        main: false,
                    })
                    .collect();
                w.tables.insert(
                    t.id.clone(),
                    RouteTable {
                        id: t.id.clone(),
                        vpc_id: topo.vpc_id.clone(),
                        tags: t.tags.clone(),
                        routes,
                        associations,
                    },
                );
            }
            w.buckets
                .entry(topo.bucket.name.clone())
                .or_insert_with(|| Bucket {
                    tags: topo.bucket.tags.clone(),
                    encryption: Some("AES256".into()),
                    protection: BucketProtection::of_the_stack(&topo.bucket.name),
                    ..Bucket::default()
                });
        }
    }

    /// The field report's topology (`Topology::seed()`).
    pub fn seed() -> MemoryCloud {
        MemoryCloud::from_topology(&Topology::seed())
    }

    /// Sets how stale describes may be (see [`Visibility`]).
    pub fn set_visibility(&self, visibility: Visibility) {
        self.lag.lock().unwrap().visibility = visibility;
    }

    /// Makes every mutation so far visible to describes at once (a test's setup done through
    /// the API, then waited out).
    pub fn settle(&self) {
        let mut lag = self.lag.lock().unwrap();
        lag.recent.clear();
        lag.base = None;
    }

    /// Applies a test's change of the world (not an API call) at once, to what describes
    /// show too.
    fn edit(&self, f: impl Fn(&mut World)) {
        let mut w = self.world.lock().unwrap();
        f(&mut w);
        let mut lag = self.lag.lock().unwrap();
        if let Some(b) = lag.base.as_mut() {
            f(b);
        }
        for (_, v) in lag.recent.iter_mut() {
            f(v);
        }
    }

    /// Makes the next `times` calls of `operation` fail with `kind`.
    pub fn inject(&self, operation: &str, kind: ErrorKind, timing: FaultTiming, times: u32) {
        self.faults.lock().unwrap().push(Fault {
            operation: operation.into(),
            kind,
            timing,
            remaining: times,
        });
    }

    /// Makes every call of `operation` (`*` for all) take `delay` before it answers.
    pub fn delay(&self, operation: &str, delay: Duration) {
        self.delays.lock().unwrap().insert(operation.into(), delay);
    }

    /// Denies an API operation (as an IAM policy would): DryRun answers `Denied`.
    pub fn deny(&self, operation: &str) {
        self.denied.lock().unwrap().push(operation.into());
    }

    /// Removes all pending faults and delays.
    pub fn clear_faults(&self) {
        self.faults.lock().unwrap().clear();
        self.delays.lock().unwrap().clear();
    }

    /// The injected delay of `op`, if any (failures are injected with [`MemoryCloud::inject`];
    /// the simulated account's latency and throttling are `failover_lab::sim`).
    async fn pause(&self, op: &'static str) {
        let d = {
            let delays = self.delays.lock().unwrap();
            delays.get(op).or_else(|| delays.get("*")).copied()
        };
        if let Some(d) = d {
            tokio::time::sleep(d).await;
        }
    }

    /// Every call made so far, by operation name.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// Number of mutating EC2 calls made so far (including failed ones).
    pub fn mutation_count(&self) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| MUTATING_OPERATIONS.contains(&c.as_str()))
            .count()
    }

    /// Forgets the call log.
    pub fn reset_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// Sets an instance's state (`running`, `stopped`, …).
    pub fn set_instance_state(&self, id: &str, state: &str) {
        self.edit(|w| {
            if let Some(i) = w.instances.get_mut(id) {
                i.state = state.into();
            }
        });
    }

    /// Marks an instance as failing (or passing) its EC2 status checks.
    pub fn set_impaired(&self, id: &str, impaired: bool) {
        self.edit(|w| {
            if let Some(i) = w.instances.get_mut(id) {
                i.impaired = impaired;
            }
        });
    }

    /// Removes a tag from a route table.
    pub fn untag_route_table(&self, table: &str, key: &str) {
        self.edit(|w| {
            w.tables.get_mut(table).expect("table").tags.remove(key);
        });
    }

    /// Adds a route to a gateway (`igw-…`, `nat-…`) to a table.
    pub fn add_gateway_route(&self, table: &str, destination: Cidr, gateway: &str) {
        self.edit(|w| {
            let t = w.tables.get_mut(table).expect("table");
            t.routes.retain(|r| r.destination != destination);
            t.routes.push(Route {
                destination,
                network_interface_id: None,
                other_target: Some(gateway.into()),
                local: false,
            });
        });
    }

    /// Disassociates an EIP (by allocation id), as DisassociateAddress would.
    pub fn disassociate(&self, allocation_id: &str) {
        self.edit(|w| {
            let e = w.eips.get_mut(allocation_id).expect("eip");
            e.association_id = None;
            e.network_interface_id = None;
            e.private_ip = None;
        });
    }

    /// Sets a tag on an EIP (by allocation id).
    pub fn tag_eip(&self, allocation_id: &str, key: &str, value: &str) {
        self.edit(|w| {
            let e = w.eips.get_mut(allocation_id).expect("eip");
            e.tags.insert(key.into(), value.into());
        });
    }

    /// Adds a VPC endpoint to `vpc` for `service` (`ec2`, `s3`, `events`): an interface endpoint
    /// with private DNS, or (with `route_tables`) a gateway endpoint routed in them. Its id.
    pub fn add_vpc_endpoint(&self, vpc: &str, service: &str, route_tables: &[&str]) -> String {
        let id = format!("vpce-{:017x}", self.world.lock().unwrap().next());
        self.edit(|w| {
            w.endpoints.insert(
                id.clone(),
                VpcEndpoint {
                    id: id.clone(),
                    vpc_id: vpc.into(),
                    service_name: format!("com.amazonaws.us-east-1.{service}"),
                    kind: if route_tables.is_empty() {
                        "Interface"
                    } else {
                        "Gateway"
                    }
                    .into(),
                    state: "available".into(),
                    private_dns: route_tables.is_empty(),
                    route_table_ids: route_tables.iter().map(|t| t.to_string()).collect(),
                },
            );
        });
        id
    }

    /// Makes `table` the VPC's main route table (subnets without an association use it).
    pub fn make_main(&self, table: &str) {
        let id = format!("rtbassoc-{:017x}", self.world.lock().unwrap().next());
        self.edit(|w| {
            let t = w.tables.get_mut(table).expect("table");
            t.associations.push(Association {
                id: id.clone(),
                subnet_id: None,
                main: true,
            });
        });
    }

    /// Sets an interface's source/destination check.
    pub fn set_source_dest_check(&self, eni: &str, on: bool) {
        self.edit(|w| {
            w.interfaces.get_mut(eni).expect("eni").source_dest_check = on;
        });
    }

    /// Adds IPv6 addresses to an interface (as if assigned when it was made).
    pub fn add_ipv6(&self, eni: &str, ips: &[IpAddr]) {
        self.edit(|w| {
            w.interfaces
                .get_mut(eni)
                .expect("eni")
                .ipv6_ips
                .extend(ips.iter().copied());
        });
    }

    /// The ENI a route points at.
    pub fn route_target(&self, table: &str, destination: Cidr) -> Option<String> {
        let w = self.world.lock().unwrap();
        w.tables
            .get(table)?
            .routes
            .iter()
            .find(|r| r.destination == destination)?
            .network_interface_id
            .clone()
    }

    /// The EIP with this public address.
    pub fn elastic_ip(&self, public_ip: IpAddr) -> Option<ElasticIp> {
        let w = self.world.lock().unwrap();
        w.eips.values().find(|e| e.public_ip == public_ip).cloned()
    }

    /// An object's body, for assertions.
    pub fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let w = self.world.lock().unwrap();
        w.buckets
            .get(bucket)?
            .objects
            .get(key)
            .map(|o| o.body.clone())
    }

    /// Deletes an object, as DeleteObject would (an operator's `aws s3 rm`).
    pub fn remove_object(&self, bucket: &str, key: &str) {
        let mut w = self.world.lock().unwrap();
        if let Some(b) = w.buckets.get_mut(bucket) {
            b.objects.remove(key);
        }
    }

    /// The encryption an object was written with.
    pub fn object_encryption(&self, bucket: &str, key: &str) -> Option<Encryption> {
        let w = self.world.lock().unwrap();
        w.buckets
            .get(bucket)?
            .objects
            .get(key)
            .map(|o| o.encryption.clone())
    }

    /// Sets what the bucket's versioning, public access block and policy say (an existing
    /// bucket of the operator's, not the stack's).
    pub fn set_bucket_protection(&self, bucket: &str, protection: BucketProtection) {
        let mut w = self.world.lock().unwrap();
        w.buckets.entry(bucket.to_string()).or_default().protection = protection;
    }

    /// One of the bucket's protection settings, as its Get* call answers.
    fn protection<T>(
        &self,
        op: &'static str,
        bucket: &str,
        read: impl FnOnce(&BucketProtection) -> T,
    ) -> Result<T, CloudError> {
        self.call(op, |w| {
            w.buckets
                .get(bucket)
                .map(|b| read(&b.protection))
                .ok_or_else(|| err(op, ErrorKind::NotFound, "NoSuchBucket", bucket))
        })
    }

    /// Logs the call and returns an injected fault due now, if any.
    fn enter(&self, op: &'static str) -> Option<(CloudError, FaultTiming)> {
        self.calls.lock().unwrap().push(op.to_string());
        let mut faults = self.faults.lock().unwrap();
        let f = faults
            .iter_mut()
            .find(|f| f.remaining > 0 && (f.operation == op || f.operation == "*"))?;
        f.remaining -= 1;
        let code = match f.kind {
            ErrorKind::Throttled => "RequestLimitExceeded",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::PreconditionFailed => "PreconditionFailed",
            ErrorKind::Conflict => "ConditionalRequestConflict",
            ErrorKind::Rejected => "UnauthorizedOperation",
            ErrorKind::Transient => "InternalError",
        };
        Some((err(op, f.kind, code, "injected fault"), f.timing))
    }

    /// Runs `effect` under the fault schedule for `op`. A mutation's result shows in describes
    /// as [`Visibility`] says.
    fn call<T>(
        &self,
        op: &'static str,
        effect: impl FnOnce(&mut World) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let fault = self.enter(op);
        if let Some((e, FaultTiming::BeforeEffect)) = fault {
            return Err(e);
        }
        let mut w = self.world.lock().unwrap();
        let mut lag = self.lag.lock().unwrap();
        let lags = MUTATING_OPERATIONS.contains(&op) && !lag.bound().is_zero();
        let before = (lags && lag.recent.is_empty()).then(|| w.ec2_view());
        let out = effect(&mut w);
        if lags && out.is_ok() {
            if let Some(b) = before {
                lag.base = Some(b);
            }
            lag.recent
                .push_back((tokio::time::Instant::now(), w.ec2_view()));
        }
        match fault {
            Some((e, _)) => Err(e),
            None => out,
        }
    }

    /// Runs a describe under the fault schedule for `op`, on what describes show now.
    fn read<T>(
        &self,
        op: &'static str,
        effect: impl FnOnce(&World) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let fault = self.enter(op);
        if let Some((e, FaultTiming::BeforeEffect)) = fault {
            return Err(e);
        }
        let w = self.world.lock().unwrap();
        let mut lag = self.lag.lock().unwrap();
        let out = effect(lag.visible(&w));
        match fault {
            Some((e, _)) => Err(e),
            None => out,
        }
    }
}

impl World {
    /// The EC2 side of the world (what describes read), without the buckets.
    fn ec2_view(&self) -> World {
        World {
            subnets: self.subnets.clone(),
            instances: self.instances.clone(),
            interfaces: self.interfaces.clone(),
            tables: self.tables.clone(),
            eips: self.eips.clone(),
            buckets: BTreeMap::new(),
            endpoints: self.endpoints.clone(),
            counter: self.counter,
        }
    }

    /// An interface (as stored), or EC2's NotFound.
    fn existing_interface(
        &self,
        op: &'static str,
        eni: &str,
    ) -> Result<NetworkInterface, CloudError> {
        self.interfaces.get(eni).cloned().ok_or_else(|| {
            err(
                op,
                ErrorKind::NotFound,
                "InvalidNetworkInterfaceID.NotFound",
                eni,
            )
        })
    }

    /// The route table a route to `eni` may go in: both exist and are in one VPC (AWS's rule
    /// for ReplaceRoute and CreateRoute).
    fn table_for(
        &mut self,
        op: &'static str,
        table: &str,
        eni: &str,
    ) -> Result<&mut RouteTable, CloudError> {
        let vpc = self
            .interfaces
            .get(eni)
            .ok_or_else(|| {
                err(
                    op,
                    ErrorKind::NotFound,
                    "InvalidNetworkInterfaceID.NotFound",
                    eni,
                )
            })?
            .vpc_id
            .clone();
        let t = self.tables.get_mut(table).ok_or_else(|| {
            err(
                op,
                ErrorKind::NotFound,
                "InvalidRouteTableID.NotFound",
                table,
            )
        })?;
        if t.vpc_id != vpc {
            return Err(err(
                op,
                ErrorKind::Rejected,
                "InvalidParameterValue",
                "route table and network interface belong to different networks",
            ));
        }
        Ok(t)
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// EC2's rules for a new route's destination (Amazon VPC User Guide, "Configure route
    /// tables": routes, <https://docs.aws.amazon.com/vpc/latest/userguide/route-table-options.html>
    /// and "Subnet route tables"): a route more specific than the VPC's local route must
    /// match "the entire IPv4 or IPv6 CIDR block of a subnet" in the VPC, and
    /// 169.254.168.0/22 and fd00:ec2::/32 cannot be routed.
    fn routable(&self, op: &'static str, table: &str, destination: Cidr) -> Result<(), CloudError> {
        let reserved: [Cidr; 2] = [
            "169.254.168.0/22".parse().expect("cidr"),
            "fd00:ec2::/32".parse().expect("cidr"),
        ];
        // Routes *to* addresses in those blocks; a wider destination holding one (the
        // default route) is every VPC's everyday route.
        if reserved
            .iter()
            .any(|r| r.contains(destination.addr()) && destination.prefix() >= r.prefix())
        {
            return Err(err(
                op,
                ErrorKind::Rejected,
                "InvalidParameterValue",
                format!("{destination} overlaps a range reserved by AWS and cannot be routed"),
            ));
        }
        let Some(t) = self.tables.get(table) else {
            return Ok(());
        };
        let within_vpc = t.routes.iter().any(|r| {
            r.local
                && r.destination.is_ipv6() == destination.is_ipv6()
                && r.destination.contains(destination.addr())
                && destination.prefix() > r.destination.prefix()
        });
        let a_subnet = self
            .subnets
            .values()
            .any(|s| s.vpc_id == t.vpc_id && s.cidr == destination);
        if within_vpc && !a_subnet {
            return Err(err(
                op,
                ErrorKind::Rejected,
                "InvalidParameterValue",
                format!(
                    "the route {destination} is more specific than the VPC's local route but is not the CIDR block of a subnet of {}",
                    t.vpc_id
                ),
            ));
        }
        Ok(())
    }

    /// IPv4 addresses an interface holds against its instance type's limit: the primary, the
    /// secondaries, and one per delegated prefix ("Each prefix that you assign to a network
    /// interface counts as one IP address": Amazon EC2 User Guide, "Assign prefixes to Amazon
    /// EC2 network interfaces", <https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-prefix-eni.html>).
    fn ipv4_count(n: &NetworkInterface) -> usize {
        1 + n.secondary_ips.len() + n.ipv4_prefixes.len()
    }

    /// The per-interface IPv4 limit of `n`'s instance type, refusing `after` beyond it.
    fn within_limit(
        &self,
        op: &'static str,
        n: &NetworkInterface,
        after: usize,
    ) -> Result<(), CloudError> {
        let limit = n
            .instance_id
            .as_ref()
            .and_then(|i| self.instances.get(i))
            .and_then(|i| crate::engine::model::ipv4_per_interface(&i.instance_type));
        match limit.filter(|l| after > *l) {
            Some(limit) => Err(err(
                op,
                ErrorKind::Rejected,
                "PrivateIpAddressLimitExceeded",
                format!(
                    "{} would hold {after} IPv4 addresses (prefixes count one each); its instance type allows {limit}",
                    n.id
                ),
            )),
            None => Ok(()),
        }
    }

    /// The other interfaces of `n`'s VPC: a private address is unique within its VPC, not
    /// the account (two VPCs may share one addressing plan).
    fn vpc_peers<'a>(
        &'a self,
        n: &'a NetworkInterface,
    ) -> impl Iterator<Item = &'a NetworkInterface> {
        self.interfaces
            .values()
            .filter(move |o| o.vpc_id == n.vpc_id && o.id != n.id)
    }

    fn instance(&self, id: &str) -> Instance {
        let rec = &self.instances[id];
        Instance {
            id: id.to_string(),
            state: rec.state.clone(),
            availability_zone: rec.az.clone(),
            instance_type: rec.instance_type.clone(),
            tags: rec.tags.clone(),
            network_interfaces: rec
                .interfaces
                .iter()
                .filter_map(|n| self.interface(n))
                .collect(),
        }
    }

    /// An interface as EC2 describes it: with the Elastic IPs associated with its addresses.
    fn interface(&self, id: &str) -> Option<NetworkInterface> {
        let mut n = self.interfaces.get(id)?.clone();
        n.public_ips = self
            .eips
            .values()
            .filter(|e| e.network_interface_id.as_deref() == Some(id))
            .filter_map(|e| Some((e.private_ip?, e.public_ip)))
            .collect();
        Some(n)
    }
}

fn tag_match(tags: &Tags, f: &Filter) -> Option<bool> {
    if let Some(k) = f.name.strip_prefix("tag:") {
        return Some(tags.get(k).is_some_and(|v| f.values.contains(v)));
    }
    if f.name == "tag-key" {
        return Some(f.values.iter().any(|k| tags.contains_key(k)));
    }
    None
}

fn has(values: &[String], v: impl ToString) -> bool {
    values.contains(&v.to_string())
}

/// Applies filters; an unknown filter name or no filter at all is an error, as it would
/// be a region-wide or silently wrong describe.
fn select<T>(
    op: &'static str,
    items: impl Iterator<Item = T>,
    filters: &[Filter],
    field: impl Fn(&T, &Filter) -> Option<bool>,
) -> Result<Vec<T>, CloudError> {
    if filters.is_empty() {
        return Err(err(
            op,
            ErrorKind::Rejected,
            "Unfiltered",
            "describe without filters",
        ));
    }
    let mut out = Vec::new();
    for item in items {
        let mut keep = true;
        for f in filters {
            match field(&item, f) {
                Some(ok) => keep &= ok,
                None => {
                    return Err(err(
                        op,
                        ErrorKind::Rejected,
                        "InvalidParameterValue",
                        format!("filter {} is not supported here", f.name),
                    ))
                }
            }
        }
        if keep {
            out.push(item);
        }
    }
    Ok(out)
}

fn eni_field(n: &NetworkInterface, f: &Filter) -> Option<bool> {
    tag_match(&n.tags, f).or_else(|| {
        Some(match f.name.as_str() {
            "network-interface-id" => has(&f.values, &n.id),
            "addresses.private-ip-address" | "private-ip-address" => {
                has(&f.values, n.primary_ip) || n.secondary_ips.iter().any(|ip| has(&f.values, ip))
            }
            "ipv6-addresses.ipv6-address" => n.ipv6_ips.iter().any(|ip| has(&f.values, ip)),
            "attachment.instance-id" => n.instance_id.as_ref().is_some_and(|i| has(&f.values, i)),
            "subnet-id" => has(&f.values, &n.subnet_id),
            "vpc-id" => has(&f.values, &n.vpc_id),
            _ => return None,
        })
    })
}

#[async_trait]
impl Ec2Describe for MemoryCloud {
    async fn describe_instances(&self, filters: &[Filter]) -> Result<Vec<Instance>, CloudError> {
        self.pause("DescribeInstances").await;
        self.read("DescribeInstances", |w| {
            let all: Vec<Instance> = w.instances.keys().map(|id| w.instance(id)).collect();
            select("DescribeInstances", all.into_iter(), filters, |i, f| {
                tag_match(&i.tags, f).or_else(|| {
                    Some(match f.name.as_str() {
                        "instance-id" => has(&f.values, &i.id),
                        "instance-state-name" => has(&f.values, &i.state),
                        _ => return None,
                    })
                })
            })
        })
    }

    async fn impaired_instances(&self, instance_ids: &[String]) -> Result<Vec<String>, CloudError> {
        self.pause("DescribeInstanceStatus").await;
        self.read("DescribeInstanceStatus", |w| {
            Ok(instance_ids
                .iter()
                .filter(|id| w.instances.get(*id).is_some_and(|i| i.impaired))
                .cloned()
                .collect())
        })
    }

    async fn describe_subnets(&self, filters: &[Filter]) -> Result<Vec<VpcSubnet>, CloudError> {
        self.pause("DescribeSubnets").await;
        self.read("DescribeSubnets", |w| {
            select(
                "DescribeSubnets",
                w.subnets.iter().map(|(id, s)| VpcSubnet {
                    id: id.clone(),
                    vpc_id: s.vpc_id.clone(),
                }),
                filters,
                |s, f| {
                    Some(match f.name.as_str() {
                        "subnet-id" => has(&f.values, &s.id),
                        "vpc-id" => has(&f.values, &s.vpc_id),
                        _ => return None,
                    })
                },
            )
        })
    }

    async fn describe_vpc_endpoints(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<VpcEndpoint>, CloudError> {
        self.pause("DescribeVpcEndpoints").await;
        self.read("DescribeVpcEndpoints", |w| {
            select(
                "DescribeVpcEndpoints",
                w.endpoints.values().cloned(),
                filters,
                |e, f| {
                    Some(match f.name.as_str() {
                        "vpc-id" => has(&f.values, &e.vpc_id),
                        "service-name" => has(&f.values, &e.service_name),
                        _ => return None,
                    })
                },
            )
        })
    }

    async fn describe_network_interfaces(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<NetworkInterface>, CloudError> {
        self.pause("DescribeNetworkInterfaces").await;
        self.read("DescribeNetworkInterfaces", |w| {
            select(
                "DescribeNetworkInterfaces",
                w.interfaces.keys().filter_map(|id| w.interface(id)),
                filters,
                eni_field,
            )
        })
    }

    async fn describe_route_tables(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<RouteTable>, CloudError> {
        self.pause("DescribeRouteTables").await;
        self.read("DescribeRouteTables", |w| {
            select(
                "DescribeRouteTables",
                w.tables.values().cloned(),
                filters,
                |t, f| {
                    tag_match(&t.tags, f).or_else(|| {
                        Some(match f.name.as_str() {
                            "route-table-id" => has(&f.values, &t.id),
                            "vpc-id" => has(&f.values, &t.vpc_id),
                            _ => return None,
                        })
                    })
                },
            )
        })
    }

    async fn describe_addresses(&self, filters: &[Filter]) -> Result<Vec<ElasticIp>, CloudError> {
        self.pause("DescribeAddresses").await;
        self.read("DescribeAddresses", |w| {
            select(
                "DescribeAddresses",
                w.eips.values().cloned(),
                filters,
                |e, f| {
                    tag_match(&e.tags, f).or_else(|| {
                        Some(match f.name.as_str() {
                            "public-ip" => has(&f.values, e.public_ip),
                            "allocation-id" => has(&f.values, &e.allocation_id),
                            "private-ip-address" => {
                                e.private_ip.is_some_and(|ip| has(&f.values, ip))
                            }
                            "network-interface-id" => e
                                .network_interface_id
                                .as_ref()
                                .is_some_and(|n| has(&f.values, n)),
                            _ => return None,
                        })
                    })
                },
            )
        })
    }
}

#[async_trait]
impl Ec2Setup for MemoryCloud {
    async fn create_tags(&self, resources: &[String], tags: &Tags) -> Result<(), CloudError> {
        self.call("CreateTags", |w| {
            // All or nothing, as EC2: an unknown id fails the call before any tag is set.
            for r in resources {
                let known = w.eips.contains_key(r)
                    || w.tables.contains_key(r)
                    || w.interfaces.contains_key(r)
                    || w.instances.contains_key(r);
                if !known {
                    return Err(err(
                        "CreateTags",
                        ErrorKind::Rejected,
                        "InvalidID",
                        format!("The ID '{r}' is not valid"),
                    ));
                }
            }
            for r in resources {
                let set = if let Some(e) = w.eips.get_mut(r) {
                    &mut e.tags
                } else if let Some(t) = w.tables.get_mut(r) {
                    &mut t.tags
                } else if let Some(n) = w.interfaces.get_mut(r) {
                    &mut n.tags
                } else {
                    &mut w.instances.get_mut(r).expect("checked").tags
                };
                set.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            Ok(())
        })
    }

    async fn disable_source_dest_check(&self, eni: &str) -> Result<(), CloudError> {
        self.call("ModifyNetworkInterfaceAttribute", |w| {
            w.existing_interface("ModifyNetworkInterfaceAttribute", eni)?;
            w.interfaces
                .get_mut(eni)
                .expect("checked")
                .source_dest_check = false;
            Ok(())
        })
    }
}

#[async_trait]
impl Ec2Mutate for MemoryCloud {
    async fn dry_run(&self, m: &Mutation) -> Result<DryRun, CloudError> {
        let op = m.operation();
        if !m.has_dry_run() {
            // Nothing to send: EC2's API has no DryRun for it.
            return Ok(DryRun::Unchecked);
        }
        self.calls.lock().unwrap().push(format!("{op}(DryRun)"));
        Ok(if self.denied.lock().unwrap().iter().any(|d| d == op) {
            DryRun::Denied
        } else {
            DryRun::Allowed
        })
    }

    async fn mutate(&self, m: &Mutation) -> Result<Option<String>, CloudError> {
        Ok(match m {
            Mutation::AssociateAddress {
                allocation_id,
                network_interface_id,
                private_ip,
            } => Some(
                self.associate_address(allocation_id, network_interface_id, *private_ip)
                    .await?,
            ),
            Mutation::ReplaceRoute {
                route_table_id,
                destination,
                network_interface_id,
            } => {
                self.replace_route(route_table_id, *destination, network_interface_id)
                    .await?;
                None
            }
            Mutation::CreateRoute {
                route_table_id,
                destination,
                network_interface_id,
            } => {
                self.create_route(route_table_id, *destination, network_interface_id)
                    .await?;
                None
            }
            Mutation::ReplaceRouteTableAssociation {
                association_id,
                route_table_id,
            } => Some(
                self.replace_route_table_association(association_id, route_table_id)
                    .await?,
            ),
            Mutation::AssignIpv4Prefixes {
                network_interface_id,
                prefixes,
            } => {
                self.assign_ipv4_prefixes(network_interface_id, prefixes)
                    .await?;
                None
            }
            Mutation::UnassignIpv4Prefixes {
                network_interface_id,
                prefixes,
            } => {
                self.unassign_ipv4_prefixes(network_interface_id, prefixes)
                    .await?;
                None
            }
            Mutation::AssignPrivateIps {
                network_interface_id,
                ips,
            } => {
                self.assign_private_ips(network_interface_id, ips, true)
                    .await?;
                None
            }
            Mutation::AssignIpv6 {
                network_interface_id,
                ips,
            } => {
                self.assign_ipv6_addresses(network_interface_id, ips)
                    .await?;
                None
            }
            Mutation::UnassignIpv6 {
                network_interface_id,
                ips,
            } => {
                self.unassign_ipv6_addresses(network_interface_id, ips)
                    .await?;
                None
            }
        })
    }
}

/// EC2's mutating calls, one function each, as the model answers them (reached through
/// [`Ec2Mutate::mutate`]; tests also call them directly to set a scene).
impl MemoryCloud {
    pub async fn associate_address(
        &self,
        allocation_id: &str,
        network_interface_id: &str,
        private_ip: IpAddr,
    ) -> Result<String, CloudError> {
        const OP: &str = "AssociateAddress";
        self.pause(OP).await;
        self.call(OP, |w| {
            let eni = w.interfaces.get(network_interface_id).ok_or_else(|| {
                err(
                    OP,
                    ErrorKind::NotFound,
                    "InvalidNetworkInterfaceID.NotFound",
                    network_interface_id,
                )
            })?;
            let in_prefix = eni.ipv4_prefixes.iter().any(|p| p.contains(private_ip));
            if !(eni.primary_ip == private_ip
                || eni.secondary_ips.contains(&private_ip)
                || in_prefix)
            {
                return Err(err(
                    OP,
                    ErrorKind::Rejected,
                    "InvalidParameterValue",
                    format!("{private_ip} is not a private IP of {network_interface_id}"),
                ));
            }
            if !w.eips.contains_key(allocation_id) {
                return Err(err(
                    OP,
                    ErrorKind::NotFound,
                    "InvalidAllocationID.NotFound",
                    allocation_id,
                ));
            }
            // EC2 (AllowReassociation, which the engine always sends): an Elastic IP already
            // on that private IP is disassociated from it, without an error.
            for other in w.eips.values_mut() {
                if other.allocation_id != allocation_id
                    && other.network_interface_id.as_deref() == Some(network_interface_id)
                    && other.private_ip == Some(private_ip)
                {
                    other.association_id = None;
                    other.network_interface_id = None;
                    other.private_ip = None;
                }
            }
            let id = format!("eipassoc-{:017x}", w.next());
            let e = w.eips.get_mut(allocation_id).ok_or_else(|| {
                err(
                    OP,
                    ErrorKind::NotFound,
                    "InvalidAllocationID.NotFound",
                    allocation_id,
                )
            })?;
            e.association_id = Some(id.clone());
            e.network_interface_id = Some(network_interface_id.into());
            e.private_ip = Some(private_ip);
            Ok(id)
        })
    }

    pub async fn replace_route(
        &self,
        route_table_id: &str,
        destination: Cidr,
        network_interface_id: &str,
    ) -> Result<(), CloudError> {
        const OP: &str = "ReplaceRoute";
        self.pause(OP).await;
        self.call(OP, |w| {
            let t = w.table_for(OP, route_table_id, network_interface_id)?;
            let r = t
                .routes
                .iter_mut()
                .find(|r| r.destination == destination)
                .ok_or_else(|| {
                    err(
                        OP,
                        ErrorKind::NotFound,
                        "InvalidRoute.NotFound",
                        format!("no route with destination {destination} in {route_table_id}"),
                    )
                })?;
            // AWS lets the local route's target be replaced by an interface (middlebox
            // routing): so does this cloud; keeping to ranges outside it is the planner's job.
            r.network_interface_id = Some(network_interface_id.into());
            r.other_target = None;
            Ok(())
        })
    }

    pub async fn create_route(
        &self,
        route_table_id: &str,
        destination: Cidr,
        network_interface_id: &str,
    ) -> Result<(), CloudError> {
        const OP: &str = "CreateRoute";
        self.pause(OP).await;
        self.call(OP, |w| {
            w.routable(OP, route_table_id, destination)?;
            let t = w.table_for(OP, route_table_id, network_interface_id)?;
            // AWS: one route per destination in a table.
            if t.routes.iter().any(|r| r.destination == destination) {
                return Err(err(
                    OP,
                    ErrorKind::Rejected,
                    "RouteAlreadyExists",
                    format!("the route identified by {destination} already exists"),
                ));
            }
            t.routes.push(Route {
                destination,
                network_interface_id: Some(network_interface_id.into()),
                other_target: None,
                local: false,
            });
            Ok(())
        })
    }

    pub async fn replace_route_table_association(
        &self,
        association_id: &str,
        route_table_id: &str,
    ) -> Result<String, CloudError> {
        const OP: &str = "ReplaceRouteTableAssociation";
        self.pause(OP).await;
        self.call(OP, |w| {
            let vpc = w
                .tables
                .get(route_table_id)
                .ok_or_else(|| {
                    err(
                        OP,
                        ErrorKind::NotFound,
                        "InvalidRouteTableID.NotFound",
                        route_table_id,
                    )
                })?
                .vpc_id
                .clone();
            let (from, index) = w
                .tables
                .values()
                .find_map(|t| {
                    t.associations
                        .iter()
                        .position(|a| a.id == association_id)
                        .map(|i| (t.id.clone(), i))
                })
                .ok_or_else(|| {
                    err(
                        OP,
                        ErrorKind::NotFound,
                        "InvalidAssociationID.NotFound",
                        association_id,
                    )
                })?;
            if w.tables[&from].vpc_id != vpc {
                return Err(err(
                    OP,
                    ErrorKind::Rejected,
                    "InvalidParameterValue",
                    "tables of different VPCs",
                ));
            }
            let id = format!("rtbassoc-{:017x}", w.next());
            let mut assoc = w
                .tables
                .get_mut(&from)
                .expect("found")
                .associations
                .remove(index);
            assoc.id = id.clone();
            w.tables
                .get_mut(route_table_id)
                .expect("checked")
                .associations
                .push(assoc);
            Ok(id)
        })
    }

    /// EC2's rules for delegated IPv4 prefixes: /28, inside the interface's subnet, held by
    /// one interface at a time (no reassignment: the holder must unassign first).
    pub async fn assign_ipv4_prefixes(
        &self,
        network_interface_id: &str,
        prefixes: &[Cidr],
    ) -> Result<(), CloudError> {
        const OP: &str = "AssignPrivateIpAddresses";
        self.pause(OP).await;
        self.call(OP, |w| {
            let to = w.existing_interface(OP, network_interface_id)?;
            let subnet = w.subnets.get(&to.subnet_id).map(|s| s.cidr);
            for p in prefixes {
                if p.is_ipv6() || p.prefix() != 28 {
                    return Err(err(
                        OP,
                        ErrorKind::Rejected,
                        "InvalidParameterValue",
                        format!("{p}: IPv4 prefixes are delegated as /28"),
                    ));
                }
                if !subnet.is_some_and(|c| c.contains(p.addr()) && c.prefix() <= p.prefix()) {
                    return Err(err(
                        OP,
                        ErrorKind::Rejected,
                        "InvalidParameterValue",
                        format!("{p} does not fall within the subnet of {network_interface_id}"),
                    ));
                }
                if let Some(other) = w
                    .vpc_peers(&to)
                    .chain([&to])
                    .find(|n| n.ipv4_prefixes.contains(p))
                {
                    return Err(err(
                        OP,
                        ErrorKind::Rejected,
                        "InvalidParameterValue",
                        format!("prefix {p} is already assigned to {}", other.id),
                    ));
                }
                if w.vpc_peers(&to).chain([&to]).any(|n| {
                    p.contains(n.primary_ip) || n.secondary_ips.iter().any(|ip| p.contains(*ip))
                }) {
                    return Err(err(
                        OP,
                        ErrorKind::Rejected,
                        "PrivateIpAddressInUse",
                        format!("prefix {p} overlaps an address in use"),
                    ));
                }
            }
            let new = prefixes
                .iter()
                .filter(|p| !to.ipv4_prefixes.contains(p))
                .count();
            w.within_limit(OP, &to, World::ipv4_count(&to) + new)?;
            let to = w.interfaces.get_mut(network_interface_id).expect("checked");
            to.ipv4_prefixes.extend(prefixes.iter().copied());
            Ok(())
        })
    }

    pub async fn unassign_ipv4_prefixes(
        &self,
        network_interface_id: &str,
        prefixes: &[Cidr],
    ) -> Result<(), CloudError> {
        const OP: &str = "UnassignPrivateIpAddresses";
        self.pause(OP).await;
        self.call(OP, |w| {
            let from = w.interfaces.get_mut(network_interface_id).ok_or_else(|| {
                err(
                    OP,
                    ErrorKind::NotFound,
                    "InvalidNetworkInterfaceID.NotFound",
                    network_interface_id,
                )
            })?;
            if let Some(p) = prefixes.iter().find(|p| !from.ipv4_prefixes.contains(p)) {
                return Err(err(
                    OP,
                    ErrorKind::Rejected,
                    "InvalidParameterValue",
                    format!("prefix {p} is not assigned to {network_interface_id}"),
                ));
            }
            from.ipv4_prefixes.retain(|p| !prefixes.contains(p));
            // An EIP on an address of a released prefix is disassociated, as EC2 does.
            for e in w.eips.values_mut() {
                let on_released = e.network_interface_id.as_deref() == Some(network_interface_id)
                    && e.private_ip
                        .is_some_and(|ip| prefixes.iter().any(|p| p.contains(ip)));
                if on_released {
                    e.association_id = None;
                    e.network_interface_id = None;
                    e.private_ip = None;
                }
            }
            Ok(())
        })
    }

    pub async fn assign_private_ips(
        &self,
        network_interface_id: &str,
        ips: &[IpAddr],
        allow_reassignment: bool,
    ) -> Result<(), CloudError> {
        const OP: &str = "AssignPrivateIpAddresses";
        self.pause(OP).await;
        self.call(OP, |w| {
            let to = w.existing_interface(OP, network_interface_id)?;
            let subnet = w.subnets.get(&to.subnet_id).map(|s| s.cidr);
            // `PrivateIpAddress.N` takes IPv4 only; IPv6 goes through AssignIpv6Addresses
            // (Amazon EC2 User Guide, "Multiple IP addresses"; EC2 API Reference,
            // AssignPrivateIpAddresses and AssignIpv6Addresses).
            if let Some(v6) = ips.iter().find(|ip| ip.is_ipv6()) {
                return Err(err(
                    OP,
                    ErrorKind::Rejected,
                    "InvalidParameterValue",
                    format!("{v6} is not an IPv4 address (assign IPv6 addresses with AssignIpv6Addresses)"),
                ));
            }
            let new = ips.iter().filter(|ip| !to.secondary_ips.contains(ip)).count();
            w.within_limit(OP, &to, World::ipv4_count(&to) + new)?;
            for ip in ips {
                if !subnet.is_some_and(|c| c.contains(*ip)) {
                    return Err(err(
                        OP,
                        ErrorKind::Rejected,
                        "InvalidParameterValue",
                        format!("{ip} does not fall within the subnet of {network_interface_id}"),
                    ));
                }
                for other in w.vpc_peers(&to) {
                    if other.primary_ip == *ip {
                        return Err(err(
                            OP,
                            ErrorKind::Rejected,
                            "PrivateIpAddressInUse",
                            format!("{ip} is the primary IP of {}", other.id),
                        ));
                    }
                    if other.secondary_ips.contains(ip) && !allow_reassignment {
                        return Err(err(
                            OP,
                            ErrorKind::Rejected,
                            "PrivateIpAddressInUse",
                            format!("{ip} is assigned to {}", other.id),
                        ));
                    }
                }
            }
            let peers: Vec<String> = w.vpc_peers(&to).map(|n| n.id.clone()).collect();
            for ip in ips {
                let from = peers
                    .iter()
                    .find(|p| w.interfaces[*p].secondary_ips.contains(ip))
                    .cloned();
                if let Some(from) = &from {
                    let f = w.interfaces.get_mut(from).expect("peer");
                    f.secondary_ips.retain(|x| x != ip);
                }
                let t = w.interfaces.get_mut(network_interface_id).expect("checked");
                if t.primary_ip != *ip && !t.secondary_ips.contains(ip) {
                    t.secondary_ips.push(*ip);
                }
                // An EIP on a moved address moves with it.
                for e in w.eips.values_mut() {
                    if e.private_ip == Some(*ip) && e.network_interface_id == from && from.is_some() {
                        e.network_interface_id = Some(network_interface_id.into());
                    }
                }
            }
            Ok(())
        })
    }

    /// AssignIpv6Addresses: an IPv6 address held by another interface is refused (EC2 has no
    /// reassignment for IPv6: "You cannot reassign an IPv6 address from one network interface
    /// to another until you unassign it": Amazon EC2 User Guide, "Multiple IP addresses").
    pub async fn assign_ipv6_addresses(
        &self,
        network_interface_id: &str,
        ips: &[IpAddr],
    ) -> Result<(), CloudError> {
        const OP: &str = "AssignIpv6Addresses";
        self.pause(OP).await;
        self.call(OP, |w| {
            let to = w.existing_interface(OP, network_interface_id)?;
            for ip in ips {
                if ip.is_ipv4() {
                    return Err(err(
                        OP,
                        ErrorKind::Rejected,
                        "InvalidParameterValue",
                        format!("{ip} is not an IPv6 address"),
                    ));
                }
                if let Some(other) = w.vpc_peers(&to).find(|n| n.ipv6_ips.contains(ip)) {
                    return Err(err(
                        OP,
                        ErrorKind::Rejected,
                        "InvalidParameterValue",
                        format!("{ip} is already assigned to {}", other.id),
                    ));
                }
            }
            let t = w.interfaces.get_mut(network_interface_id).expect("checked");
            for ip in ips {
                if !t.ipv6_ips.contains(ip) {
                    t.ipv6_ips.push(*ip);
                }
            }
            Ok(())
        })
    }

    /// UnassignIpv6Addresses: the addresses must be on the interface.
    pub async fn unassign_ipv6_addresses(
        &self,
        network_interface_id: &str,
        ips: &[IpAddr],
    ) -> Result<(), CloudError> {
        const OP: &str = "UnassignIpv6Addresses";
        self.pause(OP).await;
        self.call(OP, |w| {
            let from = w.existing_interface(OP, network_interface_id)?;
            if let Some(ip) = ips.iter().find(|ip| !from.ipv6_ips.contains(ip)) {
                return Err(err(
                    OP,
                    ErrorKind::Rejected,
                    "InvalidParameterValue",
                    format!("{ip} is not assigned to {network_interface_id}"),
                ));
            }
            let f = w.interfaces.get_mut(network_interface_id).expect("checked");
            f.ipv6_ips.retain(|x| !ips.contains(x));
            Ok(())
        })
    }
}

#[async_trait]
impl ObjectStore for MemoryCloud {
    async fn list_buckets(&self) -> Result<Vec<String>, CloudError> {
        self.pause("ListBuckets").await;
        self.call("ListBuckets", |w| Ok(w.buckets.keys().cloned().collect()))
    }

    async fn bucket_tags(&self, bucket: &str) -> Result<Tags, CloudError> {
        self.pause("GetBucketTagging").await;
        self.call("GetBucketTagging", |w| {
            w.buckets
                .get(bucket)
                .map(|b| b.tags.clone())
                .ok_or_else(|| {
                    err(
                        "GetBucketTagging",
                        ErrorKind::NotFound,
                        "NoSuchBucket",
                        bucket,
                    )
                })
        })
    }

    async fn bucket_encryption(&self, bucket: &str) -> Result<Option<String>, CloudError> {
        self.pause("GetBucketEncryption").await;
        self.call("GetBucketEncryption", |w| {
            w.buckets
                .get(bucket)
                .map(|b| b.encryption.clone())
                .ok_or_else(|| {
                    err(
                        "GetBucketEncryption",
                        ErrorKind::NotFound,
                        "NoSuchBucket",
                        bucket,
                    )
                })
        })
    }

    async fn bucket_versioning(&self, bucket: &str) -> Result<Option<String>, CloudError> {
        self.pause("GetBucketVersioning").await;
        self.protection("GetBucketVersioning", bucket, |p| p.versioning.clone())
    }

    async fn public_access_blocked(&self, bucket: &str) -> Result<bool, CloudError> {
        self.pause("GetPublicAccessBlock").await;
        self.protection("GetPublicAccessBlock", bucket, |p| p.public_access_blocked)
    }

    async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, CloudError> {
        self.pause("GetBucketPolicy").await;
        self.protection("GetBucketPolicy", bucket, |p| p.policy.clone())
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool, CloudError> {
        self.pause("HeadBucket").await;
        self.call("HeadBucket", |w| Ok(w.buckets.contains_key(bucket)))
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<StoredObject>, CloudError> {
        self.pause("GetObject").await;
        self.call("GetObject", |w| {
            let b = w
                .buckets
                .get(bucket)
                .ok_or_else(|| no_such_bucket("GetObject", bucket))?;
            Ok(b.objects.get(key).map(|o| StoredObject {
                body: o.body.clone(),
                etag: Some(o.etag.clone()),
                last_modified: Some(o.last_modified),
            }))
        })
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        encryption: &Encryption,
        condition: Option<WriteCondition>,
    ) -> Result<Option<String>, CloudError> {
        const OP: &str = "PutObject";
        self.pause(OP).await;
        self.call(OP, |w| {
            let etag = format!("\"{:032x}\"", w.next());
            let b = w
                .buckets
                .get_mut(bucket)
                .ok_or_else(|| no_such_bucket(OP, bucket))?;
            let current = b.objects.get(key).map(|o| o.etag.clone());
            let ok = match (&condition, &current) {
                (None, _) => true,
                (Some(WriteCondition::IfNoneMatch), c) => c.is_none(),
                (Some(WriteCondition::IfMatch(want)), Some(have)) => want == have,
                // S3: If-Match on a key with no object is 404 NoSuchKey, not 412.
                (Some(WriteCondition::IfMatch(_)), None) => {
                    return Err(err(
                        OP,
                        ErrorKind::NotFound,
                        "NoSuchKey",
                        format!("The specified key does not exist: {key}"),
                    ))
                }
            };
            if !ok {
                return Err(err(
                    OP,
                    ErrorKind::PreconditionFailed,
                    "PreconditionFailed",
                    key,
                ));
            }
            let rec = StoredRec {
                body,
                etag: etag.clone(),
                encryption: encryption.clone(),
                last_modified: crate::engine::clock::now(),
            };
            b.objects.insert(key.to_string(), rec);
            Ok(Some(etag))
        })
    }

    async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, CloudError> {
        self.pause("ListObjectsV2").await;
        self.call("ListObjectsV2", |w| {
            let b = w
                .buckets
                .get(bucket)
                .ok_or_else(|| err("ListObjectsV2", ErrorKind::NotFound, "NoSuchBucket", bucket))?;
            Ok(b.objects
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, o)| Listed {
                    key: k.clone(),
                    etag: Some(o.etag.clone()),
                    size: o.body.len() as u64,
                })
                .collect())
        })
    }
}

/// The in-memory cloud against AWS's documents, one rule per test, each naming its source.
#[cfg(test)]
mod aws_rules {
    use super::*;
    use crate::engine::ports::Ec2Describe;
    use crate::lab::{SEED_A_EXT, SEED_B_EXT, SEED_RTB};
    use crate::testing::same_az;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    async fn route(cloud: &MemoryCloud) -> Option<String> {
        let t = cloud
            .describe_route_tables(&[Filter::new("route-table-id", [SEED_RTB])])
            .await
            .unwrap();
        t[0].routes
            .iter()
            .find(|r| r.destination == "0.0.0.0/0".parse().unwrap())
            .and_then(|r| r.network_interface_id.clone())
    }

    async fn eni(cloud: &MemoryCloud, id: &str) -> NetworkInterface {
        cloud
            .describe_network_interfaces(&[Filter::new("network-interface-id", [id])])
            .await
            .unwrap()
            .remove(0)
    }

    /// "Eventual consistency in the Amazon EC2 API" (Amazon EC2 Developer Guide,
    /// https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html): "the result
    /// of an API command you run that affects your Amazon EC2 resources might not be
    /// immediately visible to all subsequent commands you run".
    #[tokio::test(start_paused = true)]
    async fn a_describe_may_not_show_a_mutation_yet() {
        // GIVEN describes that lag 2 s
        let cloud = MemoryCloud::seed();
        cloud.set_visibility(Visibility::Fixed(Duration::from_secs(2)));
        // WHEN the default route moves to B
        cloud
            .replace_route(SEED_RTB, "0.0.0.0/0".parse().unwrap(), SEED_B_EXT)
            .await
            .unwrap();
        // THEN a describe still shows A, the change is already in force (a second move to
        // the same target is accepted), and 2 s later describes show B
        assert_eq!(route(&cloud).await.as_deref(), Some(SEED_A_EXT));
        assert_eq!(
            cloud.route_target(SEED_RTB, "0.0.0.0/0".parse().unwrap()),
            Some(SEED_B_EXT.into())
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(route(&cloud).await.as_deref(), Some(SEED_B_EXT));
        // AND with a random lag, two describes in a row may disagree (no read is newer than
        // the bound allows, and after the bound every read agrees)
        cloud.set_visibility(Visibility::UpTo(Duration::from_secs(2)));
        cloud
            .replace_route(SEED_RTB, "0.0.0.0/0".parse().unwrap(), SEED_A_EXT)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20 {
            seen.insert(route(&cloud).await);
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(route(&cloud).await.as_deref(), Some(SEED_A_EXT));
    }

    /// EC2 API Reference, AssignPrivateIpAddresses (`PrivateIpAddress.N`, IPv4) and
    /// AssignIpv6Addresses / UnassignIpv6Addresses (`Ipv6Addresses.N`); Amazon EC2 User Guide,
    /// "Multiple IP addresses": an IPv6 address is not reassigned from another interface
    /// until it is unassigned there.
    #[tokio::test]
    async fn ipv6_addresses_go_through_their_own_calls() {
        let cloud = MemoryCloud::from_topology(&same_az());
        cloud.settle();
        let v6 = ip("2600:1f18:1:1::101");
        cloud.add_ipv6(SEED_A_EXT, &[v6]);
        // the IPv4 call refuses an IPv6 address, and with it the IPv4 VIP of the same call
        let e = cloud
            .assign_private_ips(SEED_B_EXT, &[ip("10.0.0.101"), v6], true)
            .await
            .unwrap_err();
        assert_eq!(e.code.as_deref(), Some("InvalidParameterValue"), "{e}");
        assert!(!eni(&cloud, SEED_B_EXT)
            .await
            .secondary_ips
            .contains(&ip("10.0.0.101")));
        // an address another interface holds is not reassigned
        let e = cloud
            .assign_ipv6_addresses(SEED_B_EXT, &[v6])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("already assigned"), "{e}");
        // unassign, then assign, moves it
        cloud
            .unassign_ipv6_addresses(SEED_A_EXT, &[v6])
            .await
            .unwrap();
        cloud
            .assign_ipv6_addresses(SEED_B_EXT, &[v6])
            .await
            .unwrap();
        cloud.settle();
        assert_eq!(eni(&cloud, SEED_B_EXT).await.ipv6_ips, vec![v6]);
        assert!(eni(&cloud, SEED_A_EXT).await.ipv6_ips.is_empty());
    }

    /// Amazon EC2 User Guide, "Assign prefixes to Amazon EC2 network interfaces": "Each prefix
    /// that you assign to a network interface counts as one IP address".
    #[tokio::test]
    async fn a_delegated_prefix_counts_as_one_address() {
        // GIVEN B on a type allowing 2 IPv4 addresses per interface, with one prefix
        let mut topo = same_az();
        topo.instances[1].instance_type = "t3.micro".into();
        let cloud = MemoryCloud::from_topology(&topo);
        cloud
            .assign_ipv4_prefixes(SEED_B_EXT, &["10.0.0.48/28".parse().unwrap()])
            .await
            .unwrap();
        // WHEN a secondary IP is assigned, THEN it is over the limit (primary + prefix = 2)
        let e = cloud
            .assign_private_ips(SEED_B_EXT, &[ip("10.0.0.101")], true)
            .await
            .unwrap_err();
        assert_eq!(
            e.code.as_deref(),
            Some("PrivateIpAddressLimitExceeded"),
            "{e}"
        );
    }

    /// EC2 API Reference, AssociateAddress: with AllowReassociation (which the engine always
    /// sends), "reassociation is automatic"; an Elastic IP already on that private IP is
    /// disassociated, not an error.
    #[tokio::test]
    async fn reassociation_detaches_the_eip_already_on_that_address() {
        let mut topo = crate::lab::Topology::seed();
        topo.elastic_ips.push(crate::lab::EipSpec {
            allocation_id: "eipalloc-0other".into(),
            public_ip: ip("203.0.113.9"),
            tags: crate::engine::declaration::Tags::new(),
            associated_with: Some((SEED_B_EXT.into(), ip("10.0.4.101"))),
        });
        let cloud = MemoryCloud::from_topology(&topo);
        cloud
            .associate_address("eipalloc-0814e2bbaf002a2bc", SEED_B_EXT, ip("10.0.4.101"))
            .await
            .unwrap();
        let other = cloud.elastic_ip(ip("203.0.113.9")).unwrap();
        assert_eq!(other.network_interface_id, None);
        assert_eq!(other.private_ip, None);
    }

    /// Amazon VPC User Guide, "Configure route tables": a route more specific than the local
    /// route must match "the entire IPv4 or IPv6 CIDR block of a subnet" in the VPC, and
    /// addresses in 169.254.168.0/22 cannot be routed to; a route holding that block (the
    /// default route, 169.254.0.0/16) is an ordinary one.
    #[tokio::test]
    async fn a_route_inside_the_vpc_must_be_a_whole_subnet() {
        let cloud = MemoryCloud::seed();
        for bad in ["10.0.3.0/25", "10.0.9.0/24", "169.254.168.0/24"] {
            let e = cloud
                .create_route(SEED_RTB, bad.parse().unwrap(), SEED_B_EXT)
                .await
                .unwrap_err();
            assert_eq!(
                e.code.as_deref(),
                Some("InvalidParameterValue"),
                "{bad}: {e}"
            );
        }
        // a whole subnet's block, a range outside the VPC, and ranges holding the reserved
        // block are accepted
        for good in [
            "10.0.3.0/24",
            "172.16.9.0/24",
            "169.254.0.0/16",
            "0.0.0.0/1",
        ] {
            cloud
                .create_route(SEED_RTB, good.parse().unwrap(), SEED_B_EXT)
                .await
                .unwrap();
        }
    }

    /// Private IPv4 addresses are unique within a VPC, not the account: subnets' blocks may not
    /// overlap within a VPC (Amazon VPC User Guide, "Subnet CIDR blocks"), while two VPCs may
    /// use one addressing plan.
    #[tokio::test]
    async fn addresses_are_unique_per_vpc_not_per_account() {
        // GIVEN the same-AZ pair twice, in two VPCs with one addressing plan
        let topo = same_az();
        let twin = topo.copy(1);
        let cloud = MemoryCloud::from_topology(&topo);
        cloud.add_topology(&twin);
        cloud.settle();
        let twin_a = &twin.instances[0].interfaces[1].id;
        let twin_eip = twin.elastic_ips[0].public_ip;
        // WHEN the first VPC's VIP moves to its B
        cloud
            .assign_private_ips(SEED_B_EXT, &[ip("10.0.0.101")], true)
            .await
            .unwrap();
        cloud.settle();
        // THEN the twin VPC keeps its own 10.0.0.101 and its EIP stays on it
        assert!(eni(&cloud, twin_a)
            .await
            .secondary_ips
            .contains(&ip("10.0.0.101")));
        let e = cloud.elastic_ip(twin_eip).unwrap();
        assert_eq!(e.network_interface_id.as_deref(), Some(twin_a.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str = "cfe-state-bigip-ha";

    /// Amazon S3 User Guide, "How to prevent object overwrites with conditional writes"
    /// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html), and the
    /// PutObject API reference (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html):
    /// `If-Match` on a key with no object fails with 404 `NoSuchKey`; only an ETag that does
    /// not match is 412 Precondition Failed.
    #[tokio::test]
    async fn if_match_on_a_missing_key_is_no_such_key() {
        let cloud = MemoryCloud::seed();
        let put = |key: &'static str, etag: &str| {
            cloud.put_object(
                B,
                key,
                b"{}".to_vec(),
                &Encryption::None,
                Some(WriteCondition::IfMatch(etag.into())),
            )
        };
        // GIVEN no object at the key WHEN writing If-Match THEN 404 NoSuchKey
        let e = put("missing", "\"0\"").await.unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (ErrorKind::NotFound, Some("NoSuchKey"))
        );
        // GIVEN an object WHEN writing If-Match another ETag THEN 412 PreconditionFailed
        let etag = cloud
            .put_object(B, "present", b"{}".to_vec(), &Encryption::None, None)
            .await
            .unwrap()
            .unwrap();
        let e = put("present", "\"other\"").await.unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (ErrorKind::PreconditionFailed, Some("PreconditionFailed"))
        );
        put("present", &etag).await.unwrap();
    }
}
