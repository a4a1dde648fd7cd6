"""The delivery pause's arithmetic: doubling to a ceiling, one report per change, a clean end."""

from __future__ import annotations

from connector.pipeline.delivery_backoff import DeliveryBackoff, DeliveryPause


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_pause_doubles_up_to_its_ceiling_and_reports_only_changes():
    clock = Clock()
    backoff = DeliveryBackoff(first=30, longest=100, clock=clock)
    assert backoff.ready() and not backoff.paused
    assert backoff.failed("table missing") is True
    waits = []
    for _ in range(4):
        assert not backoff.ready()
        start = clock.now
        while not backoff.ready():
            clock.now += 1
        waits.append(clock.now - start)
        assert backoff.failed("table missing") is False  # same reason: not reported again
    assert waits == [30, 60, 100, 100]
    assert backoff.pause is not None and backoff.pause.failures == 5
    assert backoff.failed("permission denied") is True  # a new reason is news
    assert backoff.succeeded() is True and backoff.ready() and backoff.succeeded() is False


def test_the_recorded_pause_round_trips_and_garbage_reads_as_none():
    backoff = DeliveryBackoff(clock=Clock())
    backoff.failed("no such table: van_ban_den")
    pause = backoff.pause
    assert pause is not None
    assert DeliveryPause.from_json(pause.as_json()) == pause
    for garbage in (None, "", "not json", '{"reason": 1}', "[]"):
        assert DeliveryPause.from_json(garbage) is None
