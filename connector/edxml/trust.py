"""Whom to trust: the trust bundle, the certificate chain, and the moment it is judged at.

Why apart from the signature maths: a sound signature by an unknown or expired certificate is
*untrusted*, not *invalid* — a different failure for a clerk (ask who sent it, not whether it
was changed). Everything here works on certificates and times only, never on the XML signature.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import serialization
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
            moment = parse_timestamp(element.text or "").replace(tzinfo=VIETNAM_TZ).astimezone(dt.timezone.utc)
        except ValueError:
            continue
        latest = moment if latest is None or moment > latest else latest
    return latest or dt.datetime.now(dt.timezone.utc)


def chain_problem(leaf: x509.Certificate, supplied: list[x509.Certificate],
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
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment.astimezone(dt.timezone.utc)
