//! Ports: the traits the engine calls, one per side of the cloud. Each has two adapters,
//! AWS SDK (`crate::aws`) and in-memory (`crate::memory`).
//!
//! The traits are split by IAM footprint: a function that only inspects needs `Ec2Describe`
//! (ec2:Describe*) and `ObjectStore` reads, never `Ec2Mutate`.

use std::net::IpAddr;

use async_trait::async_trait;

use crate::engine::declaration::{Encryption, Tags};
use crate::engine::error::CloudError;
use crate::engine::model::{
    ElasticIp, Filter, Instance, NetworkInterface, RouteTable, VpcEndpoint, VpcSubnet,
};
use crate::engine::net::Cidr;

/// The longest one call through a port may take, all retries included: the SDK adapters
/// configure it as their operation timeout, and the executor enforces it around each mutation,
/// so a run knows how long a mutation it sends can still land (see `lock::Fence`).
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The error code of a call given up on at its timeout (by the adapter's client or by the
/// executor): it may still take effect.
pub const TIMED_OUT: &str = "CallTimeout";

tokio::task_local! {
    /// Requests put on the wire for the call in progress (see [`on_the_wire`]).
    static WIRE: std::cell::Cell<u32>;
}

/// Runs one port call and says how many requests it put on the wire: an adapter whose client
/// retries by itself (the SDK's standard retries) reports each attempt with
/// [`sent_on_the_wire`]; an adapter that reports none sent one. The executor counts these in
/// each outcome's `attempts`.
pub async fn on_the_wire<T>(call: impl std::future::Future<Output = T>) -> (T, u32) {
    WIRE.scope(std::cell::Cell::new(0), async {
        let out = call.await;
        (out, WIRE.with(|n| n.get()).max(1))
    })
    .await
}

/// Called by an adapter for each request it sends (outside [`on_the_wire`]: nothing).
pub fn sent_on_the_wire() {
    let _ = WIRE.try_with(|n| n.set(n.get() + 1));
}

/// The read-only EC2 operations the ports send ([`Ec2Describe`]).
pub const DESCRIBE_OPERATIONS: [&str; 5] = [
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeNetworkInterfaces",
    "DescribeRouteTables",
    "DescribeAddresses",
];

/// The EC2 operations that change the cloud: every name [`Mutation::operation`] answers
/// (a test in this module holds the two together).
pub const MUTATING_OPERATIONS: [&str; 8] = [
    "AssociateAddress",
    "ReplaceRoute",
    "CreateRoute",
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "AssignIpv6Addresses",
    "UnassignIpv6Addresses",
    "ReplaceRouteTableAssociation",
];

/// The S3 and SQS operations the ports send (as the SDK names them), with the IAM actions
/// each needs; an EC2 operation needs `ec2:` and its own name ([`iam_actions`]).
/// `GetObject` and `HeadBucket` need `s3:ListBucket` so a missing key or bucket answers 404,
/// not 403.
pub const PERMISSIONS: &[(&str, &[&str])] = &[
    ("ListBuckets", &["s3:ListAllMyBuckets"]),
    ("GetBucketEncryption", &["s3:GetEncryptionConfiguration"]),
    ("GetBucketVersioning", &["s3:GetBucketVersioning"]),
    ("GetPublicAccessBlock", &["s3:GetBucketPublicAccessBlock"]),
    ("GetBucketPolicy", &["s3:GetBucketPolicy"]),
    ("GetBucketTagging", &["s3:GetBucketTagging"]),
    ("HeadBucket", &["s3:ListBucket"]),
    ("GetObject", &["s3:GetObject", "s3:ListBucket"]),
    ("PutObject", &["s3:PutObject"]),
    ("ListObjectsV2", &["s3:ListBucket"]),
    ("ChangeMessageVisibility", &["sqs:ChangeMessageVisibility"]),
];

/// The reads of the declaration, the state and the lock that every function makes.
pub const STORE_READS: [&str; 5] = [
    "ListBuckets",
    "GetBucketTagging",
    "HeadBucket",
    "GetObject",
    "ListObjectsV2",
];

/// EC2 reads the operator's tools make (doctor's checks of the ways to the APIs) and no role
/// of the stack: sendable, in no role's list.
pub const OPERATOR_READS: [&str; 2] = ["DescribeVpcEndpoints", "DescribeSubnets"];

/// EC2 changes only the operator makes ([`Ec2Setup`], `cloud-failover init --apply`): the
/// scoping tags and source/destination check. Sendable, in no role's list.
pub const OPERATOR_WRITES: [&str; 2] = ["CreateTags", "ModifyNetworkInterfaceAttribute"];

/// `parts`, one after another: a role's operations from the lists above.
pub const fn concat<const N: usize>(parts: &[&[&'static str]]) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut k) = (0, 0);
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[k] = parts[i][j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(k == N, "concat: N is not the parts' total length");
    out
}

/// How many names `parts` hold (the `N` of [`concat`]).
pub const fn total(parts: &[&[&str]]) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < parts.len() {
        n += parts[i].len();
        i += 1;
    }
    n
}

/// Whether the ports may send `operation` (an EC2 one of the lists above, or in
/// [`PERMISSIONS`]).
pub fn sendable(operation: &str) -> bool {
    ec2_operation(operation)
        || OPERATOR_READS.contains(&operation)
        || OPERATOR_WRITES.contains(&operation)
        || PERMISSIONS.iter().any(|(o, _)| *o == operation)
}

fn ec2_operation(operation: &str) -> bool {
    DESCRIBE_OPERATIONS.contains(&operation) || MUTATING_OPERATIONS.contains(&operation)
}

/// The IAM actions `operations` need.
pub fn iam_actions<'a>(
    operations: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeSet<String> {
    operations
        .into_iter()
        .flat_map(|op| -> Vec<String> {
            if ec2_operation(op) {
                return vec![format!("ec2:{op}")];
            }
            PERMISSIONS
                .iter()
                .find(|(name, _)| *name == op)
                .unwrap_or_else(|| panic!("the ports send no {op}"))
                .1
                .iter()
                .map(|a| a.to_string())
                .collect()
        })
        .collect()
}

/// Read-only EC2 calls. Every call must carry at least one filter: discovery never asks
/// for a whole region. Implementations paginate internally.
#[async_trait]
pub trait Ec2Describe: Send + Sync {
    /// DescribeInstances (with their network interfaces).
    async fn describe_instances(&self, filters: &[Filter]) -> Result<Vec<Instance>, CloudError>;
    /// DescribeNetworkInterfaces.
    async fn describe_network_interfaces(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<NetworkInterface>, CloudError>;
    /// DescribeRouteTables.
    async fn describe_route_tables(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<RouteTable>, CloudError>;
    /// DescribeAddresses.
    async fn describe_addresses(&self, filters: &[Filter]) -> Result<Vec<ElasticIp>, CloudError>;
    /// DescribeInstanceStatus: which of these instances fail their status checks.
    async fn impaired_instances(&self, instance_ids: &[String]) -> Result<Vec<String>, CloudError>;
    /// DescribeVpcEndpoints (doctor's: an [`OPERATOR_READS`] name, no role of the stack sends it).
    async fn describe_vpc_endpoints(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<VpcEndpoint>, CloudError>;
    /// DescribeSubnets (doctor's, as [`Ec2Describe::describe_vpc_endpoints`]).
    async fn describe_subnets(&self, filters: &[Filter]) -> Result<Vec<VpcSubnet>, CloudError>;
}

/// The operator's setup of a pair ([`OPERATOR_WRITES`]): what `cloud-failover init --apply`
/// changes before any failover, never a function.
#[async_trait]
pub trait Ec2Setup: Send + Sync {
    /// CreateTags: `tags` on every one of `resources`.
    async fn create_tags(
        &self,
        resources: &[String],
        tags: &crate::engine::declaration::Tags,
    ) -> Result<(), CloudError>;
    /// ModifyNetworkInterfaceAttribute: source/destination check off on `eni`.
    async fn disable_source_dest_check(&self, eni: &str) -> Result<(), CloudError>;
}

/// One mutating EC2 call: what the executor sends ([`Ec2Mutate::mutate`]) and what doctor
/// checks ([`Ec2Mutate::dry_run`]). Adding one: a variant here (with its name in
/// [`Mutation::operation`] and [`MUTATING_OPERATIONS`]), and its request in each adapter's
/// `mutate` (`aws::ec2`, `memory`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// AssociateAddress.
    AssociateAddress {
        /// EIP allocation.
        allocation_id: String,
        /// Target ENI.
        network_interface_id: String,
        /// Target private IP.
        private_ip: IpAddr,
    },
    /// ReplaceRoute.
    ReplaceRoute {
        /// Route table.
        route_table_id: String,
        /// Destination.
        destination: Cidr,
        /// Target ENI.
        network_interface_id: String,
    },
    /// CreateRoute (`serverless.createMissingRoutes`): a declared range absent from the table.
    CreateRoute {
        /// Route table.
        route_table_id: String,
        /// Destination.
        destination: Cidr,
        /// Target ENI.
        network_interface_id: String,
    },
    /// ReplaceRouteTableAssociation: the subnet of `association_id` moves to `route_table_id`.
    ReplaceRouteTableAssociation {
        /// The subnet's current association.
        association_id: String,
        /// The table it moves to.
        route_table_id: String,
    },
    /// AssignPrivateIpAddresses with `Ipv4Prefixes`: delegated prefixes onto an interface
    /// (they must be free: EC2 does not reassign prefixes).
    AssignIpv4Prefixes {
        /// Receiving ENI.
        network_interface_id: String,
        /// The prefixes.
        prefixes: Vec<Cidr>,
    },
    /// UnassignPrivateIpAddresses with `Ipv4Prefixes`: frees them for another interface.
    UnassignIpv4Prefixes {
        /// The ENI that holds them.
        network_interface_id: String,
        /// The prefixes.
        prefixes: Vec<Cidr>,
    },
    /// AssignPrivateIpAddresses (with AllowReassignment): IPv4 addresses only.
    AssignPrivateIps {
        /// Receiving ENI.
        network_interface_id: String,
        /// The addresses.
        ips: Vec<IpAddr>,
    },
    /// AssignIpv6Addresses: free IPv6 addresses onto an interface (EC2 does not reassign
    /// IPv6 addresses: the holder releases them first).
    AssignIpv6 {
        /// Receiving ENI.
        network_interface_id: String,
        /// The addresses.
        ips: Vec<IpAddr>,
    },
    /// UnassignIpv6Addresses: frees IPv6 addresses for another interface.
    UnassignIpv6 {
        /// The ENI that holds them.
        network_interface_id: String,
        /// The addresses.
        ips: Vec<IpAddr>,
    },
}

impl Mutation {
    /// The API operation name.
    pub fn operation(&self) -> &'static str {
        match self {
            Mutation::AssociateAddress { .. } => "AssociateAddress",
            Mutation::ReplaceRoute { .. } => "ReplaceRoute",
            Mutation::CreateRoute { .. } => "CreateRoute",
            Mutation::AssignPrivateIps { .. } | Mutation::AssignIpv4Prefixes { .. } => {
                "AssignPrivateIpAddresses"
            }
            Mutation::UnassignIpv4Prefixes { .. } => "UnassignPrivateIpAddresses",
            Mutation::AssignIpv6 { .. } => "AssignIpv6Addresses",
            Mutation::UnassignIpv6 { .. } => "UnassignIpv6Addresses",
            Mutation::ReplaceRouteTableAssociation { .. } => "ReplaceRouteTableAssociation",
        }
    }

    /// Whether EC2's API gives this call a `DryRun` parameter: AssignPrivateIpAddresses and
    /// UnassignPrivateIpAddresses have none (see their EC2 API Reference pages), so no
    /// backend can check them; the IAM policy simulator or the stack's policy is their check.
    pub fn has_dry_run(&self) -> bool {
        !matches!(
            self,
            Mutation::AssignPrivateIps { .. }
                | Mutation::AssignIpv4Prefixes { .. }
                | Mutation::UnassignIpv4Prefixes { .. }
                | Mutation::AssignIpv6 { .. }
                | Mutation::UnassignIpv6 { .. }
        )
    }
}

/// What a DryRun said about a mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DryRun {
    /// `DryRunOperation`: the caller may make this call.
    Allowed,
    /// `UnauthorizedOperation`: the caller may not.
    Denied,
    /// Not checked: EC2 gives the call no `DryRun` ([`Mutation::has_dry_run`]), or the
    /// endpoint performs it despite DryRun (the emulator).
    Unchecked,
}

/// Mutating EC2 calls, each idempotent in effect.
#[async_trait]
pub trait Ec2Mutate: Send + Sync {
    /// Sends `m` with `DryRun=true`: checks permission without changing anything.
    async fn dry_run(&self, m: &Mutation) -> Result<DryRun, CloudError>;
    /// Sends `m`: AssociateAddress with `AllowReassociation` (the EIP moves with no
    /// disassociate gap), AssignPrivateIpAddresses with `AllowReassignment`, the others as
    /// named. Answers the new association id where EC2 gives one (AssociateAddress,
    /// ReplaceRouteTableAssociation).
    async fn mutate(&self, m: &Mutation) -> Result<Option<String>, CloudError>;
}

/// What a wrapping EC2 port ([`Hooked`]) does before each call it passes on: pace it (an
/// executor's shared budget), or delay and throttle it (a simulated account). An error is the
/// call's answer.
#[async_trait]
pub trait BeforeCall: Send + Sync {
    /// Before a call of `operation` (as the SDK names it).
    async fn before(&self, operation: &'static str) -> Result<(), CloudError>;

    /// Before a Describe* call; `scoped` when it names filters or ids (EC2 throttles some
    /// Describe* sent with neither, nor MaxResults, on a smaller bucket). By default, as any
    /// call.
    async fn before_describe(
        &self,
        operation: &'static str,
        scoped: bool,
    ) -> Result<(), CloudError> {
        let _ = scoped;
        self.before(operation).await
    }
}

/// An EC2 port whose calls each wait for `hook` first (DryRun checks pass untouched).
pub struct Hooked<'a, E: ?Sized, H: ?Sized> {
    /// The port the calls go to.
    pub ec2: &'a E,
    /// What runs before each.
    pub hook: &'a H,
}

#[async_trait]
impl<E: Ec2Describe + ?Sized, H: BeforeCall + ?Sized> Ec2Describe for Hooked<'_, E, H> {
    async fn describe_instances(&self, filters: &[Filter]) -> Result<Vec<Instance>, CloudError> {
        self.hook
            .before_describe("DescribeInstances", !filters.is_empty())
            .await?;
        self.ec2.describe_instances(filters).await
    }

    async fn describe_network_interfaces(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<NetworkInterface>, CloudError> {
        self.hook
            .before_describe("DescribeNetworkInterfaces", !filters.is_empty())
            .await?;
        self.ec2.describe_network_interfaces(filters).await
    }

    async fn describe_route_tables(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<RouteTable>, CloudError> {
        self.hook
            .before_describe("DescribeRouteTables", !filters.is_empty())
            .await?;
        self.ec2.describe_route_tables(filters).await
    }

    async fn describe_addresses(&self, filters: &[Filter]) -> Result<Vec<ElasticIp>, CloudError> {
        self.hook
            .before_describe("DescribeAddresses", !filters.is_empty())
            .await?;
        self.ec2.describe_addresses(filters).await
    }

    async fn impaired_instances(&self, instance_ids: &[String]) -> Result<Vec<String>, CloudError> {
        self.hook
            .before_describe("DescribeInstanceStatus", !instance_ids.is_empty())
            .await?;
        self.ec2.impaired_instances(instance_ids).await
    }

    async fn describe_vpc_endpoints(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<VpcEndpoint>, CloudError> {
        self.hook
            .before_describe("DescribeVpcEndpoints", !filters.is_empty())
            .await?;
        self.ec2.describe_vpc_endpoints(filters).await
    }

    async fn describe_subnets(&self, filters: &[Filter]) -> Result<Vec<VpcSubnet>, CloudError> {
        self.hook
            .before_describe("DescribeSubnets", !filters.is_empty())
            .await?;
        self.ec2.describe_subnets(filters).await
    }
}

#[async_trait]
impl<E: Ec2Mutate + ?Sized, H: BeforeCall + ?Sized> Ec2Mutate for Hooked<'_, E, H> {
    async fn dry_run(&self, m: &Mutation) -> Result<DryRun, CloudError> {
        self.ec2.dry_run(m).await
    }

    async fn mutate(&self, m: &Mutation) -> Result<Option<String>, CloudError> {
        self.hook.before(m.operation()).await?;
        self.ec2.mutate(m).await
    }
}

/// Both EC2 sides, for code that plans and executes.
pub trait Ec2: Ec2Describe + Ec2Mutate {}
impl<T: Ec2Describe + Ec2Mutate> Ec2 for T {}

/// An object read from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Body bytes.
    pub body: Vec<u8>,
    /// Entity tag, for conditional writes.
    pub etag: Option<String>,
    /// When the store last wrote it (its own clock: S3's `Last-Modified`).
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// A precondition on a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *` (create only).
    IfNoneMatch,
    /// `If-Match: <etag>` (replace only that version).
    IfMatch(String),
}

/// S3 calls on the state bucket.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// ListBuckets (names only).
    async fn list_buckets(&self) -> Result<Vec<String>, CloudError>;
    /// GetBucketTagging (empty when the bucket has no tags).
    async fn bucket_tags(&self, bucket: &str) -> Result<Tags, CloudError>;
    /// GetBucketEncryption: the default SSE algorithm (`None` when none is configured).
    async fn bucket_encryption(&self, bucket: &str) -> Result<Option<String>, CloudError>;
    /// GetBucketVersioning: `Enabled` or `Suspended` (`None` when never enabled).
    async fn bucket_versioning(&self, bucket: &str) -> Result<Option<String>, CloudError>;
    /// GetPublicAccessBlock: whether all four of the bucket's settings block public access
    /// (`false` when it has no configuration).
    async fn public_access_blocked(&self, bucket: &str) -> Result<bool, CloudError>;
    /// GetBucketPolicy: the policy's JSON text (`None` when the bucket has none).
    async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, CloudError>;
    /// HeadBucket: whether the bucket exists and is reachable.
    async fn bucket_exists(&self, bucket: &str) -> Result<bool, CloudError>;
    /// GetObject (`None` when the key does not exist).
    async fn get_object(&self, bucket: &str, key: &str)
        -> Result<Option<StoredObject>, CloudError>;
    /// PutObject with server-side encryption and an optional precondition; returns the ETag.
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        encryption: &Encryption,
        condition: Option<WriteCondition>,
    ) -> Result<Option<String>, CloudError>;
    /// ListObjectsV2: the objects under a prefix (key and ETag).
    async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, CloudError>;

    /// ListObjectsV2: the keys under a prefix.
    async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, CloudError> {
        Ok(self
            .list_objects(bucket, prefix)
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect())
    }
}

/// The queue feeding the fleet's executor (SQS).
#[async_trait]
pub trait Queue: Send + Sync {
    /// ChangeMessageVisibility: the message (by its receipt handle) is delivered again after
    /// `delay`, instead of after the queue's visibility timeout.
    async fn retry_after(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), CloudError>;
}

/// An object a listing names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Key.
    pub key: String,
    /// Entity tag (changes with the content).
    pub etag: Option<String>,
    /// Size in bytes.
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One mutation of each kind. The match below stops compiling when a variant is added
    /// until it has an example here.
    fn one_of_each() -> Vec<Mutation> {
        let (eni, ip, cidr) = (
            "eni-0a".to_string(),
            "10.0.0.10".parse::<IpAddr>().unwrap(),
            "10.0.0.0/28".parse::<Cidr>().unwrap(),
        );
        let all = vec![
            Mutation::AssociateAddress {
                allocation_id: "eipalloc-0a".into(),
                network_interface_id: eni.clone(),
                private_ip: ip,
            },
            Mutation::ReplaceRoute {
                route_table_id: "rtb-0a".into(),
                destination: cidr,
                network_interface_id: eni.clone(),
            },
            Mutation::CreateRoute {
                route_table_id: "rtb-0a".into(),
                destination: cidr,
                network_interface_id: eni.clone(),
            },
            Mutation::ReplaceRouteTableAssociation {
                association_id: "rtbassoc-0a".into(),
                route_table_id: "rtb-0a".into(),
            },
            Mutation::AssignIpv4Prefixes {
                network_interface_id: eni.clone(),
                prefixes: vec![cidr],
            },
            Mutation::UnassignIpv4Prefixes {
                network_interface_id: eni.clone(),
                prefixes: vec![cidr],
            },
            Mutation::AssignPrivateIps {
                network_interface_id: eni.clone(),
                ips: vec![ip],
            },
            Mutation::AssignIpv6 {
                network_interface_id: eni.clone(),
                ips: vec!["2001:db8::10".parse().unwrap()],
            },
            Mutation::UnassignIpv6 {
                network_interface_id: eni,
                ips: vec!["2001:db8::10".parse().unwrap()],
            },
        ];
        for m in &all {
            match m {
                Mutation::AssociateAddress { .. }
                | Mutation::ReplaceRoute { .. }
                | Mutation::CreateRoute { .. }
                | Mutation::ReplaceRouteTableAssociation { .. }
                | Mutation::AssignIpv4Prefixes { .. }
                | Mutation::UnassignIpv4Prefixes { .. }
                | Mutation::AssignPrivateIps { .. }
                | Mutation::AssignIpv6 { .. }
                | Mutation::UnassignIpv6 { .. } => {}
            }
        }
        all
    }

    /// The one list of mutating names is what the mutations answer, no more, no less; the
    /// IAM actions derive from it (the template's roles are checked against these in
    /// tests/e2e/iam.rs and tests/iam/evaluate.py).
    #[test]
    fn the_mutating_names_are_the_mutations_and_their_iam_actions_derive() {
        let named: std::collections::BTreeSet<&str> =
            one_of_each().iter().map(Mutation::operation).collect();
        let listed: std::collections::BTreeSet<&str> =
            MUTATING_OPERATIONS.iter().copied().collect();
        assert_eq!(named, listed);
        assert_eq!(
            listed.len(),
            MUTATING_OPERATIONS.len(),
            "a name listed twice"
        );
        assert!(iam_actions(["ReplaceRoute"]).contains("ec2:ReplaceRoute"));
        assert_eq!(
            iam_actions(["GetObject"]),
            ["s3:GetObject", "s3:ListBucket"].map(String::from).into()
        );
        assert!(sendable("DescribeAddresses") && !sendable("DescribeVpcs"));
        assert!(!sendable("DeleteBucket"));
    }
}
