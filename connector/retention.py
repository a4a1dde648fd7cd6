"""Retention: forget what is old and finished, never a received document.

Purged: the journal's history of finished items (``retention.history_days``; items stored within
the de-duplication window are kept, since they are what a redelivery is compared against), the
``sent/`` and ``failed/`` archives of the folder contract (``sent_archive_days``,
``failed_archive_days``), and the package store's copies of finished outgoing items. Never
touched: ``inbox/``, ``quarantine/``, the store's received packages, and anything still pending.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import time
from pathlib import Path
from typing import Any

from connector import fsutil
from connector.logs import get_logger

log = get_logger(__name__)

_SIDECARS = (".receipt.json", ".error.txt")


def purge_archive(directory: Path, older_than: dt.timedelta, *, now: float | None = None) -> int:
    """Remove items of ``sent/`` or ``failed/`` (``NAME``, ``NAME.edxml`` and their sidecars,
    together) whose newest part is older than ``older_than``; also in ``statuses/``.
    Returns the number of items removed."""
    if not directory.is_dir():
        return 0
    cutoff = (now or time.time()) - older_than.total_seconds()
    groups: dict[str, list[os.DirEntry[str]]] = {}
    removed = 0
    for entry in os.scandir(directory):
        if entry.name.startswith("."):
            continue
        if entry.name == "statuses" and entry.is_dir(follow_symlinks=False):
            removed += purge_archive(Path(entry.path), older_than, now=now)
            continue
        key = entry.name
        for suffix in _SIDECARS:
            if key.endswith(suffix):
                key = key[: -len(suffix)]
                break
        groups.setdefault(key, []).append(entry)
    for members in groups.values():
        newest = max(_mtime(entry) for entry in members)
        if newest >= cutoff:
            continue
        for entry in members:
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        removed += 1
    if removed:
        fsutil.fsync_dir(directory)
    return removed


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return 0.0


def run_retention(runtime: Any) -> dict[str, int]:
    """One retention pass over the journal, the folder archives and the package store."""
    settings = runtime.settings
    retention = settings.retention
    journal = runtime.journal
    counts = dict(journal.purge(dt.timedelta(days=retention.history_days),
                                dedupe_window=dt.timedelta(days=settings.inbox.dedupe_window_days)))
    folder = runtime.folder
    if folder is not None:
        counts["sent_archive"] = purge_archive(folder.layout.sent,
                                               dt.timedelta(days=retention.sent_archive_days))
        counts["failed_archive"] = purge_archive(folder.layout.failed,
                                                 dt.timedelta(days=retention.failed_archive_days))

    def keep(item_id: str) -> bool:
        record = journal.find_outgoing(item_id)
        return record is not None and not record.state.terminal

    counts["stored_packages"] = runtime.store.purge_outgoing(
        dt.timedelta(days=retention.sent_archive_days), keep)
    log.info("retention_done", **counts)
    return counts
