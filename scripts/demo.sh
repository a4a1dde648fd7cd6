#!/usr/bin/env bash
# Quick start: two agencies exchange documents through a local axis simulator, on one machine.
#
# Creates .venv and installs the project (first run only), then runs `python -m connector.devtools.lab`:
# throwaway certificates; the axis simulator and one connector per agency (A = 000.00.00.G22,
# B = 000.00.00.H41) on 127.0.0.1; three documents dropped into A's outbox (a bundle with a
# Vietnamese file name, a bundle with two attachments, a ready package made with `pack`); waits
# until B's inbox holds all three with valid signatures and A has B's status 01 for each; has B
# send 03 for one; shows A's `edxml-connector status`; prints a summary; stops every process.
#
# Usage: scripts/demo.sh [WORK_DIR] [--timeout SECONDS] [--hub N]
#   WORK_DIR defaults to a new folder under ./demo-run/ (kept, with every process's log in logs/).
#   --hub N: instead, ONE hub daemon serving N units (each its own agency: OrganId, secret,
#   certificate, folders) plus one outside agency; every unit sends a document to the next unit
#   and to the outside agency, the statuses 01 come back, a table per unit is printed, and the
#   exit is 0 only when every document arrived exactly once (default limit 180 s).
# Exits 0 on success, non-zero with the reason when a step fails or times out (default 120 s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

ensure_venv test
cd "$ROOT"
for arg in "$@"; do
  if [ "$arg" = "--hub" ]; then
    exec "$VENV/bin/python" -m connector.devtools.hub_demo "$@"
  fi
done
exec "$VENV/bin/python" -m connector.devtools.lab "$@"
