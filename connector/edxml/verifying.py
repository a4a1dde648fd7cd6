"""Verify an edXML package's signature: is it sound, and do we trust who made it.

Why two questions: their failures mean different things to a clerk. *Invalid* — digest mismatch
(content changed), signature mismatch (wrong key or tampered SignedInfo), malformed. *Untrusted* —
a sound signature, but no bundle, an unknown CA, a path that does not validate, or a certificate
not yet valid when verified (:mod:`connector.edxml.trust`); *expired* when it had expired by then.
A trusted path is then asked whether it is revoked and whom it speaks for
(:mod:`connector.edxml.trust_store`: *revoked*, *wrong-signer*, *revocation-unknown*, *unbound*).
SDK output's unprefixed QCVN-namespace ``Signature`` with placeholder values is *unverifiable*,
never *valid*.

Why two paths: signxml (the reference, :func:`verify_package_signxml`) costs ≈ 9× a package's
attachments in memory, and the daemon verifies every package it receives. So
:func:`verify_package` sends a package with a long base64 text (:data:`LIFT_THRESHOLD`, 1 MB)
through :func:`verify_low_memory` (:mod:`connector.edxml.digest_stream` lifts the texts out,
:mod:`connector.edxml.low_memory_check` does the maths) for exactly our signature shape; any
other shape goes to signxml, so outcomes and reasons are the same either way (tested against
both paths and xmlsec1). :func:`verify_package_file` does this from disk without reading the
file in.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod, XMLVerifier
from signxml.exceptions import InvalidDigest, InvalidInput, SignXMLException
from signxml.exceptions import InvalidSignature as SignxmlInvalidSignature
from signxml.verifier import SignatureConfiguration

from connector.edxml.digest_stream import (
    LIFT_THRESHOLD,
    ByteSource,
    ascii_compatible,
    find_base64_runs,
    lift_long_texts,
    new_token,
    parse_with_placeholders,
    put_back,
)
from connector.edxml.low_memory_check import UNSUPPORTED, check_signature_spliced
from connector.edxml.model import NAMESPACE
from connector.edxml.reader import parse_package  # the reader owns the repair
from connector.edxml.trust import ChainProblem, as_utc, claimed_signing_time, validated_chain
from connector.edxml.trust_store import TrustStore
from connector.edxml.xmldsig import (
    C14N_METHODS,
    DIGEST_MISMATCH,
    DS,
    ENVELOPED,
    HASH_BY_URI,
    XMLDSIG,
    SignatureState,
    remove_keeping_tail,
    signature_mismatch,
)
from connector.edxml.xmlparse import ParseLimits, check_depth, hardened_parser, read_limited
from connector.errors import EdxmlError, PackageTooLarge


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
    bound_to: tuple[str, ...] = ()
    revoked_at: dt.datetime | None = None

    @property
    def valid(self) -> bool:
        return self.state is SignatureState.VALID


_BASE64 = re.compile(r"^[A-Za-z0-9+/=\s]*$")

Trust = str | Path | TrustStore | None
"""A trust bundle path (anchors only), a full :class:`TrustStore`, or None (nothing trusted)."""


def verify_package(data: bytes, *, trust: Trust = None, limits: ParseLimits = ParseLimits(),
                   at: dt.datetime | None = None, file: str | None = None) -> VerificationResult:
    """Verify the package's signature, then its certificate against ``trust`` (a PEM file or a
    directory of PEM files). ``at`` is the moment of verification — for a received package the
    time of receipt, recorded in the journal — against which the certificate's validity and
    chain are judged; by default now. The time the package claims (its latest timestamp) is
    only compared with the validity and reported as a warning: a key whose certificate expired
    must not be able to sign "back-dated" packages that verify as trusted.
    Raises EdxmlError only when the package cannot be parsed at all.

    A package carrying a long base64 text (an attachment of a megabyte or more) is verified by
    :func:`verify_low_memory` — same outcomes, a fraction of the memory; everything else, and
    any signature shape that path does not handle, by :func:`verify_package_signxml`."""
    if len(data) >= LIFT_THRESHOLD:
        result = verify_low_memory(data, trust=trust, limits=limits, at=at, file=file)
        if result is not None:
            return result
    return verify_package_signxml(data, trust=trust, limits=limits, at=at, file=file)


def verify_package_file(path: str | Path, *, trust: Trust = None, limits: ParseLimits = ParseLimits(),
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


def verify_package_signxml(data: bytes, *, trust: Trust = None, limits: ParseLimits = ParseLimits(),
                           at: dt.datetime | None = None, file: str | None = None) -> VerificationResult:
    """The reference verification: signxml checks digest and signature on the whole tree (it
    copies the document several times — ≈ 9× a large attachment in memory). Same arguments and
    result as :func:`verify_package`, which uses it for small packages and unusual signatures."""
    root, warnings = _parse_for_verification(data, limits, file)
    result = _verify_root(root, warnings, trust, at, _check_signature)
    assert result is not None  # _check_signature always gives a verdict
    return result


def verify_low_memory(source: bytes | str | Path, *, trust: Trust = None,
                      limits: ParseLimits = ParseLimits(), at: dt.datetime | None = None,
                      file: str | None = None,
                      threshold: int = LIFT_THRESHOLD) -> VerificationResult | None:
    """Verify like :func:`verify_package_signxml`, with the same outcome and reason, but
    without the document's long base64 texts (``threshold`` characters or more) in memory:
    see :mod:`connector.edxml.digest_stream`. ``source`` is the package's bytes or its path.

    Returns None when this path cannot promise signxml's answer — a signature shape other than
    ours (one ``Reference URI=""`` with the enveloped-signature and one C14N transform, an RSA
    method, a certificate in KeyInfo and nothing else to check) or a placeholder that ended up
    where C14N would not write it once; the caller then asks signxml. Parse errors are the
    reader's (the package is re-parsed the reader's way when the quick parse fails)."""
    given: bytes | Path = Path(source) if isinstance(source, str | Path) else source
    file = file or (str(given) if isinstance(given, Path) else None)
    with ByteSource.of(given) as byte_source:
        if byte_source.size > limits.max_package_size:
            raise PackageTooLarge(
                f"package is {byte_source.size} bytes, more than the limit of "
                f"{limits.max_package_size} bytes", file=file,
                hint="raise edxml.max_package_size in the configuration if this size is expected")
        token = new_token()
        root, lifts, warnings = None, [], []
        digest_source: ByteSource | None = byte_source
        runs = find_base64_runs(byte_source, threshold) if ascii_compatible(byte_source) else []
        if runs:
            root, lifts = _quick_parse(byte_source, runs, token, limits, file)
            if root is not None:
                lifts = put_back(root, token, lifts, byte_source, _read_by_verification)
        if root is None:
            data = given if isinstance(given, bytes) else read_limited(given, limits, file=file)
            root, warnings = _parse_for_verification(data, limits, file)
            del data
            lifts = lift_long_texts(root, token, threshold, skip=_read_by_verification)
            digest_source = None
        for element in root.iter():
            if (isinstance(element.tag, str) and etree.QName(element).localname in {"Signature", "Timestamp"}
                    and token.encode("ascii") in etree.tostring(element)):
                return None  # a lifted text that verification reads itself: let signxml decide

        def check(tree_root, signature, leaf):
            return check_signature_spliced(tree_root, signature, leaf, lifts, digest_source)

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


def _verify_root(root: etree._Element, warnings: list[str], trust: Trust, at: dt.datetime | None,
                 check) -> VerificationResult | None:
    """Everything after parsing: find the signature, ``check(root, signature, leaf)`` its maths
    (a reason string, None when sound, or UNSUPPORTED to give up), then validity and trust."""
    signatures = list(root.iter(f"{DS}Signature"))
    if not signatures:
        return _without_xmldsig(root, tuple(warnings))
    if len(signatures) > 1:
        return VerificationResult(SignatureState.INVALID,
                                  f"malformed: {len(signatures)} xmldsig signatures, expected one",
                                  warnings=tuple(warnings))
    signature = signatures[0]
    base = _signature_shape(signature)
    problem = _placeholder_problem(signature)
    if problem:
        return dataclasses.replace(base, state=SignatureState.UNVERIFIABLE, reason=problem,
                                   warnings=tuple(warnings))
    shape = reference_problem(signature)
    if shape:
        return dataclasses.replace(base, reason=shape, warnings=tuple(warnings))
    warnings = [*warnings, *_weak_algorithm_warnings(base)]
    certificates = _certificates(signature)
    leaf = certificates[0]
    base = dataclasses.replace(base, signer_subject=leaf.subject.rfc4514_string(),
                               signer_issuer=leaf.issuer.rfc4514_string(),
                               certificate_not_before=leaf.not_valid_before_utc,
                               certificate_not_after=leaf.not_valid_after_utc, warnings=tuple(warnings))
    failure = check(root, signature, leaf)
    if failure is UNSUPPORTED:
        return None
    if failure:
        return dataclasses.replace(base, state=SignatureState.INVALID, reason=failure)
    moment = as_utc(at) if at is not None else dt.datetime.now(dt.timezone.utc)
    claimed = claimed_signing_time(root)
    valid_from, valid_to = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if claimed < valid_from or claimed > valid_to:
        warnings = [*warnings, f"the package claims to be signed at {claimed:%Y-%m-%d %H:%M:%S} UTC, "
                               f"outside its certificate's validity ({valid_from:%Y-%m-%d} to "
                               f"{valid_to:%Y-%m-%d})"]
    base = dataclasses.replace(base, signing_time=claimed, warnings=tuple(warnings))
    if moment > valid_to:
        return dataclasses.replace(base, state=SignatureState.EXPIRED, reason=(
            f"sound signature, but the certificate expired on {valid_to:%Y-%m-%d %H:%M:%S} UTC, before "
            f"the package was received on {moment:%Y-%m-%d %H:%M:%S} UTC"))
    if moment < valid_from:
        return dataclasses.replace(base, state=SignatureState.UNTRUSTED, reason=(
            f"sound signature, but the certificate is not valid until {valid_from:%Y-%m-%d %H:%M:%S} UTC "
            f"(checked at {moment:%Y-%m-%d %H:%M:%S} UTC)"))
    store = TrustStore.of(trust)
    if store is None:
        return dataclasses.replace(
            base, state=SignatureState.UNTRUSTED,
            reason="sound signature, but no trust bundle given to check the certificate")
    try:
        chain = validated_chain(leaf, certificates[1:], store.anchors, moment)
    except ChainProblem as trouble:
        return dataclasses.replace(base, state=SignatureState.UNTRUSTED,
                                   reason=f"sound signature, but {trouble}")
    judgement = store.judge(chain, _sender(root), moment)
    return dataclasses.replace(base, state=SignatureState(judgement.state), reason=judgement.reason,
                               warnings=(*base.warnings, *judgement.warnings), bound_to=judgement.bound_to,
                               revoked_at=judgement.revoked_at)


def _sender(root: etree._Element) -> str | None:
    """The package's From/OrganId, which the signer must be bound to."""
    for sender in root.iter(f"{{{NAMESPACE}}}From"):
        organ_id = sender.find(f"{{{NAMESPACE}}}OrganId")
        if organ_id is not None and (organ_id.text or "").strip():
            return (organ_id.text or "").strip()
    return None


