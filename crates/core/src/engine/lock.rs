//! One lock per cluster in S3, taken with conditional writes: `If-None-Match: *` to create,
//! `If-Match: <etag>` to renew, release or take over an expired lease.
//!
//! - The lease expires, so a crashed holder blocks nobody for long; and the expiry a body
//!   claims is capped at the store's own write time plus [`MAX_LOCK_LEASE_SECONDS`], so a
//!   clock-skewed or forged body ("expires in 2099") blocks nobody for longer either.
//! - A conditional write whose answer was lost, late, or 412 because an earlier attempt of
//!   ours landed first, is settled by reading the lock back: our run id as owner means one of
//!   our writes took effect. An unknown outcome is an error (retryable), never a "someone else
//!   holds it"; a lock left by an earlier attempt of the same Lambda invocation is ours to take.
//!   A 409 `ConditionalRequestConflict` (a concurrent write or delete) is settled the same way,
//!   then tried again after a short wait, as S3 asks.
//! - A run whose calls may still land (it stopped waiting for them) keeps the lock until its
//!   lease ends instead of releasing it.
//! - The lease is also the fence: before each mutation the executor asks [`crate::engine::execute::Fence::hold_for`]
//!   the call's worst-case time, and the lease is renewed when less is left. A run that cannot
//!   renew sends nothing more.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::engine::clock;
use crate::engine::declaration::{Encryption, MAX_LOCK_LEASE_SECONDS};
use crate::engine::error::{CloudError, ErrorKind, LeaseError, Lost};
use crate::engine::execute::{Fence, FENCE_NEED};
use crate::engine::keys::lock_key;
use crate::engine::ports::{ObjectStore, StoredObject, WriteCondition};

/// The shortest lease a run takes: one call's worst case, the margin, and room for ten more
/// seconds of calls between renewals. A shorter `lockLeaseSeconds` is extended to this (with a
/// warning), since a lease that cannot outlive one call cannot fence it.
pub const MIN_EFFECTIVE_LEASE: Duration = FENCE_NEED.saturating_add(Duration::from_secs(10));

/// Conditional writes tried per lock step when the store fails transiently or answers 409.
const WRITE_ATTEMPTS: u32 = 3;

/// The wait before trying again after a 409 `ConditionalRequestConflict`, times the attempt:
/// the conflicting write is one S3 request, over in well under this; three attempts wait
/// 0.3 s in all, far inside the fence's margin.
const CONFLICT_BACKOFF: Duration = Duration::from_millis(100);

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
    /// Unique per write (for diagnosis: which write of the holder is there).
    #[serde(default)]
    pub write_id: String,
    /// The Lambda request id of the holder's invocation. Lambda retries an event with the same
    /// request id only after the earlier attempt ended, so a lock with our own request id is a
    /// dead earlier attempt of this invocation, taken over at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
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

/// The cluster's lock when someone holds it now (for inspect and doctor).
pub async fn current_holder(
    store: &dyn ObjectStore,
    bucket: &str,
    cluster: &str,
) -> Result<Option<Holder>, CloudError> {
    Ok(read_lock(store, bucket, cluster).await?.held())
}

/// The lock object as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockObject {
    /// There is none.
    Absent,
    /// Its body is not a lock (the next run takes it over).
    NotALock,
    /// A lock, held or free.
    Holder(Holder),
}

impl LockObject {
    /// Its holder while it holds the lock (judged on the engine's clock, as the lock itself
    /// is: the one rule for run, inspect and doctor).
    pub fn held(self) -> Option<Holder> {
        match self {
            LockObject::Holder(h) if !h.is_free(clock::now()) => Some(h),
            _ => None,
        }
    }
}

/// Reads the cluster's lock object.
pub async fn read_lock(
    store: &dyn ObjectStore,
    bucket: &str,
    cluster: &str,
) -> Result<LockObject, CloudError> {
    let found = store.get_object(bucket, &lock_key(cluster)).await?;
    Ok(match found {
        None => LockObject::Absent,
        Some(o) => Holder::from_object(&o).map_or(LockObject::NotALock, LockObject::Holder),
    })
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
    let w = Writer {
        owner: &holder.body.owner,
        request_id: holder.body.request_id.as_deref(),
    };
    let body = draft(w, holder.body.acquired_at, Duration::ZERO, true);
    let written = store
        .put_object(
            bucket,
            &key,
            serde_json::to_vec(&body).expect("lock body"),
            encryption,
            Some(WriteCondition::IfMatch(etag)),
        )
        .await;
    match written {
        Ok(_) => Ok(Unlocked::Released { holder }),
        // Deleted since it was read (S3's 404 to If-Match): nobody holds it.
        Err(e) if e.code.as_deref() == Some("NoSuchKey") => Ok(Unlocked::Free),
        Err(e) => Err(e),
    }
}

