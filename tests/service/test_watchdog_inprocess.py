"""The watchdog vouches for the daemon's loops: block one and the WATCHDOG=1 pings stop (so
systemd would restart the service); unblock it and they resume. A clock far from the axis's
HTTP Date turns /readyz red. The daemon runs in a thread here so that the test can reach in."""

from __future__ import annotations

import json
import threading
import time

import pytest
from service_harness import http_get, never, wait_for, write_config

from connector.axis.sim import server as simulator_module
from connector.config import load_config
from connector.service.daemon import Daemon

pytestmark = pytest.mark.slow  # each runs a real daemon for a few seconds


@pytest.fixture
def run_daemon(monkeypatch):
    running: list[tuple[Daemon, threading.Thread]] = []

    def start(config, **env) -> Daemon:
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        daemon = Daemon(load_config(config), install_signals=False, configure_logs=False,
                        folder_instance="test")
        thread = threading.Thread(target=daemon.run, name="daemon-under-test", daemon=True)
        thread.start()
        running.append((daemon, thread))
        assert daemon.ready_event.wait(30), "the daemon did not become ready"
        return daemon

    yield start
    for daemon, thread in running:
        daemon.request_stop()
        thread.join(15)


def test_a_blocked_outbound_loop_stops_the_watchdog_pings(tmp_path, dev_certs, simulator,
                                                         notify_socket, run_daemon):
    config = write_config(tmp_path / "A", simulator.url, dev_certs.agency_a, dev_certs.ca_cert)
    daemon = run_daemon(config, NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC="1000000")
    wait_for(lambda: len(notify_socket.times("WATCHDOG=1")) >= 2, 10, "watchdog pings")

    release = threading.Event()
    entered = threading.Event()
    real_cycle = daemon.outbound.cycle

    def stuck_cycle(*args, **kwargs):
        entered.set()
        release.wait(30)  # e.g. a lock that is never released
        return real_cycle(*args, **kwargs)

    daemon.outbound.cycle = stuck_cycle
    daemon.outbound.wake.set()
    assert entered.wait(5)
    blocked_at = time.monotonic()
    # Past the 1 s limit, no ping may arrive any more: wait for a 1.5 s silence (three pings
    # missed at WATCHDOG_USEC=1 s).
    wait_for(lambda: time.monotonic() - max(notify_socket.times("WATCHDOG=1")) > 1.5, 10,
             "the pings to stop")
    last_ping = max(notify_socket.times("WATCHDOG=1"))
    assert last_ping - blocked_at < 2.0  # they stopped about when the limit passed
    assert daemon._withholding == ["outbound"]
    alive_before = daemon.health.liveness()[1]

    release.set()
    wait_for(lambda: max(notify_socket.times("WATCHDOG=1")) > last_ping, 5,
             "the pings to resume once the loop turns again")
    assert daemon._withholding == []
    assert daemon.health.liveness()[1] < alive_before  # the liveness beat resumed too


def test_a_stuck_main_loop_stops_the_watchdog_pings(tmp_path, dev_certs, simulator,
                                                   notify_socket, run_daemon):
    config = write_config(tmp_path / "A", simulator.url, dev_certs.agency_a, dev_certs.ca_cert)
    daemon = run_daemon(config, NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC="1000000")
    wait_for(lambda: len(notify_socket.times("WATCHDOG=1")) >= 2, 10, "watchdog pings")

    release = threading.Event()
    entered = threading.Event()

    def hanging_reload(certificate=None):
        entered.set()
        release.wait(30)
        raise RuntimeError("gave up")

    daemon.runtime.reload_certificate = hanging_reload
    daemon.reload_event.set()  # what SIGHUP does; the main loop applies it
    assert entered.wait(5)
    stuck_at = time.monotonic()
    # WATCHDOG_USEC=1 s: a ping every 0.5 s while the loop turns; 1.5 s without one is three
    never(lambda: [at for at in notify_socket.times("WATCHDOG=1") if at > stuck_at + 0.1], 1.5,
          "a watchdog ping while the main loop is stuck")
    release.set()
    wait_for(lambda: max(notify_socket.times("WATCHDOG=1")) > stuck_at + 1.5, 5,
             "the pings to resume")


def test_readiness_reports_a_clock_far_from_the_axis_date_and_low_disk(
        tmp_path, dev_certs, simulator, monkeypatch, run_daemon):
    # The axis's HTTP Date says it is 10 minutes later than our clock.
    monkeypatch.setattr(simulator_module._Handler, "date_time_string",
                        lambda self, timestamp=None: simulator_module._Handler.__mro__[1]
                        .date_time_string(self, time.time() + 600))
    config = write_config(tmp_path / "A", simulator.url, dev_certs.agency_a, dev_certs.ca_cert,
                          health={"readiness": {"axis_poll_intervals": 2,
                                                "min_free_disk_mb": 10**9}})
    daemon = run_daemon(config)
    url = daemon._health_server.url

    def red_for_clock():
        status, body = http_get(url + "/readyz")
        body = json.loads(body)
        checks = body["checks"]
        # the axis reached and authenticated all the same: only clock and disk are red
        return status == 503 and not checks["clock"]["ok"] and checks["axis"]["ok"] and body
    body = wait_for(red_for_clock, 10, "/readyz 503 for the clock, the axis reached")
    assert "behind the axis" in body["checks"]["clock"]["detail"]
    assert not body["checks"]["disk"]["ok"] and "MiB free" in body["checks"]["disk"]["detail"]
    assert {reason.split(":")[0] for reason in body["reasons"]} == {"clock", "disk"}


def test_the_daemon_records_how_long_its_certificate_can_sign_for_units(
        tmp_path, dev_certs, simulator, run_daemon):
    from cryptography import x509

    from connector.journal import KV_CERTIFICATE_COVERAGE, unit_key
    from connector.ops.units_view import collect_units

    config = write_config(tmp_path / "A", simulator.url, dev_certs.agency_a, dev_certs.ca_cert)
    daemon = run_daemon(config)
    organ_id = daemon.settings.agency.organ_id
    recorded = daemon.runtime.journal.get_time(unit_key(KV_CERTIFICATE_COVERAGE, organ_id))
    certificate = x509.load_pem_x509_certificate(dev_certs.agency_a.cert.read_bytes())
    assert recorded == certificate.not_valid_after_utc
    [unit] = collect_units(daemon.settings, daemon.runtime.journal)
    assert unit["organ_id"] == organ_id and unit["certificate_days_left"] > 0
