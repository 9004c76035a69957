"""A workflow with a long history keeps working through the whole stack, also for a worker that must replay it all.

`make test` runs it with ~10,000 events; ``KRONICLE_CHAOS_SCALE=long`` (what `make chaos` sets) with
100,000 and more. The time is printed (run with ``-s``) for docs/history.md.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta

import pytest

from kronicle import workflow
from kronicle.client import Client
from kronicle.engine.service import EngineService
from kronicle.worker import Worker
from tests.integration.conftest import new_id
from tests.integration.workflow.conftest import assert_history_invariants, wait_until

LONG = os.environ.get("KRONICLE_CHAOS_SCALE") == "long"
TASKS = 100 if LONG else 10
MARKERS_PER_TASK = 1000
EVENTS_PER_TASK = MARKERS_PER_TASK + 5  # + TimerStarted, TimerFired, WorkflowTaskScheduled/Started/Completed

pytestmark = [pytest.mark.timeout(1800 if LONG else 240), pytest.mark.asyncio(loop_scope="module")]


@workflow.defn(name="LongHistory")
class LongHistory:
    def __init__(self) -> None:
        self._go = False

    @workflow.run
    async def run(self, tasks: int, per_task: int) -> int:
        for t in range(tasks):
            for i in range(per_task):
                workflow.patched(f"p{t}.{i}")  # one MarkerRecorded each, no round trip
            await workflow.sleep(0.001)
        await workflow.wait_condition(lambda: self._go)
        return tasks * per_task

    @workflow.signal
    def go(self) -> None:
        self._go = True


async def test_a_long_history_keeps_working_and_a_new_worker_replays_it(client: Client, engine: EngineService) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    engine.ensure_task_queue(queue)
    wid = new_id("long")
    began = time.monotonic()
    async with Worker(client, task_queue=queue, workflows=[LongHistory]):
        # The longest task timeout: on a loaded machine a task of 1,000 commands, or a full replay, is slow.
        handle = await client.start_workflow(
            LongHistory.run, TASKS, MARKERS_PER_TASK, id=wid, task_queue=queue, task_timeout=timedelta(minutes=2)
        )
        # Waiting for the signal: every task's events are written.
        await wait_until(
            engine,
            wid,
            lambda r: r["next_event_id"] > TASKS * EVENTS_PER_TASK and r["wft"] is None,
            timeout=1500 if LONG else 200,
        )
    built = time.monotonic() - began
    length = engine.describe(wid)["next_event_id"] - 1
    assert length >= TASKS * MARKERS_PER_TASK
    # A fresh worker has nothing cached: it fetches the whole history (paged) and replays it.
    began = time.monotonic()
    async with Worker(client, task_queue=queue, workflows=[LongHistory]):
        await handle.signal(LongHistory.go)
        assert await handle.result() == TASKS * MARKERS_PER_TASK
    replayed = time.monotonic() - began
    events = engine.read_history(wid, "", 1, length + 100)
    assert_history_invariants(events)
    assert events[-1]["event_type"] == "WorkflowExecutionCompleted"
    retried = sum(e["event_type"] in ("WorkflowTaskFailed", "WorkflowTaskTimedOut") for e in events)
    print(
        f"\nlong history: {length} events built in {built:.1f} s;"
        f" a new worker replayed and finished in {replayed:.1f} s; {retried} failed or timed-out workflow tasks"
    )
