"""Outgoing transitions, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from connector.journal import InvalidTransition, OutgoingState, UnknownItem

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.timezone.utc)
A, B = "000.00.00.H41", "000.00.00.H14"


def _packaged(journal, ref="doc-1", recipients=(A, B), now=T0):
    item = journal.outgoing.enqueue("folder", ref, "document", recipients=recipients, now=now)
    return journal.outgoing.mark_packaged(item.id, package_path=f"/work/{ref}.edxml", sha256="ab" * 32,
                                 size=1234, document_id=f"000.00.00.G22,2026/03/01,{ref}",
                                 business_type=0, now=now)


def test_enqueue_is_idempotent_per_source_and_ref(journal):
    first = journal.outgoing.enqueue("folder", "report.edxml", "package", recipients=[A], meta={"name": "r"},
                            now=T0)
    again = journal.outgoing.enqueue("folder", "report.edxml", "package", recipients=[B], now=T0)
    other_source = journal.outgoing.enqueue("database", "report.edxml", "package", now=T0)
    assert again.id == first.id
    assert again.recipients == [A]  # the second call changed nothing
    assert other_source.id != first.id
    assert first.state is OutgoingState.QUEUED and first.meta == {"name": "r"}
    assert [e.event for e in journal.events(first.id)] == ["enqueued"]


def test_full_success_path_records_every_step(journal):
    item = _packaged(journal)
    assert item.state is OutgoingState.PACKAGED and not item.needs_packaging
    [claimed] = journal.outgoing.claim_for_sending(10, now=T0)
    assert claimed.id == item.id and claimed.state is OutgoingState.SENDING
    assert claimed.attempts == 1 and claimed.claimed_by == "test-owner"
    sent = journal.outgoing.record_sent(item.id, "axis-777", now=T0)
    assert sent.state is OutgoingState.SENT and sent.axis_doc_id == "axis-777"
    assert journal.outgoing.claim_for_sending(10, now=T0 + dt.timedelta(days=1)) == []
    assert [e.event for e in journal.events(item.id)] == ["enqueued", "packaged", "claimed", "sent"]
    assert journal.counts_by_state()["outgoing"]["sent"] == 1


def test_record_sent_twice_keeps_first_docid_and_notes_the_second(journal):
    item = _packaged(journal)
    journal.outgoing.claim_for_sending(1, now=T0)
    journal.outgoing.record_sent(item.id, "axis-1", now=T0)
    assert journal.outgoing.record_sent(item.id, "axis-1", now=T0).axis_doc_id == "axis-1"
    assert journal.outgoing.record_sent(item.id, "axis-2", now=T0).axis_doc_id == "axis-1"
    assert [e.event for e in journal.events(item.id)][-1] == "sent_again"


def test_mark_packaged_is_once_only(journal):
    item = _packaged(journal)
    same = journal.outgoing.mark_packaged(item.id, package_path="/elsewhere", sha256="ab" * 32, size=1,
                                 document_id="x")
    assert same.package_path == item.package_path  # replay is a no-op
    with pytest.raises(InvalidTransition, match="already packaged with other bytes"):
        journal.outgoing.mark_packaged(item.id, package_path="/x", sha256="cd" * 32, size=1, document_id="x")


def test_claimed_queued_item_is_packaged_while_sending(journal):
    item = journal.outgoing.enqueue("folder", "bundle", "document", recipients=[A], now=T0)
    [claimed] = journal.outgoing.claim_for_sending(5, now=T0)
    assert claimed.needs_packaging
    packaged = journal.outgoing.mark_packaged(item.id, package_path="/p", sha256="ef" * 32, size=9,
                                     document_id="D1", recipients=[A, B])
    assert packaged.state is OutgoingState.SENDING
    assert sorted(packaged.recipients) == sorted([A, B])
    assert packaged.document_id == "D1"


def test_retry_then_exhaustion_fails_with_reason(journal):
    item = _packaged(journal)
    now = T0
    for attempt in (1, 2):
        [claimed] = journal.outgoing.claim_for_sending(5, now=now)
        assert claimed.attempts == attempt
        retry_at = now + dt.timedelta(minutes=5)
        waiting = journal.outgoing.record_attempt_failed(item.id, "HTTP 503", retry_at=retry_at, now=now)
        assert waiting.state is OutgoingState.PACKAGED and waiting.next_attempt_at == retry_at
        assert journal.outgoing.claim_for_sending(5, now=now + dt.timedelta(minutes=4)) == []  # not due
        now = retry_at
    [claimed] = journal.outgoing.claim_for_sending(5, now=now)
    assert claimed.attempts == 3
    failed = journal.outgoing.record_attempt_failed(item.id, "HTTP 503 again", retry_at=now, now=now)
    assert failed.state is OutgoingState.FAILED and failed.last_error == "HTTP 503 again"
    last = journal.events(item.id)[-1]
    assert (last.event, last.outcome, last.detail["reason"]) == ("failed", "error", "attempts exhausted")


def test_permanent_error_fails_at_once(journal):
    item = _packaged(journal)
    journal.outgoing.claim_for_sending(1, now=T0)
    failed = journal.outgoing.record_attempt_failed(item.id, "unknown recipient 000.00.00.Z99",
                                           retry_at=T0 + dt.timedelta(hours=1), permanent=True)
    assert failed.state is OutgoingState.FAILED and failed.attempts == 1
    assert journal.events(item.id)[-1].detail["reason"] == "permanent error"


def test_release_claim_does_not_spend_an_attempt(journal):
    item = _packaged(journal)
    journal.outgoing.claim_for_sending(1, now=T0)
    later = T0 + dt.timedelta(minutes=1)
    released = journal.outgoing.release_claim(item.id, retry_at=later, reason="axis authentication failed")
    assert released.state is OutgoingState.PACKAGED and released.attempts == 0
    assert released.next_attempt_at == later


def test_requeue_and_cancel_rules(journal):
    item = _packaged(journal)
    journal.outgoing.claim_for_sending(1, now=T0)
    with pytest.raises(InvalidTransition, match="being sent"):
        journal.outgoing.cancel(item.id)
    with pytest.raises(InvalidTransition, match="being sent"):
        journal.outgoing.requeue(item.id)
    journal.outgoing.record_attempt_failed(item.id, "bad", permanent=True, now=T0)
    again = journal.outgoing.requeue(item.id, now=T0)
    assert again.state is OutgoingState.PACKAGED and again.attempts == 0 and again.last_error is None
    cancelled = journal.outgoing.cancel(item.id, reason="sent on paper instead")
    assert cancelled.state is OutgoingState.CANCELLED
    assert journal.outgoing.claim_for_sending(5, now=T0 + dt.timedelta(days=1)) == []
    assert journal.outgoing.requeue(item.id).state is OutgoingState.PACKAGED
    journal.outgoing.claim_for_sending(1, now=T0 + dt.timedelta(days=1))
    journal.outgoing.record_sent(item.id, "axis-9")
    with pytest.raises(InvalidTransition, match="already sent"):
        journal.outgoing.requeue(item.id)
    with pytest.raises(InvalidTransition, match="already sent"):
        journal.outgoing.cancel(item.id)


def test_requeue_failed_bulk(journal):
    ids = []
    for ref in ("a", "b", "c"):
        item = _packaged(journal, ref)
        ids.append(item.id)
    journal.outgoing.claim_for_sending(3, now=T0)
    journal.outgoing.record_attempt_failed(ids[0], "x", permanent=True)
    journal.outgoing.record_attempt_failed(ids[1], "y", permanent=True)
    assert sorted(journal.outgoing.requeue_failed()) == sorted(ids[:2])
    assert journal.counts_by_state()["outgoing"]["failed"] == 0


def test_crash_recovery_item_in_sending_is_sent_again(journal):
    item = _packaged(journal)
    journal.outgoing.claim_for_sending(1, now=T0)
    # the process died here; a new one starts:
    assert journal.outgoing.claim_for_sending(5, now=T0 + dt.timedelta(minutes=1)) == []  # claim still fresh
    assert journal.outgoing.recover_interrupted(now=T0 + dt.timedelta(minutes=1)) == [item.id]
    [again] = journal.outgoing.claim_for_sending(5, now=T0 + dt.timedelta(minutes=1))
    assert again.id == item.id and again.attempts == 2 and again.package_sha256 == item.package_sha256


def test_stale_claim_is_taken_over_after_stale_after(journal):
    item = _packaged(journal)
    journal.outgoing.claim_for_sending(1, now=T0, owner="dead-host:1")
    later = T0 + dt.timedelta(minutes=11)
    [again] = journal.outgoing.claim_for_sending(5, now=later, stale_after=dt.timedelta(minutes=10),
                                        owner="live-host:2")
    assert again.id == item.id and again.claimed_by == "live-host:2"
    recovered = journal.events(item.id)[-1]
    assert recovered.event == "claim_recovered" and recovered.detail["previous_owner"] == "dead-host:1"


def test_recover_interrupted_only_for_given_owner(journal):
    mine, theirs = _packaged(journal, "m"), _packaged(journal, "t")
    journal.outgoing.claim_for_sending(1, now=T0, owner="me:1")
    journal.outgoing.claim_for_sending(1, now=T0, owner="them:2")
    assert journal.outgoing.recover_interrupted(claimed_by="me:1") == [mine.id]
    assert journal.outgoing.get_outgoing(theirs.id).state is OutgoingState.SENDING


def test_recipient_status_updates_latest_item_and_keeps_history(journal):
    old = _packaged(journal, "v1")
    new = journal.outgoing.enqueue("folder", "v2", "document", recipients=[A], now=T0 + dt.timedelta(hours=1))
    journal.outgoing.mark_packaged(new.id, package_path="/p", sha256="11" * 32, size=1,
                          document_id=old.document_id, now=T0 + dt.timedelta(hours=1))
    t1, t2 = T0 + dt.timedelta(hours=2), T0 + dt.timedelta(hours=3)
    updated = journal.recipients.record_recipient_status(old.document_id, A, "01",
                                                         description="Đã đến", at=t1)
    assert updated.id == new.id
    journal.recipients.record_recipient_status(old.document_id, A, "03", at=t2)
    # late, out of order (another 01, older than the 03; the same (01, t1) again would be a redelivery)
    journal.recipients.record_recipient_status(old.document_id, A, "01", at=t1 + dt.timedelta(minutes=30))
    delivery = {d.organ_id: d for d in journal.outgoing.get_outgoing(new.id).deliveries}[A]
    assert delivery.status_code == "03" and delivery.status_at == t2
    # B only received the first version: its status goes to that one
    for_b = journal.recipients.record_recipient_status(old.document_id, B, "02",
                                                       description="sai địa chỉ", at=t2)
    assert for_b.id == old.id
    assert {d.organ_id: d.status_code for d in for_b.deliveries}[B] == "02"
    history = journal.recipients.statuses(old.document_id)
    assert [s.code for s in history] == ["01", "03", "01", "02"]
    assert journal.recipients.record_recipient_status("unknown-doc", A, "01") is None
    assert len(journal.recipients.statuses("unknown-doc")) == 1


def test_find_by_id_or_document_id_and_unknown(journal):
    item = _packaged(journal)
    assert journal.find(item.id).id == item.id
    assert journal.find(item.document_id).id == item.id
    assert journal.find("nothing") is None
    with pytest.raises(UnknownItem):
        journal.outgoing.get_outgoing("nothing")
    with pytest.raises(UnknownItem):
        journal.outgoing.requeue("nothing")


def test_list_counts_and_oldest_pending_age(journal):
    assert journal.oldest_pending_age(T0) is None
    a = _packaged(journal, "a", now=T0)
    _packaged(journal, "b", now=T0 + dt.timedelta(minutes=30))
    assert journal.oldest_pending_age(T0 + dt.timedelta(hours=1)) == dt.timedelta(hours=1)
    journal.outgoing.claim_for_sending(1, now=T0 + dt.timedelta(hours=1))
    journal.outgoing.record_sent(a.id, "d")
    assert journal.oldest_pending_age(T0 + dt.timedelta(hours=1)) == dt.timedelta(minutes=30)
    assert [r.source_ref for r in journal.outgoing.list_outgoing("packaged")] == ["b"]
    assert [r.source_ref for r in journal.outgoing.list_outgoing(newest_first=False)] == ["a", "b"]
    counts = journal.counts_by_state()["outgoing"]
    assert counts["sent"] == 1 and counts["packaged"] == 1 and counts["failed"] == 0


def test_naive_datetimes_are_refused(journal):
    with pytest.raises(Exception, match="timezone-aware"):
        journal.outgoing.enqueue("folder", "n", "document", now=dt.datetime(2026, 1, 1))
