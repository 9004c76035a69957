"""start_local (wall-clock time) and from_client on the session broker; the skipper's idle detection."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from kronicle.schemas import default_registry
from kronicle.testing import WorkflowEnvironment
from kronicle.worker import Worker
from tests.integration.testing import workflows as w

pytestmark = pytest.mark.timeout(90)


async def test_start_local_runs_workflows_in_wall_clock_time(kafka_bootstrap: str) -> None:
    async with await WorkflowEnvironment.start_local(kafka=kafka_bootstrap) as env:
        assert not env.supports_time_skipping
        assert abs((await env.get_current_time()) - datetime.now(UTC)) < timedelta(seconds=2)
        queue = f"q-{uuid.uuid4().hex[:8]}"
        async with Worker(env.client, task_queue=queue, workflows=[w.LongSleep]):
            started = time.monotonic()
            slept = await env.client.execute_workflow(w.LongSleep.run, 1 / 86400, id="one-second", task_queue=queue)
            wall = time.monotonic() - started
        assert slept >= 1.0
        assert wall >= 1.0  # no skipping: the one-second timer took a second
        other = WorkflowEnvironment.from_client(env.client)
        assert not other.supports_time_skipping
        started = time.monotonic()
        await other.sleep(0.2)
        assert time.monotonic() - started >= 0.2


async def test_the_skipper_sees_a_waiting_workflow_as_idle_and_an_outstanding_task_as_busy(
    kafka_bootstrap: str,
) -> None:
    async with await WorkflowEnvironment.start_time_skipping(kafka=kafka_bootstrap, partitions=2) as env:
        skipper = env.time_skipper
        assert skipper is not None
        assert (await skipper.check()).busy is None
        queue = f"q-{uuid.uuid4().hex[:8]}"
        # No worker yet: the first workflow task is outstanding, and time must not move.
        handle = await env.client.start_workflow(w.WaitForSignal.run, id="waiting", task_queue=queue)
        verdict = await skipper.check()
        assert verdict.busy is not None and "workflow task" in verdict.busy
        before = await env.get_current_time()
        await env.sleep(0.3)  # held back: passes in wall time only
        assert (await env.get_current_time()) - before < timedelta(seconds=5)
        async with Worker(env.client, task_queue=queue, workflows=[w.WaitForSignal]):
            deadline = time.monotonic() + 30
            while (verdict := await skipper.check()).busy is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # the worker joins its group and answers the first task
            assert verdict.busy is None, verdict
            before = await env.get_current_time()
            await env.sleep(timedelta(days=3))  # idle: one jump
            assert (await env.get_current_time()) - before >= timedelta(days=3)
            await handle.signal(w.WaitForSignal.finish)
            assert await handle.result() == "signalled"


async def test_a_command_not_yet_applied_counts_as_runnable(kafka_bootstrap: str) -> None:
    """A start produced straight to Kafka is invisible in the state until applied; the barrier sees it."""
    async with await WorkflowEnvironment.start_time_skipping(kafka=kafka_bootstrap) as env:
        skipper = env.time_skipper
        assert skipper is not None
        datum = {
            "workflow_id": "straight-to-kafka",
            "workflow_type": "WaitForSignal",
            "task_queue": f"q-{uuid.uuid4().hex[:8]}",
            "request_id": uuid.uuid4().hex,
            "input": [],
        }
        producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
        value = default_registry().encode("kronicle.workflow.StartWorkflow", datum)
        producer.produce(f"kronicle.{env.client.namespace}.commands", value, datum["workflow_id"].encode())
        assert producer.flush(10) == 0
        verdict = await skipper.check()  # nobody answers the task, so it stays busy from here on
        assert verdict.busy is not None and "workflow task" in verdict.busy, verdict
