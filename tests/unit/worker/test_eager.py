"""Eager activities and chained workflow tasks, the worker side (no Kafka).

The first half inspects what the worker would send (``deliver=False``); the
second half (``deliver=True``) runs whole workflows against the engine handler
in memory and compares their histories with the normal path.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from kronicle import activity, workflow
from kronicle.engine.workflow.schema_gen import attributes_field
from kronicle.worker._eager import MAX_CHAIN_BYTES, MAX_EAGER_PER_COMPLETION
from tests.unit.worker.eager_memory import EagerLoop
from tests.unit.worker.memory import value
from tests.unit.worker.workflows import (
    ActivityThenSignal,
    ElsewhereActivity,
    FanOut,
    Greeting,
    Sequential,
    compose,
    echo,
)

SCHEDULE = attributes_field("ScheduleActivityTask", "command")


@activity.defn(name="compose")
async def slow_compose(name: str) -> str:
    await asyncio.sleep(0.3)
    return f"Hello, {name}!"


@activity.defn(name="compose")
async def failing_compose(name: str) -> str:
    raise ValueError(f"no greeting for {name}")


@activity.defn(name="compose")
async def beating_compose(name: str) -> str:
    activity.heartbeat("half way")
    await asyncio.sleep(0.05)
    return f"Hello, {name}!"


@workflow.defn(name="Sequential")
class SequentialThenBroken:
    """Like Sequential, but its code raises once the first activity is back (a failed workflow task)."""

    @workflow.run
    async def run(self, n: int) -> str:
        await workflow.execute_activity("compose", "x", start_to_close_timeout=timedelta(seconds=10))
        raise RuntimeError("bug after the first activity")


def completion(loop: EagerLoop, i: int = 0) -> dict[str, Any]:
    name, datum = loop.answers[i].records[0]
    assert name == "CompleteWorkflowTask"
    return datum


def schedules(commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c[SCHEDULE] for c in commands if c["command_type"] == "ScheduleActivityTask"]


async def first_answer(loop: EagerLoop, workflow_type: str, *args: Any) -> dict[str, Any]:
    loop.start("wf", workflow_type, *args)
    await loop.answer(loop.bench.workflow_tasks()[0])
    return completion(loop)


# -- eligibility -----------------------------------------------------------------


async def test_activity_of_this_queue_and_a_registered_type_is_requested_eager_and_started() -> None:
    loop = EagerLoop([Greeting], [slow_compose], deliver=False, hold=timedelta(0))
    datum = await first_answer(loop, "Greeting", "World")
    assert [s["request_eager_execution"] for s in schedules(datum["commands"])] == [True]
    assert len(loop.started) == 1
    task = loop.started[0].task
    assert (task["scheduled_event_id"], task["attempt"], task["activity_id"]) == (0, 1, "1")
    assert loop.started[0].predicted_scheduled_event_id == 5  # WTScheduled 2, started 3, completed 4


async def test_activity_for_another_task_queue_is_not_eager() -> None:
    loop = EagerLoop([ElsewhereActivity], [compose], deliver=False)
    datum = await first_answer(loop, "ElsewhereActivity")
    assert not schedules(datum["commands"])[0].get("request_eager_execution")
    assert loop.started == [] and "continuations" not in datum


async def test_activity_type_not_registered_here_is_not_eager() -> None:
    loop = EagerLoop([Greeting], [echo], deliver=False)
    datum = await first_answer(loop, "Greeting", "World")
    assert not schedules(datum["commands"])[0].get("request_eager_execution")
    assert loop.started == []


async def test_no_free_activity_slot_means_no_eager_activity() -> None:
    loop = EagerLoop([Greeting], [compose], deliver=False, slots=0)
    datum = await first_answer(loop, "Greeting", "World")
    assert not schedules(datum["commands"])[0].get("request_eager_execution")
    assert loop.started == []


async def test_at_most_three_activities_of_a_completion_are_eager() -> None:
    loop = EagerLoop([FanOut], [compose], deliver=False)
    datum = await first_answer(loop, "FanOut", 5)
    flags = [bool(s.get("request_eager_execution")) for s in schedules(datum["commands"])]
    assert flags == [True] * MAX_EAGER_PER_COMPLETION + [False] * (5 - MAX_EAGER_PER_COMPLETION)
    # A step that schedules something not eager ends the chain; the three results ride behind it.
    assert "continuations" not in datum
    assert [name for name, _ in loop.answers[0].records[1:]] == ["CompleteActivityTask"] * 3


async def test_disabled_eager_execution_sends_the_plain_completion() -> None:
    loop = EagerLoop([Greeting], [compose], deliver=False, eager=False)
    datum = await first_answer(loop, "Greeting", "World")
    assert not schedules(datum["commands"])[0].get("request_eager_execution")
    assert loop.started == [] and "continuations" not in datum and len(loop.answers[0].records) == 1


# -- the hold and the chain ------------------------------------------------------------


async def test_sequential_activities_become_one_completion_with_a_step_per_activity() -> None:
    loop = EagerLoop([Sequential], [compose, echo], deliver=False)
    datum = await first_answer(loop, "Sequential", 3)
    steps = datum["continuations"]
    assert len(steps) == 3
    assert [[r["activity_id"] for r in s["activity_results"]] for s in steps] == [["1"], ["2"], ["3"]]
    assert [value(s["activity_results"][0]["result"]) for s in steps] == ["Hello, x!", "Hello, x!", "Hello, Hello, x!!"]
    assert all(schedules(s["commands"])[0]["request_eager_execution"] for s in steps[:2])
    assert steps[-1]["commands"][0]["command_type"] == "CompleteWorkflowExecution"
    times = [datum["started_time_ms"], *(s["started_time_ms"] for s in steps)]
    assert times == sorted(times)
    # Every result went into a step: nothing rides behind the completion, and the closed run left the cache.
    assert len(loop.answers[0].records) == 1
    assert loop.runner.cached_runs == []
    assert loop.runner.stats["eager_step"] == 3


async def test_workflow_time_in_a_step_is_the_steps_started_time() -> None:
    loop = EagerLoop([Sequential], [compose], deliver=False)
    datum = await first_answer(loop, "Sequential", 1)
    (step,) = datum["continuations"]
    result = value(step["commands"][0][attributes_field("CompleteWorkflowExecution", "command")]["result"])
    assert result == f"Hello, x! at {step['started_time_ms'] / 1000:.3f}"


async def test_activity_still_running_when_the_hold_ends_reports_later_by_activity_id() -> None:
    loop = EagerLoop([Greeting], [slow_compose], deliver=False, hold=timedelta(milliseconds=20))
    datum = await first_answer(loop, "Greeting", "World")
    assert "continuations" not in datum and len(loop.answers[0].records) == 1
    assert [name for name, _ in loop.sent] == ["CompleteWorkflowTask"]
    await loop.started[0].finished
    name, result = loop.sent[-1]
    assert name == "CompleteActivityTask"
    assert (result["scheduled_event_id"], result["attempt"], result["activity_id"]) == (0, 1, "1")
    assert value(result["result"]) == "Hello, World!"
    assert loop.runner.cached_runs == [loop.answers[0].records[0][1]["run_id"]]


async def test_failed_eager_activity_ends_the_chain_and_its_failure_rides_behind_the_completion() -> None:
    loop = EagerLoop([Greeting], [failing_compose], deliver=False)
    datum = await first_answer(loop, "Greeting", "World")
    assert "continuations" not in datum
    assert [name for name, _ in loop.answers[0].records] == ["CompleteWorkflowTask", "FailActivityTask"]
    assert loop.answers[0].records[1][1]["activity_id"] == "1"


async def test_hold_zero_sends_the_completion_at_once() -> None:
    loop = EagerLoop([Sequential], [compose, echo], deliver=False, hold=timedelta(0))
    datum = await first_answer(loop, "Sequential", 3)
    assert "continuations" not in datum and len(loop.answers[0].records) == 1
    await loop.started[0].finished
    assert [name for name, _ in loop.sent] == ["CompleteWorkflowTask", "CompleteActivityTask"]


async def test_speculative_step_that_fails_is_not_sent_and_the_run_is_evicted() -> None:
    loop = EagerLoop([SequentialThenBroken], [compose], deliver=False)
    datum = await first_answer(loop, "Sequential", 3)
    assert "continuations" not in datum
    # The result is not lost: it goes behind the completion as a plain result.
    assert [name for name, _ in loop.answers[0].records] == ["CompleteWorkflowTask", "CompleteActivityTask"]
    assert loop.runner.cached_runs == []
    assert loop.runner.stats["eager_step_abandoned"] == 1


async def test_heartbeats_of_an_eager_activity_wait_for_the_completion() -> None:
    loop = EagerLoop([Greeting], [beating_compose], deliver=False, hold=timedelta(milliseconds=20))
    loop.start("wf", "Greeting", "World")
    task = loop.bench.workflow_tasks()[0]
    answer = await loop.runner.answer(task)
    assert answer is not None
    await asyncio.sleep(0.01)
    assert loop.sent == []  # nothing, not even the heartbeat, before the completion is handed over
    answer.sent()
    assert [name for name, _ in loop.sent] == ["HeartbeatActivityTask"]
    assert loop.sent[0][1]["scheduled_event_id"] == 0 and loop.sent[0][1]["activity_id"] == "1"
    await loop.started[0].finished
    assert [name for name, _ in loop.sent] == ["HeartbeatActivityTask", "CompleteActivityTask"]


async def test_not_found_reply_before_the_completion_is_sent_does_not_stop_an_eager_activity() -> None:
    loop = EagerLoop([Greeting], [slow_compose], deliver=False, hold=timedelta(milliseconds=10))
    loop.start("wf", "Greeting", "World")
    answer = await loop.runner.answer(loop.bench.workflow_tasks()[0])
    assert answer is not None
    eager = loop.started[0]
    ref = {"workflow_id": "wf", "run_id": eager.task["run_id"], "attempt": 1}
    loop.act_runner.on_control({**ref, "scheduled_event_id": eager.predicted_scheduled_event_id, "not_found": True})
    answer.sent()
    await eager.finished
    assert loop.sent[-1][0] == "CompleteActivityTask"


async def test_activity_signal_workflow_chain_stops_at_a_step_with_no_activity() -> None:
    loop = EagerLoop([ActivityThenSignal], [compose], deliver=False)
    datum = await first_answer(loop, "ActivityThenSignal")
    (step,) = datum["continuations"]
    assert step["commands"] == []
    assert loop.runner.cached_runs != []


# -- against the engine: the same history as the normal path ------------------------------------


def shape(events: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Event types in order with the attributes both paths must agree on (not times or identities)."""
    keys = ("activity_id", "activity_type", "result", "scheduled_event_id", "workflow_task_completed_event_id", "input")
    out = []
    for e in events:
        a = e.get(attributes_field(e["event_type"])) or {}
        out.append((e["event_type"], {k: a[k] for k in keys if k in a}))
    return out


