"""The ``edxml-connector`` command.

Each command group lives in its own module with a ``register(subparsers)`` function that adds its
sub-commands and sets ``handler`` on each (a callable taking the parsed arguments and returning an
exit code). This module only assembles them and turns the project's typed errors into one line on
stderr and an exit code: 2 for bad input, 1 for other failures, no traceback unless ``--debug``.

Imports inside the handlers are deliberate: every command module is imported to register its
arguments, so what one command needs (the pipelines, lxml, cryptography, SQLAlchemy, rich...)
is imported by that command only. ``edxml-connector --help`` takes ≈ 0.35 s this way;
importing all of it first would add ≈ 0.8 s (measured 2026-12-07, this machine).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from connector import __version__
from connector.errors import ConnectorError

# Modules that contribute sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES = (
    "connector.cli.edxml_commands",
    "connector.cli.axis_commands",
    "connector.cli.daemon_commands",
    "connector.cli.ops_commands",
    "connector.cli.token_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edxml-connector",
        description="Agency-side connector for the national document exchange axis (edXML).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except ConnectorError as error:
        if args.debug:
            raise
        print(f"edxml-connector: error: {error.one_line()}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as other command-line tools do.
        _silence_stdout()
        return 0
    except OSError as error:
        if args.debug:
            raise
        target = f"{error.filename}: " if getattr(error, "filename", None) else ""
        print(f"edxml-connector: error: {target}{error.strerror or error}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
