"""The client drives the simulator over real HTTP on loopback: every operation, the routing
rules, the FAIL codes and the authentication failures."""

from __future__ import annotations

import json

import pytest
import requests
from axis_helpers import G22, H14, H41, SECRETS

from connector.axis import protocol as p
from connector.axis.client import RetryPolicy
from connector.axis.errors import AxisAuthError, PermanentAxisError, TransientAxisError
from connector.axis.sim.samples import make_document, make_status
from connector.axis.sim.server import AxisSimulator


def admin(sim, name):
    return requests.get(f"{sim.admin_url}/{name}", timeout=5).json()


def raw_send(sim, body: bytes, hash_file: str, *, systemid=G22, messagetype="edoc"):
    """A sendEdoc built by hand, to control the body and hash form exactly."""
    signed = p.build_signed_headers(
        systemid=systemid, secret=SECRETS[systemid], content_type=p.PACKAGE_CONTENT_TYPE,
        params={"from": G22, "servicetype": "eDoc", "messagetype": messagetype,
                "hash-file": hash_file})
    response = requests.post(f"{sim.url}/sendEdoc", data=body, headers=signed.wire, timeout=5)
    return response.status_code, response.json()


def test_send_list_get_download_ack_round_trip(sim, make_client, tmp_path):
    sender, receiver = make_client(sim, G22), make_client(sim, "sys-h41")
    package = make_document(G22, [H41], attachment=b"%PDF-1.4 " + bytes(range(256)) * 40)
    path = tmp_path / "out.edxml"
    path.write_bytes(package)

    sent = sender.send_edoc(path)  # streamed from disk
    assert sent.hash_file == p.hash_file_sdk(package) and sent.size == len(package)

    assert receiver.count_received() == 1
    [item] = receiver.list_received("edoc")
    assert (item.doc_id, item.from_, item.to, item.message_type, item.status) == \
        (sent.doc_id, G22, H41, "edoc", "pending")
    assert receiver.get_edoc(item.doc_id) == package
    downloaded = receiver.download_edoc(item.doc_id, tmp_path / "in.edxml")
    assert downloaded.read_bytes() == package
    assert not (tmp_path / "in.edxml.part").exists()

    receiver.update_status(item.doc_id, "processing")
    assert [i.status for i in receiver.list_received()] == ["processing"]
    receiver.update_status(item.doc_id, "done", "Đã nhận và vào sổ văn bản đến")
    assert receiver.list_received() == []
    assert receiver.count_received() == 0

    [row] = sender.list_sent(sent.doc_id)
    assert (row.to_code, row.receive_status, row.receive_status_desc) == \
        (H41, "done", "Da nhan va vao so van ban den")  # headers are ASCII: diacritics dropped
    assert row.title == "V/v thử nghiệm liên thông văn bản" and row.notation == "123/VPCP-TTĐT"
    assert row.received_time  # fetched


def test_the_stored_package_is_the_body_without_the_sdk_crlf(sim, make_client):
    package = make_document(G22, [H41])
    make_client(sim, G22).send_edoc(package)
    [transfer] = admin(sim, "transfers")["transfers"]
    assert transfer["size"] == len(package)
    assert (sim.store.package_path(transfer["doc_id"])).read_bytes() == package


def test_only_recipients_list_a_document_until_each_acknowledges(sim, make_client):
    sender = make_client(sim, G22)
    h41, h14 = make_client(sim, "sys-h41"), make_client(sim, H14)
    sent = sender.send_edoc(make_document(G22, [H41, H14]))
    assert sender.list_received() == []  # the sender is not a recipient
    assert [i.doc_id for i in h41.list_received()] == [sent.doc_id]
    assert [i.doc_id for i in h14.list_received()] == [sent.doc_id]
    h41.update_status(sent.doc_id, "done")
    assert h41.list_received() == [] and len(h14.list_received()) == 1
    states = {row.to_code: row.receive_status for row in sender.list_sent(sent.doc_id)}
    assert states == {H41: "done", H14: "pending"}


