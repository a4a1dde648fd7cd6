"""Real databases for the DMS-database adapter: SQLite always, PostgreSQL and MariaDB at 127.0.0.1
when they answer (a visible skip otherwise). Each test session gets its own PostgreSQL schema and
MariaDB database (random name, dropped at the end); each test starts from empty tables."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_dms_schema import (  # noqa: E402
    create_sample_schema,
    empty_sample_tables,
)

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"


def _reachable(url: str) -> str | None:
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        engine.dispose()
        return None
    except Exception as error:  # noqa: BLE001 - any failure means "not available"
        return str(error).splitlines()[0]


class Backend:
    """One database prepared with the sample schema; ``url`` is what a DatabaseSide is given."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.engine = sa.create_engine(url)


@pytest.fixture(scope="session")
def _sqlite_backend(tmp_path_factory):
    path = tmp_path_factory.mktemp("dms-sqlite") / "dms.db"
    backend = Backend("sqlite", f"sqlite:///{path}")
    create_sample_schema(backend.engine)
    yield backend
    backend.engine.dispose()


def _scratch_backend(unreachable: str, admin_url: str, create_sql: str, drop_sql: str,
                     name: str, url: str):
    """A backend in a schema or database made for this session by ``create_sql`` and dropped by
    ``drop_sql`` at the end; a visible skip (``unreachable``: why) when the server does not answer."""
    problem = _reachable(admin_url)
    if problem:
        pytest.skip(f"{unreachable}: {problem}")
    admin = sa.create_engine(admin_url)
    with admin.begin() as connection:
        connection.exec_driver_sql(create_sql)
    backend = Backend(name, url)
    try:
        create_sample_schema(backend.engine)
        yield backend
    finally:
        backend.engine.dispose()
        with admin.begin() as connection:
            connection.exec_driver_sql(drop_sql)
        admin.dispose()


@pytest.fixture(scope="session")
def _postgres_backend():
    schema = f"dmsdb_{uuid.uuid4().hex[:10]}"
    yield from _scratch_backend(
        "PostgreSQL not reachable at 127.0.0.1:5432", PG_ADMIN,
        f"CREATE SCHEMA {schema}", f"DROP SCHEMA {schema} CASCADE",
        "postgresql", f"{PG_ADMIN}?options=-csearch_path%3D{schema}")


@pytest.fixture(scope="session")
def _mariadb_backend():
    database = f"dmsdb_{uuid.uuid4().hex[:10]}"
    yield from _scratch_backend(
        "MariaDB not reachable at 127.0.0.1:3306", MARIADB_ADMIN,
        f"CREATE DATABASE {database} CHARACTER SET utf8mb4", f"DROP DATABASE {database}",
        "mariadb", f"mysql+pymysql://root@127.0.0.1:3306/{database}?charset=utf8mb4")


@pytest.fixture(params=[
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
])
def backend(request) -> Backend:
    chosen: Backend = request.getfixturevalue(f"_{request.param.replace('postgresql', 'postgres')}"
                                              "_backend")
    empty_sample_tables(chosen.engine)
    return chosen
