"""The deterministic workflow instance: ``activate(activation) -> completion``.

One :class:`WorkflowInstance` runs one workflow run. It *is* the asyncio event
loop the workflow code runs on, but a loop with no I/O and no clock of its own:

* ``loop.time()`` is the activation's timestamp, so ``workflow.now()`` and
  everything asyncio derives from the clock replay identically;
* ``loop.call_later``/``call_at`` do not wait: they record a ``StartTimer``
  command, and the callback runs when a ``FireTimer`` job for that timer
  arrives (so ``asyncio.sleep`` and ``asyncio.wait_for`` are durable);
* ready callbacks run in FIFO order until nothing is runnable, then
  ``wait_condition`` predicates are re-checked, until the workflow is blocked;
* commands are numbered per kind (timers, activities, children, external
  signals, external cancels), and ``workflow.random()`` is seeded from the run.

Workflow code reaches the instance through ``asyncio.get_running_loop()`` (see
:mod:`kronicle.workflow._runtime`). The instance never awaits anything real:
payloads arrive already codec-decoded and leave un-encoded; the worker applies
the async :class:`~kronicle.converter.PayloadCodec` around it.

Determinism check: a later replay adapter compares :attr:`Completion.commands`
(their :attr:`~kronicle.worker._activation.Command.key`) with the commands
history recorded, using :func:`~kronicle.worker._activation.check_determinism`.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import inspect
import logging
import random
import traceback
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from kronicle import exceptions as exc
from kronicle.common import ActivityCancellationType, ChildWorkflowCancellationType, SearchAttributes
from kronicle.converter import DefaultPayloadConverter, Failure, FailureConverter, Payload, PayloadConverter
from kronicle.worker import _activation as act
from kronicle.worker._deadlock import DeadlockInterrupt, DeadlockWatchdog
from kronicle.worker._event_loop import DeterministicEventLoop
from kronicle.workflow._api import ActivityHandle, ChildWorkflowHandle
from kronicle.workflow._definition import WorkflowDefinition
from kronicle.workflow._runtime import (
    ActivityConfig,
    ChildWorkflowConfig,
    ContinueAsNewError,
    Info,
)

__all__ = ["WorkflowInstance"]

_log = logging.getLogger("kronicle.worker")

DEFAULT_DEADLOCK_TIMEOUT = timedelta(seconds=30)
"""Generous by default; Temporal's 2 s limit is a frequent complaint."""

_PHASE = {
    act.StartWorkflow: 0,
    act.NotifyHasPatch: 1,
    act.UpdateRandomSeed: 1,
    act.SignalWorkflow: 2,
    act.DoUpdate: 2,
}
_OTHERS = 3


@dataclasses.dataclass
class _PendingActivity:
    command: act.ScheduleActivity
    result_type: Any
    future: asyncio.Future[Any]
    cancel_requested: bool = False


@dataclasses.dataclass
class _PendingChild:
    command: act.StartChildWorkflow
    result_type: Any
    started: asyncio.Future[str]
    result: asyncio.Future[Any]
    cancel_requested: bool = False


_UNSEEDED = random.Random(0)
"""The random source of an instance before its StartWorkflow (no workflow code runs then)."""


