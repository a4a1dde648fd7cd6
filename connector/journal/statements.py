"""SQL statements the journal's hot path runs over and over, built once at import time.

Transitions bind their values as parameters, so a statement is compiled and cache-keyed by
SQLAlchemy once instead of on every call.
"""

from sqlalchemy import bindparam, case, insert, select, update

from connector.journal import schema as t
from connector.journal.states import OutgoingState

# The statements of the hot path (several per transition, ~100 transitions a second under load),
# built once: a statement built per call costs its construction plus a cache-key computation
# in SQLAlchemy each time, which was most of the journal's CPU. Values go in as parameters.
_ROW_BY_ID = {(table.name, lock): (select(table).where(table.c.id == bindparam("item_id"))
                                   .with_for_update() if lock else
                                   select(table).where(table.c.id == bindparam("item_id")))
              for table in (t.outgoing, t.incoming) for lock in (False, True)}
_DELIVERIES_OF = (select(t.deliveries).where(t.deliveries.c.outgoing_id == bindparam("item_id"))
                  .order_by(t.deliveries.c.organ_id))
_INSERT_EVENT = insert(t.events)
# The claim: a conditional UPDATE (same state, same claim as read), keyed by "was it unclaimed".
_CLAIM = {unclaimed: update(t.outgoing).where(
    t.outgoing.c.id == bindparam("b_id"), t.outgoing.c.state == bindparam("b_state"),
    t.outgoing.c.claimed_at.is_(None) if unclaimed
    else t.outgoing.c.claimed_at == bindparam("b_claimed_at")).values(
    state=OutgoingState.SENDING.value, attempts=t.outgoing.c.attempts + 1,
    claimed_at=bindparam("b_now"), claimed_by=bindparam("b_owner"), updated_at=bindparam("b_now"))
    for unclaimed in (True, False)}
_OUTGOING_BY_SOURCE = select(t.outgoing).where(t.outgoing.c.source == bindparam("source"),
                                               t.outgoing.c.source_ref == bindparam("source_ref"))
_OUTGOING_BY_SOURCE_MANY = select(t.outgoing).where(
    t.outgoing.c.source == bindparam("source"),
    t.outgoing.c.source_ref.in_(bindparam("source_refs", expanding=True)))


_DELIVERIES_OF_MANY = (select(t.deliveries)
                       .where(t.deliveries.c.outgoing_id.in_(bindparam("item_ids", expanding=True)))
                       .order_by(t.deliveries.c.outgoing_id, t.deliveries.c.organ_id))
_INSERT_OUTGOING = insert(t.outgoing)
_INSERT_DELIVERY = insert(t.deliveries)
# The two transitions of every first-attempt success, each as ONE conditional statement that
# hands back the row as written (``UPDATE … RETURNING``: SQLite ≥ 3.35, PostgreSQL): the WHERE
# clause carries the precondition that used to be checked on a row read first. When it does not
# match (already packaged, already sent, another state) the careful path with its read runs.
_PACKAGED_FAST = (update(t.outgoing).where(
    t.outgoing.c.id == bindparam("b_id"), t.outgoing.c.package_sha256.is_(None),
    t.outgoing.c.state.in_([OutgoingState.QUEUED.value, OutgoingState.SENDING.value])).values(
    package_path=bindparam("b_path"), package_sha256=bindparam("b_sha256"),
    package_size=bindparam("b_size"), document_id=bindparam("b_document_id"),
    signed_by=bindparam("b_signed_by"),
    business_type=bindparam("b_business_type"), updated_at=bindparam("b_now"),
    state=case((t.outgoing.c.state == OutgoingState.QUEUED.value, OutgoingState.PACKAGED.value),
               else_=t.outgoing.c.state)).returning(*t.outgoing.c))
_SENT_FAST = (update(t.outgoing).where(
    t.outgoing.c.id == bindparam("b_id"), t.outgoing.c.state == OutgoingState.SENDING.value).values(
    state=OutgoingState.SENT.value, axis_doc_id=bindparam("b_axis_doc_id"), next_attempt_at=None,
    claimed_at=None, claimed_by=None, last_error=None, updated_at=bindparam("b_now"))
    .returning(*t.outgoing.c))
