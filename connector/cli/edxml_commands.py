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

Imports inside the handlers are deliberate: every command module is imported to register its
arguments, so what one command needs (the pipelines, lxml, cryptography, SQLAlchemy, rich...)
is imported by that command only. ``edxml-connector --help`` takes ≈ 0.35 s this way;
importing all of it first would add ≈ 0.8 s (measured 2026-12-07, this machine).
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
from connector.edxml.attachments import DEFAULT_AS_IS_EXTENSIONS, ZipConvention
from connector.edxml.xmlparse import DEFAULT_MAX_PACKAGE_SIZE, ParseLimits
from connector.errors import InputError, PackageTooLarge
from connector.schemas.document import DocumentMetadata, load_document_metadata

PASSWORD_ENV = "EDXML_KEY_PASSWORD"
ALGORITHMS = ("rsa-sha256", "rsa-sha1")
MEBIBYTE = 1024 * 1024

# --------------------------------------------------------------------------- schema registry

_SCHEMAS: dict[str, Any] = {}


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
    _add_zip_convention_arguments(parser)
    _add_max_size_argument(parser)
    parser.set_defaults(handler=pack_command)

    parser = subparsers.add_parser(
        "sign", help="(re)sign an existing package, replacing any signature it carries",
        description="Sign PACKAGE with an enveloped XMLDSig (RSA-SHA256 unless --algorithm "
                    "rsa-sha1 is asked for a peer that needs it).")
    parser.add_argument("package", metavar="PACKAGE", type=Path)
    _add_key_arguments(parser, allow_unsigned=False)
    parser.add_argument("--out", metavar="FILE", type=Path, required=True)
    _add_max_size_argument(parser)
    parser.set_defaults(handler=sign_command)

    parser = subparsers.add_parser(
        "inspect", help="show what a package says (--json for scripts)",
        description="Read PACKAGE leniently and show its fields, attachments, warnings and "
                    "signature outcome.")
    parser.add_argument("package", metavar="PACKAGE", type=Path)
    parser.add_argument("--trust", metavar="CA.pem", type=Path,
                        help="trust bundle (PEM file or directory) for the signature check")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    _add_max_size_argument(parser)
    parser.set_defaults(handler=inspect_command)

    parser = subparsers.add_parser(
        "verify", help="check a package's signature: exit 0 only when valid",
        description="Verify PACKAGE's signature and certificate. Prints the outcome (valid, "
                    "invalid, absent, unverifiable, untrusted, expired, revoked, wrong-signer, "
                    "revocation-unknown, unbound) and the reason. With --trust alone, revocation "
                    "and the signer binding are not checked (--crls, --signers ask them, as the "
                    "daemon does). Exit 0 for valid, 1 for any other outcome, 2 when the package "
                    "cannot be read.")
    parser.add_argument("package", metavar="PACKAGE", type=Path)
    parser.add_argument("--trust", metavar="CA.pem", type=Path,
                        help="trust bundle (PEM file or directory)")
    parser.add_argument("--crls", metavar="DIR", type=Path,
                        help="CRL folder: also check revocation (from it only: nothing is fetched)")
    parser.add_argument("--signers", metavar="FILE", type=Path,
                        help="signer mapping (trust.signer_map_file): also check the signer is bound to From")
    _add_max_size_argument(parser)
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
    _add_max_size_argument(parser)
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


def _add_max_size_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-size", metavar="MB", type=_positive_megabytes, default=DEFAULT_MAX_PACKAGE_SIZE,
        help=f"largest package to read or build, in MiB (default "
             f"{DEFAULT_MAX_PACKAGE_SIZE // MEBIBYTE}; the daemon's edxml.max_package_size_mb)")


def _add_zip_convention_arguments(parser: argparse.ArgumentParser) -> None:
    """The ZIP convention as options, mirroring the daemon's ``outbound.zip_other_files`` and
    ``outbound.plain_extensions`` settings."""
    default = ",".join(sorted(DEFAULT_AS_IS_EXTENSIONS))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--plain-extensions", metavar="EXT,...", type=_extension_list,
                       help=f"file types sent as they are; any other file is sent as a one-entry "
                            f"ZIP (default {default})")
    group.add_argument("--no-zip", action="store_true",
                       help="send every file as it is (for a peer that does not unzip)")


