"""Operator commands: ``status``, ``retry``, ``cancel``, ``send``, ``inbox``, ``quarantine``,
``status-send`` and ``journal backup`` — so that nobody edits the connector's state by hand.

Thin on purpose: each handler loads the configuration, calls one function of
:mod:`connector.ops`, and prints the result (a table for people, ``--json`` for scripts). Errors
are the project's typed errors, which the command line turns into one line and exit code 2 (bad
input: an unknown ID, an invalid file) or 1 (anything else). Progress bars and warnings go to
stderr so that stdout stays parseable.

Imports inside the handlers are deliberate: every command module is imported to register its
arguments, so what one command needs (the pipelines, lxml, cryptography, SQLAlchemy, rich...)
is imported by that command only. ``edxml-connector --help`` takes ≈ 0.35 s this way;
importing all of it first would add ≈ 0.8 s (measured 2026-12-07, this machine).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from connector.cli.edxml_commands import register_schema
from connector.errors import InputError
from connector.ops.schemas import SCHEMAS

for _name, _model in SCHEMAS.items():  # `schema NAME` knows the operator files too
    register_schema(_name, _model)

ID_HELP = "the journal id that `status` shows (a DocumentId is accepted too)"


# --------------------------------------------------------------------------- plumbing

def _config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", type=Path, required=True,
                        help="the connector's configuration (connector.yaml)")


def _agency(parser: argparse.ArgumentParser, what: str = "the items of") -> None:
    parser.add_argument("--agency", metavar="ORGANID", default=None,
                        help=f"a hub: only {what} this unit (default: every unit, each item "
                             "showing its unit)")


def _item_of_unit(record: Any, agency: str | None) -> Any:
    """An operator's ID with ``--agency``: it must be that unit's item."""
    if agency is not None and record.agency and record.agency != agency:
        raise InputError(f"item {record.id} belongs to unit {record.agency}, not {agency}",
                         hint=f"give --agency {record.agency}, or leave --agency out")
    return record


def _one_unit_or_all(ctx: Any, agencies: list[str], what: str, *, all_units: bool) -> None:
    """A bulk action that would touch several units of a hub says how many and asks for
    ``--all`` (or ``--agency`` for one)."""
    units = sorted(set(agencies))
    if len(units) > 1 and not all_units:
        raise InputError(f"{len(agencies)} {what} in {len(units)} units ({', '.join(units)})",
                         hint="give --agency ORGANID for one unit, or --all for every unit")


class _Stderr(io.TextIOBase):
    """sys.stderr looked up at each write (it may be replaced after logging is set up)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextmanager
def _context(args: argparse.Namespace, *, instance: str | None = None) -> Iterator[Any]:
    """The configuration loaded, and logging sent to stderr at warning level: an operator
    command's stdout is its answer (a table, or JSON a script parses), never log lines.
    ``instance`` overrides ``journal.instance`` (``journal adopt --instance``)."""
    from connector.logs import configure_logging
    from connector.ops.context import OpsContext

    context = OpsContext.from_config(args.config, instance=instance)
    configure_logging("warning", json_lines=False, stream=_Stderr(),
                      secrets=context.settings.secret_values())
    try:
        yield context
    finally:
        context.close()


STATUS_WIDTH = 100  # `status` without --wide: what a default terminal window shows


def _console(*, stderr: bool = False, width: int | None = None):
    """A rich console: at most ``width`` columns (never wider than the terminal); wide when the
    output is not a terminal, so ids are never folded."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        width = min(width, shutil.get_terminal_size().columns) if width else None
    else:
        width = width or 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def _warn(message: str) -> None:
    print(f"edxml-connector: warning: {message}", file=sys.stderr)


@contextmanager
def _progress(description: str) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(set_total, advance) callables drawing a rich progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=_console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=None)
        yield (lambda total: bar.update(task, total=total),
               lambda step: bar.advance(task, step))


def _run_bulk(description: str, action: Callable[..., Any], verb: str) -> int:
    """Run a bulk action (``retry --failed``, ``quarantine release --all``) under a progress bar;
    print how many items it did and each problem. Exit 1 when any item could not be done."""
    with _progress(description) as (set_total, advance):
        result = action(total=set_total, progress=advance)
    print(f"{verb} {len(result.done)} item(s)")
    for problem in result.problems:
        print(f"edxml-connector: error: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


# --------------------------------------------------------------------------- registration

def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the operator commands, one group at a time."""
    _register_outgoing(subparsers)
    _register_inbox(subparsers)
    _register_quarantine(subparsers)
    _register_journal(subparsers)
    _register_agencies(subparsers)


