"""Idle footprint: what a connector that sends a few documents an hour costs the server.

    python -m bench.idle_bench              # 30 s warm-up + 60 s measured (~100 s)
    python -m bench.idle_bench --quick      # 5 s + 10 s smoke run

A real ``edxml-connector run`` process in folder mode with a SQLite journal, with the example
configuration's schedules and sending, inbound, edXML and retention settings (only the paths, the
axis endpoint, the certificates and the health port are the lab's), against the axis simulator
on loopback. Method (../shared/docs/benchmarks.md, "Footprint"): after the warm-up, the daemon's
process tree (the daemon and its children, from /proc), the RSS of each (VmRSS) and the CPU %
of the tree over the measured window (utime + stime from /proc/PID/stat).

The daemon measured is a restarted one: the lab starts it once to create its journal, stops it
and starts it again, as a service runs on almost every day of its life. The very first start
after an install or an upgrade migrates the journal and keeps Alembic loaded (about 11 MB more,
connector/journal/schema_version.py); restarting the service gives the memory back.

Targets (issue 11): 1 process, RSS <= 80 MB, CPU <= 0.5 %. Printed after the figures: the RSS by
mapping of the daemon and, from ``bench.import_costs``, what each of its imports costs.
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

from bench.proc import memory_mb, own_cpu_seconds, process_tree, rss_by_mapping
from connector.config import EXAMPLE_CONFIG
from connector.devtools.lab import Lab

TARGET_PROCESSES = 1
TARGET_RSS_MB = 80.0
TARGET_CPU_PERCENT = 0.5
MAPPINGS_SHOWN = 15
"""How many of the largest mappings the breakdown of the main process's RSS names."""
EXAMPLE_SECTIONS = ("schedules", "outbound", "inbound", "edxml", "retention")
"""The example configuration's sections that decide what an idle daemon does."""


def example_settings() -> dict:
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    return {section: example[section] for section in EXAMPLE_SECTIONS if section in example}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm-up", type=float, default=30.0, help="seconds before measuring (30)")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds measured (60)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 s + 10 s")
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.quick:
        args.warm_up, args.seconds = 5.0, 10.0
    base = args.work or Path(tempfile.mkdtemp(prefix="idle-bench-"))
    with Lab(base) as lab:
        lab.a.configure(**example_settings())
        lab.start(agencies=[lab.a])  # the first start creates the journal (a migration)
        lab.a.stop()
        lab.a.start().wait_started(30.0)
        pid = lab.a.process.pid
        assert pid is not None
        time.sleep(args.warm_up)  # the method's warm-up: imports done, first polls made
        tree = process_tree(pid)
        cpu_before, started = sum(own_cpu_seconds(member) for member in tree), time.monotonic()
        time.sleep(args.seconds)  # the measured idle window itself
        tree = process_tree(pid)
        cpu = sum(own_cpu_seconds(member) for member in tree) - cpu_before
        elapsed = time.monotonic() - started
        rss = {str(member): round(memory_mb(member)["VmRSS"], 1) for member in tree}
        mappings = rss_by_mapping(pid)
        exit_code = lab.a.stop()
    total_rss = sum(rss.values())
    cpu_percent = 100.0 * cpu / elapsed
    summary = {
        "figure": "idle", "nproc": os.cpu_count(), "warm_up_s": args.warm_up,
        "measured_s": round(elapsed, 1), "processes": len(tree), "rss_mb": rss,
        "rss_total_mb": round(total_rss, 1), "cpu_percent": round(cpu_percent, 3),
        "targets": {"processes": TARGET_PROCESSES, "rss_mb": TARGET_RSS_MB,
                    "cpu_percent": TARGET_CPU_PERCENT},
        "met": {"processes": len(tree) <= TARGET_PROCESSES,
                "rss_mb": total_rss <= TARGET_RSS_MB,
                "cpu_percent": cpu_percent <= TARGET_CPU_PERCENT},
        "daemon_exit_code": exit_code,
    }
    print(json.dumps(summary), flush=True)
    shown = dict(list(mappings.items())[:MAPPINGS_SHOWN])
    shown["(the rest)"] = sum(mappings.values()) - sum(shown.values())
    print(json.dumps({"figure": "rss_by_mapping_mb",
                      "value": {name: round(mb, 1) for name, mb in shown.items()}}), flush=True)
    # What each import costs, from a fresh interpreter (decisions.md: "record the breakdown").
    subprocess.run([sys.executable, "-m", "bench.import_costs"], check=True)
    return 0 if exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
