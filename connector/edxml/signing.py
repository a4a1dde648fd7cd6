"""XML signatures on edXML packages: sign (enveloped XMLDSig) and verify (signature, then trust).

What we write is a standards-correct enveloped signature in the xmldsig namespace, as the last
child of ``edXMLHeader``: ``Reference URI=""`` with the enveloped-signature and exclusive-C14N
transforms, RSA-SHA256/SHA-256 by default, the certificate (and chain) in ``KeyInfo``. It verifies
with independent implementations (``xmlsec1 --verify``). SDK output puts an unprefixed
``Signature`` in the QCVN namespace with placeholder values; we replace such a thing when signing
and report it as *unverifiable* (never *valid*) when verifying.

Verification answers two separate questions, because their failures mean different things to a
clerk: is the signature sound (else *invalid*: digest mismatch = content changed, signature
mismatch = wrong key or tampered SignedInfo, malformed), and do we trust who made it (else
*untrusted*: no bundle, unknown CA, certificate outside its validity at signing time).

Large packages: signxml re-parses documents with a parser that keeps libxml2's 10 MB text-node
limit; we hand it :func:`~connector.edxml.xmlparse.hardened_parser` (huge text allowed, nothing
resolved) while our own size limit is checked before parsing. :func:`sign_package_file` signs a
big package on disk without keeping its base64 text twice in memory.

Verifying a large package with signxml costs ≈ 9× its attachments in memory (it serialises and
re-parses the whole document several times), and the daemon verifies every package it receives.
So :func:`verify_package` sends a package with a long base64 text (:data:`LIFT_THRESHOLD`, 1 MB)
through :func:`verify_low_memory`: the long texts are replaced by placeholders before parsing
(:mod:`connector.edxml.digest_stream`), the reference digest is the small tree's canonical form
with the original bytes streamed back in at each placeholder, and SignatureValue is checked with
``cryptography`` over the canonical SignedInfo — for exactly our signature shape (one
``Reference URI=""``, enveloped-signature + one C14N transform, RSA, certificate in KeyInfo). Any
other shape goes to signxml, so outcomes and reasons are the same either way (tested against both
paths and xmlsec1). :func:`verify_package_file` does this from disk without reading the file in.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import enum
import hashlib
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from signxml import DigestAlgorithm, SignatureConstructionMethod, SignatureMethod, XMLSigner, XMLVerifier
from signxml.algorithms import CanonicalizationMethod
from signxml.exceptions import InvalidDigest, InvalidInput, SignXMLException
from signxml.exceptions import InvalidSignature as SignxmlInvalidSignature
from signxml.util import strip_pem_header
from signxml.verifier import SignatureConfiguration

from connector.edxml.digest_stream import (LIFT_THRESHOLD, ByteSource, Lift, ascii_compatible, find_base64_runs,
                                           lift_long_texts, new_token, parse_with_placeholders, put_back,
                                           spliced_digest)
from connector.edxml.identifiers import VIETNAM_TZ, parse_timestamp
from connector.edxml.keys import SigningKey
from connector.edxml.model import NAMESPACE
from connector.edxml.xmlparse import (ParseLimits, check_depth, hardened_parser, parse_bytes, read_limited,
                                      refuse_doctype)
from connector import fsutil
from connector.errors import CertificateError, EdxmlError, InputError, PackageTooLarge, SigningError

log = logging.getLogger(__name__)

XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
DS = "{" + XMLDSIG + "}"
_NS = "{" + NAMESPACE + "}"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"


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
_HASH_BY_URI = {
    "http://www.w3.org/2000/09/xmldsig#sha1": hashlib.sha1,
    "http://www.w3.org/2001/04/xmlenc#sha256": hashlib.sha256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashlib.sha384,
    "http://www.w3.org/2001/04/xmlenc#sha512": hashlib.sha512,
}


class SignatureState(str, enum.Enum):
    VALID = "valid"
    INVALID = "invalid"
    ABSENT = "absent"
    UNVERIFIABLE = "unverifiable"
    UNTRUSTED = "untrusted"


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of :func:`verify_package`; ``reason`` is a sentence for a clerk or a log."""

    state: SignatureState
    reason: str
    signer_subject: str | None = None
    signer_issuer: str | None = None
    certificate_not_before: dt.datetime | None = None
    certificate_not_after: dt.datetime | None = None
    algorithm: str | None = None
    digest_algorithm: str | None = None
    signing_time: dt.datetime | None = None
    warnings: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.state is SignatureState.VALID


