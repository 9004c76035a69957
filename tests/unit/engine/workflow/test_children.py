"""Child workflows: start through the commands topic, results back to the parent, parent-close policies."""

from __future__ import annotations

from typing import Any

from kronicle.engine.workflow import start_run_id
from tests.unit.engine.workflow.harness import Bench, attrs, command, failure


def _start_child(b: Bench, child_id: str = "child", **fields: Any) -> None:
    b.start("parent")
    b.complete_task(
        "parent",
        [command("StartChildWorkflowExecution", workflow_id=child_id, workflow_type="Child", input=[b"c"], **fields)],
    )


def test_child_start_goes_to_the_commands_topic_keyed_by_the_child() -> None:
    b = Bench()
    _start_child(b)
    assert b.types("parent")[-1] == "StartChildWorkflowExecutionInitiated"
    initiated = attrs(b.history("parent")[-1])
    assert (initiated["workflow_id"], initiated["parent_close_policy"]) == ("child", "TERMINATE")
    ((key, start),) = b.records(b.topics.commands)
    assert key == b"child"
    assert start["parent"] == {
        "workflow_id": "parent",
        "run_id": b.run("parent")["run_id"],
        "initiated_event_id": 5,
    }


def test_child_starts_and_its_parent_records_it() -> None:
    b = Bench()
    _start_child(b)
    b.deliver()
    child = b.run("child")
    started = attrs(b.history("child")[0])
    assert (started["parent_workflow_id"], started["parent_initiated_event_id"]) == ("parent", 5)
    assert started["input"] == [b"c"]
    events = b.history("parent")
    assert [e["event_type"] for e in events][-2:] == ["ChildWorkflowExecutionStarted", "WorkflowTaskScheduled"]
    assert attrs(events[-2]) == {
        "workflow_id": "child",
        "run_id": child["run_id"],
        "workflow_type": "Child",
        "initiated_event_id": 5,
    }


def test_child_result_is_delivered_to_the_parent() -> None:
    b = Bench()
    _start_child(b)
    b.deliver()
    b.complete_task("parent", [])
    b.complete_task("child", [command("CompleteWorkflowExecution", result=[b"child-done"])])
    b.deliver()
    events = b.history("parent")
    assert [e["event_type"] for e in events][-2:] == ["ChildWorkflowExecutionCompleted", "WorkflowTaskScheduled"]
    completed = attrs(events[-2])
    assert completed["result"] == [b"child-done"]
    assert completed["initiated_event_id"] == 5
    started_id = next(e["event_id"] for e in events if e["event_type"] == "ChildWorkflowExecutionStarted")
    assert completed["started_event_id"] == started_id
    assert b.run("parent")["children"] == {}


def test_child_failure_carries_the_failure() -> None:
    b = Bench()
    _start_child(b)
    b.deliver()
    b.complete_task("parent", [])
    b.complete_task("child", [command("FailWorkflowExecution", failure=failure("child broke"))])
    b.deliver()
    failed = attrs(b.history("parent")[-2])
    assert b.types("parent")[-2] == "ChildWorkflowExecutionFailed"
    assert failed["failure"]["message"] == "child broke"


def test_child_that_cannot_start_is_reported_as_start_failed() -> None:
    b = Bench()
    b.start("child", request_id="someone-else")  # the id is taken by a running workflow
    _start_child(b)
    b.deliver()
    events = b.history("parent")
    assert [e["event_type"] for e in events][-2:] == ["StartChildWorkflowExecutionFailed", "WorkflowTaskScheduled"]
    assert attrs(events[-2])["cause"] == "WORKFLOW_ALREADY_EXISTS"
    assert b.run("parent")["children"] == {}


def test_child_result_while_the_parent_task_is_out_is_buffered_in_order() -> None:
    b = Bench()
    _start_child(b)
    b.deliver()  # ChildWorkflowExecutionStarted; a parent task is now outstanding
    b.complete_task("child", [command("CompleteWorkflowExecution")])
    b.deliver()  # buffered behind the parent's task
    assert b.types("parent")[-1] == "WorkflowTaskScheduled"
    b.complete_task("parent", [])
    types = b.types("parent")
    assert types[-2:] == ["ChildWorkflowExecutionCompleted", "WorkflowTaskScheduled"]


def test_duplicate_child_results_are_ignored() -> None:
    b = Bench()
    _start_child(b)
    b.deliver()
    results = [v for _, v in b.records(b.topics.commands) if "outcome" in v]
    before = b.snapshot()
    b.send("ChildWorkflowResult", results[0])
    assert b.snapshot() == before
    assert b.handler.stats["stale_child_result"] == 1


def test_parent_close_terminates_open_children_by_default() -> None:
    b = Bench()
    _start_child(b)
    b.deliver()
    b.complete_task("parent", [command("CompleteWorkflowExecution")])
    b.deliver()
    assert b.run("child")["status"] == "TERMINATED"
    assert attrs(b.history("child")[-1])["reason"] == "by parent close policy"


