"""From validated settings to the live objects the pipelines and the operator commands use.

WHY one place: the daemon, ``check`` and every operator command (``status``, ``retry``,
``quarantine release`` ...) need the same journal, the same signing key, the same axis client and
the same agency sides, built the same way from the same YAML. Each part is opened lazily on
first use, so that ``status`` does not need the certificate and ``retry`` does not reach the
axis; the daemon calls :meth:`Runtime.open_all` to fail at start-up, not at the first document.

Use::

    settings = load_config(path)
    with Runtime(settings) as runtime:
        runtime.journal.counts_by_state()
        runtime.side("folder").unclaim(item)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from connector.axis.agency_directory import AgencyDirectory
from connector.axis.client import AxisClient, AxisSettings, RetryPolicy
from connector.config import AxisConfig, Settings
from connector.dms.database.side import DatabaseSide
from connector.dms.folder.claims import check_instance, default_instance
from connector.dms.folder.side import FolderSide
from connector.edxml import model
from connector.edxml.attachments import ZipConvention, ZipLimits
from connector.edxml.keys import SigningKey
from connector.edxml.revocation_fetch import RevocationFetcher
from connector.edxml.trust import load_trust_bundle, signer_problem
from connector.edxml.trust_store import TrustStore
from connector.edxml.xmlparse import ParseLimits
from connector.errors import CertificateError, ConfigError
from connector.journal import Journal
from connector.journal.package_store import PackageStore
from connector.logs import get_logger

log = get_logger(__name__)
_UNBUILT: Any = object()  # the trust store not built yet (None is a real value: no bundle)

AGENCY_CACHE_FILE = "agencies.json"
PACKAGE_STORE_DIR = "packages"
CONNECTOR_SOURCE = "connector"
"""``source`` of outgoing items the connector makes itself (status 01, a refusal 02...)."""


def axis_settings(axis: AxisConfig, organ_id: str) -> AxisSettings:
    """The axis client's settings from the ``axis:`` section, for the agency ``organ_id`` (its
    systemid too unless ``axis.systemid`` says otherwise). Reads the secret."""
    extra: dict[str, Any] = {}
    if axis.permanent_codes is not None:
        extra["permanent_codes"] = frozenset(axis.permanent_codes)
    if axis.auth_codes is not None:
        extra["auth_codes"] = frozenset(axis.auth_codes)
    return AxisSettings(
        endpoint=axis.endpoint, systemid=axis.systemid or organ_id,
        secret=axis.resolved_secret().get_secret_value(), organ_id=organ_id,
        connect_timeout=axis.connect_timeout, read_timeout=axis.read_timeout,
        ca_bundle=str(axis.ca_bundle) if axis.ca_bundle else None, proxy=axis.proxy,
        retry=RetryPolicy(max_attempts=axis.retry.max_attempts,
                          max_total_seconds=axis.retry.max_total_seconds,
                          initial_backoff=axis.retry.initial_backoff,
                          max_backoff=axis.retry.max_backoff), **extra)


def load_signing_key(settings: Settings):
    """The agency's key and certificate (PKCS#12 or PEM) with the configured password.
    Raises :class:`~connector.errors.CertificateError` naming the file (never the password)."""
    config = settings.certificate
    secret = config.resolved_password()
    password = secret.get_secret_value() if secret is not None else None
    if config.p12_file is not None:
        key = SigningKey.from_pkcs12(config.p12_file, password)
    elif config.key_file is not None and config.cert_file is not None:
        key = SigningKey.from_pem(config.key_file, config.cert_file, password)
    else:  # the settings refuse this already; said again for a Settings built in code
        raise ConfigError("certificate: give p12_file, or key_file with cert_file",
                          element="certificate")
    check_signer(key, settings.trust.bundle_file)
    return key


def check_signer(key, bundle: Path | None) -> None:
    """Refuse, with what to do, a certificate that receivers would refuse: one that may not
    sign, or whose chain does not lead to our own trust bundle (checked when one is set)."""
    anchors = load_trust_bundle(bundle) if bundle is not None else None
    problem = signer_problem(key.certificate, list(key.chain), anchors,
                             dt.datetime.now(dt.timezone.utc))
    if problem:
        raise CertificateError(f"certificate {key.subject} cannot sign: {problem}",
                               file=key.source or None,
                               hint="install a certificate that can sign, then reload")


def agency_organization(settings: Settings):
    """The ``From`` of every package we send, from ``agency:``."""
    agency = settings.agency
    return model.Organization(
        organ_id=agency.organ_id, organization_in_charge=agency.organization_in_charge,
        organ_name=agency.name, organ_add=agency.address, email=agency.email,
        telephone=agency.telephone, fax=agency.fax, website=agency.website)


class _LazyAxis:
    """Stands for ``runtime.axis`` until a call is made on it."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime.axis, name)


