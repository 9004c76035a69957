"""Cancellation semantics, handler errors and other edges of the workflow instance."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, ClassVar

from kronicle import workflow
from kronicle.common import ChildWorkflowCancellationType
from kronicle.exceptions import ActivityError, ApplicationError, CancelledError, ChildWorkflowError
from kronicle.worker import _activation as act
from tests.unit.sdk.harness import Harness, failure, payload, value

TIMEOUT = timedelta(seconds=30)


@workflow.defn
class CancelsItsOwnActivity:
    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity("long", start_to_close_timeout=TIMEOUT)
        await workflow.sleep(10)
        handle.cancel()
        try:
            await handle
        except ActivityError as err:
            return type(err.cause).__name__
        return "finished"


def test_cancelling_an_activity_handle_requests_cancellation_and_raises_activity_error() -> None:
    h = Harness(CancelsItsOwnActivity)
    assert [type(c).__name__ for c in h.start().commands] == ["ScheduleActivity", "StartTimer"]
    c = h.step(act.FireTimer(1), advance=timedelta(seconds=10))
    assert c.commands[0] == act.RequestCancelActivity(1)
    assert value(c.commands[1].result) == "CancelledError"  # type: ignore[attr-defined]
    # The engine's own cancellation report arriving later is ignored.
    assert h.step(act.ResolveActivity(1, "cancelled", failure=failure(CancelledError()))).commands == ()


@workflow.defn
class IgnoresCancel:
    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.sleep(timedelta(days=1))
        except asyncio.CancelledError:
            return "cleaned up"
        return "slept"


def test_workflow_may_catch_cancellation_and_complete() -> None:
    h = Harness(IgnoresCancel)
    h.start()
    c = h.step(act.CancelWorkflow())
    assert c.commands[0] == act.CancelTimer(1)
    assert value(c.commands[1].result) == "cleaned up"  # type: ignore[attr-defined]


def test_cancel_in_the_first_activation_cancels_before_the_run_method_starts() -> None:
    c = Harness(IgnoresCancel).start(extra=(act.CancelWorkflow(),))
    assert c.commands == (act.CancelWorkflowExecution(),)


@workflow.defn
class Parallel:
    @workflow.run
    async def run(self) -> list[Any]:
        return list(
            await asyncio.gather(
                workflow.execute_activity("a", start_to_close_timeout=TIMEOUT),
                workflow.execute_activity("b", 1, start_to_close_timeout=TIMEOUT),
            )
        )


def test_parallel_activities_are_numbered_in_order_and_resolve_in_any_order() -> None:
    h = Harness(Parallel)
    scheduled = h.start().commands
    assert [(c.seq, c.activity_type) for c in scheduled] == [(1, "a"), (2, "b")]  # type: ignore[attr-defined]
    assert h.step(act.ResolveActivity(2, "completed", payload("B"))).commands == ()
    done = h.step(act.ResolveActivity(1, "completed", payload("A")))
    assert value(done.commands[0].result) == ["A", "B"]  # type: ignore[attr-defined]


@workflow.defn
class Handlers:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(dynamic=True)
    def any_signal(self, name: str, *args: Any) -> None:
        self.seen.append([name, *args])

    @workflow.signal
    def explode(self) -> None:
        raise ApplicationError("bad signal", non_retryable=True)

    @workflow.update
    async def risky(self, fail: bool) -> str:
        await workflow.sleep(1)
        if fail:
            raise ApplicationError("update failed")
        return "ok"

    @workflow.query
    def seen_signals(self) -> list[Any]:
        return self.seen


def test_dynamic_signal_handler_receives_the_name() -> None:
    h = Harness(Handlers)
    h.start()
    c = h.step(act.SignalWorkflow("hello", [payload(1), payload("x")]), act.QueryWorkflow("q", "seen_signals"))
    assert value(c.commands[0].result) == [["hello", 1, "x"]]  # type: ignore[attr-defined]


def test_update_failing_after_acceptance_completes_with_a_failure_and_workflow_continues() -> None:
    h = Harness(Handlers)
    h.start()
    accepted = h.step(act.DoUpdate("u", "risky", [payload(True)]))
    assert [type(c).__name__ for c in accepted.commands] == ["UpdateResponse", "StartTimer"]
    done = h.step(act.FireTimer(1))
    (response,) = done.commands
    assert isinstance(response, act.UpdateResponse)
    assert (response.kind, response.failure["message"]) == ("completed", "update failed")  # type: ignore[index]


def test_signal_handler_raising_an_application_error_fails_the_workflow() -> None:
    h = Harness(Handlers)
    h.start()
    c = h.step(act.SignalWorkflow("explode"))
    assert [type(x).__name__ for x in c.commands] == ["FailWorkflow"]
    assert c.commands[0].failure["non_retryable"] is True  # type: ignore[attr-defined]
    # Queries are still answered after the workflow closed; other commands are not produced.
    after = h.step(act.QueryWorkflow("q", "seen_signals"), act.SignalWorkflow("late"))
    assert [type(x).__name__ for x in after.commands] == ["RespondToQuery"]


@workflow.defn
class InitArgs:
    @workflow.init
    def __init__(self, who: str) -> None:
        self.greeting = f"hi {who}"

    @workflow.run
    async def run(self, who: str) -> str:
        return self.greeting


def test_workflow_init_receives_the_run_arguments() -> None:
    c = Harness(InitArgs).start("ann")
    assert value(c.commands[0].result) == "hi ann"  # type: ignore[attr-defined]


@workflow.defn
class CancelsChild:
    @workflow.run
    async def run(self) -> str:
        child = await workflow.start_child_workflow(
            "Child", id="c", cancellation_type=ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED
        )
        await workflow.sleep(1)
        child.cancel()
        try:
            await child
        except ChildWorkflowError as err:
            return f"{type(err).__name__}/{type(err.__cause__).__name__}"
        return "done"


def test_cancelling_a_child_waits_for_the_engine_by_default() -> None:
    h = Harness(CancelsChild)
    h.start()
    assert h.step(act.ResolveChildWorkflowStart(1, run_id="r")).commands == (act.StartTimer(1, timedelta(seconds=1)),)
    assert h.step(act.FireTimer(1)).commands == (act.CancelChildWorkflow(1),)
    c = h.step(act.ResolveChildWorkflow(1, "cancelled", failure=failure(CancelledError())))
    assert value(c.commands[0].result) == "ChildWorkflowError/CancelledError"  # type: ignore[attr-defined]


def test_child_already_started_raises_in_the_parent() -> None:
    h = Harness(CancelsChild)
    h.start()
    c = h.step(act.ResolveChildWorkflowStart(1, already_started=True))
    # WorkflowAlreadyStartedError is not a FailureError: the task fails, as in temporalio.
    assert c.failure is not None
    assert c.failure["type"] == "WorkflowAlreadyStartedError"


@workflow.defn
class HasFinally:
    finally_ran: ClassVar[list[bool]] = []

    @workflow.run
    async def run(self) -> None:
        try:
            await workflow.sleep(100)
        finally:
            HasFinally.finally_ran.append(workflow.in_workflow())


def test_dispose_runs_pending_finally_blocks_on_the_workflow_loop_and_ends_the_instance() -> None:
    h = Harness(HasFinally)
    h.start()
    h.instance.dispose()
    assert HasFinally.finally_ran == [True]
    try:
        h.step(act.FireTimer(1))
    except RuntimeError as err:
        assert "disposed" in str(err)
    else:
        raise AssertionError("a disposed instance must refuse activations")


def test_built_in_stack_trace_query_shows_where_the_workflow_waits() -> None:
    h = Harness(HasFinally)
    h.start()
    c = h.step(act.QueryWorkflow("q", "__stack_trace"))
    trace = value(c.commands[0].result)  # type: ignore[attr-defined]
    assert "workflow-run" in trace
    assert "await workflow.sleep(100)" in trace


@workflow.defn
class CancelsBeforeStart:
    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity("x", start_to_close_timeout=TIMEOUT)
        handle.cancel()
        try:
            await handle
        except ActivityError as err:
            return f"{type(err.cause).__name__}"
        return "finished"


def test_cancelling_an_activity_handle_before_it_ran_still_resolves_as_activity_error() -> None:
    c = Harness(CancelsBeforeStart).start()
    assert [type(x).__name__ for x in c.commands] == ["ScheduleActivity", "RequestCancelActivity", "CompleteWorkflow"]
    assert value(c.commands[2].result) == "CancelledError"  # type: ignore[attr-defined]
