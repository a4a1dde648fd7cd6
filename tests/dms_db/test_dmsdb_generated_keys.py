"""A DMS register whose key is an INTEGER without a default (issue 14, part 2): the mapping
generates the key of each row the connector inserts — the next number under a lock, a sequence,
or the operator's SQL expression — and the attachments refer to the generated key."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil

import pytest
import sqlalchemy as sa
from dmsdb_helpers import race, settings
from sample_dms_schema import Blob

from connector.dms.base import IncomingDocument
from connector.dms.database.mapping import DmsDatabaseSettings
from connector.dms.database.side import DatabaseSide
from connector.errors import ConfigError

register = sa.MetaData()
van_ban_den = sa.Table(  # "incoming documents", as a Vietnamese DMS names its register
    "van_ban_den", register,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ma_lien_thong", sa.String(64), nullable=False, unique=True),
    sa.Column("trich_yeu", sa.Text),
    sa.Column("don_vi_gui", sa.String(64)),
)
tep_dinh_kem = sa.Table(  # "attached files", linked by the register's INTEGER id
    "tep_dinh_kem", register,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("van_ban_id", sa.Integer, nullable=False),
    sa.Column("ten_tep", sa.String(255)),
    sa.Column("noi_dung", Blob),
)


@pytest.fixture
def registers(backend):
    register.drop_all(backend.engine)
    register.create_all(backend.engine)
    yield backend
    with backend.engine.begin() as connection:
        if backend.name != "sqlite":
            connection.exec_driver_sql("DROP SEQUENCE IF EXISTS so_den_seq")
    register.drop_all(backend.engine)


@pytest.fixture
def received(interop_dir, tmp_path):
    from connector.edxml.reader import read_package
    from connector.edxml.summary import summarize

    package = tmp_path / "package.edxml"
    shutil.copyfile(interop_dir / "sdk-samples" / "edoc_new.edxml", package)
    return IncomingDocument(
        journal_id="IN-1", axis_doc_id="AXIS-IN-1",
        received_at=dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.timezone.utc),
        package_path=package, summary=summarize(read_package(package)),
        signature={"state": "valid", "reason": None, "signer": None}, warnings=[], lifecycle={})


def mapping(backend, key: dict, owner: str = "connector-a") -> DmsDatabaseSettings:
    return settings(backend.url, owner, incoming={
        "documents": {"table": "van_ban_den", "key": "journal_id",
                      "columns": {"journal_id": "ma_lien_thong", "subject": "trich_yeu",
                                  "from.organ_id": "don_vi_gui"},
                      "generated": {"id": key}},
        "attachments": {"table": "tep_dinh_kem", "foreign_key": "van_ban_id", "references": "id",
                        "columns": {"name": "ten_tep", "content": "noi_dung"},
                        "generated": {"id": {"next_number": True}}},
        "statuses": None, "events": None})


def rows(engine, table) -> list[dict]:
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(sa.select(table).order_by(table.c.id))
                .mappings()]


def deliver(side: DatabaseSide, received: IncomingDocument, number: int) -> str:
    return side.deliver_document(dataclasses.replace(received, journal_id=f"IN-{number}"))


def deliver_two(backend, key: dict, received: IncomingDocument) -> None:
    """Documents IN-1 and IN-2 inserted by one connector whose mapping generates the key so."""
    side = DatabaseSide(mapping(backend, key))
    try:
        deliver(side, received, 1)
        deliver(side, received, 2)
    finally:
        side.close()


def test_the_next_number_follows_what_the_dms_wrote_and_the_attachments_follow_it(
        registers, received):
    with registers.engine.begin() as connection:  # the DMS's own clerk entered number 7
        connection.execute(van_ban_den.insert().values(id=7, ma_lien_thong="DMS-7"))
    side = DatabaseSide(mapping(registers, {"next_number": True}))
    try:
        assert deliver(side, received, 1) == "database:van_ban_den/IN-1"
        deliver(side, received, 2)
        assert deliver(side, received, 1) == "database:van_ban_den/IN-1"  # once only
    finally:
        side.close()
    documents = rows(registers.engine, van_ban_den)
    assert [(r["id"], r["ma_lien_thong"]) for r in documents] == [
        (7, "DMS-7"), (8, "IN-1"), (9, "IN-2")]
    files = rows(registers.engine, tep_dinh_kem)
    assert len(files) == 4 and [r["id"] for r in files] == [1, 2, 3, 4]
    assert sorted({r["van_ban_id"] for r in files}) == [8, 9]  # each row under its document


@pytest.mark.parametrize("connectors", [2])
def test_two_connectors_inserting_at_once_never_take_the_same_number(
        registers, received, connectors):
    with registers.engine.begin() as connection:
        connection.execute(van_ban_den.insert().values(id=1, ma_lien_thong="DMS-1"))
    sides = [DatabaseSide(mapping(registers, {"next_number": True}, owner=f"c{n}"))
             for n in range(connectors)]
    try:
        race(lambda index: deliver(sides[index], received, 10 + index), connectors=connectors)
    finally:
        for side in sides:
            side.close()
    assert sorted(r["id"] for r in rows(registers.engine, van_ban_den)) == [1, 2, 3]
    assert len({r["id"] for r in rows(registers.engine, tep_dinh_kem)}) == 4


def test_an_expression_the_operator_writes_fills_the_key(registers, received):
    expression = "(SELECT COALESCE(MAX(id), 0) + 1000 FROM van_ban_den)"
    deliver_two(registers, {"expression": expression}, received)
    assert [r["id"] for r in rows(registers.engine, van_ban_den)] == [1000, 2000]


def test_a_sequence_fills_the_key_where_the_database_has_sequences(registers, received):
    if registers.name == "sqlite":
        with pytest.raises(ConfigError) as refused:
            DatabaseSide(mapping(registers, {"sequence": "so_den_seq"}))
        message = str(refused.value)
        assert "incoming.documents.generated.id.sequence" in message and "SQLite" in message
        return
    with registers.engine.begin() as connection:
        connection.exec_driver_sql("CREATE SEQUENCE so_den_seq START WITH 500")
    deliver_two(registers, {"sequence": "so_den_seq"}, received)
    assert [r["id"] for r in rows(registers.engine, van_ban_den)] == [500, 501]


@pytest.mark.parametrize("key, problem", [
    ({}, "give exactly one of sequence, expression, next_number"),
    ({"sequence": "s", "next_number": True}, "got sequence, next_number"),
])
def test_a_generated_column_says_how_in_exactly_one_way(key, problem):
    with pytest.raises(ValueError, match=problem):
        DmsDatabaseSettings.model_validate({"url": "sqlite://", "incoming": {"documents": {
            "table": "t", "columns": {"journal_id": "j"}, "generated": {"id": key}}}})


def test_a_column_is_either_mapped_or_generated_and_references_must_exist():
    with pytest.raises(ValueError, match="either mapped or generated"):
        DmsDatabaseSettings.model_validate({"url": "sqlite://", "incoming": {"documents": {
            "table": "t", "columns": {"journal_id": "id"},
            "generated": {"id": {"next_number": True}}}}})
    with pytest.raises(ValueError, match="attachments.references"):
        DmsDatabaseSettings.model_validate({"url": "sqlite://", "incoming": {
            "documents": {"table": "t", "columns": {"journal_id": "j"}},
            "attachments": {"table": "a", "references": "nope"}}})
