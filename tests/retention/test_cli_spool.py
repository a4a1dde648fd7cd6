"""Retention of ``STATE/spool/cli/`` (the packages `edxml-connector send` queued): a spooled
file goes once it is old AND its journal item is finished or forgotten; never while pending."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest
import yaml

from connector.config import load_config
from connector.journal import Journal
from connector.pipeline.retention import purge_cli_spool, run_retention
from connector.service.runtime import Runtime

DAY = 86400.0
OLD = time.time() - 40 * DAY


@pytest.fixture
def journal(tmp_path):
    opened = Journal.open(f"sqlite:///{tmp_path / 'journal.db'}", instance="node1")
    yield opened
    opened.close()


def _spooled(directory, name: str, *, when: float = OLD):
    path = directory / name
    path.write_bytes(b"<edXML/>")
    os.utime(path, (when, when))
    return path


def _item(journal, kind: str, fingerprint: str, *, state: str | None):
    record = journal.outgoing.enqueue("cli", f"{kind}:{fingerprint}", kind, recipients=["000.00.00.H41"])
    if state in ("sent", "failed-packaged", "failed-unpackaged"):
        if state != "failed-unpackaged":
            journal.outgoing.mark_packaged(record.id, package_path="/x", sha256="0" * 64, size=1,
                                  document_id="d")
        journal.outgoing.claim_for_sending(10)
        if state == "sent":
            journal.outgoing.record_sent(record.id, "axis-1")
        else:
            journal.outgoing.record_attempt_failed(record.id, "refused", permanent=True)
    elif state == "cancelled":
        journal.outgoing.cancel(record.id)
    return record


def test_finished_and_orphan_spool_files_go_pending_and_recent_ones_stay(tmp_path, journal):
    spool = tmp_path / "spool" / "cli"
    spool.mkdir(parents=True)
    sent = _spooled(spool, "aaa.edxml")
    _item(journal, "package", "aaa", state="sent")
    pending = _spooled(spool, "bbb.edxml")
    _item(journal, "document", "bbb", state=None)
    cancelled = _spooled(spool, "ccc.edxml")
    _item(journal, "document", "ccc", state="cancelled")
    failed_packaged = _spooled(spool, "ddd.edxml")
    _item(journal, "package", "ddd", state="failed-packaged")
    failed_unpackaged = _spooled(spool, "eee.edxml")  # a retry would package it from this file
    _item(journal, "package", "eee", state="failed-unpackaged")
    orphan = _spooled(spool, "fff.edxml")              # journal forgot it (or send never queued)
    recent_orphan = _spooled(spool, "ggg.edxml", when=time.time())  # maybe a send running now
    interrupted = _spooled(spool, ".hhh.edxml.tmp-0a1b2c3d")

    removed = purge_cli_spool(spool, journal, dt.timedelta(days=30))

    assert sorted(removed) == sorted(p.name for p in (sent, cancelled, failed_packaged, orphan,
                                                      interrupted))
    assert pending.exists() and failed_unpackaged.exists() and recent_orphan.exists()
    assert not sent.exists() and not orphan.exists()


def test_nothing_to_do_without_a_spool(tmp_path, journal):
    assert purge_cli_spool(tmp_path / "spool" / "cli", journal, dt.timedelta(days=1)) == []


def test_run_retention_purges_the_spool(tmp_path, dev_certs):
    """Through the daemon's retention job (Runtime + settings)."""
    secret = tmp_path / "axis-secret"
    secret.write_text("s")
    secret.chmod(0o600)
    agency = dev_certs.agency_a
    config = tmp_path / "connector.yaml"
    config.write_text(yaml.safe_dump({
        "agency": {"organ_id": agency.organ_id, "name": "A"},
        "certificate": {"key_file": str(agency.key), "cert_file": str(agency.cert)},
        "axis": {"endpoint": "http://127.0.0.1:9/axis", "secret_file": str(secret)},
        "journal": {"url": f"sqlite:///{tmp_path / 'journal.db'}"},
        "state_dir": str(tmp_path / "state"),
        "exchange": {"root": str(tmp_path / "exchange")},
        "retention": {"sent_archive_days": 30}}))
    spool = tmp_path / "state" / "spool" / "cli"
    spool.mkdir(parents=True)
    orphan = _spooled(spool, "fff.edxml")
    with Runtime(load_config(config), folder_instance="node1") as runtime:
        counts = run_retention(runtime)
    assert counts["cli_spool"] == 1 and not orphan.exists()