def reference_problem(signature: etree._Element) -> str | None:
    """Why the signature does not cover the whole package, or None.

    A signature proves only what its References cover. One that references a single element
    (``URI="#id"``), several parts, or passes the document through other transforms (XPath,
    XSLT…) can stay sound while everything else in the package is changed, so the only shape
    accepted is the whole document: exactly one ``Reference URI=""`` whose transforms are the
    enveloped-signature transform, optionally followed by one canonicalisation."""
    references = signature.findall(f"{DS}SignedInfo/{DS}Reference")
    if len(references) != 1:
        return (f"invalid: {len(references)} signed references; a package's signature must "
                "cover the whole package with exactly one Reference URI=\"\"")
    uri = references[0].get("URI")
    if uri != "":
        return (f"invalid: the signature covers only {uri!r}, not the whole package "
                "(Reference URI must be \"\")")
    transforms = [t.get("Algorithm") for t in references[0].findall(f"{DS}Transforms/{DS}Transform")]
    if not transforms or transforms[0] != ENVELOPED or len(transforms) > 2 or (
            len(transforms) == 2 and transforms[1] not in C14N_METHODS):
        return ("invalid: the signature's transforms are " + (", ".join(map(str, transforms)) or "none")
                + "; only the enveloped-signature transform, optionally followed by one "
                  "canonicalisation, is accepted")
    return None


