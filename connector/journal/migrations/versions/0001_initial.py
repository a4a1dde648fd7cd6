"""The initial journal: outgoing items, deliveries, incoming items, statuses, events, kv, leases.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Written out column by column (not ``metadata.create_all``) so that this revision stays what it
was when later revisions change ``connector/journal/schema.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.String(26)
_TIME = sa.DateTime(timezone=False)
_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outgoing",
        sa.Column("id", _ID, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_ref", sa.String(512), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("document_id", sa.String(255)),
        sa.Column("business_type", sa.Integer()),
        sa.Column("package_path", sa.Text()),
        sa.Column("package_sha256", sa.String(64)),
        sa.Column("package_size", sa.BigInteger()),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TIME),
        sa.Column("claimed_at", _TIME),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("last_error", sa.Text()),
        sa.Column("axis_doc_id", sa.String(128)),
        sa.Column("meta", sa.JSON()),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outgoing"),
        sa.UniqueConstraint("source", "source_ref", name="uq_outgoing_source_source_ref"),
    )
    op.create_index("ix_outgoing_state_next_attempt_at", "outgoing", ["state", "next_attempt_at"])
    op.create_index("ix_outgoing_document_id", "outgoing", ["document_id"])

    op.create_table(
        "deliveries",
        sa.Column("outgoing_id", _ID, nullable=False),
        sa.Column("organ_id", sa.String(32), nullable=False),
        sa.Column("status_code", sa.String(4)),
        sa.Column("description", sa.Text()),
        sa.Column("status_at", _TIME),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("outgoing_id", "organ_id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(["outgoing_id"], ["outgoing.id"], ondelete="CASCADE",
                                name="fk_deliveries_outgoing_id_outgoing"),
    )
    op.create_index("ix_deliveries_organ_id", "deliveries", ["organ_id"])

    op.create_table(
        "incoming",
        sa.Column("id", _ID, nullable=False),
        sa.Column("axis_doc_id", sa.String(128), nullable=False),
        sa.Column("messagetype", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(32)),
        sa.Column("document_id", sa.String(255)),
        sa.Column("business_type", sa.Integer()),
        sa.Column("package_path", sa.Text()),
        sa.Column("package_sha256", sa.String(64)),
        sa.Column("package_size", sa.BigInteger()),
        sa.Column("signature_state", sa.String(16)),
        sa.Column("delivered_location", sa.Text()),
        sa.Column("quarantined", sa.Boolean(), nullable=False),
        sa.Column("quarantine_reason", sa.Text()),
        sa.Column("quarantine_location", sa.Text()),
        sa.Column("duplicate_of", _ID),
        sa.Column("last_error", sa.Text()),
        sa.Column("meta", sa.JSON()),
        sa.Column("stored_at", _TIME),
        sa.Column("acknowledged_at", _TIME),
        sa.Column("delivered_at", _TIME),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incoming"),
        sa.UniqueConstraint("axis_doc_id", name="uq_incoming_axis_doc_id"),
    )
    op.create_index("ix_incoming_state", "incoming", ["state"])
    op.create_index("ix_incoming_sender_document_id_business_type_package_sha256", "incoming",
                    ["sender", "document_id", "business_type", "package_sha256"])

    op.create_table(
        "statuses",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("outgoing_id", _ID),
        sa.Column("incoming_id", _ID),
        sa.Column("document_id", sa.String(255), nullable=False),
        sa.Column("from_organ_id", sa.String(32), nullable=False),
        sa.Column("to_organ_id", sa.String(32)),
        sa.Column("code", sa.String(4), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("status_at", _TIME),
        sa.Column("recorded_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_statuses"),
    )
    op.create_index("ix_statuses_document_id", "statuses", ["document_id"])
    op.create_index("ix_statuses_outgoing_id", "statuses", ["outgoing_id"])

    op.create_table(
        "events",
        sa.Column("id", _AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("item_id", _ID),
        sa.Column("item_kind", sa.String(16), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON()),
        sa.Column("at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )
    op.create_index("ix_events_item_id", "events", ["item_id"])
    op.create_index("ix_events_at", "events", ["at"])

    op.create_table(
        "kv",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Text()),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_kv"),
    )

    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    for table in ("leases", "kv", "events", "statuses", "incoming", "deliveries", "outgoing"):
        op.drop_table(table)
