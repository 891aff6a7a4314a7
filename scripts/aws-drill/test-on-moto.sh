#!/usr/bin/env bash
# The aws-drill kit (make aws-drill) without AWS: its unit tests (the measurement over real
# HTTP on loopback, the client's command lines, the report), then its steps against moto's
# CloudFormation, EC2 and S3 with the traffic simulated (docs/aws-drill.md, "Tested without
# AWS"): a whole run, a run interrupted with SIGINT (it tears down), and a run killed with
# SIGKILL (kit.py cleanup deletes what it left). Needs the CLI and the failover bootstrap:
# CLOUD_FAILOVER_BIN / FAILOVER_BOOTSTRAP, else cargo builds them (debug).
set -euo pipefail
cd "$(dirname "$0")/../.."
py=$(scripts/ensure-moto.sh)
if [ -n "${CLOUD_FAILOVER_BIN:-}" ] && [ -n "${FAILOVER_BOOTSTRAP:-}" ]; then
  cli=$CLOUD_FAILOVER_BIN bootstrap=$FAILOVER_BOOTSTRAP
else
  cargo build --quiet --bin cloud-failover --bin failover
  cli=target/debug/cloud-failover bootstrap=target/debug/failover
fi
export AWS_DRILL_STATE_DIR
AWS_DRILL_STATE_DIR=$(mktemp -d)
kit=(env PYTHONUNBUFFERED=1 "$py" scripts/aws-drill/kit.py)

echo "== aws-drill: unit tests"
"$py" -W ignore::ResourceWarning -m unittest discover -s scripts/aws-drill -p 'test_*.py'

source scripts/moto.sh
work=$(mktemp -d)
cleanup_work() { rm -rf "$work" "$AWS_DRILL_STATE_DIR"; }
trap 'cleanup_work; kill $MOTO_PID 2>/dev/null; wait $MOTO_PID 2>/dev/null' EXIT
run_args=(run --endpoint-url "$AWS_ENDPOINT_URL" --cli "$cli" --bootstrap "$bootstrap" --timeout 30 --ready-timeout 60)

echo "== aws-drill on moto: a whole run"
"${kit[@]}" "${run_args[@]}" --plot "$work/aws-drill.svg" --json "$work/aws-drill.json" | tee "$work/run.log"
"$py" - "$work/aws-drill.json" "$work/aws-drill.svg" <<'PY'
import json, sys, xml.etree.ElementTree as ET
r = json.load(open(sys.argv[1]))
ET.parse(sys.argv[2])
for name, g in r["gaps"].items():
    assert g["nextAnswer"] and g["nextAnswer"]["by"] == "unit B", (name, g)
    assert g["lastAnswer"] is None or g["lastAnswer"]["by"] == "unit A", (name, g)
    assert g["gapMs"] is not None and g["gapMs"] < 30000, (name, g)
events = [e[1] for e in r["events"]]
for want in ("EventBridge: EC2 state change", "failover function answered SUCCEEDED", "history: run",
             "API: EIP on unit B", "API: route 0.0.0.0/0 to unit B"):
    assert any(want in e for e in events), (want, events)
print("checked: both paths answered from unit B after the stop; the function's run is in the history; the plot is SVG")
PY
grep -q "teardown done: nothing of run" "$work/run.log"

echo "== aws-drill on moto: interrupted (SIGINT) once the lab exists: it tears down"
"${kit[@]}" "${run_args[@]}" --run-id int001 --plot "$work/x.svg" --json "$work/x.json" >"$work/int.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q "lab ready" "$work/int.log" && break; sleep 0.1; done
kill -INT "$pid"
wait "$pid" || true
cat "$work/int.log"
grep -q "interrupted (SIGINT): tearing down" "$work/int.log"
grep -q "teardown done: nothing of run int001 is left" "$work/int.log"

echo "== aws-drill on moto: killed (SIGKILL) mid-run, then kit.py cleanup"
setsid "${kit[@]}" "${run_args[@]}" --run-id kil001 --plot "$work/y.svg" --json "$work/y.json" >"$work/kill.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q "waiting until both paths answer from unit A" "$work/kill.log" && break; sleep 0.1; done
kill -KILL -- "-$pid"   # the kit and what it started (the local failover bootstrap)
wait "$pid" 2>/dev/null || true
"${kit[@]}" cleanup --endpoint-url "$AWS_ENDPOINT_URL" | tee "$work/clean.log"
grep -q "cleaning up run kil001" "$work/clean.log"
"${kit[@]}" cleanup --endpoint-url "$AWS_ENDPOINT_URL" | tee "$work/clean2.log"
grep -q "nothing of aws-drill left" "$work/clean2.log"
echo "aws-drill on moto: ok"
