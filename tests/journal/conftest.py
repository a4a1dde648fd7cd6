"""Journal fixtures: every test runs on SQLite (a file in tmp_path) and on PostgreSQL (a fresh
schema per test, dropped afterwards; skipped with the reason when PostgreSQL is unreachable)."""

from __future__ import annotations

import os
import secrets

import pytest
from sqlalchemy import create_engine, text

from connector.journal import Journal

PG_ADMIN_URL = os.environ.get("JOURNAL_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_unavailable_reason() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # any failure means: skip, and say why
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(error).__name__}: {error}".splitlines()[0]
    return None


_PG_REASON: list[str | None] = []


def pg_reason() -> str | None:
    if not _PG_REASON:
        _PG_REASON.append(_pg_unavailable_reason())
    return _PG_REASON[0]


@pytest.fixture
def pg_schema_url():
    """A URL whose search_path is a brand-new schema; the schema is dropped after the test."""
    reason = pg_reason()
    if reason:
        pytest.skip(reason)
    schema = "journal_test_" + secrets.token_hex(6)
    admin = create_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def journal_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.db'}"
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def journal(journal_url):
    with Journal.open(journal_url, max_attempts=3, owner="test-owner") as opened:
        yield opened
