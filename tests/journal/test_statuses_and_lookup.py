"""Received statuses are recorded once per status (a redelivery after a crash adds nothing),
the latest by timestamp stays current whatever the arrival order, and received originals are
found through the journal's API. SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from connector.journal import OutgoingState

T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.timezone.utc)
A = "000.00.00.H41"
DOC = "000.00.00.G22,2026/03/01,7/VPCP"
SENDER = "000.00.00.H14"
RECEIVED = "000.00.00.H14,2026/03/01,12/UBND-VP"


def _sent(journal, ref="doc-1"):
    item = journal.outgoing.enqueue("folder", ref, "document", recipients=[A], now=T0)
    journal.outgoing.mark_packaged(item.id, package_path="/p", sha256="ab" * 32, size=1, document_id=DOC,
                          business_type=0, now=T0)
    journal.outgoing.claim_for_sending(5, now=T0)
    return journal.outgoing.record_sent(item.id, "axis-out-1", now=T0)


def _status_package(journal, axis_doc_id):
    """The incoming row of a received status package, stored."""
    item = journal.incoming.record_listed(axis_doc_id, "status", now=T0)
    return journal.incoming.record_stored(item.id, package_path=f"/s/{axis_doc_id}", sha256="cd" * 32,
                                 size=1, sender=A, document_id=DOC, business_type=None,
                                 signature_state="absent", now=T0)


def _current(journal, item_id):
    deliveries = journal.outgoing.get_outgoing(item_id).deliveries
    return {d.organ_id: (d.status_code, d.status_at) for d in deliveries}[A]


def test_a_status_redelivered_after_a_crash_is_recorded_once(journal):
    item = _sent(journal)
    package = _status_package(journal, "axis-st-1")
    at = T0 + dt.timedelta(hours=1)
    first = journal.recipients.record_recipient_status(DOC, A, "01", at=at, incoming_id=package.id)
    # crash before record_acknowledged: the axis lists it again, the pipeline records it again
    again = journal.recipients.record_recipient_status(DOC, A, "01", at=at, incoming_id=package.id,
                                            now=T0 + dt.timedelta(hours=2))
    assert first.id == again.id == item.id
    assert [s.code for s in journal.recipients.statuses(DOC)] == ["01"]
    assert [e.event for e in journal.events(item.id)].count("recipient_status") == 1
    assert again.state is OutgoingState.SENT


def test_without_a_package_id_the_status_identity_is_document_sender_code_and_time(journal):
    _sent(journal)
    at = T0 + dt.timedelta(hours=1)
    journal.recipients.record_recipient_status(DOC, A, "03", at=at)
    journal.recipients.record_recipient_status(DOC, A, "03", at=at)
    assert [s.code for s in journal.recipients.statuses(DOC)] == ["03"]
    journal.recipients.record_recipient_status(DOC, A, "03", at=at + dt.timedelta(minutes=1))  # a new 03
    assert len(journal.recipients.statuses(DOC)) == 2


def test_an_older_status_arriving_late_never_replaces_the_current_one(journal):
    item = _sent(journal)
    t1, t3 = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=3)
    s03, s01 = _status_package(journal, "axis-03"), _status_package(journal, "axis-01")
    journal.recipients.record_recipient_status(DOC, A, "03", at=t3, incoming_id=s03.id)
    late = journal.recipients.record_recipient_status(DOC, A, "01", at=t1, incoming_id=s01.id)
    assert _current(journal, item.id) == ("03", t3)
    assert {d.organ_id: d.status_code for d in late.deliveries}[A] == "03"
    history = journal.recipients.statuses(item.id)
    assert [(s.code, s.status_at) for s in history] == [("03", t3), ("01", t1)]
    latest_flags = [e.detail["latest"] for e in journal.events(item.id) if e.event == "recipient_status"]
    assert latest_flags == [True, False]
    # the late one redelivered: still nothing changes
    journal.recipients.record_recipient_status(DOC, A, "01", at=t1, incoming_id=s01.id)
    assert _current(journal, item.id) == ("03", t3) and len(journal.recipients.statuses(item.id)) == 2


def test_an_unmatched_status_is_also_recorded_once(journal):
    package = _status_package(journal, "axis-st-x")
    assert journal.recipients.record_recipient_status("unknown", A, "01", incoming_id=package.id) is None
    assert journal.recipients.record_recipient_status("unknown", A, "01", incoming_id=package.id) is None
    assert len(journal.recipients.statuses("unknown")) == 1


def _received(journal, axis_doc_id, *, business_type=0, sender=SENDER, document_id=RECEIVED,
              now=T0, messagetype="edoc", sha=None):
    item = journal.incoming.record_listed(axis_doc_id, messagetype, now=now)
    return journal.incoming.record_stored(item.id, package_path=f"/r/{axis_doc_id}",
                                 sha256=sha or axis_doc_id.encode().hex()[:64].ljust(64, "0"),
                                 size=1, sender=sender, document_id=document_id,
                                 business_type=business_type, signature_state="valid", now=now)


def test_find_received_returns_the_original_not_its_revoke_or_a_duplicate(journal):
    assert journal.incoming.find_received(RECEIVED) is None
    original = _received(journal, "axis-1")
    duplicate = _received(journal, "axis-1b", now=T0 + dt.timedelta(minutes=1))
    journal.incoming.record_duplicate(duplicate.id, original.id)
    revoke = _received(journal, "axis-2", business_type=1, now=T0 + dt.timedelta(hours=1))
    _received(journal, "axis-3", sender="000.00.00.Z99", now=T0 - dt.timedelta(hours=1))
    _received(journal, "axis-st", messagetype="status", now=T0 - dt.timedelta(hours=2))

    assert journal.incoming.find_received(RECEIVED, SENDER).id == original.id
    assert journal.incoming.find_received(RECEIVED).sender == "000.00.00.Z99"  # earliest from anyone
    assert journal.incoming.find_received(RECEIVED, SENDER, exclude_id=original.id).id == revoke.id
    assert journal.incoming.find_received(RECEIVED, SENDER, originals_only=True,
                                 exclude_id=original.id) is None
    assert journal.incoming.find_received("other-doc", SENDER) is None


def test_originals_only_leaves_out_an_update_that_reuses_the_documentid(journal):
    original = _received(journal, "axis-1")
    _received(journal, "axis-2", business_type=2, now=T0 + dt.timedelta(hours=1))
    assert journal.incoming.find_received(RECEIVED, SENDER, exclude_id=original.id,
                                 originals_only=True) is None
    assert journal.incoming.find_received(RECEIVED, SENDER, exclude_id=original.id).business_type == 2
    assert journal.incoming.find_received(RECEIVED, SENDER, originals_only=True).id == original.id


def test_upgrade_from_0001_keeps_one_row_per_status_package_and_the_items(journal_url):
    """A journal written by the first schema (which could hold a redelivered status twice) is
    upgraded in place: duplicates go, everything else stays, old items belong to any instance."""
    from alembic import command
    from sqlalchemy import insert

    from connector.journal import Journal
    from connector.journal import schema as t
    from connector.journal.engine import create_journal_engine
    from connector.journal.migrate import alembic_config, current_revision

    engine = create_journal_engine(journal_url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    row = {"document_id": DOC, "from_organ_id": A, "code": "01", "recorded_at": T0,
           "incoming_id": "IN-1"}
    with engine.begin() as conn:
        conn.execute(insert(t.outgoing).values(
            id="OUT-1", source="folder", source_ref="r", kind="document", state="queued",
            attempts=0, created_at=T0, updated_at=T0, document_id=DOC))
        for incoming_id in ("IN-1", "IN-1", "IN-2", None, None):
            conn.execute(insert(t.statuses).values(**{**row, "incoming_id": incoming_id}))
    engine.dispose()
    with Journal.open(journal_url, instance="node-x") as journal:
        assert current_revision(journal.engine) == "0006"
        assert sorted((s.incoming_id or "-") for s in journal.recipients.statuses(DOC)) == [
            "-", "-", "IN-1", "IN-2"]
        [claimed] = journal.outgoing.claim_for_sending(5, now=T0)
        assert claimed.id == "OUT-1" and claimed.instance is None
