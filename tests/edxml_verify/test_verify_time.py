"""Validity is judged when the connector verifies (the time of receipt), never at the time the
package claims. Tried as a hostile sender would: a key whose certificate expired signs a package
whose timestamps are back-dated into the certificate's validity."""

from __future__ import annotations

import datetime as dt
import random

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lxml import etree
from signxml import XMLSigner
from signxml.algorithms import CanonicalizationMethod, SignatureConstructionMethod

from connector.edxml.identifiers import now_vietnam
from connector.edxml.signing import SignatureState, verify_package_signxml
from connector.edxml.writer import write_package

from .test_verify_whole_package import NS, _all_paths


def _back_dated_and_signed_with_the_expired_key(make_package, dev_certs, days_ago: int) -> bytes:
    root = etree.fromstring(write_package(make_package([random.Random(5).randbytes(20_000)])))
    claimed = (now_vietnam() - dt.timedelta(days=days_ago)).strftime("%Y/%m/%d %H:%M:%S")
    for element in root.iter(f"{NS}Timestamp"):
        element.text = claimed
    key = load_pem_private_key(dev_certs.expired_key.read_bytes(), None)
    signer = XMLSigner(method=SignatureConstructionMethod.enveloped, signature_algorithm="rsa-sha256",
                       digest_algorithm="sha256",
                       c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
    signed = signer.sign(root, key=key, cert=[dev_certs.expired_cert.read_text()])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def test_a_back_dated_package_signed_with_an_expired_certificate_is_expired(
        make_package, dev_certs, tmp_path):
    data = _back_dated_and_signed_with_the_expired_key(make_package, dev_certs, days_ago=100)
    expiry = x509.load_pem_x509_certificate(dev_certs.expired_cert.read_bytes()).not_valid_after_utc
    for result in _all_paths(data, tmp_path, dev_certs.ca_cert):
        assert result.state is SignatureState.EXPIRED, result.reason
        assert f"expired on {expiry:%Y-%m-%d %H:%M:%S} UTC" in result.reason
        assert "before the package was received on" in result.reason


def test_the_claimed_time_is_kept_and_judged_only_as_a_warning(make_package, dev_certs, tmp_path):
    data = _back_dated_and_signed_with_the_expired_key(make_package, dev_certs, days_ago=1000)
    result = verify_package_signxml(data, trust=dev_certs.ca_cert)
    assert result.state is SignatureState.EXPIRED
    assert result.signing_time is not None and result.signing_time.year < dt.date.today().year
    assert any("outside its certificate's validity" in warning for warning in result.warnings)


def test_the_recorded_moment_of_receipt_decides_for_the_whole_chain(make_package, dev_certs):
    """Re-verified with a recorded time of receipt inside the signer's validity: not expired;
    the chain is judged at that moment too (the dev CA was made yesterday, so it was not yet
    valid then)."""
    data = _back_dated_and_signed_with_the_expired_key(make_package, dev_certs, days_ago=100)
    received = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=100)
    result = verify_package_signxml(data, trust=dev_certs.ca_cert, at=received)
    assert result.state is SignatureState.UNTRUSTED
    assert "CA certificate" in result.reason
