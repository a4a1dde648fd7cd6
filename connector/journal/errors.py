"""The journal's own errors: a transition the item's state forbids, or an id it does not know.

Kept apart from :mod:`connector.journal.store` so that every transition module can raise them
without importing the ``Journal`` class that is composed from those modules.
"""

from connector.errors import ConnectorError


class JournalError(ConnectorError):
    """A transition that the item's state does not allow, or an unknown item."""


class UnknownItem(JournalError):
    exit_code = 2


class InvalidTransition(JournalError):
    exit_code = 2
