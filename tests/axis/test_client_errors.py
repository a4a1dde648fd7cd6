"""Unit tests of the client's error classification (HTTP mocked with ``responses``)."""

from __future__ import annotations

import json
import logging

import pytest
import requests
import responses

from connector.axis import protocol as p
from connector.axis.client import AxisClient, AxisSettings, RetryPolicy
from connector.axis.errors import AxisAuthError, AxisSettingsError, PermanentAxisError, TransientAxisError

ENDPOINT = "https://axis.test/vxp"
SECRET = "very-secret-value-42"


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(sleeps):
    settings = AxisSettings(endpoint=ENDPOINT, systemid="000.00.00.G22", secret=SECRET,
                            retry=RetryPolicy(max_attempts=3, max_total_seconds=60,
                                              initial_backoff=1.0, max_backoff=4.0))
    with AxisClient(settings, sleep=sleeps.append) as c:
        yield c


def url(operation):
    return f"{ENDPOINT}/{operation}"


def header(request, name) -> str:
    value = request.headers[name]
    return value.decode("utf-8") if isinstance(value, bytes) else value


def ok(**fields):
    return json.dumps(p.ok_body(**fields))


@responses.activate
def test_5xx_and_429_are_retried_with_jittered_backoff(client, sleeps):
    responses.post(url(p.OP_LIST_RECEIVED), status=503)
    responses.post(url(p.OP_LIST_RECEIVED), status=429)
    responses.post(url(p.OP_LIST_RECEIVED), body=ok(data=[]))
    assert client.list_received() == []
    assert len(responses.calls) == 3
    assert len(sleeps) == 2 and all(0 <= s <= 4.0 for s in sleeps)


@responses.activate
def test_exhausted_retries_raise_transient_with_the_last_cause(client):
    responses.post(url(p.OP_SEND), status=502)
    with pytest.raises(TransientAxisError) as caught:
        client.send_edoc(b"<edXML/>")
    assert len(responses.calls) == 3
    assert caught.value.attempts == 3 and caught.value.http_status == 502


@responses.activate
def test_connection_errors_are_transient(client):
    responses.post(url(p.OP_COUNT_EDOC), body=requests.ConnectionError("refused"))
    responses.post(url(p.OP_COUNT_EDOC), body=requests.ReadTimeout("slow"))
    responses.post(url(p.OP_COUNT_EDOC), body=ok(count=4))
    assert client.count_received() == 4


@responses.activate
@pytest.mark.parametrize("body", ["<html>Bad gateway</html>", "", '{"status":"OK"}',
                                  '{"status":"OK","data":null}', '{"status":"OK","data":{}}',
                                  '{"status":"OK","data":[{"from":"x"}]}'])
def test_an_unreadable_list_is_an_error_never_an_empty_list(client, body):
    responses.post(url(p.OP_LIST_RECEIVED), body=body)
    with pytest.raises(TransientAxisError):
        client.list_received()
    assert len(responses.calls) == 3


@responses.activate
@pytest.mark.parametrize("code", sorted(p.PERMANENT_CODES))
def test_a_permanent_fail_is_raised_at_once_with_code_and_text(client, code):
    responses.post(url(p.OP_SEND), body=json.dumps(p.fail_body(code, "Gói tin lỗi")))
    with pytest.raises(PermanentAxisError) as caught:
        client.send_edoc(b"<edXML/>")
    assert (caught.value.error_code, caught.value.error_desc) == (code, "Gói tin lỗi")
    assert len(responses.calls) == 1


@responses.activate
def test_an_unknown_fail_code_is_retried_then_kept(client):
    responses.post(url(p.OP_SEND), body=json.dumps(p.fail_body("777", "busy")))
    with pytest.raises(TransientAxisError) as caught:
        client.send_edoc(b"<edXML/>")
    assert (caught.value.error_code, caught.value.error_desc) == ("777", "busy")
    assert len(responses.calls) == 3


@responses.activate
def test_the_permanent_set_is_a_setting(sleeps):
    settings = AxisSettings(endpoint=ENDPOINT, systemid="s", secret="k",
                            permanent_codes=frozenset({"777"}))
    responses.post(url(p.OP_SEND), body=json.dumps(p.fail_body("777", "no")))
    with pytest.raises(PermanentAxisError):
        AxisClient(settings, sleep=sleeps.append).send_edoc(b"x")
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize("status,body", [
    (401, json.dumps(p.fail_body(p.ERR_BAD_SIGNATURE, "bad hmac"))),
    (401, "Unauthorized"),
    (403, ""),
    (200, json.dumps(p.fail_body(p.ERR_UNKNOWN_SYSTEM, "unknown systemid"))),
])
def test_authentication_failures_raise_their_own_type_without_retry(client, status, body):
    responses.post(url(p.OP_LIST_RECEIVED), status=status, body=body)
    with pytest.raises(AxisAuthError):
        client.list_received()
    assert len(responses.calls) == 1


