"""The outbox side: which entries are ready, and what a claimed entry contains.

Readiness follows the contract: the DMS writes under a temporary name (``*.tmp``, ``*.part`` or a
dot-name) and renames, so ``NAME.edxml`` appearing means it is complete; a bundle folder is
complete when ``document.yaml`` (written last) or a ``.ready`` marker is in it; a status drop is
``statuses/NAME.yaml``, ``.yml`` or ``.json``. A DMS that cannot rename can turn on
``settle_seconds``: an entry is then taken only once its size and modification time have stayed
unchanged that long.

Loading never raises for bad content: an item whose ``document.yaml`` is invalid or names a
missing file is still returned, with ``problem`` set, because it has already been claimed —
the core records the problem and calls ``mark_failed``, which puts the reason next to the item in
``failed/``. Nothing is left half-claimed and nothing is silently dropped.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from connector import fsutil
from connector.dms.base import OutgoingItem, OutgoingKind
from connector.dms.folder.claims import ClaimName
from connector.dms.folder.status_drop import load_status_request
from connector.errors import ConnectorError, InputError
from connector.schemas.document import load_document_metadata, parse_document_metadata

PACKAGE_SUFFIX = ".edxml"
STATUS_SUFFIXES = (".yaml", ".yml", ".json")
BUNDLE_METADATA = "document.yaml"
DEFAULT_MAX_METADATA_BYTES = 1024 * 1024
"""``exchange.max_metadata_mb``: a real document.yaml or status file is a few kilobytes."""
READY_MARKER = ".ready"
UNFINISHED_SUFFIXES = (".tmp", ".part")


def is_unfinished_name(name: str) -> bool:
    """Names the DMS uses while it is still writing (and names we use for our own temporaries)."""
    return name.startswith(".") or name.lower().endswith(UNFINISHED_SUFFIXES)


@dataclass(frozen=True)
class Candidate:
    """An outbox entry that looks complete: ``name`` relative to its folder."""

    path: Path
    name: str
    is_status: bool
    mtime_ns: int

    @property
    def display(self) -> str:
        """The name as the DMS knows it (``statuses/NAME.yaml`` for a status)."""
        return f"statuses/{self.name}" if self.is_status else self.name


def scan_outbox(outbox: Path, statuses: Path) -> list[Candidate]:
    """Entries to claim, oldest first (then by name): those that look complete by name and
    marker, and those the connector will never take — a link, a FIFO or device, a file of an
    unknown kind. Those are claimed too, so that :func:`load_item` refuses them and they end in
    ``failed/`` with the reason instead of staying in the outbox unexplained. Temporary names
    and bundle folders still being written (no ``document.yaml`` or ``.ready`` yet) wait."""
    found: list[Candidate] = []
    for entry in _list(outbox):
        if is_unfinished_name(entry.name) or entry.path == str(statuses):
            continue
        try:
            if entry.is_dir(follow_symlinks=False) and not _bundle_marked_ready(Path(entry.path)):
                continue
            found.append(Candidate(Path(entry.path), entry.name, False,
                                   entry.stat(follow_symlinks=False).st_mtime_ns))
        except FileNotFoundError:  # claimed by someone else while we looked
            continue
    for entry in _list(statuses):
        if is_unfinished_name(entry.name):
            continue
        try:
            found.append(Candidate(Path(entry.path), entry.name, True,
                                   entry.stat(follow_symlinks=False).st_mtime_ns))
        except FileNotFoundError:
            continue
    found.sort(key=lambda candidate: (candidate.mtime_ns, candidate.is_status, candidate.name))
    return found


def _list(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except FileNotFoundError:
        return []


def _bundle_marked_ready(bundle: Path) -> bool:
    return fsutil.is_regular_file(bundle / BUNDLE_METADATA) or (bundle / READY_MARKER).exists()


def content_signature(path: Path) -> tuple[int, int, int]:
    """(files, total size, newest mtime) of a file or a folder's files: changes while written."""
    if not fsutil.is_real_directory(path):
        info = os.lstat(path)
        return (1, info.st_size, info.st_mtime_ns)
    count = size = newest = 0
    for root, _dirs, files in os.walk(path):
        newest = max(newest, os.lstat(root).st_mtime_ns)
        for name in files:
            info = os.lstat(os.path.join(root, name))
            count += 1
            size += info.st_size
            newest = max(newest, info.st_mtime_ns)
    return (count, size, newest)


