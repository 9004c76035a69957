"""Activities: dispatch, completion, retries with backoff, the four timeouts, heartbeats, cancellation."""

from __future__ import annotations

from typing import Any

import pytest

from kronicle.engine.workflow._activities import normalize_retry_policy, retry_delay
from tests.unit.engine.workflow.harness import T0, Bench, attrs, command, failure, schedule_activity


def _scheduled(b: Bench, **fields: Any) -> dict[str, Any]:
    b.start("wf")
    b.complete_task("wf", [schedule_activity("a1", **fields)])
    return b.activity_tasks(fields.get("task_queue", "q"))[-1]


def test_scheduled_activity_is_dispatched_with_its_attributes() -> None:
    b = Bench()
    task = _scheduled(b, heartbeat_timeout_ms=3_000, task_queue="other")
    assert b.activity_tasks() == []  # it went to the activity's own queue
    task = b.activity_tasks("other")[-1]
    assert (task["scheduled_event_id"], task["attempt"]) == (5, 1)
    assert task["activity_type"] == "compose"
    assert task["input"] == [b"x"]
    assert task["heartbeat_timeout_ms"] == 3_000
    scheduled = attrs(b.history("wf")[4])
    assert scheduled["retry_policy"] == {
        "initial_interval_ms": 1000,
        "backoff_coefficient": 2.0,
        "maximum_interval_ms": 100_000,
        "maximum_attempts": 0,
        "non_retryable_error_types": [],
    }


def test_completion_writes_started_and_completed_and_schedules_a_task() -> None:
    b = Bench()
    task = _scheduled(b)
    b.advance(500)
    b.activity_result("CompleteActivityTask", task, result=[b"hi"], started_time_ms=T0 + 200)
    events = b.history("wf")
    assert [e["event_type"] for e in events][5:] == [
        "ActivityTaskStarted",
        "ActivityTaskCompleted",
        "WorkflowTaskScheduled",
    ]
    started, completed = attrs(events[5]), attrs(events[6])
    assert (started["scheduled_event_id"], started["attempt"], started["last_failure"]) == (5, 1, None)
    assert events[5]["event_time"] == T0 + 200
    assert (completed["result"], completed["scheduled_event_id"], completed["started_event_id"]) == ([b"hi"], 5, 6)
    assert b.run("wf")["activities"] == {}
    assert not any(b"|act_" in t for t in b.timer_ids())


def test_duplicate_and_wrong_attempt_completions_are_ignored() -> None:
    b = Bench()
    task = _scheduled(b)
    b.activity_result("CompleteActivityTask", task, result=[b"1"])
    before = b.snapshot()
    b.activity_result("CompleteActivityTask", task, result=[b"2"])
    b.activity_result("FailActivityTask", task, failure=failure())
    b.activity_result("CompleteActivityTask", {**task, "attempt": 2}, result=[b"3"])
    assert b.snapshot() == before
    assert b.handler.stats["stale_activity_completion"] == 2


def test_failed_attempt_is_retried_after_backoff_without_history_events() -> None:
    b = Bench()
    task = _scheduled(b)
    n = len(b.history("wf"))
    b.activity_result("FailActivityTask", task, failure=failure("first"))
    assert len(b.history("wf")) == n
    b.advance(999)
    assert len(b.activity_tasks()) == 1
    b.advance(1)
    second = b.activity_tasks()[-1]
    assert second["attempt"] == 2
    b.activity_result("FailActivityTask", second, failure=failure("second"))
    b.advance(1_999)
    assert len(b.activity_tasks()) == 2
    b.advance(1)
    third = b.activity_tasks()[-1]
    assert third["attempt"] == 3
    b.activity_result("CompleteActivityTask", third, result=[b"ok"])
    started = attrs(b.history("wf")[n])
    assert started["attempt"] == 3
    assert started["last_failure"]["message"] == "second"


def test_maximum_attempts_ends_with_activity_task_failed() -> None:
    b = Bench()
    task = _scheduled(b, retry_policy={"maximum_attempts": 2})
    b.activity_result("FailActivityTask", task, failure=failure("one"))
    b.advance(1000)
    b.activity_result("FailActivityTask", b.activity_tasks()[-1], failure=failure("two"))
    events = b.history("wf")
    assert [e["event_type"] for e in events][5:] == [
        "ActivityTaskStarted",
        "ActivityTaskFailed",
        "WorkflowTaskScheduled",
    ]
    failed = attrs(events[6])
    assert failed["retry_state"] == "MAXIMUM_ATTEMPTS_REACHED"
    assert failed["failure"]["message"] == "two"
    assert attrs(events[5])["attempt"] == 2


