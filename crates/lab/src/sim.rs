//! EC2 as a benchmark sees it: the in-memory cloud behind latency per call, EC2's token bucket
//! per API action, and the SDK client's retries of a throttled call. Uses tokio's clock: run
//! it paused, and the times are simulated seconds.
//!
//! The buckets are those of "Request throttling for the Amazon EC2 API"
//! (<https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html>): "each API is
//! evaluated individually, and you are throttled on the number of requests you make on a
//! per-API basis"; its table gives each of the "Non-mutating actions" 100 tokens refilled at
//! 20 per second, each of the "Mutating actions" 50 at 5, and "Unfiltered and unpaginated
//! non-mutating actions" ("a specific subset of non-mutating API actions that, when requested
//! without specifying either pagination or a filter, use tokens from a smaller token bucket")
//! 50 at 10; among its "Uncategorized actions" ("their own token bucket sizes and refill
//! rates"), AssignPrivateIpAddresses, UnassignPrivateIpAddresses and AssignIpv6Addresses have
//! 100 at 5 (UnassignIpv6Addresses, not listed, is a mutating action). A bucket
//! here refills continuously, where AWS adds its tokens every second.
//!
//! The retries are those of the SDK for Rust's standard retry mode (AWS SDKs and Tools
//! Reference Guide, "Retry behavior",
//! <https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html>: "The default
//! maximum number of attempts with this mode is three, unless max_attempts is explicitly
//! configured"; the adapters configure [`SDK_MAX_ATTEMPTS`]), with aws-smithy-runtime's
//! `StandardRetryStrategy` figures: a throttling error (`RequestLimitExceeded`) is retried
//! after a full-jitter backoff, random × min(1 s × 2^(retry − 1), 20 s), each retry taking 5
//! tokens from the client's retry quota of 500. Every EC2 call is retried so, mutations
//! included; each attempt is a request on the wire (`ports::sent_on_the_wire`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use failover_core::aws::SDK_MAX_ATTEMPTS;
use failover_core::engine::declaration::{Encryption, Tags};
use failover_core::engine::error::{CloudError, ErrorKind};
use failover_core::engine::ports::{
    sent_on_the_wire, BeforeCall, Hooked, Listed, ObjectStore, StoredObject, WriteCondition,
    MUTATING_OPERATIONS,
};
use failover_core::memory::MemoryCloud;
use tokio::time::Instant;

/// A token bucket: (maximum capacity, tokens refilled per second).
pub type Bucket = (f64, f64);

/// The "Unfiltered and unpaginated non-mutating actions" of EC2's throttling table: sent with
/// no filter, ids or MaxResults, each draws from its own smaller bucket.
pub const UNFILTERED_SUBSET: [&str; 7] = [
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeNetworkInterfaces",
    "DescribeSecurityGroups",
    "DescribeSnapshots",
    "DescribeSpotInstanceRequests",
    "DescribeVolumes",
];

/// Latencies, buckets and client retries of the simulated account.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    /// Latency of every EC2 call.
    pub ec2_latency: Duration,
    /// Latency added at random, up to this much (deterministic sequence).
    pub ec2_jitter: Duration,
    /// Latency of every S3 call.
    pub s3_latency: Duration,
    /// Bucket of each of the "Mutating actions".
    pub mutating_bucket: Bucket,
    /// Bucket of each of the "Non-mutating actions" (Describe*).
    pub describe_bucket: Bucket,
    /// Bucket of each of the [`UNFILTERED_SUBSET`] when sent unfiltered.
    pub unfiltered_bucket: Bucket,
    /// The "Uncategorized actions" the ports send, each with its own bucket.
    pub own_buckets: Vec<(&'static str, Bucket)>,
    /// The SDK client's retries of a throttled call.
    pub retries: Retries,
}

impl Default for Simulation {
    /// EC2's documented figures and the adapters' SDK retries (see the module's doc).
    fn default() -> Self {
        Simulation {
            ec2_latency: Duration::from_millis(100),
            ec2_jitter: Duration::from_millis(50),
            s3_latency: Duration::from_millis(30),
            mutating_bucket: (50.0, 5.0),
            describe_bucket: (100.0, 20.0),
            unfiltered_bucket: (50.0, 10.0),
            own_buckets: vec![
                ("AssignPrivateIpAddresses", (100.0, 5.0)),
                ("UnassignPrivateIpAddresses", (100.0, 5.0)),
                ("AssignIpv6Addresses", (100.0, 5.0)),
            ],
            retries: Retries::default(),
        }
    }
}

