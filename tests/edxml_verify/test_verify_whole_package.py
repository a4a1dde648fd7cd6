"""The signature must cover the whole package. Tried as a hostile sender would: sign one
element only (or add a transform that filters what is signed), then change everything else;
both verification paths, and the daemon's entry point, must say ``invalid``."""

from __future__ import annotations

import random
import re

import pytest
from lxml import etree
from signxml import XMLSigner
from signxml.algorithms import CanonicalizationMethod, SignatureConstructionMethod

from connector.edxml.signing import (
    SignatureState,
    sign_package,
    verify_low_memory,
    verify_package,
    verify_package_signxml,
)
from connector.edxml.writer import write_package
from connector.edxml.xmldsig import DS

NS = "{http://www.mic.gov.vn/TBT/QCVN_102_2016}"


def _package(make_package) -> bytes:
    return write_package(make_package([random.Random(3).randbytes(20_000)]))


def _sign_code_only(data: bytes, key) -> bytes:
    """An enveloped signature whose one Reference points at ``<Code Id="c">`` alone."""
    root = etree.fromstring(data)
    code = next(root.iter(f"{NS}Code"))
    code.set("Id", "c")
    signer = XMLSigner(method=SignatureConstructionMethod.enveloped, signature_algorithm="rsa-sha256",
                       digest_algorithm="sha256", c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0)
    signed = signer.sign(root, key=key.private_key, cert=key.certificate_chain(), reference_uri="#c")
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def _all_paths(data: bytes, tmp_path, trust):
    path = tmp_path / "package.edxml"
    path.write_bytes(data)
    results = [verify_package(data, trust=trust), verify_package_signxml(data, trust=trust),
               verify_low_memory(path, trust=trust, threshold=1000) or verify_package(data, trust=trust)]
    return results


def test_a_package_whose_code_alone_was_signed_and_the_rest_changed_is_invalid(
        make_package, agency_key, dev_certs, tmp_path):
    signed = _sign_code_only(_package(make_package), agency_key)
    forged = signed.replace("liên thông".encode(), "chuyển tiền gấp".encode(), 1)
    text = re.search(rb"ContentTransferEncoded[^>]*>([^<]{100})", forged).group(1)
    forged = forged.replace(text, b"A" * len(text), 1)
    assert forged != signed
    for result in _all_paths(forged, tmp_path, dev_certs.ca_cert):
        assert result.state is SignatureState.INVALID
        assert "covers only '#c'" in result.reason


def test_a_signature_with_an_extra_transform_is_invalid(make_package, agency_key, dev_certs, tmp_path):
    signed = sign_package(_package(make_package), agency_key)
    root = etree.fromstring(signed)
    transforms = root.find(f".//{DS}Reference/{DS}Transforms")
    extra = etree.SubElement(transforms, f"{DS}Transform",
                             Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116")
    etree.SubElement(extra, f"{DS}XPath").text = "ancestor-or-self::*[local-name()='Code']"
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    for result in _all_paths(data, tmp_path, dev_certs.ca_cert):
        assert result.state is SignatureState.INVALID
        assert "REC-xpath-19991116" in result.reason and "only the enveloped" in result.reason


def test_two_references_are_invalid(make_package, agency_key, dev_certs, tmp_path):
    signed = sign_package(_package(make_package), agency_key)
    root = etree.fromstring(signed)
    reference = root.find(f".//{DS}Reference")
    reference.addnext(etree.fromstring(etree.tostring(reference)))
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    for result in _all_paths(data, tmp_path, dev_certs.ca_cert):
        assert result.state is SignatureState.INVALID and "2 signed references" in result.reason


@pytest.mark.parametrize("algorithm, warned", [("rsa-sha256", False), ("rsa-sha1", True)])
def test_rsa_sha1_still_verifies_but_is_reported(make_package, agency_key, dev_certs, tmp_path,
                                                 algorithm, warned):
    data = sign_package(_package(make_package), agency_key, algorithm=algorithm)
    for result in _all_paths(data, tmp_path, dev_certs.ca_cert):
        assert result.state is SignatureState.VALID
        assert any("SHA-1" in warning for warning in result.warnings) is warned
