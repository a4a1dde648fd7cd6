"""The axis client: every operation of the API, with bounded retries and typed errors.

What the caller can rely on:

* every request carries a fresh, complete, signed parameter set (:mod:`connector.axis.protocol`);
* one pooled ``requests.Session`` with finite connect/read timeouts, TLS verification always on
  and an optional outbound proxy. ``ca_bundle`` replaces the system trust store with the given CA
  file (a private axis CA); nothing turns verification off: there is no setting for it, and the
  client passes ``verify`` with every request, so a session handed in (or changed later) with
  ``verify=False`` is overridden. The environment's proxy/CA variables are ignored so that the
  settings are the only source;
* packages are streamed from disk when sent (one pass to hash, one to send, bytes + CRLF as the
  SDK writes them) and to disk when downloaded raw;
* failures are classified once, here: transient ones are retried (exponential backoff with full
  jitter, bounded by attempts *and* total time) and then raised as :class:`TransientAxisError`;
  a FAIL that names the package's fault raises :class:`PermanentAxisError`; an authentication
  failure raises :class:`AxisAuthError` at once, never retried;
* a reply that is not the promised JSON is an error, never an empty list (the SDK's trap);
* the secret is never logged and the signature headers are redacted in debug logs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from connector.axis import protocol as p
from connector.axis.errors import AxisAuthError, AxisSettingsError, PermanentAxisError, TransientAxisError
from connector.edxml.xmlparse import DEFAULT_MAX_PACKAGE_SIZE
from connector.errors import PackageTooLarge

log = logging.getLogger("connector.axis.client")

T = TypeVar("T")
_CHUNK = 1 << 20
DEFAULT_MAX_REPLY_SIZE = 32 * 1024 * 1024
"""JSON replies other than getEdoc (lists, acknowledgements): a list of tens of thousands of
pending items fits; an endless body from a broken or hostile axis does not fill our memory."""


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How long the client keeps trying one call before raising :class:`TransientAxisError`.

    Waits are random in ``[0, min(max_backoff, initial_backoff * 2**n)]`` (full jitter), so that
    many connectors recovering from the same outage do not hammer the axis in step. A call stops
    after ``max_attempts`` tries or when the next wait would pass ``max_total_seconds``.
    """

    max_attempts: int = 5
    max_total_seconds: float = 120.0
    initial_backoff: float = 1.0
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise AxisSettingsError("retry.max_attempts must be at least 1")
        for name in ("max_total_seconds", "initial_backoff", "max_backoff"):
            if getattr(self, name) < 0:
                raise AxisSettingsError(f"retry.{name} must not be negative")


@dataclass(frozen=True)
class AxisSettings:
    """Everything the client needs to talk to one axis as one agency.

    ``endpoint`` is the base URL (operations are appended as a path segment). ``organ_id`` is the
    agency's OrganId sent as ``from`` (defaults to ``systemid``, which is usual). ``ca_bundle``
    is a PEM CA file trusted *instead of* the system store (for an axis with a private CA);
    verification itself cannot be turned off: there is deliberately no setting for it.
    ``permanent_codes`` / ``auth_codes`` are the FAIL codes read as "the package's fault" /
    "our credentials' fault"; every other FAIL code is retried.
    """

    endpoint: str
    systemid: str
    secret: str = field(repr=False)
    organ_id: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    ca_bundle: str | None = None
    proxy: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    permanent_codes: frozenset[str] = p.PERMANENT_CODES
    auth_codes: frozenset[str] = p.AUTH_CODES
    pool_size: int = 4
    max_package_size: int = DEFAULT_MAX_PACKAGE_SIZE
    max_reply_size: int = DEFAULT_MAX_REPLY_SIZE

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AxisSettingsError(f"axis.endpoint {self.endpoint!r} is not an http(s) URL",
                                    hint="e.g. https://axis.example.gov.vn/vxp or "
                                         "http://127.0.0.1:8640")
        if not self.systemid:
            raise AxisSettingsError("axis.systemid is empty", hint="set the agency's systemid")
        if not self.secret:
            raise AxisSettingsError("axis.secret is empty",
                                    hint="set the secret issued with the systemid")
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            # A hung axis must not hang the daemon: infinity and NaN are refused too.
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value <= 0:
                raise AxisSettingsError(f"axis.{name} must be a finite positive number of "
                                        f"seconds, not {value!r}")
        for name in ("max_package_size", "max_reply_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise AxisSettingsError(f"axis.{name} must be a positive number of bytes, "
                                        f"not {value!r}")
        if self.ca_bundle is not None and not Path(self.ca_bundle).is_file():
            raise AxisSettingsError(f"axis.ca_bundle {self.ca_bundle!r} is not a readable file")
        object.__setattr__(self, "permanent_codes", frozenset(map(str, self.permanent_codes)))
        object.__setattr__(self, "auth_codes", frozenset(map(str, self.auth_codes)))

    @property
    def sender(self) -> str:
        return self.organ_id or self.systemid

    def url(self, operation: str) -> str:
        return self.endpoint.rstrip("/") + "/" + operation


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    doc_id: str
    hash_file: str
    size: int