impl Simulation {
    /// The bucket `op` draws from, and whether it is the smaller one of an unfiltered
    /// Describe* (`scoped`: sent with a filter or ids).
    fn bucket(&self, op: &str, scoped: bool) -> (Bucket, bool) {
        let unfiltered = !scoped && UNFILTERED_SUBSET.contains(&op);
        let figures = match self.own_buckets.iter().find(|(a, _)| *a == op) {
            Some((_, own)) => *own,
            None if MUTATING_OPERATIONS.contains(&op) => self.mutating_bucket,
            None if unfiltered => self.unfiltered_bucket,
            None => self.describe_bucket,
        };
        (figures, unfiltered)
    }
}

/// The SDK client's standard retry mode, as the adapters configure it.
#[derive(Clone, Debug, PartialEq)]
pub struct Retries {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The backoff before retry n is random × min(initial × 2^(n − 1), max).
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The client's retry quota, in tokens.
    pub quota: u32,
    /// Tokens a retry of a throttled attempt takes from the quota.
    pub retry_cost: u32,
}

impl Default for Retries {
    /// `RetryConfig::standard()` (aws-smithy-types: initial backoff 1 s, max backoff 20 s)
    /// with the adapters' attempts; the retry quota and a throttling retry's cost of
    /// aws-smithy-runtime's `TokenBucket` (500 and 5).
    fn default() -> Self {
        Retries {
            max_attempts: SDK_MAX_ATTEMPTS,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(20),
            quota: 500,
            retry_cost: 5,
        }
    }
}

/// A client's retry quota as aws-smithy-runtime keeps it: a retry takes its cost and holds
/// it as the client's one permit (a newer permit replaces it, and the replaced one's tokens
/// are gone); a success gives the held permit back, or one token when none is held.
#[derive(Debug)]
struct Quota {
    tokens: u32,
    held: bool,
}

impl Quota {
    fn new(retries: &Retries) -> Quota {
        Quota {
            tokens: retries.quota,
            held: false,
        }
    }

    /// Pays for a retry, if it can.
    fn take(&mut self, retries: &Retries) -> bool {
        if self.tokens < retries.retry_cost {
            return false;
        }
        self.tokens -= retries.retry_cost;
        self.held = true;
        true
    }

    /// A call succeeded: the held permit comes back, or one token.
    fn succeeded(&mut self, retries: &Retries) {
        let back = if self.held { retries.retry_cost } else { 1 };
        self.tokens = (self.tokens + back).min(retries.quota);
        self.held = false;
    }
}

#[derive(Debug)]
struct Account {
    cfg: Simulation,
    /// Each action's buckets (its smaller one for unfiltered calls apart): tokens, when.
    buckets: BTreeMap<(&'static str, bool), (f64, Instant)>,
    seed: u64,
    throttled: usize,
    /// When each EC2 attempt was in flight, and whether it mutated.
    ec2_spans: Vec<(Instant, Instant, bool)>,
}

/// The in-memory cloud behind the simulated account's latency and throttling, called through
/// one SDK client ([`SimulatedCloud::ec2`]) or more ([`SimulatedCloud::client`]).
pub struct SimulatedCloud {
    /// The world the calls act on.
    pub cloud: MemoryCloud,
    account: Mutex<Account>,
    /// The retry quota of the client behind [`SimulatedCloud::ec2`].
    quota: Mutex<Quota>,
}

/// Another SDK client on the simulated account (another Lambda): the same buckets, its own
/// retry quota.
pub struct SdkClient<'a> {
    sim: &'a SimulatedCloud,
    quota: Mutex<Quota>,
}

impl SdkClient<'_> {
    /// The account's EC2 through this client.
    pub fn ec2(&self) -> Hooked<'_, MemoryCloud, Self> {
        Hooked {
            ec2: &self.sim.cloud,
            hook: self,
        }
    }
}

