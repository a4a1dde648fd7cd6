"""Model → edXML bytes, exactly as the official SDK writes them.

Peers on the axis were built against the SDK's output, so we write its element order, its
namespace layout and its formats — not merely something a schema would accept:

- root ``edXML`` with the QCVN namespace as default; ``edXMLEnvelope`` re-declares it with the
  prefix ``edXML`` and everything inside it is written ``edXML:``-prefixed;
- ``AttachmentEncoded/Attachment/*`` unprefixed (default namespace), except
  ``edXML:ContentTransferEncoded`` which carries its own ``xmlns:edXML`` declaration;
- dates ``yyyy/MM/dd``, timestamps ``yyyy/MM/dd HH:mm:ss`` (Vietnam time by default);
- attachments base64 (one line, no wrapping) with ``cid:`` ids matching the manifest.

Two ways out: :func:`write_package` returns bytes (small packages, tests), and
:func:`write_package_to` streams to a file, base64-encoding each attachment chunk by chunk and,
when given a key, signing on the way — so a 100 MB scanned PDF never sits in memory as base64
text. Both produce the same document structure.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lxml import etree

from connector import fsutil
from connector.edxml import signing
from connector.edxml.identifiers import (
    VIETNAM_TZ,
    format_date,
    format_timestamp,
    is_valid_organ_id,
    make_document_id,
    organ_id_problem,
)
from connector.edxml.model import (
    NAMESPACE,
    Attachment,
    Business,
    DocumentPackage,
    Organization,
    Package,
    ResponseFor,
    StaffInfo,
    StatusPackage,
)
from connector.errors import InputError

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_NS = "{" + NAMESPACE + "}"
# A multiple of 3 so that the base64 of consecutive chunks concatenates to the base64 of the whole.
BASE64_CHUNK = 3 * 256 * 1024

SUBJECT_MAX = 500
CONTENT_MAX = 500
PLACE_MAX = 150


@dataclass(frozen=True)
class WriterSettings:
    """How packages are written.

    ``timezone``: naive timestamps are written as they are; aware ones are converted to this zone.
    ``strict``: validate what we send (agency identifiers, required fields, lengths). Turn it off
    only to re-serialise a received package faithfully (round-trip tests, forwarding).
    ``pretty``: indent like the SDK samples (whitespace is covered by the signature either way).
    """

    timezone: dt.tzinfo = VIETNAM_TZ
    strict: bool = True
    pretty: bool = True


# -- public API -----------------------------------------------------------------------------------
_P = TypeVar("_P", bound=DocumentPackage | StatusPackage)


def prepare_package(package: _P) -> _P:
    """A copy of ``package`` with what the writer would generate filled in: the DocumentId by the
    convention and a ``cid`` for every attachment without one. Call it first when you need to know
    those values (to record them) before or after writing."""
    if isinstance(package, StatusPackage):
        return package
    changes: dict[str, Any] = {}
    if package.document_id is None:
        changes["document_id"] = conventional_document_id(package)
    if any(attachment.content_id is None for attachment in package.attachments):
        changes["attachments"] = [
            attachment if attachment.content_id is not None
            else dataclasses.replace(attachment, content_id=str(uuid.uuid4()))
            for attachment in package.attachments
        ]
    return dataclasses.replace(package, **changes) if changes else package


def conventional_document_id(package: DocumentPackage) -> str:
    """``<From OrganId>,<yyyy/MM/dd>,<CodeNumber>/<CodeNotation>`` or an InputError naming what
    is missing."""
    organ_id = package.from_.organ_id if package.from_ else None
    date = package.promulgation_info.date if package.promulgation_info else None
    number = package.code.number if package.code else None
    notation = package.code.notation if package.code else None
    if organ_id and date and number and notation:
        return make_document_id(organ_id, date, number, notation)
    missing = [name for name, value in (("From/OrganId", organ_id),
                                        ("PromulgationInfo/PromulgationDate", date),
                                        ("Code/CodeNumber", number),
                                        ("Code/CodeNotation", notation)) if not value]
    raise InputError(f"cannot generate the DocumentId: {', '.join(missing)} missing",
                     element="MessageHeader/DocumentId",
                     hint="give document_id explicitly or fill in the missing fields")


def write_package(package: Package, *, settings: WriterSettings | None = None) -> bytes:
    """The package as UTF-8 bytes with an XML declaration (unsigned; see signing.sign_package)."""
    settings = settings or WriterSettings()
    package = prepare_package(package)
    root = build_tree(package, settings,
                      encoded_text=lambda attachment, index: _base64_text(attachment))
    return serialize(root)


@dataclass(frozen=True)
class WrittenPackage:
    """What :func:`write_package_to` wrote: where, how big, the identifiers it used."""

    path: Path
    size: int
    document_id: str | None
    content_ids: tuple[str, ...]
    signed: bool
    warnings: tuple[str, ...] = ()


def write_package_to(package: Package, path: str | Path, *, signer=None, algorithm: str = "rsa-sha256",
                     settings: WriterSettings | None = None, fsync: bool = True) -> WrittenPackage:
    """Write the package to ``path`` without holding any attachment's base64 text in memory,
    signing it with ``signer`` (a :class:`~connector.edxml.keys.SigningKey`) when given.

    How signing works without the whole document in memory: the tree is built with a short
    unique placeholder in each ``ContentTransferEncoded``; its exclusive canonical form (the
    signature being excluded, as the enveloped-signature transform does) is split at the
    placeholders, and SHA-256 is fed the pieces with each file's base64 streamed in between —
    base64 contains no character that C14N escapes, so this is exactly the digest of the full
    document. SignedInfo is then built, canonicalised and signed, and the final document is
    streamed to disk the same way. The file appears under ``path`` only when complete
    (written to a temporary name, fsynced, renamed).
    """

    settings = settings or WriterSettings()
    package = prepare_package(package)
    path = Path(path)
    token = uuid.uuid4().hex
    attachments = package.attachments if isinstance(package, DocumentPackage) else []
    placeholders = [f"edxml-stream-{token}-{index}" for index in range(len(attachments))]
    for attachment in attachments:
        _check_readable(attachment)
    root = build_tree(package, settings, encoded_text=lambda attachment, index: placeholders[index],
                      signature_slot=signer is not None)
    warnings: list[str] = []
    if signer is not None:
        signature_slot = root.find(f"{_NS}edXMLEnvelope/{_NS}edXMLHeader/{signing.DS}Signature")
        canonical = signing.canonical_without(root, signature_slot)
        digest = signing.new_digest(algorithm)
        for piece in _interleave(canonical, placeholders, attachments):
            digest.update(piece)
        warnings += signing.fill_signature(signature_slot, digest.digest(), signer, algorithm)
    size = fsutil.replace_streamed(path, _interleave(serialize(root), placeholders, attachments),
                                   fsync=fsync)
    return WrittenPackage(path, size, getattr(package, "document_id", None),
                          tuple(a.content_id or "" for a in attachments), signer is not None, tuple(warnings))


def serialize(root: etree._Element) -> bytes:
    """UTF-8 with the SDK's double-quoted XML declaration."""
    return XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def iter_base64(attachment: Attachment, chunk: int = BASE64_CHUNK) -> Iterator[bytes]:
    """The attachment's base64, one line, produced chunk by chunk (constant memory)."""
    if attachment.data is not None:
        view = memoryview(attachment.data)
        for start in range(0, len(view), chunk):
            yield base64.b64encode(view[start:start + chunk])
        return
    if attachment.encoded is not None:  # re-sent as read: decoded and encoded again in pieces
        carry = b""
        for piece in attachment.chunks():
            block = carry + piece
            cut = len(block) - len(block) % 3
            carry = block[cut:]
            if cut:
                yield base64.b64encode(block[:cut])
        if carry:
            yield base64.b64encode(carry)
        return
    if attachment.path is None:
        return
    # O_NOFOLLOW and a regular-file check on the descriptor: a file the agency side swapped
    # for a link to one of our secrets after it was checked is refused, not sent.
    with fsutil.open_sendable(attachment.path) as handle:
        while True:
            block = handle.read(chunk)
            if not block:
                return
            # A short read before the end would break the 3-byte alignment; fill up.
            while len(block) % 3 and (more := handle.read(3 - len(block) % 3)):
                block += more
            yield base64.b64encode(block)


