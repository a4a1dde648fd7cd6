"""A hub (issue 14): one ``edxml-connector run`` process serving many units, against the axis
simulator, with an outside agency (B, its own connector) — real processes on loopback.

- 50 units, each sending to another unit and to B: every document arrives exactly once, every
  sender gets both recipients' status 01, one process, per-unit readiness, metrics and `units`.
- Isolation: a unit whose secret is refused, one whose certificate is missing and one whose
  folder is unusable are paused alone (units, log, metric, /readyz); the others go on.
- Reload (SIGHUP): a fixed secret and a new certificate resume their units; a new unit file
  starts a unit, a removed one stops it; a broken file keeps the running configuration.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from connector.devtools.hub_lab import HubLab, wait_until
from connector.devtools.lab import document_metadata, pdf_bytes

pytestmark = pytest.mark.slow

UNITS = 50


@pytest.fixture(scope="module")
def hub(tmp_path_factory, dev_certs):
    lab = HubLab(tmp_path_factory.mktemp("hub"), units=UNITS, certs=dev_certs)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()


def send_round(hub: HubLab, units, tag: str) -> None:
    """Each unit sends one document to the next unit and to the outside agency."""
    for index, unit in enumerate(units):
        peer = units[(index + 1) % len(units)]
        unit.drop_bundle(f"{tag}-{index}", document_metadata(
            [peer.organ_id, hub.outside.organ_id], f"{tag}{index}", f"{tag} from {unit.organ_id}"),
            {"van-ban.pdf": pdf_bytes(f"{tag} {index}")})


def receipt_codes(unit) -> dict[str, str]:
    receipts = list(unit.receipts().values())
    if len(receipts) != 1:
        return {}
    return {organ: entry.get("status") for organ, entry in receipts[0]["recipients"].items()}


def test_fifty_units_in_one_daemon_exchange_exactly_once(hub):
    units = hub.units
    send_round(hub, units, "hub")

    arrived = wait_until(lambda: all(len(u.inbox_documents()) >= 1 for u in units)
                         and len(hub.outside.inbox_documents()) >= UNITS, 120)
    assert arrived, ([len(u.inbox_documents()) for u in units], len(hub.outside.inbox_documents()))
    for index, unit in enumerate(units):
        [document] = unit.inbox_documents()  # exactly once
        sender = units[(index - 1) % UNITS].organ_id
        assert document["sender"] == sender
        assert document["signature"]["state"] == "valid"  # each unit signs with its own key
    senders = Counter(d["sender"] for d in hub.outside.inbox_documents())
    assert senders == Counter({unit.organ_id: 1 for unit in units})

    both = {hub.outside.organ_id: "01"}
    done = wait_until(lambda: all(receipt_codes(u) == {**both, units[(i + 1) % UNITS].organ_id: "01"}
                                  for i, u in enumerate(units)), 90)
    assert done, {u.organ_id: receipt_codes(u) for u in units if len(receipt_codes(u)) != 2}

    # one process serves them all; readiness and `units` list each unit
    assert hub.process.running and len([r for r in hub.log_records("daemon_started")]) == 1
    status, body = _get(hub, "/readyz")
    readiness = json.loads(body)
    assert status == 200 and readiness["ready"] is True
    assert len(readiness["units"]) == UNITS and readiness["paused_units"] == []
    rows = json.loads(hub.cli("units", "--json").stdout)
    assert [row["organ_id"] for row in rows] == [u.organ_id for u in units]
    assert all(row["state"] == "active" and row["last_poll"] for row in rows)
    assert all(row["certificate_days_left"] > 700 for row in rows)
    metrics = _get(hub, "/metrics")[1].decode()
    lines = dict(line.rsplit(" ", 1) for line in metrics.splitlines()
                 if line and not line.startswith("#"))
    # the connector-wide certificate series: the soonest of the units' certificates
    assert float(lines["edxml_connector_certificate_expiry_seconds"]) > 700 * 86400
    assert lines["edxml_connector_signing_blocked"] == "0.0"
    for unit in (units[0], units[-1]):
        assert f'edxml_connector_unit_paused{{agency="{unit.organ_id}"}} 0.0' in metrics
        assert f'edxml_connector_certificate_days_left{{agency="{unit.organ_id}"}}' in metrics
    # a unit sends only as itself: a document.yaml naming another unit as its sender fails,
    # naming both, and nothing is signed or sent for it
    forger, victim = units[3], units[4]
    forger.drop_bundle("forged", document_metadata(
        [hub.outside.organ_id], "999", "not mine to send",
        **{"from": {"organ_id": victim.organ_id, "organ_name": victim.name}}),
        {"x.pdf": pdf_bytes("forged")})
    errors = wait_until(lambda: forger.error_files().get("forged"), 30)
    assert errors and victim.organ_id in errors and forger.organ_id in errors
    assert "another unit of this connector" in errors
    assert len(hub.outside.inbox_documents()) == UNITS

    # every item in the one journal belongs to its unit
    status_rows = json.loads(hub.cli("status", "--json", "--limit", "1000").stdout)
    outgoing = [item for item in status_rows["items"] if item["direction"] == "out"
                and item["kind"] == "document" and item["state"] == "sent"]
    assert Counter(item["agency"] for item in outgoing) == Counter({u.organ_id: 1 for u in units})


def _get(hub: HubLab, path: str):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{hub.health_port}{path}", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def unit_row(hub: HubLab, organ_id: str) -> dict:
    rows = json.loads(hub.cli("units", "--json").stdout)
    return next(row for row in rows if row["organ_id"] == organ_id)


def test_one_units_trouble_pauses_that_unit_only_and_a_reload_brings_it_back(tmp_path, dev_certs):
    with HubLab(tmp_path, units=6, certs=dev_certs) as hub:
        good, refused, no_cert, bad_folder, later, expired = hub.units
        expired.overrides = {"certificate": {  # its certificate ran out 35 days ago
            "p12_file": None, "password_file": None,
            "key_file": str(dev_certs.expired_key), "cert_file": str(dev_certs.expired_cert)}}
        right_secret = refused.secret_file.read_text()
        refused.secret_file.write_text("not-the-secret\n")  # the axis refuses its requests
        cert_file = no_cert.cert.p12
        moved = tmp_path / "moved.p12"
        shutil.move(cert_file, moved)  # its certificate is missing
        bad_folder.exchange.parent.mkdir(parents=True, exist_ok=True)
        bad_folder.exchange.write_text("a file where its folder tree should be")
        later.configured = False  # added by a reload below
        hub.start()

        # the broken units are paused, each with its own reason; the daemon runs
        paused = {r["agency"]: r for r in hub.log_records("unit_paused")}
        assert set(paused) == {no_cert.organ_id, bad_folder.organ_id}
        assert str(cert_file) in paused[no_cert.organ_id]["reason"]
        assert str(bad_folder.exchange) in paused[bad_folder.organ_id]["reason"]
        assert unit_row(hub, no_cert.organ_id)["state"] == "paused"
        assert unit_row(hub, expired.organ_id)["reason"] == "no certificate can sign"

        # `check`: one line per unit, the failing ones with their reason, and a summary
        checked = hub.cli("check", check=False)
        lines = checked.stdout.splitlines()
        assert checked.returncode == 1
        assert any(line.startswith(f"OK   unit {good.organ_id}: certificate 7") and
                   "axis credentials accepted" in line and "folders" in line for line in lines)
        for broken, why in ((no_cert, str(cert_file)), (bad_folder, str(bad_folder.exchange)),
                            (refused, "axis"), (expired, "expired")):
            assert any(line.startswith(f"FAIL unit {broken.organ_id}:") and why in line
                       for line in lines), (broken.organ_id, lines)
        assert lines[-1] == (f"FAIL units: 1 of 5 ready; failing: {refused.organ_id}, "
                             f"{no_cert.organ_id}, {bad_folder.organ_id}, {expired.organ_id}")

        # the good unit works, without waiting for the others
        send_round(hub, [good], "iso")
        send_round(hub, [refused], "ref")
        send_round(hub, [expired], "exp")  # waits: its unit cannot sign
        assert wait_until(lambda: len(hub.outside.inbox_documents()) == 1, 30)
        assert receipt_codes(good) or wait_until(lambda: receipt_codes(good), 30)
        assert hub.wait_log("axis_auth_refused")  # the refused unit's send
        status, body = _get(hub, "/readyz")
        readiness = json.loads(body)
        assert status == 200, readiness  # the shared parts work: the hub stays ready
        assert set(readiness["paused_units"]) >= {no_cert.organ_id, bad_folder.organ_id,
                                                  expired.organ_id}
        assert wait_until(lambda: refused.organ_id in json.loads(_get(hub, "/readyz")[1])
                          ["paused_units"], 15)
        metrics = _get(hub, "/metrics")[1].decode()
        assert f'edxml_connector_unit_paused{{agency="{no_cert.organ_id}"}} 1.0' in metrics
        assert f'edxml_connector_unit_paused{{agency="{expired.organ_id}"}} 1.0' in metrics
        assert f'edxml_connector_unit_paused{{agency="{good.organ_id}"}} 0.0' in metrics
        assert [d["sender"] for d in hub.outside.inbox_documents()] == [good.organ_id]

        # fixed: the right secret, the certificate back, a renewed one, a new unit file, a
        # unit removed
        refused.secret_file.write_text(right_secret)
        expired.overrides = {}
        expired.write()
        shutil.move(moved, cert_file)
        later.write()
        bad_folder.exchange.unlink()  # its tree can be made now
        gone_file = bad_folder.unit_file.read_text()
        bad_folder.unit_file.unlink()
        hub.reload()
        hub.wait_log("unit_restarted", agency=refused.organ_id)
        hub.wait_log("unit_restarted", agency=no_cert.organ_id)
        hub.wait_log("unit_started", agency=later.organ_id)
        hub.wait_log("unit_removed", agency=bad_folder.organ_id)
        # the refused unit's document goes out now, exactly once; the new unit can send
        send_round(hub, [later], "new")
        assert wait_until(lambda: sorted(d["sender"] for d in hub.outside.inbox_documents())
                          == sorted([good.organ_id, refused.organ_id, later.organ_id,
                                     expired.organ_id]), 40)
        assert unit_row(hub, no_cert.organ_id)["state"] == "active"
        assert unit_row(hub, refused.organ_id)["state"] == "active"

        # the first unit (it holds the shared parts) takes a changed secret in place
        right = good.secret_file.read_text()
        good.secret_file.write_text("not-the-secret-either\n")
        hub.reload()
        hub.wait_log("axis_credentials_reloaded", agency=good.organ_id)
        assert wait_until(lambda: unit_row(hub, good.organ_id)["state"] == "paused", 20)
        assert "polling fails" in unit_row(hub, good.organ_id)["reason"]
        good.secret_file.write_text(right)
        hub.reload()
        hub.wait_log("axis_credentials_reloaded", agency=good.organ_id, after=1)
        assert wait_until(lambda: unit_row(hub, good.organ_id)["state"] == "active", 20)

        # a broken file: the running configuration stays, the log names the file and key
        bad_folder.unit_file.write_text(gone_file.replace("organ_id:", "organ_idd:"))
        hub.reload()
        failed = hub.wait_log("config_reload_failed")
        assert str(bad_folder.unit_file) in failed["error"] and "organ_idd" in failed["error"]
        assert hub.process.running
        units_now = json.loads(_get(hub, "/readyz")[1])["units"]
        assert set(units_now) == {good.organ_id, refused.organ_id, no_cert.organ_id,
                                  later.organ_id, expired.organ_id}
        assert units_now[later.organ_id]["ready"] is True
