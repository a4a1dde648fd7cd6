"""Shared builders for the writer/signing tests.

A module with its own name (not ``conftest``): several test folders have a ``conftest.py``, and
``from conftest import ...`` picks whichever was imported last when folders run together.
"""

from __future__ import annotations

import datetime as dt

from connector.edxml.identifiers import now_vietnam
from connector.edxml.model import (
    Attachment,
    Business,
    BusinessType,
    Code,
    DocumentPackage,
    DocumentType,
    Organization,
    OtherInfo,
    PromulgationInfo,
    ResponseFor,
    SignerInfo,
    StaffInfo,
    TraceHeader,
)


def make_document(**overrides) -> DocumentPackage:
    """A document package using most of the header, timestamped now (so that a freshly made
    dev certificate is valid at its signing time)."""
    fields = dict(
        from_=Organization(organ_id="000.00.00.G22", organization_in_charge="Văn phòng Chính phủ",
                           organ_name="Văn phòng Chính phủ", organ_add="Số 1 Hoàng Hoa Thám, Hà Nội",
                           email="vpcp@gov.vn", telephone="8043100", fax="", website="vpcp.vn"),
        to=[Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An"),
            Organization(organ_id="000.00.50.H19", organ_name="Sở TT&TT Hải Phòng <test>")],
        document_id="000.00.00.G22,2024/05/06,7816/VPCP-TTĐT",
        code=Code("7816", "VPCP-TTĐT"),
        promulgation_info=PromulgationInfo("Hà Nội", dt.date(2024, 5, 6)),
        document_type=DocumentType("1", "0", "Công văn"),
        subject="V/v kết nối, liên thông phần mềm quản lý văn bản",
        content="",
        signer_info=SignerInfo("TL. BỘ TRƯỞNG", "Cục trưởng", "Nguyễn Văn A"),
        due_date=dt.date(2024, 6, 1),
        other_info=OtherInfo("0", "Liên thông văn bản quốc gia", "TVC", "2", "22", "false",
                             ["Phụ lục 1", "Phụ lục 2"]),
        response_for=[ResponseFor("000.00.00.H41", "12/UBND", dt.date(2024, 4, 1),
                                  "000.00.00.H41,2024/04/01,12/UBND")],
        steering_type="1",
        to_places=["Các bộ, cơ quan ngang bộ"],
        trace_headers=[TraceHeader("000.00.00.G22", now_vietnam())],
        business=Business(BusinessType.NEW, "Văn bản điện tử mới", "0",
                          staff_info=StaffInfo("Văn thư", "Nguyễn Thị B", "vt@gov.vn", "0912000001")),
        attachments=[Attachment(name="cong-van.pdf", content_type="application/pdf", content_id="209",
                                description="Công văn", data=b"%PDF-1.4\n" + bytes(range(256)) * 40)],
    )
    fields.update(overrides)
    return DocumentPackage(**fields)
