"""One direction: take from the agency side → journal → package + sign once → push to the axis.

The steps and why they are in this order:

1. **Intake** (:meth:`Outbound.intake`): each side's ``claim_ready()`` hands over the items it
   claimed; each is recorded with ``journal.enqueue`` (idempotent on ``(source, source_ref)``, so
   the items a side hands over again after a restart are recognised). An item the side could not
   read (``problem``) or addressed to an OrganId the axis does not list fails at once, with the
   reason, instead of after a round trip. A side item whose journal row is already finished
   (the process died between the journal and the side) is finished on the side now.
2. **Claim** (:meth:`Outbound.dispatch`): ``journal.claim_for_sending`` takes items for the
   pipeline threads, a batch at a time; each claim counts an attempt.
3. **Package** (in the send worker, only while the item is claimed, so two workers never
   package one item): documents are built from their metadata with the agency's identity,
   written and signed in one streaming pass into the package store (durable before anything is
   sent; the store keeps the first bytes stored for an item). The journal records the package's
   SHA-256 with the outcome of its first send: in the same transaction as ``sent``, or just
   before a failure is recorded. Ready packages are read, and signed when unsigned. Statuses
   (and the take-back request, status 13) become one package per receiver, stored as one set —
   one journal item with several packages; a retry resends the whole set and receivers
   de-duplicate.
4. **Send**: every attempt sends the stored bytes (checked against the journal's SHA-256), in
   one of the ``outbound.concurrency`` send slots.
   Accepted → ``record_sent`` (axis DocId) → ``side.mark_sent``. Refused for good → ``failed``
   with the axis's reason → ``side.mark_failed`` with the retry command. Transient → retried with
   exponential backoff and jitter, capped, until ``outbound.max_attempts``. Authentication
   refused → the claim is released without spending the attempt, sending pauses and readiness
   turns red: no document is at fault.

After a crash an item found in ``sending`` is sent again (at-least-once): receivers
de-duplicate on the axis DocId and on (sender, DocumentId, business type, SHA-256).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from structlog.contextvars import bound_contextvars

from connector.axis.errors import AxisAuthError, PermanentAxisError
from connector.dms.base import (
    Failure,
    OutgoingItem,
    OutgoingKind,
    Receipt,
    StatusRequest,
)
from connector.edxml.model import StatusCode
from connector.errors import (
    CertificateError,
    InputError,
    SignerUnavailable,
    TokenPinRefused,
    describe_error,
)
from connector.journal import (
    KV_OUTBOX_REFUSED,
    NewOutgoing,
    OutgoingRecord,
    OutgoingState,
    Packaged,
)
from connector.journal.package_store import PackageStore, sha256_of
from connector.logs import get_logger
from connector.pipeline import statuses
from connector.pipeline.context import CONNECTOR_SOURCE, PipelineContext
from connector.pipeline.outbound_build import PackageBuilder, unknown_recipients_reason

log = get_logger(__name__)

PIPELINE_THREADS_PER_SLOT = 2
"""Threads that carry items through packaging, sending and archiving, per send slot.

