"""The axis's agency directory: synced from the axis into the journal, consulted for every
recipient.

WHY: a document addressed to an unknown OrganId should fail at once with a clear reason instead
of after a round trip to the axis; and after the administrative reorganisations (Decision
20/2020, Decision 09/2025) the axis publishes old and new codes side by side, so a recipient
given by its old code must go to its current one (with a warning), or the document is misrouted.

Decisions:
- The list lives in the journal (``journal.directory``, see
  :mod:`connector.journal.directory`): a restart while the axis is down still checks recipients,
  and a sync replaces it in one transaction, so the previous list is used while it runs.
- A sync asks the axis for the changes since the last one (``getSynchronizeUnit``) when there was
  one, else for the whole list with old and new codes (``getAgenciesListQD20``), else for the
  plain list (``getAgenciesList``) — an axis without the newer calls still works.
- Until a list has ever been loaded, nothing is refused: the axis itself remains the judge, so
  an unreachable axis never turns a good document into a failed one.
- The list that used to be cached in ``STATE_DIR/agencies.json`` is imported once, then that
  file is renamed ``agencies.json.migrated``.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.axis.client import Agency
from connector.axis.errors import AxisError
from connector.logs import get_logger

log = get_logger(__name__)

SYNC_OVERLAP = dt.timedelta(minutes=5)
"""Changes are asked for from a little before the last sync: a change the axis recorded while
that sync ran is not missed (applying one twice changes nothing)."""


@dataclass(frozen=True)
class SyncResult:
    kind: str  # "changes", "full (QD20)", "full"
    agencies: int  # agencies written (or changed)
    total: int  # agencies in the directory after the sync


@dataclass(frozen=True)
class Resolution:
    """Recipients as given, mapped to the directory's current codes."""

    current: list[str]
    renamed: dict[str, str] = field(default_factory=dict)  # old code -> current code
    unknown: list[str] = field(default_factory=list)


MAX_REMEMBERED = 20_000
"""Found codes kept in memory at most (a province's units and their partners fit many times)."""

class AgencyDirectory:
    """The directory (see the module docstring). ``records`` is the journal's
    :class:`~connector.journal.directory.AgencyDirectoryRecords` (anything with its methods)."""

    def __init__(self, client: Any, records: Any, legacy_cache_file: str | Path | None = None) -> None:
        self.client = client
        self.records = records
        self._lock = threading.Lock()
        self._found: dict[str, str] = {}
        """Codes already found (code -> current code). WHY: every document asks for its
        recipients two to four times (check, resolve, the send's check); one journal query each
        took a third of the daemon's CPU per document (bench/README.md, "End to end"). Only
        found codes are kept — an unknown one is asked again, so an agency that a sync run by
        the ``agencies sync`` command added is seen at once — and the whole map is dropped at
        each refresh of this process and when it grows past MAX_REMEMBERED."""
        if legacy_cache_file is not None:
            self._import_legacy_cache(Path(legacy_cache_file))
        self._loaded = self.records.synced_at() is not None or self.records.count() > 0

    @property
    def loaded(self) -> bool:
        return self._loaded

    # -- syncing -----------------------------------------------------------------------------
    def refresh(self, *, full: bool = False) -> SyncResult:
        """Sync from the axis: the changes since the last sync, or the whole list (``full``,
        or when there was none or the axis has no ``getSynchronizeUnit``). Raises the client's
        errors (the caller logs them; the previous list stays in use)."""
        with self._lock:
            started = dt.datetime.now(dt.timezone.utc)
            last = self.records.synced_at()
            result = None
            if last is not None and not full:
                try:
                    changes = self.client.synchronize_units(last - SYNC_OVERLAP)
                except AxisError as error:
                    log.info("agency_changes_unavailable", error=str(error),
                             note="the whole list is fetched instead")
                else:
                    count = self.records.apply_changes(_rows(changes), synced_at=started)
                    result = SyncResult("changes", count, self.records.count())
            if result is None:
                kind = "full (QD20)"
                try:
                    agencies = self.client.list_agencies_qd20()
                except AxisError as error:
                    log.info("agency_list_qd20_unavailable", error=str(error),
                             note="the plain getAgenciesList is used (no old codes)")
                    kind, agencies = "full", self.client.list_agencies()
                count = self.records.replace_all(_rows(agencies), synced_at=started)
                result = SyncResult(kind, count, count)
            self._loaded = True
            self._found = {}
        log.info("agency_list_refreshed", kind=result.kind, count=result.total,
                 changed=result.agencies,
                 duration_ms=round((dt.datetime.now(dt.timezone.utc) - started).total_seconds() * 1000, 1))
        return result

    # -- consulting --------------------------------------------------------------------------
    def resolve(self, organ_ids: Sequence[str]) -> Resolution:
        """The recipients with old codes replaced by current ones; the unknown ones named (none
        while no list is known)."""
        if not self._loaded:
            return Resolution(list(organ_ids))
        found: dict[str, str | None] = {code: self._found.get(code) for code in organ_ids}
        missing = [code for code, current in found.items() if current is None]
        if missing:
            looked_up = self.records.resolve(missing)
            found.update(looked_up)
            if len(self._found) > MAX_REMEMBERED:
                self._found = {}
            self._found.update({code: current for code, current in looked_up.items() if current})
        current, renamed, unknown = [], {}, []
        for organ_id in organ_ids:
            code = found.get(organ_id)
            if code is None:
                unknown.append(organ_id)
                current.append(organ_id)
            else:
                current.append(code)
                if code != organ_id:
                    renamed[organ_id] = code
        return Resolution(list(dict.fromkeys(current)), renamed, unknown)

    def unknown(self, organ_ids: list[str]) -> list[str]:
        """The OrganIds the directory has neither as current nor as old codes."""
        return self.resolve(organ_ids).unknown

    def name_of(self, organ_id: str) -> str | None:
        agency = self.records.get(organ_id)
        return None if agency is None else agency.name

    def find(self, text: str, *, limit: int = 20):
        return self.records.find(text, limit=limit)

    # -- the old cache file --------------------------------------------------------------------
    def _import_legacy_cache(self, path: Path) -> None:
        if not path.exists() or self.records.synced_at() is not None:
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            names = {str(key): str(value) for key, value in data["agencies"].items()}
            loaded_at = dt.datetime.fromisoformat(data["loaded_at"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("agency_cache_unreadable", file=str(path), error=str(error),
                        fix="the next sync fills the directory")
            return
        self.records.replace_all((Agency(id="", code=code, name=name, mail="", pid="", raw={})
                                  for code, name in names.items()), synced_at=loaded_at)
        try:
            path.rename(path.with_name(path.name + ".migrated"))
        except OSError:
            pass  # imported already; the file is ignored from now on
        log.info("agency_cache_migrated", file=str(path), count=len(names))


def _rows(agencies: Iterable[Agency]) -> Iterator[Agency]:
    """The rows the journal keeps: it reads ``code, name, old_code, pid, mail, deleted`` of each
    (:class:`~connector.axis.client.Agency` has them; the journal does not import the axis)."""
    return (agency for agency in agencies if agency.code)
