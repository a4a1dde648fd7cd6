"""A SoftHSM2 token with an agency key in it, for trying the token settings, tests and benches.

SoftHSM2 is a PKCS#11 module that keeps its tokens in a folder (``directories.tokendir`` of the
file ``SOFTHSM2_CONF`` names). :func:`make_dev_token` writes such a config, initialises a token,
has the token generate an RSA key (it never leaves the token, as on a real one) and stores
beside it a certificate issued by the dev CA (:mod:`connector.devtools.devcerts`). A real token
arrives with its key and certificate from the Government Cipher Committee; nothing here is for
production.

Unplugging is imitated by moving the token's folder away (:meth:`DevToken.unplug`) and back.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connector.devtools.devcerts import _agency_cert
from connector.edxml.tokens import library

SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so",
                   "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/local/lib/softhsm/libsofthsm2.so")
SO_PIN = "so-pin-0000"


def softhsm_module() -> Path | None:
    """The SoftHSM2 module installed here (Debian package ``softhsm2``), or None."""
    for candidate in SOFTHSM_MODULES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def softhsm_config(directory: str | Path) -> Path:
    """A SoftHSM2 config keeping its tokens in ``directory/tokens``; returns its path (what
    ``SOFTHSM2_CONF`` must name before the module is first loaded)."""
    root = Path(directory)
    (root / "tokens").mkdir(parents=True, exist_ok=True)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n", encoding="utf-8")
    return conf


@dataclass(frozen=True)
class DevToken:
    module: Path
    conf: Path
    label: str
    pin: str
    folder: Path  # where SoftHSM2 keeps this token

    @property
    def _unplugged(self) -> Path:
        # Outside the token folder: SoftHSM2 takes every folder in it for a token.
        return self.conf.parent / "unplugged" / self.folder.name

    def unplug(self) -> None:
        self._unplugged.parent.mkdir(exist_ok=True)
        shutil.move(str(self.folder), str(self._unplugged))

    def plug_in(self) -> None:
        shutil.move(str(self._unplugged), str(self.folder))


def init_token(conf: Path, label: str, pin: str, module: Path | None = None) -> DevToken:
    """Initialise a new token ``label`` with user PIN ``pin`` in the SoftHSM2 of ``conf``."""
    module = module or softhsm_module()
    if module is None:
        raise RuntimeError("SoftHSM2 is not installed (apt-get install softhsm2)")
    tokens = Path(_tokendir(conf))
    before = set(tokens.iterdir())
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN,
                    "--pin", pin], check=True, capture_output=True,
                   env={**os.environ, "SOFTHSM2_CONF": str(conf)})
    [folder] = set(tokens.iterdir()) - before
    return DevToken(module, conf, label, pin, folder)


def put_agency_key(token: DevToken, *, key_label: str, key_id: bytes, ca_cert: Path, ca_key: Path,
                   organ_id: str, name: str = "Dev agency", not_before: dt.datetime | None = None,
                   not_after: dt.datetime | None = None, store_certificate: bool = True
                   ) -> x509.Certificate:
    """Have the token generate an RSA-2048 key, issue its certificate with the dev CA, and
    store the certificate on the token under the key's id and label (unless told not to)."""
    from pkcs11 import Attribute, CertificateType, KeyType, ObjectClass

    lib = library(token.module)
    lib.reinitialize()  # a token made by softhsm2-util after the module was loaded
    with lib.get_token(token_label=token.label).open(user_pin=token.pin, rw=True) as session:
        public, _private = session.generate_keypair(KeyType.RSA, 2048, label=key_label, id=key_id,
                                                    store=True)
        numbers = rsa.RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                                       int.from_bytes(public[Attribute.MODULUS], "big"))
        now = dt.datetime.now(dt.timezone.utc)
        issuer_cert = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
        issuer_key = serialization.load_pem_private_key(Path(ca_key).read_bytes(), password=None)
        certificate = _agency_cert(_PublicOnly(numbers.public_key()), issuer_key, issuer_cert,
                                   organ_id, name, not_before or now - dt.timedelta(days=1),
                                   not_after or now + dt.timedelta(days=365))
        if store_certificate:
            session.create_object({
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True, Attribute.LABEL: key_label, Attribute.ID: key_id,
                Attribute.SUBJECT: certificate.subject.public_bytes(),
                Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER)})
    return certificate


class _PublicOnly:
    """What the certificate builder asks of a key: its public half."""

    def __init__(self, public: rsa.RSAPublicKey) -> None:
        self._public = public

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public


def _tokendir(conf: Path) -> str:
    for line in Path(conf).read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "directories.tokendir":
            return value.strip()
    raise RuntimeError(f"{conf} names no directories.tokendir")
