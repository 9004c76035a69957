"""What the client returns: execution status, descriptions, listings, counts, histories; client-side errors."""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kronicle.converter import Payload
from kronicle.exceptions import KronicleError

__all__ = [
    "PendingActivityInfo",
    "WorkflowContinuedAsNewError",
    "WorkflowExecution",
    "WorkflowExecutionCount",
    "WorkflowExecutionCountAggregationGroup",
    "WorkflowExecutionDescription",
    "WorkflowExecutionStatus",
    "WorkflowHistory",
    "WorkflowQueryFailedError",
    "WorkflowUpdateFailedError",
    "WorkflowUpdateStage",
]


class WorkflowExecutionStatus(enum.IntEnum):
    """Status of a workflow run (temporalio's values)."""

    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    CANCELED = 4
    TERMINATED = 5
    CONTINUED_AS_NEW = 6
    TIMED_OUT = 7


class WorkflowUpdateStage(enum.IntEnum):
    """How far an update has come (temporalio's ``WorkflowUpdateStage``)."""

    ADMITTED = 1
    """The engine has it; the workflow has not seen it yet."""
    ACCEPTED = 2
    """The workflow's validator accepted it; the handler runs."""
    COMPLETED = 3
    """The handler finished (with a result or a failure)."""


class WorkflowQueryFailedError(KronicleError):
    """A query reached the workflow and failed there (unknown query name, the handler raised).

    ``__cause__`` is the decoded failure, when the worker sent one.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)


class WorkflowUpdateFailedError(KronicleError):
    """An update was rejected by its validator, its handler raised, or the run closed before it completed.

    ``cause`` says which (e.g. the :class:`~kronicle.exceptions.ApplicationError` the validator raised).
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__("Workflow update failed")
        self.__cause__ = cause

    @property
    def cause(self) -> BaseException:
        """Why the update failed."""
        assert self.__cause__ is not None
        return self.__cause__


class WorkflowContinuedAsNewError(KronicleError):
    """``result(follow_runs=False)`` found that the run continued as new."""

    def __init__(self, new_execution_run_id: str) -> None:
        super().__init__(f"Workflow continued as new as run {new_execution_run_id}")
        self.new_execution_run_id = new_execution_run_id
        """The run that continued it."""


