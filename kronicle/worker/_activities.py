"""Running activity tasks: context, heartbeats (throttled), cancellation, results.

An :class:`ActivityRunner` runs one activity attempt per ``ActivityTask``
record: async activities as tasks on the worker's loop, sync ones in the
worker's ``activity_executor``. It sets the ``kronicle.activity`` context,
sends heartbeats (``HeartbeatActivityTask`` with ``reply_to`` = the worker's
control topic, throttled to one per 80% of the heartbeat timeout), delivers
cancellation from ``ActivityTaskControl`` records, and answers with
``CompleteActivityTask``, ``FailActivityTask`` or ``ReportActivityTaskCanceled``.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import timedelta
from typing import Any

from kronicle import _wire, activity
from kronicle import exceptions as exc
from kronicle.activity import ActivityContext, ActivityDefinition
from kronicle.converter import DataConverter
from kronicle.worker._history import ms_to_datetime

__all__ = ["ActivityRunner", "EagerActivity", "Send"]

_log = logging.getLogger("kronicle.worker")

Send = Callable[[str, dict[str, Any]], None]
"""``(schema short name, datum)``: produce a command for the task's workflow."""

DEFAULT_HEARTBEAT_THROTTLE = timedelta(seconds=30)
MAX_HEARTBEAT_THROTTLE = timedelta(seconds=60)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("Sending a heartbeat failed: %s", task.exception())


class _ThreadCancelled(exc.CancelledError):
    """Raised into a sync activity's thread when its cancellation is requested."""

    def __init__(self) -> None:
        super().__init__("Activity cancelled")


AttemptKey = tuple[str, str, int, int]


