"""Retention of the folder archives (sent/, failed/) with real files and real modification
times: item and sidecar go together, judged by the newer of the two; nothing else is touched."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from connector.dms.base import Failure, Receipt
from connector.dms.folder.side import FolderSide
from connector.pipeline.retention import purge_archive

DAY = 86400.0
NOW = time.time()
OLD = NOW - 40 * DAY
RECEIVER = "000.00.00.H01"


@pytest.fixture
def side(tmp_path: Path):
    folder_side = FolderSide(tmp_path / "exchange", instance="node1")
    yield folder_side
    folder_side.close()


def _receipt(journal_id: str) -> Receipt:
    return Receipt(journal_id=journal_id, document_id="000.00.00.G22,2026/11/23,1/VPCP",
                   state="sent", axis_doc_id="axis-" + journal_id,
                   sent_at=dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc),
                   recipients={RECEIVER: {"status": None}})


def _failure() -> Failure:
    return Failure(journal_id="f-1", reason="unknown recipient", attempts=1,
                   failed_at=dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc))


def _drop(side: FolderSide, name: str, *, bundle: bool = False, status: bool = False):
    outbox = side.layout.outbox_statuses if status else side.layout.outbox
    if bundle:
        (outbox / name).mkdir()
        (outbox / name / "a.pdf").write_bytes(b"%PDF")
        (outbox / name / "document.yaml").write_text("subject: x\n")
    else:
        (outbox / (name + ".part")).write_bytes(b"<edXML/>" if not status else b"code: '03'\n")
        os.rename(outbox / (name + ".part"), outbox / name)
    (item,) = side.claim_ready()
    return item


def _age(*paths: Path, when: float = OLD) -> None:
    for path in paths:
        os.utime(path, (when, when), follow_symlinks=False)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_old_sent_and_failed_items_go_with_their_sidecars(side):
    sent, failed = side.layout.sent, side.layout.failed
    old_package = _drop(side, "old.edxml")
    side.mark_sent(old_package, _receipt("1"))
    old_bundle = _drop(side, "oldbundle", bundle=True)
    side.mark_failed(old_bundle, _failure())
    fresh = _drop(side, "fresh.edxml")
    side.mark_sent(fresh, _receipt("2"))
    status = _drop(side, "ack.yaml", status=True)
    side.mark_sent(status, _receipt("3"))
    _age(sent / "old.edxml", sent / "old.receipt.json", failed / "oldbundle",
         failed / "oldbundle.error.txt", sent / "statuses" / "ack.yaml",
         sent / "statuses" / "ack.receipt.json")

    removed = side.purge_archives(dt.timedelta(days=30), now=NOW)

    assert sorted(removed["sent"]) == ["old.edxml", "statuses/ack.yaml"]
    assert removed["failed"] == ["oldbundle"]
    assert _names(sent) == ["fresh.edxml", "fresh.receipt.json", "statuses"]
    assert _names(sent / "statuses") == []
    assert _names(failed) == ["statuses"]


def test_a_receipt_updated_by_a_late_status_keeps_its_old_item(side):
    """The package file is old but its receipt was rewritten yesterday (a status arrived):
    judged together, both stay. (Grouping by file name alone split cv.edxml from
    cv.receipt.json and removed the package under its live receipt.)"""
    item = _drop(side, "cv.edxml")
    side.mark_sent(item, _receipt("1"))
    _age(side.layout.sent / "cv.edxml")
    _age(side.layout.sent / "cv.receipt.json", when=NOW - DAY)
    assert side.purge_archives(dt.timedelta(days=30), now=NOW) == {"sent": [], "failed": []}
    assert _names(side.layout.sent) == ["cv.edxml", "cv.receipt.json", "statuses"]


def test_stamped_collision_names_are_paired_by_the_receipt_contents(side):
    first = _drop(side, "weekly.edxml")
    side.mark_sent(first, _receipt("1"))
    second = _drop(side, "weekly.edxml")
    side.mark_sent(second, _receipt("2"))
    names = _names(side.layout.sent)
    stamped = [n for n in names if n.startswith("weekly--") and n.endswith(".edxml")]
    assert len(stamped) == 1
    stamped_receipt = stamped[0][: -len(".edxml")] + ".receipt.json"
    _age(side.layout.sent / stamped[0], side.layout.sent / stamped_receipt)
    removed = side.purge_archives(dt.timedelta(days=30), now=NOW)
    assert removed["sent"] == stamped
    assert _names(side.layout.sent) == ["statuses", "weekly.edxml", "weekly.receipt.json"]


def test_separate_limits_for_sent_and_failed(side):
    sent_item = _drop(side, "s.edxml")
    side.mark_sent(sent_item, _receipt("1"))
    failed_item = _drop(side, "f.edxml")
    side.mark_failed(failed_item, _failure())
    ten_days = NOW - 10 * DAY
    _age(side.layout.sent / "s.edxml", side.layout.sent / "s.receipt.json",
         side.layout.failed / "f.edxml", side.layout.failed / "f.error.txt", when=ten_days)
    removed = side.purge_archives(dt.timedelta(days=5), failed_older_than=dt.timedelta(days=30),
                                  now=NOW)
    assert removed == {"sent": ["s.edxml"], "failed": []}
    assert _names(side.layout.failed) == ["f.edxml", "f.error.txt", "statuses"]


def test_a_lone_receipt_whose_item_is_still_in_work_is_kept(side):
    """A crash between writing the receipt and the move: mark_sent finishes the move later, and
    needs the receipt to know the item's place."""
    item = _drop(side, "pending.edxml")
    side.mark_sent(item, _receipt("1"))
    os.rename(side.layout.sent / "pending.edxml", side.layout.work / item.source_ref)  # undo the move
    _age(side.layout.sent / "pending.receipt.json")
    assert side.purge_archives(dt.timedelta(days=30), now=NOW)["sent"] == []
    side.update_receipt(item, _receipt("1"))
    assert (side.layout.sent / "pending.edxml").exists()


