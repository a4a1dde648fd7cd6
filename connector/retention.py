"""Retention: forget what is old and finished, never a received document.

Purged: the journal's history of finished items (``retention.history_days``; items stored within
the de-duplication window are kept, since they are what a redelivery is compared against), the
``sent/`` and ``failed/`` archives of the folder contract (``sent_archive_days``,
``failed_archive_days``), and the package store's copies of finished outgoing items. Never
touched: ``inbox/``, ``quarantine/``, the store's received packages, and anything still pending.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from connector.dms.folder_retention import purge_archive_dir
from connector.logs import get_logger

log = get_logger(__name__)


def purge_archive(directory: Path, older_than: dt.timedelta, *, now: float | None = None) -> int:
    """Remove items of one ``sent/`` or ``failed/`` folder (item and sidecar together, judged by
    the newest of them; ``statuses/`` too) older than ``older_than``; returns how many files or
    folders were removed. The daemon uses ``FolderSide.purge_archives``, which also knows
    ``work/`` (a sidecar whose item is still being moved is kept)."""
    return len(purge_archive_dir(Path(directory), older_than, now=now))


def run_retention(runtime: Any) -> dict[str, int]:
    """One retention pass over the journal, the folder archives and the package store."""
    settings = runtime.settings
    retention = settings.retention
    journal = runtime.journal
    counts = dict(journal.purge(dt.timedelta(days=retention.history_days),
                                dedupe_window=dt.timedelta(days=settings.inbox.dedupe_window_days)))
    folder = runtime.folder
    if folder is not None:
        removed = folder.purge_archives(
            dt.timedelta(days=retention.sent_archive_days),
            failed_older_than=dt.timedelta(days=retention.failed_archive_days))
        counts["sent_archive"] = len(removed["sent"])
        counts["failed_archive"] = len(removed["failed"])

    def keep(item_id: str) -> bool:
        record = journal.find_outgoing(item_id)
        return record is not None and not record.state.terminal

    counts["stored_packages"] = runtime.store.purge_outgoing(
        dt.timedelta(days=retention.sent_archive_days), keep)
    log.info("retention_done", **counts)
    return counts
