"""The status drop file: how a DMS asks the connector to send a status about a document.

The DMS writes ``outbox/statuses/NAME.yaml`` (or ``.json``) — under a temporary name first, then
renamed — for example when a clerk has accepted (03) or finished handling (06) a received
document. ``edxml-connector schema status`` prints the JSON Schema of this model so that a DMS
vendor can validate what it writes. A file that does not validate is not sent: it is moved to
``failed/statuses/`` with an ``.error.txt`` that names the file and the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connector.edxml.model import StatusCode
from connector.schemas.document import OrganId, Staff

_VALID_CODES = ", ".join(f"{code.value} ({code.label_en})" for code in StatusCode)


class StatusDrop(BaseModel):
    """``outbox/statuses/NAME.yaml``: one status to send about one document."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, title="StatusDrop")

    code: str = Field(
        description="Status code, two digits: " + _VALID_CODES + ". "
                    "A bare number (3) is read as '03'.",
        examples=["03"])
    document_id: str = Field(
        min_length=1, description="DocumentId of the document the status is about, exactly as "
                                  "received (inbox metadata.json 'document_id').",
        examples=["000.00.00.G22,2026/11/23,7816/VPCP-TTĐT"])
    to: list[OrganId] = Field(
        default_factory=list,
        description="Agencies to tell (one package each). Empty: the sender of the received "
                    "document with that DocumentId.")
    description: str | None = Field(default=None, max_length=500,
                                    description="Free text shown to the receiver, e.g. a reason for 02")
    staff: Staff | None = Field(default=None, description="Who handled it (department, staff, email, mobile)")
    document_code: str | None = Field(
        default=None, description="CodeNumber/CodeNotation of the document the status is about, "
                                  "e.g. '7816/VPCP-TTĐT' (filled from the journal when known)")
    promulgation_date: dt.date | None = Field(
        default=None, description="Promulgation date of that document (ISO date)")

    @field_validator("code", mode="before")
    @classmethod
    def _two_digits(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            value = f"{value:02d}"
        if isinstance(value, str):
            value = value.strip()
            if value.isdigit() and len(value) == 1:
                value = "0" + value
            if value not in {code.value for code in StatusCode}:
                raise ValueError(f"unknown status code {value!r}; use one of {_VALID_CODES}")
        return value

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value
