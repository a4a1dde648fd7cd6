"""Helpers for the command-line tests: run ``edxml-connector`` in-process or as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from connector.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_METADATA = PROJECT_ROOT / "config" / "document.example.yaml"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(capsys):
    """``cli("inspect", path, "--json")`` -> Run(code, out, err), through connector.cli.main."""

    def run(*args) -> Run:
        capsys.readouterr()
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli_process(tmp_path):
    """The same, as a separate ``python -m connector`` process (what operators and scripts run)."""

    def run(*args, env: dict[str, str] | None = None) -> Run:
        environment = {**os.environ, **(env or {})}
        completed = subprocess.run([sys.executable, "-m", "connector", *map(str, args)],
                                   capture_output=True, text=True, cwd=PROJECT_ROOT,
                                   env=environment, timeout=120)
        return Run(completed.returncode, completed.stdout, completed.stderr)

    return run


@pytest.fixture
def attachment_files(tmp_path) -> dict[str, Path]:
    """The two files config/document.example.yaml names, with recognisable content."""
    pdf = tmp_path / "cong-van-1234.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% cong van 1234\n" + bytes(range(256)) * 40 + b"\n%%EOF\n")
    xlsx = tmp_path / "phu-luc-1.xlsx"
    xlsx.write_bytes(b"PK\x03\x04 not really a workbook, but a named .xlsx" + os.urandom(512))
    return {"pdf": pdf, "xlsx": xlsx}
