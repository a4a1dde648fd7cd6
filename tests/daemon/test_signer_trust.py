"""Trust that means what it says, through the daemon: a package from A on the axis is judged by
who signed it. Tried as a hostile party would that can send as A on the axis (stolen axis
credentials, a compromised axis) but has no key of A's: it signs with another agency's trusted
certificate (``wrong-signer`` → quarantined), with a certificate from the trusted CA that the
mapping does not know (``unbound`` → delivered with a warning), or A's own certificate has been
revoked (``revoked`` → quarantined). The next genuine document is still ``valid``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from edxml_verify.pki import NOW, Authority

from connector.edxml import model
from connector.edxml.keys import SigningKey, read_password
from connector.edxml.signing import sign_package
from connector.edxml.writer import write_package
from connector.errors import ConfigError

from .conftest import PDF, A, B, document_metadata, drop_bundle


def _signed_as_a(key: SigningKey, number: str) -> bytes:
    return sign_package(write_package(model.DocumentPackage(
        from_=model.Organization(organ_id=A, organ_name="Văn phòng Chính phủ"),
        to=[model.Organization(organ_id=B)], document_id=f"{A},2026/12/06,{number}/TRUST",
        code=model.Code(number=number, notation="TRUST"), subject="Văn bản thử",
        attachments=[model.Attachment(name="a.pdf", content_type="application/pdf", content_id="1",
                                      data=PDF)])), key)


def _plant(simulator, data: bytes) -> None:
    simulator.store.add_transfer(message_type="edoc", sender=A, systemid=A, data=data,
                                 sha256=hashlib.sha256(data).hexdigest(), recipients=[B])


def _received(exchange: Path, number: str) -> tuple[str, dict]:
    for path in exchange.glob("*/*/*/metadata.json"):
        metadata = json.loads(path.read_text())
        if (metadata.get("code") or "").startswith(number):
            return path.parts[-4], metadata
    raise AssertionError(f"document {number} not received")


def _dev_ca(dev_certs) -> Authority:
    return Authority("dev", load_pem_private_key(dev_certs.ca_key.read_bytes(), None),
                     x509.load_pem_x509_certificate(dev_certs.ca_cert.read_bytes()))


def _genuine_is_valid(a, b) -> None:
    drop_bundle(a.exchange / "outbox", "cv101", document_metadata(), {"Công văn số 101.pdf": PDF})
    a.cycle()
    b.poll()
    folder, metadata = _received(b.exchange, "101")
    assert folder == "inbox" and metadata["signature"]["state"] == "valid", metadata["signature"]
    assert metadata["signature"]["bound_to"] == [A]


def test_signed_with_another_agencys_certificate_is_quarantined_as_wrong_signer(pair, simulator, dev_certs):
    a, b = pair
    b_key = SigningKey.from_pkcs12(dev_certs.agency_b.p12, read_password(dev_certs.agency_b.password_file))
    _plant(simulator, _signed_as_a(b_key, "7"))
    assert b.poll()["listed"] == 1
    folder, metadata = _received(b.exchange, "7")
    assert folder == "quarantine"
    signature = metadata["signature"]
    assert signature["state"] == "wrong-signer" and signature["bound_to"] == [B]
    assert f"bound to {B}, not to the sender {A}" in signature["reason"]
    _genuine_is_valid(a, b)


def test_a_certificate_the_mapping_does_not_know_is_delivered_as_unbound(pair, simulator, dev_certs):
    a, b = pair
    stranger = _dev_ca(dev_certs).issue_signer("Cán bộ lạ")
    _plant(simulator, _signed_as_a(stranger, "8"))
    b.poll()
    folder, metadata = _received(b.exchange, "8")
    assert folder == "inbox" and metadata["signature"]["state"] == "unbound"
    assert "no binding in the signer mapping" in metadata["signature"]["reason"]
    _genuine_is_valid(a, b)


def test_a_revoked_signer_is_quarantined_with_the_revocation_date(make_agency, tmp_path, dev_certs):
    crls = tmp_path / "crls"
    crls.mkdir()
    a_cert = x509.load_pem_x509_certificate(dev_certs.agency_a.cert.read_bytes())
    revoked_at = NOW - dt.timedelta(hours=2)
    (crls / "dev-ca.crl").write_bytes(_dev_ca(dev_certs).crl([(a_cert, revoked_at)]))
    a, b = make_agency("A"), make_agency("B", trust={"crl_folder": str(crls)})
    drop_bundle(a.exchange / "outbox", "cv9", document_metadata(number="9"), {"Công văn số 101.pdf": PDF})
    a.cycle()
    b.poll()
    folder, metadata = _received(b.exchange, "9")
    assert folder == "quarantine"
    assert metadata["signature"]["state"] == "revoked"
    assert metadata["signature"]["revoked_at"] == revoked_at.isoformat()
    assert f"revoked on {revoked_at:%Y-%m-%d %H:%M:%S} UTC" in metadata["signature"]["reason"]


def test_strict_revocation_policy_quarantines_what_cannot_be_told(make_agency):
    """No CRL folder and certificates that name no distribution point: ``revocation-unknown``,
    which the strict policy quarantines."""
    a = make_agency("A")
    b = make_agency("B", trust={"crl_folder": None},
                    inbox={"signature_policy": {"revocation_unknown": "quarantine"}})
    drop_bundle(a.exchange / "outbox", "cv5", document_metadata(number="5"), {"Công văn số 101.pdf": PDF})
    a.cycle()
    b.poll()
    folder, metadata = _received(b.exchange, "5")
    assert folder == "quarantine" and metadata["signature"]["state"] == "revocation-unknown"
    assert "no CRL of" in metadata["signature"]["reason"]


def test_a_reload_reads_the_signer_mapping_again_and_a_bad_one_keeps_the_old(pair, simulator, dev_certs,
                                                                              tmp_path):
    a, b = pair
    mapping = Path(b.runtime.settings.trust.signer_map_file)
    stranger = _dev_ca(dev_certs).issue_signer("Văn thư mới của VPCP")
    _plant(simulator, _signed_as_a(stranger, "11"))
    b.poll()
    assert _received(b.exchange, "11")[1]["signature"]["state"] == "unbound"

    copy = tmp_path / "signers.yaml"
    copy.write_text(mapping.read_text() + f"  - organ_id: {A}\n    sha256: "
                    f"{stranger.certificate.fingerprint(hashes.SHA256()).hex()}\n")
    b.runtime.settings.trust.signer_map_file = copy
    b.runtime.reload_trust()
    _plant(simulator, _signed_as_a(stranger, "12"))
    b.poll()
    assert _received(b.exchange, "12")[1]["signature"]["state"] == "valid"

    copy.write_text("signers: [oops\n")
    with pytest.raises(ConfigError):
        b.runtime.reload_trust()
    _plant(simulator, _signed_as_a(stranger, "13"))
    b.poll()
    assert _received(b.exchange, "13")[1]["signature"]["state"] == "valid"  # the previous store stays
