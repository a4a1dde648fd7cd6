#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: creates .venv when missing, installs the project
# with its test extras and the system tools the tests use (xmlsec1), starts the local databases
# when they are installed but stopped, then runs pytest. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

ensure_venv test
ensure_test_tools
ensure_databases

cd "$ROOT"
set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
# pytest's "no tests collected" (5) is a failure here: a suite that ran nothing proves nothing.
exit $rc