# -- tree building --------------------------------------------------------------------------------
def build_tree(package: Package, settings: WriterSettings,
               encoded_text: Callable[[Attachment, int], str], *,
               signature_slot: bool = False) -> etree._Element:
    """The package as an lxml tree; ``encoded_text`` supplies each ContentTransferEncoded text
    (the base64 itself, or a placeholder for streaming). With ``signature_slot`` an empty
    ``ds:Signature Id="placeholder"`` ends ``edXMLHeader`` (the place signatures go)."""
    if isinstance(package, StatusPackage):
        root = _build_status(package, settings)
    elif isinstance(package, DocumentPackage):
        root = _build_document(package, settings, encoded_text)
    else:
        raise TypeError(f"not an edXML package model: {type(package).__name__}")
    if signature_slot:
        header = root.find(f"{_NS}edXMLEnvelope/{_NS}edXMLHeader")
        etree.SubElement(header, f"{signing.DS}Signature", Id="placeholder",
                         nsmap={"ds": signing.XMLDSIG})
    if settings.pretty:
        etree.indent(root, space="  ")
    return root


def _skeleton() -> tuple[etree._Element, etree._Element, etree._Element]:
    root = etree.Element(f"{_NS}edXML", nsmap={None: NAMESPACE})
    envelope = etree.SubElement(root, f"{_NS}edXMLEnvelope", nsmap={"edXML": NAMESPACE})
    header = etree.SubElement(envelope, f"{_NS}edXMLHeader")
    return root, envelope, header


