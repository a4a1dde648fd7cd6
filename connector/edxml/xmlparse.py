"""Hardened XML parsing: the only way bytes from outside become an lxml tree in this project.

Received packages are untrusted. The parser here never loads a DTD, never expands an entity, never
touches the network, and refuses a document type declaration outright (no legitimate edXML package
has one), so XXE and billion-laughs packages fail fast and read no file. libxml2's 10 MB text-node
limit (``huge_tree``) is lifted because scanned PDFs are normal attachments; our own limits — the
package size checked before parsing and the element depth checked after — stay in force.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from connector.errors import EdxmlError, HostilePackage, PackageTooLarge

DEFAULT_MAX_PACKAGE_SIZE = 250 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64

_DOCTYPE = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
_ROOT_START = re.compile(rb"<[A-Za-z_]")


@dataclass(frozen=True)
class ParseLimits:
    """Bounds applied to every package we parse. ``max_package_size`` is in bytes."""

    max_package_size: int = DEFAULT_MAX_PACKAGE_SIZE
    max_depth: int = DEFAULT_MAX_DEPTH


def hardened_parser(*, recover: bool = False) -> etree.XMLParser:
    """A parser that resolves nothing and fetches nothing, with huge text nodes allowed."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,
        remove_comments=False,
        recover=recover,
        collect_ids=False,
    )


def read_limited(source: bytes | str | Path, limits: ParseLimits, *, file: str | None = None) -> bytes:
    """Return the bytes of ``source`` (bytes or a path), refusing more than the size limit
    before reading them all."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > limits.max_package_size:
            raise _too_large(len(data), limits, file)
        return data
    path = Path(source)
    size = path.stat().st_size
    if size > limits.max_package_size:
        raise _too_large(size, limits, file or str(path))
    return path.read_bytes()


def check_size(size: int, limits: ParseLimits, *, file: str | None = None) -> None:
    """Refuse a package larger than the limit, before anything of it is parsed."""
    if size > limits.max_package_size:
        raise _too_large(size, limits, file)


def refuse_doctype(data: bytes, *, file: str | None = None) -> None:
    """Refuse a DOCTYPE or ENTITY declaration in the prolog (before the root element)."""
    root = _ROOT_START.search(data)
    prolog = data[: root.start()] if root else data
    match = _DOCTYPE.search(prolog)
    if match:
        line = prolog[: match.start()].count(b"\n") + 1
        raise HostilePackage(
            "document type declarations are not allowed in edXML packages (DTD/entity attack?)",
            file=file, line=line, hint="ask the sender for a package without <!DOCTYPE>")


def parse_bytes(data: bytes, *, limits: ParseLimits = ParseLimits(), file: str | None = None,
                recover: bool = False) -> etree._ElementTree:
    """Parse untrusted bytes into a tree, or raise a typed error with the file and line."""
    if len(data) > limits.max_package_size:
        raise _too_large(len(data), limits, file)
    refuse_doctype(data, file=file)
    try:
        root = etree.fromstring(data, hardened_parser(recover=recover))
    except etree.XMLSyntaxError as error:
        line = error.position[0] if error.position else error.lineno
        refuse_excessive_depth(error, limits, file=file)
        raise EdxmlError(f"not well-formed XML: {error.msg}", file=file, line=line,
                         hint="the package is damaged; ask the sender to send it again") from error
    if root is None:
        raise EdxmlError("empty document", file=file, hint="the package has no XML content")
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise HostilePackage("document type declarations are not allowed in edXML packages",
                             file=file, hint="ask the sender for a package without <!DOCTYPE>")
    check_depth(root, limits, file=file)
    return tree


def check_depth(root: etree._Element, limits: ParseLimits, *, file: str | None = None) -> None:
    """Refuse trees nested deeper than the limit (edXML needs about ten levels)."""
    depth = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        if depth > limits.max_depth:
            raise _too_deep(limits, file, element.sourceline)


def refuse_excessive_depth(error: etree.XMLSyntaxError, limits: ParseLimits, *,
                           file: str | None = None) -> None:
    """Raise our own refusal where libxml2 stopped at its depth limit (far deeper than ours).

    libxml2 says "Excessive depth in document: 2048 use XML_PARSE_HUGE option": advice to
    loosen a parser option, the wrong thing to tell an operator about a hostile package. Any
    other syntax error returns, for the caller to report."""
    if "Excessive depth" in str(error.msg or error):
        raise _too_deep(limits, file, error.lineno) from None


def _too_deep(limits: ParseLimits, file: str | None, line: int | None) -> HostilePackage:
    return HostilePackage(f"nested deeper than {limits.max_depth} elements", file=file, line=line,
                          hint="no edXML package needs this depth; the package is refused")


def _too_large(size: int, limits: ParseLimits, file: str | None) -> PackageTooLarge:
    return PackageTooLarge(
        f"package is {size} bytes, more than the limit of {limits.max_package_size} bytes",
        file=file, hint="raise edxml.max_package_size in the configuration if this size is expected")
