"""Keys that live in a PKCS#11 token (a USB token or an HSM): the key never leaves the device.

Vietnamese agencies sign with keys the Government Cipher Committee issues on tokens; the token
performs the RSA operation and hands back the signature. :class:`TokenKey` is the private key
object the package signer uses for such a key: it has the same ``sign(data, padding,
algorithm)`` as a key read from a file (``cryptography``'s RSA key), so signxml and our streaming
writer sign through it without knowing where the key lives (:mod:`connector.edxml.keys` names
that small interface, :class:`~connector.edxml.keys.PrivateKeyLike`).

Decisions:
- One session per key, opened at first use and reused, behind a lock: a token serves one
  operation at a time, and opening a session (with its login) costs more than a signature.
- A token that stops answering (unplugged, HSM unreachable) raises
  :class:`~connector.errors.SignerUnavailable`; the next signature tries again — once more after
  re-initialising the module, which is what SoftHSM2 and most modules need to see a token that
  came back. The documents wait in the journal meanwhile.
- A refused PIN raises :class:`~connector.errors.TokenPinRefused` and is remembered: the key
  never presents that PIN again (a real token locks after a few wrong tries), until the
  configuration is reloaded and a new key object is built.
- The binding is python-pkcs11 (maintained, typed exceptions for every PKCS#11 return value);
  it is imported only when a token is configured or listed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding as rsa_padding
from cryptography.hazmat.primitives.asymmetric import rsa

from connector.errors import (
    CertificateError,
    ConnectorError,
    SignerUnavailable,
    SigningError,
    TokenPinRefused,
)

_LIBRARIES: dict[str, Any] = {}
_LIBRARIES_LOCK = threading.Lock()

PIN_ERRORS = ("PinIncorrect", "PinInvalid", "PinLocked", "PinExpired", "PinLenRange")
"""python-pkcs11's exceptions for a PIN the token refuses (never to be presented again)."""


@dataclass(frozen=True)
class TokenKeySpec:
    """Where a key is: the module (the vendor's ``.so``), the token (label or serial), the key
    (label or hex id), and the PIN. ``describe()`` names it for messages, without the PIN."""

    module: Path
    token_label: str | None = None
    token_serial: str | None = None
    key_label: str | None = None
    key_id: str | None = None
    pin: str = ""

    def describe(self) -> str:
        token = (f"token {self.token_label!r}" if self.token_label
                 else f"token with serial {self.token_serial}")
        key = f"key {self.key_label!r}" if self.key_label else f"key id {self.key_id}"
        return f"{key} on {token} (module {self.module})"


def library(module: str | Path):
    """The loaded PKCS#11 module at ``module`` (loaded once per process: a module may be
    initialised only once)."""
    path = str(module)
    with _LIBRARIES_LOCK:
        if path not in _LIBRARIES:
            if not Path(path).is_file():
                raise CertificateError("no PKCS#11 module at this path", file=path,
                                       hint="give the vendor's .so (for SoftHSM2: "
                                            "/usr/lib/softhsm/libsofthsm2.so)")
            import pkcs11  # the binding is needed only where a token is used

            try:
                _LIBRARIES[path] = pkcs11.lib(path)
            except Exception as error:  # a .so that is not a PKCS#11 module, or fails to start
                raise CertificateError(f"cannot load the PKCS#11 module: {_name(error)}",
                                       file=path, hint="check the module path and its "
                                                       "configuration (SOFTHSM2_CONF for SoftHSM2)"
                                       ) from error
        return _LIBRARIES[path]


