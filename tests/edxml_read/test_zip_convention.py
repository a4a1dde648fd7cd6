"""The ZIP convention: outgoing parts, and extraction of received parts within limits."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile

import pytest

from connector.edxml.attachments import (
    ZipConvention,
    ZipLimits,
    extract_zip_part,
    guess_content_type,
    is_zip_convention_part,
    prepare_outgoing,
)
from connector.edxml.model import Attachment
from connector.edxml.reader import read_package
from connector.errors import InputError

XLINK_SHA256 = "8385739ec4a4ed36d71eabcaead629641ffc5ffff3d487ff5c34d2f821c9f36e"


def zip_bytes(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def part(data: bytes, name: str = "report.txt") -> Attachment:
    return Attachment(name=name, content_type="application/zip", data=data)


# ---- outgoing -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, content_type", [
    ("quyet-dinh.pdf", "application/pdf"),
    ("to-trinh.DOC", "application/msword"),
    ("bao-cao.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("so-lieu.xls", "application/vnd.ms-excel"),
    ("so-lieu.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("ho-so.zip", "application/zip"),
])
def test_as_is_types_keep_their_bytes_and_mime_type(name, content_type):
    attachment = prepare_outgoing(name, data=b"original bytes", description="d")
    assert (attachment.name, attachment.content_type, attachment.data) == (
        name, content_type, b"original bytes")
    assert attachment.description == "d"


def test_other_types_become_a_one_entry_zip_named_after_the_original():
    attachment = prepare_outgoing("Phụ lục số liệu.txt", data=b"x" * 5000)
    assert attachment.name == "Phụ lục số liệu.txt"
    assert attachment.content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(attachment.data)) as archive:
        [info] = archive.infolist()
        assert info.filename == "Phụ lục số liệu.txt"
        assert archive.read(info) == b"x" * 5000
    # and the receiver's side unzips it back
    extraction = extract_zip_part(attachment)
    assert extraction.extracted
    assert [(e.name, e.data) for e in extraction.entries] == [("Phụ lục số liệu.txt", b"x" * 5000)]


def test_zipping_from_a_path_streams_the_file(tmp_path):
    source = tmp_path / "ban-ve.dwg"
    source.write_bytes(bytes(range(256)) * 1000)
    attachment = prepare_outgoing("ban-ve.dwg", path=source)
    assert attachment.content_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(attachment.data)) as archive:
        assert archive.read("ban-ve.dwg") == source.read_bytes()


def test_as_is_from_a_path_keeps_the_path(tmp_path):
    source = tmp_path / "a.pdf"
    source.write_bytes(b"%PDF")
    attachment = prepare_outgoing("a.pdf", path=source)
    assert attachment.path == source and attachment.data is None
    assert attachment.read_bytes() == b"%PDF"


def test_convention_is_a_setting():
    off = ZipConvention(enabled=False)
    assert prepare_outgoing("notes.txt", data=b"hi", convention=off).content_type == "text/plain"
    custom = ZipConvention(as_is_extensions=frozenset({"txt"}))
    assert prepare_outgoing("notes.txt", data=b"hi", convention=custom).data == b"hi"
    assert prepare_outgoing("a.pdf", data=b"%", convention=custom).content_type == "application/zip"
    assert prepare_outgoing("a.pdf", data=b"%", content_type="application/x-pdf").content_type \
        == "application/x-pdf"


def test_outgoing_input_errors(tmp_path):
    with pytest.raises(InputError):
        prepare_outgoing("a.pdf")
    with pytest.raises(InputError):
        prepare_outgoing("a.pdf", data=b"", path=tmp_path / "a.pdf")
    with pytest.raises(InputError):
        prepare_outgoing("a.pdf", path=tmp_path / "missing.pdf")
    with pytest.raises(InputError):
        prepare_outgoing("  ", data=b"x")


def test_guess_content_type_falls_back_to_octet_stream():
    assert guess_content_type("README") == "application/octet-stream"
    assert guess_content_type("scan.JPG") == "image/jpeg"


# ---- which parts are unzipped ---------------------------------------------------------------

def test_rule_zip_type_without_zip_name():
    assert is_zip_convention_part(part(b"", "a.doc"))
    assert not is_zip_convention_part(part(b"", "hoso.ZIP"))
    assert not is_zip_convention_part(Attachment(name="a.pdf", content_type="application/pdf"))
    extraction = extract_zip_part(part(zip_bytes({"x": b"y"}), "hoso.zip"))
    assert (extraction.extracted, extraction.problems, extraction.entries) == (False, [], [])


def test_the_sdk_sample_part_unzips_to_the_handwritten_package(sample):
    [attachment] = read_package(sample("sdk-samples/edoc_new.edxml")).package.attachments
    extraction = extract_zip_part(attachment)
    assert extraction.extracted and extraction.problems == []
    [entry] = extraction.entries
    assert entry.original_name == "32da2890-1a55-4ccd-9ac9-cd0d98559e67.edxml"
    assert entry.name == entry.original_name
    assert entry.size == 388347
    assert entry.sha256 == XLINK_SHA256
    assert entry.content_type == "application/xml"
    assert hashlib.sha256(entry.data).hexdigest() == XLINK_SHA256


def test_a_normal_multi_entry_zip_extracts_with_unique_safe_names():
    data = zip_bytes({"docs/a.txt": b"A", "docs/": b"", "Docs_a.txt": b"B", "b.pdf": b"%PDF"})
    extraction = extract_zip_part(part(data))
    assert extraction.extracted
    assert [(e.name, e.original_name, e.data) for e in extraction.entries] == [
        ("docs_a.txt", "docs/a.txt", b"A"), ("Docs_a (2).txt", "Docs_a.txt", b"B"),
        ("b.pdf", "b.pdf", b"%PDF")]


# ---- hostile parts: reported, never extracted -----------------------------------------------

def test_zip_bomb_by_ratio():
    bomb = zip_bytes({"zeros.txt": b"\0" * (8 * 1024 * 1024)})
    extraction = extract_zip_part(part(bomb))
    assert not extraction.extracted and extraction.entries == []
    assert any("compression ratio" in p for p in extraction.problems)


def test_zip_bomb_by_total_size():
    data = zip_bytes({f"f{i}.bin": bytes(range(256)) * 400 for i in range(5)})
    extraction = extract_zip_part(part(data), ZipLimits(max_total_size=300_000))
    assert not extraction.extracted and any("unpack to" in p for p in extraction.problems)


def test_per_entry_limit():
    data = zip_bytes({"a.bin": b"a" * 2000})
    extraction = extract_zip_part(part(data), ZipLimits(max_entry_size=1000))
    assert not extraction.extracted and any("per-entry" in p or "limit of 1000" in p
                                            for p in extraction.problems)


def test_too_many_entries():
    data = zip_bytes({f"f{i}.txt": b"x" for i in range(30)})
    extraction = extract_zip_part(part(data), ZipLimits(max_entries=20))
    assert not extraction.extracted and any("30 entries" in p for p in extraction.problems)


@pytest.mark.parametrize("evil", ["../evil.txt", "a/../../evil.txt", "/etc/cron.d/evil",
                                  "C:/Windows/evil.dll", "c:evil", "..\\evil.txt",
                                  "a\\b.txt"])
def test_path_escapes_are_not_extracted(evil):
    data = zip_bytes({"ok.txt": b"fine", evil: b"owned"})
    extraction = extract_zip_part(part(data))
    assert not extraction.extracted and extraction.entries == []
    assert any(repr(evil) in p for p in extraction.problems)


def test_encrypted_entry_is_not_extracted():
    data = bytearray(zip_bytes({"secret.txt": b"s" * 100}, compression=zipfile.ZIP_STORED))
    # set the "encrypted" flag bit in the local header and the central directory
    data[6:8] = struct.pack("<H", struct.unpack("<H", data[6:8])[0] | 1)
    central = data.rfind(b"PK\x01\x02")
    data[central + 8:central + 10] = struct.pack(
        "<H", struct.unpack("<H", data[central + 8:central + 10])[0] | 1)
    extraction = extract_zip_part(part(bytes(data)))
    assert not extraction.extracted and any("encrypted" in p for p in extraction.problems)


def test_corrupt_archive_is_kept_as_received():
    data = zip_bytes({"a.txt": b"hello world" * 100})
    corrupt = data[:40] + b"\xff" * 40 + data[80:]
    for broken in (b"not a zip at all", data[: len(data) // 2], corrupt):
        extraction = extract_zip_part(part(broken))
        assert not extraction.extracted and extraction.entries == []
        assert extraction.problems


def test_lying_directory_sizes_are_caught_while_reading():
    """The central directory claims 10 bytes; the data inflates to far more. zipfile stops at
    the declared size and the CRC check fails, so nothing is extracted."""
    payload = b"A" * 500_000
    data = bytearray(zip_bytes({"a.txt": payload}))
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = struct.pack("<I", 10)  # uncompressed size
    data[22:26] = struct.pack("<I", 10)
    extraction = extract_zip_part(part(bytes(data)))
    assert not extraction.extracted and extraction.entries == []
    assert extraction.problems


def test_empty_archive_is_reported():
    extraction = extract_zip_part(part(zip_bytes({})))
    assert not extraction.extracted and any("no file" in p for p in extraction.problems)


def test_extraction_from_a_path(tmp_path):
    path = tmp_path / "part.bin"
    path.write_bytes(zip_bytes({"a.txt": b"A"}))
    extraction = extract_zip_part(Attachment(name="a.txt", content_type="application/zip",
                                             path=path))
    assert extraction.extracted and extraction.entries[0].data == b"A"
