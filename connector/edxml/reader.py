"""Reading edXML packages from any writer into the typed model.

Received packages come from many writers: the official SDKs, agency rewrites and hand-edited test
files. The rule (see the format doc) is *read leniently, say what was odd*: children are looked up
by local name and in any order, both spellings of ``Bussiness`` and both date formats are accepted,
``cid:`` may be on one side only, empty optional elements never fail a package, unknown extension
elements are ignored with a warning, and the legacy namespace is accepted. A package that uses a
namespace prefix without declaring it (seen in real test traffic) is repaired by declaring the
prefix on the root element — on the same line, so every line number stays true — and read with a
warning.

What cannot be guessed is refused with ONE :class:`~connector.errors.EdxmlError` that names the
file, the line and the element path, so an operator can tell the sender exactly what to fix: XML
that is not well-formed beyond that repair, no ``From/OrganId``, a document without ``To``, a
duplicate ``To/OrganId``, a manifest entry without its attachment, invalid base64, a status
without ``StatusCode``.

The work is split by concern: :mod:`connector.edxml.prefix_repair` parses (and repairs) the
bytes, :mod:`connector.edxml.element_reader` holds the lenient lookup helpers,
:mod:`connector.edxml.attachment_reader` reads the manifest and the base64 parts, and this module
interprets the header, the trace list and status packages. A package read from a file leaves its
long attachment texts in the file (:mod:`connector.edxml.lifted_package`): its attachments are
decoded in pieces when they are used, so a 150 MB scan is never held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from connector.edxml.attachment_reader import AttachmentReader
from connector.edxml.element_reader import ElementReader, line_of, split_tag
from connector.edxml.lifted_package import LiftedTexts, parse_file_lifted
from connector.edxml.model import (
    LEGACY_NAMESPACE,
    NAMESPACE,
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
from connector.edxml.prefix_repair import parse_package
from connector.edxml.xmlparse import ParseLimits, read_limited
from connector.errors import EdxmlError

MAX_SUBJECT_LENGTH = 500
MAX_CONTENT_LENGTH = 500
MAX_PLACE_LENGTH = 150

_ORGANIZATION_FIELDS = {
    "OrganId": "organ_id", "OrganizationInCharge": "organization_in_charge",
    "OrganName": "organ_name", "OrganAdd": "organ_add", "Email": "email",
    "Telephone": "telephone", "Fax": "fax", "Website": "website",
}
_STAFF_FIELDS = {"Department": "department", "Staff": "staff", "Email": "email", "Mobile": "mobile"}
_DOCUMENT_HEADER = {
    "From", "To", "DocumentId", "Code", "PromulgationInfo", "DocumentType", "Subject", "Content",
    "SignerInfo", "DueDate", "OtherInfo", "ResponseFor", "SteeringType", "ToPlaces",
}
_STATUS_HEADER = {"From", "ResponseFor", "StaffInfo", "StatusCode", "Description", "Timestamp"}
_BUSINESS_CHILDREN = {
    "DocumentId", "BussinessDocType", "BusinessDocType", "BussinessDocReason", "BusinessDocReason",
    "Paper", "BussinessDocumentInfo", "BusinessDocumentInfo", "ReplacementInfoList", "StaffInfo",
}


@dataclass
class ReadResult:
    """What :func:`read_package` found: the model, what was odd about it, and its namespace URI
    (``""`` when the package uses none)."""

    package: DocumentPackage | StatusPackage
    warnings: list[str] = field(default_factory=list)
    namespace: str = NAMESPACE


def read_package(source: bytes | str | Path, *, limits: ParseLimits = ParseLimits(),
                 file: str | None = None) -> ReadResult:
    """Read a package from bytes or a file path; raise :class:`EdxmlError` when it is unusable.

    The size limit is checked before the file is read; parsing never resolves entities or DTDs.
    """
    if file is None and isinstance(source, str | Path):
        file = str(source)
    try:
        lifted = parse_file_lifted(Path(source), limits, file=file) \
            if isinstance(source, str | Path) else None
        if lifted is not None:
            root, texts = lifted
            return _PackageReader(root, file, [], texts).read()
        data = read_limited(source, limits, file=file)
    except OSError as error:
        raise EdxmlError(f"cannot read the package: {error.strerror or error}", file=file,
                         hint="check the path and its permissions") from error
    tree, warnings = parse_package(data, limits=limits, file=file)
    del data  # the tree holds everything now; a 100 MB package need not be held twice
    return _PackageReader(tree.getroot(), file, warnings).read()


class _PackageReader(ElementReader):
    """One pass over a parsed tree. Collects warnings; raises on the first unusable defect."""

    def __init__(self, root: etree._Element, file: str | None, warnings: list[str],
                 lifted: LiftedTexts | None = None) -> None:
        namespace, _ = split_tag(root.tag) if isinstance(root.tag, str) else (None, "")
        super().__init__(file, warnings, {NAMESPACE, LEGACY_NAMESPACE, None, namespace})
        self.root = root
        self.lifted = lifted
        self.namespace = namespace or ""

    def read(self) -> ReadResult:
        root = self.root
        namespace, local = split_tag(root.tag)
        if local != "edXML":
            raise self.error(f"the root element is {local!r}, not edXML: this is not an edXML "
                             "package", element=local, line=root.sourceline,
                             hint="check that the right file was given or received")
        if namespace == LEGACY_NAMESPACE:
            self.warn(f"the package uses the legacy namespace {LEGACY_NAMESPACE}; read as "
                      "QCVN 102:2016")
        elif namespace != NAMESPACE:
            self.warn(f"the package uses the namespace {namespace or '(none)'} instead of "
                      f"{NAMESPACE}; read by element names")
        path = "edXML"
        groups = self.children(root, path, {"edXMLEnvelope", "AttachmentEncoded"})
        envelope = self.one(groups, "edXMLEnvelope", path)
        if envelope is None:
            raise self.error("the package has no edXMLEnvelope", element=f"{path}/edXMLEnvelope",
                             line=root.sourceline, hint="this is not an edXML package")
        encoded_blocks = list(groups.get("AttachmentEncoded", []))
        env_path = f"{path}/edXMLEnvelope"
        env = self.children(envelope, env_path, {"edXMLHeader", "edXMLBody", "AttachmentEncoded"})
        for misplaced in env.get("AttachmentEncoded", []):
            self.warn(f"AttachmentEncoded found inside edXMLEnvelope (line {misplaced.sourceline}) "
                      "instead of after it; read anyway")
            encoded_blocks.append(misplaced)
        header = self.one(env, "edXMLHeader", env_path)
        header_path = f"{env_path}/edXMLHeader"
        if header is None:
            raise self.error("the package has no edXMLHeader", element=header_path,
                             line=envelope.sourceline, hint="ask the sender for a complete package")
        hdr = self.children(header, header_path, {"MessageHeader", "TraceHeaderList", "Signature"},
                            foreign_ok={"Signature"})
        message_header = self.one(hdr, "MessageHeader", header_path)
        mh_path = f"{header_path}/MessageHeader"
        if message_header is None:
            raise self.error("the package has no MessageHeader", element=mh_path,
                             line=header.sourceline, hint="ask the sender for a complete package")
        body = self.one(env, "edXMLBody", env_path)

        peek = {(split_tag(c.tag)[1]) for c in message_header if isinstance(c.tag, str)}
        if "StatusCode" in peek:
            if body is not None or encoded_blocks or hdr.get("TraceHeaderList"):
                self.warn("a status package carries a body, attachments or a TraceHeaderList; "
                          "they are ignored")
            package: DocumentPackage | StatusPackage = self.read_status(message_header, mh_path)
        elif ("To" not in peek and body is None and not encoded_blocks
              and not hdr.get("TraceHeaderList") and peek & {"Timestamp", "Description"}):
            raise self.error("this status package has no StatusCode", element=f"{mh_path}/StatusCode",
                             line=message_header.sourceline,
                             hint="a status needs a two-digit StatusCode (01-06, 13, 15, 16)")
        else:
            package = self.read_document(message_header, mh_path, hdr, header_path, body,
                                         f"{env_path}/edXMLBody", encoded_blocks)
        return ReadResult(package=package, warnings=self.warnings, namespace=self.namespace)

    # ---- organisations ------------------------------------------------------------------

    def read_organization(self, element: etree._Element, path: str, *, role: str) -> Organization:
        known = set(_ORGANIZATION_FIELDS)
        if role == "From":
            known = known | {"From"}
        groups = self.children(element, path, known)
        nested = groups.pop("From", None)
        if nested and not groups.get("OrganId"):
            self.warn(f"recovered defect: {path} holds a nested From (line {nested[0].sourceline}); "
                      "the inner one is read")
            return self.read_organization(nested[0], f"{path}/From", role="inner")
        if nested:
            self.warn(f"ignored nested element {path}/From (line {nested[0].sourceline})")
        values = {attr: self.field_text(groups, name, path)
                  for name, attr in _ORGANIZATION_FIELDS.items()}
        organization = Organization(**values)
        if not organization.organ_id:
            raise self.error(f"{role}/OrganId is missing or empty", element=f"{path}/OrganId",
                             line=element.sourceline,
                             hint="every organisation in a package needs its agency identifier")
        self.check_organ_id(organization.organ_id, f"{path}/OrganId")
        return organization

    def read_from(self, groups, mh_path: str, header_line: int) -> Organization:
        element = self.one(groups, "From", mh_path)
        if element is None:
            raise self.error("the package has no From", element=f"{mh_path}/From/OrganId",
                             line=header_line, hint="the sender must identify itself in From/OrganId")
        return self.read_organization(element, f"{mh_path}/From", role="From")

    # ---- document packages ---------------------------------------------------------------

    def read_document(self, message_header, mh_path, hdr, header_path, body, body_path,
                      encoded_blocks) -> DocumentPackage:
        groups = self.children(message_header, mh_path, _DOCUMENT_HEADER)
        from_ = self.read_from(groups, mh_path, message_header.sourceline)
        to_elements = groups.get("To", [])
        if not to_elements:
            raise self.error("the document has no To", element=f"{mh_path}/To",
                             line=message_header.sourceline,
                             hint="a document package must name at least one receiver in To")
        recipients: list[Organization] = []
        seen: dict[str | None, int] = {}
        for index, element in enumerate(to_elements, start=1):
            path = f"{mh_path}/To[{index}]" if len(to_elements) > 1 else f"{mh_path}/To"
            organization = self.read_organization(element, path, role="To")
            if organization.organ_id in seen:
                raise self.error(
                    f"To/OrganId {organization.organ_id} appears twice (To[{seen[organization.organ_id]}]"
                    f" and To[{index}])", element=f"{path}/OrganId", line=element.sourceline,
                    hint="each receiver may be named once; ask the sender to remove the duplicate")
            seen[organization.organ_id] = index
            recipients.append(organization)

        package = DocumentPackage(from_=from_, to=recipients)
        package.document_id = self.field_text(groups, "DocumentId", mh_path)
        code = self.one(groups, "Code", mh_path)
        if code is not None:
            path = f"{mh_path}/Code"
            cg = self.children(code, path, {"CodeNumber", "CodeNotation"})
            package.code = Code(number=self.field_text(cg, "CodeNumber", path),
                                notation=self.field_text(cg, "CodeNotation", path))
        info = self.one(groups, "PromulgationInfo", mh_path)
        if info is not None:
            path = f"{mh_path}/PromulgationInfo"
            ig = self.children(info, path, {"Place", "PromulgationDate"})
            package.promulgation_info = PromulgationInfo(
                place=self.field_text(ig, "Place", path),
                date=self.field_date(ig, "PromulgationDate", path))
        doc_type = self.one(groups, "DocumentType", mh_path)
        if doc_type is not None:
            path = f"{mh_path}/DocumentType"
            tg = self.children(doc_type, path, {"Type", "TypeDetail", "TypeName"})
            package.document_type = DocumentType(type=self.field_text(tg, "Type", path),
                                                 type_detail=self.field_text(tg, "TypeDetail", path),
                                                 type_name=self.field_text(tg, "TypeName", path))
        package.subject = self.field_text(groups, "Subject", mh_path)
        self.check_length(package.subject, MAX_SUBJECT_LENGTH, f"{mh_path}/Subject")
        if not package.subject:
            self.warn(f"{mh_path}/Subject is missing or empty (the format requires it)")
        package.content = self.field_text(groups, "Content", mh_path)
        self.check_length(package.content, MAX_CONTENT_LENGTH, f"{mh_path}/Content")
        signer = self.one(groups, "SignerInfo", mh_path)
        if signer is not None:
            path = f"{mh_path}/SignerInfo"
            sg = self.children(signer, path, {"Competence", "Position", "FullName"})
            package.signer_info = SignerInfo(competence=self.field_text(sg, "Competence", path),
                                             position=self.field_text(sg, "Position", path),
                                             full_name=self.field_text(sg, "FullName", path))
        package.due_date = self.field_date(groups, "DueDate", mh_path)
        other = self.one(groups, "OtherInfo", mh_path)
        if other is not None:
            package.other_info = self.read_other_info(other, f"{mh_path}/OtherInfo")
        for element in groups.get("ResponseFor", []):
            package.response_for.append(self.read_response_for(element, f"{mh_path}/ResponseFor"))
        package.steering_type = self.field_text(groups, "SteeringType", mh_path)
        places = self.one(groups, "ToPlaces", mh_path)
        if places is not None:
            path = f"{mh_path}/ToPlaces"
            pg = self.children(places, path, {"Place"})
            package.to_places = []
            for element in pg.get("Place", []):
                value = self.text(element, f"{path}/Place") or ""
                self.check_length(value, MAX_PLACE_LENGTH, f"{path}/Place")
                package.to_places.append(value)

        trace_list = self.one(hdr, "TraceHeaderList", header_path)
        if trace_list is not None:
            self.read_trace_list(trace_list, f"{header_path}/TraceHeaderList", package)
        package.attachments = AttachmentReader(self.file, self.warnings, self.accepted,
                                               self.lifted).read(body, body_path, encoded_blocks)
        return package

    def read_other_info(self, element, path: str) -> OtherInfo:
        og = self.children(element, path, {"Priority", "SphereOfPromulgation", "TyperNotation",
                                           "PromulgationAmount", "PageAmount", "Direction",
                                           "Appendixes"})
        info = OtherInfo(
            priority=self.field_text(og, "Priority", path),
            sphere_of_promulgation=self.field_text(og, "SphereOfPromulgation", path),
            typer_notation=self.field_text(og, "TyperNotation", path),
            promulgation_amount=self.field_text(og, "PromulgationAmount", path),
            page_amount=self.field_text(og, "PageAmount", path),
            direction=self.field_text(og, "Direction", path))
        appendixes = self.one(og, "Appendixes", path)
        if appendixes is not None:
            apath = f"{path}/Appendixes"
            ag = self.children(appendixes, apath, {"Appendix"})
            info.appendixes = [self.text(a, f"{apath}/Appendix") or "" for a in ag.get("Appendix", [])]
        return info

    def read_response_for(self, element, path: str) -> ResponseFor:
        rg = self.children(element, path, {"OrganId", "Code", "PromulgationDate", "DocumentId"})
        response = ResponseFor(organ_id=self.field_text(rg, "OrganId", path),
                               code=self.field_text(rg, "Code", path),
                               promulgation_date=self.field_date(rg, "PromulgationDate", path),
                               document_id=self.field_text(rg, "DocumentId", path))
        self.check_organ_id(response.organ_id, f"{path}/OrganId")
        return response

    def read_staff(self, element, path: str) -> StaffInfo:
        sg = self.children(element, path, set(_STAFF_FIELDS))
        return StaffInfo(**{attr: self.field_text(sg, name, path)
                            for name, attr in _STAFF_FIELDS.items()})

    def read_trace_list(self, element, path: str, package: DocumentPackage) -> None:
        tg = self.children(element, path, {"TraceHeader", "Bussiness", "Business"})
        for trace in tg.get("TraceHeader", []):
            tpath = f"{path}/TraceHeader"
            hg = self.children(trace, tpath, {"OrganId", "Timestamp"})
            header = TraceHeader(organ_id=self.field_text(hg, "OrganId", tpath),
                                 timestamp=self.field_timestamp(hg, "Timestamp", tpath))
            self.check_organ_id(header.organ_id, f"{tpath}/OrganId")
            package.trace_headers.append(header)
        business, name = self.either(tg, ("Bussiness", "Business"), path)
        if business is not None:
            package.business = self.read_business(business, f"{path}/{name}")

    def read_business(self, element, path: str) -> Business:
        bg = self.children(element, path, _BUSINESS_CHILDREN)
        type_element, type_name = self.either(bg, ("BussinessDocType", "BusinessDocType"), path)
        raw_type = self.text(type_element, f"{path}/{type_name}")
        if not raw_type:
            self.warn(f"{path}/BussinessDocType is missing or empty; read as 0 (new document)")
            doc_type = BusinessType.NEW
        else:
            try:
                doc_type = BusinessType(int(raw_type))
            except ValueError:
                raise self.error(f"BussinessDocType {raw_type!r} is not one of 0 (new), 1 (revoke), "
                                 "2 (update), 3 (replace)", element=f"{path}/{type_name}",
                                 line=line_of(type_element),
                                 hint="the package's purpose is unknown; ask the sender") from None
        reason_element, reason_name = self.either(bg, ("BussinessDocReason", "BusinessDocReason"),
                                                  path)
        business = Business(business_doc_type=doc_type,
                            business_doc_reason=self.text(reason_element, f"{path}/{reason_name}"),
                            paper=self.field_text(bg, "Paper", path),
                            document_id=self.field_text(bg, "DocumentId", path))
        info, info_name = self.either(bg, ("BussinessDocumentInfo", "BusinessDocumentInfo"), path)
        if info is not None:
            business.business_document_info = self.read_business_info(info, f"{path}/{info_name}")
        replacements = self.one(bg, "ReplacementInfoList", path)
        if replacements is not None:
            business.replacement_info_list = self.read_replacements(
                replacements, f"{path}/ReplacementInfoList")
        staff = self.one(bg, "StaffInfo", path)
        if staff is not None:
            business.staff_info = self.read_staff(staff, f"{path}/StaffInfo")
        return business

    def read_business_info(self, element, path: str) -> BusinessDocumentInfo:
        ig = self.children(element, path, {"DocumentInfo", "DocumentReceiver", "ReceiverList"})
        info = BusinessDocumentInfo(document_info=self.field_text(ig, "DocumentInfo", path),
                                    document_receiver=self.field_text(ig, "DocumentReceiver", path))
        receivers = self.one(ig, "ReceiverList", path)
        if receivers is not None:
            rpath = f"{path}/ReceiverList"
            for receiver in self.children(receivers, rpath, {"Receiver"}).get("Receiver", []):
                epath = f"{rpath}/Receiver"
                eg = self.children(receiver, epath, {"OrganId", "ReceiverType"})
                entry = Receiver(organ_id=self.field_text(eg, "OrganId", epath),
                                 receiver_type=self.field_text(eg, "ReceiverType", epath))
                self.check_organ_id(entry.organ_id, f"{epath}/OrganId")
                info.receivers.append(entry)
        return info

    def read_replacements(self, element, path: str) -> list[ReplacementInfo]:
        result = []
        for replacement in self.children(element, path, {"ReplacementInfo"}).get("ReplacementInfo",
                                                                                   []):
            rpath = f"{path}/ReplacementInfo"
            rg = self.children(replacement, rpath, {"DocumentId", "OrganIdList"})
            info = ReplacementInfo(document_id=self.field_text(rg, "DocumentId", rpath))
            organ_list = self.one(rg, "OrganIdList", rpath)
            if organ_list is not None:
                lpath = f"{rpath}/OrganIdList"
                for organ in self.children(organ_list, lpath, {"OrganId"}).get("OrganId", []):
                    value = self.text(organ, f"{lpath}/OrganId") or ""
                    self.check_organ_id(value, f"{lpath}/OrganId")
                    info.organ_ids.append(value)
            result.append(info)
        return result

    # ---- attachments --------------------------------------------------------------------


    def read_status(self, message_header, mh_path: str) -> StatusPackage:
        groups = self.children(message_header, mh_path, _STATUS_HEADER)
        from_ = self.read_from(groups, mh_path, message_header.sourceline)
        code_element = self.one(groups, "StatusCode", mh_path)
        raw_code = self.text(code_element, f"{mh_path}/StatusCode")
        if not raw_code:
            raise self.error("StatusCode is empty", element=f"{mh_path}/StatusCode",
                             line=line_of(code_element),
                             hint="a status needs a two-digit StatusCode (01-06, 13, 15, 16)")
        code: StatusCode | str
        normalized = raw_code.zfill(2) if raw_code.isdigit() and len(raw_code) == 1 else raw_code
        try:
            code = StatusCode(normalized)
        except ValueError:
            code = raw_code
            self.warn(f"{mh_path}/StatusCode {raw_code!r} is not a known status code "
                      "(01-06, 13, 15, 16); kept as received")
        else:
            if normalized != raw_code:
                self.warn(f"{mh_path}/StatusCode {raw_code!r} read as {normalized!r}")
        response_element = self.one(groups, "ResponseFor", mh_path)
        if response_element is None:
            raise self.error("the status has no ResponseFor", element=f"{mh_path}/ResponseFor",
                             line=message_header.sourceline,
                             hint="a status must name the document it is about in ResponseFor")
        response_for = self.read_response_for(response_element, f"{mh_path}/ResponseFor")
        if not response_for.document_id:
            self.warn(f"{mh_path}/ResponseFor/DocumentId is missing or empty; the status cannot "
                      "be matched to a document by its identifier")
        staff_element = self.one(groups, "StaffInfo", mh_path)
        return StatusPackage(
            from_=from_, response_for=response_for, status_code=code,
            staff_info=(self.read_staff(staff_element, f"{mh_path}/StaffInfo")
                        if staff_element is not None else None),
            description=self.field_text(groups, "Description", mh_path),
            timestamp=self.field_timestamp(groups, "Timestamp", mh_path))


__all__ = ["MAX_CONTENT_LENGTH", "MAX_PLACE_LENGTH", "MAX_SUBJECT_LENGTH", "ReadResult",
           "parse_package", "read_package"]
