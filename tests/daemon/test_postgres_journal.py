"""The pipelines with their journals on PostgreSQL (a fresh schema each, dropped afterwards;
skipped with the reason when PostgreSQL does not answer at 127.0.0.1:5432): a document from A's
outbox reaches B's inbox, B's 01 comes back, a redelivery is not delivered twice, and after a
crash in `sending` the item is sent again (at-least-once) and B de-duplicates it."""

from __future__ import annotations

import json
import os
import secrets

import pytest
from sqlalchemy import create_engine, text

from connector.journal import IncomingState, OutgoingState
from connector.pipeline.outbound_build import PackageBuilder

from .conftest import PDF, B, document_metadata, drop_bundle, inbox_entries

pytestmark = pytest.mark.postgres

PG_ADMIN_URL = os.environ.get("JOURNAL_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url():
    """A factory of journal URLs, each on a brand-new schema."""
    try:
        admin = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure: skip, and say why
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: "
                    f"{type(error).__name__}: {error}".splitlines()[0])
    schemas: list[str] = []

    def make() -> str:
        schema = "daemon_test_" + secrets.token_hex(5)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        return f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"

    yield make
    with admin.begin() as conn:
        for schema in schemas:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_document_flow_with_postgresql_journals(make_agency, pg_url, simulator):
    a = make_agency("A", journal={"url": pg_url()})
    b = make_agency("B", journal={"url": pg_url()})
    assert a.journal.dialect == "postgresql" and b.journal.dialect == "postgresql"

    drop_bundle(a.exchange / "outbox", "cv7", document_metadata("7"), {"Công văn số 101.pdf": PDF})
    a.cycle()
    [sent] = a.journal.outgoing.list_outgoing(OutgoingState.SENT)
    assert sent.instance == "test"  # the journal and the folder claim share one instance name

    b.poll()
    [entry] = inbox_entries(b.exchange)
    assert json.loads((entry / "metadata.json").read_text())["document_id"] == sent.document_id
    a.poll()
    assert {d.organ_id: d.status_code for d in a.journal.outgoing.get_outgoing(sent.id).deliveries} == {
        B: "01"}

    simulator.faults.update({"relist_acked": True})  # the axis hands the document out again
    b.poll()
    assert len(inbox_entries(b.exchange)) == 1
    edocs = b.journal.incoming.list_incoming(messagetype="edoc")
    assert len(edocs) == 1 and edocs[0].state is IncomingState.DELIVERED


def test_crash_while_sending_resends_the_same_bytes_on_postgresql(make_agency, pg_url, simulator):
    url = pg_url()
    a = make_agency("A", journal={"url": url})
    b = make_agency("B", journal={"url": pg_url()})
    drop_bundle(a.exchange / "outbox", "cv8", document_metadata("8"), {"Công văn số 101.pdf": PDF})
    a.outbound.intake(a.runtime.side("folder"))
    [claimed] = a.journal.outgoing.claim_for_sending(1)
    # package it the way the send worker does, then "crash" before the axis's answer is recorded
    [item] = a.outbound._items.values()
    built = PackageBuilder(a.runtime).build(claimed, item)
    a.journal.outgoing.mark_packaged(claimed.id, package_path=str(built.stored.path),
                            sha256=built.stored.sha256, size=built.stored.size,
                            document_id=built.document_id, recipients=built.recipients)
    a.runtime.axis.send_edoc(built.stored.path)  # accepted; the answer is "lost"
    assert a.journal.outgoing.get_outgoing(claimed.id).state is OutgoingState.SENDING

    assert a.journal.outgoing.recover_interrupted() == [claimed.id]  # what the daemon does at start
    a.cycle()
    record = a.journal.outgoing.get_outgoing(claimed.id)
    assert record.state is OutgoingState.SENT and record.package_sha256 == built.stored.sha256
    assert len(simulator.store.sent_by(a.organ_id, "edoc")) == 2  # at-least-once

    b.poll()
    assert len(inbox_entries(b.exchange)) == 1  # the receiver de-duplicates
    states = sorted(r.state.value for r in b.journal.incoming.list_incoming(messagetype="edoc"))
    assert states == ["delivered", "duplicate"]