def test_inbox_quarantine_outbox_and_work_are_never_touched(side):
    layout = side.layout
    inbox_item = layout.inbox / "2026-01-01" / "000.00.00.G22_1-X_axis-1"
    quarantined = layout.quarantine / "2026-01-01" / "000.00.00.G22_2-X_axis-2"
    for folder in (inbox_item, quarantined):
        folder.mkdir(parents=True)
        (folder / "package.edxml").write_bytes(b"<edXML/>")
        _age(folder / "package.edxml", folder)
    _drop(side, "claimed.edxml")
    (layout.outbox / "waiting.edxml").write_bytes(b"<edXML/>")
    _age(layout.outbox / "waiting.edxml")
    claimed = list(layout.work.iterdir())
    _age(*claimed)
    before = sorted(str(p) for p in layout.root.rglob("*"))
    side.purge_archives(dt.timedelta(days=1), now=NOW)
    assert sorted(str(p) for p in layout.root.rglob("*")) == before


def test_a_symlink_in_the_archive_is_removed_but_never_followed(side, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    link = side.layout.sent / "link"
    link.symlink_to(precious, target_is_directory=True)
    _age(link)
    assert side.purge_archives(dt.timedelta(days=30), now=NOW)["sent"] == ["link"]
    assert not os.path.lexists(link)
    assert (precious / "keep.txt").read_text() == "keep"


def test_purge_archive_counts_items_not_files(tmp_path):
    sent = tmp_path / "sent"
    sent.mkdir()
    for name in ("a.edxml", "a.receipt.json", "b", "b.receipt.json"):
        path = sent / name
        path.mkdir() if name == "b" else path.write_text("{}")
        _age(path)
    assert purge_archive(sent, dt.timedelta(days=30), now=NOW) == 2
    assert list(sent.iterdir()) == []
