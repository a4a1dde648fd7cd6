"""The daemon with its key in a token (SoftHSM2), as a real process: it signs with the token and
the journal records the certificate; unplugged, signing pauses (readiness, metric, one log line)
while the document waits in the journal, and resumes by itself when the token is back; a wrong
PIN is presented once, never again — not even once the PIN file is right — until a reload."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess

import pytest
from cryptography.hazmat.primitives import hashes
from service_harness import drop_bundle, metric, never, wait_for, write_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("softhsm")]


def token_settings(token, pin_file) -> dict:
    return {"token": {"module": str(token.module), "token_label": token.label,
                      "key_label": "signing", "pin_file": str(pin_file)}}


def pin_file(base, pin: str):
    base.mkdir(parents=True, exist_ok=True)
    path = base / "token.pin"
    path.write_text(pin + "\n")
    path.chmod(0o600)
    return path


def outgoing_rows(base) -> list[tuple]:
    with sqlite3.connect(base / "journal.db") as db:
        return db.execute("SELECT source_ref, state, package_path, signed_by FROM outgoing "
                          "WHERE kind = 'document' ORDER BY created_at").fetchall()


def test_signs_with_the_token_pauses_while_it_is_unplugged_and_resumes(
        tmp_path, dev_certs, simulator, start_daemon, make_token, xmlsec1):
    token, certificate = make_token()
    base = tmp_path / "A"
    config = write_config(base, simulator.url, dev_certs.agency_a, dev_certs.ca_cert,
                          certificate=token_settings(token, pin_file(base, token.pin)))
    daemon = start_daemon(config)
    outbox = base / "exchange" / "outbox"
    wait_for(lambda: outbox.is_dir() and daemon.get("/readyz")[0] == 200, 30, "ready")

    drop_bundle(outbox, "cv1", number="1")
    daemon.wait_event("outgoing_sent")
    [(_, state, package, signed_by)] = outgoing_rows(base)
    assert state == "sent" and signed_by == certificate.fingerprint(hashes.SHA256()).hex()
    checked = subprocess.run([xmlsec1, "--verify", "--trusted-pem", str(dev_certs.ca_cert), package],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr

    token.unplug()
    try:
        drop_bundle(outbox, "cv2", number="2")
        paused = daemon.wait_event("signing_paused")
        assert paused["reason"] == "token-absent" and paused["level"] == "error"
        status, body = daemon.get("/readyz")
        assert status == 503 and "signing paused" in json.loads(body)["checks"]["certificate"]["detail"]
        text = daemon.get("/metrics")[1].decode()
        assert metric(text, "edxml_connector_signing_paused", reason="token-absent") == 1
        assert metric(text, "edxml_connector_signing_paused", reason="pin-refused") == 0
        never(lambda: len(daemon.events("outgoing_sent")) > 1, 2.5, "a send without the token")
        states = [row[1] for row in outgoing_rows(base)]
        assert states[1] in ("queued", "sending") and not (base / "exchange" / "failed" / "cv2").exists()
        assert len(daemon.events("signing_paused")) == 1  # said once, not once per attempt
    finally:
        token.plug_in()
    daemon.wait_event("signing_resumed")
    wait_for(lambda: len(daemon.events("outgoing_sent")) == 2, 20, "cv2 sent once the token is back")
    assert [row[1] for row in outgoing_rows(base)] == ["sent", "sent"]
    text = daemon.get("/metrics")[1].decode()
    assert metric(text, "edxml_connector_signing_paused", reason="token-absent") == 0
    wait_for(lambda: daemon.get("/readyz")[0] == 200, 10, "ready again")


def test_a_refused_pin_is_not_presented_again_until_a_reload(
        tmp_path, dev_certs, simulator, start_daemon, make_token):
    token, _ = make_token()
    base = tmp_path / "A"
    pin = pin_file(base, "0000")
    config = write_config(base, simulator.url, dev_certs.agency_a, dev_certs.ca_cert,
                          certificate=token_settings(token, pin))
    daemon = start_daemon(config)
    outbox = base / "exchange" / "outbox"
    paused = daemon.wait_event("signing_paused", timeout=30)
    assert paused["reason"] == "pin-refused" and "0000" not in daemon.output()
    wait_for(lambda: outbox.is_dir() and daemon.get("/readyz")[0] == 503, 30, "started, not ready")
    detail = json.loads(daemon.get("/readyz")[1])["checks"]["certificate"]["detail"]
    assert "refused the PIN" in detail and "reload" in detail
    assert metric(daemon.get("/metrics")[1].decode(), "edxml_connector_signing_paused",
                  reason="pin-refused") == 1

    drop_bundle(outbox, "cv1", number="1")
    wait_for(lambda: outgoing_rows(base), 10, "cv1 taken into the journal")
    pin.write_text(token.pin + "\n")  # fixed, but nobody told the daemon: it must not try again
    never(lambda: daemon.events("outgoing_sent"), 4.0, "a send after a refused PIN, without reload")
    assert len(daemon.events("signing_paused")) == 1
    assert outgoing_rows(base)[0][1] in ("queued", "sending")

    daemon.signal(signal.SIGHUP)
    daemon.wait_event("certificate_reloaded")
    daemon.wait_event("outgoing_sent", timeout=20)
    assert outgoing_rows(base)[0][1] == "sent"
