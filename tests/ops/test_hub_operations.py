"""Operator commands on a hub (issue 14, part 3): `--agency ORGANID` narrows a command to one
unit; an action that would touch several units says how many and asks for `--all`; an item is
handled with its own unit's folders (and the statuses it makes are sent as that unit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from connector.cli import main
from connector.dms.base import Failure
from connector.dms.folder.side import FolderSide
from connector.journal import Journal

from .conftest import make_bundle

OUTSIDE = "000.00.00.A01"


@pytest.fixture
def hub(tmp_path: Path, dev_certs):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    units = []
    for agency in (dev_certs.agency_a, dev_certs.agency_b):
        units.append({"agency": {"organ_id": agency.organ_id, "name": f"Unit {agency.organ_id}"},
                      "axis": {"secret_file": str(secret)},
                      "certificate": {"key_file": str(agency.key), "cert_file": str(agency.cert)}})
    config = {"axis": {"endpoint": "http://127.0.0.1:9/axis"},
              "journal": {"url": f"sqlite:///{tmp_path / 'state' / 'journal.db'}",
                          "instance": "node1"},
              "state_dir": str(tmp_path / "state"), "exchange": {"root": str(tmp_path / "ex")},
              "health": {"enabled": False}, "agencies": units}
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path, [u["agency"]["organ_id"] for u in units], tmp_path / "ex"


def fail_one(journal: Journal, root: Path, name: str):
    """A unit's bundle claimed, journalled and failed as its daemon would."""
    make_bundle(root / "outbox" / f".{name}.tmp", OUTSIDE).rename(root / "outbox" / name)
    side = FolderSide(root, instance="node1")
    try:
        [item] = side.claim_ready()
        record = journal.outgoing.enqueue("folder", item.source_ref, "document",
                                          recipients=[OUTSIDE])
        [claimed] = journal.outgoing.claim_for_sending(10)
        failed = journal.outgoing.record_attempt_failed(claimed.id, "refused", permanent=True)
        side.mark_failed(item, Failure(journal_id=record.id, reason="refused",
                                       attempts=failed.attempts, failed_at=failed.updated_at))
    finally:
        side.close()
    return record


def run(capsys, config: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--config", str(config)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bulk_retry_asks_for_one_unit_or_all_and_each_item_goes_back_to_its_own_folders(hub, capsys):
    config, (first, second), exchange = hub
    with Journal.open(f"sqlite:///{config.parent / 'state' / 'journal.db'}", agency=first) as journal:
        mine = fail_one(journal, exchange / first, "a-doc")
        theirs = fail_one(journal.for_agency(second), exchange / second, "b-doc")
    assert (exchange / second / "failed" / "b-doc").exists()

    code, _, err = run(capsys, config, "retry", "--failed")
    assert code == 2 and "2 failed items in 2 units" in err and "--all" in err

    code, out, err = run(capsys, config, "retry", "--failed", "--agency", second)
    assert code == 0, err
    assert not (exchange / second / "failed" / "b-doc").exists()  # back in ITS work/
    assert any(p.name.endswith("--b-doc") for p in (exchange / second / "work").iterdir())
    assert (exchange / first / "failed" / "a-doc").exists()  # the other unit untouched

    code, out, err = run(capsys, config, "retry", "--failed", "--agency", "000.00.00.Z99")
    assert code == 2 and "no such unit" in err and first in err

    code, _, err = run(capsys, config, "cancel", mine.id, "--agency", second)
    assert code == 2 and f"belongs to unit {first}" in err
    code, _, err = run(capsys, config, "retry", "--failed", "--all")
    assert code == 0, err
    assert not (exchange / first / "failed" / "a-doc").exists()

    code, out, _ = run(capsys, config, "status", "--json", "--agency", second)
    assert [item["id"] for item in json.loads(out)["items"]] == [theirs.id]
    code, out, _ = run(capsys, config, "status")
    assert f"{first}:" in out and f"{second}:" in out  # every unit, each item with its unit
    code, out, _ = run(capsys, config, "units", "--json")
    assert [row["organ_id"] for row in json.loads(out)] == [first, second]
    code, _, err = run(capsys, config, "send", str(exchange / "nothing"))
    assert code == 2 and "several units" in err and "--agency" in err
    code, out, _ = run(capsys, config, "journal", "instances", "--json", "--agency", second)
    assert json.loads(out)["instances"][0]["outgoing_pending"] == 1
