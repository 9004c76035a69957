"""Payload limits on what workers send: oversize results fail the task or the activity, never reach history."""

from __future__ import annotations

from kronicle.engine.workflow import WorkflowOptions
from tests.unit.engine.workflow.harness import Bench, attrs, command, failure, schedule_activity

LIMIT = 1_000
BIG = b"x" * (LIMIT + 1)


def _bench() -> Bench:
    b = Bench(WorkflowOptions(max_payload_bytes=LIMIT))
    b.start("wf")
    return b


def _with_activity(b: Bench, **fields: object) -> dict[str, object]:
    b.complete_task("wf", [schedule_activity("a1", retry_policy={"maximum_attempts": 5}, **fields)])
    return b.activity_tasks()[-1]


def test_an_oversize_activity_result_fails_the_activity_for_good() -> None:
    b = _bench()
    task = _with_activity(b)
    b.activity_result("CompleteActivityTask", task, result=[BIG])
    events = b.history("wf")
    assert [e["event_type"] for e in events][-3:] == [
        "ActivityTaskStarted",
        "ActivityTaskFailed",
        "WorkflowTaskScheduled",
    ]
    failed = attrs(events[-2])
    assert failed["failure"]["type"] == "PayloadSizeLimitExceeded"
    assert failed["failure"]["non_retryable"] and failed["retry_state"] == "NON_RETRYABLE_FAILURE"
    assert "1001 bytes, over the payload limit of 1000" in failed["failure"]["message"]
    assert len(b.activity_tasks()) == 1  # not retried, although the policy allows 5 attempts
    assert b.handler.stats["oversize_worker_result"] == 1


def test_a_result_at_the_limit_is_accepted() -> None:
    b = _bench()
    task = _with_activity(b)
    b.activity_result("CompleteActivityTask", task, result=[b"x" * LIMIT])
    assert b.types("wf")[-2] == "ActivityTaskCompleted"


def test_an_oversize_activity_failure_is_replaced_by_a_short_non_retryable_one() -> None:
    b = _bench()
    task = _with_activity(b)
    b.activity_result("FailActivityTask", task, failure={**failure("boom"), "stack_trace": "s" * LIMIT})
    failed = attrs(b.history("wf")[-2])
    assert failed["failure"]["type"] == "PayloadSizeLimitExceeded"
    assert "original message: boom" in failed["failure"]["message"]
    assert len(failed["failure"]["stack_trace"]) == 0


def test_oversize_heartbeat_details_fail_the_activity_and_tell_the_worker_to_stop() -> None:
    b = _bench()
    task = _with_activity(b, heartbeat_timeout_ms=5_000)
    b.activity_result("HeartbeatActivityTask", task, details=[BIG], reply_to="ctl")
    assert b.types("wf")[-2] == "ActivityTaskFailed"
    assert b.records("ctl")[-1][1]["not_found"] is True


def test_an_oversize_workflow_result_fails_the_workflow_task_not_the_workflow() -> None:
    b = _bench()
    b.complete_task("wf", [command("CompleteWorkflowExecution", result=[BIG])])
    events = b.history("wf")
    assert events[-1]["event_type"] == "WorkflowTaskFailed"
    assert attrs(events[-1])["cause"] == "BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES"
    assert "over the payload limit of 1000" in attrs(events[-1])["failure"]["message"]
    assert b.run("wf")["status"] == "RUNNING"
    assert BIG not in b"".join(v for v in b.ctx.state.values())


def test_every_command_is_checked_and_the_whole_completion_is_rolled_back() -> None:
    b = _bench()
    b.complete_task(
        "wf",
        [
            schedule_activity("a1"),
            command("SignalExternalWorkflowExecution", workflow_id="other", signal_name="s", input=[BIG]),
        ],
    )
    assert attrs(b.history("wf")[-1])["cause"] == "BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES"
    assert b.activity_tasks() == [] and b.run("wf")["activities"] == {}
    assert b.records(b.topics.commands) == []


def test_an_oversize_input_of_a_scheduled_activity_fails_the_task() -> None:
    b = _bench()
    b.complete_task("wf", [schedule_activity("a1", input=[BIG])])
    assert attrs(b.history("wf")[-1])["cause"] == "BAD_SCHEDULE_ACTIVITY_ATTRIBUTES"


def test_an_oversize_workflow_task_failure_is_replaced() -> None:
    b = _bench()
    b.fail_task("wf", failure={**failure("nondet"), "details": [BIG]})
    failed = attrs(b.history("wf")[-1])
    assert failed["cause"] == "NON_DETERMINISTIC_ERROR"
    assert failed["failure"]["type"] == "PayloadSizeLimitExceeded" and failed["failure"]["details"] == []


def test_the_default_limit_is_2_mib() -> None:
    assert WorkflowOptions().max_payload_bytes == 2 * 1024 * 1024
