"""The trust store: what a sound signature is judged against once its path has validated.

One per site (docs/decisions.md: one bundle, one CRL folder, one mapping file; re-read on
SIGHUP by building a new store). After the signature maths and the path validation
(:mod:`connector.edxml.trust`), :meth:`TrustStore.judge` asks the two remaining questions, in
the order of their gravity:

- revoked? → ``revoked`` (with the date), or ``revocation-unknown`` when nothing at hand can
  tell (:mod:`connector.edxml.revocation`);
- bound to the sender? → ``wrong-signer`` when the certificate speaks for another agency than
  the package's ``From``, ``unbound`` when the mapping file does not say
  (:mod:`connector.edxml.signer_binding`).

``revoked`` > ``wrong-signer`` > ``revocation-unknown`` > ``unbound``: the gravest is the
outcome, a lesser one is kept as a warning. A store built from a bare bundle path (the library
and ``edxml-connector verify --trust``) asks neither question and says so in the reason; the
daemon's store always asks both.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from connector.edxml.revocation import Revocation, RevocationChecker, load_crl_folder
from connector.edxml.revocation_fetch import RevocationFetcher
from connector.edxml.signer_binding import SignerBindings, load_signer_bindings
from connector.edxml.trust import load_trust_bundle


@dataclass(frozen=True)
class Judgement:
    """The outcome for a sound signature with a validated path (a SignatureState value)."""

    state: str
    reason: str
    warnings: tuple[str, ...] = ()
    bound_to: tuple[str, ...] = ()
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class TrustStore:
    anchors: list[x509.Certificate]
    bindings: SignerBindings | None = None
    revocation: RevocationChecker | None = None
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, trust: str | Path | TrustStore | None) -> TrustStore | None:
        """A store as given, or one of only the anchors of a bundle path."""
        if trust is None or isinstance(trust, TrustStore):
            return trust
        return cls(load_trust_bundle(trust), sources={"bundle": str(trust)})

    @classmethod
    def from_files(cls, bundle: Path | None, *, crl_folder: Path | None = None,
                   signer_map: Path | None = None,
                   fetcher: RevocationFetcher | None = None) -> TrustStore | None:
        """The daemon's store: both questions asked. No mapping file binds nothing (every
        signer ``unbound``); no CRL folder and no fetcher leaves revocation ``unknown``. Bad
        files raise ConfigError naming the file (at start, or at a reload, which then keeps the
        previous store)."""
        if bundle is None:
            return None
        bindings = load_signer_bindings(signer_map) if signer_map is not None else SignerBindings()
        crls = load_crl_folder(crl_folder) if crl_folder is not None else []
        sources = {"bundle": str(bundle), "crl_folder": str(crl_folder) if crl_folder else "",
                   "signer_map": str(signer_map) if signer_map else ""}
        return cls(load_trust_bundle(bundle), bindings, RevocationChecker(crls, fetcher), sources)

    def summary(self) -> dict[str, int | bool]:
        """Counts for ``check`` and the reload log line."""
        bindings = self.bindings
        return {"anchors": len(self.anchors),
                "crls": len(self.revocation.folder_crls) if self.revocation else 0,
                "bindings": (len(bindings.by_fingerprint) + len(bindings.by_subject)
                             + (1 if bindings.organ_id_field is not None else 0)) if bindings else 0,
                "fetch_revocation": bool(self.revocation and self.revocation.online)}

    def judge(self, chain: list[x509.Certificate], sender: str | None, moment: dt.datetime) -> Judgement:
        leaf = chain[0]
        subject = leaf.subject.rfc4514_string()
        notes: list[tuple[str, str]] = []  # (state, sentence), gravest first once sorted
        revoked_at = None
        if self.revocation is not None:
            answer = self.revocation.check_path(chain, moment)
            if answer.state is Revocation.REVOKED:
                notes.append(("revoked", answer.reason))
                revoked_at = answer.revoked_at
            elif answer.state is Revocation.UNKNOWN:
                notes.append(("revocation-unknown", answer.reason))
        bound: tuple[str, ...] = ()
        if self.bindings is not None:
            bound = tuple(sorted(self.bindings.bound_to(leaf)))
            if not bound:
                notes.append(("unbound", "no binding in the signer mapping ties the certificate of "
                                         f"{subject} to an agency (trust.signer_map_file)"))
            elif sender is not None and sender not in bound:
                notes.append(("wrong-signer", f"the certificate of {subject} is bound to {', '.join(bound)}, "
                                              f"not to the sender {sender} named in From"))
        if not notes:
            reason = f"signed by {subject}, certificate trusted"
            reason += ", not revoked" if self.revocation is not None else ""
            reason += f", bound to {sender}" if self.bindings is not None else ""
            unchecked = [question for question, asked in (("revocation", self.revocation),
                                                          ("signer binding", self.bindings)) if asked is None]
            if unchecked:
                reason += f" ({' and '.join(unchecked)} not checked)"
            return Judgement("valid", reason, bound_to=bound)
        notes.sort(key=lambda note: _GRAVITY.index(note[0]))
        state, reason = notes[0]
        return Judgement(state, f"sound signature by a trusted certificate, but {reason}",
                         warnings=tuple(sentence for _, sentence in notes[1:]), bound_to=bound,
                         revoked_at=revoked_at)


_GRAVITY = ("revoked", "wrong-signer", "revocation-unknown", "unbound")
