"""The agency side as a DMS database: outgoing rows are claimed and sent, results written back,
received documents, statuses and lifecycle events inserted into mapped tables.

Why it is shaped this way:

- **Claims are atomic in the database itself**, so two connectors (or a connector and an operator)
  can never take the same row: ``SELECT ... FOR UPDATE SKIP LOCKED`` + UPDATE where the database has
  it and the claims table is the source table, otherwise a conditional
  ``UPDATE ... WHERE id = :id AND (state IN (new) OR state IS NULL)`` whose row count says who won
  (with a separate claims table, an INSERT whose primary key says the same for a row never seen).
- **Crash recovery**: rows this connector (``claim_owner``) claimed and never finished are handed
  out again by the first ``claim_ready`` of a new process; the journal recognises them by
  ``source_ref`` (the row id) and carries on where it stopped.
- **Nothing is lost or half-read**: a claimed row that cannot be used (bad OrganId, broken JSON,
  a missing attachment file) is still returned, with ``OutgoingItem.problem`` naming the row, the
  field and the column; the core records it and calls ``mark_failed``, which writes the reason
  into the row's error column. Fix the row and run ``edxml-connector retry ID``.
- **Incoming inserts are idempotent**: check-then-insert in one transaction, with the UNIQUE key
  column as the final guard, so a redelivery after a crash inserts nothing. Nothing is deleted.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from pydantic import ValidationError
from sqlalchemy.engine import Connection, Engine

from connector import fsutil
from connector.dms.base import (
    Failure,
    IncomingDocument,
    IncomingStatus,
    LifecycleEvent,
    OutgoingItem,
    OutgoingKind,
    Receipt,
)
from connector.dms.database import incoming
from connector.dms.database.mapping import (
    AttachmentsMapping,
    DmsDatabaseSettings,
    GeneratedValue,
    IncomingTableMapping,
    OutgoingDocumentsMapping,
    OutgoingStatusesMapping,
    _Source,
)
from connector.dms.database.rows import (
    RowProblem,
    column_for_error,
    metadata_fields,
    plain,
    recipients_from_column,
    recipients_from_rows,
    status_request,
    text_of,
)
from connector.dms.database.sql import (
    connect_args_for,
    generated_value,
    is_deadlock,
    ready_condition,
    supports_skip_locked,
    table_ref,
    to_db_value,
    typed_table,
)
from connector.errors import ConfigError, ConnectorError, InputError
from connector.schemas.document import parse_document_metadata

log = structlog.get_logger(__name__)

DEADLOCK_RETRIES = 3
"""How many times a transaction the database broke as a deadlock victim is tried again."""

STATUS_REF_PREFIX = "status:"


class DmsDatabaseError(ConnectorError):
    """The DMS database refused or could not be reached (operational; retried next poll)."""


class DatabaseSide:
    """``AgencySide`` over a DMS database, driven entirely by ``DmsDatabaseSettings``."""

    name = "database"

    def __init__(self, settings: DmsDatabaseSettings, *, engine: Engine | None = None,
                 parts_reader: incoming.PartsReader | None = None, unit: str | None = None,
                 other_units: frozenset[str] | None = None) -> None:
        """``unit`` (a hub's unit on a shared DMS database): the value of the mapping's
        ``unit_column`` on this unit's rows — only those are claimed, and received rows carry
        it as their ``unit`` field. ``other_units``, given to one unit of the hub: every other
        configured unit's value; a ready row with a value in neither is refused (its error
        written back, never sent)."""
        self.settings = settings
        self.unit = unit
        self.known_units = (None if other_units is None or unit is None
                            else other_units | {unit})
        owner = settings.claim_owner or socket.gethostname()
        # Each unit's claims under its own name, so that one unit never takes back another's.
        self.owner = owner if unit is None or not _has_unit_column(settings) else f"{owner}:{unit}"
        self._timezone = ZoneInfo(settings.timezone)
        if engine is None:
            url = sa.make_url(settings.resolved_url())
            engine = sa.create_engine(url, pool_pre_ping=True,
                                      connect_args=connect_args_for(url, settings.connect_timeout))
        self.engine = engine
        _refuse_sequences_without_support(settings, engine.dialect.name)
        self._read_parts = parts_reader or incoming.read_parts
        self._handed_out: set[str] = set()
        self._row_ids: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._skip_locked: bool | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        self.engine.dispose()

    def check(self) -> str:
        """Run a zero-row SELECT over every mapped table and column, so that a typo in the
        mapping is reported by ``edxml-connector check`` instead of at the first document."""
        checks: list[tuple[str, sa.Select[Any]]] = []
        if self.settings.outgoing is not None:
            mapping = self.settings.outgoing
            checks.append(("outgoing", sa.select(*self._source(mapping).c).limit(0)))
            checks.append(("outgoing.claims", sa.select(*self._claims_table(mapping).c).limit(0)))
            if mapping.recipients.table:
                recipients = table_ref(mapping.recipients.table, mapping.recipients.foreign_key,
                                       *mapping.recipients.columns.values())
                checks.append(("outgoing.recipients", sa.select(*recipients.c).limit(0)))
            if mapping.attachments is not None and mapping.attachments.table:
                attachments = table_ref(mapping.attachments.table, mapping.attachments.foreign_key,
                                        *_attachment_columns(mapping.attachments))
                checks.append(("outgoing.attachments", sa.select(*attachments.c).limit(0)))
        if self.settings.statuses is not None:
            mapping_s = self.settings.statuses
            checks.append(("statuses", sa.select(*self._source(mapping_s).c).limit(0)))
            checks.append(("statuses.claims",
                           sa.select(*self._claims_table(mapping_s).c).limit(0)))
        mapped_in = self.settings.incoming
        for key, target in (("incoming.documents", mapped_in.documents),
                            ("incoming.statuses", mapped_in.statuses),
                            ("incoming.events", mapped_in.events)):
            if target is not None:
                table = table_ref(target.table, *target.columns.values())
                checks.append((key, sa.select(*table.c).limit(0)))
        if mapped_in.attachments is not None:
            table = table_ref(mapped_in.attachments.table, mapped_in.attachments.foreign_key,
                              *mapped_in.attachments.columns.values())
            checks.append(("incoming.attachments", sa.select(*table.c).limit(0)))
        try:
            with self.engine.connect() as connection:
                for key, statement in checks:
                    try:
                        connection.execute(statement).all()
                    except sa.exc.DBAPIError as error:
                        raise DmsDatabaseError(
                            f"database.{key}: the mapped table or a column is missing: "
                            f"{_short(error)}", hint="fix the mapping or the DMS schema") from error
        except sa.exc.DBAPIError as error:
            raise DmsDatabaseError(f"cannot connect to the DMS database: {_short(error)}",
                                   hint="check database.url and that the server is up") from error
        return f"{self.engine.dialect.name}: {len(checks)} mapped tables reachable"

    # -- outgoing: claim ------------------------------------------------------------------------

    def claim_ready(self, limit: int | None = None) -> list[OutgoingItem]:
        budget = limit if limit is not None else self.settings.batch_size
        items: list[OutgoingItem] = []
        try:
            if self.known_units is not None:
                self._refuse_unknown_units()
            for mapping, kind in ((self.settings.outgoing, OutgoingKind.DOCUMENT),
                                  (self.settings.statuses, OutgoingKind.STATUS)):
                if mapping is None or budget - len(items) <= 0:
                    continue
                ids = self._recover(mapping, budget - len(items))
                ids += self._claim_new(mapping, budget - len(items) - len(ids))
                for row_id in ids:
                    items.append(self._load_item(mapping, kind, row_id))
        except sa.exc.DBAPIError as error:
            raise DmsDatabaseError(f"claiming from the DMS database failed: {_short(error)}",
                                   hint="the claim is retried at the next poll") from error
        return items

    def _recover(self, mapping: _Source, budget: int) -> list[Any]:
        """Rows claimed by this owner and not finished, not yet handed out by this process."""
        if budget <= 0:
            return []
        claims = mapping.claims
        table = self._claims_table(mapping)
        condition = table.c[claims.state] == self.settings.states.claimed
        if claims.claimed_by:
            condition = condition & (table.c[claims.claimed_by] == self.owner)
        statement = sa.select(table.c[claims.id_column]).where(condition).order_by(
            table.c[claims.id_column])
        with self.engine.connect() as connection:
            ids = [plain(value) for value in connection.execute(statement).scalars()]
        with self._lock:
            fresh = [row_id for row_id in ids
                     if self._ref(mapping, row_id) not in self._handed_out][:budget]
            for row_id in fresh:
                self._remember(mapping, row_id)
        if fresh:
            log.info("dms_db.claims_recovered", table=claims.table or mapping.table,
                     count=len(fresh))
        return fresh

    def _claim_new(self, mapping: _Source, budget: int) -> list[Any]:
        if budget <= 0:
            return []
        same_table = mapping.claims.table is None
        if same_table and self._use_skip_locked():
            claimed = self._claim_skip_locked(mapping, budget)
        else:
            claimed = [row_id for row_id in self._candidates(mapping, budget)
                       if self._claim_one(mapping, row_id)]
        with self._lock:
            for row_id in claimed:
                self._remember(mapping, row_id)
        if claimed:
            log.info("dms_db.claimed", table=mapping.claims.table or mapping.table,
                     count=len(claimed), owner=self.owner)
        return claimed

    def _use_skip_locked(self) -> bool:
        method = self.settings.claim_method
        if method == "update":
            return False
        if self._skip_locked is None:
            self._skip_locked = supports_skip_locked(self.engine)
            if method == "skip_locked" and not self._skip_locked:
                raise ConnectorError("database.claim_method: skip_locked is not supported by "
                                     f"this {self.engine.dialect.name} server",
                                     hint="use claim_method: auto")
        return self._skip_locked

    def _claim_values(self) -> dict[str, Any]:
        return {"state": self.settings.states.claimed, "claimed_by": self.owner,
                "claimed_at": self._now(), "updated_at": self._now(), "error": None}

    def _claims_update(self, mapping: _Source, values: Mapping[str, Any]) -> dict[str, Any]:
        """Logical claim fields -> mapped column values (unmapped fields are dropped)."""
        claims = mapping.claims
        result: dict[str, Any] = {}
        for field, value in values.items():
            column = getattr(claims, field)
            if column:
                result[column] = to_db_value(value, self._timezone)
        return result

    def _claim_skip_locked(self, mapping: _Source, budget: int) -> list[Any]:
        claims = mapping.claims
        table = self._claims_table(mapping)
        states = self.settings.states
        order = self._order_column(mapping, table)
        select = (sa.select(table.c[claims.id_column])
                  .where(ready_condition(table.c[claims.state], states.new, states.null_is_new),
                         self._of_unit(mapping, table))
                  .order_by(order).limit(budget).with_for_update(skip_locked=True))
        with self.engine.begin() as connection:
            ids = [plain(value) for value in connection.execute(select).scalars()]
            if ids:
                values = self._claims_update(mapping, self._claim_values())
                target = typed_table(self._claims_name(mapping), {claims.id_column: None, **values})
                connection.execute(sa.update(target)
                                   .where(target.c[claims.id_column].in_(ids)).values(values))
        return ids

    def _candidates(self, mapping: _Source, budget: int) -> list[Any]:
        """Ready row ids (not claimed yet), oldest first; the claim itself decides who wins."""
        claims = mapping.claims
        states = self.settings.states
        if claims.table is None:
            table = self._claims_table(mapping)
            condition = ready_condition(table.c[claims.state], states.new, states.null_is_new)
            condition = condition & self._of_unit(mapping, table)
            statement = (sa.select(table.c[claims.id_column]).where(condition)
                         .order_by(self._order_column(mapping, table)).limit(budget))
        else:
            source = self._source(mapping)
            claim_table = self._claims_table(mapping)
            joined = source.outerjoin(
                claim_table, claim_table.c[claims.id_column] == source.c[mapping.id_column])
            condition = ready_condition(claim_table.c[claims.state], states.new,
                                        states.null_is_new, row_exists=claim_table.c[claims.id_column])
            condition = condition & self._of_unit(mapping, source)
            statement = (sa.select(source.c[mapping.id_column]).select_from(joined)
                         .where(condition).order_by(self._order_column(mapping, source))
                         .limit(budget))
        with self.engine.connect() as connection:
            return [plain(value) for value in connection.execute(statement).scalars()]

    def _claim_one(self, mapping: _Source, row_id: Any) -> bool:
        """Conditional UPDATE (row count 1 = ours); for a separate claims table with no row yet,
        an INSERT whose primary key makes a concurrent second INSERT fail."""
        claims = mapping.claims
        states = self.settings.states
        values = self._claims_update(mapping, self._claim_values())
        target = typed_table(self._claims_name(mapping), {claims.id_column: row_id,
                                                          **values})
        condition = (target.c[claims.id_column] == row_id) & ready_condition(
            target.c[claims.state], states.new, states.null_is_new)
        with self.engine.begin() as connection:
            if connection.execute(sa.update(target).where(condition).values(values)).rowcount == 1:
                return True
        if claims.table is None:
            return False
        try:
            with self.engine.begin() as connection:
                connection.execute(sa.insert(target).values({claims.id_column: row_id, **values}))
            return True
        except sa.exc.IntegrityError:
            return False  # another connector inserted the claim first, or the row moved on

    # -- outgoing: load a claimed row -----------------------------------------------------------

    def _load_item(self, mapping: _Source, kind: OutgoingKind, row_id: Any) -> OutgoingItem:
        ref = self._ref(mapping, row_id)
        item = OutgoingItem(source=self.name, source_ref=ref, kind=kind, claimed_at=self._now())
        where = f"{mapping.table or 'outgoing query'} row {mapping.id_column}={row_id}"
        try:
            with self.engine.connect() as connection:
                source = self._source(mapping)
                row = connection.execute(
                    sa.select(*source.c).where(source.c[mapping.id_column] == row_id)
                ).mappings().first()
                if row is None:
                    raise RowProblem("the row is no longer in the source (deleted, or filtered "
                                     "out by the query)")
                if isinstance(mapping, OutgoingStatusesMapping):
                    item.status = status_request(row, mapping)
                else:
                    assert isinstance(mapping, OutgoingDocumentsMapping)
                    item.display_name = (text_of(row[mapping.display_name_column],
                                                 mapping.display_name_column)
                                         if mapping.display_name_column
                                         and row[mapping.display_name_column] is not None
                                         else None)
                    self._fill_document(connection, mapping, row_id, row, item, where)
        except RowProblem as problem:
            item.problem = InputError(
                problem.message, file=f"database:{where}",
                element=(f"{problem.field} (column {problem.column})" if problem.field
                         and problem.column else problem.column or problem.field),
                hint="fix the row, then `edxml-connector retry` the item")
        except InputError as error:
            item.problem = error
        if item.problem is not None:
            log.warning("dms_db.row_unusable", ref=ref, problem=item.problem.one_line())
        if item.display_name is None:
            item.display_name = f"{mapping.table or 'query'}#{row_id}"
        return item

    def _fill_document(self, connection: Connection, mapping: OutgoingDocumentsMapping,
                       row_id: Any, row: Mapping[Any, Any], item: OutgoingItem,
                       where: str) -> None:
        raw = metadata_fields(row, mapping)
        if mapping.recipients.table:
            recipients = self._child_rows(connection, mapping.recipients.table,
                                          mapping.recipients.foreign_key, row_id,
                                          list(mapping.recipients.columns.values()),
                                          mapping.recipients.order_by
                                          or mapping.recipients.columns["organ_id"])
            raw["to"] = recipients_from_rows(recipients, mapping)
        else:
            raw["to"] = recipients_from_column(row.get(mapping.recipients.column or ""), mapping)
        if "take_back" in raw:
            raw["take_back"].setdefault("to", [entry.get("organ_id") for entry in raw["to"]])
        if mapping.attachments is not None:
            entries, blobs, files = self._attachments(connection, mapping.attachments, row_id, row)
            raw["attachments"] = entries
            item.attachment_blobs = blobs
            item.attachment_files = files
        try:
            item.metadata = parse_document_metadata(raw, file=f"database:{where}")
        except InputError as error:
            cause = error.__cause__
            column = column_for_error(cause, mapping) if isinstance(cause, ValidationError) else None
            if column:
                error.element = f"column {column}"
            raise

    def _attachments(self, connection: Connection, mapping: AttachmentsMapping, row_id: Any,
                     row: Mapping[str, Any]) -> tuple[list[dict[str, Any]],
                                                      list[tuple[str, bytes]], list[Path]]:
        if mapping.table:
            rows: list[Mapping[str, Any]] = self._child_rows(
                connection, mapping.table, mapping.foreign_key, row_id,
                _attachment_columns(mapping), mapping.order_by)
        else:
            rows = [row] if any(plain(row.get(column)) is not None for column in
                                (mapping.blob_column, mapping.path_column) if column) else []
        entries: list[dict[str, Any]] = []
        contents: list[tuple[str, bytes | Path]] = []
        for attachment in rows:
            name_value = plain(attachment.get(mapping.name_column))
            blob = plain(attachment.get(mapping.blob_column)) if mapping.blob_column else None
            path_value = (plain(attachment.get(mapping.path_column))
                          if mapping.path_column else None)
            content: bytes | Path
            if blob is not None:
                if isinstance(blob, str):
                    blob = blob.encode("utf-8")
                content = blob
            elif path_value is not None and str(path_value).strip():
                path = Path(text_of(path_value, mapping.path_column or "")).expanduser()
                if not path.is_absolute() and mapping.base_dir is not None:
                    path = mapping.base_dir / path
                if not path.is_file():
                    raise RowProblem(f"attachment file {str(path)!r} does not exist or is not a "
                                     "regular file", column=mapping.path_column,
                                     field="attachments")
                content = _sendable_path(path, mapping)
                if name_value is None or not str(name_value).strip():
                    name_value = path.name  # the name the DMS gave, not a link target's
            else:
                raise RowProblem("an attachment row has neither content nor a file path",
                                 column=mapping.blob_column or mapping.path_column,
                                 field="attachments")
            if name_value is None or not str(name_value).strip():
                if isinstance(content, Path):
                    name = content.name
                else:
                    raise RowProblem("an attachment has no file name", column=mapping.name_column,
                                     field="attachments")
            else:
                name = text_of(name_value, mapping.name_column).strip()
            entry: dict[str, Any] = {"file": content.name if isinstance(content, Path) else name,
                                     "name": name}
            for field, column in (("description", mapping.description_column),
                                  ("content_type", mapping.content_type_column)):
                value = plain(attachment.get(column)) if column else None
                if value is not None and str(value).strip():
                    entry[field] = text_of(value, column or "")
            entries.append(entry)
            contents.append((name, content))
        if all(isinstance(content, Path) for _, content in contents):
            return entries, [], [content for _, content in contents if isinstance(content, Path)]
        # Mixed or all BLOBs: hand everything over as bytes so the order is one list.
        blobs: list[tuple[str, bytes]] = []
        for index, (name, content) in enumerate(contents):
            if isinstance(content, Path):
                entries[index]["file"] = name
                with fsutil.open_sendable(content) as handle:
                    blobs.append((name, handle.read()))
            else:
                blobs.append((name, content))
        return entries, blobs, []

    def _child_rows(self, connection: Connection, table_name: str, foreign_key: str,
                    row_id: Any, columns: list[str], order_by: str | None) -> list[Mapping[Any, Any]]:
        table = table_ref(table_name, foreign_key, *columns, *([order_by] if order_by else []))
        statement = sa.select(*table.c).where(table.c[foreign_key] == row_id)
        if order_by:
            statement = statement.order_by(table.c[order_by])
        return list(connection.execute(statement).mappings())

    # -- outgoing: results ----------------------------------------------------------------------

    def mark_sent(self, item: OutgoingItem, receipt: Receipt) -> None:
        values: dict[str, Any] = {"state": self.settings.states.sent, "error": None,
                                  "journal_id": receipt.journal_id,
                                  "document_id": receipt.document_id,
                                  "axis_doc_id": receipt.axis_doc_id,
                                  "sent_at": receipt.sent_at or self._now(),
                                  "updated_at": self._now()}
        values.update(self._receipt_values(receipt))
        self._write_back(item, values)

    def update_receipt(self, item: OutgoingItem, receipt: Receipt) -> None:
        values: dict[str, Any] = {"updated_at": self._now(), **self._receipt_values(receipt)}
        if receipt.axis_doc_id:
            values["axis_doc_id"] = receipt.axis_doc_id
        if receipt.sent_at:
            values["sent_at"] = receipt.sent_at
        self._write_back(item, values)

    def mark_failed(self, item: OutgoingItem, failure: Failure) -> None:
        reason = failure.reason
        if failure.retry_command:
            reason = f"{reason} (after {failure.attempts} attempt(s); to retry: " \
                     f"{failure.retry_command})"
        values = {"state": self.settings.states.failed, "error": reason,
                  "journal_id": failure.journal_id, "attempts": failure.attempts,
                  "updated_at": self._now()}
        if failure.journal_id is None:
            del values["journal_id"]
        self._write_back(item, values)

    def unclaim(self, item: OutgoingItem) -> None:
        self._write_back(item, {"state": self.settings.states.new[0], "claimed_by": None,
                                "claimed_at": None, "updated_at": self._now()})
        with self._lock:
            self._handed_out.discard(item.source_ref)

    def _receipt_values(self, receipt: Receipt) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if receipt.recipients:
            values["receipt"] = receipt.recipients
            latest = max(receipt.recipients.values(),
                         key=lambda entry: str(entry.get("at") or ""))
            if latest.get("status"):
                values["recipient_status"] = str(latest["status"])
        return values

    def _write_back(self, item: OutgoingItem, values: Mapping[str, Any]) -> None:
        mapping = self._mapping_for(item)
        claims = mapping.claims
        row_id = self._row_id(item.source_ref)
        update = self._claims_update(mapping, values)
        if not update:
            return
        target = typed_table(self._claims_name(mapping), {claims.id_column: row_id, **update})
        try:
            with self.engine.begin() as connection:
                connection.execute(sa.update(target)
                                   .where(target.c[claims.id_column] == row_id).values(update))
        except sa.exc.DBAPIError as error:
            raise DmsDatabaseError(f"writing the result of {item.source_ref} back to the DMS "
                                   f"failed: {_short(error)}",
                                   hint="the write-back is retried; the journal keeps the state"
                                   ) from error
        log.info("dms_db.write_back", ref=item.source_ref, state=values.get("state"))

    # -- incoming -------------------------------------------------------------------------------

    def deliver_document(self, document: IncomingDocument) -> str:
        record = self._with_unit(incoming.document_record(document, quarantined=False,
                                                           quarantine_reason=None))
        return self._insert_document(document, record)

    def quarantine_document(self, document: IncomingDocument, reason: str) -> str:
        record = self._with_unit(incoming.document_record(document, quarantined=True,
                                                           quarantine_reason=reason))
        return self._insert_document(document, record)

    def release_quarantined(self, location: str) -> str:
        """``quarantine release``: the row becomes an ordinary received document."""
        mapping = self.settings.incoming.documents
        key = location.rpartition("/")[2]
        values = {column: value for field, column in mapping.columns.items()
                  for value in [{"quarantined": False, "quarantine_reason": None}.get(field, ...)]
                  if value is not ...}
        target = typed_table(mapping.table, {mapping.key_column: key, **values})
        with self.engine.begin() as connection:
            connection.execute(sa.update(target).where(target.c[mapping.key_column] == key)
                               .values(values))
        return location

    def _insert_document(self, document: IncomingDocument, record: dict[str, Any]) -> str:
        mapping = self.settings.incoming.documents
        key_value = record[mapping.key]
        location = f"database:{mapping.table}/{key_value}"
        if self._exists(mapping.table, mapping.key_column, key_value):
            return location
        row = incoming.document_row(record, mapping.columns, Path(document.package_path))
        attachments_mapping = self.settings.incoming.attachments
        package_path = Path(document.package_path)
        with tempfile.TemporaryDirectory(prefix=".unzip-", dir=package_path.parent) as scratch:
            parts = (self._read_parts(package_path, Path(scratch))
                     if attachments_mapping is not None else [])

            def insert_all(connection: Connection) -> bool:
                if self._exists(mapping.table, mapping.key_column, key_value, connection):
                    return False  # delivered meanwhile by another connector
                written = self._insert(connection, mapping.table, row, mapping.generated)
                if attachments_mapping is not None:
                    parent = (written[attachments_mapping.references]
                              if attachments_mapping.references else key_value)
                    for part in parts:
                        child = {attachments_mapping.foreign_key: parent}
                        for field, column in attachments_mapping.columns.items():
                            child[column] = part.field(field)
                        self._insert(connection, attachments_mapping.table, child,
                                     attachments_mapping.generated)
                return True

            try:
                if not self._transaction(insert_all):
                    return location
            except sa.exc.IntegrityError:
                if self._exists(mapping.table, mapping.key_column, key_value):
                    return location  # delivered concurrently: the unique key did its job
                raise
            except sa.exc.DBAPIError as error:
                raise DmsDatabaseError(f"inserting received document {document.journal_id} into "
                                       f"{mapping.table} failed: {_short(error)}",
                                       hint="delivery is retried; nothing was acknowledged twice"
                                       ) from error
        log.info("dms_db.delivered", journal_id=document.journal_id, table=mapping.table,
                 attachments=len(parts), quarantined=record["quarantined"])
        return location

    def deliver_status(self, status: IncomingStatus) -> None:
        """A refused status is kept in the journal only: a DMS table has no column that would
        tell it apart from a real answer."""
        mapping = self.settings.incoming.statuses
        if mapping is not None and not status.refused:
            self._insert_once(mapping, self._with_unit(incoming.status_record(status)))

    def record_event(self, event: LifecycleEvent) -> None:
        mapping = self.settings.incoming.events
        if mapping is not None:
            self._insert_once(mapping, self._with_unit(incoming.event_record(event)))

    def _insert_once(self, mapping: IncomingTableMapping, record: Mapping[str, Any]) -> None:
        table, key_column, key_value = mapping.table, mapping.key_column, record[mapping.key]
        row = {column: incoming.lookup(record, field) for field, column in mapping.columns.items()}

        def insert(connection: Connection) -> bool:
            if self._exists(table, key_column, key_value, connection):
                return False
            self._insert(connection, table, row, mapping.generated)
            return True

        try:
            self._transaction(insert)
        except sa.exc.IntegrityError:
            if not self._exists(table, key_column, key_value):
                raise
        except sa.exc.DBAPIError as error:
            raise DmsDatabaseError(f"inserting into {table} failed: {_short(error)}",
                                   hint="retried at the next delivery attempt") from error

    def _transaction(self, work: Callable[[Connection], bool]) -> bool:
        """Run ``work`` in one transaction, again (up to DEADLOCK_RETRIES times) when the
        database chose it as a deadlock victim — as the database asks. Two writers taking the
        next number of an empty table can both hold its gap lock on MariaDB and deadlock."""
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                with self.engine.begin() as connection:
                    return work(connection)
            except sa.exc.DBAPIError as error:
                if attempt == DEADLOCK_RETRIES or not is_deadlock(error):
                    raise
                log.info("dms_db.deadlock_retried", attempt=attempt + 1)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _insert(self, connection: Connection, table: str, row: Mapping[str, Any],
                generated: Mapping[str, GeneratedValue]) -> dict[str, Any]:
        """Insert one row, its generated columns filled in the same transaction; returns the
        values written (a child row may refer to a generated one)."""
        values = {column: to_db_value(value, self._timezone) for column, value in row.items()}
        for column, how in generated.items():
            values[column] = generated_value(connection, table, column, how)
        target = typed_table(table, values)
        connection.execute(sa.insert(target).values(values))
        return values

    def _exists(self, table: str, key_column: str, key_value: Any,
                connection: Connection | None = None) -> bool:
        target = table_ref(table, key_column)
        statement = sa.select(sa.literal(1)).select_from(target).where(
            target.c[key_column] == key_value).limit(1)
        if connection is not None:
            return connection.execute(statement).first() is not None
        with self.engine.connect() as own:
            return own.execute(statement).first() is not None

    # -- helpers --------------------------------------------------------------------------------

    def _source(self, mapping: _Source) -> sa.TableClause | sa.Subquery:
        columns = [mapping.id_column, *_source_columns(mapping)]
        if mapping.query:
            text = sa.text(mapping.query).columns(*(sa.column(name) for name in
                                                    dict.fromkeys(columns)))
            return text.subquery("dms_source")
        assert mapping.table is not None
        return table_ref(mapping.table, *columns)

    def _claims_name(self, mapping: _Source) -> str:
        name = mapping.claims.table or mapping.table
        assert name is not None
        return name

    def _claims_table(self, mapping: _Source) -> sa.TableClause:
        claims = mapping.claims
        columns = [claims.id_column, claims.state]
        columns += [column for column in (claims.claimed_by, claims.claimed_at) if column]
        if claims.table is None and mapping.order_by:
            columns.append(mapping.order_by)
        if claims.table is None and mapping.unit_column:
            columns.append(mapping.unit_column)
        return table_ref(self._claims_name(mapping), *dict.fromkeys(columns))

    def _with_unit(self, record: dict[str, Any]) -> dict[str, Any]:
        """A received row carries its unit's value (the ``unit`` field of the incoming mapping)."""
        if self.unit is not None:
            record["unit"] = self.unit
        return record

    def _of_unit(self, mapping: _Source, table: Any) -> sa.ColumnElement[bool]:
        """This unit's rows only (every row when the mapping names no unit column)."""
        if self.unit is None or not mapping.unit_column:
            return sa.true()
        return table.c[mapping.unit_column] == self.unit

    def _refuse_unknown_units(self) -> None:
        """Ready rows whose unit is no configured unit's: claimed and marked failed with the
        reason, so the DMS shows why they are not sent (instead of waiting forever)."""
        assert self.known_units is not None
        states = self.settings.states
        for mapping, kind in ((self.settings.outgoing, OutgoingKind.DOCUMENT),
                              (self.settings.statuses, OutgoingKind.STATUS)):
            if mapping is None or not mapping.unit_column:
                continue
            claims = mapping.claims
            known = sorted(self.known_units)
            if claims.table is None:
                table = self._claims_table(mapping)
                unit = table.c[mapping.unit_column]
                unknown = sa.or_(unit.is_(None), unit.not_in(known))
                ready = ready_condition(table.c[claims.state], states.new, states.null_is_new)
                statement = sa.select(table.c[claims.id_column], unit).where(ready, unknown)
            else:
                source = self._source(mapping)
                source_unit = source.c[mapping.unit_column]
                unknown = sa.or_(source_unit.is_(None), source_unit.not_in(known))
                claim_table = self._claims_table(mapping)
                joined = source.outerjoin(
                    claim_table, claim_table.c[claims.id_column] == source.c[mapping.id_column])
                ready = ready_condition(claim_table.c[claims.state], states.new,
                                        states.null_is_new, row_exists=claim_table.c[claims.id_column])
                statement = (sa.select(source.c[mapping.id_column], source_unit).select_from(joined)
                             .where(ready, unknown))
            with self.engine.connect() as connection:
                rows = [(plain(row[0]), row[1]) for row in connection.execute(statement.limit(100))]
            for row_id, value in rows:
                if not self._claim_one(mapping, row_id):
                    continue
                reason = (f"{mapping.unit_column} = {value!r} is no unit of this connector "
                          f"(configured: {', '.join(sorted(self.known_units))}); not sent — add "
                          "the unit (agencies_dir) and reload, or correct the row")
                item = OutgoingItem(source=self.name, source_ref=self._ref(mapping, row_id),
                                    kind=kind, display_name=str(row_id))
                self._row_ids[item.source_ref] = row_id
                self._write_back(item, {"state": states.failed, "error": reason,
                                        "updated_at": self._now()})
                log.error("dms_db.unknown_unit", ref=item.source_ref, column=mapping.unit_column,
                          value=value, fix="configure the unit, or correct the row")

    def _order_column(self, mapping: _Source, table: Any) -> Any:
        name = mapping.order_by or mapping.id_column
        return table.c[name] if name in table.c else table.c[mapping.claims.id_column]

    def _mapping_for(self, item: OutgoingItem) -> _Source:
        mapping = (self.settings.statuses if item.kind is OutgoingKind.STATUS
                   else self.settings.outgoing)
        if mapping is None:
            raise ConnectorError(f"item {item.source_ref} is a {item.kind.value}, but the "
                                 "database mapping has no such section",
                                 hint="restore the database.outgoing/statuses mapping")
        return mapping

    def _ref(self, mapping: _Source, row_id: Any) -> str:
        prefix = STATUS_REF_PREFIX if isinstance(mapping, OutgoingStatusesMapping) else ""
        return f"{prefix}{row_id}"

    def _remember(self, mapping: _Source, row_id: Any) -> None:
        ref = self._ref(mapping, row_id)
        self._handed_out.add(ref)
        self._row_ids[ref] = row_id

    def _row_id(self, source_ref: str) -> Any:
        """The typed row id behind a source_ref (also after a restart, from the ref alone)."""
        if source_ref in self._row_ids:
            return self._row_ids[source_ref]
        bare = source_ref.removeprefix(STATUS_REF_PREFIX)
        return int(bare) if bare.lstrip("-").isdigit() else bare

    def _now(self) -> dt.datetime:
        return dt.datetime.now(self._timezone).replace(tzinfo=None, microsecond=0)