def test_the_to_header_overrides_the_package_recipients(sim, make_client):
    sent = make_client(sim, G22).send_edoc(make_document(G22, [H41]), to=[H14])
    assert make_client(sim, "sys-h41").list_received() == []
    assert [i.doc_id for i in make_client(sim, H14).list_received()] == [sent.doc_id]


def test_a_status_goes_to_its_response_for_organ_and_only_under_status(sim, make_client):
    original_sender, receiver = make_client(sim, G22), make_client(sim, "sys-h41")
    status = receiver.send_status(make_status(H41, G22, status_code="03"))
    assert original_sender.list_received("edoc") == []
    assert [i.doc_id for i in original_sender.list_received("status")] == [status.doc_id]
    assert original_sender.count_received("status") == 1
    assert original_sender.count_received("edoc") == 0
    assert receiver.list_received("status") == []
    assert original_sender.get_edoc(status.doc_id).startswith(b"<?xml")


def test_list_received_filters_by_date(sim, make_client):
    import datetime as dt
    make_client(sim, G22).send_edoc(make_document(G22, [H41]))
    receiver = make_client(sim, "sys-h41")
    now = dt.datetime.now(p.VIETNAM_TZ)
    assert len(receiver.list_received(from_date=now - dt.timedelta(hours=1),
                                      to_date=now + dt.timedelta(hours=1))) == 1
    assert receiver.list_received(from_date=now + dt.timedelta(hours=1)) == []


def test_agencies_list_comes_from_the_file(sim, make_client):
    agencies = make_client(sim, H14).list_agencies()
    assert [(a.code, a.name) for a in agencies] == [
        (G22, "Văn phòng Chính phủ"), (H41, "UBND Tỉnh Nghệ An"), (H14, "UBND Tỉnh Hòa Bình")]
    assert agencies[0].mail == "vpcp@gov.vn"


@pytest.mark.parametrize("hash_form", ["sdk", "hex"])
@pytest.mark.parametrize("trailer", [b"\r\n", b""])
def test_send_accepts_either_hash_form_with_or_without_crlf(sim, hash_form, trailer):
    package = make_document(G22, [H41])
    claimed = p.hash_file_sdk(package) if hash_form == "sdk" else p.hash_file_hex(package)
    status, body = raw_send(sim, package + trailer, claimed)
    assert (status, body["status"]) == (200, "OK") and body["DocId"]


def test_hash_mismatch_is_refused_and_changes_nothing(sim):
    package = make_document(G22, [H41])
    status, body = raw_send(sim, package + b"\r\n", p.hash_file_sdk(package + b"tampered"))
    assert (status, body["status"], body["ErrorCode"]) == (200, "FAIL", p.ERR_HASH_MISMATCH)
    assert "CRLF" in body["ErrorDesc"]
    assert admin(sim, "transfers")["transfers"] == []


def test_business_failures_have_distinct_codes_and_raise_permanent(sim, make_client):
    client = make_client(sim, G22)
    failures = {}
    for label, package in {
        "malformed": b"<edXML><not-closed></edXML>",
        "unknown recipient": make_document(G22, [H41, "000.00.99.Z99"]),
        "kind mismatch": make_status(G22, H41),
    }.items():
        with pytest.raises(PermanentAxisError) as caught:
            client.send_edoc(package)
        failures[label] = caught.value.error_code
    assert failures == {"malformed": p.ERR_MALFORMED, "unknown recipient": p.ERR_UNKNOWN_RECIPIENT,
                        "kind mismatch": p.ERR_MALFORMED}
    status, body = raw_send(sim, b"x", p.hash_file_sdk(b"y"))
    assert body["ErrorCode"] == p.ERR_HASH_MISMATCH
    assert len({p.ERR_MALFORMED, p.ERR_UNKNOWN_RECIPIENT, p.ERR_HASH_MISMATCH}) == 3
    assert admin(sim, "transfers")["transfers"] == []


def test_unknown_recipient_names_the_organ(sim, make_client):
    with pytest.raises(PermanentAxisError, match="000.00.99.Z99"):
        make_client(sim, G22).send_edoc(make_document(G22, ["000.00.99.Z99"]))


