"""Throwaway certificates for demos and tests: a CA and two agencies, never for production.

Real agencies get their certificates from a licensed CA (VNPT-CA, Viettel-CA, the government CA).
For a demo or a test we need the same shapes without one: a CA certificate to trust, and for each
of two example agencies a key and certificate in PEM *and* as a PKCS#12 bundle with a password
file — the two forms the command line accepts. An already expired certificate lets tests show that
it is refused. The CA's (empty) CRL in ``crls/`` and ``signers.yaml``, binding each certificate to
its agency, make the dev agencies' signatures ``valid`` with the trust settings a site would use.
Keys are written 0600. Running it again overwrites the files with new ones.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AGENCY_A_ORGAN_ID = "000.00.00.G22"
AGENCY_B_ORGAN_ID = "000.00.00.H41"


@dataclass(frozen=True)
class AgencyCert:
    organ_id: str
    key: Path
    cert: Path
    p12: Path
    password_file: Path


@dataclass(frozen=True)
class DevCerts:
    """Paths of everything :func:`make_dev_certs` wrote."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    agency_a: AgencyCert
    agency_b: AgencyCert
    expired_cert: Path
    expired_key: Path
    crl_folder: Path
    signer_map: Path

    def files(self) -> list[Path]:
        return [self.ca_cert, self.ca_key,
                *(getattr(agency, name) for agency in (self.agency_a, self.agency_b)
                  for name in ("key", "cert", "p12", "password_file")),
                self.expired_cert, self.expired_key, self.crl_folder / "ca.crl", self.signer_map]


def make_dev_certs(directory: str | Path, *, ca_name: str = "edXML connector dev CA") -> DevCerts:
    """Write a CA (ca.pem, ca.key), agency-a/agency-b (key, cert, .p12, password file) and an
    expired agency certificate (expired.pem/.key) into ``directory``; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    ca_key = _new_key()
    ca_subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, ca_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edXML connector (development only)"),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject).issuer_name(ca_subject)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     key_cert_sign=True, crl_sign=True, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_cert_path, ca_key_path = directory / "ca.pem", directory / "ca.key"
    _write_cert(ca_cert_path, ca_cert)
    _write_key(ca_key_path, ca_key)

    agencies = []
    for stem, organ_id, name in (("agency-a", AGENCY_A_ORGAN_ID, "Văn phòng Chính phủ (dev)"),
                                 ("agency-b", AGENCY_B_ORGAN_ID, "UBND tỉnh Nghệ An (dev)")):
        agencies.append(_issue(directory, stem, organ_id, name, ca_key, ca_cert, now))

    expired_key = _new_key()
    expired_cert = _agency_cert(expired_key, ca_key, ca_cert, AGENCY_A_ORGAN_ID, "Expired agency (dev)",
                                now - dt.timedelta(days=400), now - dt.timedelta(days=35))
    expired_cert_path, expired_key_path = directory / "expired.pem", directory / "expired.key"
    _write_cert(expired_cert_path, expired_cert)
    _write_key(expired_key_path, expired_key)

    crl_folder = directory / "crls"
    crl_folder.mkdir(exist_ok=True)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject)
           .last_update(now - dt.timedelta(days=1)).next_update(now + dt.timedelta(days=365))
           .sign(ca_key, hashes.SHA256()))
    (crl_folder / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.DER))
    signer_map = directory / "signers.yaml"
    signer_map.write_text(_signer_map([(agency, x509.load_pem_x509_certificate(agency.cert.read_bytes()))
                                       for agency in agencies]
                                      + [(agencies[0], expired_cert)]), encoding="utf-8")

    return DevCerts(directory, ca_cert_path, ca_key_path, agencies[0], agencies[1],
                    expired_cert_path, expired_key_path, crl_folder, signer_map)


def _issue(directory: Path, stem: str, organ_id: str, name: str, ca_key, ca_cert,
           now: dt.datetime) -> AgencyCert:
    """One agency's key and two-year certificate from the dev CA, as PEM and as a .p12 with its
    password file (every secret written 0600)."""
    key = _new_key()
    cert = _agency_cert(key, ca_key, ca_cert, organ_id, name,
                        now - dt.timedelta(days=1), now + dt.timedelta(days=730))
    key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.pem"
    p12_path, password_path = directory / f"{stem}.p12", directory / f"{stem}.password"
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    password = secrets.token_urlsafe(18)
    _write_private(password_path, (password + "\n").encode())
    _write_private(p12_path, pkcs12.serialize_key_and_certificates(
        stem.encode(), key, cert, [ca_cert],
        serialization.BestAvailableEncryption(password.encode())))
    return AgencyCert(organ_id, key_path, cert_path, p12_path, password_path)


def _signer_map(entries: list[tuple[AgencyCert, x509.Certificate]]) -> str:
    """The trust.signer_map_file for the dev agencies: each certificate by its fingerprint."""
    lines = ["# Which agency each dev certificate signs for (trust.signer_map_file).", "signers:"]
    for agency, cert in entries:
        fingerprint = cert.fingerprint(hashes.SHA256()).hex().upper()
        lines += [f"  - organ_id: {agency.organ_id}", f"    sha256: {fingerprint}"]
    return "\n".join(lines) + "\n"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _agency_cert(key, ca_key, ca_cert, organ_id: str, name: str,
                 not_before: dt.datetime, not_after: dt.datetime) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, organ_id),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                         x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     key_cert_sign=False, crl_sign=False, encipher_only=False,
                                     decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH,
                                              ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    _write_private(path, key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def _write_private(path: Path, data: bytes) -> None:
    """Create (or truncate) with mode 0600 from the start, so the secret is never world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def trust_config(ca_cert: Path) -> dict[str, str]:
    """The ``trust:`` section for dev certificates made by :func:`make_dev_certs`: the CA as the
    bundle, with its CRL folder and signer mapping beside it when they are there."""
    ca_cert = Path(ca_cert)
    config = {"bundle_file": str(ca_cert)}
    if (ca_cert.parent / "crls").is_dir():
        config["crl_folder"] = str(ca_cert.parent / "crls")
    if (ca_cert.parent / "signers.yaml").is_file():
        config["signer_map_file"] = str(ca_cert.parent / "signers.yaml")
    return config


def make_unit_certs(certs: DevCerts, organ_ids: list[str], directory: str | Path, *,
                    name: str = "Đơn vị {organ_id} (dev)") -> dict[str, AgencyCert]:
    """A certificate for each of a hub's units, issued by the dev CA of ``certs`` (CN = the
    unit's OrganId, so that a signer mapping with ``organ_id_in_subject: CN`` binds them all),
    each as a .p12 with its password file. Returns them by OrganId."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = serialization.load_pem_private_key(certs.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(certs.ca_cert.read_bytes())
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    made = {}
    for organ_id in organ_ids:
        made[organ_id] = _issue(directory, organ_id.replace(".", "-"), organ_id,
                                name.format(organ_id=organ_id), ca_key, ca_cert, now)
    return made


def subject_signer_map(certs: DevCerts, path: str | Path) -> Path:
    """The dev signer mapping plus ``organ_id_in_subject: CN``: every dev certificate signs for
    the OrganId in its CN (the hub's units), the two dev agencies by fingerprint as before."""
    path = Path(path)
    text = certs.signer_map.read_text(encoding="utf-8")
    path.write_text(text.replace("signers:", "organ_id_in_subject: CN\nsigners:", 1),
                    encoding="utf-8")
    return path
