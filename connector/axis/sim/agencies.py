"""The simulator's agencies file: who may call it, with which secret, as which OrganId.

Format (YAML)::

    agencies:
      - organ_id: "000.00.00.G22"
        name: "Văn phòng Chính phủ"
        systemid: "000.00.00.G22"
        secret: "..."
        mail: "vpcp@gov.vn"      # optional, shown by getAgenciesList
        pid: ""                  # optional parent id, shown by getAgenciesList
        old_code: ""             # optional code before a reorganisation (getAgenciesListQD20)

Errors name the file, the entry and the field, because operators edit this file by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from connector.axis.errors import AxisSettingsError


@dataclass(frozen=True)
class AgencyEntry:
    organ_id: str
    systemid: str
    secret: str = field(repr=False)
    name: str = ""
    mail: str = ""
    pid: str = ""
    old_code: str = ""


class AgencyBook:
    """Agencies looked up by systemid (authentication) and by OrganId (routing)."""

    def __init__(self, entries: Iterable[AgencyEntry]) -> None:
        self.entries = list(entries)
        self.by_systemid = {entry.systemid: entry for entry in self.entries}
        self.by_organ = {entry.organ_id: entry for entry in self.entries}

    def secret_for(self, systemid: str) -> str | None:
        entry = self.by_systemid.get(systemid)
        return None if entry is None else entry.secret

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


_REQUIRED = ("organ_id", "systemid", "secret")
_OPTIONAL = ("name", "mail", "pid", "old_code")


def load_agencies(path: Path | str) -> AgencyBook:
    """Read and check an agencies file; raise :class:`AxisSettingsError` naming what to fix."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AxisSettingsError(f"cannot read the agencies file: {error.strerror}",
                                file=str(path)) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise AxisSettingsError(f"not valid YAML: {getattr(error, 'problem', error)}",
                                file=str(path), line=mark.line + 1 if mark else None) from None
    return agencies_from_data(document, source=str(path))


def agencies_from_data(document: object, *, source: str = "agencies") -> AgencyBook:
    """Build the book from already-parsed data (``{"agencies": [...]}``)."""
    if not isinstance(document, dict) or not isinstance(document.get("agencies"), list):
        raise AxisSettingsError("expected a top-level 'agencies:' list", file=source,
                                hint="see the agencies file format in the README")
    entries: list[AgencyEntry] = []
    seen_systemids: set[str] = set()
    seen_organs: set[str] = set()
    for index, raw in enumerate(document["agencies"]):
        where = f"agencies[{index}]"
        if not isinstance(raw, dict):
            raise AxisSettingsError("each agency must be a mapping", file=source, element=where)
        unknown = set(raw) - set(_REQUIRED) - set(_OPTIONAL)
        if unknown:
            raise AxisSettingsError(f"unknown key(s) {sorted(unknown)}", file=source,
                                    element=where, hint=f"allowed: {_REQUIRED + _OPTIONAL}")
        values: dict[str, str] = {}
        for key in _REQUIRED + _OPTIONAL:
            value = raw.get(key)
            if value is None:
                if key in _REQUIRED:
                    raise AxisSettingsError("is required", file=source, element=f"{where}.{key}")
                value = ""
            if not isinstance(value, str | int):
                raise AxisSettingsError("must be a string", file=source, element=f"{where}.{key}")
            values[key] = str(value)
            if key in _REQUIRED and not values[key].strip():
                raise AxisSettingsError("must not be empty", file=source,
                                        element=f"{where}.{key}")
        if values["systemid"] in seen_systemids:
            raise AxisSettingsError(f"systemid {values['systemid']!r} appears twice",
                                    file=source, element=f"{where}.systemid")
        if values["organ_id"] in seen_organs:
            raise AxisSettingsError(f"organ_id {values['organ_id']!r} appears twice",
                                    file=source, element=f"{where}.organ_id")
        seen_systemids.add(values["systemid"])
        seen_organs.add(values["organ_id"])
        entries.append(AgencyEntry(**values))
    if not entries:
        raise AxisSettingsError("the agencies list is empty", file=source)
    return AgencyBook(entries)


def read_directory(path: Path | str):
    """The agencies a simulator lists besides its callers (a large generated directory): JSON
    lines ``{"code", "name", "pid", "mail", "oldCode"}``, read lazily (100,000 rows are fine)."""
    import json

    path = Path(path)
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    yield {"code": str(row["code"]), "name": str(row.get("name", "")),
                           "pid": str(row.get("pid", "")), "mail": str(row.get("mail", "")),
                           "old_code": str(row.get("oldCode", ""))}
                except (ValueError, KeyError, TypeError) as error:
                    raise AxisSettingsError(f"not a directory row ({error})", file=str(path),
                                            line=number, hint='one JSON object per line with "code"') \
                        from None
    except OSError as error:
        raise AxisSettingsError(f"cannot read the directory file: {error.strerror}",
                                file=str(path)) from None
