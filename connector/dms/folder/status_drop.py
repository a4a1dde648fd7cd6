"""A status drop file (``outbox/statuses/NAME.yaml`` or ``.json``) read into the core's
:class:`~connector.dms.base.StatusRequest`: the file's format is ``connector.schemas.status``;
reading it, and the errors that name the file and the field, belong to the folder side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connector.dms.base import StatusRequest
from connector.errors import InputError
from connector.schemas.document import describe_validation_error
from connector.schemas.status import StatusDrop


def status_request(drop: StatusDrop) -> StatusRequest:
    """What the core sends for a validated drop file."""
    staff = drop.staff.model_dump() if drop.staff else {}
    return StatusRequest(code=drop.code, document_id=drop.document_id, to=list(drop.to),
                         description=drop.description, staff=staff, code_text=drop.document_code,
                         promulgation_date=drop.promulgation_date)


def load_status_request(path: str | Path) -> StatusRequest:
    """Read and validate a status drop file (YAML, or JSON by its ``.json`` suffix)."""
    path = Path(path)
    hint = "see `edxml-connector schema status` for the expected format"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError("not UTF-8 text", file=str(path), hint="save the file as UTF-8") from error
    try:
        if path.suffix.lower() == ".json":
            raw: Any = json.loads(text)
        else:
            raw = yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise InputError(f"not valid JSON: {error.msg}", file=str(path), line=error.lineno,
                         hint=hint) from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(error, 'problem', error)}", file=str(path),
                         line=(mark.line + 1) if mark else None, hint=hint) from error
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of fields at the top level", file=str(path), hint=hint)
    try:
        return status_request(StatusDrop.model_validate(raw))
    except ValidationError as error:
        raise InputError(describe_validation_error(error), file=str(path), hint=hint) from error
