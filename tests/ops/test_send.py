"""`send FILE|BUNDLE` and `status-send`: validated first, queued through the journal, and in the
shape the daemon's outbound pipeline sends (checked with its real PackageBuilder)."""

from __future__ import annotations

import datetime as dt
import json

from connector.edxml import model
from connector.edxml.reader import read_package
from connector.edxml.signing import verify_package
from connector.edxml.writer import write_package
from connector.journal import OutgoingState
from connector.ops.enqueue import CLI_SOURCE

from .conftest import make_bundle, received_document


def test_send_bundle_builds_signs_stores_and_queues(ctx, site, cli, tmp_path):
    bundle = make_bundle(tmp_path / "to-send", site.peer)
    code, out, err = cli("send", str(bundle))
    assert code == 0, err
    [record] = ctx.journal.outgoing.list_outgoing()
    assert out.startswith(f"queued {record.id} document ")
    assert record.source == CLI_SOURCE and record.kind == "document"
    assert record.state is OutgoingState.PACKAGED and record.recipients == [site.peer]
    stored = read_package(record.package_path).package
    assert stored.document_id == record.document_id and stored.subject == "Về việc thử nghiệm"
    assert [a.name for a in stored.attachments] == ["công văn.pdf"]
    assert verify_package(open(record.package_path, "rb").read()).state.value == "untrusted"
    # the operator's bundle may go away: the queued item does not depend on it
    assert record.meta["package_file"].startswith(str(site.state))
    # the same content again is the same item, not a second document
    code, out, _ = cli("send", str(bundle))
    assert code == 0 and record.id in out
    assert len(ctx.journal.outgoing.list_outgoing()) == 1


def _ready_document(site, *, number: str) -> model.DocumentPackage:
    """A minimal document from this site to its peer, for the tests that send ready packages."""
    return model.DocumentPackage(
        from_=model.Organization(organ_id=site.organ_id, organ_name="A"),
        to=[model.Organization(organ_id=site.peer)], code=model.Code(number=number, notation="A-B"),
        subject="Gửi thử", document_type=model.DocumentType(type="1", type_detail="0"),
        promulgation_info=model.PromulgationInfo(place="Hà Nội", date=dt.date(2026, 11, 23)))


def test_send_ready_unsigned_package_signs_it(ctx, site, cli, tmp_path):
    package = _ready_document(site, number="5")
    path = tmp_path / "ready.edxml"
    path.write_bytes(write_package(package))
    code, out, err = cli("send", str(path))
    assert code == 0, err
    [record] = ctx.journal.outgoing.list_outgoing()
    assert record.kind == "package" and record.state is OutgoingState.PACKAGED
    assert verify_package(open(record.package_path, "rb").read()).state.value == "untrusted"


def test_bad_bundle_names_file_and_field_and_queues_nothing(ctx, site, cli, tmp_path):
    bundle = make_bundle(tmp_path / "bad", "not-an-organ-id")
    code, out, err = cli("send", str(bundle))
    assert code == 2 and out == ""
    assert "document.yaml" in err and "to.0.organ_id" in err and err.count("\n") == 1
    missing = make_bundle(tmp_path / "missing", site.peer, attachments=[{"file": "gone.pdf"}])
    code, _, err = cli("send", str(missing))
    assert code == 2 and "gone.pdf" in err and "attachments.0.file" in err
    code, _, err = cli("send", str(tmp_path / "nothing-here"))
    assert code == 2 and "no such file" in err
    assert ctx.journal.outgoing.list_outgoing() == []


def test_package_from_another_agency_is_refused(ctx, site, cli, tmp_path):
    package = model.DocumentPackage(
        from_=model.Organization(organ_id=site.peer), to=[model.Organization(organ_id=site.organ_id)],
        code=model.Code(number="1", notation="X"), subject="x",
        promulgation_info=model.PromulgationInfo(place="Hà Nội", date=dt.date(2026, 11, 23)),
        document_type=model.DocumentType(type="1", type_detail="0"))
    path = tmp_path / "theirs.edxml"
    path.write_bytes(write_package(package))
    code, _, err = cli("send", str(path))
    assert code == 2 and "From/OrganId" in err
    assert ctx.journal.outgoing.list_outgoing() == []


