"""Noticing new outbox entries quickly, and eventually even when notifications are lost.

inotify (through watchdog) tells us within milliseconds that something was renamed into
``outbox/`` or ``outbox/statuses/``, or that a ``document.yaml`` or ``.ready`` appeared in a
bundle. But inotify queues overflow, watches run out, and network filesystems send nothing, so a
timer also calls the callback every ``rescan_seconds``. The callback only says "something may be
ready": it must be cheap and thread-safe (set an event, or wake the outbound job); the outbound
loop then calls ``FolderSide.claim_ready()``, which looks at the folder itself.

Why the watches are not one recursive watch over ``outbox/``: watchdog's recursive inotify
observer processes (in Python, under the GIL) every event below the outbox — each write of a DMS
still filling a dot-named staging folder, each file of a bundle moved in, and the events of our
own claims moving bundles out — and adds and drops a watch per bundle folder. At 100 documents a
second that was a sixth of the daemon's busy time. So the observer watches ``outbox/`` and
``outbox/statuses/`` only (non-recursively: a package or a finished bundle renamed in, a status
dropped), plus each bundle folder that is *not ready yet* (no ``document.yaml``/``.ready``), so a
DMS writing ``document.yaml`` last inside an existing folder still wakes us within milliseconds.
Those bundle watches are dropped when the folder leaves the outbox or becomes ready (checked by
a housekeeping tick of at most a second, off the event thread). The polling fallback stays
recursive (it is a snapshot anyway).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import (EVENT_TYPE_CLOSED, EVENT_TYPE_CREATED,
                             EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, FileSystemEvent,
                             FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from connector.dms.folder_outbox import BUNDLE_METADATA, READY_MARKER, is_unfinished_name

log = structlog.get_logger(__name__)

_INTERESTING = {EVENT_TYPE_CREATED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED, EVENT_TYPE_MODIFIED}
STATUSES_DIR = "statuses"
MAX_BUNDLE_WATCHES = 32
"""Not-ready bundle folders watched one by one at most (each watch is an inotify instance and a
thread in watchdog); beyond, the periodic rescan finds them."""
HOUSEKEEPING_SECONDS = 1.0


class _OutboxEvents(FileSystemEventHandler):
    """Filters the observer's events down to "something may be ready" (``notify``).
    ``on_directory`` is told of each folder that appears directly in the outbox (the watcher
    decides whether it needs its own watch) before ``notify`` is called for it."""

    def __init__(self, outbox: Path, notify: Callable[[str], None],
                 on_directory: Callable[[str], None] | None = None) -> None:
        self.outbox = str(outbox)
        self.notify = notify
        self.on_directory = on_directory

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _INTERESTING:
            return
        if (self.on_directory is not None and event.is_directory
                and event.event_type in (EVENT_TYPE_CREATED, EVENT_TYPE_MOVED)):
            path = os.fsdecode(event.dest_path if event.event_type == EVENT_TYPE_MOVED
                               else event.src_path)
            if (os.path.dirname(path) == self.outbox
                    and not is_unfinished_name(os.path.basename(path))):
                self.on_directory(path)
        path = os.fsdecode(event.dest_path if event.event_type == EVENT_TYPE_MOVED else event.src_path)
        if event.event_type == EVENT_TYPE_MODIFIED and event.is_directory:
            return  # a directory's own mtime changes with every entry; the entry's event counts
        relative = os.path.relpath(path, self.outbox)
        if relative.startswith(".."):
            return  # moved out of the outbox: our own claim
        parts = relative.split(os.sep)
        if any(is_unfinished_name(part) and part != READY_MARKER for part in parts):
            return
        self.notify(relative)


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
        self._observer: Observer | PollingObserver | None = None
        self._handler: _OutboxEvents | None = None
        self._watch_lock = threading.Lock()
        self._watches: dict[str, tuple[object, bool]] = {}
        self._timer: threading.Thread | None = None

    def start(self) -> None:
        if self.polling:
            self._observer = self._polling_observer(PollingObserver())
        else:
            observer = Observer()
            handler = _OutboxEvents(self.outbox, self._notify, self._directory_seen)
            try:
                observer.schedule(handler, str(self.outbox), recursive=False)
                observer.start()
                self._observer = observer
                self._handler = handler
                for entry in _directories(self.outbox):
                    self._directory_seen(entry)
            except OSError as error:
                # inotify watch or instance limit reached: degrade to polling, say so once.
                log.warning("outbox_watch_degraded", outbox=str(self.outbox), error=str(error),
                            fix="raise fs.inotify.max_user_watches / max_user_instances")
                if observer.is_alive():
                    observer.stop()
                self._handler = None
                self._observer = self._polling_observer(PollingObserver(
                    timeout=max(1.0, min(self.rescan_seconds, 5.0))))
        self._timer = threading.Thread(target=self._rescan_loop, name="outbox-rescan", daemon=True)
        self._timer.start()

    def _polling_observer(self, observer: PollingObserver) -> PollingObserver:
        observer.schedule(_OutboxEvents(self.outbox, self._notify), str(self.outbox),
                          recursive=True)
        observer.start()
        return observer

    def _directory_seen(self, path: str) -> None:
        """A folder appeared in the outbox: ``statuses/`` is watched for good; a bundle that is
        not ready yet is watched until it is (or leaves), so that its ``document.yaml`` or
        ``.ready`` wakes us. Ready bundles need no watch: the rename in already woke us."""
        if self._observer is None or self._handler is None:
            return
        is_statuses = os.path.basename(path) == STATUSES_DIR
        with self._watch_lock:
            if path in self._watches:
                return
            if not is_statuses and (_bundle_ready(path)
                                    or len(self._watches) >= MAX_BUNDLE_WATCHES):
                return
            try:
                self._watches[path] = (self._observer.schedule(self._handler, path,
                                                               recursive=False), is_statuses)
            except OSError as error:  # gone already, or out of watches: the rescan covers it
                log.debug("bundle_watch_skipped", path=path, error=str(error))

    def _housekeeping(self) -> None:
        """Drop the watches of bundles that became ready or left the outbox (off the event
        thread: unscheduling joins the watch's emitter thread)."""
        with self._watch_lock:
            done = [path for path, (_, permanent) in self._watches.items()
                    if not permanent and (_bundle_ready(path) or not os.path.isdir(path))]
            watches = [self._watches.pop(path)[0] for path in done]
        for watch in watches:
            try:
                self._observer.unschedule(watch)
            except (KeyError, OSError):
                pass

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._timer is not None:
            self._timer.join(timeout)

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _rescan_loop(self) -> None:
        """Calls back every ``rescan_seconds``; between, drops finished bundle watches."""
        next_rescan = time.monotonic() + self.rescan_seconds
        while not self._stop.wait(max(0.0, min(HOUSEKEEPING_SECONDS,
                                               next_rescan - time.monotonic()))):
            if self._watches:
                try:
                    self._housekeeping()
                except Exception:
                    log.exception("outbox_watch_housekeeping_failed")
            if time.monotonic() >= next_rescan:
                next_rescan = time.monotonic() + self.rescan_seconds
                self._notify(None)

    def _notify(self, relative: str | None) -> None:
        try:
            self.on_ready()
        except Exception:  # a failing callback must not kill the observer thread
            log.exception("outbox_callback_failed", path=relative)


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