@dataclass(frozen=True)
class ReceivedItem:
    """One pending item of ``getReceivedEdocList``. Times are kept as the axis wrote them."""

    doc_id: str
    message_type: str
    from_: str
    to: str
    status: str
    status_desc: str
    created_time: str
    updated_time: str
    service_type: str
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class SentItem:
    """One recipient row of ``getSentEdocList``."""

    sender_doc_id: str
    receiver_doc_id: str
    from_code: str
    to_code: str
    send_status: str
    send_status_desc: str
    receive_status: str
    receive_status_desc: str
    sent_time: str
    received_time: str
    title: str
    notation: str
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Agency:
    id: str
    code: str
    name: str
    mail: str
    pid: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    old_code: str = ""  # the code before a reorganisation (getAgenciesListQD20), or empty
    code102: str = ""   # the code in the QCVN 102 form (getAgenciesListQD20), or empty
    deleted: bool = False  # getSynchronizeUnit: the agency was removed


def _agency(row: dict[str, Any]) -> Agency:
    return Agency(id=_text(row, "id"), code=_text(row, "code"), name=_text(row, "name"),
                  mail=_text(row, "mail"), pid=_text(row, "pid"), raw=row,
                  old_code=_text(row, "oldCode"), code102=_text(row, "code102"),
                  deleted=str(row.get("status") or "").lower() == "deleted")


# --- the package body ------------------------------------------------------------------------


class _PackageBody:
    """File bytes then CRLF, read in chunks with a known length (so requests sends a
    Content-Length, not chunked encoding, exactly like the SDK)."""

    def __init__(self, path: Path, trailer: bytes) -> None:
        self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._remaining_trailer = trailer
        self._length = os.fstat(self._file.fileno()).st_size + len(trailer)

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:  # everything that is left, trailer included
            data = self._file.read() + self._remaining_trailer
            self._remaining_trailer = b""
            return data
        if size == 0:
            return b""
        data = self._file.read(size)
        if data:
            return data
        trailer, self._remaining_trailer = self._remaining_trailer, b""
        return trailer

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(_CHUNK):
            yield chunk

    def close(self) -> None:
        self._file.close()


# --- the client ------------------------------------------------------------------------------


