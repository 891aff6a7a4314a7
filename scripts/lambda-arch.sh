#!/usr/bin/env bash
# Usage: scripts/lambda-arch.sh [--fresh] [ARCH]
# Prints "ARCH COMPILER": the Lambda architecture to build and deploy (the template's
# Architecture: arm64 or x86_64) and the cargo-lambda compiler that builds it on this machine
# (cargo: natively; cargo-zigbuild: cross-compiled with zig, which cargo-lambda's PyPI package
# brings into .venv-sam). Exits 1 with what to install when this machine cannot build ARCH.
#
# Without ARCH: the architecture samconfig.toml deploys (the one `sam deploy --guided` saved),
# else arm64 (Graviton, about 20% cheaper per GB-s) when this machine builds it, else x86_64.
# With ARCH: that one, refused when samconfig.toml deploys the other (the functions would get
# binaries of the wrong architecture). --fresh ignores samconfig.toml (a new stack: aws-drill).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fresh=false
if [ "${1:-}" = --fresh ]; then fresh=true; shift; fi
requested=${1:-}
case "$requested" in ""|arm64|x86_64) ;; aarch64) requested=arm64 ;; amd64) requested=x86_64 ;;
  *) echo "lambda-arch: unknown architecture '$requested' (arm64 or x86_64)" >&2; exit 2 ;; esac

saved=""
if ! $fresh && [ -f "$root/samconfig.toml" ]; then
  saved=$(grep -v -E '^[[:space:]]*#' "$root/samconfig.toml" \
    | grep -o -E 'Architecture=[\\"]*(arm64|x86_64)' | head -n1 | grep -o -E 'arm64|x86_64' || true)
  if [ -z "$saved" ]; then
    # A plain `sam deploy` would keep the stack's previous Architecture whatever is built.
    echo "lambda-arch: samconfig.toml records no Architecture: add Architecture=\"arm64\" or \"x86_64\" (the stack's) to its parameter_overrides, or move it away for a guided deploy" >&2
    exit 1
  fi
fi

os=$(uname -s)
host=$(uname -m)
case "$host" in aarch64|arm64) host=arm64 ;; x86_64|amd64) host=x86_64 ;; esac
rust_target() { case "$1" in arm64) echo aarch64-unknown-linux-gnu ;; x86_64) echo x86_64-unknown-linux-gnu ;; esac; }
has_target() {
  local sysroot
  sysroot=$(rustc --print sysroot 2>/dev/null) || return 1
  [ -d "$sysroot/lib/rustlib/$(rust_target "$1")" ]
}
has_zig() {
  command -v zig >/dev/null 2>&1 && return 0
  [ -n "${CARGO_ZIGBUILD_ZIG_PATH:-}" ] && return 0
  "$root/.venv-sam/bin/python" -c 'import ziglang' >/dev/null 2>&1
}
# The compiler that builds $1 here, or nothing.
compiler_for() {
  if [ "$os" = Linux ] && [ "$host" = "$1" ]; then echo cargo; return; fi
  if has_target "$1" && has_zig; then echo cargo-zigbuild; fi
}
how_to() {
  local t
  t=$(rust_target "$1")
  echo "this machine ($os $(uname -m)) cannot build the $1 Lambda binaries:" >&2
  if ! has_target "$1"; then echo "  rustup target add $t" >&2; fi
  if ! has_zig; then echo "  bash scripts/ensure-sam.sh   (cargo-lambda brings zig, from PyPI, into .venv-sam)" >&2; fi
  echo "  (or build on a Linux $1 machine; or ARCH=$([ "$1" = arm64 ] && echo x86_64 || echo arm64) if this machine builds that)" >&2
}

arch=$requested
if [ -z "$arch" ]; then
  if [ -n "$saved" ]; then arch=$saved
  elif [ -n "$(compiler_for arm64)" ]; then arch=arm64
  else arch=x86_64
  fi
fi
if [ -n "$saved" ] && [ "$saved" != "$arch" ]; then
  echo "samconfig.toml deploys Architecture=$saved, not $arch: build $saved (ARCH=$saved), or change" >&2
  echo "Architecture in samconfig.toml's parameter_overrides (or run sam deploy --guided again)" >&2
  exit 1
fi
compiler=$(compiler_for "$arch")
if [ -z "$compiler" ]; then how_to "$arch"; exit 1; fi
echo "$arch $compiler"
