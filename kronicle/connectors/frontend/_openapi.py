"""The OpenAPI 3.0 document of the JSON API, served at ``/api/v1/openapi.json``.

A test checks that its paths and methods are exactly the application's routes.
"""

from __future__ import annotations

import copy
from typing import Any

from kronicle.connectors.frontend.schema_registry import schema_registry_openapi_paths

__all__ = ["openapi_document"]

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _REF + name}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): _json(_ref("Error"), "error") for s in statuses}


def _body(schema: str, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(schema)}}}


_NS = _path_param("ns", "Namespace.")
_WF = _path_param("workflow_id", "Workflow id.")
_RUN = _query("run_id", {"type": "string"}, "Run id; empty = the current run.")
_WAIT = _query(
    "wait",
    {"type": "string", "pattern": "^(true|false|[0-9]+(\\.[0-9]+)?)$"},
    "Long-poll seconds (0-60), or true (60).",
)

_OBJ_OF_PAYLOADS = {"type": "object", "additionalProperties": _ref("Payload")}
_MS = {"type": "integer", "minimum": 0, "description": "Milliseconds; 0 = not set."}

_START_PROPS: dict[str, Any] = {
    "workflow_type": {"type": "string", "minLength": 1},
    "task_queue": {"type": "string", "minLength": 1, "pattern": "^[a-zA-Z0-9._-]+$"},
    "input": {"type": "array", "items": _ref("Payload")},
    "request_id": {"type": "string", "description": "Makes a retried start idempotent (the run id derives from it)."},
    "identity": {"type": "string"},
    "id_reuse_policy": {
        "type": "string",
        "enum": ["ALLOW_DUPLICATE", "ALLOW_DUPLICATE_FAILED_ONLY", "REJECT_DUPLICATE", "TERMINATE_IF_RUNNING"],
    },
    "id_conflict_policy": {"type": "string", "enum": ["UNSPECIFIED", "FAIL", "USE_EXISTING", "TERMINATE_EXISTING"]},
    "execution_timeout_ms": _MS,
    "run_timeout_ms": _MS,
    "task_timeout_ms": _MS,
    "start_delay_ms": _MS,
    "cron_schedule": {"type": "string", "description": "Cron expression (UTC); runs start at its times."},
    "retry_policy": {
        "type": "object",
        "description": "Retries of the whole workflow, each attempt a new run (0 = Temporal's default).",
        "additionalProperties": False,
        "properties": {
            "initial_interval_ms": _MS,
            "backoff_coefficient": {"type": "number", "minimum": 0, "maximum": 1000},
            "maximum_interval_ms": _MS,
            "maximum_attempts": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
            "non_retryable_error_types": {"type": "array", "items": {"type": "string"}},
        },
    },
    "memo": _OBJ_OF_PAYLOADS,
    "search_attributes": _OBJ_OF_PAYLOADS,
    "header": _OBJ_OF_PAYLOADS,
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {
                "type": "string",
                "enum": [
                    "InvalidArgument",
                    "QueryFailed",
                    "UpdateRejected",
                    "NamespaceNotFound",
                    "WorkflowNotFound",
                    "UpdateNotFound",
                    "NotFound",
                    "MethodNotAllowed",
                    "WorkflowAlreadyStarted",
                    "NamespaceAlreadyExists",
                    "UpdateAborted",
                    "PayloadTooLarge",
                    "UnsupportedMediaType",
                    "ResourceExhausted",
                    "Internal",
                    "Unimplemented",
                    "NotReady",
                    "DeadlineExceeded",
                    "QueryTimeout",
                ],
            },
            "message": {"type": "string"},
            "details": {"type": "object"},
        },
    },
    "Payload": {
        "type": "object",
        "description": "One value converted by an SDK: metadata (at least 'encoding') and data, base64.",
        "properties": {
            "metadata": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
            "data": {"type": "string", "format": "byte"},
        },
        "additionalProperties": False,
    },
    "StartWorkflowRequest": {
        "type": "object",
        "required": ["workflow_id", "workflow_type", "task_queue"],
        "properties": {"workflow_id": {"type": "string", "minLength": 1}, **_START_PROPS},
    },
    "SignalWithStartRequest": {
        "type": "object",
        "required": ["workflow_type", "task_queue"],
        "properties": {**_START_PROPS, "signal_input": {"type": "array", "items": _ref("Payload")}},
    },
    "SignalRequest": {
        "type": "object",
        "properties": {
            "input": {"type": "array", "items": _ref("Payload")},
            "request_id": {"type": "string", "description": "A retry with the same id is applied once (24 h)."},
            "run_id": {"type": "string"},
            "identity": {"type": "string"},
            "header": _OBJ_OF_PAYLOADS,
        },
    },
    "CancelRequest": {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"},
            "run_id": {"type": "string"},
            "reason": {"type": "string"},
            "identity": {"type": "string"},
        },
    },
    "TerminateRequest": {
        "type": "object",
        "properties": {
            "run_id": {"type": "string"},
            "reason": {"type": "string"},
            "details": {"type": "array", "items": _ref("Payload")},
            "identity": {"type": "string"},
        },
    },
    "Execution": {
        "type": "object",
        "required": ["workflow_id", "run_id"],
        "properties": {"workflow_id": {"type": "string"}, "run_id": {"type": "string"}},
    },
    "Description": {
        "type": "object",
        "properties": {
            "workflow_id": {"type": "string"},
            "run_id": {"type": "string"},
            "first_run_id": {"type": "string"},
            "workflow_type": {"type": "string"},
            "task_queue": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["RUNNING", "COMPLETED", "FAILED", "CANCELED", "TERMINATED", "CONTINUED_AS_NEW", "TIMED_OUT"],
            },
            "start_time_ms": {"type": "integer"},
            "execution_time_ms": {"type": "integer"},
            "close_time_ms": {"type": "integer"},
            "history_length": {"type": "integer"},
            "memo": _OBJ_OF_PAYLOADS,
            "search_attributes": _OBJ_OF_PAYLOADS,
            "pending_activities": {"type": "array", "items": {"type": "object"}},
            "pending_timers": {"type": "array", "items": {"type": "object"}},
        },
    },
    "History": {
        "type": "object",
        "properties": {
            "workflow_id": {"type": "string"},
            "run_id": {"type": "string"},
            "events": {"type": "array", "items": {"type": "object"}},
            "next_event_id": {"type": "integer"},
        },
    },
    "Result": {
        "type": "object",
        "required": ["workflow_id", "run_id", "status", "closed"],
        "properties": {
            "workflow_id": {"type": "string"},
            "run_id": {"type": "string"},
            "status": {"type": "string"},
            "closed": {"type": "boolean"},
            "close_event_type": {"type": "string"},
            "result": {"type": "array", "items": _ref("Payload")},
            "failure": {"type": "object", "nullable": True},
            "details": {"type": "array", "items": _ref("Payload")},
            "reason": {"type": "string"},
            "new_execution_run_id": {"type": "string"},
        },
    },
    "QueryRequest": {
        "type": "object",
        "properties": {
            "input": {"type": "array", "items": _ref("Payload")},
            "run_id": {"type": "string"},
            "header": _OBJ_OF_PAYLOADS,
            "timeout_ms": {"type": "integer", "minimum": 0, "maximum": 60000, "description": "0 = 10 s."},
        },
    },
    "QueryResponse": {
        "type": "object",
        "properties": {
            "workflow_id": {"type": "string"},
            "run_id": {"type": "string"},
            "query_id": {"type": "string"},
            "result": {"type": "array", "items": _ref("Payload")},
        },
    },
    "UpdateRequest": {
        "type": "object",
        "properties": {
            "update_id": {"type": "string", "description": "Idempotency key; the frontend makes one if absent."},
            "input": {"type": "array", "items": _ref("Payload")},
            "run_id": {"type": "string"},
            "header": _OBJ_OF_PAYLOADS,
            "identity": {"type": "string"},
            "wait_for_stage": {"type": "string", "enum": ["ACCEPTED", "COMPLETED"]},
            "timeout_ms": {"type": "integer", "minimum": 0, "maximum": 60000, "description": "0 = 20 s."},
        },
    },
    "UpdateResponse": {
        "type": "object",
        "required": ["workflow_id", "run_id", "update_id", "stage"],
        "properties": {
            "workflow_id": {"type": "string"},
            "run_id": {"type": "string"},
            "update_id": {"type": "string"},
            "stage": {"type": "string", "enum": ["ADMITTED", "ACCEPTED", "COMPLETED"]},
            "result": {"type": "array", "items": _ref("Payload")},
            "failure": {"type": "object"},
        },
    },
    "ExecutionList": {
        "type": "object",
        "properties": {
            "executions": {"type": "array", "items": {"type": "object"}},
            "next_page_token": {"type": "string", "description": "Empty on the last page."},
        },
    },
    "ExecutionCount": {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "groups": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "group_values": {"type": "array", "items": {"type": "string"}},
                        "count": {"type": "integer"},
                    },
                },
            },
        },
    },
    "Namespace": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "owner_email": {"type": "string"},
            "retention_ms": {"type": "integer"},
            "state": {"type": "string", "enum": ["REGISTERED", "DEPRECATED"]},
            "partitions": {"type": "integer"},
            "created_time_ms": {"type": "integer"},
            "updated_time_ms": {"type": "integer"},
            "data": {"type": "object", "additionalProperties": {"type": "string"}},
            "served_here": {"type": "boolean"},
        },
    },
    "CreateNamespaceRequest": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-zA-Z0-9._-]+$"},
            "description": {"type": "string"},
            "owner_email": {"type": "string"},
            "retention_ms": {"type": "integer", "minimum": 0, "description": "0 or absent = 7 days; else >= 60000."},
            "state": {"type": "string", "enum": ["REGISTERED", "DEPRECATED"]},
            "partitions": {"type": "integer", "minimum": 1, "maximum": 1000},
            "data": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "UpdateNamespaceRequest": {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "owner_email": {"type": "string"},
            "retention_ms": {"type": "integer", "minimum": 60000},
            "state": {"type": "string", "enum": ["REGISTERED", "DEPRECATED"]},
            "data": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "additionalProperties": False,
    },
    "Cluster": {
        "type": "object",
        "properties": {
            "kafka_bootstrap_servers": {"type": "string"},
            "namespace": {"type": "string"},
            "topics": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}

_WF_PATH = "/api/v1/namespaces/{ns}/workflows/{workflow_id}"

_COMMAND_ERRORS = (400, 404, 413, 503, 504)

_PATHS: dict[str, Any] = {
    "/healthz": {"get": {"operationId": "healthz", "responses": {"200": _json({"type": "object"}, "alive")}}},
    "/readyz": {
        "get": {"operationId": "readyz", "responses": {"200": _json({"type": "object"}, "ready"), **_errors(503)}}
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}},
        }
    },
    "/api/v1/openapi.json": {
        "get": {"operationId": "openapi", "responses": {"200": _json({"type": "object"}, "this document")}}
    },
    "/api/v1/cluster": {
        "get": {
            "operationId": "cluster",
            "summary": "Kafka bootstrap servers and topic names, for workers.",
            "responses": {"200": _json(_ref("Cluster"), "cluster")},
        }
    },
    "/api/v1/namespaces/{ns}/workflows": {
        "parameters": [_NS],
        "post": {
            "operationId": "startWorkflow",
            "summary": "Start a workflow; answers after the engine applied the start. With `wait`, also waits"
            " up to that many seconds for the started run to close and answers as Result does (`closed`"
            " says whether it did; if not, long-poll Result with the run id).",
            "parameters": [
                _query(
                    "wait",
                    _WAIT["schema"],
                    "Seconds (0-60, or true = 60) to wait for the run to close; 0 or absent: answer at once.",
                )
            ],
            "requestBody": _body("StartWorkflowRequest"),
            "responses": {
                "201": _json(
                    {"oneOf": [_ref("Execution"), _ref("Result")]},
                    "started (with `wait`: the Result body, or `closed: false` if the run did not close in time)",
                ),
                **_errors(*_COMMAND_ERRORS, 409),
            },
        },
        "get": {
            "operationId": "listWorkflows",
            "summary": "One page of the executions matching a List Filter (from the visibility store).",
            "parameters": [
                _query(
                    "query", {"type": "string"}, "List Filter, e.g. WorkflowType = 'X' AND ExecutionStatus = 'Running'."
                ),
                _query("page_size", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size (100)."),
                _query("next_page_token", {"type": "string"}, "From the previous page of the same query."),
            ],
            "responses": {"200": _json(_ref("ExecutionList"), "a page"), **_errors(400, 404, 501, 503)},
        },
    },
    "/api/v1/namespaces/{ns}/workflow-count": {
        "parameters": [_NS],
        "get": {
            "operationId": "countWorkflows",
            "summary": "How many executions match a List Filter; a trailing GROUP BY ExecutionStatus adds groups.",
            "parameters": [_query("query", {"type": "string"}, "List Filter [GROUP BY ExecutionStatus].")],
            "responses": {"200": _json(_ref("ExecutionCount"), "the count"), **_errors(400, 404, 501, 503)},
        },
    },
    "/api/v1/namespaces": {
        "get": {
            "operationId": "listNamespaces",
            "responses": {
                "200": _json(
                    {"type": "object", "properties": {"namespaces": {"type": "array", "items": _ref("Namespace")}}},
                    "every registered namespace",
                )
            },
        },
        "post": {
            "operationId": "createNamespace",
            "summary": "Register a namespace and create its topics.",
            "requestBody": _body("CreateNamespaceRequest"),
            "responses": {"201": _json(_ref("Namespace"), "created"), **_errors(400, 409, 503)},
        },
    },
    "/api/v1/namespaces/{ns}": {
        "parameters": [_NS],
        "get": {
            "operationId": "describeNamespace",
            "responses": {"200": _json(_ref("Namespace"), "the namespace"), **_errors(404)},
        },
        "patch": {
            "operationId": "updateNamespace",
            "requestBody": _body("UpdateNamespaceRequest"),
            "responses": {"200": _json(_ref("Namespace"), "updated"), **_errors(400, 404, 503)},
        },
    },
    _WF_PATH: {
        "parameters": [_NS, _WF],
        "get": {
            "operationId": "describeWorkflow",
            "parameters": [_RUN],
            "responses": {"200": _json(_ref("Description"), "the run"), **_errors(400, 404)},
        },
    },
    _WF_PATH + "/history": {
        "parameters": [_NS, _WF],
        "get": {
            "operationId": "getHistory",
            "summary": "One page of events; with Accept: application/vnd.kronicle.history+avro, framed Avro records.",
            "parameters": [
                _RUN,
                _query("first_event_id", {"type": "integer", "minimum": 1}, "First event id of the page."),
                _query("max_events", {"type": "integer", "minimum": 1, "maximum": 10000}, "Page size (1000)."),
                _WAIT,
            ],
            "responses": {"200": _json(_ref("History"), "a page"), **_errors(400, 404)},
        },
    },
    _WF_PATH + "/result": {
        "parameters": [_NS, _WF],
        "get": {
            "operationId": "getResult",
            "summary": "The run's outcome; long-polls up to `wait` seconds while it runs.",
            "parameters": [_RUN, _WAIT],
            "responses": {"200": _json(_ref("Result"), "outcome or still running"), **_errors(400, 404)},
        },
    },
    _WF_PATH + "/signal/{signal_name}": {
        "parameters": [_NS, _WF, _path_param("signal_name", "Signal name.")],
        "post": {
            "operationId": "signalWorkflow",
            "summary": "Answers once the signal is durably in the commands log (the run is open);"
            " with `wait_applied=true`, once the engine applied it.",
            "parameters": [
                _query(
                    "wait_applied",
                    {"type": "string", "enum": ["true", "false", "1", "0"]},
                    "Answer only after the engine applied the signal (slower; no race with the run closing).",
                )
            ],
            "requestBody": _body("SignalRequest", required=False),
            "responses": {"200": _json(_ref("Execution"), "signaled"), **_errors(*_COMMAND_ERRORS, 429)},
        },
    },
    _WF_PATH + "/signal-with-start/{signal_name}": {
        "parameters": [_NS, _WF, _path_param("signal_name", "Signal name.")],
        "post": {
            "operationId": "signalWithStartWorkflow",
            "requestBody": _body("SignalWithStartRequest"),
            "responses": {"201": _json(_ref("Execution"), "signaled or started"), **_errors(*_COMMAND_ERRORS, 409)},
        },
    },
    _WF_PATH + "/cancel": {
        "parameters": [_NS, _WF],
        "post": {
            "operationId": "cancelWorkflow",
            "requestBody": _body("CancelRequest", required=False),
            "responses": {"200": _json(_ref("Execution"), "cancellation requested"), **_errors(*_COMMAND_ERRORS)},
        },
    },
    _WF_PATH + "/terminate": {
        "parameters": [_NS, _WF],
        "post": {
            "operationId": "terminateWorkflow",
            "requestBody": _body("TerminateRequest", required=False),
            "responses": {"200": _json(_ref("Execution"), "terminated"), **_errors(*_COMMAND_ERRORS)},
        },
    },
    _WF_PATH + "/query/{query_name}": {
        "parameters": [_NS, _WF, _path_param("query_name", "Query name.")],
        "post": {
            "operationId": "queryWorkflow",
            "summary": "Ask the workflow's worker a query (running or closed runs); 400 QueryFailed, 504 QueryTimeout.",
            "requestBody": _body("QueryRequest", required=False),
            "responses": {"200": _json(_ref("QueryResponse"), "the answer"), **_errors(400, 404, 413, 503, 504)},
        },
    },
    _WF_PATH + "/update/{update_name}": {
        "parameters": [_NS, _WF, _path_param("update_name", "Update name.")],
        "post": {
            "operationId": "updateWorkflow",
            "summary": "Send an update and wait for wait_for_stage; a lower stage in the answer means: poll.",
            "requestBody": _body("UpdateRequest", required=False),
            "responses": {
                "200": _json(_ref("UpdateResponse"), "the stage reached (and the outcome once COMPLETED)"),
                **_errors(400, 404, 409, 413, 429, 503),
            },
        },
    },
    _WF_PATH + "/updates/{update_id}": {
        "parameters": [_NS, _WF, _path_param("update_id", "Update id.")],
        "get": {
            "operationId": "pollWorkflowUpdate",
            "summary": "An update's stage and outcome; long-polls up to `wait` seconds for wait_for_stage."
            " A rejected update answers 400 UpdateRejected, as the update call did.",
            "parameters": [
                _RUN,
                _WAIT,
                _query(
                    "wait_for_stage", {"type": "string", "enum": ["ADMITTED", "ACCEPTED", "COMPLETED"]}, "(COMPLETED)"
                ),
            ],
            "responses": {"200": _json(_ref("UpdateResponse"), "the stage reached"), **_errors(400, 404)},
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document (a fresh copy each call)."""
    return copy.deepcopy(
        {
            "openapi": "3.0.3",
            "info": {
                "title": "Kronicle frontend",
                "version": "1",
                "description": "Start, signal, query, update, cancel, terminate, describe, list and count workflows,"
                " read their history, and manage namespaces."
                " Errors are {code, message, details}; see docs/http-api.md.",
            },
            "paths": {**_PATHS, **schema_registry_openapi_paths()},
            "components": {"schemas": _SCHEMAS},
        }
    )
