"""``inbox list|redeliver`` and ``quarantine list|release|refuse``: received documents.

Everything here starts from the journal and the connector's own stored copy of each received
package (the package store), never from the agency side's folders or tables — those belong to
the DMS, which may have moved or deleted what it was given. That is what makes ``inbox
redeliver`` possible: the inbox folder (or table row) is rebuilt from the stored package, and
delivering is idempotent, so redelivering a document that is still there changes nothing.

A quarantined document is released (delivered, with a note in its ``metadata.json`` that it had
been held and why) or refused: status 02 with the operator's reason is queued to its sender
through the journal, and the item is marked ``refused``. Nothing is ever deleted.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connector import fsutil
from connector.dms.base import IncomingDocument
from connector.edxml.reader import read_package
from connector.edxml.summary import summarize
from connector.errors import ConnectorError, EdxmlError, InputError
from connector.journal import IncomingRecord, IncomingState, MessageType
from connector.ops.bulk import BULK_LIMIT, BulkResult, apply_to_each
from connector.ops.context import DATABASE_LOCATION_PREFIX, OpsContext
from connector.ops.enqueue import enqueue_status

REFUSED_FILE = "refused.json"
REFUSE_CODE = "02"


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _folder_metadata(location: str | None) -> dict[str, Any]:
    """``metadata.json`` of an inbox/quarantine folder, or {} (database location, gone, bad)."""
    if not location or location.startswith(DATABASE_LOCATION_PREFIX):
        return {}
    try:
        value = json.loads((Path(location) / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def describe_incoming(record: IncomingRecord) -> dict[str, Any]:
    """One row of ``inbox list`` / ``quarantine list`` (the ``--json`` shape)."""
    location = record.delivered_location or record.quarantine_location
    on_disk = _folder_metadata(location)
    meta = record.meta
    listed_summary = meta.get("summary")
    summary: dict[str, Any] = listed_summary if isinstance(listed_summary, dict) else {}
    lifecycle = on_disk.get("lifecycle") or meta.get("lifecycle") or []
    present = None
    if location and not location.startswith(DATABASE_LOCATION_PREFIX):
        present = Path(location).is_dir()
    return {
        "id": record.id, "axis_doc_id": record.axis_doc_id, "agency": record.agency,
        "received_at": _iso(record.stored_at or record.created_at),
        "sender": record.sender, "document_id": record.document_id,
        "subject": on_disk.get("subject") or meta.get("subject") or summary.get("subject"),
        "code": on_disk.get("code") or meta.get("code"),
        "business_type": record.business_type,
        "signature": record.signature_state, "state": record.state.value,
        "delivered_location": record.delivered_location, "delivered_at": _iso(record.delivered_at),
        "location_present": present,
        "quarantined": record.quarantined, "quarantine_reason": record.quarantine_reason,
        "quarantine_location": record.quarantine_location,
        "duplicate_of": record.duplicate_of,
        "lifecycle": [{"event": entry.get("event"), "from": entry.get("from_organ_id") or entry.get("from"),
                       "at": entry.get("at")} for entry in lifecycle if isinstance(entry, dict)],
        "last_error": record.last_error}


def inbox_list(ctx: OpsContext, *, limit: int = 100,
               agency: str | None = None) -> list[dict[str, Any]]:
    """Received documents (not statuses), newest first (one unit's when ``agency``)."""
    records = ctx.journal.incoming.list_incoming(messagetype=MessageType.EDOC.value, limit=limit,
                                                 agency=agency)
    return [describe_incoming(record) for record in records]


def quarantine_list(ctx: OpsContext, *, limit: int = 100,
                    agency: str | None = None) -> list[dict[str, Any]]:
    """Documents held by the signature policy and waiting for an operator, newest first."""
    return [describe_incoming(record)
            for record in ctx.journal.incoming.list_incoming(quarantined=True, limit=limit,
                                                             agency=agency)]


# --------------------------------------------------------------------------- rebuilding

def document_from_journal(record: IncomingRecord, *, note: str | None = None) -> IncomingDocument:
    """The :class:`IncomingDocument` the daemon delivered, rebuilt from the journal row and the
    stored package (its header is read again; the signature outcome is the one recorded)."""

    if not record.package_path:
        raise ConnectorError(f"received item {record.id} has no stored package",
                             hint="it was never stored; the axis lists it again until it is")
    path = Path(record.package_path)
    if not path.is_file():
        raise ConnectorError("the stored copy of the received package is missing", file=str(path),
                             hint="restore the package store (state_dir/packages) from backup")
    meta = record.meta
    try:
        summary = summarize(read_package(path))
    except EdxmlError as error:  # an unreadable package (quarantined for that): deliver it as is
        summary = {"kind": record.messagetype, "from": {"organ_id": record.sender},
                   "document_id": record.document_id}
        note = "; ".join(part for part in (note, f"the package cannot be read: {error.one_line()}") if part)
    signature: dict[str, Any] = {"state": record.signature_state or "unknown"}
    if isinstance(meta.get("signature"), dict):
        signature.update(meta["signature"])
    listed = meta.get("warnings")
    warnings = [str(w) for w in listed if w] if isinstance(listed, list) else []
    if note:
        warnings.append(note)
    listed_links = meta.get("links")
    links: dict[str, Any] = listed_links if isinstance(listed_links, dict) else {}
    received_at = record.stored_at or record.created_at
    if isinstance(meta.get("received_at"), str):
        try:
            received_at = dt.datetime.fromisoformat(meta["received_at"])
        except ValueError:
            pass
    return IncomingDocument(journal_id=record.id, axis_doc_id=record.axis_doc_id,
                            received_at=received_at, package_path=path, summary=summary,
                            signature=signature, warnings=warnings, lifecycle=links)


def _require_document(record: IncomingRecord) -> None:
    if record.messagetype != MessageType.EDOC.value:
        raise InputError(f"received item {record.id} is a status, not a document",
                         hint="statuses are recorded in inbox/statuses.jsonl and shown by `status`")


def redeliver(ctx: OpsContext, key: str, *, now: dt.datetime | None = None) -> str:
    """Deliver a received document again from the stored package (e.g. after the DMS lost its
    inbox folder). Returns where it is now. A document still there is left as it is."""
    record = ctx.incoming(key)
    _require_document(record)
    if record.duplicate_of:
        raise InputError(f"received item {record.id} is a duplicate of {record.duplicate_of}",
                         hint="redeliver the original: edxml-connector inbox redeliver "
                              f"{record.duplicate_of}")
    if record.quarantined:
        raise InputError(f"received item {record.id} is in quarantine",
                         hint=f"release it instead: edxml-connector quarantine release {record.id}")
    if record.state is IncomingState.REFUSED:
        raise InputError(f"received item {record.id} was refused by an operator",
                         hint="a refused document is not delivered")
    if not record.is_stored:
        raise InputError(f"received item {record.id} is not stored yet ({record.state.value})",
                         hint="the daemon delivers it once it is stored")
    side = ctx.for_unit(record.agency).delivery_side(record.delivered_location)
    moment = now or dt.datetime.now(dt.timezone.utc)
    document = document_from_journal(
        record, note=f"delivered again by an operator (inbox redeliver) at {_iso(moment)}")
    location = side.deliver_document(document)
    if record.delivered_at is None:
        ctx.journal.incoming.record_delivered(record.id, location, now=moment)
    else:
        ctx.journal.record_event(record.id, "incoming", "redelivered",
                                 detail={"actor": "operator", "location": location,
                                         "previous_location": record.delivered_location},
                                 now=moment)
    return location


# --------------------------------------------------------------------------- quarantine

def _quarantined(ctx: OpsContext, key: str) -> IncomingRecord:
    record = ctx.incoming(key)
    if record.quarantined:
        return record
    if record.state is IncomingState.REFUSED:
        raise InputError(f"received item {record.id} was already refused",
                         hint="nothing to do; its status 02 is in the outgoing queue")
    if record.delivered_at is not None:
        raise InputError(f"received item {record.id} is not in quarantine (delivered to "
                         f"{record.delivered_location})", hint="`edxml-connector quarantine list`")
    raise InputError(f"received item {record.id} is not in quarantine ({record.state.value})",
                     hint="`edxml-connector quarantine list` shows the items waiting for a decision")


def release(ctx: OpsContext, key: str, *, now: dt.datetime | None = None) -> str:
    """Deliver a quarantined document; returns its inbox location. When the quarantine copy is
    gone, the document is rebuilt from the stored package instead."""
    record = _quarantined(ctx, key)
    moment = now or dt.datetime.now(dt.timezone.utc)
    where = record.quarantine_location
    side = ctx.for_unit(record.agency).delivery_side(where)
    held = where and (where.startswith(DATABASE_LOCATION_PREFIX) or Path(where).is_dir())
    if held:
        location = side.release_quarantined(where)
    else:
        location = side.deliver_document(document_from_journal(
            record, note=f"released from quarantine by an operator at {_iso(moment)}; it had been "
                         f"held because: {record.quarantine_reason or 'unknown'}"))
    ctx.journal.incoming.record_delivered(record.id, location, now=moment)
    return location


def release_all(ctx: OpsContext, *, progress: Callable[[int], None] | None = None,
                total: Callable[[int], None] | None = None,
                agency: str | None = None) -> BulkResult:
    """``quarantine release --all``, oldest first (see :mod:`connector.ops.bulk`)."""
    records = ctx.journal.incoming.list_incoming(quarantined=True, limit=BULK_LIMIT, agency=agency)
    oldest_first = [record.id for record in reversed(records)]
    return apply_to_each(oldest_first, lambda item_id: release(ctx, item_id),
                         total=total, progress=progress)


def refuse(ctx: OpsContext, key: str, reason: str, *, now: dt.datetime | None = None):
    """Queue status 02 with ``reason`` to the sender, then mark the item refused. Returns the
    outgoing status item. Safe to repeat: the status is queued once per received item."""

    reason = (reason or "").strip()
    if not reason:
        raise InputError("--reason is empty", hint="say why, e.g. --reason 'chữ ký số không hợp lệ'")
    record = _quarantined(ctx, key)
    _require_document(record)
    if not record.sender or not record.document_id:
        raise InputError(f"received item {record.id} has no readable sender or DocumentId, so no "
                         "status can answer it", hint="tell the sender by other means; "
                         "the item stays in quarantine")
    moment = now or dt.datetime.now(dt.timezone.utc)
    status_item = enqueue_status(ctx.for_unit(record.agency), code=REFUSE_CODE,
                                 document_id=record.document_id,
                                 to=[record.sender], description=reason,
                                 source_ref=f"refuse:{record.id}",
                                 display=f"refusal (02) of {record.id} to {record.sender}",
                                 extra_meta={"incoming_id": record.id, "reason": "quarantine refused"})
    ctx.journal.incoming.record_refused(record.id, reason, now=moment)
    _mark_refused_folder(record, reason, status_item.id, moment)
    return status_item


def _mark_refused_folder(record: IncomingRecord, reason: str, status_id: str,
                         moment: dt.datetime) -> None:
    """Leave ``refused.json`` in the quarantine folder, so the folder explains itself."""
    where = record.quarantine_location
    if not where or where.startswith(DATABASE_LOCATION_PREFIX) or not Path(where).is_dir():
        return
    marker = Path(where) / REFUSED_FILE
    if marker.exists():
        return
    fsutil.atomic_write(marker, json.dumps({"refused_at": _iso(moment), "reason": reason,
                                            "status": REFUSE_CODE, "status_item": status_id},
                                           ensure_ascii=False, indent=2) + "\n")
