//! The AZ outage (issue 15): every pair of a fleet loses its active unit at the same moment,
//! and every cluster's failover runs at once in one account, sharing its EC2 buckets. Each
//! cluster is the field report's pair in a VPC of its own (the same addressing plan), with one
//! EIP and `tables` route tables of `routes_per_table` routes each, the first being `0.0.0.0/0`.
//! This measures today's behaviour: independent runs, each pacing as if it had the account to
//! itself.

use std::net::IpAddr;
use std::time::Duration;

use failover_core::declaration::Declaration;
use failover_core::discovery::discover;
use failover_core::execute::{execute, ExecOptions, NoFence};
use failover_core::failover::{run, RunOutcome};
use failover_core::lab::{tags, BucketSpec, TableSpec, Topology, SEED_A_EXT, SEED_B_EXT, SEED_TAG};
use failover_core::memory::MemoryCloud;
use failover_core::net::Cidr;
use failover_core::plan::{plan, Plan};
use failover_core::request::{Mode as Mode_, RunRequest, TargetSpec};
use futures::future::join_all;
use futures::stream::{self, StreamExt};
use serde_json::json;
use tokio::time::Instant;

use crate::sim::{SimulatedCloud, Simulation};

/// One cluster of the fleet: its topology, declaration and what to watch.
pub struct Cluster {
    /// Its cloud resources.
    pub topology: Topology,
    /// Its declaration (`serverless.clusterName` `fleet-N`).
    pub declaration: Declaration,
    /// The standby unit (the target of the failover).
    pub standby: String,
    /// The standby's external interface (where the EIP and the routes go).
    pub standby_eni: String,
    /// Its route tables.
    pub tables: Vec<String>,
    /// Its EIP.
    pub eip: IpAddr,
}

/// An id of cluster `n`: the seed's id with its first four hex digits replaced by `n`.
fn id_of(n: usize, seed: &str) -> String {
    match seed.split_once('-') {
        Some((prefix, hex)) if hex.len() > 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            format!("{prefix}-{n:04x}{}", &hex[4..])
        }
        _ => format!("{seed}-{n}"),
    }
}

/// The destinations of each table: `0.0.0.0/0`, then /24s.
fn destinations(routes_per_table: usize) -> Vec<Cidr> {
    (0..routes_per_table)
        .map(|i| {
            if i == 0 {
                "0.0.0.0/0".to_string()
            } else {
                format!("172.{}.{}.0/24", 16 + (i - 1) / 250, (i - 1) % 250)
            }
        })
        .map(|s| s.parse().expect("a CIDR"))
        .collect()
}

/// Cluster `n` (0-based) of the fleet.
pub fn cluster(n: usize, tables: usize, routes_per_table: usize) -> Cluster {
    let label = format!("fleet-{n}");
    let scoped = |t: &failover_core::declaration::Tags| {
        let mut t = t.clone();
        t.insert(SEED_TAG.0.to_string(), label.clone());
        t
    };
    let seed = Topology::seed();
    let mut t = seed.clone();
    t.vpc_id = id_of(n, &t.vpc_id);
    for s in &mut t.subnets {
        s.id = id_of(n, &s.id);
    }
    for i in &mut t.instances {
        i.id = id_of(n, &i.id);
        for nic in &mut i.interfaces {
            nic.id = id_of(n, &nic.id);
            nic.subnet = id_of(n, &nic.subnet);
            if !nic.tags.is_empty() {
                nic.tags = scoped(&nic.tags);
            }
        }
    }
    for e in &mut t.elastic_ips {
        e.allocation_id = id_of(n, &e.allocation_id);
        e.public_ip = format!("100.64.{}.{}", n / 250, n % 250 + 1)
            .parse()
            .expect("an IP");
        e.tags = scoped(&e.tags);
        if let Some((eni, _)) = &mut e.associated_with {
            *eni = id_of(n, eni);
        }
    }
    let (a_eni, b_eni) = (id_of(n, SEED_A_EXT), id_of(n, SEED_B_EXT));
    t.route_tables = (1..=tables)
        .map(|k| TableSpec {
            id: format!("rtb-{n:04x}{k:013x}"),
            tags: tags([(SEED_TAG.0, &label)]),
            routes: destinations(routes_per_table)
                .into_iter()
                .map(|d| (d, a_eni.clone()))
                .collect(),
            subnets: Vec::new(),
        })
        .collect();
    t.bucket = BucketSpec {
        name: format!("fleet-state-{n}"),
        ..t.bucket.clone()
    };
    let ranges: Vec<_> = destinations(routes_per_table)
        .iter()
        .map(|d| json!({"range": d.to_string()}))
        .collect();
    let declaration = Declaration::from_value(&json!({
        "class": "Cloud_Failover",
        "environment": "aws",
        "externalStorage": {"scopingName": t.bucket.name},
        "failoverAddresses": {"enabled": true, "scopingTags": {SEED_TAG.0: label}},
        "failoverRoutes": {
            "enabled": true,
            "scopingTags": {SEED_TAG.0: label},
            "scopingAddressRanges": ranges,
            "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
        },
        "serverless": {"clusterName": label}
    }))
    .expect("a fleet declaration");
    Cluster {
        standby: t.instances[1].id.clone(),
        standby_eni: b_eni,
        tables: t.route_tables.iter().map(|r| r.id.clone()).collect(),
        eip: t.elastic_ips[0].public_ip,
        topology: t,
        declaration,
    }
}

