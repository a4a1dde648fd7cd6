"""pack, sign, verify, status-package, schema and dev-certs, through the real command line."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from cli_checks import one_error_line

EXAMPLE_METADATA = Path(__file__).resolve().parents[2] / "config" / "document.example.yaml"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pem_args(certs, agency="agency_a"):
    item = getattr(certs, agency)
    return ["--key", item.key, "--cert", item.cert]


def p12_args(certs, agency="agency_a"):
    item = getattr(certs, agency)
    return ["--p12", item.p12, "--password-file", item.password_file]


@pytest.fixture
def packed(cli, dev_certs, attachment_files, tmp_path):
    """The example metadata packed and signed with agency A's PEM key."""
    out = tmp_path / "document.edxml"
    run = cli("pack", EXAMPLE_METADATA, attachment_files["pdf"], attachment_files["xlsx"],
              *pem_args(dev_certs), "--out", out)
    assert run.code == 0, run.err
    return out


# --------------------------------------------------------------------------- pack / verify

def test_pack_with_pem_then_verify_is_valid(cli, packed, dev_certs, attachment_files):
    verify = cli("verify", packed, "--trust", dev_certs.ca_cert)
    assert verify.code == 0, verify.out + verify.err
    assert verify.out.startswith("valid")
    assert "000.00.00.G22" in verify.out  # the signer's subject

    summary = cli("inspect", packed, "--trust", dev_certs.ca_cert, "--json").json()
    assert summary["signature"]["state"] == "valid"
    assert summary["document_id"] == "000.00.00.G22,2026/11/20,1234/VPCP-KSTT"
    assert summary["subject"].startswith("V/v triển khai kết nối")
    assert [item["organ_id"] for item in summary["to"]] == ["000.00.00.H41", "000.00.00.H14"]
    assert summary["promulgation"]["date"] == "2026-11-20"
    assert summary["business"]["type"] == 0
    pdf, xlsx = summary["attachments"]
    assert (pdf["name"], pdf["content_type"]) == ("Công văn 1234-VPCP-KSTT.pdf", "application/pdf")
    assert pdf["size"] == attachment_files["pdf"].stat().st_size
    assert pdf["sha256"] == sha256(attachment_files["pdf"])
    assert xlsx["name"] == "phu-luc-1.xlsx"
    assert xlsx["sha256"] == sha256(attachment_files["xlsx"])
    assert summary["warnings"] == []


def test_pack_with_p12_and_password_file_then_verify(cli, dev_certs, attachment_files, tmp_path):
    out = tmp_path / "p12.edxml"
    run = cli("pack", EXAMPLE_METADATA, *attachment_files.values(), *p12_args(dev_certs),
              "--out", out)
    assert run.code == 0, run.err
    assert "signed (rsa-sha256)" in run.out
    verify = cli("verify", out, "--trust", dev_certs.ca_cert)
    assert (verify.code, verify.out.split(":")[0]) == (0, "valid")


def test_password_from_the_environment(cli_process, dev_certs, attachment_files, tmp_path):
    out = tmp_path / "env.edxml"
    password = dev_certs.agency_b.password_file.read_text().strip()
    metadata = yaml.safe_load(EXAMPLE_METADATA.read_text(encoding="utf-8"))
    metadata["from"] = {"organ_id": "000.00.00.H41", "organ_name": "UBND tỉnh Nghệ An"}
    metadata["to"] = [{"organ_id": "000.00.00.G22"}]
    metadata_path = tmp_path / "from-b.yaml"
    metadata_path.write_text(yaml.safe_dump(metadata, allow_unicode=True), encoding="utf-8")
    run = cli_process("pack", metadata_path, *attachment_files.values(),
                      "--p12", dev_certs.agency_b.p12, "--out", out,
                      env={"EDXML_KEY_PASSWORD": password})
    assert run.code == 0, run.err
    assert password not in run.out + run.err
    verify = cli_process("verify", out, "--trust", dev_certs.ca_cert)
    assert verify.code == 0, verify.out + verify.err


def test_wrong_password_is_bad_input(cli, dev_certs, attachment_files, tmp_path):
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    run = cli("pack", EXAMPLE_METADATA, *attachment_files.values(), "--p12",
              dev_certs.agency_a.p12, "--password-file", wrong, "--out", tmp_path / "x.edxml")
    assert run.code == 2
    assert "agency-a.p12" in one_error_line(run)
    assert "not-the-password" not in run.err
    assert not (tmp_path / "x.edxml").exists()