@dataclass
class SettleTracker:
    """For a DMS that cannot rename: an entry is ready once its content signature has stayed
    unchanged for ``settle_seconds`` (measured on the monotonic clock, so clock steps do not
    matter), or at once if its files were last modified longer ago than that (after a restart)."""

    settle_seconds: float
    _seen: dict[str, tuple[tuple[int, int, int], float]] = field(default_factory=dict)

    def is_settled(self, candidate: Candidate) -> bool:
        try:
            signature = content_signature(candidate.path)
        except FileNotFoundError:
            return False
        now = time.monotonic()
        key = str(candidate.path)
        previous = self._seen.get(key)
        if previous is None or previous[0] != signature:
            self._seen[key] = (signature, now)
            age = time.time() - signature[2] / 1e9
            return previous is None and age >= self.settle_seconds
        return now - previous[1] >= self.settle_seconds

    def forget(self, candidate: Candidate) -> None:
        self._seen.pop(str(candidate.path), None)

    def prune(self, present: set[str]) -> None:
        for key in list(self._seen):
            if key not in present:
                del self._seen[key]


def load_item(work_path: Path, claim: ClaimName, *,
              max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES) -> OutgoingItem:
    """Build the :class:`OutgoingItem` for a claimed entry; problems go into ``item.problem``.
    A metadata or status file over ``max_metadata_bytes`` is refused before it is read: a
    100 MB document.yaml would otherwise be held in memory several times over by the parser."""
    item = OutgoingItem(source="folder", source_ref=claim.source_ref, kind=OutgoingKind.DOCUMENT,
                        claimed_at=claim.claimed_at, display_name=claim.display_name)
    try:
        if claim.is_status:
            item.kind = OutgoingKind.STATUS
            _refuse_unsendable(work_path, claim.display_name, "status file")
            if not claim.name.lower().endswith(STATUS_SUFFIXES):
                raise InputError("not a status file: statuses/ takes NAME.yaml, NAME.yml or "
                                 "NAME.json", file=claim.display_name,
                                 hint="rename it, or move it out of the outbox")
            _refuse_oversized(work_path, max_metadata_bytes, claim.display_name)
            item.status = _relabel(load_status_request, work_path, claim.display_name)
        elif fsutil.is_real_directory(work_path):
            item.kind = OutgoingKind.DOCUMENT
            metadata_path = work_path / BUNDLE_METADATA
            if not fsutil.is_regular_file(metadata_path):
                raise InputError(f"the bundle has no {BUNDLE_METADATA}",
                                 file=f"{claim.display_name}/{BUNDLE_METADATA}",
                                 hint=f"write {BUNDLE_METADATA} (last) to describe the document")
            _refuse_oversized(metadata_path, max_metadata_bytes,
                              f"{claim.display_name}/{BUNDLE_METADATA}")
            item.metadata = _relabel(_load_bundle_metadata, metadata_path,
                                     f"{claim.display_name}/{BUNDLE_METADATA}")
            item.attachment_files = bundle_attachments(work_path, claim.display_name, item.metadata)
        else:
            item.kind = OutgoingKind.PACKAGE
            _refuse_unsendable(work_path, claim.display_name, "package")
            if not claim.name.lower().endswith(PACKAGE_SUFFIX):
                raise InputError("not a kind of item the outbox takes: it takes NAME.edxml "
                                 "packages, bundle folders with document.yaml, and "
                                 "statuses/NAME.yaml", file=claim.display_name,
                                 hint="rename it, or move it out of the outbox")
            item.package_path = work_path
    except ConnectorError as error:
        item.problem = error
    except OSError as error:
        item.problem = InputError(f"cannot read the item: {error.strerror or error}",
                                  file=claim.display_name,
                                  hint="check the file's permissions, then `edxml-connector retry`")
    return item


