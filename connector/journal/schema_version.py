"""Which schema revision a journal holds, read without Alembic.

The daemon opens an up-to-date journal on almost every start; Alembic (with Mako, which it
imports) would stay resident for the life of the process — about 10 MB of the idle daemon's RSS
(bench/README.md, "Idle footprint") — only to find that there is nothing to do. So the journal
compares the stored revision with :data:`HEAD_REVISION` first and loads Alembic only when a
migration is due (:mod:`connector.journal.migrate`). A test keeps the constant equal to the newest
migration script.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

HEAD_REVISION = "0006"
"""The newest revision in ``connector/journal/migrations/versions`` (checked by a test)."""


def stored_revision(engine: Engine) -> str | None:
    """The revision in the journal's ``alembic_version`` table; None for a journal without one
    (new and empty, or one whose table cannot be read: the migration path decides)."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None
    return rows[0][0] if len(rows) == 1 else None
