//! One lock per cluster in S3, taken with conditional writes: `If-None-Match: *` to create,
//! `If-Match: <etag>` to renew, release or take over an expired lease.
//!
//! - The lease expires, so a crashed holder blocks nobody for long; and the expiry a body
//!   claims is capped at the store's own write time plus [`MAX_LOCK_LEASE_SECONDS`], so a
//!   clock-skewed or forged body ("expires in 2099") blocks nobody for longer either.
//! - Every write carries a fresh write id. A conditional write whose answer was lost (or
//!   answered 412 because a retry of it found its own effect) is settled by reading the lock
//!   back: our write id there means the write took effect. An unknown outcome is an error
//!   (retryable), never a "someone else holds it".
//! - The lease is also the fence: before each mutation the executor asks [`Fence::hold_for`]
//!   the call's worst-case time, and the lease is renewed when less is left. A run that cannot
//!   renew sends nothing more.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::clock;
use crate::declaration::{Encryption, MAX_LOCK_LEASE_SECONDS};
use crate::error::{CloudError, ErrorKind};
use crate::ports::{ObjectStore, StoredObject, WriteCondition, CALL_TIMEOUT};
use crate::state::PREFIX;

/// Time kept on the lease beyond a call's worst case: the renewal itself, and clock slack.
pub const FENCE_MARGIN: Duration = Duration::from_secs(5);

/// What a lease must cover before a mutation is sent: the call's worst case plus the margin.
pub const FENCE_NEED: Duration = CALL_TIMEOUT.saturating_add(FENCE_MARGIN);

/// The shortest lease a run takes: one call's worst case, the margin, and room for ten more
/// seconds of calls between renewals. A shorter `lockLeaseSeconds` is extended to this (with a
/// warning), since a lease that cannot outlive one call cannot fence it.
pub const MIN_EFFECTIVE_LEASE: Duration = FENCE_NEED.saturating_add(Duration::from_secs(10));

/// Conditional writes tried per lock step when the store fails transiently.
const WRITE_ATTEMPTS: u32 = 3;

/// The lock object's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockBody {
    /// Run id of the holder.
    pub owner: String,
    /// When it was taken.
    pub acquired_at: DateTime<Utc>,
    /// When the lease ends unless renewed.
    pub expires_at: DateTime<Utc>,
    /// Set by a clean release.
    pub released: bool,
    /// Unique per write: tells a writer whose answer was lost whether its write took effect.
    #[serde(default)]
    pub write_id: String,
}

/// The lock as found: its body and until when it really holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    /// The body as written.
    #[serde(flatten)]
    pub body: LockBody,
    /// The end of the lease: `expiresAt`, capped at the store's write time plus the longest
    /// lease a holder may ask for.
    pub held_until: DateTime<Utc>,
    /// Whether `expiresAt` claimed more than any holder may ask (clock skew or forgery).
    pub capped: bool,
}

impl Holder {
    /// Reads a lock object; `None` when its body is not a lock (it is then free to take).
    pub fn from_object(o: &StoredObject) -> Option<Holder> {
        let body: LockBody = serde_json::from_slice(&o.body).ok()?;
        let written = o.last_modified.unwrap_or(body.acquired_at);
        let cap = written + chrono::Duration::seconds(MAX_LOCK_LEASE_SECONDS as i64);
        Some(Holder {
            held_until: body.expires_at.min(cap),
            capped: body.expires_at > cap,
            body,
        })
    }

    /// Whether someone else may take the lock at `now`.
    pub fn is_free(&self, now: DateTime<Utc>) -> bool {
        self.body.released || self.held_until <= now
    }
}

/// Key of a cluster's lock object.
pub fn lock_key(cluster: &str) -> String {
    format!("{PREFIX}/lock/{cluster}.json")
}

/// The cluster's lock when someone holds it now (for inspect and doctor).
pub async fn current_holder(
    store: &dyn ObjectStore,
    bucket: &str,
    cluster: &str,
) -> Result<Option<Holder>, CloudError> {
    let found = store.get_object(bucket, &lock_key(cluster)).await?;
    Ok(found
        .as_ref()
        .and_then(Holder::from_object)
        .filter(|h| !h.is_free(clock::now())))
}

/// What `unlock` found and did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "lock", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Unlocked {
    /// Nobody held it.
    Free,
    /// It was held (or expired but not released) and is released now.
    Released {
        /// The holder it had.
        holder: Holder,
    },
    /// A live holder has it, and the caller did not force.
    Held {
        /// The holder.
        holder: Holder,
    },
}

