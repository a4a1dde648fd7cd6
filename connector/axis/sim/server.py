"""A local axis: a real HTTP server that behaves like the national axis, for tests, the demo,
the benchmarks, and agencies rehearsing their integration before going live.

It verifies requests with the same protocol module the client signs them with, routes packages
by reading them (a document to each ``To``, a status to its ``ResponseFor/OrganId``), keeps its
state in a directory (so a restart keeps every pending item), injects faults on demand, and
exposes loopback-only admin endpoints:

* ``GET /_admin/transfers`` — every stored transfer with each recipient's state;
* ``GET /_admin/counters`` — per agency: requests per operation, auth failures, documents sent,
  deliveries per state;
* ``GET /_admin/faults`` / ``POST /_admin/faults`` — read / change fault injection (JSON).

Business failures are HTTP 200 with a FAIL body; authentication failures are HTTP 401 with a FAIL
body; nothing is changed by a refused request. One JSON log line per request goes to the
``connector.axis.sim`` logger.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import shutil
import socket
import ssl
import struct
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connector.axis import protocol as p
from connector.axis.errors import AxisSettingsError, RequestVerificationError
from connector.axis.sim.agencies import AgencyBook, AgencyEntry, load_agencies, read_directory
from connector.axis.sim.faults import FaultConfig, FaultInjector
from connector.axis.sim.store import Delivery, SimulatorStore
from connector.edxml.model import DocumentPackage, StatusPackage
from connector.edxml.reader import read_package  # the edXML library's reader
from connector.edxml.xmlparse import DEFAULT_MAX_PACKAGE_SIZE, ParseLimits
from connector.errors import EdxmlError

log = logging.getLogger("connector.axis.sim")


class _Reply(Exception):
    """Raised inside an operation to answer at once (a FAIL, or a 401)."""

    def __init__(self, http_status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("ErrorDesc", ""))
        self.http_status = http_status
        self.body = body


def _fail(code: str, desc: str, http_status: int = 200) -> _Reply:
    return _Reply(http_status, p.fail_body(code, desc))


@dataclass
class _Outcome:
    """What an operation produced: a JSON body, or a file to stream (downloadEdoc)."""

    http_status: int = 200
    body: dict[str, Any] | None = None
    file: Path | None = None
    doc_id: str | None = None


class AxisSimulator:
    """The simulator, startable in-process: ``with AxisSimulator(dir, agencies) as sim: sim.url``.

    ``agencies`` is an :class:`AgencyBook` or the path of an agencies file. ``timestamp_window``
    (seconds) turns on the freshness check, off by default like the real axis must be.
    ``tls_cert`` / ``tls_key`` (PEM files) serve HTTPS instead of HTTP, so that an agency can
    rehearse against a private CA exactly as it will talk to a real axis.
    """

    def __init__(self, data_dir: Path | str, agencies: AgencyBook | Path | str, *,
                 host: str = "127.0.0.1", port: int = 0, faults: FaultConfig | None = None,
                 seed: int | None = None, timestamp_window: float | None = None,
                 max_package_size: int = DEFAULT_MAX_PACKAGE_SIZE,
                 idle_timeout: float = 30.0, tls_cert: Path | str | None = None,
                 tls_key: Path | str | None = None, directory: Path | str | None = None) -> None:
        self.agencies = agencies if isinstance(agencies, AgencyBook) else load_agencies(agencies)
        self.directory_file = Path(directory) if directory is not None else None
        """More agencies to list than those who call (JSON lines, see ``read_directory``)."""
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.faults = FaultInjector(faults, seed)
        self.max_skew = None if timestamp_window is None else dt.timedelta(
            seconds=timestamp_window)
        self.limits = ParseLimits(max_package_size=max_package_size)
        self.idle_timeout = idle_timeout
        self.tls_context = _tls_context(tls_cert, tls_key)
        self.store: SimulatorStore | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self._counter_lock = threading.Lock()
        self._requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._auth_failures: dict[str, int] = defaultdict(int)

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> AxisSimulator:
        self.stopping.clear()
        self.store = SimulatorStore(self.data_dir)
        self.store.seed_directory({"code": entry.organ_id, "name": entry.name, "pid": entry.pid,
                                   "mail": entry.mail, "old_code": entry.old_code}
                                  for entry in self.agencies)
        if self.directory_file is not None:
            self.store.seed_directory(read_directory(self.directory_file))
        handler = type("BoundHandler", (_Handler,), {"sim": self, "timeout": self.idle_timeout})
        self._server = _Server((self.host, self.port), handler, self.tls_context,
                               self.idle_timeout)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"axis-sim:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections (so no handler runs against a closed store), close
        the store. Safe to call twice."""
        self.stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
            server.wait_for_handlers(timeout=5.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> AxisSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint the connector is configured with (operations are appended)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return self.url + "/_admin"

    # -- counters -----------------------------------------------------------------------------

    def _count(self, systemid: str | None, operation: str, auth_failed: bool) -> None:
        key = systemid or "-"
        with self._counter_lock:
            self._requests[key][operation] += 1
            if auth_failed:
                self._auth_failures[key] += 1

    def counters(self) -> dict[str, Any]:
        assert self.store is not None
        totals = self.store.per_agency_totals()
        agencies: dict[str, Any] = {}
        with self._counter_lock:
            for entry in self.agencies:
                agencies[entry.organ_id] = {
                    "systemid": entry.systemid,
                    "requests": dict(self._requests.get(entry.systemid, {})),
                    "auth_failures": self._auth_failures.get(entry.systemid, 0),
                    **totals.get(entry.organ_id, {}),
                }
            unknown = {key: dict(ops) for key, ops in self._requests.items()
                       if key not in self.agencies.by_systemid}
        return {"agencies": agencies, "unknown_callers": unknown,
                "faults_injected": self.faults.snapshot()["injected"]}

    # -- operations ---------------------------------------------------------------------------

    def authenticate(self, headers: list[tuple[str, str]]) -> tuple[AgencyEntry, p.VerifiedRequest]:
        try:
            verified = p.verify_request(headers, self.agencies.secret_for, max_skew=self.max_skew)
        except RequestVerificationError as error:
            raise _fail(error.error_code or p.ERR_BAD_SIGNATURE, error.message, 401) from None
        return self.agencies.by_systemid[verified.systemid], verified

    def handle(self, operation: str, agency: AgencyEntry, request: p.VerifiedRequest,
               body: bytes) -> _Outcome:
        assert self.store is not None
        handler = {
            p.OP_SEND: self._send,
            p.OP_LIST_RECEIVED: self._list_received,
            p.OP_GET: self._get,
            p.OP_DOWNLOAD: self._download,
            p.OP_UPDATE_STATUS: self._update_status,
            p.OP_LIST_SENT: self._list_sent,
            p.OP_COUNT_EDOC: lambda a, r, b: self._count_pending(a, "edoc"),
            p.OP_COUNT_STATUS: lambda a, r, b: self._count_pending(a, "status"),
            p.OP_AGENCIES: self._agencies,
            p.OP_AGENCIES_QD20: self._agencies_qd20,
            p.OP_SYNC_UNITS: self._synchronize_units,
            p.OP_REGISTER_AGENCY: self._register_agency,
            p.OP_DELETE_AGENCY: self._delete_agency,
        }[operation]
        return handler(agency, request, body)

    def _send(self, agency: AgencyEntry, request: p.VerifiedRequest, body: bytes) -> _Outcome:
        assert self.store is not None
        messagetype = request.get("messagetype") or ""
        if messagetype not in p.MESSAGE_TYPES:
            raise _fail(p.ERR_BAD_PARAMETER,
                        f"messagetype must be one of {list(p.MESSAGE_TYPES)}, not {messagetype!r}")
        declared_from = request.get("from")
        if declared_from is not None and declared_from != agency.organ_id:
            raise _fail(p.ERR_SENDER_MISMATCH,
                        f"from {declared_from!r} is not the OrganId of systemid "
                        f"{agency.systemid!r} ({agency.organ_id})", 401)
        claimed = request.get("hash-file")
        if not claimed:
            raise _fail(p.ERR_BAD_PARAMETER, "hash-file is required for sendEdoc")
        package = _match_hash(body, claimed)
        if package is None:
            raise _fail(p.ERR_HASH_MISMATCH,
                        "hash-file matches the body neither with nor without a trailing CRLF")
        try:
            parsed = read_package(package, limits=self.limits, file=None).package
        except EdxmlError as error:
            raise _fail(p.ERR_MALFORMED, f"not a usable edXML package: {error.one_line()}") \
                from None
        expected_kind = DocumentPackage if messagetype == "edoc" else StatusPackage
        if not isinstance(parsed, expected_kind):
            raise _fail(p.ERR_MALFORMED, f"messagetype={messagetype} but the package is a "
                                         f"{getattr(parsed, 'kind', type(parsed).__name__)}"
                                         " package")
        sender = parsed.from_.organ_id
        if sender != agency.organ_id:
            raise _fail(p.ERR_SENDER_MISMATCH,
                        f"package From/OrganId {sender!r} is not the OrganId of systemid "
                        f"{agency.systemid!r} ({agency.organ_id})", 401)
        if isinstance(parsed, StatusPackage):
            recipients = ([parsed.response_for.organ_id]
                          if parsed.response_for and parsed.response_for.organ_id else [])
            code = parsed.status_code
            title = f"status {getattr(code, 'value', code)}"
            notation = parsed.response_for.code or "" if parsed.response_for else ""
            document_id = parsed.response_for.document_id or "" if parsed.response_for else ""
        else:
            named = _recipients_header(request.get("to"))
            recipients = named if named is not None else [
                organ.organ_id for organ in parsed.to if organ.organ_id]
            title = parsed.subject or ""
            notation = ""
            if parsed.code is not None:
                notation = "/".join(x for x in (parsed.code.number, parsed.code.notation) if x)
            document_id = parsed.document_id or ""
        recipients = list(dict.fromkeys(r.strip() for r in recipients if r and r.strip()))
        if not recipients:
            raise _fail(p.ERR_UNKNOWN_RECIPIENT, "the package names no recipient")
        unknown = [r for r in recipients if r not in self.agencies.by_organ]
        if unknown:
            raise _fail(p.ERR_UNKNOWN_RECIPIENT,
                        f"unknown recipient OrganId(s): {', '.join(unknown)}")
        doc_id = self.store.add_transfer(
            message_type=messagetype, sender=agency.organ_id, systemid=agency.systemid,
            data=package, sha256=hashlib.sha256(package).hexdigest(), recipients=recipients,
            title=title, notation=notation, document_id=document_id)
        return _Outcome(body=p.ok_body(DocId=doc_id), doc_id=doc_id)

    def _list_received(self, agency: AgencyEntry, request: p.VerifiedRequest,
                       body: bytes) -> _Outcome:
        assert self.store is not None
        messagetype = request.get("messagetype") or "edoc"
        if messagetype not in p.MESSAGE_TYPES:
            raise _fail(p.ERR_BAD_PARAMETER, f"unknown messagetype {messagetype!r}")
        bounds: list[float | None] = []
        for name in ("fromDate", "toDate"):
            value = request.get(name)
            if value:
                try:
                    bounds.append(p.parse_list_date(value).timestamp())
                except ValueError:
                    raise _fail(p.ERR_BAD_PARAMETER,
                                f"{name} {value!r} is not dd/MM/yyyy HH:mm:ss") from None
            else:
                bounds.append(None)
        rows = self.store.deliveries_for(agency.organ_id, messagetype,
                                         include_done=self.faults.config.relist_acked,
                                         created_from=bounds[0], created_to=bounds[1])
        return _Outcome(body=p.ok_body(data=[_received_row(row) for row in rows]))

    def _deliverable(self, agency: AgencyEntry, doc_id: str | None) -> Delivery:
        assert self.store is not None
        if not doc_id:
            raise _fail(p.ERR_BAD_PARAMETER, "docId is required")
        delivery = self.store.delivery(doc_id, agency.organ_id)
        if delivery is None:
            raise _fail(p.ERR_UNKNOWN_DOC, f"docId {doc_id} is unknown or not addressed to "
                                           f"{agency.organ_id}")
        return delivery

    def _readable_path(self, agency: AgencyEntry, doc_id: str | None) -> Path:
        """The recipient (or the sender) may fetch a transfer's package."""
        assert self.store is not None
        if doc_id and self.store.transfer_sender(doc_id) == agency.organ_id:
            return self.store.package_path(doc_id)
        delivery = self._deliverable(agency, doc_id)
        self.store.mark_received(delivery.doc_id, agency.organ_id)
        return self.store.package_path(delivery.doc_id)

    def _get(self, agency: AgencyEntry, request: p.VerifiedRequest, body: bytes) -> _Outcome:
        doc_id = request.get("docId")
        path = self._readable_path(agency, doc_id)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return _Outcome(body=p.ok_body(data=data), doc_id=doc_id)

    def _download(self, agency: AgencyEntry, request: p.VerifiedRequest,
                  body: bytes) -> _Outcome:
        doc_id = request.get("docId")
        return _Outcome(file=self._readable_path(agency, doc_id), doc_id=doc_id)

    def _update_status(self, agency: AgencyEntry, request: p.VerifiedRequest,
                       body: bytes) -> _Outcome:
        assert self.store is not None
        doc_id = request.get("docid")
        status = request.get("status") or ""
        if status not in p.ACK_STATUSES:
            raise _fail(p.ERR_BAD_PARAMETER,
                        f"status must be one of {list(p.ACK_STATUSES)}, not {status!r}")
        delivery = self._deliverable(agency, doc_id)
        self.store.update_state(delivery.doc_id, agency.organ_id, status,
                                request.get("description") or "")
        return _Outcome(body=p.ok_body(), doc_id=delivery.doc_id)

    def _list_sent(self, agency: AgencyEntry, request: p.VerifiedRequest,
                   body: bytes) -> _Outcome:
        assert self.store is not None
        messagetype = request.get("messagetype") or "edoc"
        rows = self.store.sent_by(agency.organ_id, messagetype, request.get("docId") or None)
        return _Outcome(body=p.ok_body(data=[_sent_row(row) for row in rows]))

    def _count_pending(self, agency: AgencyEntry, messagetype: str) -> _Outcome:
        assert self.store is not None
        rows = self.store.deliveries_for(agency.organ_id, messagetype)
        return _Outcome(body=p.ok_body(count=len(rows)))

    def _agencies(self, agency: AgencyEntry, request: p.VerifiedRequest,
                  body: bytes) -> _Outcome:
        assert self.store is not None
        return _Outcome(body=p.ok_body(data=[_agency_row(row) for row in self.store.directory()]))

    def _agencies_qd20(self, agency: AgencyEntry, request: p.VerifiedRequest,
                       body: bytes) -> _Outcome:
        """The list with the codes before and after the reorganisations, side by side."""
        assert self.store is not None
        return _Outcome(body=p.ok_body(data=[_qd20_row(row) for row in self.store.directory()]))

    def _synchronize_units(self, agency: AgencyEntry, request: p.VerifiedRequest,
                           body: bytes) -> _Outcome:
        """Agencies changed since ``fromDate`` (``dd/MM/yyyy HH:mm:ss``; none: all), removed
        ones included with ``status: "deleted"``, oldest change first."""
        assert self.store is not None
        since = request.get("fromDate")
        moment = None
        if since:
            try:
                moment = p.parse_list_date(since).timestamp()
            except ValueError:
                raise _fail(p.ERR_BAD_PARAMETER,
                            f"fromDate {since!r} is not dd/MM/yyyy HH:mm:ss") from None
        rows = self.store.directory(changed_since=moment if moment is not None else float("-inf"))
        data = [{**_qd20_row(row), "status": "deleted" if row["deleted"] else "active",
                 "updatedTime": _time(row["updated"])} for row in rows]
        return _Outcome(body=p.ok_body(data=data))

    def _register_agency(self, agency: AgencyEntry, request: p.VerifiedRequest,
                         body: bytes) -> _Outcome:
        """Body: ``{"code", "name", "pid", "mail", "oldCode"}`` (code and name required)."""
        assert self.store is not None
        try:
            fields = json.loads(body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, ValueError):
            fields = None
        if not isinstance(fields, dict) or not str(fields.get("code") or "").strip() \
                or not str(fields.get("name") or "").strip():
            raise _fail(p.ERR_BAD_PARAMETER, 'registerAgency needs a JSON body with "code" and "name"')
        row = {"code": str(fields["code"]).strip(), "name": str(fields["name"]),
               "pid": str(fields.get("pid") or ""), "mail": str(fields.get("mail") or ""),
               "old_code": str(fields.get("oldCode") or "")}
        return _Outcome(body=p.ok_body(id=str(self.store.register_agency(row))))

    def _delete_agency(self, agency: AgencyEntry, request: p.VerifiedRequest,
                       body: bytes) -> _Outcome:
        assert self.store is not None
        code = request.get("code") or ""
        if not self.store.delete_agency(code):
            raise _fail(p.ERR_BAD_PARAMETER, f"no agency {code!r} in the directory")
        return _Outcome(body=p.ok_body())


def _agency_row(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "code": row["code"], "name": row["name"], "mail": row["mail"],
            "pid": row["pid"]}


def _qd20_row(row: dict[str, Any]) -> dict[str, Any]:
    """``code`` is the current code; ``code102`` the same in the QCVN 102 form (the simulator
    knows no other); ``oldCode`` the code before the reorganisation, or empty (inferred)."""
    return {**_agency_row(row), "code102": row["code"], "oldCode": row["old_code"]}


def _failure_as_the_sdk_reads_it(operation: str, reply: _Reply) -> tuple[int, dict[str, Any]]:
    """A FAIL in the shape the SDK dereferences: a failed ``sendEdoc`` still carries ``DocId``
    (empty) — the SDK reads it unconditionally and crashed on its absence; a failed
    ``downloadEdoc`` answers with an HTTP error status, because the SDK saves a 200 body as the
    document, JSON or not."""
    body = dict(reply.body)
    status = reply.http_status
    if operation == p.OP_SEND:
        body.setdefault("DocId", "")
    if operation == p.OP_DOWNLOAD and status == 200:
        status = 404 if body.get("ErrorCode") == p.ERR_UNKNOWN_DOC else 400
    return status, body


def _match_hash(body: bytes, claimed: str) -> bytes | None:
    """The package bytes: the body without its trailing CRLF if the hash says so (the SDK's way),
    else the whole body; ``None`` when neither matches."""
    if body.endswith(p.SEND_BODY_TRAILER):
        trimmed = body[: -len(p.SEND_BODY_TRAILER)]
        if p.hash_file_matches(claimed, hashlib.sha256(trimmed).digest()):
            return trimmed
    if p.hash_file_matches(claimed, hashlib.sha256(body).digest()):
        return body
    return None


def _recipients_header(value: str | None) -> list[str] | None:
    if value is None or value == "":
        return None
    try:
        recipients = json.loads(value)
    except ValueError:
        recipients = None
    if not isinstance(recipients, list) or not all(isinstance(r, str) for r in recipients):
        raise _fail(p.ERR_BAD_PARAMETER,
                    'to must be a JSON array of OrganIds, e.g. ["000.00.00.H41"]')
    return recipients


def _time(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return p.format_list_date(dt.datetime.fromtimestamp(epoch, p.VIETNAM_TZ))


def _received_row(row: Delivery) -> dict[str, Any]:
    return {"docId": row.doc_id, "serviceType": p.SERVICE_TYPE, "messageType": row.message_type,
            "created_time": _time(row.created), "updated_time": _time(row.updated),
            "from": row.sender, "to": row.recipient, "status": row.state,
            "status_desc": row.state_desc}


def _sent_row(row: Delivery) -> dict[str, Any]:
    return {"senderDocId": row.doc_id, "receiverDocId": row.doc_id, "fromCode": row.sender,
            "toCode": row.recipient, "sendStatus": "done",
            "sendStatusDesc": "accepted by the axis", "receiveStatus": row.state,
            "receiveStatusDesc": row.state_desc, "sentTime": _time(row.created),
            "receivedTime": _time(row.received), "title": row.title, "notation": row.notation,
            "serviceType": "eDoc", "messageType": row.message_type}  # both read by the SDK


# --- HTTP plumbing ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type,
                 tls_context: ssl.SSLContext | None = None, handshake_timeout: float = 30.0
                 ) -> None:
        self.tls_context = tls_context
        self.handshake_timeout = handshake_timeout
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._idle = threading.Condition(self._connections_lock)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """With TLS, the handshake happens here, in the connection's own thread (not in the
        accepting loop, where one slow or hostile client would stall everybody)."""
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(self.handshake_timeout)
        try:
            secured = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            log.info(json.dumps({"event": "axis_tls_handshake_failed",
                                 "peer": client_address[0], "error": str(error)[:200]}))
            return
        try:
            super().finish_request(secured, client_address)
        finally:
            secured.close()

    def track(self, connection: socket.socket, active: bool) -> None:
        with self._connections_lock:
            if active:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)
                self._idle.notify_all()

    def close_connections(self) -> None:
        with self._connections_lock:
            for connection in list(self._connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def wait_for_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._connections_lock:
            while self._connections and time.monotonic() < deadline:
                self._idle.wait(timeout=max(0.0, deadline - time.monotonic()))


_ADMIN_PREFIX = "/_admin/"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "axis-sim"
    sys_version = ""
    sim: AxisSimulator  # bound by AxisSimulator.start

    def setup(self) -> None:
        super().setup()
        # Small replies on a kept-alive connection would otherwise wait for delayed ACKs.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)  # type: ignore[attr-defined]

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # one structured line per request instead, see _log

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        path = urlsplit(self.path).path
        admin = path.startswith(_ADMIN_PREFIX)
        operation = (path[1:] if admin else path.strip("/").rsplit("/", 1)[-1])
        record: dict[str, Any] = {"method": method, "op": operation, "systemid": None,
                                  "http": None, "result": None, "code": None, "doc_id": None,
                                  "fault": None}
        self._record: dict[str, Any] | None = record
        self._started = started
        try:
            if admin:  # admin calls get their line too (who changed the faults, and when)
                self._admin(method, path[len(_ADMIN_PREFIX):])
            else:
                self._serve(method, operation, record)
        finally:
            self._emit_log()

    def _emit_log(self) -> None:
        """Log the request's line once, *before* its reply leaves (so that whoever reads the
        reply can rely on the line being there)."""
        record = getattr(self, "_record", None)
        if record is None:
            return
        self._record = None
        record["ms"] = round((time.monotonic() - self._started) * 1000, 1)
        stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        log.info(json.dumps({"timestamp": stamp, "event": "axis_request", "peer":
                             self.client_address[0], **record}, ensure_ascii=False))

    def _serve(self, method: str, operation: str, record: dict[str, Any]) -> None:
        sim = self.sim
        if operation not in p.OPERATIONS or (method == "GET") != (operation == p.OP_DOWNLOAD):
            self._drain()
            self._json(404, p.fail_body(p.ERR_BAD_PARAMETER,
                                        f"no operation {method} /{operation}"), record)
            return
        decision = sim.faults.decide(operation)
        record["fault"] = decision.kind
        if decision.latency_seconds and sim.stopping.wait(decision.latency_seconds):
            self._drop(record, reset=False)
            return
        if decision.kind == "reset":
            self._drop(record, reset=True)
            return
        try:
            body = self._read_body()
        except ValueError as error:
            self._json(413 if "large" in str(error) else 400,
                       p.fail_body(p.ERR_BAD_PARAMETER, str(error)), record)
            self.close_connection = True
            return
        if decision.kind == "hang":
            sim.stopping.wait(decision.hang_seconds)
            self._drop(record, reset=False)
            return
        if decision.kind == "error":
            self._raw(decision.error_status, b'{"error":"injected server error"}',
                      "application/json", record)
            return
        if decision.kind == "malformed":
            self._raw(200, b'{"status":"OK","ErrorCode":"0","data":[{"docId":',
                      "application/json", record)
            return
        headers = [(name, p.header_text(value)) for name, value in self.headers.items()]
        agency: AgencyEntry | None = None
        try:
            agency, verified = sim.authenticate(headers)
            record["systemid"] = agency.systemid
            outcome = sim.handle(operation, agency, verified, body)
        except _Reply as reply:
            if reply.http_status == 401:
                record["systemid"] = record["systemid"] or _claimed_systemid(headers)
            sim._count(record["systemid"], operation, reply.http_status == 401)
            self._json(*_failure_as_the_sdk_reads_it(operation, reply), record)
            return
        except AxisSettingsError as error:  # pragma: no cover - defensive
            self._json(500, p.fail_body("99", error.message), record)
            return
        sim._count(agency.systemid, operation, False)
        record["doc_id"] = outcome.doc_id
        if decision.kind == "lose_response":
            self._drop(record, reset=False)
            return
        if outcome.file is not None:
            self._file(outcome.file, record)
        else:
            self._json(outcome.http_status, outcome.body or p.ok_body(), record)

    # -- reading ------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        limit = self.sim.limits.max_package_size + len(p.SEND_BODY_TRAILER)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ValueError("bad chunked encoding") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                total += size
                if total > limit:
                    raise ValueError("request body too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return b""
        try:
            length = int(length_text)
        except ValueError:
            raise ValueError("bad Content-Length") from None
        if length > limit:
            raise ValueError("request body too large")
        return self.rfile.read(length)

    def _drain(self) -> None:
        try:
            self._read_body()
        except ValueError:
            self.close_connection = True

    # -- answering ----------------------------------------------------------------------------

    def _json(self, status: int, body: dict[str, Any], record: dict[str, Any]) -> None:
        record["result"] = body.get("status")
        if body.get("status") == p.STATUS_FAIL:
            record["code"] = body.get("ErrorCode")
            # The SDK reads error texts as US-ASCII: an em-dash or a diacritic would arrive as ?.
            body = {**body, "ErrorDesc": p.ascii_text(str(body.get("ErrorDesc") or ""))}
        self._raw(status, p.encode_body(body), "application/json; charset=utf-8", record)

    def _raw(self, status: int, payload: bytes, content_type: str,
             record: dict[str, Any] | None) -> None:
        if record is not None:
            record["http"] = status
            self._emit_log()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        # Headers and body leave in one write (one segment for small replies).
        self._headers_buffer.append(b"\r\n" + payload)  # type: ignore[attr-defined]
        self.flush_headers()

    def _file(self, path: Path, record: dict[str, Any]) -> None:
        record["http"] = 200
        record["result"] = p.STATUS_OK
        self._emit_log()
        with open(path, "rb") as source:
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            shutil.copyfileobj(source, self.wfile, 1 << 20)

    def _drop(self, record: dict[str, Any], *, reset: bool) -> None:
        """Close without answering; with ``reset``, send a TCP RST instead of a FIN."""
        record["http"] = None
        record["result"] = "reset" if reset else "dropped"
        self._emit_log()
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()

    # -- admin --------------------------------------------------------------------------------

    def _admin(self, method: str, name: str) -> None:
        body = b""
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
        if not _is_loopback(self.client_address[0]):
            self._raw(403, b'{"error":"admin endpoints answer loopback callers only"}',
                      "application/json", self._record)
            return
        sim = self.sim
        try:
            if name == "transfers" and method == "GET":
                assert sim.store is not None
                answer: Any = {"transfers": sim.store.transfers()}
            elif name == "counters" and method == "GET":
                answer = sim.counters()
            elif name == "faults" and method == "GET":
                answer = sim.faults.snapshot()
            elif name == "faults" and method == "POST":
                changes = json.loads(body.decode("utf-8") or "{}")
                if not isinstance(changes, dict):
                    raise AxisSettingsError("the faults body must be a JSON object")
                sim.faults.update(changes)
                answer = sim.faults.snapshot()
            else:
                self._raw(404, b'{"error":"unknown admin endpoint"}', "application/json",
                          self._record)
                return
        except (ValueError, AxisSettingsError) as error:
            message = error.one_line() if isinstance(error, AxisSettingsError) else str(error)
            self._raw(400, json.dumps({"error": message}, ensure_ascii=False).encode("utf-8"),
                      "application/json; charset=utf-8", self._record)
            return
        payload = json.dumps(answer, ensure_ascii=False, indent=1).encode("utf-8")
        self._raw(200, payload, "application/json; charset=utf-8", self._record)


def _tls_context(cert: Path | str | None, key: Path | str | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise AxisSettingsError("TLS needs both a certificate and its key",
                                hint="give --tls-cert and --tls-key together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as error:
        raise AxisSettingsError(f"cannot load the TLS certificate/key: {error}",
                                file=str(cert)) from None
    return context


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _claimed_systemid(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name.lower() == (p.HEADER_PREFIX + "systemid").lower():
            return value
    return None
