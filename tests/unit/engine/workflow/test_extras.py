"""Signal-with-start, retention of closed runs, and limits."""

from __future__ import annotations

from typing import Any

import pytest

from kronicle.engine.handler import InvalidCommand
from kronicle.engine.workflow import WorkflowOptions, start_run_id
from tests.unit.engine.workflow.harness import Bench, attrs, command, schedule_activity


def _signal_with_start(b: Bench, **fields: Any) -> None:
    value = {
        "workflow_id": "wf",
        "workflow_type": "Greeting",
        "task_queue": "q",
        "request_id": "sws-1",
        "signal_name": "approve",
        "signal_input": [b"yes"],
        **fields,
    }
    b.send("SignalWithStartWorkflow", value)


def test_signal_with_start_starts_with_the_signal_before_the_first_task() -> None:
    b = Bench()
    _signal_with_start(b, input=[b"in"], reply_to="r")
    events = b.history("wf")
    assert [e["event_type"] for e in events] == [
        "WorkflowExecutionStarted",
        "WorkflowExecutionSignaled",
        "WorkflowTaskScheduled",
    ]
    assert attrs(events[1])["input"] == [b"yes"]
    assert attrs(events[0])["input"] == [b"in"]
    assert b.records("r")[-1][1]["run_id"] == start_run_id("wf", "sws-1")
    assert [e["event_id"] for e in b.last_task("wf")["history"]] == [1, 2, 3]


def test_signal_with_start_signals_a_running_workflow() -> None:
    b = Bench()
    first = b.start("wf")
    b.complete_task("wf", [])
    _signal_with_start(b)
    assert b.run("wf")["run_id"] == first
    assert b.types("wf")[-2:] == ["WorkflowExecutionSignaled", "WorkflowTaskScheduled"]


def test_retried_signal_with_start_is_applied_once() -> None:
    b = Bench()
    _signal_with_start(b)
    before = b.snapshot()
    _signal_with_start(b)
    assert b.snapshot() == before


def test_signal_with_start_after_close_honours_the_reuse_policy() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [command("CompleteWorkflowExecution")])
    with pytest.raises(InvalidCommand, match="WorkflowAlreadyStarted"):
        _signal_with_start(b, id_reuse_policy="REJECT_DUPLICATE")
    _signal_with_start(b)
    assert b.run("wf")["status"] == "RUNNING"


def test_closed_run_is_purged_after_retention() -> None:
    b = Bench(WorkflowOptions(retention_ms=60_000))
    run_id = b.start("wf")
    b.complete_task("wf", [command("CompleteWorkflowExecution")])
    b.advance(59_999)
    assert b.run("wf")["status"] == "COMPLETED"
    b.advance(1)
    assert [k for k in b.ctx.state if k[0].startswith("wf_")] == []
    assert b.timer_ids() == set()
    # The id can be used again, even with the same request id.
    assert b.start("wf") == run_id


def test_running_run_is_never_purged() -> None:
    b = Bench(WorkflowOptions(retention_ms=10))
    b.start("wf")
    b.advance(1_000_000)
    assert b.run("wf")["status"] == "RUNNING"


def test_oversized_input_is_rejected() -> None:
    b = Bench(WorkflowOptions(max_payload_bytes=10))
    with pytest.raises(InvalidCommand, match="over the limit of 10"):
        b.start("wf", input=[b"x" * 11])
    b.start("wf", input=[b"x" * 10])
    with pytest.raises(InvalidCommand, match="over the limit"):
        b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "s", "input": [b"y" * 6, b"z" * 5]})


def test_pending_activity_limit_fails_the_task() -> None:
    b = Bench(WorkflowOptions(max_pending_activities=2))
    b.start("wf")
    b.complete_task("wf", [schedule_activity("a1"), schedule_activity("a2"), schedule_activity("a3")])
    assert attrs(b.history("wf")[3])["cause"] == "PENDING_ACTIVITIES_LIMIT_EXCEEDED"
    b.complete_task("wf", [schedule_activity("a1"), schedule_activity("a2")])
    assert len(b.run("wf")["activities"]) == 2


def test_signal_limit_per_run() -> None:
    b = Bench(WorkflowOptions(max_signals_per_execution=2))
    b.start("wf")
    for _ in range(2):
        b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "s"})
    with pytest.raises(InvalidCommand, match="ResourceExhausted"):
        b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "s"})


def test_long_history_keeps_working_and_tasks_stay_small() -> None:
    b = Bench()
    b.start("wf")
    markers = [command("RecordMarker", marker_name="m", details={"d": [b"1"]})] * 1000
    for _ in range(100):
        b.complete_task("wf", markers)
        b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "next"})
    run = b.run("wf")
    assert run["next_event_id"] > 100_000
    task = b.last_task("wf")
    # The task carries only what happened since the last completed task, not 100k events.
    assert len(task["history"]) == 1000 + 4
    b.complete_task("wf", [command("CompleteWorkflowExecution")])
    assert b.run("wf")["status"] == "COMPLETED"
