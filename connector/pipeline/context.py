"""What the pipelines need of the live objects, said as an interface.

WHY an interface and not the class: the pipelines sit below the service layer that composes
the live objects from the settings (:class:`connector.service.runtime.Runtime`, the composition
root). Naming here only what inbound, outbound and retention read keeps the dependency pointing
down (the import contracts in ``pyproject.toml`` check it), and lets a test hand a pipeline any
object that has these parts.
"""

from __future__ import annotations

from typing import Any, Protocol

from connector.axis.agency_directory import AgencyDirectory
from connector.axis.client import AxisClient
from connector.config import Settings
from connector.dms.database.side import DatabaseSide
from connector.dms.folder.side import FolderSide
from connector.edxml import model
from connector.edxml.attachments import ZipConvention, ZipLimits
from connector.edxml.keys import SigningKey
from connector.edxml.trust_store import TrustStore
from connector.edxml.xmlparse import ParseLimits
from connector.journal import Journal
from connector.journal.package_store import PackageStore

CONNECTOR_SOURCE = "connector"
"""The journal ``source`` of items the connector makes itself (the automatic "arrived" status),
as opposed to items from an agency side ("folder", "database")."""


class PipelineContext(Protocol):
    """The parts of one connector a pipeline works with, each opened on first use."""

    settings: Settings

    @property
    def journal(self) -> Journal: ...

    @property
    def store(self) -> PackageStore: ...

    @property
    def axis(self) -> AxisClient: ...

    @property
    def directory(self) -> AgencyDirectory: ...

    @property
    def agency(self) -> model.Organization: ...

    @property
    def signing_key(self) -> SigningKey: ...

    @property
    def trust_store(self) -> TrustStore | None: ...

    @property
    def limits(self) -> ParseLimits: ...

    @property
    def zip_limits(self) -> ZipLimits: ...

    @property
    def zip_convention(self) -> ZipConvention: ...

    @property
    def folder(self) -> FolderSide | None:
        """The folder side, or None when ``exchange`` is off."""

    @property
    def database(self) -> DatabaseSide | None:
        """The DMS database side, or None when ``database`` is not configured."""

    @property
    def sides(self) -> dict[str, Any]:
        """Every configured agency side by its name ("folder", "database")."""
