"""The journal's tables (SQLAlchemy Core), identical on SQLite and PostgreSQL.

This module describes the tables for queries; the database itself is created and upgraded only by
the Alembic migrations in ``connector/journal/migrations`` (revision 0001 creates exactly these
tables). A change here therefore always comes with a new migration.

Times are stored as naive UTC (``timestamp without time zone``) so that SQLite, which has no time
zones, and PostgreSQL compare them the same way; :class:`UtcDateTime` converts at the boundary and
hands out aware UTC datetimes only.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out; naive UTC in the database.

    Naive datetimes are refused on the way in: a naive local time silently stored as UTC is the
    kind of bug that makes retries fire hours early.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"journal times must be timezone-aware, got naive {value!r}")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for an endless log.
AutoId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(naming_convention=NAMING_CONVENTION)

outgoing = Table(
    "outgoing", metadata,
    Column("id", String(26), primary_key=True),  # stable journal id (ULID)
    Column("source", String(32), nullable=False),  # folder, database, cli...
    Column("source_ref", String(512), nullable=False),  # the item's name at its source
    Column("kind", String(16), nullable=False),  # document, package or status
    Column("document_id", String(255), nullable=True),
    Column("business_type", Integer, nullable=True),
    Column("package_path", Text, nullable=True),
    Column("package_sha256", String(64), nullable=True),
    Column("package_size", BigInteger, nullable=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("claimed_at", UtcDateTime, nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("axis_doc_id", String(128), nullable=True),
    Column("meta", JSON, nullable=True),  # source-specific details (display name...)
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The connector instance that took the item in (revision 0002). Its package and its folder
    # claim live on that instance's server, so only that instance sends it (NULL: any instance).
    Column("instance", String(128), nullable=True),
    # SHA-256 (hex) of the certificate that signed the stored package (revision 0004): after a
    # renewal, which key signed which document stays known. NULL: unsigned (statuses).
    Column("signed_by", String(64), nullable=True),
    # The unit (OrganId) the item is sent as (revision 0006): a hub serves many from one journal.
    Column("agency", String(32), nullable=False, server_default=""),
    UniqueConstraint("source", "source_ref"),
    Index(None, "state", "next_attempt_at"),
    Index(None, "document_id"),
    Index(None, "instance", "state"),
    Index(None, "agency", "state"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("outgoing_id", String(26), ForeignKey("outgoing.id", ondelete="CASCADE"),
           primary_key=True),
    Column("organ_id", String(32), primary_key=True),
    Column("status_code", String(4), nullable=True),  # latest status from this recipient
    Column("description", Text, nullable=True),
    Column("status_at", UtcDateTime, nullable=True),  # the status's own timestamp
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "organ_id"),
)

incoming = Table(
    "incoming", metadata,
    Column("id", String(26), primary_key=True),
    Column("axis_doc_id", String(128), nullable=False),
    Column("messagetype", String(16), nullable=False),  # edoc or status
    Column("state", String(16), nullable=False),
    Column("sender", String(32), nullable=True),
    Column("document_id", String(255), nullable=True),
    Column("business_type", Integer, nullable=True),
    Column("package_path", Text, nullable=True),
    Column("package_sha256", String(64), nullable=True),
    Column("package_size", BigInteger, nullable=True),
    Column("signature_state", String(32), nullable=True),  # "revocation-unknown" (migration 0003)
    Column("delivered_location", Text, nullable=True),
    Column("quarantined", Boolean, nullable=False, default=False),
    Column("quarantine_reason", Text, nullable=True),
    Column("quarantine_location", Text, nullable=True),
    Column("duplicate_of", String(26), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("meta", JSON, nullable=True),
    Column("stored_at", UtcDateTime, nullable=True),
    Column("acknowledged_at", UtcDateTime, nullable=True),
    Column("delivered_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The instance whose package store holds the package (revision 0002; NULL: any instance).
    Column("instance", String(128), nullable=True),
    # The unit (OrganId) it was received for (revision 0006): one DocId may be listed for two
    # units of a hub, so an item is unique per unit and DocId.
    Column("agency", String(32), nullable=False, server_default=""),
    UniqueConstraint("agency", "axis_doc_id"),
    Index(None, "axis_doc_id"),
    Index(None, "state"),
    Index(None, "sender", "document_id", "business_type", "package_sha256"),
)

statuses = Table(
    "statuses", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("outgoing_id", String(26), nullable=True),  # the outgoing item it updated
    Column("incoming_id", String(26), nullable=True),  # the status package's incoming row
    Column("document_id", String(255), nullable=False),
    Column("from_organ_id", String(32), nullable=False),
    Column("to_organ_id", String(32), nullable=True),
    Column("code", String(4), nullable=False),
    Column("description", Text, nullable=True),
    Column("status_at", UtcDateTime, nullable=True),
    Column("recorded_at", UtcDateTime, nullable=False),
    Index(None, "document_id"),
    Index(None, "outgoing_id"),
    # One history row per received status package (revision 0002): a redelivered status
    # (crash between recording and acknowledging) is recognised, not recorded twice.
    Index(None, "incoming_id", unique=True),
)

events = Table(
    "events", metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("item_id", String(26), nullable=True),
    Column("item_kind", String(16), nullable=False),  # outgoing, incoming or journal
    Column("event", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", JSON, nullable=True),
    Column("at", UtcDateTime, nullable=False),
    Index(None, "item_id"),
    Index(None, "at"),
)

# The axis's agency directory (revision 0005): every agency the axis lists, with its code before
# a reorganisation (Decision 20/2020, 09/2025) and its name folded for searching without
# diacritics. Refreshed by a sync (a full list, or the changes since the last sync).
agencies = Table(
    "agencies", metadata,
    Column("code", String(64), primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("search", Text, nullable=False, default=""),  # code + name, lower case, no diacritics
    Column("old_code", String(64), nullable=True),
    Column("pid", String(64), nullable=True),
    Column("mail", String(255), nullable=True),
    Column("synced_at", UtcDateTime, nullable=False),
    Index(None, "old_code"),
)

kv = Table(
    "kv", metadata,
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

leases = Table(
    "leases", metadata,
    Column("name", String(128), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

JOURNAL_TABLES = ("outgoing", "deliveries", "incoming", "statuses", "events", "kv", "leases")
