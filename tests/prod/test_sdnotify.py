"""sd_notify over a real AF_UNIX datagram socket that the test owns (what systemd would hold)."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from connector.service import sdnotify


def _receive_all(sock: socket.socket) -> list[str]:
    messages = []
    sock.settimeout(2)
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except (BlockingIOError, TimeoutError):
            return messages
        sock.settimeout(0.05)


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield str(path), sock
    sock.close()


def test_ready_status_watchdog_reach_the_socket(notify_socket):
    path, sock = notify_socket
    notifier = sdnotify.Notifier(environ={"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("3 queued, 0 failed")
    assert notifier.status("12 queued\n1 failed")  # a newline must not split the field
    assert notifier.watchdog()
    assert notifier.reloading()
    assert notifier.stopping()
    notifier.close()

    messages = _receive_all(sock)
    assert messages[0] == "READY=1\nSTATUS=3 queued, 0 failed"
    assert messages[1] == "STATUS=12 queued 1 failed"
    assert messages[2] == "WATCHDOG=1"
    reloading = messages[3].split("\n")
    assert reloading[0] == "RELOADING=1"
    assert reloading[1].startswith("MONOTONIC_USEC=") and int(reloading[1].split("=")[1]) > 0
    assert messages[4] == "STOPPING=1"


def test_abstract_namespace_socket():
    name = f"edxml-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        notifier = sdnotify.Notifier(environ={"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert _receive_all(sock) == ["READY=1"]
    finally:
        sock.close()


def test_module_functions_follow_the_environment(notify_socket, monkeypatch):
    path, sock = notify_socket
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready() is False  # not under systemd: a no-op
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert sdnotify.ready() is True
    assert sdnotify.watchdog() is True
    assert sdnotify.status("ok") is True
    assert _receive_all(sock) == ["READY=1", "WATCHDOG=1", "STATUS=ok"]


def test_no_socket_is_a_quiet_no_op():
    notifier = sdnotify.Notifier(environ={})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_a_vanished_supervisor_is_not_fatal(tmp_path):
    notifier = sdnotify.Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert notifier.watchdog() is False  # ENOENT swallowed: documents matter more


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"WATCHDOG_USEC": "60000000"}, 60.0),
    ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}, 60.0),
    ({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}, None),  # another process's watchdog
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_interval(env, expected):
    assert sdnotify.watchdog_interval(env) == expected


def test_ping_interval_is_half_the_timeout():
    assert sdnotify.watchdog_ping_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert sdnotify.watchdog_ping_interval({}) is None


def test_a_full_supervisor_queue_never_blocks_the_daemon(tmp_path):
    """Nobody reads the socket: once its small queue is full, sends fail (False) instead of
    blocking — a wedged supervisor must not hang the main loop or the stop."""
    import socket as socket_module

    path = tmp_path / "full.sock"
    receiver = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_DGRAM)
    receiver.bind(str(path))
    try:
        notifier = sdnotify.Notifier(str(path), send_timeout=0.01)
        results = []
        for _ in range(100):  # Linux queues ~10 datagrams; pytest-timeout guards a hang
            results.append(notifier.watchdog())
            if results[-1] is False:
                break
        assert results[0] is True
        assert results[-1] is False, "a full queue must make the send give up, not block"
        receiver.recv(100)  # room again: the notifier reconnects and sends
        assert notifier.watchdog() is True
        notifier.close()
    finally:
        receiver.close()
