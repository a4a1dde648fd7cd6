"""Incoming items: what the axis lists for us, from listed to delivered to the agency side.

The state only moves forward and every step may be repeated after a crash; an item is never
acknowledged to the axis before it is durably stored. Also quarantine, refusal, duplicates and
the lookups the inbound pipeline needs, through the :class:`~connector.journal.core.JournalCore`
it is given; the journal offers it as ``journal.incoming``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy import true as sa_true
from sqlalchemy.exc import IntegrityError

from connector.journal import schema as t
from connector.journal.core import JournalCore
from connector.journal.errors import InvalidTransition
from connector.journal.records import IncomingRecord, new_id, utcnow
from connector.journal.rows import _aware, _item_row, _states
from connector.journal.states import INCOMING_ORDER, EventOutcome, IncomingState, MessageType

ORIGINAL_BUSINESS_TYPES = (0, 3)
"""New documents and replacements; revoke (1) and update (2) reuse their original's DocumentId."""


class IncomingTransitions:
    """Reading and changing incoming items (``journal.incoming``)."""

    def __init__(self, core: JournalCore) -> None:
        self.core = core

    # -- incoming ------------------------------------------------------------------------------

    def _incoming_row(self, conn: Connection, item_id: str, *, lock: bool = False):
        return _item_row(conn, t.incoming, item_id, lock=lock, direction="incoming",
                         listed_by="`edxml-connector inbox list` lists received items and their ids")

    @staticmethod
    def _incoming_record(row) -> IncomingRecord:
        values = {key: row[key] for key in row.keys()}
        values["state"] = IncomingState(values["state"])
        values["meta"] = dict(values["meta"] or {})
        values["quarantined"] = bool(values["quarantined"])
        return IncomingRecord(**values)

    def get_incoming(self, item_id: str) -> IncomingRecord:
        with self.core.read() as conn:
            return self._incoming_record(self._incoming_row(conn, item_id))

    def find_incoming(self, key: str) -> IncomingRecord | None:
        """By journal id, axis DocId, or (latest) DocumentId."""
        i = t.incoming.c
        with self.core.read() as conn:
            for condition in (i.id == key, i.axis_doc_id == key):
                row = conn.execute(select(t.incoming).where(condition)).mappings().first()
                if row is not None:
                    return self._incoming_record(row)
            row = conn.execute(select(t.incoming).where(i.document_id == key)
                               .order_by(i.created_at.desc(), i.id.desc()).limit(1)).mappings().first()
            return None if row is None else self._incoming_record(row)

    def find_received(self, document_id: str, sender: str | None = None, *,
                      originals_only: bool = False,
                      exclude_id: str | None = None) -> IncomingRecord | None:
        """The first stored received *document* with ``document_id`` (from ``sender`` when
        given) of this journal's unit, duplicates left out: the original that a revoke, update,
        take-back or status is
        about. ``originals_only`` leaves out revokes and updates, which reuse their original's
        DocumentId (a row without a business type counts as an original). ``exclude_id`` leaves
        out the item being processed itself."""
        i = t.incoming.c
        query = select(t.incoming).where(
            i.messagetype == MessageType.EDOC.value, i.document_id == document_id,
            i.stored_at.is_not(None), i.duplicate_of.is_(None), self.core.of_unit(i.agency))
        if sender is not None:
            query = query.where(i.sender == sender)
        if exclude_id is not None:
            query = query.where(i.id != exclude_id)
        if originals_only:
            query = query.where(or_(i.business_type.is_(None),
                                    i.business_type.in_(ORIGINAL_BUSINESS_TYPES)))
        with self.core.read() as conn:
            row = conn.execute(query.order_by(i.created_at, i.id).limit(1)).mappings().first()
        return None if row is None else self._incoming_record(row)

    def list_incoming(self, state: IncomingState | str | Iterable[IncomingState | str] | None = None,
                      *, quarantined: bool | None = None, messagetype: str | None = None,
                      limit: int = 100, offset: int = 0,
                      agency: str | None = None) -> list[IncomingRecord]:
        """Newest first; ``agency`` keeps one unit's items."""
        i = t.incoming.c
        query = select(t.incoming)
        if agency is not None:
            query = query.where(i.agency == agency)
        states = _states(state)
        if states:
            query = query.where(i.state.in_(states))
        if quarantined is not None:
            query = query.where(i.quarantined == quarantined)
        if messagetype:
            query = query.where(i.messagetype == messagetype)
        with self.core.read() as conn:
            rows = conn.execute(query.order_by(i.created_at.desc(), i.id.desc())
                                .limit(limit).offset(offset)).mappings()
            return [self._incoming_record(row) for row in rows]

    def _listed_as(self, axis_doc_id: str):
        """The row of a DocId listed for this journal's unit (one DocId may reach two units)."""
        i = t.incoming.c
        return and_(i.axis_doc_id == axis_doc_id, i.agency == self.core.agency)

    def record_listed(self, axis_doc_id: str, messagetype: MessageType | str, *,
                      sender: str | None = None, meta: dict[str, Any] | None = None,
                      now: dt.datetime | None = None) -> IncomingRecord:
        """An item appeared in the axis's pending list. Idempotent on the axis DocId: an item
        already known is returned as it is (its state tells the pipeline what is left to do —
        e.g. ``acknowledged`` or later means "acknowledge again, deliver nothing")."""
        now = now or utcnow()
        kind = MessageType(messagetype).value
        try:
            with self.core.write() as conn:
                existing = conn.execute(select(t.incoming).where(
                    self._listed_as(axis_doc_id))).mappings().first()
                if existing is not None:
                    return self._incoming_record(existing)
                item_id = new_id()
                conn.execute(insert(t.incoming).values(
                    id=item_id, axis_doc_id=axis_doc_id, messagetype=kind,
                    state=IncomingState.LISTED.value, sender=sender, quarantined=False,
                    meta=meta or {}, created_at=now, updated_at=now, instance=self.core.instance,
                    agency=self.core.agency))
                self.core.event(conn, item_id, "incoming", "listed", EventOutcome.OK,
                            {"axis_doc_id": axis_doc_id, "messagetype": kind, "sender": sender}, now)
                return self._incoming_record(self._incoming_row(conn, item_id))
        except IntegrityError:
            with self.core.read() as conn:
                existing = conn.execute(select(t.incoming).where(
                    self._listed_as(axis_doc_id))).mappings().first()
                if existing is None:
                    raise
                return self._incoming_record(existing)

    def _advance(self, item_id: str, target: IncomingState | None, event: str,
                 outcome: EventOutcome, detail: dict[str, Any], values: dict[str, Any],
                 now: dt.datetime, *, once_column: str | None = None) -> IncomingRecord:
        """Apply an incoming transition. The state only moves forward; ``once_column`` names a
        timestamp column that, when already set, makes the whole call a no-op (replay)."""
        with self.core.write() as conn:
            row = self._incoming_row(conn, item_id, lock=True)
            if once_column is not None and row[once_column] is not None:
                return self._incoming_record(row)
            current = IncomingState(row["state"])
            if target is not None and INCOMING_ORDER[target] > INCOMING_ORDER[current]:
                values = {**values, "state": target.value}
            conn.execute(update(t.incoming).where(t.incoming.c.id == item_id)
                         .values(**values, updated_at=now))
            self.core.event(conn, item_id, "incoming", event, outcome, detail, now)
            return self._incoming_record(self._incoming_row(conn, item_id))

    def record_fetched(self, item_id: str, *, size: int | None = None,
                       now: dt.datetime | None = None) -> IncomingRecord:
        now = now or utcnow()
        with self.core.read() as conn:
            row = self._incoming_row(conn, item_id)
        if INCOMING_ORDER[IncomingState(row["state"])] >= INCOMING_ORDER[IncomingState.FETCHED]:
            return self._incoming_record(row)
        return self._advance(item_id, IncomingState.FETCHED, "fetched", EventOutcome.OK,
                             {"size": size}, {"package_size": size, "last_error": None}, now)

    def record_verified(self, item_id: str, *, signature_state: str,
                        detail: dict[str, Any] | None = None,
                        now: dt.datetime | None = None) -> IncomingRecord:
        """The package was parsed and its signature checked (``signature_state`` is one of
        valid/invalid/absent/unverifiable/untrusted; the inbox policy decides what follows)."""
        now = now or utcnow()
        with self.core.read() as conn:
            row = self._incoming_row(conn, item_id)
        if INCOMING_ORDER[IncomingState(row["state"])] >= INCOMING_ORDER[IncomingState.VERIFIED]:
            return self._incoming_record(row)
        return self._advance(item_id, IncomingState.VERIFIED, "verified", EventOutcome.OK,
                             {"signature_state": signature_state, **(detail or {})},
                             {"signature_state": signature_state}, now)

    def record_stored(self, item_id: str, *, package_path: str, sha256: str, size: int,
                      sender: str | None, document_id: str | None, business_type: int | None,
                      signature_state: str | None, meta: dict[str, Any] | None = None,
                      now: dt.datetime | None = None) -> IncomingRecord:
        """The package is durably stored (file and directory fsync'd by the caller): from now on
        the axis may be told ``done``. Recording it twice is a no-op."""
        now = now or utcnow()
        values: dict[str, Any] = {
            "package_path": str(package_path), "package_sha256": sha256, "package_size": size,
            "sender": sender, "document_id": document_id, "business_type": business_type,
            "signature_state": signature_state, "stored_at": now, "last_error": None,
            "instance": self.core.instance}  # the package is in this server's store
        if meta:
            values["meta"] = meta
        return self._advance(item_id, IncomingState.STORED, "stored", EventOutcome.OK,
                             {"package_path": str(package_path), "sha256": sha256, "size": size,
                              "sender": sender, "document_id": document_id,
                              "business_type": business_type, "signature_state": signature_state},
                             values, now, once_column="stored_at")

    def record_acknowledged(self, item_id: str, *, now: dt.datetime | None = None) -> IncomingRecord:
        """The axis was told ``done``. Refused before the item is stored (nothing may be
        acknowledged that could still be lost) unless it is a duplicate."""
        now = now or utcnow()
        with self.core.read() as conn:
            row = self._incoming_row(conn, item_id)
        if row["stored_at"] is None and row["duplicate_of"] is None:
            raise InvalidTransition(f"incoming item {item_id} is not stored yet; it cannot be acknowledged",
                                    hint="store it durably first; unacknowledged items come back next poll")
        return self._advance(item_id, IncomingState.ACKNOWLEDGED, "acknowledged", EventOutcome.OK,
                             {}, {"acknowledged_at": now}, now, once_column="acknowledged_at")

    def record_delivered(self, item_id: str, location: str, *,
                         now: dt.datetime | None = None) -> IncomingRecord:
        """Handed to the agency side at ``location`` (inbox folder or table row). On a
        quarantined item this is the operator's release."""
        now = now or utcnow()
        with self.core.read() as conn:
            row = self._incoming_row(conn, item_id)
        if row["delivered_at"] is not None:
            return self._incoming_record(row)
        if row["stored_at"] is None:
            raise InvalidTransition(f"incoming item {item_id} is not stored yet; it cannot be delivered")
        released = bool(row["quarantined"])
        return self._advance(item_id, IncomingState.DELIVERED, "released" if released else "delivered",
                             EventOutcome.OK, {"location": str(location)},
                             {"delivered_location": str(location), "delivered_at": now,
                              "quarantined": False}, now, once_column="delivered_at")

    def record_quarantined(self, item_id: str, reason: str, location: str, *,
                           now: dt.datetime | None = None) -> IncomingRecord:
        now = now or utcnow()
        with self.core.read() as conn:
            row = self._incoming_row(conn, item_id)
        if row["quarantined"] or row["delivered_at"] is not None:
            return self._incoming_record(row)
        return self._advance(item_id, IncomingState.QUARANTINED, "quarantined", EventOutcome.ERROR,
                             {"reason": reason, "location": str(location)},
                             {"quarantined": True, "quarantine_reason": reason,
                              "quarantine_location": str(location)}, now)

    def record_refused(self, item_id: str, reason: str, *,
                       now: dt.datetime | None = None) -> IncomingRecord:
        """An operator refused a quarantined item (the pipeline sends status 02 with ``reason``)."""
        now = now or utcnow()
        with self.core.read() as conn:
            row = self._incoming_row(conn, item_id)
        if row["state"] == IncomingState.REFUSED.value:
            return self._incoming_record(row)
        if row["delivered_at"] is not None:
            raise InvalidTransition(f"incoming item {item_id} was already delivered",
                                    hint="answer it with status 02 through `status-send` instead")
        return self._advance(item_id, IncomingState.REFUSED, "refused", EventOutcome.INFO,
                             {"reason": reason}, {"quarantined": False, "last_error": reason}, now)

    def record_duplicate(self, item_id: str, original_id: str, *,
                         now: dt.datetime | None = None) -> IncomingRecord:
        """A redelivery of ``original_id`` (found by ``find_duplicate``): it is acknowledged but
        never delivered a second time."""
        now = now or utcnow()
        with self.core.read() as conn:
            row = self._incoming_row(conn, item_id)
        if row["duplicate_of"] is not None:
            return self._incoming_record(row)
        return self._advance(item_id, IncomingState.DUPLICATE, "duplicate", EventOutcome.INFO,
                             {"original_id": original_id}, {"duplicate_of": original_id}, now)

    def record_incoming_failed(self, item_id: str, error: str, *, step: str,
                               now: dt.datetime | None = None) -> IncomingRecord:
        """A step (fetch, verify, store, acknowledge, deliver) failed; the state stays where it
        was so that the step is tried again (an unstored item is not acknowledged and the axis
        lists it again next poll)."""
        now = now or utcnow()
        return self._advance(item_id, None, f"{step}_failed", EventOutcome.ERROR,
                             {"error": error, "step": step}, {"last_error": error}, now)

    def find_duplicate(self, sender: str | None, document_id: str | None, business_type: int | None,
                       sha256: str, *, window: dt.timedelta, now: dt.datetime | None = None,
                       exclude_id: str | None = None) -> IncomingRecord | None:
        """The earliest stored incoming item with the same sender, DocumentId, business type and
        package SHA-256 within ``window``. A revoke/update/replace reuses the original's
        DocumentId with another business type, so it is never taken for a duplicate."""
        now = now or utcnow()
        i = t.incoming.c
        query = select(t.incoming).where(
            i.package_sha256 == sha256, i.stored_at.is_not(None), i.stored_at >= now - window,
            i.duplicate_of.is_(None), self.core.of_unit(i.agency),  # two units may get one package
            i.sender.is_(None) if sender is None else i.sender == sender,
            i.document_id.is_(None) if document_id is None else i.document_id == document_id,
            i.business_type.is_(None) if business_type is None else i.business_type == business_type)
        if exclude_id is not None:
            query = query.where(i.id != exclude_id)
        with self.core.read() as conn:
            row = conn.execute(query.order_by(i.stored_at, i.id).limit(1)).mappings().first()
        return None if row is None else self._incoming_record(row)

    def last_received_by_agency(self) -> dict[str, dt.datetime]:
        """When each unit last had something listed for it (a hub's polling starts with the
        units that were active before a restart polled often)."""
        i = t.incoming.c
        with self.core.read() as conn:
            return {agency: _aware(moment) for agency, moment in conn.execute(
                select(i.agency, func.max(i.created_at)).group_by(i.agency)) if moment}

    def pending_incoming(self, *, every_unit: bool = False) -> list[IncomingRecord]:
        """Stored items whose later steps did not all happen (crash recovery): not yet
        acknowledged, or acknowledged but neither delivered, quarantined, refused nor a duplicate.
        Only this instance's items: their packages are in this server's package store; only
        this unit's, unless ``every_unit`` (the hub's oldest-pending metric)."""
        i = t.incoming.c
        unfinished = or_(
            i.acknowledged_at.is_(None),
            and_(i.delivered_at.is_(None), i.quarantined.is_(False), i.duplicate_of.is_(None),
                 i.state != IncomingState.REFUSED.value))
        query = select(t.incoming).where(
            or_(i.stored_at.is_not(None), i.duplicate_of.is_not(None)), unfinished,
            self.core.mine(i.instance), sa_true() if every_unit else self.core.of_unit(i.agency)
        ).order_by(i.created_at, i.id)
        with self.core.read() as conn:
            return [self._incoming_record(row) for row in conn.execute(query).mappings()]
