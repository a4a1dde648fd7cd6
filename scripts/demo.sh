#!/usr/bin/env bash
# Quick start: sets everything up on a fresh machine and runs the main job end to end.
#
# Issue-2 version: makes throwaway certificates, packs config/document.example.yaml with two
# generated attachments, signs it (PKCS#12 + password file), re-signs it with the PEM key,
# inspects it and verifies it against the dev CA, then builds a status 03 answering it.
# Everything goes to a work folder (first argument, default: a new temporary folder) that is kept
# so you can look at the files. Exits non-zero with the reason when any step fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

ensure_venv test

WORK="${1:-$(mktemp -d "${TMPDIR:-/tmp}/edxml-demo.XXXXXX")}"
mkdir -p "$WORK" || die "cannot create the work folder $WORK"
CLI=("$VENV/bin/python" -m connector)
step() { say "$1"; shift; "$@" || die "step failed: $*"; }

cd "$ROOT"

step "making throwaway certificates in $WORK/certs" \
  "${CLI[@]}" dev-certs "$WORK/certs" >/dev/null

say "generating the attachments named in config/document.example.yaml"
"$VENV/bin/python" - "$WORK" <<'PY' || die "could not generate the attachments"
import sys, zipfile
from pathlib import Path

work = Path(sys.argv[1])
# A tiny but well-formed PDF stands in for the scanned, signed công văn.
pdf = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
       b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")
(work / "cong-van-1234.pdf").write_bytes(pdf)
# An .xlsx is a zip container; a one-sheet stub is enough for the demo.
with zipfile.ZipFile(work / "phu-luc-1.xlsx", "w") as book:
    book.writestr("[Content_Types].xml", "<Types/>")
    book.writestr("xl/workbook.xml", "<workbook/>")
PY

step "packing and signing (PKCS#12) -> $WORK/document.edxml" \
  "${CLI[@]}" pack config/document.example.yaml "$WORK/cong-van-1234.pdf" "$WORK/phu-luc-1.xlsx" \
  --p12 "$WORK/certs/agency-a.p12" --password-file "$WORK/certs/agency-a.password" \
  --out "$WORK/document.edxml"

step "re-signing with the PEM key -> $WORK/document-resigned.edxml" \
  "${CLI[@]}" sign "$WORK/document.edxml" --key "$WORK/certs/agency-a.key" \
  --cert "$WORK/certs/agency-a.pem" --out "$WORK/document-resigned.edxml"

say "inspecting"
"${CLI[@]}" inspect "$WORK/document-resigned.edxml" --trust "$WORK/certs/ca.pem" \
  || die "inspect failed"
"${CLI[@]}" inspect "$WORK/document-resigned.edxml" --trust "$WORK/certs/ca.pem" --json \
  > "$WORK/document.json" || die "inspect --json failed"

say "verifying against the dev CA"
outcome="$("${CLI[@]}" verify "$WORK/document-resigned.edxml" --trust "$WORK/certs/ca.pem")" \
  || die "verification did not succeed: $outcome"

step "answering with status 03 (accepted) from 000.00.00.H41 -> $WORK/status-03.edxml" \
  "${CLI[@]}" status-package --from 000.00.00.H41 --for "$WORK/document-resigned.edxml" \
  --code 03 --out "$WORK/status-03.edxml"

cat <<EOF

Demo finished.
  package       $WORK/document-resigned.edxml
  summary       $WORK/document.json
  signature     $outcome
  status 03     $WORK/status-03.edxml
  certificates  $WORK/certs (throwaway: never use them in production)
EOF
