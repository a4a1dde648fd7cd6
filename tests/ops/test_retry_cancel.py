"""`retry ID|--failed` and `cancel ID`: journal transitions plus the folder side following them."""

from __future__ import annotations

from connector.journal import OutgoingState

from .conftest import failed_folder_item


def test_retry_moves_a_failed_item_back_to_work_and_the_queue(ctx, daemon_side, site, cli):
    record = failed_folder_item(ctx, daemon_side, site)
    failed_dir = site.exchange / "failed"
    assert (failed_dir / "doc1").is_dir() and (failed_dir / "doc1.error.txt").is_file()

    code, out, err = cli("retry", record.id)
    assert code == 0, err
    assert f"requeued {record.id}" in out
    after = ctx.journal.outgoing.get_outgoing(record.id)
    assert after.state is OutgoingState.QUEUED and after.attempts == 0 and after.last_error is None
    assert not (failed_dir / "doc1").exists() and not (failed_dir / "doc1.error.txt").exists()
    assert (site.exchange / "work" / record.source_ref / "document.yaml").is_file()
    # The daemon's side hands the item out again (read afresh) and the journal recognises it.
    [again] = daemon_side.claim_ready()
    assert again.source_ref == record.source_ref and again.problem is None
    assert ctx.journal.outgoing.enqueue("folder", again.source_ref, "document").id == record.id
    assert [e.event for e in ctx.journal.events(record.id)][-1] == "requeued"


def test_retry_accepts_a_document_id(ctx, site, cli):
    item = ctx.journal.outgoing.enqueue("cli", "x", "package", document_id="DOC-9", recipients=[site.peer])
    ctx.journal.outgoing.cancel(item.id)
    code, out, err = cli("retry", "DOC-9")
    assert code == 0, err
    assert ctx.journal.outgoing.get_outgoing(item.id).state is OutgoingState.QUEUED


def test_retry_failed_requeues_every_failed_item_with_a_progress_bar(ctx, daemon_side, site, cli):
    first = failed_folder_item(ctx, daemon_side, site, "doc1")
    second = failed_folder_item(ctx, daemon_side, site, "doc2")
    untouched = ctx.journal.outgoing.enqueue("cli", "y", "package", recipients=[site.peer])
    code, out, err = cli("retry", "--failed")
    assert code == 0, err
    assert "requeued 2 item(s)" in out
    assert "2/2" in err  # the progress bar, on stderr
    for record in (first, second):
        assert ctx.journal.outgoing.get_outgoing(record.id).state is OutgoingState.QUEUED
        assert (site.exchange / "work" / record.source_ref).is_dir()
    assert ctx.journal.outgoing.get_outgoing(untouched.id).attempts == 0
    assert not list((site.exchange / "failed").glob("doc*"))


def test_retry_of_a_sent_item_is_refused(ctx, site, cli):
    item = ctx.journal.outgoing.enqueue("cli", "z", "package", recipients=[site.peer])
    ctx.journal.outgoing.claim_for_sending(5)
    ctx.journal.outgoing.record_sent(item.id, "axis-1")
    code, out, err = cli("retry", item.id)
    assert code == 2 and out == ""
    assert "already sent" in err and "twice" in err and err.count("\n") == 1
    assert ctx.journal.outgoing.get_outgoing(item.id).state is OutgoingState.SENT


def test_retry_needs_exactly_one_of_id_and_failed(cli):
    assert cli("retry")[0] == 2
    code, _, err = cli("retry", "X", "--failed")
    assert code == 2 and "either an ID or --failed" in err


def test_unknown_id_is_one_line_exit_2(cli):
    code, out, err = cli("cancel", "NOPE")
    assert code == 2 and out == ""
    assert err.startswith("edxml-connector: error: ") and "'NOPE'" in err and err.count("\n") == 1
    assert "Traceback" not in err


def test_cancel_shows_the_item_as_failed_with_the_reason(ctx, daemon_side, site, cli):
    (site.exchange / "outbox" / "late.edxml").write_bytes(b"<edXML/>")
    [item] = daemon_side.claim_ready()
    record = ctx.journal.outgoing.enqueue("folder", item.source_ref, "package", recipients=[site.peer])
    code, out, err = cli("cancel", record.id, "--reason", "gửi nhầm")
    assert code == 0, err
    assert ctx.journal.outgoing.get_outgoing(record.id).state is OutgoingState.CANCELLED
    assert (site.exchange / "failed" / "late.edxml").is_file()
    text = (site.exchange / "failed" / "late.error.txt").read_text(encoding="utf-8")
    assert "cancelled by the operator: gửi nhầm" in text and f"retry {record.id}" in text
    assert not (site.exchange / "work" / item.source_ref).exists()
    # and retry brings it back
    assert cli("retry", record.id)[0] == 0
    assert (site.exchange / "work" / item.source_ref).is_file()


def test_cancel_of_an_item_being_sent_is_refused(ctx, site, cli):
    item = ctx.journal.outgoing.enqueue("cli", "busy", "package", recipients=[site.peer])
    ctx.journal.outgoing.claim_for_sending(5)
    code, _, err = cli("cancel", item.id)
    assert code == 2 and "being sent right now" in err
