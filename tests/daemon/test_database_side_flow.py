"""The DMS-database agency side driven by the real pipelines (SQLite DMS databases with the
sample schema): A's DMS row is claimed (the claim recorded in A's journal), packaged, signed and
sent; B's connector inserts the document into B's DMS tables and answers 01; B's DMS asks for 03
with a row in its status table; both statuses are written back on A's row."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import sqlalchemy as sa
from structlog.testing import capture_logs

from connector.journal import IncomingState, OutgoingState

from .conftest import PDF, A, B, document_metadata, drop_bundle

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dms_db"))

from sample_dms_schema import (  # noqa: E402
    create_sample_schema,
    incoming_attachments,
    incoming_documents,
    incoming_events,
    outgoing_attachments,
    outgoing_documents,
    outgoing_statuses,
)


def _dms(tmp_path: Path, name: str) -> tuple[str, sa.Engine]:
    url = f"sqlite:///{tmp_path / f'{name}-dms.db'}"
    engine = sa.create_engine(url)
    create_sample_schema(engine)
    return url, engine


def _row(engine: sa.Engine, table: sa.Table, **where) -> dict:
    with engine.connect() as connection:
        query = sa.select(table)
        for key, value in where.items():
            query = query.where(table.c[key] == value)
        row = connection.execute(query).mappings().first()
    assert row is not None, f"no row {where} in {table.name}"
    return dict(row)


def test_database_side_both_ways_through_the_pipelines(make_agency, tmp_path):
    a_url, a_dms = _dms(tmp_path, "a")
    b_url, b_dms = _dms(tmp_path, "b")
    a = make_agency("A", exchange={"enabled": False},
                    database={"url": a_url, "claim_owner": "connector-a"})
    b = make_agency("B", exchange={"enabled": False},
                    database={"url": b_url, "claim_owner": "connector-b"})

    with a_dms.begin() as connection:  # what A's DMS does to send a document
        row_id = connection.execute(outgoing_documents.insert().values(
            subject="Công văn số 7 về việc thử nghiệm", code_number="7", code_notation="VPCP-TTĐT",
            promulgation_place="Hà Nội", promulgation_date=dt.date(2026, 11, 23),
            doc_type="1", doc_type_detail="0", doc_type_name="Công văn",
            signer_name="Nguyễn Văn A", signer_position="Chánh Văn phòng",
            recipients=json.dumps([B]), exchange_state="new")).inserted_primary_key[0]
        connection.execute(outgoing_attachments.insert().values(
            outgoing_id=row_id, position=0, file_name="Công văn số 7.pdf", content=PDF))

    a.cycle()

    [sent] = a.journal.outgoing.list_outgoing(OutgoingState.SENT)
    assert (sent.source, sent.source_ref) == ("database", str(row_id))  # the claim, journalled
    assert [e.event for e in a.journal.events(sent.id)][0] == "enqueued"
    row = _row(a_dms, outgoing_documents, id=row_id)
    assert row["exchange_state"] == "sent" and row["exchange_claimed_by"] == "connector-a"
    assert row["exchange_axis_doc_id"] == sent.axis_doc_id
    assert row["exchange_document_id"] == sent.document_id
    assert row["exchange_journal_id"] == sent.id

    b.poll()  # B: stored, verified, acknowledged, inserted into B's DMS tables, 01 sent
    [received] = b.journal.incoming.list_incoming(messagetype="edoc")
    assert received.state is IncomingState.DELIVERED
    inserted = _row(b_dms, incoming_documents, journal_id=received.id)
    assert inserted["document_id"] == sent.document_id and inserted["from_organ_id"] == A
    assert inserted["signature_state"] == "valid" and not inserted["quarantined"]
    attachment = _row(b_dms, incoming_attachments, document_journal_id=received.id)
    assert (attachment["file_name"], attachment["content"]) == ("Công văn số 7.pdf", PDF)
    b.poll()  # polling again inserts nothing twice
    with b_dms.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(incoming_documents)
                                  ).scalar_one() == 1

    a.poll()  # A receives 01: written back on the DMS row
    assert _row(a_dms, outgoing_documents, id=row_id)["exchange_status"] == "01"

    with b_dms.begin() as connection:  # B's DMS: "accepted" (03), addressed from the journal
        status_id = connection.execute(outgoing_statuses.insert().values(
            status_code="03", document_id=sent.document_id, description="Đã vào sổ",
            staff_name="Trần Thị B", exchange_state="new")).inserted_primary_key[0]
    b.cycle()
    status_row = _row(b_dms, outgoing_statuses, id=status_id)
    assert status_row["exchange_state"] == "sent", status_row["exchange_error"]

    a.poll()
    row = _row(a_dms, outgoing_documents, id=row_id)
    assert row["exchange_status"] == "03"
    assert json.loads(row["exchange_receipt"])[B]["status"] == "03"
    assert {d.organ_id: d.status_code for d in a.journal.outgoing.get_outgoing(sent.id).deliveries} == {
        B: "03"}


def test_revoke_and_take_back_rows_reach_the_receivers_dms_as_events(make_agency, tmp_path):
    a_url, a_dms = _dms(tmp_path, "a")
    b_url, b_dms = _dms(tmp_path, "b")
    a = make_agency("A", exchange={"enabled": False},
                    database={"url": a_url, "claim_owner": "connector-a",
                              "outgoing": {"attachments": None}})
    b = make_agency("B", exchange={"enabled": False},
                    database={"url": b_url, "claim_owner": "connector-b"})
    header = dict(code_notation="VPCP-TTĐT", promulgation_place="Hà Nội",
                  promulgation_date=dt.date(2026, 11, 23), doc_type="1", doc_type_detail="0",
                  recipients=json.dumps([B]), exchange_state="new")
    with a_dms.begin() as connection:
        connection.execute(outgoing_documents.insert().values(
            subject="Công văn số 9", code_number="9", **header))
    a.cycle()
    [original] = a.journal.outgoing.list_outgoing(OutgoingState.SENT)
    b.poll()
    [received] = b.journal.incoming.list_incoming(messagetype="edoc")

    with a_dms.begin() as connection:  # revoke (business type 1) and take back (13), by columns
        connection.execute(outgoing_documents.insert().values(
            subject="Thu hồi công văn số 9", code_number="9", business_type="revoke",
            document_id=original.document_id, business_reason="Ban hành nhầm", **header))
        connection.execute(outgoing_documents.insert().values(
            subject="Lấy lại", code_number="9", take_back_document_id=original.document_id,
            take_back_reason="Gửi nhầm nơi nhận", **header))
    a.cycle()
    sent = a.journal.outgoing.list_outgoing(OutgoingState.SENT)
    assert sorted((r.kind, r.business_type) for r in sent) == [
        ("document", 0), ("document", 1), ("status", None)]
    b.poll()

    with b_dms.connect() as connection:
        events = connection.execute(sa.select(incoming_events)).mappings().all()
        documents = connection.execute(sa.select(incoming_documents)).mappings().all()
    assert sorted(e["event"] for e in events) == ["revoked", "take_back_requested"]
    assert {e["document_id"] for e in events} == {original.document_id}
    assert len(documents) == 2  # the original and the revoke; nothing deleted
    assert _row(b_dms, incoming_documents, journal_id=received.id)["document_id"] == \
        original.document_id


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_dms_that_refuses_inserts_pauses_delivery_once_and_resumes_by_itself(
        make_agency, tmp_path):
    """Issue 14 (2): a failing insert backs off and shows in readiness and ``status`` instead of
    repeating the same error every poll; the received items wait, stored and acknowledged."""
    from connector.ops.status_view import collect_status
    from connector.pipeline.delivery_backoff import DeliveryBackoff
    from connector.service.health import HealthMonitor

    b_url, b_dms = _dms(tmp_path, "b")
    a = make_agency("A")
    b = make_agency("B", exchange={"enabled": False},
                    database={"url": b_url, "claim_owner": "connector-b"})
    clock = _Clock()
    b.inbound.delivery = DeliveryBackoff(first=30, longest=120, clock=clock)
    b.inbound.health = HealthMonitor()
    incoming_documents.drop(b_dms)  # the DMS's register is not there (a broken migration)

    for number in ("201", "202"):
        drop_bundle(a.exchange / "outbox", f"cv{number}", document_metadata(number),
                    {"Công văn số 101.pdf": PDF})
    a.cycle()
    with capture_logs() as logged:
        for _ in range(4):  # four polls while the table is missing
            b.poll()
    received = b.journal.incoming.list_incoming(messagetype="edoc")
    assert len(received) == 2 and all(r.delivered_at is None for r in received)
    assert all(r.is_acknowledged for r in received)  # stored: the axis has nothing to resend
    tries = [e for e in logged if e["event"].startswith("incoming_")
             and "dms_incoming_documents" in str(e.get("error"))]
    assert len(tries) == 1, tries  # one try, not one per item per poll
    assert [e["event"] for e in logged].count("delivery_paused") == 1

    readiness = b.inbound.health.readiness()
    assert not readiness.ready
    assert any("delivery to the agency side paused" in reason and "dms_incoming_documents" in reason
               for reason in readiness.reasons)
    paused = collect_status(b.journal)["delivery_paused"]
    assert paused["failures"] == 1 and "dms_incoming_documents" in paused["reason"]

    clock.now += 31  # the pause is over, the table still missing: the next pause is longer
    b.poll()
    assert b.inbound.delivery.pause is not None and b.inbound.delivery.pause.failures == 2
    assert collect_status(b.journal)["delivery_paused"]["failures"] == 2

    incoming_documents.create(b_dms)  # the DMS is fixed; nothing happens before the pause ends
    clock.now += 30
    b.poll()
    assert all(r.delivered_at is None for r in b.journal.incoming.list_incoming(messagetype="edoc"))
    clock.now += 31
    b.poll()
    delivered = b.journal.incoming.list_incoming(messagetype="edoc")
    assert all(r.state is IncomingState.DELIVERED for r in delivered)
    with b_dms.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(
            incoming_documents)).scalar() == 2
    assert not any("delivery" in reason for reason in b.inbound.health.readiness().reasons)
    assert collect_status(b.journal)["delivery_paused"] is None