@pytest.mark.parametrize(
    ("policy", "fail"),
    [
        ({}, failure(non_retryable=True)),
        ({"non_retryable_error_types": ["ValueError"]}, failure(type_="ValueError")),
    ],
)
def test_non_retryable_failures_are_not_retried(policy: dict[str, Any], fail: dict[str, Any]) -> None:
    b = Bench()
    task = _scheduled(b, retry_policy=policy)
    b.activity_result("FailActivityTask", task, failure=fail)
    assert attrs(b.history("wf")[6])["retry_state"] == "NON_RETRYABLE_FAILURE"
    assert b.run("wf")["activities"] == {}


def test_retry_that_would_pass_schedule_to_close_ends_the_activity() -> None:
    b = Bench()
    task = _scheduled(b, schedule_to_close_timeout_ms=1_500, start_to_close_timeout_ms=1_000)
    b.advance(600)
    b.activity_result("FailActivityTask", task, failure=failure())
    assert attrs(b.history("wf")[6])["retry_state"] == "TIMEOUT"


def test_start_to_close_timeout_retries_then_times_out() -> None:
    b = Bench()
    _scheduled(b, start_to_close_timeout_ms=2_000, retry_policy={"maximum_attempts": 2})
    b.advance(2_000)
    assert b.activity_tasks()[-1]["attempt"] == 1  # backing off
    b.advance(1_000)
    assert b.activity_tasks()[-1]["attempt"] == 2
    b.advance(2_000)
    events = b.history("wf")
    assert [e["event_type"] for e in events][5:7] == ["ActivityTaskStarted", "ActivityTaskTimedOut"]
    timed_out = attrs(events[6])
    assert timed_out["failure"]["timeout_type"] == "START_TO_CLOSE"
    assert timed_out["retry_state"] == "MAXIMUM_ATTEMPTS_REACHED"


def test_heartbeats_keep_the_attempt_alive_and_carry_details() -> None:
    b = Bench()
    task = _scheduled(
        b, heartbeat_timeout_ms=1_000, start_to_close_timeout_ms=60_000, retry_policy={"maximum_attempts": 1}
    )
    for i in range(5):
        b.advance(900)
        b.activity_result("HeartbeatActivityTask", task, details=[str(i).encode()])
    assert b.run("wf")["activities"]["5"]["heartbeat_details"] == [b"4"]
    b.advance(1_000)
    timed_out = attrs(b.history("wf")[6])
    assert timed_out["failure"]["timeout_type"] == "HEARTBEAT"
    assert timed_out["failure"]["last_heartbeat_details"] == [b"4"]


def test_heartbeat_details_reach_the_next_attempt() -> None:
    b = Bench()
    task = _scheduled(b, heartbeat_timeout_ms=1_000)
    b.activity_result("HeartbeatActivityTask", task, details=[b"progress"])
    b.advance(1_000)  # heartbeat timeout -> retry after 1 s
    b.advance(1_000)
    assert b.activity_tasks()[-1]["attempt"] == 2
    assert b.activity_tasks()[-1]["heartbeat_details"] == [b"progress"]


def test_schedule_to_start_times_out_unless_a_heartbeat_arrives() -> None:
    b = Bench()
    task = _scheduled(b, schedule_to_start_timeout_ms=1_000)
    b.advance(1_000)
    events = b.history("wf")
    assert [e["event_type"] for e in events][5:] == ["ActivityTaskTimedOut", "WorkflowTaskScheduled"]
    assert attrs(events[5])["failure"]["timeout_type"] == "SCHEDULE_TO_START"
    b2 = Bench()
    task = _scheduled(b2, schedule_to_start_timeout_ms=1_000)
    b2.activity_result("HeartbeatActivityTask", task)
    b2.advance(5_000)
    assert b2.run("wf")["activities"]["5"]["attempt"] == 1


def test_schedule_to_close_timeout_ends_the_activity_across_attempts() -> None:
    b = Bench()
    task = _scheduled(b, schedule_to_close_timeout_ms=10_000, start_to_close_timeout_ms=3_000)
    b.activity_result("FailActivityTask", task, failure=failure())
    b.advance(10_000)
    events = b.history("wf")
    types = [e["event_type"] for e in events]
    assert types.count("ActivityTaskTimedOut") == 1
    timed_out = attrs(events[types.index("ActivityTaskTimedOut")])
    assert timed_out["retry_state"] == "TIMEOUT"
    assert timed_out["failure"]["timeout_type"] in ("SCHEDULE_TO_CLOSE", "START_TO_CLOSE")
    assert b.run("wf")["activities"] == {}