# =================================================================================================
# Signing
# =================================================================================================
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
        signed = signer.sign(root, key=key.private_key, cert=key.certificate_chain())
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
    spec = _algorithm(algorithm)
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
    return hashlib.new(_algorithm(algorithm).hash.name)


def canonical_without(root: etree._Element, signature: etree._Element) -> bytes:
    """Exclusive C14N of the document with ``signature`` left out exactly as the
    enveloped-signature transform does (the element goes, the whitespace after it stays)."""
    parent = signature.getparent()
    index = parent.index(signature)
    previous = signature.getprevious()
    saved_text, saved_previous_tail, tail = parent.text, previous.tail if previous is not None else None, signature.tail
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
        _remove_keeping_tail(element)
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


def _remove_keeping_tail(element: etree._Element) -> None:
    parent, previous, tail = element.getparent(), element.getprevious(), element.tail
    parent.remove(element)
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail


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
        raise PackageTooLarge(f"package is {size} bytes, more than the limit of {limits.max_package_size} bytes",
                              file=str(path), hint="raise edxml.max_package_size if this size is expected")
    refuse_doctype(prolog, file=str(path))
    try:
        tree = etree.parse(str(path), hardened_parser())
    except etree.XMLSyntaxError as error:
        raise EdxmlError(f"not well-formed XML: {error.msg}", file=str(path), line=error.lineno,
                         hint="the package is damaged") from error
    if tree.docinfo.doctype:
        raise EdxmlError("document type declarations are not allowed", file=str(path))
    check_depth(tree.getroot(), limits, file=str(path))
    return tree.getroot()


# =================================================================================================
# Verification
# =================================================================================================
_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")


def verify_package(data: bytes, *, trust: str | Path | None = None, limits: ParseLimits = ParseLimits(),
                   at: dt.datetime | None = None, file: str | None = None) -> VerificationResult:
    """Verify the package's signature, then its certificate against ``trust`` (a PEM file or a
    directory of PEM files). ``at`` is the signing time to check the certificate's validity
    against; by default the latest timestamp the (signed) package itself carries, else now.
    Raises EdxmlError only when the package cannot be parsed at all.

    A package carrying a long base64 text (an attachment of a megabyte or more) is verified by
    :func:`verify_low_memory` — same outcomes, a fraction of the memory; everything else, and
    any signature shape that path does not handle, by :func:`verify_package_signxml`."""
    if len(data) >= LIFT_THRESHOLD:
        result = verify_low_memory(data, trust=trust, limits=limits, at=at, file=file)
        if result is not None:
            return result
    return verify_package_signxml(data, trust=trust, limits=limits, at=at, file=file)


def verify_package_file(path: str | Path, *, trust: str | Path | None = None, limits: ParseLimits = ParseLimits(),
                        at: dt.datetime | None = None) -> VerificationResult:
    """:func:`verify_package` for a package on disk, without reading it into memory first: the
    size limit is checked before anything is read, long base64 texts are digested straight from
    the file (peak memory ≈ the small rest of the tree), errors name the file."""
    path = Path(path)
    try:
        result = verify_low_memory(path, trust=trust, limits=limits, at=at, file=str(path))
        if result is not None:
            return result
        data = read_limited(path, limits, file=str(path))
    except OSError as error:
        raise EdxmlError(f"cannot read the package: {error.strerror or error}", file=str(path),
                         hint="check the path and its permissions") from error
    return verify_package_signxml(data, trust=trust, limits=limits, at=at, file=str(path))


def verify_package_signxml(data: bytes, *, trust: str | Path | None = None, limits: ParseLimits = ParseLimits(),
                           at: dt.datetime | None = None, file: str | None = None) -> VerificationResult:
    """The reference verification: signxml checks digest and signature on the whole tree (it
    copies the document several times — ≈ 9× a large attachment in memory). Same arguments and
    result as :func:`verify_package`, which uses it for small packages and unusual signatures."""
    root, warnings = _parse_for_verification(data, limits, file)
    result = _verify_root(root, warnings, trust, at, _check_signature)
    assert result is not None  # _check_signature always gives a verdict
    return result


