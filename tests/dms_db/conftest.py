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


@pytest.fixture(scope="session")
def _postgres_backend():
    problem = _reachable(PG_ADMIN)
    if problem:
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {problem}")
    schema = f"dmsdb_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    backend = Backend("postgresql", f"{PG_ADMIN}?options=-csearch_path%3D{schema}")
    try:
        create_sample_schema(backend.engine)
        yield backend
    finally:
        backend.engine.dispose()
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(scope="session")
def _mariadb_backend():
    problem = _reachable(MARIADB_ADMIN)
    if problem:
        pytest.skip(f"MariaDB not reachable at 127.0.0.1:3306: {problem}")
    database = f"dmsdb_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(MARIADB_ADMIN)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {database} CHARACTER SET utf8mb4")
    backend = Backend("mariadb", f"mysql+pymysql://root@127.0.0.1:3306/{database}?charset=utf8mb4")
    try:
        create_sample_schema(backend.engine)
        yield backend
    finally:
        backend.engine.dispose()
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP DATABASE {database}")
        admin.dispose()


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
