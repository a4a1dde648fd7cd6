"""Reading secrets from where an operator keeps them: a file, an environment variable, or a
systemd credential (``LoadCredential=NAME:...`` makes ``$CREDENTIALS_DIRECTORY/NAME``).

A secret is never written in the YAML itself: the config names *where* it is (``secret_file``,
``secret_env`` or ``secret_credential``) and the value only ever lives in a ``SecretStr``, which
prints as ``**********``. Errors name the key and the place, never the value.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from pydantic import SecretStr

CREDENTIAL_NAME = re.compile(r"^[A-Za-z0-9_.@:-]+$")
SOURCES = ("file", "env", "credential")


class SecretSourceError(ValueError):
    """A secret could not be read. ``key`` is the config key at fault (e.g. ``secret_file``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def read_secret(base: str, *, file: str | os.PathLike[str] | None = None, env: str | None = None,
                credential: str | None = None, required: bool = True,
                warnings: list[str] | None = None) -> SecretStr | None:
    """Read the secret named ``base`` from exactly one of its three sources.

    A file's trailing newline is dropped (editors add one); anything else is kept as it is.
    A file readable by every user is accepted with a warning appended to ``warnings``.
    """
    given = {name: value for name, value in (("file", file), ("env", env), ("credential", credential))
             if value not in (None, "")}
    if len(given) > 1:
        keys = ", ".join(f"{base}_{name}" for name in given)
        raise SecretSourceError(f"{base}_{next(iter(given))}", f"give only one of {keys}")
    if not given:
        if required:
            raise SecretSourceError(
                f"{base}_file", f"missing: set {base}_file, {base}_env or {base}_credential")
        return None
    source, where = next(iter(given.items()))
    key = f"{base}_{source}"
    if source == "env":
        value = os.environ.get(str(where))
        if value is None or value == "":
            raise SecretSourceError(key, f"environment variable {where} is not set or empty — "
                                         f"export it for the service, or use {base}_file")
        return SecretStr(value)
    if source == "credential":
        name = str(where)
        if not CREDENTIAL_NAME.match(name):
            raise SecretSourceError(key, f"{name!r} is not a credential name (letters, digits, "
                                         "'_', '.', '-' only)")
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SecretSourceError(key, "CREDENTIALS_DIRECTORY is not set — run under systemd with "
                                         f"LoadCredential={name}:/path/to/file, or use {base}_file")
        path = Path(directory) / name
    else:
        path = Path(str(where)).expanduser()
    try:
        info = path.stat()
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SecretSourceError(key, f"{path}: no such file — create it (mode 0600) or fix the "
                                     "path") from None
    except PermissionError:
        raise SecretSourceError(key, f"{path}: permission denied — make it readable by the "
                                     "connector's user (owner or group), mode 0600/0640") from None
    except OSError as error:
        raise SecretSourceError(key, f"{path}: {error.strerror or error}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretSourceError(key, f"{path}: not a regular file")
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretSourceError(key, f"{path}: not UTF-8 text") from None
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    if not value:
        raise SecretSourceError(key, f"{path}: the file is empty — write the secret into it")
    if warnings is not None and info.st_mode & stat.S_IROTH and source == "file":
        warnings.append(f"{key}: {path} is readable by every user on this machine; "
                        f"chmod 0600 {path}")
    return SecretStr(value)