class WorkflowInstance(DeterministicEventLoop):
    """One workflow run on a deterministic event loop.

    Args:
        definition: The workflow class's definition (``WorkflowDefinition.from_class``).
        payload_converter: Converts arguments and results (sync; no codec here).
        failure_converter: Converts exceptions to failure dicts and back.
        deadlock_timeout: How long workflow code may run in one activation
            without yielding before the task fails with
            :class:`~kronicle.exceptions.WorkflowDeadlockError`; None disables it.
    """

    def __init__(
        self,
        definition: WorkflowDefinition,
        *,
        payload_converter: PayloadConverter | None = None,
        failure_converter: FailureConverter | None = None,
        deadlock_timeout: timedelta | None = DEFAULT_DEADLOCK_TIMEOUT,
    ) -> None:
        self._defn = definition
        self._converter = payload_converter or DefaultPayloadConverter()
        self._failures = failure_converter or FailureConverter()
        self._watchdog = DeadlockWatchdog(None if deadlock_timeout is None else deadlock_timeout.total_seconds())
        super().__init__()
        self._is_replaying = False
        self._run_id = ""
        self._commands: list[act.Command] = []
        self._seq: dict[str, int] = collections.defaultdict(int)
        self._activities: dict[int, _PendingActivity] = {}
        self._children: dict[int, _PendingChild] = {}
        self._external_signals: dict[int, asyncio.Future[None]] = {}
        self._external_cancels: dict[int, asyncio.Future[None]] = {}
        self._conditions: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._patches_seen: set[str] = set()
        self._patches_used: dict[str, bool] = {}
        # Seeded from the run at StartWorkflow, before any workflow code runs; seeding a Mersenne
        # twister (624 words) here as well was 1% of a one-activity workflow's worker CPU.
        self._random = _UNSEEDED
        self._info: Info | None = None
        self._search_attributes: dict[str, Any] = {}
        self._object: Any = None
        self._start_args: list[Any] = []
        self._main_task: asyncio.Task[None] | None = None
        self._main_started = False
        self._cancel_requested = False
        self._completed = False
        self._in_query = False
        self._task_failure: BaseException | None = None
        self._poisoned: str | None = None

    # ------------------------------------------------------------ activation

    def activate(self, activation: act.Activation) -> act.Completion:
        """Apply one activation's jobs, run the workflow until it is blocked, return its commands.

        After a completion with ``failure`` (a workflow-task failure) the
        instance is unusable: dispose of it and replay history on a new one.

        Raises:
            RuntimeError: If an earlier activation failed the workflow task (or
                the instance was disposed); evict it and rebuild from history.
        """
        if self._poisoned:
            raise RuntimeError(f"Workflow instance is unusable ({self._poisoned}); evict it and replay history")
        if activation.timestamp.tzinfo is None:
            raise ValueError("Activation.timestamp must be timezone-aware (use UTC)")
        self._now = max(self._now, activation.timestamp) if self._run_id else activation.timestamp
        self._run_id = activation.run_id
        self._is_replaying = activation.is_replaying
        self._commands = []
        self._task_failure = None
        self._callback_error = None
        previous_loop = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        try:
            with self._watchdog.guard():
                try:
                    self._activate(activation)
                except (exc.WorkflowDeadlockError, KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as err:
                    if self._watchdog.fired:
                        raise self._deadlock_error() from err
                    self._task_failure = err
        except exc.WorkflowDeadlockError as err:
            self._poisoned = "deadlock detected"
            self._task_failure = err
        except DeadlockInterrupt:
            # The interrupt landed after the activation's own handlers had finished.
            self._poisoned = "deadlock detected"
            self._task_failure = self._deadlock_error()
        finally:
            asyncio.events._set_running_loop(previous_loop)
        if self._task_failure is not None:
            # Half-applied jobs leave the run in an unknown state: as in Temporal, the worker
            # evicts the instance and the retried task replays history on a fresh one.
            self._poisoned = self._poisoned or "its last activation failed the workflow task"
            return act.Completion(self._run_id, failure=self._to_failure(self._task_failure))
        return act.Completion(self._run_id, tuple(self._commands))

    def dispose(self) -> None:
        """Tear the run down without producing commands (the worker evicts it from its cache).

        Pending workflow tasks are cancelled and run to their end so their
        ``finally`` blocks run on this loop, not later in the garbage collector;
        whatever they would command is dropped. The instance cannot be used again.
        """
        if self._poisoned == "disposed":
            return
        # Deliberately allowed on a poisoned instance: evicting one is exactly when this runs.
        self._completed = True  # from here on _add_command keeps only responses, and those are discarded
        previous_loop = asyncio.events._get_running_loop()
        asyncio.events._set_running_loop(self)
        try:
            for task in list(self._own_tasks):
                task.cancel()
            with self._watchdog.guard():
                while self._run_ready():
                    if self._watchdog.fired:
                        break
        except BaseException as err:  # noqa: BLE001 - teardown must not raise into the worker
            _log.debug("Error while disposing workflow instance", exc_info=err)
        finally:
            asyncio.events._set_running_loop(previous_loop)
            self._commands = []
            self._poisoned = "disposed"

    def _activate(self, activation: act.Activation) -> None:
        jobs = sorted(activation.jobs, key=lambda j: _PHASE.get(type(j), _OTHERS))
        queries = [j for j in jobs if isinstance(j, act.QueryWorkflow)]
        main_pending = False
        for job in jobs:
            if isinstance(job, act.QueryWorkflow):
                continue
            if _PHASE.get(type(job), _OTHERS) == _OTHERS and main_pending:
                self._start_main_task()
                main_pending = False
            if isinstance(job, act.StartWorkflow):
                self._apply_start_workflow(job)
                main_pending = True
            else:
                self._apply(job)
        if main_pending:
            self._start_main_task()
        self._run_until_blocked()
        for query in queries:
            self._apply_query_workflow(query)

    def _apply(self, job: act.Job) -> None:
        if self._info is None:
            raise RuntimeError(f"First activation must contain StartWorkflow, got {type(job).__name__} first")
        match job:
            case act.FireTimer():
                self._apply_fire_timer(job)
            case act.ResolveActivity():
                self._apply_resolve_activity(job)
            case act.SignalWorkflow():
                self._apply_signal_workflow(job)
            case act.DoUpdate():
                self._apply_do_update(job)
            case act.CancelWorkflow():
                self._apply_cancel_workflow(job)
            case act.NotifyHasPatch():
                self._patches_seen.add(job.patch_id)
            case act.UpdateRandomSeed():
                self._random = random.Random(job.seed)
            case act.ResolveChildWorkflowStart():
                self._apply_resolve_child_workflow_start(job)
            case act.ResolveChildWorkflow():
                self._apply_resolve_child_workflow(job)
            case act.ResolveSignalExternalWorkflow():
                self._resolve_external(self._external_signals, job.seq, job.failure, "signal")
            case act.ResolveRequestCancelExternalWorkflow():
                self._resolve_external(self._external_cancels, job.seq, job.failure, "cancel request")
            case _:
                raise TypeError(f"Unknown activation job {job!r}")

    def _run_until_blocked(self) -> None:
        while True:
            while self._run_ready():
                if self._callback_error is not None and self._task_failure is None:
                    self._task_failure = self._callback_error
                if self._watchdog.fired:
                    raise self._deadlock_error()
                if self._task_failure is not None:
                    raise self._task_failure
            if not self._check_conditions():
                return

    def _check_conditions(self) -> bool:
        progressed = False
        for entry in list(self._conditions):
            fn, future = entry
            if future.done():
                self._conditions.remove(entry)
                continue
            try:
                ok = fn()
            except Exception as err:  # noqa: BLE001 - the waiter sees the condition's own error
                future.set_exception(err)
                ok = False
                progressed = True
            if ok:
                future.set_result(None)
                progressed = True
            if future.done():
                self._conditions.remove(entry)
        return progressed

    def _deadlock_error(self) -> exc.WorkflowDeadlockError:
        seconds = self._watchdog.timeout
        return exc.WorkflowDeadlockError(
            f"Potential deadlock: workflow code ran more than {seconds:g} s without yielding. Workflow code must "
            "not block (no time.sleep, blocking I/O or long CPU loops); use activities for that. The threshold "
            f"is the worker's deadlock_timeout. Stack when detected:\n{self._watchdog.stack}",
            stack=self._watchdog.stack,
        )

    def _to_failure(self, error: BaseException) -> Failure:
        return self._failures.to_failure(error, self._converter)

    def _from_failure(self, failure: Failure) -> exc.FailureError:
        return self._failures.from_failure(failure, self._converter)

    def _add_command(self, command: act.Command) -> None:
        if self._completed and not act.is_response(command):
            return  # Temporal drops commands after the workflow's terminal command too.
        self._commands.append(command)

    def _next_seq(self, kind: str) -> int:
        self._seq[kind] += 1
        return self._seq[kind]

    # ------------------------------------------------------------ jobs

    def _apply_start_workflow(self, job: act.StartWorkflow) -> None:
        if self._info is not None:
            raise RuntimeError("StartWorkflow arrived twice for the same run")
        self._info = job.info
        self._random = random.Random(job.randomness_seed)
        self._search_attributes = dict(job.info.search_attributes)
        self._start_args = self._converter.from_payloads(job.args, self._defn.arg_types)
        cls = self._defn.cls
        self._object = cls(*self._start_args) if self._defn.init_takes_args else cls()

    def _start_main_task(self) -> None:
        self._main_task = self.create_task(self._run_main(), name="workflow-run")

    async def _run_main(self) -> None:
        self._main_started = True
        try:
            if self._cancel_requested:
                # Cancelled before the run method began: it never runs, as with an asyncio task.
                raise asyncio.CancelledError()
            result = await self._defn.run_fn(self._object, *self._start_args)
        except ContinueAsNewError as can:
            self._apply_continue_as_new(can)
        except (Exception, asyncio.CancelledError) as err:  # noqa: BLE001 - routed by kind below
            self._on_workflow_error(err)
        else:
            try:
                payload = self._converter.to_payload(result)
            except Exception as err:  # noqa: BLE001 - an unconvertible result fails the task
                self._task_failure = err
                return
            self._add_command(act.CompleteWorkflow(payload))
            self._completed = True

    def _apply_continue_as_new(self, can: ContinueAsNewError) -> None:
        cfg = can.config
        assert self._info is not None
        self._add_command(
            act.ContinueAsNew(
                workflow_type=cfg.workflow_type or self._info.workflow_type,
                task_queue=cfg.task_queue or self._info.task_queue,
                args=self._converter.to_payloads(cfg.args),
                run_timeout=cfg.run_timeout,
                task_timeout=cfg.task_timeout,
                retry_policy=cfg.retry_policy,
                memo=None if cfg.memo is None else {k: self._converter.to_payload(v) for k, v in cfg.memo.items()},
                search_attributes=cfg.search_attributes,
            )
        )
        self._completed = True

    def _on_workflow_error(self, err: BaseException) -> None:
        if self._completed:
            return
        if self._cancel_requested and exc.is_cancelled_exception(err):
            self._add_command(act.CancelWorkflowExecution())
        elif isinstance(err, asyncio.CancelledError):
            # Cancelled without a cancel request (e.g. the code cancelled itself): a failure, as in temporalio.
            self._add_command(act.FailWorkflow(self._to_failure(exc.CancelledError(str(err) or "Cancelled"))))
        elif isinstance(err, (exc.FailureError, *self._defn.failure_exception_types)):
            self._add_command(act.FailWorkflow(self._to_failure(err)))
        else:
            self._task_failure = err
            return
        self._completed = True

    def _apply_fire_timer(self, job: act.FireTimer) -> None:
        self._fire_timer(job.seq)

    def _apply_resolve_activity(self, job: act.ResolveActivity) -> None:
        pending = self._activities.pop(job.seq, None)
        if pending is None:
            raise exc.NondeterminismError(
                f"ResolveActivity for activity seq={job.seq}, which the workflow has not scheduled"
            )
        if pending.future.done():
            return  # already resolved as cancelled (TRY_CANCEL / ABANDON)
        if job.status == "completed":
            value = None if job.result is None else self._converter.from_payload(job.result, pending.result_type)
            pending.future.set_result(value)
            return
        error = self._from_failure(job.failure or {"message": "Activity cancelled", "kind": "cancelled"})
        pending.future.set_exception(self._as_activity_error(pending.command, error, job.status))

    def _as_activity_error(
        self, command: act.ScheduleActivity, error: exc.FailureError, status: str
    ) -> exc.ActivityError:
        if isinstance(error, exc.ActivityError):
            return error
        wrapped = exc.ActivityError(
            "Activity task cancelled" if status == "cancelled" else "Activity task failed",
            scheduled_event_id=0,
            started_event_id=0,
            identity="",
            activity_type=command.activity_type,
            activity_id=command.activity_id,
            retry_state=exc.RetryState.CANCEL_REQUESTED if status == "cancelled" else None,
        )
        wrapped.__cause__ = error
        return wrapped

    def _apply_signal_workflow(self, job: act.SignalWorkflow) -> None:
        handler = self._defn.signals.get(job.signal_name) or self._defn.signals.get(None)
        if handler is None:
            known = sorted(n for n in self._defn.signals if n is not None)
            _log.warning("Signal %r dropped: no handler (known signals: %s)", job.signal_name, known)
            return
        if handler.name is None:
            args: list[Any] = [job.signal_name, *self._converter.from_payloads(job.args)]
        else:
            args = self._converter.from_payloads(job.args, handler.arg_types)
        self._spawn_handler(handler.fn, args, f"signal {job.signal_name!r}")

    def _spawn_handler(
        self, fn: Callable[..., Any], args: Sequence[Any], what: str, on_done: Callable[[Any], None] | None = None
    ) -> None:
        async def run() -> None:
            try:
                result = fn(self._object, *args)
                if inspect.isawaitable(result):
                    result = await result
            except asyncio.CancelledError:
                return
            except ContinueAsNewError as can:
                self._apply_continue_as_new(can)
                return
            except Exception as err:  # noqa: BLE001 - routed like the run method's errors
                if on_done is not None and isinstance(err, exc.FailureError):
                    on_done(err)
                else:
                    self._on_workflow_error(err)
                return
            if on_done is not None:
                on_done(result)

        self.create_task(run(), name=what)

    def _apply_do_update(self, job: act.DoUpdate) -> None:
        def respond(kind: Any, *, result: Payload | None = None, failure: Failure | None = None) -> None:
            self._add_command(act.UpdateResponse(job.update_id, kind, result=result, failure=failure))

        handler = self._defn.updates.get(job.name) or self._defn.updates.get(None)
        if handler is None:
            known = sorted(n for n in self._defn.updates if n is not None)
            error = exc.ApplicationError(f"No update handler for {job.name!r} (known updates: {known})")
            respond("rejected", failure=self._to_failure(error))
            return
        try:
            if handler.name is None:
                args: list[Any] = [job.name, *self._converter.from_payloads(job.args)]
            else:
                args = self._converter.from_payloads(job.args, handler.arg_types)
            if job.run_validator and handler.validator is not None:
                self._in_query = True  # validators must not issue commands either
                try:
                    handler.validator(self._object, *args)
                finally:
                    self._in_query = False
        except Exception as err:  # noqa: BLE001 - any validator error rejects the update
            respond("rejected", failure=self._to_failure(err))
            return
        respond("accepted")

        def done(outcome: Any) -> None:
            if isinstance(outcome, exc.FailureError):
                respond("completed", failure=self._to_failure(outcome))
                return
            try:
                payload = self._converter.to_payload(outcome)
            except Exception as err:  # noqa: BLE001 - an unconvertible result fails the update
                respond("completed", failure=self._to_failure(err))
                return
            respond("completed", result=payload)

        self._spawn_handler(handler.fn, args, f"update {job.name!r}", done)

    def _apply_query_workflow(self, job: act.QueryWorkflow) -> None:
        handler = self._defn.queries.get(job.query_type) or self._defn.queries.get(None)
        if handler is None and job.query_type == "__stack_trace":
            self._add_command(act.RespondToQuery(job.query_id, result=self._converter.to_payload(self._stack_trace())))
            return
        if handler is None:
            known = sorted(n for n in self._defn.queries if n is not None)
            error = exc.ApplicationError(f"No query handler for {job.query_type!r} (known queries: {known})")
            self._add_command(act.RespondToQuery(job.query_id, failure=self._to_failure(error)))
            return
        self._in_query = True
        try:
            if handler.name is None:
                args: list[Any] = [job.query_type, *self._converter.from_payloads(job.args)]
            else:
                args = self._converter.from_payloads(job.args, handler.arg_types)
            result = self._converter.to_payload(handler.fn(self._object, *args))
        except Exception as err:  # noqa: BLE001 - a failing query answers with its error
            self._add_command(act.RespondToQuery(job.query_id, failure=self._to_failure(err)))
            return
        finally:
            self._in_query = False
        self._add_command(act.RespondToQuery(job.query_id, result=result))

    def _stack_trace(self) -> str:
        """Where every pending workflow coroutine waits (the built-in ``__stack_trace`` query)."""
        parts = []
        for task in asyncio.all_tasks(self):
            frames = []
            coro: Any = task.get_coro()
            # Task.get_stack() stops at the task's own coroutine; follow what it awaits.
            while coro is not None and (frame := getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)):
                frames.append((frame, frame.f_lineno))
                coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
            where = "".join(traceback.StackSummary.extract(iter(frames)).format()) or "  (finished)\n"
            parts.append(f"{task.get_name()}:\n{where}")
        return "\n".join(sorted(parts))

    def _apply_cancel_workflow(self, job: act.CancelWorkflow) -> None:
        del job
        self._cancel_requested = True
        # A task cancelled before its first step would die outside _run_main's handlers.
        if self._main_started and self._main_task is not None and not self._main_task.done():
            self._main_task.cancel()

    def _apply_resolve_child_workflow_start(self, job: act.ResolveChildWorkflowStart) -> None:
        pending = self._children.get(job.seq)
        if pending is None:
            raise exc.NondeterminismError(f"ResolveChildWorkflowStart for child seq={job.seq}, which was not started")
        if pending.started.done():
            return
        cmd = pending.command
        if job.already_started:
            pending.started.set_exception(exc.WorkflowAlreadyStartedError(cmd.workflow_id, cmd.workflow_type))
        elif job.failure is not None:
            pending.started.set_exception(self._from_failure(job.failure))
        else:
            pending.started.set_result(job.run_id or "")
            return
        del self._children[job.seq]

    def _apply_resolve_child_workflow(self, job: act.ResolveChildWorkflow) -> None:
        pending = self._children.pop(job.seq, None)
        if pending is None:
            raise exc.NondeterminismError(f"ResolveChildWorkflow for child seq={job.seq}, which was not started")
        if pending.result.done():
            return
        if job.status == "completed":
            value = None if job.result is None else self._converter.from_payload(job.result, pending.result_type)
            pending.result.set_result(value)
            return
        error = self._from_failure(job.failure or {"message": "Child workflow cancelled", "kind": "cancelled"})
        pending.result.set_exception(self._as_child_error(pending, error))

    def _as_child_error(self, pending: _PendingChild, error: exc.FailureError) -> exc.ChildWorkflowError:
        if isinstance(error, exc.ChildWorkflowError):
            return error
        cmd = pending.command
        wrapped = exc.ChildWorkflowError(
            "Child workflow execution failed",
            namespace=cmd.namespace,
            workflow_id=cmd.workflow_id,
            run_id=pending.started.result() if pending.started.done() and not pending.started.exception() else "",
            workflow_type=cmd.workflow_type,
            initiated_event_id=0,
            started_event_id=0,
            retry_state=None,
        )
        wrapped.__cause__ = error
        return wrapped

    def _resolve_external(
        self, table: dict[int, asyncio.Future[None]], seq: int, failure: Failure | None, what: str
    ) -> None:
        future = table.pop(seq, None)
        if future is None:
            raise exc.NondeterminismError(f"Resolution of external {what} seq={seq}, which the workflow did not send")
        if future.done():
            return
        if failure is None:
            future.set_result(None)
        else:
            future.set_exception(self._from_failure(failure))

    # ------------------------------------------------------------ WorkflowRuntime

    def workflow_info(self) -> Info:
        if self._info is None:
            raise RuntimeError("The workflow has not started yet")
        return dataclasses.replace(self._info, search_attributes=dict(self._search_attributes))

    def workflow_now(self) -> datetime:
        return self._now

    def workflow_random(self) -> random.Random:
        return self._random

    def workflow_is_replaying(self) -> bool:
        return self._is_replaying

    def workflow_payload_converter(self) -> PayloadConverter:
        return self._converter

    def workflow_check_can_command(self, what: str) -> None:
        if self._in_query:
            raise RuntimeError(
                f"Cannot {what} inside a query handler or update validator: they must only read workflow state"
            )

    def workflow_patch(self, patch_id: str, *, deprecated: bool) -> bool:
        self.workflow_check_can_command("use patched()/deprecate_patch()")
        if patch_id in self._patches_used:
            return self._patches_used[patch_id]
        use = deprecated or not self._is_replaying or patch_id in self._patches_seen
        self._patches_used[patch_id] = use
        if use:
            self._add_command(act.SetPatchMarker(patch_id, deprecated))
        return use

    def workflow_start_activity(self, config: ActivityConfig) -> asyncio.Task[Any]:
        assert self._info is not None
        seq = self._next_seq("activity")
        command = act.ScheduleActivity(
            seq=seq,
            activity_id=config.activity_id or str(seq),
            activity_type=config.activity_type,
            task_queue=config.task_queue or self._info.task_queue,
            args=self._converter.to_payloads(config.args),
            schedule_to_close_timeout=config.schedule_to_close_timeout,
            schedule_to_start_timeout=config.schedule_to_start_timeout,
            start_to_close_timeout=config.start_to_close_timeout,
            heartbeat_timeout=config.heartbeat_timeout,
            retry_policy=config.retry_policy,
            cancellation_type=config.cancellation_type,
        )
        self._add_command(command)
        pending = _PendingActivity(command, config.result_type, self.create_future())
        self._activities[seq] = pending
        handle: ActivityHandle[Any] = ActivityHandle(
            self._await_cancellable(pending.future, lambda: self._cancel_activity(pending)),
            loop=self,
            name=f"activity-{seq}",
        )
        handle._on_cancel = lambda: self._cancel_activity(pending)
        self._track(handle)
        return handle

    async def _await_cancellable(self, future: asyncio.Future[Any], on_cancel: Callable[[], None]) -> Any:
        # Cancelling the handle must not abandon the operation: it asks the engine to
        # cancel, then keeps waiting for the resolution (which carries CancelledError).
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.done():
                    return future.result()
                on_cancel()

    def _cancel_activity(self, pending: _PendingActivity) -> None:
        if pending.future.done() or pending.cancel_requested:
            return
        pending.cancel_requested = True
        cmd = pending.command
        if cmd.cancellation_type != ActivityCancellationType.ABANDON:
            self._add_command(act.RequestCancelActivity(cmd.seq))
        if cmd.cancellation_type != ActivityCancellationType.WAIT_CANCELLATION_COMPLETED:
            error = exc.CancelledError("Activity cancelled")
            pending.future.set_exception(self._as_activity_error(cmd, error, "cancelled"))

    async def workflow_start_child_workflow(self, config: ChildWorkflowConfig) -> asyncio.Task[Any]:
        assert self._info is not None
        seq = self._next_seq("child")
        command = act.StartChildWorkflow(
            seq=seq,
            workflow_id=config.id or str(uuid.UUID(int=self._random.getrandbits(128), version=4)),
            workflow_type=config.workflow_type,
            task_queue=config.task_queue or self._info.task_queue,
            args=self._converter.to_payloads(config.args),
            namespace=self._info.namespace,
            cancellation_type=config.cancellation_type,
            parent_close_policy=config.parent_close_policy,
            execution_timeout=config.execution_timeout,
            run_timeout=config.run_timeout,
            task_timeout=config.task_timeout,
            id_reuse_policy=config.id_reuse_policy,
            retry_policy=config.retry_policy,
            cron_schedule=config.cron_schedule,
            memo=None if config.memo is None else {k: self._converter.to_payload(v) for k, v in config.memo.items()},
            search_attributes=config.search_attributes,
        )
        self._add_command(command)
        pending = _PendingChild(command, config.result_type, self.create_future(), self.create_future())
        self._children[seq] = pending
        try:
            run_id = await asyncio.shield(pending.started)
        except asyncio.CancelledError:
            if not pending.started.done():
                # Cancelled before the engine started it: cancel the start, surface as cancellation.
                self._add_command(act.CancelChildWorkflow(seq))
                pending.started.cancel()
                self._children.pop(seq, None)
            raise
        handle: ChildWorkflowHandle[Any] = ChildWorkflowHandle(
            self._await_cancellable(pending.result, lambda: self._cancel_child(pending)),
            loop=self,
            name=f"child-{seq}",
        )
        handle._on_cancel = lambda: self._cancel_child(pending)
        handle._child_id = command.workflow_id
        handle._child_first_run_id = run_id
        self._track(handle)
        return handle

    def _cancel_child(self, pending: _PendingChild) -> None:
        if pending.result.done() or pending.cancel_requested:
            return
        pending.cancel_requested = True
        cmd = pending.command
        if cmd.cancellation_type != ChildWorkflowCancellationType.ABANDON:
            self._add_command(act.CancelChildWorkflow(cmd.seq))
        if cmd.cancellation_type in (ChildWorkflowCancellationType.ABANDON, ChildWorkflowCancellationType.TRY_CANCEL):
            pending.result.set_exception(self._as_child_error(pending, exc.CancelledError("Child workflow cancelled")))

    async def workflow_wait_condition(self, fn: Callable[[], bool], timeout: float | None) -> None:
        self.workflow_check_can_command("wait for a condition")
        future: asyncio.Future[None] = self.create_future()
        self._conditions.append((fn, future))
        if timeout is None:
            await future
        else:
            await asyncio.wait_for(future, timeout)

    def workflow_upsert_search_attributes(self, attributes: SearchAttributes) -> None:
        self._add_command(act.UpsertSearchAttributes(dict(attributes)))
        for name, values in attributes.items():
            if values:
                self._search_attributes[name] = values
            else:
                self._search_attributes.pop(name, None)

    async def workflow_signal_external(
        self, workflow_id: str, run_id: str | None, signal: str, args: Sequence[Any], *, child_only: bool
    ) -> None:
        self.workflow_check_can_command("signal a workflow")
        assert self._info is not None
        seq = self._next_seq("signal_external")
        self._add_command(
            act.SignalExternalWorkflow(
                seq,
                self._info.namespace,
                workflow_id,
                run_id,
                signal,
                self._converter.to_payloads(args),
                child_only,
            )
        )
        future: asyncio.Future[None] = self.create_future()
        self._external_signals[seq] = future
        await future

    async def workflow_cancel_external(self, workflow_id: str, run_id: str | None) -> None:
        self.workflow_check_can_command("cancel a workflow")
        assert self._info is not None
        seq = self._next_seq("cancel_external")
        self._add_command(act.RequestCancelExternalWorkflow(seq, self._info.namespace, workflow_id, run_id))
        future: asyncio.Future[None] = self.create_future()
        self._external_cancels[seq] = future
        await future