/// Releases the cluster's lock for an operator (CFE's `/reset`): a lock whose lease is still
/// running is released only with `force`. Written with `If-Match`, so a run that takes the lock
/// meanwhile is not undone.
pub async fn unlock(
    store: &dyn ObjectStore,
    bucket: &str,
    cluster: &str,
    encryption: &Encryption,
    force: bool,
) -> Result<Unlocked, CloudError> {
    let key = lock_key(cluster);
    let Some(current) = store.get_object(bucket, &key).await? else {
        return Ok(Unlocked::Free);
    };
    let Some(holder) = Holder::from_object(&current) else {
        return Ok(Unlocked::Free);
    };
    if holder.body.released {
        return Ok(Unlocked::Free);
    }
    if !holder.is_free(clock::now()) && !force {
        return Ok(Unlocked::Held { holder });
    }
    let etag = current
        .etag
        .ok_or_else(|| unsettled(&key, "the store gave no ETag"))?;
    let d = draft(
        &holder.body.owner,
        holder.body.acquired_at,
        Duration::ZERO,
        true,
    );
    store
        .put_object(
            bucket,
            &key,
            d.bytes,
            encryption,
            Some(WriteCondition::IfMatch(etag)),
        )
        .await?;
    Ok(Unlocked::Released { holder })
}

/// The lease a run takes for a declared `lockLeaseSeconds`.
pub fn effective_lease(declared_seconds: u64) -> Duration {
    Duration::from_secs(declared_seconds).max(MIN_EFFECTIVE_LEASE)
}

/// Checked before each mutation: a run sends a call only while it holds the lock for at
/// least that call's worst-case time.
#[async_trait]
pub trait Fence: Send + Sync {
    /// `Ok` when the lock is ours for at least `need` from now (renewing it when less is
    /// left); `Err` with the reason otherwise.
    async fn hold_for(&self, need: Duration) -> Result<(), String>;
}

/// No fencing (dry runs and tests of the executor alone).
pub struct NoFence;

#[async_trait]
impl Fence for NoFence {
    async fn hold_for(&self, _need: Duration) -> Result<(), String> {
        Ok(())
    }
}

/// A held lease.
pub struct Lease<'a> {
    store: &'a dyn ObjectStore,
    bucket: String,
    key: String,
    owner: String,
    lease: Duration,
    encryption: Encryption,
    acquired_at: DateTime<Utc>,
    state: Mutex<LeaseState>,
}

struct LeaseState {
    etag: String,
    /// Our own bound on the lease: when the last successful write was sent, plus the lease.
    valid_until: Instant,
    /// Set once the lock is known lost: nothing is sent after that.
    lost: Option<String>,
}

/// The answer to an attempt to take the lock.
pub enum Acquire<'a> {
    /// The lock is ours.
    Held(Lease<'a>),
    /// Another run holds it.
    Busy(Holder),
}

/// One body to write, with its write id.
struct Draft {
    bytes: Vec<u8>,
    write_id: String,
    sent: Instant,
}

fn draft(owner: &str, acquired_at: DateTime<Utc>, lease: Duration, released: bool) -> Draft {
    let write_id = crate::failover::new_run_id();
    let b = LockBody {
        owner: owner.to_string(),
        acquired_at,
        expires_at: clock::now() + chrono::Duration::from_std(lease).unwrap_or_default(),
        released,
        write_id: write_id.clone(),
    };
    Draft {
        bytes: serde_json::to_vec(&b).expect("lock body"),
        write_id,
        sent: Instant::now(),
    }
}

/// How a conditional write of the lock ended, once settled.
enum Written {
    /// It took effect; the object's ETag now.
    Ours(String),
    /// Its precondition failed: the object is someone else's version (as read back).
    Refused(Option<Holder>),
}

/// Writes `d` under `condition` and settles an ambiguous answer by reading the lock back.
/// Transient failures are tried again (each a new conditional write); an outcome that stays
/// unknown is an error.
async fn write_settled(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    encryption: &Encryption,
    condition: WriteCondition,
    make: impl Fn() -> Draft,
) -> Result<Written, CloudError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let d = make();
        let err = match store
            .put_object(
                bucket,
                key,
                d.bytes.clone(),
                encryption,
                Some(condition.clone()),
            )
            .await
        {
            Ok(etag) => return Ok(Written::Ours(etag.unwrap_or_default())),
            Err(e) => e,
        };
        // Did it take effect anyway (a lost answer, or a retry that met its own write)?
        let found = store.get_object(bucket, key).await?;
        let holder = found.as_ref().and_then(Holder::from_object);
        if let (Some(o), Some(h)) = (&found, &holder) {
            if h.body.write_id == d.write_id {
                tracing::info!(key, error = %err, "lock write answered with an error but took effect");
                return Ok(Written::Ours(o.etag.clone().unwrap_or_default()));
            }
        }
        match err.kind {
            ErrorKind::PreconditionFailed => return Ok(Written::Refused(holder)),
            ErrorKind::Transient | ErrorKind::Throttled if attempt < WRITE_ATTEMPTS => {
                tracing::warn!(key, attempt, error = %err, "lock write failed; trying again");
            }
            _ => return Err(err),
        }
    }
}