def _register_agencies(subparsers: argparse._SubParsersAction) -> None:
    """``agencies sync`` and ``agencies find``: the national directory, kept in the journal."""
    parser = subparsers.add_parser(
        "agencies", help="the axis's agency directory: sync it, search it",
        description="The directory of every agency on the axis, with the old codes beside the "
                    "new ones (Decision 20/2020, 09/2025), kept in the journal; the daemon syncs "
                    "it daily (outbound.agency_list_refresh_seconds).")
    actions = parser.add_subparsers(dest="agencies_command", metavar="ACTION")
    sync = actions.add_parser("sync", help="fetch the changes (or, with --full, the whole list) now",
                              description="Ask the axis for the agencies changed since the last "
                                          "sync (getSynchronizeUnit), or the whole list "
                                          "(getAgenciesListQD20) the first time or with --full.")
    _config(sync)
    sync.add_argument("--full", action="store_true", help="the whole list, not only the changes")
    sync.set_defaults(handler=agencies_sync_command)
    find = actions.add_parser("find", help="search by code or name (with or without diacritics)",
                              description="Agencies whose code, old code or name holds every word "
                                          "of TEXT, in any case, with or without diacritics.")
    _config(find)
    find.add_argument("text", metavar="TEXT")
    find.add_argument("--limit", metavar="N", type=int, default=20, help="at most N (20)")
    find.add_argument("--json", action="store_true", help="a JSON list instead of the table")
    find.set_defaults(handler=agencies_find_command)
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)


