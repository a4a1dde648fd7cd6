"""What every part of the journal shares: the engine and its transactions, the event log, and
which rows are this installation's.

The journal's parts (:mod:`~connector.journal.outgoing`, :mod:`~connector.journal.incoming`,
:mod:`~connector.journal.statuses`, :mod:`~connector.journal.instances`) are each given one
:class:`JournalCore` and use nothing else of one another except what they are handed: this is
their whole interface to the database.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, or_
from sqlalchemy import true as sa_true

from connector.journal.engine import BEGIN_MODE_OPTION
from connector.journal.records import default_instance, default_owner
from connector.journal.statements import _INSERT_EVENT
from connector.journal.states import EventOutcome


class JournalCore:
    """Transactions, events and ownership for the journal's parts. Thread-safe: each
    transaction uses its own connection from the engine's pool.

    ``max_attempts`` (the ``outbound.max_attempts`` setting) turns a failed attempt into ``failed``
    once that many attempts were made; ``owner`` names this *process* in claims and leases (host
    and pid: a restart is a new owner). ``instance`` names this *installation* (stable across
    restarts; default the host name — pass the folder adapter's instance name): new items are
    stamped with it and only its items are handed out, unless ``any_instance`` is true.
    ``agency`` is the unit (OrganId) new items belong to ("" for a journal opened without a
    configuration, e.g. by a test).
    """

    def __init__(self, engine: Engine, *, max_attempts: int | None = None,
                 owner: str | None = None, instance: str | None = None,
                 any_instance: bool = False, agency: str = "") -> None:
        self.engine = engine
        self.agency = agency
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
        self.returning = bool(getattr(engine.dialect, "update_returning", False))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: on SQLite it takes the write lock up front (BEGIN IMMEDIATE)."""
        with self._write_lock or nullcontext():
            with self.engine.connect().execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"}) as conn:
                with conn.begin():
                    yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    def mine(self, column: Any) -> ColumnElement[bool]:
        """Rows this instance may work on: its own, and rows from before instances existed."""
        if self.any_instance:
            return sa_true()
        return or_(column == self.instance, column.is_(None))

    def of_unit(self, column: Any) -> ColumnElement[bool]:
        """Rows of this journal's unit: in a hub, each unit's pipelines work only on its own
        items (a unit's package is signed with its key and sent with its credentials)."""
        return column == self.agency

    @staticmethod
    def event_row(item_id: str | None, item_kind: str, name: str, outcome: EventOutcome | str,
                  detail: dict[str, Any] | None, at: dt.datetime) -> dict[str, Any]:
        """One row of the event log, for a batch insert."""
        return {"item_id": item_id, "item_kind": item_kind, "event": name,
                "outcome": outcome.value if isinstance(outcome, EventOutcome) else outcome,
                "detail": detail or {}, "at": at}

    @classmethod
    def event(cls, conn: Connection, item_id: str | None, item_kind: str, name: str,
              outcome: EventOutcome | str, detail: dict[str, Any] | None, at: dt.datetime) -> None:
        """Append an event in the caller's transaction (with the state change it records)."""
        conn.execute(_INSERT_EVENT, cls.event_row(item_id, item_kind, name, outcome, detail, at))
