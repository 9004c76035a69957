"""The handler reports which workflows closed, for the frontend's result long poll."""

from __future__ import annotations

from tests.unit.engine.workflow.harness import Bench, command, schedule_activity


def test_closed_workflows_are_reported_once_and_only_after_tracking_starts() -> None:
    bench = Bench()
    bench.start("early")
    bench.complete_task("early", [command("CompleteWorkflowExecution", result=[b"r"])])
    assert bench.handler.take_closed() == set()  # not tracking yet: nothing is kept
    bench.start("a")
    bench.start("b")
    bench.complete_task("a", [schedule_activity("x")])
    assert bench.handler.take_closed() == set()  # commands that do not close a run
    bench.complete_task("b", [command("CompleteWorkflowExecution", result=[b"r"])])
    bench.send("TerminateWorkflow", {"workflow_id": "a", "reason": "stop"})
    assert bench.handler.take_closed() == {b"a", b"b"}
    assert bench.handler.take_closed() == set()
