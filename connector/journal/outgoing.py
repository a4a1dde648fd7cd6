"""Outgoing items: how a document or status the agency hands over travels to the axis.

Enqueue (idempotent on the agency side's reference), package once, claim, send, fail and retry,
and the operator's requeue and cancel. Each transition is one journal transaction that writes
the row and its event together, through the :class:`~connector.journal.core.JournalCore` it is
given (transactions, events, the instance filter); the journal offers it as ``journal.outgoing``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from connector.journal import schema as t
from connector.journal.core import JournalCore
from connector.journal.errors import InvalidTransition
from connector.journal.records import DeliveryRecord, OutgoingRecord, new_id, utcnow
from connector.journal.rows import _chunks, _deliveries, _item_row, _record, _states
from connector.journal.statements import (
    _CLAIM,
    _DELIVERIES_OF,
    _DELIVERIES_OF_MANY,
    _INSERT_DELIVERY,
    _INSERT_EVENT,
    _INSERT_OUTGOING,
    _OUTGOING_BY_SOURCE,
    _OUTGOING_BY_SOURCE_MANY,
    _PACKAGED_FAST,
    _SENT_FAST,
)
from connector.journal.states import (
    TERMINAL_OUTGOING,
    EventOutcome,
    OutgoingKind,
    OutgoingState,
)

DEFAULT_STALE_AFTER = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class NewOutgoing:
    """One item for :meth:`Journal.enqueue_many` (the arguments of :meth:`Journal.enqueue`)."""

    source: str
    source_ref: str
    kind: OutgoingKind | str
    document_id: str | None = None
    business_type: int | None = None
    recipients: Sequence[str] = ()
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class Packaged:
    """What :meth:`Journal.mark_packaged` records: the stored bytes every attempt sends."""

    package_path: str
    sha256: str
    size: int
    document_id: str
    business_type: int | None = None
    recipients: Sequence[str] | None = None
    signed_by: str | None = None  # SHA-256 of the signing certificate (None: not signed by us)
    renamed: Mapping[str, str] | None = None  # old recipient code -> current (kept in meta)


class OutgoingTransitions:
    """Reading and changing outgoing items (``journal.outgoing``)."""

    def __init__(self, core: JournalCore) -> None:
        self.core = core
        c = t.outgoing.c
        due = and_(c.state.in_([OutgoingState.QUEUED.value, OutgoingState.PACKAGED.value]),
                   or_(c.next_attempt_at.is_(None), c.next_attempt_at <= bindparam("now")))
        stale = and_(c.state == OutgoingState.SENDING.value,
                     c.claimed_at <= bindparam("stale_before"))
        self._claim_candidates = (
            select(t.outgoing)
            .where(or_(due, stale), core.mine(c.instance), core.of_unit(c.agency))
            .order_by(c.created_at, c.id).limit(bindparam("limit"))
            .with_for_update(skip_locked=True))

    # -- outgoing: reading --------------------------------------------------------------------

    def outgoing_row(self, conn: Connection, item_id: str, *, lock: bool = False):
        return _item_row(conn, t.outgoing, item_id, lock=lock, direction="outgoing",
                         listed_by="`edxml-connector status` lists the items and their ids")

    @staticmethod
    def outgoing_record(conn: Connection, row) -> OutgoingRecord:
        delivery_rows = conn.execute(_DELIVERIES_OF, {"item_id": row["id"]}).mappings().all()
        return _record(row, _deliveries(delivery_rows))

    def get_outgoing(self, item_id: str) -> OutgoingRecord:
        with self.core.read() as conn:
            return self.outgoing_record(conn, self.outgoing_row(conn, item_id))

    def find_outgoing(self, key: str) -> OutgoingRecord | None:
        """By journal id, else the latest non-status item with that DocumentId."""
        with self.core.read() as conn:
            row = conn.execute(select(t.outgoing).where(t.outgoing.c.id == key)).mappings().first()
            if row is None:
                row = conn.execute(
                    select(t.outgoing).where(t.outgoing.c.document_id == key)
                    .order_by((t.outgoing.c.kind == OutgoingKind.STATUS.value).asc(),
                              t.outgoing.c.created_at.desc(), t.outgoing.c.id.desc())
                    .limit(1)).mappings().first()
            return None if row is None else self.outgoing_record(conn, row)

    def find_by_source(self, source: str, source_ref: str) -> OutgoingRecord | None:
        """The item an agency side (or ``send``) handed over as (``source``, ``source_ref``)."""
        with self.core.read() as conn:
            row = conn.execute(_OUTGOING_BY_SOURCE, {
                "source": source, "source_ref": source_ref}).mappings().first()
            return None if row is None else self.outgoing_record(conn, row)

    def list_outgoing(self, state: OutgoingState | str | Iterable[OutgoingState | str] | None = None,
                      *, kind: str | None = None, limit: int = 100, offset: int = 0,
                      newest_first: bool = True, agency: str | None = None) -> list[OutgoingRecord]:
        """Newest first (by default); ``agency`` keeps one unit's items."""
        query = select(t.outgoing)
        if agency is not None:
            query = query.where(t.outgoing.c.agency == agency)
        states = _states(state)
        if states:
            query = query.where(t.outgoing.c.state.in_(states))
        if kind:
            query = query.where(t.outgoing.c.kind == kind)
        c = t.outgoing.c
        order = (c.created_at.desc(), c.id.desc()) if newest_first else (c.created_at, c.id)
        query = query.order_by(*order).limit(limit).offset(offset)
        with self.core.read() as conn:
            return [self.outgoing_record(conn, row) for row in conn.execute(query).mappings()]

    # -- outgoing: transitions ----------------------------------------------------------------

    def enqueue(self, source: str, source_ref: str, kind: OutgoingKind | str, *,
                document_id: str | None = None, business_type: int | None = None,
                recipients: Sequence[str] = (), meta: dict[str, Any] | None = None,
                now: dt.datetime | None = None) -> OutgoingRecord:
        """Record a new outgoing item (``queued``). Idempotent on (source, source_ref): an item
        already known is returned unchanged, whatever its state, so a re-scan after a crash never
        creates a second item for the same file or row."""
        return self.enqueue_many([NewOutgoing(source, source_ref, kind, document_id=document_id,
                                              business_type=business_type,
                                              recipients=tuple(recipients), meta=meta)],
                                 now=now)[0]

    def enqueue_many(self, items: Sequence[NewOutgoing], *,
                     now: dt.datetime | None = None) -> list[OutgoingRecord]:
        """:meth:`enqueue` for a batch, in ONE transaction (one commit, one fsync, instead of one
        per item): what an agency side hands over in one ``claim_ready()``. Returns the records
        in the order given. Each item is still its own row with its own ``enqueued`` event, and
        each is idempotent on (source, source_ref) exactly as :meth:`enqueue`. If another
        process inserts one of the same items meanwhile (unique violation), the batch is rolled
        back and redone item by item, so the outcome is the same as one call each."""
        if not items:
            return []
        now = now or utcnow()
        try:
            with self.core.write() as conn:
                return self._enqueue_batch(conn, items, now)
        except IntegrityError:
            if len(items) == 1:
                # Another process inserted the same (source, source_ref) between our read and
                # write: theirs is the item.
                item = items[0]
                with self.core.read() as conn:
                    existing = conn.execute(select(t.outgoing).where(
                        t.outgoing.c.source == item.source,
                        t.outgoing.c.source_ref == item.source_ref)).mappings().first()
                    if existing is None:
                        raise
                    return [self.outgoing_record(conn, existing)]
            return [self.enqueue_many([item], now=now)[0] for item in items]

    def _enqueue_batch(self, conn: Connection, items: Sequence[NewOutgoing],
                       now: dt.datetime) -> list[OutgoingRecord]:
        """The body of :meth:`enqueue_many` in a handful of statements whatever the batch size:
        one lookup of the items already known (per source), then the new rows, their deliveries
        and their ``enqueued`` events each inserted as one executemany. The new records are built
        from the values written (nothing is read back)."""
        existing: dict[tuple[str, str], Any] = {}
        refs_by_source: dict[str, list[str]] = {}
        for item in items:
            refs_by_source.setdefault(item.source, []).append(item.source_ref)
        for source, refs in refs_by_source.items():
            for chunk in _chunks(list(dict.fromkeys(refs))):
                for row in conn.execute(_OUTGOING_BY_SOURCE_MANY, {
                        "source": source, "source_refs": chunk}).mappings():
                    existing[(source, row["source_ref"])] = row
        known: dict[tuple[str, str], OutgoingRecord] = {}
        if existing:
            rows_by_id = {row["id"]: row for row in existing.values()}
            deliveries: dict[str, list[Any]] = {item_id: [] for item_id in rows_by_id}
            for chunk in _chunks(list(rows_by_id)):
                for d in conn.execute(_DELIVERIES_OF_MANY, {"item_ids": chunk}).mappings():
                    deliveries[d["outgoing_id"]].append(d)
            for key, row in existing.items():
                known[key] = _record(row, _deliveries(deliveries[row["id"]]))
        new_rows: list[dict[str, Any]] = []
        new_deliveries: list[dict[str, Any]] = []
        new_events: list[dict[str, Any]] = []
        records: list[OutgoingRecord] = []
        # Ids ascending in the order given: ULIDs made in the same millisecond are not ordered,
        # and claims go by (created_at, id), so this keeps a batch first in, first out.
        fresh_ids = iter(sorted(new_id() for _ in range(len(items))))
        for item in items:
            key = (item.source, item.source_ref)
            if key not in known:
                kind_value = OutgoingKind(item.kind).value
                item_id = next(fresh_ids)
                wanted = list(dict.fromkeys(item.recipients))
                values = dict(
                    id=item_id, source=item.source, source_ref=item.source_ref, kind=kind_value,
                    document_id=item.document_id, business_type=item.business_type,
                    package_path=None, package_sha256=None, package_size=None,
                    state=OutgoingState.QUEUED.value, attempts=0, next_attempt_at=None,
                    claimed_at=None, claimed_by=None, last_error=None, axis_doc_id=None,
                    meta=item.meta or {}, created_at=now, updated_at=now, instance=self.core.instance,
                    agency=self.core.agency)
                new_rows.append(values)
                new_deliveries.extend({"outgoing_id": item_id, "organ_id": organ_id,
                                       "updated_at": now} for organ_id in wanted)
                new_events.append(self.core.event_row(
                    item_id, "outgoing", "enqueued", EventOutcome.OK,
                    {"source": item.source, "source_ref": item.source_ref, "kind": kind_value,
                     "document_id": item.document_id, "recipients": list(item.recipients),
                     "instance": self.core.instance}, now))
                known[key] = _record(values, tuple(
                    DeliveryRecord(organ_id=organ_id, status_code=None, description=None,
                                   status_at=None, updated_at=now) for organ_id in sorted(wanted)))
            records.append(known[key])
        if new_rows:
            conn.execute(_INSERT_OUTGOING, new_rows)
        if new_deliveries:
            conn.execute(_INSERT_DELIVERY, new_deliveries)
        if new_events:
            conn.execute(_INSERT_EVENT, new_events)
        return records

    @staticmethod
    def _set_recipients(conn: Connection, item_id: str, recipients: Sequence[str],
                        now: dt.datetime, *, present: set[str] | None = None) -> bool:
        """Make the item's deliveries the ``recipients`` (``present``: the organ ids already
        there, when the caller just read them). Returns whether anything changed."""
        wanted = list(dict.fromkeys(recipients))
        if present is None:
            present = set(conn.execute(select(t.deliveries.c.organ_id).where(
                t.deliveries.c.outgoing_id == item_id)).scalars())
        changed = False
        for organ_id in wanted:
            if organ_id not in present:
                conn.execute(insert(t.deliveries).values(outgoing_id=item_id, organ_id=organ_id,
                                                         updated_at=now))
                changed = True
        stale = present - set(wanted)
        if stale and wanted:
            conn.execute(delete(t.deliveries).where(
                t.deliveries.c.outgoing_id == item_id, t.deliveries.c.organ_id.in_(stale),
                t.deliveries.c.status_code.is_(None)))
            changed = True
        return changed

    def mark_packaged(self, item_id: str, *, package_path: str, sha256: str, size: int,
                      document_id: str, business_type: int | None = None,
                      recipients: Sequence[str] | None = None, signed_by: str | None = None,
                      now: dt.datetime | None = None) -> OutgoingRecord:
        """The package was built, signed and stored once: every later attempt sends these bytes.

        Allowed from ``queued`` (→ ``packaged``) and from ``sending`` (a claimed item packaged
        just before its first send; it stays ``sending``). Repeating it with the same SHA-256 is a
        no-op; with other bytes it is refused, because the item's identity is its stored package.
        """
        return self.record_packaged(item_id, Packaged(str(package_path), sha256, size,
                                                      document_id, business_type, recipients,
                                                      signed_by),
                                    now=now)

    def record_packaged(self, item_id: str, packaged: Packaged, *,
                        now: dt.datetime | None = None) -> OutgoingRecord:
        """:meth:`mark_packaged` with its values in one :class:`Packaged`."""
        with self.core.write() as conn:
            return self._mark_packaged_in(conn, item_id, packaged, now or utcnow())

    def _mark_packaged_in(self, conn: Connection, item_id: str, packaged: Packaged,
                          now: dt.datetime) -> OutgoingRecord:
        record = self._mark_packaged_rows(conn, item_id, packaged, now)
        if packaged.renamed and record.meta.get("renamed") != dict(packaged.renamed):
            # Recipients given by old codes: the send's `to` list (the current codes) and the
            # receipt say so.
            meta = {**record.meta, "renamed": dict(packaged.renamed),
                    "to": list(packaged.recipients or record.recipients)}
            conn.execute(update(t.outgoing).where(t.outgoing.c.id == item_id).values(meta=meta))
            record = dataclasses.replace(record, meta=meta)
        return record

    def _mark_packaged_rows(self, conn: Connection, item_id: str, packaged: Packaged,
                            now: dt.datetime) -> OutgoingRecord:
        package_path, sha256, size = packaged.package_path, packaged.sha256, packaged.size
        document_id, business_type = packaged.document_id, packaged.business_type
        recipients = packaged.recipients
        if self.core.returning:
            written = conn.execute(_PACKAGED_FAST, {
                "b_id": item_id, "b_path": str(package_path), "b_sha256": sha256,
                "b_size": size, "b_document_id": document_id, "b_signed_by": packaged.signed_by,
                "b_business_type": business_type, "b_now": now}).mappings().first()
            if written is not None:
                deliveries = conn.execute(_DELIVERIES_OF, {"item_id": item_id}).mappings().all()
                if recipients is not None and self._set_recipients(
                        conn, item_id, recipients, now,
                        present={d["organ_id"] for d in deliveries}):
                    deliveries = conn.execute(_DELIVERIES_OF,
                                              {"item_id": item_id}).mappings().all()
                self._packaged_event(conn, item_id, packaged, now)
                return _record(written, _deliveries(deliveries))
        row = self.outgoing_row(conn, item_id, lock=True)
        if row["package_sha256"] is not None:
            if row["package_sha256"] == sha256:
                return self.outgoing_record(conn, row)
            raise InvalidTransition(
                f"outgoing item {item_id} is already packaged with other bytes "
                f"(sha256 {row['package_sha256'][:12]}…)",
                hint="a package is built once; enqueue a new item to send a new version")
        state = OutgoingState(row["state"])
        if state not in (OutgoingState.QUEUED, OutgoingState.SENDING):
            raise InvalidTransition(f"outgoing item {item_id} is {state.value}, cannot be packaged",
                                    hint="only queued or claimed items are packaged")
        new_state = OutgoingState.PACKAGED if state is OutgoingState.QUEUED else state
        values = dict(package_path=str(package_path), package_sha256=sha256,
                      package_size=size, document_id=document_id, signed_by=packaged.signed_by,
                      business_type=business_type, state=new_state.value, updated_at=now)
        conn.execute(update(t.outgoing).where(t.outgoing.c.id == item_id).values(**values))
        if recipients is not None:
            self._set_recipients(conn, item_id, recipients, now)
        self._packaged_event(conn, item_id, packaged, now)
        return self.outgoing_record(conn, {**row, **values})

    def _packaged_event(self, conn: Connection, item_id: str, packaged: Packaged,
                        now: dt.datetime) -> None:
        recipients = packaged.recipients
        self.core.event(conn, item_id, "outgoing", "packaged", EventOutcome.OK,
                        {"sha256": packaged.sha256, "size": packaged.size,
                         "document_id": packaged.document_id,
                         "business_type": packaged.business_type,
                         "package_path": str(packaged.package_path),
                         "recipients": list(recipients) if recipients is not None else None,
                         "signed_by": packaged.signed_by}, now)

    def units_with_due_items(self, *, now: dt.datetime | None = None,
                             stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> set[str]:
        """The units (OrganIds) of this instance that have an item :meth:`claim_for_sending`
        would hand out now: one read for a hub's retry sweep, instead of a claim per unit."""
        now = now or utcnow()
        c = t.outgoing.c
        due = and_(c.state.in_([OutgoingState.QUEUED.value, OutgoingState.PACKAGED.value]),
                   or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now))
        stale = and_(c.state == OutgoingState.SENDING.value, c.claimed_at <= now - stale_after)
        query = select(c.agency).where(or_(due, stale), self.core.mine(c.instance)).distinct()
        with self.core.read() as conn:
            return set(conn.execute(query).scalars())

    def claim_for_sending(self, limit: int, *, now: dt.datetime | None = None,
                          stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
                          owner: str | None = None) -> list[OutgoingRecord]:
        """Claim up to ``limit`` items to send now: ``queued``/``packaged`` ones that are due, and
        ``sending`` ones whose claim is older than ``stale_after`` (their sender died). Each claim
        counts one attempt. Two claimers never get the same item: rows are locked with
        ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, and every claim is a conditional UPDATE whose
        row count is checked (SQLite also serialises writers with BEGIN IMMEDIATE).
        A claimed item whose ``needs_packaging`` is true must be packaged before it is sent.

        Only this journal's ``instance``'s items are claimed (see the module docstring): another
        instance's package and folder claim are on its own server. ``owner`` is the process
        recorded as the claim holder (default: this journal's owner).
        """
        if limit <= 0:
            return []
        now = now or utcnow()
        owner = owner or self.core.owner
        claimed: list[OutgoingRecord] = []
        with self.core.write() as conn:
            candidates = conn.execute(self._claim_candidates, {
                "now": now, "stale_before": now - stale_after, "limit": limit}).mappings().all()
            won: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for candidate in candidates:
                statement = _CLAIM[candidate["claimed_at"] is None]
                result = conn.execute(statement, {
                    "b_id": candidate["id"], "b_state": candidate["state"],
                    "b_claimed_at": candidate["claimed_at"], "b_now": now, "b_owner": owner})
                if result.rowcount != 1:
                    continue  # someone else took it between our read and our write
                recovered = candidate["state"] == OutgoingState.SENDING.value
                events.append(self.core.event_row(
                    candidate["id"], "outgoing", "claim_recovered" if recovered else "claimed",
                    EventOutcome.RETRY if recovered else EventOutcome.OK,
                    {"attempt": candidate["attempts"] + 1, "owner": owner,
                     **({"previous_owner": candidate["claimed_by"]} if recovered else {})}, now))
                # The row as the conditional UPDATE wrote it (the candidate row was read, locked,
                # in this transaction): no read-back.
                won.append({**candidate, "state": OutgoingState.SENDING.value,
                            "attempts": candidate["attempts"] + 1, "claimed_at": now,
                            "claimed_by": owner, "updated_at": now})
            if not won:
                return claimed
            conn.execute(_INSERT_EVENT, events)
            deliveries: dict[str, list[Any]] = {row["id"]: [] for row in won}
            for d in conn.execute(_DELIVERIES_OF_MANY,
                                  {"item_ids": list(deliveries)}).mappings():
                deliveries[d["outgoing_id"]].append(d)
            claimed.extend(_record(row, _deliveries(deliveries[row["id"]])) for row in won)
        return claimed

    def recover_interrupted(self, *, claimed_by: str | None = None,
                            now: dt.datetime | None = None) -> list[str]:
        """At start-up: put items left in ``sending`` by a dead process back in line, due now.

        The interrupted attempt may have reached the axis, so the item will be sent again
        (at-least-once; receivers de-duplicate). Only this instance's items are touched, so on
        a shared PostgreSQL journal another live connector's claims are left alone (one live
        process per instance name: the folder adapter's instance lock sees to that);
        ``claimed_by`` narrows it further to one previous process. Returns the ids put back.
        """
        now = now or utcnow()
        c = t.outgoing.c
        with self.core.write() as conn:
            query = select(c.id, c.package_sha256, c.claimed_by).where(
                c.state == OutgoingState.SENDING.value, self.core.mine(c.instance),
                self.core.of_unit(c.agency)
            ).with_for_update(skip_locked=True)
            if claimed_by is not None:
                query = query.where(c.claimed_by == claimed_by)
            rows = conn.execute(query).mappings().all()
            for row in rows:
                back = OutgoingState.QUEUED if row["package_sha256"] is None else OutgoingState.PACKAGED
                conn.execute(update(t.outgoing).where(c.id == row["id"]).values(
                    state=back.value, next_attempt_at=now, claimed_at=None, claimed_by=None,
                    updated_at=now))
                self.core.event(conn, row["id"], "outgoing", "claim_abandoned", EventOutcome.RETRY,
                            {"previous_owner": row["claimed_by"],
                             "note": "found in sending after a restart; it will be sent again"}, now)
            return [row["id"] for row in rows]

    def record_sent(self, item_id: str, axis_doc_id: str, *, now: dt.datetime | None = None,
                    packaged: Packaged | None = None) -> OutgoingRecord:
        """The axis accepted the package and gave ``axis_doc_id``. Recorded from any state, since
        it is a fact about the outside world (even if the claim was meanwhile recovered).
        Already ``sent`` with the same DocId: no-op; with another DocId (it was sent twice, which
        at-least-once allows), the first DocId is kept and a ``sent_again`` event notes the second.

        ``packaged``: the item was packaged in this attempt and its first send succeeded, so
        ``mark_packaged`` and this are one transaction (one commit, one fsync, instead of two
        per document). The bytes were stored durably before they were sent, and the package
        store keeps the first bytes stored for an item, so a crash before this commit resends
        exactly those bytes (see :mod:`connector.journal.package_store`).
        """
        now = now or utcnow()

        def transition(conn: Connection) -> OutgoingRecord:
            deliveries = None
            if packaged is not None:  # its deliveries are final now: no second read below
                deliveries = self._mark_packaged_in(conn, item_id, packaged, now).deliveries
            return self._record_sent_in(conn, item_id, axis_doc_id, now, deliveries)

        with self.core.write() as conn:
            return transition(conn)

    def _record_sent_in(self, conn: Connection, item_id: str, axis_doc_id: str,
                        now: dt.datetime, deliveries: tuple | None = None) -> OutgoingRecord:
        if self.core.returning:
            # The usual case, sent from ``sending``, in one statement.
            written = conn.execute(_SENT_FAST, {"b_id": item_id, "b_axis_doc_id": axis_doc_id,
                                                "b_now": now}).mappings().first()
            if written is not None:
                self.core.event(conn, item_id, "outgoing", "sent", EventOutcome.OK,
                            {"axis_doc_id": axis_doc_id, "attempts": written["attempts"]}, now)
                if deliveries is not None:
                    return _record(written, deliveries)
                return self.outgoing_record(conn, written)
        row = self.outgoing_row(conn, item_id, lock=True)
        if row["state"] == OutgoingState.SENT.value:
            if row["axis_doc_id"] != axis_doc_id:
                self.core.event(conn, item_id, "outgoing", "sent_again", EventOutcome.INFO,
                            {"axis_doc_id": axis_doc_id, "kept": row["axis_doc_id"]}, now)
            return self.outgoing_record(conn, row)
        values = dict(state=OutgoingState.SENT.value, axis_doc_id=axis_doc_id,
                      next_attempt_at=None, claimed_at=None, claimed_by=None,
                      last_error=None, updated_at=now)
        conn.execute(update(t.outgoing).where(t.outgoing.c.id == item_id).values(**values))
        detail: dict[str, Any] = {"axis_doc_id": axis_doc_id, "attempts": row["attempts"]}
        if row["state"] != OutgoingState.SENDING.value:
            detail["from_state"] = row["state"]
        self.core.event(conn, item_id, "outgoing", "sent", EventOutcome.OK, detail, now)
        # The row as written (no read-back: the row was read in this transaction).
        return self.outgoing_record(conn, {**row, **values})

    def record_attempt_failed(self, item_id: str, error: str, *,
                              retry_at: dt.datetime | None = None, permanent: bool = False,
                              now: dt.datetime | None = None) -> OutgoingRecord:
        """An attempt failed. The item becomes ``failed`` (reason kept in ``last_error``) when the
        error is permanent, when no ``retry_at`` is given, or when ``max_attempts`` is reached;
        otherwise it waits until ``retry_at`` in ``packaged`` (or ``queued`` if never packaged).
        A failure reported for an item already ``sent`` is ignored (noted as an event)."""
        now = now or utcnow()
        with self.core.write() as conn:
            row = self.outgoing_row(conn, item_id, lock=True)
            state = OutgoingState(row["state"])
            if state is OutgoingState.SENT:
                self.core.event(conn, item_id, "outgoing", "late_failure_ignored", EventOutcome.INFO,
                            {"error": error}, now)
                return self.outgoing_record(conn, row)
            if state in TERMINAL_OUTGOING:
                raise InvalidTransition(f"outgoing item {item_id} is {state.value}; "
                                        "an attempt cannot fail now")
            exhausted = self.core.max_attempts is not None and row["attempts"] >= self.core.max_attempts
            c = t.outgoing.c
            if permanent or retry_at is None or exhausted:
                reason = "permanent error" if permanent else (
                    "attempts exhausted" if exhausted or retry_at is None else "no retry")
                conn.execute(update(t.outgoing).where(c.id == item_id).values(
                    state=OutgoingState.FAILED.value, last_error=error, next_attempt_at=None,
                    claimed_at=None, claimed_by=None, updated_at=now))
                self.core.event(conn, item_id, "outgoing", "failed", EventOutcome.ERROR,
                            {"error": error, "reason": reason, "attempts": row["attempts"]}, now)
            else:
                back = OutgoingState.QUEUED if row["package_sha256"] is None else OutgoingState.PACKAGED
                conn.execute(update(t.outgoing).where(c.id == item_id).values(
                    state=back.value, last_error=error, next_attempt_at=retry_at,
                    claimed_at=None, claimed_by=None, updated_at=now))
                self.core.event(conn, item_id, "outgoing", "attempt_failed", EventOutcome.RETRY,
                            {"error": error, "attempts": row["attempts"],
                             "retry_at": retry_at.isoformat()}, now)
            return self.outgoing_record(conn, self.outgoing_row(conn, item_id))

    def release_claim(self, item_id: str, *, retry_at: dt.datetime, reason: str,
                      now: dt.datetime | None = None) -> OutgoingRecord:
        """Give a claimed item back without spending its attempt: the failure was nobody's
        document's fault (axis authentication failure, axis unreachable, shutting down)."""
        now = now or utcnow()
        with self.core.write() as conn:
            row = self.outgoing_row(conn, item_id, lock=True)
            if row["state"] != OutgoingState.SENDING.value:
                return self.outgoing_record(conn, row)
            back = OutgoingState.QUEUED if row["package_sha256"] is None else OutgoingState.PACKAGED
            conn.execute(update(t.outgoing).where(t.outgoing.c.id == item_id).values(
                state=back.value, attempts=max(row["attempts"] - 1, 0),
                next_attempt_at=retry_at, claimed_at=None, claimed_by=None, updated_at=now))
            self.core.event(conn, item_id, "outgoing", "claim_released", EventOutcome.RETRY,
                        {"reason": reason, "retry_at": retry_at.isoformat()}, now)
            return self.outgoing_record(conn, self.outgoing_row(conn, item_id))

    def requeue(self, item_id: str, *, now: dt.datetime | None = None,
                actor: str = "operator") -> OutgoingRecord:
        """Operator retry: a ``failed`` or ``cancelled`` item goes back in line with its attempts
        reset; a waiting item is made due now. A ``sent`` item is refused: sending it again would
        deliver it twice."""
        now = now or utcnow()
        with self.core.write() as conn:
            row = self.outgoing_row(conn, item_id, lock=True)
            state = OutgoingState(row["state"])
            if state is OutgoingState.SENT:
                raise InvalidTransition(
                    f"outgoing item {item_id} was already sent (axis DocId {row['axis_doc_id']})",
                    hint="retrying would deliver it twice; send a new document or an update instead")
            if state is OutgoingState.SENDING:
                raise InvalidTransition(f"outgoing item {item_id} is being sent right now",
                                        hint="wait for the attempt to finish, then check its state")
            back = OutgoingState.QUEUED if row["package_sha256"] is None else OutgoingState.PACKAGED
            values: dict[str, Any] = {"state": back.value, "next_attempt_at": now, "updated_at": now}
            if state in (OutgoingState.FAILED, OutgoingState.CANCELLED):
                values.update(attempts=0, last_error=None)
            conn.execute(update(t.outgoing).where(t.outgoing.c.id == item_id).values(**values))
            self.core.event(conn, item_id, "outgoing", "requeued", EventOutcome.OK,
                        {"actor": actor, "from_state": state.value,
                         "previous_error": row["last_error"]}, now)
            return self.outgoing_record(conn, self.outgoing_row(conn, item_id))

    def requeue_failed(self, *, now: dt.datetime | None = None, actor: str = "operator") -> list[str]:
        """``retry --failed``: requeue every failed item; returns their ids."""
        with self.core.read() as conn:
            ids = list(conn.execute(select(t.outgoing.c.id).where(
                t.outgoing.c.state == OutgoingState.FAILED.value).order_by(t.outgoing.c.id)).scalars())
        for item_id in ids:
            self.requeue(item_id, now=now, actor=actor)
        return ids

    def cancel(self, item_id: str, *, reason: str | None = None, now: dt.datetime | None = None,
               actor: str = "operator") -> OutgoingRecord:
        """Operator cancel of an item not yet sent. Refused while it is being sent (it may
        already be with the axis) and once sent (ask for a take-back or a revoke instead)."""
        now = now or utcnow()
        with self.core.write() as conn:
            row = self.outgoing_row(conn, item_id, lock=True)
            state = OutgoingState(row["state"])
            if state is OutgoingState.CANCELLED:
                return self.outgoing_record(conn, row)
            if state is OutgoingState.SENT:
                raise InvalidTransition(f"outgoing item {item_id} was already sent",
                                        hint="ask the recipients to take it back (status 13) or revoke it")
            if state is OutgoingState.SENDING:
                raise InvalidTransition(f"outgoing item {item_id} is being sent right now",
                                        hint="wait for the attempt to end; if it fails, cancel it then")
            conn.execute(update(t.outgoing).where(t.outgoing.c.id == item_id).values(
                state=OutgoingState.CANCELLED.value, next_attempt_at=None, updated_at=now))
            self.core.event(conn, item_id, "outgoing", "cancelled", EventOutcome.INFO,
                        {"actor": actor, "reason": reason, "from_state": state.value}, now)
            return self.outgoing_record(conn, self.outgoing_row(conn, item_id))