@pytest.mark.parametrize("case", ["wrong secret", "unknown systemid", "wrong From"])
def test_authentication_failures_are_401_fail_and_change_nothing(sim, make_client, case):
    if case == "wrong secret":
        client = make_client(sim, G22, secret="not-the-secret")
        package = make_document(G22, [H41])
        expected = p.ERR_BAD_SIGNATURE
    elif case == "unknown systemid":
        client = make_client(sim, "000.00.00.X99", secret="whatever")
        package = make_document("000.00.00.X99", [H41])
        expected = p.ERR_UNKNOWN_SYSTEM
    else:  # a registered agency sending a package whose From is another agency
        client = make_client(sim, H14)
        package = make_document(G22, [H41])
        expected = p.ERR_SENDER_MISMATCH
    with pytest.raises(AxisAuthError) as caught:
        client.send_edoc(package)
    assert (caught.value.http_status, caught.value.error_code) == (401, expected)
    assert caught.value.error_desc
    assert admin(sim, "transfers")["transfers"] == []


def test_auth_failure_is_not_retried(sim, make_client):
    client = make_client(sim, G22, secret="wrong")
    with pytest.raises(AxisAuthError):
        client.list_received()
    counters = admin(sim, "counters")["agencies"][G22]
    assert counters["requests"] == {"getReceivedEdocList": 1}
    assert counters["auth_failures"] == 1


def test_a_header_swapped_under_a_valid_hmac_is_refused_over_http(sim, make_client):
    make_client(sim, G22).send_edoc(make_document(G22, [H41]))
    signed = p.build_signed_headers(systemid="sys-h41", secret=SECRETS["sys-h41"],
                                    content_type="application/json",
                                    params={"servicetype": "eDoc", "messagetype": "edoc"})
    wire = dict(signed.wire)
    wire["XroadVnpt-messagetype"] = b"status"
    response = requests.post(f"{sim.url}/getReceivedEdocList", headers=wire, timeout=5)
    assert response.status_code == 401
    assert response.json()["ErrorCode"] == p.ERR_BAD_SIGNATURE


def test_only_a_recipient_may_fetch_or_acknowledge(sim, make_client):
    sent = make_client(sim, G22).send_edoc(make_document(G22, [H41]))
    outsider = make_client(sim, H14, retry=RetryPolicy(max_attempts=1))
    with pytest.raises(TransientAxisError) as caught:  # not a permanent code by default
        outsider.update_status(sent.doc_id, "done")
    assert caught.value.error_code == p.ERR_UNKNOWN_DOC
    with pytest.raises(TransientAxisError):
        outsider.get_edoc(sent.doc_id)
    assert len(make_client(sim, "sys-h41").list_received()) == 1


def test_restart_keeps_pending_items(tmp_path, agency_book, make_client):
    state = tmp_path / "state"
    package = make_document(G22, [H41, H14])
    with AxisSimulator(state, agency_book) as first:
        sent = make_client(first, G22).send_edoc(package)
        make_client(first, H14).update_status(sent.doc_id, "done")
    with AxisSimulator(state, agency_book) as second:
        receiver = make_client(second, "sys-h41")
        [item] = receiver.list_received()
        assert item.doc_id == sent.doc_id
        assert receiver.get_edoc(item.doc_id) == package
        assert make_client(second, H14).list_received() == []
        assert make_client(second, G22).send_edoc(package).doc_id != sent.doc_id


def test_admin_endpoints_report_transfers_and_counters(sim, make_client):
    sent = make_client(sim, G22).send_edoc(make_document(G22, [H41]))
    make_client(sim, "sys-h41").list_received()
    [transfer] = admin(sim, "transfers")["transfers"]
    assert transfer["doc_id"] == sent.doc_id and transfer["sender"] == G22
    assert transfer["recipients"][0]["recipient"] == H41
    assert transfer["recipients"][0]["state"] == "pending"
    counters = admin(sim, "counters")["agencies"]
    assert counters[G22]["requests"] == {"sendEdoc": 1} and counters[G22]["sent"] == 1
    assert counters[H41]["requests"] == {"getReceivedEdocList": 1}
    assert counters[H41]["received_pending"] == 1