async def run_to_end(
    eager: bool, workflow_type: str, workflows: list[type], activities: list[Any], *args: Any
) -> EagerLoop:
    loop = EagerLoop(workflows, activities, eager=eager)
    loop.start("wf", workflow_type, *args)
    await loop.run_until_idle()
    return loop


def result_of(loop: EagerLoop) -> Any:
    last = loop.history("wf")[-1]
    assert last["event_type"] == "WorkflowExecutionCompleted", last
    return value(last[attributes_field("WorkflowExecutionCompleted")]["result"])


async def test_chain_of_ten_activities_writes_the_history_of_the_normal_path() -> None:
    plain = await run_to_end(False, "Sequential", [Sequential], [compose, echo], 10)
    eager = await run_to_end(True, "Sequential", [Sequential], [compose, echo], 10)
    assert result_of(eager) == result_of(plain)
    assert shape(eager.history("wf")) == shape(plain.history("wf"))
    assert [name for name, _ in eager.sent] == ["CompleteWorkflowTask"]  # one record for the whole workflow
    assert eager.runner.stats["eager_step"] == 10


async def test_one_activity_workflow_is_one_completion_with_one_step() -> None:
    plain = await run_to_end(False, "Greeting", [Greeting], [compose], "World")
    eager = await run_to_end(True, "Greeting", [Greeting], [compose], "World")
    assert result_of(eager) == result_of(plain) == "Hello, World!"
    assert shape(eager.history("wf")) == shape(plain.history("wf"))
    assert len(eager.sent) == 1 and len(completion(eager)["continuations"]) == 1


