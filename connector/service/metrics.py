"""The connector's Prometheus metrics, in a registry of their own.

WHY a dedicated ``CollectorRegistry`` rather than the library's global one: two connectors (or a
daemon and its tests) in one process must not collide on metric names, and ``/metrics`` should
show exactly what this module documents, nothing a third-party import happened to register.

Every name starts with ``edxml_connector_``; the alert rules in ``config/monitoring/alerts.yml``
and ``docs/operations.md`` use these names, so a rename here is a breaking change.

=============================================================  =========  ====================
name                                                           type       labels
=============================================================  =========  ====================
``edxml_connector_items``                                      gauge      direction, state
``edxml_connector_sends_total``                                counter    outcome
``edxml_connector_receives_total``                             counter    outcome
``edxml_connector_retries_total``                              counter    direction
``edxml_connector_axis_request_duration_seconds``              histogram  operation
``edxml_connector_oldest_pending_age_seconds``                 gauge      direction
``edxml_connector_certificate_expiry_seconds``                 gauge      (none)
``edxml_connector_certificate_days_left``                      gauge      agency
``edxml_connector_signing_blocked``                            gauge      (none)
``edxml_connector_signing_paused``                             gauge      reason
``edxml_connector_last_successful_poll_timestamp_seconds``     gauge      (none)
``edxml_connector_journal_size_bytes``                         gauge      (none)
``edxml_connector_ready``                                      gauge      (none)
``edxml_connector_readiness_check``                            gauge      check
``edxml_connector_info``                                       gauge      version
``edxml_connector_unit_pending_items``                         gauge      agency, direction
``edxml_connector_unit_last_successful_poll_timestamp_seconds`` gauge     agency
``edxml_connector_unit_paused``                                gauge      agency
``edxml_connector_unit_errors_total``                          counter    agency, direction
=============================================================  =========  ====================

Label values are a closed set (the tuples below): an unknown one is a programming error and
raises ``ValueError`` at once, instead of quietly creating a series no alert looks at.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from connector import __version__

PREFIX = "edxml_connector"

DIRECTIONS = ("outgoing", "incoming")
SIGNING_PAUSE_REASONS = ("token-absent", "pin-refused")
# What happened to one attempt to push a package to the axis.
SEND_OUTCOMES = (
    "accepted",         # the axis answered OK and gave a DocId
    "retryable_error",  # network error, timeout, 5xx, throttling: will be retried
    "permanent_error",  # refused for good (bad package, unknown recipient...): the item fails
)
# What happened to one package pulled from the axis.
RECEIVE_OUTCOMES = (
    "stored",           # verified (or accepted by policy) and durably stored
    "duplicate",        # a redelivery of something already stored: acknowledged, not delivered
    "quarantined",      # stored, acknowledged, held back by the signature policy
    "error",            # could not be fetched/parsed/stored: not acknowledged, comes back later
    "refused",          # larger than the package limit (answered `fail`, never downloaded again),
                        # or a status from an agency with no right to send it (recorded, not applied)
)
# The axis API calls, as named in docs/axis-api.md.
AXIS_OPERATIONS = (
    "sendEdoc",
    "getReceivedEdocList",
    "getEdoc",
    "downloadEdoc",     # the raw form of getEdoc the connector uses for packages
    "updateStatus",
    "getAgenciesList",
    "getAgenciesListQD20",  # the directory sync: the whole list with old codes
    "getSynchronizeUnit",   # ... and its changes since the last sync
    "countReceiveEdoc",
    "countReceiveStatus",
    "other",
)

# Axis calls take from a few milliseconds (loopback simulator) to tens of seconds (a large
# attachment over a slow link); the buckets cover both ends.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r} for a metric label; expected one of {allowed}")
    return value


class Metrics:
    """All the connector's metrics, registered in ``self.registry``.

    The daemon makes one instance and passes it to the pipelines and to
    :class:`connector.service.health.HealthMonitor` (which keeps the certificate, poll, journal and
    readiness gauges in step with its state). Methods are thread-safe (prometheus-client's are).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, agency: str = "") -> None:
        self.agency = agency  # the unit's OrganId, the ``agency`` label of per-unit metrics
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.items = Gauge(
            f"{PREFIX}_items", "Items in the journal by direction and state.",
            ["direction", "state"], registry=r)
        self.sends = Counter(
            f"{PREFIX}_sends", "Attempts to send a package to the axis, by outcome.",
            ["outcome"], registry=r)
        self.receives = Counter(
            f"{PREFIX}_receives", "Packages received from the axis, by outcome.",
            ["outcome"], registry=r)
        self.retries = Counter(
            f"{PREFIX}_retries", "Attempts scheduled again after a retryable error.",
            ["direction"], registry=r)
        self.axis_request_duration = Histogram(
            f"{PREFIX}_axis_request_duration_seconds",
            "Duration of HTTP requests to the axis, by API operation.",
            ["operation"], buckets=LATENCY_BUCKETS, registry=r)
        self.oldest_pending_age = Gauge(
            f"{PREFIX}_oldest_pending_age_seconds",
            "Age of the oldest item not yet done (outgoing: not yet accepted by the axis; "
            "incoming: not yet delivered to the agency side); 0 when none.",
            ["direction"], registry=r)
        self.certificate_expiry = Gauge(
            f"{PREFIX}_certificate_expiry_seconds",
            "Seconds until the signing certificate expires (negative once expired).",
            registry=r)
        self.certificate_days_left = Gauge(
            f"{PREFIX}_certificate_days_left",
            "Days until no configured certificate can sign (a next certificate that takes over "
            "in time counts), per unit; negative once none can.",
            ["agency"], registry=r)
        self.signing_blocked = Gauge(
            f"{PREFIX}_signing_blocked",
            "1 when signing is stopped because the certificate has expired (or is not yet valid).",
            registry=r)
        self.signing_paused = Gauge(
            f"{PREFIX}_signing_paused",
            "1 for the reason signing waits although the certificate is valid: its token is "
            "absent (token-absent, resumes by itself) or refused the PIN (pin-refused, until a "
            "reload); 0 for the others.",
            ["reason"], registry=r)
        for reason in SIGNING_PAUSE_REASONS:
            self.signing_paused.labels(reason=reason).set(0)
        self.last_successful_poll = Gauge(
            f"{PREFIX}_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful authenticated poll of the axis (0: never).",
            registry=r)
        self.outbox_refused = Gauge(
            f"{PREFIX}_outbox_refused_items",
            "Outbox entries that cannot even be claimed (names and reasons in `status`).",
            registry=r)
        self.journal_size = Gauge(
            f"{PREFIX}_journal_size_bytes",
            "Size of the journal database on disk (SQLite file with its WAL; PostgreSQL: "
            "pg_database_size when known).", registry=r)
        self.ready = Gauge(
            f"{PREFIX}_ready", "1 when every readiness check passes (what /readyz says).",
            registry=r)
        self.readiness_check = Gauge(
            f"{PREFIX}_readiness_check", "1 when this readiness check passes, 0 when it fails.",
            ["check"], registry=r)
        self.info = Gauge(
            f"{PREFIX}_info", "Always 1; the label carries the connector's version.",
            ["version"], registry=r)
        self.info.labels(version=__version__).set(1)
        # Per unit (decisions.md: the agency label only on the few per-unit series): what waits,
        # when it last heard from the axis, whether it is paused, its failures; the series above
        # stay the whole connector's, so a single-agency dashboard reads as before.
        self.unit_pending = Gauge(
            f"{PREFIX}_unit_pending_items", "Items of one unit not yet done (outgoing: queued, "
            "packaged or sending; incoming: not yet delivered).", ["agency", "direction"],
            registry=r)
        self.unit_last_poll = Gauge(
            f"{PREFIX}_unit_last_successful_poll_timestamp_seconds",
            "Unix time of the unit's last successful poll of the axis (0: never).", ["agency"],
            registry=r)
        self.unit_paused = Gauge(
            f"{PREFIX}_unit_paused", "1 when the unit does not work (its reason in `units` and "
            "/readyz): credentials refused, certificate unusable, its side failing.", ["agency"],
            registry=r)
        self.unit_errors = Counter(
            f"{PREFIX}_unit_errors", "Failed polls (incoming) and failed send attempts "
            "(outgoing) of one unit.", ["agency", "direction"], registry=r)

        # Counters start at 0 for every known label value, so that rate()/increase() work from the
        # first scrape and an alert can tell "nothing happened" from "no data".
        for outcome in SEND_OUTCOMES:
            self.sends.labels(outcome=outcome)
        for outcome in RECEIVE_OUTCOMES:
            self.receives.labels(outcome=outcome)
        for direction in DIRECTIONS:
            self.retries.labels(direction=direction)
            self.oldest_pending_age.labels(direction=direction).set(0)
        self._item_label_sets: set[tuple[str, str]] = set()
        self._transport_timed = False

    # -- the pipelines call these ------------------------------------------------------------

    def record_send(self, outcome: str) -> None:
        self.sends.labels(outcome=_check(outcome, SEND_OUTCOMES, "send outcome")).inc()

    def record_receive(self, outcome: str) -> None:
        self.receives.labels(outcome=_check(outcome, RECEIVE_OUTCOMES, "receive outcome")).inc()

    def record_retry(self, direction: str) -> None:
        self.retries.labels(direction=_check(direction, DIRECTIONS, "direction")).inc()

    def observe_axis_request(self, operation: str, seconds: float) -> None:
        self.axis_request_duration.labels(
            operation=_check(operation, AXIS_OPERATIONS, "axis operation")).observe(seconds)

    @contextmanager
    def time_axis_request(self, operation: str) -> Iterator[None]:
        """``with metrics.time_axis_request("sendEdoc"): client.send(...)`` — failures count too:
        a slow timeout is exactly what the histogram is for.

        Once :meth:`instrument_session` has hooked the HTTP transport, this is a no-op: the
        transport observes every request (each retry on its own, getAgenciesList too), and a
        call-level timer on top would count the same request twice and the retry back-off
        sleeps as latency."""
        _check(operation, AXIS_OPERATIONS, "axis operation")
        if self._transport_timed:
            yield
            return
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe_axis_request(operation, time.perf_counter() - started)

    def instrument_session(self, session: Any) -> None:
        """Observe every HTTP request the axis client's ``requests.Session`` makes.

        WHY at the transport: the histogram must see *every* axis call — each retry, the agency
        list refresh, a download — without each pipeline remembering to time it. The operation
        is the last path segment of the URL (the API names its operations that way); the time
        is until the response headers arrived, or until the request failed (connection refused,
        timeout: exactly the slow cases the histogram is for)."""
        if getattr(session, "_edxml_metrics_instrumented", False):
            return
        send = session.send

        def timed_send(request, **kwargs):
            operation = axis_operation_of(getattr(request, "url", "") or "")
            started = time.perf_counter()
            try:
                return send(request, **kwargs)
            finally:
                self.observe_axis_request(operation, time.perf_counter() - started)

        session.send = timed_send
        session._edxml_metrics_instrumented = True
        self._transport_timed = True

    # -- the daemon's periodic refresh calls these --------------------------------------------

    def set_item_counts(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace the item gauge with ``{(direction, state): count}`` from one journal query.

        A state absent from ``counts`` that was present before is set to 0 (not left at its old
        value), so that a queue that drained shows as drained.
        """
        for direction, _ in counts:
            _check(direction, DIRECTIONS, "direction")
        for key in self._item_label_sets - set(counts):
            self.items.labels(direction=key[0], state=key[1]).set(0)
        for (direction, state), count in counts.items():
            self.items.labels(direction=direction, state=state).set(count)
        self._item_label_sets |= set(counts)

    def set_oldest_pending_age(self, direction: str, seconds: float | None) -> None:
        """None (nothing pending) is published as 0."""
        self.oldest_pending_age.labels(direction=_check(direction, DIRECTIONS, "direction")).set(
            max(0.0, seconds or 0.0))

    def set_certificate_expiry(self, not_after: datetime | None,
                               now: datetime | None = None) -> None:
        """Publish seconds to expiry and whether signing is blocked. ``not_after`` None (no
        certificate loaded) leaves the expiry gauge absent-valued (NaN) and signing blocked."""
        days_left = self.certificate_days_left.labels(agency=self.agency)
        if not_after is None:
            self.certificate_expiry.set(float("nan"))
            days_left.set(float("nan"))
            self.signing_blocked.set(1)
            return
        now = now or datetime.now(timezone.utc)
        remaining = (not_after - now).total_seconds()
        self.certificate_expiry.set(remaining)
        days_left.set(round(remaining / 86400, 2))
        self.signing_blocked.set(1 if remaining <= 0 else 0)

    def set_unit_certificate(self, organ_id: str, not_after: datetime | None,
                             now: datetime | None = None) -> None:
        """One unit's certificate days left (the hub's other certificate series stay unset)."""
        days_left = self.certificate_days_left.labels(agency=organ_id)
        if not_after is None:
            days_left.set(float("nan"))
            return
        now = now or datetime.now(timezone.utc)
        days_left.set(round((not_after - now).total_seconds() / 86400, 2))

    def set_hub_certificates(self, soonest_end: datetime | None, any_blocked: bool,
                             now: datetime | None = None) -> None:
        """A hub's connector-wide certificate series: the soonest end of its units' keys (the
        alert on expiry fires for the unit that needs a renewal first) and whether some unit
        cannot sign; per unit: ``certificate_days_left{agency}`` and ``unit_paused``."""
        now = now or datetime.now(timezone.utc)
        self.certificate_expiry.set(float("nan") if soonest_end is None
                                    else (soonest_end - now).total_seconds())
        self.signing_blocked.set(1 if any_blocked else 0)

    def set_unit(self, organ_id: str, *, pending: Mapping[str, int], last_poll: float | None,
                 paused: bool) -> None:
        """The per-unit gauges, from the daemon's periodic refresh."""
        for direction in DIRECTIONS:
            self.unit_pending.labels(agency=organ_id, direction=direction).set(
                pending.get(direction, 0))
        self.unit_last_poll.labels(agency=organ_id).set(last_poll or 0)
        self.unit_paused.labels(agency=organ_id).set(1 if paused else 0)

    def record_unit_error(self, organ_id: str, direction: str) -> None:
        self.unit_errors.labels(agency=organ_id,
                                direction=_check(direction, DIRECTIONS, "direction")).inc()

    def forget_unit(self, organ_id: str) -> None:
        """A unit removed by a reload: its series go (a dashboard must not show it forever)."""
        for gauge, labels in ((self.unit_last_poll, (organ_id,)), (self.unit_paused, (organ_id,)),
                              (self.certificate_days_left, (organ_id,))):
            try:
                gauge.remove(*labels)
            except KeyError:
                pass
        for direction in DIRECTIONS:
            for metric in (self.unit_pending, self.unit_errors):
                try:
                    metric.remove(organ_id, direction)
                except KeyError:
                    pass

    def set_signing_paused(self, reason: str | None) -> None:
        """Which reason (if any) keeps a valid key from signing now."""
        if reason is not None:
            _check(reason, SIGNING_PAUSE_REASONS, "signing pause reason")
        for known in SIGNING_PAUSE_REASONS:
            self.signing_paused.labels(reason=known).set(1 if known == reason else 0)

    def set_signing_blocked(self, blocked: bool) -> None:
        self.signing_blocked.set(1 if blocked else 0)

    def set_last_successful_poll(self, unix_time: float) -> None:
        self.last_successful_poll.set(unix_time)

    def set_journal_size(self, size_bytes: int) -> None:
        self.journal_size.set(size_bytes)

    def set_readiness(self, ready: bool, checks: Mapping[str, bool]) -> None:
        self.ready.set(1 if ready else 0)
        for name, ok in checks.items():
            self.readiness_check.labels(check=name).set(1 if ok else 0)

    def exposition(self) -> bytes:
        """The text format that ``/metrics`` serves."""
        return generate_latest(self.registry)


def axis_operation_of(url: str) -> str:
    """The API operation a request URL names (``.../getEdoc`` → ``getEdoc``); anything else
    (a simulator admin path, a proxy's own page) is ``other``."""
    path = urlsplit(url).path.rstrip("/")
    name = path.rsplit("/", 1)[-1]
    return name if name in AXIS_OPERATIONS else "other"


def sqlite_journal_size(database_path: str | os.PathLike) -> int:
    """Bytes on disk of an SQLite journal: the file plus its ``-wal`` and ``-shm`` companions
    (in WAL mode the WAL can hold most of the recent data). Missing files count as 0."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += os.stat(f"{os.fspath(database_path)}{suffix}").st_size
        except FileNotFoundError:
            pass
    return total