def _weak_algorithm_warnings(result: VerificationResult) -> list[str]:
    """SHA-1 still verifies (the official SDK's peers sign with RSA-SHA1), but is reported."""
    weak = [name for name in (result.algorithm, result.digest_algorithm)
            if name and name.lower() in {"rsa-sha1", "sha1"}]
    if not weak:
        return []
    return [f"the signature uses SHA-1 ({', '.join(weak)}), which is no longer considered "
            "secure; ask the sender to sign with RSA-SHA256"]


def _parse_for_verification(data: bytes, limits: ParseLimits, file: str | None):
    """Parse exactly as the reader does, including its repair of undeclared prefixes, so that a
    package the reader accepts with warnings gets a verdict rather than a parse error (a
    repaired package's digest cannot match — which is the truth about it)."""

    tree, warnings = parse_package(data, limits=limits, file=file)
    return tree.getroot(), list(warnings)


def _without_xmldsig(root: etree._Element, warnings: tuple[str, ...]) -> VerificationResult:
    others = [e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == "Signature"]
    if not others:
        return VerificationResult(SignatureState.ABSENT, "the package carries no signature",
                                  warnings=warnings)
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


def _signature_shape(signature: etree._Element) -> VerificationResult:
    method = signature.find(f"{DS}SignedInfo/{DS}SignatureMethod")
    digest = signature.find(f"{DS}SignedInfo/{DS}Reference/{DS}DigestMethod")
    algorithm = (method.get("Algorithm") or "").rsplit("#", 1)[-1] if method is not None else None
    digest_algorithm = (digest.get("Algorithm") or "").rsplit("#", 1)[-1] if digest is not None else None
    return VerificationResult(SignatureState.INVALID, "", algorithm=algorithm,
                              digest_algorithm=digest_algorithm)


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
        return DIGEST_MISMATCH
    except SignxmlInvalidSignature as error:
        # signxml checks SignatureValue before the references; tell the clerk what changed.
        if _digest_matches(root, signature) is False:
            return DIGEST_MISMATCH
        return signature_mismatch(error)
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
    hasher = HASH_BY_URI.get(digest_method.get("Algorithm") if digest_method is not None else "")
    if hasher is None or digest_value is None:
        return None
    document = copy.deepcopy(root)
    if ENVELOPED in algorithms:
        for element in list(document.iter(f"{DS}Signature")):
            remove_keeping_tail(element)
    c14n = [a for a in algorithms if a and "c14n" in a]
    method = c14n[-1] if c14n else "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    canonical = etree.tostring(document, method="c14n", exclusive="exc-c14n" in method,
                               with_comments=method.endswith("#WithComments"))
    try:
        expected = base64.b64decode((digest_value.text or "").strip())
    except ValueError:
        return False
    return hasher(canonical).digest() == expected
