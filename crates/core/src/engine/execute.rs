//! The executor: sends every independent mutation at once (bounded concurrency), then
//! verifies the result with one round of describes. Each operation's outcome is recorded.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use futures::try_join;
use serde::Serialize;

use crate::engine::budget::Budget;
use crate::engine::error::{CloudError, ErrorKind, LeaseError};
use crate::engine::model::{ElasticIp, Filter, NetworkInterface, RouteTable};
use crate::engine::pace::{Pacer, Pacing};
use crate::engine::plan::{Action, Operation, Plan};
use crate::engine::ports::{on_the_wire, Ec2, CALL_TIMEOUT, TIMED_OUT};

/// Time kept on the lease beyond a call's worst case: the renewal itself, and clock slack.
pub const FENCE_MARGIN: Duration = Duration::from_secs(5);

/// What a lease must cover before a mutation is sent: the call's worst case plus the margin.
pub const FENCE_NEED: Duration = CALL_TIMEOUT.saturating_add(FENCE_MARGIN);

/// Checked before each mutation: a run sends a call only while it holds the lock for at
/// least that call's worst-case time.
#[async_trait]
pub trait Fence: Send + Sync {
    /// `Ok` when the lock is ours for at least `need` from now (renewing it when less is
    /// left); `Err` with the reason otherwise.
    async fn hold_for(&self, need: Duration) -> Result<(), LeaseError>;
}

/// No fencing (dry runs and tests of the executor alone).
pub struct NoFence;

#[async_trait]
impl Fence for NoFence {
    async fn hold_for(&self, _need: Duration) -> Result<(), LeaseError> {
        Ok(())
    }
}

/// Whether an operation's API call succeeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallStatus {
    /// The call returned success.
    Succeeded,
    /// The call returned an error (it may still have taken effect; see `verified`).
    Failed,
}

/// What happened to one operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The operation's id.
    pub operation: String,
    /// Result of the API call.
    pub status: CallStatus,
    /// The error, when the call failed.
    pub error: Option<String>,
    /// Whether the verify round saw the desired state.
    pub verified: bool,
    /// Call duration in milliseconds (all attempts).
    pub millis: u64,
    /// Requests sent, the SDK's own retries included (more than one when throttled or
    /// retried after a transient error).
    pub attempts: u32,
    /// The run stopped waiting for this call (deadline or call timeout): it may still land.
    pub in_flight: bool,
    /// The call succeeded, or failed in a way that may still have taken effect (a lost
    /// answer, a 5xx, a timeout): worth re-reading until describes show it.
    #[serde(skip)]
    pub may_have_landed: bool,
}

/// Time kept back before a deadline to verify and record the outcome.
pub const DEADLINE_RESERVE: Duration = Duration::from_secs(3);

/// How many requests a throttled mutation may take in all, the SDK client's own retries
/// included (`aws::SDK_MAX_ATTEMPTS` a call): past this the executor sends it no more; below
/// it, it sends the call again after the next paced token.
pub const MAX_THROTTLE_RETRIES: u32 = 6;

/// How the executor sends.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Mutations in flight at once.
    pub max_concurrency: usize,
    /// Client-side pacing of mutations.
    pub pacing: Pacing,
    /// The caller's deadline (see `DEADLINE_RESERVE`).
    pub deadline: Option<Instant>,
    /// The executor's shared budget, when runs share the account's buckets (else a pacer of
    /// this run's own, from `pacing`).
    pub budget: Option<std::sync::Arc<Budget>>,
    /// How long the verify round keeps re-reading what it does not see yet
    /// (`serverless.verifySeconds`; see [`verify_settled`]).
    pub verify_window: Duration,
}

/// The first wait before the verify round reads again; each next wait doubles, up to
/// [`VERIFY_MAX_DELAY`].
pub const VERIFY_FIRST_DELAY: Duration = Duration::from_millis(250);

/// The longest wait between two reads of the verify round.
pub const VERIFY_MAX_DELAY: Duration = Duration::from_secs(2);

/// The waits between reads of what EC2's describes may not show yet (the verify round, a
/// run's discovery right after another run): [`VERIFY_FIRST_DELAY`], doubling up to
/// [`VERIFY_MAX_DELAY`], as long as each fits in the window.
pub struct Rereads {
    /// Tokio's clock, as the waits are tokio's sleeps (a test with paused time runs them at once).
    start: tokio::time::Instant,
    window: Duration,
    delay: Duration,
}

