"""The axis wire protocol, written once for the client and the simulator alike.

Every call carries its parameters as HTTP headers ``XroadVnpt-<name>``, plus a JSON copy of them
(``XroadVnpt-sign-header``) and an HMAC-SHA256 of that JSON keyed by the agency's secret
(``XroadVnpt-hash-header``). The secret never travels. See ``docs/axis-api.md``.

Because the client and the simulator share this module, a change here changes both sides at once,
and the simulator stays an executable description of what the client sends.

Decisions (where the public material is silent):

* ``timestamp`` is Java ``SimpleDateFormat("ddMMyyyy'T'HHmmss+SSSS")``: the ``+`` is a literal and
  ``SSSS`` is *milliseconds* zero-padded to four digits, not a zone offset (the doc's example
  ``22112026T203015+0042`` is 20:30:15.042). The clock is Vietnam time (UTC+7, no daylight saving,
  so a fixed offset is exact and needs no tz database).
* Header values we send are ASCII (:func:`ascii_text`: Vietnamese without diacritics), because
  the SDK writes header bytes as ISO-8859-1 — a server reads them so (:func:`header_text`) and
  checks the HMAC over the UTF-8 bytes of the sign-header JSON, which keeps non-ASCII characters
  as they are (axis-api.md, "Encoding").
* A fresh, complete parameter set (and a fresh timestamp) is built for every request: the SDK's
  leaking header map and frozen timestamp are not reproduced.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from connector.axis.errors import RequestVerificationError
from connector.text import ascii_text  # re-exported: the wire's ASCII rule

# --- constants -------------------------------------------------------------------------------

HEADER_PREFIX = "XroadVnpt-"
SIGN_HEADER = HEADER_PREFIX + "sign-header"
SIGN_HEADER_KEY = HEADER_PREFIX + "sign-header-key"
HASH_HEADER = HEADER_PREFIX + "hash-header"
VERSION_HEADER = HEADER_PREFIX + "version"
PROTOCOL_VERSION = "3.0.201608"
USER_AGENT = "JAVASDKAgent/1.0.0 XRoad/VPCP"

# Headers that describe the signature itself and are therefore not inside the signed JSON.
UNSIGNED_PREFIXED = frozenset(h.lower() for h in (SIGN_HEADER, SIGN_HEADER_KEY, HASH_HEADER,
                                                   VERSION_HEADER))

JSON_CONTENT_TYPE = "application/json"
PACKAGE_CONTENT_TYPE = "application/octet-stream"
SERVICE_TYPE = "eDoc"
SEND_BODY_TRAILER = b"\r\n"  # the SDK writes the file bytes and then CRLF

MESSAGE_TYPES = ("edoc", "status")
ACK_STATUSES = ("done", "fail", "processing")

# Operation names (URL path segments).
OP_SEND = "sendEdoc"
OP_LIST_RECEIVED = "getReceivedEdocList"
OP_GET = "getEdoc"
OP_DOWNLOAD = "downloadEdoc"
OP_UPDATE_STATUS = "updateStatus"
OP_LIST_SENT = "getSentEdocList"
OP_COUNT_EDOC = "countReceiveEdoc"
OP_COUNT_STATUS = "countReceiveStatus"
OP_AGENCIES = "getAgenciesList"
OP_AGENCIES_QD20 = "getAgenciesListQD20"   # the list with old and new codes (Decision 20/2020)
OP_SYNC_UNITS = "getSynchronizeUnit"      # agencies changed since a time
OP_REGISTER_AGENCY = "registerAgency"     # the axis's administration: add or change an agency
OP_DELETE_AGENCY = "deleteAgency"         # ... and remove one
OPERATIONS = (OP_SEND, OP_LIST_RECEIVED, OP_GET, OP_DOWNLOAD, OP_UPDATE_STATUS, OP_LIST_SENT,
              OP_COUNT_EDOC, OP_COUNT_STATUS, OP_AGENCIES, OP_AGENCIES_QD20, OP_SYNC_UNITS,
              OP_REGISTER_AGENCY, OP_DELETE_AGENCY)

STATUS_OK = "OK"
STATUS_FAIL = "FAIL"
CODE_OK = "0"

# FAIL codes the simulator answers with — each problem has its own code, so the client can tell
# the package's fault (permanent) from everything else. The real axis publishes no table; these
# are the project's, and the client's permanent/auth sets are settings defaulting to them.
ERR_MALFORMED = "10"          # not a usable edXML package (or its kind contradicts messagetype)
ERR_UNKNOWN_RECIPIENT = "11"  # a To / ResponseFor OrganId that the axis does not know
ERR_HASH_MISMATCH = "12"      # hash-file matches the body neither with nor without CRLF
ERR_UNKNOWN_DOC = "13"        # docId unknown, or not addressed to the caller
ERR_BAD_PARAMETER = "14"      # a missing or invalid parameter
ERR_BAD_SIGNATURE = "20"      # HMAC wrong, sign-header unreadable, header swapped under the HMAC
ERR_UNKNOWN_SYSTEM = "21"     # systemid not registered
ERR_SENDER_MISMATCH = "22"    # the package's From (or the from header) is not the caller's OrganId
ERR_STALE_TIMESTAMP = "23"    # outside the optional freshness window

PERMANENT_CODES = frozenset({ERR_MALFORMED, ERR_UNKNOWN_RECIPIENT, ERR_HASH_MISMATCH})
AUTH_CODES = frozenset({ERR_BAD_SIGNATURE, ERR_UNKNOWN_SYSTEM, ERR_SENDER_MISMATCH,
                        ERR_STALE_TIMESTAMP})

VIETNAM_TZ = dt.timezone(dt.timedelta(hours=7), "ICT")
LIST_DATE_FORMAT = "%d/%m/%Y %H:%M:%S"  # fromDate / toDate and the list's times

# --- time ------------------------------------------------------------------------------------


def format_timestamp(moment: dt.datetime | None = None, tz: dt.tzinfo = VIETNAM_TZ) -> str:
    """``ddMMyyyy'T'HHmmss+SSSS`` in ``tz`` (Vietnam time unless configured otherwise)."""
    moment = dt.datetime.now(tz) if moment is None else _in_zone(moment, tz)
    return moment.strftime("%d%m%YT%H%M%S") + "+%04d" % (moment.microsecond // 1000)


def parse_timestamp(text: str, tz: dt.tzinfo = VIETNAM_TZ) -> dt.datetime:
    """Inverse of :func:`format_timestamp`; raises ``ValueError`` on anything else."""
    if len(text) != 20 or text[8] != "T" or text[15] != "+":
        raise ValueError(f"timestamp {text!r} is not ddMMyyyyTHHmmss+SSSS")
    base = dt.datetime.strptime(text[:15], "%d%m%YT%H%M%S")
    millis = int(text[16:])
    return base.replace(microsecond=millis * 1000, tzinfo=tz)


def format_list_date(moment: dt.datetime, tz: dt.tzinfo = VIETNAM_TZ) -> str:
    """``dd/MM/yyyy HH:mm:ss`` (fromDate/toDate and list times) in ``tz``."""
    return _in_zone(moment, tz).strftime(LIST_DATE_FORMAT)


def parse_list_date(text: str, tz: dt.tzinfo = VIETNAM_TZ) -> dt.datetime:
    return dt.datetime.strptime(text.strip(), LIST_DATE_FORMAT).replace(tzinfo=tz)


def _in_zone(moment: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    # A naive datetime is taken to be in ``tz`` already (the caller's wall clock in Vietnam).
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment.astimezone(tz)


# --- hashes ----------------------------------------------------------------------------------


def sdk_hex(digest: bytes) -> str:
    """The SDK's hex: each byte without zero padding (``0x01`` → ``1``). Lossy, but it is what the
    axis was built against, so the client sends it."""
    return "".join(format(byte, "x") for byte in digest)


def hash_file_sdk(data: bytes) -> str:
    """``hash-file`` as the official SDK computes it (SHA-256, unpadded hex per byte)."""
    return sdk_hex(hashlib.sha256(data).digest())


def hash_file_hex(data: bytes) -> str:
    """Standard lower-case hex SHA-256 (accepted by the simulator too)."""
    return hashlib.sha256(data).hexdigest()


def sha256_of_stream(stream: BinaryIO, chunk_size: int = 1 << 20) -> bytes:
    """SHA-256 digest of a binary stream read in chunks (the first pass of a streamed send)."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(chunk_size), b""):
        digest.update(chunk)
    return digest.digest()


