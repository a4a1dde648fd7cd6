# Shared set-up for scripts/demo.sh and scripts/test.sh: a project virtualenv with the project
# installed, and the system tools the tests and the demo need. Sourced, not run.
# Idempotent and quiet when everything is already in place.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${EDXML_VENV:-$ROOT/.venv}"
PYTHON_BIN="${PYTHON:-python3}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ensure_python() {
  command -v "$PYTHON_BIN" >/dev/null || die "python3 not found: install Python 3.11 or newer"
  "$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or newer is needed ($("$PYTHON_BIN" --version 2>&1) found)"
}

ensure_venv() {
  local extras="$1"
  ensure_python
  if [[ ! -x "$VENV/bin/python" ]]; then
    say "creating $VENV"
    "$PYTHON_BIN" -m venv "$VENV" || die "could not create a virtualenv at $VENV"
    "$VENV/bin/pip" install -q --upgrade pip
  fi
  local stamp="$VENV/.installed-$extras"
  if [[ ! -f "$stamp" || "$ROOT/pyproject.toml" -nt "$stamp" ]]; then
    say "installing the project into $VENV ($extras)"
    "$VENV/bin/pip" install -q -e "$ROOT[$extras]" || die "pip install failed"
    touch "$stamp"
  fi
}

# Debian packages the tests use to check our work with independent tools:
#   xmlsec1          verifies our XML signatures (an implementation other than ours)
#   systemd          systemd-analyze verify / security for the service unit
#   prometheus       promtool check rules / test rules for the alert rules (no server is started)
TEST_TOOLS=("xmlsec1:xmlsec1" "systemd-analyze:systemd" "promtool:prometheus" "softhsm2-util:softhsm2")

ensure_test_tools() {
  local missing=() entry
  for entry in "${TEST_TOOLS[@]}"; do
    command -v "${entry%%:*}" >/dev/null || missing+=("${entry#*:}")
  done
  ((${#missing[@]})) || return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]} (apt)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null 2>&1 \
      || say "could not install ${missing[*]}: the tests that use them will skip, saying why"
  else
    say "missing ${missing[*]} and not root: install them (apt-get install ${missing[*]});" \
        "the tests that use them will skip, saying why"
  fi
}

# Start PostgreSQL and MariaDB when they are installed but stopped; never install them.
ensure_databases() {
  if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
      say "starting PostgreSQL"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start >/dev/null 2>&1 || true
    fi
  fi
  if [[ -x /usr/sbin/mariadbd ]] && ! (echo > /dev/tcp/127.0.0.1/3306) 2>/dev/null; then
    say "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do (echo > /dev/tcp/127.0.0.1/3306) 2>/dev/null && break; sleep 0.5; done
  fi
}
