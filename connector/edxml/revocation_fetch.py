"""Fetch CRLs and OCSP answers in the background, so that verification never waits on them.

Why a thread of its own: a CA's distribution point may be slow or unreachable from a secure
server, and a package must not wait for it (docs/decisions.md: connect 3 s, total 10 s, cached
answers, 15 minutes of negative caching). :class:`RevocationChecker` asks for what it lacks
(:meth:`RevocationFetcher.request`) and answers ``unknown`` meanwhile; the next package from the
same CA finds the answer cached. A CRL is kept until a fresher one replaces it (the checker
judges freshness and asks again once it is out of date); an OCSP answer until its next update
(an hour when it names none).

Only URLs named by certificates whose chain has already validated against the trust bundle are
ever fetched (the checker runs after path validation): a hostile sender cannot make the
connector call an address of its choosing. Redirects are not followed, bodies are capped, TLS is
verified.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from typing import Any

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from connector.edxml.revocation import OcspAnswer, Revocation
from connector.logs import get_logger

log = get_logger(__name__)

CONNECT_TIMEOUT = 3.0
TOTAL_TIMEOUT = 10.0
NEGATIVE_SECONDS = 15 * 60
OCSP_DEFAULT_LIFETIME = dt.timedelta(hours=1)
MAX_BODY = 20 * 1024 * 1024
_STATES = {ocsp.OCSPCertStatus.GOOD: Revocation.GOOD, ocsp.OCSPCertStatus.REVOKED: Revocation.REVOKED,
           ocsp.OCSPCertStatus.UNKNOWN: Revocation.UNKNOWN}


class FetchError(Exception):
    """A fetch that gave nothing usable; the message is for the log."""


class RevocationFetcher:
    """The cache and the background thread that fills it (started on the first request)."""

    def __init__(self, *, session: requests.Session | None = None, negative_seconds: float = NEGATIVE_SECONDS,
                 connect_timeout: float = CONNECT_TIMEOUT, total_timeout: float = TOTAL_TIMEOUT) -> None:
        self._session = session or requests.Session()
        self._negative_seconds = negative_seconds
        self._timeouts = (connect_timeout, total_timeout)
        self._lock = threading.Lock()
        self._crls: dict[str, x509.CertificateRevocationList] = {}
        self._ocsp: dict[tuple[int, bytes], OcspAnswer] = {}
        self._failed_until: dict[str, float] = {}
        self._pending: set[str] = set()
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition(self._lock)

    # -- what the checker reads -------------------------------------------------------------------
    def cached_crls(self, urls: list[str]) -> list[x509.CertificateRevocationList]:
        with self._lock:
            return [self._crls[url] for url in urls if url in self._crls]

    def cached_ocsp(self, certificate: x509.Certificate, issuer: x509.Certificate) -> OcspAnswer | None:
        with self._lock:
            return self._ocsp.get(_ocsp_key(certificate, issuer))

    def request(self, crl_urls: list[str], ocsp_url: str | None, certificate: x509.Certificate,
                issuer: x509.Certificate) -> None:
        """Ask for these in the background, unless asked already or failed in the last 15 minutes."""
        jobs: list[tuple[str, Any]] = [(url, None) for url in crl_urls]
        if ocsp_url:
            jobs.append((ocsp_url, (certificate, issuer)))
        now = time.monotonic()
        with self._lock:
            for url, subject in jobs:
                key = _job_key(url, subject)
                if key in self._pending or self._failed_until.get(key, 0.0) > now:
                    continue
                self._pending.add(key)
                self._queue.put((url, subject))
            if self._thread is None and self._pending:
                self._thread = threading.Thread(target=self._run, name="revocation-fetch", daemon=True)
                self._thread.start()

    # -- life cycle -----------------------------------------------------------------------------
    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is pending, False after ``timeout`` seconds (for tests)."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending, timeout)

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=TOTAL_TIMEOUT + 1)
        self._session.close()

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            url, subject = job
            key = _job_key(url, subject)
            try:
                if subject is None:
                    crl = self._fetch_crl(url)
                    with self._lock:
                        self._crls[url] = crl
                    log.info("revocation_crl_fetched", url=url, next_update=_iso(crl.next_update_utc),
                             entries=len(crl))
                else:
                    answer = self._fetch_ocsp(url, *subject)
                    with self._lock:
                        self._ocsp[_ocsp_key(*subject)] = answer
                    log.info("revocation_ocsp_answered", url=url, status=answer.state.value,
                             next_update=_iso(answer.next_update))
            except (FetchError, requests.RequestException, ValueError) as error:
                with self._lock:
                    self._failed_until[key] = time.monotonic() + self._negative_seconds
                log.warning("revocation_fetch_failed", url=url, error=str(error),
                            retry_after_s=self._negative_seconds,
                            note="packages meanwhile get revocation-unknown unless trust.crl_folder answers")
            finally:
                with self._idle:
                    self._pending.discard(key)
                    self._idle.notify_all()

    def _get(self, method: str, url: str, **kwargs: Any) -> bytes:
        deadline = time.monotonic() + self._timeouts[1]
        with self._session.request(method, url, timeout=self._timeouts, allow_redirects=False, stream=True,
                                   **kwargs) as response:
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code}")
            body = bytearray()
            for piece in response.iter_content(64 * 1024):
                body += piece
                if len(body) > MAX_BODY:
                    raise FetchError(f"answer larger than {MAX_BODY // (1024 * 1024)} MB")
                if time.monotonic() > deadline:
                    raise FetchError(f"no complete answer within {self._timeouts[1]:.0f} s")
            return bytes(body)

    def _fetch_crl(self, url: str) -> x509.CertificateRevocationList:
        data = self._get("GET", url)
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)

    def _fetch_ocsp(self, url: str, certificate: x509.Certificate, issuer: x509.Certificate) -> OcspAnswer:
        request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
        data = self._get("POST", url, data=request.public_bytes(serialization.Encoding.DER),
                         headers={"Content-Type": "application/ocsp-request"})
        response = ocsp.load_der_ocsp_response(data)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise FetchError(f"OCSP responder answered {response.response_status.name}")
        _check_responder(response, issuer)
        if (response.serial_number, response.issuer_key_hash, response.issuer_name_hash) != (
                request.serial_number, request.issuer_key_hash, request.issuer_name_hash):
            raise FetchError("OCSP answer is for another certificate")
        this_update = response.this_update_utc
        next_update = response.next_update_utc or this_update + OCSP_DEFAULT_LIFETIME
        return OcspAnswer(_STATES[response.certificate_status], this_update, next_update,
                          revoked_at=response.revocation_time_utc)


def _check_responder(response: ocsp.OCSPResponse, issuer: x509.Certificate) -> None:
    """The answer must be signed by the issuer, or by a responder certificate the issuer issued
    for OCSP signing (RFC 6960 §4.2.2.2); anything else is a forged answer."""
    signer = issuer
    if not _names_responder(response, issuer):
        delegated = [c for c in response.certificates if _names_responder(response, c)]
        if not delegated:
            raise FetchError("OCSP answer signed by an unknown responder")
        signer = delegated[0]
        try:
            signer.verify_directly_issued_by(issuer)
            usage = signer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound) as error:
            raise FetchError("OCSP responder certificate not issued by the CA for OCSP signing") from error
        if ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            raise FetchError("OCSP responder certificate lacks the OCSPSigning usage")
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        else:
            raise FetchError("OCSP answer signed with an unsupported key type")
    except InvalidSignature as error:
        raise FetchError("OCSP answer's signature does not verify") from error


def _names_responder(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    if response.responder_name is not None:
        return response.responder_name == certificate.subject
    key_hash = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest
    return response.responder_key_hash == key_hash


def _ocsp_key(certificate: x509.Certificate, issuer: x509.Certificate) -> tuple[int, bytes]:
    return certificate.serial_number, issuer.fingerprint(hashes.SHA256())


def _job_key(url: str, subject: Any) -> str:
    return url if subject is None else f"{url}#{subject[0].serial_number}"


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
