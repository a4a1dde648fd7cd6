"""The metrics registry: names, labels, and values that follow what the daemon records."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from connector.service.metrics import Metrics, sqlite_journal_size


def samples(metrics: Metrics) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(metrics: Metrics, name: str, **labels) -> float:
    return samples(metrics)[(name, frozenset(labels.items()))]


def test_every_name_is_prefixed_and_counters_start_at_zero():
    metrics = Metrics()
    names = {name for name, _ in samples(metrics)}
    assert names and all(name.startswith("edxml_connector_") for name in names)
    assert value(metrics, "edxml_connector_sends_total", outcome="accepted") == 0
    assert value(metrics, "edxml_connector_receives_total", outcome="quarantined") == 0
    assert value(metrics, "edxml_connector_retries_total", direction="outgoing") == 0


def test_two_instances_do_not_collide():
    first, second = Metrics(), Metrics()
    first.record_send("accepted")
    assert value(first, "edxml_connector_sends_total", outcome="accepted") == 1
    assert value(second, "edxml_connector_sends_total", outcome="accepted") == 0


def test_counters_and_histogram():
    metrics = Metrics()
    metrics.record_send("accepted")
    metrics.record_send("accepted")
    metrics.record_send("retryable_error")
    metrics.record_receive("duplicate")
    metrics.record_retry("incoming")
    metrics.observe_axis_request("sendEdoc", 0.2)
    with metrics.time_axis_request("getEdoc"):
        pass
    with pytest.raises(RuntimeError), metrics.time_axis_request("getEdoc"):
        raise RuntimeError("a failed call is timed too")
    assert value(metrics, "edxml_connector_sends_total", outcome="accepted") == 2
    assert value(metrics, "edxml_connector_sends_total", outcome="retryable_error") == 1
    assert value(metrics, "edxml_connector_receives_total", outcome="duplicate") == 1
    assert value(metrics, "edxml_connector_retries_total", direction="incoming") == 1
    assert value(metrics, "edxml_connector_axis_request_duration_seconds_count",
                 operation="sendEdoc") == 1
    assert value(metrics, "edxml_connector_axis_request_duration_seconds_bucket",
                 operation="sendEdoc", le="0.25") == 1
    assert value(metrics, "edxml_connector_axis_request_duration_seconds_bucket",
                 operation="sendEdoc", le="0.1") == 0
    assert value(metrics, "edxml_connector_axis_request_duration_seconds_count",
                 operation="getEdoc") == 2


@pytest.mark.parametrize("call", [
    lambda m: m.record_send("acepted"),
    lambda m: m.record_receive("ok"),
    lambda m: m.record_retry("sideways"),
    lambda m: m.observe_axis_request("sendDoc", 1.0),
    lambda m: m.set_item_counts({("out", "queued"): 1}),
])
def test_unknown_label_values_are_refused(call):
    with pytest.raises(ValueError, match="unknown"):
        call(Metrics())


def test_item_counts_replace_the_previous_snapshot():
    metrics = Metrics()
    metrics.set_item_counts({("outgoing", "queued"): 4, ("outgoing", "failed"): 1,
                             ("incoming", "delivered"): 9})
    assert value(metrics, "edxml_connector_items", direction="outgoing", state="queued") == 4
    metrics.set_item_counts({("outgoing", "sent"): 5})
    # A state that disappeared from the journal's counts reads 0, not its stale value.
    assert value(metrics, "edxml_connector_items", direction="outgoing", state="queued") == 0
    assert value(metrics, "edxml_connector_items", direction="outgoing", state="failed") == 0
    assert value(metrics, "edxml_connector_items", direction="outgoing", state="sent") == 5


def test_certificate_expiry_and_signing_blocked():
    metrics = Metrics()
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    metrics.set_certificate_expiry(now + timedelta(days=10), now)
    assert value(metrics, "edxml_connector_certificate_expiry_seconds") == 10 * 86400
    assert value(metrics, "edxml_connector_signing_blocked") == 0
    metrics.set_certificate_expiry(now - timedelta(seconds=5), now)
    assert value(metrics, "edxml_connector_certificate_expiry_seconds") == -5
    assert value(metrics, "edxml_connector_signing_blocked") == 1


def test_gauges_for_poll_journal_pending(tmp_path):
    metrics = Metrics()
    metrics.set_last_successful_poll(1_700_000_000.5)
    metrics.set_oldest_pending_age("outgoing", 42.0)
    metrics.set_oldest_pending_age("incoming", None)
    database = tmp_path / "journal.db"
    database.write_bytes(b"x" * 1000)
    (tmp_path / "journal.db-wal").write_bytes(b"y" * 24)
    metrics.set_journal_size(sqlite_journal_size(database))
    assert value(metrics, "edxml_connector_last_successful_poll_timestamp_seconds") == 1_700_000_000.5
    assert value(metrics, "edxml_connector_oldest_pending_age_seconds", direction="outgoing") == 42
    assert value(metrics, "edxml_connector_oldest_pending_age_seconds", direction="incoming") == 0
    assert value(metrics, "edxml_connector_journal_size_bytes") == 1024
    assert sqlite_journal_size(tmp_path / "absent.db") == 0
