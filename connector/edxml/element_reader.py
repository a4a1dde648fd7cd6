"""The small vocabulary every part of the reader speaks: children looked up by local name in
any order, leaf text stripped, dates in either wire format, and one warning list.

Received packages come from many writers, so nothing here relies on position or on one exact
namespace: an element counts when its local name is known and its namespace is one the package
may use (QCVN, the legacy URI, none, or the root's own). Anything else is reported and ignored.
Oddities become warnings; only the caller decides what is fatal (via :meth:`ElementReader.error`).
"""

from __future__ import annotations

from collections.abc import Set

from lxml import etree

from connector.edxml.identifiers import organ_id_problem, parse_date, parse_timestamp
from connector.errors import EdxmlError


def split_tag(tag: str) -> tuple[str | None, str]:
    """``{namespace}local`` -> (namespace, local); (None, tag) without a namespace."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag


class ElementReader:
    """Lookup and text helpers over a parsed tree, collecting warnings in a shared list.

    ``accepted`` is the set of namespaces (``None`` for none) in which element names count.
    """

    def __init__(self, file: str | None, warnings: list[str], accepted: set[str | None]) -> None:
        self.file = file
        self.warnings = warnings
        self.accepted = accepted

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def error(self, message: str, *, element: str, line: int | None = None,
              hint: str | None = None) -> EdxmlError:
        return EdxmlError(message, file=self.file, line=line, element=element, hint=hint)

    def children(self, parent: etree._Element, path: str, known: set[str],
                 *, foreign_ok: Set[str] = frozenset()) -> dict[str, list[etree._Element]]:
        """Group the element children of ``parent`` by local name; warn about unknown ones."""
        groups: dict[str, list[etree._Element]] = {}
        for child in parent:
            if not isinstance(child.tag, str):
                continue  # comments and processing instructions
            namespace, local = split_tag(child.tag)
            if local in known and (namespace in self.accepted or local in foreign_ok):
                groups.setdefault(local, []).append(child)
            else:
                shown = local if namespace in self.accepted else f"{{{namespace}}}{local}"
                self.warn(f"ignored unknown element {path}/{shown} (line {child.sourceline})")
        return groups

    def one(self, groups, name: str, path: str) -> etree._Element | None:
        found = groups.get(name)
        if not found:
            return None
        if len(found) > 1:
            self.warn(f"{path}/{name} appears {len(found)} times (lines "
                      f"{', '.join(str(e.sourceline) for e in found)}); the first is used")
        return found[0]

    def either(self, groups, names: tuple[str, ...], path: str) -> tuple[etree._Element | None, str]:
        """The first present of several accepted spellings, and the name it was found under."""
        for name in names:
            element = self.one(groups, name, path)
            if element is not None:
                for other in names:
                    if other != name and groups.get(other):
                        self.warn(f"{path} has both {name} and {other}; {name} is used")
                return element, name
        return None, names[0]

    def text(self, element: etree._Element | None, path: str) -> str | None:
        """Text of a leaf element, stripped; None when absent, "" when present but empty."""
        if element is None:
            return None
        parts = [element.text or ""]
        for child in element:
            if isinstance(child.tag, str):
                self.warn(f"{path} should hold text only; its child element "
                          f"{split_tag(child.tag)[1]} (line {child.sourceline}) is ignored")
            parts.append(child.tail or "")
        return "".join(parts).strip()

    def field_text(self, groups, name: str, path: str) -> str | None:
        return self.text(self.one(groups, name, path), f"{path}/{name}")

    def field_date(self, groups, name: str, path: str):
        element = self.one(groups, name, path)
        value = self.text(element, f"{path}/{name}")
        if not value:
            return None
        try:
            return parse_date(value)
        except ValueError:
            self.warn(f"{path}/{name} {value!r} (line {line_of(element)}) is not a date in "
                      "yyyy/MM/dd or dd/MM/yyyy; ignored")
            return None

    def field_timestamp(self, groups, name: str, path: str):
        element = self.one(groups, name, path)
        value = self.text(element, f"{path}/{name}")
        if not value:
            return None
        try:
            return parse_timestamp(value)
        except ValueError:
            self.warn(f"{path}/{name} {value!r} (line {line_of(element)}) is not a timestamp "
                      "in yyyy/MM/dd HH:mm:ss or dd/MM/yyyy HH:mm:ss; ignored")
            return None

    def check_organ_id(self, value: str | None, path: str) -> None:
        if value:
            problem = organ_id_problem(value)
            if problem:
                self.warn(f"{path}: {problem}")

    def check_length(self, value: str | None, limit: int, path: str) -> None:
        if value is not None and len(value) > limit:
            self.warn(f"{path} is {len(value)} characters long, more than the {limit} allowed")

    # ---- structure ----------------------------------------------------------------------


def line_of(element: etree._Element | None) -> int | None:
    return element.sourceline if element is not None else None
