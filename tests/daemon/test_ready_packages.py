"""Ready packages dropped in the outbox (verified from the file, constant memory): a package signed
by us is sent byte for byte, an unsigned one is signed, one whose signature does not verify fails
at once naming the item as the DMS named it."""

from __future__ import annotations

import datetime as dt

from connector.edxml import model
from connector.edxml.signing import SignatureState, sign_package, verify_package_file
from connector.edxml.writer import write_package
from connector.journal import OutgoingState

from .conftest import A, B


def _package(number: str) -> model.DocumentPackage:
    return model.DocumentPackage(
        from_=model.Organization(organ_id=A, organ_name="Văn phòng Chính phủ"),
        to=[model.Organization(organ_id=B)], code=model.Code(number=number, notation="VPCP-TTĐT"),
        subject=f"Gói sẵn số {number}", document_type=model.DocumentType(type="1", type_detail="0"),
        promulgation_info=model.PromulgationInfo(place="Hà Nội", date=dt.date(2026, 11, 23)))


def _drop(outbox, name: str, data: bytes) -> None:
    part = outbox / f"{name}.part"
    part.write_bytes(data)
    part.rename(outbox / name)


def test_ready_packages_signed_unsigned_and_tampered(pair, simulator):
    a, b = pair
    outbox = a.exchange / "outbox"
    signed = sign_package(write_package(_package("31")), a.runtime.signing_key)
    _drop(outbox, "signed.edxml", signed)
    _drop(outbox, "unsigned.edxml", write_package(_package("32")))
    tampered = sign_package(write_package(_package("33")), a.runtime.signing_key).replace(
        "Gói sẵn số 33".encode(), "Gói sẵn số 34".encode(), 1)
    _drop(outbox, "tampered.edxml", tampered)

    a.cycle()

    by_name = {r.meta.get("display_name") or r.source_ref.split("--")[-1]: r
               for r in a.journal.outgoing.list_outgoing()}
    assert by_name["signed.edxml"].state is OutgoingState.SENT
    assert open(by_name["signed.edxml"].package_path, "rb").read() == signed  # as the DMS made it
    assert by_name["unsigned.edxml"].state is OutgoingState.SENT
    assert verify_package_file(by_name["unsigned.edxml"].package_path,
                               trust=a.runtime.trust_bundle).state is SignatureState.VALID
    failed = by_name["tampered.edxml"]
    assert failed.state is OutgoingState.FAILED and failed.attempts == 1
    assert failed.last_error.startswith("tampered.edxml: Signature: the package carries a "
                                        "signature that does not verify")
    assert "does not verify" in (a.exchange / "failed" / "tampered.error.txt").read_text()
    assert len(simulator.store.sent_by(A, "edoc")) == 2
