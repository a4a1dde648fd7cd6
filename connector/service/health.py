"""Liveness, readiness and the HTTP listener that serves them with the metrics.

WHY this shape: what breaks delivery is a short list — the journal cannot be written, the
signing certificate is (about to be) expired, the axis has not answered for a while, the disk is
full, the clock is so far off that the axis rejects our signed timestamps — so readiness is that
list, as small pure functions over a :class:`HealthState` snapshot. The daemon only *records
facts* into a :class:`HealthMonitor` as it works (a beat per loop, each axis success or failure,
the certificate it loaded, the journal's last write); the judgement lives here, is the same for
``/readyz``, the ``edxml_connector_ready`` metric and the log, and is tested without a daemon.

Endpoints (default ``127.0.0.1:9640``; see :class:`HealthSettings`):

- ``GET /healthz`` — alive: 200 while the main loop has beaten within ``liveness_timeout_seconds``,
  503 otherwise. JSON ``{"alive": bool, "seconds_since_beat": float}``.
- ``GET /readyz`` — 200 or 503 with JSON ``{"ready": bool, "reasons": [...], "warnings": [...],
  "checks": {name: {"ok": bool, "detail": str, "warning": str|null}}}``.
- ``GET /metrics`` — Prometheus text format of :class:`connector.service.metrics.Metrics`.

The listener binds to loopback by default: it exposes queue sizes and timings, not secrets, but
a monitoring agent on the same host (or a reverse proxy) is the intended reader.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from connector.config import HealthConfig
from connector.errors import CertificateError, ConnectorError
from connector.service.metrics import Metrics

log = structlog.get_logger("connector.service.health")

DAY = 86400.0


# --------------------------------------------------------------------------------------------
# Settings and the state snapshot
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HealthSettings:
    """Thresholds and the listener address. The config module maps its ``health:`` keys here."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9640
    # /healthz fails when the main loop has not beaten for this long.
    liveness_timeout_seconds: float = 120.0
    # Warn (log + /readyz "warnings", still ready) this many days before the certificate expires.
    certificate_warning_days: float = 30.0
    # Not ready when fewer days than this are left (0: only once expired or not yet valid).
    certificate_min_days: float = 0.0
    # Not ready when the last authenticated axis call is older than K poll intervals.
    axis_poll_intervals: float = 3.0
    # Not ready when a watched filesystem (exchange root, state dir) has less free space.
    min_free_disk_bytes: int = 512 * 1024 * 1024
    # Not ready when our clock and the axis's HTTP Date differ by more than this.
    max_clock_skew_seconds: float = 120.0

    @classmethod
    def from_config(cls, health: HealthConfig, certificate_warning_days: float = 30.0) -> HealthSettings:
        """The thresholds the ``health:`` section sets (the warning days come from ``certificate:``)."""
        readiness = health.readiness
        return cls(
            enabled=health.enabled, host=health.host, port=health.port,
            liveness_timeout_seconds=readiness.liveness_timeout_seconds,
            certificate_warning_days=certificate_warning_days,
            certificate_min_days=readiness.certificate_min_days,
            axis_poll_intervals=readiness.axis_poll_intervals,
            min_free_disk_bytes=readiness.min_free_disk_mb * 1024 * 1024,
            max_clock_skew_seconds=readiness.max_clock_skew_seconds)


@dataclass(frozen=True)
class DiskUsage:
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class HealthState:
    """What the daemon has recorded, frozen at one instant. Times are Unix seconds."""

    started_at: float
    last_beat: float
    poll_interval_seconds: float = 60.0
    journal_writable: bool | None = None       # None: not yet checked
    journal_error: str | None = None
    journal_size_bytes: int | None = None
    certificate_subject: str | None = None
    certificate_not_before: datetime | None = None
    certificate_not_after: datetime | None = None
    # Why the key cannot sign right now although its dates are fine (token absent, PIN
    # refused): ``signer_reason`` is the short word (the metric's label), the text says more.
    signer_reason: str | None = None
    signer_problem: str | None = None
    # Why received items wait for the agency side (it refused the last delivery), or None.
    delivery_problem: str | None = None
    last_axis_success: float | None = None     # last authenticated axis call that succeeded
    last_axis_error: str | None = None         # the latest failure, cleared by a success
    last_successful_poll: float | None = None  # last complete poll of the received list
    clock_skew_seconds: float | None = None    # our clock minus the axis's Date header
    disk: Mapping[str, DiskUsage] = field(default_factory=dict)
    disk_errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    warning: str | None = None


