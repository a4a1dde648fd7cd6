"""The inbox side: received documents become folders the DMS can pick up.

``inbox/YYYY-MM-DD/ITEM/`` holds the package exactly as received, its attachments decoded under
safe names (a ZIP-convention part is kept and also extracted when that is safe), and
``metadata.json``. The folder is built under a temporary dot-name, every file and the folder are
fsync'd, and only then is it renamed into place and its parent fsync'd: a DMS never sees half an
item, and an item that is visible survives a power cut. ``ITEM`` is computed from the sender,
the code and the axis docId, so delivering the same document again finds the folder and does
nothing.

Quarantine (``quarantine/YYYY-MM-DD/ITEM/``) keeps a document refused by the signature policy:
the package, ``reason.txt`` and ``metadata.json`` — attachments are not decoded from a package we
do not trust. An operator's release delivers it to the inbox like any other document.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import secrets
import shutil
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog

from connector import fsutil
from connector.dms.base import IncomingDocument, IncomingStatus, LifecycleEvent
from connector.dms.folder.jsonl import AppendOnceLog
from connector.dms.folder.layout import READ_DIR_MODE, SHARED_DIR_MODE, ExchangeLayout
from connector.edxml.attachments import (
    ZipLimits,
    extract_zip_part,
    is_zip_convention_part,
    sanitize_filename,
    unique_name,
)
from connector.edxml.identifiers import VIETNAM_TZ
from connector.edxml.model import Attachment, BusinessType, DocumentPackage, StatusCode
from connector.edxml.reader import read_package
from connector.errors import ConnectorError
from connector.schemas.metadata import AttachmentFile, InboxMetadata, LifecycleEntry, SignatureOutcome

log = structlog.get_logger(__name__)

PACKAGE_FILE = "package.edxml"
METADATA_FILE = "metadata.json"
REASON_FILE = "reason.txt"
RELEASED_FILE = "released.json"
RESERVED_NAMES = {PACKAGE_FILE, METADATA_FILE, REASON_FILE, RELEASED_FILE}
STALE_STAGING_SECONDS = 600


# ------------------------------------------------------------------------------------ names

def ascii_safe(text: str, *, limit: int) -> str:
    """A portable name part: Vietnamese letters without their marks (đ -> d), everything that
    is not a letter, digit, '.', '_' or '-' turned into '-'. Samba shares and old DMS clients
    cope with these; the real names are in metadata.json."""
    text = text.replace("đ", "d").replace("Đ", "D")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", text)
    text = re.sub(r"-{2,}", "-", text).strip(".-_")
    return text[:limit].rstrip(".-_")


def item_name(sender: str | None, code: str | None, axis_doc_id: str) -> str:
    """``<sender OrganId>_<code>_<axis docId>``, filesystem-safe, deterministic."""
    parts = [ascii_safe(sender or "", limit=40) or "unknown-sender",
             ascii_safe(code or "", limit=60) or "no-code",
             ascii_safe(axis_doc_id, limit=80) or hashlib.sha256(axis_doc_id.encode()).hexdigest()[:16]]
    return "_".join(parts)


def local_date(moment: dt.datetime) -> str:
    """The day folder, in Vietnam time (what the agency's staff call 'today')."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(VIETNAM_TZ).date().isoformat()


def _code_text(summary: dict[str, Any]) -> str | None:
    code = summary.get("code")
    if isinstance(code, dict):
        parts = [str(code[key]) for key in ("number", "notation") if code.get(key)]
        return "/".join(parts) or None
    return str(code) if code else None


def _sender(summary: dict[str, Any]) -> str | None:
    sender = summary.get("from")
    if isinstance(sender, dict):
        return sender.get("organ_id")
    return str(sender) if sender else None


# ------------------------------------------------------------------------------------ writer

class InboxWriter:
    """Builds inbox and quarantine folders and keeps the two append-once logs."""

    def __init__(self, layout: ExchangeLayout, *, zip_limits: Any = None,
                 now: Callable[[], dt.datetime] | None = None) -> None:
        self.layout = layout
        self.zip_limits = zip_limits
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self.statuses = AppendOnceLog(layout.statuses_log)
        self.events = AppendOnceLog(layout.events_log)
        self._active_lock = threading.Lock()
        self._active_staging: set[Path] = set()

    def active_staging(self) -> set[Path]:
        """Staging folders of deliveries running now in this process (never swept)."""
        with self._active_lock:
            return set(self._active_staging)

    # -- documents ---------------------------------------------------------------------------
    def deliver(self, document: IncomingDocument, *, quarantine_info: dict[str, Any] | None = None) -> Path:
        """Publish the inbox folder (or find it there already) and return its path."""
        return self._publish(self.layout.inbox, SHARED_DIR_MODE, document,
                             lambda staging, item: self._fill_inbox_item(staging, item, document,
                                                                         quarantine_info))

    def quarantine(self, document: IncomingDocument, reason: str) -> Path:
        info = {"reason": reason, "quarantined_at": self._now().isoformat()}

        def fill(staging: Path, item: str) -> None:
            fsutil.copy_file_durably(document.package_path, staging / PACKAGE_FILE)
            fsutil.write_file_durably(staging / REASON_FILE, (reason.rstrip() + "\n").encode("utf-8"))
            self._write_metadata(staging, item, document, [], [], quarantine_info=info)

        return self._publish(self.layout.quarantine, READ_DIR_MODE, document, fill)

    def release(self, location: str | Path) -> Path:
        """Deliver a quarantined document to the inbox; the quarantine copy stays, with a
        ``released.json`` that says where it went."""
        folder = Path(location)
        if not folder.resolve().is_relative_to(self.layout.quarantine.resolve()):
            raise ConnectorError("not a quarantined item", file=str(folder),
                                 hint="give a folder under quarantine/ (`edxml-connector quarantine list`)")
        metadata_path = folder / METADATA_FILE
        try:
            stored = InboxMetadata.model_validate_json(metadata_path.read_bytes())
        except FileNotFoundError as error:
            raise ConnectorError("the quarantined item has no metadata.json", file=str(metadata_path),
                                 hint="release it with `edxml-connector quarantine release ID`, "
                                      "which rebuilds it from the journal") from error
        except ValueError as error:
            raise ConnectorError(f"metadata.json is unreadable: {error}", file=str(metadata_path),
                                 hint="restore it, or release from the journal by id") from error
        reason = (stored.quarantine or {}).get("reason", "unknown")
        document = IncomingDocument(
            journal_id=stored.journal_id, axis_doc_id=stored.axis_doc_id,
            received_at=stored.received_at, package_path=folder / PACKAGE_FILE,
            summary=stored.document, signature=stored.signature.model_dump(),
            warnings=[*stored.warnings, f"released from quarantine by an operator; it had been "
                                        f"held because: {reason}"],
            lifecycle=stored.links)
        released_at = self._now()
        marker = folder / RELEASED_FILE
        if marker.exists():
            try:
                released_at = dt.datetime.fromisoformat(json.loads(marker.read_text())["released_at"])
            except (ValueError, KeyError, OSError):
                pass
        info = {"reason": reason, "quarantined_at": (stored.quarantine or {}).get("quarantined_at"),
                "released_at": released_at.isoformat()}
        target = self.deliver(document, quarantine_info=info)
        if not marker.exists():
            fsutil.atomic_write(marker, json.dumps({"released_at": released_at.isoformat(),
                                                    "inbox": str(target)}, indent=2) + "\n")
        return target

    def _publish(self, base: Path, mode: int, document: IncomingDocument,
                 fill: Callable[[Path, str], None]) -> Path:
        day = base / local_date(document.received_at)
        final = day / item_name(_sender(document.summary), _code_text(document.summary),
                                document.axis_doc_id)
        if final.exists():
            return final
        fsutil.ensure_directory(day, mode)
        self._remove_stale_staging(day, final.name)
        staging = day / f".{final.name}.tmp-{secrets.token_hex(4)}"
        with self._active_lock:
            self._active_staging.add(staging)
        try:
            staging.mkdir(mode)
            staging.chmod(mode)
            try:
                fill(staging, final.name)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            if fsutil.publish_directory(staging, final):
                log.info("folder_item_delivered", to=str(final), journal_id=document.journal_id)
        finally:
            with self._active_lock:
                self._active_staging.discard(staging)
        return final

    @staticmethod
    def _remove_stale_staging(day: Path, name: str) -> None:
        """Leftovers of a crash mid-write. Recent ones may belong to a live writer: kept."""
        for leftover in day.glob(f".{glob_escape(name)}.tmp-*"):
            try:
                if time.time() - leftover.stat().st_mtime > STALE_STAGING_SECONDS:
                    shutil.rmtree(leftover, ignore_errors=True)
            except FileNotFoundError:
                continue

    def _fill_inbox_item(self, staging: Path, item: str, document: IncomingDocument,
                         quarantine_info: dict[str, Any] | None) -> None:
        fsutil.copy_file_durably(document.package_path, staging / PACKAGE_FILE)
        warnings: list[str] = []
        files = self._write_attachments(staging, document, warnings)
        self._write_metadata(staging, item, document, files, warnings,
                             quarantine_info=quarantine_info)

    def _write_attachments(self, staging: Path, document: IncomingDocument,
                           warnings: list[str]) -> list[AttachmentFile]:
        """Each part decoded into its file in pieces (a 150 MB scan is never held whole), then
        any ZIP-convention part unzipped beside it entry by entry."""
        try:
            package = read_package(document.package_path).package
        except ConnectorError as error:
            warnings.append(f"attachments not decoded: the package could not be read again "
                            f"({error.one_line()}); package.edxml is kept as received")
            return []
        if not isinstance(package, DocumentPackage):
            return []
        taken = set(RESERVED_NAMES)
        files: list[AttachmentFile] = []
        for attachment in package.attachments:
            convention_zip = is_zip_convention_part(attachment)
            # A ZIP-convention part is named like the file it wraps ("report.txt"); kept as
            # "report.txt.zip" so that its extracted content can take the real name.
            wanted = _safe_name(attachment.name) + (".zip" if convention_zip else "")
            file_name = _unique(wanted, taken)
            digest = hashlib.sha256()
            size = fsutil.write_file_durably(staging / file_name,
                                             _hashed(attachment.chunks(), digest))
            files.append(AttachmentFile(
                original_name=attachment.name, file=file_name,
                content_type=attachment.content_type, description=attachment.description,
                size=size, sha256=digest.hexdigest()))
            if convention_zip:
                written = Attachment(name=attachment.name, content_type=attachment.content_type,
                                     path=staging / file_name)
                files.extend(self._extract(staging, written, file_name, taken, files[-1],
                                           warnings))
        return files

    def _extract(self, staging: Path, attachment: Attachment, zip_file: str, taken: set[str],
                 zip_entry: AttachmentFile, warnings: list[str]) -> list[AttachmentFile]:
        """Unzip a ZIP-convention part beside it, or record why not (it is kept either way)."""
        package = staging / PACKAGE_FILE
        limits = dataclasses.replace(
            self.zip_limits or ZipLimits(),
            package_size=package.stat().st_size if package.exists() else None)
        extraction = extract_zip_part(attachment, limits, into=staging)
        if extraction.extracted and not extraction.problems:
            out = []
            for entry in extraction.entries:
                assert entry.path is not None
                file_name = _unique(_safe_name(entry.name), taken)
                entry.path.rename(staging / file_name)
                out.append(AttachmentFile(
                    original_name=entry.original_name, file=file_name,
                    content_type=entry.content_type, size=entry.size, sha256=entry.sha256,
                    extracted_from=zip_file))
            return out
        problems = [str(problem) for problem in extraction.problems]
        zip_entry.problem = "not extracted: " + "; ".join(problems)
        warnings.append(f"{zip_file}: kept as received, not extracted: {'; '.join(problems)}")
        return []

    def _write_metadata(self, staging: Path, item: str, document: IncomingDocument,
                        files: list[AttachmentFile],
                        warnings: list[str], *, quarantine_info: dict[str, Any] | None) -> None:
        summary = document.summary or {}
        listed = summary.get("business")
        business: dict[str, Any] = listed if isinstance(listed, dict) else {}
        signature = dict(document.signature or {})
        signature.setdefault("state", "unknown")
        metadata = InboxMetadata(
            journal_id=document.journal_id, axis_doc_id=document.axis_doc_id,
            received_at=document.received_at, delivered_at=self._now(),
            item=item, sender=_sender(summary),
            document_id=summary.get("document_id"), code=_code_text(summary),
            subject=summary.get("subject"), business_type=_business_name(business.get("type")),
            package_sha256=_sha256_file(staging / PACKAGE_FILE), document=summary,
            signature=SignatureOutcome.model_validate(signature),
            warnings=[*document.warnings, *warnings], links=dict(document.lifecycle or {}),
            attachments=files, quarantine=quarantine_info)
        fsutil.write_file_durably(staging / METADATA_FILE,
                                  (metadata.model_dump_json(indent=2) + "\n").encode("utf-8"))

    # -- statuses and lifecycle events -------------------------------------------------------
    def deliver_status(self, status: IncomingStatus) -> bool:
        try:
            label = StatusCode(status.code).label_en
        except ValueError:
            label = None
        line: dict[str, Any] = {
            "journal_id": status.journal_id, "axis_doc_id": status.axis_doc_id,
            "received_at": _iso(status.received_at), "from": status.from_organ_id,
            "document_id": status.document_id, "code": status.code, "label": label,
            "description": status.description, "timestamp": _iso(status.timestamp)}
        if status.refused:
            line.update(refused=True, refused_reason=status.refused)
        return self.statuses.append(line)

    def record_event(self, event: LifecycleEvent) -> bool:
        """Note the event on the original's metadata.json (if we know where it is), then append
        it to events.jsonl. Both steps skip what is already there."""
        if event.original_location:
            self._add_lifecycle(Path(event.original_location), event)
        return self.events.append({
            "journal_id": event.journal_id, "event": event.event, "document_id": event.document_id,
            "from": event.from_organ_id, "at": _iso(event.at),
            "original_location": event.original_location, "detail": event.detail})

    def _add_lifecycle(self, folder: Path, event: LifecycleEvent) -> None:
        inside = any(folder.resolve().is_relative_to(base.resolve())
                     for base in (self.layout.inbox, self.layout.quarantine))
        metadata_path = folder / METADATA_FILE
        if not inside or not metadata_path.exists():
            log.warning("lifecycle_original_missing", location=str(folder),
                        journal_id=event.journal_id,
                        detail="recorded in events.jsonl only")
            return
        with fsutil.locked(folder):
            current = json.loads(metadata_path.read_text(encoding="utf-8"))
            lifecycle = current.setdefault("lifecycle", [])
            if any(entry.get("journal_id") == event.journal_id for entry in lifecycle):
                return
            entry = LifecycleEntry(journal_id=event.journal_id, event=event.event,
                                   from_organ_id=event.from_organ_id, at=event.at,
                                   document_id=event.document_id, detail=event.detail)
            lifecycle.append(json.loads(entry.model_dump_json()))
            fsutil.atomic_write(metadata_path,
                                json.dumps(current, ensure_ascii=False, indent=2) + "\n")


# ------------------------------------------------------------------------------------ helpers

def _safe_name(name: str) -> str:
    return sanitize_filename(name)


def _unique(name: str, taken: set[str]) -> str:
    chosen = unique_name(name, taken)
    taken.add(chosen)
    return chosen


def _hashed(pieces: Iterator[bytes], digest: Any) -> Iterator[bytes]:
    """The pieces as they are, each added to ``digest`` on the way."""
    for piece in pieces:
        digest.update(piece)
        yield piece


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _business_name(code: object) -> str | None:
    """``new``, ``revoke``, ``update`` or ``replace`` (the metadata schema's words) for a
    BussinessDocType; None when the package carries none we know."""

    try:
        return BusinessType(int(code) if isinstance(code, int | str) else -1).name.lower()
    except ValueError:
        return None
