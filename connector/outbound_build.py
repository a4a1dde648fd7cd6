"""Turning one claimed outgoing item into the bytes the connector will send, stored once.

Kept apart from :mod:`connector.outbound` (which decides *when* and *what next*) because this is
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
- Documents (the bulk of the traffic) can be packaged in worker processes
  (:class:`PackagingPool`): building, canonicalising, signing and hashing a package is pure CPU
  that holds the GIL, and the daemon is a single Python process whose journal, HTTP and folder
  work need that same GIL. A worker gets plain inputs (metadata, attachment paths, the agency,
  the key material) and does exactly what the in-process path does — build, sign, write under a
  temporary name, fsync, publish, fsync the directory — then returns (path, SHA-256, size,
  DocumentId …). The journal transition (``mark_packaged``) stays in the daemon, after the
  worker's result: the package is built and signed once and is durable before it is recorded.
  When the pool cannot start or breaks, packaging falls back to the in-process path.
- The pool is a :class:`connector.worker_pool.WorkerPool`: a pipe per worker that the send
  thread uses itself, not a ``ProcessPoolExecutor`` (see that module for why).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector import fsutil
from connector.dms.base import OutgoingItem, OutgoingKind, StatusRequest
from connector.errors import InputError
from connector.journal import OutgoingRecord
from connector.logs import get_logger
from connector.package_store import StoredPackage
from connector.runtime import Runtime
from connector.worker_pool import WorkerPool

log = get_logger(__name__)


@dataclass(frozen=True)
class Built:
    stored: StoredPackage
    document_id: str
    business_type: int | None
    recipients: list[str]
    signed: bool
    count: int = 1


class PackageBuilder:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def build(self, record: OutgoingRecord, item: OutgoingItem | None) -> Built:
        meta = record.meta
        if item is None:
            if "status" in meta:
                return self.status_set(record, _request(meta["status"]))
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
            request = _request(meta["status"]) if "status" in meta else item.status
            if request is not None:
                return self.status_set(record, request)
        raise InputError(f"the item {item.display_name or record.source_ref} has nothing to send",
                         hint="check the item on the agency side, then `edxml-connector retry`")

    # -- documents ---------------------------------------------------------------------------------
    def document(self, record: OutgoingRecord, item: OutgoingItem) -> Built:
        from connector.edxml.writer import prepare_package, write_package_to
        from connector.packaging import build_document

        pool = getattr(self.runtime, "packaging_pool", None)
        if pool is not None and pool.usable and not item.attachment_blobs:
            return self._document_in_pool(pool, record, item)
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
            package = build_document(item.metadata, files, agency=self.runtime.agency,
                                     convention=self.runtime.zip_convention,
                                     source=item.display_name)
            package = prepare_package(package)
            recipients = [organization.organ_id for organization in package.to]
            self.check_recipients(recipients, item.display_name)
            key = self.runtime.signing_key
            key.check_validity()
            algorithm = self.runtime.settings.certificate.algorithm.value
            existed = store.outgoing_path(record.id).exists()
            # fsync=False: put_outgoing fsyncs the written file itself before publishing it
            # (one flush of the package, not two).
            stored = store.put_outgoing(record.id, lambda path: write_package_to(
                package, path, signer=key, algorithm=algorithm, fsync=False))
        finally:
            if item.attachment_blobs:
                store.drop_scratch(record.id)
        document_id = package.document_id or ""
        if existed:  # packaged before a crash: the stored bytes are the item, read their id
            document_id = self._stored_document_id(stored.path) or document_id
        return Built(stored, document_id, int(package.business_type), recipients, signed=True)

    def _document_in_pool(self, pool: PackagingPool, record: OutgoingRecord,
                          item: OutgoingItem) -> Built:
        """:meth:`document` with the build/sign/store step in a worker process. The checks that
        need the daemon's state (recipients known to the axis, the certificate valid now) run
        here first, as they do in-process, so an unusable item fails without a worker trip."""
        label = item.display_name
        self.check_recipients([organization.organ_id for organization in item.metadata.to], label)
        key = self.runtime.signing_key
        key.check_validity()
        job = DocumentJob(item_id=record.id, metadata=item.metadata,
                          files=tuple(item.attachment_files), agency=self.runtime.agency,
                          convention=self.runtime.zip_convention, source=label,
                          store_root=str(self.runtime.store.root),
                          algorithm=self.runtime.settings.certificate.algorithm.value,
                          limits=self.runtime.limits)
        result = pool.run(job, key)
        if result is None:  # the pool broke: package here (still once: same store path)
            return self.document(record, item)
        self.check_recipients(result.recipients, label)
        return Built(StoredPackage(Path(result.path), result.sha256, result.size),
                     result.document_id, result.business_type, list(result.recipients),
                     signed=True)

    def _stored_document_id(self, path: Path) -> str | None:
        from connector.edxml.reader import read_package

        return read_package(path, limits=self.runtime.limits).package.document_id

    # -- ready packages ----------------------------------------------------------------------------
    def ready_package(self, record: OutgoingRecord, path: Path, display: str | None) -> Built:
        from connector.edxml.model import DocumentPackage
        from connector.edxml.reader import read_package
        from connector.edxml.signing import SignatureState, sign_package_file

        label = display or path.name
        data_limits = self.runtime.limits
        result = read_package(path, limits=data_limits, file=label)
        package = result.package
        ours = self.runtime.settings.agency.organ_id
        if package.from_.organ_id != ours:
            raise InputError(f"the package's sender is {package.from_.organ_id!r}, not this "
                             f"agency ({ours})", file=label, element="From/OrganId",
                             hint="the axis only accepts packages from the agency we log in as")
        store = self.runtime.store
        if not isinstance(package, DocumentPackage):
            to = package.response_for.organ_id if package.response_for else None
            if not to:
                raise InputError("the status package names no addressee", file=label,
                                 element="ResponseFor/OrganId", hint="add ResponseFor/OrganId")
            self.check_recipients([to], label)
            stored = store.put_outgoing_set(record.id, [(to, path.read_bytes())])
            return Built(stored, package.response_for.document_id or "", None, [to],
                         signed=False)
        recipients = [organization.organ_id for organization in package.to]
        self.check_recipients(recipients, label)
        verification = _verify_file(path, data_limits, label)
        state = verification.state
        if state is SignatureState.INVALID:
            raise InputError(f"the package carries a signature that does not verify "
                             f"({verification.reason})", file=label, element="Signature",
                             hint="sign it again, or remove the signature and let the connector sign")
        signed = state in (SignatureState.ABSENT, SignatureState.UNVERIFIABLE)
        if signed:
            key = self.runtime.signing_key
            key.check_validity()
            algorithm = self.runtime.settings.certificate.algorithm.value
            stored = store.put_outgoing(record.id, lambda target: sign_package_file(
                path, target, key, algorithm=algorithm, limits=data_limits))
        else:
            stored = store.put_outgoing(record.id,
                                        lambda target: fsutil.copy_file_durably(path, target))
        return Built(stored, package.document_id or "", int(package.business_type), recipients,
                     signed=signed)

    # -- statuses ----------------------------------------------------------------------------------
    def status_set(self, record: OutgoingRecord, request: StatusRequest) -> Built:
        from connector.edxml import model
        from connector.edxml.writer import write_package
        from connector.packaging import build_status

        if not request.to:
            raise InputError(f"status {request.code} about {request.document_id!r} has no "
                             "recipient", element="to", hint="name the organisation(s) in 'to'")
        self.check_recipients(list(request.to), record.meta.get("display_name"))
        code_text, promulgation_date = request.code_text, request.promulgation_date
        if code_text is None or promulgation_date is None:
            known_code, known_date = self._original_details(request.document_id)
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
        take_back = item.metadata.take_back
        request = StatusRequest(code="13", document_id=take_back.document_id,
                                to=list(take_back.to), description=take_back.reason,
                                staff=(item.metadata.business.staff.model_dump()
                                       if item.metadata.business.staff else {}),
                                code_text=take_back.code,
                                promulgation_date=take_back.promulgation_date)
        return self.status_set(record, request)

    def _original_details(self, document_id: str) -> tuple[str | None, dt.date | None]:
        """Code and promulgation date of the document a status is about: a received one (the
        usual case: 01-06, 15, 16) or one we sent (13)."""
        from connector.inbound import find_received_document

        received = find_received_document(self.runtime.journal, document_id)
        if received is not None:
            date = received.meta.get("promulgation_date")
            return received.meta.get("code"), dt.date.fromisoformat(date) if date else None
        return None, None

    # -- checks ------------------------------------------------------------------------------------
    def check_recipients(self, recipients: list[str], label: str | None) -> None:
        if not self.runtime.settings.outbound.check_recipients:
            return
        unknown = self.runtime.directory.unknown(recipients)
        if unknown:
            raise InputError(f"unknown recipient OrganId(s) {', '.join(unknown)}: the axis's "
                             "agency list does not have them", file=label, element="to",
                             hint="correct the recipients and send again")


def _verify_file(path: Path, limits: Any, label: str):
    """Verify a ready package from its file (constant memory whatever its attachments' size);
    an error names the item as the DMS knows it, not the connector's work/ path."""
    from connector.edxml.signing import verify_package_file
    from connector.errors import EdxmlError

    try:
        return verify_package_file(path, limits=limits)
    except EdxmlError as error:
        error.file = label
        raise


def _request(data: dict[str, Any]) -> StatusRequest:
    from connector.outbound import request_from_json

    return request_from_json(data)


# ---------------------------------------------------------------------------- packaging processes
@dataclass(frozen=True)
class DocumentJob:
    """Everything a worker needs to package one document: plain, picklable values."""

    item_id: str
    metadata: Any  # connector.schemas.document.DocumentMetadata
    files: tuple[Path, ...]
    agency: Any  # connector.edxml.model.Organization
    convention: Any
    source: str | None
    store_root: str
    algorithm: str
    limits: Any


@dataclass(frozen=True)
class DocumentResult:
    path: str
    sha256: str
    size: int
    document_id: str
    business_type: int
    recipients: tuple[str, ...]


class PackagingPool(WorkerPool):
    """Worker processes that build, sign and store document packages (see the module
    docstring for why, and :mod:`connector.worker_pool` for how a call goes). ``run()`` blocks
    the calling send thread until its package is stored — the send threads overlap, so up to
    ``workers`` packages are built at once, each on its own core, without the GIL. Returns None
    (and turns itself off) when the pool is broken, so the caller packages in-process instead.

    The signing key goes to the workers as key material with a generation number, with every
    job (a few KB over a local pipe, never logged): a worker re-parses it only when the
    generation changes, i.e. after a SIGHUP reloaded the certificate, so workers sign with
    exactly the key the daemon holds (never with newer files the daemon has not loaded)."""

    role = "packaging"

    def __init__(self, workers: int, *, context: str = "forkserver") -> None:
        self.packaged = 0  # packages built by the workers (tests, diagnostics)
        self._key: Any = None
        self._key_blob: tuple | None = None
        self._generation = 0
        super().__init__(workers, _package_document, init=_warm_up, context=context)

    @classmethod
    def start(cls, workers: int | None = None) -> PackagingPool | None:
        """A pool of ``workers`` processes (default: one per core), or None when it cannot
        start (the caller packages in-process)."""
        return cls.start_pool(workers or os.cpu_count() or 1)

    def run(self, job: DocumentJob, key: Any) -> DocumentResult | None:
        result = self.call(job, self._blob_for(key))
        if result is not None:
            with self._lock:
                self.packaged += 1
        return result

    def _blob_for(self, key: Any) -> tuple:
        from cryptography.hazmat.primitives import serialization

        with self._lock:
            if self._key is not key:
                der = serialization.Encoding.DER
                self._generation += 1
                self._key = key
                self._key_blob = (
                    self._generation,
                    key.private_key.private_bytes(der, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()),
                    key.certificate.public_bytes(der),
                    tuple(certificate.public_bytes(der) for certificate in key.chain),
                    key.source)
            return self._key_blob


_worker_key: tuple[int, Any] | None = None
_worker_stores: dict[str, Any] = {}


def _warm_up() -> None:
    """Import what packaging needs, so that the first document does not pay for it."""
    import connector.edxml.writer  # noqa: F401
    import connector.packaging  # noqa: F401
    import connector.package_store  # noqa: F401


def _signing_key(blob: tuple):
    global _worker_key
    generation = blob[0]
    if _worker_key is None or _worker_key[0] != generation:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        from connector.edxml.keys import SigningKey

        _, key_der, cert_der, chain_ders, source = blob
        _worker_key = (generation, SigningKey(
            serialization.load_der_private_key(key_der, password=None),
            x509.load_der_x509_certificate(cert_der),
            tuple(x509.load_der_x509_certificate(der) for der in chain_ders), source=source))
    return _worker_key[1]


def _package_document(job: DocumentJob, key_blob: tuple) -> DocumentResult:
    """In a worker: the same steps as :meth:`PackageBuilder.document` (build, sign, store once,
    durably), returning what the daemon records."""
    from connector.edxml.reader import read_package
    from connector.edxml.writer import prepare_package, write_package_to
    from connector.package_store import PackageStore
    from connector.packaging import build_document

    store = _worker_stores.get(job.store_root)
    if store is None:
        store = _worker_stores[job.store_root] = PackageStore(job.store_root)
    key = _signing_key(key_blob)
    package = prepare_package(build_document(job.metadata, list(job.files), agency=job.agency,
                                             convention=job.convention, source=job.source))
    existed = store.outgoing_path(job.item_id).exists()
    # fsync=False: put_outgoing fsyncs the written file itself before publishing it.
    stored = store.put_outgoing(job.item_id, lambda path: write_package_to(
        package, path, signer=key, algorithm=job.algorithm, fsync=False))
    document_id = package.document_id or ""
    if existed:  # packaged before a crash: the stored bytes are the item, read their id
        document_id = (read_package(stored.path, limits=job.limits).package.document_id
                       or document_id)
    return DocumentResult(path=str(stored.path), sha256=stored.sha256, size=stored.size,
                          document_id=document_id, business_type=int(package.business_type),
                          recipients=tuple(organization.organ_id for organization in package.to))
