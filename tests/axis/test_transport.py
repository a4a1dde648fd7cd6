"""The transport guarantees of the client, shown on real sockets: TLS verified against a CA bundle
(and impossible to switch off by accident), the outbound proxy, a fresh and complete signed
parameter set per request (retries included), and logs that never carry the secret or the
signature — through the project's own JSON logging."""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import responses
from axis_helpers import FAST_RETRY, G22, H41, SECRETS
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connector.axis import protocol as p
from connector.axis.client import AxisClient, AxisSettings, RetryPolicy
from connector.axis.errors import TransientAxisError
from connector.axis.sim.samples import make_document
from connector.axis.sim.server import AxisSimulator

ONE_TRY = RetryPolicy(max_attempts=1)


# --- a private CA and a server certificate for 127.0.0.1, made here ------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_ca(directory, label: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(label)).issuer_name(_name(label))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    path = directory / f"{label}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """(ca.pem, server cert.pem, server key.pem, other-ca.pem)."""
    directory = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert, ca_path = _write_ca(directory, "axis-test-ca")
    _, _, other_ca_path = _write_ca(directory, "some-other-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("axis.test"))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path, other_ca_path


@pytest.fixture
def tls_sim(tmp_path, agency_book, tls_files):
    _, cert_path, key_path, _ = tls_files
    simulator = AxisSimulator(tmp_path / "tls-state", agency_book, tls_cert=cert_path,
                              tls_key=key_path).start()
    yield simulator
    simulator.stop()


def test_https_with_the_private_ca_bundle_works_end_to_end(tls_sim, make_client, tls_files,
                                                          tmp_path):
    ca_path = tls_files[0]
    assert tls_sim.url.startswith("https://127.0.0.1:")
    sender = make_client(tls_sim, G22, ca_bundle=str(ca_path))
    receiver = make_client(tls_sim, "sys-h41", ca_bundle=str(ca_path))
    package = make_document(G22, [H41])
    sent = sender.send_edoc(package)
    [item] = receiver.list_received()
    assert receiver.download_edoc(item.doc_id, tmp_path / "in.edxml").read_bytes() == package
    receiver.update_status(sent.doc_id, "done", "Đã nhận")
    assert receiver.list_received() == []


def test_https_without_the_ca_bundle_is_refused(tls_sim, make_client):
    client = make_client(tls_sim, G22, retry=ONE_TRY)
    with pytest.raises(TransientAxisError) as caught:
        client.list_agencies()
    assert "certificate verify failed" in caught.value.message.lower()


def test_https_with_another_ca_is_refused(tls_sim, make_client, tls_files):
    client = make_client(tls_sim, G22, retry=ONE_TRY, ca_bundle=str(tls_files[3]))
    with pytest.raises(TransientAxisError, match="(?i)certificate verify failed"):
        client.list_agencies()


def test_verification_cannot_be_switched_off_through_the_session(tls_sim, tls_files):
    """Neither a session handed in with verify=False nor a later ``session.verify = False``
    turns verification off: the client passes its own ``verify`` with every request."""
    settings = AxisSettings(endpoint=tls_sim.url, systemid=G22, secret=SECRETS[G22],
                            retry=ONE_TRY, connect_timeout=2, read_timeout=5)
    careless = requests.Session()
    careless.verify = False
    with AxisClient(settings, session=careless) as client:
        with pytest.raises(TransientAxisError, match="(?i)certificate verify failed"):
            client.list_agencies()
        client.session.verify = False
        with pytest.raises(TransientAxisError, match="(?i)certificate verify failed"):
            client.list_agencies()
    assert not hasattr(settings, "verify")  # and there is no setting to turn it off


def test_timeouts_must_be_finite(tmp_path):
    from connector.axis.errors import AxisSettingsError
    for value in (float("inf"), float("nan"), 0, -1):
        with pytest.raises(AxisSettingsError, match="read_timeout"):
            AxisSettings(endpoint="http://127.0.0.1:1", systemid="s", secret="k",
                         read_timeout=value)


# --- the outbound proxy ----------------------------------------------------------------------


class _RecordingProxy(BaseHTTPRequestHandler):
    """A forward proxy that records what it is asked for and answers an empty list itself."""

    seen: list[tuple[str, str, dict[str, str]]]

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append(("POST", self.path, dict(self.headers.items())))
        body = p.encode_body(p.ok_body(data=[]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_requests_go_through_the_configured_proxy(monkeypatch):
    seen: list = []
    handler = type("Proxy", (_RecordingProxy,), {"seen": seen})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    # An environment proxy must be ignored: the settings are the only source.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    try:
        settings = AxisSettings(endpoint="http://axis.example.invalid/vxp", systemid=G22,
                                secret=SECRETS[G22], retry=ONE_TRY, connect_timeout=2,
                                read_timeout=5,
                                proxy=f"http://127.0.0.1:{proxy.server_address[1]}")
        with AxisClient(settings) as client:
            assert client.list_received() == []
    finally:
        proxy.shutdown()
        proxy.server_close()
    [(method, target, headers)] = seen
    assert target == "http://axis.example.invalid/vxp/getReceivedEdocList"  # absolute form
    assert headers["XroadVnpt-systemid"] == G22


# --- a fresh, complete parameter set per request ---------------------------------------------


def _header(request, name):
    value = request.headers.get(name)
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _verify(request):
    received = [(name, value.decode("utf-8") if isinstance(value, bytes) else value)
                for name, value in request.headers.items()]
    return p.verify_request(received, {G22: SECRETS[G22]}.get)


@responses.activate
def test_no_parameter_leaks_into_a_later_call_and_each_attempt_is_signed_afresh(monkeypatch):
    """The SDK's two defects, shown absent on the wire: its header map keeps an earlier call's
    parameters, and its timestamp is frozen. Each request here (a retried one too) verifies on
    its own, carries only its own parameters, and has a timestamp of its own."""
    stamps = iter(f"22112026T2030{second:02d}+0000" for second in range(60))
    monkeypatch.setattr(p, "format_timestamp", lambda *a, **k: next(stamps))
    base = "http://axis.test"
    responses.post(f"{base}/updateStatus", body=p.encode_body(p.ok_body()))
    responses.post(f"{base}/getReceivedEdocList", status=503)
    responses.post(f"{base}/getReceivedEdocList", body=p.encode_body(p.ok_body(data=[])))
    responses.post(f"{base}/getAgenciesList", body=p.encode_body(p.ok_body(data=[])))
    settings = AxisSettings(endpoint=base, systemid=G22, secret=SECRETS[G22], retry=FAST_RETRY)
    with AxisClient(settings, sleep=lambda _: None) as client:
        client.update_status("7", "done", "Đã nhận văn bản")
        client.list_received("status")
        client.list_agencies()
    requests_sent = [call.request for call in responses.calls]
    assert len(requests_sent) == 4
    verified = [_verify(request) for request in requests_sent]
    assert verified[0].params["description"] == "Da nhan van ban"  # ASCII on the wire
    assert set(verified[0].params) == {"systemid", "timestamp", "Content-Type", "docid",
                                       "status", "description"}
    for retried in verified[1:3]:
        assert set(retried.params) == {"systemid", "timestamp", "Content-Type", "servicetype",
                                       "messagetype"}
        assert retried.params["messagetype"] == "status"
    assert set(verified[3].params) == {"systemid", "timestamp", "Content-Type"}
    for request in requests_sent[1:]:
        assert not any(name.lower() in ("xroadvnpt-docid", "xroadvnpt-status",
                                        "xroadvnpt-description")
                       for name in request.headers)
    timestamps = [v.params["timestamp"] for v in verified]
    assert len(set(timestamps)) == 4  # the retry of getReceivedEdocList was re-signed too


# --- logs ------------------------------------------------------------------------------------


@pytest.fixture
def json_logs():
    """The project's logging (connector.logs) at debug level into a buffer; restored after."""
    import structlog

    from connector.logs import configure_logging

    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_structlog = structlog.get_config()
    buffer = io.StringIO()
    configure_logging("debug", stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            if handler not in saved_handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(saved_level)
        for name in ("urllib3", "apscheduler", "watchdog", "sqlalchemy", "alembic"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        structlog.configure(**saved_structlog)


def _spy_on_headers(client: AxisClient) -> list[dict]:
    """Record the headers each request really carried (the real request still goes out)."""
    sent: list[dict] = []
    real_request = client.session.request

    def request(method, url, **kwargs):
        sent.append(dict(kwargs.get("headers") or {}))
        return real_request(method, url, **kwargs)

    client.session.request = request
    return sent


def test_client_logs_reach_the_json_log_without_secret_or_signature(sim, make_client,
                                                                    json_logs):
    sender, receiver = make_client(sim, G22), make_client(sim, "sys-h41")
    sent_headers = _spy_on_headers(sender)
    received_headers = _spy_on_headers(receiver)
    sim.faults.update({"next": {"error": 1}})  # one retry, so the info line is there too
    sent = sender.send_edoc(make_document(G22, [H41]))
    receiver.update_status(sent.doc_id, "done", "Đã nhận")
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if line.strip()]
    ours = [line for line in lines if line.get("logger") == "connector.axis.client"]
    assert any(line["level"] == "debug" and "sendEdoc" in line["event"] for line in ours)
    assert any(line["level"] == "info" and "retrying" in line["event"] for line in ours)
    assert any("[redacted]" in line["event"] for line in ours)
    text = json_logs.getvalue()
    for secret in SECRETS.values():
        assert secret not in text
    signatures = [headers[name].decode() for headers in sent_headers + received_headers
                  for name in (p.HASH_HEADER, p.SIGN_HEADER)]
    assert len(signatures) == 6  # two sends (one retried) and one acknowledgement
    for signature in signatures:
        assert signature not in text
