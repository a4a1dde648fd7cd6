"""Migrations, durability settings, backup, retention, kv and size."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy import inspect as sa_inspect

from connector.errors import ConnectorError
from connector.journal import KV_LAST_AXIS_CONTACT, Journal, backup
from connector.journal.migrate import alembic_config, current_revision, head_revision
from connector.journal.schema import metadata
from connector.journal.schema_version import HEAD_REVISION

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.timezone.utc)


def test_migrations_create_exactly_the_declared_schema(journal):
    assert current_revision(journal.engine) == head_revision() == "0006"
    with journal.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_reopen_keeps_data_and_does_not_migrate_again(journal_url):
    with Journal.open(journal_url) as first:
        item = first.outgoing.enqueue("folder", "keep-me", "document")
    with Journal.open(journal_url) as second:
        assert second.find(item.id).source_ref == "keep-me"
        assert current_revision(second.engine) == head_revision()


def test_the_head_constant_is_the_newest_migration_script():
    assert HEAD_REVISION == head_revision()


def test_a_journal_one_revision_behind_is_upgraded_on_open(journal_url):
    with Journal.open(journal_url) as first:
        item = first.outgoing.enqueue("folder", "older", "document")
        config = alembic_config()
        with first.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0002")
        assert current_revision(first.engine) == "0002"
    with Journal.open(journal_url) as reopened:
        assert current_revision(reopened.engine) == HEAD_REVISION
        assert reopened.find(item.id).source_ref == "older"


def _alembic_loaded_after_open(url: str) -> bool:
    """Whether opening the journal at ``url`` in a fresh interpreter loads Alembic."""
    code = ("import sys; from connector.journal import Journal; Journal.open(sys.argv[1]).close(); "
            "print('alembic' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                            check=True)
    return result.stdout.strip() == "True"


def test_alembic_is_loaded_only_when_a_migration_is_due(tmp_path):
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    assert _alembic_loaded_after_open(url)  # empty: the schema is created
    assert not _alembic_loaded_after_open(url)  # up to date: nothing to do, nothing loaded


def test_journal_from_a_newer_connector_is_refused(journal_url):
    Journal.open(journal_url).close()
    engine = create_engine(journal_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(ConnectorError, match="revision '9999'"):
        Journal.open(journal_url)


def test_bad_url_is_a_config_error():
    from connector.errors import ConfigError

    with pytest.raises(ConfigError, match="not supported"):
        Journal.open("mysql+pymysql://root@127.0.0.1/test")
    with pytest.raises(ConfigError, match="not a database URL"):
        Journal.open("journal.db")


def test_sqlite_runs_in_wal_with_synchronous_full(tmp_path):
    with Journal.open(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        with journal.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert journal.size_bytes() > 0
    assert (tmp_path / "j.db").exists()


def test_sqlite_journal_directory_is_created(tmp_path):
    with Journal.open(f"sqlite:///{tmp_path / 'state' / 'deeper' / 'j.db'}"):
        pass
    assert (tmp_path / "state" / "deeper" / "j.db").is_file()


def test_backup_is_a_consistent_readable_copy_while_a_writer_runs(tmp_path):
    journal = Journal.open(f"sqlite:///{tmp_path / 'live.db'}")
    for n in range(50):
        journal.outgoing.enqueue("folder", f"before-{n}", "document")
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        n = 0
        while not stop.is_set():
            journal.outgoing.enqueue("folder", f"during-{n}", "document", recipients=["000.00.00.H41"])
            n += 1
            written.append(n)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 20:
            threading.Event().wait(0.01)
        target = backup(journal, tmp_path / "copy.db")
        while len(written) < 40:  # the writer went on during and after the backup
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join(timeout=60)
    copy = sqlite3.connect(target)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        outgoing = copy.execute("SELECT count(*) FROM outgoing").fetchone()[0]
        events = copy.execute("SELECT count(*) FROM events WHERE event = 'enqueued'").fetchone()[0]
    finally:
        copy.close()
    assert 50 <= outgoing < 50 + len(written) + 1
    assert events == outgoing  # state and history agree in the snapshot
    with Journal.open(f"sqlite:///{target}") as restored:
        assert restored.outgoing.find_outgoing(restored.outgoing.list_outgoing(limit=1)[0].id) is not None
    assert not list(tmp_path.glob(".copy.db.*"))  # no temporary left behind
    journal.close()


def test_backup_of_postgresql_says_pg_dump(pg_schema_url):
    with Journal.open(pg_schema_url) as journal:
        with pytest.raises(ConnectorError, match="pg_dump"):
            backup(journal, "/tmp/never-written.db")
        assert journal.size_bytes() > 0


def test_purge_forgets_old_finished_items_but_keeps_dedupe_window_and_pending(journal):
    old = T0 - dt.timedelta(days=100)
    sent = journal.outgoing.enqueue("folder", "old-sent", "document", recipients=["A"], now=old)
    journal.outgoing.mark_packaged(sent.id, package_path="/p", sha256="1" * 64, size=1,
                                   document_id="D1", now=old)
    journal.outgoing.claim_for_sending(1, now=old)
    journal.outgoing.record_sent(sent.id, "axis-1", now=old)
    journal.recipients.record_recipient_status("D1", "A", "01", at=old, now=old)
    pending = journal.outgoing.enqueue("folder", "old-pending", "document", now=old)
    recent = journal.outgoing.enqueue("folder", "recent-cancelled", "document", now=T0)
    journal.outgoing.cancel(recent.id, now=T0)

    delivered = journal.incoming.record_listed("axis-in-1", "edoc", now=old)
    journal.incoming.record_stored(delivered.id, package_path="/i", sha256="2" * 64, size=1, sender="S",
                          document_id="X", business_type=0, signature_state="valid", now=old)
    journal.incoming.record_acknowledged(delivered.id, now=old)
    journal.incoming.record_delivered(delivered.id, "/inbox/x", now=old)
    quarantined = journal.incoming.record_listed("axis-in-2", "edoc", now=old)
    journal.incoming.record_stored(quarantined.id, package_path="/q", sha256="3" * 64, size=1, sender="S",
                          document_id="Y", business_type=0, signature_state="invalid", now=old)
    journal.incoming.record_quarantined(quarantined.id, "invalid signature", "/q", now=old)
    journal.incoming.record_acknowledged(quarantined.id, now=old)
    journal.record_event(None, "journal", "started", now=old)

    # a 200-day dedupe window protects the delivered incoming row even with 90-day retention
    counts = journal.purge(dt.timedelta(days=90), dedupe_window=dt.timedelta(days=200), now=T0)
    assert counts["outgoing"] == 1 and counts["incoming"] == 0
    assert journal.outgoing.find_outgoing(sent.id) is None and journal.recipients.statuses("D1") == []
    assert journal.events(sent.id) == []
    assert journal.outgoing.find_outgoing(pending.id) is not None
    assert journal.outgoing.find_outgoing(recent.id) is not None
    assert journal.incoming.find_incoming(delivered.id) is not None
    assert not [e for e in journal.events() if e.event == "started"]

    counts = journal.purge(dt.timedelta(days=90), dedupe_window=dt.timedelta(days=30), now=T0)
    assert counts["incoming"] == 1
    assert journal.incoming.find_incoming(delivered.id) is None
    assert journal.incoming.find_incoming(quarantined.id) is not None  # an operator must decide first
    assert journal.events()[-1].event == "purged"


def test_kv_and_times(journal):
    assert journal.kv_get("missing") is None
    journal.kv_set("agency-list.etag", "abc")
    journal.kv_set("agency-list.etag", "def")
    assert journal.kv_get("agency-list.etag") == "def"
    journal.set_time(KV_LAST_AXIS_CONTACT, T0)
    assert journal.get_time(KV_LAST_AXIS_CONTACT) == T0


def test_the_longest_signature_outcome_fits_the_column(journal):
    """``revocation-unknown`` (18 characters) was refused by PostgreSQL in a 16-character column."""
    from connector.edxml.verifying import SignatureState
    from connector.journal.schema import incoming

    longest = max((state.value for state in SignatureState), key=len)
    assert incoming.c.signature_state.type.length >= len(longest)
    with journal.engine.connect() as conn:
        columns = {c["name"]: c for c in sa_inspect(conn).get_columns("incoming")}
    assert columns["signature_state"]["type"].length >= len(longest)
