"""The client's pure parts: exported names, name resolution, conversions and error mapping."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import kronicle.client
from kronicle import workflow
from kronicle.client import (
    FrontendError,
    WorkflowExecution,
    WorkflowExecutionCount,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHistory,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from kronicle.client._client import _handler_name, _ms, _workflow_name
from kronicle.client._http import _base_url, _error
from kronicle.exceptions import RPCError, RPCStatusCode


def test_exported_names_are_locked() -> None:
    assert kronicle.client.__all__ == [
        "Client",
        "FrontendError",
        "PendingActivityInfo",
        "WorkflowContinuedAsNewError",
        "WorkflowExecution",
        "WorkflowExecutionAsyncIterator",
        "WorkflowExecutionCount",
        "WorkflowExecutionCountAggregationGroup",
        "WorkflowExecutionDescription",
        "WorkflowExecutionStatus",
        "WorkflowHandle",
        "WorkflowHistory",
        "WorkflowQueryFailedError",
        "WorkflowUpdateFailedError",
        "WorkflowUpdateHandle",
        "WorkflowUpdateStage",
    ]
    assert kronicle.client.__all__ == sorted(kronicle.client.__all__)
    for name in kronicle.client.__all__:
        assert getattr(kronicle.client, name) is not None


@workflow.defn(name="Renamed")
class Named:
    @workflow.run
    async def run(self, x: int) -> list[int]:
        return [x]

    @workflow.signal(name="go")
    def go_signal(self) -> None:
        pass


def test_workflow_names_come_from_the_definition() -> None:
    assert _workflow_name(Named.run) == ("Renamed", list[int])
    assert _workflow_name(Named) == ("Renamed", list[int])
    assert _workflow_name("Plain") == ("Plain", None)
    with pytest.raises(TypeError, match=r"not a @workflow\.run"):
        _workflow_name(lambda: None)
    with pytest.raises(ValueError, match="must not be empty"):
        _workflow_name("")


def test_signal_names_come_from_the_decorator() -> None:
    assert _handler_name(Named.go_signal, "__kronicle_signal_definition__", "signal") == "go"
    assert _handler_name("other", "__kronicle_signal_definition__", "signal") == "other"
    with pytest.raises(TypeError):
        _handler_name(Named.run, "__kronicle_signal_definition__", "signal")


def test_timeouts_become_milliseconds() -> None:
    assert _ms(None, "x") == 0
    assert _ms(timedelta(seconds=1.5), "x") == 1500
    with pytest.raises(ValueError, match="negative"):
        _ms(timedelta(seconds=-1), "x")
    with pytest.raises(TypeError, match="timedelta"):
        _ms(5, "x")  # type: ignore[arg-type]


def test_targets_become_urls() -> None:
    assert _base_url("localhost:7333") == "http://localhost:7333"
    assert _base_url("https://k.example/") == "https://k.example"
    with pytest.raises(ValueError, match="frontend's address"):
        _base_url(" ")


@pytest.mark.parametrize(
    ("http", "code", "status"),
    [
        (400, "InvalidArgument", RPCStatusCode.INVALID_ARGUMENT),
        (404, "WorkflowNotFound", RPCStatusCode.NOT_FOUND),
        (409, "WorkflowAlreadyStarted", RPCStatusCode.ALREADY_EXISTS),
        (413, "PayloadTooLarge", RPCStatusCode.RESOURCE_EXHAUSTED),
        (501, "Unimplemented", RPCStatusCode.UNIMPLEMENTED),
        (503, "NotReady", RPCStatusCode.UNAVAILABLE),
        (400, "QueryFailed", RPCStatusCode.INVALID_ARGUMENT),
        (504, "QueryTimeout", RPCStatusCode.DEADLINE_EXCEEDED),
        (400, "UpdateRejected", RPCStatusCode.INVALID_ARGUMENT),
        (404, "UpdateNotFound", RPCStatusCode.NOT_FOUND),
        (409, "UpdateAborted", RPCStatusCode.ABORTED),
        (409, "NamespaceAlreadyExists", RPCStatusCode.ALREADY_EXISTS),
        (404, "NamespaceNotFound", RPCStatusCode.NOT_FOUND),
    ],
)
def test_frontend_errors_become_rpc_errors(http: int, code: str, status: RPCStatusCode) -> None:
    body = json.dumps({"code": code, "message": "m", "details": {"field": "f"}}).encode()
    error = _error(http, body, "GET", "/x")
    assert isinstance(error, RPCError) and isinstance(error, FrontendError)
    assert (error.status, error.code, error.http_status, error.details) == (status, code, http, {"field": "f"})


def test_a_non_json_error_still_maps_by_http_status() -> None:
    error = _error(502, b"<html>bad gateway</html>", "GET", "/x")
    assert error.status == RPCStatusCode.UNKNOWN and "502" in error.message
    assert _error(404, b"nope", "GET", "/x").status == RPCStatusCode.NOT_FOUND


def test_history_json_round_trips_bytes_exactly() -> None:
    history = WorkflowHistory(
        "wf", "run", [{"event_id": 1, "event_type": "X", "attrs": {"input": [b"\x00\xff", b""], "n": None}}]
    )
    assert WorkflowHistory.from_json(history.to_json()) == history
    assert json.loads(history.to_json())["events"][0]["attrs"]["input"][0] == {"$b": "AP8="}


def test_description_from_the_frontend_answer() -> None:
    d = WorkflowExecutionDescription.from_json(
        {
            "workflow_id": "wf",
            "run_id": "r",
            "status": "TIMED_OUT",
            "start_time_ms": 1_700_000_000_000,
            "close_time_ms": 0,
            "history_length": 7,
            "memo": {"k": {"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "MQ=="}},
            "pending_activities": [{"activity_id": "1", "scheduled_event_id": 5, "attempt": 3, "state": "BACKOFF"}],
        }
    )
    assert d.status is WorkflowExecutionStatus.TIMED_OUT and d.history_length == 7
    assert d.start_time is not None and d.start_time.year == 2023 and d.close_time is None
    assert d.memo["k"].data == b"1" and d.memo["k"].encoding == "json/plain"
    assert d.pending_activities[0].attempt == 3 and d.pending_activities[0].state == "BACKOFF"


def test_an_execution_from_the_list_answer() -> None:
    e = WorkflowExecution.from_json(
        {
            "workflow_id": "wf",
            "run_id": "r",
            "workflow_type": "Order",
            "task_queue": "q",
            "status": "ContinuedAsNew",
            "start_time": "2024-05-01T12:00:00.250Z",
            "execution_time": "2024-05-01T12:00:00.250Z",
            "close_time": None,
            "execution_duration_ms": None,
            "history_length": 9,
            "first_run_id": "r0",
            "memo": {"k": {"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "Mg=="}},
            "search_attributes": {"CustomerId": "c-1"},
        }
    )
    assert e.id == "wf" and e.status is WorkflowExecutionStatus.CONTINUED_AS_NEW and e.first_run_id == "r0"
    assert e.start_time is not None and e.start_time.microsecond == 250_000 and e.start_time.tzinfo is not None
    assert e.close_time is None and e.memo["k"].data == b"2" and e.search_attributes == {"CustomerId": "c-1"}
    assert WorkflowExecution.from_json({"workflow_id": "w", "run_id": "r", "status": "RUNNING"}).status is (
        WorkflowExecutionStatus.RUNNING
    )


def test_a_count_with_groups() -> None:
    count = WorkflowExecutionCount.from_json(
        {"count": 5, "groups": [{"group_values": ["Running"], "count": 2}, {"group_values": ["Failed"], "count": 3}]}
    )
    assert count.count == 5 and [(g.group_values, g.count) for g in count.groups] == [(["Running"], 2), (["Failed"], 3)]
    assert WorkflowExecutionCount.from_json({"count": 0, "groups": []}).groups == []


def test_update_stages_are_ordered_and_update_errors_keep_their_cause() -> None:
    assert WorkflowUpdateStage.ADMITTED < WorkflowUpdateStage.ACCEPTED < WorkflowUpdateStage.COMPLETED
    cause = ValueError("no")
    assert WorkflowUpdateFailedError(cause).cause is cause
