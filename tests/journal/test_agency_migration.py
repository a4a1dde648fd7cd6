"""Revision 0006 (issue 14, part 3): every item belongs to a unit. A single-agency journal is
migrated in place — a backup first (SQLite), its items assigned to the configured agency — and
one axis DocId may then be listed for two units of a hub without the second being taken for a
redelivery of the first."""

from __future__ import annotations

import datetime as dt
import sqlite3

from sqlalchemy import insert
from structlog.testing import capture_logs

from connector.journal import Journal
from connector.journal import schema as t
from connector.journal.engine import create_journal_engine, sqlite_path
from connector.journal.migrate import alembic_config, current_revision

UNIT = "000.00.00.G22"
OTHER = "000.00.00.H41"
T0 = dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc)


def _journal_at_0005(url: str) -> None:
    """A journal the previous release wrote: one outgoing and one incoming item."""
    from alembic import command

    engine = create_journal_engine(url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    with engine.begin() as conn:
        conn.execute(insert(t.outgoing).values(
            id="OUT-1", source="folder", source_ref="cv1", kind="document", state="queued",
            attempts=0, created_at=T0, updated_at=T0))
        conn.execute(insert(t.incoming).values(
            id="IN-1", axis_doc_id="AXIS-1", messagetype="edoc", state="delivered",
            quarantined=False, created_at=T0, updated_at=T0))
    engine.dispose()


def test_a_single_agency_journal_is_backed_up_then_its_items_go_to_the_configured_agency(
        journal_url):
    _journal_at_0005(journal_url)
    with capture_logs() as logged, Journal.open(journal_url, agency=UNIT) as journal:
        assert current_revision(journal.engine) == "0006"
        assert journal.outgoing.get_outgoing("OUT-1").agency == UNIT
        assert journal.incoming.get_incoming("IN-1").agency == UNIT
        # the DocId the unit already has is a redelivery: the same item comes back
        assert journal.incoming.record_listed("AXIS-1", "edoc").id == "IN-1"
        path = sqlite_path(journal.engine)
    events = {entry["event"]: entry for entry in logged}
    if path is None:  # PostgreSQL: the operator's pg_dump, which the log line recalls
        assert "pg_dump" in events["journal_migrating"]["note"]
        return
    backed_up = events["journal_backed_up_before_migration"]
    backup = backed_up["backup"]
    assert backup.startswith(str(path) + ".before-0006-")
    assert "0005" in backed_up["to_go_back"] and str(path) in backed_up["to_go_back"]
    with sqlite3.connect(backup) as copy:  # the journal as it was: revision 0005, both items
        assert copy.execute("SELECT version_num FROM alembic_version").fetchone() == ("0005",)
        assert copy.execute("SELECT id FROM outgoing").fetchall() == [("OUT-1",)]
        columns = [row[1] for row in copy.execute("PRAGMA table_info(outgoing)")]
        assert "agency" not in columns


def test_a_new_journal_takes_no_backup_and_stamps_new_items_with_its_agency(tmp_path):
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    with capture_logs() as logged, Journal.open(url, agency=UNIT) as journal:
        record = journal.outgoing.enqueue("folder", "cv2", "document")
        assert record.agency == UNIT
        assert journal.incoming.record_listed("AXIS-9", "edoc").agency == UNIT
    assert not [e for e in logged if e["event"] == "journal_backed_up_before_migration"]
    assert [p.name for p in tmp_path.iterdir() if ".before-" in p.name] == []


def test_one_docid_listed_for_two_units_of_a_hub_is_two_items(journal_url):
    with Journal.open(journal_url, agency=UNIT) as first:
        mine = first.incoming.record_listed("AXIS-7", "edoc", sender=OTHER)
    with Journal.open(journal_url, agency=OTHER) as second:
        theirs = second.incoming.record_listed("AXIS-7", "edoc", sender=OTHER)
        again = second.incoming.record_listed("AXIS-7", "edoc", sender=OTHER)
    assert mine.id != theirs.id and again.id == theirs.id
    assert (mine.agency, theirs.agency) == (UNIT, OTHER)
