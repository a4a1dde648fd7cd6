"""End to end, folder mode: both directions and every lifecycle type, through real processes.

One lab (simulator + connector A + connector B) is shared by the module; each test uses its own
code numbers. What is checked is what a DMS and an operator see: the receiver's inbox folders,
``metadata.json`` (signature, attachments, lifecycle), ``events.jsonl`` and ``statuses.jsonl``;
the sender's ``sent/NAME.receipt.json`` and ``edxml-connector status --json``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flows import deliver, events_about, receipt_for, recipient_status, send_document, wait_inbox, wait_status

from connector.devtools.lab import pdf_bytes

pytestmark = pytest.mark.slow


def test_new_document_a_to_b_with_two_attachments_and_status_01(module_lab):
    lab = module_lab
    a, b = lab.a, lab.b
    files = {"Công văn số 101.pdf": pdf_bytes("Công văn 101"),
             "Phụ lục kèm theo.docx": b"PK\x03\x04 phu luc"}
    doc = deliver(lab, a, b, "101", files=files,
                  attachments=[{"file": "Công văn số 101.pdf"},
                               {"file": "Phụ lục kèm theo.docx", "description": "Phụ lục"}])

    assert doc["sender"] == a.organ_id
    assert doc["signature"]["state"] == "valid", doc["signature"]
    folder = Path(doc["_folder"])
    assert (folder / "package.edxml").is_file()
    written = {att["original_name"]: att["file"] for att in doc["attachments"]}
    for original, data in files.items():
        # the .docx travels as a one-entry ZIP (ZIP convention) and is extracted under its name
        assert (folder / original).read_bytes() == data, (original, written)

    # B sends 01 by itself; A's receipt and `status` show it
    wait_status(lab, a, doc["document_id"], b.organ_id, "01")
    receipt = receipt_for(a, "doc-101")
    assert receipt is not None and receipt["state"] == "sent" and receipt["axis_doc_id"]
    lab.wait_for(lambda: (receipt_for(a, "doc-101") or {}).get("recipients", {})
                 .get(b.organ_id, {}).get("status") == "01",
                 what="01 in A's sent/doc-101.receipt.json", seen=lambda: receipt_for(a, "doc-101"))
    assert any(s["code"] == "01" and s["document_id"] == doc["document_id"]
               for s in a.received_statuses())
    assert a.entries("work") == [] and "doc-101" in a.entries("sent")


def test_new_document_b_to_a(module_lab):
    lab = module_lab
    doc = deliver(lab, lab.b, lab.a, "102", notation="UBND-VP")
    assert doc["sender"] == lab.b.organ_id
    assert doc["signature"]["state"] == "valid"
    wait_status(lab, lab.b, doc["document_id"], lab.a.organ_id, "01")


def test_ready_package_and_status_03_and_refusal_02(module_lab):
    lab = module_lab
    a, b = lab.a, lab.b
    from connector.devtools.lab import document_metadata, pack_package

    package = pack_package(document_metadata([b.organ_id], "103", "Gói soạn sẵn",
                                             **{"from": {"organ_id": a.organ_id}}),
                           {"bao-cao.pdf": pdf_bytes("103")}, lab.base / "pack-103",
                           p12=a.p12, password_file=a.password_file)
    a.drop_package("bao-cao-103.edxml", package)
    accepted = wait_inbox(lab, b, "103")
    refused = deliver(lab, a, b, "104")

    b.drop_status("ok-103", {"code": "03", "document_id": accepted["document_id"],
                             "description": "Đã tiếp nhận"})
    b.drop_status("no-104", {"code": "02", "document_id": refused["document_id"],
                             "description": "Gửi nhầm đơn vị"})
    wait_status(lab, a, accepted["document_id"], b.organ_id, "03")
    wait_status(lab, a, refused["document_id"], b.organ_id, "02")
    lab.wait_for(lambda: (receipt_for(a, "bao-cao-103") or {}).get("recipients", {})
                 .get(b.organ_id, {}).get("status") == "03",
                 what="03 in A's receipt of the ready package",
                 seen=lambda: receipt_for(a, "bao-cao-103"))
    # B's status drops end in sent/statuses/ with their own receipts
    lab.wait_for(lambda: {"statuses/ok-103", "statuses/no-104"} <= set(b.receipts()),
                 what="B's status drops archived in sent/statuses/", seen=lambda: list(b.receipts()))


# Revoke across real processes; update takes the same path (business type 2 instead of 1) and is
# checked with revoke, replace and take-back in tests/daemon/test_lifecycle.py, without a lab.
def test_a_revoke_is_recorded_on_the_original(module_lab):
    lab = module_lab
    a, b = lab.a, lab.b
    kind, event, number = "revoke", "revoked", "201"
    original = deliver(lab, a, b, number)

    send_document(lab, a, b, number, name=f"{kind}-{number}", document_id=original["document_id"],
                  business={"type": kind, "reason": f"{kind} thử nghiệm"})
    request = wait_inbox(lab, b, number, business_type=kind)
    assert request["document_id"] == original["document_id"]

    recorded = lab.wait_for(lambda: events_about(b, original["document_id"], event),
                            what=f"'{event}' in B's events.jsonl",
                            seen=lambda: b.received_events())
    assert recorded[0]["original_location"] == original["_folder"]
    meta = next(d for d in b.inbox_documents() if d["_folder"] == original["_folder"])
    assert [entry["event"] for entry in meta["lifecycle"]] == [event]
    # nothing was deleted: the original is still there, with its files
    assert (Path(original["_folder"]) / "package.edxml").is_file()

    # B's DMS agrees (15); A sees it on the document
    b.drop_status(f"agree-{kind}", {"code": "15", "document_id": original["document_id"]})
    wait_status(lab, a, original["document_id"], b.organ_id, "15")


def test_replace_points_at_the_replaced_document(module_lab):
    lab = module_lab
    a, b = lab.a, lab.b
    original = deliver(lab, a, b, "203")
    send_document(lab, a, b, "204", business={
        "type": "replace", "replaces": [{"document_id": original["document_id"],
                                          "organ_ids": [b.organ_id]}]})
    replacement = wait_inbox(lab, b, "204", business_type="replace")
    lab.wait_for(lambda: events_about(b, original["document_id"], "replaced"),
                 what="'replaced' in B's events.jsonl", seen=lambda: b.received_events())
    meta = next(d for d in b.inbox_documents() if d["_folder"] == original["_folder"])
    assert [entry["event"] for entry in meta["lifecycle"]] == ["replaced"]
    # the replacement is a new document: B says 01 for it
    wait_status(lab, a, replacement["document_id"], b.organ_id, "01")


def test_take_back_answered_by_15_and_16(module_lab):
    lab = module_lab
    a, b = lab.a, lab.b
    agreed = deliver(lab, a, b, "205")
    declined = deliver(lab, a, b, "206")
    for doc, number in ((agreed, "205"), (declined, "206")):
        b_meta_code = doc["code"]
        a.drop_bundle(f"take-back-{number}", {"take_back": {
            "document_id": doc["document_id"], "code": b_meta_code, "to": [b.organ_id],
            "reason": "Gửi nhầm, xin lấy lại"}}, {})
    for doc in (agreed, declined):
        lab.wait_for(lambda doc=doc: events_about(b, doc["document_id"], "take_back_requested"),
                     what=f"take_back_requested for {doc['document_id']} in B's events.jsonl",
                     seen=lambda: b.received_events())
        meta = next(d for d in b.inbox_documents() if d["_folder"] == doc["_folder"])
        assert "take_back_requested" in [entry["event"] for entry in meta["lifecycle"]]
    # A's take-back bundles were sent (as status 13 packages) and archived in sent/
    lab.wait_for(lambda: {"take-back-205", "take-back-206"} <= set(a.entries("sent")),
                 what="A's take-back requests in sent/", seen=lambda: a.entries("sent"))

    b.drop_status("agree-205", {"code": "15", "document_id": agreed["document_id"]})
    b.drop_status("refuse-206", {"code": "16", "document_id": declined["document_id"],
                                 "description": "Đã xử lý, không thu hồi"})
    wait_status(lab, a, agreed["document_id"], b.organ_id, "15")
    wait_status(lab, a, declined["document_id"], b.organ_id, "16")
    assert recipient_status(a, agreed["document_id"], b.organ_id) == "15"
