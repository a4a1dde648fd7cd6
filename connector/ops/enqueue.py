"""``send FILE|BUNDLE`` and ``status-send``: put an item in the outgoing queue without the folder.

Items queued here have the journal source ``cli`` and no agency side; the daemon's outbound
pipeline sends such items from what their journal ``meta`` says (``connector.pipeline.outbound_build``):
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

import dataclasses
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connector import fsutil
from connector.axis.agency_directory import AgencyDirectory
from connector.axis.client import AxisClient, RetryPolicy
from connector.dms.base import StatusRequest
from connector.dms.folder.outbox import bundle_attachments
from connector.edxml import model
from connector.edxml.identifiers import organ_id_problem
from connector.edxml.reader import read_package
from connector.errors import InputError, describe_error
from connector.journal import OutgoingKind, OutgoingRecord
from connector.logs import get_logger
from connector.ops.context import OpsContext
from connector.pipeline import statuses
from connector.pipeline.outbound_build import PackageBuilder, ReadyPackage
from connector.pipeline.packaging import parse_status_code
from connector.pipeline.statuses import default_addressees, take_back_request
from connector.schemas.document import load_document_metadata
from connector.service.runtime import axis_settings

log = get_logger(__name__)

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


def _queue_package(ctx: OpsContext, spooled: Path, ready: ReadyPackage, *, kind: OutgoingKind,
                   fingerprint: str, display: str, origin: Path) -> OutgoingRecord:
    """Queue the spooled package (checked, signed) and store it as the item's bytes
    (``packaged``) the way the daemon's package builder stores a ready package."""
    record = ctx.journal.outgoing.enqueue(
        CLI_SOURCE, f"{kind.value}:{fingerprint}", kind,
        meta={"display_name": display, "package_file": str(spooled), "origin": str(origin)})
    if record.needs_packaging:
        built = PackageBuilder(ctx.runtime).store_ready(record, spooled, ready)
        record = ctx.journal.outgoing.mark_packaged(
            record.id, package_path=str(built.stored.path), sha256=built.stored.sha256,
            size=built.stored.size, document_id=built.document_id,
            business_type=built.business_type, recipients=built.recipients,
            signed_by=built.signed_by)
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


def _check_has_recipient(recipients: list[str], file: str) -> None:
    if not recipients:
        raise InputError("the package has no recipient", file=file, element="To/OrganId",
                         hint="add a To with the receiver's OrganId")


def load_agency_list(ctx: OpsContext) -> None:
    """Make sure this command checks recipients against the axis's agency list, as the daemon
    does before packaging — checked here because ``send`` packages the item itself (the daemon
    then only transmits it). The list is the directory the daemon keeps in the journal (synced
    on its schedule); without one, it is fetched once from the axis (one attempt, short
    timeouts). When no list can be had (axis unreachable, no secret in this shell) nothing is
    refused — the axis stays the judge — and a warning says so."""
    if not ctx.settings.outbound.check_recipients or ctx.runtime.directory.loaded:
        return
    fetched = _fetched_directory(ctx)
    if fetched is not None:
        ctx.runtime.directory = fetched  # this command's runtime: the list it just fetched


def _fetched_directory(ctx: OpsContext) -> AgencyDirectory | None:
    try:
        settings = axis_settings(ctx.settings.axis, ctx.settings.agency.organ_id)
        settings = dataclasses.replace(
            settings, connect_timeout=min(settings.connect_timeout, 5.0),
            read_timeout=min(settings.read_timeout, 15.0),
            retry=RetryPolicy(max_attempts=1, max_total_seconds=0, initial_backoff=0,
                              max_backoff=0))
        with AxisClient(settings) as client:
            directory = AgencyDirectory(client, ctx.journal.directory)
            directory.refresh()
        return directory
    except Exception as error:  # noqa: BLE001 - any reason means "no list": the axis judges
        log.warning(
            "recipients_not_checked", reason=describe_error(error),
            note="the axis's agency list is not available here; unknown recipients are "
                 "refused by the axis when the daemon sends")
        return None


