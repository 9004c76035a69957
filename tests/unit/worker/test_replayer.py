"""Replayer: recorded histories replay cleanly, non-deterministic changes are reported precisely."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kronicle.exceptions import NondeterminismError
from kronicle.worker import Replayer
from tests.unit.worker.memory import MemoryLoop
from tests.unit.worker.workflows import Approval, Greeting, GreetingPatched, GreetingWithTimerFirst, TwoSteps


def greet(name: str) -> str:
    return f"Hello, {name}!"


async def recorded(workflow: type, workflow_type: str, *args: Any, workflow_id: str = "wf") -> list[dict[str, Any]]:
    loop = MemoryLoop([workflow], {"compose": greet})
    loop.start(workflow_id, workflow_type, *args)
    for _ in range(20):
        await loop.run_until_idle()
        if (
            loop.types(workflow_id)[-1].startswith("WorkflowExecution")
            and loop.types(workflow_id)[-1] != "WorkflowExecutionSignaled"
        ):
            break
        loop.bench.advance(1000)
    return loop.history(workflow_id)


def to_json(events: list[dict[str, Any]]) -> str:
    def enc(v: Any) -> Any:
        if isinstance(v, bytes):
            return {"$b": base64.b64encode(v).decode()}
        if isinstance(v, dict):
            return {k: enc(x) for k, x in v.items()}
        if isinstance(v, list):
            return [enc(x) for x in v]
        return v

    return json.dumps({"events": enc(events)})


async def test_recorded_history_replays_cleanly() -> None:
    history = await recorded(TwoSteps, "TwoSteps", "A")
    result = await Replayer(workflows=[TwoSteps]).replay_workflow(history)
    assert result.replay_failure is None
    assert result.replayed_tasks == 4  # start, activity 1, timer, activity 2


async def test_exported_json_history_replays_cleanly() -> None:
    history = await recorded(Greeting, "Greeting", "A")
    result = await Replayer(workflows=[Greeting]).replay_workflow(to_json(history))
    assert result.replay_failure is None and result.events == len(history)


async def test_non_deterministic_change_names_the_event_and_the_command() -> None:
    history = await recorded(Greeting, "Greeting", "A")
    scheduled = next(e for e in history if e["event_type"] == "ActivityTaskScheduled")
    with pytest.raises(NondeterminismError) as info:
        await Replayer(workflows=[GreetingWithTimerFirst]).replay_workflow(history)
    err = info.value
    assert f"event {scheduled['event_id']} ActivityTaskScheduled" in str(err)
    assert err.event is not None and "ScheduleActivity seq=1 name='compose'" in err.event
    assert err.command == "StartTimer seq=1"


async def test_change_guarded_by_patched_replays_cleanly_and_takes_the_new_path_when_new() -> None:
    old = await recorded(Greeting, "Greeting", "A")
    result = await Replayer(workflows=[GreetingPatched]).replay_workflow(old)
    assert result.replay_failure is None
    new = await recorded(GreetingPatched, "Greeting", "B", workflow_id="wf2")
    types = [e["event_type"] for e in new]
    assert "MarkerRecorded" in types and "TimerStarted" in types
    assert (await Replayer(workflows=[GreetingPatched]).replay_workflow(new)).replay_failure is None
    with pytest.raises(NondeterminismError):
        # The new history has the patch marker and the timer; the old code has neither.
        await Replayer(workflows=[Greeting]).replay_workflow(new)


async def test_signals_replay() -> None:
    loop = MemoryLoop([Approval])
    loop.start("wf", "Approval")
    await loop.run_until_idle()
    loop.signal("wf", "approve", "ann")
    await loop.run_until_idle()
    loop.signal("wf", "approve", "bob")
    await loop.run_until_idle()
    result = await Replayer(workflows=[Approval]).replay_workflow(loop.history("wf"))
    assert result.replay_failure is None and result.replayed_tasks == 3


async def test_replay_workflows_reports_each_workflow() -> None:
    greeting = await recorded(Greeting, "Greeting", "A")
    two_steps = await recorded(TwoSteps, "TwoSteps", "B")
    # Greeting's code changed incompatibly; TwoSteps did not.
    replayer = Replayer(workflows=[GreetingWithTimerFirst, TwoSteps])
    results = await replayer.replay_workflows(
        [{"workflow_id": "a", "events": greeting}, {"workflow_id": "b", "events": two_steps}],
        raise_on_replay_failure=False,
    )
    report = results.report()
    assert "FAIL  Greeting a/" in report and "ActivityTaskScheduled" in report
    assert "ok    TwoSteps b/" in report
    assert "1 of 2 histories replayed cleanly" in report
    assert next(iter(results.replay_failures.values())).__class__ is NondeterminismError


async def test_unknown_workflow_type_is_a_clear_error() -> None:
    history = await recorded(Greeting, "Greeting", "A")
    with pytest.raises(ValueError, match="'Greeting', not given to the Replayer"):
        await Replayer(workflows=[TwoSteps]).replay_workflow(history)


async def test_live_worker_fails_the_task_as_non_deterministic_after_a_bad_deploy() -> None:
    loop = MemoryLoop([Greeting], {"compose": lambda name: name})
    loop.start("wf", "Greeting", "A")
    await loop.step()  # task 1 done by the old code: activity scheduled
    loop.runner = loop.make_runner([GreetingWithTimerFirst])  # a new worker with incompatible code
    await loop.step()
    name, datum = loop.responses[-1]
    assert name == "FailWorkflowTask" and datum["cause"] == "NON_DETERMINISTIC_ERROR"
    assert "ActivityTaskScheduled" in datum["failure"]["message"]
    assert "StartTimer" in datum["failure"]["message"]
    assert "WorkflowTaskFailed" in loop.types("wf")


async def test_a_fixed_worker_completes_the_transient_retry_of_a_failed_task() -> None:
    loop = MemoryLoop([Greeting], {"compose": lambda name: f"Hello, {name}!"})
    loop.start("wf", "Greeting", "A")
    await loop.step()
    loop.runner = loop.make_runner([GreetingWithTimerFirst])
    await loop.step()  # fails; the retry (attempt 2) is transient: not in stored history
    assert loop.responses[-1][0] == "FailWorkflowTask"
    assert loop.types("wf")[-1] == "WorkflowTaskFailed"
    loop.runner = loop.make_runner([Greeting])  # rolled back: a fresh worker, nothing cached
    await loop.run_until_idle()
    types = loop.types("wf")
    assert types[-1] == "WorkflowExecutionCompleted"
    failed = types.index("WorkflowTaskFailed")
    assert types[failed + 1 : failed + 4] == ["WorkflowTaskScheduled", "WorkflowTaskStarted", "WorkflowTaskCompleted"]
    assert loop.history("wf")[failed + 1]["workflow_task_scheduled_event_attributes"]["attempt"] == 2
    assert loop.runner.stats["full_replay"] >= 1
