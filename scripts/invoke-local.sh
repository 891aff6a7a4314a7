#!/usr/bin/env bash
# Usage: [PAIR=DIR] scripts/invoke-local.sh [EVENT_FILE...]  (default: every file in events/;
# with PAIR, its own event files)
# Runs the real failover Lambda binary under `cargo lambda watch` (a local Lambda runtime
# API) against a moto server holding the field report's topology (or PAIR's: a directory with
# profile.json and declaration.json, e.g. examples/active-active), and invokes it with each
# event file (`cargo lambda invoke --data-file`, ids rewritten to moto's). The local runtime
# passes no real function ARN, so the function's account (moto's) and region come from
# AWS_ACCOUNT_ID / AWS_REGION.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/ensure-sam.sh):$PATH"
events=("$@")
if [ ${#events[@]} -eq 0 ] && [ -n "${PAIR:-}" ]; then
  for e in "$PAIR"/*.json; do
    case $(basename "$e") in profile.json|declaration.json) ;; *) events+=("$e") ;; esac
  done
fi
[ ${#events[@]} -gt 0 ] || events=(events/*.json)
cargo build --quiet --bin cloud-failover --bin cf-lab --bin failover
cf=target/debug/cloud-failover
source scripts/moto.sh
work=$(mktemp -d)
if [ -n "${PAIR:-}" ]; then
  rewrites=(--profile "$PAIR/profile.json" --rewrite "$PAIR/declaration.json:$work/declaration.json")
  bucket=$("$MOTO_PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["topology"]["bucket"]["name"])' "$PAIR/profile.json")
else
  rewrites=(--rewrite "examples/seed-article/declaration-after.json:$work/declaration.json")
  bucket=cfe-state-bigip-ha
fi
for e in "${events[@]}"; do rewrites+=(--rewrite "$e:$work/$(basename "$e")"); done
target/debug/cf-lab up "${rewrites[@]}" >/dev/null
uri="s3://$bucket/declarations/cluster.json"
$cf declare "$work/declaration.json" --to "$uri" --output table
port=$("$MOTO_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$port" --ignore-changes \
  --env-var "DECLARATION_URI=$uri" --env-var "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL" --env-var CLOUD_FAILOVER_EMULATOR=moto \
  --env-var AWS_REGION=us-east-1 --env-var AWS_ACCOUNT_ID=123456789012 --env-var AWS_ACCESS_KEY_ID=testing --env-var AWS_SECRET_ACCESS_KEY=testing \
  --env-var AWS_EC2_METADATA_DISABLED=true >"$work/watch.log" 2>&1 &
watch_pid=$!
trap 'kill $watch_pid 2>/dev/null; wait $watch_pid 2>/dev/null; kill $MOTO_PID 2>/dev/null' EXIT
for _ in $(seq 1 300); do
  "$MOTO_PY" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.2
done
status=0
for e in "${events[@]}"; do
  echo "== cargo lambda invoke failover --data-file $e"
  # Dated when sent, as EventBridge and SNS date what they deliver (an event older than the
  # cluster's last decision is IGNORED as older news).
  target/debug/cf-lab date "$work/$(basename "$e")"
  if ! cargo lambda invoke failover --invoke-address 127.0.0.1 --invoke-port "$port" \
      --data-file "$work/$(basename "$e")" --output-format json >"$work/out.json" 2>"$work/err.txt"; then
    # FailoverDeferred is an answer, not a failure: a skip while the cloud follows the unit the
    # event reports failed (e.g. ec2-state-change.json right after the forced failback to it);
    # Lambda retries it.
    if grep -q FailoverDeferred "$work/err.txt"; then
      echo "   deferred (Lambda retries): $(tr '\n' ' ' <"$work/err.txt" | tr -s ' │' ' ' | cut -c1-200)"
    else
      echo "   error: $(tr '\n' ' ' <"$work/err.txt" | cut -c1-300)"
      status=1
    fi
    continue
  fi
  "$MOTO_PY" - "$work/out.json" <<'PY' || status=1
import json, sys
out = json.load(open(sys.argv[1]))
if "batchItemFailures" in out:
    # An SQS batch (the fleet's queue): each message's answer; a failed one is delivered again,
    # which is an answer too when it was deferred.
    for a in out["answers"]:
        print("   message", a.get("messageId"), "->", a.get("declaration"), "|", a.get("status"), "|",
              a.get("message") or a.get("reason") or a.get("errorMessage") or "")
    failed = [a for a in out["answers"] if a.get("status") == "ERROR" and a.get("errorType") != "FailoverDeferred"]
    sys.exit(1 if failed or not out["answers"] else 0)
if "answers" in out:
    # Each cluster's answer (a pair's failover groups, or a fleet's schedule).
    for a in out["answers"]:
        print("  ", a.get("declaration"), "|", a.get("status"), "|", a.get("message") or a.get("reason") or "",
              "|", [o["id"] for o in a.get("operations", [])])
    sys.exit(0 if out["answers"] and all(a.get("status") for a in out["answers"]) else 1)
ops = [o["id"] for o in out.get("operations", [])]
print("   status:", out.get("status"), "|", out.get("message") or out.get("reason") or "", "|", ops)
sys.exit(0 if out.get("status") else 1)
PY
done
rm -rf "$work"
exit $status
