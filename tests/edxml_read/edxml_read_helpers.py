"""Builders of small synthetic packages for the reader tests: each keyword replaces one part,
so a test exercises one leniency or one refusal at a time."""

from __future__ import annotations

import base64

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
PDF_BYTES = b"%PDF-1.4\n% tiny test pdf\n%%EOF\n"

FROM = ("<From><OrganId>000.00.00.G22</OrganId><OrganName>Văn phòng Chính phủ</OrganName>"
        "</From>")
TO = "<To><OrganId>000.00.00.H41</OrganId><OrganName>UBND Tỉnh Nghệ An</OrganName></To>"
HEADER = ("<DocumentId>000.00.00.G22,2024/05/02,12/VPCP-TTĐT</DocumentId>"
          "<Code><CodeNumber>12</CodeNumber><CodeNotation>VPCP-TTĐT</CodeNotation></Code>"
          "<PromulgationInfo><Place>Hà Nội</Place><PromulgationDate>2024/05/02</PromulgationDate>"
          "</PromulgationInfo><Subject>Về việc thử nghiệm</Subject>")
TRACE = ("<TraceHeaderList><TraceHeader><OrganId>000.00.00.G22</OrganId>"
         "<Timestamp>2024/05/02 08:30:00</Timestamp></TraceHeader>"
         "<Bussiness><BussinessDocType>0</BussinessDocType><Paper>0</Paper></Bussiness>"
         "</TraceHeaderList>")


def manifest_entry(cid="cid:1", name="a.pdf", content_type="application/pdf"):
    return (f"<Reference><ContentId>{cid}</ContentId><ContentType>{content_type}</ContentType>"
            f"<AttachmentName>{name}</AttachmentName></Reference>")


def attachment_entry(cid="cid:1", name="a.pdf", content_type="application/pdf", data=PDF_BYTES,
                     encoded=None):
    text = encoded if encoded is not None else base64.b64encode(data).decode()
    return (f"<Attachment><ContentId>{cid}</ContentId><AttachmentName>{name}</AttachmentName>"
            f"<ContentType>{content_type}</ContentType>"
            f"<ContentTransferEncoded>{text}</ContentTransferEncoded></Attachment>")


def document_xml(*, from_=FROM, to=TO, header=HEADER, trace=TRACE, manifest=None,
                 attachments=None, ns=NS, body=True) -> str:
    """A small, valid document package; each keyword replaces one part."""
    manifest = manifest_entry() if manifest is None else manifest
    attachments = attachment_entry() if attachments is None else attachments
    body_xml = (f"<edXMLBody><edXMLManifest version=\"1.0\">{manifest}</edXMLManifest></edXMLBody>"
                if body else "")
    encoded = f"<AttachmentEncoded>{attachments}</AttachmentEncoded>" if body else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<edXML xmlns="{ns}">\n<edXMLEnvelope>\n'
            f"<edXMLHeader><MessageHeader>{from_}{to}{header}</MessageHeader>{trace}"
            f"</edXMLHeader>\n{body_xml}\n</edXMLEnvelope>\n{encoded}\n</edXML>\n")


def status_xml(*, code="<StatusCode>03</StatusCode>", ns=NS,
               response="<ResponseFor><OrganId>000.00.00.G22</OrganId><Code>12/VPCP-TTĐT</Code>"
                        "<PromulgationDate>2024/05/02</PromulgationDate>"
                        "<DocumentId>000.00.00.G22,2024/05/02,12/VPCP-TTĐT</DocumentId>"
                        "</ResponseFor>",
               extra="") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<edXML xmlns="{ns}"><edXMLEnvelope>'
            f"<edXMLHeader><MessageHeader><From><OrganId>000.00.00.H41</OrganId></From>{response}"
            f"{code}<Description>Tiếp nhận</Description><Timestamp>2024/05/03 09:00:00</Timestamp>"
            f"{extra}</MessageHeader></edXMLHeader></edXMLEnvelope></edXML>")