def agencies_sync_command(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        result = ctx.runtime.directory.refresh(full=args.full)
        synced = ctx.journal.directory.synced_at()
    print(f"{result.kind}: {result.agencies} agencies written; {result.total} in the directory "
          f"(synced {synced:%Y-%m-%d %H:%M:%S} UTC)" if synced else f"{result.kind}: {result.total}")
    return 0


def agencies_find_command(args: argparse.Namespace) -> int:
    import json

    with _context(args) as ctx:
        found = ctx.journal.directory.find(args.text, limit=max(1, args.limit))
        total = ctx.journal.directory.count()
    if args.json:
        print(json.dumps([{"code": a.code, "old_code": a.old_code, "name": a.name, "pid": a.pid,
                           "mail": a.mail} for a in found], ensure_ascii=False, indent=1))
        return 0 if found else 1
    if not total:
        print("the directory is empty: run `edxml-connector agencies sync --config FILE`")
        return 1
    for agency in found:
        old = f"  (old code {agency.old_code})" if agency.old_code else ""
        print(f"{agency.code:<16} {agency.name}{old}")
    if not found:
        print(f"no agency matches {args.text!r} among {total}")
    return 0 if found else 1


def _register_outgoing(subparsers: argparse._SubParsersAction) -> None:
    """``status``, ``retry``, ``cancel``, ``send`` and ``status-send``."""
    parser = subparsers.add_parser(
        "status", help="counts, oldest pending item, last axis contact, and the items",
        description="Show counts by state (outgoing and incoming), the age of the oldest item "
                    "still on its way, the last successful contact with the axis, and a table of "
                    "items (newest first) with each recipient's latest status.")
    _config(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    parser.add_argument("--state", metavar="S", help="only items in this state (e.g. failed)")
    parser.add_argument("--direction", choices=("out", "in"), help="only outgoing or incoming items")
    parser.add_argument("--agency", metavar="ORGANID",
                        help="only the items of this unit (default: every unit's)")
    parser.add_argument("--limit", metavar="N", type=int, default=50, help="at most N items (50)")
    parser.add_argument("--watch", action="store_true",
                        help="a live table refreshed every 2 s until Ctrl-C")
    parser.add_argument("--wide", action="store_true",
                        help="every column (the axis DocId, full times); by default the table "
                             "fits in 100 columns")
    parser.set_defaults(handler=status_command)

    parser = subparsers.add_parser(
        "retry", help="send a failed item again (or every failed item)",
        description="Put a failed or cancelled item back in the queue (attempts reset; the agency "
                    "side gets it back, e.g. from failed/ to work/), or make a waiting item due "
                    "now. A sent item is never retried: that would deliver it twice.")
    _config(parser)
    parser.add_argument("id", nargs="?", metavar="ID", help=ID_HELP)
    parser.add_argument("--failed", action="store_true", help="every failed item (progress bar)")
    _agency(parser)
    parser.add_argument("--all", action="store_true",
                        help="with --failed in a hub: the failed items of every unit")
    parser.set_defaults(handler=retry_command)

    parser = subparsers.add_parser(
        "cancel", help="do not send an item", description="Cancel an item not yet sent; the "
        "agency side shows it as failed with the reason. `retry ID` brings it back.")
    _config(parser)
    parser.add_argument("id", metavar="ID", help=ID_HELP)
    parser.add_argument("--reason", metavar="TEXT", help="why (kept in the history)")
    _agency(parser)
    parser.set_defaults(handler=cancel_command)

    parser = subparsers.add_parser(
        "send", help="queue a package or a bundle without the outbox folder",
        description="Validate, build and sign FILE (a .edxml package, signed when unsigned) or "
                    "BUNDLE (a folder with document.yaml and the attachment files), store it, and "
                    "queue it in the journal; the running daemon sends it. Sending the same "
                    "content twice finds the item already queued.")
    _config(parser)
    parser.add_argument("target", metavar="FILE|BUNDLE", type=Path)
    parser.add_argument("--agency", metavar="ORGANID", default=None,
                        help="a hub: the unit that sends it (required there)")
    parser.set_defaults(handler=send_command)

    parser = subparsers.add_parser(
        "status-send", help="send a status about a document (no drop file needed)",
        description="Queue status CODE about DOCID: one package per addressee. Without --to, a "
                    "receiver's status (01-06, 15, 16) goes to the sender of the received "
                    "document, a take-back (13) to every recipient of the document we sent.")
    _config(parser)
    parser.add_argument("--code", required=True, metavar="NN", help="status code, e.g. 03")
    parser.add_argument("--document-id", required=True, metavar="DOCID")
    parser.add_argument("--to", action="append", default=[], metavar="ORGAN_ID",
                        help="addressee (repeat for several)")
    parser.add_argument("--description", metavar="TEXT", help="free text (default: the code's label)")
    parser.add_argument("--agency", metavar="ORGANID", default=None,
                        help="a hub: the unit that sends it (default: the first unit)")
    parser.set_defaults(handler=status_send_command)


def _register_inbox(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "units", help="the connector's own units: state, queues, last poll, certificate days left",
        description="List the units this connector serves (its agency; a hub's units) with "
                    "their state, the items waiting each way, the last successful poll and the "
                    "days the certificate can still sign (as the daemon last loaded it). Units "
                    "the journal holds items for but the configuration does not name are listed "
                    "as 'not configured'. The national directory is `agencies find`.")
    _config(parser)
    parser.add_argument("--json", action="store_true", help="a JSON list instead of the table")
    parser.set_defaults(handler=units_command)

    inbox = subparsers.add_parser("inbox", help="received documents: list, redeliver")
    inbox_commands = inbox.add_subparsers(dest="inbox_command", metavar="ACTION", required=True)
    parser = inbox_commands.add_parser(
        "list", help="received documents, newest first",
        description="Received documents: id, date, sender, DocumentId, subject, signature "
                    "outcome, where they were delivered, and lifecycle events.")
    _config(parser)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--limit", metavar="N", type=int, default=100)
    _agency(parser, "the documents received by")
    parser.set_defaults(handler=inbox_list_command)
    parser = inbox_commands.add_parser(
        "redeliver", help="deliver a received document again from the stored package",
        description="Rebuild the inbox folder (or DMS row) of a received document from the "
                    "connector's stored copy — e.g. after the DMS lost it. A document still "
                    "present is left as it is.")
    _config(parser)
    parser.add_argument("id", metavar="ID", help="journal id, axis DocId or DocumentId")
    _agency(parser)
    parser.set_defaults(handler=inbox_redeliver_command)


def _register_quarantine(subparsers: argparse._SubParsersAction) -> None:
    quarantine = subparsers.add_parser("quarantine", help="documents held by the signature policy")
    actions = quarantine.add_subparsers(dest="quarantine_command", metavar="ACTION", required=True)
    parser = actions.add_parser("list", help="documents waiting for an operator's decision")
    _config(parser)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--limit", metavar="N", type=int, default=100)
    _agency(parser, "the documents held for")
    parser.set_defaults(handler=quarantine_list_command)
    parser = actions.add_parser("release", help="deliver a quarantined document (or all)")
    _config(parser)
    parser.add_argument("id", nargs="?", metavar="ID")
    parser.add_argument("--all", action="store_true",
                        help="every quarantined document (of every unit, unless --agency)")
    _agency(parser, "the documents held for")
    parser.set_defaults(handler=quarantine_release_command)
    parser = actions.add_parser("refuse", help="refuse a quarantined document: status 02 to its sender")
    _config(parser)
    parser.add_argument("id", metavar="ID")
    parser.add_argument("--reason", metavar="TEXT", required=True,
                        help="sent to the sender with status 02")
    _agency(parser)
    parser.set_defaults(handler=quarantine_refuse_command)


def _register_journal(subparsers: argparse._SubParsersAction) -> None:
    journal = subparsers.add_parser("journal", help="the journal database: backup, instances, adopt")
    journal_commands = journal.add_subparsers(dest="journal_command", metavar="ACTION", required=True)
    parser = journal_commands.add_parser(
        "backup", help="a consistent online copy of the journal",
        description="Copy a SQLite journal with the online backup API while the daemon runs "
                    "(checked, fsync'd, renamed into place). A PostgreSQL journal is backed up "
                    "with pg_dump.")
    _config(parser)
    parser.add_argument("file", metavar="FILE", type=Path)
    parser.set_defaults(handler=journal_backup_command)

    parser = journal_commands.add_parser(
        "instances", help="unfinished items per connector instance (shared journal)",
        description="Count the unfinished items of each connector instance sharing this journal "
                    "(outgoing not yet sent or failed; incoming not yet delivered). An instance "
                    "that is gone for good is taken over with `journal adopt`.")
    _config(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    _agency(parser)
    parser.set_defaults(handler=journal_instances_command)

    parser = journal_commands.add_parser(
        "adopt", help="take over the unfinished items of an instance that is gone for good",
        description="Make the unfinished items of INSTANCE this instance's, so that this server "
                    "sends or finishes them. First stop that connector for sure and copy its "
                    "STATE/packages and exchange work/ here if they can be recovered. Refused "
                    "while INSTANCE claimed an item in the last 10 minutes, unless --force.")
    _config(parser)
    parser.add_argument("from_instance", metavar="INSTANCE", help="the instance that is gone")
    parser.add_argument("--force", action="store_true",
                        help="adopt even though INSTANCE claimed something recently")
    parser.add_argument("--instance", metavar="NAME", default=None,
                        help="the instance taking over (default: journal.instance, else the "
                             "host name — the name the surviving daemon runs with)")
    _agency(parser)
    parser.set_defaults(handler=journal_adopt_command)


# --------------------------------------------------------------------------- handlers

def status_command(args: argparse.Namespace) -> int:
    from connector.ops.status_view import check_state_filter, collect_status, render_status, watch_status

    check_state_filter(args.state, args.direction)
    if args.json and args.watch:
        raise InputError("--json and --watch do not go together", hint="use one of them")
    with _context(args) as ctx:
        def collect() -> dict[str, Any]:
            return collect_status(ctx.journal, state=args.state, direction=args.direction,
                                  limit=args.limit, agency=args.agency)

        width = None if args.wide else STATUS_WIDTH
        if args.json:
            _print_json(collect())
        elif args.watch:
            watch_status(collect, _console(width=width), wide=args.wide)
        else:
            _console(width=width).print(render_status(collect(), wide=args.wide))
    return 0


def retry_command(args: argparse.Namespace) -> int:
    from connector.ops import outgoing

    if bool(args.id) == bool(args.failed):
        raise InputError("give either an ID or --failed", hint="e.g. `retry 01J...` or `retry --failed`")
    with _context(args) as ctx:
        agency = ctx.check_unit(args.agency) if args.agency else None
        if args.failed:
            if agency is None:
                _one_unit_or_all(ctx, [r.agency for r in outgoing.failed_items(ctx)],
                                 "failed items", all_units=args.all)
            return _run_bulk("requeueing failed items",
                             partial(outgoing.retry_failed, ctx, agency=agency), "requeued")
        _item_of_unit(ctx.outgoing(args.id), agency)
        record = outgoing.retry(ctx, args.id)
        print(f"requeued {record.id} ({record.state.value}); the daemon sends it on its next pass")
    return 0


def cancel_command(args: argparse.Namespace) -> int:
    from connector.ops import outgoing

    with _context(args) as ctx:
        _item_of_unit(ctx.outgoing(args.id), args.agency)
        record, warning = outgoing.cancel(ctx, args.id, reason=args.reason)
    if warning:
        _warn(warning)
    print(f"cancelled {record.id}")
    return 0


def send_command(args: argparse.Namespace) -> int:
    from connector.ops.enqueue import send

    with _context(args) as ctx:
        if args.agency:
            ctx = ctx.for_unit(ctx.check_unit(args.agency))
        elif ctx.settings.is_hub:
            units = ", ".join(u.agency.organ_id for u in ctx.settings.units[:5])
            raise InputError("this connector serves several units: say which one sends it",
                             hint=f"give --agency ORGANID (e.g. {units})")
        records = send(ctx, args.target)
    for record in records:
        print(f"queued {record.id} {record.kind} {record.document_id} to "
              f"{', '.join(record.recipients)} ({record.state.value})")
    return 0


def units_command(args: argparse.Namespace) -> int:
    from connector.ops.units_view import collect_units, render_units

    with _context(args) as ctx:
        rows = collect_units(ctx.settings, ctx.journal)
    if args.json:
        _print_json(rows)
    else:
        _console(width=STATUS_WIDTH).print(render_units(rows))
    return 0


def status_send_command(args: argparse.Namespace) -> int:
    from connector.ops.enqueue import enqueue_status

    with _context(args) as ctx:
        unit = ctx.for_unit(ctx.check_unit(args.agency)) if args.agency else ctx
        record = enqueue_status(unit, code=args.code, document_id=args.document_id, to=args.to,
                                description=args.description)
    print(f"queued {record.id} status {record.meta['status']['code']} about {record.document_id} "
          f"to {', '.join(record.recipients)}; the daemon sends one package to each")
    return 0


def _incoming_table(rows: list[dict[str, Any]], *, quarantine: bool):
    from rich.table import Table

    table = Table()
    hub = any(row.get("agency") for row in rows) and len({row.get("agency") for row in rows}) > 1
    columns = (["Unit"] if hub else []) + ["ID", "Received", "Sender", "DocumentId", "Subject",
                                           "Signature"]
    columns += ["Reason", "Held in"] if quarantine else ["State", "Delivered to", "Lifecycle"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = ([row["agency"] or ""] if hub else []) + [
            row["id"], row["received_at"] or "", row["sender"] or "", row["document_id"] or "",
            row["subject"] or "", row["signature"] or ""]
        if quarantine:
            cells += [row["quarantine_reason"] or "", row["quarantine_location"] or ""]
        else:
            where = row["delivered_location"] or ""
            if row["location_present"] is False:
                where += " (missing)"
            cells += [row["state"], where,
                      ", ".join(f"{e['event']} {e['at'] or ''}".strip() for e in row["lifecycle"])]
        table.add_row(*cells)
    return table


def _print_incoming(args: argparse.Namespace, rows: list[dict[str, Any]], *, quarantine: bool,
                    when_empty: str) -> int:
    if args.json:
        _print_json(rows)
    elif rows:
        _console().print(_incoming_table(rows, quarantine=quarantine))
    else:
        print(when_empty)
    return 0


def inbox_list_command(args: argparse.Namespace) -> int:
    from connector.ops.inbox import inbox_list

    with _context(args) as ctx:
        rows = inbox_list(ctx, limit=args.limit, agency=args.agency)
    return _print_incoming(args, rows, quarantine=False, when_empty="no received documents")


def inbox_redeliver_command(args: argparse.Namespace) -> int:
    from connector.ops.inbox import redeliver

    with _context(args) as ctx:
        _item_of_unit(ctx.incoming(args.id), args.agency)
        location = redeliver(ctx, args.id)
    print(f"delivered to {location}")
    return 0


def quarantine_list_command(args: argparse.Namespace) -> int:
    from connector.ops.inbox import quarantine_list

    with _context(args) as ctx:
        rows = quarantine_list(ctx, limit=args.limit, agency=args.agency)
    return _print_incoming(args, rows, quarantine=True, when_empty="quarantine is empty")


def quarantine_release_command(args: argparse.Namespace) -> int:
    from connector.ops import inbox

    if bool(args.id) == bool(args.all):
        raise InputError("give either an ID or --all", hint="`quarantine list` shows the ids")
    with _context(args) as ctx:
        if args.all:
            return _run_bulk("releasing quarantined documents",
                             partial(inbox.release_all, ctx, agency=args.agency), "released")
        _item_of_unit(ctx.incoming(args.id), args.agency)
        location = inbox.release(ctx, args.id)
    print(f"released to {location}")
    return 0


def quarantine_refuse_command(args: argparse.Namespace) -> int:
    from connector.ops.inbox import refuse

    with _context(args) as ctx:
        _item_of_unit(ctx.incoming(args.id), args.agency)
        status = refuse(ctx, args.id, args.reason)
    print(f"refused; status 02 queued as {status.id} to {', '.join(status.recipients)}")
    return 0


def journal_backup_command(args: argparse.Namespace) -> int:
    from connector.journal import backup

    with _context(args) as ctx:
        target = backup(ctx.journal, args.file)
    print(f"journal copied to {target} ({target.stat().st_size} bytes)")
    return 0


def journal_instances_command(args: argparse.Namespace) -> int:
    with _context(args) as ctx:
        counts = ctx.journal.ownership.instances(agency=args.agency)
        this = ctx.journal.instance
    rows = [{"instance": name, "outgoing_pending": value["outgoing"],
             "incoming_unfinished": value["incoming"], "this": name == this}
            for name, value in sorted(counts.items(), key=lambda item: str(item[0] or ""))]
    if args.json:
        _print_json({"this_instance": this, "instances": rows})
        return 0
    print(f"this instance: {this}")
    if not rows:
        print("no unfinished items")
    for row in rows:
        name = row["instance"] if row["instance"] is not None else "(none: rows from before instances)"
        print(f"{name}{' (this)' if row['this'] else ''}: {row['outgoing_pending']} outgoing "
              f"pending, {row['incoming_unfinished']} incoming unfinished")
    return 0


def journal_adopt_command(args: argparse.Namespace) -> int:
    if args.instance:
        from connector.dms.folder.claims import check_instance

        check_instance(args.instance)
    with _context(args, instance=args.instance) as ctx:
        adopted = ctx.journal.ownership.adopt(args.from_instance, force=args.force,
                                              agency=args.agency)
        this = ctx.journal.instance
    print(f"adopted {len(adopted['outgoing'])} outgoing and {len(adopted['incoming'])} incoming "
          f"item(s) from {args.from_instance} into {this}")
    for direction in ("outgoing", "incoming"):
        for item_id in adopted[direction]:
            print(f"  {direction} {item_id}")
    if adopted["outgoing"] or adopted["incoming"]:
        print("the daemon of this instance sends/finishes them on its next pass; an outgoing item "
              "whose package was not copied here fails with 'stored package missing' — `cancel` "
              "it and let the DMS send it again")
    return 0