/// What the outage measured (simulated seconds from the moment every run starts).
#[derive(Clone, Debug, PartialEq)]
pub struct OutageReport {
    /// Clusters.
    pub clusters: usize,
    /// Mutating operations all plans together hold (EIPs and routes).
    pub operations: usize,
    /// When the last cluster's EIP and default routes followed its standby (`None`: some
    /// cluster's never did).
    pub data_path_s: Option<f64>,
    /// Clusters whose EIP and default routes never followed the standby.
    pub data_path_missing: usize,
    /// When the last run returned.
    pub all_done_s: f64,
    /// The account's throttle bound for these mutations (the busiest action's bucket).
    pub bound_s: f64,
    /// Calls answered RequestLimitExceeded.
    pub throttled: usize,
    /// Operations not done and verified (a run that failed before its plan counts all of its
    /// cluster's operations).
    pub failed_operations: usize,
    /// Runs that ended in an error (discovery, lock or state throttled away).
    pub failed_runs: usize,
}

/// How the fleet's failovers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Today: one independent run per cluster, each pacing as if it had the account alone.
    Independent,
    /// A model of one executor for the account (one SQS-fed Lambda, concurrency 1): every
    /// cluster's plan, then all operations through one pacer, data path first across the
    /// fleet, one verify round. Locks and state writes are left out of the model (S3 has no
    /// shared EC2 budget).
    OneExecutor,
}

/// Fails `clusters` pairs over at once in one simulated account.
pub async fn az_outage(
    clusters: usize,
    tables: usize,
    routes_per_table: usize,
    cfg: Simulation,
) -> OutageReport {
    fleet_outage(Mode::Independent, clusters, tables, routes_per_table, cfg).await
}

