"""The service unit: `systemd-analyze verify` and the offline security score (exposure <= 2.0).

The unit is never started here (no systemd as PID 1 on the test machines): these are static
checks. systemd-analyze comes with Debian's `systemd` package.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "edxml-connector.service"
EXEC_PATH = "/opt/edxml-connector/venv/bin/edxml-connector"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (Debian package: systemd)")


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYZE, "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=60)


@needs_analyze
def test_verify_is_clean(tmp_path):
    # verify checks that ExecStart exists; point it at a stand-in executable and change nothing
    # else (the install test verifies the real path inside an installed prefix).
    stand_in = tmp_path / "edxml-connector"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    text = UNIT.read_text()
    assert text.count(EXEC_PATH) == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(EXEC_PATH, str(stand_in)))
    result = verify(copy)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a misspelt key is reported."""
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("ProtectHome=yes", "ProtectHomes=yes"))
    assert "Unknown key 'ProtectHomes'" in verify(copy).stderr


@needs_analyze
def test_security_exposure_is_at_most_2():
    result = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    print(f"systemd-analyze security exposure: {exposure}")
    assert exposure <= 2.0


def test_the_unit_says_what_the_issue_asks():
    s = unit_settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["ExecStart"] == [f"{EXEC_PATH} run --config /etc/edxml-connector/connector.yaml"]
    assert s["Restart"] == ["on-failure"] and s["WatchdogSec"]
    assert s["User"] == ["edxml-connector"] and s["SupplementaryGroups"] == ["edxml"]
    assert s["UMask"] == ["0007"]
    assert s["StateDirectory"] == ["edxml-connector"]
    assert s["LogsDirectory"] == ["edxml-connector"]
    assert s["ConfigurationDirectory"] == ["edxml-connector"]
    assert s["ReadWritePaths"] == ["-/var/lib/edxml-connector/exchange"]
    assert s["LoadCredential"] == [
        "axis-secret:/etc/edxml-connector/credentials/axis-secret",
        "key-password:/etc/edxml-connector/credentials/key-password"]
    assert s["CapabilityBoundingSet"] == [""]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "@system-service" in s["SystemCallFilter"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "MemoryDenyWriteExecute", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
                "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID", "LockPersonality",
                "RemoveIPC"):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"]
    assert "IPAddressDeny" not in s  # the axis is remote