async def test_two_activities_at_once_chain_with_both_results_in_one_step() -> None:
    plain = await run_to_end(False, "FanOut", [FanOut], [compose], 2)
    eager = await run_to_end(True, "FanOut", [FanOut], [compose], 2)
    assert result_of(eager) == result_of(plain) == ["Hello, 0!", "Hello, 1!"]
    # What the normal path writes when both results arrive before the workflow task runs (this in-memory
    # normal path happened to run a task between them, a third task).
    assert eager.types("wf") == [
        "WorkflowExecutionStarted",
        "WorkflowTaskScheduled",
        "WorkflowTaskStarted",
        "WorkflowTaskCompleted",
        "ActivityTaskScheduled",
        "ActivityTaskScheduled",
        "ActivityTaskStarted",
        "ActivityTaskCompleted",
        "ActivityTaskStarted",
        "ActivityTaskCompleted",
        "WorkflowTaskScheduled",
        "WorkflowTaskStarted",
        "WorkflowTaskCompleted",
        "WorkflowExecutionCompleted",
    ]
    (step,) = completion(eager)["continuations"]
    assert [r["activity_id"] for r in step["activity_results"]] == ["1", "2"]


async def test_step_rejected_for_a_signal_that_came_in_meanwhile_then_the_worker_replays_and_finishes() -> None:
    loop = EagerLoop([ActivityThenSignal], [compose])
    loop.start("wf", "ActivityThenSignal")
    answer = await loop.runner.answer(loop.bench.workflow_tasks()[0])
    assert answer is not None and answer.records[0][1]["continuations"]
    loop.signal("wf", "poke", "early")  # reaches the engine while the completion is held
    for record in answer.records:
        loop.bench.send(*record)
    answer.sent()
    loop._wft_seen = 1
    await loop.run_until_idle()
    assert result_of(loop) == "Hello, a! ['early']"
    assert loop.bench.handler.stats["rejected_continuation"] == 1
    assert loop.runner.stats["full_replay"] == 1  # the cached run had taken the rejected step: replayed


