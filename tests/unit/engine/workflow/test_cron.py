"""Cron schedules: the first run waits for the schedule, every run closes and the next one starts at the next time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kronicle.engine.handler import InvalidCommand
from kronicle.engine.workflow import continued_run_id
from kronicle.engine.workflow._cron import InvalidCronSchedule, next_cron_time_ms, validate_cron_schedule
from tests.unit.engine.workflow.harness import T0, Bench, attrs, command, failure

EVERY_5_MIN = "*/5 * * * *"
FIRST_TICK = next_cron_time_ms(EVERY_5_MIN, T0)  # T0 is 22:13:20 UTC: the next tick is 22:15:00
MINUTES_5 = 300_000


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def _cron_run(b: Bench, cron: str = EVERY_5_MIN, **fields: object) -> str:
    run_id = b.start("wf", input=[b"in"], cron_schedule=cron, **fields)
    b.advance(FIRST_TICK - b.now)
    return run_id


# -- the schedule itself -------------------------------------------------------------------


def test_next_time_is_strictly_after_and_follows_the_fields_in_utc() -> None:
    assert next_cron_time_ms(EVERY_5_MIN, _ms(2026, 1, 1, 0, 0)) == _ms(2026, 1, 1, 0, 5)
    assert next_cron_time_ms(EVERY_5_MIN, _ms(2026, 1, 1, 0, 2)) == _ms(2026, 1, 1, 0, 5)
    assert next_cron_time_ms("0 9 * * 1", _ms(2026, 1, 1, 0, 0)) == _ms(2026, 1, 5, 9, 0)  # next Monday


def test_shorthands_time_zones_and_every() -> None:
    start = _ms(2026, 1, 1, 0, 0, 30)
    assert next_cron_time_ms("@hourly", start) == _ms(2026, 1, 1, 1, 0)
    assert next_cron_time_ms("@daily", start) == _ms(2026, 1, 2, 0, 0)
    assert next_cron_time_ms("CRON_TZ=America/New_York 0 9 * * *", start) == _ms(2026, 1, 1, 14, 0)
    assert next_cron_time_ms("@every 1h30m", start) == start + 5_400_000


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "bad",
        "61 * * * *",
        "* * 31 2 *",
        "CRON_TZ=Mars/Base * * * * *",
        "CRON_TZ=../../etc/passwd * * * * *",
        "@every 0s",
        "@every 99999999999999999999d",
        "* * * * * *",
    ],
)
def test_invalid_schedules_say_what_is_accepted(bad: str) -> None:
    with pytest.raises(InvalidCronSchedule, match="cron schedule"):
        validate_cron_schedule(bad)


# -- runs --------------------------------------------------------------------------------


def test_the_first_run_waits_for_the_next_scheduled_time() -> None:
    b = Bench()
    b.start("wf", cron_schedule=EVERY_5_MIN)
    started = attrs(b.history("wf")[0])
    assert started["cron_schedule"] == EVERY_5_MIN
    assert started["first_workflow_task_backoff_ms"] == FIRST_TICK - T0 == 100_000
    assert b.workflow_tasks() == []
    b.advance(FIRST_TICK - T0 - 1)
    assert b.workflow_tasks() == []
    b.advance(1)
    assert len(b.workflow_tasks()) == 1
    assert b.run("wf")["cron_schedule"] == EVERY_5_MIN


def test_a_completed_run_starts_the_next_one_at_the_next_time_with_its_result() -> None:
    b = Bench()
    first = _cron_run(b)
    b.advance(20_000)
    b.complete_task("wf", [command("CompleteWorkflowExecution", result=[b"r1"])])
    second = continued_run_id(first)
    closed = b.history("wf", first)[-1]
    assert closed["event_type"] == "WorkflowExecutionCompleted"
    assert attrs(closed)["new_execution_run_id"] == second
    assert b.run("wf", first)["status"] == "COMPLETED"
    assert b.run("wf")["run_id"] == second
    started = attrs(b.history("wf", second)[0])
    assert started["initiator"] == "CRON_SCHEDULE"
    assert started["continued_execution_run_id"] == first
    assert started["first_execution_run_id"] == first
    assert started["input"] == [b"in"]
    assert started["last_completion_result"] == [b"r1"]
    assert started["cron_schedule"] == EVERY_5_MIN
    assert started["first_workflow_task_backoff_ms"] == FIRST_TICK + MINUTES_5 - b.now
    tasks = len(b.workflow_tasks())
    b.advance(FIRST_TICK + MINUTES_5 - b.now)
    assert len(b.workflow_tasks()) == tasks + 1 and b.last_task("wf")["run_id"] == second


def test_a_failed_run_continues_with_its_failure_and_the_last_good_result() -> None:
    b = Bench()
    first = _cron_run(b)
    b.complete_task("wf", [command("CompleteWorkflowExecution", result=[b"good"])])
    second = continued_run_id(first)
    b.advance(MINUTES_5)
    b.complete_task("wf", [command("FailWorkflowExecution", failure=failure("bad"))])
    assert b.run("wf", second)["status"] == "FAILED"
    third = attrs(b.history("wf", continued_run_id(second))[0])
    assert third["initiator"] == "CRON_SCHEDULE"
    assert third["continued_failure"]["message"] == "bad"
    assert third["last_completion_result"] == [b"good"]


def test_cancel_and_terminate_end_the_chain() -> None:
    b = Bench()
    first = _cron_run(b)
    b.send("TerminateWorkflow", {"workflow_id": "wf", "reason": "stop"})
    assert b.run("wf")["run_id"] == first and b.run("wf")["status"] == "TERMINATED"
    b2 = Bench()
    _cron_run(b2)
    b2.complete_task("wf", [])
    b2.send("RequestCancelWorkflow", {"workflow_id": "wf"})
    b2.complete_task("wf", [command("CancelWorkflowExecution")])
    assert b2.run("wf")["status"] == "CANCELED"
    assert len({v["run_id"] for _, v in b2.visibility()}) == 1


def test_the_execution_timeout_ends_the_chain() -> None:
    b = Bench()
    first = _cron_run(b, execution_timeout_ms=(FIRST_TICK - T0) + 60_000)
    b.complete_task("wf", [command("CompleteWorkflowExecution", result=[b"r"])])
    # The next time would be after the execution's deadline: this run is the last.
    assert b.run("wf")["run_id"] == first and b.run("wf")["status"] == "COMPLETED"
    assert attrs(b.history("wf")[-1])["new_execution_run_id"] == ""


def test_retries_come_first_then_the_schedule() -> None:
    b = Bench()
    first = _cron_run(b, retry_policy={"maximum_attempts": 2, "initial_interval_ms": 1_000})
    b.complete_task("wf", [command("FailWorkflowExecution", failure=failure())])
    retry = continued_run_id(first)
    assert attrs(b.history("wf", retry)[0])["initiator"] == "RETRY_POLICY"
    b.advance(1_000)
    b.complete_task("wf", [command("FailWorkflowExecution", failure=failure())])
    nxt = attrs(b.history("wf", continued_run_id(retry))[0])
    assert (nxt["initiator"], nxt["attempt"]) == ("CRON_SCHEDULE", 1)


def test_run_timeout_counts_from_the_scheduled_start_and_continues_the_chain() -> None:
    b = Bench()
    first = _cron_run(b, run_timeout_ms=10_000)  # armed 100 s before the first task
    assert b.run("wf")["status"] == "RUNNING"
    b.advance(10_000)
    assert b.run("wf", first)["status"] == "TIMED_OUT"
    assert attrs(b.history("wf", continued_run_id(first))[0])["initiator"] == "CRON_SCHEDULE"


def test_continue_as_new_keeps_the_schedule() -> None:
    b = Bench()
    first = _cron_run(b)
    b.complete_task("wf", [command("ContinueAsNewWorkflowExecution", input=[b"2"])])
    assert attrs(b.history("wf", continued_run_id(first))[0])["cron_schedule"] == EVERY_5_MIN


def test_invalid_or_conflicting_schedules_are_rejected_at_start() -> None:
    b = Bench()
    with pytest.raises(InvalidCommand, match="InvalidArgument: cron schedule 'nope'"):
        b.start("wf", cron_schedule="nope")
    with pytest.raises(InvalidCommand, match="start_delay cannot be combined with cron_schedule"):
        b.start("wf", cron_schedule=EVERY_5_MIN, start_delay_ms=5)
    start = {"workflow_id": "wf", "workflow_type": "T", "task_queue": "q", "cron_schedule": "nope"}
    b.send("StartWorkflow", {**start, "reply_to": "replies"})
    assert b.records("replies")[-1][1]["error_type"] == "InvalidArgument"


def test_a_child_can_have_a_schedule_and_a_bad_one_fails_the_task() -> None:
    b = Bench()
    b.start("wf")
    child = command("StartChildWorkflowExecution", workflow_id="c", workflow_type="C", cron_schedule="@hourly")
    b.complete_task("wf", [child])
    start = [v for _, v in b.records(b.topics.commands)][-1]
    assert start["cron_schedule"] == "@hourly"
    assert attrs(b.history("wf")[-1])["cron_schedule"] == "@hourly"
    b.deliver()
    assert b.run("c")["cron_schedule"] == "@hourly" and b.workflow_tasks()[-1]["workflow_id"] == "wf"
    b2 = Bench()
    b2.start("wf")
    bad = command("StartChildWorkflowExecution", workflow_id="c", workflow_type="C", cron_schedule="x")
    b2.complete_task("wf", [bad])
    assert attrs(b2.history("wf")[-1])["cause"] == "BAD_START_CHILD_EXECUTION_ATTRIBUTES"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.from_regex(r"(CRON_TZ=\S* )?[-*/,0-9a-zA-Z@ ]{0,30}", fullmatch=True))
def test_any_text_is_a_schedule_or_a_clear_error(text: str) -> None:
    try:
        due = next_cron_time_ms(text, T0)
    except InvalidCronSchedule as exc:
        assert "cron schedule" in str(exc)
    else:
        assert due > T0
