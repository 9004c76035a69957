"""The functions workflow code calls: activities, timers, conditions, children, patches, ...

Each one checks its arguments, then hands over to the running
:class:`~kronicle.workflow._runtime.WorkflowRuntime`, which records the command.
Names, signatures and defaults follow ``temporalio.workflow``.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import typing
import uuid as _uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn, TypeVar

from kronicle.common import (
    ActivityCancellationType,
    ChildWorkflowCancellationType,
    ParentClosePolicy,
    RetryPolicy,
    SearchAttributes,
    WorkflowIDReusePolicy,
)
from kronicle.workflow._definition import SignalDefinition, WorkflowDefinition
from kronicle.workflow._runtime import (
    ActivityConfig,
    ChildWorkflowConfig,
    ContinueAsNewConfig,
    ContinueAsNewError,
    Info,
    current_runtime,
)

__all__ = [
    "ActivityHandle",
    "ChildWorkflowHandle",
    "ExternalWorkflowHandle",
    "LoggerAdapter",
    "continue_as_new",
    "deprecate_patch",
    "execute_activity",
    "execute_child_workflow",
    "get_external_workflow_handle",
    "in_workflow",
    "info",
    "logger",
    "now",
    "patched",
    "random",
    "sleep",
    "start_activity",
    "start_child_workflow",
    "time",
    "unsafe",
    "upsert_search_attributes",
    "uuid4",
    "wait_condition",
]

ReturnT = TypeVar("ReturnT")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_ARG_UNSET: Any = _Unset()


def _collect_args(arg: Any, args: Sequence[Any]) -> list[Any]:
    if arg is not _ARG_UNSET:
        if args:
            raise ValueError("Give either one positional arg or args=[...], not both")
        return [arg]
    return list(args)


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class ActivityHandle(asyncio.Task[ReturnT]):
    """A started activity: await it for the result; ``cancel()`` requests cancellation.

    Created by :func:`start_activity`. Cancelling follows the activity's
    ``cancellation_type``; the awaiting code then sees an ``ActivityError``
    whose cause is a ``CancelledError``.
    """

    _on_cancel: Callable[[], None] | None = None

    def cancel(self, msg: Any | None = None) -> bool:
        """Request cancellation of the activity (see ``cancellation_type``).

        The handle itself is not cancelled: it resolves with the activity's
        outcome, an ActivityError caused by CancelledError, even when cancelled
        before it first ran.
        """
        if self._on_cancel is None:
            return super().cancel(msg)
        if self.done():
            return False
        self._on_cancel()
        return True


class ChildWorkflowHandle(asyncio.Task[ReturnT]):
    """A started child workflow: await it for the result, signal it, or cancel it."""

    _child_id: str = ""
    _child_first_run_id: str | None = None
    _on_cancel: Callable[[], None] | None = None

    def cancel(self, msg: Any | None = None) -> bool:
        """Request cancellation of the child (see ``cancellation_type``); the handle then
        resolves with a ChildWorkflowError caused by CancelledError."""
        if self._on_cancel is None:
            return super().cancel(msg)
        if self.done():
            return False
        self._on_cancel()
        return True

    @property
    def id(self) -> str:
        """The child's workflow id."""
        return self._child_id

    @property
    def first_execution_run_id(self) -> str | None:
        """The child's first run id (known once the start is resolved)."""
        return self._child_first_run_id

    async def signal(
        self, signal: str | Callable[..., Any], arg: Any = _ARG_UNSET, *, args: Sequence[Any] = ()
    ) -> None:
        """Send a signal to the child."""
        await current_runtime().workflow_signal_external(
            self._child_id, None, _signal_name(signal), _collect_args(arg, args), child_only=True
        )


class ExternalWorkflowHandle:
    """Another workflow, addressed by id, that this workflow can signal or cancel."""

    def __init__(self, workflow_id: str, run_id: str | None) -> None:
        self._id = workflow_id
        self._run_id = run_id

    @property
    def id(self) -> str:
        """The workflow id."""
        return self._id

    @property
    def run_id(self) -> str | None:
        """The run id, if one was given (None: the current run)."""
        return self._run_id

    async def signal(
        self, signal: str | Callable[..., Any], arg: Any = _ARG_UNSET, *, args: Sequence[Any] = ()
    ) -> None:
        """Send a signal; returns once the engine delivered it (raises if the workflow is not found)."""
        await current_runtime().workflow_signal_external(
            self._id, self._run_id, _signal_name(signal), _collect_args(arg, args), child_only=False
        )

    async def cancel(self) -> None:
        """Request cancellation of the workflow."""
        await current_runtime().workflow_cancel_external(self._id, self._run_id)


