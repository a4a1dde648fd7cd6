"""The journal: durable state of every item and the only way to change it.

Every public method that changes state is one transaction that updates the item's row *and*
appends its event to the ``events`` table, so the history can never disagree with the state. The
pipelines call a transition after each step succeeds (or fails); a transition repeated after a
crash is a no-op, so every step may be redone safely.

Delivery guarantee (outbound): at-least-once. An item is claimed (``sending``) before the request
to the axis and marked ``sent`` after the answer. If the process dies in between, the item is found
in ``sending`` and sent again (``outgoing.recover_interrupted`` at start-up, or
``outgoing.claim_for_sending`` once a claim is older than ``stale_after``); the same stored bytes
go out, and receivers de-duplicate on the axis DocId and on (sender, DocumentId, business type,
package SHA-256).

Inbound: a document is acknowledged to the axis only after ``record_stored`` committed, and
``find_duplicate`` plus the unique axis DocId make a redelivery harmless.

Two connectors on one PostgreSQL journal: each item remembers the ``instance`` that took it in,
because its stored package (and, outgoing, its folder claim in ``work/``) lives on that
instance's server. ``claim_for_sending``, ``recover_interrupted`` and ``pending_incoming`` only
hand out this instance's items (and rows without an instance, written by an older connector),
unless the journal was opened with ``any_instance=True`` (package store and exchange folder on
storage both servers share). When a server is gone for good, an operator makes its items this
instance's with ``journal.ownership.adopt`` after restoring its state directory and ``work/`` here —
or cancels them and lets the DMS send again. Inbound polls are serialised by the
``inbound-poller`` lease (:meth:`Journal.acquire_lease`).

Layout: this module holds :class:`Journal` itself — opening and closing, the event log,
key/value moments, leases, size and retention — composed of one part per concern, each given the
shared :class:`~connector.journal.core.JournalCore` (transactions, the SQLite writer lock, events,
the instance filter): ``journal.outgoing`` (:mod:`~connector.journal.outgoing`),
``journal.incoming`` (:mod:`~connector.journal.incoming`), ``journal.recipients``
(:mod:`~connector.journal.statuses`) and ``journal.ownership`` (:mod:`~connector.journal.instances`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Engine,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

from connector.journal import schema as t
from connector.journal.core import JournalCore
from connector.journal.directory import AgencyDirectoryRecords
from connector.journal.engine import create_journal_engine, sqlite_path
from connector.journal.incoming import IncomingTransitions
from connector.journal.instances import InstanceAdoption
from connector.journal.outgoing import OutgoingTransitions
from connector.journal.records import EventRecord, IncomingRecord, OutgoingRecord, utcnow
from connector.journal.rows import _aware, _chunks
from connector.journal.schema_version import HEAD_REVISION, stored_revision
from connector.journal.states import (
    PENDING_OUTGOING,
    TERMINAL_OUTGOING,
    EventOutcome,
    IncomingState,
    OutgoingState,
)
from connector.journal.statuses import RecipientStatuses

KV_LAST_AXIS_CONTACT = "axis.last_successful_contact"
KV_LAST_POLL = "axis.last_successful_poll"
KV_OUTBOX_REFUSED = "outbox.refused_entries"
KV_DELIVERY_PAUSED = "inbox.delivery_paused"
KV_UNIT_PAUSED = "unit.paused"
"""Why a unit of the daemon does not work (its start failed: secret refused, certificate
missing, folder unwritable); per unit (``unit_key``); absent: it works."""
KV_CERTIFICATE_COVERAGE = "certificate.coverage_end"
"""Until when some key of the unit can sign (the daemon's key ring, written at each load), so
that ``units`` shows the days left without reading a key or its password. Per unit: the key is
``unit_key(KV_CERTIFICATE_COVERAGE, organ_id)``."""


def unit_key(key: str, organ_id: str) -> str:
    """The journal key of one unit's value (a hub keeps one per unit)."""
    return f"{key}:{organ_id}"
"""Why delivery of received items to the agency side waits (pipeline/delivery_backoff.py)."""
"""JSON object: outbox entries that cannot be claimed, by name, with the reason."""


class Journal:
    """Durable state of outgoing and incoming items, in four parts over one
    :class:`~connector.journal.core.JournalCore`: ``outgoing`` (documents and statuses we send),
    ``incoming`` (what the axis lists for us), ``recipients`` (the statuses receivers send back
    about ours) and ``ownership`` (which installation owns an item; adoption). The journal
    itself holds what concerns all of them: the event log, key/value moments, leases, size and
    retention. Thread-safe: each call uses its own connection from the engine's pool.

    The arguments are :class:`~connector.journal.core.JournalCore`'s.
    """

    def __init__(self, engine: Engine, *, max_attempts: int | None = None,
                 owner: str | None = None, instance: str | None = None,
                 any_instance: bool = False, agency: str = "") -> None:
        self.core = JournalCore(engine, max_attempts=max_attempts, owner=owner,
                                instance=instance, any_instance=any_instance, agency=agency)
        self.outgoing = OutgoingTransitions(self.core)
        self.incoming = IncomingTransitions(self.core)
        self.recipients = RecipientStatuses(self.core, self.outgoing)
        self.ownership = InstanceAdoption(self.core)
        self.directory = AgencyDirectoryRecords(self.core)

    @property
    def engine(self) -> Engine:
        return self.core.engine

    @property
    def owner(self) -> str:
        return self.core.owner

    @property
    def instance(self) -> str:
        return self.core.instance

    @property
    def agency(self) -> str:
        """The unit (OrganId) this journal's new items belong to."""
        return self.core.agency

    @classmethod
    def open(cls, url: str | URL, *, max_attempts: int | None = None, owner: str | None = None,
             instance: str | None = None, any_instance: bool = False,
             migrate: bool = True, agency: str = "") -> Journal:
        """Connect, and upgrade the schema to the newest revision (creating it when empty).
        ``agency`` is the configured unit's OrganId: new items get it, and a migration that
        gives every item its unit (revision 0006) assigns the existing ones to it."""
        engine = create_journal_engine(url)
        try:
            if migrate and stored_revision(engine) != HEAD_REVISION:
                # Imported here: Alembic stays out of the process unless a migration is due
                # (connector/journal/schema_version.py says why).
                from connector.journal.migrate import upgrade_to_head

                upgrade_to_head(engine, agency=agency)
        except Exception:
            engine.dispose()
            raise
        return cls(engine, max_attempts=max_attempts, owner=owner, instance=instance,
                   any_instance=any_instance, agency=agency)

    def for_agency(self, agency: str) -> Journal:
        """The same journal (engine, instance, policy) as another unit of a hub sees it: its
        new items are that unit's, and its work queries hand out only that unit's items.
        Closing the view leaves the engine open; it belongs to the journal that opened it."""
        core = self.core
        view = Journal(core.engine, max_attempts=core.max_attempts, owner=core.owner,
                       instance=core.instance, any_instance=core.any_instance, agency=agency)
        view._primary = self._primary and agency == core.agency
        view._view = True
        return view

    _primary = True  # the unit the journal was opened for keeps the single-agency keys
    _view = False  # made by for_agency: the engine belongs to another Journal

    def unit_key(self, key: str) -> str:
        """Where this unit keeps a per-unit value (last poll, delivery pause, refused outbox
        entries, the poller lease): the journal a connector opened keeps the single-agency key,
        so a single-agency journal reads as before; each other unit of a hub has its own."""
        return key if self._primary else unit_key(key, self.agency)

    def close(self) -> None:
        if not self._view:
            self.engine.dispose()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def dialect(self) -> str:
        return self.core.dialect

    def record_event(self, item_id: str | None, item_kind: str, name: str, *,
                     outcome: EventOutcome | str = EventOutcome.INFO,
                     detail: dict[str, Any] | None = None, now: dt.datetime | None = None) -> None:
        """Append an event that is not a state change (e.g. a delivery retry on the agency side,
        an axis contact problem). ``item_kind`` is ``outgoing``, ``incoming`` or ``journal``."""
        with self.core.write() as conn:
            self.core.event(conn, item_id, item_kind, name, outcome, detail, now or utcnow())

    def find(self, key: str) -> OutgoingRecord | IncomingRecord | None:
        """What an operator's ID means: an outgoing item first, then an incoming one."""
        return self.outgoing.find_outgoing(key) or self.incoming.find_incoming(key)

    # -- history, counters, housekeeping -------------------------------------------------------

    def events(self, item_id: str | None = None, *, limit: int | None = None) -> list[EventRecord]:
        """An item's history, oldest first (``item_id=None``: the whole log)."""
        e = t.events.c
        query = select(t.events).order_by(e.id)
        if item_id is not None:
            query = query.where(e.item_id == item_id)
        if limit is not None:
            query = query.limit(limit)
        with self.core.read() as conn:
            return [EventRecord(id=row["id"], item_id=row["item_id"], item_kind=row["item_kind"],
                                event=row["event"], outcome=row["outcome"],
                                detail=dict(row["detail"] or {}), at=row["at"])
                    for row in conn.execute(query).mappings()]

    def counts_by_state(self) -> dict[str, dict[str, int]]:
        """``{"outgoing": {"queued": 3, ...}, "incoming": {...}}`` with every state present."""
        result = {"outgoing": {s.value: 0 for s in OutgoingState},
                  "incoming": {s.value: 0 for s in IncomingState}}
        with self.core.read() as conn:
            for name, table in (("outgoing", t.outgoing), ("incoming", t.incoming)):
                rows = conn.execute(select(table.c.state, func.count()).group_by(table.c.state))
                for state, count in rows:
                    result[name][state] = count
        return result

    def counts_by_agency(self) -> dict[str, dict[str, dict[str, int]]]:
        """:meth:`counts_by_state` per unit: ``{organ_id: {"outgoing": {...}, "incoming": {...}}}``
        for every unit that has items (one the configuration no longer names included)."""
        result: dict[str, dict[str, dict[str, int]]] = {}
        with self.core.read() as conn:
            for name, table in (("outgoing", t.outgoing), ("incoming", t.incoming)):
                rows = conn.execute(select(table.c.agency, table.c.state, func.count())
                                    .group_by(table.c.agency, table.c.state))
                for agency, state, count in rows:
                    unit = result.setdefault(agency, {
                        "outgoing": {s.value: 0 for s in OutgoingState},
                        "incoming": {s.value: 0 for s in IncomingState}})
                    unit[name][state] = count
        return result

    def oldest_pending_age(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        """Age of the oldest item still on its way: outgoing not yet sent/failed/cancelled, or
        incoming listed but not yet acknowledged and delivered (or parked by policy)."""
        now = now or utcnow()
        o, i = t.outgoing.c, t.incoming.c
        with self.core.read() as conn:
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
        with self.core.read() as conn:
            return conn.execute(select(t.kv.c.value).where(t.kv.c.key == key)).scalar()

    def kv_set(self, key: str, value: str | None, *, now: dt.datetime | None = None) -> None:
        self.kv_set_many({key: value}, now=now)

    def kv_set_many(self, values: dict[str, str | None], *, now: dt.datetime | None = None) -> None:
        """Several keys in one transaction (one commit, one fsync)."""
        now = now or utcnow()
        with self.core.write() as conn:
            for key, value in values.items():
                done = conn.execute(update(t.kv).where(t.kv.c.key == key)
                                    .values(value=value, updated_at=now))
                if done.rowcount == 0:
                    conn.execute(insert(t.kv).values(key=key, value=value, updated_at=now))

    def set_time(self, key: str, when: dt.datetime | None = None) -> None:
        """Store a moment, e.g. ``set_time(KV_LAST_AXIS_CONTACT)`` after an authenticated call."""
        self.set_times([key], when)

    def set_times(self, keys: list[str], when: dt.datetime | None = None) -> None:
        """Store one moment under several keys, in one transaction."""
        moment = (when or utcnow()).astimezone(dt.timezone.utc).isoformat()
        self.kv_set_many(dict.fromkeys(keys, moment))

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
            with self.core.write() as conn:
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
        with self.core.write() as conn:
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
        with self.core.write() as conn:
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
                counts["statuses"] += conn.execute(
                    delete(t.statuses).where(s.outgoing_id.in_(chunk))).rowcount
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
            self.core.event(conn, None, "journal", "purged", EventOutcome.INFO,
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
            with self.core.read() as conn:
                return int(sum(conn.execute(
                    text("SELECT COALESCE(pg_total_relation_size(to_regclass(:name)), 0)"),
                    {"name": name}).scalar() or 0 for name in t.JOURNAL_TABLES))
        return 0
