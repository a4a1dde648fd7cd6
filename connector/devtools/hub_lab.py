"""A hub on loopback: ONE connector process serving N units, an outside agency, the simulator.

WHY beside :mod:`connector.devtools.lab`: the two-agency lab runs one ``run`` process per
agency; a hub is one process for many agencies, configured the way a province would (a main
file with the shared sections and one file per unit in ``agencies.d/``). The hub e2e tests,
``scripts/demo.sh --hub N`` and ``bench/hub_bench.py`` use it.

Use::

    with HubLab(base, units=50) as hub:
        hub.start()
        hub.units[0].drop_bundle(...)
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import yaml

from connector.devtools.devcerts import AgencyCert, make_unit_certs, subject_signer_map
from connector.devtools.lab import (
    AGENCY_NAMES,
    ExchangeFolders,
    Lab,
    LabError,
    ManagedProcess,
    child_environment,
    cli_command,
    deep_merge,
    free_port,
    lab_shared_config,
    run_cli,
    stop_all,
)


def unit_organ_id(index: int) -> str:
    """The OrganId of the hub's unit number ``index`` (0-based): 000.01.NN.UNN."""
    return f"000.01.{index // 100:02d}.U{index % 100:02d}"


class HubUnit(ExchangeFolders):
    """One unit of the hub, as its DMS sees it (its own exchange tree)."""

    def __init__(self, hub: HubLab, organ_id: str, cert: AgencyCert, secret: str) -> None:
        self.hub = hub
        self.organ_id = organ_id
        self.name = f"Đơn vị {organ_id} (demo)"
        self.cert = cert
        self.exchange = hub.exchange_root / organ_id
        self.secret_file = hub.home / "secrets" / f"{organ_id}.secret"
        _write_private(self.secret_file, secret + "\n")
        self.overrides: dict[str, Any] = {}
        self.configured = True  # written into agencies.d by HubLab.write_config

    @property
    def unit_file(self) -> Path:
        return self.hub.agencies_dir / f"{self.organ_id}.yaml"

    def unit_config(self) -> dict[str, Any]:
        base = {"agency": {"organ_id": self.organ_id, "name": self.name},
                "axis": {"secret_file": str(self.secret_file)},
                "certificate": {"p12_file": str(self.cert.p12),
                                "password_file": str(self.cert.password_file)}}
        return deep_merge(base, self.overrides)

    def write(self) -> Path:
        self.unit_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.unit_file.with_name(f".{self.unit_file.name}.tmp")
        tmp.write_text(yaml.safe_dump(self.unit_config(), allow_unicode=True, sort_keys=False),
                       encoding="utf-8")
        os.replace(tmp, self.unit_file)
        return self.unit_file


