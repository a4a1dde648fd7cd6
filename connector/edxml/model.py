"""The typed model of an edXML package (QCVN 102:2016), free of any XML.

Two kinds of package travel on the axis: a *document* package (header, trace list, manifest and
base64 attachments) and a *status* package (a short header answering a document). The writer turns
these objects into bytes exactly as the official SDK does; the reader turns bytes from any writer
back into them. Field names follow the element names, in snake case, so that the format doc can be
read side by side with this file.

Every optional element is ``None`` (or an empty list) when absent, and an empty string when present
but empty, so that a round trip keeps the difference. Values the format does not constrain
(Type, TypeDetail, Paper...) are kept as the strings found on the wire.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from connector.fsutil import open_sendable  # no links, FIFOs or devices

if TYPE_CHECKING:  # the model needs only the name: encoded_content reads files
    from connector.edxml.encoded_content import EncodedContent

NAMESPACE = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
LEGACY_NAMESPACE = "http://www.e-doc.vn/Schema/"  # accepted on read, never written
XMLDSIG_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"


class BusinessType(enum.IntEnum):
    """``Bussiness/BussinessDocType``: what a document package does to the receiver's copy."""

    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3

    @property
    def label_vi(self) -> str:
        return _BUSINESS_LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _BUSINESS_LABELS[self][1]


_BUSINESS_LABELS = {
    BusinessType.NEW: ("Văn bản điện tử mới", "new document"),
    BusinessType.REVOKE: ("Thu hồi văn bản điện tử", "revoke"),
    BusinessType.UPDATE: ("Cập nhật văn bản điện tử", "update"),
    BusinessType.REPLACE: ("Văn bản thay thế", "replace"),
}


class StatusCode(str, enum.Enum):
    """``StatusCode`` of a status package (two digits on the wire)."""

    ARRIVED = "01"
    REFUSED = "02"
    ACCEPTED = "03"
    ASSIGNED = "04"
    PROCESSING = "05"
    COMPLETED = "06"
    TAKE_BACK_REQUESTED = "13"
    AGREED = "15"
    DISAGREED = "16"

    @property
    def label_vi(self) -> str:
        return _STATUS_LABELS[self][0]

    @property
    def label_en(self) -> str:
        return _STATUS_LABELS[self][1]

    @property
    def sent_by_original_sender(self) -> bool:
        """Only the take-back request (13) travels from the original sender to a receiver."""
        return self is StatusCode.TAKE_BACK_REQUESTED


_STATUS_LABELS = {
    StatusCode.ARRIVED: ("Đã đến", "arrived"),
    StatusCode.REFUSED: ("Từ chối", "refused"),
    StatusCode.ACCEPTED: ("Tiếp nhận", "accepted"),
    StatusCode.ASSIGNED: ("Phân công", "assigned for handling"),
    StatusCode.PROCESSING: ("Đang xử lý", "being processed"),
    StatusCode.COMPLETED: ("Hoàn thành", "completed"),
    StatusCode.TAKE_BACK_REQUESTED: ("Lấy lại", "take-back requested"),
    StatusCode.AGREED: ("Đồng ý lấy lại/cập nhật/thu hồi", "agrees to take-back/update/revoke"),
    StatusCode.DISAGREED: ("Từ chối lấy lại/cập nhật/thu hồi", "refuses take-back/update/revoke"),
}


@dataclass
class Organization:
    """``From`` or ``To``: an organisation and how to reach it."""

    organ_id: str | None = None
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


@dataclass
class Code:
    number: str | None = None
    notation: str | None = None


@dataclass
class PromulgationInfo:
    place: str | None = None
    date: dt.date | None = None


@dataclass
class DocumentType:
    type: str | None = None
    type_detail: str | None = None
    type_name: str | None = None


@dataclass
class SignerInfo:
    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


@dataclass
class OtherInfo:
    priority: str | None = None
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: str | None = None
    page_amount: str | None = None
    direction: str | None = None  # "true"/"false" on the wire
    appendixes: list[str] | None = None  # None: no Appendixes element


@dataclass
class ResponseFor:
    """In a document: an earlier document this one answers. In a status: the document the status
    is about, and in ``organ_id`` the organisation the status is addressed to."""

    organ_id: str | None = None
    code: str | None = None
    promulgation_date: dt.date | None = None
    document_id: str | None = None


@dataclass
class TraceHeader:
    organ_id: str | None = None
    timestamp: dt.datetime | None = None


