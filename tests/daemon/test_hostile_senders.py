"""Hostile senders: statuses and lifecycle requests from agencies with no right to send them.

Any agency registered on the axis can address any other. Here a third one, C, tries what a
hostile agency would: answer for a document it never received, take back or revoke a document
that another agency sent, or write another agency's OrganId in ``From``. Each test builds the
package as an attacker would (through the simulator as C, or written straight into the
simulator's store), then checks the outcome and that nothing else changed: receipts, the
journal's delivery rows, the inbox and the lifecycle history stay as they were.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from rich.console import Console

from connector.axis.sim.agencies import agencies_from_data
from connector.axis.sim.server import AxisSimulator
from connector.edxml import model
from connector.edxml.writer import write_package
from connector.journal import IncomingState, OutgoingState
from connector.ops.status_view import collect_status, render_status
from connector.pipeline.packaging import build_status

from .conftest import (
    AGENCIES,
    PDF,
    A,
    B,
    document_metadata,
    drop_bundle,
    inbox_entries,
    open_agency,
    write_config,
)

C = "000.00.00.H29"
UNREGISTERED = "000.00.00.H99"


@pytest.fixture
def simulator(tmp_path):
    """The axis with A, B and the hostile C registered (H99 is not)."""
    agencies = {"agencies": [*AGENCIES["agencies"], {
        "organ_id": C, "name": "UBND Tỉnh Khánh Hòa", "systemid": C, "secret": "secret-of-c"}]}
    sim = AxisSimulator(tmp_path / "axis", agencies_from_data(agencies), seed=13).start()
    yield sim
    sim.stop()


@pytest.fixture
def hostile(tmp_path, dev_certs, simulator):
    """Agency C with a connector of its own (its packages are well-formed and signed)."""
    config = write_config(tmp_path / "C", C, "UBND Tỉnh Khánh Hòa", dev_certs.agency_b,
                          dev_certs.ca_cert, simulator.url, secret="secret-of-c")
    agency = open_agency(config, C)
    yield agency
    agency.close()


def _sent_to_b(a, b) -> tuple[str, dict]:
    """A sends a document to B, B answers 01; returns its DocumentId and A's receipt."""
    drop_bundle(a.exchange / "outbox", "cv101", document_metadata(), {"Công văn số 101.pdf": PDF})
    a.cycle()
    b.poll()
    a.poll()
    [record] = a.journal.outgoing.list_outgoing(OutgoingState.SENT, kind="document")
    return record.document_id, _receipt(a)


def _receipt(agency) -> dict:
    return json.loads((agency.exchange / "sent" / "cv101.receipt.json").read_text())


def _status_bytes(from_organ: str, document_id: str, to: str, code: str) -> bytes:
    package = build_status(from_=model.Organization(organ_id=from_organ, organ_name="Kẻ lạ"),
                           document_id=document_id, to_organ_id=to, code=code,
                           description="hoàn thành")
    return write_package(package)


def _plant(simulator, data: bytes, *, sender: str, to: str, message_type: str = "status") -> None:
    """Written straight into the simulator's store: listed to ``to`` as sent by ``sender``."""
    simulator.store.add_transfer(message_type=message_type, sender=sender, systemid=sender,
                                 data=data, sha256=hashlib.sha256(data).hexdigest(),
                                 recipients=[to])


def _statuses(agency) -> list[dict]:
    path = agency.exchange / "inbox" / "statuses.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _events(agency) -> list[dict]:
    path = agency.exchange / "inbox" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _deliveries(agency) -> dict[str, str | None]:
    [record] = agency.journal.outgoing.list_outgoing(kind="document")
    return {d.organ_id: d.status_code for d in record.deliveries}


def _assert_refused(agency, sender: str, document_id: str, code: str, *words: str) -> None:
    [line] = [s for s in _statuses(agency) if s.get("refused")]
    assert (line["from"], line["document_id"], line["code"]) == (sender, document_id, code)
    for word in (sender, document_id, *words):
        assert word in line["refused_reason"]
    [item] = [r for r in agency.journal.incoming.list_incoming(messagetype="status")
              if r.state is IncomingState.REFUSED]
    assert item.last_error == line["refused_reason"]


@pytest.mark.parametrize("code", ["06", "02", "15", "16"])
def test_a_status_from_an_agency_the_document_was_not_sent_to_is_refused(pair, hostile, code):
    a, b = pair
    document_id, receipt_before = _sent_to_b(a, b)
    hostile.runtime.axis.send_status(_status_bytes(C, document_id, A, code))

    assert a.poll()["listed"] == 1
    _assert_refused(a, C, document_id, code, "not sent to")
    assert _receipt(a) == receipt_before
    assert C not in _receipt(a)["recipients"]
    assert _deliveries(a) == {B: "01"}
    # Acknowledged on the axis (it does not come back) and not applied at the next poll either.
    assert a.poll()["listed"] == 0
    assert _deliveries(a) == {B: "01"}


