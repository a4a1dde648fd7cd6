"""An attachment's base64 text left where it is, in the package file, and decoded in pieces.

Why: a received package may carry a 150 MB scan as 200 MB of base64. Parsed whole, the text
lives in the tree, then again as the decoded bytes, then once more in every copy a consumer
makes (the receiving daemon peaked at 669 MB for that package). The reader instead parses the
file with each long base64 run replaced by a placeholder (:mod:`connector.edxml.lifted_package`)
and gives the attachment an :class:`EncodedContent`: the byte ranges of its text in the file.
Whoever needs the bytes streams them (:meth:`EncodedContent.chunks`), a megabyte at a time.

The checks the in-memory decoder makes are made here too, on the stream: the text is scanned
once when the package is read, so a damaged attachment is refused at reading time as before,
and its size and SHA-256 are known without holding it. Padding errors are judged exactly as
the in-memory decoder judges them: padding only at the end, a wrong amount of it recovered
with a warning, a length that cannot be base64 refused.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from connector.edxml.digest_stream import ByteSource

_WHITESPACE = b" \t\r\n"
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/= \t\r\n]")
_PIECE = 1 << 20

#: A segment of an attachment's text: a literal string (what was not lifted, e.g. the text
#: around a comment), or an ``(offset, length)`` byte range of the package file.
Segment = str | tuple[int, int]


class Base64Problem(ValueError):
    """Why the text is not base64; ``position`` is the character index in a literal segment,
    when the problem is a character (None for a length or padding problem)."""

    def __init__(self, message: str, *, segment: int | None = None,
                 position: int | None = None) -> None:
        super().__init__(message)
        self.segment = segment
        self.position = position


@dataclass
class EncodedContent:
    """The base64 text of one attachment, as segments of the package file at ``path``.

    Made by :meth:`scanned`, which decodes the whole text once (in pieces) to check it and to
    learn ``size`` and ``sha256``; ``padding_recovered`` says that the padding was wrong and
    the text was read as if it were right (the reader warns)."""

    path: Path
    segments: tuple[Segment, ...]
    size: int = 0
    sha256: str = ""
    padding_recovered: bool = False

    @classmethod
    def scanned(cls, path: Path, segments: Iterable[Segment]) -> EncodedContent:
        content = cls(Path(path), tuple(segments))
        for index, segment in enumerate(content.segments):
            if isinstance(segment, str) and (bad := _NOT_BASE64.search(segment)):
                raise Base64Problem(f"unexpected {segment[bad.start():bad.start() + 12]!r}",
                                    segment=index, position=bad.start())
        digest = hashlib.sha256()
        decoder = Base64Decoder()
        for chunk in decoder.decode(content._text_pieces()):
            content.size += len(chunk)
            digest.update(chunk)
        content.sha256 = digest.hexdigest()
        content.padding_recovered = decoder.padding_recovered
        return content

    def chunks(self) -> Iterator[bytes]:
        """The decoded bytes, a piece at a time (about ¾ MB each)."""
        return Base64Decoder().decode(self._text_pieces())

    def _text_pieces(self) -> Iterator[bytes]:
        with ByteSource(path=self.path) as source:
            for segment in self.segments:
                if isinstance(segment, str):
                    yield segment.encode("ascii")
                    continue
                offset, length = segment
                for piece in source.iter_range(offset, length, _PIECE):
                    yield bytes(piece)


class Base64Decoder:
    """Base64 decoding of a text that arrives in pieces, with the in-memory decoder's rules."""

    def __init__(self) -> None:
        self.padding_recovered = False

    def decode(self, pieces: Iterable[bytes]) -> Iterator[bytes]:
        pending = b""  # characters not yet a multiple of four
        padding = 0  # '=' seen so far: nothing but '=' may follow the first one
        for piece in pieces:
            text = piece.translate(None, _WHITESPACE)
            if not text:
                continue
            if padding:
                if text.strip(b"="):
                    raise _wrong_padding()
                padding += len(text)
                continue
            cut = text.find(b"=")
            if cut >= 0:
                if text[cut:].strip(b"="):
                    raise _wrong_padding()
                padding, text = len(text) - cut, text[:cut]
            text = pending + text
            usable = len(text) - len(text) % 4
            pending = text[usable:]
            if usable:
                yield _decode(text[:usable])
        rest = len(pending)
        if rest == 1:
            raise _wrong_padding()
        if (rest, padding) not in ((0, 0), (2, 2), (3, 1)):
            self.padding_recovered = True
        if rest:
            yield _decode(pending + b"=" * (4 - rest))


def _decode(text: bytes) -> bytes:
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error as error:  # pragma: no cover - the characters were checked before
        raise Base64Problem(f"not base64 ({error})") from error


def _wrong_padding() -> Base64Problem:
    return Base64Problem("the length or padding is wrong")
