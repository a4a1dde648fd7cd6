"""``edxml-connector run``: the pipelines on their schedules, signals, readiness, health, metrics.

Threads and why:
- **main**: waits for signals; beats the liveness clock and systemd's watchdog once a second
  (a stuck main loop gets the service restarted); applies SIGHUP reloads.
- **outbound loop**: woken by the folder watcher (inotify, low latency), by a finished send (a
  free slot), by the DMS-database poll and retry sweep schedules, and at least every
  ``schedules.retry_sweep_seconds``; it takes new items and hands due ones to the bounded send
  pool (``outbound.concurrency`` threads). A loop with an event rather than a scheduler job,
  because a wake-up must never be lost while a turn is running.
- **APScheduler** (BackgroundScheduler): the inbound poll (``schedules.axis_poll_seconds``),
  the DMS-database poll, the retry sweep, the agency-list refresh, retention, the daily
  certificate check and the metrics/STATUS refresh — each job at most one instance at a time.

Stopping (SIGTERM/SIGINT): stop taking work, let the sends in flight finish for a few seconds,
then abandon what is left (items stay ``sending`` and go again at the next start — the journal
makes every step safe to repeat), close, exit 0 — within 10 s.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import threading
import time
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from connector.config import Settings, load_config
from connector.errors import CertificateError, SignerUnavailable, describe_error
from connector.journal import KV_CERTIFICATE_COVERAGE, unit_key
from connector.logs import configure_logging, get_logger, set_level
from connector.pipeline.inbound import Inbound
from connector.pipeline.outbound import Outbound, report_signer_unavailable
from connector.pipeline.retention import run_retention
from connector.service import sdnotify
from connector.service.health import (
    HealthMonitor,
    HealthServer,
    HealthSettings,
    certificate_status,
    clock_skew_from_date,
    start_health_server,
)
from connector.service.metrics import Metrics
from connector.service.runtime import Runtime
from connector.service.sdnotify import watchdog_interval, watchdog_ping_interval

log = get_logger(__name__)

STOP_BUDGET_SECONDS = 9.0
SEND_GRACE_SECONDS = 5.0
METRICS_REFRESH_SECONDS = 5.0


class Daemon:
    """One running connector. ``run()`` blocks until stopped and returns the exit code."""

    def __init__(self, settings: Settings, *, runtime: Any = None, install_signals: bool = True,
                 configure_logs: bool = True, folder_instance: str | None = None) -> None:
        self.settings = settings
        self.runtime = runtime or Runtime(settings, folder_instance=folder_instance)
        self.install_signals = install_signals
        self.configure_logs = configure_logs
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.ready_event = threading.Event()
        self._db_due = threading.Event()
        self._health_settings = HealthSettings.from_config(
            settings.health, float(settings.certificate.expiry_warning_days))
        exchange = settings.exchange
        disk_paths = [settings.state_dir]
        if exchange is not None and exchange.enabled:
            disk_paths.append(exchange.root)
        self.metrics = Metrics(agency=settings.agency.organ_id)
        self.health = HealthMonitor(self._health_settings, self.metrics, disk_paths=disk_paths,
                                    poll_interval_seconds=settings.schedules.axis_poll_seconds)
        self._notifier = sdnotify.Notifier()
        # Made by _start(), which opens the journal first; the loops run only after it.
        self._pipelines: tuple[Outbound, Inbound] | None = None
        self._health_server: HealthServer | None = None
        self._watcher: Any = None
        self._scheduler: BackgroundScheduler | None = None
        self._outbound_thread: threading.Thread | None = None
        self._counts: dict | None = None
        # Watchdog: when each worker loop last proved it is turning (monotonic seconds), and
        # when the outbound loop started its current turn (None: waiting, which is not stuck).
        self._outbound_busy_since: float | None = None
        self._last_refresh = time.monotonic()
        self._withholding: list[str] = []
        self._signing_blocked_logged = False
        self._signing_blocked = False
        self._active_fingerprint: str | None = None

    # ============================================================================ life cycle
    def run(self) -> int:
        if self.configure_logs:
            logging_config = self.settings.logging
            configure_logging(logging_config.level.value, json_lines=logging_config.json_lines,
                              file=logging_config.file,
                              file_max_bytes=logging_config.file_max_mb * 1024 * 1024,
                              file_backup_count=logging_config.file_backups,
                              secrets=self.settings.secret_values())
        for warning in self.settings.warnings:
            log.warning("config_warning", detail=warning)
        if self.install_signals:
            self._install_signals()
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self._close_quietly()
            raise
        log.info("daemon_started", organ_id=self.settings.agency.organ_id,
                 duration_ms=round((time.monotonic() - started) * 1000, 1),
                 sides=sorted(self.runtime.sides))
        self._main_loop()
        return self._stop()

    def request_stop(self) -> None:
        self.stop_event.set()

    def _install_signals(self) -> None:
        def stop(signum: int, frame: Any) -> None:
            log.info("daemon_stopping", signal=signal.Signals(signum).name)
            self.stop_event.set()

        def reload(signum: int, frame: Any) -> None:
            self.reload_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _start(self) -> None:
        settings = self.settings
        runtime = self._open_runtime()
        self._load_certificate()
        self._check_journal()
        self._hook_axis_responses()
        # Items found in `sending` were interrupted by a crash: send them again (at-least-once).
        # The journal only recovers this instance's items, so this is safe on a shared journal.
        recovered = runtime.journal.outgoing.recover_interrupted()
        if recovered:
            log.warning("outgoing_recovered", items=recovered,
                        note="found in sending after a restart; sent again (at-least-once)")
        try:
            runtime.directory.refresh()
        except Exception as error:
            log.warning("agency_list_unavailable", error=describe_error(error),
                        note="recipients are checked by the axis until the list loads")
        outbound = Outbound(runtime, metrics=self.metrics, health=self.health)
        inbound = Inbound(runtime, outbound, metrics=self.metrics, health=self.health)
        self._pipelines = (outbound, inbound)
        self._health_server = start_health_server(self._health_settings, self.health, self.metrics)
        self._outbound_thread = threading.Thread(target=self._outbound_loop, name="outbound",
                                                 daemon=True)
        self._outbound_thread.start()
        exchange = settings.exchange
        if runtime.folder is not None and exchange is not None and exchange.watch:
            self._watcher = runtime.folder.watcher(outbound.wake.set,
                                                   rescan_seconds=exchange.rescan_seconds)
            self._watcher.start()
        self._scheduler = self._schedule()
        self._refresh_status()
        self._notifier.ready(self._status_text())
        self.ready_event.set()

    @property
    def outbound(self) -> Outbound:
        return self._started()[0]

    @property
    def inbound(self) -> Inbound:
        return self._started()[1]

    def _started(self) -> tuple[Outbound, Inbound]:
        if self._pipelines is None:
            raise RuntimeError("the daemon's pipelines are used before it started")
        return self._pipelines

    def _schedule(self) -> BackgroundScheduler:
        schedules = self.settings.schedules
        scheduler = BackgroundScheduler(timezone=dt.timezone.utc,
                                        job_defaults={"coalesce": True, "max_instances": 1,
                                                      "misfire_grace_time": None})
        now = dt.datetime.now(dt.timezone.utc)

        def every(function, seconds: float, name: str, *, first: dt.datetime | None = None):
            scheduler.add_job(self._guarded(function, name), "interval", seconds=seconds,
                              id=name, name=name, next_run_time=first or now + dt.timedelta(
                                  seconds=seconds))

        every(self._poll_inbound, schedules.axis_poll_seconds, "inbound_poll", first=now)
        if self.runtime.database is not None:
            every(self._database_due, schedules.dms_poll_seconds, "dms_poll", first=now)
        every(self.outbound.wake.set, schedules.retry_sweep_seconds, "retry_sweep")
        every(self.runtime.directory.refresh, self.settings.outbound.agency_list_refresh_seconds,
              "agency_list_refresh")
        every(self._retention, schedules.retention_seconds, "retention",
              first=now + dt.timedelta(seconds=min(60.0, schedules.retention_seconds)))
        every(self.health.check_certificate_expiry, 86_400.0, "certificate_check")
        every(self._refresh_status, METRICS_REFRESH_SECONDS, "metrics_refresh")
        scheduler.start()
        return scheduler

    def _guarded(self, function, name: str):
        """Run a job, log its failure as one line, never let it kill the scheduler."""
        def job() -> None:
            if self.stop_event.is_set():
                return
            started = time.monotonic()
            try:
                function()
            except Exception as error:
                log.error("job_failed", job=name, error=describe_error(error),
                          duration_ms=round((time.monotonic() - started) * 1000, 1))
        return job

    # ============================================================================ the loops
    def _main_loop(self) -> None:
        interval = min(1.0, watchdog_ping_interval() or 1.0)
        while not self.stop_event.wait(interval):
            stuck = self._stuck_loops()
            if stuck:
                self._withhold_watchdog(stuck)
            else:
                if self._withholding:
                    log.info("watchdog_resumed", loops=self._withholding)
                    self._withholding = []
                self.health.beat()
                self._notifier.watchdog()
            if self.reload_event.is_set():
                self.reload_event.clear()
                self._reload()

    def _stuck_limit(self) -> float:
        """How long a worker loop may go without turning before the watchdog is withheld:
        systemd's own limit (WATCHDOG_USEC) when it watches us, else two minutes."""
        return watchdog_interval() or 120.0

    def _stuck_loops(self) -> list[str]:
        """The worker loops that stopped turning. The main loop pinging on its own would prove
        nothing: a send pool wedged on a lock, or a scheduler whose jobs never return, must
        get the service restarted too, so WATCHDOG=1 (and /healthz) vouch for all of them."""
        now = time.monotonic()
        limit = self._stuck_limit()
        stuck = []
        busy_since = self._outbound_busy_since
        if busy_since is not None and now - busy_since > limit:
            stuck.append("outbound")
        if now - self._last_refresh > max(limit, 3 * METRICS_REFRESH_SECONDS):
            stuck.append("scheduler")
        return stuck

    def _withhold_watchdog(self, stuck: list[str]) -> None:
        if stuck != self._withholding:
            log.error("watchdog_withheld", loops=stuck,
                      note="a worker loop stopped turning; systemd restarts the service when "
                           "WatchdogSec passes without a ping")
            _flush()
            self._withholding = stuck

    def _outbound_loop(self) -> None:
        outbound = self.outbound
        folder = self.runtime.folder
        database = self.runtime.database
        sweep = self.settings.schedules.retry_sweep_seconds
        while not self.stop_event.is_set():
            sides = [folder] if folder is not None else []
            if database is not None and self._db_due.is_set():
                self._db_due.clear()
                sides.append(database)
            self._outbound_busy_since = time.monotonic()
            try:
                outbound.cycle(sides)
            except Exception as error:
                log.error("outbound_cycle_failed", error=describe_error(error))
            finally:
                self._outbound_busy_since = None
            outbound.wake.wait(sweep)
            outbound.wake.clear()

    def _poll_inbound(self) -> None:
        started = time.monotonic()
        counts = self.inbound.poll()
        if counts["listed"]:
            log.info("inbound_polled", **counts,
                     duration_ms=round((time.monotonic() - started) * 1000, 1))

    def _database_due(self) -> None:
        self._db_due.set()
        self.outbound.wake.set()

    def _retention(self) -> None:
        run_retention(self.runtime)

    # ============================================================================ health
    def _check_journal(self) -> None:
        journal = self.runtime.journal
        try:
            journal.kv_set("daemon.started_at", dt.datetime.now(dt.timezone.utc).isoformat())
            self.health.set_journal(True, size_bytes=journal.size_bytes())
        except Exception as error:
            self.health.set_journal(False, describe_error(error))
            raise

    def _open_runtime(self):
        """Open every part of the runtime now, so that a bad journal URL, exchange tree, DMS
        database or an unreadable certificate stops the start with one clear error — except a
        token that is absent or refuses the PIN (see :meth:`_load_certificate`)."""
        try:
            return self.runtime.open_all()
        except SignerUnavailable:
            return self.runtime.open_all(signing_key=False)

    def _load_certificate(self) -> None:
        """Load the keys before READY=1. A certificate that cannot be read (missing file, wrong
        password, key mismatch) stops the start (exit 2, one line). One that is merely expired
        (or not yet valid) does not, nor a token that is absent or refuses the PIN: receiving
        goes on, the documents wait in the journal, ``/readyz`` says why and the
        ``edxml_connector_signing_blocked`` / ``_signing_paused`` metrics are 1 — so monitoring
        shows the real cause instead of a service that restarts forever. A token that comes
        back resumes signing by itself; ``systemctl reload`` after a renewal or a PIN fix."""
        try:
            ring = self.runtime.keyring
        except SignerUnavailable as error:
            self._signer_unavailable(error)
            return
        self._show_keyring(ring)
        try:
            ring.active()
        except CertificateError as error:
            log.error("certificate_unusable_at_start", error=error.one_line(),
                      note="the daemon runs without signing until a renewed certificate is "
                           "installed and the service reloaded")
            self._signing_blocked_logged = True

    def _show_keyring(self, ring) -> None:
        """Tell readiness and the metrics about the keys: the one signing now, and how long
        some key can sign (a next certificate that takes over in time extends it)."""
        entry = ring.preferred()
        self._active_fingerprint = entry.key.fingerprint
        coverage_end = ring.coverage_end()
        self.health.set_certificate(entry.key.not_before, coverage_end, ring.describe())
        self.runtime.journal.set_time(unit_key(KV_CERTIFICATE_COVERAGE, self.settings.agency.organ_id),
                                      coverage_end)

    def _signer_unavailable(self, error: SignerUnavailable) -> None:
        report_signer_unavailable(self.health, error)

    def _watch_signer(self) -> None:
        """While a token is absent, ask it every refresh whether it is back (one small
        signature), so that signing resumes by itself — never when it refused the PIN, which
        is not presented again until a reload."""
        state = self.health.state()
        if state.signer_reason != SignerUnavailable.reason:
            return
        try:
            self.runtime.probe_signer()
        except SignerUnavailable as error:
            self._signer_unavailable(error)
            return
        except CertificateError:
            pass  # readable now but out of its dates: the certificate check says so
        self._show_keyring(self.runtime.keyring)
        if self.health.set_signer_problem(None):
            log.info("signing_resumed", note="the token answers again")
        if self._pipelines is not None:
            self.outbound.resume()

    def _hook_axis_responses(self) -> None:
        """Every axis response's HTTP Date tells readiness how far our clock is off; every
        request feeds the latency histogram (timed at the transport, see Metrics)."""

        def on_response(response, *args, **kwargs):
            self._observe_axis_date(response.headers.get("Date"))
            return response

        session = getattr(self.runtime.axis, "session", None)
        if session is not None:
            session.hooks.setdefault("response", []).append(on_response)
            self.metrics.instrument_session(session)

    def _observe_axis_date(self, date: str | None) -> None:
        if date:
            skew = clock_skew_from_date(date, time.time())
            if skew is not None:
                self.health.update(clock_skew_seconds=skew)

    def _refresh_status(self) -> None:
        """Every few seconds: item counts, oldest pending ages, journal size, certificate
        standing -> metrics and systemd STATUS=. Also the scheduler's proof of life."""
        journal = self.runtime.journal
        try:
            counts = journal.counts_by_state()
            self.metrics.set_item_counts({(direction, state): count
                                          for direction, states in counts.items()
                                          for state, count in states.items()})
            outgoing_age, incoming_age = _oldest_pending(journal)
            self.metrics.set_oldest_pending_age("outgoing", outgoing_age)
            self.metrics.set_oldest_pending_age("incoming", incoming_age)
            self.health.set_journal(True, size_bytes=journal.size_bytes())
        except Exception as error:
            self.health.set_journal(False, describe_error(error))
            raise
        finally:
            self._last_refresh = time.monotonic()
        self._counts = counts
        self._watch_signer()
        self._watch_certificate()
        self._notifier.status(self._status_text())

    def _watch_certificate(self) -> None:
        """The moment the certificate expires, say so loudly once (the daily check repeats it)
        and keep the metrics exact without waiting for a scrape. When the ring switches to the
        next certificate (its moment came), say so and show the new one."""
        ring = self.runtime.loaded_keyring
        if ring is not None and ring.preferred().key.fingerprint != self._active_fingerprint:
            previous = self._active_fingerprint
            self._show_keyring(ring)
            log.info("certificate_switched", subject=ring.preferred().key.subject,
                     fingerprint=self._active_fingerprint, previous=previous)
        state = self.health.state()
        now = dt.datetime.now(dt.timezone.utc)
        status = certificate_status(state.certificate_not_before, state.certificate_not_after,
                                    now, self.health.settings.certificate_warning_days,
                                    state.certificate_subject)
        self.metrics.set_certificate_expiry(state.certificate_not_after, now)
        self.metrics.set_signing_blocked(not status.can_sign)
        self._signing_blocked = not status.can_sign
        if status.can_sign:
            self._signing_blocked_logged = False
        elif not self._signing_blocked_logged:
            self._signing_blocked_logged = True
            self.health.check_certificate_expiry()  # logs certificate_unusable (error)

    def _status_text(self) -> str:
        counts = self._counts or {"outgoing": {}, "incoming": {}}
        out, inc = counts["outgoing"], counts["incoming"]
        pending = sum(out.get(state, 0) for state in ("queued", "packaged", "sending"))
        text = (f"outgoing: {pending} pending, {out.get('sent', 0)} sent, "
                f"{out.get('failed', 0)} failed; incoming: {inc.get('delivered', 0)} delivered, "
                f"{inc.get('quarantined', 0)} quarantined")
        if self._pipelines is not None and self.outbound.paused:
            text += f"; sending paused ({self.outbound.paused_reason or 'axis refused our credentials'})"
        if self._signing_blocked:
            text += "; SIGNING STOPPED (certificate expired: renew and reload)"
        return text

    def _reload(self) -> None:
        """SIGHUP: the config file read again for the certificate section (keys, renewals,
        passwords and PIN), the trust store (bundle, CRL folder, signer mapping) and the log
        level. A file that no longer loads keeps everything as it was, and says why."""
        self._notifier.reloading()
        fresh = None
        if self.settings.source is not None:
            try:
                fresh = load_config(self.settings.source)
            except Exception as error:
                log.error("config_reload_failed", error=describe_error(error),
                          note="the running configuration stays in use")
        try:
            ring = self.runtime.reload_certificate(fresh.certificate if fresh is not None else None)
            self._show_keyring(ring)
            self.health.set_signer_problem(None)
            if self._pipelines is not None:
                self.outbound.resume()
            key = ring.preferred().key
            log.info("certificate_reloaded", subject=key.subject, days_left=key.days_left,
                     fingerprint=key.fingerprint, certificates=ring.describe(),
                     signing_until=ring.coverage_end().isoformat())
        except SignerUnavailable as error:
            self._signer_unavailable(error)
            log.error("certificate_reload_failed", error=error.one_line())
        except Exception as error:
            log.error("certificate_reload_failed", error=describe_error(error),
                      note="the previous certificate stays in use")
        try:
            store = self.runtime.reload_trust()
            log.info("trust_reloaded", **(store.summary() if store is not None else {"bundle": None}))
        except Exception as error:
            log.error("trust_reload_failed", error=describe_error(error),
                      note="the previous trust bundle, CRLs and signer mapping stay in use")
        if fresh is not None:
            set_level(fresh.logging.level.value)
            log.info("log_level_reloaded", log_level=fresh.logging.level.value)
        self._notifier.ready(self._status_text())

    # ============================================================================ stopping
    def _stop(self) -> int:
        deadline = time.monotonic() + STOP_BUDGET_SECONDS
        self._notifier.stopping("stopping: finishing the sends in flight")
        if self._watcher is not None:
            self._watcher.stop(timeout=1.0)
        if self._pipelines is not None:
            self.inbound.stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        clean = True
        if self._pipelines is not None:
            self.outbound.wake.set()
            clean = self.outbound.shutdown(SEND_GRACE_SECONDS)
        if self._outbound_thread is not None:
            self._outbound_thread.join(max(0.0, deadline - time.monotonic() - 2.0))
        if self._health_server is not None:
            self._health_server.stop()
        busy = self._busy_threads(deadline - 1.5)
        if busy:
            log.warning("daemon_abandoning", threads=busy,
                        note="their steps are repeated safely at the next start")
            _flush()
            os._exit(0)  # noqa: SLF001 - a blocked HTTP call must not hold the stop past 10 s
        self._close_quietly()
        log.info("daemon_stopped", clean=clean)
        return 0

    def _busy_threads(self, until: float) -> list[str]:
        """Non-daemon threads still running (a poll or a send blocked on the network), after
        waiting for them until ``until``."""
        # The process's main thread is never ours to wait for (it is the caller when run from
        # the command line, and a test runner when a test runs the daemon in a thread).
        mine = (threading.current_thread(), threading.main_thread())
        while True:
            busy = [thread for thread in threading.enumerate()
                    if thread not in mine and not thread.daemon and thread.is_alive()]
            if not busy or time.monotonic() >= until:
                return [thread.name for thread in busy]
            busy[0].join(min(0.1, max(0.0, until - time.monotonic())))

    def _close_quietly(self) -> None:
        try:
            self.runtime.close()
        except Exception as error:
            log.warning("close_failed", error=describe_error(error))


def _oldest_pending(journal) -> tuple[float | None, float | None]:
    """Seconds since the oldest outgoing item not yet done (queued/packaged/sending) and the
    oldest received item stored but not yet acknowledged or delivered; None when none."""
    now = dt.datetime.now(dt.timezone.utc)
    outgoing = journal.outgoing.list_outgoing(("queued", "packaged", "sending"), limit=1,
                                     newest_first=False)
    incoming = journal.incoming.pending_incoming()

    def age(records) -> float | None:
        if not records:
            return None
        created = records[0].created_at
        if created.tzinfo is None:
            created = created.replace(tzinfo=dt.timezone.utc)
        return max(0.0, (now - created).total_seconds())

    return age(outgoing), age(incoming)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass

