"""The signed-header protocol: the doc's test vectors byte for byte, and server-side checks."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from connector.axis import protocol as p
from connector.axis.errors import RequestVerificationError

VECTOR_SECRET = "demo-secret-123"
VECTOR_SIGN_HEADER = (
    '{"XroadVnpt-systemid":"000.00.00.G22","XroadVnpt-timestamp":"22112026T203015+0042",'
    '"XroadVnpt-Content-Type":"application/json","XroadVnpt-from":"000.00.00.G22",'
    '"XroadVnpt-servicetype":"eDoc","XroadVnpt-messagetype":"edoc"}')
VECTOR_HASH = "079074fbe2fb883a1f56ce2d779a7172f4d2a67dd83f24f9eaba91c4a595d3db"


def vector_headers() -> p.SignedHeaders:
    return p.build_signed_headers(
        systemid="000.00.00.G22", secret=VECTOR_SECRET, content_type="application/json",
        params={"from": "000.00.00.G22", "servicetype": "eDoc", "messagetype": "edoc"},
        timestamp="22112026T203015+0042")


def as_received(signed: p.SignedHeaders) -> list[tuple[str, str]]:
    return [(name, value.decode("utf-8")) for name, value in signed.wire.items()]


def test_hmac_vector_byte_for_byte():
    assert p.hmac_hex(VECTOR_SECRET, VECTOR_SIGN_HEADER) == VECTOR_HASH
    signed = vector_headers()
    assert signed.sign_header == VECTOR_SIGN_HEADER
    assert signed.wire[p.SIGN_HEADER] == VECTOR_SIGN_HEADER.encode()
    assert signed.wire[p.HASH_HEADER] == VECTOR_HASH.encode()


def test_hash_file_vectors():
    data = b"hello edxml"
    assert p.hash_file_hex(data) == \
        "482b2f7d5df9ee98c00186ab3d892e29c467c6a75ce272f9e8bfc7627e6b2aff"
    assert p.hash_file_sdk(data) == \
        "482b2f7d5df9ee98c0186ab3d892e29c467c6a75ce272f9e8bfc7627e6b2aff"
    digest = __import__("hashlib").sha256(data).digest()
    assert p.hash_file_matches(p.hash_file_sdk(data), digest)
    assert p.hash_file_matches(p.hash_file_hex(data).upper(), digest)
    assert not p.hash_file_matches(p.hash_file_sdk(b"other"), digest)


def test_headers_carry_every_parameter_prefixed_and_the_fixed_ones():
    wire = vector_headers().wire
    assert wire["XroadVnpt-systemid"] == b"000.00.00.G22"
    assert wire["XroadVnpt-Content-Type"] == b"application/json"
    assert wire["Content-Type"] == b"application/json"
    assert wire["XroadVnpt-messagetype"] == b"edoc"
    assert wire[p.SIGN_HEADER_KEY] == b"systemid;timestamp;Content-Type;from;servicetype;messagetype"
    assert wire["User-Agent"] == b"JAVASDKAgent/1.0.0 XRoad/VPCP"
    assert wire["XroadVnpt-version"] == b"3.0.201608"


def test_timestamp_is_vietnam_time_with_milliseconds():
    moment = dt.datetime(2026, 11, 22, 13, 30, 15, 42_999, tzinfo=dt.timezone.utc)
    assert p.format_timestamp(moment) == "22112026T203015+0042"
    assert p.parse_timestamp("22112026T203015+0042") == moment.replace(microsecond=42_000)
    with pytest.raises(ValueError):
        p.parse_timestamp("2026-11-22T20:30:15")


def test_each_request_gets_a_fresh_timestamp_and_only_its_own_parameters():
    first = p.build_signed_headers(systemid="s", secret="k", content_type="application/json",
                                   params={"docid": "1", "status": "done"})
    second = p.build_signed_headers(systemid="s", secret="k", content_type="application/json",
                                    params={"messagetype": "edoc"})
    assert "docid" not in second.params and "status" not in second.params
    assert p.parse_timestamp(second.params["timestamp"]) >= p.parse_timestamp(
        first.params["timestamp"])
    assert abs(p.parse_timestamp(second.params["timestamp"]) - dt.datetime.now(p.VIETNAM_TZ)) \
        < dt.timedelta(minutes=1)


def test_header_values_we_send_are_ascii_without_diacritics():
    signed = p.build_signed_headers(systemid="s", secret="k", content_type="application/json",
                                    params={"description": "Đã nhận văn bản — số 7"})
    assert '"XroadVnpt-description":"Da nhan van ban - so 7"' in signed.sign_header
    assert signed.wire["XroadVnpt-description"] == b"Da nhan van ban - so 7"
    assert all(value.isascii() for value in signed.wire.values())
    assert p.ascii_text("Ủy ban nhân dân tỉnh Nghệ An") == "Uy ban nhan dan tinh Nghe An"
    assert p.ascii_text("漢") == "?"


def sdk_request(params: dict[str, str], secret: str = VECTOR_SECRET) -> list[tuple[str, str]]:
    """Headers as SDKVXP writes them: the signed JSON in UTF-8 for the HMAC, every header value
    on the wire as ISO-8859-1 with ``?`` for what Latin-1 lacks (as http.server reads it back)."""
    import json

    entries = {p.HEADER_PREFIX + name: value for name, value in params.items()}
    sign_header = json.dumps(entries, ensure_ascii=False, separators=(",", ":"))
    on_wire = {**entries, p.SIGN_HEADER: sign_header, p.HASH_HEADER: p.hmac_hex(secret, sign_header)}
    return [(name, p.header_text(value.encode("latin-1", "replace"))) for name, value in on_wire.items()]


def test_the_simulator_reads_headers_as_iso_8859_1_as_the_sdk_writes_them():
    base = {"systemid": "000.00.00.G22", "timestamp": "22112026T203015+0042",
            "Content-Type": "application/json", "docid": "7", "status": "done"}
    secrets = {"000.00.00.G22": VECTOR_SECRET}.get
    latin = p.verify_request(sdk_request({**base, "description": "Da xem, café ý"}), secrets)
    assert latin.get("description") == "Da xem, café ý"  # Latin-1 text verifies, as for the SDK
    # What Latin-1 lacks became "?" on the wire, in the signed JSON too: it can never verify.
    with pytest.raises(RequestVerificationError, match="does not match the HMAC"):
        p.verify_request(sdk_request({**base, "description": "Đang xử lý"}), secrets)


def test_verify_accepts_a_good_request():
    verified = p.verify_request(as_received(vector_headers()),
                                {"000.00.00.G22": VECTOR_SECRET}.get)
    assert verified.systemid == "000.00.00.G22"
    assert verified.get("messagetype") == "edoc"
    assert verified.get("MessageType") == "edoc"


def test_verify_refuses_a_wrong_secret():
    with pytest.raises(RequestVerificationError) as caught:
        p.verify_request(as_received(vector_headers()), {"000.00.00.G22": "other"}.get)
    assert caught.value.error_code == p.ERR_BAD_SIGNATURE


def test_verify_refuses_an_unknown_systemid():
    with pytest.raises(RequestVerificationError) as caught:
        p.verify_request(as_received(vector_headers()), {}.get)
    assert caught.value.error_code == p.ERR_UNKNOWN_SYSTEM
    assert "000.00.00.G22" in caught.value.message


def test_verify_refuses_a_header_swapped_under_a_valid_hmac():
    headers = [(name, "status" if name == "XroadVnpt-messagetype" else value)
               for name, value in as_received(vector_headers())]
    with pytest.raises(RequestVerificationError, match="messagetype"):
        p.verify_request(headers, {"000.00.00.G22": VECTOR_SECRET}.get)


def test_verify_refuses_an_unsigned_extra_parameter():
    headers = as_received(vector_headers()) + [("XroadVnpt-to", '["000.00.00.H41"]')]
    with pytest.raises(RequestVerificationError, match="XroadVnpt-to is not covered"):
        p.verify_request(headers, {"000.00.00.G22": VECTOR_SECRET}.get)
    # the same header in another spelling than the signed one is not covered either
    headers = [(name.replace("messagetype", "MessageType"), value)
               for name, value in as_received(vector_headers())]
    with pytest.raises(RequestVerificationError, match="XroadVnpt-MessageType is not covered"):
        p.verify_request(headers, {"000.00.00.G22": VECTOR_SECRET}.get)


def test_a_signed_header_left_out_or_sent_twice_with_another_value_is_refused():
    headers = [(n, v) for n, v in as_received(vector_headers()) if n != "XroadVnpt-messagetype"]
    with pytest.raises(RequestVerificationError, match="XroadVnpt-messagetype is signed .* not sent"):
        p.verify_request(headers, {"000.00.00.G22": VECTOR_SECRET}.get)
    headers = as_received(vector_headers()) + [("XroadVnpt-messagetype", "status")]
    with pytest.raises(RequestVerificationError, match="differs from its signed value"):
        p.verify_request(headers, {"000.00.00.G22": VECTOR_SECRET}.get)


def test_the_same_header_in_two_casings_is_checked_under_the_name_each_json_entry_uses():
    """A reused SDK client: ``docId`` from getEdoc, ``docid`` from updateStatus, both signed."""
    params = {"systemid": "000.00.00.G22", "timestamp": "22112026T203015+0042",
              "Content-Type": "application/json", "docId": "41", "docid": "42", "status": "done"}
    verified = p.verify_request(sdk_request(params), {"000.00.00.G22": VECTOR_SECRET}.get)
    assert verified.get("docid") == "42" and verified.get("docId") == "41"
    swapped = [(name, "41" if name == "XroadVnpt-docid" else value)
               for name, value in sdk_request(params)]
    with pytest.raises(RequestVerificationError, match="XroadVnpt-docid differs"):
        p.verify_request(swapped, {"000.00.00.G22": VECTOR_SECRET}.get)


def test_verify_refuses_missing_or_garbled_signature_headers():
    headers = [(n, v) for n, v in as_received(vector_headers()) if n != p.HASH_HEADER]
    with pytest.raises(RequestVerificationError, match="unsigned"):
        p.verify_request(headers, {"000.00.00.G22": VECTOR_SECRET}.get)
    headers = [(n, "{not json" if n == p.SIGN_HEADER else v)
               for n, v in as_received(vector_headers())]
    with pytest.raises(RequestVerificationError, match="JSON"):
        p.verify_request(headers, {"000.00.00.G22": VECTOR_SECRET}.get)


def test_timestamp_window_is_off_by_default_and_enforced_when_set():
    secrets = {"000.00.00.G22": VECTOR_SECRET}.get
    p.verify_request(as_received(vector_headers()), secrets)  # a frozen SDK timestamp passes
    window = dt.timedelta(minutes=5)
    near = dt.datetime(2026, 11, 22, 20, 32, tzinfo=p.VIETNAM_TZ)
    p.verify_request(as_received(vector_headers()), secrets, max_skew=window, now=near)
    with pytest.raises(RequestVerificationError) as caught:
        p.verify_request(as_received(vector_headers()), secrets, max_skew=window,
                         now=near + dt.timedelta(hours=1))
    assert caught.value.error_code == p.ERR_STALE_TIMESTAMP


def test_parse_reply_refuses_what_is_not_the_promised_json():
    assert p.parse_reply(b'{"status":"OK","ErrorCode":"0","data":[]}').ok
    fail = p.parse_reply(json.dumps(p.fail_body("11", "x")).encode())
    assert (fail.ok, fail.error_code) == (False, "11")
    for raw in (b"", b"<html>502</html>", b"[]", b'{"data":[]}', b'{"status":"MAYBE"}',
                b'{"status":"OK","data":['):
        with pytest.raises(p.MalformedReply):
            p.parse_reply(raw)


def test_a_list_reply_is_read_row_by_row_and_a_broken_one_is_refused():
    text = '{"status":"OK","ErrorCode":"0","data":[{"code":"A"}, {"code":"B"} ],"ErrorDesc":""}'
    reply, start = p.scan_list_reply(text)
    assert reply.ok and "data" not in reply.body
    assert list(p.iter_list_rows(text, start)) == [{"code": "A"}, {"code": "B"}]
    failed, start = p.scan_list_reply('{"data":[],"status":"FAIL","ErrorCode":"7"}')
    assert not failed.ok and failed.error_code == "7" and start is not None
    assert p.scan_list_reply('{"status":"OK","data":{}}')[1] is None  # not a list: the caller says so
    for broken in ('{"status":"OK","data":[{"code":"A"},}', '[{"code":"A"}]',
                   '{"status":"OK","data":[]} trailing', '{"status":"OK","data":[{"code":"A"}',
                   '{"data":[]}', '{"status":"MAYBE","data":[]}'):
        with pytest.raises(p.MalformedReply):
            p.scan_list_reply(broken)
