"""The connector's configuration: one YAML file → validated, typed settings.

``load_config(path)`` reads the YAML (duplicate keys refused), substitutes ``${VAR}`` and
``${VAR:-default}`` in string values (``$${`` writes a literal ``${``), validates everything with
pydantic, reads the secrets from where the file says they are, and returns :class:`Settings`.
Every problem becomes one :class:`~connector.errors.ConfigError` whose line names the file, the
key path (``axis.retry.max_attempts``) and the fix — an unknown key gets a "did you mean" — so an
operator never sees a traceback. Secrets are ``SecretStr``: they print as ``**********``.

``config/connector.example.yaml`` documents every key; a test keeps it loadable.
"""

from __future__ import annotations

import difflib
import enum
import ipaddress
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connector.config_units import check_distinct, unit_mappings
from connector.dms.database.mapping import DmsDatabaseSettings
from connector.dms.folder.claims import check_instance
from connector.errors import ConfigError
from connector.schemas.document import ORGAN_ID_PATTERN
from connector.secrets import SecretSourceError, read_secret

DEFAULT_STATE_DIR = Path("/var/lib/edxml-connector")
DEFAULT_JOURNAL_URL = "sqlite:////var/lib/edxml-connector/journal.db"
DEFAULT_EXCHANGE_ROOT = DEFAULT_STATE_DIR / "exchange"
EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "connector.example.yaml"
_HINT = "see config/connector.example.yaml, which documents every key"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _secret(model: BaseModel, base: str, info: ValidationInfo, *, required: bool) -> SecretStr | None:
    """Resolve ``<base>_file|_env|_credential`` on ``model`` (validation context collects warnings).

    With ``resolve_secrets: False`` in the validation context nothing is read: only the choice of
    source is checked (exactly one, a usable credential name) and the model resolves the value on
    first use (:func:`_resolve_later`)."""
    context = (info.context or {}) if info is not None else {}
    warnings = context.get("warnings")
    if not context.get("resolve_secrets", True):
        _check_source(model, base, required=required)
        return None
    return read_secret(base, file=getattr(model, f"{base}_file"), env=getattr(model, f"{base}_env"),
                       credential=getattr(model, f"{base}_credential"), required=required,
                       warnings=warnings)


def _check_source(model: BaseModel, base: str, *, required: bool) -> None:
    """The part of :func:`read_secret`'s checks that does not read the secret."""
    given = [name for name in ("file", "env", "credential")
             if getattr(model, f"{base}_{name}") not in (None, "")]
    if len(given) > 1:
        raise SecretSourceError(f"{base}_{given[0]}",
                                f"give only one of {', '.join(f'{base}_{n}' for n in given)}")
    if not given and required:
        raise SecretSourceError(f"{base}_file", f"missing: set {base}_file, {base}_env or "
                                                f"{base}_credential")


def _resolve_later(model: BaseModel, section: str, base: str, *, required: bool) -> SecretStr | None:
    """Read a secret that loading skipped (``load_config(..., resolve_secrets=False)``): an
    operator command that needs it reads it now, and one that does not never fails for it.
    Errors are the same one-line ConfigError as at load, naming the key and the fix."""
    try:
        return read_secret(base, file=getattr(model, f"{base}_file"),
                           env=getattr(model, f"{base}_env"),
                           credential=getattr(model, f"{base}_credential"), required=required)
    except SecretSourceError as error:
        raise ConfigError(f"{section}.{error.key}: {error} (this command needs the secret; run it "
                          "as the service user, with the credentials the service has)",
                          file=getattr(model, "_config_file", None), hint=_HINT) from None


def _refuse_inline(data: Any, names: tuple[str, ...]) -> Any:
    if isinstance(data, dict):
        for name in names:
            if name in data:
                raise SecretSourceError(name, "secrets are not written in the config — use "
                                              f"{name}_file, {name}_env or {name}_credential")
    return data


# --- agency identity --------------------------------------------------------------------------

OrganId = Annotated[str, Field(pattern=ORGAN_ID_PATTERN)]


class AgencyConfig(_Section):
    """``agency:`` — who we are on the axis (goes into every package's ``From``)."""

    organ_id: OrganId
    name: str = Field(min_length=1, description="OrganName")
    organization_in_charge: str | None = None
    address: str | None = None
    email: str | None = None
    telephone: str | None = None
    fax: str | None = None
    website: str | None = None