def _build_document(package: DocumentPackage, settings: WriterSettings,
                    encoded_text: Callable[[Attachment, int], str]) -> etree._Element:
    strict = settings.strict
    if strict:
        _validate_document(package)
    root, envelope, header = _skeleton()
    message = _sub(header, "MessageHeader")
    _organization(message, "From", package.from_)
    for organization in package.to:
        _organization(message, "To", organization)
    _text(message, "DocumentId", package.document_id)
    if package.code is not None:
        code = _sub(message, "Code")
        _text(code, "CodeNumber", package.code.number)
        _text(code, "CodeNotation", package.code.notation)
    if package.promulgation_info is not None:
        info = _sub(message, "PromulgationInfo")
        _text(info, "Place", package.promulgation_info.place)
        _date(info, "PromulgationDate", package.promulgation_info.date)
    if package.document_type is not None:
        kind = _sub(message, "DocumentType")
        _text(kind, "Type", package.document_type.type)
        _text(kind, "TypeDetail", package.document_type.type_detail)
        _text(kind, "TypeName", package.document_type.type_name)
    _text(message, "Subject", package.subject)
    _text(message, "Content", package.content)
    if package.signer_info is not None:
        signer = _sub(message, "SignerInfo")
        _text(signer, "Competence", package.signer_info.competence)
        _text(signer, "Position", package.signer_info.position)
        _text(signer, "FullName", package.signer_info.full_name)
    _date(message, "DueDate", package.due_date)
    if package.other_info is not None:
        other = package.other_info
        element = _sub(message, "OtherInfo")
        for name, value in (("Priority", other.priority),
                            ("SphereOfPromulgation", other.sphere_of_promulgation),
                            ("TyperNotation", other.typer_notation),
                            ("PromulgationAmount", other.promulgation_amount),
                            ("PageAmount", other.page_amount), ("Direction", other.direction)):
            _text(element, name, value)
        if other.appendixes is not None:
            appendixes = _sub(element, "Appendixes")
            for appendix in other.appendixes:
                _text(appendixes, "Appendix", appendix)
    for response in package.response_for:
        # Document order as in the SDK revocation sample: OrganId, Code, DocumentId, PromulgationDate.
        element = _sub(message, "ResponseFor")
        _text(element, "OrganId", response.organ_id)
        _text(element, "Code", response.code)
        _text(element, "DocumentId", response.document_id)
        _date(element, "PromulgationDate", response.promulgation_date)
    _text(message, "SteeringType", package.steering_type)
    if package.to_places is not None:
        places = _sub(message, "ToPlaces")
        for place in package.to_places:
            _text(places, "Place", place)

    trace_list = _sub(header, "TraceHeaderList")
    for trace in package.trace_headers:
        element = _sub(trace_list, "TraceHeader")
        _text(element, "OrganId", trace.organ_id)
        _timestamp(element, "Timestamp", trace.timestamp, settings)
    if package.business is not None:
        _business(trace_list, package.business)

    body = _sub(envelope, "edXMLBody")
    manifest = _sub(body, "edXMLManifest")
    manifest.set("version", "1.0")
    for attachment in package.attachments:
        reference = _sub(manifest, "Reference")
        _text(reference, "ContentId", _cid(attachment))
        _text(reference, "ContentType", attachment.content_type)
        _text(reference, "Description", attachment.description)
        _text(reference, "AttachmentName", attachment.name)
    if package.attachments:
        encoded = _sub(root, "AttachmentEncoded")
        for index, attachment in enumerate(package.attachments):
            element = _sub(encoded, "Attachment")
            _text(element, "ContentId", _cid(attachment))
            _text(element, "AttachmentName", attachment.name)
            _text(element, "Description", attachment.description)
            _text(element, "ContentType", attachment.content_type)
            transfer = etree.SubElement(element, f"{_NS}ContentTransferEncoded", nsmap={"edXML": NAMESPACE})
            transfer.text = encoded_text(attachment, index)
    return root


