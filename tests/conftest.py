"""Fixtures shared by every test area. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INTEROP = PROJECT_ROOT.parent / "shared" / "interop"


@pytest.fixture(scope="session")
def interop_dir() -> Path:
    """The read-only interoperability samples (``../shared/interop``)."""
    if not INTEROP.is_dir():
        pytest.skip(f"interop samples not found at {INTEROP}")
    return INTEROP


@pytest.fixture(scope="session")
def dev_certs(tmp_path_factory):
    """A throwaway CA and two agency certificates, made once per test session."""
    from connector.devcerts import make_dev_certs

    return make_dev_certs(tmp_path_factory.mktemp("dev-certs"))
