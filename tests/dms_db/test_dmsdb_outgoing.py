"""Outgoing documents and statuses polled from a real DMS database (SQLite, PostgreSQL, MariaDB)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from dmsdb_helpers import G22, H41, K01, insert_document, insert_status, race, row_of, side
from sample_dms_schema import outgoing_claims, outgoing_documents, outgoing_statuses

from connector.dms.base import AgencySide, Failure, OutgoingKind, Receipt
from connector.dms.database.side import DmsDatabaseError
from connector.schemas.document import BusinessKind

PDF = b"%PDF-1.4 test\x00\xff" * 100


def test_is_an_agency_side(backend):
    adapter = side(backend)
    assert isinstance(adapter, AgencySide)
    assert adapter.name == "database"


def test_table_with_json_recipients_and_blob_attachments(backend):
    row_id = insert_document(backend.engine, 7816, attachments=[
        {"file_name": "Quyết định 01.pdf", "content": PDF, "content_type": "application/pdf"},
        {"file_name": "phu-luc.docx", "content": b"PK\x03\x04docx", "description": "Phụ lục"},
    ])
    adapter = side(backend)
    [item] = adapter.claim_ready()
    assert item.problem is None, item.problem and item.problem.one_line()
    assert (item.source, item.source_ref, item.kind) == ("database", str(row_id),
                                                         OutgoingKind.DOCUMENT)
    metadata = item.metadata
    assert metadata.subject == "Công văn số 7816 về việc thử nghiệm"
    assert (metadata.code.number, metadata.code.notation) == ("7816", "UBND-VP")
    assert metadata.promulgation.date == dt.date(2026, 11, 23)
    assert metadata.promulgation.place == "Hà Nội"
    assert metadata.document_type.type_name == "Công văn"
    assert metadata.signer.full_name == "Nguyễn Văn A"
    assert metadata.due_date == dt.date(2026, 12, 31)
    assert metadata.other_info.priority == 2
    assert [(o.organ_id, o.organ_name) for o in metadata.to] == [(H41, None), (K01, "HĐND tỉnh")]
    assert metadata.business.type is BusinessKind.new
    assert [(a.file, a.name, a.content_type, a.description) for a in metadata.attachments] == [
        ("Quyết định 01.pdf", "Quyết định 01.pdf", "application/pdf", None),
        ("phu-luc.docx", "phu-luc.docx", None, "Phụ lục")]
    assert item.attachment_blobs == [("Quyết định 01.pdf", PDF),
                                     ("phu-luc.docx", b"PK\x03\x04docx")]
    assert item.attachment_files == []
    row = row_of(backend.engine, outgoing_documents, row_id)
    assert row["exchange_state"] == "claimed"
    assert row["exchange_claimed_by"] == "connector-a"
    assert row["exchange_claimed_at"] is not None
    assert adapter.claim_ready() == []  # claimed once, handed out once


def test_child_table_recipients_and_delimited_column(backend):
    first = insert_document(backend.engine, 1, recipient_rows=[
        {"organ_id": G22, "organ_name": "Văn phòng Chính phủ"}, {"organ_id": H41}])
    adapter = side(backend, outgoing={"recipients": {"table": "dms_outgoing_recipients"},
                                      "attachments": None})
    [item] = adapter.claim_ready()
    assert item.source_ref == str(first)
    assert [(o.organ_id, o.organ_name) for o in item.metadata.to] == [
        (G22, "Văn phòng Chính phủ"), (H41, None)]

    second = insert_document(backend.engine, 2,
                             **{"recipients": f" {G22} ; {K01};"})
    delimited = side(backend, owner="connector-b",
                     outgoing={"recipients": {"column": "recipients", "format": "delimited"},
                               "attachments": None})
    [item] = delimited.claim_ready()
    assert item.source_ref == str(second)
    assert [o.organ_id for o in item.metadata.to] == [G22, K01]


def test_view_with_separate_claims_table_and_path_attachments(backend, tmp_path):
    scan = tmp_path / "scan 01.pdf"
    scan.write_bytes(PDF)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bang-ke.xlsx").write_bytes(b"xlsx")
    row_id = insert_document(backend.engine, 55, exchange_state=None, attachments=[
        {"file_name": "Bản scan.pdf", "file_path": str(scan)},
        {"file_name": None, "file_path": "sub/bang-ke.xlsx"}])
    adapter = side(backend, outgoing={
        "table": "dms_outgoing_view",
        "claims": {"table": "dms_outgoing_claims"},
        "attachments": {"blob_column": None, "base_dir": str(tmp_path)}})
    [item] = adapter.claim_ready()
    assert item.problem is None, item.problem and item.problem.one_line()
    assert item.attachment_files == [scan, tmp_path / "sub" / "bang-ke.xlsx"]
    assert [(a.file, a.name) for a in item.metadata.attachments] == [
        ("scan 01.pdf", "Bản scan.pdf"), ("bang-ke.xlsx", "bang-ke.xlsx")]
    claim = row_of(backend.engine, outgoing_claims, row_id)
    assert (claim["exchange_state"], claim["exchange_claimed_by"]) == ("claimed", "connector-a")
    # The source row was not touched: the view's table keeps the DMS's own state.
    assert row_of(backend.engine, outgoing_documents, row_id)["exchange_state"] is None
    assert adapter.claim_ready() == []

    adapter.mark_sent(item, Receipt(journal_id="J-55", document_id="DOC-55", state="sent",
                                    axis_doc_id="AXIS-55", sent_at=dt.datetime(2026, 11, 23, 9)))
    claim = row_of(backend.engine, outgoing_claims, row_id)
    assert (claim["exchange_state"], claim["exchange_axis_doc_id"],
            claim["exchange_journal_id"]) == ("sent", "AXIS-55", "J-55")


def test_custom_select_with_row_attachment(backend):
    wanted = insert_document(backend.engine, 10, subject="Gửi tỉnh", attachment_name="to-trinh.pdf",
                             attachment_content=PDF)
    insert_document(backend.engine, 11, subject="Nội bộ, không gửi")
    query = ("SELECT d.id, d.subject, d.code_number, d.code_notation, d.promulgation_date, "
             "d.recipients, d.attachment_name, d.attachment_content FROM dms_outgoing_documents d "
             "WHERE d.subject LIKE 'Gửi%'")
    adapter = side(backend, outgoing={
        "query": query,
        "claims": {"table": "dms_outgoing_claims"},
        "columns": {"subject": "subject", "code.number": "code_number",
                    "code.notation": "code_notation", "promulgation.date": "promulgation_date"},
        "attachments": {"table": None, "name_column": "attachment_name",
                        "blob_column": "attachment_content", "path_column": None,
                        "content_type_column": None, "description_column": None,
                        "order_by": None}})
    items = adapter.claim_ready()
    assert [item.source_ref for item in items] == [str(wanted)]
    assert items[0].problem is None, items[0].problem and items[0].problem.one_line()
    assert items[0].metadata.subject == "Gửi tỉnh"
    assert items[0].attachment_blobs == [("to-trinh.pdf", PDF)]


def test_lifecycle_columns(backend):
    revoke = insert_document(backend.engine, 20, business_type="1",
                             document_id=f"{G22},2026/11/01,20/UBND-VP",
                             business_reason="Ban hành nhầm")
    replace = insert_document(backend.engine, 21, business_type="replace", business_replaces=json.dumps(
        [{"document_id": f"{G22},2026/10/01,5/UBND-VP", "organ_ids": [H41]}]))
    take_back = insert_document(backend.engine, 22, take_back_document_id="OLD-DOC",
                                take_back_reason="Gửi nhầm nơi nhận")
    adapter = side(backend, outgoing={"attachments": None})
    items = {item.source_ref: item for item in adapter.claim_ready()}
    assert all(item.problem is None for item in items.values())
    revoked = items[str(revoke)].metadata
    assert revoked.business.type is BusinessKind.revoke
    assert revoked.business.reason == "Ban hành nhầm"
    assert revoked.document_id == f"{G22},2026/11/01,20/UBND-VP"
    replaced = items[str(replace)].metadata
    assert replaced.business.type is BusinessKind.replace
    assert replaced.business.replaces[0].organ_ids == [H41]
    taken = items[str(take_back)].metadata.take_back
    assert taken.document_id == "OLD-DOC"
    assert taken.to == [H41, K01]  # the row's recipients
    assert taken.reason == "Gửi nhầm nơi nhận"


def test_invalid_rows_are_claimed_with_the_problem_named(backend, tmp_path):
    bad_organ = insert_document(backend.engine, 30, recipients=json.dumps(["000.00.00.G22", "28.22.H17"]))
    bad_json = insert_document(backend.engine, 31, business_replaces="[{not json")
    missing = insert_document(backend.engine, 32, attachments=[
        {"file_name": "gone.pdf", "file_path": str(tmp_path / "gone.pdf")}])
    adapter = side(backend)
    items = {item.source_ref: item for item in adapter.claim_ready()}
    assert set(items) == {str(bad_organ), str(bad_json), str(missing)}

    organ_problem = items[str(bad_organ)].problem.one_line()
    assert "to.1.organ_id" in organ_problem and "column recipients" in organ_problem
    assert f"dms_outgoing_documents row id={bad_organ}" in organ_problem
    assert "business_replaces" in items[str(bad_json)].problem.one_line()
    assert "not valid JSON" in items[str(bad_json)].problem.one_line()
    assert "gone.pdf" in items[str(missing)].problem.one_line()
    assert "file_path" in items[str(missing)].problem.one_line()
    for ref in items:  # claimed: no other connector takes them, nothing is lost
        assert row_of(backend.engine, outgoing_documents, int(ref))["exchange_state"] == "claimed"

    item = items[str(bad_organ)]
    adapter.mark_failed(item, Failure(journal_id="J-30", reason=item.problem.one_line(),
                                      attempts=0, failed_at=dt.datetime.now(),
                                      retry_command="edxml-connector retry J-30"))
    row = row_of(backend.engine, outgoing_documents, bad_organ)
    assert row["exchange_state"] == "failed"
    assert "to.1.organ_id" in row["exchange_error"]
    assert "edxml-connector retry J-30" in row["exchange_error"]


def test_write_back_sent_receipt_failed_and_unclaim(backend):
    sent_id = insert_document(backend.engine, 40)
    failed_id = insert_document(backend.engine, 41)
    adapter = side(backend, outgoing={"attachments": None})
    items = {item.source_ref: item for item in adapter.claim_ready()}
    sent, failed = items[str(sent_id)], items[str(failed_id)]

    receipt = Receipt(journal_id="J-40", document_id="DOC-40", state="sent",
                      axis_doc_id="AXIS-40", sent_at=dt.datetime(2026, 11, 23, 10, 0, 0))
    adapter.mark_sent(sent, receipt)
    adapter.mark_sent(sent, receipt)  # idempotent
    row = row_of(backend.engine, outgoing_documents, sent_id)
    assert (row["exchange_state"], row["exchange_axis_doc_id"], row["exchange_journal_id"],
            row["exchange_document_id"]) == ("sent", "AXIS-40", "J-40", "DOC-40")
    assert row["exchange_sent_at"] == dt.datetime(2026, 11, 23, 10, 0, 0)
    assert row["exchange_error"] is None

    receipt.recipients = {
        H41: {"status": "01", "label": "arrived", "at": "2026-11-23T10:01:00"},
        K01: {"status": "03", "label": "accepted", "at": "2026-11-23T11:00:00"}}
    adapter.update_receipt(sent, receipt)
    row = row_of(backend.engine, outgoing_documents, sent_id)
    assert row["exchange_status"] == "03"
    assert json.loads(row["exchange_receipt"])[K01]["label"] == "accepted"
    assert row["exchange_state"] == "sent"

    adapter.mark_failed(failed, Failure(journal_id="J-41", reason="axis refused: bad signature",
                                        attempts=5, failed_at=dt.datetime.now()))
    row = row_of(backend.engine, outgoing_documents, failed_id)
    assert (row["exchange_state"], row["exchange_error"]) == ("failed",
                                                              "axis refused: bad signature")

    adapter.unclaim(failed)  # `retry`: back in the queue, claimable again
    assert row_of(backend.engine, outgoing_documents, failed_id)["exchange_state"] == "new"
    assert [item.source_ref for item in adapter.claim_ready()] == [str(failed_id)]


@pytest.mark.parametrize("claim_method", ["auto", "update"])
def test_two_connectors_never_claim_the_same_row(backend, claim_method):
    ids = {insert_document(backend.engine, 100 + n) for n in range(30)}
    adapters = [side(backend, owner=f"node-{n}", claim_method=claim_method,
                     outgoing={"attachments": None}) for n in range(2)]
    taken: list[list[str]] = [[], []]

    def work(index: int) -> None:
        while batch := adapters[index].claim_ready(limit=3):
            taken[index].extend(item.source_ref for item in batch)

    race(work)
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == sorted(str(row_id) for row_id in ids)
    with backend.engine.connect() as connection:
        owners = dict(connection.execute(sa.select(outgoing_documents.c.id,
                                                   outgoing_documents.c.exchange_claimed_by)).all())
    for index in range(2):
        assert all(owners[int(ref)] == f"node-{index}" for ref in taken[index])


def test_two_connectors_with_a_separate_claims_table(backend):
    ids = {insert_document(backend.engine, 200 + n, exchange_state=None) for n in range(20)}
    adapters = [side(backend, owner=f"node-{n}", outgoing={
        "table": "dms_outgoing_view", "claims": {"table": "dms_outgoing_claims"},
        "attachments": None}) for n in range(2)]
    taken: list[list[str]] = [[], []]

    def work(index: int) -> None:
        while batch := adapters[index].claim_ready(limit=4):
            taken[index].extend(item.source_ref for item in batch)

    race(work)
    assert not set(taken[0]) & set(taken[1])
    assert sorted(taken[0] + taken[1]) == sorted(str(row_id) for row_id in ids)


def test_crash_recovery_returns_unfinished_claims_to_their_owner_only(backend):
    first = insert_document(backend.engine, 300)
    second = insert_document(backend.engine, 301)
    before_crash = side(backend, owner="node-a", outgoing={"attachments": None})
    items = before_crash.claim_ready()
    assert {item.source_ref for item in items} == {str(first), str(second)}
    before_crash.mark_sent(items[0], Receipt(journal_id="J", document_id="D", state="sent"))
    before_crash.close()

    other = side(backend, owner="node-b", outgoing={"attachments": None})
    assert other.claim_ready() == []  # node-a's claims are not node-b's to finish

    after_restart = side(backend, owner="node-a", outgoing={"attachments": None})
    recovered = after_restart.claim_ready()
    assert [item.source_ref for item in recovered] == [items[1].source_ref]
    assert recovered[0].metadata.code.number == items[1].metadata.code.number
    assert after_restart.claim_ready() == []  # handed out once per process


def test_status_rows(backend):
    accepted = insert_status(backend.engine, status_code="3")
    take_back = insert_status(backend.engine, status_code="13", to_organ_ids=f"{H41};{K01}",
                              original_code="12/UBND-VP",
                              original_promulgation_date=dt.date(2026, 11, 20))
    bad_code = insert_status(backend.engine, status_code="99")
    no_receivers = insert_status(backend.engine, status_code="13")
    adapter = side(backend, outgoing=None)
    items = {item.source_ref: item for item in adapter.claim_ready()}
    assert set(items) == {f"status:{n}" for n in (accepted, take_back, bad_code, no_receivers)}
    assert all(item.kind is OutgoingKind.STATUS for item in items.values())

    status = items[f"status:{accepted}"].status
    assert (status.code, status.document_id, status.to) == ("03", f"{H41},2026/11/20,12/UBND-VP", [])
    assert status.description == "Đã tiếp nhận"
    assert status.staff == {"staff": "Trần Thị B"}
    request = items[f"status:{take_back}"].status
    assert (request.code, request.to, request.code_text, request.promulgation_date) == (
        "13", [H41, K01], "12/UBND-VP", dt.date(2026, 11, 20))
    assert "status code '99'" in items[f"status:{bad_code}"].problem.one_line()
    assert "status_code" in items[f"status:{bad_code}"].problem.one_line()
    assert "to_organ_ids" in items[f"status:{no_receivers}"].problem.one_line()

    adapter.mark_sent(items[f"status:{accepted}"],
                      Receipt(journal_id="JS", document_id=status.document_id, state="sent",
                              axis_doc_id="AX-S"))
    row = row_of(backend.engine, outgoing_statuses, accepted)
    assert (row["exchange_state"], row["exchange_axis_doc_id"]) == ("sent", "AX-S")
    # the documents table is untouched by a status write-back
    assert row_of(backend.engine, outgoing_statuses, take_back)["exchange_state"] == "claimed"


def test_limit_is_shared_between_documents_and_statuses(backend):
    for n in range(3):
        insert_document(backend.engine, 400 + n)
        insert_status(backend.engine)
    adapter = side(backend, outgoing={"attachments": None})
    assert len(adapter.claim_ready(limit=4)) == 4
    assert len(adapter.claim_ready(limit=4)) == 2
    assert adapter.claim_ready(limit=4) == []


def test_check_reports_a_missing_column_by_key(backend):
    assert "reachable" in side(backend).check()
    broken = side(backend, outgoing={"recipients": {"table": "dms_outgoing_recipients",
                                                    "columns": {"organ_id": "organ_code"}}})
    with pytest.raises(DmsDatabaseError) as raised:
        broken.check()
    assert "database.outgoing.recipients" in raised.value.one_line()
