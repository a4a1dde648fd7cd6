"""Fault injection: the client retries what is transient, stops at its bound with a typed error,
and never reads an unreadable list as an empty one."""

from __future__ import annotations

import pytest
import requests
from axis_helpers import G22, H41

from connector.axis import protocol as p
from connector.axis.client import RetryPolicy
from connector.axis.errors import TransientAxisError
from connector.axis.sim.faults import FaultConfig, FaultInjector
from connector.axis.sim.samples import make_document


def set_faults(sim, **changes):
    response = requests.post(f"{sim.admin_url}/faults", json=changes, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def transfers(sim):
    return requests.get(f"{sim.admin_url}/transfers", timeout=5).json()["transfers"]


@pytest.mark.parametrize("kind", ["error", "reset", "malformed"])
def test_client_retries_a_transient_fault_and_succeeds(sim, make_client, kind):
    sender = make_client(sim, G22)
    set_faults(sim, next={kind: 2})
    sent = sender.send_edoc(make_document(G22, [H41]))
    assert [t["doc_id"] for t in transfers(sim)] == [sent.doc_id]  # faults changed nothing
    assert requests.get(f"{sim.admin_url}/faults", timeout=5).json()["injected"][kind] == 2


def test_client_retries_a_hang_past_its_read_timeout(sim, make_client):
    receiver = make_client(sim, "sys-h41", read_timeout=0.3)
    make_client(sim, G22).send_edoc(make_document(G22, [H41]))
    set_faults(sim, next={"hang": 1}, hang_seconds=2)
    assert len(receiver.list_received()) == 1


def test_an_unreadable_list_is_never_an_empty_list(sim, make_client):
    make_client(sim, G22).send_edoc(make_document(G22, [H41]))
    receiver = make_client(sim, "sys-h41")
    set_faults(sim, malformed_rate=1.0)
    with pytest.raises(TransientAxisError) as caught:
        receiver.list_received()
    assert caught.value.attempts == 4  # FAST_RETRY.max_attempts
    assert "not JSON" in caught.value.message
    set_faults(sim, clear=True)
    assert len(receiver.list_received()) == 1


def test_the_client_stops_at_its_attempt_bound_with_a_typed_error(sim, make_client):
    client = make_client(sim, G22, retry=RetryPolicy(max_attempts=3, max_total_seconds=10,
                                                     initial_backoff=0.01, max_backoff=0.02))
    set_faults(sim, error_rate=1.0)
    with pytest.raises(TransientAxisError) as caught:
        client.send_edoc(make_document(G22, [H41]))
    assert caught.value.attempts == 3 and caught.value.http_status == 503
    counters = requests.get(f"{sim.admin_url}/counters", timeout=5).json()
    assert counters["faults_injected"]["error"] == 3
    assert transfers(sim) == []


def test_the_client_stops_at_its_total_time_bound(sim, make_client):
    client = make_client(sim, G22, retry=RetryPolicy(max_attempts=1000, max_total_seconds=0.5,
                                                     initial_backoff=0.05, max_backoff=0.1))
    set_faults(sim, error_rate=1.0)
    with pytest.raises(TransientAxisError) as caught:
        client.count_received()
    assert 1 < caught.value.attempts < 1000


def test_accept_then_lose_the_response_stores_and_the_retry_stores_again(sim, make_client):
    """The axis has no idempotency key: a send whose reply was lost is stored, the client (not
    knowing) sends again, and the recipient lists two transfers of the same package — which the
    inbound side absorbs by de-duplicating on the package's DocumentId."""
    package = make_document(G22, [H41])
    set_faults(sim, next={"lose_response": 1})
    sent = make_client(sim, G22).send_edoc(package)
    stored = transfers(sim)
    assert len(stored) == 2 and stored[1]["doc_id"] == sent.doc_id
    assert stored[0]["sha256"] == stored[1]["sha256"] == p.hash_file_hex(package)
    assert len(make_client(sim, "sys-h41").list_received()) == 2


def test_relist_acked_keeps_listing_done_items(sim, make_client):
    sent = make_client(sim, G22).send_edoc(make_document(G22, [H41]))
    receiver = make_client(sim, "sys-h41")
    receiver.update_status(sent.doc_id, "done")
    assert receiver.list_received() == []
    set_faults(sim, relist_acked=True)
    assert [(i.doc_id, i.status) for i in receiver.list_received()] == [(sent.doc_id, "done")]


def test_faults_can_be_limited_to_operations(sim, make_client):
    set_faults(sim, error_rate=1.0, operations=["sendEdoc"])
    assert make_client(sim, "sys-h41").list_received() == []


def test_fault_decisions_are_deterministic_with_a_seed():
    def run(seed):
        injector = FaultInjector(FaultConfig(error_rate=0.3, reset_rate=0.2), seed=seed)
        return [injector.decide("sendEdoc").kind for _ in range(50)]
    assert run(42) == run(42)
    assert run(42) != run(43)
    assert {None, "error", "reset"} == set(run(42))


def test_admin_refuses_bad_fault_settings(sim):
    for body in ({"error_rate": 2}, {"nonsense": 1}, {"next": {"explode": 1}},
                 {"error_rate": 0.7, "reset_rate": 0.7}, {"operations": ["sendEdco"]}):
        response = requests.post(f"{sim.admin_url}/faults", json=body, timeout=5)
        assert response.status_code == 400, body
        assert response.json()["error"]


def test_added_latency_beyond_the_read_timeout_is_a_transient_timeout(sim, make_client):
    client = make_client(sim, "sys-h41", read_timeout=0.1,
                         retry=RetryPolicy(max_attempts=2, max_total_seconds=5,
                                           initial_backoff=0.01, max_backoff=0.02))
    set_faults(sim, latency_ms=400)
    with pytest.raises(TransientAxisError, match="(?i)timed out") as caught:
        client.list_received()
    assert caught.value.attempts == 2
    set_faults(sim, latency_ms=0)
    assert client.list_received() == []