impl SimulatedCloud {
    /// `cloud` behind the latencies, buckets and retries of `cfg`.
    pub fn new(cloud: MemoryCloud, cfg: Simulation) -> SimulatedCloud {
        SimulatedCloud {
            cloud,
            quota: Mutex::new(Quota::new(&cfg.retries)),
            account: Mutex::new(Account {
                cfg,
                buckets: BTreeMap::new(),
                seed: 0x9e37_79b9_7f4a_7c15,
                throttled: 0,
                ec2_spans: Vec::new(),
            }),
        }
    }

    /// The account's EC2, as a port: every call through the simulated account and its
    /// client.
    pub fn ec2(&self) -> Hooked<'_, MemoryCloud, SimulatedCloud> {
        Hooked {
            ec2: &self.cloud,
            hook: self,
        }
    }

    /// A new SDK client on the account, with its own retry quota.
    pub fn client(&self) -> SdkClient<'_> {
        let quota = Quota::new(&self.account.lock().unwrap().cfg.retries);
        SdkClient {
            sim: self,
            quota: Mutex::new(quota),
        }
    }

    /// EC2 requests sent so far, every attempt of a retried call and throttled ones included.
    pub fn ec2_calls(&self) -> usize {
        self.account.lock().unwrap().ec2_spans.len()
    }

    /// How many requests were answered with RequestLimitExceeded.
    pub fn throttled_count(&self) -> usize {
        self.account.lock().unwrap().throttled
    }

    /// Sequential EC2 round trips so far: calls overlapping in time are one round; a call
    /// sent after the previous round answered starts a new one, except that consecutive
    /// mutations (a wave the pacer spreads past the burst) stay one round.
    pub fn ec2_rounds(&self) -> usize {
        let mut spans = self.account.lock().unwrap().ec2_spans.clone();
        spans.sort_by_key(|s| (s.0, s.1));
        let mut rounds = 0;
        let mut current: Option<(Instant, bool)> = None;
        for (s, e, mutating) in spans {
            match current {
                Some((end, m)) if s < end || (mutating && m) => {
                    current = Some((end.max(e), m && mutating))
                }
                _ => {
                    rounds += 1;
                    current = Some((e, mutating));
                }
            }
        }
        rounds
    }

    /// One EC2 call as the adapters' SDK client makes it: attempts until one is not
    /// throttled, the attempts run out or the retry quota does, a backoff before each retry.
    /// `scoped`: a Describe* sent with a filter or ids (a mutation always is); `quota`: the
    /// client's.
    async fn call(
        &self,
        quota: &Mutex<Quota>,
        op: &'static str,
        scoped: bool,
    ) -> Result<(), CloudError> {
        let retries = self.account.lock().unwrap().cfg.retries.clone();
        let mut attempt = 1;
        loop {
            sent_on_the_wire();
            let answer = self.attempt(op, scoped).await;
            if answer.is_ok() {
                quota.lock().unwrap().succeeded(&retries);
                return answer;
            }
            if attempt >= retries.max_attempts || !quota.lock().unwrap().take(&retries) {
                return answer;
            }
            let ceiling = retries
                .initial_backoff
                .mul_f64(2f64.powi(attempt as i32 - 1))
                .min(retries.max_backoff);
            tokio::time::sleep(ceiling.mul_f64(self.jitter())).await;
            attempt += 1;
        }
    }

    /// A deterministic fraction in [0, 1).
    fn jitter(&self) -> f64 {
        let mut a = self.account.lock().unwrap();
        a.seed = a
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (a.seed >> 33) as f64 / (1u64 << 31) as f64
    }

    /// One EC2 request: its latency, then its action's bucket (an error when throttled).
    async fn attempt(&self, op: &'static str, scoped: bool) -> Result<(), CloudError> {
        let frac = self.jitter();
        let latency = {
            let a = self.account.lock().unwrap();
            a.cfg.ec2_latency + a.cfg.ec2_jitter.mul_f64(frac)
        };
        let sent = Instant::now();
        tokio::time::sleep(latency).await;
        let mut a = self.account.lock().unwrap();
        let now = Instant::now();
        a.ec2_spans
            .push((sent, now, MUTATING_OPERATIONS.contains(&op)));
        let ((cap, rate), unfiltered) = a.cfg.bucket(op, scoped);
        let (tokens, last) = a.buckets.entry((op, unfiltered)).or_insert((cap, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(cap);
        *last = now;
        if *tokens >= 1.0 - 1e-9 {
            *tokens -= 1.0;
            return Ok(());
        }
        a.throttled += 1;
        Err(CloudError::new(
            op,
            ErrorKind::Throttled,
            "RequestLimitExceeded",
            "Request limit exceeded.",
        ))
    }

    /// An S3 call's round trip (S3 is not throttled here).
    async fn s3_round_trip(&self) {
        let latency = self.account.lock().unwrap().cfg.s3_latency;
        tokio::time::sleep(latency).await;
    }
}

/// Every EC2 call goes through the simulated account and client (latency, its action's
/// bucket, the SDK's retries of a throttled attempt).
#[async_trait]
impl BeforeCall for SimulatedCloud {
    async fn before(&self, operation: &'static str) -> Result<(), CloudError> {
        self.call(&self.quota, operation, true).await
    }

    async fn before_describe(
        &self,
        operation: &'static str,
        scoped: bool,
    ) -> Result<(), CloudError> {
        self.call(&self.quota, operation, scoped).await
    }
}

/// The same through another client.
#[async_trait]
impl BeforeCall for SdkClient<'_> {
    async fn before(&self, operation: &'static str) -> Result<(), CloudError> {
        self.sim.call(&self.quota, operation, true).await
    }

    async fn before_describe(
        &self,
        operation: &'static str,
        scoped: bool,
    ) -> Result<(), CloudError> {
        self.sim.call(&self.quota, operation, scoped).await
    }
}