/// The lock name of a set of members: `members@<hash of their sorted ids>` (`@` is in no
/// cluster name), and `.<group>` for one failover group's runs (a pair's groups move
/// disjoint items, so they may run at once; one group under two cluster names may not).
pub fn members_lock_name(members: &[String], group: Option<&str>) -> String {
    let mut ids: Vec<&str> = members.iter().map(String::as_str).collect();
    ids.sort_unstable();
    ids.dedup();
    // FNV-1a, 64 bits: stable across builds and processes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ids.join(",").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    match group {
        Some(g) => format!("members@{h:016x}.{g}"),
        None => format!("members@{h:016x}"),
    }
}

/// Another live members' lock of the same pair ([`members_lock_name`]) that a run of
/// `members` (for failover group `group`, if any) must not run beside: any but those of the
/// other failover groups `groups` of the run's own declaration (whose items validation keeps
/// apart). A lock of the whole pair beside a group's, or of a group the declaration does not
/// name, is the same pair under an edited declaration (groups added, removed or renamed
/// mid-run).
pub async fn other_run_on_pair(
    store: &dyn ObjectStore,
    bucket: &str,
    members: &[String],
    group: Option<&str>,
    groups: &[&str],
) -> Result<Option<(String, Holder)>, CloudError> {
    let pair = members_lock_name(members, None);
    let own = members_lock_name(members, group);
    let prefix = lock_key(&pair);
    let prefix = prefix.strip_suffix(".json").unwrap_or(&prefix);
    for key in store.list_keys(bucket, prefix).await? {
        let Some(name) = key.rsplit('/').next().and_then(|k| k.strip_suffix(".json")) else {
            continue;
        };
        let theirs = match name.strip_prefix(pair.as_str()) {
            Some("") => None,
            Some(rest) => match rest.strip_prefix('.') {
                Some(g) => Some(g),
                None => continue,
            },
            None => continue,
        };
        let sibling = group.is_some() && theirs.is_some_and(|g| groups.contains(&g));
        if name == own || sibling {
            continue;
        }
        if let Some(holder) = read_lock(store, bucket, name).await?.held() {
            return Ok(Some((name.to_string(), holder)));
        }
    }
    Ok(None)
}

/// The lease a run takes for a declared `lockLeaseSeconds`.
pub fn effective_lease(declared_seconds: u64) -> Duration {
    Duration::from_secs(declared_seconds).max(MIN_EFFECTIVE_LEASE)
}

/// A held lease.
pub struct Lease<'a> {
    store: &'a dyn ObjectStore,
    bucket: String,
    key: String,
    owner: String,
    request_id: Option<String>,
    lease: Duration,
    encryption: Encryption,
    acquired_at: DateTime<Utc>,
    /// Set when a call of this run may still land: the lock is then kept, not released.
    keep: std::sync::atomic::AtomicBool,
    state: Mutex<LeaseState>,
}

struct LeaseState {
    etag: String,
    /// Our own bound on the lease: when the last successful write was sent, plus the lease.
    valid_until: Instant,
    /// Set once the lock is known lost: nothing is sent after that.
    lost: Option<Lost>,
}

/// The answer to an attempt to take the lock.
pub enum Acquire<'a> {
    /// The lock is ours.
    Held(Lease<'a>),
    /// Another run holds it.
    Busy(Holder),
}

/// Who writes the lock: the run (owner) and its Lambda request id.
#[derive(Clone, Copy)]
struct Writer<'a> {
    owner: &'a str,
    request_id: Option<&'a str>,
}

