"""Eager activities and chained workflow tasks on a real broker with the real engine in-process.

Each behaviour is checked against the normal path: the same workflow with
``disable_eager_activity_execution=True`` must leave the same history (event
types, order and activity attributes; only times differ).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from kronicle import _wire, activity, workflow
from kronicle.engine.service import EngineService
from kronicle.worker import Worker
from kronicle.worker._history import attrs
from tests.integration.worker.test_worker import CONVERTER, EngineClient, result, send, start, wait_closed
from tests.unit.worker.workflows import Greeting, Sequential, compose, echo

pytestmark = pytest.mark.timeout(90)


# Set by a test: what the "poke_self" activity does on its first call (activities run in this process).
ON_FIRST_CALL: dict[str, Callable[[], None]] = {}


@activity.defn(name="poke_self")
async def poke_self(i: int) -> str:
    hook = ON_FIRST_CALL.pop(activity.info().workflow_id, None)
    if hook is not None:
        hook()
        await asyncio.sleep(0.3)  # the signal reaches the engine while the completion is held
    return f"r{i}"


@activity.defn(name="hang_first")
async def hang_first(name: str) -> str:
    if activity.info().attempt == 1:
        await asyncio.sleep(60)
    return f"attempt {activity.info().attempt} for {name}"


@workflow.defn(name="SignalDuringChain")
class SignalDuringChain:
    def __init__(self) -> None:
        self.signals: list[str] = []

    @workflow.run
    async def run(self, n: int) -> str:
        out = [
            await workflow.execute_activity("poke_self", i, start_to_close_timeout=timedelta(seconds=10))
            for i in range(n)
        ]
        await workflow.wait_condition(lambda: bool(self.signals))
        return f"{out} {self.signals}"

    @workflow.signal
    def poke(self, value: str) -> None:
        self.signals.append(value)


@workflow.defn(name="HangsFirst")
class HangsFirst:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            "hang_first", "me", start_to_close_timeout=timedelta(seconds=2), retry_policy=None
        )


def shape(events: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Event types in order, with what must not differ between the two paths (not times, not identities)."""
    out: list[tuple[str, Any]] = []
    for e in events:
        a = attrs(e)
        kept = {
            k: a.get(k)
            for k in (
                "activity_id",
                "activity_type",
                "result",
                "scheduled_event_id",
                "workflow_task_completed_event_id",
            )
            if k in a
        }
        if e["event_type"] == "WorkflowExecutionCompleted":
            kept.pop("result", None)  # may carry workflow.now(), which differs between two runs
        out.append((e["event_type"], kept))
    return out


async def run_both(
    engine: EngineService, queue: str, workflow_type: str, *args: Any, workflows: list[type], activities: list[Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    histories = []
    stats: dict[str, int] = {}
    for eager in (False, True):
        wid = f"{workflow_type}-{'eager' if eager else 'plain'}-{queue}"
        async with Worker(
            EngineClient(engine),
            task_queue=queue,
            workflows=workflows,
            activities=activities,
            disable_eager_activity_execution=not eager,
            eager_activity_hold=timedelta(milliseconds=200),
        ) as worker:
            start(engine, wid, workflow_type, queue, *args)
            histories.append(await wait_closed(engine, wid))
            if eager:
                stats = worker.workflow_task_stats
    return histories[0], histories[1], stats


async def test_one_activity_workflow_with_eager_gives_the_same_history_in_two_transactions(
    engine: EngineService, queue: str
) -> None:
    plain, eager, stats = await run_both(engine, queue, "Greeting", "World", workflows=[Greeting], activities=[compose])
    assert result(plain) == result(eager) == "Hello, World!"
    assert shape(eager) == shape(plain)
    assert stats["eager_step"] == 1
    assert stats["completed"] == 1  # one workflow task answered: the chain carried the rest


async def test_ten_sequential_activities_with_eager_give_the_same_history(engine: EngineService, queue: str) -> None:
    plain, eager, stats = await run_both(
        engine, queue, "Sequential", 10, workflows=[Sequential], activities=[compose, echo]
    )
    assert result(plain).split(" at ")[0] == result(eager).split(" at ")[0]
    assert shape(eager) == shape(plain)
    # workflow.now() in the last step was that step's started time, which history records (a replay sees the same).
    last_started = [e for e in eager if e["event_type"] == "WorkflowTaskStarted"][-1]
    assert result(eager).split(" at ")[1] == f"{last_started['event_time'] / 1000:.3f}"
    assert stats["eager_step"] == 10
    assert stats.get("full_replay", 0) == 0


async def test_eager_activity_lost_with_its_worker_is_retried_through_the_task_queue(
    engine: EngineService, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = Worker(EngineClient(engine, "dies"), task_queue=queue, workflows=[HangsFirst], activities=[hang_first])
    real_send = first._send

    def dead_after_the_completion(name: str, datum: dict[str, Any]) -> None:
        # Like a process that died: nothing about the eager attempt ever reaches the engine.
        if name != "CompleteWorkflowTask":
            return
        real_send(name, datum)

    monkeypatch.setattr(first, "_send", dead_after_the_completion)
    monkeypatch.setattr(first._activities, "_send", dead_after_the_completion)  # results and heartbeats
    async with first:
        start(engine, "hang-1", "HangsFirst", queue)
        while first.workflow_task_stats.get("completed", 0) < 1:
            await asyncio.sleep(0.05)
    second = Worker(EngineClient(engine, "lives"), task_queue=queue, workflows=[HangsFirst], activities=[hang_first])
    async with second:
        events = await wait_closed(engine, "hang-1")
    assert result(events) == "attempt 2 for me"
    scheduled = attrs(next(e for e in events if e["event_type"] == "ActivityTaskScheduled"))
    started = attrs(next(e for e in events if e["event_type"] == "ActivityTaskStarted"))
    assert started["attempt"] == 2
    assert started["last_failure"]["timeout_type"] == "START_TO_CLOSE"
    assert scheduled["activity_type"] == "hang_first"


async def test_signal_that_arrives_while_the_chain_is_held_is_seen_and_the_workflow_completes(
    engine: EngineService, queue: str
) -> None:
    wid = "signal-chain-1"

    def signal() -> None:
        send(
            engine,
            "kronicle.workflow.SignalWorkflow",
            {
                "workflow_id": wid,
                "signal_name": "poke",
                "input": _wire.payloads_to_bytes([CONVERTER.payload_converter.to_payload("hi")]),
            },
        )

    ON_FIRST_CALL[wid] = signal
    async with Worker(
        EngineClient(engine),
        task_queue=queue,
        workflows=[SignalDuringChain],
        activities=[poke_self],
        eager_activity_hold=timedelta(seconds=1),
    ) as worker:
        start(engine, wid, "SignalDuringChain", queue, 3)
        events = await wait_closed(engine, wid)
        stats = worker.workflow_task_stats
    assert result(events) == "['r0', 'r1', 'r2'] ['hi']"
    types = [e["event_type"] for e in events]
    # The signal came in before the first activity's result: the engine kept the step out and ran the task normally.
    assert types.index("WorkflowExecutionSignaled") < types.index("ActivityTaskCompleted")
    assert stats.get("full_replay", 0) >= 1