def _refuse_sequences_without_support(settings: DmsDatabaseSettings, dialect: str) -> None:
    """At start, not at the first received document: SQLite has no sequences."""
    if dialect != "sqlite":
        return
    tables = settings.incoming
    for name, table in (("documents", tables.documents), ("attachments", tables.attachments),
                        ("statuses", tables.statuses), ("events", tables.events)):
        for column, how in (table.generated if table is not None else {}).items():
            if how.sequence:
                raise ConfigError(
                    f"database.incoming.{name}.generated.{column}.sequence: SQLite has no "
                    "sequences", hint="use next_number: true, or an expression")


def _has_unit_column(settings: DmsDatabaseSettings) -> bool:
    return any(mapping is not None and mapping.unit_column
               for mapping in (settings.outgoing, settings.statuses))


def _source_columns(mapping: _Source) -> list[str]:
    """Every source column the adapter reads (besides the id)."""
    columns = list(mapping.columns.values())
    if isinstance(mapping, OutgoingDocumentsMapping):
        if mapping.recipients.column:
            columns.append(mapping.recipients.column)
        if mapping.display_name_column:
            columns.append(mapping.display_name_column)
        if mapping.attachments is not None and not mapping.attachments.table:
            columns += _attachment_columns(mapping.attachments)
    if mapping.order_by:
        columns.append(mapping.order_by)
    if mapping.unit_column:
        columns.append(mapping.unit_column)
    return list(dict.fromkeys(columns))


