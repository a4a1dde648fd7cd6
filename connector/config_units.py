"""A hub's units: ``agencies:`` in the main file and/or one YAML file per unit in ``agencies_dir:``.

WHY each unit becomes complete :class:`~connector.config.Settings`: the shared sections (axis
endpoint and retry policy, journal, trust, schedules, logging, health) are written once, and a
unit adds only what is its own — its ``agency:`` (what goes into ``From``), its axis credentials
(``axis.systemid`` and ``axis.secret_file|_env|_credential``), its ``certificate:``, its folder
tree (``exchange.root``, default ``<exchange.root>/<OrganId>``, and ``exchange.group``) and, on a
DMS database shared by many units, the value of the unit column of its rows
(``database.unit_value``). Merged over the shared sections and validated by the same model as a
single-agency file, every unit is checked exactly as one agency's file would be, every error
names the unit's file and key, and the pipelines see one unit's settings as they always did: a
single-agency file is a hub of one.

A unit's file may hold only those keys: anything else belongs to the shared file (one retry
policy, one journal, one trust store for the whole hub, per decisions.md).
"""

from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any

from connector.errors import ConfigError

_HINT = "see config/hub.example.yaml, which documents a hub key by key"
ReadMapping = typing.Callable[..., dict[str, Any]]

UNIT_KEYS: dict[str, frozenset[str] | None] = {
    "agency": None,  # every key of agency:
    "certificate": None,  # every key of certificate:
    "axis": frozenset({"systemid", "secret_file", "secret_env", "secret_credential"}),
    "exchange": frozenset({"root", "group", "enabled"}),
    "database": frozenset({"unit_value"}),
}
"""What a unit may say, by section (None: the whole section is the unit's)."""

UNIT_FILE_SUFFIXES = (".yaml", ".yml")

HUB_POLL_DEFAULTS = {"axis_poll_seconds": 30.0, "idle_poll_seconds": 600.0}
"""A hub's polling defaults (issue 14, decisions.md "Polling"): a unit that received something
within the hour is listed every 30 s; an idle one is asked with the two count calls every 10
minutes, so that 500 idle units cost 500 × 2 / 600 ≈ 1.7 requests a second."""


