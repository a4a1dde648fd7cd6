"""The package commands of ``edxml-connector``: dev-certs, pack, sign, inspect, verify,
status-package and schema.

Each handler does three things only: turn arguments into library calls (packaging, writer,
signing, reader, summary), write the result atomically, and print one short line of outcome.
Everything that can go wrong is raised as a :class:`connector.errors.ConnectorError`, which the
registry in :mod:`connector.cli` prints as one line (file, line/element, what to do) with exit 2
for bad input and 1 for other failures.

``schema NAME`` reads a small registry so that other modules can publish the JSON Schema of
the files they define (status, receipt, metadata, config) without touching this file::

    from connector.cli.edxml_commands import register_schema
    register_schema("status", StatusRequest)   # any pydantic model class

Call it at import time of a module in ``connector.cli.COMMAND_MODULES`` (or one they import).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from connector.edxml import model
from connector.errors import InputError
from connector.schemas.document import DocumentMetadata, load_document_metadata

PASSWORD_ENV = "EDXML_KEY_PASSWORD"
ALGORITHMS = ("rsa-sha256", "rsa-sha1")

# --------------------------------------------------------------------------- schema registry

_SCHEMAS: dict[str, type] = {}


def register_schema(name: str, model_class: type) -> None:
    """Make ``edxml-connector schema NAME`` print ``model_class``'s JSON Schema.

    ``model_class`` is a pydantic model (anything with ``model_json_schema``). Registering the
    same name again replaces the earlier model, so a module can refine its own schema.
    """
    if not hasattr(model_class, "model_json_schema"):
        raise TypeError(f"{model_class!r} is not a pydantic model class")
    _SCHEMAS[name] = model_class


def registered_schemas() -> dict[str, type]:
    """A copy of the registry: name -> pydantic model class."""
    return dict(_SCHEMAS)


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema registered as ``name``, with ``$schema`` and a title naming the file."""
    try:
        model_class = _SCHEMAS[name]
    except KeyError:
        raise InputError(f"no schema named {name!r}",
                         hint=f"use one of: {', '.join(sorted(_SCHEMAS))}") from None
    schema = model_class.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


register_schema("document", DocumentMetadata)


# --------------------------------------------------------------------------- registration

