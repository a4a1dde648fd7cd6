"""``send FILE|BUNDLE`` and ``status-send``: put an item in the outgoing queue without the folder.

The command line validates, builds and signs the package itself, stores it in the package store
under the item's journal id and marks the item ``packaged`` — so a mistake (a bad
``document.yaml`` field, a missing attachment, an unknown status code) is reported at once, with
exit code 2, naming the file and the field, and the running daemon only has to send the stored
bytes the next time it claims work from the journal (at-least-once, the same bytes every time).

Each item's ``source_ref`` is derived from its content (SHA-256 of the input), so running the
same ``send`` twice — or again after an interruption — finds the same journal item instead of
sending the document twice; it also finishes the packaging an interrupted run left undone.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connector.edxml import model
from connector.edxml.identifiers import organ_id_problem
from connector.errors import InputError
from connector.journal import OutgoingKind, OutgoingRecord
from connector.ops.context import OpsContext

CLI_SOURCE = "cli"
BUNDLE_METADATA = "document.yaml"


def _digest_paths(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode("utf-8") + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _store_and_mark(ctx: OpsContext, record: OutgoingRecord, write, *, document_id: str,
                    business_type: int | None, recipients: list[str]) -> OutgoingRecord:
    """Write the package once into the store under the item's id, then ``mark_packaged``.
    A record packaged already (a repeated command) is returned as it is."""
    if not record.needs_packaging:
        return record
    stored = ctx.store.put_outgoing(record.id, write)
    return ctx.journal.mark_packaged(record.id, package_path=str(stored.path), sha256=stored.sha256,
                                     size=stored.size, document_id=document_id,
                                     business_type=business_type, recipients=recipients)


# --------------------------------------------------------------------------- send FILE|BUNDLE

def send(ctx: OpsContext, target: str | os.PathLike[str]) -> list[OutgoingRecord]:
    """Enqueue a ready ``.edxml`` package or a bundle folder (``document.yaml`` + files).
    Returns the journal items (several for a take-back: one status 13 per receiver)."""
    path = Path(target)
    if path.is_dir():
        return _send_bundle(ctx, path)
    if path.is_file():
        return [_send_package(ctx, path)]
    raise InputError("no such file or folder" if not path.exists() else "not a file or a folder",
                     file=str(path), hint="give a .edxml package or a bundle folder with document.yaml")


def _send_package(ctx: OpsContext, path: Path) -> OutgoingRecord:
    from connector.edxml.reader import read_package
    from connector.edxml.signing import SignatureState, sign_package, verify_package

    data = path.read_bytes()
    result = read_package(data, limits=ctx.limits, file=str(path))
    package = result.package
    if not isinstance(package, model.DocumentPackage):
        raise InputError("this is a status package; `send` takes documents", file=str(path),
                         hint="send statuses with `edxml-connector status-send`")
    recipients = [item.organ_id for item in package.to if item.organ_id]
    if not recipients:
        raise InputError("the package has no recipient", file=str(path), element="To/OrganId",
                         hint="add a To with the receiver's OrganId")
    sender = package.from_.organ_id if package.from_ else None
    if sender != ctx.settings.agency.organ_id:
        raise InputError(f"the package is from {sender}, but this connector sends as "
                         f"{ctx.settings.agency.organ_id}", file=str(path), element="From/OrganId",
                         hint="the axis refuses packages from another agency; rebuild it with `pack`")
    verdict = verify_package(data, limits=ctx.limits, file=str(path))
    if verdict.state is SignatureState.INVALID:
        raise InputError(f"the package's signature is invalid: {verdict.reason}", file=str(path),
                         hint="sign it again (`edxml-connector sign`) or remove the signature")
    record = ctx.journal.enqueue(
        CLI_SOURCE, f"package:{hashlib.sha256(data).hexdigest()}", OutgoingKind.PACKAGE,
        document_id=package.document_id, business_type=_business_type(package),
        recipients=recipients, meta={"display_name": path.name, "path": str(path.resolve())})
    if verdict.state is SignatureState.ABSENT:
        payload = sign_package(data, ctx.signing_key, algorithm=ctx.algorithm, limits=ctx.limits,
                               file=str(path))
    else:
        payload = data
    from connector import fsutil

    return _store_and_mark(ctx, record, lambda out: fsutil.write_file_durably(out, payload),
                           document_id=package.document_id or "",
                           business_type=_business_type(package), recipients=recipients)


def _business_type(package: model.DocumentPackage) -> int | None:
    business = package.business
    if business is None or business.business_doc_type is None:
        return None
    return int(business.business_doc_type.value)


def _send_bundle(ctx: OpsContext, bundle: Path) -> list[OutgoingRecord]:
    from connector.dms.folder_outbox import bundle_attachments
    from connector.edxml.writer import write_package_to
    from connector.packaging import build_document, build_take_back
    from connector.schemas.document import load_document_metadata

    metadata_path = bundle / BUNDLE_METADATA
    if not metadata_path.is_file():
        raise InputError(f"the bundle has no {BUNDLE_METADATA}", file=str(metadata_path),
                         hint=f"write {BUNDLE_METADATA} to describe the document "
                              "(`edxml-connector schema document`)")
    metadata = load_document_metadata(metadata_path)
    files = bundle_attachments(bundle, str(bundle), metadata)
    fingerprint = _digest_paths([metadata_path, *files])
    if metadata.take_back is not None:
        statuses = build_take_back(metadata.take_back, ctx.agency)
        return [_enqueue_status_package(ctx, status, source=CLI_SOURCE,
                                        source_ref=f"take-back:{fingerprint}:{status.response_for.organ_id}",
                                        display=f"{bundle.name} (take-back)")
                for status in statuses]
    # Build (and so validate) before anything is recorded: a bad bundle leaves no trace.
    package = build_document(metadata, files, agency=ctx.agency, convention=ctx.zip_convention,
                             source=str(metadata_path))
    recipients = [item.organ_id for item in package.to if item.organ_id]
    record = ctx.journal.enqueue(
        CLI_SOURCE, f"bundle:{fingerprint}", OutgoingKind.DOCUMENT,
        document_id=package.document_id, business_type=_business_type(package),
        recipients=recipients, meta={"display_name": bundle.name, "path": str(bundle.resolve())})
    return [_store_and_mark(
        ctx, record,
        lambda out: write_package_to(package, out, signer=ctx.signing_key, algorithm=ctx.algorithm),
        document_id=package.document_id or "", business_type=_business_type(package),
        recipients=recipients)]


# --------------------------------------------------------------------------- statuses

def _enqueue_status_package(ctx: OpsContext, status: model.StatusPackage, *, source: str,
                            source_ref: str, display: str,
                            extra_meta: dict[str, Any] | None = None) -> OutgoingRecord:
    from connector.edxml.writer import write_package_to

    to = status.response_for.organ_id
    record = ctx.journal.enqueue(
        source, source_ref, OutgoingKind.STATUS, document_id=status.response_for.document_id,
        recipients=[to],
        meta={"display_name": display, "code": status.status_code.value, "to": to,
              "description": status.description, **(extra_meta or {})})
    return _store_and_mark(
        ctx, record,
        lambda out: write_package_to(status, out, signer=ctx.signing_key, algorithm=ctx.algorithm),
        document_id=status.response_for.document_id or "", business_type=None, recipients=[to])


def default_addressees(ctx: OpsContext, code: model.StatusCode, document_id: str) -> list[str]:
    """Whom a status goes to when ``--to`` is not given: a receiver's status (01–06, 15, 16)
    answers the sender of the received document; a take-back (13) goes to every recipient of
    the document we sent."""
    if code.sent_by_original_sender:
        sent = ctx.journal.find_outgoing(document_id)
        if sent is None or not sent.recipients:
            raise InputError(f"no sent document with DocumentId {document_id!r} in the journal",
                             element="--to", hint="name the receivers with --to ORGAN_ID")
        return list(sent.recipients)
    received = ctx.journal.find_incoming(document_id)
    if received is None or not received.sender:
        raise InputError(f"no received document with DocumentId {document_id!r} in the journal",
                         element="--to", hint="name the addressee with --to ORGAN_ID")
    return [received.sender]


def enqueue_status(ctx: OpsContext, *, code: str, document_id: str, to: Sequence[str] = (),
                   description: str | None = None, source: str = CLI_SOURCE,
                   source_ref: str | None = None,
                   extra_meta: dict[str, Any] | None = None) -> OutgoingRecord:
    """Queue status ``code`` about ``document_id``; one package (and one journal item) per
    addressee. Returns the first item (the only one unless several ``to`` were given);
    :func:`enqueue_statuses` returns them all."""
    return enqueue_statuses(ctx, code=code, document_id=document_id, to=to,
                            description=description, source=source, source_ref=source_ref,
                            extra_meta=extra_meta)[0]


def enqueue_statuses(ctx: OpsContext, *, code: str, document_id: str, to: Sequence[str] = (),
                     description: str | None = None, source: str = CLI_SOURCE,
                     source_ref: str | None = None,
                     extra_meta: dict[str, Any] | None = None) -> list[OutgoingRecord]:
    from connector.packaging import build_status, parse_status_code

    status_code = parse_status_code(code)
    document_id = (document_id or "").strip()
    if not document_id:
        raise InputError("--document-id is empty", element="--document-id",
                         hint="give the DocumentId exactly as received (inbox metadata.json)")
    addressees = list(dict.fromkeys(item.strip() for item in to if item.strip()))
    for organ_id in addressees:
        problem = organ_id_problem(organ_id)
        if problem:
            raise InputError(problem, element="--to", hint="e.g. --to 000.00.00.H41")
    if not addressees:
        addressees = default_addressees(ctx, status_code, document_id)
    code_text, promulgation = _original_code(ctx, status_code, document_id)
    base_ref = source_ref or f"status:{uuid.uuid4().hex}"
    records = []
    for organ_id in addressees:
        status = build_status(from_=ctx.agency, document_id=document_id, to_organ_id=organ_id,
                              code=status_code, description=description, code_text=code_text,
                              promulgation_date=promulgation)
        records.append(_enqueue_status_package(
            ctx, status, source=source, source_ref=f"{base_ref}:{organ_id}",
            display=f"status {status_code.value} to {organ_id}", extra_meta=extra_meta))
    return records


def _original_code(ctx: OpsContext, code: model.StatusCode, document_id: str):
    """The original's ``number/notation`` and promulgation date, when the journal has them."""
    record = (ctx.journal.find_outgoing(document_id) if code.sent_by_original_sender
              else ctx.journal.find_incoming(document_id))
    if record is None:
        return None, None
    meta = record.meta
    summary = meta.get("summary") if isinstance(meta.get("summary"), dict) else {}
    code_value = meta.get("code") or summary.get("code")
    if isinstance(code_value, dict):
        code_value = "/".join(str(code_value[k]) for k in ("number", "notation") if code_value.get(k)) or None
    promulgation = None
    date_text = (summary.get("promulgation") or {}).get("date") if isinstance(summary.get("promulgation"), dict) else None
    if date_text:
        import datetime as dt

        try:
            promulgation = dt.date.fromisoformat(str(date_text))
        except ValueError:
            promulgation = None
    return (str(code_value) if code_value else None), promulgation
