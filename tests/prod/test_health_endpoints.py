"""The real listener on port 0: /healthz, /readyz and /metrics follow the daemon's state.

A small real HTTP server plays the axis (it answers with a Date header, or is stopped); the test
plays the daemon's poll loop and records each outcome in the monitor. Time is moved by an
injected clock, never waited for.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from connector.errors import ConnectorError
from connector.service.health import HealthMonitor, HealthServer, HealthSettings, start_health_server
from connector.service.metrics import Metrics


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class AxisStandIn:
    """A loopback HTTP server answering like an axis list call, with a Date header."""

    def __init__(self, date_offset: float = 0.0) -> None:
        self.date_offset = date_offset
        self.server: ThreadingHTTPServer | None = None
        self.port = 0

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                import time
                body = b'{"status":"OK","ErrorCode":"0","data":[]}'
                self.send_response_only(200)  # no automatic Date: ours is the only one
                self.send_header("Date", formatdate(time.time() + outer.date_offset, usegmt=True))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def poll_once(axis: AxisStandIn, monitor: HealthMonitor) -> None:
    """What the daemon's inbound poll does for health: record the outcome of one list call."""
    try:
        response = requests.post(f"http://127.0.0.1:{axis.port}/getReceivedEdocList",
                                 data="{}", timeout=2)
        response.raise_for_status()
    except requests.RequestException as error:
        monitor.record_axis_failure(f"{type(error).__name__}")
    else:
        monitor.record_axis_success(date_header=response.headers.get("Date"), poll_complete=True)


@pytest.fixture
def service(tmp_path):
    import time
    clock = FakeClock(time.time())
    monotonic = FakeClock(1000.0)
    metrics = Metrics()
    settings = HealthSettings(port=0, axis_poll_intervals=3, liveness_timeout_seconds=60,
                              min_free_disk_bytes=1)
    monitor = HealthMonitor(settings, metrics, disk_paths=[tmp_path], poll_interval_seconds=10,
                            clock=clock, monotonic=monotonic)
    now = datetime.fromtimestamp(clock.now, timezone.utc)
    monitor.set_certificate(now - timedelta(days=1), now + timedelta(days=365), "CN=Test")
    monitor.set_journal(True, size_bytes=4096)
    server = HealthServer(monitor).start()
    yield server, monitor, clock, monotonic, metrics
    server.stop()


def get(server: HealthServer, path: str) -> requests.Response:
    return requests.get(server.url + path, timeout=5)


def metric(server: HealthServer, name: str, **labels) -> float:
    text = get(server, "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    raise AssertionError(f"{name}{labels} not in /metrics")


def test_readyz_follows_the_axis_going_down_and_coming_back(service):
    server, monitor, clock, _, _ = service
    axis = AxisStandIn()
    axis.start()
    poll_once(axis, monitor)
    response = get(server, "/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True and body["reasons"] == []
    assert body["checks"]["axis"]["ok"] and body["checks"]["clock"]["ok"]
    assert metric(server, "edxml_connector_ready") == 1

    axis.stop()
    # Down, but not yet for longer than 3 poll intervals (30 s): still ready.
    for _ in range(2):
        clock.now += 10
        poll_once(axis, monitor)
    assert get(server, "/readyz").status_code == 200
    for _ in range(2):
        clock.now += 10
        poll_once(axis, monitor)
    response = get(server, "/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert len(body["reasons"]) == 1 and body["reasons"][0].startswith("axis: last authenticated")
    assert "ConnectionError" in body["reasons"][0]
    assert metric(server, "edxml_connector_ready") == 0
    assert metric(server, "edxml_connector_readiness_check", check="axis") == 0

    axis.start()  # the same port again
    clock.now += 10
    poll_once(axis, monitor)
    assert get(server, "/readyz").status_code == 200
    assert metric(server, "edxml_connector_readiness_check", check="axis") == 1
    assert metric(server, "edxml_connector_last_successful_poll_timestamp_seconds") == clock.now
    axis.stop()


def test_readyz_reports_clock_skew_from_the_axis_date(service):
    server, monitor, _, _, _ = service
    axis = AxisStandIn(date_offset=-600)  # the axis's clock is 10 minutes behind ours
    axis.start()
    try:
        poll_once(axis, monitor)
    finally:
        axis.stop()
    response = get(server, "/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["clock"]["ok"] is False
    assert "ahead of the axis" in response.json()["checks"]["clock"]["detail"]


def test_healthz_follows_the_main_loop_beat(service):
    server, monitor, _, monotonic, _ = service
    assert get(server, "/healthz").status_code == 200
    monotonic.now += 61
    response = get(server, "/healthz")
    assert response.status_code == 503 and response.json()["alive"] is False
    monitor.beat()
    assert get(server, "/healthz").json() == {"alive": True, "seconds_since_beat": 0.0}


def test_expired_certificate_blocks_signing_in_metrics_and_readyz(service):
    server, monitor, clock, _, _ = service
    monitor.record_axis_success()
    now = datetime.fromtimestamp(clock.now, timezone.utc)
    status = monitor.set_certificate(now - timedelta(days=400), now - timedelta(minutes=1))
    assert not status.can_sign
    assert metric(server, "edxml_connector_signing_blocked") == 1
    assert metric(server, "edxml_connector_certificate_expiry_seconds") == pytest.approx(-60)
    response = get(server, "/readyz")
    assert response.status_code == 503
    assert "signing is stopped" in response.json()["checks"]["certificate"]["detail"]


def test_journal_failure_and_metrics_content(service):
    server, monitor, _, _, metrics = service
    monitor.record_axis_success()
    metrics.set_item_counts({("outgoing", "queued"): 7})
    assert metric(server, "edxml_connector_items", direction="outgoing", state="queued") == 7
    assert metric(server, "edxml_connector_journal_size_bytes") == 4096
    assert get(server, "/metrics").headers["Content-Type"].startswith("text/plain")
    monitor.set_journal(False, "attempt to write a readonly database")
    body = get(server, "/readyz").json()
    assert body["reasons"] == ["journal: not writable: attempt to write a readonly database"]


def test_unknown_path_is_404(service):
    server = service[0]
    response = get(server, "/admin")
    assert response.status_code == 404 and "/readyz" in response.json()["endpoints"]


def test_disabled_listener_and_busy_port():
    monitor = HealthMonitor(HealthSettings(port=0))
    assert start_health_server(HealthSettings(enabled=False), monitor) is None
    with HealthServer(monitor, port=0) as first:
        with pytest.raises(ConnectorError, match="cannot listen") as raised:
            HealthServer(monitor, port=first.port).start()
        assert "health.port" in raised.value.hint
