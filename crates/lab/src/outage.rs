//! The AZ outage: every pair of a fleet loses its active unit at the same moment,
//! and every cluster's failover runs at once in one account, sharing its EC2 buckets. Each
//! cluster is the field report's pair in a VPC of its own (the same addressing plan), with one
//! EIP and `tables` route tables of `routes_per_table` routes each, the first being `0.0.0.0/0`.
//! This measures today's behaviour: independent runs, each pacing as if it had the account to
//! itself.

use std::time::Duration;

use failover_core::app::events::{Home, Trust};
use failover_core::app::fleet::Fleet;
use failover_core::app::handler::{handle_fleet, Invocation};
use failover_core::app::location::Location;
use failover_core::engine::answer::Status;
use failover_core::engine::declaration::Encryption;
use failover_core::engine::failover::{run, RunOutcome};
use failover_core::engine::net::Cidr;
use failover_core::engine::ports::ObjectStore;
use failover_core::engine::request::{Mode as Mode_, RunRequest, TargetSpec};
use failover_core::lab::SEED_A;
use failover_core::lab::{fleet_member, FleetMember};
use failover_core::memory::MemoryCloud;
use futures::future::join_all;
use serde_json::Value;
use tokio::time::Instant;

use crate::sim::{SimulatedCloud, Simulation};

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
    /// When each cluster's EIP and default routes followed its standby (`None`: never).
    pub data_path_at: Vec<Option<f64>>,
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
    /// The fleet's executor for the account (`handle_fleet`: one SQS-fed Lambda,
    /// concurrency 1), all alarms in one batch, its index of the fleet warm (kept between
    /// invocations).
    OneExecutor,
    /// The same, its index built at the outage (a cold executor: every cluster's members
    /// discovered first).
    OneExecutorCold,
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
    let fleet: Vec<FleetMember> = (0..clusters)
        .map(|n| fleet_member(n, tables, routes_per_table))
        .collect();
    let memory = MemoryCloud::new();
    for c in &fleet {
        memory.add_topology(&c.topology);
    }
    let (burst, rate) = cfg.mutating_bucket;
    let sim = SimulatedCloud::new(memory, cfg);
    let per_cluster = 1 + tables * routes_per_table;
    // A warm executor's index was built before (straight from the account: no budget spent).
    let mut index = fleet_index(&sim, &fleet).await;
    if mode == Mode::OneExecutor {
        index.refresh(&sim.cloud).await.expect("the fleet's index");
        index.discover_members(&sim.cloud, Duration::MAX).await;
    }
    let t0 = Instant::now();
    // Watch the data path from outside the account (no simulated call), every 50 ms.
    let default: Cidr = "0.0.0.0/0".parse().expect("a CIDR");
    let follows = |c: &FleetMember| {
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
            Mode::OneExecutor | Mode::OneExecutorCold => {
                one_executor(&sim, &fleet, per_cluster, &mut index).await
            }
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
        data_path_at: when.clone(),
        all_done_s,
        bound_s: ((routes as f64 - burst).max(0.0) / rate)
            .max((clusters as f64 - burst).max(0.0) / rate),
        throttled: sim.throttled_count(),
        failed_operations,
        failed_runs,
    }
}

/// A fleet executor's cold start: the first event after the function started, one pair's alarm
/// in a fleet of `clusters`, through the simulated account.
#[derive(Clone, Debug, PartialEq)]
pub struct ColdStart {
    /// Clusters (declarations under the prefix).
    pub clusters: usize,
    /// Simulated seconds from the event to the pair's answer.
    pub answered_s: f64,
    /// Its status.
    pub status: String,
    /// EC2 calls made (describes and mutations).
    pub ec2_calls: usize,
}

/// [`ColdStart`], measured: a cold executor (no index) handles cluster 0's alarm.
pub async fn fleet_cold_start(clusters: usize, cfg: Simulation) -> ColdStart {
    let fleet: Vec<FleetMember> = (0..clusters).map(|n| fleet_member(n, 1, 1)).collect();
    let memory = MemoryCloud::new();
    for c in &fleet {
        memory.add_topology(&c.topology);
    }
    let sim = SimulatedCloud::new(memory, cfg);
    let mut index = fleet_index(&sim, &fleet).await;
    let invocation = Invocation {
        trust: Trust::at(Home {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        }),
        ..Invocation::default()
    };
    let t0 = Instant::now();
    let answers = handle_fleet(
        &sim.ec2(),
        &sim,
        &mut index,
        &[alarm(&fleet[0])],
        invocation,
    )
    .await;
    let status = match answers.iter().flatten().next().map(|a| &a.result) {
        Some(Ok(a)) => a.status().to_string(),
        Some(Err(e)) => format!("error: {e}"),
        None => "no answer".into(),
    };
    ColdStart {
        clusters,
        answered_s: t0.elapsed().as_secs_f64(),
        status,
        ec2_calls: sim.ec2_calls(),
    }
}

