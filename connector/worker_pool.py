"""Worker processes on a pipe each: work that would hold the daemon's GIL, done in another process.

WHY: the daemon is one Python process whose journal, folder and HTTP work share one GIL. At a
hundred documents a second its main process is the bottleneck (close to one core), so the
pieces that are pure per-document work with small inputs and outputs — building and signing a
package (:mod:`connector.outbound_build`), sending it over HTTP (:mod:`connector.outbound_send`)
— run in worker processes instead, each on its own core or waiting on its own socket.

How a call goes: the calling thread takes an idle worker, writes the pickled call down that
worker's pipe, waits for the reply (the GIL is released while it waits) and hands the worker
back. There is deliberately no helper thread in between. A ``ProcessPoolExecutor`` routes every
job through a manager thread and a queue-feeder thread and back through the manager to a
future: several GIL hand-offs and an extra pickling pass per document, which cost the daemon
about 15% of its GIL time — the very GIL the workers are there to relieve. Here a call is
pickled once, a reply once, and only the thread that needs the result runs.

A worker that dies (its pipe ends: EOF or a broken pipe; the kernel closes a dead process's end,
so no separate liveness check is needed) breaks the pool for good: whatever killed it (the OOM
killer, a crash in native code) may well kill the next one. :meth:`WorkerPool.call` then returns
None and the caller does the work in its own process, which is always possible; threads waiting
for a worker are woken to do the same.

Workers exit on their own when the daemon is gone (:func:`_watch_parent`), ignore Ctrl-C (the
daemon decides when they stop), and every call gets exactly one reply, so the pipe never gets
out of step.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.logs import get_logger

log = get_logger(__name__)

SHUTDOWN_SECONDS = 5.0
"""How long :meth:`WorkerPool.shutdown` lets busy workers finish before killing them."""

ORPHAN_CHECK_SECONDS = 1.0
"""How often a worker looks whether the daemon that started it is still there."""

_STOPPED = object()
_STOP = pickle.dumps(None)  # what a worker reads as "exit"


class WorkerPool:
    """``workers`` processes that run ``target(*args)`` for :meth:`call`, one call at a time each.

    ``init(*init_args)`` runs once in each worker before its first call (imports, a client to
    keep); its arguments are pickled to the worker once, at start. ``role`` names the pool in
    process titles and log events (``{role}_pool_started``, ``{role}_pool_broken`` ...).
    ``target`` must return a value other than None: None is what :meth:`call` answers when the
    pool cannot do the work."""

    role = "worker"

    def __init__(self, workers: int, target: Callable[..., Any], *,
                 init: Callable[..., None] | None = None, init_args: tuple = (),
                 context: str = "forkserver") -> None:
        self.workers = workers
        self.usable = True
        self._lock = threading.Lock()
        self._closed = False
        # Idle workers, and the _STOPPED marker once the pool is off (see _take).
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        methods = multiprocessing.get_all_start_methods()
        mp = multiprocessing.get_context(context if context in methods else "spawn")
        try:
            for index in range(workers):
                ours, theirs = mp.Pipe(duplex=True)
                process = mp.Process(target=_worker_main, args=(theirs, target, init, init_args),
                                     daemon=True, name=f"edxml-{self.role}-{index + 1}")
                process.start()  # does not wait for the worker's init
                theirs.close()  # the worker's end lives in the worker only: its death is EOF here
                worker = _Worker(process, ours)
                self._workers.append(worker)
                self._idle.put(worker)
        except BaseException:
            self.shutdown()
            raise

    @classmethod
    def start_pool(cls, *args: Any, **kwargs: Any) -> Any:
        """The pool, or None when it cannot start (the caller works in-process). Quick: the
        workers run their init in the background; the first call waits for it if it comes
        before that."""
        try:
            pool = cls(*args, **kwargs)
        except Exception as error:
            log.warning(f"{cls.role}_pool_unavailable", error=f"{type(error).__name__}: {error}",
                        note="the work is done in the daemon process")
            return None
        log.info(f"{cls.role}_pool_started", workers=pool.workers)
        return pool

    @property
    def processes(self) -> tuple[Any, ...]:
        """The worker processes (``multiprocessing`` process objects: tests, diagnostics)."""
        return tuple(worker.process for worker in self._workers)

    def call(self, *args: Any, wait: bool = True) -> Any:
        """``target(*args)`` in a worker: its value, or its exception raised here (with the
        worker's traceback as the cause). None when the pool is broken or off — or, with
        ``wait=False``, when every worker is busy — and the caller must do the work itself."""
        # Pickled before a worker is taken: a call that cannot be sent fails here, with the
        # worker's pipe untouched, and the worker is held only for the exchange itself.
        request = pickle.dumps(args, pickle.HIGHEST_PROTOCOL)
        worker = self._take(wait)
        if worker is None:
            return None
        try:
            worker.conn.send_bytes(request)
            reply = worker.conn.recv_bytes()
        except (EOFError, OSError) as error:  # the worker is gone (BrokenPipeError included)
            worker.conn.close()
            self._break(f"{self.role} worker {worker.process.pid} is gone "
                        f"({type(error).__name__}{': ' if str(error) else ''}{error})")
            return None
        except BaseException:
            # Interrupted between the call and its reply: a late reply would be read as the
            # next call's, so this worker cannot be handed back.
            worker.conn.close()
            self._break("a thread was interrupted while its worker was busy")
            raise
        self._give_back(worker)
        outcome, value, *remote = pickle.loads(reply)
        if outcome == "error":
            if remote:  # the worker's traceback, chained as an executor does
                value.__cause__ = _RemoteTraceback(remote[0])
            raise value
        return value

    def shutdown(self) -> None:
        """Stop the workers and wait for them (a call in hand is finished first), so that none
        outlives the daemon; a worker still busy after ``SHUTDOWN_SECONDS`` (a dead disk, a
        hung axis) is killed. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle = self._stop_taking_work()
        for worker in idle:
            _retire(worker)
        # Busy workers get their stop from the thread that hands them back (_give_back).
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(1.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1.0)

    # -- idle workers ------------------------------------------------------------------------------
    def _take(self, wait: bool = True) -> _Worker | None:
        """An idle worker, waiting for one if they are all busy (unless not ``wait``); None once
        the pool is off. The marker that says so is put back for the next waiter, so every
        waiter wakes."""
        if not self.usable:
            return None
        try:
            worker = self._idle.get(block=wait)
        except queue.Empty:
            return None
        if worker is _STOPPED:
            self._idle.put(_STOPPED)
            return None
        return worker

    def _give_back(self, worker: _Worker) -> None:
        # Under the lock: the pool going off (which stops the idle workers) sees this worker
        # either in the queue or not yet returned — then it is stopped here.
        with self._lock:
            if self.usable:
                self._idle.put(worker)
                return
        _retire(worker)

    def _break(self, reason: str) -> None:
        with self._lock:
            if not self.usable:  # already broken, or shut down: said once, or not at all
                return
            idle = self._stop_taking_work()
        log.error(f"{self.role}_pool_broken", error=reason,
                  note="the work is done in the daemon process from now on")
        for worker in idle:
            _retire(worker)

    def _stop_taking_work(self) -> list[_Worker]:
        """(Under the lock.) Turn the pool off, wake the threads waiting for a worker, and
        return the idle workers, to be stopped."""
        self.usable = False
        idle = []
        while True:
            try:
                item = self._idle.get_nowait()
            except queue.Empty:
                break
            if item is not _STOPPED:
                idle.append(item)
        self._idle.put(_STOPPED)
        return idle


@dataclass(frozen=True)
class _Worker:
    process: Any  # multiprocessing.Process
    conn: Any  # our end of its pipe


def _retire(worker: _Worker) -> None:
    """Ask an idle worker to exit (it has nothing in hand) and let go of its pipe."""
    try:
        worker.conn.send_bytes(_STOP)
    except OSError:  # already gone
        pass
    worker.conn.close()


class _RemoteTraceback(Exception):
    """A worker's traceback, as the cause of the error re-raised in the daemon (the logged
    traceback then shows where, in the worker, it went wrong)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


# ------------------------------------------------------------------------------ in the worker
def _watch_parent() -> None:
    """A worker exits on its own once its parent is gone (the daemon killed with SIGKILL or
    crashed: nobody will ever collect its results, and it must not keep the daemon's stdout,
    write packages or send documents for a process that no longer exists). The end of its pipe
    says the same, but only to a worker waiting for a call; this also stops one in the middle
    of one."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            threading.Event().wait(ORPHAN_CHECK_SECONDS)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="orphan-check", daemon=True).start()


def _worker_main(conn: Any, target: Callable[..., Any], init: Callable[..., None] | None,
                 init_args: tuple) -> None:
    """A worker: run the calls that come down its pipe, one at a time, until told to stop
    (None) or until the pipe ends (the daemon is gone). Every call gets exactly one reply,
    ``("ok", value)`` or ``("error", exception, traceback text)``."""
    # Ctrl-C reaches the whole process group; stopping is the daemon's call (it finishes the
    # calls in hand, then stops the workers), not the terminal's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent()
    if init is not None:
        init(*init_args)
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):
            return
        try:
            args = pickle.loads(request)
            if args is None:
                return
            reply = pickle.dumps(("ok", target(*args)), pickle.HIGHEST_PROTOCOL)
        except Exception as error:
            reply = _error_reply(error)
        try:
            conn.send_bytes(reply)
        except OSError:
            return


def _error_reply(error: Exception) -> bytes:
    """The error as the daemon will re-raise it (see :func:`portable`)."""
    text = "".join(traceback.format_exception(error))
    return pickle.dumps(("error", portable(error), text), pickle.HIGHEST_PROTOCOL)


def portable(error: Exception) -> Exception:
    """``error`` itself when it survives pickling both ways (the daemon must be able to rebuild
    it), else a RuntimeError naming it: whatever went wrong in a worker must reach the daemon."""
    try:
        pickle.loads(pickle.dumps(error, pickle.HIGHEST_PROTOCOL))
        return error
    except Exception:
        try:
            message = f"{type(error).__name__}: {error}"
        except Exception:
            message = type(error).__name__
        return RuntimeError(message)
