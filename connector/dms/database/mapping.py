"""The ``database:`` section of the configuration: how the connector reads and writes a DMS database.

A DMS vendor rarely lets a third party choose its tables, so everything here is a *mapping*: which
table, view or SELECT yields outgoing documents, which column holds which ``document.yaml`` field,
where the claim and the result of each send are written back, and into which tables received
documents, statuses and lifecycle events are inserted. The defaults match the sample schema in
``tests/dms_db/sample_dms_schema.py`` so that a vendor can start from a working example and
change only what differs.

Names of tables and columns are always quoted by SQLAlchemy, never pasted into SQL text; the one
exception is ``outgoing.query``/``statuses.query``, a SELECT the operator writes on purpose.

Direction of the ``columns`` maps: the KEY is the connector's field (a ``document.yaml`` path such
as ``code.number``, a status field, or an incoming field such as ``signature.state``) and the VALUE
is the DMS column name. A ``columns`` map given in YAML replaces the default map as a whole.
"""

from __future__ import annotations

import difflib
import os
import typing
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connector.errors import ConfigError
from connector.schemas.document import DocumentMetadata


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --------------------------------------------------------------------------------------------
# Claims and state write-back


class StateValues(_Strict):
    """The values the connector writes into the claims table's state column (and reads back).

    A row is *ready* when its state is one of ``new`` (or NULL when ``null_is_new``). The DMS
    inserts rows as ``new`` (or leaves the state NULL); the connector moves them on.
    """

    new: list[str] = Field(default_factory=lambda: ["new"], min_length=1)
    null_is_new: bool = Field(default=True, description="a NULL state counts as ready")
    claimed: str = "claimed"
    sent: str = "sent"
    failed: str = "failed"

    @model_validator(mode="after")
    def _distinct(self) -> StateValues:
        others = {"claimed": self.claimed, "sent": self.sent, "failed": self.failed}
        if len(set(others.values())) != 3:
            raise ValueError("states: claimed, sent and failed must be three different values")
        for key, value in others.items():
            if value in self.new:
                raise ValueError(f"states.{key}: {value!r} is also listed in states.new; "
                                 "a ready row would never leave the queue")
        return self


class ClaimsMapping(_Strict):
    """Where claims and results are written. ``table: null`` means the source table itself
    (the usual case for a plain table; a view or a custom query needs a separate table keyed by
    the source row id). Every column except ``id_column`` and ``state`` may be set to null when
    the DMS has no place for it."""

    table: str | None = Field(default=None, description="null: the source table itself")
    id_column: str = Field(default="id", description="column holding the source row id")
    state: str = "exchange_state"
    claimed_by: str | None = Field(default="exchange_claimed_by",
                                   description="which connector holds the claim (crash recovery)")
    claimed_at: str | None = "exchange_claimed_at"
    updated_at: str | None = "exchange_updated_at"
    journal_id: str | None = "exchange_journal_id"
    document_id: str | None = "exchange_document_id"
    axis_doc_id: str | None = "exchange_axis_doc_id"
    sent_at: str | None = "exchange_sent_at"
    error: str | None = Field(default="exchange_error", description="why the item failed")
    attempts: str | None = None
    recipient_status: str | None = Field(default="exchange_status",
                                         description="latest recipient status code, e.g. '03'")
    receipt: str | None = Field(default="exchange_receipt",
                                description="JSON: organ_id -> {status, label, description, at}")


# --------------------------------------------------------------------------------------------
# Outgoing documents


