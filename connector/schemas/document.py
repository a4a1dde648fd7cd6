"""The document metadata file: what a DMS (or a person) writes to ask for a document to be sent.

One model serves ``edxml-connector pack METADATA.yaml``, the outbox bundle's ``document.yaml`` and
the DMS-database column mapping, and ``edxml-connector schema document`` prints its JSON Schema so
that a DMS vendor can validate what it writes. Field names mirror the edXML elements in snake case;
dates are ISO 8601 (``2026-11-23``), never the wire's ``yyyy/MM/dd``.

Besides a new document, the same file asks for a lifecycle action on an earlier one:
``business.type`` revoke/update (``document_id`` = the original's DocumentId), replace
(``business.replaces`` names the replaced documents), or ``take_back`` (a status 13 to each
receiver of an earlier document instead of a document package).
"""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connector.errors import InputError

ORGAN_ID_PATTERN = r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$"

OrganId = Annotated[str, Field(pattern=ORGAN_ID_PATTERN, examples=["000.00.00.G22"],
                               description="Agency identifier (mã định danh), QCVN 102:2016 layout")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Organization(_Strict):
    organ_id: OrganId
    organization_in_charge: str | None = None
    organ_name: str | None = None
    organ_add: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


class Code(_Strict):
    number: str = Field(description="Số văn bản, e.g. 7816")
    notation: str = Field(description="Ký hiệu, e.g. VPCP-TTĐT")


class Promulgation(_Strict):
    place: str | None = None
    date: dt.date = Field(description="Ngày ban hành (ISO date)")


class DocumentTypeInfo(_Strict):
    type: str = "1"
    type_detail: str = "0"
    type_name: str | None = Field(default=None, examples=["Công văn"])


class Signer(_Strict):
    competence: str | None = None
    position: str | None = None
    full_name: str | None = None


class OtherInfo(_Strict):
    priority: int = Field(default=0, ge=0, le=3)
    sphere_of_promulgation: str | None = None
    typer_notation: str | None = None
    promulgation_amount: int | None = Field(default=None, ge=0)
    page_amount: int | None = Field(default=None, ge=0)
    direction: bool = False
    appendixes: list[str] = Field(default_factory=list)


class ResponseFor(_Strict):
    organ_id: str
    code: str | None = None
    promulgation_date: dt.date | None = None
    document_id: str


class Staff(_Strict):
    department: str | None = None
    staff: str | None = None
    email: str | None = None
    mobile: str | None = None


class BusinessKind(str, enum.Enum):
    new = "new"
    revoke = "revoke"
    update = "update"
    # The file's word is "replace"; as a member name it shadows str.replace, which nothing
    # calls on a BusinessKind.
    replace = "replace"  # type: ignore[assignment]

    @property
    def code(self) -> int:
        return ["new", "revoke", "update", "replace"].index(self.value)


class UpdateReceiver(_Strict):
    organ_id: str
    receiver_type: int = Field(default=0, ge=0)


class UpdateInfo(_Strict):
    """For ``business.type: update``: what changed and which receivers are concerned."""

    document_info: int = Field(default=1, ge=0, le=1, description="1: the content changed")
    document_receiver: int = Field(default=0, ge=0, le=1, description="1: the receiver list changed")
    receivers: list[UpdateReceiver] = Field(default_factory=list)


class Replaced(_Strict):
    """For ``business.type: replace``: one replaced document and who had received it."""

    document_id: str
    organ_ids: list[str] = Field(min_length=1)


class Business(_Strict):
    type: BusinessKind = BusinessKind.new
    reason: str | None = Field(default=None, description="BussinessDocReason; a default per type")
    paper: int = Field(default=0, ge=0, le=1, description="1: a paper copy follows")
    staff: Staff | None = None
    update: UpdateInfo | None = None
    replaces: list[Replaced] = Field(default_factory=list)


class AttachmentEntry(_Strict):
    """Describes one attachment file. The file itself is in the bundle folder, or given on the
    ``pack`` command line, under the name ``file``."""

    file: str
    name: str | None = Field(default=None, description="name shown to the receiver (default: file)")
    description: str | None = None
    content_type: str | None = Field(default=None, description="default: guessed from the name")


class TakeBack(_Strict):
    """Ask the receivers of an earlier document to give it back (status 13 to each)."""

    document_id: str
    code: str | None = Field(default=None, description="CodeNumber/CodeNotation of the original")
    promulgation_date: dt.date | None = None
    to: list[OrganId] = Field(min_length=1, description="the receivers of the original")
    reason: str | None = None


class DocumentMetadata(_Strict):
    """``document.yaml`` / ``pack`` metadata. ``from`` defaults to the agency in the config."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    document_id: str | None = Field(
        default=None,
        description="DocumentId; generated as '<OrganId>,<yyyy/MM/dd>,<number>/<notation>' when "
                    "absent. Required for revoke and update: the original's DocumentId.")
    from_: Organization | None = Field(default=None, alias="from")
    to: list[Organization] = Field(default_factory=list)
    code: Code | None = None
    promulgation: Promulgation | None = None
    document_type: DocumentTypeInfo = Field(default_factory=DocumentTypeInfo)
    subject: str | None = Field(default=None, max_length=500)
    content: str | None = Field(default=None, max_length=500)
    signer: Signer | None = None
    due_date: dt.date | None = None
    other_info: OtherInfo = Field(default_factory=OtherInfo)
    response_for: list[ResponseFor] = Field(default_factory=list)
    steering_type: int = Field(default=0, ge=0)
    to_places: list[Annotated[str, Field(max_length=150)]] = Field(default_factory=list)
    business: Business = Field(default_factory=Business)
    attachments: list[AttachmentEntry] = Field(default_factory=list)
    take_back: TakeBack | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DocumentMetadata:
        if self.take_back is not None:
            return self
        if not self.to:
            raise ValueError("'to' needs at least one recipient (or use 'take_back')")
        seen: set[str] = set()
        for organization in self.to:
            if organization.organ_id in seen:
                raise ValueError(f"'to' names {organization.organ_id} twice")
            seen.add(organization.organ_id)
        if not self.subject:
            raise ValueError("'subject' is required")
        if self.code is None:
            raise ValueError("'code' (number and notation) is required")
        kind = self.business.type
        if kind in (BusinessKind.revoke, BusinessKind.update) and not self.document_id:
            raise ValueError(f"business.type {kind.value} needs 'document_id': the original's DocumentId")
        if kind is BusinessKind.replace and not self.business.replaces:
            raise ValueError("business.type replace needs 'business.replaces'")
        return self


def load_document_metadata(path: str | Path) -> DocumentMetadata:
    """Read and validate a metadata file (YAML or JSON), naming the file and field on error."""
    path = Path(path)
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(error, 'problem', error)}", file=str(path),
                         line=(mark.line + 1) if mark else None,
                         hint="fix the syntax; `edxml-connector schema document` shows the format") from error
    except UnicodeDecodeError as error:
        raise InputError("not UTF-8 text", file=str(path), hint="save the file as UTF-8") from error
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of fields at the top level", file=str(path),
                         hint="see `edxml-connector schema document` and config/document.example.yaml")
    return parse_document_metadata(raw, file=str(path))


def parse_document_metadata(raw: dict[str, Any], *, file: str | None = None) -> DocumentMetadata:
    try:
        return DocumentMetadata.model_validate(raw)
    except ValidationError as error:
        raise InputError(describe_validation_error(error), file=file,
                         hint="see `edxml-connector schema document` for the expected format") from error


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: ``field.path: message``, joined with ``; ``."""
    parts = []
    for problem in error.errors():
        location = ".".join(str(item) for item in problem["loc"]) or "(top level)"
        parts.append(f"{location}: {problem['msg']}")
    return "; ".join(parts)
