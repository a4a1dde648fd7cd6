"""Fixtures for the low-memory verification tests: signed packages of ours (the signing key and
``xmlsec1`` are in tests/conftest.py, shared with the writer tests)."""

from __future__ import annotations

import datetime as dt

import pytest

from connector.edxml.identifiers import now_vietnam
from connector.edxml.model import (
    Attachment,
    Business,
    BusinessType,
    Code,
    DocumentPackage,
    Organization,
    PromulgationInfo,
    StaffInfo,
    TraceHeader,
)


def document(attachments: list[bytes]) -> DocumentPackage:
    """A document package timestamped now (a fresh dev certificate is valid at its signing time)."""
    return DocumentPackage(
        from_=Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ", email="vpcp@gov.vn"),
        to=[Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An <test> & co")],
        code=Code("7816", "VPCP-TTĐT"), promulgation_info=PromulgationInfo("Hà Nội", dt.date(2024, 5, 6)),
        subject="V/v kết nối, liên thông phần mềm quản lý văn bản", content="Nội dung",
        trace_headers=[TraceHeader("000.00.00.G22", now_vietnam())],
        business=Business(BusinessType.NEW, "Văn bản điện tử mới", "0",
                          staff_info=StaffInfo("Văn thư", "B", "vt@gov.vn", "0912")),
        attachments=[Attachment(name=f"scan-{index}.pdf", content_type="application/pdf",
                                content_id=str(index + 1), data=data)
                     for index, data in enumerate(attachments)])


@pytest.fixture(scope="session")
def make_package():
    return document