class Runtime:
    """The live objects of one connector, opened on first use and closed together.

    ``folder_instance`` (``run --instance``) overrides ``journal.instance``; the result names
    this installation ONCE for both the folder contract's claims and the journal's items (see
    :attr:`instance`). ``axis_session`` lets tests pass a prepared ``requests.Session``.
    """

    def __init__(self, settings: Settings, *, folder_instance: str | None = None,
                 axis_session: Any = None) -> None:
        self.settings = settings
        self.instance = check_instance(folder_instance or settings.journal.instance
                                       or default_instance())
        """WHY one name: an item's journal row and its claim in ``work/`` must belong to the same
        installation, or after a restart the journal hands out items whose folder claim this
        process does not own (and the other way round)."""
        self.folder_instance = self.instance
        self._axis_session = axis_session
        self._key_lock = threading.Lock()
        self._signing_key = None
        self._trust_lock = threading.Lock()
        self._trust_store: Any = _UNBUILT
        self._revocation_fetcher: Any = None
        self._opened: list[Any] = []

    # -- parts -----------------------------------------------------------------------------------
    @cached_property
    def journal(self):
        journal = Journal.open(self.settings.journal.url,
                               max_attempts=self.settings.outbound.max_attempts,
                               instance=self.instance,
                               any_instance=self.settings.journal.send_any_instance)
        self._opened.append(journal)
        return journal

    @property
    def signing_key(self):
        """The current signing key (replaced by :meth:`reload_certificate`)."""
        with self._key_lock:
            if self._signing_key is None:
                self._signing_key = load_signing_key(self.settings)
            return self._signing_key

    def reload_certificate(self):
        """Read the key and certificate again (SIGHUP after a rotation). On error the old key
        stays in use and the error is raised for the caller to log."""
        key = load_signing_key(self.settings)
        with self._key_lock:
            self._signing_key = key
        return key

    @cached_property
    def axis_settings(self):
        """The axis client's settings (:class:`connector.axis.client.AxisSettings`). Resolves the
        secret."""
        settings = axis_settings(self.settings.axis, self.settings.agency.organ_id)
        # A download larger than the package limit is cut off while it streams, not stored.
        # One kept-alive connection per send slot, plus the inbound poll's and the agency
        # list's: fewer, and connections beyond the pool are opened and thrown away each time.
        return dataclasses.replace(settings,
                                   max_package_size=self.settings.edxml.max_package_size,
                                   pool_size=self.settings.outbound.concurrency + 2)

    @cached_property
    def axis(self):
        client = AxisClient(self.axis_settings, session=self._axis_session)
        self._opened.append(client)
        return client

    @cached_property
    def store(self):
        return PackageStore(self.settings.state_dir / PACKAGE_STORE_DIR)

    @cached_property
    def directory(self):
        # The client is reached only on refresh: an operator command that merely consults the
        # cached list (``send``) needs neither the axis nor its secret.
        return AgencyDirectory(_LazyAxis(self), self.settings.state_dir / AGENCY_CACHE_FILE)

    @cached_property
    def agency(self):
        return agency_organization(self.settings)

    @cached_property
    def folder(self):
        """The folder side, or None when ``exchange`` is off."""
        exchange = self.settings.exchange
        if exchange is None or not exchange.enabled:
            return None
        side = FolderSide(exchange.root, instance=self.folder_instance,
                          settle_seconds=exchange.settle_seconds, zip_limits=self.zip_limits,
                          max_metadata_bytes=int(exchange.max_metadata_mb * 1024 * 1024))
        self._opened.append(side)
        return side

    @cached_property
    def database(self):
        """The DMS database side, or None when ``database`` is not configured."""
        if self.settings.database is None:
            return None
        side = DatabaseSide(self.settings.database)
        self._opened.append(side)
        return side

    @property
    def sides(self) -> dict[str, Any]:
        """Every configured agency side by its name ("folder", "database")."""
        found = {}
        for side in (self.folder, self.database):
            if side is not None:
                found[side.name] = side
        return found

    def side(self, name: str):
        """The side an outgoing item came from (its journal ``source``)."""
        sides = self.sides
        if name not in sides:
            raise ConfigError(f"no agency side {name!r} is configured",
                              hint="items from it can only be handled with that side enabled")
        return sides[name]

    # -- settings turned into library objects ----------------------------------------------------
    @cached_property
    def limits(self):
        return ParseLimits(max_package_size=self.settings.edxml.max_package_size)

    @cached_property
    def zip_limits(self):
        edxml = self.settings.edxml
        return ZipLimits(max_entries=edxml.max_zip_entries,
                         max_total_size=edxml.max_zip_uncompressed_mb * 1024 * 1024,
                         max_ratio=float(edxml.max_zip_ratio),
                         max_expansion=edxml.max_zip_expansion)

    @cached_property
    def zip_convention(self):
        outbound = self.settings.outbound
        return ZipConvention(enabled=outbound.zip_other_files,
                             as_is_extensions=frozenset(outbound.plain_extensions))

    @property
    def trust_bundle(self) -> Path | None:
        return self.settings.trust.bundle_file

    @property
    def trust_store(self):
        """What received signatures are judged against (:class:`connector.edxml.trust_store.
        TrustStore`; None without a bundle): built at the first use, rebuilt by
        :meth:`reload_trust`. The background revocation fetcher and its cache outlive reloads."""
        with self._trust_lock:
            if self._trust_store is _UNBUILT:
                self._trust_store = self._build_trust_store()
            return self._trust_store

    def reload_trust(self):
        """Re-read the bundle, the CRL folder and the signer mapping (SIGHUP). On error the
        previous store stays in use and the error is raised for the caller to log."""
        store = self._build_trust_store()
        with self._trust_lock:
            self._trust_store = store
        return store

    def _build_trust_store(self):
        trust = self.settings.trust
        if trust.fetch_revocation and self._revocation_fetcher is None:
            self._revocation_fetcher = RevocationFetcher()
            self._opened.append(self._revocation_fetcher)
        return TrustStore.from_files(trust.bundle_file, crl_folder=trust.crl_folder,
                                     signer_map=trust.signer_map_file,
                                     fetcher=self._revocation_fetcher if trust.fetch_revocation else None)

    # -- life cycle ------------------------------------------------------------------------------
    def open_all(self, *, signing_key: bool = True) -> Runtime:
        """Open every part now (the daemon's start): a bad certificate, journal URL, exchange
        tree or DMS database stops the start with one clear error. ``signing_key=False`` leaves
        the key to the caller (the daemon starts with an expired certificate, see daemon.py)."""
        self.journal  # noqa: B018 - opening is the point
        if signing_key:
            self.signing_key  # noqa: B018
        self.axis  # noqa: B018
        self.trust_store  # noqa: B018
        self.store  # noqa: B018
        self.directory  # noqa: B018
        self.folder  # noqa: B018
        self.database  # noqa: B018
        return self

    def close(self) -> None:
        while self._opened:
            part = self._opened.pop()
            try:
                part.close()
            except Exception as error:  # closing must go on with the other parts
                log.warning("close_failed", part=type(part).__name__, error=str(error))

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
