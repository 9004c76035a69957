"""The adapter between the engine's history and the deterministic workflow instance.

Two directions:

* history events (decoded ``kronicle.workflow.HistoryEvent`` datums) become
  :class:`~kronicle.worker._activation.Activation` jobs, one activation per
  workflow task, at the workflow time of the task;
* the instance's :class:`~kronicle.worker._activation.Command` objects become
  ``kronicle.workflow.WorkerCommand`` datums for ``CompleteWorkflowTask``
  (in :mod:`kronicle.worker._commands`).

While history is replayed, the commands the code produces must match the
command events history recorded for the same task (ActivityTaskScheduled <->
ScheduleActivity by seq and type, TimerStarted <-> StartTimer, MarkerRecorded
<-> SetPatchMarker, ...); a mismatch raises a
:class:`~kronicle.exceptions.NondeterminismError` naming the event (id and
type) and the command that disagree.

Seq numbers: the instance numbers commands per kind from 1, and the engine
writes every command of an accepted completion as events in order, so the
n-th ActivityTaskScheduled of a run is activity seq n (likewise timers and
children). A rejected completion writes nothing, and the worker replays on a
fresh instance after it, so the numbering always agrees.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta
from typing import Any

from kronicle import _wire
from kronicle import exceptions as exc
from kronicle.converter import DataConverter, Failure, Payload
from kronicle.engine.workflow.schema_gen import attributes_field
from kronicle.worker import _activation as act
from kronicle.worker._inline import InlinePolicy
from kronicle.worker._workflow_instance import WorkflowInstance
from kronicle.workflow._runtime import Info, ParentInfo

__all__ = [
    "PATCH_MARKER",
    "RunHistory",
    "UnsupportedCommandError",
    "WorkflowTaskFailedError",
    "attrs",
    "ms_to_datetime",
]

PATCH_MARKER = "core_patch"
"""Marker name of ``workflow.patched`` markers (Temporal core's name)."""

# Events a completion's commands write; they carry workflow_task_completed_event_id.
_COMMAND_KEY_KINDS = {
    "ActivityTaskScheduled": "ScheduleActivity",
    "TimerStarted": "StartTimer",
    "MarkerRecorded": "SetPatchMarker",
    "UpsertWorkflowSearchAttributes": "UpsertSearchAttributes",
    "StartChildWorkflowExecutionInitiated": "StartChildWorkflow",
    "SignalExternalWorkflowExecutionInitiated": "SignalExternalWorkflow",
    "RequestCancelExternalWorkflowExecutionInitiated": "RequestCancelExternalWorkflow",
    "WorkflowExecutionCompleted": "CompleteWorkflow",
    "WorkflowExecutionFailed": "FailWorkflow",
    "WorkflowExecutionCanceled": "CancelWorkflowExecution",
    "WorkflowExecutionContinuedAsNew": "ContinueAsNew",
}
# Cancel commands are not compared: the engine drops a cancel of a timer that already fired or
# an activity that already ended (its closing event may be buffered behind the task), so history
# legitimately lacks some of them.
_UNCHECKED_COMMANDS = (act.CancelTimer, act.RequestCancelActivity, act.CancelChildWorkflow)
_UNCHECKED_EVENTS = {"TimerCanceled", "ActivityTaskCancelRequested"}
# Everything a completion's commands write right after its WorkflowTaskCompleted. Results that
# carry workflow_task_completed_event_id too (e.g. StartChildWorkflowExecutionFailed) are jobs.
_COMMAND_EVENTS = {
    *_COMMAND_KEY_KINDS,
    *_UNCHECKED_EVENTS,
    "WorkflowExecutionUpdateAccepted",
    "WorkflowExecutionUpdateCompleted",
}


class WorkflowTaskFailedError(Exception):
    """The workflow code could not make progress on a workflow task (the task fails, the workflow stays open).

    Args:
        failure: The SDK failure dict of the error.
        cause: The engine's cause name (e.g. ``WORKFLOW_TASK_FAILED``).
    """

    def __init__(self, failure: Failure, cause: str = "WORKFLOW_TASK_FAILED") -> None:
        super().__init__(failure.get("message") or "workflow task failed")
        self.failure = failure
        self.cause = cause


class UnsupportedCommandError(Exception):
    """The workflow issued a command the engine does not implement yet."""


def attrs(event: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes record of a decoded history event (``{}`` if absent)."""
    value: dict[str, Any] | None = event.get(attributes_field(str(event["event_type"])))
    return value or {}


def ms_to_datetime(ms: int) -> datetime:
    """Milliseconds since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _td(ms: int | None) -> timedelta | None:
    return timedelta(milliseconds=ms) if ms else None


def _seed(run_id: str) -> int:
    try:
        return uuid.UUID(run_id).int & (2**63 - 1)
    except ValueError:
        return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big") >> 1


def _describe(event: Mapping[str, Any]) -> str:
    return f"event {event['event_id']} {event['event_type']}"


@dataclasses.dataclass
class _Expected:
    key: act.CommandKey
    event: Mapping[str, Any]


class RunHistory:
    """Feeds one run's history to its :class:`WorkflowInstance`, replaying and checking as it goes.

    Args:
        instance: A fresh instance for the run.
        workflow_id: The run's workflow id.
        run_id: The run id.
        namespace: The namespace (for ``workflow.info()``).
        data_converter: Its codec decodes payloads before the instance sees them.
        executor: Where activations run (None: on the calling thread). Workflow code is
            synchronous between awaits; running it off the event loop keeps a slow activation
            from stalling the worker's polling and heartbeats.
        inline: With an executor: when live activations of this run's type may run on the
            calling thread instead (see :mod:`kronicle.worker._inline`); replays always use the executor.
    """

    def __init__(
        self,
        instance: WorkflowInstance,
        *,
        workflow_id: str,
        run_id: str,
        namespace: str,
        data_converter: DataConverter,
        executor: Executor | None = None,
        inline: InlinePolicy | None = None,
    ) -> None:
        self.instance = instance
        self._executor = executor
        self._inline = inline
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.namespace = namespace
        self._dc = data_converter
        self.next_event_id = 1
        """The id of the next event this run expects (history applied up to ``next_event_id - 1``)."""
        self._jobs: list[act.Job] = []
        self._last_time_ms = 0
        self._own_started: int | None = None
        self._activity_seq: dict[int, int] = {}  # scheduled event id -> seq
        self._activity_event: dict[int, int] = {}  # seq -> scheduled event id
        self._timer_seq: dict[str, int] = {}
        self._child_seq: dict[int, int] = {}
        self._child_workflow_id: dict[int, str] = {}  # child seq -> workflow id
        self._external_seq: dict[int, tuple[str, int]] = {}  # initiated event id -> (kind, seq)
        self._counts: dict[str, int] = {"activity": 0, "timer": 0, "child": 0, "signal": 0, "cancel": 0}
        self.closed = False
        """True once a closing event has been applied."""
        self.replayed_tasks = 0
        """Workflow tasks replayed from history (not counting live ones)."""

    # ------------------------------------------------------------ history -> activations

    async def advance(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Apply events ``next_event_id ..``: replay every workflow task history shows as completed.

        Events already applied are skipped, so overlapping pages are harmless.

        Raises:
            NondeterminismError: A replayed task's commands disagree with history.
            WorkflowTaskFailedError: The code failed a replayed task.
            ValueError: The events leave a gap after what was applied.
        """
        events = [e for e in events if int(e["event_id"]) >= self.next_event_id]
        i = 0
        while i < len(events):
            event = events[i]
            if int(event["event_id"]) != self.next_event_id:
                raise ValueError(
                    f"history of run {self.run_id} jumps from event {self.next_event_id - 1} to "
                    f"{event['event_id']}; fetch the full history and replay"
                )
            kind = event["event_type"]
            following = events[i + 1] if i + 1 < len(events) else None
            if kind == "WorkflowTaskStarted" and following and following["event_type"] == "WorkflowTaskCompleted":
                j = i + 2
                group: list[Mapping[str, Any]] = []
                while (
                    j < len(events)
                    and events[j]["event_type"] in _COMMAND_EVENTS
                    and int(attrs(events[j]).get("workflow_task_completed_event_id") or 0) == int(following["event_id"])
                ):
                    group.append(events[j])
                    j += 1
                await self._completed_task(event, group)
                for e in events[i:j]:
                    self._consume(e)
                i = j
                continue
            self._consume(event)
            job = await self._job_for(event)
            if job is not None:
                self._jobs.append(job)
            i += 1

    def _consume(self, event: Mapping[str, Any]) -> None:
        self.next_event_id = int(event["event_id"]) + 1
        self._last_time_ms = max(self._last_time_ms, int(event["event_time"]))
        if event["event_type"] in ("WorkflowExecutionCompleted", "WorkflowExecutionFailed", "WorkflowExecutionCanceled",
                                   "WorkflowExecutionContinuedAsNew", "WorkflowExecutionTerminated",
                                   "WorkflowExecutionTimedOut"):  # fmt: skip
            self.closed = True

    async def _completed_task(self, started: Mapping[str, Any], group: Sequence[Mapping[str, Any]]) -> None:
        own = self._own_started == int(started["event_id"])
        expected = [self._note_command_event(e) for e in group]
        if own:
            # The task this worker completed live: its commands are what the engine just accepted.
            self._own_started = None
            return
        jobs = list(self._jobs)
        for e in group:
            if e["event_type"] == "MarkerRecorded" and attrs(e).get("marker_name") == PATCH_MARKER:
                # Like Temporal core: a replayed task learns of the patches its own commands recorded.
                jobs.append(act.NotifyHasPatch(self._patch_id(e)))
            elif e["event_type"] == "WorkflowExecutionUpdateAccepted":
                # The update was delivered with this task and accepted: deliver it again, validated.
                a = attrs(e)
                args = await self._payloads(a.get("input"))
                jobs.append(
                    act.DoUpdate(str(a.get("update_id", "")), str(a.get("name", "")), args, run_validator=False)
                )
        self._jobs = []
        completion = await self._activate(jobs, int(started["event_time"]), replaying=True)
        self.replayed_tasks += 1
        if completion.failure is not None:
            raise WorkflowTaskFailedError(completion.failure)
        self._check(started, [x for x in expected if x is not None], completion.commands)

    async def _activate(self, jobs: Sequence[act.Job], time_ms: int, *, replaying: bool) -> act.Completion:
        activation = act.Activation(
            run_id=self.run_id,
            timestamp=ms_to_datetime(time_ms),
            is_replaying=replaying,
            jobs=tuple(jobs),
            history_length=self.next_event_id - 1,
        )
        if self._executor is None:
            return self.instance.activate(activation)
        policy = self._inline
        if policy is None or replaying:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.instance.activate, activation)
        if policy.inline:
            return policy.run(self.instance.activate, activation)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, policy.run, self.instance.activate, activation
        )

    def _check(
        self, started: Mapping[str, Any], expected: Sequence[_Expected], produced: Sequence[act.Command]
    ) -> None:
        got = [c for c in produced if c.replay_checked and not isinstance(c, _UNCHECKED_COMMANDS)]
        where = f"workflow task started at event {started['event_id']}"
        for index, (want, cmd) in enumerate(zip(expected, got, strict=False)):
            if want.key != cmd.key:
                raise exc.NondeterminismError(
                    f"Nondeterminism in {where}, command #{index + 1}: history has {_describe(want.event)} "
                    f"[{want.key}] but the workflow code produced [{cmd.key}]; guard the change with "
                    "workflow.patched() or start a new workflow type",
                    event=f"{_describe(want.event)} [{want.key}]",
                    command=str(cmd.key),
                )
        if len(expected) > len(got):
            want = expected[len(got)]
            raise exc.NondeterminismError(
                f"Nondeterminism in {where}, command #{len(got) + 1}: history has {_describe(want.event)} "
                f"[{want.key}] but the workflow code no longer produces it; guard the change with workflow.patched()",
                event=f"{_describe(want.event)} [{want.key}]",
            )
        if len(got) > len(expected):
            cmd = got[len(expected)]
            raise exc.NondeterminismError(
                f"Nondeterminism in {where}, command #{len(expected) + 1}: the workflow code produced [{cmd.key}] "
                "which history does not have; guard the change with workflow.patched()",
                command=str(cmd.key),
            )

    def _note_command_event(self, event: Mapping[str, Any]) -> _Expected | None:
        kind = str(event["event_type"])
        a = attrs(event)
        eid = int(event["event_id"])
        if kind in _UNCHECKED_EVENTS:
            return None
        name = _COMMAND_KEY_KINDS.get(kind)
        if name is None:
            return None
        seq: int | None = None
        label: str | None = None
        if kind == "ActivityTaskScheduled":
            seq = self._next("activity")
            self._activity_seq[eid] = seq
            self._activity_event[seq] = eid
            label = a.get("activity_type", "")
        elif kind == "TimerStarted":
            seq = self._next("timer")
            self._timer_seq[str(a.get("timer_id", ""))] = seq
        elif kind == "StartChildWorkflowExecutionInitiated":
            seq = self._next("child")
            self._child_seq[eid] = seq
            self._child_workflow_id[seq] = str(a.get("workflow_id", ""))
            label = a.get("workflow_type", "")
        elif kind == "SignalExternalWorkflowExecutionInitiated":
            seq = self._next("signal")
            self._external_seq[eid] = ("signal", seq)
            label = a.get("signal_name", "")
        elif kind == "RequestCancelExternalWorkflowExecutionInitiated":
            if a.get("child_workflow_only"):
                return None  # how CancelChildWorkflow travels; the child's own events resolve it
            seq = self._next("cancel")
            self._external_seq[eid] = ("cancel", seq)
        elif kind == "MarkerRecorded":
            if a.get("marker_name") != PATCH_MARKER:
                return None  # markers of kinds this SDK does not write are not commands of its code
            label = self._patch_id(event)
        return _Expected(act.CommandKey(name, seq, label), event)

    def _next(self, kind: str) -> int:
        self._counts[kind] += 1
        return self._counts[kind]

    def _patch_id(self, event: Mapping[str, Any]) -> str:
        details = attrs(event).get("details") or {}
        raw = details.get("patch_id") or []
        if not raw:
            return ""
        value = self._dc.payload_converter.from_payload(_wire.payload_from_bytes(raw[0]), str)
        return str(value)

    async def _payloads(self, items: Sequence[bytes] | None) -> list[Payload]:
        return await self._dc.decode_payloads(_wire.payloads_from_bytes(items or ()))

    async def _payload(self, items: Sequence[bytes] | None) -> Payload | None:
        decoded = await self._payloads(items)
        return decoded[0] if decoded else None

    async def _failure(self, wire: Mapping[str, Any] | None) -> Failure | None:
        if wire is None:
            return None
        failure = _wire.failure_from_wire(wire)
        await self._dc._map_failure_payloads(failure, self._dc.decode_payloads)
        return failure

    def _activity_failure(self, a: Mapping[str, Any], seq: int, message: str, cause: Failure | None) -> Failure:
        return {
            "message": message,
            "type": None,
            "stack_trace": "",
            "source": "Kronicle",
            "non_retryable": False,
            "details": [],
            "kind": "activity",
            "info": {
                "scheduled_event_id": int(a.get("scheduled_event_id") or 0),
                "started_event_id": int(a.get("started_event_id") or 0),
                "identity": a.get("identity") or "",
                "activity_type": "",
                "activity_id": "",
                "retry_state": _retry_state(a.get("retry_state")),
            },
            "cause": cause,
        }

    async def _job_for(self, event: Mapping[str, Any]) -> act.Job | None:
        kind = event["event_type"]
        a = attrs(event)
        match kind:
            case "WorkflowExecutionStarted":
                return await self._start_job(event, a)
            case "ActivityTaskCompleted":
                seq = self._activity_seq[int(a["scheduled_event_id"])]
                return act.ResolveActivity(seq, "completed", result=await self._payload(a.get("result")))
            case "ActivityTaskFailed" | "ActivityTaskTimedOut":
                seq = self._activity_seq[int(a["scheduled_event_id"])]
                cause = await self._failure(a.get("failure"))
                message = "Activity task failed" if kind == "ActivityTaskFailed" else "Activity task timed out"
                return act.ResolveActivity(seq, "failed", failure=self._activity_failure(a, seq, message, cause))
            case "ActivityTaskCanceled":
                seq = self._activity_seq[int(a["scheduled_event_id"])]
                cancelled: Failure = {
                    "message": "Activity cancelled",
                    "kind": "cancelled",
                    "details": [p.to_dict() for p in await self._payloads(a.get("details"))],
                    "info": {},
                    "cause": None,
                }
                failure = self._activity_failure(
                    {**a, "retry_state": "CANCEL_REQUESTED"}, seq, "Activity task cancelled", cancelled
                )
                return act.ResolveActivity(seq, "cancelled", failure=failure)
            case "TimerFired":
                return act.FireTimer(self._timer_seq[str(a["timer_id"])])
            case "WorkflowExecutionSignaled":
                return act.SignalWorkflow(
                    a.get("signal_name", ""), await self._payloads(a.get("input")), a.get("request_id") or ""
                )
            case "WorkflowExecutionCancelRequested":
                return act.CancelWorkflow(a.get("cause") or "")
            case (
                "ExternalWorkflowExecutionSignaled"
                | "SignalExternalWorkflowExecutionFailed"
                | "ExternalWorkflowExecutionCancelRequested"
                | "RequestCancelExternalWorkflowExecutionFailed"
            ):
                return self._external_resolution(kind, a)
            case "ChildWorkflowExecutionStarted":
                return act.ResolveChildWorkflowStart(self._child_seq[int(a["initiated_event_id"])], run_id=a["run_id"])
            case "StartChildWorkflowExecutionFailed":
                seq = self._child_seq[int(a["initiated_event_id"])]
                return act.ResolveChildWorkflowStart(seq, already_started=True)
            case "ChildWorkflowExecutionCompleted":
                seq = self._child_seq[int(a["initiated_event_id"])]
                return act.ResolveChildWorkflow(seq, "completed", result=await self._payload(a.get("result")))
            case (
                "ChildWorkflowExecutionFailed"
                | "ChildWorkflowExecutionTimedOut"
                | "ChildWorkflowExecutionTerminated"
                | "ChildWorkflowExecutionCanceled"
            ):
                return await self._child_resolution(kind, a)
        return None

    def _external_resolution(self, kind: str, a: Mapping[str, Any]) -> act.Job | None:
        entry = self._external_seq.get(int(a.get("initiated_event_id") or 0))
        if entry is None:
            return None  # a child-only cancel request (CancelChildWorkflow): nothing waits on it
        what, seq = entry
        failure: Failure | None = None
        if kind.endswith("Failed"):
            failure = {
                "message": f"Unable to {'signal' if what == 'signal' else 'cancel'} external workflow "
                f"{a.get('workflow_id', '')!r}: {a.get('cause') or 'not found'}",
                "type": "ExternalWorkflowExecutionNotFound",
                "kind": "application",
                "source": "Kronicle",
                "non_retryable": True,
            }
        if what == "signal":
            return act.ResolveSignalExternalWorkflow(seq, failure)
        return act.ResolveRequestCancelExternalWorkflow(seq, failure)

    async def _child_resolution(self, kind: str, a: Mapping[str, Any]) -> act.Job:
        seq = self._child_seq[int(a["initiated_event_id"])]
        cause: Failure | None
        if kind == "ChildWorkflowExecutionFailed":
            cause = await self._failure(a.get("failure"))
        elif kind == "ChildWorkflowExecutionTimedOut":
            cause = {
                "message": "Child workflow timed out",
                "kind": "timeout",
                "info": {"timeout_type": int(exc.TimeoutType.START_TO_CLOSE)},
            }
        elif kind == "ChildWorkflowExecutionTerminated":
            cause = {"message": "Child workflow terminated", "kind": "terminated"}
        else:
            details = [p.to_dict() for p in await self._payloads(a.get("details"))]
            cause = {"message": "Child workflow cancelled", "kind": "cancelled", "details": details}
        failure: Failure = {
            "message": "Child workflow execution failed"
            if kind != "ChildWorkflowExecutionCanceled"
            else "Child workflow execution cancelled",
            "kind": "child_workflow",
            "source": "Kronicle",
            "info": {
                "namespace": self.namespace,
                "workflow_id": a.get("workflow_id", ""),
                "run_id": a.get("run_id", ""),
                "workflow_type": a.get("workflow_type", ""),
                "initiated_event_id": int(a.get("initiated_event_id") or 0),
                "started_event_id": int(a.get("started_event_id") or 0),
                "retry_state": _retry_state(a.get("retry_state")),
            },
            "cause": cause,
        }
        status: act.ResolutionStatus = "cancelled" if kind == "ChildWorkflowExecutionCanceled" else "failed"
        return act.ResolveChildWorkflow(seq, status, failure=failure)

    async def _start_job(self, event: Mapping[str, Any], a: Mapping[str, Any]) -> act.StartWorkflow:
        conv = self._dc.payload_converter
        search = {k: conv.from_payload(p) for k, p in (await self._decode_map(a.get("search_attributes"))).items()}
        parent = None
        if a.get("parent_workflow_id"):
            parent = ParentInfo(self.namespace, a["parent_workflow_id"], a.get("parent_run_id", ""))
        info = Info(
            workflow_id=self.workflow_id,
            run_id=self.run_id,
            workflow_type=a.get("workflow_type", ""),
            task_queue=a.get("task_queue", ""),
            namespace=self.namespace,
            attempt=int(a.get("attempt") or 1),
            start_time=ms_to_datetime(int(event["event_time"])),
            execution_timeout=_td(a.get("workflow_execution_timeout_ms")),
            run_timeout=_td(a.get("workflow_run_timeout_ms")),
            task_timeout=_td(a.get("workflow_task_timeout_ms")),
            continued_run_id=a.get("continued_execution_run_id") or None,
            first_execution_run_id=a.get("first_execution_run_id") or self.run_id,
            parent=parent,
            cron_schedule=a.get("cron_schedule") or None,
            search_attributes=search,
            headers=await self._decode_map(a.get("header")),
        )
        return act.StartWorkflow(
            workflow_type=info.workflow_type,
            args=await self._payloads(a.get("input")),
            info=info,
            randomness_seed=_seed(self.run_id),
        )

    async def _decode_map(self, items: Mapping[str, bytes] | None) -> dict[str, Payload]:
        keys = list(items or {})
        values = await self._payloads([(items or {})[k] for k in keys])
        return dict(zip(keys, values, strict=True))

    # ------------------------------------------------------------ the live task

    async def activate_live(
        self, scheduled_event_id: int, now: datetime, updates: Sequence[Mapping[str, Any]] = ()
    ) -> act.Completion:
        """Run the pending jobs as workflow task ``scheduled_event_id`` (history must be applied up to it).

        ``now`` is the task's start time; it is never earlier than the last event. ``updates`` are
        the task's ``UpdateRequest`` records, delivered as DoUpdate jobs (validator first).
        """
        if self.next_event_id != scheduled_event_id + 1:
            raise ValueError(
                f"run {self.run_id} has history up to event {self.next_event_id - 1}, "
                f"not up to the task's WorkflowTaskScheduled {scheduled_event_id}"
            )
        jobs, self._jobs = self._jobs, []
        for update in updates:
            args = await self._payloads(update.get("input"))
            jobs.append(act.DoUpdate(str(update["update_id"]), str(update["name"]), args, run_validator=True))
        time_ms = max(int(now.timestamp() * 1000), self._last_time_ms)
        completion = await self._activate(jobs, time_ms, replaying=False)
        if completion.failure is None:
            self._own_started = scheduled_event_id + 1
        return completion

    async def query(self, query_id: str, query_type: str, args: Sequence[bytes]) -> act.Completion:
        """Answer a query on the state history has been replayed to (pending jobs are not applied,
        as in Temporal: a query sees the state after the last completed workflow task)."""
        job = act.QueryWorkflow(query_id, query_type, await self._payloads(args))
        return await self._activate([job], self._last_time_ms, replaying=True)

    def started_time_ms(self, now: datetime) -> int:
        """The ``started_time_ms`` to report for a task activated at ``now`` (same clamp as the activation)."""
        return max(int(now.timestamp() * 1000), self._last_time_ms)

    def child_workflow_id(self, seq: int, started_now: Mapping[int, str]) -> str:
        """The workflow id of child ``seq`` (from history, or started in this completion)."""
        return self._child_workflow_id.get(seq) or started_now.get(seq, "")

    def activity_scheduled_event_id(self, seq: int, predicted: Mapping[int, int]) -> int:
        """The scheduled event id of activity ``seq`` (from history, else predicted for this completion)."""
        if seq in self._activity_event:
            return self._activity_event[seq]
        return predicted.get(seq, 0)


def _retry_state(name: Any) -> int | None:
    if isinstance(name, str) and name in exc.RetryState.__members__:
        return int(exc.RetryState[name])
    return None