def test_key_without_cert_is_bad_input(cli, dev_certs, attachment_files, tmp_path):
    run = cli("pack", EXAMPLE_METADATA, *attachment_files.values(), "--key",
              dev_certs.agency_a.key, "--out", tmp_path / "x.edxml")
    assert run.code == 2
    assert "--cert" in one_error_line(run)


def test_expired_certificate_is_refused_with_its_dates(cli, dev_certs, attachment_files, tmp_path):
    run = cli("pack", EXAMPLE_METADATA, *attachment_files.values(), "--key", dev_certs.expired_key,
              "--cert", dev_certs.expired_cert, "--out", tmp_path / "x.edxml")
    assert run.code == 2
    assert re.search(r"expired on \d{4}-\d{2}-\d{2}", one_error_line(run))


def test_unsigned_package_verifies_as_absent(cli, attachment_files, tmp_path):
    out = tmp_path / "unsigned.edxml"
    run = cli("pack", EXAMPLE_METADATA, *attachment_files.values(), "--unsigned", "--out", out)
    assert run.code == 0, run.err
    verify = cli("verify", out)
    assert verify.code == 1
    assert verify.out.startswith("absent")


def test_without_trust_bundle_a_sound_signature_is_untrusted(cli, packed):
    verify = cli("verify", packed)
    assert verify.code == 1
    assert verify.out.startswith("untrusted")


def test_verify_asks_revocation_and_the_binding_when_given_their_files(cli, packed, dev_certs, tmp_path):
    """--trust alone says what it did not check; --crls and --signers ask as the daemon does."""
    alone = cli("verify", packed, "--trust", dev_certs.ca_cert)
    assert alone.code == 0 and "(revocation and signer binding not checked)" in alone.out
    full = cli("verify", packed, "--trust", dev_certs.ca_cert, "--crls", dev_certs.crl_folder,
               "--signers", dev_certs.signer_map)
    assert full.code == 0 and "not revoked, bound to 000.00.00.G22" in full.out
    wrong = tmp_path / "signers.yaml"
    wrong.write_text(dev_certs.signer_map.read_text().replace("000.00.00.G22", "000.00.00.H29"))
    refused = cli("verify", packed, "--trust", dev_certs.ca_cert, "--signers", wrong)
    assert refused.code == 1 and refused.out.startswith("wrong-signer")
    unknown = cli("verify", packed, "--trust", dev_certs.ca_cert, "--crls", tmp_path)
    assert unknown.code == 1 and unknown.out.startswith("revocation-unknown")


def test_another_ca_does_not_make_it_valid(cli, packed, tmp_path):
    from connector.devtools.devcerts import make_dev_certs

    other = make_dev_certs(tmp_path / "other-ca")
    verify = cli("verify", packed, "--trust", other.ca_cert)
    assert verify.code == 1
    assert verify.out.startswith("untrusted")


def test_tampering_is_detected(cli, packed, dev_certs, tmp_path):
    tampered = tmp_path / "tampered.edxml"
    data = packed.read_bytes()
    assert "Hà Nội".encode() in data
    tampered.write_bytes(data.replace("Hà Nội".encode(), "Hà Nam".encode(), 1))
    verify = cli("verify", tampered, "--trust", dev_certs.ca_cert)
    assert verify.code == 1
    assert verify.out.startswith("invalid")


# --------------------------------------------------------------------------- sign

def test_sign_sha1_replaces_the_signature(cli, packed, dev_certs, tmp_path):
    out = tmp_path / "sha1.edxml"
    run = cli("sign", packed, *p12_args(dev_certs, "agency_b"), "--algorithm", "rsa-sha1",
              "--out", out)
    assert run.code == 0, run.err
    assert "sha-1" in run.err.lower() or "sha1" in run.err.lower()  # never silently weak
    data = out.read_bytes()
    assert data.count(b"SignatureValue>") == 2  # one signature: open and close tag
    assert b"xmldsig#rsa-sha1" in data
    verify = cli("verify", out, "--trust", dev_certs.ca_cert)
    assert verify.code == 0, verify.out
    assert "000.00.00.H41" in verify.out  # now signed by agency B
    summary = cli("inspect", out, "--trust", dev_certs.ca_cert, "--json").json()
    assert summary["signature"]["state"] == "valid"


