"""The connector's own durable copies of the packages it sends and receives, under ``state_dir``.

WHY a store of our own: the journal promises that every attempt to send an item sends the SAME
bytes (so that a receiver can recognise a resend by its SHA-256), and that a received package is
on disk before the axis is told ``done``. Neither promise can rest on the agency side's folders or
tables, which the DMS may change; so the bytes live here, written once under a temporary name,
fsync'd (file and directory) and renamed, and the journal row only points at them.

Layout (``STATE/packages``)::

    outgoing/<journal id>.edxml          a document package, signed once
    outgoing/<journal id>.set.json       several status packages of one item (one per receiver),
    outgoing/<journal id>.<n>.edxml      ... listed with their SHA-256 in the set file
    incoming/<YYYY-MM>/<journal id>.edxml   a received package exactly as the axis gave it
    scratch/                              temporary attachment files (database BLOBs)

Received copies are never deleted by the connector; outgoing copies of finished items are
removed by retention (see :meth:`PackageStore.purge_outgoing`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from connector import fsutil

SET_SUFFIX = ".set.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredPackage:
    """One file in the store: where it is and what its bytes are."""

    path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class SetMember:
    """One package of a multi-package item (a status to one receiver)."""

    to: str
    path: Path
    sha256: str
    size: int


def sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class PackageStore:
    """Durable package files under ``root`` (created with mode 0750 when missing)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.outgoing = self.root / "outgoing"
        self.incoming = self.root / "incoming"
        self.scratch = self.root / "scratch"
        for directory in (self.root, self.outgoing, self.incoming, self.scratch):
            fsutil.ensure_directory(directory, 0o750)

    # -- outgoing -------------------------------------------------------------------------------
    def outgoing_path(self, item_id: str) -> Path:
        return self.outgoing / f"{item_id}.edxml"

    def put_outgoing(self, item_id: str, write: Callable[[Path], object]) -> StoredPackage:
        """Have ``write(path)`` produce the package at a temporary path, then fsync and publish
        it as ``outgoing/<item_id>.edxml``. A package already there is kept as it is (the
        item was packaged before a crash): the first bytes win, so every attempt sends them."""
        final = self.outgoing_path(item_id)
        if final.exists():
            return self.describe(final)
        temporary = fsutil.temporary_name(final)
        try:
            write(temporary)
            _fsync_file(temporary)
            try:
                # A link, not a rename: it refuses an existing target. When two writers race
                # (a packaging worker of a daemon killed mid-way, and the restarted daemon), the
                # first bytes published win and are never replaced under the journal's SHA-256.
                os.link(temporary, final)
            except FileExistsError:
                pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        fsutil.fsync_dir(self.outgoing)
        return self.describe(final)

    def put_outgoing_bytes(self, item_id: str, data: bytes) -> StoredPackage:
        return self.put_outgoing(item_id, lambda path: fsutil.write_file_durably(path, data))

    def put_outgoing_set(self, item_id: str, packages: Iterable[tuple[str, bytes]]) -> StoredPackage:
        """Store several packages of one item (``(receiver, bytes)`` each) and a set file that
        lists them; the set file's SHA-256 stands for the whole item in the journal."""
        final = self.outgoing / f"{item_id}{SET_SUFFIX}"
        if final.exists():
            return self.describe(final)
        members = []
        for index, (to, data) in enumerate(packages):
            path = self.outgoing / f"{item_id}.{index}.edxml"
            if path.exists():
                path.unlink()  # a leftover of a crash before the set file was published
            fsutil.write_file_durably(path, data)
            members.append({"to": to, "file": path.name,
                            "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
        fsutil.fsync_dir(self.outgoing)
        fsutil.atomic_write(final, json.dumps({"item_id": item_id, "packages": members},
                                              indent=2) + "\n")
        return self.describe(final)

    @staticmethod
    def is_set(path: str | os.PathLike[str]) -> bool:
        return str(path).endswith(SET_SUFFIX)

    def members(self, path: str | os.PathLike[str]) -> list[SetMember]:
        """The packages of a set file, each checked against its recorded SHA-256."""
        path = Path(path)
        listing = json.loads(path.read_text(encoding="utf-8"))
        members = []
        for entry in listing["packages"]:
            member = path.parent / entry["file"]
            members.append(SetMember(to=entry["to"], path=member, sha256=entry["sha256"],
                                     size=int(entry["size"])))
        return members

    @staticmethod
    def describe(path: Path) -> StoredPackage:
        digest, size = sha256_of(path)
        return StoredPackage(path=path, sha256=digest, size=size)

    def scratch_dir(self, item_id: str) -> Path:
        """A fresh directory for temporary files of one item (removed with ``drop_scratch``)."""
        directory = self.scratch / item_id
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(mode=0o700)
        return directory

    def drop_scratch(self, item_id: str) -> None:
        shutil.rmtree(self.scratch / item_id, ignore_errors=True)

    def purge_outgoing(self, older_than: dt.timedelta, keep: Callable[[str], bool]) -> int:
        """Remove outgoing copies older than ``older_than`` whose item ``keep(item_id)`` says
        may go (finished or forgotten by the journal). Returns the number of files removed."""
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        decisions: dict[str, bool] = {}
        for entry in list(os.scandir(self.outgoing)):
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                continue
            item_id = entry.name.split(".", 1)[0]
            if item_id not in decisions:
                decisions[item_id] = not keep(item_id)
            if decisions[item_id]:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        if removed:
            fsutil.fsync_dir(self.outgoing)
        return removed

    # -- incoming -------------------------------------------------------------------------------
    def incoming_path(self, item_id: str, received: dt.datetime | None = None) -> Path:
        """Where a received package goes (the month folder is created)."""
        received = received or dt.datetime.now(dt.timezone.utc)
        directory = self.incoming / received.strftime("%Y-%m")
        if fsutil.ensure_directory(directory, 0o750):
            fsutil.fsync_dir(self.incoming)
        return directory / f"{item_id}.edxml"

    def finish_incoming(self, path: Path) -> StoredPackage:
        """After a download wrote ``path`` (fsync'd, renamed): make the rename durable too."""
        fsutil.fsync_dir(path.parent)
        return self.describe(path)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
