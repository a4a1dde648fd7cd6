"""The journal: durable state of every item, the spine of the connector.

``Journal.open(url)`` connects (SQLite in WAL mode with ``synchronous=FULL``, or PostgreSQL) and
upgrades the schema; its parts (``journal.outgoing``, ``journal.incoming``, ``journal.recipients``,
``journal.ownership``) hold the transitions the outbound and inbound pipelines call. See
:mod:`connector.journal.store` for the guarantees.
"""

from connector.edxml.xmldsig import SignatureState
from connector.journal.backup import backup
from connector.journal.errors import InvalidTransition, JournalError, UnknownItem
from connector.journal.outgoing import DEFAULT_STALE_AFTER, NewOutgoing, Packaged
from connector.journal.records import (
    DeliveryRecord,
    EventRecord,
    IncomingRecord,
    OutgoingRecord,
    StatusRecord,
    new_id,
)
from connector.journal.states import (
    EventOutcome,
    IncomingState,
    MessageType,
    OutgoingKind,
    OutgoingState,
)
from connector.journal.store import (
    KV_CERTIFICATE_COVERAGE,
    KV_DELIVERY_PAUSED,
    KV_LAST_AXIS_CONTACT,
    KV_LAST_POLL,
    KV_OUTBOX_REFUSED,
    KV_UNIT_PAUSED,
    Journal,
    unit_key,
)

__all__ = [
    "DEFAULT_STALE_AFTER", "KV_CERTIFICATE_COVERAGE", "KV_DELIVERY_PAUSED", "KV_LAST_AXIS_CONTACT",
    "KV_LAST_POLL", "KV_OUTBOX_REFUSED", "KV_UNIT_PAUSED", "DeliveryRecord", "EventOutcome", "EventRecord",
    "IncomingRecord", "IncomingState", "InvalidTransition", "Journal", "JournalError",
    "MessageType", "NewOutgoing", "OutgoingKind", "OutgoingRecord", "OutgoingState", "Packaged",
    "SignatureState", "StatusRecord", "UnknownItem", "unit_key", "backup", "new_id",
]
