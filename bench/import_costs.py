"""What each import of the daemon costs in resident memory (issue 11, decisions.md "Idle memory").

    python -m bench.import_costs

A fresh interpreter imports, in the order the daemon meets them, the libraries the guide names
and then the connector's own parts, and prints the growth of its RSS (VmRSS) after each: the
breakdown that says where an idle daemon's memory goes and what dropping one import would save.
Run in its own process so that nothing is imported before it starts (``bench.idle_bench`` runs it
after its measurement).
"""

from __future__ import annotations

import importlib
import json
import sys

IMPORT_ORDER = (
    "yaml", "pydantic", "connector", "lxml.etree", "cryptography.x509", "signxml", "requests",
    "tenacity", "sqlalchemy", "prometheus_client", "watchdog.observers",
    "apscheduler.schedulers.background",
    "connector.config", "connector.journal", "connector.edxml.signing", "connector.axis.client",
    "connector.dms.folder.side", "connector.dms.database.side", "connector.pipeline.outbound",
    "connector.pipeline.inbound", "connector.service.daemon", "connector.cli",
)
"""Libraries first (each one's own cost), then the connector's parts (their code, their schemas,
and what of a library only they reach). ``connector`` is structlog: the package's ``__init__``
imports it with ``rich`` hidden, as the daemon does (12 MB with rich, 5 without)."""


def resident_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def import_costs() -> dict[str, float]:
    """Each import's RSS increment in MB, the interpreter's own size first."""
    costs = {"(interpreter)": round(resident_mb(), 1)}
    for name in IMPORT_ORDER:
        before = resident_mb()
        importlib.import_module(name)
        costs[name] = round(resident_mb() - before, 1)
    costs["(total)"] = round(resident_mb(), 1)
    return costs


def main() -> int:
    print(json.dumps({"figure": "rss_by_import_mb", "value": import_costs()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
