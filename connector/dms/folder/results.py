"""Where a claimed item ends up: ``sent/`` with a receipt, ``failed/`` with an error file, or back
in the queue for a retry.

Each move is a rename within one filesystem, preceded by writing the sidecar file (receipt or
error text) that names the item's ``source_ref``. That order makes every operation safe to repeat
after a crash at any point: the sidecar tells which of the possible destination names is this
item's, and whichever half was not done yet is finished. Destination names are ``NAME`` when it
is free, otherwise ``NAME--<claim stamp>`` — only two candidates, both computed from the claim,
so a repeat finds the same place without scanning the archive.

Two connectors (or two threads) may archive items with the same NAME at the same moment: the
sidecar is created exclusively (``link``, which never replaces), so exactly one gets ``NAME`` and
the other takes its stamped name — without a lock held across the fsyncs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from connector import fsutil
from connector.dms.base import Failure, OutgoingItem, Receipt
from connector.dms.folder.claims import ClaimName
from connector.dms.folder.layout import ExchangeLayout
from connector.dms.folder.outbox import PACKAGE_SUFFIX
from connector.edxml.model import StatusCode
from connector.errors import ConnectorError
from connector.schemas.receipt import ReceiptFile, RecipientStatus

log = structlog.get_logger(__name__)

RECEIPT_SUFFIX = ".receipt.json"
ERROR_SUFFIX = ".error.txt"
_SOURCE_LINE = "source_ref: "


@dataclass(frozen=True)
class Placement:
    """One possible archive place of an item: the item path and its sidecar.

    The sidecar (receipt or error file) is written under a hidden ``reservation`` name first —
    created exclusively, so it also reserves the name against a second connector — and renamed
    into place only after the item has been moved beside it: a DMS that sees ``NAME.error.txt``
    or ``NAME.receipt.json`` always finds ``NAME`` complete (the folder contract's order)."""

    item: Path
    sidecar: Path

    @property
    def reservation(self) -> Path:
        return self.sidecar.with_name(f".{self.sidecar.name}.claim")


def claim_of(item: OutgoingItem) -> ClaimName:
    claim = ClaimName.parse(item.source_ref)
    if claim is None or item.source != "folder":
        raise ConnectorError(f"{item.source_ref!r} is not a folder claim reference",
                             hint="this item was not claimed by the folder adapter")
    return claim


def work_path(layout: ExchangeLayout, claim: ClaimName) -> Path:
    return layout.work / claim.source_ref


def _split(name: str) -> tuple[str, str]:
    """NAME.edxml -> (NAME, .edxml); ack.yaml -> (ack, .yaml); a bundle NAME -> (NAME, '')."""
    lower = name.lower()
    if lower.endswith(PACKAGE_SUFFIX):
        return name[: -len(PACKAGE_SUFFIX)], name[-len(PACKAGE_SUFFIX):]
    for suffix in (".yaml", ".yml", ".json"):
        if lower.endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    return name, ""


def placements(base: Path, claim: ClaimName, sidecar_suffix: str) -> list[Placement]:
    stem, suffix = _split(claim.name)
    if claim.is_status:
        base = base / "statuses"
    return [Placement(base / f"{candidate}{suffix}", base / f"{candidate}{sidecar_suffix}")
            for candidate in (stem, f"{stem}--{claim.stamp}")]


def _receipt_owner(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("source_ref")
    except (OSError, ValueError, AttributeError):
        return None


def _error_owner(path: Path) -> str | None:
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith(_SOURCE_LINE):
                return line[len(_SOURCE_LINE):].strip()
    except OSError:
        return None
    return None


def _find_own(candidates: list[Placement], claim: ClaimName, owner_of) -> Placement | None:
    """Our place among ``candidates``: published (the sidecar) or still reserved."""
    for placement in candidates:
        for sidecar in (placement.sidecar, placement.reservation):
            if sidecar.exists() and owner_of(sidecar) == claim.source_ref:
                return placement
    return None


def _publish(placement: Placement, content: bytes, rewrite) -> None:
    """Put the sidecar in place, last: the reserved one renamed (with ``content``), or the one
    already there handed to ``rewrite`` (which replaces it only when it changed)."""
    if os.path.lexists(placement.reservation):
        fsutil.atomic_write(placement.reservation, content)
        if placement.sidecar.exists():
            fsutil.remove_durably(placement.reservation)
        else:
            os.rename(placement.reservation, placement.sidecar)
            fsutil.fsync_dir(placement.sidecar.parent)
    else:
        rewrite(placement.sidecar)


def _remove_sidecars(placement: Placement) -> None:
    fsutil.remove_durably(placement.sidecar)
    fsutil.remove_durably(placement.reservation)


def _take_name(candidates: list[Placement], claim: ClaimName, content: bytes) -> Placement:
    """Create the sidecar under the first free candidate name. Creation is exclusive (a hard
    link, which fails if the name exists), so two writers racing for ``NAME`` cannot both win
    and nobody needs to hold a lock while the slow fsyncs run."""
    for placement in candidates:
        if os.path.lexists(placement.item) or placement.sidecar.exists():
            continue
        if not fsutil.create_exclusive(placement.reservation, content):
            continue
        if os.path.lexists(placement.item) or placement.sidecar.exists():  # appeared meanwhile
            fsutil.remove_durably(placement.reservation)
            continue
        return placement
    raise ConnectorError(f"no free name for {claim.display_name} in {candidates[0].item.parent}",
                         hint="an operator created the stamped name by hand; move it away")


def find_sent(layout: ExchangeLayout, claim: ClaimName) -> Placement | None:
    return _find_own(placements(layout.sent, claim, RECEIPT_SUFFIX), claim, _receipt_owner)


def find_failed(layout: ExchangeLayout, claim: ClaimName) -> Placement | None:
    return _find_own(placements(layout.failed, claim, ERROR_SUFFIX), claim, _error_owner)


def mark_sent(layout: ExchangeLayout, item: OutgoingItem, receipt: Receipt) -> Path:
    """Move the item from work/ (or failed/) to sent/, then put its receipt beside it (see
    :class:`Placement`). Returns the item's path in sent/. Rewrites the receipt only when its
    content changed."""
    claim = claim_of(item)
    source = work_path(layout, claim)
    candidates = placements(layout.sent, claim, RECEIPT_SUFFIX)
    placement = _find_own(candidates, claim, _receipt_owner)
    # A stale error file (a crash between writing it and the move to failed/) or a whole
    # failed item (marked failed, then found accepted after all) is cleaned up here too.
    failed = find_failed(layout, claim)
    if not source.exists() and failed is not None and failed.item.exists():
        source = failed.item
    if placement is None:
        if not source.exists():
            raise ConnectorError(f"{claim.display_name} is neither in work/ nor in failed/ nor in "
                                 "sent/", file=str(source),
                                 hint="someone moved it by hand; the journal still knows it was sent")
        placement = _take_name(candidates, claim, _receipt_bytes(receipt, claim))
    if os.path.lexists(source) and not os.path.lexists(placement.item):
        fsutil.durable_rename(source, placement.item)
        log.info("folder_item_sent", item=claim.display_name, to=str(placement.item))
    _publish(placement, _receipt_bytes(receipt, claim),
             lambda path: _rewrite_receipt(path, receipt, claim))
    if failed is not None:
        _remove_sidecars(failed)
    return placement.item


def _receipt_bytes(receipt: Receipt, claim: ClaimName) -> bytes:
    model = receipt_file(receipt, name=claim.display_name, source_ref=claim.source_ref)
    return (model.model_dump_json(indent=2) + "\n").encode("utf-8")


def _rewrite_receipt(path: Path, receipt: Receipt, claim: ClaimName) -> None:
    """Replace the receipt when its content (apart from ``updated_at``) changed."""
    content = _receipt_bytes(receipt, claim)
    try:
        current = json.loads(path.read_text(encoding="utf-8"))
        wanted = json.loads(content)
        current.pop("updated_at", None)
        wanted.pop("updated_at", None)
        if current == wanted:
            return
    except (OSError, ValueError):
        pass
    fsutil.atomic_write(path, content)


def error_text(claim: ClaimName, failure: Failure) -> str:
    retry = failure.retry_command or (
        f"edxml-connector retry {failure.journal_id}" if failure.journal_id
        else "edxml-connector retry --failed")
    failed_at = failure.failed_at.isoformat(timespec="seconds")
    return (
        f"Could not send: {claim.display_name}\n"
        "\n"
        f"What failed: {failure.reason}\n"
        f"When:        {failed_at}\n"
        f"Attempts:    {failure.attempts}\n"
        f"Journal id:  {failure.journal_id or '-'}\n"
        f"Claimed at:  {claim.claimed_at.isoformat(timespec='seconds')}\n"
        "\n"
        "To send it again: fix the cause (the files of this item may be edited here; they are\n"
        "read again on retry), then run\n"
        f"    {retry}\n"
        "\n"
        f"{_SOURCE_LINE}{claim.source_ref}\n"
    )


def mark_failed(layout: ExchangeLayout, item: OutgoingItem, failure: Failure) -> Path:
    """Move the item from work/ to failed/, then put ``NAME.error.txt`` beside it, last (see
    :class:`Placement`). Returns its path in failed/."""
    claim = claim_of(item)
    source = work_path(layout, claim)
    candidates = placements(layout.failed, claim, ERROR_SUFFIX)
    placement = _find_own(candidates, claim, _error_owner)
    text = error_text(claim, failure).encode("utf-8")
    if placement is None:
        if not os.path.lexists(source):
            if find_sent(layout, claim) is not None:
                raise ConnectorError(f"{claim.display_name} is already in sent/; not marking it "
                                     "failed", hint="check the item with `edxml-connector status`")
            raise ConnectorError(f"{claim.display_name} is not in work/", file=str(source),
                                 hint="someone moved it by hand; the journal keeps the failure")
        placement = _take_name(candidates, claim, text)
    if os.path.lexists(source) and not os.path.lexists(placement.item):
        fsutil.durable_rename(source, placement.item)
        log.info("folder_item_failed", item=claim.display_name, to=str(placement.item))
    _publish(placement, text, lambda path: _replace_if_changed(path, text))
    return placement.item


def _replace_if_changed(path: Path, content: bytes) -> None:
    try:
        unchanged = path.read_bytes() == content
    except OSError:
        unchanged = False
    if not unchanged:
        fsutil.atomic_write(path, content)


def put_back(layout: ExchangeLayout, item: OutgoingItem) -> Path:
    """Move a failed item back to its place in work/ (same ``source_ref``) and remove its
    error file; an item still in work/ stays there. Returns the work/ path."""
    claim = claim_of(item)
    target = work_path(layout, claim)
    failed = find_failed(layout, claim)
    if failed is not None:
        if os.path.lexists(failed.item) and not os.path.lexists(target):
            fsutil.durable_rename(failed.item, target)
        _remove_sidecars(failed)
    if not os.path.lexists(target):
        if find_sent(layout, claim) is not None:
            raise ConnectorError(f"{claim.display_name} was already sent; nothing to retry",
                                 hint="use `edxml-connector send FILE` to send a new copy")
        raise ConnectorError(f"{claim.display_name} is neither in work/ nor in failed/",
                             file=str(target),
                             hint="someone moved it by hand; put it back in outbox/ to send it anew")
    return target


def receipt_file(receipt: Receipt, *, name: str, source_ref: str,
                 now: dt.datetime | None = None) -> ReceiptFile:
    """Turn the core's :class:`Receipt` into the file model, filling missing status labels."""
    recipients: dict[str, RecipientStatus] = {}
    for organ_id, raw in receipt.recipients.items():
        entry: dict[str, Any] = dict(raw or {})
        code = entry.get("status")
        if code and not entry.get("label"):
            try:
                entry["label"] = StatusCode(str(code)).label_en
            except ValueError:
                pass
        recipients[organ_id] = RecipientStatus.model_validate(entry)
    return ReceiptFile(name=name, journal_id=receipt.journal_id, document_id=receipt.document_id,
                       state=receipt.state, axis_doc_id=receipt.axis_doc_id,
                       sent_at=receipt.sent_at, recipients=recipients, warnings=receipt.warnings,
                       updated_at=now or dt.datetime.now(dt.timezone.utc), source_ref=source_ref)
