"""``edxml-connector axis-sim`` as an operator runs it: a real process, stopped by SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys

import pytest
import requests
import yaml
from axis_helpers import AGENCIES, FAST_RETRY, G22, H41, SECRETS

from connector.axis.client import AxisClient, AxisSettings
from connector.axis.errors import TransientAxisError
from connector.axis.sim.agencies import load_agencies
from connector.axis.sim.samples import make_document
from connector.axis.sim.server import _is_loopback
from connector.errors import InputError


def test_axis_sim_serves_until_sigterm_and_keeps_state(tmp_path):
    agencies = tmp_path / "agencies.yaml"
    agencies.write_text(yaml.safe_dump(AGENCIES, allow_unicode=True), encoding="utf-8")
    # Port 0 and the port read back from the banner: no race with other processes for a port.
    command = [sys.executable, "-m", "connector", "axis-sim", "--listen", "127.0.0.1:0",
               "--data", str(tmp_path / "state"), "--agencies", str(agencies), "--seed", "1",
               "--error-rate", "1", "--error-status", "502", "--fault-operations",
               "getAgenciesList"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        assert found, banner
        port = int(found.group(1))
        settings = AxisSettings(endpoint=f"http://127.0.0.1:{port}", systemid=G22,
                                secret=SECRETS[G22], retry=FAST_RETRY)
        with AxisClient(settings) as client:
            sent = client.send_edoc(make_document(G22, [H41]))
        log_line = json.loads(process.stderr.readline())
        assert (log_line["op"], log_line["result"], log_line["doc_id"]) == \
            ("sendEdoc", "OK", sent.doc_id)
        assert log_line["timestamp"] and log_line["systemid"] == G22
        # The fault flags took effect: only getAgenciesList fails, with the chosen status.
        with AxisClient(settings) as client, pytest.raises(TransientAxisError) as caught:
            client.list_agencies()
        assert caught.value.http_status == 502
        faults = requests.get(f"http://127.0.0.1:{port}/_admin/faults", timeout=5).json()
        assert faults["seed"] == 1 and faults["config"]["error_rate"] == 1.0
        assert faults["injected"]["error"] == FAST_RETRY.max_attempts
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (tmp_path / "state" / "packages" / f"{sent.doc_id}.edxml").is_file()


def test_axis_sim_refuses_a_bad_agencies_file_with_a_clear_message(tmp_path):
    agencies = tmp_path / "agencies.yaml"
    agencies.write_text("agencies:\n  - organ_id: '000.00.00.G22'\n    systemid: x\n")
    result = subprocess.run(
        [sys.executable, "-m", "connector", "axis-sim", "--listen", "127.0.0.1:0",
         "--data", str(tmp_path / "state"), "--agencies", str(agencies)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "agencies.yaml" in result.stderr and "agencies[0].secret" in result.stderr


@pytest.mark.parametrize("text,field", [
    ("agencies: []\n", "empty"),
    ("nothing: 1\n", "agencies:"),
    ("agencies:\n  - {organ_id: a, systemid: s, secret: k}\n"
     "  - {organ_id: b, systemid: s, secret: k}\n", "agencies[1].systemid"),
    ("agencies:\n  - {organ_id: a, systemid: s, secret: k, colour: red}\n", "colour"),
    ("agencies: [\n", "YAML"),
])
def test_agencies_file_errors_name_the_field(tmp_path, text, field):
    path = tmp_path / "agencies.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_agencies(path)
    assert field in caught.value.one_line() and "agencies.yaml" in caught.value.one_line()


def test_admin_answers_loopback_callers_only():
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("127.5.6.7")
    assert not _is_loopback("10.0.0.5") and not _is_loopback("192.168.1.9")
    assert not _is_loopback("not-an-address")


def test_the_simulator_refuses_half_a_tls_configuration(tmp_path):
    from connector.axis.sim.agencies import agencies_from_data
    from connector.axis.sim.server import AxisSimulator
    with pytest.raises(InputError, match="--tls-key"):
        AxisSimulator(tmp_path / "state", agencies_from_data(AGENCIES),
                      tls_cert=tmp_path / "cert.pem")


def test_axis_sim_reports_a_busy_port_in_one_line(tmp_path):
    agencies = tmp_path / "agencies.yaml"
    agencies.write_text(yaml.safe_dump(AGENCIES, allow_unicode=True), encoding="utf-8")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "connector", "axis-sim", "--listen", f"127.0.0.1:{port}",
             "--data", str(tmp_path / "state"), "--agencies", str(agencies)],
            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
