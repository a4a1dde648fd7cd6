"""Outgoing, the same rules as incoming: the connector refuses to sign with a certificate that a
receiver would refuse (no digitalSignature, a chain that does not reach the trust bundle),
saying which and what to do. Expiry is refused at signing as before (keys.check_validity)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from connector.devtools.devcerts import make_dev_certs
from connector.edxml.keys import SigningKey
from connector.errors import CertificateError
from connector.service.runtime import check_signer


def _leaf(ca_key, ca_cert, *, digital_signature: bool):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "000.00.00.G22")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(ca_key, hashes.SHA256()))
    return SigningKey(private_key=key, certificate=cert, source="agency.p12")


@pytest.fixture
def ca(dev_certs):
    return (load_pem_private_key(dev_certs.ca_key.read_bytes(), None),
            x509.load_pem_x509_certificate(dev_certs.ca_cert.read_bytes()))


def test_a_certificate_without_digital_signature_may_not_sign(ca, dev_certs):
    with pytest.raises(CertificateError) as caught:
        check_signer(_leaf(*ca, digital_signature=False), dev_certs.ca_cert)
    text = caught.value.one_line()
    assert "digitalSignature" in text and "agency.p12" in text and "signing certificate" in text


def test_a_certificate_whose_chain_does_not_reach_the_bundle_may_not_sign(ca, tmp_path):
    other = make_dev_certs(tmp_path / "other")
    with pytest.raises(CertificateError) as caught:
        check_signer(_leaf(*ca, digital_signature=True), other.ca_cert)
    text = caught.value.one_line()
    assert "does not validate against trust.bundle_file" in text and "unknown CA" in text


def test_a_good_certificate_signs_and_without_a_bundle_only_the_usage_is_checked(ca, dev_certs):
    check_signer(_leaf(*ca, digital_signature=True), dev_certs.ca_cert)
    check_signer(_leaf(*ca, digital_signature=True), None)
    with pytest.raises(CertificateError):
        check_signer(_leaf(*ca, digital_signature=False), None)
