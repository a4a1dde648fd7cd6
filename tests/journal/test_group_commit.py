"""``record_sent`` from many send threads at once: committed in groups on SQLite, each caller
returning only once its own transition is committed, and one bad transition failing alone."""

from __future__ import annotations

import threading
import time

import pytest

from connector.journal import Journal, OutgoingState, Packaged, UnknownItem


def _claimed(journal: Journal, count: int) -> list:
    for index in range(count):
        journal.enqueue("folder", f"ref-{index}", "document", document_id=f"DOC-{index}",
                        recipients=["000.00.00.H01"])
    claimed = journal.claim_for_sending(count)
    assert len(claimed) == count
    return claimed


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the callers never queued up"
        time.sleep(0.002)


def _record_all_while_the_writer_lock_is_held(journal: Journal, calls: list) -> dict:
    """Start one thread per ``(item_id, axis_doc_id)`` while this thread holds the writer lock,
    wait until every one has queued its transition, then let them go."""
    outcomes: dict = {}

    def record(item_id: str, doc_id: str) -> None:
        try:
            outcomes[item_id] = journal.record_sent(
                item_id, doc_id, packaged=Packaged(f"/store/{item_id}.edxml", "ab" * 32, 1234,
                                                   f"DOC-{item_id}"))
        except Exception as error:
            outcomes[item_id] = error

    threads = [threading.Thread(target=record, args=call) for call in calls]
    with journal._write_lock:
        for thread in threads:
            thread.start()
        _wait_until(lambda: len(journal._group_commit._queue) == len(calls))
    for thread in threads:
        thread.join(30)
    return outcomes


def test_concurrent_sends_are_recorded_in_one_group(tmp_path):
    with Journal.open(f"sqlite:///{tmp_path / 'journal.db'}", owner="test") as journal:
        claimed = _claimed(journal, 6)
        outcomes = _record_all_while_the_writer_lock_is_held(
            journal, [(record.id, f"axis-{index}") for index, record in enumerate(claimed)])

        assert journal._group_commit.groups == 1 and journal._group_commit.grouped == 6
        for index, record in enumerate(claimed):
            returned = outcomes[record.id]
            assert returned.state is OutgoingState.SENT and returned.axis_doc_id == f"axis-{index}"
            assert returned.package_sha256 == "ab" * 32
            assert returned.recipients == ["000.00.00.H01"]
            stored = journal.get_outgoing(record.id)
            assert (stored.state, stored.axis_doc_id) == (OutgoingState.SENT, f"axis-{index}")
            assert [e.event for e in journal.events(record.id)][-2:] == ["packaged", "sent"]


def test_a_groups_events_are_inserted_in_one_statement_in_order(tmp_path):
    from sqlalchemy import event

    with Journal.open(f"sqlite:///{tmp_path / 'journal.db'}", owner="test") as journal:
        claimed = _claimed(journal, 4)
        event_inserts: list[int] = []

        def count(conn, cursor, statement, parameters, context, executemany):
            if statement.startswith("INSERT INTO events"):
                event_inserts.append(len(parameters) if executemany else 1)

        event.listen(journal.engine, "before_cursor_execute", count)
        try:
            _record_all_while_the_writer_lock_is_held(
                journal, [(record.id, f"axis-{index}") for index, record in enumerate(claimed)])
        finally:
            event.remove(journal.engine, "before_cursor_execute", count)

        assert journal._group_commit.groups == 1
        assert event_inserts == [8]  # packaged + sent of four items, one executemany
        for record in claimed:
            history = journal.events(record.id)
            assert [e.event for e in history][-2:] == ["packaged", "sent"]
            assert history[-1].detail["axis_doc_id"].startswith("axis-")
        # Outside a group, an event is inserted at once as before.
        journal.record_event(None, "journal", "probe")
        assert journal.events()[-1].event == "probe"


def test_a_failing_transition_fails_alone_and_the_others_are_committed(tmp_path):
    with Journal.open(f"sqlite:///{tmp_path / 'journal.db'}", owner="test") as journal:
        claimed = _claimed(journal, 3)
        calls = [(record.id, f"axis-{index}") for index, record in enumerate(claimed)]
        calls.insert(1, ("no-such-item", "axis-x"))
        outcomes = _record_all_while_the_writer_lock_is_held(journal, calls)

        assert isinstance(outcomes["no-such-item"], UnknownItem)
        for record in claimed:
            assert journal.get_outgoing(record.id).state is OutgoingState.SENT
            assert [e.event for e in journal.events(record.id)].count("sent") == 1


@pytest.mark.postgres
def test_on_postgresql_each_transition_is_its_own_transaction(pg_schema_url):
    with Journal.open(pg_schema_url, owner="test") as journal:
        assert journal._write_lock is None
        [record] = _claimed(journal, 1)
        sent = journal.record_sent(record.id, "axis-1")
        assert sent.state is OutgoingState.SENT and journal._group_commit.groups == 0
