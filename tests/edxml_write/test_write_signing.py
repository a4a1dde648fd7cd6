"""Signatures: ours verify under xmlsec1 and verify_package; tampering, trust and SDK-style
signatures get the right outcome."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import re
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from connector.devtools.devcerts import make_dev_certs
from connector.edxml.model import NAMESPACE
from connector.edxml.signing import XMLDSIG, SignatureState, sign_package, sign_package_file, verify_package
from connector.edxml.writer import prepare_package, write_package, write_package_to
from connector.errors import InputError

INTEROP = Path(__file__).resolve().parents[3] / "shared" / "interop"
NS = "{" + NAMESPACE + "}"
DS = "{" + XMLDSIG + "}"


def xmlsec_verify(xmlsec1: str, ca: Path, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([xmlsec1, "--verify", "--trusted-pem", str(ca), str(path)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture()
def signed(document, agency_key) -> bytes:
    return sign_package(write_package(document), agency_key)


def test_signature_is_enveloped_xmldsig_last_in_the_header(signed):
    root = etree.fromstring(signed)
    header = root.find(f"{NS}edXMLEnvelope/{NS}edXMLHeader")
    assert header[-1].tag == f"{DS}Signature"
    assert len(list(root.iter(f"{DS}Signature"))) == 1
    reference = header[-1].find(f"{DS}SignedInfo/{DS}Reference")
    assert reference.get("URI") == ""
    assert [t.get("Algorithm") for t in reference.iter(f"{DS}Transform")] == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature", "http://www.w3.org/2001/10/xml-exc-c14n#"]
    assert header[-1].find(f"{DS}SignedInfo/{DS}SignatureMethod").get("Algorithm").endswith("rsa-sha256")
    assert header[-1].find(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate") is not None


def test_our_signature_verifies_with_xmlsec1_and_verify_package(signed, dev_certs, tmp_path, xmlsec1):
    path = tmp_path / "signed.edxml"
    path.write_bytes(signed)
    result = xmlsec_verify(xmlsec1, dev_certs.ca_cert, path)
    assert result.returncode == 0, result.stderr
    verdict = verify_package(signed, trust=dev_certs.ca_cert)
    assert verdict.state is SignatureState.VALID, verdict.reason
    assert "000.00.00.G22" in verdict.signer_subject and verdict.algorithm == "rsa-sha256"


def test_streaming_signed_package_verifies_and_matches_signxml_structure(document, agency_key, dev_certs,
                                                                         tmp_path, xmlsec1):
    source = tmp_path / "scan.bin"
    source.write_bytes(bytes(range(256)) * 5000 + b"odd")
    package = prepare_package(dataclasses.replace(document, attachments=[
        *document.attachments, dataclasses.replace(document.attachments[0], name="scan.pdf", content_id="x1",
                                                   data=None, path=source)]))
    streamed = tmp_path / "streamed.edxml"
    written = write_package_to(package, streamed, signer=agency_key)
    assert written.signed
    assert xmlsec_verify(xmlsec1, dev_certs.ca_cert, streamed).returncode == 0
    assert verify_package(streamed.read_bytes(), trust=dev_certs.ca_cert).state is SignatureState.VALID

    in_memory = sign_package(write_package(package), agency_key)

    def structure(data):
        return [(etree.QName(e).localname, e.prefix, sorted(e.attrib.items()))
                for e in etree.fromstring(data, etree.XMLParser(huge_tree=True)).iter()
                if isinstance(e.tag, str)]
    assert structure(streamed.read_bytes()) == structure(in_memory)
    # Same content, same key: everything but the signature value and digest is byte-identical.
    def blank(data):
        return re.sub(rb"<ds:(SignatureValue|DigestValue)>[^<]*<", b"<ds:\\1><", data)
    assert blank(streamed.read_bytes()) == blank(in_memory)


TAMPERS = {
    "Subject": (b"<edXML:Subject>V/v", b"<edXML:Subject>V/V"),
    "From/OrganId": (b"<edXML:OrganId>000.00.00.G22</edXML:OrganId>",
                     b"<edXML:OrganId>000.00.00.G23</edXML:OrganId>"),
    "To/OrganId": (b"<edXML:OrganId>000.00.00.H41</edXML:OrganId>",
                   b"<edXML:OrganId>000.00.00.H42</edXML:OrganId>"),
    "DocumentId": (b"<edXML:DocumentId>000.00.00.G22,2024", b"<edXML:DocumentId>000.00.00.G22,2025"),
    "CodeNumber": (b"<edXML:CodeNumber>7816<", b"<edXML:CodeNumber>7817<"),
    "PromulgationDate": (b"<edXML:PromulgationDate>2024/05/06<", b"<edXML:PromulgationDate>2024/05/07<"),
    "BussinessDocType": (b"<edXML:BussinessDocType>0<", b"<edXML:BussinessDocType>1<"),
    "AttachmentName": (b"<AttachmentName>cong-van.pdf<", b"<AttachmentName>cong-van2.pdf<"),
    "manifest ContentType": (b"<edXML:ContentType>application/pdf<", b"<edXML:ContentType>application/zip<"),
}


@pytest.mark.parametrize("field", list(TAMPERS))
def test_changing_a_header_field_breaks_the_signature(signed, dev_certs, field):
    old, new = TAMPERS[field]
    assert signed.count(old) >= 1
    tampered = signed.replace(old, new, 1)
    verdict = verify_package(tampered, trust=dev_certs.ca_cert)
    assert verdict.state is SignatureState.INVALID
    assert verdict.reason.startswith("digest mismatch")


@pytest.mark.parametrize("position", [0, 500, -1])
def test_changing_any_attachment_byte_breaks_the_signature(document, agency_key, dev_certs, tmp_path, xmlsec1,
                                                           position):
    signed = sign_package(write_package(document), agency_key)
    match = re.search(rb"(<edXML:ContentTransferEncoded[^>]*>)([^<]+)<", signed)
    data = bytearray(base64.b64decode(match.group(2)))
    data[position] ^= 0x01
    tampered = signed[:match.start(2)] + base64.b64encode(bytes(data)) + signed[match.end(2):]
    assert verify_package(tampered, trust=dev_certs.ca_cert).state is SignatureState.INVALID
    path = tmp_path / "tampered.edxml"
    path.write_bytes(tampered)
    assert xmlsec_verify(xmlsec1, dev_certs.ca_cert, path).returncode != 0


def test_changed_signature_value_is_a_signature_mismatch(signed, dev_certs):
    match = re.search(rb"<ds:SignatureValue>([^<]+)<", signed)
    value = bytearray(base64.b64decode(match.group(1)))
    value[10] ^= 0xFF
    tampered = signed[:match.start(1)] + base64.b64encode(bytes(value)) + signed[match.end(1):]
    verdict = verify_package(tampered, trust=dev_certs.ca_cert)
    assert verdict.state is SignatureState.INVALID and verdict.reason.startswith("signature mismatch")


def test_sha1_mode_verifies_and_warns(document, agency_key, dev_certs, tmp_path, xmlsec1, caplog):
    with caplog.at_level(logging.WARNING, logger="connector.edxml.signing"):
        signed = sign_package(write_package(document), agency_key, algorithm="rsa-sha1")
    assert "SHA-1" in caplog.text
    assert b"xmldsig#rsa-sha1" in signed and b"xmldsig#sha1" in signed
    verdict = verify_package(signed, trust=dev_certs.ca_cert)
    assert verdict.state is SignatureState.VALID and verdict.algorithm == "rsa-sha1"
    path = tmp_path / "sha1.edxml"
    path.write_bytes(signed)
    assert xmlsec_verify(xmlsec1, dev_certs.ca_cert, path).returncode == 0
    streamed = write_package_to(document, tmp_path / "sha1-stream.edxml", signer=agency_key,
                                algorithm="rsa-sha1")
    assert streamed.warnings and verify_package((tmp_path / "sha1-stream.edxml").read_bytes(),
                                                trust=dev_certs.ca_cert).state is SignatureState.VALID


def test_unknown_algorithm_is_refused(document, agency_key):
    with pytest.raises(InputError, match="rsa-md5"):
        sign_package(write_package(document), agency_key, algorithm="rsa-md5")


def test_untrusted_without_bundle_with_unknown_ca_and_outside_validity(signed, dev_certs, tmp_path):
    no_bundle = verify_package(signed)
    assert no_bundle.state is SignatureState.UNTRUSTED and "no trust bundle" in no_bundle.reason
    other = make_dev_certs(tmp_path / "other")
    unknown = verify_package(signed, trust=other.ca_cert)
    assert unknown.state is SignatureState.UNTRUSTED and "unknown CA" in unknown.reason
    directory = verify_package(signed, trust=dev_certs.directory)  # a directory of PEMs includes ca.pem
    assert directory.state is SignatureState.VALID
    received = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3650)
    late = verify_package(signed, trust=dev_certs.ca_cert, at=received)
    assert late.state is SignatureState.EXPIRED
    assert f"{late.certificate_not_after:%Y-%m-%d %H:%M:%S}" in late.reason
    assert f"received on {received:%Y-%m-%d %H:%M:%S}" in late.reason
    early = verify_package(signed, trust=dev_certs.ca_cert,
                           at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3650))
    assert early.state is SignatureState.UNTRUSTED and "not valid until" in early.reason


@pytest.mark.parametrize("name", ["edoc_new.edxml", "edoc_revocation.edxml", "edoc_update.edxml",
                                  "edoc_replacement.edxml"])
def test_sdk_samples_are_unverifiable_and_say_why(name, interop_dir):
    verdict = verify_package((interop_dir / "sdk-samples" / name).read_bytes(), trust=None)
    assert verdict.state is SignatureState.UNVERIFIABLE
    assert "namespace" in verdict.reason and "placeholder" in verdict.reason


def test_status_sample_has_no_signature(interop_dir):
    verdict = verify_package((interop_dir / "sdk-samples" / "status_finish_06.edxml").read_bytes())
    assert verdict.state is SignatureState.ABSENT


def test_handwritten_xlink_sample_is_recovered_and_invalid(interop_dir):
    verdict = verify_package((interop_dir / "handwritten" / "edoc_undeclared_xlink.edxml").read_bytes())
    assert verdict.state is SignatureState.INVALID
    assert verdict.reason.startswith("digest mismatch")
    assert verdict.algorithm == "rsa-sha1" and "TRẦN ANH TUẤN" in verdict.signer_subject
    assert any("xlink" in warning for warning in verdict.warnings)


def test_resigning_replaces_the_sdk_signature(interop_dir, agency_key, dev_certs):
    sample = (interop_dir / "sdk-samples" / "edoc_new.edxml").read_bytes()
    signed = sign_package(sample, agency_key)
    again = sign_package(signed, agency_key)
    for data in (signed, again):
        root = etree.fromstring(data, etree.XMLParser(huge_tree=True))
        signatures = [e for e in root.iter()
                      if isinstance(e.tag, str) and etree.QName(e).localname == "Signature"]
        assert [s.tag for s in signatures] == [f"{DS}Signature"]
        assert verify_package(data, trust=dev_certs.ca_cert, at=dt.datetime.now(dt.timezone.utc)).state \
            is SignatureState.VALID
    # The SDK sample's own claimed time (2018) predates our dev certificate: validity is judged
    # at verification, the claim only warned about.
    verdict = verify_package(again, trust=dev_certs.ca_cert)
    assert verdict.state is SignatureState.VALID
    assert any("claims to be signed at 2018" in warning for warning in verdict.warnings)


def test_sign_package_file_resigns_on_disk(document, agency_key, dev_certs, tmp_path, xmlsec1):
    unsigned = tmp_path / "unsigned.edxml"
    unsigned.write_bytes(write_package(document))
    target = tmp_path / "signed.edxml"
    assert sign_package_file(unsigned, target, agency_key) == []
    assert xmlsec_verify(xmlsec1, dev_certs.ca_cert, target).returncode == 0
    sign_package_file(target, target, agency_key)  # in place, replacing the signature
    assert len(re.findall(rb"<ds:Signature[ >]", target.read_bytes())) == 1
    assert verify_package(target.read_bytes(), trust=dev_certs.ca_cert).state is SignatureState.VALID