class EagerActivity:
    """An attempt-1 activity this worker started itself for a completion it has not sent yet.

    Its result (and its heartbeats) must not reach the engine before the completion that
    schedules it: until :meth:`release`, the result record is kept here, where the completion's
    sender may :meth:`take` it (into a continuation step, or to send it right behind the completion).

    Args:
        task: The ``ActivityTask``-shaped datum the attempt runs with (``scheduled_event_id`` 0).
        predicted_scheduled_event_id: The ``ActivityTaskScheduled`` id the completion will get if the
            engine accepts it (the engine's activity-cancel replies name the attempt by it).
        send: Produces a command record.
    """

    def __init__(self, task: Mapping[str, Any], predicted_scheduled_event_id: int, send: Send) -> None:
        self.task = task
        self.predicted_scheduled_event_id = predicted_scheduled_event_id
        self._send = send
        self.outcome: tuple[str, dict[str, Any]] | None = None
        """The attempt's result record, once it ended (and until taken or sent)."""
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done once the attempt has ended (with or without a result)."""
        self.released = False
        self._taken = False
        self._held_heartbeat: Callable[[], None] | None = None
        self.runner: asyncio.Task[None] | None = None
        """The asyncio task running the attempt."""

    @property
    def activity_id(self) -> str:
        """The activity id from the command."""
        return str(self.task["activity_id"])

    @property
    def succeeded(self) -> bool:
        """The attempt ended with a result (not a failure or a cancellation) that is still here."""
        return self.outcome is not None and self.outcome[0] == "CompleteActivityTask" and not self._taken

    def take(self) -> tuple[str, dict[str, Any]] | None:
        """Take the result record (None if the attempt has not ended or the record is gone)."""
        if self.outcome is None or self._taken:
            return None
        self._taken = True
        return self.outcome

    def release(self) -> None:
        """The completion has been handed to the producer: send what is held and, from now on, at once."""
        if self.released:
            return
        self.released = True
        if self._held_heartbeat is not None:
            flush, self._held_heartbeat = self._held_heartbeat, None
            flush()
        self._send_outcome()

    def _deliver(self, name: str, datum: dict[str, Any]) -> None:
        self.outcome = (name, datum)
        if not self.finished.done():
            self.finished.set_result(None)
        if self.released:
            self._send_outcome()

    def _send_outcome(self) -> None:
        record = self.take()
        if record is not None:
            self._send(*record)


@dataclasses.dataclass
class _Attempt:
    task: Mapping[str, Any]
    ctx: ActivityContext
    started_ms: int
    throttle: float
    is_async: bool
    no_thread_cancel_exception: bool
    inner: asyncio.Future[Any] | None = None
    thread_id: int | None = None
    reason: str | None = None
    latest: tuple[Any, ...] | None = None
    dirty: bool = False
    last_sent: float = float("-inf")
    flush: asyncio.TimerHandle | None = None
    sent_details: list[bytes] = dataclasses.field(default_factory=list)
    eager: EagerActivity | None = None

    @property
    def key(self) -> AttemptKey:
        t = self.task
        # An eager attempt is named by its activity id on the wire (scheduled_event_id 0); the
        # engine's replies name it by the scheduled event id the completion gave it.
        sid = self.eager.predicted_scheduled_event_id if self.eager is not None else int(t["scheduled_event_id"])
        return (str(t["workflow_id"]), str(t["run_id"]), sid, int(t["attempt"]))


class ActivityRunner:
    """Runs activity attempts and routes their heartbeats and cancellations.

    Args:
        activities: The ``@activity.defn`` functions of this worker.
        executor: Thread pool for sync activities (required if there are any).
        data_converter: Converter and codec.
        namespace: The namespace (``activity.info().workflow_namespace``).
        identity: Reported in results.
        reply_to: The worker's control topic, named in heartbeats.
        send: Produces a command record.
    """

    def __init__(
        self,
        *,
        activities: Sequence[Callable[..., Any]],
        executor: Executor | None,
        data_converter: DataConverter,
        namespace: str,
        identity: str,
        reply_to: str,
        send: Send,
    ) -> None:
        self._defs: dict[str | None, ActivityDefinition] = {}
        for fn in activities:
            defn = ActivityDefinition.from_callable(fn)
            if defn.name in self._defs:
                raise ValueError(f"two activities are named {defn.name!r}")
            self._defs[defn.name] = defn
        sync = [d.name for d in self._defs.values() if not d.is_async]
        if sync and executor is None:
            raise ValueError(
                f"sync activities {sync} need activity_executor=ThreadPoolExecutor(...) on the Worker "
                "(or make them async)"
            )
        self._executor = executor
        self._dc = data_converter
        self._namespace = namespace
        self._identity = identity
        self._reply_to = reply_to
        self._send = send
        self._running: dict[AttemptKey, _Attempt] = {}

    @property
    def running(self) -> int:
        """Attempts in progress."""
        return len(self._running)

    def has_activity(self, activity_type: str) -> bool:
        """Whether this worker can run ``activity_type`` (registered, or a dynamic activity is)."""
        return activity_type in self._defs or None in self._defs

    def cancel_all(self, reason: str) -> None:
        """Cancel every running attempt (e.g. ``WORKER_SHUTDOWN``)."""
        for attempt in list(self._running.values()):
            self._cancel(attempt, reason)

    def on_control(self, control: Mapping[str, Any]) -> None:
        """Apply an ``ActivityTaskControl`` record from the control topic."""
        key = (
            str(control["workflow_id"]),
            str(control["run_id"]),
            int(control["scheduled_event_id"]),
            int(control["attempt"]),
        )
        attempt = self._running.get(key)
        if attempt is None:
            return  # for another worker sharing the topic, or an attempt already over
        if attempt.eager is not None and not attempt.eager.released:
            return  # the engine has not seen the completion that schedules it yet: nothing to stop
        if control.get("cancel_requested"):
            self._cancel(attempt, "CANCELLED")
        elif control.get("not_found"):
            # The engine has moved on (timed out, retried, run closed): stop, nobody wants the result.
            self._cancel(attempt, "NOT_FOUND")

    def _cancel(self, attempt: _Attempt, reason: str) -> None:
        if attempt.reason is not None:
            return
        attempt.reason = reason
        attempt.ctx.cancel_reason = reason
        attempt.ctx.cancelled.set()
        if attempt.is_async:
            if attempt.inner is not None:
                attempt.inner.cancel()
        elif attempt.thread_id is not None and not attempt.no_thread_cancel_exception:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(attempt.thread_id), ctypes.py_object(_ThreadCancelled)
            )

    # ------------------------------------------------------------ one attempt

    def start_eager(self, task: Mapping[str, Any], predicted_scheduled_event_id: int) -> EagerActivity:
        """Start an eager attempt (see :class:`EagerActivity`); its result waits for :meth:`EagerActivity.release`."""
        eager = EagerActivity(task, predicted_scheduled_event_id, self._send)
        eager.runner = asyncio.ensure_future(self.run(task, eager=eager))
        return eager

    async def run(self, task: Mapping[str, Any], *, eager: EagerActivity | None = None) -> None:
        """Run one attempt to its end and send its result (an eager one's goes to ``eager``)."""
        ref = {k: task[k] for k in ("workflow_id", "run_id", "scheduled_event_id", "attempt")}
        if eager is not None:
            ref["activity_id"] = task["activity_id"]
        started_ms = int(time.time() * 1000)
        base = {**ref, "started_time_ms": started_ms, "identity": self._identity}
        send: Send = self._send if eager is None else eager._deliver
        try:
            await self._run(task, base, started_ms, send, eager)
        finally:
            if eager is not None and not eager.finished.done():
                eager.finished.set_result(None)  # ended without a result (timed out, torn down): nothing to wait for

    async def _run(
        self,
        task: Mapping[str, Any],
        base: dict[str, Any],
        started_ms: int,
        send: Send,
        eager: EagerActivity | None,
    ) -> None:
        defn = self._defs.get(str(task["activity_type"])) or self._defs.get(None)
        if defn is None:
            known = ", ".join(sorted(n for n in self._defs if n)) or "none"
            error = exc.ApplicationError(
                f"Activity type {task['activity_type']!r} is not registered on this worker (it has: {known}); "
                "add it to Worker(activities=[...])",
                type="NotFoundError",
            )
            await self._fail(send, base, error, [])
            return
        loop = asyncio.get_running_loop()
        hb_timeout = int(task.get("heartbeat_timeout_ms") or 0) / 1000
        throttle = min(hb_timeout * 0.8, MAX_HEARTBEAT_THROTTLE.total_seconds()) if hb_timeout else 0.0
        attempt = _Attempt(
            task=task,
            ctx=None,  # type: ignore[arg-type]  # set just below; the context's heartbeat needs the attempt
            started_ms=started_ms,
            throttle=throttle or DEFAULT_HEARTBEAT_THROTTLE.total_seconds(),
            is_async=defn.is_async,
            no_thread_cancel_exception=defn.no_thread_cancel_exception,
            sent_details=list(task.get("heartbeat_details") or []),
            eager=eager,
        )
        try:
            args = await self._dc.from_payloads(_wire.payloads_from_bytes(task.get("input") or []), defn.arg_types)
            previous = await self._dc.from_payloads(_wire.payloads_from_bytes(task.get("heartbeat_details") or []))
        except Exception as err:  # noqa: BLE001 - undecodable input fails the attempt, not the worker
            await self._fail(send, base, err, [])
            return
        attempt.ctx = ActivityContext(
            info=self._info(task, previous, started_ms),
            heartbeat=functools.partial(self._heartbeat_threadsafe, loop, attempt),
        )
        self._running[attempt.key] = attempt
        timeout_handle = None
        stc = int(task.get("start_to_close_timeout_ms") or 0)
        if stc:
            # The engine times the attempt out from dispatch; stop working on it locally as well.
            timeout_handle = loop.call_later(stc / 1000, self._cancel, attempt, "TIMED_OUT")
        try:
            if int(task.get("schedule_to_start_timeout_ms") or 0) > 0:
                # Disarms the engine's schedule-to-start timer (see docs/history.md); keeps earlier details.
                self._send_heartbeat(attempt, attempt.sent_details)
            result = await self._call(loop, defn, attempt, args)
        except BaseException as err:  # every outcome is reported (or deliberately not)
            await self._on_error(send, base, attempt, err)
            if isinstance(err, asyncio.CancelledError) and attempt.reason is None:
                raise  # the worker itself is being torn down
        else:
            if attempt.reason in ("NOT_FOUND", "TIMED_OUT"):
                return
            payloads = await self._dc.to_payloads([result])
            send("CompleteActivityTask", {**base, "result": _wire.payloads_to_bytes(payloads)})
        finally:
            if timeout_handle is not None:
                timeout_handle.cancel()
            if attempt.flush is not None:
                attempt.flush.cancel()
            self._running.pop(attempt.key, None)

    async def _call(
        self, loop: asyncio.AbstractEventLoop, defn: ActivityDefinition, attempt: _Attempt, args: list[Any]
    ) -> Any:
        ctx = attempt.ctx
        if defn.is_async:

            async def call() -> Any:
                with activity._set_context(ctx):
                    return await defn.fn(*args)

            attempt.inner = asyncio.ensure_future(call())
            if attempt.reason is not None:
                attempt.inner.cancel()
            return await attempt.inner

        def call_sync() -> Any:
            attempt.thread_id = threading.get_ident()
            try:
                if attempt.reason is not None and not attempt.no_thread_cancel_exception:
                    raise _ThreadCancelled()
                with activity._set_context(ctx):
                    return defn.fn(*args)
            finally:
                attempt.thread_id = None

        assert self._executor is not None
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._executor, context.run, call_sync)

    async def _on_error(self, send: Send, base: dict[str, Any], attempt: _Attempt, err: BaseException) -> None:
        cancelled = isinstance(err, (asyncio.CancelledError, exc.CancelledError))
        if attempt.reason == "CANCELLED" and cancelled:
            ref = base
            if attempt.eager is not None:
                # ReportActivityTaskCanceled has no activity id; the engine's cancel request named this
                # attempt by the scheduled event id the worker predicted, so that id is confirmed.
                ref = {k: v for k, v in base.items() if k != "activity_id"}
                ref["scheduled_event_id"] = attempt.eager.predicted_scheduled_event_id
            send("ReportActivityTaskCanceled", {**ref, "details": attempt.sent_details})
        elif attempt.reason in ("NOT_FOUND", "TIMED_OUT"):
            return  # the engine has already decided this attempt's fate
        elif attempt.reason == "WORKER_SHUTDOWN":
            error = exc.ApplicationError("Worker shutting down before the activity finished", type="WorkerShutdown")
            await self._fail(send, base, error, attempt.sent_details)
        elif isinstance(err, asyncio.CancelledError):
            return  # torn down without a reason: the engine's timeout retries it
        elif isinstance(err, Exception):
            await self._fail(send, base, err, attempt.sent_details)

    async def _fail(self, send: Send, base: dict[str, Any], error: BaseException, details: list[bytes]) -> None:
        failure = await self._dc.encode_failure(error)
        send("FailActivityTask", {**base, "failure": _wire.failure_to_wire(failure), "last_heartbeat_details": details})

    def _info(self, task: Mapping[str, Any], previous: list[Any], started_ms: int) -> activity.Info:
        def td(key: str) -> timedelta | None:
            ms = int(task.get(key) or 0)
            return timedelta(milliseconds=ms) if ms else None

        return activity.Info(
            activity_id=str(task["activity_id"]),
            activity_type=str(task["activity_type"]),
            attempt=int(task["attempt"]),
            task_queue=str(task["task_queue"]),
            workflow_id=str(task["workflow_id"]),
            workflow_run_id=str(task["run_id"]),
            workflow_type=str(task.get("workflow_type") or ""),
            workflow_namespace=self._namespace,
            task_token=f"{task['workflow_id']}|{task['run_id']}|{task['scheduled_event_id']}|{task['attempt']}".encode(),
            heartbeat_details=previous,
            scheduled_time=ms_to_datetime(int(task.get("scheduled_time_ms") or 0)),
            current_attempt_scheduled_time=ms_to_datetime(int(task.get("current_attempt_scheduled_time_ms") or 0)),
            started_time=ms_to_datetime(started_ms),
            schedule_to_close_timeout=td("schedule_to_close_timeout_ms"),
            start_to_close_timeout=td("start_to_close_timeout_ms"),
            heartbeat_timeout=td("heartbeat_timeout_ms"),
        )

    # ------------------------------------------------------------ heartbeats

    def _heartbeat_threadsafe(self, loop: asyncio.AbstractEventLoop, attempt: _Attempt, *details: Any) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._on_heartbeat(attempt, details)
        else:
            loop.call_soon_threadsafe(self._on_heartbeat, attempt, details)

    def _on_heartbeat(self, attempt: _Attempt, details: tuple[Any, ...]) -> None:
        if attempt.key not in self._running:
            return
        attempt.latest = details
        attempt.dirty = True
        if attempt.flush is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, attempt.last_sent + attempt.throttle - loop.time())
            attempt.flush = loop.call_later(delay, self._flush, attempt)

    def _flush(self, attempt: _Attempt) -> None:
        attempt.flush = None
        if not attempt.dirty or attempt.key not in self._running:
            return
        attempt.dirty = False
        details = list(attempt.latest or ())
        task = asyncio.ensure_future(self._encode_and_send(attempt, details))
        task.add_done_callback(_log_failure)

    async def _encode_and_send(self, attempt: _Attempt, details: list[Any]) -> None:
        payloads = _wire.payloads_to_bytes(await self._dc.to_payloads(details))
        self._send_heartbeat(attempt, payloads)

    def _send_heartbeat(self, attempt: _Attempt, details: list[bytes]) -> None:
        attempt.sent_details = details
        attempt.last_sent = asyncio.get_running_loop().time()
        eager = attempt.eager
        if eager is not None and not eager.released:
            # The engine must not hear of the attempt before the completion that schedules it:
            # keep the latest details and send them once that completion is on its way.
            eager._held_heartbeat = functools.partial(self._send_heartbeat_now, attempt, details)
            return
        self._send_heartbeat_now(attempt, details)

    def _send_heartbeat_now(self, attempt: _Attempt, details: list[bytes]) -> None:
        if attempt.key not in self._running:
            return  # ended while its heartbeat was held: the result says everything
        ref = {k: attempt.task[k] for k in ("workflow_id", "run_id", "scheduled_event_id", "attempt")}
        if attempt.eager is not None:
            ref["activity_id"] = attempt.task["activity_id"]
        self._send(
            "HeartbeatActivityTask",
            {
                **ref,
                "started_time_ms": attempt.started_ms,
                "identity": self._identity,
                "details": details,
                "reply_to": self._reply_to,
            },
        )