class RecipientsMapping(_Strict):
    """Recipients: one column holding a list (JSON array of OrganIds or of objects with
    ``organ_id``/``organ_name``..., or delimiter-separated OrganIds) or a child table."""

    column: str | None = Field(default=None, description="default 'recipients' when no table")
    format: Literal["json", "delimited"] = "json"
    delimiter: str = ";"
    table: str | None = None
    foreign_key: str = Field(default="outgoing_id", description="child column -> source row id")
    columns: dict[str, str] = Field(
        default_factory=lambda: {"organ_id": "organ_id", "organ_name": "organ_name"},
        description="Organization field -> child column (organ_id is required)")
    order_by: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> RecipientsMapping:
        if self.column and self.table:
            raise ValueError("recipients: set either 'column' (a list in one column) or 'table' "
                             "(a child table), not both")
        if not self.column and not self.table:
            self.column = "recipients"
        if self.table:
            _check_fields(self.columns, _ORGANIZATION_FIELDS, "recipients.columns")
            if "organ_id" not in self.columns:
                raise ValueError("recipients.columns: 'organ_id' must be mapped to a column")
        return self


class AttachmentsMapping(_Strict):
    """Attachments: a child table (one row per file) or, with ``table: null``, one file held
    on the outgoing row itself. The content is a BLOB (``blob_column``) or a file path
    (``path_column``, relative paths resolved against ``base_dir``); when both are mapped the
    BLOB wins where it is not NULL."""

    table: str | None = Field(default="dms_outgoing_attachments",
                              description="null: the columns are on the outgoing row")
    foreign_key: str = "outgoing_id"
    name_column: str = "file_name"
    blob_column: str | None = "content"
    path_column: str | None = "file_path"
    content_type_column: str | None = "content_type"
    description_column: str | None = "description"
    order_by: str | None = "position"
    base_dir: Path | None = Field(default=None, description="for relative paths in path_column")
    restrict_to_base_dir: bool = Field(
        default=True, description="a path_column file must lie under base_dir once links are "
        "resolved (so a row cannot make the connector send its own key or /etc files); "
        "false: any file the connector's user can read")

    @model_validator(mode="after")
    def _has_content(self) -> AttachmentsMapping:
        if not self.blob_column and not self.path_column:
            raise ValueError("attachments: map 'blob_column' or 'path_column' (or both)")
        return self


def _default_document_columns() -> dict[str, str]:
    return {
        "document_id": "document_id",
        "subject": "subject",
        "content": "content",
        "code.number": "code_number",
        "code.notation": "code_notation",
        "promulgation.place": "promulgation_place",
        "promulgation.date": "promulgation_date",
        "document_type.type": "doc_type",
        "document_type.type_detail": "doc_type_detail",
        "document_type.type_name": "doc_type_name",
        "signer.competence": "signer_competence",
        "signer.position": "signer_position",
        "signer.full_name": "signer_name",
        "due_date": "due_date",
        "other_info.priority": "priority",
        "steering_type": "steering_type",
        "to_places": "to_places",
        "response_for": "response_for",
        "business.type": "business_type",
        "business.reason": "business_reason",
        "business.replaces": "business_replaces",
        "business.update": "business_update",
        "take_back.document_id": "take_back_document_id",
        "take_back.code": "take_back_code",
        "take_back.reason": "take_back_reason",
    }


class _Source(_Strict):
    """A table/view name or a SELECT; ``id_column`` names the stable row id in it."""

    table: str | None = None
    query: str | None = Field(default=None, description="a SELECT; needs a separate claims.table")
    id_column: str = "id"
    order_by: str | None = Field(default=None, description="default: id_column")
    claims: ClaimsMapping = Field(default_factory=ClaimsMapping)
    columns: dict[str, str] = Field(default_factory=dict)  # each source names its own
    unit_column: str | None = Field(
        default=None, description="a DMS shared by a hub's units: the column saying which unit "
        "a row belongs to (its values: each unit's database.unit_value, default its OrganId)")

    _default_table: typing.ClassVar[str] = ""

    @model_validator(mode="after")
    def _one_source(self) -> _Source:
        if self.table and self.query:
            raise ValueError("set either 'table' (a table or view) or 'query' (a SELECT), not both")
        if not self.table and not self.query:
            self.table = self._default_table
        if self.claims.table is None:
            if "id_column" not in self.claims.model_fields_set:
                self.claims.id_column = self.id_column
            elif self.claims.id_column != self.id_column:
                raise ValueError("claims.id_column: with no claims.table the claims live in the "
                                 f"source table, whose id column is {self.id_column!r}")
        if self.query:
            if not self.query.lstrip().lower().startswith(("select", "with")):
                raise ValueError("query: must be a SELECT statement")
            if not self.claims.table:
                raise ValueError("claims.table: a custom query cannot be updated; name the table "
                                 "where claims and results are written")
        return self


