"""The other direction: pull → store → verify → journal → acknowledge → deliver, and statuses.

The order is the guarantee. A package is downloaded into the package store (temporary name,
fsync of the file and of its directory, rename) and ``record_stored`` commits its row BEFORE the
axis is told ``done``; so a crash or a full disk at any point before that leaves the item pending
on the axis, and it is listed again at the next poll. A crash after ``done`` and before delivery
is finished from the journal (``pending_incoming``) at the next poll.

- An unreadable list is an error (the client raises), never an empty one.
- An item the journal already acknowledged is acknowledged again when listed again (the axis
  did not get our ``done``) and never delivered twice; a package whose sender, DocumentId,
  business type and SHA-256 match one stored within ``inbox.dedupe_window_days`` is a duplicate
  (acknowledged, not delivered). Revoke and update reuse the original's DocumentId with another
  business type, so they are never taken for duplicates.
- A package that cannot be read at all (not XML, too large, hostile, missing what every package
  needs) is stored, acknowledged and quarantined with the reason: nothing is lost and nothing
  comes back forever. The operator decides (``quarantine release|refuse``).
- The signature policy decides what happens to a readable document: ``invalid`` is quarantined
  by default; ``absent``, ``unverifiable``, ``untrusted`` are delivered with the outcome in the
  delivery and a warning in the log.
- Lifecycle requests never delete anything: a revoke (1), update (2) or replace (3) is delivered
  as its own entry AND recorded as an event on the original's entry (found by DocumentId and
  sender); a take-back request (status 13) is recorded on the original's entry.
- Statuses update, for their sender, the latest outgoing item with that DocumentId (the journal
  keeps the whole history), the receipt the DMS reads, and ``statuses.jsonl``.
- Only those entitled are heard. The sender is the axis's ``from`` (vouched for by the sender's
  credentials), and a package whose ``From`` differs is refused. A status about a document we
  sent counts only from an agency it was sent to, a take-back request only from the agency we
  received the document from, and a revoke/update/replace of a document we received from
  another agency is quarantined. A refused status is recorded (journal ``refused``, the
  statuses log with the reason) and changes nothing else.
- Once a new document (business type 0, or a replacement, 3) is stored, status 01 goes back to
  its sender (``inbox.send_arrived_status``). Not for a revoke or an update: those share the
  original's DocumentId, and a late 01 would overwrite the sender's view of the original's
  progress; the DMS answers them with 15/16.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from connector.axis.errors import PermanentAxisError, TransientAxisError
from connector.dms.base import (
    IncomingDocument,
    IncomingStatus,
    LifecycleEvent,
    StatusRequest,
)
from connector.edxml.model import DocumentPackage, StatusPackage
from connector.edxml.reader import read_package
from connector.edxml.signing import verify_package_file
from connector.edxml.summary import summarize
from connector.errors import EdxmlError, InputError, PackageTooLarge, describe_error
from connector.journal import (
    KV_DELIVERY_PAUSED,
    KV_LAST_AXIS_CONTACT,
    KV_LAST_POLL,
    IncomingRecord,
    IncomingState,
)
from connector.journal.records import default_instance
from connector.logs import get_logger
from connector.pipeline.context import PipelineContext
from connector.pipeline.delivery_backoff import DeliveryBackoff

log = get_logger(__name__)

MESSAGE_TYPES = ("edoc", "status")
NO_SUCH_OPERATION = (404, 405, 501)
"""HTTP answers of an axis that does not have the count calls (the list is asked instead)."""
LIFECYCLE_EVENTS = {1: "revoked", 2: "updated", 3: "replaced"}
ARRIVED_KEY = "arrived:{incoming_id}"
POLLER_LEASE = "inbound-poller"
"""On a journal shared by two connectors, only the holder of this lease polls the axis."""


POLL_TIME_EVERY_SECONDS = 10.0
"""How stale the journal's "last successful poll" may get while the polls find nothing."""


