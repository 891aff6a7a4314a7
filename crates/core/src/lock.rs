//! One lock per cluster in S3, taken with conditional writes: `If-None-Match: *` to create,
//! `If-Match: <etag>` to renew, release or take over an expired lease. The lease expires, so a
//! crashed holder blocks nobody for long; every renewal doubles as a fencing check (a holder
//! whose lease was taken over learns it before its next mutation round).

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::declaration::Encryption;
use crate::error::{CloudError, ErrorKind};
use crate::ports::{ObjectStore, WriteCondition};
use crate::state::PREFIX;

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
}

impl LockBody {
    /// Whether someone else may take the lock now.
    pub fn is_free(&self, now: DateTime<Utc>) -> bool {
        self.released || self.expires_at <= now
    }
}

/// Key of a cluster's lock object.
pub fn lock_key(cluster: &str) -> String {
    format!("{PREFIX}/lock/{cluster}.json")
}

/// Checked before each mutation round: fails when this run no longer holds the lock.
#[async_trait]
pub trait Fence: Send + Sync {
    /// `Ok` while the lock is still ours (renewing it); `Err` with the reason otherwise.
    async fn check(&self) -> Result<(), String>;
}

/// No fencing (dry runs and tests of the executor alone).
pub struct NoFence;

#[async_trait]
impl Fence for NoFence {
    async fn check(&self) -> Result<(), String> {
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
    etag: Mutex<String>,
    acquired_at: DateTime<Utc>,
}

/// The answer to an attempt to take the lock.
pub enum Acquire<'a> {
    /// The lock is ours.
    Held(Lease<'a>),
    /// Another run holds it.
    Busy(LockBody),
}

fn body(owner: &str, acquired_at: DateTime<Utc>, lease: Duration, released: bool) -> Vec<u8> {
    let b = LockBody {
        owner: owner.to_string(),
        acquired_at,
        expires_at: Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default(),
        released,
    };
    serde_json::to_vec(&b).expect("lock body")
}

fn precondition(e: &CloudError) -> bool {
    e.kind == ErrorKind::PreconditionFailed
}

/// Tries once to take the cluster's lock for `owner`.
pub async fn acquire<'a>(
    store: &'a dyn ObjectStore,
    bucket: &str,
    cluster: &str,
    owner: &str,
    lease: Duration,
    encryption: &Encryption,
) -> Result<Acquire<'a>, CloudError> {
    let key = lock_key(cluster);
    let now = Utc::now();
    let held = |etag: Option<String>| {
        Acquire::Held(Lease {
            store,
            bucket: bucket.to_string(),
            key: key.clone(),
            owner: owner.to_string(),
            lease,
            encryption: encryption.clone(),
            etag: Mutex::new(etag.unwrap_or_default()),
            acquired_at: now,
        })
    };
    // Our body, written only under `condition`.
    let write = |condition: WriteCondition| {
        store.put_object(
            bucket,
            &key,
            body(owner, now, lease, false),
            encryption,
            Some(condition),
        )
    };
    // A second writer that lost the race means the lock is someone else's.
    let settle = |written: Result<Option<String>, CloudError>| match written {
        Ok(etag) => Ok(held(etag)),
        Err(e) if precondition(&e) => Ok(Acquire::Busy(unknown_holder())),
        Err(e) => Err(e),
    };
    match write(WriteCondition::IfNoneMatch).await {
        Ok(etag) => return Ok(held(etag)),
        Err(e) if precondition(&e) => {}
        Err(e) => return Err(e),
    }
    // The object exists: take it over only if its lease is over, and only that version.
    let Some(current) = store.get_object(bucket, &key).await? else {
        // Released by deletion between our two calls: one more create attempt.
        return settle(write(WriteCondition::IfNoneMatch).await);
    };
    let parsed: Option<LockBody> = serde_json::from_slice(&current.body).ok();
    let free = parsed.as_ref().is_none_or(|b| b.is_free(now));
    if !free {
        return Ok(Acquire::Busy(parsed.expect("checked")));
    }
    let Some(etag) = current.etag else {
        return Ok(Acquire::Busy(parsed.unwrap_or_else(unknown_holder)));
    };
    settle(write(WriteCondition::IfMatch(etag)).await)
}

fn unknown_holder() -> LockBody {
    LockBody {
        owner: "another run".into(),
        acquired_at: Utc::now(),
        expires_at: Utc::now(),
        released: false,
    }
}

impl Lease<'_> {
    /// Extends the lease; fails if the lock is no longer ours.
    pub async fn renew(&self) -> Result<(), String> {
        self.write(false).await
    }

    /// Releases the lock (the next run takes it at once).
    pub async fn release(self) -> Result<(), String> {
        self.write(true).await
    }

    async fn write(&self, released: bool) -> Result<(), String> {
        let etag = self.etag.lock().expect("etag").clone();
        match self
            .store
            .put_object(
                &self.bucket,
                &self.key,
                body(&self.owner, self.acquired_at, self.lease, released),
                &self.encryption,
                Some(WriteCondition::IfMatch(etag)),
            )
            .await
        {
            Ok(new) => {
                *self.etag.lock().expect("etag") = new.unwrap_or_default();
                Ok(())
            }
            Err(e) if precondition(&e) => Err(format!(
                "lost the cluster lock ({} was taken over after its lease ran out)",
                self.key
            )),
            Err(e) => Err(format!("could not renew the cluster lock: {e}")),
        }
    }
}

#[async_trait]
impl Fence for Lease<'_> {
    async fn check(&self) -> Result<(), String> {
        self.renew().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryCloud;

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

    #[tokio::test]
    async fn one_holder_at_a_time_and_release_frees_it() {
        let cloud = MemoryCloud::seed();
        let Acquire::Held(first) = take(&cloud, "run-1", 60).await else {
            panic!("free lock")
        };
        match take(&cloud, "run-2", 60).await {
            Acquire::Busy(b) => assert_eq!(b.owner, "run-1"),
            Acquire::Held(_) => panic!("two holders"),
        }
        first.renew().await.unwrap();
        first.release().await.unwrap();
        assert!(matches!(take(&cloud, "run-2", 60).await, Acquire::Held(_)));
    }

    #[tokio::test]
    async fn expired_lease_is_taken_over_and_the_old_holder_is_fenced() {
        let cloud = MemoryCloud::seed();
        let Acquire::Held(old) = take(&cloud, "crashed", 0).await else {
            panic!()
        };
        let Acquire::Held(new) = take(&cloud, "run-2", 60).await else {
            panic!("expired lease")
        };
        let err = old.check().await.unwrap_err();
        assert!(err.contains("lost the cluster lock"), "{err}");
        new.check().await.unwrap();
    }
}
