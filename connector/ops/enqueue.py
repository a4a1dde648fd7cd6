"""``send FILE|BUNDLE`` and ``status-send``: put an item in the outgoing queue without the folder.

Items queued here have the journal source ``cli`` and no agency side; the daemon's outbound
pipeline sends such items from what their journal ``meta`` says (``connector.outbound_build``):
``package_file`` (a ready package) or ``status`` (a status request, packaged as one package per
addressee). What this module adds is *validation first*: a bad ``document.yaml`` field, a missing
attachment, a package from another agency, a broken signature or an unknown status code is
reported at once with exit code 2, naming the file and the field, and nothing is queued.

``send``: the package (a bundle is built and signed here, exactly as the daemon would; a ready
package is signed when unsigned) is written durably into ``STATE/spool/cli/`` — the operator's
file may be gone by the time the daemon runs — then queued with ``package_file`` pointing there,
and packaged into the package store at once. If the daemon claims the item in between, it
packages the same file itself: either way every attempt sends those bytes.

Each item's ``source_ref`` is derived from its content (SHA-256 of the input), so running the same
``send`` twice — or again after an interruption — finds the same journal item instead of sending
the document twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connector import fsutil
from connector.edxml import model
from connector.edxml.identifiers import organ_id_problem
from connector.errors import InputError, describe_error
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


def _digest_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def spool_dir(ctx: OpsContext) -> Path:
    directory = ctx.settings.state_dir / "spool" / CLI_SOURCE
    fsutil.ensure_directory(directory.parent, 0o750)
    fsutil.ensure_directory(directory, 0o750)
    return directory


def _queue_package(ctx: OpsContext, spooled: Path, *, kind: OutgoingKind, fingerprint: str,
                   display: str, origin: Path, package: model.DocumentPackage) -> OutgoingRecord:
    """Queue the spooled package and store it as the item's bytes (``packaged``)."""
    recipients = [item.organ_id for item in package.to if item.organ_id]
    business_type = int(package.business_type)
    record = ctx.journal.enqueue(
        CLI_SOURCE, f"{kind.value}:{fingerprint}", kind, document_id=package.document_id,
        business_type=business_type, recipients=recipients,
        meta={"display_name": display, "package_file": str(spooled), "origin": str(origin)})
    if record.needs_packaging:
        stored = ctx.store.put_outgoing(record.id,
                                        lambda target: fsutil.copy_file_durably(spooled, target))
        record = ctx.journal.mark_packaged(
            record.id, package_path=str(stored.path), sha256=stored.sha256, size=stored.size,
            document_id=package.document_id or "", business_type=business_type,
            recipients=recipients)
    return record


# --------------------------------------------------------------------------- send FILE|BUNDLE

def send(ctx: OpsContext, target: str | os.PathLike[str]) -> list[OutgoingRecord]:
    """Queue a ready ``.edxml`` package or a bundle folder (``document.yaml`` + files).
    Returns the journal items (a take-back bundle gives one status item)."""
    path = Path(target)
    if path.is_dir():
        return [_send_bundle(ctx, path)]
    if path.is_file():
        return [_send_package(ctx, path)]
    raise InputError("no such file or folder" if not path.exists() else "not a file or a folder",
                     file=str(path), hint="give a .edxml package or a bundle folder with document.yaml")


def _check_sender(ctx: OpsContext, package: model.DocumentPackage, file: str) -> None:
    sender = package.from_.organ_id if package.from_ else None
    if sender != ctx.settings.agency.organ_id:
        raise InputError(f"the package is from {sender}, but this connector sends as "
                         f"{ctx.settings.agency.organ_id}", file=file, element="From/OrganId",
                         hint="the axis only accepts packages from the agency we log in as; "
                              "rebuild it with `edxml-connector pack`")
    if not any(item.organ_id for item in package.to):
        raise InputError("the package has no recipient", file=file, element="To/OrganId",
                         hint="add a To with the receiver's OrganId")


