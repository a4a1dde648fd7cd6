"""A document dropped in A's outbox reaches B's inbox verified; 01 and 03 come back to A."""

from __future__ import annotations

import json

from connector.journal import IncomingState, OutgoingState

from .conftest import PDF, A, B, document_metadata, drop_bundle, drop_status, inbox_entries


def test_document_reaches_b_verified_and_statuses_come_back(pair):
    a, b = pair
    drop_bundle(a.exchange / "outbox", "cv101", document_metadata(),
                {"Công văn số 101.pdf": PDF})
    a.cycle()

    [sent] = a.journal.outgoing.list_outgoing(OutgoingState.SENT)
    assert sent.document_id.startswith(f"{A},2026/11/23,101/")
    assert (a.exchange / "sent" / "cv101").is_dir()
    receipt = json.loads((a.exchange / "sent" / "cv101.receipt.json").read_text())
    assert receipt["axis_doc_id"] == sent.axis_doc_id and receipt["state"] == "sent"

    b.poll()  # B stores, acknowledges, delivers and sends 01
    [entry] = inbox_entries(b.exchange)
    metadata = json.loads((entry / "metadata.json").read_text())
    assert metadata["signature"]["state"] == "valid"
    assert metadata["document_id"] == sent.document_id
    assert (entry / "Công văn số 101.pdf").read_bytes() == PDF
    [received] = b.journal.incoming.list_incoming(messagetype="edoc")
    assert received.state is IncomingState.DELIVERED
    arrived = b.journal.outgoing.list_outgoing(OutgoingState.SENT, kind="status")
    assert len(arrived) == 1 and arrived[0].source == "connector"

    a.poll()  # A receives 01
    receipt = json.loads((a.exchange / "sent" / "cv101.receipt.json").read_text())
    assert receipt["recipients"][B]["status"] == "01"

    drop_status(b.exchange / "outbox", "accepted", {"code": "03", "document_id": sent.document_id,
                                                    "description": "Đã vào sổ"})
    b.cycle()
    [status_item] = [r for r in b.journal.outgoing.list_outgoing(OutgoingState.SENT, kind="status")
                     if r.source == "folder"]
    assert status_item.recipients == [A]  # filled from the journal: the sender of the document
    a.poll()
    record = a.journal.outgoing.get_outgoing(sent.id)
    assert {d.organ_id: d.status_code for d in record.deliveries} == {B: "03"}
    receipt = json.loads((a.exchange / "sent" / "cv101.receipt.json").read_text())
    assert receipt["recipients"][B]["status"] == "03"
    lines = (a.exchange / "inbox" / "statuses.jsonl").read_text().splitlines()
    assert [json.loads(line)["code"] for line in lines] == ["01", "03"]
    assert [s.code for s in a.journal.recipients.statuses(sent.id)] == ["01", "03"]
