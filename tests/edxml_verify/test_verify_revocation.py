"""Revocation, from a CRL folder, from the certificate's distribution point and from its OCSP
responder (a real HTTP server on loopback, CRLs and OCSP answers made with cryptography).
Tried as an attacker would: a CRL or an OCSP answer forged with another key (same CA name) must
not make a revoked certificate good; verification never waits on the network; a failing
responder is not hammered (negative caching)."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from cryptography.x509 import ocsp

from connector.edxml.revocation import load_crl_folder
from connector.edxml.revocation_fetch import RevocationFetcher
from connector.edxml.signing import SignatureState, sign_package, verify_package
from connector.edxml.trust_store import TrustStore
from connector.edxml.writer import write_package
from connector.errors import ConfigError

from .pki import NOW, Authority, RevocationServer, new_key
from .test_verify_whole_package import _all_paths

FROM = "000.00.00.G22"


@pytest.fixture(scope="module")
def ca():
    return Authority.root("Revocation Test CA")


@pytest.fixture
def server():
    served = RevocationServer()
    yield served
    served.close()


@pytest.fixture
def fetcher():
    fetcher = RevocationFetcher()
    yield fetcher
    fetcher.close()


def _signed(make_package, key) -> bytes:
    return sign_package(write_package(make_package([random.Random(4).randbytes(2000)])), key)


def _store(ca, tmp_path, *, crls: list[bytes] = (), fetcher=None) -> TrustStore:
    folder = tmp_path / "crls"
    folder.mkdir(exist_ok=True)
    for index, crl in enumerate(crls):
        (folder / f"{index}.crl").write_bytes(crl)
    store = TrustStore.from_files(ca.pem(tmp_path / "ca.pem"), crl_folder=folder, fetcher=fetcher)
    assert store is not None
    return TrustStore(store.anchors, None, store.revocation, store.sources)  # binding: not the question here


def test_a_signer_revoked_in_the_crl_folder_is_revoked_with_its_date(make_package, ca, tmp_path):
    signer = ca.issue_signer()
    when = NOW - dt.timedelta(days=2)
    store = _store(ca, tmp_path, crls=[ca.crl([(signer.certificate, when)])])
    for result in _all_paths(_signed(make_package, signer), tmp_path, store):
        assert result.state is SignatureState.REVOKED
        assert result.revoked_at == when and f"revoked on {when:%Y-%m-%d %H:%M:%S} UTC" in result.reason


def test_a_fresh_crl_that_does_not_list_the_signer_makes_it_good(make_package, ca, tmp_path):
    other = ca.issue_signer("someone else")
    store = _store(ca, tmp_path, crls=[ca.crl([(other.certificate, NOW - dt.timedelta(days=1))])])
    result = verify_package(_signed(make_package, ca.issue_signer()), trust=store)
    assert result.state is SignatureState.VALID and "not revoked" in result.reason


def test_a_crl_forged_with_another_key_under_the_cas_name_is_ignored(make_package, ca, tmp_path):
    """A CRL that claims the CA's name but is not signed by it says nothing: not good, not revoked."""
    signer = ca.issue_signer()
    store = _store(ca, tmp_path, crls=[ca.crl([], signed_by=new_key(unlike=ca.key))])
    result = verify_package(_signed(make_package, signer), trust=store)
    assert result.state is SignatureState.REVOCATION_UNKNOWN
    assert "no CRL of" in result.reason and "names no CRL distribution point" in result.reason


def test_an_out_of_date_crl_cannot_tell(make_package, ca, tmp_path):
    stale = ca.crl([], last_update=NOW - dt.timedelta(days=20), next_update=NOW - dt.timedelta(days=13))
    result = verify_package(_signed(make_package, ca.issue_signer()),
                            trust=_store(ca, tmp_path, crls=[stale]))
    assert result.state is SignatureState.REVOCATION_UNKNOWN and "is out of date" in result.reason


def test_a_revocation_after_the_moment_of_receipt_does_not_change_that_verdict(make_package, ca, tmp_path):
    """Re-verified at the recorded time of receipt: the certificate was good then."""
    signer = ca.issue_signer()
    later = NOW + dt.timedelta(minutes=30)
    store = _store(ca, tmp_path, crls=[ca.crl([(signer.certificate, later)])])
    data = _signed(make_package, signer)
    assert verify_package(data, trust=store, at=NOW + dt.timedelta(minutes=1)).state is SignatureState.VALID
    assert verify_package(data, trust=store, at=NOW + dt.timedelta(hours=1)).state is SignatureState.REVOKED


def test_a_file_in_the_crl_folder_that_is_not_a_crl_stops_the_load(tmp_path):
    (tmp_path / "junk.crl").write_bytes(b"not a CRL")
    with pytest.raises(ConfigError) as caught:
        load_crl_folder(tmp_path)
    assert "junk.crl" in caught.value.one_line() and "not a readable CRL" in caught.value.one_line()


