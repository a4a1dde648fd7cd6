"""Which certificate signed each outgoing package.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

A unit's certificate is renewed without a restart (``certificate.next``, a certificate folder):
``outgoing.signed_by`` keeps the SHA-256 of the certificate that signed the stored package, so
that after a renewal which key signed which document is still known. Existing rows keep NULL
(signed before the journal recorded it); going down drops the column.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outgoing") as batch:
        batch.add_column(sa.Column("signed_by", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outgoing") as batch:
        batch.drop_column("signed_by")
