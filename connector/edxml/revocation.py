"""Has the signer's certificate been revoked? Judged from what is at hand, never by waiting.

Sources, in the order they are asked for each certificate of the validated path (the trust
anchor excepted):

1. CRLs that IT staff drop into a folder (``trust.crl_folder``, DER or PEM, re-read on SIGHUP) —
   the way for a connector on a server that may not reach the internet;
2. CRLs from the certificate's distribution points and OCSP answers from the responder it names,
   fetched in the background by :class:`connector.edxml.revocation_fetch.RevocationFetcher`
   and cached until their next update.

A CRL counts only when its issuer signed it; an OCSP answer only when the issuer or a responder
it delegated to signed it (checked when the answer is fetched). Verification never waits on the
network (docs/decisions.md): a certificate whose status is not at hand is asked for in the
background and answered ``unknown`` now, with the reason; the signature policy decides what
``revocation-unknown`` does (default: deliver with a warning).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from connector.errors import ConfigError


class Revocation(str, enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RevocationAnswer:
    """What is known of one certificate; ``reason`` is a sentence for a clerk or a log."""

    state: Revocation
    reason: str
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class OcspAnswer:
    """A checked OCSP single response (the fetcher verified who signed it)."""

    state: Revocation
    this_update: dt.datetime
    next_update: dt.datetime | None
    revoked_at: dt.datetime | None = None


class OnlineSources(Protocol):
    """What the background fetcher offers: cached answers now, and a way to ask for more."""

    def cached_crls(self, urls: list[str]) -> list[x509.CertificateRevocationList]: ...

    def cached_ocsp(self, certificate: x509.Certificate, issuer: x509.Certificate) -> OcspAnswer | None: ...

    def request(self, crl_urls: list[str], ocsp_url: str | None, certificate: x509.Certificate,
                issuer: x509.Certificate) -> None: ...


def load_crl_folder(folder: str | Path) -> list[x509.CertificateRevocationList]:
    """Every CRL in ``folder`` (``*.crl``, ``*.pem``, ``*.der``, DER or PEM). A file that is not a
    CRL stops the load with its name: a CRL silently skipped would turn revoked into unknown."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError("the CRL folder does not exist or is not a directory", file=str(folder),
                          hint="create it, or correct trust.crl_folder")
    crls = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in {".crl", ".pem", ".der"}):
        data = path.read_bytes()
        try:
            crls.append(x509.load_pem_x509_crl(data) if b"-----BEGIN" in data
                        else x509.load_der_x509_crl(data))
        except ValueError as error:
            raise ConfigError(f"not a readable CRL: {error}", file=str(path),
                              hint="give CRL files in DER or PEM form, or remove this one") from error
    return crls


def distribution_points(certificate: x509.Certificate) -> list[str]:
    """The http(s) URLs of the certificate's CRL distribution points."""
    try:
        points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [name.value for point in points for name in (point.full_name or [])
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(("http://", "https://"))]


def ocsp_responder(certificate: x509.Certificate) -> str | None:
    """The http(s) URL of the OCSP responder the certificate names, if any."""
    try:
        access = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for description in access:
        location = description.access_location
        if (description.access_method == AuthorityInformationAccessOID.OCSP
                and isinstance(location, x509.UniformResourceIdentifier)
                and location.value.lower().startswith(("http://", "https://"))):
            return location.value
    return None


