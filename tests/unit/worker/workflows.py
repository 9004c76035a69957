"""Workflows and activities shared by the worker's unit and integration tests (module level for type hints)."""

from __future__ import annotations

from datetime import timedelta

from kronicle import activity, workflow
from kronicle.common import RetryPolicy
from kronicle.exceptions import ApplicationError, ChildWorkflowError


@activity.defn(name="compose")
async def compose(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn(name="Greeting")
class Greeting:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            "compose",
            name,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5),
        )


@workflow.defn(name="Greeting")
class GreetingWithTimerFirst:
    """Non-deterministic change of Greeting: a timer where history has the activity."""

    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.sleep(1)
        return await workflow.execute_activity("compose", name, start_to_close_timeout=timedelta(seconds=10))


@workflow.defn(name="Greeting")
class GreetingPatched:
    """Compatible change of Greeting: the new step is guarded by patched()."""

    @workflow.run
    async def run(self, name: str) -> str:
        if workflow.patched("sleep-first"):
            await workflow.sleep(1)
        return await workflow.execute_activity("compose", name, start_to_close_timeout=timedelta(seconds=10))


@workflow.defn(name="Sleeper")
class Sleeper:
    @workflow.run
    async def run(self, seconds: float) -> str:
        before = workflow.now()
        await workflow.sleep(seconds)
        return f"slept {(workflow.now() - before).total_seconds():.1f}"


@workflow.defn(name="Approval")
class Approval:
    def __init__(self) -> None:
        self.approvals: list[str] = []

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: len(self.approvals) >= 2)
        return self.approvals

    @workflow.signal
    def approve(self, who: str) -> None:
        self.approvals.append(who)

    @workflow.query
    def approved_by(self) -> list[str]:
        return self.approvals


@workflow.defn(name="TwoSteps")
class TwoSteps:
    """An activity, a timer, an activity: three workflow tasks to continue or replay."""

    @workflow.run
    async def run(self, name: str) -> str:
        first = await workflow.execute_activity("compose", name, start_to_close_timeout=timedelta(seconds=10))
        await workflow.sleep(0.2)
        second = await workflow.execute_activity("compose", first, start_to_close_timeout=timedelta(seconds=10))
        return second


@workflow.defn(name="Child")
class Child:
    @workflow.run
    async def run(self, n: int) -> int:
        if n < 0:
            raise ApplicationError("negative", type="Negative", non_retryable=True)
        return n * 2


@workflow.defn(name="Parent")
class Parent:
    @workflow.run
    async def run(self, n: int) -> str:
        doubled = await workflow.execute_child_workflow("Child", n, id=f"{workflow.info().workflow_id}-child")
        try:
            await workflow.execute_child_workflow("Child", -1, id=f"{workflow.info().workflow_id}-bad")
        except ChildWorkflowError as err:
            return f"{doubled} then {type(err.cause).__name__}: {err.cause}"
        return "no error"


@workflow.defn(name="Counter")
class Counter:
    @workflow.run
    async def run(self, n: int) -> int:
        workflow.upsert_search_attributes({"Count": n})
        if n < 3:
            workflow.continue_as_new(n + 1)
        return n


@workflow.defn(name="Signaller")
class Signaller:
    @workflow.run
    async def run(self, target: str) -> str:
        handle = workflow.get_external_workflow_handle(target)
        await handle.signal("approve", "ext-1")
        await handle.signal("approve", "ext-2")
        try:
            await workflow.get_external_workflow_handle("nobody-here").signal("approve", "x")
        except Exception as err:  # noqa: BLE001 - the test reads what the workflow saw
            return f"signalled; missing: {type(err).__name__}"
        return "signalled; missing was found?"


@workflow.defn(name="CancelsChild")
class CancelsChild:
    @workflow.run
    async def run(self) -> str:
        handle = await workflow.start_child_workflow("Approval", id=f"{workflow.info().workflow_id}-child")
        await workflow.sleep(1)
        handle.cancel()
        try:
            await handle
        except ChildWorkflowError as err:
            return f"child: {type(err.cause).__name__}"
        return "child finished"


@workflow.defn(name="Renamer")
class Renamer:
    def __init__(self) -> None:
        self.name = "nobody"
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return self.name

    @workflow.update
    async def rename(self, name: str) -> str:
        old, self.name = self.name, name
        await workflow.sleep(1)  # an update that spans workflow tasks
        return f"{old} -> {name}"

    @rename.validator
    def check_rename(self, name: str) -> None:
        if not name:
            raise ValueError("empty name")

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@activity.defn(name="echo")
async def echo(value: str) -> str:
    return value


@workflow.defn(name="Sequential")
class Sequential:
    """``n`` activities one after the other, each fed the previous result (eager chains)."""

    @workflow.run
    async def run(self, n: int) -> str:
        value = "x"
        for i in range(n):
            value = await workflow.execute_activity(
                "compose" if i % 2 == 0 else "echo", value, start_to_close_timeout=timedelta(seconds=10)
            )
        return f"{value} at {workflow.now().timestamp():.3f}"


@workflow.defn(name="FanOut")
class FanOut:
    """``n`` activities at once (the eager cap is three per completion)."""

    @workflow.run
    async def run(self, n: int) -> list[str]:
        handles = [
            workflow.start_activity("compose", str(i), start_to_close_timeout=timedelta(seconds=10)) for i in range(n)
        ]
        return [await h for h in handles]


@workflow.defn(name="ElsewhereActivity")
class ElsewhereActivity:
    """An activity for another task queue: never eager."""

    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            "compose", "far", task_queue="other-queue", start_to_close_timeout=timedelta(seconds=10)
        )


@workflow.defn(name="ActivityThenSignal")
class ActivityThenSignal:
    """An activity, then waits for a signal (a chain that stops with nothing to send but an empty step)."""

    def __init__(self) -> None:
        self.got: list[str] = []

    @workflow.run
    async def run(self) -> str:
        first = await workflow.execute_activity("compose", "a", start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: bool(self.got))
        return f"{first} {self.got}"

    @workflow.signal
    def poke(self, who: str) -> None:
        self.got.append(who)
