"""``edxml-connector run``: the units on their schedules, signals, readiness, health, metrics.

One daemon serves the units of its configuration (service/unit.py): one for a single-agency
file, hundreds for a hub. Each unit has its own credentials, keys, sides, pipelines and pause;
the threads below are the daemon's, shared by all units, so their number does not grow with
the units (a hub of 500 units: 12 threads).

Threads and why:
- **main**: waits for signals; beats the liveness clock and systemd's watchdog once a second
  (a stuck main loop gets the service restarted); applies SIGHUP reloads (units added,
  removed, restarted; keys and the trust store read again).
- **outbound loop**: one for every unit. A unit is woken by its folder watcher (inotify, low
  latency), by a finished send (a free slot), by the DMS-database poll and by the retry sweep
  (one journal read: the units with items due); each turn gives each woken unit its intake
  and dispatch to the shared send pool (``outbound.concurrency`` slots' threads). A loop with
  events rather than a scheduler job, because a wake-up must never be lost while a turn runs.
- **poll threads** (``schedules.poll_concurrency``): the poll round hands them the units whose
  poll is due (an active unit every ``axis_poll_seconds``, an idle one every
  ``idle_poll_seconds`` with the count calls), spread over the interval.
- **APScheduler** (BackgroundScheduler): the poll round, the DMS-database poll, the retry
  sweep, the agency-list refresh, retention, the daily certificate check and the
  metrics/STATUS refresh — each job at most one instance at a time.
- the folder watchers' one inotify reader and one ticker (dms/folder/watcher.py).

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
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from structlog.contextvars import bound_contextvars

from connector.config import Settings, load_config
from connector.errors import describe_error
from connector.logs import configure_logging, get_logger, set_level
from connector.pipeline.inbound import Inbound
from connector.pipeline.outbound import PIPELINE_THREADS_PER_SLOT, Outbound
from connector.pipeline.retention import run_retention
from connector.service import sdnotify
from connector.service.health import (
    HealthMonitor,
    HealthServer,
    HealthSettings,
    clock_skew_from_date,
    start_health_server,
)
from connector.service.metrics import Metrics
from connector.service.runtime import Runtime
from connector.service.sdnotify import watchdog_interval, watchdog_ping_interval
from connector.service.unit import Unit

log = get_logger(__name__)

STOP_BUDGET_SECONDS = 9.0
SEND_GRACE_SECONDS = 5.0
METRICS_REFRESH_SECONDS = 5.0
PENDING_OUTGOING = ("queued", "packaged", "sending")
PENDING_INCOMING = ("listed", "fetched", "verified", "stored", "acknowledged")
POLL_ROUND_SECONDS = 1.0
"""How often the poll round looks which units are due (each unit has its own interval; a unit
due within half a round is taken in this one, so a 1-s interval is kept)."""
UNIT_REFRESH_SECONDS = 30.0
"""How often each unit's certificate standing and per-unit metrics are refreshed (the
connector-wide figures every METRICS_REFRESH_SECONDS): a hub's 500 units every 5 s cost more
than the rest of an idle hub."""


class Daemon:
    """One running connector serving one unit or many (a hub). ``run()`` blocks until stopped
    and returns the exit code.

    ``runtime`` (tests) replaces the first unit's runtime; the first unit's runtime also holds
    the parts every unit shares (journal engine, package store, trust store, directory)."""

    def __init__(self, settings: Settings, *, runtime: Any = None, install_signals: bool = True,
                 configure_logs: bool = True, folder_instance: str | None = None) -> None:
        self.settings = settings
        self._folder_instance = folder_instance
        self.runtime = runtime or Runtime(settings, folder_instance=folder_instance)
        self.install_signals = install_signals
        self.configure_logs = configure_logs
        self.stop_event = threading.Event()
        self.reload_event = threading.Event()
        self.ready_event = threading.Event()
        self.wake = threading.Event()
        self._health_settings = HealthSettings.from_config(
            settings.health, float(settings.certificate.expiry_warning_days))
        self.metrics = Metrics(agency=settings.agency.organ_id)
        self.health = HealthMonitor(self._health_settings, self.metrics,
                                    disk_paths=self._disk_paths(settings.units),
                                    poll_interval_seconds=settings.schedules.axis_poll_seconds)
        self._notifier = sdnotify.Notifier()
        outbound = settings.outbound
        # One pool of send threads and one of pollers for every unit (bounded, whatever the
        # number of units): a hub of 500 units is one process with a few dozen threads.
        self._send_pool = ThreadPoolExecutor(
            max_workers=PIPELINE_THREADS_PER_SLOT * outbound.concurrency, thread_name_prefix="send")
        self._poll_pool = ThreadPoolExecutor(max_workers=settings.schedules.poll_concurrency,
                                             thread_name_prefix="poll")
        self.units: dict[str, Unit] = {}
        self._units_lock = threading.Lock()
        self._started_once = False
        self._health_server: HealthServer | None = None
        self._watchers: dict[str, Any] = {}
        self._scheduler: BackgroundScheduler | None = None
        self._outbound_thread: threading.Thread | None = None
        self._counts: dict | None = None
        # Watchdog: when the outbound loop started its current turn (None: waiting, which is
        # not stuck), and when the scheduler's refresh last ran.
        self._outbound_busy_since: float | None = None
        self._last_refresh = time.monotonic()
        self._units_refreshed = float("-inf")
        self._withholding: list[str] = []

    # ============================================================================ the units
    @property
    def first(self) -> Unit:
        """The first configured unit (the only one of a single-agency file)."""
        return self._unit(self.settings.agency.organ_id)

    def _unit(self, organ_id: str) -> Unit:
        unit = self.units.get(organ_id)
        if unit is None:
            raise RuntimeError(f"unit {organ_id} is not running")
        return unit

    @property
    def outbound(self) -> Outbound:
        return self._started(self.first.outbound)

    @property
    def inbound(self) -> Inbound:
        return self._started(self.first.inbound)

    @staticmethod
    def _started(pipeline: Any) -> Any:
        if pipeline is None:
            raise RuntimeError("the daemon's pipelines are used before it started")
        return pipeline

    @property
    def is_hub(self) -> bool:
        """More than one unit: a unit's trouble pauses that unit, not the daemon."""
        return len(self.settings.units) > 1

    def _new_unit(self, settings: Settings, place: float) -> Unit:
        first = settings.agency.organ_id == self.settings.agency.organ_id
        runtime = self.runtime if first else Runtime(
            settings, folder_instance=self._folder_instance, hub=self.runtime)
        health = self.health if not self.is_hub else HealthMonitor(
            self._health_settings, None,
            poll_interval_seconds=settings.schedules.idle_poll_seconds
            or settings.schedules.axis_poll_seconds)
        return Unit(settings, runtime, health=health, metrics=self.metrics,
                    executor=self._send_pool, wake=self.wake, place=place)

    def _start_unit(self, unit: Unit) -> None:
        """Open one unit and add it to the running ones. In a hub, a unit that cannot start
        is kept paused with the reason (``units``, the log, a metric, /readyz); the others
        go on. A single unit that cannot start stops the daemon's start, as it always did."""
        try:
            unit.open()
        except Exception as error:
            if not self.is_hub:
                raise
            log.error("unit_paused", agency=unit.organ_id, reason=unit.paused_reason,
                      error=describe_error(error),
                      note="the other units go on; fix it and reload (systemctl reload)")
        self._hook_axis_responses(unit)
        with self._units_lock:
            self.units[unit.organ_id] = unit
        self._watch_folder(unit)
        if unit.outbound is not None:
            unit.outbound.request_dispatch()  # its first turn: what waits in outbox and journal

    def _stop_unit(self, unit: Unit) -> None:
        """A unit removed by a reload: it takes no new work; its sends in flight finish, its
        unfinished items stay in the journal (and go on if the unit comes back)."""
        with self._units_lock:
            self.units.pop(unit.organ_id, None)
        watcher = self._watchers.pop(unit.organ_id, None)
        if watcher is not None:
            watcher.stop(timeout=1.0)
        if unit.inbound is not None:
            unit.inbound.stopping.set()
        if unit.outbound is not None:
            unit.outbound.shutdown(SEND_GRACE_SECONDS)
        if unit.runtime is not self.runtime:
            unit.close()
        self.metrics.forget_unit(unit.organ_id)

    def _watch_folder(self, unit: Unit) -> None:
        exchange = unit.settings.exchange
        folder = unit.runtime.folder if unit.outbound is not None else None
        if folder is not None and exchange is not None and exchange.watch:
            watcher = folder.watcher(unit.wake.set, rescan_seconds=exchange.rescan_seconds)
            watcher.start()
            self._watchers[unit.organ_id] = watcher

    @staticmethod
    def _disk_paths(units: list[Settings]) -> list[Any]:
        """The state directory and the exchange trees' filesystems: a single agency's root; a
        hub's folder holding the units' roots (one unit's missing tree is that unit's trouble,
        not the hub's disk)."""
        paths = [units[0].state_dir]
        for settings in units:
            exchange = settings.exchange
            if exchange is not None and exchange.enabled:
                path = exchange.root if len(units) == 1 else exchange.root.parent
                if path not in paths:
                    paths.append(path)
        return paths

    # ============================================================================ life cycle
    def run(self) -> int:
        if self.configure_logs:
            logging_config = self.settings.logging
            configure_logging(logging_config.level.value, json_lines=logging_config.json_lines,
                              file=logging_config.file,
                              file_max_bytes=logging_config.file_max_mb * 1024 * 1024,
                              file_backup_count=logging_config.file_backups,
                              secrets=_secrets_of(self.settings.units))
        for unit_settings in self.settings.units:
            for warning in unit_settings.warnings:
                log.warning("config_warning", agency=unit_settings.agency.organ_id, detail=warning)
        if self.install_signals:
            self._install_signals()
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self._close_quietly()
            raise
        working = [unit.organ_id for unit in self.units.values() if unit.working]
        log.info("daemon_started", organ_id=self.settings.agency.organ_id,
                 duration_ms=round((time.monotonic() - started) * 1000, 1),
                 sides=sorted(self.runtime.sides), units=len(self.units),
                 units_working=len(working))
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
        self._check_journal()
        units = self.settings.units
        for index, settings in enumerate(units):
            self._start_unit(self._new_unit(settings, index / len(units)))
        recent = self.runtime.journal.incoming.last_received_by_agency()
        for unit in self.units.values():
            unit.plan_first_poll(recent.get(unit.organ_id))
        if self.is_hub:
            self.health.units = self._unit_health
        try:
            self.runtime.directory.refresh()
        except Exception as error:
            log.warning("agency_list_unavailable", error=describe_error(error),
                        note="recipients are checked by the axis until the list loads")
        self._health_server = start_health_server(self._health_settings, self.health, self.metrics)
        self._outbound_thread = threading.Thread(target=self._outbound_loop, name="outbound",
                                                 daemon=True)
        self._outbound_thread.start()
        self._scheduler = self._schedule()
        self._refresh_status()
        self._notifier.ready(self._status_text())
        self.ready_event.set()

    def _unit_health(self) -> dict[str, tuple[Any, str | None]]:
        with self._units_lock:
            units = list(self.units.values())
        return {unit.organ_id: (unit.health.state(), unit.paused_reason) for unit in units}

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

        every(self._poll_round, POLL_ROUND_SECONDS, "inbound_poll", first=now)
        if any(settings.database is not None for settings in self.settings.units):
            every(self._database_due, schedules.dms_poll_seconds, "dms_poll", first=now)
        every(self._retry_sweep, schedules.retry_sweep_seconds, "retry_sweep")
        every(self.runtime.directory.refresh, self.settings.outbound.agency_list_refresh_seconds,
              "agency_list_refresh")
        every(self._retention, schedules.retention_seconds, "retention",
              first=now + dt.timedelta(seconds=min(60.0, schedules.retention_seconds)))
        every(self._check_certificates, 86_400.0, "certificate_check")
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
        """One loop for every unit: each turn gives each working unit its outbound turn
        (intake from its sides, dispatch to the shared send threads)."""
        sweep = self.settings.schedules.retry_sweep_seconds
        while not self.stop_event.is_set():
            self._outbound_busy_since = time.monotonic()
            try:
                for unit in self._working_units():
                    if self.stop_event.is_set():
                        break
                    if not unit.wake.take():
                        continue
                    with bound_contextvars(agency=unit.organ_id):
                        try:
                            unit.cycle()
                        except Exception as error:
                            log.error("outbound_cycle_failed", error=describe_error(error))
            finally:
                self._outbound_busy_since = None
            self.wake.wait(sweep)
            self.wake.clear()

    def _working_units(self) -> list[Unit]:
        with self._units_lock:
            return [unit for unit in self.units.values() if unit.working]

    def _poll_round(self) -> None:
        """Every second: hand the units whose poll is due to the poller threads (bounded
        concurrency); each unit plans its own next poll (active often, idle rarely)."""
        now = time.monotonic() + POLL_ROUND_SECONDS / 2
        for unit in self._working_units():
            if unit.poll_due(now):
                unit.polling = True
                self._poll_pool.submit(self._poll_unit, unit)

    def _poll_unit(self, unit: Unit) -> None:
        with bound_contextvars(agency=unit.organ_id):  # on every line of the poll's work
            try:
                if not self.stop_event.is_set():
                    unit.poll()
                    unit.note_problem(None)
            except Exception as error:
                problem = describe_error(error)
                self.metrics.record_unit_error(unit.organ_id, "incoming")
                log.error("job_failed", job="inbound_poll", error=problem)
                unit.note_problem(f"polling fails: {problem}")
            finally:
                unit.polling = False

    def _database_due(self) -> None:
        for unit in self._working_units():
            unit.db_due.set()
            unit.wake.set()

    def _retry_sweep(self) -> None:
        """Every ``retry_sweep_seconds``: one journal read says which units have items due
        (a retry time come, a stale claim, an item `retry` or `send` queued); those units
        claim, and units with side updates to repeat get their turn."""
        due = self.runtime.journal.outgoing.units_with_due_items()
        for unit in self._working_units():
            assert unit.outbound is not None
            if unit.organ_id in due:
                unit.outbound.request_dispatch()
            elif unit.outbound.side_updates_pending:
                unit.wake.set()

    def _retention(self) -> None:
        run_retention(self.runtime, folders=[unit.runtime.folder for unit in self._working_units()])

    def _check_certificates(self) -> None:
        for unit in self._working_units():
            unit.health.check_certificate_expiry()

    # ============================================================================ health
    def _check_journal(self) -> None:
        journal = self.runtime.journal
        try:
            journal.kv_set("daemon.started_at", dt.datetime.now(dt.timezone.utc).isoformat())
            self.health.set_journal(True, size_bytes=journal.size_bytes())
        except Exception as error:
            self.health.set_journal(False, describe_error(error))
            raise

    def _hook_axis_responses(self, unit: Unit) -> None:
        """Every axis response's HTTP Date tells readiness how far our clock is off; every
        request feeds the latency histogram (timed at the transport, see Metrics)."""

        def on_response(response, *args, **kwargs):
            self._observe_axis_date(response.headers.get("Date"))
            return response

        if "axis" not in unit.runtime.__dict__:  # not opened (a unit that could not start)
            return
        session = getattr(unit.runtime.axis, "session", None)
        if session is not None:
            session.hooks.setdefault("response", []).append(on_response)
            self.metrics.instrument_session(session)

    def _observe_axis_date(self, date: str | None) -> None:
        if date:
            skew = clock_skew_from_date(date, time.time())
            if skew is not None:
                self.health.update(clock_skew_seconds=skew)

    def _refresh_status(self) -> None:
        """Every few seconds: item counts, oldest pending ages, journal size, each unit's
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
        with self._units_lock:
            units = list(self.units.values())
        if time.monotonic() - self._units_refreshed < UNIT_REFRESH_SECONDS and len(units) > 1:
            self._notifier.status(self._status_text())
            return
        self._units_refreshed = time.monotonic()
        by_unit = journal.counts_by_agency()
        for unit in units:
            if unit.outbound is not None:
                unit.watch_signer()
                unit.watch_certificate()
            self._publish_unit(unit, by_unit.get(unit.organ_id))
        if self.is_hub:
            ends = [end for unit in units
                    if (end := unit.health.state().certificate_not_after) is not None]
            self.metrics.set_hub_certificates(min(ends, default=None),
                                              any(unit.signing_blocked for unit in units))
        self._notifier.status(self._status_text())

    def _publish_unit(self, unit: Unit, counts: dict | None) -> None:
        counts = counts or {"outgoing": {}, "incoming": {}}
        pending = {"outgoing": sum(counts["outgoing"].get(s, 0) for s in PENDING_OUTGOING),
                   "incoming": sum(counts["incoming"].get(s, 0) for s in PENDING_INCOMING)}
        self.metrics.set_unit(unit.organ_id, pending=pending,
                              last_poll=unit.health.state().last_successful_poll,
                              paused=unit.state_text() != "active")

    def _status_text(self) -> str:
        counts = self._counts or {"outgoing": {}, "incoming": {}}
        out, inc = counts["outgoing"], counts["incoming"]
        pending = sum(out.get(state, 0) for state in ("queued", "packaged", "sending"))
        text = (f"outgoing: {pending} pending, {out.get('sent', 0)} sent, "
                f"{out.get('failed', 0)} failed; incoming: {inc.get('delivered', 0)} delivered, "
                f"{inc.get('quarantined', 0)} quarantined")
        with self._units_lock:
            units = list(self.units.values())
        if self.is_hub:
            paused = [unit.organ_id for unit in units if unit.state_text() != "active"]
            text += f"; units: {len(units) - len(paused)} of {len(units)} working"
            if paused:
                text += f" (paused: {', '.join(paused[:5])}{' …' if len(paused) > 5 else ''})"
            return text
        for unit in units:
            if unit.outbound is not None and unit.outbound.paused:
                text += ("; sending paused ("
                         f"{unit.outbound.paused_reason or 'axis refused our credentials'})")
            if unit.signing_blocked:
                text += "; SIGNING STOPPED (certificate expired: renew and reload)"
        return text

    # ============================================================================ reload
    def _reload(self) -> None:
        """SIGHUP: the config file (and the agencies folder) read again. New units start,
        removed ones stop taking work, a unit whose settings or secret changed is started
        again with them, and every unit's keys are read again (renewals, passwords, PIN); the
        trust store and the log level too. A file that no longer loads keeps everything as it
        was, and says which file and key are wrong."""
        self._notifier.reloading()
        fresh = None
        if self.settings.source is not None:
            try:
                fresh = load_config(self.settings.source)
            except Exception as error:
                log.error("config_reload_failed", error=describe_error(error),
                          note="the running configuration stays in use")
        if fresh is not None:
            self._reload_units(fresh)
        else:
            for unit in list(self.units.values()):
                if unit.outbound is not None:
                    unit.reload_certificate(None)
        try:
            store = self.runtime.reload_trust()
            log.info("trust_reloaded", **(store.summary() if store is not None else {"bundle": None}))
        except Exception as error:
            log.error("trust_reload_failed", error=describe_error(error),
                      note="the previous trust bundle, CRLs and signer mapping stay in use")
        if fresh is not None:
            set_level(fresh.logging.level.value)
            log.info("log_level_reloaded", log_level=fresh.logging.level.value)
        self._refresh_status()
        self._notifier.ready(self._status_text())

    def _reload_units(self, fresh: Settings) -> None:
        wanted = {settings.agency.organ_id: settings for settings in fresh.units}
        for organ_id, unit in list(self.units.items()):
            if organ_id not in wanted:
                self._stop_unit(unit)
                log.info("unit_removed", agency=organ_id,
                         note="its unfinished items stay in the journal and go on if it returns")
        for index, (organ_id, settings) in enumerate(wanted.items()):
            running = self.units.get(organ_id)
            if running is not None and running.runtime is self.runtime:
                self._reload_first_unit(running, settings)
                continue
            if running is not None and running.working and _same_unit(running.settings, settings):
                running.reload_certificate(settings)  # only the keys changed: read in place
                continue
            if running is not None:
                self._stop_unit(running)
            self._start_unit(self._new_unit(settings, index / max(1, len(wanted))))
            log.info("unit_started" if running is None else "unit_restarted", agency=organ_id,
                     state=self.units[organ_id].state_text())

    def _reload_first_unit(self, unit: Unit, settings: Settings) -> None:
        """The first unit's runtime holds the parts every unit shares, so it is not started
        again: its keys are read again, new axis credentials take effect in place, and any
        other change of its own waits for a restart (said in the log)."""
        if not _same_credentials(unit.settings, settings):
            unit.runtime.replace_axis(settings.axis)
            self._hook_axis_responses(unit)
            if unit.outbound is not None:
                unit.outbound.resume()
            log.info("axis_credentials_reloaded", agency=unit.organ_id,
                     systemid=settings.systemid)
        elif not _same_unit(unit.settings, settings):
            log.warning("config_change_needs_restart", agency=unit.organ_id,
                        note="this unit holds the parts every unit shares; its certificate and "
                             "axis credentials are reloaded, other changes need "
                             "systemctl restart edxml-connector")
        unit.reload_certificate(settings)

    # ============================================================================ stopping
    def _stop(self) -> int:
        deadline = time.monotonic() + STOP_BUDGET_SECONDS
        self._notifier.stopping("stopping: finishing the sends in flight")
        for watcher in list(self._watchers.values()):
            watcher.stop(timeout=1.0)
        units = list(self.units.values())
        for unit in units:
            if unit.inbound is not None:
                unit.inbound.stopping.set()
            if unit.outbound is not None:
                unit.outbound.stopping.set()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        self._poll_pool.shutdown(wait=False, cancel_futures=True)
        self.wake.set()
        clean = True
        for unit in units:
            if unit.outbound is not None:
                budget = max(0.0, min(SEND_GRACE_SECONDS, deadline - time.monotonic() - 3.0))
                clean = unit.outbound.shutdown(budget) and clean
        self._send_pool.shutdown(wait=False, cancel_futures=True)
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
        for unit in list(self.units.values()):
            if unit.runtime is self.runtime:
                continue
            try:
                unit.close()
            except Exception as error:
                log.warning("close_failed", agency=unit.organ_id, error=describe_error(error))
        try:
            self.runtime.close()
        except Exception as error:
            log.warning("close_failed", error=describe_error(error))


def _same_credentials(running: Settings, fresh: Settings) -> bool:
    """The same systemid and axis secret (the secret's source may be the same file with new
    content: the values are compared)."""
    try:
        same_secret = (running.axis.resolved_secret().get_secret_value()
                       == fresh.axis.resolved_secret().get_secret_value())
    except Exception:
        same_secret = False
    return same_secret and running.systemid == fresh.systemid


def _same_unit(running: Settings, fresh: Settings) -> bool:
    """Nothing but the keys changed (those are read again in place): the same settings and
    the same axis credentials."""
    def shape(settings: Settings) -> Any:
        return settings.model_dump(mode="json", exclude={"certificate"})

    return _same_credentials(running, fresh) and shape(running) == shape(fresh)


def _secrets_of(units: list[Settings]) -> list[str]:
    values: list[str] = []
    for settings in units:
        values.extend(settings.secret_values())
    return values


def _oldest_pending(journal) -> tuple[float | None, float | None]:
    """Seconds since the oldest outgoing item not yet done (queued/packaged/sending) and the
    oldest received item stored but not yet acknowledged or delivered; None when none."""
    now = dt.datetime.now(dt.timezone.utc)
    outgoing = journal.outgoing.list_outgoing(("queued", "packaged", "sending"), limit=1,
                                     newest_first=False)
    incoming = journal.incoming.pending_incoming(every_unit=True)

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

