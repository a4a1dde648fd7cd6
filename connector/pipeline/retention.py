"""Retention: forget what is old and finished, never a received document.

Purged: the journal's history of finished items (``retention.history_days``; items stored within
the de-duplication window are kept, since they are what a redelivery is compared against), the
``sent/`` and ``failed/`` archives of the folder contract (``sent_archive_days``,
``failed_archive_days``), and the package store's copies of finished outgoing items. Never
touched: ``inbox/``, ``quarantine/``, the store's received packages, and anything still pending.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

from connector import fsutil
from connector.dms.folder.retention import purge_archive_dir
from connector.journal import OutgoingState
from connector.logs import get_logger
from connector.pipeline.context import PipelineContext

log = get_logger(__name__)


def purge_archive(directory: Path, older_than: dt.timedelta, *, now: float | None = None) -> int:
    """Remove items of one ``sent/`` or ``failed/`` folder (item and sidecar together, judged by
    the newest of them; ``statuses/`` too) older than ``older_than``; returns how many files or
    folders were removed. The daemon uses ``FolderSide.purge_archives``, which also knows
    ``work/`` (a sidecar whose item is still being moved is kept)."""
    return len(purge_archive_dir(Path(directory), older_than, now=now))


def run_retention(runtime: PipelineContext, *, folders: Any = None) -> dict[str, int]:
    """One retention pass over the journal, the folder archives and the package store.
    ``folders``: the folder sides whose archives are purged (a hub: every unit's; default the
    runtime's own) — the journal and the store are the hub's, purged once."""
    settings = runtime.settings
    retention = settings.retention
    journal = runtime.journal
    counts = dict(journal.purge(dt.timedelta(days=retention.history_days),
                                dedupe_window=dt.timedelta(days=settings.inbox.dedupe_window_days)))
    sides = [runtime.folder] if folders is None else list(folders)
    for folder in sides:
        if folder is None:
            continue
        removed = folder.purge_archives(
            dt.timedelta(days=retention.sent_archive_days),
            failed_older_than=dt.timedelta(days=retention.failed_archive_days))
        counts["sent_archive"] = counts.get("sent_archive", 0) + len(removed["sent"])
        counts["failed_archive"] = counts.get("failed_archive", 0) + len(removed["failed"])

    failed_cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=retention.failed_archive_days)

    def keep(item_id: str) -> bool:
        """Pending items keep their bytes; a failed one as long as its ``failed/`` copy is
        kept, so that `retry` can still send the very same package."""
        record = journal.outgoing.find_outgoing(item_id)
        if record is None:
            return False
        if record.state is OutgoingState.FAILED:
            return record.updated_at is not None and record.updated_at > failed_cutoff
        return not record.state.terminal

    counts["stored_packages"] = runtime.store.purge_outgoing(
        dt.timedelta(days=retention.sent_archive_days), keep)
    counts["cli_spool"] = len(purge_cli_spool(
        settings.state_dir / CLI_SPOOL, journal, dt.timedelta(days=retention.sent_archive_days)))
    log.info("retention_done", **counts)
    return counts


CLI_SPOOL = Path("spool") / "cli"
"""Where ``edxml-connector send`` keeps the packages it queued (``connector.ops.enqueue``)."""


def purge_cli_spool(directory: Path, journal: Any, older_than: dt.timedelta, *,
                    now: float | None = None) -> list[str]:
    """Remove ``send``'s spooled packages (``<sha256>.edxml``) older than ``older_than`` whose
    journal item is finished (sent, failed, cancelled) or gone (purged, or a ``send`` that
    stopped before queueing). A spooled file whose item is still pending is kept: it is what
    the item is packaged from. Temporary files of an interrupted ``send`` go with the same age.
    Returns the names removed."""

    if not directory.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - older_than.total_seconds()
    removed: list[str] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if not entry.is_file(follow_symlinks=False) and not entry.is_symlink():
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
        except FileNotFoundError:
            continue
        if not entry.name.startswith(".") and not _cli_item_finished(journal, entry.name):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        removed.append(entry.name)
    if removed:
        fsutil.fsync_dir(directory)
        log.info("cli_spool_purged", files=len(removed))
    return removed


def _cli_item_finished(journal: Any, name: str) -> bool:
    fingerprint = name.split(".", 1)[0]
    for kind in ("package", "document"):
        record = journal.outgoing.find_by_source("cli", f"{kind}:{fingerprint}")
        if record is not None:
            if record.state is OutgoingState.FAILED and record.package_sha256 is None:
                return False  # a retry would package it from this very file
            return record.state.terminal
    return True  # no item: forgotten by the journal, or never queued
