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

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from connector.axis.agency_directory import AgencyDirectory
from connector.axis.client import AxisClient, AxisSettings, RetryPolicy
from connector.config import AxisConfig, CertificateConfig, KeySourceConfig, Settings
from connector.dms.database.side import DatabaseSide
from connector.dms.folder.claims import check_instance, default_instance
from connector.dms.folder.side import FolderSide
from connector.edxml import model
from connector.edxml.attachments import ZipConvention, ZipLimits
from connector.edxml.keyring import KeyRing, RingEntry, keys_in_folder
from connector.edxml.keys import SigningKey
from connector.edxml.revocation_fetch import RevocationFetcher
from connector.edxml.tokens import TokenKeySpec
from connector.edxml.trust import load_trust_bundle, signer_problem
from connector.edxml.trust_store import TrustStore
from connector.edxml.xmlparse import ParseLimits
from connector.errors import CertificateError, ConfigError, TokenPinRefused
from connector.journal import Journal
from connector.journal.package_store import PackageStore
from connector.logs import get_logger

log = get_logger(__name__)
_UNBUILT: Any = object()  # the trust store not built yet (None is a real value: no bundle)

AGENCY_CACHE_FILE = "agencies.json"
PACKAGE_STORE_DIR = "packages"
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


def load_keyring(config: CertificateConfig, bundle: Path | None) -> KeyRing:
    """Every key the ``certificate:`` section names — the current one and the ``next`` with its
    moment to switch, or every key in the ``folder`` — checked the way receivers will check
    them (key usage, chain to our own bundle), whatever their dates: which one signs, and
    whether any can, is the ring's answer per package (:meth:`KeyRing.active`).

    Raises :class:`~connector.errors.CertificateError` naming the file or token (never the
    password or PIN); :class:`~connector.errors.SignerUnavailable` when a token is absent.
    ``bundle`` is our own trust bundle (``trust.bundle_file``), the chains are checked against."""
    if config.folder is not None:
        secret = config.resolved_password()
        keys, problems = keys_in_folder(config.folder, secret.get_secret_value() if secret else None)
        for problem in problems:
            log.warning("certificate_file_skipped", problem=problem,
                        note="the other certificates in the folder are used")
        if not keys:
            raise CertificateError("no readable key and certificate in the folder",
                                   file=str(config.folder),
                                   hint="put the agency's .p12 (or .pem key + certificate) there")
        entries = [RingEntry(key) for key in keys]
        source = str(config.folder)
    else:
        entries = [RingEntry(load_key(config))]
        if config.next is not None:
            entries.append(RingEntry(load_key(config.next), config.next.switch_at))
        source = entries[0].key.source
    now = dt.datetime.now(dt.timezone.utc)
    for entry in entries:
        if entry.key.not_after > now:  # an expired key is refused for its dates, per package
            check_signer(entry.key, bundle, entry.starts())
    return KeyRing(entries, source=source)


def load_key(source: KeySourceConfig) -> SigningKey:
    """One key and its certificate (PKCS#12, PEM or token), dates not checked."""
    if source.token is not None:
        token = source.token
        spec = TokenKeySpec(module=token.module, token_label=token.token_label,
                            token_serial=token.token_serial, key_label=token.key_label,
                            key_id=token.key_id, pin=token.resolved_pin().get_secret_value())
        return SigningKey.from_token(spec, source.cert_file, check_dates=False)
    secret = source.resolved_password()
    password = secret.get_secret_value() if secret is not None else None
    if source.p12_file is not None:
        return SigningKey.from_pkcs12(source.p12_file, password, check_dates=False)
    if source.key_file is not None and source.cert_file is not None:
        return SigningKey.from_pem(source.key_file, source.cert_file, password, check_dates=False)
    # the settings refuse this already; said again for a Settings built in code
    raise ConfigError("certificate: give p12_file, key_file with cert_file, or token",
                      element="certificate")


