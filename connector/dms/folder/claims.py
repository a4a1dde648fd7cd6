"""Claim names: how an item in ``work/`` is named, so that its reference is unique and stable.

An item claimed from ``outbox/NAME.edxml`` becomes ``work/<stamp>@<instance>--NAME.edxml``:

- ``<stamp>`` (claim time in UTC to the microsecond, plus 4 random hex digits) makes the name
  unique even when the DMS reuses NAME for a later document, so the journal never confuses two
  documents that had the same file name;
- ``<instance>`` names the connector that claimed it, so that after a crash each connector
  resumes its own claims and never picks up another running connector's items;
- ``NAME`` is kept so that an operator looking in ``work/`` recognises the item.

The name relative to ``work/`` (``statuses/...`` for status drops) is the item's ``source_ref``.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import socket
from dataclasses import dataclass

from connector.errors import ConfigError

_INSTANCE = re.compile(r"^[A-Za-z0-9_]+(?:[.-][A-Za-z0-9_]+)*$")
_WORK_NAME = re.compile(
    r"^(?P<stamp>\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{4})@(?P<instance>[A-Za-z0-9_.-]+?)--(?P<name>.+)$")
STATUS_PREFIX = "statuses/"


def default_instance() -> str:
    """The host name, made safe for a file name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip(".-") or "connector"
    name = re.sub(r"-{2,}", "-", name)
    name = re.sub(r"\.{2,}", ".", name)
    return name


def check_instance(instance: str) -> str:
    if not _INSTANCE.match(instance or ""):
        raise ConfigError(f"instance name {instance!r} is not usable in file names",
                          hint="use letters, digits, '_' and single '.' or '-' between them")
    return instance


@dataclass(frozen=True)
class ClaimName:
    """A parsed ``source_ref``."""

    stamp: str
    instance: str
    name: str            # NAME.edxml, NAME (a bundle) or NAME.yaml
    is_status: bool

    @property
    def work_name(self) -> str:
        return f"{self.stamp}@{self.instance}--{self.name}"

    @property
    def source_ref(self) -> str:
        return (STATUS_PREFIX if self.is_status else "") + self.work_name

    @property
    def display_name(self) -> str:
        """How the DMS named it, relative to ``outbox/``."""
        return (STATUS_PREFIX if self.is_status else "") + self.name

    @property
    def claimed_at(self) -> dt.datetime:
        return dt.datetime.strptime(self.stamp[:23], "%Y%m%dT%H%M%S.%fZ").replace(
            tzinfo=dt.timezone.utc)

    @classmethod
    def new(cls, name: str, instance: str, *, is_status: bool,
            now: dt.datetime | None = None) -> ClaimName:
        now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        stamp = now.strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(2)
        return cls(stamp=stamp, instance=instance, name=name, is_status=is_status)

    @classmethod
    def parse(cls, source_ref: str) -> ClaimName | None:
        """None when ``source_ref`` is not one of ours (a stray file an operator put in work/)."""
        is_status = source_ref.startswith(STATUS_PREFIX)
        work_name = source_ref[len(STATUS_PREFIX):] if is_status else source_ref
        match = _WORK_NAME.match(work_name)
        if not match or "/" in work_name:
            return None
        return cls(stamp=match["stamp"], instance=match["instance"], name=match["name"],
                   is_status=is_status)