def _signal_name(signal: str | Callable[..., Any]) -> str:
    if isinstance(signal, str):
        return signal
    definition = getattr(signal, "__kronicle_signal_definition__", None)
    if not isinstance(definition, SignalDefinition) or definition.name is None:
        raise ValueError(f"{signal!r} is not a named @workflow.signal method; pass the method or the signal name")
    return definition.name


def in_workflow() -> bool:
    """Whether the caller runs inside workflow code."""
    try:
        current_runtime()
    except RuntimeError:
        return False
    return True


def info() -> Info:
    """Information about the running workflow."""
    return current_runtime().workflow_info()


def now() -> datetime:
    """Workflow time (UTC): the time of the current workflow task, identical on replay."""
    return current_runtime().workflow_now()


def time() -> float:
    """Workflow time as seconds since the epoch (what ``asyncio`` sees as the loop's clock)."""
    return current_runtime().time()


def random() -> _random.Random:
    """A random generator seeded from the run: use it instead of the ``random`` module."""
    return current_runtime().workflow_random()


def uuid4() -> _uuid.UUID:
    """A version-4 UUID drawn from :func:`random`, so replay yields the same one."""
    return _uuid.UUID(int=current_runtime().workflow_random().getrandbits(128), version=4)


async def sleep(duration: float | timedelta, *, summary: str | None = None) -> None:
    """Sleep on a durable timer (``asyncio.sleep`` inside a workflow does the same).

    Args:
        duration: Seconds, or a timedelta.
        summary: Accepted for temporalio compatibility; not recorded yet.
    """
    del summary
    current_runtime()
    await asyncio.sleep(_seconds(duration))


async def wait_condition(
    fn: Callable[[], bool], *, timeout: float | timedelta | None = None, timeout_summary: str | None = None
) -> None:
    """Wait until ``fn()`` returns true; it is re-checked whenever the workflow made progress.

    Args:
        fn: A cheap, side-effect-free check of workflow state.
        timeout: Give up after this long (a durable timer).
        timeout_summary: Accepted for temporalio compatibility; not recorded yet.

    Raises:
        asyncio.TimeoutError: If ``timeout`` passed first.
    """
    del timeout_summary
    await current_runtime().workflow_wait_condition(fn, None if timeout is None else _seconds(timeout))


def _activity_name_and_type(activity: str | Callable[..., Any]) -> tuple[str, Any]:
    if isinstance(activity, str):
        return activity, None
    definition = getattr(activity, "__kronicle_activity_definition__", None)
    if definition is None:
        raise ValueError(
            f"{getattr(activity, '__name__', activity)!r} is not an activity; decorate it with @activity.defn "
            "or pass the activity type name as a string"
        )
    if definition.name is None:
        raise ValueError("A dynamic activity cannot be called by reference; pass the activity type name")
    return definition.name, definition.ret_type


def start_activity(
    activity: str | Callable[..., Any],
    arg: Any = _ARG_UNSET,
    *,
    args: Sequence[Any] = (),
    task_queue: str | None = None,
    result_type: type | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    activity_id: str | None = None,
    summary: str | None = None,
) -> ActivityHandle[Any]:
    """Schedule an activity and return its handle without waiting.

    At least one of ``start_to_close_timeout`` and ``schedule_to_close_timeout``
    is required. ``activity`` is an ``@activity.defn`` function or a type name.

    Raises:
        ValueError: For a missing timeout or an unknown activity reference.
    """
    runtime = current_runtime()
    runtime.workflow_check_can_command("start an activity")
    if start_to_close_timeout is None and schedule_to_close_timeout is None:
        raise ValueError("Activity needs start_to_close_timeout or schedule_to_close_timeout (or both)")
    name, ret_type = _activity_name_and_type(activity)
    config = ActivityConfig(
        activity_type=name,
        args=_collect_args(arg, args),
        activity_id=activity_id,
        task_queue=task_queue,
        schedule_to_close_timeout=schedule_to_close_timeout,
        schedule_to_start_timeout=schedule_to_start_timeout,
        start_to_close_timeout=start_to_close_timeout,
        heartbeat_timeout=heartbeat_timeout,
        retry_policy=retry_policy,
        cancellation_type=cancellation_type,
        result_type=result_type if result_type is not None else ret_type,
        summary=summary,
    )
    return typing.cast("ActivityHandle[Any]", runtime.workflow_start_activity(config))


