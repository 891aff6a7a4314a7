#!/usr/bin/env bash
# Makes sure .venv/bin/python has moto[server] (the local AWS emulator), installing it from
# PyPI into a project-local virtualenv when missing. Prints the interpreter path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
if ! "$venv/bin/python" -c 'import moto.server' >/dev/null 2>&1; then
  echo "installing moto[server] into $venv ..." >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.2,<6' >&2
fi
echo "$venv/bin/python"
