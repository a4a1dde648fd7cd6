"""Polling that scales (issue 14, part 6): an idle unit is asked with the axis's count calls and
listed only when something waits; a unit that received (or sent) something lately is listed
every ``axis_poll_seconds``; a hub's units are spread over the interval. The axis here is a
recording stand-in (what is asked, in which order), the journal a real SQLite one."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from connector.axis.errors import PermanentAxisError, TransientAxisError
from connector.config import settings_from_mapping
from connector.journal import Journal
from connector.journal.schema import leases
from connector.pipeline.inbound import Inbound
from connector.service.unit import Unit


class RecordingAxis:
    def __init__(self, counts: dict[str, object]) -> None:
        self.counts = counts
        self.calls: list[str] = []

    def count_received(self, messagetype: str) -> int:
        self.calls.append(f"count {messagetype}")
        answer = self.counts[messagetype]
        if isinstance(answer, Exception):
            raise answer
        return int(answer)  # type: ignore[call-overload]

    def list_received(self, messagetype: str):
        self.calls.append(f"list {messagetype}")
        return []


def settings(tmp_path, **schedules):
    secret = tmp_path / "secret"
    secret.write_text("x\n")
    secret.chmod(0o600)
    return settings_from_mapping({
        "agency": {"organ_id": "000.01.00.U00", "name": "U"},
        "certificate": {"p12_file": "/nowhere.p12"},
        "axis": {"endpoint": "http://127.0.0.1:9", "secret_file": str(secret)},
        "journal": {"url": f"sqlite:///{tmp_path / 'journal.db'}"},
        "state_dir": str(tmp_path), "schedules": schedules})


@pytest.fixture
def inbound_for(tmp_path):
    journals = []

    def make(counts):
        config = settings(tmp_path)
        journal = Journal.open(config.journal.url, agency="000.01.00.U00")
        journals.append(journal)
        axis = RecordingAxis(counts)
        runtime = SimpleNamespace(journal=journal, settings=config, axis=axis, database=None,
                                  folder=None)
        return Inbound(runtime), axis

    yield make
    for journal in journals:
        journal.close()


def test_an_idle_poll_lists_only_the_kind_the_count_says_is_waiting(inbound_for):
    inbound, axis = inbound_for({"edoc": 0, "status": 2})
    inbound.poll(ask_first=True)
    assert axis.calls == ["count edoc", "count status", "list status"]
    inbound, axis = inbound_for({"edoc": 0, "status": 0})
    inbound.poll(ask_first=True)
    assert axis.calls == ["count edoc", "count status"]  # two cheap calls, nothing listed
    # nothing waited: the poller lease was not even taken (the poll time is all it writes)
    with inbound.journal.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(leases)).scalar() == 0
    inbound, axis = inbound_for({"edoc": 5, "status": 0})
    inbound.poll()  # an active unit: listed at once, no count call
    assert axis.calls == ["list edoc", "list status"]


def test_an_axis_without_the_count_call_is_listed_and_an_unreachable_one_fails(inbound_for):
    missing = TransientAxisError("HTTP 404 Not Found", http_status=404)
    inbound, axis = inbound_for({"edoc": missing, "status": PermanentAxisError("X", "unknown")})
    inbound.poll(ask_first=True)
    assert axis.calls == ["count edoc", "count status", "list edoc", "list status"]
    inbound, axis = inbound_for({"edoc": TransientAxisError("connection refused"), "status": 0})
    with pytest.raises(TransientAxisError):  # nothing is assumed empty
        inbound.poll(ask_first=True)


class CountingInbound:
    def __init__(self) -> None:
        self.asked: list[bool] = []
        self.listed = 0

    def poll(self, *, ask_first: bool = False) -> dict[str, int]:
        self.asked.append(ask_first)
        return {"listed": self.listed, "failed": 0}


def unit(tmp_path, place: float, **schedules) -> Unit:
    made = Unit(settings(tmp_path, **schedules), runtime=None, health=None, metrics=None,  # type: ignore[arg-type]
                executor=None, wake=threading.Event(), place=place)
    made.inbound = CountingInbound()  # type: ignore[assignment]
    return made


def test_idle_units_are_asked_rarely_active_ones_often_and_spread_over_the_round(tmp_path):
    quiet = unit(tmp_path, 0.5, axis_poll_seconds=30, idle_poll_seconds=600)
    now = time.monotonic()
    assert 299 < quiet.next_poll - now <= 300  # its place in the 10-minute round
    assert not quiet.poll_due(now) and quiet.poll_due(now + 301)
    quiet.poll()
    assert quiet.inbound.asked == [True]  # type: ignore[union-attr]
    assert 599 < quiet.next_poll - time.monotonic() <= 600
    quiet.inbound.listed = 1  # type: ignore[union-attr]
    quiet.poll()  # something arrived: active from now on, listed every 30 s
    assert quiet.active and 29 < quiet.next_poll - time.monotonic() <= 30
    quiet.inbound.listed = 0  # type: ignore[union-attr]
    quiet.poll()
    assert quiet.inbound.asked == [True, True, False]  # type: ignore[union-attr]
    assert 29 < quiet.next_poll - time.monotonic() <= 30


def test_a_single_agency_polls_at_once_and_every_axis_poll_seconds(tmp_path):
    single = unit(tmp_path, 0.0, axis_poll_seconds=60)
    assert single.poll_due(time.monotonic())
    single.poll()
    assert single.inbound.asked == [False]  # type: ignore[union-attr]
    assert 59 < single.next_poll - time.monotonic() <= 60
