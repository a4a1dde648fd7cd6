"""Identifiers and dates as they appear on the wire.

- Agency identifiers (mã định danh, QCVN 102:2016): ``V1V2V3.Z1Z2.Y1Y2.MX1X2`` — validated strictly
  for what we write, and only warned about for what we read (real traffic has ``28.22.H17``).
- DocumentId by the SDK's convention ``<sender OrganId>,<yyyy/MM/dd>,<CodeNumber>/<CodeNotation>``.
- Dates ``yyyy/MM/dd`` and timestamps ``yyyy/MM/dd HH:mm:ss`` written; the older ``dd/MM/yyyy``
  forms accepted on read. Timestamps we write are Vietnam time unless configured otherwise.
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

ORGAN_ID_PATTERN = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")
VIETNAM_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"
_READ_DATE_FORMATS = ("%Y/%m/%d", "%d/%m/%Y", "%Y-%m-%d")
_READ_TIMESTAMP_FORMATS = ("%Y/%m/%d %H:%M:%S", "%d/%m/%Y %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                           "%Y-%m-%d %H:%M:%S")


def is_valid_organ_id(value: str | None) -> bool:
    return value is not None and ORGAN_ID_PATTERN.match(value) is not None


def organ_id_problem(value: str | None) -> str | None:
    """A sentence saying why ``value`` is not a conforming identifier, or None when it is."""
    if is_valid_organ_id(value):
        return None
    return (f"agency identifier {value!r} does not follow the QCVN 102:2016 layout "
            "NNN.NN.NN.ANN (e.g. 000.00.00.G22)")


def make_document_id(organ_id: str, date: dt.date, code_number: str, code_notation: str) -> str:
    """DocumentId by the SDK's convention, e.g. ``000.00.00.G22,2015/09/30,7816/VPCP-TTĐT``."""
    return f"{organ_id},{format_date(date)},{code_number}/{code_notation}"


def format_date(value: dt.date) -> str:
    return value.strftime(DATE_FORMAT)


def format_timestamp(value: dt.datetime, tz: dt.tzinfo = VIETNAM_TZ) -> str:
    """``yyyy/MM/dd HH:mm:ss`` in ``tz`` (Vietnam time by default); naive values are taken as-is."""
    if value.tzinfo is not None:
        value = value.astimezone(tz)
    return value.strftime(TIMESTAMP_FORMAT)


def parse_date(text: str) -> dt.date:
    """Parse a wire date in any accepted format; ValueError when none fits."""
    cleaned = text.strip()
    for fmt in _READ_DATE_FORMATS:
        try:
            return dt.datetime.strptime(cleaned, fmt).date()
        except ValueError:
            continue
    # A timestamp where a date is expected still carries the date.
    return parse_timestamp(cleaned).date()


def parse_timestamp(text: str) -> dt.datetime:
    """Parse a wire timestamp (naive, as written); ValueError when no accepted format fits."""
    cleaned = text.strip()
    for fmt in _READ_TIMESTAMP_FORMATS:
        try:
            return dt.datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a date/time in yyyy/MM/dd HH:mm:ss or dd/MM/yyyy HH:mm:ss")


def now_vietnam() -> dt.datetime:
    """The current time in Vietnam, naive, to the second (what the wire carries)."""
    return dt.datetime.now(VIETNAM_TZ).replace(tzinfo=None, microsecond=0)


def normalize_content_id(value: str | None) -> str | None:
    """A ContentId as compared and stored: without the ``cid:`` scheme, angle brackets or spaces.

    Some writers put ``cid:`` on the manifest side only (or the attachment side only), and MIME
    habits add ``<...>``; comparing the bare identifier makes both sides match.
    """
    if value is None:
        return None
    cleaned = value.strip()
    if cleaned[:4].lower() == "cid:":
        cleaned = cleaned[4:].strip()
    if cleaned.startswith("<") and cleaned.endswith(">"):
        cleaned = cleaned[1:-1].strip()
    return cleaned
