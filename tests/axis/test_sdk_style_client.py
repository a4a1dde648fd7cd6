"""The simulator driven as the official Java SDK (SDKVXP 2.x) drives an axis, and its replies
read as the SDK reads them.

``SdkStyleClient`` is an imitation written from the SDK's behaviour in ``axis-api.md`` (no SDK
code): ONE client object reused for every call, whose header map keeps every header it ever set
(so ``docId`` from getEdoc and ``docid`` from updateStatus travel together, both signed), a
timestamp frozen at construction, the sign-header JSON over all of them in UTF-8, header values
written as ISO-8859-1 bytes with ``?`` for what Latin-1 lacks, ``{}`` bodies where the SDK sends
them, the package plus CRLF for sendEdoc, and reply texts read as US-ASCII.
"""

from __future__ import annotations

import base64
import http.client
import json
from urllib.parse import urlsplit

import pytest
from axis_helpers import G22, H41, SECRETS

from connector.axis import protocol as p
from connector.axis.sim.samples import make_document, make_status

RECEIVED_ROW = {"docId", "serviceType", "messageType", "created_time", "updated_time", "from", "to",
                "status", "status_desc"}
SENT_ROW = {"senderDocId", "receiverDocId", "fromCode", "toCode", "sendStatus", "sendStatusDesc",
            "receiveStatus", "receiveStatusDesc", "sentTime", "receivedTime", "title", "notation"}


class SdkStyleClient:
    def __init__(self, endpoint: str, systemid: str, secret: str) -> None:
        self.url = urlsplit(endpoint)
        self.secret = secret
        self.map: dict[str, str] = {"systemid": systemid, "timestamp": p.format_timestamp()}

    def call(self, operation: str, params: dict[str, str] | None = None, *, body: bytes = b"",
             content_type: str = p.JSON_CONTENT_TYPE, method: str = "POST"):
        self.map["Content-Type"] = content_type
        self.map.update(params or {})  # never cleared: the SDK's leak
        entries = {p.HEADER_PREFIX + name: value for name, value in self.map.items()}
        sign_header = json.dumps(entries, ensure_ascii=False, separators=(",", ":"))
        headers = {**entries, "Content-Type": content_type,
                   p.SIGN_HEADER_KEY: ";".join(self.map), p.SIGN_HEADER: sign_header,
                   p.HASH_HEADER: p.hmac_hex(self.secret, sign_header),
                   p.VERSION_HEADER: p.PROTOCOL_VERSION, "User-Agent": p.USER_AGENT}
        connection = http.client.HTTPConnection(self.url.hostname, self.url.port, timeout=10)
        try:
            connection.putrequest(method, f"{self.url.path.rstrip('/')}/{operation}")
            for name, value in headers.items():  # exact names, two casings kept apart
                connection.putheader(name, value.encode("latin-1", "replace"))
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()

    def json(self, operation: str, params: dict[str, str] | None = None, **options):
        status, _, raw = self.call(operation, params, **options)
        return status, json.loads(raw.decode("ascii", "replace"))  # the SDK reads US-ASCII


