"""``check`` lines, and ``run`` as a real process: it sends what is dropped and exits 0 within
10 s of SIGTERM."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.cli.daemon_commands import check_command

from .conftest import PDF, A, document_metadata, drop_bundle, write_config

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config_a(tmp_path, dev_certs, simulator):
    return write_config(tmp_path / "A", A, "Văn phòng Chính phủ", dev_certs.agency_a,
                        dev_certs.ca_cert, simulator.url)


def _check(config: Path) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = check_command(argparse.Namespace(config=config), out=out)
    return code, out.getvalue().splitlines()


def test_check_prints_ok_for_each_dependency(config_a):
    code, lines = _check(config_a)
    assert code == 0, lines
    names = [line.split(":")[0].split()[1] for line in lines]
    assert names == ["config", "certificate", "trust", "journal", "state_dir", "axis", "exchange"]
    assert all(line.startswith("OK") for line in lines)
    assert "days left" in lines[1]


def test_check_fails_on_refused_credentials(tmp_path, dev_certs, simulator):
    config = write_config(tmp_path / "A", A, "x", dev_certs.agency_a, dev_certs.ca_cert,
                          simulator.url, secret="wrong")
    code, lines = _check(config)
    assert code == 1
    [axis] = [line for line in lines if " axis:" in line]
    assert axis.startswith("FAIL") and "credentials" in axis


def test_check_fails_on_an_expired_certificate_and_a_bad_key(tmp_path, dev_certs, simulator):
    config = write_config(tmp_path / "A", A, "x", dev_certs.agency_a, dev_certs.ca_cert,
                          simulator.url, certificate={"key_file": str(dev_certs.expired_key),
                                                      "cert_file": str(dev_certs.expired_cert)})
    text = config.read_text().replace("  p12_file:", "  # p12_file:").replace(
        "  password_file:", "  # password_file:")
    config.write_text(text)
    code, lines = _check(config)
    assert code == 1
    [certificate] = [line for line in lines if " certificate:" in line]
    assert certificate.startswith("FAIL") and "expired" in certificate


def test_check_names_the_bad_key(tmp_path, config_a):
    config_a.write_text(config_a.read_text().replace("concurrency: 2", "concurency: 2"))
    code, lines = _check(config_a)
    assert code == 1 and len(lines) == 1
    assert lines[0].startswith("FAIL config") and "outbound.concurency" in lines[0]


def _drain(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096))
        except BlockingIOError:
            return messages


def _start(config: Path, notify_socket: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("NOTIFY_SOCKET", None)
    if notify_socket:
        env["NOTIFY_SOCKET"] = notify_socket
    return subprocess.Popen([sys.executable, "-m", "connector", "run", "--config", str(config)],
                            cwd=PROJECT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_run_sends_a_dropped_document_and_stops_on_sigterm_within_10_s(config_a, tmp_path,
                                                                       simulator):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    process = _start(config_a, str(tmp_path / "notify.sock"))
    try:
        exchange = tmp_path / "A" / "exchange"
        _wait_for(lambda: (exchange / "work").is_dir() and (exchange / "outbox").is_dir(), 20,
                  "the exchange tree")
        drop_bundle(exchange / "outbox", "cv101", document_metadata(),
                    {"Công văn số 101.pdf": PDF})
        _wait_for(lambda: (exchange / "sent" / "cv101.receipt.json").exists(), 20,
                  "the document to be sent")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    lines = output.splitlines()
    assert process.returncode == 0, output[-2000:]
    assert elapsed < 10
    print(f"stopped {elapsed:.2f} s after SIGTERM")
    events = [json.loads(line).get("event") for line in lines if line.startswith("{")]
    assert "daemon_started" in events and "outgoing_sent" in events and "daemon_stopped" in events
    assert simulator.counters()["agencies"][A]["requests"]["sendEdoc"] == 1
    notices = b"".join(_drain(notify))
    assert b"READY=1" in notices and b"STATUS=outgoing:" in notices and b"STOPPING=1" in notices


@pytest.mark.slow
def test_run_refuses_a_bad_config_with_one_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("agency:\n  organ_id: nope\n")
    result = subprocess.run([sys.executable, "-m", "connector", "run", "--config", str(config)],
                            cwd=PROJECT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "agency.organ_id" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
