#!/usr/bin/env bash
# The test command: installs what the tests need (moto[server] in .venv), then runs every
# test of the workspace. The end-to-end tests start their own moto servers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-moto.sh >/dev/null
export AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
log=$(mktemp)
# Tests that could not run (moto missing, outside CI) leave a file here: counted as skipped.
export CF_TEST_SKIPS=$(mktemp -d)
trap 'rm -rf "$log" "$CF_TEST_SKIPS"' EXIT
set +e
cargo test --workspace "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
skipped=$(find "$CF_TEST_SKIPS" -type f | wc -l)
# One closing line for the whole run (cargo prints one summary per test binary).
awk -v s="$skipped" '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { if (s > 0) printf "tests: %d passed, %d skipped, %d failed\n", p - s, s, f; else printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
