"""Small SQLAlchemy Core helpers shared by the DMS-database adapter.

The adapter never reflects the DMS schema (a view or a vendor's table may refuse it, and
reflection is slow on large catalogs): it builds lightweight ``table()``/``column()`` objects
from the mapping, so every name is quoted by SQLAlchemy and nothing from a row is ever pasted
into SQL. Values are bound with a type chosen from the Python value, so that dates, timestamps,
BLOBs and booleans reach every dialect (SQLite included) in the form it expects.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Engine


def table_ref(name: str, *columns: str) -> sa.TableClause:
    """``schema.table`` or ``table`` -> a table clause with the given (untyped) columns."""
    schema, _, bare = name.rpartition(".")
    return sa.table(bare, *(sa.column(column) for column in dict.fromkeys(columns)),
                    schema=schema or None)


def typed_table(name: str, values: dict[str, Any]) -> sa.TableClause:
    """A table clause whose columns carry a type matching the values about to be written."""
    schema, _, bare = name.rpartition(".")
    columns = [sa.column(column, _type_for(value)) for column, value in values.items()]
    return sa.table(bare, *columns, schema=schema or None)


def _type_for(value: Any) -> sa.types.TypeEngine[Any] | None:
    if isinstance(value, bool):
        return sa.Boolean()
    if isinstance(value, dt.datetime):
        return sa.DateTime()
    if isinstance(value, dt.date):
        return sa.Date()
    if isinstance(value, bytes | bytearray | memoryview):
        return sa.LargeBinary()
    if isinstance(value, int):
        return sa.BigInteger()
    if isinstance(value, str):
        return sa.Text()
    return None


def to_db_value(value: Any, timezone: ZoneInfo | None) -> Any:
    """Python value -> what a column receives: lists and dicts as JSON text, aware timestamps as
    naive ones in ``timezone`` (DMS columns are almost always ``timestamp without time zone``)."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    if isinstance(value, dt.datetime) and value.tzinfo is not None and timezone is not None:
        return value.astimezone(timezone).replace(tzinfo=None)
    return value


def ready_condition(state: sa.ColumnClause[Any], new_values: list[str], null_is_new: bool,
                    row_exists: sa.ColumnClause[Any] | None = None) -> sa.ColumnElement[bool]:
    """``state IN (new...)`` [``OR state IS NULL``] [``OR`` the claims row does not exist]."""
    conditions: list[sa.ColumnElement[bool]] = [state.in_(new_values)]
    if null_is_new:
        conditions.append(state.is_(None))
    if row_exists is not None:
        conditions.append(row_exists.is_(None))
    return sa.or_(*conditions)


def supports_skip_locked(engine: Engine) -> bool:
    """PostgreSQL >= 9.5, MariaDB >= 10.6 and MySQL >= 8.0 have ``FOR UPDATE SKIP LOCKED``."""
    dialect = engine.dialect
    if dialect.name == "postgresql":
        return True
    if dialect.name in ("mysql", "mariadb"):
        with engine.connect() as connection:  # server_version_info is known once connected
            version = connection.dialect.server_version_info or (0,)
        if getattr(dialect, "is_mariadb", False):
            return tuple(version[:2]) >= (10, 6)
        return tuple(version[:1]) >= (8,)
    return False


def connect_args_for(url: sa.URL, timeout: int) -> dict[str, Any]:
    """Connection timeout in each driver's own spelling."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return {"timeout": timeout}
    if backend in ("postgresql", "mysql", "mariadb"):
        return {"connect_timeout": timeout}
    return {}


def generated_value(connection: sa.Connection, table: str, column: str, how: Any) -> Any:
    """The value of a generated column (``how``: a ``GeneratedValue`` of the mapping) for a row
    about to be inserted by ``connection``'s transaction (see the mapping for the three forms)."""
    if how.sequence:
        return connection.execute(sa.select(sa.Sequence(how.sequence).next_value())).scalar_one()
    if how.expression:
        # The operator's own SQL, on purpose (as outgoing.query): never a value from a row.
        return connection.execute(sa.text(f"SELECT {how.expression}")).scalar_one()
    return _next_number(connection, table, column)


def _next_number(connection: sa.Connection, table: str, column: str) -> int:
    """MAX(column) + 1 with the table locked against other writers until the transaction ends."""
    target = table_ref(table, column)
    dialect = connection.dialect.name
    if dialect == "postgresql":
        name = connection.dialect.identifier_preparer.format_table(target)
        connection.exec_driver_sql(f"LOCK TABLE {name} IN SHARE ROW EXCLUSIVE MODE")
    elif dialect == "sqlite":
        # A write statement takes SQLite's write lock for the rest of the transaction (a SELECT
        # alone would not, and two writers could read the same maximum).
        connection.execute(sa.update(target).where(sa.false()).values({column: target.c[column]}))
    if dialect in ("mysql", "mariadb"):
        # The last row read FOR UPDATE holds its next-key lock: no insert above it meanwhile.
        last = connection.execute(sa.select(target.c[column]).order_by(target.c[column].desc())
                                  .limit(1).with_for_update()).scalar()
    else:
        last = connection.execute(sa.select(sa.func.max(target.c[column]))).scalar()
    return int(last or 0) + 1


_DEADLOCK_CODES = {1213, 1205}  # MySQL/MariaDB: deadlock, lock wait timeout
_DEADLOCK_STATES = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure


def is_deadlock(error: sa.exc.DBAPIError) -> bool:
    """True when the database rolled the transaction back to break a deadlock (retry it)."""
    original = error.orig
    if getattr(original, "sqlstate", None) in _DEADLOCK_STATES:
        return True
    args: tuple[Any, ...] = tuple(getattr(original, "args", ()))
    return bool(args) and args[0] in _DEADLOCK_CODES
