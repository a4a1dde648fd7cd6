"""``edxml-connector token list``: what a PKCS#11 module sees, to fill in ``certificate.token``.

IT staff receive a token and the vendor's module (``.so``); the settings want the token's label
or serial and the key's label or id. This command prints them: every token with its label,
serial and model, and the objects on it — certificates (subject and dates) and public keys
without a PIN, private keys too with ``--pin-file``/``--pin-env`` (a token shows its private
keys only after a login). The PIN is never printed. A wrong PIN is reported, not retried.

Imports inside the handlers are deliberate: every command module is imported to register its
arguments, so what one command needs is imported by that command only (``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import os

from connector.errors import InputError


def register(subparsers) -> None:
    """Add this group's sub-commands."""
    parser = subparsers.add_parser(
        "token", help="PKCS#11 tokens: list what a module sees (for certificate.token)",
        description="Keys in USB tokens and HSMs, through the vendor's PKCS#11 module.")
    commands = parser.add_subparsers(dest="token_command", metavar="ACTION")
    listing = commands.add_parser(
        "list", help="the tokens, keys and certificates a PKCS#11 module sees",
        description="Print every token the module sees (label, serial, model) and its objects: "
                    "certificates and public keys; private keys too when a PIN is given. "
                    "What to write in certificate.token: module, token_label (or "
                    "token_serial), key_label (or key_id).")
    listing.add_argument("--module", required=True, metavar="PATH",
                         help="the vendor's PKCS#11 module (SoftHSM2: "
                              "/usr/lib/softhsm/libsofthsm2.so)")
    listing.add_argument("--token", default=None, metavar="LABEL",
                         help="log in to this token only (with the PIN)")
    pin = listing.add_mutually_exclusive_group()
    pin.add_argument("--pin-file", default=None, metavar="FILE",
                     help="file holding the user PIN (to show private keys)")
    pin.add_argument("--pin-env", default=None, metavar="VAR",
                     help="environment variable holding the user PIN")
    listing.set_defaults(handler=list_tokens_command)
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)


def list_tokens_command(args: argparse.Namespace) -> int:
    from connector.edxml.tokens import list_tokens
    from connector.secrets import SecretSourceError, read_secret

    pin = None
    if args.pin_file or args.pin_env:
        try:
            secret = read_secret("pin", file=args.pin_file, env=args.pin_env, credential=None,
                                 required=True)
        except SecretSourceError as error:
            raise InputError(f"--pin: {error}", hint="give a readable PIN file or a set variable") from None
        pin = secret.get_secret_value() if secret is not None else None
    listings = list_tokens(os.path.expanduser(args.module), pin, args.token)
    if not listings:
        print(f"no initialised token in {args.module} (is it plugged in?)")
        return 1
    for token in listings:
        print(f"token {token.label!r}  serial {token.serial}  ({token.manufacturer}, {token.model}, "
              f"slot {token.slot})")
        for found in token.objects:
            line = f"  {found.kind:<12} label {found.label!r}  id {found.id_hex or '-'}"
            print(line + (f"  {found.detail}" if found.detail else ""))
        if not token.objects:
            print("  (no objects visible)")
        if token.note:
            print(f"  note: {token.note}")
    print("\ncertificate.token settings: module, token_label (or token_serial), key_label (or "
          "key_id), pin_file (or pin_env)")
    return 0
