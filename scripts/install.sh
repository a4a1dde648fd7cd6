#!/usr/bin/env bash
# Installs edxml-connector as a system service, or upgrades an existing installation.
#
#   sudo scripts/install.sh                          install from this source tree (needs PyPI)
#   sudo scripts/install.sh --wheelhouse DIR         install offline from scripts/build-wheelhouse.sh DIR
#   sudo scripts/install.sh --uninstall              remove the unit and the venv; keep data and config
#
# What it does, every time (it is idempotent: run it again to repair or to upgrade):
#   - creates the system group `edxml` (the DMS user joins it), the user `edxml-connector` with
#     its private group, member of `edxml` (skip with --no-create-user: then the current user and
#     group own everything, which is what the tests use);
#   - creates the directories with their owners and modes (see docs/operations.md, "Layout");
#   - builds the virtualenv at its final path PREFIX/opt/edxml-connector/venv (never relocated)
#     and installs the connector into it;
#   - copies config/connector.example.yaml to PREFIX/etc/edxml-connector/connector.yaml only when
#     that file does not exist (an existing configuration is never overwritten);
#   - creates empty credential files for LoadCredential= when absent (never overwrites);
#   - installs the systemd unit and enables it (systemctl only when systemd runs as PID 1 and no
#     --prefix is given; otherwise it says what to run).
#
# Options:
#   --prefix DIR          install under DIR instead of / (tests, image builds)
#   --wheelhouse DIR      install offline: pip --no-index --find-links DIR
#   --no-create-user      do not create users or groups; own files as the current user
#   --user NAME --group NAME --dms-group NAME   override the account names
#   --python PATH         the Python used to build the venv (default python3, >= 3.11)
#   --example-config FILE the example configuration to copy (default config/connector.example.yaml)
#   --uninstall           remove the unit and the venv; keep data, logs and configuration
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=""
WHEELHOUSE=""
CREATE_USER=1
SERVICE_USER="edxml-connector"
SERVICE_GROUP=""
DMS_GROUP="edxml"
PYTHON_BIN="${PYTHON:-python3}"
EXAMPLE_CONFIG="$ROOT/config/connector.example.yaml"
UNINSTALL=0
EXTRAS="postgresql,mysql"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
    --wheelhouse) WHEELHOUSE="${2:?--wheelhouse needs a directory}"; shift 2 ;;
    --no-create-user) CREATE_USER=0; shift ;;
    --user) SERVICE_USER="${2:?}"; shift 2 ;;
    --group) SERVICE_GROUP="${2:?}"; shift 2 ;;
    --dms-group) DMS_GROUP="${2:?}"; shift 2 ;;
    --python) PYTHON_BIN="${2:?}"; shift 2 ;;
    --example-config) EXAMPLE_CONFIG="${2:?}"; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

if [[ -n "$PREFIX" ]]; then
  mkdir -p "$PREFIX"
  PREFIX="$(cd "$PREFIX" && pwd)"
fi
[[ "$PREFIX" == "/" ]] && PREFIX=""

OPT="$PREFIX/opt/edxml-connector"
VENV="$OPT/venv"
ETC="$PREFIX/etc/edxml-connector"
CREDENTIALS="$ETC/credentials"
STATE="$PREFIX/var/lib/edxml-connector"
EXCHANGE="$STATE/exchange"
LOGS="$PREFIX/var/log/edxml-connector"
UNIT_DIR="$PREFIX/etc/systemd/system"
UNIT="$UNIT_DIR/edxml-connector.service"

# systemctl only on the real root of a machine that booted with systemd.
use_systemctl() {
  [[ -z "$PREFIX" && -d /run/systemd/system ]] && command -v systemctl >/dev/null
}

if [[ $CREATE_USER -eq 0 ]]; then
  # Tests and image builds: the current user owns everything (no chown to accounts that do not
  # exist here). Modes are still exactly the production ones.
  SERVICE_USER="$(id -un)"
  SERVICE_GROUP="$(id -gn)"
  DMS_GROUP="$(id -gn)"
