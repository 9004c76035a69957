"""Timers, signals, cancellation, termination, timeouts, closing commands, continue-as-new, closed runs."""

from __future__ import annotations

from typing import Any

import pytest

from kronicle.engine.handler import InvalidCommand
from kronicle.engine.workflow import continued_run_id
from tests.unit.engine.workflow.harness import T0, Bench, attrs, command, schedule_activity


def _idle(b: Bench, **start: Any) -> str:
    """A started workflow whose first task completed with no commands."""
    run_id = b.start("wf", **start)
    b.complete_task("wf", [])
    return run_id


def _signal(b: Bench, **fields: Any) -> None:
    b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "approve", **fields})


# -- timers ---------------------------------------------------------------------


def test_timer_fires_after_its_duration() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [command("StartTimer", timer_id="1", start_to_fire_timeout_ms=60_000)])
    b.advance(59_999)
    assert b.types("wf")[-1] == "TimerStarted"
    b.advance(1)
    events = b.history("wf")
    assert [e["event_type"] for e in events][-2:] == ["TimerFired", "WorkflowTaskScheduled"]
    fired = attrs(events[-2])
    assert fired == {"timer_id": "1", "started_event_id": 5}
    assert events[-2]["event_time"] == T0 + 60_000
    assert b.run("wf")["timers"] == {}


def test_cancelled_timer_never_fires() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [command("StartTimer", timer_id="1", start_to_fire_timeout_ms=1_000)])
    _signal(b)
    b.complete_task("wf", [command("CancelTimer", timer_id="1")])
    canceled = attrs(b.history("wf")[-1])
    assert b.types("wf")[-1] == "TimerCanceled"
    assert canceled["started_event_id"] == 5
    b.advance(10_000)
    assert "TimerFired" not in b.types("wf")
    assert not any(b"|timer|" in t for t in b.timer_ids())


def test_timer_id_can_be_reused_after_it_fired() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [command("StartTimer", timer_id="1", start_to_fire_timeout_ms=10)])
    b.advance(10)
    b.complete_task("wf", [command("StartTimer", timer_id="1", start_to_fire_timeout_ms=10)])
    b.advance(10)
    assert b.types("wf").count("TimerFired") == 2


def test_duplicate_pending_timer_id_fails_the_task() -> None:
    b = Bench()
    b.start("wf")
    start = command("StartTimer", timer_id="1", start_to_fire_timeout_ms=10)
    b.complete_task("wf", [start, start])
    assert attrs(b.history("wf")[3])["cause"] == "START_TIMER_DUPLICATE_ID"


# -- signals ----------------------------------------------------------------------


def test_signal_to_an_idle_workflow_schedules_a_task() -> None:
    b = Bench()
    _idle(b)
    _signal(b, input=[b"yes"], identity="cli")
    events = b.history("wf")
    assert [e["event_type"] for e in events][-2:] == ["WorkflowExecutionSignaled", "WorkflowTaskScheduled"]
    signaled = attrs(events[-2])
    assert (signaled["signal_name"], signaled["input"], signaled["identity"]) == ("approve", [b"yes"], "cli")


def test_retried_signal_with_the_same_request_id_is_applied_once() -> None:
    b = Bench()
    _idle(b)
    _signal(b, request_id="s-1")
    before = b.snapshot()
    _signal(b, request_id="s-1")
    assert b.snapshot() == before
    assert b.types("wf").count("WorkflowExecutionSignaled") == 1
    assert b.handler.stats["duplicate_signal"] == 1
    _signal(b, request_id="s-2")  # a task is outstanding: buffered behind it
    assert [e[0] for e in b.run("wf")["buffer"]] == ["WorkflowExecutionSignaled"]


def test_signal_dedup_entries_expire() -> None:
    b = Bench()
    _idle(b)
    _signal(b, request_id="s-1")
    assert any(cf == "wf_dedup" for cf, _ in b.ctx.state)
    b.advance(24 * 3600 * 1000)
    assert not any(cf == "wf_dedup" for cf, _ in b.ctx.state)


def test_signal_to_unknown_workflow_is_rejected() -> None:
    b = Bench()
    with pytest.raises(InvalidCommand, match="WorkflowNotFound"):
        _signal(b)


# -- cancellation and termination ---------------------------------------------------