def _business(parent: etree._Element, business: Business) -> None:
    element = _sub(parent, "Bussiness")  # sic: the SDK's spelling
    _text(element, "DocumentId", business.document_id)
    _text(element, "BussinessDocType", str(int(business.business_doc_type)))
    _text(element, "BussinessDocReason", business.business_doc_reason)
    _text(element, "Paper", business.paper)
    info = business.business_document_info
    if info is not None:
        info_element = _sub(element, "BussinessDocumentInfo")
        _text(info_element, "DocumentInfo", info.document_info)
        _text(info_element, "DocumentReceiver", info.document_receiver)
        receivers = _sub(info_element, "ReceiverList")
        for receiver in info.receivers:
            receiver_element = _sub(receivers, "Receiver")
            _text(receiver_element, "OrganId", receiver.organ_id)
            _text(receiver_element, "ReceiverType", receiver.receiver_type)
    if business.replacement_info_list is not None:
        replacements = _sub(element, "ReplacementInfoList")
        for replacement in business.replacement_info_list:
            replacement_element = _sub(replacements, "ReplacementInfo")
            _text(replacement_element, "DocumentId", replacement.document_id)
            organ_ids = _sub(replacement_element, "OrganIdList")
            for organ_id in replacement.organ_ids:
                _text(organ_ids, "OrganId", organ_id)
    if business.staff_info is not None:
        _staff(element, business.staff_info, ("Department", "Staff", "Email", "Mobile"))


