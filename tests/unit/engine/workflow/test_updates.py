"""Updates: delivered in workflow tasks, accepted or rejected by the validator, completed, answered to the caller."""

from __future__ import annotations

from typing import Any

import pytest

from kronicle.engine.handler import InvalidCommand
from kronicle.engine.workflow import WorkflowOptions
from kronicle.engine.workflow._worker_commands import MAX_REJECTED_UPDATES
from tests.unit.engine.workflow.harness import Bench, attrs, command, failure


def _update(b: Bench, update_id: str = "u1", **fields: Any) -> None:
    value = {"workflow_id": "wf", "update_id": update_id, "name": "rename", "input": [b"Bob"], "reply_to": "replies"}
    b.send("UpdateWorkflow", {**value, **fields})


def _respond(outcome: str, update_id: str = "u1", **fields: Any) -> dict[str, Any]:
    return command("UpdateResponse", update_id=update_id, outcome=outcome, **fields)


def _idle(b: Bench) -> None:
    b.start("wf")
    b.complete_task("wf", [])


def _stages(b: Bench) -> list[str]:
    return [v["stage"] for _, v in b.records("replies")]


def test_update_to_an_idle_workflow_goes_out_in_a_new_task_without_an_event() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    assert b.types("wf")[-1] == "WorkflowTaskScheduled"
    (request,) = b.last_task("wf")["updates"]
    assert (request["update_id"], request["name"], request["input"]) == ("u1", "rename", [b"Bob"])


def test_accept_and_complete_write_events_and_answer_the_caller() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    b.complete_task("wf", [_respond("ACCEPTED"), _respond("COMPLETED", result=[b"ok"])])
    events = b.history("wf")
    assert [e["event_type"] for e in events][-2:] == [
        "WorkflowExecutionUpdateAccepted",
        "WorkflowExecutionUpdateCompleted",
    ]
    assert attrs(events[-1])["accepted_event_id"] == events[-2]["event_id"]
    assert attrs(events[-1])["result"] == [b"ok"]
    assert _stages(b) == ["ACCEPTED", "COMPLETED"]
    assert b.records("replies")[-1][1]["result"] == [b"ok"]
    assert b.run("wf")["updates"] == {}


def test_update_completed_in_a_later_task() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    b.complete_task("wf", [_respond("ACCEPTED"), command("StartTimer", timer_id="t", start_to_fire_timeout_ms=10)])
    b.advance(10)
    assert b.last_task("wf")["updates"] == []  # accepted updates are not sent again
    b.complete_task("wf", [_respond("COMPLETED", failure=failure("handler failed"))])
    assert _stages(b) == ["ACCEPTED", "COMPLETED"]
    assert b.records("replies")[-1][1]["failure"]["message"] == "handler failed"


def test_rejected_update_leaves_no_history() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    n = len(b.history("wf"))
    b.complete_task("wf", [_respond("REJECTED", failure=failure("bad name"))])
    assert len(b.history("wf")) == n + 2  # WorkflowTaskStarted, WorkflowTaskCompleted
    assert _stages(b) == ["REJECTED"]
    assert b.run("wf")["updates"] == {}


def test_a_rejected_update_is_remembered_in_the_run_with_its_failure() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    b.complete_task("wf", [_respond("REJECTED", failure=failure("bad name"))])
    (rejected,) = b.run("wf")["rejected_updates"]
    assert rejected["update_id"] == "u1" and rejected["failure"]["message"] == "bad name"


def test_only_the_latest_rejections_are_kept_and_a_big_failure_is_cut_short() -> None:
    b = Bench()
    _idle(b)
    for i in range(MAX_REJECTED_UPDATES + 5):
        _update(b, f"u{i}")
        message = "m" * 50_000 if i == MAX_REJECTED_UPDATES + 4 else f"no {i}"
        b.complete_task("wf", [_respond("REJECTED", f"u{i}", failure=failure(message))])
    rejected = b.run("wf")["rejected_updates"]
    assert [r["update_id"] for r in rejected] == [f"u{i}" for i in range(5, MAX_REJECTED_UPDATES + 5)]
    assert rejected[0]["failure"]["message"] == "no 5"
    assert 0 < len(rejected[-1]["failure"]["message"]) <= 1000


