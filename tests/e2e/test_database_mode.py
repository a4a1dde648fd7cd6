"""End to end with the DMS database as agency B's side (A keeps the folder tree): documents both
ways, B's automatic 01, a status row (15) and a lifecycle event (revoke) landing in B's tables —
real processes, a real DMS database.

The lab runs once, on SQLite: the pipelines do not know which database is behind the adapter
(``dms/base.py``), and the adapter itself is tested on SQLite, PostgreSQL and MariaDB in
``tests/dms_db`` (claims, inserts, statuses, write-back, each on the real server), in a fraction
of a lab's time. ``EDXML_E2E_DMS=all pytest tests/e2e/test_database_mode.py`` rehearses the lab
on PostgreSQL and MariaDB too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from flows import send_document, wait_inbox, wait_status

from connector.devtools.lab import pdf_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dms_db"))

from sample_dms_schema import (  # noqa: E402
    create_sample_schema,
    incoming_attachments,
    incoming_documents,
    incoming_events,
    incoming_statuses,
    outgoing_attachments,
    outgoing_documents,
    outgoing_statuses,
)

pytestmark = pytest.mark.slow

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"


def _admin_engine(url: str, name: str):
    """An engine on the admin database, or a visible skip when the server does not answer."""
    try:
        admin = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with admin.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        return admin
    except Exception as error:  # noqa: BLE001 - any failure means "not available"
        pytest.skip(f"{name} not reachable at {url.split('@')[1].split('/')[0]}: "
                    f"{str(error).splitlines()[0]}")


DMS_BACKENDS = (["sqlite", "postgresql", "mariadb"] if os.environ.get("EDXML_E2E_DMS") == "all"
                else ["sqlite"])


@pytest.fixture(params=DMS_BACKENDS)
def dms_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'dms.db'}"
        engine = sa.create_engine(url)
        create_sample_schema(engine)
        engine.dispose()
        yield url
        return
    if request.param == "mariadb":
        admin = _admin_engine(MARIADB_ADMIN, "MariaDB")
        database = f"e2e_dms_{uuid.uuid4().hex[:8]}"
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {database} CHARACTER SET utf8mb4")
        url = MARIADB_ADMIN.replace("/test?", f"/{database}?")
        engine = sa.create_engine(url)
        create_sample_schema(engine)
        engine.dispose()
        try:
            yield url
        finally:
            with admin.begin() as connection:
                connection.exec_driver_sql(f"DROP DATABASE {database}")
            admin.dispose()
        return
    admin = _admin_engine(PG_ADMIN, "PostgreSQL")
    schema = f"e2e_dms_{uuid.uuid4().hex[:8]}"
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
    engine = sa.create_engine(url)
    create_sample_schema(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def rows(engine, table, **where):
    query = sa.select(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def test_dms_database_side_both_directions_statuses_and_lifecycle(new_lab, dms_url):
    lab = new_lab()
    a, b = lab.a, lab.b
    b.configure(exchange={"enabled": False},
                database={"url": dms_url, "claim_owner": "connector-b"})
    lab.start()
    dms = sa.create_engine(dms_url)
    try:
        # A (folders) -> B (database)
        send_document(lab, a, b, "501", files={"Công văn 501.pdf": pdf_bytes("501")})
        received = lab.wait_for(lambda: rows(dms, incoming_documents, code_number="501"),
                                what="document 501 in B's dms_incoming_documents",
                                seen=lambda: rows(dms, incoming_documents),
                                require_running=lab.processes)[0]
        assert received["from_organ_id"] == a.organ_id
        assert received["signature_state"] == "valid"
        assert received["quarantined"] in (False, 0)
        files = rows(dms, incoming_attachments, document_journal_id=received["journal_id"])
        assert [(f["file_name"], bytes(f["content"])) for f in files] == [
            ("Công văn 501.pdf", pdf_bytes("501"))]
        wait_status(lab, a, received["document_id"], b.organ_id, "01")

        # B (database) -> A (folders): a row, its attachment, state 'new'
        with dms.begin() as connection:
            row_id = connection.execute(outgoing_documents.insert().values(
                subject="Báo cáo từ CSDL", code_number="502", code_notation="UBND-VP",
                promulgation_place="Vinh", promulgation_date=dt.date.today(),
                doc_type="1", doc_type_detail="0", recipients=json.dumps([a.organ_id]),
                exchange_state="new")).inserted_primary_key[0]
            connection.execute(outgoing_attachments.insert().values(
                outgoing_id=row_id, position=0, file_name="bao-cao.pdf",
                content=pdf_bytes("502")))
        doc = wait_inbox(lab, a, "502")
        assert doc["sender"] == b.organ_id and doc["signature"]["state"] == "valid"
        assert (Path(doc["_folder"]) / "bao-cao.pdf").read_bytes() == pdf_bytes("502")
        written = lab.wait_for(
            lambda: [r for r in rows(dms, outgoing_documents, id=row_id)
                     if r["exchange_state"] == "sent" and r["exchange_status"] == "01"],
            what="B's row 502 written back: sent, axis DocId, status 01",
            seen=lambda: rows(dms, outgoing_documents, id=row_id))[0]
        assert written["exchange_axis_doc_id"] and written["exchange_document_id"] == doc["document_id"]
        lab.wait_for(lambda: rows(dms, incoming_statuses, document_id=doc["document_id"],
                                  status_code="01"),
                     what="A's 01 in B's dms_incoming_statuses",
                     seen=lambda: rows(dms, incoming_statuses))

        # A revokes 501: recorded in B's dms_incoming_events; B agrees with a status row (15)
        send_document(lab, a, b, "501", name="revoke-501", document_id=received["document_id"],
                      business={"type": "revoke"}, files={})
        event = lab.wait_for(lambda: rows(dms, incoming_events, event="revoked"),
                             what="'revoked' in B's dms_incoming_events",
                             seen=lambda: rows(dms, incoming_events))[0]
        assert event["document_id"] == received["document_id"]
        assert event["from_organ_id"] == a.organ_id
        with dms.begin() as connection:
            status_id = connection.execute(outgoing_statuses.insert().values(
                status_code="15", document_id=received["document_id"],
                to_organ_ids=a.organ_id, description="Đồng ý thu hồi",
                exchange_state="new")).inserted_primary_key[0]
        wait_status(lab, a, received["document_id"], b.organ_id, "15")
        lab.wait_for(lambda: rows(dms, outgoing_statuses, id=status_id,
                                  exchange_state="sent"),
                     what="B's status row written back as sent",
                     seen=lambda: rows(dms, outgoing_statuses, id=status_id))
        # a DMS row is never delivered twice: one incoming row per document
        assert len(rows(dms, incoming_documents, code_number="501")) == 2  # original + revoke
    finally:
        dms.dispose()
