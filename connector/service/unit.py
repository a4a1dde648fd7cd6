"""One unit of the hub: its live objects, its two pipelines, and what can pause it alone.

WHY a unit is its own object: on the axis each unit of a province or ministry is an agency of
its own (OrganId, credentials, certificate, folders). Whatever is wrong with one unit — its
secret refused, its certificate expired or missing, its folder unwritable, its DMS rows bad —
must stop that unit only, say so where an operator looks (``units``, the log, a metric,
``/readyz``), and leave the other units' work untouched. The daemon (service/daemon.py) holds
the parts every unit shares — the journal, the scheduler, the send threads, the health
listener — and turns each unit through the same steps; a single-agency file is a hub of one.

Polling is the unit's own too (:meth:`Unit.poll_due`): a unit that received something within
``schedules.active_window_seconds`` is listed every ``axis_poll_seconds``; an idle one is asked
with the axis's count calls every ``idle_poll_seconds``, first at its place in a staggered round.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from connector.config import Settings
from connector.errors import CertificateError, SignerUnavailable, describe_error
from connector.journal import KV_CERTIFICATE_COVERAGE, KV_UNIT_PAUSED, unit_key
from connector.logs import get_logger
from connector.pipeline.inbound import Inbound
from connector.pipeline.outbound import Outbound, report_signer_unavailable
from connector.service.health import HealthMonitor, certificate_status
from connector.service.runtime import Runtime

log = get_logger(__name__)


class UnitWake:
    """A unit's "look at me" flag, and the hub's one event the outbound loop waits on: the loop
    turns only for the units that were woken (their outbox changed, a send finished, an item
    became due), not for all of them at every wake-up."""

    def __init__(self, hub: threading.Event) -> None:
        self._flag = threading.Event()
        self._hub = hub

    def set(self) -> None:
        self._flag.set()
        self._hub.set()

    def is_set(self) -> bool:
        return self._flag.is_set()

    def clear(self) -> None:
        self._flag.clear()

    def take(self) -> bool:
        """Whether it was woken, clearing the flag (the turn that follows sees any new wake)."""
        woken = self._flag.is_set()
        self._flag.clear()
        return woken


class Unit:
    """One agency the daemon serves. ``open()`` builds its parts; a failure leaves the unit
    paused with the reason (:attr:`paused_reason`) and raises for the daemon to decide."""

    def __init__(self, settings: Settings, runtime: Runtime, *, health: HealthMonitor,
                 metrics: Any, executor: Any, wake: threading.Event, place: float = 0.0) -> None:
        self.settings = settings
        self.organ_id = settings.agency.organ_id
        self.runtime = runtime
        self.health = health
        self.metrics = metrics
        self._executor = executor
        self.wake = UnitWake(wake)
        self.outbound: Outbound | None = None
        self.inbound: Inbound | None = None
        self.paused_reason: str | None = None
        self.problem: str | None = None  # why its work fails now (its last poll), or None
        self.db_due = threading.Event()
        self.polling = False  # a poll of this unit is under way (never two at once)
        schedules = settings.schedules
        self.active_interval = float(schedules.axis_poll_seconds)
        self.idle_interval = float(schedules.idle_poll_seconds or schedules.axis_poll_seconds)
        self.active_window = float(schedules.active_window_seconds)
        # monotonic: when a poll last found something, or the unit last sent (its statuses are
        # then on their way: an active unit is listed often)
        self.last_received: float | None = None
        self.place = place
        self.plan_first_poll()
        self._active_fingerprint: str | None = None
        self._signing_blocked_logged = False
        self.signing_blocked = False

    def plan_first_poll(self, last_received: dt.datetime | None = None) -> None:
        """The first poll at this unit's place in the round (0 <= place < 1) of its interval,
        so that a hub's units ask the axis evenly spread, never all in the same second; a unit
        that received something within the active window before a restart counts as active."""
        now = time.monotonic()
        if last_received is not None:
            age = (dt.datetime.now(dt.timezone.utc) - last_received).total_seconds()
            if age < self.active_window:
                self.last_received = now - max(0.0, age)
        interval = self.active_interval if self.active else self.idle_interval
        self.next_poll = now + self.place * interval

    # ============================================================================ start
    def open(self) -> None:
        """Open every part, load the keys, recover interrupted sends, build the pipelines.
        A token that is absent or refuses the PIN, or a certificate merely out of its dates,
        does not stop the unit: receiving goes on and readiness says why signing waits."""
        try:
            try:
                self.runtime.open_all()
            except SignerUnavailable:
                self.runtime.open_all(signing_key=False)
            self._load_certificate()
            recovered = self.runtime.journal.outgoing.recover_interrupted()
            if recovered:
                log.warning("outgoing_recovered", agency=self.organ_id, items=recovered,
                            note="found in sending after a restart; sent again (at-least-once)")
            self.outbound = Outbound(self.runtime, metrics=self.metrics, health=self.health,
                                     executor=self._executor, wake=self.wake)
            self.inbound = Inbound(self.runtime, self.outbound, metrics=self.metrics,
                                   health=self.health)
        except Exception as error:
            self.pause(describe_error(error))
            raise
        self.pause(None)

    @property
    def working(self) -> bool:
        return self.outbound is not None and self.paused_reason is None

    def pause(self, reason: str | None) -> None:
        """The unit cannot work until a reload (its start failed: ``reason``), or works (None)."""
        self.paused_reason = reason
        self._record_state()

    def note_problem(self, problem: str | None) -> None:
        """Its work fails now (a poll refused: wrong secret, axis unreachable) or works again:
        recorded where ``units`` reads it; the unit goes on trying at its own pace."""
        if problem != self.problem:
            self.problem = problem
            self._record_state()

    def _record_state(self) -> None:
        try:
            self.runtime.journal.kv_set(unit_key(KV_UNIT_PAUSED, self.organ_id),
                                        self.paused_reason or self.problem)
        except Exception as error:  # the journal's own trouble is the hub's, reported there
            log.warning("unit_state_not_recorded", agency=self.organ_id, error=describe_error(error))

    # ============================================================================ the keys
    def _load_certificate(self) -> None:
        try:
            ring = self.runtime.keyring
        except SignerUnavailable as error:
            report_signer_unavailable(self.health, error)
            return
        self.show_keyring(ring)
        try:
            ring.active()
        except CertificateError as error:
            log.error("certificate_unusable_at_start", agency=self.organ_id, error=error.one_line(),
                      note="the unit runs without signing until a renewed certificate is "
                           "installed and the service reloaded")
            self._signing_blocked_logged = True

    def show_keyring(self, ring) -> None:
        """Tell readiness and the journal about the keys: the one signing now, and how long
        some key can sign (a next certificate that takes over in time extends it)."""
        entry = ring.preferred()
        self._active_fingerprint = entry.key.fingerprint
        coverage_end = ring.coverage_end()
        self.health.set_certificate(entry.key.not_before, coverage_end, ring.describe())
        self.runtime.journal.set_time(unit_key(KV_CERTIFICATE_COVERAGE, self.organ_id),
                                      coverage_end)

    def watch_signer(self) -> None:
        """While a token is absent, ask it every refresh whether it is back (one small
        signature), so that signing resumes by itself — never when it refused the PIN."""
        state = self.health.state()
        if state.signer_reason != SignerUnavailable.reason:
            return
        try:
            self.runtime.probe_signer()
        except SignerUnavailable as error:
            report_signer_unavailable(self.health, error)
            return
        except CertificateError:
            pass  # readable now but out of its dates: the certificate check says so
        self.show_keyring(self.runtime.keyring)
        if self.health.set_signer_problem(None):
            log.info("signing_resumed", agency=self.organ_id, note="the token answers again")
        if self.outbound is not None:
            self.outbound.resume()

    def watch_certificate(self) -> None:
        """The moment the certificate expires, say so loudly once; when the ring switches to
        the next certificate (its moment came), say so and show the new one."""
        ring = self.runtime.loaded_keyring
        if ring is not None and ring.preferred().key.fingerprint != self._active_fingerprint:
            previous = self._active_fingerprint
            self.show_keyring(ring)
            log.info("certificate_switched", agency=self.organ_id,
                     subject=ring.preferred().key.subject, fingerprint=self._active_fingerprint,
                     previous=previous)
        state = self.health.state()
        now = dt.datetime.now(dt.timezone.utc)
        status = certificate_status(state.certificate_not_before, state.certificate_not_after,
                                    now, self.health.settings.certificate_warning_days,
                                    state.certificate_subject)
        if self.health.metrics is not None:
            self.health.metrics.set_certificate_expiry(state.certificate_not_after, now)
            self.health.metrics.set_signing_blocked(not status.can_sign)
        elif self.metrics is not None:
            self.metrics.set_unit_certificate(self.organ_id, state.certificate_not_after, now)
        self.signing_blocked = not status.can_sign
        if status.can_sign:
            self._signing_blocked_logged = False
        elif not self._signing_blocked_logged:
            self._signing_blocked_logged = True
            self.health.check_certificate_expiry()  # logs certificate_unusable (error)

    def reload_certificate(self, fresh: Settings | None) -> None:
        """SIGHUP: the keys read again (with the section just read from the file, when given).
        On error the previous keys stay in use, and the log says why."""
        try:
            ring = self.runtime.reload_certificate(fresh.certificate if fresh is not None else None)
            self.show_keyring(ring)
            self.health.set_signer_problem(None)
            if self.outbound is not None:
                self.outbound.resume()
            key = ring.preferred().key
            log.info("certificate_reloaded", agency=self.organ_id, subject=key.subject,
                     days_left=key.days_left, fingerprint=key.fingerprint,
                     certificates=ring.describe(), signing_until=ring.coverage_end().isoformat())
        except SignerUnavailable as error:
            report_signer_unavailable(self.health, error)
            log.error("certificate_reload_failed", agency=self.organ_id, error=error.one_line())
        except Exception as error:
            log.error("certificate_reload_failed", agency=self.organ_id,
                      error=describe_error(error), note="the previous certificate stays in use")

    # ============================================================================ work
    def cycle(self) -> None:
        """One outbound turn: the folder side always, the database side when its poll is due."""
        if self.outbound is None:
            return
        runtime = self.runtime
        sides = [runtime.folder] if runtime.folder is not None else []
        if runtime.database is not None and self.db_due.is_set():
            self.db_due.clear()
            sides.append(runtime.database)
        self.outbound.cycle(sides, when_asked=True)
        if self.outbound.inflight():
            was_idle = not self.active
            self.last_received = time.monotonic()
            if was_idle:  # the statuses of what it sends now come soon: poll it often from now
                self.next_poll = min(self.next_poll, self.last_received + self.active_interval)

    @property
    def active(self) -> bool:
        """Received or sent something within the active window (polled often)."""
        return (self.last_received is not None
                and time.monotonic() - self.last_received < self.active_window)

    def poll_due(self, now: float) -> bool:
        return self.inbound is not None and not self.polling and now >= self.next_poll

    def poll(self) -> dict[str, int]:
        """One poll: listed at once when active, asked with the count calls first when idle.
        The next poll is planned whatever happens (a failing unit waits its interval too)."""
        assert self.inbound is not None
        active = self.active or self.idle_interval <= self.active_interval
        started = time.monotonic()
        try:
            counts = self.inbound.poll(ask_first=not active)
        finally:
            finished = time.monotonic()
            interval = self.active_interval if active else self.idle_interval
            # From the poll's start: the cadence is the interval, whatever the poll took.
            self.next_poll = max(finished, started + interval)
        if counts["listed"]:
            self.last_received = finished
            self.next_poll = max(finished, started + self.active_interval)
            log.info("inbound_polled", **counts,
                     duration_ms=round((finished - started) * 1000, 1))
        return counts

    def state_text(self) -> str:
        if self.paused_reason:
            return f"paused: {self.paused_reason}"
        if self.outbound is not None and self.outbound.paused:
            return f"sending paused: {self.outbound.paused_reason or 'axis refused our credentials'}"
        if self.signing_blocked:
            return "signing stopped (certificate expired: renew and reload)"
        if self.problem:
            return self.problem
        return "active"

    def close(self) -> None:
        self.runtime.close()