/// Fails `clusters` pairs over at once in one simulated account, the way `mode` says.
pub async fn fleet_outage(
    mode: Mode,
    clusters: usize,
    tables: usize,
    routes_per_table: usize,
    cfg: Simulation,
) -> OutageReport {
    let fleet: Vec<Cluster> = (0..clusters)
        .map(|n| cluster(n, tables, routes_per_table))
        .collect();
    let memory = MemoryCloud::new();
    for c in &fleet {
        memory.add_topology(&c.topology);
    }
    let (burst, rate) = cfg.mutating_bucket;
    let sim = SimulatedCloud::new(memory, cfg);
    let per_cluster = 1 + tables * routes_per_table;
    let t0 = Instant::now();
    // Watch the data path from outside the account (no simulated call), every 50 ms.
    let default: Cidr = "0.0.0.0/0".parse().expect("a CIDR");
    let follows = |c: &Cluster| {
        sim.cloud
            .elastic_ip(c.eip)
            .and_then(|e| e.network_interface_id)
            .as_deref()
            == Some(c.standby_eni.as_str())
            && c.tables.iter().all(|t| {
                sim.cloud.route_target(t, default).as_deref() == Some(c.standby_eni.as_str())
            })
    };
    let watch = async {
        let mut when: Vec<Option<f64>> = vec![None; fleet.len()];
        while when.iter().any(Option::is_none) && t0.elapsed() < Duration::from_secs(600) {
            for (w, c) in when.iter_mut().zip(&fleet) {
                if w.is_none() && follows(c) {
                    *w = Some(t0.elapsed().as_secs_f64());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        when
    };
    let runs = async {
        let failed = match mode {
            Mode::Independent => independent_runs(&sim, &fleet, per_cluster).await,
            Mode::OneExecutor => one_executor(&sim, &fleet, per_cluster).await,
        };
        (failed, t0.elapsed().as_secs_f64())
    };
    let (when, ((failed_operations, failed_runs), all_done_s)) = futures::join!(watch, runs);
    let missing = when.iter().filter(|w| w.is_none()).count();
    let routes = clusters * tables * routes_per_table;
    OutageReport {
        clusters,
        operations: clusters * per_cluster,
        data_path_s: (missing == 0).then(|| when.iter().flatten().copied().fold(0.0, f64::max)),
        data_path_missing: missing,
        all_done_s,
        bound_s: ((routes as f64 - burst).max(0.0) / rate)
            .max((clusters as f64 - burst).max(0.0) / rate),
        throttled: sim.throttled_count(),
        failed_operations,
        failed_runs,
    }
}

/// Today's behaviour: every cluster's own run, all at once. Returns (failed operations,
/// failed runs).
async fn independent_runs(
    sim: &SimulatedCloud,
    fleet: &[Cluster],
    per_cluster: usize,
) -> (usize, usize) {
    let outcomes = join_all(fleet.iter().map(|c| {
        let mut req = RunRequest::new(
            TargetSpec::Instance(c.standby.clone()),
            Mode_::Execute,
            "az-outage",
        );
        req.force = true;
        run(sim, sim, &c.declaration, req)
    }))
    .await;
    let (mut failed_operations, mut failed_runs) = (0, 0);
    for o in &outcomes {
        match o {
            Ok(RunOutcome::Completed(r)) => {
                failed_operations += r.record.outcomes.iter().filter(|o| !o.verified).count();
            }
            Ok(RunOutcome::Skipped(_)) | Err(_) => {
                failed_runs += 1;
                failed_operations += per_cluster;
            }
        }
    }
    (failed_operations, failed_runs)
}

/// Clusters the one-executor model discovers at a time.
const DISCOVERIES_IN_FLIGHT: usize = 4;

/// The one-executor model: plan every cluster (discovery paced by the account's Describe
/// buckets and the SDK's retries), then one execute of all operations, data path first
/// across the fleet. Returns (failed operations, clusters not planned).
async fn one_executor(
    sim: &SimulatedCloud,
    fleet: &[Cluster],
    per_cluster: usize,
) -> (usize, usize) {
    // Discoveries a few at a time: the account's Describe* buckets are shared too.
    let plans: Vec<Option<Plan>> = stream::iter(fleet.iter().map(|c| async move {
        let snap = discover(sim, sim, &c.declaration).await.ok()?;
        plan(&c.declaration, &snap, &c.standby).ok()
    }))
    .buffered(DISCOVERIES_IN_FLIGHT)
    .collect()
    .await;
    let unplanned = plans.iter().filter(|p| p.is_none()).count();
    let mut operations: Vec<_> = plans
        .into_iter()
        .flatten()
        .flat_map(|p| p.operations)
        .collect();
    operations.sort_by_key(|o| (o.wave, !o.action.restores_traffic()));
    let merged = Plan {
        target: "fleet".into(),
        target_name: "fleet".into(),
        operations,
        in_place: Vec::new(),
        warnings: Vec::new(),
    };
    let opts = ExecOptions {
        max_concurrency: 64,
        pacing: Default::default(),
        deadline: None,
    };
    let outcomes = execute(sim, &merged, &opts, &NoFence).await;
    (
        outcomes.iter().filter(|o| !o.verified).count() + unplanned * per_cluster,
        unplanned,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_small_outage_fails_every_cluster_over() {
        // GIVEN three clusters in one account, well inside its buckets
        let r = az_outage(3, 2, 5, Simulation::default()).await;
        // THEN each cluster's data path follows its standby, nothing fails or is throttled
        assert_eq!(r.operations, 3 * 11);
        assert_eq!(
            (r.failed_runs, r.failed_operations, r.data_path_missing),
            (0, 0, 0),
            "{r:?}"
        );
        assert!(r.data_path_s.unwrap() <= r.all_done_s, "{r:?}");
        assert_eq!(r.throttled, 0, "{r:?}");
        assert_eq!(r.bound_s, 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn one_executor_for_the_account_fails_a_small_fleet_over() {
        let r = fleet_outage(Mode::OneExecutor, 3, 2, 5, Simulation::default()).await;
        assert_eq!(
            (r.failed_runs, r.failed_operations, r.data_path_missing),
            (0, 0, 0),
            "{r:?}"
        );
        assert_eq!(r.throttled, 0, "{r:?}");
    }

    #[test]
    fn clusters_share_the_addressing_plan_not_their_ids() {
        let (a, b) = (cluster(0, 2, 5), cluster(7, 2, 5));
        assert_ne!(a.topology.vpc_id, b.topology.vpc_id);
        assert_ne!(a.standby, b.standby);
        assert_ne!(a.eip, b.eip);
        assert_eq!(
            a.topology.instances[0].interfaces[1].primary,
            b.topology.instances[0].interfaces[1].primary
        );
    }
}
