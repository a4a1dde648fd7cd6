"""Every item belongs to a unit (the agency it is sent as or received for).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

A hub serves many units from one journal (issue 14): ``outgoing.agency`` and ``incoming.agency``
hold the OrganId of the unit an item belongs to. The same axis DocId can be listed for two units
of one hub (a document sent to both), so an incoming item is unique per unit and DocId, no longer
per DocId alone. Existing items are assigned to the agency of the configuration that runs the
migration (``config.attributes["agency"]``, handed over by ``Journal.open``); the connector takes
a backup of an SQLite journal before it migrates (``journal.migrate``). Going down removes the
columns and restores the DocId's uniqueness (which fails if two units hold the same DocId).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    agency = context.config.attributes.get("agency") or ""
    with op.batch_alter_table("outgoing") as batch:
        batch.add_column(sa.Column("agency", sa.String(32), nullable=False, server_default=""))
        batch.create_index("ix_outgoing_agency_state", ["agency", "state"])
    with op.batch_alter_table("incoming") as batch:
        batch.add_column(sa.Column("agency", sa.String(32), nullable=False, server_default=""))
        batch.drop_constraint("uq_incoming_axis_doc_id", type_="unique")
        batch.create_unique_constraint("uq_incoming_agency_axis_doc_id", ["agency", "axis_doc_id"])
        batch.create_index("ix_incoming_axis_doc_id", ["axis_doc_id"])
    if agency:
        for table in ("outgoing", "incoming"):
            op.execute(sa.text(f"UPDATE {table} SET agency = :agency WHERE agency = ''")
                       .bindparams(agency=agency))


def downgrade() -> None:
    with op.batch_alter_table("incoming") as batch:
        batch.drop_index("ix_incoming_axis_doc_id")
        batch.drop_constraint("uq_incoming_agency_axis_doc_id", type_="unique")
        batch.create_unique_constraint("uq_incoming_axis_doc_id", ["axis_doc_id"])
        batch.drop_column("agency")
    with op.batch_alter_table("outgoing") as batch:
        batch.drop_index("ix_outgoing_agency_state")
        batch.drop_column("agency")
