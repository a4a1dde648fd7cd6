"""Sending stored packages from worker processes: the HTTP request out of the daemon's GIL.

WHY: at a hundred documents a second the daemon's main process is the bottleneck, close to one
full core, and its single GIL is shared by the journal, the folder side, the log lines and the
HTTP client. ``requests`` with urllib3 and ``http.client`` under it costs about 1.5 ms of CPU
per send — a quarter of that GIL time. A send is a small job with a small answer (a path and a
digest in, an axis DocId out), so it is done in one of a few worker processes instead, each
with its own kept-alive connection, while the daemon's send thread waits on a pipe without the
GIL. The daemon keeps every decision: which item, when, the send slots, what an error means.

What does not change with the process that sends:
- the client: each worker builds the same :class:`~connector.axis.client.AxisClient` from the
  daemon's own settings (endpoint, systemid, secret, TLS trust, proxy, timeouts, the retry
  policy of one call), handed to it once at start through its pipe, never logged;
- the errors: raised again in the daemon with their type and fields
  (:class:`~connector.axis.errors.PermanentAxisError` fails the item,
  :class:`~connector.axis.errors.AxisAuthError` pauses sending, a transient one is retried);
- the log lines: the client's lines (a retry, a give-up) are captured in the worker and written
  by the daemon's logging after the reply, so they are redacted and go where the daemon's go;
- the metrics and readiness: each HTTP request's URL, duration and ``Date`` header come back
  with the reply for the latency histogram and the clock-skew check (:attr:`SendPool.observe`).

A worker that dies breaks the pool (see :mod:`connector.worker_pool`) and sends go back to the
daemon's own client. A send cut short that way may have reached the axis: it is sent again,
which at-least-once allows (receivers de-duplicate).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.worker_pool import WorkerPool, portable

_CLIENT_LOG = logging.getLogger("connector.axis.client")
"""The logger of the client's own lines: its level in the daemon is the workers' level."""

RequestSeen = tuple[str, float, "str | None"]
"""One HTTP request a worker made: (URL, seconds until the answer or the failure, the answer's
``Date`` header)."""


@dataclass(frozen=True)
class SendJob:
    path: str
    sha256: str
    messagetype: str  # "edoc" or "status"
    log_level: int  # the client logger's level in the daemon now (SIGHUP may change it)


@dataclass(frozen=True)
class SendOutcome:
    """What a worker answers for every job, sent or not: what to re-raise, log and observe."""

    doc_id: str | None
    error: BaseException | None
    requests: tuple[RequestSeen, ...]
    logs: tuple[tuple[int, str, str], ...]  # (level, logger name, message)


class SendPool(WorkerPool):
    """Worker processes that send stored packages with their own axis client.

    :meth:`send` answers None when the pool cannot take the send now (broken, shut down, or
    every worker busy): the caller then sends with the daemon's own client. With one worker per
    send slot (the default) a slot holder always finds an idle worker."""

    role = "send"

    def __init__(self, workers: int, settings: Any, *, context: str = "forkserver") -> None:
        self.sent = 0  # packages the workers had accepted (tests, diagnostics)
        self.observe: Callable[[str, float, str | None], None] | None = None
        """Called in the daemon for every HTTP request a worker made (metrics, clock skew)."""
        super().__init__(workers, _send, init=_start_client,
                         init_args=(dataclasses.replace(settings, pool_size=1),), context=context)

    @classmethod
    def start(cls, workers: int, settings: Any) -> SendPool | None:
        """A pool of ``workers`` processes sending with ``settings`` (an
        :class:`~connector.axis.client.AxisSettings`), or None when it cannot start."""
        return cls.start_pool(workers, settings)

    def send(self, path: Path | str, sha256: str, *, messagetype: str = "edoc") -> str | None:
        """The axis DocId of the package at ``path`` (``sha256``: its digest, just checked),
        sent by a worker; the client's error raised here when it was not accepted; None when no
        worker could send it (see the class docstring)."""
        job = SendJob(str(path), sha256, messagetype, _CLIENT_LOG.getEffectiveLevel())
        outcome: SendOutcome | None = self.call(job, wait=False)
        if outcome is None:
            return None
        self._replay(outcome)
        if outcome.error is not None:
            raise outcome.error
        with self._lock:
            self.sent += 1
        return outcome.doc_id

    def _replay(self, outcome: SendOutcome) -> None:
        for level, name, message in outcome.logs:
            logging.getLogger(name).log(level, message)
        if self.observe is not None:
            for url, seconds, date in outcome.requests:
                self.observe(url, seconds, date)


# ------------------------------------------------------------------------------ in the worker
_client: Any = None
_requests: list[RequestSeen] = []
_logs: list[tuple[int, str, str]] = []
_level: int | None = None


class _Capture(logging.Handler):
    """Keeps the worker's log records for the reply: the daemon writes them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _logs.append((record.levelno, record.name, record.getMessage()))
        except Exception:  # a record that cannot be formatted must not fail the send
            _logs.append((record.levelno, record.name, str(record.msg)))


def _start_client(settings: Any) -> None:
    """Once per worker: its client, its request recorder and its log capture."""
    global _client
    from connector.axis.client import AxisClient

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_Capture())
    _client = AxisClient(settings)
    send = _client.session.send

    def recorded_send(request: Any, **kwargs: Any) -> Any:
        started, date = time.perf_counter(), None
        try:
            response = send(request, **kwargs)
            date = response.headers.get("Date")
            return response
        finally:
            _requests.append((str(request.url), time.perf_counter() - started, date))

    _client.session.send = recorded_send


def _send(job: SendJob) -> SendOutcome:
    global _level
    _requests.clear()
    _logs.clear()
    if job.log_level != _level:  # setting a level clears every logger's cache: only on change
        from connector.logs import set_level

        set_level(job.log_level)
        _level = job.log_level
    doc_id, error = None, None
    try:
        doc_id = _client.send_edoc(Path(job.path), sha256=job.sha256,
                                   messagetype=job.messagetype).doc_id
    except Exception as caught:
        error = portable(caught)
    return SendOutcome(doc_id, error, tuple(_requests), tuple(_logs))

