"""Fixtures shared by every test area. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import itertools
import os
import shutil
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
    from connector.devtools.devcerts import make_dev_certs

    return make_dev_certs(tmp_path_factory.mktemp("dev-certs"))


@pytest.fixture(scope="session")
def agency_key(dev_certs):
    """Agency A's signing key, from its PKCS#12 file (the edXML writing and verifying tests)."""
    from connector.edxml.keys import SigningKey, read_password

    return SigningKey.from_pkcs12(dev_certs.agency_a.p12,
                                  read_password(dev_certs.agency_a.password_file))


@pytest.fixture(scope="session")
def xmlsec1() -> str:
    """The ``xmlsec1`` program, the independent check that our signatures verify elsewhere too."""
    path = shutil.which("xmlsec1")
    if path is None:
        pytest.skip("xmlsec1 is not installed (apt-get install xmlsec1); scripts/test.sh installs it")
    return path


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory):
    """SoftHSM2 with a token folder of this session's own: ``SOFTHSM2_CONF`` is set for this
    process (before the module is first loaded) and the daemons it starts."""
    from connector.devtools.devtoken import softhsm_config, softhsm_module

    module = softhsm_module()
    if module is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2); scripts/test.sh installs it")
    pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (a dependency: pip install -e .)")
    conf = softhsm_config(tmp_path_factory.mktemp("softhsm"))
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return module, conf


_TOKEN_NUMBERS = itertools.count(1)


@pytest.fixture
def make_token(softhsm, dev_certs):
    """A new token holding an agency-A key generated on it, its certificate beside it:
    ``make_token(**put_agency_key options) -> (DevToken, certificate)``. PIN ``5678``."""
    from connector.devtools.devcerts import AGENCY_A_ORGAN_ID
    from connector.devtools.devtoken import init_token, put_agency_key

    module, conf = softhsm

    def make(*, key_label: str = "signing", key_id: bytes = b"\x01", **options):
        token = init_token(conf, f"agency-{next(_TOKEN_NUMBERS)}", "5678", module)
        options.setdefault("organ_id", AGENCY_A_ORGAN_ID)
        certificate = put_agency_key(token, key_label=key_label, key_id=key_id,
                                     ca_cert=dev_certs.ca_cert, ca_key=dev_certs.ca_key, **options)
        return token, certificate

    return make


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The suite runs in a random order (pytest-randomly); say which, even under ``-q``, so a
    failure that depends on the order can be run again in exactly that order."""
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None and config.pluginmanager.hasplugin("randomly"):
        terminalreporter.write_line(f"test order: random, seed {seed} "
                                    f"(again in that order: --randomly-seed={seed})")
