"""The agency side as a folder tree: ``FolderSide`` implements :class:`AgencySide` over EXCHANGE.

The contract (``docs/folder-contract.md``) in one paragraph: the DMS puts ready packages, bundles
and status drops in ``outbox/``; the connector claims each by renaming it into ``work/``, and
when the axis has answered moves it to ``sent/`` (with ``NAME.receipt.json``, kept up to date) or
``failed/`` (with ``NAME.error.txt``). Received documents appear as folders in
``inbox/YYYY-MM-DD/``, received statuses and lifecycle events as lines in ``inbox/*.jsonl``, and
documents refused by the signature policy in ``quarantine/``.

Use::

    side = FolderSide("/var/lib/edxml-connector/exchange", instance="node1")
    watcher = side.watcher(on_ready=wake_outbound)       # optional, low latency
    watcher.start()
    for item in side.claim_ready(limit=50):
        if item.problem:        # claimed but unusable: record, then
            side.mark_failed(item, Failure(...))          # reason lands in failed/NAME.error.txt
        ...
    side.close()

Every method is idempotent and finishes a move a crash interrupted; see the modules it is made
of: ``folder_layout`` (tree and start checks), ``folder_claims`` (work names), ``folder_outbox``
(readiness, loading), ``folder_results`` (sent/failed/retry), ``folder_inbox`` (delivery),
``folder_jsonl`` (append-once logs), ``folder_watcher`` (inotify + rescan).
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog

from connector import fsutil
from connector.dms.base import (
    Failure,
    IncomingDocument,
    IncomingStatus,
    LifecycleEvent,
    OutgoingItem,
    Receipt,
)
from connector.dms.folder import results
from connector.dms.folder.claims import ClaimName, check_instance, default_instance
from connector.dms.folder.inbox import InboxWriter
from connector.dms.folder.layout import ExchangeLayout
from connector.dms.folder.outbox import (
    DEFAULT_MAX_METADATA_BYTES,
    Candidate,
    SettleTracker,
    load_item,
    scan_outbox,
)
from connector.dms.folder.retention import DEFAULT_STAGING_GRACE, purge_archive_dir, sweep_staging
from connector.dms.folder.watcher import FolderWatcher
from connector.errors import ConfigError

NAME_MAX = 255
"""Bytes in one file name on Linux file systems (ext4, XFS, btrfs)."""
log = structlog.get_logger(__name__)

DEFAULT_ROOT = "/var/lib/edxml-connector/exchange"
WORK_RELIST_SECONDS = 1.0
"""How often ``claim_ready()`` lists work/ for claims it does not know of (see ``_waiting``)."""


class FolderSide:
    """The folder adapter. One instance per process; ``instance`` must differ between two
    connectors that share one EXCHANGE root (default: the host name)."""

    name = "folder"

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_ROOT, *, instance: str | None = None,
                 settle_seconds: float | None = None, zip_limits: Any = None,
                 max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
                 group: str | None = None) -> None:
        self.layout = ExchangeLayout(Path(root))
        self.max_metadata_bytes = max_metadata_bytes
        self.instance = check_instance(instance or default_instance())
        self.start_warnings = self.layout.prepare(group)
        for warning in self.start_warnings:
            log.warning("exchange_layout", detail=warning)
        self._instance_lock = self._lock_instance()
        self._mutex = threading.Lock()
        self._handed_out: set[str] = set()
        # Own claims in work/ known to be waiting (not handed out): found by the last listing of
        # work/, or put back by ``unclaim``. work/ is listed again at most every
        # WORK_RELIST_SECONDS (and at the first call), not on every call: a busy outbox calls
        # claim_ready() once per finished send, and listing + parsing every claim each time
        # made a batch of n items cost O(n²). A claim another process of this instance puts
        # back (``edxml-connector retry`` moves failed/ → work/) is noticed at once by work/'s
        # mtime: ``_work_seen`` is the (work/, work/statuses/) mtimes as of the last listing,
        # carried forward across this process's own changes (see ``_changing_work``); any other
        # change makes the next call list again. The periodic listing covers what mtimes miss
        # (two changes within one timestamp tick, or a foreign change racing one of ours).
        self._waiting: dict[str, ClaimName] = {}
        self._work_listed_at: float | None = None
        self._work_seen: tuple[int, int] | None = None
        self._own_changes = 0  # this process's changes to work/ under way (see _changing_work)
        self._burst_from_seen = False
        self._work_dirs = (str(self.layout.work), str(self.layout.work_statuses))
        self._settle = SettleTracker(settle_seconds) if settle_seconds else None
        self._listed: deque[Candidate] = deque()  # the last outbox listing, not yet claimed
        self.refused_entries: dict[str, str] = {}
        """Outbox entries that cannot even be claimed (e.g. a name too long to stamp), by name,
        with the reason: reported once in the log, and by the outbound pipeline in the journal
        (``status``) and the metrics, until the DMS renames or removes them."""
        self._inbox = InboxWriter(self.layout, zip_limits=zip_limits)
        self.sweep_staging()

    # -- life cycle ---------------------------------------------------------------------------
    def _lock_instance(self) -> int:
        """Only one live process per instance name: it alone resumes that instance's claims."""
        path = self.layout.work / f".instance-{self.instance}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, fsutil.FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise ConfigError(
                    f"another connector with instance name {self.instance!r} is using this "
                    "exchange folder", file=str(path),
                    hint="stop it, or give this one a different agency_side.folder.instance") from error
            raise
        return fd

    def close(self) -> None:
        if self._instance_lock >= 0:
            os.close(self._instance_lock)
            self._instance_lock = -1

    def __enter__(self) -> FolderSide:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- housekeeping -------------------------------------------------------------------------
    def sweep_staging(self, grace: dt.timedelta = DEFAULT_STAGING_GRACE) -> list[Path]:
        """Remove hidden ``.ITEM.tmp-*`` delivery folders in inbox/ and quarantine/ left by a
        crash (unchanged for ``grace``; never one this process is writing, never a completed
        item). Runs at start; each removal is logged. The journal delivers those items again."""
        return sweep_staging((self.layout.inbox, self.layout.quarantine), grace=grace,
                             active=self._inbox.active_staging())

    def purge_archives(self, older_than: dt.timedelta, *,
                       failed_older_than: dt.timedelta | None = None,
                       now: float | None = None) -> dict[str, list[str]]:
        """Retention of the archives: items of ``sent/`` older than ``older_than`` and of
        ``failed/`` older than ``failed_older_than`` (default: the same) are removed with their
        sidecars (see :mod:`connector.dms.folder.retention`). Never the outbox, work/, inbox/
        or quarantine/. Returns ``{"sent": [names], "failed": [names]}``."""
        removed = {
            "sent": purge_archive_dir(self.layout.sent, older_than, work=self.layout.work, now=now),
            "failed": purge_archive_dir(self.layout.failed, failed_older_than or older_than,
                                        work=self.layout.work, now=now),
        }
        for archive, names in removed.items():
            if names:
                log.info("folder_archive_purged", archive=archive, count=len(names),
                         names=names[:50])
        return removed

    def watcher(self, on_ready: Callable[[], None], *, rescan_seconds: float = 30.0,
                polling: bool = False) -> FolderWatcher:
        """A watcher over this outbox that calls ``on_ready()`` (start it, stop it)."""
        return FolderWatcher(self.layout.outbox, on_ready, rescan_seconds=rescan_seconds,
                             polling=polling)

    # -- outgoing -----------------------------------------------------------------------------
    def claim_ready(self, limit: int | None = None) -> list[OutgoingItem]:
        """This instance's unfinished claims not yet handed out in this process (after a
        restart: all of them), then newly ready outbox entries, claimed by rename (oldest
        first). Items with ``problem`` set are claimed too and must be marked failed."""
        items: list[OutgoingItem] = []

        def room() -> bool:
            return limit is None or len(items) < limit

        with self._mutex:
            now = time.monotonic()
            stamp = self._work_stamp()
            if (self._work_listed_at is None or now - self._work_listed_at >= WORK_RELIST_SECONDS
                    or (stamp != self._work_seen and not self._own_changes)):
                self._waiting = {claim.source_ref: claim for claim in self._own_claims()
                                 if claim.source_ref not in self._handed_out}
                self._work_listed_at = now
                self._work_seen = stamp
            for claim in sorted(self._waiting.values(), key=lambda claim: claim.stamp):
                if not room():
                    return items
                del self._waiting[claim.source_ref]
                if claim.source_ref in self._handed_out:
                    continue
                if not os.path.lexists(self.layout.work / claim.source_ref):
                    continue  # finished meanwhile (e.g. by an operator command)
                items.append(load_item(self.layout.work / claim.source_ref, claim,
                                       max_metadata_bytes=self.max_metadata_bytes))
                self._handed_out.add(claim.source_ref)
            claimed = False
            for candidate in self._candidates(room):
                claim = ClaimName.new(candidate.name, self.instance, is_status=candidate.is_status)
                target = self.layout.work / claim.source_ref
                if candidate.display in self.refused_entries:
                    continue
                try:
                    os.rename(candidate.path, target)
                except FileNotFoundError:
                    continue  # another connector claimed it first
                except OSError as error:
                    self._refuse_unclaimable(candidate, error)
                    continue
                claimed = True
                if self._settle is not None:
                    self._settle.forget(candidate)
                item = load_item(target, claim, max_metadata_bytes=self.max_metadata_bytes)
                items.append(item)
                self._handed_out.add(claim.source_ref)
                # At debug level when the item is fine: the outbound pipeline's
                # ``outgoing_enqueued`` line names the same item and claim a moment later.
                (log.info if item.problem else log.debug)(
                    "folder_item_claimed", item=claim.display_name, source_ref=claim.source_ref,
                    problem=item.problem.one_line() if item.problem else None)
            if claimed:  # one fsync per folder per batch makes every claim of it durable
                for directory in (self.layout.work, self.layout.work_statuses,
                                  self.layout.outbox, self.layout.outbox_statuses):
                    fsutil.fsync_dir(directory)
                self._work_seen = self._work_stamp()  # our own renames into work/
        return items

    def _candidates(self, room: Callable[[], bool]) -> Iterator[Candidate]:
        """Ready outbox entries to claim, oldest first, while ``room()`` says more are wanted.

        WHY a remembered listing: a burst of hundreds of documents is taken a chunk per outbound
        turn, and listing the whole outbox (a stat per bundle) for each chunk made the intake
        quadratic. What one listing found is claimed over the next calls; the outbox is listed
        again when that is used up — also within the same call, so that a call which still has
        room has always seen the outbox as it is now. An entry that went away meanwhile (another
        connector claimed it, the DMS withdrew it) just fails its rename and is skipped."""
        listed_now = False
        while room():
            if not self._listed:
                if listed_now:
                    return
                self._listed = deque(scan_outbox(self.layout.outbox, self.layout.outbox_statuses))
                self._prune_refused(list(self._listed))
                listed_now = True
                if self._settle is not None:
                    self._settle.prune({str(candidate.path) for candidate in self._listed})
                continue
            candidate = self._listed.popleft()
            if self._settle is not None and not self._settle.is_settled(candidate):
                continue  # seen again at the next listing
            yield candidate

    def _refuse_unclaimable(self, candidate: Candidate, error: OSError) -> None:
        """An entry the claim rename fails on stays where it is (moving it to failed/ would
        fail the same way): say so once, with its name, and keep saying it in ``status``."""
        reason = f"cannot be claimed: {error.strerror or error}"
        if error.errno == errno.ENAMETOOLONG:
            overhead = len(ClaimName.new("", self.instance, is_status=False).work_name.encode())
            reason += (f" (the claim adds {overhead} characters to the name; rename it to at "
                       f"most {NAME_MAX - overhead} bytes)")
        self.refused_entries[candidate.display] = reason
        log.error("folder_item_refused", item=candidate.display, reason=reason,
                  fix="rename or remove it in the outbox")

    def _prune_refused(self, listed: list[Candidate]) -> None:
        present = {candidate.display for candidate in listed}
        for name in [name for name in self.refused_entries if name not in present]:
            del self.refused_entries[name]

    def _work_stamp(self) -> tuple[int, int]:
        work, work_statuses = self._work_dirs
        try:
            return os.stat(work).st_mtime_ns, os.stat(work_statuses).st_mtime_ns
        except FileNotFoundError:
            return (0, 0)

    def _changing_work(self, change: Callable[[], object]) -> None:
        """Run one of this process's own changes to work/ and carry ``_work_seen`` over it, so
        that it does not look like another process's change (which makes work/ listed again).

        Several send threads archive at once, so the carry-over is per burst of own changes:
        while any is under way, a changed mtime says nothing (``claim_ready`` relies on its
        once-a-second relisting then), and when the last one ends, the mtime is taken as seen
        if nothing unseen had changed work/ before the burst began."""
        with self._mutex:
            if not self._own_changes:
                self._burst_from_seen = self._work_stamp() == self._work_seen
            self._own_changes += 1
        try:
            change()
        finally:
            with self._mutex:
                self._own_changes -= 1
                if not self._own_changes and self._burst_from_seen:
                    self._work_seen = self._work_stamp()

    def _own_claims(self) -> list[ClaimName]:
        claims = []
        for folder, prefix in ((self.layout.work, ""), (self.layout.work_statuses, "statuses/")):
            with os.scandir(folder) as entries:
                for entry in entries:
                    claim = ClaimName.parse(prefix + entry.name)
                    if claim is not None and claim.instance == self.instance:
                        claims.append(claim)
        claims.sort(key=lambda claim: claim.stamp)
        return claims

    def mark_sent(self, item: OutgoingItem, receipt: Receipt) -> None:
        self._changing_work(lambda: results.mark_sent(self.layout, item, receipt))
        self._forget(item)

    def update_receipt(self, item: OutgoingItem, receipt: Receipt) -> None:
        """Rewrite ``sent/NAME.receipt.json`` (only when it changed). Also completes a
        ``mark_sent`` that a crash interrupted, so it is safe to call at any time after the
        axis accepted the item."""
        self._changing_work(lambda: results.mark_sent(self.layout, item, receipt))
        self._forget(item)

    def mark_failed(self, item: OutgoingItem, failure: Failure) -> None:
        self._changing_work(lambda: results.mark_failed(self.layout, item, failure))
        self._forget(item)

    def unclaim(self, item: OutgoingItem) -> None:
        """Put the item back in the queue under the same ``source_ref``: a failed item moves
        from failed/ back to work/ (its error file removed), and the next ``claim_ready()``
        returns it again, read afresh — so a corrected ``document.yaml`` is picked up."""
        results.put_back(self.layout, item)
        self._forget(item)
        claim = results.claim_of(item)
        with self._mutex:
            self._waiting[claim.source_ref] = claim

    def location_of(self, item: OutgoingItem) -> Path | None:
        """Where the item is now (work/, sent/ or failed/), for ``status`` displays."""
        claim = results.claim_of(item)
        current = results.work_path(self.layout, claim)
        if current.exists():
            return current
        for found in (results.find_sent(self.layout, claim), results.find_failed(self.layout, claim)):
            if found is not None:
                return found.item
        return None

    def _forget(self, item: OutgoingItem) -> None:
        with self._mutex:
            self._handed_out.discard(item.source_ref)

    # -- incoming -----------------------------------------------------------------------------
    def deliver_document(self, document: IncomingDocument) -> str:
        return str(self._inbox.deliver(document))

    def quarantine_document(self, document: IncomingDocument, reason: str) -> str:
        return str(self._inbox.quarantine(document, reason))

    def release_quarantined(self, location: str) -> str:
        """Deliver a quarantined document (``quarantine release``); returns its inbox path."""
        return str(self._inbox.release(location))

    def deliver_status(self, status: IncomingStatus) -> None:
        self._inbox.deliver_status(status)

    def record_event(self, event: LifecycleEvent) -> None:
        self._inbox.record_event(event)
