"""The journal holds item history and metadata: it is created readable by its owner only, and a
password inside its URL never reaches an error message or the logs."""

from __future__ import annotations

import os
import stat

import pytest

from connector.errors import ConfigError
from connector.journal import Journal
from connector.journal.engine import parse_journal_url


def test_a_new_sqlite_journal_is_private_whatever_the_umask(tmp_path):
    path = tmp_path / "state" / "journal.db"
    previous = os.umask(0o002)  # a permissive umask must not make the journal world-readable
    try:
        journal = Journal.open(f"sqlite:///{path}")
        journal.close()
    finally:
        os.umask(previous)
    for candidate in [path, *path.parent.glob("journal.db-*")]:
        assert stat.S_IMODE(candidate.stat().st_mode) & 0o077 == 0, candidate


def test_a_bad_journal_url_error_hides_the_password():
    with pytest.raises(ConfigError) as caught:
        parse_journal_url("postgresql+psycopg://connector:s3cr3t-pw@db:notaport/journal")
    assert "s3cr3t-pw" not in caught.value.one_line()


def test_the_journal_password_is_handed_to_the_log_redactor():
    from connector.config import _url_password

    assert _url_password("postgresql+psycopg://connector:s3cr3t-pw@db/journal") == "s3cr3t-pw"
    assert _url_password("sqlite:////var/lib/edxml-connector/journal.db") is None
