#!/usr/bin/env bash
# Runs the end-to-end suite (e2e/tests/e2e.rs) against a real Kubernetes API server.
#
# With SWITCHYARD_E2E_KUBECONFIG set, against that cluster (see docs/testing.md).
# Otherwise it builds (once; cached) and starts a loopback control plane with e2e/cluster.sh,
# runs the suite, and stops it.
#
# Exit codes: 0 passed; 3 the control plane could not be built or started (the reason is
# printed); anything else: the suite failed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

if [[ -z "${SWITCHYARD_E2E_KUBECONFIG:-}" ]]; then
  dir="${SWITCHYARD_E2E_DIR:-$root/target/e2e-cluster}"
  if ! apiserver="$(bash e2e/build-apiserver.sh)"; then
    echo "e2e: could not build kube-apiserver; see ${SWITCHYARD_E2E_CACHE:-$HOME/.cache/switchyard-e2e}/build.log" >&2
    tail -30 "${SWITCHYARD_E2E_CACHE:-$HOME/.cache/switchyard-e2e}/build.log" >&2 || true
    exit 3
  fi
  if ! SWITCHYARD_E2E_APISERVER="$apiserver" bash e2e/cluster.sh start "$dir"; then
    echo "e2e: could not start the loopback control plane (logs in $dir)" >&2
    exit 3
  fi
  trap 'bash e2e/cluster.sh stop "$dir"' EXIT
  # shellcheck disable=SC1091
  source "$dir/env"
fi
echo "== e2e suite against $(kubectl --kubeconfig "$SWITCHYARD_E2E_KUBECONFIG" config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
# The tests are #[ignore]d for a plain `cargo test` (no cluster there); here they all run, and a
# run in which none did (or some stayed ignored) is a failure, never a pass.
log="$(mktemp)"
cargo test -p switchyard-tests --locked --test e2e -- --include-ignored --test-threads=1 --nocapture 2>&1 | tee "$log"
if ! grep -Eq 'test result: ok\. [1-9][0-9]* passed; 0 failed; 0 ignored' "$log"; then
  echo "e2e: the suite did not run every test (see the result line above)" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
