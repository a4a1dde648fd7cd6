"""Certificate rollover: which key signs when (the next certificate at its moment, the newest
valid one of a folder), how long some key can still sign, a reload that takes a renewal in
between two documents, and the journal recording which certificate signed each package."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from connector.config import CertificateConfig
from connector.devtools.devcerts import AGENCY_A_ORGAN_ID, _agency_cert, _new_key
from connector.edxml.keyring import KeyRing, RingEntry, keys_in_folder
from connector.edxml.keys import SigningKey
from connector.errors import CertificateError
from connector.pipeline.outbound_build import PackageBuilder
from connector.service.runtime import load_keyring

NOW = dt.datetime.now(dt.timezone.utc)
DAY = dt.timedelta(days=1)
PASSWORD = b"rollover-pass"


def issue(dev_certs, path, *, starts: dt.timedelta, ends: dt.timedelta, name: str,
          usage_ok: bool = True):
    """A PKCS#12 file for agency A, valid from NOW+starts to NOW+ends, named ``name``."""
    ca_cert = x509.load_pem_x509_certificate(dev_certs.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(dev_certs.ca_key.read_bytes(), None)
    key = _new_key()
    certificate = _agency_cert(key, ca_key, ca_cert, AGENCY_A_ORGAN_ID, name, NOW + starts, NOW + ends)
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        name.encode(), key, certificate, None, serialization.BestAvailableEncryption(PASSWORD)))
    return certificate


def key_of(path) -> SigningKey:
    return SigningKey.from_pkcs12(path, PASSWORD, check_dates=False)


def test_the_next_certificate_signs_from_its_moment_and_extends_the_coverage(dev_certs, tmp_path):
    issue(dev_certs, tmp_path / "now.p12", starts=-300 * DAY, ends=10 * DAY, name="current")
    issue(dev_certs, tmp_path / "next.p12", starts=-1 * DAY, ends=700 * DAY, name="renewed")
    current, renewed = key_of(tmp_path / "now.p12"), key_of(tmp_path / "next.p12")
    switch = NOW + 5 * DAY
    ring = KeyRing([RingEntry(current), RingEntry(renewed, switch)])
    assert ring.active(NOW) is current  # valid already, but its moment has not come
    assert ring.active(switch) is renewed and ring.active(switch + 100 * DAY) is renewed
    assert ring.coverage_end(NOW) == renewed.not_after  # it takes over before the current ends
    assert "renewed" in ring.describe(NOW) and "then" in ring.describe(NOW)
    assert [entry.key for entry in ring.upcoming(NOW)] == [renewed]
    alone = KeyRing.single(current)
    assert alone.coverage_end(NOW) == current.not_after  # without it: 10 days left


def test_a_gap_between_the_two_stops_signing_with_the_dates(dev_certs, tmp_path):
    issue(dev_certs, tmp_path / "now.p12", starts=-300 * DAY, ends=2 * DAY, name="current")
    issue(dev_certs, tmp_path / "next.p12", starts=-1 * DAY, ends=700 * DAY, name="renewed")
    current, renewed = key_of(tmp_path / "now.p12"), key_of(tmp_path / "next.p12")
    ring = KeyRing([RingEntry(current), RingEntry(renewed, NOW + 5 * DAY)])
    assert ring.coverage_end(NOW) == current.not_after  # the next comes too late: no takeover
    with pytest.raises(CertificateError, match="expired on"):
        ring.active(NOW + 3 * DAY)  # between the two: nothing may sign, and it says why
    assert ring.active(NOW + 5 * DAY) is renewed


def test_in_a_folder_the_newest_valid_certificate_signs(dev_certs, tmp_path):
    folder = tmp_path / "certs"
    folder.mkdir()
    issue(dev_certs, folder / "2024.p12", starts=-800 * DAY, ends=-30 * DAY, name="expired")
    issue(dev_certs, folder / "2025.p12", starts=-400 * DAY, ends=20 * DAY, name="older")
    issue(dev_certs, folder / "2026.pfx", starts=-2 * DAY, ends=600 * DAY, name="newest")
    issue(dev_certs, folder / "2027.p12", starts=30 * DAY, ends=900 * DAY, name="not yet")
    (folder / "half-copied.p12").write_bytes(b"\x30\x82")  # a renewal being copied in
    keys, problems = keys_in_folder(folder, PASSWORD)
    assert len(keys) == 4 and len(problems) == 1 and "half-copied.p12" in problems[0]
    ring = KeyRing([RingEntry(key) for key in keys], source=str(folder))
    assert "newest" in ring.active(NOW).subject
    assert "not yet" in ring.active(NOW + 31 * DAY).subject  # valid then, and newer
    assert ring.coverage_end(NOW) == max(key.not_after for key in keys)


