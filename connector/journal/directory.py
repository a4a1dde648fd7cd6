"""The axis's agency directory, kept in the journal (``journal.directory``).

WHY in the journal: a connector checks every recipient against it, maps old codes (Decision
20/2020, Decision 09/2025: the axis publishes old and new codes side by side) to current ones,
and IT staff search it; a province's directory has 100,000 agencies, more than a JSON file read
whole at each start should hold. The journal already is the one durable store with backups.

A sync replaces the list in ONE transaction, written in pages (:data:`PAGE_ROWS` rows per
statement), so readers keep the previous list until it commits and memory stays bounded;
changes since the last sync are applied the same way. The time of the axis's last complete
answer is kept in ``kv`` (:data:`KV_DIRECTORY_SYNCED`), for the next incremental sync.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import delete, func, insert, or_, select

from connector.journal import schema as t
from connector.journal.core import JournalCore
from connector.journal.records import utcnow
from connector.text import search_key

PAGE_ROWS = 2000
KV_DIRECTORY_SYNCED = "directory.synced_at"


@dataclass(frozen=True)
class DirectoryAgency:
    """One agency. What a sync writes may be any object with these attributes (the axis
    client's ``Agency`` is one)."""

    code: str
    name: str = ""
    old_code: str | None = None
    pid: str | None = None
    mail: str | None = None
    deleted: bool = False  # in a list of changes: the agency was removed


class AgencyDirectoryRecords:
    """Reading and replacing the directory (see the module docstring)."""

    def __init__(self, core: JournalCore) -> None:
        self.core = core

    # -- writing -----------------------------------------------------------------------------
    def replace_all(self, agencies: Iterable[Any], *, synced_at: dt.datetime | None = None,
                    now: dt.datetime | None = None) -> int:
        """The whole list, in one transaction: what it does not name is removed."""
        now = now or utcnow()
        count = 0
        with self.core.write() as conn:
            conn.execute(delete(t.agencies))
            for page in _pages(_live(agencies)):
                conn.execute(insert(t.agencies), [_row(agency, now) for agency in page])
                count += len(page)
            self._synced(conn, synced_at or now, now)
        return count

    def apply_changes(self, changes: Iterable[Any], *,
                      synced_at: dt.datetime | None = None, now: dt.datetime | None = None) -> int:
        """Changes since the last sync: each named agency replaced, or removed when deleted."""
        now = now or utcnow()
        count = 0
        with self.core.write() as conn:
            for page in _pages(changes):
                latest = {agency.code: agency for agency in page}  # the last change wins
                conn.execute(delete(t.agencies).where(t.agencies.c.code.in_(list(latest))))
                rows = [_row(agency, now) for agency in latest.values() if not agency.deleted]
                if rows:
                    conn.execute(insert(t.agencies), rows)
                count += len(latest)
            self._synced(conn, synced_at or now, now)
        return count

    def _synced(self, conn, synced_at: dt.datetime, now: dt.datetime) -> None:
        kv = t.kv
        conn.execute(delete(kv).where(kv.c.key == KV_DIRECTORY_SYNCED))
        conn.execute(insert(kv).values(key=KV_DIRECTORY_SYNCED, value=synced_at.isoformat(),
                                       updated_at=now))

    # -- reading -----------------------------------------------------------------------------
    def synced_at(self) -> dt.datetime | None:
        with self.core.read() as conn:
            value = conn.execute(select(t.kv.c.value).where(t.kv.c.key == KV_DIRECTORY_SYNCED)).scalar()
        return dt.datetime.fromisoformat(value) if value else None

    def count(self) -> int:
        with self.core.read() as conn:
            return int(conn.execute(select(func.count()).select_from(t.agencies)).scalar() or 0)

    def get(self, code: str) -> DirectoryAgency | None:
        with self.core.read() as conn:
            row = conn.execute(select(t.agencies).where(t.agencies.c.code == code)).mappings().first()
        return None if row is None else _agency(row)

    def resolve(self, codes: Sequence[str]) -> dict[str, str | None]:
        """For each code: itself when current, the current code when it is an old one, None
        when the directory has neither."""
        wanted = list(dict.fromkeys(codes))
        if not wanted:
            return {}
        with self.core.read() as conn:
            current = set(conn.execute(select(t.agencies.c.code)
                                       .where(t.agencies.c.code.in_(wanted))).scalars())
            renamed = dict(conn.execute(select(t.agencies.c.old_code, t.agencies.c.code)
                                        .where(t.agencies.c.old_code.in_(wanted))).all())
        return {code: code if code in current else renamed.get(code) for code in wanted}

    def find(self, text: str, *, limit: int = 20) -> list[DirectoryAgency]:
        """Agencies whose code, old code or name holds every word of ``text`` (with or without
        diacritics, any case), codes matching exactly first."""
        words = search_key(text).split()
        if not words:
            return []
        column = t.agencies.c.search
        query = select(t.agencies).where(*(column.like(f"%{_escape(word)}%", escape="\\")
                                           for word in words))
        exact = text.strip()
        with self.core.read() as conn:
            first = conn.execute(select(t.agencies).where(or_(
                t.agencies.c.code == exact, t.agencies.c.old_code == exact))).mappings().all()
            rows = conn.execute(query.order_by(t.agencies.c.code).limit(limit)).mappings().all()
        seen: dict[str, DirectoryAgency] = {}
        for row in [*first, *rows]:
            seen.setdefault(row["code"], _agency(row))
        return list(seen.values())[:limit]

    def all(self) -> Iterator[DirectoryAgency]:
        with self.core.read() as conn:
            for row in conn.execute(select(t.agencies).order_by(t.agencies.c.code)).mappings():
                yield _agency(row)


def _live(agencies: Iterable[Any]) -> Iterator[Any]:
    seen: set[str] = set()
    for agency in agencies:
        if agency.code and not agency.deleted and agency.code not in seen:
            seen.add(agency.code)
            yield agency


def _pages(agencies: Iterable[Any]) -> Iterator[list[Any]]:
    iterator = iter(agencies)
    while page := list(islice(iterator, PAGE_ROWS)):
        yield page


def _row(agency: Any, now: dt.datetime) -> dict:
    return {"code": agency.code, "name": agency.name or "", "old_code": agency.old_code or None,
            "pid": agency.pid or None, "mail": agency.mail or None, "synced_at": now,
            "search": search_key(" ".join(x for x in (agency.code, agency.old_code or "", agency.name) if x))}


def _agency(row) -> DirectoryAgency:
    return DirectoryAgency(code=row["code"], name=row["name"], old_code=row["old_code"],
                           pid=row["pid"], mail=row["mail"])


def _escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
