"""What a package says, as one JSON-ready dict (``inspect --json``) or readable text (``inspect``).

The summary is the stable, documented view of a package for people and scripts: a DMS vendor's
test script, an operator comparing what was sent with what arrived, the daemon's ``metadata.json``
later. It is built from the typed model (never from the XML), so every writer's package — SDK,
hand-made, ours — looks the same here. Dates are ISO 8601, enums are their wire values, and each
attachment is described by the bytes *as transported* (base64-decoded, before any unzip), plus,
for a zip part under the ZIP convention, the entries it would extract to or the reasons it will not.

Stable keys (documented in README): ``kind``, ``document_id``, ``from``, ``to[]``, ``code``,
``subject``, ``promulgation``, ``business``, ``status`` (status packages), ``attachments[]``,
``warnings[]``, ``signature``. Keys are only ever added.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from connector.edxml import model
from connector.edxml.attachments import ZipLimits, extract_zip_part, is_zip_convention_part

_ORGANIZATION_KEYS = ("organ_id", "organ_name", "organization_in_charge", "organ_add", "email",
                      "telephone", "fax", "website")


def summarize(result: Any, *, signature: Any = None,
              zip_limits: ZipLimits | None = None) -> dict[str, Any]:
    """The summary of a read package.

    ``result`` is a :class:`connector.edxml.reader.ReadResult` (``package``, ``warnings``,
    ``namespace``); ``signature`` a :class:`connector.edxml.signing.VerificationResult` or None
    when the signature was not checked (then ``signature`` is null); ``zip_limits`` the limits
    applied when looking inside zip parts (the library's defaults when None).
    """
    package = result.package
    summary: dict[str, Any] = {"kind": package.kind}
    if isinstance(package, model.StatusPackage):
        summary.update(_status(package))
    else:
        summary.update(_document(package, zip_limits))
    summary["namespace"] = getattr(result, "namespace", None)
    summary["warnings"] = [str(item) for item in getattr(result, "warnings", [])]
    summary["signature"] = _signature(signature)
    return summary


# --------------------------------------------------------------------------- documents

def _document(package: model.DocumentPackage, zip_limits: ZipLimits | None) -> dict[str, Any]:
    code = package.code or model.Code()
    promulgation = package.promulgation_info or model.PromulgationInfo()
    document_type = package.document_type or model.DocumentType()
    other = package.other_info
    business = package.business
    return {
        "document_id": package.document_id,
        "from": _organization(package.from_),
        "to": [_organization(item) for item in package.to],
        "code": {"number": code.number, "notation": code.notation},
        "promulgation": {"place": promulgation.place, "date": _iso(promulgation.date)},
        "document_type": {"type": document_type.type, "type_detail": document_type.type_detail,
                          "type_name": document_type.type_name},
        "subject": package.subject,
        "content": package.content,
        "signer": _plain(package.signer_info),
        "due_date": _iso(package.due_date),
        "other_info": _plain(other),
        "response_for": [_response_for(item) for item in package.response_for],
        "steering_type": package.steering_type,
        "to_places": package.to_places,
        "trace": [{"organ_id": item.organ_id, "timestamp": _iso(item.timestamp)}
                  for item in package.trace_headers],
        "business": _business(business, package.business_type),
        "attachments": [_attachment(item, zip_limits) for item in package.attachments],
    }


def _business(business: model.Business | None, kind: model.BusinessType) -> dict[str, Any]:
    summary: dict[str, Any] = {"type": int(kind), "label": kind.label_en, "label_vi": kind.label_vi}
    if business is None:
        return summary
    summary.update({
        "reason": business.business_doc_reason,
        "paper": business.paper,
        "document_id": business.document_id,
        "staff": _plain(business.staff_info),
    })
    if business.business_document_info is not None:
        summary["update"] = _plain(business.business_document_info)
    if business.replacement_info_list is not None:
        summary["replaces"] = [_plain(item) for item in business.replacement_info_list]
    return summary


def _attachment(attachment: model.Attachment, zip_limits: ZipLimits | None) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "name": attachment.name,
        "content_id": attachment.content_id,
        "content_type": attachment.content_type,
        "description": attachment.description,
        "size": attachment.size,
        "sha256": attachment.sha256(),
    }
    if is_zip_convention_part(attachment):
        summary.update(_zip_contents(attachment, zip_limits))
    return summary


def _zip_contents(attachment: model.Attachment, zip_limits: ZipLimits | None) -> dict[str, Any]:
    """``extracted[]`` (name, content_type, size, sha256 of each entry, and the name as stored in
    the archive) when the part passes the extraction limits, else an empty ``extracted[]`` and
    ``problems[]`` saying why it is kept as received (bomb, path escape, unreadable...)."""
    extraction = extract_zip_part(attachment, zip_limits or ZipLimits(), measure_only=True)
    if extraction.extracted and not extraction.problems:
        return {"extracted": [{"name": entry.name, "original_name": entry.original_name,
                               "content_type": entry.content_type, "size": entry.size,
                               "sha256": entry.sha256}
                              for entry in extraction.entries]}
    return {"extracted": [], "problems": [str(item) for item in extraction.problems]}


# --------------------------------------------------------------------------- statuses

def _status(package: model.StatusPackage) -> dict[str, Any]:
    code = package.status_code
    value = code.value if isinstance(code, model.StatusCode) else str(code)
    known = code if isinstance(code, model.StatusCode) else _known_status(value)
    response_for = package.response_for or model.ResponseFor()
    return {
        "document_id": response_for.document_id,
        "from": _organization(package.from_),
        # A status has one addressee, named in ResponseFor/OrganId; shown as ``to`` for symmetry.
        "to": [{"organ_id": response_for.organ_id}] if response_for.organ_id else [],
        "status": {
            "code": value,
            "label": known.label_en if known else None,
            "label_vi": known.label_vi if known else None,
            "description": package.description,
            "timestamp": _iso(package.timestamp),
            "response_for": _response_for(response_for),
            "staff": _plain(package.staff_info),
        },
    }


def _known_status(value: str) -> model.StatusCode | None:
    try:
        return model.StatusCode(value)
    except ValueError:
        return None


# --------------------------------------------------------------------------- shared pieces

def _organization(organization: model.Organization | None) -> dict[str, Any]:
    organization = organization or model.Organization()
    return {key: getattr(organization, key) for key in _ORGANIZATION_KEYS}


def _response_for(item: model.ResponseFor) -> dict[str, Any]:
    return {"organ_id": item.organ_id, "code": item.code,
            "promulgation_date": _iso(item.promulgation_date), "document_id": item.document_id}


def _signature(result: Any) -> dict[str, Any] | None:
    if result is None:
        return None
    state = getattr(result, "state", None)
    summary: dict[str, Any] = {"state": _value(state), "reason": getattr(result, "reason", None)}
    for key in ("signer_subject", "signer_issuer", "certificate_not_before",
                "certificate_not_after", "algorithm", "digest_algorithm", "signing_time",
                "warnings"):
        if hasattr(result, key):
            summary[key] = _json_value(getattr(result, key))
    return summary


def _plain(value: Any) -> Any:
    """A dataclass as a JSON-ready dict (dates ISO, enums by value); None stays None."""
    if value is None:
        return None
    return _json_value(value)


def _json_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: _json_value(getattr(value, item.name))
                for item in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _iso(value: dt.date | dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --------------------------------------------------------------------------- text view

def render_text(summary: dict[str, Any]) -> str:
    """The readable default of ``inspect``: the fields an operator checks first, one per line."""
    lines: list[str] = []

    def add(label: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            lines.append(f"{label:<14}{value}")

    def organization(item: dict[str, Any]) -> str:
        name = item.get("organ_name")
        return f"{item.get('organ_id')}" + (f" ({name})" if name else "")

    if summary["kind"] == "status":
        status = summary["status"]
        label = status.get("label_vi") or ""
        add("Kind", f"status {status['code']}" + (f" — {label}" if label else ""))
        add("From", organization(summary["from"]))
        add("To", ", ".join(organization(item) for item in summary["to"]))
        add("Document", summary.get("document_id"))
        add("Code", status["response_for"].get("code"))
        add("Description", status.get("description"))
        add("Timestamp", status.get("timestamp"))
    else:
        business = summary["business"]
        add("Kind", f"document — business type {business['type']} ({business['label_vi']})")
        add("DocumentId", summary.get("document_id"))
        add("From", organization(summary["from"]))
        for index, item in enumerate(summary["to"]):
            add("To" if index == 0 else "", organization(item))
        code = summary["code"]
        add("Code", "/".join(part for part in (code.get("number"), code.get("notation")) if part))
        add("Promulgated", " ".join(part for part in (summary["promulgation"].get("date"),
                                                     summary["promulgation"].get("place")) if part))
        add("Type", summary["document_type"].get("type_name"))
        add("Subject", summary.get("subject"))
        add("Due", summary.get("due_date"))
        for replaced in business.get("replaces") or []:
            add("Replaces", replaced.get("document_id"))
        lines.append(f"{'Attachments':<14}{len(summary['attachments'])}")
        for item in summary["attachments"]:
            lines.append(f"  - {item['name']}  {item['content_type']}  {item['size']} bytes  "
                         f"sha256 {item['sha256']}")
            for entry in item.get("extracted") or []:
                lines.append(f"      └ {entry['name']}  {entry.get('size')} bytes  "
                             f"sha256 {entry.get('sha256')}")
            for problem in item.get("problems") or []:
                lines.append(f"      ! not extracted: {problem}")
    signature = summary.get("signature")
    if signature is not None:
        reason = f" — {signature['reason']}" if signature.get("reason") else ""
        lines.append(f"{'Signature':<14}{signature['state']}{reason}")
    for warning in summary.get("warnings") or []:
        lines.append(f"{'Warning':<14}{warning}")
    return "\n".join(lines)
