#!/usr/bin/env bash
# Fuzzes declaration and event parsing for SECONDS each (default 60); not part of CI.
# Seeds come from examples/, events/ and the bad-input corpus. Uses cargo-fuzz on the stable
# toolchain (RUSTC_BOOTSTRAP lets it pass its -Z flags).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
export RUSTC_BOOTSTRAP=1
for target in declaration event; do
  seeds=fuzz/corpus/$target
  mkdir -p "$seeds"
  if [ "$target" = declaration ]; then
    cp examples/seed-article/declaration-*.json examples/seed-article/cfe-snat-none.json tests/corpus/declarations/*.json "$seeds"/
  else
    cp events/*.json tests/corpus/events/*.json "$seeds"/
  fi
  echo "== fuzzing $target for ${secs}s"
  (cd fuzz && cargo fuzz run "$target" -- -max_total_time="$secs" 2>&1) | tee "fuzz/$target.log" | grep -E "^#[0-9]+ *DONE|Done [0-9]+ runs|ERROR|panicked" || true
  tail -n 3 "fuzz/$target.log"
done
