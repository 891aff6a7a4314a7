//! Ports: the traits the engine calls, one per side of the cloud. Each has two adapters,
//! AWS SDK (`crate::aws`) and in-memory (`crate::memory`).
//!
//! The traits are split by IAM footprint: a function that only inspects needs `Ec2Describe`
//! (ec2:Describe*) and `ObjectStore` reads, never `Ec2Mutate`.

use std::net::IpAddr;

use async_trait::async_trait;

use crate::declaration::{Encryption, Tags};
use crate::error::CloudError;
use crate::model::{ElasticIp, Filter, Instance, NetworkInterface, RouteTable};
use crate::net::Cidr;

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

/// EC2 operations that change the cloud (what `Ec2Mutate` sends).
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

/// Every API operation the ports send (as the SDK names it), with the IAM actions it needs.
/// `GetObject` and `HeadBucket` need `s3:ListBucket` so a missing key or bucket answers 404,
/// not 403.
pub const PERMISSIONS: &[(&str, &[&str])] = &[
    ("DescribeInstances", &["ec2:DescribeInstances"]),
    ("DescribeInstanceStatus", &["ec2:DescribeInstanceStatus"]),
    (
        "DescribeNetworkInterfaces",
        &["ec2:DescribeNetworkInterfaces"],
    ),
    ("DescribeRouteTables", &["ec2:DescribeRouteTables"]),
    ("DescribeAddresses", &["ec2:DescribeAddresses"]),
    ("AssociateAddress", &["ec2:AssociateAddress"]),
    ("ReplaceRoute", &["ec2:ReplaceRoute"]),
    ("CreateRoute", &["ec2:CreateRoute"]),
    (
        "AssignPrivateIpAddresses",
        &["ec2:AssignPrivateIpAddresses"],
    ),
    (
        "UnassignPrivateIpAddresses",
        &["ec2:UnassignPrivateIpAddresses"],
    ),
    ("AssignIpv6Addresses", &["ec2:AssignIpv6Addresses"]),
    ("UnassignIpv6Addresses", &["ec2:UnassignIpv6Addresses"]),
    (
        "ReplaceRouteTableAssociation",
        &["ec2:ReplaceRouteTableAssociation"],
    ),
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

/// The IAM actions `operations` need.
pub fn iam_actions<'a>(
    operations: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeSet<&'static str> {
    operations
        .into_iter()
        .flat_map(|op| {
            PERMISSIONS
                .iter()
                .find(|(name, _)| *name == op)
                .unwrap_or_else(|| panic!("{op} is not in ports::PERMISSIONS"))
                .1
                .iter()
                .copied()
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
}

/// One mutating call, for permission checks (`Ec2Mutate::dry_run`).
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
    /// AssociateAddress with `AllowReassociation` (moves the EIP with no disassociate gap);
    /// returns the new association id.
    async fn associate_address(
        &self,
        allocation_id: &str,
        network_interface_id: &str,
        private_ip: IpAddr,
    ) -> Result<String, CloudError>;
    /// ReplaceRoute to an ENI (`DestinationCidrBlock` or `DestinationIpv6CidrBlock`).
    async fn replace_route(
        &self,
        route_table_id: &str,
        destination: Cidr,
        network_interface_id: &str,
    ) -> Result<(), CloudError>;
    /// CreateRoute to an ENI (fails with `RouteAlreadyExists` when the destination is taken).
    async fn create_route(
        &self,
        route_table_id: &str,
        destination: Cidr,
        network_interface_id: &str,
    ) -> Result<(), CloudError>;
    /// ReplaceRouteTableAssociation; returns the new association id.
    async fn replace_route_table_association(
        &self,
        association_id: &str,
        route_table_id: &str,
    ) -> Result<String, CloudError>;
    /// AssignPrivateIpAddresses with `Ipv4Prefixes` (free prefixes only).
    async fn assign_ipv4_prefixes(
        &self,
        network_interface_id: &str,
        prefixes: &[Cidr],
    ) -> Result<(), CloudError>;
    /// UnassignPrivateIpAddresses with `Ipv4Prefixes`.
    async fn unassign_ipv4_prefixes(
        &self,
        network_interface_id: &str,
        prefixes: &[Cidr],
    ) -> Result<(), CloudError>;
    /// AssignPrivateIpAddresses; with `allow_reassignment` the addresses (and any EIPs on them)
    /// move from the interface that holds them.
    async fn assign_private_ips(
        &self,
        network_interface_id: &str,
        ips: &[IpAddr],
        allow_reassignment: bool,
    ) -> Result<(), CloudError>;
    /// AssignIpv6Addresses (the addresses must be free).
    async fn assign_ipv6_addresses(
        &self,
        network_interface_id: &str,
        ips: &[IpAddr],
    ) -> Result<(), CloudError>;
    /// UnassignIpv6Addresses.
    async fn unassign_ipv6_addresses(
        &self,
        network_interface_id: &str,
        ips: &[IpAddr],
    ) -> Result<(), CloudError>;
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
}

#[async_trait]
impl<E: Ec2Mutate + ?Sized, H: BeforeCall + ?Sized> Ec2Mutate for Hooked<'_, E, H> {
    async fn dry_run(&self, m: &Mutation) -> Result<DryRun, CloudError> {
        self.ec2.dry_run(m).await
    }

    async fn associate_address(
        &self,
        allocation_id: &str,
        network_interface_id: &str,
        private_ip: IpAddr,
    ) -> Result<String, CloudError> {
        self.hook.before("AssociateAddress").await?;
        self.ec2
            .associate_address(allocation_id, network_interface_id, private_ip)
            .await
    }

    async fn replace_route(
        &self,
        route_table_id: &str,
        destination: Cidr,
        network_interface_id: &str,
    ) -> Result<(), CloudError> {
        self.hook.before("ReplaceRoute").await?;
        self.ec2
            .replace_route(route_table_id, destination, network_interface_id)
            .await
    }

    async fn create_route(
        &self,
        route_table_id: &str,
        destination: Cidr,
        network_interface_id: &str,
    ) -> Result<(), CloudError> {
        self.hook.before("CreateRoute").await?;
        self.ec2
            .create_route(route_table_id, destination, network_interface_id)
            .await
    }

    async fn replace_route_table_association(
        &self,
        association_id: &str,
        route_table_id: &str,
    ) -> Result<String, CloudError> {
        self.hook.before("ReplaceRouteTableAssociation").await?;
        self.ec2
            .replace_route_table_association(association_id, route_table_id)
            .await
    }

    async fn assign_ipv4_prefixes(
        &self,
        network_interface_id: &str,
        prefixes: &[Cidr],
    ) -> Result<(), CloudError> {
        self.hook.before("AssignPrivateIpAddresses").await?;
        self.ec2
            .assign_ipv4_prefixes(network_interface_id, prefixes)
            .await
    }

    async fn unassign_ipv4_prefixes(
        &self,
        network_interface_id: &str,
        prefixes: &[Cidr],
    ) -> Result<(), CloudError> {
        self.hook.before("UnassignPrivateIpAddresses").await?;
        self.ec2
            .unassign_ipv4_prefixes(network_interface_id, prefixes)
            .await
    }

    async fn assign_private_ips(
        &self,
        network_interface_id: &str,
        ips: &[IpAddr],
        allow_reassignment: bool,
    ) -> Result<(), CloudError> {
        self.hook.before("AssignPrivateIpAddresses").await?;
        self.ec2
            .assign_private_ips(network_interface_id, ips, allow_reassignment)
            .await
    }

    async fn assign_ipv6_addresses(
        &self,
        network_interface_id: &str,
        ips: &[IpAddr],
    ) -> Result<(), CloudError> {
        self.hook.before("AssignIpv6Addresses").await?;
        self.ec2
            .assign_ipv6_addresses(network_interface_id, ips)
            .await
    }

    async fn unassign_ipv6_addresses(
        &self,
        network_interface_id: &str,
        ips: &[IpAddr],
    ) -> Result<(), CloudError> {
        self.hook.before("UnassignIpv6Addresses").await?;
        self.ec2
            .unassign_ipv6_addresses(network_interface_id, ips)
            .await
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
