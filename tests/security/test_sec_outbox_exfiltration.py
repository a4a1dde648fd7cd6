"""The agency side cannot make the connector send a file it should not: its private key, the
axis secret, the journal, /etc/... — not through a hard link in the outbox, not by swapping a
checked file for a symlink before it is read, not through a DMS-database file path."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml

from connector import fsutil
from connector.dms.database.mapping import AttachmentsMapping
from connector.dms.folder.side import FolderSide
from connector.errors import InputError

SECRET = b"-----BEGIN PRIVATE KEY-----\nconnector-only\n-----END PRIVATE KEY-----\n"
METADATA = {"to": [{"organ_id": "000.00.00.H41", "organ_name": "B"}],
            "code": {"number": "1", "notation": "X"},
            "promulgation": {"place": "Hà Nội", "date": "2026-11-23"}, "subject": "s"}


@pytest.fixture()
def secret_file(tmp_path: Path) -> Path:
    """A file owned by the connector's user (this process), like its key."""
    path = tmp_path / "state" / "key.pem"
    path.parent.mkdir()
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def _bundle(outbox: Path, name: str, attachments: list[str] | None) -> Path:
    bundle = outbox / name
    bundle.mkdir()
    metadata = dict(METADATA)
    if attachments is not None:
        metadata["attachments"] = [{"file": item} for item in attachments]
    (bundle / "document.yaml").write_text(yaml.safe_dump(metadata), encoding="utf-8")
    return bundle


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "unlisted"])
def test_a_hard_link_to_a_connector_file_in_a_bundle_is_refused(tmp_path, secret_file, listed):
    exchange = tmp_path / "exchange"
    with FolderSide(exchange, instance="sec") as side:
        bundle = _bundle(exchange / "outbox", "cv-1", ["annex.pdf"] if listed else None)
        os.link(secret_file, bundle / "annex.pdf")
        (item,) = side.claim_ready()
    assert isinstance(item.problem, InputError)
    assert "hard link" in item.problem.one_line()
    assert not item.attachment_files


def test_a_hard_linked_ready_package_is_refused(tmp_path, secret_file):
    exchange = tmp_path / "exchange"
    with FolderSide(exchange, instance="sec") as side:
        os.link(secret_file, exchange / "outbox" / "x.edxml")
        (item,) = side.claim_ready()
    assert isinstance(item.problem, InputError) and item.package_path is None


def test_a_file_the_dms_owns_may_still_be_hard_linked(tmp_path):
    """The DMS's own hard links (another owner) are harmless: it can read those files anyway."""
    own = tmp_path / "scan.pdf"
    own.write_bytes(b"%PDF")
    os.link(own, tmp_path / "again.pdf")
    info = os.lstat(own)
    other_owner = os.stat_result((info.st_mode, info.st_ino, info.st_dev, info.st_nlink,
                                  os.geteuid() + 1, info.st_gid, info.st_size, 0, 0, 0))
    assert fsutil.sendable_file_problem(other_owner) is None
    assert "hard link" in fsutil.sendable_file_problem(info)


def test_a_checked_attachment_swapped_for_a_symlink_is_not_sent(tmp_path, secret_file):
    """The race: the bundle is checked at claim time, then the DMS (which still owns the bundle
    folder) replaces a file with a link to the key before the package is written."""
    from connector.dms.folder.outbox import bundle_attachments
    from connector.edxml.model import Organization
    from connector.edxml.writer import write_package_to
    from connector.pipeline.packaging import build_document
    from connector.schemas.document import load_document_metadata

    bundle = _bundle(tmp_path, "cv-2", ["notes.txt", "annex.pdf"])
    (bundle / "notes.txt").write_bytes(b"plain text")
    (bundle / "annex.pdf").write_bytes(b"%PDF-1.7")
    metadata = load_document_metadata(bundle / "document.yaml")
    files = bundle_attachments(bundle, "cv-2", metadata)  # both fine at this point
    (bundle / "annex.pdf").unlink()
    (bundle / "annex.pdf").symlink_to(secret_file)
    out = tmp_path / "out.edxml"
    with pytest.raises(InputError, match="symbolic link"):
        package = build_document(metadata, files,
                                 agency=Organization(organ_id="000.00.00.G22", organ_name="A"))
        write_package_to(package, out)
    assert not out.exists() or SECRET not in out.read_bytes()
    # ...and a file zipped by the ZIP convention (notes.txt) is read the same way.
    (bundle / "notes.txt").unlink()
    (bundle / "notes.txt").symlink_to(secret_file)
    with pytest.raises(InputError, match="symbolic link"):
        build_document(metadata, files,
                       agency=Organization(organ_id="000.00.00.G22", organ_name="A"))