def check_recipients(ctx: OpsContext, organ_ids: Sequence[str], *, file: str) -> None:
    """Refuse OrganIds that the axis's agency list does not have — the check the daemon makes
    before packaging, made here because ``send`` packages the item itself (the daemon then only
    transmits it). The list is the daemon's cache (``STATE/agencies.json``, refreshed on its
    schedule); without one, it is fetched once from the axis (one attempt, short timeouts).
    When no list can be had (axis unreachable, no secret in this shell) nothing is refused —
    the axis stays the judge — and a warning says so."""
    if not ctx.settings.outbound.check_recipients or not organ_ids:
        return
    directory = ctx.runtime.directory
    if not directory.loaded:
        directory = _fetched_directory(ctx)
    unknown = directory.unknown(list(organ_ids)) if directory is not None else []
    if unknown:
        raise InputError(f"unknown recipient OrganId(s) {', '.join(unknown)}: the axis's agency "
                         "list does not have them", file=file, element="To/OrganId",
                         hint="correct the recipients; the list the axis gave is in "
                              f"{ctx.settings.state_dir / 'agencies.json'}")


def _fetched_directory(ctx: OpsContext):
    import dataclasses

    from connector.agency_directory import AgencyDirectory
    from connector.axis.client import AxisClient, RetryPolicy
    from connector.logs import get_logger
    from connector.runtime import AGENCY_CACHE_FILE

    try:
        settings = ctx.settings.axis.client_settings(ctx.settings.agency.organ_id)
        settings = dataclasses.replace(
            settings, connect_timeout=min(settings.connect_timeout, 5.0),
            read_timeout=min(settings.read_timeout, 15.0),
            retry=RetryPolicy(max_attempts=1, max_total_seconds=0, initial_backoff=0,
                              max_backoff=0))
        with AxisClient(settings) as client:
            directory = AgencyDirectory(client, ctx.settings.state_dir / AGENCY_CACHE_FILE)
            directory.refresh()
        return directory
    except Exception as error:  # noqa: BLE001 - any reason means "no list": the axis judges

        get_logger(__name__).warning(
            "recipients_not_checked", reason=describe_error(error),
            note="the axis's agency list is not available here; unknown recipients are "
                 "refused by the axis when the daemon sends")
        return None


def _send_package(ctx: OpsContext, path: Path) -> OutgoingRecord:
    from connector.edxml.reader import read_package
    from connector.edxml.signing import SignatureState, sign_package_file, verify_package_file

    result = read_package(path, limits=ctx.limits, file=str(path))
    package = result.package
    if not isinstance(package, model.DocumentPackage):
        raise InputError("this is a status package; `send` takes documents", file=str(path),
                         hint="send statuses with `edxml-connector status-send`")
    _check_sender(ctx, package, str(path))
    check_recipients(ctx, [item.organ_id for item in package.to if item.organ_id], file=str(path))
    verdict = verify_package_file(path, limits=ctx.limits)
    if verdict.state is SignatureState.INVALID:
        raise InputError(f"the package carries a signature that does not verify ({verdict.reason})",
                         file=str(path), element="Signature",
                         hint="sign it again (`edxml-connector sign`) or remove the signature")
    fingerprint = _digest_file(path)
    spooled = spool_dir(ctx) / f"{fingerprint}.edxml"
    if not spooled.exists():
        # Written under a temporary name and renamed: a spooled file that exists is complete
        # (an interrupted `send` run again reuses it).
        staging = fsutil.temporary_name(spooled)
        try:
            if verdict.state in (SignatureState.ABSENT, SignatureState.UNVERIFIABLE):
                key = ctx.signing_key
                key.check_validity()
                sign_package_file(path, staging, key, algorithm=ctx.algorithm, limits=ctx.limits)
            else:
                fsutil.copy_file_durably(path, staging)
            fsutil.durable_rename(staging, spooled)
        finally:
            staging.unlink(missing_ok=True)
    return _queue_package(ctx, spooled, kind=OutgoingKind.PACKAGE, fingerprint=fingerprint,
                          display=path.name, origin=path.resolve(), package=package)


