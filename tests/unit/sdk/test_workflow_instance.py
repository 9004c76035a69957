"""The deterministic workflow instance: activations in, commands out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import timedelta
from typing import Any

import pytest

from kronicle import activity, workflow
from kronicle.common import ActivityCancellationType, RetryPolicy
from kronicle.exceptions import ApplicationError, NondeterminismError
from kronicle.worker import _activation as act
from tests.unit.sdk.harness import T0, Harness, failure, payload, replay, value


@activity.defn
async def compose(name: str) -> str:
    return f"Hello, {name}!"


@dataclasses.dataclass
class Result:
    greeting: str
    approved: bool
    lucky: int
    token: str
    finished_at: str


@workflow.defn
class Greeting:
    def __init__(self) -> None:
        self.approved = False
        self.name = "nobody"
        self.stage = "init"

    @workflow.run
    async def run(self, name: str) -> Result:
        self.stage = "activity"
        greeting = await workflow.execute_activity(
            compose,
            name,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        self.stage = "sleeping"
        await workflow.sleep(timedelta(minutes=5))
        self.stage = "waiting"
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self.approved, timeout=timedelta(hours=1))
        return Result(
            greeting,
            self.approved,
            workflow.random().randint(0, 10**9),
            str(workflow.uuid4()),
            workflow.now().isoformat(),
        )

    @workflow.signal
    def approve(self) -> None:
        self.approved = True

    @workflow.query
    def status(self) -> str:
        return f"{self.stage}:{self.name}"

    @workflow.query
    def sneaky(self) -> None:
        asyncio.get_running_loop().call_later(1, lambda: None)

    @workflow.update
    async def rename(self, name: str) -> str:
        old, self.name = self.name, name
        return old

    @rename.validator
    def _check_rename(self, name: str) -> None:
        if not name:
            raise ValueError("name must not be empty")


def kinds(completion: act.Completion) -> list[str]:
    assert completion.failure is None, completion.failure
    return [type(c).__name__ for c in completion.commands]


def drive_greeting(h: Harness, *, approve: bool) -> act.Completion:
    first = h.start("World")
    (schedule,) = first.commands
    assert isinstance(schedule, act.ScheduleActivity)
    assert (schedule.seq, schedule.activity_type, schedule.task_queue) == (1, "compose", "q")
    assert schedule.start_to_close_timeout == timedelta(seconds=10)
    assert schedule.retry_policy == RetryPolicy(maximum_attempts=3)
    assert [value(p) for p in schedule.args] == ["World"]
    second = h.step(act.ResolveActivity(1, "completed", payload("Hello, World!")), advance=timedelta(seconds=1))
    assert second.commands == (act.StartTimer(1, timedelta(minutes=5)),)
    third = h.step(act.FireTimer(1), advance=timedelta(minutes=5))
    assert third.commands == (act.StartTimer(2, timedelta(hours=1)),)
    if approve:
        return h.step(act.SignalWorkflow("approve"), advance=timedelta(minutes=1))
    return h.step(act.FireTimer(2), advance=timedelta(hours=1))


def test_runs_activity_sleeps_and_completes_when_signalled() -> None:
    h = Harness(Greeting)
    last = drive_greeting(h, approve=True)
    assert kinds(last) == ["CancelTimer", "CompleteWorkflow"]
    assert last.commands[0] == act.CancelTimer(2)
    result = value(last.commands[1].result, Result)  # type: ignore[attr-defined]
    assert result.greeting == "Hello, World!"
    assert result.approved is True
    assert result.finished_at == (T0 + timedelta(minutes=6, seconds=1)).isoformat()


def test_wait_condition_times_out_on_its_timer() -> None:
    last = drive_greeting(Harness(Greeting), approve=False)
    assert kinds(last) == ["CompleteWorkflow"]
    assert value(last.commands[0].result, Result).approved is False  # type: ignore[attr-defined]


def test_random_and_uuid_are_seeded_from_the_run() -> None:
    def outcome(seed: int) -> Result:
        h = Harness(Greeting)
        h.start("World", seed=seed)
        h.step(act.ResolveActivity(1, "completed", payload("hi")))
        h.step(act.FireTimer(1))
        last = h.step(act.SignalWorkflow("approve"))
        return value(last.commands[-1].result, Result)  # type: ignore[attr-defined]

    a, b, c = outcome(1), outcome(1), outcome(2)
    assert (a.lucky, a.token) == (b.lucky, b.token)
    assert (a.lucky, a.token) != (c.lucky, c.token)
    assert a.token[14] == "4"  # a version-4 UUID


def test_replaying_the_same_activations_yields_identical_commands() -> None:
    h = Harness(Greeting)
    original = [h.start("World")]
    original.append(h.step(act.ResolveActivity(1, "completed", payload("hi"))))
    original.append(h.step(act.FireTimer(1), advance=timedelta(minutes=5)))
    original.append(h.step(act.SignalWorkflow("approve")))
    assert replay(Greeting, h.activations) == original
    assert replay(Greeting, h.activations) == original


@workflow.defn(name="Greeting")
class GreetingSleepsFirst(Greeting):
    @workflow.run
    async def run(self, name: str) -> Result:
        await workflow.sleep(1)  # an incompatible change: a timer before the activity
        return await super().run(name)


def test_an_altered_workflow_is_detected_by_comparing_command_keys() -> None:
    h = Harness(Greeting)
    recorded = [h.start("World"), h.step(act.ResolveActivity(1, "completed", payload("hi")))]
    replayed = replay(GreetingSleepsFirst, h.activations[:1])
    with pytest.raises(NondeterminismError) as info:
        act.check_determinism(recorded[0].commands, replayed[0].commands)
    assert info.value.event == "ScheduleActivity seq=1 name='compose'"
    assert info.value.command == "StartTimer seq=1"
    assert "command #1" in str(info.value)
    # The unchanged class agrees with its own history.
    act.check_determinism(recorded[0].commands, replay(Greeting, h.activations[:1])[0].commands)


def test_a_resolution_for_an_unknown_command_is_a_nondeterminism_task_failure() -> None:
    h = Harness(Greeting)
    h.start("World")
    bad = h.step(act.FireTimer(9))
    assert bad.failure is not None
    assert bad.failure["type"] == "NondeterminismError"


def test_query_answers_from_current_state_and_cannot_issue_commands() -> None:
    h = Harness(Greeting)
    c = h.start("World", extra=(act.QueryWorkflow("q1", "status"),))
    assert kinds(c) == ["ScheduleActivity", "RespondToQuery"]
    assert value(c.commands[1].result) == "activity:nobody"  # type: ignore[attr-defined]
    c = h.step(act.QueryWorkflow("q2", "sneaky"), act.QueryWorkflow("q3", "missing"))
    assert kinds(c) == ["RespondToQuery", "RespondToQuery"]
    assert "query handler" in c.commands[0].failure["message"]  # type: ignore[attr-defined]
    assert "known queries: ['sneaky', 'status']" in c.commands[1].failure["message"]  # type: ignore[attr-defined]


def test_update_is_validated_accepted_and_completed() -> None:
    h = Harness(Greeting)
    h.start("World")
    rejected = h.step(act.DoUpdate("u1", "rename", [payload("")]))
    assert [(c.kind, c.update_id) for c in rejected.commands] == [("rejected", "u1")]  # type: ignore[attr-defined]
    assert rejected.commands[0].failure["message"] == "name must not be empty"  # type: ignore[attr-defined]
    done = h.step(act.DoUpdate("u2", "rename", [payload("bob")]), act.QueryWorkflow("q", "status"))
    responses = [c for c in done.commands if isinstance(c, act.UpdateResponse)]
    assert [r.kind for r in responses] == ["accepted", "completed"]
    assert value(responses[1].result) == "nobody"
    assert value(done.commands[-1].result) == "activity:bob"  # type: ignore[attr-defined]


def test_signal_sent_with_start_is_handled_before_the_run_method() -> None:
    @workflow.defn
    class SeesSignal:
        def __init__(self) -> None:
            self.seen = False

        @workflow.run
        async def run(self) -> bool:
            return self.seen

        @workflow.signal
        def poke(self) -> None:
            self.seen = True

    c = Harness(SeesSignal).start(extra=(act.SignalWorkflow("poke"),))
    assert value(c.commands[0].result) is True  # type: ignore[attr-defined]


def test_cancelling_the_workflow_cancels_the_activity_and_ends_cancelled() -> None:
    h = Harness(Greeting)
    h.start("World")
    c = h.step(act.CancelWorkflow("stop"))
    assert c.commands == (act.RequestCancelActivity(1), act.CancelWorkflowExecution())


@workflow.defn
class CleansUp:
    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(
                "slow",
                start_to_close_timeout=timedelta(minutes=1),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except Exception as err:
            assert isinstance(err.__cause__, Exception)
            await workflow.execute_activity("cleanup", start_to_close_timeout=timedelta(seconds=5))
            raise
        return "unreachable"


def test_wait_cancellation_completed_waits_for_the_engine_then_allows_cleanup() -> None:
    h = Harness(CleansUp)
    h.start()
    c = h.step(act.CancelWorkflow())
    assert c.commands == (act.RequestCancelActivity(1),)
    c = h.step(act.ResolveActivity(1, "cancelled", failure=failure(ApplicationError("stopped"))))
    assert [(type(x).__name__, getattr(x, "activity_type", None)) for x in c.commands] == [
        ("ScheduleActivity", "cleanup")
    ]
    c = h.step(act.ResolveActivity(2, "completed", payload(None)))
    # The activity error is not a cancellation by cause here (cause is an ApplicationError), so the workflow fails.
    assert kinds(c) == ["FailWorkflow"]
    fail = c.commands[0].failure  # type: ignore[attr-defined]
    assert (fail["kind"], fail["cause"]["kind"], fail["cause"]["message"]) == ("activity", "application", "stopped")


def test_activity_failure_fails_the_workflow_with_the_cause_chain() -> None:
    h = Harness(Greeting)
    h.start("World")
    c = h.step(act.ResolveActivity(1, "failed", failure=failure(ApplicationError("boom", type="Bad"))))
    assert kinds(c) == ["FailWorkflow"]
    fail = c.commands[0].failure  # type: ignore[attr-defined]
    assert fail["kind"] == "activity"
    assert fail["info"]["activity_type"] == "compose"
    assert (fail["cause"]["type"], fail["cause"]["message"]) == ("Bad", "boom")


def test_a_plain_exception_fails_the_task_not_the_workflow() -> None:
    @workflow.defn
    class Buggy:
        @workflow.run
        async def run(self) -> None:
            {}["missing"]

    h = Harness(Buggy)
    c = h.start()
    assert c.commands == ()
    assert c.failure is not None
    assert (c.failure["type"], c.failure["message"]) == ("KeyError", "missing")
    assert "Buggy" in c.failure["stack_trace"] or "run" in c.failure["stack_trace"]
    # The half-applied instance must be replaced by a replay on a fresh one.
    with pytest.raises(RuntimeError, match="failed the workflow task"):
        h.step(act.SignalWorkflow("x"))
    h.instance.dispose()


def test_deadlocked_workflow_code_is_interrupted_and_reported() -> None:
    @workflow.defn
    class Spins:
        @workflow.run
        async def run(self) -> None:
            while True:
                pass

    h = Harness(Spins, deadlock_timeout=timedelta(seconds=0.2))
    c = h.start()
    assert c.failure is not None
    assert c.failure["type"] == "WorkflowDeadlockError"
    assert "without yielding" in c.failure["message"]
    assert "while True" in c.failure["message"]  # the stack shows where it was stuck
    with pytest.raises(RuntimeError, match="evict"):
        h.step(act.SignalWorkflow("x"))


@workflow.defn
class Patched:
    @workflow.run
    async def run(self) -> str:
        if workflow.patched("v2"):
            return "new"
        return "old"


def test_patched_is_true_in_new_runs_and_follows_history_on_replay() -> None:
    new = Harness(Patched).start()
    assert new.commands[0] == act.SetPatchMarker("v2", False)
    assert value(new.commands[1].result) == "new"  # type: ignore[attr-defined]
    old_history = Harness(Patched)
    old_history.start()
    replayed_old = replay(Patched, old_history.activations[:1])[0]  # replay without the marker
    assert value(replayed_old.commands[0].result) == "old"  # type: ignore[attr-defined]
    with_marker = [
        dataclasses.replace(
            old_history.activations[0], jobs=[act.NotifyHasPatch("v2"), *old_history.activations[0].jobs]
        )
    ]
    assert value(replay(Patched, with_marker)[0].commands[1].result) == "new"  # type: ignore[attr-defined]


@workflow.defn
class Looper:
    @workflow.run
    async def run(self, count: int) -> None:
        workflow.upsert_search_attributes({"Count": [count]})
        assert workflow.info().search_attributes["Count"] == [count]
        workflow.continue_as_new(count + 1)


def test_continue_as_new_and_search_attributes() -> None:
    c = Harness(Looper).start(3)
    assert kinds(c) == ["UpsertSearchAttributes", "ContinueAsNew"]
    can = c.commands[1]
    assert isinstance(can, act.ContinueAsNew)
    assert (can.workflow_type, can.task_queue, [value(p) for p in can.args]) == ("Looper", "q", [4])


@workflow.defn
class Parent:
    @workflow.run
    async def run(self) -> Any:
        child = await workflow.start_child_workflow(Looper.run, 1, id="child-1")
        await child.signal("hello", "there")
        await workflow.get_external_workflow_handle("other").cancel()
        return await child


def test_child_workflow_and_external_handles() -> None:
    h = Harness(Parent)
    (start,) = h.start().commands
    assert isinstance(start, act.StartChildWorkflow)
    assert (start.seq, start.workflow_id, start.workflow_type) == (1, "child-1", "Looper")
    (sig,) = h.step(act.ResolveChildWorkflowStart(1, run_id="child-run")).commands
    assert isinstance(sig, act.SignalExternalWorkflow)
    assert (sig.workflow_id, sig.signal_name, sig.child_workflow_only) == ("child-1", "hello", True)
    (cancel,) = h.step(act.ResolveSignalExternalWorkflow(1)).commands
    assert cancel == act.RequestCancelExternalWorkflow(1, "default", "other", None)
    assert h.step(act.ResolveRequestCancelExternalWorkflow(1)).commands == ()
    done = h.step(act.ResolveChildWorkflow(1, "completed", payload({"x": 1})))
    assert value(done.commands[0].result) == {"x": 1}  # type: ignore[attr-defined]


def test_logger_is_quiet_during_replay(caplog: pytest.LogCaptureFixture) -> None:
    @workflow.defn
    class Logs:
        @workflow.run
        async def run(self) -> None:
            workflow.logger.info("running %s", workflow.info().workflow_id)

    caplog.set_level(logging.INFO, logger="kronicle.workflow")
    h = Harness(Logs)
    h.start()
    assert [r.getMessage() for r in caplog.records] == ["running wf-1"]
    assert caplog.records[0].workflow_id == "wf-1"  # type: ignore[attr-defined]
    caplog.clear()
    replay(Logs, h.activations)
    assert caplog.records == []


def test_workflow_api_outside_a_workflow_says_where_it_belongs() -> None:
    with pytest.raises(RuntimeError, match="Not in a workflow"):
        workflow.now()
    assert workflow.in_workflow() is False