impl Rereads {
    /// Waits that fit in `window` from now.
    pub fn within(window: Duration) -> Rereads {
        Rereads {
            start: tokio::time::Instant::now(),
            window,
            delay: VERIFY_FIRST_DELAY,
        }
    }

    /// The next wait, if it still fits in the window.
    pub fn next_wait(&mut self) -> Option<Duration> {
        let wait = self.delay;
        if self.start.elapsed() + wait > self.window {
            return None;
        }
        self.delay = (wait * 2).min(VERIFY_MAX_DELAY);
        Some(wait)
    }
}

/// Runs `plan` wave by wave (0, 1, 2: see `Operation::wave`), then verifies. Mutations are paced by a token bucket
/// and a throttled call is retried after the next token (the bucket slowing down each time).
/// Each call is sent only while the fence holds for the call's worst case ([`CALL_TIMEOUT`],
/// enforced here, plus the lock's margin), so no call can land after the lock could pass to
/// another run; nothing is sent, and nothing awaited, past `deadline - DEADLINE_RESERVE`.
/// Never returns early: every operation gets an outcome.
pub async fn execute(
    ec2: &dyn Ec2,
    plan: &Plan,
    opts: &ExecOptions,
    fence: &dyn Fence,
) -> Vec<Outcome> {
    let stop = opts
        .deadline
        .map(|d| d.checked_sub(DEADLINE_RESERVE).unwrap_or(d));
    let own;
    let pacer = match &opts.budget {
        Some(b) => &b.pacer,
        None => {
            own = Pacer::new(opts.pacing);
            &own
        }
    };
    let max_concurrency = opts.max_concurrency;
    let total = plan.operations.len();
    let mut done = 0usize;
    let mut outcomes = Vec::with_capacity(total);
    let waves: std::collections::BTreeSet<u8> = plan.operations.iter().map(|o| o.wave).collect();
    for wave in waves {
        let ops: Vec<&Operation> = plan.operations.iter().filter(|o| o.wave == wave).collect();
        if ops.is_empty() {
            continue;
        }
        let sent = ops.len();
        let results: Vec<Outcome> = stream::iter(ops)
            .map(|op| bounded(run_one(ec2, op, pacer, fence), stop, op))
            .buffer_unordered(max_concurrency.max(1))
            .inspect(|o| {
                done += 1;
                // Per operation, below the default level: the CLI draws it as a progress bar
                // on a terminal; Lambda's logs keep one line per wave.
                let failed = o.status != CallStatus::Succeeded;
                tracing::debug!(target: "progress", done, total, wave, failed, "operation done");
            })
            .collect()
            .await;
        let ok = results
            .iter()
            .filter(|o| o.status == CallStatus::Succeeded)
            .count();
        // One line per wave for an operator watching (the CLI shows target "progress").
        tracing::info!(target: "progress", wave, operations = sent, succeeded = ok, failed = sent - ok, "wave done");
        outcomes.extend(results);
    }
    let settled = verify_settled(ec2, &plan.operations, &outcomes, opts.verify_window, stop);
    match settled.await {
        Some(Ok(ok)) => {
            for o in &mut outcomes {
                o.verified = ok.contains(&o.operation);
            }
        }
        Some(Err(e)) => {
            tracing::warn!(error = %e, "verify round failed; outcomes left unverified");
            for o in &mut outcomes {
                o.error.get_or_insert_with(|| format!("not verified: {e}"));
            }
        }
        None => {
            for o in &mut outcomes {
                o.error
                    .get_or_insert_with(|| "not verified: the deadline came first".into());
            }
        }
    }
    outcomes.sort_by(|a, b| a.operation.cmp(&b.operation));
    outcomes
}

async fn within<T>(fut: impl std::future::Future<Output = T>, stop: Option<Instant>) -> Option<T> {
    match stop {
        Some(at) => tokio::time::timeout_at(at.into(), fut).await.ok(),
        None => Some(fut.await),
    }
}