def test_load_keyring_checks_each_key_as_receivers_would(dev_certs, tmp_path, monkeypatch):
    issue(dev_certs, tmp_path / "now.p12", starts=-1 * DAY, ends=300 * DAY, name="current")
    password = tmp_path / "password"
    password.write_bytes(PASSWORD)
    password.chmod(0o600)
    other_ca = tmp_path / "other"
    from connector.devtools.devcerts import make_dev_certs

    stranger = make_dev_certs(other_ca, ca_name="Another CA")  # a chain our bundle does not know
    config = CertificateConfig.model_validate({
        "p12_file": str(tmp_path / "now.p12"), "password_file": str(password),
        "next": {"p12_file": str(stranger.agency_a.p12),
                 "password_file": str(stranger.agency_a.password_file),
                 "switch_at": (NOW + 30 * DAY).isoformat()}})
    with pytest.raises(CertificateError, match="chain does not validate against trust.bundle_file"):
        load_keyring(config, dev_certs.ca_cert)
    config = CertificateConfig.model_validate({
        "p12_file": str(tmp_path / "now.p12"), "password_file": str(password)})
    ring = load_keyring(config, dev_certs.ca_cert)
    assert "current" in ring.active().subject


def test_a_renewal_takes_over_between_two_documents_and_the_journal_says_which_signed(
        dev_certs, tmp_path):
    """In-process: the runtime's ring is asked per package; SIGHUP-style reload with a
    certificate section naming a next key that is due now; the journal's signed_by follows."""
    from connector.config import load_config
    from connector.service.runtime import Runtime

    issue(dev_certs, tmp_path / "now.p12", starts=-300 * DAY, ends=10 * DAY, name="current")
    issue(dev_certs, tmp_path / "next.p12", starts=-1 * DAY, ends=700 * DAY, name="renewed")
    password = tmp_path / "password"
    password.write_bytes(PASSWORD)
    password.chmod(0o600)
    secret = tmp_path / "secret"
    secret.write_text("s")
    secret.chmod(0o600)
    config = tmp_path / "connector.yaml"
    import yaml

    base = {"agency": {"organ_id": AGENCY_A_ORGAN_ID, "name": "Văn phòng Chính phủ"},
            "certificate": {"p12_file": str(tmp_path / "now.p12"), "password_file": str(password)},
            "trust": {"bundle_file": str(dev_certs.ca_cert)},
            "axis": {"endpoint": "http://127.0.0.1:9", "secret_file": str(secret)},
            "journal": {"url": f"sqlite:///{tmp_path / 'journal.db'}"},
            "state_dir": str(tmp_path / "state"), "exchange": {"root": str(tmp_path / "exchange")}}
    config.write_text(yaml.safe_dump(base, allow_unicode=True))
    with Runtime(load_config(config)) as runtime:
        builder = PackageBuilder(runtime)
        before = signed_by_of(runtime, builder, tmp_path / "one.edxml", "one")
        assert before == runtime.keyring.active().fingerprint
        assert "current" in runtime.signing_key.subject
        base["certificate"]["next"] = {"p12_file": str(tmp_path / "next.p12"),
                                       "password_file": str(password),
                                       "switch_at": (NOW - dt.timedelta(minutes=1)).isoformat()}
        config.write_text(yaml.safe_dump(base, allow_unicode=True))
        runtime.reload_certificate(load_config(config).certificate)
        assert "renewed" in runtime.signing_key.subject
        after = signed_by_of(runtime, PackageBuilder(runtime), tmp_path / "two.edxml", "two")
        assert after == runtime.signing_key.fingerprint != before
        assert [record.signed_by for record in runtime.journal.outgoing.list_outgoing()] in (
            [before, after], [after, before])
        from connector.ops.status_view import collect_status

        shown = {item["document_id"]: item["signed_by"] for item in collect_status(runtime.journal)["items"]}
        assert shown == {"one": before, "two": after}  # `status --json` shows it too


def signed_by_of(runtime, builder, path, name) -> str:
    """Sign a document with the builder, record it as packaged, return what the journal keeps."""
    import sys

    from connector.dms.base import OutgoingKind
    from connector.edxml.writer import prepare_package
    from connector.edxml.xmldsig import signer_fingerprint

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "edxml_write"))
    from edxml_write_helpers import make_document

    builder.write_signed(prepare_package(make_document()), path)
    assert signer_fingerprint(path) == builder.signed_with.fingerprint  # what the bytes carry
    record = runtime.journal.outgoing.enqueue("cli", name, OutgoingKind.DOCUMENT)
    record = runtime.journal.outgoing.mark_packaged(
        record.id, package_path=str(path), sha256=name * 8, size=path.stat().st_size,
        document_id=name, signed_by=builder.signed_with.fingerprint)
    return record.signed_by
