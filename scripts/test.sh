#!/usr/bin/env bash
# The test command: installs what the tests need (moto[server] in .venv), then runs every
# test of the workspace. The end-to-end tests start their own moto servers on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-moto.sh >/dev/null
export AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0
cargo test --workspace "$@"
