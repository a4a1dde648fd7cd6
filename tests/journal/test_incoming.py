"""Incoming transitions, de-duplication and crash recovery, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from connector.journal import IncomingState, InvalidTransition

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.timezone.utc)
SENDER = "000.00.00.H41"
DOC = "000.00.00.H41,2026/03/01,12/UBND-VP"
WINDOW = dt.timedelta(days=30)


def _stored(journal, axis_doc_id, *, sha="aa" * 32, business_type=0, now=T0, signature="valid"):
    item = journal.incoming.record_listed(axis_doc_id, "edoc", now=now)
    journal.incoming.record_fetched(item.id, size=10, now=now)
    journal.incoming.record_verified(item.id, signature_state=signature, now=now)
    return journal.incoming.record_stored(item.id, package_path=f"/inbox/{axis_doc_id}/package.edxml",
                                 sha256=sha, size=10, sender=SENDER, document_id=DOC,
                                 business_type=business_type, signature_state=signature, now=now)


def test_happy_path_and_history(journal):
    stored = _stored(journal, "axis-1")
    assert stored.state is IncomingState.STORED and stored.is_stored and not stored.is_acknowledged
    acked = journal.incoming.record_acknowledged(stored.id, now=T0)
    delivered = journal.incoming.record_delivered(stored.id, "/x/inbox/2026-03-01/H41_12_axis-1", now=T0)
    assert acked.state is IncomingState.ACKNOWLEDGED
    assert delivered.state is IncomingState.DELIVERED and delivered.acknowledged_at == T0
    assert [e.event for e in journal.events(stored.id)] == [
        "listed", "fetched", "verified", "stored", "acknowledged", "delivered"]
    assert journal.incoming.pending_incoming() == []


def test_every_step_is_idempotent(journal):
    stored = _stored(journal, "axis-1")
    again = journal.incoming.record_listed("axis-1", "edoc")
    assert again.id == stored.id and again.state is IncomingState.STORED
    journal.incoming.record_fetched(stored.id)
    journal.incoming.record_verified(stored.id, signature_state="invalid")
    journal.incoming.record_stored(stored.id, package_path="/other", sha256="bb" * 32, size=1, sender=None,
                          document_id=None, business_type=None, signature_state=None)
    journal.incoming.record_acknowledged(stored.id)
    journal.incoming.record_acknowledged(stored.id)
    journal.incoming.record_delivered(stored.id, "/a")
    journal.incoming.record_delivered(stored.id, "/b")
    final = journal.incoming.get_incoming(stored.id)
    assert final.package_path.endswith("axis-1/package.edxml") and final.signature_state == "valid"
    assert final.delivered_location == "/a"
    assert len(journal.events(stored.id)) == 6


def test_delivered_before_acknowledged_keeps_both_facts(journal):
    stored = _stored(journal, "axis-1")
    journal.incoming.record_delivered(stored.id, "/inbox/a")
    acked = journal.incoming.record_acknowledged(stored.id)
    assert acked.state is IncomingState.DELIVERED and acked.is_acknowledged


def test_nothing_is_acknowledged_before_it_is_stored(journal):
    listed = journal.incoming.record_listed("axis-2", "edoc")
    journal.incoming.record_fetched(listed.id)
    with pytest.raises(InvalidTransition, match="not stored"):
        journal.incoming.record_acknowledged(listed.id)
    with pytest.raises(InvalidTransition, match="not stored"):
        journal.incoming.record_delivered(listed.id, "/x")
    failed = journal.incoming.record_incoming_failed(listed.id, "No space left on device", step="store")
    assert failed.state is IncomingState.FETCHED and failed.last_error == "No space left on device"
    assert journal.events(listed.id)[-1].event == "store_failed"
    # it comes back next poll: listing again returns the same row, still to be stored
    assert journal.incoming.record_listed("axis-2", "edoc").state is IncomingState.FETCHED


def test_duplicate_by_content_within_window(journal):
    original = _stored(journal, "axis-1", now=T0)
    redelivered = _stored(journal, "axis-9", now=T0 + dt.timedelta(days=2))
    found = journal.incoming.find_duplicate(SENDER, DOC, 0, "aa" * 32, window=WINDOW,
                                   now=T0 + dt.timedelta(days=2), exclude_id=redelivered.id)
    assert found is not None and found.id == original.id
    marked = journal.incoming.record_duplicate(redelivered.id, original.id)
    assert marked.state is IncomingState.DUPLICATE and marked.duplicate_of == original.id
    # outside the window it is not a duplicate any more
    assert journal.incoming.find_duplicate(SENDER, DOC, 0, "aa" * 32, window=WINDOW,
                                  now=T0 + dt.timedelta(days=31), exclude_id=redelivered.id) is None
    # a duplicate is acknowledged but never delivered: once acknowledged it is not pending
    assert redelivered.id in [r.id for r in journal.incoming.pending_incoming()]
    journal.incoming.record_acknowledged(redelivered.id)
    assert redelivered.id not in [r.id for r in journal.incoming.pending_incoming()]


def test_revoke_reusing_the_document_id_is_not_a_duplicate(journal):
    _stored(journal, "axis-1", sha="aa" * 32, business_type=0)
    revoke = _stored(journal, "axis-2", sha="aa" * 32, business_type=1)
    assert journal.incoming.find_duplicate(SENDER, DOC, 1, "aa" * 32, window=WINDOW, now=T0,
                                  exclude_id=revoke.id) is None
    # and different bytes with the same DocumentId and type are not a duplicate either
    assert journal.incoming.find_duplicate(SENDER, DOC, 0, "cc" * 32, window=WINDOW, now=T0) is None


def test_quarantine_release_and_refuse(journal):
    bad = _stored(journal, "axis-q1", signature="invalid")
    q = journal.incoming.record_quarantined(bad.id, "signature invalid", "/q/2026-03-01/x")
    journal.incoming.record_acknowledged(bad.id)
    assert q.quarantined and q.state is IncomingState.QUARANTINED
    assert journal.incoming.get_incoming(bad.id).state is IncomingState.QUARANTINED
    assert [r.id for r in journal.incoming.list_incoming(quarantined=True)] == [bad.id]
    assert journal.incoming.pending_incoming() == []  # parked, waits for an operator
    released = journal.incoming.record_delivered(bad.id, "/inbox/x")
    assert released.state is IncomingState.DELIVERED and not released.quarantined
    assert journal.events(bad.id)[-1].event == "released"

    other = _stored(journal, "axis-q2", signature="invalid")
    journal.incoming.record_quarantined(other.id, "signature invalid", "/q/y")
    refused = journal.incoming.record_refused(other.id, "chữ ký không hợp lệ")
    assert refused.state is IncomingState.REFUSED and not refused.quarantined
    with pytest.raises(InvalidTransition):
        journal.incoming.record_refused(bad.id, "too late")


def test_pending_incoming_lists_what_a_crash_left_half_done(journal):
    minute = dt.timedelta(minutes=1)
    not_acked = _stored(journal, "axis-1", now=T0)
    acked_not_delivered = _stored(journal, "axis-2", now=T0 + minute)
    journal.incoming.record_acknowledged(acked_not_delivered.id)
    done = _stored(journal, "axis-3", now=T0 + 2 * minute)
    journal.incoming.record_acknowledged(done.id)
    journal.incoming.record_delivered(done.id, "/x")
    journal.incoming.record_listed("axis-4", "edoc")  # never stored: the axis lists it again, not our job
    assert [r.id for r in journal.incoming.pending_incoming()] == [not_acked.id, acked_not_delivered.id]


def test_find_incoming_by_id_axis_docid_and_document_id(journal):
    stored = _stored(journal, "axis-1")
    for key in (stored.id, "axis-1", DOC):
        assert journal.incoming.find_incoming(key).id == stored.id
    assert journal.find(stored.id).id == stored.id  # no outgoing item with that id
    assert journal.incoming.find_incoming("nope") is None


def test_incoming_counts_and_pending_age(journal):
    _stored(journal, "axis-1", now=T0)
    counts = journal.counts_by_state()["incoming"]
    assert counts["stored"] == 1 and counts["listed"] == 0
    assert journal.oldest_pending_age(T0 + dt.timedelta(minutes=5)) == dt.timedelta(minutes=5)
