"""The receipt sidecar: ``sent/NAME.receipt.json``, what the DMS reads about a sent item.

It is written (atomically) when the axis accepts the item and rewritten each time a recipient's
status changes, so a DMS can poll one small file per item instead of talking to the connector.
``edxml-connector schema receipt`` prints its JSON Schema.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

RECEIPT_FORMAT = 1


class RecipientStatus(BaseModel):
    """The latest status one recipient sent back about the item."""

    model_config = ConfigDict(extra="allow")

    status: str | None = Field(default=None, description="status code, e.g. '03'; null: none yet")
    label: str | None = Field(default=None, description="English label of the code, e.g. 'accepted'")
    description: str | None = Field(default=None, description="the recipient's free text, if any")
    at: dt.datetime | None = Field(default=None, description="when the recipient set it")


class ReceiptFile(BaseModel):
    """``sent/NAME.receipt.json``."""

    model_config = ConfigDict(extra="forbid", title="Receipt")

    format: int = Field(default=RECEIPT_FORMAT, description="version of this file's layout")
    name: str = Field(description="the item's name in outbox/ (NAME.edxml, NAME, statuses/NAME.yaml)")
    journal_id: str = Field(description="the connector's id: `edxml-connector status` shows it")
    document_id: str | None = Field(description="DocumentId sent in the package")
    state: str = Field(description="journal state: sent, or failed, ...")
    axis_doc_id: str | None = Field(default=None, description="the axis's id for the package")
    sent_at: dt.datetime | None = Field(default=None, description="when the axis accepted it")
    recipients: dict[str, RecipientStatus] = Field(
        default_factory=dict, description="recipient OrganId -> its latest status")
    warnings: list[str] = Field(
        default_factory=list, description="what the DMS should know, e.g. a recipient given by an "
                                          "old code that was sent to its current code")
    updated_at: dt.datetime = Field(description="when this file was last written")
    source_ref: str = Field(description="the connector's claim reference (work/ name); "
                                        "identifies the item across restarts")
