"""The workflow-task cycle: completion, stale and duplicate results, failure, timeout, buffering."""

from __future__ import annotations

from typing import Any

from tests.unit.engine.workflow.harness import T0, Bench, attrs, command, schedule_activity


def _signal(b: Bench, name: str = "approve", request_id: str = "") -> None:
    b.send("SignalWorkflow", {"workflow_id": "wf", "signal_name": name, "input": [b"1"], "request_id": request_id})


def test_completion_writes_started_with_the_worker_time_then_completed() -> None:
    b = Bench()
    b.start("wf")
    b.advance(300)
    b.complete_task("wf", [], started_time_ms=T0 + 100)
    events = b.history("wf")
    assert [e["event_type"] for e in events] == [
        "WorkflowExecutionStarted",
        "WorkflowTaskScheduled",
        "WorkflowTaskStarted",
        "WorkflowTaskCompleted",
    ]
    assert events[2]["event_time"] == T0 + 100
    assert events[3]["event_time"] == T0 + 300
    assert attrs(events[2])["identity"] == "worker-1"
    assert attrs(events[3])["scheduled_event_id"] == 2
    assert attrs(events[3])["started_event_id"] == 3
    assert b.run("wf")["wft"] is None
    # No commands and nothing new: no next task, and the task timeout is disarmed.
    assert len(b.workflow_tasks()) == 1
    assert b.timer_ids() <= b.retention_timers()


def test_worker_start_time_is_clamped_between_scheduling_and_now() -> None:
    b = Bench()
    b.start("wf")
    b.advance(50)
    b.complete_task("wf", [], started_time_ms=T0 + 10_000_000)
    assert b.history("wf")[2]["event_time"] == T0 + 50


def test_duplicate_completion_is_ignored_without_any_change() -> None:
    b = Bench()
    b.start("wf")
    task = b.last_task("wf")
    b.complete_task("wf", [schedule_activity()], task=task)
    before = b.snapshot()
    b.complete_task("wf", [schedule_activity("a2")], task=task)
    assert b.snapshot() == before
    assert b.handler.stats["stale_workflow_task_completion"] == 1


def test_completion_with_wrong_attempt_or_event_id_or_run_is_ignored() -> None:
    b = Bench()
    b.start("wf")
    task = b.last_task("wf")
    before = b.snapshot()
    for wrong in ({"attempt": 2}, {"scheduled_event_id": 1}, {"run_id": "not-a-run"}):
        b.complete_task("wf", [], task={**task, **wrong})
        assert b.snapshot() == before
    assert b.handler.stats["stale_workflow_task_completion"] == 3


def test_next_task_carries_events_since_the_last_completed_task() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task("wf", [command("StartTimer", timer_id="t", start_to_fire_timeout_ms=1000)])
    b.advance(1000)
    task = b.last_task("wf")
    assert task["first_event_id"] == 3
    assert [e["event_type"] for e in task["history"]] == [
        "WorkflowTaskStarted",
        "WorkflowTaskCompleted",
        "TimerStarted",
        "TimerFired",
        "WorkflowTaskScheduled",
    ]
    assert [e["event_id"] for e in task["history"]] == [3, 4, 5, 6, 7]


def test_events_arriving_during_a_task_are_buffered_until_it_completes() -> None:
    b = Bench()
    b.start("wf")
    _signal(b)
    assert b.types("wf") == ["WorkflowExecutionStarted", "WorkflowTaskScheduled"]
    assert len(b.run("wf")["buffer"]) == 1
    b.complete_task("wf", [])
    assert b.types("wf")[2:] == [
        "WorkflowTaskStarted",
        "WorkflowTaskCompleted",
        "WorkflowExecutionSignaled",
        "WorkflowTaskScheduled",
    ]
    assert len(b.workflow_tasks()) == 2


def test_closing_while_events_are_buffered_fails_the_task_with_unhandled_command() -> None:
    b = Bench()
    b.start("wf")
    _signal(b)
    b.complete_task("wf", [command("CompleteWorkflowExecution", result=[b"r"])])
    events = b.history("wf")
    assert [e["event_type"] for e in events][2:] == [
        "WorkflowTaskStarted",
        "WorkflowTaskFailed",
        "WorkflowExecutionSignaled",
        "WorkflowTaskScheduled",
    ]
    assert attrs(events[3])["cause"] == "UNHANDLED_COMMAND"
    assert b.run("wf")["status"] == "RUNNING"
    # New events were written, so the retry is a normal task again (Temporal resets the attempt too).
    assert attrs(events[-1])["attempt"] == 1