class AxisClient:
    """One agency's connection to one axis. Thread-safe for concurrent calls (requests' pool)."""

    def __init__(self, settings: AxisSettings, *, session: requests.Session | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self._sleep = sleep
        # What ``verify`` means for every request: True (system trust) or the CA file. Passed
        # per request, it wins over whatever the session says (requests merges request-level
        # settings over session-level ones), so verification cannot be lost by accident.
        self._verify: bool | str = settings.ca_bundle or True
        self._proxies = ({"http": settings.proxy, "https": settings.proxy} if settings.proxy
                         else {})
        self.session = self._configure(session or self._new_session(settings))

    @staticmethod
    def _new_session(settings: AxisSettings) -> requests.Session:
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=settings.pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def _configure(self, session: requests.Session) -> requests.Session:
        """Make the settings the only source of trust and proxy, for a session we made or one
        handed in (tests, a shared pool): no environment variables, verification on."""
        session.trust_env = False
        session.verify = self._verify
        session.proxies = dict(self._proxies)
        return session

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> AxisClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------------

    def send_edoc(self, package: Path | str | bytes, *, to: Sequence[str] | None = None,
                  messagetype: str = "edoc", sha256: str | None = None) -> SendResult:
        """Send a package (a path, streamed from disk, or bytes). ``to`` overrides the package's
        recipients (a JSON array header); without it the axis routes by the package.
        ``sha256`` (hex) is the file's digest when the caller has just checked it (the
        connector's package store does before every send): it spares a second pass over the
        file for the ``hash-file`` header."""
        if messagetype not in p.MESSAGE_TYPES:
            raise ValueError(f"messagetype must be one of {p.MESSAGE_TYPES}")
        if isinstance(package, bytes | bytearray):
            data = bytes(package)
            digest_hex = p.hash_file_sdk(data)
            size = len(data)

            def body() -> bytes | _PackageBody:
                return data + p.SEND_BODY_TRAILER
        else:
            path = Path(package)
            if sha256 is not None:
                digest = bytes.fromhex(sha256)
            else:
                with open(path, "rb") as handle:
                    digest = p.sha256_of_stream(handle)
            digest_hex = p.sdk_hex(digest)
            size = path.stat().st_size

            def body() -> bytes | _PackageBody:
                return _PackageBody(path, p.SEND_BODY_TRAILER)

        params: dict[str, str] = {"from": self.settings.sender, "servicetype": p.SERVICE_TYPE,
                                  "messagetype": messagetype}
        if to is not None:
            params["to"] = json.dumps(list(to), ensure_ascii=False, separators=(",", ":"))
        params["hash-file"] = digest_hex
        reply = self._json_call(p.OP_SEND, params, content_type=p.PACKAGE_CONTENT_TYPE,
                                body=body)
        doc_id = reply.body.get("DocId", reply.body.get("docId"))
        if doc_id in (None, ""):
            raise TransientAxisError("sendEdoc reply OK but without DocId",
                                     operation=p.OP_SEND)
        return SendResult(doc_id=str(doc_id), hash_file=digest_hex, size=size)

    def send_status(self, package: Path | str | bytes, *, sha256: str | None = None) -> SendResult:
        """Send a status package (``messagetype=status``); routed by its ResponseFor/OrganId."""
        return self.send_edoc(package, messagetype="status", sha256=sha256)

    def list_received(self, messagetype: str = "edoc", *, from_date: Any = None,
                      to_date: Any = None) -> list[ReceivedItem]:
        """Pending items addressed to us (until acknowledged ``done``)."""
        params = {"servicetype": p.SERVICE_TYPE, "messagetype": messagetype}
        if from_date is not None:
            params["fromDate"] = _list_date(from_date)
        if to_date is not None:
            params["toDate"] = _list_date(to_date)
        rows = self._list_call(p.OP_LIST_RECEIVED, params, "docId")
        return [ReceivedItem(
            doc_id=_text(row, "docId"), message_type=_text(row, "messageType"),
            from_=_text(row, "from"), to=_text(row, "to"), status=_text(row, "status"),
            status_desc=_text(row, "status_desc"), created_time=_text(row, "created_time"),
            updated_time=_text(row, "updated_time"), service_type=_text(row, "serviceType"),
            raw=row) for row in rows]

    def get_edoc(self, doc_id: str) -> bytes:
        """One package through the base64 JSON form (``getEdoc``)."""
        # base64 is 4/3 of the package, plus the JSON around it.
        limit = (self.settings.max_package_size + 2) // 3 * 4 + 64 * 1024
        reply = self._json_call(p.OP_GET, {"docId": str(doc_id)}, body=lambda: b"{}",
                                reply_limit=limit,
                                too_long=lambda size: self._too_large(doc_id, size * 3 // 4,
                                                                      at_least=True))
        try:
            data = p.decode_base64_package(reply.body.get("data"))
        except p.MalformedReply as error:
            raise TransientAxisError(str(error), operation=p.OP_GET) from None
        if len(data) > self.settings.max_package_size:
            raise self._too_large(doc_id, len(data))
        return data

    def download_edoc(self, doc_id: str, destination: Path | str) -> Path:
        """One package through the raw GET form, streamed to ``destination`` (written to a
        ``.part`` file, fsynced, then renamed, so a half download never looks complete)."""
        destination = Path(destination)
        partial = destination.with_name(destination.name + ".part")

        def attempt() -> Path:
            response = self._send("GET", p.OP_DOWNLOAD, {"docId": str(doc_id)},
                                  p.JSON_CONTENT_TYPE, None)
            with response:
                ctype = response.headers.get("Content-Type", "")
                if response.status_code in (400, 404) and ctype.startswith("application/json"):
                    # A refused download answers an HTTP error with the FAIL inside (the SDK
                    # would save a 200 body as the package): the FAIL says what it was.
                    self._classify_reply(self._read_body(response, self.settings.max_reply_size,
                                                         p.OP_DOWNLOAD), p.OP_DOWNLOAD)
                self._check_http(response, p.OP_DOWNLOAD)
                if ctype.startswith("application/json"):
                    reply = self._classify_reply(
                        self._read_body(response, self.settings.max_reply_size, p.OP_DOWNLOAD),
                        p.OP_DOWNLOAD)
                    raise TransientAxisError(
                        f"downloadEdoc answered JSON instead of the package "
                        f"(status {reply.status})", operation=p.OP_DOWNLOAD)
                limit = self.settings.max_package_size
                announced = _content_length(response)
                if announced is not None and announced > limit:
                    raise self._too_large(doc_id, announced)
                try:
                    # Counted while streamed: a body longer than the limit (Content-Length
                    # missing or lying) is cut off here, never allowed to fill the disk.
                    received = 0
                    with open(partial, "wb") as out:
                        for chunk in response.iter_content(_CHUNK):
                            received += len(chunk)
                            if received > limit:
                                raise self._too_large(doc_id, received, at_least=True)
                            out.write(chunk)
                        out.flush()
                        os.fsync(out.fileno())
                except requests.RequestException as error:
                    partial.unlink(missing_ok=True)
                    raise TransientAxisError(f"download interrupted: {_network_cause(error)}",
                                             operation=p.OP_DOWNLOAD) from error
                except BaseException:
                    partial.unlink(missing_ok=True)
                    raise
            os.replace(partial, destination)
            return destination

        return self._retrying(p.OP_DOWNLOAD, attempt)

    def update_status(self, doc_id: str, status: str, description: str | None = None) -> None:
        """Acknowledge an item: ``done`` (stored, stop listing it), ``fail`` or ``processing``."""
        if status not in p.ACK_STATUSES:
            raise ValueError(f"status must be one of {p.ACK_STATUSES}")
        params = {"docid": str(doc_id), "status": status}
        if description is not None:
            params["description"] = description
        self._json_call(p.OP_UPDATE_STATUS, params, body=lambda: b"{}")

    acknowledge = update_status

    def list_sent(self, doc_id: str | None = None, messagetype: str = "edoc") -> list[SentItem]:
        """Per-recipient state of what we sent (one transfer with ``doc_id``, or all)."""
        params = {"servicetype": p.SERVICE_TYPE, "messagetype": messagetype}
        if doc_id is not None:
            params["docId"] = str(doc_id)
        rows = self._list_call(p.OP_LIST_SENT, params, "toCode")
        return [SentItem(
            sender_doc_id=_text(row, "senderDocId"), receiver_doc_id=_text(row, "receiverDocId"),
            from_code=_text(row, "fromCode"), to_code=_text(row, "toCode"),
            send_status=_text(row, "sendStatus"), send_status_desc=_text(row, "sendStatusDesc"),
            receive_status=_text(row, "receiveStatus"),
            receive_status_desc=_text(row, "receiveStatusDesc"),
            sent_time=_text(row, "sentTime"), received_time=_text(row, "receivedTime"),
            title=_text(row, "title"), notation=_text(row, "notation"), raw=row)
            for row in rows]

    def list_agencies(self) -> list[Agency]:
        rows = self._list_call(p.OP_AGENCIES, {}, "code")
        return [Agency(id=_text(row, "id"), code=_text(row, "code"), name=_text(row, "name"),
                       mail=_text(row, "mail"), pid=_text(row, "pid"), raw=row)
                for row in rows]

    def list_agencies_qd20(self) -> Iterator[Agency]:
        """The list with the codes before and after the reorganisations (Decision 20/2020,
        Decision 09/2025), as the SDK's ``getAgenciesListQD20``. The request is made (and
        retried) before this returns; the rows are then read one at a time (100,000 agencies
        parsed whole would take ~100 MB), so a row found bad raises while iterating."""
        return (_agency(row) for row in self._list_rows(p.OP_AGENCIES_QD20, {}, "code"))

    def synchronize_units(self, since: dt.datetime | None = None) -> Iterator[Agency]:
        """Agencies changed since ``since`` (all without it), removed ones with ``deleted``;
        read as :meth:`list_agencies_qd20` reads."""
        params = {"fromDate": p.format_list_date(since)} if since is not None else {}
        return (_agency(row) for row in self._list_rows(p.OP_SYNC_UNITS, params, "code"))

    def register_agency(self, code: str, name: str, *, pid: str = "", mail: str = "",
                        old_code: str = "") -> str:
        """Add or change an agency in the axis's directory (its administration); returns its id."""
        body = json.dumps({"code": code, "name": name, "pid": pid, "mail": mail,
                           "oldCode": old_code}, ensure_ascii=False).encode("utf-8")
        reply = self._json_call(p.OP_REGISTER_AGENCY, {}, body=lambda: body)
        return str(reply.body.get("id") or "")

    def delete_agency(self, code: str) -> None:
        self._json_call(p.OP_DELETE_AGENCY, {"code": code}, body=lambda: b"{}")

    def count_received(self, messagetype: str = "edoc") -> int:
        operation = p.OP_COUNT_STATUS if messagetype == "status" else p.OP_COUNT_EDOC
        reply = self._json_call(operation, {}, body=lambda: b"{}")  # the SDK's body for counts
        count: Any = reply.body.get("count")
        try:
            return int(count)
        except (TypeError, ValueError):
            raise TransientAxisError(f"{operation} reply has no integer count",
                                     operation=operation) from None

    # -- machinery ----------------------------------------------------------------------------

    def _json_call(self, operation: str, params: dict[str, str], *,
                   content_type: str = p.JSON_CONTENT_TYPE,
                   body: Callable[[], Any] | None = None,
                   reply_limit: int | None = None,
                   too_long: Callable[[int], Exception] | None = None) -> p.AxisReply:
        limit = reply_limit or self.settings.max_reply_size

        def attempt() -> p.AxisReply:
            payload = body() if body is not None else b""
            try:
                response = self._send("POST", operation, params, content_type, payload)
            finally:
                if isinstance(payload, _PackageBody):
                    payload.close()
            with response:
                self._check_http(response, operation)
                return self._classify_reply(
                    self._read_body(response, limit, operation, too_long), operation)

        return self._retrying(operation, attempt)

    def _list_call(self, operation: str, params: dict[str, str],
                   required_key: str) -> list[dict[str, Any]]:
        def attempt() -> list[dict[str, Any]]:
            response = self._send("POST", operation, params, p.JSON_CONTENT_TYPE, b"")
            with response:
                self._check_http(response, operation)
                reply = self._classify_reply(
                    self._read_body(response, self.settings.max_reply_size, operation), operation)
            data = reply.body.get("data")
            if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
                # Never an empty list in disguise: an unreadable list is retried, then raised.
                raise TransientAxisError(f"{operation} reply OK but its data is not a list",
                                         operation=operation)
            return _require_key(data, required_key, operation)

        return self._retrying(operation, attempt)

    def _list_rows(self, operation: str, params: dict[str, str],
                   required_key: str) -> Iterator[dict[str, Any]]:
        """A list call whose rows are parsed one at a time (see :func:`p.scan_list_reply`): the
        request, its status and the reply's shape are checked (and retried) here, at once."""
        def attempt() -> tuple[str, int]:
            response = self._send("POST", operation, params, p.JSON_CONTENT_TYPE, b"")
            with response:
                self._check_http(response, operation)
                raw = self._read_body(response, self.settings.max_reply_size, operation)
            try:
                text = raw.decode("utf-8")
                del raw
                reply, start = p.scan_list_reply(text)
            except (UnicodeDecodeError, p.MalformedReply) as error:
                raise TransientAxisError(f"{operation} reply: {error}", operation=operation) from None
            self._classify(reply, operation)
            if start is None:
                raise TransientAxisError(f"{operation} reply OK but its data is not a list",
                                         operation=operation)
            return text, start

        text, start = self._retrying(operation, attempt)
        return _checked_rows(p.iter_list_rows(text, start), required_key, operation)

    def _send(self, method: str, operation: str, params: dict[str, str], content_type: str,
              body: Any) -> requests.Response:
        """One signed request. The body is always streamed (``stream=True``): the caller reads
        it through :meth:`_read_body` or a counted loop, so no reply is read without a limit."""
        signed = p.build_signed_headers(systemid=self.settings.systemid,
                                        secret=self.settings.secret,
                                        content_type=content_type, params=params)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("axis request %s %s headers=%s", method, operation, signed.redacted())
        try:
            return self.session.request(
                method, self.settings.url(operation), headers=signed.wire, data=body,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                verify=self._verify, proxies=self._proxies, stream=True,
                allow_redirects=False)
        except requests.RequestException as error:
            raise TransientAxisError(_network_cause(error), operation=operation) from error

    def _check_http(self, response: requests.Response, operation: str) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (401, 403):
            code = desc = None
            try:
                reply = p.parse_reply(self._read_body(response, 64 * 1024, operation))
                code, desc = reply.error_code, reply.error_desc
            except (p.MalformedReply, TransientAxisError, requests.RequestException):
                pass
            raise AxisAuthError(
                f"the axis refused our credentials (HTTP {status}"
                + (f", FAIL {code}: {desc})" if code else ")"),
                operation=operation, error_code=code, error_desc=desc, http_status=status)
        raise TransientAxisError(f"HTTP {status} {response.reason or ''}".strip(),
                                 operation=operation, http_status=status)

    @staticmethod
    def _read_body(response: requests.Response, limit: int, operation: str,
                   too_long: Callable[[int], Exception] | None = None) -> bytes:
        """The reply body, refused once it passes ``limit`` bytes — whether or not a
        Content-Length announced it. The error is ``too_long(size)`` when given (getEdoc: the
        package is too large), else transient (the axis is unwell)."""
        announced = _content_length(response)
        if announced is not None and announced > limit:
            if too_long is not None:
                raise too_long(announced)
            raise TransientAxisError(f"{operation} reply announces {announced} bytes, more than "
                                     f"the limit of {limit}", operation=operation)
        chunks: list[bytes] = []
        received = 0
        try:
            for chunk in response.iter_content(_CHUNK):
                received += len(chunk)
                if received > limit:
                    if too_long is not None:
                        raise too_long(received)
                    raise TransientAxisError(f"{operation} reply is longer than the limit of "
                                             f"{limit} bytes", operation=operation)
                chunks.append(chunk)
        except requests.RequestException as error:
            raise TransientAxisError(f"reply interrupted: {_network_cause(error)}",
                                     operation=operation) from error
        return b"".join(chunks)

    def _too_large(self, doc_id: str, size: int, *, at_least: bool = False) -> PackageTooLarge:
        """Not retried: the same docId will be as large next time."""
        return PackageTooLarge(
            f"axis docId {doc_id} is {'more than ' if at_least else ''}{size} bytes, more than "
            f"the limit of {self.settings.max_package_size} bytes; not downloaded",
            element=p.OP_DOWNLOAD,
            hint="raise edxml.max_package_size if packages this large are expected")

    def _classify_reply(self, raw: bytes, operation: str) -> p.AxisReply:
        try:
            reply = p.parse_reply(raw)
        except p.MalformedReply as error:
            raise TransientAxisError(str(error), operation=operation) from None
        return self._classify(reply, operation)

    def _classify(self, reply: p.AxisReply, operation: str) -> p.AxisReply:
        if reply.ok:
            return reply
        code, desc = reply.error_code, reply.error_desc
        if code in self.settings.auth_codes:
            raise AxisAuthError(f"the axis refused our credentials (FAIL {code}: {desc})",
                                operation=operation, error_code=code, error_desc=desc)
        if code in self.settings.permanent_codes:
            raise PermanentAxisError(code, desc, operation=operation)
        raise TransientAxisError(f"FAIL {code}: {desc}", operation=operation,
                                 error_code=code, error_desc=desc)

    def _retrying(self, operation: str, attempt: Callable[[], T]) -> T:
        policy = self.settings.retry
        retrying = Retrying(
            stop=stop_after_attempt(policy.max_attempts)
            | stop_before_delay(policy.max_total_seconds),
            wait=wait_random_exponential(multiplier=policy.initial_backoff,
                                         max=policy.max_backoff),
            retry=retry_if_exception_type(TransientAxisError),
            sleep=self._sleep, reraise=True, before_sleep=_log_retry(operation))
        try:
            return retrying(attempt)
        except TransientAxisError as error:
            error.attempts = retrying.statistics.get("attempt_number", 1)
            log.warning("axis %s gave up after %d attempt(s): %s", operation, error.attempts,
                        error.message)
            raise


def _log_retry(operation: str) -> Callable[[Any], None]:
    def before_sleep(state: Any) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info("axis %s attempt %d failed (%s); retrying in %.2fs", operation,
                 state.attempt_number, getattr(error, "message", error), wait)
    return before_sleep


def _network_cause(error: Exception) -> str:
    """The cause an operator needs, short: requests wraps the real reason (refused, timed out,
    certificate verify failed...) in a long "Max retries exceeded with url" text, so unwrap it.
    No header value is ever in these texts, so nothing secret can leak through them."""
    kind = type(error).__name__
    cause: object = error
    while True:
        inner = getattr(cause, "reason", None)
        args = getattr(cause, "args", None)
        if inner is None and args and isinstance(args[0], BaseException):
            inner = args[0]
        if inner is None or inner is cause or not isinstance(inner, BaseException):
            break
        cause = inner
    text = str(cause) if cause is not error else str(error)
    return f"{kind}: {text[:300]}" if text else kind


def _content_length(response: requests.Response) -> int | None:
    try:
        return int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def _checked_rows(rows: Iterator[Any], key: str, operation: str) -> Iterator[dict[str, Any]]:
    try:
        for row in rows:
            if not isinstance(row, dict) or row.get(key) in (None, ""):
                raise TransientAxisError(f"{operation} reply has a row that is not an object "
                                         f"with {key}", operation=operation)
            yield row
    except p.MalformedReply as error:
        raise TransientAxisError(f"{operation} reply: {error}", operation=operation) from None


def _require_key(rows: list[dict[str, Any]], key: str, operation: str) -> list[dict[str, Any]]:
    for row in rows:
        if row.get(key) in (None, ""):
            raise TransientAxisError(f"{operation} reply has a row without {key}",
                                     operation=operation)
    return rows


def _list_date(value: Any) -> str:
    if isinstance(value, str):
        p.parse_list_date(value)  # refuse a wrong format here, not at the axis
        return value
    return p.format_list_date(value)
