"""Helpers of tests/service (a uniquely named module: other test folders have a
``conftest`` of their own). The daemon as systemd and monitoring see it: a real
``edxml-connector run`` process (or a ``Daemon`` in a thread when a test must reach inside), a
real axis simulator on loopback, a notify socket the test owns, and the health listener scraped
over HTTP.

The simulator is in this process so that a test can stop it and start it again on the same
port (the "axis down, axis back" story of issue 5).
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from connector.devtools.devcerts import trust_config
from connector.devtools.lab import free_port

PROJECT = Path(__file__).resolve().parents[2]
A = "000.00.00.G22"
B = "000.00.00.H41"
# Distinctive, so that grepping every byte the daemon wrote for it means something.
AXIS_SECRET_A = "axis-secret-Qz7vK2pL9wX4"
SECRETS = {A: AXIS_SECRET_A, B: "secret-of-b"}
AGENCIES = {"agencies": [
    {"organ_id": A, "name": "Văn phòng Chính phủ", "systemid": A, "secret": SECRETS[A]},
    {"organ_id": B, "name": "UBND Tỉnh Nghệ An", "systemid": B, "secret": SECRETS[B]},
]}
PDF = b"%PDF-1.4\n% test\n%%EOF\n"




def write_config(base: Path, endpoint: str, cert, ca: Path, *, organ_id: str = A,
                 **overrides) -> Path:
    """connector.yaml for one agency: fast schedules, health on a free port, JSON logs."""
    base.mkdir(parents=True, exist_ok=True)
    secret_file = base / "axis-secret"
    secret_file.write_text(SECRETS[organ_id])
    secret_file.chmod(0o600)
    config = {
        "agency": {"organ_id": organ_id, "name": "Văn phòng Chính phủ"},
        "certificate": {"p12_file": str(cert.p12), "password_file": str(cert.password_file)},
        "trust": trust_config(ca),
        "axis": {"endpoint": endpoint, "secret_file": str(secret_file), "connect_timeout": 1,
                 "read_timeout": 3,
                 "retry": {"max_attempts": 1, "max_total_seconds": 1, "initial_backoff": 0.01,
                           "max_backoff": 0.02}},
        "journal": {"url": f"sqlite:///{base / 'journal.db'}"},
        "state_dir": str(base / "state"),
        "exchange": {"root": str(base / "exchange"), "rescan_seconds": 0.5},
        "schedules": {"axis_poll_seconds": 1, "dms_poll_seconds": 1, "retry_sweep_seconds": 1},
        "outbound": {"concurrency": 2, "max_attempts": 50, "retry_initial_seconds": 0.5,
                     "retry_max_seconds": 1},
        # The config refuses port 0, so a free port is picked here (tiny race, loopback only).
        "health": {"enabled": True, "listen": f"127.0.0.1:{free_port()}",
                   "readiness": {"axis_poll_intervals": 2, "min_free_disk_mb": 1}},
        "logging": {"level": "info"},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict) \
                and key != "certificate":  # its forms exclude each other: replaced whole
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = base / "connector.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def drop_bundle(outbox: Path, name: str, to: str = B, number: str = "101") -> Path:
    """A document bundle written like a well-behaved DMS (files first, document.yaml by rename,
    the folder renamed into the outbox last)."""
    metadata = {"to": [{"organ_id": to, "organ_name": "UBND Tỉnh Nghệ An"}],
                "code": {"number": number, "notation": "VPCP-TTĐT"},
                "promulgation": {"place": "Hà Nội", "date": "2026-11-23"},
                "subject": f"Công văn số {number}", "attachments": [{"file": "cv.pdf"}]}
    staging = outbox.parent / f".{name}.tmp"
    staging.mkdir()
    (staging / "cv.pdf").write_bytes(PDF)
    (staging / "document.yaml.part").write_text(yaml.safe_dump(metadata, allow_unicode=True),
                                                encoding="utf-8")
    os.rename(staging / "document.yaml.part", staging / "document.yaml")
    os.rename(staging, outbox / name)
    return outbox / name


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def never(predicate, seconds: float, what: str, interval: float = 0.05) -> None:
    """Fail as soon as ``predicate()`` holds within ``seconds``: for what must NOT happen in a
    window (the window is the deadline; the check ends early on the first sign)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            raise AssertionError(f"{what} happened within {seconds} s")
        time.sleep(interval)


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def metric(text: str, name: str, **labels) -> float | None:
    """The value of one sample in Prometheus text format (None when absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(key) == str(value) for key, value in labels.items()):
            return float(match.group(3))
    return None


class NotifySocket:
    """The datagram socket systemd would own: a thread collects every notification the daemon
    sends, with its arrival time (as systemd reads them at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, name="notify-socket", daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, BlockingIOError, socket.timeout):
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def collect(self) -> list[str]:
        return [text for _, text in list(self.messages)]

    def fields(self, name: str) -> list[str]:
        """Every value sent for ``NAME=`` (a datagram may carry several lines)."""
        return [line.split("=", 1)[1] for text in self.collect() for line in text.splitlines()
                if line.startswith(name + "=")]

    def times(self, field: str) -> list[float]:
        """Arrival times of the datagrams carrying ``field`` (e.g. ``WATCHDOG=1``)."""
        return [at for at, text in list(self.messages) if field in text.splitlines()]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


class DaemonProcess:
    """``python -m connector run --config FILE`` with its stdout read line by line."""

    def __init__(self, config: Path, *, env: dict[str, str] | None = None) -> None:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            environment.pop(name, None)
        environment.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connector", "run", "--config", str(config)], cwd=PROJECT,
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.process.stdout, self.lines),
                                          daemon=True),
                         threading.Thread(target=self._read, args=(self.process.stderr, self.stderr),
                                          daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def records(self) -> list[dict]:
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def events(self, name: str) -> list[dict]:
        return [record for record in self.records() if record.get("event") == name]

    def wait_event(self, name: str, timeout: float = 20.0, **match) -> dict:
        def found():
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}: "
                                     + "\n".join((self.lines + self.stderr)[-20:]))
            for record in self.events(name):
                if all(record.get(key) == value for key, value in match.items()):
                    return record
            return None
        return wait_for(found, timeout, f"log event {name} {match or ''}")

    @functools.cached_property
    def health_url(self) -> str:
        """Where the health listener listens (its log line, read once: at debug level the
        daemon's output grows by thousands of lines, and each read parses all of them)."""
        return self.wait_event("health_listening")["url"]

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(self.health_url + path)

    def alive(self) -> bool:
        """True while running; a daemon that died is a failure with its last lines shown."""
        if self.process.poll() is not None:
            for reader in self._readers:  # its last lines: the pipes end once it has exited
                reader.join(timeout=5)
            raise AssertionError(f"daemon exited {self.process.returncode}: "
                                 + "\n".join((self.lines + self.stderr)[-20:]))
        return True

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 12.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                # Hung: SIGABRT makes faulthandler print every thread's stack to stderr.
                self.process.send_signal(signal.SIGABRT)
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        return self.process.returncode

    def output(self) -> str:
        return "\n".join(self.lines + self.stderr)
