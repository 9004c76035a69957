"""``ActivityEnvironment``: run an activity function as the worker would, without Kafka.

Shaped like ``temporalio.testing.ActivityEnvironment``: the function runs with
an activity context, so ``activity.info()``, ``activity.heartbeat()``,
``activity.is_cancelled()`` and ``activity.wait_for_cancelled()`` work; heartbeats
go to :attr:`ActivityEnvironment.on_heartbeat`; :meth:`ActivityEnvironment.cancel`
delivers cancellation the way the worker does (``asyncio.CancelledError`` into an
async activity, a ``kronicle.exceptions.CancelledError`` raised into a sync
activity's thread unless it was defined with ``no_thread_cancel_exception``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import dataclasses
import inspect
import threading
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from kronicle import activity
from kronicle import exceptions as exc

__all__ = ["ActivityEnvironment", "default_info"]

P = ParamSpec("P")
T = TypeVar("T")


def default_info() -> activity.Info:
    """The ``activity.info()`` an :class:`ActivityEnvironment` starts with (replace fields to change it)."""
    now = datetime.now(UTC)
    return activity.Info(
        activity_id="test",
        activity_type="unknown",
        attempt=1,
        task_queue="test",
        workflow_id="test",
        workflow_run_id="test-run",
        workflow_type="test",
        workflow_namespace="default",
        task_token=b"test",
        heartbeat_details=(),
        scheduled_time=now,
        current_attempt_scheduled_time=now,
        started_time=now,
        schedule_to_close_timeout=timedelta(seconds=1),
        start_to_close_timeout=timedelta(seconds=1),
        heartbeat_timeout=None,
    )


class _ThreadCancelled(exc.CancelledError):
    """Raised into a sync activity's thread by :meth:`ActivityEnvironment.cancel` (as the worker does)."""

    def __init__(self) -> None:
        super().__init__("Activity cancelled")


@dataclasses.dataclass(eq=False)  # identity-hashed: kept in a set while running
class _Running:
    ctx: activity.ActivityContext
    no_thread_cancel_exception: bool
    task: asyncio.Task[Any] | None = None
    thread_id: int | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def cancel(self, reason: str) -> None:
        with self.lock:
            if self.ctx.cancelled.is_set():
                return
            self.ctx.cancel_reason = reason
            self.ctx.cancelled.set()
            if self.task is not None:
                loop = self.task.get_loop()
                if _running_loop() is loop:
                    self.task.cancel()
                else:
                    loop.call_soon_threadsafe(self.task.cancel)
            elif self.thread_id is not None and not self.no_thread_cancel_exception:
                _raise_in_thread(self.thread_id, _ThreadCancelled)

    def finish_thread(self) -> None:
        """The sync function returned: no cancellation may be raised into the thread any more."""
        with self.lock:
            tid, self.thread_id = self.thread_id, None
        if tid is not None:
            _raise_in_thread(tid, None)  # drop one that was sent but not raised yet


def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    # Same mechanism as the worker's sync activities: an asynchronous exception,
    # raised at the thread's next bytecode boundary (None clears a pending one).
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type is not None else None
    )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class ActivityEnvironment:
    """Runs activity functions with an activity context, for unit tests (temporalio's shape).

    Example::

        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, attempt=3)
        beats = []
        env.on_heartbeat = lambda *details: beats.append(details)
        assert await env.run(compose_greeting, "World") == "Hello, World!"

    Attributes:
        info: What ``activity.info()`` returns inside :meth:`run`.
        on_heartbeat: Called with the details of every ``activity.heartbeat(*details)``,
            synchronously and in the activity's thread (no throttling, unlike the worker).
    """

    def __init__(self) -> None:
        self.info: activity.Info = default_info()
        self.on_heartbeat: Callable[..., None] = lambda *details: None
        self._cancel_reason: str | None = None
        self._running: set[_Running] = set()
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancel_reason is not None

    def cancel(self, reason: str = "CANCELLED") -> None:
        """Request cancellation of every activity running in this environment (and of later runs).

        Like the worker: ``activity.is_cancelled()`` becomes True, an async activity
        gets ``asyncio.CancelledError`` at its current ``await``, and a sync activity
        gets ``kronicle.exceptions.CancelledError`` raised into its thread (unless its
        ``@activity.defn`` has ``no_thread_cancel_exception=True``; then it must poll
        ``activity.is_cancelled()``). Safe to call from any thread, and from inside
        the activity (e.g. in :attr:`on_heartbeat`).

        Args:
            reason: What the activity sees as the context's ``cancel_reason``
                (``"CANCELLED"``, ``"TIMED_OUT"``, ``"WORKER_SHUTDOWN"``, ...).
        """
        with self._lock:
            if self._cancel_reason is None:
                self._cancel_reason = reason
            running = list(self._running)
        for run in running:
            run.cancel(reason)

    def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` as an activity attempt described by :attr:`info`.

        A sync function runs in the calling thread and its result is returned; an
        async function returns an awaitable of its result (``await env.run(fn, ...)``).
        ``fn`` need not be decorated with ``@activity.defn``.
        """
        no_thread_exc = False
        with contextlib.suppress(ValueError):  # not decorated: the defaults apply
            no_thread_exc = activity.ActivityDefinition.from_callable(fn).no_thread_cancel_exception
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):  # noqa: B004
            return self._run_async(fn, args, kwargs)  # type: ignore[return-value]
        return self._run_sync(fn, args, kwargs, no_thread_exc)

    def _context(self) -> activity.ActivityContext:
        def heartbeat(*details: Any) -> None:
            # Looked up per call, so a test may replace on_heartbeat while the activity runs.
            self.on_heartbeat(*details)

        return activity.ActivityContext(info=self.info, heartbeat=heartbeat)

    def _start(self, run: _Running) -> str | None:
        """Register a run; returns the cancel reason if the environment was already cancelled."""
        with self._lock:
            self._running.add(run)
            reason = self._cancel_reason
        if reason is not None:
            run.ctx.cancel_reason = reason
            run.ctx.cancelled.set()
        return reason

    def _finish(self, run: _Running) -> None:
        with self._lock:
            self._running.discard(run)

    async def _run_async(self, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        run = _Running(self._context(), no_thread_cancel_exception=False)

        async def call() -> Any:
            with activity._set_context(run.ctx):
                coro: Coroutine[Any, Any, Any] = fn(*args, **kwargs)
                return await coro

        run.task = asyncio.ensure_future(call(), loop=asyncio.get_running_loop())
        if self._start(run) is not None:
            run.task.cancel()  # cancelled before it started, as the worker does
        try:
            return await run.task
        finally:
            self._finish(run)

    def _run_sync(self, fn: Callable[..., T], args: Any, kwargs: Any, no_thread_exc: bool) -> T:
        run = _Running(self._context(), no_thread_cancel_exception=no_thread_exc)
        run.thread_id = threading.get_ident()
        context = contextvars.copy_context()

        def call() -> T:
            with activity._set_context(run.ctx):
                return fn(*args, **kwargs)

        try:
            if self._start(run) is not None and not no_thread_exc:
                raise _ThreadCancelled()
            return context.run(call)
        finally:
            run.finish_thread()
            self._finish(run)
