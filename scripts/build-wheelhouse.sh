#!/usr/bin/env bash
# Collects every wheel the connector needs (the project itself and all its dependencies, with the
# PostgreSQL and MySQL drivers) into DIR, on a machine that reaches PyPI, so that a secure server
# without registry access can install with `scripts/install.sh --wheelhouse DIR`.
#
#   scripts/build-wheelhouse.sh DIR
#
# Build it with the same Python minor version and CPU architecture as the target server (wheels
# of lxml, cryptography, pydantic-core... are binary): e.g. on the same Debian release, or set
# PYTHON=python3.11. DIR/requirements.txt names exactly what to install from it, and
# DIR/SHA256SUMS lets the receiving side check what it was given (sha256sum -c SHA256SUMS).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON_BIN="${PYTHON:-python3}"
EXTRAS="postgresql,mysql"

die() { printf 'build-wheelhouse.sh: error: %s\n' "$*" >&2; exit 1; }
[[ $# -eq 1 && "$1" != -* ]] || die "usage: scripts/build-wheelhouse.sh DIR"
OUT="$1"
command -v "$PYTHON_BIN" >/dev/null || die "$PYTHON_BIN not found"
"$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed ($("$PYTHON_BIN" --version 2>&1) found)"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# A throwaway venv, so that the pip doing the work is recent whatever the system's is.
BUILD_VENV="$(mktemp -d)"
trap 'rm -rf "$BUILD_VENV"' EXIT
"$PYTHON_BIN" -m venv "$BUILD_VENV"
PIP=("$BUILD_VENV/bin/python" -m pip --disable-pip-version-check --no-input -q)
"${PIP[@]}" install --upgrade pip

# `pip wheel` builds the project's wheel and fetches (or builds) a wheel for every dependency.
"${PIP[@]}" wheel --wheel-dir "$OUT" "$ROOT[$EXTRAS]"

version="$("$BUILD_VENV/bin/python" - "$ROOT/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(tomllib.load(f)["project"]["version"])
EOF
)"
printf 'edxml-connector[%s]==%s\n' "$EXTRAS" "$version" > "$OUT/requirements.txt"
# The install kit travels with the wheels: DIR/kit/scripts/install.sh --wheelhouse DIR works on a
# server that has nothing else from this project.
rm -rf "$OUT/kit"
mkdir -p "$OUT/kit/scripts" "$OUT/kit/systemd" "$OUT/kit/config" "$OUT/kit/docs"
install -m 0755 "$ROOT/scripts/install.sh" "$OUT/kit/scripts/"
install -m 0644 "$ROOT/systemd/edxml-connector.service" "$OUT/kit/systemd/"
[[ -f "$ROOT/config/connector.example.yaml" ]] && install -m 0644 "$ROOT/config/connector.example.yaml" "$OUT/kit/config/"
[[ -d "$ROOT/config/monitoring" ]] && cp -R "$ROOT/config/monitoring" "$OUT/kit/config/"
[[ -f "$ROOT/docs/operations.md" ]] && install -m 0644 "$ROOT/docs/operations.md" "$OUT/kit/docs/"
(cd "$OUT" && sha256sum ./*.whl requirements.txt > SHA256SUMS)
count="$(find "$OUT" -maxdepth 1 -name '*.whl' | wc -l)"
printf '==> %s wheels in %s (install with: %s/kit/scripts/install.sh --wheelhouse %s)\n' "$count" "$OUT" "$OUT" "$OUT" >&2
