"""A tiny client for systemd's service notification protocol (``sd_notify``), with no dependency.

WHY our own: the protocol is a few ``KEY=VALUE`` lines sent as one datagram to the AF_UNIX socket
named by ``$NOTIFY_SOCKET``, and the libraries that wrap it either need libsystemd (C headers at
install time, which secure servers do not have) or are unmaintained. Twenty lines are cheaper to
own and to test than a dependency.

What the daemon sends, and why (see ``systemd/edxml-connector.service``, ``Type=notify``):

- ``READY=1`` once the configuration, the certificate and the journal are loaded, so that
  ``systemctl start`` only returns (and dependants only start) when the connector can work;
- ``STATUS=...`` with the queue counts, shown by ``systemctl status``;
- ``WATCHDOG=1`` from the main loop at half of :func:`watchdog_interval`: a stuck loop stops the
  pings and systemd restarts the service (``WatchdogSec=``);
- ``RELOADING=1`` (with ``MONOTONIC_USEC``) on SIGHUP and ``READY=1`` after it, ``STOPPING=1`` on
  SIGTERM.

Outside systemd (``$NOTIFY_SOCKET`` unset: tests, a terminal, another supervisor) every call is a
no-op that returns ``False``. A failure to send is never fatal either: a supervisor that went away
must not take the documents down with it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

__all__ = [
    "Notifier",
    "ready",
    "status",
    "watchdog",
    "stopping",
    "reloading",
    "watchdog_interval",
    "watchdog_ping_interval",
]


SEND_TIMEOUT_SECONDS = 0.5
"""How long one notification may wait for room in the supervisor's socket queue."""

def _socket_address(path: str) -> str | bytes:
    """``$NOTIFY_SOCKET`` as a ``sendto`` address; ``@name`` is Linux's abstract namespace."""
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    return path


class Notifier:
    """Sends notifications to one socket (by default the one systemd names in the environment).

    ``socket_path=None`` reads ``$NOTIFY_SOCKET`` at construction time; an empty or absent value
    makes the notifier disabled (every method returns ``False`` and sends nothing).
    """

    def __init__(self, socket_path: str | None = None,
                 environ: Mapping[str, str] | None = None, *,
                 send_timeout: float = SEND_TIMEOUT_SECONDS) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "") if socket_path is None else socket_path
        self.socket_path = path or None
        self._sock: socket.socket | None = None
        self.send_timeout = send_timeout

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify (we run under systemd ``Type=notify``)."""
        return self.socket_path is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields as one datagram. Returns whether it was sent.

        Values must not contain a newline (it separates fields); newlines are replaced by spaces
        rather than rejected, because a status text is not worth an exception.
        """
        if not self.enabled or not fields:
            return False
        payload = "\n".join(field.replace("\n", " ") for field in fields).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # A datagram send blocks while the receiver's queue is full (only ~10 datagrams
                # on Linux: net.unix.max_dgram_qlen). A congested or wedged supervisor must never
                # hang the daemon — not its main loop, not its stop — so give up quickly: a lost
                # WATCHDOG=1 or STATUS= is harmless, a hung service is not.
                self._sock.settimeout(self.send_timeout)
            self._sock.sendto(payload, _socket_address(self.socket_path))  # type: ignore[arg-type]
        except OSError:
            # The supervisor is gone or the socket is not ours to use: carry on working.
            self.close()
            return False
        return True

    def ready(self, status_text: str | None = None) -> bool:
        """``READY=1``: startup (or a reload) is complete."""
        fields = ["READY=1"]
        if status_text is not None:
            fields.append(f"STATUS={status_text}")
        return self.notify(*fields)

    def status(self, text: str) -> bool:
        """``STATUS=text``: one line that ``systemctl status`` shows."""
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the main loop is alive. Call it at :func:`watchdog_ping_interval`."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status_text: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun (SIGTERM received)."""
        fields = ["STOPPING=1"]
        if status_text is not None:
            fields.append(f"STATUS={status_text}")
        return self.notify(*fields)

    def reloading(self) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (needed by ``Type=notify-reload``, harmless
        before systemd 253). Send :meth:`ready` when the reload is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None,
                      pid: int | None = None) -> float | None:
    """The service's watchdog timeout in seconds (``WatchdogSec=``), or None when not enabled.

    systemd passes it as ``$WATCHDOG_USEC``; ``$WATCHDOG_PID``, when set, names the process the
    pings are expected from: in any other process (a child, a test runner) the watchdog is not
    ours and None is returned. Ping at half this value (:func:`watchdog_ping_interval`).
    """
    env = os.environ if environ is None else environ
    raw_usec = env.get("WATCHDOG_USEC", "").strip()
    if not raw_usec:
        return None
    try:
        usec = int(raw_usec)
    except ValueError:
        return None
    if usec <= 0:
        return None
    raw_pid = env.get("WATCHDOG_PID", "").strip()
    if raw_pid:
        try:
            expected = int(raw_pid)
        except ValueError:
            return None
        if expected != (os.getpid() if pid is None else pid):
            return None
    return usec / 1_000_000


def watchdog_ping_interval(environ: Mapping[str, str] | None = None,
                           pid: int | None = None) -> float | None:
    """How often to send ``WATCHDOG=1``: half the timeout, as sd_watchdog_enabled(3) advises."""
    interval = watchdog_interval(environ, pid)
    return None if interval is None else interval / 2


# A process-wide notifier for the common case. It follows ``$NOTIFY_SOCKET`` as it is when called,
# so that a test (or a daemon that unsets the variable for its children) is never surprised by a
# value cached earlier.
_default: Notifier | None = None


def _notifier() -> Notifier:
    global _default
    current = os.environ.get("NOTIFY_SOCKET") or None
    if _default is None or _default.socket_path != current:
        if _default is not None:
            _default.close()
        _default = Notifier()
    return _default


def ready(status_text: str | None = None) -> bool:
    return _notifier().ready(status_text)


def status(text: str) -> bool:
    return _notifier().status(text)


def watchdog() -> bool:
    return _notifier().watchdog()


def stopping(status_text: str | None = None) -> bool:
    return _notifier().stopping(status_text)


def reloading() -> bool:
    return _notifier().reloading()
