#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: creates .venv when missing, installs the project
# with its test extras and the system tools the tests use (xmlsec1), starts the local databases
# when they are installed but stopped, runs the checks that keep the code's shape (ruff, mypy,
# the import-linter contracts, all configured in pyproject.toml), then runs pytest. Extra
# arguments go to pytest. SKIP_CHECKS=1 skips the checks (for a quick run of a few tests).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

ensure_venv test
ensure_test_tools
ensure_databases

cd "$ROOT"

# Each check names itself; a failing one prints its findings and stops the run.
check() {
  local name="$1" output; shift
  if output="$("$@" 2>&1)"; then
    say "$name: ok"
  else
    printf '%s\n' "$output" >&2
    die "$name found the problems above: fix them (the rules are in pyproject.toml)"
  fi
}
if [[ "${SKIP_CHECKS:-0}" != 1 ]]; then
  check "ruff (lint rules and line length)" "$VENV/bin/ruff" check --quiet connector tests bench scripts
  check "mypy (types in connector/)" "$VENV/bin/mypy"
  check "import-linter (the layers of README's Architecture)" "$VENV/bin/lint-imports" --no-cache
fi

set +e
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
# pytest's "no tests collected" (5) is a failure here: a suite that ran nothing proves nothing.
exit $rc
