"""Attachments both ways: the ZIP convention, safe extraction on receipt, and safe file names.

The ZIP convention (a third-party connector's habit, followed by the SDK samples): pdf, doc, docx,
xls, xlsx and zip travel as they are with their MIME type; any other file travels as a one-entry
ZIP with ContentType ``application/zip`` while ``AttachmentName`` keeps the original name, so the
receiver knows what is inside. On receipt, a part whose ContentType is ``application/zip`` but whose
name does not end in ``.zip`` is unzipped.

Unzipping data from outside is where zip bombs and path escapes (zip-slip) live, so extraction is
all-or-nothing: every limit is checked against the central directory first and again while the
bytes are read in bounded chunks; any violation leaves the part exactly as received and reports
why. Entries are extracted one by one into a folder the caller gives (under hidden names, which
the caller renames with :func:`sanitize_filename` and :func:`unique_name`), so memory stays at
one chunk whatever the archive holds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import mimetypes
import os
import re
import tempfile
import time
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import IO

from connector import fsutil
from connector.edxml.model import Attachment
from connector.errors import InputError

ZIP_CONTENT_TYPES = frozenset({"application/zip", "application/x-zip-compressed",
                               "application/x-zip"})
DEFAULT_AS_IS_EXTENSIONS = frozenset({"pdf", "doc", "docx", "xls", "xlsx", "zip"})

# mimetypes depends on the host's tables (/etc/mime.types); these must not.
_KNOWN_TYPES = {
    "pdf": "application/pdf",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt": "application/vnd.ms-powerpoint",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "rtf": "application/rtf",
    "zip": "application/zip",
    "rar": "application/vnd.rar",
    "7z": "application/x-7z-compressed",
    "txt": "text/plain",
    "xml": "application/xml",
    "edxml": "application/xml",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "tif": "image/tiff",
    "tiff": "image/tiff",
}
_CHUNK = 64 * 1024


def guess_content_type(name: str) -> str:
    """The MIME type for a file name: our table first (stable across hosts), then mimetypes."""
    extension = _extension(name)
    if extension in _KNOWN_TYPES:
        return _KNOWN_TYPES[extension]
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


def _extension(name: str) -> str:
    suffix = PurePath(name.replace("\\", "/")).suffix
    return suffix[1:].lower() if suffix else ""


# --------------------------------------------------------------------------------------------
# Outgoing
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ZipConvention:
    """The ZIP convention as a setting. ``enabled=False`` sends every file as it is (for a peer
    that does not unzip); ``as_is_extensions`` lists, without dots and in lower case, the types
    that travel unzipped."""

    enabled: bool = True
    as_is_extensions: frozenset[str] = DEFAULT_AS_IS_EXTENSIONS

    def sends_as_is(self, name: str) -> bool:
        return not self.enabled or _extension(name) in {e.lower().lstrip(".")
                                                        for e in self.as_is_extensions}


def prepare_outgoing(name: str, data: bytes | None = None, path: Path | None = None,
                     convention: ZipConvention = ZipConvention(), description: str | None = None,
                     content_type: str | None = None) -> Attachment:
    """Turn a file (bytes or a path) into the attachment to send, applying the ZIP convention.

    As-is types keep their MIME type (``content_type`` overrides the guess); other files become a
    one-entry ZIP whose entry is the original name, with ContentType ``application/zip`` and
    ``AttachmentName`` still the original name.
    """
    if (data is None) == (path is None):
        raise InputError("give an attachment either as bytes or as a path, not both or neither",
                         element=name, hint="this is a programming error in the caller")
    if not name or not name.strip():
        raise InputError("an attachment needs a name", file=str(path) if path else None,
                         hint="give the file name the receiver should see")
    if path is not None and not Path(path).is_file():
        raise InputError("attachment file not found", file=str(path),
                         hint="check the path given for the attachment")
    if convention.sends_as_is(name):
        return Attachment(name=name, content_type=content_type or guess_content_type(name),
                          description=description, data=data,
                          path=Path(path) if path is not None else None)
    return Attachment(name=name, content_type="application/zip", description=description,
                      data=_zip_one(name, data, path))


def _zip_one(name: str, data: bytes | None, path: Path | None) -> bytes:
    """A one-entry deflated ZIP of the file, streamed from disk when it is a path."""
    entry_name = sanitize_filename(name, max_length=255)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        if data is not None:
            archive.writestr(_entry_info(entry_name), data)
        elif path is None:
            raise ValueError("an attachment needs its bytes or its path")
        else:
            info = zipfile.ZipInfo.from_file(path, arcname=entry_name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with fsutil.open_sendable(path) as source, \
                    archive.open(info, "w", force_zip64=True) as target:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    target.write(chunk)
    return buffer.getvalue()


def _entry_info(entry_name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(entry_name, _now_tuple())
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _now_tuple() -> tuple[int, int, int, int, int, int]:
    return time.localtime()[:6]


# --------------------------------------------------------------------------------------------
# Incoming
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ZipLimits:
    """Bounds for unzipping a received part. The ratio check applies to entries larger than
    ``ratio_threshold`` bytes (a 2 KB text that compresses 200:1 is harmless).

    The entries together may unpack to ``max_expansion`` times the package's size
    (``package_size``; the part's own size when the caller does not know the package's) — or
    ``ratio_threshold`` for small packages — and never more than ``max_total_size``: a 1 MB
    package cannot make the receiver unpack a gigabyte of zeros."""

    max_entries: int = 500
    max_total_size: int = 256 * 1024 * 1024
    max_entry_size: int = 256 * 1024 * 1024
    max_ratio: float = 100.0
    ratio_threshold: int = 1024 * 1024
    max_expansion: float = 4.0
    package_size: int | None = None

    def total_for(self, part_size: int) -> int:
        """The most the entries of a part of ``part_size`` bytes may unpack to."""
        base = self.package_size if self.package_size is not None else part_size
        return min(self.max_total_size, max(self.ratio_threshold, int(self.max_expansion * base)))


@dataclass
class ExtractedEntry:
    """One unpacked entry: in memory (``data``), in a file (``path``, when extracted ``into`` a
    folder) or only measured (both None)."""

    name: str  # sanitised, safe as a file name
    original_name: str  # as stored in the archive
    content_type: str
    size: int
    sha256: str
    data: bytes | None = None
    path: Path | None = None


@dataclass
class ZipExtraction:
    """``extracted`` is True only when every entry passed; otherwise ``entries`` is empty and
    ``problems`` says why the part is kept as received."""

    entries: list[ExtractedEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    extracted: bool = False


def is_zip_convention_part(attachment: Attachment) -> bool:
    """A part the convention says to unzip: ContentType zip, name not ending in ``.zip``."""
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    return content_type in ZIP_CONTENT_TYPES and not attachment.name.lower().rstrip().endswith(".zip")


def extract_zip_part(attachment: Attachment, limits: ZipLimits = ZipLimits(), *,
                     into: Path | None = None, measure_only: bool = False) -> ZipExtraction:
    """Unzip a ZIP-convention part within ``limits``, or report why not. Never partial.

    Where the entries go: ``into`` a folder, one file each (``.unzip-N.part``, fsync'd; the
    caller renames them), entry by entry, so a part of 1,000 entries costs a 64 KB buffer;
    nowhere with ``measure_only`` (names, sizes and digests for a summary); else in memory
    (``data``), for a caller that needs the bytes anyway. Files of a part that fails a limit
    half-way are removed."""
    if not is_zip_convention_part(attachment):
        return ZipExtraction()
    label = f"attachment {attachment.name!r}"
    if attachment.data is None and attachment.path is None and attachment.encoded is None:
        return ZipExtraction(problems=[f"{label} has no content; kept as received"])
    sink = _Sink(into, keep=not measure_only)
    try:
        limits = dataclasses.replace(limits, max_total_size=limits.total_for(attachment.size))
        with _seekable(attachment) as source, zipfile.ZipFile(source) as archive:
            problems = _check_directory(archive.infolist(), limits, label)
            if problems:
                return ZipExtraction(problems=problems)
            entries, problems = _read_entries(archive, limits, label, sink)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError,
            NotImplementedError, RuntimeError, OSError) as error:
        sink.discard()
        return ZipExtraction(problems=[f"{label} is not a readable ZIP archive ({error}); kept as "
                                       "received"])
    except BaseException:
        sink.discard()
        raise
    if problems:
        sink.discard()
        return ZipExtraction(problems=problems)
    return ZipExtraction(entries=entries, extracted=True)


@contextmanager
def _seekable(attachment: Attachment) -> Iterator[IO[bytes] | Path]:
    """What ``zipfile`` can seek in: the bytes, the file, or — for a part still base64 in its
    package — a temporary file beside the package, decoded into in pieces."""
    if attachment.data is not None:
        yield io.BytesIO(attachment.data)
    elif attachment.encoded is None and attachment.path is not None:
        yield Path(attachment.path)
    else:
        folder = attachment.encoded.path.parent if attachment.encoded is not None else None
        with tempfile.TemporaryFile(dir=folder) as spool:
            for piece in attachment.chunks():
                spool.write(piece)
            spool.seek(0)
            yield spool


class _Sink:
    """Where entries' bytes go while they are read (see :func:`extract_zip_part`)."""

    def __init__(self, into: Path | None, *, keep: bool) -> None:
        self.into = into
        self.keep = keep
        self.written: list[Path] = []

    @contextmanager
    def entry(self) -> Iterator[tuple[Callable[[bytes], object], Callable[[], bytes | None],
                                      Path | None]]:
        """(write, the bytes kept in memory or None, the file or None) for one entry."""
        if self.into is not None:
            path = self.into / f".unzip-{len(self.written) + 1}.part"
            self.written.append(path)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         fsutil.FILE_MODE)
            os.fchmod(fd, fsutil.FILE_MODE)  # the umask must not decide who reads the inbox
            with os.fdopen(fd, "wb") as handle:
                yield handle.write, lambda: None, path
                handle.flush()
                os.fsync(handle.fileno())
        elif self.keep:
            chunks: list[bytes] = []
            yield chunks.append, lambda: b"".join(chunks), None
        else:
            yield len, lambda: None, None

    def discard(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)
        self.written.clear()