# --- certificate and trust --------------------------------------------------------------------

class SignatureAlgorithm(str, enum.Enum):
    RSA_SHA256 = "rsa-sha256"
    RSA_SHA1 = "rsa-sha1"


class TokenConfig(_Section):
    """``certificate.token:`` — a key inside a PKCS#11 token or HSM (the key never leaves it).
    ``edxml-connector token list --module PATH`` shows the labels, serials and ids to put here."""

    module: Path = Field(description="the vendor's PKCS#11 module (.so)")
    token_label: str | None = None
    token_serial: str | None = None
    key_label: str | None = None
    key_id: str | None = Field(default=None, description="the key's CKA_ID in hex")
    pin_file: Path | None = None
    pin_env: str | None = None
    pin_credential: str | None = None
    pin: SecretStr | None = Field(default=None, exclude=True, repr=False)
    _deferred: bool = PrivateAttr(default=False)
    _config_file: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_pin(cls, data: Any) -> Any:
        return _refuse_inline(data, ("pin",))

    @model_validator(mode="after")
    def _one_of_each(self, info: ValidationInfo) -> TokenConfig:
        if bool(self.token_label) == bool(self.token_serial):
            raise SecretSourceError("token_label", "give token_label or token_serial (one of them)")
        if bool(self.key_label) == bool(self.key_id):
            raise SecretSourceError("key_label", "give key_label or key_id (one of them)")
        if self.key_id is not None:
            try:
                bytes.fromhex(self.key_id)
            except ValueError:
                raise SecretSourceError("key_id", f"{self.key_id!r} is not hexadecimal "
                                                  "(as `token list` prints it)") from None
        self.pin = _secret(self, "pin", info, required=True)
        self._deferred = not (info.context or {}).get("resolve_secrets", True)
        return self

    def resolved_pin(self) -> SecretStr:
        if self._deferred:
            self.pin = _resolve_later(self, "certificate.token", "pin", required=True)
            self._deferred = False
        assert self.pin is not None
        return self.pin


class KeySourceConfig(_Section):
    """Where one key and its certificate are: a PKCS#12 file, a PEM key and certificate, or a
    token (with its certificate from the token or ``cert_file``)."""

    p12_file: Path | None = None
    key_file: Path | None = None
    cert_file: Path | None = None
    token: TokenConfig | None = None
    password_file: Path | None = None
    password_env: str | None = None
    password_credential: str | None = None
    password: SecretStr | None = Field(default=None, exclude=True, repr=False)
    _deferred: bool = PrivateAttr(default=False)
    _config_file: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_password(cls, data: Any) -> Any:
        return _refuse_inline(data, ("password",))

    def _forms(self) -> list[str]:
        return [name for name, given in (("p12_file", self.p12_file), ("key_file", self.key_file),
                                         ("token", self.token)) if given is not None]

    def _check_form(self, others: list[str]) -> None:
        forms = self._forms() + others
        if len(forms) > 1:
            raise SecretSourceError(forms[0], f"give only one of p12_file, key_file + cert_file, "
                                              f"token{self._more_forms()} (not "
                                              f"{' and '.join(forms)})")
        if not forms:
            raise SecretSourceError("key_file", "missing: give p12_file, key_file and cert_file, "
                                                f"or token{self._more_forms()}")
        if self.key_file is not None and self.cert_file is None:
            raise SecretSourceError("cert_file", "missing: give the PEM certificate next to key_file")
        if self.p12_file is not None and self.cert_file is not None:
            raise SecretSourceError("cert_file", "a PKCS#12 file holds its certificate: drop cert_file")

    def _more_forms(self) -> str:
        return ""

    def _resolve_password(self, info: ValidationInfo) -> None:
        self.password = _secret(self, "password", info, required=False)
        self._deferred = not (info.context or {}).get("resolve_secrets", True)

    def resolved_password(self) -> SecretStr | None:
        """The key's password (read now if loading skipped the secrets)."""
        if self._deferred:
            self.password = _resolve_later(self, "certificate", "password", required=False)
            self._deferred = False
        return self.password


