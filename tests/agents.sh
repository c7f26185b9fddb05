#!/usr/bin/env bash
# Runs the real Claude Code CLI (`claude -p`, npm @anthropic-ai/claude-code) against the data plane
# and the mock upstream (tests/agents). Installs the pinned Claude Code into target/agents-npm and
# reuses the SDK tests' virtualenv (target/sdk-venv) for pytest. Without node/npm or the npm
# registry it fails under CI=true and skips with a message elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
CLAUDE_CODE_VERSION=2.1.337
prefix=target/agents-npm
claude="$prefix/node_modules/.bin/claude"

missing() {
  if [ "${CI:-}" = "true" ]; then
    echo "agents tests: $1 (required in CI)" >&2
    exit 1
  fi
  echo "agents tests SKIPPED: $1" >&2
  exit 0
}

if [ ! -x "$claude" ] || [ "$("$claude" --version 2>/dev/null | cut -d' ' -f1)" != "$CLAUDE_CODE_VERSION" ]; then
  command -v npm >/dev/null || missing "npm is not installed (Debian: apt-get install nodejs npm)"
  mkdir -p "$prefix"
  # The package's bin is the native binary of its platform package (an optionalDependency);
  # its postinstall only links it, which npm's bin link already does.
  npm install --prefix "$prefix" --no-audit --no-fund --no-save --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" ||
    missing "npm could not install @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION"
fi
"$claude" --version >/dev/null || missing "$claude does not run"

venv=target/sdk-venv
if [ ! -x "$venv/bin/pytest" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check openai anthropic pytest
fi
cargo build -q --locked -p switchyard-mock -p switchyard-dataplane --bin switchyard-mock-upstream \
  --bin switchyard-dataplane
CLAUDE_BIN="$PWD/$claude" "$venv/bin/pytest" -q tests/agents
