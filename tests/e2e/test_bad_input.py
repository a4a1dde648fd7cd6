"""Bad input end to end: each gives a clear error where an operator looks — ``failed/NAME`` with
``NAME.error.txt``, a log line, ``edxml-connector status`` — and loses nothing.

Outbox problems share one lab; the certificate, the unreachable axis and the full disk each need
their own connector set-up.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from flows import wait_inbox

from connector.devtools.lab import document_metadata, pdf_bytes

pytestmark = pytest.mark.slow


def wait_failed(lab, node, name: str) -> str:
    """The text of ``failed/NAME.error.txt`` once it is there."""
    return lab.wait_for(lambda: node.error_files().get(name), timeout=20,
                        what=f"failed/{name}.error.txt at {node.label}",
                        seen=lambda: (node.entries("outbox"), node.entries("work"),
                                      node.entries("sent"), node.entries("failed")),
                        require_running=lab.processes)


def failed_row(node, name: str) -> dict:
    rows = node.status_json("--state", "failed")["items"]
    matching = [row for row in rows if row["name"] == name]
    assert matching, f"{name} not among failed items in `status`: {[r['name'] for r in rows]}"
    return matching[0]


def logged(node, event: str, **fields) -> list[dict]:
    return [r for r in node.process.log_records() if r.get("event") == event
            and all(str(value) in str(r.get(key)) for key, value in fields.items())]


CASES = {
    # name: (document.yaml mapping or raw text, files, what the error must name)
    "bad-organ": (document_metadata(["000.00.00.G22"], "401", "x") | {
        "to": [{"organ_id": "G22"}]}, {"a.pdf": b"%PDF"}, ["bad-organ/document.yaml", "to.", "organ_id"]),
    "no-subject": ({k: v for k, v in document_metadata(["000.00.00.H41"], "402", "x").items()
                    if k != "subject"}, {"a.pdf": b"%PDF"}, ["no-subject/document.yaml", "subject"]),
    "broken-yaml": ("to: [unclosed\n  code: {number: 1", {"a.pdf": b"%PDF"},
                    ["broken-yaml/document.yaml", "YAML"]),
    "missing-attachment": (document_metadata(["000.00.00.H41"], "403", "thiếu tệp",
                                             attachments=[{"file": "không có.pdf"}]),
                           {"khác.pdf": b"%PDF"},
                           ["missing-attachment/document.yaml", "attachments.", "không có.pdf"]),
    "unknown-recipient": (document_metadata(["000.00.00.Z99"], "404", "không ai nhận"),
                          {"a.pdf": b"%PDF"}, ["000.00.00.Z99"]),
}


def test_bad_outbox_items_fail_with_a_clear_reason_and_keep_their_files(module_lab):
    lab = module_lab
    a = lab.a
    for name, (metadata, files, _) in CASES.items():
        if isinstance(metadata, str):
            staging = a.outbox / f".{name}"
            staging.mkdir(parents=True)
            for file_name, data in files.items():
                (staging / file_name).write_bytes(data)
            (staging / "document.yaml").write_text(metadata, encoding="utf-8")
            staging.rename(a.outbox / name)
        else:
            a.drop_bundle(name, metadata, files)
    a.drop_package("not-xml.edxml", b"this is not an edXML package\n")
    a.drop_status("bad-code", {"code": "99", "document_id": "000.00.00.H41,2026/11/20,1/X"})

    for name, (_, files, needles) in CASES.items():
        error = wait_failed(lab, a, name)
        for needle in needles:
            assert needle in error, f"{name}: {needle!r} not in\n{error}"
        assert "edxml-connector retry" in error, error
        # nothing lost: the bundle and its files are in failed/
        for file_name, data in files.items():
            assert (a.exchange / "failed" / name / file_name).read_bytes() == data
        row = failed_row(a, name)
        assert row["last_error"]
    assert "not-xml" in wait_failed(lab, a, "not-xml")
    assert (a.exchange / "failed" / "not-xml.edxml").is_file()
    assert "99" in wait_failed(lab, a, "statuses/bad-code")
    assert logged(a, "outgoing_failed"), "no outgoing_failed log line"
    # nothing was left half-way, and the axis never saw any of them
    assert a.entries("work") == []
    # (by the documents' numbers, not by a substring of the whole row: a SHA-256 or a time in
    # another test's transfer may well contain "401")
    assert not [t for t in lab.sim.transfers() if t.get("sender") == a.organ_id
                and (t.get("notation") or "").split("/")[0] in ("401", "402", "403", "404")]


def test_expired_certificate_stops_signing_loudly_and_loses_nothing(new_lab):
    """An expired certificate: a specific error in the log at start, /readyz 503 naming the
    certificate, the signing_blocked metric, `check` FAIL — and a document dropped meanwhile
    waits (not failed, not sent unsigned). After the certificate is renewed and SIGHUP, it goes."""
    import shutil
    import signal

    lab = new_lab()
    a, b = lab.a, lab.b
    key, cert = a.home / "agency.key", a.home / "agency.pem"
    shutil.copy(lab.certs.expired_key, key)
    shutil.copy(lab.certs.expired_cert, cert)
    a.configure(certificate={"p12_file": None, "password_file": None,
                             "key_file": str(key), "cert_file": str(cert)})
    lab.start()
    lab.wait_for(lambda: logged(a, "certificate_unusable_at_start") or
                 [r for r in a.process.log_records() if "expired" in json.dumps(r)],
                 what="a log line about the expired certificate",
                 seen=lambda: [r.get("event") for r in a.process.log_records()][-8:])
    message = json.dumps(a.process.log_records(), ensure_ascii=False)
    assert "expired on" in message and str(cert) in message, message[-1500:]
    # readiness and the metric follow within a status refresh (every few seconds)
    status, body = lab.wait_for(
        lambda: (lambda answer: answer if answer[0] == 503 and "certificat" in
                 answer[1].decode().lower() else None)(a.http_get("/readyz")),
        what="/readyz 503 naming the certificate", seen=lambda: a.http_get("/readyz"))
    lab.wait_for(lambda: "edxml_connector_signing_blocked 1.0" in a.http_get("/metrics")[1].decode(),
                 what="edxml_connector_signing_blocked 1",
                 seen=lambda: [line for line in a.http_get("/metrics")[1].decode().splitlines()
                               if "signing_blocked" in line])
    checked = a.cli("check", check=False)
    assert checked.returncode != 0
    assert "FAIL" in checked.stdout and "expired" in (checked.stdout + checked.stderr).lower()

    a.drop_bundle("cho-ky", document_metadata([b.organ_id], "408", "chờ chứng thư mới"),
                  {"a.pdf": pdf_bytes("408")})
    lab.wait_for(lambda: [r for r in a.status_json("--direction", "out")["items"]
                          if r["name"] == "cho-ky"], what="the document in the journal",
                 seen=lambda: a.entries("work"))
    # Two attempts to sign it, each stopped (the item waits in the journal): it must neither
    # fail nor leave unsigned.
    lab.wait_for(lambda: a.process.log_text().count('"signing_stopped"') >= 2,
                 what="two attempts stopped for want of a valid certificate",
                 seen=lambda: a.process.log_text().count('"signing_stopped"'))
    assert a.error_files() == {} and a.entries("sent") == []
    assert not [t for t in lab.sim.transfers() if t["sender"] == a.organ_id]

    # renewed certificate + SIGHUP: the waiting document is signed and sent
    shutil.copy(lab.certs.agency_a.key, key)
    shutil.copy(lab.certs.agency_a.cert, cert)
    a.process.popen.send_signal(signal.SIGHUP)
    doc = wait_inbox(lab, b, "408", timeout=30)
    assert doc["signature"]["state"] == "valid"


def test_unreachable_axis_keeps_items_queued_and_retries(new_lab):
    lab = new_lab()
    a, b = lab.a, lab.b
    a.configure(health={"readiness": {"axis_poll_intervals": 1}})
    a.start()  # the simulator is not running: the axis is unreachable from the start
    a.wait_started()
    a.drop_bundle("queued", document_metadata([b.organ_id], "406", "chờ trục"),
                  {"a.pdf": pdf_bytes("406")})
    lab.wait_for(lambda: a.http_status("/readyz") == 503, timeout=15, what="/readyz 503",
                 seen=lambda: a.http_get("/readyz"))

    def pending_with_error():
        rows = [r for r in a.status_json("--direction", "out")["items"] if r["name"] == "queued"]
        return rows and rows[0]["state"] in ("queued", "packaged", "sending") \
            and rows[0]["last_error"] and rows[0]
    row = lab.wait_for(pending_with_error, timeout=20,
                       what="the item pending with an error in `status`",
                       seen=lambda: a.status_json("--direction", "out")["items"])
    assert a.entries("failed") == [] and a.error_files() == {}
    assert "edxml_connector_retries_total" in a.http_get("/metrics")[1].decode()

    # the axis comes back: the same item is sent (B's connector is not needed for that)
    lab.sim.start()
    lab.wait_for(lambda: "queued" in a.entries("sent"), timeout=30, what="queued sent",
                 seen=lambda: (a.entries("work"), a.entries("failed")))
    assert row["id"] in {r["id"] for r in a.status_json("--state", "sent")["items"]}
    sent = [t for t in lab.sim.transfers() if t["sender"] == a.organ_id]
    assert len({t["sha256"] for t in sent}) == 1, sent  # the same stored bytes, however often


def _mount_tmpfs(directory: Path, size: str) -> bool:
    directory.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                             str(directory)], capture_output=True, text=True)
    return result.returncode == 0


def _delivery_state(lab, organ_id: str, number: str) -> list[str]:
    """The simulator's delivery state(s) to ``organ_id`` of the document with code ``number``."""
    return [r["state"] for t in lab.sim.transfers() if f",{number}/" in t.get("document_id", "")
            for r in t["recipients"] if r["recipient"] == organ_id]


