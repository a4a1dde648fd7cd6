"""Readiness, claiming by rename, crash recovery and the items handed to the core."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from connector.dms.base import OutgoingKind
from connector.dms.folder.claims import ClaimName
from connector.dms.folder.side import FolderSide
from connector.errors import ConfigError, InputError

from .conftest import drop_bundle, drop_file, minimal_metadata


def names(items):
    return sorted(item.display_name for item in items)


def test_ready_package_is_claimed_into_work_and_temporary_names_are_ignored(side, exchange):
    outbox = exchange / "outbox"
    drop_file(outbox / "cv-7816.edxml", b"<edXML>1</edXML>")
    (outbox / "half.edxml.part").write_bytes(b"<ed")
    (outbox / "half.edxml.tmp").write_bytes(b"<ed")
    (outbox / ".hidden.edxml").write_bytes(b"<ed")
    (outbox / "notes.txt").write_bytes(b"not an item")

    items = side.claim_ready()

    assert sorted(item.display_name for item in items) == ["cv-7816.edxml", "notes.txt"]
    [item] = [item for item in items if item.display_name == "cv-7816.edxml"]
    assert item.kind is OutgoingKind.PACKAGE and item.problem is None and item.source == "folder"
    assert item.package_path.parent == exchange / "work"
    assert item.package_path.read_bytes() == b"<edXML>1</edXML>"
    assert not (outbox / "cv-7816.edxml").exists()
    # A file of an unknown kind is claimed to be refused with its reason (it ends in failed/).
    [notes] = [item for item in items if item.display_name == "notes.txt"]
    assert "not a kind of item the outbox takes" in notes.problem.one_line()
    assert sorted(p.name for p in outbox.iterdir()) == sorted(
        [".hidden.edxml", "half.edxml.part", "half.edxml.tmp", "statuses"])
    assert side.claim_ready() == []  # handed out once


def test_bundle_needs_document_yaml_or_ready_marker(side, exchange):
    outbox = exchange / "outbox"
    drop_bundle(outbox, "being-written", {"a.pdf": b"%PDF"}, None)
    assert side.claim_ready() == []

    (outbox / "being-written" / ".ready").touch()
    (items,) = [side.claim_ready()]
    assert names(items) == ["being-written"]
    assert isinstance(items[0].problem, InputError)  # marker but no document.yaml
    assert "document.yaml" in items[0].problem.one_line()


def test_bundle_loads_metadata_and_attachments_in_metadata_order(side, exchange):
    metadata = minimal_metadata(attachments=[{"file": "z-main.pdf"}, {"file": "a-annex.docx"}])
    drop_bundle(exchange / "outbox", "cv-1", {"a-annex.docx": b"D", "z-main.pdf": b"P",
                                              "ignored.txt": b"x"}, metadata)
    (item,) = side.claim_ready()
    assert item.kind is OutgoingKind.DOCUMENT and item.problem is None
    assert item.metadata.subject == "Về việc góp ý dự thảo"
    assert [path.name for path in item.attachment_files] == ["z-main.pdf", "a-annex.docx"]
    assert all(path.parent.parent == exchange / "work" for path in item.attachment_files)


def test_bundle_without_listed_attachments_sends_every_other_file_sorted(side, exchange):
    drop_bundle(exchange / "outbox", "cv-2",
                {"b.pdf": b"B", "Công văn.pdf": b"C", "a.docx": b"A", ".DS_Store": b""},
                minimal_metadata())
    (item,) = side.claim_ready()
    assert [path.name for path in item.attachment_files] == ["a.docx", "b.pdf", "Công văn.pdf"]


def test_invalid_document_yaml_is_claimed_with_a_problem_naming_file_and_field(side, exchange):
    drop_bundle(exchange / "outbox", "bad", {"a.pdf": b"%PDF"}, minimal_metadata(subject=None))
    (item,) = side.claim_ready()
    assert item.metadata is None
    message = item.problem.one_line()
    assert message.startswith("bad/document.yaml: ") and "subject" in message
    assert (exchange / "work" / item.source_ref).is_dir()  # claimed, nothing lost


def test_missing_attachment_is_a_problem_naming_the_entry(side, exchange):
    metadata = minimal_metadata(attachments=[{"file": "present.pdf"}, {"file": "missing.pdf"}])
    drop_bundle(exchange / "outbox", "cv-3", {"present.pdf": b"P"}, metadata)
    (item,) = side.claim_ready()
    assert item.problem is not None
    assert item.problem.element == "attachments.1.file" and "missing.pdf" in item.problem.message
    assert item.problem.file == "cv-3/document.yaml"


def test_attachment_outside_the_bundle_is_refused(side, exchange):
    (exchange / "secret.txt").write_text("s")
    metadata = minimal_metadata(attachments=[{"file": "../../secret.txt"}])
    drop_bundle(exchange / "outbox", "escape", {}, metadata)
    (item,) = side.claim_ready()
    assert item.problem is not None and "inside the bundle" in item.problem.message


def test_status_drop_is_loaded_as_a_status_request(side, exchange):
    drop_file(exchange / "outbox" / "statuses" / "ack-1.yaml", yaml.safe_dump(
        {"code": 3, "document_id": "000.00.00.G22,2026/11/23,7816/VPCP-TTĐT",
         "description": "Đã tiếp nhận", "staff": {"staff": "Nguyễn Văn A"}},
        allow_unicode=True).encode())
    drop_file(exchange / "outbox" / "statuses" / "bad.json", b'{"code": "99", "document_id": "x"}')
    items = {item.display_name: item for item in side.claim_ready()}
    good = items["statuses/ack-1.yaml"]
    assert good.kind is OutgoingKind.STATUS and good.problem is None
    assert good.status.code == "03" and good.status.staff["staff"] == "Nguyễn Văn A"
    assert good.source_ref.startswith("statuses/")
    bad = items["statuses/bad.json"]
    assert bad.kind is OutgoingKind.STATUS and bad.problem is not None
    assert bad.problem.file == "statuses/bad.json" and "code" in bad.problem.message


def test_source_ref_is_unique_when_the_dms_reuses_a_name(side, exchange):
    drop_file(exchange / "outbox" / "weekly.edxml", b"first")
    (first,) = side.claim_ready()
    drop_file(exchange / "outbox" / "weekly.edxml", b"second")
    (second,) = side.claim_ready()
    assert first.display_name == second.display_name == "weekly.edxml"
    assert first.source_ref != second.source_ref
    assert first.package_path.read_bytes() == b"first"
    assert second.package_path.read_bytes() == b"second"
    claim = ClaimName.parse(first.source_ref)
    assert claim.instance == "node1" and claim.name == "weekly.edxml"
    assert claim.claimed_at == first.claimed_at


def test_limit_is_respected_and_the_rest_stays_in_the_outbox(side, exchange):
    for number in range(5):
        drop_file(exchange / "outbox" / f"doc-{number}.edxml")
    assert len(side.claim_ready(limit=2)) == 2
    assert len(list((exchange / "outbox").glob("*.edxml"))) == 3
    assert len(side.claim_ready()) == 3


def test_crash_recovery_returns_unfinished_claims_again(exchange):
    first = FolderSide(exchange, instance="node1")
    drop_file(exchange / "outbox" / "a.edxml")
    drop_bundle(exchange / "outbox", "b", {"x.pdf": b"x"}, minimal_metadata())
    claimed = first.claim_ready()
    first.close()  # the process dies: its items stay in work/

    restarted = FolderSide(exchange, instance="node1")
    try:
        recovered = restarted.claim_ready()
        assert {item.source_ref for item in recovered} == {item.source_ref for item in claimed}
        assert {item.display_name for item in recovered} == {"a.edxml", "b"}
        assert restarted.claim_ready() == []
        # another instance never takes node1's claims
        with FolderSide(exchange, instance="node2") as other:
            assert other.claim_ready() == []
    finally:
        restarted.close()


def test_second_process_with_the_same_instance_name_is_refused(side, exchange):
    with pytest.raises(ConfigError, match="another connector with instance name 'node1'"):
        FolderSide(exchange, instance="node1")


def test_concurrent_claims_from_two_instances_never_claim_an_item_twice(exchange):
    count = 200
    sides = [FolderSide(exchange, instance=f"node{index}") for index in range(2)]
    for number in range(count):
        drop_file(exchange / "outbox" / f"doc-{number:03d}.edxml", str(number).encode())
    results: list[list] = [[], []]
    start = threading.Barrier(2)

    def work(index: int) -> None:
        start.wait()
        while True:
            batch = sides[index].claim_ready(limit=7)
            if not batch:
                if not any((exchange / "outbox").glob("*.edxml")):
                    return
                continue
            results[index].extend(batch)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for folder_side in sides:
        folder_side.close()

    claimed = [item.display_name for batch in results for item in batch]
    assert len(claimed) == count and len(set(claimed)) == count
    assert all(results), "both instances should have won some races"
    contents = {item.package_path.read_bytes() for batch in results for item in batch}
    assert len(contents) == count


def test_settle_seconds_waits_until_the_entry_stops_changing(exchange):
    with FolderSide(exchange, instance="slow", settle_seconds=0.3) as side:
        growing = exchange / "outbox" / "no-rename.edxml"
        growing.write_bytes(b"<edXML>")  # written in place by a DMS that cannot rename
        assert side.claim_ready() == []
        with open(growing, "ab") as handle:
            handle.write(b"</edXML>")
        assert side.claim_ready() == []
        deadline = time.monotonic() + 10
        while not (claimed := side.claim_ready()):  # taken once unchanged for settle_seconds
            assert time.monotonic() < deadline, "never claimed"
            time.sleep(0.02)
        (item,) = claimed
        assert item.package_path.read_bytes() == b"<edXML></edXML>"


def test_settle_seconds_takes_an_old_untouched_entry_at_once(exchange):
    old = exchange / "outbox"
    with FolderSide(exchange, instance="slow", settle_seconds=60) as side:
        path = old / "left-overnight.edxml"
        path.write_bytes(b"x")
        past = time.time() - 3600
        os.utime(path, (past, past))
        assert [item.display_name for item in side.claim_ready()] == ["left-overnight.edxml"]


def test_symlinked_entries_are_not_taken(side, exchange, tmp_path: Path):
    target = tmp_path / "elsewhere.edxml"
    target.write_bytes(b"x")
    (exchange / "outbox" / "link.edxml").symlink_to(target)
    (exchange / "outbox" / "statuses" / "link.yaml").symlink_to(target)
    items = side.claim_ready()
    assert sorted(item.display_name for item in items) == ["link.edxml", "statuses/link.yaml"]
    for item in items:
        assert "is a symbolic link (links are not followed)" in item.problem.one_line()
        assert item.package_path is None and item.status is None
    assert target.read_bytes() == b"x" and not (exchange / "outbox" / "link.edxml").is_symlink()
