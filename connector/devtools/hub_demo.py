"""``scripts/demo.sh --hub N``: one hub daemon serving N units, and one outside agency.

Every unit sends one document to the next unit and to the outside agency (B); the demo waits
until every document arrived (each unit's inbox holds exactly the one its neighbour sent, B's
inbox one from each unit) and every sender holds both recipients' status 01, prints a table per
unit (sent, received, statuses back), stops every process and exits 0 — only when every
document arrived exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from connector.devtools.hub_lab import HubLab, HubUnit
from connector.devtools.lab import (
    LabError,
    document_metadata,
    pdf_bytes,
    run_and_report,
    say,
    time_left,
)


def run_hub_demo(base: Path, units: int, *, timeout: float = 180.0) -> dict[str, Any]:
    """Run it; returns the summary, raises LabError on any failure or timeout."""
    if units < 2:
        raise LabError("--hub needs at least 2 units (each sends to another)")
    started = time.monotonic()
    remaining = time_left(timeout, "the hub demo")
    with HubLab(base, units) as hub:
        say(f"work folder: {base}; {units} units with their own certificates in {hub.home}")
        say(f"starting the axis simulator, the outside agency {hub.outside.organ_id} and ONE "
             f"hub daemon for {units} units")
        hub.start(timeout=min(60.0, remaining()))
        ring = hub.units
        for index, unit in enumerate(ring):
            peer = ring[(index + 1) % units]
            unit.drop_bundle(f"hub-{index}", document_metadata(
                [peer.organ_id, hub.outside.organ_id], str(100 + index),
                f"Công văn của {unit.organ_id} gửi {peer.organ_id}"),
                {f"Công văn {index}.pdf": pdf_bytes(f"hub {index}")})
        say(f"every unit sent one document to the next unit and to {hub.outside.organ_id}")

        def arrived() -> bool:
            return (all(u.inbox_documents() for u in ring)
                    and len(hub.outside.inbox_documents()) >= units)

        hub.lab.wait_for(arrived, timeout=remaining(), interval=0.5,
                         what="every document in its inboxes",
                         seen=lambda: f"{sum(bool(u.inbox_documents()) for u in ring)} of "
                                      f"{units} units and {len(hub.outside.inbox_documents())} "
                                      f"documents at {hub.outside.organ_id}",
                         require_running=[hub.process, hub.outside.process])
        say("every document arrived; waiting for the statuses 01")

        def answered() -> bool:
            return all(len(_statuses(u)) == 2 and set(_statuses(u).values()) == {"01"}
                       for u in ring)

        hub.lab.wait_for(answered, timeout=remaining(), interval=0.5,
                         what="status 01 from both recipients at every unit",
                         seen=lambda: f"{sum(len(_statuses(u)) == 2 for u in ring)} of {units}",
                         require_running=[hub.process])
        rows = [_row(unit, ring[(index - 1) % units], hub) for index, unit in enumerate(ring)]
        outside = Counter(d.get("sender") for d in hub.outside.inbox_documents())
        exactly_once = (all(row["received_once"] for row in rows)
                        and outside == Counter({u.organ_id: 1 for u in ring}))
        processes = len({hub.process.pid}) if hub.process.pid else 0
        codes = {"hub": hub.process.stop(), "outside": hub.outside.process.stop(),
                 "axis-sim": hub.lab.sim.stop()}
    summary = {"work_folder": str(base), "units": rows, "outside": dict(outside),
               "exactly_once": exactly_once, "hub_processes": processes,
               "stopped": codes, "seconds": round(time.monotonic() - started, 1)}
    if not exactly_once:
        raise LabError(f"a document did not arrive exactly once: {summary}")
    bad = {name: code for name, code in codes.items() if code not in (0, None)}
    if bad:
        raise LabError(f"processes did not stop cleanly on SIGTERM: {bad}")
    return summary


def _statuses(unit: HubUnit) -> dict[str, str]:
    receipts = list(unit.receipts().values())
    if len(receipts) != 1:
        return {}
    return {organ: str(entry.get("status")) for organ, entry in receipts[0]["recipients"].items()}


def _row(unit: HubUnit, sender: HubUnit, hub: HubLab) -> dict[str, Any]:
    received = unit.inbox_documents()
    return {"unit": unit.organ_id, "sent": len(unit.receipts()),
            "received": len(received),
            "received_once": len(received) == 1 and received[0].get("sender") == sender.organ_id,
            "statuses": _statuses(unit)}


def print_hub_summary(summary: dict[str, Any]) -> None:
    print("\nHub summary")
    print(f"  work folder: {summary['work_folder']} (logs in logs/)")
    print(f"  {'unit':<15} {'sent':>4} {'received':>8}  statuses back")
    for row in summary["units"]:
        statuses = ", ".join(f"{organ} {code}" for organ, code in sorted(row["statuses"].items()))
        print(f"  {row['unit']:<15} {row['sent']:>4} {row['received']:>8}  {statuses}")
    print(f"  outside agency received {sum(summary['outside'].values())} documents, one from "
          f"each unit; every document arrived exactly once")
    print(f"  {len(summary['units'])} units in {summary['hub_processes']} hub process; done in "
          f"{summary['seconds']} s; every process stopped cleanly")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m connector.devtools.hub_demo",
                                     description=__doc__)
    parser.add_argument("work", nargs="?", type=Path,
                        help="work folder (default: a new folder under ./demo-run/)")
    parser.add_argument("--hub", type=int, metavar="N", default=50, help="units (50)")
    parser.add_argument("--timeout", type=float, default=180.0, help="overall limit (180 s)")
    args = parser.parse_args(argv)
    return run_and_report(args.work, lambda work: run_hub_demo(work, args.hub,
                                                                timeout=args.timeout),
                          print_hub_summary)


if __name__ == "__main__":
    raise SystemExit(main())