class OutgoingDocumentsMapping(_Source):
    """Where outgoing documents come from and how their columns map to ``document.yaml``."""

    _default_table: typing.ClassVar[str] = "dms_outgoing_documents"

    columns: dict[str, str] = Field(
        default_factory=_default_document_columns,
        description="document.yaml field path (e.g. code.number) -> column")
    display_name_column: str | None = Field(default=None, description="what the DMS calls it")
    recipients: RecipientsMapping = Field(default_factory=RecipientsMapping)
    attachments: AttachmentsMapping | None = Field(default_factory=AttachmentsMapping)

    @field_validator("columns")
    @classmethod
    def _known_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for path in value:
            problem = document_path_problem(path)
            if problem:
                raise ValueError(f"columns: {problem}")
        return value


def _default_status_columns() -> dict[str, str]:
    return {
        "code": "status_code",
        "document_id": "document_id",
        "to": "to_organ_ids",
        "description": "description",
        "staff.department": "staff_department",
        "staff.staff": "staff_name",
        "staff.email": "staff_email",
        "staff.mobile": "staff_mobile",
        "code_text": "original_code",
        "promulgation_date": "original_promulgation_date",
    }


STATUS_FIELDS = frozenset({"code", "document_id", "to", "description", "code_text",
                           "promulgation_date", "staff.department", "staff.staff", "staff.email",
                           "staff.mobile"})


class OutgoingStatusesMapping(_Source):
    """Statuses the DMS emits (02–06, 15, 16; 13 = take-back request): one row each."""

    _default_table: typing.ClassVar[str] = "dms_outgoing_statuses"

    columns: dict[str, str] = Field(default_factory=_default_status_columns,
                                    description="status field -> column")
    to_format: Literal["json", "delimited"] = "delimited"
    delimiter: str = ";"

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        _check_fields(value, STATUS_FIELDS, "columns")
        for required in ("code", "document_id"):
            if required not in value:
                raise ValueError(f"columns: '{required}' must be mapped to a column")
        return value


# --------------------------------------------------------------------------------------------
# Incoming


INCOMING_DOCUMENT_FIELDS_HELP = (
    "journal_id, axis_doc_id, received_at, package_path, package_bytes, package_sha256, "
    "signature.state, signature.reason, signature.signer, warnings, lifecycle, summary, "
    "quarantined, quarantine_reason, delivered_at, or any path of the `inspect --json` summary "
    "(document_id, from.organ_id, from.organ_name, subject, code.number, code.notation, "
    "promulgation.date, business.type, ...)")


