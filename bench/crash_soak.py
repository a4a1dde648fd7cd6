"""Crash soak: ``kill -9`` the connectors at seeded random moments while a batch of documents
flows both ways through a simulator that injects faults, then check that nothing was lost,
nothing was duplicated, nothing is stuck, and the journal's history explains every item.

The same scenario runs small in the test suite (``tests/e2e/test_crash.py``) and large here::

    python -m bench.crash_soak                       # 200 A→B + 200 B→A, 20 kills, seed 1
    python -m bench.crash_soak --out 50 --in 50 --kills 5 --seed 7

Faults: HTTP 503, connection resets, and "accept then lose the response" (the send is stored
by the axis but the connector never hears so: it sends again, and the receiver must
de-duplicate). Kills hit A or B (seeded), at random moments, each followed by a restart.
After the last kill the faults are switched off and the lab must converge.

Checks (each failure names the items concerned):
- every document reaches its recipient's inbox exactly once after de-duplication: the distinct
  (sender, DocumentId, business type) in the inbox equal what was sent, and there is exactly one
  inbox folder per document (no duplicate folders);
- nothing stuck: every outgoing item of both journals is ``sent``; ``outbox/`` and ``work/`` are
  empty; no ``failed/`` entries; every received item is delivered or a recorded duplicate;
- nothing lost: each inbox document's attachment equals the bytes dropped;
- history: each outgoing item's events start with ``enqueued`` and contain ``sent``; each incoming
  item's events contain its final state.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.devtools.lab import AgencyNode, Lab, document_metadata, pdf_bytes

FAULTS = {"error_rate": 0.04, "reset_rate": 0.03, "lose_response_rate": 0.04}


@dataclass
class CrashReport:
    seed: int
    sent_a_to_b: int
    sent_b_to_a: int
    kills: list[str] = field(default_factory=list)
    faults_injected: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    axis_sends: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "sent_a_to_b": self.sent_a_to_b,
                "sent_b_to_a": self.sent_b_to_a, "kills": len(self.kills),
                "kill_targets": dict(Counter(k.split("@")[0] for k in self.kills)),
                "faults_injected": self.faults_injected,
                "duplicates_dropped": self.duplicates_dropped, "axis_sends": self.axis_sends,
                "seconds": round(self.seconds, 1), "ok": self.ok, "problems": self.problems}


def _drop_batch(sender: AgencyNode, receiver: AgencyNode, prefix: str, count: int,
                size: int) -> dict[str, bytes]:
    """``count`` bundles (code numbers PREFIX0001...); returns number -> attachment bytes."""
    sent = {}
    for index in range(1, count + 1):
        number = f"{prefix}{index:04d}"
        data = pdf_bytes(f"crash {number}", size=size)
        sender.drop_bundle(f"crash-{number}", document_metadata(
            [receiver.organ_id], number, f"Thử nghiệm sự cố {number}",
            notation="TN-SC"), {f"tep-{number}.pdf": data})
        sent[number] = data
    return sent


def _kill_schedule(lab: Lab, rng: random.Random, kills: int, spread: float,
                   report: CrashReport) -> None:
    """``kills`` times: wait a random moment, kill -9 A or B, restart it at once."""
    for _ in range(kills):
        time.sleep(rng.uniform(0.2, spread))
        node = lab.a if rng.random() < 0.6 else lab.b
        node.kill()
        report.kills.append(f"{node.label}@{time.monotonic():.1f}")
        time.sleep(rng.uniform(0.0, 0.3))
        node.start()
        node.wait_started(timeout=60)


def _converged(lab: Lab, expect_b: int, expect_a: int) -> bool:
    for node, expected in ((lab.b, expect_b), (lab.a, expect_a)):
        if len(node.inbox_folders()) < expected:
            return False
        if node.entries("outbox") or node.entries("work"):
            return False
    for node in lab.agencies:
        counts = node.status_json("--limit", "1")["counts"]
        pending_out = sum(n for state, n in counts["outgoing"].items() if state != "sent")
        pending_in = sum(n for state, n in counts["incoming"].items()
                         if state not in ("delivered", "duplicate"))
        if pending_out or pending_in:
            return False
    return True


def _check_inbox(receiver: AgencyNode, sender: AgencyNode, sent: dict[str, bytes],
                 report: CrashReport) -> None:
    docs = receiver.inbox_documents()
    keys = Counter()
    by_number: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        business = ((doc.get("document") or {}).get("business") or {}).get("type")
        keys[(doc.get("sender"), doc.get("document_id"), business)] += 1
        by_number.setdefault((doc.get("code") or "").split("/")[0], []).append(doc)
    where = f"{receiver.label}'s inbox"
    if len(keys) != len(sent):
        report.problems.append(f"{where}: {len(keys)} distinct documents, {len(sent)} sent")
    doubled = [key for key, n in keys.items() if n > 1]
    if doubled:
        report.problems.append(f"{where}: duplicate folders for {doubled[:5]}")
    missing = sorted(set(sent) - set(by_number))
    if missing:
        report.problems.append(f"{where}: missing {missing[:10]} ({len(missing)} in all)")
    for number, data in sent.items():
        for doc in by_number.get(number, [])[:1]:
            path = Path(doc["_folder"]) / f"tep-{number}.pdf"
            if not path.is_file() or path.read_bytes() != data:
                report.problems.append(f"{where}: {number}: attachment missing or changed")
            if doc.get("sender") != sender.organ_id:
                report.problems.append(f"{where}: {number}: sender {doc.get('sender')}")


def _check_stuck(node: AgencyNode, report: CrashReport) -> None:
    for folder in ("outbox", "work", "failed"):
        left = node.entries(folder)
        if left:
            report.problems.append(f"{node.label}: {folder}/ not empty: {left[:5]}")
    status = node.status_json()
    for row in status["items"]:
        if row["direction"] == "out" and row["state"] != "sent":
            report.problems.append(f"{node.label}: outgoing {row['id']} ({row['name']}) is "
                                   f"{row['state']}: {row['last_error']}")
        if row["direction"] == "in" and row["state"] not in ("delivered", "duplicate"):
            report.problems.append(f"{node.label}: incoming {row['id']} is {row['state']}: "
                                   f"{row['last_error']}")
    report.duplicates_dropped[node.label] = status["counts"]["incoming"].get("duplicate", 0)


def _check_history(node: AgencyNode, report: CrashReport) -> None:
    """Every item's events explain where it is (read straight from the journal)."""
    from connector.journal import Journal

    journal = Journal.open(f"sqlite:///{node.journal_path}")
    try:
        for record in journal.outgoing.list_outgoing(limit=100_000):
            names = [event.event for event in journal.events(record.id)]
            if not names or names[0] != "enqueued" or "sent" not in names:
                report.problems.append(f"{node.label}: history of outgoing {record.id} "
                                       f"({record.state.value}) does not explain it: {names}")
        for record in journal.incoming.list_incoming(limit=100_000):
            names = [event.event for event in journal.events(record.id)]
            final = record.state.value
            if final not in names and not (final == "duplicate" and "duplicate" in
                                           " ".join(names)):
                report.problems.append(f"{node.label}: history of incoming {record.id} "
                                       f"({final}) does not explain it: {names}")
    finally:
        journal.close()


