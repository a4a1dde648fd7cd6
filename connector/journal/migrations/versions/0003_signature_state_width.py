"""Room for the new signature outcomes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

``incoming.signature_state`` was 16 characters, enough for the first outcomes (``unverifiable``
is the longest); ``revocation-unknown`` is 18. PostgreSQL and MariaDB refuse a longer value, so
the column becomes 32 characters. Nothing else changes; going down shortens it again (refused by
the database while a row holds a longer outcome).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incoming") as batch:
        batch.alter_column("signature_state", type_=sa.String(32), existing_type=sa.String(16),
                           existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("incoming") as batch:
        batch.alter_column("signature_state", type_=sa.String(16), existing_type=sa.String(32),
                           existing_nullable=True)