def test_one_json_log_line_per_request(sim, make_client, caplog):
    caplog.set_level("INFO", logger="connector.axis.sim")
    client = make_client(sim, G22)
    client.list_received()
    with pytest.raises(PermanentAxisError):
        client.send_edoc(make_document(G22, ["000.00.99.Z99"]))
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.name == "connector.axis.sim"]
    assert [(line["op"], line["result"], line["code"]) for line in lines] == [
        ("getReceivedEdocList", "OK", None), ("sendEdoc", "FAIL", p.ERR_UNKNOWN_RECIPIENT)]
    assert all(line["systemid"] == G22 and "ms" in line for line in lines)
    assert not any(SECRETS[G22] in r.getMessage() for r in caplog.records)


def test_a_chunked_body_is_accepted_too(sim):
    package = make_document(G22, [H41])
    signed = p.build_signed_headers(
        systemid=G22, secret=SECRETS[G22], content_type=p.PACKAGE_CONTENT_TYPE,
        params={"from": G22, "servicetype": "eDoc", "messagetype": "edoc",
                "hash-file": p.hash_file_sdk(package)})
    chunks = (package[i:i + 700] for i in range(0, len(package), 700))
    response = requests.post(f"{sim.url}/sendEdoc", data=chunks, headers=signed.wire, timeout=5)
    assert response.json()["status"] == "OK"
    [transfer] = admin(sim, "transfers")["transfers"]
    assert transfer["size"] == len(package)


def test_ipv6_loopback_listen(tmp_path, agency_book, make_client):
    import socket
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        simulator = AxisSimulator(tmp_path / "v6", agency_book, host="::1").start()
    except OSError as error:
        pytest.skip(f"cannot bind ::1: {error}")
    try:
        assert simulator.url.startswith("http://[::1]:")
        assert make_client(simulator, G22).list_received() == []
    finally:
        simulator.stop()


# --- the doc's test vectors and the literal sign-header, over HTTP ---------------------------

VECTOR_SIGN_HEADER = (
    '{"XroadVnpt-systemid":"000.00.00.G22","XroadVnpt-timestamp":"22112026T203015+0042",'
    '"XroadVnpt-Content-Type":"application/json","XroadVnpt-from":"000.00.00.G22",'
    '"XroadVnpt-servicetype":"eDoc","XroadVnpt-messagetype":"edoc"}')
VECTOR_HASH = "079074fbe2fb883a1f56ce2d779a7172f4d2a67dd83f24f9eaba91c4a595d3db"


def vector_request_headers(sign_header=VECTOR_SIGN_HEADER, hash_header=VECTOR_HASH):
    """The vector's request as the SDK would send it: every parameter as a header, the
    sign-header and hash-header exactly as the doc gives them."""
    headers = {name: value for name, value in json.loads(sign_header).items()}
    headers.update({"Content-Type": "application/json", p.SIGN_HEADER: sign_header,
                    p.HASH_HEADER: hash_header, p.VERSION_HEADER: p.PROTOCOL_VERSION,
                    p.SIGN_HEADER_KEY: "systemid;timestamp;Content-Type;from;servicetype;"
                                       "messagetype"})
    return {name: value.encode("utf-8") for name, value in headers.items()}


def test_the_hmac_vector_is_accepted_by_the_simulator_with_its_frozen_timestamp(sim):
    assert SECRETS[G22] == "demo-secret-123"  # the vector's secret
    response = requests.post(f"{sim.url}/getReceivedEdocList",
                             headers=vector_request_headers(), timeout=5)
    assert response.status_code == 200, response.text
    assert response.json() == p.ok_body(data=[])


def test_the_hmac_vector_with_one_wrong_digit_is_401(sim):
    wrong = VECTOR_HASH[:-1] + ("0" if VECTOR_HASH[-1] != "0" else "1")
    response = requests.post(f"{sim.url}/getReceivedEdocList",
                             headers=vector_request_headers(hash_header=wrong), timeout=5)
    assert response.status_code == 401
    assert (response.json()["status"], response.json()["ErrorCode"]) == ("FAIL",
                                                                          p.ERR_BAD_SIGNATURE)
    assert "does not match" in response.json()["ErrorDesc"]