def test_cancel_request_is_recorded_once_and_acknowledged_by_cancel_command() -> None:
    b = Bench()
    _idle(b)
    b.send("RequestCancelWorkflow", {"workflow_id": "wf", "reason": "user", "identity": "cli"})
    b.send("RequestCancelWorkflow", {"workflow_id": "wf", "reason": "again"})
    types = b.types("wf")
    assert types[-2:] == ["WorkflowExecutionCancelRequested", "WorkflowTaskScheduled"]
    assert types.count("WorkflowExecutionCancelRequested") == 1
    assert attrs(b.history("wf")[-2])["cause"] == "user"
    b.complete_task("wf", [command("CancelWorkflowExecution", details=[b"bye"])])
    assert b.types("wf")[-1] == "WorkflowExecutionCanceled"
    assert b.run("wf")["status"] == "CANCELED"
    assert b.visibility()[-1][1]["status"] == "CANCELED"


def test_terminate_closes_at_once_and_disarms_every_timer() -> None:
    b = Bench()
    b.start("wf", run_timeout_ms=100_000)
    b.complete_task(
        "wf",
        [
            schedule_activity("a1", heartbeat_timeout_ms=5_000),
            command("StartTimer", timer_id="t", start_to_fire_timeout_ms=9),
        ],
    )
    _signal(b)  # a workflow task is now outstanding
    b.send("TerminateWorkflow", {"workflow_id": "wf", "reason": "ops", "details": [b"d"], "identity": "cli"})
    events = b.history("wf")
    assert events[-1]["event_type"] == "WorkflowExecutionTerminated"
    assert attrs(events[-1]) == {"reason": "ops", "details": [b"d"], "identity": "cli"}
    assert b.run("wf")["status"] == "TERMINATED"
    assert b.timer_ids() <= b.retention_timers()
    vis = b.visibility()[-1][1]
    assert (vis["status"], vis["close_time_ms"], vis["history_length"]) == ("TERMINATED", b.now, len(events))


# -- timeouts --------------------------------------------------------------------------


def test_run_timeout_times_the_workflow_out() -> None:
    b = Bench()
    _idle(b, run_timeout_ms=5_000)
    b.advance(5_000)
    assert b.types("wf")[-1] == "WorkflowExecutionTimedOut"
    assert attrs(b.history("wf")[-1])["retry_state"] == "TIMEOUT"
    assert b.run("wf")["status"] == "TIMED_OUT"


def test_execution_timeout_spans_continue_as_new() -> None:
    b = Bench()
    first = b.start("wf", execution_timeout_ms=10_000)
    b.advance(6_000)
    b.complete_task("wf", [command("ContinueAsNewWorkflowExecution", input=[b"2"])])
    second = continued_run_id(first)
    b.advance(3_999)
    assert b.run("wf")["status"] == "RUNNING"
    b.advance(1)
    assert b.run("wf", second)["status"] == "TIMED_OUT"


# -- closing commands -----------------------------------------------------------------


def test_complete_workflow_execution_closes_the_run_with_its_result() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [command("CompleteWorkflowExecution", result=[b"Hello"])])
    events = b.history("wf")
    assert [e["event_type"] for e in events][-2:] == ["WorkflowTaskCompleted", "WorkflowExecutionCompleted"]
    assert attrs(events[-1]) == {
        "result": [b"Hello"],
        "workflow_task_completed_event_id": 4,
        "new_execution_run_id": "",
    }
    assert b.run("wf")["status"] == "COMPLETED"
    assert b.timer_ids() <= b.retention_timers()


def test_fail_workflow_execution_keeps_the_failure_chain() -> None:
    b = Bench()
    b.start("wf")
    cause = {"message": "inner", "failure_type": "application", "type": "KeyError"}
    b.complete_task(
        "wf",
        [command("FailWorkflowExecution", failure={"message": "outer", "failure_type": "activity", "cause": cause})],
    )
    failure = attrs(b.history("wf")[-1])["failure"]
    assert (failure["message"], failure["cause"]["message"], failure["cause"]["type"]) == ("outer", "inner", "KeyError")
    assert b.run("wf")["status"] == "FAILED"


