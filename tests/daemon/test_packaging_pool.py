"""Documents packaged in worker processes: same package, same guarantees, and a broken pool
falls back to packaging in the daemon process."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

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
    assert pool.processes and all(process.is_alive() for process in pool.processes)
    for process in pool.processes:
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
    a.cycle()

    assert not pool.usable and pool.packaged == 0
    [sent] = a.journal.list_outgoing(OutgoingState.SENT)
    assert sha256_of(sent.package_path)[0] == sent.package_sha256


class _StallsTheWorker:
    """A job that keeps its worker busy: unpickling it in the worker sleeps (the test kills the
    worker long before)."""

    def __reduce__(self):
        return time.sleep, (600,)


def _wait_until_in(thread: threading.Thread, function: str, timeout: float = 30) -> None:
    """Wait until ``thread`` is inside ``function`` (bounded; looks at its stack, no guessing
    with sleeps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident)
        while frame is not None:
            if frame.f_code.co_name == function:
                return
            frame = frame.f_back
        time.sleep(0.01)
    raise AssertionError(f"{thread.name} never got to {function}()")


def test_send_threads_waiting_on_a_pool_whose_workers_die_do_not_hang(pooled_pair):
    a, _, pool = pooled_pair
    results: dict[str, object] = {}

    def send(name: str) -> None:
        results[name] = pool.run(_StallsTheWorker(), a.runtime.signing_key)

    busy = threading.Thread(target=send, args=("busy",), name="busy", daemon=True)
    busy.start()
    _wait_until_in(busy, "recv_bytes")  # its job is with the only worker
    waiting = [threading.Thread(target=send, args=(f"waiting-{n}",), name=f"waiting-{n}",
                                daemon=True) for n in range(3)]
    for thread in waiting:
        thread.start()
    for thread in waiting:
        _wait_until_in(thread, "_take")
    for process in pool.processes:
        os.kill(process.pid, signal.SIGKILL)

    for thread in [busy, *waiting]:
        thread.join(30)
        assert not thread.is_alive(), f"{thread.name} hangs on a broken pool"
    assert results == {"busy": None, **{f"waiting-{n}": None for n in range(3)}}
    assert not pool.usable
    assert pool.run(_StallsTheWorker(), a.runtime.signing_key) is None  # at once, from now on


def _send_pool():
    from connector.axis.client import AxisSettings
    from connector.outbound_send import SendPool

    return SendPool.start(2, AxisSettings(endpoint="http://127.0.0.1:9", systemid="x",
                                          secret="not-used"))


@pytest.mark.parametrize("start", [lambda: PackagingPool.start(2), _send_pool],
                         ids=["packaging", "send"])
def test_shutdown_leaves_no_worker_behind(start):
    pool = start()
    assert pool is not None
    processes = pool.processes
    pids = [process.pid for process in processes]
    assert len(set(pids)) == 2 and all(process.is_alive() for process in processes)

    pool.shutdown()
    pool.shutdown()  # idempotent

    assert not pool.usable
    assert not any(process.is_alive() for process in processes)
    for pid in pids:  # gone, not even a zombie
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
