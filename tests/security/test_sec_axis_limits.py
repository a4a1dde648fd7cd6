"""A hostile or broken axis cannot fill the disk or the memory: every reply is read with a limit.

A real HTTP server on 127.0.0.1 plays the axis and answers with bodies longer than the client's
limits, with and without a Content-Length (an endless chunked body is the case that matters).
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connector.axis.client import AxisClient, AxisSettings, RetryPolicy
from connector.axis.errors import TransientAxisError
from connector.errors import PackageTooLarge

LIMIT = 64 * 1024


class _Axis(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    chunks_sent = 0
    announce_length = False

    def log_message(self, *args):  # keep the test output quiet
        pass

    def _chunked(self, content_type: str, pieces):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for piece in pieces:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                type(self).chunks_sent += 1
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):  # downloadEdoc
        if type(self).announce_length:
            body = b"<edXML/>" + b" " * (4 * LIMIT)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        # 1000 chunks of 16 KB (16 MB) without a Content-Length: must be cut off near LIMIT.
        self._chunked("application/octet-stream", (b"x" * 16384 for _ in range(1000)))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        operation = self.path.rstrip("/").rsplit("/", 1)[-1]
        if operation == "getEdoc":
            package = b"<edXML/>" + b" " * (2 * LIMIT)
            body = json.dumps({"status": "OK", "data": base64.b64encode(package).decode()})
            self._chunked("application/json", [body.encode()])
            return
        # A list reply that never ends: '{"status":"OK","data":[' then rows forever (16 MB).
        row = b'{"docId":"1","from":"x","to":"y"},'
        pieces = [b'{"status":"OK","data":['] + [row * 500 for _ in range(1000)]
        self._chunked("application/json", pieces)


@pytest.fixture()
def axis():
    handler = type("Axis", (_Axis,), {"chunks_sent": 0, "announce_length": False})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()


def _client(server) -> AxisClient:
    host, port = server.server_address
    return AxisClient(AxisSettings(
        endpoint=f"http://{host}:{port}", systemid="000.00.00.G22", secret="s3cret-value",
        retry=RetryPolicy(max_attempts=1, max_total_seconds=0, initial_backoff=0, max_backoff=0),
        max_package_size=LIMIT, max_reply_size=LIMIT))


def test_a_streamed_download_longer_than_the_limit_is_cut_off_and_leaves_no_file(axis, tmp_path):
    server, handler = axis
    destination = tmp_path / "incoming.edxml"
    with _client(server) as client, pytest.raises(PackageTooLarge) as caught:
        client.download_edoc("42", destination)
    assert "limit" in caught.value.one_line() and "42" in caught.value.one_line()
    assert list(tmp_path.iterdir()) == []  # neither the package nor its .part
    assert handler.chunks_sent < 1000  # the client stopped reading; the 16 MB never all came


def test_a_download_announcing_too_many_bytes_is_refused_before_reading(axis, tmp_path):
    server, handler = axis
    handler.announce_length = True
    with _client(server) as client, pytest.raises(PackageTooLarge):
        client.download_edoc("43", tmp_path / "incoming.edxml")
    assert list(tmp_path.iterdir()) == []


def test_get_edoc_larger_than_the_package_limit_is_refused(axis):
    server, _ = axis
    with _client(server) as client, pytest.raises(PackageTooLarge):
        client.get_edoc("44")


def test_an_endless_list_reply_is_refused_not_buffered(axis):
    server, handler = axis
    with _client(server) as client, pytest.raises(TransientAxisError) as caught:
        client.list_received()
    assert "limit" in caught.value.one_line()
    assert handler.chunks_sent < 1000


def test_the_limits_must_be_positive():
    from connector.axis.errors import AxisSettingsError

    with pytest.raises(AxisSettingsError):
        AxisSettings(endpoint="http://127.0.0.1:1", systemid="x", secret="y", max_package_size=0)