def _lease_owner() -> str:
    """The poller lease belongs to this installation (host name), not to this process: a
    connector restarted after ``kill -9`` must take its own lease back at once instead of
    waiting out the TTL (found by tests/e2e/test_crash.py: inbound stopped for 5 minutes after
    every crash during a poll). Two connectors sharing a journal run on different hosts."""
    return default_instance()


class Inbound:
    """The inbound pipeline of one connector. ``poll`` is called by one thread at a time."""

    def __init__(self, runtime: PipelineContext, outbound: Any = None, *, metrics: Any = None,
                 health: Any = None) -> None:
        self.runtime = runtime
        self.journal = runtime.journal
        self.settings = runtime.settings
        self.outbound = outbound
        self.metrics = metrics
        self.health = health
        self.stopping = threading.Event()
        self._zone = ZoneInfo(runtime.settings.timezone)
        self._read_cache: dict[str, Any] = {}
        self._poll_time_written: float | None = None
        self.delivery = DeliveryBackoff()
        self._stale_pause_cleared = False

    @property
    def side(self):
        """Where received items go: the DMS database when configured, else the folders."""
        return self.runtime.database or self.runtime.folder

    # ============================================================================ polling
    def poll(self, *, ask_first: bool = False) -> dict[str, int]:
        """List documents and statuses pending for us and take each one as far as it goes.
        Raises when a list cannot be had (the caller logs it; nothing is assumed empty).

        ``ask_first`` (an idle unit of a hub): ask the axis's count call for each kind first
        and list only a kind it says is waiting — the cheapest "is there anything?" the axis
        offers; an axis that does not answer the count is listed as usual.

        Two connectors sharing one journal must not pull at the same time (both would fetch,
        store and deliver the same items): the poll runs only while this process holds the
        ``inbound-poller`` lease, renewed as it goes and released at the end, so the other
        connector takes over at its next poll — or when the lease of a holder that died runs
        out. A poll that does not get the lease returns ``{"listed": 0, "failed": 0,
        "skipped": 1}``."""
        counts = {"listed": 0, "failed": 0}
        self._lease_renewed: float | None = None
        kinds: tuple[str, ...] = MESSAGE_TYPES
        if ask_first:
            # The counts are read-only questions to the axis: asked without the poller lease,
            # so that an idle unit's poll costs the journal nothing unless something waits.
            kinds = tuple(kind for kind in MESSAGE_TYPES if not self._nothing_waiting(kind))
            if not kinds and not self.journal.incoming.pending_incoming():
                self._note_poll_time(changed=False)
                return counts
        if not self._hold_lease():
            log.debug("inbound_poll_skipped", reason="another connector holds the poller lease")
            return {**counts, "skipped": 1}
        try:
            self._poll(counts, kinds)
        finally:
            self.journal.release_lease(self.journal.unit_key(POLLER_LEASE), owner=_lease_owner())
        return counts

    @property
    def _lease_ttl(self) -> dt.timedelta:
        """Long enough to outlast a slow item between renewals, short enough that a dead
        holder's lease runs out within a few polls."""
        return dt.timedelta(seconds=max(300.0, 3 * float(self.settings.schedules.axis_poll_seconds)))

    def _hold_lease(self) -> bool:
        """Take or renew the poller lease (renewals at most every ttl/10, to spare writes)."""
        now = time.monotonic()
        renewed = self._lease_renewed
        if renewed is not None and now - renewed < self._lease_ttl.total_seconds() / 10:
            return True
        lease = self.journal.unit_key(POLLER_LEASE)
        if self.journal.acquire_lease(lease, ttl=self._lease_ttl, owner=_lease_owner()):
            self._lease_renewed = now
            return True
        self._lease_renewed = None
        return False

    def _poll(self, counts: dict[str, int], kinds: tuple[str, ...] = MESSAGE_TYPES) -> None:
        self.resume()
        for messagetype in kinds:
            with self._timer("getReceivedEdocList"):
                try:
                    listed = self.runtime.axis.list_received(messagetype)
                except Exception as error:
                    self._axis_failed(error)
                    raise
            if self.health is not None:
                self.health.record_axis_success(poll_complete=messagetype == kinds[-1])
            for entry in listed:
                if self.stopping.is_set() or not self._hold_lease():
                    return
                counts["listed"] += 1
                if not self.process(entry.doc_id, messagetype, sender=entry.from_ or None):
                    counts["failed"] += 1
        self._note_poll_time(changed=counts["listed"] > 0)

    def _nothing_waiting(self, messagetype: str) -> bool:
        """True when the axis's count says nothing of ``messagetype`` waits for us. An axis
        without the count call (HTTP 404/405/501, or a FAIL for the operation) is listed
        instead; any other failure is raised (nothing is assumed empty)."""
        try:
            waiting = self.runtime.axis.count_received(messagetype)
        except Exception as error:
            no_count_call = isinstance(error, PermanentAxisError) or (
                isinstance(error, TransientAxisError) and error.http_status in NO_SUCH_OPERATION)
            if no_count_call:
                log.info("count_call_unavailable", messagetype=messagetype,
                         error=describe_error(error), note="listed instead")
                return False
            self._axis_failed(error)
            raise
        if self.health is not None:
            self.health.record_axis_success(poll_complete=messagetype == MESSAGE_TYPES[-1])
        return waiting == 0

    def _axis_failed(self, error: Exception) -> None:
        if self.health is not None:
            self.health.record_axis_failure(str(error))

    def _note_poll_time(self, *, changed: bool) -> None:
        """Record the last successful poll (what ``status`` shows) after a poll that found
        something, else at most every POLL_TIME_EVERY_SECONDS: with a 1-s poll schedule an idle
        connector would otherwise commit (and fsync) two journal writes a second for nothing.
        The metrics and /readyz take their poll time from ``health``, on every poll."""
        monotonic = time.monotonic()
        written = self._poll_time_written
        if not changed and written is not None and monotonic - written < POLL_TIME_EVERY_SECONDS:
            return
        self.journal.set_times([self.journal.unit_key(KV_LAST_POLL),
                                self.journal.unit_key(KV_LAST_AXIS_CONTACT)])
        self._poll_time_written = monotonic

    def resume(self) -> int:
        """Finish items stored but not yet acknowledged or delivered (after a crash, or after a
        delivery that failed, e.g. on a full inbox disk)."""
        if not self._stale_pause_cleared and not self.delivery.paused:
            # a pause an earlier run left behind
            self.journal.kv_set(self.journal.unit_key(KV_DELIVERY_PAUSED), None)
            self._stale_pause_cleared = True
        done = 0
        for record in self.journal.incoming.pending_incoming():
            if self.stopping.is_set():
                break
            try:
                self._advance(record, listed=False)
                done += 1
            except Exception as error:
                log.error("incoming_resume_failed", item_id=record.id, error=describe_error(error))
        return done

    def process(self, axis_doc_id: str, messagetype: str, *, sender: str | None = None) -> bool:
        """One listed item; False when a step failed (it is tried again later)."""
        started = time.monotonic()
        record = self.journal.incoming.record_listed(axis_doc_id, messagetype, sender=sender)
        try:
            self._advance(record, listed=True)
        except Exception as error:
            self._count("error")
            log.error("incoming_failed", item_id=record.id, axis_doc_id=axis_doc_id,
                      error=describe_error(error),
                      note="not lost: it is tried again at the next poll")
            return False
        finally:
            self._read_cache.pop(record.id, None)
        log.debug("incoming_processed", item_id=record.id,
                  duration_ms=round((time.monotonic() - started) * 1000, 1))
        return True

    # ============================================================================ the steps
    def _advance(self, record: IncomingRecord, *, listed: bool) -> None:
        if listed and record.is_acknowledged:
            self._count("duplicate")
            log.info("incoming_redelivered", item_id=record.id, axis_doc_id=record.axis_doc_id,
                     state=record.state.value, note="acknowledged again, not delivered twice")
        if record.state is IncomingState.REFUSED:
            return  # answered `fail` already (e.g. larger than the limit): never downloaded again
        if not record.is_stored and record.duplicate_of is None:
            record = self._store(record)
            if record.state is IncomingState.REFUSED:
                return
        if listed or not record.is_acknowledged:
            record = self._acknowledge(record)
        if (record.duplicate_of is not None or record.delivered_at is not None
                or record.quarantined or record.state is IncomingState.REFUSED):
            return
        self._send_arrived(record)
        if not self.delivery.ready():
            return  # the side refused the last try: this item waits with the others (resume)
        try:
            if record.messagetype == "status":
                self._deliver_status(record)
            else:
                self._deliver_document(record)
        except Exception as error:
            reason = describe_error(error)
            self.journal.incoming.record_incoming_failed(record.id, reason, step="deliver")
            self._delivery_failed(reason)
            raise
        if self.delivery.paused:
            self._delivery_resumed()

    def _delivery_failed(self, reason: str) -> None:
        """Pause delivery to the side (doubling up to 15 min); logged and recorded on change."""
        changed = self.delivery.failed(reason)
        pause = self.delivery.pause
        assert pause is not None
        self.journal.kv_set(self.journal.unit_key(KV_DELIVERY_PAUSED), pause.as_json())
        if self.health is not None:
            self.health.set_delivery_problem(f"{reason}; next try at {pause.retry_at:%H:%M:%S} UTC")
        if changed:
            log.warning("delivery_paused", side=self.side.name if self.side else None,
                        reason=reason, failures=pause.failures,
                        retry_in_seconds=round((pause.retry_at - pause.since).total_seconds()),
                        note="received items are kept and acknowledged; delivery is tried "
                             "again by itself, less often while it fails")

    def _delivery_resumed(self) -> None:
        pause = self.delivery.pause
        self.delivery.succeeded()
        self.journal.kv_set(self.journal.unit_key(KV_DELIVERY_PAUSED), None)
        if self.health is not None:
            self.health.set_delivery_problem(None)
        log.info("delivery_resumed", failures=pause.failures if pause else 0)

    def _store(self, record: IncomingRecord) -> IncomingRecord:
        """Download into the store (durably), read, verify, de-duplicate, commit the row."""
        store = self.runtime.store
        started = time.monotonic()
        try:
            path = store.incoming_path(record.id)
            with self._timer("other"):
                self.runtime.axis.download_edoc(record.axis_doc_id, path)
            stored = store.finish_incoming(path)
            received_at = _now()  # the time of receipt: certificate validity is judged at it
        except PackageTooLarge as error:
            return self._refuse_too_large(record, error)
        except Exception as error:
            self.journal.incoming.record_incoming_failed(record.id, describe_error(error), step="fetch")
            raise
        self.journal.incoming.record_fetched(record.id, size=stored.size)
        label = f"axis docId {record.axis_doc_id}"
        try:
            result = read_package(path, limits=self.runtime.limits, file=label)
        except EdxmlError as error:
            reason = f"unreadable package: {error.one_line()}"
            self.journal.incoming.record_verified(record.id, signature_state="unverifiable",
                                         detail={"reason": reason})
            log.error("incoming_unreadable", item_id=record.id, axis_doc_id=record.axis_doc_id,
                      error=error.one_line(), action="stored, acknowledged and quarantined")
            return self.journal.incoming.record_stored(
                record.id, package_path=str(path), sha256=stored.sha256, size=stored.size,
                sender=record.sender, document_id=None, business_type=None, signature_state=None,
                meta={"unreadable": reason})
        package = result.package
        signature = self._verify(path, package, received_at)
        self.journal.incoming.record_verified(record.id, signature_state=signature["state"],
                                     detail={"reason": signature.get("reason"),
                                             "verified_at": received_at.isoformat()})
        meta: dict[str, Any] = {"signature": signature,
                                "warnings": [*result.warnings, *signature.get("warnings", [])]}
        if isinstance(package, DocumentPackage):
            document_id = package.document_id
            business_type = int(package.business_type)
            if package.code is not None and (package.code.number or package.code.notation):
                meta["code"] = "/".join(x for x in (package.code.number, package.code.notation) if x)
            if package.promulgation_info is not None and package.promulgation_info.date:
                meta["promulgation_date"] = package.promulgation_info.date.isoformat()
        else:
            document_id = package.response_for.document_id if package.response_for else None
            business_type = None
            meta["status_code"] = getattr(package.status_code, "value", package.status_code)
        sender, mismatch = _sender_of(record.sender, package.from_.organ_id)
        if mismatch:
            meta["sender_mismatch"] = mismatch
            log.warning("incoming_sender_mismatch", item_id=record.id,
                        axis_doc_id=record.axis_doc_id, reason=mismatch)
        window = dt.timedelta(days=self.settings.inbox.dedupe_window_days)
        duplicate = self.journal.incoming.find_duplicate(sender, document_id, business_type, stored.sha256,
                                                window=window, exclude_id=record.id)
        stored_record = self.journal.incoming.record_stored(
            record.id, package_path=str(path), sha256=stored.sha256, size=stored.size,
            sender=sender, document_id=document_id, business_type=business_type,
            signature_state=signature["state"], meta=meta)
        self._read_cache[record.id] = result
        if duplicate is not None:
            self._count("duplicate")
            log.info("incoming_duplicate", item_id=record.id, original_id=duplicate.id,
                     document_id=document_id, note="acknowledged, not delivered again")
            return self.journal.incoming.record_duplicate(record.id, duplicate.id)
        self._count("stored")
        log.info("incoming_stored", item_id=record.id, axis_doc_id=record.axis_doc_id,
                 messagetype=record.messagetype, sender=sender, document_id=document_id,
                 signature=signature["state"], size=stored.size, duration_ms=_ms(started))
        return stored_record

    def _refuse_too_large(self, record: IncomingRecord, error: PackageTooLarge) -> IncomingRecord:
        """A package over ``edxml.max_package_size`` is cut off while downloading, so it cannot be
        stored: tell the axis ``fail`` with the reason (so the sender's side can see it) and record
        it as refused, so that it is not downloaded again at every poll. An operator who expects
        packages this large raises the limit; the item is in ``status`` with the reason."""
        reason = f"package refused: {error.one_line()}"
        log.error("incoming_too_large", item_id=record.id, axis_doc_id=record.axis_doc_id,
                  sender=record.sender, error=error.one_line(),
                  action="answered fail to the axis; raise edxml.max_package_size_mb to accept it")
        try:
            with self._timer("updateStatus"):
                self.runtime.axis.update_status(record.axis_doc_id, "fail", reason[:500])
        except Exception as ack_error:
            # Not recorded: the next poll lists it again and tries the answer again.
            self.journal.incoming.record_incoming_failed(record.id, describe_error(ack_error), step="fetch")
            raise
        self._count("refused")
        return self.journal.incoming.record_refused(record.id, reason)

    def _verify(self, path: Path, package: Any, received_at: dt.datetime) -> dict[str, Any]:
        if not isinstance(package, DocumentPackage):
            return {"state": "absent", "reason": "status packages are not signed"}
        try:
            # From the file: long attachment texts are digested from disk, not held in memory.
            outcome = verify_package_file(path, trust=self.runtime.trust_store,
                                          limits=self.runtime.limits, at=received_at)
        except Exception as error:  # a verifier crash must not lose the document
            return {"state": "unverifiable",
                    "reason": f"verification failed: {describe_error(error)}"}
        return {"state": outcome.state.value, "reason": outcome.reason,
                "signer": outcome.signer_subject,
                "algorithm": getattr(outcome, "algorithm", None),
                "verified_at": received_at.isoformat(),
                "warnings": list(outcome.warnings),
                **({"bound_to": list(outcome.bound_to)} if outcome.bound_to else {}),
                **({"revoked_at": outcome.revoked_at.isoformat()} if outcome.revoked_at else {})}

    def _acknowledge(self, record: IncomingRecord) -> IncomingRecord:
        started = time.monotonic()
        try:
            with self._timer("updateStatus"):
                self.runtime.axis.update_status(record.axis_doc_id, "done")
        except Exception as error:
            self.journal.incoming.record_incoming_failed(record.id, describe_error(error),
                                                step="acknowledge")
            raise
        acknowledged = self.journal.incoming.record_acknowledged(record.id)
        log.info("incoming_acknowledged", item_id=record.id, axis_doc_id=record.axis_doc_id,
                 duration_ms=_ms(started))
        return acknowledged

    # ============================================================================ delivery
    def _package_of(self, record: IncomingRecord):
        cached = self._read_cache.get(record.id)
        if cached is None:
            cached = read_package(_stored_path(record), limits=self.runtime.limits,
                                  file=f"axis docId {record.axis_doc_id}")
            self._read_cache[record.id] = cached
        return cached

    def _incoming_document(self, record: IncomingRecord, summary: dict[str, Any],
                           lifecycle: dict[str, Any] | None = None) -> IncomingDocument:
        signature = dict(record.meta.get("signature") or {"state": "unverifiable"})
        return IncomingDocument(
            journal_id=record.id, axis_doc_id=record.axis_doc_id,
            received_at=record.stored_at or dt.datetime.now(dt.timezone.utc),
            package_path=_stored_path(record), summary=summary, signature=signature,
            warnings=list(record.meta.get("warnings") or []), lifecycle=lifecycle or {})

    def _deliver_document(self, record: IncomingRecord) -> None:
        side = self.side
        started = time.monotonic()
        unreadable = record.meta.get("unreadable")
        if unreadable:
            summary = {"kind": record.messagetype, "from": {"organ_id": record.sender},
                       "document_id": None}
            document = self._incoming_document(record, summary)
            document.warnings.append(unreadable)
            self._quarantine(record, document, unreadable)
            return
        result = self._package_of(record)
        summary = summarize(result, zip_limits=dataclasses.replace(
            self.runtime.zip_limits, package_size=record.package_size))
        summary["signature"] = record.meta.get("signature")
        refusal = record.meta.get("sender_mismatch") or self._lifecycle_refusal(record,
                                                                                result.package)
        if refusal:
            self._quarantine(record, self._incoming_document(record, summary), refusal)
            return
        originals = self._originals(record, result.package)
        lifecycle: dict[str, Any] = {}
        if originals:
            lifecycle = {"event": LIFECYCLE_EVENTS[record.business_type or 0],
                         "originals": [{"journal_id": o.id, "document_id": o.document_id,
                                        "location": o.delivered_location or o.quarantine_location}
                                       for o in originals]}
        document = self._incoming_document(record, summary, lifecycle)
        state = document.signature.get("state", "unverifiable")
        policy = self.settings.inbox.signature_policy
        action = "deliver" if state == "valid" else policy.action_for(state).value
        if action == "quarantine":
            reason = f"signature {state}: {document.signature.get('reason') or 'no detail'}"
            self._quarantine(record, document, reason)
        else:
            if state != "valid":
                log.warning("incoming_signature_not_valid", item_id=record.id,
                            signature=state, reason=document.signature.get("reason"),
                            action="delivered by policy")
            location = side.deliver_document(document)
            self.journal.incoming.record_delivered(record.id, str(location))
            log.info("incoming_delivered", item_id=record.id, document_id=record.document_id,
                     sender=record.sender, to=str(location), to_state="delivered",
                     duration_ms=_ms(started))
        for original in originals:
            self._record_event(record, LIFECYCLE_EVENTS[record.business_type or 0], original,
                               {"business_type": record.business_type,
                                "axis_doc_id": record.axis_doc_id,
                                "reason": _business_reason(result.package)})

    def _quarantine(self, record: IncomingRecord, document: IncomingDocument, reason: str) -> None:
        location = self.side.quarantine_document(document, reason)
        self.journal.incoming.record_quarantined(record.id, reason, str(location))
        self._count("quarantined")
        log.warning("incoming_quarantined", item_id=record.id, reason=reason, to=str(location),
                    fix="`edxml-connector quarantine release|refuse ID`")

    def _originals(self, record: IncomingRecord, package: Any) -> list[IncomingRecord]:
        """The documents a revoke/update/replace is about (only those we received)."""
        business_type = record.business_type
        if business_type in (1, 2) and record.document_id:
            original = self.journal.incoming.find_received(record.document_id, record.sender,
                                                 exclude_id=record.id, originals_only=True)
            return [original] if original is not None else []
        if business_type == 3:
            found = []
            business = getattr(package, "business", None)
            for replaced in (getattr(business, "replacement_info_list", None) or []):
                original = self.journal.incoming.find_received(replaced.document_id, record.sender,
                                                     exclude_id=record.id)
                if original is not None:
                    found.append(original)
            return found
        return []

    def _lifecycle_refusal(self, record: IncomingRecord, package: Any) -> str | None:
        """Why a revoke, update or replace must not be taken, or None.

        Only the original sender may revoke, update or replace its document. A request from
        another agency about a document we received from someone else is refused (quarantined
        with this reason, never linked to the original); a request about a document we never
        received is delivered as its own entry, as before."""
        event = LIFECYCLE_EVENTS.get(record.business_type or 0)
        if event is None:
            return None
        if record.business_type in (1, 2):
            wanted = [record.document_id] if record.document_id else []
        else:
            business = getattr(package, "business", None)
            wanted = [replaced.document_id for replaced in
                      (getattr(business, "replacement_info_list", None) or [])
                      if replaced.document_id]
        for document_id in wanted:
            if self.journal.incoming.find_received(document_id, record.sender,
                                         exclude_id=record.id) is not None:
                continue
            other = self.journal.incoming.find_received(document_id, exclude_id=record.id)
            if other is not None:
                return (f"{event[:-1]} request from {record.sender} for {document_id}, which was "
                        f"received from {other.sender}: only the original sender may do that")
        return None

    def _status_refusal(self, record: IncomingRecord, code: str,
                        document_id: str | None) -> str | None:
        """Why a status must not be taken, or None.

        A status about a document we sent counts only from an agency it was sent to (01–06,
        and the take-back answers 15/16); a take-back request (13) only from the agency we
        received that document from. A status about a document we never sent changes nothing
        and is kept as unmatched."""
        mismatch = record.meta.get("sender_mismatch")
        if mismatch:
            return f"status {code} about {document_id}: {mismatch}"
        sender = record.sender or ""
        if code == "13":
            if not document_id:
                return f"take-back request from {sender} names no DocumentId"
            if self.journal.incoming.find_received(document_id, sender, originals_only=True) is None:
                return (f"take-back request from {sender} for {document_id}: no document with "
                        f"that DocumentId was received from {sender}")
            return None
        if document_id and self.journal.recipients.sent_to(document_id, sender) is False:
            return (f"status {code} from {sender} about {document_id}: that document was not "
                    f"sent to {sender}")
        return None

    def _refuse_status(self, record: IncomingRecord, status: IncomingStatus) -> None:
        """Record a status nobody entitled sent: in the statuses log marked refused, in the
        journal as refused with the reason; no receipt, DMS row or delivery metric changes."""
        self.side.deliver_status(status)
        self.journal.incoming.record_refused(record.id, status.refused or "refused")
        self._count("refused")
        log.warning("incoming_status_refused", item_id=record.id, sender=status.from_organ_id,
                    document_id=status.document_id, code=status.code, reason=status.refused)

    def _record_event(self, record: IncomingRecord, event: str, original: IncomingRecord | None,
                      detail: dict[str, Any], *, document_id: str | None = None) -> None:
        location = None
        if original is not None:
            location = original.delivered_location or original.quarantine_location
        lifecycle = LifecycleEvent(
            journal_id=record.id, event=event,
            document_id=document_id or (original.document_id if original else record.document_id),
            from_organ_id=record.sender or "", at=record.stored_at or _now(),
            original_location=location,
            detail={**detail, "original_journal_id": original.id if original else None})
        self.side.record_event(lifecycle)
        self.journal.record_event(original.id if original else record.id, "incoming",
                                  f"lifecycle_{event}",
                                  detail={"request_id": record.id, "from": record.sender})
        log.info("incoming_lifecycle", item_id=record.id, lifecycle_event=event,
                 original_id=original.id if original else None, original_location=location)

    def _deliver_status(self, record: IncomingRecord) -> None:
        if record.meta.get("unreadable"):
            self._deliver_document(record)  # quarantined like any unreadable package
            return
        package = self._package_of(record).package
        if not isinstance(package, StatusPackage):
            self._deliver_document(record)
            return
        code = str(getattr(package.status_code, "value", package.status_code))
        sender = record.sender or package.from_.organ_id or ""
        response_for = package.response_for
        document_id = response_for.document_id if response_for else None
        at = _aware(package.timestamp, self._zone) or record.stored_at
        refusal = self._status_refusal(record, code, document_id)
        if refusal:
            self._refuse_status(record, IncomingStatus(
                journal_id=record.id, axis_doc_id=record.axis_doc_id,
                received_at=record.stored_at or _now(), from_organ_id=sender,
                document_id=document_id, code=code, description=package.description,
                timestamp=at, refused=refusal))
            return
        if code == "13":
            original = (self.journal.incoming.find_received(document_id, sender, originals_only=True)
                        if document_id else None)
            self._record_event(record, "take_back_requested", original,
                               {"description": package.description, "code": code},
                               document_id=document_id)
        elif document_id:
            updated = self.journal.recipients.record_recipient_status(
                document_id, sender, code, description=package.description, at=at,
                to_organ_id=response_for.organ_id if response_for else None,
                incoming_id=record.id)
            if updated is not None and self.outbound is not None:
                self.outbound.update_side_receipt(updated)
            log.info("incoming_status", item_id=record.id, document_id=document_id,
                     sender=sender, code=code, outgoing_id=updated.id if updated else None)
        status = IncomingStatus(journal_id=record.id, axis_doc_id=record.axis_doc_id,
                                received_at=record.stored_at or _now(), from_organ_id=sender,
                                document_id=document_id, code=code,
                                description=package.description, timestamp=at)
        self.side.deliver_status(status)
        self.journal.incoming.record_delivered(record.id, f"{self.side.name}:statuses")

    def _send_arrived(self, record: IncomingRecord) -> None:
        """Status 01 back to the sender of a new document (idempotent by its key)."""
        if (self.outbound is None or not self.settings.inbox.send_arrived_status
                or record.messagetype != "edoc" or record.meta.get("unreadable")
                or record.business_type not in (0, 3) or not record.sender
                or not record.document_id):
            return
        date = record.meta.get("promulgation_date")
        request = StatusRequest(code="01", document_id=record.document_id, to=[record.sender],
                                code_text=record.meta.get("code"),
                                promulgation_date=dt.date.fromisoformat(date) if date else None)
        self.outbound.enqueue_status(ARRIVED_KEY.format(incoming_id=record.id), request)

    # ============================================================================ helpers
    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.record_receive(outcome)

    def _timer(self, operation: str):
        if self.metrics is None:
            return _Null()
        return self.metrics.time_axis_request(operation)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _sender_of(axis_sender: str | None, declared: str | None) -> tuple[str | None, str | None]:
    """The sender of a received package and, when its ``From`` names another agency, why it is
    refused. The axis vouches for its own ``from`` (the credentials of the transfer); the
    package's ``From`` is only what the sender wrote."""
    if axis_sender and declared and declared != axis_sender:
        return axis_sender, (f"the package's From {declared} is not the agency that sent it on "
                             f"the axis ({axis_sender})")
    return axis_sender or declared, None


def _business_reason(package: Any) -> str | None:
    business = getattr(package, "business", None)
    return getattr(business, "business_doc_reason", None)


def _aware(moment: dt.datetime | None, zone: ZoneInfo) -> dt.datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)



__all__ = ["Inbound"]


def _ms(started: float) -> float:
    """Milliseconds since ``started`` (``time.monotonic()``), for the ``duration_ms`` log field."""
    return round((time.monotonic() - started) * 1000, 1)


def _stored_path(record: IncomingRecord) -> Path:
    """Where the item's package is stored (every item past ``stored`` has one)."""
    if not record.package_path:
        raise InputError(f"incoming item {record.id} has no stored package",
                         hint="`edxml-connector inbox list` shows its state")
    return Path(record.package_path)
