"""Sign edXML packages with an enveloped XMLDSig signature (and re-export the verify API).

What we write is a standards-correct enveloped signature in the xmldsig namespace, as the last
child of ``edXMLHeader``: ``Reference URI=""`` with the enveloped-signature and exclusive-C14N
transforms, RSA-SHA256/SHA-256 by default, the certificate (and chain) in ``KeyInfo``. It verifies
with independent implementations (``xmlsec1 --verify``). SDK output puts an unprefixed
``Signature`` in the QCVN namespace with placeholder values; we replace such a thing when signing.

Large packages: signxml re-parses documents with a parser that keeps libxml2's 10 MB text-node
limit; we hand it :func:`~connector.edxml.xmlparse.hardened_parser` (huge text allowed, nothing
resolved) while our own size limit is checked before parsing. :func:`sign_package_file` signs a
big package on disk without keeping its base64 text twice in memory.

Verification lives in :mod:`connector.edxml.verifying` (signature soundness, signxml and
low-memory paths) and :mod:`connector.edxml.trust` (trust bundle, chain, validity); its public
names are re-exported here because callers have always imported them from this module.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from signxml import DigestAlgorithm, SignatureConstructionMethod, SignatureMethod, XMLSigner
from signxml.algorithms import CanonicalizationMethod
from signxml.exceptions import SignXMLException
from signxml.util import strip_pem_header

from connector import fsutil
from connector.edxml.digest_stream import LIFT_THRESHOLD
from connector.edxml.keys import SigningKey
from connector.edxml.model import NAMESPACE
from connector.edxml.trust import load_trust_bundle
from connector.edxml.verifying import (
    SignatureState,
    VerificationResult,
    verify_low_memory,
    verify_package,
    verify_package_file,
    verify_package_signxml,
)
from connector.edxml.xmldsig import DS, ENVELOPED, EXC_C14N, XMLDSIG, remove_keeping_tail
from connector.edxml.xmlparse import (
    ParseLimits,
    check_depth,
    hardened_parser,
    parse_bytes,
    refuse_doctype,
    refuse_excessive_depth,
)
from connector.errors import EdxmlError, InputError, PackageTooLarge, SigningError

__all__ = [
    # signing (this module)
    "ALGORITHMS", "algorithm_warning", "sign_package", "sign_package_file", "new_digest", "canonical_without",
    "fill_signature",
    # re-exported: the XMLDSig vocabulary, verification and trust
    "XMLDSIG", "DS", "EXC_C14N", "ENVELOPED", "LIFT_THRESHOLD", "SignatureState",
    "VerificationResult", "verify_package", "verify_package_file", "verify_package_signxml",
    "verify_low_memory", "load_trust_bundle",
]

log = logging.getLogger(__name__)

_NS = "{" + NAMESPACE + "}"


@dataclass(frozen=True)
class _Algorithm:
    name: str
    signature_method: SignatureMethod
    digest_method: DigestAlgorithm
    hash: type[hashes.HashAlgorithm]
    warning: str | None = None


ALGORITHMS = {
    "rsa-sha256": _Algorithm("rsa-sha256", SignatureMethod.RSA_SHA256, DigestAlgorithm.SHA256, hashes.SHA256),
    "rsa-sha1": _Algorithm("rsa-sha1", SignatureMethod.RSA_SHA1, DigestAlgorithm.SHA1, hashes.SHA1,
                           warning="signing with RSA-SHA1 as configured: SHA-1 is broken for signatures; "
                                   "use it only for a peer that cannot verify RSA-SHA256"),
}


def algorithm_warning(algorithm: str) -> str | None:
    """The warning a caller should show for ``algorithm`` (None for the default)."""
    return _algorithm(algorithm).warning


def sign_package(data: bytes, key: SigningKey, *, algorithm: str = "rsa-sha256",
                 limits: ParseLimits = ParseLimits(), file: str | None = None) -> bytes:
    """Sign an edXML package held in memory, replacing any signature it already carries."""
    spec = _algorithm(algorithm)
    key.check_validity()
    root = parse_bytes(data, limits=limits, file=file).getroot()
    _place_signature_slot(root, file)
    signer = _Signer(spec)
    try:
        # signxml calls only ``key.sign(data, padding=, algorithm=)`` on a key object, which a
        # token key has too (PrivateKeyLike); its annotation names cryptography's classes.
        signed = signer.sign(root, key=key.private_key,  # type: ignore[arg-type]
                             cert=key.certificate_chain())
    except (SignXMLException, ValueError) as error:
        raise SigningError(f"signing failed: {error}", file=file) from error
    if spec.warning:
        log.warning(spec.warning)
    return _serialize(signed)


def sign_package_file(source: str | Path, destination: str | Path, key: SigningKey, *,
                      algorithm: str = "rsa-sha256", limits: ParseLimits = ParseLimits(),
                      fsync: bool = True) -> list[str]:
    """Sign the package in ``source`` into ``destination`` (which may be the same path),
    replacing any signature, without holding its base64 text twice in memory: long
    ``ContentTransferEncoded`` texts are lifted out of the tree, digested and written back in
    pieces (see :func:`connector.edxml.writer.write_package_to`). Returns warnings."""
    _algorithm(algorithm)  # an unknown algorithm is refused before any work
    key.check_validity()
    source, destination = Path(source), Path(destination)
    root = _parse_file(source, limits)
    _place_signature_slot(root, str(source))
    token = uuid.uuid4().hex
    lifted: list[tuple[str, str]] = []
    for index, element in enumerate(root.iter(f"{_NS}ContentTransferEncoded")):
        if element.text and len(element.text) > 4096 and not len(element):
            placeholder = f"edxml-stream-{token}-{index}"
            lifted.append((placeholder, element.text))
            element.text = placeholder
    slot = root.find(f".//{DS}Signature[@Id='placeholder']")
    digest = new_digest(algorithm)
    for piece in _splice(canonical_without(root, slot), lifted):
        digest.update(piece)
    warnings = fill_signature(slot, digest.digest(), key, algorithm)
    fsutil.replace_streamed(destination, _splice(_serialize(root), lifted), fsync=fsync)
    return warnings


# -- building blocks shared with the streaming writer --------------------------------------------
def new_digest(algorithm: str):
    return hashlib.new(_algorithm(algorithm).hash().name)


def canonical_without(root: etree._Element, signature: etree._Element) -> bytes:
    """Exclusive C14N of the document with ``signature`` left out exactly as the
    enveloped-signature transform does (the element goes, the whitespace after it stays)."""
    parent = signature.getparent()
    index = parent.index(signature)
    previous = signature.getprevious()
    saved_text, tail = parent.text, signature.tail
    saved_previous_tail = previous.tail if previous is not None else None
    parent.remove(signature)  # lxml drops the tail with the element: re-attach it
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    try:
        return etree.tostring(root, method="c14n", exclusive=True, with_comments=False)
    finally:
        if previous is not None:
            previous.tail = saved_previous_tail
        parent.text = saved_text
        parent.insert(index, signature)
        signature.tail = tail


def fill_signature(slot: etree._Element, digest: bytes, key: SigningKey, algorithm: str) -> list[str]:
    """Turn the empty ``ds:Signature`` slot into a complete signature over ``digest`` — the same
    elements, in the same order, as signxml writes."""
    spec = _algorithm(algorithm)
    key.check_validity()
    slot.attrib.pop("Id", None)
    for child in list(slot):
        slot.remove(child)
    slot.text = None
    signed_info = etree.SubElement(slot, f"{DS}SignedInfo")
    etree.SubElement(signed_info, f"{DS}CanonicalizationMethod", Algorithm=EXC_C14N)
    etree.SubElement(signed_info, f"{DS}SignatureMethod", Algorithm=spec.signature_method.value)
    reference = etree.SubElement(signed_info, f"{DS}Reference", URI="")
    transforms = etree.SubElement(reference, f"{DS}Transforms")
    etree.SubElement(transforms, f"{DS}Transform", Algorithm=ENVELOPED)
    etree.SubElement(transforms, f"{DS}Transform", Algorithm=EXC_C14N)
    etree.SubElement(reference, f"{DS}DigestMethod", Algorithm=spec.digest_method.value)
    etree.SubElement(reference, f"{DS}DigestValue").text = base64.b64encode(digest).decode("ascii")
    canonical = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    value = key.private_key.sign(canonical, padding.PKCS1v15(), spec.hash())
    etree.SubElement(slot, f"{DS}SignatureValue").text = base64.b64encode(value).decode("ascii")
    key_info = etree.SubElement(slot, f"{DS}KeyInfo")
    x509_data = etree.SubElement(key_info, f"{DS}X509Data")
    for certificate in key.certificate_chain():
        # The same text signxml writes (PEM body, 64-column lines), so both paths match.
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        etree.SubElement(x509_data, f"{DS}X509Certificate").text = strip_pem_header(pem)
    if spec.warning:
        log.warning(spec.warning)
        return [spec.warning]
    return []


class _Signer(XMLSigner):
    """signxml's signer with our choices: exclusive C14N, our hardened parser (huge text nodes),
    and SHA-1 allowed when — and only when — the caller asked for it by name."""

    def __init__(self, spec: _Algorithm) -> None:
        self._allow_sha1 = spec.name == "rsa-sha1"
        super().__init__(method=SignatureConstructionMethod.enveloped,
                         signature_algorithm=spec.signature_method, digest_algorithm=spec.digest_method,
                         c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
        self._parser = hardened_parser()

    def check_deprecated_methods(self):
        if not self._allow_sha1:
            super().check_deprecated_methods()


def _algorithm(name: str) -> _Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise InputError(f"unknown signature algorithm {name!r}",
                         hint="use rsa-sha256 (default) or rsa-sha1") from None


def _place_signature_slot(root: etree._Element, file: str | None) -> etree._Element:
    """Remove every signature the package carries (xmldsig or SDK-style) and put an empty
    ``ds:Signature Id="placeholder"`` at the end of ``edXMLHeader``, indented like its siblings."""
    header = _header(root)
    if header is None:
        raise EdxmlError("no edXMLEnvelope/edXMLHeader: not an edXML package", file=file,
                         hint="sign a package written by this connector or the SDK")
    position, tail = None, None
    for element in list(root.iter(f"{DS}Signature", f"{_NS}Signature", "Signature")):
        parent = element.getparent()
        if parent is header and position is None:
            position, tail = parent.index(element), element.tail
            previous_tail = element.getprevious().tail if element.getprevious() is not None else None
        remove_keeping_tail(element)
    slot = etree.Element(f"{DS}Signature", Id="placeholder", nsmap={"ds": XMLDSIG})
    if position is not None:
        previous = header[position - 1] if position > 0 else None
        if previous is not None:
            previous.tail = previous_tail
        header.insert(position, slot)
        slot.tail = tail
        return slot
    last = header[-1] if len(header) else None
    closing = (last.tail if last is not None else header.text) or ""
    if last is not None and closing.strip() == "" and "\n" in closing:
        last.tail = closing + "  "
        slot.tail = closing
    header.append(slot)
    return slot


def _header(root: etree._Element) -> etree._Element | None:
    for envelope in root:
        if isinstance(envelope.tag, str) and etree.QName(envelope).localname == "edXMLEnvelope":
            for header in envelope:
                if isinstance(header.tag, str) and etree.QName(header).localname == "edXMLHeader":
                    return header
    return None



def _serialize(root: etree._Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + etree.tostring(root, encoding="UTF-8",
                                                                       xml_declaration=False)


def _splice(text: bytes, lifted: list[tuple[str, str]]) -> Iterator[bytes]:
    position = 0
    for placeholder, value in lifted:
        found = text.index(placeholder.encode("ascii"), position)
        yield text[position:found]
        for start in range(0, len(value), 1 << 20):
            yield value[start:start + (1 << 20)].encode("ascii")
        position = found + len(placeholder)
    yield text[position:]


def _parse_file(path: Path, limits: ParseLimits) -> etree._Element:
    """Parse a package from disk (libxml2 reads it incrementally: no second copy in Python)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            prolog = handle.read(65536)
    except OSError as error:
        raise EdxmlError(f"cannot read the package: {error.strerror}", file=str(path),
                         hint="check the path and its permissions") from error
    if size > limits.max_package_size:
        raise PackageTooLarge(f"package is {size} bytes, more than the limit of "
                              f"{limits.max_package_size} bytes", file=str(path),
                              hint="raise edxml.max_package_size if this size is expected")
    refuse_doctype(prolog, file=str(path))
    try:
        tree = etree.parse(str(path), hardened_parser())
    except etree.XMLSyntaxError as error:
        refuse_excessive_depth(error, limits, file=str(path))
        raise EdxmlError(f"not well-formed XML: {error.msg}", file=str(path), line=error.lineno,
                         hint="the package is damaged") from error
    if tree.docinfo.doctype:
        raise EdxmlError("document type declarations are not allowed", file=str(path))
    check_depth(tree.getroot(), limits, file=str(path))
    return tree.getroot()
