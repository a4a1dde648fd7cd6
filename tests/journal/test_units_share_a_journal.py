"""A hub's units share one journal (issue 14, part 3): each unit's pipelines see only its own
work — what it sends, what it recovers after a crash, what it resumes, which received package
is a duplicate — while operator views see every unit."""

from __future__ import annotations

import datetime as dt

import pytest

from connector.journal import KV_LAST_POLL, Journal, unit_key

FIRST = "000.01.00.U00"
SECOND = "000.01.00.U01"
WINDOW = dt.timedelta(days=30)


@pytest.fixture
def journals(tmp_path):
    first = Journal.open(f"sqlite:///{tmp_path / 'journal.db'}", agency=FIRST)
    second = first.for_agency(SECOND)
    yield first, second
    second.close()  # a view: leaves the engine to the journal that opened it
    first.close()


def test_each_unit_claims_and_recovers_only_its_own_items(journals):
    first, second = journals
    mine = first.outgoing.enqueue("folder", "a", "document", recipients=["000.00.00.H41"])
    theirs = second.outgoing.enqueue("folder", "b", "document", recipients=["000.00.00.H41"])
    assert (mine.agency, theirs.agency) == (FIRST, SECOND)
    assert [r.id for r in second.outgoing.claim_for_sending(10)] == [theirs.id]
    assert [r.id for r in first.outgoing.claim_for_sending(10)] == [mine.id]
    # a crash: each unit puts back only its own claims
    assert first.outgoing.recover_interrupted() == [mine.id]
    assert first.outgoing.get_outgoing(theirs.id).state.value == "sending"
    assert second.outgoing.recover_interrupted() == [theirs.id]
    # the operator's view (the journal, not a unit) lists both
    assert {r.agency for r in first.outgoing.list_outgoing()} == {FIRST, SECOND}
    assert first.outgoing.list_outgoing(agency=SECOND)[0].id == theirs.id


def store(journal: Journal, axis_doc_id: str, sha: str = "ab" * 32):
    listed = journal.incoming.record_listed(axis_doc_id, "edoc", sender="000.00.00.H41")
    return journal.incoming.record_stored(
        listed.id, package_path=f"/p/{listed.id}", sha256=sha, size=1, sender="000.00.00.H41",
        document_id="000.00.00.H41,2026/12/07,1/X", business_type=0, signature_state="valid")


def test_one_package_for_two_units_is_no_duplicate_and_each_resumes_its_own(journals):
    first, second = journals
    one = store(first, "AXIS-7")
    other = store(second, "AXIS-7")  # the axis lists one transfer to both units
    assert one.id != other.id
    assert second.incoming.find_duplicate("000.00.00.H41", one.document_id, 0, "ab" * 32,
                                          window=WINDOW, exclude_id=other.id) is None
    again = store(second, "AXIS-8")  # the same package again, to the same unit: a duplicate
    assert second.incoming.find_duplicate("000.00.00.H41", one.document_id, 0, "ab" * 32,
                                          window=WINDOW, exclude_id=again.id).id == other.id
    assert second.incoming.find_received(one.document_id).id == other.id
    assert {r.id for r in first.incoming.pending_incoming()} == {one.id}
    assert {r.id for r in second.incoming.pending_incoming()} == {other.id, again.id}
    assert len(first.incoming.pending_incoming(every_unit=True)) == 3


def test_per_unit_values_keep_the_first_units_single_agency_keys(journals):
    first, second = journals
    assert first.unit_key(KV_LAST_POLL) == KV_LAST_POLL
    assert first.for_agency(FIRST).unit_key(KV_LAST_POLL) == KV_LAST_POLL
    assert second.unit_key(KV_LAST_POLL) == unit_key(KV_LAST_POLL, SECOND)
