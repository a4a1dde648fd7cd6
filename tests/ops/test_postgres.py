"""The operator commands on a PostgreSQL journal (a fresh schema, dropped afterwards; skipped with
the reason when PostgreSQL is unreachable): `status` works the same, and `journal backup` says
to use pg_dump instead of pretending to copy."""

from __future__ import annotations

import json
import os
import secrets

import pytest
import yaml
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("JOURNAL_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_site(site):
    try:
        admin = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(error).__name__}")
    schema = "ops_test_" + secrets.token_hex(6)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    config = yaml.safe_load(site.config.read_text(encoding="utf-8"))
    config["journal"]["url"] = f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
    site.config.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    try:
        yield site
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_status_and_backup_on_postgresql(pg_site, cli, tmp_path):
    from connector.ops.context import OpsContext

    with OpsContext.from_config(pg_site.config) as ctx:
        item = ctx.journal.outgoing.enqueue("cli", "pg", "package", recipients=[pg_site.peer])
        ctx.journal.outgoing.cancel(item.id)
    code, out, err = cli("status", "--json")
    assert code == 0, err
    assert [row["id"] for row in json.loads(out)["items"]] == [item.id]
    assert cli("retry", item.id)[0] == 0
    code, out, err = cli("journal", "backup", str(tmp_path / "copy.db"))
    assert code == 1 and out == "" and "pg_dump" in err and err.count("\n") == 1
    assert not (tmp_path / "copy.db").exists()
