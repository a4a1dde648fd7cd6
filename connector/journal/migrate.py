"""Bringing a journal's schema to the version this connector expects (Alembic, in code).

``Journal.open`` calls :func:`upgrade_to_head` on every start, so an upgraded connector upgrades
its journal and keeps every row. No ``alembic.ini`` is needed on the server: the script location is
the ``connector.journal.migrations`` package. A journal written by a *newer* connector is refused
with a clear message rather than used with a schema this code does not know.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, text

from connector.errors import ConnectorError
from connector.journal.backup import backup_engine
from connector.journal.engine import BEGIN_MODE_OPTION, sqlite_path
from connector.logs import get_logger

log = get_logger(__name__)

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


def upgrade_to_head(engine: Engine, *, agency: str = "") -> str:
    """Apply every missing revision in one transaction; return the revision now in place.

    ``agency`` (the configured unit's OrganId) is handed to the revisions that need it (0006
    assigns existing items to it). An existing SQLite journal is copied first (see
    :func:`backup_before_migrating`)."""
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    config.attributes["agency"] = agency
    backup_before_migrating(engine, script.get_current_head() or "")
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


def backup_before_migrating(engine: Engine, head: str) -> Path | None:
    """Copy an existing SQLite journal beside itself before a migration changes it, and say in
    the log how to go back (decisions.md, "Hub migration"). A new journal has nothing to keep; a
    PostgreSQL journal is backed up with pg_dump by the operator (docs/operations.md, "Upgrade"),
    which the log line recalls."""
    current = current_revision(engine)
    if current is None or current == head:
        return None
    path = sqlite_path(engine)
    if engine.dialect.name != "sqlite":
        log.warning("journal_migrating", revision_from=current, revision_to=head,
                    note="take a pg_dump of the journal before upgrading, to be able to go back")
        return None
    if path is None:
        return None
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = backup_engine(engine, Path(path).with_name(
        f"{Path(path).name}.before-{head}-{stamp}"))
    log.warning("journal_backed_up_before_migration", backup=str(target),
                revision_from=current, revision_to=head,
                to_go_back=f"stop the service, reinstall the connector version that used "
                           f"revision {current}, and copy {target} over {path}")
    return target