WHY more threads than slots: ``outbound.concurrency`` bounds the requests the axis sees at once,
and a thread holds a slot only for the HTTP request. Before and after it, the same thread waits
for a packaging worker and for the fsyncs of the journal and of the archive move; with one
thread per slot the slots stood idle during those waits (at 4 slots the pipeline topped out
near 85 documents a second with both cores partly idle)."""

MIN_INTAKE_CHUNK = 8
"""The fewest items a side hands over per outbound turn (see :attr:`Outbound.intake_chunk`)."""

SLOT_POLL_SECONDS = 0.25
"""How often a thread waiting for a send slot looks whether the daemon is stopping."""

RELEASE_WAIT = dt.timedelta(seconds=5)
"""How soon an item is tried again when it was released for a reason that is nobody's fault."""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def retry_delay(attempts: int, initial: float, maximum: float,
                rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: ``initial * 2**(attempts-1)``
    capped at ``maximum``, then "equal jitter" (between half and all of it), so that items that
    failed together in one outage do not all come back in the same second."""
    base = min(maximum, initial * (2 ** max(attempts - 1, 0)))
    return base / 2 + rng() * base / 2


def retry_command(item_id: str) -> str:
    return f"edxml-connector retry {item_id}"


def receipt_for(record: OutgoingRecord) -> Receipt:
    """What the DMS sees about an outgoing item (receipt file or write-back columns)."""
    recipients: dict[str, dict[str, Any]] = {}
    for delivery in record.deliveries:
        recipients[delivery.organ_id] = {
            "status": delivery.status_code, "description": delivery.description,
            "at": delivery.status_at.isoformat() if delivery.status_at else None}
    sent_at = record.updated_at if record.state is OutgoingState.SENT else None
    return Receipt(journal_id=record.id, document_id=record.document_id, state=record.state.value,
                   axis_doc_id=record.axis_doc_id, sent_at=sent_at, recipients=recipients,
                   warnings=renamed_warnings(record.meta.get("renamed") or {}))


def report_signer_unavailable(health: Any, error: SignerUnavailable) -> None:
    """Readiness and the metric say why signing waits (``health``, may be None); the log says
    it once per change, not once per document — for the daemon's start as for a send."""
    changed = health.set_signer_problem(error.reason, error.one_line()) if health is not None else True
    if changed:
        log.error("signing_paused", reason=error.reason, error=error.one_line(),
                  note="documents wait in the journal" + (
                      "; the PIN is not tried again until a reload"
                      if isinstance(error, TokenPinRefused) else
                      "; signing resumes by itself when the token answers"))


def renamed_warnings(renamed: dict[str, str]) -> list[str]:
    """One line per recipient given by an old code (Decision 20/2020, 09/2025)."""
    return [f"recipient {old} is an old code: sent to its current code {new}"
            for old, new in renamed.items()]


def item_from_record(record: OutgoingRecord) -> OutgoingItem:
    """Enough of the side's item to tell the side about a result after a restart: both sides
    find their item again from ``source_ref`` alone."""
    return OutgoingItem(source=record.source, source_ref=record.source_ref,
                        kind=OutgoingKind(record.kind),
                        display_name=record.meta.get("display_name"))


class _Released(Exception):
    """The claimed item was given back (nobody's fault); nothing else to record."""


