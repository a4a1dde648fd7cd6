"""A sample DMS schema: what the default ``database:`` mapping expects, runnable on PostgreSQL,
MariaDB/MySQL and SQLite. A vendor can create it as is (``create_sample_schema(engine)``) or read it
as the reference for their own mapping. ``print_ddl(dialect)`` prints the CREATE statements.

Outgoing: ``dms_outgoing_documents`` (header columns + the connector's ``exchange_*`` write-back
columns), with recipients either in its ``recipients`` column (JSON array) or in
``dms_outgoing_recipients``, and attachments in ``dms_outgoing_attachments`` (BLOB or file path) or,
for a DMS that keeps one file per document, in the row's ``attachment_*`` columns.
``dms_outgoing_view`` + ``dms_outgoing_claims`` show the read-only-view arrangement.
Statuses the DMS wants sent: ``dms_outgoing_statuses``. Incoming: ``dms_incoming_*``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()

# MySQL's plain BLOB stops at 64 KB; attachments and packages need LONGBLOB there.
Blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
LongText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def _exchange_columns() -> list[sa.Column]:
    """The connector's write-back columns (names = the ClaimsMapping defaults)."""
    return [
        sa.Column("exchange_state", sa.String(20), index=True),
        sa.Column("exchange_claimed_by", sa.String(100)),
        sa.Column("exchange_claimed_at", sa.DateTime),
        sa.Column("exchange_updated_at", sa.DateTime),
        sa.Column("exchange_journal_id", sa.String(64)),
        sa.Column("exchange_document_id", sa.String(255)),
        sa.Column("exchange_axis_doc_id", sa.String(100)),
        sa.Column("exchange_sent_at", sa.DateTime),
        sa.Column("exchange_error", sa.Text),
        sa.Column("exchange_status", sa.String(2)),
        sa.Column("exchange_receipt", sa.Text),
    ]


HEADER_COLUMNS = [
    ("document_id", sa.String(255)), ("subject", sa.String(500)), ("content", sa.String(500)),
    ("code_number", sa.String(50)), ("code_notation", sa.String(100)),
    ("promulgation_place", sa.String(200)), ("promulgation_date", sa.Date),
    ("doc_type", sa.String(10)), ("doc_type_detail", sa.String(10)),
    ("doc_type_name", sa.String(100)), ("signer_competence", sa.String(200)),
    ("signer_position", sa.String(200)), ("signer_name", sa.String(200)),
    ("due_date", sa.Date), ("priority", sa.Integer), ("steering_type", sa.Integer),
    ("to_places", sa.Text), ("response_for", sa.Text),
    ("business_type", sa.String(10)), ("business_reason", sa.String(500)),
    ("business_replaces", sa.Text), ("business_update", sa.Text),
    ("take_back_document_id", sa.String(255)), ("take_back_code", sa.String(150)),
    ("take_back_reason", sa.String(500)),
    ("recipients", sa.Text),  # JSON array: ["000.00.00.H41", ...] or [{"organ_id": ...}, ...]
]

outgoing_documents = sa.Table(
    "dms_outgoing_documents", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    *(sa.Column(name, type_) for name, type_ in HEADER_COLUMNS),
    sa.Column("attachment_name", sa.String(255)),   # one-file-per-row DMSs
    sa.Column("attachment_content", Blob),
    sa.Column("attachment_path", sa.String(1000)),
    *_exchange_columns(),
)

outgoing_recipients = sa.Table(
    "dms_outgoing_recipients", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("outgoing_id", sa.Integer, sa.ForeignKey("dms_outgoing_documents.id"),
              nullable=False, index=True),
    sa.Column("organ_id", sa.String(13), nullable=False),
    sa.Column("organ_name", sa.String(255)),
)

outgoing_attachments = sa.Table(
    "dms_outgoing_attachments", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("outgoing_id", sa.Integer, sa.ForeignKey("dms_outgoing_documents.id"),
              nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False, default=0),
    sa.Column("file_name", sa.String(255)),
    sa.Column("content_type", sa.String(100)),
    sa.Column("description", sa.String(500)),
    sa.Column("content", Blob),                 # either the bytes...
    sa.Column("file_path", sa.String(1000)),    # ...or where the DMS stored the file
)

# For a DMS that exposes a read-only view: the connector writes claims and results here, keyed
# by the view's row id (the primary key makes the claim atomic).
outgoing_claims = sa.Table(
    "dms_outgoing_claims", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    *_exchange_columns(),
)

