"""One instance name for the journal and the folder claims (``journal.instance`` / ``run
--instance``), and an item whose stored package vanished fails at once with the fix."""

from __future__ import annotations

import yaml

from connector.config import load_config
from connector.dms.folder.claims import default_instance
from connector.journal import OutgoingState
from connector.service.runtime import Runtime

from .conftest import PDF, document_metadata, drop_bundle


def _with_journal_keys(config, **keys):
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["journal"].update(keys)
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_config(config)


def test_journal_and_folder_use_one_instance_name(make_agency, tmp_path):
    a = make_agency("A")  # opened with folder_instance="test" (like `run --instance test`)
    assert a.runtime.instance == "test" and a.journal.instance == "test"
    assert a.runtime.folder.instance == "test"
    drop_bundle(a.exchange / "outbox", "cv1", document_metadata("1"), {"Công văn số 101.pdf": PDF})
    a.cycle()
    [sent] = a.journal.outgoing.list_outgoing(OutgoingState.SENT)
    assert sent.instance == "test" and "@test--" in sent.source_ref
    a.close()

    settings = _with_journal_keys(a.config, instance="node7", send_any_instance=True)
    with Runtime(settings) as runtime:  # no --instance: the config's name, for both
        assert runtime.journal.instance == "node7" and runtime.journal.core.any_instance is True
        assert runtime.folder.instance == "node7"
    with Runtime(settings, folder_instance="cli-name") as runtime:  # --instance wins
        assert runtime.journal.instance == "cli-name" and runtime.folder.instance == "cli-name"
    settings = _with_journal_keys(a.config, instance=None, send_any_instance=False)
    with Runtime(settings) as runtime:  # default: the host name (the folder adapter's form)
        assert runtime.journal.instance == default_instance() == runtime.folder.instance
        assert runtime.journal.core.any_instance is False


def test_an_item_whose_stored_package_vanished_fails_at_once_with_the_fix(pair):
    a, _ = pair
    drop_bundle(a.exchange / "outbox", "cv2", document_metadata("2"), {"Công văn số 101.pdf": PDF})
    a.outbound.intake(a.runtime.side("folder"))
    [record] = a.journal.outgoing.list_outgoing()
    stored = a.runtime.store.put_outgoing_bytes(record.id, b"<edXML/>")
    a.journal.outgoing.mark_packaged(record.id, package_path=str(stored.path), sha256=stored.sha256,
                            size=stored.size, document_id="000.00.00.G22,2026/11/23,2/X")
    stored.path.unlink()  # e.g. adopted from a server whose package store was not copied

    a.cycle()

    failed = a.journal.outgoing.get_outgoing(record.id)
    assert failed.state is OutgoingState.FAILED and failed.attempts == 1
    assert "the stored package is missing" in failed.last_error
    assert "cancel" in failed.last_error
    error_text = (a.exchange / "failed" / "cv2.error.txt").read_text(encoding="utf-8")
    assert "the stored package is missing" in error_text


def test_no_arrived_status_when_the_setting_is_off(make_agency):
    a = make_agency("A")
    b = make_agency("B", inbox={"send_arrived_status": False})
    drop_bundle(a.exchange / "outbox", "cv3", document_metadata("3"), {"Công văn số 101.pdf": PDF})
    a.cycle()
    b.poll()
    assert [r.state.value for r in b.journal.incoming.list_incoming(messagetype="edoc")] == ["delivered"]
    assert b.journal.outgoing.list_outgoing() == []  # no 01 queued
    a.poll()
    [sent] = a.journal.outgoing.list_outgoing()
    assert [d.status_code for d in sent.deliveries] == [None]
