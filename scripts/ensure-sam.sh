#!/usr/bin/env bash
# Makes sure .venv-sam has the AWS SAM CLI, cfn-lint and cargo-lambda (all from PyPI);
# prints its bin folder.
# Kept apart from .venv (moto) so their pinned dependencies never clash.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-sam"
if ! "$venv/bin/sam" --version >/dev/null 2>&1 || ! "$venv/bin/cfn-lint" --version >/dev/null 2>&1 \
  || ! "$venv/bin/cargo-lambda" lambda --version >/dev/null 2>&1; then
  echo "installing aws-sam-cli, cfn-lint and cargo-lambda into $venv ..." >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check aws-sam-cli cfn-lint cargo-lambda >&2
fi
echo "$venv/bin"
