"""Revoke, update, replace and take-back: recorded on B's original inbox entry and events.jsonl,
never deleting anything."""

from __future__ import annotations

import json

from connector.journal import OutgoingState

from .conftest import PDF, A, B, document_metadata, drop_bundle, inbox_entries


def _send_original(a, b):
    drop_bundle(a.exchange / "outbox", "original", document_metadata(), {"Công văn số 101.pdf": PDF})
    a.cycle()
    b.poll()
    [record] = a.journal.outgoing.list_outgoing(OutgoingState.SENT, kind="document")
    [entry] = inbox_entries(b.exchange)
    return record.document_id, entry


def _lifecycle(entry):
    return json.loads((entry / "metadata.json").read_text()).get("lifecycle", [])


def _events(b):
    path = b.exchange / "inbox" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_revoke_update_replace_and_take_back_are_recorded_on_the_original(pair):
    a, b = pair
    document_id, original = _send_original(a, b)

    for name, number, extra in (
            ("revoke", "102", {"document_id": document_id, "business": {"type": "revoke"}}),
            ("update", "103", {"document_id": document_id, "business": {"type": "update"}}),
            ("replace", "104", {"business": {"type": "replace", "replaces": [
                {"document_id": document_id, "organ_ids": [B]}]}})):
        metadata = document_metadata(number=number, **extra)
        drop_bundle(a.exchange / "outbox", name, metadata, {"Công văn số 101.pdf": PDF})
    a.cycle()
    assert len(a.journal.outgoing.list_outgoing(OutgoingState.SENT, kind="document")) == 4
    b.poll()

    events = [entry["event"] for entry in _lifecycle(original)]
    assert sorted(events) == ["replaced", "revoked", "updated"]
    logged = _events(b)
    assert sorted(line["event"] for line in logged) == ["replaced", "revoked", "updated"]
    assert all(line["original_location"] == str(original) for line in logged)
    # Nothing deleted: the original is still there, and each request is its own inbox entry.
    assert (original / "Công văn số 101.pdf").read_bytes() == PDF
    assert len(inbox_entries(b.exchange)) == 4
    # 01 goes back only for the new document and the replacement (not revoke/update).
    arrived = [r for r in b.journal.outgoing.list_outgoing(kind="status") if r.source == "connector"]
    assert len(arrived) == 2

    take_back = {"take_back": {"document_id": document_id, "to": [B], "reason": "Gửi nhầm"}}
    drop_bundle(a.exchange / "outbox", "take-back", take_back, {})
    a.cycle()
    [item] = [r for r in a.journal.outgoing.list_outgoing(kind="status") if r.source == "folder"]
    assert item.state is OutgoingState.SENT and item.recipients == [B]
    b.poll()
    assert "take_back_requested" in [entry["event"] for entry in _lifecycle(original)]
    [line] = [line for line in _events(b) if line["event"] == "take_back_requested"]
    assert line["from"] == A and line["document_id"] == document_id
    assert original.is_dir()
