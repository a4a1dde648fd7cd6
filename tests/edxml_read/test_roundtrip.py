"""Round trips through the writer (connector/edxml/writer.py) and this reader.

- model -> bytes -> model is the identity, for hand-built and generated models;
- every readable interop file -> model -> bytes -> model keeps every field.

Text values are generated without leading/trailing whitespace and without control characters:
the reader strips the whitespace around values (hand-made packages indent them) and XML cannot
carry control characters.
"""

from __future__ import annotations

import datetime as dt
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.edxml import writer
from connector.edxml.model import (
    Attachment,
    Business,
    BusinessDocumentInfo,
    BusinessType,
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    StatusCode,
    StatusPackage,
    TraceHeader,
)
from connector.edxml.reader import read_package

READABLE = [
    "sdk-samples/edoc_new.edxml", "sdk-samples/edoc_revocation.edxml",
    "sdk-samples/edoc_update.edxml", "sdk-samples/edoc_replacement.edxml",
    "sdk-samples/status.edxml", "sdk-samples/status_inbox_01.edxml",
    "sdk-samples/status_rejection_02.edxml", "sdk-samples/status_acceptance_03.edxml",
    "sdk-samples/status_assignment_04.edxml", "sdk-samples/status_processing_05.edxml",
    "sdk-samples/status_finish_06.edxml", "sdk-samples/status_cancellation_13.edxml",
    "sdk-samples/status_change-acceptance_15.edxml",
    "sdk-samples/status_change-rejection_16.edxml",
    "handwritten/edoc_new_variant.edxml", "handwritten/edoc_undeclared_xlink.edxml",
]


def faithful(package) -> bytes:
    """Re-serialise a received package as it is (no strict validation of what others sent)."""
    return writer.write_package(package, settings=writer.WriterSettings(strict=False))


@pytest.mark.parametrize("name", READABLE)
def test_every_readable_interop_file_survives_a_round_trip(sample, name):
    first = read_package(sample(name)).package
    again = read_package(faithful(first)).package
    assert again == first
    if isinstance(first, DocumentPackage):
        assert [a.data for a in again.attachments] == [a.data for a in first.attachments]


def test_round_trip_is_stable_at_the_byte_level(sample):
    first = read_package(sample("sdk-samples/edoc_update.edxml")).package
    written = faithful(first)
    assert faithful(read_package(written).package) == written


def full_document() -> DocumentPackage:
    return DocumentPackage(
        from_=Organization("000.00.00.G22", "Văn phòng Chính phủ", "Văn phòng Chính phủ",
                           "Số 1 Hoàng Hoa Thám", "vpcp@gov.vn", "8043100", "04", "vpcp.vn"),
        to=[Organization("000.00.00.H41", organ_name="UBND Tỉnh Nghệ An"),
            Organization("000.00.00.H14", organ_name="")],
        document_id="000.00.00.G22,2024/05/02,12/VPCP-TTĐT",
        code=Code("12", "VPCP-TTĐT"),
        promulgation_info=PromulgationInfo("Hà Nội", dt.date(2024, 5, 2)),
        document_type=DocumentType("1", "0", "Công văn"),
        subject="Về việc kết nối", content="", signer_info=SignerInfo("KT. BỘ TRƯỞNG", None, "A"),
        due_date=dt.date(2024, 6, 1),
        other_info=OtherInfo("1", "Liên thông", "TVC", "2", "3", "true", ["Phụ lục I", ""]),
        response_for=[ResponseFor("000.00.00.H41", "9/UBND", dt.date(2024, 1, 1),
                                  "000.00.00.H41,2024/01/01,9/UBND"), ResponseFor("", "", None, "")],
        steering_type="0", to_places=["Các bộ", "UBND các tỉnh"],
        trace_headers=[TraceHeader("000.00.00.G22", dt.datetime(2024, 5, 2, 8, 30, 1))],
        business=Business(BusinessType.REPLACE, "Văn bản thay thế", "0", None,
                          BusinessDocumentInfo("1", "0", [Receiver("000.00.00.H41", "1")]),
                          [ReplacementInfo("000.00.00.G22,2024/01/30,7/VPCP",
                                           ["000.00.00.H41", "000.00.00.H14"])],
                          StaffInfo("Văn thư", "Nguyễn Văn A", "a@gov.vn", "0900")),
        attachments=[Attachment("Quyết định.pdf", "application/pdf", "1", "Bản chính",
                                data=b"%PDF-1.4 ..."),
                     Attachment("empty.doc", "application/msword", "uuid-2", None, data=b"")])


def test_a_full_hand_built_document_is_the_identity():
    package = full_document()
    assert read_package(writer.write_package(package)).package == package


