"""The states an item goes through, as the journal records them.

Outgoing: ``queued`` (known, not yet packaged) → ``packaged`` (the bytes to send are built, signed
and stored once; every later attempt sends those same bytes) → ``sending`` (claimed by a sender)
→ ``sent`` (the axis accepted it and gave its DocId) or ``failed`` (attempts exhausted or a
permanent error; the reason is kept). ``cancelled`` is an operator's decision. A failed or
cancelled item can be requeued by the operator; a sent one never is (that would send it twice).

Incoming: ``listed`` (seen in the axis's pending list) → ``fetched`` → ``verified`` → ``stored``
(file and directory fsync'd, row committed) → ``acknowledged`` (the axis was told ``done``) →
``delivered`` (handed to the agency side). ``quarantined`` (stored and acknowledged, refused by the
signature policy until an operator releases or refuses it), ``refused`` (an operator refused a
quarantined item), ``duplicate`` (a redelivery of an item already stored: acknowledged, never
delivered twice).

Per-recipient statuses on a sent item are the edXML status codes (01…06, 02 refused, 13, 15, 16),
kept on the delivery rows; they are not journal states.
"""

from __future__ import annotations

import enum


class OutgoingState(str, enum.Enum):
    QUEUED = "queued"
    PACKAGED = "packaged"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def pending(self) -> bool:
        """Still on its way to the axis (counted by ``oldest_pending_age``)."""
        return self in PENDING_OUTGOING

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_OUTGOING


PENDING_OUTGOING = frozenset({OutgoingState.QUEUED, OutgoingState.PACKAGED, OutgoingState.SENDING})
TERMINAL_OUTGOING = frozenset({OutgoingState.SENT, OutgoingState.FAILED, OutgoingState.CANCELLED})


class OutgoingKind(str, enum.Enum):
    """Same values as ``connector.dms.base.OutgoingKind``; repeated so the journal stands alone."""

    DOCUMENT = "document"
    PACKAGE = "package"
    STATUS = "status"


class IncomingState(str, enum.Enum):
    LISTED = "listed"
    FETCHED = "fetched"
    VERIFIED = "verified"
    STORED = "stored"
    ACKNOWLEDGED = "acknowledged"
    DELIVERED = "delivered"
    QUARANTINED = "quarantined"
    REFUSED = "refused"
    DUPLICATE = "duplicate"


# Forward order of the main incoming path: a transition never moves an item backwards, so a step
# repeated after a crash is a harmless no-op.
INCOMING_ORDER = {
    IncomingState.LISTED: 0,
    IncomingState.FETCHED: 1,
    IncomingState.VERIFIED: 2,
    IncomingState.STORED: 3,
    IncomingState.ACKNOWLEDGED: 4,
    IncomingState.QUARANTINED: 5,
    IncomingState.DUPLICATE: 5,
    IncomingState.DELIVERED: 6,
    IncomingState.REFUSED: 6,
}


class MessageType(str, enum.Enum):
    """The axis's ``messagetype``: a document package or a status package."""

    EDOC = "edoc"
    STATUS = "status"


class EventOutcome(str, enum.Enum):
    OK = "ok"
    RETRY = "retry"
    ERROR = "error"
    INFO = "info"
