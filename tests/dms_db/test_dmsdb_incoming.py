"""Received documents, statuses and lifecycle events inserted into a real DMS database."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil

import pytest
import sqlalchemy as sa
from dmsdb_helpers import G22, H41, race, side
from sample_dms_schema import (
    incoming_attachments,
    incoming_documents,
    incoming_events,
    incoming_statuses,
)

from connector.dms.base import IncomingDocument, IncomingStatus, LifecycleEvent


@pytest.fixture
def received(interop_dir, tmp_path):
    """The SDK's sample document as the core hands it over: stored package + summary."""
    from connector.edxml.reader import read_package
    from connector.edxml.summary import summarize

    package = tmp_path / "package.edxml"
    shutil.copyfile(interop_dir / "sdk-samples" / "edoc_new.edxml", package)
    summary = summarize(read_package(package))
    return IncomingDocument(
        journal_id="IN-1", axis_doc_id="AXIS-IN-1",
        received_at=dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.timezone.utc),
        package_path=package, summary=summary,
        signature={"state": "absent", "reason": "the package is not signed", "signer": None},
        warnings=["To/OrganId '000.00.50.H19': example warning"],
        lifecycle={})


def _rows(engine, table, **where):
    with engine.connect() as connection:
        statement = sa.select(table)
        for column, value in where.items():
            statement = statement.where(table.c[column] == value)
        return [dict(row) for row in connection.execute(statement.order_by(table.c.id)).mappings()]


def test_document_delivered_once_with_attachments(backend, received):
    adapter = side(backend)
    location = adapter.deliver_document(received)
    assert location == "database:dms_incoming_documents/IN-1"
    assert adapter.deliver_document(received) == location  # redelivery inserts nothing
    assert side(backend, owner="another").deliver_document(received) == location

    [row] = _rows(backend.engine, incoming_documents)
    assert row["journal_id"] == "IN-1"
    assert row["axis_doc_id"] == "AXIS-IN-1"
    assert row["document_id"] == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert row["from_organ_id"] == "000.00.00.K19"
    assert row["subject"] == "V/v kết nối, liên thông phần mềm quản lý văn bản"
    assert (row["code_number"], row["code_notation"]) == ("781622e22", "VPCP-TTĐT")
    assert row["promulgation_date"] == dt.date(2018, 10, 19)
    assert row["business_type"] == 0
    assert row["signature_state"] == "absent"
    assert json.loads(row["warnings"]) == received.warnings
    assert json.loads(row["summary"])["document_id"] == row["document_id"]
    assert bytes(row["package"]) == received.package_path.read_bytes()
    assert row["package_path"] == str(received.package_path)
    assert row["received_at"] == dt.datetime(2026, 11, 23, 10, 0)  # Vietnam time, naive
    assert not row["quarantined"]

    parts = _rows(backend.engine, incoming_attachments, document_journal_id="IN-1")
    assert [(p["position"], p["file_name"], p["content_type"]) for p in parts] == [
        (0, "1896_QD-TTg_m_294779.doc", "application/zip"),
        (1, "32da2890-1a55-4ccd-9ac9-cd0d98559e67.edxml", "application/xml")]
    zip_part = bytes(parts[0]["content"])
    assert parts[0]["size"] == len(zip_part) == 270823
    assert parts[0]["sha256"] == hashlib.sha256(zip_part).hexdigest()
    assert zip_part.startswith(b"PK")



def test_a_large_zip_part_and_its_entries_are_inserted_without_a_scratch_left(backend, received):
    """A part still base64 in the stored package (3 MB) becomes its row as transported, and its
    entry a row of its own, unpacked into a scratch folder beside the package that is removed
    once the rows are in."""
    import os

    from connector.edxml.attachments import prepare_outgoing
    from connector.edxml.reader import read_package
    from connector.edxml.writer import write_package

    payload = os.urandom(3 * 1024 * 1024)
    package = read_package(received.package_path).package
    package.attachments = [prepare_outgoing("số liệu.bin", data=payload)]
    received.package_path.write_bytes(write_package(package))
    assert read_package(received.package_path).package.attachments[0].encoded is not None

    side(backend).deliver_document(received)
    parts = _rows(backend.engine, incoming_attachments, document_journal_id="IN-1")
    assert [(p["position"], p["file_name"]) for p in parts] == [(0, "số liệu.bin"),
                                                                 (1, "số liệu.bin")]
    assert bytes(parts[0]["content"])[:2] == b"PK"
    assert bytes(parts[1]["content"]) == payload
    assert parts[1]["sha256"] == hashlib.sha256(payload).hexdigest()
    assert [p.name for p in received.package_path.parent.iterdir()
            if p.name.startswith(".unzip-")] == []

def test_concurrent_deliveries_insert_one_row(backend, received):
    adapters = [side(backend, owner=f"n{n}") for n in range(2)]
    results = []
    race(lambda index: results.append(adapters[index].deliver_document(received)))
    assert results == ["database:dms_incoming_documents/IN-1"] * 2
    assert len(_rows(backend.engine, incoming_documents)) == 1
    assert len(_rows(backend.engine, incoming_attachments)) == 2


def test_quarantine_and_release(backend, received):
    adapter = side(backend, incoming={"attachments": None})
    location = adapter.quarantine_document(received, "signature invalid: digest mismatch")
    [row] = _rows(backend.engine, incoming_documents)
    assert row["quarantined"] and row["quarantine_reason"] == "signature invalid: digest mismatch"
    assert _rows(backend.engine, incoming_attachments) == []  # attachments table not mapped
    adapter.release_quarantined(location)
    [row] = _rows(backend.engine, incoming_documents)
    assert not row["quarantined"] and row["quarantine_reason"] is None


def test_statuses_and_events_inserted_once(backend):
    adapter = side(backend)
    status = IncomingStatus(journal_id="ST-1", axis_doc_id="AX-ST-1",
                            received_at=dt.datetime(2026, 11, 23, 8, 0), from_organ_id=H41,
                            document_id=f"{G22},2026/11/20,12/UBND-VP", code="03",
                            description="Đã vào sổ", timestamp=dt.datetime(2026, 11, 23, 7, 59))
    adapter.deliver_status(status)
    adapter.deliver_status(status)
    [row] = _rows(backend.engine, incoming_statuses)
    assert (row["journal_id"], row["status_code"], row["from_organ_id"], row["description"]) == (
        "ST-1", "03", H41, "Đã vào sổ")
    assert row["status_time"] == dt.datetime(2026, 11, 23, 7, 59)

    event = LifecycleEvent(journal_id="EV-1", event="revoked", document_id="DOC-9",
                           from_organ_id=G22, at=dt.datetime(2026, 11, 23, 9, 0),
                           original_location="database:dms_incoming_documents/IN-0",
                           detail={"reason": "Ban hành nhầm", "business_type": 1})
    adapter.record_event(event)
    adapter.record_event(event)
    [row] = _rows(backend.engine, incoming_events)
    assert (row["event"], row["document_id"], row["original_location"]) == (
        "revoked", "DOC-9", "database:dms_incoming_documents/IN-0")
    assert json.loads(row["detail"]) == {"business_type": 1, "reason": "Ban hành nhầm"}
