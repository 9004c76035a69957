"""WorkflowEnvironment.start_time_skipping on the session broker: timers, timeouts and env.sleep in skipped time."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio

from kronicle.exceptions import TimeoutError as KronicleTimeoutError
from kronicle.exceptions import WorkflowFailureError
from kronicle.testing import WorkflowEnvironment
from kronicle.worker import Worker
from tests.integration.testing import workflows as w

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(kafka_bootstrap: str) -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_time_skipping(kafka=kafka_bootstrap) as environment:
        w.SKIPPING_ENV[:] = [environment]
        yield environment


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_a_workflow_sleeping_30_days_completes_in_seconds_of_wall_time(
    env: WorkflowEnvironment,
) -> None:
    queue = new_id("q")
    async with Worker(env.client, task_queue=queue, workflows=[w.LongSleep]):
        before = await env.get_current_time()
        started = time.monotonic()
        slept = await env.client.execute_workflow(w.LongSleep.run, 30.0, id=new_id("sleep"), task_queue=queue)
        wall = time.monotonic() - started
    assert slept >= 30 * 86400  # workflow.now() moved by the whole sleep
    assert (await env.get_current_time()) - before >= timedelta(days=30)
    assert wall < 10.0, f"took {wall:.2f}s of wall time"


async def test_an_activity_start_to_close_timeout_fires_under_skipped_time(env: WorkflowEnvironment) -> None:
    queue = new_id("q")
    async with Worker(
        env.client, task_queue=queue, workflows=[w.ActivityTimeout], activities=[w.outlive_start_to_close]
    ):
        started = time.monotonic()
        outcome = await env.client.execute_workflow(w.ActivityTimeout.run, 2.0, id=new_id("act"), task_queue=queue)
        wall = time.monotonic() - started
    assert outcome == "TimeoutError: START_TO_CLOSE"
    assert wall < 10.0, f"took {wall:.2f}s of wall time"


async def test_a_heartbeat_timeout_fires_under_skipped_time(env: WorkflowEnvironment) -> None:
    queue = new_id("q")
    async with Worker(
        env.client, task_queue=queue, workflows=[w.HeartbeatTimeout], activities=[w.heartbeat_then_stall]
    ):
        outcome = await env.client.execute_workflow(w.HeartbeatTimeout.run, 1.0, id=new_id("hb"), task_queue=queue)
    assert outcome == "TimeoutError: HEARTBEAT"


async def test_the_clock_waits_for_a_running_activity_before_skipping(env: WorkflowEnvironment) -> None:
    queue = new_id("q")
    async with Worker(env.client, task_queue=queue, workflows=[w.ActivityThenSleep], activities=[w.quick]):
        result = await env.client.execute_workflow(w.ActivityThenSleep.run, id=new_id("ats"), task_queue=queue)
    # Had time skipped while the half-second activity ran, its 30 s start-to-close timeout (one
    # attempt) would have fired and failed the workflow.
    assert result[0] == "quick"
    # The timer starts when the engine applies the command, a little after the workflow read the time.
    assert 86400 <= float(result[1]) < 86400 + 60


async def test_a_workflow_execution_timeout_fires_under_skipped_time(env: WorkflowEnvironment) -> None:
    queue = new_id("q")
    async with Worker(env.client, task_queue=queue, workflows=[w.WaitForSignal]):
        handle = await env.client.start_workflow(
            w.WaitForSignal.run, id=new_id("exp"), task_queue=queue, execution_timeout=timedelta(days=2)
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
    assert isinstance(failure.value.cause, KronicleTimeoutError)


async def test_env_sleep_advances_time_and_fires_the_timers_on_the_way(env: WorkflowEnvironment) -> None:
    queue = new_id("q")
    async with Worker(env.client, task_queue=queue, workflows=[w.TimerThenSignal]):
        handle = await env.client.start_workflow(w.TimerThenSignal.run, id=new_id("tick"), task_queue=queue)
        before = await env.get_current_time()
        started = time.monotonic()
        await env.sleep(timedelta(hours=5, minutes=30))
        wall = time.monotonic() - started
        after = await env.get_current_time()
        await handle.signal(w.TimerThenSignal.halt)
        with env.auto_time_skipping_disabled():
            # The sixth tick is due half an hour from now: without skipping, the result is not ready.
            ticks_so_far = len([e for e in (await handle.fetch_history()).events if e["event_type"] == "TimerFired"])
        ticks = await handle.result()
    assert after - before >= timedelta(hours=5, minutes=30)
    assert ticks_so_far == 5
    assert ticks == 6
    assert wall < 10.0, f"took {wall:.2f}s of wall time"


async def test_without_auto_skipping_a_result_does_not_move_time(env: WorkflowEnvironment) -> None:
    queue = new_id("q")
    async with Worker(env.client, task_queue=queue, workflows=[w.LongSleep]):
        handle = await env.client.start_workflow(w.LongSleep.run, 1.0, id=new_id("nosk"), task_queue=queue)
        before = await env.get_current_time()
        with env.auto_time_skipping_disabled(), pytest.raises(TimeoutError):
            await asyncio.wait_for(handle.result(), 1.0)
        assert (await env.get_current_time()) - before < timedelta(minutes=1)
        assert await handle.result() >= 86400
