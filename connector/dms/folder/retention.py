"""Housekeeping of the exchange tree: archive retention and crash leftovers.

Two jobs, both deleting, so both are narrow on purpose:

- **Archive retention** (``retention.sent_archive_days`` / ``failed_archive_days``): an item of
  ``sent/`` or ``failed/`` (a package file or a bundle folder) goes together with its sidecar
  (``NAME.receipt.json`` / ``NAME.error.txt``) once the *newest* of their modification times is
  older than the limit — a receipt updated by a late status keeps its item. The pairing is read
  from the sidecar itself (its ``source_ref`` gives the item's exact name, collisions
  ``NAME--<stamp>`` included), so a package ``cv.edxml`` and its ``cv.receipt.json`` are never
  judged apart. A lone sidecar whose item is still in ``work/`` (a move a crash interrupted, which
  ``mark_sent``/``mark_failed`` will finish) is kept.
- **Staging leftovers**: the inbox writer builds each delivery in a hidden
  ``.ITEM.tmp-XXXXXXXX`` folder and renames it into place. A crash leaves that folder behind; it is
  removed once nothing in it changed for a grace period (a live writer, here or in another
  connector sharing the tree, keeps touching it). Only names of exactly that shape are ever
  touched: a completed inbox item has no leading dot and is never deleted.

Never touched: ``outbox/``, ``work/``, ``inbox/`` items, ``quarantine/`` items, the jsonl logs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

import structlog

from connector import fsutil
from connector.dms.folder.claims import ClaimName

log = structlog.get_logger(__name__)

RECEIPT_SUFFIX = ".receipt.json"
ERROR_SUFFIX = ".error.txt"
SIDECAR_SUFFIXES = (RECEIPT_SUFFIX, ERROR_SUFFIX)
STAGING_NAME = re.compile(r"^\..+\.tmp-[0-9a-f]{8}$")
"""What ``InboxWriter._publish`` names its staging folders (``secrets.token_hex(4)``)."""
DEFAULT_STAGING_GRACE = dt.timedelta(minutes=10)


# ------------------------------------------------------------------------------ archives

def purge_archive_dir(directory: Path, older_than: dt.timedelta, *, work: Path | None = None,
                      now: float | None = None) -> list[str]:
    """Remove the items (with their sidecars) of one archive folder — ``sent/`` or ``failed/``,
    and its ``statuses/`` — whose newest part is older than ``older_than``. ``work`` is the
    claims folder: a lone sidecar whose item is still there is kept. Returns one name per item
    removed (the item's, or the sidecar's when it was alone), relative to ``directory``.

    The age of an entry is its own modification time (a folder's, not its files': the DMS's
    file times say when it wrote them, not when the item was archived)."""
    if not directory.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - older_than.total_seconds()
    removed: list[str] = []
    for group in _groups(directory):
        if any(_mtime(path) >= cutoff for path in group):
            continue
        if _lone_sidecar_of_live_claim(group, work):
            continue
        items = [path for path in group if not path.name.endswith(SIDECAR_SUFFIXES)]
        sidecars = [path for path in group if path not in items]
        for path in items + sidecars:  # item first: a crash leaves a lone sidecar, purged next time
            _remove(path)
        removed.append((items or sidecars)[0].name)
    statuses = directory / "statuses"
    if statuses.is_dir() and not statuses.is_symlink():
        removed += ["statuses/" + name for name in
                    purge_archive_dir(statuses, older_than, work=work, now=now)]
    if removed:
        fsutil.fsync_dir(directory)
    return removed


def _groups(directory: Path) -> list[list[Path]]:
    """Item + sidecar groups. Sidecars that name their item (``source_ref``) are paired first;
    an unreadable sidecar falls back to its stem (``NAME.receipt.json`` ↔ ``NAME`` or
    ``NAME.<ext>``); whatever is left is a group of its own."""
    entries = {entry.name: Path(entry.path) for entry in os.scandir(directory)
               if not entry.name.startswith(".")
               and not (entry.name == "statuses" and entry.is_dir(follow_symlinks=False))}
    groups: list[list[Path]] = []
    taken: set[str] = set()
    sidecars = sorted(name for name in entries if name.endswith(SIDECAR_SUFFIXES))
    fallback: list[str] = []
    for name in sidecars:
        item = _item_named_by(entries[name])
        if item is None:
            fallback.append(name)
            continue
        group = [entries[name]]
        if item in entries and item not in taken and item not in sidecars:
            group.append(entries[item])
            taken.add(item)
        taken.add(name)
        groups.append(group)
    for name in fallback:
        if name in taken:
            continue
        stem = _strip_sidecar(name)
        group = [entries[name]]
        taken.add(name)
        for other, path in entries.items():
            if other in taken or other.endswith(SIDECAR_SUFFIXES):
                continue
            if other == stem or _stem(other) == stem:
                group.append(path)
                taken.add(other)
        groups.append(group)
    groups += [[path] for name, path in entries.items() if name not in taken]
    return groups


def _item_named_by(sidecar: Path) -> str | None:
    """The archive name of the item a sidecar belongs to, from the ``source_ref`` inside it."""
    claim = ClaimName.parse(_source_ref(sidecar) or "")
    if claim is None:
        return None
    suffix = RECEIPT_SUFFIX if sidecar.name.endswith(RECEIPT_SUFFIX) else ERROR_SUFFIX
    stem, extension = _split(claim.name)
    for candidate in (stem, f"{stem}--{claim.stamp}"):
        if sidecar.name == candidate + suffix:
            return candidate + extension
    return None


def _source_ref(sidecar: Path) -> str | None:
    try:
        text = sidecar.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if sidecar.name.endswith(RECEIPT_SUFFIX):
        try:
            value = json.loads(text).get("source_ref")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None
    for line in text.splitlines():
        if line.startswith("source_ref: "):
            return line[len("source_ref: "):].strip()
    return None


def _split(name: str) -> tuple[str, str]:
    """Same rule as ``folder_results._split``: NAME.edxml / NAME.yaml|yml|json / NAME."""
    lower = name.lower()
    for suffix in (".edxml", ".yaml", ".yml", ".json"):
        if lower.endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    return name, ""


def _stem(name: str) -> str:
    return _split(name)[0]


def _strip_sidecar(name: str) -> str:
    for suffix in SIDECAR_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _lone_sidecar_of_live_claim(group: list[Path], work: Path | None) -> bool:
    if work is None or len(group) != 1 or not group[0].name.endswith(SIDECAR_SUFFIXES):
        return False
    claim = ClaimName.parse(_source_ref(group[0]) or "")
    return claim is not None and os.path.lexists(work / claim.source_ref)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def _newest_mtime(path: Path) -> float:
    """Newest modification time of a file, or of a folder and everything in it."""
    try:
        newest = path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0
    if path.is_dir() and not path.is_symlink():
        for folder, dirs, files in os.walk(path):
            for name in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
                except FileNotFoundError:
                    continue
    return newest


def _remove(path: Path) -> None:
    """Delete a file, a symlink (never its target) or a real folder tree."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------------------ staging