def _build_status(package: StatusPackage, settings: WriterSettings) -> etree._Element:
    if settings.strict:
        _validate_status(package)
    root, _envelope, header = _skeleton()
    message = _sub(header, "MessageHeader")
    # The SDK's status samples (01-06, 13, 15, 16) order these children differently from
    # document headers; follow them.
    _organization(message, "From", package.from_, status_order=True)
    response = package.response_for or ResponseFor()
    element = _sub(message, "ResponseFor")
    _text(element, "OrganId", response.organ_id)
    _text(element, "Code", response.code)
    _date(element, "PromulgationDate", response.promulgation_date)
    _text(element, "DocumentId", response.document_id)
    if package.staff_info is not None:
        _staff(message, package.staff_info, ("Department", "Staff", "Mobile", "Email"))
    code = package.status_code
    _text(message, "StatusCode", code.value if hasattr(code, "value") else code)
    _text(message, "Description", package.description)
    _timestamp(message, "Timestamp", package.timestamp, settings)
    return root


def _organization(parent: etree._Element, name: str, organization: Organization | None,
                  *, status_order: bool = False) -> None:
    organization = organization or Organization()
    element = _sub(parent, name)
    _text(element, "OrganId", organization.organ_id)
    pair = (("OrganName", organization.organ_name),
            ("OrganizationInCharge", organization.organization_in_charge))
    for tag, value in (pair if status_order else pair[::-1]):
        _text(element, tag, value)
    _text(element, "OrganAdd", organization.organ_add)
    _text(element, "Email", organization.email)
    _text(element, "Telephone", organization.telephone)
    _text(element, "Fax", organization.fax)
    _text(element, "Website", organization.website)


def _staff(parent: etree._Element, staff: StaffInfo, order: tuple[str, ...]) -> None:
    element = _sub(parent, "StaffInfo")
    values = {"Department": staff.department, "Staff": staff.staff, "Email": staff.email,
              "Mobile": staff.mobile}
    for tag in order:
        _text(element, tag, values[tag])


def _sub(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, _NS + name)


def _text(parent: etree._Element, name: str, value: str | None) -> None:
    """Omit None; write "" as an empty element (a round trip keeps the difference). Empty
    elements are written ``<x/>``, as every re-serialisation (signing) writes them."""
    if value is None:
        return
    element = etree.SubElement(parent, _NS + name)
    try:
        element.text = str(value) or None
    except ValueError as error:
        parent.remove(element)
        raise InputError(f"value {str(value)[:40]!r} cannot be written in XML "
                         "(control characters or invalid Unicode)",
                         element=_path(parent) + "/" + name,
                         hint="remove control characters from the field") from error


def _date(parent: etree._Element, name: str, value: dt.date | None) -> None:
    if value is not None:
        _text(parent, name, format_date(value) if isinstance(value, dt.date) else str(value))


def _timestamp(parent: etree._Element, name: str, value: dt.datetime | None,
               settings: WriterSettings) -> None:
    if value is not None:
        _text(parent, name, format_timestamp(value, settings.timezone))


def _cid(attachment: Attachment) -> str:
    content_id = attachment.content_id or ""
    return content_id if content_id.startswith("cid:") else "cid:" + content_id


def _path(element: etree._Element) -> str:
    names = [etree.QName(node).localname for node in (*reversed(list(element.iterancestors())), element)]
    return "/".join(n for n in names if n not in ("edXML", "edXMLEnvelope", "edXMLHeader")) or names[-1]


def _base64_text(attachment: Attachment) -> str:
    _check_readable(attachment)
    return base64.b64encode(attachment.read_bytes()).decode("ascii")


def _check_readable(attachment: Attachment) -> None:
    if attachment.data is None and attachment.path is not None and not Path(attachment.path).is_file():
        raise InputError(f"attachment file {attachment.path} does not exist", file=str(attachment.path),
                         element="AttachmentEncoded/Attachment",
                         hint="give an existing file for every attachment")


def _interleave(text: bytes, placeholders: list[str], attachments: list[Attachment]) -> Iterator[bytes]:
    """``text`` with each placeholder replaced by the streamed base64 of its attachment."""
    position = 0
    for placeholder, attachment in zip(placeholders, attachments, strict=True):
        marker = placeholder.encode("ascii")
        found = text.index(marker, position)
        yield text[position:found]
        yield from iter_base64(attachment)
        position = found + len(marker)
    yield text[position:]