fi
SERVICE_GROUP="${SERVICE_GROUP:-$SERVICE_USER}"
ROOT_GROUP="$(id -gn 0 2>/dev/null || echo root)"
[[ $CREATE_USER -eq 0 ]] && ROOT_GROUP="$(id -gn)"
ROOT_USER="root"
[[ $CREATE_USER -eq 0 ]] && ROOT_USER="$(id -un)"

# ---------------------------------------------------------------------------------------------
if [[ $UNINSTALL -eq 1 ]]; then
  if use_systemctl; then
    systemctl disable --now edxml-connector.service >/dev/null 2>&1 || true
  fi
  if [[ -f "$UNIT" ]]; then
    rm -f "$UNIT"
    say "removed $UNIT"
  fi
  if use_systemctl; then systemctl daemon-reload; fi
  if [[ -d "$VENV" ]]; then
    rm -rf "$VENV"
    say "removed $VENV"
  fi
  rmdir "$OPT" 2>/dev/null || true
  say "kept the configuration ($ETC), the journal and exchange ($STATE) and the logs ($LOGS);" \
      "the user $SERVICE_USER and group $DMS_GROUP are kept too (they own that data)"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
[[ $CREATE_USER -eq 1 && $(id -u) -ne 0 ]] && die "run as root (or pass --no-create-user --prefix DIR)"
command -v "$PYTHON_BIN" >/dev/null || die "$PYTHON_BIN not found: install Python 3.11 or newer"
"$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed ($("$PYTHON_BIN" --version 2>&1) found)"
"$PYTHON_BIN" -c 'import venv, ensurepip' 2>/dev/null \
  || die "$PYTHON_BIN cannot create virtualenvs: install the python3-venv package"
if [[ -n "$WHEELHOUSE" ]]; then
  [[ -d "$WHEELHOUSE" ]] || die "wheelhouse $WHEELHOUSE is not a directory"
  WHEELHOUSE="$(cd "$WHEELHOUSE" && pwd)"
  compgen -G "$WHEELHOUSE/edxml_connector-*.whl" >/dev/null \
    || die "no edxml_connector wheel in $WHEELHOUSE: build it with scripts/build-wheelhouse.sh DIR"
fi

# --- accounts ---------------------------------------------------------------------------------
if [[ $CREATE_USER -eq 1 ]]; then
  command -v useradd >/dev/null || die "useradd not found (install the passwd package)"
  if ! getent group "$DMS_GROUP" >/dev/null; then
    groupadd --system "$DMS_GROUP"
    say "created group $DMS_GROUP (add the DMS user to it: usermod -aG $DMS_GROUP DMSUSER)"
  fi
  if ! getent group "$SERVICE_GROUP" >/dev/null; then
    groupadd --system "$SERVICE_GROUP"
  fi
  if ! getent passwd "$SERVICE_USER" >/dev/null; then
    nologin="$(command -v nologin || echo /usr/sbin/nologin)"
    useradd --system --gid "$SERVICE_GROUP" --groups "$DMS_GROUP" --no-create-home \
      --home-dir /var/lib/edxml-connector --shell "$nologin" \
      --comment "edXML connector" "$SERVICE_USER"
    say "created user $SERVICE_USER"
  elif ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx "$DMS_GROUP"; then
    usermod -aG "$DMS_GROUP" "$SERVICE_USER"
  fi
fi

