"""``Journal.enqueue_many``: a batch in one transaction, with the same outcome as one ``enqueue``
per item (ids, events, idempotence on (source, source_ref)) — and the writer lock that lets
threads of one process share a SQLite journal without the busy handler."""

from __future__ import annotations

import threading

from connector.journal import NewOutgoing, OutgoingState


def _batch(refs, recipients=("000.00.00.H41",)):
    return [NewOutgoing("folder", ref, "document", document_id=f"doc-{ref}",
                        business_type=0, recipients=recipients, meta={"display_name": ref})
            for ref in refs]


def test_batch_records_each_item_with_its_event(journal):
    records = journal.outgoing.enqueue_many(_batch(["a", "b", "c"]))
    assert [r.source_ref for r in records] == ["a", "b", "c"]
    assert len({r.id for r in records}) == 3
    for record in records:
        assert record.state is OutgoingState.QUEUED
        assert [d.organ_id for d in record.deliveries] == ["000.00.00.H41"]
        assert [e.event for e in journal.events(record.id)] == ["enqueued"]
        assert journal.outgoing.get_outgoing(record.id).document_id == f"doc-{record.source_ref}"


def test_batch_is_idempotent_per_item(journal):
    first = journal.outgoing.enqueue_many(_batch(["a", "b"]))
    journal.outgoing.claim_for_sending(1)  # "a" moves on; enqueuing it again must not reset it
    again = journal.outgoing.enqueue_many(_batch(["a", "b", "c"]))
    assert [r.id for r in again[:2]] == [r.id for r in first]
    assert again[0].state is OutgoingState.SENDING
    assert journal.counts_by_state()["outgoing"]["queued"] == 2
    assert [e.event for e in journal.events(first[1].id)] == ["enqueued"]


def test_single_enqueue_and_empty_batch(journal):
    assert journal.outgoing.enqueue_many([]) == []
    record = journal.outgoing.enqueue("folder", "x", "document", recipients=["000.00.00.H41"])
    assert journal.outgoing.enqueue("folder", "x", "document").id == record.id


def test_threads_share_the_writer(journal):
    """Many threads committing at once all succeed (no 'database is locked'), each item once."""
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(worker: int) -> None:
        try:
            start.wait()
            for index in range(10):
                journal.outgoing.enqueue_many(_batch([f"{worker}-{index}", "shared"]))
        except BaseException as error:  # collected: asserted below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert journal.counts_by_state()["outgoing"]["queued"] == 61