def hash_file_matches(claimed: str, digest: bytes) -> bool:
    """True when ``claimed`` is ``digest`` in the SDK form or the standard form."""
    claimed = claimed.strip().lower()
    return hmac.compare_digest(claimed, sdk_hex(digest)) or hmac.compare_digest(
        claimed, digest.hex())


# --- signing ---------------------------------------------------------------------------------


def sign_header_json(params: Mapping[str, str]) -> str:
    """The sign-header string: ``{"XroadVnpt-<name>":"<value>",...}``, UTF-8, no spaces,
    non-ASCII as is. ``params`` keys are parameter names without the prefix."""
    return json.dumps({HEADER_PREFIX + name: value for name, value in params.items()},
                      ensure_ascii=False, separators=(",", ":"))


def hmac_hex(secret: str, sign_header: str | bytes) -> str:
    """Lower-case hex HMAC-SHA256 of the exact sign-header bytes, keyed by the UTF-8 secret."""
    message = sign_header.encode("utf-8") if isinstance(sign_header, str) else sign_header
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedHeaders:
    """The headers of one request. ``wire`` maps header names to ASCII bytes (values folded by
    :func:`ascii_text`), ready for requests/urllib3."""

    params: dict[str, str]
    sign_header: str
    hash_header: str
    wire: dict[str, bytes] = field(repr=False)

    def redacted(self) -> dict[str, str]:
        """The headers for a debug log: the signature material replaced, the rest readable."""
        shown = {}
        for name, value in self.wire.items():
            if name in (SIGN_HEADER, HASH_HEADER):
                shown[name] = "[redacted]"
            else:
                shown[name] = value.decode("ascii")
        return shown