async fn bounded(
    fut: impl std::future::Future<Output = Outcome>,
    stop: Option<Instant>,
    op: &Operation,
) -> Outcome {
    within(fut, stop).await.unwrap_or_else(|| {
        let mut o = not_sent(op, "stopped waiting: the Lambda deadline is near (the call may still complete; the next run verifies)");
        o.in_flight = true;
        o
    })
}

fn not_sent(op: &Operation, reason: &str) -> Outcome {
    Outcome {
        operation: op.id.clone(),
        status: CallStatus::Failed,
        error: Some(reason.to_string()),
        verified: false,
        millis: 0,
        attempts: 0,
        in_flight: false,
        may_have_landed: false,
    }
}

async fn run_one(ec2: &dyn Ec2, op: &Operation, pacer: &Pacer, fence: &dyn Fence) -> Outcome {
    let start = Instant::now();
    let mut attempts = 0;
    let mutation = op.action.mutation();
    let action = mutation.operation();
    let result = loop {
        pacer.take(action, op.action.restores_traffic()).await;
        if let Err(reason) = fence.hold_for(FENCE_NEED).await {
            tracing::error!(operation = %op.id, %reason, "fence: not sending");
            let mut out = not_sent(op, &format!("not sent: {reason}"));
            out.attempts = attempts;
            out.millis = start.elapsed().as_millis() as u64;
            return out;
        }
        // The adapter's client may retry by itself: every request it sent counts.
        let (sent, wire) = tokio::time::timeout(CALL_TIMEOUT, on_the_wire(ec2.mutate(&mutation)))
            .await
            .unwrap_or_else(|_| (Err(timed_out(action)), 1));
        attempts += wire;
        match sent {
            Err(e) if e.kind == ErrorKind::Throttled && attempts <= MAX_THROTTLE_RETRIES => {
                pacer.throttled(action);
                tracing::warn!(operation = %op.id, attempts, rate = pacer.rate(action), "throttled: slowing down");
            }
            other => {
                if other.is_ok() {
                    pacer.succeeded(action);
                }
                break other.map(|_| ());
            }
        }
    };
    let millis = start.elapsed().as_millis() as u64;
    match &result {
        Ok(()) => tracing::info!(operation = %op.id, millis, attempts, "operation succeeded"),
        Err(e) => {
            tracing::error!(operation = %op.id, millis, attempts, error = %e, "operation failed")
        }
    }
    Outcome {
        operation: op.id.clone(),
        may_have_landed: result
            .as_ref()
            .map_or_else(|e| e.kind == ErrorKind::Transient, |_| true),
        status: if result.is_ok() {
            CallStatus::Succeeded
        } else {
            CallStatus::Failed
        },
        in_flight: result
            .as_ref()
            .is_err_and(|e| e.code.as_deref() == Some(TIMED_OUT)),
        error: result.err().map(|e| e.to_string()),
        verified: false,
        millis,
        attempts,
    }
}

fn timed_out(action: &'static str) -> CloudError {
    CloudError::new(
        action,
        ErrorKind::Transient,
        TIMED_OUT,
        format!(
            "no answer within {} s (the call may still take effect; the verify round and the next run see)",
            CALL_TIMEOUT.as_secs()
        ),
    )
}

/// Verifies `ops`, reading again with backoff ([`VERIFY_FIRST_DELAY`], doubling up to
/// [`VERIFY_MAX_DELAY`]) while an operation whose call may have landed is not visible yet, for
/// up to `window` and never past `stop` (`None`: the first read did not finish before it).
/// EC2 documents its API as eventually consistent: a describe right after a
/// mutation may still show the old state ("Eventual consistency in the Amazon EC2 API",
/// <https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html>), so one read
/// that misses a change that was answered OK does not make it unverified.
pub async fn verify_settled(
    ec2: &dyn Ec2,
    ops: &[Operation],
    outcomes: &[Outcome],
    window: Duration,
    stop: Option<Instant>,
) -> Option<Result<BTreeSet<String>, CloudError>> {
    let mut rereads = Rereads::within(window);
    let mut ok = match within(verify(ec2, ops), stop).await? {
        Ok(ok) => ok,
        Err(e) => return Some(Err(e)),
    };
    loop {
        let waiting: Vec<Operation> = ops
            .iter()
            .filter(|o| {
                !ok.contains(&o.id)
                    && outcomes
                        .iter()
                        .any(|x| x.operation == o.id && (x.may_have_landed || x.in_flight))
            })
            .cloned()
            .collect();
        if waiting.is_empty() {
            return Some(Ok(ok));
        }
        let Some(wait) = rereads
            .next_wait()
            .filter(|w| stop.is_none_or(|s| Instant::now() + *w < s))
        else {
            return Some(Ok(ok));
        };
        tracing::info!(
            operations = waiting.len(),
            wait_ms = wait.as_millis() as u64,
            "not visible yet (EC2 is eventually consistent): reading again"
        );
        tokio::time::sleep(wait).await;
        match within(verify(ec2, &waiting), stop).await {
            Some(Ok(more)) => ok.extend(more),
            // What was seen stands; the rest stays unverified.
            Some(Err(e)) => {
                tracing::warn!(error = %e, "a verify re-read failed");
                return Some(Ok(ok));
            }
            None => return Some(Ok(ok)),
        }
    }
}

