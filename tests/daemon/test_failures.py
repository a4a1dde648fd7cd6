"""What goes wrong: redelivery, a store that fails, refused credentials, unknown recipients,
transient axis errors, unreadable packages."""

from __future__ import annotations

import errno
import json
import time

from connector.journal import IncomingState, OutgoingState

from .conftest import PDF, B, document_metadata, drop_bundle, inbox_entries


def _send_one(a, number="101"):
    drop_bundle(a.exchange / "outbox", f"cv{number}", document_metadata(number=number),
                {"Công văn số 101.pdf": PDF})
    a.cycle()


def test_redelivered_item_is_acknowledged_again_and_not_delivered_twice(pair, simulator):
    a, b = pair
    _send_one(a)
    b.poll()
    assert len(inbox_entries(b.exchange)) == 1
    simulator.faults.update({"relist_acked": True})
    counts = b.inbound.poll()
    assert counts["listed"] == 1 and counts["failed"] == 0
    assert len(inbox_entries(b.exchange)) == 1
    [received] = b.journal.incoming.list_incoming(messagetype="edoc")
    assert received.state is IncomingState.DELIVERED
    assert [e.event for e in b.journal.events(received.id)].count("acknowledged") == 1


def test_a_package_that_cannot_be_stored_is_not_acknowledged(pair, simulator, monkeypatch):
    a, b = pair
    _send_one(a)

    def full_disk(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(b.runtime.store, "finish_incoming", full_disk)
    counts = b.inbound.poll()
    assert counts["failed"] == 1
    [received] = b.journal.incoming.list_incoming(messagetype="edoc")
    assert received.acknowledged_at is None and not received.is_stored
    assert "No space left" in received.last_error
    assert inbox_entries(b.exchange) == []
    monkeypatch.undo()
    # Still pending on the axis: the next poll takes it.
    b.poll()
    assert len(inbox_entries(b.exchange)) == 1
    assert b.journal.incoming.get_incoming(received.id).state is IncomingState.DELIVERED


def test_refused_credentials_pause_sending_without_spending_attempts(make_agency, simulator):
    make_agency("B")
    a = make_agency("A", secret="not-the-secret")  # the axis refuses us (HTTP 401)
    _send_one(a)
    [record] = a.journal.outgoing.list_outgoing()
    assert record.state is OutgoingState.PACKAGED and record.attempts == 0
    assert a.outbound.paused and "credentials" in a.outbound.paused_reason
    assert any(e.event == "claim_released" for e in a.journal.events(record.id))
    assert not list((a.exchange / "failed").glob("cv*"))
    # The operator fixes the secret; after the pause the same item goes out on its first attempt.
    object.__setattr__(a.runtime.axis.settings, "secret", "secret-of-a")
    deadline = time.monotonic() + 10
    while a.outbound.paused:  # the pause ends by itself (auth_pause_seconds)
        assert time.monotonic() < deadline, "the pause did not end"
        time.sleep(0.01)
    a.cycle()
    record = a.journal.outgoing.get_outgoing(record.id)
    assert record.state is OutgoingState.SENT and record.attempts == 1


def test_unknown_recipient_fails_at_once_without_a_round_trip(pair, simulator):
    a, _ = pair
    before = simulator.counters()["agencies"][a.organ_id]["requests"].get("sendEdoc", 0)
    drop_bundle(a.exchange / "outbox", "stranger", document_metadata(to="000.00.00.H99"),
                {"Công văn số 101.pdf": PDF})
    a.cycle()
    [record] = a.journal.outgoing.list_outgoing()
    assert record.state is OutgoingState.FAILED
    assert "000.00.00.H99" in record.last_error
    error = (a.exchange / "failed" / "stranger.error.txt").read_text()
    assert "000.00.00.H99" in error and f"edxml-connector retry {record.id}" in error
    assert simulator.counters()["agencies"][a.organ_id]["requests"].get("sendEdoc", 0) == before


def test_transient_errors_are_retried_with_the_same_bytes(pair, simulator):
    a, b = pair
    simulator.faults.update({"next": {"error": 2}, "operations": ["sendEdoc"]})
    _send_one(a)  # the client's 2 quick tries both get 503: one attempt fails
    [record] = a.journal.outgoing.list_outgoing()
    a.cycle()
    record = a.journal.outgoing.get_outgoing(record.id)
    assert record.state is OutgoingState.SENT
    assert record.attempts == 2
    # The package built for the failed attempt was recorded with the failure, and the second
    # attempt sent it instead of building another.
    events = [e.event for e in a.journal.events(record.id)]
    assert [e for e in events if e != "enqueued"] == ["claimed", "packaged", "attempt_failed",
                                                      "claimed", "sent"]
    b.poll()
    [received] = b.journal.incoming.list_incoming(messagetype="edoc")
    assert received.package_sha256 == record.package_sha256


def test_attempts_exhausted_moves_the_item_to_failed(pair, simulator):
    a, _ = pair
    simulator.faults.update({"error_rate": 1.0, "operations": ["sendEdoc"]})
    _send_one(a)
    for _ in range(3):
        a.cycle()
    [record] = a.journal.outgoing.list_outgoing()
    assert record.state is OutgoingState.FAILED and record.attempts == 3
    assert (a.exchange / "failed" / "cv101").is_dir()


def test_an_unreadable_package_is_stored_acknowledged_and_quarantined(pair, simulator):
    a, b = pair
    garbage = b"<edXML><not closed"
    simulator.store.add_transfer(message_type="edoc", sender=a.organ_id, systemid=a.organ_id,
                                 data=garbage, sha256="x", recipients=[B], title="junk",
                                 notation="", document_id="")
    b.poll()
    [received] = b.journal.incoming.list_incoming(messagetype="edoc")
    assert received.state is IncomingState.QUARANTINED and received.acknowledged_at is not None
    [folder] = [p for p in (b.exchange / "quarantine").glob("*/*")]
    assert "unreadable package" in (folder / "reason.txt").read_text()
    assert (folder / "package.edxml").read_bytes() == garbage
    assert b.inbound.poll()["listed"] == 0  # acknowledged: it does not come back


def test_invalid_signature_is_quarantined_by_default(pair, simulator, tmp_path):
    a, b = pair
    _send_one(a)
    [record] = a.journal.outgoing.list_outgoing()
    data = open(record.package_path, "rb").read().replace(b"101/VPCP", b"999/VPCP", 1)
    simulator.store.add_transfer(message_type="edoc", sender=a.organ_id, systemid=a.organ_id,
                                 data=data, sha256="x", recipients=[B], title="tampered",
                                 notation="", document_id="")
    b.poll()
    states = sorted(r.state.value for r in b.journal.incoming.list_incoming(messagetype="edoc"))
    assert states == ["delivered", "quarantined"]
    [folder] = list((b.exchange / "quarantine").glob("*/*"))
    assert "signature invalid" in (folder / "reason.txt").read_text()
    assert json.loads((folder / "metadata.json").read_text())["signature"]["state"] == "invalid"


def test_a_package_over_the_limit_is_refused_with_fail_and_not_downloaded_again(
        make_agency, simulator):
    """Receiving side limit 1 MB, a 2 MB document: the download is cut off, the axis is told
    `fail` with the reason, the item is refused in the journal, and later polls leave it alone."""
    a = make_agency("A")
    b = make_agency("B", edxml={"max_package_size_mb": 1})
    big = PDF + bytes(range(256)) * 8192  # ~2 MB: a PDF that is incompressible enough
    drop_bundle(a.exchange / "outbox", "cv-big", document_metadata(number="777"),
                {"Công văn số 101.pdf": big})
    a.cycle()
    assert [r.state for r in a.journal.outgoing.list_outgoing()] == [OutgoingState.SENT]

    counts = b.inbound.poll()
    assert counts["listed"] == 1
    [received] = b.journal.incoming.list_incoming(messagetype="edoc")
    assert received.state is IncomingState.REFUSED
    assert "limit" in received.last_error
    assert inbox_entries(b.exchange) == []
    deliveries = [d for t in simulator.store.transfers() for d in t["recipients"]
                  if d["recipient"] == B]
    assert [d["state"] for d in deliveries] == ["fail"]
    assert "limit" in deliveries[0]["state_desc"]

    events_before = len(b.journal.events(received.id))
    b.inbound.poll()  # still listed by the axis (fail keeps it listed): not downloaded again
    assert len(b.journal.events(received.id)) == events_before
    assert not list((b.runtime.settings.state_dir).rglob("*.part"))
