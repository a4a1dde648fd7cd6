"""Operator commands from a shell without the service's credentials; `send` checking recipients
against the axis's agency list; `journal instances` / `journal adopt` for a server gone for good."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml

from connector.journal import Journal, OutgoingState

from .conftest import make_bundle, received_document


@pytest.fixture
def credential_config(site, monkeypatch):
    """The site's config with the axis secret as a systemd credential, in a shell that has no
    $CREDENTIALS_DIRECTORY (what an operator gets outside the service)."""
    config = yaml.safe_load(site.config.read_text(encoding="utf-8"))
    config["axis"].pop("secret_file")
    config["axis"]["secret_credential"] = "axis-secret"
    site.config.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    return site.config


def test_read_only_commands_work_without_the_secrets(ctx, site, cli, credential_config, tmp_path):
    received_document(ctx, site)
    code, out, err = cli("status", "--json")
    assert code == 0, err
    assert json.loads(out)["counts"]["incoming"]["acknowledged"] == 1
    assert cli("inbox", "list", "--json")[0] == 0
    assert cli("quarantine", "list")[0] == 0
    assert cli("journal", "instances")[0] == 0
    assert cli("journal", "backup", str(tmp_path / "copy.db"))[0] == 0

    # the daemon and `check` still need every secret, and say which one
    code, out, _ = cli("check")
    assert code == 1
    assert out.startswith("FAIL config:") and "axis.secret_credential" in out


def test_send_without_the_axis_secret_queues_with_a_warning(ctx, site, cli, credential_config,
                                                            tmp_path):
    code, out, err = cli("send", str(make_bundle(tmp_path / "bundle", site.peer)))
    assert code == 0, err
    assert "queued" in out
    assert "recipients_not_checked" in err and "axis.secret_credential" in err


def _agency_cache(site, *organ_ids: str) -> None:
    site.state.mkdir(parents=True, exist_ok=True)
    (site.state / "agencies.json").write_text(json.dumps({
        "loaded_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "agencies": {organ_id: f"Cơ quan {organ_id}" for organ_id in organ_ids}}))


def test_send_refuses_a_recipient_the_axis_does_not_list(ctx, site, cli, tmp_path):
    _agency_cache(site, site.organ_id, site.peer)  # the daemon's cached getAgenciesList

    code, _, err = cli("send", str(make_bundle(tmp_path / "bad", "000.00.00.H99")))
    assert code == 2
    assert "document.yaml: To/OrganId: unknown recipient OrganId(s) 000.00.00.H99" in err
    assert ctx.journal.outgoing.list_outgoing() == []

    code, out, err = cli("send", str(make_bundle(tmp_path / "good", site.peer)))
    assert code == 0, err
    assert "recipients_not_checked" not in err


def test_send_checks_recipients_off_when_configured(ctx, site, cli, tmp_path):
    _agency_cache(site, site.organ_id)
    config = yaml.safe_load(site.config.read_text(encoding="utf-8"))
    config["outbound"] = {"check_recipients": False}
    site.config.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    assert cli("send", str(make_bundle(tmp_path / "b", "000.00.00.H99")))[0] == 0


def _items_of_old_server(site) -> tuple[Journal, list[str]]:
    config = yaml.safe_load(site.config.read_text(encoding="utf-8"))
    old = Journal.open(config["journal"]["url"], instance="old-node", owner="old-node:1")
    first = old.outgoing.enqueue("folder", "20261123T000000.000000Z-0001@old-node--a", "document",
                        recipients=[site.peer])
    second = old.outgoing.enqueue("folder", "20261123T000000.000000Z-0002@old-node--b", "document",
                         recipients=[site.peer])
    return old, [first.id, second.id]


def test_journal_instances_and_adopt(ctx, site, cli):
    old, ids = _items_of_old_server(site)
    try:
        code, out, _ = cli("journal", "instances", "--json")
        assert code == 0
        listed = json.loads(out)
        assert listed["this_instance"] == "node1"
        assert listed["instances"] == [{"instance": "old-node", "outgoing_pending": 2,
                                        "incoming_unfinished": 0, "this": False}]

        [claimed] = old.outgoing.claim_for_sending(1)  # the old server is still at work
        code, _, err = cli("journal", "adopt", "old-node")
        assert code != 0 and "may still be running" in err and "force" in err
        assert {r.instance for r in ctx.journal.outgoing.list_outgoing()} == {"old-node"}

        code, out, err = cli("journal", "adopt", "old-node", "--force")
        assert code == 0, err
        assert "adopted 2 outgoing and 0 incoming item(s) from old-node into node1" in out
        assert all(item_id in out for item_id in ids)
        records = {r.id: r for r in ctx.journal.outgoing.list_outgoing()}
        assert {r.instance for r in records.values()} == {"node1"}
        assert records[claimed.id].state is OutgoingState.QUEUED  # put back in line
        assert [e.event for e in ctx.journal.events(claimed.id)][-1] == "adopted"

        assert json.loads(cli("journal", "instances", "--json")[1])["instances"][0][
            "instance"] == "node1"
        code, _, err = cli("journal", "adopt", "node1")
        assert code != 0 and "is this instance" in err
    finally:
        old.close()


def test_adopt_into_a_named_instance(ctx, site, cli):
    old, ids = _items_of_old_server(site)
    old.close()
    code, out, err = cli("journal", "adopt", "old-node", "--instance", "node2")
    assert code == 0, err
    assert {r.instance for r in ctx.journal.outgoing.list_outgoing()} == {"node2"}
    assert cli("journal", "adopt", "x", "--instance", "bad name/")[0] == 2