fn draft(w: Writer<'_>, acquired_at: DateTime<Utc>, lease: Duration, released: bool) -> LockBody {
    LockBody {
        owner: w.owner.to_string(),
        acquired_at,
        expires_at: clock::now() + chrono::Duration::from_std(lease).unwrap_or_default(),
        released,
        write_id: crate::engine::request::new_run_id(),
        request_id: w.request_id.map(str::to_string),
    }
}

/// How a conditional write of the lock ended, once settled.
enum Written {
    /// One of this step's attempts took effect; the object's ETag now.
    Ours(String),
    /// Its precondition failed: the object is someone else's version (as read back).
    Refused(Option<Holder>),
    /// `If-Match` found no object (404 `NoSuchKey`): the lock was deleted.
    Gone,
}

/// Writes `make()` under `condition` and settles an ambiguous answer by reading the lock back:
/// a body of one of this step's attempts means it took effect. A body `ours` accepts from an
/// earlier write (an earlier step, or a late landing) is ours but holds only until that
/// write's lease ends: it is written over (`If-Match` its ETag). Transient failures and 409
/// conflicts are tried again (each a new conditional write); an outcome that stays unknown is
/// an error.
async fn write_settled(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    encryption: &Encryption,
    mut condition: WriteCondition,
    make: impl Fn() -> LockBody,
    ours: impl Fn(&LockBody) -> bool,
) -> Result<Written, CloudError> {
    let mut sent = Vec::new();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let body = make();
        sent.push(body.write_id.clone());
        let bytes = serde_json::to_vec(&body).expect("lock body");
        let err = match store
            .put_object(bucket, key, bytes, encryption, Some(condition.clone()))
            .await
        {
            Ok(etag) => return Ok(Written::Ours(etag.unwrap_or_default())),
            Err(e) => e,
        };
        // Did it take effect anyway (a lost or late answer)?
        let found = store.get_object(bucket, key).await?;
        let absent = found.is_none();
        let holder = found.as_ref().and_then(Holder::from_object);
        let etag = found.and_then(|o| o.etag);
        if let Some(h) = holder.as_ref().filter(|h| ours(&h.body)) {
            if sent.contains(&h.body.write_id) {
                tracing::info!(key, error = %err, "lock write answered with an error but took effect");
                return Ok(Written::Ours(etag.unwrap_or_default()));
            }
            let again = matches!(
                err.kind,
                ErrorKind::PreconditionFailed
                    | ErrorKind::Conflict
                    | ErrorKind::Transient
                    | ErrorKind::Throttled
            );
            match etag {
                Some(etag) if again && attempt < WRITE_ATTEMPTS => {
                    tracing::info!(key, error = %err, "the lock is ours from an earlier write; writing over it");
                    condition = WriteCondition::IfMatch(etag);
                    wait_after(&err, attempt).await;
                    continue;
                }
                _ if again => {
                    return Err(unsettled(
                        key,
                        &format!("it is ours from an earlier write, and this step's write did not land ({err})"),
                    ))
                }
                _ => return Err(err),
            }
        }
        match err.kind {
            ErrorKind::PreconditionFailed => return Ok(Written::Refused(holder)),
            ErrorKind::NotFound if absent && matches!(condition, WriteCondition::IfMatch(_)) => {
                return Ok(Written::Gone)
            }
            ErrorKind::Transient | ErrorKind::Throttled | ErrorKind::Conflict
                if attempt < WRITE_ATTEMPTS =>
            {
                tracing::warn!(key, attempt, error = %err, "lock write failed; trying again");
                wait_after(&err, attempt).await;
            }
            _ => return Err(err),
        }
    }
}

/// After a 409: S3 says "retry the upload", once the conflicting request is over.
async fn wait_after(err: &CloudError, attempt: u32) {
    if err.kind == ErrorKind::Conflict {
        tokio::time::sleep(CONFLICT_BACKOFF * attempt).await;
    }
}