# --- directories --------------------------------------------------------------------------------
# dir MODE OWNER GROUP PATH: create or repair one directory.
dir() {
  mkdir -p "$4"
  chown "$2:$3" "$4"
  chmod "$1" "$4"
}
dir 0755 "$ROOT_USER" "$ROOT_GROUP" "$OPT"
# Configuration: root-owned (the service cannot rewrite its own config), readable by the service.
dir 0750 "$ROOT_USER" "$SERVICE_GROUP" "$ETC"
dir 0700 "$ROOT_USER" "$ROOT_GROUP" "$CREDENTIALS"
# State: must be exactly User:Group of the unit (else systemd re-owns the tree recursively).
dir 0711 "$SERVICE_USER" "$SERVICE_GROUP" "$STATE"
dir 0750 "$SERVICE_USER" "$SERVICE_GROUP" "$LOGS"
# The exchange (folder contract): group edxml, setgid so that everything below stays in it.
# The DMS writes outbox/ (and may tidy inbox/); it only reads the connector's result folders.
dir 2750 "$SERVICE_USER" "$DMS_GROUP" "$EXCHANGE"
for sub in outbox outbox/statuses inbox; do
  dir 2770 "$SERVICE_USER" "$DMS_GROUP" "$EXCHANGE/$sub"
done
for sub in work sent failed quarantine; do
  dir 2750 "$SERVICE_USER" "$DMS_GROUP" "$EXCHANGE/$sub"
done

# --- the virtualenv, at its final path --------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating the virtualenv $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q)
if [[ -n "$WHEELHOUSE" ]]; then
  say "installing from the wheelhouse $WHEELHOUSE (offline)"
  if [[ -f "$WHEELHOUSE/requirements.txt" ]]; then
    "${PIP[@]}" install --no-index --find-links "$WHEELHOUSE" --upgrade -r "$WHEELHOUSE/requirements.txt"
  else
    "${PIP[@]}" install --no-index --find-links "$WHEELHOUSE" --upgrade edxml-connector
  fi
else
  say "installing from $ROOT"
  "${PIP[@]}" install --upgrade "$ROOT[$EXTRAS]"
fi
"$VENV/bin/edxml-connector" --version >/dev/null || die "the installed edxml-connector does not run"
chown -R "$ROOT_USER:$ROOT_GROUP" "$OPT"
# The operator's guide and monitoring examples travel with the installation.
mkdir -p "$OPT/docs" "$OPT/monitoring"
[[ -f "$ROOT/docs/operations.md" ]] && install -m 0644 "$ROOT/docs/operations.md" "$OPT/docs/"
if [[ -d "$ROOT/config/monitoring" ]]; then
  for file in "$ROOT"/config/monitoring/*; do
    [[ -f "$file" ]] && install -m 0644 "$file" "$OPT/monitoring/"
  done
fi

# --- configuration, never overwritten -----------------------------------------------------------
if [[ -e "$ETC/connector.yaml" ]]; then
  say "kept the existing $ETC/connector.yaml"
else
  [[ -f "$EXAMPLE_CONFIG" ]] || die "example configuration $EXAMPLE_CONFIG not found"
  install -m 0640 -o "$ROOT_USER" -g "$SERVICE_GROUP" "$EXAMPLE_CONFIG" "$ETC/connector.yaml"
  say "installed $ETC/connector.yaml from the example: edit it before starting the service"
fi
for credential in axis-secret key-password; do
  if [[ ! -e "$CREDENTIALS/$credential" ]]; then
    install -m 0600 -o "$ROOT_USER" -g "$ROOT_GROUP" /dev/null "$CREDENTIALS/$credential"
    say "created an empty $CREDENTIALS/$credential: write the value into it (no trailing newline needed)"
  fi
done

# --- the unit -------------------------------------------------------------------------------------
mkdir -p "$UNIT_DIR"
install -m 0644 -o "$ROOT_USER" -g "$ROOT_GROUP" "$ROOT/systemd/edxml-connector.service" "$UNIT"
if use_systemctl; then
  systemctl daemon-reload
  systemctl enable edxml-connector.service >/dev/null
  say "enabled edxml-connector.service; start it once connector.yaml is ready:" \
      "systemctl start edxml-connector && systemctl status edxml-connector"
else
  say "installed $UNIT; systemd is not running as PID 1 here (or --prefix was given), so" \
      "systemctl was skipped: run 'systemctl daemon-reload && systemctl enable --now edxml-connector'" \
      "on the target machine"
fi
say "done: $("$VENV/bin/edxml-connector" --version)"