def test_sign_an_sdk_sample_replaces_its_placeholder_signature(cli, interop_dir, dev_certs,
                                                              tmp_path):
    out = tmp_path / "resigned.edxml"
    run = cli("sign", interop_dir / "sdk-samples/edoc_update.edxml", *pem_args(dev_certs),
              "--out", out)
    assert run.code == 0, run.err
    assert out.read_bytes().count(b"<SignatureValue>") == 0  # the SDK's unprefixed one is gone
    verify = cli("verify", out, "--trust", dev_certs.ca_cert)
    # Sound and trusted now; the package's own timestamps (2018) predate our fresh certificate,
    # which the verifier reports as a warning (validity is judged when it verifies).
    assert verify.code == 0
    assert verify.out.startswith("valid")
    assert "claims to be signed at 2018" in verify.err
    summary = cli("inspect", out, "--json").json()
    assert summary["business"]["type"] == 2
    assert summary["attachments"][0]["sha256"] == (
        "51653b9613f7f0275b43f80704033299740c702f354f44a06f55770cfbb0b135")


def test_sign_refuses_the_unreadable_sample(cli, interop_dir, dev_certs, tmp_path):
    run = cli("sign", interop_dir / "handwritten/edoc_nested_from.edxml", *pem_args(dev_certs),
              "--out", tmp_path / "x.edxml")
    assert run.code == 2
    assert "edoc_nested_from.edxml:" in one_error_line(run)
    assert not (tmp_path / "x.edxml").exists()


def test_sign_needs_a_key(cli, packed, tmp_path):
    with pytest.raises(SystemExit) as caught:  # argparse: the key group is required
        cli("sign", packed, "--out", tmp_path / "x.edxml")
    assert caught.value.code == 2


def test_verify_missing_file_is_bad_input(cli, tmp_path):
    run = cli("verify", tmp_path / "khong-co.edxml")
    assert run.code == 2
    assert "khong-co.edxml" in one_error_line(run)


# --------------------------------------------------------------------------- metadata errors