def build_signed_headers(*, systemid: str, secret: str, content_type: str,
                         params: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                         timestamp: str | None = None,
                         tz: dt.tzinfo = VIETNAM_TZ) -> SignedHeaders:
    """A fresh, complete parameter set for one request: systemid, a new timestamp, Content-Type
    and the call's own parameters, as prefixed headers plus their signed JSON copy."""
    ordered: dict[str, str] = {
        "systemid": systemid,
        "timestamp": timestamp if timestamp is not None else format_timestamp(tz=tz),
        "Content-Type": content_type,
    }
    items = params.items() if isinstance(params, Mapping) else params
    for name, value in items:
        if value is None:
            continue
        if name in ordered:
            raise ValueError(f"parameter {name!r} is set by the protocol itself")
        ordered[name] = ascii_text(str(value))
    sign_header = sign_header_json(ordered)
    hash_header = hmac_hex(secret, sign_header)
    wire: dict[str, bytes] = {HEADER_PREFIX + name: value.encode("ascii")
                              for name, value in ordered.items()}
    wire["Content-Type"] = content_type.encode("ascii")
    wire[SIGN_HEADER_KEY] = ";".join(ordered).encode("ascii")
    wire[SIGN_HEADER] = sign_header.encode("ascii")
    wire[HASH_HEADER] = hash_header.encode("ascii")
    wire[VERSION_HEADER] = PROTOCOL_VERSION.encode("ascii")
    wire["User-Agent"] = USER_AGENT.encode("ascii")
    return SignedHeaders(params=ordered, sign_header=sign_header, hash_header=hash_header,
                         wire=wire)


