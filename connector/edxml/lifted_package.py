"""Parsing a package file with its long base64 texts left in the file.

The reader's way to read a large package in bounded memory: the file is parsed with every run
of a megabyte or more of base64 characters replaced by a placeholder (the machinery the
low-memory verifier uses, :mod:`connector.edxml.digest_stream`), and every placeholder outside
an attachment's ``ContentTransferEncoded`` is put back at once — so the tree the reader sees is
the package's own, except that the attachments' texts are still in the file, where
:class:`~connector.edxml.encoded_content.EncodedContent` reads them from.

The hardening is that of :mod:`connector.edxml.xmlparse`, in the same order: the size limit
before reading, no DOCTYPE, the depth limit. A placeholder is followed by as many line feeds as
its run held, so line numbers in messages stay true. Returns None where the whole-file path must
decide: no long run, an encoding other than UTF-8/ASCII, or undeclared prefixes (which the
reader's parse repairs). Any other syntax error is reported here, from the stream: a damaged
package of 200 MB is refused without being held.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from connector.edxml.digest_stream import (
    ByteSource,
    Lift,
    ascii_compatible,
    find_base64_runs,
    new_token,
    parse_with_placeholders,
    put_back,
)
from connector.edxml.encoded_content import Segment
from connector.edxml.xmlparse import (
    ParseLimits,
    check_depth,
    check_size,
    hardened_parser,
    refuse_doctype,
    refuse_excessive_depth,
)
from connector.errors import EdxmlError, HostilePackage

_ATTACHMENT_TEXT = "ContentTransferEncoded"
_REPAIRABLE = "NS_ERR_UNDEFINED_NAMESPACE"


@dataclass(frozen=True)
class LiftedTexts:
    """The attachment texts a lifted parse left in ``path``, by placeholder."""

    path: Path
    token: str
    lifts: dict[str, Lift]

    def segments(self, texts: list[str]) -> list[Segment] | None:
        """An element's texts as segments (literal strings and file ranges); None when no
        placeholder is in them (the text is all in the tree)."""
        if not any(self.token in text for text in texts):
            return None
        pattern = re.compile(f"({re.escape(self.token)}N\\d+Z)")
        segments: list[Segment] = []
        for text in texts:
            for part in pattern.split(text):
                lift = self.lifts.get(part)
                if lift is not None:
                    segments.append((lift.offset, lift.length))
                elif part:
                    segments.append(part)
        return segments


def parse_file_lifted(path: Path, limits: ParseLimits, *, file: str | None = None
                      ) -> tuple[etree._Element, LiftedTexts] | None:
    """The package's tree with its long attachment texts left in the file, or None (see the
    module's docstring). Raises :class:`EdxmlError` like the reader's own parse."""
    with ByteSource(path=path) as source:
        check_size(source.size, limits, file=file)
        runs = find_base64_runs(source) if ascii_compatible(source) else []
        if not runs:
            return None
        refuse_doctype(bytes(source.read(0, runs[0][0])), file=file)
        token = new_token()
        parser = hardened_parser()
        try:
            root, lifts = parse_with_placeholders(source, runs, token, keep_lines=True,
                                                  parser=parser)
        except etree.XMLSyntaxError as error:
            refuse_excessive_depth(error, limits, file=file)
            entries = [entry for entry in parser.error_log
                       if entry.level >= etree.ErrorLevels.ERROR]
            if entries and all(entry.type_name == _REPAIRABLE for entry in entries):
                return None
            first = entries[0] if entries else None
            raise EdxmlError(f"not well-formed XML: {first.message.strip() if first else error.msg}",
                             file=file, line=first.line if first else error.lineno,
                             hint="the package is damaged; ask the sender to send it again"
                             ) from error
        if root is None:
            raise EdxmlError("empty document", file=file, hint="the package has no XML content")
        if root.getroottree().docinfo.doctype:
            raise HostilePackage("document type declarations are not allowed in edXML packages",
                                 file=file, hint="ask the sender for a package without <!DOCTYPE>")
        check_depth(root, limits, file=file)
        standing = put_back(root, token, lifts, source, _outside_attachment_text)
    return root, LiftedTexts(Path(path), token, {lift.placeholder: lift for lift in standing})


def _outside_attachment_text(node: etree._Element) -> bool:
    """Not an attachment's text (nor a comment inside one, whose tail continues that text)."""
    for element in (node, node.getparent()):
        if element is not None and isinstance(element.tag, str) and \
                etree.QName(element).localname == _ATTACHMENT_TEXT:
            return False
    return True
