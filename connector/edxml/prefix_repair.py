"""Parsing package bytes, with the one repair the reader makes: declaring namespace prefixes
a writer forgot to declare.

Real test traffic contains packages that use ``xlink:`` without declaring it, or ``edXML:``
outside the element that declares it (see ``../shared/interop/README.md``). Such bytes are not
namespace-well-formed, so libxml2 refuses them. When *every* error is an undeclared prefix, the
missing declarations are inserted right after the root element's name — on the same line, so
every line number reported later is still the line in the received file — and the bytes are
parsed again. Anything else that is wrong is refused with the line libxml2 gives.

The repair happens after the hardened parser's DOCTYPE refusal, so it can never smuggle a DTD in.
Signature verification parses through :func:`parse_package` too, so it sees the tree the reader
saw.
"""

from __future__ import annotations

import re

from lxml import etree

from connector.edxml.model import NAMESPACE, XMLDSIG_NAMESPACE
from connector.edxml.xmlparse import ParseLimits, hardened_parser, parse_bytes
from connector.errors import EdxmlError, HostilePackage, PackageTooLarge

XLINK_NAMESPACE = "http://www.w3.org/1999/xlink"

# Prefixes whose meaning is certain enough to repair a package that forgot to declare them.
_WELL_KNOWN_PREFIXES = {
    "xlink": XLINK_NAMESPACE,
    "ds": XMLDSIG_NAMESPACE,
    "dsig": XMLDSIG_NAMESPACE,
}
_MAX_REPAIRED_PREFIXES = 16
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_SAFE_URI = re.compile(r"^[^\"'<>&\s]+$")
_UNDEFINED_PREFIX = re.compile(
    r"Namespace prefix (?P<prefix>\S+) (?:for (?P<attribute>\S+) )?on (?P<element>\S+) is not defined")


def parse_package(data: bytes, *, limits: ParseLimits = ParseLimits(),
                  file: str | None = None) -> tuple[etree._ElementTree, list[str]]:
    """Parse package bytes with the hardened parser, repairing undeclared prefixes.

    Returns the tree and the repair warnings. Signature verification should use this too, so
    that it sees the same tree the reader saw (a repaired package's signature cannot match —
    the repair changed the bytes — which is the truth about such a package).
    """
    try:
        return parse_bytes(data, limits=limits, file=file), []
    except (HostilePackage, PackageTooLarge):
        raise
    except EdxmlError as error:
        syntax = error.__cause__
        if not isinstance(syntax, etree.XMLSyntaxError):
            raise
        entries = _parse_errors(data)
        undefined = [entry for entry in entries if entry.type_name == "NS_ERR_UNDEFINED_NAMESPACE"]
        fatal = [entry for entry in entries if entry.type_name != "NS_ERR_UNDEFINED_NAMESPACE"]
        if fatal or not undefined:
            raise _not_well_formed(fatal[0] if fatal else None, error, file) from syntax
        prefixes = _prefixes_to_declare(undefined, data)
        repaired = _declare_on_root(data, prefixes) if prefixes else None
        if prefixes is None or repaired is None:
            raise _not_well_formed(undefined[0], error, file) from syntax
        del data
        tree = parse_bytes(repaired, limits=limits, file=file)
        return tree, _repair_warnings(undefined, prefixes)


def _parse_errors(data: bytes) -> list:
    """The errors of parsing ``data`` alone. (An exception's ``error_log`` can also hold entries
    from earlier parses in the same thread; a parser's own log cannot.) The DOCTYPE check has
    already passed, and the parser resolves nothing."""
    parser = hardened_parser()
    try:
        etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        pass
    return [entry for entry in parser.error_log if entry.level >= etree.ErrorLevels.ERROR]


def _not_well_formed(entry, error: EdxmlError, file: str | None) -> EdxmlError:
    if entry is None:
        return error
    return EdxmlError(f"not well-formed XML: {entry.message.strip()}", file=file, line=entry.line,
                      hint="the package is damaged (an element is not closed or a prefix is "
                           "unknown); ask the sender to send it again")


def _prefixes_to_declare(undefined, data: bytes) -> dict[str, str] | None:
    """Map each undeclared prefix to the URI it most plausibly means, or None when unsafe."""
    prefixes: dict[str, str] = {}
    for entry in undefined:
        match = _UNDEFINED_PREFIX.search(entry.message)
        if not match:
            return None
        prefix = match.group("prefix")
        if not _NCNAME.match(prefix) or prefix.lower().startswith("xml"):
            return None
        if prefix not in prefixes:
            prefixes[prefix] = _uri_for_prefix(prefix, data)
    if len(prefixes) > _MAX_REPAIRED_PREFIXES:
        return None
    return prefixes


def _uri_for_prefix(prefix: str, data: bytes) -> str:
    """The URI the package itself binds ``prefix`` to elsewhere, else a well-known one, else
    (for ``edXML``) the QCVN namespace, else a placeholder that makes the elements 'unknown'."""
    declared = re.search(rb"xmlns:" + re.escape(prefix.encode()) + rb"\s*=\s*[\"']([^\"'<>]*)[\"']",
                         data)
    if declared:
        uri = declared.group(1).decode("utf-8", "replace")
        if _SAFE_URI.match(uri):
            return uri
    if prefix in _WELL_KNOWN_PREFIXES:
        return _WELL_KNOWN_PREFIXES[prefix]
    if prefix.lower() == "edxml":
        return NAMESPACE
    return f"urn:x-edxml-connector:undeclared:{prefix}"


_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_ROOT_NAME = re.compile(rb"<[A-Za-z_][A-Za-z0-9_.\-]*(?::[A-Za-z_][A-Za-z0-9_.\-]*)?")


def _declare_on_root(data: bytes, prefixes: dict[str, str]) -> bytes | None:
    """Insert ``xmlns:p="uri"`` right after the root element's name — no newline is added, so
    every line number the parser reports afterwards is the line in the received file."""
    position = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    if not data.startswith(b"<", position) and not data[position:position + 1].isspace():
        return None  # not an ASCII-compatible encoding we can safely edit
    while True:
        item = _PROLOG_ITEM.match(data, position)
        if not item or item.end() == position:
            break
        position = item.end()
    root = _ROOT_NAME.match(data, position)
    if not root:
        return None
    declarations = "".join(f' xmlns:{prefix}="{uri}"' for prefix, uri in prefixes.items())
    return data[:root.end()] + declarations.encode("ascii") + data[root.end():]


def _repair_warnings(undefined, prefixes: dict[str, str]) -> list[str]:
    warnings = []
    for prefix, uri in prefixes.items():
        uses = [entry for entry in undefined
                if (m := _UNDEFINED_PREFIX.search(entry.message)) and m.group("prefix") == prefix]
        first = uses[0]
        match = _UNDEFINED_PREFIX.search(first.message)
        if match is None:  # cannot be: every use was selected by this search
            continue
        where = match.group("element") + (f"/@{match.group('attribute')}" if match.group("attribute")
                                           else "")
        warnings.append(
            f"recovered defect: namespace prefix '{prefix}' is used without a declaration "
            f"({len(uses)} time(s), first on {where} at line {first.line}); read as bound to {uri}")
    return warnings
