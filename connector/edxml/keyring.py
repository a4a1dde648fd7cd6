"""The keys a unit may sign with, and which one signs the next package.

A certificate is renewed every few years, and a hub renews one somewhere every week: the new
one must take over without a restart and without a document signed by an expired key or lost in
between. A :class:`KeyRing` holds every key a unit is configured with — the current one and the
next one with its moment to switch, or every key found in a certificate folder — and answers,
for each package, "which key signs now?" (:meth:`KeyRing.active`). Because the answer is asked
per package, a switch takes effect between two documents.

Rules of :meth:`KeyRing.active`:
- a key is a candidate when its moment to switch (if it has one) has come and its certificate is
  valid now;
- among candidates, the one with the latest moment to switch wins, then the newest certificate
  (latest ``notBefore``) — so in a folder the newest valid certificate signs;
- with no candidate, signing stops with the reason of the key that would have been used.

:meth:`KeyRing.coverage_end` is the last moment at which some key will be able to sign (the
current certificate's end, carried on by a next one that takes over in time): what the expiry
warning and the days-left metric are about.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from connector.edxml.keys import SigningKey
from connector.errors import CertificateError


@dataclass(frozen=True)
class RingEntry:
    key: SigningKey
    switch_at: dt.datetime | None = None  # None: usable as soon as the certificate is valid

    def starts(self) -> dt.datetime:
        """When this key may first sign: its switch moment or its certificate's start."""
        if self.switch_at is None:
            return self.key.not_before
        return max(self.switch_at, self.key.not_before)


class KeyRing:
    """The keys of one unit (see the module docstring). Immutable: a reload builds a new one."""

    def __init__(self, entries: Sequence[RingEntry], *, source: str = "") -> None:
        if not entries:
            raise CertificateError("no signing certificate found", file=source or None,
                                   hint="put the agency's certificate (and key) where the "
                                        "certificate settings say")
        self.entries = tuple(entries)
        self.source = source

    @classmethod
    def single(cls, key: SigningKey) -> KeyRing:
        return cls([RingEntry(key)], source=key.source)

    def active(self, now: dt.datetime | None = None) -> SigningKey:
        """The key that signs at ``now``; raises CertificateError (with the dates) when none can."""
        moment = _now(now)
        candidates = [entry for entry in self.entries
                      if (entry.switch_at is None or entry.switch_at <= moment)
                      and entry.key.valid_at(moment)]
        if candidates:
            best = max(candidates, key=lambda entry: (_switch_order(entry), entry.key.not_before))
            return best.key
        self.preferred(moment).key.check_validity(moment)  # raises with the dates
        raise CertificateError("no certificate may sign now", file=self.source or None,
                               hint="install a valid certificate, then reload")  # pragma: no cover

    def preferred(self, now: dt.datetime | None = None) -> RingEntry:
        """The entry that would sign at ``now`` if its certificate were valid."""
        moment = _now(now)
        due = [entry for entry in self.entries if entry.switch_at is None or entry.switch_at <= moment]
        pool = due or list(self.entries)
        return max(pool, key=lambda entry: (_switch_order(entry), entry.key.not_before))

    def upcoming(self, now: dt.datetime | None = None) -> list[RingEntry]:
        """Keys that will take over later (a switch moment or a start still ahead), soonest first."""
        moment = _now(now)
        return sorted((entry for entry in self.entries if entry.starts() > moment),
                      key=RingEntry.starts)

    def coverage_end(self, now: dt.datetime | None = None) -> dt.datetime:
        """The last moment some key can sign, following takeovers without a gap from now."""
        moment = _now(now)
        try:
            end = self.active(moment).not_after
        except CertificateError:
            return self.preferred(moment).key.not_after
        for entry in sorted(self.entries, key=RingEntry.starts):
            if entry.starts() <= end and entry.key.not_after > end:
                end = entry.key.not_after
        return end

    def describe(self, now: dt.datetime | None = None) -> str:
        """One line for ``check`` and the log: which certificate signs and what comes next."""
        moment = _now(now)
        try:
            text = f"{self.active(moment).subject}"
        except CertificateError:
            text = f"{self.preferred(moment).key.subject} (cannot sign now)"
        later = self.upcoming(moment)
        if later:
            text += "; then " + ", ".join(f"{entry.key.subject} from {entry.starts():%Y-%m-%d %H:%M} UTC"
                                          for entry in later)
        return text

    def close(self) -> None:
        for entry in self.entries:
            entry.key.close()


def _switch_order(entry: RingEntry) -> dt.datetime:
    return entry.switch_at or dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


FOLDER_PATTERNS = ("*.p12", "*.pfx", "*.pem")


def keys_in_folder(folder, password: bytes | str | None) -> tuple[list[SigningKey], list[str]]:
    """Every key in a certificate folder (``.p12``/``.pfx`` bundles opened with ``password``,
    ``.pem`` files holding a key and its certificate), whatever their dates, and one line per
    file that could not be read — reported, not fatal, so that a half-copied renewal does not
    stop the unit while the current certificate still works."""
    keys, problems = [], []
    root = Path(folder)
    if not root.is_dir():
        raise CertificateError("the certificate folder does not exist", file=str(root),
                               hint="create it and put the agency's .p12 (or .pem key + "
                                    "certificate) files in it")
    files = sorted({path for pattern in FOLDER_PATTERNS for path in root.glob(pattern)})
    for path in files:
        try:
            if path.suffix.lower() == ".pem":
                keys.append(SigningKey.from_pem(path, path, password, check_dates=False))
            else:
                keys.append(SigningKey.from_pkcs12(path, password, check_dates=False))
        except CertificateError as error:
            problems.append(error.one_line())
    return keys, problems
