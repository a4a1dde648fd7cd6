"""Settings reachable from the command line (--max-size, the ZIP convention), who may send which
status, and bad input of every kind: always one error line, exit 2, no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from cli_checks import one_error_line

from connector.edxml.reader import read_package

EXAMPLE_METADATA = Path(__file__).resolve().parents[2] / "config" / "document.example.yaml"
MIB = 1024 * 1024


@pytest.fixture
def small_metadata(tmp_path) -> Path:
    path = tmp_path / "document.yaml"
    path.write_text(yaml.safe_dump({
        "from": {"organ_id": "000.00.00.G22"},
        "to": [{"organ_id": "000.00.00.H41"}, {"organ_id": "000.00.00.H14"}],
        "code": {"number": "12", "notation": "VPCP-TEST"},
        "promulgation": {"date": "2026-11-20"},
        "subject": "Kiểm tra tuỳ chọn dòng lệnh",
    }, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def two_mib_package(cli, small_metadata, tmp_path) -> Path:
    """An unsigned package of about 2.7 MB (a 2 MiB PDF in base64)."""
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + os.urandom(2 * MIB))
    out = tmp_path / "big.edxml"
    run = cli("pack", small_metadata, pdf, "--unsigned", "--out", out)
    assert run.code == 0, run.err
    return out


# --------------------------------------------------------------------------- --max-size

def test_pack_refuses_a_package_over_max_size_and_writes_nothing(cli, small_metadata, tmp_path):
    pdf = tmp_path / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n" + os.urandom(MIB))  # 1 MiB -> about 1.33 MiB of base64
    out = tmp_path / "out.edxml"
    run = cli("pack", small_metadata, pdf, "--unsigned", "--out", out, "--max-size", "1")
    assert run.code == 2
    line = one_error_line(run)
    assert "out.edxml" in line and "1048576" in line and "--max-size" in line
    assert not out.exists() and list(tmp_path.glob(".out.edxml*")) == []

    run = cli("pack", small_metadata, pdf, "--unsigned", "--out", out, "--max-size", "2")
    assert run.code == 0, run.err
    assert MIB < out.stat().st_size < 2 * MIB


@pytest.mark.parametrize("command", ["inspect", "verify", "sign", "status-package"])
def test_reading_commands_apply_max_size(cli, two_mib_package, dev_certs, tmp_path, command):
    arguments = {
        "inspect": ["inspect", two_mib_package],
        "verify": ["verify", two_mib_package],
        "sign": ["sign", two_mib_package, "--p12", dev_certs.agency_a.p12, "--password-file",
                 dev_certs.agency_a.password_file, "--out", tmp_path / "signed.edxml"],
        "status-package": ["status-package", "--from", "000.00.00.H41", "--for", two_mib_package,
                           "--code", "01", "--out", tmp_path / "status.edxml"],
    }[command]
    run = cli(*arguments, "--max-size", "2")
    assert run.code == 2
    line = one_error_line(run)
    assert "big.edxml" in line and "2097152" in line and "pass --max-size" in line

    run = cli(*arguments, "--max-size", "3")
    assert run.code in (0, 1), run.err  # verify: "absent" is exit 1
    assert "error" not in run.err


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "many"])
def test_max_size_must_be_a_positive_whole_number(cli, two_mib_package, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli("inspect", two_mib_package, "--max-size", value)
    assert exit_info.value.code == 2
    assert "--max-size" in capsys.readouterr().err


# --------------------------------------------------------------------------- ZIP convention

@pytest.fixture
def note(tmp_path) -> Path:
    path = tmp_path / "ghi-chu.txt"
    path.write_text("Ghi chú kèm theo công văn\n", encoding="utf-8")
    return path


def _only_attachment(path: Path):
    (attachment,) = read_package(path).package.attachments
    return attachment


def test_pack_zips_other_types_by_default(cli, small_metadata, note, tmp_path):
    out = tmp_path / "zipped.edxml"
    assert cli("pack", small_metadata, note, "--unsigned", "--out", out).code == 0
    attachment = _only_attachment(out)
    assert attachment.name == "ghi-chu.txt"
    assert attachment.content_type == "application/zip"
    assert attachment.read_bytes().startswith(b"PK\x03\x04")


def test_pack_no_zip_sends_every_file_as_it_is(cli, small_metadata, note, tmp_path):
    out = tmp_path / "plain.edxml"
    assert cli("pack", small_metadata, note, "--unsigned", "--no-zip", "--out", out).code == 0
    attachment = _only_attachment(out)
    assert attachment.content_type == "text/plain"
    assert attachment.read_bytes() == note.read_bytes()


def test_pack_plain_extensions_replace_the_default_list(cli, small_metadata, note, tmp_path,
                                                        attachment_files):
    out = tmp_path / "custom.edxml"
    run = cli("pack", small_metadata, note, attachment_files["pdf"], "--unsigned",
              "--plain-extensions", "TXT, .odt", "--out", out)
    assert run.code == 0, run.err
    text, pdf = read_package(out).package.attachments
    assert text.read_bytes() == note.read_bytes()
    assert pdf.content_type == "application/zip"  # pdf is no longer in the list


def test_pack_zip_options_are_validated(cli, small_metadata, note, tmp_path, capsys):
    for arguments in (["--plain-extensions", ","], ["--no-zip", "--plain-extensions", "pdf"]):
        with pytest.raises(SystemExit) as exit_info:
            cli("pack", small_metadata, note, "--unsigned", "--out", tmp_path / "x.edxml",
                *arguments)
        assert exit_info.value.code == 2
    capsys.readouterr()


# --------------------------------------------------------------------------- who sends which status

@pytest.fixture
def document(cli, small_metadata, tmp_path) -> Path:
    out = tmp_path / "document.edxml"
    assert cli("pack", small_metadata, "--unsigned", "--out", out).code == 0
    return out


@pytest.mark.parametrize("arguments, expected", [
    (["--from", "000.00.00.H41", "--code", "13", "--to", "000.00.00.H14"],
     "sent by the document's sender 000.00.00.G22"),
    (["--from", "000.00.00.G22", "--code", "13", "--to", "000.00.00.H99"],
     "000.00.00.H99 is not a receiver"),
    (["--from", "000.00.00.G22", "--code", "03"], "000.00.00.G22 is not one"),
    (["--from", "000.00.00.H99", "--code", "16"], "000.00.00.H99 is not one"),
])
def test_status_roles_are_checked(cli, document, tmp_path, arguments, expected):
    out = tmp_path / "status.edxml"
    run = cli("status-package", "--for", document, *arguments, "--out", out)
    assert run.code == 2
    line = one_error_line(run)
    assert expected in line
    assert "000.00.00.H41, 000.00.00.H14" in line or "--from 000.00.00.G22" in line
    assert not out.exists()


def test_each_receiver_may_answer(cli, document, tmp_path):
    for receiver in ("000.00.00.H41", "000.00.00.H14"):
        out = tmp_path / f"status-{receiver}.edxml"
        run = cli("status-package", "--for", document, "--from", receiver, "--code", "01",
                  "--out", out)
        assert run.code == 0, run.err
        status = read_package(out).package
        assert status.from_.organ_id == receiver
        assert status.response_for.organ_id == "000.00.00.G22"


# --------------------------------------------------------------------------- bad input

@pytest.fixture
def bad_inputs(tmp_path) -> dict[str, Path]:
    garbage = tmp_path / "garbage.edxml"
    garbage.write_bytes(bytes(range(256)) * 8)
    empty = tmp_path / "empty.edxml"
    empty.write_bytes(b"")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {"missing": tmp_path / "missing.edxml", "folder": folder, "garbage": garbage,
            "empty": empty}


@pytest.mark.parametrize("kind", ["missing", "folder", "garbage", "empty"])
@pytest.mark.parametrize("command", ["inspect", "verify", "sign", "status-package"])
def test_unusable_package_is_one_line_exit_2(cli, dev_certs, bad_inputs, tmp_path, command, kind):
    package = bad_inputs[kind]
    arguments = {
        "inspect": ["inspect", package, "--json"],
        "verify": ["verify", package],
        "sign": ["sign", package, "--p12", dev_certs.agency_a.p12, "--password-file",
                 dev_certs.agency_a.password_file, "--out", tmp_path / "out.edxml"],
        "status-package": ["status-package", "--from", "000.00.00.H41", "--for", package,
                           "--code", "01", "--out", tmp_path / "out.edxml"],
    }[command]
    run = cli(*arguments)
    assert run.code == 2
    assert str(package) in one_error_line(run)
    assert run.out == ""
    assert not (tmp_path / "out.edxml").exists()


@pytest.mark.parametrize("kind", ["missing", "folder", "garbage", "empty"])
def test_unusable_metadata_file_is_one_line_exit_2(cli, bad_inputs, tmp_path, kind):
    run = cli("pack", bad_inputs[kind], "--unsigned", "--out", tmp_path / "out.edxml")
    assert run.code == 2
    assert str(bad_inputs[kind]) in one_error_line(run)


def test_pkcs12_without_any_password_says_so(cli, document, dev_certs, tmp_path, monkeypatch):
    monkeypatch.delenv("EDXML_KEY_PASSWORD", raising=False)
    run = cli("sign", document, "--p12", dev_certs.agency_a.p12, "--out", tmp_path / "s.edxml")
    assert run.code == 2
    line = one_error_line(run)
    assert "no password was given" in line and "--password-file" in line