def _time(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


@dataclasses.dataclass(frozen=True)
class PendingActivityInfo:
    """An activity of a running workflow that has not ended."""

    activity_id: str
    """The activity's id within the workflow."""
    activity_type: str
    """The activity's type name."""
    scheduled_event_id: int
    """Id of its ``ActivityTaskScheduled`` event."""
    state: str
    """``DISPATCHED`` (an attempt is out) or ``BACKOFF`` (waiting to retry)."""
    attempt: int
    """Current attempt, from 1."""
    last_failure: Mapping[str, Any] | None
    """The failure of the previous attempt, as a failure dict, if any."""
    cancel_requested: bool
    """Whether the workflow asked to cancel it."""


@dataclasses.dataclass(frozen=True)
class WorkflowExecutionDescription:
    """One run of a workflow as the engine stores it (``WorkflowHandle.describe()``)."""

    id: str
    """Workflow id."""
    run_id: str
    """Run id."""
    first_run_id: str
    """Run id of the first run of this chain of continue-as-new runs."""
    workflow_type: str
    """Workflow type name."""
    task_queue: str
    """Task queue the run's workflow tasks go to."""
    status: WorkflowExecutionStatus
    """Running, completed, failed, ..."""
    start_time: datetime | None
    """When the run started."""
    execution_time: datetime | None
    """When the run's first workflow task was due (start time plus start delay)."""
    close_time: datetime | None
    """When the run closed (None while running)."""
    history_length: int
    """Number of events in the run's history."""
    memo: Mapping[str, Payload]
    """Memo as payloads (decode with the client's data converter)."""
    search_attributes: Mapping[str, Payload]
    """Search attributes as payloads."""
    pending_activities: Sequence[PendingActivityInfo]
    """Activities scheduled and not ended."""
    raw: Mapping[str, Any]
    """The frontend's full answer."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkflowExecutionDescription:
        """Build from the frontend's describe answer."""
        return cls(
            id=data["workflow_id"],
            run_id=data["run_id"],
            first_run_id=data.get("first_run_id", data["run_id"]),
            workflow_type=data.get("workflow_type", ""),
            task_queue=data.get("task_queue", ""),
            status=WorkflowExecutionStatus[data["status"]],
            start_time=_time(data.get("start_time_ms")),
            execution_time=_time(data.get("execution_time_ms")),
            close_time=_time(data.get("close_time_ms")),
            history_length=int(data.get("history_length", 0)),
            memo={k: Payload.from_dict(v) for k, v in (data.get("memo") or {}).items()},
            search_attributes={k: Payload.from_dict(v) for k, v in (data.get("search_attributes") or {}).items()},
            pending_activities=[
                PendingActivityInfo(
                    activity_id=a.get("activity_id", ""),
                    activity_type=a.get("activity_type", ""),
                    scheduled_event_id=int(a.get("scheduled_event_id", 0)),
                    state=a.get("state", ""),
                    attempt=int(a.get("attempt", 1)),
                    last_failure=a.get("last_failure"),
                    cancel_requested=bool(a.get("cancel_requested")),
                )
                for a in data.get("pending_activities") or ()
            ],
            raw=dict(data),
        )


def _rfc3339(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# Visibility answers Temporal's status names; the client's enum uses the record's.
_STATUS_BY_VISIBILITY_NAME = {
    "Running": WorkflowExecutionStatus.RUNNING,
    "Completed": WorkflowExecutionStatus.COMPLETED,
    "Failed": WorkflowExecutionStatus.FAILED,
    "Canceled": WorkflowExecutionStatus.CANCELED,
    "Terminated": WorkflowExecutionStatus.TERMINATED,
    "ContinuedAsNew": WorkflowExecutionStatus.CONTINUED_AS_NEW,
    "TimedOut": WorkflowExecutionStatus.TIMED_OUT,
}


def _status(name: str) -> WorkflowExecutionStatus | None:
    found = _STATUS_BY_VISIBILITY_NAME.get(name)
    if found is None and name in WorkflowExecutionStatus.__members__:
        found = WorkflowExecutionStatus[name]
    return found


@dataclasses.dataclass(frozen=True)
class WorkflowExecution:
    """One execution as visibility lists it (``Client.list_workflows``), shaped like temporalio's."""

    id: str
    """Workflow id."""
    run_id: str
    """Run id."""
    workflow_type: str
    """Workflow type name."""
    task_queue: str
    """Task queue."""
    status: WorkflowExecutionStatus | None
    """Running, completed, failed, ..."""
    start_time: datetime | None
    """When the run started."""
    execution_time: datetime | None
    """When its first workflow task was due."""
    close_time: datetime | None
    """When it closed (None while running)."""
    history_length: int
    """Events in its history when visibility last heard of it."""
    first_run_id: str
    """Run id of the first run of its continue-as-new chain."""
    memo: Mapping[str, Payload]
    """Memo as payloads (decode with the client's data converter)."""
    search_attributes: Mapping[str, Any]
    """Search attributes, decoded."""
    raw: Mapping[str, Any]
    """The frontend's full answer for this execution."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkflowExecution:
        """Build from one item of the frontend's list answer."""
        return cls(
            id=data["workflow_id"],
            run_id=data["run_id"],
            workflow_type=data.get("workflow_type", ""),
            task_queue=data.get("task_queue", ""),
            status=_status(str(data.get("status", ""))),
            start_time=_rfc3339(data.get("start_time")),
            execution_time=_rfc3339(data.get("execution_time")),
            close_time=_rfc3339(data.get("close_time")),
            history_length=int(data.get("history_length") or 0),
            first_run_id=data.get("first_run_id") or data["run_id"],
            memo={k: Payload.from_dict(v) for k, v in (data.get("memo") or {}).items()},
            search_attributes=dict(data.get("search_attributes") or {}),
            raw=dict(data),
        )


@dataclasses.dataclass(frozen=True)
class WorkflowExecutionCountAggregationGroup:
    """One group of a grouped count (``GROUP BY ExecutionStatus``)."""

    count: int
    """Executions in the group."""
    group_values: Sequence[Any]
    """The group's values, e.g. ``["Running"]``."""


@dataclasses.dataclass(frozen=True)
class WorkflowExecutionCount:
    """The answer of ``Client.count_workflows`` (temporalio's shape)."""

    count: int
    """Executions that match the query."""
    groups: Sequence[WorkflowExecutionCountAggregationGroup]
    """Per group, when the query ends with ``GROUP BY ExecutionStatus``; empty otherwise."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkflowExecutionCount:
        """Build from the frontend's count answer."""
        groups = [
            WorkflowExecutionCountAggregationGroup(
                count=int(g["count"]), group_values=list(g.get("group_values") or ())
            )
            for g in data.get("groups") or ()
        ]
        return cls(count=int(data["count"]), groups=groups)


@dataclasses.dataclass(frozen=True)
class WorkflowHistory:
    """A run's full history (``WorkflowHandle.fetch_history()``), usable by the Replayer."""

    workflow_id: str
    """Workflow id."""
    run_id: str
    """Run id."""
    events: Sequence[Mapping[str, Any]]
    """The decoded ``kronicle.workflow.HistoryEvent`` datums in order (payload fields are bytes)."""

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form: bytes as ``{"$b": base64}`` so :meth:`from_json` restores them exactly."""
        return {"workflow_id": self.workflow_id, "run_id": self.run_id, "events": _tag_bytes(list(self.events))}

    def to_json(self) -> str:
        """The history as a JSON string (see :meth:`to_json_dict`)."""
        return json.dumps(self.to_json_dict())

    @classmethod
    def from_json(cls, data: str | Mapping[str, Any]) -> WorkflowHistory:
        """The inverse of :meth:`to_json` / :meth:`to_json_dict`."""
        obj = json.loads(data) if isinstance(data, str) else data
        return cls(workflow_id=obj["workflow_id"], run_id=obj["run_id"], events=_untag_bytes(obj["events"]))


def _tag_bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _tag_bytes(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tag_bytes(v) for v in value]
    return value


def _untag_bytes(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$b"}:
            return base64.b64decode(value["$b"])
        return {k: _untag_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag_bytes(v) for v in value]
    return value