def test_parent_close_policy_request_cancel_and_abandon() -> None:
    b = Bench()
    b.start("parent")
    b.complete_task(
        "parent",
        [
            command(
                "StartChildWorkflowExecution", workflow_id="c1", workflow_type="C", parent_close_policy="REQUEST_CANCEL"
            ),
            command("StartChildWorkflowExecution", workflow_id="c2", workflow_type="C", parent_close_policy="ABANDON"),
        ],
    )
    b.deliver()
    b.send("TerminateWorkflow", {"workflow_id": "parent", "reason": "x"})
    b.deliver()
    c1 = b.run("c1")  # its first task is out, so the request waits in the buffer
    assert (c1["status"], c1["cancel_requested"]) == ("RUNNING", True)
    assert [e[0] for e in c1["buffer"]] == ["WorkflowExecutionCancelRequested"]
    assert b.types("c2") == ["WorkflowExecutionStarted", "WorkflowTaskScheduled"]


def test_parent_close_policy_reaches_a_child_whose_start_is_not_confirmed() -> None:
    b = Bench()
    _start_child(b)
    b.complete_task("parent", [], task=b.last_task("parent"))  # stale: nothing happens
    b.send("TerminateWorkflow", {"workflow_id": "parent", "reason": "x"})
    # The start and the terminate are both queued for the child, in that order.
    b.deliver()
    assert b.run("child")["status"] == "TERMINATED"
    assert b.run("child")["run_id"] == start_run_id("child", f"child\x00{b.run('parent')['run_id']}\x005")


def test_continued_child_reports_from_its_last_run() -> None:
    b = Bench()
    _start_child(b)
    b.deliver()
    b.complete_task("parent", [])
    before = b.types("parent")
    b.complete_task("child", [command("ContinueAsNewWorkflowExecution", input=[b"2"])])
    b.deliver()
    assert b.types("parent") == before  # continuing as new is not the child's end
    b.complete_task("child", [command("CompleteWorkflowExecution", result=[b"last"])])
    b.deliver()
    assert b.types("parent")[-2] == "ChildWorkflowExecutionCompleted"
    assert attrs(b.history("parent")[-2])["run_id"] == b.run("child")["run_id"]


def test_duplicate_pending_child_id_fails_the_task() -> None:
    b = Bench()
    b.start("parent")
    start = command("StartChildWorkflowExecution", workflow_id="c", workflow_type="C")
    b.complete_task("parent", [start, start])
    assert attrs(b.history("parent")[3])["cause"] == "BAD_START_CHILD_EXECUTION_ATTRIBUTES"
    assert b.records(b.topics.commands) == []


# -- signals and cancellation to other workflows ------------------------------------------


def _two(b: Bench) -> None:
    b.start("target")
    b.complete_task("target", [])
    b.start("sender")


def test_signal_external_reaches_the_target_and_is_confirmed() -> None:
    b = Bench()
    _two(b)
    b.complete_task(
        "sender", [command("SignalExternalWorkflowExecution", workflow_id="target", signal_name="go", input=[b"1"])]
    )
    assert b.types("sender")[-1] == "SignalExternalWorkflowExecutionInitiated"
    b.deliver()
    signaled = attrs(b.history("target")[-2])
    assert (signaled["signal_name"], signaled["input"], signaled["identity"]) == ("go", [b"1"], "workflow sender")
    events = b.history("sender")
    assert [e["event_type"] for e in events][-2:] == ["ExternalWorkflowExecutionSignaled", "WorkflowTaskScheduled"]
    assert attrs(events[-2]) == {
        "workflow_id": "target",
        "run_id": b.run("target")["run_id"],
        "initiated_event_id": 5,
    }
    assert b.run("sender")["externals"] == {}


def test_signal_external_to_a_missing_workflow_fails() -> None:
    b = Bench()
    b.start("sender")
    b.complete_task("sender", [command("SignalExternalWorkflowExecution", workflow_id="nobody", signal_name="go")])
    b.deliver()
    failed = attrs(b.history("sender")[-2])
    assert b.types("sender")[-2] == "SignalExternalWorkflowExecutionFailed"
    assert (failed["cause"], failed["initiated_event_id"]) == ("EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND", 5)


def test_resent_external_signal_is_applied_once() -> None:
    b = Bench()
    _two(b)
    b.complete_task("sender", [command("SignalExternalWorkflowExecution", workflow_id="target", signal_name="go")])
    ((_, signal),) = b.records(b.topics.commands)
    b.deliver()
    b.send("SignalWorkflow", signal)  # the same record delivered again
    b.deliver()
    assert b.types("target").count("WorkflowExecutionSignaled") == 1
    assert b.handler.stats["stale_external_result"] == 1


def test_cancel_external_requests_cancellation_of_the_target() -> None:
    b = Bench()
    _two(b)
    b.complete_task("sender", [command("RequestCancelExternalWorkflowExecution", workflow_id="target", reason="stop")])
    b.deliver()
    assert b.run("target")["cancel_requested"] is True
    assert b.types("sender")[-2] == "ExternalWorkflowExecutionCancelRequested"