def test_a_full_hand_built_status_is_the_identity():
    status = StatusPackage(
        from_=Organization("000.00.00.H41", organ_name="UBND Tỉnh Nghệ An"),
        response_for=ResponseFor("000.00.00.G22", "12/VPCP-TTĐT", dt.date(2024, 5, 2),
                                 "000.00.00.G22,2024/05/02,12/VPCP-TTĐT"),
        status_code=StatusCode.REFUSED, staff_info=StaffInfo("Văn thư", "B", None, ""),
        description="Sai nơi nhận", timestamp=dt.datetime(2024, 5, 3, 9, 0, 0))
    assert read_package(writer.write_package(status)).package == status


# ---- generated models -------------------------------------------------------------------------

_ALPHABET = st.characters(blacklist_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp"),
                          blacklist_characters="\ufffe\uffff")
TEXT = st.text(_ALPHABET, max_size=40).map(str.strip)
OPTIONAL_TEXT = st.none() | TEXT
ORGAN_ID = st.from_regex(r"\A\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}\Z")
DATES = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2099, 12, 31))
TIMESTAMPS = st.datetimes(min_value=dt.datetime(1990, 1, 1),
                          max_value=dt.datetime(2099, 12, 31)).map(lambda v: v.replace(microsecond=0))
CONTENT_IDS = st.text(string.ascii_letters + string.digits + "-.@", min_size=1, max_size=20)


def organizations(organ_id=ORGAN_ID):
    return st.builds(Organization, organ_id, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT,
                     OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT)


@st.composite
def attachments(draw):
    count = draw(st.integers(0, 3))
    ids = draw(st.lists(CONTENT_IDS, min_size=count, max_size=count, unique=True))
    return [Attachment(name=draw(TEXT.filter(bool)),
                       content_type=draw(st.sampled_from(["application/pdf", "application/zip",
                                                          "text/plain"])),
                       content_id=content_id, description=draw(OPTIONAL_TEXT),
                       data=draw(st.binary(max_size=300))) for content_id in ids]


@st.composite
def documents(draw):
    recipients = draw(st.lists(organizations(), min_size=1, max_size=3,
                               unique_by=lambda o: o.organ_id))
    business = draw(st.none() | st.builds(
        Business, st.sampled_from(list(BusinessType)), OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT,
        st.none() | st.builds(BusinessDocumentInfo, OPTIONAL_TEXT, OPTIONAL_TEXT,
                              st.lists(st.builds(Receiver, ORGAN_ID, OPTIONAL_TEXT), max_size=2)),
        st.none() | st.lists(st.builds(ReplacementInfo, OPTIONAL_TEXT,
                                       st.lists(ORGAN_ID, max_size=2)), max_size=2),
        st.none() | st.builds(StaffInfo, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT,
                              OPTIONAL_TEXT)))
    return DocumentPackage(
        from_=draw(organizations()), to=recipients,
        document_id=draw(TEXT.filter(bool)),
        code=draw(st.none() | st.builds(Code, OPTIONAL_TEXT, OPTIONAL_TEXT)),
        promulgation_info=draw(st.none() | st.builds(PromulgationInfo, OPTIONAL_TEXT,
                                                     st.none() | DATES)),
        document_type=draw(st.none() | st.builds(DocumentType, OPTIONAL_TEXT, OPTIONAL_TEXT,
                                                 OPTIONAL_TEXT)),
        subject=draw(TEXT.filter(bool)), content=draw(OPTIONAL_TEXT),
        signer_info=draw(st.none() | st.builds(SignerInfo, OPTIONAL_TEXT, OPTIONAL_TEXT,
                                               OPTIONAL_TEXT)),
        due_date=draw(st.none() | DATES),
        other_info=draw(st.none() | st.builds(
            OtherInfo, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT,
            OPTIONAL_TEXT, st.none() | st.lists(TEXT, max_size=3))),
        response_for=draw(st.lists(st.builds(ResponseFor, st.none() | ORGAN_ID | st.just(""),
                                             OPTIONAL_TEXT, st.none() | DATES, OPTIONAL_TEXT),
                                   max_size=2)),
        steering_type=draw(st.none() | st.sampled_from(["0", "1"])),
        to_places=draw(st.none() | st.lists(TEXT, max_size=3)),
        trace_headers=draw(st.lists(st.builds(TraceHeader, ORGAN_ID, st.none() | TIMESTAMPS),
                                    max_size=2)),
        business=business, attachments=draw(attachments()))


statuses = st.builds(
    StatusPackage, organizations(),
    st.builds(ResponseFor, ORGAN_ID, OPTIONAL_TEXT, st.none() | DATES, TEXT.filter(bool)),
    st.sampled_from(list(StatusCode)),
    st.none() | st.builds(StaffInfo, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT),
    OPTIONAL_TEXT, st.none() | TIMESTAMPS)

ROUND_TRIP = settings(max_examples=60, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@ROUND_TRIP
@given(documents())
def test_generated_documents_round_trip(package):
    result = read_package(writer.write_package(package))
    assert result.package == package


@ROUND_TRIP
@given(statuses)
def test_generated_statuses_round_trip(status):
    assert read_package(writer.write_package(status)).package == status
