"""Fixtures for the operator commands: a real configuration file, a real SQLite journal, a real
EXCHANGE tree driven by the real FolderSide (as the daemon would), and real packages."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from connector.cli import main
from connector.dms.base import Failure, IncomingDocument
from connector.dms.folder.side import FolderSide
from connector.edxml import model
from connector.edxml.attachments import prepare_outgoing
from connector.edxml.reader import read_package
from connector.edxml.summary import summarize
from connector.edxml.writer import write_package
from connector.journal import MessageType
from connector.ops.context import OpsContext

PDF_BYTES = b"%PDF-1.4\n% test bytes \xe1\x00\xff\n%%EOF\n"


@dataclass
class Site:
    """One agency's installation: its config file and the paths in it."""

    config: Path
    root: Path
    exchange: Path
    state: Path
    organ_id: str
    peer: str


@pytest.fixture
def site(tmp_path: Path, dev_certs) -> Site:
    secret = tmp_path / "axis-secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    agency = dev_certs.agency_a
    config = {
        "agency": {"organ_id": agency.organ_id, "name": "Cơ quan A"},
        "certificate": {"key_file": str(agency.key), "cert_file": str(agency.cert)},
        "axis": {"endpoint": "http://127.0.0.1:9/axis", "secret_file": str(secret)},
        "journal": {"url": f"sqlite:///{tmp_path / 'state' / 'journal.db'}", "instance": "node1"},
        "state_dir": str(tmp_path / "state"),
        "exchange": {"root": str(tmp_path / "exchange")},
        "health": {"enabled": False},
    }
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return Site(config=path, root=tmp_path, exchange=tmp_path / "exchange",
                state=tmp_path / "state", organ_id=agency.organ_id,
                peer=dev_certs.agency_b.organ_id)


@pytest.fixture
def ctx(site: Site):
    context = OpsContext.from_config(site.config)
    yield context
    context.close()


@pytest.fixture
def daemon_side(site: Site):
    """The folder side as the running daemon holds it (instance lock and all)."""
    side = FolderSide(site.exchange, instance="node1")
    yield side
    side.close()


@pytest.fixture
def cli(site: Site, capsys):
    """Run ``edxml-connector ARGS --config site.config``; returns (exit code, stdout, stderr)."""

    def run(*args: str, config: bool = True) -> tuple[int, str, str]:
        argv = list(args) + (["--config", str(site.config)] if config else [])
        capsys.readouterr()  # what the fixtures printed is not the command's output
        code = main(argv)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def bundle_metadata(to: str, **extra) -> dict:
    data = {
        "to": [{"organ_id": to, "organ_name": "Cơ quan B"}],
        "code": {"number": "12", "notation": "UBND-VP"},
        "promulgation": {"place": "Hà Nội", "date": "2026-11-23"},
        "subject": "Về việc thử nghiệm",
        "attachments": [{"file": "công văn.pdf"}],
    }
    data.update(extra)
    return data


def make_bundle(directory: Path, to: str, **extra) -> Path:
    directory.mkdir(parents=True)
    (directory / "công văn.pdf").write_bytes(PDF_BYTES)
    (directory / "document.yaml").write_text(
        yaml.safe_dump(bundle_metadata(to, **extra), allow_unicode=True), encoding="utf-8")
    return directory


def failed_folder_item(ctx: OpsContext, side: FolderSide, site: Site, name: str = "doc1"):
    """Drop a bundle in the outbox, claim and journal it as the daemon does, and fail it
    permanently (journal + failed/ with .error.txt). Returns the journal record."""
    make_bundle(site.exchange / "outbox" / f".{name}.tmp", site.peer).rename(
        site.exchange / "outbox" / name)
    [item] = side.claim_ready()
    record = ctx.journal.outgoing.enqueue("folder", item.source_ref, "document",
                                 recipients=[site.peer], meta={"display_name": item.display_name})
    [claimed] = ctx.journal.outgoing.claim_for_sending(10)
    assert claimed.id == record.id
    failed = ctx.journal.outgoing.record_attempt_failed(record.id, "axis said: unknown receiver",
                                               permanent=True)
    side.mark_failed(item, Failure(journal_id=record.id, reason=failed.last_error or "",
                                   attempts=failed.attempts, failed_at=failed.updated_at))
    return ctx.journal.outgoing.get_outgoing(record.id)


def received_document(ctx: OpsContext, site: Site, *, axis_doc_id: str = "axis-77",
                      sender: str | None = None) -> tuple[str, IncomingDocument]:
    """A document from the peer, stored in the package store and journalled up to
    ``acknowledged`` as the inbound pipeline does. Returns (journal id, IncomingDocument)."""
    sender = sender or site.peer
    package = model.DocumentPackage(
        from_=model.Organization(organ_id=sender, organ_name="Cơ quan B"),
        to=[model.Organization(organ_id=site.organ_id)],
        code=model.Code(number="88", notation="BNV-VP"),
        promulgation_info=model.PromulgationInfo(place="Hà Nội", date=dt.date(2026, 11, 20)),
        document_type=model.DocumentType(type="1", type_detail="0", type_name="Công văn"),
        subject="Về việc phối hợp",
        attachments=[prepare_outgoing("phụ lục.pdf", data=PDF_BYTES)])
    data = write_package(package)
    record = ctx.journal.incoming.record_listed(axis_doc_id, MessageType.EDOC, sender=sender)
    path = ctx.store.incoming_path(record.id)
    path.write_bytes(data)
    result = read_package(path)
    ctx.journal.incoming.record_fetched(record.id, size=len(data))
    ctx.journal.incoming.record_verified(record.id, signature_state="absent")
    ctx.journal.incoming.record_stored(record.id, package_path=str(path),
                              sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                              sender=sender, document_id=result.package.document_id,
                              business_type=0, signature_state="absent",
                              meta={"subject": result.package.subject})
    ctx.journal.incoming.record_acknowledged(record.id)
    document = IncomingDocument(journal_id=record.id, axis_doc_id=axis_doc_id,
                                received_at=dt.datetime.now(dt.timezone.utc), package_path=path,
                                summary=summarize(result),
                                signature={"state": "absent", "reason": "not signed"})
    return record.id, document
