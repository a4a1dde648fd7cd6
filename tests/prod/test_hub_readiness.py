"""A hub's readiness (issue 14, part 3/4): each unit reported with its own checks; the hub stays
ready while the shared parts work, naming the paused units; a unit not polled yet (its turn in
the round) is not paused; the axis check fails only when no unit reaches the axis."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from connector.service.health import HealthSettings, HealthState, evaluate_hub

NOW = 1_800_000_000.0
VALID_UNTIL = datetime.fromtimestamp(NOW, timezone.utc) + timedelta(days=400)
SETTINGS = HealthSettings(min_free_disk_bytes=0)


def unit(**fields) -> HealthState:
    base = {"started_at": NOW - 600, "last_beat": NOW, "poll_interval_seconds": 600,
            "certificate_not_before": VALID_UNTIL - timedelta(days=730),
            "certificate_not_after": VALID_UNTIL}
    return HealthState(**{**base, **fields})


def hub_state() -> HealthState:
    return HealthState(started_at=NOW - 600, last_beat=NOW, journal_writable=True)


def test_one_paused_unit_is_named_and_the_hub_stays_ready():
    readiness = evaluate_hub(hub_state(), SETTINGS, NOW, {
        "000.01.00.U00": (unit(last_axis_success=NOW - 5), None),
        "000.01.00.U01": (unit(last_axis_error="the axis refused our credentials (HTTP 401)"), None),
        "000.01.00.U02": (unit(), "certificate: no such file /etc/units/U02.p12"),
        "000.01.00.U03": (unit(), None),  # not polled yet: its turn comes
    })
    body = readiness.as_json()
    assert body["ready"] is True
    assert body["paused_units"] == ["000.01.00.U01", "000.01.00.U02"]
    assert "401" in " ".join(body["units"]["000.01.00.U01"]["reasons"])
    assert "U02.p12" in " ".join(body["units"]["000.01.00.U02"]["reasons"])
    assert body["units"]["000.01.00.U03"]["ready"] is True
    assert body["checks"]["units"]["warning"] == "paused: 000.01.00.U01, 000.01.00.U02"
    assert body["checks"]["axis"]["detail"] == "reached by 1 of 4 units"


def test_the_hub_is_not_ready_when_no_unit_reaches_the_axis_or_the_journal_fails():
    refused = {f"000.01.00.U0{i}": (unit(last_axis_error="connection refused"), None)
               for i in range(3)}
    assert evaluate_hub(hub_state(), SETTINGS, NOW, refused).ready is False
    broken = HealthState(started_at=NOW, last_beat=NOW, journal_writable=False,
                         journal_error="disk I/O error")
    readiness = evaluate_hub(broken, SETTINGS, NOW,
                             {"000.01.00.U00": (unit(last_axis_success=NOW), None)})
    assert readiness.ready is False and any("journal" in r for r in readiness.reasons)
