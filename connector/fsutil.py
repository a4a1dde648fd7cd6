"""Durable file operations: the few ways this project changes files that must survive a crash.

A write that is acknowledged to someone (the axis told ``done``, the journal told ``delivered``)
must still be there after a power cut. On Linux that takes more than ``write``: the file's data
must be fsync'd, and so must the directory whose entry points to it — a rename is only durable
once its directory is. Every helper here does both, so callers cannot forget one half.

Readers never see half a file: content is written under a temporary dot-name in the same
directory and renamed into place (rename within one filesystem is atomic). That is also why the
exchange folders must all be on one filesystem (:func:`same_filesystem`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from connector.errors import InputError

FILE_MODE = 0o640
"""Files the connector writes: readable by the ``edxml`` group (the DMS user), never by others."""


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the directory's entries (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """``os.write`` until every byte is written: one call may write fewer than asked."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def temporary_name(final: Path) -> Path:
    """A dot-name beside ``final`` that readers ignore and that no two writers share."""
    return final.with_name(f".{final.name}.tmp-{secrets.token_hex(4)}")


def write_file_durably(path: Path, data: bytes | Iterable[bytes], *, mode: int = FILE_MODE) -> int:
    """Write a new file (it must not exist) from bytes or from pieces (content too large to
    hold), fsync its data, return its size. The directory is not fsync'd: the caller fsyncs it
    once after writing several files (see :func:`publish_directory`)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    size = 0
    try:
        os.fchmod(fd, mode)  # explicit: the process umask must not decide who can read it
        for piece in (data,) if isinstance(data, bytes | bytearray | memoryview) else data:
            _write_all(fd, piece)
            size += len(piece)
        os.fsync(fd)
    finally:
        os.close(fd)
    return size


def copy_file_durably(source: Path, target: Path, *, mode: int = FILE_MODE) -> None:
    """Copy bytes exactly (no metadata) into a new file and fsync it."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        with open(source, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``data`` so that a reader sees the old or the new content, never a
    mix, and the new content survives a crash once this returns."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    temporary = temporary_name(path)
    try:
        write_file_durably(temporary, data, mode=mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_dir(path.parent)


def replace_streamed(path: Path, pieces: Iterable[bytes], *, fsync: bool = True) -> int:
    """Write ``pieces`` to ``path`` so that the name appears only once the content is complete;
    return the number of bytes written. For content too large to hold in memory (a package is
    streamed from its attachment files): the pieces go to ``.NAME.<random>.part`` beside
    ``path`` — a name the outbox scan skips twice over, as a dot-name and as ``.part`` — which is
    fsync'd and renamed into place. The directory is not fsync'd (a caller that needs the rename
    itself durable calls :func:`fsync_dir`). ``fsync=False`` is for benchmarks and tests."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(16)}.part")
    size = 0
    try:
        with open(temporary, "wb") as handle:
            for piece in pieces:
                handle.write(piece)
                size += len(piece)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return size


def create_exclusive(path: Path, data: bytes | str, *, mode: int = FILE_MODE) -> bool:
    """Create ``path`` with ``data`` only if the name is free, atomically and durably.

    The content is written and fsync'd under a temporary name, then hard-linked to ``path`` —
    ``link`` fails when the name exists, so of several writers exactly one wins, and a reader
    never sees a partial file. Returns False when the name was taken.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    temporary = temporary_name(path)
    write_file_durably(temporary, data, mode=mode)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(temporary)
    fsync_dir(path.parent)
    return True


def remove_durably(path: Path) -> None:
    """Remove a file (if present) and make the removal durable."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def durable_rename(source: Path, target: Path) -> None:
    """Rename within one filesystem and make it durable in both directories.

    Raises ``FileNotFoundError`` when ``source`` is gone (someone else moved it first) and
    ``FileExistsError`` when ``target`` exists: an existing target is never replaced, because
    the only callers move whole items whose names they chose to be free.
    """
    if target.exists() or target.is_symlink():
        raise FileExistsError(errno.EEXIST, "target exists", str(target))
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise FileExistsError(errno.EEXIST, "target exists", str(target)) from error
        raise
    fsync_dir(target.parent)
    if source.parent != target.parent:
        fsync_dir(source.parent)


def publish_directory(staging: Path, final: Path) -> bool:
    """Make a fully written staging directory visible under ``final`` in one step.

    Every file in ``staging`` must already be fsync'd; this fsyncs ``staging`` itself, renames
    it, and fsyncs the parent. Returns False (and removes ``staging``) when ``final`` exists
    already — someone published the same item first, and theirs is kept.
    """
    fsync_dir(staging)
    try:
        if final.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(final))
        os.rename(staging, final)
    except OSError as error:
        if isinstance(error, FileExistsError) or error.errno in (errno.ENOTEMPTY, errno.EEXIST):
            shutil.rmtree(staging, ignore_errors=True)
            return False
        raise
    fsync_dir(final.parent)
    return True


def ensure_directory(path: Path, mode: int) -> bool:
    """Create ``path`` (and parents, with the same mode) if missing; returns True when created.
    The mode is applied with chmod so that the umask does not strip setgid or group bits, and
    the parent is fsync'd so that the new directory survives a crash."""
    if path.is_dir():
        return False
    if not path.parent.is_dir():
        ensure_directory(path.parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if path.is_dir():
            return False
        raise
    os.chmod(path, mode)
    fsync_dir(path.parent)
    return True


def device_of(path: str | os.PathLike[str]) -> int:
    """The filesystem a path lives on (``st_dev``), following symlinks."""
    return os.stat(path).st_dev


def same_filesystem(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """True when a rename between the two paths can be atomic (same ``st_dev``)."""
    return device_of(first) == device_of(second)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], *, shared: bool = False) -> Iterator[int]:
    """Hold an advisory ``flock`` on ``path`` (a file or a directory) for the block.

    Locking a directory rather than a file that is replaced by rename keeps everyone on the
    same inode. Blocks until the lock is free.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC
    if os.path.isdir(path):
        flags |= os.O_DIRECTORY
    fd = os.open(path, flags)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def append_line(path: Path, line: bytes, *, mode: int = FILE_MODE) -> None:
    """Append one newline-terminated record and fsync it.

    The caller holds the file's lock. If the file ends in a torn record (a crash in the middle
    of an earlier append), that fragment is closed with a newline first so the new record starts
    on its own line; readers skip lines that are not valid records.
    """
    if not line.endswith(b"\n"):
        line += b"\n"
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, mode)
    try:
        if created:
            os.fchmod(fd, mode)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        _write_all(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


def is_regular_file(path: Path) -> bool:
    """A regular file, not a symlink (a symlink in the outbox could point anywhere)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def sendable_file_problem(info: os.stat_result) -> str | None:
    """Why a file handed over by the agency side must not be sent, or None.

    Only a regular file is sent: a symlink could point at anything this process can read (its
    private key, the axis secret, the journal), a FIFO or a device would block the daemon. A hard
    link is a symlink in disguise when the file belongs to this process's user — the DMS user
    cannot write such a file, so a second name for it in the outbox is someone linking one of
    our files (possible where ``fs.protected_hardlinks`` is 0). The DMS's own hard-linked files
    (another owner) are fine.
    """
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link (links are not followed)"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a folder, FIFO or device)"
    if info.st_nlink > 1 and info.st_uid == os.geteuid():
        return ("is a hard link to a file owned by the connector's user (copy the file into "
                "place instead of linking it)")
    return None


def open_sendable(path: str | os.PathLike[str]):
    """Open a file the agency side handed over, for reading, refusing what
    :func:`sendable_file_problem` refuses. The checks are made on the opened descriptor
    (``O_NOFOLLOW``, then ``fstat``), so swapping the file for a link after an earlier check
    gains nothing; ``O_NONBLOCK`` keeps a FIFO from blocking the open."""

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise InputError("the attachment is a symbolic link (links are not followed)",
                             file=str(path), hint="put the file itself in place") from None
        raise
    try:
        problem = sendable_file_problem(os.fstat(fd))
        if problem:
            raise InputError(f"the attachment {problem}", file=str(path),
                             hint="put a plain copy of the file in place")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_real_directory(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
