//! EC2 as a benchmark sees it: the in-memory cloud behind latency per call and a token bucket
//! per API action, answering `RequestLimitExceeded` when the bucket is empty (EC2's documented
//! defaults). Uses tokio's clock: run it paused, and the times are simulated seconds.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use failover_core::declaration::{Encryption, Tags};
use failover_core::error::{CloudError, ErrorKind};
use failover_core::memory::MemoryCloud;
use failover_core::ports::{
    BeforeCall, Hooked, Listed, ObjectStore, StoredObject, WriteCondition, MUTATING_OPERATIONS,
};
use tokio::time::Instant;

/// Latencies and buckets of the simulated account.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    /// Latency of every EC2 call.
    pub ec2_latency: Duration,
    /// Latency added at random, up to this much (deterministic sequence).
    pub ec2_jitter: Duration,
    /// Latency of every S3 call.
    pub s3_latency: Duration,
    /// Bucket for each mutating action: (capacity, refill per second).
    pub mutating_bucket: (f64, f64),
    /// Bucket for each Describe* action.
    pub describe_bucket: (f64, f64),
}

impl Default for Simulation {
    /// EC2's documented defaults: mutating 50 / 5 per second, Describe* 100 / 20 per second.
    fn default() -> Self {
        Simulation {
            ec2_latency: Duration::from_millis(100),
            ec2_jitter: Duration::from_millis(50),
            s3_latency: Duration::from_millis(30),
            mutating_bucket: (50.0, 5.0),
            describe_bucket: (100.0, 20.0),
        }
    }
}

#[derive(Debug)]
struct Account {
    cfg: Simulation,
    buckets: BTreeMap<&'static str, (f64, Instant)>,
    seed: u64,
    throttled: usize,
    /// When each EC2 call was in flight, and whether it mutated.
    ec2_spans: Vec<(Instant, Instant, bool)>,
}

/// The in-memory cloud behind the simulated account's latency and throttling.
pub struct SimulatedCloud {
    /// The world the calls act on.
    pub cloud: MemoryCloud,
    account: Mutex<Account>,
}

fn is_ec2(op: &str) -> bool {
    op.starts_with("Describe") || MUTATING_OPERATIONS.contains(&op)
}

impl SimulatedCloud {
    /// `cloud` behind the latencies and buckets of `cfg`.
    pub fn new(cloud: MemoryCloud, cfg: Simulation) -> SimulatedCloud {
        SimulatedCloud {
            cloud,
            account: Mutex::new(Account {
                cfg,
                buckets: BTreeMap::new(),
                seed: 0x9e37_79b9_7f4a_7c15,
                throttled: 0,
                ec2_spans: Vec::new(),
            }),
        }
    }

    /// The account's EC2, as a port: every call through the simulated account.
    pub fn ec2(&self) -> Hooked<'_, MemoryCloud, SimulatedCloud> {
        Hooked {
            ec2: &self.cloud,
            hook: self,
        }
    }

    /// EC2 calls sent so far, throttled ones included.
    pub fn ec2_calls(&self) -> usize {
        self.account.lock().unwrap().ec2_spans.len()
    }

    /// How many calls were answered with RequestLimitExceeded.
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

    /// The call as the adapter's SDK client makes it: a throttled Describe* is retried as the
    /// SDK's standard retry mode does (4 attempts in all, exponential backoff with full jitter
    /// from 1 s, at most 20 s); mutations are retried by the executor itself.
    async fn pause(&self, op: &'static str) -> Result<(), CloudError> {
        let mut attempt = 0;
        loop {
            match self.attempt(op).await {
                Err(_) if op.starts_with("Describe") && attempt < 3 => {
                    let cap = (2f64.powi(attempt)).min(20.0);
                    tokio::time::sleep(Duration::from_secs_f64(cap * self.jitter())).await;
                    attempt += 1;
                }
                other => return other,
            }
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

    /// One attempt: the call's latency, then its action's bucket (an error when throttled).
    async fn attempt(&self, op: &'static str) -> Result<(), CloudError> {
        let latency = if is_ec2(op) {
            let frac = self.jitter();
            let a = self.account.lock().unwrap();
            a.cfg.ec2_latency + a.cfg.ec2_jitter.mul_f64(frac)
        } else {
            self.account.lock().unwrap().cfg.s3_latency
        };
        let sent = Instant::now();
        tokio::time::sleep(latency).await;
        if !is_ec2(op) {
            return Ok(());
        }
        let mutating = MUTATING_OPERATIONS.contains(&op);
        let mut a = self.account.lock().unwrap();
        let now = Instant::now();
        a.ec2_spans.push((sent, now, mutating));
        let (cap, rate) = if mutating {
            a.cfg.mutating_bucket
        } else {
            a.cfg.describe_bucket
        };
        let (tokens, last) = a.buckets.entry(op).or_insert((cap, now));
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
}

/// Every EC2 call waits for the simulated account (latency, its bucket, the SDK's retries of
/// throttled Describe* calls).
#[async_trait]
impl BeforeCall for SimulatedCloud {
    async fn before(&self, operation: &'static str) -> Result<(), CloudError> {
        self.pause(operation).await
    }
}

#[async_trait]
impl ObjectStore for SimulatedCloud {
    async fn list_buckets(&self) -> Result<Vec<String>, CloudError> {
        self.pause("ListBuckets").await?;
        self.cloud.list_buckets().await
    }

    async fn bucket_tags(&self, bucket: &str) -> Result<Tags, CloudError> {
        self.pause("GetBucketTagging").await?;
        self.cloud.bucket_tags(bucket).await
    }

    async fn bucket_encryption(&self, bucket: &str) -> Result<Option<String>, CloudError> {
        self.pause("GetBucketEncryption").await?;
        self.cloud.bucket_encryption(bucket).await
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool, CloudError> {
        self.pause("HeadBucket").await?;
        self.cloud.bucket_exists(bucket).await
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<StoredObject>, CloudError> {
        self.pause("GetObject").await?;
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
        self.pause("PutObject").await?;
        self.cloud
            .put_object(bucket, key, body, encryption, condition)
            .await
    }

    async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, CloudError> {
        self.pause("ListObjectsV2").await?;
        self.cloud.list_objects(bucket, prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_core::lab::{Topology, SEED_B_EXT, SEED_RTB};
    use failover_core::net::Cidr;
    use failover_core::ports::Ec2Mutate;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_throttles_past_the_burst_and_refills_at_its_rate() {
        // GIVEN a mutating bucket of 2, refilled at 1 per second
        let cfg = Simulation {
            ec2_jitter: Duration::ZERO,
            mutating_bucket: (2.0, 1.0),
            ..Simulation::default()
        };
        let sim = SimulatedCloud::new(MemoryCloud::from_topology(&Topology::seed()), cfg);
        let dst: Cidr = "0.0.0.0/0".parse().unwrap();
        let ec2 = sim.ec2();
        let call = || ec2.replace_route(SEED_RTB, dst, SEED_B_EXT);
        // THEN two calls pass, the third is RequestLimitExceeded, and a second later one passes
        call().await.unwrap();
        call().await.unwrap();
        let e = call().await.unwrap_err();
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (ErrorKind::Throttled, Some("RequestLimitExceeded"))
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        call().await.unwrap();
        assert_eq!((sim.ec2_calls(), sim.throttled_count()), (4, 1));
        // AND consecutive mutations count as one (paced) round
        assert_eq!(sim.ec2_rounds(), 1);
    }
}