def test_continue_as_new_closes_the_run_and_starts_the_next() -> None:
    b = Bench()
    first = b.start("wf", memo={"k": b"v"})
    b.complete_task("wf", [command("ContinueAsNewWorkflowExecution", input=[b"next"])])
    second = continued_run_id(first)
    assert b.run("wf")["run_id"] == second
    old = b.history("wf", first)
    assert old[-1]["event_type"] == "WorkflowExecutionContinuedAsNew"
    assert attrs(old[-1])["new_execution_run_id"] == second
    assert b.run("wf", first)["status"] == "CONTINUED_AS_NEW"
    new = b.history("wf", second)
    assert [e["event_type"] for e in new] == ["WorkflowExecutionStarted", "WorkflowTaskScheduled"]
    started = attrs(new[0])
    assert started["continued_execution_run_id"] == first
    assert started["first_execution_run_id"] == first
    assert started["initiator"] == "WORKFLOW"
    assert started["input"] == [b"next"]
    assert started["memo"] == {"k": b"v"}
    task = b.last_task("wf")
    assert (task["run_id"], task["first_event_id"]) == (second, 1)
    statuses = [(v["run_id"], v["status"]) for _, v in b.visibility()]
    assert statuses[-2:] == [(first, "CONTINUED_AS_NEW"), (second, "RUNNING")]


# -- closed runs ---------------------------------------------------------------------------


def _closed(b: Bench) -> str:
    run_id = b.start("wf")
    b.complete_task("wf", [schedule_activity("a1"), command("CompleteWorkflowExecution")])
    return run_id


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("SignalWorkflow", {"signal_name": "s"}),
        ("RequestCancelWorkflow", {}),
        ("TerminateWorkflow", {"reason": "x"}),
    ],
)
def test_closed_run_rejects_client_commands(name: str, fields: dict[str, Any]) -> None:
    b = Bench()
    _closed(b)
    before = b.snapshot()
    with pytest.raises(InvalidCommand, match="WorkflowClosed"):
        b.send(name, {"workflow_id": "wf", **fields})
    assert b.snapshot() == before


def test_closed_run_ignores_worker_results() -> None:
    b = Bench()
    _closed(b)
    activity = b.activity_tasks()[-1]
    before = b.snapshot()
    b.activity_result("CompleteActivityTask", activity, result=[b"late"])
    b.activity_result("HeartbeatActivityTask", activity)
    b.complete_task("wf", [])
    assert b.snapshot() == before


def test_signal_naming_an_explicit_old_run_is_rejected() -> None:
    b = Bench()
    first = b.start("wf")
    b.complete_task("wf", [command("ContinueAsNewWorkflowExecution")])
    with pytest.raises(InvalidCommand, match="WorkflowClosed"):
        _signal(b, run_id=first)
    _signal(b)
    assert "WorkflowExecutionSignaled" not in b.types("wf", first)


# -- queries -----------------------------------------------------------------------------------


def _query(b: Bench, **fields: Any) -> None:
    value = {"workflow_id": "wf", "query_id": "q1", "query_type": "approved", "query_args": [b"a"], "reply_to": "qr"}
    b.send("QueryWorkflow", {**value, **fields})


def test_query_is_forwarded_to_the_owning_worker_without_changing_state() -> None:
    b = Bench()
    run_id = _idle(b)
    state = {k: v for k, v in b.ctx.state.items()}
    _query(b)
    assert b.ctx.state == state
    key, task = b.records(b.topics.workflow_tasks("q"))[-1]
    assert key == b"wf"
    assert (task["run_id"], task["query_type"], task["query_args"], task["reply_to"]) == (
        run_id,
        "approved",
        [b"a"],
        "qr",
    )
    assert (task["history_length"], task["closed"]) == (4, False)


def test_a_query_waits_for_the_outstanding_workflow_task_and_sees_its_signals() -> None:
    b = Bench()
    run_id = _idle(b)
    _signal(b)
    tasks = len(b.workflow_tasks())
    _query(b)
    assert len(b.workflow_tasks()) == tasks, "the query went out before the task that handles the signal"
    assert len(b.run("wf")["queries"]) == 1
    b.complete_task("wf", [])
    task = b.records(b.topics.workflow_tasks("q"))[-1][1]
    assert (task["run_id"], task["query_id"], task["reply_to"]) == (run_id, "q1", "qr")
    history = b.history("wf")
    assert history[-1]["event_type"] == "WorkflowTaskCompleted" and task["history_length"] == len(history)
    assert "queries" not in b.run("wf")


def test_a_query_held_for_a_failing_workflow_task_goes_out_when_the_task_fails() -> None:
    b = Bench()
    _idle(b)
    _signal(b)
    _query(b)
    b.fail_task("wf")
    assert [t["query_id"] for _, t in b.records(b.topics.workflow_tasks("q")) if "query_id" in t] == ["q1"]
    assert "queries" not in b.run("wf")


