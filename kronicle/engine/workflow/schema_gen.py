"""The Avro schemas of the workflow protocol, and the generator of their ``.avsc`` files.

The schemas are written here once, as Python data, because the schema registry
parses each ``.avsc`` file on its own: every file must define the named types it
uses (``Failure``, ``RetryPolicy``, ``HistoryEvent``...). Writing those shared
types once and expanding them into each file keeps the files consistent.

Regenerate ``kronicle/schemas/workflow/*.avsc`` and ``ids.json`` after editing::

    python -m kronicle.engine.workflow.schema_gen

A unit test fails while the files on disk differ from what this module
generates. Once a schema has been released, change it only by adding a new
version (a new file and a new manifest entry), never in place.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from fastavro.schema import to_parsing_canonical_form

from kronicle.engine.workflow._state import attributes_field

__all__ = [
    "EVENT_TYPES",
    "NAMESPACE",
    "SCHEMA_DIR",
    "SUBJECT_IDS",
    "WORKER_COMMAND_TYPES",
    "attributes_field",
    "generate",
    "write_files",
]

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
        _s("initiator", "'' for a client start, WORKFLOW for continue-as-new."),
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
    ],
    "WorkflowExecutionCompleted": [_payloads("result"), _l("workflow_task_completed_event_id")],
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

_REPLY_TO = _f("reply_to", _NULL_STR, None, "Topic for a CommandResult (keyed by workflow id); null: no reply.")
_RUN_REF = [_f("workflow_id", "string"), _s("run_id", "Empty: the current run.")]
_ORIGIN = _f(
    "origin",
    [
        "null",
        _record(
            "OriginExecution",
            "Set when another workflow sent this command; the outcome goes back to it (ExternalCommandResult).",
            [_f("workflow_id", "string"), _f("run_id", "string"), _f("initiated_event_id", "long")],
        ),
    ],
    None,
)
_TASK_REF = [
    _f("workflow_id", "string"),
    _f("run_id", "string"),
    _f("scheduled_event_id", "long"),
    _f("attempt", "int"),
]

_START_FIELDS: list[dict[str, Any]] = [
    _f("workflow_id", "string"),
    _f("workflow_type", "string"),
    _f("task_queue", "string"),
    _payloads("input"),
    _s("request_id", "Makes a retried start idempotent: the run id is derived from it."),
    _s("identity"),
    _f(
        "id_reuse_policy",
        {
            "type": "enum",
            "name": "WorkflowIDReusePolicy",
            "symbols": [
                "ALLOW_DUPLICATE",
                "ALLOW_DUPLICATE_FAILED_ONLY",
                "REJECT_DUPLICATE",
                "TERMINATE_IF_RUNNING",
            ],
            "default": "ALLOW_DUPLICATE",
        },
        "ALLOW_DUPLICATE",
    ),
    _f(
        "id_conflict_policy",
        {
            "type": "enum",
            "name": "WorkflowIDConflictPolicy",
            "symbols": ["UNSPECIFIED", "FAIL", "USE_EXISTING", "TERMINATE_EXISTING"],
            "default": "UNSPECIFIED",
        },
        "UNSPECIFIED",
    ),
    _l("execution_timeout_ms", "0: unlimited."),
    _l("run_timeout_ms", "0: unlimited."),
    _l("task_timeout_ms", "0: 10 s."),
    _l("start_delay_ms"),
    _opt("retry_policy", _full("RetryPolicy"), "Retry the workflow when a run fails or times out; null: never."),
    _map("memo"),
    _map("search_attributes"),
    _map("header"),
    _f(
        "parent",
        [
            "null",
            _record(
                "ParentExecution",
                "Set when a workflow starts this one as its child.",
                [_f("workflow_id", "string"), _f("run_id", "string"), _f("initiated_event_id", "long")],
            ),
        ],
        None,
    ),
]

# Top-level subjects (id, record). Ids are never reused.
_SUBJECTS: list[tuple[int, dict[str, Any]]] = [
    (
        100,
        _record(
            "StartWorkflow",
            "Start a workflow execution (client command).",
            [
                *_START_FIELDS,
                _REPLY_TO,
            ],
        ),
    ),
    (
        101,
        _record(
            "SignalWorkflow",
            "Deliver a signal (client or workflow command). Deduplicated by request_id.",
            [
                *_RUN_REF,
                _f("signal_name", "string"),
                _payloads("input"),
                _map("header"),
                _s("request_id"),
                _s("identity"),
                _REPLY_TO,
                _ORIGIN,
            ],
        ),
    ),
    (
        102,
        _record(
            "RequestCancelWorkflow",
            "Ask a workflow to cancel itself.",
            [*_RUN_REF, _s("request_id"), _s("reason"), _s("identity"), _REPLY_TO, _ORIGIN],
        ),
    ),
    (
        103,
        _record(
            "TerminateWorkflow",
            "Close a workflow at once, without running its code.",
            [*_RUN_REF, _s("reason"), _payloads("details"), _s("identity"), _REPLY_TO],
        ),
    ),
    (
        104,
        _record(
            "CompleteWorkflowTask",
            "A worker finished a workflow task; its commands become history events.",
            [
                *_TASK_REF,
                _l("started_time_ms", "When the worker started the task (its clock)."),
                _s("identity"),
                _f("commands", {"type": "array", "items": _full("WorkerCommand")}, []),
            ],
        ),
    ),
    (
        105,
        _record(
            "FailWorkflowTask",
            "A worker could not finish a workflow task (e.g. nondeterminism); the task is retried.",
            [
                *_TASK_REF,
                _l("started_time_ms"),
                _s("identity"),
                _s("cause", "Temporal's WorkflowTaskFailedCause name, e.g. NON_DETERMINISTIC_ERROR."),
                _opt("failure", _full("Failure")),
            ],
        ),
    ),
    (
        106,
        _record(
            "CompleteActivityTask",
            "An activity attempt succeeded.",
            [*_TASK_REF, _l("started_time_ms"), _s("identity"), _payloads("result")],
        ),
    ),
    (
        107,
        _record(
            "FailActivityTask",
            "An activity attempt failed; retried per its RetryPolicy.",
            [
                *_TASK_REF,
                _l("started_time_ms"),
                _s("identity"),
                _f("failure", _full("Failure")),
                _payloads("last_heartbeat_details"),
            ],
        ),
    ),
    (
        108,
        _record(
            "HeartbeatActivityTask",
            "An activity attempt is alive; the reply (ActivityTaskControl) goes to reply_to if the engine has news.",
            [*_TASK_REF, _l("started_time_ms"), _s("identity"), _payloads("details"), _REPLY_TO],
        ),
    ),
    (
        109,
        _record(
            "ReportActivityTaskCanceled",
            "An activity attempt stopped because cancellation was requested.",
            [*_TASK_REF, _l("started_time_ms"), _s("identity"), _payloads("details")],
        ),
    ),
    (
        110,
        _record(
            "HistoryEventBatch",
            "Value of a kronicle.<ns>.history record: consecutive events of one run.",
            [
                _f("workflow_id", "string"),
                _f("run_id", "string"),
                _f("events", {"type": "array", "items": _full("HistoryEvent")}),
            ],
        ),
    ),
    (111, _HISTORY_EVENT),
    (
        112,
        _record(
            "WorkflowTask",
            "A workflow task on kronicle.<ns>.tq.<queue>.workflow, keyed by workflow id.",
            [
                *_TASK_REF,
                _f("workflow_type", "string"),
                _f("task_queue", "string"),
                _f("first_event_id", "long", doc="Id of history[0]; a worker whose cache ends elsewhere refetches."),
                _f("history", {"type": "array", "items": _full("HistoryEvent")}),
                _l("scheduled_time_ms"),
                _l("start_to_close_timeout_ms"),
                _f(
                    "updates",
                    {
                        "type": "array",
                        "items": _record(
                            "UpdateRequest",
                            "An update for the workflow to validate and run; answered with UpdateResponse commands.",
                            [
                                _f("update_id", "string"),
                                _f("name", "string"),
                                _payloads("input"),
                                _map("header"),
                                _s("identity"),
                            ],
                        ),
                    },
                    [],
                ),
            ],
        ),
    ),
    (
        113,
        _record(
            "ActivityTask",
            "An activity attempt on kronicle.<ns>.tq.<queue>.activity.",
            [
                *_TASK_REF,
                _f("workflow_type", "string"),
                _f("activity_id", "string"),
                _f("activity_type", "string"),
                _f("task_queue", "string"),
                _payloads("input"),
                _map("header"),
                _l("scheduled_time_ms"),
                _l("current_attempt_scheduled_time_ms"),
                _l("schedule_to_close_timeout_ms"),
                _l("schedule_to_start_timeout_ms", "If set, the worker must heartbeat as soon as it starts."),
                _l("start_to_close_timeout_ms"),
                _l("heartbeat_timeout_ms"),
                _payloads("heartbeat_details", "From the last heartbeat of an earlier attempt."),
            ],
        ),
    ),
    (
        114,
        _record(
            "ActivityTaskControl",
            "The engine's answer to a heartbeat, sent to the heartbeat's reply_to topic.",
            [
                *_TASK_REF,
                _f("cancel_requested", "boolean", False),
                _f("not_found", "boolean", False, "The attempt is no longer current: stop working on it."),
            ],
        ),
    ),
    (
        115,
        _record(
            "VisibilityRecord",
            "Value of a kronicle.<ns>.visibility record, keyed by workflow_id + run_id.",
            [
                _f("workflow_id", "string"),
                _f("run_id", "string"),
                _f("workflow_type", "string"),
                _f("task_queue", "string"),
                _f(
                    "status",
                    {
                        "type": "enum",
                        "name": "WorkflowExecutionStatus",
                        "symbols": [
                            "RUNNING",
                            "COMPLETED",
                            "FAILED",
                            "CANCELED",
                            "TERMINATED",
                            "CONTINUED_AS_NEW",
                            "TIMED_OUT",
                        ],
                    },
                ),
                _f("start_time_ms", "long"),
                _l("execution_time_ms"),
                _f("close_time_ms", ["null", "long"], None),
                _l("history_length"),
                _s("first_run_id"),
                _map("memo"),
                _map("search_attributes"),
            ],
        ),
    ),
    (
        116,
        _record(
            "CommandResult",
            "The outcome of a client command that named a reply_to topic.",
            [
                _f("workflow_id", "string"),
                _s("run_id"),
                _s("request_id"),
                _f("ok", "boolean"),
                _s("error_type", "WorkflowAlreadyStarted, WorkflowNotFound, WorkflowClosed or InvalidArgument."),
                _s("message"),
            ],
        ),
    ),
    (
        118,
        _record(
            "ChildWorkflowResult",
            "From a child's partition to its parent's: the child started, could not start, or closed.",
            [
                _f("workflow_id", "string", doc="The parent's workflow id (the record key)."),
                _f("run_id", "string", doc="The parent's run id."),
                _f("initiated_event_id", "long"),
                _f("child_workflow_id", "string"),
                _s("child_run_id"),
                _s("child_workflow_type"),
                _f(
                    "outcome",
                    {
                        "type": "enum",
                        "name": "ChildOutcome",
                        "symbols": [
                            "STARTED",
                            "START_FAILED",
                            "COMPLETED",
                            "FAILED",
                            "CANCELED",
                            "TIMED_OUT",
                            "TERMINATED",
                        ],
                    },
                ),
                _payloads("result"),
                _opt("failure", _full("Failure")),
                _payloads("details"),
                _s("retry_state"),
                _s("cause"),
            ],
        ),
    ),
    (
        119,
        _record(
            "ExternalCommandResult",
            "From a signalled or cancelled workflow's partition back to the workflow that sent the command.",
            [
                _f("workflow_id", "string", doc="The sender's workflow id (the record key)."),
                _f("run_id", "string", doc="The sender's run id."),
                _f("initiated_event_id", "long"),
                _f("target_workflow_id", "string"),
                _s("target_run_id"),
                _f("ok", "boolean"),
                _s("cause", "Why it failed: EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND."),
            ],
        ),
    ),
    (
        120,
        _record(
            "UpdateWorkflow",
            "Ask a workflow to run an update handler (client command); the outcome goes to reply_to.",
            [
                *_RUN_REF,
                _f("update_id", "string", doc="Idempotency key: a retried update with the same id is one update."),
                _f("name", "string"),
                _payloads("input"),
                _map("header"),
                _s("identity"),
                _REPLY_TO,
            ],
        ),
    ),
    (
        121,
        _record(
            "UpdateResult",
            "Progress of an update, sent to the update's reply_to topic (keyed by workflow id).",
            [
                _f("workflow_id", "string"),
                _f("run_id", "string"),
                _f("update_id", "string"),
                _f(
                    "stage",
                    {
                        "type": "enum",
                        "name": "UpdateStage",
                        "symbols": ["ACCEPTED", "REJECTED", "COMPLETED", "ABORTED"],
                    },
                ),
                _payloads("result"),
                _opt("failure", _full("Failure")),
            ],
        ),
    ),
    (
        122,
        _record(
            "QueryWorkflow",
            "Ask a workflow's worker a query (client command); not history. The worker answers reply_to.",
            [
                *_RUN_REF,
                _f("query_id", "string"),
                _f("query_type", "string"),
                _payloads("query_args"),
                _map("header"),
                _f("reply_to", "string", doc="Topic for the QueryResult, keyed by workflow id."),
            ],
        ),
    ),
    (
        123,
        _record(
            "QueryTask",
            "A query for the worker owning the workflow, on kronicle.<ns>.tq.<queue>.workflow (keyed by workflow id).",
            [
                _f("workflow_id", "string"),
                _f("run_id", "string"),
                _f("workflow_type", "string"),
                _f("task_queue", "string"),
                _f("query_id", "string"),
                _f("query_type", "string"),
                _payloads("query_args"),
                _map("header"),
                _f("reply_to", "string"),
                _f("history_length", "long", doc="Answer from a state that includes at least these events."),
                _f("closed", "boolean", doc="The run is closed: replay its full history to answer."),
            ],
        ),
    ),
    (
        124,
        _record(
            "QueryResult",
            "A worker's answer to a QueryTask, sent straight to its reply_to topic.",
            [
                _f("workflow_id", "string"),
                _f("run_id", "string"),
                _f("query_id", "string"),
                _payloads("answer"),
                _opt("failure", _full("Failure"), "Set if the query failed (unknown type, handler raised)."),
            ],
        ),
    ),
    (
        117,
        _record(
            "SignalWithStartWorkflow",
            "Signal a running workflow, or start it (with the signal as its first event after Started).",
            [
                *_START_FIELDS,
                _f("signal_name", "string"),
                _payloads("signal_input"),
                _map("signal_header"),
                _REPLY_TO,
            ],
        ),
    ),
]

SUBJECT_IDS: dict[str, int] = {f"{NAMESPACE}.{rec['name']}": sid for sid, rec in _SUBJECTS}
"""Full name -> schema id of every subject of the workflow protocol."""


def _expand(node: Any, defined: set[str]) -> Any:
    """Inline each named type at its first use in a file and refer to it by name after."""
    if isinstance(node, str):
        if node in _NAMED and node not in defined:
            defined.add(node)
            return _expand(copy.deepcopy(_NAMED[node]), defined)
        return node
    if isinstance(node, list):
        return [_expand(x, defined) for x in node]
    if isinstance(node, dict):
        if node.get("type") in ("record", "enum"):
            full = node["name"] if "." in node["name"] else f"{node.get('namespace', NAMESPACE)}.{node['name']}"
            defined.add(full)
        return {k: (_expand(v, defined) if k in ("type", "fields", "items", "values") else v) for k, v in node.items()}
    return node


def generate() -> dict[str, str]:
    """File name -> text of every ``.avsc`` file and of ``ids.json``."""
    files: dict[str, str] = {}
    manifest: dict[str, list[dict[str, Any]]] = {}
    for schema_id, record in sorted(_SUBJECTS, key=lambda item: item[0]):
        schema = _expand(copy.deepcopy(record), set())
        name = f"{record['name']}.v1.avsc"
        files[name] = json.dumps(schema, indent=1) + "\n"
        manifest[f"{NAMESPACE}.{record['name']}"] = [
            {
                "version": 1,
                "id": schema_id,
                "file": name,
                "fingerprint": "sha256:" + hashlib.sha256(to_parsing_canonical_form(schema).encode()).hexdigest(),
                "source_sha256": hashlib.sha256(
                    json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()
                ).hexdigest(),
            }
        ]
    files["ids.json"] = json.dumps(manifest, indent=2) + "\n"
    return files


def write_files(directory: Path = SCHEMA_DIR) -> None:
    """Write the generated files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        (directory / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write_files(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR)
