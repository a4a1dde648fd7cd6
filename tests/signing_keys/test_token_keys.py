"""Keys in a PKCS#11 token, for real against SoftHSM2: packages signed by the token verify with
xmlsec1 and verify_package; a wrong PIN is presented once and never again until a reload; an
absent token, a token unplugged and plugged back, a wrong key label and a certificate of
another key each get their own clear outcome; one key serves many threads."""

from __future__ import annotations

import dataclasses
import subprocess
import threading

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from connector.edxml.keys import SigningKey
from connector.edxml.signing import SignatureState, sign_package, verify_package
from connector.edxml.tokens import TokenKeySpec
from connector.edxml.writer import prepare_package, write_package, write_package_to
from connector.errors import CertificateError, SignerUnavailable, TokenPinRefused

pytestmark = pytest.mark.usefixtures("softhsm")


def spec_of(token, **changes) -> TokenKeySpec:
    return dataclasses.replace(TokenKeySpec(module=token.module, token_label=token.label,
                                            key_label="signing", pin=token.pin), **changes)


def document():
    from edxml_write_helpers import make_document  # the writer tests' realistic document

    return prepare_package(make_document())


@pytest.fixture(autouse=True)
def _writer_helpers_on_path(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "edxml_write"))


def xmlsec_verify(xmlsec1, ca, path) -> subprocess.CompletedProcess:
    return subprocess.run([xmlsec1, "--verify", "--trusted-pem", str(ca), str(path)],
                          capture_output=True, text=True, timeout=60)


def test_a_package_signed_in_the_token_verifies_with_xmlsec1_both_ways(make_token, dev_certs,
                                                                        xmlsec1, tmp_path):
    token, certificate = make_token()
    key = SigningKey.from_token(spec_of(token))  # the certificate comes from the token
    assert key.certificate == certificate and "token" in key.source
    in_memory = tmp_path / "memory.edxml"
    in_memory.write_bytes(sign_package(write_package(document()), key))
    streamed = tmp_path / "streamed.edxml"
    write_package_to(document(), streamed, signer=key)
    for path in (in_memory, streamed):
        result = xmlsec_verify(xmlsec1, dev_certs.ca_cert, path)
        assert result.returncode == 0, result.stderr
        verdict = verify_package(path.read_bytes(), trust=dev_certs.ca_cert)
        assert verdict.state is SignatureState.VALID, verdict.reason
    key.close()


def test_the_certificate_may_come_from_a_file_and_must_be_the_keys(make_token, dev_certs, tmp_path):
    token, certificate = make_token(store_certificate=False)
    with pytest.raises(CertificateError, match="holds no certificate"):
        SigningKey.from_token(spec_of(token))
    from cryptography.hazmat.primitives.serialization import Encoding

    ours = tmp_path / "ours.pem"
    ours.write_bytes(certificate.public_bytes(Encoding.PEM) + dev_certs.ca_cert.read_bytes())
    key = SigningKey.from_token(spec_of(token), ours)
    assert key.certificate == certificate and len(key.chain) == 1  # the CA after it
    # A hostile (or careless) swap: agency B's certificate beside agency A's token key.
    with pytest.raises(CertificateError, match="does not belong to the key 'signing'") as refused:
        SigningKey.from_token(spec_of(token), dev_certs.agency_b.cert)
    assert refused.value.file == str(dev_certs.agency_b.cert)
    key.close()


def test_a_wrong_pin_is_refused_once_and_never_presented_again(make_token):
    token, certificate = make_token()
    with pytest.raises(TokenPinRefused, match="refused the PIN") as refused:
        SigningKey.from_token(spec_of(token, pin="0000"))
    assert "0000" not in refused.value.one_line() and "reload" in refused.value.one_line()

    # A key whose session was opened with the right PIN, then asked to log in again with a
    # wrong one (the PIN file changed, the token was replugged): refused once, remembered.
    key = SigningKey.from_token(spec_of(token))
    token_key = key.private_key
    token_key.spec = spec_of(token, pin="0000")
    token_key.close()  # the next signature must log in again
    with pytest.raises(TokenPinRefused):
        key.private_key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    token_key.spec = spec_of(token)  # even with the right PIN now, nothing is tried
    with pytest.raises(TokenPinRefused):
        key.private_key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    assert token_key._session is None  # no session was opened for that second signature
    # A reload builds a new key: the corrected PIN is tried, once.
    fresh = SigningKey.from_token(spec_of(token))
    assert fresh.private_key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    fresh.close()


def test_an_absent_token_and_a_wrong_key_label_say_what_to_do(make_token):
    token, _ = make_token()
    with pytest.raises(SignerUnavailable, match="token 'no-such-token'") as absent:
        SigningKey.from_token(spec_of(token, token_label="no-such-token"))
    assert absent.value.reason == "token-absent" and "token list" in absent.value.one_line()
    with pytest.raises(CertificateError, match="no private key matches: key 'nope'") as wrong:
        SigningKey.from_token(spec_of(token, key_label="nope"))
    assert not isinstance(wrong.value, SignerUnavailable)  # a settings mistake, not a pause
    by_id = SigningKey.from_token(spec_of(token, key_label=None, key_id="01",
                                          token_label=None, token_serial=_serial(token)))
    assert by_id.private_key.sign(b"x", padding.PKCS1v15(), hashes.SHA256())
    by_id.close()


def test_a_token_unplugged_pauses_signing_and_plugged_back_resumes_it(make_token, dev_certs):
    token, _ = make_token()
    key = SigningKey.from_token(spec_of(token))
    public = key.certificate.public_key()
    signature = key.private_key.sign(b"one", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"one", padding.PKCS1v15(), hashes.SHA256())
    token.unplug()
    try:
        with pytest.raises(SignerUnavailable, match="token") as unplugged:
            key.private_key.sign(b"two", padding.PKCS1v15(), hashes.SHA256())
        assert unplugged.value.reason == "token-absent" and "resumes by itself" in unplugged.value.one_line()
        with pytest.raises(SignerUnavailable):  # still absent: tried again, still refused
            key.private_key.sign(b"two", padding.PKCS1v15(), hashes.SHA256())
    finally:
        token.plug_in()
    signature = key.private_key.sign(b"three", padding.PKCS1v15(), hashes.SHA256())
    public.verify(signature, b"three", padding.PKCS1v15(), hashes.SHA256())
    key.close()


def test_one_token_key_serves_many_threads(make_token):
    token, _ = make_token()
    key = SigningKey.from_token(spec_of(token))
    public = key.certificate.public_key()
    failures: list[BaseException] = []

    def sign_many(number: int) -> None:
        try:
            for index in range(10):
                data = f"{number}-{index}".encode()
                signature = key.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
                public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except BaseException as error:  # collected, asserted below
            failures.append(error)

    threads = [threading.Thread(target=sign_many, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    key.close()


def test_only_pkcs1_v15_with_sha256_or_sha1(make_token):
    from connector.errors import SigningError

    token, _ = make_token()
    key = SigningKey.from_token(spec_of(token))
    assert key.private_key.sign(b"x", padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(SigningError, match="SHA-256 or SHA-1"):
        key.private_key.sign(b"x", padding.PKCS1v15(), hashes.SHA512())
    with pytest.raises(SigningError, match="PKCS#1 v1.5"):
        key.private_key.sign(b"x", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    key.close()


def _serial(token) -> str:
    from connector.edxml.tokens import library

    return library(token.module).get_token(token_label=token.label).serial.decode().strip()
