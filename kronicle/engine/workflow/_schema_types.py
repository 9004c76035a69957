"""Avro building blocks of the workflow protocol: shared types, history events, worker commands.

Used by :mod:`kronicle.engine.workflow.schema_gen`, which assembles them into
the top-level subjects and writes the ``.avsc`` files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kronicle.engine.workflow._state import attributes_field

__all__ = ["EVENT_TYPES", "NAMESPACE", "SCHEMA_DIR", "WORKER_COMMAND_TYPES"]

NAMESPACE = "kronicle.workflow"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "workflow"

_PAYLOADS: dict[str, Any] = {"type": "array", "items": "bytes"}
_MAP: dict[str, Any] = {"type": "map", "values": "bytes"}
_NULL_STR: list[Any] = ["null", "string"]


def _f(name: str, type_: Any, default: Any = ..., doc: str | None = None) -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "type": type_}
    if default is not ...:
        field["default"] = default
    if doc:
        field["doc"] = doc
    return field


def _s(name: str, doc: str | None = None) -> dict[str, Any]:
    return _f(name, "string", "", doc)


def _l(name: str, doc: str | None = None) -> dict[str, Any]:
    return _f(name, "long", 0, doc)


def _payloads(name: str, doc: str | None = None) -> dict[str, Any]:
    return _f(name, _PAYLOADS, [], doc)


def _map(name: str, doc: str | None = None) -> dict[str, Any]:
    return _f(name, _MAP, {}, doc)


def _opt(name: str, type_name: Any, doc: str | None = None) -> dict[str, Any]:
    return _f(name, ["null", type_name], None, doc)


def _record(name: str, doc: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": NAMESPACE, "doc": doc, "fields": fields}


def _full(name: str) -> str:
    return f"{NAMESPACE}.{name}"


# -- shared named types -------------------------------------------------------

_FAILURE = _record(
    "Failure",
    "A failure with its cause chain, shaped like Temporal's Failure.",
    [
        _s("message"),
        _s("source", "Who produced it, e.g. 'PythonSDK' or 'Kronicle'."),
        _s("stack_trace"),
        _s("failure_type", "application, timeout, canceled, terminated, activity, child_workflow or server."),
        _s("type", "For application failures: the error type name (matched by non_retryable_error_types)."),
        _f("non_retryable", "boolean", False),
        _payloads("details"),
        _s("timeout_type", "For timeout failures: START_TO_CLOSE, SCHEDULE_TO_START, SCHEDULE_TO_CLOSE, HEARTBEAT."),
        _payloads("last_heartbeat_details", "For heartbeat timeouts: the details of the last heartbeat."),
        _s("retry_state"),
        _s("activity_id"),
        _s("activity_type"),
        _l("scheduled_event_id"),
        _l("started_event_id"),
        _opt("cause", _full("Failure")),
    ],
)

_RETRY_POLICY = _record(
    "RetryPolicy",
    "Temporal's retry policy. Zero values mean the defaults: 1 s, 2.0, 100x initial, unlimited.",
    [
        _l("initial_interval_ms"),
        _f("backoff_coefficient", "double", 0.0),
        _l("maximum_interval_ms"),
        _f("maximum_attempts", "int", 0),
        _f("non_retryable_error_types", {"type": "array", "items": "string"}, []),
    ],
)

_CHILD_REF = [_s("workflow_id"), _s("run_id"), _s("workflow_type"), _l("initiated_event_id"), _l("started_event_id")]

# Event attributes: one record per event type, fields as in Temporal's history.
_ATTRS: dict[str, list[dict[str, Any]]] = {
    "WorkflowExecutionStarted": [
        _s("workflow_type"),
        _s("task_queue"),
        _payloads("input"),
        _l("workflow_execution_timeout_ms"),
        _l("workflow_run_timeout_ms"),
        _l("workflow_task_timeout_ms"),
        _s("continued_execution_run_id"),
        _s("initiator", "'' for a client start; WORKFLOW, RETRY_POLICY or CRON_SCHEDULE for a continued run."),
        _s("original_execution_run_id"),
        _s("first_execution_run_id"),
        _s("identity"),
        _s("request_id"),
        _f("attempt", "int", 1),
        _l("workflow_execution_expiration_time_ms"),
        _l("first_workflow_task_backoff_ms"),
        _map("memo"),
        _map("search_attributes"),
        _map("header"),
        _opt("continued_failure", _full("Failure")),
        _payloads("last_completion_result"),
        _s("parent_workflow_id"),
        _s("parent_run_id"),
        _l("parent_initiated_event_id"),
        _s("cron_schedule", "v2: the run's cron schedule ('' = none); carried to every run of the chain."),
    ],
    "WorkflowExecutionCompleted": [
        _payloads("result"),
        _l("workflow_task_completed_event_id"),
        _s("new_execution_run_id", "v2: set when a cron schedule starts the next run."),
    ],
    "WorkflowExecutionFailed": [
        _f("failure", _full("Failure")),
        _s("retry_state"),
        _l("workflow_task_completed_event_id"),
        _s("new_execution_run_id", "Set when the workflow's retry policy starts another attempt."),
    ],
    "WorkflowExecutionTimedOut": [_s("retry_state"), _s("new_execution_run_id")],
    "WorkflowTaskScheduled": [_s("task_queue"), _l("start_to_close_timeout_ms"), _f("attempt", "int", 1)],
    "WorkflowTaskStarted": [_l("scheduled_event_id"), _s("identity"), _s("request_id")],
    "WorkflowTaskCompleted": [_l("scheduled_event_id"), _l("started_event_id"), _s("identity")],
    "WorkflowTaskTimedOut": [_l("scheduled_event_id"), _l("started_event_id"), _s("timeout_type")],
    "WorkflowTaskFailed": [
        _l("scheduled_event_id"),
        _l("started_event_id"),
        _s("cause"),
        _opt("failure", _full("Failure")),
        _s("identity"),
    ],
    "ActivityTaskScheduled": [
        _s("activity_id"),
        _s("activity_type"),
        _s("task_queue"),
        _map("header"),
        _payloads("input"),
        _l("schedule_to_close_timeout_ms"),
        _l("schedule_to_start_timeout_ms"),
        _l("start_to_close_timeout_ms"),
        _l("heartbeat_timeout_ms"),
        _l("workflow_task_completed_event_id"),
        _f("retry_policy", _full("RetryPolicy")),
    ],
    "ActivityTaskStarted": [
        _l("scheduled_event_id"),
        _s("identity"),
        _f("attempt", "int", 1),
        _opt("last_failure", _full("Failure")),
    ],
    "ActivityTaskCompleted": [_payloads("result"), _l("scheduled_event_id"), _l("started_event_id"), _s("identity")],
    "ActivityTaskFailed": [
        _f("failure", _full("Failure")),
        _l("scheduled_event_id"),
        _l("started_event_id"),
        _s("identity"),
        _s("retry_state"),
    ],
    "ActivityTaskTimedOut": [
        _f("failure", _full("Failure")),
        _l("scheduled_event_id"),
        _l("started_event_id"),
        _s("retry_state"),
    ],
    "ActivityTaskCancelRequested": [_l("scheduled_event_id"), _l("workflow_task_completed_event_id")],
    "ActivityTaskCanceled": [
        _payloads("details"),
        _l("latest_cancel_requested_event_id"),
        _l("scheduled_event_id"),
        _l("started_event_id"),
        _s("identity"),
    ],
    "TimerStarted": [_s("timer_id"), _l("start_to_fire_timeout_ms"), _l("workflow_task_completed_event_id")],
    "TimerFired": [_s("timer_id"), _l("started_event_id")],
    "TimerCanceled": [_s("timer_id"), _l("started_event_id"), _l("workflow_task_completed_event_id"), _s("identity")],
    "WorkflowExecutionCancelRequested": [_s("cause"), _s("identity"), _s("request_id")],
    "WorkflowExecutionCanceled": [_l("workflow_task_completed_event_id"), _payloads("details")],
    "MarkerRecorded": [
        _s("marker_name"),
        _f("details", {"type": "map", "values": _PAYLOADS}, {}),
        _l("workflow_task_completed_event_id"),
        _map("header"),
        _opt("failure", _full("Failure")),
    ],
    "WorkflowExecutionSignaled": [
        _s("signal_name"),
        _payloads("input"),
        _s("identity"),
        _map("header"),
        _s("request_id", "Kronicle: the id a retried signal is deduplicated by."),
    ],
    "WorkflowExecutionTerminated": [_s("reason"), _payloads("details"), _s("identity")],
    "WorkflowExecutionContinuedAsNew": [
        _s("new_execution_run_id"),
        _s("workflow_type"),
        _s("task_queue"),
        _payloads("input"),
        _l("workflow_run_timeout_ms"),
        _l("workflow_task_timeout_ms"),
        _l("workflow_task_completed_event_id"),
        _l("backoff_start_interval_ms"),
        _s("initiator"),
        _map("header"),
        _map("memo"),
        _map("search_attributes"),
    ],
    "UpsertWorkflowSearchAttributes": [_l("workflow_task_completed_event_id"), _map("search_attributes")],
    "StartChildWorkflowExecutionInitiated": [
        _s("workflow_id"),
        _s("workflow_type"),
        _s("task_queue"),
        _payloads("input"),
        _l("workflow_execution_timeout_ms"),
        _l("workflow_run_timeout_ms"),
        _l("workflow_task_timeout_ms"),
        _s("parent_close_policy"),
        _l("workflow_task_completed_event_id"),
        _s("workflow_id_reuse_policy"),
        _map("header"),
        _map("memo"),
        _map("search_attributes"),
        _s("cron_schedule", "v2."),
    ],
    "StartChildWorkflowExecutionFailed": [
        _s("workflow_id"),
        _s("workflow_type"),
        _s("cause", "WORKFLOW_ALREADY_EXISTS."),
        _l("initiated_event_id"),
        _l("workflow_task_completed_event_id"),
    ],
    "ChildWorkflowExecutionStarted": [_s("workflow_id"), _s("run_id"), _s("workflow_type"), _l("initiated_event_id")],
    "ChildWorkflowExecutionCompleted": [_payloads("result"), *_CHILD_REF],
    "ChildWorkflowExecutionFailed": [_f("failure", _full("Failure")), *_CHILD_REF, _s("retry_state")],
    "ChildWorkflowExecutionCanceled": [_payloads("details"), *_CHILD_REF],
    "ChildWorkflowExecutionTimedOut": [*_CHILD_REF, _s("retry_state")],
    "ChildWorkflowExecutionTerminated": [*_CHILD_REF],
    "SignalExternalWorkflowExecutionInitiated": [
        _s("workflow_id"),
        _s("run_id"),
        _s("signal_name"),
        _payloads("input"),
        _map("header"),
        _f("child_workflow_only", "boolean", False),
        _l("workflow_task_completed_event_id"),
    ],
    "SignalExternalWorkflowExecutionFailed": [
        _s("workflow_id"),
        _s("run_id"),
        _s("cause", "EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND."),
        _l("initiated_event_id"),
        _l("workflow_task_completed_event_id"),
    ],
    "ExternalWorkflowExecutionSignaled": [_s("workflow_id"), _s("run_id"), _l("initiated_event_id")],
    "RequestCancelExternalWorkflowExecutionInitiated": [
        _s("workflow_id"),
        _s("run_id"),
        _s("reason"),
        _f("child_workflow_only", "boolean", False),
        _l("workflow_task_completed_event_id"),
    ],
    "RequestCancelExternalWorkflowExecutionFailed": [
        _s("workflow_id"),
        _s("run_id"),
        _s("cause"),
        _l("initiated_event_id"),
        _l("workflow_task_completed_event_id"),
    ],
    "ExternalWorkflowExecutionCancelRequested": [_s("workflow_id"), _s("run_id"), _l("initiated_event_id")],
    "WorkflowExecutionUpdateAccepted": [
        _s("update_id"),
        _s("name"),
        _payloads("input"),
        _map("header"),
        _s("identity"),
        _l("workflow_task_completed_event_id"),
    ],
    "WorkflowExecutionUpdateCompleted": [
        _s("update_id"),
        _l("accepted_event_id"),
        _payloads("result"),
        _opt("failure", _full("Failure"), "Set when the update handler failed."),
    ],
}

EVENT_TYPES: tuple[str, ...] = tuple(_ATTRS)
"""Every history event type the engine writes, in Temporal's names."""