def test_a_rejected_update_id_sent_again_is_a_new_request() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    b.complete_task("wf", [_respond("REJECTED", failure=failure("bad name"))])
    _update(b)
    run = b.run("wf")
    assert run["rejected_updates"] == [] and "u1" in run["updates"]
    b.complete_task("wf", [_respond("ACCEPTED"), _respond("COMPLETED", result=[b"ok"])])
    assert _stages(b) == ["REJECTED", "ACCEPTED", "COMPLETED"]


def test_update_arriving_during_a_task_waits_for_the_next_task() -> None:
    b = Bench()
    b.start("wf")
    _update(b)
    assert b.workflow_tasks()[-1]["updates"] == []
    b.complete_task("wf", [])
    assert [u["update_id"] for u in b.last_task("wf")["updates"]] == ["u1"]


def test_unanswered_update_is_delivered_again() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    b.complete_task("wf", [])  # the worker ignored it
    assert [u["update_id"] for u in b.last_task("wf")["updates"]] == ["u1"]
    b.fail_task("wf")
    assert [u["update_id"] for u in b.last_task("wf")["updates"]] == ["u1"]


def test_completing_an_update_that_was_not_accepted_fails_the_task() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    b.complete_task("wf", [_respond("COMPLETED", result=[b"x"])])
    assert attrs(b.history("wf")[-1])["cause"] == "BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE"
    assert _stages(b) == []


def test_retried_update_is_one_update_and_a_completed_one_is_answered_again() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    _update(b)
    assert len(b.run("wf")["updates"]) == 1
    b.complete_task("wf", [_respond("ACCEPTED"), _respond("COMPLETED", result=[b"r"])])
    _update(b, reply_to="replies2")
    ((_, again),) = b.records("replies2")
    assert (again["stage"], again["result"]) == ("COMPLETED", [b"r"])
    assert b.types("wf").count("WorkflowExecutionUpdateAccepted") == 1


def test_closing_the_workflow_aborts_pending_updates() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    b.send("TerminateWorkflow", {"workflow_id": "wf"})
    assert _stages(b) == ["ABORTED"]


def test_update_limit_and_closed_workflow() -> None:
    b = Bench(WorkflowOptions(max_pending_updates=1))
    _idle(b)
    _update(b, "u1")
    with pytest.raises(InvalidCommand, match="ResourceExhausted"):
        _update(b, "u2", reply_to=None)
    b.send("TerminateWorkflow", {"workflow_id": "wf"})
    _update(b, "u3")
    assert b.records("replies")[-1][1] == {
        "workflow_id": "wf",
        "run_id": "",
        "request_id": "u3",
        "ok": False,
        "error_type": "WorkflowClosed",
        "message": b.records("replies")[-1][1]["message"],
    }


def test_repeated_answers_to_an_update_are_ignored_without_any_change() -> None:
    b = Bench()
    _idle(b)
    _update(b)
    b.complete_task("wf", [_respond("ACCEPTED")])
    _signal = {"workflow_id": "wf", "signal_name": "s"}
    b.send("SignalWorkflow", _signal)
    b.complete_task("wf", [_respond("ACCEPTED"), _respond("COMPLETED", result=[b"ok"])])
    b.send("SignalWorkflow", _signal)
    length, replies = len(b.history("wf")), len(b.records("replies"))
    b.complete_task(
        "wf",
        [
            _respond("COMPLETED", result=[b"again"]),
            _respond("ACCEPTED"),
            command("StartTimer", timer_id="t", start_to_fire_timeout_ms=9),
        ],
    )
    types = b.types("wf")
    # Only the completion's own events and the timer: no failure, no second update event, no reply.
    assert types[length:] == ["WorkflowTaskStarted", "WorkflowTaskCompleted", "TimerStarted"]
    assert types.count("WorkflowExecutionUpdateAccepted") == types.count("WorkflowExecutionUpdateCompleted") == 1
    assert len(b.records("replies")) == replies
    assert b.handler.stats["duplicate_update_response"] == 3