def test_status_send_queues_a_status_the_daemon_packages(ctx, site, cli):
    from connector.pipeline.outbound_build import PackageBuilder

    incoming_id, _ = received_document(ctx, site)
    document_id = ctx.journal.incoming.get_incoming(incoming_id).document_id
    code, out, err = cli("status-send", "--code", "3", "--document-id", document_id,
                         "--description", "Đã tiếp nhận")
    assert code == 0, err
    [record] = ctx.journal.outgoing.list_outgoing()
    assert record.kind == "status" and record.source == CLI_SOURCE
    assert record.recipients == [site.peer]  # the sender of the received document
    assert record.meta["status"]["code"] == "03"
    # the daemon's own builder turns it into one status package per addressee
    built = PackageBuilder(ctx.runtime).build(record, None)
    [member] = ctx.store.members(built.stored.path)
    status = read_package(member.path).package
    assert isinstance(status, model.StatusPackage)
    assert status.status_code.value == "03" and status.description == "Đã tiếp nhận"
    assert status.response_for.organ_id == site.peer and status.response_for.document_id == document_id


def test_status_send_to_several_and_bad_input(ctx, site, cli):
    code, _, err = cli("status-send", "--code", "06", "--document-id", "DOC-1",
                       "--to", site.peer, "--to", "000.00.00.H09")
    assert code == 0, err
    [record] = ctx.journal.outgoing.list_outgoing()
    assert record.recipients == sorted([site.peer, "000.00.00.H09"])
    code, _, err = cli("status-send", "--code", "99", "--document-id", "DOC-1", "--to", site.peer)
    assert code == 2 and "unknown status code" in err
    code, _, err = cli("status-send", "--code", "03", "--document-id", "DOC-1", "--to", "bad")
    assert code == 2 and "--to" in err
    code, _, err = cli("status-send", "--code", "03", "--document-id", "UNKNOWN")
    assert code == 2 and "no received document" in err
    assert len(ctx.journal.outgoing.list_outgoing()) == 1


def test_json_schemas_are_printed(cli):
    for name, marker in (("status", "document_id"), ("receipt", "journal_id"),
                         ("metadata", "axis_doc_id"), ("config", "agency")):
        code, out, err = cli("schema", name, config=False)
        assert code == 0, err
        schema = json.loads(out)
        assert schema["$schema"].startswith("https://json-schema.org/")
        assert marker in json.dumps(schema["properties"])
    config = json.loads(cli("schema", "config", config=False)[1])
    assert "secret" not in config["$defs"]["AxisConfig"]["properties"]
    assert "secret_file" in config["$defs"]["AxisConfig"]["properties"]


def test_send_take_back_bundle_queues_status_13_to_each_receiver(ctx, site, cli, tmp_path):
    bundle = tmp_path / "take-back"
    bundle.mkdir()
    (bundle / "document.yaml").write_text(
        "take_back:\n  document_id: 'DOC-OLD'\n  code: '12/UBND-VP'\n"
        f"  to: ['{site.peer}', '000.00.00.H09']\n  reason: 'Gửi nhầm'\n", encoding="utf-8")
    code, out, err = cli("send", str(bundle))
    assert code == 0, err
    [record] = ctx.journal.outgoing.list_outgoing()
    assert record.kind == "status" and record.document_id == "DOC-OLD"
    assert record.meta["status"]["code"] == "13"
    assert record.recipients == sorted([site.peer, "000.00.00.H09"])
    assert cli("send", str(bundle))[0] == 0 and len(ctx.journal.outgoing.list_outgoing()) == 1


def test_send_refuses_a_package_whose_signature_does_not_verify(ctx, site, cli, tmp_path):
    from connector.edxml.signing import sign_package

    package = _ready_document(site, number="6")
    signed = sign_package(write_package(package), ctx.signing_key)
    path = tmp_path / "tampered.edxml"
    path.write_bytes(signed.replace("Gửi thử".encode(), "Gửi khác".encode(), 1))
    code, out, err = cli("send", str(path))
    assert code == 2 and out == ""
    assert "Signature" in err and "does not verify" in err and "digest mismatch" in err
    assert ctx.journal.outgoing.list_outgoing() == []
    assert not list((site.state / "spool" / "cli").glob("*.edxml"))