def test_one_reused_client_works_through_a_production_connectors_day(sim, make_client):
    make_client(sim, G22).send_edoc(make_document(G22, [H41]))
    sdk = SdkStyleClient(sim.url, "sys-h41", SECRETS["sys-h41"])

    status, listed = sdk.json(p.OP_LIST_RECEIVED, {"servicetype": "eDoc", "messagetype": "edoc"})
    assert status == 200 and listed["status"] == "OK" and len(listed["data"]) == 1
    row = listed["data"][0]
    assert RECEIVED_ROW <= set(row) and all(isinstance(row[key], str) for key in ("docId", "from"))
    doc_id = row["docId"]

    status, fetched = sdk.json(p.OP_GET, {"docId": doc_id, "filePath": "/tmp/x.edxml"}, body=b"{}")
    assert status == 200 and fetched["status"] == "OK"
    assert base64.b64decode(fetched["data"]).startswith(b"<?xml")

    # Latin-1 text survives the SDK's ISO-8859-1 headers; the map now holds docId AND docid.
    status, acked = sdk.json(p.OP_UPDATE_STATUS, {"docid": doc_id, "status": "done",
                                                  "description": "Da xem, café"}, body=b"{}")
    assert status == 200 and acked == {"status": "OK", "ErrorCode": "0", "ErrorDesc": ""}, acked
    assert {"docId", "docid", "status", "description"} <= set(sdk.map)

    package = make_status(H41, G22, document_id=f"{G22},2026/11/22,123/VPCP-TTĐT")
    status, sent = sdk.json(p.OP_SEND, {"from": H41, "servicetype": "eDoc", "messagetype": "status",
                                        "hash-file": p.hash_file_sdk(package)},
                            body=package + p.SEND_BODY_TRAILER, content_type=p.PACKAGE_CONTENT_TYPE)
    assert status == 200 and sent["status"] == "OK" and sent["DocId"]

    status, listed_sent = sdk.json(p.OP_LIST_SENT, {"servicetype": "eDoc", "messagetype": "status",
                                                    "docId": sent["DocId"]})
    assert status == 200 and listed_sent["status"] == "OK"
    assert listed_sent["data"] and SENT_ROW <= set(listed_sent["data"][0])

    for count in (p.OP_COUNT_EDOC, p.OP_COUNT_STATUS):
        status, counted = sdk.json(count, body=b"{}")
        assert status == 200 and counted["status"] == "OK" and isinstance(counted["count"], int)

    status, agencies = sdk.json(p.OP_AGENCIES)
    assert status == 200 and {"id", "code", "name", "mail", "pid"} <= set(agencies["data"][0])

    status, content_type, raw = sdk.call(p.OP_DOWNLOAD, {"docId": doc_id}, method="GET")
    assert status == 200 and content_type == "application/octet-stream" and raw.startswith(b"<?xml")


def test_failures_carry_what_the_sdk_dereferences(sim):
    sdk = SdkStyleClient(sim.url, "sys-h41", SECRETS["sys-h41"])
    package = make_document(H41, ["000.00.00.Z99"])  # a recipient the axis does not know
    status, refused = sdk.json(p.OP_SEND, {"from": H41, "servicetype": "eDoc", "messagetype": "edoc",
                                           "hash-file": p.hash_file_sdk(package)},
                               body=package + p.SEND_BODY_TRAILER, content_type=p.PACKAGE_CONTENT_TYPE)
    assert status == 200 and refused["status"] == "FAIL" and refused["DocId"] == ""
    assert refused["ErrorCode"] != "0" and "000.00.00.Z99" in refused["ErrorDesc"]
    assert refused["ErrorDesc"].isascii()

    status, content_type, raw = sdk.call(p.OP_DOWNLOAD, {"docId": "no-such-doc"}, method="GET")
    assert status == 404  # not 200: the SDK would save the body as the document
    assert json.loads(raw)["ErrorCode"] == p.ERR_UNKNOWN_DOC


@pytest.mark.parametrize("text", ["Đang xử lý"])
def test_a_header_the_sdk_cannot_write_fails_every_later_call_of_that_client(sim, make_client, text):
    """What the decision in axis-api.md ("Encoding") says: the SDK writes ``?`` for Vietnamese
    letters outside Latin-1, so the HMAC over the UTF-8 JSON cannot match — and the header stays
    in its map. Our client sends ASCII instead (test_protocol)."""
    make_client(sim, G22).send_edoc(make_document(G22, [H41]))
    sdk = SdkStyleClient(sim.url, "sys-h41", SECRETS["sys-h41"])
    _, listed = sdk.json(p.OP_LIST_RECEIVED, {"servicetype": "eDoc", "messagetype": "edoc"})
    doc_id = listed["data"][0]["docId"]
    status, refused = sdk.json(p.OP_UPDATE_STATUS, {"docid": doc_id, "status": "processing",
                                                    "description": text}, body=b"{}")
    assert status == 401 and refused["status"] == "FAIL" and refused["ErrorDesc"].isascii()
    status, _ = sdk.json(p.OP_COUNT_EDOC, body=b"{}")
    assert status == 401  # the leaked header breaks the next call too