/// One round of describes over everything the operations touched; returns the ids of the
/// operations whose desired state holds.
pub async fn verify(ec2: &dyn Ec2, ops: &[Operation]) -> Result<BTreeSet<String>, CloudError> {
    let mut tables = BTreeSet::new();
    let mut allocations = BTreeSet::new();
    let mut enis = BTreeSet::new();
    for op in ops {
        match &op.action {
            Action::ReplaceRoute { route_table_id, .. }
            | Action::CreateRoute { route_table_id, .. }
            | Action::SwapAssociation { route_table_id, .. } => {
                tables.insert(route_table_id.clone());
            }
            Action::AssociateAddress { allocation_id, .. } => {
                allocations.insert(allocation_id.clone());
            }
            Action::AssignPrivateIps {
                network_interface_id,
                ..
            }
            | Action::ReleasePrefix {
                network_interface_id,
                ..
            }
            | Action::AssignPrefix {
                network_interface_id,
                ..
            }
            | Action::ReleaseIpv6 {
                network_interface_id,
                ..
            }
            | Action::AssignIpv6 {
                network_interface_id,
                ..
            } => {
                enis.insert(network_interface_id.clone());
            }
        }
    }
    let (tables, eips, enis): (Vec<RouteTable>, Vec<ElasticIp>, Vec<NetworkInterface>) = try_join!(
        async {
            if tables.is_empty() {
                return Ok(Vec::new());
            }
            ec2.describe_route_tables(&[Filter::new("route-table-id", &tables)])
                .await
        },
        async {
            if allocations.is_empty() {
                return Ok(Vec::new());
            }
            ec2.describe_addresses(&[Filter::new("allocation-id", &allocations)])
                .await
        },
        async {
            if enis.is_empty() {
                return Ok(Vec::new());
            }
            ec2.describe_network_interfaces(&[Filter::new("network-interface-id", &enis)])
                .await
        },
    )?;
    Ok(ops
        .iter()
        .filter(|op| holds(&op.action, &tables, &eips, &enis) == Some(true))
        .map(|op| op.id.clone())
        .collect())
}

