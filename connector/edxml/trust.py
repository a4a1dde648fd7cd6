"""Whom to trust: the trust bundle, the certificate chain, and the moment it is judged at.

The path is validated by cryptography's RFC 5280 verifier (:func:`signing_verifier`), not by
hand: issuers must be CAs allowed to sign certificates, path lengths and the signer's key usage
hold, every certificate is judged at the moment of verification.

Why apart from the signature maths: a sound signature by an unknown or expired certificate is
*untrusted*, not *invalid* — a different failure for a clerk (ask who sent it, not whether it
was changed). Everything here works on certificates and times only, never on the XML signature.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from lxml import etree

from connector.edxml.identifiers import VIETNAM_TZ, parse_timestamp
from connector.edxml.model import NAMESPACE
from connector.errors import CertificateError

_NS = "{" + NAMESPACE + "}"


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


def claimed_signing_time(root: etree._Element) -> dt.datetime:
    """The latest TraceHeader/Timestamp (or a status package's Timestamp): covered by the
    signature, written in Vietnam time. Now when the package has none."""
    latest = None
    for element in root.iter(f"{_NS}Timestamp"):
        try:
            moment = (parse_timestamp(element.text or "").replace(tzinfo=VIETNAM_TZ)
                      .astimezone(dt.timezone.utc))
        except ValueError:
            continue
        latest = moment if latest is None or moment > latest else latest
    return latest or dt.datetime.now(dt.timezone.utc)


def signing_verifier(anchors: list[x509.Certificate], moment: dt.datetime) -> ClientVerifier:
    """cryptography's RFC 5280 path validation, set up for document signatures rather than TLS.

    Issuers must be CA certificates (basicConstraints cA, which the verifier requires of every
    issuer), their key usage — when they state one — must allow keyCertSign, and path lengths
    hold; the signer must not be a CA and, when it states a key usage, must have
    digitalSignature or nonRepudiation. Every certificate of the path must be valid at
    ``moment``. Nothing is asked of extended key usage or subject names: agencies' certificates
    carry whatever their CA puts there."""
    ca_policy = (ExtensionPolicy.permit_all()
                 .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
                 .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _issuer_key_usage))
    signer_policy = (ExtensionPolicy.permit_all()
                     .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _signer_key_usage)
                     .may_be_present(x509.BasicConstraints, Criticality.AGNOSTIC, _signer_not_a_ca))
    return (PolicyBuilder().store(Store(anchors)).time(moment).max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(ca_policy=ca_policy, ee_policy=signer_policy)
            .build_client_verifier())


MAX_CHAIN_DEPTH = 8


def validated_chain(leaf: x509.Certificate, supplied: list[x509.Certificate],
                    anchors: list[x509.Certificate], moment: dt.datetime) -> list[x509.Certificate]:
    """The path leaf → … → a certificate of the trust bundle, validated at ``moment``; raises
    :class:`ChainProblem` with a sentence for a clerk when there is none."""
    try:
        return signing_verifier(anchors, moment).verify(leaf, supplied).chain
    except VerificationError as error:
        raise ChainProblem(_explain(str(error), leaf, [*anchors, *supplied], moment)) from None


class ChainProblem(Exception):
    """No valid path to the trust bundle; ``str()`` says why in a clerk's words."""


def chain_problem(leaf: x509.Certificate, supplied: list[x509.Certificate],
                  anchors: list[x509.Certificate], moment: dt.datetime) -> str | None:
    """Why ``leaf`` has no valid path to the trust bundle at ``moment``, or None."""
    try:
        validated_chain(leaf, supplied, anchors, moment)
    except ChainProblem as problem:
        return str(problem)
    return None


def _issuer_key_usage(_policy: Any, certificate: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not usage.key_cert_sign:
        raise ValueError(f"{certificate.subject.rfc4514_string()} may not sign certificates "
                         "(its key usage lacks keyCertSign)")


def _signer_key_usage(_policy: Any, _certificate: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise ValueError("the signer's key usage allows neither digitalSignature nor nonRepudiation")


def _signer_not_a_ca(_policy: Any, _certificate: x509.Certificate,
                     constraints: x509.BasicConstraints | None) -> None:
    if constraints is not None and constraints.ca:
        raise ValueError("the signer's certificate is a CA certificate, not an agency's")


_VERIFIER_PREFIXES = re.compile(r"^(validation failed: |candidates exhausted: |"
                                r"Python extension validator failed: ValueError: )+")
_VERIFIER_SUFFIX = re.compile(r" \(encountered processing <Certificate.*$")


def _explain(message: str, leaf: x509.Certificate, pool: list[x509.Certificate], moment: dt.datetime) -> str:
    """The verifier's error in a clerk's words. The verdict is the verifier's; this only finds
    the words (which CA is unknown, which one was not valid then)."""
    if "no interior errors" in message:
        return f"its issuer ({leaf.issuer.rfc4514_string()}) is not in the trust bundle (unknown CA)"
    if "signature does not match" in message:
        return (f"a CA named {leaf.issuer.rfc4514_string()} is in the trust bundle but did not sign "
                "this certificate: its issuer is another CA of that name (unknown CA)")
    if "not valid at validation time" in message:
        for issuer in _issuers_by_name(leaf, pool):
            if not issuer.not_valid_before_utc <= moment <= issuer.not_valid_after_utc:
                return (f"the CA certificate {issuer.subject.rfc4514_string()} was not valid at "
                        f"{moment:%Y-%m-%d %H:%M:%S} UTC (valid {issuer.not_valid_before_utc:%Y-%m-%d} "
                        f"to {issuer.not_valid_after_utc:%Y-%m-%d})")
    detail = _VERIFIER_PREFIXES.sub("", _VERIFIER_SUFFIX.sub("", message))
    if "basicConstraints" in detail:
        detail = f"an issuer is not a CA certificate ({detail})"
    return f"its chain does not validate: {detail}"


def _issuers_by_name(leaf: x509.Certificate, pool: list[x509.Certificate]) -> list[x509.Certificate]:
    """The certificates named as issuers above ``leaf`` (by subject name only: for words)."""
    found: list[x509.Certificate] = []
    current = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        issuer = next((c for c in pool if c.subject == current.issuer and c not in found), None)
        if issuer is None or issuer is current:
            break
        found.append(issuer)
        if issuer.subject == issuer.issuer:
            break
        current = issuer
    return found


def signer_problem(leaf: x509.Certificate, supplied: list[x509.Certificate],
                   anchors: list[x509.Certificate] | None, moment: dt.datetime) -> str | None:
    """Why our own certificate must not sign, or None: the same rules a receiver applies.

    Its key usage must allow signatures (digitalSignature; a certificate without a key-usage
    extension is not restricted), and its chain must lead to the trust bundle (``anchors``;
    None when no bundle is configured, and then only the key usage is checked)."""
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        return ("its key usage does not include digitalSignature, so receivers will not accept "
                "its signatures; ask the CA for a signing certificate")
    if anchors is None:
        return None
    trouble = chain_problem(leaf, supplied, anchors, moment)
    if trouble:
        return (f"its chain does not validate against trust.bundle_file: {trouble}; add the "
                "issuing CA to the bundle, or give the full chain with the certificate")
    return None


def as_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)