class TokenKey:
    """A private RSA key inside a token, with the ``sign`` of a key read from a file.

    Thread-safe. ``certificate`` is the certificate issued for the key (read from the token or a
    file by :func:`open_token_key`); the public half comes from it."""

    def __init__(self, spec: TokenKeySpec, certificate: x509.Certificate) -> None:
        self.spec = spec
        self.certificate = certificate
        self._lock = threading.Lock()
        self._session: Any = None
        self._key: Any = None
        self._refused: TokenPinRefused | None = None

    # -- what cryptography's RSA key offers, as far as signing needs it ---------------------------
    @property
    def key_size(self) -> int:
        return self.public_key().key_size

    def public_key(self) -> rsa.RSAPublicKey:
        public = self.certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey)  # open_token_key refuses other keys
        return public

    def sign(self, data: bytes, padding: rsa_padding.AsymmetricPadding,
             algorithm: hashes.HashAlgorithm) -> bytes:
        """PKCS#1 v1.5 signature of ``data`` with ``algorithm``, made by the token."""
        mechanism = _mechanism(padding, algorithm)
        with self._lock:
            if self._refused is not None:
                raise self._refused
            try:
                try:
                    return self._sign_once(data, mechanism)
                except TokenPinRefused:
                    raise
                except SignerUnavailable:
                    # The session or the token went away: start again from the module, once.
                    _reinitialize(self.spec.module)
                    return self._sign_once(data, mechanism)
            except TokenPinRefused as refused:
                self._refused = refused
                raise

    def _sign_once(self, data: bytes, mechanism: Any) -> bytes:
        try:
            return bytes(self._signing_key().sign(data, mechanism=mechanism))
        except ConnectorError:
            self._drop()
            raise
        except Exception as error:
            self._drop()
            if _is_pin_error(error):
                raise pin_refused(self.spec, error) from error
            raise SignerUnavailable(f"the token does not answer ({_name(error)}): "
                                    f"{self.spec.describe()}",
                                    hint="plug the token in (or reach the HSM); signing resumes "
                                         "by itself") from error

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- the session -------------------------------------------------------------------------------
    def _signing_key(self):
        if self._key is None:
            session = open_session(self.spec)
            try:
                self._key = find_private_key(session, self.spec)
            except BaseException:
                _close_quietly(session)
                raise
            self._session = session
        return self._key

    def _drop(self) -> None:
        if self._session is not None:
            _close_quietly(self._session)
        self._session = None
        self._key = None


def open_session(spec: TokenKeySpec):
    """A logged-in session on the token ``spec`` names. Raises SignerUnavailable when the token
    is absent, TokenPinRefused when it refuses the PIN."""
    token = find_token(spec)
    try:
        return token.open(user_pin=spec.pin)
    except Exception as error:
        if _is_pin_error(error):
            raise pin_refused(spec, error) from error
        raise SignerUnavailable(f"cannot open a session ({_name(error)}): {spec.describe()}",
                                hint="check that the token is plugged in and not in use "
                                     "by another program") from error


def find_token(spec: TokenKeySpec):
    """The token ``spec`` names. A module sees a token plugged in (or created) after it was
    initialised only once it is initialised again: not found at first, it looks once more."""
    lib = library(spec.module)
    try:
        return _get_token(lib, spec)
    except CertificateError:
        raise
    except Exception:
        _reinitialize(spec.module)
    try:
        return _get_token(lib, spec)
    except CertificateError:
        raise
    except Exception as error:
        raise SignerUnavailable(f"the token is not present ({_name(error)}): {spec.describe()}",
                                hint="plug the token in (signing resumes by itself); "
                                     f"`edxml-connector token list --module {spec.module}` shows "
                                     "the tokens the module sees") from error


def _get_token(lib: Any, spec: TokenKeySpec):
    try:
        if spec.token_label:
            return lib.get_token(token_label=spec.token_label)
        return lib.get_token(token_serial=(spec.token_serial or "").encode("ascii"))
    except Exception as error:
        if type(error).__name__ == "MultipleTokensReturned":
            raise CertificateError(f"more than one token matches: {spec.describe()}",
                                   element="certificate.token",
                                   hint="name the token by its serial (token_serial)") from error
        raise


