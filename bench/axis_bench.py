"""Sends per second through the local axis simulator: our client against a bare requests loop.

    python -m bench.axis_bench [--sends N] [--repetitions R] [--kb SIZE]

The simulator runs as a separate process (``edxml-connector axis-sim``) on loopback, as in the
demo. Both loops POST the same ~100 KB package to the same simulator, alternating runs:

* **client** — ``AxisClient.send_edoc(path)``: a fresh signed parameter set per request, the
  package hashed in a first pass and streamed from disk in a second, reply classification and
  the retry wrapper (no fault is injected, so no retry happens);
* **bare** — a plain ``requests.Session.post`` of the same bytes + CRLF with one header set
  signed once before the loop (the simulator must still accept it, so that both loops cost the
  server the same: verify, hash, parse, store).

Figures are the median of the runs (min/max printed), and the ratio client/bare (target ≥ 0.7).
Recorded figures are in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

from connector.axis import protocol as p
from connector.axis.client import AxisClient, AxisSettings, RetryPolicy
from connector.axis.sim.samples import make_document

SENDER, RECIPIENT = "000.00.00.G22", "000.00.00.H41"
SECRET = "bench-secret"
TARGET_RATIO = 0.7


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _package(size_kb: int) -> bytes:
    """A document package of about ``size_kb`` KB (base64 attachment included)."""
    overhead = len(make_document(SENDER, [RECIPIENT], attachment=b""))
    raw = max(0, (size_kb * 1024 - overhead) * 3 // 4)
    return make_document(SENDER, [RECIPIENT], attachment=os.urandom(raw))


def _start_simulator(work: Path) -> tuple[subprocess.Popen, str]:
    agencies = work / "agencies.yaml"
    agencies.write_text(yaml.safe_dump({"agencies": [
        {"organ_id": SENDER, "systemid": SENDER, "secret": SECRET, "name": "Văn phòng Chính phủ"},
        {"organ_id": RECIPIENT, "systemid": RECIPIENT, "secret": SECRET, "name": "UBND Nghệ An"},
    ]}, allow_unicode=True), encoding="utf-8")
    port = _free_port()
    log = open(work / "axis-sim.log", "wb")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "axis-sim", "--listen", f"127.0.0.1:{port}",
         "--data", str(work / "state"), "--agencies", str(agencies)],
        stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, url
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the simulator did not start; see " + str(work / "axis-sim.log"))


def _client_loop(client: AxisClient, path: Path, sends: int) -> float:
    started = time.perf_counter()
    for _ in range(sends):
        client.send_edoc(path)
    return sends / (time.perf_counter() - started)


def _bare_loop(session: requests.Session, url: str, package: bytes, sends: int) -> float:
    signed = p.build_signed_headers(
        systemid=SENDER, secret=SECRET, content_type=p.PACKAGE_CONTENT_TYPE,
        params={"from": SENDER, "servicetype": p.SERVICE_TYPE, "messagetype": "edoc",
                "hash-file": p.hash_file_sdk(package)})
    body = package + p.SEND_BODY_TRAILER
    started = time.perf_counter()
    for _ in range(sends):
        response = session.post(url + "/" + p.OP_SEND, data=body, headers=signed.wire,
                                timeout=(10, 60))
        if response.status_code != 200 or b'"OK"' not in response.content[:40]:
            raise SystemExit(f"bare loop refused: {response.status_code} {response.text[:200]}")
    return sends / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=100, help="sends per run (default 100)")
    parser.add_argument("--repetitions", type=int, default=7, help="runs per loop (default 7)")
    parser.add_argument("--kb", type=int, default=100, help="package size in KB (default 100)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="axis-bench-") as tmp:
        work = Path(tmp)
        package = _package(args.kb)
        path = work / "package.edxml"
        path.write_bytes(package)
        process, url = _start_simulator(work)
        began = time.monotonic()
        try:
            settings = AxisSettings(endpoint=url, systemid=SENDER, secret=SECRET,
                                    retry=RetryPolicy(max_attempts=1))
            with AxisClient(settings) as client, requests.Session() as session:
                session.trust_env = False
                _bare_loop(session, url, package, 20)  # warm-up both paths and the server
                _client_loop(client, path, 20)
                bare: list[float] = []
                ours: list[float] = []
                for repetition in range(args.repetitions):
                    # Alternate which loop goes first so drift on a shared machine hits both.
                    if repetition % 2 == 0:
                        bare.append(_bare_loop(session, url, package, args.sends))
                        ours.append(_client_loop(client, path, args.sends))
                    else:
                        ours.append(_client_loop(client, path, args.sends))
                        bare.append(_bare_loop(session, url, package, args.sends))
        finally:
            process.terminate()
            process.wait(timeout=15)
        wall = time.monotonic() - began

    ours_median, bare_median = statistics.median(ours), statistics.median(bare)
    ratio = ours_median / bare_median
    size_kb = round(len(package) / 1024, 1)
    figures = [
        {"bench": "axis", "figure": f"client sends/s ({size_kb} KB)", "value": round(ours_median, 2),
         "unit": "sends/s", "min": round(min(ours), 2), "max": round(max(ours), 2),
         "baseline": round(bare_median, 2), "ratio": round(ratio, 3), "target": TARGET_RATIO},
        {"bench": "axis", "figure": f"bare requests sends/s ({size_kb} KB)",
         "value": round(bare_median, 2), "unit": "sends/s", "min": round(min(bare), 2),
         "max": round(max(bare), 2), "baseline": None, "ratio": None, "target": None},
    ]
    for figure in figures:
        print(json.dumps(figure, ensure_ascii=False))
    print()
    print(f"{'figure':<36}{'median':>10}{'min':>10}{'max':>10}{'ratio':>8}{'target':>8}")
    print(f"{'client sends/s':<36}{ours_median:>10.1f}{min(ours):>10.1f}{max(ours):>10.1f}"
          f"{ratio:>8.2f}{TARGET_RATIO:>8.2f}")
    print(f"{'bare requests sends/s':<36}{bare_median:>10.1f}{min(bare):>10.1f}"
          f"{max(bare):>10.1f}")
    print(f"\n{args.repetitions} runs x {args.sends} sends per loop, package {size_kb} KB, "
          f"wall {wall:.1f} s, nproc {os.cpu_count()}")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
