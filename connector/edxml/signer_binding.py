"""Which agency a signing certificate speaks for: the certificate → OrganId mapping file.

Why: a sound signature by a trusted certificate proves only that *some* holder of a certificate
from a trusted CA signed the package. Any agency on the axis has such a certificate, so without
a binding a hostile agency can sign a package whose ``From`` names another agency and have it
verify as trusted. The mapping file, kept by IT staff (one for the whole site, re-read on
SIGHUP), says which certificate speaks for which OrganId; the verifier compares that with the
package's ``From`` (itself checked against the axis-level sender).

The file (YAML)::

    # Which agency each signing certificate speaks for.
    organ_id_in_subject: CN        # optional: the subject field in which the CA writes the OrganId
    signers:
      - organ_id: 000.00.00.G22
        sha256: "3F:A1:..."        # a certificate's SHA-256 fingerprint (colons optional)
      - organ_id: 000.00.00.H41
        subject: {O: "UBND tỉnh Nghệ An", C: VN}   # every field listed must match

A certificate matched by several entries is bound to each of their OrganIds. Only a certificate
whose chain validated against the trust bundle is looked up here: a subject field is only worth
what the CA that vouched for it is worth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from connector.errors import ConfigError

SUBJECT_FIELDS = {
    "CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "L": NameOID.LOCALITY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "C": NameOID.COUNTRY_NAME,
    "UID": NameOID.USER_ID, "serialNumber": NameOID.SERIAL_NUMBER, "emailAddress": NameOID.EMAIL_ADDRESS,
}
_HINT = "see the signer mapping format in docs/operations.md (signers: [{organ_id, sha256 | subject}])"


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organ_id: str
    sha256: str | None = None
    subject: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> _Entry:
        if (self.sha256 is None) == (self.subject is None):
            raise ValueError("give exactly one of sha256 (a fingerprint) or subject (fields to match)")
        if self.subject is not None:
            unknown = sorted(set(self.subject) - set(SUBJECT_FIELDS))
            if unknown or not self.subject:
                raise ValueError(f"subject fields must be among {', '.join(SUBJECT_FIELDS)}"
                                 + (f" (not {', '.join(unknown)})" if unknown else ""))
        if self.sha256 is not None and len(fingerprint_text(self.sha256)) != 64:
            raise ValueError("sha256 must be a certificate's SHA-256 fingerprint: 64 hex digits, "
                             "colons optional")
        return self


class _MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organ_id_in_subject: str | None = None
    signers: list[_Entry] = []

    @model_validator(mode="after")
    def _known_field(self) -> _MappingFile:
        if self.organ_id_in_subject is not None and self.organ_id_in_subject not in SUBJECT_FIELDS:
            raise ValueError(f"organ_id_in_subject must be one of {', '.join(SUBJECT_FIELDS)}")
        return self


def fingerprint_text(value: str) -> str:
    """A fingerprint as 64 upper-case hex digits, whatever separators it was written with."""
    return "".join(ch for ch in value.upper() if ch in "0123456789ABCDEF")


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex().upper()


@dataclass(frozen=True)
class SignerBindings:
    """The mapping file, loaded. :meth:`bound_to` answers for one certificate."""

    by_fingerprint: dict[str, frozenset[str]] = field(default_factory=dict)
    by_subject: tuple[tuple[tuple[tuple[x509.ObjectIdentifier, str], ...], str], ...] = ()
    organ_id_field: x509.ObjectIdentifier | None = None
    source: str | None = None

    def bound_to(self, certificate: x509.Certificate) -> frozenset[str]:
        """The OrganIds ``certificate`` speaks for; empty when the file does not say (unbound)."""
        found = set(self.by_fingerprint.get(fingerprint(certificate), ()))
        subject = certificate.subject
        for fields, organ_id in self.by_subject:
            if all(any(attribute.value == value for attribute in subject.get_attributes_for_oid(oid))
                   for oid, value in fields):
                found.add(organ_id)
        if self.organ_id_field is not None:
            found.update(str(a.value) for a in subject.get_attributes_for_oid(self.organ_id_field))
        return frozenset(found)


def load_signer_bindings(path: str | Path) -> SignerBindings:
    """Read the mapping file; a bad file raises ConfigError naming the file, the entry and the fix."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise ConfigError(f"cannot read the signer mapping: {error.strerror or error}", file=str(path),
                          hint="check trust.signer_map_file and the file's permissions") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"the signer mapping is not valid YAML: {error}", file=str(path),
                          hint=_HINT) from error
    try:
        parsed = _MappingFile.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(f"{where}: {first['msg']}", file=str(path), hint=_HINT) from None
    by_fingerprint: dict[str, set[str]] = {}
    by_subject = []
    for entry in parsed.signers:
        if entry.sha256 is not None:
            by_fingerprint.setdefault(fingerprint_text(entry.sha256), set()).add(entry.organ_id)
        else:
            assert entry.subject is not None
            by_subject.append((tuple((SUBJECT_FIELDS[name], value) for name, value in entry.subject.items()),
                               entry.organ_id))
    return SignerBindings(
        by_fingerprint={key: frozenset(value) for key, value in by_fingerprint.items()},
        by_subject=tuple(by_subject),
        organ_id_field=SUBJECT_FIELDS[parsed.organ_id_in_subject] if parsed.organ_id_in_subject else None,
        source=str(path))
