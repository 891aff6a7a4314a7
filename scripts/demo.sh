#!/usr/bin/env bash
# The field report's failover and failback, locally: moto as AWS, the seed topology, the
# working declaration, the failover Lambda's handler on the sample alarm event.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== building the CLI and the lab (the first build takes about 8 minutes on 2 cores)"
cargo build --bin cloud-failover --bin cf-lab
cf=target/debug/cloud-failover
lab=target/debug/cf-lab
source scripts/moto.sh
echo "== moto at $AWS_ENDPOINT_URL"
work=$(mktemp -d)
echo "== building the field report's topology (BIG-IP A active in us-east-1a, B standby in us-east-1b)"
$lab up \
  --rewrite "examples/seed-article/declaration-after.json:$work/declaration.json" \
  --rewrite "examples/seed-article/cfe-snat-none.json:$work/cfe-snat-none.json" \
  --rewrite "events/alarm-eventbridge.json:$work/alarm.json" \
  --rewrite "events/direct-failback.json:$work/failback.json" >"$work/ids.json"
uri="s3://cfe-state-bigip-ha/declarations/cluster.json"
$cf declare "$work/declaration.json" --to "$uri" --output table
echo; echo "== before"
$cf inspect --declaration "$uri" --output table
echo; echo "== the pitfall: VIPs as route next hops (cfe-snat-none.json): the route is left out, with the primary IP to declare (PARTIAL, exit 11)"
b=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["i-061cbb31a5158ad30"])' "$work/ids.json")
$cf plan --declaration "$work/cfe-snat-none.json" --target "$b" --output table || true
echo; echo "== alarm: BIG-IP A failed its status check (events/alarm-eventbridge.json) -> failover"
$cf invoke "$work/alarm.json" --declaration "$uri" --output table
echo; echo "== after failover"
$cf inspect --declaration "$uri" --output table
echo; echo "== f5cloudfailoverstate.json"
$cf state --declaration "$uri" --output json
echo; echo "== failback to A (events/direct-failback.json)"
$cf invoke "$work/failback.json" --declaration "$uri" --output table
echo; echo "== after failback"
$cf inspect --declaration "$uri" --output table
echo; echo "== f5cloudfailoverstate.json"
$cf state --declaration "$uri" --output json
rm -rf "$work"
echo; echo "== done; moto stops now"