def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands."""
    parser = subparsers.add_parser(
        "dev-certs", help="make a throwaway CA and two agency certificates for demos and tests",
        description="Write a throwaway CA and two agency certificates (PEM, and PKCS#12 with a "
                    "password file) into DIR. Never use them in production.")
    parser.add_argument("directory", metavar="DIR", type=Path)
    parser.set_defaults(handler=dev_certs_command)

    parser = subparsers.add_parser(
        "pack", help="build (and sign) a package from a metadata file and attachment files",
        description="Build an edXML document package: header fields from METADATA.yaml (see "
                    "`schema document` and config/document.example.yaml), attachments from the "
                    "FILE arguments. A metadata file with take_back builds status 13 packages.")
    parser.add_argument("metadata", metavar="METADATA.yaml", type=Path)
    parser.add_argument("files", metavar="FILE", nargs="*", type=Path)
    _add_key_arguments(parser, allow_unsigned=True)
    parser.add_argument("--out", metavar="PACKAGE", type=Path, required=True)
    parser.set_defaults(handler=pack_command)

    parser = subparsers.add_parser(
        "sign", help="(re)sign an existing package, replacing any signature it carries",
        description="Sign PACKAGE with an enveloped XMLDSig (RSA-SHA256 unless --algorithm "
                    "rsa-sha1 is asked for a peer that needs it).")
    parser.add_argument("package", metavar="PACKAGE", type=Path)
    _add_key_arguments(parser, allow_unsigned=False)
    parser.add_argument("--out", metavar="FILE", type=Path, required=True)
    parser.set_defaults(handler=sign_command)

    parser = subparsers.add_parser(
        "inspect", help="show what a package says (--json for scripts)",
        description="Read PACKAGE leniently and show its fields, attachments, warnings and "
                    "signature outcome.")
    parser.add_argument("package", metavar="PACKAGE", type=Path)
    parser.add_argument("--trust", metavar="CA.pem", type=Path,
                        help="trust bundle (PEM file or directory) for the signature check")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=inspect_command)

    parser = subparsers.add_parser(
        "verify", help="check a package's signature: exit 0 only when valid",
        description="Verify PACKAGE's signature and certificate. Prints the outcome (valid, "
                    "invalid, absent, unverifiable, untrusted) and the reason. Exit 0 for valid, "
                    "1 for any other outcome, 2 when the package cannot be read.")
    parser.add_argument("package", metavar="PACKAGE", type=Path)
    parser.add_argument("--trust", metavar="CA.pem", type=Path,
                        help="trust bundle (PEM file or directory)")
    parser.set_defaults(handler=verify_command)

    parser = subparsers.add_parser(
        "status-package", help="build a status package answering a document",
        description="Build the status package CODE from ORGAN_ID about the document in PACKAGE. "
                    "Statuses 01-06, 15, 16 go to the document's sender; a take-back request "
                    "(13) goes to the receiver named by --to.")
    parser.add_argument("--from", dest="from_organ_id", metavar="ORGAN_ID", required=True)
    parser.add_argument("--for", dest="for_package", metavar="PACKAGE", type=Path, required=True)
    parser.add_argument("--code", required=True,
                        help="status code: " + ", ".join(
                            f"{code.value} {code.label_en}" for code in model.StatusCode))
    parser.add_argument("--to", metavar="ORGAN_ID", help="the receiver (status 13 only)")
    parser.add_argument("--description", metavar="TEXT",
                        help="free text (default: the code's Vietnamese label)")
    parser.add_argument("--out", metavar="FILE", type=Path, required=True)
    parser.set_defaults(handler=status_package_command)

    parser = subparsers.add_parser(
        "schema", help="print the JSON Schema of a file the connector reads",
        description="Print the JSON Schema of NAME so that a DMS vendor can validate what it "
                    "writes. Names: document (the metadata file / outbox document.yaml) and any "
                    "registered by other modules.")
    parser.add_argument("name", metavar="NAME")
    parser.set_defaults(handler=schema_command)


def _add_key_arguments(parser: argparse.ArgumentParser, *, allow_unsigned: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--p12", metavar="FILE", type=Path, help="PKCS#12 (.p12/.pfx) key and certificate")
    group.add_argument("--key", metavar="KEY.pem", type=Path, help="PEM private key (with --cert)")
    if allow_unsigned:
        group.add_argument("--unsigned", action="store_true", help="do not sign")
    parser.add_argument("--cert", metavar="CERT.pem", type=Path,
                        help="PEM certificate (chain) for --key")
    parser.add_argument("--password-file", metavar="FILE", type=Path,
                        help=f"file holding the key password (else ${PASSWORD_ENV})")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="rsa-sha256",
                        help="signature algorithm (rsa-sha1 only for peers that need it)")


# --------------------------------------------------------------------------- shared helpers

def load_signing_key(args: argparse.Namespace):
    """The SigningKey the arguments name, or None for ``--unsigned``."""
    if getattr(args, "unsigned", False):
        for option, value in (("--cert", args.cert), ("--password-file", args.password_file)):
            if value is not None:
                raise InputError(f"{option} makes no sense with --unsigned",
                                 hint=f"drop {option}, or sign with --p12/--key")
        return None
    from connector.edxml.keys import SigningKey, read_password

    password = read_password(password_file=args.password_file, env=PASSWORD_ENV)
    if args.p12 is not None:
        if args.cert is not None:
            raise InputError("--cert is only used with --key",
                             hint="a PKCS#12 file already holds the certificate; drop --cert")
        return SigningKey.from_pkcs12(args.p12, password=password)
    if args.cert is None:
        raise InputError("--key needs --cert", hint="give the certificate with --cert CERT.pem")
    return SigningKey.from_pem(args.key, args.cert, password=password)


def warn(message: str) -> None:
    print(f"edxml-connector: warning: {message}", file=sys.stderr)


def warn_all(messages: Iterable[str], algorithm: str | None = None) -> None:
    """Print the signer's warnings once each; a SHA-1 signature never passes silently."""
    messages = [str(item) for item in messages or ()]
    if algorithm == "rsa-sha1" and not any("sha" in item.lower() for item in messages):
        from connector.edxml.signing import algorithm_warning

        messages.append(algorithm_warning(algorithm) or "signed with RSA-SHA1, which is weak")
    for message in dict.fromkeys(messages):
        warn(message)


