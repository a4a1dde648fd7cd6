"""Noticing new outbox entries quickly, and eventually even when notifications are lost.

inotify (through watchdog) tells us within milliseconds that something was renamed into
``outbox/`` or ``outbox/statuses/``, or that a ``document.yaml`` or ``.ready`` appeared in a
bundle. But inotify queues overflow, watches run out, and network filesystems send nothing, so a
timer also calls the callback every ``rescan_seconds``. The callback only says "something may be
ready": it must be cheap and thread-safe (set an event, or wake the outbound job); the outbound
loop then calls ``FolderSide.claim_ready()``, which looks at the folder itself.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import (EVENT_TYPE_CLOSED, EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED,
                             EVENT_TYPE_MOVED, FileSystemEvent, FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from connector.dms.folder_outbox import READY_MARKER, is_unfinished_name

log = structlog.get_logger(__name__)

_INTERESTING = {EVENT_TYPE_CREATED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED, EVENT_TYPE_MODIFIED}


class _OutboxEvents(FileSystemEventHandler):
    def __init__(self, outbox: Path, notify: Callable[[str], None]) -> None:
        self.outbox = str(outbox)
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _INTERESTING:
            return
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
        self._timer: threading.Thread | None = None

    def start(self) -> None:
        handler = _OutboxEvents(self.outbox, self._notify)
        observer = PollingObserver() if self.polling else Observer()
        try:
            observer.schedule(handler, str(self.outbox), recursive=True)
            observer.start()
        except OSError as error:
            # inotify watch or instance limit reached: degrade to polling, say so once.
            log.warning("outbox_watch_degraded", outbox=str(self.outbox), error=str(error),
                        fix="raise fs.inotify.max_user_watches / max_user_instances")
            observer = PollingObserver(timeout=max(1.0, min(self.rescan_seconds, 5.0)))
            observer.schedule(handler, str(self.outbox), recursive=True)
            observer.start()
        self._observer = observer
        self._timer = threading.Thread(target=self._rescan_loop, name="outbox-rescan", daemon=True)
        self._timer.start()

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
        while not self._stop.wait(self.rescan_seconds):
            self._notify(None)

    def _notify(self, relative: str | None) -> None:
        try:
            self.on_ready()
        except Exception:  # a failing callback must not kill the observer thread
            log.exception("outbox_callback_failed", path=relative)
