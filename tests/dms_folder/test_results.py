"""sent/ with receipts, failed/ with error files, retry, and idempotency after crashes."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import threading

import pytest
import yaml

from connector import fsutil
from connector.dms.base import Failure, Receipt
from connector.dms.folder import results as folder_results
from connector.errors import ConnectorError

from .conftest import RECEIVER, drop_bundle, drop_file, minimal_metadata

SENT_AT = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone.utc)


def receipt(journal_id: str = "out-1", **recipients) -> Receipt:
    return Receipt(journal_id=journal_id, document_id="000.00.00.G22,2026/11/23,7816/VPCP-TTĐT",
                   state="sent", axis_doc_id="axis-42", sent_at=SENT_AT,
                   recipients=recipients or {RECEIVER: {"status": None}})


def failure(reason: str = "axis refused: unknown recipient 000.00.00.Z99") -> Failure:
    return Failure(journal_id="out-7", reason=reason, attempts=3,
                   failed_at=dt.datetime(2026, 11, 23, 10, 5, tzinfo=dt.timezone.utc))


def snapshot(root):
    return {str(path.relative_to(root)): (path.read_bytes() if path.is_file() else None)
            for path in sorted(root.rglob("*")) if not path.name.startswith(".instance-")}


def test_mark_sent_moves_the_item_and_writes_the_receipt(side, exchange):
    drop_file(exchange / "outbox" / "cv-1.edxml", b"pkg")
    (item,) = side.claim_ready()
    side.mark_sent(item, receipt())

    assert (exchange / "sent" / "cv-1.edxml").read_bytes() == b"pkg"
    assert not any((exchange / "work").glob("*cv-1*"))
    data = json.loads((exchange / "sent" / "cv-1.receipt.json").read_text())
    assert data["journal_id"] == "out-1" and data["axis_doc_id"] == "axis-42"
    assert data["name"] == "cv-1.edxml" and data["source_ref"] == item.source_ref
    assert data["recipients"] == {RECEIVER: {"status": None, "label": None, "description": None,
                                             "at": None}}
    mode = stat.S_IMODE(os.stat(exchange / "sent" / "cv-1.receipt.json").st_mode)
    assert mode == 0o640


def test_mark_sent_twice_changes_nothing(side, exchange):
    drop_bundle(exchange / "outbox", "cv-2", {"a.pdf": b"%PDF"}, minimal_metadata())
    (item,) = side.claim_ready()
    side.mark_sent(item, receipt())
    before = snapshot(exchange)
    side.mark_sent(item, receipt())
    assert snapshot(exchange) == before
    assert (exchange / "sent" / "cv-2" / "a.pdf").read_bytes() == b"%PDF"


def test_mark_sent_finishes_a_move_interrupted_after_the_receipt(side, exchange):
    drop_file(exchange / "outbox" / "cv-3.edxml", b"pkg")
    (item,) = side.claim_ready()
    claim = folder_results.claim_of(item)
    place = folder_results.placements(exchange / "sent", claim, ".receipt.json")[0]
    fsutil.create_exclusive(place.sidecar, folder_results._receipt_bytes(receipt(), claim))
    # ... and the process died before moving the item
    assert (exchange / "work" / item.source_ref).exists()

    side.mark_sent(item, receipt())
    assert (exchange / "sent" / "cv-3.edxml").read_bytes() == b"pkg"
    assert not (exchange / "work" / item.source_ref).exists()


def test_a_reused_name_gets_a_stamped_name_in_sent(side, exchange):
    drop_file(exchange / "outbox" / "weekly.edxml", b"first")
    (first,) = side.claim_ready()
    side.mark_sent(first, receipt("out-1"))
    drop_file(exchange / "outbox" / "weekly.edxml", b"second")
    (second,) = side.claim_ready()
    side.mark_sent(second, receipt("out-2"))
    side.mark_sent(second, receipt("out-2"))  # idempotent on the stamped name too

    stamp = folder_results.claim_of(second).stamp
    assert (exchange / "sent" / "weekly.edxml").read_bytes() == b"first"
    assert (exchange / "sent" / f"weekly--{stamp}.edxml").read_bytes() == b"second"
    receipt_two = json.loads((exchange / "sent" / f"weekly--{stamp}.receipt.json").read_text())
    assert receipt_two["journal_id"] == "out-2"
    assert len(list((exchange / "sent").iterdir())) == 5  # 2 items, 2 receipts, statuses/


def test_update_receipt_rewrites_only_when_something_changed(side, exchange):
    drop_file(exchange / "outbox" / "cv-4.edxml")
    (item,) = side.claim_ready()
    side.mark_sent(item, receipt())
    path = exchange / "sent" / "cv-4.receipt.json"
    at = "2026-11-23T10:00:00+07:00"
    side.update_receipt(item, receipt(**{RECEIVER: {"status": "03", "at": at}}))
    data = json.loads(path.read_text())
    assert data["recipients"][RECEIVER]["status"] == "03"
    assert data["recipients"][RECEIVER]["label"] == "accepted"
    inode = os.stat(path).st_ino
    side.update_receipt(item, receipt(**{RECEIVER: {"status": "03", "at": at}}))
    assert os.stat(path).st_ino == inode  # not rewritten


def test_mark_failed_writes_the_error_file_with_the_retry_command(side, exchange):
    drop_bundle(exchange / "outbox", "cv-5", {"a.pdf": b"%PDF"}, minimal_metadata())
    (item,) = side.claim_ready()
    side.mark_failed(item, failure())
    assert (exchange / "failed" / "cv-5" / "a.pdf").exists()
    text = (exchange / "failed" / "cv-5.error.txt").read_text()
    assert "Could not send: cv-5" in text
    assert "axis refused: unknown recipient 000.00.00.Z99" in text
    assert "2026-11-23T10:05:00+00:00" in text and "Attempts:    3" in text
    assert "edxml-connector retry out-7" in text
    before = snapshot(exchange)
    side.mark_failed(item, failure())
    assert snapshot(exchange) == before


def test_unclaim_of_a_failed_item_requeues_it_and_reads_it_again(side, exchange):
    drop_bundle(exchange / "outbox", "fixme", {"a.pdf": b"%PDF"}, minimal_metadata(subject=None))
    (item,) = side.claim_ready()
    assert item.problem is not None
    side.mark_failed(item, failure(item.problem.one_line()))
    assert (exchange / "failed" / "fixme.error.txt").exists()

    # the DMS fixes the metadata in failed/, the operator runs `retry`
    (exchange / "failed" / "fixme" / "document.yaml").write_text(
        yaml.safe_dump(minimal_metadata(), allow_unicode=True), encoding="utf-8")
    side.unclaim(item)
    side.unclaim(item)  # idempotent
    assert not (exchange / "failed" / "fixme").exists()
    assert not (exchange / "failed" / "fixme.error.txt").exists()

    (again,) = side.claim_ready()
    assert again.source_ref == item.source_ref and again.problem is None
    assert again.metadata.subject == "Về việc góp ý dự thảo"
    side.mark_sent(again, receipt())
    assert (exchange / "sent" / "fixme" / "document.yaml").exists()


def test_unclaim_of_an_item_in_work_hands_it_out_again(side, exchange):
    drop_file(exchange / "outbox" / "later.edxml")
    (item,) = side.claim_ready()
    assert side.claim_ready() == []
    side.unclaim(item)
    (again,) = side.claim_ready()
    assert again.source_ref == item.source_ref


def test_status_items_are_archived_under_statuses(side, exchange):
    drop_file(exchange / "outbox" / "statuses" / "ack.yaml",
              b"code: '03'\ndocument_id: 'X,2026/11/23,1/A'\n")
    (item,) = side.claim_ready()
    side.mark_sent(item, receipt("st-1"))
    assert (exchange / "sent" / "statuses" / "ack.yaml").exists()
    assert (exchange / "sent" / "statuses" / "ack.receipt.json").exists()


def test_sent_item_cannot_be_marked_failed_or_retried(side, exchange):
    drop_file(exchange / "outbox" / "done.edxml")
    (item,) = side.claim_ready()
    side.mark_sent(item, receipt())
    with pytest.raises(ConnectorError, match="already in sent/"):
        side.mark_failed(item, failure())
    with pytest.raises(ConnectorError, match="already sent"):
        side.unclaim(item)
    assert side.location_of(item) == exchange / "sent" / "done.edxml"


def test_mark_sent_cleans_a_stale_error_file_left_by_an_interrupted_mark_failed(side, exchange):
    drop_file(exchange / "outbox" / "flaky.edxml", b"pkg")
    (item,) = side.claim_ready()
    claim = folder_results.claim_of(item)
    place = folder_results.placements(exchange / "failed", claim, ".error.txt")[0]
    fsutil.atomic_write(place.sidecar, folder_results.error_text(claim, failure()))  # then crash

    side.mark_sent(item, receipt())  # the journal had not recorded the failure: it was resent
    assert (exchange / "sent" / "flaky.edxml").exists()
    assert not place.sidecar.exists()


def test_an_item_marked_failed_then_found_accepted_moves_to_sent(side, exchange):
    drop_file(exchange / "outbox" / "late.edxml", b"pkg")
    (item,) = side.claim_ready()
    side.mark_failed(item, failure("timeout"))
    side.mark_sent(item, receipt())
    assert (exchange / "sent" / "late.edxml").read_bytes() == b"pkg"
    assert list((exchange / "failed").iterdir()) == [exchange / "failed" / "statuses"]


def test_two_items_with_the_same_name_archived_at_once_get_distinct_places(exchange):
    from connector.dms.folder.side import FolderSide

    with FolderSide(exchange, instance="a") as first, FolderSide(exchange, instance="b") as second:
        items = []
        for side in (first, second):
            drop_file(exchange / "outbox" / "same.edxml", side.instance.encode())
            items.extend((side, item) for item in side.claim_ready())
        barrier = threading.Barrier(2)

        def send(side, item):
            barrier.wait()
            side.mark_sent(item, receipt(side.instance))

        threads = [threading.Thread(target=send, args=pair) for pair in items]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    packages = sorted((exchange / "sent").glob("same*.edxml"))
    assert len(packages) == 2 and {path.read_bytes() for path in packages} == {b"a", b"b"}
    for path in packages:
        sidecar = path.with_name(path.name[: -len(".edxml")] + ".receipt.json")
        assert json.loads(sidecar.read_text())["journal_id"] == path.read_text()


def test_a_claim_put_back_by_another_process_is_found_at_the_next_listing(side, exchange,
                                                                        monkeypatch):
    """``edxml-connector retry`` runs in its own process: it moves failed/NAME back to work/
    without telling the daemon's FolderSide, which lists work/ only now and then (own claims are
    kept in memory). The next listing hands the item out again."""
    from connector.dms.folder import side as folder
    drop_file(exchange / "outbox" / "again.edxml")
    (item,) = side.claim_ready()
    side.mark_failed(item, failure())
    assert side.claim_ready() == []
    folder_results.put_back(side.layout, item)  # what the CLI process does
    monkeypatch.setattr(folder, "WORK_RELIST_SECONDS", 0.0)  # the next call is a listing
    (again,) = side.claim_ready()
    assert again.source_ref == item.source_ref
    assert side.claim_ready() == []  # handed out once


@pytest.mark.parametrize("archive", ["sent", "failed"])
def test_the_sidecar_appears_only_after_the_item_is_complete_beside_it(side, exchange,
                                                                        monkeypatch, archive):
    """The folder contract's order: a DMS that sees NAME.error.txt / NAME.receipt.json finds
    NAME beside it. A crash between reserving the name and moving the item leaves only a
    hidden reservation, which the next attempt finishes."""
    drop_file(exchange / "outbox" / "cv-9.edxml", b"pkg")
    (item,) = side.claim_ready()
    suffix = ".receipt.json" if archive == "sent" else ".error.txt"
    place = folder_results.placements(exchange / archive, folder_results.claim_of(item),
                                      suffix)[0]

    def crash(source, target):
        assert place.reservation.exists() and not place.sidecar.exists()
        raise OSError("power lost")

    monkeypatch.setattr(fsutil, "durable_rename", crash)
    mark = side.mark_sent if archive == "sent" else side.mark_failed
    argument = receipt() if archive == "sent" else failure()
    with pytest.raises(OSError):
        mark(item, argument)
    assert not place.sidecar.exists() and not place.item.exists()
    assert place.reservation.name.startswith(".")
    monkeypatch.undo()

    mark(item, argument)
    assert place.item.read_bytes() == b"pkg" and place.sidecar.exists()
    assert not place.reservation.exists()
