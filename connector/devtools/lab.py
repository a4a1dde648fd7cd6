"""A two-agency lab on loopback — the README's quick start, and the harness of the e2e tests.

WHY one module for both: the demo (``scripts/demo.sh`` → ``python -m connector.devtools.lab``), the
end-to-end tests (``tests/e2e``) and the end-to-end benchmark (``bench/e2e_bench.py``) all need
the same thing — throwaway certificates, an axis simulator with two agencies, and one real
``edxml-connector run`` process per agency with a config that points at it — and they must agree
on how it is built, or the demo would show something the tests do not check.

Everything runs as real subprocesses (``python -m connector ...``) talking real HTTP on
127.0.0.1, with real files and a real SQLite journal per agency. The lab only writes files the way
a DMS would (write, then rename) and reads the results where an operator would (``inbox/``,
``sent/*.receipt.json``, ``edxml-connector status --json``).

Use::

    with Lab(Path("/tmp/lab")) as lab:
        lab.start()                          # simulator + both connectors
        lab.a.drop_bundle("cv-1", metadata, {"Công văn.pdf": b"%PDF..."})
        lab.wait_for(lambda: len(lab.b.inbox_documents()) == 1, what="B receives cv-1")
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from connector.devtools.devcerts import (
    AGENCY_A_ORGAN_ID,
    AGENCY_B_ORGAN_ID,
    DevCerts,
    make_dev_certs,
    trust_config,
)
from connector.errors import ConnectorError

STOP_GRACE_SECONDS = 10.0
"""SIGTERM, then this long before SIGKILL: the daemon promises to exit within 10 s."""

AGENCY_NAMES = {AGENCY_A_ORGAN_ID: "Văn phòng Chính phủ (demo)",
                AGENCY_B_ORGAN_ID: "UBND tỉnh Nghệ An (demo)"}


class LabError(ConnectorError):
    """Something the lab waited for did not happen (the message says what was awaited, what was
    seen, and ends with the tails of the processes' logs)."""

    exit_code = 1


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (bind to 0, read it, close). Used where a component
    needs a fixed port it can keep across restarts (the simulator) or whose config refuses 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def cli_command(*args: str) -> list[str]:
    """``edxml-connector ARGS`` with this interpreter (the venv's), whatever PATH says."""
    return [sys.executable, "-m", "connector", *args]


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env.pop("WATCHDOG_PID", None)
    if extra:
        env.update(extra)
    return env


# --------------------------------------------------------------------------- processes

class ManagedProcess:
    """One child process whose stdout+stderr go to a log file we can show when things go wrong."""

    def __init__(self, name: str, argv: list[str], log_path: Path, *,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.popen: subprocess.Popen | None = None
        self.exit_codes: list[int] = []
        self.starts = 0

    def start(self) -> ManagedProcess:
        if self.running:
            raise LabError(f"{self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"---- start #{self.starts + 1}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd,
                                          start_new_session=True)
        self.starts += 1
        return self

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines (structlog) this process wrote, in order; other lines skipped."""
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
        return records

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM, wait ``grace`` seconds, then SIGKILL. Returns the exit code (negative =
        killed by that signal), None if it was never started."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._reap()

    def kill(self) -> int | None:
        """``kill -9``: no chance to clean up (the crash tests' point)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=30)
        return self._reap()

    def _reap(self) -> int | None:
        code = self.popen.poll() if self.popen else None
        if code is not None and (not self.exit_codes or self.exit_codes[-1] is not code):
            self.exit_codes.append(code)
        return code


# --------------------------------------------------------------------------- simulator

class Simulator:
    """``edxml-connector axis-sim`` on a fixed loopback port (kept across restarts so that the
    connectors' configured endpoint stays right) with its state in ``data_dir``."""

    def __init__(self, base: Path, agencies_file: Path, *, port: int | None = None,
                 seed: int | None = None, fault_args: Iterable[str] = ()) -> None:
        self.base = base
        self.data_dir = base / "sim-data"
        self.agencies_file = agencies_file
        self.port = port or free_port()
        self.seed = seed
        self.fault_args = list(fault_args)
        self.process = ManagedProcess("axis-sim", self._argv(), base / "logs" / "axis-sim.log",
                                      env=child_environment())

    def _argv(self) -> list[str]:
        argv = cli_command("axis-sim", "--listen", f"127.0.0.1:{self.port}",
                           "--data", str(self.data_dir), "--agencies", str(self.agencies_file))
        if self.seed is not None:
            argv += ["--seed", str(self.seed)]
        return argv + self.fault_args

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Simulator:
        self.process.argv = self._argv()
        before = self.process.log_text().count("listening on")
        self.process.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.log_text().count("listening on") > before:
                return self
            if not self.process.running:
                break
            time.sleep(0.05)
        raise LabError(f"the axis simulator did not start on {self.url} within {timeout:g} s "
                       f"(exit code {self.process.returncode()})\n--- axis-sim log ---\n"
                       f"{self.process.tail()}")

    def stop(self) -> int | None:
        return self.process.stop()

    def admin(self, name: str, body: dict[str, Any] | None = None, *,
              timeout: float = 10.0) -> Any:
        """GET (or POST ``body``) ``/_admin/NAME`` and return the JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}/_admin/{name}", data=data,
                                         method="GET" if body is None else "POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return json.loads(answer.read().decode("utf-8"))

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        return self.admin("faults", changes)

    def transfers(self) -> list[dict[str, Any]]:
        return self.admin("transfers")["transfers"]


def stop_all(processes: Iterable[ManagedProcess]) -> None:
    """Stop each (SIGTERM, then SIGKILL), in order, whatever one of them does."""
    for process in processes:
        try:
            process.stop()
        except Exception:  # noqa: BLE001 - stopping the others matters more
            process.kill()


def run_cli(config: Path, *args: str, who: str, check: bool = True,
            timeout: float = 60.0) -> subprocess.CompletedProcess:
    """``edxml-connector ARGS --config CONFIG`` (the operator's commands), as ``who`` runs it."""
    result = subprocess.run(cli_command(*args, "--config", str(config)), capture_output=True,
                            text=True, timeout=timeout, env=child_environment())
    if check and result.returncode != 0:
        raise LabError(f"`edxml-connector {' '.join(args)}` for {who} exited "
                       f"{result.returncode}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def lab_shared_config(sim_url: str, *, journal: Path, state_dir: Path, exchange_root: Path,
                      health_port: int, rescan_seconds: float) -> dict[str, Any]:
    """What every lab connector (an agency, or a hub's shared sections) runs with: the
    simulator, a SQLite journal, folder mode, short poll intervals and tiny backoff (a lab, not
    a production setting: see config/connector.example.yaml for those)."""
    return {
        "axis": {"endpoint": sim_url, "connect_timeout": 2, "read_timeout": 10,
                 "retry": {"max_attempts": 2, "max_total_seconds": 5,
                           "initial_backoff": 0.05, "max_backoff": 0.2}},
        "journal": {"url": f"sqlite:///{journal}"},
        "state_dir": str(state_dir),
        "exchange": {"enabled": True, "root": str(exchange_root),
                     "rescan_seconds": rescan_seconds, "watch": True},
        "schedules": {"axis_poll_seconds": 1, "dms_poll_seconds": 1, "retry_sweep_seconds": 1},
        "outbound": {"retry_initial_seconds": 0.2, "retry_max_seconds": 1, "max_attempts": 100},
        "health": {"enabled": True, "listen": f"127.0.0.1:{health_port}",
                   "readiness": {"min_free_disk_mb": 0, "axis_poll_intervals": 3}},
        "logging": {"level": "info"},
    }


# --------------------------------------------------------------------------- one agency

def deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied recursively; a ``None`` value removes the key."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class ExchangeFolders:
    """One agency's exchange tree as its DMS sees it: drop documents and statuses into the
    outbox, read the inbox, the receipts and the error files (the folder contract)."""

    exchange: Path

    # -- the DMS's side of the folder contract ---------------------------------------------------
    @property
    def outbox(self) -> Path:
        return self.exchange / "outbox"

    def _publish(self, staging: Path, final: Path) -> Path:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(staging, final)
        return final

    def drop_bundle(self, name: str, metadata: dict[str, Any],
                    files: dict[str, bytes]) -> Path:
        """A bundle as a DMS writes it: a folder under a dot-name, the files, document.yaml last,
        then one rename into the outbox."""
        self.outbox.mkdir(parents=True, exist_ok=True)
        staging = self.outbox / f".{name}.staging"
        staging.mkdir()
        for file_name, data in files.items():
            (staging / file_name).write_bytes(data)
        (staging / "document.yaml").write_text(
            yaml.safe_dump(metadata, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return self._publish(staging, self.outbox / name)

    def drop_package(self, name: str, data: bytes) -> Path:
        """A ready package: written as ``NAME.part``, renamed to ``NAME`` (ends in .edxml)."""
        self.outbox.mkdir(parents=True, exist_ok=True)
        staging = self.outbox / f"{name}.part"
        staging.write_bytes(data)
        return self._publish(staging, self.outbox / name)

    def drop_status(self, name: str, status: dict[str, Any]) -> Path:
        """A status drop: ``outbox/statuses/NAME.yaml``."""
        directory = self.outbox / "statuses"
        directory.mkdir(parents=True, exist_ok=True)
        staging = directory / f".{name}.yaml.tmp"
        staging.write_text(yaml.safe_dump(status, allow_unicode=True, sort_keys=False),
                           encoding="utf-8")
        return self._publish(staging, directory / f"{name}.yaml")

    # -- what the DMS reads -------------------------------------------------------------------
    def inbox_folders(self) -> list[Path]:
        """Published inbox folders (``inbox/YYYY-MM-DD/ITEM``), hidden staging names excluded."""
        inbox = self.exchange / "inbox"
        if not inbox.is_dir():
            return []
        return sorted(item for day in inbox.iterdir() if day.is_dir() and not day.name.startswith(".")
                      for item in day.iterdir()
                      if item.is_dir() and not item.name.startswith("."))

    def inbox_documents(self) -> list[dict[str, Any]]:
        """Every inbox folder's metadata.json (plus ``_folder``)."""
        documents = []
        for folder in self.inbox_folders():
            try:
                meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            meta["_folder"] = str(folder)
            documents.append(meta)
        return documents

    def quarantine_folders(self) -> list[Path]:
        root = self.exchange / "quarantine"
        if not root.is_dir():
            return []
        return sorted(item for day in root.iterdir() if day.is_dir()
                      for item in day.iterdir() if item.is_dir() and not item.name.startswith("."))

    def jsonl(self, name: str) -> list[dict[str, Any]]:
        """``inbox/statuses.jsonl`` or ``inbox/events.jsonl``, torn lines skipped."""
        path = self.exchange / "inbox" / name
        records = []
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
        return records

    def received_statuses(self) -> list[dict[str, Any]]:
        return self.jsonl("statuses.jsonl")

    def received_events(self) -> list[dict[str, Any]]:
        return self.jsonl("events.jsonl")

    def receipts(self) -> dict[str, dict[str, Any]]:
        """``sent/NAME.receipt.json`` by NAME (statuses' receipts under ``statuses/NAME``)."""
        found: dict[str, dict[str, Any]] = {}
        sent = self.exchange / "sent"
        if not sent.is_dir():
            return found
        for path in sorted(sent.rglob("*.receipt.json")):
            try:
                found[str(path.relative_to(sent))[: -len(".receipt.json")]] = json.loads(
                    path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                pass
        return found

    def error_files(self) -> dict[str, str]:
        """``failed/NAME.error.txt`` by NAME."""
        failed = self.exchange / "failed"
        if not failed.is_dir():
            return {}
        return {str(p.relative_to(failed))[: -len(".error.txt")]: p.read_text(encoding="utf-8")
                for p in sorted(failed.rglob("*.error.txt"))}

    def entries(self, folder: str) -> list[str]:
        """Visible entries of ``outbox``, ``work``, ``sent`` or ``failed`` (top level)."""
        path = self.exchange / folder
        if not path.is_dir():
            return []
        return sorted(p.name for p in path.iterdir()
                      if not p.name.startswith(".") and p.name != "statuses")


class AgencyNode(ExchangeFolders):
    """One agency: its config file, exchange folder, journal, and its ``run`` process."""

    def __init__(self, lab: Lab, label: str, organ_id: str, p12: Path, password_file: Path,
                 secret: str) -> None:
        self.lab = lab
        self.label = label
        self.organ_id = organ_id
        self.name = AGENCY_NAMES.get(organ_id, organ_id)
        self.home = lab.base / f"agency-{label.lower()}"
        self.exchange = self.home / "exchange"
        self.state_dir = self.home / "state"
        self.journal_path = self.state_dir / "journal.db"
        self.config_path = self.home / "connector.yaml"
        self.secret_file = self.home / "axis-secret"
        self.p12 = p12
        self.password_file = password_file
        self.health_port = free_port()
        self.overrides: dict[str, Any] = {}
        self.extra_env: dict[str, str] = {}
        self.process = ManagedProcess(f"connector-{label}", [], lab.base / "logs" /
                                      f"connector-{label.lower()}.log")
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secret + "\n")

    # -- configuration --------------------------------------------------------------------------
    def base_config(self) -> dict[str, Any]:
        """Folder mode, SQLite journal, short poll intervals and tiny backoff (a lab, not a
        production setting: see config/connector.example.yaml for those)."""
        return deep_merge(lab_shared_config(
            self.lab.sim.url, journal=self.journal_path, state_dir=self.state_dir,
            exchange_root=self.exchange, health_port=self.health_port, rescan_seconds=1), {
                "agency": {"organ_id": self.organ_id, "name": self.name},
                "certificate": {"p12_file": str(self.p12),
                                "password_file": str(self.password_file)},
                "trust": trust_config(self.lab.certs.ca_cert),
                "axis": {"systemid": self.organ_id, "secret_file": str(self.secret_file)}})

    def configure(self, **changes: Any) -> Path:
        """Merge ``changes`` into this agency's config (kept for later restarts) and write it."""
        self.overrides = deep_merge(self.overrides, changes)
        return self.write_config()

    def config(self) -> dict[str, Any]:
        return deep_merge(self.base_config(), self.overrides)

    def write_config(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(self.config(), allow_unicode=True, sort_keys=False)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.config_path)
        return self.config_path

    # -- the daemon -----------------------------------------------------------------------------
    def start(self, *, env: dict[str, str] | None = None) -> AgencyNode:
        self.write_config()
        self.process.argv = cli_command("run", "--config", str(self.config_path))
        self.process.env = child_environment({**self.extra_env, **(env or {})})
        self.process.start()
        return self

    def stop(self) -> int | None:
        return self.process.stop()

    def kill(self) -> int | None:
        return self.process.kill()

    def wait_started(self, timeout: float = 30.0) -> AgencyNode:
        """Until /healthz answers (the daemon is up and its main loop turns)."""
        self.lab.wait_for(lambda: self.http_status("/healthz") == 200, timeout=timeout,
                          what=f"connector {self.label} to answer /healthz on port "
                               f"{self.health_port}",
                          seen=lambda: f"process running={self.process.running}")
        return self

    def http_get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}",
                                        timeout=timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def http_status(self, path: str) -> int | None:
        try:
            return self.http_get(path, timeout=2.0)[0]
        except (OSError, urllib.error.URLError):
            return None

    # -- the command line ---------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """``edxml-connector ARGS --config THIS`` (the operator's commands)."""
        return run_cli(self.config_path, *args, who=f"agency {self.label}", check=check,
                       timeout=timeout)

    def status_json(self, *extra: str) -> dict[str, Any]:
        return json.loads(self.cli("status", "--json", "--limit", "1000", *extra).stdout)

# --------------------------------------------------------------------------- the lab

class Lab:
    """Certificates, the agencies file, the simulator and agencies A (000.00.00.G22) and
    B (000.00.00.H41) under ``base``. A context manager: leaving it stops every process."""

    def __init__(self, base: Path, *, seed: int | None = None,
                 sim_fault_args: Iterable[str] = (), certs: DevCerts | None = None) -> None:
        self.base = Path(base)
        self.base.mkdir(parents=True, exist_ok=True)
        self.certs = certs or make_dev_certs(self.base / "certs")
        self.secrets = {AGENCY_A_ORGAN_ID: os.urandom(12).hex(), AGENCY_B_ORGAN_ID: os.urandom(12).hex()}
        self.agencies_file = self.base / "agencies.yaml"
        self.write_agencies_file()
        self.sim = Simulator(self.base, self.agencies_file, seed=seed, fault_args=sim_fault_args)
        self.a = AgencyNode(self, "A", AGENCY_A_ORGAN_ID, self.certs.agency_a.p12,
                            self.certs.agency_a.password_file, self.secrets[AGENCY_A_ORGAN_ID])
        self.b = AgencyNode(self, "B", AGENCY_B_ORGAN_ID, self.certs.agency_b.p12,
                            self.certs.agency_b.password_file, self.secrets[AGENCY_B_ORGAN_ID])

    def write_agencies_file(self) -> None:
        agencies = [{"organ_id": organ_id, "name": AGENCY_NAMES[organ_id], "systemid": organ_id,
                     "secret": secret} for organ_id, secret in self.secrets.items()]
        fd = os.open(self.agencies_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"agencies": agencies}, handle, allow_unicode=True, sort_keys=False)

    @property
    def agencies(self) -> list[AgencyNode]:
        return [self.a, self.b]

    @property
    def processes(self) -> list[ManagedProcess]:
        """The processes started so far (those a wait should require to stay up)."""
        return [p for p in (self.sim.process, self.a.process, self.b.process)
                if p.popen is not None]

    def start(self, *, agencies: Iterable[AgencyNode] | None = None,
              timeout: float = 30.0) -> Lab:
        self.sim.start()
        chosen = list(self.agencies if agencies is None else agencies)
        for node in chosen:
            node.start()
        for node in chosen:
            node.wait_started(timeout)
        return self

    def close(self) -> None:
        """Stop every process this lab started (SIGTERM, then SIGKILL): connectors first."""
        stop_all([self.a.process, self.b.process, self.sim.process])

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- waiting ------------------------------------------------------------------------------
    def diagnostics(self, lines: int = 25) -> str:
        """The last lines of each process's log (the simulator's routine list polls left out)."""
        parts = []
        for process in self.processes:
            if process.popen is None:
                continue
            state = "running" if process.running else f"exited {process.returncode()}"
            text = [line for line in process.log_text().splitlines()
                    if not ('"getReceivedEdocList"' in line and '"result": "OK"' in line)]
            parts.append(f"--- {process.name} ({state}), last lines of {process.log_path} ---\n"
                         + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def wait_for(self, condition: Callable[[], Any], *, timeout: float = 30.0, what: str,
                 seen: Callable[[], Any] | None = None, interval: float = 0.1,
                 require_running: Iterable[ManagedProcess] = (),
                 fail_if: Callable[[], Any] | None = None) -> Any:
        """Poll ``condition`` until it returns something truthy (returned). On timeout raise
        :class:`LabError` saying what was awaited, what ``seen()`` showed last, and the logs.
        A process in ``require_running`` that exits, or ``fail_if()`` returning something truthy
        (e.g. the item's error file), ends the wait at once."""
        deadline = time.monotonic() + timeout
        watched = list(require_running)
        while True:
            try:
                value = condition()
            except (OSError, ValueError, ConnectorError):
                value = None
            if value:
                return value
            dead = [p for p in watched if not p.running]
            hopeless = None
            if fail_if is not None:
                try:
                    hopeless = fail_if()
                except (OSError, ValueError, ConnectorError):
                    hopeless = None
            if dead or hopeless or time.monotonic() >= deadline:
                observed = ""
                if seen is not None:
                    try:
                        observed = f"; last seen: {seen()}"
                    except Exception as error:  # noqa: BLE001 - a diagnostic must not hide the timeout
                        observed = f"; (could not describe the state: {error})"
                reason = (f"{', '.join(p.name for p in dead)} exited" if dead
                          else f"gave up ({hopeless})" if hopeless
                          else f"timed out after {timeout:.1f} s")
                raise LabError(f"{reason} waiting for {what}{observed}\n{self.diagnostics()}")
            time.sleep(interval)


# --------------------------------------------------------------------------- documents

def pdf_bytes(text: str, size: int = 0) -> bytes:
    """A tiny well-formed PDF, padded with a comment to ``size`` bytes when asked."""
    body = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n% " + text.encode("utf-8") + b"\n")
    if size > len(body):
        pad = os.urandom((size - len(body)) // 2 + 1).hex().encode()[: size - len(body) - 1]
        body += b"%" + pad
    return body + b"\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def document_metadata(to: Iterable[str], number: str, subject: str, *,
                      notation: str = "VPCP-TTĐT", **extra: Any) -> dict[str, Any]:
    """A ``document.yaml`` mapping addressed to ``to``."""
    meta: dict[str, Any] = {
        "to": [{"organ_id": organ_id, "organ_name": AGENCY_NAMES.get(organ_id)} for organ_id in to],
        "code": {"number": number, "notation": notation},
        "promulgation": {"place": "Hà Nội", "date": _today_vietnam()},
        "document_type": {"type": "1", "type_detail": "0", "type_name": "Công văn"},
        "subject": subject,
    }
    meta.update(extra)
    return meta


def _today_vietnam() -> str:
    return dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).date().isoformat()


def pack_package(metadata: dict[str, Any], files: dict[str, bytes], work: Path, *,
                 p12: Path, password_file: Path) -> bytes:
    """A ready, signed package made by ``edxml-connector pack`` (what a DMS that builds its own
    packages would drop)."""
    work.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        (work / name).write_bytes(data)
        paths.append(str(work / name))
    (work / "document.yaml").write_text(yaml.safe_dump(metadata, allow_unicode=True),
                                        encoding="utf-8")
    out = work / "package.edxml"
    result = subprocess.run(cli_command("pack", str(work / "document.yaml"), *paths,
                                        "--p12", str(p12), "--password-file", str(password_file),
                                        "--out", str(out)),
                            capture_output=True, text=True, env=child_environment())
    if result.returncode != 0:
        raise LabError(f"edxml-connector pack failed: {result.stderr.strip()}")
    return out.read_bytes()


# --------------------------------------------------------------------------- the demo

def time_left(timeout: float, what: str) -> Callable[[], float]:
    """A demo's budget: the returned function gives the seconds left, and raises LabError
    naming ``what`` once they are spent."""
    started = time.monotonic()

    def remaining() -> float:
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise LabError(f"{what} took longer than {timeout:g} s")
        return left

    return remaining


def say(message: str) -> None:
    """One progress line of a demo, on stderr."""
    print(f"==> {message}", file=sys.stderr, flush=True)


def run_demo(base: Path, *, timeout: float = 120.0) -> dict[str, Any]:
    """The quick start: three documents A → B, B answers 01 (automatically) and 03 (a status
    drop), A's ``status`` shows both. Returns the summary; raises LabError on any failure."""
    started = time.monotonic()
    remaining = time_left(timeout, "the demo")
    with Lab(base) as lab:
        say(f"work folder: {lab.base}")
        say(f"throwaway certificates in {lab.certs.directory}")
        say(f"starting the axis simulator on {lab.sim.url} and connectors for "
             f"A = {lab.a.organ_id} and B = {lab.b.organ_id}")
        lab.start(timeout=min(60.0, remaining()))
        a, b = lab.a, lab.b

        say("dropping three documents into A's outbox")
        vietnamese = "Công văn số 123.pdf"
        a.drop_bundle("cong-van-123", document_metadata(
            [b.organ_id], "123", "V/v phối hợp triển khai trục liên thông văn bản"),
            {vietnamese: pdf_bytes("Công văn số 123")})
        a.drop_bundle("to-trinh-45", document_metadata(
            [b.organ_id], "45", "Tờ trình kèm hai phụ lục",
            attachments=[{"file": "To trinh 45.pdf"},
                         {"file": "Phụ lục 1.docx", "description": "Phụ lục kèm theo"}]),
            {"To trinh 45.pdf": pdf_bytes("Tờ trình 45"), "Phụ lục 1.docx": b"PK\x03\x04demo"})
        weekly = document_metadata([b.organ_id], "678", "Báo cáo tuần (gói soạn sẵn)")
        weekly["from"] = {"organ_id": a.organ_id, "organ_name": a.name}
        package = pack_package(
            weekly, {"bao-cao-tuan.pdf": pdf_bytes("Báo cáo tuần")}, lab.base / "ready-package",
            p12=a.p12, password_file=a.password_file)
        a.drop_package("bao-cao-tuan.edxml", package)

        def valid_documents() -> list[dict[str, Any]]:
            docs = b.inbox_documents()
            return docs if len(docs) >= 3 and all(
                d.get("signature", {}).get("state") == "valid" for d in docs) else []

        say("waiting until B's inbox holds all three, with valid signatures")
        docs = lab.wait_for(valid_documents, timeout=remaining(), what="3 verified documents in "
                            "B's inbox", seen=lambda: [(d.get("code"), d.get("signature", {}).get(
                                "state")) for d in b.inbox_documents()],
                            require_running=lab.processes)
        codes = {d["document_id"]: d for d in docs}

        def statuses_at_a(code: str) -> dict[str, str]:
            found = {}
            for row in a.status_json("--direction", "out")["items"]:
                for recipient in row["recipients"]:
                    if recipient["organ_id"] == b.organ_id and recipient["status"] == code:
                        found[row["document_id"]] = code
            return found

        say("waiting until A has status 01 (arrived) from B for each")
        lab.wait_for(lambda: set(codes) <= set(_history_codes(a, "01")), timeout=remaining(),
                     what="status 01 from B for the three documents at A",
                     seen=lambda: a.received_statuses(), require_running=lab.processes)

        answered = next(d for d in docs if d.get("code", "").startswith("123"))
        say(f"B sends 03 (accepted) for {answered['document_id']}")
        b.drop_status("tiep-nhan-123", {"code": "03", "document_id": answered["document_id"],
                                        "description": "Đã tiếp nhận, chuyển phòng chuyên môn"})
        lab.wait_for(lambda: answered["document_id"] in statuses_at_a("03"), timeout=remaining(),
                     what="status 03 for cong-van-123 in A's `status`",
                     seen=lambda: a.received_statuses(), require_running=lab.processes)

        say("A's `edxml-connector status`:")
        shown = a.cli("status", "--direction", "out", "--limit", "10")
        print(shown.stdout, flush=True)
        summary = {
            "work_folder": str(lab.base),
            "b_inbox": [{"folder": str(Path(d["_folder"]).relative_to(b.exchange)),
                         "document_id": d["document_id"], "signature": d["signature"]["state"],
                         "files": [f["file"] for f in d.get("attachments", [])]} for d in docs],
            "a_statuses": {row["document_id"]: {r["organ_id"]: r["status"] for r in row["recipients"]}
                           for row in a.status_json("--direction", "out")["items"]
                           if row["kind"] != "status"},
            "seconds": round(time.monotonic() - started, 1),
        }
    codes_stopped = {p.name: p.returncode() for p in lab.processes}
    summary["exit_codes"] = codes_stopped
    bad = {name: code for name, code in codes_stopped.items() if code not in (0, None)}
    if bad:
        raise LabError(f"processes did not stop cleanly on SIGTERM: {bad}")
    return summary


def _history_codes(node: AgencyNode, code: str) -> list[str]:
    """DocumentIds for which ``node`` received status ``code`` (its inbox/statuses.jsonl)."""
    return [str(s.get("document_id")) for s in node.received_statuses() if s.get("code") == code]


def _print_summary(summary: dict[str, Any]) -> None:
    print("\nSummary")
    print(f"  work folder: {summary['work_folder']} (logs in logs/)")
    print("  B's inbox:")
    for doc in summary["b_inbox"]:
        print(f"    {doc['folder']}  signature {doc['signature']}  files: "
              f"{', '.join(f for f in doc['files'] if f)}")
    print("  A's outgoing documents, latest status per recipient:")
    for document_id, recipients in summary["a_statuses"].items():
        shown = ", ".join(f"{organ} {code}" for organ, code in recipients.items())
        print(f"    {document_id}: {shown}")
    print(f"  done in {summary['seconds']} s; every process stopped cleanly")


def demo_folder(work: Path | None) -> Path | None:
    """The demo's work folder: a new one under ./demo-run/, or the given one if empty (None,
    with the reason on stderr, when it is not)."""
    if work is None:
        Path("demo-run").mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"),
                                     dir="demo-run")).resolve()
    if work.exists() and any(work.iterdir()):
        print(f"error: {work} is not empty: give a new folder", file=sys.stderr)
        return None
    return work


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connector.devtools.lab",
        description="Two agencies exchange documents through a local axis simulator.")
    parser.add_argument("work", nargs="?", type=Path,
                        help="work folder (default: a new folder under ./demo-run/)")
    parser.add_argument("--timeout", type=float, default=120.0, help="overall limit (120 s)")
    args = parser.parse_args(argv)
    return run_and_report(args.work, lambda work: run_demo(work, timeout=args.timeout),
                          _print_summary)


def run_and_report(work: Path | None, run: Callable[[Path], dict[str, Any]],
                   report: Callable[[dict[str, Any]], None]) -> int:
    """A demo's command line: its work folder, the run, the summary; the exit code (0 done,
    1 a step failed, 2 the folder is not new, 130 interrupted)."""
    folder = demo_folder(work)
    if folder is None:
        return 2
    try:
        summary = run(folder.resolve())
    except LabError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    report(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
