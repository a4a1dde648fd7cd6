"""The axis's list of agencies (``getAgenciesList``), cached, so that a document addressed to an
unknown OrganId fails at once with a clear reason instead of after a round trip to the axis.

WHY a cache file: the list changes rarely (the daemon refreshes it on a schedule, by default
daily), and a connector restarted while the axis is down should still be able to check
recipients. Until a list has ever been loaded, nothing is refused: the axis itself remains the
judge, so an unreachable axis never turns a good document into a failed one.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path
from typing import Any

from connector import fsutil
from connector.logs import get_logger

log = get_logger(__name__)


class AgencyDirectory:
    """Known OrganIds, from the axis (``refresh``) or from the cache file of the last refresh."""

    def __init__(self, client: Any, cache_file: str | Path | None = None) -> None:
        self.client = client
        self.cache_file = Path(cache_file) if cache_file else None
        self._lock = threading.Lock()
        self._names: dict[str, str] | None = None
        self.loaded_at: dt.datetime | None = None
        self._load_cache()

    @property
    def loaded(self) -> bool:
        return self._names is not None

    def refresh(self) -> int:
        """Fetch the list from the axis; keep it and the cache file. Raises the client's errors
        (the caller logs them and keeps the previous list)."""
        agencies = self.client.list_agencies()
        names = {agency.code: agency.name for agency in agencies if agency.code}
        now = dt.datetime.now(dt.timezone.utc)
        with self._lock:
            self._names = names
            self.loaded_at = now
        if self.cache_file is not None:
            try:
                fsutil.atomic_write(self.cache_file, json.dumps(
                    {"loaded_at": now.isoformat(), "agencies": names}, ensure_ascii=False,
                    indent=1) + "\n")
            except OSError as error:
                log.warning("agency_cache_not_written", file=str(self.cache_file),
                            error=error.strerror or str(error))
        log.info("agency_list_refreshed", count=len(names))
        return len(names)

    def unknown(self, organ_ids: list[str]) -> list[str]:
        """The OrganIds the axis does not list; empty while no list is known."""
        with self._lock:
            names = self._names
        if names is None:
            return []
        return [organ_id for organ_id in organ_ids if organ_id not in names]

    def name_of(self, organ_id: str) -> str | None:
        with self._lock:
            return None if self._names is None else self._names.get(organ_id)

    def _load_cache(self) -> None:
        if self.cache_file is None or not self.cache_file.exists():
            return
        try:
            data = json.loads(self.cache_file.read_text(encoding="utf-8"))
            self._names = {str(key): str(value) for key, value in data["agencies"].items()}
            self.loaded_at = dt.datetime.fromisoformat(data["loaded_at"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            log.warning("agency_cache_unreadable", file=str(self.cache_file), error=str(error),
                        fix="it is rewritten at the next successful refresh")