@dataclass(frozen=True)
class Readiness:
    results: tuple[CheckResult, ...]
    units: Mapping[str, Readiness] = field(default_factory=dict)
    """A hub's units, each with its own checks (certificate, axis, delivery, its state)."""

    @property
    def ready(self) -> bool:
        return all(result.ok for result in self.results)

    @property
    def reasons(self) -> list[str]:
        return [f"{r.name}: {r.detail}" for r in self.results if not r.ok]

    @property
    def warnings(self) -> list[str]:
        return [f"{r.name}: {r.warning}" for r in self.results if r.warning]

    def as_json(self) -> dict:
        body = {
            "ready": self.ready,
            "reasons": self.reasons,
            "warnings": self.warnings,
            "checks": {r.name: {"ok": r.ok, "detail": r.detail, "warning": r.warning}
                       for r in self.results},
        }
        if self.units:
            body["units"] = {organ_id: {"ready": unit.ready, "reasons": unit.reasons}
                             for organ_id, unit in self.units.items()}
            body["paused_units"] = sorted(organ_id for organ_id, unit in self.units.items()
                                          if not unit.ready)
        return body


# --------------------------------------------------------------------------------------------
# The checks: pure functions of (state, settings, now)
# --------------------------------------------------------------------------------------------

def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def check_journal(state: HealthState, settings: HealthSettings, now: float) -> CheckResult:
    if state.journal_writable is None:
        return CheckResult("journal", False, "not checked yet (the daemon is starting)")
    if not state.journal_writable:
        error = state.journal_error or "unknown error"
        return CheckResult("journal", False, f"not writable: {error}")
    return CheckResult("journal", True, "writable")


@dataclass(frozen=True)
class CertificateStatus:
    """Where the signing certificate stands. ``level`` is ok, warning, expired, not_yet_valid or
    missing; only ok and warning allow signing."""

    level: str
    seconds_left: float | None
    message: str

    @property
    def can_sign(self) -> bool:
        return self.level in ("ok", "warning")


def certificate_status(not_before: datetime | None, not_after: datetime | None,
                       now: datetime, warning_days: float = 30.0,
                       subject: str | None = None) -> CertificateStatus:
    """Classify the certificate's validity. Shared by the readiness check, the log warnings and
    :func:`ensure_can_sign`, so that they never disagree."""
    who = f" ({subject})" if subject else ""
    if not_after is None:
        return CertificateStatus("missing", None, "no signing certificate is loaded")
    left = (not_after - now).total_seconds()
    if not_before is not None and now < not_before:
        return CertificateStatus(
            "not_yet_valid", left,
            f"the signing certificate{who} is not valid before {not_before.isoformat()}")
    if left <= 0:
        return CertificateStatus(
            "expired", left,
            f"the signing certificate{who} expired on {not_after.isoformat()}: signing is stopped")
    days = left / DAY
    if days <= warning_days:
        return CertificateStatus(
            "warning", left,
            f"the signing certificate{who} expires in {days:.1f} days "
            f"({not_after.isoformat()}): renew it")
    return CertificateStatus("ok", left, f"valid for {days:.0f} more days")


def ensure_can_sign(status: CertificateStatus) -> None:
    """Raise the loud, specific error the signing path must stop on (expired / not yet valid /
    missing certificate). The daemon calls it before signing each package."""
    if not status.can_sign:
        raise CertificateError(
            status.message,
            hint="install a renewed certificate (docs/operations.md, 'Renewing a certificate') "
                 "and reload the service (systemctl reload edxml-connector); queued items are "
                 "kept and sent after the reload")


