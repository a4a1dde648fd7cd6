"""`status`: counts, oldest pending age, last axis contact, the item table and its --json shape."""

from __future__ import annotations

import datetime as dt
import json

from connector.journal import KV_LAST_AXIS_CONTACT
from connector.ops.status_view import collect_status, human_age, render_status, watch_status

from .conftest import failed_folder_item, received_document


def _populate(ctx, daemon_side, site):
    failed = failed_folder_item(ctx, daemon_side, site)
    waiting = ctx.journal.outgoing.enqueue("folder", "20261123T000000.000000Z-abcd@node1--later.edxml",
                                  "package", recipients=[site.peer, "000.00.00.H41"])
    sent = ctx.journal.outgoing.enqueue("folder", "20261123T000000.000000Z-abce@node1--sent.edxml",
                               "package", document_id="DOC-SENT", recipients=[site.peer])
    ctx.journal.outgoing.mark_packaged(sent.id, package_path="/x", sha256="0" * 64, size=1,
                              document_id="DOC-SENT", recipients=[site.peer])
    ctx.journal.outgoing.claim_for_sending(10)
    ctx.journal.outgoing.record_sent(sent.id, "axis-doc-1")
    ctx.journal.recipients.record_recipient_status("DOC-SENT", site.peer, "03", description="đã tiếp nhận")
    incoming_id, _ = received_document(ctx, site)
    ctx.journal.set_time(KV_LAST_AXIS_CONTACT, dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.timezone.utc))
    return failed, waiting, sent, incoming_id


def test_json_snapshot_has_counts_ages_contact_and_items(ctx, daemon_side, site, cli):
    failed, waiting, sent, incoming_id = _populate(ctx, daemon_side, site)
    code, out, err = cli("status", "--json")
    assert code == 0, err
    snapshot = json.loads(out)
    assert snapshot["counts"]["outgoing"]["failed"] == 1
    assert snapshot["counts"]["outgoing"]["sent"] == 1
    assert snapshot["counts"]["incoming"]["acknowledged"] == 1
    assert snapshot["oldest_pending_age_seconds"] is not None
    assert snapshot["last_axis_contact"] == "2026-11-23T08:00:00+00:00"
    by_id = {item["id"]: item for item in snapshot["items"]}
    assert set(by_id) == {failed.id, waiting.id, sent.id, incoming_id}
    sent_row = by_id[sent.id]
    assert sent_row["direction"] == "out" and sent_row["axis_doc_id"] == "axis-doc-1"
    assert sent_row["recipients"] == [{"organ_id": site.peer, "status": "03", "label": "accepted",
                                       "description": "đã tiếp nhận", "at": sent_row["recipients"][0]["at"]}]
    assert by_id[failed.id]["name"] == "doc1" and by_id[failed.id]["state"] == "failed"
    assert by_id[failed.id]["attempts"] == 1
    assert by_id[incoming_id]["direction"] == "in" and by_id[incoming_id]["name"] == site.peer


def test_filters_by_state_and_direction(ctx, daemon_side, site, cli):
    failed, waiting, sent, incoming_id = _populate(ctx, daemon_side, site)
    snapshot = json.loads(cli("status", "--json", "--state", "failed")[1])
    assert [item["id"] for item in snapshot["items"]] == [failed.id]
    snapshot = json.loads(cli("status", "--json", "--direction", "in")[1])
    assert [item["id"] for item in snapshot["items"]] == [incoming_id]
    snapshot = json.loads(cli("status", "--json", "--limit", "1")[1])
    assert len(snapshot["items"]) == 1 and snapshot["items"][0]["id"] == incoming_id  # newest


def test_table_shows_items_and_recipient_statuses(ctx, daemon_side, site, cli):
    failed, waiting, sent, incoming_id = _populate(ctx, daemon_side, site)
    code, out, _ = cli("status")
    assert code == 0
    for item_id in (failed.id, waiting.id, sent.id, incoming_id):
        assert item_id in out
    assert "Outgoing: " in out and "failed 1" in out
    assert f"{site.peer} 03 accepted" in out
    assert "Last axis contact: 2026-11-23T08:00:00+00:00" in out


def test_unknown_state_is_refused_with_the_valid_ones(cli):
    code, out, err = cli("status", "--state", "lost")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "'lost'" in err and "failed" in err
    code, _, err = cli("status", "--state", "delivered", "--direction", "out")
    assert code == 2 and "outgoing" in err


def test_watch_redraws_until_interrupted(ctx, daemon_side, site):
    import io

    from rich.console import Console

    failed_folder_item(ctx, daemon_side, site)
    calls = []

    def collect():
        calls.append(1)
        return collect_status(ctx.journal)

    def sleep(_seconds):
        if len(calls) == 3:
            raise KeyboardInterrupt

    buffer = io.StringIO()
    drawn = watch_status(collect, Console(file=buffer, width=200), sleep=sleep)
    assert drawn == 3 and len(calls) == 3
    assert "doc1" in buffer.getvalue()


def test_empty_journal_renders_and_ages_read_well(ctx):
    import io

    from rich.console import Console

    snapshot = collect_status(ctx.journal)
    assert snapshot["items"] == [] and snapshot["oldest_pending_age_seconds"] is None
    buffer = io.StringIO()
    Console(file=buffer, width=120).print(render_status(snapshot))
    assert "no items match" in buffer.getvalue() and "never" in buffer.getvalue()
    assert [human_age(s) for s in (None, 5, 125, 7300, 90000)] == ["-", "5s", "2m05s", "2h01m", "1d01h"]


def test_the_table_fits_in_100_columns_and_wide_shows_every_column(ctx, daemon_side, site, cli):
    failed, waiting, sent, incoming_id = _populate(ctx, daemon_side, site)
    code, out, err = cli("status")
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, "\n".join(lines)
    for item in (failed, waiting, sent):
        assert item.id in out  # never folded: every other command takes it
    assert incoming_id in out
    assert "Axis DocId" not in out and "axis-doc-1" not in out

    code, out, err = cli("status", "--wide")
    assert code == 0, err
    assert "Axis DocId" in out and "axis-doc-1" in out
    assert max(len(line) for line in out.splitlines()) > 100


def test_every_item_shows_its_unit_and_agency_keeps_one_units(ctx, daemon_side, site, cli):
    failed, waiting, sent, incoming_id = _populate(ctx, daemon_side, site)
    snapshot = json.loads(cli("status", "--json")[1])
    assert {item["agency"] for item in snapshot["items"]} == {site.organ_id}
    mine = json.loads(cli("status", "--json", "--agency", site.organ_id)[1])
    assert {item["id"] for item in mine["items"]} == {failed.id, waiting.id, sent.id, incoming_id}
    assert mine["filter"]["agency"] == site.organ_id
    other = json.loads(cli("status", "--json", "--agency", site.peer)[1])
    assert other["items"] == []