def verify_low_memory(source: bytes | str | Path, *, trust: str | Path | None = None,
                      limits: ParseLimits = ParseLimits(), at: dt.datetime | None = None, file: str | None = None,
                      threshold: int = LIFT_THRESHOLD) -> VerificationResult | None:
    """Verify like :func:`verify_package_signxml`, with the same outcome and reason, but
    without the document's long base64 texts (``threshold`` characters or more) in memory:
    see :mod:`connector.edxml.digest_stream`. ``source`` is the package's bytes or its path.

    Returns None when this path cannot promise signxml's answer — a signature shape other than
    ours (one ``Reference URI=""`` with the enveloped-signature and one C14N transform, an RSA
    method, a certificate in KeyInfo and nothing else to check) or a placeholder that ended up
    where C14N would not write it once; the caller then asks signxml. Parse errors are the
    reader's (the package is re-parsed the reader's way when the quick parse fails)."""
    path = Path(source) if isinstance(source, str | Path) else None
    file = file or (str(path) if path is not None else None)
    with ByteSource.of(path if path is not None else source) as byte_source:
        if byte_source.size > limits.max_package_size:
            raise PackageTooLarge(
                f"package is {byte_source.size} bytes, more than the limit of {limits.max_package_size} bytes",
                file=file, hint="raise edxml.max_package_size in the configuration if this size is expected")
        token = new_token()
        root, lifts, warnings, digest_source = None, [], [], byte_source
        runs = find_base64_runs(byte_source, threshold) if ascii_compatible(byte_source) else []
        if runs:
            root, lifts = _quick_parse(byte_source, runs, token, limits, file)
            if root is not None:
                lifts = put_back(root, token, lifts, byte_source, _read_by_verification)
        if root is None:
            data = source if path is None else read_limited(path, limits, file=file)
            root, warnings = _parse_for_verification(data, limits, file)
            del data
            lifts = lift_long_texts(root, token, threshold, skip=_read_by_verification)
            digest_source = None
        for element in root.iter():
            if (isinstance(element.tag, str) and etree.QName(element).localname in {"Signature", "Timestamp"}
                    and token.encode("ascii") in etree.tostring(element)):
                return None  # a lifted text that verification reads itself: let signxml decide

        def check(tree_root, signature, leaf):
            return _check_signature_spliced(tree_root, signature, leaf, lifts, digest_source)

        return _verify_root(root, warnings, trust, at, check)


def _quick_parse(source: ByteSource, runs, token: str, limits: ParseLimits, file: str | None):
    """Parse with the runs replaced by placeholders; (None, []) when the reader's own parse
    must decide (syntax error to repair or report, DOCTYPE, depth) — it gives the exact error."""
    try:
        root, lifts = parse_with_placeholders(source, runs, token)
    except etree.XMLSyntaxError:
        return None, []
    if root is None or root.getroottree().docinfo.doctype:
        return None, []
    try:
        check_depth(root, limits, file=file)
    except EdxmlError:
        return None, []
    return root, lifts


def _read_by_verification(node: etree._Element) -> bool:
    """Nodes whose text verification itself reads (any Signature, a Timestamp): never lifted."""
    if isinstance(node.tag, str) and etree.QName(node).localname == "Timestamp":
        return True
    return any(etree.QName(e).localname == "Signature" for e in (node, *node.iterancestors())
               if isinstance(e.tag, str))


