"""`units` (issue 14, part 3; decisions.md "Command names"): the connector's own units with their
state, queues, last poll and certificate days left — and the units the journal still holds items
for although the configuration no longer names them."""

from __future__ import annotations

import datetime as dt
import json

from connector.journal import (
    KV_CERTIFICATE_COVERAGE,
    KV_DELIVERY_PAUSED,
    KV_LAST_POLL,
    Journal,
    unit_key,
)
from connector.ops.units_view import collect_units, render_units
from connector.pipeline.delivery_backoff import DeliveryBackoff

from .conftest import failed_folder_item, received_document

RENAMED = "000.00.00.Z99"  # the unit's code before an operator corrected the configuration


def test_the_unit_with_its_queues_poll_and_certificate_and_a_unit_left_in_the_journal(
        ctx, daemon_side, site, cli):
    failed_folder_item(ctx, daemon_side, site)
    ctx.journal.outgoing.enqueue("folder", "later.edxml", "package", recipients=[site.peer])
    received_document(ctx, site)
    now = dt.datetime.now(dt.timezone.utc)
    ctx.journal.set_time(KV_LAST_POLL, now)
    ctx.journal.set_time(unit_key(KV_CERTIFICATE_COVERAGE, site.organ_id),
                         now + dt.timedelta(days=45, hours=1))
    with Journal.open(ctx.settings.journal.url, agency=RENAMED) as old:
        old.outgoing.enqueue("folder", "before-the-rename.edxml", "package",
                             recipients=[site.peer])

    code, out, err = cli("units", "--json")
    assert code == 0, err
    unit, orphan = json.loads(out)
    assert unit["organ_id"] == site.organ_id and unit["state"] == "active"
    assert (unit["outgoing_pending"], unit["outgoing_failed"], unit["incoming_pending"]) == (1, 1, 1)
    assert unit["certificate_days_left"] == 45.0
    assert unit["last_poll"] == now.isoformat(timespec="seconds")
    assert orphan["organ_id"] == RENAMED and orphan["state"] == "not configured"
    assert orphan["outgoing_pending"] == 1  # kept: it goes on if the unit comes back

    code, table, _ = cli("units")
    assert code == 0 and site.organ_id in table and RENAMED in table and "not configured" in table
    assert max(len(line) for line in table.splitlines()) <= 100


def test_a_unit_whose_side_refuses_deliveries_or_whose_certificate_ended_is_paused(ctx, site):
    backoff = DeliveryBackoff()
    backoff.failed("no such table: van_ban_den")
    assert backoff.pause is not None
    ctx.journal.kv_set(KV_DELIVERY_PAUSED, backoff.pause.as_json())
    [unit] = collect_units(ctx.settings, ctx.journal)
    assert unit["state"] == "paused" and "van_ban_den" in unit["reason"]
    ctx.journal.set_time(unit_key(KV_CERTIFICATE_COVERAGE, site.organ_id),
                         dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1))
    [unit] = collect_units(ctx.settings, ctx.journal)
    assert unit["state"] == "paused" and unit["reason"] == "no certificate can sign"
    assert render_units([unit]) is not None
