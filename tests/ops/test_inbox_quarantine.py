"""`inbox list|redeliver`, `quarantine list|release|refuse` and `journal backup`."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from connector.journal import IncomingState

from .conftest import PDF_BYTES, received_document


def _delivered(ctx, daemon_side, site, **kwargs):
    incoming_id, document = received_document(ctx, site, **kwargs)
    location = daemon_side.deliver_document(document)
    ctx.journal.incoming.record_delivered(incoming_id, location)
    return incoming_id, Path(location)


def _quarantined(ctx, daemon_side, site, **kwargs):
    incoming_id, document = received_document(ctx, site, **kwargs)
    location = daemon_side.quarantine_document(document, "signature invalid: digest mismatch")
    ctx.journal.incoming.record_quarantined(incoming_id, "signature invalid: digest mismatch", location)
    return incoming_id, Path(location)


def test_inbox_list_shows_received_documents(ctx, daemon_side, site, cli):
    incoming_id, location = _delivered(ctx, daemon_side, site)
    code, out, err = cli("inbox", "list", "--json")
    assert code == 0, err
    [row] = json.loads(out)
    assert row["id"] == incoming_id and row["sender"] == site.peer
    assert row["subject"] == "Về việc phối hợp" and row["signature"] == "absent"
    assert row["delivered_location"] == str(location) and row["location_present"] is True
    assert row["document_id"].endswith("88/BNV-VP") and row["lifecycle"] == []
    code, out, _ = cli("inbox", "list")
    assert code == 0 and incoming_id in out and "Về việc phối hợp" in out


def test_redeliver_recreates_a_deleted_inbox_folder(ctx, daemon_side, site, cli):
    incoming_id, location = _delivered(ctx, daemon_side, site)
    original = json.loads((location / "metadata.json").read_text(encoding="utf-8"))
    shutil.rmtree(location)  # the DMS lost it
    assert json.loads(cli("inbox", "list", "--json")[1])[0]["location_present"] is False
    code, out, err = cli("inbox", "redeliver", incoming_id)
    assert code == 0, err
    assert location.is_dir() and str(location) in out
    again = json.loads((location / "metadata.json").read_text(encoding="utf-8"))
    assert again["journal_id"] == incoming_id and again["document_id"] == original["document_id"]
    assert (location / "package.edxml").is_file()
    assert (location / "phụ lục.pdf").read_bytes() == PDF_BYTES
    assert any("redeliver" in warning for warning in again["warnings"])
    assert [e.event for e in ctx.journal.events(incoming_id)][-1] == "redelivered"
    # by axis DocId too, and a document still present is left as it is
    before = (location / "metadata.json").stat().st_mtime_ns
    assert cli("inbox", "redeliver", "axis-77")[0] == 0
    assert (location / "metadata.json").stat().st_mtime_ns == before


def test_quarantine_list_and_release(ctx, daemon_side, site, cli):
    incoming_id, held = _quarantined(ctx, daemon_side, site)
    rows = json.loads(cli("quarantine", "list", "--json")[1])
    assert [row["id"] for row in rows] == [incoming_id]
    assert rows[0]["quarantine_reason"].startswith("signature invalid")
    code, out, err = cli("quarantine", "release", incoming_id)
    assert code == 0, err
    record = ctx.journal.incoming.get_incoming(incoming_id)
    assert record.state is IncomingState.DELIVERED and not record.quarantined
    inbox_folder = Path(record.delivered_location)
    assert inbox_folder.is_relative_to(site.exchange / "inbox") and inbox_folder.is_dir()
    metadata = json.loads((inbox_folder / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["quarantine"]["reason"].startswith("signature invalid")
    assert (held / "released.json").is_file()  # the quarantine copy stays, saying where it went
    assert json.loads(cli("quarantine", "list", "--json")[1]) == []
    code, _, err = cli("quarantine", "release", incoming_id)
    assert code == 2 and "not in quarantine" in err


def test_release_all_with_progress(ctx, daemon_side, site, cli):
    first, _ = _quarantined(ctx, daemon_side, site, axis_doc_id="axis-1")
    second, held = _quarantined(ctx, daemon_side, site, axis_doc_id="axis-2")
    shutil.rmtree(held)  # a lost quarantine copy is rebuilt from the stored package
    code, out, err = cli("quarantine", "release", "--all")
    assert code == 0, err
    assert "released 2 item(s)" in out and "2/2" in err
    for incoming_id in (first, second):
        record = ctx.journal.incoming.get_incoming(incoming_id)
        assert record.state is IncomingState.DELIVERED and Path(record.delivered_location).is_dir()


def test_refuse_queues_status_02_to_the_sender_and_marks_refused(ctx, daemon_side, site, cli):
    from connector.edxml.reader import read_package
    from connector.pipeline.outbound_build import PackageBuilder

    incoming_id, held = _quarantined(ctx, daemon_side, site)
    code, out, err = cli("quarantine", "refuse", incoming_id, "--reason", "Chữ ký số không hợp lệ")
    assert code == 0, err
    record = ctx.journal.incoming.get_incoming(incoming_id)
    assert record.state is IncomingState.REFUSED and not record.quarantined
    [status] = ctx.journal.outgoing.list_outgoing()
    assert status.kind == "status" and status.recipients == [site.peer]
    assert status.meta["status"]["code"] == "02"
    assert status.meta["status"]["description"] == "Chữ ký số không hợp lệ"
    assert status.document_id == record.document_id and status.id in out
    built = PackageBuilder(ctx.runtime).build(status, None)
    [member] = ctx.store.members(built.stored.path)
    package = read_package(member.path).package
    assert package.status_code.value == "02" and package.response_for.organ_id == site.peer
    assert json.loads((held / "refused.json").read_text(encoding="utf-8"))["status_item"] == status.id
    # nothing is delivered, and repeating is refused without queueing a second 02
    assert not any((site.exchange / "inbox").rglob("metadata.json"))
    code, _, err = cli("quarantine", "refuse", incoming_id, "--reason", "again")
    assert code == 2 and "already refused" in err
    assert len(ctx.journal.outgoing.list_outgoing()) == 1


def test_redeliver_of_a_quarantined_item_points_to_release(ctx, daemon_side, site, cli):
    incoming_id, _ = _quarantined(ctx, daemon_side, site)
    code, _, err = cli("inbox", "redeliver", incoming_id)
    assert code == 2 and "quarantine release" in err


def test_journal_backup_is_a_readable_copy(ctx, site, cli, tmp_path):
    item = ctx.journal.outgoing.enqueue("cli", "backup-me", "package", recipients=[site.peer])
    target = tmp_path / "backups" / "journal-copy.db"
    target.parent.mkdir()
    code, out, err = cli("journal", "backup", str(target))
    assert code == 0, err
    assert str(target) in out
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT id FROM outgoing").fetchall() == [(item.id,)]
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    code, _, err = cli("journal", "backup", str(tmp_path / "no-such-dir" / "x.db"))
    assert code == 1 and "does not exist" in err