/// Tries to take the cluster's lock for `owner`.
pub async fn acquire<'a>(
    store: &'a dyn ObjectStore,
    bucket: &str,
    cluster: &str,
    owner: &str,
    lease: Duration,
    encryption: &Encryption,
) -> Result<Acquire<'a>, CloudError> {
    let key = lock_key(cluster);
    let acquired_at = clock::now();
    let held = |etag: String, sent: Instant| {
        Acquire::Held(Lease {
            store,
            bucket: bucket.to_string(),
            key: key.clone(),
            owner: owner.to_string(),
            lease,
            encryption: encryption.clone(),
            acquired_at,
            state: Mutex::new(LeaseState {
                etag,
                valid_until: sent + lease,
                lost: None,
            }),
        })
    };
    let start = Instant::now();
    let take = |condition: WriteCondition| {
        write_settled(store, bucket, &key, encryption, condition, move || {
            draft(owner, acquired_at, lease, false)
        })
    };
    // Create it; or, when it exists, take it over only if its lease is over, and only the
    // version we judged.
    let mut condition = WriteCondition::IfNoneMatch;
    for _ in 0..WRITE_ATTEMPTS {
        match take(condition).await? {
            Written::Ours(etag) => return Ok(held(etag, start)),
            Written::Refused(Some(h)) if !h.is_free(clock::now()) => return Ok(Acquire::Busy(h)),
            Written::Refused(_) => {}
        }
        let Some(current) = store.get_object(bucket, &key).await? else {
            // Released by deletion between our two calls: create it.
            condition = WriteCondition::IfNoneMatch;
            continue;
        };
        match Holder::from_object(&current) {
            Some(h) if !h.is_free(clock::now()) => return Ok(Acquire::Busy(h)),
            _ => {}
        }
        let Some(etag) = current.etag else {
            return Err(unsettled(&key, "the store gave no ETag to take it over"));
        };
        condition = WriteCondition::IfMatch(etag);
    }
    Err(unsettled(&key, "it changed under every attempt"))
}

fn unsettled(key: &str, why: &str) -> CloudError {
    CloudError::new(
        "PutObject",
        ErrorKind::Transient,
        "LockUnsettled",
        format!("could not settle the cluster lock {key}: {why}; try again"),
    )
}

impl Lease<'_> {
    /// The lease this run holds.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Extends the lease; fails if the lock is no longer ours.
    pub async fn renew(&self) -> Result<(), String> {
        let mut st = self.state.lock().await;
        self.write(&mut st, false).await
    }

    /// Releases the lock (the next run takes it at once).
    pub async fn release(self) -> Result<(), String> {
        let mut st = self.state.lock().await;
        if let Some(lost) = &st.lost {
            return Err(lost.clone());
        }
        self.write(&mut st, true).await
    }

    async fn write(&self, st: &mut LeaseState, released: bool) -> Result<(), String> {
        let sent = std::sync::Mutex::new(Instant::now());
        let written = write_settled(
            self.store,
            &self.bucket,
            &self.key,
            &self.encryption,
            WriteCondition::IfMatch(st.etag.clone()),
            || {
                let d = draft(&self.owner, self.acquired_at, self.lease, released);
                *sent.lock().expect("sent") = d.sent;
                d
            },
        )
        .await;
        match written {
            Ok(Written::Ours(etag)) => {
                st.etag = etag;
                st.valid_until = *sent.lock().expect("sent") + self.lease;
                Ok(())
            }
            Ok(Written::Refused(holder)) => {
                let by = holder
                    .map(|h| format!(" by run {}", h.body.owner))
                    .unwrap_or_default();
                let reason = format!(
                    "lost the cluster lock ({} was taken over{by} after its lease ran out)",
                    self.key
                );
                st.lost = Some(reason.clone());
                Err(reason)
            }
            Err(e) => Err(format!("could not renew the cluster lock: {e}")),
        }
    }
}