def _send_bundle(ctx: OpsContext, bundle: Path) -> OutgoingRecord:
    from connector.dms.folder_outbox import bundle_attachments
    from connector.edxml.writer import write_package_to
    from connector.packaging import build_document
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
        take_back = metadata.take_back
        staff = metadata.business.staff.model_dump() if metadata.business.staff else {}
        return enqueue_status(ctx, code="13", document_id=take_back.document_id,
                              to=list(take_back.to), description=take_back.reason,
                              source_ref=f"take-back:{fingerprint}", staff=staff,
                              code_text=take_back.code,
                              promulgation_date=take_back.promulgation_date,
                              display=f"{bundle.name} (take-back)")
    # Built (and so validated) before anything is recorded: a bad bundle leaves no trace.
    package = build_document(metadata, files, agency=ctx.agency, convention=ctx.zip_convention,
                             source=str(metadata_path))
    _check_sender(ctx, package, str(metadata_path))
    check_recipients(ctx, [item.organ_id for item in package.to if item.organ_id],
                     file=str(metadata_path))
    spooled = spool_dir(ctx) / f"{fingerprint}.edxml"
    if not spooled.exists():
        key = ctx.signing_key
        key.check_validity()
        write_package_to(package, spooled, signer=key, algorithm=ctx.algorithm)
        fsutil.fsync_dir(spooled.parent)
    from connector.edxml.reader import read_package

    written = read_package(spooled, limits=ctx.limits).package  # its DocumentId, as stored
    return _queue_package(ctx, spooled, kind=OutgoingKind.DOCUMENT, fingerprint=fingerprint,
                          display=bundle.name, origin=bundle.resolve(), package=written)


# --------------------------------------------------------------------------- statuses

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
                   source_ref: str | None = None, staff: dict[str, Any] | None = None,
                   code_text: str | None = None, promulgation_date: dt.date | None = None,
                   display: str | None = None,
                   extra_meta: dict[str, Any] | None = None) -> OutgoingRecord:
    """Queue status ``code`` about ``document_id`` as one journal item; the daemon sends one
    package per addressee. Everything is checked here first (exit 2 on a bad code, DocumentId
    or OrganId). ``source_ref`` makes it idempotent (default: a fresh one)."""
    from connector.packaging import parse_status_code

    status_code = parse_status_code(code)
    document_id = (document_id or "").strip()
    if not document_id:
        raise InputError("the DocumentId is empty", element="--document-id",
                         hint="give the DocumentId exactly as received (inbox metadata.json)")
    addressees = list(dict.fromkeys(item.strip() for item in to if item and item.strip()))
    for organ_id in addressees:
        problem = organ_id_problem(organ_id)
        if problem:
            raise InputError(problem, element="--to", hint="e.g. --to 000.00.00.H41")
    if not addressees:
        addressees = default_addressees(ctx, status_code, document_id)
    if code_text is None or promulgation_date is None:
        known_code, known_date = _original_code(ctx, status_code, document_id)
        code_text = code_text or known_code
        promulgation_date = promulgation_date or known_date
    request = {"code": status_code.value, "document_id": document_id, "to": addressees,
               "description": description, "staff": dict(staff or {}), "code_text": code_text,
               "promulgation_date": promulgation_date.isoformat() if promulgation_date else None}
    label = display or f"status {status_code.value} to {', '.join(addressees)}"
    return ctx.journal.enqueue(
        source, source_ref or f"status:{uuid.uuid4().hex}", OutgoingKind.STATUS,
        document_id=document_id, recipients=addressees,
        meta={"status": request, "display_name": label, **(extra_meta or {})})


def _original_code(ctx: OpsContext, code: model.StatusCode,
                   document_id: str) -> tuple[str | None, dt.date | None]:
    """The original's ``number/notation`` and promulgation date, when the journal has them
    (the inbound pipeline keeps them in the received item's meta)."""
    if code.sent_by_original_sender:
        return None, None
    record = ctx.journal.find_incoming(document_id)
    if record is None:
        return None, None
    code_text = record.meta.get("code")
    date_text = record.meta.get("promulgation_date")
    try:
        date = dt.date.fromisoformat(date_text) if isinstance(date_text, str) else None
    except ValueError:
        date = None
    return (str(code_text) if code_text else None), date
