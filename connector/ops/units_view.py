"""``edxml-connector units``: the connector's own units, each with its state and queues.

A connector serves its configured agency (a hub, several: issue 14). Each unit is listed with
what an operator asks first: is it working, how much waits, when it last heard from the axis,
how long its certificate can still sign. Units the journal holds items for but the configuration
no longer names are listed too ("not configured"): their unfinished items stay in the journal
and go on when the unit comes back, and an operator must be able to see them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from connector.config import Settings
from connector.journal import (
    KV_CERTIFICATE_COVERAGE,
    KV_DELIVERY_PAUSED,
    KV_LAST_POLL,
    KV_UNIT_PAUSED,
    Journal,
    unit_key,
)
from connector.pipeline.delivery_backoff import DeliveryPause

PENDING_OUT = ("queued", "packaged", "sending")
PENDING_IN = ("listed", "fetched", "verified", "stored", "acknowledged")
DAY = 86_400.0


def configured_units(settings: Settings) -> list[tuple[str, str]]:
    """(OrganId, name) of every unit the configuration serves."""
    return [(unit.agency.organ_id, unit.agency.name) for unit in settings.units]


def collect_units(settings: Settings, journal: Journal,
                  now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """One row per unit, configured ones first (in configuration order)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    counts = journal.counts_by_agency()
    rows = []
    configured = configured_units(settings)
    for organ_id, name in configured:
        unit = journal.for_agency(organ_id)  # the first unit keeps the single-agency keys
        pause = DeliveryPause.from_json(journal.kv_get(unit.unit_key(KV_DELIVERY_PAUSED)))
        last_poll = journal.get_time(unit.unit_key(KV_LAST_POLL))
        paused = journal.kv_get(unit_key(KV_UNIT_PAUSED, organ_id))
        coverage = journal.get_time(unit_key(KV_CERTIFICATE_COVERAGE, organ_id))
        days_left = None if coverage is None else round((coverage - now).total_seconds() / DAY, 1)
        state, reason = "active", None
        if paused:
            state, reason = "paused", paused
        elif days_left is not None and days_left <= 0:
            state, reason = "paused", "no certificate can sign"
        elif pause is not None:
            state, reason = "paused", f"delivery: {pause.reason}"
        rows.append(_row(organ_id, name, state, reason, counts.get(organ_id), last_poll,
                         days_left))
    known = {organ_id for organ_id, _ in configured}
    for organ_id in sorted(set(counts) - known):
        rows.append(_row(organ_id or "(no unit)", "", "not configured",
                         "items in the journal for a unit the configuration does not name",
                         counts[organ_id], None, None))
    return rows


def _row(organ_id: str, name: str, state: str, reason: str | None,
         counts: dict[str, dict[str, int]] | None, last_poll: dt.datetime | None,
         days_left: float | None) -> dict[str, Any]:
    out = (counts or {}).get("outgoing", {})
    inc = (counts or {}).get("incoming", {})
    return {
        "organ_id": organ_id, "name": name, "state": state, "reason": reason,
        "outgoing_pending": sum(out.get(s, 0) for s in PENDING_OUT),
        "outgoing_failed": out.get("failed", 0),
        "incoming_pending": sum(inc.get(s, 0) for s in PENDING_IN),
        "quarantined": inc.get("quarantined", 0),
        "last_poll": None if last_poll is None else last_poll.isoformat(timespec="seconds"),
        "certificate_days_left": days_left,
    }


def render_units(rows: list[dict[str, Any]]):
    """A rich table (rich is loaded only when a table is drawn)."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("Unit", overflow="fold", min_width=13, max_width=28)
    table.add_column("State", overflow="fold", min_width=24)
    for column in ("Out", "Failed", "In", "Quar.", "Last poll UTC", "Cert. days"):
        table.add_column(column, no_wrap=True, justify="right")
    for row in rows:
        unit = f"{row['organ_id']}\n{row['name']}" if row["name"] else row["organ_id"]
        state = row["state"] + (f"\n{row['reason']}" if row["reason"] else "")
        poll = (row["last_poll"] or "never")[5:16].replace("T", " ") if row["last_poll"] else "never"
        days = "-" if row["certificate_days_left"] is None else f"{row['certificate_days_left']:g}"
        table.add_row(unit, state, str(row["outgoing_pending"]), str(row["outgoing_failed"]),
                      str(row["incoming_pending"]), str(row["quarantined"]), poll, days)
    return table