_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_entry_name(name: str) -> str | None:
    """Why an archive entry name could escape the target folder, or None when it cannot."""
    if not name:
        return "has an empty name"
    if "\\" in name:
        return "uses a backslash in its path"
    if name.startswith("/"):
        return "has an absolute path"
    if _DRIVE.match(name):
        return "names a drive"
    if any(part == ".." for part in name.split("/")):
        return "climbs out of the folder with '..'"
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return "contains control characters"
    return None


def _check_directory(infos: list[zipfile.ZipInfo], limits: ZipLimits, label: str) -> list[str]:
    """Every limit that the central directory alone shows to be violated."""
    problems = []
    files = [info for info in infos if not info.is_dir()]
    if len(infos) > limits.max_entries:
        problems.append(f"{label}: {len(infos)} entries, more than the limit of "
                        f"{limits.max_entries} (zip bomb?); kept as received")
    if not files:
        problems.append(f"{label}: the archive holds no file; kept as received")
    total = 0
    for info in infos:
        reason = unsafe_entry_name(info.orig_filename)
        if reason:
            problems.append(f"{label}: entry {info.orig_filename!r} {reason} (path escape); "
                            "kept as received")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            problems.append(f"{label}: entry {info.orig_filename!r} is encrypted; kept as received")
        if info.file_size > limits.max_entry_size:
            problems.append(f"{label}: entry {info.orig_filename!r} unpacks to {info.file_size} "
                            f"bytes, more than the limit of {limits.max_entry_size}; kept as received")
        if info.file_size > limits.ratio_threshold and \
                info.file_size > limits.max_ratio * max(info.compress_size, 1):
            problems.append(f"{label}: entry {info.orig_filename!r} has a compression ratio of "
                            f"{info.file_size / max(info.compress_size, 1):.0f}:1, more than "
                            f"{limits.max_ratio:.0f}:1 (zip bomb?); kept as received")
        total += info.file_size
    if total > limits.max_total_size:
        problems.append(f"{label}: entries unpack to {total} bytes, more than the limit of "
                        f"{limits.max_total_size} (zip bomb?); kept as received")
    return problems