def test_held_queries_are_bounded_per_run() -> None:
    b = Bench()
    b.start("wf")
    for i in range(60):
        _query(b, query_id=f"q{i}")
    assert len(b.run("wf")["queries"]) == 50
    sent = [t for _, t in b.records(b.topics.workflow_tasks("q")) if "query_id" in t]
    assert [t["query_id"] for t in sent] == [f"q{i}" for i in range(50, 60)]


def test_closed_workflow_still_answers_queries() -> None:
    b = Bench()
    _closed(b)
    _query(b)
    task = b.records(b.topics.workflow_tasks("q"))[-1][1]
    assert task["closed"] is True
    assert task["history_length"] == len(b.history("wf"))


def test_query_to_unknown_workflow_is_answered_with_not_found() -> None:
    b = Bench()
    _query(b)
    assert b.records("qr")[-1][1]["error_type"] == "WorkflowNotFound"


# -- workflow retry policy ------------------------------------------------------------------------


def test_failed_run_is_retried_as_a_new_run_after_backoff() -> None:
    b = Bench()
    first = b.start("wf", input=[b"in"], retry_policy={"maximum_attempts": 3})
    b.complete_task("wf", [command("FailWorkflowExecution", failure={"message": "x", "type": "Oops"})])
    second = continued_run_id(first)
    failed = attrs(b.history("wf", first)[-1])
    assert (failed["retry_state"], failed["new_execution_run_id"]) == ("IN_PROGRESS", second)
    assert b.run("wf", first)["status"] == "FAILED"
    new = b.history("wf", second)
    started = attrs(new[0])
    assert (started["attempt"], started["initiator"], started["input"]) == (2, "RETRY_POLICY", [b"in"])
    assert started["continued_failure"]["type"] == "Oops"
    assert started["first_workflow_task_backoff_ms"] == 1000
    assert [e["event_type"] for e in new] == ["WorkflowExecutionStarted"]
    b.advance(1000)
    assert b.types("wf", second)[-1] == "WorkflowTaskScheduled"


def test_workflow_retries_stop_at_maximum_attempts_and_for_non_retryable_types() -> None:
    b = Bench()
    b.start("wf", retry_policy={"maximum_attempts": 2, "non_retryable_error_types": ["Fatal"]})
    b.complete_task("wf", [command("FailWorkflowExecution", failure={"message": "x"})])
    b.advance(1000)
    b.complete_task("wf", [command("FailWorkflowExecution", failure={"message": "x"})])
    assert attrs(b.history("wf")[-1])["retry_state"] == "MAXIMUM_ATTEMPTS_REACHED"
    b2 = Bench()
    b2.start("wf", retry_policy={"non_retryable_error_types": ["Fatal"]})
    b2.complete_task("wf", [command("FailWorkflowExecution", failure={"message": "x", "type": "Fatal"})])
    assert attrs(b2.history("wf")[-1])["retry_state"] == "NON_RETRYABLE_FAILURE"


def test_run_timeout_is_retried_but_not_past_the_execution_timeout() -> None:
    b = Bench()
    first = b.start("wf", run_timeout_ms=1_000, execution_timeout_ms=2_500, retry_policy={"initial_interval_ms": 100})
    b.advance(1_000)
    assert attrs(b.history("wf", first)[-1])["retry_state"] == "IN_PROGRESS"
    second = continued_run_id(first)
    b.advance(1_100)  # backoff 100 ms, then the second run times out
    assert b.run("wf", second)["status"] == "TIMED_OUT"
    assert attrs(b.history("wf", second)[-1])["retry_state"] == "IN_PROGRESS"
    b.advance(400)
    assert b.run("wf")["status"] == "TIMED_OUT"
    assert attrs(b.history("wf")[-1])["retry_state"] == "TIMEOUT"


def test_retried_child_reports_only_its_final_attempt() -> None:
    b = Bench()
    b.start("parent")
    b.complete_task(
        "parent",
        [
            command(
                "StartChildWorkflowExecution",
                workflow_id="child",
                workflow_type="C",
                retry_policy={"maximum_attempts": 2},
            )
        ],
    )
    b.deliver()
    b.complete_task("parent", [])
    b.complete_task("child", [command("FailWorkflowExecution", failure={"message": "1"})])
    b.deliver()
    assert "ChildWorkflowExecutionFailed" not in b.types("parent")
    b.advance(1000)
    b.complete_task("child", [command("FailWorkflowExecution", failure={"message": "2"})])
    b.deliver()
    assert b.types("parent")[-2] == "ChildWorkflowExecutionFailed"
    assert attrs(b.history("parent")[-2])["failure"]["message"] == "2"
