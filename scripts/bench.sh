#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: the simulated-EC2 failover benchmark, the release bootstrap
# sizes, init time and peak RSS of each function (local Runtime API, moto), and the drill.
# The release build of the functions takes ~20 min on 2 cores the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
tgt=${CARGO_TARGET_DIR:-target}
tools=$(bash scripts/ensure-sam.sh)
cargo build --quiet --release --bin failover-bench
PATH="$tools:$PATH" cargo lambda build --release --compiler cargo --bin failover --bin probe --bin inspect
cargo build --quiet --bin cloud-failover --bin cf-lab
cf="$tgt/debug/cloud-failover"
lab="$tgt/debug/cf-lab"
work=$(mktemp -d)
"$tgt/release/failover-bench" benchmarks.svg >"$work/sim.md"
source scripts/moto.sh
$lab up --rewrite "examples/seed-article/declaration-after.json:$work/declaration.json" \
  --rewrite "events/direct-execute.json:$work/event.json" >/dev/null
uri=s3://cfe-state-bigip-ha/declarations/cluster.json
$cf declare "$work/declaration.json" --to "$uri" >/dev/null
python3 scripts/coldstart.py "$tgt/lambda" "$cf" "$AWS_ENDPOINT_URL" "$uri" "$work/event.json" 5 >"$work/cold.md"
glibc=$(objdump -T "$tgt/lambda/failover/bootstrap" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1)
$lab drill --output table --plot drill.svg --python "$MOTO_PY" >"$work/drill.txt" 2>/dev/null
for i in 1 2 3 4 5; do $lab floor --python "$MOTO_PY" >"$work/floor$i.json"; done
floor=$(python3 - "$work" <<'PY'
import json, statistics, sys
runs = [json.load(open(f"{sys.argv[1]}/floor{i}.json")) for i in range(1, 6)]
med = lambda k: statistics.median(r[k] for r in runs)
print(f"| {med('wallMs'):.0f} ms | {med('motoBusyMs'):.0f} ms | {med('ownMs'):.0f} ms | {med('sumOfCallLatenciesMs'):.0f} ms | {runs[0]['calls']} | {runs[0]['operations']} | {runs[0]['status']} |")
PY
)
when=$(date -u +%Y-%m-%d)
{
cat <<HEAD
# Benchmarks

All figures below were made by \`make bench\` (= \`bash scripts/bench.sh\`) on $when, on this
project's build machine (2 cores, 24 GiB, x86_64). Re-run it to reproduce them.

## Failover time against a simulated, throttled EC2

\`target/release/failover-bench\`: the real engine (discovery, lock, plan, pacing, execute,
verify, state log) against the in-memory cloud simulating EC2: 100 ms + up to 50 ms latency per
EC2 call, 30 ms per S3 call, and one token bucket per API action with EC2's documented figures
(mutating actions: 50, refilled at 5 per second; AssignPrivateIpAddresses and
UnassignPrivateIpAddresses: 100 at 5; Describe*: 100 at 20 per second, 50 at 10 for
DescribeInstances, DescribeInstanceStatus and DescribeNetworkInterfaces sent unfiltered;
RequestLimitExceeded when empty), called as the SDK client calls (a throttled call sent up to
4 times, full-jitter backoff from 1 s, a retry quota of 500 tokens per client, 5 a retry).
It runs on tokio's paused clock, so the times are
**simulated seconds**, identical on any machine. Route tables hold 50 routes each (500 routes =
10 tables); EIPs move between VIP pairs. Columns:

- *engine (paced)*: the default configuration (pacing 5/s after a burst of 50, per action,
  just under the bucket; 64 calls in flight at most);
- *engine unpaced*: pacing set to 1000/s: the bucket runs dry, calls are throttled and retried
  (by the SDK client, then by the executor while fewer than 7 requests went on the wire, the
  pacer halving its rate), and some give up (*incomplete*: those operations FAILED and the
  next run would finish them);
- *concurrency 1*: the same engine sending one call at a time (sequential baseline);
- *throttle bound*: the least time any client can take, (mutations − burst) / refill, per action;
- *CFE published*: F5's figures for AWS (CFE's performance-sizing page; real AWS, with its
  fixed 5 s retries) — context, not a side-by-side measurement. F5 measured no EIP with 50,
  100, 200 and 500 routes, and 25 EIPs with 0, 25, 50 and 100 routes; a cell marked \`*\` is
  read across from the nearest size F5 measured (the 1-EIP rows from F5's no-EIP rows; 1 and
  10 routes from 50, or from 25 EIPs with 0-25 routes; 25 EIPs with 200 and 500 routes from
  the no-EIP rows), not measured by F5.

Where the paced engine is slower than F5's figures — 100 routes (11.4 s against 5 s) and 200
routes (31.8 s against 15 s) — it is the simulator's assumption, not the engine: it gives
ReplaceRoute EC2's documented default bucket (50, refilled at 5 per second), so 100 routes
cannot take less than 10 s and 200 routes less than 30 s for any client. F5 failed 100 routes
over in 5 s on real AWS, so that account's bucket for ReplaceRoute was larger or refilled
faster than the documented default (AWS adjusts buckets per account and action, and does not
publish them per action); at 500 routes F5's 90 s is the documented bound, which the paced
engine meets (1.03×).

![failover time vs routes](benchmarks.svg)

*EC2 calls / rounds*: calls sent, and sequential EC2 round trips (three discovery rounds, one
write round however far the pacer spreads it, one verify round).

HEAD
cat "$work/sim.md"
cat <<MID

The critical path is the same whatever the number of tables and EIPs: state bucket (S3), lock
(S3), one discovery of three parallel EC2 rounds (scoped resources; interfaces by address;
member instances, their interfaces and status checks) alongside the previous state (S3), the
members' lock and a listing of the pair's other members' locks (S3: a run never goes on beside
the same pair under another name or failover group set, since the failover groups: 30 ms more),
fence and RUNNING (S3), one round of mutations (paced past the burst), one verify round (EC2),
state, history and unlock (S3). About 1 s of that is fixed cost at the simulated latencies; past 50
routes per action the bucket's refill dominates, and the paced engine stays within 1.04× of the
bound at 500 routes with no throttled call.

The AZ-outage table: every pair's active unit fails at the same moment, in one
account whose EC2 buckets are shared (each action 50 / 5 per second for mutations, 100 / 20
per second for Describe*; every throttled call retried as the SDK's standard mode does, 4
attempts, each Lambda's client with its own retry quota).

- *before the fleet: independent runs*: every cluster's own failover at once, each pacing as
  if it had the account to itself (what 50 single-pair stacks in one account do). The
  buckets run dry: calls are throttled, runs give up during discovery, and some clusters'
  EIPs and default routes never reach the standby.
- *fleet: one executor*: the fleet mode's executor (\`handle_fleet\`, as the SQS-fed failover
  function of reserved concurrency 1 runs it) with every alarm in one batch. All runs share
  one budget: Describe* calls paced at the documented rate, four discoveries at a time, one
  pacer for the account's mutations in which the data path (EIPs, default routes) of every
  cluster goes before any other route, and the other routes wait until every run has
  planned. Locks, state files and history are written as in any run. *index warm*: the
  executor's index of the fleet (declarations, members) was built by earlier invocations
  (it is kept between them); *cold*: it is built first, at the outage.
- The 2 s goal for every cluster's data path is below what the documented bucket allows
  whatever the design: 50 clusters × 2 tables make 100 default routes, and ReplaceRoute's
  bucket gives 50 at once and 5 a second after, so the last default route cannot move before
  (100 − 50) / 5 = 10 s. The warm executor reaches every data path 1.1 s after that floor.
- All done: the throttle bound is ReplaceRoute's, (500 − 50) / 5 = 90 s for the fleet's 500
  routes. The warm executor ends within 1.04× of it; the cold one spends its first seconds
  finding the fleet's members (rounds one and two of each cluster's discovery, 250
  Describe* calls, five per cluster, at 20 a second), within 1.08×.
- *one cluster*: 500 routes in 10 tables, alone, its own run and through the fleet's
  executor: the same 0.70 s to its EIP and 10 default routes and the same total, so fleet
  mode costs a single failover nothing but the queue's batch window (1 s by default,
  \`FleetBatchWindowSeconds\`).

![AZ outage: clusters whose data path follows the standby over time](az-outage.svg)

## Functions: size, cold start, memory

Release build (\`cargo lambda build --release --compiler cargo\`: LTO, one codegen unit,
stripped, panic = unwind as the runtime needs), x86_64, needs $glibc (fits provided.al2023).
Init is measured from process start to the first \`GET /runtime/invocation/next\` against a
local Runtime API (\`scripts/coldstart.py\`), on this machine, not in Lambda's sandbox; the first
invocation of the failover function is one real failover (A → B) on moto; later runs converge.
The probe runs with the seed declaration, which has no \`serverless.probe\` block, so it
answers at once (FailoverRefused): its row measures start-up and memory only.

MID
cat "$work/cold.md"
cat <<TAIL

Goals: ≤ 25 MB, ≤ 30 ms init, ≤ 64 MB RSS.

Init includes reading the declaration from moto (one S3 GetObject at cold start), so moto's
speed is part of it. Before the house was rebuilt (tooling out of the functions, one
functions package, typed answers, hyper's client in the probe, the adapters' operation guard)
this table read 12.0 MB and about 5.5 ms init for the failover function, with moto busy 99 ms
in the floor below; the rebuilt functions measure 0.5-0.6 MB larger and about 10.5 ms, with
moto busy about 120 ms for the same failover in the same runs. The fleet added
the fleet queue's client (aws-sdk-sqs, made only when a queue invokes the function) to the
failover bootstrap: 0.4-0.5 MB. Every figure stays well inside its goal.

## Against moto: how close to the emulator's own floor

\`cf-lab floor\` (debug build, median of 5): moto holding the seed, the failover
handler run once on \`events/alarm-eventbridge.json\` through the real SDK, every HTTP exchange
timed by an SDK interceptor. *moto busy* is the time at least one call was in flight (moto's
own floor for this run); *own* is the rest (our code: parsing, planning, signing, JSON).

| handler wall time | moto busy | own | sum of call latencies | calls | operations | status |
|---:|---:|---:|---:|---:|---:|---|
$floor

## Drill

\`cf-lab drill\` (\`make drill\`): moto, two loopback appliances, a request every 100 ms
to whichever one the route table's next hop names (a simulated data path), the active one
killed at 2 s, the probe (200 ms interval, 2 failures to call it down) failing over:

\`\`\`
$(grep -B2 -A1 -E 'killed|no answer|probe:' "$work/drill.txt" | grep -v '^--$' | head -n 24)
$(grep 'gap without answers' "$work/drill.txt")
\`\`\`

The field report measured about 130 s without answers per failover with CFE.
TAIL
} >BENCHMARKS.md
rm -rf "$work"
echo "BENCHMARKS.md written"
