"""The Avro schemas of the workflow protocol, and the generator of their ``.avsc`` files.

The schemas are written once, as Python data (the building blocks in
``_schema_types``, the subjects here), because the schema registry
parses each ``.avsc`` file on its own: every file must define the named types it
uses (``Failure``, ``RetryPolicy``, ``HistoryEvent``...). Writing those shared
types once and expanding them into each file keeps the files consistent.

Regenerate ``kronicle/schemas/workflow/*.avsc`` and ``ids.json`` after editing::

    python -m kronicle.engine.workflow.schema_gen

A unit test fails while the files on disk differ from what this module
generates. Once a schema has been released, change it only by adding a new
version, never in place: append a new, never used id to the subject's id tuple
in ``_SUBJECTS`` and edit the definition here. The generator then writes the
definition as ``<Name>.v<n>.avsc`` (n = number of ids) and keeps every older
version's file and manifest entry exactly as they are on disk (they are frozen;
the registry refuses a file whose hashes differ from its entry).
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from fastavro.schema import to_parsing_canonical_form

from kronicle.engine.workflow._schema_types import (
    _HISTORY_EVENT,
    _NAMED,
    _NULL_STR,
    EVENT_TYPES,
    NAMESPACE,
    SCHEMA_DIR,
    WORKER_COMMAND_TYPES,
    _f,
    _full,
    _l,
    _map,
    _opt,
    _payloads,
    _record,
    _s,
)
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
_ACTIVITY_ID = _s(
    "activity_id",
    "v2: with scheduled_event_id 0 (an eager attempt), the engine finds the pending activity by this id.",
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
    _s(
        "cron_schedule",
        "v2: a cron expression (5 fields, UTC, or CRON_TZ=<zone> first); runs start at its times. '' = none.",
    ),
]

# Top-level subjects (ids of versions 1..n, record of version n). Ids are never reused.
_SUBJECTS: list[tuple[tuple[int, ...], dict[str, Any]]] = [
    (
        (100, 125),
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
        (101,),
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
        (102,),
        _record(
            "RequestCancelWorkflow",
            "Ask a workflow to cancel itself.",
            [*_RUN_REF, _s("request_id"), _s("reason"), _s("identity"), _REPLY_TO, _ORIGIN],
        ),
    ),
    (
        (103,),
        _record(
            "TerminateWorkflow",
            "Close a workflow at once, without running its code.",
            [*_RUN_REF, _s("reason"), _payloads("details"), _s("identity"), _REPLY_TO],
        ),
    ),
    (
        (104, 130, 131),
        _record(
            "CompleteWorkflowTask",
            "A worker finished a workflow task; its commands become history events.",
            [
                *_TASK_REF,
                _l("started_time_ms", "When the worker started the task (its clock)."),
                _s("identity"),
                _f("commands", {"type": "array", "items": _full("WorkerCommand")}, []),
                _f(
                    "continuations",
                    {
                        "type": "array",
                        "items": _record(
                            "WorkflowTaskContinuation",
                            "v3: the next workflow task, run by the worker on the results of its eager activities.",
                            [
                                _f(
                                    "activity_results",
                                    {
                                        "type": "array",
                                        "items": _record(
                                            "EagerActivityResult",
                                            "An eager activity (attempt 1) that completed; closed like a "
                                            "CompleteActivityTask.",
                                            [
                                                _f("activity_id", "string"),
                                                _l("started_time_ms"),
                                                _payloads("result"),
                                            ],
                                        ),
                                    },
                                    [],
                                ),
                                _l("started_time_ms", "When the worker started this step's workflow task."),
                                _f("commands", {"type": "array", "items": _full("WorkerCommand")}, []),
                            ],
                        ),
                    },
                    [],
                    "v3: steps applied in order after commands, each only if nothing else happened before it.",
                ),
            ],
        ),
    ),
    (
        (105,),
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
        (106, 132),
        _record(
            "CompleteActivityTask",
            "An activity attempt succeeded.",
            [*_TASK_REF, _l("started_time_ms"), _s("identity"), _payloads("result"), _ACTIVITY_ID],
        ),
    ),
    (
        (107, 133),
        _record(
            "FailActivityTask",
            "An activity attempt failed; retried per its RetryPolicy.",
            [
                *_TASK_REF,
                _l("started_time_ms"),
                _s("identity"),
                _f("failure", _full("Failure")),
                _payloads("last_heartbeat_details"),
                _ACTIVITY_ID,
            ],
        ),
    ),
    (
        (108, 134),
        _record(
            "HeartbeatActivityTask",
            "An activity attempt is alive; the reply (ActivityTaskControl) goes to reply_to if the engine has news.",
            [*_TASK_REF, _l("started_time_ms"), _s("identity"), _payloads("details"), _REPLY_TO, _ACTIVITY_ID],
        ),
    ),
    (
        (109,),
        _record(
            "ReportActivityTaskCanceled",
            "An activity attempt stopped because cancellation was requested.",
            [*_TASK_REF, _l("started_time_ms"), _s("identity"), _payloads("details")],
        ),
    ),
    (
        (110, 128),
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
    ((111, 127), _HISTORY_EVENT),
    (
        (112, 129),
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
        (113,),
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
        (114,),
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
        (115,),
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
        (116,),
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
        (118,),
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
        (119,),
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
        (120,),
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
        (121,),
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
        (122,),
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
        (123,),
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
        (124,),
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
        (117, 126),
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

SUBJECT_IDS: dict[str, int] = {f"{NAMESPACE}.{rec['name']}": ids[-1] for ids, rec in _SUBJECTS}
"""Full name -> schema id of the latest version of every subject of the workflow protocol."""


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


def _entry(version: int, schema_id: int, name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": version,
        "id": schema_id,
        "file": name,
        "fingerprint": "sha256:" + hashlib.sha256(to_parsing_canonical_form(schema).encode()).hexdigest(),
        "source_sha256": hashlib.sha256(json.dumps(schema, sort_keys=True, separators=(",", ":")).encode()).hexdigest(),
    }


def generate(directory: Path = SCHEMA_DIR) -> dict[str, str]:
    """File name -> text of every ``.avsc`` file and of ``ids.json``.

    The latest version of each subject is generated from its definition here; older
    versions are read back from ``directory`` unchanged (they are frozen once released).

    Raises:
        FileNotFoundError: an older version's file is missing from ``directory``.
    """
    files: dict[str, str] = {}
    manifest: dict[str, list[dict[str, Any]]] = {}
    for ids, record in sorted(_SUBJECTS, key=lambda item: item[0][-1]):
        entries: list[dict[str, Any]] = []
        for version, schema_id in enumerate(ids, start=1):
            name = f"{record['name']}.v{version}.avsc"
            if version < len(ids):
                text = (directory / name).read_text(encoding="utf-8")
                schema = json.loads(text)
            else:
                schema = _expand(copy.deepcopy(record), set())
                text = json.dumps(schema, indent=1) + "\n"
            files[name] = text
            entries.append(_entry(version, schema_id, name, schema))
        manifest[f"{NAMESPACE}.{record['name']}"] = entries
    files["ids.json"] = json.dumps(manifest, indent=2) + "\n"
    return files


def write_files(directory: Path = SCHEMA_DIR) -> None:
    """Write the generated files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in generate(directory).items():
        (directory / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write_files(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR)