def test_the_directory_operations_as_the_sdk_calls_them(sim):
    sdk = SdkStyleClient(sim.url, "sys-h41", SECRETS["sys-h41"])
    status, listed = sdk.json(p.OP_AGENCIES_QD20)
    assert status == 200 and listed["status"] == "OK"
    assert {"id", "code", "code102", "oldCode", "name", "pid", "mail"} <= set(listed["data"][0])
    assert {row["code"] for row in listed["data"]} >= {G22, H41}

    status, registered = sdk.json(p.OP_REGISTER_AGENCY, body=json.dumps(
        {"code": "000.00.01.H41", "name": "Sở Nội vụ tỉnh Nghệ An", "pid": H41,
         "oldCode": "000.00.12.H41"}, ensure_ascii=False).encode("utf-8"))
    assert status == 200 and registered["status"] == "OK" and registered["id"]
    status, synced = sdk.json(p.OP_SYNC_UNITS, {"fromDate": "01/01/2000 00:00:00"})
    row = {row["code"]: row for row in synced["data"]}["000.00.01.H41"]
    assert row["oldCode"] == "000.00.12.H41" and row["status"] == "active" and row["updatedTime"]

    status, deleted = sdk.json(p.OP_DELETE_AGENCY, {"code": "000.00.01.H41"}, body=b"{}")
    assert status == 200 and deleted["status"] == "OK"
    _, synced = sdk.json(p.OP_SYNC_UNITS, {"fromDate": "01/01/2000 00:00:00"})
    assert {row["code"]: row["status"] for row in synced["data"]}["000.00.01.H41"] == "deleted"
    _, listed = sdk.json(p.OP_AGENCIES)
    assert "000.00.01.H41" not in {row["code"] for row in listed["data"]}
    status, refused = sdk.json(p.OP_DELETE_AGENCY, {"code": "000.00.99.Z99"}, body=b"{}")
    assert refused["status"] == "FAIL" and "000.00.99.Z99" in refused["ErrorDesc"]
    status, refused = sdk.json(p.OP_REGISTER_AGENCY, body=b"{}")
    assert refused["status"] == "FAIL" and '"code" and "name"' in refused["ErrorDesc"]


def test_our_client_reads_the_new_operations_and_a_large_directory_file(tmp_path, agency_book,
                                                                         make_client):
    import datetime as dt

    from connector.axis.sim.server import AxisSimulator

    directory = tmp_path / "directory.jsonl"
    with directory.open("w", encoding="utf-8") as out:
        for number in range(3000):
            out.write(json.dumps({"code": f"000.{number // 100:02d}.{number % 100:02d}.X01",
                                  "name": f"Đơn vị số {number}", "oldCode": f"OLD.{number}"},
                                 ensure_ascii=False) + "\n")
    simulator = AxisSimulator(tmp_path / "state", agency_book, directory=directory).start()
    try:
        client = make_client(simulator, G22)
        agencies = list(client.list_agencies_qd20())
        assert len(agencies) == 3003 and agencies[-1].old_code == "OLD.2999"
        # fromDate has whole seconds: changes are asked for from the next second on, once
        # the clock has passed it (a deadline, not a fixed sleep)
        import time

        before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(seconds=1)
        deadline = time.monotonic() + 5
        while dt.datetime.now(dt.timezone.utc) <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.register_agency("000.99.77.Y01", "Đơn vị mới", old_code="OLD.X")
        client.delete_agency("000.00.00.X01")
        changed = {agency.code: agency for agency in client.synchronize_units(before)}
        assert set(changed) == {"000.99.77.Y01", "000.00.00.X01"}
        assert changed["000.00.00.X01"].deleted and not changed["000.99.77.Y01"].deleted
        assert changed["000.99.77.Y01"].name == "Đơn vị mới"  # bodies keep the full text
        assert len(list(client.synchronize_units())) == 3004
    finally:
        simulator.stop()
