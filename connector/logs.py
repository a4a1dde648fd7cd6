"""Logging: structlog JSON lines on stdout (journald keeps them), optionally a rotating file,
a level that can change at run time, and secrets redacted before anything is written.

WHY through the standard library's ``logging``: the handlers (stdout, ``RotatingFileHandler``)
and the level live in one place, so ``set_level`` on SIGHUP changes everything at once, and the
libraries we use (APScheduler, urllib3, watchdog, SQLAlchemy) come out as the same JSON lines,
redacted by the same processor.

Every line is one JSON object; the field schema is documented in ``docs/operations.md``
("Logs"). The fixed fields are ``timestamp`` (ISO 8601, UTC), ``level``, ``event`` (a short
snake_case name for what happened) and ``logger``; the rest is context such as ``item_id``,
``document_id``, ``axis_doc_id``, ``direction``, ``from_state``/``to_state``, ``attempt``,
``duration_ms`` and ``error``.

Redaction (:class:`SecretRedactor`): a field whose *name* says it holds a secret (secret,
password, token, authorization, the axis's hash/sign headers...) is replaced by ``[REDACTED]``
at any depth of nesting; and any *value* registered with :func:`register_secret` (the axis secret,
the key password, as loaded) is cut out of every string, the event text and tracebacks included.
"""

from __future__ import annotations

import functools
import io
import logging
import logging.handlers
import os
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from connector.errors import ConfigError

__all__ = [
    "configure_logging",
    "set_level",
    "get_logger",
    "register_secret",
    "SecretRedactor",
    "REDACTED",
]

REDACTED = "[REDACTED]"

# Parts of a field name that mark it as secret (compared lower-case, with "_" read as "-").
SECRET_NAME_PARTS = (
    "secret",
    "password",
    "passwd",
    "passphrase",
    "token",
    "authorization",
    "hash-header",   # XroadVnpt-hash-header: the HMAC of the signed headers
    "sign-header",   # XroadVnpt-sign-header(-key): redacted too, as the brief of the axis asks
    "private-key",
    "privatekey",
    "api-key",
    "apikey",
    "cookie",
)
# ...unless the name ends like this: these name *where* a secret is, which an operator needs to
# see in an error ("secret_file: /etc/... is not readable").
SAFE_NAME_SUFFIXES = ("-file", "-path", "-credential", "-env", "-source")

# Secrets shorter than this are only redacted where a whole value equals them: cutting a
# three-letter string out of every log line would destroy the log and protect nothing.
MIN_SUBSTRING_SECRET = 4

# Libraries whose INFO is noise at our poll rate (APScheduler logs every job run): they stay at
# WARNING unless the configured level is stricter.
QUIET_LIBRARIES = ("apscheduler", "urllib3", "watchdog", "sqlalchemy", "alembic")

_LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
           "warn": logging.WARNING, "info": logging.INFO, "debug": logging.DEBUG}