def test_bad_command_rolls_back_the_whole_completion_and_fails_the_task() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task(
        "wf",
        [
            schedule_activity("a1"),
            command("StartTimer", timer_id="t", start_to_fire_timeout_ms=1000),
            schedule_activity("a1"),
        ],
    )
    events = b.history("wf")
    assert [e["event_type"] for e in events][2:] == ["WorkflowTaskStarted", "WorkflowTaskFailed"]
    assert attrs(events[3])["cause"] == "SCHEDULE_ACTIVITY_DUPLICATE_ID"
    run = b.run("wf")
    assert run["activities"] == {}
    assert run["timers"] == {}
    assert b.activity_tasks() == []
    assert {t for t in b.timer_ids() if b"|timer|" in t or b"|act_" in t} == set()


def test_command_after_a_closing_command_is_rejected() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task(
        "wf", [command("CompleteWorkflowExecution"), command("StartTimer", timer_id="t", start_to_fire_timeout_ms=5)]
    )
    assert b.run("wf")["status"] == "RUNNING"
    assert attrs(b.history("wf")[3])["cause"] == "BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES"


def test_failed_task_is_retried_with_the_next_attempt() -> None:
    b = Bench()
    b.start("wf")
    b.fail_task("wf")
    events = b.history("wf")
    assert [e["event_type"] for e in events][2:] == ["WorkflowTaskStarted", "WorkflowTaskFailed"]
    failed = attrs(events[3])
    assert failed["cause"] == "NON_DETERMINISTIC_ERROR"
    assert failed["failure"]["type"] == "NondeterminismError"
    task = b.last_task("wf")
    assert (task["scheduled_event_id"], task["attempt"], task["first_event_id"]) == (5, 2, 1)
    # The retry is transient: its WorkflowTaskScheduled travels in the task but is not history yet.
    assert [e["event_id"] for e in task["history"]] == [1, 2, 3, 4, 5]
    assert task["history"][-1]["event_type"] == "WorkflowTaskScheduled"
    assert attrs(task["history"][-1])["attempt"] == 2


def test_stale_failure_is_ignored() -> None:
    b = Bench()
    b.start("wf")
    task = b.last_task("wf")
    b.fail_task("wf", task=task)
    before = b.snapshot()
    b.fail_task("wf", task=task)
    b.complete_task("wf", [], task=task)
    assert b.snapshot() == before


def test_task_timeout_writes_timed_out_and_retries() -> None:
    b = Bench()
    b.start("wf", task_timeout_ms=2_000)
    b.advance(1_999)
    assert len(b.workflow_tasks()) == 1
    b.advance(1)
    events = b.history("wf")
    assert [e["event_type"] for e in events][2:] == ["WorkflowTaskTimedOut"]
    assert attrs(events[2])["timeout_type"] == "START_TO_CLOSE"
    assert (b.last_task("wf")["attempt"], b.last_task("wf")["scheduled_event_id"]) == (2, 4)
    # The late completion of the first attempt changes nothing.
    before = b.snapshot()
    b.complete_task("wf", [], task=b.workflow_tasks()[0])
    assert b.snapshot() == before


def test_repeated_task_failures_back_off_after_the_immediate_retries() -> None:
    b = Bench()
    b.start("wf")
    b.fail_task("wf")  # attempt 2 at once
    b.fail_task("wf")  # attempt 3 at once
    assert b.last_task("wf")["attempt"] == 3
    b.fail_task("wf")  # attempt 4 after 1 s
    assert b.last_task("wf")["attempt"] == 3
    b.advance(999)
    assert b.last_task("wf")["attempt"] == 3
    b.advance(1)
    assert b.last_task("wf")["attempt"] == 4
    b.fail_task("wf")  # attempt 5 after 2 s
    b.advance(1_999)
    assert b.last_task("wf")["attempt"] == 4
    b.advance(1)
    assert b.last_task("wf")["attempt"] == 5


def test_completion_after_failures_resets_the_attempt() -> None:
    b = Bench()
    b.start("wf")
    b.fail_task("wf")
    b.complete_task("wf", [])
    _signal(b)
    assert b.last_task("wf")["attempt"] == 1


def _run_fields(b: Bench) -> dict[str, Any]:
    return {k: v for k, v in b.run("wf").items() if k in ("wft", "wft_attempt", "next_event_id")}


def test_worker_commands_produce_events_in_command_order() -> None:
    b = Bench()
    b.start("wf")
    b.complete_task(
        "wf",
        [
            command("RecordMarker", marker_name="SideEffect", details={"data": [b"42"]}),
            schedule_activity("a1"),
            command("StartTimer", timer_id="t1", start_to_fire_timeout_ms=100),
            command("UpsertWorkflowSearchAttributes", search_attributes={"Step": b"2"}),
        ],
    )
    events = b.history("wf")
    assert [e["event_type"] for e in events][4:] == [
        "MarkerRecorded",
        "ActivityTaskScheduled",
        "TimerStarted",
        "UpsertWorkflowSearchAttributes",
    ]
    assert all(attrs(e)["workflow_task_completed_event_id"] == 4 for e in events[4:])
    assert attrs(events[4])["details"] == {"data": [b"42"]}
    assert b.run("wf")["search_attributes"] == {"Step": b"2"}
    assert b.visibility()[-1][1]["search_attributes"] == {"Step": b"2"}
    assert _run_fields(b)["wft"] is None


