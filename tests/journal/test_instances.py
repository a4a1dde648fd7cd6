"""Two connectors sharing one journal (PostgreSQL in production; SQLite runs the same rules):
an item is sent and finished only by the instance that took it in, an operator can make a
gone instance's items another's, and one poller at a time pulls from the axis."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from connector.journal import Journal, JournalError, OutgoingState
from connector.journal import schema as t

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.timezone.utc)
A = "000.00.00.H41"


@pytest.fixture
def pair(journal_url):
    node_a = Journal.open(journal_url, owner="host-a:1", instance="node-a")
    node_b = Journal.open(journal_url, owner="host-b:1", instance="node-b")
    yield node_a, node_b
    node_a.close()
    node_b.close()


def _enqueue(journal, ref):
    return journal.outgoing.enqueue("folder", ref, "document", recipients=[A], now=T0)


def test_each_instance_claims_only_the_items_it_took_in(pair):
    node_a, node_b = pair
    mine_a = {_enqueue(node_a, f"a{i}").id for i in range(3)}
    mine_b = {_enqueue(node_b, f"b{i}").id for i in range(2)}
    assert node_a.outgoing.get_outgoing(next(iter(mine_a))).instance == "node-a"
    claimed_b = {r.id for r in node_b.outgoing.claim_for_sending(10, now=T0)}
    claimed_a = {r.id for r in node_a.outgoing.claim_for_sending(10, now=T0)}
    assert claimed_a == mine_a and claimed_b == mine_b


def test_a_stale_claim_of_another_instance_is_not_taken_over(pair):
    node_a, node_b = pair
    item = _enqueue(node_a, "a1")
    node_a.outgoing.claim_for_sending(1, now=T0)
    much_later = T0 + dt.timedelta(days=1)
    assert node_b.outgoing.claim_for_sending(10, now=much_later) == []
    assert node_b.outgoing.recover_interrupted(now=much_later) == []
    assert node_b.outgoing.get_outgoing(item.id).state is OutgoingState.SENDING
    # its own instance does recover it (after a restart: new owner, same instance)
    restarted_a = Journal(node_a.engine, owner="host-a:2", instance="node-a")
    assert restarted_a.outgoing.recover_interrupted(now=much_later) == [item.id]


def test_rows_from_before_instances_and_any_instance_mode(pair, journal_url):
    node_a, node_b = pair
    legacy = _enqueue(node_a, "legacy")
    with node_a.engine.begin() as conn:
        conn.execute(update(t.outgoing).where(t.outgoing.c.id == legacy.id).values(instance=None))
    other = _enqueue(node_a, "a-only")
    assert [r.id for r in node_b.outgoing.claim_for_sending(10, now=T0)] == [legacy.id]
    with Journal.open(journal_url, owner="host-c:1", instance="node-c", any_instance=True) as shared:
        assert [r.id for r in shared.outgoing.claim_for_sending(10, now=T0)] == [other.id]


def test_pending_incoming_is_finished_by_the_instance_that_stored_it(pair):
    node_a, node_b = pair
    listed = node_a.incoming.record_listed("axis-1", "edoc", now=T0)
    node_a.incoming.record_stored(listed.id, package_path="/a/store/axis-1", sha256="aa" * 32, size=1,
                         sender=A, document_id="D", business_type=0, signature_state="valid",
                         now=T0)
    assert [r.id for r in node_a.incoming.pending_incoming()] == [listed.id]
    assert node_b.incoming.pending_incoming() == []


def test_adopt_makes_a_gone_instances_items_ours(pair):
    node_a, node_b = pair
    queued = _enqueue(node_a, "q")
    in_flight = _enqueue(node_a, "s")
    node_a.outgoing.mark_packaged(in_flight.id, package_path="/a/p", sha256="ab" * 32, size=1,
                         document_id="D1", now=T0)
    node_a.outgoing.claim_for_sending(5, now=T0)   # both claimed by node-a, which then dies
    node_a.outgoing.record_attempt_failed(queued.id, "boom", permanent=True, now=T0)
    done = _enqueue(node_a, "done")
    node_a.outgoing.claim_for_sending(5, now=T0)
    node_a.outgoing.record_sent(done.id, "axis-9", now=T0)
    listed = node_a.incoming.record_listed("axis-in", "edoc", now=T0)
    node_a.incoming.record_stored(listed.id, package_path="/a/in", sha256="cc" * 32, size=1, sender=A,
                         document_id="D2", business_type=0, signature_state="valid", now=T0)

    # node-a's claim is fresh: it may still be running
    with pytest.raises(JournalError, match="may still be running"):
        node_b.ownership.adopt("node-a", now=T0 + dt.timedelta(minutes=1))
    later = T0 + dt.timedelta(hours=1)
    adopted = node_b.ownership.adopt("node-a", now=later)
    assert sorted(adopted["outgoing"]) == sorted([queued.id, in_flight.id])
    assert adopted["incoming"] == [listed.id]
    assert node_b.outgoing.get_outgoing(done.id).instance == "node-a"   # sent items stay where they are
    back = node_b.outgoing.get_outgoing(in_flight.id)
    assert back.instance == "node-b" and back.state is OutgoingState.PACKAGED
    assert [r.id for r in node_b.outgoing.claim_for_sending(5, now=later)] == [in_flight.id]
    node_b.outgoing.requeue(queued.id, now=later)  # a failed one can be retried here now
    assert [r.id for r in node_b.outgoing.claim_for_sending(5, now=later)] == [queued.id]
    assert [r.id for r in node_b.incoming.pending_incoming()] == [listed.id]
    assert node_a.outgoing.claim_for_sending(5, now=later) == []
    assert "adopted" in [e.event for e in node_b.events(in_flight.id)]
    assert node_b.ownership.instances().get("node-a", {"outgoing": 0})["outgoing"] == 0
    with pytest.raises(JournalError):
        node_b.ownership.adopt("node-b")


def test_one_poller_at_a_time(pair):
    from connector.pipeline.inbound import POLLER_LEASE, Inbound

    node_a, node_b = pair

    class Axis:
        def __init__(self):
            self.calls = 0

        def list_received(self, messagetype):
            self.calls += 1
            return []

    def inbound(journal):
        runtime = SimpleNamespace(
            journal=journal, axis=Axis(), database=None, folder=None,
            settings=SimpleNamespace(timezone="Asia/Ho_Chi_Minh",
                                     schedules=SimpleNamespace(axis_poll_seconds=60)))
        return Inbound(runtime)

    poller_a, poller_b = inbound(node_a), inbound(node_b)
    assert node_a.acquire_lease(POLLER_LEASE, ttl=dt.timedelta(minutes=5))  # A is mid-poll
    assert poller_b.poll() == {"listed": 0, "failed": 0, "skipped": 1}
    assert poller_b.runtime.axis.calls == 0
    node_a.release_lease(POLLER_LEASE)
    assert poller_b.poll() == {"listed": 0, "failed": 0}
    assert poller_b.runtime.axis.calls == 2
    # released at the end of the poll: A can poll next time
    assert poller_a.poll() == {"listed": 0, "failed": 0}
