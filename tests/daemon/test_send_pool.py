"""Packages sent from worker processes: same bytes, same outcomes, same errors, same log lines and
metrics as a send from the daemon's own client; a broken or busy pool hands the send back."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading

import pytest

from connector.axis.errors import AxisAuthError, PermanentAxisError, TransientAxisError
from connector.errors import InputError
from connector.journal import OutgoingState
from connector.outbound_send import SendPool

from .conftest import PDF, document_metadata, drop_bundle, inbox_entries
from .test_packaging_pool import _StallsTheWorker, _wait_until_in

pytestmark = pytest.mark.slow  # starts worker processes


def _attach_pool(agency, workers: int = 2) -> tuple[SendPool, list]:
    pool = SendPool.start(workers, agency.runtime.axis_settings)
    assert pool is not None
    seen: list = []
    pool.observe = lambda url, seconds, date: seen.append((url, seconds, date))
    agency.runtime.send_pool = pool
    return pool, seen


def _send_one(a, number: str = "101", **metadata) -> None:
    drop_bundle(a.exchange / "outbox", f"cv{number}", document_metadata(number=number, **metadata),
                {"Công văn số 101.pdf": PDF})
    a.cycle()


def test_documents_and_statuses_sent_by_workers_arrive_and_are_observed(pair, simulator):
    a, b = pair
    a_pool, a_seen = _attach_pool(a)
    b_pool, _ = _attach_pool(b)
    _send_one(a)

    [sent] = a.journal.list_outgoing(OutgoingState.SENT)
    assert a_pool.sent == 1
    [transfer] = [t for t in simulator.store.transfers() if t["sender"] == a.organ_id]
    assert str(transfer["doc_id"]) == sent.axis_doc_id
    [(url, seconds, date)] = a_seen  # the worker's one request, for metrics and clock skew
    assert url.endswith("/sendEdoc") and 0 < seconds < 10 and date
    b.poll()  # B stores it and answers 01 (a status package) through its own workers
    [entry] = inbox_entries(b.exchange)
    assert (entry / "Công văn số 101.pdf").read_bytes() == PDF
    assert b_pool.sent == 1
    [status] = [o for o in b.journal.list_outgoing() if o.kind == "status"]
    assert status.state is OutgoingState.SENT
    a.inbound.poll()
    [delivery] = a.journal.get_outgoing(sent.id).deliveries
    assert delivery.status_code == "01"


def test_a_transient_failure_in_a_worker_is_retried_and_its_log_lines_reach_the_daemon(
        pair, simulator, caplog):
    a, _ = pair
    pool, seen = _attach_pool(a)
    simulator.faults.update({"next": {"error": 2}, "operations": ["sendEdoc"]})
    with caplog.at_level(logging.INFO, logger="connector.axis.client"):
        _send_one(a)  # the client's 2 quick tries both get 503: one attempt fails, then sent
    [record] = a.journal.list_outgoing()
    assert record.state is OutgoingState.SENT and record.attempts == 2 and pool.sent == 1
    [failed] = [e for e in a.journal.events(record.id) if e.event == "attempt_failed"]
    assert "503" in str(failed.detail)
    replayed = [r.getMessage() for r in caplog.records if r.name == "connector.axis.client"]
    assert any("sendEdoc attempt 1 failed" in message for message in replayed)
    assert any("gave up after 2 attempt(s)" in message for message in replayed)
    assert len(seen) == 3  # both failed tries and the accepted one, observed


def test_a_permanent_refusal_in_a_worker_fails_the_item_with_the_axis_reason(
        make_agency, simulator):
    make_agency("B")
    # Recipients left to the axis, which refuses the unknown one for good.
    a = make_agency("A", outbound={"check_recipients": False})
    _attach_pool(a)
    _send_one(a, to="000.00.00.H99")
    [record] = a.journal.list_outgoing()
    assert record.state is OutgoingState.FAILED and record.attempts == 1
    assert "the axis refused it: FAIL" in record.last_error and "000.00.00.H99" in record.last_error
    assert (a.exchange / "failed" / "cv101").is_dir()


def test_refused_credentials_in_a_worker_pause_sending_without_spending_attempts(
        make_agency, simulator):
    make_agency("B")
    a = make_agency("A", secret="not-the-secret")  # the axis refuses us (HTTP 401)
    pool, _ = _attach_pool(a)
    _send_one(a)
    [record] = a.journal.list_outgoing()
    assert record.state is OutgoingState.PACKAGED and record.attempts == 0
    assert a.outbound.paused and "credentials" in a.outbound.paused_reason
    assert pool.usable and pool.sent == 0  # the error came back; the workers are fine


def test_a_broken_send_pool_hands_the_send_back_to_the_daemons_client(pair, simulator):
    a, _ = pair
    pool, _ = _attach_pool(a)
    for process in pool.processes:
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
    _send_one(a)

    assert not pool.usable and pool.sent == 0
    [record] = a.journal.list_outgoing()
    assert record.state is OutgoingState.SENT and record.attempts == 1


def test_with_every_worker_busy_a_send_is_left_to_the_caller_at_once(pair):
    a, _ = pair
    pool, _ = _attach_pool(a, workers=1)
    busy = threading.Thread(target=pool.call, args=(_StallsTheWorker(),), name="busy",
                            daemon=True)
    busy.start()
    _wait_until_in(busy, "recv_bytes")  # the only worker is taken

    assert pool.send("/nonexistent", "0" * 64) is None  # no wait for the busy worker
    for process in pool.processes:  # end the stall (the pool breaks; the thread returns)
        os.kill(process.pid, signal.SIGKILL)
    busy.join(30)
    assert not busy.is_alive()


@pytest.mark.parametrize("error", [
    PermanentAxisError("E_RECIPIENT", "unknown recipient", operation="sendEdoc", http_status=200),
    AxisAuthError("refused", operation="sendEdoc", error_code="E_AUTH", http_status=401),
    TransientAxisError("HTTP 503", operation="sendEdoc", http_status=503),
    InputError("the stored package is missing", file="/x.edxml", element="e", hint="copy it"),
], ids=lambda error: type(error).__name__)
def test_errors_cross_a_process_boundary_with_their_type_and_fields(error):
    error.attempts = 3
    copy = pickle.loads(pickle.dumps(error, pickle.HIGHEST_PROTOCOL))
    assert type(copy) is type(error)
    assert copy.one_line() == error.one_line() and copy.args == error.args
    assert vars(copy) == vars(error)
