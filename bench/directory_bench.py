"""Syncing a national directory of 100,000 agencies (``python -m bench.directory_bench``).

A simulator in its own process serves a generated directory (``axis-sim --directory``, JSON
lines with Vietnamese names and old codes); a fresh process then runs
``edxml-connector agencies sync --full`` against it with a SQLite journal, and once more
without ``--full`` (the changes since, after 100 registrations). Reported: the wall time of each
sync (the whole command: start, imports, request, journal, exit), and the peak RSS of the syncing
process (``ru_maxrss``), in all and above a baseline: ``edxml-connector agencies find x`` on the
same journal, which imports the same modules. Targets: the full sync under a minute, its peak
memory under 100 MB.

``--agencies N`` (default 100,000), ``--quick`` (10,000). Results are recorded in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
PROVINCES = ["Hà Nội", "Nghệ An", "Hòa Bình", "Thừa Thiên Huế", "Đắk Lắk", "Cà Mau", "Lào Cai"]
UNITS = ["Ủy ban nhân dân xã", "Sở Nội vụ", "Phòng Giáo dục và Đào tạo", "Trường Tiểu học",
         "Trạm Y tế", "Công an phường"]


def write_directory(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for number in range(count):
            code = f"{number // 10000:03d}.{number // 100 % 100:02d}.{number % 100:02d}.H{number % 63:02d}"
            out.write(json.dumps({
                "code": code, "name": f"{UNITS[number % len(UNITS)]} số {number}, "
                                      f"tỉnh {PROVINCES[number % len(PROVINCES)]}",
                "pid": "000.00.00.H41", "mail": f"unit{number}@example.gov.vn",
                "oldCode": f"OLD.{number:06d}" if number % 3 == 0 else ""},
                ensure_ascii=False) + "\n")


def measure(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run in a fresh Python that reports its one child's peak RSS (so runs do not mix)."""
    code = ("import json,resource,subprocess,sys,time;t=time.perf_counter();"
            "c=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
            "print(json.dumps({'s':time.perf_counter()-t,'rss':resource.getrusage("
            "resource.RUSAGE_CHILDREN).ru_maxrss,'rc':c.returncode,'out':c.stdout,'err':c.stderr}))")
    completed = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "connector", *args],
                               capture_output=True, text=True, env=env, cwd=PROJECT, timeout=900)
    result = json.loads(completed.stdout)
    if result["rc"] not in (0, 1):
        raise SystemExit(f"{args} failed: {result['err'][-2000:]}")
    return result["s"], result["rss"] / 1024, result["out"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agencies", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    count = 10_000 if args.quick else args.agencies

    from connector.devtools.devcerts import make_dev_certs

    with tempfile.TemporaryDirectory(prefix="directory-bench-") as scratch:
        root = Path(scratch)
        directory = root / "directory.jsonl"
        write_directory(directory, count)
        agencies = root / "agencies.yaml"
        agencies.write_text(yaml.safe_dump({"agencies": [
            {"organ_id": "000.00.00.G22", "name": "Văn phòng Chính phủ", "systemid": "000.00.00.G22",
             "secret": "bench-secret"}]}, allow_unicode=True), encoding="utf-8")
        port = _free_port()
        simulator = subprocess.Popen(
            [sys.executable, "-m", "connector", "axis-sim", "--listen", f"127.0.0.1:{port}",
             "--data", str(root / "axis"), "--agencies", str(agencies), "--directory", str(directory)],
            cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_port(port)
            certs = make_dev_certs(root / "certs")
            secret = root / "secret"
            secret.write_text("bench-secret")
            secret.chmod(0o600)
            config = root / "connector.yaml"
            config.write_text(yaml.safe_dump({
                "agency": {"organ_id": "000.00.00.G22", "name": "Văn phòng Chính phủ"},
                "certificate": {"p12_file": str(certs.agency_a.p12),
                                "password_file": str(certs.agency_a.password_file)},
                "axis": {"endpoint": f"http://127.0.0.1:{port}", "secret_file": str(secret),
                         "read_timeout": 120},
                "journal": {"url": f"sqlite:///{root / 'journal.db'}"},
                "state_dir": str(root / "state"), "exchange": {"root": str(root / "exchange")},
                }, allow_unicode=True))
            env = {**os.environ}
            find_s, find_rss, _ = measure(["agencies", "find", "x", "--config", str(config)], env)
            full_s, full_rss, full_out = measure(["agencies", "sync", "--full", "--config", str(config)], env)
            _register(port, root, count)
            changes_s, changes_rss, changes_out = measure(["agencies", "sync", "--config", str(config)], env)
            search_s, _, search_out = measure(["agencies", "find", "uy ban xa so 4242 ha noi",
                                               "--config", str(config)], env)
        finally:
            simulator.terminate()
            simulator.wait(10)
    print(json.dumps({
        "bench": "directory", "agencies": count,
        "full_sync_s": round(full_s, 2), "full_sync_peak_rss_mb": round(full_rss, 1),
        "baseline_rss_mb (agencies find, same imports)": round(find_rss, 1),
        "full_sync_above_baseline_mb": round(full_rss - find_rss, 1),
        "changes_sync_s": round(changes_s, 2), "changes_sync_peak_rss_mb": round(changes_rss, 1),
        "find_s": round(search_s, 2), "full_output": full_out.strip().splitlines()[-1:],
        "changes_output": changes_out.strip().splitlines()[-1:],
        "find_output": search_out.strip().splitlines()[:2]}, indent=1, ensure_ascii=False))
    return 0


def _register(port: int, root: Path, count: int) -> None:
    """100 registrations through the axis API (what the changes sync then fetches)."""
    sys.path.insert(0, str(PROJECT))
    from connector.axis.client import AxisClient, AxisSettings

    settings = AxisSettings(endpoint=f"http://127.0.0.1:{port}", systemid="000.00.00.G22",
                            secret="bench-secret", organ_id="000.00.00.G22")
    time.sleep(1.1)  # the changes are asked for by whole seconds: start after the full sync's
    with AxisClient(settings) as client:
        for number in range(100):
            client.register_agency(f"999.00.{number:02d}.Z01", f"Đơn vị mới số {number}")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the simulator did not start")


if __name__ == "__main__":
    raise SystemExit(main())
