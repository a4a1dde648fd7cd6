"""Two agencies (A = 000.00.00.G22, B = 000.00.00.H41) connected through a real axis simulator on
a loopback port, each with its own exchange folders, SQLite journal and package store.

Pipelines are driven step by step (``agency.cycle()``, ``agency.poll()``) so that tests are
exact and fast; the subprocess tests in test_daemon_process.py run the real ``run`` command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from connector.axis.sim.agencies import agencies_from_data
from connector.axis.sim.server import AxisSimulator
from connector.config import load_config
from connector.devtools.devcerts import trust_config
from connector.pipeline.inbound import Inbound
from connector.pipeline.outbound import Outbound
from connector.service.runtime import Runtime

A = "000.00.00.G22"
B = "000.00.00.H41"
SECRETS = {A: "secret-of-a", B: "secret-of-b"}
AGENCIES = {"agencies": [
    {"organ_id": A, "name": "Văn phòng Chính phủ", "systemid": A, "secret": SECRETS[A]},
    {"organ_id": B, "name": "UBND Tỉnh Nghệ An", "systemid": B, "secret": SECRETS[B]},
]}


@pytest.fixture
def simulator(tmp_path):
    sim = AxisSimulator(tmp_path / "axis", agencies_from_data(AGENCIES), seed=11).start()
    yield sim
    sim.stop()


def write_config(base: Path, organ_id: str, name: str, cert, ca: Path, endpoint: str, *,
                 secret: str | None = None, **overrides) -> Path:
    """A complete connector.yaml for one agency under ``base``; ``overrides`` replace sections."""
    base.mkdir(parents=True, exist_ok=True)
    secret_file = base / "axis-secret"
    secret_file.write_text(secret if secret is not None else SECRETS[organ_id])
    secret_file.chmod(0o600)
    config = {
        "agency": {"organ_id": organ_id, "name": name},
        "certificate": {"p12_file": str(cert.p12), "password_file": str(cert.password_file)},
        "trust": trust_config(ca),
        "axis": {"endpoint": endpoint, "secret_file": str(secret_file), "connect_timeout": 2,
                 "read_timeout": 5,
                 "retry": {"max_attempts": 2, "max_total_seconds": 2, "initial_backoff": 0.01,
                           "max_backoff": 0.02}},
        "journal": {"url": f"sqlite:///{base / 'journal.db'}"},
        "state_dir": str(base / "state"),
        "exchange": {"root": str(base / "exchange"), "rescan_seconds": 0.5},
        "schedules": {"axis_poll_seconds": 1, "dms_poll_seconds": 1, "retry_sweep_seconds": 1},
        "outbound": {"concurrency": 2, "max_attempts": 3, "retry_initial_seconds": 0,
                     "retry_max_seconds": 0},
        "health": {"enabled": False},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path = base / "connector.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Agency:
    organ_id: str
    config: Path
    runtime: Runtime
    outbound: Outbound
    inbound: Inbound

    @property
    def exchange(self) -> Path:
        return self.runtime.settings.exchange.root

    @property
    def journal(self):
        return self.runtime.journal

    def cycle(self) -> None:
        """Intake, package and send until nothing due is left."""
        self.outbound.cycle(wait=True, timeout=30)

    def poll(self) -> dict:
        counts = self.inbound.poll()
        self.cycle()
        return counts

    def close(self) -> None:
        self.outbound.shutdown(5)
        self.runtime.close()


def open_agency(config: Path, organ_id: str) -> Agency:
    settings = load_config(config)
    runtime = Runtime(settings, folder_instance="test").open_all()
    try:
        runtime.directory.refresh()
    except Exception:  # e.g. refused credentials: recipients are then left to the axis
        pass
    outbound = Outbound(runtime, auth_pause_seconds=0.2)
    inbound = Inbound(runtime, outbound)
    return Agency(organ_id, config, runtime, outbound, inbound)


@pytest.fixture
def make_agency(tmp_path, dev_certs, simulator):
    opened: list[Agency] = []

    def factory(which: str, **overrides) -> Agency:
        organ_id, cert, name = ((A, dev_certs.agency_a, "Văn phòng Chính phủ") if which == "A"
                                else (B, dev_certs.agency_b, "UBND Tỉnh Nghệ An"))
        config = write_config(tmp_path / which, organ_id, name, cert, dev_certs.ca_cert,
                              simulator.url, **overrides)
        agency = open_agency(config, organ_id)
        opened.append(agency)
        return agency

    yield factory
    for agency in opened:
        agency.close()


@pytest.fixture
def pair(make_agency):
    return make_agency("A"), make_agency("B")


def drop_bundle(outbox: Path, name: str, metadata: dict, files: dict[str, bytes]) -> Path:
    """Write a bundle like a well-behaved DMS: files first, document.yaml last (by rename)."""
    staging = outbox / f".{name}.tmp"
    staging.mkdir()
    for file_name, data in files.items():
        (staging / file_name).write_bytes(data)
    (staging / "document.yaml.part").write_text(yaml.safe_dump(metadata, allow_unicode=True),
                                                encoding="utf-8")
    os.rename(staging / "document.yaml.part", staging / "document.yaml")
    os.rename(staging, outbox / name)
    return outbox / name


def drop_status(outbox: Path, name: str, status: dict) -> Path:
    target = outbox / "statuses" / f"{name}.yaml"
    temporary = target.with_name(target.name + ".part")
    temporary.write_text(yaml.safe_dump(status, allow_unicode=True), encoding="utf-8")
    os.rename(temporary, target)
    return target


def document_metadata(number: str = "101", to: str = B, **extra) -> dict:
    data = {"to": [{"organ_id": to, "organ_name": "UBND Tỉnh Nghệ An"}],
            "code": {"number": number, "notation": "VPCP-TTĐT"},
            "promulgation": {"place": "Hà Nội", "date": "2026-11-23"},
            "subject": f"Công văn số {number} về việc thử nghiệm",
            "attachments": [{"file": "Công văn số 101.pdf"}]}
    data.update(extra)
    return data


PDF = b"%PDF-1.4\n% test \xe1\x00\xff\n%%EOF\n"


def inbox_entries(exchange: Path) -> list[Path]:
    return sorted(p for p in (exchange / "inbox").glob("*/*") if p.is_dir()
                  and not p.name.startswith("."))
