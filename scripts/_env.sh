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

ensure_xmlsec1() {
  command -v xmlsec1 >/dev/null && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing xmlsec1 (apt)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xmlsec1; } >/dev/null 2>&1 \
      || say "could not install xmlsec1: the tests that cross-check signatures with it will skip"
  else
    say "xmlsec1 is missing and we are not root: install it (apt-get install xmlsec1);" \
        "the tests that cross-check signatures with it will skip"
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