def _send_package(ctx: OpsContext, path: Path) -> OutgoingRecord:
    builder = PackageBuilder(ctx.runtime)
    package = read_package(path, limits=ctx.limits, file=str(path)).package
    if not isinstance(package, model.DocumentPackage):
        raise InputError("this is a status package; `send` takes documents", file=str(path),
                         hint="send statuses with `edxml-connector status-send`")
    load_agency_list(ctx)
    ready = builder.checked_ready_package(path, str(path), package)
    _check_has_recipient(ready.recipients, str(path))
    fingerprint = _digest_file(path)
    spooled = spool_dir(ctx) / f"{fingerprint}.edxml"
    if not spooled.exists():
        # Written under a temporary name and renamed: a spooled file that exists is complete
        # (an interrupted `send` run again reuses it).
        staging = fsutil.temporary_name(spooled)
        try:
            builder.sign_or_copy(ready, path, staging)
            fsutil.durable_rename(staging, spooled)
        finally:
            staging.unlink(missing_ok=True)
    return _queue_package(ctx, spooled, dataclasses.replace(ready, needs_signing=False),
                          kind=OutgoingKind.PACKAGE, fingerprint=fingerprint, display=path.name,
                          origin=path.resolve())


def _send_bundle(ctx: OpsContext, bundle: Path) -> OutgoingRecord:
    metadata_path = bundle / BUNDLE_METADATA
    if not metadata_path.is_file():
        raise InputError(f"the bundle has no {BUNDLE_METADATA}", file=str(metadata_path),
                         hint=f"write {BUNDLE_METADATA} to describe the document "
                              "(`edxml-connector schema document`)")
    metadata = load_document_metadata(metadata_path)
    files = bundle_attachments(bundle, str(bundle), metadata)
    fingerprint = _digest_paths([metadata_path, *files])
    if metadata.take_back is not None:
        request = take_back_request(metadata)
        return enqueue_status(ctx, code=request.code, document_id=request.document_id,
                              to=request.to, description=request.description,
                              source_ref=f"take-back:{fingerprint}", staff=request.staff,
                              code_text=request.code_text,
                              promulgation_date=request.promulgation_date,
                              display=f"{bundle.name} (take-back)")
    # Built (and so validated) before anything is recorded: a bad bundle leaves no trace.
    builder = PackageBuilder(ctx.runtime)
    load_agency_list(ctx)
    package = builder.checked_document(metadata, files, str(metadata_path))
    _check_has_recipient(package.recipient_ids, str(metadata_path))
    spooled = spool_dir(ctx) / f"{fingerprint}.edxml"
    if spooled.exists():  # spooled by an earlier run: its bytes (and DocumentId) are the item
        written = read_package(spooled, limits=ctx.limits).package
        package = written if isinstance(written, model.DocumentPackage) else package
    else:
        builder.write_signed(package, spooled)
        fsutil.fsync_dir(spooled.parent)
    return _queue_package(ctx, spooled, ReadyPackage(package, package.recipient_ids,
                                                     needs_signing=False),
                          kind=OutgoingKind.DOCUMENT, fingerprint=fingerprint,
                          display=bundle.name, origin=bundle.resolve())


# --------------------------------------------------------------------------- statuses

def enqueue_status(ctx: OpsContext, *, code: str, document_id: str, to: Sequence[str] = (),
                   description: str | None = None, source: str = CLI_SOURCE,
                   source_ref: str | None = None, staff: dict[str, Any] | None = None,
                   code_text: str | None = None, promulgation_date: dt.date | None = None,
                   display: str | None = None,
                   extra_meta: dict[str, Any] | None = None) -> OutgoingRecord:
    """Queue status ``code`` about ``document_id`` as one journal item; the daemon sends one
    package per addressee. Everything is checked here first (exit 2 on a bad code, DocumentId
    or OrganId). ``source_ref`` makes it idempotent (default: a fresh one)."""
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
        addressees = default_addressees(ctx.journal, status_code, document_id)
    if not addressees:
        kind = "sent" if status_code.sent_by_original_sender else "received"
        raise InputError(f"no {kind} document with DocumentId {document_id!r} in the journal",
                         element="--to", hint="name the addressee(s) with --to ORGAN_ID")
    request = StatusRequest(code=status_code.value, document_id=document_id, to=addressees,
                            description=description, staff=dict(staff or {}),
                            code_text=code_text, promulgation_date=promulgation_date)
    label = display or f"status {status_code.value} to {', '.join(addressees)}"
    return statuses.enqueue_status(ctx.journal, request, source=source,
                                   source_ref=source_ref or f"status:{uuid.uuid4().hex}",
                                   display_name=label, meta=extra_meta)
