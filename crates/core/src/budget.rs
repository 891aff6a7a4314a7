//! What the concurrent runs of one executor share (the fleet: one executor for the account):
//! EC2's request buckets are the account's, per action, so the runs pace their mutations
//! through one [`Pacer`] (data path first across the fleet), their Describe* calls through
//! another, and discover a few clusters at a time.

use std::net::IpAddr;

use async_trait::async_trait;

use crate::error::CloudError;
use crate::model::{ElasticIp, Filter, Instance, NetworkInterface, RouteTable};
use crate::net::Cidr;
use crate::pace::{Pacer, Pacing};
use crate::ports::{DryRun, Ec2Describe, Ec2Mutate, Mutation};

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
    pub fn ec2<'a, E: Ec2Describe + Ec2Mutate + ?Sized>(&'a self, ec2: &'a E) -> Budgeted<'a, E> {
        Budgeted { ec2, budget: self }
    }
}

/// An EC2 port whose Describe* calls wait for the budget's tokens.
pub struct Budgeted<'a, E: ?Sized> {
    ec2: &'a E,
    budget: &'a Budget,
}

impl<E: ?Sized> Budgeted<'_, E> {
    async fn turn(&self, action: &'static str) {
        // Urgent: no run holds the describe buckets back.
        self.budget.describes.take(action, true).await;
    }
}

#[async_trait]
impl<E: Ec2Describe + ?Sized> Ec2Describe for Budgeted<'_, E> {
    async fn describe_instances(&self, filters: &[Filter]) -> Result<Vec<Instance>, CloudError> {
        self.turn("DescribeInstances").await;
        self.ec2.describe_instances(filters).await
    }

    async fn describe_network_interfaces(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<NetworkInterface>, CloudError> {
        self.turn("DescribeNetworkInterfaces").await;
        self.ec2.describe_network_interfaces(filters).await
    }

    async fn describe_route_tables(
        &self,
        filters: &[Filter],
    ) -> Result<Vec<RouteTable>, CloudError> {
        self.turn("DescribeRouteTables").await;
        self.ec2.describe_route_tables(filters).await
    }

    async fn describe_addresses(&self, filters: &[Filter]) -> Result<Vec<ElasticIp>, CloudError> {
        self.turn("DescribeAddresses").await;
        self.ec2.describe_addresses(filters).await
    }

    async fn impaired_instances(&self, instance_ids: &[String]) -> Result<Vec<String>, CloudError> {
        self.turn("DescribeInstanceStatus").await;
        self.ec2.impaired_instances(instance_ids).await
    }
}

#[async_trait]
impl<E: Ec2Mutate + ?Sized> Ec2Mutate for Budgeted<'_, E> {
    async fn dry_run(&self, m: &Mutation) -> Result<DryRun, CloudError> {
        self.ec2.dry_run(m).await
    }

    async fn associate_address(
        &self,
        allocation_id: &str,
        network_interface_id: &str,
        private_ip: IpAddr,
    ) -> Result<String, CloudError> {
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
        self.ec2
            .create_route(route_table_id, destination, network_interface_id)
            .await
    }

    async fn replace_route_table_association(
        &self,
        association_id: &str,
        route_table_id: &str,
    ) -> Result<String, CloudError> {
        self.ec2
            .replace_route_table_association(association_id, route_table_id)
            .await
    }

    async fn assign_ipv4_prefixes(
        &self,
        network_interface_id: &str,
        prefixes: &[Cidr],
    ) -> Result<(), CloudError> {
        self.ec2
            .assign_ipv4_prefixes(network_interface_id, prefixes)
            .await
    }

    async fn unassign_ipv4_prefixes(
        &self,
        network_interface_id: &str,
        prefixes: &[Cidr],
    ) -> Result<(), CloudError> {
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
        self.ec2
            .assign_private_ips(network_interface_id, ips, allow_reassignment)
            .await
    }
}
