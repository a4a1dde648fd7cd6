"""Hostile payloads received through the axis: a zip part of 1,000 entries of 1 MB of zeros and
a large attachment, each written straight into the simulator's store as sent by another
registered agency, then received by B's connector. The outcome is checked — the bomb kept
unextracted with its reason, the attachment delivered intact — with the memory the receive took,
and that the next genuine document is received as usual."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from connector.edxml import model
from connector.edxml.writer import write_package

from .conftest import PDF, A, B, document_metadata, drop_bundle


def _package(attachment: model.Attachment, number: str) -> bytes:
    """A document from A (a registered agency: any may address any other) to B."""
    return write_package(model.DocumentPackage(
        from_=model.Organization(organ_id=A, organ_name="Kẻ lạ"), to=[model.Organization(organ_id=B)],
        document_id=f"{A},2026/12/06,{number}/HOSTILE",
        code=model.Code(number=number, notation="HOSTILE"), subject="Tệp đính kèm",
        attachments=[attachment]))


def _plant(simulator, data: bytes) -> None:
    simulator.store.add_transfer(message_type="edoc", sender=A, systemid=A, data=data,
                                 sha256=hashlib.sha256(data).hexdigest(), recipients=[B])


def _received_item(exchange: Path) -> Path:
    [metadata] = [p for p in exchange.glob("*/*/*/metadata.json")
                  if p.parts[-4] in ("inbox", "quarantine")]
    return metadata.parent


def _poll_measured(agency) -> tuple[dict, int]:
    tracemalloc.start()
    try:
        counts = agency.poll()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return counts, peak


def _genuine_still_received(a, b) -> None:
    before = len(list(b.exchange.glob("inbox/*/*/metadata.json")))
    drop_bundle(a.exchange / "outbox", "cv101", document_metadata(), {"Công văn số 101.pdf": PDF})
    a.cycle()
    assert b.poll()["listed"] == 1
    documents = [json.loads(p.read_text()) for p in b.exchange.glob("inbox/*/*/metadata.json")]
    assert len(documents) == before + 1
    assert any((d.get("code") or "").startswith("101") for d in documents)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index in range(1000):
            archive.writestr(f"zeros-{index:04}.bin", b"\0" * (1024 * 1024))
    return buffer.getvalue()


def test_a_thousand_entry_zip_of_zeros_is_kept_unextracted(pair, simulator, bomb):
    a, b = pair
    data = _package(model.Attachment(name="Phụ lục.txt", content_type="application/zip",
                                     content_id="1", data=bomb), "1000")
    assert len(data) < 2 * 1024 * 1024  # what the hostile sender sends is small
    _plant(simulator, data)

    counts, peak = _poll_measured(b)
    assert counts["listed"] == 1
    item = _received_item(b.exchange)
    metadata = json.loads((item / "metadata.json").read_text())
    [part] = metadata["attachments"]
    assert part["file"] == "Phụ lục.txt.zip" and "1000 entries" in part["problem"]
    assert not list(item.glob("zeros-*")) and not list(item.glob(".unzip-*"))
    assert peak < 32 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB of Python allocations"
    _genuine_still_received(a, b)


def test_a_large_attachment_is_received_without_holding_it(pair, simulator):
    """24 MB here (32 MB of base64) to keep the suite fast; bench.receive_bench does 150 MB."""
    a, b = pair
    payload = os.urandom(24 * 1024 * 1024)
    _plant(simulator, _package(model.Attachment(name="Bản scan.pdf", content_type="application/pdf",
                                                content_id="1", data=payload), "24"))
    counts, peak = _poll_measured(b)
    assert counts["listed"] == 1
    item = _received_item(b.exchange)
    assert hashlib.sha256((item / "Bản scan.pdf").read_bytes()).digest() == \
        hashlib.sha256(payload).digest()
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB of Python allocations"
    _genuine_still_received(a, b)