/// Whether `action`'s desired state holds in what was read: `None` when what it changes is
/// not among the resources read.
pub fn holds(
    action: &Action,
    tables: &[RouteTable],
    eips: &[ElasticIp],
    enis: &[NetworkInterface],
) -> Option<bool> {
    let table = |id: &str| tables.iter().find(|t| t.id == id);
    let eni = |id: &str| enis.iter().find(|n| n.id == id);
    Some(match action {
        Action::ReplaceRoute {
            route_table_id,
            destination,
            network_interface_id,
            ..
        }
        | Action::CreateRoute {
            route_table_id,
            destination,
            network_interface_id,
            ..
        } => table(route_table_id)?.routes.iter().any(|r| {
            r.destination == *destination
                && r.network_interface_id.as_deref() == Some(network_interface_id)
        }),
        Action::AssociateAddress {
            allocation_id,
            network_interface_id,
            private_ip,
            ..
        } => {
            let e = eips.iter().find(|e| e.allocation_id == *allocation_id)?;
            e.network_interface_id.as_deref() == Some(network_interface_id)
                && e.private_ip.is_none_or(|ip| ip == *private_ip)
        }
        Action::AssignPrivateIps {
            network_interface_id,
            ips,
            ..
        } => {
            let n = eni(network_interface_id)?;
            ips.iter().all(|ip| n.secondary_ips.contains(ip))
        }
        Action::ReleaseIpv6 {
            network_interface_id,
            ips,
            ..
        } => {
            let n = eni(network_interface_id)?;
            ips.iter().all(|ip| !n.ipv6_ips.contains(ip))
        }
        Action::AssignIpv6 {
            network_interface_id,
            ips,
            ..
        } => {
            let n = eni(network_interface_id)?;
            ips.iter().all(|ip| n.ipv6_ips.contains(ip))
        }
        Action::ReleasePrefix {
            network_interface_id,
            prefix,
            ..
        } => !eni(network_interface_id)?.ipv4_prefixes.contains(prefix),
        Action::AssignPrefix {
            network_interface_id,
            prefix,
            ..
        } => eni(network_interface_id)?.ipv4_prefixes.contains(prefix),
        Action::SwapAssociation {
            route_table_id,
            subnet_id,
            ..
        } => table(route_table_id)?
            .associations
            .iter()
            .any(|a| a.subnet_id.as_deref() == Some(subnet_id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::plan::Plan;
    use crate::lab::{SEED_A, SEED_A_EXT, SEED_B, SEED_RTB};
    use crate::memory::MemoryCloud;
    use crate::testing::plan::{decl, patched, plan_on, AFTER};
    use crate::testing::same_az;
    use serde_json::json;
    use std::net::IpAddr;

    fn options() -> ExecOptions {
        ExecOptions {
            max_concurrency: 4,
            pacing: Pacing {
                rate: 100.0,
                burst: 100.0,
            },
            deadline: None,
            budget: None,
            verify_window: Duration::from_secs(10),
        }
    }

    fn ids(p: &Plan) -> BTreeSet<String> {
        p.operations.iter().map(|o| o.id.clone()).collect()
    }

    /// What each action wants holds only once it is done: before, the verify read finds
    /// none of the plan in place; after, all of it; undone by hand, that one is missing.
    /// Every kind of action the seed and a same-AZ pair make (EIP, route, secondary IPv4,
    /// IPv6 release and assignment).
    #[tokio::test]
    async fn each_action_holds_only_once_done() {
        let v6: IpAddr = "2600:1f18:1:1::101".parse().unwrap();
        let same = patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                json!(["10.0.0.11", "10.0.0.12"]);
        });
        let seed = MemoryCloud::seed();
        let pair = MemoryCloud::from_topology(&same_az());
        pair.add_ipv6(SEED_A_EXT, &[v6]);
        for (cloud, d) in [(&seed, decl(AFTER)), (&pair, same)] {
            let p = plan_on(cloud, &d, SEED_B).await.unwrap();
            assert!(p.operations.len() >= 2, "{p:?}");
            cloud.settle();
            assert_eq!(verify(cloud, &p.operations).await.unwrap(), BTreeSet::new());
            let outcomes = execute(cloud, &p, &options(), &NoFence).await;
            assert!(
                outcomes
                    .iter()
                    .all(|o| o.status == CallStatus::Succeeded && o.verified),
                "{outcomes:?}"
            );
            cloud.settle();
            assert_eq!(verify(cloud, &p.operations).await.unwrap(), ids(&p));
        }
        // Undo the seed's route by hand: only the route's operation no longer holds.
        let p = plan_on(&seed, &decl(AFTER), SEED_A).await.unwrap();
        assert!(p.operations.len() >= 2, "{p:?}");
        execute(&seed, &p, &options(), &NoFence).await;
        let back = plan_on(&seed, &decl(AFTER), SEED_B).await.unwrap();
        let route = back
            .operations
            .iter()
            .find(|o| matches!(o.action, Action::ReplaceRoute { .. }))
            .unwrap();
        seed.replace_route(SEED_RTB, "0.0.0.0/0".parse().unwrap(), SEED_A_EXT)
            .await
            .unwrap();
        seed.settle();
        let held = verify(&seed, &back.operations).await.unwrap();
        assert!(!held.contains(&route.id), "{held:?}");
    }

    /// An action whose resource the read does not contain is neither held nor not held.
    #[test]
    fn an_action_on_a_resource_not_read_is_unknown() {
        let route = Action::ReplaceRoute {
            route_table_id: "rtb-0missing".into(),
            destination: "0.0.0.0/0".parse().unwrap(),
            network_interface_id: "eni-0a".into(),
            next_hop_address: "10.0.0.11".parse().unwrap(),
            current_target: "eni-0b".into(),
        };
        assert_eq!(holds(&route, &[], &[], &[]), None);
        let prefix = Action::AssignPrefix {
            network_interface_id: "eni-0missing".into(),
            prefix: "10.0.0.48/28".parse().unwrap(),
            from_network_interface_id: "eni-0a".into(),
        };
        assert_eq!(holds(&prefix, &[], &[], &[]), None);
    }

    /// The verify round's waits: 0.25 s, doubling, as long as each fits what is left of the
    /// window, and none once it is spent.
    #[tokio::test(start_paused = true)]
    async fn rereads_double_while_they_fit_the_window() {
        let mut r = Rereads::within(Duration::from_millis(1000));
        let mut waits = Vec::new();
        while let Some(w) = r.next_wait() {
            waits.push(w.as_millis());
            tokio::time::sleep(w).await;
        }
        assert_eq!(waits, [250, 500]);
        let mut capped = Rereads::within(Duration::from_secs(60));
        let first: Vec<u128> = (0..5)
            .filter_map(|_| capped.next_wait())
            .map(|w| w.as_millis())
            .collect();
        assert_eq!(first, [250, 500, 1000, 2000, 2000], "doubling up to 2 s");
        assert!(Rereads::within(Duration::from_millis(200))
            .next_wait()
            .is_none());
    }

    /// The verify round's re-reads wait for what may have landed, and only that: an
    /// operation that failed outright is not waited for (one read), one that landed but does
    /// not show yet is read again until it shows (EC2 is eventually consistent), and none is
    /// read again past `stop`.
    #[tokio::test(start_paused = true)]
    async fn the_verify_round_rereads_only_what_may_have_landed_and_only_before_the_stop() {
        use crate::engine::ports::Ec2Mutate;
        let outcome = |op: &Operation, landed: bool| Outcome {
            operation: op.id.clone(),
            status: if landed {
                CallStatus::Succeeded
            } else {
                CallStatus::Failed
            },
            error: None,
            verified: false,
            millis: 0,
            attempts: 1,
            in_flight: false,
            may_have_landed: landed,
        };
        let reads = |c: &MemoryCloud| {
            c.calls()
                .iter()
                .filter(|c| c.starts_with("Describe"))
                .count()
        };
        for (lag, stop, verified, read) in [
            // Shows at once; the route failed: one read (its tables and addresses), nothing
            // waited for.
            (Duration::ZERO, None, true, 2),
            // Shows 1 s later: read again until it does.
            (
                Duration::from_secs(1),
                Some(Duration::from_secs(10)),
                true,
                5,
            ),
            // The stop comes before the first wait would end: no second read.
            (
                Duration::from_secs(1),
                Some(Duration::from_millis(100)),
                false,
                2,
            ),
        ] {
            let cloud = MemoryCloud::seed();
            let p = plan_on(&cloud, &decl(AFTER), SEED_B).await.unwrap();
            let eip = p
                .operations
                .iter()
                .find(|o| matches!(o.action, Action::AssociateAddress { .. }))
                .unwrap();
            let route = p
                .operations
                .iter()
                .find(|o| matches!(o.action, Action::ReplaceRoute { .. }))
                .unwrap();
            cloud.set_visibility(crate::memory::Visibility::Fixed(lag));
            cloud.mutate(&eip.action.mutation()).await.unwrap();
            cloud.reset_calls();
            let outcomes = [outcome(eip, true), outcome(route, false)];
            let stop = stop.map(|d| Instant::now() + d);
            let ok = verify_settled(
                &cloud,
                &p.operations,
                &outcomes,
                Duration::from_secs(10),
                stop,
            )
            .await
            .unwrap()
            .unwrap();
            assert_eq!(ok.contains(&eip.id), verified, "lag {lag:?}, stop {stop:?}");
            assert!(!ok.contains(&route.id));
            assert_eq!(
                reads(&cloud),
                read,
                "lag {lag:?}, stop {stop:?}: {:?}",
                cloud.calls()
            );
        }
    }

    /// A prefix release holds once the interface no longer has the prefix; a swapped
    /// association once the table is the subnet's.
    #[test]
    fn prefix_releases_and_association_swaps_hold_once_done() {
        let mut n = NetworkInterface {
            id: "eni-1".into(),
            instance_id: None,
            subnet_id: "subnet-1".into(),
            vpc_id: "vpc-1".into(),
            primary_ip: "10.0.0.11".parse().unwrap(),
            secondary_ips: Vec::new(),
            ipv6_ips: Vec::new(),
            ipv4_prefixes: vec!["10.0.0.48/28".parse().unwrap()],
            public_ips: Default::default(),
            source_dest_check: false,
            tags: Default::default(),
            device_index: None,
        };
        let release = Action::ReleasePrefix {
            network_interface_id: "eni-1".into(),
            prefix: "10.0.0.48/28".parse().unwrap(),
            to_network_interface_id: "eni-2".into(),
        };
        assert_eq!(
            holds(&release, &[], &[], std::slice::from_ref(&n)),
            Some(false)
        );
        n.ipv4_prefixes.clear();
        assert_eq!(holds(&release, &[], &[], &[n]), Some(true));
        let swap = Action::SwapAssociation {
            association_id: "rtbassoc-1".into(),
            route_table_id: "rtb-b".into(),
            subnet_id: "subnet-web".into(),
            from_route_table_id: "rtb-a".into(),
        };
        let table = |subnet: &str| crate::engine::model::RouteTable {
            id: "rtb-b".into(),
            vpc_id: "vpc-1".into(),
            tags: Default::default(),
            routes: Vec::new(),
            associations: vec![crate::engine::model::Association {
                id: "rtbassoc-2".into(),
                subnet_id: Some(subnet.into()),
                main: false,
            }],
        };
        assert_eq!(holds(&swap, &[table("subnet-web")], &[], &[]), Some(true));
        assert_eq!(
            holds(&swap, &[table("subnet-other")], &[], &[]),
            Some(false)
        );
    }

    /// The first wait of a window exactly as long as it still fits.
    #[tokio::test(start_paused = true)]
    async fn a_wait_that_just_fits_the_window_is_taken() {
        assert_eq!(
            Rereads::within(VERIFY_FIRST_DELAY).next_wait(),
            Some(VERIFY_FIRST_DELAY)
        );
    }

    /// What a terminal's progress bar and an operator read: one event per operation done
    /// (`done` of `total`, whether it failed) and one line per wave (sent, succeeded,
    /// failed).
    #[tokio::test]
    async fn progress_is_told_per_operation_and_per_wave() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let cloud = MemoryCloud::seed();
        let p = plan_on(&cloud, &decl(AFTER), SEED_B).await.unwrap();
        assert_eq!(p.operations.len(), 2, "{p:?}");
        cloud.inject(
            "ReplaceRoute",
            crate::engine::error::ErrorKind::Rejected,
            crate::memory::FaultTiming::BeforeEffect,
            1,
        );
        execute(&cloud, &p, &options(), &NoFence).await;
        // And back, every call answered.
        let back = plan_on(&cloud, &decl(AFTER), SEED_A).await.unwrap();
        execute(&cloud, &back, &options(), &NoFence).await;
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let done: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("operation done"))
            .collect();
        assert_eq!(done.len(), 2 + back.operations.len(), "{text}");
        assert!(
            done[0].contains("done=1 total=2") && done[1].contains("done=2 total=2"),
            "{text}"
        );
        assert!(
            done[2].contains("done=1 total=1") && done[2].contains("failed=false"),
            "{text}"
        );
        assert_eq!(
            done.iter().filter(|l| l.contains("failed=true")).count(),
            1,
            "{text}"
        );
        assert!(
            text.lines().any(|l| l.contains("wave done") && l.contains("operations=2 succeeded=1 failed=1")),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l.contains("wave done") && l.contains("operations=1 succeeded=1 failed=0")),
            "{text}"
        );
    }
}
