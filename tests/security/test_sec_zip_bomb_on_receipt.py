"""A hostile sender's zip part: 1,000 entries of 1 MB of zeros in a package of about a megabyte.
The receiver must refuse to unpack it from the central directory alone — no entry is
decompressed, nothing near a gigabyte is ever held — and keep the part as received with the
reason."""

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
