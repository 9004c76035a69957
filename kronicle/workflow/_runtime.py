"""What the in-workflow API needs from whatever runs the workflow.

The public functions in ``kronicle.workflow`` find the running workflow through
``asyncio.get_running_loop()``: inside workflow code that loop is the
deterministic instance (``kronicle.worker._workflow_instance``), which implements
:class:`WorkflowRuntime`. Keeping this interface here, on the workflow side,
lets the public API stay thin and lets a test double stand in for the instance.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import random as _random
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from kronicle.common import (
    ActivityCancellationType,
    ChildWorkflowCancellationType,
    ParentClosePolicy,
    RetryPolicy,
    SearchAttributes,
    WorkflowIDReusePolicy,
)
from kronicle.converter import PayloadConverter

__all__ = [
    "ActivityConfig",
    "ChildWorkflowConfig",
    "ContinueAsNewConfig",
    "ContinueAsNewError",
    "Info",
    "ParentInfo",
    "WorkflowRuntime",
    "current_runtime",
]


@dataclasses.dataclass(frozen=True)
class ParentInfo:
    """The parent of a child workflow."""

    namespace: str
    """Namespace of the parent."""
    workflow_id: str
    """Workflow id of the parent."""
    run_id: str
    """Run id of the parent."""


@dataclasses.dataclass(frozen=True)
class Info:
    """What a workflow knows about its own execution (``workflow.info()``)."""

    workflow_id: str
    """The workflow id."""
    run_id: str
    """This run's id."""
    workflow_type: str
    """The workflow type name."""
    task_queue: str
    """The task queue the workflow's tasks go to."""
    namespace: str = "default"
    """The namespace."""
    attempt: int = 1
    """Workflow attempt (retries of the whole workflow under its retry policy), 1-based."""
    start_time: datetime | None = None
    """When this run started."""
    execution_timeout: timedelta | None = None
    """Timeout over all runs (continue-as-new and retries included)."""
    run_timeout: timedelta | None = None
    """Timeout of this run."""
    task_timeout: timedelta | None = None
    """Timeout of one workflow task."""
    retry_policy: RetryPolicy | None = None
    """The workflow's retry policy."""
    cron_schedule: str | None = None
    """The cron schedule, if any."""
    continued_run_id: str | None = None
    """Run id of the run that continued-as-new into this one."""
    first_execution_run_id: str = ""
    """Run id of the first run in this chain."""
    parent: ParentInfo | None = None
    """The parent, for a child workflow."""
    search_attributes: SearchAttributes = dataclasses.field(default_factory=dict)
    """Search attributes as of the start (``upsert_search_attributes`` updates the live copy)."""
    headers: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Headers given at start."""


@dataclasses.dataclass(frozen=True)
class ActivityConfig:
    """Everything ``execute_activity``/``start_activity`` was given, checked."""

    activity_type: str
    args: Sequence[Any]
    activity_id: str | None
    task_queue: str | None
    schedule_to_close_timeout: timedelta | None
    schedule_to_start_timeout: timedelta | None
    start_to_close_timeout: timedelta | None
    heartbeat_timeout: timedelta | None
    retry_policy: RetryPolicy | None
    cancellation_type: ActivityCancellationType
    result_type: Any
    summary: str | None = None


@dataclasses.dataclass(frozen=True)
class ChildWorkflowConfig:
    """Everything ``execute_child_workflow``/``start_child_workflow`` was given."""

    workflow_type: str
    args: Sequence[Any]
    id: str | None
    task_queue: str | None
    result_type: Any
    cancellation_type: ChildWorkflowCancellationType
    parent_close_policy: ParentClosePolicy
    execution_timeout: timedelta | None
    run_timeout: timedelta | None
    task_timeout: timedelta | None
    id_reuse_policy: WorkflowIDReusePolicy
    retry_policy: RetryPolicy | None
    cron_schedule: str
    memo: Mapping[str, Any] | None
    search_attributes: SearchAttributes | None


@dataclasses.dataclass(frozen=True)
class ContinueAsNewConfig:
    """Everything ``continue_as_new`` was given."""

    workflow_type: str | None
    args: Sequence[Any]
    task_queue: str | None
    run_timeout: timedelta | None
    task_timeout: timedelta | None
    retry_policy: RetryPolicy | None
    memo: Mapping[str, Any] | None
    search_attributes: SearchAttributes | None


class ContinueAsNewError(BaseException):
    """Raised by ``workflow.continue_as_new``; let it propagate out of the run method.

    It is a BaseException (as in temporalio) so that ``except Exception`` in
    workflow code does not swallow it.
    """

    def __init__(self, config: ContinueAsNewConfig) -> None:
        super().__init__("Continue as new")
        self.config = config
        """The options of the new run."""


class WorkflowRuntime(asyncio.AbstractEventLoop, abc.ABC):
    """The running workflow, as the in-workflow API sees it (the event loop itself)."""

    @abc.abstractmethod
    def workflow_info(self) -> Info:
        """The workflow's Info."""

    @abc.abstractmethod
    def workflow_now(self) -> datetime:
        """Workflow time: the activation's timestamp (UTC)."""

    @abc.abstractmethod
    def workflow_random(self) -> _random.Random:
        """The deterministic random generator, seeded from the run."""

    @abc.abstractmethod
    def workflow_is_replaying(self) -> bool:
        """Whether the current activation replays history."""

    @abc.abstractmethod
    def workflow_payload_converter(self) -> PayloadConverter:
        """The payload converter the workflow uses."""

    @abc.abstractmethod
    def workflow_patch(self, patch_id: str, *, deprecated: bool) -> bool:
        """``patched``/``deprecate_patch``."""

    @abc.abstractmethod
    def workflow_start_activity(self, config: ActivityConfig) -> asyncio.Task[Any]:
        """Schedule an activity; returns its handle (a task resolving to the result)."""

    @abc.abstractmethod
    async def workflow_start_child_workflow(self, config: ChildWorkflowConfig) -> asyncio.Task[Any]:
        """Start a child workflow; returns its handle once the start is resolved."""

    @abc.abstractmethod
    async def workflow_wait_condition(self, fn: Callable[[], bool], timeout: float | None) -> None:
        """Wait until ``fn()`` is true (raises ``asyncio.TimeoutError`` after ``timeout`` seconds)."""

    @abc.abstractmethod
    def workflow_upsert_search_attributes(self, attributes: SearchAttributes) -> None:
        """Record new search attribute values."""

    @abc.abstractmethod
    async def workflow_signal_external(
        self, workflow_id: str, run_id: str | None, signal: str, args: Sequence[Any], *, child_only: bool
    ) -> None:
        """Signal another workflow; returns when the engine delivered it."""

    @abc.abstractmethod
    async def workflow_cancel_external(self, workflow_id: str, run_id: str | None) -> None:
        """Request cancellation of another workflow."""

    @abc.abstractmethod
    def workflow_check_can_command(self, what: str) -> None:
        """Raise if the workflow may not issue commands now (e.g. inside a query)."""


def current_runtime() -> WorkflowRuntime:
    """The running workflow.

    Raises:
        RuntimeError: Outside workflow code (the message says where the call belongs).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if not isinstance(loop, WorkflowRuntime):
        raise RuntimeError(
            "Not in a workflow: kronicle.workflow functions work only inside workflow code run by a Kronicle "
            "worker (use activity code, or the client, outside workflows)"
        )
    return loop
