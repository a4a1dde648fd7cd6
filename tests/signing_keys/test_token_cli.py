"""``edxml-connector token list`` (what IT staff copy into ``certificate.token``) and the
certificate line of ``check`` with a token: present, unplugged, wrong PIN, renewal ahead."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml
from cryptography.hazmat.primitives import hashes

from connector.cli import main
from connector.devtools.devcerts import AGENCY_A_ORGAN_ID

pytestmark = pytest.mark.usefixtures("softhsm")


@pytest.fixture
def run(capsys):
    def invoke(*args):
        capsys.readouterr()
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return invoke


def secret_file(path, text: str):
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def test_token_list_shows_labels_serials_and_certificates_and_keys_only_with_the_pin(
        make_token, run, tmp_path):
    token, certificate = make_token(key_label="vpcp-sign", key_id=b"\x0a\x0b")
    code, out, _ = run("token", "list", "--module", token.module)
    assert code == 0
    assert f"token {token.label!r}" in out and "serial " in out
    assert "certificate  label 'vpcp-sign'  id 0a0b" in out and AGENCY_A_ORGAN_ID in out
    assert "  private key " not in out and "private keys are shown with --pin-file" in out
    pin = secret_file(tmp_path / "pin", token.pin)
    code, out, _ = run("token", "list", "--module", token.module, "--token", token.label,
                       "--pin-file", pin)
    assert code == 0 and "private key  label 'vpcp-sign'  id 0a0b  RSA 2048 bits" in out
    assert token.pin not in out
    wrong = secret_file(tmp_path / "wrong", "0000")
    code, out, _ = run("token", "list", "--module", token.module, "--token", token.label,
                       "--pin-file", wrong)
    assert "the token refused the PIN" in out and "0000" not in out
    code, _, err = run("token", "list", "--module", tmp_path / "missing.so")
    assert code == 2 and "no PKCS#11 module at this path" in err and "missing.so" in err


def test_check_signs_a_probe_with_the_token_and_says_when_it_is_absent(make_token, run, tmp_path,
                                                                        dev_certs):
    token, certificate = make_token()
    config = tmp_path / "connector.yaml"
    settings = {
        "agency": {"organ_id": AGENCY_A_ORGAN_ID, "name": "Văn phòng Chính phủ"},
        "certificate": {"token": {"module": str(token.module), "token_label": token.label,
                                  "key_label": "signing",
                                  "pin_file": str(secret_file(tmp_path / "pin", token.pin))}},
        "trust": {"bundle_file": str(dev_certs.ca_cert)},
        "axis": {"endpoint": "http://127.0.0.1:9", "secret_file": str(secret_file(tmp_path / "s", "x")),
                 "connect_timeout": 0.2, "read_timeout": 0.2,
                 "retry": {"max_attempts": 1, "max_total_seconds": 0.5}},
        "journal": {"url": f"sqlite:///{tmp_path / 'journal.db'}"},
        "state_dir": str(tmp_path / "state"), "exchange": {"root": str(tmp_path / "exchange")}}
    config.write_text(yaml.safe_dump(settings, allow_unicode=True))
    _, out, _ = run("check", "--config", config)
    [line] = [line for line in out.splitlines() if "certificate" in line.split(":")[0]]
    assert line.startswith("OK") and AGENCY_A_ORGAN_ID in line and "days left" in line
    assert certificate.fingerprint(hashes.SHA256()).hex()[:16] in line

    token.unplug()
    try:
        _, out, _ = run("check", "--config", config)
    finally:
        token.plug_in()
    [line] = [line for line in out.splitlines() if "certificate" in line.split(":")[0]]
    assert line.startswith("FAIL") and "the token is not present" in line and token.label in line

    # A renewal ahead, on the same token: check names both and when the next takes over.
    from connector.devtools.devtoken import put_agency_key

    put_agency_key(token, key_label="signing-2027", key_id=b"\x02", ca_cert=dev_certs.ca_cert,
                   ca_key=dev_certs.ca_key, organ_id=AGENCY_A_ORGAN_ID, name="Renewed",
                   not_after=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=700))
    switch = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=20)
    settings["certificate"]["next"] = {"switch_at": switch.isoformat(), "token": {
        **settings["certificate"]["token"], "key_label": "signing-2027"}}
    config.write_text(yaml.safe_dump(settings, allow_unicode=True))
    _, out, _ = run("check", "--config", config)
    [line] = [line for line in out.splitlines() if "certificate" in line.split(":")[0]]
    assert line.startswith("OK") and "then " in line and "Renewed" in line and f"{switch:%Y-%m-%d}" in line