def test_the_status_command_shows_a_refused_status_with_its_reason(pair, hostile):
    a, b = pair
    document_id, _ = _sent_to_b(a, b)
    hostile.runtime.axis.send_status(_status_bytes(C, document_id, A, "06"))
    a.poll()
    console = Console(width=400, record=True)
    console.print(render_status(collect_status(a.journal)))
    [row] = [line for line in console.export_text().splitlines() if "refused:" in line]
    assert f"refused: status 06 from {C} about {document_id}" in row


def test_a_status_from_an_unregistered_agency_is_refused(pair, simulator):
    a, b = pair
    document_id, receipt_before = _sent_to_b(a, b)
    _plant(simulator, _status_bytes(UNREGISTERED, document_id, A, "06"), sender=UNREGISTERED, to=A)

    a.poll()
    _assert_refused(a, UNREGISTERED, document_id, "06")
    assert _receipt(a) == receipt_before and _deliveries(a) == {B: "01"}


def test_a_status_whose_from_names_a_recipient_but_was_sent_by_another_is_refused(pair, simulator):
    """C writes B (a real recipient) in ``From``: the axis says C sent it, so it is C's."""
    a, b = pair
    document_id, receipt_before = _sent_to_b(a, b)
    _plant(simulator, _status_bytes(B, document_id, A, "06"), sender=C, to=A)

    a.poll()
    _assert_refused(a, C, document_id, "06", f"From {B}")
    assert _receipt(a) == receipt_before and _deliveries(a) == {B: "01"}


def test_the_recipient_s_own_status_is_still_applied(pair, hostile):
    """The check is no blanket refusal: after C's refused 06, B's own 06 counts."""
    a, b = pair
    document_id, _ = _sent_to_b(a, b)
    hostile.runtime.axis.send_status(_status_bytes(C, document_id, A, "06"))
    a.poll()
    b.runtime.axis.send_status(_status_bytes(B, document_id, A, "06"))
    a.poll()
    assert _deliveries(a) == {B: "06"}
    assert _receipt(a)["recipients"][B]["status"] == "06"


def test_a_take_back_request_from_another_than_the_original_sender_is_refused(pair, hostile):
    a, b = pair
    document_id, _ = _sent_to_b(a, b)
    [original] = inbox_entries(b.exchange)
    metadata_before = (original / "metadata.json").read_text()
    hostile.runtime.axis.send_status(_status_bytes(C, document_id, B, "13"))

    b.poll()
    _assert_refused(b, C, document_id, "13", "no document")
    assert _events(b) == []
    assert (original / "metadata.json").read_text() == metadata_before


def test_the_original_sender_s_take_back_request_is_still_recorded(pair):
    a, b = pair
    document_id, _ = _sent_to_b(a, b)
    a.runtime.axis.send_status(_status_bytes(A, document_id, B, "13"))
    b.poll()
    assert [e["event"] for e in _events(b)] == ["take_back_requested"]
    assert not [s for s in _statuses(b) if s.get("refused")]


@pytest.mark.parametrize("business", [
    {"type": "revoke"}, {"type": "update"}, "replace"])
def test_a_lifecycle_request_from_another_than_the_original_sender_is_quarantined(
        pair, hostile, business):
    a, b = pair
    document_id, _ = _sent_to_b(a, b)
    [original] = inbox_entries(b.exchange)
    metadata_before = (original / "metadata.json").read_text()
    if business == "replace":
        extra = {"business": {"type": "replace", "replaces": [
            {"document_id": document_id, "organ_ids": [B]}]}}
    else:
        extra = {"document_id": document_id, "business": business}
    drop_bundle(hostile.exchange / "outbox", "forged", document_metadata(number="666", **extra),
                {"Công văn số 101.pdf": PDF})
    hostile.cycle()
    assert hostile.journal.outgoing.list_outgoing(OutgoingState.SENT, kind="document")

    b.poll()
    [request] = [r for r in b.journal.incoming.list_incoming(messagetype="edoc") if r.sender == C]
    assert request.quarantined
    assert "only the original sender" in request.quarantine_reason
    assert C in request.quarantine_reason and A in request.quarantine_reason
    assert _events(b) == []
    assert (original / "metadata.json").read_text() == metadata_before
    assert inbox_entries(b.exchange) == [original]


def test_a_document_whose_from_is_not_its_axis_sender_is_quarantined(pair, simulator, dev_certs):
    """A package that claims to come from A, put on the axis by C."""
    a, b = pair
    drop_bundle(a.exchange / "outbox", "cv101", document_metadata(), {"Công văn số 101.pdf": PDF})
    a.cycle()
    [record] = a.journal.outgoing.list_outgoing(OutgoingState.SENT, kind="document")
    data = a.runtime.store.outgoing_path(record.id).read_bytes()
    _plant(simulator, data, sender=C, to=B, message_type="edoc")

    b.poll()
    [forged] = [r for r in b.journal.incoming.list_incoming(messagetype="edoc") if r.sender == C]
    assert forged.quarantined and f"From {A}" in forged.quarantine_reason
    [genuine] = [r for r in b.journal.incoming.list_incoming(messagetype="edoc") if r.sender == A]
    assert genuine.delivered_at is not None and not genuine.quarantined
