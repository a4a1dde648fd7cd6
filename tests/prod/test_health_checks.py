"""Readiness checks as pure functions over a HealthState snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from connector.errors import CertificateError
from connector.service.health import (
    DiskUsage,
    HealthSettings,
    HealthState,
    certificate_status,
    check_axis,
    check_certificate,
    check_clock,
    check_disk,
    check_journal,
    clock_skew_from_date,
    ensure_can_sign,
    evaluate,
    measure_disk,
)

NOW = 1_800_000_000.0
NOW_DT = datetime.fromtimestamp(NOW, timezone.utc)
SETTINGS = HealthSettings()
GiB = 1024 ** 3


def healthy(**changes) -> HealthState:
    base = dict(
        started_at=NOW - 3600, last_beat=NOW, poll_interval_seconds=60,
        journal_writable=True, certificate_not_before=NOW_DT - timedelta(days=300),
        certificate_not_after=NOW_DT + timedelta(days=200), certificate_subject="CN=Agency A",
        last_axis_success=NOW - 30, clock_skew_seconds=1.0,
        disk={"/var/lib/edxml-connector": DiskUsage(free_bytes=20 * GiB, total_bytes=40 * GiB)})
    base.update(changes)
    return HealthState(**base)


def test_a_healthy_state_is_ready():
    readiness = evaluate(healthy(), SETTINGS, NOW)
    assert readiness.ready
    assert readiness.reasons == [] and readiness.warnings == []
    assert set(readiness.as_json()["checks"]) == {"journal", "certificate", "axis", "disk", "clock",
                                                  "delivery"}


def test_journal():
    assert not check_journal(healthy(journal_writable=None), SETTINGS, NOW).ok
    result = check_journal(healthy(journal_writable=False, journal_error="database is locked"),
                           SETTINGS, NOW)
    assert not result.ok and "database is locked" in result.detail


def test_certificate_warning_window_keeps_ready_but_warns():
    state = healthy(certificate_not_after=NOW_DT + timedelta(days=12))
    result = check_certificate(state, SETTINGS, NOW)
    assert result.ok
    assert "expires in 12.0 days" in result.warning and "CN=Agency A" in result.warning
    readiness = evaluate(state, SETTINGS, NOW)
    assert readiness.ready and readiness.warnings[0].startswith("certificate:")
    # The window is a setting.
    assert check_certificate(state, HealthSettings(certificate_warning_days=7), NOW).warning is None


def test_certificate_min_days_setting_fails_readiness():
    state = healthy(certificate_not_after=NOW_DT + timedelta(days=5))
    assert check_certificate(state, SETTINGS, NOW).ok
    result = check_certificate(state, HealthSettings(certificate_min_days=7), NOW)
    assert not result.ok and "fewer than the required 7" in result.detail


@pytest.mark.parametrize("changes, words", [
    ({"certificate_not_after": NOW_DT - timedelta(hours=1)}, "expired"),
    ({"certificate_not_before": NOW_DT + timedelta(days=1)}, "not valid before"),
    ({"certificate_not_after": None}, "no signing certificate"),
])
def test_certificate_that_cannot_sign(changes, words):
    state = healthy(**changes)
    result = check_certificate(state, SETTINGS, NOW)
    assert not result.ok and words in result.detail
    status = certificate_status(state.certificate_not_before, state.certificate_not_after, NOW_DT)
    assert not status.can_sign
    with pytest.raises(CertificateError, match=words) as raised:
        ensure_can_sign(status)
    assert "reload" in raised.value.hint


def test_ensure_can_sign_passes_a_valid_certificate():
    ensure_can_sign(certificate_status(None, NOW_DT + timedelta(days=1), NOW_DT))


def test_axis_within_k_poll_intervals():
    settings = HealthSettings(axis_poll_intervals=3)
    assert check_axis(healthy(last_axis_success=NOW - 179), settings, NOW).ok
    late = check_axis(healthy(last_axis_success=NOW - 181, last_axis_error="connection refused"),
                      settings, NOW)
    assert not late.ok
    assert "3 poll intervals (180 s)" in late.detail and "connection refused" in late.detail
    never = check_axis(healthy(last_axis_success=None), settings, NOW)
    assert not never.ok and "not reached since start" in never.detail


def test_disk_threshold():
    settings = HealthSettings(min_free_disk_bytes=GiB)
    low = healthy(disk={"/exchange": DiskUsage(100 * 1024 * 1024, 10 * GiB),
                        "/state": DiskUsage(5 * GiB, 10 * GiB)})
    result = check_disk(low, settings, NOW)
    assert not result.ok and "/exchange: 100 MiB free" in result.detail and "/state" not in result.detail
    missing = healthy(disk={}, disk_errors={"/gone": "No such file or directory"})
    assert not check_disk(missing, settings, NOW).ok


def test_measure_disk_reads_real_filesystems(tmp_path):
    usage, errors = measure_disk([tmp_path, tmp_path / "missing"])
    assert usage[str(tmp_path)].total_bytes > 0
    assert str(tmp_path / "missing") in errors


def test_clock_skew():
    assert check_clock(healthy(clock_skew_seconds=119), SETTINGS, NOW).ok
    ahead = check_clock(healthy(clock_skew_seconds=121), SETTINGS, NOW)
    assert not ahead.ok and "121 s ahead of the axis" in ahead.detail
    behind = check_clock(healthy(clock_skew_seconds=-300), SETTINGS, NOW)
    assert not behind.ok and "behind" in behind.detail
    assert check_clock(healthy(clock_skew_seconds=None), SETTINGS, NOW).ok


def test_clock_skew_from_http_date():
    header = format_datetime(datetime.fromtimestamp(NOW, timezone.utc), usegmt=True)
    assert clock_skew_from_date(header, NOW + 150) == pytest.approx(150)
    assert clock_skew_from_date(header, NOW - 10) == pytest.approx(-10)
    assert clock_skew_from_date("not a date", NOW) is None


def test_reasons_name_the_failing_checks():
    readiness = evaluate(healthy(journal_writable=False, journal_error="disk I/O error",
                                 clock_skew_seconds=500), SETTINGS, NOW)
    assert not readiness.ready
    assert [reason.split(":")[0] for reason in readiness.reasons] == ["journal", "clock"]
