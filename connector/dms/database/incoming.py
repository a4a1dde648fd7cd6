"""What a received document, status or event looks like as a DMS row.

The incoming mappings name *fields* (``journal_id``, ``signature.state``, ``summary`` or any path
of the ``inspect --json`` summary such as ``from.organ_id``); this module builds the flat record
those paths are looked up in, and reads a package's attachments for the attachments table. Pure
apart from reading the package file the core stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.dms.base import IncomingDocument, IncomingStatus, LifecycleEvent
from connector.edxml.attachments import ZipLimits, extract_zip_part
from connector.edxml.model import Attachment
from connector.edxml.reader import read_package
from connector.errors import ConnectorError

_MISSING = object()


@dataclass
class IncomingPart:
    """One attachment row: a part as transported, or an entry extracted from a ZIP part. Its
    bytes (``attachment``: still in the package, or the unpacked entry's file) are read when its
    row is written, so one part at a time is in memory, not the whole package."""

    position: int
    name: str
    content_type: str
    attachment: Attachment
    description: str | None = None
    extracted_from: str | None = None

    def field(self, name: str) -> Any:
        if name == "content":
            return self.attachment.read_bytes()
        if name == "size":
            return self.attachment.size
        if name == "sha256":
            return self.attachment.sha256()
        return getattr(self, name)


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """Dotted lookup; a missing key or a non-mapping on the way gives None."""
    value: Any = record
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return None
    return value


def _iso_date(value: Any) -> Any:
    """The summary carries ISO date strings; a DATE column wants a date."""
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value
    return value


def document_record(document: IncomingDocument, *, quarantined: bool,
                    quarantine_reason: str | None) -> dict[str, Any]:
    """Summary fields at the top level, overlaid by what the core knows for certain."""
    record: dict[str, Any] = dict(document.summary)
    package_path = Path(document.package_path)
    record.update({
        "journal_id": document.journal_id,
        "axis_doc_id": document.axis_doc_id,
        "received_at": document.received_at,
        "package_path": str(package_path),
        "signature": document.signature,
        "warnings": list(document.warnings),
        "lifecycle": document.lifecycle,
        "summary": document.summary,
        "quarantined": quarantined,
        "quarantine_reason": quarantine_reason,
        "delivered_at": dt.datetime.now(dt.UTC),
    })
    return record


def document_row(record: Mapping[str, Any], columns: Mapping[str, str],
                 package_path: Path) -> dict[str, Any]:
    """column -> value for the documents table; the package bytes are read only when mapped."""
    row: dict[str, Any] = {}
    for field, column in columns.items():
        if field == "package_bytes":
            row[column] = _read_package(package_path)
        elif field == "package_sha256":
            row[column] = hashlib.sha256(_read_package(package_path)).hexdigest()
        else:
            value = lookup(record, field)
            row[column] = _iso_date(value) if field.endswith("date") else value
    return row


def _read_package(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConnectorError(f"cannot read the stored package: {error.strerror}", file=str(path),
                             hint="the journal's copy is missing; see `edxml-connector inbox "
                                  "redeliver`") from error


def status_record(status: IncomingStatus) -> dict[str, Any]:
    return {"journal_id": status.journal_id, "axis_doc_id": status.axis_doc_id,
            "received_at": status.received_at, "from_organ_id": status.from_organ_id,
            "document_id": status.document_id, "code": status.code,
            "description": status.description, "timestamp": status.timestamp,
            "summary": status.summary}


def event_record(event: LifecycleEvent) -> dict[str, Any]:
    return {"journal_id": event.journal_id, "event": event.event,
            "document_id": event.document_id, "from_organ_id": event.from_organ_id,
            "at": event.at, "original_location": event.original_location, "detail": event.detail}


PartsReader = Callable[[Path, Path], list[IncomingPart]]


def read_parts(package_path: Path, scratch: Path) -> list[IncomingPart]:
    """The package's attachments (as transported, then the safe extraction of any ZIP part under
    the ZIP convention), using the project's edXML reader. Nothing is read into memory here: a
    part is decoded from the package when its row is written, and ZIP entries are unpacked one
    by one into ``scratch`` (a folder the caller removes after the insert)."""
    package = read_package(Path(package_path), file=str(package_path)).package
    parts: list[IncomingPart] = []
    for attachment in getattr(package, "attachments", []) or []:
        parts.append(IncomingPart(position=len(parts), name=attachment.name,
                                  content_type=attachment.content_type, attachment=attachment,
                                  description=attachment.description))
    for attachment in getattr(package, "attachments", []) or []:
        extraction = extract_zip_part(attachment, ZipLimits(
            package_size=Path(package_path).stat().st_size), into=scratch)
        if not extraction.extracted:
            continue
        for entry in extraction.entries:
            parts.append(IncomingPart(
                position=len(parts), name=entry.original_name or entry.name,
                content_type=entry.content_type, extracted_from=attachment.name,
                attachment=Attachment(name=entry.name, content_type=entry.content_type,
                                      path=entry.path)))
    return parts
