"""StartWorkflow: first events, the first workflow task, visibility, idempotent retries, id policies."""

from __future__ import annotations

import pytest

from kronicle.engine.handler import InvalidCommand
from kronicle.engine.workflow import start_run_id
from tests.unit.engine.workflow.harness import CODEC, T0, Bench, attrs, command


def test_start_writes_started_and_scheduled_and_dispatches_the_first_task() -> None:
    b = Bench()
    run_id = b.start("wf", input=[b"World"], memo={"m": b"1"}, search_attributes={"Owner": b'"ann"'})
    events = b.history("wf")
    assert [e["event_type"] for e in events] == ["WorkflowExecutionStarted", "WorkflowTaskScheduled"]
    assert [e["event_id"] for e in events] == [1, 2]
    started = attrs(events[0])
    assert started["input"] == [b"World"]
    assert started["workflow_type"] == "Greeting"
    assert started["workflow_task_timeout_ms"] == 10_000
    assert started["first_execution_run_id"] == run_id
    assert attrs(events[1])["attempt"] == 1
    (task,) = b.workflow_tasks()
    assert task["run_id"] == run_id
    assert (task["scheduled_event_id"], task["attempt"], task["first_event_id"]) == (2, 1, 1)
    assert [e["event_id"] for e in task["history"]] == [1, 2]
    (key, vis) = b.visibility()[0]
    assert key == b"wf" + run_id.encode()
    assert vis["status"] == "RUNNING"
    assert vis["search_attributes"] == {"Owner": b'"ann"'}
    (batch,) = b.history_batches()
    assert batch["run_id"] == run_id
    assert [e["event_id"] for e in batch["events"]] == [1, 2]


def test_run_id_is_derived_from_the_request_id() -> None:
    b = Bench()
    assert b.start("wf", request_id="r-1") == start_run_id("wf", "r-1")


def test_retried_start_is_idempotent_and_changes_nothing() -> None:
    b = Bench()
    b.start("wf", request_id="r-1")
    before = b.snapshot()
    b.start("wf", request_id="r-1")
    assert b.snapshot() == before
    assert b.handler.stats["duplicate_start"] == 1


def test_second_start_of_a_running_workflow_is_rejected() -> None:
    b = Bench()
    b.start("wf", request_id="r-1")
    before = b.snapshot()
    with pytest.raises(InvalidCommand, match="WorkflowAlreadyStarted"):
        b.start("wf", request_id="r-2")
    assert b.snapshot() == before


def test_rejection_goes_to_reply_to_when_given() -> None:
    b = Bench()
    first = b.start("wf", request_id="r-1", reply_to="replies")
    b.start("wf", request_id="r-2", reply_to="replies")
    results = [v for _, v in b.records("replies")]
    assert results[0]["ok"] is True
    assert results[0]["run_id"] == first
    assert results[1]["ok"] is False
    assert results[1]["error_type"] == "WorkflowAlreadyStarted"
    assert b.run("wf")["run_id"] == first


def test_conflict_policy_use_existing_returns_the_running_run() -> None:
    b = Bench()
    first = b.start("wf", request_id="r-1")
    b.start("wf", request_id="r-2", id_conflict_policy="USE_EXISTING", reply_to="replies")
    assert b.run("wf")["run_id"] == first
    assert b.records("replies")[-1][1]["run_id"] == first


def test_conflict_policy_terminate_existing_terminates_and_starts_a_new_run() -> None:
    b = Bench()
    first = b.start("wf", request_id="r-1")
    second = b.start("wf", request_id="r-2", id_conflict_policy="TERMINATE_EXISTING")
    assert second != first
    assert b.types("wf", first)[-1] == "WorkflowExecutionTerminated"
    assert b.run("wf", first)["status"] == "TERMINATED"
    assert b.run("wf")["status"] == "RUNNING"


def _complete(b: Bench) -> None:
    b.complete_task("wf", [command("CompleteWorkflowExecution", result=[b"ok"])])


def _fail(b: Bench) -> None:
    b.complete_task("wf", [command("FailWorkflowExecution", failure={"message": "x", "failure_type": "application"})])


@pytest.mark.parametrize(
    ("policy", "close", "allowed"),
    [
        ("ALLOW_DUPLICATE", _complete, True),
        ("REJECT_DUPLICATE", _complete, False),
        ("ALLOW_DUPLICATE_FAILED_ONLY", _complete, False),
        ("ALLOW_DUPLICATE_FAILED_ONLY", _fail, True),
        ("TERMINATE_IF_RUNNING", _complete, True),
    ],
)
def test_reuse_policy_after_close(policy: str, close: object, allowed: bool) -> None:
    b = Bench()
    first = b.start("wf", request_id="r-1")
    close(b)  # type: ignore[operator]
    if allowed:
        assert b.start("wf", request_id="r-2", id_reuse_policy=policy) != first
    else:
        with pytest.raises(InvalidCommand, match="id_reuse_policy"):
            b.start("wf", request_id="r-2", id_reuse_policy=policy)
        assert b.run("wf")["run_id"] == first


def test_start_delay_postpones_the_first_workflow_task() -> None:
    b = Bench()
    b.start("wf", start_delay_ms=5_000)
    assert b.types("wf") == ["WorkflowExecutionStarted"]
    assert b.workflow_tasks() == []
    assert attrs(b.history("wf")[0])["first_workflow_task_backoff_ms"] == 5_000
    b.advance(4_999)
    assert b.workflow_tasks() == []
    b.advance(1)
    assert b.types("wf")[-1] == "WorkflowTaskScheduled"
    assert b.history("wf")[-1]["event_time"] == T0 + 5_000


def test_start_without_task_queue_is_invalid() -> None:
    b = Bench()
    with pytest.raises(InvalidCommand, match="InvalidArgument"):
        b.send("StartWorkflow", {"workflow_id": "wf", "workflow_type": "X", "task_queue": ""})


def test_command_keyed_by_another_workflow_is_invalid() -> None:
    b = Bench()
    with pytest.raises(InvalidCommand, match="key"):
        b.send("StartWorkflow", {"workflow_id": "wf", "workflow_type": "X", "task_queue": "q"}, key=b"other")


def test_unknown_schema_is_invalid() -> None:
    b = Bench()
    from kronicle.engine.handler import CommandRecord

    with pytest.raises(InvalidCommand, match="not a workflow command"):
        b.handler.handle(b.ctx, CommandRecord(0, 0, b"wf", "kronicle.Other", {"workflow_id": "wf"}, (), T0))


def test_codec_round_trips_the_task() -> None:
    b = Bench()
    b.start("wf")
    task = b.workflow_tasks()[0]
    assert CODEC.decode(CODEC.encode("kronicle.workflow.WorkflowTask", task))[1] == task


def test_malformed_command_is_dead_lettered_without_effects() -> None:
    b = Bench()
    b.start("wf")
    before = b.snapshot()
    from kronicle.engine.handler import CommandRecord

    value = {"workflow_id": "wf", "run_id": b.run("wf")["run_id"]}  # no scheduled_event_id
    record = CommandRecord(0, 99, b"wf", "kronicle.workflow.CompleteWorkflowTask", value, (), T0)
    with pytest.raises(InvalidCommand, match="malformed"):
        b.handler.handle(b.ctx, record)
    b.ctx.writes, b.ctx.outputs, b.ctx.timer_ops = {}, [], []
    assert b.snapshot() == before