def _normalise_name(name: str) -> str:
    return name.lower().replace("_", "-")


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Whether a field called ``name`` holds a secret. Cached: every field of every log line
    asks, and the same few dozen names come back all the time (uncached, this check was half
    the cost of writing a line)."""
    key = _normalise_name(name)
    if key.endswith(SAFE_NAME_SUFFIXES):
        return False
    return any(part in key for part in SECRET_NAME_PARTS)


_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})


class SecretRedactor:
    """A structlog processor: redacts by field name and by registered secret value."""

    def __init__(self, secrets: Iterable[str | bytes] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        for secret in secrets:
            self.register(secret)

    def register(self, secret: str | bytes | None) -> None:
        """Remember a secret value (e.g. the axis secret as read from its file)."""
        if secret is None:
            return
        if isinstance(secret, bytes):
            secret = secret.decode("utf-8", "replace")
        secret = secret.strip("\r\n")
        if not secret:
            return
        with self._lock:
            if secret not in self._secrets:
                # Longest first, so that a secret containing another is cut out whole.
                self._secrets = tuple(sorted({*self._secrets, secret}, key=len, reverse=True))

    def clear(self) -> None:
        with self._lock:
            self._secrets = ()

    def redact_value(self, value: Any) -> Any:
        if type(value) in _PLAIN_SCALARS:  # most fields (ids are str, below): nothing to hide
            return value
        secrets = self._secrets
        if isinstance(value, str):
            for secret in secrets:
                if value == secret:
                    return REDACTED
                if len(secret) >= MIN_SUBSTRING_SECRET and secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, bytes):
            return self.redact_value(value.decode("utf-8", "replace"))
        if isinstance(value, dict):
            return {k: (REDACTED if isinstance(k, str) and is_secret_name(k)
                        else self.redact_value(v)) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.redact_value(v) for v in value]
        if isinstance(value, BaseException):
            return self.redact_value(f"{type(value).__name__}: {value}")
        return value

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
                 ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key.startswith("_"):  # structlog's own bookkeeping (_record, _from_structlog)
                continue
            if is_secret_name(key):
                event_dict[key] = REDACTED
            else:
                event_dict[key] = self.redact_value(event_dict[key])
        return event_dict


# The process-wide redactor used by configure_logging; register secrets on it.
redactor = SecretRedactor()


def register_secret(secret: str | bytes | None) -> None:
    """Make sure this value never appears in the log. Call it when a secret is loaded."""
    redactor.register(secret)


def parse_level(level: str | int, key: str = "logging.level") -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    if isinstance(level, str) and level.strip().lower() in _LEVELS:
        return _LEVELS[level.strip().lower()]
    raise ConfigError(f"unknown log level {level!r}", element=key,
                      hint="use one of debug, info, warning, error, critical")


def _shared_processors() -> list:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.UnicodeDecoder(),
    ]


FIRST_FIELDS = ("timestamp", "level", "logger", "event")


def _fixed_fields_first(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
                        ) -> MutableMapping[str, Any]:
    """Put the fixed fields first, so that a line reads well in ``journalctl`` too."""
    ordered = {key: event_dict.pop(key) for key in FIRST_FIELDS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _formatter(json_lines: bool) -> structlog.stdlib.ProcessorFormatter:
    renderer = (structlog.processors.JSONRenderer(ensure_ascii=False, default=str) if json_lines
                else structlog.dev.ConsoleRenderer(colors=False))
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        # The redactor runs last before rendering, so that it sees every line, ours and the
        # libraries', with its traceback already turned into text.
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redactor,
                    _fixed_fields_first, renderer],
    )


_OUR_HANDLER = "_edxml_connector_handler"


def configure_logging(level: str | int = "info", *, json_lines: bool = True,
                      stream: TextIO | io.TextIOBase | None = None,
                      file: str | os.PathLike | None = None,
                      file_max_bytes: int = 10 * 1024 * 1024, file_backup_count: int = 5,
                      secrets: Iterable[str | bytes] = ()) -> None:
    """Set up logging for the process. Safe to call again (a reload replaces our handlers).

    ``stream`` defaults to ``sys.stdout`` (journald captures it under systemd). ``file`` adds a
    ``RotatingFileHandler`` (``file_max_bytes`` per file, ``file_backup_count`` old files kept),
    typically under ``/var/log/edxml-connector/`` (the unit's ``LogsDirectory=``).
    """
    numeric = parse_level(level)
    for secret in secrets:
        register_secret(secret)
    _skip_unused_record_fields()

    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    if file is not None:
        try:
            handlers.append(logging.handlers.RotatingFileHandler(
                os.fspath(file), maxBytes=file_max_bytes, backupCount=file_backup_count,
                encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"cannot open the log file: {error.strerror or error}",
                              file=os.fspath(file), element="logging.file",
                              hint="create its directory writable by the service user, or "
                                   "remove logging.file to log to the journal only") from error
    formatter = _formatter(json_lines)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _OUR_HANDLER, False):
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        setattr(handler, _OUR_HANDLER, True)
        handler.setFormatter(formatter)
        root.addHandler(handler)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    set_level(numeric)


def _skip_unused_record_fields() -> None:
    """Our lines carry neither the caller's file and line nor thread or process names, so the
    standard library need not look them up for every record — the "Optimization" switches of
    the logging HOWTO. Finding the caller walks the stack: at five lines per document it was
    a visible part of the daemon's CPU."""
    logging._srcfile = None  # documented: no sys._getframe()
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def set_level(level: str | int) -> None:
    """Change the level at run time (SIGHUP reload). Takes effect on the next log call."""
    numeric = parse_level(level)
    logging.getLogger().setLevel(numeric)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """``log = get_logger(__name__)`` — the ``logger`` field of each line."""
    return structlog.get_logger(name)