def unit_mappings(data: dict[str, Any], *, file: str, read_mapping: ReadMapping,
                  default_root: Path,
                  environ: typing.Mapping[str, str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Each unit as (the label its errors name, the complete mapping to validate): the shared
    sections with the unit's over them. ``read_mapping`` reads one unit file (the main file's
    reader, so that a unit file is read exactly as the main one)."""
    shared = dict(data)
    schedules = dict(shared.get("schedules") or {})
    for key, value in HUB_POLL_DEFAULTS.items():
        schedules.setdefault(key, value)
    shared["schedules"] = schedules
    listed = shared.pop("agencies", None)
    folder = shared.pop("agencies_dir", None)
    entries = list(_listed_units(listed, file))
    if folder is not None:
        entries.extend(_unit_files(_folder_path(folder, file), read_mapping, environ))
    if not entries:
        raise ConfigError("no units: agencies: is empty and agencies_dir holds no *.yaml file",
                          file=file, hint="list the units under agencies:, or put one YAML file "
                                          "per unit in agencies_dir (config/hub.example.yaml)")
    merged = []
    for label, unit in entries:
        _check_unit_keys(unit, label)
        merged.append((label, _merged(shared, unit, label, default_root)))
    return merged


def check_distinct(units: list[tuple[str, Any]]) -> None:
    """Two units with one OrganId, or one systemid, are refused naming both files."""
    seen: dict[str, str] = {}
    systemids: dict[str, str] = {}
    for label, settings in units:
        organ_id = settings.agency.organ_id
        if organ_id in seen:
            raise ConfigError(f"agency.organ_id {organ_id} is already the unit of {seen[organ_id]}",
                              file=label, hint="each unit once: remove one of the two")
        if settings.systemid in systemids:
            raise ConfigError(f"axis.systemid {settings.systemid} is already used by "
                              f"{systemids[settings.systemid]}", file=label,
                              hint="each unit has its own axis credentials")
        seen[organ_id] = label
        systemids[settings.systemid] = label


def _listed_units(listed: Any, file: str) -> typing.Iterator[tuple[str, dict[str, Any]]]:
    if listed is None:
        return
    if not isinstance(listed, list):
        raise ConfigError("agencies: expected a list of units (- agency: ...)", file=file, hint=_HINT)
    for index, unit in enumerate(listed):
        if not isinstance(unit, dict):
            raise ConfigError(f"agencies[{index}]: expected a mapping (agency:, axis:, "
                              "certificate: ...)", file=file, hint=_HINT)
        yield f"{file} agencies[{index}]", unit


def _folder_path(folder: Any, file: str) -> Path:
    if not isinstance(folder, str) or not folder:
        raise ConfigError("agencies_dir: expected a folder path", file=file, hint=_HINT)
    path = Path(folder)
    if not path.is_absolute():
        path = Path(file).resolve().parent / path  # relative to the main file, not the cwd
    if not path.is_dir():
        raise ConfigError(f"agencies_dir: {path} is not a folder", file=file,
                          hint="create it (one YAML file per unit), or remove agencies_dir")
    return path


def unit_files(folder: Path) -> list[Path]:
    """The unit files of ``agencies_dir``, in name order; editors' temporary and hidden files
    (``.name``, ``*~``, ``*.tmp``, ``*.swp``) are not units."""
    return sorted(path for path in folder.iterdir()
                  if path.suffix in UNIT_FILE_SUFFIXES and not path.name.startswith(".")
                  and path.is_file())


def _unit_files(folder: Path, read_mapping: ReadMapping, environ: typing.Mapping[str, str] | None
                ) -> typing.Iterator[tuple[str, dict[str, Any]]]:
    for path in unit_files(folder):
        yield str(path), read_mapping(path, environ=environ, what="a unit's sections "
                                      "(agency:, axis:, certificate:, exchange:)")


def _check_unit_keys(unit: dict[str, Any], label: str) -> None:
    for section, value in unit.items():
        if section not in UNIT_KEYS:
            raise ConfigError(f"{section}: not a unit's key (a unit gives "
                              f"{', '.join(UNIT_KEYS)}); shared settings go in the main file",
                              file=label, hint="see config/hub.example.yaml")
        allowed = UNIT_KEYS[section]
        if not isinstance(value, dict):
            raise ConfigError(f"{section}: expected a mapping", file=label,
                              hint="see config/hub.example.yaml")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    raise ConfigError(f"{section}.{key}: shared by every unit, so it is set in "
                                      f"the main file (a unit may set {', '.join(sorted(allowed))})",
                                      file=label, hint="see config/hub.example.yaml")
    if "agency" not in unit:
        raise ConfigError("agency: missing (the unit's organ_id and name)", file=label,
                          hint="see config/agencies.d.example/000.00.00.H01.yaml")


def _merged(shared: dict[str, Any], unit: dict[str, Any], label: str,
            default_root: Path) -> dict[str, Any]:
    """The shared sections with the unit's keys over them (a deep copy: units share nothing)."""
    merged = copy.deepcopy(shared)
    # A key written as null in a unit's file means "the default", as the examples show it.
    unit = {section: {key: item for key, item in value.items() if item is not None}
            for section, value in unit.items()}
    for section, value in unit.items():
        if section == "database" and not isinstance(merged.get("database"), dict):
            raise ConfigError("database: a unit's unit_value needs the shared database: section "
                              "in the main file", file=label, hint="see config/hub.example.yaml")
        if section == "certificate" or section not in merged or not isinstance(merged[section], dict):
            merged[section] = copy.deepcopy(value)  # a unit's key is its own, never merged
        else:
            merged[section].update(copy.deepcopy(value))
    exchange = merged.get("exchange")
    if isinstance(exchange, dict) and "root" not in unit.get("exchange", {}):
        base = Path(exchange.get("root") or default_root)
        exchange["root"] = str(base / str(unit["agency"].get("organ_id", "")))
    elif "exchange" not in merged:
        merged["exchange"] = {"root": str(default_root / str(unit["agency"].get("organ_id", "")))}
    return merged