def check_certificate(state: HealthState, settings: HealthSettings, now: float) -> CheckResult:
    if state.signer_problem:
        return CheckResult("certificate", False, f"signing paused: {state.signer_problem}")
    status = certificate_status(
        state.certificate_not_before, state.certificate_not_after,
        datetime.fromtimestamp(now, timezone.utc), settings.certificate_warning_days,
        state.certificate_subject)
    if not status.can_sign:
        return CheckResult("certificate", False, status.message)
    days_left = (status.seconds_left or 0.0) / DAY
    if days_left < settings.certificate_min_days:
        return CheckResult(
            "certificate", False,
            f"{days_left:.1f} days left, fewer than the required "
            f"{settings.certificate_min_days:g}: renew it")
    if status.level == "warning":
        return CheckResult("certificate", True, f"{days_left:.1f} days left", status.message)
    return CheckResult("certificate", True, status.message)


def check_axis(state: HealthState, settings: HealthSettings, now: float) -> CheckResult:
    limit = settings.axis_poll_intervals * state.poll_interval_seconds
    last_error = f"; last error: {state.last_axis_error}" if state.last_axis_error else ""
    if state.last_axis_success is None:
        return CheckResult("axis", False, f"not reached since start{last_error}")
    age = max(0.0, now - state.last_axis_success)
    if age > limit:
        return CheckResult(
            "axis", False,
            f"last authenticated call {_ago(age)}, more than {settings.axis_poll_intervals:g} "
            f"poll intervals ({limit:.0f} s){last_error}")
    return CheckResult("axis", True, f"reached and authenticated {_ago(age)}")


def check_disk(state: HealthState, settings: HealthSettings, now: float) -> CheckResult:
    problems = [f"{path}: {error}" for path, error in state.disk_errors.items()]
    lowest: tuple[str, DiskUsage] | None = None
    for path, usage in state.disk.items():
        if usage.free_bytes < settings.min_free_disk_bytes:
            problems.append(f"{path}: {usage.free_bytes // (1024 * 1024)} MiB free, fewer than "
                            f"{settings.min_free_disk_bytes // (1024 * 1024)} MiB")
        if lowest is None or usage.free_bytes < lowest[1].free_bytes:
            lowest = (path, usage)
    if problems:
        return CheckResult("disk", False, "; ".join(problems))
    if lowest is None:
        return CheckResult("disk", True, "no path watched")
    return CheckResult("disk", True,
                       f"lowest free: {lowest[1].free_bytes // (1024 * 1024)} MiB at {lowest[0]}")


def check_clock(state: HealthState, settings: HealthSettings, now: float) -> CheckResult:
    skew = state.clock_skew_seconds
    if skew is None:
        return CheckResult("clock", True, "not measured yet (no axis response with a Date header)")
    if abs(skew) > settings.max_clock_skew_seconds:
        direction = "ahead of" if skew > 0 else "behind"
        return CheckResult(
            "clock", False,
            f"local clock is {abs(skew):.0f} s {direction} the axis (limit "
            f"{settings.max_clock_skew_seconds:g} s): fix NTP (timedatectl status)")
    return CheckResult("clock", True, f"within {abs(skew):.0f} s of the axis")


def check_delivery(state: HealthState, settings: HealthSettings, now: float) -> CheckResult:
    """Received items are stored and acknowledged but wait: the DMS must be looked at."""
    if state.delivery_problem:
        return CheckResult("delivery", False, f"delivery to the agency side paused: "
                                              f"{state.delivery_problem}")
    return CheckResult("delivery", True, "the agency side takes what arrives")


READINESS_CHECKS: tuple[Callable[[HealthState, HealthSettings, float], CheckResult], ...] = (
    check_journal, check_certificate, check_axis, check_disk, check_clock, check_delivery)


def evaluate(state: HealthState, settings: HealthSettings, now: float) -> Readiness:
    return Readiness(tuple(check(state, settings, now) for check in READINESS_CHECKS))