_HISTORY_EVENT = _record(
    "HistoryEvent",
    "One history event. Exactly one *_event_attributes field is set: the one for event_type.",
    [
        _f("event_id", "long", doc="Dense from 1 within a run."),
        _f("event_time", "long", doc="Milliseconds since the epoch."),
        _f("event_type", {"type": "enum", "name": "EventType", "namespace": NAMESPACE, "symbols": list(EVENT_TYPES)}),
        _l("version", "Namespace failover version the event was written under."),
    ]
    + [
        _opt(attributes_field(t), _record(f"{t}EventAttributes", f"Attributes of {t}.", fields))
        for t, fields in _ATTRS.items()
    ],
)

# Commands a worker sends inside a workflow-task completion.
_WORKER_COMMANDS: dict[str, list[dict[str, Any]]] = {
    "ScheduleActivityTask": [
        _s("activity_id"),
        _s("activity_type"),
        _s("task_queue", "Empty: the workflow's task queue."),
        _map("header"),
        _payloads("input"),
        _l("schedule_to_close_timeout_ms"),
        _l("schedule_to_start_timeout_ms"),
        _l("start_to_close_timeout_ms"),
        _l("heartbeat_timeout_ms"),
        _opt("retry_policy", _full("RetryPolicy")),
        _f(
            "request_eager_execution",
            "boolean",
            False,
            "CompleteWorkflowTask v3: the completing worker runs attempt 1 itself; no ActivityTask is dispatched.",
        ),
    ],
    "RequestCancelActivityTask": [_l("scheduled_event_id")],
    "StartTimer": [_s("timer_id"), _l("start_to_fire_timeout_ms")],
    "CancelTimer": [_s("timer_id")],
    "CompleteWorkflowExecution": [_payloads("result")],
    "FailWorkflowExecution": [_f("failure", _full("Failure"))],
    "CancelWorkflowExecution": [_payloads("details")],
    "ContinueAsNewWorkflowExecution": [
        _s("workflow_type", "Empty: the same type."),
        _s("task_queue", "Empty: the same queue."),
        _payloads("input"),
        _l("workflow_run_timeout_ms", "0: the same as this run."),
        _l("workflow_task_timeout_ms", "0: the same as this run."),
        _l("backoff_start_interval_ms"),
        _map("header"),
        _f("memo", ["null", _MAP], None, "null: carried over from this run."),
        _f("search_attributes", ["null", _MAP], None, "null: carried over from this run."),
    ],
    "RecordMarker": [
        _s("marker_name"),
        _f("details", {"type": "map", "values": _PAYLOADS}, {}),
        _map("header"),
        _opt("failure", _full("Failure")),
    ],
    "UpsertWorkflowSearchAttributes": [_map("search_attributes")],
    "StartChildWorkflowExecution": [
        _s("workflow_id"),
        _s("workflow_type"),
        _s("task_queue", "Empty: the parent's task queue."),
        _payloads("input"),
        _l("workflow_execution_timeout_ms"),
        _l("workflow_run_timeout_ms"),
        _l("workflow_task_timeout_ms"),
        _s("parent_close_policy", "TERMINATE (default), ABANDON or REQUEST_CANCEL."),
        _s("workflow_id_reuse_policy", "Empty: ALLOW_DUPLICATE."),
        _map("header"),
        _map("memo"),
        _map("search_attributes"),
        _opt("retry_policy", _full("RetryPolicy")),
        _s("cron_schedule", "v2: '' = none."),
    ],
    "SignalExternalWorkflowExecution": [
        _s("workflow_id"),
        _s("run_id", "Empty: the current run."),
        _s("signal_name"),
        _payloads("input"),
        _map("header"),
        _f("child_workflow_only", "boolean", False),
    ],
    "RequestCancelExternalWorkflowExecution": [
        _s("workflow_id"),
        _s("run_id", "Empty: the current run."),
        _s("reason"),
        _f("child_workflow_only", "boolean", False),
    ],
    "UpdateResponse": [
        _s("update_id"),
        _s("outcome", "ACCEPTED (the validator passed), REJECTED, or COMPLETED (result or failure)."),
        _payloads("result"),
        _opt("failure", _full("Failure"), "REJECTED: why; COMPLETED: set if the handler failed."),
    ],
}

WORKER_COMMAND_TYPES: tuple[str, ...] = tuple(_WORKER_COMMANDS)
"""Every command a worker may send in a workflow-task completion."""

_WORKER_COMMAND = _record(
    "WorkerCommand",
    "One command of a workflow-task completion; exactly one *_command_attributes field is set.",
    [
        _f(
            "command_type",
            {"type": "enum", "name": "CommandType", "namespace": NAMESPACE, "symbols": list(WORKER_COMMAND_TYPES)},
        )
    ]
    + [
        _opt(attributes_field(t, "command"), _record(f"{t}CommandAttributes", f"Attributes of {t}.", fields))
        for t, fields in _WORKER_COMMANDS.items()
    ],
)

_NAMED: dict[str, dict[str, Any]] = {
    _full("Failure"): _FAILURE,
    _full("RetryPolicy"): _RETRY_POLICY,
    _full("HistoryEvent"): _HISTORY_EVENT,
    _full("WorkerCommand"): _WORKER_COMMAND,
}