def _read_entries(archive: zipfile.ZipFile, limits: ZipLimits, label: str, sink: _Sink
                  ) -> tuple[list[ExtractedEntry], list[str]]:
    """Read every file entry in bounded chunks into ``sink``, re-checking the limits on the
    actual bytes (the directory can lie); the CRC check happens in zipfile at the end of each
    entry."""
    entries: list[ExtractedEntry] = []
    taken: set[str] = set()
    total = 0
    for info in archive.infolist():
        if info.is_dir():
            continue
        digest = hashlib.sha256()
        size = 0
        with sink.entry() as (write, kept, path), archive.open(info) as stream:
            while chunk := stream.read(_CHUNK):
                size += len(chunk)
                total += len(chunk)
                if size > limits.max_entry_size or size > max(info.file_size, 0):
                    return [], [f"{label}: entry {info.orig_filename!r} unpacks to more than "
                                "its directory says or the per-entry limit allows (zip bomb?); "
                                "kept as received"]
                if total > limits.max_total_size:
                    return [], [f"{label}: entries unpack to more than the limit of "
                                f"{limits.max_total_size} bytes (zip bomb?); kept as received"]
                if size > limits.ratio_threshold and size > limits.max_ratio * max(
                        info.compress_size, 1):
                    return [], [f"{label}: entry {info.orig_filename!r} exceeds the compression "
                                f"ratio limit of {limits.max_ratio:.0f}:1 (zip bomb?); kept as "
                                "received"]
                digest.update(chunk)
                write(chunk)
        name = unique_name(sanitize_filename(info.filename), taken)
        entries.append(ExtractedEntry(name=name, original_name=info.filename,
                                      content_type=guess_content_type(info.filename),
                                      size=size, sha256=digest.hexdigest(), data=kept(),
                                      path=path))
    return entries, []


