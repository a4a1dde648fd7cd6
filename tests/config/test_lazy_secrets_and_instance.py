"""``load_config(path, resolve_secrets=False)`` (operator commands from a shell without the
service's credentials) and the ``journal.instance`` / ``journal.send_any_instance`` keys."""

from __future__ import annotations

import copy

import pytest
import yaml

from connector.config import EXAMPLE_CONFIG, _model_in, load_config
from connector.errors import ConfigError
from connector.service.runtime import axis_settings

EXAMPLE = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))


@pytest.fixture
def no_credentials(monkeypatch):
    """An operator's shell: no $CREDENTIALS_DIRECTORY (the example uses *_credential keys)."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("AXIS_ENDPOINT", raising=False)


def write(tmp_path, data):
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_full_load_still_needs_every_secret(no_credentials):
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE_CONFIG)
    assert "axis.secret_credential" in caught.value.one_line()
    assert "CREDENTIALS_DIRECTORY" in caught.value.one_line()


def test_lazy_load_reads_no_secret_until_one_is_used(no_credentials, tmp_path, monkeypatch):
    settings = load_config(EXAMPLE_CONFIG, resolve_secrets=False)
    assert settings.secrets_resolved is False
    assert settings.axis.secret is None and settings.certificate.password is None
    assert settings.secret_values() == []  # nothing readable here, and no error for it

    with pytest.raises(ConfigError) as caught:
        axis_settings(settings.axis, settings.agency.organ_id)
    line = caught.value.one_line()
    assert line.startswith(f"{EXAMPLE_CONFIG}: axis.secret_credential: CREDENTIALS_DIRECTORY")
    assert "this command needs the secret" in line
    with pytest.raises(ConfigError, match="certificate.password_credential"):
        settings.certificate.resolved_password()

    # once the credentials are there, the same settings object reads them on first use
    directory = tmp_path / "credentials"
    directory.mkdir()
    (directory / "axis-secret").write_text("axis-s3cret\n")
    (directory / "key-password").write_text("p12-pass\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    assert axis_settings(settings.axis, settings.agency.organ_id).secret == "axis-s3cret"
    assert settings.certificate.resolved_password().get_secret_value() == "p12-pass"
    assert sorted(settings.secret_values()) == ["axis-s3cret", "p12-pass"]


def test_lazy_load_still_checks_where_the_secrets_are(no_credentials, tmp_path):
    data = copy.deepcopy(EXAMPLE)
    data["axis"]["secret_file"] = "/etc/edxml-connector/axis-secret"  # a second source
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data), resolve_secrets=False)
    assert "axis.secret_file: give only one of secret_file, secret_credential" in \
        caught.value.one_line()

    data = copy.deepcopy(EXAMPLE)
    del data["axis"]["secret_credential"]
    with pytest.raises(ConfigError, match=r"axis\.secret_file: missing"):
        load_config(write(tmp_path, data), resolve_secrets=False)


def test_lazy_load_does_not_read_the_dms_database_url(no_credentials, tmp_path):
    data = copy.deepcopy(EXAMPLE)
    data["database"] = {"url_file": str(tmp_path / "absent-dms-url")}
    settings = load_config(write(tmp_path, data), resolve_secrets=False)
    with pytest.raises(ConfigError, match=r"database\.url_file"):
        settings.database.resolved_url()


def test_journal_instance_defaults_and_validation(no_credentials, tmp_path):
    settings = load_config(EXAMPLE_CONFIG, resolve_secrets=False)
    assert settings.journal.instance is None and settings.journal.send_any_instance is False

    data = copy.deepcopy(EXAMPLE)
    data["journal"] = {"instance": "node-1", "send_any_instance": True}
    settings = load_config(write(tmp_path, data), resolve_secrets=False)
    assert settings.journal.instance == "node-1" and settings.journal.send_any_instance is True

    data["journal"] = {"instance": "node 1/../x"}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, data), resolve_secrets=False)
    assert "journal.instance:" in caught.value.one_line()
    assert "letters, digits" in caught.value.one_line()


def test_the_example_documents_every_key():
    """Every key of every section (the DMS `database:` mapping included) is written in
    config/connector.example.yaml, as a setting or in a comment."""
    import re

    from connector.config import Settings

    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    missing = []

    def walk(model, path):
        for name, field in model.model_fields.items():
            if field.exclude:
                continue  # resolved secrets, never written
            key = field.alias or name
            if not re.search(rf"(?<![\w.]){re.escape(key)}:", text):
                missing.append(path + key)
            inner = _model_in(field.annotation)
            if inner is not None:
                walk(inner, f"{path}{key}.")

    walk(Settings, "")
    assert missing == []