def write_metadata(tmp_path, change) -> Path:
    metadata = yaml.safe_load(EXAMPLE_METADATA.read_text(encoding="utf-8"))
    change(metadata)
    path = tmp_path / "meta.yaml"
    path.write_text(yaml.safe_dump(metadata, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_bad_identifier_names_the_field(cli, attachment_files, tmp_path):
    path = write_metadata(tmp_path, lambda m: m["to"][1].update(organ_id="28.22.H17"))
    run = cli("pack", path, *attachment_files.values(), "--unsigned", "--out", tmp_path / "x")
    assert run.code == 2
    line = one_error_line(run)
    assert "meta.yaml" in line and "to.1.organ_id" in line


def test_unknown_key_names_the_field(cli, attachment_files, tmp_path):
    path = write_metadata(tmp_path, lambda m: m.update(subjet="lỗi chính tả"))
    run = cli("pack", path, *attachment_files.values(), "--unsigned", "--out", tmp_path / "x")
    assert run.code == 2
    assert "subjet" in one_error_line(run)


def test_missing_subject_is_named(cli, attachment_files, tmp_path):
    path = write_metadata(tmp_path, lambda m: m.pop("subject"))
    run = cli("pack", path, *attachment_files.values(), "--unsigned", "--out", tmp_path / "x")
    assert run.code == 2
    assert "subject" in one_error_line(run)


def test_yaml_syntax_error_gives_the_line(cli, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("subject: ok\nto:\n  - organ_id: [unclosed\ncode: 1\n", encoding="utf-8")
    run = cli("pack", path, "--unsigned", "--out", tmp_path / "x")
    assert run.code == 2
    assert re.search(r"broken\.yaml:\d+:", one_error_line(run))


def test_missing_attachment_file_is_named(cli, attachment_files, tmp_path):
    run = cli("pack", EXAMPLE_METADATA, attachment_files["pdf"], "--unsigned",
              "--out", tmp_path / "x.edxml")
    assert run.code == 2
    line = one_error_line(run)
    assert "phu-luc-1.xlsx" in line and "attachments.1.file" in line
    assert not (tmp_path / "x.edxml").exists()


def test_nonexistent_attachment_path_is_named(cli, attachment_files, tmp_path):
    run = cli("pack", EXAMPLE_METADATA, attachment_files["pdf"], tmp_path / "phu-luc-1.xlsx.bak",
              "--unsigned", "--out", tmp_path / "x.edxml")
    assert run.code == 2
    assert "phu-luc-1.xlsx.bak" in one_error_line(run)


def test_output_folder_must_exist(cli, attachment_files, tmp_path):
    run = cli("pack", EXAMPLE_METADATA, *attachment_files.values(), "--unsigned",
              "--out", tmp_path / "no-such-folder" / "x.edxml")
    assert run.code == 2
    assert "no-such-folder" in one_error_line(run)


def test_debug_shows_the_traceback(cli_process, tmp_path):
    path = tmp_path / "meta.yaml"
    path.write_text("to: []\n", encoding="utf-8")
    quiet = cli_process("pack", path, "--unsigned", "--out", tmp_path / "x")
    assert quiet.code == 2 and "Traceback" not in quiet.err
    loud = cli_process("--debug", "pack", path, "--unsigned", "--out", tmp_path / "x")
    assert loud.code != 0 and "Traceback" in loud.err


# --------------------------------------------------------------------------- take-back via pack

def test_take_back_metadata_makes_one_status_13_per_receiver(cli, tmp_path):
    path = tmp_path / "take-back.yaml"
    path.write_text(yaml.safe_dump({
        "from": {"organ_id": "000.00.00.G22", "organ_name": "Văn phòng Chính phủ"},
        "take_back": {"document_id": "000.00.00.G22,2026/11/20,1234/VPCP-KSTT",
                      "code": "1234/VPCP-KSTT", "promulgation_date": "2026-11-20",
                      "to": ["000.00.00.H41", "000.00.00.H14"], "reason": "Gửi nhầm nơi nhận"},
    }, allow_unicode=True), encoding="utf-8")
    run = cli("pack", path, "--unsigned", "--out", tmp_path / "lay-lai.edxml")
    assert run.code == 0, run.err
    for receiver in ("000.00.00.H41", "000.00.00.H14"):
        summary = cli("inspect", tmp_path / f"lay-lai-{receiver}.edxml", "--json").json()
        assert summary["kind"] == "status"
        assert summary["status"]["code"] == "13"
        assert summary["to"] == [{"organ_id": receiver}]
        assert summary["status"]["response_for"]["document_id"] == (
            "000.00.00.G22,2026/11/20,1234/VPCP-KSTT")
        assert summary["status"]["description"] == "Gửi nhầm nơi nhận"


# --------------------------------------------------------------------------- status-package

def test_status_03_answers_the_sender(cli, packed, tmp_path):
    out = tmp_path / "status-03.edxml"
    run = cli("status-package", "--from", "000.00.00.H41", "--for", packed, "--code", "03",
              "--description", "Đã vào sổ văn bản đến", "--out", out)
    assert run.code == 0, run.err
    summary = cli("inspect", out, "--json").json()
    assert summary["kind"] == "status"
    assert summary["status"]["code"] == "03"
    assert summary["from"]["organ_id"] == "000.00.00.H41"
    assert summary["to"] == [{"organ_id": "000.00.00.G22"}]  # the original sender
    response_for = summary["status"]["response_for"]
    assert response_for["document_id"] == "000.00.00.G22,2026/11/20,1234/VPCP-KSTT"
    assert response_for["code"] == "1234/VPCP-KSTT"
    assert response_for["promulgation_date"] == "2026-11-20"
    assert summary["status"]["description"] == "Đã vào sổ văn bản đến"
    assert summary["signature"]["state"] == "absent"  # statuses travel unsigned, as the SDK's


def test_status_13_requires_to(cli, interop_dir, tmp_path):
    original = interop_dir / "sdk-samples/edoc_replacement.edxml"
    out = tmp_path / "status-13.edxml"
    run = cli("status-package", "--from", "000.00.00.G22", "--for", original, "--code", "13",
              "--out", out)
    assert run.code == 2
    assert "--to" in one_error_line(run)
    assert not out.exists()

    run = cli("status-package", "--from", "000.00.00.G22", "--for", original, "--code", "13",
              "--to", "000.00.00.H14", "--out", out)
    assert run.code == 0, run.err
    summary = cli("inspect", out, "--json").json()
    assert summary["status"]["code"] == "13"
    assert summary["from"]["organ_id"] == "000.00.00.G22"
    assert summary["to"] == [{"organ_id": "000.00.00.H14"}]
    assert summary["status"]["response_for"]["document_id"] == (
        "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT")
    assert summary["status"]["description"] == "Lấy lại"


def test_status_for_a_status_is_refused(cli, interop_dir, tmp_path):
    run = cli("status-package", "--from", "000.00.00.G22", "--for",
              interop_dir / "sdk-samples/status_acceptance_03.edxml", "--code", "01",
              "--out", tmp_path / "x.edxml")
    assert run.code == 2
    assert "status_acceptance_03.edxml" in one_error_line(run)


def test_unknown_status_code_is_bad_input(cli, packed, tmp_path):
    run = cli("status-package", "--from", "000.00.00.H41", "--for", packed, "--code", "07",
              "--out", tmp_path / "x.edxml")
    assert run.code == 2
    assert "07" in one_error_line(run)


def test_status_package_as_a_process(cli_process, interop_dir, tmp_path):
    out = tmp_path / "status-02.edxml"
    run = cli_process("status-package", "--from", "000.00.50.H19", "--for",
                      interop_dir / "sdk-samples/edoc_new.edxml", "--code", "2",
                      "--description", "Sai nơi nhận", "--out", out)
    assert run.code == 0, run.err
    summary = json.loads(cli_process("inspect", out, "--json").out)
    assert summary["status"]["code"] == "02"
    assert summary["to"] == [{"organ_id": "000.00.00.K19"}]


# --------------------------------------------------------------------------- schema, dev-certs

def test_schema_document_is_a_json_schema(cli):
    run = cli("schema", "document")
    assert run.code == 0
    schema = json.loads(run.out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    for key in ("from", "to", "code", "subject", "attachments", "take_back", "business"):
        assert key in schema["properties"], key
    assert "from_" not in schema["properties"]  # the file's key, not the Python name
    organization = schema["$defs"]["Organization"]
    assert organization["properties"]["organ_id"]["pattern"] == r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$"


def test_schema_registry_accepts_other_models(cli):
    from pydantic import BaseModel

    from connector.cli import edxml_commands

    class Receipt(BaseModel):
        journal_id: int

    edxml_commands.register_schema("receipt-test", Receipt)
    try:
        run = cli("schema", "receipt-test")
        assert run.code == 0
        assert json.loads(run.out)["properties"]["journal_id"]["type"] == "integer"
    finally:
        edxml_commands._SCHEMAS.pop("receipt-test")


def test_unknown_schema_lists_the_known_ones(cli):
    run = cli("schema", "nope")
    assert run.code == 2
    assert "document" in one_error_line(run)


def test_dev_certs_prints_what_it_wrote(cli, tmp_path):
    run = cli("dev-certs", tmp_path / "certs")
    assert run.code == 0, run.err
    for name in ("ca.pem", "agency-a.p12", "agency-a.password", "agency-b.key", "agency-b.pem"):
        assert (tmp_path / "certs" / name).is_file()
        assert name in run.out


def test_installed_console_script(tmp_path):
    # beside the Python running the tests (scripts/test.sh's venv, wherever EDXML_VENV puts it)
    script = Path(sys.executable).parent / "edxml-connector"
    if not script.exists():
        script = shutil.which("edxml-connector")
    if not script:
        pytest.skip("the console script is not installed (pip install -e .)")
    import subprocess

    completed = subprocess.run([str(script), "schema", "document"], capture_output=True, text=True,
                               timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["type"] == "object"


def test_sha1_warning_is_printed_once(cli_process, packed, dev_certs, tmp_path):
    run = cli_process("sign", packed, *pem_args(dev_certs), "--algorithm", "rsa-sha1",
                      "--out", tmp_path / "sha1.edxml")
    assert run.code == 0, run.err
    warnings = [line for line in run.err.splitlines() if "sha-1" in line.lower()]
    assert len(warnings) == 1, run.err
    assert warnings[0].startswith("edxml-connector: warning:")
