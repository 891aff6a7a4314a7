#!/usr/bin/env bash
# Mutation testing of the engine with cargo-mutants (installed into ~/.cargo/bin if missing):
# each mutant of a file is tested against the unit tests of its module (`engine::lock` for
# crates/core/src/engine/lock.rs, `engine::state` for engine/state/cfe.rs) and of the modules
# that test it through their own paths (TESTED_BY below), so a survivor names a rule no test
# beside it holds.
#
#   scripts/mutants.sh                 the engine's files changed since main (git diff)
#   scripts/mutants.sh --all           every file of the engine set below
#   scripts/mutants.sh FILE...         those files
#   scripts/mutants.sh --again [FILE…] each file's (those files') survivors of the last run (target/mutants/*/
#                                      mutants.out/missed.txt), re-tested against the tree as it
#                                      is now; the totals count the last run's caught ones too
#                                      (a mutant's name holds its line: only valid while the
#                                      file's code, not its tests, is unchanged; checked)
#
# Prints caught / missed / timeout / unviable per file and the total; the figure quoted in
# the README ("Mutation testing") is (caught + timeout) / (caught + missed + timeout): a mutant
# that hangs the tests (30 s) is caught by their timeout. "Unit tests" are the core crate's
# `--lib` tests: a module's own and those of TESTED_BY, which include whole-path tests on the
# in-memory cloud (the handler's, doctor's); SKIP names the two left out. Runs in place on a scratch copy of the
# tree (a git worktree under target/, with the uncommitted changes), so the working tree is
# never mutated.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ENGINE=(
  crates/core/src/engine/plan.rs crates/core/src/engine/plan
  crates/core/src/engine/lock.rs crates/core/src/engine/execute.rs
  crates/core/src/engine/failover.rs crates/core/src/engine/discovery.rs
  crates/core/src/engine/state crates/core/src/engine/pace.rs
  crates/core/src/app/events crates/core/src/app/fleet.rs
)
if ! command -v cargo-mutants >/dev/null 2>&1; then
  echo "installing cargo-mutants (once) ..." >&2
  cargo install --locked --quiet cargo-mutants