def _verify_root(root: etree._Element, warnings: list[str], trust: str | Path | None, at: dt.datetime | None,
                 check) -> VerificationResult | None:
    """Everything after parsing: find the signature, ``check(root, signature, leaf)`` its maths
    (a reason string, None when sound, or _UNSUPPORTED to give up), then validity and trust."""
    signatures = list(root.iter(f"{DS}Signature"))
    if not signatures:
        return _without_xmldsig(root, tuple(warnings))
    if len(signatures) > 1:
        return VerificationResult(SignatureState.INVALID,
                                  f"malformed: {len(signatures)} xmldsig signatures, expected one",
                                  warnings=tuple(warnings))
    signature = signatures[0]
    base = _describe(signature)
    problem = _placeholder_problem(signature)
    if problem:
        return dataclasses.replace(base, state=SignatureState.UNVERIFIABLE, reason=problem,
                                   warnings=tuple(warnings))
    certificates = _certificates(signature)
    leaf = certificates[0]
    base = dataclasses.replace(base, signer_subject=leaf.subject.rfc4514_string(),
                               signer_issuer=leaf.issuer.rfc4514_string(),
                               certificate_not_before=leaf.not_valid_before_utc,
                               certificate_not_after=leaf.not_valid_after_utc, warnings=tuple(warnings))
    failure = check(root, signature, leaf)
    if failure is _UNSUPPORTED:
        return None
    if failure:
        return dataclasses.replace(base, state=SignatureState.INVALID, reason=failure)
    signing_time = _utc(at) if at is not None else _claimed_signing_time(root)
    base = dataclasses.replace(base, signing_time=signing_time)
    if signing_time < leaf.not_valid_before_utc or signing_time > leaf.not_valid_after_utc:
        return dataclasses.replace(base, state=SignatureState.UNTRUSTED, reason=(
            f"sound signature, but the certificate was not valid at signing time {signing_time:%Y-%m-%d %H:%M:%S} "
            f"UTC (valid {leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d})"))
    if trust is None:
        return dataclasses.replace(base, state=SignatureState.UNTRUSTED,
                                   reason="sound signature, but no trust bundle given to check the certificate")
    trouble = _chain_problem(leaf, certificates[1:], load_trust_bundle(trust), signing_time)
    if trouble:
        return dataclasses.replace(base, state=SignatureState.UNTRUSTED, reason=f"sound signature, but {trouble}")
    return dataclasses.replace(base, state=SignatureState.VALID,
                               reason=f"signed by {base.signer_subject}, certificate trusted")


