"""Turning journal rows into records, plus small helpers every transition module shares.

Separate from the transitions so that outgoing, incoming and status code read rows the same way
(and an unknown id gives the same operator-facing error everywhere).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from sqlalchemy import Connection

from connector.journal.errors import UnknownItem
from connector.journal.records import DeliveryRecord, OutgoingRecord
from connector.journal.statements import _ROW_BY_ID
from connector.journal.states import OutgoingState


def _deliveries(rows) -> tuple[DeliveryRecord, ...]:
    return tuple(DeliveryRecord(organ_id=d["organ_id"], status_code=d["status_code"],
                                description=d["description"], status_at=d["status_at"],
                                updated_at=d["updated_at"]) for d in rows)


def _record(row, deliveries: tuple[DeliveryRecord, ...]) -> OutgoingRecord:
    values = {key: row[key] for key in row.keys()}
    values["state"] = OutgoingState(values["state"])
    values["meta"] = dict(values["meta"] or {})
    return OutgoingRecord(**values, deliveries=deliveries)


def _item_row(conn: Connection, table, item_id: str, *, lock: bool, direction: str,
              listed_by: str):
    """The item's row, locked ``FOR UPDATE`` when a transition follows (ignored by SQLite, whose
    write transaction already excludes other writers). An unknown id is the operator's typo, so
    the error says which command lists the ids."""
    row = conn.execute(_ROW_BY_ID[(table.name, lock)], {"item_id": item_id}).mappings().first()
    if row is None:
        raise UnknownItem(f"no {direction} item {item_id!r} in the journal", hint=listed_by)
    return row


def _states(state) -> list[str]:
    if state is None:
        return []
    if isinstance(state, str):
        return [state.value if hasattr(state, "value") else state]
    return [s.value if hasattr(s, "value") else str(s) for s in state]


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def _aware(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