# --- verifying (server side) -----------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedRequest:
    """A request whose signature held: who sent it and its signed parameters (no prefix)."""

    systemid: str
    params: dict[str, str]

    def get(self, name: str, default: str | None = None) -> str | None:
        """A parameter by name, case-insensitively (the SDK spells ``docId`` and ``docid``)."""
        if name in self.params:
            return self.params[name]
        lowered = name.lower()
        for key, value in self.params.items():
            if key.lower() == lowered:
                return value
        return default


def header_text(raw: bytes | str) -> str:
    """A header value as the SDK writes it: ISO-8859-1 bytes (http.server already hands them over
    decoded that way). Not UTF-8: the SDK never sends UTF-8 in a header (axis-api.md,
    "Encoding"), and the HMAC is then checked over the UTF-8 bytes of this text, as the SDK
    computed it — so Latin-1 text verifies, and what the SDK turned into ``?`` does not."""
    return raw.decode("latin-1") if isinstance(raw, bytes) else raw


def verify_request(headers: Iterable[tuple[str, str]],
                   secret_for: Callable[[str], str | None], *,
                   max_skew: dt.timedelta | None = None,
                   now: dt.datetime | None = None,
                   tz: dt.tzinfo = VIETNAM_TZ) -> VerifiedRequest:
    """Check a received request's signature; return its signed parameters.

    ``headers`` are (name, value) pairs with their exact names, values read as ISO-8859-1
    (:func:`header_text`). ``secret_for`` maps a systemid to its secret, or ``None`` when
    unknown. Checks, in order: the signature headers are present; the sign-header is a JSON
    object of strings; its systemid is known; the HMAC over the *literal* sign-header string
    matches; every ``XroadVnpt-*`` header is covered by the JSON under exactly its spelling and
    with exactly that value, and every covered one is sent (so a header cannot be swapped or
    added under a valid HMAC); optionally the timestamp
    is within ``max_skew`` of now (off by default, since the official SDK freezes it).
    Raises :class:`RequestVerificationError` with a FAIL code and a message an operator can act on.
    """
    received: dict[str, list[str]] = {}
    exact: dict[str, list[str]] = {}
    for name, value in headers:
        received.setdefault(name.lower(), []).append(value)
        exact.setdefault(name, []).append(value)
    sign_header = _single_header(received, SIGN_HEADER)
    hash_header = _single_header(received, HASH_HEADER)
    if sign_header is None or hash_header is None:
        raise RequestVerificationError(
            f"unsigned request: {SIGN_HEADER} and {HASH_HEADER} are required",
            error_code=ERR_BAD_SIGNATURE)
    signed = _signed_parameters(sign_header)
    signed_lower = {key.lower(): value for key, value in signed.items()}
    systemid = signed_lower.get((HEADER_PREFIX + "systemid").lower())
    if not systemid:
        raise RequestVerificationError(f"{SIGN_HEADER} has no {HEADER_PREFIX}systemid",
                                       error_code=ERR_BAD_SIGNATURE)
    secret = secret_for(systemid)
    if secret is None:
        raise RequestVerificationError(f"unknown systemid {systemid!r}",
                                       error_code=ERR_UNKNOWN_SYSTEM)
    expected = hmac_hex(secret, sign_header)
    if not hmac.compare_digest(expected, hash_header.strip().lower()):
        raise RequestVerificationError(
            f"{HASH_HEADER} does not match the HMAC of {SIGN_HEADER} for systemid {systemid!r}",
            error_code=ERR_BAD_SIGNATURE)
    _check_headers_match_signed(exact, signed)
    if max_skew is not None:
        _check_timestamp(signed_lower.get((HEADER_PREFIX + "timestamp").lower(), ""),
                         max_skew, now or dt.datetime.now(tz), tz)
    params = {key[len(HEADER_PREFIX):]: value for key, value in signed.items()
              if key.startswith(HEADER_PREFIX)}
    return VerifiedRequest(systemid=systemid, params=params)


