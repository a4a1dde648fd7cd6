"""Turning one claimed outgoing item into the bytes the connector will send, stored once.

Kept apart from :mod:`connector.pipeline.outbound` (which decides *when* and *what next*) because this is
the part that knows the format: which package a document, a ready package, a status or a
take-back request becomes, who signs it, and what is refused before anything leaves.

Decisions:
- Documents are built with the configured agency as ``From`` and signed in one streaming pass
  (constant memory whatever the attachments' size).
- A ready package is sent as the DMS made it when it carries a verifying (or merely untrusted)
  signature; it is signed when unsigned or when it carries only an SDK-style placeholder; a
  signature that does NOT verify is refused (the receivers would quarantine it). Its ``From``
  must be this agency (the axis would refuse us, and pause everything, otherwise).
- Status packages are not signed: no sample from the official SDKs signs them, and the format
  puts no Signature in a status header.
- A status (or a take-back, 13) to several receivers is one package per receiver, stored as a
  set under one journal item.
- Everything happens in the daemon's own process: building and signing a 100 KB package takes a
  few milliseconds, far above a province's load (about 0.04 documents/s), and a key that lives
  in a token cannot be handed to another process anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector import fsutil
from connector.dms.base import OutgoingItem, OutgoingKind, StatusRequest
from connector.edxml import model
from connector.edxml.keys import SigningKey
from connector.edxml.model import DocumentPackage, StatusPackage
from connector.edxml.reader import read_package
from connector.edxml.signing import (
    SignatureState,
    sign_package_file,
    verify_package_file,
)
from connector.edxml.writer import prepare_package, write_package, write_package_to
from connector.edxml.xmldsig import signer_fingerprint
from connector.errors import EdxmlError, InputError
from connector.journal import OutgoingRecord
from connector.journal.package_store import StoredPackage
from connector.logs import get_logger
from connector.pipeline.context import PipelineContext
from connector.pipeline.packaging import build_document, build_status
from connector.pipeline.statuses import original_details, take_back_request

log = get_logger(__name__)


@dataclass(frozen=True)
class ReadyPackage:
    """A ready package that passed :meth:`PackageBuilder.checked_ready_package`."""

    package: DocumentPackage | StatusPackage
    recipients: list[str]
    needs_signing: bool


@dataclass(frozen=True)
class Built:
    stored: StoredPackage
    document_id: str
    business_type: int | None
    recipients: list[str]
    signed: bool
    count: int = 1
    signed_by: str | None = None  # SHA-256 of the certificate that signed it (the journal keeps it)
    renamed: dict[str, str] | None = None  # recipients given by old codes -> their current codes


class PackageBuilder:
    def __init__(self, runtime: PipelineContext) -> None:
        self.runtime = runtime
        self.signed_with: SigningKey | None = None
        """The key this builder last signed with (the ring's choice at that moment)."""

    def build(self, record: OutgoingRecord, item: OutgoingItem | None) -> Built:
        meta = record.meta
        if item is None:
            if "status" in meta:
                return self.status_set(record, StatusRequest.from_json(meta["status"]))
            if meta.get("package_file"):
                return self.ready_package(record, Path(meta["package_file"]), meta.get("display_name"))
            raise InputError(f"outgoing item {record.id} says neither which status nor which "
                             "package to send", hint="cancel it and enqueue it again")
        if item.kind is OutgoingKind.DOCUMENT and item.metadata is not None:
            if item.metadata.take_back is not None:
                return self.take_back(record, item)
            return self.document(record, item)
        if item.kind is OutgoingKind.PACKAGE and item.package_path is not None:
            return self.ready_package(record, item.package_path, item.display_name)
        if item.kind is OutgoingKind.STATUS:
            request = StatusRequest.from_json(meta["status"]) if "status" in meta else item.status
            if request is not None:
                return self.status_set(record, request)
        raise InputError(f"the item {item.display_name or record.source_ref} has nothing to send",
                         hint="check the item on the agency side, then `edxml-connector retry`")

    # -- documents ---------------------------------------------------------------------------------
    def document(self, record: OutgoingRecord, item: OutgoingItem) -> Built:
        store = self.runtime.store
        files: Any = list(item.attachment_files)
        if item.attachment_blobs:
            scratch = store.scratch_dir(record.id)
            files = {path.name: path for path in item.attachment_files}
            for index, (name, data) in enumerate(item.attachment_blobs):
                path = scratch / f"{index:04d}"
                fsutil.write_file_durably(path, data)
                files[name] = path
        try:
            package = self.checked_document(item.metadata, files, item.display_name)
            recipients, renamed = self.resolved_recipients(package.recipient_ids)
            existed = store.outgoing_path(record.id).exists()
            # fsync=False: put_outgoing fsyncs the written file itself before publishing it
            # (one flush of the package, not two).
            stored = store.put_outgoing(record.id, lambda path: self.write_signed(
                package, path, fsync=False))
        finally:
            if item.attachment_blobs:
                store.drop_scratch(record.id)
        document_id = package.document_id or ""
        signed_by = self._signed_by(stored.path)
        if existed:  # packaged before a crash: the stored bytes are the item, read their id
            document_id = self._stored_document_id(stored.path) or document_id
        return Built(stored, document_id, int(package.business_type), recipients, signed=True,
                     signed_by=signed_by, renamed=renamed)

    def checked_document(self, metadata: Any, files: Any, label: str | None) -> DocumentPackage:
        """The document the DMS described, built with this agency as ``From`` and its
        identifiers filled (so validated), its recipients checked: refused before anything is
        recorded or signed."""
        package = build_document(metadata, files, agency=self.runtime.agency,
                                 convention=self.runtime.zip_convention, source=label)
        self.check_sender(package.from_.organ_id, label, "from.organ_id")
        package = prepare_package(package)
        self.check_recipients(package.recipient_ids, label)
        return package

    def check_sender(self, sender: str | None, label: str | None, element: str) -> None:
        """A unit sends only as itself: a document or package whose sender is another unit of
        the hub (or any other agency) is refused naming both, before anything is signed — the
        unit's key signs only its own, and the axis would refuse it anyway (and pause the unit
        as if its credentials were wrong)."""
        ours = self.runtime.settings.agency.organ_id
        if sender == ours:
            return
        units = {unit.agency.organ_id for unit in self.runtime.settings.units}
        whose = "another unit of this connector" if sender in units else "not this unit"
        raise InputError(f"the sender is {sender!r} ({whose}), but this item came from the "
                         f"side of {ours}, which sends only as itself", file=label,
                         element=element,
                         hint=f"drop it in the outbox of {sender} instead, or set its sender to "
                              f"{ours} (rebuild a package with `edxml-connector pack`)")

    def write_signed(self, package: DocumentPackage, path: Path, *, fsync: bool = True) -> None:
        """Write ``package`` to ``path`` signed with the agency's key in one streaming pass."""
        key, algorithm = self._signer()
        write_package_to(package, path, signer=key, algorithm=algorithm, fsync=fsync)

    def _signer(self) -> tuple[SigningKey, str]:
        """The key that signs now (the ring's choice: a renewal takes over between two
        documents), refused when out of its validity dates, and the configured algorithm."""
        key = self.runtime.signing_key
        key.check_validity()
        self.signed_with = key
        return key, self.runtime.settings.certificate.algorithm.value

    def _signed_by(self, path: Path) -> str | None:
        """The fingerprint of the certificate in the stored package: ours when this builder
        signed it, else read from the bytes (stored before a crash, or signed by the DMS)."""
        if self.signed_with is not None:
            return self.signed_with.fingerprint
        return signer_fingerprint(path)

    def _stored_document_id(self, path: Path) -> str | None:
        package = read_package(path, limits=self.runtime.limits).package
        return package.document_id if isinstance(package, DocumentPackage) else None

    # -- ready packages ----------------------------------------------------------------------------
    def ready_package(self, record: OutgoingRecord, path: Path, display: str | None) -> Built:
        return self.store_ready(record, path, self.checked_ready_package(path, display or path.name))

    def store_ready(self, record: OutgoingRecord, path: Path, ready: ReadyPackage) -> Built:
        """The checked package at ``path`` stored as the item's bytes, signed on the way when it
        needs a signature."""
        package = ready.package
        store = self.runtime.store
        if isinstance(package, StatusPackage):
            [to] = ready.recipients
            stored = store.put_outgoing_set(record.id, [(to, path.read_bytes())])
            document_id = package.response_for.document_id if package.response_for else None
            return Built(stored, document_id or "", None, [to], signed=False)
        stored = store.put_outgoing(record.id, lambda target: self.sign_or_copy(ready, path, target))
        recipients, renamed = self.resolved_recipients(ready.recipients)
        return Built(stored, package.document_id or "", int(package.business_type),
                     recipients, signed=ready.needs_signing, signed_by=self._signed_by(stored.path),
                     renamed=renamed)

    def checked_ready_package(self, path: Path, label: str,
                              package: DocumentPackage | StatusPackage | None = None) -> ReadyPackage:
        """A package the DMS or an operator made, read (unless the caller has read it already:
        ``package``) and checked as the axis and the receivers would: its sender is this agency,
        its recipients are known, and a signature it carries verifies (an unsigned one, or one
        carrying only an SDK-style placeholder, is signed when stored; one that does not verify
        is refused: the receivers would quarantine it)."""
        data_limits = self.runtime.limits
        if package is None:
            package = read_package(path, limits=data_limits, file=label).package
        self.check_sender(package.from_.organ_id, label, "From/OrganId")
        if not isinstance(package, DocumentPackage):
            to = package.response_for.organ_id if package.response_for else None
            if not to:
                raise InputError("the status package names no addressee", file=label,
                                 element="ResponseFor/OrganId", hint="add ResponseFor/OrganId")
            self.check_recipients([to], label)
            return ReadyPackage(package, [to], needs_signing=False)
        self.check_recipients(package.recipient_ids, label)
        verification = _verify_file(path, data_limits, label)
        state = verification.state
        if state is SignatureState.INVALID:
            raise InputError(f"the package carries a signature that does not verify "
                             f"({verification.reason})", file=label, element="Signature",
                             hint="sign it again (`edxml-connector sign`), or remove the "
                                  "signature and let the connector sign")
        return ReadyPackage(package, package.recipient_ids,
                            needs_signing=state in (SignatureState.ABSENT, SignatureState.UNVERIFIABLE))

    def sign_or_copy(self, ready: ReadyPackage, source: Path, target: Path) -> None:
        """``source`` at ``target``: signed when it needs a signature, else byte for byte."""
        if ready.needs_signing:
            key, algorithm = self._signer()
            sign_package_file(source, target, key, algorithm=algorithm, limits=self.runtime.limits)
        else:
            fsutil.copy_file_durably(source, target)

    # -- statuses ----------------------------------------------------------------------------------
    def status_set(self, record: OutgoingRecord, request: StatusRequest) -> Built:
        if not request.to:
            raise InputError(f"status {request.code} about {request.document_id!r} has no "
                             "recipient", element="to", hint="name the organisation(s) in 'to'")
        self.check_recipients(list(request.to), record.meta.get("display_name"))
        code_text, promulgation_date = request.code_text, request.promulgation_date
        if code_text is None or promulgation_date is None:
            known_code, known_date = original_details(self.runtime.journal, request.document_id)
            code_text = code_text or known_code
            promulgation_date = promulgation_date or known_date
        staff = None
        if request.staff and any(request.staff.values()):
            staff = model.StaffInfo(**{key: value for key, value in request.staff.items()
                                       if key in ("department", "staff", "email", "mobile")})
        packages = []
        for to in request.to:
            status = build_status(from_=self.runtime.agency, document_id=request.document_id,
                                  to_organ_id=to, code=request.code,
                                  description=request.description, staff=staff,
                                  code_text=code_text, promulgation_date=promulgation_date)
            packages.append((to, write_package(status)))
        stored = self.runtime.store.put_outgoing_set(record.id, packages)
        return Built(stored, request.document_id, None, list(request.to), signed=False,
                     count=len(packages))

    def take_back(self, record: OutgoingRecord, item: OutgoingItem) -> Built:
        """Status 13 to each receiver named in ``take_back``."""
        if item.metadata is None:
            raise InputError(f"the item {item.display_name} has no document.yaml to take back from")
        return self.status_set(record, take_back_request(item.metadata))

    # -- checks ------------------------------------------------------------------------------------
    def resolved_recipients(self, recipients: list[str]) -> tuple[list[str], dict[str, str] | None]:
        """The recipients with old codes replaced by the directory's current ones, and which
        were replaced (the journal's deliveries and the axis's `to` list use the current codes;
        the package keeps what the DMS wrote: a signed package is never rewritten)."""
        if not self.runtime.settings.outbound.check_recipients:
            return recipients, None
        resolution = self.runtime.directory.resolve(recipients)
        return resolution.current, resolution.renamed or None

    def check_recipients(self, recipients: list[str], label: str | None) -> None:
        """Refuse OrganIds the axis's agency list does not have (none while no list is known:
        the axis stays the judge)."""
        if not self.runtime.settings.outbound.check_recipients:
            return
        unknown = self.runtime.directory.unknown(recipients)
        if unknown:
            raise InputError(unknown_recipients_reason(unknown), file=label, element="To/OrganId",
                             hint="correct the recipients and send again")


def unknown_recipients_reason(unknown: list[str]) -> str:
    return (f"unknown recipient OrganId(s) {', '.join(unknown)}: the axis's agency list does not "
            "have them")


def _verify_file(path: Path, limits: Any, label: str):
    """Verify a ready package from its file (constant memory whatever its attachments' size);
    an error names the item as the DMS knows it, not the connector's work/ path."""
    try:
        return verify_package_file(path, limits=limits)
    except EdxmlError as error:
        error.file = label
        raise

