"""Fixtures for the writer/signing tests: a realistic document package and the dev keys."""

from __future__ import annotations

import shutil

import pytest
from edxml_write_helpers import make_document

from connector.edxml.keys import SigningKey, read_password
from connector.edxml.model import DocumentPackage


@pytest.fixture()
def document() -> DocumentPackage:
    return make_document()


@pytest.fixture(scope="session")
def agency_key(dev_certs) -> SigningKey:
    return SigningKey.from_pkcs12(dev_certs.agency_a.p12, read_password(dev_certs.agency_a.password_file))


@pytest.fixture(scope="session")
def xmlsec1() -> str:
    path = shutil.which("xmlsec1")
    if path is None:
        pytest.skip("xmlsec1 is not installed (apt-get install xmlsec1); scripts/test.sh installs it")
    return path
