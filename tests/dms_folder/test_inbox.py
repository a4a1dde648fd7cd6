"""Delivery into inbox/, quarantine and release, and the append-once jsonl logs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import stat
from pathlib import Path

from connector.dms.base import IncomingStatus, LifecycleEvent
from connector.dms.folder.side import FolderSide
from connector.edxml.attachments import prepare_outgoing
from connector.edxml.reader import read_package
from connector.edxml.writer import write_package
from connector.schemas.metadata import InboxMetadata

from .conftest import NOTE_TEXT, PDF_BYTES, SENDER, VIETNAMESE_NAME, incoming_package


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_delivered_item_layout_and_metadata(side, exchange, tmp_path):
    document = incoming_package(tmp_path)
    location = Path(side.deliver_document(document))

    # 20:30 UTC on the 23rd is the 24th in Hà Nội
    assert location.parent == exchange / "inbox" / "2026-11-24"
    assert location.name == "000.00.00.G22_7816-VPCP-TTDT_axis-0001"
    assert (location / "package.edxml").read_bytes() == document.package_path.read_bytes()
    assert (location / VIETNAMESE_NAME).read_bytes() == PDF_BYTES
    assert (location / "ghi chú.txt").read_bytes() == NOTE_TEXT          # extracted
    assert (location / "ghi chú.txt.zip").read_bytes()[:2] == b"PK"      # and kept

    metadata = InboxMetadata.model_validate_json((location / "metadata.json").read_bytes())
    assert metadata.sender == SENDER and metadata.code == "7816/VPCP-TTĐT"
    assert metadata.journal_id == "in-axis-0001" and metadata.axis_doc_id == "axis-0001"
    assert metadata.signature.state == "absent"
    by_file = {entry.file: entry for entry in metadata.attachments}
    assert by_file[VIETNAMESE_NAME].original_name == VIETNAMESE_NAME
    assert by_file["ghi chú.txt"].extracted_from == "ghi chú.txt.zip"
    assert by_file["ghi chú.txt.zip"].original_name == "ghi chú.txt"
    assert metadata.document["subject"] == "Về việc góp ý dự thảo"
    assert not [p for p in location.parent.iterdir() if p.name.startswith(".")]  # no staging left

    assert mode_of(location / "package.edxml") == 0o640
    assert mode_of(location) & 0o2070 == 0o2070  # group may clear the inbox


def test_redelivery_does_nothing_and_returns_the_same_path(side, exchange, tmp_path):
    document = incoming_package(tmp_path)
    first = side.deliver_document(document)
    metadata_before = (Path(first) / "metadata.json").read_bytes()
    second = side.deliver_document(document)
    assert first == second
    assert (Path(first) / "metadata.json").read_bytes() == metadata_before
    assert len(list((exchange / "inbox" / "2026-11-24").iterdir())) == 1


def test_unreadable_package_is_still_delivered_with_a_warning(side, exchange, tmp_path):
    document = incoming_package(tmp_path)
    document.package_path.write_bytes(b"<edXML><not-closed>")
    location = Path(side.deliver_document(document))
    metadata = json.loads((location / "metadata.json").read_text())
    assert (location / "package.edxml").read_bytes() == b"<edXML><not-closed>"
    assert any("attachments not decoded" in warning for warning in metadata["warnings"])


def test_corrupt_zip_part_is_kept_and_the_problem_recorded(side, exchange, tmp_path):
    from connector.edxml import model
    from connector.edxml.reader import read_package
    from connector.edxml.summary import summarize
    from connector.edxml.writer import write_package

    package = read_package(incoming_package(tmp_path).package_path).package
    package.attachments = [model.Attachment(name="scan", content_type="application/zip",
                                            data=b"PK\x03\x04 truncated")]
    path = tmp_path / "corrupt.edxml"
    path.write_bytes(write_package(package))
    document = dataclasses.replace(incoming_package(tmp_path, axis_doc_id="axis-zip"),
                                   package_path=path, summary=summarize(read_package(path)))
    location = Path(side.deliver_document(document))
    assert (location / "scan.zip").read_bytes() == b"PK\x03\x04 truncated"
    metadata = json.loads((location / "metadata.json").read_text())
    (entry,) = metadata["attachments"]
    assert entry["problem"].startswith("not extracted")
    assert any("scan.zip: kept as received" in warning for warning in metadata["warnings"])


def test_a_large_zip_part_is_decoded_to_its_file_and_unpacked_beside_it(side, tmp_path):
    """Received end to end through the folder inbox: a ZIP part of 3 MB (base64 left in the
    package file by the reader) is decoded to its file and unpacked beside it."""
    payload = os.urandom(3 * 1024 * 1024)
    document = incoming_package(tmp_path)
    package = read_package(document.package_path).package
    package.attachments = [prepare_outgoing("số liệu.bin", data=payload)]
    document.package_path.write_bytes(write_package(package))
    [part] = read_package(document.package_path).package.attachments
    assert part.encoded is not None  # the case under test: a part still in the package file
    location = Path(side.deliver_document(document))
    assert (location / "số liệu.bin").read_bytes() == payload
    assert (location / "số liệu.bin.zip").read_bytes()[:2] == b"PK"
    assert not [p for p in location.iterdir() if p.name.startswith(".")]
    metadata = json.loads((location / "metadata.json").read_text())
    [entry] = [a for a in metadata["attachments"] if a.get("extracted_from")]
    assert entry["size"] == len(payload)


def test_quarantine_then_release(side, exchange, tmp_path):
    document = incoming_package(tmp_path, axis_doc_id="axis-q")
    document.signature = {"state": "invalid", "reason": "digest mismatch"}
    held = Path(side.quarantine_document(document, "signature invalid: digest mismatch"))
    assert held.parent.parent == exchange / "quarantine"
    assert (held / "reason.txt").read_text() == "signature invalid: digest mismatch\n"
    assert (held / "package.edxml").read_bytes() == document.package_path.read_bytes()
    assert not (held / VIETNAMESE_NAME).exists()  # untrusted: not decoded
    assert side.quarantine_document(document, "again") == str(held)
    assert (held / "reason.txt").read_text() == "signature invalid: digest mismatch\n"

    released = Path(side.release_quarantined(str(held)))
    assert released.parent.parent == exchange / "inbox"
    assert (released / VIETNAMESE_NAME).read_bytes() == PDF_BYTES
    metadata = json.loads((released / "metadata.json").read_text())
    assert metadata["signature"]["state"] == "invalid"
    assert metadata["quarantine"]["reason"] == "signature invalid: digest mismatch"
    assert any("released from quarantine" in warning for warning in metadata["warnings"])
    marker = json.loads((held / "released.json").read_text())
    assert marker["inbox"] == str(released)
    assert side.release_quarantined(str(held)) == str(released)
    assert (held / "package.edxml").exists()  # nothing received is ever deleted


def status(journal_id: str, code: str = "03") -> IncomingStatus:
    return IncomingStatus(journal_id=journal_id, axis_doc_id=f"ax-{journal_id}",
                          received_at=dt.datetime(2026, 11, 23, 9, tzinfo=dt.timezone.utc),
                          from_organ_id="000.00.00.H01", document_id="D-1", code=code,
                          description="Đã tiếp nhận", timestamp=None)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_statuses_are_appended_once_even_across_restarts(exchange):
    with FolderSide(exchange, instance="n") as side:
        side.deliver_status(status("s1"))
        side.deliver_status(status("s1"))
        side.deliver_status(status("s2", "06"))
    with FolderSide(exchange, instance="n") as restarted:  # fresh memory: must read the file
        restarted.deliver_status(status("s2", "06"))
        restarted.deliver_status(status("s3"))
    lines = read_lines(exchange / "inbox" / "statuses.jsonl")
    assert [line["journal_id"] for line in lines] == ["s1", "s2", "s3"]
    assert lines[0]["label"] == "accepted" and lines[0]["description"] == "Đã tiếp nhận"
    assert lines[1]["label"] == "completed"
    assert mode_of(exchange / "inbox" / "statuses.jsonl") == 0o640


def test_a_torn_line_from_a_crash_is_closed_and_the_status_written_again(exchange):
    log = exchange / "inbox" / "statuses.jsonl"
    with FolderSide(exchange, instance="n") as side:
        side.deliver_status(status("s1"))
        with open(log, "ab") as handle:  # the crash: half of s2's line reached the disk
            handle.write(b'{"journal_id":"s2","axis_do')
    with FolderSide(exchange, instance="n") as restarted:
        restarted.deliver_status(status("s2"))
    raw = log.read_bytes().splitlines()
    assert raw[1] == b'{"journal_id":"s2","axis_do'
    assert json.loads(raw[2])["journal_id"] == "s2"


def test_two_writers_share_one_log_without_duplicates(exchange):
    with FolderSide(exchange, instance="a") as first, FolderSide(exchange, instance="b") as second:
        first.deliver_status(status("s1"))
        second.deliver_status(status("s1"))  # the other connector already wrote it
        second.deliver_status(status("s2"))
        first.deliver_status(status("s2"))
    assert [line["journal_id"] for line in read_lines(exchange / "inbox" / "statuses.jsonl")] \
        == ["s1", "s2"]


def test_record_event_updates_the_original_and_events_log_once(side, exchange, tmp_path):
    original = side.deliver_document(incoming_package(tmp_path))
    event = LifecycleEvent(journal_id="ev-1", event="revoked", document_id="D-1",
                           from_organ_id=SENDER,
                           at=dt.datetime(2026, 11, 25, 8, tzinfo=dt.timezone.utc),
                           original_location=original, detail={"reason": "ban hành nhầm"})
    side.record_event(event)
    side.record_event(event)
    lifecycle = json.loads((Path(original) / "metadata.json").read_text())["lifecycle"]
    assert [entry["event"] for entry in lifecycle] == ["revoked"]
    assert lifecycle[0]["detail"] == {"reason": "ban hành nhầm"}
    InboxMetadata.model_validate_json((Path(original) / "metadata.json").read_bytes())
    lines = read_lines(exchange / "inbox" / "events.jsonl")
    assert [line["journal_id"] for line in lines] == ["ev-1"]
    assert lines[0]["original_location"] == original
    assert (Path(original) / "package.edxml").exists()  # a revoke deletes nothing


def test_event_about_an_unknown_original_is_still_logged(side, exchange):
    side.record_event(LifecycleEvent(journal_id="ev-2", event="take_back_requested",
                                     document_id="D-9", from_organ_id=SENDER,
                                     at=dt.datetime(2026, 11, 25, tzinfo=dt.timezone.utc),
                                     original_location=None))
    assert read_lines(exchange / "inbox" / "events.jsonl")[0]["event"] == "take_back_requested"


def test_metadata_business_type_uses_the_schemas_words():
    """metadata.json's business_type is one of new/revoke/update/replace, as its schema says."""
    from connector.dms.folder.inbox import _business_name

    assert [_business_name(code) for code in (0, 1, 2, 3, "2")] == [
        "new", "revoke", "update", "replace", "update"]
    assert _business_name(None) is None and _business_name(7) is None