class GeneratedValue(_Strict):
    """How the connector fills a column of a row it inserts that the DMS gives no default —
    typically the register's INTEGER key. Exactly one of:

    - ``sequence: NAME`` — the next value of a database sequence (PostgreSQL, MariaDB ≥ 10.3);
    - ``expression: SQL`` — an SQL expression the operator writes, evaluated as
      ``SELECT <expression>`` in the insert's own transaction (e.g. ``nextval('so_den_seq')``);
    - ``next_number: true`` — one more than the largest value in the column (1 for an empty
      table), taken under a lock on the table for the insert's transaction, so that two writers
      never take the same number (PostgreSQL: ``LOCK TABLE … SHARE ROW EXCLUSIVE``; MariaDB /
      MySQL: the last row read ``FOR UPDATE``; SQLite: the database's write lock)."""

    sequence: str | None = Field(default=None, min_length=1)
    expression: str | None = Field(default=None, min_length=1)
    next_number: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> GeneratedValue:
        given = [name for name, value in (("sequence", self.sequence),
                                          ("expression", self.expression),
                                          ("next_number", self.next_number)) if value]
        if len(given) != 1:
            raise ValueError("give exactly one of sequence, expression, next_number: true"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self


def _check_generated(generated: dict[str, GeneratedValue], columns: typing.Iterable[str]) -> None:
    taken = set(columns) & set(generated)
    if taken:
        raise ValueError(f"generated: column(s) {sorted(taken)} are also filled from `columns`; "
                         "a column is either mapped or generated")


class IncomingTableMapping(_Strict):
    """One table the connector inserts into. ``key`` is the field whose column carries a UNIQUE
    constraint: a second delivery of the same item then inserts nothing. ``generated`` fills
    columns the DMS gives no default (by column name, see :class:`GeneratedValue`)."""

    table: str
    key: str = "journal_id"
    columns: dict[str, str]
    generated: dict[str, GeneratedValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _key_mapped(self) -> IncomingTableMapping:
        if self.key not in self.columns:
            raise ValueError(f"columns: the key field {self.key!r} must be mapped to a column "
                             "(it needs a UNIQUE constraint)")
        _check_generated(self.generated, self.columns.values())
        return self

    @property
    def key_column(self) -> str:
        return self.columns[self.key]


def _incoming_documents() -> IncomingTableMapping:
    return IncomingTableMapping(table="dms_incoming_documents", columns={
        "journal_id": "journal_id",
        "axis_doc_id": "axis_doc_id",
        "received_at": "received_at",
        "document_id": "document_id",
        "from.organ_id": "from_organ_id",
        "from.organ_name": "from_organ_name",
        "subject": "subject",
        "code.number": "code_number",
        "code.notation": "code_notation",
        "promulgation.date": "promulgation_date",
        "business.type": "business_type",
        "signature.state": "signature_state",
        "signature.reason": "signature_reason",
        "warnings": "warnings",
        "lifecycle": "lifecycle",
        "summary": "summary",
        "package_path": "package_path",
        "package_bytes": "package",
        "quarantined": "quarantined",
        "quarantine_reason": "quarantine_reason",
    })


class IncomingAttachmentsMapping(_Strict):
    """Attachments of a received document, one row each, linked by the document's key value.
    Fields: name, content_type, size, sha256, content (bytes), position, extracted_from."""

    table: str = "dms_incoming_attachments"
    foreign_key: str = Field(default="document_journal_id",
                             description="holds the document's key value (journal_id by default)")
    references: str | None = Field(default=None, min_length=1, description=(
        "the documents-table column whose value the foreign key holds, e.g. its generated "
        "INTEGER id (default: the documents key's column)"))
    columns: dict[str, str] = Field(default_factory=lambda: {
        "position": "position", "name": "file_name", "content_type": "content_type",
        "size": "size", "sha256": "sha256", "content": "content"})
    generated: dict[str, GeneratedValue] = Field(default_factory=dict)

    @field_validator("columns")
    @classmethod
    def _known(cls, value: dict[str, str]) -> dict[str, str]:
        _check_fields(value, frozenset({"position", "name", "content_type", "size", "sha256",
                                        "content", "description", "extracted_from"}), "columns")
        return value

    @model_validator(mode="after")
    def _generated_apart(self) -> IncomingAttachmentsMapping:
        _check_generated(self.generated, [*self.columns.values(), self.foreign_key])
        return self


def _incoming_statuses() -> IncomingTableMapping:
    return IncomingTableMapping(table="dms_incoming_statuses", columns={
        "journal_id": "journal_id", "axis_doc_id": "axis_doc_id", "received_at": "received_at",
        "from_organ_id": "from_organ_id", "document_id": "document_id", "code": "status_code",
        "description": "description", "timestamp": "status_time"})


def _incoming_events() -> IncomingTableMapping:
    return IncomingTableMapping(table="dms_incoming_events", columns={
        "journal_id": "journal_id", "event": "event", "document_id": "document_id",
        "from_organ_id": "from_organ_id", "at": "event_at",
        "original_location": "original_location", "detail": "detail"})


class IncomingMapping(_Strict):
    """Tables for what arrives. ``null`` for a table the DMS does not want (attachments, events).
    Quarantined documents go into the documents table with ``quarantined`` = true."""

    documents: IncomingTableMapping = Field(default_factory=_incoming_documents)
    attachments: IncomingAttachmentsMapping | None = Field(
        default_factory=IncomingAttachmentsMapping)
    statuses: IncomingTableMapping | None = Field(default_factory=_incoming_statuses)
    events: IncomingTableMapping | None = Field(default_factory=_incoming_events)

    @model_validator(mode="after")
    def _references_a_document_column(self) -> IncomingMapping:
        attachments = self.attachments
        if attachments is not None and attachments.references is not None:
            known = {*self.documents.columns.values(), *self.documents.generated}
            if attachments.references not in known:
                raise ValueError(f"attachments.references: {attachments.references!r} is not a "
                                 "column the connector writes in documents (mapped or generated)")
        return self

    @model_validator(mode="after")
    def _status_fields(self) -> IncomingMapping:
        if self.statuses is not None:
            _check_fields(self.statuses.columns, frozenset({
                "journal_id", "axis_doc_id", "received_at", "from_organ_id", "document_id", "code",
                "description", "timestamp", "summary"}), "statuses.columns")
        if self.events is not None:
            _check_fields(self.events.columns, frozenset({
                "journal_id", "event", "document_id", "from_organ_id", "at",
                "original_location", "detail"}), "events.columns")
        return self


# --------------------------------------------------------------------------------------------
# The section


class DmsDatabaseSettings(_Strict):
    """``database:`` — the DMS database as the agency side. Give the SQLAlchemy URL in exactly
    one of ``url`` (fine without a password), ``url_file`` (a file holding the URL, mode 0600),
    ``url_env`` (an environment variable) or ``url_credential`` (a systemd credential name)."""

    url: SecretStr | None = Field(default=None, description="SQLAlchemy URL, e.g. "
                                  "postgresql+psycopg://dms@db/dms, mysql+pymysql://..., sqlite:///...")
    url_file: Path | None = None
    url_env: str | None = None
    url_credential: str | None = None
    batch_size: int = Field(default=50, ge=1, le=10_000, description="rows claimed per poll")
    claim_owner: str | None = Field(
        default=None, description="written to claims.claimed_by; default: the host name. Give "
        "each connector that shares a DMS database its own value")
    claim_method: Literal["auto", "update", "skip_locked"] = Field(
        default="auto", description="auto: SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL and "
        "MariaDB >= 10.6 / MySQL >= 8, else a conditional UPDATE with a row-count check")
    connect_timeout: int = Field(default=10, ge=1, le=300, description="seconds")
    timezone: str = Field(default="Asia/Ho_Chi_Minh", description="timestamps written to the DMS "
                          "are naive local times in this zone (IANA name, e.g. UTC)")
    states: StateValues = Field(default_factory=StateValues)
    unit_value: str | None = Field(
        default=None, min_length=1, description="a hub unit's value in the unit columns "
        "(outgoing/statuses unit_column; the ``unit`` field of the incoming rows); default: "
        "its OrganId")
    outgoing: OutgoingDocumentsMapping | None = Field(default_factory=OutgoingDocumentsMapping)
    statuses: OutgoingStatusesMapping | None = Field(default_factory=OutgoingStatusesMapping)
    incoming: IncomingMapping = Field(default_factory=IncomingMapping)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"timezone: unknown time zone {value!r} (e.g. Asia/Ho_Chi_Minh, "
                             "UTC)") from error
        return value

    @model_validator(mode="after")
    def _one_url(self) -> DmsDatabaseSettings:
        given = [name for name in ("url", "url_file", "url_env", "url_credential")
                 if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("url: give exactly one of url, url_file, url_env, url_credential "
                             f"(got {', '.join(given) or 'none'})")
        return self

    def resolved_url(self) -> str:
        """The URL itself, read from wherever it is kept. Raises ConfigError naming the key."""
        if self.url is not None:
            url = self.url.get_secret_value()
            key = "database.url"
        elif self.url_file is not None:
            key = "database.url_file"
            try:
                url = self.url_file.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ConfigError(f"{key}: cannot read {self.url_file}: {error.strerror}",
                                  hint="create the file with the database URL (mode 0600)") from error
        elif self.url_env is not None:
            key = "database.url_env"
            url = os.environ.get(self.url_env, "").strip()
            if not url:
                raise ConfigError(f"{key}: environment variable {self.url_env} is not set",
                                  hint="set it in the service environment")
        else:
            key = "database.url_credential"
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise ConfigError(f"{key}: $CREDENTIALS_DIRECTORY is not set (not run by systemd?)",
                                  hint="add LoadCredential= to the unit, or use url_file")
            try:
                url = (Path(directory) / str(self.url_credential)).read_text("utf-8").strip()
            except OSError as error:
                raise ConfigError(f"{key}: cannot read credential {self.url_credential}: "
                                  f"{error.strerror}", hint="check LoadCredential= in the unit") from error
        if "://" not in url:
            raise ConfigError(f"{key}: not a SQLAlchemy URL (expected dialect+driver://...)",
                              hint="e.g. postgresql+psycopg://user@host/dbname")
        return url


# --------------------------------------------------------------------------------------------
# Field-path checks (shared with the adapter)

_ORGANIZATION_FIELDS = frozenset({"organ_id", "organization_in_charge", "organ_name", "organ_add",
                                  "email", "telephone", "fax", "website"})


def _check_fields(mapping: dict[str, str], known: frozenset[str], key: str) -> None:
    for name, column in mapping.items():
        if name not in known:
            raise ValueError(f"{key}: unknown field {name!r}{_did_you_mean(name, known)}")
        if not isinstance(column, str) or not column.strip():
            raise ValueError(f"{key}.{name}: needs a column name")


def _did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"


def document_field_annotation(path: str) -> Any:
    """The type annotation of a dotted ``DocumentMetadata`` path (``from`` for ``from_``), or
    raise KeyError. Used to know which columns hold JSON (lists and nested objects)."""

    model: Any = DocumentMetadata
    annotation: Any = None
    for part in path.split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise KeyError(path)
        fields = model.model_fields
        name = "from_" if part == "from" and "from_" in fields else part
        if name not in fields:
            raise KeyError(part)
        annotation = fields[name].annotation
        model = _model_inside(annotation)
    return annotation


def _model_inside(annotation: Any) -> Any:
    """``Foo | None`` -> Foo; anything else unchanged."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, getattr(__import__("types"), "UnionType")):
        non_none = [arg for arg in args if arg is not type(None)]
        if len(non_none) == 1:
            return non_none[0]
    return annotation


def document_path_problem(path: str) -> str | None:
    """None when ``path`` names a DocumentMetadata field, else a sentence with a suggestion."""
    try:
        document_field_annotation(path)
        return None
    except KeyError:
        return f"unknown document field {path!r}{_did_you_mean(path, _all_document_paths())}"


def _all_document_paths() -> list[str]:
    paths: list[str] = []

    def walk(model: Any, prefix: str, depth: int) -> None:
        for name, info in model.model_fields.items():
            public = "from" if name == "from_" else name
            paths.append(prefix + public)
            inner = _model_inside(info.annotation)
            if depth < 2 and isinstance(inner, type) and issubclass(inner, BaseModel):
                walk(inner, prefix + public + ".", depth + 1)

    walk(DocumentMetadata, "", 0)
    return paths