# -- transient attempts ------------------------------------------------------------------


def test_a_task_that_keeps_failing_does_not_grow_history() -> None:
    b = Bench()
    b.start("wf")
    b.fail_task("wf")
    length = len(b.history("wf"))
    for _ in range(6):
        b.fail_task("wf")
        b.advance(600_000)
    # Each 10 min also ran into task timeouts: many more attempts, still not one event more.
    assert len(b.history("wf")) == length == 4
    task = b.last_task("wf")
    assert task["scheduled_event_id"] == 5 and task["attempt"] > 8
    assert b.run("wf")["wft_attempt"] >= task["attempt"]


def test_a_transient_timeout_writes_nothing() -> None:
    b = Bench()
    b.start("wf", task_timeout_ms=1_000)
    b.advance(1_000)
    b.advance(1_000)
    b.advance(1_000)  # attempts 2 and 3 at once, then a backoff of 1 s
    b.advance(1_000)
    assert b.types("wf") == ["WorkflowExecutionStarted", "WorkflowTaskScheduled", "WorkflowTaskTimedOut"]
    assert b.last_task("wf")["attempt"] == 4


def test_completing_a_transient_attempt_writes_scheduled_started_completed_with_the_attempt() -> None:
    b = Bench()
    b.start("wf")
    b.fail_task("wf")
    b.fail_task("wf")
    task = b.last_task("wf")
    scheduled_at = task["scheduled_time_ms"]
    b.advance(300)
    b.complete_task("wf", [command("StartTimer", timer_id="t", start_to_fire_timeout_ms=5)])
    events = b.history("wf")
    assert [e["event_type"] for e in events][4:] == [
        "WorkflowTaskScheduled",
        "WorkflowTaskStarted",
        "WorkflowTaskCompleted",
        "TimerStarted",
    ]
    assert [e["event_id"] for e in events] == list(range(1, 9))
    assert attrs(events[4])["attempt"] == 3 and events[4]["event_time"] == scheduled_at
    assert attrs(events[5])["scheduled_event_id"] == 5
    assert attrs(events[6]) == {"scheduled_event_id": 5, "started_event_id": 6, "identity": "worker-1"}
    assert b.run("wf")["wft_attempt"] == 1


def test_a_signal_while_a_transient_attempt_is_out_is_buffered_and_ends_the_transient_streak() -> None:
    b = Bench()
    b.start("wf")
    b.fail_task("wf")
    _signal(b)
    assert len(b.history("wf")) == 4  # buffered behind the transient attempt
    b.fail_task("wf")
    events = b.history("wf")
    assert [e["event_type"] for e in events][4:] == ["WorkflowExecutionSignaled", "WorkflowTaskScheduled"]
    assert attrs(events[-1])["attempt"] == 1
    assert (b.last_task("wf")["attempt"], b.last_task("wf")["scheduled_event_id"]) == (1, 6)


def test_a_signal_during_the_retry_backoff_makes_the_next_task_a_normal_one() -> None:
    b = Bench()
    b.start("wf")
    for _ in range(3):
        b.fail_task("wf")  # the third failure backs off
    assert b.run("wf")["wft"] is None
    _signal(b)
    assert b.types("wf")[-1] == "WorkflowExecutionSignaled"
    b.advance(1_000)
    events = b.history("wf")
    assert events[-1]["event_type"] == "WorkflowTaskScheduled" and attrs(events[-1])["attempt"] == 1
    assert b.last_task("wf")["attempt"] == 1


def test_event_times_never_go_back_even_for_buffered_events() -> None:
    b = Bench()
    b.start("wf")
    task = b.last_task("wf")
    b.advance(100)
    _signal(b)  # arrives while the task is out: buffered
    b.advance(400)
    b.complete_task("wf", [], task=task, started_time_ms=b.now - 450)
    events = b.history("wf")
    times = [e["event_time"] for e in events]
    assert times == sorted(times)
    signaled = next(e for e in events if e["event_type"] == "WorkflowExecutionSignaled")
    assert signaled["event_time"] == b.now  # written after WorkflowTaskCompleted, at the time it was written


def test_a_late_answer_from_an_earlier_transient_attempt_changes_nothing() -> None:
    b = Bench()
    b.start("wf", task_timeout_ms=1_000)
    b.fail_task("wf")
    second = b.last_task("wf")
    b.advance(1_000)  # attempt 2 times out (no event); attempt 3 goes out at once
    assert b.last_task("wf")["attempt"] == 3
    before = b.snapshot()
    b.complete_task("wf", [command("CompleteWorkflowExecution")], task=second)
    b.fail_task("wf", task=second)
    assert b.snapshot() == before