def find_private_key(session: Any, spec: TokenKeySpec):
    from pkcs11 import ObjectClass

    try:
        if spec.key_label:
            return session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=spec.key_label)
        return session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=bytes.fromhex(spec.key_id or ""))
    except Exception as error:
        if type(error).__name__ in ("NoSuchKey", "MultipleObjectsReturned"):
            what = "no" if type(error).__name__ == "NoSuchKey" else "more than one"
            raise CertificateError(f"{what} private key matches: {spec.describe()}",
                                   element="certificate.token",
                                   hint="`edxml-connector token list --module PATH --pin-file F` "
                                        "shows the keys; give key_label or key_id") from error
        raise


def token_certificate(session: Any, spec: TokenKeySpec) -> x509.Certificate:
    """The certificate stored on the token beside the key (same id, else same label)."""
    from pkcs11 import Attribute, ObjectClass

    key = find_private_key(session, spec)
    for attribute, value in ((Attribute.ID, key.id), (Attribute.LABEL, key.label)):
        if not value:
            continue
        for found in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, attribute: value}):
            return x509.load_der_x509_certificate(bytes(found[Attribute.VALUE]))
    raise CertificateError(f"the token holds no certificate for the {spec.describe()}",
                           element="certificate.cert_file",
                           hint="store the certificate on the token with the key's id, or give "
                                "it as certificate.cert_file")


def open_token_key(spec: TokenKeySpec, cert_file: Path | None
                   ) -> tuple[TokenKey, tuple[x509.Certificate, ...]]:
    """The key ``spec`` names, with its certificate (and the chain after it) from ``cert_file``
    or else from the token. Checks that the certificate is the key's by signing a probe and
    verifying it: a wrong pairing is refused at load, not by every receiver."""
    session = open_session(spec)
    try:
        chain: tuple[x509.Certificate, ...] = ()
        if cert_file is None:
            certificate = token_certificate(session, spec)
        else:
            certificate, *rest = _read_certificates(cert_file)
            chain = tuple(rest)
        private = find_private_key(session, spec)
        public = certificate.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise CertificateError("only RSA keys are supported (QCVN 102 signatures are RSA)",
                                   element="certificate.token", hint="use the RSA key on the token")
        probe = b"edxml-connector: does this certificate belong to this key?"
        from pkcs11 import Mechanism

        signature = bytes(private.sign(probe, mechanism=Mechanism.SHA256_RSA_PKCS))
        try:
            public.verify(signature, probe, rsa_padding.PKCS1v15(), hashes.SHA256())
        except Exception as error:
            raise CertificateError(f"the certificate {certificate.subject.rfc4514_string()} does "
                                   f"not belong to the {spec.describe()}",
                                   file=str(cert_file) if cert_file else None,
                                   hint="give the certificate issued for this key") from error
    except Exception as error:
        if _is_pin_error(error):
            raise pin_refused(spec, error) from error
        if isinstance(error, (CertificateError, SigningError)):
            raise
        raise SignerUnavailable(f"the token does not answer ({_name(error)}): {spec.describe()}",
                                hint="check the token, then reload") from error
    finally:
        _close_quietly(session)
    return TokenKey(spec, certificate), chain


def pin_refused(spec: TokenKeySpec, error: Exception) -> TokenPinRefused:
    return TokenPinRefused(f"the token refused the PIN ({_name(error)}): {spec.describe()}; it is "
                           "not tried again", element="certificate.token.pin",
                           hint="put the right PIN in the PIN file or variable, then reload "
                                "(systemctl reload edxml-connector)")


# -- listing, for `edxml-connector token list` ----------------------------------------------------
@dataclass(frozen=True)
class TokenObject:
    kind: str  # private key, public key, certificate
    label: str
    id_hex: str
    detail: str = ""


@dataclass(frozen=True)
class TokenListing:
    slot: int
    label: str
    serial: str
    manufacturer: str
    model: str
    objects: tuple[TokenObject, ...]
    note: str = ""


