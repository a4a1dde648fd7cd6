"""The inbox ``metadata.json``: everything the DMS needs to register a received document.

One file per received document, beside ``package.edxml`` and the decoded attachments, in
``inbox/YYYY-MM-DD/ITEM/`` (or ``quarantine/YYYY-MM-DD/ITEM/``). It says who sent what, whether the
signature held, which files are the attachments (the sender's names are sanitised, so the map
from original name to file name is here), and — kept up to date — what lifecycle requests
(revoke, update, replace, take-back) later arrived about this document. The connector rewrites it
only atomically. ``edxml-connector schema metadata`` prints its JSON Schema.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

METADATA_FORMAT = 1


class SignatureOutcome(BaseModel):
    model_config = ConfigDict(extra="allow")

    state: str = Field(description="valid, invalid, absent, unverifiable, untrusted or expired")
    reason: str | None = Field(default=None, description="why, when not valid")
    signer: Any = Field(default=None, description="the signing certificate's subject, when known")


class AttachmentFile(BaseModel):
    """One attachment of the package, or one file extracted from a ZIP attachment."""

    model_config = ConfigDict(extra="forbid")

    original_name: str = Field(description="the name the sender gave (AttachmentName, or the "
                                           "entry name inside the ZIP)")
    file: str | None = Field(description="file name in this folder; null if it could not be written")
    content_type: str | None = None
    description: str | None = None
    size: int | None = None
    sha256: str | None = None
    extracted_from: str | None = Field(
        default=None, description="for an extracted file: the file name of the ZIP part it came from")
    problem: str | None = Field(default=None, description="why it was not written or not extracted")


class LifecycleEntry(BaseModel):
    """A later request from the sender about this document. Nothing is deleted: the DMS
    decides, and answers with status 15 (agree) or 16 (refuse)."""

    model_config = ConfigDict(extra="forbid")

    journal_id: str
    event: str = Field(description="revoked, updated, replaced or take_back_requested")
    from_organ_id: str
    at: dt.datetime
    document_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class InboxMetadata(BaseModel):
    """``inbox/YYYY-MM-DD/ITEM/metadata.json``."""

    model_config = ConfigDict(extra="forbid", title="InboxMetadata")

    format: int = Field(default=METADATA_FORMAT, description="version of this file's layout")
    journal_id: str = Field(description="the connector's id (`edxml-connector inbox list`)")
    axis_doc_id: str = Field(description="the axis's id of the package")
    received_at: dt.datetime
    delivered_at: dt.datetime
    item: str = Field(description="this folder's name: sender OrganId, code and axis docId")
    sender: str | None = Field(default=None, description="sender OrganId")
    document_id: str | None = Field(default=None, description="DocumentId (answer statuses with it)")
    code: str | None = Field(default=None, description="CodeNumber/CodeNotation")
    subject: str | None = None
    business_type: str | None = Field(default=None, description="new, revoke, update or replace")
    package_file: str = Field(default="package.edxml", description="the package exactly as received")
    package_sha256: str
    document: dict[str, Any] = Field(
        default_factory=dict, description="all header fields (the `edxml-connector inspect --json` view)")
    signature: SignatureOutcome
    warnings: list[str] = Field(default_factory=list,
                                description="what was odd about the package, and what was done")
    links: dict[str, Any] = Field(
        default_factory=dict,
        description="for a revoke/update/replace: the original document(s) it refers to and where "
                    "they were delivered")
    lifecycle: list[LifecycleEntry] = Field(
        default_factory=list, description="later requests about this document, oldest first")
    attachments: list[AttachmentFile] = Field(default_factory=list)
    quarantine: dict[str, Any] | None = Field(
        default=None, description="in quarantine/: the reason; in inbox/ after a release: the "
                                  "reason it had been held and when it was released")