@pytest.mark.parametrize("where", ["inbox", "package store"])
def test_full_disk_loses_nothing(new_lab, where):
    """A full filesystem under B's inbox (delivery fails after the package is stored and
    acknowledged: retried from the journal) or under its package store (the package cannot be
    stored: NOT acknowledged, the axis lists it again): a log line and `status` say so; once
    space is back the document is delivered exactly once."""
    lab = new_lab()
    a, b = lab.a, lab.b
    full = b.exchange / "inbox" if where == "inbox" else b.state_dir / "packages"
    if not _mount_tmpfs(full, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): full-disk test "
                    "not run")
    try:
        filler = full / ".filler.bin"
        with open(filler, "wb") as handle:
            try:
                handle.write(b"\0" * (1024 * 1024))
            except OSError:
                pass
        lab.start()
        big = pdf_bytes("407", size=300_000)
        a.drop_bundle("big", document_metadata([b.organ_id], "407", "tệp lớn khi đĩa đầy"),
                      {"lon.pdf": big})
        lab.wait_for(lambda: [r for r in b.process.log_records()
                              if r.get("level") in ("error", "warning")
                              and "space" in json.dumps(r, ensure_ascii=False).lower()],
                     timeout=30, what="a log line at B about the full disk",
                     seen=lambda: [r.get("event") for r in b.process.log_records()][-10:])
        assert b.inbox_folders() == []
        incoming = b.status_json("--direction", "in")["items"]
        if where == "package store":
            # not stored, so not acknowledged: the axis still has it pending for B
            assert _delivery_state(lab, b.organ_id, "407") == ["pending"], lab.sim.transfers()
            assert all(row["state"] not in ("stored", "acknowledged", "delivered")
                       for row in incoming), incoming
        else:
            assert incoming and incoming[0]["state"] != "delivered", incoming
            assert incoming[0]["last_error"], incoming
        # space comes back: the same document is delivered, once
        filler.unlink()
        doc = wait_inbox(lab, b, "407", timeout=30)
        assert (Path(doc["_folder"]) / "lon.pdf").read_bytes() == big
        assert len(b.inbox_folders()) == 1
        lab.wait_for(lambda: _delivery_state(lab, b.organ_id, "407") == ["done"],
                     what="B's acknowledgement (done) at the axis",
                     seen=lambda: _delivery_state(lab, b.organ_id, "407"))
    finally:
        lab.close()
        subprocess.run(["umount", "-l", str(full)], capture_output=True)


