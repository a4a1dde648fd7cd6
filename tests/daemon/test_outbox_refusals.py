"""Nothing refused in silence: every outbox entry the connector will not take ends in failed/
with its reason, and what it points at is never read or touched."""

from __future__ import annotations

import os

from rich.console import Console

from connector.journal import OutgoingState
from connector.ops.status_view import collect_status, render_status

from .conftest import PDF, document_metadata, drop_bundle


def test_links_fifos_and_unknown_files_end_in_failed_with_their_reason(make_agency, tmp_path):
    a = make_agency("A")
    outbox = a.exchange / "outbox"
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret")
    (outbox / "shadow.edxml").symlink_to(secret)
    (outbox / "folder-link").symlink_to(tmp_path)
    (outbox / "statuses" / "shadow.yaml").symlink_to(secret)
    os.mkfifo(outbox / "pipe.edxml")
    (outbox / "notes.txt").write_text("a note")
    (outbox / "statuses" / "answer.txt").write_text("code: '03'")
    drop_bundle(outbox, "cv101", document_metadata(), {"Công văn số 101.pdf": PDF})

    a.cycle()

    failed = a.exchange / "failed"
    expected = {
        "shadow.edxml": "symbolic link", "folder-link": "symbolic link",
        "statuses/shadow.yaml": "symbolic link", "pipe.edxml": "not a regular file",
        "notes.txt": "not a kind of item", "statuses/answer.txt": "not a status file"}
    for name, reason in expected.items():
        assert os.path.lexists(failed / name), name
        stem = name.removesuffix(".edxml").removesuffix(".yaml")
        assert reason in (failed / f"{stem}.error.txt").read_text(), name
    assert (failed / "shadow.edxml").is_symlink()  # the link itself, moved, never followed
    assert secret.read_text() == "root:$6$secret"
    assert sorted(p.name for p in outbox.iterdir()) == ["statuses"]
    assert list((outbox / "statuses").iterdir()) == []
    # Each refusal is a failed journal item with the reason (what `status` shows)...
    refused = a.journal.outgoing.list_outgoing(OutgoingState.FAILED)
    assert len(refused) == len(expected)
    assert all(record.last_error for record in refused)
    # ...and the well-formed bundle beside them was sent as usual.
    assert len(a.journal.outgoing.list_outgoing(OutgoingState.SENT, kind="document")) == 1


def test_a_name_too_long_to_claim_is_reported_with_its_name_and_does_not_block_others(
        make_agency):
    a = make_agency("A")
    outbox = a.exchange / "outbox"
    name = "x" * 240 + ".edxml"
    (outbox / name).write_bytes(b"<edXML/>")
    drop_bundle(outbox, "cv101", document_metadata(), {"Công văn số 101.pdf": PDF})

    a.cycle()
    a.cycle()  # a second pass reports nothing new and still sends nothing of it

    assert len(a.journal.outgoing.list_outgoing(OutgoingState.SENT, kind="document")) == 1
    assert (outbox / name).exists()
    snapshot = collect_status(a.journal)
    [(refused_name, reason)] = snapshot["outbox_refused"].items()
    assert refused_name == name and "rename it to at most" in reason
    console = Console(width=400, record=True)
    console.print(render_status(snapshot))
    assert f"Refused in the outbox: {name}" in console.export_text()

    os.rename(outbox / name, outbox / "short.edxml")
    a.cycle()
    assert collect_status(a.journal)["outbox_refused"] == {}
