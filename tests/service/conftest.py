"""Fixtures of tests/service; the helpers are in service_harness.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_harness import AGENCIES, DaemonProcess, NotifySocket

from connector.axis.sim.agencies import agencies_from_data
from connector.axis.sim.server import AxisSimulator


@pytest.fixture
def simulator(tmp_path):
    sim = AxisSimulator(tmp_path / "axis", agencies_from_data(AGENCIES), seed=5).start()
    yield sim
    sim.stop()


@pytest.fixture
def start_daemon():
    started: list[DaemonProcess] = []

    def start(config: Path, **kwargs) -> DaemonProcess:
        daemon = DaemonProcess(config, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def notify_socket(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()

