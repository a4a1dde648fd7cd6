"""Statuses recipients send back about our outgoing documents (received, assigned, done, …).

Statuses arrive out of order and may be redelivered; this module keeps every one in the history
and moves a recipient's current status only forward in time. :class:`RecipientStatuses` works
through the :class:`~connector.journal.core.JournalCore` and the
:class:`~connector.journal.outgoing.OutgoingTransitions` it is given.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from connector.journal import schema as t
from connector.journal.core import JournalCore
from connector.journal.outgoing import OutgoingTransitions
from connector.journal.records import OutgoingRecord, StatusRecord, utcnow
from connector.journal.states import EventOutcome, OutgoingKind


class RecipientStatuses:
    """Recording and reading recipient statuses (``journal.recipients``); reads the outgoing
    items they are about through the outgoing part it is given."""

    def __init__(self, core: JournalCore, outgoing: OutgoingTransitions) -> None:
        self.core = core
        self.outgoing = outgoing

    def record_recipient_status(self, document_id: str, organ_id: str, code: str, *,
                                description: str | None = None, at: dt.datetime | None = None,
                                to_organ_id: str | None = None, incoming_id: str | None = None,
                                now: dt.datetime | None = None) -> OutgoingRecord | None:
        """A status ``code`` arrived from ``organ_id`` about ``document_id``.

        One history row per status. A status is the same status again — a redelivery after a
        crash between recording it and acknowledging it to the axis — when it has the same
        ``incoming_id`` (the journal id of the status package), or, without one, the same
        (DocumentId, sender, code, timestamp ``at``); it is then not recorded a second time and
        the call returns the item as it is. Without ``incoming_id`` and ``at`` a status has no
        identity and is always recorded.

        The latest outgoing item with that DocumentId sent to ``organ_id`` has its delivery
        row for ``organ_id`` set to this status unless
        the status already there has a later timestamp: statuses arrive out of order, and an
        older 01 arriving after 03 must not make 03 look undone (history keeps both).
        Returns that item, or None when no outgoing item was sent to ``organ_id`` (the
        status is kept in the history, unmatched, and changes no delivery: the inbound
        pipeline refuses a status about a document we sent to others, see :meth:`sent_to`).
        """
        now = now or utcnow()
        identified_by_time = at is not None
        at = at or now
        c, s = t.outgoing.c, t.statuses.c
        try:
            with self.core.write() as conn:
                if incoming_id is not None:
                    seen = select(s.outgoing_id).where(s.incoming_id == incoming_id)
                elif identified_by_time:
                    seen = select(s.outgoing_id).where(
                        s.document_id == document_id, s.from_organ_id == organ_id,
                        s.code == code, s.status_at == at)
                else:
                    seen = None
                if seen is not None:
                    known = conn.execute(seen.limit(1)).first()
                    if known is not None:
                        return self._record_or_none(conn, known[0])
                base = select(c.id).where(c.document_id == document_id,
                                          c.kind != OutgoingKind.STATUS.value)
                order = (c.created_at.desc(), c.id.desc())
                item_id = conn.execute(base.where(c.id.in_(
                    select(t.deliveries.c.outgoing_id).where(t.deliveries.c.organ_id == organ_id)))
                    .order_by(*order).limit(1)).scalar()
                conn.execute(insert(t.statuses).values(
                    outgoing_id=item_id, incoming_id=incoming_id, document_id=document_id,
                    from_organ_id=organ_id, to_organ_id=to_organ_id, code=code,
                    description=description, status_at=at, recorded_at=now))
                if item_id is None:
                    self.core.event(conn, incoming_id, "incoming", "status_unmatched", EventOutcome.INFO,
                                {"document_id": document_id, "from": organ_id, "code": code}, now)
                    return None
                latest = self._apply_delivery_status(conn, item_id, organ_id, code,
                                                     description, at, now)
                self.core.event(conn, item_id, "outgoing", "recipient_status",
                            EventOutcome.ERROR if code == "02" else EventOutcome.OK,
                            {"organ_id": organ_id, "code": code, "description": description,
                             "at": at.isoformat(), "latest": latest, "incoming_id": incoming_id},
                            now)
                return self.outgoing.outgoing_record(conn, self.outgoing.outgoing_row(conn, item_id))
        except IntegrityError:
            # The same status package recorded concurrently (unique incoming_id): theirs stands.
            with self.core.read() as conn:
                known = conn.execute(select(s.outgoing_id).where(
                    s.incoming_id == incoming_id).limit(1)).first()
                if known is None:
                    raise
                return self._record_or_none(conn, known[0])

    def sent_to(self, document_id: str, organ_id: str) -> bool | None:
        """Whether a document we sent with ``document_id`` went to ``organ_id``: True, False
        (we sent it, to others only), or None (we never sent a document with that id)."""
        c, d = t.outgoing.c, t.deliveries.c
        documents = select(c.id).where(c.document_id == document_id,
                                       c.kind != OutgoingKind.STATUS.value)
        with self.core.read() as conn:
            if conn.execute(documents.limit(1)).first() is None:
                return None
            return conn.execute(select(d.outgoing_id).where(
                d.organ_id == organ_id, d.outgoing_id.in_(documents)).limit(1)).first() is not None

    def _record_or_none(self, conn: Connection, item_id: str | None) -> OutgoingRecord | None:
        if item_id is None:
            return None
        row = conn.execute(select(t.outgoing).where(t.outgoing.c.id == item_id)).mappings().first()
        return None if row is None else self.outgoing.outgoing_record(conn, row)

    @staticmethod
    def _apply_delivery_status(conn: Connection, item_id: str, organ_id: str, code: str,
                               description: str | None, at: dt.datetime, now: dt.datetime) -> bool:
        """Set the recipient's current status unless a later one is there; True when set."""
        d = t.deliveries.c
        current = conn.execute(select(t.deliveries).where(
            d.outgoing_id == item_id, d.organ_id == organ_id)).mappings().first()
        if current is None:
            conn.execute(insert(t.deliveries).values(
                outgoing_id=item_id, organ_id=organ_id, status_code=code,
                description=description, status_at=at, updated_at=now))
            return True
        if current["status_at"] is not None and current["status_at"] > at:
            return False
        conn.execute(update(t.deliveries).where(
            d.outgoing_id == item_id, d.organ_id == organ_id).values(
            status_code=code, description=description, status_at=at, updated_at=now))
        return True

    def statuses(self, key: str) -> list[StatusRecord]:
        """Every received status about an outgoing item (by journal id) or a DocumentId."""
        s = t.statuses.c
        with self.core.read() as conn:
            rows = conn.execute(select(t.statuses).where(or_(s.outgoing_id == key, s.document_id == key))
                                .order_by(s.id)).mappings().all()
        return [StatusRecord(**dict(row)) for row in rows]