/// Today's behaviour: every cluster's own run, all at once. Returns (failed operations,
/// failed runs).
async fn independent_runs(
    sim: &SimulatedCloud,
    fleet: &[FleetMember],
    per_cluster: usize,
) -> (usize, usize) {
    // Each run is its own Lambda: its own SDK client (and retry quota) on the account.
    let clients: Vec<_> = fleet.iter().map(|_| sim.client()).collect();
    let outcomes = join_all(fleet.iter().zip(&clients).map(|(c, client)| async move {
        let mut req = RunRequest::new(
            TargetSpec::Instance(c.standby.clone()),
            Mode_::Execute,
            "az-outage",
        );
        req.force = true;
        run(&client.ec2(), sim, &c.declaration, req).await
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

/// Where the fleet's declarations are put (the first cluster's state bucket).
const FLEET_PREFIX: &str = "fleet/";

/// The fleet as the executor sees it: every cluster's declaration under one prefix.
async fn fleet_index(sim: &SimulatedCloud, fleet: &[FleetMember]) -> Fleet {
    let bucket = fleet[0].topology.bucket.name.clone();
    for (n, c) in fleet.iter().enumerate() {
        sim.cloud
            .put_object(
                &bucket,
                &format!("{FLEET_PREFIX}pair-{n:03}.json"),
                c.declaration_json.to_string().into_bytes(),
                &Encryption::None,
                None,
            )
            .await
            .expect("the declaration is stored");
    }
    Fleet::new(Location::Prefix {
        bucket,
        prefix: FLEET_PREFIX.into(),
    })
}

/// Cluster `c`'s active unit (A) fails its status checks: the alarm's EventBridge event.
fn alarm(c: &FleetMember) -> Value {
    let text = failover_core::lab::fresh(include_str!("../../../events/alarm-eventbridge.json"))
        .replace(SEED_A, &c.topology.instances[0].id);
    failover_core::engine::json::parse(&text).expect("the sample event")
}

/// The executor for the account (`handle_fleet`, as the fleet's Lambda runs it): every
/// cluster's alarm in one batch. `warm`: the executor's index of the fleet (declarations and
/// members) is built before the outage, as it is kept between invocations. Returns (failed
/// operations, clusters that did not succeed).
async fn one_executor(
    sim: &SimulatedCloud,
    fleet: &[FleetMember],
    per_cluster: usize,
    index: &mut Fleet,
) -> (usize, usize) {
    let events: Vec<Value> = fleet.iter().map(alarm).collect();
    let invocation = Invocation {
        trust: Trust::at(Home {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        }),
        ..Invocation::default()
    };
    let answers = handle_fleet(&sim.ec2(), sim, index, &events, invocation).await;
    let (mut failed_operations, mut failed_runs) = (0, 0);
    for a in answers.iter().flatten() {
        match &a.result {
            Ok(answer) if answer.status() == Status::Succeeded => {
                let outcomes = &answer.report().expect("a report").record.outcomes;
                failed_operations += outcomes.iter().filter(|o| !o.verified).count();
            }
            _ => {
                failed_runs += 1;
                failed_operations += per_cluster;
            }
        }
    }
    (failed_operations, failed_runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cold executor routes one pair's alarm by what it names (the instance, then the
    /// clusters whose scoping tags its interfaces carry) instead of discovering every pair of
    /// the fleet first: 300 declarations took 14 s and 934 Describe calls before.
    #[tokio::test(start_paused = true)]
    async fn a_cold_start_acts_on_one_pairs_alarm_without_discovering_the_fleet() {
        let c = fleet_cold_start(300, Simulation::default()).await;
        assert_eq!(c.status, "SUCCEEDED", "{c:?}");
        assert!(c.answered_s < 2.0, "{c:?}");
        assert!(c.ec2_calls < 30, "{c:?}");
    }

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
        for mode in [Mode::OneExecutor, Mode::OneExecutorCold] {
            let r = fleet_outage(mode, 3, 2, 5, Simulation::default()).await;
            assert_eq!(
                (r.failed_runs, r.failed_operations, r.data_path_missing),
                (0, 0, 0),
                "{mode:?}: {r:?}"
            );
            assert_eq!(r.throttled, 0, "{mode:?}: {r:?}");
        }
    }

    /// The AZ outage, at a size a test affords: twelve clusters overdraw the account's
    /// mutation bucket when each paces alone, and share it without a throttled call through
    /// the fleet's executor, every cluster's data path before the rest.
    #[tokio::test(start_paused = true)]
    async fn the_executor_keeps_an_outage_within_the_accounts_buckets() {
        let alone = az_outage(12, 2, 5, Simulation::default()).await;
        assert!(alone.throttled > 0, "independent runs overdraw: {alone:?}");
        let fleet = fleet_outage(Mode::OneExecutor, 12, 2, 5, Simulation::default()).await;
        assert_eq!(
            (fleet.throttled, fleet.failed_operations),
            (0, 0),
            "{fleet:?}"
        );
        assert!(fleet.data_path_s.unwrap() < fleet.all_done_s, "{fleet:?}");
    }

    #[test]
    fn clusters_share_the_addressing_plan_not_their_ids() {
        let (a, b) = (fleet_member(0, 2, 5), fleet_member(7, 2, 5));
        assert_ne!(a.topology.vpc_id, b.topology.vpc_id);
        assert_ne!(a.standby, b.standby);
        assert_ne!(a.eip, b.eip);
        assert_eq!(
            a.topology.instances[0].interfaces[1].primary,
            b.topology.instances[0].interfaces[1].primary
        );
    }
}
