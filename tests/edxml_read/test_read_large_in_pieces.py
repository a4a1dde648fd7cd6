"""Large attachments read from a package file stay in the file and are decoded in pieces.

A package read from its file leaves every attachment text of a megabyte or more where it is
(``Attachment.encoded``); what the reader reports — the model, the warnings, the errors with
their lines — must be exactly what it reports for the same package read from bytes, where the
whole text is parsed and decoded in memory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tracemalloc

import pytest
from edxml_read_helpers import attachment_entry, document_xml, manifest_entry

from connector.edxml.reader import read_package
from connector.errors import EdxmlError

BIG = os.urandom(3 * 1024 * 1024 + 7)  # a length that needs padding


def _wrapped(data: bytes, width: int = 76, newline: str = "\n") -> str:
    text = base64.b64encode(data).decode()
    return newline.join(text[i:i + width] for i in range(0, len(text), width))


def _package(encoded: str, *, after: str = "") -> bytes:
    """One attachment with ``encoded`` as its text; ``after`` is an extra (unknown) element
    after the attachment, whose line the reader's warning names."""
    attachments = attachment_entry(encoded=encoded) + after
    return document_xml(manifest=manifest_entry(), attachments=attachments).encode("utf-8")


def _both(tmp_path, data: bytes):
    """(read from the file, read from the bytes) — or the two errors."""
    path = tmp_path / "package.edxml"
    path.write_bytes(data)
    outcomes = []
    for source in (path, data):
        try:
            outcomes.append(read_package(source, file="package.edxml"))
        except EdxmlError as error:
            outcomes.append(error)
    return outcomes


def test_a_large_attachment_stays_in_the_file_and_reads_back_exactly(tmp_path):
    from_file, from_bytes = _both(tmp_path, _package(base64.b64encode(BIG).decode()))
    [attachment] = from_file.package.attachments
    assert attachment.data is None and attachment.encoded is not None
    assert attachment.size == len(BIG)
    assert attachment.sha256() == hashlib.sha256(BIG).hexdigest()
    assert b"".join(attachment.chunks()) == BIG
    assert max(len(piece) for piece in attachment.chunks()) <= 1024 * 1024
    [in_memory] = from_bytes.package.attachments
    assert in_memory.data == BIG
    assert from_file.package == from_bytes.package
    assert from_file.warnings == from_bytes.warnings


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_wrapped_base64_keeps_the_line_numbers_of_what_follows(tmp_path, newline):
    data = _package(_wrapped(BIG, newline=newline), after="<Oddity>x</Oddity>")
    from_file, from_bytes = _both(tmp_path, data)
    assert from_file.package.attachments[0].encoded is not None
    assert b"".join(from_file.package.attachments[0].chunks()) == BIG
    assert any("Oddity" in warning for warning in from_file.warnings)
    assert from_file.warnings == from_bytes.warnings


def test_a_comment_inside_the_base64_splits_it_and_both_halves_are_read(tmp_path):
    text = base64.b64encode(BIG).decode()
    cut = 2 * 1024 * 1024  # a multiple of 4: both halves are long runs
    from_file, from_bytes = _both(tmp_path, _package(f"{text[:cut]}<!-- edited -->{text[cut:]}"))
    assert b"".join(from_file.package.attachments[0].chunks()) == BIG
    assert from_file.package == from_bytes.package


def test_wrong_padding_is_recovered_with_the_same_warning(tmp_path):
    text = base64.b64encode(BIG).decode().rstrip("=")
    from_file, from_bytes = _both(tmp_path, _package(text))
    assert b"".join(from_file.package.attachments[0].chunks()) == BIG
    assert any("padding was wrong" in warning for warning in from_file.warnings)
    assert from_file.warnings == from_bytes.warnings


@pytest.mark.parametrize("damage", ["padding in the middle", "impossible length",
                                    "bad character after a comment"])
def test_damaged_base64_is_refused_with_the_same_error(tmp_path, damage):
    text = base64.b64encode(BIG).decode()
    if damage == "padding in the middle":
        text = text[:1024 * 1024] + "==" + text[1024 * 1024:]
    elif damage == "impossible length":
        text = text.rstrip("=") + "A" * (5 - len(text.rstrip("=")) % 4)
        assert len(text) % 4 == 1
    else:
        text = text + "<!-- x -->\nAA!A"
    from_file, from_bytes = _both(tmp_path, _package(text))
    assert isinstance(from_file, EdxmlError) and isinstance(from_bytes, EdxmlError)
    assert "invalid base64" in str(from_file)
    assert (from_file.one_line(), from_file.line) == (from_bytes.one_line(), from_bytes.line)


def test_a_package_broken_after_a_large_attachment_is_refused_from_the_stream(tmp_path):
    data = _package(base64.b64encode(BIG).decode()).replace(b"</edXML>", b"</edXMLx>")
    from_file, from_bytes = _both(tmp_path, data)
    assert isinstance(from_file, EdxmlError) and "not well-formed" in str(from_file)
    assert from_file.line == from_bytes.line


def test_reading_a_large_package_from_its_file_holds_no_copy_of_the_attachment(tmp_path):
    """Python's own allocations while reading a 12 MB attachment (16 MB of base64) and
    streaming it: a few megabytes of pieces, never the attachment."""
    payload = os.urandom(12 * 1024 * 1024)
    path = tmp_path / "big.edxml"
    path.write_bytes(_package(base64.b64encode(payload).decode()))
    tracemalloc.start()
    try:
        [attachment] = read_package(path).package.attachments
        digest = hashlib.sha256()
        for piece in attachment.chunks():
            digest.update(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert peak < 6 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB of Python allocations"