def check_signer(key, bundle: Path | None, moment: dt.datetime | None = None) -> None:
    """Refuse, with what to do, a certificate that receivers would refuse: one that may not
    sign, or whose chain does not lead to our own trust bundle (checked when one is set) at
    ``moment`` — when the key starts signing, kept inside its validity (an expired key is
    refused for its dates, per package, not here)."""
    anchors = load_trust_bundle(bundle) if bundle is not None else None
    now = dt.datetime.now(dt.timezone.utc)
    at = min(max(moment or now, now), key.not_after)
    problem = signer_problem(key.certificate, list(key.chain), anchors, at)
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
                 axis_session: Any = None, hub: Runtime | None = None) -> None:
        self.settings = settings
        self.hub = hub
        """A unit of a hub other than the first: the parts every unit shares (the journal's
        engine, the package store, the trust store, the agency directory) are ``hub``'s."""
        self.instance = check_instance(folder_instance or settings.journal.instance
                                       or default_instance())
        """WHY one name: an item's journal row and its claim in ``work/`` must belong to the same
        installation, or after a restart the journal hands out items whose folder claim this
        process does not own (and the other way round)."""
        self.folder_instance = self.instance
        self._axis_session = axis_session
        self._key_lock = threading.Lock()
        self._keyring: KeyRing | None = None
        self._pin_refused: TokenPinRefused | None = None
        self._trust_lock = threading.Lock()
        self._trust_store: Any = _UNBUILT
        self._revocation_fetcher: Any = None
        self._opened: list[Any] = []

    # -- parts -----------------------------------------------------------------------------------
    @cached_property
    def journal(self):
        if self.hub is not None:
            return self.hub.journal.for_agency(self.settings.agency.organ_id)
        journal = Journal.open(self.settings.journal.url,
                               max_attempts=self.settings.outbound.max_attempts,
                               instance=self.instance,
                               any_instance=self.settings.journal.send_any_instance,
                               agency=self.settings.agency.organ_id)
        self._opened.append(journal)
        return journal

    @property
    def keyring(self) -> KeyRing:
        """The unit's keys (:class:`connector.edxml.keyring.KeyRing`), loaded at first use and
        replaced by :meth:`reload_certificate`. A token that is absent at load is tried again at
        the next use; one that refused the PIN is not, until the next reload."""
        with self._key_lock:
            if self._keyring is None:
                if self._pin_refused is not None:
                    raise self._pin_refused
                try:
                    self._keyring = load_keyring(self.settings.certificate,
                                                 self.settings.trust.bundle_file)
                except TokenPinRefused as refused:
                    self._pin_refused = refused
                    raise
            return self._keyring

    @property
    def loaded_keyring(self) -> KeyRing | None:
        """The ring if it is loaded (None: not yet, or its token was absent), without loading."""
        with self._key_lock:
            return self._keyring

    @property
    def signing_key(self) -> SigningKey:
        """The key that signs the next package (the ring's choice now: a switch to the next
        certificate happens between two documents)."""
        return self.keyring.active()

    def reload_certificate(self, certificate: CertificateConfig | None = None) -> KeyRing:
        """Read the keys and certificates again (SIGHUP after a renewal), with the
        ``certificate:`` section just read from the file when given (its passwords and PIN read
        again too), else the one loaded at start. On error the old ring and section stay in use
        and the error is raised for the caller to log; a refused PIN is forgotten, so a
        corrected PIN is tried once."""
        config = certificate or self.settings.certificate
        with self._key_lock:
            self._pin_refused = None
        try:
            ring = load_keyring(config, self.settings.trust.bundle_file)
        except TokenPinRefused as refused:
            with self._key_lock:
                if self._keyring is None:
                    self._pin_refused = refused
            raise
        with self._key_lock:
            old, self._keyring = self._keyring, ring
            self.settings.certificate = config
        if old is not None:
            old.close()
        return ring

    def probe_signer(self) -> None:
        """Sign a few bytes with the key in use: True proof that its token answers (called
        while signing is paused, to resume as soon as the token is back). Raises as signing would."""
        key = self.signing_key
        key.private_key.sign(b"edxml-connector probe", padding.PKCS1v15(), hashes.SHA256())

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

    def replace_axis(self, axis: AxisConfig) -> None:
        """New axis credentials (a reload with a changed secret or systemid): the next call
        uses a client built from them; the old one is closed."""
        old = self.__dict__.pop("axis", None)
        self.__dict__.pop("axis_settings", None)
        self.settings.axis = axis
        if old is not None:
            if old in self._opened:
                self._opened.remove(old)
            old.close()

    @cached_property
    def store(self):
        if self.hub is not None:
            return self.hub.store
        return PackageStore(self.settings.state_dir / PACKAGE_STORE_DIR)

    @cached_property
    def directory(self):
        if self.hub is not None:
            return self.hub.directory
        # The client is reached only on refresh: an operator command that merely consults the
        # directory in the journal (``send``) needs neither the axis nor its secret.
        return AgencyDirectory(_LazyAxis(self), self.journal.directory,
                               legacy_cache_file=self.settings.state_dir / AGENCY_CACHE_FILE)

    @cached_property
    def agency(self):
        return agency_organization(self.settings)

    @cached_property
    def folder(self):
        """The folder side, or None when ``exchange`` is off."""
        exchange = self.settings.exchange
        if exchange is None or not exchange.enabled:
            return None
        side = FolderSide(exchange.root, instance=self.folder_instance, group=exchange.group,
                          settle_seconds=exchange.settle_seconds, zip_limits=self.zip_limits,
                          max_metadata_bytes=int(exchange.max_metadata_mb * 1024 * 1024))
        self._opened.append(side)
        return side

    @cached_property
    def database(self):
        """The DMS database side, or None when ``database`` is not configured."""
        if self.settings.database is None:
            return None
        side = DatabaseSide(self.settings.database, **self.database_unit())
        self._opened.append(side)
        return side

    def database_unit(self) -> dict[str, Any]:
        """On a DMS database shared by a hub's units: this unit's value in the unit columns,
        and — for the first unit — the other units' values, to refuse rows of none of them."""
        units = self.settings.units
        if not self.settings.is_hub:
            return {}

        def value(settings: Settings) -> str:
            database = settings.database
            return (database.unit_value if database is not None and database.unit_value
                    else settings.agency.organ_id)

        mine = value(self.settings)
        others = None
        if self.hub is None:
            others = frozenset(value(settings) for settings in units) - {mine}
        return {"unit": mine, "other_units": others}

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
        if self.hub is not None:
            return self.hub.trust_store  # one trust store for the hub (decisions.md)
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
            self.keyring  # noqa: B018
        self.axis  # noqa: B018
        self.trust_store  # noqa: B018
        self.store  # noqa: B018
        self.directory  # noqa: B018
        self.folder  # noqa: B018
        self.database  # noqa: B018
        return self

    def close(self) -> None:
        with self._key_lock:
            ring, self._keyring = self._keyring, None
        if ring is not None:
            ring.close()
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
