"""Workflow semantics through the SDK on a real broker: cron, transient task retries, payload limits."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import ClassVar

import pytest

from kronicle import activity, workflow
from kronicle.client import Client
from kronicle.common import RetryPolicy
from kronicle.engine.service import EngineService
from kronicle.exceptions import ActivityError
from kronicle.worker import Worker
from kronicle.worker._history import attrs
from tests.integration.conftest import new_id
from tests.integration.workflow.conftest import PAYLOAD_LIMIT, assert_history_invariants, wait_until

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="module")]


@workflow.defn(name="CronTick")
class CronTick:
    @workflow.run
    async def run(self, name: str) -> str:
        return f"{name}:{workflow.info().cron_schedule}:{workflow.info().run_id[:8]}"


@workflow.defn(name="FlakyTask")
class FlakyTask:
    failures_left: ClassVar[dict[str, int]] = {}

    @workflow.run
    async def run(self) -> str:
        key = workflow.info().workflow_id
        if FlakyTask.failures_left.get(key, 0) > 0:
            FlakyTask.failures_left[key] -= 1
            raise RuntimeError("a bug in the workflow code (fails the task, not the workflow)")
        await workflow.sleep(0.01)
        return "fixed"


@activity.defn(name="big_result")
async def big_result(size: int) -> str:
    big_result.calls += 1  # type: ignore[attr-defined]
    return "x" * size


big_result.calls = 0  # type: ignore[attr-defined]


@workflow.defn(name="BigActivity")
class BigActivity:
    @workflow.run
    async def run(self, size: int) -> str:
        try:
            return await workflow.execute_activity(
                big_result,
                size,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(milliseconds=100)),
            )
        except ActivityError as err:
            return f"failed: {type(err.cause).__name__}: {err.cause}"


@workflow.defn(name="BigResult")
class BigResult:
    @workflow.run
    async def run(self, size: int) -> str:
        return "y" * size


def _queue(engine: EngineService) -> str:
    name = f"q{uuid.uuid4().hex[:8]}"
    engine.ensure_task_queue(name)
    return name


async def test_cron_runs_start_at_the_schedule_and_chain_as_cron_continuations(
    client: Client, engine: EngineService
) -> None:
    queue = _queue(engine)
    wid = new_id("cron")
    async with Worker(client, task_queue=queue, workflows=[CronTick]):
        handle = await client.start_workflow(CronTick.run, "tick", id=wid, task_queue=queue, cron_schedule="@every 1s")
        first = handle.first_execution_run_id
        assert first is not None
        # Two runs complete; the third waits for its time.
        runs = [first]
        for _ in range(2):
            state = await wait_until(engine, wid, lambda r, last=runs[-1]: r["run_id"] != last)
            runs.append(state["run_id"])
        await client.get_workflow_handle(wid).terminate(reason="enough")
    one = engine.read_history(wid, runs[0])
    started = attrs(one[0])
    assert started["cron_schedule"] == "@every 1s" and started["first_workflow_task_backoff_ms"] == 1000
    assert one[-1]["event_type"] == "WorkflowExecutionCompleted"
    assert attrs(one[-1])["new_execution_run_id"] == runs[1]
    two = engine.read_history(wid, runs[1])
    started2 = attrs(two[0])
    assert (started2["initiator"], started2["continued_execution_run_id"]) == ("CRON_SCHEDULE", runs[0])
    assert started2["last_completion_result"] == attrs(one[-1])["result"]
    assert b"tick:@every 1s" in attrs(one[-1])["result"][0]
    for run_id in runs:
        assert_history_invariants(engine.read_history(wid, run_id))


async def test_a_failing_workflow_task_is_retried_transiently_and_history_stays_small(
    client: Client, engine: EngineService
) -> None:
    queue = _queue(engine)
    wid = new_id("flaky")
    FlakyTask.failures_left[wid] = 3  # attempts 2 and 3 at once, attempt 4 after 1 s
    async with Worker(client, task_queue=queue, workflows=[FlakyTask]):
        handle = await client.start_workflow(FlakyTask.run, id=wid, task_queue=queue)
        assert await handle.result() == "fixed"
    events = engine.read_history(wid)
    assert_history_invariants(events)
    types = [e["event_type"] for e in events]
    assert types.count("WorkflowTaskFailed") == 1
    failed = types.index("WorkflowTaskFailed")
    assert types[failed + 1 : failed + 4] == ["WorkflowTaskScheduled", "WorkflowTaskStarted", "WorkflowTaskCompleted"]
    assert attrs(events[failed + 1])["attempt"] == 4


async def test_an_oversize_activity_result_fails_the_activity_without_retries(
    client: Client, engine: EngineService
) -> None:
    queue = _queue(engine)
    wid = new_id("bigact")
    big_result.calls = 0  # type: ignore[attr-defined]
    async with Worker(client, task_queue=queue, workflows=[BigActivity], activities=[big_result]):
        outcome = await client.execute_workflow(BigActivity.run, PAYLOAD_LIMIT + 1000, id=wid, task_queue=queue)
    assert outcome.startswith("failed: ServerError: the activity result is")
    assert f"over the payload limit of {PAYLOAD_LIMIT} bytes" in outcome
    assert big_result.calls == 1  # type: ignore[attr-defined]
    assert_history_invariants(engine.read_history(wid))


async def test_an_oversize_workflow_result_fails_the_task_and_the_retries_do_not_grow_history(
    client: Client, engine: EngineService
) -> None:
    queue = _queue(engine)
    wid = new_id("bigres")
    async with Worker(client, task_queue=queue, workflows=[BigResult]):
        handle = await client.start_workflow(BigResult.run, PAYLOAD_LIMIT + 10, id=wid, task_queue=queue)
        await wait_until(engine, wid, lambda r: r["wft_attempt"] >= 4)
        await handle.terminate(reason="too big")
    events = engine.read_history(wid)
    types = [e["event_type"] for e in events]
    assert types == [
        "WorkflowExecutionStarted",
        "WorkflowTaskScheduled",
        "WorkflowTaskStarted",
        "WorkflowTaskFailed",
        "WorkflowExecutionTerminated",
    ]
    assert attrs(events[3])["cause"] == "BAD_COMPLETE_WORKFLOW_EXECUTION_ATTRIBUTES"
    assert_history_invariants(events)
