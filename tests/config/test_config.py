"""Configuration: the example loads, and every kind of mistake gives one line naming the key
and the fix (never a traceback, never a secret)."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from connector.config import EXAMPLE_CONFIG, Settings, load_config, substitute_env
from connector.errors import ConfigError
from connector.service.health import HealthSettings
from connector.service.runtime import axis_settings

EXAMPLE = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))


@pytest.fixture
def credentials(tmp_path, monkeypatch):
    """A systemd-like credentials directory holding the example's two secrets."""
    directory = tmp_path / "credentials"
    directory.mkdir()
    (directory / "axis-secret").write_text("axis-s3cret-value\n")
    (directory / "key-password").write_text("p12-pass\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    monkeypatch.delenv("AXIS_ENDPOINT", raising=False)
    return directory


def write(tmp_path: Path, data, name="connector.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True),
                    encoding="utf-8")
    return path


def variant(**changes):
    """The example with ``section.key`` paths changed (None value = remove the key)."""
    data = copy.deepcopy(EXAMPLE)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return data


def error_of(tmp_path, data) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data))
    line = caught.value.one_line()
    assert "\n" not in line and "Traceback" not in line
    return line


def test_example_loads_with_documented_defaults(credentials):
    settings = Settings.example()
    assert settings.agency.organ_id == "000.00.00.G22"
    assert settings.axis.endpoint == "https://axis.example.gov.vn/vxp"
    assert settings.axis.secret.get_secret_value() == "axis-s3cret-value"  # newline dropped
    assert settings.certificate.password.get_secret_value() == "p12-pass"
    assert settings.systemid == "000.00.00.G22"
    assert settings.journal.url == "sqlite:////var/lib/edxml-connector/journal.db"
    assert settings.exchange.root == Path("/var/lib/edxml-connector/exchange")
    assert settings.exchange.settle_seconds is None
    assert settings.schedules.axis_poll_seconds == 60
    assert settings.inbox.signature_policy.invalid.value == "quarantine"
    assert settings.inbox.signature_policy.untrusted.value == "deliver"
    assert settings.edxml.max_package_size == 250 * 1024 * 1024
    assert (settings.health.host, settings.health.port) == ("127.0.0.1", 9640)
    assert settings.health.readiness.max_clock_skew_seconds == 120
    assert settings.certificate.expiry_warning_days == 30
    assert settings.logging.json_lines is True and settings.logging.level.value == "info"
    assert settings.source == EXAMPLE_CONFIG
    assert sorted(settings.secret_values()) == ["axis-s3cret-value", "p12-pass"]


def test_defaults_fill_everything_optional(credentials, tmp_path):
    minimal = {"agency": {"organ_id": "000.00.00.G22", "name": "VPCP"},
               "certificate": {"key_file": "/k.pem", "cert_file": "/c.pem"},
               "axis": {"endpoint": "http://127.0.0.1:8640", "secret_credential": "axis-secret"}}
    settings = load_config(write(tmp_path, minimal))
    assert settings.certificate.password is None
    assert settings.outbound.max_attempts == 10 and settings.inbox.dedupe_window_days == 30
    assert settings.health.enabled and settings.retention.history_days == 180


def test_secrets_never_show(credentials):
    settings = Settings.example()
    for text in (repr(settings), str(settings), settings.model_dump_json(),
                 repr(settings.model_dump())):
        assert "axis-s3cret-value" not in text and "p12-pass" not in text


def test_runtime_objects_for_the_client_and_health_listener(credentials):
    settings = Settings.example()
    client = axis_settings(settings.axis, settings.agency.organ_id)
    assert client.secret == "axis-s3cret-value" and client.systemid == "000.00.00.G22"
    assert client.retry.max_attempts == 5
    health = HealthSettings.from_config(settings.health, settings.certificate.expiry_warning_days)
    assert (health.host, health.port, health.min_free_disk_bytes) == ("127.0.0.1", 9640, 512 << 20)


# --- environment substitution --------------------------------------------------------------

