"""``retry ID``, ``retry --failed`` and ``cancel ID``: the operator's say over outgoing items.

The journal decides whether the transition is allowed (a sent item is never retried, an item
being sent right now is neither retried nor cancelled) and records it with the operator as the
actor; then the agency side is told, so the DMS sees the same thing as the journal:

- retry of a failed or cancelled item: the side gets the item back (``unclaim``: a folder item
  moves from ``failed/`` back to ``work/``, its ``.error.txt`` removed; a database row returns to
  its "new" state), and the daemon sends it on its next pass — re-reading the item if it was
  never packaged, so a corrected ``document.yaml`` is used;
- cancel: the item is shown as failed on the side with the reason "cancelled by the operator"
  and the command that would bring it back.

The journal goes first: if telling the side fails, the error says so and the journal is already
right (the daemon acts on the journal alone); running the same command again is harmless.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from connector.dms.base import Failure
from connector.errors import ConnectorError
from connector.journal import OutgoingRecord, OutgoingState
from connector.ops.bulk import BULK_LIMIT, BulkResult, apply_to_each
from connector.ops.context import OpsContext, outgoing_item_of

RETRY_ACTOR = "operator"


def retry(ctx: OpsContext, key: str) -> OutgoingRecord:
    """Requeue one item (journal id or DocumentId) and give it back to its agency side."""
    before = ctx.outgoing(key)
    after = ctx.journal.outgoing.requeue(before.id, actor=RETRY_ACTOR)
    if before.state in (OutgoingState.FAILED, OutgoingState.CANCELLED):
        side = ctx.for_unit(before.agency).side(before.source)
        if side is not None and hasattr(side, "unclaim"):
            try:
                side.unclaim(outgoing_item_of(before))
            except ConnectorError as error:
                raise ConnectorError(
                    f"item {before.id} is requeued in the journal, but its {before.source} side "
                    f"could not take it back: {error.one_line()}",
                    hint="the daemon will still send the stored package if there is one; fix the "
                         "cause and run the same retry again") from error
    return after


def failed_items(ctx: OpsContext, agency: str | None = None) -> list[OutgoingRecord]:
    """Every failed item (of one unit when ``agency``), oldest first."""
    return ctx.journal.outgoing.list_outgoing(OutgoingState.FAILED, limit=BULK_LIMIT,
                                              newest_first=False, agency=agency)


def retry_failed(ctx: OpsContext, *, progress: Callable[[int], None] | None = None,
                 total: Callable[[int], None] | None = None,
                 agency: str | None = None) -> BulkResult:
    """``retry --failed``: every failed item (of one unit), oldest first (see
    :mod:`connector.ops.bulk`)."""
    failed = failed_items(ctx, agency)
    return apply_to_each([record.id for record in failed], lambda item_id: retry(ctx, item_id),
                         total=total, progress=progress)


def cancel(ctx: OpsContext, key: str, *, reason: str | None = None,
           now: dt.datetime | None = None) -> tuple[OutgoingRecord, str | None]:
    """Cancel an item not yet sent; returns the record and a warning when the side could not
    show it (e.g. the folder item is no longer in ``work/``)."""
    before = ctx.outgoing(key)
    after = ctx.journal.outgoing.cancel(before.id, reason=reason, actor=RETRY_ACTOR, now=now)
    if before.state is OutgoingState.CANCELLED:
        return after, None
    side = ctx.for_unit(before.agency).side(before.source)
    if side is None or not hasattr(side, "mark_failed"):
        return after, None
    text = "cancelled by the operator" + (f": {reason}" if reason else "")
    failure = Failure(journal_id=after.id, reason=text, attempts=after.attempts,
                      failed_at=now or dt.datetime.now(dt.timezone.utc),
                      retry_command=f"edxml-connector retry {after.id}")
    try:
        side.mark_failed(outgoing_item_of(before), failure)
    except ConnectorError as error:
        return after, (f"cancelled in the journal; the {before.source} side was not updated: "
                       f"{error.one_line()}")
    return after, None