class Outbound:
    """The outbound pipeline of one connector. Thread-safe; sends run in a bounded pool."""

    def __init__(self, runtime: PipelineContext, *, metrics: Any = None, health: Any = None,
                 rng: Callable[[], float] = random.random,
                 auth_pause_seconds: float | None = None, executor: Any = None,
                 wake: Any = None) -> None:
        """``executor`` and ``wake`` are a hub's, shared by its units (one pool of send
        threads and one outbound loop for all of them); by default the pipeline has its own."""
        self.runtime = runtime
        self.journal = runtime.journal
        self.settings = runtime.settings.outbound
        self.metrics = metrics
        self.health = health
        self._rng = rng
        self.auth_pause = (auth_pause_seconds if auth_pause_seconds is not None
                           else min(max(self.settings.retry_initial_seconds, 1.0), 300.0))
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], OutgoingItem] = {}
        self._inflight: set[str] = set()
        self._idle = threading.Condition(self._lock)
        self._unfinished_side: dict[str, Callable[[], None]] = {}
        self._paused_until = 0.0
        self.paused_reason: str | None = None
        self.wake = wake if wake is not None else threading.Event()
        self._dispatch_requested = threading.Event()
        self.stopping = threading.Event()
        self._refused_seen: dict[str, dict[str, str]] = {}
        self.threads = PIPELINE_THREADS_PER_SLOT * self.settings.concurrency
        self._send_slots = threading.BoundedSemaphore(self.settings.concurrency)
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=self.threads,
                                                        thread_name_prefix="send")

    # ============================================================================ intake
    def intake(self, side: Any, limit: int | None = None) -> int:
        """Take what ``side`` has ready; returns how many items it handed over.

        The whole batch is recorded in one journal transaction (``enqueue_many``: one commit
        instead of one per item — at 100 items a second that is most of the intake's cost);
        should that fail, each item is tried on its own so that one bad item cannot hold back
        the others."""
        items = side.claim_ready(limit)
        self._note_refused(side)
        described: list[tuple[OutgoingItem, NewOutgoing]] = []
        for item in items:
            try:
                kind, document_id, business_type, recipients, meta = self._item_summary(item)
                meta["display_name"] = item.display_name
                described.append((item, NewOutgoing(
                    side.name, item.source_ref, kind, document_id=document_id,
                    business_type=business_type, recipients=tuple(recipients), meta=meta)))
            except Exception as error:  # one item must not stop the others
                self._intake_failed(side, item, error)
        try:
            records = self.journal.outgoing.enqueue_many([new for _, new in described])
        except Exception:
            records = None
        for index, (item, new) in enumerate(described):
            try:
                record = records[index] if records is not None else self.journal.outgoing.enqueue(
                    new.source, new.source_ref, new.kind, document_id=new.document_id,
                    business_type=new.business_type, recipients=new.recipients, meta=new.meta)
                self._take(side, item, record, list(new.recipients))
            except Exception as error:  # one item must not stop the others
                self._intake_failed(side, item, error)
        return len(items)

    def _note_refused(self, side: Any) -> None:
        """Publish the entries ``side`` cannot claim (journal, for ``status``; metric) when
        they change, so that an operator can always see why something stays in the outbox."""
        refused = dict(getattr(side, "refused_entries", None) or {})
        if refused == self._refused_seen.get(side.name, {}):
            return
        self._refused_seen[side.name] = refused
        every = {name: reason for seen in self._refused_seen.values()
                 for name, reason in seen.items()}
        self.journal.kv_set(self.journal.unit_key(KV_OUTBOX_REFUSED), json.dumps(every, ensure_ascii=False)
                            if every else None)
        if self.metrics is not None:
            self.metrics.outbox_refused.set(len(every))

    @staticmethod
    def _intake_failed(side: Any, item: OutgoingItem, error: Exception) -> None:
        log.error("outgoing_intake_failed", source=side.name, source_ref=item.source_ref,
                  item=item.display_name, error=describe_error(error), exc_info=True)

    def _take(self, side: Any, item: OutgoingItem, record: OutgoingRecord,
              recipients: list[str]) -> None:
        """The item is in the journal: remember it for packaging, or finish it at once."""
        with self._lock:
            self._items[(side.name, item.source_ref)] = item
        log.info("outgoing_enqueued", item_id=record.id, source=side.name,
                 source_ref=item.source_ref, item=item.display_name, kind=record.kind,
                 document_id=record.document_id, state=record.state.value)
        if record.state is OutgoingState.SENT:
            self._tell_side_sent(record)
            return
        if record.state in (OutgoingState.FAILED, OutgoingState.CANCELLED):
            self._tell_side_failed(record)
            return
        if record.state is OutgoingState.SENDING or record.attempts:
            return  # already under way (found again after a restart)
        if item.problem is not None:
            self._fail_now(record, item.problem.one_line())
            return
        unknown = self.runtime.directory.unknown(recipients) if self.settings.check_recipients else []
        if unknown:
            self._fail_now(record, _unknown_reason(unknown))
            return
        self.request_dispatch()

    def _item_summary(self, item: OutgoingItem
                      ) -> tuple[str, str | None, int | None, list[str], dict]:
        """(journal kind, DocumentId, business type, recipients, meta) of a side's item, as far
        as it is known before packaging."""
        meta: dict[str, Any] = {}
        if item.problem is not None:
            return item.kind.value, None, None, [], meta
        if item.kind is OutgoingKind.DOCUMENT and item.metadata is not None:
            metadata = item.metadata
            if metadata.take_back is not None:
                take_back = metadata.take_back
                meta["take_back"] = True
                return (OutgoingKind.STATUS.value, take_back.document_id, None,
                        list(take_back.to), meta)
            recipients = [o.organ_id for o in metadata.to]
            if self.settings.check_recipients:
                resolution = self.runtime.directory.resolve(recipients)
                if resolution.renamed:
                    # The axis's `to` carries the current codes; the package is not rewritten.
                    meta["renamed"] = resolution.renamed
                    recipients = resolution.current
                    log.warning("recipient_code_renamed", item=item.display_name,
                                renamed=resolution.renamed,
                                note="sent to the current codes; update the DMS's address book")
            return (OutgoingKind.DOCUMENT.value, metadata.document_id,
                    int(metadata.business.type.code), recipients, meta)
        if item.kind is OutgoingKind.STATUS and item.status is not None:
            request = item.status
            if not request.to:
                addressees = _default_addressees(self.journal, request)
                if not addressees:
                    item.problem = InputError(
                        f"no recipient: the status names no 'to' and the journal has no "
                        f"document with DocumentId {request.document_id!r} to answer",
                        file=item.display_name, element="to",
                        hint="add 'to: [ORGAN_ID]' to the status file")
                    return item.kind.value, request.document_id, None, [], meta
                request.to = addressees
            meta["status"] = request.to_json()
            return OutgoingKind.STATUS.value, request.document_id, None, list(request.to), meta
        return item.kind.value, None, None, [], meta

    def enqueue_status(self, key: str, request: StatusRequest, *,
                       reason: str | None = None) -> OutgoingRecord:
        """An outgoing status the connector itself decided on (01 on arrival, 02 on a refusal
        from quarantine): source ``connector``, ``key`` makes it idempotent — one already queued
        is returned as it is, without a log line (a delivery retried every poll asks again)."""
        known = self.journal.outgoing.find_by_source(CONNECTOR_SOURCE, key)
        if known is not None:
            return known
        record = statuses.enqueue_status(self.journal, request, source=CONNECTOR_SOURCE,
                                         source_ref=key, display_name=key,
                                         meta={"reason": reason})
        log.info("outgoing_enqueued", item_id=record.id, source=CONNECTOR_SOURCE, source_ref=key,
                 kind="status", code=request.code, document_id=request.document_id,
                 to=list(request.to))
        self.request_dispatch()
        return record

    def _fail_now(self, record: OutgoingRecord, reason: str) -> None:
        failed = self.journal.outgoing.record_attempt_failed(record.id, reason, permanent=True)
        log.error("outgoing_failed", item_id=record.id, document_id=record.document_id,
                  reason=reason, attempts=failed.attempts)
        self._tell_side_failed(failed)

    # ============================================================================ side results
    def _side_item(self, record: OutgoingRecord) -> tuple[Any, OutgoingItem] | None:
        side = self.runtime.sides.get(record.source)
        if side is None:
            return None
        with self._lock:
            item = self._items.get((record.source, record.source_ref))
        return side, item or item_from_record(record)

    def _tell_side_sent(self, record: OutgoingRecord) -> None:
        found = self._side_item(record)
        if found is None:
            return
        side, item = found
        self._side_call(record.id, lambda: side.mark_sent(item, receipt_for(record)), "mark_sent")
        self._forget(record)

    def _tell_side_failed(self, record: OutgoingRecord) -> None:
        found = self._side_item(record)
        if found is None:
            return
        side, item = found
        reason = record.last_error or ("cancelled by an operator"
                                       if record.state is OutgoingState.CANCELLED else "failed")
        failure = Failure(journal_id=record.id, reason=reason, attempts=record.attempts,
                          failed_at=record.updated_at, retry_command=retry_command(record.id))
        self._side_call(record.id, lambda: side.mark_failed(item, failure), "mark_failed")
        self._forget(record)

    def update_side_receipt(self, record: OutgoingRecord) -> None:
        """A recipient's status changed: refresh the receipt the DMS reads."""
        found = self._side_item(record)
        if found is None or record.state is not OutgoingState.SENT:
            return
        side, item = found
        self._side_call(record.id, lambda: side.update_receipt(item, receipt_for(record)),
                        "update_receipt")

    def _side_call(self, item_id: str, call: Callable[[], None], what: str) -> None:
        """Tell the side; on failure keep the call and repeat it each cycle (side methods are
        idempotent), so a full disk or a DMS database outage delays the result, never loses it."""
        try:
            call()
        except Exception as error:
            log.error("agency_side_update_failed", item_id=item_id, call=what,
                      error=describe_error(error), retry="next outbound cycle")
            with self._lock:
                self._unfinished_side[item_id] = call
            return
        with self._lock:
            self._unfinished_side.pop(item_id, None)

    def retry_side_updates(self) -> None:
        with self._lock:
            pending = list(self._unfinished_side.items())
        for item_id, call in pending:
            self._side_call(item_id, call, "retry")

    def _forget(self, record: OutgoingRecord) -> None:
        with self._lock:
            self._items.pop((record.source, record.source_ref), None)

    # ============================================================================ dispatch
    @property
    def paused(self) -> bool:
        return time.monotonic() < self._paused_until

    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def dispatch(self) -> int:
        """Claim items for the send slots and start sending them.

        WHY claims run ahead of the threads: :attr:`threads` carry items (package, send,
        archive), and up to as many claimed items more wait in the pool's queue. A claim is one
        journal transaction (with its fsync) however many items it takes, so claiming only when
        at least a thread's worth of the queue is empty takes items a batch at a time instead
        of one per finished item — at a hundred documents a second that was a tenth of the
        daemon's CPU. A waiting item is ``sending`` in the journal a moment before its send
        starts; if the daemon stops meanwhile, the item gives its claim back
        (``shutting down``)."""
        if self.stopping.is_set() or self.paused:
            return 0
        with self._lock:
            claimed = len(self._inflight)
        if claimed > self.threads:
            return 0  # every thread is busy and the queue still holds a batch
        records = self.journal.outgoing.claim_for_sending(2 * self.threads - claimed)
        for record in records:
            with self._lock:
                self._inflight.add(record.id)
            self._executor.submit(self._process_for_unit, record)
        return len(records)

    @property
    def intake_chunk(self) -> int:
        """Items taken from a side per turn. WHY a bound: when a hundred documents land at once,
        taking (claiming, parsing, journalling) all of them before the first dispatch kept every
        send slot idle for that whole time; a chunk of what the pipeline holds keeps it fed
        while the rest is taken in the next turns (the loop turns again at once)."""
        return max(MIN_INTAKE_CHUNK, 2 * self.threads)

    def request_dispatch(self) -> None:
        """Something may be due in the journal (a slot freed, an item taken, a retry time
        come): the next turn claims."""
        self._dispatch_requested.set()
        self.wake.set()

    def cycle(self, sides: Iterable[Any] | None = None, *, wait: bool = False,
              timeout: float = 30.0, when_asked: bool = False) -> None:
        """One turn: intake from ``sides`` (default: every side; at most :attr:`intake_chunk`
        items each), repeat side updates that failed, dispatch. ``wait=True`` (tests, ``send``)
        takes everything the sides have and waits until no send is in flight.

        ``when_asked`` (the daemon): claim from the journal only when this turn took items or a
        dispatch was asked for (:meth:`request_dispatch`: a freed slot, a retry time come, the
        retry sweep's answer). WHY: a hub's outbound loop turns for a unit whenever its outbox
        may have changed — each periodic rescan of 500 outboxes — and a claim is a journal write
        transaction; an idle unit's turn is then a directory listing, nothing more."""
        chunk = None if wait else self.intake_chunk
        took = False
        for side in (self.runtime.sides.values() if sides is None else sides):
            if self.stopping.is_set():
                return
            try:
                taken = self.intake(side, chunk)
                took = took or taken > 0
                if taken >= (chunk or float("inf")):
                    self.wake.set()  # more may be waiting: take it next turn, after dispatching
            except Exception as error:
                log.error("outgoing_intake_failed", source=getattr(side, "name", "?"),
                          error=describe_error(error))
        self.retry_side_updates()
        asked = self._dispatch_requested.is_set()
        self._dispatch_requested.clear()
        if took or asked or wait or not when_asked:
            self.dispatch()
        if wait:
            self.wait_idle(timeout)

    @property
    def side_updates_pending(self) -> bool:
        """Side updates (sent/failed write-backs) that failed and wait to be repeated."""
        with self._lock:
            return bool(self._unfinished_side)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is in flight and nothing due is left to dispatch."""
        deadline = time.monotonic() + timeout
        while True:
            with self._idle:
                while self._inflight:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._idle.wait(remaining)
            if self.paused or self.dispatch() == 0:
                return True

    def shutdown(self, timeout: float) -> bool:
        """Stop claiming and wait up to ``timeout`` for the sends in flight. Returns False when
        some were abandoned: their items stay ``sending`` and are sent again at the next start."""
        self.stopping.set()
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))
            abandoned = sorted(self._inflight)
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if abandoned:
            log.warning("outgoing_abandoned", items=abandoned,
                        note="left in sending; they are sent again at the next start")
        return not abandoned

    # ============================================================================ one item
    def _process_for_unit(self, record: OutgoingRecord) -> None:
        """In a send thread (shared by a hub's units): every log line of the item's work
        names the unit it is sent as (decisions.md: each line of work for a unit carries
        ``agency``)."""
        with bound_contextvars(agency=record.agency or self.runtime.settings.agency.organ_id):
            self._process(record)

    def _process(self, record: OutgoingRecord) -> None:
        """Package (when not yet done) and send one claimed item, and record the outcome.

        A package built in this attempt is recorded together with the outcome: with ``sent``
        in one transaction when the axis accepted it (the common case: one commit per
        document fewer), or on its own just before a failure is recorded. Either way it was
        stored durably before it was sent, so every attempt sends the same bytes."""
        started = time.monotonic()
        packaged: Packaged | None = None
        try:
            if self.stopping.is_set():
                self._release(record, "shutting down")
                return
            if record.needs_packaging:
                record, packaged = self._package(record)
            try:
                transmitted = self._transmit(record, just_stored=packaged is not None)
            except BaseException:
                if packaged is not None:
                    record = self.journal.outgoing.record_packaged(record.id, packaged)
                raise
        except _Released:
            pass
        except PermanentAxisError as error:
            self._count_send("permanent_error")
            self._fail_now(record, f"the axis refused it: FAIL {error.error_code}: {error.error_desc}")
        except AxisAuthError as error:
            self._auth_refused(record, error)
        except SignerUnavailable as error:
            self._signer_unavailable(record, error)
        except CertificateError as error:
            self._release(record, f"cannot sign: {error.one_line()}", wait=self.auth_pause)
            log.error("signing_stopped", item_id=record.id, error=error.one_line())
        except InputError as error:  # the item itself is unusable: retrying cannot help
            self._fail_now(record, error.one_line())
        except Exception as error:  # transient: axis unreachable, 5xx, disk trouble...
            self._attempt_failed(record, describe_error(error))
        else:
            self._sent(record, transmitted, started, packaged)
        finally:
            with self._idle:
                self._inflight.discard(record.id)
                self._idle.notify_all()
            self.request_dispatch()  # a slot is free

    def _sent(self, record: OutgoingRecord, transmitted: _Transmitted, started: float,
              packaged: Packaged | None = None) -> None:
        doc_id = transmitted.doc_id
        self._count_send("accepted")
        if self.health is not None:
            self.health.record_axis_success()
        recording = time.monotonic()
        sent = self.journal.outgoing.record_sent(record.id, doc_id, packaged=packaged)
        now = time.monotonic()
        # Where the time went: waiting for a send slot, the HTTP request, the journal commit.
        log.info("outgoing_sent", item_id=record.id, document_id=sent.document_id,
                 axis_doc_id=doc_id, attempt=record.attempts, from_state="sending",
                 to_state=sent.state.value, duration_ms=round((now - started) * 1000, 1),
                 slot_wait_ms=transmitted.slot_wait_ms, send_ms=transmitted.send_ms,
                 journal_ms=round((now - recording) * 1000, 1))
        self._tell_side_sent(sent)

    def _attempt_failed(self, record: OutgoingRecord, error: str) -> None:
        self._count_send("retryable_error")
        if self.health is not None:
            self.health.record_axis_failure(error)
        delay = retry_delay(record.attempts, self.settings.retry_initial_seconds,
                            self.settings.retry_max_seconds, self._rng)
        after = self.journal.outgoing.record_attempt_failed(record.id, error,
                                                   retry_at=utcnow() + dt.timedelta(seconds=delay))
        if after.state is OutgoingState.FAILED:
            log.error("outgoing_failed", item_id=record.id, document_id=record.document_id,
                      reason=error, attempts=after.attempts)
            self._tell_side_failed(after)
        else:
            if self.metrics is not None:
                self.metrics.record_retry("outgoing")
            log.warning("outgoing_attempt_failed", item_id=record.id, attempt=record.attempts,
                        error=error, retry_in_s=round(delay, 2))

    def _auth_refused(self, record: OutgoingRecord, error: AxisAuthError) -> None:
        """Nobody's document is at fault: give the claim back (attempt not spent), pause all
        sending, and make readiness red until an authenticated call succeeds again."""
        with self._lock:
            self._paused_until = time.monotonic() + self.auth_pause
            self.paused_reason = error.one_line()
        if self.health is not None:
            self.health.update(last_axis_success=None)
            self.health.record_axis_failure(error.one_line())
        self._release(record, f"axis authentication refused: {error.one_line()}",
                      wait=self.auth_pause)
        log.error("axis_auth_refused", item_id=record.id, error=error.one_line(),
                  pause_s=self.auth_pause)

    def _signer_unavailable(self, record: OutgoingRecord, error: SignerUnavailable) -> None:
        """The key's token is absent or refused the PIN: nobody's document is at fault. Give
        the claim back (attempt not spent), pause this unit's sending, and say why in readiness
        and the metric; the log says it once per change, not once per document."""
        with self._lock:
            self._paused_until = time.monotonic() + self.auth_pause
            self.paused_reason = f"signing paused: {error.one_line()}"
        self._release(record, f"cannot sign now: {error.one_line()}", wait=self.auth_pause)
        report_signer_unavailable(self.health, error)

    def _signing_works(self) -> None:
        """A package was just signed: a pause for the token is over."""
        if self.health is not None and self.health.set_signer_problem(None):
            log.info("signing_resumed")

    def resume(self) -> None:
        """End a pause now (the daemon saw the token answer again)."""
        with self._lock:
            self._paused_until = 0.0
            self.paused_reason = None
        self.request_dispatch()

    def _release(self, record: OutgoingRecord, reason: str, *, wait: float | None = None) -> None:
        retry_at = utcnow() + (dt.timedelta(seconds=wait) if wait is not None else RELEASE_WAIT)
        self.journal.outgoing.release_claim(record.id, retry_at=retry_at, reason=reason)
        log.info("outgoing_released", item_id=record.id, reason=reason)

    def _count_send(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.record_send(outcome)
            if outcome != "accepted":  # the unit's own error series (a hub's per-unit view)
                self.metrics.record_unit_error(self.runtime.settings.agency.organ_id, "outgoing")

    # ============================================================================ packaging
    def _package(self, record: OutgoingRecord) -> tuple[OutgoingRecord, Packaged]:
        """Build, sign and store the item's bytes once. Returns the record as it will be once
        the package is recorded, and what to record (see :meth:`_process`)."""
        started = time.monotonic()
        item = None
        if record.source in self.runtime.sides:
            with self._lock:
                item = self._items.get((record.source, record.source_ref))
            if item is None:
                # The side has not handed the item over in this process yet (restart): wait.
                self._release(record, "waiting for the agency side to hand the item over again")
                raise _Released
        built = PackageBuilder(self.runtime).build(record, item)
        packaged = Packaged(package_path=str(built.stored.path), sha256=built.stored.sha256,
                            size=built.stored.size, document_id=built.document_id,
                            business_type=built.business_type, recipients=built.recipients,
                            signed_by=built.signed_by, renamed=built.renamed)
        if built.renamed and not record.meta.get("renamed"):
            log.warning("recipient_code_renamed", item_id=record.id, renamed=built.renamed,
                        note="sent to the current codes; update the DMS's address book")
        if built.signed:
            self._signing_works()
        log.info("outgoing_packaged", item_id=record.id, document_id=built.document_id,
                 sha256=built.stored.sha256, size=built.stored.size, signed=built.signed,
                 signed_by=built.signed_by,
                 packages=built.count, duration_ms=round((time.monotonic() - started) * 1000, 1))
        return dataclasses.replace(record, package_path=packaged.package_path,
                                   package_sha256=packaged.sha256, package_size=packaged.size,
                                   document_id=packaged.document_id,
                                   business_type=packaged.business_type,
                                   meta={**record.meta, "renamed": built.renamed,
                                         "to": built.recipients}
                                   if built.renamed else record.meta), packaged

    def _transmit(self, record: OutgoingRecord, *, just_stored: bool = False) -> _Transmitted:
        """Send the stored bytes; returns the axis DocId (comma-joined for a set) and where the
        time went.

        Before each attempt the stored file is checked against the journal's SHA-256 (it may
        have been damaged or replaced since it was packaged) — except right after packaging it
        in this attempt (``just_stored``): its SHA-256 was computed as it was written."""
        path = Path(record.package_path or "")
        if not record.package_path or not path.is_file():
            # Not a passing hiccup: the bytes this item was packaged into are gone (e.g. adopted
            # from another server whose package store was not copied). Rebuilding them would
            # send a different package under the same journal item, so fail it with the fix.
            raise InputError("the stored package is missing", file=str(path),
                             hint="copy it back from the server that packaged it, or `cancel` the "
                                  "item and send the document again")
        digest = record.package_sha256 if just_stored else sha256_of(path)[0]
        if digest is None or digest != record.package_sha256:
            raise InputError("the stored package changed on disk since it was packaged",
                             file=str(path), hint="restore it from a backup, or cancel the item "
                                                  "and send the document again")
        waited = time.monotonic()
        with self._send_slot(record):
            posted = time.monotonic()
            doc_id = self._post(path, digest, record)
        return _Transmitted(doc_id, slot_wait_ms=round((posted - waited) * 1000, 1),
                            send_ms=round((time.monotonic() - posted) * 1000, 1))

    @contextlib.contextmanager
    def _send_slot(self, record: OutgoingRecord) -> Iterator[None]:
        """Hold one of the ``outbound.concurrency`` send slots for the HTTP request(s). An item
        still waiting for a slot when the daemon stops gives its claim back."""
        while not self._send_slots.acquire(timeout=SLOT_POLL_SECONDS):
            if self.stopping.is_set():
                self._release(record, "shutting down")
                raise _Released
        try:
            yield
        finally:
            self._send_slots.release()

    def _post(self, path: Path, digest: str, record: OutgoingRecord) -> str:
        if PackageStore.is_set(path):
            doc_ids = []
            for member in self.runtime.store.members(path):
                if sha256_of(member.path)[0] != member.sha256:
                    raise InputError("a stored status package changed on disk",
                                     file=str(member.path), hint="cancel the item and send again")
                doc_ids.append(self._post_one(member.path, member.sha256, "status"))
            return ",".join(doc_ids)
        # The digest just checked is the hash-file header: no second pass over the file.
        # Recipients given by old codes go to the current ones through the axis's `to` list
        # (a signed package is never rewritten; decisions.md, "Agency directory").
        to = (record.meta.get("to") or record.recipients) if record.meta.get("renamed") else None
        return self._post_one(path, digest, "edoc", to=to)

    def _post_one(self, path: Path, digest: str, messagetype: str,
                  to: list[str] | None = None) -> str:
        """One package to the axis by the daemon's own client, timed for the latency metric."""
        timed = self.metrics.time_axis_request("sendEdoc") if self.metrics else None
        with timed or contextlib.nullcontext():
            return self.runtime.axis.send_edoc(path, sha256=digest, messagetype=messagetype,
                                               to=to).doc_id


class _Transmitted(NamedTuple):
    """An accepted send: the axis DocId, the wait for a send slot and the HTTP time (ms)."""

    doc_id: str
    slot_wait_ms: float
    send_ms: float


def _unknown_reason(unknown: list[str]) -> str:
    return f"{unknown_recipients_reason(unknown)} — correct 'to' and send again"


def _default_addressees(journal: Any, request: StatusRequest) -> list[str]:
    try:
        code = StatusCode(request.code)
    except ValueError:  # refused when it is packaged, with the reason
        return []
    return statuses.default_addressees(journal, code, request.document_id)