def _tampered_package(lab, number: str) -> bytes:
    """A package signed by A whose subject was changed afterwards: the signature is invalid."""
    from connector.devtools.lab import pack_package

    data = pack_package(document_metadata([lab.b.organ_id], number, "Nội dung gốc",
                                          **{"from": {"organ_id": lab.a.organ_id}}),
                        {"a.pdf": pdf_bytes(number)}, lab.base / f"pack-{number}",
                        p12=lab.a.p12, password_file=lab.a.password_file)
    tampered = data.replace("Nội dung gốc".encode(), "Nội dung SỬA".encode())
    assert tampered != data
    return tampered


def test_tampered_package_is_refused_by_the_sender_and_quarantined_by_the_receiver(module_lab):
    """The sender's connector refuses to send a package whose signature does not verify; one
    that reaches the axis anyway (here: pushed with the axis client directly) is quarantined at
    B — stored, acknowledged, not delivered — until an operator releases it."""
    lab = module_lab
    a, b = lab.a, lab.b
    a.drop_package("tampered.edxml", _tampered_package(lab, "409"))
    error = wait_failed(lab, a, "tampered")
    assert "does not verify" in error, error

    from connector.axis.client import AxisClient
    from connector.config import load_config
    from connector.service.runtime import axis_settings

    settings = load_config(a.config_path)
    with AxisClient(axis_settings(settings.axis, a.organ_id)) as client:
        client.send_edoc(_tampered_package(lab, "410"))
    folder = lab.wait_for(lambda: b.quarantine_folders(), timeout=20,
                          what="the tampered package in B's quarantine/",
                          seen=lambda: b.entries("inbox"))[0]
    assert (folder / "package.edxml").is_file()
    assert "invalid" in (folder / "reason.txt").read_text(encoding="utf-8").lower()
    assert not [d for d in b.inbox_documents() if (d.get("code") or "").startswith("410/")]
    listed = b.cli("quarantine", "list", "--json").stdout
    held = [row for row in json.loads(listed) if row.get("quarantined", True)]
    assert held, listed
    b.cli("quarantine", "release", held[0]["id"])
    doc = wait_inbox(lab, b, "410")
    assert doc["signature"]["state"] == "invalid"  # released as it is, the outcome kept
