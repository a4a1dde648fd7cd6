"""Alembic environment for the journal.

The connector runs migrations in-process (``connector.journal.migrate.upgrade``), handing over an
open connection in ``config.attributes["connection"]``. A developer can also run the alembic
command line with ``-x url=...`` (see ``alembic.ini`` next to this file) to write a new revision.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from connector.journal.schema import metadata

config = context.config


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the journal URL: alembic -x url=sqlite:////path/journal.db ...")
    engine = create_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():  # pragma: no cover - offline SQL generation is a developer aid
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