class _CapturedLibraryWarnings(logging.Handler):
    """While a command runs, the library's log warnings (e.g. signing's SHA-1 notice) are
    collected here instead of reaching Python's last-resort stderr handler, so that the command
    prints each warning once, in its own format."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def library_warnings():
    logger = logging.getLogger("connector")
    handler = _CapturedLibraryWarnings()
    configured = logger.hasHandlers()
    if not configured:  # only when nobody configured logging: never steal a real log's records
        logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        if not configured:
            logger.removeHandler(handler)


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(descriptor)


def load_package_bytes(path: Path) -> bytes:
    """The package's bytes, refusing a missing file or one over the size limit before reading."""
    from connector.edxml.xmlparse import ParseLimits, read_limited

    path = Path(path)
    if not path.is_file():
        raise InputError("package file not found" if not path.exists() else "not a file",
                         file=str(path), hint="check the path of the package")
    return read_limited(path, ParseLimits(), file=str(path))


def read_package_file(path: Path, data: bytes | None = None):
    """Read a package with the library's lenient, hardened reader (typed error when unusable)."""
    from connector.edxml.reader import read_package

    if data is None:
        data = load_package_bytes(path)
    return read_package(data, file=str(path))


def verify_bytes(data: bytes, trust: Path | None, file: str | None = None):
    from connector.edxml.signing import verify_package

    if trust is not None and not trust.exists():
        raise InputError("trust bundle not found", file=str(trust),
                         hint="give a PEM file or a folder of PEM certificates")
    return verify_package(data, trust=trust, file=file)


def write_package_file(package: model.Package, out: Path, key, algorithm: str) -> None:
    """Serialise (and sign) ``package`` into ``out``, streaming attachments from their files so
    that a package of hundreds of megabytes never sits in memory as base64 text. The writer
    writes a temporary name, fsyncs and renames; the folder is fsynced here."""
    from connector.edxml.writer import write_package_to

    out = Path(out)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise InputError("output folder does not exist", file=str(directory),
                         hint="create the folder or choose another --out")
    with library_warnings() as logged:
        written = write_package_to(package, out, signer=key, algorithm=algorithm)
    _fsync_directory(directory)
    warn_all([*logged, *written.warnings], algorithm if key is not None else None)


# --------------------------------------------------------------------------- handlers

def dev_certs_command(args: argparse.Namespace) -> int:
    from connector.devcerts import make_dev_certs

    directory: Path = args.directory
    if directory.exists() and not directory.is_dir():
        raise InputError("not a folder", file=str(directory), hint="give a folder for the certificates")
    directory.mkdir(parents=True, exist_ok=True)
    certs = make_dev_certs(directory)
    print(f"Wrote throwaway certificates to {directory} (for demos and tests only):")
    for label, value in _describe(certs):
        print(f"  {label:<24} {value}")
    return 0


def _describe(certs: Any) -> list[tuple[str, str]]:
    """Every path in the DevCerts result, flattened (``agency_a.p12`` ...), for printing."""
    import dataclasses

    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for item in dataclasses.fields(value):
                walk(f"{prefix}.{item.name}" if prefix else item.name, getattr(value, item.name))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, Path | str) and value:
            rows.append((prefix, str(value)))

    walk("", certs)
    return rows