def test_the_distribution_point_is_fetched_in_the_background_and_cached(make_package, ca, tmp_path, server,
                                                                          fetcher):
    signer = ca.issue_signer(crl_url=f"{server.base}/ca.crl")
    server.crl = ca.crl([(signer.certificate, NOW - dt.timedelta(hours=1))])
    store = _store(ca, tmp_path, fetcher=fetcher)
    data = _signed(make_package, signer)
    first = verify_package(data, trust=store)  # never waits on the network
    assert first.state is SignatureState.REVOCATION_UNKNOWN and "asked in the background" in first.reason
    assert fetcher.wait_idle(10)
    for _ in range(3):
        assert verify_package(data, trust=store).state is SignatureState.REVOKED
    assert server.requests == ["/ca.crl"]  # cached: fetched once


def test_an_unreachable_distribution_point_is_not_asked_again_for_a_while(make_package, ca, tmp_path, server,
                                                                            fetcher):
    signer = ca.issue_signer(crl_url=f"{server.base}/ca.crl")  # server.crl is None: 404
    data = _signed(make_package, signer)
    store = _store(ca, tmp_path, fetcher=fetcher)
    for _ in range(3):
        assert verify_package(data, trust=store).state is SignatureState.REVOCATION_UNKNOWN
        assert fetcher.wait_idle(10)
    assert server.requests == ["/ca.crl"]


@pytest.mark.parametrize("status, outcome", [
    (ocsp.OCSPCertStatus.GOOD, SignatureState.VALID),
    (ocsp.OCSPCertStatus.REVOKED, SignatureState.REVOKED),
    (ocsp.OCSPCertStatus.UNKNOWN, SignatureState.REVOCATION_UNKNOWN)])
def test_the_ocsp_responder_answers(make_package, ca, tmp_path, server, fetcher, status, outcome):
    signer = ca.issue_signer(ocsp_url=f"{server.base}/ocsp")
    when = NOW - dt.timedelta(hours=3)
    server.ocsp = ca.ocsp_answer(signer.certificate, status,
                                 revoked_at=when if status is ocsp.OCSPCertStatus.REVOKED else None)
    store = _store(ca, tmp_path, fetcher=fetcher)
    data = _signed(make_package, signer)
    assert verify_package(data, trust=store).state is SignatureState.REVOCATION_UNKNOWN
    assert fetcher.wait_idle(10)
    result = verify_package(data, trust=store)
    assert result.state is outcome, result.reason
    if outcome is SignatureState.REVOKED:
        assert result.revoked_at == when and "OCSP responder" in result.reason


def test_an_ocsp_answer_from_a_delegated_responder_counts_only_with_ocsp_signing(make_package, ca, tmp_path,
                                                                                 server, fetcher):
    signer = ca.issue_signer(ocsp_url=f"{server.base}/ocsp")
    for eku, outcome in ((False, SignatureState.REVOCATION_UNKNOWN), (True, SignatureState.VALID)):
        responder_key, responder_cert = ca.ocsp_responder_cert(eku=eku)
        server.ocsp = ca.ocsp_answer(signer.certificate, ocsp.OCSPCertStatus.GOOD,
                                     responder=Authority("r", responder_key, responder_cert),
                                     responder_cert=responder_cert)
        local = RevocationFetcher()
        try:
            store = _store(ca, tmp_path, fetcher=local)
            verify_package(_signed(make_package, signer), trust=store)
            assert local.wait_idle(10)
            assert verify_package(_signed(make_package, signer), trust=store).state is outcome
        finally:
            local.close()


def test_a_forged_ocsp_good_for_a_revoked_signer_is_refused(make_package, ca, tmp_path, server, fetcher):
    """An answer signed by a key of the attacker's (with the CA's name) is not believed; the
    CRL folder's revocation stands."""
    signer = ca.issue_signer(ocsp_url=f"{server.base}/ocsp")
    impostor = Authority.root("Revocation Test CA")  # the CA's name, the attacker's key
    server.ocsp = impostor.ocsp_answer(signer.certificate, ocsp.OCSPCertStatus.GOOD)
    store = _store(ca, tmp_path, crls=[ca.crl([(signer.certificate, NOW - dt.timedelta(days=1))])],
                   fetcher=fetcher)
    data = _signed(make_package, signer)
    verify_package(data, trust=store)
    fetcher.wait_idle(10)
    assert verify_package(data, trust=store).state is SignatureState.REVOKED
    assert fetcher.cached_ocsp(signer.certificate, ca.cert) is None


def test_revocation_of_an_intermediate_ca_counts_too(make_package, ca, tmp_path):
    sub = ca.issue_ca("Revoked Sub CA")
    signer = sub.issue_signer()
    store = _store(ca, tmp_path, crls=[ca.crl([(sub.cert, NOW - dt.timedelta(days=3))]), sub.crl()])
    result = verify_package(_signed(make_package, signer), trust=store)
    assert result.state is SignatureState.REVOKED and "Revoked Sub CA" in result.reason
