#!/usr/bin/env bash
# Installs the peer gateways the benchmark compares against, each into its own environment under
# target/bench-peers/<name>, with a time limit per install. A peer that cannot be installed is
# reported and skipped; this script never fails because of a peer.
#
#   bash bench/peers.sh [--timeout SECONDS] [NAME...]     (names: litellm vllm-router sglang-router portkey)
#
# Prints one line per peer: `peer NAME: ready BIN` or `peer NAME: skipped: REASON`.
set -uo pipefail
cd "$(dirname "$0")/.."
timeout_s=300
if [[ "${1:-}" == "--timeout" ]]; then timeout_s=$2; shift 2; fi
names=("$@")
[[ ${#names[@]} -eq 0 ]] && names=(litellm vllm-router sglang-router portkey)
root=target/bench-peers
mkdir -p "$root"

venv_install() { # name, bin, pip specs...
  local name=$1 bin=$2; shift 2
  local dir=$root/$name log=$root/$name.install.log
  if [[ -x $dir/bin/$bin ]]; then echo "peer $name: ready $dir/bin/$bin"; return; fi
  if ! python3 -m venv "$dir" >"$log" 2>&1; then
    echo "peer $name: skipped: python3 -m venv failed (see $log)"; return
  fi
  if timeout "$timeout_s" "$dir/bin/pip" install -q "$@" >>"$log" 2>&1 && [[ -x $dir/bin/$bin ]]; then
    echo "peer $name: ready $dir/bin/$bin"
  else
    echo "peer $name: skipped: pip install $* failed or took over ${timeout_s}s ($(tail -n 1 "$log"))"
  fi
}

for name in "${names[@]}"; do
  case $name in
    litellm) venv_install litellm litellm 'litellm[proxy]' ;;
    vllm-router) venv_install vllm-router vllm-router vllm-router ;;
    sglang-router) venv_install sglang-router python sglang-router ;;
    portkey)
      dir=$root/portkey log=$root/portkey.install.log
      bin=$dir/node_modules/@portkey-ai/gateway/build/start-server.js
      if [[ -f $bin ]]; then echo "peer portkey: ready $bin"; continue; fi
      mkdir -p "$dir"
      if ! command -v npm >/dev/null; then echo "peer portkey: skipped: npm not installed"; continue; fi
      if timeout "$timeout_s" npm install --prefix "$dir" --no-save @portkey-ai/gateway >"$log" 2>&1 \
        && [[ -f $bin ]]; then
        echo "peer portkey: ready $bin"
      else
        echo "peer portkey: skipped: npm install @portkey-ai/gateway failed or took over ${timeout_s}s ($(tail -n 1 "$log"))"
      fi ;;
    *) echo "peer $name: skipped: unknown peer" ;;
  esac
done
