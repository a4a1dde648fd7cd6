"""``edxml-connector journal backup FILE``: a consistent copy of a live journal.

SQLite's online backup API copies the database page by page under a read transaction, so the copy
is a consistent snapshot even while the daemon writes (WAL readers never block the writer). The
copy is written beside the target under a temporary name, switched out of WAL mode so that it is
one self-contained file, checked with ``PRAGMA quick_check``, fsync'd and renamed into place: a
half-written backup never carries the target's name.

PostgreSQL journals are backed up with the database's own tools (``pg_dump``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from connector.errors import ConnectorError
from connector.fsutil import fsync_dir
from connector.journal.engine import sqlite_path


def backup(journal: Any, target_file: str | os.PathLike[str]) -> Path:
    """Copy the journal (a :class:`~connector.journal.Journal`) to ``target_file`` (replaced if
    present); return its path."""
    return backup_engine(journal.engine, target_file)


def backup_engine(engine: Engine, target_file: str | os.PathLike[str]) -> Path:
    """Copy the SQLite journal behind ``engine`` to ``target_file`` (the migration takes one
    before it changes anything, before a Journal exists)."""
    dialect = engine.dialect.name
    if dialect != "sqlite":
        raise ConnectorError(
            f"online backup of a {dialect} journal is done by the database itself",
            hint="use pg_dump (e.g. pg_dump -Fc -f journal.dump DBNAME) and pg_restore to restore")
    if sqlite_path(engine) is None:
        raise ConnectorError("an in-memory journal cannot be backed up",
                             hint="configure journal.url with a file path")
    target = Path(target_file).expanduser().resolve()
    if not target.parent.is_dir():
        raise ConnectorError(f"directory {target.parent} does not exist", file=str(target),
                             hint="create it or choose another backup file")
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    raw = engine.raw_connection()
    try:
        source = raw.driver_connection
        if not isinstance(source, sqlite3.Connection):
            raise ConnectorError("only an SQLite journal is backed up this way",
                                 hint="back a PostgreSQL journal up with pg_dump")
        destination = sqlite3.connect(str(temporary), isolation_level=None)
        try:
            source.backup(destination)
            destination.execute("PRAGMA journal_mode = DELETE")
            verdict = destination.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            destination.close()
        if verdict != "ok":
            raise ConnectorError(f"the backup copy failed its integrity check: {verdict}",
                                 file=str(target), hint="check the disk, then run the backup again")
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        fsync_dir(target.parent)
    finally:
        raw.close()
        temporary.unlink(missing_ok=True)
    return target
