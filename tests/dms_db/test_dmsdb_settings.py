"""The ``database:`` mapping: defaults, secrets, and errors that name the key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connector.dms.database.mapping import DmsDatabaseSettings
from connector.errors import ConfigError


def _error(section: dict) -> str:
    with pytest.raises(ValidationError) as raised:
        DmsDatabaseSettings.model_validate(section)
    return str(raised.value)


def test_defaults_match_the_sample_schema():
    settings = DmsDatabaseSettings.model_validate({"url": "sqlite:///dms.db"})
    assert settings.outgoing.table == "dms_outgoing_documents"
    assert settings.outgoing.recipients.column == "recipients"
    assert settings.outgoing.attachments.table == "dms_outgoing_attachments"
    assert settings.outgoing.claims.state == "exchange_state"
    assert settings.statuses.table == "dms_outgoing_statuses"
    assert settings.incoming.documents.key_column == "journal_id"
    assert settings.states.new == ["new"] and settings.states.null_is_new
    assert "sqlite" not in repr(settings.url)  # SecretStr: never printed


def test_url_from_file_env_and_credential(tmp_path, monkeypatch):
    secret = tmp_path / "dms-url"
    secret.write_text("postgresql+psycopg://dms:s3cret@db/dms\n")
    assert DmsDatabaseSettings(url_file=secret).resolved_url() == \
        "postgresql+psycopg://dms:s3cret@db/dms"
    monkeypatch.setenv("DMS_URL", "mysql+pymysql://dms:pw@db/dms")
    assert DmsDatabaseSettings(url_env="DMS_URL").resolved_url() == "mysql+pymysql://dms:pw@db/dms"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert DmsDatabaseSettings(url_credential="dms-url").resolved_url().startswith("postgresql")

    with pytest.raises(ConfigError, match="database.url_env: environment variable NOPE_URL"):
        DmsDatabaseSettings(url_env="NOPE_URL").resolved_url()
    with pytest.raises(ConfigError, match="database.url_file: cannot read"):
        DmsDatabaseSettings(url_file=tmp_path / "missing").resolved_url()
    with pytest.raises(ConfigError, match="not a SQLAlchemy URL"):
        DmsDatabaseSettings(url="dms-server").resolved_url()


@pytest.mark.parametrize(("section", "expected"), [
    ({}, "give exactly one of url"),
    ({"url": "sqlite://", "url_env": "X"}, "got url, url_env"),
    ({"url": "sqlite://", "outgoing": {"columns": {"subjet": "s"}}},
     "unknown document field 'subjet' (did you mean 'subject'?)"),
    ({"url": "sqlite://", "outgoing": {"query": "SELECT * FROM v"}}, "claims.table"),
    ({"url": "sqlite://", "outgoing": {"query": "DELETE FROM v",
                                       "claims": {"table": "c"}}}, "must be a SELECT"),
    ({"url": "sqlite://", "outgoing": {"table": "t", "query": "SELECT 1"}}, "not both"),
    ({"url": "sqlite://", "outgoing": {"recipients": {"column": "r", "table": "t"}}},
     "recipients: set either 'column'"),
    ({"url": "sqlite://", "outgoing": {"recipients": {"table": "t",
                                                      "columns": {"organ_name": "n"}}}},
     "'organ_id' must be mapped"),
    ({"url": "sqlite://", "outgoing": {"attachments": {"blob_column": None,
                                                       "path_column": None}}},
     "map 'blob_column' or 'path_column'"),
    ({"url": "sqlite://", "statuses": {"columns": {"code": "c"}}}, "'document_id' must be mapped"),
    ({"url": "sqlite://", "states": {"claimed": "new"}}, "states.claimed"),
    ({"url": "sqlite://", "batch_size": 0}, "batch_size"),
    ({"url": "sqlite://", "incoming": {"documents": {"table": "t", "columns": {"subject": "s"}}}},
     "the key field 'journal_id' must be mapped"),
    ({"url": "sqlite://", "outgoing": {"colums": {}}}, "outgoing.colums"),
])
def test_errors_name_the_key(section, expected):
    assert expected in _error(section)
