"""Fixtures for the axis tests: a simulator on a loopback port and clients for its agencies."""

from __future__ import annotations

import pytest
from axis_helpers import AGENCIES, FAST_RETRY, G22, H41, SECRETS

from connector.axis.client import AxisClient, AxisSettings
from connector.axis.sim.agencies import agencies_from_data
from connector.axis.sim.server import AxisSimulator


@pytest.fixture
def agency_book():
    return agencies_from_data(AGENCIES)


@pytest.fixture
def sim(tmp_path, agency_book):
    simulator = AxisSimulator(tmp_path / "axis-state", agency_book, seed=7).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def make_client():
    """``make_client(sim, systemid, **overrides)`` → an AxisClient closed after the test."""
    clients: list[AxisClient] = []

    def factory(simulator, systemid: str = G22, **overrides) -> AxisClient:
        organ = {"sys-h41": H41}.get(systemid, systemid)
        settings = dict(endpoint=simulator.url, systemid=systemid,
                        secret=SECRETS.get(systemid, "x"), organ_id=organ, connect_timeout=2.0,
                        read_timeout=5.0, retry=FAST_RETRY)
        settings.update(overrides)
        client = AxisClient(AxisSettings(**settings))
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
