"""Signing keys: an agency's private key, its certificate and the CA chain behind it.

Agencies receive their key either as PEM files (key + certificate) or as a PKCS#12 bundle
(.p12/.pfx) from their CA, or keep it in a PKCS#11 token that signs for them
(:mod:`connector.edxml.tokens`). All three are loaded here into one :class:`SigningKey` — whose
``private_key`` is anything with the :class:`PrivateKeyLike` ``sign``, so the signer never
asks where the key lives — checked once at load time so that a wrong password, a key that does
not match its certificate, or a certificate outside its validity period is reported before any
package is signed — with the file name and the dates, because those are what an operator has to
fix. Passwords never appear in messages or logs.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from connector.errors import CertificateError

PASSWORD_ENV = "EDXML_KEY_PASSWORD"


class PrivateKeyLike(Protocol):
    """The one thing signing needs of a private key: cryptography's RSA ``sign`` (a key read
    from a file has it; so does :class:`connector.edxml.tokens.TokenKey`, whose token signs)."""

    @property
    def key_size(self) -> int: ...

    def public_key(self) -> rsa.RSAPublicKey: ...

    def sign(self, data: bytes, padding: rsa_padding.AsymmetricPadding,
             algorithm: hashes.HashAlgorithm) -> bytes: ...


@dataclass(frozen=True)
class SigningKey:
    """A private key with its certificate and (optionally) the intermediate/CA chain.

    ``source`` names the file(s) or the token it came from, for messages.
    """

    private_key: PrivateKeyLike
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = field(default_factory=tuple)
    source: str = ""

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_pem(cls, key_path: str | Path, cert_path: str | Path, password: bytes | str | None = None,
                 *, at: dt.datetime | None = None, check_dates: bool = True) -> SigningKey:
        """Load a PEM private key and a PEM certificate file (which may also hold the chain)."""
        key_path, cert_path = Path(key_path), Path(cert_path)
        key_bytes = _read(key_path, "private key")
        cert_bytes = _read(cert_path, "certificate")
        secret = _as_bytes(password)
        try:
            private_key = serialization.load_pem_private_key(key_bytes, password=secret)
        except TypeError as error:
            # Raised both for "encrypted but no password" and "password given but not encrypted".
            needs = ("is encrypted: give its password" if secret is None
                     else "is not encrypted: drop the password")
            raise CertificateError(f"private key {needs}", file=str(key_path),
                                   hint="use --password-file or EDXML_KEY_PASSWORD") from error
        except ValueError as error:
            message = ("wrong password for the private key, or the file is not a PEM private key"
                       if secret is not None else "not a readable PEM private key")
            raise CertificateError(message, file=str(key_path),
                                   hint="check the file and its password") from error
        try:
            certificates = x509.load_pem_x509_certificates(cert_bytes)
        except ValueError as error:
            raise CertificateError("not a readable PEM certificate", file=str(cert_path),
                                   hint="give the agency certificate in PEM form") from error
        leaf, chain = _split_leaf(private_key, certificates, str(cert_path))
        key = cls(_require_rsa(private_key, str(key_path)), leaf, tuple(chain),
                  source=f"{key_path} + {cert_path}" if key_path != cert_path else str(key_path))
        if check_dates:
            key.check_validity(at)
        return key

    @classmethod
    def from_pkcs12(cls, path: str | Path, password: bytes | str | None = None,
                    *, at: dt.datetime | None = None, check_dates: bool = True) -> SigningKey:
        """Load a PKCS#12 bundle (.p12/.pfx) holding the key, its certificate and maybe a chain."""
        path = Path(path)
        data = _read(path, "PKCS#12 bundle")
        secret = _as_bytes(password)
        try:
            private_key, certificate, extra = pkcs12.load_key_and_certificates(data, secret)
        except ValueError as error:
            if secret is None:  # agencies' bundles are protected; say what is missing
                raise CertificateError("cannot open the PKCS#12 bundle: no password was given "
                                       "(or the file is damaged)", file=str(path),
                                       hint=f"give it with --password-file FILE or {PASSWORD_ENV}"
                                       ) from error
            raise CertificateError("cannot open the PKCS#12 bundle: wrong password or damaged file",
                                   file=str(path),
                                   hint="check --password-file / EDXML_KEY_PASSWORD") from error
        if private_key is None or certificate is None:
            raise CertificateError("the PKCS#12 bundle holds no private key and certificate pair",
                                   file=str(path), hint="export the key together with its certificate")
        if not _same_public_key(private_key, certificate):
            raise CertificateError("the certificate in the PKCS#12 bundle does not match its key",
                                   file=str(path), hint="re-export the bundle from the CA's tool")
        key = cls(_require_rsa(private_key, str(path)), certificate, tuple(extra or ()), source=str(path))
        if check_dates:
            key.check_validity(at)
        return key

    @classmethod
    def from_token(cls, spec, cert_file: str | Path | None = None, *,
                   check_dates: bool = True) -> SigningKey:
        """The key a PKCS#11 token holds (``spec``: :class:`connector.edxml.tokens.TokenKeySpec`),
        its certificate from ``cert_file`` or from the token."""
        from connector.edxml.tokens import open_token_key

        token_key, chain = open_token_key(spec, Path(cert_file) if cert_file else None)
        key = cls(token_key, token_key.certificate, chain, source=spec.describe())
        if check_dates:
            key.check_validity()
        return key

    # -- facts -----------------------------------------------------------------------------------
    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate (hex): what the journal records as the package's signer.
        Computed once (a hub compares each unit's at every status refresh)."""
        return self.certificate.fingerprint(hashes.SHA256()).hex()

    def valid_at(self, moment: dt.datetime) -> bool:
        return self.not_before <= _utc(moment) <= self.not_after

    def close(self) -> None:
        """Let go of the token session, if the key lives in one."""
        closer = getattr(self.private_key, "close", None)
        if closer is not None:
            closer()

    @property
    def days_left(self) -> int:
        """Whole days until the certificate expires (negative once expired) — for readiness
        checks and metrics, so that renewal is noticed before packages are refused."""
        return (self.not_after - dt.datetime.now(dt.timezone.utc)).days

    def check_validity(self, at: dt.datetime | None = None) -> None:
        """Refuse a certificate that is expired or not yet valid at ``at`` (default: now)."""
        moment = _utc(at)
        if moment > self.not_after:
            raise CertificateError(
                f"certificate {self.subject} expired on {self.not_after:%Y-%m-%d %H:%M:%S} UTC "
                f"(valid from {self.not_before:%Y-%m-%d %H:%M:%S} UTC)",
                file=self.source or None, hint="renew the agency certificate with its CA")
        if moment < self.not_before:
            raise CertificateError(
                f"certificate {self.subject} is not valid before {self.not_before:%Y-%m-%d %H:%M:%S} UTC "
                f"(valid until {self.not_after:%Y-%m-%d %H:%M:%S} UTC)",
                file=self.source or None, hint="check the system clock or wait until it becomes valid")

    def certificate_chain(self) -> list[x509.Certificate]:
        """Leaf first, then the chain — the order KeyInfo carries them."""
        return [self.certificate, *self.chain]


def read_password(password_file: str | Path | None = None, env: str = PASSWORD_ENV) -> bytes | None:
    """The key password: the first line of ``password_file`` if given, else the environment
    variable ``env``, else None. A trailing newline (as editors write) is not part of it."""
    if password_file is not None:
        path = Path(password_file)
        try:
            text = path.read_bytes()
        except OSError as error:
            raise CertificateError(f"cannot read the password file: {error.strerror}", file=str(path),
                                   hint="give a readable file holding only the password") from error
        return text.splitlines()[0] if text.splitlines() else b""
    value = os.environ.get(env)
    return None if value is None else value.encode("utf-8")


# -- helpers ------------------------------------------------------------------------------------
def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CertificateError(f"cannot read the {what}: {error.strerror}", file=str(path),
                               hint="check the path and its permissions") from error


def _as_bytes(password: bytes | str | None) -> bytes | None:
    if password is None or password == b"" or password == "":
        return None
    return password.encode("utf-8") if isinstance(password, str) else bytes(password)


def _same_public_key(private_key, certificate: x509.Certificate) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    ours = private_key.public_key().public_bytes(der, spki)
    return ours == certificate.public_key().public_bytes(der, spki)


def _split_leaf(private_key, certificates: list[x509.Certificate], file: str):
    """The certificate matching the key is the leaf; the others are its chain, kept in order."""
    for index, certificate in enumerate(certificates):
        if _same_public_key(private_key, certificate):
            return certificate, certificates[:index] + certificates[index + 1:]
    raise CertificateError("no certificate in the file matches the private key", file=file,
                           hint="give the certificate issued for this key")


def _require_rsa(private_key, file: str) -> rsa.RSAPrivateKey:
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise CertificateError("only RSA keys are supported (QCVN 102 signatures are RSA)", file=file,
                               hint="use the RSA key issued by the agency's CA")
    return private_key


def _utc(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now(dt.timezone.utc)
    if at.tzinfo is None:
        return at.replace(tzinfo=dt.timezone.utc)
    return at.astimezone(dt.timezone.utc)
