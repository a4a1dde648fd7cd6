"""The low-memory path's signature check: digest and SignatureValue without the long texts.

Why: signxml needs the whole document in memory several times over (≈ 9× a large attachment).
For exactly the signature shape this connector writes — one ``Reference URI=""``, the
enveloped-signature and one C14N transform, an RSA method, a certificate in KeyInfo — the check
can be done on a small tree: the reference digest over its canonical form with the lifted texts
spliced back in (:mod:`connector.edxml.digest_stream`), the SignatureValue with ``cryptography``
over the canonical SignedInfo. Every other shape returns :data:`UNSUPPORTED` so the caller asks
signxml, and the reasons are the signxml path's own, word for word.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml import SignatureMethod, XMLVerifier
from signxml.algorithms import CanonicalizationMethod
from signxml.exceptions import InvalidSignature as SignxmlInvalidSignature
from signxml.exceptions import SignXMLException
from signxml.verifier import SignatureConfiguration

from connector.edxml.digest_stream import ByteSource, Lift, spliced_digest
from connector.edxml.xmldsig import (
    DIGEST_MISMATCH,
    DS,
    ENVELOPED,
    EXC_C14N,
    HASH_BY_URI,
    remove_keeping_tail,
    signature_mismatch,
)
from connector.edxml.xmlparse import hardened_parser

UNSUPPORTED = object()  # the low-memory check's "ask signxml instead"
_DSIG11 = "{http://www.w3.org/2009/xmldsig11#}"
_C14N_URIS = frozenset(m.value for m in CanonicalizationMethod)
# No C14N transform: signxml canonicalises with its default (inclusive; 1.1 done as 1.0), and
# verifying's _digest_matches with C14N 1.0 — the same bytes.
_DEFAULT_REFERENCE_C14N = SignatureConfiguration().default_reference_c14n_method.value
# The RSA methods signxml accepts under our configuration, with the hash each one signs with.
_RSA_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    SignatureMethod.RSA_SHA1.value: hashes.SHA1,
    SignatureMethod.RSA_SHA224.value: hashes.SHA224,
    SignatureMethod.RSA_SHA256.value: hashes.SHA256,
    SignatureMethod.RSA_SHA384.value: hashes.SHA384,
    SignatureMethod.RSA_SHA512.value: hashes.SHA512,
}


def _c14n_flags(algorithm: str) -> dict:
    """lxml C14N options for a C14N algorithm URI, read the way signxml reads them (C14N 1.1
    is done as 1.0 there too, so both paths agree)."""
    return {"exclusive": algorithm.startswith(EXC_C14N), "with_comments": algorithm.endswith("#WithComments")}


@dataclass(frozen=True)
class _SupportedShape:
    signed_info_c14n: bytes
    signature_value: bytes
    signature_hash: type[hashes.HashAlgorithm]
    enveloped: bool
    c14n: str
    digest_hash: Callable[[], Any]  # a hashlib constructor
    digest_value: bytes


def _supported_shape(signature: etree._Element) -> _SupportedShape | str | None:
    """Read the signature the way signxml would, for the one shape the low-memory path handles;
    a reason string when signxml would call it malformed (schema), None for any other shape."""
    try:
        copy_ = etree.fromstring(etree.tostring(signature), hardened_parser())
        XMLVerifier().validate_schema(copy_)
    except etree.DocumentInvalid as error:
        return f"malformed signature: {error}"
    except (etree.XMLSyntaxError, SignXMLException):
        return None
    signed_info = copy_.find(f"{DS}SignedInfo")
    method = signed_info.find(f"{DS}CanonicalizationMethod") if signed_info is not None else None
    signature_method = signed_info.find(f"{DS}SignatureMethod") if signed_info is not None else None
    references = signed_info.findall(f"{DS}Reference") if signed_info is not None else []
    if (method is None or method.get("Algorithm") not in _C14N_URIS or len(method)
            or signature_method is None or signature_method.get("Algorithm") not in _RSA_HASHES
            or len(references) != 1 or references[0].get("URI") != ""):
        return None
    if copy_.find(f"{DS}KeyInfo/{DS}KeyValue") is not None \
            or copy_.find(f"{DS}KeyInfo/{_DSIG11}DEREncodedKeyValue") is not None:
        return None  # signxml would also match those against the certificate
    reference = references[0]
    transforms = reference.findall(f"{DS}Transforms/{DS}Transform")
    algorithms = [t.get("Algorithm") for t in transforms]
    c14n = [a for a in algorithms if a in _C14N_URIS]
    if len(c14n) > 1 or any(len(t) for t in transforms) or algorithms.count(ENVELOPED) > 1 \
            or any(a != ENVELOPED and a not in _C14N_URIS for a in algorithms):
        return None
    digest_method = reference.find(f"{DS}DigestMethod")
    digest_value = reference.find(f"{DS}DigestValue")
    value = copy_.find(f"{DS}SignatureValue")
    digest_uri = digest_method.get("Algorithm") if digest_method is not None else None
    digest_hash = HASH_BY_URI.get(digest_uri) if digest_uri else None
    if digest_hash is None or digest_value is None or not digest_value.text or value is None:
        return None
    try:  # signxml and our digest recheck decode these slightly differently: insist they agree
        expected = base64.b64decode(digest_value.text)
        if expected != base64.b64decode(digest_value.text.strip()):
            return None
        raw_signature = base64.b64decode(value.text)
    except (ValueError, TypeError):
        return None
    return _SupportedShape(
        signed_info_c14n=etree.tostring(signed_info, method="c14n", **_c14n_flags(method.get("Algorithm"))),
        signature_value=raw_signature, signature_hash=_RSA_HASHES[signature_method.get("Algorithm")],
        enveloped=ENVELOPED in algorithms, c14n=c14n[0] if c14n else _DEFAULT_REFERENCE_C14N,
        digest_hash=digest_hash, digest_value=expected)


def check_signature_spliced(root: etree._Element, signature: etree._Element, leaf: x509.Certificate,
                            lifts: list[Lift], source: ByteSource | None):
    """:func:`connector.edxml.verifying._check_signature`'s verdict, reached without the lifted
    texts in memory: the reference digest over the small tree's canonical form with the texts
    spliced back in, the SignatureValue over canonical SignedInfo with ``cryptography`` and the
    certificate's key.
    Returns UNSUPPORTED for anything but the shape :func:`_supported_shape` accepts."""
    if signature.getparent() is None:
        return UNSUPPORTED  # a bare Signature document: nothing of ours
    shape = _supported_shape(signature)
    if shape is None:
        return UNSUPPORTED
    if isinstance(shape, str):
        return shape
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return UNSUPPORTED
    # The digested document, prepared as signxml prepares it (copies of the now small tree).
    document = etree.fromstring(etree.tostring(root), hardened_parser())
    if shape.enveloped:
        remove_keeping_tail(next(document.iter(f"{DS}Signature")))
    document = etree.fromstring(etree.tostring(document), hardened_parser())
    canonical = etree.tostring(document, method="c14n", **_c14n_flags(shape.c14n))
    digest = spliced_digest(canonical, lifts, shape.digest_hash(), source)
    if digest is None:
        return UNSUPPORTED
    try:
        key.verify(shape.signature_value, shape.signed_info_c14n, padding.PKCS1v15(), shape.signature_hash())
    except CryptoInvalidSignature as error:
        if digest != shape.digest_value:
            return DIGEST_MISMATCH
        return signature_mismatch(SignxmlInvalidSignature(f"Signature verification failed: {error}"))
    return DIGEST_MISMATCH if digest != shape.digest_value else None