async def execute_activity(
    activity: str | Callable[..., Any],
    arg: Any = _ARG_UNSET,
    *,
    args: Sequence[Any] = (),
    task_queue: str | None = None,
    result_type: type | None = None,
    schedule_to_close_timeout: timedelta | None = None,
    schedule_to_start_timeout: timedelta | None = None,
    start_to_close_timeout: timedelta | None = None,
    heartbeat_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    activity_id: str | None = None,
    summary: str | None = None,
) -> Any:
    """Run an activity and return its result (see :func:`start_activity` for the options).

    Raises:
        ActivityError: If the activity failed for good; ``cause`` says why.
    """
    return await start_activity(
        activity,
        arg,
        args=args,
        task_queue=task_queue,
        result_type=result_type,
        schedule_to_close_timeout=schedule_to_close_timeout,
        schedule_to_start_timeout=schedule_to_start_timeout,
        start_to_close_timeout=start_to_close_timeout,
        heartbeat_timeout=heartbeat_timeout,
        retry_policy=retry_policy,
        cancellation_type=cancellation_type,
        activity_id=activity_id,
        summary=summary,
    )


def _workflow_name_and_type(workflow: str | Callable[..., Any] | type) -> tuple[str, Any]:
    if isinstance(workflow, str):
        return workflow, None
    definition = (
        WorkflowDefinition.from_class(workflow)
        if isinstance(workflow, type)
        else WorkflowDefinition.from_run_fn(workflow)
    )
    if definition is None:
        raise ValueError(f"{workflow!r} is not a workflow run method; pass MyWorkflow.run or the workflow type name")
    if definition.name is None:
        raise ValueError("A dynamic workflow cannot be started by reference; pass the workflow type name")
    return definition.name, definition.ret_type


async def start_child_workflow(
    workflow: str | Callable[..., Any] | type,
    arg: Any = _ARG_UNSET,
    *,
    args: Sequence[Any] = (),
    id: str | None = None,
    task_queue: str | None = None,
    result_type: type | None = None,
    cancellation_type: ChildWorkflowCancellationType = ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
    parent_close_policy: ParentClosePolicy = ParentClosePolicy.TERMINATE,
    execution_timeout: timedelta | None = None,
    run_timeout: timedelta | None = None,
    task_timeout: timedelta | None = None,
    id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    retry_policy: RetryPolicy | None = None,
    cron_schedule: str = "",
    memo: Mapping[str, Any] | None = None,
    search_attributes: SearchAttributes | None = None,
) -> ChildWorkflowHandle[Any]:
    """Start a child workflow; returns its handle once the engine started it.

    Without ``id`` the child gets a deterministic id derived from this workflow's
    random generator.

    Raises:
        WorkflowAlreadyStartedError: If the id is taken under ``id_reuse_policy``.
    """
    runtime = current_runtime()
    runtime.workflow_check_can_command("start a child workflow")
    name, ret_type = _workflow_name_and_type(workflow)
    config = ChildWorkflowConfig(
        workflow_type=name,
        args=_collect_args(arg, args),
        id=id,
        task_queue=task_queue,
        result_type=result_type if result_type is not None else ret_type,
        cancellation_type=cancellation_type,
        parent_close_policy=parent_close_policy,
        execution_timeout=execution_timeout,
        run_timeout=run_timeout,
        task_timeout=task_timeout,
        id_reuse_policy=id_reuse_policy,
        retry_policy=retry_policy,
        cron_schedule=cron_schedule,
        memo=memo,
        search_attributes=search_attributes,
    )
    return typing.cast("ChildWorkflowHandle[Any]", await runtime.workflow_start_child_workflow(config))


