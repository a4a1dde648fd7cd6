"""Noticing new outbox entries quickly, and eventually even when notifications are lost.

inotify tells us within a millisecond that something was renamed into ``outbox/`` or
``outbox/statuses/``, or that a ``document.yaml`` or ``.ready`` appeared in a bundle. But inotify
queues overflow, watches run out, and network filesystems send nothing, so a timer also calls the
callback every ``rescan_seconds``. The callback only says "something may be ready": it must be
cheap and thread-safe (set an event, or wake the outbound job); the outbound loop then calls
``FolderSide.claim_ready()``, which looks at the folder itself.

WHY watchdog's low-level :class:`~watchdog.observers.inotify_c.InotifyFD` and not its
``Observer``: the observer pairs each ``IN_MOVED_FROM`` with its ``IN_MOVED_TO`` through a queue
that holds a lone ``IN_MOVED_FROM`` for half a second — and holds every event queued behind it.
Each of our own claims (a rename from ``outbox/`` into ``work/``) is such a lone event, so after
every claim the next document's arrival was seen only up to 0.5 s later: 100–200 ms of a
single document's drop-to-accepted latency went there. We need no pairing, only "a name
arrived", so we ask the kernel for exactly that — ``IN_MOVED_TO``, ``IN_CREATE`` and
``IN_CLOSE_WRITE``, never ``IN_MOVED_FROM`` — and our claims produce no events at all. One
inotify descriptor and one reader thread (watchdog's shared ``InotifyFD``) serve every watch of
the process, and one ticker thread does every watcher's housekeeping and rescans: a hub of 500
units has 500 outboxes, and the kernel's default of 128 inotify instances per user (and 500
threads waking every second) would not do.

What is watched: ``outbox/`` and ``outbox/statuses/`` (non-recursively: a package or a finished
bundle renamed in, a status dropped), plus each bundle folder that is *not ready yet* (no
``document.yaml``/``.ready``), so a DMS writing ``document.yaml`` last inside an existing folder
still wakes us within milliseconds. A bundle's watch goes as soon as the bundle is ready, moves
or is deleted (and, as a backstop, at a housekeeping tick of at most a second). Writes inside
dot-named staging folders are never watched. Where inotify cannot be had (instance or watch
limit reached) the watcher falls back to watchdog's polling observer, recursively, and says so.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD
from watchdog.observers.polling import PollingObserver

from connector.dms.folder.outbox import BUNDLE_METADATA, READY_MARKER, is_unfinished_name

log = structlog.get_logger(__name__)

_INTERESTING = {EVENT_TYPE_CREATED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED, EVENT_TYPE_MODIFIED}
STATUSES_DIR = "statuses"
MAX_BUNDLE_WATCHES = 256
"""Not-ready bundle folders watched one by one at most (each is an inotify watch, counted
against ``fs.inotify.max_user_watches``); beyond, the periodic rescan finds them."""
HOUSEKEEPING_SECONDS = 1.0
FULL_RESCAN_EVERY = 10
"""Every this many rescans the side is woken even when the outbox folders did not change."""
DEGRADED_POLL_SECONDS = 1.0
"""How often the polling fallback snapshots the outbox (a DMS outbox holds few entries)."""

# "A name arrived" (renamed in, created, or finished writing) and "this folder itself went away".
# IN_MOVED_FROM is deliberately absent: our own claims rename entries *out* of the outbox.
_ARRIVALS = (InotifyConstants.IN_MOVED_TO | InotifyConstants.IN_CREATE
             | InotifyConstants.IN_CLOSE_WRITE)
_SELF_GONE = InotifyConstants.IN_MOVE_SELF | InotifyConstants.IN_DELETE_SELF
WATCH_MASK = _ARRIVALS | _SELF_GONE | InotifyConstants.IN_ONLYDIR | InotifyConstants.IN_EXCL_UNLINK


def wakes(outbox: str, path: str) -> str | None:
    """The path relative to ``outbox`` when an arrival at ``path`` may make something ready;
    None for temporaries (``*.tmp``, ``*.part``, dot-names other than ``.ready``) and for
    anything outside the outbox."""
    relative = os.path.relpath(path, outbox)
    if relative.startswith(".."):
        return None
    if any(is_unfinished_name(part) and part != READY_MARKER for part in relative.split(os.sep)):
        return None
    return relative


class _OutboxEvents(FileSystemEventHandler):
    """The polling fallback's filter: watchdog events down to "something may be ready"
    (``notify``)."""

    def __init__(self, outbox: Path, notify: Callable[[str], None]) -> None:
        self.outbox = str(outbox)
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _INTERESTING:
            return
        if event.event_type == EVENT_TYPE_MODIFIED and event.is_directory:
            return  # a directory's own mtime changes with every entry; the entry's event counts
        moved = event.event_type == EVENT_TYPE_MOVED
        path = os.fsdecode(event.dest_path if moved else event.src_path)
        relative = wakes(self.outbox, path)
        if relative is not None:
            self.notify(relative)


class _Watches:
    """The inotify watches of one outbox, on one :class:`InotifyFD` (whose reader thread calls
    :meth:`on_event`; the method names are watchdog's ``WatchCallback`` protocol)."""

    def __init__(self, outbox: str, notify: Callable[[str | None], None]) -> None:
        self.outbox = outbox
        self.notify = notify
        # OSError when the instance limit is reached. Typed Any: watchdog's low-level API wants
        # its own NewTypes (Mask, CallbackId) for what are plain ints here.
        self.fd: Any = _inotify_fd()
        self._lock = threading.Lock()
        self._paths: dict[int, str] = {}           # watch descriptor -> folder
        self._bundles: dict[str, int] = {}         # not-ready bundle folder -> watch descriptor
        self._closing = False

    # -------------------------------------------------------------------- set-up and tear-down
    def start(self) -> None:
        self._add(self.outbox)  # OSError (watch limit, outbox gone) -> the caller degrades
        for entry in _directories(Path(self.outbox)):
            self.directory_seen(entry)

    def stop(self, timeout: float) -> None:
        """Remove this outbox's watches (the shared descriptor serves the others)."""
        self._closing = True
        with self._lock:
            watches = [(wd, id(self)) for wd in self._paths]
            self._paths.clear()
            self._bundles.clear()
        for watch in watches:
            try:
                self.fd.remove_callbacks([watch])
            except (KeyError, OSError):
                pass  # the kernel dropped it already (folder deleted)

    def _add(self, path: str) -> int:
        wd = self.fd.add_callback(os.fsencode(path), WATCH_MASK, self, id(self))
        with self._lock:
            self._paths[wd] = path
        return wd

    def _drop(self, path: str) -> None:
        with self._lock:
            wd = self._bundles.pop(path, None)
            if wd is None:
                return
            self._paths.pop(wd, None)
        try:
            self.fd.remove_callbacks([(wd, id(self))])
        except (KeyError, OSError):
            pass  # the kernel dropped it already (folder deleted)

    @property
    def bundle_watches(self) -> list[str]:
        with self._lock:
            return list(self._bundles)

    # -------------------------------------------------------------------- bundles
    def directory_seen(self, path: str) -> None:
        """A folder appeared in the outbox: ``statuses/`` is watched for good; a bundle that is
        not ready yet is watched until it is. The readiness check comes *after* the watch is in
        place, so a ``document.yaml`` written in between is not missed."""
        if os.path.basename(path) == STATUSES_DIR:
            try:
                self._add(path)
            except OSError as error:
                log.warning("statuses_watch_failed", path=path, error=str(error),
                            fallback="periodic rescan")
            return
        with self._lock:
            if path in self._bundles or len(self._bundles) >= MAX_BUNDLE_WATCHES:
                return
        if _bundle_ready(path):
            return  # the rename that brought it in already woke us
        try:
            wd = self._add(path)
        except OSError as error:  # gone already, or out of watches: the rescan covers it
            log.debug("bundle_watch_skipped", path=path, error=str(error))
            return
        with self._lock:
            self._bundles[path] = wd
        if _bundle_ready(path):
            self._drop(path)
            self.notify(os.path.relpath(path, self.outbox))

    def housekeeping(self) -> None:
        """Backstop: drop the watches of bundles that became ready or left without an event."""
        for path in self.bundle_watches:
            if _bundle_ready(path) or not os.path.isdir(path):
                self._drop(path)

    # -------------------------------------------------------------------- watchdog's callbacks
    def on_event(self, event: InotifyEvent) -> None:
        with self._lock:
            folder = self._paths.get(event.wd)
        if folder is None:
            return
        if event.mask & _SELF_GONE:
            if folder in self._bundles:
                self._drop(folder)  # claimed (moved away) or deleted: nothing to wait for
            return
        path = os.path.join(folder, os.fsdecode(event.name))
        if folder == self.outbox and event.is_directory and (event.is_create or event.is_moved_to):
            if not is_unfinished_name(os.path.basename(path)):
                self.directory_seen(path)
        relative = wakes(self.outbox, path)
        if relative is None:
            return
        if folder in self._bundles and os.path.basename(path) in (BUNDLE_METADATA, READY_MARKER):
            self._drop(folder)  # ready: its watch has done its job
        self.notify(relative)

    def on_watch_deleted(self, wd: int) -> None:
        with self._lock:
            folder = self._paths.pop(wd, None)
            if folder is not None:
                self._bundles.pop(folder, None)
        if folder == self.outbox and not self._closing:
            log.warning("outbox_watch_lost", outbox=folder,
                        note="the outbox folder was deleted or moved; the periodic rescan goes on")

    def on_queue_overflow(self) -> None:
        log.warning("outbox_events_overflowed", outbox=self.outbox,
                    note="inotify dropped events; the outbox is relisted now")
        self.notify(None)


class FolderWatcher:
    """Calls ``on_ready()`` when something may have become ready in the outbox, and at least
    every ``rescan_seconds``. ``start()`` and ``stop()`` may each be called once."""

    def __init__(self, outbox: str | os.PathLike[str], on_ready: Callable[[], None], *,
                 rescan_seconds: float = 30.0, polling: bool = False) -> None:
        self.outbox = Path(outbox)
        self.on_ready = on_ready
        self.rescan_seconds = rescan_seconds
        self.polling = polling
        self._stop = threading.Event()
        self._inotify: _Watches | None = None
        self._observer: PollingObserver | None = None
        self._next_rescan = 0.0
        self._last_stamp: tuple | None = None
        self._rescans = 0

    @property
    def _watches(self) -> list[str]:
        """The bundle folders watched one by one now (tests look)."""
        return self._inotify.bundle_watches if self._inotify is not None else []

    def start(self) -> None:
        if not self.polling:
            try:
                watches = _Watches(str(self.outbox), self._notify)
            except OSError as error:
                self._degrade(error)
            else:
                try:
                    watches.start()
                    self._inotify = watches
                except OSError as error:
                    watches.stop(1.0)
                    self._degrade(error)
        else:
            self._observer = self._polling_observer(PollingObserver())
        self._next_rescan = time.monotonic() + self.rescan_seconds
        _Ticker.shared().add(self)

    def _degrade(self, error: OSError) -> None:
        """inotify instance or watch limit reached: poll instead, and say so once."""
        log.warning("outbox_watch_degraded", outbox=str(self.outbox), error=str(error),
                    fix="raise fs.inotify.max_user_watches / max_user_instances")
        self._observer = self._polling_observer(PollingObserver(timeout=DEGRADED_POLL_SECONDS))

    def _polling_observer(self, observer: PollingObserver) -> PollingObserver:
        observer.schedule(_OutboxEvents(self.outbox, self._notify), str(self.outbox),
                          recursive=True)
        observer.start()
        return observer

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        _Ticker.shared().remove(self)
        if self._inotify is not None:
            self._inotify.stop(timeout)
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def tick(self, now: float) -> None:
        """The ticker's call (about every second): drop finished bundle watches, and call back
        every ``rescan_seconds``."""
        if self._stop.is_set():
            return
        if self._inotify is not None:
            try:
                self._inotify.housekeeping()
            except Exception:
                log.exception("outbox_watch_housekeeping_failed")
        if now >= self._next_rescan:
            self._next_rescan = now + self.rescan_seconds
            if self._outbox_changed():
                self._notify(None)

    def _outbox_changed(self) -> bool:
        """Whether a rescan should wake the side: the outbox (or ``statuses/``) changed since
        the last rescan — a name renamed in, even one whose event was lost, changes its
        folder's mtime — or FULL_RESCAN_EVERY rescans passed (a bundle finished inside a
        folder whose own events were lost). WHY: a hub's hundreds of outboxes each rescanned
        every 30 s made most of an idle hub's CPU; unchanged ones now cost two stat calls."""
        stamp: list[int | None] = []
        for folder in (self.outbox, self.outbox / STATUSES_DIR):
            try:
                stamp.append(os.stat(folder).st_mtime_ns)
            except OSError:
                stamp.append(None)
        self._rescans += 1
        if tuple(stamp) != self._last_stamp or self._rescans >= FULL_RESCAN_EVERY:
            self._last_stamp = tuple(stamp)
            self._rescans = 0
            return True
        return False

    def _notify(self, relative: str | None) -> None:
        try:
            self.on_ready()
        except Exception:  # a failing callback must not kill the reader thread
            log.exception("outbox_callback_failed", path=relative)


def _inotify_fd() -> Any:
    """The process's one inotify descriptor and reader thread (watchdog's shared instance)."""
    return InotifyFD.get_instance()


class _Ticker:
    """One thread for every watcher of the process: each one's housekeeping about every
    second and its rescan when due. Started with the first watcher; it sleeps on."""

    _instance: _Ticker | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: list[FolderWatcher] = []
        self._thread = threading.Thread(target=self._run, name="outbox-rescan", daemon=True)
        self._thread.start()

    @classmethod
    def shared(cls) -> _Ticker:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = _Ticker()
            return cls._instance

    def add(self, watcher: FolderWatcher) -> None:
        with self._lock:
            self._watchers.append(watcher)

    def remove(self, watcher: FolderWatcher) -> None:
        with self._lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

    def _run(self) -> None:
        while True:
            with self._lock:
                watchers = list(self._watchers)
            shortest = min((w.rescan_seconds for w in watchers), default=HOUSEKEEPING_SECONDS)
            time.sleep(max(0.05, min(HOUSEKEEPING_SECONDS, shortest)))
            now = time.monotonic()
            for watcher in watchers:
                watcher.tick(now)


def _bundle_ready(path: str) -> bool:
    return (os.path.isfile(os.path.join(path, BUNDLE_METADATA))
            or os.path.exists(os.path.join(path, READY_MARKER)))


def _directories(outbox: Path) -> list[str]:
    """The folders directly in the outbox that may need a watch (not temporaries)."""
    try:
        with os.scandir(outbox) as entries:
            return [entry.path for entry in entries
                    if entry.is_dir(follow_symlinks=False) and not is_unfinished_name(entry.name)]
    except FileNotFoundError:
        return []
