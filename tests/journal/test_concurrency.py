"""Two claimers never get the same item: threads on SQLite (two engines, as two processes
would have), two engines with their own connections on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

from connector.journal import Journal, OutgoingState

ITEMS = 40


def test_concurrent_claimers_never_share_an_item(journal_url):
    with Journal.open(journal_url, owner="seed") as seed:
        for n in range(ITEMS):
            item = seed.outgoing.enqueue("folder", f"item-{n}", "package", recipients=["000.00.00.H41"])
            seed.outgoing.mark_packaged(item.id, package_path=f"/p/{n}", sha256=f"{n:064x}", size=1,
                               document_id=f"D{n}")
    journals = [Journal.open(journal_url, owner=f"claimer-{k}", migrate=False) for k in range(2)]
    claims: list[tuple[str, str]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def claimer(journal: Journal, name: str) -> None:
        try:
            start.wait()
            while True:
                batch = journal.outgoing.claim_for_sending(3, owner=name)
                if not batch:
                    return
                with lock:
                    claims.extend((record.id, name) for record in batch)
        except BaseException as error:  # surfaced below, with its type
            errors.append(error)

    threads = [threading.Thread(target=claimer, args=(journals[k % 2], f"t{k}")) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for journal in journals:
        journal.close()
    assert not errors, errors
    per_item = Counter(item_id for item_id, _ in claims)
    assert len(per_item) == ITEMS and max(per_item.values()) == 1
    with Journal.open(journal_url, migrate=False) as check:
        assert check.counts_by_state()["outgoing"]["sending"] == ITEMS
        # each item's history shows exactly one claim, by the thread that got it
        owner_of = dict(claims)
        sample = check.outgoing.list_outgoing(OutgoingState.SENDING, limit=5)
        for record in sample:
            claimed = [e for e in check.events(record.id) if e.event == "claimed"]
            assert len(claimed) == 1 and claimed[0].detail["owner"] == owner_of[record.id]


def test_concurrent_enqueue_of_the_same_item_makes_one_row(journal_url):
    journals = [Journal.open(journal_url, migrate=k > 0) for k in range(2)]
    results: list[str] = []
    start = threading.Barrier(4)

    def enqueue(journal: Journal) -> None:
        start.wait()
        results.append(journal.outgoing.enqueue("folder", "same.edxml", "package").id)

    threads = [threading.Thread(target=enqueue, args=(journals[k % 2],)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 4 and len(set(results)) == 1
    assert journals[0].counts_by_state()["outgoing"]["queued"] == 1
    for journal in journals:
        journal.close()


def test_leases_one_holder_at_a_time(journal):
    t0 = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    ttl = dt.timedelta(seconds=90)
    assert journal.acquire_lease("inbound-poller", ttl=ttl, owner="a", now=t0)
    assert not journal.acquire_lease("inbound-poller", ttl=ttl, owner="b", now=t0)
    assert journal.acquire_lease("inbound-poller", ttl=ttl, owner="a", now=t0 + ttl / 2)  # renew
    assert not journal.acquire_lease("inbound-poller", ttl=ttl, owner="b", now=t0 + ttl)
    assert journal.acquire_lease("inbound-poller", ttl=ttl, owner="b", now=t0 + 2 * ttl)  # a died
    journal.release_lease("inbound-poller", owner="b")
    assert journal.acquire_lease("inbound-poller", ttl=ttl, owner="a", now=t0 + 2 * ttl)
