"""Small pure parts: backoff, archive retention, the package store's first-bytes-win rule."""

from __future__ import annotations

import datetime as dt
import os
import time

from connector.journal.package_store import PackageStore
from connector.pipeline.outbound import retry_delay
from connector.pipeline.retention import purge_archive


def test_retry_delay_doubles_with_jitter_and_is_capped():
    assert retry_delay(1, 30, 3600, rng=lambda: 1.0) == 30
    assert retry_delay(1, 30, 3600, rng=lambda: 0.0) == 15
    assert retry_delay(3, 30, 3600, rng=lambda: 1.0) == 120
    assert retry_delay(20, 30, 3600, rng=lambda: 1.0) == 3600


def test_purge_archive_removes_old_items_with_their_sidecars_only(tmp_path):
    sent = tmp_path / "sent"
    (sent / "statuses").mkdir(parents=True)
    old, new = time.time() - 10 * 86400, time.time()
    for name, when in (("old.edxml", old), ("old.edxml.receipt.json", old), ("fresh.edxml", new),
                       ("fresh.edxml.receipt.json", new), ("statuses/s1.yaml", old),
                       ("half.edxml", old), ("half.edxml.receipt.json", new)):
        path = sent / name
        path.write_text("x")
        os.utime(path, (when, when))
    bundle = sent / "oldbundle"
    bundle.mkdir()
    (bundle / "document.yaml").write_text("x")
    os.utime(bundle, (old, old))
    removed = purge_archive(sent, dt.timedelta(days=5))
    assert removed == 3
    assert sorted(p.name for p in sent.iterdir()) == [
        "fresh.edxml", "fresh.edxml.receipt.json", "half.edxml", "half.edxml.receipt.json",
        "statuses"]
    assert list((sent / "statuses").iterdir()) == []


def test_store_keeps_the_first_bytes_of_an_item(tmp_path):
    store = PackageStore(tmp_path / "packages")
    first = store.put_outgoing_bytes("ITEM1", b"first")
    again = store.put_outgoing_bytes("ITEM1", b"second")
    assert again.sha256 == first.sha256 and first.path.read_bytes() == b"first"
    package_set = store.put_outgoing_set("ITEM2", [("000.00.00.G22", b"a"), ("000.00.00.H41", b"b")])
    members = store.members(package_set.path)
    assert [m.to for m in members] == ["000.00.00.G22", "000.00.00.H41"]
    assert [m.path.read_bytes() for m in members] == [b"a", b"b"]


def test_the_first_package_published_wins_a_race_between_two_writers(tmp_path):
    """A killed daemon's leftover writer and the restarted daemon may build the same item at
    once: whoever publishes first wins, and the other's bytes never replace them (the journal
    records the SHA-256 of what is in the store, and every attempt must send those bytes)."""
    store = PackageStore(tmp_path / "packages")

    def slow_writer(path):
        path.write_bytes(b"built by the restarted daemon")
        # Meanwhile the other writer publishes its package under the final name.
        store.put_outgoing_bytes("ITEM1", b"built by the old worker")

    stored = store.put_outgoing("ITEM1", slow_writer)
    final = store.outgoing_path("ITEM1")
    assert final.read_bytes() == b"built by the old worker"
    assert stored.path == final and stored.size == len(b"built by the old worker")
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]  # no temporary left
