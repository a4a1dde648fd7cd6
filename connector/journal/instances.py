"""Which connector installation (instance) owns an item, and taking over a gone one's items.

Two connectors may share one PostgreSQL journal; an item's stored package lives on the server of
the instance that took it in. :class:`InstanceAdoption` works through the
:class:`~connector.journal.core.JournalCore` it is given (see :mod:`connector.journal.store` for
the whole picture).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy import true as sa_true

from connector.journal import schema as t
from connector.journal.core import JournalCore
from connector.journal.errors import JournalError
from connector.journal.outgoing import DEFAULT_STALE_AFTER
from connector.journal.records import utcnow
from connector.journal.states import PENDING_OUTGOING, EventOutcome, IncomingState, OutgoingState


class InstanceAdoption:
    """Per-instance counts and adoption (``journal.ownership``)."""

    def __init__(self, core: JournalCore) -> None:
        self.core = core

    def adopt(self, from_instance: str, *, stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
              force: bool = False, now: dt.datetime | None = None,
              agency: str | None = None) -> dict[str, list[str]]:
        """Make the unfinished items of instance ``from_instance`` (a server gone for good) this
        instance's, so that this one sends or finishes them.

        What the operator does first: copy the gone server's state directory (the package store,
        ``STATE/packages``) and its exchange ``work/`` claims to this server — or, when they are
        lost, adopt anyway and then ``cancel`` the items whose package is missing (an attempt
        whose stored bytes are missing fails with that reason) so that the DMS sends them anew.

        Adopted: outgoing items not yet ``sent`` (``sending`` ones are put back in line, due
        now; ``failed`` ones so that ``retry`` works here) and incoming items stored but not
        finished. Refused while ``from_instance`` still looks alive (a claim fresher than
        ``stale_after``) unless ``force``. Each item gets an ``adopted`` event. Returns
        ``{"outgoing": [ids], "incoming": [ids]}``. ``agency``: one unit's items only (a hub
        whose units moved to another server one by one).
        """
        now = now or utcnow()
        if from_instance == self.core.instance:
            raise JournalError(f"instance {from_instance!r} is this instance; nothing to adopt",
                               hint="give the name of the instance that is gone")
        o, i = t.outgoing.c, t.incoming.c
        adopted: dict[str, list[str]] = {"outgoing": [], "incoming": []}
        detail = {"from_instance": from_instance, "to_instance": self.core.instance}
        with self.core.write() as conn:
            rows = conn.execute(select(o.id, o.state, o.claimed_at, o.claimed_by, o.package_sha256)
                                .where(o.instance == from_instance,
                                       o.state != OutgoingState.SENT.value,
                                       sa_true() if agency is None else o.agency == agency)
                                .order_by(o.created_at, o.id).with_for_update()).mappings().all()
            live = [row for row in rows if row["state"] == OutgoingState.SENDING.value
                    and row["claimed_at"] is not None and row["claimed_at"] > now - stale_after]
            if live and not force:
                raise JournalError(
                    f"instance {from_instance!r} claimed {len(live)} item(s) less than "
                    f"{stale_after} ago (e.g. {live[0]['id']} by {live[0]['claimed_by']}); "
                    "it may still be running",
                    hint="stop that connector first, or wait, or adopt with force")
            for row in rows:
                values: dict[str, Any] = {"instance": self.core.instance, "updated_at": now}
                if row["state"] == OutgoingState.SENDING.value:
                    back = (OutgoingState.QUEUED if row["package_sha256"] is None
                            else OutgoingState.PACKAGED)
                    values.update(state=back.value, next_attempt_at=now, claimed_at=None,
                                  claimed_by=None)
                conn.execute(update(t.outgoing).where(o.id == row["id"]).values(**values))
                self.core.event(conn, row["id"], "outgoing", "adopted", EventOutcome.INFO,
                            {**detail, "state": row["state"],
                             "previous_owner": row["claimed_by"]}, now)
                adopted["outgoing"].append(row["id"])
            unfinished = or_(
                i.acknowledged_at.is_(None),
                and_(i.delivered_at.is_(None), i.quarantined.is_(False), i.duplicate_of.is_(None),
                     i.state != IncomingState.REFUSED.value))
            of_unit = sa_true() if agency is None else i.agency == agency
            in_ids = list(conn.execute(select(i.id).where(i.instance == from_instance, unfinished,
                                                          of_unit)
                                       .order_by(i.created_at, i.id)).scalars())
            for item_id in in_ids:
                conn.execute(update(t.incoming).where(i.id == item_id).values(
                    instance=self.core.instance, updated_at=now))
                self.core.event(conn, item_id, "incoming", "adopted", EventOutcome.INFO, detail, now)
            adopted["incoming"] = in_ids
            self.core.event(conn, None, "journal", "instance_adopted", EventOutcome.INFO,
                        {**detail, "outgoing": len(rows), "incoming": len(in_ids),
                         "forced": bool(force and live)}, now)
        return adopted

    def instances(self, agency: str | None = None) -> dict[str, dict[str, int]]:
        """Unfinished item counts per instance (``None``: rows from before instances): what an
        operator looks at before :meth:`adopt`; one unit's items when ``agency``."""
        o, i = t.outgoing.c, t.incoming.c
        out_unit = sa_true() if agency is None else o.agency == agency
        in_unit = sa_true() if agency is None else i.agency == agency
        result: dict[str, dict[str, int]] = {}
        with self.core.read() as conn:
            for instance, count in conn.execute(
                    select(o.instance, func.count()).where(
                        o.state.in_([st.value for st in PENDING_OUTGOING]), out_unit)
                    .group_by(o.instance)):
                result.setdefault(instance, {"outgoing": 0, "incoming": 0})["outgoing"] = count
            for instance, count in conn.execute(
                    select(i.instance, func.count()).where(
                        i.acknowledged_at.is_(None) | and_(
                            i.delivered_at.is_(None), i.quarantined.is_(False),
                            i.duplicate_of.is_(None), i.state != IncomingState.REFUSED.value),
                        in_unit)
                    .group_by(i.instance)):
                result.setdefault(instance, {"outgoing": 0, "incoming": 0})["incoming"] = count
        return result