#[async_trait]
impl Fence for Lease<'_> {
    async fn hold_for(&self, need: Duration) -> Result<(), String> {
        let mut st = self.state.lock().await;
        if let Some(lost) = &st.lost {
            return Err(lost.clone());
        }
        let left = |st: &LeaseState| st.valid_until.saturating_duration_since(Instant::now());
        if left(&st) >= need {
            return Ok(());
        }
        self.write(&mut st, false).await?;
        if left(&st) >= need {
            Ok(())
        } else {
            Err(format!(
                "the cluster lock's lease ({} s) cannot cover a call's worst case ({} s)",
                self.lease.as_secs(),
                need.as_secs()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{FaultTiming, MemoryCloud};

    const B: &str = "cfe-state-bigip-ha";

    async fn take<'a>(c: &'a MemoryCloud, owner: &str, secs: u64) -> Acquire<'a> {
        acquire(
            c,
            B,
            "pair",
            owner,
            Duration::from_secs(secs),
            &Encryption::None,
        )
        .await
        .unwrap()
    }

    fn held(a: Acquire<'_>) -> Lease<'_> {
        match a {
            Acquire::Held(l) => l,
            Acquire::Busy(h) => panic!("busy: held by {}", h.body.owner),
        }
    }

    fn holder(c: &MemoryCloud) -> LockBody {
        serde_json::from_slice(&c.object(B, &lock_key("pair")).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_release_frees_it() {
        let cloud = MemoryCloud::seed();
        let first = held(take(&cloud, "run-1", 60).await);
        match take(&cloud, "run-2", 60).await {
            Acquire::Busy(b) => assert_eq!(b.body.owner, "run-1"),
            Acquire::Held(_) => panic!("two holders"),
        }
        first.renew().await.unwrap();
        first.release().await.unwrap();
        assert!(matches!(take(&cloud, "run-2", 60).await, Acquire::Held(_)));
    }

    #[tokio::test]
    async fn expired_lease_is_taken_over_and_the_old_holder_is_fenced() {
        let cloud = MemoryCloud::seed();
        let old = held(take(&cloud, "crashed", 0).await);
        let new = held(take(&cloud, "run-2", 60).await);
        let err = old.hold_for(Duration::from_secs(1)).await.unwrap_err();
        assert!(err.contains("lost the cluster lock"), "{err}");
        assert!(err.contains("run-2"), "names the new holder: {err}");
        // Once lost, nothing more is tried.
        let puts = cloud.calls().len();
        assert!(old.hold_for(Duration::ZERO).await.is_err());
        assert_eq!(cloud.calls().len(), puts);
        new.hold_for(Duration::from_secs(1)).await.unwrap();
    }

    /// S3 applied the create, the answer was lost and the SDK's retry met its own write (412):
    /// the lock is this run's, not "another run's".
    #[tokio::test]
    async fn a_create_whose_answer_was_lost_is_ours() {
        for kind in [ErrorKind::PreconditionFailed, ErrorKind::Transient] {
            let cloud = MemoryCloud::seed();
            cloud.inject("PutObject", kind, FaultTiming::AfterEffect, 1);
            let lease = held(take(&cloud, "run-1", 60).await);
            assert_eq!(holder(&cloud).owner, "run-1");
            // And the lease works: renew and release with the ETag read back.
            lease.renew().await.unwrap();
            lease.release().await.unwrap();
            assert!(holder(&cloud).released, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn a_renewal_whose_answer_was_lost_is_not_a_lost_lock() {
        for kind in [ErrorKind::PreconditionFailed, ErrorKind::Transient] {
            let cloud = MemoryCloud::seed();
            let lease = held(take(&cloud, "run-1", 60).await);
            cloud.inject("PutObject", kind, FaultTiming::AfterEffect, 1);
            lease.renew().await.unwrap();
            lease.renew().await.unwrap();
            lease.release().await.unwrap();
        }
    }

    /// A takeover write that loses its answer is settled the same way.
    #[tokio::test]
    async fn a_takeover_whose_answer_was_lost_is_ours() {
        let cloud = MemoryCloud::seed();
        let _crashed = held(take(&cloud, "crashed", 0).await);
        // The takeover's first (IfNoneMatch) write fails as it should; its IfMatch write takes
        // effect and its answer is lost.
        cloud.inject(
            "PutObject",
            ErrorKind::PreconditionFailed,
            FaultTiming::BeforeEffect,
            1,
        );
        cloud.inject(
            "PutObject",
            ErrorKind::Transient,
            FaultTiming::AfterEffect,
            1,
        );
        let lease = held(take(&cloud, "run-2", 60).await);
        assert_eq!(holder(&cloud).owner, "run-2");
        lease.release().await.unwrap();
    }

    /// A write that failed without effect, where the lock cannot be read back either, is an
    /// error (the caller retries), never a success that skips the failover.
    #[tokio::test]
    async fn an_unknown_outcome_is_an_error() {
        let cloud = MemoryCloud::seed();
        cloud.inject(
            "PutObject",
            ErrorKind::Transient,
            FaultTiming::BeforeEffect,
            1,
        );
        cloud.inject(
            "GetObject",
            ErrorKind::Transient,
            FaultTiming::BeforeEffect,
            1,
        );
        let out = acquire(
            &cloud,
            B,
            "pair",
            "run-1",
            Duration::from_secs(60),
            &Encryption::None,
        )
        .await;
        let Err(e) = out else {
            panic!("an unsettled lock write must be an error")
        };
        assert_eq!(e.kind, ErrorKind::Transient);
    }

    /// A transient failure without effect is tried again.
    #[tokio::test]
    async fn a_transient_failure_is_tried_again() {
        let cloud = MemoryCloud::seed();
        cloud.inject(
            "PutObject",
            ErrorKind::Transient,
            FaultTiming::BeforeEffect,
            2,
        );
        held(take(&cloud, "run-1", 60).await);
        assert_eq!(holder(&cloud).owner, "run-1");
    }

    /// A body claiming a lease in 2099 blocks no longer than the longest lease from its write.
    #[tokio::test(start_paused = true)]
    async fn a_far_future_expiry_is_capped() {
        let cloud = MemoryCloud::seed();
        let forged = LockBody {
            owner: "skewed".into(),
            acquired_at: clock::now(),
            expires_at: "2099-01-01T00:00:00Z".parse().unwrap(),
            released: false,
            write_id: "x".into(),
        };
        cloud
            .put_object(
                B,
                &lock_key("pair"),
                serde_json::to_vec(&forged).unwrap(),
                &Encryption::None,
                None,
            )
            .await
            .unwrap();
        let h = current_holder(&cloud, B, "pair").await.unwrap().unwrap();
        assert!(h.capped);
        assert!(matches!(take(&cloud, "run-1", 60).await, Acquire::Busy(_)));
        tokio::time::sleep(Duration::from_secs(MAX_LOCK_LEASE_SECONDS + 1)).await;
        assert!(current_holder(&cloud, B, "pair").await.unwrap().is_none());
        held(take(&cloud, "run-1", 60).await);
    }

    /// The fence renews a lease that would end within the call's worst case, and only then.
    #[tokio::test(start_paused = true)]
    async fn the_fence_renews_only_when_the_lease_runs_short() {
        let cloud = MemoryCloud::seed();
        let lease = held(take(&cloud, "run-1", 60).await);
        let before = holder(&cloud).expires_at;
        lease.hold_for(Duration::from_secs(35)).await.unwrap();
        assert_eq!(holder(&cloud).expires_at, before, "60 s left: no renewal");
        tokio::time::sleep(Duration::from_secs(30)).await;
        lease.hold_for(Duration::from_secs(35)).await.unwrap();
        let after = holder(&cloud).expires_at;
        assert_eq!((after - before).num_seconds(), 30, "renewed at 30 s");
        // A need longer than the lease itself can never be met.
        let err = lease.hold_for(Duration::from_secs(61)).await.unwrap_err();
        assert!(err.contains("cannot cover"), "{err}");
    }

    #[test]
    fn short_leases_are_extended_to_cover_a_call() {
        assert_eq!(effective_lease(10), MIN_EFFECTIVE_LEASE);
        assert!(MIN_EFFECTIVE_LEASE > FENCE_NEED);
        assert_eq!(effective_lease(120), Duration::from_secs(120));
    }

    #[tokio::test]
    async fn unlock_frees_a_dead_holder_and_a_live_one_only_when_forced() {
        let cloud = MemoryCloud::seed();
        let free = unlock(&cloud, B, "pair", &Encryption::None, false)
            .await
            .unwrap();
        assert_eq!(free, Unlocked::Free);
        let live = held(take(&cloud, "run-1", 60).await);
        let out = unlock(&cloud, B, "pair", &Encryption::None, false)
            .await
            .unwrap();
        assert!(matches!(out, Unlocked::Held { .. }), "{out:?}");
        assert!(matches!(take(&cloud, "run-2", 60).await, Acquire::Busy(_)));
        let out = unlock(&cloud, B, "pair", &Encryption::None, true)
            .await
            .unwrap();
        assert!(matches!(out, Unlocked::Released { .. }), "{out:?}");
        held(take(&cloud, "run-2", 60).await);
        // The forced-out holder is fenced.
        assert!(live.renew().await.is_err());
    }
}