def test_a_timestamp_window_when_turned_on_refuses_the_frozen_vector(tmp_path, agency_book):
    with AxisSimulator(tmp_path / "w", agency_book, timestamp_window=300) as strict:
        response = requests.post(f"{strict.url}/getReceivedEdocList",
                                 headers=vector_request_headers(), timeout=5)
    assert response.status_code == 401 and response.json()["ErrorCode"] == p.ERR_STALE_TIMESTAMP


def test_the_hmac_is_checked_over_the_literal_sign_header_string(sim):
    """Spaces and key order are the sender's business: the server must not re-serialise."""
    literal = ('{ "XroadVnpt-messagetype" : "edoc", "XroadVnpt-servicetype": "eDoc",\t'
               '"XroadVnpt-Content-Type": "application/json", "XroadVnpt-timestamp": '
               '"22112026T203015+0042", "XroadVnpt-systemid": "000.00.00.G22" }')
    good = p.hmac_hex(SECRETS[G22], literal)
    response = requests.post(f"{sim.url}/getReceivedEdocList",
                             headers=vector_request_headers(literal, good), timeout=5)
    assert response.status_code == 200, response.text
    canonical = p.sign_header_json({k[len(p.HEADER_PREFIX):]: v
                                    for k, v in json.loads(literal).items()})
    resigned = p.hmac_hex(SECRETS[G22], canonical)  # a server that re-serialised would want this
    response = requests.post(f"{sim.url}/getReceivedEdocList",
                             headers=vector_request_headers(literal, resigned), timeout=5)
    assert response.status_code == 401


@pytest.mark.parametrize("claimed", [
    "482b2f7d5df9ee98c0186ab3d892e29c467c6a75ce272f9e8bfc7627e6b2aff",   # the SDK form
    "482b2f7d5df9ee98c00186ab3d892e29c467c6a75ce272f9e8bfc7627e6b2aff",  # standard hex
])
@pytest.mark.parametrize("trailer", [b"\r\n", b""])
def test_the_hash_file_vector_is_accepted_in_both_forms(sim, claimed, trailer):
    """``hello edxml`` is not edXML, so an accepted hash shows as FAIL 10 (malformed), never 12."""
    status, body = raw_send(sim, b"hello edxml" + trailer, claimed)
    assert (status, body["status"], body["ErrorCode"]) == (200, "FAIL", p.ERR_MALFORMED)


def test_the_hash_file_vector_with_a_different_body_is_a_mismatch(sim):
    sdk_form = "482b2f7d5df9ee98c0186ab3d892e29c467c6a75ce272f9e8bfc7627e6b2aff"
    status, body = raw_send(sim, b"hello edxmL\r\n", sdk_form)
    assert (status, body["ErrorCode"]) == (200, p.ERR_HASH_MISMATCH)


def test_admin_endpoints_refuse_a_caller_that_is_not_loopback(tmp_path, agency_book,
                                                               make_client):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.250", 9))  # UDP connect sends nothing: it picks a route
            address = probe.getsockname()[0]
        except OSError:
            address = "127.0.0.1"
    if address.startswith("127."):
        pytest.skip("no non-loopback IPv4 address on this host")
    with AxisSimulator(tmp_path / "nl", agency_book, host=address) as exposed:
        assert make_client(exposed, G22).list_received() == []  # the API itself answers
        for method, name in (("GET", "transfers"), ("GET", "counters"), ("POST", "faults")):
            response = requests.request(method, f"{exposed.admin_url}/{name}",
                                        json={"error_rate": 1.0}, timeout=5)
            assert response.status_code == 403, (name, response.text)
        assert exposed.faults.config.error_rate == 0.0


def test_admin_calls_are_logged_too(sim, caplog):
    caplog.set_level("INFO", logger="connector.axis.sim")
    requests.post(f"{sim.admin_url}/faults", json={"latency_ms": 1}, timeout=5)
    requests.get(f"{sim.admin_url}/nothing", timeout=5)
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.name == "connector.axis.sim"]
    assert [(line["method"], line["op"], line["http"]) for line in lines] == [
        ("POST", "_admin/faults", 200), ("GET", "_admin/nothing", 404)]
    assert all(line["peer"] == "127.0.0.1" and line["timestamp"] for line in lines)