HUB_CHECKS = (check_journal, check_disk, check_clock)
"""What a hub's readiness rests on: the parts every unit shares. A unit's own trouble names
the unit (``units`` / ``paused_units``) and does not make the hub unready."""
UNIT_CHECKS = (check_certificate, check_axis, check_delivery)


def evaluate_hub(state: HealthState, settings: HealthSettings, now: float,
                 units: Mapping[str, tuple[HealthState, str | None]]) -> Readiness:
    """Readiness of a hub of several units: the shared checks, the axis reached by at least
    one unit (the endpoint works), and each unit's own checks plus its paused state."""
    per_unit: dict[str, Readiness] = {}
    reached: list[str] = []
    for organ_id, (unit_state, paused_reason) in units.items():
        checks = [check(unit_state, settings, now) for check in UNIT_CHECKS]
        if unit_state.last_axis_success is not None and check_axis(unit_state, settings, now).ok:
            reached.append(organ_id)
        if unit_state.last_axis_success is None and unit_state.last_axis_error is None:
            # not asked yet: an idle unit's turn in the round may be minutes after a start
            checks = [CheckResult("axis", True, "not polled yet (its turn in the round comes)")
                      if result.name == "axis" else result for result in checks]
        if paused_reason:
            checks.append(CheckResult("unit", False, f"paused: {paused_reason}"))
        per_unit[organ_id] = Readiness(tuple(checks))
    if reached or not units:
        axis = CheckResult("axis", True, f"reached by {len(reached)} of {len(units)} units")
    else:
        axis = CheckResult("axis", False, "no unit reached the axis lately: "
                           + next(r.detail for r in next(iter(per_unit.values())).results
                                  if r.name == "axis"))
    paused = sorted(organ_id for organ_id, unit in per_unit.items() if not unit.ready)
    units_result = CheckResult("units", True, f"{len(units) - len(paused)} of {len(units)} "
                               "units working",
                               f"paused: {', '.join(paused)}" if paused else None)
    results = tuple(check(state, settings, now) for check in HUB_CHECKS) + (axis, units_result)
    return Readiness(results, per_unit)


def clock_skew_from_date(date_header: str, local_time: float) -> float | None:
    """Our clock minus the server's, from an HTTP ``Date`` header (1-second resolution, so a
    skew under a second or two means nothing — the threshold is minutes). None if unparsable."""
    try:
        server = parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if server is None:
        return None
    if server.tzinfo is None:
        server = server.replace(tzinfo=timezone.utc)
    return local_time - server.timestamp()


def measure_disk(paths: Iterable[str | Path]) -> tuple[dict[str, DiskUsage], dict[str, str]]:
    usage: dict[str, DiskUsage] = {}
    errors: dict[str, str] = {}
    for path in paths:
        key = str(path)
        try:
            total, _used, free = shutil.disk_usage(key)
        except OSError as error:
            errors[key] = error.strerror or str(error)
        else:
            usage[key] = DiskUsage(free_bytes=free, total_bytes=total)
    return usage, errors


# --------------------------------------------------------------------------------------------
# The monitor: the daemon records facts, readers take snapshots
# --------------------------------------------------------------------------------------------

