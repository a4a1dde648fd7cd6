"""The JSON Schemas ``edxml-connector schema NAME`` prints besides ``document``: ``status`` (the
status drop file), ``receipt`` (``sent/NAME.receipt.json``), ``metadata`` (the inbox
``metadata.json``) and ``config`` (``connector.yaml``), so a DMS vendor or an administrator can
validate what they write with any JSON Schema tool before the connector reads it.
"""

from __future__ import annotations

from typing import Any

from connector.config import Settings
from connector.schemas.metadata import InboxMetadata
from connector.schemas.receipt import ReceiptFile
from connector.schemas.status import StatusDrop

# Resolved secret values live on the settings objects but are never written in the file (the
# loader refuses them inline), so the schema must not offer them as keys.
_RESOLVED_ONLY = {"CertificateConfig": ("password",), "NextCertificateConfig": ("password",),
                  "KeySourceConfig": ("password",), "TokenConfig": ("pin",), "AxisConfig": ("secret",)}


class ConfigFileSchema:
    """``connector.yaml``: the :class:`~connector.config.Settings` model as a file format."""

    @classmethod
    def model_json_schema(cls, by_alias: bool = True, **_: Any) -> dict[str, Any]:
        schema = Settings.model_json_schema(by_alias=by_alias)
        schema["title"] = "connector.yaml"
        for name, keys in _RESOLVED_ONLY.items():
            definition = schema.get("$defs", {}).get(name, {})
            for key in keys:
                definition.get("properties", {}).pop(key, None)
        return schema


SCHEMAS: dict[str, type] = {
    "status": StatusDrop,
    "receipt": ReceiptFile,
    "metadata": InboxMetadata,
    "config": ConfigFileSchema,
}