#[async_trait]
impl ObjectStore for SimulatedCloud {
    async fn list_buckets(&self) -> Result<Vec<String>, CloudError> {
        self.s3_round_trip().await;
        self.cloud.list_buckets().await
    }

    async fn bucket_tags(&self, bucket: &str) -> Result<Tags, CloudError> {
        self.s3_round_trip().await;
        self.cloud.bucket_tags(bucket).await
    }

    async fn bucket_encryption(&self, bucket: &str) -> Result<Option<String>, CloudError> {
        self.s3_round_trip().await;
        self.cloud.bucket_encryption(bucket).await
    }

    async fn bucket_versioning(&self, bucket: &str) -> Result<Option<String>, CloudError> {
        self.s3_round_trip().await;
        self.cloud.bucket_versioning(bucket).await
    }

    async fn public_access_blocked(&self, bucket: &str) -> Result<bool, CloudError> {
        self.s3_round_trip().await;
        self.cloud.public_access_blocked(bucket).await
    }

    async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, CloudError> {
        self.s3_round_trip().await;
        self.cloud.bucket_policy(bucket).await
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool, CloudError> {
        self.s3_round_trip().await;
        self.cloud.bucket_exists(bucket).await
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<StoredObject>, CloudError> {
        self.s3_round_trip().await;
        self.cloud.get_object(bucket, key).await
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        encryption: &Encryption,
        condition: Option<WriteCondition>,
    ) -> Result<Option<String>, CloudError> {
        self.s3_round_trip().await;
        self.cloud
            .put_object(bucket, key, body, encryption, condition)
            .await
    }

    async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, CloudError> {
        self.s3_round_trip().await;
        self.cloud.list_objects(bucket, prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_core::engine::model::Filter;
    use failover_core::engine::net::Cidr;
    use failover_core::engine::ports::Mutation;
    use failover_core::engine::ports::{on_the_wire, Ec2Describe, Ec2Mutate};
    use failover_core::lab::{Topology, SEED_A, SEED_B_EXT, SEED_RTB};

    fn simulated(cfg: Simulation) -> SimulatedCloud {
        SimulatedCloud::new(MemoryCloud::from_topology(&Topology::seed()), cfg)
    }

    /// Instant calls and no SDK retries: what the buckets alone answer.
    fn buckets_alone() -> Simulation {
        Simulation {
            ec2_latency: Duration::ZERO,
            ec2_jitter: Duration::ZERO,
            retries: Retries {
                max_attempts: 1,
                ..Retries::default()
            },
            ..Simulation::default()
        }
    }

    /// Calls of `op` answered before the first RequestLimitExceeded.
    async fn passing(sim: &SimulatedCloud, op: &'static str) -> usize {
        for n in 0..1000 {
            if sim.before(op).await.is_err() {
                return n;
            }
        }
        panic!("{op} was never throttled")
    }

    fn is_throttled(e: &CloudError) -> bool {
        e.kind == ErrorKind::Throttled && e.code.as_deref() == Some("RequestLimitExceeded")
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_throttles_past_the_burst_and_refills_at_its_rate() {
        // GIVEN a mutating bucket of 2, refilled at 1 per second, and no SDK retries
        let cfg = Simulation {
            ec2_jitter: Duration::ZERO,
            mutating_bucket: (2.0, 1.0),
            retries: Retries {
                max_attempts: 1,
                ..Retries::default()
            },
            ..Simulation::default()
        };
        let sim = simulated(cfg);
        let dst: Cidr = "0.0.0.0/0".parse().unwrap();
        let ec2 = sim.ec2();
        let route = Mutation::ReplaceRoute {
            route_table_id: SEED_RTB.into(),
            destination: dst,
            network_interface_id: SEED_B_EXT.into(),
        };
        let call = || ec2.mutate(&route);
        // THEN two calls pass, the third is RequestLimitExceeded, and a second later one passes
        call().await.unwrap();
        call().await.unwrap();
        assert!(is_throttled(&call().await.unwrap_err()));
        tokio::time::sleep(Duration::from_secs(1)).await;
        call().await.unwrap();
        assert_eq!((sim.ec2_calls(), sim.throttled_count()), (4, 1));
        // AND consecutive mutations count as one (paced) round
        assert_eq!(sim.ec2_rounds(), 1);
    }

    /// "Request throttling for the Amazon EC2 API"
    /// (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html): "each API is
    /// evaluated individually"; "Mutating actions | ... | 50 | 5"; among the "Uncategorized
    /// actions", "AssignPrivateIpAddresses | 100 | 5" and "UnassignPrivateIpAddresses |
    /// 100 | 5".
    #[tokio::test(start_paused = true)]
    async fn each_action_has_its_own_bucket_with_ec2s_documented_figures() {
        let sim = simulated(buckets_alone());
        // GIVEN ReplaceRoute throttled past its burst of 50
        assert_eq!(passing(&sim, "ReplaceRoute").await, 50);
        // THEN AssignPrivateIpAddresses still has its own 100, and so has the unassign
        assert_eq!(passing(&sim, "AssignPrivateIpAddresses").await, 100);
        assert_eq!(passing(&sim, "UnassignPrivateIpAddresses").await, 100);
        // AND the other mutations their category's 50
        assert_eq!(passing(&sim, "AssociateAddress").await, 50);
        assert_eq!(passing(&sim, "CreateRoute").await, 50);
        // AND a second later each bucket has its own refill: 5 tokens for every one of them
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(passing(&sim, "ReplaceRoute").await, 5);
        assert_eq!(passing(&sim, "AssignPrivateIpAddresses").await, 5);
    }

    /// The same document: "Non-mutating actions | ... | 100 | 20"; "Unfiltered and
    /// unpaginated non-mutating actions | DescribeInstances, DescribeInstanceStatus,
    /// DescribeNetworkInterfaces, ... | 50 | 10", those that "when requested without
    /// specifying either pagination or a filter, use tokens from a smaller token bucket".
    #[tokio::test(start_paused = true)]
    async fn an_unfiltered_describe_draws_from_the_smaller_bucket() {
        let sim = simulated(buckets_alone());
        let ec2 = sim.ec2();
        // GIVEN DescribeInstances sent without a filter (the in-memory cloud refuses it too,
        // after the account answered)
        let mut unfiltered = 0;
        while !ec2
            .describe_instances(&[])
            .await
            .is_err_and(|e| is_throttled(&e))
        {
            unfiltered += 1;
        }
        // THEN its smaller bucket of 50 is spent, and a second refills 10
        assert_eq!(unfiltered, 50);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut refilled = 0;
        while sim
            .before_describe("DescribeInstances", false)
            .await
            .is_ok()
        {
            refilled += 1;
        }
        assert_eq!(refilled, 10);
        // AND a filtered DescribeInstances still has the non-mutating 100
        let mine = [Filter::new("instance-id", [SEED_A])];
        for _ in 0..100 {
            ec2.describe_instances(&mine).await.unwrap();
        }
        assert!(is_throttled(
            &ec2.describe_instances(&mine).await.unwrap_err()
        ));
        // AND a Describe* outside the subset has the 100 even unfiltered
        let mut tables = 0;
        while sim
            .before_describe("DescribeRouteTables", false)
            .await
            .is_ok()
        {
            tables += 1;
        }
        assert_eq!(tables, 100);
    }

    /// AWS SDKs and Tools Reference Guide, "Retry behavior"
    /// (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html), as the
    /// SDK for Rust implements standard mode (aws-smithy-runtime `StandardRetryStrategy`): a
    /// throttling error is retried up to the configured attempts (the adapters':
    /// `SDK_MAX_ATTEMPTS`), after random × min(1 s × 2^(retry − 1), 20 s).
    #[tokio::test(start_paused = true)]
    async fn a_throttled_call_is_retried_with_backoff_as_the_sdk_does_then_fails() {
        // GIVEN ReplaceRoute's bucket of 1, never refilled, spent by one call
        let sim = simulated(Simulation {
            ec2_jitter: Duration::ZERO,
            mutating_bucket: (1.0, 0.0),
            ..Simulation::default()
        });
        sim.before("ReplaceRoute").await.unwrap();
        // WHEN the next call is made, counting its requests on the wire
        let (answer, wire) = on_the_wire(sim.before("ReplaceRoute")).await;
        // THEN the client sent the SDK's 4 attempts, each throttled, then answered the error
        assert_eq!(SDK_MAX_ATTEMPTS, 4);
        assert!(is_throttled(&answer.unwrap_err()));
        assert_eq!(wire, SDK_MAX_ATTEMPTS);
        assert_eq!(sim.ec2_calls(), 1 + SDK_MAX_ATTEMPTS as usize);
        assert_eq!(sim.throttled_count(), SDK_MAX_ATTEMPTS as usize);
        // AND before retry n it waited more than nothing and at most 2^(n-1) seconds
        let spans = sim.account.lock().unwrap().ec2_spans.clone();
        let gaps: Vec<Duration> = spans[1..].windows(2).map(|w| w[1].0 - w[0].1).collect();
        assert_eq!(gaps.len(), 3);
        for (n, gap) in gaps.iter().enumerate() {
            let ceiling = Duration::from_secs(1 << n);
            assert!(!gap.is_zero() && *gap <= ceiling, "backoff {n}: {gap:?}");
        }
    }

    /// The same strategy's retry quota (aws-smithy-runtime `TokenBucket`: a throttling retry
    /// costs 5 tokens; a success gives them back, or one token).
    #[tokio::test(start_paused = true)]
    async fn the_retry_quota_bounds_the_retries() {
        // GIVEN a client with 10 tokens of retry quota and a spent, never refilled bucket
        let sim = simulated(Simulation {
            mutating_bucket: (1.0, 0.0),
            retries: Retries {
                quota: 10,
                ..Retries::default()
            },
            ..Simulation::default()
        });
        sim.before("ReplaceRoute").await.unwrap();
        // THEN a throttled call is retried twice (5 tokens each), then no more
        let (answer, wire) = on_the_wire(sim.before("ReplaceRoute")).await;
        assert!(is_throttled(&answer.unwrap_err()));
        assert_eq!(wire, 3);
        // AND with the quota spent, the next throttled call is not retried
        assert_eq!(on_the_wire(sim.before("ReplaceRoute")).await.1, 1);
        // AND the next success (any call's) gives back the permit the last retry held: one
        // retry more
        let success = || sim.before_describe("DescribeRouteTables", true);
        success().await.unwrap();
        assert_eq!(on_the_wire(sim.before("ReplaceRoute")).await.1, 2);
        // AND a success with no permit held gives one token
        success().await.unwrap();
        success().await.unwrap();
        assert_eq!(sim.quota.lock().unwrap().tokens, 5 + 1);
        // AND another client (another Lambda) has a quota of its own
        let other = sim.client();
        assert_eq!(on_the_wire(other.before("ReplaceRoute")).await.1, 3);
    }
}
