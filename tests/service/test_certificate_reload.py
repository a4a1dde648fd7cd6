"""Certificate expiry and SIGHUP, with the real daemon process: an expired certificate stops
signing (loudly, and the metric and /readyz say so) without stopping the service; replacing the
files and sending SIGHUP brings the new certificate into use and applies a new log level."""

from __future__ import annotations

import base64
import datetime as dt
import json
import signal

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from service_harness import A, drop_bundle, metric, wait_for, write_config

from connector.devtools.devcerts import _agency_cert, _new_key, _write_cert, _write_key

pytestmark = pytest.mark.slow
DAY = 86_400


def _issue(dev_certs, key_path, cert_path, *, days_from: float, days_to: float) -> x509.Certificate:
    """Write a new agency-A key and certificate (signed by the dev CA) over the given files."""
    ca_cert = x509.load_pem_x509_certificate(dev_certs.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(dev_certs.ca_key.read_bytes(), None)
    now = dt.datetime.now(dt.timezone.utc)
    key = _new_key()
    cert = _agency_cert(key, ca_key, ca_cert, A, "Văn phòng Chính phủ (rotated)",
                        now + dt.timedelta(days=days_from), now + dt.timedelta(days=days_to))
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert


def test_expired_certificate_then_rotation_by_sighup(tmp_path, dev_certs, simulator,
                                                    start_daemon, notify_socket):
    base = tmp_path / "A"
    base.mkdir()
    key_path, cert_path = base / "agency.key", base / "agency.pem"
    _issue(dev_certs, key_path, cert_path, days_from=-400, days_to=-1)  # expired yesterday
    config = write_config(base, simulator.url, dev_certs.agency_a, dev_certs.ca_cert,
                          certificate={"key_file": str(key_path), "cert_file": str(cert_path)})
    daemon = start_daemon(config, env={"NOTIFY_SOCKET": str(notify_socket.path)})

    # --- expired: the service runs, signing is stopped, loudly ------------------------------
    wait_for(lambda: daemon.alive() and notify_socket.fields("READY"), 30, "READY=1")
    assert daemon.events("certificate_unusable")[0]["level"] == "error"
    status, body = daemon.get("/readyz")
    body = json.loads(body)
    assert status == 503 and "expired" in body["checks"]["certificate"]["detail"]
    exchange = base / "exchange"
    wait_for(lambda: (exchange / "outbox").is_dir(), 10, "the exchange tree")
    drop_bundle(exchange / "outbox", "cv201", number="201")
    stopped = daemon.wait_event("signing_stopped")
    assert stopped["level"] == "error" and "expired" in stopped["error"]
    text = daemon.get("/metrics")[1].decode()
    assert metric(text, "edxml_connector_signing_blocked") == 1
    assert metric(text, "edxml_connector_certificate_expiry_seconds") < 0
    assert not (exchange / "failed" / "cv201").exists()  # not the document's fault: kept
    wait_for(lambda: any("SIGNING STOPPED" in s for s in notify_socket.fields("STATUS")), 10,
             "STATUS= saying signing is stopped")

    # --- rotation: new files (valid 10 days: inside the 30-day warning), debug level, HUP ---
    new_cert = _issue(dev_certs, key_path, cert_path, days_from=-1, days_to=10)
    settings = yaml.safe_load(config.read_text())
    settings["logging"]["level"] = "debug"
    config.write_text(yaml.safe_dump(settings, allow_unicode=True))
    daemon.signal(signal.SIGHUP)
    reloaded = daemon.wait_event("certificate_reloaded")
    assert "rotated" in reloaded["subject"] and reloaded["days_left"] in (9, 10)
    assert daemon.wait_event("log_level_reloaded")["log_level"] == "debug"
    wait_for(lambda: any(r.get("level") == "debug" for r in daemon.records()), 10,
             "debug lines after the reload")
    assert notify_socket.fields("RELOADING") and len(notify_socket.fields("READY")) >= 2
    expiring = daemon.wait_event("certificate_expiring")
    assert expiring["level"] == "warning" and 9 <= expiring["days_left"] <= 10

    # the waiting document goes out, signed with the new certificate
    wait_for(lambda: (exchange / "sent" / "cv201.receipt.json").exists(), 20, "cv201 sent")
    new_der = base64.b64encode(new_cert.public_bytes(serialization.Encoding.DER)).decode()
    stored = list((base / "state" / "packages" / "outgoing").glob("*.edxml"))
    # (base64 in the XML may be wrapped: compare without whitespace)
    assert stored and any(new_der in "".join(p.read_text(errors="replace").split())
                          for p in stored)

    status, body = daemon.get("/readyz")
    body = json.loads(body)
    assert status == 200  # valid: ready, with a warning from 30 days before expiry
    assert any(w.startswith("certificate:") and "renew" in w for w in body["warnings"])
    text = daemon.get("/metrics")[1].decode()
    assert metric(text, "edxml_connector_signing_blocked") == 0
    assert 9 * DAY < metric(text, "edxml_connector_certificate_expiry_seconds") <= 10 * DAY
    assert daemon.stop() == 0


def test_the_next_certificate_takes_over_at_its_moment_without_a_reload(tmp_path, dev_certs,
                                                                          simulator, start_daemon):
    """Current valid 10 days, the renewal named with a moment a few seconds ahead: no expiry
    warning (a certificate is there to take over), the switch happens between two documents,
    is logged, and the journal records which certificate signed each one."""
    import sqlite3

    from cryptography.hazmat.primitives import hashes

    base = tmp_path / "A"
    base.mkdir()
    current = _issue(dev_certs, base / "now.key", base / "now.pem", days_from=-300, days_to=10)
    renewed = _issue(dev_certs, base / "next.key", base / "next.pem", days_from=-1, days_to=700)
    switch_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=6)
    config = write_config(base, simulator.url, dev_certs.agency_a, dev_certs.ca_cert,
                          certificate={"key_file": str(base / "now.key"), "cert_file": str(base / "now.pem"),
                                       "next": {"key_file": str(base / "next.key"),
                                                "cert_file": str(base / "next.pem"),
                                                "switch_at": switch_at.isoformat()}})
    daemon = start_daemon(config)
    exchange = base / "exchange"
    wait_for(lambda: (exchange / "outbox").is_dir() and daemon.get("/readyz")[0] == 200, 30, "ready")
    body = json.loads(daemon.get("/readyz")[1])
    assert not [w for w in body["warnings"] if w.startswith("certificate:")]
    days_left = metric(daemon.get("/metrics")[1].decode(), "edxml_connector_certificate_days_left",
                       agency=A)
    assert 690 < days_left <= 700

    drop_bundle(exchange / "outbox", "before", number="301")
    wait_for(lambda: (exchange / "sent" / "before.receipt.json").exists(), 20, "the first sent")
    switched = daemon.wait_event("certificate_switched", timeout=20)
    assert "rotated" in switched["subject"]
    assert dt.datetime.now(dt.timezone.utc) >= switch_at
    drop_bundle(exchange / "outbox", "after", number="302")
    wait_for(lambda: (exchange / "sent" / "after.receipt.json").exists(), 20, "the second sent")
    with sqlite3.connect(base / "journal.db") as db:
        signed_by = dict(db.execute("SELECT source_ref, signed_by FROM outgoing WHERE kind = 'document'"))
    by_name = {ref.rsplit("--", 1)[-1]: fingerprint for ref, fingerprint in signed_by.items()}
    assert by_name == {"before": current.fingerprint(hashes.SHA256()).hex(),
                       "after": renewed.fingerprint(hashes.SHA256()).hex()}