def _refuse_unsendable(path: Path, display: str, what: str) -> None:
    problem = fsutil.sendable_file_problem(os.lstat(path))
    if problem:
        raise InputError(f"the {what} {problem}", file=display,
                         hint=f"put a plain copy of the {what} in the outbox")


def _refuse_oversized(path: Path, limit: int, display: str) -> None:
    size = os.lstat(path).st_size
    if size > limit:
        raise InputError(f"the file is {size:,} bytes, over the limit of {limit:,} bytes "
                         f"(exchange.max_metadata_mb)", file=display,
                         hint="metadata is a few kilobytes: put the content in attachments, or "
                              "raise exchange.max_metadata_mb")


def _load_bundle_metadata(path: Path):
    """``document.yaml`` parsed by libyaml's C parser when PyYAML has it (same safe tag set and
    results as ``yaml.safe_load``, ~10× less CPU: at 100 bundles a second the pure-Python parser
    was a tenth of the daemon's busy time). Anything unusual — no libyaml, a syntax error, not
    UTF-8, not a mapping — goes through :func:`load_document_metadata`, which names the file,
    line and fix."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        try:
            raw = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=loader)  # noqa: S506
        except (yaml.YAMLError, UnicodeDecodeError):
            raw = None
        if isinstance(raw, dict):
            return parse_document_metadata(raw, file=str(path))
    return load_document_metadata(path)


def _relabel(loader, path: Path, display: str):
    """Run a loader and make its errors name the file as the DMS knows it (outbox-relative),
    not the connector's ``work/`` path."""
    try:
        return loader(path)
    except ConnectorError as error:
        error.file = display
        raise


def bundle_attachments(bundle: Path, display_name: str, metadata) -> list[Path]:
    """The attachment files of a bundle, in the order ``document.yaml`` lists them, or every
    other file sorted by name when it lists none."""
    metadata_file = f"{display_name}/{BUNDLE_METADATA}"
    if metadata.attachments:
        files = []
        for index, entry in enumerate(metadata.attachments):
            relative = Path(entry.file)
            element = f"attachments.{index}.file"
            if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                raise InputError(f"{entry.file!r} is not a file name inside the bundle",
                                 file=metadata_file, element=element,
                                 hint="give the file's name relative to the bundle folder")
            path = bundle / relative
            if not fsutil.is_regular_file(path) or not path.resolve().is_relative_to(bundle.resolve()):
                raise InputError(f"names {entry.file!r}, which is not a file in the bundle",
                                 file=metadata_file, element=element,
                                 hint="put the file in the bundle folder or fix the name, then "
                                      "`edxml-connector retry`")
            problem = fsutil.sendable_file_problem(os.lstat(path))
            if problem:
                raise InputError(f"{entry.file!r} {problem}", file=metadata_file, element=element,
                                 hint="put a plain copy of the file in the bundle, then "
                                      "`edxml-connector retry`")
            files.append(path)
        return files
    files = []
    for entry in sorted(os.scandir(bundle), key=lambda entry: (entry.name.casefold(), entry.name)):
        if entry.name in (BUNDLE_METADATA, READY_MARKER) or entry.name.startswith("."):
            continue
        if entry.name.lower().endswith(UNFINISHED_SUFFIXES):
            raise InputError(f"the bundle holds an unfinished file {entry.name!r}",
                             file=f"{display_name}/{entry.name}",
                             hint="rename it to its final name (or list the attachments in "
                                  f"{BUNDLE_METADATA}), then `edxml-connector retry`")
        if not entry.is_file(follow_symlinks=False):
            raise InputError(f"{entry.name!r} is not a plain file (folders and links are not sent)",
                             file=f"{display_name}/{entry.name}",
                             hint="put attachments directly in the bundle folder")
        problem = fsutil.sendable_file_problem(entry.stat(follow_symlinks=False))
        if problem:
            raise InputError(f"{entry.name!r} {problem}", file=f"{display_name}/{entry.name}",
                             hint="put a plain copy of the file in the bundle, then "
                                  "`edxml-connector retry`")
        files.append(Path(entry.path))
    return files
