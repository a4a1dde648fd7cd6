"""The signer bound to the sender: the mapping file ties certificates to OrganIds, and a sound,
trusted signature by a certificate bound to another agency than ``From`` is ``wrong-signer``.
Tried as a hostile agency would: it signs a package in another agency's name with its own,
perfectly trusted certificate."""

from __future__ import annotations

import random

import pytest

from connector.edxml.signer_binding import fingerprint, load_signer_bindings
from connector.edxml.signing import SignatureState, sign_package, verify_package
from connector.edxml.trust_store import TrustStore
from connector.edxml.writer import write_package
from connector.errors import ConfigError

from .pki import Authority
from .test_verify_whole_package import _all_paths

FROM = "000.00.00.G22"  # the From of make_package's documents
OTHER = "000.00.00.H29"


@pytest.fixture(scope="module")
def ca():
    return Authority.root("Binding Test CA")


def _store(ca, tmp_path, mapping: str) -> TrustStore:
    (tmp_path / "signers.yaml").write_text(mapping, encoding="utf-8")
    store = TrustStore.from_files(ca.pem(tmp_path / "ca.pem"), signer_map=tmp_path / "signers.yaml")
    assert store is not None
    return TrustStore(store.anchors, store.bindings, None, store.sources)  # revocation: not the question here


def _signed(make_package, key) -> bytes:
    return sign_package(write_package(make_package([random.Random(2).randbytes(1500)])), key)


def test_a_certificate_bound_to_from_is_valid(make_package, ca, tmp_path):
    signer = ca.issue_signer("Văn thư VPCP")
    store = _store(ca, tmp_path,
                   f"signers:\n  - organ_id: {FROM}\n    sha256: {fingerprint(signer.certificate)}\n")
    for result in _all_paths(_signed(make_package, signer), tmp_path, store):
        assert result.state is SignatureState.VALID and result.bound_to == (FROM,)
        assert f"bound to {FROM}" in result.reason


def test_another_agencys_trusted_certificate_signing_in_froms_name_is_wrong_signer(make_package, ca,
                                                                                   tmp_path):
    hostile = ca.issue_signer("Văn thư Khánh Hòa")
    colon_fingerprint = ":".join(fingerprint(hostile.certificate)[i:i + 2] for i in range(0, 64, 2)).lower()
    store = _store(ca, tmp_path, f"signers:\n  - organ_id: {OTHER}\n    sha256: '{colon_fingerprint}'\n")
    for result in _all_paths(_signed(make_package, hostile), tmp_path, store):
        assert result.state is SignatureState.WRONG_SIGNER
        assert f"bound to {OTHER}, not to the sender {FROM}" in result.reason
        assert result.bound_to == (OTHER,)


def test_binding_by_subject_fields_and_by_the_field_that_holds_the_organ_id(make_package, ca, tmp_path):
    by_subject = ca.issue_signer("Văn thư VPCP")
    store = _store(ca, tmp_path,
                   f"signers:\n  - organ_id: {FROM}\n    subject: {{CN: 'Văn thư VPCP', C: VN}}\n")
    assert verify_package(_signed(make_package, by_subject), trust=store).state is SignatureState.VALID
    partial = ca.issue_signer("Văn thư khác")  # C matches, CN does not: every listed field must
    assert verify_package(_signed(make_package, partial), trust=store).state is SignatureState.UNBOUND

    store = _store(ca, tmp_path, "organ_id_in_subject: CN\n")
    result = verify_package(_signed(make_package, ca.issue_signer(FROM)), trust=store)
    assert result.state is SignatureState.VALID
    result = verify_package(_signed(make_package, ca.issue_signer(OTHER)), trust=store)
    assert result.state is SignatureState.WRONG_SIGNER


def test_a_certificate_the_mapping_does_not_name_is_unbound(make_package, ca, tmp_path):
    store = _store(ca, tmp_path, "signers: []\n")
    result = verify_package(_signed(make_package, ca.issue_signer()), trust=store)
    assert result.state is SignatureState.UNBOUND and "trust.signer_map_file" in result.reason


def test_an_untrusted_certificate_is_not_looked_up(make_package, ca, tmp_path):
    """A fingerprint entry does not make an unknown CA's certificate trusted."""
    stranger = Authority.root("Other CA").issue_signer()
    store = _store(ca, tmp_path,
                   f"signers:\n  - organ_id: {FROM}\n    sha256: {fingerprint(stranger.certificate)}\n")
    assert verify_package(_signed(make_package, stranger), trust=store).state is SignatureState.UNTRUSTED


@pytest.mark.parametrize("text, expected", [
    ("signers:\n  - organ_id: X\n", "signers.0: Value error, give exactly one of sha256"),
    ("signers:\n  - organ_id: X\n    sha256: ABCD\n", "64 hex digits"),
    ("signers:\n  - organ_id: X\n    subject: {NAME: x}\n", "not NAME"),
    ("signer: []\n", "signer: Extra inputs are not permitted"),
    ("signers: [\n", "not valid YAML"),
])
def test_a_bad_mapping_file_is_refused_naming_the_file_and_the_entry(tmp_path, text, expected):
    path = tmp_path / "signers.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_signer_bindings(path)
    assert expected in caught.value.one_line() and str(path) in caught.value.one_line()