fi
files=()
again=
case "${1:-}" in
  --again) again=1
           shift
           for d in target/mutants/*/mutants.out; do
             case "$d" in *-again/*) continue ;; esac
             [ -s "$d/missed.txt" ] || continue
             f=$(head -1 "$d/missed.txt" | cut -d: -f1)
             # Only the files named, when some are.
             if [ $# -eq 0 ] || printf '%s\n' "$@" | grep -qxF "$f"; then files+=("$f"); fi
           done ;;
  --all) for p in "${ENGINE[@]}"; do [ -e "$p" ] && files+=($(find "$p" -name '*.rs' | sort)); done ;;
  "") base=$(git merge-base HEAD main 2>/dev/null || git rev-list --max-parents=0 HEAD)
      for f in $(git diff --name-only "$base" -- 'crates/core/src/*.rs'); do
        for p in "${ENGINE[@]}"; do case "$f" in "$p"|"$p"/*) [ -e "$f" ] && files+=("$f") ;; esac; done
      done ;;
  *) files=("$@") ;;
esac
if [ ${#files[@]} -eq 0 ]; then
  echo "no engine file changed since main: nothing to mutate (--all for every one)"
  exit 0
fi
# The module of a file's tests: crates/core/src/engine/state/cfe.rs -> engine::state (its
# layer and the module under it).
module() {
  local m=${1#crates/core/src/}
  m=${m%.rs}; m=${m%/mod}
  m=${m//\//::}
  echo "$m" | cut -d: -f1-3
}
# Modules whose tests exercise another's code through their own path (libtest takes several
# filters after cargo test's `--`).
declare -A TESTED_BY=(
  [engine::execute]="engine::failover"
  [engine::pace]="engine::execute engine::failover"
  [engine::state]="engine::failover"
  [engine::discovery]="engine::plan engine::failover app::inspect ops::doctor"
  [app::fleet]="app::handler ops::doctor"
  [app::events]="app::handler"
)
# The fault-injection fuzz (1,000 generated runs, a minute or more here) is the suite's, not a
# unit test's: every mutant would wait for it.
SKIP=(--skip faults_then_one_run_converges
      # Events dated seconds apart, waited for in real time (the cooldown is wall-clock).
      --skip events_are_ordered_by_their_own_time_and_must_be_fresh)
# Its own worktree (MUTANTS_SCRATCH: another, for a second run beside this one; give it its
# own MUTANTS_TARGET_DIR too, or the two trees share build artifacts).
scratch="${MUTANTS_SCRATCH:-$root/target/mutants-tree}"
git worktree remove --force "$scratch" >/dev/null 2>&1 || true
git worktree add --quiet --detach "$scratch" HEAD
# Uncommitted changes are part of what is tested.
git diff HEAD | (cd "$scratch" && git apply --allow-empty 2>/dev/null || true)
# What is measured: this commit and the uncommitted changes' hash (recorded with each run).
measured="$(git rev-parse HEAD) $(git diff HEAD | sha1sum | cut -c1-12)"
trap 'git worktree remove --force "$scratch" >/dev/null 2>&1 || true' EXIT
# Its own target dir: a tree at another path sharing one would pass cargo's freshness checks
# with the other tree's artifacts (the first run builds the dependencies once, ~8 min).
export CARGO_TARGET_DIR="${MUTANTS_TARGET_DIR:-$root/target/mutants-build}"
total_c=0 total_m=0 total_t=0 total_u=0
out="$root/target/mutants"
mkdir -p "$out"
for f in "${files[@]}"; do
  name=$(module "$f")
  tag=$(basename "${f%.rs}")
  first="$out/${name//::/-}-$tag/mutants.out"
  select=()
  run="$out/${name//::/-}-$tag"
  if [ -n "$again" ]; then
    # Exactly the last run's survivors, by name; each must still be a mutant of the file.
    re=$(python3 -c 'import re,sys; print("^(" + "|".join(re.escape(l.strip()) for l in open(sys.argv[1]) if l.strip()) + ")$")' "$first/missed.txt")
    listed=$(cd "$scratch" && cargo mutants --list -f "$f" -F "$re" 2>/dev/null | grep -c . || true)
    # (More matches than names: two mutants may share a name.)
    if [ "$listed" -lt "$(grep -c . "$first/missed.txt")" ]; then
      echo "$f: its code changed since the last run ($listed of its survivors are still mutants): run it again whole" >&2
      exit 1
    fi
    select=(-F "$re")
    run="$run-again"
  fi
  # shellcheck disable=SC2086 # the filters are words
  status=0
  (cd "$scratch" && cargo mutants --in-place --no-shuffle -f "$f" "${select[@]}" --test-package failover-core \
      --timeout 30 --build-timeout 240 \
      --output "$run" -- --lib -- "$name" ${TESTED_BY[$name]:-} "${SKIP[@]}" >/dev/null 2>&1) || status=$?
  # cargo-mutants: 0 all caught, 2 some missed, 3 some hung; anything else (4: the tests fail
  # unmutated, a build error) measured nothing.
  case $status in 0|2|3) ;; *) echo "$f: cargo mutants exited $status: not measured (see $run/mutants.out/debug.log)" >&2; exit 1 ;; esac
  # What was measured, and on what: the commit, and the uncommitted changes' hash.
  echo "$measured" >"$run/tree"
  dir="$run/mutants.out"
  count() { if [ -s "$1/$2.txt" ]; then grep -c . "$1/$2.txt"; else echo 0; fi; }
  c=$(count "$dir" caught) m=$(count "$dir" missed) t=$(count "$dir" timeout) u=$(count "$dir" unviable)
  if [ -n "$again" ]; then
    # A survivor the re-run did not get to stays missed.
    left=$(( $(count "$first" missed) - c - m - t - u ))
    [ "$left" -gt 0 ] && m=$((m + left))
    c=$((c + $(count "$first" caught))) t=$((t + $(count "$first" timeout))) u=$(count "$first" unviable)
  fi
  printf '%-36s caught %4d  missed %3d  timeout %2d  unviable %3d\n' "$f" "$c" "$m" "$t" "$u"
  [ "$m" -gt 0 ] && sed 's/^/    missed: /' "$dir/missed.txt"
  total_c=$((total_c + c)) total_m=$((total_m + m)) total_t=$((total_t + t)) total_u=$((total_u + u))
done
viable=$((total_c + total_m + total_t))
pct=$(python3 -c "print(f'{100 * ($total_c + $total_t) / max($viable, 1):.1f}')")
echo "mutants: $((total_c + total_t)) caught of $viable viable ($pct %: $total_c failed a test, $total_t hung it), $total_m missed, $total_u unviable"