@pytest.mark.timeout(10)
def test_a_fifo_swapped_in_does_not_block_the_daemon(tmp_path):
    fifo = tmp_path / "annex.pdf"
    os.mkfifo(fifo)
    done = threading.Event()

    def attempt():
        with pytest.raises(InputError, match="not a regular file"):
            fsutil.open_sendable(fifo)
        done.set()

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(5)
    assert done.is_set()


def test_pack_still_follows_a_symlink_the_operator_typed(tmp_path):
    """Operators' own links on the command line are their choice: resolved, name kept."""
    from connector.cli import main

    real = tmp_path / "real-scan.pdf"
    real.write_bytes(b"%PDF-1.7 operator")
    (tmp_path / "annex.pdf").symlink_to(real)
    metadata = dict(METADATA, **{"from": {"organ_id": "000.00.00.G22", "organ_name": "A"},
                                 "attachments": [{"file": "annex.pdf"}]})
    (tmp_path / "meta.yaml").write_text(yaml.safe_dump(metadata), encoding="utf-8")
    out = tmp_path / "out.edxml"
    code = main(["pack", str(tmp_path / "meta.yaml"), str(tmp_path / "annex.pdf"), "--out",
                 str(out), "--unsigned"])
    assert code == 0
    from connector.edxml.reader import read_package

    (attachment,) = read_package(out).package.attachments
    assert attachment.name == "annex.pdf" and attachment.read_bytes() == b"%PDF-1.7 operator"


# --------------------------------------------------------------------------- DMS database paths

def _path_check(path: Path, **mapping):
    from connector.dms.database.side import _sendable_path

    return _sendable_path(path, AttachmentsMapping(**mapping))


def test_database_file_paths_are_restricted_to_base_dir_by_default(tmp_path, secret_file):
    from connector.dms.database.rows import RowProblem

    store = tmp_path / "dms-files"
    (store / "sub").mkdir(parents=True)
    (store / "sub" / "scan.pdf").write_bytes(b"%PDF")
    assert AttachmentsMapping().restrict_to_base_dir is True
    assert _path_check(store / "sub" / "scan.pdf", base_dir=store) == (store / "sub" / "scan.pdf")

    for escape in (secret_file, store / ".." / "state" / "key.pem"):
        with pytest.raises(RowProblem, match="outside attachments.base_dir"):
            _path_check(escape, base_dir=store)
    (store / "link.pdf").symlink_to(secret_file)
    with pytest.raises(RowProblem, match="outside attachments.base_dir"):
        _path_check(store / "link.pdf", base_dir=store)
    os.link(secret_file, store / "hard.pdf")
    with pytest.raises(RowProblem, match="hard link"):
        _path_check(store / "hard.pdf", base_dir=store)
    with pytest.raises(RowProblem, match="no attachments.base_dir"):
        _path_check(store / "sub" / "scan.pdf")
    # An installation that wants any readable file says so explicitly.
    assert _path_check(Path("/etc/hostname") if Path("/etc/hostname").exists() else secret_file,
                       restrict_to_base_dir=False)


def test_a_symlink_inside_base_dir_is_sent_as_the_file_it_names(tmp_path):
    store = tmp_path / "dms-files"
    store.mkdir()
    (store / "v2.pdf").write_bytes(b"%PDF v2")
    (store / "current.pdf").symlink_to(store / "v2.pdf")
    resolved = _path_check(store / "current.pdf", base_dir=store)
    assert resolved == store / "v2.pdf"
    with fsutil.open_sendable(resolved) as handle:
        assert handle.read() == b"%PDF v2"
