"""Small, well-formed edXML packages for exercising the simulator (tests, benchmarks, rehearsal).

These are deliberately plain templates in the SDK's shape (see ``interop/sdk-samples``), not the
project's writer: the simulator and its tests must not depend on the code they help to test.
Packages are unsigned; the axis does not check package signatures.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from xml.sax.saxutils import escape

_NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"


def _organization(tag: str, organ_id: str) -> str:
    return (f"<edXML:{tag}><edXML:OrganId>{escape(organ_id)}</edXML:OrganId>"
            f"<edXML:OrganName>Cơ quan {escape(organ_id)}</edXML:OrganName></edXML:{tag}>")


def make_document(sender: str, recipients: Sequence[str], *, document_id: str | None = None,
                  subject: str = "V/v thử nghiệm liên thông văn bản",
                  code_number: str = "123", code_notation: str = "VPCP-TTĐT",
                  attachment: bytes | None = None,
                  attachment_name: str = "van-ban.pdf") -> bytes:
    """A new-document package from ``sender`` to ``recipients`` with an optional attachment."""
    document_id = document_id or f"{sender},2026/11/22,{code_number}/{code_notation}"
    to = "".join(_organization("To", organ) for organ in recipients)
    manifest = attachments = ""
    if attachment is not None:
        content_id = f"cid:{uuid.uuid4()}"
        encoded = base64.b64encode(attachment).decode("ascii")
        manifest = (
            "<edXML:edXMLBody><edXML:edXMLManifest version=\"1.0\"><edXML:Reference>"
            f"<edXML:ContentId>{content_id}</edXML:ContentId>"
            "<edXML:ContentType>application/pdf</edXML:ContentType>"
            f"<edXML:Description>{escape(attachment_name)}</edXML:Description>"
            f"<edXML:AttachmentName>{escape(attachment_name)}</edXML:AttachmentName>"
            "</edXML:Reference></edXML:edXMLManifest></edXML:edXMLBody>")
        attachments = (
            "<AttachmentEncoded><Attachment>"
            f"<ContentId>{content_id}</ContentId>"
            f"<AttachmentName>{escape(attachment_name)}</AttachmentName>"
            f"<Description>{escape(attachment_name)}</Description>"
            "<ContentType>application/pdf</ContentType>"
            f"<edXML:ContentTransferEncoded xmlns:edXML=\"{_NS}\">{encoded}"
            "</edXML:ContentTransferEncoded></Attachment></AttachmentEncoded>")
    text = (
        f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edXML xmlns=\"{_NS}\">"
        f"<edXML:edXMLEnvelope xmlns:edXML=\"{_NS}\"><edXML:edXMLHeader><edXML:MessageHeader>"
        f"{_organization('From', sender)}{to}"
        f"<edXML:DocumentId>{escape(document_id)}</edXML:DocumentId>"
        f"<edXML:Code><edXML:CodeNumber>{escape(code_number)}</edXML:CodeNumber>"
        f"<edXML:CodeNotation>{escape(code_notation)}</edXML:CodeNotation></edXML:Code>"
        "<edXML:PromulgationInfo><edXML:Place>Hà Nội</edXML:Place>"
        "<edXML:PromulgationDate>2026/11/22</edXML:PromulgationDate></edXML:PromulgationInfo>"
        "<edXML:DocumentType><edXML:Type>1</edXML:Type><edXML:TypeDetail>0</edXML:TypeDetail>"
        "<edXML:TypeName>Công văn</edXML:TypeName></edXML:DocumentType>"
        f"<edXML:Subject>{escape(subject)}</edXML:Subject>"
        f"<edXML:Content>{escape(subject)}</edXML:Content>"
        "</edXML:MessageHeader><edXML:TraceHeaderList><edXML:TraceHeader>"
        f"<edXML:OrganId>{escape(sender)}</edXML:OrganId>"
        "<edXML:Timestamp>2026/11/22 20:30:15</edXML:Timestamp></edXML:TraceHeader>"
        "<edXML:Bussiness><edXML:BussinessDocType>0</edXML:BussinessDocType>"
        "<edXML:BussinessDocReason>Văn bản điện tử mới</edXML:BussinessDocReason>"
        "<edXML:Paper>0</edXML:Paper></edXML:Bussiness></edXML:TraceHeaderList>"
        f"</edXML:edXMLHeader>{manifest}</edXML:edXMLEnvelope>{attachments}</edXML>\n")
    return text.encode("utf-8")


def make_status(sender: str, addressed_to: str, *, status_code: str = "01",
                document_id: str = "000.00.00.G22,2026/11/22,123/VPCP-TTĐT",
                code: str = "123/VPCP-TTĐT",
                description: str = "Đã đến - Phần mềm QLVB đã nhận") -> bytes:
    """A status package from ``sender`` about ``document_id``, addressed (ResponseFor/OrganId)
    to ``addressed_to``."""
    text = (
        f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edXML xmlns=\"{_NS}\">"
        f"<edXML:edXMLEnvelope xmlns:edXML=\"{_NS}\"><edXML:edXMLHeader><edXML:MessageHeader>"
        f"{_organization('From', sender)}"
        f"<edXML:ResponseFor><edXML:OrganId>{escape(addressed_to)}</edXML:OrganId>"
        f"<edXML:Code>{escape(code)}</edXML:Code>"
        f"<edXML:DocumentId>{escape(document_id)}</edXML:DocumentId>"
        "<edXML:PromulgationDate>2026/11/22</edXML:PromulgationDate></edXML:ResponseFor>"
        "<edXML:StaffInfo><edXML:Department>Văn thư</edXML:Department>"
        "<edXML:Staff>Nguyễn Văn A</edXML:Staff></edXML:StaffInfo>"
        f"<edXML:StatusCode>{escape(status_code)}</edXML:StatusCode>"
        f"<edXML:Description>{escape(description)}</edXML:Description>"
        "<edXML:Timestamp>2026/11/22 20:31:00</edXML:Timestamp>"
        "</edXML:MessageHeader></edXML:edXMLHeader></edXML:edXMLEnvelope></edXML>\n")
    return text.encode("utf-8")
