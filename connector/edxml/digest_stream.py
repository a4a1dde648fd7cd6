"""Digest a huge edXML package without holding its attachments in memory (low-memory verify).

Why: a received package may be 250 MB, nearly all of it base64 in ``ContentTransferEncoded``.
signxml serialises and re-parses the whole document several times (≈ 9× the attachment in RSS).
The reference digest of an enveloped signature is the hash of the canonical form of the
document; canonical XML leaves base64 text untouched (it escapes only ``&``, ``<``, ``>`` and
CR in text). So the canonical bytes are "the canonical form of a small tree in which each long
base64 text is replaced by a unique placeholder", with the original text spliced back in where
each placeholder is — and the original text can be streamed from where it already is.

Two ways to lift long texts out, both giving :class:`Lift` objects the digest splices back:

- :func:`find_base64_runs` + :func:`parse_with_placeholders`: from the *raw bytes* (a file or a
  bytes object), before parsing. A run is a maximal stretch of base64 characters (letters,
  digits, ``+/=``, space, tab, CR, LF — no ``&``, so no reference) directly between ``>`` and
  ``<``; CRs are turned into LFs when it is digested, as the parser would have done. The parser
  is fed the bytes with each run replaced by its placeholder, so the tree never holds it and the
  digest later reads it from the source again (peak memory: the small tree plus buffers).
  Only for UTF-8/ASCII documents (where such a byte run *is* those characters).
- :func:`lift_long_texts`: from an already parsed tree (e.g. one the reader had to repair):
  long element texts without characters C14N would escape are moved into Python strings.

Whatever the way, :func:`spliced_digest` refuses (returns None) unless every placeholder occurs
exactly once, in order, in the canonical bytes — so a placeholder that landed somewhere C14N
drops or duplicates cannot yield a wrong digest; the caller then falls back to signxml.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from connector.edxml.xmlparse import hardened_parser

#: Texts at least this long are lifted (smaller ones cost nothing worth saving).
LIFT_THRESHOLD = 1 << 20
_IO_CHUNK = 1 << 20
_RUN_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \t\n\r"
_C14N_ESCAPED = re.compile(r"[&<>\r]")
_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_SAFE_ENCODINGS = {"utf-8", "utf8", "us-ascii", "ascii"}


class ByteSource:
    """Random access to the package bytes: a bytes-like object (no copy) or an open file
    (``os.pread``: nothing is kept)."""

    def __init__(self, data: bytes | None = None, path: Path | None = None) -> None:
        self._view: memoryview | None = None
        self._fd: int | None = None
        if data is not None:
            self._view = memoryview(data)
            self.size = len(self._view)
        elif path is not None:
            self._fd = os.open(path, os.O_RDONLY)
            self.size = os.fstat(self._fd).st_size
        else:
            raise ValueError("give the bytes or the path of the package")

    @classmethod
    def of(cls, source: bytes | Path) -> ByteSource:
        return cls(path=source) if isinstance(source, Path) else cls(data=source)

    def read(self, offset: int, length: int) -> bytes | memoryview:
        if self._view is not None:
            return self._view[offset:offset + length]
        if self._fd is None:
            raise ValueError("the package file is closed")
        return os.pread(self._fd, length, offset)

    def iter_range(self, offset: int, length: int, chunk: int = _IO_CHUNK) -> Iterator[bytes | memoryview]:
        end = offset + length
        while offset < end:
            piece = self.read(offset, min(chunk, end - offset))
            if not len(piece):
                raise OSError(f"the package shrank while it was being read (at byte {offset})")
            yield piece
            offset += len(piece)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Lift:
    """One long text taken out of the tree: the placeholder standing in for it, and where its
    canonical bytes come from — a byte range of the source, or a string kept aside."""

    placeholder: str
    offset: int = 0
    length: int = 0
    text: str | None = None

    def pieces(self, source: ByteSource | None) -> Iterator[bytes | memoryview]:
        if self.text is not None:
            for start in range(0, len(self.text), _IO_CHUNK):
                yield self.text[start:start + _IO_CHUNK].encode("utf-8")
            return
        assert source is not None
        yield from _normalised_newlines(source.iter_range(self.offset, self.length))


def _normalised_newlines(pieces: Iterator[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """The bytes as the parser sees them: CRLF and a lone CR become LF (XML end-of-line
    handling), also when a CRLF is split between two pieces."""
    pending_cr = False
    for piece in pieces:
        if pending_cr:
            yield b"\n"
            if piece[:1] == b"\n":
                piece = piece[1:]
            pending_cr = False
        if b"\r" not in (data := bytes(piece) if isinstance(piece, memoryview) else piece):
            yield piece
            continue
        if data.endswith(b"\r"):
            data, pending_cr = data[:-1], True
        yield data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if pending_cr:
        yield b"\n"


def new_token() -> str:
    """A placeholder prefix made of letters and digits only (valid in any text, comment or PI)."""
    return "edxmlLift" + uuid.uuid4().hex


def placeholder(token: str, index: int) -> str:
    return f"{token}N{index}Z"


def ascii_compatible(source: ByteSource) -> bool:
    """True when a byte run of base64 characters in the source is exactly those characters:
    UTF-8 (the only encoding edXML uses) or ASCII, declared or by default."""
    head = bytes(source.read(0, 1024))
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00", b"\x4c\x6f\xa7\x94")) or b"\x00" in head[:4]:
        return False
    match = _ENCODING.match(head)
    return match is None or match.group(1).decode("ascii").lower() in _SAFE_ENCODINGS


def find_base64_runs(source: ByteSource, threshold: int = LIFT_THRESHOLD) -> list[tuple[int, int]]:
    """(offset, length) of every run of at least ``threshold`` base64 characters directly
    between ``>`` and ``<`` — the long texts of the document, found without parsing it.

    Read in chunks shorter than the threshold, so a qualifying run covers at least one whole
    chunk: a chunk that is all run characters just extends the current run, otherwise only its
    first and last non-run bytes matter (runs between them are shorter than a chunk). Each step
    is a C-speed ``strip``, whatever the content."""
    chunk = max(256, min(256 * 1024, threshold // 2))
    runs: list[tuple[int, int]] = []
    run_start, opener = 0, None  # where the current run began, the byte just before it
    for base in range(0, source.size, chunk):
        block = bytes(source.read(base, min(chunk, source.size - base)))
        leading = len(block) - len(block.lstrip(_RUN_BYTES))
        if leading == len(block):
            continue
        end = base + leading
        if opener == ord(">") and block[leading] == ord("<") and end - run_start >= threshold:
            runs.append((run_start, end - run_start))
        last = len(block.rstrip(_RUN_BYTES)) - 1
        run_start, opener = base + last + 1, block[last]
    return runs


def parse_with_placeholders(source: ByteSource, runs: list[tuple[int, int]], token: str, *,
                            keep_lines: bool = False, parser: etree.XMLParser | None = None
                            ) -> tuple[etree._Element, list[Lift]]:
    """Parse the source with the hardened parser, each run replaced by its placeholder.
    Raises ``etree.XMLSyntaxError`` like any parse (the caller falls back to the normal path).

    ``keep_lines`` follows each placeholder with as many line feeds as its run held, so that
    every element after it keeps its true line number (the reader's messages name lines); the
    digest must not use it (the line feeds would be digested twice)."""
    parser = parser if parser is not None else hardened_parser()
    lifts: list[Lift] = []
    position = 0
    for index, (offset, length) in enumerate(runs):
        for piece in source.iter_range(position, offset - position):
            parser.feed(bytes(piece))
        lift = Lift(placeholder(token, index), offset=offset, length=length)
        parser.feed(lift.placeholder.encode("ascii"))
        if keep_lines:
            parser.feed(b"\n" * line_breaks(source, offset, length))
        lifts.append(lift)
        position = offset + length
    for piece in source.iter_range(position, source.size - position):
        parser.feed(bytes(piece))
    root = parser.close()
    return root, lifts


def line_breaks(source: ByteSource, offset: int, length: int) -> int:
    """How many lines libxml2 counts in a byte range: its line feeds (a lone CR, though read
    as a line end, does not move libxml2's line number)."""
    return sum(bytes(piece).count(b"\n") for piece in source.iter_range(offset, length))


def put_back(root: etree._Element, token: str, lifts: list[Lift], source: ByteSource,
             wanted: Callable[[etree._Element], bool]) -> list[Lift]:
    """Restore the original text of every placeholder inside the elements ``wanted`` selects
    (those verification reads itself, e.g. the Signature: a long certificate is not worth
    streaming and must be seen as it is). Returns the lifts still standing in the tree."""
    by_marker = {lift.placeholder: lift for lift in lifts}
    restored: set[str] = set()
    for node in root.iter():
        if not wanted(node):
            continue
        for attribute in ("text", "tail"):
            value = getattr(node, attribute)
            if value and token in value:
                for marker in re.findall(re.escape(token) + r"N\d+Z", value):
                    lift = by_marker[marker]
                    text = b"".join(bytes(piece) for piece in lift.pieces(source)).decode("ascii")
                    value = value.replace(marker, text)
                    restored.add(marker)
                setattr(node, attribute, value)
    return [lift for lift in lifts if lift.placeholder not in restored]


def lift_long_texts(root: etree._Element, token: str, threshold: int = LIFT_THRESHOLD,
                    skip: Callable[[etree._Element], bool] = lambda element: False) -> list[Lift]:
    """Move each element text of at least ``threshold`` characters that C14N would write
    unchanged into a :class:`Lift`, leaving its placeholder in the tree (libxml2 frees the text)."""
    lifts: list[Lift] = []
    for element in root.iter():
        if not isinstance(element.tag, str) or skip(element):
            continue
        text = element.text
        if text is not None and len(text) >= threshold and not _C14N_ESCAPED.search(text):
            lift = Lift(placeholder(token, len(lifts)), text=text)
            element.text = lift.placeholder
            lifts.append(lift)
        del text
    return lifts


def spliced_digest(canonical: bytes, lifts: list[Lift], hasher, source: ByteSource | None) -> bytes | None:
    """The digest of ``canonical`` with each placeholder replaced by its original text; None
    when a placeholder does not occur exactly once, in order (the result would be wrong)."""
    position = 0
    spans = []
    for lift in lifts:
        marker = lift.placeholder.encode("ascii")
        if canonical.count(marker) != 1:
            return None
        found = canonical.find(marker)
        if found < position:
            return None
        spans.append((position, found, lift))
        position = found + len(marker)
    for start, found, lift in spans:
        hasher.update(canonical[start:found])
        for piece in lift.pieces(source):
            hasher.update(piece)
    hasher.update(canonical[position:])
    return hasher.digest()