def run_crash_scenario(base: Path, *, seed: int, to_b: int, to_a: int, kills: int,
                       size: int = 2_000, spread: float = 1.5, converge_timeout: float = 120.0,
                       certs: Any = None) -> CrashReport:
    """The whole scenario in ``base``; returns the report (``report.ok``)."""
    rng = random.Random(seed)
    report = CrashReport(seed=seed, sent_a_to_b=to_b, sent_b_to_a=to_a)
    started = time.monotonic()
    with Lab(base, seed=seed, certs=certs) as lab:
        for node in lab.agencies:
            node.configure(outbound={"concurrency": 4})
        lab.start()
        lab.sim.set_faults(**FAULTS)
        sent_to_b = _drop_batch(lab.a, lab.b, "1", to_b, size)
        sent_to_a = _drop_batch(lab.b, lab.a, "2", to_a, size)
        _kill_schedule(lab, rng, kills, spread, report)
        report.faults_injected = lab.sim.admin("faults")["injected"]
        lab.sim.set_faults(clear=True)
        try:
            lab.wait_for(lambda: _converged(lab, to_b, to_a), timeout=converge_timeout,
                         interval=0.5, what="both agencies converged (all sent, all delivered)",
                         seen=lambda: {n.label: n.status_json("--limit", "1")["counts"]
                                       for n in lab.agencies},
                         require_running=lab.processes)
        except Exception as error:  # noqa: BLE001 - report it with the other findings
            report.problems.append(f"did not converge: {error}")
        _check_inbox(lab.b, lab.a, sent_to_b, report)
        _check_inbox(lab.a, lab.b, sent_to_a, report)
        for node in lab.agencies:
            _check_stuck(node, report)
        counters = lab.sim.admin("counters")["agencies"]
        report.axis_sends = sum(agency["requests"].get("sendEdoc", 0)
                                for agency in counters.values())
        lab.close()
        for node in lab.agencies:
            _check_history(node, report)
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash_soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=int, default=200, help="documents A → B (200)")
    parser.add_argument("--in", dest="into", type=int, default=200, help="documents B → A (200)")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 count (20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", type=int, default=20_000, help="attachment bytes (20000)")
    parser.add_argument("--spread", type=float, default=3.0,
                        help="max seconds between kills (3)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (kept)")
    args = parser.parse_args(argv)
    base = args.work or Path(tempfile.mkdtemp(prefix="crash-soak-"))
    report = run_crash_scenario(base, seed=args.seed, to_b=args.out, to_a=args.into,
                                kills=args.kills, size=args.size, spread=args.spread,
                                converge_timeout=600)
    print(json.dumps(report.as_json(), ensure_ascii=False))
    print(f"work folder: {base}", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