def _single_header(received: dict[str, list[str]], name: str) -> str | None:
    """The one value of ``name``, or None when absent. A repeated signature header is refused:
    which copy a proxy or framework would pick is not ours to guess."""
    values = received.get(name.lower())
    if not values:
        return None
    if len(values) > 1:
        raise RequestVerificationError(f"header {name} is repeated", error_code=ERR_BAD_SIGNATURE)
    return values[0]


def _signed_parameters(sign_header: str) -> dict[str, str]:
    """The sign-header parsed: it must be a JSON object of strings."""
    try:
        signed = json.loads(sign_header)
    except ValueError:
        signed = None
    if not isinstance(signed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in signed.items()):
        raise RequestVerificationError(f"{SIGN_HEADER} is not a JSON object of strings",
                                       error_code=ERR_BAD_SIGNATURE)
    return signed


def _check_headers_match_signed(exact: dict[str, list[str]], signed: dict[str, str]) -> None:
    """Every ``XroadVnpt-*`` header sent must be in the signed JSON under exactly its own
    spelling, with exactly its value there — so that a header cannot be swapped or added under a
    valid HMAC (the SDK signs every header in its map, so an unsigned one is refused).

    WHY exact spelling: the SDK's header map keeps every header it ever set, so a reused client
    sends ``XroadVnpt-docId`` from one call and ``XroadVnpt-docid`` from the next, both signed,
    with different values; HTTP calls them the same header, the signed JSON does not
    (decisions.md, "Extra headers"). A signed header that is not sent is refused too."""
    prefix = HEADER_PREFIX.lower()
    for name in exact:
        if not name.lower().startswith(prefix) or name.lower() in UNSIGNED_PREFIXED:
            continue
        if name not in signed:
            raise RequestVerificationError(f"header {name} is not covered by {SIGN_HEADER}",
                                           error_code=ERR_BAD_SIGNATURE)
    for name, value in signed.items():
        values = exact.get(name, [])
        if not values:
            raise RequestVerificationError(f"header {name} is signed in {SIGN_HEADER} but not sent",
                                           error_code=ERR_BAD_SIGNATURE)
        if any(sent != value for sent in values):
            raise RequestVerificationError(
                f"header {name} differs from its signed value in {SIGN_HEADER}",
                error_code=ERR_BAD_SIGNATURE)


def _check_timestamp(stamp: str, max_skew: dt.timedelta, current: dt.datetime,
                     tz: dt.tzinfo) -> None:
    """The signed timestamp must be within ``max_skew`` of ``current`` (a replay window)."""
    try:
        sent_at = parse_timestamp(stamp, tz)
    except ValueError:
        raise RequestVerificationError(f"timestamp {stamp!r} is unreadable",
                                       error_code=ERR_STALE_TIMESTAMP) from None
    if abs(current - sent_at) > max_skew:
        raise RequestVerificationError(
            f"timestamp {stamp} is outside the accepted window of {max_skew}",
            error_code=ERR_STALE_TIMESTAMP)


# --- responses -------------------------------------------------------------------------------


def ok_body(**fields: Any) -> dict[str, Any]:
    return {"status": STATUS_OK, "ErrorCode": CODE_OK, "ErrorDesc": "", **fields}


def fail_body(code: str, desc: str) -> dict[str, Any]:
    return {"status": STATUS_FAIL, "ErrorCode": str(code), "ErrorDesc": desc}


