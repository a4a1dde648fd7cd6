"""Fixtures for the writer/signing tests: a realistic document package (the signing key and
``xmlsec1`` are in tests/conftest.py, shared with the verification tests)."""

from __future__ import annotations

import pytest
from edxml_write_helpers import make_document

from connector.edxml.model import DocumentPackage


@pytest.fixture()
def document() -> DocumentPackage:
    return make_document()