/// Tries to take the cluster's lock for `owner` (the run id) of Lambda request `request_id`.
pub async fn acquire<'a>(
    store: &'a dyn ObjectStore,
    bucket: &str,
    cluster: &str,
    owner: &str,
    request_id: Option<&str>,
    lease: Duration,
    encryption: &Encryption,
) -> Result<Acquire<'a>, CloudError> {
    let key = lock_key(cluster);
    let acquired_at = clock::now();
    let start = Instant::now();
    let held = |etag: String| {
        Acquire::Held(Lease {
            store,
            bucket: bucket.to_string(),
            key: key.clone(),
            owner: owner.to_string(),
            request_id: request_id.map(str::to_string),
            lease,
            encryption: encryption.clone(),
            acquired_at,
            keep: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(LeaseState {
                etag,
                valid_until: start + lease,
                lost: None,
            }),
        })
    };
    let me = Writer { owner, request_id };
    let take = |condition: WriteCondition| {
        write_settled(
            store,
            bucket,
            &key,
            encryption,
            condition,
            move || draft(me, acquired_at, lease, false),
            |b| b.owner == owner && !b.released,
        )
    };
    // Someone else's live lock, unless it is an earlier attempt of this same invocation.
    let busy = |h: &Holder| {
        let same_invocation = request_id.is_some() && h.body.request_id.as_deref() == request_id;
        !h.is_free(clock::now()) && !same_invocation
    };
    // Create it; or, when it exists, take it over only if its lease is over (or it is an
    // earlier attempt of ours), and only the version we judged.
    let mut condition = WriteCondition::IfNoneMatch;
    for _ in 0..WRITE_ATTEMPTS {
        match take(condition).await? {
            Written::Ours(etag) => return Ok(held(etag)),
            Written::Refused(Some(h)) if busy(&h) => return Ok(Acquire::Busy(h)),
            Written::Refused(_) => {}
            // Deleted since it was read: free, so create it.
            Written::Gone => {
                condition = WriteCondition::IfNoneMatch;
                continue;
            }
        }
        let Some(current) = store.get_object(bucket, &key).await? else {
            // Released by deletion between our two calls: create it.
            condition = WriteCondition::IfNoneMatch;
            continue;
        };
        match Holder::from_object(&current) {
            Some(h) if h.body.owner == owner && !h.body.released => {
                return Ok(held(current.etag.unwrap_or_default()))
            }
            Some(h) if busy(&h) => return Ok(Acquire::Busy(h)),
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

    /// A call of this run may still land after the run ends: keep the lock until its lease
    /// ends (which covers that call's worst case) instead of releasing it.
    pub fn keep_until_expiry(&self) {
        self.keep.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Extends the lease; fails if the lock is no longer ours.
    pub async fn renew(&self) -> Result<(), LeaseError> {
        let mut st = self.state.lock().await;
        self.write(&mut st, false).await
    }

    /// Releases the lock (the next run takes it at once), unless it is kept.
    pub async fn release(self) -> Result<(), LeaseError> {
        let mut st = self.state.lock().await;
        if let Some(lost) = &st.lost {
            return Err(LeaseError::Lost(lost.clone()));
        }
        if self.keep.load(std::sync::atomic::Ordering::SeqCst) {
            tracing::warn!(key = %self.key, "keeping the cluster lock until its lease ends: a call of this run may still land");
            return Ok(());
        }
        self.write(&mut st, true).await
    }

    async fn write(&self, st: &mut LeaseState, released: bool) -> Result<(), LeaseError> {
        let started = Instant::now();
        let me = Writer {
            owner: &self.owner,
            request_id: self.request_id.as_deref(),
        };
        let written = write_settled(
            self.store,
            &self.bucket,
            &self.key,
            &self.encryption,
            WriteCondition::IfMatch(st.etag.clone()),
            || draft(me, self.acquired_at, self.lease, released),
            |b| b.owner == self.owner && b.released == released,
        )
        .await;
        match written {
            Ok(Written::Ours(etag)) => {
                st.etag = etag;
                // From before the first attempt: whichever of ours landed, the lease runs at
                // least this long.
                st.valid_until = started + self.lease;
                Ok(())
            }
            Ok(Written::Refused(holder)) => {
                let by = holder
                    .map(|h| format!(" by run {}", h.body.owner))
                    .unwrap_or_default();
                let lost = Lost::TakenOver {
                    key: self.key.clone(),
                    by,
                };
                st.lost = Some(lost.clone());
                Err(LeaseError::Lost(lost))
            }
            Ok(Written::Gone) => {
                let lost = Lost::Deleted {
                    key: self.key.clone(),
                };
                st.lost = Some(lost.clone());
                Err(LeaseError::Lost(lost))
            }
            Err(e) => Err(LeaseError::Unwritten(e)),
        }
    }
}

#[async_trait]
impl Fence for Lease<'_> {
    async fn hold_for(&self, need: Duration) -> Result<(), LeaseError> {
        let mut st = self.state.lock().await;
        if let Some(lost) = &st.lost {
            return Err(LeaseError::Lost(lost.clone()));
        }
        let left = |st: &LeaseState| st.valid_until.saturating_duration_since(Instant::now());
        if left(&st) >= need {
            return Ok(());
        }
        self.write(&mut st, false).await?;
        if left(&st) >= need {
            Ok(())
        } else {
            Err(LeaseError::TooShort {
                lease_s: self.lease.as_secs(),
                need_s: need.as_secs(),
            })
        }
    }
}

/// For tests elsewhere: another run (`owner`) holds the seed bucket's `default` cluster lock
/// for `lease`.
#[cfg(test)]
pub(crate) async fn held_by<'a>(
    store: &'a dyn ObjectStore,
    owner: &str,
    lease: Duration,
) -> Lease<'a> {
    let taken = acquire(
        store,
        "cfe-state-bigip-ha",
        crate::engine::declaration::DEFAULT_CLUSTER,
        owner,
        None,
        lease,
        &Encryption::None,
    )
    .await
    .expect("lock write");
    match taken {
        Acquire::Held(l) => l,
        Acquire::Busy(h) => panic!("the lock is {}'s", h.body.owner),
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
            None,
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
        let err = old
            .hold_for(Duration::from_secs(1))
            .await
            .unwrap_err()
            .to_string();
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
            None,
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

    /// Amazon S3 User Guide, "How to prevent object overwrites with conditional writes"
    /// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html) and the
    /// PutObject API reference (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html):
    /// a conditional write that meets a conflicting operation fails with 409
    /// `ConditionalRequestConflict`, "retry the upload". Not a refusal, nor someone else's lock.
    #[tokio::test(start_paused = true)]
    async fn a_conflicting_write_is_tried_again() {
        // GIVEN S3 answers the create with 409 once
        let cloud = MemoryCloud::seed();
        cloud.inject(
            "PutObject",
            ErrorKind::Conflict,
            FaultTiming::BeforeEffect,
            1,
        );
        // WHEN a run takes the lock THEN it is taken on the next attempt
        let lease = held(take(&cloud, "run-1", 60).await);
        assert_eq!(holder(&cloud).owner, "run-1");
        // GIVEN a renewal answered with 409 twice WHEN renewing THEN the third attempt renews
        cloud.inject(
            "PutObject",
            ErrorKind::Conflict,
            FaultTiming::BeforeEffect,
            2,
        );
        lease.renew().await.unwrap();
        // GIVEN conflicts on every attempt WHEN renewing THEN an error, but the lock is not lost
        cloud.inject(
            "PutObject",
            ErrorKind::Conflict,
            FaultTiming::BeforeEffect,
            WRITE_ATTEMPTS,
        );
        let err = lease.renew().await.unwrap_err().to_string();
        assert!(err.contains("could not renew"), "{err}");
        assert!(err.contains("ConditionalRequestConflict"), "{err}");
        lease.renew().await.unwrap();
        lease.release().await.unwrap();
        assert!(holder(&cloud).released);
    }

    /// A renewal that failed without effect finds the lock still ours (its previous write):
    /// that is no renewal, so the lease is written again rather than counted as extended.
    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_did_not_land_is_written_again() {
        // GIVEN a lease 30 s old, and a renewal whose first write fails before any effect
        let cloud = MemoryCloud::seed();
        let lease = held(take(&cloud, "run-1", 60).await);
        let before = holder(&cloud).expires_at;
        tokio::time::sleep(Duration::from_secs(30)).await;
        for kind in [ErrorKind::Transient, ErrorKind::Conflict] {
            cloud.inject("PutObject", kind, FaultTiming::BeforeEffect, 1);
            // WHEN renewing
            lease.renew().await.unwrap();
        }
        // THEN the lock object itself holds 30 s longer, as the fence believes
        assert!(
            (holder(&cloud).expires_at - before).num_seconds() >= 30,
            "the renewal must have landed"
        );
    }

    /// Amazon S3 User Guide, "How to prevent object overwrites with conditional writes"
    /// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html):
    /// `If-Match` on a key with no object answers 404 `NoSuchKey`. A renewal whose lock object
    /// was deleted has lost the lock (nobody took it over), and says so.
    #[tokio::test]
    async fn a_renewal_of_a_deleted_lock_is_a_lost_lock() {
        // GIVEN a held lease whose object an operator deleted
        let cloud = MemoryCloud::seed();
        let lease = held(take(&cloud, "run-1", 60).await);
        cloud.remove_object(B, &lock_key("pair"));
        // WHEN the fence renews it
        let err = lease
            .hold_for(Duration::from_secs(3600))
            .await
            .unwrap_err()
            .to_string();
        // THEN the lock is lost, as deleted, and nothing more is sent
        assert!(err.contains("lost the cluster lock"), "{err}");
        assert!(err.contains("deleted"), "{err}");
        assert!(!err.contains("taken over"), "{err}");
        let calls = cloud.calls().len();
        assert!(lease.hold_for(Duration::ZERO).await.is_err());
        assert_eq!(cloud.calls().len(), calls);
    }

    /// The same rule on a takeover: the expired lock deleted between its read and the
    /// `If-Match` write (404 `NoSuchKey`) leaves the lock free, and it is created.
    #[tokio::test(start_paused = true)]
    async fn a_takeover_of_a_lock_deleted_meanwhile_creates_it() {
        // GIVEN an expired lock, and writes that take a second each
        let cloud = MemoryCloud::seed();
        let _crashed = held(take(&cloud, "crashed", 0).await);
        cloud.delay("PutObject", Duration::from_secs(1));
        // WHEN run-2 takes it over while the lock is deleted between its read (t = 1 s) and
        // its If-Match write (t = 2 s)
        let (taken, ()) = tokio::join!(take(&cloud, "run-2", 60), async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            cloud.remove_object(B, &lock_key("pair"));
        });
        // THEN run-2 holds it
        held(taken);
        assert_eq!(holder(&cloud).owner, "run-2");
    }

    /// The same rule on an operator's unlock: a lock deleted between its read and the
    /// release's `If-Match` write (404 `NoSuchKey`) is free, not an error.
    #[tokio::test(start_paused = true)]
    async fn an_unlock_of_a_lock_deleted_meanwhile_finds_it_free() {
        let cloud = MemoryCloud::seed();
        let _dead = held(take(&cloud, "crashed", 0).await);
        cloud.delay("PutObject", Duration::from_secs(1));
        let (out, ()) = tokio::join!(unlock(&cloud, B, "pair", &Encryption::None, false), async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            cloud.remove_object(B, &lock_key("pair"));
        });
        assert_eq!(out.unwrap(), Unlocked::Free);
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
            request_id: None,
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
        let err = lease
            .hold_for(Duration::from_secs(61))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot cover"), "{err}");
    }

    /// The cap on a lease is the longest one from the object's write: a body asking for
    /// exactly that is not capped, one second more is.
    #[test]
    fn a_lease_at_the_cap_is_not_capped_and_one_beyond_it_is() {
        let written: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let cap = written + chrono::Duration::seconds(MAX_LOCK_LEASE_SECONDS as i64);
        let object = |expires_at| StoredObject {
            body: serde_json::to_vec(&LockBody {
                owner: "run-1".into(),
                acquired_at: written,
                expires_at,
                released: false,
                write_id: "w".into(),
                request_id: None,
            })
            .unwrap(),
            etag: Some("e".into()),
            last_modified: Some(written),
        };
        let at_cap = Holder::from_object(&object(cap)).unwrap();
        assert!(!at_cap.capped);
        assert_eq!(at_cap.held_until, cap);
        let beyond = Holder::from_object(&object(cap + chrono::Duration::seconds(1))).unwrap();
        assert!(beyond.capped);
        assert_eq!(beyond.held_until, cap);
    }

    /// An unlock whose write fails for another reason than a deleted lock is an error (the
    /// lock may still be held), never "free".
    #[tokio::test]
    async fn an_unlock_that_cannot_write_is_an_error_not_free() {
        let cloud = MemoryCloud::seed();
        let _dead = held(take(&cloud, "crashed", 0).await);
        cloud.inject(
            "PutObject",
            ErrorKind::Rejected,
            FaultTiming::BeforeEffect,
            1,
        );
        let out = unlock(&cloud, B, "pair", &Encryption::None, false).await;
        assert_eq!(out.unwrap_err().kind, ErrorKind::Rejected);
        assert_eq!(holder(&cloud).owner, "crashed");
    }

    /// The members' lock name: the same for the same members in any order or repeated,
    /// another for other members, and stable across builds (FNV-1a of the sorted ids).
    #[test]
    fn the_members_lock_name_is_the_sorted_members_hash() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let name = members_lock_name(&ids(&["i-0b", "i-0a"]), None);
        assert_eq!(name, "members@c5ff7736db29b7a8");
        assert_eq!(
            members_lock_name(&ids(&["i-0a", "i-0b", "i-0a"]), None),
            name
        );
        assert_ne!(members_lock_name(&ids(&["i-0a", "i-0c"]), None), name);
        let group = members_lock_name(&ids(&["i-0a", "i-0b"]), Some("tg1"));
        assert_eq!(group, format!("{name}.tg1"));
    }

    /// A renewal whose every attempt fails, the lock still ours from the previous write: an
    /// unsettled lock (try again), naming why; a refusal that retrying cannot fix is the
    /// store's own error.
    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_never_lands_says_so_and_a_refusal_is_the_stores_error() {
        let cloud = MemoryCloud::seed();
        let lease = held(take(&cloud, "run-1", 60).await);
        cloud.inject(
            "PutObject",
            ErrorKind::Transient,
            FaultTiming::BeforeEffect,
            WRITE_ATTEMPTS,
        );
        let err = lease.renew().await.unwrap_err().to_string();
        assert!(err.contains("did not land"), "{err}");
        cloud.inject(
            "PutObject",
            ErrorKind::Rejected,
            FaultTiming::BeforeEffect,
            1,
        );
        let err = lease.renew().await.unwrap_err().to_string();
        assert!(!err.contains("did not land"), "{err}");
        assert!(err.contains("could not renew"), "{err}");
        lease.renew().await.unwrap();
    }

    /// A create answered 404 (the bucket is gone) is an error, not a free lock to retry, and
    /// transient failures are tried `WRITE_ATTEMPTS` times, no more.
    #[tokio::test(start_paused = true)]
    async fn a_create_answered_not_found_is_an_error_and_retries_are_bounded() {
        let cloud = MemoryCloud::seed();
        let try_take = || {
            acquire(
                &cloud,
                B,
                "pair",
                "run-1",
                None,
                Duration::from_secs(60),
                &Encryption::None,
            )
        };
        cloud.inject(
            "PutObject",
            ErrorKind::NotFound,
            FaultTiming::BeforeEffect,
            1,
        );
        assert_eq!(try_take().await.err().unwrap().kind, ErrorKind::NotFound);
        cloud.clear_faults();
        let puts = |c: &MemoryCloud| c.calls().iter().filter(|c| *c == "PutObject").count();
        let before = puts(&cloud);
        cloud.inject(
            "PutObject",
            ErrorKind::Transient,
            FaultTiming::BeforeEffect,
            WRITE_ATTEMPTS,
        );
        assert_eq!(try_take().await.err().unwrap().kind, ErrorKind::Transient);
        assert_eq!(puts(&cloud) - before, WRITE_ATTEMPTS as usize);
        cloud.clear_faults();
        held(try_take().await.unwrap());
    }

    /// After a 409 the write waits `CONFLICT_BACKOFF` times the attempt (S3: retry once the
    /// conflicting request is over); after a 503 it does not wait.
    #[tokio::test(start_paused = true)]
    async fn only_a_conflict_waits_before_the_next_attempt() {
        let cloud = MemoryCloud::seed();
        cloud.inject(
            "PutObject",
            ErrorKind::Conflict,
            FaultTiming::BeforeEffect,
            2,
        );
        let start = tokio::time::Instant::now();
        let lease = held(take(&cloud, "run-1", 60).await);
        assert_eq!(start.elapsed(), CONFLICT_BACKOFF * 3);
        lease.release().await.unwrap();
        cloud.inject(
            "PutObject",
            ErrorKind::Transient,
            FaultTiming::BeforeEffect,
            2,
        );
        let start = tokio::time::Instant::now();
        held(take(&cloud, "run-2", 60).await);
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    /// A fresh lease covers its whole length: the fence sends nothing for a need within it;
    /// a busy lock costs one write and one read; a lease kept until expiry is not released.
    #[tokio::test(start_paused = true)]
    async fn a_fresh_lease_needs_no_renewal_and_a_kept_one_is_not_released() {
        let cloud = MemoryCloud::seed();
        let lease = held(take(&cloud, "run-1", 60).await);
        assert_eq!(lease.lease(), Duration::from_secs(60));
        let calls = cloud.calls().len();
        lease.hold_for(Duration::from_secs(59)).await.unwrap();
        assert_eq!(cloud.calls().len(), calls, "{:?}", &cloud.calls()[calls..]);
        assert!(matches!(take(&cloud, "run-2", 60).await, Acquire::Busy(_)));
        assert_eq!(cloud.calls()[calls..], ["PutObject", "GetObject"]);
        lease.keep_until_expiry();
        lease.release().await.unwrap();
        assert!(!holder(&cloud).released, "kept: a call may still land");
    }

    /// Someone takes an expired lock over between this run's refused create and its read of
    /// the lock: this run finds it busy, and never writes over a live lock.
    #[tokio::test(start_paused = true)]
    async fn a_lock_taken_over_meanwhile_is_busy_not_overwritten() {
        let cloud = MemoryCloud::seed();
        let _crashed = held(take(&cloud, "crashed", 0).await);
        cloud.delay("GetObject", Duration::from_secs(1));
        let (taken, ()) = tokio::join!(take(&cloud, "run-2", 60), async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let body = LockBody {
                owner: "run-3".into(),
                acquired_at: clock::now(),
                expires_at: clock::now() + chrono::Duration::seconds(60),
                released: false,
                write_id: "run-3-w".into(),
                request_id: None,
            };
            let bytes = serde_json::to_vec(&body).unwrap();
            let key = lock_key("pair");
            let put = cloud.put_object(B, &key, bytes, &Encryption::None, None);
            put.await.unwrap();
        });
        match taken {
            Acquire::Busy(h) => assert_eq!(h.body.owner, "run-3"),
            Acquire::Held(_) => panic!("wrote over run-3's live lock"),
        }
        assert_eq!(holder(&cloud).owner, "run-3");
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

    /// Found by an adversarial review: an earlier attempt of this run landed after its answer
    /// was given up on, so the next attempt met our own write (412): still ours, on acquire
    /// and on renewal, whatever write id is there.
    #[tokio::test]
    async fn our_own_earlier_write_counts_as_ours() {
        let cloud = MemoryCloud::seed();
        let lease = held(take(&cloud, "run-1", 60).await);
        // A second take by the same run (a retried step) finds its own live lock.
        held(take(&cloud, "run-1", 60).await);
        // Our earlier renewal lands late: the object has our owner and another ETag.
        let mut body = holder(&cloud);
        body.write_id = "late".into();
        cloud
            .put_object(
                B,
                &lock_key("pair"),
                serde_json::to_vec(&body).unwrap(),
                &Encryption::None,
                None,
            )
            .await
            .unwrap();
        lease.renew().await.unwrap();
        lease.release().await.unwrap();
        assert!(holder(&cloud).released);
    }

    /// A lock left by an earlier attempt of the same Lambda invocation (same request id) is
    /// taken over at once; anyone else's is not.
    #[tokio::test]
    async fn an_earlier_attempt_of_the_same_invocation_is_taken_over() {
        let cloud = MemoryCloud::seed();
        let take_as = |owner: &'static str, request: Option<&'static str>| {
            acquire(
                &cloud,
                B,
                "pair",
                owner,
                request,
                Duration::from_secs(60),
                &Encryption::None,
            )
        };
        let Acquire::Held(_dead) = take_as("attempt-1", Some("req-1")).await.unwrap() else {
            panic!("free")
        };
        assert!(matches!(
            take_as("other", Some("req-2")).await.unwrap(),
            Acquire::Busy(_)
        ));
        assert!(matches!(
            take_as("cli", None).await.unwrap(),
            Acquire::Busy(_)
        ));
        let Acquire::Held(_retry) = take_as("attempt-2", Some("req-1")).await.unwrap() else {
            panic!("the retry of the same invocation must take it over")
        };
        assert_eq!(holder(&cloud).owner, "attempt-2");
    }
}
