"""The workflow instance's input (activations of jobs) and output (completions of commands).

An :class:`Activation` is everything that happened to a workflow since its
last activation, as jobs: the start with its arguments, a timer that fired, an
activity that finished, a signal, a query, an update, a cancel request, ...
It carries the workflow time to use and whether it replays history. The
instance answers with a :class:`Completion`: the commands the workflow code
produced (schedule an activity, start a timer, complete the workflow, ...) or,
if the code could not make progress (a bug, a deadlock, non-determinism), a
workflow-task failure.

The model is Kronicle's own (shaped after Temporal core's) and deliberately
plain: frozen dataclasses, payloads already codec-decoded, failures as dicts.
An adapter in the worker turns history events into jobs and commands into
engine commands.

Commands that start something carry ``seq``, a sequence number counted per
kind from 1 (timers 1, 2, ...; activities 1, 2, ...). The job that resolves it
names the same ``seq``. Every command also has a :attr:`Command.key`, the part
that must be identical on replay; :func:`check_determinism` compares two
command lists by those keys and raises a precise
:class:`~kronicle.exceptions.NondeterminismError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal, TypeAlias

from kronicle.common import (
    ActivityCancellationType,
    ChildWorkflowCancellationType,
    ParentClosePolicy,
    RetryPolicy,
    SearchAttributes,
    WorkflowIDReusePolicy,
)
from kronicle.converter import Failure, Payload
from kronicle.exceptions import NondeterminismError
from kronicle.workflow._runtime import Info

__all__ = [
    "Activation",
    "CancelChildWorkflow",
    "CancelTimer",
    "CancelWorkflow",
    "CancelWorkflowExecution",
    "Command",
    "CommandKey",
    "CompleteWorkflow",
    "Completion",
    "ContinueAsNew",
    "DoUpdate",
    "FailWorkflow",
    "FireTimer",
    "Job",
    "NotifyHasPatch",
    "QueryWorkflow",
    "RequestCancelActivity",
    "RequestCancelExternalWorkflow",
    "ResolveActivity",
    "ResolveChildWorkflow",
    "ResolveChildWorkflowStart",
    "ResolveRequestCancelExternalWorkflow",
    "ResolveSignalExternalWorkflow",
    "RespondToQuery",
    "ScheduleActivity",
    "SetPatchMarker",
    "SignalExternalWorkflow",
    "SignalWorkflow",
    "StartChildWorkflow",
    "StartTimer",
    "StartWorkflow",
    "UpdateRandomSeed",
    "UpdateResponse",
    "UpsertSearchAttributes",
    "check_determinism",
    "is_response",
]

ResolutionStatus: TypeAlias = Literal["completed", "failed", "cancelled"]

# ---------------------------------------------------------------- jobs


@dataclasses.dataclass(frozen=True)
class StartWorkflow:
    """Start the run: construct the class and call its run method (first activation only)."""

    workflow_type: str
    args: Sequence[Payload]
    info: Info
    randomness_seed: int
    """Seeds ``workflow.random()``/``uuid4()``; derive it from the run id so replay agrees."""


@dataclasses.dataclass(frozen=True)
class FireTimer:
    """The timer started with ``StartTimer(seq)`` fired."""

    seq: int


@dataclasses.dataclass(frozen=True)
class ResolveActivity:
    """The activity scheduled with ``ScheduleActivity(seq)`` finished for good (no more retries)."""

    seq: int
    status: ResolutionStatus
    result: Payload | None = None
    """The result, for ``completed``."""
    failure: Failure | None = None
    """For ``failed``/``cancelled``: the failure (an ``activity`` failure whose cause is the reason,
    or just the reason, which the instance then wraps in an ActivityError)."""


@dataclasses.dataclass(frozen=True)
class SignalWorkflow:
    """A signal arrived."""

    signal_name: str
    args: Sequence[Payload] = ()
    request_id: str = ""
    """The sender's dedup id (the engine drops repeats; informative here)."""


@dataclasses.dataclass(frozen=True)
class QueryWorkflow:
    """Answer a query (handled after all other jobs, on the resulting state)."""

    query_id: str
    query_type: str
    args: Sequence[Payload] = ()


@dataclasses.dataclass(frozen=True)
class DoUpdate:
    """Run an update: validator (if ``run_validator``), accept, then the handler."""

    update_id: str
    name: str
    args: Sequence[Payload] = ()
    run_validator: bool = True
    """False on replay of an update already accepted in history."""


@dataclasses.dataclass(frozen=True)
class CancelWorkflow:
    """Cancellation of the workflow was requested."""

    reason: str = ""


@dataclasses.dataclass(frozen=True)
class NotifyHasPatch:
    """The history being replayed contains the marker of patch ``patch_id``."""

    patch_id: str


@dataclasses.dataclass(frozen=True)
class UpdateRandomSeed:
    """Reseed ``workflow.random()`` (e.g. after a reset)."""

    seed: int