@dataclass
class StaffInfo:
    department: str | None = None
    staff: str | None = None
    email: str | None = None
    mobile: str | None = None


@dataclass
class Receiver:
    organ_id: str | None = None
    receiver_type: str | None = None


@dataclass
class BusinessDocumentInfo:
    """Update (type 2): what changed (``document_info``) and to whom (``document_receiver``)."""

    document_info: str | None = None
    document_receiver: str | None = None
    receivers: list[Receiver] = field(default_factory=list)


@dataclass
class ReplacementInfo:
    """Replace (type 3): one replaced document and who had received it."""

    document_id: str | None = None
    organ_ids: list[str] = field(default_factory=list)


@dataclass
class Business:
    """``TraceHeaderList/Bussiness`` (spelled with a double s on the wire)."""

    business_doc_type: BusinessType = BusinessType.NEW
    business_doc_reason: str | None = None
    paper: str | None = None
    document_id: str | None = None
    business_document_info: BusinessDocumentInfo | None = None
    replacement_info_list: list[ReplacementInfo] | None = None
    staff_info: StaffInfo | None = None


@dataclass(eq=False)
class Attachment:
    """One attachment: its manifest entry plus its content.

    The content is in memory (``data``), in a file of its own (``path``, an attachment to
    send), or still base64 in the package it was read from (``encoded``, a received one), so
    that scanned PDFs of a hundred megabytes are never held whole. :meth:`chunks` streams any of
    the three. ``content_id`` is kept without the ``cid:`` prefix. Two attachments are equal
    when their metadata and their bytes are.
    """

    name: str
    content_type: str = "application/octet-stream"
    content_id: str | None = None
    description: str | None = None
    data: bytes | None = None
    path: Path | None = None
    encoded: EncodedContent | None = None

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        """The content, a piece at a time: what a consumer uses to write it anywhere."""
        if self.data is not None:
            view = memoryview(self.data)
            for start in range(0, len(view), size):
                yield bytes(view[start:start + size])
        elif self.encoded is not None:
            yield from self.encoded.chunks()
        elif self.path is not None:

            with open_sendable(self.path) as handle:
                while piece := handle.read(size):
                    yield piece

    def read_bytes(self) -> bytes:
        """The whole content in memory: for small parts and tests; large ones use :meth:`chunks`."""
        if self.data is not None:
            return self.data
        return b"".join(self.chunks())

    @property
    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        if self.encoded is not None:
            return self.encoded.size
        if self.path is not None:
            return Path(self.path).stat().st_size
        return 0

    def sha256(self) -> str:
        if self.encoded is not None:
            return self.encoded.sha256
        digest = hashlib.sha256()
        if self.data is not None:
            digest.update(self.data)
        elif self.path is not None:
            with open(self.path, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        return digest.hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Attachment):
            return NotImplemented
        return (
            self.name == other.name
            and self.content_type == other.content_type
            and self.content_id == other.content_id
            and self.description == other.description
            and self.sha256() == other.sha256()
        )


@dataclass
class DocumentPackage:
    """A document package: a new document, or a revoke/update/replace of an earlier one."""

    from_: Organization
    to: list[Organization]
    document_id: str | None = None
    code: Code | None = None
    promulgation_info: PromulgationInfo | None = None
    document_type: DocumentType | None = None
    subject: str | None = None
    content: str | None = None
    signer_info: SignerInfo | None = None
    due_date: dt.date | None = None
    other_info: OtherInfo | None = None
    response_for: list[ResponseFor] = field(default_factory=list)
    steering_type: str | None = None
    to_places: list[str] | None = None
    trace_headers: list[TraceHeader] = field(default_factory=list)
    business: Business | None = None
    attachments: list[Attachment] = field(default_factory=list)

    kind = "edoc"

    @property
    def business_type(self) -> BusinessType:
        return self.business.business_doc_type if self.business else BusinessType.NEW

    @property
    def recipient_ids(self) -> list[str]:
        """The OrganIds in ``To`` (a recipient without one is refused by the writer)."""
        return [organization.organ_id for organization in self.to if organization.organ_id]


@dataclass
class StatusPackage:
    """A status package: one organisation tells another where a document stands."""

    from_: Organization
    response_for: ResponseFor
    status_code: StatusCode | str
    staff_info: StaffInfo | None = None
    description: str | None = None
    timestamp: dt.datetime | None = None

    kind = "status"


Package = DocumentPackage | StatusPackage
