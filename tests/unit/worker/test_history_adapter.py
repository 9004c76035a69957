"""The history adapter, both ways, against real engine histories (the engine handler in memory)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kronicle.common import RetryPolicy
from kronicle.engine.workflow.schema_gen import attributes_field
from kronicle.worker import Replayer
from kronicle.worker import _activation as act
from kronicle.worker._history import attrs
from tests.unit.worker.memory import MemoryLoop, value
from tests.unit.worker.workflows import Approval, Greeting, Sleeper, TwoSteps


def greet(name: str) -> str:
    return f"Hello, {name}!"


async def test_activity_workflow_completes_with_the_activity_result() -> None:
    loop = MemoryLoop([Greeting], {"compose": greet})
    loop.start("wf", "Greeting", "World")
    await loop.run_until_idle()
    history = loop.history("wf")
    assert history[-1]["event_type"] == "WorkflowExecutionCompleted"
    assert value(attrs(history[-1])["result"]) == "Hello, World!"
    scheduled = next(e for e in history if e["event_type"] == "ActivityTaskScheduled")
    a = attrs(scheduled)
    assert a["activity_type"] == "compose" and a["activity_id"] == "1"
    assert a["start_to_close_timeout_ms"] == 10_000
    assert a["retry_policy"]["initial_interval_ms"] == 200 and a["retry_policy"]["maximum_attempts"] == 5


async def test_second_task_continues_the_cached_run_without_fetching_history() -> None:
    loop = MemoryLoop([Greeting], {"compose": greet})
    loop.start("wf", "Greeting", "World")
    await loop.run_until_idle()
    assert loop.runner.stats["cache_hit"] == 1
    assert loop.runner.stats["full_replay"] == 0


async def test_cache_miss_replays_the_full_history_and_finishes() -> None:
    loop = MemoryLoop([TwoSteps], {"compose": greet})
    loop.start("wf", "TwoSteps", "A")
    await loop.step()  # first task: schedules activity 1
    loop.runner.evict_all()
    await loop.step()  # activity completes, task 2 arrives: a miss
    loop.runner.evict_all()
    while True:
        await loop.run_until_idle()
        if loop.types("wf")[-1] == "WorkflowExecutionCompleted":
            break
        loop.bench.advance(300)  # the 0.2 s timer
    assert value(attrs(loop.history("wf")[-1])["result"]) == "Hello, Hello, A!!"
    assert loop.runner.stats["full_replay"] >= 2


async def test_timer_fires_and_workflow_time_comes_from_history() -> None:
    loop = MemoryLoop([Sleeper])
    loop.start("wf", "Sleeper", 5)
    await loop.run_until_idle()
    started = next(e for e in loop.history("wf") if e["event_type"] == "TimerStarted")
    assert attrs(started)["start_to_fire_timeout_ms"] == 5000 and attrs(started)["timer_id"] == "1"
    loop.bench.advance(5000)
    await loop.run_until_idle()
    assert value(attrs(loop.history("wf")[-1])["result"]) == "slept 5.0"


async def test_signals_become_jobs_and_the_workflow_sees_them() -> None:
    loop = MemoryLoop([Approval])
    loop.start("wf", "Approval")
    await loop.run_until_idle()
    loop.signal("wf", "approve", "ann")
    loop.signal("wf", "approve", "bob")
    await loop.run_until_idle()
    assert value(attrs(loop.history("wf")[-1])["result"]) == ["ann", "bob"]


async def test_failed_activity_is_retried_then_resolves_the_workflow_with_activity_error() -> None:
    calls = []

    def flaky(name: str) -> str:
        calls.append(name)
        raise ValueError("nope")

    loop = MemoryLoop([Greeting], {"compose": flaky})
    loop.start("wf", "Greeting", "x")
    for _ in range(10):
        await loop.run_until_idle()
        loop.bench.advance(5000)
    history = loop.history("wf")
    assert len(calls) == 5  # maximum_attempts
    assert history[-1]["event_type"] == "WorkflowExecutionFailed"
    failure = attrs(history[-1])["failure"]
    assert failure["failure_type"] == "activity" and failure["cause"]["message"] == "nope"
    assert failure["cause"]["type"] == "ValueError"


async def test_cancel_request_cancels_the_workflow() -> None:
    loop = MemoryLoop([Approval])
    loop.start("wf", "Approval")
    await loop.run_until_idle()
    loop.bench.send("RequestCancelWorkflow", {"workflow_id": "wf", "request_id": "c1"})
    await loop.run_until_idle()
    assert loop.types("wf")[-1] == "WorkflowExecutionCanceled"


async def test_stale_task_is_dropped() -> None:
    loop = MemoryLoop([Approval])
    loop.start("wf", "Approval")
    await loop.run_until_idle()
    task = loop.bench.workflow_tasks()[0]
    loop.runner.evict_all()
    assert await loop.runner.handle({**task, "first_event_id": 3}) is None
    assert loop.runner.stats["stale_task"] == 1


async def test_unknown_workflow_type_fails_the_task_saying_what_to_register() -> None:
    loop = MemoryLoop([Greeting])
    loop.start("wf", "Nope")
    await loop.step()
    name, datum = loop.responses[0]
    assert name == "FailWorkflowTask"
    assert "Nope" in datum["failure"]["message"] and "Greeting" in datum["failure"]["message"]


def test_schedule_activity_command_carries_every_option_in_ms() -> None:
    import asyncio

    from kronicle.common import ActivityCancellationType
    from kronicle.converter import DataConverter, Payload
    from kronicle.worker._commands import commands_to_wire
    from kronicle.worker._history import RunHistory

    cmd = act.ScheduleActivity(
        seq=1,
        activity_id="a",
        activity_type="t",
        task_queue="other",
        args=[Payload({"encoding": b"json/plain"}, b"1")],
        schedule_to_close_timeout=timedelta(seconds=30),
        schedule_to_start_timeout=timedelta(seconds=2),
        start_to_close_timeout=timedelta(seconds=5),
        heartbeat_timeout=timedelta(milliseconds=1500),
        retry_policy=RetryPolicy(
            initial_interval=timedelta(milliseconds=100),
            backoff_coefficient=3.0,
            maximum_interval=timedelta(seconds=7),
            maximum_attempts=4,
            non_retryable_error_types=["KeyError"],
        ),
        cancellation_type=ActivityCancellationType.TRY_CANCEL,
    )
    run = RunHistory(None, workflow_id="w", run_id="r", namespace="default", data_converter=DataConverter.default)  # type: ignore[arg-type]
    cancel = act.RequestCancelActivity(1)
    out = asyncio.run(
        commands_to_wire([cmd, cancel], run=run, scheduled_event_id=10, data_converter=DataConverter.default)
    )
    a = out[0][attributes_field("ScheduleActivityTask", "command")]
    assert a["schedule_to_close_timeout_ms"] == 30_000 and a["schedule_to_start_timeout_ms"] == 2000
    assert a["start_to_close_timeout_ms"] == 5000 and a["heartbeat_timeout_ms"] == 1500
    assert a["task_queue"] == "other"
    assert a["retry_policy"] == {
        "initial_interval_ms": 100,
        "backoff_coefficient": 3.0,
        "maximum_interval_ms": 7000,
        "maximum_attempts": 4,
        "non_retryable_error_types": ["KeyError"],
    }
    # Scheduled in the same completion: its event will follow WorkflowTaskStarted (11) and Completed (12).
    assert out[1][attributes_field("RequestCancelActivityTask", "command")] == {"scheduled_event_id": 13}


async def test_lru_cache_evicts_and_evicted_runs_replay_to_the_same_result() -> None:
    loop = MemoryLoop([TwoSteps], {"compose": greet}, max_cached_workflows=1)
    loop.start("wf-a", "TwoSteps", "A")
    loop.start("wf-b", "TwoSteps", "B")
    for _ in range(10):
        await loop.run_until_idle()
        loop.bench.advance(300)
    assert value(attrs(loop.history("wf-a")[-1])["result"]) == "Hello, Hello, A!!"
    assert value(attrs(loop.history("wf-b")[-1])["result"]) == "Hello, Hello, B!!"
    assert loop.runner.stats["cache_evicted"] >= 1 and loop.runner.stats["full_replay"] >= 1
    assert len(loop.runner.cached_runs) <= 1


async def test_activations_can_run_on_worker_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        loop = MemoryLoop([Greeting], {"compose": greet}, executor=pool)
        loop.start("wf", "Greeting", "T")
        await loop.run_until_idle()
    assert value(attrs(loop.history("wf")[-1])["result"]) == "Hello, T!"


async def test_child_workflows_start_and_resolve_with_result_and_failure() -> None:
    from tests.unit.worker.workflows import Child, Parent

    loop = MemoryLoop([Parent, Child])
    loop.start("parent", "Parent", 21)
    for _ in range(20):
        await loop.run_until_idle()
        if loop.bench.deliver() == 0 and not await loop.step():
            break
    history = loop.history("parent")
    assert value(attrs(history[-1])["result"]) == "42 then ApplicationError: negative"
    types = [e["event_type"] for e in history]
    assert types.count("StartChildWorkflowExecutionInitiated") == 2
    assert "ChildWorkflowExecutionCompleted" in types and "ChildWorkflowExecutionFailed" in types
    replay = await Replayer(workflows=[Parent]).replay_workflow(history)
    assert replay.replay_failure is None


async def test_continue_as_new_and_search_attributes() -> None:
    from tests.unit.worker.workflows import Counter

    loop = MemoryLoop([Counter])
    loop.start("counter", "Counter", 0)
    await loop.run_until_idle()
    history = loop.history("counter")  # the current run: the fourth
    assert value(attrs(history[-1])["result"]) == 3
    started = attrs(history[0])
    assert started["continued_execution_run_id"] and started["initiator"] == "WORKFLOW"
    upsert = next(e for e in history if e["event_type"] == "UpsertWorkflowSearchAttributes")
    assert value([attrs(upsert)["search_attributes"]["Count"]]) == 3


async def drive(loop: MemoryLoop, workflow_id: str, rounds: int = 30) -> list[dict[str, Any]]:
    for _ in range(rounds):
        await loop.run_until_idle()
        if loop.bench.deliver() == 0 and not await loop.step():
            if loop.types(workflow_id)[-1].startswith("WorkflowExecution") and loop.types(workflow_id)[-1] not in (
                "WorkflowExecutionStarted",
                "WorkflowExecutionSignaled",
            ):
                break
            loop.bench.advance(1000)
    return loop.history(workflow_id)


async def test_signals_to_external_workflows_are_delivered_and_a_missing_target_fails() -> None:
    from tests.unit.worker.workflows import Signaller

    loop = MemoryLoop([Signaller, Approval])
    loop.start("target", "Approval")
    loop.start("sender", "Signaller", "target")
    history = await drive(loop, "sender")
    assert value(attrs(history[-1])["result"]) == "signalled; missing: ApplicationError"
    target = await drive(loop, "target")
    assert value(attrs(target[-1])["result"]) == ["ext-1", "ext-2"]
    assert (await Replayer(workflows=[Signaller]).replay_workflow(history)).replay_failure is None


async def test_cancelling_a_child_cancels_it_and_the_parent_sees_cancelled_error() -> None:
    from tests.unit.worker.workflows import CancelsChild

    loop = MemoryLoop([CancelsChild, Approval])
    loop.start("parent", "CancelsChild")
    history = await drive(loop, "parent")
    assert value(attrs(history[-1])["result"]) == "child: CancelledError"
    assert loop.types("parent-child")[-1] == "WorkflowExecutionCanceled"
    assert (await Replayer(workflows=[CancelsChild]).replay_workflow(history)).replay_failure is None
