"""Immutable snapshots of journal rows handed to callers.

The pipelines never hold a live row: they get a record, act on the outside world, and then call a
transition with the record's id. The record therefore says everything a step needs to decide what
to do next (e.g. ``needs_packaging``).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from connector.journal.states import IncomingState, OutgoingState

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, 26 Crockford base32 characters.

    Sortable by creation time (handy when an operator lists items) and unique without asking the
    database, so the id exists before the row does and can name files and log lines at once.
    """
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(secrets.token_bytes(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class DeliveryRecord:
    """One recipient of an outgoing item and the latest status it reported."""

    organ_id: str
    status_code: str | None
    description: str | None
    status_at: dt.datetime | None
    updated_at: dt.datetime


@dataclass(frozen=True)
class OutgoingRecord:
    id: str
    source: str
    source_ref: str
    kind: str
    document_id: str | None
    business_type: int | None
    package_path: str | None
    package_sha256: str | None
    package_size: int | None
    state: OutgoingState
    attempts: int
    next_attempt_at: dt.datetime | None
    claimed_at: dt.datetime | None
    claimed_by: str | None
    last_error: str | None
    axis_doc_id: str | None
    meta: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    instance: str | None = None  # the connector instance that took it in (sends it)
    signed_by: str | None = None  # SHA-256 of the certificate that signed the stored package
    agency: str = ""  # the unit (OrganId) it is sent as
    deliveries: tuple[DeliveryRecord, ...] = field(default=())

    @property
    def needs_packaging(self) -> bool:
        """True until ``mark_packaged`` stored the bytes every attempt will send."""
        return self.package_sha256 is None

    @property
    def recipients(self) -> list[str]:
        return [delivery.organ_id for delivery in self.deliveries]


@dataclass(frozen=True)
class IncomingRecord:
    id: str
    axis_doc_id: str
    messagetype: str
    state: IncomingState
    sender: str | None
    document_id: str | None
    business_type: int | None
    package_path: str | None
    package_sha256: str | None
    package_size: int | None
    signature_state: str | None
    delivered_location: str | None
    quarantined: bool
    quarantine_reason: str | None
    quarantine_location: str | None
    duplicate_of: str | None
    last_error: str | None
    meta: dict[str, Any]
    stored_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    instance: str | None = None  # the connector instance whose package store holds it
    agency: str = ""  # the unit (OrganId) it was received for

    @property
    def is_stored(self) -> bool:
        return self.stored_at is not None

    @property
    def is_acknowledged(self) -> bool:
        return self.acknowledged_at is not None


@dataclass(frozen=True)
class StatusRecord:
    """One received status, kept forever (until retention) even when a later one supersedes it."""

    id: int
    outgoing_id: str | None
    incoming_id: str | None
    document_id: str
    from_organ_id: str
    to_organ_id: str | None
    code: str
    description: str | None
    status_at: dt.datetime | None
    recorded_at: dt.datetime


@dataclass(frozen=True)
class EventRecord:
    id: int
    item_id: str | None
    item_kind: str
    event: str
    outcome: str
    detail: dict[str, Any]
    at: dt.datetime


def default_instance() -> str:
    """The stable name of this connector installation: the host name (like the folder
    adapter's default instance). Unlike :func:`default_owner` it survives a restart, which is
    what ties an item to the server holding its package."""
    return os.uname().nodename


def default_owner() -> str:
    """Who holds a claim: host and pid, so a stale claim can be traced to a process."""
    return f"{os.uname().nodename}:{os.getpid()}"
