"""A hostile sender's zip part: 1,000 entries of 1 MB of zeros in a package of about a megabyte.
The receiver must refuse to unpack it from the central directory alone — no entry is
decompressed, nothing near a gigabyte is ever held — and keep the part as received with the
reason. Where the limits allow an archive, its entries go to disk one by one, and a lie found
half-way leaves no file behind."""

from __future__ import annotations

import tracemalloc
import zipfile
from pathlib import Path

import pytest

from connector.edxml.attachments import ZipLimits, extract_zip_part
from connector.edxml.model import Attachment

ENTRIES = 1000
ENTRY = b"\0" * (1024 * 1024)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for index in range(ENTRIES):
            archive.writestr(f"zeros-{index:04}.bin", ENTRY)
    return path


def _part(path: Path) -> Attachment:
    return Attachment(name="Phụ lục.txt", content_type="application/zip", content_id="1",
                      path=path)


def test_a_thousand_entry_zip_of_zeros_is_kept_unextracted_in_bounded_memory(bomb):
    assert bomb.stat().st_size < 2 * 1024 * 1024  # the package a hostile sender sends is small
    tracemalloc.start()
    try:
        extraction = extract_zip_part(_part(bomb), ZipLimits(package_size=bomb.stat().st_size))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not extraction.extracted and extraction.entries == []
    assert any("1000 entries, more than the limit of 500" in p for p in extraction.problems)
    assert any("more than the limit of" in p and "unpack to" in p for p in extraction.problems)
    assert peak < 16 * 1024 * 1024


def test_within_the_entry_count_the_package_relative_cap_still_refuses(bomb, tmp_path):
    """The same attack with 400 entries (under the count limit): 400 MB from a 0.4 MB package."""
    path = tmp_path / "smaller.zip"
    with zipfile.ZipFile(bomb) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist()[:400]:
            target.writestr(info, source.read(info), compress_type=zipfile.ZIP_DEFLATED)
    extraction = extract_zip_part(_part(path), ZipLimits(package_size=path.stat().st_size))
    assert not extraction.extracted
    [problem] = extraction.problems
    assert "entries unpack to 419430400 bytes" in problem and "zip bomb" in problem


def test_with_the_limits_raised_the_entries_go_to_disk_one_by_one(bomb, tmp_path):
    """An operator who expects such archives raises the limits: then the entries are unpacked
    one at a time into files, never into memory (100 of the 1 MB entries here)."""
    path = tmp_path / "hundred.zip"
    with zipfile.ZipFile(bomb) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist()[:100]:
            target.writestr(info, source.read(info), compress_type=zipfile.ZIP_DEFLATED)
    raised = ZipLimits(max_entries=2000, max_total_size=2 << 30, max_ratio=5000,
                       max_expansion=5000, package_size=path.stat().st_size)
    into = tmp_path / "unpacked"
    into.mkdir()
    tracemalloc.start()
    try:
        extraction = extract_zip_part(_part(path), raised, into=into)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert extraction.extracted and len(extraction.entries) == 100
    assert all(entry.data is None and entry.path.stat().st_size == len(ENTRY)
               for entry in extraction.entries)
    assert sorted(p.name for p in into.iterdir()) == sorted(e.path.name for e in extraction.entries)
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_an_entry_that_lies_about_its_size_leaves_no_file_behind(tmp_path):
    """Two entries; the central directory understates the second one's size, so the first is
    already on disk when the lie is found: it is removed, the part kept as received."""
    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("first.txt", b"a" * 100_000)
        archive.writestr("second.txt", b"b" * 100_000)
    data = bytearray(path.read_bytes())
    second = data.rindex(b"PK\x01\x02")  # the second entry of the central directory
    data[second + 24:second + 28] = (10).to_bytes(4, "little")  # "unpacks to 10 bytes"
    path.write_bytes(bytes(data))
    into = tmp_path / "unpacked"
    into.mkdir()
    extraction = extract_zip_part(_part(path), ZipLimits(package_size=len(data)), into=into)
    assert not extraction.extracted and extraction.entries == []
    assert extraction.problems and "kept as received" in extraction.problems[0]
    assert list(into.iterdir()) == []