class RevocationChecker:
    """Answers from the CRL folder and the background fetcher's cache (``online``; None when
    fetching is off)."""

    def __init__(self, folder_crls: list[x509.CertificateRevocationList],
                 online: OnlineSources | None) -> None:
        self.folder_crls = folder_crls
        self.online = online

    def check_path(self, chain: list[x509.Certificate], moment: dt.datetime) -> RevocationAnswer:
        """The worst answer for the certificates of a validated path, leaf first (the last,
        the trust anchor, is trusted as configured and has no issuer to ask)."""
        answers = [self.check(certificate, issuer, moment)
                   for certificate, issuer in zip(chain, chain[1:], strict=False)]
        for state in (Revocation.REVOKED, Revocation.UNKNOWN):
            for answer in answers:
                if answer.state is state:
                    return answer
        return answers[0] if answers else RevocationAnswer(Revocation.GOOD, "a trust anchor itself")

    def check(self, certificate: x509.Certificate, issuer: x509.Certificate,
              moment: dt.datetime) -> RevocationAnswer:
        who = certificate.subject.rfc4514_string()
        urls = distribution_points(certificate)
        responder = ocsp_responder(certificate)
        crls = [crl for crl in [*self.folder_crls, *(self.online.cached_crls(urls) if self.online else [])]
                if _issued_by(crl, issuer)]
        for crl in crls:
            entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            if entry is not None and entry.revocation_date_utc <= moment:
                return RevocationAnswer(Revocation.REVOKED, (
                    f"the certificate of {who} was revoked on "
                    f"{entry.revocation_date_utc:%Y-%m-%d %H:%M:%S} UTC "
                    f"(CRL of {issuer.subject.rfc4514_string()})"), revoked_at=entry.revocation_date_utc)
        ocsp = self.online.cached_ocsp(certificate, issuer) if self.online and responder else None
        if ocsp is not None and _fresh(ocsp.this_update, ocsp.next_update, moment):
            if ocsp.state is Revocation.REVOKED and ocsp.revoked_at is not None and ocsp.revoked_at <= moment:
                return RevocationAnswer(Revocation.REVOKED, (
                    f"the certificate of {who} was revoked on {ocsp.revoked_at:%Y-%m-%d %H:%M:%S} UTC "
                    f"(OCSP responder {responder})"), revoked_at=ocsp.revoked_at)
            if ocsp.state is Revocation.GOOD:
                return RevocationAnswer(Revocation.GOOD, f"not revoked (OCSP responder {responder})")
        fresh = [crl for crl in crls if _fresh(crl.last_update_utc, crl.next_update_utc, moment)]
        if fresh:
            return RevocationAnswer(Revocation.GOOD,
                                    f"not revoked (CRL of {issuer.subject.rfc4514_string()}, "
                                    f"next update {_when(fresh[0].next_update_utc)})")
        if self.online is not None and (urls or responder):
            self.online.request(urls, responder, certificate, issuer)
        return RevocationAnswer(Revocation.UNKNOWN, _unknown_reason(who, issuer, crls, urls, responder,
                                                                    online=self.online is not None))


def _issued_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    return crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]


def _fresh(this_update: dt.datetime, next_update: dt.datetime | None, moment: dt.datetime) -> bool:
    return this_update <= moment and (next_update is None or moment <= next_update)


def _when(moment: dt.datetime | None) -> str:
    return "not stated" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def _unknown_reason(who: str, issuer: x509.Certificate, crls: list[x509.CertificateRevocationList],
                    urls: list[str], responder: str | None, *, online: bool) -> str:
    ca = issuer.subject.rfc4514_string()
    if crls:
        latest = max(crls, key=lambda crl: crl.last_update_utc)
        text = (f"cannot tell whether the certificate of {who} is revoked: the newest CRL of {ca} "
                f"is out of date (next update was {_when(latest.next_update_utc)}); drop a newer one into "
                "trust.crl_folder")
    else:
        text = (f"cannot tell whether the certificate of {who} is revoked: no CRL of {ca} in "
                "trust.crl_folder")
    if not (urls or responder):
        return text + ", and the certificate names no CRL distribution point or OCSP responder"
    where = ", ".join([*urls, *([responder] if responder else [])])
    if not online:
        return text + f", and fetching is off (trust.fetch_revocation); it names {where}"
    return text + f", and no answer from {where} is at hand yet (asked in the background)"