@responses.activate
def test_send_ok_without_docid_is_not_success(client):
    responses.post(url(p.OP_SEND), body=ok())
    with pytest.raises(TransientAxisError, match="DocId"):
        client.send_edoc(b"x")


@responses.activate
def test_send_writes_bytes_plus_crlf_signed_as_octet_stream(client):
    responses.post(url(p.OP_SEND), body=ok(DocId="9"))
    result = client.send_edoc(b"hello edxml", to=["000.00.00.H41", "000.00.00.H14"])
    request = responses.calls[0].request
    body = request.body if isinstance(request.body, bytes) else request.body.read()
    assert body == b"hello edxml\r\n"
    assert header(request, "XroadVnpt-hash-file") == \
        "482b2f7d5df9ee98c0186ab3d892e29c467c6a75ce272f9e8bfc7627e6b2aff"
    assert header(request, "XroadVnpt-Content-Type") == "application/octet-stream"
    assert header(request, "Content-Type") == "application/octet-stream"
    assert header(request, "XroadVnpt-to") == '["000.00.00.H41","000.00.00.H14"]'
    assert result.doc_id == "9"


@responses.activate
def test_secrets_never_logged_and_signatures_redacted(client, caplog):
    caplog.set_level(logging.DEBUG, logger="connector.axis.client")
    responses.post(url(p.OP_UPDATE_STATUS), status=500)
    responses.post(url(p.OP_UPDATE_STATUS), body=ok())
    client.update_status("5", "done", "Đã nhận")
    request = responses.calls[-1].request
    hash_header = header(request, p.HASH_HEADER)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "updateStatus" in text and "[redacted]" in text
    assert SECRET not in text and hash_header not in text
    assert SECRET not in repr(client.settings)


def test_settings_are_checked_with_a_clear_message(tmp_path):
    with pytest.raises(AxisSettingsError, match="endpoint"):
        AxisSettings(endpoint="axis.gov.vn", systemid="s", secret="k")
    with pytest.raises(AxisSettingsError, match="secret"):
        AxisSettings(endpoint=ENDPOINT, systemid="s", secret="")
    with pytest.raises(AxisSettingsError, match="ca_bundle"):
        AxisSettings(endpoint=ENDPOINT, systemid="s", secret="k",
                     ca_bundle=str(tmp_path / "missing.pem"))
    with pytest.raises(AxisSettingsError, match="read_timeout"):
        AxisSettings(endpoint=ENDPOINT, systemid="s", secret="k", read_timeout=0)


def test_tls_is_always_verified_and_the_proxy_is_a_setting(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    plain = AxisClient(AxisSettings(endpoint=ENDPOINT, systemid="s", secret="k"))
    custom = AxisClient(AxisSettings(endpoint=ENDPOINT, systemid="s", secret="k",
                                     ca_bundle=str(bundle), proxy="http://proxy.local:3128"))
    assert plain.session.verify is True and plain.session.trust_env is False
    assert custom.session.verify == str(bundle)
    assert custom.session.proxies == {"http": "http://proxy.local:3128",
                                      "https": "http://proxy.local:3128"}


@responses.activate
def test_a_package_path_is_sent_with_crlf_and_a_content_length(client, tmp_path):
    path = tmp_path / "big.edxml"
    path.write_bytes(b"<edXML>" + b"x" * 3_000_000 + b"</edXML>")
    responses.post(url(p.OP_SEND), body=ok(DocId="1"))
    client.send_edoc(path)
    request = responses.calls[0].request
    assert request.body == path.read_bytes() + b"\r\n"  # responses reads the stream for us
    assert header(request, "Content-Length") == str(path.stat().st_size + 2)
    assert header(request, "XroadVnpt-hash-file") == p.hash_file_sdk(path.read_bytes())


def test_the_package_body_is_a_stream_requests_does_not_copy(tmp_path):
    from connector.axis.client import _PackageBody
    path = tmp_path / "p.edxml"
    path.write_bytes(b"a" * 2_500_000)
    body = _PackageBody(path, b"\r\n")
    prepared = requests.Request("POST", url(p.OP_SEND), data=body).prepare()
    assert prepared.body is body and prepared.headers["Content-Length"] == "2500002"
    chunks = list(body)
    body.close()
    assert max(len(c) for c in chunks) <= 1 << 20 and b"".join(chunks).endswith(b"a\r\n")
