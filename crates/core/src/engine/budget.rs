//! What the concurrent runs of one executor share (the fleet: one executor for the account):
//! EC2's request buckets are the account's, per action, so the runs pace their mutations
//! through one [`Pacer`] (data path first across the fleet), their Describe* calls through
//! another, and discover a few clusters at a time.

use async_trait::async_trait;

use crate::engine::error::CloudError;
use crate::engine::pace::{Pacer, Pacing};
use crate::engine::ports::{BeforeCall, Ec2Describe, Ec2Mutate, Hooked};

/// Discoveries one executor runs at once.
pub const DISCOVERIES_IN_FLIGHT: usize = 4;

/// EC2's documented bucket of each non-mutating action: 100, refilled at 20 per second.
pub const DESCRIBE_PACING: Pacing = Pacing {
    rate: 20.0,
    burst: 100.0,
};

/// The account's budget, shared by an executor's runs.
#[derive(Debug)]
pub struct Budget {
    /// The mutation buckets (runs hold it back until they have planned: see `Pacer::hold`).
    pub pacer: Pacer,
    describes: Pacer,
    discoveries: tokio::sync::Semaphore,
}

impl Budget {
    /// A budget pacing mutations at `pacing` (the most cautious of the clusters'
    /// declarations) and Describe* calls at [`DESCRIBE_PACING`].
    pub fn new(pacing: Pacing) -> Budget {
        Budget {
            pacer: Pacer::new(pacing),
            describes: Pacer::new(DESCRIBE_PACING),
            discoveries: tokio::sync::Semaphore::new(DISCOVERIES_IN_FLIGHT),
        }
    }

    /// Waits for a turn to discover (held until dropped).
    pub async fn discovery(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.discoveries
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// `ec2` with its Describe* calls paced by this budget (mutations are paced by the
    /// executor, through [`Budget::pacer`]).
    pub fn ec2<'a, E: Ec2Describe + Ec2Mutate + ?Sized>(
        &'a self,
        ec2: &'a E,
    ) -> Hooked<'a, E, Budget> {
        Hooked { ec2, hook: self }
    }
}

#[async_trait]
impl BeforeCall for Budget {
    async fn before(&self, operation: &'static str) -> Result<(), CloudError> {
        if operation.starts_with("Describe") {
            // Urgent: no run holds the describe buckets back.
            self.describes.take(operation, true).await;
        }
        Ok(())
    }
}