async def test_cancelled_eager_activity_reports_under_the_scheduled_event_id_the_engine_confirmed() -> None:
    loop = EagerLoop([Greeting], [slow_compose], deliver=False, hold=timedelta(milliseconds=10))
    loop.start("wf", "Greeting", "World")
    answer = await loop.runner.answer(loop.bench.workflow_tasks()[0])
    assert answer is not None
    answer.sent()
    eager = loop.started[0]
    ref = {"workflow_id": "wf", "run_id": eager.task["run_id"], "attempt": 1}
    loop.act_runner.on_control({**ref, "scheduled_event_id": 99, "cancel_requested": True})  # not this attempt
    loop.act_runner.on_control(
        {**ref, "scheduled_event_id": eager.predicted_scheduled_event_id, "cancel_requested": True}
    )
    await eager.finished
    name, report = loop.sent[-1]
    assert name == "ReportActivityTaskCanceled"
    assert report["scheduled_event_id"] == eager.predicted_scheduled_event_id and "activity_id" not in report


@activity.defn(name="compose")
async def huge_compose(name: str) -> str:
    return "x" * (MAX_CHAIN_BYTES + 1)


async def test_results_too_large_for_a_chain_go_behind_the_completion() -> None:
    loop = EagerLoop([Greeting], [huge_compose], deliver=False)
    datum = await first_answer(loop, "Greeting", "World")
    assert "continuations" not in datum
    assert [name for name, _ in loop.answers[0].records] == ["CompleteWorkflowTask", "CompleteActivityTask"]
    assert loop.runner.cached_runs != []  # nothing speculative happened: the run is still the engine's


async def test_a_run_that_is_not_cached_is_never_chained() -> None:
    loop = EagerLoop([Greeting], [compose], deliver=False)
    loop.runner = loop.make_runner([Greeting], max_cached_workflows=0)
    datum = await first_answer(loop, "Greeting", "World")
    assert schedules(datum["commands"])[0]["request_eager_execution"]
    assert "continuations" not in datum
    assert [name for name, _ in loop.answers[0].records] == ["CompleteWorkflowTask", "CompleteActivityTask"]
