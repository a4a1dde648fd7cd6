"""What every operator command needs: the settings, the journal, the agency sides, and the
meaning of the ID an operator types.

The sides are opened *for operator use*: the folder side is driven through its layout and inbox
writer rather than through ``FolderSide`` itself, because ``FolderSide`` takes the per-instance
lock that the running daemon holds — an operator must be able to retry or release while the
daemon runs. The database side has no such lock and is used as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from connector.config import Settings, load_config
from connector.dms.base import Failure, IncomingDocument, OutgoingItem, OutgoingKind
from connector.dms.database.side import DatabaseSide
from connector.dms.folder import results as folder_results
from connector.dms.folder.claims import ClaimName
from connector.dms.folder.inbox import InboxWriter
from connector.dms.folder.layout import ExchangeLayout
from connector.errors import ConfigError, InputError
from connector.journal import IncomingRecord, Journal, OutgoingRecord
from connector.service.runtime import Runtime

DATABASE_LOCATION_PREFIX = "database:"


class FolderOperations:
    """The folder side's operator-facing half: no instance lock, no watcher, no claims."""

    name = "folder"

    def __init__(self, root: str | os.PathLike[str], *, zip_limits: Any = None) -> None:
        self.layout = ExchangeLayout(Path(root))
        self.inbox = InboxWriter(self.layout, zip_limits=zip_limits)

    def unclaim(self, item: OutgoingItem) -> None:
        """Put a failed item back into ``work/`` under its claim name; the daemon that claimed
        it hands it out again (its instance still owns the name)."""
        folder_results.put_back(self.layout, item)

    def mark_failed(self, item: OutgoingItem, failure: Failure) -> None:
        """Show an item as failed (``cancel``): into ``failed/`` with its ``.error.txt``."""
        folder_results.mark_failed(self.layout, item, failure)

    def deliver_document(self, document: IncomingDocument) -> str:
        return str(self.inbox.deliver(document))

    def release_quarantined(self, location: str) -> str:
        return str(self.inbox.release(location))

    def close(self) -> None:
        """Nothing held."""