# -- validation (strict: what we send) -----------------------------------------------------------
def _require_organ_id(value: str | None, element: str) -> None:
    if not value:
        raise InputError("agency identifier missing", element=element,
                         hint="give the QCVN 102:2016 identifier, e.g. 000.00.00.G22")
    if not is_valid_organ_id(value):
        raise InputError(organ_id_problem(value) or "not a valid OrganId", element=element,
                         hint="use the identifier exactly as issued (NNN.NN.NN.ANN)")


def _check_length(value: str | None, limit: int, element: str) -> None:
    if value is not None and len(value) > limit:
        raise InputError(f"{len(value)} characters, more than the {limit} allowed", element=element,
                         hint=f"shorten it to at most {limit} characters")


def _validate_document(package: DocumentPackage) -> None:
    _require_organ_id(package.from_.organ_id if package.from_ else None, "MessageHeader/From/OrganId")
    if not package.to:
        raise InputError("a document needs at least one recipient", element="MessageHeader/To",
                         hint="add a To organisation")
    seen: set[str | None] = set()
    for index, organization in enumerate(package.to, start=1):
        _require_organ_id(organization.organ_id, f"MessageHeader/To[{index}]/OrganId")
        if organization.organ_id in seen:
            raise InputError(f"recipient {organization.organ_id} appears twice",
                             element=f"MessageHeader/To[{index}]/OrganId", hint="list each recipient once")
        seen.add(organization.organ_id)
    if not package.subject:
        raise InputError("Subject is required", element="MessageHeader/Subject",
                         hint="give the document's subject (trích yếu)")
    _check_length(package.subject, SUBJECT_MAX, "MessageHeader/Subject")
    _check_length(package.content, CONTENT_MAX, "MessageHeader/Content")
    for index, place in enumerate(package.to_places or (), start=1):
        _check_length(place, PLACE_MAX, f"MessageHeader/ToPlaces/Place[{index}]")
    for index, trace in enumerate(package.trace_headers, start=1):
        _require_organ_id(trace.organ_id, f"TraceHeaderList/TraceHeader[{index}]/OrganId")
    business = package.business
    if business is not None:
        info = business.business_document_info
        for index, receiver in enumerate(info.receivers if info else (), start=1):
            _require_organ_id(receiver.organ_id,
                              f"Bussiness/BussinessDocumentInfo/ReceiverList/Receiver[{index}]/OrganId")
        for index, replacement in enumerate(business.replacement_info_list or (), start=1):
            for organ_id in replacement.organ_ids:
                _require_organ_id(
                    organ_id, f"Bussiness/ReplacementInfoList/ReplacementInfo[{index}]/OrganIdList")
    content_ids: set[str] = set()
    for index, attachment in enumerate(package.attachments, start=1):
        if not attachment.name:
            raise InputError("attachment without a name", element=f"edXMLManifest/Reference[{index}]",
                             hint="give every attachment a file name")
        cid = _cid(attachment)
        if cid in content_ids:
            raise InputError(f"content id {cid} used twice", element=f"edXMLManifest/Reference[{index}]",
                             hint="give each attachment its own content id")
        content_ids.add(cid)


def _validate_status(package: StatusPackage) -> None:
    _require_organ_id(package.from_.organ_id if package.from_ else None, "MessageHeader/From/OrganId")
    response = package.response_for
    _require_organ_id(response.organ_id if response else None, "MessageHeader/ResponseFor/OrganId")
    if not response or not response.document_id:
        raise InputError("the status must name the document it answers",
                         element="MessageHeader/ResponseFor/DocumentId",
                         hint="give the DocumentId of the original document")
    code = package.status_code.value if hasattr(package.status_code, "value") else package.status_code
    if not (isinstance(code, str) and len(code) == 2 and code.isdigit()):
        raise InputError(f"status code {code!r} is not two digits", element="MessageHeader/StatusCode",
                         hint="use 01-06, 13, 15 or 16")

