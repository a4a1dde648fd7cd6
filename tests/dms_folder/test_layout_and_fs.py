"""The tree at start (modes, same filesystem) and the durable file helpers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from connector import fsutil
from connector.dms.folder.side import FolderSide
from connector.errors import ConfigError

SHM = Path("/dev/shm")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_layout_is_created_with_group_modes_even_under_a_strict_umask(exchange):
    previous = os.umask(0o077)
    try:
        with FolderSide(exchange, instance="n"):
            pass
    finally:
        os.umask(previous)
    for shared in ("outbox", "outbox/statuses", "inbox"):
        assert mode_of(exchange / shared) == 0o2770, shared
    for private in ("work", "sent", "failed", "quarantine"):
        assert mode_of(exchange / private) == 0o2750, private


def test_existing_folder_with_missing_group_bits_is_fixed_and_reported(exchange):
    (exchange / "outbox").mkdir(parents=True)
    os.chmod(exchange / "outbox", 0o700)
    with FolderSide(exchange, instance="n") as side:
        assert mode_of(exchange / "outbox") == 0o2770
        assert any("outbox" in warning and "0700" in warning for warning in side.start_warnings)


def test_a_file_where_a_folder_belongs_is_refused(exchange):
    exchange.mkdir()
    (exchange / "sent").write_text("oops")
    with pytest.raises(ConfigError, match="not a directory"):
        FolderSide(exchange, instance="n")


@pytest.mark.skipif(not SHM.is_dir() or fsutil.same_filesystem(SHM, Path(__file__)),
                    reason="needs /dev/shm on another filesystem than the tests")
def test_work_on_another_filesystem_is_refused_with_a_clear_message(exchange, tmp_path):
    elsewhere = Path(os.path.join(SHM, f"edxml-test-{os.getpid()}-{tmp_path.name}"))
    elsewhere.mkdir()
    try:
        exchange.mkdir()
        (exchange / "work").symlink_to(elsewhere)  # a real second filesystem (tmpfs)
        with pytest.raises(ConfigError) as caught:
            FolderSide(exchange, instance="n")
        message = caught.value.one_line()
        assert "work/ is on another filesystem than outbox/" in message
        assert "same filesystem" in message
    finally:
        for path in sorted(elsewhere.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        elsewhere.rmdir()


def test_same_filesystem_check_uses_the_device_of_each_folder(exchange, monkeypatch):
    real = fsutil.device_of

    def fake(path):
        return -1 if Path(path).name == "failed" else real(path)

    monkeypatch.setattr(fsutil, "device_of", fake)
    with pytest.raises(ConfigError, match="failed/ is on another filesystem"):
        FolderSide(exchange, instance="n")


def test_bad_instance_name_is_refused(exchange):
    with pytest.raises(ConfigError, match="instance name"):
        FolderSide(exchange, instance="a--b")


# ------------------------------------------------------------------------------- fsutil

def test_atomic_write_replaces_content_with_explicit_mode(tmp_path):
    target = tmp_path / "r.json"
    previous = os.umask(0o077)
    try:
        fsutil.atomic_write(target, "one")
        fsutil.atomic_write(target, "two")
    finally:
        os.umask(previous)
    assert target.read_text() == "two" and mode_of(target) == 0o640
    assert [path.name for path in tmp_path.iterdir()] == ["r.json"]  # no temporaries left


def test_durable_rename_never_replaces_an_existing_target(tmp_path):
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    with pytest.raises(FileExistsError):
        fsutil.durable_rename(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b").read_text() == "b"
    with pytest.raises(FileNotFoundError):
        fsutil.durable_rename(tmp_path / "gone", tmp_path / "c")


def test_publish_directory_keeps_the_first_and_drops_the_second(tmp_path):
    final = tmp_path / "item"
    for content in ("first", "second"):
        staging = tmp_path / f".item.tmp-{content}"
        staging.mkdir()
        fsutil.write_file_durably(staging / "f", content.encode())
        published = fsutil.publish_directory(staging, final)
        assert published == (content == "first")
        assert not staging.exists()
    assert (final / "f").read_text() == "first"


def test_append_line_closes_a_torn_record(tmp_path):
    log = tmp_path / "x.jsonl"
    fsutil.append_line(log, b'{"a":1}')
    with open(log, "ab") as handle:
        handle.write(b'{"half')
    fsutil.append_line(log, b'{"b":2}')
    assert log.read_bytes() == b'{"a":1}\n{"half\n{"b":2}\n'
