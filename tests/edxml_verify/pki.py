"""A small PKI made in the tests: CAs with the shapes a hostile sender would try, signers, CRLs,
OCSP answers, and a loopback HTTP server that serves them (a real server, as an agency's CA
would run)."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from connector.edxml.keys import SigningKey

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
_KEYS: list[rsa.RSAPrivateKey] = []


def new_key(*, unlike: rsa.RSAPrivateKey | None = None) -> rsa.RSAPrivateKey:
    """Fresh RSA keys are slow to make: the tests share a few (each certificate still differs).
    ``unlike``: a key this one must not be — the issuer's, for a certificate or a forgery whose
    point is another key (the pool comes round again after six keys, whatever the test order)."""
    while True:
        if len(_KEYS) < 6:
            _KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        else:
            _KEYS.append(_KEYS.pop(0))
        if unlike is None or _KEYS[-1] is not unlike:
            return _KEYS[-1]


def usage(**granted: bool) -> x509.KeyUsage:
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{name: granted.get(name, False) for name in names})


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{cn} (test)"),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")])


@dataclass
class Authority:
    name: str
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    chain: list[x509.Certificate] = field(default_factory=list)  # itself and the CAs above it, root excluded

    @classmethod
    def root(cls, name: str = "Test Root CA", *, path_length: int | None = None) -> Authority:
        key = new_key()
        builder = _builder(_name(name), _name(name), key, key,
                           NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=3650))
        builder = (builder
                   .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
                   .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True))
        return cls(name, key, builder.sign(key, hashes.SHA256()))

    def issue_ca(self, name: str, *, ca: bool = True, key_usage: x509.KeyUsage | None = None) -> Authority:
        key = new_key(unlike=self.key)
        builder = _builder(_name(name), self.cert.subject, key, self.key,
                           NOW - dt.timedelta(days=20), NOW + dt.timedelta(days=1000))
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        builder = builder.add_extension(key_usage or usage(key_cert_sign=True, crl_sign=True), critical=True)
        cert = builder.sign(self.key, hashes.SHA256())
        return Authority(name, key, cert, [cert, *self.chain])

    def issue_signer(self, cn: str = "000.00.00.G22", *, key_usage: x509.KeyUsage | None = None,
                     ca: bool = False, crl_url: str | None = None, ocsp_url: str | None = None,
                     not_before: dt.datetime | None = None,
                     not_after: dt.datetime | None = None) -> SigningKey:
        key = new_key(unlike=self.key)
        builder = _builder(_name(cn), self.cert.subject, key, self.key,
                           not_before or NOW - dt.timedelta(days=10),
                           not_after or NOW + dt.timedelta(days=365))
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        builder = builder.add_extension(key_usage or usage(digital_signature=True, content_commitment=True),
                                        critical=True)
        if crl_url:
            builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(crl_url)], None, None, None)]), critical=False)
        if ocsp_url:
            responder = x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                               x509.UniformResourceIdentifier(ocsp_url))
            builder = builder.add_extension(x509.AuthorityInformationAccess([responder]),
                                            critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return SigningKey(private_key=key, certificate=cert, chain=tuple(self.chain), source=f"{cn}.p12")

    def crl(self, revoked: list[tuple[x509.Certificate, dt.datetime]] = (), *,
            last_update: dt.datetime | None = None, next_update: dt.datetime | None = None,
            signed_by: rsa.RSAPrivateKey | None = None) -> bytes:
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(last_update or NOW - dt.timedelta(hours=1))
                   .next_update(next_update or NOW + dt.timedelta(days=7)))
        for cert, when in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(when).build())
        return builder.sign(signed_by or self.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp_answer(self, cert: x509.Certificate, status: ocsp.OCSPCertStatus, *,
                    revoked_at: dt.datetime | None = None, responder: Authority | None = None,
                    responder_cert: x509.Certificate | None = None) -> bytes:
        signer_key = responder.key if responder else self.key
        signer_cert = responder_cert or (responder.cert if responder else self.cert)
        builder = ocsp.OCSPResponseBuilder().add_response(
            cert=cert, issuer=self.cert, algorithm=hashes.SHA1(), cert_status=status,
            this_update=NOW - dt.timedelta(minutes=5), next_update=NOW + dt.timedelta(hours=4),
            revocation_time=revoked_at, revocation_reason=None if status is not ocsp.OCSPCertStatus.REVOKED
            else x509.ReasonFlags.key_compromise).responder_id(ocsp.OCSPResponderEncoding.HASH, signer_cert)
        if responder_cert is not None:
            builder = builder.certificates([responder_cert])
        return builder.sign(signer_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp_responder_cert(self, *, eku: bool = True) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        key = new_key(unlike=self.key)
        builder = _builder(_name(f"{self.name} OCSP"), self.cert.subject, key, self.key,
                           NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=30))
        builder = builder.add_extension(usage(digital_signature=True), critical=True)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]),
                                            critical=False)
        return key, builder.sign(self.key, hashes.SHA256())

    def pem(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path


def _builder(subject, issuer, key, issuer_key, not_before, not_after) -> x509.CertificateBuilder:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if subject != issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    return builder


class RevocationServer:
    """A loopback HTTP server: GET /ca.crl serves :attr:`crl`, POST /ocsp answers :attr:`ocsp`
    (bytes, or a callable of the request's DER); counts the requests it gets."""

    def __init__(self) -> None:
        self.crl: bytes | None = None
        self.ocsp: bytes | None = None
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bytes | None, content_type: str) -> None:
                server.requests.append(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._answer(server.crl if self.path == "/ca.crl" else None, "application/pkix-crl")

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(server.ocsp if self.path == "/ocsp" else None, "application/ocsp-response")

            def log_message(self, *args) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
