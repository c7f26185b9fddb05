#!/usr/bin/env bash
# The benchmark (docs/performance.md): builds the release binaries, installs the peer gateways
# (bench/peers.sh; a peer that cannot be installed is skipped with its reason), then runs
# switchyard-bench pinned to CPU 0 with the data plane, operator and peers on CPU 1. Prints one
# table and writes bench/results/<date>-<sha>.json and bench/results/latest.json.
#
#   bash bench/run.sh                 # full run, a few minutes
#   bash bench/run.sh --smoke         # seconds: tiny durations, no peers, results not written
#   bash bench/run.sh --smoke --debug # the same on debug binaries
# (`cargo test` runs the same smoke run: bench/tests/smoke.rs.)
#   bash bench/run.sh -- --seconds 2  # extra switchyard-bench flags after --
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
profile=release
extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --smoke) smoke=1; shift ;;
    --debug) profile=debug; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

if ! command -v taskset >/dev/null; then
  echo "taskset (util-linux) is required" >&2; exit 1
fi
if [[ $(nproc) -lt 2 ]]; then
  echo "needs at least 2 CPUs (data plane on one, load generator and mock on the other)" >&2; exit 1
fi

echo "== building $profile binaries" >&2
build_flags=(--locked)
[[ $profile == release ]] && build_flags+=(--release)
cargo build "${build_flags[@]}" -p switchyard-mock -p switchyard-dataplane -p switchyard-operator \
  -p switchyard-bench --bin switchyard-mock-upstream --bin switchyard-dataplane \
  --bin switchyard-operator --bin switchyard-bench --bin switchyard-floor >&2

sha=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- . 2>/dev/null; then sha="$sha-dirty"; fi
model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
machine="$(nproc) CPUs, ${model:-unknown CPU}, $(awk '/MemTotal/ {printf "%.0f GB RAM", $2/1e6}' /proc/meminfo), $(uname -sr)"

if [[ $smoke -eq 1 ]]; then
  args=(--seconds 0.2 --rates 200 --connections 4 --streams 10 --stream-seconds 0.5 --many-streams 20 --many-stream-chunks 2
    --soak-seconds 1 --soak-window 0.25
    --cr-counts 100 --edits 3 --edit-crs 100 --operator-crs 100 --peers "" --out-dir "")
else
  echo "== installing peers (each bounded in time)" >&2
  mkdir -p target/bench-peers
  bash bench/peers.sh | tee target/bench-peers/status.txt >&2
  args=()
fi

# 10,000 streams hold 10,000 sockets in each process (callers reach the data plane over
# HTTP/2): raise the soft open-file limit to the hard one; children inherit it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt 10100 ]]; then
  echo "note: open-file limit $(ulimit -n) < 10100: the many-streams section will fail (-- --many-streams N)" >&2
fi

echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec taskset -c 0 "target/$profile/switchyard-bench" --bin-dir "target/$profile" \
  --git-sha "$sha" --machine "$machine" \
  "${args[@]}" "${extra[@]}"
