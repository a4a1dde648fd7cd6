"""Leftover delivery staging folders (``inbox/DAY/.ITEM.tmp-XXXXXXXX``) from a crash are removed
at start once unchanged for the grace period; completed items and look-alikes never are."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import structlog.testing

from connector.dms.folder.retention import sweep_staging
from connector.dms.folder.side import FolderSide

from .conftest import incoming_package

OLD = time.time() - 3600


def _staging(base: Path, name: str, *, when: float = OLD) -> Path:
    folder = base / "2026-11-23" / name
    folder.mkdir(parents=True)
    (folder / "package.edxml").write_bytes(b"<edXML/>")
    for path in (folder / "package.edxml", folder):
        os.utime(path, (when, when))
    return folder


def test_start_removes_old_staging_leftovers_and_keeps_completed_items(exchange, tmp_path, capsys):
    with FolderSide(exchange, instance="node1") as side:
        completed = Path(side.deliver_document(incoming_package(tmp_path)))
    for path in [completed, *completed.iterdir()]:
        os.utime(path, (OLD, OLD))
    inbox, quarantine = exchange / "inbox", exchange / "quarantine"
    leftover = _staging(inbox, ".000.00.00.G22_1-X_axis-9.tmp-0a1b2c3d")
    quarantined_leftover = _staging(quarantine, ".000.00.00.G22_2-X_axis-8.tmp-deadbeef")
    recent = _staging(inbox, ".000.00.00.G22_3-X_axis-7.tmp-00000001", when=time.time())
    dms_dot_dir = _staging(inbox, ".dms-trash")          # not our shape
    lookalike = _staging(inbox, "x.tmp-0a1b2c3d")         # no leading dot: an item name
    # Captured whatever logging an earlier test of the run configured (stream, level).
    with structlog.testing.capture_logs() as logged, FolderSide(exchange, instance="node1"):
        pass

    assert not leftover.exists() and not quarantined_leftover.exists()
    assert recent.exists() and dms_dot_dir.exists() and lookalike.exists()
    assert (completed / "metadata.json").exists() and (completed / "package.edxml").exists()
    removed = [entry for entry in logged if entry["event"] == "inbox_staging_removed"]
    assert any(str(leftover) in str(entry) for entry in removed), logged


def test_a_staging_folder_with_a_fresh_file_inside_is_a_live_writer(exchange):
    exchange.mkdir()
    folder = _staging(exchange / "inbox", ".ITEM.tmp-12345678")
    (folder / "attachment.pdf").write_bytes(b"%PDF")  # written just now
    os.utime(folder, (OLD, OLD))
    assert sweep_staging([exchange / "inbox"], grace=dt.timedelta(minutes=10)) == []
    assert folder.exists()


def test_a_delivery_running_in_this_process_is_never_swept(exchange):
    exchange.mkdir()
    folder = _staging(exchange / "inbox", ".ITEM.tmp-87654321")
    assert sweep_staging([exchange / "inbox"], active=[folder]) == []
    assert sweep_staging([exchange / "inbox"]) == [folder]


def test_a_symlinked_staging_name_is_left_alone(exchange, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "keep").write_text("keep")
    day = exchange / "inbox" / "2026-11-23"
    day.mkdir(parents=True)
    link = day / ".ITEM.tmp-abcdef01"
    link.symlink_to(target, target_is_directory=True)
    os.utime(link, (OLD, OLD), follow_symlinks=False)
    assert sweep_staging([exchange / "inbox"], grace=dt.timedelta(0)) == []
    assert (target / "keep").exists() and os.path.lexists(link)