def list_tokens(module: str | Path, pin: str | None = None,
                token_label: str | None = None) -> list[TokenListing]:
    """Every token the module sees, with the objects visible without logging in (public keys,
    certificates) — and, with ``pin``, the private keys of ``token_label`` (or of every token)."""
    from pkcs11 import Attribute, ObjectClass

    lib = library(module)
    listings = []
    for slot in lib.get_slots(token_present=True):
        try:
            token = slot.get_token()
        except Exception as error:
            listings.append(TokenListing(slot.slot_id, "?", "?", "?", "?", (),
                                         note=f"cannot read the token ({_name(error)})"))
            continue
        if not token.flags & _token_initialized():
            continue
        objects: list[TokenObject] = []
        note = ""
        login = pin is not None and (token_label is None or token.label == token_label)
        try:
            with token.open(user_pin=pin if login else None) as session:
                for object_class, kind in ((ObjectClass.PRIVATE_KEY, "private key"),
                                           (ObjectClass.PUBLIC_KEY, "public key"),
                                           (ObjectClass.CERTIFICATE, "certificate")):
                    for found in session.get_objects({Attribute.CLASS: object_class}):
                        objects.append(_describe_object(found, kind))
        except Exception as error:
            note = ("the token refused the PIN" if _is_pin_error(error)
                    else f"cannot list the objects ({_name(error)})")
        if not login:
            note = note or "private keys are shown with --pin-file or --pin-env"
        listings.append(TokenListing(slot.slot_id, token.label,
                                     bytes(token.serial).decode("ascii", "replace").strip(),
                                     token.manufacturer_id.strip(), token.model.strip(),
                                     tuple(objects), note))
    return listings


def _describe_object(found: Any, kind: str) -> TokenObject:
    from pkcs11 import Attribute

    label = str(found[Attribute.LABEL] or "")
    id_hex = bytes(found[Attribute.ID] or b"").hex()
    detail = ""
    if kind == "certificate":
        try:
            certificate = x509.load_der_x509_certificate(bytes(found[Attribute.VALUE]))
            detail = (f"{certificate.subject.rfc4514_string()}, valid "
                      f"{certificate.not_valid_before_utc:%Y-%m-%d} to "
                      f"{certificate.not_valid_after_utc:%Y-%m-%d}")
        except Exception:
            detail = "not a readable X.509 certificate"
    elif kind == "private key":
        try:
            detail = f"RSA {found.key_length} bits" if found.key_type.name == "RSA" else found.key_type.name
        except Exception:
            detail = ""
    return TokenObject(kind, label, id_hex, detail)


# -- helpers ----------------------------------------------------------------------------------
def _mechanism(padding: rsa_padding.AsymmetricPadding, algorithm: hashes.HashAlgorithm):
    from pkcs11 import Mechanism

    if not isinstance(padding, rsa_padding.PKCS1v15):
        raise SigningError(f"a token key signs with PKCS#1 v1.5 only, not {padding.name}")
    mechanisms = {"sha256": Mechanism.SHA256_RSA_PKCS, "sha1": Mechanism.SHA1_RSA_PKCS}
    if algorithm.name not in mechanisms:
        raise SigningError(f"a token key signs with SHA-256 or SHA-1, not {algorithm.name}")
    return mechanisms[algorithm.name]


def _reinitialize(module: Path) -> None:
    """Finalize and initialise the module again, so that it looks for its tokens afresh."""
    with _LIBRARIES_LOCK:
        lib = _LIBRARIES.get(str(module))
    if lib is not None:
        try:
            lib.reinitialize()
        except Exception:
            pass  # the next call says what is wrong


def _token_initialized() -> int:
    from pkcs11 import TokenFlag

    return int(TokenFlag.TOKEN_INITIALIZED)


def _is_pin_error(error: BaseException) -> bool:
    return type(error).__name__ in PIN_ERRORS


def _name(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _close_quietly(session: Any) -> None:
    try:
        session.close()
    except Exception:
        pass


def _read_certificates(path: Path) -> list[x509.Certificate]:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CertificateError(f"cannot read the certificate: {error.strerror}", file=str(path),
                               hint="check the path and its permissions") from error
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as error:
        raise CertificateError("not a readable certificate (PEM or DER)", file=str(path),
                               hint="give the certificate issued for the token's key") from error
