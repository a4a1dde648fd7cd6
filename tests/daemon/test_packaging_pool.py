"""Documents packaged in worker processes: same package, same guarantees, and a broken pool
falls back to packaging in the daemon process."""

from __future__ import annotations

import json
import os
import signal

import pytest

from connector.journal import OutgoingState
from connector.outbound_build import PackagingPool
from connector.package_store import sha256_of

from .conftest import PDF, document_metadata, drop_bundle, inbox_entries

pytestmark = pytest.mark.slow  # starts worker processes


@pytest.fixture
def pooled_pair(make_agency):
    a, b = make_agency("A"), make_agency("B")
    pool = PackagingPool.start(1)
    assert pool is not None
    a.runtime.packaging_pool = pool
    yield a, b, pool
    pool.shutdown()


def test_a_document_packaged_in_a_worker_is_signed_stored_and_delivered(pooled_pair):
    a, b, pool = pooled_pair
    drop_bundle(a.exchange / "outbox", "cv201", document_metadata(), {"Công văn số 101.pdf": PDF})
    a.cycle()

    assert pool.packaged == 1
    [sent] = a.journal.list_outgoing(OutgoingState.SENT)
    assert sha256_of(sent.package_path) == (sent.package_sha256, sent.package_size)
    assert [e.event for e in a.journal.events(sent.id)].count("packaged") == 1
    b.poll()
    [entry] = inbox_entries(b.exchange)
    metadata = json.loads((entry / "metadata.json").read_text())
    assert metadata["signature"]["state"] == "valid"
    assert metadata["document_id"] == sent.document_id
    assert (entry / "Công văn số 101.pdf").read_bytes() == PDF


def test_a_broken_pool_falls_back_to_packaging_in_process(pooled_pair):
    a, _, pool = pooled_pair
    drop_bundle(a.exchange / "outbox", "cv202", document_metadata(), {"Công văn số 101.pdf": PDF})
    pool._executor.submit(os.getpid).result(timeout=60)  # the worker is up
    for process in list(pool._executor._processes.values()):
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
    a.cycle()

    assert not pool.usable and pool.packaged == 0
    [sent] = a.journal.list_outgoing(OutgoingState.SENT)
    assert sha256_of(sent.package_path)[0] == sent.package_sha256
