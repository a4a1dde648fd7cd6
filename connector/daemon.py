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

from connector.config import Settings, load_config
from connector.logs import configure_logging, get_logger, set_level

log = get_logger(__name__)

STOP_BUDGET_SECONDS = 9.0
SEND_GRACE_SECONDS = 5.0
METRICS_REFRESH_SECONDS = 5.0


class Daemon:
    """One running connector. ``run()`` blocks until stopped and returns the exit code."""

    def __init__(self, settings: Settings, *, runtime: Any = None, install_signals: bool = True,
                 configure_logs: bool = True, folder_instance: str | None = None) -> None:
        from connector.runtime import Runtime

        self.settings = settings
        self.runtime = runtime or Runtime(settings, folder_instance=folder_instance)
        self.install_signals = install_signals
        self.configure_logs = configure_logs
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.ready_event = threading.Event()
        self._db_due = threading.Event()
        self.outbound = None
        self.inbound = None
        self.metrics = None
        self.health = None
        self._health_server = None
        self._watcher = None
        self._scheduler = None
        self._outbound_thread: threading.Thread | None = None
        self._notifier = None

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
        from connector import sdnotify
        from connector.health import HealthMonitor, start_health_server
        from connector.inbound import Inbound
        from connector.metrics import Metrics
        from connector.outbound import Outbound

        settings = self.settings
        runtime = self.runtime.open_all()
        self._notifier = sdnotify.Notifier()
        self.metrics = Metrics()
        disk_paths = [settings.state_dir]
        if runtime.folder is not None:
            disk_paths.append(settings.exchange.root)
        self.health = HealthMonitor(
            settings.health.runtime(float(settings.certificate.expiry_warning_days)),
            self.metrics, disk_paths=disk_paths,
            poll_interval_seconds=settings.schedules.axis_poll_seconds)
        key = runtime.signing_key
        self.health.set_certificate(key.not_before, key.not_after, key.subject)
        self._check_journal()
        self._hook_axis_responses()
        if runtime.journal.dialect == "sqlite":
            recovered = runtime.journal.recover_interrupted()
            if recovered:
                log.warning("outgoing_recovered", items=recovered,
                            note="found in sending after a restart; sent again (at-least-once)")
        try:
            runtime.directory.refresh()
        except Exception as error:
            log.warning("agency_list_unavailable", error=_describe(error),
                        note="recipients are checked by the axis until the list loads")
        self.outbound = Outbound(runtime, metrics=self.metrics, health=self.health)
        self.inbound = Inbound(runtime, self.outbound, metrics=self.metrics, health=self.health)
        self._health_server = start_health_server(
            settings.health.runtime(float(settings.certificate.expiry_warning_days)),
            self.health, self.metrics)
        self._outbound_thread = threading.Thread(target=self._outbound_loop, name="outbound",
                                                 daemon=True)
        self._outbound_thread.start()
        exchange = settings.exchange
        if runtime.folder is not None and exchange.watch:
            self._watcher = runtime.folder.watcher(self.outbound.wake.set,
                                                   rescan_seconds=exchange.rescan_seconds)
            self._watcher.start()
        self._scheduler = self._schedule()
        self._refresh_status()
        self._notifier.ready(self._status_text())
        self.ready_event.set()

    def _schedule(self):
        from apscheduler.schedulers.background import BackgroundScheduler

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
                log.error("job_failed", job=name, error=_describe(error),
                          duration_ms=round((time.monotonic() - started) * 1000, 1))
        return job

    # ============================================================================ the loops
    def _main_loop(self) -> None:
        from connector.sdnotify import watchdog_ping_interval

        interval = min(1.0, watchdog_ping_interval() or 1.0)
        while not self.stop_event.wait(interval):
            self.health.beat()
            self._notifier.watchdog()
            if self.reload_event.is_set():
                self.reload_event.clear()
                self._reload()

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
            try:
                outbound.cycle(sides)
            except Exception as error:
                log.error("outbound_cycle_failed", error=_describe(error))
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
        from connector.retention import run_retention

        run_retention(self.runtime)

    # ============================================================================ health
    def _check_journal(self) -> None:
        journal = self.runtime.journal
        try:
            journal.kv_set("daemon.started_at", dt.datetime.now(dt.timezone.utc).isoformat())
            self.health.set_journal(True, size_bytes=journal.size_bytes())
        except Exception as error:
            self.health.set_journal(False, _describe(error))
            raise

    def _hook_axis_responses(self) -> None:
        """Every axis response's HTTP Date tells readiness how far our clock is off."""
        from connector.health import clock_skew_from_date

        health = self.health

        def on_response(response, *args, **kwargs):
            date = response.headers.get("Date")
            if date:
                skew = clock_skew_from_date(date, time.time())
                if skew is not None:
                    health.update(clock_skew_seconds=skew)
            return response

        session = getattr(self.runtime.axis, "session", None)
        if session is not None:
            session.hooks.setdefault("response", []).append(on_response)

    def _refresh_status(self) -> None:
        journal = self.runtime.journal
        try:
            counts = journal.counts_by_state()
            self.metrics.set_item_counts({(direction, state): count
                                          for direction, states in counts.items()
                                          for state, count in states.items()})
            age = journal.oldest_pending_age()
            self.metrics.set_oldest_pending_age("outgoing", age.total_seconds() if age else None)
            self.health.set_journal(True, size_bytes=journal.size_bytes())
        except Exception as error:
            self.health.set_journal(False, _describe(error))
            raise
        self._counts = counts
        if self._notifier is not None:
            self._notifier.status(self._status_text())

    def _status_text(self) -> str:
        counts = getattr(self, "_counts", None) or {"outgoing": {}, "incoming": {}}
        out, inc = counts["outgoing"], counts["incoming"]
        pending = sum(out.get(state, 0) for state in ("queued", "packaged", "sending"))
        text = (f"outgoing: {pending} pending, {out.get('sent', 0)} sent, "
                f"{out.get('failed', 0)} failed; incoming: {inc.get('delivered', 0)} delivered, "
                f"{inc.get('quarantined', 0)} quarantined")
        if self.outbound is not None and self.outbound.paused:
            text += "; sending paused (axis refused our credentials)"
        return text

    def _reload(self) -> None:
        """SIGHUP: the certificate (after a rotation) and the log level, from the same file."""
        self._notifier.reloading()
        try:
            key = self.runtime.reload_certificate()
            self.health.set_certificate(key.not_before, key.not_after, key.subject)
            log.info("certificate_reloaded", subject=key.subject, days_left=key.days_left)
        except Exception as error:
            log.error("certificate_reload_failed", error=_describe(error),
                      note="the previous certificate stays in use")
        if self.settings.source is not None:
            try:
                fresh = load_config(self.settings.source)
                set_level(fresh.logging.level.value)
                log.info("log_level_reloaded", level=fresh.logging.level.value)
            except Exception as error:
                log.error("config_reload_failed", error=_describe(error))
        self._notifier.ready(self._status_text())

    # ============================================================================ stopping
    def _stop(self) -> int:
        deadline = time.monotonic() + STOP_BUDGET_SECONDS
        if self._notifier is not None:
            self._notifier.stopping("stopping: finishing the sends in flight")
        if self._watcher is not None:
            self._watcher.stop(timeout=1.0)
        if self.inbound is not None:
            self.inbound.stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        clean = True
        if self.outbound is not None:
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
        current = threading.current_thread()
        while True:
            busy = [thread for thread in threading.enumerate()
                    if thread is not current and not thread.daemon and thread.is_alive()]
            if not busy or time.monotonic() >= until:
                return [thread.name for thread in busy]
            busy[0].join(min(0.1, max(0.0, until - time.monotonic())))

    def _close_quietly(self) -> None:
        try:
            self.runtime.close()
        except Exception as error:
            log.warning("close_failed", error=_describe(error))


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def _describe(error: BaseException) -> str:
    from connector.outbound import _describe as describe

    return describe(error)
