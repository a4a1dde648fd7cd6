"""The journal: durable state of every item and the only way to change it.

Every public method that changes state is one transaction that updates the item's row *and*
appends its event to the ``events`` table, so the history can never disagree with the state. The
pipelines call a transition after each step succeeds (or fails); a transition repeated after a
crash is a no-op, so every step may be redone safely.

Delivery guarantee (outbound): at-least-once. An item is claimed (``sending``) before the request
to the axis and marked ``sent`` after the answer. If the process dies in between, the item is found
in ``sending`` and sent again (``recover_interrupted`` at start-up, or ``claim_for_sending`` once a
claim is older than ``stale_after``); the same stored bytes go out, and receivers de-duplicate on
the axis DocId and on (sender, DocumentId, business type, package SHA-256).

Inbound: a document is acknowledged to the axis only after ``record_stored`` committed, and
``find_duplicate`` plus the unique axis DocId make a redelivery harmless.

Two connectors on one PostgreSQL journal: each item remembers the ``instance`` that took it in,
because its stored package (and, outgoing, its folder claim in ``work/``) lives on that
instance's server. ``claim_for_sending``, ``recover_interrupted`` and ``pending_incoming`` only
hand out this instance's items (and rows without an instance, written by an older connector),
unless the journal was opened with ``any_instance=True`` (package store and exchange folder on
storage both servers share). When a server is gone for good, an operator makes its items this
instance's with :meth:`Journal.adopt` after restoring its state directory and ``work/`` here —
or cancels them and lets the DMS send again. Inbound polls are serialised by the
``inbound-poller`` lease (:meth:`Journal.acquire_lease`).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import (Connection, Engine, and_, bindparam, case, delete, func, insert, or_,
                        select, text, update)
from sqlalchemy import true as sa_true
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from connector.errors import ConnectorError
from connector.journal import schema as t
from connector.journal.engine import BEGIN_MODE_OPTION, create_journal_engine, sqlite_path
from connector.journal.migrate import upgrade_to_head
from connector.journal.records import (
    DeliveryRecord,
    EventRecord,
    IncomingRecord,
    OutgoingRecord,
    StatusRecord,
    default_instance,
    default_owner,
    new_id,
    utcnow,
)
from connector.journal.states import (
    INCOMING_ORDER,
    PENDING_OUTGOING,
    TERMINAL_OUTGOING,
    EventOutcome,
    IncomingState,
    MessageType,
    OutgoingKind,
    OutgoingState,
)

DEFAULT_STALE_AFTER = dt.timedelta(minutes=10)
KV_LAST_AXIS_CONTACT = "axis.last_successful_contact"
KV_LAST_POLL = "axis.last_successful_poll"


class JournalError(ConnectorError):
    """A transition that the item's state does not allow, or an unknown item."""


class UnknownItem(JournalError):
    exit_code = 2


class InvalidTransition(JournalError):
    exit_code = 2


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


# The statements of the hot path (several per transition, ~100 transitions a second under load),
# built once: a statement built per call costs its construction plus a cache-key computation
# in SQLAlchemy each time, which was most of the journal's CPU. Values go in as parameters.
_ROW_BY_ID = {(table.name, lock): (select(table).where(table.c.id == bindparam("item_id"))
                                   .with_for_update() if lock else
                                   select(table).where(table.c.id == bindparam("item_id")))
              for table in (t.outgoing, t.incoming) for lock in (False, True)}
_DELIVERIES_OF = (select(t.deliveries).where(t.deliveries.c.outgoing_id == bindparam("item_id"))
                  .order_by(t.deliveries.c.organ_id))
_INSERT_EVENT = insert(t.events)
# The claim: a conditional UPDATE (same state, same claim as read), keyed by "was it unclaimed".
_CLAIM = {unclaimed: update(t.outgoing).where(
    t.outgoing.c.id == bindparam("b_id"), t.outgoing.c.state == bindparam("b_state"),
    t.outgoing.c.claimed_at.is_(None) if unclaimed
    else t.outgoing.c.claimed_at == bindparam("b_claimed_at")).values(
    state=OutgoingState.SENDING.value, attempts=t.outgoing.c.attempts + 1,
    claimed_at=bindparam("b_now"), claimed_by=bindparam("b_owner"), updated_at=bindparam("b_now"))
    for unclaimed in (True, False)}
_OUTGOING_BY_SOURCE = select(t.outgoing).where(t.outgoing.c.source == bindparam("source"),
                                               t.outgoing.c.source_ref == bindparam("source_ref"))
_OUTGOING_BY_SOURCE_MANY = select(t.outgoing).where(
    t.outgoing.c.source == bindparam("source"),
    t.outgoing.c.source_ref.in_(bindparam("source_refs", expanding=True)))


_DELIVERIES_OF_MANY = (select(t.deliveries)
                       .where(t.deliveries.c.outgoing_id.in_(bindparam("item_ids", expanding=True)))
                       .order_by(t.deliveries.c.outgoing_id, t.deliveries.c.organ_id))
_INSERT_OUTGOING = insert(t.outgoing)
_INSERT_DELIVERY = insert(t.deliveries)
# The two transitions of every first-attempt success, each as ONE conditional statement that
# hands back the row as written (``UPDATE … RETURNING``: SQLite ≥ 3.35, PostgreSQL): the WHERE
# clause carries the precondition that used to be checked on a row read first. When it does not
# match (already packaged, already sent, another state) the careful path with its read runs.
_PACKAGED_FAST = (update(t.outgoing).where(
    t.outgoing.c.id == bindparam("b_id"), t.outgoing.c.package_sha256.is_(None),
    t.outgoing.c.state.in_([OutgoingState.QUEUED.value, OutgoingState.SENDING.value])).values(
    package_path=bindparam("b_path"), package_sha256=bindparam("b_sha256"),
    package_size=bindparam("b_size"), document_id=bindparam("b_document_id"),
    business_type=bindparam("b_business_type"), updated_at=bindparam("b_now"),
    state=case((t.outgoing.c.state == OutgoingState.QUEUED.value, OutgoingState.PACKAGED.value),
               else_=t.outgoing.c.state)).returning(*t.outgoing.c))
_SENT_FAST = (update(t.outgoing).where(
    t.outgoing.c.id == bindparam("b_id"), t.outgoing.c.state == OutgoingState.SENDING.value).values(
    state=OutgoingState.SENT.value, axis_doc_id=bindparam("b_axis_doc_id"), next_attempt_at=None,
    claimed_at=None, claimed_by=None, last_error=None, updated_at=bindparam("b_now"))
    .returning(*t.outgoing.c))


def _deliveries(rows) -> tuple[DeliveryRecord, ...]:
    return tuple(DeliveryRecord(organ_id=d["organ_id"], status_code=d["status_code"],
                                description=d["description"], status_at=d["status_at"],
                                updated_at=d["updated_at"]) for d in rows)


def _record(row, deliveries: tuple[DeliveryRecord, ...]) -> OutgoingRecord:
    values = {key: row[key] for key in row.keys()}
    values["state"] = OutgoingState(values["state"])
    values["meta"] = dict(values["meta"] or {})
    return OutgoingRecord(**values, deliveries=deliveries)


def _item_row(conn: Connection, table, item_id: str, *, lock: bool, direction: str,
              listed_by: str):
    """The item's row, locked ``FOR UPDATE`` when a transition follows (ignored by SQLite, whose
    write transaction already excludes other writers). An unknown id is the operator's typo, so
    the error says which command lists the ids."""
    row = conn.execute(_ROW_BY_ID[(table.name, lock)], {"item_id": item_id}).mappings().first()
    if row is None:
        raise UnknownItem(f"no {direction} item {item_id!r} in the journal", hint=listed_by)
    return row