class NextCertificateConfig(KeySourceConfig):
    """``certificate.next:`` — the renewed key and certificate, and the moment they take over
    (between two documents, without a reload)."""

    switch_at: AwareDatetime = Field(description="when the next certificate starts signing")

    @model_validator(mode="after")
    def _one_form(self, info: ValidationInfo) -> NextCertificateConfig:
        self._check_form([])
        self._resolve_password(info)
        return self


class CertificateConfig(KeySourceConfig):
    """``certificate:`` — the agency's signing key: a PKCS#12 file, a PEM key and certificate, a
    PKCS#11 token, or a ``folder`` of certificates (the newest valid one signs); optionally the
    ``next`` one with its moment to switch."""

    folder: Path | None = Field(
        default=None, description="a folder of .p12/.pfx (or .pem key + certificate) files: the "
                                  "newest valid certificate signs; re-read on reload")
    next: NextCertificateConfig | None = None
    algorithm: SignatureAlgorithm = SignatureAlgorithm.RSA_SHA256
    expiry_warning_days: int = Field(default=30, ge=0, le=365)

    @model_validator(mode="after")
    def _one_form(self, info: ValidationInfo) -> CertificateConfig:
        self._check_form(["folder"] if self.folder is not None else [])
        if self.folder is not None and self.next is not None:
            raise SecretSourceError("next", "a folder already holds the next certificate: drop next")
        self._resolve_password(info)
        return self

    def _more_forms(self) -> str:
        return " or folder"

    def sources(self) -> list[KeySourceConfig]:
        """This key and the next one, when given."""
        return [self] if self.next is None else [self, self.next]

    def secrets(self) -> list[SecretStr | None]:
        """Every password and PIN these settings hold (for the log redactor)."""
        found: list[SecretStr | None] = []
        for source in self.sources():
            found.append(source.password)
            if source.token is not None:
                found.append(source.token.pin)
        return found

    def remember_file(self, file: str | None) -> None:
        """Name the config file in the messages of secrets read later (``_resolve_later``)."""
        for source in self.sources():
            source._config_file = file
            if source.token is not None:
                source.token._config_file = file


class TrustConfig(_Section):
    """``trust:`` — what a received package's signature is judged against (one store for the
    site, re-read on SIGHUP). Without a bundle every signature is at best ``untrusted``; a
    trusted signer is ``valid`` only when it is not revoked and is bound to the sender (see
    ``inbox.signature_policy`` for the other outcomes)."""

    bundle_file: Path | None = None
    crl_folder: Path | None = Field(
        default=None, description="CRLs (DER or PEM) dropped here by IT staff, for issuers of signers")
    signer_map_file: Path | None = Field(
        default=None,
        description="which certificate signs for which OrganId (YAML); none: every signer unbound")
    fetch_revocation: bool = Field(
        default=True, description="fetch CRLs and OCSP answers the certificates name, in the background")


# --- the axis ---------------------------------------------------------------------------------

