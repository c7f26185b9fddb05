#!/usr/bin/env bash
# The one command that runs every check: formatting, lints, unit and integration tests.
# README "Tests" documents it; .ci/run calls it after installing what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (store tests also on a throwaway PostgreSQL when it is installed)"
bash tests/with-postgres.sh cargo test --workspace --locked

step "official OpenAI and Anthropic Python SDKs against the data plane"
bash tests/sdk.sh

step "the real Claude Code CLI (npm) against the data plane, Anthropic and OpenAI targets"
bash tests/agents.sh

step "Helm chart rendered by Helm's template engine, checked against the kustomize tree"
bash tests/chart.sh
