"""Outgoing statuses: the one way a status is put in the queue and told whom it goes to.

A status is decided on in three places — by the connector itself (01 when a document arrives,
02 when an operator refuses one from quarantine), by the operator (``status-send``, ``inbox
refuse``) and by the DMS (a status drop file or row, through the outbound intake) — and all three
queue it here, as one journal item whose ``meta["status"]`` is the request; the package builder
(``outbound_build``) turns it into one package per addressee when the item is sent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from connector.dms.base import OutgoingKind, StatusRequest
from connector.edxml.model import StatusCode
from connector.journal import Journal, OutgoingRecord
from connector.schemas.document import DocumentMetadata


def enqueue_status(journal: Journal, request: StatusRequest, *, source: str, source_ref: str,
                   display_name: str, meta: dict[str, Any] | None = None) -> OutgoingRecord:
    """Queue ``request`` as one item; ``(source, source_ref)`` makes it idempotent (the same
    pair finds the item already queued)."""
    return journal.outgoing.enqueue(
        source, source_ref, OutgoingKind.STATUS, document_id=request.document_id,
        recipients=list(request.to),
        meta={"status": request.to_json(), "display_name": display_name, **(meta or {})})


def take_back_request(metadata: DocumentMetadata) -> StatusRequest:
    """A ``document.yaml`` with ``take_back``: status 13 to each receiver it names."""
    take_back = metadata.take_back
    if take_back is None:
        raise ValueError("the metadata asks for no take-back")
    staff = metadata.business.staff.model_dump() if metadata.business.staff else {}
    return StatusRequest(code=StatusCode.TAKE_BACK_REQUESTED.value, document_id=take_back.document_id,
                         to=list(take_back.to), description=take_back.reason, staff=staff,
                         code_text=take_back.code, promulgation_date=take_back.promulgation_date)


def default_addressees(journal: Journal, code: StatusCode, document_id: str) -> list[str]:
    """Whom a status goes to when it names no one: a receiver's status (01–06, 15, 16) answers
    the sender of the received document; a take-back (13) goes to every recipient of the
    document we sent. Empty when the journal does not know the document."""
    if code.sent_by_original_sender:
        sent = journal.outgoing.find_outgoing(document_id)
        return list(sent.recipients) if sent is not None and sent.recipients else []
    received = journal.incoming.find_received(document_id, originals_only=True)
    return [received.sender] if received is not None and received.sender else []


def original_details(journal: Journal, document_id: str) -> tuple[str | None, dt.date | None]:
    """The code (``number/notation``) and promulgation date of the received document a status
    is about, when the inbound pipeline kept them in its item's meta."""
    received = journal.incoming.find_received(document_id, originals_only=True)
    if received is None:
        return None, None
    code = received.meta.get("code")
    date_text = received.meta.get("promulgation_date")
    try:
        date = dt.date.fromisoformat(date_text) if isinstance(date_text, str) else None
    except ValueError:
        date = None
    return (str(code) if code else None), date
