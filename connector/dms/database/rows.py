"""Turn DMS rows into what the core sends: ``DocumentMetadata`` and ``StatusRequest``.

Pure functions over plain mappings (no database access) so every conversion rule is easy to test
and to read: NULL means "not given" (the model's default applies), JSON text is decoded where the
field is a list or an object, a numeric business type (0–3, as the wire has it) is accepted next to
its name, and a bad value is reported as a ``RowProblem`` naming the field AND the column, because
the DMS operator knows the column, not the connector's field name.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from connector.dms.base import StatusRequest
from connector.dms.database.mapping import (
    OutgoingDocumentsMapping,
    OutgoingStatusesMapping,
    document_field_annotation,
)
from connector.edxml.identifiers import organ_id_problem

BUSINESS_TYPE_NAMES = {"0": "new", "1": "revoke", "2": "update", "3": "replace"}
SENDABLE_STATUS_CODES = frozenset({"01", "02", "03", "04", "05", "06", "13", "15", "16"})


class RowProblem(ValueError):
    """A row value that cannot be used; ``column`` is the DMS column when one is to blame."""

    def __init__(self, message: str, *, column: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.column = column
        self.field = field


def plain(value: Any) -> Any:
    """Driver values -> plain Python: memoryview/bytearray -> bytes, integral Decimal -> int."""
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def text_of(value: Any, column: str) -> str:
    value = plain(value)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RowProblem("not UTF-8 text", column=column) from error
    return str(value)


def decode_json(value: Any, column: str, field: str) -> Any:
    value = plain(value)
    if isinstance(value, list | dict):  # a native JSON column (PostgreSQL json/jsonb)
        return value
    text = text_of(value, column).strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise RowProblem(f"not valid JSON ({error.msg} at character {error.pos})",
                         column=column, field=field) from error


def split_list(value: Any, fmt: str, delimiter: str, column: str, field: str) -> list[Any]:
    """A list held in one column: a JSON array, or text separated by ``delimiter``."""
    value = plain(value)
    if value is None:
        return []
    if fmt == "json" or isinstance(value, list):
        decoded = decode_json(value, column, field)
        if decoded is None:
            return []
        if not isinstance(decoded, list):
            raise RowProblem("expected a JSON array", column=column, field=field)
        return decoded
    return [part.strip() for part in text_of(value, column).split(delimiter) if part.strip()]


def _is_json_field(annotation: Any) -> bool:
    """Lists and nested objects arrive as JSON text in a column."""
    inner = annotation
    args = typing.get_args(annotation)
    if args and type(None) in args:
        non_none = [arg for arg in args if arg is not type(None)]
        inner = non_none[0] if len(non_none) == 1 else annotation
    if typing.get_origin(inner) is list:
        return True
    return isinstance(inner, type) and issubclass(inner, BaseModel)


def _scalar_for(annotation: Any, value: Any) -> Any:
    """Dates from timestamp columns keep only the date; everything else goes to pydantic as is."""
    if isinstance(value, dt.datetime) and dt.date in (annotation, *typing.get_args(annotation)):
        return value.date()
    return value


def _set_path(target: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def metadata_fields(row: Mapping[str, Any], mapping: OutgoingDocumentsMapping) -> dict[str, Any]:
    """The header fields of a row as a raw ``document.yaml`` dict (no recipients/attachments)."""
    raw: dict[str, Any] = {}
    for path, column in mapping.columns.items():
        value = plain(row.get(column))
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        annotation = document_field_annotation(path)
        if _is_json_field(annotation):
            value = decode_json(value, column, path)
            if value is None:
                continue
        elif path == "business.type":
            text = text_of(value, column).strip().lower()
            value = BUSINESS_TYPE_NAMES.get(text, text)
        else:
            if isinstance(value, bytes):
                value = text_of(value, column)
            value = _scalar_for(annotation, value)
        _set_path(raw, path, value)
    return raw


def recipients_from_column(value: Any, mapping: OutgoingDocumentsMapping) -> list[dict[str, Any]]:
    column = mapping.recipients.column or "recipients"
    entries = split_list(value, mapping.recipients.format, mapping.recipients.delimiter,
                         column, "to")
    recipients: list[dict[str, Any]] = []
    for entry in entries:
        if isinstance(entry, str):
            recipients.append({"organ_id": entry.strip()})
        elif isinstance(entry, dict):
            recipients.append(entry)
        else:
            raise RowProblem(f"recipient {entry!r} is neither an OrganId nor an object with "
                             "organ_id", column=column, field="to")
    return recipients


def recipients_from_rows(rows: list[Mapping[str, Any]],
                         mapping: OutgoingDocumentsMapping) -> list[dict[str, Any]]:
    recipients = []
    for row in rows:
        entry = {name: text_of(row.get(column), column)
                 for name, column in mapping.recipients.columns.items()
                 if plain(row.get(column)) is not None}
        recipients.append(entry)
    return recipients


def status_request(row: Mapping[Any, Any], mapping: OutgoingStatusesMapping) -> StatusRequest:
    """A status-table row -> StatusRequest, checked enough that a bad row fails at once."""
    columns = mapping.columns

    def text(field: str) -> str | None:
        column = columns.get(field)
        if column is None:
            return None
        value = plain(row.get(column))
        if value is None:
            return None
        result = text_of(value, column).strip()
        return result or None

    code_column = columns["code"]
    code = text("code")
    if code is None:
        raise RowProblem("the status code is empty", column=code_column, field="code")
    if code.isdigit() and len(code) == 1:
        code = "0" + code
    if code not in SENDABLE_STATUS_CODES:
        raise RowProblem(f"status code {code!r} cannot be sent (use 01–06, 13, 15 or 16)",
                         column=code_column, field="code")
    document_id = text("document_id")
    if document_id is None:
        raise RowProblem("the DocumentId of the document the status is about is empty",
                         column=columns["document_id"], field="document_id")
    to: list[str] = []
    if "to" in columns:
        for entry in split_list(row.get(columns["to"]), mapping.to_format, mapping.delimiter,
                                columns["to"], "to"):
            organ_id = str(entry).strip()
            problem = organ_id_problem(organ_id)
            if problem:
                raise RowProblem(problem, column=columns["to"], field="to")
            to.append(organ_id)
    if code == "13" and not to:
        raise RowProblem("a take-back request (13) needs the receivers of the original",
                         column=columns.get("to"), field="to")
    promulgation_date = None
    if "promulgation_date" in columns:
        value = plain(row.get(columns["promulgation_date"]))
        if isinstance(value, dt.datetime):
            promulgation_date = value.date()
        elif isinstance(value, dt.date):
            promulgation_date = value
        elif value is not None and str(value).strip():
            try:
                promulgation_date = dt.date.fromisoformat(str(value).strip()[:10])
            except ValueError as error:
                raise RowProblem(f"{value!r} is not an ISO date (yyyy-mm-dd)",
                                 column=columns["promulgation_date"],
                                 field="promulgation_date") from error
    staff = {name.split(".", 1)[1]: text(name) for name in columns if name.startswith("staff.")}
    return StatusRequest(code=code, document_id=document_id, to=to,
                         description=text("description"),
                         staff={key: value for key, value in staff.items() if value is not None},
                         code_text=text("code_text"), promulgation_date=promulgation_date)


def column_for_error(error: ValidationError, mapping: OutgoingDocumentsMapping) -> str | None:
    """The DMS column behind the first validation problem, by the longest mapped field prefix."""
    problems = error.errors()
    if not problems:
        return None
    location = [str(part) for part in problems[0]["loc"]]
    if location and location[0] == "to":
        return mapping.recipients.table or mapping.recipients.column
    for length in range(len(location), 0, -1):
        path = ".".join(location[:length])
        if path in mapping.columns:
            return mapping.columns[path]
    return None