def pack_command(args: argparse.Namespace) -> int:
    from connector import packaging

    metadata = load_document_metadata(args.metadata)
    key = load_signing_key(args)
    source = str(args.metadata)
    if metadata.take_back is not None:
        return _pack_take_back(args, metadata, key, source)
    package = packaging.build_document(metadata, list(args.files), source=source)
    write_package_file(package, args.out, key, args.algorithm)
    signed = "unsigned" if key is None else f"signed ({args.algorithm})"
    print(f"Wrote {args.out}: {package.document_id} — {len(package.attachments)} attachment(s), "
          f"{signed}")
    return 0


def _pack_take_back(args: argparse.Namespace, metadata: DocumentMetadata, key,
                    source: str) -> int:
    """A take-back is one status 13 per receiver: the first goes to --out, the others beside it
    with the receiver's identifier in the name (``OUT-<organ_id>.edxml``) when there are several."""
    from connector import packaging

    if args.files:
        raise InputError("a take-back request carries no attachments", file=source,
                         element="take_back", hint="drop the FILE arguments")
    sender = packaging.sender_of(metadata, source=source)
    staff = metadata.business.staff
    packages = packaging.build_take_back(metadata.take_back, sender, staff=staff)
    outputs = [args.out] if len(packages) == 1 else [
        args.out.with_name(f"{args.out.stem}-{item.response_for.organ_id}{args.out.suffix}")
        for item in packages]
    for package, out in zip(packages, outputs, strict=True):
        write_package_file(package, out, key, args.algorithm)
        print(f"Wrote {out}: status 13 (take-back) for {package.response_for.document_id} "
              f"to {package.response_for.organ_id}")
    return 0


def sign_command(args: argparse.Namespace) -> int:
    from connector.edxml.signing import sign_package_file

    read_package_file(args.package)  # refuse to sign what is not a usable package
    key = load_signing_key(args)
    out = Path(args.out)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise InputError("output folder does not exist", file=str(directory),
                         hint="create the folder or choose another --out")
    # Streams the base64 texts: a 100 MB package is not held twice in memory.
    with library_warnings() as logged:
        warnings = sign_package_file(args.package, out, key, algorithm=args.algorithm)
    _fsync_directory(directory)
    warn_all([*logged, *warnings], args.algorithm)
    print(f"Wrote {args.out}: signed ({args.algorithm})")
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    from connector.edxml.summary import render_text, summarize

    data = load_package_bytes(args.package)
    result = read_package_file(args.package, data)
    signature = verify_bytes(data, args.trust, str(args.package))
    summary = summarize(result, signature=signature)
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_text(summary))
    return 0


def verify_command(args: argparse.Namespace) -> int:
    data = load_package_bytes(args.package)
    read_package_file(args.package, data)  # unreadable -> typed error, exit 2
    result = verify_bytes(data, args.trust, str(args.package))
    state = getattr(result.state, "value", result.state)
    reason = f": {result.reason}" if getattr(result, "reason", None) else ""
    subject = getattr(result, "signer_subject", None)
    signer = f" (signer: {subject})" if subject and subject not in reason else ""
    print(f"{state}{reason}{signer}")
    return 0 if state == "valid" else 1


def status_package_command(args: argparse.Namespace) -> int:
    from connector import packaging

    result = read_package_file(args.for_package)
    original = result.package
    if not isinstance(original, model.DocumentPackage):
        raise InputError("this is a status package; a status answers a document package",
                         file=str(args.for_package), hint="give the document package with --for")
    status = packaging.status_for(original, from_=model.Organization(organ_id=args.from_organ_id),
                                  code=args.code, to=args.to, description=args.description)
    write_package_file(status, args.out, None, "rsa-sha256")
    code = status.status_code
    print(f"Wrote {args.out}: status {code.value} ({code.label_en}) for {original.document_id} "
          f"to {status.response_for.organ_id}")
    return 0


def schema_command(args: argparse.Namespace) -> int:
    json.dump(json_schema(args.name), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


__all__ = ["register", "register_schema", "registered_schemas", "json_schema",
           "load_signing_key", "write_package_file"]
