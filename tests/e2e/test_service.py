"""Issue 5, done when: the daemon talks to systemd (READY, STATUS, WATCHDOG over a NOTIFY_SOCKET
the test owns) and its /metrics and /readyz follow the state — /readyz turns 503 when the axis
(the simulator) has been down longer than K poll intervals, and 200 again once it is back.

No systemd here (the test machines have no systemd as PID 1): the test plays systemd's part with
an AF_UNIX datagram socket, exactly what the service manager provides to a Type=notify unit.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

pytestmark = pytest.mark.slow


def receive_until(sock: socket.socket, wanted: set[str], timeout: float) -> list[str]:
    """Datagrams (one per notify call) until each prefix in ``wanted`` has been seen."""
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        messages.append(data.decode("utf-8"))
        seen = {field for message in messages for field in message.splitlines()}
        if all(any(field.startswith(prefix) for field in seen) for prefix in wanted):
            return messages
    raise AssertionError(f"did not receive {sorted(wanted)} within {timeout} s; got {messages}")


def receive_for(sock: socket.socket, seconds: float) -> list[str]:
    """Every datagram that arrives within ``seconds``."""
    messages: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            messages.append(sock.recv(4096).decode("utf-8"))
        except TimeoutError:
            break
    return messages


def test_notify_socket_gets_ready_status_watchdog_and_stopping(new_lab, tmp_path):
    lab = new_lab()
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        lab.sim.start()
        lab.a.start(env={"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})

        messages = receive_until(sock, {"READY=1", "STATUS=", "WATCHDOG=1"}, timeout=30)
        fields = [f for m in messages for f in m.splitlines()]
        ready_at = fields.index("READY=1")
        # READY comes once configuration, certificate and journal are loaded: the health
        # listener answers by then, and the STATUS text carries queue counts
        assert lab.a.http_status("/healthz") == 200
        status_lines = [f for f in fields if f.startswith("STATUS=")]
        assert any(any(ch.isdigit() for ch in s) for s in status_lines), status_lines
        # the pings come from the main loop, which turns only once the daemon is ready
        assert ready_at < fields.index("WATCHDOG=1"), fields
        # and they keep coming at about half of WATCHDOG_USEC (0.2 s): 10 in 2 s, at least 3
        later = receive_for(sock, seconds=2.0)
        assert sum(m.splitlines().count("WATCHDOG=1") for m in later) >= 3, later

        assert lab.a.stop() == 0
        rest = []
        sock.settimeout(0.5)
        try:
            while True:
                rest.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
        assert any("STOPPING=1" in m for m in rest), rest


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{key}="{wanted}"' in label_text for key, wanted in labels.items()):
            return float(value)
    return None


def test_readyz_follows_the_axis_and_metrics_follow_the_queue(new_lab):
    lab = new_lab()
    a = lab.a
    # K = 2 poll intervals of 1 s: down for more than ~2 s means not ready
    a.configure(health={"readiness": {"axis_poll_intervals": 2}})
    lab.start(agencies=[a])
    lab.wait_for(lambda: a.http_status("/readyz") == 200, timeout=20,
                 what="A ready (axis reached)", seen=lambda: a.http_get("/readyz")[1][:300])

    status, body = a.http_get("/metrics")
    assert status == 200
    text = body.decode()
    assert metric_value(text, "edxml_connector_ready") == 1.0
    assert metric_value(text, "edxml_connector_certificate_expiry_seconds") > 86400 * 300
    # Readiness turns green at the poll's first list call; the poll is complete (and this gauge
    # set) after its second one, a moment later.
    lab.wait_for(lambda: (metric_value(a.http_get("/metrics")[1].decode(),
                                       "edxml_connector_last_successful_poll_timestamp_seconds")
                          or 0) > 0, timeout=10, what="the first complete poll in /metrics")

    lab.sim.stop()
    down_at = time.monotonic()
    # a document dropped while the axis is down stays queued (nothing lost) ...
    from connector.devtools.lab import document_metadata, pdf_bytes
    a.drop_bundle("while-down", document_metadata([lab.b.organ_id], "301", "Gửi khi trục ngừng"),
                  {"a.pdf": pdf_bytes("301")})
    status, body = lab.wait_for(
        lambda: (lambda answer: answer if answer[0] == 503 else None)(a.http_get("/readyz")),
        timeout=20, what="/readyz 503 with the simulator down",
        seen=lambda: a.http_get("/readyz"))
    assert time.monotonic() - down_at >= 1.0  # not at the first failed call: after the threshold
    reasons = json.dumps(json.loads(body))
    assert "axis" in reasons.lower(), reasons
    text = a.http_get("/metrics")[1].decode()
    assert metric_value(text, "edxml_connector_ready") == 0.0
    lab.wait_for(lambda: (metric_value(a.http_get("/metrics")[1].decode(), "edxml_connector_items",
                                       direction="outgoing", state="sent") or 0) == 0
                 and sum(metric_value(a.http_get("/metrics")[1].decode(), "edxml_connector_items",
                                      direction="outgoing", state=s) or 0
                         for s in ("queued", "packaged", "sending")) >= 1,
                 timeout=10, what="the queued document counted in edxml_connector_items",
                 seen=lambda: [line for line in a.http_get("/metrics")[1].decode().splitlines()
                               if line.startswith("edxml_connector_items")])
    assert any(name.endswith("--while-down") for name in a.entries("work"))

    # the simulator comes back on the same port with the same data: ready again, item sent
    lab.sim.start()
    lab.wait_for(lambda: a.http_status("/readyz") == 200, timeout=20,
                 what="/readyz 200 after the simulator returned",
                 seen=lambda: a.http_get("/readyz"))
    lab.wait_for(lambda: "while-down" in a.entries("sent"), timeout=20,
                 what="the queued document sent after the axis returned",
                 seen=lambda: (a.entries("work"), a.entries("failed")))
    text = a.http_get("/metrics")[1].decode()
    assert metric_value(text, "edxml_connector_ready") == 1.0
    assert metric_value(text, "edxml_connector_sends_total", outcome="accepted") >= 1