# --------------------------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------------------------

_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                     *(f"{device}{n}" for device in ("COM", "LPT") for n in "123456789¹²³")}
_WINDOWS_FORBIDDEN = set('<>:"|?*')
_MAX_EXTENSION_BYTES = 16


def sanitize_filename(name: str, *, max_length: int = 150) -> str:
    """A name that is safe as a single file name on Linux and Windows, close to the original.

    NFC; path separators, characters Windows forbids and control/format characters replaced or
    dropped; runs of dots collapsed (so no ``..``); no leading dots or spaces, no trailing dots
    or spaces; reserved Windows device names prefixed with ``_``; at most ``max_length`` UTF-8
    bytes, keeping the extension; ``attachment`` when nothing is left.
    """
    text = unicodedata.normalize("NFC", name or "")
    cleaned = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "/\\" or ch in _WINDOWS_FORBIDDEN:
            cleaned.append("_")
        elif category in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            continue
        elif category == "Zs":
            cleaned.append(" ")
        else:
            cleaned.append(ch)
    result = re.sub(r"\.{2,}", ".", "".join(cleaned))
    result = re.sub(r" {2,}", " ", result)
    result = result.lstrip(". ").rstrip(". ")
    result = _truncate(result, max_length)
    if not result:
        return "attachment"
    stem = result.split(".", 1)[0].rstrip(" ")  # Windows ignores the spaces in "NUL .txt"
    if stem.upper() in _WINDOWS_RESERVED:
        result = _truncate("_" + result, max_length)
    return result


def _truncate(name: str, max_length: int) -> str:
    """Cut to ``max_length`` UTF-8 bytes on a character boundary, keeping a short extension."""
    if len(name.encode("utf-8")) <= max_length:
        return name
    stem, dot, extension = name.rpartition(".")
    suffix = f".{extension}" if dot and stem and len(extension.encode()) <= _MAX_EXTENSION_BYTES \
        else ""
    if not suffix:
        stem = name
    budget = max(max_length - len(suffix.encode("utf-8")), 0)
    cut = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(". ")
    if not cut:
        return name.encode("utf-8")[:max_length].decode("utf-8", "ignore").rstrip(". ")
    return cut + suffix


def unique_name(name: str, taken: set[str], *, max_length: int = 150) -> str:
    """``name``, or ``stem (2).ext``, ``stem (3).ext``... — the first not in ``taken``
    (compared case-insensitively, as Windows and macOS file systems do). The result is added to
    ``taken``."""
    folded = {t.casefold() for t in taken}
    candidate = name
    counter = 1
    while candidate.casefold() in folded:
        counter += 1
        stem, dot, extension = name.rpartition(".")
        if not dot or not stem:
            stem, extension = name, ""
        marker = f" ({counter})"
        suffix = f".{extension}" if extension else ""
        budget = max_length - len((marker + suffix).encode("utf-8"))
        stem = stem.encode("utf-8")[:max(budget, 1)].decode("utf-8", "ignore")
        candidate = f"{stem}{marker}{suffix}"
    taken.add(candidate)
    return candidate