def test_cancel_request_is_delivered_on_the_next_heartbeat_and_acknowledged() -> None:
    b = Bench()
    task = _scheduled(b)
    b.activity_result("HeartbeatActivityTask", task, reply_to="worker-1.control")
    assert b.records("worker-1.control") == []  # nothing to say yet
    b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "stop"})
    b.complete_task("wf", [command("RequestCancelActivityTask", scheduled_event_id=5)])
    # Already known reply topic: told at once; and again on the next heartbeat.
    b.activity_result("HeartbeatActivityTask", task, reply_to="worker-1.control")
    replies = [v for _, v in b.records("worker-1.control")]
    assert [r["cancel_requested"] for r in replies] == [True, True]
    b.activity_result("ReportActivityTaskCanceled", task, details=[b"stopped"])
    events = b.history("wf")
    assert [e["event_type"] for e in events][-4:] == [
        "ActivityTaskCancelRequested",
        "ActivityTaskStarted",
        "ActivityTaskCanceled",
        "WorkflowTaskScheduled",
    ]
    canceled = attrs(events[-2])
    assert canceled["latest_cancel_requested_event_id"] == events[-4]["event_id"]
    assert canceled["details"] == [b"stopped"]


def test_cancel_of_an_activity_waiting_for_retry_completes_at_once() -> None:
    b = Bench()
    task = _scheduled(b)
    b.activity_result("FailActivityTask", task, failure=failure())
    # The workflow is idle: give it a task by signalling.
    b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "stop"})
    b.complete_task("wf", [command("RequestCancelActivityTask", scheduled_event_id=5)])
    types = b.types("wf")
    assert types[-3:] == ["ActivityTaskCancelRequested", "ActivityTaskCanceled", "WorkflowTaskScheduled"]
    b.advance(5_000)
    assert len(b.activity_tasks()) == 1  # the retry never went out


def test_failure_after_cancel_request_is_not_retried() -> None:
    b = Bench()
    task = _scheduled(b)
    b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": "stop"})
    b.complete_task("wf", [command("RequestCancelActivityTask", scheduled_event_id=5)])
    b.activity_result("FailActivityTask", task, failure=failure())
    assert attrs(b.history("wf")[-2])["retry_state"] == "CANCEL_REQUESTED"


def test_stale_heartbeat_is_answered_with_not_found_and_changes_no_state() -> None:
    b = Bench()
    task = _scheduled(b)
    b.activity_result("CompleteActivityTask", task)
    state = dict(b.ctx.state)
    b.activity_result("HeartbeatActivityTask", task, reply_to="ctl")
    assert b.ctx.state == state
    assert b.records("ctl")[-1][1]["not_found"] is True


def test_cancellation_report_without_a_request_is_ignored() -> None:
    b = Bench()
    task = _scheduled(b)
    before = b.snapshot()
    b.activity_result("ReportActivityTaskCanceled", task)
    assert b.snapshot() == before


@pytest.mark.parametrize(
    ("fields", "cause"),
    [
        ({"start_to_close_timeout_ms": 0}, "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES"),
        ({"activity_type": ""}, "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES"),
        ({"retry_policy": {"backoff_coefficient": 0.5}}, "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES"),
    ],
)
def test_invalid_schedule_fails_the_workflow_task(fields: dict[str, Any], cause: str) -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [schedule_activity("a1", **fields)])
    assert attrs(b.history("wf")[3])["cause"] == cause
    assert b.activity_tasks() == []


def test_retry_delay_follows_temporal_defaults() -> None:
    act: dict[str, Any] = {"retry_policy": normalize_retry_policy(None), "s2c": 0, "scheduled_time": 0, "attempt": 1}
    delays = []
    for attempt in range(1, 10):
        act["attempt"] = attempt
        delays.append(retry_delay(act, failure(), 0)[0])
    assert delays == [1000, 2000, 4000, 8000, 16000, 32000, 64000, 100000, 100000]
    act["attempt"] = 10_000  # no float overflow for very long retry chains
    assert retry_delay(act, None, 0) == (100000, "IN_PROGRESS")
