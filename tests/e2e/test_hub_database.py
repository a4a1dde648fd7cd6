"""A hub whose units share one DMS database (a province-wide DMS), on PostgreSQL and MariaDB:
the mapping's unit column says which unit a row belongs to; each row is sent as its unit,
received documents are written with the receiving unit's value, and a row of no configured
unit gets its error written back and is never sent (issue 14, part 2).

Real processes: the hub (two units, database side only), the outside agency B (folders), the
axis simulator; the DMS on the machine's PostgreSQL and MariaDB (a visible skip without them).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from connector.devtools.hub_lab import HubLab, wait_until
from connector.devtools.lab import document_metadata, pdf_bytes
from connector.dms.database.mapping import IncomingMapping

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dms_db"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_dms_schema import incoming_documents, outgoing_documents  # noqa: E402
from test_database_mode import MARIADB_ADMIN, PG_ADMIN, _admin_engine  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(params=["postgresql", "mariadb"])
def shared_dms(request):
    """The sample DMS schema in a fresh PostgreSQL schema / MariaDB database, with a unit
    column (``don_vi``) on the outgoing and incoming document tables."""
    import uuid

    from sample_dms_schema import create_sample_schema

    name = f"e2e_hub_{uuid.uuid4().hex[:8]}"
    if request.param == "mariadb":
        admin = _admin_engine(MARIADB_ADMIN, "MariaDB")
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        url = MARIADB_ADMIN.replace("/test?", f"/{name}?")
        drop = f"DROP DATABASE {name}"
    else:
        admin = _admin_engine(PG_ADMIN, "PostgreSQL")
        with admin.begin() as connection:
            connection.exec_driver_sql(f"CREATE SCHEMA {name}")
        url = f"{PG_ADMIN}?options=-csearch_path%3D{name}"
        drop = f"DROP SCHEMA {name} CASCADE"
    engine = sa.create_engine(url)
    create_sample_schema(engine)
    with engine.begin() as connection:
        for table in ("dms_outgoing_documents", "dms_incoming_documents"):
            connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN don_vi VARCHAR(32)")
    try:
        yield url, engine
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.exec_driver_sql(drop)
        admin.dispose()


def rows(engine, table, **where):
    query = sa.select(table, sa.column("don_vi"))
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def outgoing_row(engine, unit_value: str | None, number: str, to: str) -> int:
    with engine.begin() as connection:
        row_id = connection.execute(outgoing_documents.insert().values(
            subject=f"Văn bản {number}", code_number=number, code_notation="UBND-VP",
            promulgation_place="Vinh", promulgation_date=dt.date.today(), doc_type="1",
            doc_type_detail="0", recipients=json.dumps([to]),
            exchange_state="new")).inserted_primary_key[0]
        connection.execute(sa.text("UPDATE dms_outgoing_documents SET don_vi = :unit WHERE id = :id"),
                           {"unit": unit_value, "id": row_id})
    return row_id


def test_units_sharing_one_dms_database_send_and_receive_as_themselves(tmp_path, dev_certs,
                                                                      shared_dms):
    url, dms = shared_dms
    incoming_columns = dict(IncomingMapping().documents.columns, unit="don_vi")
    with HubLab(tmp_path, units=2, certs=dev_certs) as hub:
        snv, other = hub.units
        snv.overrides = {"database": {"unit_value": "SNV"}}  # a DMS code, mapped to its OrganId
        hub.configure(exchange={"enabled": False}, database={
            "url": url, "claim_owner": "hub",
            "outgoing": {"unit_column": "don_vi"},
            "incoming": {"documents": {"table": "dms_incoming_documents",
                                       "columns": incoming_columns}}})
        hub.start()
        outside = hub.outside
        first = outgoing_row(dms, "SNV", "701", outside.organ_id)
        second = outgoing_row(dms, other.organ_id, "702", outside.organ_id)
        stray = outgoing_row(dms, "XYZ", "703", outside.organ_id)

        # each row goes out as its own unit, signed with its key
        assert wait_until(lambda: len(outside.inbox_documents()) == 2, 40), \
            outside.inbox_documents()
        senders = {d["code"].split("/")[0]: d["sender"] for d in outside.inbox_documents()}
        assert senders == {"701": snv.organ_id, "702": other.organ_id}
        assert all(d["signature"]["state"] == "valid" for d in outside.inbox_documents())
        # the row of no configured unit: failed with the reason, never sent
        failed = wait_until(lambda: [r for r in rows(dms, outgoing_documents, id=stray)
                                     if r["exchange_state"] == "failed"], 20)
        assert failed and "'XYZ' is no unit of this connector" in failed[0]["exchange_error"]
        assert "SNV" in failed[0]["exchange_error"]
        sent = wait_until(lambda: all(r["exchange_state"] == "sent" for r in
                                      rows(dms, outgoing_documents, id=first)
                                      + rows(dms, outgoing_documents, id=second)), 20)
        assert sent, rows(dms, outgoing_documents)
        claimed_by = {r["id"]: r["exchange_claimed_by"] for r in rows(dms, outgoing_documents)}
        assert claimed_by[first] == "hub:SNV" and claimed_by[second] == f"hub:{other.organ_id}"

        # received documents land in the shared tables with the receiving unit's value
        outside.drop_bundle("to-units", document_metadata(
            [snv.organ_id, other.organ_id], "801", "Gửi hai đơn vị"), {"a.pdf": pdf_bytes("801")})
        received = wait_until(lambda: len(rows(dms, incoming_documents, code_number="801")) == 2
                              and rows(dms, incoming_documents, code_number="801"), 40)
        assert received, rows(dms, incoming_documents)
        assert sorted(r["don_vi"] for r in received) == sorted(["SNV", other.organ_id])
        assert all(r["from_organ_id"] == outside.organ_id for r in received)
        assert len(outside.inbox_documents()) == 2  # the stray row never left
