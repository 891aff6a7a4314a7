#!/usr/bin/env bash
# Usage: source scripts/moto.sh  — starts a moto server on a free loopback port, exports
# AWS_ENDPOINT_URL / AWS_REGION / dummy credentials and CLOUD_FAILOVER_EMULATOR=moto (the
# engine's moto shims are on only when said so), and stops it when the shell exits.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MOTO_PY=$("$root/scripts/ensure-moto.sh")
MOTO_PORT=$("$MOTO_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$MOTO_PY" -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"${TMPDIR:-/tmp}/moto-$MOTO_PORT.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null; wait $MOTO_PID 2>/dev/null' EXIT
for _ in $(seq 1 300); do
  if "$MOTO_PY" -c "import socket; socket.create_connection(('127.0.0.1', $MOTO_PORT), 1)" 2>/dev/null; then break; fi
  sleep 0.1
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
export CLOUD_FAILOVER_EMULATOR=moto