def _positive_megabytes(text: str) -> int:
    """``--max-size`` in MiB -> bytes (argparse turns the error into a usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of MiB (1 or more)")
    return value * MEBIBYTE


def _extension_list(text: str) -> frozenset[str]:
    extensions = frozenset(item.strip().lower().lstrip(".") for item in text.split(",") if item.strip())
    if not extensions:
        raise argparse.ArgumentTypeError(f"{text!r} names no file type (e.g. pdf,docx,odt)")
    return extensions


def parse_limits(args: argparse.Namespace) -> ParseLimits:
    """The parser limits the arguments ask for (``--max-size``)."""
    return ParseLimits(max_package_size=getattr(args, "max_size", DEFAULT_MAX_PACKAGE_SIZE))


def zip_convention(args: argparse.Namespace) -> ZipConvention:
    """The ZIP convention the arguments ask for (``--no-zip``, ``--plain-extensions``)."""
    if getattr(args, "no_zip", False):
        return ZipConvention(enabled=False)
    extensions = getattr(args, "plain_extensions", None)
    return ZipConvention(as_is_extensions=extensions) if extensions else ZipConvention()


@contextlib.contextmanager
def size_limit_hint():
    """A package over the limit names the option that raises it (the library's own hint names
    the daemon's configuration key)."""
    try:
        yield
    except PackageTooLarge as error:
        raise PackageTooLarge(error.message, file=error.file, line=error.line,
                              element=error.element,
                              hint="pass --max-size MB if a package this large is expected") from error


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


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a regular file, else an InputError naming it (exit 2)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found" if not path.exists() else f"{what} is not a file",
                         file=str(path), hint=f"check the path of the {what}")
    return path


def read_package_file(path: Path, limits: ParseLimits | None = None):
    """Read a package with the library's lenient, hardened reader (typed error when unusable);
    the size limit is checked before the file is read."""
    from connector.edxml.reader import read_package

    path = require_file(path, "package file")
    with size_limit_hint():
        return read_package(path, limits=limits or ParseLimits(), file=str(path))


def verify_file(path: Path, trust: Path | None, limits: ParseLimits | None = None, *,
                crls: Path | None = None, signers: Path | None = None):
    """The signature outcome of the package in ``path``, verified from the file (long base64
    texts are digested from disk rather than held in memory). ``crls`` and ``signers`` add the
    revocation and binding questions the daemon asks."""
    from connector.edxml.revocation import RevocationChecker, load_crl_folder
    from connector.edxml.signer_binding import load_signer_bindings
    from connector.edxml.signing import verify_package_file
    from connector.edxml.trust_store import TrustStore

    if trust is not None and not trust.exists():
        raise InputError("trust bundle not found", file=str(trust),
                         hint="give a PEM file or a folder of PEM certificates")
    store = TrustStore.of(trust)
    if store is not None:  # each question asked only when its file is given; nothing is fetched
        store = TrustStore(store.anchors,
                           load_signer_bindings(signers) if signers is not None else None,
                           RevocationChecker(load_crl_folder(crls), None) if crls is not None else None)
    with size_limit_hint():
        return verify_package_file(path, trust=store, limits=limits or ParseLimits())