def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _http_url(value: str, *, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL — e.g. https://{what}.example.gov.vn/path")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port") from None
    return value


class RetryConfig(_Section):
    """``axis.retry:`` — how long ONE call to the axis is retried on network trouble and 5xx
    (full-jitter backoff) before the item's attempt counts as failed."""

    max_attempts: int = Field(default=5, ge=1, le=100)
    max_total_seconds: float = Field(default=120.0, ge=0)
    initial_backoff: float = Field(default=1.0, ge=0, description="seconds")
    max_backoff: float = Field(default=30.0, ge=0, description="seconds")


class AxisConfig(_Section):
    """``axis:`` — the national axis endpoint and our credentials on it."""

    endpoint: str
    systemid: str | None = Field(default=None, description="default: agency.organ_id")
    secret_file: Path | None = None
    secret_env: str | None = None
    secret_credential: str | None = None
    connect_timeout: float = Field(default=10.0, gt=0, le=600, description="seconds")
    read_timeout: float = Field(default=60.0, gt=0, le=3600, description="seconds")
    ca_bundle: Path | None = None
    proxy: str | None = None
    allow_plain_http: bool = Field(default=False, description="http:// to a non-loopback host")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    permanent_codes: list[str] | None = Field(default=None, description="default: the client's list")
    auth_codes: list[str] | None = None
    secret: SecretStr | None = Field(default=None, exclude=True, repr=False)
    _deferred: bool = PrivateAttr(default=False)
    _config_file: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secret(cls, data: Any) -> Any:
        return _refuse_inline(data, ("secret",))

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _http_url(value, what="axis")

    @field_validator("proxy")
    @classmethod
    def _proxy(cls, value: str | None) -> str | None:
        return None if not value else _http_url(value, what="proxy")

    @field_validator("permanent_codes", "auth_codes", mode="before")
    @classmethod
    def _codes_as_text(cls, value: Any) -> Any:
        return [str(code) for code in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> AxisConfig:
        parts = urlsplit(self.endpoint)
        if parts.scheme == "http" and not _is_loopback(parts.hostname) and not self.allow_plain_http:
            raise SecretSourceError("endpoint", f"{self.endpoint!r} is plain HTTP to another host: "
                                    "the documents would travel unencrypted — use https://, or set "
                                    "axis.allow_plain_http: true for a test axis")
        self.secret = _secret(self, "secret", info, required=True)
        self._deferred = not (info.context or {}).get("resolve_secrets", True)
        return self

    def resolved_secret(self) -> SecretStr:
        """The axis secret (read now if loading skipped the secrets)."""
        if self._deferred:
            self.secret = _resolve_later(self, "axis", "secret", required=True)
            self._deferred = False
        assert self.secret is not None
        return self.secret


# --- journal, folders, schedules ---------------------------------------------------------------

class JournalConfig(_Section):
    """``journal:`` — where the connector's durable state lives."""

    url: str = DEFAULT_JOURNAL_URL
    instance: str | None = Field(
        default=None, description="this installation's name in the journal and in the exchange "
        "folder claims (default: the host name; `run --instance` overrides it)")
    send_any_instance: bool = Field(
        default=False, description="send/finish items another instance took in (only when every "
        "connector sharing the journal also shares state_dir and the exchange folders)")

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None

        try:
            return check_instance(value)
        except ConfigError as error:
            raise ValueError(f"{error.message} — {error.hint}") from None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        # SQLAlchemy (≈ 0.2 s) is imported when a URL is checked, not with this module: every
        # command of the CLI imports it to register its arguments, most never load a config.
        from connector.journal.engine import parse_journal_url

        try:
            parse_journal_url(value)
        except ConfigError as error:
            raise ValueError(f"{error.message.removeprefix('journal.url ')} — {error.hint}") from None
        return value


class FoldersConfig(_Section):
    """``exchange:`` — the folder contract (docs/folder-contract.md)."""

    enabled: bool = True
    root: Path = DEFAULT_EXCHANGE_ROOT
    settle_seconds: float | None = Field(default=None, ge=0,
                                         description="off: readiness by rename/document.yaml only")
    rescan_seconds: float = Field(default=30.0, gt=0, le=3600)
    watch: bool = Field(default=True, description="inotify (watchdog) for low latency")
    max_metadata_mb: float = Field(
        default=1.0, gt=0, le=64,
        description="document.yaml and status files larger than this are refused unread")
    group: str | None = Field(
        default=None, description="the group the tree is given to (a hub unit's own DMS "
        "group, so that one unit's DMS user cannot read another's inbox); default: as created")


class SchedulesConfig(_Section):
    """``schedules:`` — how often each loop runs (seconds)."""

    axis_poll_seconds: float = Field(default=60.0, ge=1, le=86_400,
                                     description="a unit that received something lately (a hub: 30)")
    idle_poll_seconds: float | None = Field(
        default=None, ge=1, le=86_400, description="a unit that received nothing for "
        "active_window_seconds, asked with the axis's count calls; default: axis_poll_seconds "
        "(a hub: 600)")
    active_window_seconds: float = Field(default=3600.0, ge=0, le=7 * 86_400)
    poll_concurrency: int = Field(default=4, ge=1, le=64, description="units polled at once")
    dms_poll_seconds: float = Field(default=30.0, ge=1, le=86_400)
    retry_sweep_seconds: float = Field(default=30.0, ge=1, le=86_400)
    retention_seconds: float = Field(default=86_400.0, ge=60)


class SignatureAction(str, enum.Enum):
    QUARANTINE = "quarantine"
    DELIVER = "deliver"  # accept, with the outcome in metadata.json and a warning in the log


class SignaturePolicy(_Section):
    invalid: SignatureAction = SignatureAction.QUARANTINE
    absent: SignatureAction = SignatureAction.DELIVER
    unverifiable: SignatureAction = SignatureAction.DELIVER
    untrusted: SignatureAction = SignatureAction.DELIVER
    expired: SignatureAction = SignatureAction.DELIVER
    wrong_signer: SignatureAction = SignatureAction.QUARANTINE
    revoked: SignatureAction = SignatureAction.QUARANTINE
    unbound: SignatureAction = SignatureAction.DELIVER
    revocation_unknown: SignatureAction = Field(
        default=SignatureAction.DELIVER, description="quarantine: strict, when revocation cannot be told")

    def action_for(self, state: str) -> SignatureAction:
        """The action for an outcome (``wrong-signer`` reads ``wrong_signer``); unknown: quarantine."""
        return getattr(self, state.replace("-", "_"), SignatureAction.QUARANTINE)


class InboxConfig(_Section):
    """``inbox:`` — what happens to received documents."""

    send_arrived_status: bool = Field(default=True, description="send 01 once a document is stored")
    signature_policy: SignaturePolicy = Field(default_factory=SignaturePolicy)
    dedupe_window_days: int = Field(default=30, ge=1, le=3650)


DEFAULT_PLAIN_EXTENSIONS = ["pdf", "doc", "docx", "xls", "xlsx", "zip"]


REMOVED_OUTBOUND_KEYS = ("packaging_processes", "send_processes")
"""``outbound:`` keys of the worker pools that were removed (one process does the work)."""


class OutboundConfig(_Section):
    """``outbound:`` — sending documents and statuses."""

    concurrency: int = Field(default=4, ge=1, le=64)
    max_attempts: int = Field(default=10, ge=1, le=1000, description="per item, across restarts")
    retry_initial_seconds: float = Field(default=30.0, ge=0)
    retry_max_seconds: float = Field(default=3600.0, ge=0)
    zip_other_files: bool = Field(default=True, description="send other files as a one-entry ZIP")
    plain_extensions: list[str] = Field(default_factory=lambda: list(DEFAULT_PLAIN_EXTENSIONS))
    check_recipients: bool = Field(default=True, description="against the axis's agency list")
    agency_list_refresh_seconds: float = Field(default=86_400.0, ge=60)

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any, info: ValidationInfo) -> Any:
        """Keys of earlier releases that no longer do anything: accepted with one warning each
        for one release (docs/decisions.md), so that an upgraded site's config keeps working."""
        if not isinstance(data, dict):
            return data
        warnings = (info.context or {}).get("warnings", [])
        warnings.extend(f"outbound.{key}: removed; ignored (the daemon packages and sends in its "
                        "own process) — delete it from the config"
                        for key in REMOVED_OUTBOUND_KEYS if key in data)
        return {key: value for key, value in data.items() if key not in REMOVED_OUTBOUND_KEYS}

    @field_validator("plain_extensions")
    @classmethod
    def _extensions(cls, value: list[str]) -> list[str]:
        return [extension.lower().lstrip(".") for extension in value]


class EdxmlLimitsConfig(_Section):
    """``edxml:`` — size limits for packages we build and accept."""

    max_package_size_mb: int = Field(default=250, ge=1, le=4096)
    max_zip_entries: int = Field(default=500, ge=1)
    max_zip_uncompressed_mb: int = Field(default=256, ge=1)
    max_zip_expansion: float = Field(
        default=4.0, gt=0, description="a zip part's entries may unpack to this many times the "
                                       "package's size (and never more than max_zip_uncompressed_mb)")
    max_zip_ratio: int = Field(default=100, ge=1, description="uncompressed/compressed, zip bombs")

    @property
    def max_package_size(self) -> int:
        return self.max_package_size_mb * 1024 * 1024


class RetentionConfig(_Section):
    """``retention:`` — history purged after N days. Received documents are never deleted."""

    history_days: int = Field(default=180, ge=1)
    sent_archive_days: int = Field(default=90, ge=1)
    failed_archive_days: int = Field(default=180, ge=1)


class ReadinessConfig(_Section):
    certificate_min_days: float = Field(default=0, ge=0, description="not ready below this")
    axis_poll_intervals: float = Field(default=3, gt=0, description="K: last axis contact within K polls")
    min_free_disk_mb: int = Field(default=512, ge=0)
    max_clock_skew_seconds: float = Field(default=120, gt=0)
    liveness_timeout_seconds: float = Field(default=120, gt=0)


class HealthConfig(_Section):
    """``health:`` — /healthz, /readyz and /metrics on one small HTTP listener."""

    enabled: bool = True
    listen: str = "127.0.0.1:9640"
    readiness: ReadinessConfig = Field(default_factory=ReadinessConfig)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        split_listen(value)
        return value

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


def split_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value.strip())
    if not match:
        raise ValueError(f"{value!r} is not HOST:PORT — e.g. 127.0.0.1:9640 or [::1]:9640")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range 1-65535")
    return host, port


