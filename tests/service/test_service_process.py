"""Issue 5's "done when", with the REAL daemon process: systemd notifications on a socket the
test owns; /metrics and /readyz following the daemon's state while the axis goes down and comes
back; nothing secret in anything the daemon wrote."""

from __future__ import annotations

import json
import re
import sqlite3
import time

import pytest
from service_harness import AXIS_SECRET_A, A, drop_bundle, metric, wait_for, write_config

pytestmark = pytest.mark.slow

DAY = 86_400


def _ready(daemon) -> tuple[int, dict]:
    status, body = daemon.get("/readyz")
    return status, json.loads(body)


def _metrics(daemon) -> str:
    status, body = daemon.get("/metrics")
    assert status == 200
    return body.decode()


def test_notify_metrics_and_readiness_follow_the_daemon(tmp_path, dev_certs, simulator,
                                                       start_daemon, notify_socket):
    base = tmp_path / "A"
    (base / "logs").mkdir(parents=True)  # systemd's LogsDirectory= makes it in production
    config = write_config(base, simulator.url, dev_certs.agency_a, dev_certs.ca_cert,
                          logging={"level": "debug", "file": str(base / "logs" / "connector.log")})
    daemon = start_daemon(config, env={"NOTIFY_SOCKET": str(notify_socket.path),
                                       "WATCHDOG_USEC": "2000000"})

    # --- READY=1 only once config, certificate and journal are loaded ----------------------
    wait_for(lambda: daemon.alive() and notify_socket.fields("READY"), 30, "READY=1")
    journal = base / "journal.db"
    assert journal.exists()
    with sqlite3.connect(journal) as db:  # the journal was written before READY
        assert db.execute("select count(*) from kv where key = 'daemon.started_at'").fetchone()[0]
    ready_at, ready_message = next((at, text) for at, text in notify_socket.messages
                                   if "READY=1" in text.splitlines())
    assert "STATUS=outgoing: 0 pending" in ready_message
    # the pings come from the main loop, which turns only once the daemon is ready
    assert all(at >= ready_at for at in notify_socket.times("WATCHDOG=1"))
    loaded = [r["event"] for r in daemon.records()]
    assert "health_listening" in loaded  # the certificate and journal were opened before it

    # --- /readyz green once the axis has been reached and authenticated ---------------------
    status, body = wait_for(lambda: (r := _ready(daemon))[0] == 200 and r, 15, "/readyz 200")
    assert body["ready"] is True
    assert set(body["checks"]) == {"journal", "certificate", "axis", "disk", "clock", "delivery"}
    assert body["reasons"] == []
    assert "within" in body["checks"]["clock"]["detail"]  # measured from the axis's Date
    assert daemon.get("/healthz")[0] == 200

    # --- a document out and (addressed to ourselves) back in --------------------------------
    exchange = base / "exchange"
    wait_for(lambda: (exchange / "outbox").is_dir(), 10, "the exchange tree")
    drop_bundle(exchange / "outbox", "cv101", to=A, number="101")
    wait_for(lambda: (exchange / "sent" / "cv101.receipt.json").exists(), 20, "cv101 sent")
    wait_for(lambda: metric(_metrics(daemon), "edxml_connector_receives_total",
                            outcome="stored"), 20, "the document received back")

    def settled():
        text = _metrics(daemon)
        return metric(text, "edxml_connector_items", direction="outgoing", state="sent") \
            and text
    text = wait_for(settled, 15, "items gauge refreshed")
    assert metric(text, "edxml_connector_sends_total", outcome="accepted") >= 1
    assert metric(text, "edxml_connector_items", direction="incoming", state="delivered") >= 1
    for operation in ("sendEdoc", "getReceivedEdocList", "getAgenciesListQD20", "downloadEdoc",
                      "updateStatus"):
        count = metric(text, "edxml_connector_axis_request_duration_seconds_count",
                       operation=operation)
        assert count and count >= 1, operation
    expiry = metric(text, "edxml_connector_certificate_expiry_seconds")
    assert 700 * DAY < expiry < 731 * DAY  # dev certificate: valid 730 days
    assert metric(text, "edxml_connector_signing_blocked") == 0
    assert abs(metric(text, "edxml_connector_last_successful_poll_timestamp_seconds")
               - time.time()) < 15
    assert metric(text, "edxml_connector_journal_size_bytes") > 0
    assert metric(text, "edxml_connector_ready") == 1
    wait_for(lambda: any(re.search(r"outgoing: 0 pending, [1-9]\d* sent", s)
                         for s in notify_socket.fields("STATUS")), 10,
             "STATUS= with the sent count")

    # --- the axis goes down: sends retried, oldest pending grows, /readyz turns 503 ---------
    simulator.stop()
    down_at = time.monotonic()
    drop_bundle(exchange / "outbox", "cv102", to=A, number="102")
    status, body = wait_for(lambda: (r := _ready(daemon))[0] == 503 and r, 15, "/readyz 503")
    # nothing is lost while the axis is down: the document waits in work/, claimed
    assert any(p.name.endswith("--cv102") for p in (exchange / "work").iterdir())
    waited = time.monotonic() - down_at
    assert waited >= 2 * 1 - 0.5  # not before K=2 poll intervals of 1 s
    axis = body["checks"]["axis"]
    assert axis["ok"] is False and "poll intervals" in axis["detail"]
    assert any(reason.startswith("axis") for reason in body["reasons"])

    def retried():
        text = _metrics(daemon)
        return (metric(text, "edxml_connector_retries_total", direction="outgoing") or 0) >= 1 \
            and (metric(text, "edxml_connector_oldest_pending_age_seconds",
                        direction="outgoing") or 0) > 0 and text
    text = wait_for(retried, 15, "a retry and an oldest-pending age")
    assert metric(text, "edxml_connector_sends_total", outcome="retryable_error") >= 1
    assert metric(text, "edxml_connector_ready") == 0
    assert metric(text, "edxml_connector_readiness_check", check="axis") == 0

    # --- the axis comes back: /readyz 200 again, the waiting document goes ------------------
    simulator.start()
    wait_for(lambda: _ready(daemon)[0] == 200, 15, "/readyz 200 after the axis returned")
    wait_for(lambda: (exchange / "sent" / "cv102.receipt.json").exists(), 20, "cv102 sent")
    wait_for(lambda: metric(_metrics(daemon), "edxml_connector_oldest_pending_age_seconds",
                            direction="outgoing") == 0, 15, "nothing pending any more")

    # --- watchdog pings kept coming all along ------------------------------------------------
    pings = notify_socket.times("WATCHDOG=1")
    assert len(pings) >= 5
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert max(gaps) < 2.0  # WATCHDOG_USEC=2 s: never a gap systemd would act on

    code = daemon.stop()
    assert code == 0, daemon.output()[-3000:]
    wait_for(lambda: notify_socket.fields("STOPPING"), 2, "STOPPING=1")

    # --- secrets: not in stdout, stderr or the rotating log file -----------------------------
    key_password = dev_certs.agency_a.password_file.read_text().strip()
    log_file = (base / "logs" / "connector.log").read_text()
    assert '"event": "daemon_started"' in log_file or '"event":"daemon_started"' in log_file
    everything = daemon.output() + log_file
    assert len(everything) > 10_000  # debug level: plenty of output to leak into
    for secret in (AXIS_SECRET_A, key_password):
        assert secret not in everything
    for line in daemon.lines:  # every stdout line is one JSON object with the fixed fields
        record = json.loads(line)
        assert {"timestamp", "level", "event"} <= set(record)
