"""What the client returns: execution status, descriptions, histories."""

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
    "WorkflowExecutionDescription",
    "WorkflowExecutionStatus",
    "WorkflowHistory",
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
