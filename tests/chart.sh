#!/usr/bin/env bash
# Renders the Helm chart (charts/switchyard) with Helm's own template engine and checks it
# against the kustomize tree (tests/chart/test_chart.py). Helm itself is not installable here:
# helm-python-sdk from PyPI carries Helm's Go SDK as a native library, so rendering is what
# `helm template` does. Creates a virtualenv under target/ on first use; needs kubectl (for
# `kubectl kustomize`; SWITCHYARD_KUBECTL picks another one).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/chart-venv
if ! "$venv/bin/python" -c 'import helm_python, yaml, pytest' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    'helm-python-sdk==0.2.2' 'PyYAML>=6,<7' pytest
fi
"$venv/bin/pytest" -q tests/chart