def encode_body(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class AxisReply:
    """A parsed JSON reply: ``ok`` plus the FAIL code and text, and the whole object."""

    status: str
    error_code: str
    error_desc: str
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.status.upper() == STATUS_OK


class MalformedReply(ValueError):
    """The reply is not the JSON the operation promises (never to be read as an empty answer)."""


def parse_reply(raw: bytes) -> AxisReply:
    """Parse a JSON reply; raise :class:`MalformedReply` when it is not a JSON object with a
    ``status`` of OK or FAIL."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        snippet = raw[:80].decode("utf-8", "replace")
        raise MalformedReply(f"reply is not JSON ({error}): {snippet!r}") from None
    return reply_of(body)


def reply_of(body: Any) -> AxisReply:
    """An already parsed reply checked: a JSON object with a ``status`` of OK or FAIL."""
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise MalformedReply("reply is not a JSON object with a status")
    status = body["status"].upper()
    if status not in (STATUS_OK, STATUS_FAIL):
        raise MalformedReply(f"reply status {body['status']!r} is neither OK nor FAIL")
    code = body.get("ErrorCode")
    desc = body.get("ErrorDesc")
    return AxisReply(status=status, error_code="" if code is None else str(code),
                     error_desc="" if desc is None else str(desc), body=body)


# A list reply of 100,000 agencies is ~20 MB of JSON and ~100 MB once parsed whole: its rows
# are read one at a time instead (the other fields whole), so a sync's memory stays bounded.
_DECODER = json.JSONDecoder()
_BLANK = re.compile(r"[ \t\n\r]*")


def scan_list_reply(text: str, list_key: str = "data") -> tuple[AxisReply, int | None]:
    """The reply's fields other than ``list_key`` (checked as :func:`reply_of` does), and where
    the ``list_key`` array starts in ``text`` (None when the reply has no such array) — for
    :func:`iter_list_rows`. Raises :class:`MalformedReply`."""
    try:
        fields: dict[str, Any] = {}
        start = None
        at = _blank(text, 0)
        if text[at] != "{":
            raise MalformedReply("reply is not a JSON object")
        at = _blank(text, at + 1)
        while text[at] != "}":
            key, at = _DECODER.raw_decode(text, at)
            at = _blank(text, at)
            if text[at] != ":":
                raise MalformedReply("reply is not valid JSON (':' expected)")
            at = _blank(text, at + 1)
            if key == list_key and text[at] == "[":
                start = at
                at = _array_end(text, at)
            else:
                fields[key], at = _DECODER.raw_decode(text, at)
            at = _blank(text, at)
            if text[at] == ",":
                at = _blank(text, at + 1)
            elif text[at] != "}":
                raise MalformedReply("reply is not valid JSON (',' or '}' expected)")
        if _blank(text, at + 1) != len(text):
            raise MalformedReply("reply has data after its JSON object")
    except (ValueError, IndexError) as error:
        if isinstance(error, MalformedReply):
            raise
        raise MalformedReply(f"reply is not JSON ({error})") from None
    return reply_of(fields), start


def iter_list_rows(text: str, start: int) -> Iterator[Any]:
    """The items of the JSON array at ``start`` (from :func:`scan_list_reply`), one at a time."""
    at = _blank(text, start + 1)
    if text[at] == "]":
        return
    while True:
        try:
            row, at = _DECODER.raw_decode(text, at)
        except ValueError as error:
            raise MalformedReply(f"reply is not JSON ({error})") from None
        yield row
        at = _blank(text, at)
        if text[at] == "]":
            return
        if text[at] != ",":
            raise MalformedReply("reply is not valid JSON (',' or ']' expected in a list)")
        at = _blank(text, at + 1)


def _array_end(text: str, start: int) -> int:
    """Where the JSON array at ``start`` ends (just past its ``]``), its items parsed and dropped."""
    at = _blank(text, start + 1)
    if text[at] == "]":
        return at + 1
    while True:
        _row, at = _DECODER.raw_decode(text, at)
        at = _blank(text, at)
        if text[at] == "]":
            return at + 1
        if text[at] != ",":
            raise MalformedReply("reply is not valid JSON (',' or ']' expected in a list)")
        at = _blank(text, at + 1)


def _blank(text: str, at: int) -> int:
    match = _BLANK.match(text, at)
    return match.end() if match else at


def decode_base64_package(text: Any) -> bytes:
    """The ``data`` of a getEdoc reply → package bytes; :class:`MalformedReply` if unusable."""
    if not isinstance(text, str) or not text:
        raise MalformedReply("getEdoc reply has no base64 data")
    try:
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError) as error:
        raise MalformedReply(f"getEdoc data is not base64: {error}") from None
