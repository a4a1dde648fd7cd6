"""Keys and dev certificates: PEM and PKCS#12 (incl. one made by openssl), passwords, validity."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from connector.devtools.devcerts import make_dev_certs
from connector.edxml.keys import SigningKey, read_password
from connector.errors import CertificateError


def test_dev_certs_files_and_permissions(dev_certs):
    for path in dev_certs.files():
        assert path.is_file(), path
    for secret in (dev_certs.ca_key, dev_certs.agency_a.key, dev_certs.agency_a.p12,
                   dev_certs.agency_a.password_file, dev_certs.agency_b.key, dev_certs.expired_key):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    b = SigningKey.from_pem(dev_certs.agency_b.key, dev_certs.agency_b.cert)
    assert "CN=000.00.00.H41" in b.subject
    assert b.private_key.key_size == 2048


def test_pem_and_pkcs12_give_the_same_key(dev_certs):
    pem = SigningKey.from_pem(dev_certs.agency_a.key, dev_certs.agency_a.cert)
    p12 = SigningKey.from_pkcs12(dev_certs.agency_a.p12, read_password(dev_certs.agency_a.password_file))
    assert pem.certificate == p12.certificate
    assert len(p12.chain) == 1 and p12.chain[0].subject.rfc4514_string().endswith("dev CA")
    assert 700 <= pem.days_left <= 730


def test_wrong_pkcs12_password_names_the_file(dev_certs):
    with pytest.raises(CertificateError) as error:
        SigningKey.from_pkcs12(dev_certs.agency_a.p12, b"not-the-password")
    assert str(dev_certs.agency_a.p12) in error.value.one_line()
    assert "not-the-password" not in error.value.one_line()
    assert error.value.exit_code == 2


def test_expired_certificate_is_refused_with_its_dates(dev_certs):
    with pytest.raises(CertificateError) as error:
        SigningKey.from_pem(dev_certs.expired_key, dev_certs.expired_cert)
    message = error.value.one_line()
    expected = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=35)).strftime("%Y-%m-%d")
    assert "expired on" in message and expected in message and "valid from" in message


def test_not_yet_valid_is_refused(dev_certs):
    with pytest.raises(CertificateError, match="not valid before"):
        SigningKey.from_pem(dev_certs.agency_a.key, dev_certs.agency_a.cert,
                            at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30))


def test_key_not_matching_certificate_is_refused(dev_certs):
    with pytest.raises(CertificateError, match="no certificate in the file matches"):
        SigningKey.from_pem(dev_certs.agency_a.key, dev_certs.agency_b.cert)


def test_encrypted_pem_key_needs_its_password(dev_certs, tmp_path):
    key = SigningKey.from_pem(dev_certs.agency_a.key, dev_certs.agency_a.cert).private_key
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"s3cret")))
    assert SigningKey.from_pem(encrypted, dev_certs.agency_a.cert, "s3cret").certificate is not None
    with pytest.raises(CertificateError, match="encrypted"):
        SigningKey.from_pem(encrypted, dev_certs.agency_a.cert)
    with pytest.raises(CertificateError, match="wrong password") as error:
        SigningKey.from_pem(encrypted, dev_certs.agency_a.cert, "wrong")
    assert str(encrypted) in error.value.one_line()


# OpenSSL 3's defaults (AES-256 + PBKDF2), and the SHA-1/3DES form older CA tools and Windows
# exports still produce.
@pytest.mark.parametrize("encryption", [[], ["-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES",
                                             "-macalg", "sha1"]], ids=["openssl3-default", "sha1-3des"])
def test_pkcs12_made_by_openssl_loads(dev_certs, tmp_path, encryption):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command not installed")
    bundle = tmp_path / "agency.pfx"
    subprocess.run([openssl, "pkcs12", "-export", "-inkey", str(dev_certs.agency_a.key),
                    "-in", str(dev_certs.agency_a.cert), "-certfile", str(dev_certs.ca_cert),
                    "-name", "agency", "-out", str(bundle), "-passout", "pass:Mật-khẩu-1",
                    *encryption],
                   check=True, capture_output=True, timeout=60)
    key = SigningKey.from_pkcs12(bundle, "Mật-khẩu-1")
    assert "000.00.00.G22" in key.subject and len(key.chain) == 1
    with pytest.raises(CertificateError):
        SigningKey.from_pkcs12(bundle, "wrong")


def test_read_password_from_file_then_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("EDXML_KEY_PASSWORD", raising=False)
    assert read_password() is None
    monkeypatch.setenv("EDXML_KEY_PASSWORD", "from-env")
    assert read_password() == b"from-env"
    path = tmp_path / "pw"
    path.write_text("from-file\n")
    assert read_password(path) == b"from-file"
    with pytest.raises(CertificateError, match="password file"):
        read_password(tmp_path / "missing")


def test_make_dev_certs_overwrites(tmp_path):
    first = make_dev_certs(tmp_path)
    before = first.ca_cert.read_bytes()
    second = make_dev_certs(tmp_path)
    assert second.ca_cert.read_bytes() != before
    assert SigningKey.from_pkcs12(second.agency_b.p12, read_password(second.agency_b.password_file))
