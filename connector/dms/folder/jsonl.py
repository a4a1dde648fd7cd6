"""Append-once logs: ``inbox/statuses.jsonl`` and ``inbox/events.jsonl``.

The core may call ``deliver_status`` or ``record_event`` again after a crash (the line was written
but the journal had not yet recorded it). A DMS that tails the file must not see the same status
twice, so each line carries the journal id and a line whose id is already in the file is not
written again. The ids already present are read once and then followed incrementally (only what
was appended since, by us or by another connector on the same tree), under an ``flock`` so two
writers cannot interleave.

A DMS may rotate a log by renaming it away; the connector notices the new file (a different
inode, or a shorter one) and starts over from it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from connector import fsutil


class AppendOnceLog:
    def __init__(self, path: Path, *, key: str = "journal_id") -> None:
        self.path = path
        self.key = key
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._offset = 0
        self._inode: int | None = None

    def append(self, record: dict[str, Any]) -> bool:
        """Append ``record`` unless a line with the same id is in the file; True if written."""
        record_id = str(record[self.key])
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        with self._lock:
            self._create()
            with fsutil.locked(self.path):
                self._catch_up()
                if record_id in self._ids:
                    return False
                fsutil.append_line(self.path, line)
                self._ids.add(record_id)
                return True

    def contains(self, record_id: str) -> bool:
        with self._lock:
            if not self.path.exists():
                return False
            with fsutil.locked(self.path, shared=True):
                self._catch_up()
            return record_id in self._ids

    def _create(self) -> None:
        if self.path.exists():
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         fsutil.FILE_MODE)
        except FileExistsError:
            return
        os.fchmod(fd, fsutil.FILE_MODE)
        os.close(fd)
        fsutil.fsync_dir(self.path.parent)

    def _catch_up(self) -> None:
        """Read complete lines appended since the last look."""
        with open(self.path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_ino != self._inode or info.st_size < self._offset:
                self._ids.clear()
                self._offset = 0
                self._inode = info.st_ino
            handle.seek(self._offset)
            data = handle.read()
        end = data.rfind(b"\n")
        if end < 0:
            return  # nothing, or only a torn fragment not yet closed
        for raw in data[: end + 1].splitlines():
            try:
                value = json.loads(raw)
            except ValueError:
                continue  # a torn record from a crash: skipped, its call is repeated
            if isinstance(value, dict) and value.get(self.key) is not None:
                self._ids.add(str(value[self.key]))
        self._offset += end + 1
