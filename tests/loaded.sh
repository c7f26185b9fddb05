#!/usr/bin/env bash
# Runs the whole `cargo test --workspace` RUNS times in a row (default 5) while BUSY busy loops
# (default: one per core) keep every core otherwise busy, to find tests that fail by timing.
# Not part of CI (it takes several times the suite's time); run it after changing tests:
#
#   bash tests/loaded.sh            # 5 runs, one busy loop per core
#   RUNS=2 BUSY=4 bash tests/loaded.sh
#
# The tests are built first (unloaded), so the runs measure the tests, not the compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-5}"
busy="${BUSY:-$(nproc)}"
bash tests/with-postgres.sh cargo test --workspace --locked --no-run >/dev/null 2>&1

pids=()
stop() { [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq "$busy"); do
  # A busy loop at normal priority: the tests share every core with it.
  ( while :; do :; done ) &
  pids+=("$!")
done
echo "loaded: $busy busy loops on $(nproc) cores"

failed=0
for i in $(seq "$runs"); do
  start=$(date +%s)
  log="target/loaded-run-$i.log"
  if bash tests/with-postgres.sh cargo test --workspace --locked --no-fail-fast >"$log" 2>&1; then
    result=passed
  else
    result=FAILED
    failed=$((failed + 1))
    grep -E '^test .* FAILED|^---- ' "$log" | sort -u || true
  fi
  passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
  echo "run $i: $result in $(( $(date +%s) - start )) s ($passed tests passed; log $log)"
done
echo "$((runs - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