class OpsContext:
    """Settings plus the daemon's :class:`~connector.service.runtime.Runtime` parts an operator command
    needs, each opened on first use (``status`` never loads the certificate); close it (or use
    ``with``) when done."""

    def __init__(self, settings: Settings, *, instance: str | None = None,
                 hub: OpsContext | None = None) -> None:
        self.settings = settings
        self._instance = instance
        self.runtime: Runtime = Runtime(settings, folder_instance=instance,
                                        hub=hub.runtime if hub is not None else None)
        self._sides: dict[str, Any] = {}
        self._units: dict[str, OpsContext] = {}

    def for_unit(self, organ_id: str | None) -> OpsContext:
        """The context of one unit of a hub — its folders, its DMS rows, its journal view (the
        statuses it sends are its own) — for acting on an item of that unit; this context for
        the first unit (or an item from before units existed)."""
        if not organ_id or organ_id == self.settings.agency.organ_id:
            return self
        if organ_id not in self._units:
            unit = next((u for u in self.settings.units if u.agency.organ_id == organ_id), None)
            if unit is None:
                raise InputError(f"the item belongs to unit {organ_id}, which this configuration "
                                 "does not serve",
                                 hint="add the unit back (agencies_dir) to act on its items; "
                                      "`edxml-connector units` lists them")
            self._units[organ_id] = OpsContext(unit, instance=self._instance, hub=self)
        return self._units[organ_id]

    def check_unit(self, organ_id: str) -> str:
        """``--agency ORGANID``: one of the configured units (or one the journal still holds
        items for); refused with the list otherwise."""
        known = [u.agency.organ_id for u in self.settings.units]
        if organ_id in known or organ_id in self.journal.counts_by_agency():
            return organ_id
        raise InputError(f"--agency {organ_id}: no such unit",
                         hint=f"the units: {', '.join(known)} (`edxml-connector units`)")

    @classmethod
    def from_config(cls, path: str | os.PathLike[str], *, instance: str | None = None) -> OpsContext:
        """Secrets are read only when the command uses one: an operator's shell has no
        ``$CREDENTIALS_DIRECTORY``, and ``status`` or ``inbox list`` need none (``send`` reads
        the key's password, ``retry`` of a database item the DMS URL — a missing one is then a
        one-line error naming its key)."""
        return cls(load_config(path, resolve_secrets=False), instance=instance)

    @property
    def journal(self) -> Journal:
        return self.runtime.journal

    @property
    def store(self):
        return self.runtime.store

    @property
    def signing_key(self):
        return self.runtime.signing_key

    @property
    def agency(self):
        return self.runtime.agency

    @property
    def limits(self):
        return self.runtime.limits

    @property
    def zip_convention(self):
        return self.runtime.zip_convention

    @property
    def algorithm(self) -> str:
        return self.settings.certificate.algorithm.value

    def side(self, name: str) -> Any | None:
        """The agency side called ``name`` (an outgoing item's ``source``), or None when the
        item came from no side (``cli`` — sent with ``send`` — or ``connector`` — e.g. an
        automatic status 01)."""
        if name in self._sides:
            return self._sides[name]
        side: Any | None = None
        if name == "folder":
            exchange = self.settings.exchange
            if exchange is None or not exchange.enabled:
                raise ConfigError("the item came from the exchange folders, which are not "
                                  "enabled in this configuration",
                                  file=str(self.settings.source or ""),
                                  hint="use the configuration the daemon runs with")
            side = FolderOperations(exchange.root, zip_limits=self.runtime.zip_limits)
        elif name == "database":
            if self.settings.database is None:
                raise ConfigError("the item came from the DMS database, which is not configured "
                                  "here", file=str(self.settings.source or ""),
                                  hint="use the configuration the daemon runs with")

            side = DatabaseSide(self.settings.database, **self.runtime.database_unit())
        self._sides[name] = side
        return side

    def delivery_side(self, location: str | None) -> Any:
        """The side an incoming item was (or will be) delivered to."""
        if location and location.startswith(DATABASE_LOCATION_PREFIX):
            return self.side("database")
        if location or (self.settings.exchange is not None and self.settings.exchange.enabled):
            return self.side("folder")
        return self.side("database")

    def close(self) -> None:
        for unit in self._units.values():
            unit.close()
        self._units.clear()
        for side in self._sides.values():
            if side is not None and hasattr(side, "close"):
                side.close()
        self._sides.clear()
        self.runtime.close()

    def __enter__(self) -> OpsContext:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what an operator's ID means ----------------------------------------------------------
    def outgoing(self, key: str) -> OutgoingRecord:
        record = self.journal.outgoing.find_outgoing(key.strip())
        if record is None:
            raise InputError(f"no outgoing item {key!r} (neither a journal id nor a DocumentId "
                             "of a sent document)",
                             hint="`edxml-connector status` lists the items and their ids")
        return record

    def incoming(self, key: str) -> IncomingRecord:
        record = self.journal.incoming.find_incoming(key.strip())
        if record is None:
            raise InputError(f"no received item {key!r} (neither a journal id, an axis DocId nor "
                             "a DocumentId)",
                             hint="`edxml-connector inbox list` lists received items and their ids")
        return record


def outgoing_item_of(record: OutgoingRecord) -> OutgoingItem:
    """The handle an agency side needs to act on one of its items (``source`` + ``source_ref``)."""
    try:
        kind = OutgoingKind(record.kind)
    except ValueError:
        kind = OutgoingKind.DOCUMENT
    return OutgoingItem(source=record.source, source_ref=record.source_ref, kind=kind,
                        display_name=display_name(record))


def display_name(record: OutgoingRecord) -> str:
    """What the DMS calls the item: the outbox name for folder items, else the meta's name."""
    for key in ("display_name", "name"):
        value = record.meta.get(key)
        if value:
            return str(value)
    if record.source == "folder":
        claim = ClaimName.parse(record.source_ref)
        if claim is not None:
            return claim.display_name
    return record.source_ref
