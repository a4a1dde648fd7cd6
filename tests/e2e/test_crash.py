"""Crash test: kill -9 the connectors at seeded random moments during a batch of outgoing and
incoming documents while the simulator injects 503s, resets and "accept then lose the
response"; restart; then every document is in its recipient's inbox exactly once, nothing is
stuck or lost, and the journal's history explains every item. The scenario is
``bench.crash_soak.run_crash_scenario`` (the larger run: ``python -m bench.crash_soak``).
"""

from __future__ import annotations

import pytest

from bench.crash_soak import run_crash_scenario

pytestmark = pytest.mark.slow


def test_kill_9_during_a_batch_both_ways_loses_and_duplicates_nothing(tmp_path, dev_certs):
    report = run_crash_scenario(tmp_path / "crash", seed=20261123, to_b=16, to_a=8, kills=4,
                                spread=0.8, converge_timeout=90, certs=dev_certs)
    summary = report.as_json()
    assert report.ok, "\n".join(report.problems) + f"\n{summary}"
    assert len(report.kills) == 4
    # the faults really happened, including sends the axis stored but never answered
    assert sum(report.faults_injected.values()) > 0, summary