def load_trust_bundle(trust: str | Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file, or in the PEM files (*.pem, *.crt, *.cer) of a directory."""
    path = Path(trust)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in {".pem", ".crt", ".cer"}) \
        if path.is_dir() else [path]
    certificates: list[x509.Certificate] = []
    for item in files:
        try:
            certificates += x509.load_pem_x509_certificates(item.read_bytes())
        except OSError as error:
            raise CertificateError(f"cannot read the trust bundle: {error.strerror}", file=str(item),
                                   hint="give a readable PEM file or directory") from error
        except ValueError as error:
            raise CertificateError("the trust bundle holds no readable PEM certificate", file=str(item),
                                   hint="give CA certificates in PEM form") from error
    if not certificates:
        raise CertificateError("the trust bundle is empty", file=str(path), hint="add the CA certificates")
    return certificates


def _parse_for_verification(data: bytes, limits: ParseLimits, file: str | None):
    """Parse exactly as the reader does, including its repair of undeclared prefixes, so that a
    package the reader accepts with warnings gets a verdict rather than a parse error (a
    repaired package's digest cannot match — which is the truth about it)."""
    from connector.edxml.reader import parse_package  # the reader owns the repair

    tree, warnings = parse_package(data, limits=limits, file=file)
    return tree.getroot(), list(warnings)


def _without_xmldsig(root: etree._Element, warnings: tuple[str, ...]) -> VerificationResult:
    others = [e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == "Signature"]
    if not others:
        return VerificationResult(SignatureState.ABSENT, "the package carries no signature", warnings=warnings)
    element = others[0]
    namespace = etree.QName(element).namespace or "no namespace"
    reason = (f"SDK-style signature: the Signature element is in the {namespace} namespace, "
              f"not xmldsig ({XMLDSIG}), so no standard validator can check it")
    problem = _placeholder_problem(element, namespace=etree.QName(element).namespace)
    if problem:
        reason += f"; also {problem}"
    return VerificationResult(SignatureState.UNVERIFIABLE, reason, warnings=warnings)


def _placeholder_problem(signature: etree._Element, namespace: str | None = XMLDSIG) -> str | None:
    """Why the signature's values cannot be checked (placeholders, no certificate), or None."""
    ns = "{" + namespace + "}" if namespace else ""
    value = signature.find(f"{ns}SignatureValue")
    if value is None or not (value.text or "").strip() or not _BASE64.match(value.text):
        return "it has no usable SignatureValue (placeholder)"
    certificates = signature.findall(f"{ns}KeyInfo/{ns}X509Data/{ns}X509Certificate")
    if not certificates:
        return "its KeyInfo carries no X509Certificate to check it with"
    for element in certificates:
        try:
            x509.load_der_x509_certificate(base64.b64decode("".join((element.text or "").split())))
        except ValueError:
            return "its X509Certificate is a placeholder, not a decodable certificate"
    return None


def _certificates(signature: etree._Element) -> list[x509.Certificate]:
    """The KeyInfo certificates, leaf first (the one that issued none of the others)."""
    certificates = [x509.load_der_x509_certificate(base64.b64decode("".join((e.text or "").split())))
                    for e in signature.findall(f"{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")]
    issuers = {c.issuer for c in certificates}
    leaves = [c for c in certificates if c.subject not in issuers or c.subject == c.issuer] or certificates
    leaf = leaves[0]
    return [leaf, *[c for c in certificates if c is not leaf]]


def _describe(signature: etree._Element) -> VerificationResult:
    method = signature.find(f"{DS}SignedInfo/{DS}SignatureMethod")
    digest = signature.find(f"{DS}SignedInfo/{DS}Reference/{DS}DigestMethod")
    algorithm = (method.get("Algorithm") or "").rsplit("#", 1)[-1] if method is not None else None
    digest_algorithm = (digest.get("Algorithm") or "").rsplit("#", 1)[-1] if digest is not None else None
    return VerificationResult(SignatureState.INVALID, "", algorithm=algorithm, digest_algorithm=digest_algorithm)


def _check_signature(root: etree._Element, signature: etree._Element, leaf: x509.Certificate) -> str | None:
    """None when digest and signature value both check out, else why not."""
    config = SignatureConfiguration(
        signature_methods=frozenset(m for m in SignatureMethod if m.name.startswith("RSA_")),
        digest_algorithms=frozenset(DigestAlgorithm),
        expect_references=1,
        # Validity at signing time is our own check (below); let signxml look at the maths only.
        verification_time=leaf.not_valid_before_utc,
    )
    try:
        XMLVerifier().verify(root, x509_cert=leaf, parser=hardened_parser(), expect_config=config)
    except InvalidDigest:
        return _DIGEST_MISMATCH
    except SignxmlInvalidSignature as error:
        # signxml checks SignatureValue before the references; tell the clerk what changed.
        if _digest_matches(root, signature) is False:
            return _DIGEST_MISMATCH
        return _signature_mismatch(error)
    except (InvalidInput, SignXMLException, etree.DocumentInvalid, ValueError) as error:
        return f"malformed signature: {error}"
    return None


def _digest_matches(root: etree._Element, signature: etree._Element) -> bool | None:
    """Recompute the digest of a ``Reference URI=""``; None when we cannot tell."""
    references = signature.findall(f"{DS}SignedInfo/{DS}Reference")
    if len(references) != 1 or references[0].get("URI") != "":
        return None
    reference = references[0]
    algorithms = [t.get("Algorithm") for t in reference.findall(f"{DS}Transforms/{DS}Transform")]
    digest_method = reference.find(f"{DS}DigestMethod")
    digest_value = reference.find(f"{DS}DigestValue")
    hasher = _HASH_BY_URI.get(digest_method.get("Algorithm") if digest_method is not None else "")
    if hasher is None or digest_value is None:
        return None
    document = copy.deepcopy(root)
    if ENVELOPED in algorithms:
        for element in list(document.iter(f"{DS}Signature")):
            _remove_keeping_tail(element)
    c14n = [a for a in algorithms if a and "c14n" in a]
    method = c14n[-1] if c14n else "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    canonical = etree.tostring(document, method="c14n", exclusive="exc-c14n" in method,
                               with_comments=method.endswith("#WithComments"))
    try:
        expected = base64.b64decode((digest_value.text or "").strip())
    except ValueError:
        return False
    return hasher(canonical).digest() == expected


_DIGEST_MISMATCH = "digest mismatch: the signed content was changed after signing"
_UNSUPPORTED = object()  # the low-memory check's "ask signxml instead"
_DSIG11 = "{http://www.w3.org/2009/xmldsig11#}"
_C14N_URIS = frozenset(m.value for m in CanonicalizationMethod)
# No C14N transform: signxml canonicalises with its default (inclusive; 1.1 done as 1.0), and
# _digest_matches with C14N 1.0 — the same bytes.
_DEFAULT_REFERENCE_C14N = SignatureConfiguration().default_reference_c14n_method.value
# The RSA methods signxml accepts under our configuration, with the hash each one signs with.
_RSA_HASHES = {
    SignatureMethod.RSA_SHA1.value: hashes.SHA1,
    SignatureMethod.RSA_SHA224.value: hashes.SHA224,
    SignatureMethod.RSA_SHA256.value: hashes.SHA256,
    SignatureMethod.RSA_SHA384.value: hashes.SHA384,
    SignatureMethod.RSA_SHA512.value: hashes.SHA512,
}


def _signature_mismatch(error: Exception) -> str:
    return f"signature mismatch: SignatureValue does not verify with the certificate's key ({error})"


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
    digest_hash: object
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
    digest_hash = _HASH_BY_URI.get(digest_method.get("Algorithm") if digest_method is not None else None)
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


def _check_signature_spliced(root: etree._Element, signature: etree._Element, leaf: x509.Certificate,
                             lifts: list[Lift], source: ByteSource | None):
    """:func:`_check_signature`'s verdict, reached without the lifted texts in memory: the
    reference digest over the small tree's canonical form with the texts spliced back in, the
    SignatureValue over canonical SignedInfo with ``cryptography`` and the certificate's key.
    Returns _UNSUPPORTED for anything but the shape :func:`_supported_shape` accepts."""
    if signature.getparent() is None:
        return _UNSUPPORTED  # a bare Signature document: nothing of ours
    shape = _supported_shape(signature)
    if shape is None:
        return _UNSUPPORTED
    if isinstance(shape, str):
        return shape
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return _UNSUPPORTED
    # The digested document, prepared as signxml prepares it (copies of the now small tree).
    document = etree.fromstring(etree.tostring(root), hardened_parser())
    if shape.enveloped:
        _remove_keeping_tail(next(document.iter(f"{DS}Signature")))
    document = etree.fromstring(etree.tostring(document), hardened_parser())
    canonical = etree.tostring(document, method="c14n", **_c14n_flags(shape.c14n))
    digest = spliced_digest(canonical, lifts, shape.digest_hash(), source)
    if digest is None:
        return _UNSUPPORTED
    try:
        key.verify(shape.signature_value, shape.signed_info_c14n, padding.PKCS1v15(), shape.signature_hash())
    except CryptoInvalidSignature as error:
        if digest != shape.digest_value:
            return _DIGEST_MISMATCH
        return _signature_mismatch(SignxmlInvalidSignature(f"Signature verification failed: {error}"))
    return _DIGEST_MISMATCH if digest != shape.digest_value else None


def _claimed_signing_time(root: etree._Element) -> dt.datetime:
    """The latest TraceHeader/Timestamp (or a status package's Timestamp): covered by the
    signature, written in Vietnam time. Now when the package has none."""
    latest = None
    for element in root.iter(f"{_NS}Timestamp"):
        try:
            moment = parse_timestamp(element.text or "").replace(tzinfo=VIETNAM_TZ).astimezone(dt.timezone.utc)
        except ValueError:
            continue
        latest = moment if latest is None or moment > latest else latest
    return latest or dt.datetime.now(dt.timezone.utc)


def _chain_problem(leaf: x509.Certificate, supplied: list[x509.Certificate],
                   anchors: list[x509.Certificate], moment: dt.datetime) -> str | None:
    """Walk leaf → issuer → ... until a certificate of the trust bundle; None when that works.
    Each link's signature is checked, each issuer must be a CA valid at ``moment``."""
    anchor_ders = {c.public_bytes(serialization.Encoding.DER) for c in anchors}
    pool = anchors + supplied
    current = leaf
    for _depth in range(8):
        if current.public_bytes(serialization.Encoding.DER) in anchor_ders:
            return None
        issuer = None
        for candidate in pool:
            if candidate.subject != current.issuer or candidate is current:
                continue
            try:
                current.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, CryptoInvalidSignature):
                continue
            issuer = candidate
            break
        if issuer is None:
            return f"its issuer ({current.issuer.rfc4514_string()}) is not in the trust bundle (unknown CA)"
        try:
            constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = issuer.issuer == issuer.subject  # a v1 self-signed root
        if not is_ca:
            return f"{issuer.subject.rfc4514_string()} is not a CA certificate"
        if moment < issuer.not_valid_before_utc or moment > issuer.not_valid_after_utc:
            return f"the CA certificate {issuer.subject.rfc4514_string()} was not valid at signing time"
        if issuer.public_bytes(serialization.Encoding.DER) in anchor_ders:
            return None
        current = issuer
    return "the certificate chain is too long"


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)