async def execute_child_workflow(
    workflow: str | Callable[..., Any] | type,
    arg: Any = _ARG_UNSET,
    *,
    args: Sequence[Any] = (),
    id: str | None = None,
    task_queue: str | None = None,
    result_type: type | None = None,
    cancellation_type: ChildWorkflowCancellationType = ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
    parent_close_policy: ParentClosePolicy = ParentClosePolicy.TERMINATE,
    execution_timeout: timedelta | None = None,
    run_timeout: timedelta | None = None,
    task_timeout: timedelta | None = None,
    id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    retry_policy: RetryPolicy | None = None,
    cron_schedule: str = "",
    memo: Mapping[str, Any] | None = None,
    search_attributes: SearchAttributes | None = None,
) -> Any:
    """Start a child workflow and wait for its result (options as :func:`start_child_workflow`).

    Raises:
        ChildWorkflowError: If the child failed; ``cause`` says why.
    """
    handle = await start_child_workflow(
        workflow,
        arg,
        args=args,
        id=id,
        task_queue=task_queue,
        result_type=result_type,
        cancellation_type=cancellation_type,
        parent_close_policy=parent_close_policy,
        execution_timeout=execution_timeout,
        run_timeout=run_timeout,
        task_timeout=task_timeout,
        id_reuse_policy=id_reuse_policy,
        retry_policy=retry_policy,
        cron_schedule=cron_schedule,
        memo=memo,
        search_attributes=search_attributes,
    )
    return await handle


def continue_as_new(
    arg: Any = _ARG_UNSET,
    *,
    args: Sequence[Any] = (),
    workflow: str | Callable[..., Any] | type | None = None,
    task_queue: str | None = None,
    run_timeout: timedelta | None = None,
    task_timeout: timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    memo: Mapping[str, Any] | None = None,
    search_attributes: SearchAttributes | None = None,
) -> NoReturn:
    """End this run and start a fresh one (new run id, empty history) with these arguments.

    Raises:
        ContinueAsNewError: Always; let it propagate out of the run method.
    """
    runtime = current_runtime()
    runtime.workflow_check_can_command("continue as new")
    workflow_type = None if workflow is None else _workflow_name_and_type(workflow)[0]
    raise ContinueAsNewError(
        ContinueAsNewConfig(
            workflow_type=workflow_type,
            args=_collect_args(arg, args),
            task_queue=task_queue,
            run_timeout=run_timeout,
            task_timeout=task_timeout,
            retry_policy=retry_policy,
            memo=memo,
            search_attributes=search_attributes,
        )
    )


def patched(id: str) -> bool:
    """Whether to take the new code path of a change named ``id``.

    True in new executions (and recorded in history); during replay, True only
    if the history being replayed recorded the patch. Memoised per ``id``.
    """
    return current_runtime().workflow_patch(id, deprecated=False)


def deprecate_patch(id: str) -> None:
    """Mark a patch as the only path left: once no history lacks it, remove the call."""
    current_runtime().workflow_patch(id, deprecated=True)


def upsert_search_attributes(attributes: SearchAttributes) -> None:
    """Set search attributes of this workflow (each a list of values; an empty list removes it)."""
    runtime = current_runtime()
    runtime.workflow_check_can_command("upsert search attributes")
    runtime.workflow_upsert_search_attributes(attributes)


def get_external_workflow_handle(workflow_id: str, *, run_id: str | None = None) -> ExternalWorkflowHandle:
    """A handle to signal or cancel another workflow."""
    current_runtime()
    return ExternalWorkflowHandle(workflow_id, run_id)


class unsafe:
    """Things workflow code rarely needs and must use with care."""

    @staticmethod
    def is_replaying() -> bool:
        """Whether the workflow is replaying history (do not branch workflow logic on this)."""
        return current_runtime().workflow_is_replaying()


if typing.TYPE_CHECKING:
    _AdapterBase = logging.LoggerAdapter[logging.Logger]
else:
    _AdapterBase = logging.LoggerAdapter


class LoggerAdapter(_AdapterBase):
    """A logger for workflow code: silent during replay, tagged with the workflow's ids."""

    def isEnabledFor(self, level: int) -> bool:
        """False while replaying, so a replayed workflow does not log twice."""
        try:
            if current_runtime().workflow_is_replaying():
                return False
        except RuntimeError:
            pass
        return super().isEnabledFor(level)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        """Add the workflow id, run id and type as ``extra`` fields."""
        try:
            wf = current_runtime().workflow_info()
        except RuntimeError:
            return msg, kwargs
        extra = dict(kwargs.get("extra") or {})
        extra.update(workflow_id=wf.workflow_id, run_id=wf.run_id, workflow_type=wf.workflow_type)
        kwargs["extra"] = extra
        return msg, kwargs


logger = LoggerAdapter(logging.getLogger("kronicle.workflow"), {})
"""The workflow logger (``workflow.logger.info(...)``)."""
