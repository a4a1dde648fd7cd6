"""Backing off from an agency side that refuses what it is given.

WHY: a DMS table the mapping cannot insert into (a missing column, a key it cannot fill, a
constraint) fails the same way for every received item, at every poll. Retrying each pending
item every minute repeats one error line per item per poll and hammers the DMS; what an operator
needs is one line saying delivery is paused and why, the reason in ``/readyz`` and ``status``,
and the connector trying again by itself, less and less often, until the side takes the items.
Received items are not at risk meanwhile: they are stored and acknowledged, only their delivery
waits (``resume`` takes them when the pause ends).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

FIRST_PAUSE_SECONDS = 10.0
LONGEST_PAUSE_SECONDS = 900.0
"""The pause doubles with each failed try, from 10 s up to 15 minutes: a disk freed or a table
fixed within minutes is seen within seconds, a side broken for hours is tried four times an
hour."""


@dataclass
class DeliveryPause:
    """Why delivery to the agency side waits, and until when (what ``status`` shows)."""

    reason: str
    failures: int
    since: dt.datetime
    retry_at: dt.datetime

    def as_json(self) -> str:
        return json.dumps({"reason": self.reason, "failures": self.failures,
                           "since": self.since.isoformat(), "retry_at": self.retry_at.isoformat()})

    @classmethod
    def from_json(cls, value: str | None) -> DeliveryPause | None:
        """The pause ``status`` reads from the journal; None when none is recorded (or the value
        is not one, which ``status`` must survive)."""
        if not value:
            return None
        try:
            data = json.loads(value)
            return cls(reason=str(data["reason"]), failures=int(data["failures"]),
                       since=dt.datetime.fromisoformat(data["since"]),
                       retry_at=dt.datetime.fromisoformat(data["retry_at"]))
        except (ValueError, KeyError, TypeError):
            return None


class DeliveryBackoff:
    """The pause state of one agency side: ``ready()`` before a delivery, then ``failed(reason)``
    or ``succeeded()``. Both return True when the standing changes, for the caller to log and
    record once rather than at every try."""

    def __init__(self, *, first: float = FIRST_PAUSE_SECONDS,
                 longest: float = LONGEST_PAUSE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.first = first
        self.longest = longest
        self._clock = clock
        self._next_try = 0.0
        self.pause: DeliveryPause | None = None

    @property
    def paused(self) -> bool:
        return self.pause is not None

    def ready(self) -> bool:
        """True when a delivery may be tried now: not paused, or the pause is over."""
        return self.pause is None or self._clock() >= self._next_try

    def failed(self, reason: str) -> bool:
        failures = 1 if self.pause is None else self.pause.failures + 1
        delay = min(self.longest, self.first * 2 ** (failures - 1))
        self._next_try = self._clock() + delay
        now = dt.datetime.now(dt.timezone.utc)
        changed = self.pause is None or self.pause.reason != reason
        self.pause = DeliveryPause(reason=reason, failures=failures,
                                   since=self.pause.since if self.pause else now,
                                   retry_at=now + dt.timedelta(seconds=delay))
        return changed

    def succeeded(self) -> bool:
        changed = self.pause is not None
        self.pause = None
        self._next_try = 0.0
        return changed
