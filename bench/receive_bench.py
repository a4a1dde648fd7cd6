"""Receiving in bounded memory: what a large or hostile package adds to the receiving daemon's peak.

    python -m bench.receive_bench                  # 150 MB attachment + 1,000-entry zip (~2 min)
    python -m bench.receive_bench --mb 20 --quick  # smoke run

Real processes, as in production (the two-agency lab of ``scripts/demo.sh``): agency A sends,
agency B's ``edxml-connector run`` receives it from the axis simulator, verifies it and delivers
it into its inbox folder. Figures are read from ``/proc/PID/status`` of B's daemon:

- ``VmHWM`` (the peak resident set over the process's life) after a warm-up document — every
  module of the receive path imported, every cache filled — and again after the package was
  delivered; the difference is what receiving it added to the peak (issue 12: at most 64 MB);
- the same for A's daemon, which built, signed and sent the package.

Cases:
1. ``attachment``: a bundle with one PDF of ``--mb`` MB of random bytes (150 by default: 200 MB
   of base64 on the wire);
2. ``zip, default limits``: a package (built and signed here with A's key, dropped ready-made
   into A's outbox) whose ZIP-convention part holds 1,000 entries of 1 MB of zeros (1.1 MB on
   the wire): kept unextracted with its reason;
3. ``zip, limits raised``: the same after B was restarted with limits that let it through
   (2,000 entries, 2 GB, ratio 5,000): its 1,000 entries are unpacked, to disk, one by one.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.proc import memory_mb
from connector.devtools.lab import AgencyNode, Lab, document_metadata, pdf_bytes
from connector.edxml import model
from connector.edxml.keys import SigningKey
from connector.edxml.writer import write_package_to

TARGET_ADDED_MB = 64.0


def zip_of_zeros(entries: int) -> bytes:
    buffer = io.BytesIO()
    zeros = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index in range(entries):
            archive.writestr(f"zeros-{index:04}.bin", zeros)
    return buffer.getvalue()


class Bench:
    def __init__(self, base: Path) -> None:
        self.lab = Lab(base)
        for node in self.lab.agencies:
            node.configure(logging={"level": "warning"})
        self.serial = 0

    def delivered(self) -> int:
        b = self.lab.b
        return len(b.inbox_folders()) + len(b.quarantine_folders())

    def wait_delivered(self, count: int, timeout: float) -> None:
        self.lab.wait_for(lambda: self.delivered() >= count, timeout=timeout,
                          what=f"{count} documents in B's inbox or quarantine",
                          seen=self.delivered, require_running=self.lab.processes)

    def warm_up(self) -> None:
        """One small document A → B, so that the figures after it count no first-time import."""
        self.serial += 1
        before = self.delivered()
        self.lab.a.drop_bundle(f"warm-up-{self.serial}", document_metadata(
            [self.lab.b.organ_id], f"{self.serial}", "Khởi động"),
            {"khoi-dong.pdf": pdf_bytes("khởi động")})
        self.wait_delivered(before + 1, 60)

    def measure(self, label: str, send, timeout: float = 600) -> dict[str, Any]:
        self.warm_up()
        a, b = self.lab.a.process.pid, self.lab.b.process.pid
        before = {"A": memory_mb(a), "B": memory_mb(b)}
        count = self.delivered()
        started = time.monotonic()
        send()
        self.wait_delivered(count + 1, timeout)
        seconds = time.monotonic() - started
        after = {"A": memory_mb(a), "B": memory_mb(b)}
        figures = {"case": label, "seconds": round(seconds, 1)}
        for who in ("A", "B"):
            figures[f"{who}_hwm_before_mb"] = round(before[who]["VmHWM"], 1)
            figures[f"{who}_hwm_after_mb"] = round(after[who]["VmHWM"], 1)
            figures[f"{who}_added_mb"] = round(after[who]["VmHWM"] - before[who]["VmHWM"], 1)
        return figures

    def latest_item(self) -> Path:
        b = self.lab.b
        folders = b.inbox_folders() + b.quarantine_folders()
        return max(folders, key=lambda folder: folder.stat().st_mtime)

    # -- the cases ------------------------------------------------------------------------------
    def attachment(self, megabytes: int) -> dict[str, Any]:
        work = self.lab.base / "attachment"
        work.mkdir(exist_ok=True)
        data = os.urandom(megabytes * 1024 * 1024)
        digest = hashlib.sha256(data).hexdigest()
        outbox = self.lab.a.outbox
        outbox.mkdir(parents=True, exist_ok=True)

        def send() -> None:
            staging = outbox / ".scan.staging"
            staging.mkdir()
            (staging / "ban-scan.pdf").write_bytes(data)
            (staging / "document.yaml").write_text(json.dumps(document_metadata(
                [self.lab.b.organ_id], "150", "Văn bản scan dung lượng lớn"), ensure_ascii=False),
                encoding="utf-8")
            staging.rename(outbox / "scan")

        figures = self.measure(f"attachment {megabytes} MB", send)
        received = self.latest_item() / "ban-scan.pdf"
        with open(received, "rb") as handle:
            figures["received_intact"] = hashlib.file_digest(handle, "sha256").hexdigest() == digest
        return figures

    def zip_bomb(self, entries: int, label: str) -> dict[str, Any]:
        a = self.lab.a
        key = SigningKey.from_pkcs12(a.p12, Path(a.password_file).read_text().strip())
        meta = document_metadata([self.lab.b.organ_id], "1000", "Phụ lục nén")
        self.serial += 1
        package = model.DocumentPackage(
            from_=model.Organization(organ_id=a.organ_id, organ_name=a.name),
            to=[model.Organization(organ_id=self.lab.b.organ_id)],
            document_id=f"{a.organ_id},2026/12/06,{self.serial}/BOMB",
            code=model.Code(number=str(self.serial), notation="BOMB"),
            subject=meta["subject"],
            attachments=[model.Attachment(name="Phụ lục.txt", content_type="application/zip",
                                          content_id="1", data=zip_of_zeros(entries))])
        path = self.lab.base / f"bomb-{self.serial}.edxml"
        write_package_to(package, path, signer=key)
        wire = path.stat().st_size

        def send() -> None:
            a.drop_package(f"bomb-{self.serial}.edxml", path.read_bytes())

        figures = self.measure(label, send)
        figures["package_mb"] = round(wire / 1e6, 2)
        item = self.latest_item()
        metadata = json.loads((item / "metadata.json").read_text(encoding="utf-8"))
        figures["entries_extracted"] = sum(1 for part in metadata["attachments"]
                                           if part.get("extracted_from"))
        figures["problem"] = next((part.get("problem") for part in metadata["attachments"]
                                   if part.get("problem")), None)
        return figures

    def restart_b(self, **changes: Any) -> None:
        b: AgencyNode = self.lab.b
        b.stop()
        b.configure(**changes)
        b.start().wait_started(60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=150, help="attachment size in MB (150)")
    parser.add_argument("--entries", type=int, default=1000, help="zip entries of 1 MB (1000)")
    parser.add_argument("--quick", action="store_true", help="skip the raised-limits case")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="receive-bench-") as base:
        bench = Bench(Path(base))
        with bench.lab:
            bench.lab.start()
            results.append(bench.attachment(args.mb))
            results.append(bench.zip_bomb(args.entries, f"zip {args.entries} entries, defaults"))
            if not args.quick:
                bench.restart_b(edxml={"max_zip_entries": 2 * args.entries,
                                       "max_zip_uncompressed_mb": 2048, "max_zip_ratio": 5000,
                                       "max_zip_expansion": 5000})
                results.append(bench.zip_bomb(args.entries,
                                              f"zip {args.entries} entries, limits raised"))
    ok = True
    for figures in results:
        within = figures["B_added_mb"] <= TARGET_ADDED_MB
        ok = ok and within and figures.get("received_intact", True)
        print(json.dumps({**figures, "target_added_mb": TARGET_ADDED_MB, "met": within},
                         ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
