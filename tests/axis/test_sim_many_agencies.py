"""The simulator as a hub's sandbox (issue 14, part 7): hundreds of agencies read from a file,
each refused when it claims another's OrganId, and requests counted per agency and operation so
that a hub's polling cost is read from the axis side, not from the client."""

from __future__ import annotations

import pytest
import requests
import yaml
from axis_helpers import FAST_RETRY

from connector.axis.client import AxisClient, AxisSettings
from connector.axis.errors import AxisAuthError
from connector.axis.sim.agencies import load_agencies
from connector.axis.sim.samples import make_document
from connector.axis.sim.server import AxisSimulator

UNITS = 300


def organ(index: int) -> str:
    return f"000.{index // 100:02d}.{index % 100:02d}.H{index % 7:02d}"


@pytest.fixture
def hub_axis(tmp_path):
    """A simulator whose agencies file lists 300 units, each with its own systemid and secret."""
    base = tmp_path
    agencies = [{"organ_id": organ(i), "name": f"Đơn vị {i}", "systemid": f"sys-{i:03d}",
                 "secret": f"bí-mật-{i:03d}"} for i in range(UNITS)]
    (base / "agencies.yaml").write_text(yaml.safe_dump({"agencies": agencies},
                                                       allow_unicode=True), encoding="utf-8")
    with AxisSimulator(base / "state", load_agencies(base / "agencies.yaml"), seed=3) as sim:
        yield sim


def client(sim, index: int, *, organ_id: str | None = None, secret: str | None = None):
    return AxisClient(AxisSettings(
        endpoint=sim.url, systemid=f"sys-{index:03d}",
        secret=secret if secret is not None else f"bí-mật-{index:03d}",
        organ_id=organ_id or organ(index), connect_timeout=2.0, read_timeout=5.0,
        retry=FAST_RETRY))


def counters(sim) -> dict:
    return requests.get(f"{sim.admin_url}/counters", timeout=10).json()


def test_every_one_of_300_units_sends_as_itself_and_is_counted_apart(hub_axis):
    for index in range(UNITS):
        with client(hub_axis, index) as unit:
            unit.send_edoc(make_document(organ(index), [organ((index + 1) % UNITS)]))
            if index % 3 == 0:
                assert len(unit.list_received()) == (1 if index else 0)
    seen = counters(hub_axis)["agencies"]
    assert len(seen) == UNITS
    for index in range(UNITS):
        expected = {"sendEdoc": 1} | ({"getReceivedEdocList": 1} if index % 3 == 0 else {})
        assert seen[organ(index)]["requests"] == expected, organ(index)
        assert seen[organ(index)]["sent"] == 1
        assert seen[organ(index)]["received_pending"] == 1
        assert seen[organ(index)]["auth_failures"] == 0


@pytest.mark.parametrize("claim", ["from-header", "package-from"])
def test_a_unit_claiming_another_units_organ_id_is_refused_and_counted(hub_axis, claim):
    victim, hostile = 41, 42
    before = counters(hub_axis)["agencies"]
    if claim == "from-header":  # the signed `from` header names the victim
        sender = client(hub_axis, hostile, organ_id=organ(victim))
        package = make_document(organ(victim), [organ(7)])
    else:  # the header is its own, the package's From is the victim's
        sender = client(hub_axis, hostile)
        package = make_document(organ(victim), [organ(7)], code_number="999")
    with sender, pytest.raises(AxisAuthError) as refused:
        sender.send_edoc(package)
    assert organ(victim) in str(refused.value) and "sys-042" in str(refused.value)
    after = counters(hub_axis)["agencies"]
    assert after[organ(hostile)]["auth_failures"] == before[organ(hostile)]["auth_failures"] + 1
    for unit, figure in ((hostile, "sent"), (victim, "sent"), (7, "received_pending")):
        assert after[organ(unit)].get(figure, 0) == before[organ(unit)].get(figure, 0) == 0


def test_one_units_secret_does_not_open_another_units_systemid(hub_axis):
    with client(hub_axis, 10, secret="bí-mật-011") as borrowed, \
            pytest.raises(AxisAuthError):
        borrowed.list_received()
    assert counters(hub_axis)["agencies"][organ(10)]["auth_failures"] >= 1
    assert counters(hub_axis)["agencies"][organ(11)]["auth_failures"] == 0
