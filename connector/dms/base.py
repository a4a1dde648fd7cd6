"""What the core asks of an agency-side adapter (a folder tree or the DMS database).

The core never knows where a document came from or goes to: it talks to an ``AgencySide``. The
adapter hands over outgoing items it has *claimed* (so that no other process takes them), is told
the result of each (sent, failed, a status arrived), and takes delivery of incoming documents,
statuses and lifecycle events. Every method may be called again after a crash with the same
arguments and must then do nothing more (idempotent), because the journal — not the adapter — is
the record of what happened.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from connector.errors import ConnectorError
from connector.schemas.document import DocumentMetadata


class OutgoingKind(str, enum.Enum):
    DOCUMENT = "document"  # metadata + attachment files: the connector builds and signs the package
    PACKAGE = "package"    # a ready .edxml package: sent as it is (signed when unsigned)
    STATUS = "status"      # a status to send (a drop file or a status-table row)


@dataclass
class StatusRequest:
    """A status the DMS wants sent about a document (``outbox/statuses/NAME.yaml`` or a row).

    ``document_id`` names the document; ``to`` the organisations to tell (one package each).
    When ``to`` is empty the core fills it: for a received document, its sender.
    """

    code: str
    document_id: str
    to: list[str] = field(default_factory=list)
    description: str | None = None
    staff: dict[str, str | None] = field(default_factory=dict)
    code_text: str | None = None           # ResponseFor/Code of the original, when known
    promulgation_date: dt.date | None = None

    def to_json(self) -> dict[str, Any]:
        """The request as the journal keeps it in an item's ``meta`` (JSON types only)."""
        return {"code": self.code, "document_id": self.document_id, "to": list(self.to),
                "description": self.description, "staff": dict(self.staff or {}),
                "code_text": self.code_text,
                "promulgation_date": self.promulgation_date.isoformat()
                if self.promulgation_date else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatusRequest:
        """The request back from :meth:`to_json`'s form."""
        date = data.get("promulgation_date")
        return cls(code=data["code"], document_id=data["document_id"],
                   to=list(data.get("to") or []), description=data.get("description"),
                   staff=dict(data.get("staff") or {}), code_text=data.get("code_text"),
                   promulgation_date=dt.date.fromisoformat(date) if date else None)


@dataclass
class OutgoingItem:
    """One claimed item. ``source_ref`` is stable across restarts (folder: the item's name;
    database: the row id) so the journal can recognise an item it already knows."""

    source: str                    # "folder" or "database"
    source_ref: str
    kind: OutgoingKind
    metadata: DocumentMetadata | None = None      # DOCUMENT
    attachment_files: list[Path] = field(default_factory=list)  # DOCUMENT, in metadata order
    attachment_blobs: list[tuple[str, bytes]] = field(default_factory=list)  # DOCUMENT from BLOBs
    package_path: Path | None = None              # PACKAGE
    status: StatusRequest | None = None           # STATUS
    claimed_at: dt.datetime | None = None
    display_name: str | None = None               # what the DMS calls it (folder: NAME)
    problem: ConnectorError | None = None
    # Claimed but unusable (invalid document.yaml, missing attachment, bad row): the core records
    # it in the journal and calls mark_failed with this reason, so nothing is lost or retried blindly.


@dataclass
class Receipt:
    """What the DMS is told about an outgoing item; kept up to date as statuses arrive
    (``sent/NAME.receipt.json`` or the write-back columns)."""

    journal_id: str
    document_id: str | None
    state: str                                   # journal state of the item
    axis_doc_id: str | None = None
    sent_at: dt.datetime | None = None
    recipients: dict[str, dict[str, Any]] = field(default_factory=dict)
    # organ_id -> {"status": "03", "label": "accepted", "description": ..., "at": iso time}
    warnings: list[str] = field(default_factory=list)  # e.g. an old recipient code mapped


@dataclass
class Failure:
    """Why an outgoing item could not be sent (``failed/NAME.error.txt`` or the error column)."""

    journal_id: str | None
    reason: str
    attempts: int
    failed_at: dt.datetime
    retry_command: str | None = None


@dataclass
class IncomingDocument:
    """A received document, already stored durably by the core and acknowledged to the axis."""

    journal_id: str
    axis_doc_id: str
    received_at: dt.datetime
    package_path: Path                     # the package exactly as received (core's copy)
    summary: dict[str, Any]                # the ``inspect --json`` view of the package
    signature: dict[str, Any]              # {"state": ..., "reason": ..., "signer": ...}
    warnings: list[str] = field(default_factory=list)
    lifecycle: dict[str, Any] = field(default_factory=dict)  # links to the original, if any


@dataclass
class IncomingStatus:
    journal_id: str
    axis_doc_id: str
    received_at: dt.datetime
    from_organ_id: str
    document_id: str | None
    code: str
    description: str | None
    timestamp: dt.datetime | None
    summary: dict[str, Any] = field(default_factory=dict)
    refused: str | None = None
    """Why the status was refused (its sender had no right to send it), or None."""


@dataclass
class LifecycleEvent:
    """Something a sender asked of a document we received: revoke, update, replace, take-back."""

    journal_id: str
    event: str                       # "revoked", "updated", "replaced", "take_back_requested"
    document_id: str | None          # the original's DocumentId
    from_organ_id: str
    at: dt.datetime
    original_location: str | None    # where the original was delivered, if we have it
    detail: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class AgencySide(Protocol):
    """The adapter contract. Names describe the DMS's point of view of the exchange."""

    name: str

    # -- outgoing ---------------------------------------------------------------------------
    def claim_ready(self, limit: int | None = None) -> list[OutgoingItem]:
        """Claim items ready to send (atomically, so no other process takes them) and return
        them, including items this adapter claimed before a crash and has not finished."""

    def mark_sent(self, item: OutgoingItem, receipt: Receipt) -> None:
        """The axis accepted the item: show it as sent, with its receipt."""

    def update_receipt(self, item: OutgoingItem, receipt: Receipt) -> None:
        """A recipient's status changed: refresh what the DMS sees."""

    def mark_failed(self, item: OutgoingItem, failure: Failure) -> None:
        """The item cannot be sent: move it aside with its reason."""

    def unclaim(self, item: OutgoingItem) -> None:
        """Give a claimed item back (e.g. ``retry`` of a failed item puts it back in the queue)."""

    # -- incoming ---------------------------------------------------------------------------
    def deliver_document(self, document: IncomingDocument) -> str:
        """Hand a received document to the DMS; return where it went (path or row id)."""

    def quarantine_document(self, document: IncomingDocument, reason: str) -> str:
        """Keep a document refused by the signature policy apart, with its reason."""

    def deliver_status(self, status: IncomingStatus) -> None:
        """Record a received status."""

    def record_event(self, event: LifecycleEvent) -> None:
        """Record a lifecycle request on a received document. Never deletes anything."""