def _attachment_columns(mapping: AttachmentsMapping) -> list[str]:
    return [column for column in (mapping.name_column, mapping.blob_column, mapping.path_column,
                                  mapping.content_type_column, mapping.description_column)
            if column]


def _short(error: Exception) -> str:
    """The driver's first line, without the SQL statement and parameters SQLAlchemy appends."""
    original = getattr(error, "orig", None) or error
    return str(original).strip().splitlines()[0][:300]


def _sendable_path(path: Path, mapping: AttachmentsMapping) -> Path:
    """The real file a ``path_column`` value names, checked before anything is read.

    Rows are written by the DMS, not by us: a path (absolute, with ``..`` or through a symlink)
    must not make the connector read its own private key or secret and send it to the axis.
    With ``restrict_to_base_dir`` (the default) the resolved file must lie under ``base_dir``;
    it must be a regular file that is not a hard link to a file of the connector's user. The
    resolved path is returned, so the file is later opened without following any link.
    """
    resolved = path.resolve()
    if mapping.restrict_to_base_dir:
        if mapping.base_dir is None:
            raise RowProblem(f"attachment file {str(path)!r}: no attachments.base_dir is set, "
                             "and files are only read under it", column=mapping.path_column,
                             field="attachments")
        base = Path(mapping.base_dir).expanduser().resolve()
        if not resolved.is_relative_to(base):
            raise RowProblem(f"attachment file {str(path)!r} is outside attachments.base_dir "
                             f"{str(base)!r} (links resolved)", column=mapping.path_column,
                             field="attachments")
    problem = fsutil.sendable_file_problem(os.lstat(resolved))
    if problem:
        raise RowProblem(f"attachment file {str(path)!r} {problem}", column=mapping.path_column,
                         field="attachments")
    return resolved
