"""Bringing a journal's schema to the version this connector expects (Alembic, in code).

``Journal.open`` calls :func:`upgrade_to_head` on every start, so an upgraded connector upgrades
its journal and keeps every row. No ``alembic.ini`` is needed on the server: the script location is
the ``connector.journal.migrations`` package. A journal written by a *newer* connector is refused
with a clear message rather than used with a schema this code does not know.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, text

from connector.errors import ConnectorError
from connector.journal.engine import BEGIN_MODE_OPTION

# Any constant works; it only has to be the same for every connector sharing a PostgreSQL journal.
_PG_MIGRATION_LOCK = 0x6564_786D_6C4A  # "edxmlJ"


def migrations_directory() -> Path:
    return Path(str(resources.files("connector.journal.migrations")))


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> str:
    """Apply every missing revision in one transaction; return the revision now in place."""
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    with engine.connect().execution_options(**{BEGIN_MODE_OPTION: "IMMEDIATE"}) as connection:
        with connection.begin():
            if connection.dialect.name == "postgresql":
                # Two connectors starting together must not both create the tables.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _PG_MIGRATION_LOCK})
            current = MigrationContext.configure(connection).get_current_revision()
            if current is not None:
                try:
                    script.get_revision(current)
                except CommandError as error:
                    raise ConnectorError(
                        f"the journal is at schema revision {current!r}, which this version of "
                        f"the connector does not know (newest known: {script.get_current_head()!r})",
                        hint="run the connector version that wrote this journal, or upgrade") from error
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        with connection.begin():
            return MigrationContext.configure(connection).get_current_revision() or ""