@dataclasses.dataclass(frozen=True)
class ResolveChildWorkflowStart:
    """The engine started (or could not start) the child of ``StartChildWorkflow(seq)``."""

    seq: int
    run_id: str | None = None
    """The child's first run id, when it started."""
    already_started: bool = False
    """The id was taken (raises WorkflowAlreadyStartedError in the parent)."""
    failure: Failure | None = None
    """Any other reason the start failed."""


@dataclasses.dataclass(frozen=True)
class ResolveChildWorkflow:
    """The child of ``StartChildWorkflow(seq)`` closed."""

    seq: int
    status: ResolutionStatus
    result: Payload | None = None
    failure: Failure | None = None


@dataclasses.dataclass(frozen=True)
class ResolveSignalExternalWorkflow:
    """The signal of ``SignalExternalWorkflow(seq)`` was delivered (``failure`` None) or not."""

    seq: int
    failure: Failure | None = None


@dataclasses.dataclass(frozen=True)
class ResolveRequestCancelExternalWorkflow:
    """The cancel request of ``RequestCancelExternalWorkflow(seq)`` was delivered or not."""

    seq: int
    failure: Failure | None = None


Job: TypeAlias = (
    StartWorkflow
    | FireTimer
    | ResolveActivity
    | SignalWorkflow
    | QueryWorkflow
    | DoUpdate
    | CancelWorkflow
    | NotifyHasPatch
    | UpdateRandomSeed
    | ResolveChildWorkflowStart
    | ResolveChildWorkflow
    | ResolveSignalExternalWorkflow
    | ResolveRequestCancelExternalWorkflow
)


@dataclasses.dataclass(frozen=True)
class Activation:
    """One step of a workflow: jobs to apply at workflow time ``timestamp``.

    The instance applies jobs in this order, whatever their order in ``jobs``
    (stable within each group): StartWorkflow; NotifyHasPatch and
    UpdateRandomSeed; SignalWorkflow and DoUpdate; then everything else
    (resolutions, FireTimer, CancelWorkflow); it then runs the workflow until
    it is blocked, and finally answers the QueryWorkflow jobs.
    """

    run_id: str
    timestamp: datetime
    """Workflow time for this step (``workflow.now()``); must be timezone-aware."""
    is_replaying: bool
    """True while re-applying history the workflow has already seen."""
    jobs: Sequence[Job]
    history_length: int = 0
    """Number of history events so far (informative)."""


# ---------------------------------------------------------------- commands


@dataclasses.dataclass(frozen=True)
class CommandKey:
    """The part of a command that must be the same when history is replayed."""

    kind: str
    seq: int | None = None
    name: str | None = None
    """Activity type, child workflow type, signal name, patch id, ... (None: not checked)."""

    def __str__(self) -> str:
        parts = [self.kind]
        if self.seq is not None:
            parts.append(f"seq={self.seq}")
        if self.name is not None:
            parts.append(f"name={self.name!r}")
        return " ".join(parts)


class Command:
    """Base of everything a workflow asks the engine to do."""

    replay_checked: ClassVar[bool] = True
    """False for responses (queries, updates), which are not part of history ordering."""

    @property
    def key(self) -> CommandKey:
        """What replay must reproduce."""
        return CommandKey(type(self).__name__, getattr(self, "seq", None))


@dataclasses.dataclass(frozen=True)
class ScheduleActivity(Command):
    """Schedule an activity task."""

    seq: int
    activity_id: str
    activity_type: str
    task_queue: str
    args: Sequence[Payload]
    schedule_to_close_timeout: timedelta | None
    schedule_to_start_timeout: timedelta | None
    start_to_close_timeout: timedelta | None
    heartbeat_timeout: timedelta | None
    retry_policy: RetryPolicy | None
    cancellation_type: ActivityCancellationType

    @property
    def key(self) -> CommandKey:
        return CommandKey("ScheduleActivity", self.seq, self.activity_type)


@dataclasses.dataclass(frozen=True)
class RequestCancelActivity(Command):
    """Ask the engine to cancel activity ``seq``."""

    seq: int


@dataclasses.dataclass(frozen=True)
class StartTimer(Command):
    """Start a durable timer."""

    seq: int
    duration: timedelta


@dataclasses.dataclass(frozen=True)
class CancelTimer(Command):
    """Cancel timer ``seq`` (it has not fired)."""

    seq: int


@dataclasses.dataclass(frozen=True)
class StartChildWorkflow(Command):
    """Start a child workflow."""

    seq: int
    workflow_id: str
    workflow_type: str
    task_queue: str
    args: Sequence[Payload]
    namespace: str
    cancellation_type: ChildWorkflowCancellationType
    parent_close_policy: ParentClosePolicy
    execution_timeout: timedelta | None
    run_timeout: timedelta | None
    task_timeout: timedelta | None
    id_reuse_policy: WorkflowIDReusePolicy
    retry_policy: RetryPolicy | None
    cron_schedule: str
    memo: Mapping[str, Payload] | None
    search_attributes: SearchAttributes | None

    @property
    def key(self) -> CommandKey:
        return CommandKey("StartChildWorkflow", self.seq, self.workflow_type)


@dataclasses.dataclass(frozen=True)
class CancelChildWorkflow(Command):
    """Request cancellation of child ``seq``."""

    seq: int