outgoing_statuses = sa.Table(
    "dms_outgoing_statuses", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("status_code", sa.String(2), nullable=False),
    sa.Column("document_id", sa.String(255), nullable=False),
    sa.Column("to_organ_ids", sa.String(1000)),   # "000.00.00.G22;000.00.00.H41"
    sa.Column("description", sa.String(1000)),
    sa.Column("staff_department", sa.String(200)),
    sa.Column("staff_name", sa.String(200)),
    sa.Column("staff_email", sa.String(200)),
    sa.Column("staff_mobile", sa.String(50)),
    sa.Column("original_code", sa.String(150)),
    sa.Column("original_promulgation_date", sa.Date),
    *_exchange_columns(),
)

incoming_documents = sa.Table(
    "dms_incoming_documents", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("journal_id", sa.String(64), nullable=False, unique=True),
    sa.Column("axis_doc_id", sa.String(100)),
    sa.Column("received_at", sa.DateTime),
    sa.Column("document_id", sa.String(255)),
    sa.Column("from_organ_id", sa.String(50)),
    sa.Column("from_organ_name", sa.String(255)),
    sa.Column("subject", sa.Text),
    sa.Column("code_number", sa.String(50)),
    sa.Column("code_notation", sa.String(100)),
    sa.Column("promulgation_date", sa.Date),
    sa.Column("business_type", sa.Integer),
    sa.Column("signature_state", sa.String(30)),
    sa.Column("signature_reason", sa.Text),
    sa.Column("warnings", sa.Text),
    sa.Column("lifecycle", sa.Text),
    sa.Column("summary", LongText),
    sa.Column("package_path", sa.String(1000)),
    sa.Column("package", Blob),
    sa.Column("quarantined", sa.Boolean, nullable=False, default=False),
    sa.Column("quarantine_reason", sa.Text),
)

incoming_attachments = sa.Table(
    "dms_incoming_attachments", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("document_journal_id", sa.String(64), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("file_name", sa.String(255)),
    sa.Column("content_type", sa.String(100)),
    sa.Column("size", sa.BigInteger),
    sa.Column("sha256", sa.String(64)),
    sa.Column("content", Blob),
    sa.UniqueConstraint("document_journal_id", "position", name="uq_dms_incoming_att_pos"),
)

incoming_statuses = sa.Table(
    "dms_incoming_statuses", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("journal_id", sa.String(64), nullable=False, unique=True),
    sa.Column("axis_doc_id", sa.String(100)),
    sa.Column("received_at", sa.DateTime),
    sa.Column("from_organ_id", sa.String(50)),
    sa.Column("document_id", sa.String(255)),
    sa.Column("status_code", sa.String(2)),
    sa.Column("description", sa.Text),
    sa.Column("status_time", sa.DateTime),
)

incoming_events = sa.Table(
    "dms_incoming_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("journal_id", sa.String(64), nullable=False, unique=True),
    sa.Column("event", sa.String(40)),
    sa.Column("document_id", sa.String(255)),
    sa.Column("from_organ_id", sa.String(50)),
    sa.Column("event_at", sa.DateTime),
    sa.Column("original_location", sa.String(1000)),
    sa.Column("detail", sa.Text),
)

VIEW_NAME = "dms_outgoing_view"
VIEW_SQL = ("CREATE VIEW dms_outgoing_view AS SELECT id, " +
            ", ".join(name for name, _ in HEADER_COLUMNS) + " FROM dms_outgoing_documents")

# Children first, so that DELETE and DROP respect the foreign keys.
TABLES_CHILDREN_FIRST = list(reversed(metadata.sorted_tables))


def create_sample_schema(engine: sa.Engine) -> None:
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql(VIEW_SQL)


def drop_sample_schema(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP VIEW IF EXISTS {VIEW_NAME}")
    metadata.drop_all(engine)


def empty_sample_tables(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        for table in TABLES_CHILDREN_FIRST:
            connection.execute(table.delete())


def print_ddl(dialect_name: str = "postgresql") -> None:  # pragma: no cover - documentation aid
    from sqlalchemy.schema import CreateTable

    dialect = sa.create_mock_engine(f"{dialect_name}://", None).dialect  # type: ignore[arg-type]
    for table in metadata.sorted_tables:
        print(str(CreateTable(table).compile(dialect=dialect)).strip() + ";\n")
    print(VIEW_SQL + ";")


if __name__ == "__main__":  # pragma: no cover
    import sys

    print_ddl(sys.argv[1] if len(sys.argv) > 1 else "postgresql")
