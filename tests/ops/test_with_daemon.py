"""The operator commands with the real outbound pipeline and a real axis simulator on loopback:
what `send` and `status-send` queue is what the daemon sends, and `status` then shows the axis
DocIds; a failed folder item retried by the operator goes out on the daemon's next pass."""

from __future__ import annotations

import json

import pytest
import yaml

from connector.axis.sim.agencies import agencies_from_data
from connector.axis.sim.server import AxisSimulator
from connector.config import load_config
from connector.journal import OutgoingState
from connector.pipeline.outbound import Outbound
from connector.service.runtime import Runtime

from .conftest import make_bundle, received_document

SECRET = "secret-of-a"


@pytest.fixture
def axis(tmp_path, site):
    book = agencies_from_data({"agencies": [
        {"organ_id": site.organ_id, "name": "A", "systemid": site.organ_id, "secret": SECRET},
        {"organ_id": site.peer, "name": "B", "systemid": site.peer, "secret": "secret-of-b"}]})
    simulator = AxisSimulator(tmp_path / "axis", book, seed=3).start()
    config = yaml.safe_load(site.config.read_text(encoding="utf-8"))
    (site.root / "axis-secret").write_text(SECRET)
    config["axis"].update({"endpoint": simulator.url, "connect_timeout": 2, "read_timeout": 5,
                           "retry": {"max_attempts": 1, "max_total_seconds": 1,
                                     "initial_backoff": 0.01, "max_backoff": 0.01}})
    config["outbound"] = {"concurrency": 2, "max_attempts": 2, "retry_initial_seconds": 0,
                          "retry_max_seconds": 0}
    site.config.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    yield simulator
    simulator.stop()


@pytest.fixture
def daemon(site, axis):
    runtime = Runtime(load_config(site.config), folder_instance="node1")
    runtime.directory.refresh()
    outbound = Outbound(runtime, auth_pause_seconds=0.1)
    yield outbound
    outbound.shutdown(5)
    runtime.close()


def test_sent_by_the_daemon_after_send_and_status_send(ctx, site, cli, daemon, axis, tmp_path):
    assert cli("send", str(make_bundle(tmp_path / "bundle", site.peer)))[0] == 0
    incoming_id, _ = received_document(ctx, site)
    document_id = ctx.journal.incoming.get_incoming(incoming_id).document_id
    assert cli("status-send", "--code", "03", "--document-id", document_id)[0] == 0

    daemon.cycle(wait=True, timeout=30)

    snapshot = json.loads(cli("status", "--json", "--direction", "out")[1])
    assert {item["kind"]: item["state"] for item in snapshot["items"]} == {
        "document": "sent", "status": "sent"}
    assert all(item["axis_doc_id"] for item in snapshot["items"])
    assert len(axis.store.sent_by(site.organ_id, "edoc")) == 1
    assert len(axis.store.sent_by(site.organ_id, "status")) == 1


def test_retry_of_a_failed_folder_item_is_sent_on_the_next_pass(ctx, site, cli, daemon, axis):
    outbox = site.exchange / "outbox"
    make_bundle(outbox / ".doc.tmp", "000.00.00.H99").rename(outbox / "doc")  # unknown receiver
    daemon.cycle(wait=True, timeout=30)
    [record] = ctx.journal.outgoing.list_outgoing()
    assert record.state is OutgoingState.FAILED and "000.00.00.H99" in record.last_error
    assert (site.exchange / "failed" / "doc.error.txt").is_file()

    # the operator fixes the document where it lies in failed/, then retries it
    metadata_file = site.exchange / "failed" / "doc" / "document.yaml"
    metadata = yaml.safe_load(metadata_file.read_text(encoding="utf-8"))
    metadata["to"][0]["organ_id"] = site.peer
    metadata_file.write_text(yaml.safe_dump(metadata, allow_unicode=True), encoding="utf-8")
    code, _, err = cli("retry", record.id)
    assert code == 0, err

    daemon.cycle(wait=True, timeout=30)
    after = ctx.journal.outgoing.get_outgoing(record.id)
    assert after.state is OutgoingState.SENT and after.recipients == [site.peer]
    assert (site.exchange / "sent" / "doc.receipt.json").is_file()
    assert not (site.exchange / "failed" / "doc.error.txt").exists()  # the reason went with it
    assert len(axis.store.sent_by(site.organ_id, "edoc")) == 1