@dataclasses.dataclass(frozen=True)
class SignalExternalWorkflow(Command):
    """Signal another workflow (or a child, with ``child_workflow_only``)."""

    seq: int
    namespace: str
    workflow_id: str
    run_id: str | None
    signal_name: str
    args: Sequence[Payload]
    child_workflow_only: bool

    @property
    def key(self) -> CommandKey:
        return CommandKey("SignalExternalWorkflow", self.seq, self.signal_name)


@dataclasses.dataclass(frozen=True)
class RequestCancelExternalWorkflow(Command):
    """Request cancellation of another workflow."""

    seq: int
    namespace: str
    workflow_id: str
    run_id: str | None


@dataclasses.dataclass(frozen=True)
class UpsertSearchAttributes(Command):
    """Set search attributes."""

    search_attributes: SearchAttributes


@dataclasses.dataclass(frozen=True)
class SetPatchMarker(Command):
    """Record that the workflow took patch ``patch_id``'s new path."""

    patch_id: str
    deprecated: bool

    @property
    def key(self) -> CommandKey:
        return CommandKey("SetPatchMarker", None, self.patch_id)


@dataclasses.dataclass(frozen=True)
class RespondToQuery(Command):
    """The answer to ``QueryWorkflow(query_id)``: a result or a failure."""

    replay_checked: ClassVar[bool] = False
    query_id: str
    result: Payload | None = None
    failure: Failure | None = None


@dataclasses.dataclass(frozen=True)
class UpdateResponse(Command):
    """Progress of ``DoUpdate(update_id)``: accepted, rejected (validator), or completed.

    A completed update has ``result``, or ``failure`` if the handler raised a
    FailureError after acceptance.
    """

    replay_checked: ClassVar[bool] = False
    update_id: str
    kind: Literal["accepted", "rejected", "completed"]
    result: Payload | None = None
    failure: Failure | None = None


@dataclasses.dataclass(frozen=True)
class CompleteWorkflow(Command):
    """The run method returned."""

    result: Payload


@dataclasses.dataclass(frozen=True)
class FailWorkflow(Command):
    """The run method (or a handler) raised a FailureError."""

    failure: Failure


@dataclasses.dataclass(frozen=True)
class CancelWorkflowExecution(Command):
    """The workflow accepted a cancellation request and ended as cancelled."""


@dataclasses.dataclass(frozen=True)
class ContinueAsNew(Command):
    """End the run and start a new one of the same workflow id."""

    workflow_type: str
    task_queue: str
    args: Sequence[Payload]
    run_timeout: timedelta | None
    task_timeout: timedelta | None
    retry_policy: RetryPolicy | None
    memo: Mapping[str, Payload] | None
    search_attributes: SearchAttributes | None


@dataclasses.dataclass(frozen=True)
class Completion:
    """What one activation produced.

    Either ``commands`` (possibly empty: the workflow is waiting) or, when the
    workflow code could not run (an unexpected exception, a deadlock,
    non-determinism), ``failure``: the workflow task fails and is retried,
    the workflow itself stays open.
    """

    run_id: str
    commands: Sequence[Command] = ()
    failure: Failure | None = None

    @property
    def is_task_failure(self) -> bool:
        """Whether the workflow task failed (``failure`` is set)."""
        return self.failure is not None


def check_determinism(expected: Sequence[CommandKey | Command], produced: Sequence[Command]) -> None:
    """Check that replayed code produced the commands history recorded.

    ``expected`` are the keys of the commands recorded in history (the adapter
    derives them from history events: ActivityTaskScheduled -> ``ScheduleActivity``
    with the activity type, TimerStarted -> ``StartTimer``, ...), or the commands
    of an earlier run. Responses (queries, updates) are ignored.

    Raises:
        NondeterminismError: Naming the first position where the two disagree,
            what history has there and what the code produced.
    """
    want = [c.key if isinstance(c, Command) else c for c in expected if not isinstance(c, Command) or c.replay_checked]
    got = [c.key for c in produced if c.replay_checked]
    for index, (w, g) in enumerate(zip(want, got, strict=False)):
        if w != g:
            raise NondeterminismError(
                f"Nondeterminism at command #{index + 1}: history has [{w}] but the workflow code produced [{g}]; "
                "guard the change with workflow.patched() or start a new workflow type",
                event=str(w),
                command=str(g),
            )
    if len(want) > len(got):
        w = want[len(got)]
        raise NondeterminismError(
            f"Nondeterminism at command #{len(got) + 1}: history has [{w}] but the workflow code no longer "
            "produces it; guard the change with workflow.patched()",
            event=str(w),
        )
    if len(got) > len(want):
        g = got[len(want)]
        raise NondeterminismError(
            f"Nondeterminism at command #{len(want) + 1}: the workflow code produced [{g}] which history does "
            "not have; guard the change with workflow.patched()",
            command=str(g),
        )


def is_response(command: Any) -> bool:
    """Whether ``command`` answers a query or an update (allowed after the workflow closed)."""
    return isinstance(command, (RespondToQuery, UpdateResponse))