def test_env_substitution_with_default_and_override(credentials, tmp_path, monkeypatch):
    data = variant(axis__endpoint="${AXIS_URL:-https://default.example.gov.vn/vxp}",
                   schedules__axis_poll_seconds="${POLL:-45}")
    assert load_config(write(tmp_path, data)).axis.endpoint == "https://default.example.gov.vn/vxp"
    monkeypatch.setenv("AXIS_URL", "https://test-axis.example.gov.vn/api")
    monkeypatch.setenv("POLL", "15")
    settings = load_config(write(tmp_path, data))
    assert settings.axis.endpoint == "https://test-axis.example.gov.vn/api"
    assert settings.schedules.axis_poll_seconds == 15


def test_unset_env_variable_names_the_key(credentials, tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    line = error_of(tmp_path, variant(journal__url="sqlite:///${NO_SUCH_VAR}/journal.db"))
    assert "journal.url" in line and "NO_SUCH_VAR is not set" in line and "connector.yaml" in line


def test_substitution_rules():
    env = {"A": "x", "EMPTY": ""}
    assert substitute_env({"k": ["${A}-${EMPTY:-d}", "$${A}", "cost $5", 7]}, environ=env) == \
        {"k": ["x-d", "${A}", "cost $5", 7]}
    with pytest.raises(ConfigError, match=r"k\[0\]: '\$\{1BAD\}' is not a valid reference"):
        substitute_env({"k": ["${1BAD}"]}, environ=env)
    # a variable's content is not YAML: it cannot add keys
    assert substitute_env({"k": "${A}"}, environ={"A": "x\nother: 1"}) == {"k": "x\nother: 1"}


# --- each mistake, one line -------------------------------------------------------------------

def test_missing_key(credentials, tmp_path):
    line = error_of(tmp_path, variant(agency__organ_id=None))
    assert "agency.organ_id: missing — add it" in line
    assert "config/connector.example.yaml" in line


def test_bad_organ_id(credentials, tmp_path):
    line = error_of(tmp_path, variant(agency__organ_id="000.00.G22"))
    assert "agency.organ_id: '000.00.G22' is not an OrganId" in line and "000.00.00.G22" in line


def test_bad_urls(credentials, tmp_path):
    assert "axis.endpoint: 'axis.example.gov.vn' is not an http(s) URL" in \
        error_of(tmp_path, variant(axis__endpoint="axis.example.gov.vn"))
    assert "axis.proxy" in error_of(tmp_path, variant(axis__proxy="socks://p:1"))
    assert "journal.url" in error_of(tmp_path, variant(journal__url="mysql://root@db/x"))
    assert "journal.url" in error_of(tmp_path, variant(journal__url="journal.db"))


def test_plain_http_only_to_loopback_unless_allowed(credentials, tmp_path):
    line = error_of(tmp_path, variant(axis__endpoint="http://axis.example.gov.vn/vxp"))
    assert "axis.endpoint" in line and "allow_plain_http" in line
    allowed = variant(axis__endpoint="http://axis.example.gov.vn/vxp", axis__allow_plain_http=True)
    assert load_config(write(tmp_path, allowed)).axis.endpoint.startswith("http://")
    assert load_config(write(tmp_path, variant(axis__endpoint="http://[::1]:8640")))


def test_missing_secret_file(credentials, tmp_path):
    data = variant(axis__secret_credential=None, axis__secret_file=str(tmp_path / "nope"))
    line = error_of(tmp_path, data)
    assert "axis.secret_file" in line and "no such file" in line


def test_secret_sources(credentials, tmp_path, monkeypatch):
    no_secret = variant(axis__secret_credential=None)
    assert "axis.secret_file: missing" in error_of(tmp_path, no_secret)
    two = variant(axis__secret_env="AXIS_SECRET")
    assert "give only one of" in error_of(tmp_path, two)
    monkeypatch.delenv("AXIS_SECRET", raising=False)
    env_data = variant(axis__secret_credential=None, axis__secret_env="AXIS_SECRET")
    assert "axis.secret_env: environment variable AXIS_SECRET is not set" in error_of(tmp_path, env_data)
    monkeypatch.setenv("AXIS_SECRET", "from-env")
    assert load_config(write(tmp_path, env_data)).axis.secret.get_secret_value() == "from-env"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert "the file is empty" in error_of(
        tmp_path, variant(axis__secret_credential=None, axis__secret_file=str(empty)))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    line = error_of(tmp_path, EXAMPLE)
    assert "secret_credential" in line and "CREDENTIALS_DIRECTORY is not set" in line


def test_inline_secret_is_refused_without_echoing_it(credentials, tmp_path):
    line = error_of(tmp_path, variant(axis__secret="hunter2-inline"))
    assert "axis.secret: secrets are not written in the config" in line
    assert "hunter2-inline" not in line


def test_world_readable_secret_file_loads_with_a_warning(credentials, tmp_path):
    secret = tmp_path / "axis-secret"
    secret.write_text("abc\n")
    os.chmod(secret, 0o644)
    settings = load_config(write(tmp_path, variant(axis__secret_credential=None,
                                                   axis__secret_file=str(secret))))
    assert any("chmod 0600" in warning for warning in settings.warnings)
    os.chmod(secret, 0o600)
    settings = load_config(write(tmp_path, variant(axis__secret_credential=None,
                                                   axis__secret_file=str(secret))))
    assert settings.warnings == []


def test_unknown_key_did_you_mean(credentials, tmp_path):
    data = variant(axis__endpont="https://x.example/vxp")
    assert "axis.endpont: unknown key — did you mean 'endpoint'?" in error_of(tmp_path, data)
    nested = variant(inbox__signature_policy={"invalid": "quarantine", "untrustd": "deliver"})
    assert "inbox.signature_policy.untrustd: unknown key — did you mean 'untrusted'?" in \
        error_of(tmp_path, nested)
    top = copy.deepcopy(EXAMPLE)
    top["shedules"] = {}
    assert "shedules: unknown key — did you mean 'schedules'?" in error_of(tmp_path, top)


def test_wrong_values(credentials, tmp_path):
    assert "inbox.signature_policy.invalid: 'ignore' is not allowed" in error_of(
        tmp_path, variant(inbox__signature_policy={"invalid": "ignore"}))
    assert "health.listen" in error_of(tmp_path, variant(health__listen="9640"))
    assert "health.listen" in error_of(tmp_path, variant(health__listen="127.0.0.1:70000"))
    assert "outbound.concurrency" in error_of(tmp_path, variant(outbound__concurrency=0))
    assert "timezone: unknown time zone" in error_of(tmp_path, variant(timezone="Mars/Olympus"))
    assert "certificate.algorithm" in error_of(tmp_path, variant(certificate__algorithm="md5"))
    assert "agency: expected a section" in error_of(tmp_path, variant(agency="G22"))


def test_certificate_forms(credentials, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_TOKEN_PIN", "1234")
    both = variant(certificate__key_file="/k.pem", certificate__cert_file="/c.pem")
    assert ("certificate.p12_file: give only one of p12_file, key_file + cert_file, token or "
            "folder (not p12_file and key_file)") in error_of(tmp_path, both)
    key_only = variant(certificate__p12_file=None, certificate__key_file="/k.pem")
    assert "certificate.cert_file: missing" in error_of(tmp_path, key_only)
    token = {"module": "/m.so", "token_label": "agency", "key_label": "sign", "pin_env": "TEST_TOKEN_PIN"}
    assert "certificate.p12_file: give only one of" in error_of(
        tmp_path, variant(certificate__token=token))
    no_pin = variant(certificate__p12_file=None, certificate__token={**token, "pin_env": None})
    assert "certificate.token.pin_file: missing" in error_of(tmp_path, no_pin)
    inline_pin = variant(certificate__p12_file=None, certificate__token={**token, "pin": "1234"})
    assert "secrets are not written in the config" in error_of(tmp_path, inline_pin)
    two_tokens = variant(certificate__p12_file=None,
                         certificate__token={**token, "token_serial": "abc"})
    assert "give token_label or token_serial (one of them)" in error_of(tmp_path, two_tokens)
    bad_id = variant(certificate__p12_file=None,
                     certificate__token={**token, "key_label": None, "key_id": "zz"})
    assert "certificate.token.key_id: 'zz' is not hexadecimal" in error_of(tmp_path, bad_id)
    naive = variant(certificate__next={"p12_file": "/n.p12", "switch_at": "2027-01-01T00:00:00"})
    assert "certificate.next.switch_at" in error_of(tmp_path, naive)
    folder_and_next = variant(certificate__p12_file=None, certificate__folder="/certs",
                              certificate__next={"p12_file": "/n.p12",
                                                 "switch_at": "2027-01-01T00:00:00+07:00"})
    assert "certificate.next: a folder already holds the next certificate" in error_of(
        tmp_path, folder_and_next)


def test_yaml_problems_name_file_and_line(credentials, tmp_path):
    syntax = error_of(tmp_path, "agency:\n  organ_id: [unclosed\n")
    assert "connector.yaml:3: not valid YAML" in syntax
    line = error_of(tmp_path, "agency:\n  organ_id: '000.00.00.G22'\n  organ_id: '000.00.00.G23'\n")
    assert "connector.yaml:3:" in line and "appears twice" in line
    assert "the file is empty" in error_of(tmp_path, "")
    assert "top level" in error_of(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")


def test_an_agency_side_is_required(credentials, tmp_path):
    assert "no agency side" in error_of(tmp_path, variant(exchange={"enabled": False}))


def test_database_section_uses_the_dms_mapping_model(credentials, tmp_path):
    from connector.dms.database.mapping import DmsDatabaseSettings

    data = variant(database={"url": "sqlite:////tmp/dms.db"}, exchange={"enabled": False})
    settings = load_config(write(tmp_path, data))
    assert isinstance(settings.database, DmsDatabaseSettings)
    assert "sqlite:////tmp/dms.db" in settings.secret_values()
    typo = variant(database={"url": "sqlite:////tmp/dms.db", "bach_size": 5})
    assert "database.bach_size: unknown key — did you mean 'batch_size'?" in error_of(tmp_path, typo)


def test_database_url_file_missing_fails_at_load(credentials, tmp_path):
    data = variant(database={"url_file": str(tmp_path / "no-url")}, exchange={"enabled": False})
    line = error_of(tmp_path, data)
    assert "database.url_file" in line


def test_the_signature_policy_covers_every_outcome_with_the_contracts_defaults(credentials, tmp_path):
    """folder-contract.md: invalid, wrong-signer, revoked quarantine; the rest deliver."""
    from connector.edxml.verifying import SignatureState

    policy = load_config(write(tmp_path, variant())).inbox.signature_policy
    expected = {"invalid": "quarantine", "wrong-signer": "quarantine", "revoked": "quarantine"}
    for state in SignatureState:
        if state is not SignatureState.VALID:
            assert policy.action_for(state.value).value == expected.get(state.value, "deliver"), state
    strict = load_config(write(tmp_path, variant(inbox__signature_policy__revocation_unknown="quarantine")))
    assert strict.inbox.signature_policy.action_for("revocation-unknown").value == "quarantine"
    assert "trust.crl_folder" in error_of(tmp_path, variant(trust__crl_folder=["not", "a", "path"]))


def test_a_removed_worker_pool_key_is_ignored_with_one_warning_each(credentials, tmp_path):
    """docs/decisions.md: an upgraded site's config keeps working for one release; the
    operator is told once, by name, what to delete."""
    settings = load_config(write(tmp_path, variant(outbound__packaging_processes=4,
                                                   outbound__send_processes=0)))
    removed = [warning for warning in settings.warnings if "removed; ignored" in warning]
    assert len(removed) == 2
    assert removed[0].startswith("outbound.packaging_processes:")
    assert removed[1].startswith("outbound.send_processes:")
    assert "packaging_processes" not in settings.outbound.model_dump()


def test_an_unknown_outbound_key_is_still_refused(credentials, tmp_path):
    line = error_of(tmp_path, variant(outbound__sending_processes=2))
    assert "sending_processes" in line
