"""Errors of the axis side, typed by what the caller must do about them.

The daemon needs three different reactions, so there are three types rather than one with a flag:

* :class:`TransientAxisError` — the axis (or the path to it) is unwell: retry later. Raised only
  after the client's own bounded retries are spent; it keeps the last cause.
* :class:`PermanentAxisError` — the axis refused *this package* (malformed, unknown recipient, hash
  mismatch): retrying the same bytes will never work, so the item fails with the axis's code and
  text kept for the operator.
* :class:`AxisAuthError` — the axis refused *us* (bad signature, unknown systemid, sender not ours).
  No item is at fault: the daemon pauses sending and turns readiness red without spending the
  items' attempts.
"""

from __future__ import annotations

from connector.errors import ConnectorError, InputError


class AxisError(ConnectorError):
    """Base class of everything the axis client raises on purpose."""

    def __init__(self, message: str, *, operation: str | None = None,
                 error_code: str | None = None, error_desc: str | None = None,
                 http_status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, element=operation, hint=hint)
        self.operation = operation
        self.error_code = error_code
        self.error_desc = error_desc
        self.http_status = http_status


class TransientAxisError(AxisError):
    """The call did not succeed but may later: connection error, timeout, HTTP 5xx/429, a body
    that is not the expected JSON, or a FAIL code the client does not know. ``attempts`` is how
    many tries were made before giving up."""

    attempts: int = 1


class PermanentAxisError(AxisError):
    """The axis refused the package itself (a FAIL whose code is in the permanent set)."""

    def __init__(self, error_code: str, error_desc: str, *, operation: str | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(f"the axis refused the package: FAIL {error_code}: {error_desc}",
                         operation=operation, error_code=error_code, error_desc=error_desc,
                         http_status=http_status,
                         hint="fix the package (or its recipients) and send it again")


class AxisAuthError(AxisError):
    """The axis refused our credentials (HTTP 401/403 or an authentication FAIL code)."""

    def __init__(self, message: str, *, operation: str | None = None,
                 error_code: str | None = None, error_desc: str | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message, operation=operation, error_code=error_code,
                         error_desc=error_desc, http_status=http_status,
                         hint="check systemid, secret and the sender OrganId in the axis settings")


class RequestVerificationError(AxisError):
    """A received request failed signature verification (raised by the protocol module on the
    server side; the simulator answers it with HTTP 401 and a FAIL body)."""

    def __init__(self, message: str, *, error_code: str) -> None:
        super().__init__(message, error_code=error_code, error_desc=message, http_status=401)


class AxisSettingsError(InputError):
    """The axis settings or the simulator's agencies file are unusable."""