class LogLevel(str, enum.Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LoggingConfig(_Section):
    """``logging:`` — JSON lines on stdout (journald) and optionally a rotating file."""

    level: LogLevel = LogLevel.INFO
    json_lines: bool = Field(default=True, alias="json")
    file: Path | None = None
    file_max_mb: int = Field(default=10, ge=1)
    file_backups: int = Field(default=5, ge=0)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("level", mode="before")
    @classmethod
    def _level_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


# --- the whole file -----------------------------------------------------------------------------

class Settings(_Section):
    """Everything in ``connector.yaml``. Load it with :func:`load_config`."""

    agency: AgencyConfig
    certificate: CertificateConfig
    trust: TrustConfig = Field(default_factory=TrustConfig)
    axis: AxisConfig
    journal: JournalConfig = Field(default_factory=JournalConfig)
    state_dir: Path = DEFAULT_STATE_DIR
    timezone: str = Field(default="Asia/Ho_Chi_Minh", description="for timestamps we write")
    exchange: FoldersConfig | None = Field(default_factory=FoldersConfig)
    database: DmsDatabaseSettings | None = None
    schedules: SchedulesConfig = Field(default_factory=SchedulesConfig)
    inbox: InboxConfig = Field(default_factory=InboxConfig)
    outbound: OutboundConfig = Field(default_factory=OutboundConfig)
    edxml: EdxmlLimitsConfig = Field(default_factory=EdxmlLimitsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    _source: Path | None = PrivateAttr(default=None)
    _warnings: list[str] = PrivateAttr(default_factory=list)
    _secrets_resolved: bool = PrivateAttr(default=True)
    _units: list[Settings] | None = PrivateAttr(default=None)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} — e.g. Asia/Ho_Chi_Minh or UTC") from None
        return value

    @model_validator(mode="after")
    def _agency_side(self) -> Settings:
        folders = self.exchange is not None and self.exchange.enabled
        if not folders and self.database is None:
            raise ValueError("no agency side: enable exchange (folders) or configure database")
        return self

    @property
    def source(self) -> Path | None:
        """The file these settings came from."""
        return self._source

    @property
    def warnings(self) -> list[str]:
        """Things that work but should be fixed (e.g. a world-readable secret file)."""
        return list(self._warnings)

    @property
    def units(self) -> list[Settings]:
        """Every unit this file serves, each as complete settings (a hub: ``agencies:`` /
        ``agencies_dir:``, see connector/config_units.py; a single-agency file: itself, a hub
        of one). The shared sections are the same in all of them."""
        return list(self._units) if self._units else [self]

    @property
    def is_hub(self) -> bool:
        """True when the file lists its units (``agencies:`` or ``agencies_dir:``)."""
        return self._units is not None

    @property
    def systemid(self) -> str:
        return self.axis.systemid or self.agency.organ_id

    def secret_values(self) -> list[str]:
        """Every secret value, for the log redactor (never log these)."""
        values = [secret.get_secret_value() for secret in (self.axis.secret, *self.certificate.secrets())
                  if secret is not None]
        journal_password = _url_password(self.journal.url)
        if journal_password:
            values.append(journal_password)
        if self.database is not None and hasattr(self.database, "resolved_url"):
            try:
                values.append(self.database.resolved_url())
            except ConfigError:
                if self._secrets_resolved:
                    raise
                # not readable here (an operator shell): the command fails later if it needs it
        return values

    @property
    def secrets_resolved(self) -> bool:
        """False when loaded with ``resolve_secrets=False`` (secrets are read on first use)."""
        return self._secrets_resolved

    @classmethod
    def example(cls) -> Settings:
        """The documented example (``config/connector.example.yaml``), for tests and `check`.
        Its secrets must be reachable (e.g. CREDENTIALS_DIRECTORY with ``axis-secret``)."""
        return load_config(EXAMPLE_CONFIG)


# --- loading ------------------------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice (YAML keeps the last one silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (first on line {seen[key] + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_ENV_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{[^}]*\}?")


def substitute_env(value: Any, *, environ: typing.Mapping[str, str] | None = None,
                   path: str = "") -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree.

    Done after parsing, so a variable's content can never change the YAML structure. ``$${``
    writes a literal ``${``. An unset variable without a default is an error naming the key.
    """
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {key: substitute_env(item, environ=env, path=f"{path}.{key}" if path else str(key))
                for key, item in value.items()}
    if isinstance(value, list):
        return [substitute_env(item, environ=env, path=f"{path}[{index}]")
                for index, item in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name is None:
            raise ConfigError(f"{path or '(top level)'}: {text!r} is not a valid reference",
                              hint="write ${NAME} or ${NAME:-default} (NAME: letters, digits, _), "
                                   "or $${ for a literal ${")
        current = env.get(name)
        if current is None or (current == "" and default is not None):
            if default is not None:
                return default
            raise ConfigError(f"{path or '(top level)'}: environment variable {name} is not set",
                              hint=f"export {name}, or write ${{{name}:-default}} in the config")
        return current

    return _ENV_REFERENCE.sub(replace, value)


def load_config(path: str | os.PathLike[str], *, environ: typing.Mapping[str, str] | None = None,
                resolve_secrets: bool = True) -> Settings:
    """Read, substitute, validate and resolve secrets; raise ConfigError (one line) on any problem.

    ``resolve_secrets=False`` is for operator commands run from a shell that does not have the
    service's credentials (no ``$CREDENTIALS_DIRECTORY``): where each secret is must still be
    well-formed, but it is read only when a command uses it (``axis.client_settings``,
    ``certificate.resolved_password()``, ``database.resolved_url()``), and a missing one is then
    a ConfigError naming its key. ``status``, ``inbox list`` or ``journal backup`` never need one.

    A file with ``agencies:`` or ``agencies_dir:`` serves several units (a hub): the result is
    the first unit's settings, and :attr:`Settings.units` all of them
    (:mod:`connector.config_units`)."""
    file = str(path)
    data = read_yaml_mapping(Path(path), environ=environ)
    if "agencies" in data or "agencies_dir" in data:
        return _hub_settings(data, file=file, environ=environ, resolve_secrets=resolve_secrets)
    return settings_from_mapping(data, file=file, resolve_secrets=resolve_secrets)


def _hub_settings(data: dict[str, Any], *, file: str, environ: typing.Mapping[str, str] | None,
                  resolve_secrets: bool) -> Settings:
    """Every unit validated as a whole agency's file (connector/config_units.py says why); the
    first unit's settings returned, all of them in :attr:`Settings.units`."""
    entries = unit_mappings(data, file=file, read_mapping=read_yaml_mapping,
                            default_root=DEFAULT_EXCHANGE_ROOT, environ=environ)
    labelled = [(label, settings_from_mapping(mapping, file=label, resolve_secrets=resolve_secrets))
                for label, mapping in entries]
    check_distinct(labelled)
    units = [settings for _, settings in labelled]
    for settings in units:
        settings._units = units
        settings._source = Path(file)
    return units[0]


def read_yaml_mapping(path: Path, *, environ: typing.Mapping[str, str] | None = None,
                      what: str = "sections (agency:, axis:, ...)") -> dict[str, Any]:
    """One YAML file as a mapping, ``${VAR}`` substituted; ConfigError naming the file."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("no such file", file=file,
                          hint="give --config FILE; start from config/connector.example.yaml") from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=file, hint="save the file as UTF-8") from None
    except OSError as error:
        raise ConfigError(error.strerror or str(error), file=file) from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"not valid YAML: {problem}", file=file,
                          line=(mark.line + 1) if mark else None,
                          hint="fix the syntax (indent with spaces, quote values with ':' or '#')") from None
    if raw is None:
        raise ConfigError("the file is empty", file=file, hint=_HINT)
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping of {what} at the top level", file=file, hint=_HINT)
    try:
        return substitute_env(raw, environ=environ)
    except ConfigError as error:
        error.file = file
        raise


def settings_from_mapping(data: dict[str, Any], *, file: str | None = None,
                          resolve_secrets: bool = True) -> Settings:
    """Validate an already-parsed (and substituted) mapping. ``file`` only labels errors."""
    warnings: list[str] = []
    try:
        settings = Settings.model_validate(data, context={"warnings": warnings,
                                                          "resolve_secrets": resolve_secrets})
    except ValidationError as error:
        raise ConfigError(describe_config_error(error), file=file, hint=_HINT) from None
    except SecretSourceError as error:  # pragma: no cover - pydantic wraps these; kept for safety
        raise ConfigError(f"{error.key}: {error}", file=file, hint=_HINT) from None
    settings._source = Path(file) if file else None
    settings._warnings = warnings
    settings._secrets_resolved = resolve_secrets
    settings.axis._config_file = file
    settings.certificate.remember_file(file)
    if resolve_secrets and settings.database is not None and hasattr(settings.database, "resolved_url"):
        try:  # read the DMS database URL now, so a missing url_file fails at load like any secret
            settings.database.resolved_url()
        except ConfigError as error:
            error.file = error.file or file
            raise
    return settings


# --- error messages -----------------------------------------------------------------------------

def describe_config_error(error: ValidationError) -> str:
    """One clause per problem, ``key.path: what is wrong — what to do``, joined with ``; ``."""
    parts = []
    for problem in error.errors(include_url=False):
        loc = [str(part) for part in problem["loc"]]
        kind = problem["type"]
        cause = (problem.get("ctx") or {}).get("error")
        message = problem["msg"].removeprefix("Value error, ")
        if isinstance(cause, SecretSourceError):
            loc = [*loc, cause.key]
            message = str(cause)
        key = _key_path(loc)
        if kind == "missing":
            parts.append(f"{key}: missing — add it")
        elif kind == "extra_forbidden":
            parts.append(f"{key}: unknown key{_did_you_mean(loc)}")
        elif kind == "string_pattern_mismatch" and loc and loc[-1] == "organ_id":
            parts.append(f"{key}: {_shown(problem.get('input'), key)} is not an OrganId — "
                         "expected like 000.00.00.G22 (digits.digits.digits.letter+2 digits)")
        elif kind == "enum":
            parts.append(f"{key}: {_shown(problem.get('input'), key)} is not allowed — "
                         f"{problem.get('ctx', {}).get('expected', message)}")
        elif kind in ("model_type", "dict_type") and loc:
            parts.append(f"{key}: expected a section of keys (key: value lines indented below it)")
        else:
            shown = problem.get("input")
            suffix = "" if isinstance(shown, dict | list) or shown is None else \
                f" (got {_shown(shown, key)})"
            parts.append(f"{key}: {message}{suffix}")
    return "; ".join(parts)


def _key_path(loc: list[str]) -> str:
    path = ""
    for part in loc:
        if part.isdigit():
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(top level)"


def _shown(value: Any, key: str) -> str:
    if any(word in key for word in ("secret", "password")):
        return "(hidden)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _did_you_mean(loc: list[str]) -> str:
    """Suggest the closest known key of the section the unknown key was found in."""
    known = _known_keys(Settings, loc[:-1])
    if not known:
        return ""
    close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
    return f" — did you mean {close[0]!r}?" if close else f" — known keys here: {', '.join(sorted(known))}"


def _known_keys(model: Any, loc: list[str]) -> list[str]:
    for part in loc:
        if part.isdigit():
            continue
        model = _model_in(model)
        if model is None or part not in model.model_fields:
            return []
        model = model.model_fields[part].annotation
    model = _model_in(model)
    if model is None:
        return []
    keys = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        keys.append(field.alias or name)
    return keys


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings section inside a field's annotation (``Foo``, ``Foo | None``, ``list[Foo]``),
    or None for a plain value: the key walks of :func:`_did_you_mean` and the example-file test."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _url_password(url: str) -> str | None:
    """The password inside a database URL (``postgresql+psycopg://user:PASSWORD@host/db``)."""
    from sqlalchemy.engine import make_url  # as in JournalConfig._url: when a URL is read
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None
