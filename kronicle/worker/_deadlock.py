"""The deadlock detector: notices workflow code that does not yield, and interrupts it.

Temporal fails a workflow task after a fixed 2 s. Kronicle's threshold is set
per worker (generous by default), and when it passes the detector records
where the code was stuck and raises an exception *into* the stuck thread
(``PyThreadState_SetAsyncExc``), so the activation returns a clear
:class:`~kronicle.exceptions.WorkflowDeadlockError` instead of hanging the
worker. The interrupted instance is then unusable and must be rebuilt from
history. Code blocked inside a C call (``time.sleep``, a socket read) is
interrupted only when that call returns to Python.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["DeadlockInterrupt", "DeadlockWatchdog"]


class DeadlockInterrupt(BaseException):
    """Raised into workflow code that ran past the deadlock threshold (a BaseException so
    ``except Exception`` in workflow code does not swallow it)."""


def _set_async_exc(thread_id: int, exc_type: type[BaseException] | None) -> None:
    obj = ctypes.py_object(exc_type) if exc_type is not None else ctypes.py_object()
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), obj)


class _Monitor:
    """One daemon thread watching every guarded activation in the process.

    A thread per activation (``threading.Timer``) cost more than the activation
    itself; here starting and ending a watch is a lock and a dict operation.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._watches: dict[int, tuple[float, DeadlockWatchdog, int]] = {}
        self._next_token = 0
        self._thread: threading.Thread | None = None
        # When the monitor thread wakes up next by itself (inf: only when notified). A watch
        # ending later than that needs no notify: waking the thread per activation cost more
        # than the check it would run.
        self._wake_at = float("inf")

    def watch(self, watchdog: DeadlockWatchdog, thread_id: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._next_token += 1
            token = self._next_token
            self._watches[token] = (deadline, watchdog, thread_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="kronicle-deadlock-monitor", daemon=True)
                self._thread.start()
            elif deadline < self._wake_at:
                self._wake_at = deadline
                self._cond.notify()
            return token

    def unwatch(self, token: int) -> None:
        with self._cond:
            self._watches.pop(token, None)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for token, (deadline, watchdog, thread_id) in list(self._watches.items()):
                    if deadline <= now:
                        del self._watches[token]
                        # Still registered under the lock, so the guarded block has not ended.
                        watchdog._fire(thread_id)
                earliest = min((w[0] for w in self._watches.values()), default=None)
                self._wake_at = float("inf") if earliest is None else max(earliest, now + 0.001)
                self._cond.wait(None if earliest is None else self._wake_at - now)


_MONITOR = _Monitor()


class DeadlockWatchdog:
    """Times one activation at a time; see the module docstring.

    Args:
        timeout: Seconds an activation may run; None disables the detector.
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.fired = False
        """Whether the threshold passed during the current (or last) guarded block."""
        self.stack = ""
        """Where the code was when the threshold passed."""
        self._lock = threading.Lock()
        self._active = False

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Watch the enclosed block (runs in the calling thread)."""
        self.fired = False
        self.stack = ""
        if self.timeout is None:
            yield
            return
        thread_id = threading.get_ident()
        with self._lock:
            self._active = True
        token = _MONITOR.watch(self, thread_id, self.timeout)
        try:
            yield
        finally:
            _MONITOR.unwatch(token)
            with self._lock:
                self._active = False
                if self.fired:
                    # If the interrupt is still pending (not yet raised), withdraw it.
                    _set_async_exc(thread_id, None)

    def _fire(self, thread_id: int) -> None:
        with self._lock:
            if not self._active:
                return
            frame = sys._current_frames().get(thread_id)
            self.stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            self.fired = True
            _set_async_exc(thread_id, DeadlockInterrupt)
