"""``edxml-connector status``: one snapshot of the journal, as JSON or as a table.

The snapshot is a plain dict (the ``--json`` output, documented in README) so that a monitoring
script and the table show exactly the same facts: counts by state in both directions, the age of
the oldest item still on its way, the last successful contact with the axis, and the items
themselves with each recipient's latest status. ``--watch`` redraws the table every two seconds
with ``rich.live`` until Ctrl-C; it only reads, so it is safe beside the running daemon.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from connector.edxml.model import StatusCode
from connector.errors import InputError
from connector.journal import (
    KV_DELIVERY_PAUSED,
    KV_LAST_AXIS_CONTACT,
    KV_LAST_POLL,
    KV_OUTBOX_REFUSED,
    IncomingRecord,
    IncomingState,
    Journal,
    OutgoingRecord,
    OutgoingState,
)
from connector.ops.context import display_name
from connector.pipeline.delivery_backoff import DeliveryPause

DIRECTIONS = ("out", "in")
ALL_STATES = sorted({s.value for s in OutgoingState} | {s.value for s in IncomingState})
WATCH_INTERVAL_SECONDS = 2.0


def check_state_filter(state: str | None, direction: str | None) -> None:
    """Refuse a state that no item of the chosen direction can have (a typo shows nothing)."""
    if state is None:
        return
    valid: set[str] = ({s.value for s in OutgoingState} if direction == "out"
                       else {s.value for s in IncomingState} if direction == "in"
                       else set(ALL_STATES))
    if state not in valid:
        kind = {"out": "outgoing", "in": "incoming"}.get(direction or "", "any")
        raise InputError(f"--state {state!r} is not a state of {kind} items",
                         hint="use one of " + ", ".join(sorted(valid)))


def status_label(code: str | None) -> str | None:
    if not code:
        return None
    try:
        return StatusCode(code).label_en
    except ValueError:
        return None


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def outgoing_row(record: OutgoingRecord) -> dict[str, Any]:
    return {
        "id": record.id, "direction": "out", "agency": record.agency, "kind": record.kind,
        "source": record.source,
        "name": display_name(record), "document_id": record.document_id,
        "state": record.state.value, "attempts": record.attempts,
        "recipients": [{"organ_id": d.organ_id, "status": d.status_code,
                        "label": status_label(d.status_code), "description": d.description,
                        "at": _iso(d.status_at)} for d in record.deliveries],
        "axis_doc_id": record.axis_doc_id, "last_error": record.last_error,
        "signed_by": record.signed_by,  # SHA-256 of the certificate that signed it
        "created_at": _iso(record.created_at), "updated_at": _iso(record.updated_at)}


def incoming_row(record: IncomingRecord) -> dict[str, Any]:
    return {
        "id": record.id, "direction": "in", "agency": record.agency, "kind": record.messagetype,
        "source": "axis",
        "name": record.sender, "document_id": record.document_id,
        "state": record.state.value, "attempts": None, "recipients": [],
        "axis_doc_id": record.axis_doc_id, "last_error": record.last_error,
        "signature": record.signature_state, "quarantined": record.quarantined,
        "created_at": _iso(record.created_at), "updated_at": _iso(record.updated_at)}


def collect_status(journal: Journal, *, state: str | None = None, direction: str | None = None,
                   limit: int = 50, now: dt.datetime | None = None,
                   agency: str | None = None) -> dict[str, Any]:
    """The ``status --json`` object. Items are newest first, at most ``limit`` of them (only
    the unit ``agency``'s when given)."""
    check_state_filter(state, direction)
    if limit < 1:
        raise InputError(f"--limit {limit} must be at least 1", hint="e.g. --limit 50")
    now = now or dt.datetime.now(dt.timezone.utc)
    rows: list[dict[str, Any]] = []
    if direction in (None, "out") and (state is None or state in OutgoingState._value2member_map_):
        rows += [outgoing_row(r) for r in journal.outgoing.list_outgoing(state, limit=limit,
                                                                         agency=agency)]
    if direction in (None, "in") and (state is None or state in IncomingState._value2member_map_):
        rows += [incoming_row(r) for r in journal.incoming.list_incoming(state, limit=limit,
                                                                         agency=agency)]
    rows.sort(key=lambda row: row["id"], reverse=True)  # ULIDs: newest first across directions
    age = journal.oldest_pending_age(now)
    contact = journal.get_time(KV_LAST_AXIS_CONTACT)
    poll = journal.get_time(KV_LAST_POLL)
    return {
        "generated_at": _iso(now),
        "counts": journal.counts_by_state(),
        "oldest_pending_age_seconds": None if age is None else round(age.total_seconds(), 1),
        "last_axis_contact": _iso(contact),
        "last_axis_contact_age_seconds":
            None if contact is None else round((now - contact).total_seconds(), 1),
        "last_poll": _iso(poll),
        "outbox_refused": _outbox_refused(journal),
        "delivery_paused": _delivery_paused(journal),
        "filter": {"state": state, "direction": direction, "limit": limit, "agency": agency},
        "items": rows[:limit],
    }


def _delivery_paused(journal: Journal) -> dict[str, Any] | None:
    """Why received items wait for the agency side (the daemon's delivery backoff), or None."""
    pause = DeliveryPause.from_json(journal.kv_get(KV_DELIVERY_PAUSED))
    if pause is None:
        return None
    return {"reason": pause.reason, "failures": pause.failures, "since": _iso(pause.since),
            "retry_at": _iso(pause.retry_at)}


def _outbox_refused(journal: Journal) -> dict[str, str]:
    """Outbox entries the daemon cannot claim, by name, with the reason (see the folder side)."""
    value = journal.kv_get(KV_OUTBOX_REFUSED)
    try:
        refused = json.loads(value) if value else {}
    except ValueError:
        return {}
    return refused if isinstance(refused, dict) else {}


# --------------------------------------------------------------------------- rendering

def human_age(seconds: float | None) -> str:
    """``3d04h``, ``2h05m``, ``4m07s``, ``12s``: two units are enough to judge a queue."""
    if seconds is None:
        return "-"
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _recipients_text(row: dict[str, Any]) -> str:
    if row["direction"] == "in":
        return ""
    parts = []
    for recipient in row["recipients"]:
        if recipient["status"]:
            label = f" {recipient['label']}" if recipient["label"] else ""
            parts.append(f"{recipient['organ_id']} {recipient['status']}{label}")
        else:
            parts.append(f"{recipient['organ_id']} -")
    return "\n".join(parts)


def render_status(snapshot: dict[str, Any], *, wide: bool = False):
    """A rich renderable: a summary line per direction, then the item table. Without ``wide``
    the table is made to fit 100 columns: no axis DocId, times as ``MM-DD HH:MM`` (UTC), the
    recipients under the name; the item ID (what every other command takes) is never folded."""
    # rich (≈ 7 MB, 0.1 s) is loaded when a table is drawn, never for `status --json`.
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    counts = snapshot["counts"]
    lines = []
    for direction, label in (("outgoing", "Outgoing"), ("incoming", "Incoming")):
        shown = ", ".join(f"{state} {count}" for state, count in counts[direction].items() if count)
        lines.append(f"{label}: {shown or 'none'}")
    lines.append(f"Oldest pending: {human_age(snapshot['oldest_pending_age_seconds'])}   "
                 f"Last axis contact: {snapshot['last_axis_contact'] or 'never'}"
                 + (f" ({human_age(snapshot['last_axis_contact_age_seconds'])} ago)"
                    if snapshot["last_axis_contact"] else ""))
    for name, reason in (snapshot.get("outbox_refused") or {}).items():
        lines.append(f"Refused in the outbox: {name}: {reason}")
    paused = snapshot.get("delivery_paused")
    if paused:
        lines.append(f"Delivery paused since {paused['since']} ({paused['failures']} failed "
                     f"tries, next {paused['retry_at']}): {paused['reason']}")
    header = Text("\n".join(lines))
    if wide:
        table = Table(show_lines=False, expand=False, title_justify="left")
        columns = ["ID", "Dir", "Kind", "Name / DocumentId", "State", "Att.", "Recipients",
                   "Axis DocId", "Updated"]
    else:  # 100 columns: direction over kind, recipients under the name, short times
        table = Table(show_lines=False, expand=False, box=box.SIMPLE_HEAD, pad_edge=False,
                      collapse_padding=True)
        columns = ["ID", "Dir / Kind", "Name / DocumentId / Recipients", "State", "Att.",
                   "Updated UTC"]
    for column in columns:
        table.add_column(column, overflow="fold",
                         no_wrap=column in ("ID", "State", "Att.", "Updated UTC"))
    several_units = len({row.get("agency") for row in snapshot["items"]}) > 1
    for row in snapshot["items"]:
        name = row["name"] or ""
        if several_units:  # a hub: each item shows its unit
            name = f"{row['agency'] or '-'}: {name}"
        if row["document_id"]:
            name = f"{name}\n{row['document_id']}" if name else row["document_id"]
        if row["direction"] == "in" and row["state"] == "refused" and row["last_error"]:
            name = f"{name}\nrefused: {row['last_error']}"
        state = row["state"]
        style = {"failed": "red", "cancelled": "yellow", "quarantined": "red",
                 "refused": "yellow", "sent": "green", "delivered": "green"}.get(state)
        state_text = Text(state, style=style or "")
        attempts = "" if row["attempts"] is None else str(row["attempts"])
        recipients = _recipients_text(row)
        if wide:
            table.add_row(row["id"], row["direction"], row["kind"], name, state_text, attempts,
                          recipients, row["axis_doc_id"] or "", row["updated_at"] or "")
        else:
            table.add_row(row["id"], f"{row['direction']}\n{row['kind']}",
                          "\n".join(part for part in (name, recipients) if part), state_text,
                          attempts, _short_time(row["updated_at"]))
    if not snapshot["items"]:
        return Group(header, Text("(no items match)"))
    return Group(header, table)


def _short_time(value: str | None) -> str:
    """``2026-11-23T08:00:00.123+00:00`` → ``11-23 08:00`` (the year and zone are in --wide)."""
    if not value:
        return ""
    return f"{value[5:10]} {value[11:16]}" if len(value) >= 16 and value[10] == "T" else value


def watch_status(collect: Callable[[], dict[str, Any]], console, *,
                 interval: float = WATCH_INTERVAL_SECONDS, max_refreshes: int | None = None,
                 sleep: Callable[[float], None] = time.sleep, wide: bool = False) -> int:
    """Redraw ``render_status(collect())`` every ``interval`` seconds until Ctrl-C (or
    ``max_refreshes``, for tests). Returns the number of refreshes drawn."""
    from rich.live import Live  # as in render_status: only when something is drawn

    drawn = 0
    try:
        with Live(render_status(collect(), wide=wide), console=console, auto_refresh=False,
                  transient=False) as live:
            drawn = 1
            while max_refreshes is None or drawn < max_refreshes:
                sleep(interval)
                live.update(render_status(collect(), wide=wide), refresh=True)
                drawn += 1
    except KeyboardInterrupt:
        pass
    return drawn
