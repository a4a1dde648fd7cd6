"""Items belong to the instance that took them in; one history row per received status.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

- ``outgoing.instance`` / ``incoming.instance``: the connector instance whose server holds the
  item's package (and, outgoing, its folder claim). On a PostgreSQL journal shared by two
  connectors only that instance sends or finishes the item. Existing rows keep NULL, which every
  instance may take (they were written when there was only one).
- ``statuses.incoming_id`` unique: a status package redelivered after a crash between recording
  and acknowledging is recognised instead of adding a second history row. Duplicates an older
  connector already recorded are removed first (the earliest row of each is kept).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outgoing", sa.Column("instance", sa.String(128)))
    op.create_index("ix_outgoing_instance_state", "outgoing", ["instance", "state"])
    op.add_column("incoming", sa.Column("instance", sa.String(128)))
    op.execute(
        "DELETE FROM statuses WHERE incoming_id IS NOT NULL AND id NOT IN "
        "(SELECT keep_id FROM (SELECT MIN(id) AS keep_id FROM statuses "
        "WHERE incoming_id IS NOT NULL GROUP BY incoming_id) AS kept)")
    op.create_index("ix_statuses_incoming_id", "statuses", ["incoming_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_statuses_incoming_id", table_name="statuses")
    with op.batch_alter_table("incoming") as batch:
        batch.drop_column("instance")
    op.drop_index("ix_outgoing_instance_state", table_name="outgoing")
    with op.batch_alter_table("outgoing") as batch:
        batch.drop_column("instance")
