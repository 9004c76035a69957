"""The asyncio side of the workflow instance: an event loop with no I/O and no clock.

:class:`DeterministicEventLoop` keeps a FIFO of ready callbacks and a table of
durable timers. Its clock is whatever the current activation says; a
``call_later`` does not wait but records a ``StartTimer`` command (through
:meth:`_add_command`, provided by the instance) and runs its callback when the
matching ``FireTimer`` job arrives. Everything that would need real I/O,
threads or executors raises with a message pointing to activities.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import contextvars
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVarTuple

from kronicle.exceptions import NondeterminismError
from kronicle.worker import _activation as act
from kronicle.workflow._runtime import WorkflowRuntime

__all__ = ["DeterministicEventLoop"]

_log = logging.getLogger("kronicle.worker")

_Ts = TypeVarTuple("_Ts")


class DeterministicEventLoop(WorkflowRuntime, abc.ABC):
    """The loop half of a workflow instance (see the module docstring)."""

    def __init__(self) -> None:
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._now = datetime.fromtimestamp(0, UTC)
        self._timer_count = 0
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._timer_seq: dict[int, int] = {}  # id(handle) -> seq; TimerHandle's __eq__ compares values
        self._callback_error: BaseException | None = None
        # This loop's tasks: asyncio.all_tasks(loop) walks every task of the process (hundreds in
        # a busy worker) to find them, which made disposing a run cost more than running it.
        self._own_tasks: list[asyncio.Task[Any]] = []
        self._prune_at = 64

    def _track(self, task: asyncio.Task[Any]) -> None:
        """Remember a task created on this loop (``create_task`` does it; other Task constructions must)."""
        self._own_tasks.append(task)
        if len(self._own_tasks) >= self._prune_at:
            # Finished tasks are dropped now and then, so a long run's list stays as small as its live tasks.
            self._own_tasks = [t for t in self._own_tasks if not t.done()]
            self._prune_at = 2 * len(self._own_tasks) + 64

    @abc.abstractmethod
    def _add_command(self, command: act.Command) -> None:
        """Record a command in the current completion."""

    def _fire_timer(self, seq: int) -> None:
        """Make timer ``seq``'s callback ready (a FireTimer job)."""
        handle = self._timers.pop(seq, None)
        if handle is None:
            raise NondeterminismError(f"FireTimer for timer seq={seq}, which the workflow has not started")
        self._timer_seq.pop(id(handle), None)
        handle._scheduled = False  # type: ignore[attr-defined]
        if not handle._cancelled:
            self._ready.append(handle)

    def _run_ready(self) -> bool:
        """Run one ready callback; False when none is ready."""
        if not self._ready:
            return False
        handle = self._ready.popleft()
        if not handle._cancelled:
            handle._run()
        return True

    def time(self) -> float:
        return self._now.timestamp()

    def call_soon(
        self, callback: Callable[[*_Ts], object], *args: *_Ts, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        self.workflow_check_can_command("start a timer")
        handle = asyncio.TimerHandle(self.time() + max(delay, 0.0), callback, args, self, context)
        if delay <= 0:
            self._ready.append(handle)  # nothing to wait for; no timer in history either
            return handle
        self._timer_count += 1
        seq = self._timer_count
        handle._scheduled = True  # type: ignore[attr-defined]
        self._timers[seq] = handle
        self._timer_seq[id(handle)] = seq
        self._add_command(act.StartTimer(seq, timedelta(seconds=delay)))
        return handle

    def call_at(
        self,
        when: float,
        callback: Callable[[*_Ts], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_later(when - self.time(), callback, *args, context=context)

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        seq = self._timer_seq.pop(id(handle), None)
        if seq is not None and self._timers.pop(seq, None) is not None:
            self._add_command(act.CancelTimer(seq))

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self._track(task)
        return task

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        del enabled

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return False

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if "handle" in context and isinstance(error, BaseException) and self._callback_error is None:
            # A plain callback raised: nothing else would ever see it, so the task must fail.
            self._callback_error = error
            return
        _log.debug("Workflow event loop: %s", context.get("message"), exc_info=error)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    def call_soon_threadsafe(
        self, callback: Callable[[*_Ts], object], *args: *_Ts, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        raise RuntimeError("Workflow code cannot use threads; run threaded work in an activity")

    def run_in_executor(self, executor: Any, func: Callable[[*_Ts], Any], *args: *_Ts) -> Any:
        raise RuntimeError("Workflow code cannot run executors (real I/O); run that work in an activity")