class HealthMonitor:
    """Thread-safe holder of the health facts; keeps the derived metrics in step.

    ``disk_paths`` are measured with ``shutil.disk_usage`` at each snapshot (cheap), typically
    the exchange root and the state directory. ``clock`` and ``monotonic`` are injectable so
    that tests can move time.
    """

    def __init__(self, settings: HealthSettings | None = None, metrics: Metrics | None = None, *,
                 disk_paths: Iterable[str | Path] = (), poll_interval_seconds: float = 60.0,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or HealthSettings()
        self.metrics = metrics
        self.disk_paths = tuple(str(p) for p in disk_paths)
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        now = clock()
        self._state = HealthState(started_at=now, last_beat=now,
                                  poll_interval_seconds=poll_interval_seconds)
        self._beat_monotonic = monotonic()
        self.units: Callable[[], Mapping[str, tuple[HealthState, str | None]]] | None = None
        """Set by a hub of several units: each unit's health state and paused reason."""

    # -- recording (daemon side) --------------------------------------------------------------

    def beat(self) -> None:
        """The main loop is alive. Call once per loop turn (it also drives ``/healthz``)."""
        with self._lock:
            self._beat_monotonic = self._monotonic()
            self._state = replace(self._state, last_beat=self._clock())

    def update(self, **fields) -> None:
        """Set any :class:`HealthState` fields directly (e.g. ``poll_interval_seconds``)."""
        with self._lock:
            self._state = replace(self._state, **fields)

    def record_axis_success(self, *, date_header: str | None = None,
                            poll_complete: bool = False) -> None:
        """An authenticated axis call succeeded. ``date_header`` is the response's HTTP ``Date``
        (measures clock skew); ``poll_complete`` marks a complete poll of the received list."""
        now = self._clock()
        changes: dict = {"last_axis_success": now, "last_axis_error": None}
        if date_header:
            skew = clock_skew_from_date(date_header, now)
            if skew is not None:
                changes["clock_skew_seconds"] = skew
        if poll_complete:
            changes["last_successful_poll"] = now
        self.update(**changes)
        if poll_complete and self.metrics is not None:
            self.metrics.set_last_successful_poll(now)

    def record_axis_failure(self, error: str, *, date_header: str | None = None) -> None:
        """An axis call failed (unreachable, timeout, authentication refused...). The Date of an
        error response still tells us about the clock — often the very cause of a refusal."""
        changes: dict = {"last_axis_error": error}
        if date_header:
            skew = clock_skew_from_date(date_header, self._clock())
            if skew is not None:
                changes["clock_skew_seconds"] = skew
        self.update(**changes)

    def set_journal(self, writable: bool, error: str | None = None,
                    size_bytes: int | None = None) -> None:
        """The outcome of the journal's latest write (and its size on disk, when known)."""
        changes: dict = {"journal_writable": writable, "journal_error": None if writable else error}
        if size_bytes is not None:
            changes["journal_size_bytes"] = size_bytes
            if self.metrics is not None:
                self.metrics.set_journal_size(size_bytes)
        self.update(**changes)

    def set_certificate(self, not_before: datetime | None, not_after: datetime | None,
                        subject: str | None = None) -> CertificateStatus:
        """The certificate just loaded (startup, SIGHUP). Logs a warning inside the warning
        window and an error when it cannot sign; returns the status."""
        self.update(certificate_not_before=not_before, certificate_not_after=not_after,
                    certificate_subject=subject)
        return self.check_certificate_expiry()

    def set_signer_problem(self, reason: str | None, problem: str | None = None) -> bool:
        """The key could not sign (``reason``: token-absent, pin-refused) or, with None, signs
        again. Returns True when this changes the standing (for the caller to log once)."""
        with self._lock:
            changed = self._state.signer_reason != reason
            self._state = replace(self._state, signer_reason=reason,
                                  signer_problem=problem if reason else None)
        if self.metrics is not None:
            self.metrics.set_signing_paused(reason)
        return changed

    def set_delivery_problem(self, problem: str | None) -> None:
        """The agency side refused a delivery (``problem``), or with None takes them again."""
        self.update(delivery_problem=problem)

    def check_certificate_expiry(self) -> CertificateStatus:
        """Log the certificate's standing (warning inside the window, error once unusable) and
        update the metrics. The daemon calls it at load and once a day: a warning repeated
        daily is what gets noticed."""
        state = self.state()
        now = datetime.fromtimestamp(self._clock(), timezone.utc)
        status = certificate_status(state.certificate_not_before, state.certificate_not_after,
                                    now, self.settings.certificate_warning_days,
                                    state.certificate_subject)
        if self.metrics is not None:
            self.metrics.set_certificate_expiry(state.certificate_not_after, now)
            self.metrics.set_signing_blocked(not status.can_sign)
        if (status.level == "warning" and status.seconds_left is not None
                and state.certificate_not_after is not None):
            log.warning("certificate_expiring", days_left=round(status.seconds_left / DAY, 1),
                        not_after=state.certificate_not_after.isoformat(),
                        subject=state.certificate_subject, detail=status.message)
        elif status.level != "ok":
            log.error("certificate_unusable", reason=status.level, detail=status.message,
                      subject=state.certificate_subject)
        return status

    # -- reading -------------------------------------------------------------------------------

    def state(self) -> HealthState:
        with self._lock:
            return self._state

    def snapshot(self) -> HealthState:
        """The state with a fresh disk measurement."""
        disk, errors = measure_disk(self.disk_paths)
        with self._lock:
            self._state = replace(self._state, disk=disk, disk_errors=errors)
            return self._state

    def liveness(self) -> tuple[bool, float]:
        with self._lock:
            since = self._monotonic() - self._beat_monotonic
        return since <= self.settings.liveness_timeout_seconds, since

    def readiness(self) -> Readiness:
        """Evaluate every check on a fresh snapshot and publish the outcome as metrics."""
        state = self.snapshot()
        now = self._clock()
        if self.units is not None:
            result = evaluate_hub(state, self.settings, now, self.units())
        else:
            result = evaluate(state, self.settings, now)
        if self.metrics is not None:
            self.metrics.set_readiness(result.ready, {r.name: r.ok for r in result.results})
        if self.metrics is not None and self.units is None:  # a hub's units publish their own
            self.metrics.set_certificate_expiry(
                state.certificate_not_after, datetime.fromtimestamp(now, timezone.utc))
        return result


# --------------------------------------------------------------------------------------------
# The HTTP listener
# --------------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    server_version = "edxml-connector-health"
    sys_version = ""
    monitor: HealthMonitor
    metrics: Metrics | None

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            alive, since = self.monitor.liveness()
            self._json(HTTPStatus.OK if alive else HTTPStatus.SERVICE_UNAVAILABLE,
                       {"alive": alive, "seconds_since_beat": round(since, 3)})
        elif path == "/readyz":
            readiness = self.monitor.readiness()
            self._json(HTTPStatus.OK if readiness.ready else HTTPStatus.SERVICE_UNAVAILABLE,
                       readiness.as_json())
        elif path == "/metrics" and self.metrics is not None:
            self.monitor.readiness()  # refresh the derived gauges before the scrape
            self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, self.metrics.exposition())
        else:
            self._json(HTTPStatus.NOT_FOUND,
                       {"error": "not found", "endpoints": ["/healthz", "/readyz", "/metrics"]})

    def _json(self, status: HTTPStatus, body: dict) -> None:
        self._send(status, "application/json",
                   json.dumps(body, ensure_ascii=False).encode("utf-8"))

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        # Scrapes every 15 s would drown the log; keep them at debug level.
        log.debug("health_request", client=self.client_address[0], request=format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    """The listener, on a background thread. ``port=0`` picks a free port (tests); read it back
    from :attr:`port` after :meth:`start`."""

    def __init__(self, monitor: HealthMonitor, metrics: Metrics | None = None,
                 host: str | None = None, port: int | None = None) -> None:
        self.monitor = monitor
        self.metrics = metrics if metrics is not None else monitor.metrics
        self.host = monitor.settings.host if host is None else host
        self._requested_port = monitor.settings.port if port is None else port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            return self._requested_port
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> HealthServer:
        handler = type("HealthHandler", (_Handler,),
                       {"monitor": self.monitor, "metrics": self.metrics})
        server_class = _Server6 if ":" in self.host else _Server
        try:
            self._server = server_class((self.host, self._requested_port), handler)
        except OSError as error:
            raise ConnectorError(
                f"cannot listen on {self.host}:{self._requested_port} for health and metrics: "
                f"{error.strerror or error}",
                hint="choose another health.port, or set health.enabled: false") from error
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="health-http", daemon=True)
        self._thread.start()
        log.info("health_listening", url=self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_health_server(settings: HealthSettings, monitor: HealthMonitor,
                        metrics: Metrics | None = None) -> HealthServer | None:
    """Start the listener unless ``settings.enabled`` is false (then None)."""
    if not settings.enabled:
        return None
    return HealthServer(monitor, metrics, settings.host, settings.port).start()
