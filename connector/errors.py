"""The project's exception hierarchy, so that callers (and the command line) can catch precisely.

Every error the connector raises on purpose derives from :class:`ConnectorError` and carries
enough context for a one-line message an operator can act on: which file, where in it, what is
wrong and what to do. ``InputError`` means the input is at fault (exit code 2 on the command
line); anything else is an operational failure (exit code 1).
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class. ``hint`` says what to do about it."""

    exit_code = 1

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 element: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        self.element = element
        self.hint = hint

    def one_line(self) -> str:
        """``file:line: element: message — hint`` with the parts that are known."""
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.line:
            where = f"line {self.line}: "
        element = f"{self.element}: " if self.element else ""
        hint = f" — {self.hint}" if self.hint else ""
        return f"{where}{element}{self.message}{hint}"

    def __str__(self) -> str:  # pragma: no cover - exercised through one_line
        return self.one_line()


class InputError(ConnectorError):
    """The input (a package, a metadata file, a config file, an argument) is unusable."""

    exit_code = 2


class EdxmlError(InputError):
    """An edXML package cannot be used: not well-formed beyond recovery, or missing what every
    package needs (From/OrganId, a To for a document, a referenced attachment, valid base64...)."""


class PackageTooLarge(EdxmlError):
    """The package exceeds the configured maximum size."""


class HostilePackage(EdxmlError):
    """The package tries DTDs, entity expansion or external references."""


class SigningError(ConnectorError):
    """A package could not be signed (key, certificate, password or algorithm problem)."""


class CertificateError(SigningError, InputError):
    """A key or certificate is unusable: unreadable, wrong password, expired, not yet valid."""

    exit_code = 2


class SignerUnavailable(CertificateError):
    """The signing key cannot be used right now — its token is absent or unreachable. Nobody's
    document is at fault: the documents wait in the journal and the unit's signing pauses until
    the token answers again. ``reason`` is the short word readiness and the metric carry."""

    reason = "token-absent"


class TokenPinRefused(SignerUnavailable):
    """The token refused the PIN. Never tried again by itself (a real token locks after a few
    wrong tries): signing stays paused until the configuration is reloaded."""

    reason = "pin-refused"


class ConfigError(InputError):
    """The configuration file is invalid. The message names the key and the fix."""


def describe_error(error: BaseException) -> str:
    """The one line an operator reads about an error, in logs, ``check``, ``status`` and the
    journal alike: a connector error as its ``file: element: message — hint``; an OS error with
    the file it concerns; anything else with its type, which is then the only clue."""
    if isinstance(error, ConnectorError):
        return error.one_line()
    if isinstance(error, OSError):
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        return f"{where}{error.strerror or error}"
    return f"{type(error).__name__}: {error}"
