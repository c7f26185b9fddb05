#!/usr/bin/env bash
# Runs the official OpenAI and Anthropic Python SDKs against the data plane (tests/python).
# Creates a virtualenv under target/ with the SDKs from PyPI on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/sdk-venv
if [ ! -x "$venv/bin/pytest" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check openai anthropic pytest
fi
cargo build -q --locked -p switchyard-mock -p switchyard-dataplane --bin switchyard-mock-upstream \
  --bin switchyard-dataplane
"$venv/bin/pytest" -q tests/python
