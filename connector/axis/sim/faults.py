"""Fault injection for the simulator: the ways a real axis (or the network to it) misbehaves.

Each request draws exactly one random number from a seeded generator, so a given seed and a given
sequence of requests always produce the same faults. Besides rates, ``next`` forces a fault on
the next N requests (``{"next": {"error": 2}}``), which is what tests use to be exact.

Kinds, in the order a draw is compared against their rates:

* ``hang`` — read the request, then answer nothing for ``hang_seconds`` and close (a read timeout);
* ``reset`` — reset the TCP connection before reading the request (nothing happens);
* ``error`` — answer HTTP ``error_status`` (503 by default); nothing happens;
* ``malformed`` — answer HTTP 200 with a body that is not valid JSON; nothing happens;
* ``lose_response`` — do the operation (a send is stored), then close without answering.

``latency_ms`` is added to every request; ``relist_acked`` makes getReceivedEdocList list items
already acknowledged ``done``. ``operations`` limits all faults to the named operations.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from connector.axis.errors import AxisSettingsError
from connector.axis.protocol import OPERATIONS

FAULT_KINDS = ("hang", "reset", "error", "malformed", "lose_response")


@dataclass
class FaultConfig:
    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    reset_rate: float = 0.0
    malformed_rate: float = 0.0
    lose_response_rate: float = 0.0
    relist_acked: bool = False
    operations: list[str] | None = None
    next: dict[str, int] = field(default_factory=dict)

    def validate(self) -> None:
        total = 0.0
        for kind in FAULT_KINDS:
            rate = getattr(self, f"{kind}_rate")
            if not 0.0 <= rate <= 1.0:
                raise AxisSettingsError(f"{kind}_rate must be between 0 and 1, not {rate}")
            total += rate
        if total > 1.0:
            raise AxisSettingsError(f"fault rates add up to {total:g}, more than 1")
        if self.latency_ms < 0 or self.hang_seconds < 0:
            raise AxisSettingsError("latency_ms and hang_seconds must not be negative")
        if not 400 <= int(self.error_status) <= 599:
            raise AxisSettingsError("error_status must be an HTTP error status (400-599)")
        if self.operations is not None:
            unknown = [op for op in self.operations if op not in OPERATIONS]
            if unknown:  # a typo would otherwise silently inject nothing
                raise AxisSettingsError(f"operations {unknown} are not axis operations",
                                        hint=f"known: {', '.join(OPERATIONS)}")
        for kind, count in self.next.items():
            if kind not in FAULT_KINDS or not isinstance(count, int) or count < 0:
                raise AxisSettingsError(f"next.{kind} must name a fault kind {FAULT_KINDS} "
                                        "with a non-negative integer count")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    kind: str | None
    latency_seconds: float
    hang_seconds: float
    error_status: int


class FaultInjector:
    """Thread-safe, seeded fault decisions; its configuration can be changed at run time."""

    def __init__(self, config: FaultConfig | None = None, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.config = config or FaultConfig()
        self.config.validate()
        self.seed = seed
        self._random = random.Random(seed)
        self.injected: dict[str, int] = {kind: 0 for kind in FAULT_KINDS}

    def update(self, changes: dict[str, Any]) -> FaultConfig:
        """Apply a partial change (the admin endpoint's JSON). ``seed`` re-seeds; ``clear: true``
        first resets everything to no faults."""
        known = {f.name for f in fields(FaultConfig)}
        unknown = set(changes) - known - {"seed", "clear"}
        if unknown:
            raise AxisSettingsError(f"unknown fault setting(s) {sorted(unknown)}",
                                    hint=f"known: {sorted(known | {'seed', 'clear'})}")
        with self._lock:
            base = FaultConfig() if changes.get("clear") else self.config
            merged = {**asdict(base), **{k: v for k, v in changes.items() if k in known}}
            try:
                candidate = FaultConfig(**merged)
                candidate.validate()
            except (TypeError, ValueError) as error:
                raise AxisSettingsError(f"invalid fault settings: {error}") from None
            self.config = candidate
            if "seed" in changes:
                self.seed = changes["seed"]
                self._random = random.Random(self.seed)
            return self.config

    def decide(self, operation: str) -> FaultDecision:
        with self._lock:
            config = self.config
            latency = config.latency_ms / 1000.0
            kind: str | None = None
            if config.operations is None or operation in config.operations:
                draw = self._random.random()
                for candidate in FAULT_KINDS:
                    if config.next.get(candidate, 0) > 0:
                        config.next[candidate] -= 1
                        kind = candidate
                        break
                else:
                    threshold = 0.0
                    for candidate in FAULT_KINDS:
                        threshold += getattr(config, f"{candidate}_rate")
                        if draw < threshold:
                            kind = candidate
                            break
            else:
                latency = 0.0
            if kind:
                self.injected[kind] += 1
            return FaultDecision(kind=kind, latency_seconds=latency,
                                 hang_seconds=config.hang_seconds,
                                 error_status=int(config.error_status))

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"config": self.config.to_json(), "seed": self.seed,
                    "injected": dict(self.injected)}
