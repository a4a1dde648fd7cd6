"""From "what the DMS asked" to the format model: document, status and take-back packages.

The metadata file (``pack METADATA.yaml``, an outbox bundle's ``document.yaml``, a DMS-database
row) says what to send in the DMS's terms: ISO dates, a business *kind* by name, attachment files by
name. This module turns that into :mod:`connector.edxml.model` objects with everything the SDK
writes filled in — the sender defaulting to the agency, the DocumentId by the SDK convention, the
business reason per type, a TraceHeader stamped with the sender and the current Vietnam time — so
that the writer never has to guess and the daemon reuses exactly what the command line does.

Nothing here touches the network or writes a file; attachment files are only checked and handed
to :func:`connector.edxml.attachments.prepare_outgoing`, which applies the ZIP convention.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from connector.edxml import model
from connector.edxml.attachments import ZipConvention, prepare_outgoing
from connector.edxml.identifiers import make_document_id, now_vietnam, organ_id_problem
from connector.errors import InputError
from connector.schemas import document as schema

AttachmentFiles = Sequence[Path | str] | Mapping[str, Path | str]

# Statuses the receiver of a document sends back to its sender; 13 travels the other way.
RECEIVER_STATUSES = frozenset(code for code in model.StatusCode if not code.sent_by_original_sender)


# --------------------------------------------------------------------------- document packages

def build_document(metadata: schema.DocumentMetadata, attachment_files: AttachmentFiles = (), *,
                   agency: model.Organization | None = None,
                   convention: ZipConvention | None = None,
                   now: dt.datetime | None = None,
                   source: str | None = None) -> model.DocumentPackage:
    """A complete document package for ``metadata`` with the given attachment files.

    ``agency`` is the sender when the metadata has no ``from`` (the daemon passes the configured
    agency). ``attachment_files`` is either a list of paths (matched to ``attachments[].file`` by
    file name) or a mapping ``file name -> path`` (a bundle folder's listing). ``source`` names the
    metadata file in error messages. ``now`` (naive Vietnam time) fixes the TraceHeader timestamp
    and the default promulgation date, for reproducible output.
    """
    if metadata.take_back is not None:
        raise InputError("this metadata asks for a take-back (status 13), not a document",
                         file=source, element="take_back",
                         hint="build the status packages with build_take_back(), or remove take_back")
    now = now or now_vietnam()
    sender = _sender(metadata, agency, source)
    promulgation = metadata.promulgation
    promulgation_date = promulgation.date if promulgation else now.date()
    code = metadata.code
    assert code is not None  # guaranteed by DocumentMetadata's validator for non-take-back files
    document_id = metadata.document_id or make_document_id(
        sender.organ_id or "", promulgation_date, code.number, code.notation)
    return model.DocumentPackage(
        from_=sender,
        to=[_organization(item) for item in metadata.to],
        document_id=document_id,
        code=model.Code(number=code.number, notation=code.notation),
        promulgation_info=model.PromulgationInfo(
            place=promulgation.place if promulgation else None, date=promulgation_date),
        document_type=model.DocumentType(type=metadata.document_type.type,
                                         type_detail=metadata.document_type.type_detail,
                                         type_name=metadata.document_type.type_name),
        subject=metadata.subject,
        content=metadata.content,
        signer_info=_signer(metadata.signer),
        due_date=metadata.due_date,
        other_info=_other_info(metadata.other_info),
        response_for=[model.ResponseFor(organ_id=item.organ_id, code=item.code,
                                        promulgation_date=item.promulgation_date,
                                        document_id=item.document_id)
                      for item in metadata.response_for],
        steering_type=str(metadata.steering_type),
        to_places=list(metadata.to_places) or None,
        trace_headers=[model.TraceHeader(organ_id=sender.organ_id, timestamp=now)],
        business=_business(metadata.business),
        attachments=_attachments(metadata.attachments, attachment_files,
                                 convention or ZipConvention(), source),
    )


def _sender(metadata: schema.DocumentMetadata, agency: model.Organization | None,
            source: str | None) -> model.Organization:
    if metadata.from_ is not None:
        return _organization(metadata.from_)
    if agency is None:
        raise InputError("no sender: the metadata has no 'from' and no agency is configured",
                         file=source, element="from",
                         hint="add 'from: {organ_id: ..., organ_name: ...}' to the metadata")
    problem = organ_id_problem(agency.organ_id)
    if problem:
        raise InputError(problem, file=source, element="from.organ_id",
                         hint="set the agency's identifier in the configuration to a valid one")
    return model.Organization(**vars(agency))


def _organization(item: schema.Organization) -> model.Organization:
    return model.Organization(
        organ_id=item.organ_id, organization_in_charge=item.organization_in_charge,
        organ_name=item.organ_name, organ_add=item.organ_add, email=item.email,
        telephone=item.telephone, fax=item.fax, website=item.website)


def _signer(signer: schema.Signer | None) -> model.SignerInfo | None:
    if signer is None:
        return None
    return model.SignerInfo(competence=signer.competence, position=signer.position,
                            full_name=signer.full_name)


def _other_info(info: schema.OtherInfo) -> model.OtherInfo:
    return model.OtherInfo(
        priority=str(info.priority),
        sphere_of_promulgation=info.sphere_of_promulgation,
        typer_notation=info.typer_notation,
        promulgation_amount=_text(info.promulgation_amount),
        page_amount=_text(info.page_amount),
        direction="true" if info.direction else "false",
        appendixes=list(info.appendixes) or None,
    )


def _staff(staff: schema.Staff | model.StaffInfo | None) -> model.StaffInfo | None:
    if staff is None or isinstance(staff, model.StaffInfo):
        return staff
    return model.StaffInfo(department=staff.department, staff=staff.staff, email=staff.email,
                           mobile=staff.mobile)


def _business(business: schema.Business) -> model.Business:
    kind = model.BusinessType(business.type.code)
    update_info = None
    if kind is model.BusinessType.UPDATE:
        update = business.update or schema.UpdateInfo()
        update_info = model.BusinessDocumentInfo(
            document_info=str(update.document_info),
            document_receiver=str(update.document_receiver),
            receivers=[model.Receiver(organ_id=item.organ_id, receiver_type=str(item.receiver_type))
                       for item in update.receivers])
    replacements = None
    if kind is model.BusinessType.REPLACE:
        replacements = [model.ReplacementInfo(document_id=item.document_id,
                                              organ_ids=list(item.organ_ids))
                        for item in business.replaces]
    return model.Business(
        business_doc_type=kind,
        business_doc_reason=business.reason or kind.label_vi,
        paper=str(business.paper),
        business_document_info=update_info,
        replacement_info_list=replacements,
        staff_info=_staff(business.staff),
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- attachments

def _attachments(entries: list[schema.AttachmentEntry], files: AttachmentFiles,
                 convention: ZipConvention, source: str | None) -> list[model.Attachment]:
    """Pair metadata entries with files: in the metadata's order when it lists any, else every
    file in argument order. A listed file that is missing, or a file nobody listed, is an error:
    silently dropping or adding an attachment to an official document is never right."""
    by_name = _files_by_name(files)
    if not entries:
        return [prepare_outgoing(name, path=path, convention=convention)
                for name, path in by_name.items()]
    attachments = []
    used: set[str] = set()
    for index, entry in enumerate(entries):
        name = _find(entry.file, by_name)
        if name is None:
            given = ", ".join(by_name) or "none"
            raise InputError(f"attachment file {entry.file!r} was not given (files given: {given})",
                             file=source, element=f"attachments.{index}.file",
                             hint=f"pass {entry.file} as an argument (or put it in the bundle "
                                  "folder), or correct the name in the metadata")
        if name in used:
            raise InputError(f"attachment file {entry.file!r} is listed twice", file=source,
                             element=f"attachments.{index}.file",
                             hint="list each attachment file once")
        used.add(name)
        attachments.append(prepare_outgoing(
            entry.name or Path(entry.file).name, path=by_name[name], convention=convention,
            description=entry.description, content_type=entry.content_type))
    extra = [name for name in by_name if name not in used]
    if extra:
        raise InputError(f"file {str(by_name[extra[0]])!r} is not listed under 'attachments'",
                         file=source, element="attachments",
                         hint=f"add an entry '- file: {extra[0]}' to the metadata, or do not pass "
                              "the file")
    return attachments


def _files_by_name(files: AttachmentFiles) -> dict[str, Path]:
    """``file name -> path`` (insertion order kept), refusing missing files and name clashes."""
    if isinstance(files, Mapping):
        pairs = [(str(name), Path(path)) for name, path in files.items()]
    else:
        pairs = [(Path(path).name, Path(path)) for path in files]
    by_name: dict[str, Path] = {}
    for name, path in pairs:
        if not path.is_file():
            raise InputError("attachment file not found" if not path.exists()
                             else "attachment is not a regular file", file=str(path),
                             hint="check the path of the attachment file")
        if name in by_name:
            raise InputError(f"two attachment files are named {name!r} ({by_name[name]} and {path})",
                             file=str(path), hint="rename one of them: receivers store by name")
        by_name[name] = path
    return by_name


def _find(wanted: str, by_name: Mapping[str, Path]) -> str | None:
    if wanted in by_name:
        return wanted
    base = Path(wanted).name
    if base in by_name:
        return base
    for name, path in by_name.items():
        if str(path) == wanted:
            return name
    return None


# --------------------------------------------------------------------------- status packages

def build_status(*, from_: model.Organization, document_id: str, to_organ_id: str,
                 code: model.StatusCode | str, description: str | None = None,
                 staff: schema.Staff | model.StaffInfo | None = None,
                 code_text: str | None = None, promulgation_date: dt.date | None = None,
                 now: dt.datetime | None = None) -> model.StatusPackage:
    """A status package from ``from_`` about ``document_id``, addressed to ``to_organ_id``
    (written in ResponseFor/OrganId). ``code_text`` is the original's ``number/notation``.
    The description defaults to the code's Vietnamese label."""
    status = parse_status_code(code)
    problem = organ_id_problem(from_.organ_id)
    if problem:
        raise InputError(problem, element="From/OrganId",
                         hint="give the sending agency's identifier, e.g. 000.00.00.G22")
    if not document_id:
        raise InputError("the document the status is about has no DocumentId",
                         element="ResponseFor/DocumentId", hint="name the original DocumentId")
    if not to_organ_id:
        raise InputError("the status has no addressee", element="ResponseFor/OrganId",
                         hint="name the organisation the status is for")
    return model.StatusPackage(
        from_=model.Organization(**vars(from_)),
        response_for=model.ResponseFor(organ_id=to_organ_id, code=code_text,
                                       promulgation_date=promulgation_date,
                                       document_id=document_id),
        status_code=status,
        staff_info=_staff(staff),
        description=description if description is not None else status.label_vi,
        timestamp=now or now_vietnam(),
    )


def parse_status_code(code: model.StatusCode | str | int) -> model.StatusCode:
    """``"3"``, ``3``, ``"03"`` -> StatusCode.ACCEPTED; anything else is an InputError."""
    if isinstance(code, model.StatusCode):
        return code
    text = str(code).strip()
    if text.isdigit():
        text = text.zfill(2)
    try:
        return model.StatusCode(text)
    except ValueError:
        known = ", ".join(item.value for item in model.StatusCode)
        raise InputError(f"unknown status code {code!r}", element="StatusCode",
                         hint=f"use one of {known}") from None


def status_for(package: model.DocumentPackage, *, from_: model.Organization,
               code: model.StatusCode | str, to: str | None = None,
               description: str | None = None,
               staff: schema.Staff | model.StaffInfo | None = None,
               now: dt.datetime | None = None) -> model.StatusPackage:
    """The status ``code`` answering ``package``, addressed as the format requires.

    Receiver statuses (01-06, 15, 16) come from one of the document's receivers and go to the
    original sender: ``to`` may be omitted, and if given must be that sender. A take-back request
    (13) comes from the original sender and goes to one of the receivers, which ``to`` must name
    (one package per receiver). Anything else would be a status the peer cannot match, so it is
    refused here rather than discovered on the axis.
    """
    status = parse_status_code(code)
    original_sender = package.from_.organ_id
    receivers = [item.organ_id for item in package.to if item.organ_id]
    listed = ", ".join(receivers) or "none"
    if status.sent_by_original_sender:
        if from_.organ_id != original_sender:
            raise InputError(
                f"status {status.value} (take-back request) is sent by the document's sender "
                f"{original_sender}, not {from_.organ_id}", element="From/OrganId",
                hint=f"give --from {original_sender}, or answer with a receiver status "
                     "(01-06, 15, 16)")
        if not to:
            raise InputError(f"status {status.value} (take-back request) is addressed to a receiver",
                             element="ResponseFor/OrganId",
                             hint=f"name it with --to (receivers of this document: {listed})")
        if to not in receivers:
            raise InputError(f"{to} is not a receiver of this document", element="ResponseFor/OrganId",
                             hint=f"name one of its receivers with --to: {listed}")
        addressee = to
    else:
        if from_.organ_id not in receivers:
            raise InputError(
                f"status {status.value} is sent by a receiver of the document, and {from_.organ_id} "
                "is not one", element="From/OrganId",
                hint=f"give --from one of its receivers: {listed} (the sender itself only sends "
                     "13, take-back)")
        if to and to != original_sender:
            raise InputError(
                f"status {status.value} answers the original sender {original_sender}, not {to}",
                element="ResponseFor/OrganId",
                hint="omit --to (it is only needed for a take-back request, 13)")
        if not original_sender:
            raise InputError("the document has no sender to answer", element="From/OrganId",
                             hint="the package is incomplete; answer it by other means")
        addressee = original_sender
    code_text = None
    if package.code is not None and (package.code.number or package.code.notation):
        code_text = "/".join(part for part in (package.code.number, package.code.notation) if part)
    promulgation_date = package.promulgation_info.date if package.promulgation_info else None
    return build_status(from_=from_, document_id=package.document_id or "", to_organ_id=addressee,
                        code=status, description=description, staff=staff, code_text=code_text,
                        promulgation_date=promulgation_date, now=now)


def build_take_back(take_back: schema.TakeBack, from_: model.Organization, *,
                    staff: schema.Staff | model.StaffInfo | None = None,
                    now: dt.datetime | None = None) -> list[model.StatusPackage]:
    """One status 13 per receiver named in ``take_back.to`` (a status has one addressee)."""
    now = now or now_vietnam()
    return [build_status(from_=from_, document_id=take_back.document_id, to_organ_id=receiver,
                         code=model.StatusCode.TAKE_BACK_REQUESTED, description=take_back.reason,
                         staff=staff, code_text=take_back.code,
                         promulgation_date=take_back.promulgation_date, now=now)
            for receiver in take_back.to]


def sender_of(metadata: schema.DocumentMetadata, agency: model.Organization | None = None,
              source: str | None = None) -> model.Organization:
    """The organisation a metadata file sends as: its ``from``, else the agency."""
    return _sender(metadata, agency, source)


__all__ = ["AttachmentFiles", "RECEIVER_STATUSES", "build_document", "build_status",
           "build_take_back", "parse_status_code", "sender_of", "status_for"]
