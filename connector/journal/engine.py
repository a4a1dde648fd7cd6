"""Opening the journal database with the durability settings the connector relies on.

SQLite: WAL (readers never block the writer, and a crash never corrupts committed data),
``synchronous=FULL`` (a commit is on disk when it returns — the guarantee the pipelines build on),
a busy timeout (the CLI and the daemon share the file), foreign keys on. Transactions that write
begin with ``BEGIN IMMEDIATE``: they take the write lock first, so two writers queue on the busy
timeout instead of one failing with "database is locked" half-way through a read-then-write.

PostgreSQL: the psycopg 3 driver; ``postgresql://`` URLs are read as ``postgresql+psycopg://``.
A schema other than ``public`` is chosen in the URL:
``postgresql+psycopg://user@host/db?options=-csearch_path%3Dconnector``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from connector.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option read by the ``begin`` hook below: "IMMEDIATE" for transactions that write.
BEGIN_MODE_OPTION = "journal_sqlite_begin"


def parse_journal_url(url: str | URL) -> URL:
    """Validate a journal URL and pick the driver; raise ConfigError naming the fix."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError) as error:  # ValueError: e.g. a port that is not a number
        raise ConfigError(f"journal.url {_mask_password(str(url))!r} is not a database URL",
                          hint="use sqlite:////var/lib/edxml-connector/journal.db or "
                               "postgresql+psycopg://user@host/dbname") from error
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.get_driver_name() not in ("psycopg", ""):
            raise ConfigError(f"journal.url uses driver {parsed.get_driver_name()!r}",
                              hint="use postgresql+psycopg:// (psycopg 3 is the driver installed)")
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if parsed.get_driver_name() not in ("pysqlite", ""):
            raise ConfigError(f"journal.url uses driver {parsed.get_driver_name()!r}",
                              hint="use sqlite:////absolute/path/journal.db")
        return parsed
    raise ConfigError(f"journal.url: database {backend!r} is not supported for the journal",
                      hint="use sqlite:////var/lib/edxml-connector/journal.db or a PostgreSQL URL")


def create_journal_engine(url: str | URL, *, create_directory: bool = True, echo: bool = False) -> Engine:
    """An Engine for the journal with the pragmas/driver settings above already wired in."""
    parsed = parse_journal_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and create_directory:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            _create_private(Path(database).expanduser())
        # pool_reset_on_return=None: every use of a connection is a transaction that is
        # committed, or rolled back by SQLAlchemy when the Connection closes, and the driver is
        # in autocommit mode outside them (see _on_connect), so the pool's extra ROLLBACK on
        # each check-in did nothing but cost CPU on every journal transition.
        engine = create_engine(parsed, echo=echo, pool_reset_on_return=None,
                               connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                                             "check_same_thread": False})
        _wire_sqlite(engine)
        return engine
    return create_engine(parsed, echo=echo, pool_pre_ping=True)


def _create_private(database: Path) -> None:
    """Create the SQLite file readable by its owner only, whatever the process umask (the service
    runs with UMask=0007 for the exchange folders). SQLite gives the -wal and -shm files the mode
    of the database file, so this covers them too. An existing file keeps its mode."""
    try:
        descriptor = os.open(database, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


def _mask_password(url: str) -> str:
    """``scheme://user:secret@host`` → ``scheme://user:***@host``, for error messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


_BEGIN = {mode: f"BEGIN {mode}" for mode in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")}


def _wire_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Hand transaction control to SQLAlchemy's begin hook (the sqlite3 module's own implicit
        # BEGIN is deferred and not emitted before SELECTs, which breaks read-then-write atomicity).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_MODE_OPTION, "DEFERRED")
        # Straight to the driver: SQLAlchemy has nothing to do with a BEGIN (its own begin is a
        # no-op for pysqlite), and its statement machinery was a noticeable part of the CPU of
        # each short journal transaction.
        connection.connection.driver_connection.execute(_BEGIN.get(mode) or f"BEGIN {mode}")


def sqlite_path(engine: Engine) -> Path | None:
    """The database file of a SQLite engine (None for PostgreSQL or an in-memory database)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(os.path.expanduser(database))
