"""Group commit: several threads' small write transactions committed as one.

WHY: SQLite has one writer at a time, and a journal transition is a short transaction whose
commit waits for an fsync (``synchronous=FULL``). At a hundred documents a second, eight send
threads each recording ``sent`` queued on the writer lock: a transition took a few milliseconds
of its own and waited tens of milliseconds for the others, and the send threads — not the
axis, not the CPU — set the pace. With group commit, the thread that gets the lock takes every
transition waiting at that moment and commits them together: one BEGIN, one fsync, one lock
hand-over for the lot.

Guarantees are those of one transaction per transition: a caller returns only after *its*
transition is committed (or raises its own error). Should any transition of a group fail, the
group is rolled back and each of its transitions runs again in a transaction of its own, so one
bad item neither fails nor commits another's.

Only for transitions that may share a transaction (independent rows; no caller already inside
a journal transaction). PostgreSQL writers run in parallel on row locks, so there each
transition simply runs in its own transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")


class _Pending(Generic[T]):
    """One caller's transition, waiting to be committed by whichever thread gets the lock."""

    __slots__ = ("work", "done", "value", "error")

    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.work = work
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class GroupCommit:
    """Runs ``work(conn)`` callables in shared write transactions.

    ``lock`` is the journal's writer lock (None: no combining, one transaction each);
    ``transaction`` opens a write transaction and yields its connection (it may take ``lock``
    again: the lock is re-entrant)."""

    def __init__(self, lock: threading.RLock | None,
                 transaction: Callable[[], AbstractContextManager[Connection]]) -> None:
        self._lock = lock
        self._transaction = transaction
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending[Any]] = []
        self.groups = 0  # committed groups (diagnostics, tests)
        self.grouped = 0  # transitions committed in them

    def run(self, work: Callable[[Connection], T]) -> T:
        if self._lock is None:
            with self._transaction() as conn:
                return work(conn)
        pending: _Pending[T] = _Pending(work)
        with self._queue_lock:
            self._queue.append(pending)
        with self._lock:
            if not pending.done:  # nobody took it while we waited: commit what is waiting now
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit(group)
        return pending.outcome()

    def _commit(self, group: list[_Pending[Any]]) -> None:
        try:
            with self._transaction() as conn:
                values = [pending.work(conn) for pending in group]
        except BaseException as error:
            if len(group) == 1:
                group[0].error = error
                group[0].done = True
            else:
                for pending in group:  # find the culprit: each on its own
                    self._finish_alone(pending)
            return
        for pending, value in zip(group, values):
            pending.value = value
            pending.done = True
        self.groups += 1
        self.grouped += len(group)

    def _finish_alone(self, pending: _Pending[Any]) -> None:
        try:
            with self._transaction() as conn:
                pending.value = pending.work(conn)
        except BaseException as error:  # handed to its caller, who raises it
            pending.error = error
        pending.done = True
