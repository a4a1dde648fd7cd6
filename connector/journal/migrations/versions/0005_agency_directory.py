"""The axis's agency directory in the journal.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

The agency list used to live in ``STATE_DIR/agencies.json`` (codes and names). It moves into
the journal, with the old codes the axis publishes beside the new ones (``getAgenciesListQD20``)
and a search column (code and name in lower case without diacritics), so that recipients given
by an old code can be sent to the current one and ``agencies find`` can search 100,000 agencies.
The connector imports the old file at its first start on this revision (then renames it
``agencies.json.migrated``). Going down drops the table; the next sync fills it again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agencies",
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("search", sa.Text, nullable=False),
        sa.Column("old_code", sa.String(64), nullable=True),
        sa.Column("pid", sa.String(64), nullable=True),
        sa.Column("mail", sa.String(255), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=False), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_agencies"),
    )
    op.create_index("ix_agencies_old_code", "agencies", ["old_code"])


def downgrade() -> None:
    op.drop_index("ix_agencies_old_code", table_name="agencies")
    op.drop_table("agencies")