class HubLab:
    """Certificates, the simulator (every unit, the outside agency B), the hub's config and
    its ``run`` process under ``base``. A context manager: leaving it stops every process.

    ``shared_certificate`` gives every unit the outside-agency-free dev certificate of agency
    A instead of one certificate each (the bench: 500 RSA keys would take minutes to make and
    polling does not sign); signatures between units are then not bound to the unit."""

    def __init__(self, base: Path, units: int, *, seed: int | None = None,
                 shared_certificate: bool = False, certs: Any = None) -> None:
        self.lab = Lab(base, seed=seed, certs=certs)
        self.base = self.lab.base
        self.home = self.base / "hub"
        self.exchange_root = self.home / "exchange"
        self.agencies_dir = self.home / "agencies.d"
        self.state_dir = self.home / "state"
        self.config_path = self.home / "connector.yaml"
        self.health_port = free_port()
        self.overrides: dict[str, Any] = {}
        self.organ_ids = [unit_organ_id(index) for index in range(units)]
        self.home.mkdir(parents=True, exist_ok=True)
        if shared_certificate:
            certs_by_unit = {organ_id: self.lab.certs.agency_a for organ_id in self.organ_ids}
        else:
            certs_by_unit = make_unit_certs(self.lab.certs, self.organ_ids, self.home / "certs")
        self.signer_map = subject_signer_map(self.lab.certs, self.home / "signers.yaml")
        self.units = [HubUnit(self, organ_id, certs_by_unit[organ_id], os.urandom(12).hex())
                      for organ_id in self.organ_ids]
        self.outside = self.lab.b
        # the outside agency knows the units' certificates the same way (OrganId in the CN)
        self.outside.configure(trust={"signer_map_file": str(self.signer_map)})
        self.process = ManagedProcess("hub", [], self.base / "logs" / "hub.log")
        self.write_agencies_file()

    def unit(self, organ_id: str) -> HubUnit:
        return next(unit for unit in self.units if unit.organ_id == organ_id)

    # -- configuration --------------------------------------------------------------------------
    def write_agencies_file(self) -> None:
        """The simulator's agencies: the two lab agencies and every unit, each with its secret."""
        agencies = [{"organ_id": organ_id, "name": AGENCY_NAMES[organ_id], "systemid": organ_id,
                     "secret": secret} for organ_id, secret in self.lab.secrets.items()]
        agencies += [{"organ_id": unit.organ_id, "name": unit.name, "systemid": unit.organ_id,
                      "secret": unit.secret_file.read_text().strip()} for unit in self.units]
        _write_private(self.lab.agencies_file,
                       yaml.safe_dump({"agencies": agencies}, allow_unicode=True, sort_keys=False))

    def base_config(self) -> dict[str, Any]:
        """The shared sections (a lab's short intervals; see config/hub.example.yaml)."""
        trust = {"bundle_file": str(self.lab.certs.ca_cert),
                 "crl_folder": str(self.lab.certs.crl_folder),
                 "signer_map_file": str(self.signer_map)}
        return deep_merge(lab_shared_config(
            self.lab.sim.url, journal=self.state_dir / "journal.db", state_dir=self.state_dir,
            exchange_root=self.exchange_root, health_port=self.health_port, rescan_seconds=2), {
                "trust": trust, "schedules": {"idle_poll_seconds": 2},
                "agencies_dir": str(self.agencies_dir)})

    def configure(self, **changes: Any) -> Path:
        self.overrides = deep_merge(self.overrides, changes)
        return self.write_config()

    def write_config(self) -> Path:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for unit in self.units:
            if unit.configured and not unit.unit_file.exists():
                unit.write()
        config = deep_merge(self.base_config(), self.overrides)
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                       encoding="utf-8")
        os.replace(tmp, self.config_path)
        return self.config_path

    # -- processes ------------------------------------------------------------------------------
    def start(self, *, timeout: float = 60.0, outside: bool = True) -> HubLab:
        """The simulator, the outside agency (B, its own connector) and the hub."""
        self.lab.sim.start()
        if outside:
            self.outside.start()
        self.write_config()
        self.process.argv = cli_command("run", "--config", str(self.config_path))
        self.process.env = child_environment()
        self.process.start()
        self.wait_started(timeout)
        if outside:
            self.outside.wait_started(timeout)
        return self

    def wait_started(self, timeout: float = 60.0) -> None:
        """Until /healthz answers (the hub is up and its main loop turns), whatever the log
        level."""
        import urllib.request

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz",
                                            timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        self.lab.wait_for(healthy, timeout=timeout, what="the hub to answer /healthz",
                          require_running=[self.process])

    def reload(self) -> None:
        """SIGHUP, as ``systemctl reload`` sends it."""
        if self.process.popen is None:
            raise LabError("the hub is not running")
        self.process.popen.send_signal(signal.SIGHUP)

    def log_records(self, event: str | None = None) -> list[dict[str, Any]]:
        records = self.process.log_records()
        return [r for r in records if event is None or r.get("event") == event]

    def wait_log(self, event: str, *, timeout: float = 30.0, after: int = 0,
                 **fields: Any) -> dict[str, Any]:
        """The first log line ``event`` (with ``fields``) beyond the first ``after`` of them."""
        def found() -> dict[str, Any] | None:
            matching = [r for r in self.log_records(event)
                        if all(r.get(k) == v for k, v in fields.items())]
            return matching[after] if len(matching) > after else None
        return self.lab.wait_for(found, timeout=timeout, what=f"log line {event} {fields}",
                                 require_running=[self.process])

    def cli(self, *args: str, check: bool = True, timeout: float = 60.0):
        return run_cli(self.config_path, *args, who="the hub", check=check, timeout=timeout)

    def close(self) -> None:
        stop_all([self.process, self.outside.process, self.lab.sim.process])

    def __enter__(self) -> HubLab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def wait_until(condition, timeout: float, interval: float = 0.2) -> Any:
    """``condition()`` until truthy or ``timeout`` seconds (then its last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