class Journal:
    """Durable state of outgoing and incoming items. Thread-safe: each call uses its own
    connection from the engine's pool.

    ``max_attempts`` (the ``outbound.max_attempts`` setting) turns a failed attempt into ``failed``
    once that many attempts were made; ``owner`` names this *process* in claims and leases (host
    and pid: a restart is a new owner). ``instance`` names this *installation* (stable across
    restarts; default the host name — pass the folder adapter's instance name): new items are
    stamped with it and only its items are handed out, unless ``any_instance`` is true.
    """

    def __init__(self, engine: Engine, *, max_attempts: int | None = None,
                 owner: str | None = None, instance: str | None = None,
                 any_instance: bool = False) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.owner = owner or default_owner()
        self.instance = instance or default_instance()
        self.any_instance = any_instance
        # SQLite has one writer at a time. Threads of this process queue on this lock instead of
        # on SQLite's busy handler, which *sleeps* between retries (1, 2, 5 … 100 ms) and so adds
        # latency to every hand-over; other processes (the CLI) still meet the busy timeout.
        # PostgreSQL writers run in parallel (row locks), so no lock there.
        self._write_lock = threading.RLock() if engine.dialect.name == "sqlite" else None
        # ``UPDATE … RETURNING`` (SQLite ≥ 3.35, PostgreSQL; not MySQL/MariaDB): one statement per
        # hot transition instead of read + update; without it the read-first path runs.
        self._returning = bool(getattr(engine.dialect, "update_returning", False))
        c = t.outgoing.c
        due = and_(c.state.in_([OutgoingState.QUEUED.value, OutgoingState.PACKAGED.value]),
                   or_(c.next_attempt_at.is_(None), c.next_attempt_at <= bindparam("now")))
        stale = and_(c.state == OutgoingState.SENDING.value,
                     c.claimed_at <= bindparam("stale_before"))
        self._claim_candidates = (
            select(t.outgoing)
            .where(or_(due, stale), self._mine(c.instance))
            .order_by(c.created_at, c.id).limit(bindparam("limit"))
            .with_for_update(skip_locked=True))

    @classmethod
    def open(cls, url: str | URL, *, max_attempts: int | None = None, owner: str | None = None,
             instance: str | None = None, any_instance: bool = False,
             migrate: bool = True) -> Journal:
        """Connect, and upgrade the schema to the newest revision (creating it when empty)."""
        engine = create_journal_engine(url)
        try:
            if migrate:
                upgrade_to_head(engine)
        except Exception:
            engine.dispose()
            raise
        return cls(engine, max_attempts=max_attempts, owner=owner, instance=instance,
                   any_instance=any_instance)

    def _mine(self, column):
        """Rows this instance may work on: its own, and rows from before instances existed."""
        if self.any_instance:
            return sa_true()
        return or_(column == self.instance, column.is_(None))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction: on SQLite it takes the write lock up front (BEGIN IMMEDIATE)."""
        with self._write_lock or nullcontext():
            with self.engine.connect().execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"}) as conn:
                with conn.begin():
                    yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    @staticmethod
    def _event_row(item_id: str | None, item_kind: str, name: str, outcome: EventOutcome | str,
                   detail: dict[str, Any] | None, at: dt.datetime) -> dict[str, Any]:
        return {"item_id": item_id, "item_kind": item_kind, "event": name,
                "outcome": outcome.value if isinstance(outcome, EventOutcome) else outcome,
                "detail": detail or {}, "at": at}

    @classmethod
    def _event(cls, conn: Connection, item_id: str | None, item_kind: str, name: str,
               outcome: EventOutcome | str, detail: dict[str, Any] | None, at: dt.datetime) -> None:
        conn.execute(_INSERT_EVENT, cls._event_row(item_id, item_kind, name, outcome, detail, at))

    def record_event(self, item_id: str | None, item_kind: str, name: str, *,
                     outcome: EventOutcome | str = EventOutcome.INFO,
                     detail: dict[str, Any] | None = None, now: dt.datetime | None = None) -> None:
        """Append an event that is not a state change (e.g. a delivery retry on the agency side,
        an axis contact problem). ``item_kind`` is ``outgoing``, ``incoming`` or ``journal``."""
        with self._write() as conn:
            self._event(conn, item_id, item_kind, name, outcome, detail, now or utcnow())

    # -- outgoing: reading --------------------------------------------------------------------

    def _outgoing_row(self, conn: Connection, item_id: str, *, lock: bool = False):
        return _item_row(conn, t.outgoing, item_id, lock=lock, direction="outgoing",
                         listed_by="`edxml-connector status` lists the items and their ids")

    @staticmethod
    def _outgoing_record(conn: Connection, row) -> OutgoingRecord:
        delivery_rows = conn.execute(_DELIVERIES_OF, {"item_id": row["id"]}).mappings().all()
        return _record(row, _deliveries(delivery_rows))

    def get_outgoing(self, item_id: str) -> OutgoingRecord:
        with self._read() as conn:
            return self._outgoing_record(conn, self._outgoing_row(conn, item_id))

    def find_outgoing(self, key: str) -> OutgoingRecord | None:
        """By journal id, else the latest non-status item with that DocumentId."""
        with self._read() as conn:
            row = conn.execute(select(t.outgoing).where(t.outgoing.c.id == key)).mappings().first()
            if row is None:
                row = conn.execute(
                    select(t.outgoing).where(t.outgoing.c.document_id == key)
                    .order_by((t.outgoing.c.kind == OutgoingKind.STATUS.value).asc(),
                              t.outgoing.c.created_at.desc(), t.outgoing.c.id.desc())
                    .limit(1)).mappings().first()
            return None if row is None else self._outgoing_record(conn, row)

    def find_by_source(self, source: str, source_ref: str) -> OutgoingRecord | None:
        """The item an agency side (or ``send``) handed over as (``source``, ``source_ref``)."""
        with self._read() as conn:
            row = conn.execute(_OUTGOING_BY_SOURCE, {
                "source": source, "source_ref": source_ref}).mappings().first()
            return None if row is None else self._outgoing_record(conn, row)

    def list_outgoing(self, state: OutgoingState | str | Iterable[OutgoingState | str] | None = None,
                      *, kind: str | None = None, limit: int = 100, offset: int = 0,
                      newest_first: bool = True) -> list[OutgoingRecord]:
        query = select(t.outgoing)
        states = _states(state)
        if states:
            query = query.where(t.outgoing.c.state.in_(states))
        if kind:
            query = query.where(t.outgoing.c.kind == kind)
        c = t.outgoing.c
        order = (c.created_at.desc(), c.id.desc()) if newest_first else (c.created_at, c.id)
        query = query.order_by(*order).limit(limit).offset(offset)
        with self._read() as conn:
            return [self._outgoing_record(conn, row) for row in conn.execute(query).mappings()]

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
            with self._write() as conn:
                return self._enqueue_batch(conn, items, now)
        except IntegrityError:
            if len(items) == 1:
                # Another process inserted the same (source, source_ref) between our read and
                # write: theirs is the item.
                item = items[0]
                with self._read() as conn:
                    existing = conn.execute(select(t.outgoing).where(
                        t.outgoing.c.source == item.source,
                        t.outgoing.c.source_ref == item.source_ref)).mappings().first()
                    if existing is None:
                        raise
                    return [self._outgoing_record(conn, existing)]
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
                    meta=item.meta or {}, created_at=now, updated_at=now, instance=self.instance)
                new_rows.append(values)
                new_deliveries.extend({"outgoing_id": item_id, "organ_id": organ_id,
                                       "updated_at": now} for organ_id in wanted)
                new_events.append(self._event_row(
                    item_id, "outgoing", "enqueued", EventOutcome.OK,
                    {"source": item.source, "source_ref": item.source_ref, "kind": kind_value,
                     "document_id": item.document_id, "recipients": list(item.recipients),
                     "instance": self.instance}, now))
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
                      recipients: Sequence[str] | None = None,
                      now: dt.datetime | None = None) -> OutgoingRecord:
        """The package was built, signed and stored once: every later attempt sends these bytes.

        Allowed from ``queued`` (→ ``packaged``) and from ``sending`` (a claimed item packaged
        just before its first send; it stays ``sending``). Repeating it with the same SHA-256 is a
        no-op; with other bytes it is refused, because the item's identity is its stored package.
        """
        now = now or utcnow()
        with self._write() as conn:
            if self._returning:
                written = conn.execute(_PACKAGED_FAST, {
                    "b_id": item_id, "b_path": str(package_path), "b_sha256": sha256,
                    "b_size": size, "b_document_id": document_id,
                    "b_business_type": business_type, "b_now": now}).mappings().first()
                if written is not None:
                    deliveries = conn.execute(_DELIVERIES_OF, {"item_id": item_id}).mappings().all()
                    if recipients is not None and self._set_recipients(
                            conn, item_id, recipients, now,
                            present={d["organ_id"] for d in deliveries}):
                        deliveries = conn.execute(_DELIVERIES_OF,
                                                  {"item_id": item_id}).mappings().all()
                    self._packaged_event(conn, item_id, package_path, sha256, size, document_id,
                                         business_type, recipients, now)
                    return _record(written, _deliveries(deliveries))
            row = self._outgoing_row(conn, item_id, lock=True)
            if row["package_sha256"] is not None:
                if row["package_sha256"] == sha256:
                    return self._outgoing_record(conn, row)
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
                          package_size=size, document_id=document_id,
                          business_type=business_type, state=new_state.value, updated_at=now)
            conn.execute(update(t.outgoing).where(t.outgoing.c.id == item_id).values(**values))
            if recipients is not None:
                self._set_recipients(conn, item_id, recipients, now)
            self._packaged_event(conn, item_id, package_path, sha256, size, document_id,
                                 business_type, recipients, now)
            return self._outgoing_record(conn, {**row, **values})

    def _packaged_event(self, conn: Connection, item_id: str, package_path: str, sha256: str,
                        size: int, document_id: str, business_type: int | None,
                        recipients: Sequence[str] | None, now: dt.datetime) -> None:
        self._event(conn, item_id, "outgoing", "packaged", EventOutcome.OK,
                    {"sha256": sha256, "size": size, "document_id": document_id,
                     "business_type": business_type, "package_path": str(package_path),
                     "recipients": list(recipients) if recipients is not None else None}, now)

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
        owner = owner or self.owner
        claimed: list[OutgoingRecord] = []
        with self._write() as conn:
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
                events.append(self._event_row(
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
        with self._write() as conn:
            query = select(c.id, c.package_sha256, c.claimed_by).where(
                c.state == OutgoingState.SENDING.value, self._mine(c.instance)
            ).with_for_update(skip_locked=True)
            if claimed_by is not None:
                query = query.where(c.claimed_by == claimed_by)
            rows = conn.execute(query).mappings().all()
            for row in rows:
                back = OutgoingState.QUEUED if row["package_sha256"] is None else OutgoingState.PACKAGED
                conn.execute(update(t.outgoing).where(c.id == row["id"]).values(
                    state=back.value, next_attempt_at=now, claimed_at=None, claimed_by=None,
                    updated_at=now))
                self._event(conn, row["id"], "outgoing", "claim_abandoned", EventOutcome.RETRY,
                            {"previous_owner": row["claimed_by"],
                             "note": "found in sending after a restart; it will be sent again"}, now)
            return [row["id"] for row in rows]

    def record_sent(self, item_id: str, axis_doc_id: str, *,
                    now: dt.datetime | None = None) -> OutgoingRecord:
        """The axis accepted the package and gave ``axis_doc_id``. Recorded from any state, since
        it is a fact about the outside world (even if the claim was meanwhile recovered).
        Already ``sent`` with the same DocId: no-op; with another DocId (it was sent twice, which
        at-least-once allows), the first DocId is kept and a ``sent_again`` event notes the second.
        """
        now = now or utcnow()
        with self._write() as conn:
            if self._returning:
                # The usual case, sent from ``sending``, in one statement.
                written = conn.execute(_SENT_FAST, {"b_id": item_id, "b_axis_doc_id": axis_doc_id,
                                                    "b_now": now}).mappings().first()
                if written is not None:
                    self._event(conn, item_id, "outgoing", "sent", EventOutcome.OK,
                                {"axis_doc_id": axis_doc_id, "attempts": written["attempts"]}, now)
                    return self._outgoing_record(conn, written)
            row = self._outgoing_row(conn, item_id, lock=True)
            if row["state"] == OutgoingState.SENT.value:
                if row["axis_doc_id"] != axis_doc_id:
                    self._event(conn, item_id, "outgoing", "sent_again", EventOutcome.INFO,
                                {"axis_doc_id": axis_doc_id, "kept": row["axis_doc_id"]}, now)
                return self._outgoing_record(conn, row)
            values = dict(state=OutgoingState.SENT.value, axis_doc_id=axis_doc_id,
                          next_attempt_at=None, claimed_at=None, claimed_by=None,
                          last_error=None, updated_at=now)
            conn.execute(update(t.outgoing).where(t.outgoing.c.id == item_id).values(**values))
            detail: dict[str, Any] = {"axis_doc_id": axis_doc_id, "attempts": row["attempts"]}
            if row["state"] != OutgoingState.SENDING.value:
                detail["from_state"] = row["state"]
            self._event(conn, item_id, "outgoing", "sent", EventOutcome.OK, detail, now)
            # The row as written (no read-back: the row was read in this transaction).
            return self._outgoing_record(conn, {**row, **values})

    def record_attempt_failed(self, item_id: str, error: str, *,
                              retry_at: dt.datetime | None = None, permanent: bool = False,
                              now: dt.datetime | None = None) -> OutgoingRecord:
        """An attempt failed. The item becomes ``failed`` (reason kept in ``last_error``) when the
        error is permanent, when no ``retry_at`` is given, or when ``max_attempts`` is reached;
        otherwise it waits until ``retry_at`` in ``packaged`` (or ``queued`` if never packaged).
        A failure reported for an item already ``sent`` is ignored (noted as an event)."""
        now = now or utcnow()
        with self._write() as conn:
            row = self._outgoing_row(conn, item_id, lock=True)
            state = OutgoingState(row["state"])
            if state is OutgoingState.SENT:
                self._event(conn, item_id, "outgoing", "late_failure_ignored", EventOutcome.INFO,
                            {"error": error}, now)
                return self._outgoing_record(conn, row)
            if state in TERMINAL_OUTGOING:
                raise InvalidTransition(f"outgoing item {item_id} is {state.value}; "
                                        "an attempt cannot fail now")
            exhausted = self.max_attempts is not None and row["attempts"] >= self.max_attempts
            c = t.outgoing.c
            if permanent or retry_at is None or exhausted:
                reason = "permanent error" if permanent else (
                    "attempts exhausted" if exhausted or retry_at is None else "no retry")
                conn.execute(update(t.outgoing).where(c.id == item_id).values(
                    state=OutgoingState.FAILED.value, last_error=error, next_attempt_at=None,
                    claimed_at=None, claimed_by=None, updated_at=now))
                self._event(conn, item_id, "outgoing", "failed", EventOutcome.ERROR,
                            {"error": error, "reason": reason, "attempts": row["attempts"]}, now)
            else:
                back = OutgoingState.QUEUED if row["package_sha256"] is None else OutgoingState.PACKAGED
                conn.execute(update(t.outgoing).where(c.id == item_id).values(
                    state=back.value, last_error=error, next_attempt_at=retry_at,
                    claimed_at=None, claimed_by=None, updated_at=now))
                self._event(conn, item_id, "outgoing", "attempt_failed", EventOutcome.RETRY,
                            {"error": error, "attempts": row["attempts"],
                             "retry_at": retry_at.isoformat()}, now)
            return self._outgoing_record(conn, self._outgoing_row(conn, item_id))

    def release_claim(self, item_id: str, *, retry_at: dt.datetime, reason: str,
                      now: dt.datetime | None = None) -> OutgoingRecord:
        """Give a claimed item back without spending its attempt: the failure was nobody's
        document's fault (axis authentication failure, axis unreachable, shutting down)."""
        now = now or utcnow()
        with self._write() as conn:
            row = self._outgoing_row(conn, item_id, lock=True)
            if row["state"] != OutgoingState.SENDING.value:
                return self._outgoing_record(conn, row)
            back = OutgoingState.QUEUED if row["package_sha256"] is None else OutgoingState.PACKAGED
            conn.execute(update(t.outgoing).where(t.outgoing.c.id == item_id).values(
                state=back.value, attempts=max(row["attempts"] - 1, 0),
                next_attempt_at=retry_at, claimed_at=None, claimed_by=None, updated_at=now))
            self._event(conn, item_id, "outgoing", "claim_released", EventOutcome.RETRY,
                        {"reason": reason, "retry_at": retry_at.isoformat()}, now)
            return self._outgoing_record(conn, self._outgoing_row(conn, item_id))

    def requeue(self, item_id: str, *, now: dt.datetime | None = None,
                actor: str = "operator") -> OutgoingRecord:
        """Operator retry: a ``failed`` or ``cancelled`` item goes back in line with its attempts
        reset; a waiting item is made due now. A ``sent`` item is refused: sending it again would
        deliver it twice."""
        now = now or utcnow()
        with self._write() as conn:
            row = self._outgoing_row(conn, item_id, lock=True)
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
            self._event(conn, item_id, "outgoing", "requeued", EventOutcome.OK,
                        {"actor": actor, "from_state": state.value,
                         "previous_error": row["last_error"]}, now)
            return self._outgoing_record(conn, self._outgoing_row(conn, item_id))

    def requeue_failed(self, *, now: dt.datetime | None = None, actor: str = "operator") -> list[str]:
        """``retry --failed``: requeue every failed item; returns their ids."""
        with self._read() as conn:
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
        with self._write() as conn:
            row = self._outgoing_row(conn, item_id, lock=True)
            state = OutgoingState(row["state"])
            if state is OutgoingState.CANCELLED:
                return self._outgoing_record(conn, row)
            if state is OutgoingState.SENT:
                raise InvalidTransition(f"outgoing item {item_id} was already sent",
                                        hint="ask the recipients to take it back (status 13) or revoke it")
            if state is OutgoingState.SENDING:
                raise InvalidTransition(f"outgoing item {item_id} is being sent right now",
                                        hint="wait for the attempt to end; if it fails, cancel it then")
            conn.execute(update(t.outgoing).where(t.outgoing.c.id == item_id).values(
                state=OutgoingState.CANCELLED.value, next_attempt_at=None, updated_at=now))
            self._event(conn, item_id, "outgoing", "cancelled", EventOutcome.INFO,
                        {"actor": actor, "reason": reason, "from_state": state.value}, now)
            return self._outgoing_record(conn, self._outgoing_row(conn, item_id))

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

        The latest outgoing item with that DocumentId sent to ``organ_id`` (else the latest
        with that DocumentId) has its delivery row for ``organ_id`` set to this status unless
        the status already there has a later timestamp: statuses arrive out of order, and an
        older 01 arriving after 03 must not make 03 look undone (history keeps both).
        Returns that item, or None when no outgoing item matches.
        """
        now = now or utcnow()
        identified_by_time = at is not None
        at = at or now
        c, s = t.outgoing.c, t.statuses.c
        try:
            with self._write() as conn:
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
                if item_id is None:
                    item_id = conn.execute(base.order_by(*order).limit(1)).scalar()
                conn.execute(insert(t.statuses).values(
                    outgoing_id=item_id, incoming_id=incoming_id, document_id=document_id,
                    from_organ_id=organ_id, to_organ_id=to_organ_id, code=code,
                    description=description, status_at=at, recorded_at=now))
                if item_id is None:
                    self._event(conn, incoming_id, "incoming", "status_unmatched", EventOutcome.INFO,
                                {"document_id": document_id, "from": organ_id, "code": code}, now)
                    return None
                latest = self._apply_delivery_status(conn, item_id, organ_id, code,
                                                     description, at, now)
                self._event(conn, item_id, "outgoing", "recipient_status",
                            EventOutcome.ERROR if code == "02" else EventOutcome.OK,
                            {"organ_id": organ_id, "code": code, "description": description,
                             "at": at.isoformat(), "latest": latest, "incoming_id": incoming_id},
                            now)
                return self._outgoing_record(conn, self._outgoing_row(conn, item_id))
        except IntegrityError:
            # The same status package recorded concurrently (unique incoming_id): theirs stands.
            with self._read() as conn:
                known = conn.execute(select(s.outgoing_id).where(
                    s.incoming_id == incoming_id).limit(1)).first()
                if known is None:
                    raise
                return self._record_or_none(conn, known[0])

    def _record_or_none(self, conn: Connection, item_id: str | None) -> OutgoingRecord | None:
        if item_id is None:
            return None
        row = conn.execute(select(t.outgoing).where(t.outgoing.c.id == item_id)).mappings().first()
        return None if row is None else self._outgoing_record(conn, row)

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
        with self._read() as conn:
            rows = conn.execute(select(t.statuses).where(or_(s.outgoing_id == key, s.document_id == key))
                                .order_by(s.id)).mappings().all()
        return [StatusRecord(**dict(row)) for row in rows]

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
        with self._read() as conn:
            return self._incoming_record(self._incoming_row(conn, item_id))

    def find_incoming(self, key: str) -> IncomingRecord | None:
        """By journal id, axis DocId, or (latest) DocumentId."""
        i = t.incoming.c
        with self._read() as conn:
            for condition in (i.id == key, i.axis_doc_id == key):
                row = conn.execute(select(t.incoming).where(condition)).mappings().first()
                if row is not None:
                    return self._incoming_record(row)
            row = conn.execute(select(t.incoming).where(i.document_id == key)
                               .order_by(i.created_at.desc(), i.id.desc()).limit(1)).mappings().first()
            return None if row is None else self._incoming_record(row)

    def find_received(self, document_id: str, sender: str | None = None, *,
                      business_types: Iterable[int] | None = None,
                      exclude_id: str | None = None) -> IncomingRecord | None:
        """The first stored received *document* with ``document_id`` (from ``sender`` when
        given), duplicates left out: the original that a revoke, update, take-back or status is
        about. ``business_types`` keeps only those types (a revoke or update reuses its
        original's DocumentId; pass ``(0, 3)`` for originals — a row without a type counts as
        an original). ``exclude_id`` leaves out the item being processed itself."""
        i = t.incoming.c
        query = select(t.incoming).where(
            i.messagetype == MessageType.EDOC.value, i.document_id == document_id,
            i.stored_at.is_not(None), i.duplicate_of.is_(None))
        if sender is not None:
            query = query.where(i.sender == sender)
        if exclude_id is not None:
            query = query.where(i.id != exclude_id)
        if business_types is not None:
            query = query.where(or_(i.business_type.is_(None),
                                    i.business_type.in_(list(business_types))))
        with self._read() as conn:
            row = conn.execute(query.order_by(i.created_at, i.id).limit(1)).mappings().first()
        return None if row is None else self._incoming_record(row)

    def find(self, key: str) -> OutgoingRecord | IncomingRecord | None:
        """What an operator's ID means: an outgoing item first, then an incoming one."""
        return self.find_outgoing(key) or self.find_incoming(key)

    def list_incoming(self, state: IncomingState | str | Iterable[IncomingState | str] | None = None,
                      *, quarantined: bool | None = None, messagetype: str | None = None,
                      limit: int = 100, offset: int = 0) -> list[IncomingRecord]:
        i = t.incoming.c
        query = select(t.incoming)
        states = _states(state)
        if states:
            query = query.where(i.state.in_(states))
        if quarantined is not None:
            query = query.where(i.quarantined == quarantined)
        if messagetype:
            query = query.where(i.messagetype == messagetype)
        with self._read() as conn:
            rows = conn.execute(query.order_by(i.created_at.desc(), i.id.desc())
                                .limit(limit).offset(offset)).mappings()
            return [self._incoming_record(row) for row in rows]

    def record_listed(self, axis_doc_id: str, messagetype: MessageType | str, *,
                      sender: str | None = None, meta: dict[str, Any] | None = None,
                      now: dt.datetime | None = None) -> IncomingRecord:
        """An item appeared in the axis's pending list. Idempotent on the axis DocId: an item
        already known is returned as it is (its state tells the pipeline what is left to do —
        e.g. ``acknowledged`` or later means "acknowledge again, deliver nothing")."""
        now = now or utcnow()
        kind = MessageType(messagetype).value
        try:
            with self._write() as conn:
                existing = conn.execute(select(t.incoming).where(
                    t.incoming.c.axis_doc_id == axis_doc_id)).mappings().first()
                if existing is not None:
                    return self._incoming_record(existing)
                item_id = new_id()
                conn.execute(insert(t.incoming).values(
                    id=item_id, axis_doc_id=axis_doc_id, messagetype=kind,
                    state=IncomingState.LISTED.value, sender=sender, quarantined=False,
                    meta=meta or {}, created_at=now, updated_at=now, instance=self.instance))
                self._event(conn, item_id, "incoming", "listed", EventOutcome.OK,
                            {"axis_doc_id": axis_doc_id, "messagetype": kind, "sender": sender}, now)
                return self._incoming_record(self._incoming_row(conn, item_id))
        except IntegrityError:
            with self._read() as conn:
                existing = conn.execute(select(t.incoming).where(
                    t.incoming.c.axis_doc_id == axis_doc_id)).mappings().first()
                if existing is None:
                    raise
                return self._incoming_record(existing)

    def _advance(self, item_id: str, target: IncomingState | None, event: str,
                 outcome: EventOutcome, detail: dict[str, Any], values: dict[str, Any],
                 now: dt.datetime, *, once_column: str | None = None) -> IncomingRecord:
        """Apply an incoming transition. The state only moves forward; ``once_column`` names a
        timestamp column that, when already set, makes the whole call a no-op (replay)."""
        with self._write() as conn:
            row = self._incoming_row(conn, item_id, lock=True)
            if once_column is not None and row[once_column] is not None:
                return self._incoming_record(row)
            current = IncomingState(row["state"])
            if target is not None and INCOMING_ORDER[target] > INCOMING_ORDER[current]:
                values = {**values, "state": target.value}
            conn.execute(update(t.incoming).where(t.incoming.c.id == item_id)
                         .values(**values, updated_at=now))
            self._event(conn, item_id, "incoming", event, outcome, detail, now)
            return self._incoming_record(self._incoming_row(conn, item_id))

    def record_fetched(self, item_id: str, *, size: int | None = None,
                       now: dt.datetime | None = None) -> IncomingRecord:
        now = now or utcnow()
        with self._read() as conn:
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
        with self._read() as conn:
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
            "instance": self.instance}  # the package is in this server's store
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
        with self._read() as conn:
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
        with self._read() as conn:
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
        with self._read() as conn:
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
        with self._read() as conn:
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
        with self._read() as conn:
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
            i.duplicate_of.is_(None),
            i.sender.is_(None) if sender is None else i.sender == sender,
            i.document_id.is_(None) if document_id is None else i.document_id == document_id,
            i.business_type.is_(None) if business_type is None else i.business_type == business_type)
        if exclude_id is not None:
            query = query.where(i.id != exclude_id)
        with self._read() as conn:
            row = conn.execute(query.order_by(i.stored_at, i.id).limit(1)).mappings().first()
        return None if row is None else self._incoming_record(row)

    def pending_incoming(self) -> list[IncomingRecord]:
        """Stored items whose later steps did not all happen (crash recovery): not yet
        acknowledged, or acknowledged but neither delivered, quarantined, refused nor a duplicate.
        Only this instance's items: their packages are in this server's package store."""
        i = t.incoming.c
        unfinished = or_(
            i.acknowledged_at.is_(None),
            and_(i.delivered_at.is_(None), i.quarantined.is_(False), i.duplicate_of.is_(None),
                 i.state != IncomingState.REFUSED.value))
        query = select(t.incoming).where(
            or_(i.stored_at.is_not(None), i.duplicate_of.is_not(None)), unfinished,
            self._mine(i.instance)
        ).order_by(i.created_at, i.id)
        with self._read() as conn:
            return [self._incoming_record(row) for row in conn.execute(query).mappings()]

    # -- instances -----------------------------------------------------------------------------

    def adopt(self, from_instance: str, *, stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
              force: bool = False, now: dt.datetime | None = None) -> dict[str, list[str]]:
        """Make the unfinished items of instance ``from_instance`` (a server gone for good) this
        instance's, so that this one sends or finishes them.

        What the operator does first: copy the gone server's state directory (the package store,
        ``STATE/packages``) and its exchange ``work/`` claims to this server — or, when they are
        lost, adopt anyway and then ``cancel`` the items whose package is missing (an attempt
        whose stored bytes are missing fails with that reason) so that the DMS sends them anew.

        Adopted: outgoing items not yet ``sent`` (``sending`` ones are put back in line, due
        now; ``failed`` ones so that ``retry`` works here) and incoming items stored but not
        finished. Refused while ``from_instance`` still looks alive (a claim fresher than
        ``stale_after``) unless ``force``. Each item gets an ``adopted`` event. Returns
        ``{"outgoing": [ids], "incoming": [ids]}``.
        """
        now = now or utcnow()
        if from_instance == self.instance:
            raise JournalError(f"instance {from_instance!r} is this instance; nothing to adopt",
                               hint="give the name of the instance that is gone")
        o, i = t.outgoing.c, t.incoming.c
        adopted: dict[str, list[str]] = {"outgoing": [], "incoming": []}
        detail = {"from_instance": from_instance, "to_instance": self.instance}
        with self._write() as conn:
            rows = conn.execute(select(o.id, o.state, o.claimed_at, o.claimed_by, o.package_sha256)
                                .where(o.instance == from_instance,
                                       o.state != OutgoingState.SENT.value)
                                .order_by(o.created_at, o.id).with_for_update()).mappings().all()
            live = [row for row in rows if row["state"] == OutgoingState.SENDING.value
                    and row["claimed_at"] is not None and row["claimed_at"] > now - stale_after]
            if live and not force:
                raise JournalError(
                    f"instance {from_instance!r} claimed {len(live)} item(s) less than "
                    f"{stale_after} ago (e.g. {live[0]['id']} by {live[0]['claimed_by']}); "
                    "it may still be running",
                    hint="stop that connector first, or wait, or adopt with force")
            for row in rows:
                values: dict[str, Any] = {"instance": self.instance, "updated_at": now}
                if row["state"] == OutgoingState.SENDING.value:
                    back = (OutgoingState.QUEUED if row["package_sha256"] is None
                            else OutgoingState.PACKAGED)
                    values.update(state=back.value, next_attempt_at=now, claimed_at=None,
                                  claimed_by=None)
                conn.execute(update(t.outgoing).where(o.id == row["id"]).values(**values))
                self._event(conn, row["id"], "outgoing", "adopted", EventOutcome.INFO,
                            {**detail, "state": row["state"],
                             "previous_owner": row["claimed_by"]}, now)
                adopted["outgoing"].append(row["id"])
            unfinished = or_(
                i.acknowledged_at.is_(None),
                and_(i.delivered_at.is_(None), i.quarantined.is_(False), i.duplicate_of.is_(None),
                     i.state != IncomingState.REFUSED.value))
            in_ids = list(conn.execute(select(i.id).where(i.instance == from_instance, unfinished)
                                       .order_by(i.created_at, i.id)).scalars())
            for item_id in in_ids:
                conn.execute(update(t.incoming).where(i.id == item_id).values(
                    instance=self.instance, updated_at=now))
                self._event(conn, item_id, "incoming", "adopted", EventOutcome.INFO, detail, now)
            adopted["incoming"] = in_ids
            self._event(conn, None, "journal", "instance_adopted", EventOutcome.INFO,
                        {**detail, "outgoing": len(rows), "incoming": len(in_ids),
                         "forced": bool(force and live)}, now)
        return adopted

    def instances(self) -> dict[str, dict[str, int]]:
        """Unfinished item counts per instance (``None``: rows from before instances): what an
        operator looks at before :meth:`adopt`."""
        o, i = t.outgoing.c, t.incoming.c
        result: dict[str, dict[str, int]] = {}
        with self._read() as conn:
            for instance, count in conn.execute(
                    select(o.instance, func.count()).where(
                        o.state.in_([st.value for st in PENDING_OUTGOING]))
                    .group_by(o.instance)):
                result.setdefault(instance, {"outgoing": 0, "incoming": 0})["outgoing"] = count
            for instance, count in conn.execute(
                    select(i.instance, func.count()).where(
                        i.acknowledged_at.is_(None) | and_(
                            i.delivered_at.is_(None), i.quarantined.is_(False),
                            i.duplicate_of.is_(None), i.state != IncomingState.REFUSED.value))
                    .group_by(i.instance)):
                result.setdefault(instance, {"outgoing": 0, "incoming": 0})["incoming"] = count
        return result

    # -- history, counters, housekeeping -------------------------------------------------------

    def events(self, item_id: str | None = None, *, limit: int | None = None) -> list[EventRecord]:
        """An item's history, oldest first (``item_id=None``: the whole log)."""
        e = t.events.c
        query = select(t.events).order_by(e.id)
        if item_id is not None:
            query = query.where(e.item_id == item_id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [EventRecord(id=row["id"], item_id=row["item_id"], item_kind=row["item_kind"],
                                event=row["event"], outcome=row["outcome"],
                                detail=dict(row["detail"] or {}), at=row["at"])
                    for row in conn.execute(query).mappings()]

    def counts_by_state(self) -> dict[str, dict[str, int]]:
        """``{"outgoing": {"queued": 3, ...}, "incoming": {...}}`` with every state present."""
        result = {"outgoing": {s.value: 0 for s in OutgoingState},
                  "incoming": {s.value: 0 for s in IncomingState}}
        with self._read() as conn:
            for name, table in (("outgoing", t.outgoing), ("incoming", t.incoming)):
                rows = conn.execute(select(table.c.state, func.count()).group_by(table.c.state))
                for state, count in rows:
                    result[name][state] = count
        return result

    def oldest_pending_age(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        """Age of the oldest item still on its way: outgoing not yet sent/failed/cancelled, or
        incoming listed but not yet acknowledged and delivered (or parked by policy)."""
        now = now or utcnow()
        o, i = t.outgoing.c, t.incoming.c
        with self._read() as conn:
            oldest_out = conn.execute(select(func.min(o.created_at)).where(
                o.state.in_([s.value for s in PENDING_OUTGOING]))).scalar()
            oldest_in = conn.execute(select(func.min(i.created_at)).where(
                or_(i.acknowledged_at.is_(None),
                    and_(i.delivered_at.is_(None), i.quarantined.is_(False),
                         i.duplicate_of.is_(None), i.state != IncomingState.REFUSED.value)))).scalar()
        # func.min over a TypeDecorator column may come back without the decorator applied.
        candidates = [_aware(value) for value in (oldest_out, oldest_in) if value is not None]
        if not candidates:
            return None
        return max(now - min(candidates), dt.timedelta(0))

    def kv_get(self, key: str) -> str | None:
        with self._read() as conn:
            return conn.execute(select(t.kv.c.value).where(t.kv.c.key == key)).scalar()

    def kv_set(self, key: str, value: str | None, *, now: dt.datetime | None = None) -> None:
        now = now or utcnow()
        with self._write() as conn:
            done = conn.execute(update(t.kv).where(t.kv.c.key == key).values(value=value, updated_at=now))
            if done.rowcount == 0:
                conn.execute(insert(t.kv).values(key=key, value=value, updated_at=now))

    def set_time(self, key: str, when: dt.datetime | None = None) -> None:
        """Store a moment, e.g. ``set_time(KV_LAST_AXIS_CONTACT)`` after an authenticated call."""
        self.kv_set(key, (when or utcnow()).astimezone(dt.timezone.utc).isoformat())

    def get_time(self, key: str) -> dt.datetime | None:
        value = self.kv_get(key)
        return None if value is None else dt.datetime.fromisoformat(value)

    def acquire_lease(self, name: str, *, ttl: dt.timedelta, owner: str | None = None,
                      now: dt.datetime | None = None) -> bool:
        """Hold ``name`` (e.g. "inbound-poller") for ``ttl`` unless another owner holds an
        unexpired lease; renewing one's own lease succeeds. Lets two connectors on one
        PostgreSQL journal run one puller at a time, and survives a holder that died."""
        now = now or utcnow()
        owner = owner or self.owner
        lease = t.leases.c
        try:
            with self._write() as conn:
                row = conn.execute(select(t.leases).where(lease.name == name).with_for_update()
                                   ).mappings().first()
                if row is None:
                    conn.execute(insert(t.leases).values(name=name, owner=owner, expires_at=now + ttl))
                    return True
                if row["owner"] != owner and row["expires_at"] > now:
                    return False
                conn.execute(update(t.leases).where(lease.name == name).values(
                    owner=owner, expires_at=now + ttl))
                return True
        except IntegrityError:
            return False

    def release_lease(self, name: str, *, owner: str | None = None) -> None:
        owner = owner or self.owner
        with self._write() as conn:
            conn.execute(delete(t.leases).where(t.leases.c.name == name, t.leases.c.owner == owner))

    def purge(self, older_than: dt.timedelta, *, dedupe_window: dt.timedelta,
              now: dt.datetime | None = None) -> dict[str, int]:
        """Retention: forget finished items last changed more than ``older_than`` ago, with their
        deliveries, statuses and events, and journal-level events as old.

        Never purged: items still pending; quarantined items (an operator must decide); incoming
        items stored within ``dedupe_window`` (they are what ``find_duplicate`` compares against).
        Received documents on disk are not touched here or anywhere.
        """
        now = now or utcnow()
        cutoff = now - older_than
        incoming_cutoff = min(cutoff, now - dedupe_window)
        o, i, e, s = t.outgoing.c, t.incoming.c, t.events.c, t.statuses.c
        counts: dict[str, int] = {}
        with self._write() as conn:
            old_out = select(o.id).where(o.state.in_([st.value for st in TERMINAL_OUTGOING]),
                                         o.updated_at < cutoff)
            old_in = select(i.id).where(
                i.state.in_([IncomingState.DELIVERED.value, IncomingState.DUPLICATE.value,
                             IncomingState.REFUSED.value]),
                i.acknowledged_at.is_not(None), i.quarantined.is_(False),
                i.updated_at < incoming_cutoff)
            out_ids = list(conn.execute(old_out).scalars())
            in_ids = list(conn.execute(old_in).scalars())
            counts["events"] = 0
            for chunk in _chunks(out_ids + in_ids):
                counts["events"] += conn.execute(delete(t.events).where(e.item_id.in_(chunk))).rowcount
            counts["statuses"] = 0
            for chunk in _chunks(out_ids):
                counts["statuses"] += conn.execute(delete(t.statuses).where(s.outgoing_id.in_(chunk))).rowcount
                conn.execute(delete(t.deliveries).where(t.deliveries.c.outgoing_id.in_(chunk)))
                conn.execute(delete(t.outgoing).where(o.id.in_(chunk)))
            for chunk in _chunks(in_ids):
                conn.execute(delete(t.incoming).where(i.id.in_(chunk)))
            counts["outgoing"] = len(out_ids)
            counts["incoming"] = len(in_ids)
            counts["statuses"] += conn.execute(delete(t.statuses).where(
                s.outgoing_id.is_(None), s.recorded_at < cutoff)).rowcount
            counts["events"] += conn.execute(delete(t.events).where(
                e.item_id.is_(None), e.at < cutoff)).rowcount
            self._event(conn, None, "journal", "purged", EventOutcome.INFO,
                        {**counts, "cutoff": cutoff.isoformat()}, now)
        return counts

    def size_bytes(self) -> int:
        """Bytes the journal occupies (SQLite: database plus WAL file; PostgreSQL: its tables
        with indexes and TOAST)."""
        path = sqlite_path(self.engine)
        if path is not None:
            total = 0
            for candidate in (path, path.with_name(path.name + "-wal")):
                try:
                    total += candidate.stat().st_size
                except FileNotFoundError:
                    pass
            return total
        if self.dialect == "postgresql":
            with self._read() as conn:
                return int(sum(conn.execute(
                    text("SELECT COALESCE(pg_total_relation_size(to_regclass(:name)), 0)"),
                    {"name": name}).scalar() or 0 for name in t.JOURNAL_TABLES))
        return 0


def _states(state) -> list[str]:
    if state is None:
        return []
    if isinstance(state, str):
        return [state.value if hasattr(state, "value") else state]
    return [s.value if hasattr(s, "value") else str(s) for s in state]


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _aware(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