def write_package_file(package: model.Package, out: Path, key, algorithm: str,
                       limits: ParseLimits | None = None) -> None:
    """Serialise (and sign) ``package`` into ``out``, streaming attachments from their files so
    that a package of hundreds of megabytes never sits in memory as base64 text. The writer
    writes a temporary name, fsyncs and renames; the folder is fsynced here.

    A package over the maximum size would be refused by every receiver applying the same
    limit, so it is refused here: before writing when the attachments alone exceed it, else
    (header and signature included) by removing what was written."""
    from connector.edxml.writer import write_package_to

    limits = limits or ParseLimits()
    out = Path(out)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise InputError("output folder does not exist", file=str(directory),
                         hint="create the folder or choose another --out")
    attachments = getattr(package, "attachments", [])
    encoded = sum(4 * -(-item.size // 3) for item in attachments)
    if encoded > limits.max_package_size:
        raise _too_large_to_send(encoded, limits, out, "at least ")
    with library_warnings() as logged:
        written = write_package_to(package, out, signer=key, algorithm=algorithm)
    if written.size > limits.max_package_size:
        out.unlink(missing_ok=True)
        raise _too_large_to_send(written.size, limits, out, "")
    _fsync_directory(directory)
    warn_all([*logged, *written.warnings], algorithm if key is not None else None)


def _too_large_to_send(size: int, limits: ParseLimits, out: Path, qualifier: str) -> PackageTooLarge:
    return PackageTooLarge(
        f"the package would be {qualifier}{size} bytes, more than the limit of "
        f"{limits.max_package_size} bytes; nothing was written", file=str(out),
        hint="send fewer or smaller attachments, or pass --max-size MB if the receivers accept it")


# --------------------------------------------------------------------------- handlers

def dev_certs_command(args: argparse.Namespace) -> int:
    from connector.devtools.devcerts import make_dev_certs

    directory: Path = args.directory
    if directory.exists() and not directory.is_dir():
        raise InputError("not a folder", file=str(directory), hint="give a folder for the certificates")
    directory.mkdir(parents=True, exist_ok=True)
    certs = make_dev_certs(directory)
    print(f"Wrote throwaway certificates to {directory} (for demos and tests only):")
    for label, value in _certificate_rows(certs):
        print(f"  {label:<24} {value}")
    return 0


def _certificate_rows(certs: Any) -> list[tuple[str, str]]:
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


def _operator_files(files) -> dict[str, Path] | list[str]:
    """The operator's attachment arguments by name, a symlink replaced by the file it names.
    Files are opened without following links (an outbox file swapped for a link must not be
    sent); a link the operator typed on the command line is their choice, so it is resolved
    here, while the name the receiver sees stays the one typed."""
    names = [Path(name).name for name in files]
    if len(set(names)) != len(names):
        return list(files)  # build_document reports the clash, naming both files
    return {Path(name).name: (Path(os.path.realpath(name)) if os.path.islink(name) else Path(name))
            for name in files}


def pack_command(args: argparse.Namespace) -> int:
    from connector.pipeline import packaging
    metadata = load_document_metadata(require_file(args.metadata, "metadata file"))
    key = load_signing_key(args)
    source = str(args.metadata)
    if metadata.take_back is not None:
        return _pack_take_back(args, metadata, key, source)
    package = packaging.build_document(metadata, _operator_files(args.files), source=source,
                                       convention=zip_convention(args))
    write_package_file(package, args.out, key, args.algorithm, parse_limits(args))
    signed = "unsigned" if key is None else f"signed ({args.algorithm})"
    print(f"Wrote {args.out}: {package.document_id} — {len(package.attachments)} attachment(s), "
          f"{signed}")
    return 0


def _pack_take_back(args: argparse.Namespace, metadata: DocumentMetadata, key,
                    source: str) -> int:
    """A take-back is one status 13 per receiver: the first goes to --out, the others beside it
    with the receiver's identifier in the name (``OUT-<organ_id>.edxml``) when there are several."""
    from connector.pipeline import packaging
    if args.files:
        raise InputError("a take-back request carries no attachments", file=source,
                         element="take_back", hint="drop the FILE arguments")
    if metadata.take_back is None:
        raise InputError("the document.yaml asks for no take-back", file=source, element="take_back")
    sender = packaging.sender_of(metadata, source=source)
    staff = metadata.business.staff
    packages = packaging.build_take_back(metadata.take_back, sender, staff=staff)
    outputs = [args.out] if len(packages) == 1 else [
        args.out.with_name(f"{args.out.stem}-{item.response_for.organ_id}{args.out.suffix}")
        for item in packages]
    for package, out in zip(packages, outputs, strict=True):
        write_package_file(package, out, key, args.algorithm, parse_limits(args))
        print(f"Wrote {out}: status 13 (take-back) for {package.response_for.document_id} "
              f"to {package.response_for.organ_id}")
    return 0


def sign_command(args: argparse.Namespace) -> int:
    from connector.edxml.signing import sign_package_file

    limits = parse_limits(args)
    read_package_file(args.package, limits)  # refuse to sign what is not a usable package
    key = load_signing_key(args)
    out = Path(args.out)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise InputError("output folder does not exist", file=str(directory),
                         hint="create the folder or choose another --out")
    # Streams the base64 texts: a 100 MB package is not held twice in memory.
    with library_warnings() as logged:
        warnings = sign_package_file(args.package, out, key, algorithm=args.algorithm,
                                     limits=limits)
    _fsync_directory(directory)
    warn_all([*logged, *warnings], args.algorithm)
    print(f"Wrote {args.out}: signed ({args.algorithm})")
    return 0


def inspect_command(args: argparse.Namespace) -> int:
    from connector.edxml.summary import render_text, summarize

    limits = parse_limits(args)
    result = read_package_file(args.package, limits)
    summary = summarize(result, signature=verify_file(args.package, args.trust, limits))
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_text(summary))
    return 0


def verify_command(args: argparse.Namespace) -> int:
    limits = parse_limits(args)
    read_package_file(args.package, limits)  # unreadable -> typed error, exit 2
    result = verify_file(args.package, args.trust, limits, crls=args.crls, signers=args.signers)
    state = getattr(result.state, "value", result.state)
    reason = f": {result.reason}" if getattr(result, "reason", None) else ""
    subject = getattr(result, "signer_subject", None)
    signer = f" (signer: {subject})" if subject and subject not in reason else ""
    print(f"{state}{reason}{signer}")
    warn_all(getattr(result, "warnings", ()))
    return 0 if state == "valid" else 1


def status_package_command(args: argparse.Namespace) -> int:
    from connector.pipeline import packaging
    result = read_package_file(args.for_package, parse_limits(args))
    original = result.package
    if not isinstance(original, model.DocumentPackage):
        raise InputError("this is a status package; a status answers a document package",
                         file=str(args.for_package), hint="give the document package with --for")
    status = packaging.status_for(original, from_=model.Organization(organ_id=args.from_organ_id),
                                  code=args.code, to=args.to, description=args.description)
    write_package_file(status, args.out, None, "rsa-sha256")
    code = model.StatusCode(status.status_code)
    print(f"Wrote {args.out}: status {code.value} ({code.label_en}) for {original.document_id} "
          f"to {status.response_for.organ_id}")
    return 0


def schema_command(args: argparse.Namespace) -> int:
    json.dump(json_schema(args.name), sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


__all__ = ["register", "register_schema", "registered_schemas", "json_schema",
           "load_signing_key", "parse_limits", "write_package_file", "zip_convention"]