def sweep_staging(bases: Iterable[Path], *, grace: dt.timedelta = DEFAULT_STAGING_GRACE,
                  active: Iterable[Path] = (), now: float | None = None) -> list[Path]:
    """Remove delivery staging folders (``BASE/YYYY-MM-DD/.ITEM.tmp-XXXXXXXX``) left by a crash:
    only real folders of exactly that name, not in ``active`` (deliveries running in this
    process), in which nothing changed for ``grace``. Returns what was removed; each removal is
    logged. Completed items (no leading dot) are never looked at."""
    cutoff = (time.time() if now is None else now) - grace.total_seconds()
    active_set = {Path(path) for path in active}
    removed: list[Path] = []
    for base in bases:
        if not base.is_dir():
            continue
        for day in sorted(base.iterdir()):
            if day.name.startswith(".") or day.is_symlink() or not day.is_dir():
                continue
            removed_here = len(removed)
            for entry in sorted(day.iterdir()):
                if not STAGING_NAME.match(entry.name) or entry in active_set:
                    continue
                if entry.is_symlink() or not entry.is_dir():
                    continue
                newest = _newest_mtime(entry)
                if newest >= cutoff:
                    continue
                shutil.rmtree(entry, ignore_errors=True)
                if entry.exists():
                    log.warning("inbox_staging_not_removed", path=str(entry),
                                fix="remove it by hand; it is an unfinished delivery copy")
                    continue
                log.warning("inbox_staging_removed", path=str(entry),
                            last_change=dt.datetime.fromtimestamp(newest, dt.timezone.utc).isoformat(),
                            note="left by an interrupted delivery; the journal delivers it again")
                removed.append(entry)
            if len(removed) > removed_here:
                fsutil.fsync_dir(day)
    return removed
