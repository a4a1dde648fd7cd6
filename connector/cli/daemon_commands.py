"""``edxml-connector run`` (the daemon) and ``edxml-connector check`` (is everything reachable?).

``check`` is what an operator runs after editing the config and before starting the service: one
``OK``/``FAIL`` line per thing the daemon depends on, each FAIL saying what to fix, and a non-zero
exit when anything fails. It changes nothing except creating missing exchange folders (which the
daemon would create at start anyway).

The daemon's and the runtime's modules (the pipelines, lxml, cryptography, SQLAlchemy...) are
imported inside the two commands, not at the top: every other command of the CLI imports this
module to register its arguments, and should not pay their start-up time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

from connector.config import Settings, load_config
from connector.errors import describe_error


def register(subparsers) -> None:
    """Add ``run`` and ``check``."""
    run = subparsers.add_parser(
        "run", help="run the connector daemon (outbound and inbound pipelines)",
        description="Run the connector until SIGTERM/SIGINT: takes documents from the agency side, "
                    "signs and sends them, polls the axis, stores and delivers what arrives. "
                    "SIGHUP reloads the certificate, the trust store and the log level. Logs are JSON "
                    "lines on stdout.")
    run.add_argument("--config", required=True, metavar="FILE", type=Path,
                     help="the connector's YAML configuration")
    run.add_argument("--instance", default=None, metavar="NAME",
                     help="this installation's name in the journal and in the exchange folder "
                          "claims (default: journal.instance, else the host name); two "
                          "connectors sharing one journal or exchange root need different "
                          "names. Prefer journal.instance: operator commands read it too")
    run.set_defaults(handler=run_command)

    check = subparsers.add_parser(
        "check", help="check the configuration, certificate, journal, axis and agency side",
        description="Print one OK/FAIL line each for: the configuration, the certificate (days "
                    "left), the journal, the axis (an authenticated list call), the DMS database "
                    "and the exchange folders. Exit 1 when any check fails.")
    check.add_argument("--config", required=True, metavar="FILE", type=Path,
                       help="the connector's YAML configuration")
    check.set_defaults(handler=check_command)


def run_command(args: argparse.Namespace) -> int:
    from connector.service.daemon import Daemon

    settings = load_config(args.config)  # ConfigError: one line naming the key, exit 2
    return Daemon(settings, folder_instance=args.instance).run()


# ------------------------------------------------------------------------------------------ check

def check_command(args: argparse.Namespace, *, out=None) -> int:
    out = out or sys.stdout
    failures = 0

    def line(ok: bool, what: str, detail: str) -> None:
        nonlocal failures
        failures += 0 if ok else 1
        print(f"{'OK  ' if ok else 'FAIL'} {what}: {detail}", file=out, flush=True)

    try:
        settings = load_config(args.config)
    except Exception as error:
        line(False, "config", describe_error(error))
        return 1
    line(True, "config", f"{args.config} (agency {settings.agency.organ_id})"
         + (f"; warnings: {'; '.join(settings.warnings)}" if settings.warnings else ""))
    from connector.service.runtime import Runtime

    runtime = Runtime(settings, folder_instance="check")
    try:
        if settings.is_hub:
            failures += _check_hub(settings, runtime, line, out)
        else:
            for what, probe in _probes(settings, runtime):
                _run_probe(line, what, probe)
    finally:
        runtime.close()
    return 1 if failures else 0


def _run_probe(line, what: str, probe: Callable[[], str | None]) -> None:
    try:
        detail = probe()
    except Exception as error:
        line(False, what, describe_error(error))
    else:
        if detail is not None:
            line(True, what, detail)


def _check_hub(settings: Settings, runtime, line, out) -> int:
    """A hub: the shared parts once, then ONE line per unit (certificate days left, axis
    credentials accepted, its side usable) and a summary. Returns the units that failed (the
    shared lines count themselves through ``line``)."""
    from connector.service.runtime import Runtime

    shared = dict(_probes(settings, runtime))
    for what in ("trust", "journal", "state_dir"):
        _run_probe(line, what, shared[what])
    failed: list[str] = []
    for unit_settings in settings.units:
        first = unit_settings is settings
        unit_runtime = runtime if first else Runtime(unit_settings, folder_instance="check",
                                                     hub=runtime)
        parts, problems = [], []
        try:
            probes = dict(_probes(unit_settings, unit_runtime, unit=True))
            for what in ("certificate", "axis", "database", "exchange"):
                try:
                    detail = probes[what]()
                except Exception as error:
                    problems.append(f"{what}: {describe_error(error)}")
                else:
                    if detail is not None:
                        parts.append(detail)
        finally:
            if not first:
                unit_runtime.close()
        organ_id = unit_settings.agency.organ_id
        if problems:
            failed.append(organ_id)
            line(False, f"unit {organ_id}", "; ".join(problems))
        else:
            line(True, f"unit {organ_id}", "; ".join(parts))
    total = len(settings.units)
    print(f"{'OK  ' if not failed else 'FAIL'} units: {total - len(failed)} of {total} ready"
          + (f"; failing: {', '.join(failed)}" if failed else ""), file=out, flush=True)
    return 1 if failed else 0


def _probes(settings: Settings, runtime, *, unit: bool = False
            ) -> list[tuple[str, Callable[[], str | None]]]:
    """What ``check`` tries. ``unit``: a hub's unit, said in a few words each (one line)."""
    def certificate() -> str:
        ring = runtime.keyring
        key = ring.active()  # raises (expired, not yet valid) with the dates
        runtime.probe_signer()  # a token must answer, not merely be configured
        until = ring.coverage_end()
        days = (until - dt.datetime.now(dt.timezone.utc)).days
        warning = ""
        if days < settings.certificate.expiry_warning_days:
            warning = " — renew it soon (docs/operations.md, 'Renewing a certificate')"
        if unit:
            return f"certificate {days} days left{warning}"
        return (f"{ring.describe()}; signs as {key.subject} (sha256 {key.fingerprint[:16]}…); "
                f"a certificate can sign until {until:%Y-%m-%d}, {days} days left{warning}")

    def trust() -> str | None:
        if settings.trust.bundle_file is None:
            return "no trust.bundle_file: received signatures are at best 'untrusted'"
        store = runtime.trust_store
        summary = store.summary()
        text = (f"{summary['anchors']} CA certificate(s); {summary['crls']} CRL(s) in the folder; "
                f"{summary['bindings']} signer binding(s)")
        if not summary["bindings"]:
            text += " — no trust.signer_map_file: trusted signers are 'unbound'"
        return text

    def journal() -> str:
        journal = runtime.journal
        counts = journal.counts_by_state()
        journal.kv_set("check.last_run", "ok")
        pending = sum(counts["outgoing"].get(state, 0) for state in ("queued", "packaged", "sending"))
        return (f"{journal.dialect}, writable; {pending} outgoing pending, "
                f"{counts['outgoing'].get('failed', 0)} failed")

    def axis() -> str:
        listed = runtime.axis.list_received("edoc")
        if unit:
            return f"axis credentials accepted ({settings.systemid}, {len(listed)} waiting)"
        agencies = runtime.axis.list_agencies()
        return (f"{settings.axis.endpoint} authenticated as {settings.systemid}; {len(listed)} "
                f"document(s) waiting; {len(agencies)} agencies listed")

    def database() -> str | None:
        if settings.database is None:
            return None
        problem = runtime.database.check()
        if unit:
            return problem or "DMS database reachable"
        return problem or "reachable, every mapped table and column found"

    def exchange() -> str | None:
        folders = settings.exchange
        if folders is None or not folders.enabled:
            return None
        from connector.dms.folder.layout import ExchangeLayout

        layout = ExchangeLayout(folders.root)
        warnings = layout.prepare(folders.group)
        if unit:
            return f"folders {folders.root} usable" + (f" ({'; '.join(warnings)})" if warnings else "")
        return f"{folders.root} usable (outbox, work, sent, failed on one filesystem)" + (
            f"; {'; '.join(warnings)}" if warnings else "")

    def state_dir() -> str:
        store = runtime.store
        probe = store.scratch_dir("check")
        store.drop_scratch("check")
        del probe
        return f"{settings.state_dir} writable"

    return [("certificate", certificate), ("trust", trust), ("journal", journal),
            ("state_dir", state_dir), ("axis", axis), ("database", database),
            ("exchange", exchange)]

