"""Path validation by the book (cryptography's RFC 5280 verifier), tried as a hostile sender
would: every chain here is one an agency could build with what it has — its own signing
certificate, a CA certificate that may not sign certificates, a CA whose path length forbids
another level. Each must be ``untrusted`` on both verification paths; the honest shapes stay
``valid``."""

from __future__ import annotations

import random

import pytest

from connector.edxml.signing import SignatureState, sign_package
from connector.edxml.writer import write_package
from connector.errors import CertificateError
from connector.service.runtime import check_signer

from .pki import Authority, usage
from .test_verify_whole_package import _all_paths


@pytest.fixture(scope="module")
def root():
    return Authority.root()


def _signed(make_package, key) -> bytes:
    return sign_package(write_package(make_package([random.Random(9).randbytes(3000)])), key)


def _outcomes(make_package, key, root, tmp_path):
    return _all_paths(_signed(make_package, key), tmp_path, root.pem(tmp_path / "root.pem"))


def test_a_chain_through_an_intermediate_ca_is_valid(make_package, root, tmp_path):
    signer = root.issue_ca("Test Sub CA").issue_signer()
    for result in _outcomes(make_package, signer, root, tmp_path):
        assert result.state is SignatureState.VALID, result.reason


def test_an_agency_certificate_used_as_an_issuer_is_untrusted(make_package, root, tmp_path):
    """An agency's own certificate (not a CA) issues itself a certificate in another's name."""
    agency = root.issue_ca("000.00.00.H41", ca=False,
                           key_usage=usage(digital_signature=True, key_cert_sign=True))
    forged = agency.issue_signer("000.00.00.G22")
    for result in _outcomes(make_package, forged, root, tmp_path):
        assert result.state is SignatureState.UNTRUSTED
        assert "basicConstraints.cA" in result.reason


def test_a_ca_whose_key_usage_lacks_keycertsign_is_untrusted(make_package, root, tmp_path):
    """The old hand-made chain check looked only at the CA flag: this chain passed it."""
    issuer = root.issue_ca("Signing-only CA", key_usage=usage(digital_signature=True, crl_sign=True))
    for result in _outcomes(make_package, issuer.issue_signer(), root, tmp_path):
        assert result.state is SignatureState.UNTRUSTED
        assert "keyCertSign" in result.reason


def test_a_path_longer_than_the_root_allows_is_untrusted(make_package, tmp_path):
    """A root with pathLenConstraint 0 may issue only end-entity certificates."""
    strict = Authority.root("Strict Root", path_length=0)
    signer = strict.issue_ca("Unwanted Sub CA").issue_signer()
    for result in _outcomes(make_package, signer, strict, tmp_path):
        assert result.state is SignatureState.UNTRUSTED
        assert "path length" in result.reason


@pytest.mark.parametrize("granted, outcome", [
    ({"key_encipherment": True}, SignatureState.UNTRUSTED),
    ({"content_commitment": True}, SignatureState.VALID),  # nonRepudiation alone is a signing usage
    ({"digital_signature": True}, SignatureState.VALID),
])
def test_the_signers_key_usage_must_allow_signatures(make_package, root, tmp_path, granted, outcome):
    signer = root.issue_signer(key_usage=usage(**granted))
    for result in _outcomes(make_package, signer, root, tmp_path):
        assert result.state is outcome, result.reason
        if outcome is SignatureState.UNTRUSTED:
            assert "neither digitalSignature nor nonRepudiation" in result.reason


def test_a_ca_certificate_as_the_signer_is_untrusted(make_package, root, tmp_path):
    signer = root.issue_signer(ca=True, key_usage=usage(digital_signature=True, key_cert_sign=True))
    for result in _outcomes(make_package, signer, root, tmp_path):
        assert result.state is SignatureState.UNTRUSTED
        assert "is a CA certificate" in result.reason


def test_outgoing_the_same_path_rules_apply(root, tmp_path):
    """Part 4: the connector refuses to sign with a certificate whose chain would not validate."""
    bundle = root.pem(tmp_path / "root.pem")
    check_signer(root.issue_ca("Test Sub CA").issue_signer(), bundle)
    issuer = root.issue_ca("Signing-only CA", key_usage=usage(digital_signature=True))
    with pytest.raises(CertificateError) as caught:
        check_signer(issuer.issue_signer(), bundle)
    assert "keyCertSign" in caught.value.one_line() and "trust.bundle_file" in caught.value.one_line()
